"""Correlation structure of the VQA categories across runs (the paper's Fig. 5).

Definitions used here:

- **Scores**: one value per run and category, the run's category accuracy (the plain mean over
  the category's benchmarks, as `collect` writes it under ``categories``). Records may be
  nested (``{"categories": {"knowledge": ...}}``) or flat rows of the exported table
  (``{"categories.knowledge": ...}``). Runs missing any of the chosen categories are left out.
- **rho_ij**: Spearman's rank correlation of category i's and category j's scores over the runs
  (``scipy.stats.spearmanr``; tied scores get their average rank).
- **Interval**: percentile bootstrap over runs: resample the runs with replacement, recompute
  the matrix, take the (1 - level)/2 and (1 + level)/2 quantiles; level ``LEVEL`` = 0.95
  two-sided unless asked otherwise. A resample in which a category is constant has no rho for
  that category's pairs; such draws are left out of those entries and the count kept is
  reported.
- **p-value**: two-sided permutation test of rho_ij = 0 that re-pairs the runs' scores
  (``scipy.stats.permutation_test``, ``permutation_type="pairings"``): exact when n! is at
  most the number of permutations asked for, otherwise Monte Carlo.
- **Constant categories**: a category with one value in every run has no rank correlation;
  its entries are NaN and a note says so.
- **Clustering**: average linkage (UPGMA, ``scipy.cluster.hierarchy.linkage``) on the distance
  1 - rho; the dendrogram's leaf order and the cut into two clusters. Undefined (NaN) rho is
  treated as 0 (distance 1) for clustering, with a note.

The paper reports, over 105 3B MLLMs, a perception cluster (General, OCR & Chart) and a
reasoning cluster (Knowledge, Vision-Centric); ``compare_with_paper`` sets a result beside that
matrix (``fig5_spearman.csv``).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

from visual_priors.analysis.curves import categories_of
from visual_priors.analysis.records import as_records, float_value, run_name

LEVEL = 0.95
N_BOOT = 2000
N_PERM = 9999
LINKAGE = "average"
# The paper's two clusters (Fig. 5): perception and reasoning.
PAPER_SPLIT = (("general", "ocr_chart"), ("knowledge", "vision_centric"))


# ---------------------------------------------------------------------------------------------
# Category scores of the runs


@dataclasses.dataclass
class CategoryScores:
    """Category scores of the runs kept: ``values[run, category]``."""

    values: np.ndarray
    categories: list[str]
    runs: list[str]
    notes: list[str]


def category_scores(results: Sequence[Mapping[str, Any]],
                    categories: Sequence[str] | None = None) -> CategoryScores:
    """The runs x categories score matrix; runs missing a category are left out (noted)."""
    cats = list(categories) if categories is not None else categories_of(results)
    rows, names, dropped = [], [], 0
    for i, r in enumerate(results):
        row = [float_value(r, f"categories.{c}") for c in cats]
        if not all(math.isfinite(v) for v in row):
            dropped += 1
            continue
        rows.append(row)
        names.append(run_name(r, i))
    notes = [f"{dropped} run(s) missing a category score left out"] if dropped else []
    values = np.array(rows, dtype=np.float64).reshape(len(rows), len(cats))
    return CategoryScores(values, cats, names, notes)


# ---------------------------------------------------------------------------------------------
# Spearman matrix, bootstrap interval, permutation p-values


def batched_spearman(values: Any) -> np.ndarray:
    """Spearman matrices of a batch of samples: [..., n, k] -> [..., k, k] (the Pearson
    correlation of average ranks, as spearmanr); NaN where a column is constant."""
    ranks = stats.rankdata(np.asarray(values, dtype=np.float64), axis=-2)
    c = ranks - ranks.mean(axis=-2, keepdims=True)
    norm = np.sqrt(np.sum(c * c, axis=-2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = c / norm[..., None, :]
        rho = np.einsum("...ni,...nj->...ij", z, z)
    bad = ~(norm > 0)
    rho = np.where(bad[..., :, None] | bad[..., None, :], np.nan, rho)
    return np.clip(rho, -1.0, 1.0)


def spearman(values: Any) -> np.ndarray:
    """The k x k Spearman matrix of the columns of ``values`` [n, k] (as scipy.stats.spearmanr);
    NaN for pairs with a constant column."""
    return batched_spearman(values)


def bootstrap_spearman(values: Any, *, n_boot: int = N_BOOT, level: float = LEVEL,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, n_kept) of the percentile interval of each rho from ``n_boot`` resamples of the
    runs; n_kept counts the draws in which that entry was defined."""
    x = np.asarray(values, dtype=np.float64)
    n, k = x.shape
    rng = np.random.default_rng(seed)
    draws = batched_spearman(x[rng.integers(0, n, size=(n_boot, n))])  # [B, k, k]
    kept = np.sum(np.isfinite(draws), axis=0)
    tail = (1.0 - level) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN entries stay NaN
        lo, hi = np.nanquantile(draws, [tail, 1.0 - tail], axis=0)
    return lo, hi, kept


