"""Bench shape "query against cached candidates": how a matcher serves, beside the pair-in, label-out cells.

A request is one query scored against every text of a fixed candidate set: the first `bench.candidates` distinct
second texts of the test split. A siamese model (bi-encoder, siamese BOW/TextCNN/BiLSTM) embeds the set once before
timing (`index_s`) and per query embeds the query and compares its vector with every cached one; a cross-encoder
(the teacher, cross students) has nothing to cache and scores the query paired with every candidate, C rows per
call. The TF-IDF floor (`bench.floor`) serves like a siamese model: its candidates' n-gram vectors are cached.
Either way a query's answer is C labels. Every model serves the same queries (the first `bench.candidate_queries`
first texts of the bench's request sequence) in whole passes, one query per call, for
at least `bench.duration_s` per repeat, repeats interleaved across models, at the largest of `bench.threads`.

Each siamese model × backend is also scored on the whole test split through the cached path (every distinct text
embedded once): its accuracy and F1 of the positive class, and the share of predictions equal to the pair graph's
on the bench's request rows (cached and uncached scoring must agree). A siamese build without an embed graph (a
fused or static-int8 ONNX graph of the whole pair) is not timed in this shape; its row says why (`not_measured`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score
from tqdm.auto import tqdm

from tinykd.artifacts import RunPaths, require
from tinykd.benchmarks.harness import RequestSequence, pinned_threads
from tinykd.benchmarks.tfidf_floor import BACKEND as FLOOR_BACKEND
from tinykd.benchmarks.tfidf_floor import NAME as FLOOR_NAME
from tinykd.benchmarks.tfidf_floor import TfidfFloor
from tinykd.compress.backend import Runner, load_embedder, load_runner
from tinykd.compress.model_source import ModelSource
from tinykd.compress.siamese_parts import Embedder
from tinykd.config import Config

SHAPE_CACHED, SHAPE_PAIRS = "cached", "pairs"  # a siamese model's cached candidates; a cross-encoder's C pairs
EMBED_BATCH = 64  # texts per embed call when indexing
NO_EMBED_GRAPH = "its build has no embed graph (one graph of the whole pair), so candidates cannot be cached"


@dataclass(frozen=True)
class CandidateWork:
    candidates: tuple[str, ...]  # the cached side, in order
    queries: tuple[str, ...]  # one call each


def candidate_work(config: Config, test: pd.DataFrame, requests: RequestSequence) -> CandidateWork:
    candidates = tuple(dict.fromkeys(test["text_b"]))[: config.bench.candidates]
    return CandidateWork(candidates, tuple(dict.fromkeys(requests.texts_a))[: config.bench.candidate_queries])


class _Cached:
    """A siamese model: candidates embedded once; a query is one embed and one compare against all of them."""

    shape = SHAPE_CACHED

    def __init__(self, source: ModelSource, embedder: Embedder, seq_len: int, candidates: tuple[str, ...]) -> None:
        self.source, self.embedder, self.seq_len = source, embedder, seq_len
        started = time.perf_counter()
        self.vectors = embed_texts(source, embedder, list(candidates), seq_len)  # (C, D)
        self.index_s = time.perf_counter() - started

    def __call__(self, query: str) -> np.ndarray:
        u = self.embedder.embed(self.source.encode_side([query], self.seq_len))  # (1, D)
        return self.embedder.compare(u, self.vectors)  # (C, K)


class _Pairs:
    """A cross-encoder: the query paired with every candidate, one call of C rows."""

    shape, index_s = SHAPE_PAIRS, 0.0

    def __init__(self, source: ModelSource, runner: Runner, seq_len: int, candidates: tuple[str, ...]) -> None:
        self.source, self.runner, self.seq_len, self.candidates = source, runner, seq_len, list(candidates)

    def __call__(self, query: str) -> np.ndarray:
        return self.runner(self.source.encode([query] * len(self.candidates), self.candidates, self.seq_len))


class _FloorCached:
    """The TF-IDF floor: the candidates' n-gram vectors computed once; a query is one transform and C feature rows."""

    shape = SHAPE_CACHED

    def __init__(self, floor: TfidfFloor, candidates: tuple[str, ...]) -> None:
        self.floor = floor
        started = time.perf_counter()
        self.vectors = floor.vectorizer.transform(list(candidates))  # (C, V) sparse
        self.index_s = time.perf_counter() - started

    def __call__(self, query: str) -> np.ndarray:
        u = self.floor.vectorizer.transform([query])  # (1, V)
        repeated = u[np.zeros(self.vectors.shape[0], dtype=np.intp)]  # (C, V)
        return self.floor({"features": self.floor.pair_features(repeated, self.vectors)})  # (C, K)


