"""Stage `report` on a tiny bench run: the numbers come from results.parquet, plots are real PNGs."""

from __future__ import annotations

import base64
import re

import matplotlib.image as mpimg
import pandas as pd
import pytest

from tests.benchmarks.test_stage import BENCH, _config, _run_dir
from tinykd.benchmarks import gemm_peak, report, stage
from tinykd.errors import ArtifactError


def test_report_tables_match_the_bench_results_and_embed_the_plots(tmp_path, sentiment_files, tiny_teacher,
                                                                   monkeypatch):
    monkeypatch.setattr(gemm_peak, "GEMM_SIZES", (128,))
    config = _config(tmp_path, sentiment_files, compress={"backends": ["torch-fp32"]}, bench={**BENCH, "floor": True},
                     budget={"qps": 1, "p99_ms": 10000, "batch": 4, "threads": 1})
    paths = _run_dir(tmp_path, tiny_teacher)
    stage.run(config, paths, footprint=False)
    result = report.run(config, paths)

    rows = pd.read_parquet(paths.bench_dir / "results.parquet")
    markdown = (paths.report_dir / "report.md").read_text()
    at = rows[rows["batch"] == 4].set_index("model")  # the budget's batch is the reference cell
    for model in ("teacher", "tiny-s", "tfidf-lr"):
        line = next(l for l in markdown.splitlines() if l.startswith(f"| {model} "))
        assert f"{at.loc[model, 'qps']:,.0f}" in line and f"{100 * at.loc[model, 'accuracy']:.2f} %" in line
        assert "meets" in line
    teacher_line = next(l for l in markdown.splitlines() if l.startswith("| teacher "))
    assert "1.0×" in teacher_line  # the teacher's torch fp32 is the speed-up's base
    student_line = next(l for l in markdown.splitlines() if l.startswith("| tiny-s "))
    speedup = at.loc["tiny-s", "qps"] / at.loc["teacher", "qps"]
    assert f"{speedup:,.1f}×" in student_line
    assert f"{speedup:,.1f}× (torch-fp32)" in student_line  # the teacher's fastest backend: its only one here
    served = at.loc["tiny-s"]
    assert f"| {int(served['requests']):,} ({int(served['passes'])} pass" in student_line
    assert "Every row served the same requests" in markdown
    assert "**Verdict:** ship" in markdown and "Pareto front" in markdown and "- CPU: " in markdown

    for name in report.PLOTS:
        image = mpimg.imread(paths.report_dir / name)
        assert image.shape[0] > 300 and image.shape[1] > 500  # a real, readable figure
    page = (paths.report_dir / "report.html").read_text()
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(embedded) == 3 and all(base64.b64decode(b).startswith(b"\x89PNG") for b in embedded)
    assert "<table" in page and "tfidf-lr" in page
    assert result.summary().startswith(f"report: {paths.report_dir / 'report.md'}")


def test_report_without_bench_results_says_which_stage_to_run(tmp_path, sentiment_files, tiny_teacher):
    config = _config(tmp_path, sentiment_files, compress={"backends": ["torch-fp32"]})
    paths = _run_dir(tmp_path, tiny_teacher)
    with pytest.raises(ArtifactError, match=r"bench/results.parquet: missing; run the 'bench' stage"):
        report.run(config, paths)


def test_a_run_without_the_teacher_in_fp32_is_read_against_the_teacher_on_the_same_backend():
    rows = pd.DataFrame([  # a GPU-only sweep: no torch-fp32 row to measure speed-up from
        {"model": m, "backend": b, "batch": 8, "threads": 8, "seq_len": 256, "qps": q, "accuracy": 0.9, "device": "cuda"}
        for m, b, q in (("teacher", "torch-fp16-cuda", 500.0), ("teacher", "torch-compile-cuda", 1000.0),
                        ("tiny", "torch-fp16-cuda", 1000.0), ("tiny", "torch-compile-cuda", 1500.0))])
    table = report.comparison_table(rows, report.ReferenceCell(8, 8, 256)).set_index(["model", "backend"])
    assert table["speedup_vs_teacher_fp32"].isna().all()
    assert table.loc[("tiny", "torch-fp16-cuda"), "speedup_same_backend"] == 2.0
    assert table.loc[("tiny", "torch-compile-cuda"), "speedup_same_backend"] == 1.5
    # Over the teacher's fastest backend (compile, 1000 qps) whatever the student's backend.
    assert table.loc[("tiny", "torch-fp16-cuda"), "speedup_vs_teacher_best"] == 1.0
    assert table.loc[("tiny", "torch-compile-cuda"), "speedup_vs_teacher_best"] == 1.5


