"""`label.engine: ray`: the Ray Data actor pool writes what the local engine writes, resumes a killed run from its
finished chunks, reports per-core rates, and says how to install Ray where it is missing.

Ray's start-up (a local cluster, then actors that each import torch and load the teacher) takes seconds, so one
slow test covers the whole path end to end: kill, resume, compare with the local engine, read the summary."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from typing import get_args

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, file_task, install_as_teacher, sentiment_rows, write_config, write_tsv
from tinykd import cli, data_stage
from tinykd.artifacts import RunPaths
from tinykd.config import label as label_config
from tinykd.config_loading import load_config
from tinykd.errors import ConfigError
from tinykd.teacher import labeling
from tinykd.teacher.encoding import encode_rows


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module's in-process runs: the engine joins a running session and leaves it running."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (make ray)")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def _labelled_run(tmp_path, name: str, sections: dict, teacher) -> tuple[RunPaths, labeling.LabelResult]:
    config = load_config(write_config(tmp_path / f"{name}.yaml", sections))
    paths = RunPaths(tmp_path / name)
    data_stage.run(config, paths)
    install_as_teacher(paths, teacher)
    return paths, labeling.run(config, paths)


def _assert_same_labels(paths: RunPaths, reference: RunPaths, splits=("train", "dev", "test")) -> None:
    for split in splits:
        got, expected = pd.read_parquet(paths.labels(split)), pd.read_parquet(reference.labels(split))
        assert list(got.columns) == list(expected.columns)
        assert got.drop(columns="logits").equals(expected.drop(columns="logits"))  # same rows, same order
        np.testing.assert_allclose(np.stack(got["logits"]), np.stack(expected["logits"]), atol=1e-5, err_msg=split)


def test_an_actor_loads_the_teacher_from_its_files_as_from_its_directory(tiny_teacher, tmp_path):
    # What a joined cluster's actors get (its nodes may not see this disk): the same teacher, the same logits, on
    # torch and on the ONNX graph the driver checked.
    from tinykd.teacher.label_engine import load_teacher
    from tinykd.teacher.onnx_labeler import onnx_teacher
    from tinykd.teacher.ray_labeling import CHUNK, ROW, TeacherLabeler, teacher_files

    rows = pd.DataFrame({"text_a": [text for _, text in sentiment_rows(9)], CHUNK: 0, ROW: np.arange(9)})
    kwargs = {"max_length": 32, "batch_size": 4, "threads": 1}
    from_dir = TeacherLabeler(str(tiny_teacher), None, **kwargs)(rows)
    from_files = TeacherLabeler(teacher_files(tiny_teacher), None, **kwargs)(rows)
    assert from_dir["logits"].shape == (9, 2) and from_dir["logits"].dtype == np.float32
    np.testing.assert_array_equal(from_dir["logits"], from_files["logits"])
    np.testing.assert_array_equal(from_dir[ROW], np.arange(9))

    tokenizer, model = load_teacher(tiny_teacher)
    graph = onnx_teacher(model, tokenizer, encode_rows(tokenizer, rows, 32), tmp_path).graph
    on_graph = TeacherLabeler(str(tiny_teacher), str(graph), **kwargs)(rows)
    on_sent_graph = TeacherLabeler(teacher_files(tiny_teacher), graph.read_bytes(), **kwargs)(rows)
    np.testing.assert_array_equal(on_graph["logits"], on_sent_graph["logits"])
    np.testing.assert_allclose(on_graph["logits"], from_dir["logits"], atol=1e-4)


def test_engines_are_the_configs_choices():
    assert set(labeling.ENGINES) == set(get_args(label_config.LabelConfig.model_fields["engine"].annotation))


def test_ray_engine_without_ray_stops_check_and_label_with_the_install_line(sentiment_files, tmp_path, monkeypatch,
                                                                            capsys):
    monkeypatch.setattr(label_config, "installed", lambda package: package != "ray")
    config_path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files), "label": {"engine": "ray"}})

    assert cli.main(["check", "--config", str(config_path), "--runs-dir", str(tmp_path / "runs")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and f"{config_path}:" in error and "label.engine" in error
    assert "make ray" in error and "pip install 'tinykd[ray]'" in error

    # Before any work: no data split exists, yet the error is the missing extra, not the missing artifact.
    with pytest.raises(ConfigError, match="make ray"):
        labeling.run(load_config(config_path), RunPaths(tmp_path / "runs" / "tiny"))
    config_path.write_text(config_path.read_text().replace("engine: ray", "engine: local"))
    assert cli.main(["check", "--config", str(config_path)]) == 0


def _label_command(config, runs, *overrides: str) -> list[str]:
    overrides = [arg for override in overrides for arg in ("--set", override)]
    return [sys.executable, "-m", "tinykd", "label", "--config", str(config), "--runs-dir", str(runs), *overrides]


def _finish(command: list[str]) -> str:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_killed_ray_run_resumes_from_its_finished_chunks(ray_session, tiny_teacher, tmp_path, capsys):
    rows = sentiment_rows(1200, seed=3)
    files = {"train": write_tsv(tmp_path / "train.tsv", rows[:1000]),
             "dev": write_tsv(tmp_path / "dev.tsv", rows[1000:1100]),
             "test": write_tsv(tmp_path / "test.tsv", rows[1100:])}
    label = {"chunk_rows": 40, "batch_size": 1, "engine": "ray", "ray_actors": 2}
    sections = {"task": file_task(files), "label": label}
    config = write_config(tmp_path / "c.yaml", sections)
    runs = tmp_path / "runs"
    paths = RunPaths(runs / "tiny")
    data_stage.run(load_config(config), paths)
    install_as_teacher(paths, tiny_teacher)

    # The killed run joins the module's Ray as a cluster (no Ray start-up to wait for; its teacher travels through
    # the object store); Ray ends a dead driver's actors. Its own session: the kill takes any child with it.
    cluster = f"label.ray_address={ray_session.get_runtime_context().gcs_address}"
    process = subprocess.Popen(_label_command(config, runs, cluster), cwd=ROOT, start_new_session=True,
                               env=dict(os.environ, OMP_NUM_THREADS="1"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = paths.label_parts("train")
    try:
        deadline = time.monotonic() + 120
        while len(list(parts.glob("part-*.parquet"))) < 2:
            assert process.poll() is None, "the label stage finished before it could be killed; make it longer"
            assert time.monotonic() < deadline, "timed out waiting for the label stage to write chunks"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not paths.labels("train").exists()
    finished = len(list(parts.glob("part-*.parquet")))

    # The rerun starts (and stops) a Ray of its own: the default `ray_address`.
    output = _finish(_label_command(config, runs))
    reused = int(output.split(" chunks reused from an earlier run")[0].rsplit(", ", 1)[-1])
    assert reused >= finished >= 2

    assert ray_session.cluster_resources()["CPU"] == 2  # the joined cluster outlived its killed driver

    # The resumed artifact equals a clean run's, on the local engine: the engines agree (same rows, order, columns).
    local_sections = sections | {"label": sections["label"] | {"engine": "local", "batch_size": 64}}
    fresh, _ = _labelled_run(tmp_path, "fresh", local_sections, tiny_teacher)
    _assert_same_labels(paths, fresh)

    # The rerun's rates: 2 single-threaded actors, and 10 M rows projected from the per-core rate.
    summary = json.loads((paths.label_dir / "summary.json").read_text())
    assert (summary["engine"], summary["workers"], summary["threads"], summary["cores"]) == ("ray", 2, 1, 2)
    per_core = summary["rows_per_second_per_core"]
    assert per_core > 0 and summary["rows_per_second"] > 0
    hours = summary["projection"]["hours_on_cores"]
    assert summary["projection"]["rows"] == 10_000_000 and list(hours) == ["2", "16", "64"]
    assert hours["2"] == pytest.approx(10_000_000 / (per_core * 2) / 3600, rel=0.01)
    assert hours["16"] == pytest.approx(hours["2"] / 8, rel=0.01)
    assert summary["runtime"]["runtime"] == "onnx" and summary["runtime"]["max_abs_logit_diff_vs_torch"] <= 1e-4
    assert "ray engine on onnx, 2 cores" in output and "rows/s per core" in output and "10M rows:" in output
    # Up to date: known from the fingerprints before any engine starts (so in this process, without a second Ray).
    capsys.readouterr()
    assert cli.main(["label", "--config", str(config), "--runs-dir", str(runs)]) == 0
    assert "label: up to date" in capsys.readouterr().out
