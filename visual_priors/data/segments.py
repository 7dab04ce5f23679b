"""Pre-tokenised segments of one source: ArrayRecord shards, an index, and labels beside them.

Each document is encoded, followed by EOS, and cut into consecutive segments of at most
`segment_tokens` tokens; a segment never spans two documents, so it is the unit that is labelled
(multi-label, `visual_priors.data.labelling`) and the unit a mixture draws. One record of a shard
is one segment, its int32 tokens as raw little-endian bytes.

A segment set is written once per (source content, world, tokenizer, split, segment length,
token budget) into `<out_dir>/<source>-<split>-<key>/` and reused by every run that needs it.
Documents are encoded by worker processes, one shard per block of documents, in parallel.
`meta.json` is written last and marks a complete set. World sources also store each segment's
true labels (from the world's label spans), so labellers can be scored against them.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter
from tqdm.auto import tqdm

from visual_priors.errors import BadFile
from visual_priors.data.files import write_atomic
from visual_priors.data.labelling import LABELS, names_to_bits
from visual_priors.data.sources import AnySource, FileSource, Source, world_id
from visual_priors.data.tokenizer import Tokenizer

SEGMENT_TOKENS = 1024
DOCS_PER_SHARD = 256
# Bumped when what is written changes, so old segment sets are not reused.
_FORMAT_VERSION = 2
# Per-segment index arrays, one .npy file each beside the shards.
_INDEX = ("lengths", "documents", "shard", "record", "truth", "truth_known")


def segment_key(source: AnySource, world: Any, tokenizer: Tokenizer, split: str,
                segment_tokens: int, n_tokens: int | None) -> str:
    spec = {"source": source.fingerprint, "tokenizer": tokenizer.fingerprint, "split": split,
            "segment_tokens": int(segment_tokens), "n_tokens": int(n_tokens or 0),
            "world": world_id(world) if isinstance(source, Source) else None,
            "format": _FORMAT_VERSION}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def cut(n: int, segment_tokens: int) -> list[tuple[int, int]]:
    """[start, end) of the consecutive segments of a document of n tokens (EOS included)."""
    if segment_tokens < 2:
        raise ValueError(f"segment_tokens must be >= 2, got {segment_tokens}")
    return [(s, min(n, s + segment_tokens)) for s in range(0, n, segment_tokens)]


@dataclass
class _Block:
    """What one worker encodes: documents [first, first + count) of a world source, or texts."""

    shard: int
    first: int
    count: int
    texts: list[str] | None = None


def _encode_block(block: _Block, source: AnySource, world: Any, tokenizer: Tokenizer, split: str,
                  segment_tokens: int, path: str) -> dict[str, Any]:
    lengths, docs, truth, known = [], [], [], []
    n_chars = 0
    writer = ArrayRecordWriter(path, "group_size:1")
    try:
        for k in range(block.count):
            position = block.first + k
            if block.texts is not None:
                text, doc = block.texts[k], None
            else:
                text, doc = source.document_with_truth(world, position, split)
            n_chars += len(text)
            ids = np.asarray(tokenizer.encode(text) + [tokenizer.eos_id], np.int32)
            char = 0
            for start, end in cut(len(ids), segment_tokens):
                piece = ids[start:end]
                writer.write(piece.tobytes())
                lengths.append(len(piece))
                docs.append(position)
                if doc is not None:
                    # Decoded lengths give each segment's characters (exact for the world's text).
                    width = len(tokenizer.decode(piece[piece != tokenizer.eos_id]))
                    truth.append(doc.labels_between(char, char + width))
                    char += width
                known.append(doc is not None)
    finally:
        writer.close()
    return {"shard": block.shard, "lengths": np.asarray(lengths, np.int32),
            "documents": np.asarray(docs, np.int64),
            "truth": names_to_bits(truth),
            "known": np.asarray(known, bool), "n_docs": block.count, "n_chars": n_chars}


def _worker_encode(args) -> dict[str, Any]:
    block, source, world, tokenizer, split, segment_tokens, path = args
    return _encode_block(block, source, world, tokenizer, split, segment_tokens, path)


def _world_blocks(docs_per_shard: int) -> Iterator[_Block]:
    shard = 0
    while True:
        yield _Block(shard, shard * docs_per_shard, docs_per_shard)
        shard += 1


def _file_blocks(source: FileSource, split: str, docs_per_shard: int) -> Iterator[_Block]:
    texts, first, shard = [], 0, 0
    for text in source.iter_documents(None, split):
        texts.append(text)
        if len(texts) == docs_per_shard:
            yield _Block(shard, first, len(texts), texts)
            first, shard, texts = first + len(texts), shard + 1, []
    if texts:
        yield _Block(shard, first, len(texts), texts)


def build_segments(source: AnySource, world: Any, tokenizer: Tokenizer, out_dir: str | Path, *,
                   split: str = "train", segment_tokens: int = SEGMENT_TOKENS,
                   n_tokens: int | None = None, workers: int | None = None,
                   docs_per_shard: int = DOCS_PER_SHARD, progress: bool = True) -> SegmentSet:
    """Encodes the source's split into segments, or returns the set already on disk.

    World sources are endless, so `n_tokens` (at least this many tokens, whole shards) is
    required; file sources are read to the end unless `n_tokens` stops them earlier.
    `workers` processes encode shards in parallel (default: the CPU count; 0 = in this process).
    """
    if isinstance(source, Source) and not n_tokens:
        raise ValueError(f"world source {source.name!r} is endless: give n_tokens")
    if n_tokens is not None and n_tokens < 0:
        raise ValueError(f"n_tokens must be >= 0, got {n_tokens}")
    key = segment_key(source, world, tokenizer, split, segment_tokens, n_tokens)
    path = Path(out_dir) / f"{source.name}-{split}-{key}"
    if (path / "meta.json").exists():
        return SegmentSet(path)
    # A crashed earlier attempt may have left shards behind: start the set afresh.
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    blocks = (_world_blocks(docs_per_shard) if isinstance(source, Source)
              else _file_blocks(source, split, docs_per_shard))

    def task(block: _Block):
        # File blocks carry their texts; only world blocks need the source and the world.
        world_source = isinstance(source, Source)
        return (block, source if world_source else None, world if world_source else None,
                tokenizer, split, segment_tokens,
                str(path / f"shard-{block.shard:05d}.array_record"))

    results, total = [], 0
    bar = tqdm(total=n_tokens or None, unit="tok", unit_scale=True, disable=not progress,
               desc=f"segments {source.name}/{split}", leave=False)

    def done() -> bool:
        return bool(n_tokens) and total >= n_tokens

    def take(result) -> None:
        nonlocal total
        results.append(result)
        total += int(result["lengths"].sum())
        bar.update(int(result["lengths"].sum()))

    try:
        if workers <= 1:
            for block in blocks:
                take(_worker_encode(task(block)))
                if done():
                    break
        else:
            ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds JAX
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                pending = []
                for block in blocks:
                    pending.append(pool.submit(_worker_encode, task(block)))
                    if len(pending) < 2 * workers:
                        continue
                    take(pending.pop(0).result())
                    if done():
                        break
                for future in pending:
                    if done():
                        future.cancel()
                        continue
                    take(future.result())
    finally:
        bar.close()
    kept = {r["shard"] for r in results}
    for shard_file in path.glob("shard-*.array_record"):  # shards past the budget
        if int(shard_file.stem.split("-")[1]) not in kept:
            shard_file.unlink()
    if total == 0:
        shutil.rmtree(path)
        raise ValueError(f"source {source.name!r} has no {split} documents: it is empty")
    results.sort(key=lambda r: r["shard"])
    shard = np.concatenate([np.full(len(r["lengths"]), r["shard"], np.int32) for r in results])
    record = np.concatenate([np.arange(len(r["lengths"]), dtype=np.int32) for r in results])
    known = np.concatenate([r["known"] for r in results])
    truth = np.zeros((len(known), len(LABELS)), bool)
    truth[known] = np.concatenate([r["truth"] for r in results])
    index = {"lengths": np.concatenate([r["lengths"] for r in results]),
             "documents": np.concatenate([r["documents"] for r in results]),
             "shard": shard, "record": record, "truth": truth, "truth_known": known}
    for name, array in index.items():  # one .npy each, so readers can memory-map them
        write_atomic(path / f"{name}.npy", write=lambda f, a=array: np.save(f, a))
    meta = {"source": source.name, "description": source.description, "split": split,
            "fingerprint": source.fingerprint, "tokenizer": tokenizer.fingerprint,
            "vocab_size": tokenizer.vocab_size, "segment_tokens": int(segment_tokens),
            "n_tokens_requested": int(n_tokens or 0), "n_tokens": int(total),
            "n_segments": int(len(known)), "n_documents": int(sum(r["n_docs"] for r in results)),
            "n_chars": int(sum(r["n_chars"] for r in results)), "n_shards": len(results),
            "world": world_id(world) if isinstance(source, Source) else None}
    write_atomic(path / "meta.json", json.dumps(meta, indent=2).encode())
    return SegmentSet(path)


class SegmentSet:
    """A finished segment set on disk: per-segment lengths, documents, true labels, and tokens
    read by random access. Holds only paths until read, so it pickles cheaply."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{self.path} is not a finished segment set (no meta.json)")
        try:
            self.meta = json.loads(meta_path.read_text())
            # Memory-mapped: a paper-scale source has tens of millions of segments.
            index = {name: np.load(self.path / f"{name}.npy", mmap_mode="r") for name in _INDEX}
            self.lengths, self.documents = index["lengths"], index["documents"]
            self.shard, self.record = index["shard"], index["record"]
            self.truth, self.truth_known = index["truth"], index["truth_known"]
        except (OSError, ValueError, KeyError) as err:
            raise BadFile(f"segment set {self.path} is corrupt ({err}); delete it to rebuild") from err
        if len(self.lengths) != self.meta["n_segments"]:
            raise BadFile(f"segment set {self.path} is corrupt: index has {len(self.lengths)} "
                             f"segments, meta.json says {self.meta['n_segments']}")
        self._readers: dict[int, ArrayRecordReader] = {}

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def source(self) -> str:
        return self.meta["source"]

    @property
    def real_text(self) -> bool:
        """Whether the segments come from a real corpus rather than the world's generator."""
        return self.meta.get("world") is None

    @property
    def n_tokens(self) -> int:
        return int(self.meta["n_tokens"])

    def _reader(self, shard: int) -> ArrayRecordReader:
        if shard not in self._readers:
            file = self.path / f"shard-{shard:05d}.array_record"
            if not file.exists():
                raise FileNotFoundError(f"segment set {self.path} lacks {file.name}; delete it to rebuild")
            self._readers[shard] = ArrayRecordReader(str(file))
        return self._readers[shard]

    def tokens(self, index: int) -> np.ndarray:
        """The int32 tokens of segment `index`."""
        raw = self._reader(int(self.shard[index])).read([int(self.record[index])])[0]
        out = np.frombuffer(raw, np.int32)
        if len(out) != self.lengths[index]:
            raise BadFile(f"segment {index} of {self.path} has {len(out)} tokens, the index says "
                             f"{self.lengths[index]}: the set is corrupt; delete it to rebuild")
        return out

    def texts(self, tokenizer: Tokenizer, indices: Sequence[int] | None = None) -> list[str]:
        indices = range(len(self)) if indices is None else indices
        return [tokenizer.decode(self.tokens(i)) for i in indices]

    def stream(self, max_tokens: int | None = None) -> np.ndarray:
        """The segments' tokens concatenated in order (documents end with EOS), for perplexity."""
        pieces, total = [], 0
        for i in range(len(self)):
            pieces.append(self.tokens(i))
            total += len(pieces[-1])
            if max_tokens is not None and total >= max_tokens:
                break
        return np.concatenate(pieces)

    def labels_path(self, labeller_fingerprint: str) -> Path:
        return self.path / f"labels-{labeller_fingerprint}.npy"


def label_segments(segments: SegmentSet, labeller: Any, tokenizer: Tokenizer, *,
                   path: str | Path | None = None, batch: int = 256,
                   progress: bool = True) -> np.ndarray:
    """bool [n_segments, 6] labels of every segment by `labeller`, computed once and stored at
    `path` (default: beside the segments, under the labeller's fingerprint)."""
    path = Path(path) if path is not None else segments.labels_path(labeller.fingerprint)
    if path.exists():
        bits = np.load(path)
        if bits.shape == (len(segments), len(LABELS)):
            return bits
    out = np.zeros((len(segments), len(LABELS)), bool)
    with tqdm(total=len(segments), unit="seg", desc=f"label {segments.source} ({labeller.name})",
              disable=not progress, leave=False) as bar:
        for start in range(0, len(segments), batch):
            idx = range(start, min(len(segments), start + batch))
            out[start:idx.stop] = labeller.label(segments.texts(tokenizer, idx))
            bar.update(len(idx))
    write_atomic(path, write=lambda f: np.save(f, out))
    return out
