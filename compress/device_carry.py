"""Carry a run's transformer models to a GPU machine whose transfer limit is smaller than the teacher.

The lent GPU machines take at most 64 MiB per call and cannot reach a model hub; the fp32 teacher is
470 MB, most of it E5's 250k-row vocabulary. `pack` makes a bundle that fits:

- the vocabulary is pruned to the tokens of the task's splits (lossless on those texts: see
  `tinykd.vocabulary_pruning`), for any model whose tokenizer holds more tokens than that;
- every 2-D float tensor (linear weights, embeddings) is stored as int8 with one fp32 scale per row,
  everything else as fp16: ~1 byte a parameter. This storage is lossy, so `pack` also writes the test
  accuracy of the dequantized copy next to the original's (`carry.json`): the GPU figures are for that copy.

`unpack` dequantizes to fp32 and lays the models and the data splits out as the normal stages expect
(`<runs>/<task>/teacher/model`, `students/<name>/model` with their `metrics.json`, `data/`), so `compress`, `bench` and `report`
run there unchanged. Only the `hf` family travels (BOW/CNN students need jieba, which the GPU image lacks,
and are bound by the tokenizer, not the device).

    python -m tinykd.compress.device_carry pack --config configs/chnsenticorp.yaml --out .carry teacher tiny4l384
    python -m tinykd.compress.device_carry unpack .carry --runs-dir runs-gpu

Training on the GPU goes the other way: `base` packs the configured teacher base, pruned to the vocabulary of
the task's splits *and* its augmented rows (so the teacher, the labels and the students see every text
exactly as with the full vocabulary), int8 as above; `grow` turns such a bundle back into an fp32
save_pretrained dir (deterministically: the same bytes here and there, so the teacher's fingerprint agrees);
`shrink` stores trained model dirs at ~2 bytes a parameter (fp16; `--int8 NAME` for tensors that were frozen
at int8 values, such as the teacher's word embeddings) for the trip back (docs/results.md, "ChnSentiCorp, trained on a lent GPU").

    python -m tinykd.compress.device_carry base --config configs/chnsenticorp.yaml --out .gpu/base
    python -m tinykd.compress.device_carry grow .gpu/base                     # there, and here after the trip
    python -m tinykd.compress.device_carry shrink runs/chnsenticorp/students/tiny4l384/model   # there
    python -m tinykd.compress.device_carry grow runs/chnsenticorp/students/tiny4l384/model     # here
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from tinykd.artifacts import RunPaths, atomic_path, read_json, require, write_json
from tinykd.compress.model_source import ModelSource
from tinykd.compress.stage import evaluate
from tinykd.compress.torch_fp32 import TorchRunner
from tinykd.config_loading import load_config
from tinykd.errors import ArtifactError, TinykdError
from tinykd.task_rows import text_columns

WEIGHTS = "weights.int8.safetensors"
MANIFEST = "carry.json"
SPLITS = ("train", "dev", "test")
SCALE_SUFFIX = ".__scale"
MIN_QUANTIZED = 4096  # smaller 2-D tensors (classifier heads) stay fp16


# ---- int8 storage --------------------------------------------------------------------------------------------

def quantize_rows(state: dict[str, torch.Tensor], int8: Callable[[str], bool] = lambda name: True
                  ) -> dict[str, torch.Tensor]:
    """2-D float tensors named by `int8` -> int8 + one fp32 scale per row (symmetric); other floats -> fp16;
    ints unchanged. Re-quantizing a row that already holds int8 values times one scale gives them back."""
    out = {}
    for name, tensor in state.items():
        if tensor.is_floating_point() and tensor.dim() == 2 and tensor.numel() >= MIN_QUANTIZED and int8(name):
            scale = tensor.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0  # (rows, 1)
            out[name] = torch.round(tensor / scale).clamp(-127, 127).to(torch.int8).contiguous()
            out[name + SCALE_SUFFIX] = scale.float().contiguous()
        elif tensor.is_floating_point():
            out[name] = tensor.half().contiguous()
        else:
            out[name] = tensor.contiguous()
    return out


def dequantize_rows(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `quantize_rows`, to fp32."""
    out = {}
    for name, tensor in stored.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = stored.get(name + SCALE_SUFFIX)
        if scale is not None:
            out[name] = tensor.float() * scale
        elif tensor.is_floating_point():
            out[name] = tensor.float()
        else:
            out[name] = tensor
    return out


# ---- pack ------------------------------------------------------------------------------------------------------

