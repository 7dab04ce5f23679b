"""Per-category accuracy curves against a scale variable, and binomial standard errors.

For one category and one text mixture, accuracy is modelled as a function of a positive scale
variable x of the language model: pre-training FLOPs C (the default), parameters N or
pre-training tokens D:

    acc(x) = chance + (1 - chance) * sigmoid(a + b * log10(x))

The floor is the benchmark's chance accuracy and the ceiling is 1, so the curve stays in the
range a multiple-choice accuracy can take; ``a`` places the midpoint (log10 x = -a / b) and
``b`` is the slope in logits per decade of x. The two parameters are fitted by
``scipy.optimize.least_squares`` in float64 on the points of that mixture, from several
starts, with the predictor centred during the fit for conditioning and ``a`` mapped back
afterwards (``fit_logistic``, which any other bounded logistic map reuses, e.g. accuracy against
loss in ``scaling``). Parameters are kept unrounded. A 90% band comes from a bootstrap over
points (resample the points with replacement, refit, take the 5th and 95th percentiles of the
refitted curves on a grid of x); it is skipped when the mixture has fewer than three distinct x
values, and a fit needs at least two.

Runs with x = 0 (no pre-training) have no place on a log axis and are left out of the fit.
The pseudo-category ``"overall"`` selects each run's plain mean over benchmarks.
"""

from __future__ import annotations

import dataclasses
import math
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import optimize, special

from visual_priors.analysis.records import as_float, float_value

# The scale variables a curve can be fitted against: result key -> (symbol, axis label).
VARIABLES = {
    "flops": ("C", "pre-training FLOPs"),
    "params": ("N", "parameters"),
    "tokens": ("D", "pre-training tokens"),
}


def curve_form(variable: str = "flops") -> str:
    sym = VARIABLES[variable][0]
    return f"acc({sym}) = chance + (1 - chance) * sigmoid(a + b * log10({sym}))"


CURVE_FORM = curve_form("flops")

# Paper order first; anything else a study adds follows in the order it appears.
CANONICAL_CATEGORIES = ("general", "knowledge", "ocr_chart", "vision_centric")
CATEGORY_LABELS = {
    "general": "General",
    "knowledge": "Knowledge",
    "ocr_chart": "OCR & Chart",
    "vision_centric": "Vision-Centric",
    "overall": "Overall (mean over benchmarks)",
}
OVERALL = "overall"
# Flat rows of the exported table carry category accuracies as ``categories.<name>``.
_FLAT_CATEGORY = "categories."

N_BOOT = 200
BAND_LEVEL = 0.90
MIN_POINTS_FIT = 2
MIN_POINTS_BAND = 3
# Box on the centred intercept and on the slope (logits per decade): keeps fits to points at
# or below chance, or to exactly saturated points, finite instead of running off to infinity.
_BOUND = 30.0
# A midpoint this many decades beyond the points is a shape the data allow, not one they show.
UNCONSTRAINED_DECADES = 1.0


def category_label(category: str) -> str:
    return CATEGORY_LABELS.get(category, category.replace("_", " ").title())


def natural_key(text: str) -> tuple:
    """Sort key that puts mix2 before mix10."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(text)))


def categories_of(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Categories the runs report, nested (``categories``) or flat (``categories.<name>``)."""
    seen: list[str] = []
    for r in results:
        nested = r.get("categories")
        names = list(nested) if isinstance(nested, Mapping) else []
        names += [k[len(_FLAT_CATEGORY):] for k in r
                  if isinstance(k, str) and k.startswith(_FLAT_CATEGORY)]
        for c in names:
            if c not in seen:
                seen.append(c)
    canon = [c for c in CANONICAL_CATEGORIES if c in seen]
    return canon + [c for c in seen if c not in canon]


