"""Stage `compress`: every model in `compress.models` through every backend in `compress.backends`.

Each build is written to `compressed/<model>/<backend>/` atomically and judged on the test split with the
same tokenization the benchmark uses: accuracy, macro-F1 and F1 per class (by the task's label names), the
accuracy change vs the model's torch fp32 in points, agreement of predictions with fp32 and the largest logit
difference. A backend that cannot run here (a missing package, no CUDA, no IPEX environment) or does not apply
to the model's family (transformer fusions on a BOW student) is skipped with its reason. A build is reused
while the model, the backend and the `compress` section are unchanged (one judged before F1 was recorded is
judged again, not rebuilt). Writes `compressed/summary.csv` and `summary.md`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from tinykd.artifacts import RunPaths, atomic_path, fingerprint, read_json, recorded_fingerprint, require, write_json
from tinykd.compress.backend import BACKENDS, BuildContext, backend, cannot_run
from tinykd.compress.build_size import build_size_mb
from tinykd.compress.model_source import ModelSource
from tinykd.config import Config
from tinykd.errors import ArtifactError
from tinykd.metrics import classification_metrics

METRICS = "metrics.json"


@dataclass
class CompressResult:
    table: pd.DataFrame
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (model, backend, reason)
    reused: int = 0

    def summary(self) -> str:
        built = self.table[self.table["backend"] != "torch-fp32"]
        parts = []
        if len(built):
            worst = built.loc[built["accuracy_change_pts"].idxmin()]
            parts.append(f"{len(self.table)} model × backend builds ({self.reused} up to date); largest accuracy "
                         f"change {worst['accuracy_change_pts']:+.2f} pts ({worst['model']}/{worst['backend']})")
        else:
            parts.append(f"{len(self.table)} builds ({self.reused} up to date)")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        return "compress: " + "; ".join(parts)


def model_stamp(name: str, paths: RunPaths) -> str | None:
    return recorded_fingerprint(require(paths.model_metrics(name), paths.model_stage(name)))


def build_stamp(config: Config, paths: RunPaths, model: str, name: str) -> str:
    """What one build depends on: its model's weights, the backend and its recipe version (a module's `RECIPE`,
    raised when the way it builds changes), the compress settings and the length it is judged at. Not
    `compress.models` / `backends`: they choose which builds exist, so adding a student rebuilds nothing else."""
    settings = config.compress.model_dump(mode="json", exclude={"threads", "models", "backends"})
    recipe = getattr(BACKENDS[name].load_module(), "RECIPE", 1)
    return fingerprint(model_stamp(model, paths), name, recipe, settings, config.task.max_length)


def backend_reason(name: str, family: str) -> str | None:
    """Why this backend is skipped for a model of this family, or None."""
    info = backend(name)
    if family not in info.families:
        return f"does not apply to {family!r} models"
    return cannot_run(info)


def _order(backends: list[str]) -> list[str]:
    """Dependencies first (onnx-fp32 before what starts from it), torch-fp32 always (it is the reference)."""
    ordered: list[str] = []

    def add(name: str) -> None:
        for need in BACKENDS[name].needs:
            add(need)
        if name not in ordered:
            ordered.append(name)

    for name in ["torch-fp32", *backends]:
        add(name)
    return ordered


def calibration_batches(config: Config, paths: RunPaths, source: ModelSource, batch: int = 32) -> list[dict]:
    rows = pd.read_parquet(require(paths.split("train"), "data"))
    rows = rows.sample(n=min(config.compress.calibration_rows, len(rows)), random_state=0)
    pair = "text_b" in rows
    return [source.encode(rows["text_a"].iloc[i:i + batch].tolist(),
                          rows["text_b"].iloc[i:i + batch].tolist() if pair else None, config.task.max_length)
            for i in range(0, len(rows), batch)]


def evaluate(runner, source: ModelSource, test: pd.DataFrame, max_length: int, batch: int) -> np.ndarray:
    """Logits (N, K) of the test rows, in order, batched by length to cut padding."""
    order = np.argsort(test["text_a"].str.len().to_numpy(), kind="stable")
    logits = None
    for start in range(0, len(order), batch):
        index = order[start:start + batch]
        part = runner(source.encode(test["text_a"].iloc[index].tolist(),
                                    test["text_b"].iloc[index].tolist() if source.pair else None, max_length))
        if logits is None:
            logits = np.zeros((len(test), part.shape[1]), dtype=np.float32)
        logits[index] = part
    return logits


def classification_figures(logits: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    """Accuracy, macro-F1 and F1 per class (keyed by label name) of test logits (N, K)."""
    if logits.shape[1] != len(names):
        raise ArtifactError(f"the model gives {logits.shape[1]} logits per row but the task declares {len(names)} "
                            f"labels {names}; re-run the stage that trained it")
    figures = classification_metrics(labels, logits.argmax(1), names)
    return {"accuracy": figures["accuracy"], "macro_f1": figures["macro_f1"],
            "per_class_f1": {name: row["f1"] for name, row in figures["per_class"].items()},
            "per_class": figures["per_class"], "confusion_matrix": figures["confusion_matrix"]}


def _check_head(source: ModelSource, names: list[str], stage: str) -> None:
    """A saved model whose head is not one logit per declared class was trained for another label set."""
    if len(source.label_names) != len(names):
        raise ArtifactError(f"{source.directory}: a {len(source.label_names)}-class model, but the task declares "
                            f"{len(names)} labels {names}; re-run the '{stage}' stage")


def run(config: Config, paths: RunPaths) -> CompressResult:
    threads = config.compress.threads or os.cpu_count() or 1
    test = pd.read_parquet(require(paths.split("test"), "data"))
    labels = test["label"].to_numpy()
    names = config.task.display_names
    pair = config.task.kind == "pair"
    jobs = [(model, name) for model in config.compressed_models for name in _order(config.compress.backends)]
    records, skipped, reused = [], [], 0
    for model in config.compressed_models:  # fail on a missing model before any work
        model_stamp(model, paths)
    sources = {model: ModelSource.of(model, paths, pair) for model in config.compressed_models}
    for model, source in sources.items():
        _check_head(source, names, paths.model_stage(model))
    bar = tqdm(jobs, desc="compress", unit="build")
    reference: dict[str, np.ndarray] = {}  # model -> its torch-fp32 test logits
    for model, name in bar:
        bar.set_postfix_str(f"{model}/{name}", refresh=False)
        source = sources[model]
        reason = backend_reason(name, source.family)
        if reason:
            skipped.append((model, name, reason))
            continue
        directory = paths.compressed(model, name)
        stamp = build_stamp(config, paths, model, name)
        if recorded_fingerprint(directory / METRICS) == stamp:
            metrics = read_json(directory / METRICS)
            if "macro_f1" not in metrics["test"]:  # judged before F1 was recorded: judge the build again, not rebuild
                metrics = _rejudge(config, source, name, directory, metrics, test, labels, threads,
                                   reference.get(model))
            reused += 1
        else:
            metrics = _build_and_judge(config, paths, source, name, directory, stamp, test, labels, threads,
                                       reference.get(model))
        if name == "torch-fp32":
            reference[model] = np.asarray(metrics["test"]["logits"], dtype=np.float32)
        records.append({"model": model, "backend": name, "accuracy": metrics["test"]["accuracy"],
                        "macro_f1": metrics["test"]["macro_f1"],
                        "accuracy_change_pts": metrics["test"]["accuracy_change_pts"],
                        "agreement_with_fp32": metrics["test"]["agreement_with_fp32"],
                        "max_abs_logit_diff": metrics["test"]["max_abs_logit_diff_vs_fp32"],
                        # from the files, not the record: a build kept from before a change of the size rule
                        "size_mb": build_size_mb(directory, source.directory),
                        "build_seconds": metrics["build_seconds"]})
    table = pd.DataFrame(records)
    _write_tables(paths, table, skipped)
    return CompressResult(table, skipped, reused)


def _build_and_judge(config: Config, paths: RunPaths, source: ModelSource, name: str, directory: Path, stamp: str,
                     test: pd.DataFrame, labels: np.ndarray, threads: int, fp32_logits: np.ndarray | None) -> dict:
    module = backend(name).load_module()
    needs_calibration = name == "onnx-int8-static"
    context = BuildContext(
        calibration=calibration_batches(config, paths, source) if needs_calibration else [],
        opset=config.compress.opset,
        built=lambda other: paths.compressed(source.name, other),
    )
    started = time.perf_counter()
    with atomic_path(directory) as tmp:
        tmp.mkdir(parents=True)
        facts = module.build(source, tmp, context)
        build_seconds = time.perf_counter() - started
        judged = _judge(config, source, module.load(source, tmp, threads), name, test, labels, fp32_logits)
        metrics = {
            "fingerprint": stamp, "model": source.name, "backend": name, "family": source.family,
            "build": facts, "build_seconds": round(build_seconds, 2), "size_mb": build_size_mb(tmp, source.directory),
            "threads": threads, "test": judged,
        }
        write_json(tmp / METRICS, metrics)
    return metrics


def _judge(config: Config, source: ModelSource, runner, name: str, test: pd.DataFrame, labels: np.ndarray,
           fp32_logits: np.ndarray | None) -> dict:
    """The `test` section of a build's metrics: its figures on the test split and how far it is from fp32."""
    logits = evaluate(runner, source, test, config.task.max_length, config.compress.eval_batch_size)
    del runner
    figures = classification_figures(logits, labels, config.task.display_names)
    if fp32_logits is None:
        fp32_logits = logits  # this is torch-fp32 itself
    fp32_accuracy = float((fp32_logits.argmax(1) == labels).mean())
    predictions = logits.argmax(1)
    return {
        "accuracy": figures["accuracy"], "macro_f1": figures["macro_f1"], "per_class_f1": figures["per_class_f1"],
        "rows": len(labels),
        "accuracy_change_pts": 100 * (figures["accuracy"] - fp32_accuracy),
        "agreement_with_fp32": float((predictions == fp32_logits.argmax(1)).mean()),
        "max_abs_logit_diff_vs_fp32": float(np.abs(logits - fp32_logits).max()),
        "per_class": figures["per_class"], "confusion_matrix": figures["confusion_matrix"],
        "logits": logits.round(5).tolist() if name == "torch-fp32" else None,
    }


