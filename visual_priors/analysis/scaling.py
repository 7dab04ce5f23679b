"""Scaling laws of a study: the Chinchilla loss surface, accuracy curves, extrapolation, decisions.

Loss surface (Hoffmann et al. 2022, fitted as in Besiroglu et al. 2024, "Chinchilla Scaling:
A replication attempt"):

    L(N, D) = E + A / N^alpha + B / D^beta

with N parameters and D training tokens, fitted in the parameterisation
log L = LSE(a - alpha log N, b - beta log D, e), A = exp(a), B = exp(b), E = exp(e). The
objective is the sum over points of Huber(log L_pred - log L_obs) with delta = 1e-3, minimised
in float64 by L-BFGS-B (scipy) with the analytic gradient from every point of a grid of starts;
the lowest objective wins. Epoch's grid is e in {-1, -.5, ..., 1}, a and b in {0, 5, ..., 25},
alpha and beta in {0, .5, ..., 2} (4,500 starts, ``grid="epoch"``); the default ``"coarse"``
grid keeps every other value (3^5 = 243 starts) and reaches the same optimum on Hoffmann's
points. The objective is divided by delta inside the optimiser, which leaves the minimiser
unchanged but keeps L-BFGS-B's tolerances (relative to max(|f|, 1)) meaningful.
Uncertainty is a bootstrap over points: resample with replacement, refit from the full-data
optimum and a few random grid starts, report bootstrap standard errors (as Epoch's table does)
and percentile intervals, 80% by default (the 10th-90th percentiles Hoffmann et al. give for
their exponents). Parameters are kept unrounded. The compute-optimal allocation under
C = 6 N D is N_opt = G (C/6)^a and D_opt = G^-1 (C/6)^b with G = (alpha A / (beta B))^(1/(alpha
+ beta)), a = beta / (alpha + beta) and b = alpha / (alpha + beta).

Accuracy curves: the bounded sigmoid in log10 x of ``curves`` (one implementation), where x is
pre-training FLOPs, parameters or tokens (``fit_category_curves``).

Two-step form: fit L(N, D) on the runs' ``final_loss``, then per category the bounded map

    acc(L) = chance + (1 - chance) * sigmoid(a + b * L)

(equivalently sigmoid(k (L0 - L)) with k = -b, L0 = -a/b) by least squares on the same runs'
observed final loss; a new (N, D) is predicted loss first, accuracy second. Its interval
resamples runs and refits both steps together.

Extrapolation targets the next larger model size of the study (``next_scale_target``) or any
given (N, D); intervals are bootstrap percentile intervals (80% by default).

Decision accuracy (Magnusson et al. 2025, "DataDecide"): over every pair of mixtures scored at
a small scale and at the target scale, the fraction whose ordering at the small scale matches
the target's. A mixture's score at a scale is the mean metric over its runs at that scale's
largest FLOPs (seeds averaged). Pairs whose target scores are within ``tie_tol`` (default 0:
exactly equal) are skipped; a pair tied at the small scale (within ``tie_tol``) counts 1/2,
the expected agreement of a random tie-break. Optionally each small-scale score is replaced
by the accuracy curve's prediction at the mixture's target FLOPs, fitted on the mixture's runs
at that scale and all smaller ones.

Input everywhere is a list of run results in the analysis schema (``suite.executor.collect``)
or the flat table ``visual-priors suite export`` writes; ``records.as_records`` reads either.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize
from threadpoolctl import threadpool_limits

from visual_priors.analysis import curves
from visual_priors.analysis.curves import (CurveFit, OVERALL, accuracy_of, fit_curve, fit_curves,
                                           fit_logistic, logistic, mean_chance, mixtures_of,
                                           natural_key, scales_of)
from visual_priors.analysis.records import as_records, float_value

LOSS_FORM = "L(N, D) = E + A / N^alpha + B / D^beta"
LOSS_MAP_FORM = "acc(L) = chance + (1 - chance) * sigmoid(a + b * L)"
HUBER_DELTA = 1e-3
LEVEL = 0.80
CHINCHILLA_N_BOOT = 1000
N_BOOT = curves.N_BOOT
BOOT_STARTS = 2
PARAM_NAMES = ("A", "B", "E", "alpha", "beta")
# More points than the surface has parameters.
MIN_LOSS_POINTS = 6
# Epoch's replication (Besiroglu et al. 2024, table 1): estimates and bootstrap standard errors
# on Hoffmann et al.'s figure-4 points with the 5 highest-loss points dropped.
EPOCH_2024 = {"A": 482.01, "B": 2085.43, "E": 1.817, "alpha": 0.3478, "beta": 0.3658}
EPOCH_2024_SE = {"A": 124.58, "B": 1293.23, "E": 0.03, "alpha": 0.02, "beta": 0.02}

# Start grids over (a, b, e, alpha, beta) = (log A, log B, log E, alpha, beta).
GRIDS = {
    "epoch": (np.arange(0.0, 25.1, 5.0), np.arange(0.0, 25.1, 5.0), np.arange(-1.0, 1.01, 0.5),
              np.arange(0.0, 2.01, 0.5), np.arange(0.0, 2.01, 0.5)),
    "coarse": (np.array([0.0, 10.0, 20.0]), np.array([0.0, 10.0, 20.0]), np.array([-1.0, 0.0, 1.0]),
               np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.0])),
}
# Tight enough that every start that reaches the optimum agrees to about seven digits.
_LBFGS_OPTIONS = {"ftol": 1e-13, "gtol": 1e-9, "maxiter": 10_000}


# ---------------------------------------------------------------------------------------------
# The Chinchilla loss surface


def huber(r: Any, delta: float = HUBER_DELTA) -> np.ndarray:
    """Huber loss: r^2 / 2 for |r| <= delta, delta (|r| - delta / 2) beyond."""
    r = np.asarray(r, dtype=np.float64)
    psi = np.clip(r, -delta, delta)
    return psi * (r - 0.5 * psi)


def log_loss_prediction(theta: Any, log_n: Any, log_d: Any) -> np.ndarray:
    """log L(N, D) = LSE(a - alpha log N, b - beta log D, e) for theta = (a, b, e, alpha, beta)."""
    a, b, e, alpha, beta = np.asarray(theta, dtype=np.float64)
    u1 = a - alpha * np.asarray(log_n, dtype=np.float64)
    u2 = b - beta * np.asarray(log_d, dtype=np.float64)
    m = np.maximum(np.maximum(u1, u2), e)
    return m + np.log(np.exp(u1 - m) + np.exp(u2 - m) + np.exp(e - m))


def huber_objective(theta: Any, log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray,
                    delta: float = HUBER_DELTA) -> tuple[float, np.ndarray]:
    """(sum of Huber(log L_pred - log L_obs), its gradient in theta = (a, b, e, alpha, beta))."""
    a, b, e, alpha, beta = np.asarray(theta, dtype=np.float64)
    u1 = a - alpha * log_n
    u2 = b - beta * log_d
    m = np.maximum(np.maximum(u1, u2), e)
    w1, w2, w3 = np.exp(u1 - m), np.exp(u2 - m), np.exp(e - m)
    total = w1 + w2 + w3
    r = m + np.log(total) - log_loss
    psi = np.clip(r, -delta, delta)  # Huber'(r)
    value = float(np.dot(psi, r - 0.5 * psi))
    # d log L / d(u1, u2, e) are the softmax weights of the three terms.
    q = psi / total
    g1, g2 = q * w1, q * w2
    grad = np.array([g1.sum(), g2.sum(), float(np.dot(q, w3)), -float(np.dot(g1, log_n)),
                     -float(np.dot(g2, log_d))])
    return value, grad


def start_grid(grid: str | np.ndarray = "coarse") -> np.ndarray:
    """Starts (S, 5) over (a, b, e, alpha, beta): a named grid of ``GRIDS`` or an array."""
    if isinstance(grid, str):
        if grid not in GRIDS:
            raise ValueError(f"unknown start grid {grid!r}; valid: {', '.join(GRIDS)}")
        return np.array(list(itertools.product(*GRIDS[grid])), dtype=np.float64)
    starts = np.asarray(grid, dtype=np.float64)
    if starts.ndim != 2 or starts.shape[1] != 5:
        raise ValueError(f"start grid must have shape (S, 5), got {starts.shape}")
    return starts


def _minimise(starts: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray,
              delta: float) -> tuple[np.ndarray, float, int]:
    """(theta, objective, number of starts whose L-BFGS-B run reported convergence)."""
    scale = 1.0 / delta

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = huber_objective(theta, log_n, log_d, log_loss, delta)
        return value * scale, grad * scale

    best_x, best_f, converged = None, math.inf, 0
    # L-BFGS-B's BLAS calls on 5-dimensional problems gain nothing from threads, and idle
    # OpenBLAS threads spinning on a busy machine made each start some 30x dearer.
    with np.errstate(over="ignore", invalid="ignore"), threadpool_limits(1, user_api="blas"):
        for start in starts:
            res = optimize.minimize(fun, start, jac=True, method="L-BFGS-B",
                                    options=_LBFGS_OPTIONS)
            converged += bool(res.success)
            # A run stopped by the line search still ends at a valid point: keep the lowest.
            if np.all(np.isfinite(res.x)) and np.isfinite(res.fun) and res.fun < best_f:
                best_x, best_f = np.array(res.x, dtype=np.float64), float(res.fun)
    if best_x is None:
        raise RuntimeError("every L-BFGS-B start failed")
    return best_x, best_f / scale, converged


def _theta_to_params(theta: np.ndarray) -> np.ndarray:
    """(a, b, e, alpha, beta) -> (A, B, E, alpha, beta), row-wise. A bootstrap refit whose
    exponent runs to its bound can push its coefficient's log past 709, beyond a float: that
    coefficient is inf, which the intervals then show, not a warning."""
    t = np.atleast_2d(theta)
    with np.errstate(over="ignore"):
        return np.concatenate([np.exp(t[:, :3]), t[:, 3:]], axis=1)


def _exponents(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    alpha, beta = p[..., 3], p[..., 4]
    return beta / (alpha + beta), alpha / (alpha + beta)


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return float("nan"), float("nan")
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(s, [tail, 100.0 - tail])
    return float(lo), float(hi)


@dataclasses.dataclass
class ChinchillaFit:
    """A fitted L(N, D) with its bootstrap; ``boot`` rows are (A, B, E, alpha, beta)."""

    A: float
    B: float
    E: float
    alpha: float
    beta: float
    objective: float
    n_points: int
    n_dropped: int = 0
    delta: float = HUBER_DELTA
    grid: str = "coarse"
    n_starts: int = 0
    n_converged: int = 0
    level: float = LEVEL
    boot: np.ndarray | None = None
    note: str = ""

    @property
    def theta(self) -> np.ndarray:
        """(a, b, e, alpha, beta), the optimiser's parameterisation. A term the optimiser
        drove towards 0 (exp(e) underflows to 0.0 once e < -745) maps back to the log of the
        smallest positive float, so the fit can seed another from its own optimum."""
        def log(x: float) -> float:
            return math.log(max(x, sys.float_info.min))
        return np.array([log(self.A), log(self.B), log(self.E), self.alpha, self.beta])

    @property
    def params(self) -> dict[str, float]:
        return {n: float(getattr(self, n)) for n in PARAM_NAMES}

    @property
    def n_boot(self) -> int:
        return 0 if self.boot is None else int(len(self.boot))

    @property
    def n_opt_exponent(self) -> float:
        """a in N_opt ~ C^a."""
        return self.beta / (self.alpha + self.beta)

    @property
    def d_opt_exponent(self) -> float:
        """b in D_opt ~ C^b."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def predict(self, n: Any, d: Any) -> Any:
        """L(N, D); arrays broadcast."""
        out = (self.E + self.A * np.asarray(n, dtype=np.float64) ** -self.alpha
               + self.B * np.asarray(d, dtype=np.float64) ** -self.beta)
        return float(out) if np.ndim(out) == 0 else out

    def compute_optimal(self, flops: Any) -> tuple[Any, Any]:
        """(N_opt, D_opt) minimising L on 6 N D = C."""
        c6 = np.asarray(flops, dtype=np.float64) / 6.0
        n = self.G * c6 ** self.n_opt_exponent
        d = c6 ** self.d_opt_exponent / self.G
        if np.ndim(n) == 0:
            return float(n), float(d)
        return n, d

    def _samples(self) -> dict[str, np.ndarray]:
        if self.boot is None:
            return {}
        a_exp, b_exp = _exponents(self.boot)
        out = {n: self.boot[:, i] for i, n in enumerate(PARAM_NAMES)}
        out.update(n_opt_exponent=a_exp, d_opt_exponent=b_exp)
        return out

    def intervals(self, level: float | None = None) -> dict[str, tuple[float, float]]:
        """Bootstrap percentile intervals of the parameters and of the optimal exponents."""
        lev = self.level if level is None else level
        return {k: _interval(v, lev) for k, v in self._samples().items()}

    @property
    def standard_errors(self) -> dict[str, float]:
        """Bootstrap standard deviations (Epoch's table reports these). A coefficient whose
        refits spread past 1e154 (its exponent at its bound) has an inf one."""
        with np.errstate(over="ignore"):
            return {k: float(np.std(v[np.isfinite(v)], ddof=1)) if np.sum(np.isfinite(v)) > 1
                    else float("nan") for k, v in self._samples().items()}

    def predict_interval(self, n: Any, d: Any, level: float | None = None) -> tuple[Any, Any]:
        """Percentile interval of L(N, D) over the bootstrap refits."""
        if self.boot is None:
            raise ValueError("no bootstrap: fit with n_boot > 0")
        lev = self.level if level is None else level
        nn = np.asarray(n, dtype=np.float64)[..., None]
        dd = np.asarray(d, dtype=np.float64)[..., None]
        A, B, E, alpha, beta = self.boot.T
        preds = E + A * nn ** -alpha + B * dd ** -beta
        tail = 100.0 * (1.0 - lev) / 2.0
        lo, hi = np.nanpercentile(preds, [tail, 100.0 - tail], axis=-1)
        return (float(lo), float(hi)) if lo.ndim == 0 else (lo, hi)

    def to_dict(self) -> dict[str, Any]:
        return {
            "form": LOSS_FORM,
            **self.params,
            "n_opt_exponent": self.n_opt_exponent,
            "d_opt_exponent": self.d_opt_exponent,
            "G": self.G,
            "objective": self.objective,
            "loss": f"sum of Huber(log L_pred - log L_obs), delta = {self.delta}",
            "n_points": self.n_points,
            "n_dropped": self.n_dropped,
            "grid": self.grid,
            "n_starts": self.n_starts,
            "n_converged": self.n_converged,
            "n_boot": self.n_boot,
            "level": self.level,
            "standard_errors": self.standard_errors,
            "intervals": {k: list(v) for k, v in self.intervals().items()},
            "note": self.note,
        }


