"""Texts as jieba words with part-of-speech tags: the unit every augmentation op works on.

A text is tagged once (`tag`) and every op rewrites the tagged words; joining the words gives back the
exact original text, because jieba keeps spaces and punctuation as tokens of their own.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import jieba
import jieba.posseg

jieba.setLogLevel(logging.WARNING)

# jieba tags punctuation, symbols and whitespace 'x': they are not words an op should rewrite.
NON_WORD_TAG = "x"


class Word(NamedTuple):
    text: str
    pos: str

    @property
    def is_word(self) -> bool:
        return self.pos != NON_WORD_TAG and not self.text.isspace()


Tagged = tuple[Word, ...]


def tag(text: str) -> Tagged:
    """jieba `posseg` words of `text`; `join(tag(text)) == text`."""
    return tuple(Word(w.word, w.flag) for w in jieba.posseg.cut(text))


def join(words: Tagged | list[Word]) -> str:
    return "".join(w.text for w in words)
