"""A build's size: the bytes of its weight files, as a server would hold them — the one figure compress records and
bench reports.

Metadata and tokenizer files are not weights. A siamese ONNX build's embed/compare graphs repeat its pair graph's
weights in another shape, so they are not counted again (`siamese_parts.PART_FILES`). A build that writes no weights
(torch-fp32, IPEX: they load the model's fp32 directory) has that directory's size.
"""

from __future__ import annotations

from pathlib import Path

from tinykd.compress.siamese_parts import PART_FILES

NOT_WEIGHTS = (".json", ".txt", ".md", ".csv", ".log", ".model")  # metadata and tokenizer files
NOT_WEIGHTS_PREFIXES = ("tokenizer", "vocab", "special_tokens")


def weight_bytes(root: Path) -> int:
    """Bytes of the weight files under `root`."""
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and f.name not in PART_FILES
               and not f.name.endswith(NOT_WEIGHTS) and not f.name.startswith(NOT_WEIGHTS_PREFIXES))


def build_size_mb(directory: Path, fp32_directory: Path) -> float:
    """MiB of weights in a built dir; of the model's fp32 dir when the build holds none."""
    return (weight_bytes(directory) or weight_bytes(fp32_directory)) / 2**20
