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


def main() -> None:
    request = json.load(sys.stdin)
    candidates = transform_all(request["transformation"], request.get("args", {}), request["texts"])
    json.dump({"candidates": candidates}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
