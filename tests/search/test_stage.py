"""The search stage in process on the tiny cue-word task: real trials, failures, pruning, outputs, storage errors."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest
import yaml

from tests.search.tiny_search import config_file, parent_run, search_section
from tinykd import cli
from tinykd.config_loading import load_config
from tinykd.errors import ConfigError, DataError
from tinykd.search import objective as objective_module
from tinykd.search import stage
from tinykd.search.objective import EpochReporter, Objective


def test_the_objective_runs_a_real_trial_and_returns_accuracy_and_latency(tmp_path, sentiment_files):
    _, config, paths = parent_run(tmp_path, sentiment_files)
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    accuracy, latency_ms = Objective(config, paths)(trial)

    assert 0.5 < accuracy <= 1.0 and 0 < latency_ms < 1000  # the cue word decides the label
    attrs = trial.study.trials[0].user_attrs
    assert accuracy == attrs["dev_accuracy"] and latency_ms == attrs["latency_ms"] <= attrs["p99_ms"]
    assert attrs["qps"] > 0 and 0 <= attrs["backend_test_accuracy"] <= 1 and attrs["meets_budget"] is True
    assert len(attrs["dev_accuracy_by_epoch"]) >= 1  # the trainer reported every epoch
    assert set(attrs["values"]) == {"students.bow.learning_rate", "students.bow.embedding_dim"}
    trial_dir = paths.root / "search" / "trials" / "0"
    assert (trial_dir / "data").resolve() == paths.data_dir.resolve()  # upstream artifacts are the parent's
    metrics = (trial_dir / "students" / "bow" / "metrics.json").read_text()
    assert f'"embedding_dim": {attrs["values"]["students.bow.embedding_dim"]}' in metrics  # trained with the values
    assert not (trial_dir / "compressed").exists() and not (trial_dir / "students" / "bow" / "model").exists()


def _study_with_a_finished_trial(directions: list[str], pruner: optuna.pruners.BasePruner) -> optuna.Study:
    study = optuna.create_study(directions=directions, pruner=pruner)
    values = [0.95] if len(directions) == 1 else [0.95, 1.0]
    study.add_trial(optuna.create_trial(values=values, intermediate_values={0: 0.9, 1: 0.95},
                                        user_attrs={"dev_accuracy_by_epoch": [0.9, 0.95]}))
    return study


@pytest.mark.parametrize("directions", [["maximize"], ["maximize", "minimize"]])
def test_a_trial_below_the_median_dev_accuracy_is_pruned(tmp_path, sentiment_files, directions):
    _, config, _ = parent_run(tmp_path, sentiment_files, search=search_section(
        pruner="median", pruner_startup_trials=1, pruner_warmup_epochs=1))
    study = _study_with_a_finished_trial(directions, optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1))
    reporter = EpochReporter(study.ask(), config.search)
    reporter(0.5)  # epoch 1 is warm-up: never pruned
    reporter(0.96)  # above the median at epoch 2
    reporter = EpochReporter(study.ask(), config.search)
    reporter(0.5)
    with pytest.raises(optuna.TrialPruned, match="dev accuracy 0.6000 after epoch 2 is below the median"):
        reporter(0.6)


def test_a_failing_trial_is_recorded_with_its_reason_and_the_study_goes_on(tmp_path, sentiment_files, monkeypatch):
    path, config, paths = parent_run(tmp_path, sentiment_files)
    calls, real = [], objective_module.distill_one

    def second_call_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise DataError("train.tsv:3: a bad row the trial cannot learn from")
        return real(*args, **kwargs)

    monkeypatch.setattr(objective_module, "distill_one", second_call_fails)
    result = stage.run(config, paths)

    trials = pd.read_csv(paths.root / "search" / "trials.csv")
    assert list(trials["state"]) == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials.loc[1, "reason"] == "train.tsv:3: a bad row the trial cannot learn from"
    assert "a bad row" in (paths.root / "search" / "trials" / "1" / "error.txt").read_text()
    assert result.log.ran == [0, 1, 2]
    # Trial 0 is the hand-set student (the config's own values), and the summary compares the front with it.
    assert trials.loc[0, "baseline"] and not trials.loc[1:, "baseline"].any()
    assert trials.loc[0, "students.bow.learning_rate"] == 0.01 and trials.loc[0, "students.bow.embedding_dim"] == 16
    assert "Hand-set baseline (trial 0)" in result.summary()
    assert "Hand-set baseline (trial 0)" in (paths.root / "search" / "summary.md").read_text()
    assert "3 trials (2 complete, 1 fail)" in result.summary()

    front = pd.read_csv(paths.root / "search" / "pareto.csv")
    assert set(front["number"]) <= {0, 2} and len(front) >= 1
    for name in ("pareto_front.png", "history.png", "importances.png", "summary.md"):
        assert (paths.root / "search" / name).stat().st_size > 0, name

    # best.yaml is a complete normal config: the hand-set student plus the best trial's as bow-best
    best = load_config(paths.root / "search" / "best.yaml")
    assert [s.name for s in best.students] == ["bow", "bow-best"]
    number = int(result.outputs.best["number"])
    chosen = trials.set_index("number").loc[number]
    assert best.students[1].learning_rate == pytest.approx(chosen["students.bow.learning_rate"])
    assert best.students[1].embedding_dim == chosen["students.bow.embedding_dim"]
    assert best.students[0] == config.students[0] and best.teacher == config.teacher and best.task == config.task
    raw = yaml.safe_load((paths.root / "search" / "best.yaml").read_text())
    assert raw["students"][1]["epochs"] == 3  # every key written out, defaults included

    # A rerun with a larger budget continues the study: the three trials are kept, one more runs.
    bigger = load_config(path, ["search.n_trials=4"])
    again = stage.run(bigger, paths)
    assert again.log.ran == [3]
    kept = pd.read_csv(paths.root / "search" / "trials.csv")
    assert list(kept["state"][:3]) == ["COMPLETE", "FAIL", "COMPLETE"] and len(kept) == 4
    assert kept.loc[:2, "accuracy"].equals(trials["accuracy"])


def test_a_rerun_of_a_finished_study_runs_no_trial(tmp_path, sentiment_files):
    _, config, paths = parent_run(tmp_path, sentiment_files, search=search_section(n_trials=1))
    assert stage.run(config, paths).log.ran == [0]
    assert stage.run(config, paths).log.ran == []


def test_a_named_study_keeps_its_own_outputs_and_trials(tmp_path, sentiment_files):
    """A second study of the task (another search.study_name) writes search/<study>/, not over the first's files."""
    path, config, paths = parent_run(tmp_path, sentiment_files, search=search_section(n_trials=1))
    stage.run(config, paths)
    first = (paths.root / "search" / "pareto.csv").read_text()
    other = load_config(path, ["search.study_name=wider", "search.n_trials=2"])
    assert stage.run(other, paths).log.ran == [0, 1]  # a new study: its own trial numbers from 0
    assert (paths.root / "search" / "pareto.csv").read_text() == first
    assert len(pd.read_csv(paths.root / "search" / "wider" / "trials.csv")) == 2
    assert (paths.root / "search" / "wider" / "trials" / "1").is_dir()
    assert load_config(paths.root / "search" / "wider" / "best.yaml").search.study_name == "wider"
    assert (paths.root / "search" / "study.db").is_file()  # one SQLite file holds both studies


