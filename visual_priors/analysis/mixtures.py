"""Which text mixture is best: mixture shares of runs and response surfaces over mixtures.

**Inputs.** A surface (``surfaces``) is fitted over either the (reasoning %, visual %) shares
of the runs (table 1's grid; ``shares_of`` maps any run to them) or over source weights
(table 2's mix0..mix10 recipes of six sources, fractions summing to one). Table 1's grid is not
rectangular (visual 20-30 % exists only for reasoning 60 and 65 %), which is why the optimum is
searched inside the convex hull of the sampled cells (it still holds unsampled interior points
such as 55/20).

**Source weights.** With 11 recipes a full quadratic in the 5 free shares (21 terms) is not
identifiable, and the recipes span only part of the simplex. Reduced forms that fit:
``derived_shares``, a quadratic in the derived (reasoning %, visual %) shares (sum over sources
of weight x table-4 combination rate; 6 terms); ``reasoning_share``, a quadratic in the derived
reasoning share alone (3 terms), which ``auto`` (the default) takes instead when the recipes'
shares lie close to a line, as table 2's do (mix0..mix10 trade visual for reasoning almost in
step, so the curvature across that line is not pinned down); and ``scheffe_ridge``, a Scheffe
linear blend y = sum_s beta_s w_s with a ridge penalty on the deviations of beta from their
mean (penalty chosen by leave-one-out CV), whose maximum over the hull, being linear, is always
one of the sampled recipes. The GP on the weights uses one length-scale (isotropic RBF): 11
points cannot pin six. Derived shares follow table 4's rates, so for mix8..mix10 they differ
from the paper's printed columns (SPEC A4.3: the source weights are taken as ground truth).

All intervals are two-sided percentile intervals at ``surfaces.LEVEL`` = 0.95.

**Shares of a run** (``shares_of``): grid mixtures give (r, v) directly; source mixtures (a
table-2 name, a single source, explicit weights) give the derived shares; a category-sweep
mixture gives only its label's share, on the reasoning axis for the reasoning labels and on the
visual axis for the visual ones, the other axis NaN (for a base label such as code_reasoning it
is that label's share, a lower bound on the combination's).

The trade-off between text accuracy, perplexity and VQA accuracy is in ``tradeoff``; ``main``
prints both on the paper's tables.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visual_priors.analysis.records import as_records, float_value, run_name
from visual_priors.analysis.surfaces import (LEVEL, N_BOOT, SampledRegion, Surface, fit_gp,
                                             fit_quadratic, percentile_interval)
from visual_priors.analysis.tradeoff import RANK_RULES, tradeoff
from visual_priors.config import mixtures as mixture_config
from visual_priors.data.labelling import REASONING as REASONING_BASE

SHARE_AXES = ("reasoning_pct", "visual_pct")
SURFACE_FORMS = ("derived_shares", "reasoning_share", "scheffe_ridge")
MIN_SHARE_SPREAD = 0.1
# Category-sweep labels placed on the reasoning axis; the other labels go on the visual axis.
REASONING_LABELS = (*REASONING_BASE, mixture_config.REASONING)


# ---------------------------------------------------------------------------------------------
# The paper's tables


def read_table1(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """table1_grid.csv -> (X [n, 2] of reasoning %, visual %; avg VQA [n])."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r["reasoning_pct"]), float(r["visual_pct"])] for r in rows])
    return x, np.array([float(r["avg_vqa"]) for r in rows])


def read_table2(path: str | Path) -> list[dict[str, Any]]:
    """table2_mixtures.csv -> rows with numbers as floats and ``weights`` (fractions, rescaled
    to sum to one: the paper's rows sum to 100 only to its rounding)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        row: dict[str, Any] = {"recipe": r["recipe"]}
        for k, v in r.items():
            if k != "recipe":
                row[k] = int(v) if k == "overall_rank" else float(v)
        w = {s: row[s] for s in mixture_config.MIXTURE_SOURCES if s in row}
        total = math.fsum(w.values())
        row["weights"] = {s: v / total for s, v in w.items()}
        out.append(row)
    return out


# ---------------------------------------------------------------------------------------------
# Mixture shares of a run


_GRID_NAME = re.compile(r"^r([0-9.]+)-v([0-9.]+)(-exclusive)?$")
_CATEGORY_NAME = re.compile(r"^([a-z_]+)@([0-9.]+)$")


def _mixture_text(record: Mapping[str, Any]) -> Any:
    for key in ("text_mixture", "mixture", "recipe"):
        v = record.get(key)
        if v not in (None, ""):
            return v
    return None


def mixture_of(record: Mapping[str, Any]) -> mixture_config.Mixture | None:
    """The run's text mixture parsed (``config.mixtures.Mixture``), or None."""
    text = _mixture_text(record)
    return _parse_mixture(text) if text is not None else None


