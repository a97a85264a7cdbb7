"""Tokenizing task rows for a teacher, and a batched `inference_mode` forward that returns raw logits.

Shared by fine-tuning (its dev/test evaluation) and labelling, so both see identical inputs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase


SIDE_B = "_b"  # suffix of the second text's inputs when the two texts of a pair are encoded apart


def encode_rows(tokenizer: PreTrainedTokenizerBase, rows: pd.DataFrame, max_length: int,
                sides: bool = False) -> list[dict]:
    """One feature dict per row (unpadded `input_ids`, `attention_mask`; `labels` when rows have them).

    A pair is one sequence `[CLS] a [SEP] b [SEP]` for a cross-encoder; with `sides` (a bi-encoder) each text is
    its own sequence, the second under `input_ids_b` / `attention_mask_b`, each truncated to `max_length`."""
    second = rows["text_b"].tolist() if "text_b" in rows else None
    if sides and second is not None:
        a, b = (tokenizer(texts, truncation=True, max_length=max_length) for texts in (rows["text_a"].tolist(), second))
        names = ("input_ids", "attention_mask")
        features = [{**{k: a[k][i] for k in names}, **{k + SIDE_B: b[k][i] for k in names}} for i in range(len(rows))]
    else:
        encoded = tokenizer(rows["text_a"].tolist(), second, truncation=True, max_length=max_length)
        features = [{key: encoded[key][i] for key in encoded.keys()} for i in range(len(rows))]
    if "label" in rows:
        for feature, label in zip(features, rows["label"].tolist()):
            feature["labels"] = int(label)
    return features


@torch.inference_mode()
def predict_logits(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    features: list[dict],
    batch_size: int,
    progress: tqdm | None = None,
) -> np.ndarray:
    """Logits (N, K) float32 in the order of `features`; batches are formed by length to cut padding."""
    model.eval()
    device = next(model.parameters()).device

    def forward(batch: dict[str, torch.Tensor]) -> np.ndarray:
        return model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu().numpy()  # (B, K)

    return batched_logits(forward, tokenizer, features, batch_size, model.config.num_labels, progress)


def batched_logits(
    forward: Callable[[dict[str, torch.Tensor]], np.ndarray],
    tokenizer: PreTrainedTokenizerBase,
    features: list[dict],
    batch_size: int,
    num_labels: int,
    progress: tqdm | None = None,
) -> np.ndarray:
    """`forward` over length-grouped, padded batches of `features`; logits (N, K) float32 in `features` order.

    `forward` is the torch model or its ONNX Runtime graph: both see the same batches.
    """
    order = length_order(features)
    logits = np.zeros((len(features), num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = pad_features(tokenizer, [features[i] for i in index])
        logits[index] = forward(batch)  # (B, K)
        if progress is not None:
            progress.update(len(index))
    return logits


def length_order(features: list[dict]) -> np.ndarray:
    """Indices of `features` from the fewest tokens to the most (both texts of a pair encoded apart counted)."""
    return np.argsort([len(f["input_ids"]) + len(f.get("input_ids" + SIDE_B, ())) for f in features], kind="stable")


def pad_features(tokenizer: PreTrainedTokenizerBase, features: list[dict]) -> dict[str, torch.Tensor]:
    """The model inputs of `features`, padded to a batch: each side of a pair encoded apart to its own longest row."""
    names = ("input_ids", "attention_mask", "token_type_ids")
    batch = dict(tokenizer.pad([{k: f[k] for k in names if k in f} for f in features], return_tensors="pt"))
    if "input_ids" + SIDE_B in features[0]:
        side = tokenizer.pad([{k: f[k + SIDE_B] for k in names if k + SIDE_B in f} for f in features],
                             return_tensors="pt")
        batch |= {k + SIDE_B: v for k, v in side.items()}
    return batch


class SidesCollator:
    """Trainer batches of rows encoded with `sides` (a bi-encoder): each text padded to its own longest row, the
    labels kept. HF's `DataCollatorWithPadding` pads only `input_ids` and its companions."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = pad_features(self.tokenizer, features)
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features])
        return batch
