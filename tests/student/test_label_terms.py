"""`loss_terms` on a batch that mixes gold and teacher-labelled augmented rows, pinned to values worked
out by hand, for each `augmented_target` mode; then the same batch through the distill stage (which builds
the targets) and through both trainers (which weight the terms by name). Last, the loss table is the only
wiring: the config's weight keys are its rows, and a row registered at run time is computed and weighted."""

from __future__ import annotations

import math
import sys
from types import ModuleType, SimpleNamespace

import pandas as pd
import pytest
import torch
from transformers import TrainingArguments

from tests.conftest import file_task, write_config, write_tsv
from tinykd import data_stage, loss_table
from tinykd.artifacts import RunPaths, write_json
from tinykd.config import LossWeights, TransformerLosses
from tinykd.config_loading import load_config
from tinykd.loss_table import LOSSES, LossInfo
from tinykd.student import stage as distill_stage
from tinykd.student.losses import AttentionInputs, LossBatch, loss_terms
from tinykd.student.losses.hard import NO_TARGET
from tinykd.student.losses.relation import DEFAULT_PAIRS, relation_loss
from tinykd.student.trainers.distill_trainer import DistillationTrainer, LossSettings
from tinykd.student.trainers.small_trainer import TokenCache

T = 3.0  # with 4 rows, T = 2 would make T² · mean equal the plain sum and hide a wrong reduction
LN3 = math.log(3.0)
# (gold label, teacher logits, student logits). Teacher logits are T·(ln 3, 0) and the like, so that
# softmax(t / T) is (3/4, 1/4). Row 0's teacher argmax (0) is not its gold label (1): a gold row's hard
# target must be the gold label.
GOLD = [(1, [T * LN3, 0.0], [0.0, 0.0]),
        (0, [0.0, 0.0], [LN3, 0.0])]
# (teacher logits, student logits) of the augmented rows; teacher argmax 1, then 0.
AUGMENTED = [([0.0, T * LN3], [0.0, LN3]),
             ([T * LN3, 0.0], [0.0, LN3])]


def _softmax(scores: list[float]) -> list[float]:
    exps = [math.exp(x) for x in scores]
    return [e / sum(exps) for e in exps]


def _kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def _hand_terms(augmented_target: str) -> dict[str, float]:
    """The hard and soft terms of the 4-row batch above, on paper."""
    # soft: every row has teacher logits, so T² · mean over all 4 rows of KL(softmax(t/T) ‖ softmax(s/T)).
    #   teacher: (3/4, 1/4), (1/2, 1/2), (1/4, 3/4), (3/4, 1/4)
    #   student: softmax(s/3) of (0, 0), (ln 3, 0), (0, ln 3), (0, ln 3): (1/2, 1/2), (3^⅓, 1)/(3^⅓ + 1), …
    cube_root_3 = 3.0 ** (1 / 3)
    pairs = [([0.75, 0.25], [0.5, 0.5]),
             ([0.5, 0.5], [cube_root_3 / (cube_root_3 + 1), 1 / (cube_root_3 + 1)]),
             ([0.25, 0.75], [1 / (cube_root_3 + 1), cube_root_3 / (cube_root_3 + 1)]),
             ([0.75, 0.25], [1 / (cube_root_3 + 1), cube_root_3 / (cube_root_3 + 1)])]
    soft = T * T * sum(_kl(p, q) for p, q in pairs) / 4
    # hard: cross-entropy at temperature 1, mean over the rows that have a target.
    #   gold row 0: student (0, 0), gold 1     -> −ln(1/2)
    #   gold row 1: student (ln 3, 0), gold 0  -> −ln(3/4)
    gold = [-math.log(0.5), -math.log(0.75)]
    if augmented_target == "soft":  # augmented rows teach only their soft labels: no hard term
        return {"hard": sum(gold) / 2, "soft": soft}
    #   augmented row 0: student (0, ln 3), teacher argmax 1 -> −ln(3/4)
    #   augmented row 1: student (0, ln 3), teacher argmax 0 -> −ln(1/4)
    return {"hard": (sum(gold) - math.log(0.75) - math.log(0.25)) / 4, "soft": soft}


