"""Teacher labelling rows/s on torch and on ONNX Runtime, on the same rows, batches and threads, in one process.

The label stage labels on the teacher's fused ONNX graph where its logits match torch's (`label.runtime`);
this measures what that buys on a finished run's teacher:

    python -m tinykd.benchmarks.label_runtime --config configs/sentiment_zh.yaml --rows 2000

It labels the first `--rows` train rows with each runtime in turn (`--repeats` rounds, alternating, so drift
hits both), prints rows/s per runtime and the largest logit difference, and writes
`runs/<task>/bench/label_runtime.json` with the environment.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tinykd.artifacts import RunPaths, require, write_json
from tinykd.config_loading import load_config
from tinykd.environment import environment
from tinykd.teacher.encoding import batched_logits, encode_rows, predict_logits
from tinykd.teacher.onnx_labeler import onnx_teacher


def measure(paths: RunPaths, max_length: int, rows: int, batch_size: int, threads: int, repeats: int) -> dict:
    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(require(paths.teacher_model, "teacher"))
    model = AutoModelForSequenceClassification.from_pretrained(paths.teacher_model).eval()
    table = pd.read_parquet(require(paths.split("train"), "data")).head(rows)
    features = encode_rows(tokenizer, table, max_length)
    with tempfile.TemporaryDirectory() as work:
        graph = onnx_teacher(model, tokenizer, features, Path(work))
        forwards = {"torch": None, "onnx": graph.forward(threads)}
        if forwards["onnx"] is None:
            raise SystemExit(f"the ONNX graph does not match torch: {graph.facts}")
        seconds: dict[str, list[float]] = {name: [] for name in forwards}
        logits = {}
        for _ in range(repeats):
            for name, forward in forwards.items():
                started = time.perf_counter()
                if forward is None:
                    logits[name] = predict_logits(model, tokenizer, features, batch_size)
                else:
                    logits[name] = batched_logits(forward, tokenizer, features, batch_size, model.config.num_labels)
                seconds[name].append(time.perf_counter() - started)
    rates = {name: [round(len(features) / s, 1) for s in runs] for name, runs in seconds.items()}
    return {
        "rows": len(features), "batch_size": batch_size, "max_length": max_length, "threads": threads,
        "rows_per_second": {name: float(np.median(r)) for name, r in rates.items()},
        "rows_per_second_repeats": rates,
        "speedup_onnx_vs_torch": round(float(np.median(rates["onnx"]) / np.median(rates["torch"])), 2),
        "max_abs_logit_diff": float(np.abs(logits["onnx"] - logits["torch"]).max()),
        "graph": graph.facts, "environment": environment(threads),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=None, help="default: label.batch_size")
    parser.add_argument("--threads", type=int, default=None, help="default: label.threads, else all cores")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    paths = RunPaths.for_task(config.task.name, args.runs_dir)
    threads = args.threads or config.label.threads or torch.get_num_threads()
    result = measure(paths, config.task.max_length, args.rows, args.batch_size or config.label.batch_size, threads,
                     args.repeats)
    write_json(paths.root / "bench" / "label_runtime.json", result)
    rates = result["rows_per_second"]
    print(f"label runtime on {result['rows']} train rows, batch {result['batch_size']}, {threads} threads: "
          f"torch {rates['torch']:.1f} rows/s, onnx {rates['onnx']:.1f} rows/s "
          f"({result['speedup_onnx_vs_torch']:.2f}x); max |logit difference| {result['max_abs_logit_diff']:.1e}")


if __name__ == "__main__":
    main()
