"""Intervals for the scores the evaluation reports: proportions, means and paired differences.

Category scores are plain means over benchmark families (vqa.summarize), so a category's
standard error combines its families' own: Var(mean of F family means) = sum_f var_f / F^2.
Image and blind scores are paired by question (the same question with and without the image),
so their difference is judged by the spread of per-question differences, not of two
independent accuracies.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats

Z95 = 1.959963984540054


def wilson_interval(successes: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (well behaved at 0 and 1, unlike p +- z se);
    `successes` may be a float that counts whole hits (accuracy x n)."""
    if n <= 0:
        return float("nan"), float("nan")
    ci = scipy_stats.binomtest(int(round(successes)), n).proportion_ci(0.95, method="wilson")
    return float(ci.low), float(ci.high)


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (NaN SE for fewer than two values)."""
    x = np.asarray(values, np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else float("nan")
    return float(x.mean()), se


def interval(mean: float, se: float, z: float = Z95) -> list[float]:
    return [mean - z * se, mean + z * se]


def grouped_mean(values: Sequence[float], groups: Sequence[str],
                 group_category: Mapping[str, str] | None = None) -> dict:
    """Per-question values -> mean and SE per group (family), per category (plain mean of its
    families) and overall (plain mean of all families), each with a 95% interval.

    For a 0/1 value this is accuracy with binomial SEs (up to the n-1 in the variance); for a
    per-question difference it is the paired comparison of two conditions.
    """
    by_group: dict[str, list[float]] = defaultdict(list)
    for v, g in zip(values, groups):
        if v is not None and np.isfinite(v):
            by_group[g].append(float(v))
    fam = {}
    for g, vs in sorted(by_group.items()):
        m, se = mean_se(vs)
        fam[g] = {"mean": m, "se": se, "n": len(vs)}

    def combine(names: list[str]) -> dict:
        names = [n for n in names if n in fam]
        if not names:
            return {"mean": float("nan"), "se": float("nan"), "n": 0}
        m = float(np.mean([fam[n]["mean"] for n in names]))
        var = sum((fam[n]["se"] if np.isfinite(fam[n]["se"]) else 0.0) ** 2 for n in names)
        se = math.sqrt(var) / len(names)
        return {"mean": m, "se": se, "n": sum(fam[n]["n"] for n in names)}

    cats: dict[str, dict] = {}
    if group_category:
        members: dict[str, list[str]] = defaultdict(list)
        for g, c in group_category.items():
            members[c].append(g)
        cats = {c: combine(sorted(gs)) for c, gs in sorted(members.items())}
    out = {"groups": fam, "categories": cats, "overall": combine(sorted(fam))}
    for block in [out["overall"], *fam.values(), *cats.values()]:
        block["ci"] = interval(block["mean"], block["se"]) if np.isfinite(block["se"]) else [float("nan")] * 2
        block["z"] = block["mean"] / block["se"] if block["se"] and np.isfinite(block["se"]) else float("nan")
    return out
