"""Each augmentation op's promised behaviour, on hand-checkable Chinese sentences."""

from __future__ import annotations

import random

import pytest

from tinykd.augment.n_sampling import NSampling
from tinykd.augment.pos_substitution import PosIndex, PosSubstitution
from tinykd.augment.unk_noise import UnkNoise
from tinykd.augment.words import join, tag

TEXT = "这家酒店的服务很好，房间也干净。"
OTHER = "那个宾馆的早餐太差，位置也偏僻。"
CORPUS = [TEXT, OTHER, "这本书的内容很精彩，印刷也清楚。", "我们的电脑屏幕太暗，键盘也难用。"]


@pytest.fixture(scope="module")
def index() -> PosIndex:
    return PosIndex.build(tag(t) for t in CORPUS)


def test_tagging_round_trips_exactly():
    for text in CORPUS + ["hello world 好的  iPhone13很贵!!"]:
        assert join(tag(text)) == text


@pytest.mark.parametrize("make", [lambda ix: UnkNoise(p=0.0), lambda ix: PosSubstitution(ix, p=0.0)])
def test_probability_zero_is_the_identity(make, index):
    op = make(index)
    for seed in range(20):
        assert op(TEXT, seed=seed) == TEXT


def test_unk_probability_one_masks_every_word_and_keeps_punctuation():
    words = UnkNoise(p=1.0, unk_token="<unk>").apply([tag(TEXT)], random.Random(0))[0]
    assert [w.text for w in words] == ["<unk>" if w.is_word else w.text for w in tag(TEXT)]
    assert "，" in join(words) and "。" in join(words)


def test_pos_probability_one_changes_every_word_that_has_an_alternative(index):
    original = tag(TEXT)
    changed = PosSubstitution(index, p=1.0).apply([original], random.Random(0))[0]
    for before, after in zip(original, changed):
        if before.is_word and len(index.words[before.pos]) > 1:
            assert after.text != before.text, before
        assert after.pos == before.pos  # the substitute has the same part of speech
        if after.text != before.text:
            assert after.text in index.words[before.pos]


def test_substitutes_come_from_the_dataset_vocabulary_with_the_same_tag(index):
    for seed in range(30):
        for w in PosSubstitution(index, p=0.5).apply([tag(OTHER)], random.Random(seed))[0]:
            if w.is_word:
                assert w.text in index.words[w.pos]


def test_n_sampling_returns_a_substring_of_every_length():
    lengths = set()
    words = tag(TEXT)
    for seed in range(200):
        sample = NSampling()(TEXT, seed=seed)
        assert sample and sample in TEXT
        lengths.add(len(tag(sample)))
    assert lengths == set(range(1, len(words) + 1))  # any span length 1..len occurs


@pytest.mark.parametrize("make", [
    lambda ix: UnkNoise(p=0.3), lambda ix: PosSubstitution(ix, p=0.3), lambda ix: NSampling(),
])
def test_fixed_seed_gives_the_same_output(make, index):
    op = make(index)
    outputs = {op(TEXT, seed=s) for s in range(10)}
    assert len(outputs) > 1  # the seed matters ...
    assert [op(TEXT, seed=s) for s in range(10)] == [op(TEXT, seed=s) for s in range(10)]  # ... and fixes it


def test_pairs_stay_pairs_and_shared_words_change_together(index):
    a, b = "酒店的服务很好", "酒店的服务很差"
    for seed in range(30):
        out = UnkNoise(p=0.5)((a, b), seed=seed)
        assert isinstance(out, tuple) and len(out) == 2
        assert out[0].startswith("<unk>") == out[1].startswith("<unk>")  # '酒店' masked in both or neither
        swapped = PosSubstitution(index, p=0.5).apply([tag(a), tag(b)], random.Random(seed))
        assert len(swapped) == 2 and [w.text for w in swapped[0][:3]] == [w.text for w in swapped[1][:3]]
        sampled = NSampling()((a, b), seed=seed)
        assert sampled[0] in a and sampled[1] in b
