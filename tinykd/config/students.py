"""`students`: small students (BOW, TextCNN, BiLSTM) and tiny transformers, told apart by `kind`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, create_model, model_validator

from tinykd.config.schedule import STAGE_KINDS, ScheduleStage, default_schedule
from tinykd.config.section import Section
from tinykd.config.training_data import TASK_DATA, TRAINING_DATA, TrainingData
from tinykd.loss_table import LOSSES

# One field per loss term that applies to small students (tinykd.loss_table), defaulting to its small_default.
LossWeights = create_model(
    "LossWeights", __base__=Section, __module__=__name__,
    __doc__="Named loss weights: total = Σ weight · term; a term with weight 0 is not computed.",
    **{name: (float, Field(default=loss.small_default, ge=0, description=loss.about))
       for name, loss in LOSSES.items() if loss.small_default is not None},
)


class SmallStudentSpec(Section):
    """A BOW, TextCNN or BiLSTM student over its own jieba-word or character vocabulary."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="directory name: students/<name>/")
    kind: Literal["bow", "cnn", "lstm"]
    tokens: Literal["word", "char"] = "word"
    segmenter: Literal["jieba", "rjieba"] = Field(
        default="jieba", description="the word segmenter of `tokens: word`, in training and serving alike: jieba "
        "(Python) or rjieba (jieba-rs in Rust, several times faster; not identical on every text)",
    )
    vocab_size: int = Field(default=30000, ge=10, description="vocabulary cap (most frequent tokens)")
    min_freq: int = Field(default=2, ge=1)
    embedding_dim: int = Field(default=128, ge=1)
    hidden_size: int = Field(default=128, ge=1, description="MLP width (BOW, CNN) / LSTM units per direction")
    num_filters: int = Field(default=128, ge=1, description="TextCNN filters per kernel size")
    kernel_sizes: list[int] = Field(default_factory=lambda: [3, 4, 5], min_length=1)
    pooling: Literal["max", "mean"] = Field(default="max", description="BiLSTM pooling over time")
    dropout: float = Field(default=0.2, ge=0, lt=1)
    data: Literal[TASK_DATA] = Field(
        default="distilled", description="; ".join(f"{name}: {TRAINING_DATA[name].about}" for name in TASK_DATA),
    )
    losses: LossWeights = LossWeights(hard=1.0, soft=1.0)
    temperature: float = Field(default=1.0, gt=0)
    augment_ops: list[str] | None = Field(
        default=None, min_length=1,
        description="of the teacher-labelled rows `data` selects, train only on those with these ops "
        "(augment.row_ops: unk, pos, nsample, textattack:<Name>, pool, pool:<name>); default: all",
    )
    max_augmented_rows: int | None = Field(
        default=None, ge=1, description="train on a seeded random sample of at most this many teacher-labelled rows "
        "(after `data` and `augment_ops` chose them)",
    )
    gold_repeats: int = Field(
        default=1, ge=1, description="with teacher-labelled rows (data augmented, pool or distilled): each gold row "
        "appears this many times per epoch, so ~multiplier times more augmented rows do not drown the gold labels",
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

    @property
    def training_data(self) -> TrainingData:
        return TRAINING_DATA[self.data]

    @property
    def uses_teacher(self) -> bool:
        """Whether training reads the teacher's labels: teacher-labelled rows, or soft labels on gold rows."""
        return self.training_data.teacher_rows or self.losses.soft > 0


class RelationConfig(Section):
    """MiniLMv2 self-attention relations: what is taught and from which teacher layer."""

    heads: int = Field(default=12, ge=1, description="relation heads R; must divide teacher and student hidden sizes")
    pairs: list[Literal["Q-Q", "K-K", "V-V", "Q-K"]] = Field(
        default_factory=lambda: ["Q-Q", "K-K", "V-V"], min_length=1,
        description="relation pairs: MiniLMv2 uses Q-Q, K-K, V-V; ERNIE-Tiny adds Q-K",
    )
    teacher_layer: int = Field(default=-1, description="0-based teacher layer, negative from the end (-1 = last; "
                               "an upper-middle layer suits deep teachers)")


class TransformerStudentSpec(Section):
    """A tiny transformer student (the teacher's architecture, smaller), trained by a schedule of stages."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="directory name: students/<name>/")
    kind: Literal["transformer"]
    shape: Literal["cross", "bi"] = Field(
        default="cross", description="cross: one encoder reads the pair together, as the teacher does; bi (pair tasks): "
        "a bi-encoder embeds each text on its own (mean pooling) and compares [u, v, |u-v|, u*v], so candidates can be "
        "embedded once and cached. Its relation loss is per side: the teacher's relations over each text read alone")
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
        if self.init == "checkpoint" and self.checkpoint is None:
            raise ValueError("init 'checkpoint' needs a checkpoint path")
        if self.teacher_layers is not None and len(self.teacher_layers) != self.layers:
            raise ValueError(f"teacher_layers lists {len(self.teacher_layers)} layers for {self.layers} layers")
        if any(i < 0 for i in self.teacher_layers or []):
            raise ValueError(f"teacher_layers {self.teacher_layers}: expected 0-based layer numbers, not negative ones "
                             "(only relation.teacher_layer counts from the end)")
        return self

    def stage_data(self, stage: ScheduleStage, has_augment: bool) -> str:
        default = STAGE_KINDS[stage.stage].data
        return stage.data or ("gold" if default == "distilled" and not has_augment else default)


StudentSpec = Annotated[SmallStudentSpec | TransformerStudentSpec, Field(discriminator="kind")]
