"""Stage `report`: the teacher-vs-student comparison a reviewer reads, from `bench/results.parquet` alone.

Every number comes from the bench rows (accuracy there is what the compress stage measured on the test
split for that backend), so the report cannot disagree with the results file. The main table is taken at
the *reference cell* — the budget's batch, threads and sequence length, or without a budget the largest
batch at the most threads — and says per model × backend: accuracy, macro-F1, its accuracy change vs the same
model in torch fp32, parameters, size on disk, QPS, p99, speed-up over the teacher's torch fp32 at that cell,
speed-up over the teacher on the same backend (the figure a GPU run, which has no CPU fp32 row, is read by), and
the verdict. Macro-F1 and the F1 of each class (a table per class × model, at torch fp32) are the compress
stage's figures for the same builds, read from the bench rows when they carry them, else from
`compressed/<model>/<backend>/metrics.json`. A pair task benched with `bench.candidates` gets a section on the
query-against-cached-candidates shape (`report_candidates`). Writes `report/report.md`, a self-contained `report/report.html`
(plots embedded) and the PNGs.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tinykd.artifacts import RunPaths, atomic_path, read_json, require
from tinykd.benchmarks import report_plots
from tinykd.benchmarks.pareto import pareto_front
from tinykd.benchmarks.report_candidates import CandidateSection, candidate_section
from tinykd.benchmarks.report_load import LoadSection, load_section
from tinykd.benchmarks.report_search import SearchSection, search_section
from tinykd.benchmarks.stage import with_speedups
from tinykd.benchmarks.tfidf_floor import NAME as FLOOR_NAME
from tinykd.config import Config
from tinykd.errors import ArtifactError

PLOTS = {"accuracy_vs_qps.png": "Accuracy vs throughput at the reference cell; the dashed line is the Pareto front.",
         "latency_by_batch.png": "Latency per call by batch size, each model on its fastest backend at the reference cell.",
         "speedup_by_backend.png": "Speed-up over the teacher at the reference cell (over its torch fp32 when "
                                   "measured, else over the teacher on the same backend)."}

PEAK_TITLE = "Share of the machine's GEMM peak"
TABLE_TEXT = ("Every row served the same requests: one seeded sequence of test rows in whole passes ('requests' "
              "is how many that cell served, and in how many passes). QPS: requests per second end to end — "
              "tokenizer included, one call in flight — median of the repeats; p99 per call. '× teacher fp32': QPS "
              "over the teacher's torch fp32 at this cell, the teacher as deployed without tinykd; '× teacher's "
              "fastest': over the teacher's fastest backend on the same device at this cell, what quantizing the "
              "teacher alone gives; 'vs teacher, same backend': over the teacher served the same way. The "
              "TF-IDF + logistic regression row is the floor.")


@dataclass
class ReportResult:
    path: Path
    decision: str

    def summary(self) -> str:
        return f"report: {self.path} (and report.html); {self.decision}"


@dataclass(frozen=True)
class ReferenceCell:
    batch: int
    threads: int
    seq_len: int

    def label(self) -> str:
        return f"batch {self.batch}, {self.threads} thread(s), max length {self.seq_len}"


def reference_cell(config: Config, rows: pd.DataFrame) -> ReferenceCell:
    """The budget's cell, or the largest batch at the most threads and the task's length (else the longest)."""
    lengths = sorted(rows["seq_len"].unique())
    seq_len = config.task.max_length if config.task.max_length in lengths else int(lengths[-1])
    if config.budget is not None:
        return ReferenceCell(config.budget.batch, config.budget.threads, seq_len)
    return ReferenceCell(int(rows["batch"].max()), int(rows["threads"].max()), seq_len)


def _order(rows: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Teacher first, students in config order, the floor last; backends in configured order."""
    models = ["teacher", *(s.name for s in config.students), FLOOR_NAME]
    backends = list(dict.fromkeys([*(config.bench.backends or config.compress.backends), *rows["backend"]]))
    key = rows["model"].map(lambda m: models.index(m) if m in models else len(models)) * 100
    key += rows["backend"].map(backends.index)
    return rows.assign(_key=key).sort_values(["_key", "batch"]).drop(columns="_key")


