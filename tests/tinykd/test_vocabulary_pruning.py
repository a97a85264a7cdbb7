"""Vocabulary pruning keeps outputs identical on in-vocabulary text, for WordLevel and Unigram tokenizers."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    PreTrainedTokenizerFast,
)

from tests.conftest import sentiment_rows
from tinykd.vocabulary_pruning import prune_embeddings, prune_tokenizer, used_token_ids

TEXTS = [text for _, text in sentiment_rows(200)]


def _logits(model, tokenizer, texts):
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits


def _unigram_tokenizer() -> PreTrainedTokenizerFast:
    core = Tokenizer(models.Unigram())
    core.pre_tokenizer = pre_tokenizers.Metaspace()
    core.decoder = decoders.Metaspace()
    core.train_from_iterator(TEXTS + ["手机 电池 很好 物流 太慢", "hello world"], trainers.UnigramTrainer(
        vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>"))
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", core.token_to_id("<s>")), ("</s>", core.token_to_id("</s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", cls_token="<s>",
                                   sep_token="</s>", pad_token="<pad>", unk_token="<unk>")


def test_word_level_teacher_pruned_gives_identical_logits(tiny_teacher):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    subset = TEXTS[:20]
    keep = used_token_ids(tokenizer, subset)
    assert len(keep) < len(tokenizer)
    pruned_tokenizer = prune_tokenizer(tokenizer, keep)
    before = _logits(model, tokenizer, subset)
    pruned = prune_embeddings(model, keep)
    assert pruned.config.vocab_size == len(keep) == pruned.get_input_embeddings().num_embeddings
    torch.testing.assert_close(_logits(pruned, pruned_tokenizer, subset), before, rtol=0, atol=1e-6)
    ids = pruned_tokenizer(subset[0])["input_ids"]
    assert [pruned_tokenizer.convert_ids_to_tokens(i) for i in ids] == tokenizer.convert_ids_to_tokens(
        tokenizer(subset[0])["input_ids"])


def test_unigram_pruning_keeps_segmentation_and_maps_unseen_pieces_to_unk(tmp_path):
    tokenizer = _unigram_tokenizer()
    subset = TEXTS[:30]
    keep = used_token_ids(tokenizer, subset)
    pruned = prune_tokenizer(tokenizer, keep)
    for text in subset:
        assert pruned.tokenize(text) == tokenizer.tokenize(text)
        assert pruned(text)["input_ids"] == [keep.index(i) for i in tokenizer(text)["input_ids"]]
    assert pruned.pad_token_id == keep.index(tokenizer.pad_token_id)
    assert pruned.unk_token_id in pruned("hello")["input_ids"]  # 'h' was never used by the subset
    pruned.save_pretrained(tmp_path)  # round-trips like any HF tokenizer
    assert AutoTokenizer.from_pretrained(tmp_path).tokenize(subset[0]) == tokenizer.tokenize(subset[0])


def test_unigram_model_outputs_identical_after_pruning():
    tokenizer = _unigram_tokenizer()
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)).eval()
    subset = TEXTS[:25]
    before = _logits(model, tokenizer, subset)
    keep = used_token_ids(tokenizer, subset)
    after = _logits(prune_embeddings(model, keep), prune_tokenizer(tokenizer, keep), subset)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    assert model.config.pad_token_id == keep.index(tokenizer.pad_token_id)


def test_bpe_is_refused():
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.train_from_iterator(["ab ab abc"], trainers.BpeTrainer(vocab_size=20, special_tokens=["<unk>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")
    with pytest.raises(ValueError, match="supports Unigram, WordPiece and WordLevel tokenizers, not BPE"):
        prune_tokenizer(tokenizer, [0, 1])


def test_mean_pool_wrapper_prunes_its_encoder_config():
    from tinykd.teacher.mean_pool import MeanPoolConfig, MeanPoolForSequenceClassification

    tokenizer = _unigram_tokenizer()
    torch.manual_seed(0)
    encoder = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
    model = MeanPoolForSequenceClassification(MeanPoolConfig(encoder=encoder, num_labels=2)).eval()
    subset = TEXTS[:25]
    before = _logits(model, tokenizer, subset)
    keep = used_token_ids(tokenizer, subset)
    after = _logits(prune_embeddings(model, keep), prune_tokenizer(tokenizer, keep), subset)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    assert model.config.encoder.vocab_size == len(keep) == model.encoder.config.vocab_size
