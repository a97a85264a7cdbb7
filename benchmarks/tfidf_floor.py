"""The floor every student must beat: TF-IDF over character 1-2 grams + logistic regression (scikit-learn).

It trains in seconds on the gold train rows and serves thousands of rows per second, so a student that is
not clearly more accurate than it has no reason to exist. The bench stage fits it, judges it on the test
split and times it through the same harness as the neural models (`encode` is the vectorizer: its
"tokenization"; calling it is the classifier: its "model"). Character n-grams need no word segmenter, which
suits Chinese; pairs are featurized as [a, b, a ⊙ b] so word overlap counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

NAME, BACKEND = "tfidf-lr", "sklearn"


@dataclass
class TfidfFloor:
    vectorizer: TfidfVectorizer
    classifier: LogisticRegression
    pair: bool
    name: str = NAME

    @classmethod
    def fit(cls, train: pd.DataFrame, pair: bool, max_features: int = 200_000, c: float = 4.0) -> TfidfFloor:
        texts = train["text_a"].tolist() + (train["text_b"].tolist() if pair else [])
        vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, min_df=2,
                                     max_features=max_features).fit(texts)
        floor = cls(vectorizer, LogisticRegression(C=c, max_iter=2000), pair)
        features = floor.encode(train["text_a"].tolist(), train["text_b"].tolist() if pair else None)["features"]
        floor.classifier.fit(features, train["label"].to_numpy())
        return floor

    def encode(self, texts_a: list[str], texts_b: list[str] | None, max_length: int | None = None) -> dict:
        """{'features': sparse (B, F)}; max_length is ignored (a bag of n-grams has no sequence axis)."""
        a = self.vectorizer.transform(texts_a)
        if not self.pair:
            return {"features": a}
        b = self.vectorizer.transform(texts_b)
        return {"features": sp.hstack([a, b, a.multiply(b)]).tocsr()}

    def __call__(self, inputs: dict) -> np.ndarray:
        """(B, K) scores; for two classes scikit-learn gives one margin, returned as [0, margin]."""
        scores = self.classifier.decision_function(inputs["features"])
        return np.stack([np.zeros_like(scores), scores], axis=1) if scores.ndim == 1 else scores

    def accuracy(self, rows: pd.DataFrame) -> float:
        inputs = self.encode(rows["text_a"].tolist(), rows["text_b"].tolist() if self.pair else None)
        return float((self(inputs).argmax(1) == rows["label"].to_numpy()).mean())

    @property
    def size_mb(self) -> float:
        """Vocabulary (n-gram strings) and coefficients, as a server would hold them."""
        vocabulary = sum(len(t.encode()) + 8 for t in self.vectorizer.vocabulary_)
        return (vocabulary + self.classifier.coef_.nbytes + self.vectorizer.idf_.nbytes) / 2**20