def _batch(augmented_target: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Student logits, targets and teacher logits of the 4 rows, targets set as the distill stage sets them."""
    augmented_targets = [max(range(2), key=t.__getitem__) if augmented_target == "hard" else NO_TARGET
                         for t, _ in AUGMENTED]
    targets = torch.tensor([label for label, _, _ in GOLD] + augmented_targets)  # (4,)
    teacher = torch.tensor([t for _, t, _ in GOLD] + [t for t, _ in AUGMENTED])  # (4, 2)
    student = torch.tensor([s for _, _, s in GOLD] + [s for _, s in AUGMENTED])  # (4, 2)
    return student, targets, teacher


@pytest.mark.parametrize("augmented_target", ["soft", "hard"])
def test_mixed_batch_terms_match_the_hand_computed_values(augmented_target):
    student, targets, teacher = _batch(augmented_target)
    terms = loss_terms({"hard": 1.0, "soft": 1.0}, LossBatch(student, targets, teacher, T))
    expected = _hand_terms(augmented_target)
    assert set(terms) == {"hard", "soft"}
    assert terms["hard"].item() == pytest.approx(expected["hard"], abs=1e-6)
    assert terms["soft"].item() == pytest.approx(expected["soft"], abs=1e-6)


def test_a_row_without_target_or_teacher_logits_adds_to_no_term():
    student, targets, teacher = _batch("soft")
    student = torch.cat([student, torch.tensor([[5.0, -5.0]])])
    targets = torch.cat([targets, torch.tensor([NO_TARGET])])
    teacher = torch.cat([teacher, torch.full((1, 2), float("nan"))])  # what the collators write for "no logits"
    terms = loss_terms({"hard": 1.0, "soft": 1.0}, LossBatch(student, targets, teacher, T))
    assert terms["hard"].item() == pytest.approx(_hand_terms("soft")["hard"], abs=1e-6)
    assert terms["soft"].item() == pytest.approx(_hand_terms("soft")["soft"], abs=1e-6)


def test_a_term_with_weight_zero_is_not_computed():
    student, targets, teacher = _batch("hard")
    assert set(loss_terms({"hard": 1.0, "soft": 0.0}, LossBatch(student, targets, teacher, T))) == {"hard"}
    assert set(loss_terms({"soft": 2.0}, LossBatch(student, targets, teacher, T))) == {"soft"}
    assert set(loss_terms({"hard": 1.0, "soft": 1.0}, LossBatch(student, None, teacher, T))) == {"soft"}
    # relation needs captured Q/K/V: a batch without them (evaluation, small students) skips it
    assert set(loss_terms({"relation": 1.0, "hard": 1.0}, LossBatch(student, targets, teacher, T))) == {"hard"}


def test_soft_on_a_batch_without_teacher_logits_is_a_zero_that_keeps_the_graph():
    student, targets, _ = _batch("hard")
    student.requires_grad_(True)
    terms = loss_terms({"soft": 1.0}, LossBatch(student, targets, torch.full((4, 2), float("nan")), T))
    assert terms["soft"].item() == 0.0 and terms["soft"].requires_grad


def test_relation_term_is_the_relation_loss_of_the_captured_qkv():
    generator = torch.Generator().manual_seed(0)
    teacher = {p: torch.randn(2, 5, 8, generator=generator) for p in ("query", "key", "value")}  # (B, L, H_t)
    student = {p: torch.randn(2, 5, 4, generator=generator) for p in ("query", "key", "value")}  # (B, L, H_s)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])  # (B, L)
    batch = LossBatch(torch.zeros(2, 2), attention=AttentionInputs(teacher, student, mask, 2, DEFAULT_PAIRS))
    terms = loss_terms({"relation": 1.0}, batch)
    assert set(terms) == {"relation"}
    assert terms["relation"].item() == relation_loss(teacher, student, mask, 2, DEFAULT_PAIRS).item()


@pytest.mark.parametrize("augmented_target", ["soft", "hard"])
def test_distill_stage_gives_gold_rows_their_label_and_augmented_rows_the_configured_target(
        augmented_target, tmp_path, monkeypatch):
    # The 2 gold rows and 2 augmented rows above as artifacts: train split + teacher logits, augmented rows.
    files = {"train": write_tsv(tmp_path / "train.tsv", [(1, "房间很好。"), (0, "服务很差。")]),
             "dev": write_tsv(tmp_path / "dev.tsv", [(1, "价格不错。"), (0, "早餐糟糕。")]),
             "test": write_tsv(tmp_path / "test.tsv", [(1, "位置满意。"), (0, "快递太贵。")])}
    student = {"name": "bow", "kind": "bow", "augmented_target": augmented_target, "losses": {"hard": 0.3, "soft": 2.0},
               "temperature": T, "epochs": 1, "batch_size": 4, "min_freq": 1, "embedding_dim": 4, "hidden_size": 4}
    config = load_config(write_config(tmp_path / "c.yaml", {"task": file_task(files), "augment": {},
                                                             "students": [student]}))
    paths = RunPaths(tmp_path / "run")
    data_stage.run(config, paths)
    train = pd.read_parquet(paths.split("train"))
    assert train["label"].tolist() == [label for label, _, _ in GOLD]
    paths.label_dir.mkdir(parents=True)
    train.assign(logits=[t for _, t, _ in GOLD]).to_parquet(paths.labels("train"))
    pd.DataFrame({"text_a": ["房间不错。", "服务太贵。"], "source_row": [0, 1], "op": ["pos", "pos"],
                  "logits": [t for t, _ in AUGMENTED]}).to_parquet(paths.labels("augmented"))
    write_json(paths.label_dir / "summary.json", {"splits": {}})

    seen = {}
    real_train = distill_stage.train_small_student

    def spy(spec, tokenizer, train_encoded, *args, **kwargs):
        seen["train"] = train_encoded
        return real_train(spec, tokenizer, train_encoded, *args, **kwargs)

    monkeypatch.setattr(distill_stage, "train_small_student", spy)
    distill_stage.distill_one(config, config.students[0], paths, TokenCache())

    student_logits, targets, teacher = _batch(augmented_target)
    encoded = seen["train"]
    assert encoded.targets.tolist() == targets.tolist()  # gold label, then argmax or NO_TARGET
    assert torch.allclose(encoded.teacher_logits, teacher)
    terms = loss_terms({"hard": 0.3, "soft": 2.0},
                       LossBatch(student_logits, encoded.targets, encoded.teacher_logits, T))
    expected = _hand_terms(augmented_target)
    assert terms["hard"].item() == pytest.approx(expected["hard"], abs=1e-6)
    assert terms["soft"].item() == pytest.approx(expected["soft"], abs=1e-6)
    # One batch of all 4 rows: the logged total is 0.3 · hard + 2 · soft of the student's own logits.
    epoch = pd.read_csv(paths.root / "students" / "bow" / "train_log.csv").iloc[0]
    assert epoch["loss"] == pytest.approx(0.3 * epoch["hard"] + 2.0 * epoch["soft"], rel=1e-5)


class _FixedLogits(torch.nn.Module):
    """A stand-in student whose logits are given: the trainer's loss is then a number known in advance."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(logits.clone())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.logits[: len(input_ids)])


@pytest.mark.parametrize("augmented_target", ["soft", "hard"])
def test_transformer_trainer_total_is_the_named_weighted_sum(augmented_target, tmp_path):
    # Transformer students always give augmented rows the teacher's argmax (the "hard" batch); the "soft"
    # batch stands for rows without a hard target, as unlabeled text has.
    student, targets, teacher = _batch(augmented_target)
    trainer = DistillationTrainer(
        model=_FixedLogits(student),
        args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True),
        teacher=None, losses=LossSettings(weights={"hard": 0.3, "soft": 2.0}, temperature=T),
    )
    inputs = {"input_ids": torch.zeros(4, 3, dtype=torch.long), "attention_mask": torch.ones(4, 3, dtype=torch.long),
              "labels": targets, "teacher_logits": teacher}
    loss = trainer.compute_loss(trainer.model, inputs)
    expected = _hand_terms(augmented_target)
    assert loss.item() == pytest.approx(0.3 * expected["hard"] + 2.0 * expected["soft"], abs=1e-6)