def permutation_pvalues(values: Any, *, n_perm: int = N_PERM,
                        seed: int = 0) -> tuple[np.ndarray, str]:
    """Two-sided p-values of rho_ij = 0 by re-pairing the runs, and how they were computed."""
    x = np.asarray(values, dtype=np.float64)
    n, k = x.shape
    ranks = stats.rankdata(x, axis=0)
    p = np.full((k, k), np.nan)
    exact = math.factorial(n) <= n_perm if n < 171 else False
    for i in range(k):
        for j in range(i + 1, k):
            if np.ptp(ranks[:, i]) == 0 or np.ptp(ranks[:, j]) == 0:
                continue
            ry = ranks[:, j] - ranks[:, j].mean()

            def statistic(rx, axis=-1, ry=ry):
                c = rx - rx.mean(axis=axis, keepdims=True)
                return np.sum(c * ry, axis=axis) / np.sqrt(np.sum(c * c, axis=axis) * np.sum(ry * ry))

            res = stats.permutation_test((ranks[:, i],), statistic, permutation_type="pairings",
                                         n_resamples=n_perm, alternative="two-sided",
                                         vectorized=True, rng=np.random.default_rng(seed + i * k + j))
            p[i, j] = p[j, i] = float(res.pvalue)
    method = (f"exact permutation test ({n}! pairings)" if exact
              else f"Monte Carlo permutation test ({n_perm} re-pairings)")
    return p, method


# ---------------------------------------------------------------------------------------------
# Clustering


@dataclasses.dataclass
class Clustering:
    """Average-linkage clustering of categories on 1 - rho."""

    categories: list[str]
    linkage: np.ndarray
    order: list[str]
    split: tuple[tuple[str, ...], ...]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"categories": self.categories, "method": f"{LINKAGE} linkage on 1 - rho",
                "linkage": self.linkage.tolist(), "order": self.order,
                "split": [list(c) for c in self.split], "notes": self.notes}


def cluster_categories(rho: Any, categories: Sequence[str]) -> Clustering:
    """Hierarchical clustering (average linkage on 1 - rho), leaf order and two-cluster split.

    Each cluster of the split lists its categories in input order; clusters are ordered by
    their first category's input position.
    """
    r = np.array(rho, dtype=np.float64)
    cats = list(categories)
    if r.shape != (len(cats), len(cats)):
        raise ValueError(f"rho is {r.shape}, expected {len(cats)} x {len(cats)} for {cats}")
    if len(cats) < 2:
        raise ValueError("clustering needs at least two categories")
    notes = []
    off = ~np.eye(len(cats), dtype=bool)
    if np.any(~np.isfinite(r[off])):
        notes.append("undefined rho (constant category) treated as 0 for clustering")
        r = np.where(np.isfinite(r), r, 0.0)
    d = 1.0 - (r + r.T) / 2.0
    np.fill_diagonal(d, 0.0)
    z = hierarchy.linkage(squareform(np.clip(d, 0.0, 2.0), checks=False), method=LINKAGE)
    order = [cats[i] for i in hierarchy.leaves_list(z)]
    labels = hierarchy.fcluster(z, t=2, criterion="maxclust")
    groups: dict[int, list[str]] = {}
    for c, lab in zip(cats, labels):
        groups.setdefault(int(lab), []).append(c)
    split = tuple(sorted((tuple(g) for g in groups.values()), key=lambda g: cats.index(g[0])))
    return Clustering(cats, z, order, split, notes)


