"""MLE-Bench scoring: existence accuracy per object-size bin and the sample-weighted overall.

The paper's "overall" weights each split by its number of questions (table 5 reproduces only
that way); the macro average over bins is reported beside it.
"""

from __future__ import annotations

from collections.abc import Mapping


def summarize(accuracy: Mapping[str, float], counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts[b] for b in accuracy)
    out = dict(accuracy)
    out["overall"] = sum(accuracy[b] * counts[b] for b in accuracy) / total
    out["macro"] = sum(accuracy.values()) / len(accuracy)
    return out
