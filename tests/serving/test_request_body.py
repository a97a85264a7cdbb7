"""What `serve` accepts: one text or a list, one pair or a list of pairs; everything else is one line saying where."""

from __future__ import annotations

import pytest

from tinykd.serving.request_body import BadRequest, Limits, parse_request

LIMITS = Limits(max_texts=3, max_chars=10)


def test_single_and_list_bodies_give_their_texts_in_order():
    assert parse_request({"text": "很好"}, pair=False, limits=LIMITS).items == [("很好", None)]
    assert parse_request({"text": "很好"}, pair=False, limits=LIMITS).single
    many = parse_request({"texts": ["a", "b", "c"]}, pair=False, limits=LIMITS)
    assert many.items == [("a", None), ("b", None), ("c", None)] and not many.single
    assert parse_request({"text_a": "问", "text_b": "答"}, pair=True, limits=LIMITS).items == [("问", "答")]
    assert parse_request({"pairs": [["a", "b"], ["c", "d"]]}, pair=True, limits=LIMITS).items == [("a", "b"), ("c", "d")]


@pytest.mark.parametrize("body, pair, message", [
    (["x"], False, "body: expected a JSON object, got list"),
    ({}, False, 'body: send exactly one of "text" or "texts"'),
    ({"text": "a", "texts": ["b"]}, False, 'body: send exactly one of "text" or "texts"'),
    ({"txt": "a"}, False, "body: unknown key(s) ['txt']"),
    ({"text": ""}, False, "text: empty text"),
    ({"text": "   "}, False, "text: empty text"),
    ({"text": 5}, False, "text: expected a string, got int"),
    ({"text": "x" * 11}, False, "text: 11 characters, more than the limit 10"),
    ({"texts": "a"}, False, "texts: expected a list, got str"),
    ({"texts": []}, False, "texts: empty list"),
    ({"texts": ["a", "b", "c", "d"]}, False, "texts: 4 items, more than the limit 3 per request"),
    ({"texts": ["a", None]}, False, "texts[1]: expected a string, got NoneType"),
    ({"text": "a"}, True, "body: unknown key(s) ['text']; this is a pair model"),
    ({"text_a": "a"}, True, 'body: a pair model needs both "text_a" and "text_b"'),
    ({"pairs": [["a"]]}, True, "pairs[0]: expected [text_a, text_b]"),
    ({"pairs": [["a", "b"], ["c", ""]]}, True, "pairs[1][1]: empty text"),
    ({"pairs": [["a", "b"]], "text_a": "c"}, True, 'body: send "pairs" or "text_a" and "text_b", not both'),
])
def test_a_bad_body_is_one_line_saying_where(body, pair, message):
    with pytest.raises(BadRequest) as caught:
        parse_request(body, pair=pair, limits=LIMITS)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
