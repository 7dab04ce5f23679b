"""Tokenised token streams per source, and the grain pipeline that packs and mixes them.

A stream is one int32 `.npy` array: the source's documents in order, each followed by EOS. The
pipeline cuts each stream into windows of seq_len + 1 tokens (packing by concatenation), shuffles
and repeats them per source, and mixes sources with `grain.IterDataset.mix`, whose iterator state
holds every component's position, so a checkpointed iterator resumes exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grain
import numpy as np
from tqdm.auto import tqdm

from visual_priors.data.sources import get_source, world_id
from visual_priors.data.tokenizer import Tokenizer
from visual_priors.parallel.distributed import process_rows

WEIGHT_TOLERANCE = 1e-6
# Documents encoded per call; large enough to amortise the call, small enough to stop near n_tokens.
_ENCODE_BATCH = 64


def _stream_key(source_name: str, world: Any, tokenizer: Tokenizer, n_tokens: int,
                split: str) -> str:
    spec = {
        "source": get_source(source_name).fingerprint,
        "world": world_id(world),
        "tokenizer": tokenizer.fingerprint,
        "n_tokens": int(n_tokens),
        "split": split,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _save_json_atomic(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def tokenize_source(source_name: str, world: Any, tokenizer: Tokenizer, n_tokens: int,
                    out_dir: str | Path, split: str = "train", *, progress: bool = True) -> Path:
    """Encodes the source's documents in order, each followed by EOS, until >= n_tokens tokens.

    Writes `<source>-<split>-<key>.npy` (int32 stream) and a `.json` with counts beside it, and
    returns the `.npy` path. The key hashes every input, so a repeated call just returns the path.
    """
    source = get_source(source_name)
    if n_tokens <= 0:
        raise ValueError(f"n_tokens must be positive, got {n_tokens}")
    out_dir = Path(out_dir)
    key = _stream_key(source.name, world, tokenizer, n_tokens, split)
    path = out_dir / f"{source.name}-{split}-{key}.npy"
    meta_path = path.with_suffix(".json")
    # The JSON is written last, so its presence marks a complete stream.
    if meta_path.exists() and path.exists():
        return path
    out_dir.mkdir(parents=True, exist_ok=True)

    pieces, total, n_docs, n_chars = [], 0, 0, 0
    eos = np.array([tokenizer.eos_id], np.int32)
    with tqdm(total=n_tokens, unit="tok", unit_scale=True, desc=f"tokenize {source.name}/{split}",
              disable=not progress, leave=False) as bar:
        while total < n_tokens:
            docs = source.documents(world, split, n_docs, _ENCODE_BATCH)
            for doc, ids in zip(docs, tokenizer.encode_batch(docs)):
                pieces.append(np.asarray(ids, np.int32))
                pieces.append(eos)
                n_docs += 1
                n_chars += len(doc)
                total += len(ids) + 1
                bar.update(len(ids) + 1)
                if total >= n_tokens:
                    break
    stream = np.concatenate(pieces)
    _save_npy_atomic(path, stream)
    _save_json_atomic(meta_path, {
        "source": source.name,
        "split": split,
        "world": world_id(world),
        "tokenizer": tokenizer.fingerprint,
        "vocab_size": tokenizer.vocab_size,
        "n_tokens_requested": int(n_tokens),
        "n_tokens": int(stream.size),
        "n_documents": n_docs,
        "n_chars": n_chars,
        "chars_per_token": n_chars / max(1, stream.size - n_docs),
    })
    return path


def heldout_tokens(source_name: str, world: Any, tokenizer: Tokenizer, n_tokens: int,
                   out_dir: str | Path, *, progress: bool = True) -> Path:
    """The source's test-split stream (held-out scenes and files), for perplexity."""
    return tokenize_source(source_name, world, tokenizer, n_tokens, out_dir, split="test",
                           progress=progress)


def load_tokens(path: str | Path) -> np.ndarray:
    """A token stream, memory-mapped read-only."""
    return np.load(path, mmap_mode="r")


def stream_info(path: str | Path) -> dict:
    """The counts written beside a token stream."""
    return json.loads(Path(path).with_suffix(".json").read_text())


class TokenWindows:
    """Random-access windows of `window` consecutive tokens, tiling a stream without overlap.

    The tail shorter than a window is dropped. Holds a path (or array), so it pickles cheaply.
    """

    def __init__(self, stream: str | os.PathLike | np.ndarray, window: int):
        if window < 2:
            raise ValueError(f"window must be >= 2 tokens, got {window}")
        self.window = window
        self._path = None if isinstance(stream, np.ndarray) else str(stream)
        self._tokens = stream if isinstance(stream, np.ndarray) else None

    @property
    def tokens(self) -> np.ndarray:
        if self._tokens is None:
            self._tokens = load_tokens(self._path)
        return self._tokens

    def __getstate__(self):
        state = dict(self.__dict__)
        if self._path is not None:
            state["_tokens"] = None
        return state

    def __len__(self) -> int:
        return len(self.tokens) // self.window

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range [0, {len(self)})")
        start = index * self.window
        return np.array(self.tokens[start:start + self.window], dtype=np.int32)


class _Tag:
    """Names a window by its source index (a class, not a lambda, so it pickles)."""

    def __init__(self, index: int):
        self.index = np.int32(index)

    def __call__(self, window: int) -> dict[str, np.ndarray]:
        return {"window": np.int64(window), "source": self.index}