def fit_chinchilla(params: Any, tokens: Any, loss: Any, *, drop_highest: int = 0,
                   grid: str | np.ndarray = "coarse", delta: float = HUBER_DELTA,
                   n_boot: int = CHINCHILLA_N_BOOT, level: float = LEVEL,
                   boot_starts: int = BOOT_STARTS, seed: int = 0) -> ChinchillaFit:
    """Fit ``LOSS_FORM`` to points (N, D, L) as Epoch did; bootstrap when n_boot > 0.

    ``drop_highest=k`` applies Epoch's cut before fitting: keep the points whose loss is below
    the k-th highest loss (ties with it go too). Points with a non-positive or missing N, D or
    L are left out. Raises ValueError with fewer than ``MIN_LOSS_POINTS`` points left.
    """
    n = np.asarray(params, dtype=np.float64).reshape(-1)
    d = np.asarray(tokens, dtype=np.float64).reshape(-1)
    y = np.asarray(loss, dtype=np.float64).reshape(-1)
    if not (len(n) == len(d) == len(y)):
        raise ValueError(f"params, tokens and loss differ in length: {len(n)}, {len(d)}, {len(y)}")
    valid = np.isfinite(n) & np.isfinite(d) & np.isfinite(y) & (n > 0) & (d > 0) & (y > 0)
    notes = [f"{int(np.sum(~valid))} point(s) with missing or non-positive N, D or L left out"] \
        if not np.all(valid) else []
    n, d, y = n[valid], d[valid], y[valid]
    n_dropped = 0
    if drop_highest > 0:
        keep = y < np.sort(y)[-drop_highest]
        n_dropped = int(np.sum(~keep))
        n, d, y = n[keep], d[keep], y[keep]
        notes.append(f"{n_dropped} highest-loss point(s) dropped")
    if len(y) < MIN_LOSS_POINTS:
        raise ValueError(f"an L(N, D) fit needs at least {MIN_LOSS_POINTS} points, got {len(y)}")
    log_n, log_d, log_y = np.log(n), np.log(d), np.log(y)
    pairs = len(set(zip(n.tolist(), d.tolist())))
    if len(np.unique(log_n)) < 2 or len(np.unique(log_d)) < 2:
        notes.append("N or D takes a single value: alpha or beta is not identified")
    elif pairs < MIN_LOSS_POINTS:
        notes.append(f"only {pairs} distinct (N, D) pairs: the five parameters are not all "
                     "identified")

    starts = start_grid(grid)
    theta, value, converged = _minimise(starts, log_n, log_d, log_y, delta)
    p = _theta_to_params(theta)[0]
    fit = ChinchillaFit(A=float(p[0]), B=float(p[1]), E=float(p[2]), alpha=float(p[3]),
                        beta=float(p[4]), objective=value, n_points=int(len(y)),
                        n_dropped=n_dropped, delta=delta,
                        grid=grid if isinstance(grid, str) else "custom",
                        n_starts=int(len(starts)), n_converged=converged, level=level)
    if n_boot > 0:
        boot = []
        extra = _extra_starts(starts, boot_starts, seed)
        usable = lambda i: (len(np.unique(i)) >= MIN_LOSS_POINTS  # noqa: E731
                            and len(np.unique(log_n[i])) > 1 and len(np.unique(log_d[i])) > 1)
        for idx in _resamples(len(y), n_boot, seed, usable):
            t = _minimise(np.vstack([theta, next(extra)]), log_n[idx], log_d[idx], log_y[idx],
                          delta)[0]
            boot.append(_theta_to_params(t)[0])
        fit.boot = np.array(boot) if boot else None
    fit.note = "; ".join(notes)
    return fit


