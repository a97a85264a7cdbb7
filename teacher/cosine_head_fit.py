"""Start a bi-encoder teacher's cosine head where the base encoder already decides well.

The head's margin is `scale * (cos - shift)`. E5's cosines crowd into a narrow band (about 0.7-1.0: it was trained
at temperature 0.01), so a head started at any fixed scale and shift begins near chance, and at the encoder's
learning rate the two numbers would take thousands of steps to move there. Instead they are fitted before
fine-tuning: a logistic regression of the train labels on the zero-shot cosines of up to `FIT_ROWS` train pairs.
On LCQMC that start alone scores like a fine-tuned cross-encoder on test (docs/results.md).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from transformers import PreTrainedTokenizerBase

from tinykd.teacher.bi_encoder import BiEncoderForSequenceClassification
from tinykd.teacher.encoding import predict_logits

FIT_ROWS = 2048  # two numbers to fit: a couple of thousand pairs pin them; the forward passes are the cost


def fit_cosine_head(model: BiEncoderForSequenceClassification, tokenizer: PreTrainedTokenizerBase,
                    features: list[dict], batch_size: int, seed: int) -> dict:
    """Set `model.head`'s scale and shift from the labelled `features` (encoded with sides); what was fitted."""
    pick = np.random.default_rng(seed).permutation(len(features))[:FIT_ROWS]
    rows = [features[i] for i in pick]
    head = model.head
    with torch.no_grad():  # scale 1, shift 0: the logit margin is the cosine itself
        head.scale.fill_(1.0)
        head.shift.fill_(0.0)
    logits = predict_logits(model, tokenizer, rows, batch_size)  # (n, 2)
    cosine = (logits[:, 1] - logits[:, 0]).reshape(-1, 1)  # (n, 1)
    labels = np.array([f["labels"] for f in rows])
    regression = LogisticRegression(C=1e4).fit(cosine, labels)  # nearly unregularised: one feature, many rows
    scale, bias = float(regression.coef_[0, 0]), float(regression.intercept_[0])
    with torch.no_grad():
        head.scale.fill_(scale)
        head.shift.fill_(-bias / scale)
    model.train()
    return {"rows": len(rows), "scale": round(scale, 4), "shift": round(-bias / scale, 6),
            "train_accuracy": round(float(regression.score(cosine, labels)), 4)}
