"""The Trainer pieces every tinykd run shares: a checkpoint on an epoch's last step comes after that epoch's dev
evaluation, so a kill between the two loses nothing on resume."""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

from tests.conftest import sentiment_rows
from tinykd.hf_training import BEST_FILE, STATE_FILE, KeepBestOnDev, dev_accuracy, prepare_checkpoints


class _Rows(torch.utils.data.Dataset):
    def __init__(self, tokenizer, rows):
        self.items = [dict(tokenizer(text, truncation=True, max_length=16), labels=label) for label, text in rows]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def test_a_checkpoint_on_an_epoch_boundary_is_saved_after_that_epochs_evaluation(tiny_teacher, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    rows = sentiment_rows(48)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(tmp_path / "work"), num_train_epochs=2, per_device_train_batch_size=8,  # 4 steps/epoch
            eval_strategy="epoch", save_strategy="steps", save_steps=2, report_to="none", use_cpu=True,
        ),
        train_dataset=_Rows(tokenizer, rows[:32]),
        eval_dataset=_Rows(tokenizer, rows[32:]),
        processing_class=tokenizer,
        compute_metrics=dev_accuracy,
        callbacks=[KeepBestOnDev(tmp_path / "best", tokenizer)],
    )
    trainer.train()

    def evaluated_epochs(step: int) -> list[float]:
        state = json.loads((tmp_path / "work" / f"checkpoint-{step}" / "trainer_state.json").read_text())
        return [entry["epoch"] for entry in state["log_history"] if "eval_accuracy" in entry]

    assert evaluated_epochs(2) == []  # mid-epoch: saved at its step as usual
    assert evaluated_epochs(4) == [1.0]  # the epoch's last step: saved once epoch 1 was evaluated
    assert evaluated_epochs(6) == [1.0]
    assert evaluated_epochs(8) == [1.0, 2.0]
    assert (tmp_path / "best" / BEST_FILE).is_file()


def test_length_grouped_batches_depend_on_seed_and_epoch_only():
    """A run resumed in epoch 3 must draw epoch 3's batches as the uninterrupted run did, whatever torch's global RNG
    went through before (the flaky resume in CI: `LengthGroupedSampler` drew from the global RNG)."""
    from tinykd.hf_training import EpochSeededLengthGroupedSampler

    dataset = [{"input_ids": list(range(1 + i % 7))} for i in range(64)]

    def epoch_order(sampler, epoch: int) -> list[int]:
        sampler.set_epoch(epoch)
        return list(sampler)

    uninterrupted = EpochSeededLengthGroupedSampler(8, dataset, seed=5)
    orders = [epoch_order(uninterrupted, epoch) for epoch in range(3)]
    torch.manual_seed(123)  # the resumed process: another global RNG state
    resumed = EpochSeededLengthGroupedSampler(8, dataset, seed=5)
    assert epoch_order(resumed, 2) == orders[2]
    assert orders[0] != orders[1] != orders[2]  # still a new shuffle every epoch
    assert sorted(orders[2]) == list(range(64))


def test_a_checkpoint_killed_while_its_state_was_written_is_removed_and_the_one_before_resumes(tmp_path):
    work = tmp_path / "checkpoints"
    assert prepare_checkpoints(work, "stamp") is None
    for step, state in [(5, '{"global_step": 5}'), (10, '{"global_step": 10}'), (15, ""), (20, '{"global_st')]:
        (work / f"checkpoint-{step}").mkdir()
        (work / f"checkpoint-{step}" / STATE_FILE).write_text(state)
    (work / "checkpoint-25").mkdir()  # killed before the state file was opened
    assert prepare_checkpoints(work, "stamp") == work / "checkpoint-10"
    assert sorted(p.name for p in work.glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-5"]
    # Another configuration's checkpoints are cleared.
    assert prepare_checkpoints(work, "other") is None and not list(work.glob("checkpoint-*"))