def comparison_table(rows: pd.DataFrame, cell: ReferenceCell) -> pd.DataFrame:
    """One row per model × backend at the reference cell, with accuracy change and speed-up added."""
    at = rows[(rows["batch"] == cell.batch) & (rows["threads"] == cell.threads) & (rows["seq_len"] == cell.seq_len)]
    if at.empty:
        raise ArtifactError(f"bench/results.parquet has no row at the reference cell ({cell.label()}); "
                            "re-run the 'bench' stage with this config")
    at = at.copy()
    fp32 = at[at["backend"] == "torch-fp32"].set_index("model")["accuracy"]
    at["accuracy_change_pts"] = 100 * (at["accuracy"] - at["model"].map(fp32))
    if "speedup_vs_teacher_best" not in at:  # results of a bench before both speed-ups were recorded
        at = with_speedups(at)
    teacher = at[(at["model"] == "teacher") & (at["backend"] == "torch-fp32")]
    teacher_by_backend = at[at["model"] == "teacher"].set_index("backend")["qps"]
    at["speedup_same_backend"] = at["qps"] / at["backend"].map(teacher_by_backend)
    teacher_accuracy = float(teacher["accuracy"].iat[0]) if len(teacher) else math.nan
    at["of_teacher"] = at["accuracy"] / teacher_accuracy
    return at


def _compress_test_figures(paths: RunPaths, model: str, backend: str) -> dict:
    """The `test` section of a build's compress metrics ({} when there is none: the floor, an older run)."""
    path = paths.compressed(model, backend) / "metrics.json"
    test = read_json(path).get("test") if path.is_file() else None
    return test if isinstance(test, dict) else {}


def with_macro_f1(table: pd.DataFrame, paths: RunPaths) -> pd.DataFrame:
    """`macro_f1` per row: the bench row's own where it has one, else its build's compress metrics (NaN if none)."""
    recorded = table["macro_f1"] if "macro_f1" in table else pd.Series(math.nan, index=table.index)
    from_compress = [_compress_test_figures(paths, r.model, r.backend).get("macro_f1", math.nan)
                     for r in table.itertuples()]
    return table.assign(macro_f1=recorded.fillna(pd.Series(from_compress, index=table.index, dtype=float)))


def per_class_f1_table(table: pd.DataFrame, paths: RunPaths, names: list[str]) -> pd.DataFrame:
    """F1 of each declared class (rows, with its test support) for each model of the table (columns), at torch
    fp32 (else the model's first backend in the table), from its compress metrics; the last row is macro-F1."""
    columns, support = {}, None
    for model, rows in table.groupby("model", sort=False):
        backend = "torch-fp32" if (rows["backend"] == "torch-fp32").any() else rows["backend"].iat[0]
        test = _compress_test_figures(paths, model, backend)
        if "per_class_f1" not in test:
            continue
        f1 = test["per_class_f1"]
        label = model if backend == "torch-fp32" else f"{model} ({backend})"
        columns[label] = [f"{f1[n]:.3f}" if n in f1 else "–" for n in names] + [f"{test['macro_f1']:.3f}"]
        per_class = test.get("per_class") or {}
        if support is None and per_class:
            support = [str(per_class.get(n, {}).get("support", "–")) for n in names] + [str(test.get("rows", ""))]
    if not columns:
        return pd.DataFrame()
    out = pd.DataFrame({"class": [*names, "macro-F1"]})
    if support is not None:
        out["test rows"] = support
    return out.assign(**columns)


def _verdicts(paths: RunPaths) -> pd.DataFrame | None:
    path = paths.bench_dir / "verdicts.csv"
    return pd.read_csv(path) if path.is_file() else None


