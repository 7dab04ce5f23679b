"""Bootstrap draws of conditions' scores for the findings (analysis/findings.py).

A draw redraws every benchmark's questions (Binomial(n, p) / n: exactly a resample of its
questions with replacement) and resamples a condition's seed replicates (``pool_seeds``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from visual_priors.analysis import curves, structure
from visual_priors.analysis.curves import OVERALL


@dataclasses.dataclass
class Table:
    """Per condition (``keys``) and column: the pooled score and its draws [draw, condition,
    column] (questions and seeds resampled)."""

    keys: list
    columns: list[str]
    point: np.ndarray
    draws: np.ndarray
    seeds: list[int]
    runs: list[Mapping[str, Any]]
    without_questions: int

    def values(self, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(point [n], draws [B, n]) of the mean of the named columns."""
        idx = [self.columns.index(c) for c in names]
        return self.point[:, idx].mean(axis=-1), self.draws[:, :, idx].mean(axis=-1)

    def resampled(self, rng: np.random.Generator) -> np.ndarray:
        """Condition indices [B, n] drawn with replacement: a bootstrap over conditions."""
        n = len(self.keys)
        return rng.integers(0, n, size=(self.draws.shape[0], n))


def accuracy_draws(record: Mapping[str, Any], columns: Sequence[str], n_boot: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
    """(point [k], draws [B, k], whether question counts were there) of a run's accuracies:
    each benchmark redrawn as Binomial(n, p) / n, columns the plain means of their benchmarks,
    centred on the run's reported scores."""
    point = np.array([curves.accuracy_of(record, c) for c in columns], dtype=np.float64)
    bench = record.get("benchmarks") or {}
    nq = record.get("n_questions") or {}
    bcat = record.get("benchmark_category") or {}
    draws = np.repeat(point[None, :], n_boot, axis=0)
    noisy = True
    for j, c in enumerate(columns):
        names = [b for b in bench if c == OVERALL or bcat.get(b) == c]
        if not names or any(not nq.get(b) or nq[b] <= 0 for b in names):
            noisy = False
            continue
        n = np.array([nq[b] for b in names], dtype=np.int64)
        p = np.clip(np.array([bench[b] for b in names], dtype=np.float64), 0.0, 1.0)
        redrawn = rng.binomial(n, p, size=(n_boot, len(names))) / n
        draws[:, j] = point[j] + (redrawn - p).mean(axis=1)
    return point, draws, noisy


def scalar_draws(value: Callable[[Mapping[str, Any]], float]):
    """A run's fixed number (alignment score, perplexity) as draws: no question noise."""
    def draw(record, columns, n_boot, rng):
        point = np.array([value(record)], dtype=np.float64)
        return point, np.repeat(point[None, :], n_boot, axis=0), True
    return draw


def pool_seeds(points: np.ndarray, draws: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(point [k], draws [B, k]) of the mean of m seed replicates, from their scores [m, k] and
    question draws [m, B, k].

    A draw is the mean of m seed effects resampled with replacement plus the mean of every
    seed's question deviation. The seed effects are the seeds' deviations from their mean,
    shrunk to the spread that question noise does not explain (the seeds' variance less the
    mean question variance, floored at 0) and rescaled by sqrt(m / (m - 1)), so that a draw's
    variance is (seed variance + question variance) / m, unbiased, without counting the
    question noise twice (it is already in the seeds' spread).
    """
    m, n_boot = len(points), draws.shape[1]
    mean = points.mean(axis=0)
    question = (draws - points[:, None, :]).mean(axis=0)                   # [B, k]
    if m == 1:
        return mean, mean + question
    spread = points.var(axis=0, ddof=1)
    seed_var = np.maximum(spread - (draws - points[:, None, :]).var(axis=1).mean(axis=0), 0.0)
    shrink = np.sqrt(m / (m - 1) * np.divide(seed_var, spread, out=np.zeros_like(spread),
                                             where=spread > 0))
    effects = shrink * (points - mean)                                    # [m, k]
    pick = rng.integers(0, m, size=(n_boot, m))
    return mean, mean + effects[pick].mean(axis=1) + question


def pooled_table(groups: Mapping[Any, Sequence[Mapping[str, Any]]], columns: Sequence[str],
                 n_boot: int, rng: np.random.Generator, run_draws=accuracy_draws) -> Table:
    """Each condition's score: the mean over its seed replicates (``pool_seeds``), every
    seed's questions resampled."""
    keys, points, draws, seeds, runs, quiet = [], [], [], [], [], 0
    for key, members in groups.items():
        made = [run_draws(r, columns, n_boot, rng) for r in members]
        quiet += sum(not noisy for *_, noisy in made)
        point, drawn = pool_seeds(np.stack([m[0] for m in made]), np.stack([m[1] for m in made]), rng)
        keys.append(key)
        points.append(point)
        draws.append(drawn)
        seeds.append(len(members))
        runs += list(members)
    return Table(keys, list(columns), np.array(points).reshape(len(keys), len(columns)),
                 np.stack(draws, axis=1) if draws else np.empty((n_boot, 0, len(columns))),
                 seeds, runs, quiet)


def regression(design: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares coefficients [..., p] of y [..., n] on a fixed design [n, p]."""
    return y @ np.linalg.pinv(design).T


def spearman_pair(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rho of a and b along the last axis, batched; NaN where either is constant."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return structure.batched_spearman(np.stack([a, b], axis=-1))[..., 0, 1]


class Streams:
    """Independent random streams for one finding, the same on every call."""

    def __init__(self, seed: int, number: int):
        self._seq = np.random.SeedSequence([seed, number])

    def next(self) -> np.random.Generator:
        return np.random.default_rng(self._seq.spawn(1)[0])
