"""The pipeline's stages in order: name -> the module whose `run(config, paths)` does the work.

Make and the CLI both go through this table, so they always agree on what a stage is.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from tinykd.config import Config


def _always(config: Config) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    name: str
    module: str
    help: str
    configured: Callable[[Config], bool] = _always  # `all` skips a stage whose config section is absent

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


STAGES = (
    Stage("data", "tinykd.data_stage", "read the task source, check every row, write train/dev/test Parquet splits"),
    Stage("augment", "tinykd.augment.stage", "new train texts by UNK noise, same-POS substitution, n-sampling; new pairs by BM25 or random pairing (needs an augment section)",
          configured=lambda config: config.augment is not None),
    Stage("teacher", "tinykd.teacher.finetune", "fine-tune the teacher on train (best dev checkpoint kept; resumes after a kill; a pruned vocabulary covers the augmented texts)"),
    Stage("label", "tinykd.teacher.labeling", "write the teacher's raw logits for every row (chunked, resumable)"),
    Stage("distill", "tinykd.student.stage", "train the students: BOW, TextCNN, BiLSTM on gold + teacher-labelled rows; tiny transformers by their schedule",
          configured=lambda config: bool(config.students)),
    Stage("compress", "tinykd.compress.stage", "export and quantize each model (torch int8, ONNX Runtime fp32 / fused / int8 "
          "dynamic + static; IPEX, GPU backends where available) and judge each on the test split"),
    Stage("bench", "tinykd.benchmarks.stage", "time every model × backend × batch × length × threads, raw text in, labels out; "
          "fp32 GEMM peak, peak RSS, budget verdicts"),
    Stage("report", "tinykd.benchmarks.report", "report/report.md + report.html: teacher vs students, plots, the verdict"),
)
# Experiments run on demand, not as part of `all` / `make distill`.
EXPERIMENTS = (
    Stage("compare", "tinykd.student.experiments.comparison", "each distilled student (on each compare.data kind) vs its gold-only twin over compare.seeds (mean ± std)",
          configured=lambda config: any(s.training_data.teacher_rows for s in config.small_students)),
    Stage("ablate", "tinykd.student.experiments.ablation", "ablation.student on gold rows only, each augmentation op alone, and all ops",
          configured=lambda config: config.ablation is not None),
    Stage("ablate-schedule", "tinykd.student.experiments.schedule_ablation", "schedule_ablation.student: gold only, + soft labels, + TD1 "
          "relations, + augmented rows, + general distillation (or schedule_ablation.variants)", configured=lambda config: config.schedule_ablation is not None),
    Stage("search", "tinykd.search.stage", "one worker of an Optuna study over search.space: distill -> compress -> quick "
          "bench per trial; pareto.csv, best.yaml, plots", configured=lambda config: config.search is not None),
    Stage("serve", "tinykd.serving.stage", "serve.model x serve.backend (default: the verdict's pick) behind a Ray Serve "
          "application with dynamic batching, until Ctrl-C"),
    Stage("load", "tinykd.serving.load_stage", "MLPerf LoadGen Server scenario (Poisson arrivals) in-process and over "
          "HTTP: the highest VALID QPS at each p99 bound; load verdicts", configured=lambda config: config.load is not None),
)
BY_NAME = {stage.name: stage for stage in STAGES + EXPERIMENTS}