def _task_texts(config, paths: RunPaths) -> list[str]:
    texts = []
    for split in SPLITS:
        frame = pd.read_parquet(require(paths.split(split), "data"))
        for column in text_columns(config.task):
            texts += frame[column].astype(str).tolist()
    return texts


def _pruned_copy(model, tokenizer, texts: list[str], out: Path) -> dict:
    """save_pretrained of the model with its vocabulary cut to the texts' tokens (when that shrinks it)."""
    from tinykd.vocabulary_pruning import prune_to_texts

    model, tokenizer, facts = prune_to_texts(model, tokenizer, texts)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {**facts, "params": sum(p.numel() for p in model.parameters())}


def _accuracy(directory: Path, name: str, config, test: pd.DataFrame) -> float:
    """Test accuracy of the fp32 model in `directory`, evaluated as the compress stage evaluates a build."""
    source = ModelSource(name, directory, "hf", config.task.kind == "pair")
    runner = TorchRunner(source.load_torch(), torch.get_num_threads())
    logits = evaluate(runner, source, test, config.task.max_length, config.compress.eval_batch_size)  # (N, K)
    return float((logits.argmax(1) == test["label"].to_numpy()).mean())


def pack(config_path: str, overrides: list[str], models: list[str], out: Path, runs_dir: str | None,
         check_accuracy: bool = True) -> dict:
    config = load_config(config_path, overrides)
    paths = RunPaths.for_task(config.task.name, runs_dir)
    texts = _task_texts(config, paths)
    test = pd.read_parquet(paths.split("test"))
    pair = config.task.kind == "pair"
    manifest = {"task": config.task.name, "models": {}}
    with atomic_path(out) as tmp:
        (tmp / "data").mkdir(parents=True)
        for split in SPLITS:
            shutil.copy2(paths.split(split), tmp / "data" / f"{split}.parquet")
        if paths.data_summary.is_file():
            shutil.copy2(paths.data_summary, tmp / "data" / "summary.json")
        for name in models:
            source = ModelSource.of(name, paths, pair)
            if source.family != "hf":
                raise ArtifactError(f"{name}: only transformer ('hf') models travel; {source.family!r} needs jieba")
            target = tmp / "models" / name
            with tempfile.TemporaryDirectory() as scratch:
                facts = _pruned_copy(source.load_torch(), source.tokenizer, texts, Path(scratch))
                state = load_file(Path(scratch) / "model.safetensors")
                target.mkdir(parents=True)
                save_file(quantize_rows(state), target / WEIGHTS, metadata={"format": "pt"})
                for f in Path(scratch).iterdir():
                    if f.name != "model.safetensors":
                        shutil.copy2(f, target / f.name)
                if check_accuracy:
                    facts["test_accuracy_fp32"] = _accuracy(source.directory, name, config, test)
                    _dequantize_into(target, Path(scratch) / "dequantized")
                    facts["test_accuracy_carried"] = _accuracy(Path(scratch) / "dequantized", name, config, test)
            (tmp / "metrics").mkdir(exist_ok=True)
            shutil.copy2(require(paths.model_metrics(name), paths.model_stage(name)), tmp / "metrics" / f"{name}.json")
            facts["bundle_mb"] = sum(f.stat().st_size for f in target.iterdir()) / 2**20
            manifest["models"][name] = facts
            print(f"{name}: {facts}", flush=True)
        write_json(tmp / MANIFEST, manifest)
    return manifest


# ---- a teacher base out, trained models back -------------------------------------------------------------------

def pack_base(config_path: str, overrides: list[str], out: Path, runs_dir: str | None) -> dict:
    """The configured teacher base, its vocabulary cut to the task's splits and augmented rows, int8 (a bundle
    model dir, as `pack` writes one): what a GPU machine fine-tunes the teacher from (`grow` it there)."""
    from transformers import AutoModel, AutoTokenizer

    from tinykd.teacher.checkpoints import resolve_base

    config = load_config(config_path, overrides)
    paths = RunPaths.for_task(config.task.name, runs_dir)
    texts = _task_texts(config, paths)
    if config.augment is not None:
        augmented = pd.read_parquet(require(paths.augmented, "augment"))
        for column in text_columns(config.task):
            texts += augmented[column].astype(str).tolist()
    base = resolve_base(config.teacher.base)
    with atomic_path(out) as tmp, tempfile.TemporaryDirectory() as scratch:
        facts = {"base": config.teacher.base, "texts": len(texts),
                 **_pruned_copy(AutoModel.from_pretrained(base), AutoTokenizer.from_pretrained(base), texts,
                                Path(scratch))}
        tmp.mkdir()
        for f in Path(scratch).iterdir():
            if f.name != "model.safetensors":
                shutil.copy2(f, tmp / f.name)
        save_file(quantize_rows(load_file(Path(scratch) / "model.safetensors")), tmp / WEIGHTS,
                  metadata={"format": "pt"})
        facts["bundle_mb"] = round(sum(f.stat().st_size for f in tmp.iterdir()) / 2**20, 1)
        write_json(tmp / MANIFEST, facts)
    return facts