def _resamples(n: int, n_boot: int, seed: int,
               usable: Callable[[np.ndarray], bool]) -> Iterable[np.ndarray]:
    """Index arrays of bootstrap resamples; unusable draws are drawn again (20x at most)."""
    rng = np.random.default_rng(seed)
    made = draws = 0
    while made < n_boot and draws < 20 * n_boot:
        draws += 1
        idx = rng.integers(0, n, size=n)
        if usable(idx):
            made += 1
            yield idx


def _extra_starts(starts: np.ndarray, k: int, seed: int) -> Iterable[np.ndarray]:
    """Endless draws of k grid starts each, for refits that also start from the full optimum."""
    rng = np.random.default_rng((seed, 1))
    k = min(k, len(starts))
    while True:
        yield starts[rng.choice(len(starts), size=k, replace=False)] if k > 0 \
            else np.empty((0, 5))


def read_chinchilla_points(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, D, L) from Epoch's ``svg_extracted_data.csv`` layout, with D = FLOP / (6 N)."""
    n, c, y = [], [], []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if not row.get("Model Size") or not row.get("Training FLOP") or not row.get("loss"):
                continue
            n.append(float(row["Model Size"]))
            c.append(float(row["Training FLOP"]))
            y.append(float(row["loss"]))
    n_arr, c_arr = np.array(n), np.array(c)
    return n_arr, c_arr / (6.0 * n_arr), np.array(y)


