"""The floor every student must beat: TF-IDF over character 1-2 grams + logistic regression (scikit-learn).

It trains in seconds on the gold train rows and serves thousands of rows per second, so a student that is
not clearly more accurate than it has no reason to exist. The bench stage fits it, judges it on the test
split and times it through the same harness as the neural models (`encode` is the vectorizer: its
"tokenization"; calling it is the classifier: its "model"). Character n-grams need no word segmenter, which
suits Chinese; pairs are featurized as [a, b, a ⊙ b] so word overlap counts. Its scores keep the task's
class ids: one column per declared class, in declared order, even for a class the train split lacks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from tinykd.errors import DataError
from tinykd.metrics import classification_metrics

NAME, BACKEND = "tfidf-lr", "sklearn"


@dataclass
class TfidfFloor:
    vectorizer: TfidfVectorizer
    classifier: LogisticRegression
    pair: bool
    num_labels: int = 2  # declared classes: the width of the score matrix
    name: str = NAME

    @classmethod
    def fit(cls, train: pd.DataFrame, pair: bool, max_features: int = 200_000, c: float = 4.0,
            num_labels: int | None = None) -> TfidfFloor:
        """`num_labels`: the task's declared classes (default: the largest label in train + 1, which misses a
        class absent from train when it is the last)."""
        labels = train["label"].to_numpy()
        num_labels = int(labels.max()) + 1 if num_labels is None else num_labels
        if len(np.unique(labels)) < 2:
            raise DataError(f"the TF-IDF floor needs at least two classes in train; it has only {np.unique(labels)}")
        texts = train["text_a"].tolist() + (train["text_b"].tolist() if pair else [])
        vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, min_df=2,
                                     max_features=max_features).fit(texts)
        floor = cls(vectorizer, LogisticRegression(C=c, max_iter=2000), pair, num_labels)
        features = floor.encode(train["text_a"].tolist(), train["text_b"].tolist() if pair else None)["features"]
        floor.classifier.fit(features, labels)
        return floor

    def encode(self, texts_a: list[str], texts_b: list[str] | None, max_length: int | None = None) -> dict:
        """{'features': sparse (B, F)}; max_length is ignored (a bag of n-grams has no sequence axis)."""
        a = self.vectorizer.transform(texts_a)
        if not self.pair:
            return {"features": a}
        return {"features": self.pair_features(a, self.vectorizer.transform(texts_b))}

    @staticmethod
    def pair_features(a: sp.spmatrix, b: sp.spmatrix) -> sp.csr_matrix:
        """Each side's n-gram vectors (B, V) -> a pair's features [a, b, a ⊙ b] (B, 3V). A side's vectors need no
        other text, so a matcher can cache its candidates' (the bench's cached-candidate shape)."""
        return sp.hstack([a, b, a.multiply(b)]).tocsr()

    def probabilities(self, inputs: dict) -> np.ndarray:
        """(B, K) class probabilities, one column per declared class in declared order. scikit-learn's columns
        are its `classes_`, the labels seen in train; a declared class it never saw gets probability 0."""
        seen = self.classifier.predict_proba(inputs["features"])  # (B, len(classes_))
        out = np.zeros((seen.shape[0], self.num_labels), dtype=seen.dtype)
        out[:, self.classifier.classes_] = seen
        return out

    def __call__(self, inputs: dict) -> np.ndarray:
        """(B, K) log-probabilities (the floor's logits); a class absent from train scores -inf, the lowest."""
        with np.errstate(divide="ignore"):
            return np.log(self.probabilities(inputs))

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """(N,) predicted class ids of the rows."""
        return self(self.encode(rows["text_a"].tolist(), rows["text_b"].tolist() if self.pair else None)).argmax(1)

    def accuracy(self, rows: pd.DataFrame) -> float:
        return float((self.predict(rows) == rows["label"].to_numpy()).mean())

    def metrics(self, rows: pd.DataFrame, names: list[str]) -> dict:
        """Accuracy, macro-F1 and per-class figures (keyed by label name) on the rows: `tinykd.metrics`' dict."""
        if len(names) != self.num_labels:
            raise ValueError(f"{len(names)} label names for a floor of {self.num_labels} classes")
        return classification_metrics(rows["label"].to_numpy(), self.predict(rows), names)

    @property
    def size_mb(self) -> float:
        """Vocabulary (n-gram strings) and coefficients, as a server would hold them."""
        vocabulary = sum(len(t.encode()) + 8 for t in self.vectorizer.vocabulary_)
        return (vocabulary + self.classifier.coef_.nbytes + self.vectorizer.idf_.nbytes) / 2**20
