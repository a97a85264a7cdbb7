"""What every HF `Trainer` run in tinykd shares: resumable checkpoints, length-grouped batches, dev accuracy,
the best-on-dev model kept beside the checkpoints (the teacher and each tiny-transformer stage).

A run's checkpoints live in one work directory marked with the run's fingerprint; a directory from
another configuration is cleared, and a checkpoint killed while saving (no `trainer_state.json`, which
the Trainer writes last) is removed, so `resume_from_checkpoint` only ever sees complete ones.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
from transformers import TrainerCallback, TrainingArguments

from tinykd.artifacts import atomic_path, read_json

STATE_FILE = "trainer_state.json"  # Trainer writes it last: a checkpoint without it is incomplete
BEST_FILE = "tinykd_best.json"  # beside a kept best-on-dev model: its dev accuracy, epoch and step


def prepare_checkpoints(work: Path, stamp: str) -> Path | None:
    """The newest complete checkpoint of *this* configuration, after clearing stale or partial ones."""
    marker = work / "tinykd_fingerprint"
    if work.exists() and (not marker.exists() or marker.read_text().strip() != stamp):
        shutil.rmtree(work, ignore_errors=True)  # ignore_errors: under torchrun every process clears it
    work.mkdir(parents=True, exist_ok=True)
    marker.write_text(stamp)
    complete = []
    for candidate in work.glob("checkpoint-*"):
        if (candidate / STATE_FILE).is_file():
            complete.append(candidate)
        else:
            shutil.rmtree(candidate, ignore_errors=True)  # killed while saving
    return max(complete, key=checkpoint_step, default=None)


def checkpoint_step(checkpoint: Path | None) -> int | None:
    return int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else None


def length_grouped_sampling() -> dict:
    """TrainingArguments keywords for length-grouped batches: transformers >= 5.20 names the sampler;
    older releases (the GPU image has 5.17) use a flag."""
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    if "train_sampling_strategy" in names:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True}


def dev_accuracy(prediction) -> dict:
    """`compute_metrics` for dev evaluation during training."""
    predicted = np.asarray(prediction.predictions).argmax(-1)
    gold = np.asarray(prediction.label_ids)
    return {"accuracy": float((predicted == gold).mean())}


class KeepBestOnDev(TrainerCallback):
    """After each dev evaluation, save the model if its dev accuracy is the best so far.

    The best score lives beside the saved model, so it survives a kill and a resume.
    """

    def __init__(self, best_dir: Path, tokenizer) -> None:
        self.best_dir = best_dir
        self.tokenizer = tokenizer

    def best_accuracy(self) -> float:
        marker = self.best_dir / BEST_FILE
        return read_json(marker)["dev_accuracy"] if marker.exists() else -1.0

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if state is not None and not state.is_world_process_zero:
            return  # under torchrun only process 0 writes
        accuracy = metrics["eval_accuracy"]
        if accuracy > self.best_accuracy():
            with atomic_path(self.best_dir) as tmp:
                model.save_pretrained(tmp)
                self.tokenizer.save_pretrained(tmp)
                (tmp / BEST_FILE).write_text(
                    f'{{"dev_accuracy": {accuracy}, "epoch": {state.epoch}, "step": {state.global_step}}}\n'
                )