def same_split(a: Sequence[Sequence[str]], b: Sequence[Sequence[str]]) -> bool:
    """Whether two partitions are equal, whatever the order of clusters or members."""
    return {frozenset(g) for g in a} == {frozenset(g) for g in b}


# ---------------------------------------------------------------------------------------------
# The whole analysis


@dataclasses.dataclass
class SpearmanResult:
    categories: list[str]
    n_runs: int
    rho: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n_kept: np.ndarray
    p_value: np.ndarray
    p_method: str
    level: float
    n_boot: int
    clustering: Clustering | None
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"categories": self.categories, "n_runs": self.n_runs, "rho": self.rho.tolist(),
                "interval": {"method": "percentile bootstrap over runs", "level": self.level,
                             "n_boot": self.n_boot, "lo": self.lo.tolist(),
                             "hi": self.hi.tolist(), "n_kept": self.n_kept.tolist()},
                "p_value": self.p_value.tolist(), "p_method": self.p_method,
                "clustering": self.clustering.to_dict() if self.clustering else None,
                "notes": self.notes}


def spearman_structure(scores: Any, categories: Sequence[str] | None = None, *,
                       n_boot: int = N_BOOT, level: float = LEVEL, n_perm: int = N_PERM,
                       seed: int = 0) -> SpearmanResult:
    """Spearman matrix, bootstrap interval, permutation p-values and clustering.

    ``scores`` is a runs x categories array (with ``categories`` naming its columns), a
    ``CategoryScores``, or a sequence of run records (nested or flat).
    """
    notes: list[str] = []
    if isinstance(scores, CategoryScores):
        cs = scores
    elif isinstance(scores, np.ndarray) or (len(scores) and not isinstance(scores[0], Mapping)):
        x = np.asarray(scores, dtype=np.float64)
        cats = list(categories) if categories is not None else [f"c{j}" for j in range(x.shape[1])]
        cs = CategoryScores(x, cats, [str(i) for i in range(len(x))], [])
    else:
        cs = category_scores(scores, categories)
    notes += cs.notes
    x, cats = cs.values, cs.categories
    n, k = x.shape
    if n < 3:
        raise ValueError(f"a Spearman structure needs at least 3 runs with every category, got {n}")
    rho = spearman(x)
    constant = [c for j, c in enumerate(cats) if np.ptp(x[:, j]) == 0]
    if constant:
        notes.append(f"constant across runs, no rank correlation: {', '.join(constant)}")
    lo, hi, kept = bootstrap_spearman(x, n_boot=n_boot, level=level, seed=seed)
    if np.any(kept[np.isfinite(rho)] < n_boot):
        notes.append("some resamples had a constant category; those draws left out of its entries")
    p, method = permutation_pvalues(x, n_perm=n_perm, seed=seed) if n_perm > 0 else (
        np.full((k, k), np.nan), "not computed")
    clustering = cluster_categories(rho, cats) if k >= 2 else None
    if clustering:
        notes += clustering.notes
    return SpearmanResult(cats, n, rho, lo, hi, kept, p, method, level, n_boot, clustering, notes)


# ---------------------------------------------------------------------------------------------
# Beside the paper


