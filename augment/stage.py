"""Stage `augment`: new training texts made from the train split, for the teacher to label.

Each source row is tagged once (jieba POS; cached with the POS index in `augment/`), then gives
`multiplier` new rows, each made by one op drawn by the configured weights. A new row identical to its
source or to an earlier new row of the same source is retried up to `max_tries` times, then dropped
(counted). Writes `augment/augmented.parquet`: `text_a[, text_b], source_row, op`.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

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
from tinykd.augment.n_sampling import NSampling
from tinykd.augment.op import AugmentOp
from tinykd.augment.pos_substitution import PosIndex, PosSubstitution
from tinykd.augment.unk_noise import UnkNoise
from tinykd.augment.words import Tagged, Word, join, tag
from tinykd.config import AugmentConfig, Config, NSampleOp, PosOp, TextAttackOp, UnkOp
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

    def summary(self) -> str:
        if self.skipped:
            return f"augment: up to date ({self.new_rows} rows)"
        return (
            f"augment: {self.new_rows} new rows from {self.source_rows} source rows "
            f"({self.dropped_duplicates} duplicates dropped) at {self.rows_per_second:.0f} rows/s "
            f"(tagging {self.tag_seconds:.0f}s)"
        )


def run(config: Config, paths: RunPaths) -> AugmentResult:
    spec = config.augment
    if spec is None:
        raise ConfigError(f"{config.task.name}: the config has no augment section (see docs/config.md)")
    data_stamp = recorded_fingerprint(require(paths.data_summary, "data"))
    unk_token = spec.unk_token or _teacher_unk_token(config)
    stamp = fingerprint(spec, unk_token, data_stamp)
    if recorded_fingerprint(paths.augment_summary) == stamp and paths.augmented.exists():
        previous = read_json(paths.augment_summary)
        return AugmentResult(previous["source_rows"], previous["new_rows"], previous["dropped_duplicates"],
                             previous["rows_per_second"], previous["tag_seconds"], skipped=True)

    started = time.perf_counter()
    columns = text_columns(config.task)
    tagged, index, tag_seconds = _tagged_train(paths, columns, data_stamp)
    ops = build_ops(spec, unk_token, index)
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
                if new not in seen and all(new):
                    seen.add(new)
                    records.append((*new, row, op.name))
                    break
            else:
                dropped += 1
    augmented = pd.DataFrame.from_records(records, columns=[*columns, "source_row", "op"])
    write_parquet(paths.augmented, augmented)

    seconds = time.perf_counter() - started
    summary = {
        "fingerprint": stamp,
        "source_rows": len(tagged),
        "new_rows": len(augmented),
        "dropped_duplicates": dropped,
        "rows_by_op": {k: int(v) for k, v in augmented["op"].value_counts().sort_index().items()},
        "unk_token": unk_token,
        "tag_seconds": round(tag_seconds, 1),
        "seconds": round(seconds, 1),
        "rows_per_second": round(len(augmented) / seconds, 1),
    }
    write_json(paths.augment_summary, summary)
    return AugmentResult(len(tagged), len(augmented), dropped, summary["rows_per_second"], tag_seconds)


def build_ops(spec: AugmentConfig, unk_token: str, index: PosIndex) -> list[AugmentOp]:
    """One op object per configured op, in config order."""
    ops: list[AugmentOp] = []
    for op_spec in spec.ops:
        if isinstance(op_spec, UnkOp):
            ops.append(UnkNoise(p=op_spec.p, unk_token=unk_token))
        elif isinstance(op_spec, PosOp):
            ops.append(PosSubstitution(index, p=op_spec.p))
        elif isinstance(op_spec, NSampleOp):
            ops.append(NSampling())
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