def _loss_runs(results: Sequence[Mapping[str, Any]], mixture: str | None
               ) -> tuple[list[Mapping[str, Any]], np.ndarray, np.ndarray, np.ndarray]:
    """The runs usable for L(N, D) (of one mixture when named): positive params and tokens and
    a finite, positive final loss; and their (N, D, L)."""
    runs, points = [], []
    for r in results:
        if mixture is not None and str(r.get("mixture")) != str(mixture):
            continue
        p = [float_value(r, k) for k in ("params", "tokens", "final_loss")]
        if all(np.isfinite(v) and v > 0 for v in p):
            runs.append(r)
            points.append(p)
    n, d, y = np.array(points, dtype=np.float64).reshape(-1, 3).T
    return runs, n, d, y


def fit_chinchilla_runs(data: Any, *, mixture: str | None = None, **kw: Any) -> ChinchillaFit:
    """``fit_chinchilla`` on runs' (params, tokens, final_loss); runs without them are left out.

    ``mixture`` restricts to one mixture: the loss surface belongs to one kind of text.
    """
    _, n, d, y = _loss_runs(as_records(data), mixture)
    return fit_chinchilla(n, d, y, **kw)


# ---------------------------------------------------------------------------------------------
# Per-category accuracy curves (one implementation, in ``curves``)