def read_matrix(path: str | Path) -> tuple[list[str], np.ndarray]:
    """A labelled square matrix as fig5_spearman.csv writes it: a header ``category,<c1>,...``
    and one row per category."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    cols = [c.strip() for c in rows[0][1:]]
    names = [r[0].strip() for r in rows[1:] if r]
    if names != cols:
        raise ValueError(f"{path}: row names {names} differ from column names {cols}")
    m = np.array([[float(v) for v in r[1:]] for r in rows[1:] if r], dtype=np.float64)
    return names, m


def compare_with_paper(result: SpearmanResult,
                       paper: str | Path | tuple[Sequence[str], Any]) -> dict[str, Any]:
    """Our matrix beside the paper's, on the categories both have.

    Returns both matrices, ours - paper, whether each paper value lies in our interval (per
    pair i < j and the count), both clusterings, and whether the paper's split (General + OCR
    vs Knowledge + Vision-Centric) is recovered.
    """
    cats_p, rho_p = read_matrix(paper) if isinstance(paper, (str, Path)) else (
        list(paper[0]), np.asarray(paper[1], dtype=np.float64))
    shared = [c for c in result.categories if c in cats_p]
    notes = []
    missing = sorted(set(cats_p) ^ set(result.categories))
    if missing:
        notes.append(f"categories on one side only, left out: {', '.join(missing)}")
    io = [result.categories.index(c) for c in shared]
    ip = [cats_p.index(c) for c in shared]
    ours = result.rho[np.ix_(io, io)]
    theirs = rho_p[np.ix_(ip, ip)]
    lo, hi = result.lo[np.ix_(io, io)], result.hi[np.ix_(io, io)]
    inside = (theirs >= lo) & (theirs <= hi)
    pairs = [(i, j) for i in range(len(shared)) for j in range(i + 1, len(shared))]
    ours_cl = cluster_categories(ours, shared) if len(shared) >= 2 else None
    paper_cl = cluster_categories(theirs, shared) if len(shared) >= 2 else None
    paper_split_here = all(c in shared for g in PAPER_SPLIT for c in g)
    return {
        "categories": shared, "ours": ours, "paper": theirs, "difference": ours - theirs,
        "level": result.level, "lo": lo, "hi": hi, "paper_in_interval": inside,
        "pairs": [(shared[i], shared[j]) for i, j in pairs],
        "n_in_interval": int(sum(bool(inside[i, j]) for i, j in pairs)), "n_pairs": len(pairs),
        "max_abs_difference": float(np.nanmax(np.abs([ours[i, j] - theirs[i, j] for i, j in pairs])))
        if pairs else float("nan"),
        "our_split": ours_cl.split if ours_cl else None,
        "paper_matrix_split": paper_cl.split if paper_cl else None,
        "split_recovered": bool(paper_split_here and ours_cl and same_split(ours_cl.split, PAPER_SPLIT)),
        "notes": notes,
    }


def _format_matrix(cats: Sequence[str], m: np.ndarray) -> str:
    w = max(len(c) for c in cats)
    lines = [" " * w + "  " + "  ".join(f"{c[:8]:>8}" for c in cats)]
    for c, row in zip(cats, m):
        lines.append(f"{c:>{w}}  " + "  ".join(f"{v:8.3f}" for v in row))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the paper's Fig. 5 clustering and, given run records, our structure beside it."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paper_csv", help="fig5_spearman.csv")
    ap.add_argument("--results", help="records: collect's JSON or the exported .parquet/.csv")
    ap.add_argument("--n-boot", type=int, default=N_BOOT)
    args = ap.parse_args(argv)
    cats, rho = read_matrix(args.paper_csv)
    cl = cluster_categories(rho, cats)
    print("paper's Fig. 5 matrix:\n" + _format_matrix(cats, rho))
    print(f"average linkage on 1 - rho: order {cl.order}, split {cl.split}, "
          f"paper's split recovered: {same_split(cl.split, PAPER_SPLIT)}")
    if args.results:
        res = spearman_structure(as_records(args.results), n_boot=args.n_boot)
        cmp = compare_with_paper(res, (cats, rho))
        print(f"\nours over {res.n_runs} runs:\n" + _format_matrix(res.categories, res.rho))
        print(f"{res.level:.0%} bootstrap interval holds the paper's value for "
              f"{cmp['n_in_interval']}/{cmp['n_pairs']} pairs; our split {cmp['our_split']}, "
              f"paper's split recovered: {cmp['split_recovered']}")
        for note in res.notes + cmp["notes"]:
            print("note:", note)


if __name__ == "__main__":
    main()
