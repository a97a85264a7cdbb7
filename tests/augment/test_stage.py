"""The augment stage: multiplier rows per source, no copies of the source, reproducible, cached tagging."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import file_task, write_config
from tinykd import data_stage
from tinykd.artifacts import RunPaths
from tinykd.augment import stage
from tinykd.config_loading import load_config
from tinykd.errors import ConfigError

AUGMENT = {"multiplier": 4, "seed": 1, "unk_token": "<unk>",
           "ops": [{"op": "unk", "p": 0.3}, {"op": "pos", "p": 0.3, "weight": 2}, {"op": "nsample"}]}


def _run(tmp_path, files, augment=AUGMENT, runs="run", **task):
    config = load_config(write_config(tmp_path / "c.yaml", {"task": file_task(files, **task), "augment": augment}))
    paths = RunPaths(tmp_path / runs)
    data_stage.run(config, paths)
    return stage.run(config, paths), paths


def test_rows_per_source_and_no_copies(sentiment_files, tmp_path):
    result, paths = _run(tmp_path, sentiment_files)
    rows = pd.read_parquet(paths.augmented)
    train = pd.read_parquet(paths.split("train"))
    assert list(rows.columns) == ["text_a", "source_row", "op"]
    assert result.new_rows + result.dropped_duplicates == 4 * len(train)
    assert rows.groupby("source_row").size().max() <= 4
    assert set(rows["op"]) == {"unk", "pos", "nsample"}
    sources = train["text_a"].to_numpy()[rows["source_row"]]
    assert (rows["text_a"].to_numpy() != sources).all()  # never a copy of its source
    assert not rows.duplicated(["source_row", "text_a"]).any()  # nor twice the same new row
    unk_rows = rows[rows["op"] == "unk"]
    assert unk_rows["text_a"].str.contains("<unk>").all()
    nsample = rows[rows["op"] == "nsample"]
    assert all(new in src for new, src in zip(nsample["text_a"], train["text_a"].to_numpy()[nsample["source_row"]]))


def test_same_config_same_rows_and_tagging_is_cached(sentiment_files, tmp_path):
    _, paths = _run(tmp_path, sentiment_files)
    again, other = _run(tmp_path, sentiment_files, runs="again")
    assert pd.read_parquet(paths.augmented).equals(pd.read_parquet(other.augmented))
    tagged_at = paths.tagged_train.stat().st_mtime_ns
    changed = dict(AUGMENT, multiplier=2)
    result, paths = _run(tmp_path, sentiment_files, augment=changed)
    assert not result.skipped and paths.tagged_train.stat().st_mtime_ns == tagged_at  # only the cheap part re-ran
    assert _run(tmp_path, sentiment_files, augment=changed)[0].skipped


def test_pairs_stay_pairs(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("text_a\ttext_b\tlabel\n" + "".join(
        f"酒店的服务很好吗{i}\t酒店服务好不好{i}\t{i % 2}\n" for i in range(20)), encoding="utf-8")
    files = {"train": path, "dev": path, "test": path}
    result, paths = _run(tmp_path, files, kind="pair", columns={"text_b": "text_b"})
    rows = pd.read_parquet(paths.augmented)
    assert list(rows.columns) == ["text_a", "text_b", "source_row", "op"] and result.new_rows > 20
    assert (rows["text_a"] != "").all() and (rows["text_b"] != "").all()


@pytest.mark.parametrize("augment, message", [
    ({"ops": [{"op": "shuffle"}]}, "does not match any of the expected tags: 'unk', 'pos', 'nsample', 'textattack', 'bm25_pair', 'random_pair'"),
    ({"ops": [{"op": "unk", "p": 1.5}]}, "augment.ops.0.p: Input should be less than or equal to 1"),
    ({"ops": [{"op": "pos", "p": -0.1}]}, "augment.ops.0.p: Input should be greater than or equal to 0"),
    ({"multiplier": -1}, "augment.multiplier: Input should be greater than or equal to 0"),
    ({"multiplier": 0}, "augment: multiplier 0 makes no augmented rows and augment.unlabeled lists no pool"),
    ({"ops": []}, "augment.ops: List should have at least 1 item"),
    ({"ops": [{"op": "unk"}, {"op": "bm25_pair"}]}, "augment.ops.1: op bm25_pair makes pairs of texts, but task.kind is "
                                                   "'single'"),
])
def test_bad_augment_config_is_a_clear_error(sentiment_files, tmp_path, augment, message):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "augment": augment})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_labelling_augmented_rows_needs_an_augment_section(sentiment_files, tmp_path):
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "label": {"splits": ["augmented"]}})
    with pytest.raises(ConfigError, match="label.splits includes 'augmented' but the config has no augment section"):
        load_config(path)


def test_textattack_op_without_its_environment_is_a_clear_error(sentiment_files, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYKD_TEXTATTACK_PYTHON", str(tmp_path / "no-such-python"))
    try:
        import textattack  # noqa: F401
        pytest.skip("textattack imports in this environment")
    except ImportError:
        pass
    augment = {"unk_token": "<unk>", "ops": [{"op": "textattack", "transformation": "WordSwapRandomCharacterDeletion"}]}
    with pytest.raises(ConfigError, match="needs the textattack environment: run `make textattack-env`"):
        _run(tmp_path, sentiment_files, augment=augment)


@pytest.mark.textattack
def test_textattack_transformation_through_its_environment(sentiment_files, tmp_path):
    from tinykd.augment.textattack_op import textattack_python

    if textattack_python() is None:
        pytest.skip("no textattack environment (make textattack-env)")
    augment = {"multiplier": 1, "unk_token": "<unk>",
               "ops": [{"op": "textattack", "transformation": "WordSwapRandomCharacterDeletion"}]}
    result, paths = _run(tmp_path, sentiment_files, augment=augment)
    rows = pd.read_parquet(paths.augmented)
    train = pd.read_parquet(paths.split("train"))
    assert result.new_rows > 0 and set(rows["op"]) == {"textattack:WordSwapRandomCharacterDeletion"}
    for new, source in zip(rows["text_a"], train["text_a"].to_numpy()[rows["source_row"]]):
        assert len(new) == len(source) - 1  # one character deleted