def test_a_share_of_the_peak_over_100_percent_in_fp32_is_shown_as_a_measurement_error():
    rows = pd.DataFrame([
        {"model": "teacher", "backend": "torch-fp32", "threads": 2, "batch": 1, "model_qps": 30.0,
         "achieved_gflops": 130.0, "gemm_gflops": 89.0, "device": "cpu", "fraction_of_peak": 130 / 89,
         "best_batch": True, "peak_measurement_error": True},
        {"model": "teacher", "backend": "onnx-int8-dynamic", "threads": 2, "batch": 1, "model_qps": 90.0,
         "achieved_gflops": 300.0, "gemm_gflops": 200.0, "device": "cpu", "fraction_of_peak": 1.5,
         "best_batch": True, "peak_measurement_error": False},  # int8: an effective rate may pass 100 %
    ])
    shares = list(report._peak_table(rows)["of peak"])
    assert shares[0].startswith("measurement error (146 % > 100 %") and shares[1] == "150.0 %"


def test_the_search_section_shows_the_front_the_baseline_line_and_the_plots(tmp_path):
    import matplotlib.pyplot as plt

    from tinykd.artifacts import RunPaths
    from tinykd.benchmarks.report_search import search_section

    paths = RunPaths(tmp_path / "run")
    assert search_section(paths) is None  # no `make search` yet: no section
    directory = paths.root / "search"
    directory.mkdir(parents=True)
    pd.DataFrame([{"number": 7, "state": "COMPLETE", "accuracy": 0.91, "latency_ms": 2.5, "p99_ms": 6.0, "qps": 3000.0,
                   "test_accuracy": 0.905, "backend_test_accuracy": 0.9, "students.bow.learning_rate": 0.002}]
                 ).to_csv(directory / "pareto.csv", index=False)
    (directory / "summary.md").write_text("# Search\n\nHand-set baseline (trial 0): accuracy 0.8900. More accurate "
                                          "at equal or better speed: trial 7 (0.9100, 2.50 ms).\n")
    figure = plt.figure()
    figure.savefig(directory / "pareto_front.png")
    plt.close(figure)

    section = search_section(paths)
    markdown = "\n".join(section.markdown())
    assert "Hand-set baseline (trial 0)" in markdown and "students.bow.learning_rate" in markdown
    assert re.search(r"\|\s+7\s+\|\s+0\.91\s+\|\s+2\.5\s+\|", markdown)  # trial 7's row: number, accuracy, latency
    assert "](../search/pareto_front.png)" in markdown and "history.png" not in markdown  # only plots that exist
    page = section.html()
    assert page.count("data:image/png;base64,") == 1 and "state" not in page  # figures and keys, not bookkeeping
    named = paths.root / "search" / "wider"
    named.mkdir()
    (directory / "pareto.csv").rename(named / "pareto.csv")
    (directory / "pareto_front.png").rename(named / "pareto_front.png")
    assert search_section(paths) is None and "](../search/wider/pareto_front.png)" in "\n".join(
        search_section(paths, "wider").markdown())  # a named study's section links to its own directory


def test_the_verdict_column_says_which_bound_a_pair_misses():
    from tinykd.benchmarks.budget import judge
    from tinykd.config import BudgetConfig

    budget = BudgetConfig(qps=1000, p99_ms=20, batch=8, threads=2)  # one 2-core machine: one process

    def cell(model, qps, p99):
        return {"model": model, "backend": "onnx-fp32", "device": "cpu", "batch": 8, "threads": 2, "seq_len": 96,
                "accuracy": 0.8, "qps": qps, "p99_ms": p99}

    rows = [cell("fast", 2000.0, 8.0), cell("slow-p99", 1500.0, 30.0), cell("one-short", 900.0, 16.5)]
    verdicts = pd.DataFrame([judge(r, budget, machine_cores=2).record() for r in rows])
    table = pd.DataFrame([r | {"macro_f1": 0.8, "accuracy_change_pts": 0.0, "of_teacher": 1.0, "params": 1e6,
                               "size_mb": 1.0, "requests": 512, "passes": 1, "speedup_vs_teacher_fp32": 2.0, "speedup_vs_teacher_best": 1.0,
                               "teacher_best_backend": "onnx-fp32", "speedup_same_backend": 2.0} for r in rows])
    shown = report._display(table, verdicts).set_index("model")["verdict"]
    assert shown["fast"] == "meets (p99 12.0 ms under; 1 process, 2 cores, 1 machine)"
    assert shown["slow-p99"] == "misses: p99 10.0 ms over (1 process, 2 cores, 1 machine for the QPS)"
    assert shown["one-short"] == "misses: needs 2 processes, 4 cores, 2 machines, 1 machine(s) allowed (p99 3.5 ms under)"
