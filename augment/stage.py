"""Stage `augment`: new training texts made from the train split, for the teacher to label.

Each source row is tagged once (jieba POS; cached with the POS index in `augment/`), then gives
`multiplier` new rows, each made by one op drawn by the configured weights. A new row identical to its
source or to an earlier new row of the same source is retried up to `max_tries` times, then dropped
(counted), and so is a new row that copies a dev or test text (exactly or after the leak guard's normalising).
The unlabeled pool (`augment.unlabeled`, `tinykd.augment.unlabeled_pool`) adds its rows as op `pool` (`pool:<name>`
for a named source).
Writes `augment/augmented.parquet`: `text_a[, text_b], source_row, op` (with a pool also `source`, `domain`:
"train" and "" for augmented rows), and `augment/summary.json` with what every step dropped.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import asdict, dataclass

import pandas as pd
from tqdm.auto import tqdm

from tinykd.artifacts import (
    RunPaths,
    fingerprint,
    read_json,
    recorded_fingerprint,
    require,
    write_json,
    write_parquet,
)
from tinykd.augment.leak_guard import LeakGuard, Row
from tinykd.augment.n_sampling import NSampling
from tinykd.augment.op import AugmentOp
from tinykd.augment.pair_sampling import Bm25Pairs, RandomPairs
from tinykd.augment.pos_substitution import PosIndex, PosSubstitution
from tinykd.augment.unk_noise import UnkNoise
from tinykd.augment.unlabeled_pool import pool_digest, pool_rows
from tinykd.augment.words import Tagged, Word, join, tag
from tinykd.config import AugmentConfig, Bm25PairOp, Config, NSampleOp, PosOp, RandomPairOp, TextAttackOp, UnkOp
from tinykd.errors import ConfigError
from tinykd.task_rows import text_columns


@dataclass
class AugmentResult:
    source_rows: int
    new_rows: int
    dropped_duplicates: int
    rows_per_second: float
    tag_seconds: float
    skipped: bool = False
    pool_rows: int = 0
    pool_dropped_leaks: int = 0  # pool texts that copied a dev or test text

    def summary(self) -> str:
        pool = (f" + {self.pool_rows} pool rows ({self.pool_dropped_leaks} copies of dev/test texts dropped)"
                if self.pool_rows or self.pool_dropped_leaks else "")
        if self.skipped:
            return f"augment: up to date ({self.new_rows} rows{pool})"
        return (
            f"augment: {self.new_rows} new rows from {self.source_rows} source rows "
            f"({self.dropped_duplicates} duplicates dropped) at {self.rows_per_second:.0f} rows/s "
            f"(tagging {self.tag_seconds:.0f}s){pool}"
        )


def run(config: Config, paths: RunPaths) -> AugmentResult:
    spec = config.augment
    if spec is None:
        raise ConfigError(f"{config.task.name}: the config has no augment section (see docs/config.md)")
    data_stamp = recorded_fingerprint(require(paths.data_summary, "data"))
    unk_token = (spec.unk_token or _teacher_unk_token(config)) if spec.multiplier else None
    stamp = _fingerprint(spec, unk_token, data_stamp)
    if recorded_fingerprint(paths.augment_summary) == stamp and paths.augmented.exists():
        previous = read_json(paths.augment_summary)
        return AugmentResult(previous["source_rows"], previous["new_rows"], previous["dropped_duplicates"],
                             previous["rows_per_second"], previous["tag_seconds"], skipped=True,
                             pool_rows=previous.get("pool_rows", 0),
                             pool_dropped_leaks=previous.get("pool_dropped_leaks", 0))

    started = time.perf_counter()
    columns = text_columns(config.task)
    protected = {split: _rows(pd.read_parquet(require(paths.split(split), "data")), columns)
                 for split in ("dev", "test")}
    guard = LeakGuard(protected)
    leaks: Counter = Counter()
    if spec.multiplier:
        tagged, index, tag_seconds = _tagged_train(paths, columns, data_stamp)
        test_texts = {text for row in protected["test"] for text in row}  # pair sampling never draws these
        records, dropped = _augmented_records(spec, build_ops(spec, unk_token, index, test_texts), tagged, guard,
                                              leaks)
    else:  # the pool only: no tagging, no ops
        tagged, tag_seconds, records, dropped = [], 0.0, [], 0
    augmented = pd.DataFrame.from_records(records, columns=[*columns, "source_row", "op"])
    new_rows = len(augmented)
    pool_summary = {}
    if spec.unlabeled:
        train = _rows(pd.read_parquet(require(paths.split("train"), "data")), columns)
        pool, counts = pool_rows(spec.unlabeled, columns[0], protected["dev"], protected["test"], train)
        augmented = (pd.concat([augmented.assign(source="train", domain=""), pool], ignore_index=True)
                     if new_rows else pool)
        pool_summary = {
            "pool_rows": len(pool),
            "pool_dropped_leaks": sum(c.dropped_dev_exact + c.dropped_dev_normalised + c.dropped_test_exact
                                      + c.dropped_test_normalised for c in counts),
            "pool": [asdict(c) for c in counts],
        }
    write_parquet(paths.augmented, augmented)

    seconds = time.perf_counter() - started
    summary = {
        "fingerprint": stamp,
        "source_rows": len(tagged),
        "new_rows": new_rows,
        "dropped_duplicates": dropped,
        # candidates that copied a dev/test text (exactly or normalised); each was retried like a duplicate
        "augmented_leaks": {f"{split}_{how}": leaks[split, how] for split in ("dev", "test")
                            for how in ("exact", "normalised")},
        **pool_summary,
        "rows_by_op": {k: int(v) for k, v in augmented["op"].value_counts().sort_index().items()},
        "unk_token": unk_token,
        "tag_seconds": round(tag_seconds, 1),
        "seconds": round(seconds, 1),
        "rows_per_second": round(new_rows / seconds, 1),
    }
    write_json(paths.augment_summary, summary)
    return AugmentResult(len(tagged), new_rows, dropped, summary["rows_per_second"], tag_seconds,
                         pool_rows=pool_summary.get("pool_rows", 0),
                         pool_dropped_leaks=pool_summary.get("pool_dropped_leaks", 0))


def _fingerprint(spec: AugmentConfig, unk_token: str | None, data_stamp: str | None) -> str:
    """What the augmented rows depend on. Without a pool the spec is stamped without its (empty) `unlabeled` key,
    so runs from before the pool existed stay up to date; with one, the pool files' bytes count too. A source
    without a `name` is stamped without that key, so pools from before names existed stay up to date too."""
    if not spec.unlabeled:
        return fingerprint(spec.model_dump(mode="json", exclude={"unlabeled"}), unk_token, data_stamp)
    unnamed = {i: {"name"} for i, source in enumerate(spec.unlabeled) if source.name is None}
    return fingerprint(spec.model_dump(mode="json", exclude={"unlabeled": unnamed}), unk_token, data_stamp,
                       pool_digest(spec.unlabeled))


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[Row]:
    return list(zip(*(frame[c].astype(str) for c in columns)))


def _augmented_records(spec: AugmentConfig, ops: list[AugmentOp], tagged: list[list[Tagged]], guard: LeakGuard,
                       leaks: Counter) -> tuple[list[tuple], int]:
    """`multiplier` new rows per tagged train row (text columns, source_row, op) and how many were dropped.
    A candidate equal to its source, to an earlier new row of that source, or to a dev/test text (counted in
    `leaks` by split and how) is retried up to `max_tries` times."""
    source_texts = [join(words) for texts in tagged for words in texts]
    for op in ops:
        op.prepare(source_texts)
    weights = [op_spec.weight for op_spec in spec.ops]

    records, dropped = [], 0
    for row, texts in enumerate(tqdm(tagged, desc="augment", unit="row")):
        # One RNG per source row: the output for a row does not depend on any other row.
        rng = random.Random(f"{spec.seed}:{row}")
        seen = {tuple(join(words) for words in texts)}
        for _ in range(spec.multiplier):
            for _ in range(spec.max_tries):
                op = rng.choices(ops, weights)[0]
                new = tuple(join(words).strip() for words in op.apply(list(texts), rng))
                if new in seen or not all(new):
                    continue
                copied = guard.match(new)
                if copied is not None:
                    leaks[copied] += 1
                    continue
                seen.add(new)
                records.append((*new, row, op.name))
                break
            else:
                dropped += 1
    return records, dropped


def build_ops(spec: AugmentConfig, unk_token: str, index: PosIndex, test_texts: set[str] = frozenset()
              ) -> list[AugmentOp]:
    """One op object per configured op, in config order; pair sampling never draws a text of `test_texts`."""
    ops: list[AugmentOp] = []
    for op_spec in spec.ops:
        if isinstance(op_spec, UnkOp):
            ops.append(UnkNoise(p=op_spec.p, unk_token=unk_token))
        elif isinstance(op_spec, PosOp):
            ops.append(PosSubstitution(index, p=op_spec.p))
        elif isinstance(op_spec, NSampleOp):
            ops.append(NSampling())
        elif isinstance(op_spec, Bm25PairOp):
            ops.append(Bm25Pairs(op_spec.top_k, excluded=test_texts))
        elif isinstance(op_spec, RandomPairOp):
            ops.append(RandomPairs(excluded=test_texts))
        elif isinstance(op_spec, TextAttackOp):
            from tinykd.augment.textattack_op import TextAttackTransformation  # optional extra, imported on demand

            ops.append(TextAttackTransformation(op_spec.transformation, op_spec.args))
    return ops


def _teacher_unk_token(config: Config) -> str:
    """The teacher labels the new rows, so masked words must read as *its* unknown token."""
    from transformers import AutoTokenizer

    from tinykd.teacher.checkpoints import resolve_base

    return AutoTokenizer.from_pretrained(resolve_base(config.teacher.base)).unk_token


def _tagged_train(paths: RunPaths, columns: list[str], data_stamp: str) -> tuple[list[list[Tagged]], PosIndex, float]:
    """jieba words + POS of every train row and the POS index, from the cache when the data is unchanged."""
    started = time.perf_counter()
    if paths.tagged_train.exists() and recorded_fingerprint(paths.pos_index) == data_stamp:
        frame = pd.read_parquet(paths.tagged_train)
        tagged = [
            [tuple(Word(w, p) for w, p in zip(row[f"{c}_words"], row[f"{c}_pos"])) for c in columns]
            for row in frame.to_dict("records")
        ]
        return tagged, PosIndex.from_json(read_json(paths.pos_index)["words"]), time.perf_counter() - started

    train = pd.read_parquet(require(paths.split("train"), "data"))
    tagged = [[tag(text) for text in texts] for texts in tqdm(
        zip(*(train[c] for c in columns)), total=len(train), desc="tag (jieba)", unit="row")]
    index = PosIndex.build(words for texts in tagged for words in texts)
    frame = pd.DataFrame({
        **{f"{c}_words": [[w.text for w in texts[i]] for texts in tagged] for i, c in enumerate(columns)},
        **{f"{c}_pos": [[w.pos for w in texts[i]] for texts in tagged] for i, c in enumerate(columns)},
    })
    write_parquet(paths.tagged_train, frame)
    write_json(paths.pos_index, {"fingerprint": data_stamp, "words": index.to_json()})
    return tagged, index, time.perf_counter() - started