def _rejudge(config: Config, source: ModelSource, name: str, directory: Path, metrics: dict, test: pd.DataFrame,
             labels: np.ndarray, threads: int, fp32_logits: np.ndarray | None) -> dict:
    """Add the figures an older compress run did not record to an up-to-date build, from the build as it is."""
    runner = backend(name).load_module().load(source, directory, threads)
    metrics = metrics | {"test": _judge(config, source, runner, name, test, labels, fp32_logits)}
    write_json(directory / METRICS, metrics)
    return metrics


def _write_tables(paths: RunPaths, table: pd.DataFrame, skipped: list[tuple[str, str, str]]) -> None:
    root = paths.root / "compressed"
    root.mkdir(parents=True, exist_ok=True)
    with atomic_path(root / "summary.csv") as tmp:
        table.to_csv(tmp, index=False)
    shown = table.assign(accuracy=table["accuracy"].map(lambda v: f"{100 * v:.2f} %"),
                         macro_f1=table["macro_f1"].map(lambda v: f"{v:.4f}"),
                         accuracy_change_pts=table["accuracy_change_pts"].map(lambda v: f"{v:+.2f}"),
                         agreement_with_fp32=table["agreement_with_fp32"].map(lambda v: f"{100 * v:.2f} %"),
                         size_mb=table["size_mb"].map(lambda v: f"{v:.2f}"))
    lines = ["Every compressed model on the test split; change and agreement vs the same model in torch fp32.", "",
             shown.to_markdown(index=False, floatfmt=".3g") if len(table) else "(nothing built)", ""]
    if skipped:
        lines += ["Skipped:", ""] + [f"- {m}/{b}: {r}" for m, b, r in skipped] + [""]
    with atomic_path(root / "summary.md") as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
