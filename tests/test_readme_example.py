"""The README's worked example runs as printed: its YAML (a 3-class TSV with its own column names, a local Hugging
Face checkpoint as the teacher) passes `check`, and `data`, `augment` and `teacher` run on it through the CLI.

The test writes what the YAML names: the three TSVs (a few dozen rows, the class given by one cue word) and a tiny
random BERT classifier with a WordPiece tokenizer over the TSVs' characters, saved with `save_pretrained` (nothing
from a hub). Only the file paths in the YAML text are rewritten, into tmp_path; every key stays as the README shows
it, and `--set` overrides make the run tiny.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

MARKER = "<!-- readme-example"
# The class of a row is given by one cue word, so even a tiny teacher can learn it.
CUES = {
    0: ["物流", "送货", "快递", "配送"],
    1: ["做工", "破损", "开裂", "褪色"],
    2: ["太贵", "价格", "涨价", "不值"],
}
FILLER = ["这次", "商品", "订单", "真的", "客服", "一直", "还是", "我的", "昨天", "问题"]
# Tokens the task never uses, as any real checkpoint has: vocabulary pruning drops them.
UNUSED = "的一是不人在有他中大上国个到说们为和你地出也时年得就那要下以生会自着去过家学对可她里后小么心多天而能好"
ROWS = {"train": 60, "dev": 24, "test": 24}
TINY = [
    "task.max_rows.train=45",
    "task.max_length=32",
    "augment.multiplier=1",
    "teacher.epochs=10",
    "teacher.batch_size=16",
    "teacher.eval_batch_size=32",
    "teacher.learning_rate=3.0e-3",
    "teacher.threads=1",
]


def readme_example() -> str:
    """The first fenced YAML block after the marker comment in README.md."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert MARKER in readme, f"README.md has no {MARKER} before its worked example"
    found = re.search(r"```yaml\n(.*?)```", readme.split(MARKER, 1)[1], flags=re.DOTALL)
    assert found, f"no ```yaml block after {MARKER} in README.md"
    return found.group(1)


def write_rows(path: Path, columns: dict, labels: list[str], n: int, seed: int) -> list[str]:
    """A TSV with a header `id, <label column>, <text column>`; every class gets n/3 rows. Returns the texts."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        cls = i % len(labels)
        words = rng.sample(FILLER, 3)
        words.insert(rng.randrange(4), rng.choice(CUES[cls]))
        rows.append((labels[cls], "".join(words) + "。"))
    rng.shuffle(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{i}\t{label}\t{text}\n" for i, (label, text) in enumerate(rows))
    path.write_text(f"id\t{columns['label']}\t{columns['text_a']}\n" + lines, encoding="utf-8")
    return [text for _, text in rows]


def save_wordpiece_bert(directory: Path, texts: list[str], layers: int) -> None:
    """A random BERT classifier (hidden 32) and a WordPiece tokenizer whose vocabulary is the texts' characters."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    chars = sorted({c for text in texts for c in text if not c.isspace()} | set(UNUSED))
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars])}
    tokenizer = BertTokenizer(vocab=vocab, model_max_length=128)  # transformers 5: WordPiece over `vocab`
    assert len(tokenizer) == len(vocab) and tokenizer.unk_token_id not in tokenizer(texts[0])["input_ids"]
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
    BertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def tinykd(stage: str, config: Path, runs: Path, *overrides: str) -> subprocess.CompletedProcess:
    sets = [arg for value in overrides for arg in ("--set", value)]
    done = subprocess.run([sys.executable, "-m", "tinykd", stage, "--config", str(config), "--runs-dir", str(runs),
                           *sets], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"tinykd {stage} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done


def test_the_readme_example_checks_and_trains_its_teacher(tmp_path):
    text = readme_example()
    example = yaml.safe_load(text)
    task, teacher = example["task"], example["teacher"]
    source, columns = task["source"], task["columns"]
    assert source["type"] == "files" and source["format"] == "tsv"
    assert len(task["labels"]) == 3 and len(task["label_names"]) == 3
    assert not Path(teacher["base"]).is_absolute(), "the example's teacher is a local directory"

    # Write what the example names under tmp_path, and point the YAML's paths there (keys untouched).
    texts = []
    for seed, split in enumerate(("train", "dev", "test")):
        texts += write_rows(tmp_path / source[split], columns, task["labels"], ROWS[split], seed)
    layers = max([s.get("layers", 0) for s in example.get("students", []) if s.get("kind") == "transformer"] + [2])
    save_wordpiece_bert(tmp_path / teacher["base"], texts, layers)
    saved = json.loads((tmp_path / teacher["base"] / "tokenizer.json").read_text(encoding="utf-8"))
    assert saved["model"]["type"] == "WordPiece"
    for relative in (source["train"], source["dev"], source["test"], teacher["base"]):
        text = re.sub(rf"(:\s+){re.escape(relative)}(\s)", rf"\g<1>{tmp_path / relative}\g<2>", text)
    config = tmp_path / "reviews.yaml"
    config.write_text(text, encoding="utf-8")
    assert yaml.safe_load(text).keys() == example.keys()

    runs = tmp_path / "runs"
    checked = tinykd("check", config, runs)
    assert f"task {task['name']} (single)" in checked.stdout, checked.stdout
    tinykd("data", config, runs, *TINY)
    tinykd("augment", config, runs, *TINY)
    done = tinykd("teacher", config, runs, *TINY)
    assert any(line.startswith("teacher: test accuracy") for line in done.stdout.splitlines()), done.stdout

    run = runs / task["name"]
    summary = json.loads((run / "data" / "summary.json").read_text())
    for split in ("train", "dev", "test"):
        counts = summary["label_counts"][split]
        assert list(counts) == task["label_names"], counts  # the README's names, in its class order
        assert min(counts.values()) >= 8, counts  # every class well represented
    assert sum(summary["label_counts"]["train"].values()) == 45  # task.max_rows.train took effect

    metrics = json.loads((run / "teacher" / "metrics.json").read_text())
    assert metrics["base"] == str(tmp_path / teacher["base"]) and metrics["head"] == "cls"
    assert list(metrics["test"]["per_class"]) == task["label_names"]
    assert metrics["test"]["rows"] == ROWS["test"]
    assert metrics["dev"]["accuracy"] > 0.5, metrics["dev"]  # it learned the cue words (chance: 1/3)
    if teacher.get("prune_vocabulary"):
        kept = metrics["vocabulary"]
        assert 5 < kept["vocabulary"] < kept["vocabulary_before"], kept  # the checkpoint's WordPiece vocabulary, cut
    model_config = json.loads((run / "teacher" / "model" / "config.json").read_text())
    assert model_config["id2label"] == {str(i): name for i, name in enumerate(task["label_names"])}
