"""The report's plots (matplotlib, Agg backend, PNG): accuracy vs QPS with the Pareto front, latency by batch size,
speed-up over the teacher by backend; and, after `make load`, p50/p99 against offered load. Each takes the rows it
draws and a path to write."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: the report is written by a batch job
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from tinykd.artifacts import atomic_path  # noqa: E402
from tinykd.benchmarks.pareto import pareto_front  # noqa: E402

DPI = 110


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=DPI, format="png")
    plt.close(figure)


def accuracy_vs_qps(cell_rows: pd.DataFrame, path: Path, target_qps: float | None = None) -> None:
    """One point per model × backend at the reference cell; the Pareto front joined by a line."""
    figure, axis = plt.subplots(figsize=(8, 5.5))
    rows = cell_rows.dropna(subset=["accuracy"])
    for model, group in rows.groupby("model", sort=False):
        axis.scatter(group["qps"], 100 * group["accuracy"], s=36, label=model, zorder=3)
    front = pareto_front(rows).sort_values("qps")
    for r in front.itertuples():  # only the front is labelled: the other points crowd each other
        axis.annotate(f"{r.model}/{r.backend}", (r.qps, 100 * r.accuracy), fontsize=7, xytext=(4, 4),
                      textcoords="offset points")
    axis.plot(front["qps"], 100 * front["accuracy"], color="black", lw=1, ls="--", label="Pareto front", zorder=2)
    if target_qps:
        axis.axvline(target_qps, color="tab:red", lw=1, label=f"budget {target_qps:g} qps")
    axis.set_xscale("log")
    axis.set_xlabel("requests/s (end to end, log scale)")
    axis.set_ylabel("test accuracy (%)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8, loc="lower left")
    axis.set_title("Accuracy vs throughput")
    _save(figure, path)


def latency_by_batch(rows: pd.DataFrame, path: Path, target_p99_ms: float | None = None) -> None:
    """p99 (solid) and p50 (dotted) latency per call against batch size, one line per model × backend."""
    figure, axis = plt.subplots(figsize=(8, 5.5))
    for (model, backend), group in rows.groupby(["model", "backend"], sort=False):
        group = group.sort_values("batch")
        line, = axis.plot(group["batch"], group["p99_ms"], marker="o", ms=3, label=f"{model}/{backend}")
        axis.plot(group["batch"], group["p50_ms"], ls=":", color=line.get_color())
    if target_p99_ms:
        axis.axhline(target_p99_ms, color="tab:red", lw=1, label=f"budget p99 {target_p99_ms:g} ms")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xlabel("batch size (requests per call)")
    axis.set_ylabel("latency per call, ms (p99 solid, p50 dotted)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    axis.set_title("Latency by batch size")
    _save(figure, path)


def speedup_by_backend(cell_rows: pd.DataFrame, path: Path) -> None:
    """Grouped bars: each model's QPS over the teacher's torch-fp32 QPS at the same cell, per backend; a run
    without that row (a GPU-only sweep) shows the speed-up over the teacher on the same backend instead."""
    fp32 = "speedup_vs_teacher_fp32"
    column = fp32 if cell_rows[fp32].notna().any() else "speedup_same_backend"
    reference = "teacher torch-fp32" if column == fp32 else "teacher, same backend"
    table = cell_rows.pivot_table(index="model", columns="backend", values=column, sort=False)
    figure, axis = plt.subplots(figsize=(max(6.0, 1.3 * len(table) + 2), 5))
    width = 0.8 / max(1, len(table.columns))
    for i, backend in enumerate(table.columns):
        positions = [x + (i - (len(table.columns) - 1) / 2) * width for x in range(len(table))]
        bars = axis.bar(positions, table[backend], width=width, label=backend)
        axis.bar_label(bars, labels=[f"{v:.0f}×" if v >= 10 else f"{v:.1f}×" if v == v else "" for v in table[backend]],
                       fontsize=6, rotation=90, padding=2)
    axis.set_xticks(range(len(table)), table.index, rotation=20)
    axis.set_yscale("log")
    axis.axhline(1, color="black", lw=0.8)
    axis.set_ylabel(f"speed-up over {reference} (log)")
    axis.grid(True, axis="y", which="both", alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    axis.set_title("Speed-up by backend")
    _save(figure, path)


def latency_vs_offered_load(runs: pd.DataFrame, path: Path) -> None:
    """p50 (dotted) and p99 (solid) of every LoadGen run against its offered QPS, one colour per model × backend ×
    system; the p99 bounds as horizontal lines."""
    figure, axis = plt.subplots(figsize=(8, 5.5))
    for (model, backend, system), group in runs.groupby(["model", "backend", "system"], sort=False):
        group = group.sort_values("offered_qps").drop_duplicates("offered_qps")
        line, = axis.plot(group["offered_qps"], group["p99_ms"], marker="o", ms=3, label=f"{model}/{backend} {system} p99")
        axis.plot(group["offered_qps"], group["p50_ms"], ls=":", color=line.get_color())
    for bound in sorted(runs["p99_bound_ms"].unique()):
        axis.axhline(bound, color="tab:red", lw=0.8, ls="--")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("offered load (queries/s, Poisson)")
    axis.set_ylabel("latency from scheduled send (ms); p50 dotted")
    axis.legend(fontsize=7)
    _save(figure, path)