def _parse_mixture(mixture: Any) -> mixture_config.Mixture | None:
    """A parsed mixture from a spec or from the canonical name a run carries ('r60-v15',
    'visual_concept@25', 'mix6', 'code', 'code=0.5,math=0.5'); None when it names none."""
    if isinstance(mixture, Mapping):
        try:
            return mixture_config.parse(mixture)
        except ValueError:
            return None
    text = str(mixture).strip()
    m = _GRID_NAME.match(text)
    if m:
        text = f"grid:reasoning={m.group(1)},visual={m.group(2)}" + (",overlap=exclusive" if m.group(3) else "")
    m = _CATEGORY_NAME.match(text)
    if m:
        text = f"category:{m.group(1)}={m.group(2)}"
    if text in mixture_config.PAPER_SOURCES or text in mixture_config.TABLE4_RATES:
        text = f"source:{text}"
    if "=" in text and ":" not in text:
        try:
            weights = {k.strip(): float(v) for k, v in (kv.split("=") for kv in text.split(","))}
            total = math.fsum(weights.values())  # names print weights to 6 digits
            return mixture_config.parse({k: v / total for k, v in weights.items()})
        except ValueError:
            return None
    try:
        return mixture_config.parse(text)
    except ValueError:
        return None


def source_weights_of(record: Mapping[str, Any]) -> dict[str, float] | None:
    """The run's source weights (fractions) when its text mixture is a source mixture."""
    w = record.get("weights")
    if isinstance(w, Mapping):
        return {str(k): float(v) for k, v in w.items()}
    mix = mixture_of(record)
    return dict(mix.weights) if mix is not None and mix.kind == "sources" else None


def shares_of(record: Mapping[str, Any]) -> tuple[float, float]:
    """(reasoning %, visual %) of a run record, a flat exported row or a paper-table row.

    Source weights (a ``weights`` mapping or a source mixture) give the derived shares;
    grid mixtures their two shares; category mixtures their label's share on its axis and NaN
    on the other; rows with ``reasoning_pct`` / ``visual_pct`` columns and nothing else, those.
    (NaN, NaN) when nothing places the run (e.g. a source without table-4 label rates).
    """
    weights = source_weights_of(record)
    if weights is not None:
        try:
            return mixture_config.derived_shares(weights)
        except ValueError:
            return float("nan"), float("nan")
    mix = mixture_of(record)
    if mix is not None and mix.kind == "grid":
        return float(mix.reasoning), float(mix.visual)
    if mix is not None and mix.kind == "category":
        if mix.label in REASONING_LABELS:
            return float(mix.percent), float("nan")
        return float("nan"), float(mix.percent)
    return float_value(record, "reasoning_pct"), float_value(record, "visual_pct")