def _display(table: pd.DataFrame, verdicts: pd.DataFrame | None) -> pd.DataFrame:
    """Formatted strings for the Markdown and HTML tables."""
    def pct(v: float) -> str:
        return "–" if pd.isna(v) else f"{100 * v:.2f} %"

    out = pd.DataFrame({
        "model": table["model"], "backend": table["backend"],
        "accuracy": table["accuracy"].map(pct),
        "macro-F1": table["macro_f1"].map(lambda v: "–" if pd.isna(v) else f"{v:.3f}"),
        "Δ vs fp32 (pts)": table["accuracy_change_pts"].map(lambda v: "–" if pd.isna(v) else f"{v:+.2f}"),
        "of teacher": table["of_teacher"].map(lambda v: "–" if pd.isna(v) else f"{100 * v:.1f} %"),
        "params (M)": table["params"].map(lambda v: f"{v / 1e6:.2f}" if v >= 1e4 else f"{v / 1e6:.4f}"),
        "size (MB)": table["size_mb"].map(lambda v: f"{v:.1f}" if v >= 1 else f"{v:.2f}"),
        "QPS": table["qps"].map(lambda v: f"{v:,.0f}"),
        "p99 (ms)": table["p99_ms"].map(lambda v: f"{v:.1f}" if v >= 1 else f"{v:.2f}"),
        "requests": [_requests(r) for r in table.itertuples()],
        "× teacher fp32": table["speedup_vs_teacher_fp32"].map(_times),
        "× teacher's fastest": [_times(r.speedup_vs_teacher_best) + ("" if pd.isna(r.speedup_vs_teacher_best) else f" ({r.teacher_best_backend})")
                                for r in table.itertuples()],
        "vs teacher, same backend": table["speedup_same_backend"].map(_times),
    })
    if verdicts is not None and len(verdicts):
        key = verdicts.set_index(["model", "backend"])
        def verdict(r) -> str:
            if (r.model, r.backend) not in key.index:
                return "–"
            v = key.loc[(r.model, r.backend)]
            margin = v["p99_margin_ms"]
            p99 = f"p99 {abs(margin):.1f} ms {'under' if margin >= 0 else 'over'}"
            processes, machines = int(v["processes"]), int(v.get("machines", 1))
            fleet = (f"{processes} process{'es' if processes > 1 else ''}, {int(v['cores'])} cores, "
                     f"{machines} machine{'s' if machines > 1 else ''}")
            allowed = v.get("allowed_machines")
            if bool(v["meets"]):
                return f"meets ({p99}; {fleet})"
            if margin < 0:
                return f"misses: {p99} ({fleet} for the QPS)"
            return f"misses: needs {fleet}, {int(allowed)} machine(s) allowed ({p99})"
        out["verdict"] = [verdict(r) for r in table.itertuples()]
    return out


def _times(v: float) -> str:
    return "–" if pd.isna(v) else f"{v:,.1f}×"


def _requests(r) -> str:
    """Requests the cell served (whole passes over the one request sequence every cell serves)."""
    passes = getattr(r, "passes", math.nan)
    return f"{int(r.requests):,}" + ("" if pd.isna(passes) else f" ({int(passes)} pass{'es' if passes != 1 else ''})")


def _share(row) -> str:
    """A share of the GEMM peak; over 100 % in the peak's own precision it is a measurement error, not a figure."""
    if bool(row.get("peak_measurement_error", False)):
        return f"measurement error ({100 * row['fraction_of_peak']:.0f} % > 100 %: the peak was measured low)"
    return f"{100 * row['fraction_of_peak']:.1f} %"


def _peak_table(rows: pd.DataFrame) -> pd.DataFrame:
    best = rows[rows["best_batch"].astype(bool) & rows["fraction_of_peak"].notna()]
    return pd.DataFrame({
        "model": best["model"], "backend": best["backend"], "threads": best["threads"], "best batch": best["batch"],
        "model-only QPS": best["model_qps"].map(lambda v: f"{v:,.0f}"),
        "GFLOP/s achieved": best["achieved_gflops"].map(lambda v: f"{v:.1f}"),
        "GEMM peak GFLOP/s": best["gemm_gflops"].map(lambda v: f"{v:.0f}"),
        "peak of": best["device"].map({"cpu": "cpu fp32", "cuda": "cuda fp16"}),
        "of peak": [_share(r) for _, r in best.iterrows()],
    })


def _samples(gemm: dict) -> str:
    samples = gemm.get("samples") or []
    if len(samples) < 2:
        return ""
    return f" (best of {len(samples)} measurements, one per round; the lowest {min(samples):,.0f})"


