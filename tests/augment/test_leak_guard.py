"""The leak guard's normalising and matching: a copy of a dev/test text is caught however it is dressed up."""

from __future__ import annotations

import pytest

from tinykd.augment.leak_guard import LeakGuard, normalised, row_key


@pytest.mark.parametrize("variant", [
    "酒店WiFi很好，5星！",  # the text itself
    "酒店ＷｉＦｉ很好，５星！",  # full-width letters and digits
    "酒店wifi很好,5星!",  # other case, half-width punctuation
    "  酒店 WiFi 很好 ，\t5 星 ！\n",  # spaces, a tab, a newline
    "酒店WiFi很好……5星~~",  # other punctuation and symbols
    "酒店\u200bWiFi很好，5星！",  # a zero-width space
])
def test_variants_of_one_text_normalise_alike(variant):
    assert normalised(variant) == "酒店wifi很好5星"


def test_different_words_stay_different():
    assert normalised("房间很好") != normalised("房间不好")
    assert normalised("5星") != normalised("4星")


def test_guard_says_which_split_and_how():
    guard = LeakGuard({"dev": [("Kindle屏幕不错。",)], "test": [("价格实惠！",)]})
    assert guard.match(("Kindle屏幕不错。",)) == ("dev", "exact")
    assert guard.match(("ｋｉｎｄｌｅ 屏幕不错!",)) == ("dev", "normalised")
    assert guard.match(("价格实惠！",)) == ("test", "exact")
    assert guard.match(("价格 实惠",)) == ("test", "normalised")
    assert guard.match(("价格太贵",)) is None


def test_pairs_match_only_as_pairs():
    guard = LeakGuard({"dev": [("今天天气好吗", "天气怎么样")]})
    assert guard.match(("今天天气好吗？", "天气怎么样？")) == ("dev", "normalised")
    assert guard.match(("今天天气好吗", "明天呢")) is None
    assert guard.match(("天气怎么样", "今天天气好吗")) == ("dev", "exact")  # the same two texts, the other order
    assert guard.match(("天气怎么样!", "今天天气好吗")) == ("dev", "normalised")


def test_text_of_only_punctuation_is_matched_exactly_only():
    guard = LeakGuard({"test": [("！！！",)]})
    assert row_key(("。。。",)) is None
    assert guard.match(("。。。",)) is None  # not every punctuation-only text is a copy of every other
    assert guard.match(("！！！",)) == ("test", "exact")