def mixtures_of(results: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted({str(r.get("mixture")) for r in results}, key=natural_key)


def scales_of(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Scales from smallest to largest by their median parameter count."""
    params: dict[str, list[float]] = {}
    for r in results:
        params.setdefault(str(r.get("scale")), []).append(float(r.get("params") or 0.0))
    return sorted(params, key=lambda s: (float(np.median(params[s])), natural_key(s)))


def accuracy_of(result: Mapping[str, Any], category: str) -> float:
    """A run's accuracy in a category (or ``overall``); NaN when the run lacks it."""
    return float_value(result, OVERALL if category == OVERALL else f"{_FLAT_CATEGORY}{category}")


def chance_of(result: Mapping[str, Any], category: str | None = None) -> float:
    """Chance accuracy of a run; a per-category mapping is accepted as well as one number."""
    c = result.get("chance")
    if isinstance(c, Mapping):
        vals = [float(v) for v in c.values()]
        if category in c:
            return float(c[category])
        return float(np.mean(vals)) if vals else float("nan")
    return as_float(c)


def mean_chance(runs: Sequence[Mapping[str, Any]], category: str) -> float:
    """Mean chance accuracy of the runs in a category; 0 when none of them reports one."""
    ch = np.array([chance_of(r, category) for r in runs], dtype=np.float64)
    return float(np.nanmean(ch)) if np.any(np.isfinite(ch)) else 0.0


# ---------------------------------------------------------------------------------------------
# Standard errors


def binomial_se(acc: Any, n: Any) -> Any:
    """sqrt(acc (1 - acc) / n); NaN where n is missing or not positive. Scalars in, float out."""
    a = np.asarray(acc, dtype=np.float64)
    m = np.asarray(np.nan if n is None else n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.where(m > 0, np.sqrt(np.clip(a * (1.0 - a), 0.0, None) / m), np.nan)
    return float(se) if se.ndim == 0 else se


def _mean_se(result: Mapping[str, Any], benchmarks: Iterable[str], p: float | None) -> float:
    # The SE of a plain mean of independent benchmark accuracies: sqrt(sum var_i) / k.
    bench = result.get("benchmarks") or {}
    nq = result.get("n_questions") or {}
    names = list(benchmarks)
    if not names:
        return float("nan")
    var = 0.0
    for b in names:
        acc = p if p is not None else bench.get(b)
        n = nq.get(b)
        if acc is None or n is None or n <= 0:
            return float("nan")
        var += float(acc) * (1.0 - float(acc)) / float(n)
    return math.sqrt(max(var, 0.0)) / len(names)


def category_se(result: Mapping[str, Any], category: str, p: float | None = None) -> float:
    """Binomial SE of a category accuracy (plain mean over its benchmarks).

    With ``p`` given, every benchmark's accuracy is taken to be ``p`` (e.g. chance, for the SE
    under the null hypothesis). NaN when question counts or the benchmark map are missing.
    """
    if category == OVERALL:
        return _mean_se(result, (result.get("benchmarks") or {}).keys(), p)
    bmap = result.get("benchmark_category") or {}
    return _mean_se(result, [b for b, c in bmap.items() if c == category], p)


def run_standard_errors(result: Mapping[str, Any]) -> dict[str, Any]:
    """Binomial SEs of one run's benchmark, category and overall accuracies."""
    bench = result.get("benchmarks") or {}
    nq = result.get("n_questions") or {}
    return {
        "benchmarks": {b: binomial_se(v, nq.get(b)) for b, v in bench.items()},
        "categories": {c: category_se(result, c) for c in (result.get("categories") or {})},
        "overall": category_se(result, OVERALL),
    }


# ---------------------------------------------------------------------------------------------
# Curve fitting


def check_variable(variable: str) -> str:
    if variable not in VARIABLES:
        raise ValueError(f"unknown scale variable {variable!r}; valid: {', '.join(VARIABLES)}")
    return variable


def logistic(z: Any, a: float, b: float, chance: float) -> np.ndarray:
    """chance + (1 - chance) * sigmoid(a + b * z), the bounded map ``fit_logistic`` fits."""
    return chance + (1.0 - chance) * special.expit(a + b * np.asarray(z, dtype=np.float64))


def curve(x: Any, a: float, b: float, chance: float) -> np.ndarray:
    """The curve of ``curve_form`` evaluated at x (> 0): FLOPs, parameters or tokens."""
    return logistic(np.log10(np.asarray(x, dtype=np.float64)), a, b, chance)


@dataclasses.dataclass
class CurveFit:
    """A fitted curve for one (category, mixture); a and b are NaN when no fit was possible.

    ``x`` holds the fitted points' values of ``variable`` (a key of ``VARIABLES``).
    """

    category: str
    mixture: str
    a: float
    b: float
    n_points: int
    rmse: float
    x: np.ndarray
    acc: np.ndarray
    chance: float = 0.0
    note: str = ""
    band_x: np.ndarray | None = None
    band_lo: np.ndarray | None = None
    band_hi: np.ndarray | None = None
    n_boot: int = 0
    variable: str = "flops"

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.a) and np.isfinite(self.b))

    @property
    def has_band(self) -> bool:
        return self.band_x is not None

    @property
    def constrained(self) -> bool:
        """Whether the points pin the curve down: a fit whose slope sits at its bound, or whose
        midpoint lies more than UNCONSTRAINED_DECADES decades outside the points, is a shape
        the data merely allow; it is drawn as points and marked, never as a curve."""
        if not self.ok or abs(self.b) >= _BOUND - 1e-6 or len(self.x) == 0:
            return False
        mid = self.midpoint
        if not np.isfinite(mid) or mid <= 0:
            return False
        lo, hi = np.log10(np.min(self.x)), np.log10(np.max(self.x))
        return lo - UNCONSTRAINED_DECADES <= np.log10(mid) <= hi + UNCONSTRAINED_DECADES

    @property
    def form(self) -> str:
        return curve_form(self.variable)

    @property
    def midpoint(self) -> float:
        """The x where the curve is halfway between chance and 1."""
        if not self.ok or self.b == 0:
            return float("nan")
        # A nearly flat curve puts the midpoint beyond float range: report it as infinite.
        exponent = -self.a / self.b
        return float("inf") if exponent > 308 else 0.0 if exponent < -308 else float(10.0 ** exponent)

    def predict(self, x: Any) -> Any:
        c = np.asarray(x, dtype=np.float64)
        if not self.ok:
            out = np.full(c.shape, np.nan)
        else:
            with np.errstate(divide="ignore"):
                out = curve(c, self.a, self.b, self.chance)
        return float(out) if out.ndim == 0 else out

    def to_dict(self) -> dict[str, Any]:
        # Keys carry the variable's name (``flops``, ``midpoint_flops``) so a reader of the JSON
        # never has to guess what x was.
        v = self.variable
        d = {
            "category": self.category,
            "mixture": self.mixture,
            "form": self.form,
            "variable": v,
            "a": self.a,
            "b": self.b,
            "chance": self.chance,
            "n_points": self.n_points,
            "rmse": self.rmse,
            f"midpoint_{v}": self.midpoint,
            v: self.x.tolist(),
            "acc": self.acc.tolist(),
            "note": self.note,
            "band": None,
        }
        if self.has_band:
            d["band"] = {
                "level": BAND_LEVEL,
                "n_boot": self.n_boot,
                v: self.band_x.tolist(),
                "lo": self.band_lo.tolist(),
                "hi": self.band_hi.tolist(),
            }
        return d


def _least_squares(x: np.ndarray, y: np.ndarray, chance: float, x0: float,
                   starts: Sequence[tuple[float, float]]) -> tuple[float, float, float] | None:
    """Best (u, b, cost) over starts, where u is the intercept at x = x0."""
    xc = x - x0
    span = 1.0 - chance

    def resid(p: np.ndarray) -> np.ndarray:
        return chance + span * special.expit(p[0] + p[1] * xc) - y

    def jac(p: np.ndarray) -> np.ndarray:
        s = special.expit(p[0] + p[1] * xc)
        g = span * s * (1.0 - s)
        return np.stack([g, g * xc], axis=1)

    best = None
    for u0, b0 in starts:
        start = np.clip([u0, b0], -_BOUND + 1e-9, _BOUND - 1e-9)
        try:
            sol = optimize.least_squares(resid, start, jac=jac, bounds=(-_BOUND, _BOUND),
                                         method="trf", xtol=1e-12, ftol=1e-12, gtol=1e-12)
        except (ValueError, np.linalg.LinAlgError):
            continue
        if best is None or sol.cost < best[2]:
            best = (float(sol.x[0]), float(sol.x[1]), float(sol.cost))
    return best


def _initial_guess(x: np.ndarray, y: np.ndarray, chance: float, x0: float) -> tuple[float, float]:
    # Linear regression on the logit of the rescaled accuracy, clipped away from 0 and 1.
    q = np.clip((y - chance) / max(1.0 - chance, 1e-12), 0.02, 0.98)
    z = special.logit(q)
    xc = x - x0
    var = float(np.sum(xc * xc))
    b = float(np.sum(xc * (z - z.mean())) / var) if var > 0 else 0.0
    return float(z.mean()), b


def fit_logistic(x: np.ndarray, y: np.ndarray, chance: float,
                 start: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """Least-squares (a, b) of chance + (1 - chance) * sigmoid(a + b * x) on any predictor x.

    x is log10 of the scale variable for the curves here; ``start`` (a, b) replaces the
    default starts (bootstrap refits start from the full fit). None when fewer than two
    distinct x values or when every start fails.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(np.unique(x)) < MIN_POINTS_FIT:
        return None
    x0 = float(np.mean(x))
    if start is not None:
        starts = [(start[0] + start[1] * x0, start[1])]
    else:
        u, b = _initial_guess(x, y, chance, x0)
        starts = [(u, b), (u, 0.0), (0.0, 1.0), (0.0, -1.0), (u, 3.0 * b)]
    best = _least_squares(x, y, chance, x0, starts)
    if best is None:
        return None
    u, b, _ = best
    return u - b * x0, b


def fit_curve(x: Any, acc: Any, chance: float, *, category: str = "", mixture: str = "",
              n_boot: int = N_BOOT, seed: int = 0, grid: Any = None,
              variable: str = "flops") -> CurveFit:
    """Fit ``curve_form(variable)`` to points (x, acc); adds a bootstrap band when n_boot > 0.

    Never raises on too few points: the returned fit then has NaN parameters and a note.
    """
    check_variable(variable)
    name = VARIABLES[variable][1]
    f = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(acc, dtype=np.float64).reshape(-1)
    keep = np.isfinite(f) & np.isfinite(y) & (f > 0)
    dropped = int(np.sum(~keep))
    f, y = f[keep], y[keep]
    order = np.argsort(f, kind="stable")
    f, y = f[order], y[order]
    chance = float(chance) if chance is not None and np.isfinite(chance) else 0.0
    notes = [f"{dropped} point(s) with zero or missing {name} left out"] if dropped else []
    fit = CurveFit(category=category, mixture=mixture, a=float("nan"), b=float("nan"),
                   n_points=int(len(f)), rmse=float("nan"), x=f, acc=y, chance=chance,
                   variable=variable)

    z = np.log10(f)
    n_distinct = len(np.unique(z))
    if n_distinct < MIN_POINTS_FIT:
        notes.append(f"fit not possible: {n_distinct} distinct {name} value(s), needs "
                     f"{MIN_POINTS_FIT}")
        fit.note = "; ".join(notes)
        return fit
    ab = fit_logistic(z, y, chance)
    if ab is None:
        notes.append("fit not possible: optimiser failed")
        fit.note = "; ".join(notes)
        return fit
    fit.a, fit.b = ab
    fit.rmse = float(np.sqrt(np.mean((curve(f, fit.a, fit.b, chance) - y) ** 2)))
    if n_distinct == MIN_POINTS_FIT:
        notes.append(f"only two distinct {name} values: no residual degrees of freedom")
    if abs(fit.b) >= _BOUND - 1e-6:
        notes.append("slope at its bound: the points do not constrain the curve")
    elif not fit.constrained:
        notes.append(f"midpoint more than {UNCONSTRAINED_DECADES} decades outside the points: "
                     "the points do not constrain the curve")
    if n_boot > 0:
        if n_distinct >= MIN_POINTS_BAND:
            _bootstrap_into(fit, n_boot=n_boot, seed=seed, grid=grid)
        else:
            notes.append(f"no band: fewer than {MIN_POINTS_BAND} distinct {name} values")
    fit.note = "; ".join(notes)
    return fit


def unconstrained_notes(fits: Sequence[CurveFit]) -> list[str]:
    """One sentence per fitted curve its points do not constrain (CurveFit.constrained)."""
    out = []
    for f in fits:
        if f.ok and not f.constrained:
            out.append(f"{category_label(f.category)}, {f.mixture}: the fitted curve is not constrained by "
                       f"its {f.n_points} points (slope {f.b:.3g}, midpoint {f.midpoint:.3g}); drawn as "
                       "points only.")
    return out


def default_grid(x: np.ndarray, n: int = 60) -> np.ndarray:
    """Log-spaced values over the range of the data (no extrapolation)."""
    lo, hi = np.log10(np.min(x)), np.log10(np.max(x))
    return np.logspace(lo, hi, n)


def bootstrap_band(fit: CurveFit, *, n_boot: int = N_BOOT, seed: int = 0, grid: Any = None,
                   level: float = BAND_LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(grid, lo, hi) of a ``level`` interval from refits on resampled points.

    ``grid`` may reach beyond the data: an interval at one extrapolated x is a grid of one.
    None when the fit failed or has fewer than three distinct x values. Resamples with a
    single distinct x value cannot be refitted and are drawn again.
    """
    if not fit.ok or len(np.unique(fit.x)) < MIN_POINTS_BAND:
        return None
    g = default_grid(fit.x) if grid is None else np.asarray(grid, dtype=np.float64).reshape(-1)
    x = np.log10(fit.x)
    y = fit.acc
    n = len(x)
    rng = np.random.default_rng(seed)
    curves = []
    draws = 0
    while len(curves) < n_boot and draws < 20 * n_boot:
        draws += 1
        idx = rng.integers(0, n, size=n)
        if len(np.unique(x[idx])) < MIN_POINTS_FIT:
            continue
        ab = fit_logistic(x[idx], y[idx], fit.chance, start=(fit.a, fit.b))
        if ab is not None:
            curves.append(curve(g, ab[0], ab[1], fit.chance))
    if not curves:
        return None
    stack = np.stack(curves)
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(stack, [tail, 100.0 - tail], axis=0)
    return g, lo, hi


def _bootstrap_into(fit: CurveFit, *, n_boot: int, seed: int, grid: Any) -> None:
    band = bootstrap_band(fit, n_boot=n_boot, seed=seed, grid=grid)
    if band is not None:
        fit.band_x, fit.band_lo, fit.band_hi = band
        fit.n_boot = n_boot


def _group_seed(seed: int, category: str, mixture: str) -> int:
    # Stable across runs and independent of which other groups exist.
    return (seed * 1_000_003 + zlib.crc32(f"{category}\0{mixture}".encode())) % (2**32)


def fit_curves(results: Sequence[Mapping[str, Any]], *, categories: Sequence[str] | None = None,
               n_boot: int = N_BOOT, seed: int = 0, variable: str = "flops") -> list[CurveFit]:
    """One fit per (category, mixture) over a study's runs, in category then mixture order.

    ``variable`` is the result key fitted against: ``flops``, ``params`` or ``tokens``.
    """
    check_variable(variable)
    cats = list(categories) if categories is not None else categories_of(results)
    fits = []
    for cat in cats:
        for mix in mixtures_of(results):
            runs = [r for r in results
                    if str(r.get("mixture")) == mix and np.isfinite(accuracy_of(r, cat))]
            if not runs:
                continue
            f = np.array([float(r.get(variable) or 0.0) for r in runs], dtype=np.float64)
            y = np.array([accuracy_of(r, cat) for r in runs], dtype=np.float64)
            fits.append(fit_curve(f, y, mean_chance(runs, cat), category=cat, mixture=mix,
                                  n_boot=n_boot, seed=_group_seed(seed, cat, mix),
                                  variable=variable))
    return fits


# ---------------------------------------------------------------------------------------------
# Run selection shared by the plots and the report


def largest_scale(results: Sequence[Mapping[str, Any]]) -> str | None:
    scales = scales_of(results)
    return scales[-1] if scales else None


def representative_runs(results: Sequence[Mapping[str, Any]],
                        scale: str) -> dict[str, Mapping[str, Any]]:
    """Per mixture, the most-trained run (largest FLOPs, then tokens) at one scale."""
    best: dict[str, Mapping[str, Any]] = {}
    for r in results:
        if str(r.get("scale")) != scale:
            continue
        mix = str(r.get("mixture"))
        key = (float(r.get("flops") or 0.0), float(r.get("tokens") or 0.0), str(r.get("run")))
        cur = best.get(mix)
        if cur is None or key > (float(cur.get("flops") or 0.0), float(cur.get("tokens") or 0.0),
                                 str(cur.get("run"))):
            best[mix] = r
    return {m: best[m] for m in sorted(best, key=natural_key)}