def _environment_lines(document: dict, rows: pd.DataFrame) -> list[str]:
    env = document.get("environment", {})
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
    gemm = ", ".join(f"{g.get('device', 'cpu')} {g.get('dtype', 'float32')}"
                     f"{', ' + str(g['threads']) + ' thread(s)' if g.get('device', 'cpu') == 'cpu' else ''}: "
                     f"{g['gflops']:,.0f} GFLOP/s{_samples(g)}" for g in document.get("gemm", []))
    return [f"- CPU: {env.get('cpu')} ({env.get('cores')} cores); GPU: {env.get('gpu') or 'none'}",
            f"- threads swept: {sorted(rows['threads'].unique().tolist())}; Python {env.get('python')}; {versions}",
            f"- GEMM peak measured in the same run: {gemm}",
            f"- bench run {document.get('timestamp')}, config hash {document.get('config_hash')}"]


PER_CLASS_TITLE = "F1 per class"
PER_CLASS_TEXT = ("Test split, each model in torch fp32 (its first benchmarked backend when it has no fp32 row): "
                  "F1 of every declared class, its test rows, and their unweighted mean, macro-F1 — the figure "
                  "that shows a model which neglects a small class, where accuracy does not.")


def _markdown_document(config: Config, cell: ReferenceCell, shown: pd.DataFrame, peak: pd.DataFrame,
                       document: dict, rows: pd.DataFrame, front: pd.DataFrame,
                       search: SearchSection | None = None, per_class: pd.DataFrame | None = None,
                       load: LoadSection | None = None, candidates: CandidateSection | None = None) -> str:
    budget = config.budget
    lines = [f"# tinykd report: {config.task.name}", ""]
    ship = (document.get("ship") or {}).get("line")
    if budget is not None:
        lines += [f"**Budget:** {budget.qps:g} requests/s with p99 ≤ {budget.p99_ms:g} ms at batch {budget.batch}, "
                  f"{budget.threads} thread(s) per process, {budget.device}. **Verdict:** {ship}.", ""]
    else:
        lines += ["No `budget:` section: figures without a verdict.", ""]
    lines += [f"## Teacher vs students ({cell.label()})", "",
              "Accuracy and macro-F1: test split, per backend (compress stage). " + TABLE_TEXT, "",
              shown.to_markdown(index=False, disable_numparse=True), "",
              "Pareto front (no other row is both faster and more accurate): "
              + ", ".join(f"{r.model}/{r.backend}" for r in front.itertuples()) + ".", ""]
    if per_class is not None and len(per_class):
        lines += [f"## {PER_CLASS_TITLE}", "", PER_CLASS_TEXT, "", per_class.to_markdown(index=False, disable_numparse=True), ""]
    for name, caption in PLOTS.items():
        lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    lines += [f"## {PEAK_TITLE}", "",
              "Model-only FLOPs of the fp32 graph per second at each model's best batch, over the GEMM peak of "
              "its device measured in the same run (once per round, the best kept): CPU fp32 with the row's "
              "threads, CUDA fp16. For int8 backends it is an effective rate and may pass 100 %; a forward in the "
              "peak's own precision cannot, so a share over 100 % there is a measurement error.", "",
              peak.to_markdown(index=False, disable_numparse=True), ""]
    if candidates is not None:
        lines += candidates.markdown()
    if load is not None:
        lines += load.markdown()
    if search is not None:
        lines += search.markdown()
    skipped = document.get("skipped") or []
    if skipped:
        lines += ["## Not measured", ""] + [f"- {s['model']}/{s['backend']}: {s['reason']}" for s in skipped] + [""]
    lines += ["## Environment", "", *_environment_lines(document, rows), "",
              "All cells: `bench/results.parquet` (one row per model, backend, batch, length, threads).", ""]
    return "\n".join(lines)


