"""The report's load section, read from `runs/<task>/load/` when `make load` has written it (absent otherwise): the
highest VALID QPS per model, system and p99 bound, the load verdicts against the budget, and latency against
offered load."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tinykd.artifacts import RunPaths
from tinykd.benchmarks import report_plots

PLOT = "latency_vs_offered_load.png"
CAPTION = ("Load (MLPerf LoadGen, Server scenario): p99 (solid) and p50 (dotted) latency from each query's scheduled "
           "send time against the offered Poisson load; dashed red: the p99 bounds.")
ABOUT = ("Service time is not load: each run offers Poisson arrivals at one rate for at least `load.min_duration_s` "
         "and is VALID when its p99, counted from each query's scheduled send time, is within the bound and no query "
         "failed. `inprocess`: the model behind the serving batch policy, no HTTP; `http`: the Ray Serve application "
         "over loopback (client and server on the same cores).")


@dataclass(frozen=True)
class LoadSection:
    summary: pd.DataFrame  # load/summary.csv
    verdicts: pd.DataFrame | None  # load/verdicts.csv (with a budget)
    plot: Path

    def markdown(self) -> list[str]:
        lines = ["## Under load", "", ABOUT, "", self.summary.to_markdown(index=False, floatfmt=".4g"), ""]
        if self.verdicts is not None:
            lines += ["Load verdicts at the budget's p99 (replicas of `serve.threads` threads):", "",
                      self.verdicts.to_markdown(index=False, floatfmt=".4g"), ""]
        return lines + [f"![{CAPTION}]({self.plot.name})", "", f"*{CAPTION}*", ""]

    def html(self) -> str:
        verdicts = "" if self.verdicts is None else (
            "<p>Load verdicts at the budget's p99 (replicas of <code>serve.threads</code> threads):</p>"
            + self.verdicts.to_html(index=False, border=0))
        image = base64.b64encode(self.plot.read_bytes()).decode()
        return (f"<h2>Under load</h2><p>{html.escape(ABOUT)}</p>{self.summary.to_html(index=False, border=0)}{verdicts}"
                f'<figure><img alt="{html.escape(CAPTION)}" src="data:image/png;base64,{image}">'
                f"<figcaption>{html.escape(CAPTION)}</figcaption></figure>")


def load_section(paths: RunPaths, out: Path) -> LoadSection | None:
    """The section, its plot drawn into `out`; None before `make load`."""
    directory = paths.load_dir
    if not (directory / "results.parquet").is_file() or not (directory / "summary.csv").is_file():
        return None
    report_plots.latency_vs_offered_load(pd.read_parquet(directory / "results.parquet"), out / PLOT)
    verdicts = directory / "verdicts.csv"
    return LoadSection(pd.read_csv(directory / "summary.csv"), pd.read_csv(verdicts) if verdicts.is_file() else None,
                       out / PLOT)