def fit_category_curves(data: Any, variable: str = "flops", **kw: Any) -> list[CurveFit]:
    """Per (category, mixture) bounded sigmoid in log10 of ``variable`` (flops/params/tokens).

    Keyword arguments go to ``curves.fit_curves`` (categories, n_boot, seed).
    """
    return fit_curves(as_records(data), variable=variable, **kw)


# ---------------------------------------------------------------------------------------------
# Two-step form: (N, D) -> loss -> accuracy


@dataclasses.dataclass
class LossMap:
    """acc(L) of ``LOSS_MAP_FORM`` for one category; a and b NaN when no fit was possible."""

    category: str
    a: float
    b: float
    chance: float
    n_points: int
    rmse: float
    note: str = ""

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.a) and np.isfinite(self.b))

    @property
    def midpoint_loss(self) -> float:
        """L0: the loss where accuracy is halfway between chance and 1."""
        return -self.a / self.b if self.ok and self.b != 0 else float("nan")

    def predict(self, loss: Any) -> Any:
        x = np.asarray(loss, dtype=np.float64)
        out = logistic(x, self.a, self.b, self.chance) if self.ok else np.full(x.shape, np.nan)
        return float(out) if np.ndim(out) == 0 else out

    def to_dict(self) -> dict[str, Any]:
        return {"category": self.category, "form": LOSS_MAP_FORM, "a": self.a, "b": self.b,
                "midpoint_loss": self.midpoint_loss, "chance": self.chance,
                "n_points": self.n_points, "rmse": self.rmse, "note": self.note}


def fit_loss_map(loss: Any, acc: Any, chance: float, *, category: str = "",
                 start: tuple[float, float] | None = None) -> LossMap:
    """Least-squares ``LOSS_MAP_FORM`` on points (loss, acc); never raises."""
    x = np.asarray(loss, dtype=np.float64).reshape(-1)
    y = np.asarray(acc, dtype=np.float64).reshape(-1)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    chance = float(chance) if chance is not None and np.isfinite(chance) else 0.0
    out = LossMap(category=category, a=float("nan"), b=float("nan"), chance=chance,
                  n_points=int(len(x)), rmse=float("nan"))
    ab = fit_logistic(x, y, chance, start=start)
    if ab is None:
        out.note = "fit not possible: fewer than two distinct losses"
        return out
    out.a, out.b = ab
    out.rmse = float(np.sqrt(np.mean((out.predict(x) - y) ** 2)))
    return out


@dataclasses.dataclass
class TwoStepFit:
    """L(N, D) on final loss, then per category acc(L), fitted on the same runs."""

    mixture: str | None
    loss_fit: ChinchillaFit
    maps: dict[str, LossMap]
    params: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    acc: dict[str, np.ndarray]
    starts: np.ndarray

    def predict_loss(self, n: Any, d: Any) -> Any:
        return self.loss_fit.predict(n, d)

    def predict(self, n: Any, d: Any, category: str) -> Any:
        """Accuracy at (N, D): predicted loss, then the category's loss map."""
        return self.maps[category].predict(self.loss_fit.predict(n, d))

    def to_dict(self) -> dict[str, Any]:
        return {"mixture": self.mixture, "loss": self.loss_fit.to_dict(),
                "maps": {c: m.to_dict() for c, m in self.maps.items()}}


def fit_two_step(data: Any, *, categories: Sequence[str] | None = None,
                 mixture: str | None = None, grid: str | np.ndarray = "coarse",
                 delta: float = HUBER_DELTA) -> TwoStepFit:
    """Fit the two-step form on a study's runs (one mixture, or all runs pooled).

    Both steps use the runs with positive params and tokens and a finite final loss; a
    category's map uses those of them that report it. Raises ValueError with fewer than
    ``MIN_LOSS_POINTS`` such runs. Intervals come from ``extrapolate_two_step``.
    """
    runs, n, d, y = _loss_runs(as_records(data), mixture)
    cats = list(categories) if categories is not None else curves.categories_of(runs) + [OVERALL]
    loss_fit = fit_chinchilla(n, d, y, grid=grid, delta=delta, n_boot=0)
    acc = {c: np.array([accuracy_of(r, c) for r in runs]) for c in cats}
    maps = {c: fit_loss_map(y, acc[c], mean_chance(runs, c), category=c) for c in cats}
    return TwoStepFit(mixture=mixture, loss_fit=loss_fit, maps=maps, params=n, tokens=d,
                      loss=y, acc=acc, starts=start_grid(grid))


