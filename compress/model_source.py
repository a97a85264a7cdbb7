"""A model to compress or benchmark: where its fp32 weights live, how to load them, how to tokenize for it.

Two families share one interface so every backend and the benchmark harness treat them alike:
- `hf`: the teacher and the tiny transformer students (a `save_pretrained` dir with its HF tokenizer);
  inputs `input_ids`, `attention_mask` (+ `token_type_ids` when the tokenizer makes them); a bi-encoder
  student reads the two texts of a pair apart, like the siamese small students;
- `small`: BOW / TextCNN / BiLSTM students (tinykd's word or char tokenizer saved beside the model);
  inputs `input_ids`, `attention_mask` (+ `input_ids_b`, `attention_mask_b` for pair tasks).

`encode` is the tokenization step of serving (raw text in, int64 arrays out), timed apart from the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from transformers import PreTrainedModel

from tinykd.artifacts import RunPaths, read_json, require
from tinykd.errors import ArtifactError

SMALL_TOKENIZER_FILE = "tinykd_tokenizer.json"
BI_ENCODER = "tinykd-bi-encoder"  # the bi-encoder student's config `model_type` (tinykd.teacher.bi_encoder)


@dataclass(frozen=True)
class ModelSource:
    name: str  # 'teacher' or a student name
    directory: Path  # its save_pretrained directory (fp32)
    family: Literal["hf", "small"]
    pair: bool  # pair task: two texts per row

    @classmethod
    def of(cls, name: str, paths: RunPaths, pair: bool) -> ModelSource:
        directory = paths.model_dir(name)
        require(directory / "config.json", paths.model_stage(name))
        family = "small" if (directory / SMALL_TOKENIZER_FILE).is_file() else "hf"
        return cls(name, directory, family, pair)

    @cached_property
    def siamese(self) -> bool:
        """A pair model that encodes each text on its own (inputs `input_ids` ... `attention_mask_b`)."""
        if not self.pair:
            return False
        return self.family == "small" or read_json(self.directory / "config.json").get("model_type") == BI_ENCODER

    @cached_property
    def label_names(self) -> list[str]:
        """The saved model's classes in logit order (its `id2label`): one per logit of its head."""
        id2label = read_json(self.directory / "config.json").get("id2label") or {"0": "LABEL_0", "1": "LABEL_1"}
        return [id2label[key] for key in sorted(id2label, key=int)]

    def load_torch(self) -> PreTrainedModel:
        """The fp32 model in eval mode, on CPU."""
        if self.family == "small":
            from tinykd.student.models.registry import load_small_student

            model = load_small_student(self.directory)
        else:
            from transformers import AutoModelForSequenceClassification

            register_model_classes()
            model = AutoModelForSequenceClassification.from_pretrained(self.directory)
        return model.float().eval()

    @cached_property
    def tokenizer(self):
        if self.family == "small":
            from tinykd.student.models.vocabulary import StudentTokenizer

            return StudentTokenizer.from_pretrained(self.directory)
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.directory)

    @property
    def input_names(self) -> list[str]:
        """Model input names, in the order an exported graph takes them."""
        if self.siamese or self.family == "small":
            return ["input_ids", "attention_mask", *(["input_ids_b", "attention_mask_b"] if self.pair else [])]
        names = ["input_ids", "attention_mask"]
        if "token_type_ids" in self.tokenizer.model_input_names and self.pair:
            names.append("token_type_ids")
        return names

    def encode(self, texts_a: list[str], texts_b: list[str] | None, max_length: int) -> dict[str, np.ndarray]:
        """Tokenize one batch: int64 arrays (B, L), padded to the batch's longest row, truncated to max_length."""
        if self.pair and texts_b is None:
            raise ArtifactError(f"{self.name}: a pair-task model needs text_b")
        if self.siamese or self.family == "small":
            out = self.encode_side(texts_a, max_length)
            if self.pair:
                out |= {f"{name}_b": array for name, array in self.encode_side(texts_b, max_length).items()}
            return out
        encoded = self.tokenizer(texts_a, texts_b if self.pair else None, truncation=True, max_length=max_length,
                                 padding=True, return_tensors="np")
        return {name: encoded[name].astype(np.int64) for name in self.input_names}

    def encode_side(self, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
        """One text per row, on its own: `input_ids`, `attention_mask` (B, L), padded to the longest. A siamese
        model's each side, and a single-text small student's whole input."""
        if self.family == "small":
            tokenizer = self.tokenizer
            ids, mask = tokenizer.pad_arrays([tokenizer.token_ids(t)[:max_length] for t in texts])
            return {"input_ids": ids, "attention_mask": mask.astype(np.int64)}
        # a bi-encoder: each text its own [CLS] text [SEP], no token types
        encoded = self.tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="np")
        return {name: encoded[name].astype(np.int64) for name in ("input_ids", "attention_mask")}

    def example_inputs(self, max_length: int = 16) -> dict[str, np.ndarray]:
        """Two short rows of different lengths: what export traces and verification compares on."""
        a = ["很好的一次体验，下次还会再来", "差"]
        return self.encode(a, ["不错", "很差的服务"] if self.pair else None, max_length)


def register_model_classes() -> None:
    """Register tinykd's own HF model classes (mean-pool classifier, bi-encoder) with the Auto classes."""
    import tinykd.teacher.bi_encoder  # noqa: F401
    import tinykd.teacher.mean_pool  # noqa: F401


def to_torch(inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(array) for name, array in inputs.items()}
