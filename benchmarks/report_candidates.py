"""The report's cached-candidate section, read from `bench/candidates.parquet` when the bench timed that shape
(`bench.candidates`, pair tasks): one row per model × backend, queries per second against the candidate set."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import pandas as pd

from tinykd.artifacts import RunPaths, read_json

ABOUT = ("A query is scored against every candidate of a fixed set (the test split's first distinct second texts). "
         "`cached`: a siamese model (or the TF-IDF floor, its n-gram vectors) embedded the set once before timing "
         "('index s') and per query embeds the query and compares it with every cached vector; `pairs`: a "
         "cross-encoder scores the query paired with each candidate, one call of C rows. Every model served the "
         "same queries, one per call, in whole passes; QPS is queries per second (median of the repeats), p50/p99 "
         "per query; '× teacher fp32' / '× teacher's fastest': over the teacher's torch fp32 / fastest backend in "
         "this shape. Accuracy and F1 of the positive class: test split; for `cached` rows scored through the "
         "cached path, with its agreement with the pair graph on the bench's request rows; for `pairs` rows the "
         "compress stage's figures of that build.")


@dataclass(frozen=True)
class CandidateSection:
    table: pd.DataFrame
    candidates: int
    not_measured: tuple[str, ...] = ()  # "model/backend: why" for builds left out of this shape

    @property
    def title(self) -> str:
        return f"Query against {self.candidates} cached candidates"

    def markdown(self) -> list[str]:
        left_out = ["Not measured in this shape:", "", *(f"- {line}" for line in self.not_measured), ""]
        return [f"## {self.title}", "", ABOUT, "", self.table.to_markdown(index=False, disable_numparse=True), "",
                *(left_out if self.not_measured else [])]

    def html(self) -> str:
        left_out = "".join(f"<li>{html.escape(line)}</li>" for line in self.not_measured)
        return (f"<h2>{html.escape(self.title)}</h2><p>{html.escape(ABOUT)}</p>"
                f"{self.table.to_html(index=False, escape=True, border=0)}"
                + (f"<p>Not measured in this shape:</p><ul>{left_out}</ul>" if left_out else ""))


def candidate_section(paths: RunPaths, positive: str) -> CandidateSection | None:
    """The section (`positive`: the name of the positive class); None when the bench did not time that shape."""
    path = paths.bench_dir / "candidates.parquet"
    if not path.is_file():
        return None
    rows = pd.read_parquet(path)
    missing = rows["not_measured"].notna() if "not_measured" in rows else pd.Series(False, index=rows.index)
    not_measured = tuple(f"{r.model}/{r.backend}: {r.not_measured}" for r in rows[missing].itertuples())
    rows = rows[~missing]
    shown = []
    for r in rows.itertuples():
        if r.shape == "cached":
            accuracy, f1, agreement = r.cached_accuracy, r.cached_positive_f1, f"{r.cached_agreement_with_pairs:.2%}"
        else:
            test = _test_figures(paths, r.model, r.backend)
            accuracy = test.get("accuracy", math.nan)
            f1 = ((test.get("per_class") or {}).get(positive) or {}).get("f1", math.nan)
            agreement = "—"
        shown.append({
            "model": r.model, "backend": r.backend, "shape": r.shape, "accuracy": _pct(accuracy),
            f"F1 {positive}": _pct(f1), "queries/s": f"{r.queries_per_s:,.1f}", "p50 ms": f"{r.p50_ms:.2f}",
            "p99 ms": f"{r.p99_ms:.2f}", "× teacher fp32": _times(r.speedup_vs_teacher_fp32),
            "× teacher's fastest": _times(r.speedup_vs_teacher_best), "index s": f"{r.index_s:.2f}",
            "agrees with pairs": agreement,
        })
    return CandidateSection(pd.DataFrame(shown), int(rows["candidates"].iat[0]) if len(rows) else 0, not_measured)


def _test_figures(paths: RunPaths, model: str, backend: str) -> dict:
    path = paths.compressed(model, backend) / "metrics.json"
    test = read_json(path).get("test") if path.is_file() else None
    return test if isinstance(test, dict) else {}


def _pct(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.2%}"


def _times(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:,.1f}×"