def embed_texts(source: ModelSource, embedder: Embedder, texts: list[str], seq_len: int) -> np.ndarray:
    """(N, D) embeddings of `texts`, in batches of similar length."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    vectors = None
    for start in range(0, len(texts), EMBED_BATCH):
        index = order[start : start + EMBED_BATCH]
        batch = [texts[i] for i in index]
        out = embedder.embed(source.encode_side(batch, seq_len))  # (B, D)
        vectors = np.zeros((len(texts), out.shape[1]), dtype=np.float32) if vectors is None else vectors
        vectors[index] = out
    return vectors


def cached_test_scores(source: ModelSource, embedder: Embedder, runner: Runner, test: pd.DataFrame,
                       requests: RequestSequence, seq_len: int) -> dict:
    """The test split through a siamese model's cached path: accuracy, F1 of the positive (last) class; and
    agreement with the pair graph on the request rows."""
    rows = list(requests.row_ids)
    pairs = runner(source.encode(list(test["text_a"].iloc[rows]), list(test["text_b"].iloc[rows]), seq_len))
    return _through_cache(lambda texts: embed_texts(source, embedder, texts, seq_len), embedder.compare, test, rows,
                          pairs.argmax(1))


def floor_cached_scores(floor: TfidfFloor, test: pd.DataFrame, requests: RequestSequence) -> dict:
    """`cached_test_scores` for the floor: its n-gram vectors are what it caches, its pair path `predict`."""
    rows = list(requests.row_ids)
    return _through_cache(floor.vectorizer.transform, lambda u, v: floor({"features": floor.pair_features(u, v)}),
                          test, rows, floor.predict(test.iloc[rows]))


def _through_cache(embed: Callable, compare: Callable, test: pd.DataFrame, rows: list[int],
                   pair_predictions: np.ndarray) -> dict:
    """Every distinct test text embedded once (`embed`: texts -> (N, D) vectors), each pair compared from the cache
    (`compare`: (B, D), (B, D) -> (B, K) scores): accuracy, F1 of the positive (last) class, and agreement with
    `pair_predictions`, the pair path's labels of the test rows `rows`."""
    texts = list(dict.fromkeys([*test["text_a"], *test["text_b"]]))
    vectors = embed(texts)  # (N, D)
    where = {text: i for i, text in enumerate(texts)}
    u, v = vectors[test["text_a"].map(where).to_numpy()], vectors[test["text_b"].map(where).to_numpy()]
    predicted = np.concatenate([compare(u[s:s + 1024], v[s:s + 1024]).argmax(1) for s in range(0, len(test), 1024)])
    labels = test["label"].to_numpy()
    return {"accuracy": float((predicted == labels).mean()),
            "positive_f1": float(f1_score(labels, predicted, pos_label=int(labels.max()), zero_division=0)),
            "agreement_with_pairs": float((pair_predictions == predicted[rows]).mean())}