# ---------------------------------------------------------------------------------------------
# Extrapolation to a larger scale


@dataclasses.dataclass(frozen=True)
class Target:
    """A model to predict: N parameters trained on D tokens (C defaults to 6 N D)."""

    params: float
    tokens: float
    flops: float | None = None
    label: str = ""

    def value(self, variable: str) -> float:
        if variable == "params":
            return float(self.params)
        if variable == "tokens":
            return float(self.tokens)
        curves.check_variable(variable)
        return float(self.flops) if self.flops is not None else 6.0 * self.params * self.tokens


def next_scale_target(data: Any, *, scale: str | None = None, tokens: float | None = None,
                      flops: float | None = None) -> Target:
    """The next larger model size after the study's largest, with a token budget.

    The scale is the one after the largest observed in its table (paper or tiny scales) unless
    named; N counts the parameters of its model config. Unless given, D keeps the
    tokens-per-parameter ratio of the most-trained run at the largest observed scale, and C is
    6 N D times that run's C / (6 N D), so the target shares the study's FLOP accounting.
    """
    from visual_priors.config import scales as scale_tables
    from visual_priors.model import llm

    results = as_records(data)
    largest = curves.largest_scale(results)
    if largest is None:
        raise ValueError("no runs to extrapolate from")
    if scale is None:
        table = next((t for t in (scale_tables.PAPER_SCALES, scale_tables.TINY_SCALES)
                      if largest in t), None)
        if table is None or table.index(largest) + 1 >= len(table):
            raise ValueError(f"no scale after {largest!r} in the scale tables; name one or "
                             "give a Target")
        scale = table[table.index(largest) + 1]
    n = float(llm.count_params(scale_tables.get(scale)))
    ref = max((r for r in results if str(r.get("scale")) == largest),
              key=lambda r: (float_value(r, "flops"), float_value(r, "tokens")))
    n_ref, d_ref, c_ref = (float_value(ref, k) for k in ("params", "tokens", "flops"))
    if tokens is None:
        if not (n_ref > 0 and d_ref > 0):
            raise ValueError(f"run {ref.get('run')!r} has no tokens; give tokens explicitly")
        tokens = d_ref / n_ref * n
    if flops is None:
        ratio = c_ref / (6.0 * n_ref * d_ref) if n_ref > 0 and d_ref > 0 and c_ref > 0 else 1.0
        flops = 6.0 * n * float(tokens) * ratio
    return Target(params=n, tokens=float(tokens), flops=float(flops), label=scale)


@dataclasses.dataclass
class Extrapolation:
    """A predicted quantity at a target with its bootstrap percentile interval."""

    quantity: str
    mixture: str | None
    method: str
    target: Target
    value: float
    lo: float
    hi: float
    level: float
    n_boot: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["target"] = dataclasses.asdict(self.target)
        return d


def extrapolate_curve(fit: CurveFit, target: Target, *, n_boot: int = N_BOOT, seed: int = 0,
                      level: float = LEVEL) -> Extrapolation:
    """The direct curve's accuracy at the target's value of the curve's variable."""
    x = target.value(fit.variable)
    value = fit.predict(x) if fit.ok else float("nan")
    band = curves.bootstrap_band(fit, n_boot=n_boot, seed=seed, grid=[x], level=level) \
        if fit.ok and n_boot > 0 else None
    lo, hi = (float(band[1][0]), float(band[2][0])) if band is not None else (math.nan, math.nan)
    note = fit.note if band is not None else "; ".join(
        s for s in (fit.note, "no interval: too few distinct points or no fit") if s)
    return Extrapolation(quantity=fit.category, mixture=fit.mixture, method=f"curve:{fit.variable}",
                         target=target, value=float(value), lo=lo, hi=hi, level=level,
                         n_boot=n_boot if band is not None else 0, note=note)


def extrapolate_two_step(fit: TwoStepFit, target: Target, *, n_boot: int = N_BOOT,
                         seed: int = 0, level: float = LEVEL,
                         boot_starts: int = BOOT_STARTS) -> list[Extrapolation]:
    """Final loss and every category's accuracy at the target, through both steps.

    The interval resamples runs and refits L(N, D) (from the full fit and ``boot_starts`` grid
    starts) and each loss map (from the full map) on the same resample.
    """
    lf = fit.loss_fit
    n, d = target.params, target.tokens
    log_n, log_d, log_y = np.log(fit.params), np.log(fit.tokens), np.log(fit.loss)
    cats = list(fit.maps)
    losses, accs = [], {c: [] for c in cats}
    usable = lambda i: len(np.unique(i)) >= MIN_LOSS_POINTS  # noqa: E731
    extra = _extra_starts(fit.starts, boot_starts, seed)
    for idx in _resamples(len(fit.loss), n_boot, seed, usable):
        theta = _minimise(np.vstack([lf.theta, next(extra)]), log_n[idx], log_d[idx],
                          log_y[idx], lf.delta)[0]
        loss_t = float(np.exp(log_loss_prediction(theta, math.log(n), math.log(d))))
        losses.append(loss_t)
        for c in cats:
            m = fit.maps[c]
            refit = fit_loss_map(fit.loss[idx], fit.acc[c][idx], m.chance,
                                 start=(m.a, m.b)) if m.ok else None
            accs[c].append(refit.predict(loss_t) if refit is not None and refit.ok else math.nan)
    made = len(losses)
    out = [Extrapolation("final_loss", fit.mixture, "two-step", target, lf.predict(n, d),
                         *_interval(np.array(losses), level), level, made)]
    for c in cats:
        m = fit.maps[c]
        out.append(Extrapolation(c, fit.mixture, "two-step", target,
                                 float(m.predict(lf.predict(n, d))),
                                 *_interval(np.array(accs[c]), level), level, made, m.note))
    return out