def share_data(records: Sequence[Mapping[str, Any]],
               metric: str = "overall") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(X [n, 2] shares, y [n], run names) of the records with both shares and the metric."""
    xs, ys, names = [], [], []
    for i, r in enumerate(records):
        s, y = shares_of(r), float_value(r, metric)
        if all(math.isfinite(v) for v in (*s, y)):
            xs.append(s)
            ys.append(y)
            names.append(run_name(r, i))
    return np.array(xs, dtype=np.float64).reshape(-1, 2), np.array(ys, dtype=np.float64), names


def source_data(records: Sequence[Mapping[str, Any]], metric: str = "overall"
                ) -> tuple[list[dict[str, float]], np.ndarray, list[str]]:
    """(source weights, y, run names) of the records with a source mixture and the metric."""
    ws, ys, names = [], [], []
    for i, r in enumerate(records):
        w, y = source_weights_of(r), float_value(r, metric)
        if w is not None and math.isfinite(y):
            ws.append(w)
            ys.append(y)
            names.append(run_name(r, i))
    return ws, np.array(ys, dtype=np.float64), names


# ---------------------------------------------------------------------------------------------
# Surfaces over source weights


def weight_matrix(weights: Sequence[Mapping[str, float]],
                  sources: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """[n, k] weights (rows rescaled to sum to one) over the sources any row uses."""
    if sources is None:
        order = list(mixture_config.PAPER_SOURCES)
        used = {s for w in weights for s, v in w.items() if v > 0}
        sources = [s for s in order if s in used] + sorted(used - set(order))
    srcs = list(sources)
    w = np.array([[float(row.get(s, 0.0)) for s in srcs] for row in weights], dtype=np.float64)
    if np.any(w < 0) or np.any(w.sum(axis=1) <= 0):
        raise ValueError("source weights must be non-negative with a positive total")
    return w / w.sum(axis=1, keepdims=True), srcs


def _rate_matrix(sources: Sequence[str]) -> np.ndarray:
    """[k, 2]: the table-4 combination rates (%) of the sources, so that weights @ R gives the
    derived (reasoning %, visual %)."""
    missing = [s for s in sources if s not in mixture_config.TABLE4_RATES]
    if missing:
        raise ValueError(f"no table-4 label rates for {missing}: derived shares unavailable")
    return np.array([mixture_config.derived_shares({s: 1.0}) for s in sources])


def _with_shares(surface: Surface, sources: Sequence[str], level: float) -> Surface:
    try:
        rates = _rate_matrix(sources)
    except ValueError:
        surface.notes.append("derived shares unavailable: a source has no table-4 rates")
        return surface
    opt = np.array([surface.optimum[s] for s in sources])
    surface.shares = dict(zip(SHARE_AXES, (opt @ rates).tolist()))
    if surface.draws is not None and len(surface.draws):
        lo, hi = percentile_interval(surface.draws @ rates, level)
        surface.share_interval = {a: (float(lo[i]), float(hi[i])) for i, a in enumerate(SHARE_AXES)}
    return surface


def _ridge_loo(w: np.ndarray, y: np.ndarray, alphas: np.ndarray) -> tuple[float, float]:
    """(alpha, LOO mean squared error) of a ridge with intercept on centred inputs."""
    best = (float(alphas[0]), float("inf"))
    wc = w - w.mean(axis=0)
    yc = y - y.mean()
    n = len(y)
    for a in alphas:
        h = wc @ np.linalg.solve(wc.T @ wc + a * np.eye(w.shape[1]), wc.T) + 1.0 / n
        e = (yc - (h - 1.0 / n) @ yc) / (1.0 - np.diag(h))
        mse = float(np.mean(e * e))
        if mse < best[1]:
            best = (float(a), mse)
    return best


def _fit_scheffe_ridge(w: np.ndarray, y: np.ndarray, sources: list[str], *, n_boot: int,
                       level: float, seed: int) -> Surface:
    n, k = w.shape
    alphas = np.logspace(-8, 1, 46)
    alpha, loo = _ridge_loo(w, y, alphas)
    wm = w.mean(axis=0)
    wc = w - wm
    inv = np.linalg.inv(wc.T @ wc + alpha * np.eye(k))

    def coef(yy: np.ndarray) -> np.ndarray:
        """Scheffe blending coefficients beta (one per source) of a ridge fit to yy."""
        gamma = inv @ wc.T @ (yy - yy.mean(axis=-1, keepdims=True)).T
        return (yy.mean(axis=-1) - wm @ gamma) + gamma  # sum_s w_s = 1 absorbs the intercept

    beta = coef(y[None, :])[:, 0]
    fitted = w @ beta
    resid = y - fitted
    hat = wc @ inv @ wc.T + 1.0 / n
    df = float(np.trace(hat))
    s2 = float(resid @ resid / (n - df)) if n > df else float("nan")
    cov = s2 * inv @ (wc.T @ wc) @ inv
    notes = ["Scheffe linear blend: its maximum over the hull is one of the sampled recipes"]
    if alpha in (alphas[0], alphas[-1]):
        notes.append(f"ridge penalty at the end of its search range ({alpha:g})")
    region = SampledRegion(w)
    i_best = int(np.argmax(fitted))
    draws_x, draws_v = np.empty((0, k)), np.empty(0)
    if n_boot > 0 and n > df:
        rng = np.random.default_rng(seed)
        r = (resid - resid.mean()) * math.sqrt(n / (n - df))
        ystar = fitted[None, :] + r[rng.integers(0, n, size=(n_boot, n))]
        preds = w @ coef(ystar)  # [n, draws]
        best = np.argmax(preds, axis=0)
        draws_x, draws_v = w[best], preds[best, np.arange(n_boot)]
    loc = percentile_interval(draws_x, level) if len(draws_v) else np.full((2, k), np.nan)
    val = percentile_interval(draws_v, level) if len(draws_v) else np.full(2, np.nan)
    params = {"terms": sources, "coefficients": beta, "covariance_of_deviations": cov,
              "alpha": alpha, "loo_mse": loo, "effective_df": df,
              "residual_sd": math.sqrt(s2) if math.isfinite(s2) else s2, "n_points": n,
              "best_sampled_index": i_best}
    return Surface(
        "Scheffe linear + ridge", sources, dict(zip(sources, w[i_best].tolist())),
        float(fitted[i_best]),
        {s: (float(loc[0, i]), float(loc[1, i])) for i, s in enumerate(sources)},
        (float(val[0]), float(val[1])), level, len(draws_v),
        f"residual bootstrap ({len(draws_v)} draws, penalty fixed), percentile",
        region.describe(), params, notes, draws=draws_x, predict=lambda a: np.atleast_2d(a) @ beta)


def share_spread(weights: Sequence[Mapping[str, float]]) -> float:
    """Second over first singular value of the recipes' centred derived shares: near 0 when
    the shares lie close to a line, so a quadratic across that line is not pinned down."""
    w, srcs = weight_matrix(weights)
    shares = w @ _rate_matrix(srcs)
    s = np.linalg.svd(shares - shares.mean(axis=0), compute_uv=False)
    return float(s[1] / s[0]) if s[0] > 0 else 0.0


def fit_source_quadratic(weights: Sequence[Mapping[str, float]], y: Any, *,
                         form: str = "auto", sources: Sequence[str] | None = None,
                         n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> Surface:
    """Reduced quadratic-family surface over source weights (see the module notes) and the
    best mixture in the hull of the sampled recipes, with its derived shares.

    ``form="auto"`` takes ``derived_shares`` when the recipes' derived shares spread in two
    directions (``share_spread`` >= ``MIN_SHARE_SPREAD``) and ``reasoning_share`` otherwise.
    """
    w, srcs = weight_matrix(weights, sources)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    notes = []
    if form == "auto":
        spread = share_spread(weights)
        form = "derived_shares" if spread >= MIN_SHARE_SPREAD else "reasoning_share"
        notes.append(f"form {form}: the derived shares' singular-value ratio is {spread:.3f} "
                     f"(two dimensions need >= {MIN_SHARE_SPREAD})")
    if form in ("derived_shares", "reasoning_share"):
        rates = _rate_matrix(srcs)
        one = form == "reasoning_share"
        surf = fit_quadratic(w, y, names=srcs, transform=rates[:, :1] if one else rates,
                             transform_names=SHARE_AXES[:1] if one else SHARE_AXES,
                             n_boot=n_boot, level=level, seed=seed)
        surf.method = ("quadratic in the derived reasoning share (OLS)" if one else
                       "quadratic in derived (reasoning %, visual %) shares (OLS)")
        surf.notes.append("weights enter only through the derived shares: the best weights are "
                          "one of the mixtures in the hull with those shares")
    elif form == "scheffe_ridge":
        surf = _fit_scheffe_ridge(w, y, srcs, n_boot=n_boot, level=level, seed=seed)
    else:
        raise ValueError(f"unknown form {form!r}; valid: {', '.join(SURFACE_FORMS)}")
    surf.notes = notes + surf.notes
    return _with_shares(surf, srcs, level)


def fit_source_gp(weights: Sequence[Mapping[str, float]], y: Any, *,
                  sources: Sequence[str] | None = None, level: float = LEVEL,
                  **kw: Any) -> Surface:
    """GP over source weights (isotropic RBF) and the best mixture in the recipes' hull."""
    w, srcs = weight_matrix(weights, sources)
    surf = fit_gp(w, y, names=srcs, ard=False, level=level, **kw)
    return _with_shares(surf, srcs, level)


