"""Vocabulary pruning (teacher, transformer students, the GPU carry): keep only the tokens a task's texts use, in both the tokenizer and the embeddings.

The E5 vocabulary has 250k rows (96M of E5-small's 118M parameters); a Chinese sentiment task uses a few
thousand. Pruning keeps the used ids plus every special token, in their original order, and remaps
`tokenizer.json` (model vocabulary, unknown id, post-processor and added-token ids) and the word
embedding rows consistently. On text whose tokens were all kept, the pruned model's outputs equal the
original's: a WordPiece/WordLevel lookup finds the same pieces, and a Unigram (sentencepiece) Viterbi
search over a subset of pieces that still contains the original best segmentation finds that same
segmentation. BPE tokenizers are refused (their merges would need rewriting).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import torch
from tokenizers import Tokenizer
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerFast

from tinykd.teacher_shape import PRUNABLE_TOKENIZERS


def used_token_ids(tokenizer: PreTrainedTokenizerFast, texts: Iterable[str], batch_size: int = 1024) -> list[int]:
    """Sorted ids of every token the texts produce, plus every special and added token."""
    keep = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    batch: list[str] = []
    for text in [*texts, None]:
        if text is not None:
            batch.append(text)
        if batch and (text is None or len(batch) == batch_size):
            for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
                keep.update(ids)
            batch = []
    return sorted(keep)


def prune_to_texts(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, texts: Iterable[str]
                   ) -> tuple[PreTrainedModel, PreTrainedTokenizerFast, dict]:
    """The model (pruned in place) and a new tokenizer holding only the texts' tokens, when that shrinks the
    vocabulary; otherwise both unchanged. The dict says what was kept: `vocabulary`, `vocabulary_before`."""
    keep, before = used_token_ids(tokenizer, texts), len(tokenizer)
    if len(keep) < before:
        tokenizer, model = prune_tokenizer(tokenizer, keep), prune_embeddings(model, keep)
    return model, tokenizer, {"vocabulary": len(tokenizer), "vocabulary_before": before}


def prune_tokenizer(tokenizer: PreTrainedTokenizerFast, keep: list[int]) -> PreTrainedTokenizerFast:
    """A tokenizer whose token `keep[i]` has id i."""
    new_id = {old: new for new, old in enumerate(keep)}
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec["model"]
    if model["type"] == "Unigram":
        model["vocab"] = [model["vocab"][old] for old in keep]
        if model.get("unk_id") is not None:
            model["unk_id"] = new_id[model["unk_id"]]
    elif model["type"] in ("WordPiece", "WordLevel"):
        token_of = {i: t for t, i in model["vocab"].items()}
        model["vocab"] = {token_of[old]: new for new, old in enumerate(keep) if old in token_of}
    else:  # the config refuses these before any work; tinykd.teacher_shape holds the list of what is rewritten
        *rest, last = PRUNABLE_TOKENIZERS
        raise ValueError(f"vocabulary pruning supports {', '.join(rest)} and {last} tokenizers, not {model['type']}")
    for added in spec.get("added_tokens", []):
        added["id"] = new_id[added["id"]]
    processor = spec.get("post_processor") or {}
    for processor_part in processor.get("processors", [processor]):
        for special in (processor_part.get("special_tokens") or {}).values():
            special["ids"] = [new_id[i] for i in special["ids"]]
    pruned = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
                                     **tokenizer.special_tokens_map, model_max_length=tokenizer.model_max_length)
    return pruned


def prune_embeddings(model: PreTrainedModel, keep: list[int]) -> PreTrainedModel:
    """Keep the word-embedding rows `keep` (in place; tied output embeddings follow) and fix the config."""
    old = model.get_input_embeddings()
    new = nn.Embedding(len(keep), old.embedding_dim, padding_idx=None)
    with torch.no_grad():
        new.weight.copy_(old.weight[torch.tensor(keep)])
    model.set_input_embeddings(new)
    # A wrapper (e.g. the mean-pool teacher) keeps its encoder's config apart from its own: fix both.
    remap_config_ids([model.config, model.base_model.config], keep)
    pad = getattr(model.base_model.config, "pad_token_id", None)
    new.padding_idx = pad if isinstance(pad, int) else None
    return model


def remap_config_ids(configs: Iterable[PretrainedConfig], keep: list[int]) -> None:
    """Point each config's `vocab_size` and special-token ids at the pruned vocabulary (each config once)."""
    new_id = {old: new for new, old in enumerate(keep)}
    for config in {id(c): c for c in configs}.values():
        if hasattr(config, "vocab_size"):
            config.vocab_size = len(keep)
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id"):
            value = getattr(config, name, None)
            if isinstance(value, int):
                setattr(config, name, new_id.get(value))
