"""The report's search section: the Optuna study's Pareto front, the hand-set baseline and the study's plots,
read from `runs/<task>/search/` (`search/<study>/` for a named study) when `make search` has written it (absent
otherwise)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tinykd.artifacts import RunPaths

PLOTS = {"pareto_front.png": "Search: dev accuracy vs latency per call of every completed trial; the front dashed, "
                             "the hand-set student starred.",
         "history.png": "Search: accuracy by trial.",
         "importances.png": "Search: importance of each searched key for accuracy (fANOVA)."}
FIGURES = ["number", "accuracy", "latency_ms", "p99_ms", "qps", "test_accuracy", "backend_test_accuracy"]


@dataclass(frozen=True)
class SearchSection:
    directory: Path
    front: pd.DataFrame  # pareto.csv: the figures and the searched keys' values
    baseline: str  # the summary's line comparing the front with the hand-set trial ('' if none)
    link: str = "../search"  # the directory as report.md (in report/) links to it

    @property
    def plots(self) -> dict[str, str]:
        return {name: caption for name, caption in PLOTS.items() if (self.directory / name).is_file()}

    def shown(self) -> pd.DataFrame:
        keys = [c for c in self.front.columns if c.startswith("students.")]
        return self.front[[c for c in FIGURES if c in self.front.columns] + keys]

    def markdown(self) -> list[str]:
        lines = ["## Search", "", f"From `{self.directory}/` (`make search`; accuracy = the searched split, "
                 "test_accuracy = fp32 test, backend_test_accuracy = the compressed build on test).", ""]
        lines += [self.baseline, ""] if self.baseline else []
        lines += [self.shown().to_markdown(index=False, floatfmt=".4g"), ""]
        for name, caption in self.plots.items():
            lines += [f"![{caption}]({self.link}/{name})", ""]
        return lines

    def html(self) -> str:
        images = "".join(f'<figure><img alt="{html.escape(c)}" src="data:image/png;base64,'
                         f'{base64.b64encode((self.directory / n).read_bytes()).decode()}">'
                         f"<figcaption>{html.escape(c)}</figcaption></figure>" for n, c in self.plots.items())
        baseline = f"<p>{html.escape(self.baseline)}</p>" if self.baseline else ""
        return f"<h2>Search</h2>{baseline}{self.shown().to_html(index=False, border=0)}{images}"


def search_section(paths: RunPaths, study: str | None = None) -> SearchSection | None:
    directory = paths.search_dir(study)
    if not (directory / "pareto.csv").is_file():
        return None
    summary = directory / "summary.md"
    lines = summary.read_text(encoding="utf-8").splitlines() if summary.is_file() else []
    baseline = next((line for line in lines if line.startswith("Hand-set baseline")), "")
    link = "../" + directory.relative_to(paths.root).as_posix()
    return SearchSection(directory, pd.read_csv(directory / "pareto.csv"), baseline, link)
