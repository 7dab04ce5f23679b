"""Text accuracy, perplexity and VQA accuracy together: the Pareto front and ranking rules.

Text accuracy (higher is better), perplexity (lower) and VQA accuracy (higher) of each run or
paper-table row: the Pareto front of non-dominated runs, and a ranking rule beside the paper's
``overall_rank`` (whose rule the paper does not state). ``mean_rank``: rank each metric (1 =
best, ties share the average rank), average the three ranks, order by that mean, ties broken by
the VQA rank then the text-accuracy rank. ``vqa_first``: order by VQA accuracy, then text
accuracy, then perplexity. Both are plain rules fixed in advance, not fitted to the paper's
ranks. Agreement between two rankings: Spearman and Kendall correlations, exact matches and the
mean absolute rank difference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from visual_priors.analysis.records import as_float, float_value, run_name

RANK_RULES = ("mean_rank", "vqa_first")
OBJECTIVES = ("t_acc", "ppl", "v_acc")
SENSES = ("max", "min", "max")
# Where each objective lives: table-2 rows first, then run records (nested or flat).
OBJECTIVE_KEYS = {
    "t_acc": ("t_acc", "language.avg_acc"),
    "ppl": ("ppl", "language.perplexity.mean", "perplexity"),
    "v_acc": ("v_acc", "overall"),
}


def objectives_of(record: Mapping[str, Any]) -> tuple[float, float, float]:
    """(text accuracy, perplexity, VQA accuracy) of a table-2 row or a run record.

    Runs: ``language.avg_acc``, ``language.perplexity.mean`` (mean of WikiText and LAMBADA;
    the pre-training ``perplexity`` when the run has no language step) and ``overall``.
    """
    out = []
    for name in OBJECTIVES:
        v = float("nan")
        for key in OBJECTIVE_KEYS[name]:
            v = float_value(record, key)
            if math.isfinite(v):
                break
        out.append(v)
    return out[0], out[1], out[2]


def pareto_front(values: Any, senses: Sequence[str] = SENSES) -> np.ndarray:
    """Mask of non-dominated rows: no other row is at least as good on every objective and
    better on one. Rows with a missing objective are never on the front."""
    v = np.asarray(values, dtype=np.float64)
    sign = np.array([1.0 if s == "max" else -1.0 for s in senses])
    g = v * sign  # larger is better everywhere
    ok = np.all(np.isfinite(g), axis=1)
    front = ok.copy()
    for i in np.flatnonzero(ok):
        others = g[ok]
        dominated = np.any(np.all(others >= g[i], axis=1) & np.any(others > g[i], axis=1))
        front[i] = not dominated
    return front


def rank_by_rule(values: Any, rule: str = "mean_rank", senses: Sequence[str] = SENSES) -> np.ndarray:
    """Overall ranks (1 = best) of rows of (t_acc, ppl, v_acc) under a stated rule (module docstring).

    Rows identical on every key share the better rank.
    """
    v = np.asarray(values, dtype=np.float64)
    if np.any(~np.isfinite(v)):
        raise ValueError("ranking needs all three objectives for every row")
    sign = np.array([1.0 if s == "max" else -1.0 for s in senses])
    per_metric = np.column_stack([stats.rankdata(-sign[j] * v[:, j]) for j in range(v.shape[1])])
    t, p, q = per_metric.T  # t_acc, ppl, v_acc ranks
    if rule == "mean_rank":
        keys = (per_metric.mean(axis=1), q, t)
    elif rule == "vqa_first":
        keys = (q, t, p)
    else:
        raise ValueError(f"unknown rule {rule!r}; valid: {', '.join(RANK_RULES)}")
    # np.unique sorts the key rows lexicographically: its inverse is each row's place.
    _, place = np.unique(np.column_stack(keys), axis=0, return_inverse=True)
    return stats.rankdata(place.reshape(-1), method="min").astype(int)


def ranking_agreement(ours: Any, theirs: Any) -> dict[str, Any]:
    """How well one ranking reproduces another: Spearman and Kendall correlations with their
    p-values, the number of exact matches and the mean absolute rank difference."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    sp, kt = stats.spearmanr(a, b), stats.kendalltau(a, b)
    return {"n": int(len(a)), "spearman": float(sp.statistic), "spearman_p": float(sp.pvalue),
            "kendall": float(kt.statistic), "kendall_p": float(kt.pvalue),
            "exact": int(np.sum(a == b)), "mean_abs_difference": float(np.mean(np.abs(a - b)))}


def tradeoff(records: Sequence[Mapping[str, Any]], rule: str = "mean_rank") -> dict[str, Any]:
    """Objectives, Pareto front and rule ranks of the records with all three objectives, and,
    when the records carry ``overall_rank`` (table 2), the rule's agreement with it."""
    rows = [(run_name(r, i), objectives_of(r), r.get("overall_rank"))
            for i, r in enumerate(records)]
    kept = [row for row in rows if all(math.isfinite(v) for v in row[1])]
    names = [row[0] for row in kept]
    vals = np.array([row[1] for row in kept], dtype=np.float64).reshape(-1, 3)
    out: dict[str, Any] = {"runs": names, "objectives": dict(zip(OBJECTIVES, vals.T.tolist())),
                           "rule": rule, "left_out": len(rows) - len(kept)}
    if not names:
        return {**out, "pareto_front": [], "ranks": []}
    out["pareto_front"] = [n for n, f in zip(names, pareto_front(vals)) if f]
    out["ranks"] = rank_by_rule(vals, rule).tolist()
    theirs = [row[2] for row in kept]
    if all(t is not None and math.isfinite(as_float(t)) for t in theirs):
        out["paper_ranks"] = [int(as_float(t)) for t in theirs]
        out["agreement"] = ranking_agreement(out["ranks"], out["paper_ranks"])
    return out
