"""Stage `load` on a tiny run, in-process: results, the highest VALID load per bound, load verdicts against the
budget, a resumed stage that reuses its finished runs, and clear errors before any run."""

from __future__ import annotations

import matplotlib.image as mpimg
import pandas as pd
import pytest

from tests.serving.tiny_run import served_run
from tinykd.benchmarks.report_load import load_section
from tinykd.errors import ArtifactError, ConfigError
from tinykd.serving import load_stage

pytest.importorskip("mlperf_loadgen", reason="the serve extra is not installed (make serve-env)")

LOAD = {"targets": [{"model": "teacher", "backend": "torch-fp32"}], "systems": ["inprocess"], "p99_ms": [1000.0, 0.001],
        "offered_qps": [300], "min_duration_s": 1.0, "min_query_count": 600, "max_duration_s": 20.0, "rows": 40}
SERVE = {"threads": 1, "max_batch_size": 8, "batch_wait_timeout_s": 0.002}
BUDGET = {"qps": 1000, "p99_ms": 1000.0, "batch": 1, "threads": 1}


def test_load_writes_runs_summary_and_verdicts_and_resumes(tmp_path, tiny_teacher, sentiment_files, monkeypatch):
    config, paths = served_run(tmp_path, tiny_teacher, sentiment_files, load=LOAD | {"ceiling": True}, serve=SERVE,
                               budget=BUDGET, bench={"batch_sizes": [1], "threads": [1]})
    result = load_stage.run(config, paths)
    everything = pd.read_parquet(paths.root / "load" / "results.parquet")
    assert result.runs == 4  # one offered load at each of two bounds, for the teacher and for no model (the ceiling)
    ceiling = everything[everything["model"] == "no-model"]
    assert list(ceiling["backend"]) == ["none", "none"] and ceiling["valid"].tolist() == [False, True]  # bounds run tightest first
    runs = everything[everything["model"] == "teacher"]
    assert len(runs) == 2
    assert set(runs["p99_bound_ms"]) == {1000.0, 0.001}
    loose, tight = (runs[runs["p99_bound_ms"] == b].iloc[0] for b in (1000.0, 0.001))
    assert loose["valid"] and not tight["valid"] and tight["p99_ms"] > 0.001  # the flip: nothing answers in 1 us
    assert loose["mean_batch"] >= 1 and sum(size * n for size, n in eval(loose["batch_sizes"]).items()) == loose["queries"]
    assert loose["queries"] >= 600 and loose["threads"] == 1 and loose["cores"] >= 1 and loose["cpu"]
    summary = pd.read_csv(paths.root / "load" / "summary.csv").query("model == 'teacher'")
    assert summary.set_index("p99_bound_ms")["highest_valid_qps"].to_dict()[1000.0] == 300
    assert pd.isna(summary.set_index("p99_bound_ms")["highest_valid_qps"].to_dict()[0.001])
    verdicts = pd.read_csv(paths.root / "load" / "verdicts.csv")
    assert list(verdicts["model"]) == ["teacher"]  # no verdict for no model
    verdict = verdicts.iloc[0]
    # 300 qps per replica at p99 <= 1 s: the budget's 1000 qps needs 4 replicas of 1 thread
    assert (verdict["sustainable_qps"], verdict["replicas_needed"], verdict["cores_needed"]) == (300, 4, 4)

    # The report's "Under load" section from these files: the summary, the verdicts, a real plot.
    section = load_section(paths, tmp_path)
    markdown = "\n".join(section.markdown())
    assert "## Under load" in markdown and "| teacher " in markdown and "replicas_needed" in markdown
    assert mpimg.imread(section.plot).shape[1] > 500 and section.html().count("data:image/png;base64,") == 1

    # A second run with the same settings reuses the finished runs: LoadGen is not started again.
    monkeypatch.setattr(load_stage, "run_point", lambda *a, **k: pytest.fail("a finished run was run again"))
    assert load_stage.run(config, paths).runs == 4
    # Targets, bounds and search settings only choose which runs happen: a target judged at one of its bounds, with
    # another search setting, still finds its finished run.
    narrowed = config.load.model_copy(update={"search_steps": 5, "targets": [
        config.load.targets[0].model_copy(update={"p99_ms": [1000.0]})]})
    assert load_stage.run(config.model_copy(update={"load": narrowed}), paths).runs == 3  # the teacher's 1, no model's 2
    # A run finished earlier at a load this search does not visit (here: the 300 qps run again at 600, as if an earlier
    # search had found it VALID) is in the results and the summary: the runs at a bound are every run with these settings.
    points = pd.read_parquet(paths.root / "load" / "points.parquet")
    earlier = points[(points["model"] == "teacher") & (points["p99_bound_ms"] == 1000.0)].assign(offered_qps=600.0)
    pd.concat([points, earlier]).to_parquet(paths.root / "load" / "points.parquet")
    assert load_stage.run(config, paths).runs == 5
    summary = pd.read_csv(paths.root / "load" / "summary.csv").query("model == 'teacher'")
    assert summary.set_index("p99_bound_ms")["highest_valid_qps"].to_dict()[1000.0] == 600
    teacher = pd.read_parquet(paths.root / "load" / "results.parquet").query("model == 'teacher'")
    assert teacher.query("p99_bound_ms == 1000.0")["offered_qps"].tolist() == [300.0, 600.0]


def test_a_missing_target_or_section_is_one_line_before_any_run(tmp_path, tiny_teacher, sentiment_files):
    config, paths = served_run(tmp_path, tiny_teacher, sentiment_files,
                               load=LOAD | {"targets": [{"model": "teacher", "backend": "onnx-fp32"}]})
    with pytest.raises(ArtifactError, match=r"compressed/teacher/onnx-fp32: missing; run the 'compress' stage"):
        load_stage.run(config, paths)
    config, paths = served_run(tmp_path / "2", tiny_teacher, sentiment_files)
    with pytest.raises(ConfigError, match="load: the config has no load section"):
        load_stage.run(config, paths)
    config, paths = served_run(tmp_path / "3", tiny_teacher, sentiment_files, load=LOAD | {"p99_ms": None})
    with pytest.raises(ConfigError, match="set load.p99_ms or a budget section"):
        load_stage.run(config, paths)
