"""SentencePiece tokenizer: trained once per (sources, vocabulary size, world) and cached.

BPE with byte fallback, so any text encodes; identity normalisation and no dummy prefix, so that
decode(encode(s)) == s, whitespace and newlines included (code needs them).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

from visual_priors.errors import BadValue
from visual_priors.data.files import write_atomic
from visual_priors.data.sources import AnySource, get_sources, world_id

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
# 256 byte pieces, four special ids and the newline piece are always in the vocabulary.
MIN_VOCAB_SIZE = 256 + 4 + 1 + 64
# Training reads at most this many characters: a few MB keep vocab 2048 well under 30 s.
DEFAULT_SAMPLE_CHARS = 3_000_000
# SentencePiece drops longer training sentences, so texts are cut into pieces of at most this.
_PIECE_CHARS = 4096
# Bumped when training options change, so cached models are not reused across them.
_TRAINER_VERSION = 1


class Tokenizer:
    """A SentencePiece model with fixed special ids (pad 0, unk 1, bos 2, eos 3)."""

    def __init__(self, model_proto: bytes, path: str | Path | None = None):
        self._proto = bytes(model_proto)
        self.path = Path(path) if path is not None else None
        self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
        self.fingerprint = self._content_hash()

    def _content_hash(self) -> str:
        # Hashes what encoding depends on, not the raw file: the file also records trainer
        # settings such as the thread count, which do not change the vocabulary.
        h = hashlib.sha256()
        for i in range(self._sp.get_piece_size()):
            h.update(f"{self._sp.id_to_piece(i)}\x00{self._sp.get_score(i)!r}\x00".encode())
        h.update(f"{self.pad_id},{self.unk_id},{self.bos_id},{self.eos_id}".encode())
        return h.hexdigest()[:16]

    def __getstate__(self):
        return {"model_proto": self._proto, "path": self.path}

    def __setstate__(self, state):
        self.__init__(state["model_proto"], state["path"])

    def __repr__(self):
        return f"Tokenizer(vocab_size={self.vocab_size}, path={str(self.path)!r})"

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def pad_id(self) -> int:
        return self._sp.pad_id()

    @property
    def unk_id(self) -> int:
        return self._sp.unk_id()

    @property
    def bos_id(self) -> int:
        return self._sp.bos_id()

    @property
    def eos_id(self) -> int:
        return self._sp.eos_id()

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        return self._sp.encode(text, add_bos=add_bos, add_eos=add_eos)

    def encode_batch(self, texts: Sequence[str], *, add_bos: bool = False,
                     add_eos: bool = False) -> list[list[int]]:
        return self._sp.encode(list(texts), add_bos=add_bos, add_eos=add_eos)

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        """Text of the ids; pad, bos and eos decode to nothing."""
        return self._sp.decode([int(i) for i in np.asarray(ids).reshape(-1)])

    def id_to_piece(self, i: int) -> str:
        return self._sp.id_to_piece(int(i))


def _pieces(texts: Iterable[str], max_chars: int):
    """Training sentences: texts cut at line ends into pieces, up to max_chars in all."""
    used = 0
    for text in texts:
        start = 0
        while start < len(text) and used < max_chars:
            end = min(len(text), start + _PIECE_CHARS)
            if end < len(text):
                cut = text.rfind("\n", start, end)
                end = cut + 1 if cut > start else end
            piece = text[start:end]
            start = end
            used += len(piece)
            if piece.strip():
                yield piece
        if used >= max_chars:
            return


def train_tokenizer(texts: Iterable[str], vocab_size: int, path: str | Path, *,
                    max_chars: int = DEFAULT_SAMPLE_CHARS) -> Tokenizer:
    """Trains a BPE model on (at most max_chars of) texts and writes it to `path`.

    Deterministic given the texts: the input is neither sampled nor shuffled by the trainer.
    """
    if vocab_size < MIN_VOCAB_SIZE:
        raise BadValue(f"vocab_size must be at least {MIN_VOCAB_SIZE} (256 byte pieces, "
                         f"special ids and some merges), got {vocab_size}")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=_pieces(texts, max_chars),
            model_writer=model,
            model_type="bpe",
            vocab_size=vocab_size,
            byte_fallback=True,
            character_coverage=0.9995,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=False,
            allow_whitespace_only_pieces=True,
            split_digits=True,
            user_defined_symbols=["\n"],
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            max_sentence_length=4 * _PIECE_CHARS,
            shuffle_input_sentence=False,
            input_sentence_size=0,
            hard_vocab_limit=True,
            num_threads=os.cpu_count() or 1,
            minloglevel=2,
        )
    except RuntimeError as err:
        if "Vocabulary size too high" in str(err):
            # Small corpora (the embedded world) cannot fill large vocabularies.
            raise BadValue(f"vocab_size {vocab_size} is too large for this training sample "
                             f"({err}); use a smaller vocab_size or more text") from err
        raise
    path = Path(path)
    write_atomic(path, model.getvalue())
    return Tokenizer(model.getvalue(), path)


def load_tokenizer(path: str | Path) -> Tokenizer:
    path = Path(path)
    return Tokenizer(path.read_bytes(), path)


def balanced_sample(sources: Sequence[str | AnySource], world: Any, sample_chars: int,
                    split: str = "train") -> list[str]:
    """About sample_chars // len(sources) characters of leading documents from each source."""
    sources = get_sources(sources)
    per_source = sample_chars // max(1, len(sources))
    texts = []
    for source in sources:
        used = 0
        # The position bound stops a source of empty documents from looping forever.
        for position, doc in enumerate(source.iter_documents(world, split)):
            if used >= per_source or position > per_source:
                break
            doc = doc[: per_source - used]
            texts.append(doc)
            used += len(doc)
    return texts


def tokenizer_key(sources: Sequence[str | AnySource], world: Any, vocab_size: int,
                  sample_chars: int) -> str:
    """Content hash of what the tokenizer is trained on; order of sources does not matter."""
    spec = {
        "sources": sorted(s.fingerprint for s in get_sources(sources)),
        "vocab_size": int(vocab_size),
        "world": world_id(world),
        "sample_chars": int(sample_chars),
        "trainer": _TRAINER_VERSION,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def build_tokenizer(sources: Sequence[str | AnySource], world: Any, vocab_size: int,
                    cache_dir: str | Path, *,
                    sample_chars: int = DEFAULT_SAMPLE_CHARS) -> Tokenizer:
    """The tokenizer trained on a balanced sample of the sources, loaded from cache_dir if there."""
    # Sorted, so that the sample (not only the key) is independent of the order given.
    sources = sorted(get_sources(sources), key=lambda s: s.name)
    if not sources:
        raise ValueError("build_tokenizer needs at least one source")
    key = tokenizer_key(sources, world, vocab_size, sample_chars)
    path = Path(cache_dir) / f"tokenizer-{key}.model"
    if path.exists():
        return load_tokenizer(path)
    texts = balanced_sample(sources, world, sample_chars)
    tok = train_tokenizer(texts, vocab_size, path, max_chars=sample_chars)
    meta = {
        "sources": sorted(s.name for s in sources),
        "vocab_size": vocab_size,
        "world": world_id(world),
        "sample_chars": sample_chars,
        "fingerprint": tok.fingerprint,
    }
    write_atomic(path.with_suffix(".json"), json.dumps(meta, indent=2).encode())
    return tok
