"""Addressable random streams: every item is seeded by (seed, split, stream, index).

Nothing here touches global random state or Python's salted `hash()`, so the same seed gives the
same bytes in every process, and item i is drawn without drawing items 0..i-1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

# Documents may come from a validation split too; scenes use train and test only.
SPLIT_IDS = {"train": 0, "test": 1, "val": 2}
SCENE_SPLITS = ("train", "test")


def stream_id(name: str) -> int:
    """A stable 32-bit id for a stream name (blake2b, not the per-process salted hash())."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "little")


def split_id(split: str) -> int:
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLIT_IDS)}")
    return SPLIT_IDS[split]


def generator(seed: int, split: str, stream: str, index: int) -> np.random.Generator:
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    return np.random.default_rng([int(seed), split_id(split), stream_id(stream), int(index)])


def digest_int(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


class Rand:
    """A numpy Generator read through a buffer of uniforms.

    Per-call numpy overhead dominates text generation, so uniforms are drawn in blocks and
    consumed from a Python list; the sequence is still fully determined by the seed tuple.
    """

    __slots__ = ("_gen", "_buf", "_pos")

    def __init__(self, gen: np.random.Generator, block: int = 128):
        self._gen = gen
        self._buf: list[float] = gen.random(block).tolist()
        self._pos = 0

    @classmethod
    def of(cls, seed: int, split: str, stream: str, index: int) -> "Rand":
        return cls(generator(seed, split, stream, index))

    def random(self) -> float:
        if self._pos >= len(self._buf):
            self._buf = self._gen.random(256).tolist()
            self._pos = 0
        v = self._buf[self._pos]
        self._pos += 1
        return v

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.random()

    def randint(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi], both ends included."""
        return lo + int(self.random() * (hi - lo + 1))

    def chance(self, p: float) -> bool:
        return self.random() < p

    def choice(self, seq: Sequence[T]) -> T:
        return seq[int(self.random() * len(seq))]

    def weighted(self, seq: Sequence[T], weights: Sequence[float]) -> T:
        total = float(sum(weights))
        u = self.random() * total
        acc = 0.0
        for item, w in zip(seq, weights):
            acc += w
            if u < acc:
                return item
        return seq[-1]

    def sample(self, seq: Sequence[T], k: int) -> list[T]:
        pool = list(seq)
        if k > len(pool):
            raise ValueError(f"cannot sample {k} from {len(pool)}")
        return [pool.pop(int(self.random() * len(pool))) for _ in range(k)]

    def shuffle(self, items: list[Any]) -> list[Any]:
        for i in range(len(items) - 1, 0, -1):
            j = int(self.random() * (i + 1))
            items[i], items[j] = items[j], items[i]
        return items
