"""`augment.unlabeled`: the pool's rows join augmented.parquet as op `pool` (`pool:<name>` for a named source),
without copies of dev, test or train texts, every drop counted in augment/summary.json; a bad pool path, column or
name fails when the config loads."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import file_task, sentiment_rows, write_config, write_tsv
from tinykd import data_stage
from tinykd.artifacts import RunPaths
from tinykd.augment import stage
from tinykd.cli import main
from tinykd.config_loading import load_config
from tinykd.errors import ConfigError

DEV_TEXT = "酒店WiFi很好，5星！"
TEST_TEXT = "Kindle屏幕不错。推荐。"
FRESH = ["新的评论一，物流快。", "新的评论二，质量好。", "新的评论三，还会再买。", "新的评论四，包装差。"]


@pytest.fixture
def task_files(tmp_path):
    """The synthetic sentiment task with one dev and one test text a pool can copy in many guises."""
    rows = sentiment_rows(360)
    return {"train": write_tsv(tmp_path / "train.tsv", rows[:240]),
            "dev": write_tsv(tmp_path / "dev.tsv", rows[240:300] + [(1, DEV_TEXT)]),
            "test": write_tsv(tmp_path / "test.tsv", rows[300:] + [(1, TEST_TEXT)])}


def _pool(tmp_path, rows: list[tuple[str, str]], name="pool.tsv"):
    path = tmp_path / name
    path.write_text("text_a\tdomain\n" + "".join(f"{text}\t{domain}\n" for text, domain in rows), encoding="utf-8")
    return path


def _planted(tmp_path):
    """Copies of dev, test and train texts (exact and disguised), duplicates, off-domain and fresh rows."""
    train_text = sentiment_rows(360)[0][1]
    return _pool(tmp_path, [
        (DEV_TEXT, "hotel"),
        ("酒店ＷｉＦｉ很好，５星！", "hotel"),  # full-width
        ("酒店wifi很好 5星", "hotel"),  # case, space, no punctuation
        (TEST_TEXT, "book"),
        ("ＫＩＮＤＬＥ 屏幕不错!推荐!", "book"),  # full-width, case, other punctuation
        ("kindle屏幕不错……推荐", "book"),
        (train_text, "hotel"),  # in train
        (" ".join(train_text), "hotel"),  # in train, spaced out
        (FRESH[0], "book"),
        (FRESH[0].replace("，", ","), "book"),  # a duplicate within the pool
        (FRESH[1], "hotel"),
        (FRESH[2], "hotel"),
        (FRESH[3], "book"),
        ("外卖很快，很好吃。", "waimai"),
    ])


def _run(tmp_path, files, augment, runs="run", **task):
    config = load_config(write_config(tmp_path / "c.yaml", {"task": file_task(files, **task), "augment": augment}))
    paths = RunPaths(tmp_path / runs)
    data_stage.run(config, paths)
    return stage.run(config, paths), paths


def test_guard_drops_and_counts_copies_of_dev_test_and_train(task_files, tmp_path):
    pool = {"path": str(_planted(tmp_path)), "domain_column": "domain", "exclude_domains": ["waimai"]}
    result, paths = _run(tmp_path, task_files, {"multiplier": 0, "unlabeled": [pool]})
    rows = pd.read_parquet(paths.augmented)
    assert rows["text_a"].tolist() == FRESH and set(rows["op"]) == {"pool"}
    assert rows["domain"].tolist() == ["book", "hotel", "hotel", "book"]
    assert rows["source_row"].tolist() == [10, 12, 13, 14]  # their lines in the pool file
    summary = json.loads(paths.augment_summary.read_text())
    assert summary["pool"] == [{
        "path": pool["path"], "op": "pool", "read": 14, "after_domain_filter": 13, "dropped_empty": 0,
        "dropped_dev_exact": 1, "dropped_dev_normalised": 2, "dropped_test_exact": 1, "dropped_test_normalised": 2,
        "dropped_in_train": 2, "dropped_duplicate": 1, "after_guard": 4, "kept": 4,
    }]
    assert summary["pool_rows"] == 4 and summary["pool_dropped_leaks"] == 6 and summary["new_rows"] == 0
    assert summary["rows_by_op"] == {"pool": 4}
    assert (result.pool_rows, result.new_rows, result.source_rows) == (4, 0, 0)  # pool only: nothing was tagged
    assert not paths.tagged_train.exists()


def test_domains_and_max_rows(task_files, tmp_path):
    path = _pool(tmp_path, [(f"第{i}条评论，{'书' if i % 3 else '酒店'}不错。", "book" if i % 3 else "hotel")
                            for i in range(30)])
    only_books = {"path": str(path), "domain_column": "domain", "domains": ["book"], "max_rows": 5, "seed": 3}
    _, paths = _run(tmp_path, task_files, {"multiplier": 0, "unlabeled": [only_books]})
    rows = pd.read_parquet(paths.augmented)
    assert len(rows) == 5 and set(rows["domain"]) == {"book"}
    assert rows["source_row"].is_monotonic_increasing  # the sample keeps file order
    counts = json.loads(paths.augment_summary.read_text())["pool"][0]
    assert (counts["read"], counts["after_domain_filter"], counts["after_guard"], counts["kept"]) == (30, 20, 20, 5)

    _, again = _run(tmp_path, task_files, {"multiplier": 0, "unlabeled": [only_books]}, runs="again")
    assert pd.read_parquet(again.augmented).equals(rows)  # a seeded sample
    _, other = _run(tmp_path, task_files, {"multiplier": 0, "unlabeled": [dict(only_books, seed=4)]}, runs="other")
    assert pd.read_parquet(other.augmented)["text_a"].tolist() != rows["text_a"].tolist()


def test_a_later_source_does_not_repeat_an_earlier_one(task_files, tmp_path):
    first = _pool(tmp_path, [(FRESH[0], "a"), (FRESH[1], "a")], "first.tsv")
    second = _pool(tmp_path, [(FRESH[1] + " ", "b"), (FRESH[2], "b")], "second.tsv")
    _, paths = _run(tmp_path, task_files, {"multiplier": 0, "unlabeled": [{"path": str(first)}, {"path": str(second)}]})
    assert pd.read_parquet(paths.augmented)["text_a"].tolist() == FRESH[:3]
    counts = json.loads(paths.augment_summary.read_text())["pool"]
    assert [c["kept"] for c in counts] == [2, 1] and counts[1]["dropped_duplicate"] == 1
    assert counts[0]["path"] == str(first) and counts[1]["path"] == str(second)


def test_a_named_source_gets_its_own_op(task_files, tmp_path):
    """One pool file split by domain into two entries, one named: one augment run serves both sides of an ablation."""
    path = str(_planted(tmp_path))
    unlabeled = [{"path": path, "domain_column": "domain", "exclude_domains": ["waimai"]},
                 {"path": path, "domain_column": "domain", "domains": ["waimai"], "name": "waimai"}]
    result, paths = _run(tmp_path, task_files, {"multiplier": 0, "unlabeled": unlabeled})
    rows = pd.read_parquet(paths.augmented)
    assert rows["op"].tolist() == ["pool"] * 4 + ["pool:waimai"]
    assert rows["text_a"].tolist() == [*FRESH, "外卖很快，很好吃。"] and rows["domain"].tolist()[-1] == "waimai"
    summary = json.loads(paths.augment_summary.read_text())
    assert summary["rows_by_op"] == {"pool": 4, "pool:waimai": 1}
    assert [(c["path"], c["op"], c["read"], c["after_domain_filter"], c["kept"]) for c in summary["pool"]] == [
        (path, "pool", 14, 13, 4), (path, "pool:waimai", 14, 1, 1)]
    assert summary["pool_rows"] == result.pool_rows == 5


def test_names_leave_the_stamp_of_an_unnamed_pool_as_it_was(task_files, tmp_path):
    """A run from before sources had names stays up to date (no re-augment, no relabelling); naming one re-runs."""
    from tinykd.artifacts import fingerprint
    from tinykd.augment.unlabeled_pool import pool_digest

    path = str(_planted(tmp_path))
    result, paths = _run(tmp_path, task_files, {"multiplier": 0, "unlabeled": [{"path": path}]})
    spec = load_config(tmp_path / "c.yaml").augment
    before_names = spec.model_dump(mode="json")
    for source in before_names["unlabeled"]:
        del source["name"]
    stamp = json.loads(paths.augment_summary.read_text())["fingerprint"]
    assert stamp == fingerprint(before_names, None, json.loads(paths.data_summary.read_text())["fingerprint"],
                                pool_digest(spec.unlabeled))
    named, paths = _run(tmp_path, task_files, {"multiplier": 0, "unlabeled": [{"path": path, "name": "all"}]})
    assert not named.skipped and set(pd.read_parquet(paths.augmented)["op"]) == {"pool:all"}


def test_a_bad_or_repeated_pool_name_is_one_clear_error(task_files, tmp_path, capsys):
    pool = str(_planted(tmp_path))

    def check(unlabeled: list[dict]) -> str:
        config = write_config(tmp_path / "c.yaml", {"task": file_task(task_files),
                                                    "augment": {"multiplier": 0, "unlabeled": unlabeled}})
        assert main(["check", "--config", str(config)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0
        return err

    config = tmp_path / "c.yaml"
    err = check([{"path": pool, "name": "wai mai"}])
    line = config.read_text().splitlines().index("    name: wai mai") + 1
    assert (f"{config}:{line}: augment.unlabeled.0.name: a pool name may hold only letters, digits, '_' and '-' "
            "(its rows get op 'pool:<name>') (got 'wai mai')") in err

    err = check([{"path": pool, "name": "w"}, {"path": pool}, {"path": pool}, {"path": pool, "name": "w"}])
    line = [i for i, text in enumerate(config.read_text().splitlines(), 1) if text == "    name: w"][1]
    assert (f"{config}:{line}: augment: unlabeled.3.name: duplicate pool name 'w' (also unlabeled.0.name)") in err

    # Unnamed sources share op `pool`; names only have to differ from each other.
    unlabeled = [{"path": pool}, {"path": pool}, {"path": pool, "name": "a_1-B"}, {"path": pool, "name": "pool"}]
    config = load_config(write_config(tmp_path / "ok.yaml", {"task": file_task(task_files),
                                                             "augment": {"multiplier": 0, "unlabeled": unlabeled}}))
    assert config.augment.row_ops == ["pool", "pool:a_1-B", "pool:pool"]


def test_ops_and_pool_together_and_a_changed_pool_reruns(task_files, tmp_path):
    path = _pool(tmp_path, [(text, "book") for text in FRESH])
    augment = {"multiplier": 1, "unk_token": "<unk>", "unlabeled": [{"path": str(path), "format": "tsv"}]}
    result, paths = _run(tmp_path, task_files, augment)
    rows = pd.read_parquet(paths.augmented)
    assert list(rows.columns) == ["text_a", "source_row", "op", "source", "domain"]
    ops = rows[rows["op"] != "pool"]
    assert len(ops) == result.new_rows > 200 and set(ops["source"]) == {"train"} and set(ops["domain"]) == {""}
    assert rows[rows["op"] == "pool"]["text_a"].tolist() == FRESH and result.pool_rows == 4
    assert _run(tmp_path, task_files, augment)[0].skipped

    _pool(tmp_path, [(text, "book") for text in FRESH[:3]])  # same path, new content
    result, paths = _run(tmp_path, task_files, augment)
    assert not result.skipped and result.pool_rows == 3


def test_augmented_rows_that_copy_a_dev_text_are_retried_and_counted(tmp_path):
    # Every train text starts with a dev text: n-sampling often cuts out exactly that span.
    train = [(i % 2, f"房间很好{word}") for i, word in enumerate(["早餐", "价格", "服务", "位置"] * 10)]
    files = {"train": write_tsv(tmp_path / "train.tsv", train),
             "dev": write_tsv(tmp_path / "dev.tsv", [(1, "房间很好！"), (0, "早餐很差")]),
             "test": write_tsv(tmp_path / "test.tsv", [(1, "价格"), (0, "太贵")])}
    result, paths = _run(tmp_path, files, {"multiplier": 3, "unk_token": "<unk>", "ops": [{"op": "nsample"}]})
    leaks = json.loads(paths.augment_summary.read_text())["augmented_leaks"]
    assert leaks["dev_normalised"] > 0 and leaks["dev_exact"] == 0 and leaks["test_exact"] > 0
    texts = set(pd.read_parquet(paths.augmented)["text_a"])
    assert texts and not texts & {"房间很好", "价格"}


def test_a_pool_that_is_not_there_is_a_clear_error_before_any_work(task_files, tmp_path, capsys):
    def config(pool: dict, **augment):
        return write_config(tmp_path / "c.yaml", {"task": file_task(task_files),
                                                  "augment": {"multiplier": 0, "unlabeled": [pool], **augment}})

    missing = config({"path": str(tmp_path / "no-such.tsv")})
    assert main(["check", "--config", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{missing}:" in err
    assert f"augment.unlabeled.0.path: file not found: {tmp_path / 'no-such.tsv'}" in err

    pool = str(_planted(tmp_path))
    for bad, message in [
        ({"path": pool, "text_column": "review"},
         rf"augment.unlabeled.0.text_column: 'review' is not a column of {pool} \(its columns: text_a, domain\)"),
        ({"path": pool, "domain_column": "site"}, "augment.unlabeled.0.domain_column: 'site' is not a column of"),
        ({"path": pool, "domains": ["book"]}, "augment.unlabeled.0: domains / exclude_domains need domain_column"),
        ({"path": str(tmp_path / "c.yaml")}, "augment.unlabeled.0.format: cannot infer the format of"),
        ({"path": pool, "max_rows": 0}, "augment.unlabeled.0.max_rows: Input should be greater than or equal to 1"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config(config(bad))


def test_a_pool_needs_a_single_text_task(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("text_a\ttext_b\tlabel\n" + "".join(f"问题{i}\t问题{i}吗\t{i % 2}\n" for i in range(20)),
                    encoding="utf-8")
    pool = _pool(tmp_path, [("一个问题", "q")])
    config = write_config(tmp_path / "c.yaml", {
        "task": file_task({"train": path, "dev": path, "test": path}, kind="pair", columns={"text_b": "text_b"}),
        "augment": {"unlabeled": [{"path": str(pool)}]}})
    with pytest.raises(ConfigError, match="augment.unlabeled: a pool gives single texts, but task.kind is 'pair'"):
        load_config(config)


def test_the_default_text_column_is_checked_too(task_files, tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"review": "很好"}\n', encoding="utf-8")
    config = write_config(tmp_path / "c.yaml", {"task": file_task(task_files),
                                                "augment": {"unlabeled": [{"path": str(pool)}]}})
    with pytest.raises(ConfigError, match="augment.unlabeled.0.text_column: 'text_a' is not a column of .*review"):
        load_config(config)


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_every_table_format_reads_by_its_suffix(task_files, tmp_path, suffix):
    frame = pd.DataFrame({"id": range(4), "review": FRESH, "site": ["a", "b", "a", "b"]})
    path = tmp_path / f"pool.{suffix}"
    if suffix == "csv":
        frame.to_csv(path, index=False)
    elif suffix == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path, index=False)
    pool = {"path": str(path), "text_column": "review", "domain_column": "site", "domains": ["b"]}
    _, paths = _run(tmp_path, task_files, {"multiplier": 0, "unlabeled": [pool]})
    rows = pd.read_parquet(paths.augmented)
    assert rows["text_a"].tolist() == FRESH[1::2] and rows["domain"].tolist() == ["b", "b"]
