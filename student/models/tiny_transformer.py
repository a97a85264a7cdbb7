"""Tiny transformer students: the teacher's architecture with fewer/narrower layers, as a HF model.

The student is the teacher's own class (BERT classifier, or tinykd's mean-pool classifier for E5) built
from a copy of its config with `layers`, `hidden`, `heads`, `intermediate` replaced, so
`save_pretrained`, `from_pretrained` and ONNX export work unchanged.

Initialisation `teacher` copies, for student layer i, teacher layer `teacher_layers[i]` (default: evenly
spaced, ending with the last, e.g. 12 -> 4 keeps layers 3, 6, 9, 12 in 1-based terms), plus the
embeddings and the classifier. When the student is narrower, every weight keeps its leading slice: the
first `hidden` dimensions of the residual stream, the first `intermediate` FFN units, and for Q/K/V the
first `hidden` output rows, which are exactly the first `heads` heads when the head width is unchanged
(384/12 = 256/8 = 32). That is a heuristic start (LayerNorm statistics change), which the relation stage
then corrects; with the teacher's width it is an exact copy of the chosen layers.
"""

from __future__ import annotations

import copy
import re

import torch
from transformers import PretrainedConfig, PreTrainedModel

from tinykd.vocabulary_pruning import remap_config_ids

LAYER = re.compile(r"(encoder\.layer\.)(\d+)(\.)")


def encoder_config(config: PretrainedConfig) -> PretrainedConfig:
    """The BERT-style config inside a wrapper (mean-pool classifier) or the config itself."""
    return getattr(config, "encoder", None) or config


def evenly_spaced_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """0-based teacher layers for each student layer, evenly spaced and ending with the last."""
    if not 1 <= student_layers <= teacher_layers:
        raise ValueError(f"a student of {student_layers} layers cannot take layers from a {teacher_layers}-layer teacher")
    step = teacher_layers / student_layers
    return [round(step * (i + 1)) - 1 for i in range(student_layers)]


def student_config(teacher: PreTrainedModel, layers: int, hidden: int, heads: int, intermediate: int,
                   vocab_size: int | None = None) -> PretrainedConfig:
    if hidden % heads:
        raise ValueError(f"hidden size {hidden} is not a multiple of {heads} heads")
    config = copy.deepcopy(teacher.config)
    inner = encoder_config(config)
    inner.num_hidden_layers, inner.hidden_size = layers, hidden
    inner.num_attention_heads, inner.intermediate_size = heads, intermediate
    if vocab_size is not None:
        inner.vocab_size = vocab_size
    return config


def build_tiny_transformer(teacher: PreTrainedModel, layers: int, hidden: int, heads: int, intermediate: int,
                           init: str = "teacher", teacher_layers: list[int] | None = None,
                           keep_tokens: list[int] | None = None, seed: int = 0) -> PreTrainedModel:
    """A student of the teacher's class. `keep_tokens`: teacher token ids kept by vocabulary pruning."""
    vocab = len(keep_tokens) if keep_tokens is not None else encoder_config(teacher.config).vocab_size
    config = student_config(teacher, layers, hidden, heads, intermediate, vocab)
    if keep_tokens is not None:
        remap_config_ids([config, encoder_config(config)], keep_tokens)
    torch.manual_seed(seed)
    student = type(teacher)(config)
    if init == "random":
        return student
    if init != "teacher":
        raise ValueError(f"init must be 'teacher' or 'random', not {init!r}")
    chosen = teacher_layers or evenly_spaced_layers(encoder_config(teacher.config).num_hidden_layers, layers)
    if len(chosen) != layers:
        raise ValueError(f"teacher_layers lists {len(chosen)} layers for a {layers}-layer student")
    source = teacher.state_dict()
    word_embeddings = teacher.get_input_embeddings().weight
    with torch.no_grad():
        for name, target in student.state_dict().items():
            if target is student.get_input_embeddings().weight or name.endswith("word_embeddings.weight"):
                rows = word_embeddings[torch.tensor(keep_tokens)] if keep_tokens is not None else word_embeddings
                target.copy_(rows[:, : target.shape[1]])
                continue
            teacher_name = LAYER.sub(lambda m: f"{m[1]}{chosen[int(m[2])]}{m[3]}", name)
            if teacher_name not in source:
                raise ValueError(f"student weight {name} has no teacher counterpart {teacher_name}")
            target.copy_(source[teacher_name][tuple(slice(0, n) for n in target.shape)])  # leading slice
    return student

