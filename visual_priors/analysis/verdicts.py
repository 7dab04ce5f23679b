"""The one rule that turns a finding's statistics into a verdict (analysis/findings.py).

A finding is one or more *parts*: a statistic with its bootstrap draws, a stated null and the
side of it the paper is on (> null, < null, or inside a range). Intervals are two-sided
percentile intervals at ``LEVEL``.

- *reproduced*: every part's ``LEVEL`` interval lies entirely on the paper's side of its null
  (to claim all parts at once each may be tested at the full level: an intersection-union test);
- *contradicted*: some part's interval lies entirely on the other side, at the simultaneous
  level 1 - (1 - ``LEVEL``) / k over the finding's k parts (Bonferroni), so that k parts of pure
  noise are called contradicted no more often than one;
- *inconclusive*: otherwise: an interval contains its null;
- *not run*: the results lack the runs a part needs (decided by the finding, not here).

Fixed before any study ran; tests/test_findings.py checks it on synthetic results.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

LEVEL = 0.95
VERDICTS = ("reproduced", "contradicted", "inconclusive", "not run")


def percentile_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    """Two-sided percentile interval of the defined (non-NaN) draws; +-inf draws count (a
    quadratic without a maximum lies infinitely far outside the hull)."""
    d = np.asarray(draws, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(d, [tail, 1.0 - tail], method="inverted_cdf")
    return float(lo), float(hi)


def side_verdict(lo: float, hi: float, null: Any, side: str) -> str:
    """reproduced / contradicted / inconclusive for one interval against its null.

    ``side`` is the paper's: ">" (above ``null``), "<" (below it) or "inside" (``null`` is a
    (low, high) range). An undefined interval decides nothing.
    """
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    if side == ">":
        return "reproduced" if lo > null else "contradicted" if hi < null else "inconclusive"
    if side == "<":
        return "reproduced" if hi < null else "contradicted" if lo > null else "inconclusive"
    a, b = null
    if a < lo and hi < b:
        return "reproduced"
    return "contradicted" if hi < a or lo > b else "inconclusive"


@dataclasses.dataclass
class Part:
    """One statistic a verdict weighs: its estimate, bootstrap draws, null and the paper's side."""

    name: str
    estimate: float
    draws: np.ndarray
    null: Any
    side: str
    unit: str = ""
    paper: float | None = None

    def interval(self, level: float = LEVEL) -> tuple[float, float]:
        return percentile_interval(self.draws, level)

    def verdict(self, level: float = LEVEL) -> str:
        return side_verdict(*self.interval(level), self.null, self.side)

    def claim(self) -> str:
        """The paper's side in words: '> 0', '< 0.1', 'inside (0.05, 2)'."""
        if self.side == "inside":
            return f"inside ({fmt_g(self.null[0])}, {fmt_g(self.null[1])})"
        return f"{self.side} {fmt_g(self.null)}"

    def margin(self, level: float = LEVEL) -> float:
        """How far the interval clears the null on the paper's side, in interval widths."""
        lo, hi = self.interval(level)
        width = max(hi - lo, 1e-12)
        if self.side == ">":
            return (lo - self.null) / width
        if self.side == "<":
            return (self.null - hi) / width
        return min(lo - self.null[0], self.null[1] - hi) / width

    def text(self, level: float = LEVEL) -> str:
        lo, hi = self.interval(level)
        return f"{self.name}, {fmt_g(self.estimate)} [{fmt_g(lo)}, {fmt_g(hi)}]{' ' + self.unit if self.unit else ''}"

    def to_dict(self, level: float = LEVEL) -> dict[str, Any]:
        return {"name": self.name, "estimate": float(self.estimate), "interval": list(self.interval(level)),
                "null": list(self.null) if self.side == "inside" else self.null,
                "paper_side": self.claim(), "unit": self.unit, "paper": self.paper,
                "verdict": self.verdict(level),
                "n_draws": int(np.sum(~np.isnan(np.asarray(self.draws, dtype=np.float64))))}


def fmt_g(v: Any) -> str:
    """A number in three significant digits; a dash for none."""
    return f"{float(v):.3g}" if v is not None and not math.isnan(float(v)) else "—"


def decide(parts: Sequence[Part], level: float = LEVEL) -> tuple[str, str]:
    """(verdict, reason) of a finding from its parts, by the module's rule."""
    k = len(parts)
    joint = 1.0 - (1.0 - level) / k
    against = [p for p in parts if p.verdict(joint) == "contradicted"]
    if against:
        p = against[0]
        which = f"{100 * joint:.3g}% interval" + (f" (simultaneous over {k} parts)" if k > 1 else "")
        return "contradicted", (f"Contradicted: the {which} of {p.text(joint)} lies entirely "
                                f"outside the paper's side ({p.claim()}).")
    pending = [p for p in parts if p.verdict(level) != "reproduced"]
    if not pending:
        weakest = min(parts, key=lambda p: p.margin(level))
        every = f"all {k} parts have" if k > 1 else "the part has"
        return "reproduced", (f"Reproduced: {every} the {level:.0%} interval on the paper's side; "
                              f"the closest to its null is {weakest.text(level)} ({weakest.claim()}).")
    p = pending[0]
    more = f" (and {len(pending) - 1} more part{'s' * (len(pending) > 2)})" if len(pending) > 1 else ""
    return "inconclusive", (f"Inconclusive: the {level:.0%} interval of {p.text(level)} is not "
                            f"entirely on the paper's side ({p.claim()}){more}.")
