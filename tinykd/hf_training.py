"""What every HF `Trainer` run in tinykd shares: resumable checkpoints, length-grouped batches in an order a
resumed run repeats, dev accuracy, the best-on-dev model kept beside the checkpoints (the teacher and each
tiny-transformer stage).

A run's checkpoints live in one work directory marked with the run's fingerprint; a directory from
another configuration is cleared, and a checkpoint killed while saving (no `trainer_state.json`, which
the Trainer writes last, or one cut short mid-write) is removed, so `resume_from_checkpoint` only ever sees
complete ones.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from tinykd.artifacts import atomic_path, read_json

STATE_FILE = "trainer_state.json"  # Trainer writes it last, in place: a checkpoint is complete once it parses
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
        if _state_written(candidate / STATE_FILE):
            complete.append(candidate)
        else:
            shutil.rmtree(candidate, ignore_errors=True)  # killed while saving
    return max(complete, key=checkpoint_step, default=None)


def _state_written(state: Path) -> bool:
    """Whether the Trainer finished writing `state`: it opens the file and then writes the JSON, so a kill in
    between leaves an empty or cut-off file (seen in `make test` under load: the resume then failed on it)."""
    try:
        read_json(state)
    except (OSError, ValueError):
        return False
    return True


def checkpoint_step(checkpoint: Path | None) -> int | None:
    return int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else None


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """Length-grouped batches whose order is a function of (seed, epoch) alone.

    transformers' `LengthGroupedSampler` shuffles with torch's global RNG when an epoch starts. A run resumed
    in the middle of epoch 2 or later reaches that point in another RNG state than the uninterrupted run did
    (the Trainer restores the RNG of the checkpoint's step only after the order was drawn), so it trained on
    other batches and ended elsewhere. The Trainer calls `set_epoch` before every epoch, resumed or not.
    """

    def __init__(self, batch_size: int, dataset, seed: int) -> None:
        super().__init__(batch_size, dataset=dataset, generator=torch.Generator())
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed + epoch)


class ResumableTrainer(Trainer):
    """HF `Trainer` with length-grouped batches that a resumed run draws in the same order (the teacher and every
    tiny-transformer stage train with it)."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return EpochSeededLengthGroupedSampler(batch, dataset, self.args.seed)


def dev_accuracy(prediction) -> dict:
    """`compute_metrics` for dev evaluation during training."""
    predicted = np.asarray(prediction.predictions).argmax(-1)
    gold = np.asarray(prediction.label_ids)
    return {"accuracy": float((predicted == gold).mean())}


class KeepBestOnDev(TrainerCallback):
    """After each dev evaluation, save the model if its dev accuracy is the best so far.

    The best score lives beside the saved model, so it survives a kill and a resume. A checkpoint due on an
    epoch's last step is held back until that epoch's evaluation has run: the Trainer saves at step end and
    evaluates at epoch end, and a run resumed from a checkpoint on the boundary starts at the next epoch, so
    a kill between the two would lose that epoch's evaluation (and its model, were it the best) for good.
    """

    def __init__(self, best_dir: Path, tokenizer) -> None:
        self.best_dir = best_dir
        self.tokenizer = tokenizer
        self._save_held = False

    def on_step_end(self, args, state, control, **kwargs):
        at_epoch_end = state.epoch is not None and float(state.epoch).is_integer()
        if control.should_save and at_epoch_end and args.eval_strategy == "epoch":
            control.should_save, self._save_held = False, True

    def on_epoch_end(self, args, state, control, **kwargs):
        if self._save_held:  # saved after this epoch's evaluation (the Trainer evaluates before it saves)
            control.should_save, self._save_held = True, False

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
