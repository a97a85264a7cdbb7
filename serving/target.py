"""Which model × backend `serve` puts up: `serve.model` / `serve.backend`, else the bench verdict's pick."""

from __future__ import annotations

from tinykd.artifacts import RunPaths, read_json, require
from tinykd.benchmarks.budget import Verdict, ship
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
    """`serve.model` and `serve.backend` as set; what is left open, the bench's ship rule (`budget.ship`) picks among
    the verdicts that match: the most accurate tinykd model × backend that meets the budget (the TF-IDF floor is the
    bench's yardstick, not a servable model)."""
    spec = config.serve
    if spec.model and spec.backend:
        return spec.model, spec.backend
    results = require(paths.bench_dir / "results.json", "bench")
    verdicts = [Verdict.from_record(r) for r in read_json(results).get("verdicts") or []
                if r["model"] != FLOOR_NAME and spec.model in (None, r["model"]) and spec.backend in (None, r["backend"])]
    pick = ship(verdicts).pick
    if pick is None:
        which = " × ".join(filter(None, [spec.model and f"model {spec.model}", spec.backend and f"backend {spec.backend}"]))
        raise ConfigError(f"{results}: no {which or 'tinykd model'} meets the budget in the bench verdicts; set "
                          "serve.model and serve.backend to serve one anyway")
    return pick.model, pick.backend