def shrink(directory: Path, int8: tuple[str, ...] = ()) -> None:
    """Replace a model dir's fp32 `model.safetensors` by fp16 storage (int8 rows for tensors whose name contains
    one of `int8`), in place; `grow` undoes it."""
    state = load_file(require(directory / "model.safetensors", "a trained model"))
    with atomic_path(directory / WEIGHTS) as tmp:
        save_file(quantize_rows(state, lambda name: any(part in name for part in int8)), tmp,
                  metadata={"format": "pt"})
    (directory / "model.safetensors").unlink()


def grow(directory: Path) -> None:
    """Turn a bundle model dir (int8/fp16 `weights.int8.safetensors`) into an fp32 save_pretrained dir, in place."""
    stored = load_file(require(directory / WEIGHTS, "a carried model (device_carry base/shrink)"))
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file(dequantize_rows(stored), tmp, metadata={"format": "pt"})
    (directory / WEIGHTS).unlink()
    (directory / MANIFEST).unlink(missing_ok=True)


# ---- unpack ----------------------------------------------------------------------------------------------------

def _dequantize_into(bundle_model: Path, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    save_file(dequantize_rows(load_file(bundle_model / WEIGHTS)), directory / "model.safetensors",
              metadata={"format": "pt"})
    for f in bundle_model.iterdir():
        if f.name != WEIGHTS:
            shutil.copy2(f, directory / f.name)


def unpack(bundle: Path, runs_dir: str | None) -> RunPaths:
    manifest = read_json(require(bundle / MANIFEST, "pack (python -m tinykd.compress.device_carry pack)"))
    paths = RunPaths.for_task(manifest["task"], runs_dir)
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    for f in (bundle / "data").iterdir():
        shutil.copy2(f, paths.data_dir / f.name)
    for name in manifest["models"]:
        with atomic_path(paths.model_dir(name)) as tmp:
            _dequantize_into(bundle / "models" / name, tmp)
        shutil.copy2(bundle / "metrics" / f"{name}.json", paths.model_metrics(name))  # compress's record of its source
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinykd.compress.device_carry", description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("pack", help="write a bundle of the named models and the data splits")
    p.add_argument("models", nargs="+", help="'teacher' and/or transformer student names")
    p.add_argument("--config", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--runs-dir")
    p.add_argument("--no-accuracy", action="store_true", help="skip the test accuracy of the carried copies")
    u = verbs.add_parser("unpack", help="lay a bundle out as a run directory")
    u.add_argument("bundle", type=Path)
    u.add_argument("--runs-dir")
    b = verbs.add_parser("base", help="the teacher base pruned to the task's texts, int8: to fine-tune on a GPU")
    b.add_argument("--config", required=True)
    b.add_argument("--set", dest="overrides", action="append", default=[])
    b.add_argument("--out", required=True, type=Path)
    b.add_argument("--runs-dir")
    s = verbs.add_parser("shrink", help="store trained model dirs as fp16 (in place) for the trip back")
    s.add_argument("directories", nargs="+", type=Path)
    s.add_argument("--int8", action="append", default=[], help="tensors whose name contains this go int8")
    g = verbs.add_parser("grow", help="turn carried model dirs back into fp32 save_pretrained dirs (in place)")
    g.add_argument("directories", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.verb == "pack":
            pack(args.config, args.overrides, args.models, args.out, args.runs_dir, not args.no_accuracy)
        elif args.verb == "base":
            print(pack_base(args.config, args.overrides, args.out, args.runs_dir))
        elif args.verb == "shrink":
            for directory in args.directories:
                shrink(directory, tuple(args.int8))
        elif args.verb == "grow":
            for directory in args.directories:
                grow(directory)
        else:
            print(f"unpacked into {unpack(args.bundle, args.runs_dir).root}")
    except TinykdError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
