"""Pair sampling (bm25_pair, random_pair): pairs from the train texts, never a test text, never a row's own
partner; a BM25 partner is among the text's nearest neighbours; in the stage, planted dev/test pairs are dropped."""

from __future__ import annotations

import random

import pandas as pd

from tests.conftest import file_task, write_config
from tinykd import data_stage
from tinykd.artifacts import RunPaths, read_json
from tinykd.augment import stage
from tinykd.augment.pair_sampling import Bm25Pairs, RandomPairs
from tinykd.augment.words import join, tag
from tinykd.config_loading import load_config

QUESTIONS = ["北京今天天气怎么样", "北京今天的天气如何", "上海明天会下雨吗", "上海明天下雨吗", "怎么煮米饭好吃",
             "米饭怎么煮才好吃", "手机屏幕碎了怎么办", "手机屏幕摔碎了怎么修", "哪里可以买到火车票", "火车票在哪里买"]
TEST_TEXT = "上海明天会下雨吗"  # a train text that is also a test text: never drawn


def _draws(op, rows, n=400, seed=0):
    rng = random.Random(seed)
    tagged = [tuple(tag(t) for t in row) for row in rows]
    return [tuple(join(w) for w in op.apply(list(tagged[i % len(tagged)]), rng)) for i in range(n)]


def test_random_pairs_never_draw_a_test_text_nor_the_rows_own_partner():
    rows = list(zip(QUESTIONS[::2], QUESTIONS[1::2]))
    op = RandomPairs(excluded={"上海 明天会下雨吗？"})  # excluded after normalising: width, spacing, punctuation
    op.prepare(QUESTIONS)
    assert TEST_TEXT not in op.corpus and len(op.corpus) == 9
    draws = _draws(op, rows)
    assert all(TEST_TEXT not in pair for pair in draws)
    new = [pair for pair in draws if pair not in rows]
    assert len(new) > 300 and all(a != b for a, b in new)
    partner = dict(rows) | {b: a for a, b in rows}
    assert all(partner.get(a) != b for a, b in new)  # a row's own pair is not a new pair
    assert {b for _, b in new} == set(op.corpus)  # every drawable text is drawn as a partner


def test_a_bm25_partner_is_a_nearest_neighbour():
    rows = list(zip(QUESTIONS[::2], QUESTIONS[1::2]))
    op = Bm25Pairs(top_k=1, excluded={TEST_TEXT})
    op.prepare(QUESTIONS)
    # The rows' own partners are their nearest neighbours, so with top_k 1 each side is paired with the next nearest,
    # a question of another row: check a few by hand.
    draws = set(_draws(op, [("北京今天天气怎么样", "怎么煮米饭好吃")], n=50))
    assert ("北京今天天气怎么样", "北京今天的天气如何") in draws  # shares 北京, 今天, 天气
    assert ("怎么煮米饭好吃", "米饭怎么煮才好吃") in draws
    assert all(TEST_TEXT not in pair for pair in _draws(op, rows))
    assert len(draws) == 2  # top_k 1: one partner per side


def _pair_task(tmp_path, train_rows, dev_rows, test_rows):
    files = {}
    for split, rows in (("train", train_rows), ("dev", dev_rows), ("test", test_rows)):
        files[split] = tmp_path / f"{split}.tsv"
        files[split].write_text("text_a\ttext_b\tlabel\n" + "".join(f"{a}\t{b}\t{y}\n" for a, b, y in rows),
                                encoding="utf-8")
    return file_task(files, kind="pair", columns={"text_b": "text_b"})


def test_the_stage_samples_pairs_from_train_texts_and_drops_planted_dev_and_test_pairs(tmp_path):
    train = [(a, b, i % 2) for i, (a, b) in enumerate(zip(QUESTIONS[::2], QUESTIONS[1::2]))]
    train += [("火车票在哪里买", "手机屏幕碎了怎么办", 0), ("北京今天的天气如何", "怎么煮米饭好吃", 0)]
    dev = [("手机屏幕碎了怎么办", "哪里可以买到火车票", 0)]  # a pair sampling can make, in the other order
    test = [("米饭怎么煮才好吃", "北京今天天气怎么样", 0), (TEST_TEXT, "天气预报", 0)]  # train texts: never drawn
    augment = {"multiplier": 6, "seed": 0, "ops": [{"op": "bm25_pair", "top_k": 3}, {"op": "random_pair"}]}
    config = load_config(write_config(tmp_path / "c.yaml", {"task": _pair_task(tmp_path, train, dev, test),
                                                            "augment": augment}))
    paths = RunPaths(tmp_path / "run")
    data_stage.run(config, paths)
    stage.run(config, paths)
    rows = pd.read_parquet(paths.augmented)
    summary = read_json(paths.augment_summary)
    assert set(rows["op"]) == {"bm25_pair", "random_pair"}
    pairs = set(zip(rows["text_a"], rows["text_b"]))
    protected = {(a, b) for a, b, _ in dev + test}
    assert not pairs & (protected | {(b, a) for a, b in protected})
    assert summary["augmented_leaks"]["dev_exact"] > 0  # the dev pair was made (reversed) and dropped
    train_texts = {t for a, b, _ in train for t in (a, b)}
    test_texts = {t for a, b, _ in test for t in (a, b)}
    assert {t for pair in pairs for t in pair} == train_texts - test_texts  # so no test pair can be made
