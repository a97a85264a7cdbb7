"""Runs textattack transformations inside the textattack environment (`make textattack-env`).

textattack needs transformers < 5, so it cannot live in tinykd's environment; the augment stage
sends this process all source texts once and gets candidates back (JSON on stdin/stdout). This module
imports nothing from tinykd, only the standard library and textattack.

    request:  {"transformation": "WordSwapRandomCharacterDeletion", "args": {}, "texts": ["...", ...]}
    response: {"candidates": [["...", ...], ...]}   one list per input text (possibly empty)
"""

from __future__ import annotations

import json
import sys


def transform_all(name: str, args: dict, texts: list[str]) -> list[list[str]]:
    import textattack.transformations as transformations
    from textattack.shared import AttackedText

    transformation = getattr(transformations, name)(**args)
    return [[candidate.text for candidate in transformation(AttackedText(text))] for text in texts]


def install_nltk_stopwords() -> None:
    """`import textattack` loads NLTK's English stopwords, which NLTK downloads from a site that may be
    unreachable; write the list from the `stop-words` PyPI package where NLTK looks (<env>/nltk_data)."""
    import os

    from stop_words import get_stop_words

    directory = os.path.join(sys.prefix, "nltk_data", "corpora", "stopwords")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "english"), "w", encoding="utf-8") as out:
        out.write("\n".join(get_stop_words("english")) + "\n")


def main() -> None:
    if sys.argv[1:] == ["--install-nltk-stopwords"]:
        install_nltk_stopwords()
        return
    request = json.load(sys.stdin)
    candidates = transform_all(request["transformation"], request.get("args", {}), request["texts"])
    json.dump({"candidates": candidates}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
