"""What a client may send to `serve`, checked before any work: one text, a list of texts, one pair or a list of pairs.

Bodies (JSON objects):
- single-text task: `{"text": "..."}` -> one prediction; `{"texts": ["...", ...]}` -> a list;
- pair task: `{"text_a": "...", "text_b": "..."}` -> one prediction; `{"pairs": [["...", "..."], ...]}` -> a list.
A body that breaks a rule raises `BadRequest` with one line saying what and where (`texts[3]: empty text`); the
server answers it with HTTP 400 and that line, and runs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class BadRequest(ValueError):
    """A request the client must fix (the HTTP 400 reason is the message)."""


@dataclass(frozen=True)
class Limits:
    max_texts: int  # texts (or pairs) per request
    max_chars: int  # characters per text


@dataclass(frozen=True)
class ParsedRequest:
    items: list[tuple[str, str | None]]  # (text_a, text_b or None) per text, in request order
    single: bool  # one text or pair in, one prediction out (not a list)


def _text(value: Any, where: str, limits: Limits) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{where}: expected a string, got {type(value).__name__}")
    if not value.strip():
        raise BadRequest(f"{where}: empty text")
    if len(value) > limits.max_chars:
        raise BadRequest(f"{where}: {len(value)} characters, more than the limit {limits.max_chars}")
    return value


def _many(values: Any, key: str, limits: Limits) -> list:
    if not isinstance(values, list):
        raise BadRequest(f"{key}: expected a list, got {type(values).__name__}")
    if not values:
        raise BadRequest(f"{key}: empty list")
    if len(values) > limits.max_texts:
        raise BadRequest(f"{key}: {len(values)} items, more than the limit {limits.max_texts} per request")
    return values


def parse_request(body: Any, pair: bool, limits: Limits) -> ParsedRequest:
    """The texts of one request body, or `BadRequest`."""
    if not isinstance(body, dict):
        raise BadRequest(f"body: expected a JSON object, got {type(body).__name__}")
    keys = {"text_a", "text_b", "pairs"} if pair else {"text", "texts"}
    unknown = sorted(set(body) - keys)
    if unknown:
        shape = '"text_a" and "text_b", or "pairs"' if pair else '"text" or "texts"'
        raise BadRequest(f"body: unknown key(s) {unknown}; this is a {'pair' if pair else 'single-text'} model, "
                         f"send {shape}")
    if not pair:
        if ("text" in body) == ("texts" in body):
            raise BadRequest('body: send exactly one of "text" or "texts"')
        if "text" in body:
            return ParsedRequest([(_text(body["text"], "text", limits), None)], single=True)
        texts = _many(body["texts"], "texts", limits)
        return ParsedRequest([(_text(t, f"texts[{i}]", limits), None) for i, t in enumerate(texts)], single=False)
    if "pairs" in body:
        if "text_a" in body or "text_b" in body:
            raise BadRequest('body: send "pairs" or "text_a" and "text_b", not both')
        items = []
        for i, pair_value in enumerate(_many(body["pairs"], "pairs", limits)):
            if not isinstance(pair_value, list) or len(pair_value) != 2:
                raise BadRequest(f"pairs[{i}]: expected [text_a, text_b]")
            items.append((_text(pair_value[0], f"pairs[{i}][0]", limits), _text(pair_value[1], f"pairs[{i}][1]", limits)))
        return ParsedRequest(items, single=False)
    if "text_a" not in body or "text_b" not in body:
        raise BadRequest('body: a pair model needs both "text_a" and "text_b" (or "pairs")')
    return ParsedRequest([(_text(body["text_a"], "text_a", limits), _text(body["text_b"], "text_b", limits))],
                         single=True)
