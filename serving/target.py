"""Which model × backend `serve` puts up: `serve.model` / `serve.backend`, else the bench verdict's pick."""

from __future__ import annotations

import math

from tinykd.artifacts import RunPaths, read_json, require
from tinykd.benchmarks.tfidf_floor import NAME as FLOOR_NAME
from tinykd.config import Config
from tinykd.errors import ArtifactError, ConfigError
from tinykd.serving.predictor import NO_MODEL, ServedModel


def served_model(config: Config, paths: RunPaths, model: str, backend: str) -> ServedModel:
    if model == NO_MODEL:
        return ServedModel(paths.root.resolve(), NO_MODEL, "none", config.task.kind == "pair", 0, no_model=True,
                           labels=tuple(config.task.label_names or config.task.labels))
    directory = paths.compressed(model, backend)
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: missing; run the 'compress' stage first (python -m tinykd compress --config "
                            f"...) with {model} in compress.models and {backend} in compress.backends")
    require(paths.model_dir(model) / "config.json", paths.model_stage(model))
    return ServedModel(paths.root.resolve(), model, backend, config.task.kind == "pair",
                       config.serve.seq_len or config.task.max_length)


def default_target(config: Config, paths: RunPaths) -> tuple[str, str]:
    """`serve.model` and `serve.backend` as set, the missing one from the bench verdicts: the most accurate tinykd
    model × backend that meets the budget (the TF-IDF floor is the bench's yardstick, not a servable model)."""
    spec = config.serve
    if spec.model and spec.backend:
        return spec.model, spec.backend
    results = require(paths.bench_dir / "results.json", "bench")
    verdicts = [v for v in read_json(results).get("verdicts") or [] if v["model"] != FLOOR_NAME and v["meets"]
                and (spec.model is None or v["model"] == spec.model)]
    if not verdicts:
        which = f"model {spec.model}" if spec.model else "tinykd model"
        raise ConfigError(f"{results}: no {which} meets the budget in the bench verdicts; set serve.model and "
                          "serve.backend to serve one anyway")
    accuracy = lambda v: -math.inf if v["accuracy"] is None or math.isnan(v["accuracy"]) else v["accuracy"]  # noqa: E731
    pick = max(verdicts, key=lambda v: (accuracy(v), v["qps"]))
    return pick["model"], pick["backend"]