# ---------------------------------------------------------------------------------------------
# Printing


def _fmt_surface(s: Surface, pct_weights: bool = False) -> str:
    mult = 100.0 if pct_weights else 1.0
    loc = ", ".join(f"{k} {s.optimum[k] * mult:.1f} [{s.location_interval[k][0] * mult:.1f}, "
                    f"{s.location_interval[k][1] * mult:.1f}]" for k in s.inputs)
    line = (f"  {s.method}: optimum {loc}; value {s.value:.3f} "
            f"[{s.value_interval[0]:.3f}, {s.value_interval[1]:.3f}] "
            f"({s.level:.0%} {s.interval_method})")
    if s.shares:
        line += ("\n    derived shares " + ", ".join(
            f"{k} {v:.1f}" + (f" [{s.share_interval[k][0]:.1f}, {s.share_interval[k][1]:.1f}]"
                              if s.share_interval else "") for k, v in s.shares.items()))
    for note in s.notes:
        line += f"\n    note: {note}"
    return line


def _paper_summary(paper_dir: Path) -> None:
    x, y = read_table1(paper_dir / "table1_grid.csv")
    best = int(np.argmax(y))
    print(f"Table 1 ({len(y)} cells; best cell {x[best, 0]:g}/{x[best, 1]:g} at {y[best]:g}); "
          "search region: convex hull of the cells")
    q = fit_quadratic(x, y, names=SHARE_AXES)
    print(_fmt_surface(q))
    print(f"    stationary point {q.params['stationary_point']} ({q.params['stationary_kind']}), "
          f"R^2 {q.params['r_squared']:.3f}, residual sd {q.params['residual_sd']:.3f}")
    g = fit_gp(x, y, names=SHARE_AXES)
    print(_fmt_surface(g))
    print(f"    kernel {g.params['kernel']}")

    rows = read_table2(paper_dir / "table2_mixtures.csv")
    ws, v = [r["weights"] for r in rows], np.array([r["v_acc"] for r in rows])
    print(f"\nTable 2 v_acc over source weights ({len(rows)} recipes); weights in %")
    for form in SURFACE_FORMS:
        print(_fmt_surface(fit_source_quadratic(ws, v, form=form), pct_weights=True))
    print(_fmt_surface(fit_source_gp(ws, v), pct_weights=True))

    print("\nTable 2 trade-off (t_acc up, ppl down, v_acc up)")
    for rule in RANK_RULES:
        t = tradeoff(rows, rule)
        if rule == RANK_RULES[0]:
            print(f"  Pareto front: {', '.join(t['pareto_front'])}")
        a = t["agreement"]
        print(f"  rule {rule}: ranks {dict(zip(t['runs'], t['ranks']))}")
        print(f"    vs paper: Spearman {a['spearman']:.3f} (p {a['spearman_p']:.3g}), "
              f"Kendall {a['kendall']:.3f}, exact {a['exact']}/{a['n']}, "
              f"mean |diff| {a['mean_abs_difference']:.2f}")


def main(argv: Sequence[str] | None = None) -> None:
    """Print the response-surface optima and the ranking agreement on the paper's tables and,
    given run records, on them."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paper_dir", nargs="?", help="folder with table1_grid.csv and table2_mixtures.csv")
    ap.add_argument("--results", help="records: collect's JSON or the exported .parquet/.csv")
    ap.add_argument("--metric", default="overall", help="response key of the records")
    args = ap.parse_args(argv)
    if args.paper_dir:
        _paper_summary(Path(args.paper_dir))
    if args.results:
        records = as_records(args.results)
        x, y, names = share_data(records, args.metric)
        print(f"\nRuns: {len(names)} with (reasoning %, visual %) and {args.metric}")
        for fit in (fit_quadratic, fit_gp):
            try:
                print(_fmt_surface(fit(x, y, names=SHARE_AXES)))
            except ValueError as e:  # too few distinct mixtures for this fit
                print(f"  {fit.__name__}: not possible: {e}")
        t = tradeoff(records)
        print(f"  Pareto front: {', '.join(t['pareto_front']) or '(no run has all three)'}")


if __name__ == "__main__":
    main()
