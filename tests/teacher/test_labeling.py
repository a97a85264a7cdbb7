"""The label stage: raw float32 logits per row, in row order, matching the teacher's own forward."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tests.conftest import file_task, install_as_teacher, write_config
from tinykd import data_stage
from tinykd.artifacts import RunPaths
from tinykd.config_loading import load_config
from tinykd.teacher import labeling


def test_labels_are_raw_logits_in_row_order(sentiment_files, tiny_teacher, tmp_path):
    config = load_config(write_config(tmp_path / "c.yaml", {
        "task": file_task(sentiment_files), "label": {"chunk_rows": 50, "batch_size": 7}}))
    paths = RunPaths(tmp_path / "run")
    data_stage.run(config, paths)
    install_as_teacher(paths, tiny_teacher)
    result = labeling.run(config, paths)
    assert result.rows == {"train": 240, "dev": 60, "test": 60} and result.rows_per_second > 0

    schema = pq.read_schema(paths.labels("train"))
    assert str(schema.field("logits").type) == "list<element: float>"
    labelled = pd.read_parquet(paths.labels("train"))
    rows = pd.read_parquet(paths.split("train"))
    assert labelled[["text_a", "label"]].equals(rows)

    # The stored logits are the model's own output for each row, unpadded, one at a time.
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    for i in (0, 17, 239):
        with torch.no_grad():
            expected = model(**tokenizer(rows["text_a"][i], return_tensors="pt")).logits[0].numpy()
        np.testing.assert_allclose(labelled["logits"][i], expected, atol=1e-5)
    assert not paths.label_parts("train").exists()
    assert labeling.run(config, paths).skipped


def _capped_run(tmp_path, sentiment_files, tiny_teacher, **augment):
    """data + augment (UNK op rows, and `augment`'s extra keys) with the tiny teacher installed; label.max_augmented_rows
    100. Returns the config's sections, the config and the run's paths."""
    from tinykd.augment import stage as augment_stage

    augment = {"multiplier": 2, "unk_token": "<unk>", "ops": [{"op": "unk", "p": 0.5}]} | augment
    sections = {"task": file_task(sentiment_files), "augment": augment,
                "label": {"splits": ["augmented"], "max_augmented_rows": 100, "chunk_rows": 64}}
    config = load_config(write_config(tmp_path / "c.yaml", sections))
    paths = RunPaths(tmp_path / "run")
    data_stage.run(config, paths)
    augment_stage.run(config, paths)
    install_as_teacher(paths, tiny_teacher)
    return sections, config, paths


def test_max_augmented_rows_labels_a_seeded_sample_in_source_order(sentiment_files, tiny_teacher, tmp_path):
    sections, config, paths = _capped_run(tmp_path, sentiment_files, tiny_teacher)
    assert labeling.run(config, paths).rows == {"augmented": 100}

    labelled = pd.read_parquet(paths.labels("augmented"))
    augmented = pd.read_parquet(paths.augmented)
    assert len(augmented) > 100
    # Every labelled row is one of the augmented rows, in the augmented table's order.
    position = {(r.text_a, r.source_row): i for i, r in enumerate(augmented.itertuples())}
    order = [position[(r.text_a, r.source_row)] for r in labelled.itertuples()]
    assert order == sorted(order) and len(set(order)) == 100

    # Labelling every row is a different artifact: the stage relabels instead of reusing the sample.
    everything = load_config(write_config(tmp_path / "all.yaml", sections | {
        "label": {"splits": ["augmented"], "chunk_rows": 64}}))
    assert labeling.run(everything, paths).rows == {"augmented": len(augmented)}


def test_max_augmented_rows_leaves_every_pool_row_named_or_not(sentiment_files, tiny_teacher, tmp_path):
    pool = tmp_path / "pool.tsv"
    pool.write_text("text_a\tdomain\n" + "".join(f"第{i}条评论，{'外卖' if i % 2 else '酒店'}很好。\t"
                                                 f"{'waimai' if i % 2 else 'hotel'}\n" for i in range(30)),
                    encoding="utf-8")
    source = {"path": str(pool), "domain_column": "domain"}
    unlabeled = [source | {"exclude_domains": ["waimai"]}, source | {"domains": ["waimai"], "name": "waimai"}]
    _, config, paths = _capped_run(tmp_path, sentiment_files, tiny_teacher, unlabeled=unlabeled)
    augmented = pd.read_parquet(paths.augmented)
    assert augmented["op"].value_counts().to_dict() == {"unk": len(augmented) - 30, "pool": 15, "pool:waimai": 15}
    assert labeling.run(config, paths).rows == {"augmented": 130}  # the cap samples the op rows only

    labelled = pd.read_parquet(paths.labels("augmented"))
    assert labelled["op"].value_counts().to_dict() == {"unk": 100, "pool": 15, "pool:waimai": 15}
    pool_texts = augmented.loc[augmented["op"] != "unk", "text_a"].tolist()
    assert labelled.loc[labelled["op"] != "unk", "text_a"].tolist() == pool_texts  # every pool row, in order