def _html_document(markdown_title: str, config: Config, cell: ReferenceCell, shown: pd.DataFrame, peak: pd.DataFrame,
                   document: dict, rows: pd.DataFrame, front: pd.DataFrame, plot_dir: Path,
                   search: SearchSection | None = None, per_class: pd.DataFrame | None = None,
                   load: LoadSection | None = None, candidates: CandidateSection | None = None) -> str:
    esc = html.escape
    budget = config.budget
    ship = (document.get("ship") or {}).get("line")
    verdict = (f"<p><b>Budget:</b> {budget.qps:g} requests/s with p99 ≤ {budget.p99_ms:g} ms at batch {budget.batch}, "
               f"{budget.threads} thread(s), {budget.device}. <b>Verdict:</b> {esc(str(ship))}.</p>"
               if budget is not None else "<p>No <code>budget:</code> section: figures without a verdict.</p>")
    images = "".join(
        f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,'
        f'{base64.b64encode((plot_dir / name).read_bytes()).decode()}"><figcaption>{esc(caption)}</figcaption></figure>'
        for name, caption in PLOTS.items())
    skipped = "".join(f"<li>{esc(s['model'])}/{esc(s['backend'])}: {esc(s['reason'])}</li>"
                      for s in document.get("skipped") or [])
    environment = "".join(f"<li>{esc(line[2:])}</li>" for line in _environment_lines(document, rows))
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;font-size:0.9em}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:right}td:first-child,td:nth-child(2),th{text-align:left}img{max-width:100%}"
             "figure{margin:1.5em 0}figcaption{font-style:italic;color:#555}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(markdown_title)}</title>"
            f"<style>{style}</style></head><body><h1>{esc(markdown_title)}</h1>{verdict}"
            f"<h2>Teacher vs students ({esc(cell.label())})</h2>"
            f"<p>Accuracy and macro-F1: test split, per backend. {esc(TABLE_TEXT)}</p>"
            f"{shown.to_html(index=False, escape=True, border=0)}"
            f"<p>Pareto front: {esc(', '.join(f'{r.model}/{r.backend}' for r in front.itertuples()))}.</p>"
            + (f"<h2>{PER_CLASS_TITLE}</h2><p>{esc(PER_CLASS_TEXT)}</p>"
               f"{per_class.to_html(index=False, escape=True, border=0)}" if per_class is not None and len(per_class)
               else "")
            + f"{images}"
            f"<h2>{PEAK_TITLE}</h2>{peak.to_html(index=False, escape=True, border=0)}"
            + (candidates.html() if candidates is not None else "")
            + (load.html() if load is not None else "")
            + (search.html() if search is not None else "")
            + (f"<h2>Not measured</h2><ul>{skipped}</ul>" if skipped else "")
            + f"<h2>Environment</h2><ul>{environment}</ul></body></html>\n")


def run(config: Config, paths: RunPaths) -> ReportResult:
    rows = pd.read_parquet(require(paths.bench_dir / "results.parquet", "bench"))
    document = read_json(require(paths.bench_dir / "results.json", "bench"))
    rows = _order(rows, config)
    cell = reference_cell(config, rows)
    table = with_macro_f1(comparison_table(rows, cell), paths)
    shown = _display(table, _verdicts(paths))
    per_class = per_class_f1_table(table, paths, config.task.display_names)
    front = pareto_front(table)
    out = paths.report_dir
    out.mkdir(parents=True, exist_ok=True)
    report_plots.accuracy_vs_qps(table, out / "accuracy_vs_qps.png", config.budget.qps if config.budget else None)
    fastest = table.loc[table.groupby("model", sort=False)["qps"].idxmax(), ["model", "backend"]]  # one line per model
    curves = rows[(rows["threads"] == cell.threads) & (rows["seq_len"] == cell.seq_len)].merge(fastest)
    report_plots.latency_by_batch(curves, out / "latency_by_batch.png", config.budget.p99_ms if config.budget else None)
    report_plots.speedup_by_backend(table, out / "speedup_by_backend.png")
    peak = _peak_table(rows)
    search = search_section(paths, config.search.study_name if config.search else None)  # None before `make search`
    load = load_section(paths, out)  # None before `make load`
    candidates = candidate_section(paths, config.task.display_names[-1])  # None unless bench.candidates
    title = f"tinykd report: {config.task.name}"
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(_markdown_document(config, cell, shown, peak, document, rows, front, search, per_class, load,
                                          candidates), encoding="utf-8")
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(_html_document(title, config, cell, shown, peak, document, rows, front, out, search, per_class,
                                      load, candidates), encoding="utf-8")
    decision = (document.get("ship") or {}).get("line") or "no budget section: no verdict"
    return ReportResult(out / "report.md", decision)
