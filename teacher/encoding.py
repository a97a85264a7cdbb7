"""Tokenizing task rows for a teacher, and a batched `inference_mode` forward that returns raw logits.

Shared by fine-tuning (its dev/test evaluation) and labelling, so both see identical inputs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerBase


def encode_rows(tokenizer: PreTrainedTokenizerBase, rows: pd.DataFrame, max_length: int) -> list[dict]:
    """One feature dict per row (unpadded `input_ids`, `attention_mask`; `labels` when rows have them)."""
    second = rows["text_b"].tolist() if "text_b" in rows else None
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
    collate = DataCollatorWithPadding(tokenizer)
    order = np.argsort([len(f["input_ids"]) for f in features], kind="stable")
    logits = np.zeros((len(features), num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = collate([{k: v for k, v in features[i].items() if k != "labels"} for i in index])
        logits[index] = forward(dict(batch))  # (B, K)
        if progress is not None:
            progress.update(len(index))
    return logits