def extrapolate(data: Any, target: Target | None = None, *, variable: str = "flops",
                categories: Sequence[str] | None = None, n_boot: int = N_BOOT, seed: int = 0,
                level: float = LEVEL, two_step: bool = True) -> list[Extrapolation]:
    """Per mixture and category, the direct curve's and the two-step prediction at a target.

    The target defaults to ``next_scale_target``. A mixture with too few runs for the loss
    surface gets the direct predictions only.
    """
    results = as_records(data)
    target = target if target is not None else next_scale_target(results)
    cats = list(categories) if categories is not None else curves.categories_of(results) + [OVERALL]
    out = [extrapolate_curve(f, target, n_boot=n_boot, seed=seed, level=level)
           for f in fit_curves(results, categories=cats, n_boot=0, seed=seed, variable=variable)]
    if two_step:
        for mix in mixtures_of(results):
            try:
                ts = fit_two_step(results, categories=cats, mixture=mix)
            except ValueError:
                continue
            out += extrapolate_two_step(ts, target, n_boot=n_boot, seed=seed, level=level)
    return out


# ---------------------------------------------------------------------------------------------
# Decision accuracy


def metric_of(result: Mapping[str, Any], metric: str | Callable[[Mapping[str, Any]], float]) -> float:
    """A run's score: a callable, a category (or ``overall``), or a dotted result key."""
    if callable(metric):
        return float(metric(result))
    if metric == OVERALL or metric in (result.get("categories") or {}):
        return accuracy_of(result, metric)
    return float_value(result, str(metric))


def pair_agreement(small: Mapping[str, float], target: Mapping[str, float], *,
                   tie_tol: float = 0.0) -> dict[str, Any]:
    """Decision accuracy of one small scale's scores against the target scale's.

    Over mixture pairs present in both with finite scores: pairs with |target difference| <=
    tie_tol are skipped; agreement in sign scores 1, disagreement 0, a small-scale tie 1/2.
    """
    names = sorted(set(small) & set(target), key=natural_key)
    credit, n_pairs, ties, missing = 0.0, 0, 0, 0
    for i, j in itertools.combinations(names, 2):
        ds, dt = small[i] - small[j], target[i] - target[j]
        if not (np.isfinite(ds) and np.isfinite(dt)):
            missing += 1
        elif abs(dt) <= tie_tol:
            ties += 1
        else:
            n_pairs += 1
            credit += 0.5 if abs(ds) <= tie_tol else float(np.sign(ds) == np.sign(dt))
    return {"accuracy": credit / n_pairs if n_pairs else float("nan"), "n_pairs": n_pairs,
            "n_target_ties": ties, "n_missing": missing}


def _scale_scores(results: Sequence[Mapping[str, Any]], scale: str,
                  metric: Any) -> dict[str, tuple[float, float]]:
    """mixture -> (mean metric, FLOPs) over its runs at the scale's largest FLOPs."""
    out = {}
    for mix in mixtures_of(results):
        runs = [r for r in results if str(r.get("scale")) == scale and str(r.get("mixture")) == mix]
        if not runs:
            continue
        top = max(float_value(r, "flops") for r in runs)
        vals = [metric_of(r, metric) for r in runs if float_value(r, "flops") == top]
        vals = [v for v in vals if np.isfinite(v)]
        out[mix] = (float(np.mean(vals)) if vals else float("nan"), top)
    return out


def _predicted_scores(results: Sequence[Mapping[str, Any]], scales: Sequence[str], metric: str,
                      target_flops: Mapping[str, float]) -> dict[str, float]:
    """mixture -> the flops curve's accuracy at its target FLOPs, fitted on runs at ``scales``."""
    out = {}
    for mix, c in target_flops.items():
        runs = [r for r in results if str(r.get("mixture")) == mix and str(r.get("scale")) in scales]
        pts = [(float_value(r, "flops"), metric_of(r, metric)) for r in runs]
        if not pts:
            continue
        fit = fit_curve([p[0] for p in pts], [p[1] for p in pts], mean_chance(runs, metric),
                        n_boot=0)
        out[mix] = fit.predict(c) if fit.ok else float("nan")
    return out