def time_candidates(config: Config, paths: RunPaths, sources: dict[str, ModelSource], pairs: list,
                    requests: RequestSequence, seq_len: int, floor: TfidfFloor | None = None) -> pd.DataFrame:
    """One row per model × backend in the candidate shape (and the floor's, when given): queries per second,
    latency per query, index time and, for cached models, the cached path's test figures."""
    bench, threads = config.bench, max(config.bench.threads)
    test = pd.read_parquet(require(paths.split("test"), "data"))
    work = candidate_work(config, test, requests)
    scorers, extra, skipped = {}, {}, []  # keyed by (model, backend)
    for pair in tqdm(pairs, desc="candidates: index", unit="model"):
        key = (pair.model, pair.backend)
        source, directory = sources[pair.model], paths.compressed(pair.model, pair.backend)
        embedder = load_embedder(pair.backend, source, directory, threads) if source.siamese else None
        if source.siamese and embedder is None:
            skipped.append(key)
            continue
        runner = load_runner(pair.backend, source, directory, threads)
        if embedder is not None:
            with pinned_threads(threads):
                scorers[key] = _Cached(source, embedder, seq_len, work.candidates)
                extra[key] = cached_test_scores(source, embedder, runner, test, requests, seq_len)
        else:
            scorers[key] = _Pairs(source, runner, seq_len, work.candidates)
    if floor is not None:
        key = (FLOOR_NAME, FLOOR_BACKEND)
        scorers[key] = _FloorCached(floor, work.candidates)
        extra[key] = floor_cached_scores(floor, test, requests)
    windows = {key: [] for key in scorers}
    with tqdm(total=bench.repeats * len(scorers), desc="candidates", unit="window") as bar, pinned_threads(threads):
        for repeat in range(bench.repeats):
            order = list(scorers)
            shift = repeat % len(order)
            for key in order[shift:] + order[:shift]:
                scorer = scorers[key]
                scorer(work.queries[-1])  # warm-up call: not the first timed one
                windows[key].append(_window(scorer, work.queries, bench.duration_s))
                bar.update()
    records = []
    for (model, backend), measured in windows.items():
        latency = np.concatenate([w[1] for w in measured]) * 1e3
        qps = np.asarray([len(w[1]) / w[0] for w in measured])
        records.append({
            "model": model, "backend": backend,
            "shape": scorers[model, backend].shape,
            "candidates": len(work.candidates), "queries": len(work.queries), "threads": threads, "seq_len": seq_len,
            "queries_per_s": float(np.median(qps)), "qps_min": float(qps.min()), "qps_max": float(qps.max()),
            "p50_ms": float(np.percentile(latency, 50)), "p99_ms": float(np.percentile(latency, 99)),
            "pairs_scored_per_s": float(np.median(qps)) * len(work.candidates),
            "index_s": scorers[model, backend].index_s, "calls": int(len(latency)),
            **{f"cached_{k}": v for k, v in extra.get((model, backend), {}).items()},
        })
    records += [{"model": model, "backend": backend, "shape": SHAPE_CACHED, "not_measured": NO_EMBED_GRAPH}
                for model, backend in skipped]
    frame = pd.DataFrame(records)
    if "not_measured" not in frame:
        frame["not_measured"] = None
    teacher = frame[frame["model"] == "teacher"]
    fp32 = teacher.loc[teacher["backend"] == "torch-fp32", "queries_per_s"]
    frame["speedup_vs_teacher_fp32"] = frame["queries_per_s"] / (fp32.iat[0] if len(fp32) else np.nan)
    frame["speedup_vs_teacher_best"] = frame["queries_per_s"] / (teacher["queries_per_s"].max() if len(teacher)
                                                                  else np.nan)
    return frame


def _window(scorer, queries: tuple[str, ...], duration_s: float) -> tuple[float, np.ndarray]:
    """Whole passes over `queries`, one call each, until `duration_s`: (elapsed seconds, per-call seconds)."""
    latency, start = [], time.perf_counter()
    previous = start
    while previous - start < duration_s:
        for query in queries:
            scorer(query).argmax(1)  # (C,) labels
            now = time.perf_counter()
            latency.append(now - previous)
            previous = now
    return previous - start, np.asarray(latency)
