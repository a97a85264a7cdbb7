"""A bi-encoder student on a pair task: distilled from the teacher's labels over gold and sampled pairs, saved,
exported to ONNX with two texts of different lengths, and refused where it cannot apply."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import file_task, install_as_teacher, topic_rows, write_config
from tests.tiny_models import save_tiny_teacher
from tinykd import data_stage
from tinykd.artifacts import RunPaths
from tinykd.augment import stage as augment_stage
from tinykd.benchmarks import report as report_stage
from tinykd.benchmarks import stage as bench_stage
from tinykd.compress import onnx_fp32
from tinykd.compress import stage as compress_stage
from tinykd.compress.backend import BuildContext
from tinykd.compress.model_source import ModelSource
from tinykd.config_loading import load_config
from tinykd.errors import ConfigError
from tinykd.student import stage as distill_stage
from tinykd.teacher import labeling

BI = {"name": "bi", "kind": "transformer", "shape": "bi", "layers": 1, "hidden": 16, "heads": 2, "intermediate": 32,
      "relation": {"heads": 2}, "save_steps": 50,
      "schedule": [{"stage": "task_relation", "epochs": 1, "batch_size": 16, "learning_rate": 1e-3},
                   {"stage": "task_prediction", "epochs": 1, "batch_size": 16, "learning_rate": 1e-3}]}


def _pair_rows(n: int, seed: int) -> list[tuple[str, str, int]]:
    """Two reviews per row; label 1 when they share a topic (about a quarter of the rows)."""
    reviews = topic_rows(2 * n, seed)
    rng = random.Random(seed)
    rows = []
    for (topic_a, a), (topic_b, b) in zip(reviews[::2], reviews[1::2]):
        if rng.random() < 0.2:  # make a positive from two reviews of a's topic
            b = next(text for topic, text in reviews if topic == topic_a and text != a)
            topic_b = topic_a
        rows.append((a, b, int(topic_a == topic_b)))
    return rows


def _pair_task(tmp_path):
    files = {}
    for split, (n, seed) in {"train": (200, 0), "dev": (60, 1), "test": (60, 2)}.items():
        files[split] = tmp_path / f"{split}.tsv"
        files[split].write_text("text_a\ttext_b\tlabel\n" + "".join(f"{a}\t{b}\t{y}\n" for a, b, y in
                                                                     _pair_rows(n, seed)), encoding="utf-8")
    return file_task(files, kind="pair", columns={"text_b": "text_b"}, label_names=["different", "same"])


SMALL = {"name": "bow", "kind": "bow", "tokens": "char", "epochs": 2, "min_freq": 1, "embedding_dim": 16,
         "hidden_size": 16}
FAST_BENCH = {"batch_sizes": [1], "rows": 16, "duration_s": 0.05, "warmup_s": 0, "repeats": 2, "min_calls": 1,
              "floor": True, "footprint": False, "candidates": 8, "candidate_queries": 3}


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory):
    """A pair task labelled by a tiny teacher, with a bi-encoder and a siamese BOW distilled."""
    tmp_path = tmp_path_factory.mktemp("pairs")
    augment = {"multiplier": 2, "seed": 0, "ops": [{"op": "bm25_pair", "top_k": 3}, {"op": "random_pair"},
                                                   {"op": "unk"}]}
    config = load_config(write_config(tmp_path / "c.yaml", {
        "task": _pair_task(tmp_path), "augment": augment, "students": [BI, SMALL], "label": {"batch_size": 32},
        "compress": {"backends": ["torch-fp32", "onnx-fp32", "onnx-int8-dynamic", "onnx-optimized"]},
        "bench": FAST_BENCH}))
    paths = RunPaths(tmp_path / "run")
    data_stage.run(config, paths)
    augment_stage.run(config, paths)
    texts = [text for seed in (0, 1, 2) for _, text in topic_rows(400, seed)]
    install_as_teacher(paths, save_tiny_teacher(tmp_path / "teacher", texts))
    labeling.run(config, paths)
    return config, paths, distill_stage.run(config, paths)


def test_bi_encoder_distils_from_sampled_pairs_and_exports_with_two_lengths(pair_run, tmp_path):
    config, paths, result = pair_run
    out = paths.root / "students" / "bi"
    metrics = json.loads((out / "metrics.json").read_text())
    assert result.accuracy["bi"] == metrics["test"]["accuracy"]
    assert json.loads((out / "model" / "config.json").read_text())["model_type"] == "tinykd-bi-encoder"
    relation = json.loads((out / "stages" / "0-task_relation" / "stage.json").read_text())
    losses = [entry["loss_relation"] for entry in relation["log"] if "loss_relation" in entry]
    assert losses and all(0 < loss < float("inf") for loss in losses)  # the relation loss per side trained
    stage = json.loads((out / "stages" / "1-task_prediction" / "stage.json").read_text())
    assert stage["data"] == "distilled" and stage["rows"] > 200  # gold + teacher-labelled sampled pairs

    source = ModelSource.of("bi", paths, pair=True)
    assert source.siamese and source.input_names == ["input_ids", "attention_mask", "input_ids_b", "attention_mask_b"]
    batch = source.encode(["订单这次商品退款", "客服"], ["退款", "商品质量问题一直很差还是"], 32)
    assert batch["input_ids"].shape[1] != batch["input_ids_b"].shape[1]  # each side padded to its own longest
    built = onnx_fp32.build(source, _empty(tmp_path / "onnx"), BuildContext())
    assert built["max_abs_logit_diff_vs_torch"] <= 1e-4
    assert built["parts"] == ["embed.onnx", "compare.onnx"] and built["parts_max_abs_diff_vs_torch"] <= 1e-4
    embedder = onnx_fp32.load_embedder(source, tmp_path / "onnx", threads=1)
    candidates = embedder.embed({"input_ids": batch["input_ids_b"], "attention_mask": batch["attention_mask_b"]})
    query = embedder.embed({"input_ids": batch["input_ids"][:1], "attention_mask": batch["attention_mask"][:1]})
    cached = embedder.compare(query, candidates)  # the first query against both cached candidates
    runner = onnx_fp32.load(source, tmp_path / "onnx", threads=1)
    with torch.inference_mode():
        torch_logits = source.load_torch()(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()
    np.testing.assert_allclose(runner(batch), torch_logits, atol=1e-4)
    first_against_both = source.encode(["订单这次商品退款"] * 2, ["退款", "商品质量问题一直很差还是"], 32)
    np.testing.assert_allclose(cached, runner(first_against_both), atol=1e-4)  # cached = uncached scoring


def _empty(directory):
    directory.mkdir()
    return directory


def test_a_bi_encoder_is_refused_on_a_single_text_task(sentiment_files, tmp_path):
    with pytest.raises(ConfigError, match="shape 'bi' embeds the two texts of a pair apart; task.kind is 'single'"):
        load_config(write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "students": [BI]}))


def test_bench_times_the_cached_candidate_shape_beside_the_teachers_pairs(pair_run):
    """Every model serves the same queries against the same candidates: the siamese ones from cached vectors (whose
    test predictions equal the pair graph's), the cross-encoder teacher as C pairs per query."""
    config, paths, _ = pair_run
    compress_stage.run(config, paths)
    bench_stage.run(config, paths)
    everything = pd.read_parquet(paths.bench_dir / "candidates.parquet").set_index(["model", "backend"])
    left_out = everything[everything["not_measured"].notna()]  # a fused graph of the whole pair: nothing to cache
    assert set(left_out.index) == {("bi", "onnx-optimized")}  # (BOW has no fused build: a transformer pass)
    rows = everything[everything["not_measured"].isna()]
    backends = ("torch-fp32", "onnx-fp32", "onnx-int8-dynamic")
    assert set(rows.index) == ({(m, b) for m in ("teacher", "bi", "bow") for b in backends}
                               | {("teacher", "onnx-optimized"), ("tfidf-lr", "sklearn")})
    floor = rows.loc[("tfidf-lr", "sklearn")]  # the floor caches its candidates' n-gram vectors
    timed = pd.read_parquet(paths.bench_dir / "results.parquet").query("model == 'tfidf-lr'")
    assert floor["shape"] == "cached" and floor["cached_agreement_with_pairs"] == 1.0
    assert floor["cached_accuracy"] == pytest.approx(timed["accuracy"].iat[0])
    assert (rows["candidates"] == 8).all() and (rows["queries"] == 3).all() and (rows["calls"] >= 6).all()
    assert set(rows.loc["teacher", "shape"]) == {"pairs"} and set(rows.loc[["bi", "bow"], "shape"]) == {"cached"}
    siamese = rows.loc[["bi", "bow"]]
    fp32 = siamese[siamese.index.get_level_values("backend") != "onnx-int8-dynamic"]
    assert (fp32["cached_agreement_with_pairs"] == 1.0).all() and (siamese["index_s"] > 0).all()
    for model in ("bi", "bow"):  # the cached path's test accuracy is the pair graph's, recorded by compress
        recorded = json.loads((paths.compressed(model, "onnx-fp32") / "metrics.json").read_text())
        assert rows.loc[(model, "onnx-fp32"), "cached_accuracy"] == pytest.approx(recorded["test"]["accuracy"], abs=0.02)
    assert rows.loc[("teacher", "torch-fp32"), "speedup_vs_teacher_fp32"] == pytest.approx(1.0)
    sizes = pd.read_csv(paths.root / "compressed" / "summary.csv").set_index(["model", "backend"])["size_mb"]
    pair_graph = (paths.compressed("bi", "onnx-fp32") / "model.onnx").stat().st_size / 2**20
    assert sizes[("bi", "onnx-fp32")] == pytest.approx(pair_graph, abs=0.005)  # embed/compare graphs not counted
    assert (rows["pairs_scored_per_s"] == rows["queries_per_s"] * 8).all()
    report = report_stage.run(config, paths).path.read_text(encoding="utf-8")
    assert "## Query against 8 cached candidates" in report and re.search(r"\| bi +\| onnx-fp32 +\| cached +\|", report)
    assert "Not measured in this shape:\n\n- bi/onnx-optimized: its build has no embed graph" in report
