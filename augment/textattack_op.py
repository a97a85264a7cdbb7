"""Adapter: any textattack `Transformation`, named in the config, used as an augmentation op.

textattack is an optional extra: it pins transformers < 5, so it gets its own environment
(`make textattack-env` builds `.venv-textattack`; `TINYKD_TEXTATTACK_PYTHON` names another). The
augment stage calls `prepare` with every source text once; this runs `tinykd.augment.textattack_worker`
in that environment (or in-process, where textattack happens to import) and keeps the candidates.
`apply` then picks one candidate per text with the row's RNG. The core never imports textattack.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any

from tinykd.augment.op import AugmentOp
from tinykd.augment.words import Tagged, join, tag
from tinykd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("textattack_worker.py")
PYTHON_ENV = "TINYKD_TEXTATTACK_PYTHON"


def textattack_python() -> Path | None:
    """The interpreter of the textattack environment, if one is built or named."""
    named = os.environ.get(PYTHON_ENV)
    candidate = Path(named) if named else ROOT / ".venv-textattack" / "bin" / "python"
    return candidate if candidate.exists() else None


class TextAttackTransformation(AugmentOp):
    """Applies `textattack.transformations.<name>(**args)` and keeps one of its outputs at random."""

    def __init__(self, name: str, args: dict[str, Any]) -> None:
        self.transformation, self.args = name, args
        self.name = f"textattack:{name}"
        self.candidates: dict[str, list[str]] = {}

    def prepare(self, texts: list[str]) -> None:
        unique = sorted(set(texts))
        try:
            import textattack  # noqa: F401

            from tinykd.augment.textattack_worker import transform_all
        except ImportError:
            outputs = self._run_worker(unique)
        else:
            outputs = transform_all(self.transformation, self.args, unique)
        self.candidates = dict(zip(unique, outputs))

    def _run_worker(self, texts: list[str]) -> list[list[str]]:
        python = textattack_python()
        if python is None:
            raise ConfigError(
                f"augment op textattack ({self.transformation}) needs the textattack environment: run "
                f"`make textattack-env` or set {PYTHON_ENV} (see README 'Optional extras')"
            )
        request = json.dumps({"transformation": self.transformation, "args": self.args, "texts": texts})
        # Run as a script: the worker imports only the standard library and textattack, so the textattack
        # environment needs no tinykd installed.
        done = subprocess.run([str(python), str(WORKER)], input=request, capture_output=True, text=True)
        if done.returncode != 0:
            last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"
            raise ConfigError(f"augment op textattack ({self.transformation}) failed in {python}: {last}")
        return json.loads(done.stdout)["candidates"]

    def apply(self, texts: list[Tagged], rng: random.Random) -> list[Tagged]:
        out = []
        for words in texts:
            options = self.candidates.get(join(words))
            out.append(tag(rng.choice(options)) if options else words)
        return out

    def __call__(self, text, seed: int = 0):
        self.prepare([text] if isinstance(text, str) else list(text))
        return super().__call__(text, seed)
