"""best.yaml is written from the config as the user wrote it: `${VAR:-default}` paths and typed labels survive."""

from __future__ import annotations

import shutil

import optuna
import yaml

from tests.conftest import file_task
from tests.search.tiny_search import config_file
from tinykd.config_loading import load_config
from tinykd.search.outputs import best_config


def test_best_yaml_keeps_env_paths_typed_labels_and_overrides(tmp_path, sentiment_files, monkeypatch):
    monkeypatch.delenv("TINYKD_TEST_DATA", raising=False)
    data = sentiment_files["train"].parent
    files = {split: f"${{TINYKD_TEST_DATA:-{data}}}/{split}.tsv" for split in ("train", "dev", "test")}
    path = config_file(tmp_path, sentiment_files, task=file_task(files))
    config = load_config(path, ["search.n_trials=7"])
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(
        params={}, distributions={}, values=[0.9, 1.0],
        user_attrs={"values": {"students.bow.learning_rate": 0.02, "students.bow.embedding_dim": 24}}))

    raw = best_config(config, study, 0)

    assert raw["task"]["source"]["train"] == f"${{TINYKD_TEST_DATA:-{data}}}/train.tsv"  # not expanded
    assert raw["task"]["labels"] == [0, 1]  # ints, as written (a dump would write '0', '1')
    assert raw["search"]["n_trials"] == 7  # the --set override is kept
    assert "teacher" not in raw  # sections the user left out stay out
    best = raw["students"][-1]
    assert (best["name"], best["learning_rate"], best["embedding_dim"]) == ("bow-best", 0.02, 24)
    written = tmp_path / "best.yaml"
    written.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for split, source in sentiment_files.items():
        shutil.copy(source, elsewhere / f"{split}.tsv")
    monkeypatch.setenv("TINYKD_TEST_DATA", str(elsewhere))
    moved = load_config(written)  # the env override still works on the written file
    assert str(moved.task.source.train) == str(elsewhere / "train.tsv")