def test_a_changed_space_on_the_same_study_is_a_config_error(tmp_path, sentiment_files):
    path, config, paths = parent_run(tmp_path, sentiment_files, search=search_section(n_trials=1))
    stage.run(config, paths)
    raw = yaml.safe_load(path.read_text())  # (--set cannot index into the space list)
    raw["search"]["space"][0]["high"] = 0.05
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ConfigError, match=r"search.study_name: study 'tiny' in sqlite:///.*study\.db was started with "
                                          r"objectives \['accuracy', 'latency_ms'\] and another search.space"):
        stage.run(load_config(path), paths)


def test_an_unreachable_storage_url_is_a_clear_error_without_the_password(tmp_path, sentiment_files, capsys):
    url = "postgresql://tinykd:s3cret@127.0.0.1:9/study"  # port 9 (discard): nothing listens
    path, config, paths = parent_run(tmp_path, sentiment_files, search=search_section(storage=url))
    with pytest.raises(ConfigError) as caught:
        stage.run(config, paths)
    message = str(caught.value)
    assert message.startswith("search.storage: cannot open the study storage postgresql+psycopg2://tinykd:***@127.0.0.1:9/study: ")
    assert "s3cret" not in message and "refused" in message
    # The CLI prints it as one line and exits 2.
    capsys.readouterr()
    assert cli.main(["search", "--config", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: search.storage: cannot open") and "s3cret" not in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_an_unwritable_sqlite_location_is_a_clear_error(tmp_path, sentiment_files):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    _, config, paths = parent_run(tmp_path, sentiment_files,
                                  search=search_section(storage=f"sqlite:///{blocker}/study.db"))
    with pytest.raises(ConfigError, match=r"search.storage: cannot create the directory of sqlite:///.*file/study\.db"):
        stage.run(config, paths)


def test_a_missing_parent_run_names_the_stage_to_run(tmp_path, sentiment_files):
    config = load_config(config_file(tmp_path, sentiment_files))
    from tinykd.artifacts import RunPaths
    from tinykd.errors import ArtifactError

    with pytest.raises(ArtifactError, match=r"data/summary\.json: missing; run the 'data' stage first"):
        stage.run(config, RunPaths(tmp_path / "nowhere"))