def test_the_config_weight_keys_are_the_loss_table():
    small = [name for name, loss in LOSSES.items() if loss.small_default is not None]
    assert list(LOSSES) == ["relation", "soft", "hard"]
    assert list(LossWeights.model_fields) == small == ["soft", "hard"]
    assert LossWeights().model_dump() == {name: LOSSES[name].small_default for name in small}
    assert LossWeights().model_dump() == {"soft": 0.0, "hard": 1.0}
    assert list(TransformerLosses.model_fields) == list(LOSSES)
    assert TransformerLosses().model_dump() == dict.fromkeys(LOSSES, 0.0)
    for model in (LossWeights, TransformerLosses):
        for name, field in model.model_fields.items():
            assert field.description == LOSSES[name].about
        with pytest.raises(ValueError):
            model(**{next(iter(model.model_fields)): -1.0})  # ge=0
    with pytest.raises(ValueError):
        LossWeights(relation=1.0)  # not a small student's term
    for loss in LOSSES.values():
        assert loss.needs in ("targets", "teacher_logits", "attention")
        assert callable(loss.load_module().term)


def test_a_registered_term_is_computed_and_weighted_without_touching_the_trainer(monkeypatch, tmp_path):
    """One module with `term(batch)` and one row in LOSSES: loss_terms computes it, and the transformer trainer
    adds it to the total and logs it by name."""
    module = ModuleType("tests_student_margin_loss")
    module.term = lambda batch: (batch.logits[:, 0] - batch.logits[:, 1]).abs().mean()  # (B, K) -> scalar
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(loss_table, "LOSSES", LOSSES | {
        "margin": LossInfo("margin", module.__name__, "teacher_logits", "mean |logit gap|", None)})

    student, targets, teacher = _batch("hard")
    margin = (student[:, 0] - student[:, 1]).abs().mean().item()
    terms = loss_terms({"hard": 1.0, "margin": 0.5}, LossBatch(student, targets, teacher, T))
    assert list(terms) == ["hard", "margin"]
    assert terms["margin"].item() == pytest.approx(margin)
    assert "margin" not in loss_terms({"hard": 1.0, "margin": 0.5}, LossBatch(student, targets, None, T))

    trainer = DistillationTrainer(
        model=_FixedLogits(student),
        args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True),
        teacher=None, losses=LossSettings(weights={"hard": 0.3, "margin": 0.5}, temperature=T),
    )
    inputs = {"input_ids": torch.zeros(4, 3, dtype=torch.long), "attention_mask": torch.ones(4, 3, dtype=torch.long),
              "labels": targets, "teacher_logits": teacher}
    loss = trainer.compute_loss(trainer.model, inputs)
    assert loss.item() == pytest.approx(0.3 * _hand_terms("hard")["hard"] + 0.5 * margin, abs=1e-6)
    assert set(trainer._term_sums) == {"hard", "margin"}