@dataclasses.dataclass
class DecisionAccuracy:
    scale: str
    target_scale: str
    metric: str
    accuracy: float
    n_pairs: int
    n_target_ties: int
    n_missing: int
    predicted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def decision_accuracy(data: Any, metric: str | Callable = OVERALL, *,
                      target_scale: str | None = None, tie_tol: float = 0.0,
                      predicted: bool = False) -> list[DecisionAccuracy]:
    """DataDecide's decision accuracy of every scale smaller than the target (default: largest).

    ``predicted`` ranks mixtures by the accuracy curve (against FLOPs, per mixture, fitted on
    runs at that scale and all smaller ones) evaluated at each mixture's target-scale FLOPs
    instead of the raw small-scale score; it needs a category (or ``overall``) as metric.
    Ordering agreement does not depend on whether higher or lower scores are better.
    """
    results = as_records(data)
    order = scales_of(results)
    target_scale = target_scale if target_scale is not None else (order[-1] if order else None)
    if target_scale not in order:
        raise ValueError(f"target scale {target_scale!r} not among the runs' scales {order}")
    if predicted and (callable(metric) or not (metric == OVERALL or any(
            metric in (r.get("categories") or {}) for r in results))):
        raise ValueError("predicted scores need an accuracy metric: a category or 'overall'")
    name = getattr(metric, "__name__", "metric") if callable(metric) else str(metric)
    target = _scale_scores(results, target_scale, metric)
    target_scores = {m: v for m, (v, _) in target.items()}
    out = []
    for i, scale in enumerate(order[:order.index(target_scale)]):
        if predicted:
            small = _predicted_scores(results, order[:i + 1], metric,
                                      {m: c for m, (_, c) in target.items()})
        else:
            small = {m: v for m, (v, _) in _scale_scores(results, scale, metric).items()}
        agree = pair_agreement(small, target_scores, tie_tol=tie_tol)
        out.append(DecisionAccuracy(scale=scale, target_scale=target_scale, metric=name,
                                    predicted=predicted, **agree))
    return out


# ---------------------------------------------------------------------------------------------
# Command line: python -m visual_priors.analysis.scaling


def _fmt_interval(v: tuple[float, float]) -> str:
    return f"[{v[0]!r}, {v[1]!r}]"


def chinchilla_table(fit: ChinchillaFit, reference: Mapping[str, float] | None = None,
                     reference_se: Mapping[str, float] | None = None) -> str:
    """Plain-text table of a loss-surface fit, unrounded, beside reference values if given."""
    iv, se = fit.intervals(), fit.standard_errors
    lines = [f"{LOSS_FORM}: {fit.n_points} points ({fit.n_dropped} dropped), {fit.n_starts} "
             f"starts ({fit.grid} grid, {fit.n_converged} converged), objective "
             f"{fit.objective!r}, {fit.n_boot} bootstrap resamples, {fit.level:.0%} percentile "
             "intervals"]
    rows = list(PARAM_NAMES) + ["n_opt_exponent", "d_opt_exponent"]
    for k in rows:
        value = getattr(fit, k)
        line = f"  {k:<15} {value!r:<22}"
        if k in se:
            line += f"  se {se[k]!r:<22}  {_fmt_interval(iv[k])}"
        if reference and k in reference:
            ref_se = f" (se {reference_se[k]})" if reference_se and k in reference_se else ""
            line += f"  published {reference[k]}{ref_se}"
        lines.append(line)
    if fit.note:
        lines.append(f"  note: {fit.note}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m visual_priors.analysis.scaling",
                                description="Fit L(N, D) = E + A/N^alpha + B/D^beta.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--chinchilla", metavar="CSV",
                     help="Hoffmann et al.'s figure-4 points (Epoch's svg_extracted_data.csv)")
    src.add_argument("--runs", metavar="PATH",
                     help="a study's exported .parquet/.csv or results.json (params, tokens, "
                          "final_loss)")
    p.add_argument("--mixture", help="with --runs: fit one mixture's runs")
    p.add_argument("--drop-highest", type=int, default=None,
                   help="drop the k highest-loss points first (default 5 with --chinchilla, "
                        "as Epoch did; 0 with --runs)")
    p.add_argument("--grid", choices=sorted(GRIDS), default="coarse")
    p.add_argument("--n-boot", type=int, default=CHINCHILLA_N_BOOT)
    p.add_argument("--level", type=float, default=LEVEL)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the fit as JSON")
    args = p.parse_args(argv)
    kw = dict(grid=args.grid, n_boot=args.n_boot, level=args.level, seed=args.seed)
    if args.chinchilla:
        drop = 5 if args.drop_highest is None else args.drop_highest
        fit = fit_chinchilla(*read_chinchilla_points(args.chinchilla), drop_highest=drop, **kw)
        ref, ref_se = (EPOCH_2024, EPOCH_2024_SE) if drop == 5 else (None, None)
    else:
        fit = fit_chinchilla_runs(args.runs, mixture=args.mixture,
                                  drop_highest=args.drop_highest or 0, **kw)
        ref = ref_se = None
    print(json.dumps(fit.to_dict(), indent=1) if args.json else chinchilla_table(fit, ref, ref_se))
    return 0


if __name__ == "__main__":
    sys.exit(main())
