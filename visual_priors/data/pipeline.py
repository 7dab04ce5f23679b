"""The pre-training input pipeline: labelled segments mixed by a mixture, packed into rows.

Every mixture component (`visual_priors.config.mixtures`) is the list of segments that satisfy
its label predicate in its sources. Each component is a shuffled, endlessly repeated grain
`MapDataset` of segment positions; `grain.IterDataset.mix` interleaves them with weights
share / mean segment length, so that the components' shares hold in *tokens*. Segments are then
packed into rows of seq_len + 1 tokens by concatenation, a segment continuing in the next row
where it does not fit; `segment_ids` and `positions` mark where each segment starts, so
attention does not cross segments (and so never crosses documents).

Packing needs only segment lengths, so every process walks the same cheap stream of segment
names and reads the tokens of its own rows of each global batch only: batches are the same
whatever the number of hosts. The state (grain's per-component positions, the segment a row
stopped in, and the tokens drawn) is checkpointed with the model, so a resumed run continues
with exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grain
import numpy as np

from visual_priors.config import mixtures as mixtures_lib
from visual_priors.data.labelling import ALL_LABELS, LABELS, with_combinations
from visual_priors.errors import BadValue
from visual_priors.parallel.distributed import process_rows


class Segments(Protocol):
    """What the pipeline reads: a `SegmentSet` on disk, or `ArraySegments` in memory."""

    lengths: np.ndarray

    def tokens(self, index: int) -> np.ndarray: ...


class ArraySegments:
    """Segments held in memory (tests, benchmarks, small corpora)."""

    def __init__(self, segments: Sequence[np.ndarray]):
        self._segments = [np.asarray(s, np.int32) for s in segments]
        self.lengths = np.array([len(s) for s in self._segments], np.int32)

    def __len__(self) -> int:
        return len(self._segments)

    def tokens(self, index: int) -> np.ndarray:
        return self._segments[index]


class MixtureShortfall(BadValue):
    """The data cannot supply a mixture: the message lists the shortfall of every component."""


@dataclass(frozen=True)
class PlannedComponent:
    component: mixtures_lib.Component
    sources: np.ndarray  # pool source index of each segment
    segments: np.ndarray  # segment index within its source
    lengths: np.ndarray

    @property
    def available(self) -> int:
        return int(self.lengths.sum())


class SegmentPool:
    """Segments of several sources with their labels (8 columns, combinations derived)."""

    def __init__(self, segments: Mapping[str, Segments],
                 labels: Mapping[str, np.ndarray] | None = None):
        if not segments:
            raise BadValue("the segment pool is empty: give at least one source")
        self.names = sorted(segments)
        self.segments = [segments[n] for n in self.names]
        self.lengths = [np.asarray(s.lengths, np.int64) for s in self.segments]
        self.bits = []
        for name, lengths in zip(self.names, self.lengths):
            if len(lengths) == 0:
                raise ValueError(f"source {name!r} has no segments: it is empty")
            if labels is None or name not in labels:
                self.bits.append(None)
                continue
            base = np.asarray(labels[name], bool)
            if base.shape != (len(lengths), len(LABELS)):
                raise ValueError(f"labels of source {name!r} are {base.shape}, expected "
                                 f"({len(lengths)}, {len(LABELS)})")
            self.bits.append(with_combinations(base))

    @property
    def labelled(self) -> bool:
        return all(b is not None for b in self.bits)

    def _mask(self, i: int, require: Sequence[str], exclude: Sequence[str]) -> np.ndarray:
        if not require and not exclude:
            return np.ones(len(self.lengths[i]), bool)
        if self.bits[i] is None:
            raise ValueError(f"source {self.names[i]!r} has no segment labels, which a "
                             f"label-based mixture needs")
        mask = np.ones(len(self.lengths[i]), bool)
        for name in require:
            mask &= self.bits[i][:, ALL_LABELS.index(name)]
        for name in exclude:
            mask &= ~self.bits[i][:, ALL_LABELS.index(name)]
        return mask

    def _index(self, source: str) -> int:
        if source not in self.names:
            raise ValueError(f"source {source!r} is not in the segment pool; "
                             f"pool sources: {', '.join(self.names)}")
        return self.names.index(source)

    def tokens(self, sources: Sequence[str], require: Sequence[str] = (),
               exclude: Sequence[str] = ()) -> int:
        """Tokens of the segments of `sources` that satisfy the predicate."""
        total = 0
        for s in sources:
            i = self._index(s)
            total += int(self.lengths[i][self._mask(i, require, exclude)].sum())
        return total

    def select(self, component: mixtures_lib.Component) -> PlannedComponent:
        src, seg = [], []
        for s in component.sources:
            i = self._index(s)
            idx = np.flatnonzero(self._mask(i, component.require, component.exclude))
            src.append(np.full(len(idx), i, np.int32))
            seg.append(idx.astype(np.int64))
        lengths = np.concatenate([self.lengths[s[0]][g] if len(s) else np.zeros(0, np.int64)
                                  for s, g in zip(src, seg)])
        return PlannedComponent(component, np.concatenate(src), np.concatenate(seg), lengths)


def plan(pool: SegmentPool, mixture: mixtures_lib.Mixture, total_tokens: int | None = None,
         max_epochs: float | None = None) -> list[PlannedComponent]:
    """The mixture's components with their segments; raises `MixtureShortfall` naming every
    component that has no segments or, for a run of `total_tokens`, too few (more than
    `max_epochs` passes over its segments would be needed)."""
    comps = mixture.components(lambda req, exc: pool.tokens(mixture.sources, req, exc))
    planned = [pool.select(c) for c in comps]
    short = []
    for p in planned:
        c = p.component
        if p.available == 0:
            short.append(f"  {c.name}: no segments satisfy it in {', '.join(c.sources)}")
            continue
        if not total_tokens:
            continue
        need = c.share * total_tokens
        limit = p.available * (max_epochs or math.inf)
        if need > limit:
            short.append(f"  {c.name}: needs {need:,.0f} tokens ({c.share:.1%}), has {p.available:,} "
                         f"in {len(p.lengths):,} segments x {max_epochs:g} epochs, "
                         f"short by {need - limit:,.0f}")
    if short:
        run = f" for {total_tokens:,} tokens" if total_tokens else ""
        raise MixtureShortfall(f"mixture {mixture.name} cannot be built from the available "
                               f"data{run}:\n" + "\n".join(short))
    return planned


def _component_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class _Tag:
    """Names a drawn element by its component (a class, not a lambda, so it pickles)."""

    def __init__(self, index: int):
        self.index = np.int32(index)

    def __call__(self, position: int) -> tuple[np.int32, np.int64]:
        return self.index, np.int64(position)


class DrawCounter:
    """Tokens drawn per source, per label (8 columns) and per component.

    Only the first seq_len tokens of a row of seq_len + 1 are counted (the last one is only a
    target), so the total equals rows x seq_len, which is how token budgets are counted.
    """

    def __init__(self, sources: Sequence[str], components: Sequence[str]):
        self.sources, self.components = list(sources), list(components)
        self.by_source = np.zeros(len(self.sources), np.int64)
        self.by_component = np.zeros(len(self.components), np.int64)
        self.by_label = np.zeros(len(ALL_LABELS), np.int64)

    def add(self, source: int, component: int, bits: np.ndarray | None, tokens: int) -> None:
        self.by_source[source] += tokens
        self.by_component[component] += tokens
        if bits is not None:
            self.by_label += bits.astype(np.int64) * tokens

    @property
    def total(self) -> int:
        return int(self.by_source.sum())

    def counts(self) -> dict[str, int]:
        return {n: int(c) for n, c in zip(self.sources, self.by_source)}

    def report(self) -> dict[str, Any]:
        total = self.total

        def shares(names, counts):
            return {n: (int(c) / total if total else 0.0) for n, c in zip(names, counts)}

        return {"total": total,
                "by_source": self.counts(), "source_shares": shares(self.sources, self.by_source),
                "by_component": {n: int(c) for n, c in zip(self.components, self.by_component)},
                "component_shares": shares(self.components, self.by_component),
                "by_label": {n: int(c) for n, c in zip(ALL_LABELS, self.by_label)},
                "label_shares": shares(ALL_LABELS, self.by_label)}

    def get_state(self) -> dict[str, list[int]]:
        return {"source": self.by_source.tolist(), "component": self.by_component.tolist(),
                "label": self.by_label.tolist()}

    def set_state(self, state: Mapping[str, Sequence[int]]) -> None:
        self.by_source = np.asarray(state["source"], np.int64)
        self.by_component = np.asarray(state["component"], np.int64)
        self.by_label = np.asarray(state["label"], np.int64)


class PretrainData:
    """Global batches of packed rows: {"tokens", "segment_ids", "positions"}, int32
    [rows, seq_len + 1], where rows are this process's rows of the global `batch_size`.

    `segment_ids` number the segments of a row from 1; `positions` count tokens within each
    segment. `counter` holds the tokens drawn per source, label and component over the whole
    global batch, so every process reports what the run trained on.
    """

    def __init__(self, pool: SegmentPool, mixture: str | Mapping | mixtures_lib.Mixture, *,
                 seq_len: int, batch_size: int, seed: int = 0, total_tokens: int | None = None,
                 max_epochs: float | None = None, process_index: int = 0, process_count: int = 1):
        if seq_len < 1 or batch_size < 1:
            raise ValueError(f"seq_len and batch_size must be >= 1, got {seq_len}, {batch_size}")
        self.pool = pool
        self.mixture = mixtures_lib.parse(mixture, known_sources=pool.names, default_pool=pool.names)
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed
        self.rows = process_rows(batch_size, process_index, process_count)
        self.planned = plan(pool, self.mixture, total_tokens, max_epochs)
        datasets, weights = [], []
        for index, p in enumerate(self.planned):
            datasets.append(
                grain.MapDataset.range(len(p.lengths))
                .shuffle(seed=_component_seed(seed, p.component.name))
                .repeat()
                .map(_Tag(index))
                # Positions are cheap to make: reading threads would cost more than they save.
                .to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)))
            # Elements are segments; dividing by the mean length makes the shares hold in tokens.
            weights.append(p.component.share / float(p.lengths.mean()))
        self.iterator = iter(grain.IterDataset.mix(datasets, weights))
        self._carry: tuple[int, int, int] | None = None  # (component, position, offset)
        self.counter = DrawCounter(pool.names, [p.component.name for p in self.planned])

    def __iter__(self):
        return self

    def _next_row(self) -> list[tuple[int, int, int, int, int]]:
        """(component, source, segment, offset, take) pieces filling one row of seq_len + 1."""
        width, pieces, fill = self.seq_len + 1, [], 0
        while fill < width:
            if self._carry is None:
                comp, position = next(self.iterator)
                self._carry = (int(comp), int(position), 0)
            comp, position, offset = self._carry
            p = self.planned[comp]
            length = int(p.lengths[position])
            take = min(length - offset, width - fill)
            pieces.append((comp, int(p.sources[position]), int(p.segments[position]), offset, take))
            counted = min(take, max(0, self.seq_len - fill))
            if counted:
                bits = self.pool.bits[p.sources[position]]
                self.counter.add(int(p.sources[position]), comp,
                                 None if bits is None else bits[p.segments[position]], counted)
            fill += take
            offset += take
            self._carry = None if offset == length else (comp, position, offset)
        return pieces

    def __next__(self) -> dict[str, np.ndarray]:
        rows = [self._next_row() for _ in range(self.batch_size)][self.rows]
        width = self.seq_len + 1
        tokens = np.empty((len(rows), width), np.int32)
        segment_ids = np.empty((len(rows), width), np.int32)
        positions = np.empty((len(rows), width), np.int32)
        for r, pieces in enumerate(rows):
            at = 0
            for k, (_, source, segment, offset, take) in enumerate(pieces):
                seg = self.pool.segments[source].tokens(segment)
                tokens[r, at:at + take] = seg[offset:offset + take]
                segment_ids[r, at:at + take] = k + 1
                positions[r, at:at + take] = np.arange(offset, offset + take)
                at += take
        return {"tokens": tokens, "segment_ids": segment_ids, "positions": positions}

    def get_state(self) -> dict:
        return {"iterator": self.iterator.get_state(),
                "carry": None if self._carry is None else list(self._carry),
                "drawn": self.counter.get_state()}

    def set_state(self, state: dict) -> None:
        self.iterator.set_state(state["iterator"])
        self._carry = None if state.get("carry") is None else tuple(int(x) for x in state["carry"])
        self.counter.set_state(state["drawn"])