class _ReadRows:
    """Reads the windows of this process's rows of a global batch of (source, window) names;
    keeps the sources of the whole global batch under `global_source`, for counting."""

    def __init__(self, windows: list[TokenWindows], rows: slice):
        self.windows, self.rows = windows, rows

    def __call__(self, names: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sources, indices = names["source"][self.rows], names["window"][self.rows]
        tokens = np.stack([self.windows[s][i] for s, i in zip(sources, indices)])
        return {"tokens": tokens, "source": sources, "global_source": names["source"]}


def validate_weights(weights: Mapping[str, float], valid: Mapping[str, Any] | None = None,
                     tolerance: float = WEIGHT_TOLERANCE) -> dict[str, float]:
    """Checked weights with zero-weight sources dropped.

    Unknown sources (not in `valid`), negative or non-finite weights, and weights that do not sum
    to one are errors naming the offender, the valid sources or the sum.
    """
    weights = {str(k): float(v) for k, v in weights.items()}
    if valid is not None:
        unknown = sorted(set(weights) - set(valid))
        if unknown:
            raise ValueError(f"unknown source(s) {unknown} in mixture weights; "
                             f"valid sources: {', '.join(sorted(valid))}")
    bad = {k: v for k, v in weights.items() if not math.isfinite(v) or v < 0}
    if bad:
        raise ValueError(f"mixture weights must be finite and non-negative, got {bad}")
    total = math.fsum(weights.values())
    if abs(total - 1.0) > tolerance:
        raise ValueError(f"mixture weights must sum to 1 (tolerance {tolerance:g}), "
                         f"but they sum to {total:.9g}: {weights}")
    return {k: v for k, v in weights.items() if v > 0}


def _source_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class PretrainData:
    """Batches {"tokens": int32 [batch, seq_len+1], "source": int32 [batch]} from mixed streams.

    `source` indexes `source_names`, the sorted names of sources with positive weight. Each
    source is a shuffled, endlessly repeated `MapDataset` of window indices; `IterDataset.mix`
    interleaves them in proportion to the weights. `iterator` is the grain iterator: its
    `get_state()` / `set_state()` checkpoint and restore the position of every source.

    `batch_size` is the global batch. With several processes, each yields only its own rows of
    every global batch (`process_rows`): every process walks the same cheap stream of window
    indices, and reads the tokens of its own rows only. The iterator state and the token counter
    (which counts the whole global batch) are the same in every process.
    """

    def __init__(self, streams: Mapping[str, str | os.PathLike | np.ndarray],
                 weights: Mapping[str, float], seq_len: int, batch_size: int, seed: int = 0,
                 process_index: int = 0, process_count: int = 1):
        if seq_len < 1 or batch_size < 1:
            raise ValueError(f"seq_len and batch_size must be >= 1, got {seq_len}, {batch_size}")
        self.weights = validate_weights(weights, valid=streams)
        self.source_names = sorted(self.weights)
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed
        rows = process_rows(batch_size, process_index, process_count)
        components, all_windows = {}, []
        self.num_windows = {}
        for index, name in enumerate(self.source_names):
            windows = TokenWindows(streams[name], seq_len + 1)
            if len(windows) == 0:
                raise ValueError(f"source {name!r} has {len(windows.tokens)} tokens, fewer than "
                                 f"one window of seq_len + 1 = {seq_len + 1}")
            self.num_windows[name] = len(windows)
            all_windows.append(windows)
            components[name] = (
                grain.MapDataset.range(len(windows))
                .shuffle(seed=_source_seed(seed, name))
                .repeat()
                .map(_Tag(index))
                # Indices are cheap to make: reading threads would cost more than they save.
                .to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
            )
        mixed = grain.IterDataset.mix(components, {n: self.weights[n] for n in components})
        # Tokens are read after the global batch is cut, so a process reads only its own rows.
        self.dataset = mixed.batch(batch_size, drop_remainder=True).map(_ReadRows(all_windows, rows))
        self.iterator = iter(self.dataset)
        # What was drawn, per source; checkpointed with the iterator so a resumed run reports
        # the tokens of the whole run.
        self.counter = TokenCounter(self.source_names)

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = next(self.iterator)
        # Counted over the global batch, so every process reports the tokens the run trained on.
        self.counter.update({"tokens": batch["tokens"], "source": batch.pop("global_source")})
        return batch

    def get_state(self) -> dict:
        return {"iterator": self.iterator.get_state(), "drawn": self.counter.get_state()}

    def set_state(self, state: dict) -> None:
        self.iterator.set_state(state["iterator"])
        self.counter.set_state(state["drawn"])


class TokenCounter:
    """Tokens drawn per source. A row of seq_len + 1 tokens trains on seq_len predictions, so it
    counts seq_len, which is how token budgets are counted."""

    def __init__(self, source_names: list[str] | tuple[str, ...]):
        self.source_names = list(source_names)
        self._counts = np.zeros(len(self.source_names), np.int64)

    def update(self, batch: Mapping[str, Any]) -> None:
        tokens = np.asarray(batch["tokens"])
        sources = np.asarray(batch["source"]).reshape(-1)
        per_row = tokens.shape[-1] - 1
        self._counts += np.bincount(sources, minlength=len(self.source_names)) * per_row

    @property
    def total(self) -> int:
        return int(self._counts.sum())

    def counts(self) -> dict[str, int]:
        return {n: int(c) for n, c in zip(self.source_names, self._counts)}

    def fractions(self) -> dict[str, float]:
        total = self.total
        return {n: (int(c) / total if total else 0.0)
                for n, c in zip(self.source_names, self._counts)}

    def report(self) -> dict[str, Any]:
        """{"total": int, "counts": {source: int}, "fractions": {source: float}}."""
        return {"total": self.total, "counts": self.counts(), "fractions": self.fractions()}

    def get_state(self) -> dict[str, int]:
        return self.counts()

    def set_state(self, state: Mapping[str, int]) -> None:
        self._counts = np.array([int(state.get(n, 0)) for n in self.source_names], np.int64)
