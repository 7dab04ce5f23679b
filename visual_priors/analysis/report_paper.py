"""The paper's figures and tables in a study's report, each drawn only when the runs support it.

Every section is a heading followed by its figure (a PNG beside report.html), its tables and
its numbers (unrounded, in analysis.json), or by a one-line note saying what is missing:

- **Scaling law** (Fig. 2): per series (the runs' ``mixture``) with at least
  ``scaling.MIN_LOSS_POINTS`` runs carrying params, tokens and a final loss, at >= 2 model sizes
  and >= 2 token budgets, one size trained at >= 2 budgets (otherwise N and D are confounded):
  ``scaling.fit_chinchilla`` from the ``SCREENED_STARTS`` starts of its coarse grid with the
  lowest objective, a bootstrap over runs for intervals, the compute-optimal exponents and the
  fitted curves against the points.
- **Extrapolation to the next scale** per category: the direct accuracy-vs-FLOPs curve of every
  series with runs at >= 2 model sizes, and the two-step form (loss surface, then accuracy of
  loss) where the loss surface was fitted (``scaling.extrapolate_curve`` /
  ``extrapolate_two_step``).
- **Decision accuracy** (DataDecide) when >= 2 series each have runs at >= 2 scales.
- **Category proportion sweeps** (Fig. 4): runs whose text mixture is
  ``category:<label>=<percent>``.
- **Mixture grid** (Table 1): runs whose text mixture is ``grid:reasoning=R,visual=V``, with the
  quadratic and Gaussian-process optima (``surfaces``) over ``mixtures.SHARE_AXES``.
- **Trade-off** (Table 2): runs with language metrics; Pareto front and the ranking rules of
  ``tradeoff``.
- **Spearman structure** (Fig. 5): category scores of the runs at one scale (the paper's 105
  3B runs), >= ``MIN_SPEARMAN_RUNS`` of them, beside the paper's matrix when its CSV is found.
- **Alignment** (Fig. 11): ``alignment.score`` against the reasoning share of each run's text,
  PRH's metric table and the colour probe (``alignment.colour``) when present.

Sections that compare runs across mixtures (grid, Spearman) use the runs of the most common
scale when several are present (ties: the larger), the trade-off those of the most common
(scale, token budget), and say so.

Cost: the report keeps the surfaces' and the Spearman analysis's bootstrap defaults (they are
cheap) and uses ``CHINCHILLA_N_BOOT`` and ``EXTRAPOLATION_N_BOOT`` resamples for the loss
surface and the extrapolations, fewer than ``scaling``'s defaults; with the screened starts
this keeps a report of ~50 runs to seconds. The page states the counts used.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visual_priors.analysis import (curves, mixtures, paper_plots, scaling, structure, surfaces,
                                    tradeoff)
from visual_priors.analysis import report_format as fmt
from visual_priors.analysis.curves import OVERALL, CurveFit
from visual_priors.analysis.records import float_value, unflatten

# The paper's Fig. 5 matrix, in the shared folder beside the repository; absent on most machines.
PAPER_SPEARMAN_CSV = Path(__file__).resolve().parents[3] / "shared" / "paper" / "fig5_spearman.csv"
CHINCHILLA_N_BOOT = 50
EXTRAPOLATION_N_BOOT = 50
# L-BFGS-B runs from this many of the coarse grid's 243 starts (those with the lowest objective).
SCREENED_STARTS = 16
# Bootstrap refits start from the full-data optimum and this many of those starts (the loss
# surface's intervals) or from the optimum alone (the extrapolations, refitted with every map).
BOOT_STARTS = 1
EXTRAPOLATION_BOOT_STARTS = 0
MIN_SPEARMAN_RUNS = 4


@dataclasses.dataclass
class Section:
    """One section of the page: its anchor, title, HTML, numbers for analysis.json, and files."""

    key: str
    title: str
    html: str
    data: dict[str, Any]
    files: list[str] = dataclasses.field(default_factory=list)

    @property
    def shown(self) -> bool:
        """Whether the section has a figure (a note alone otherwise)."""
        return bool(self.files)


def _section(key: str, title: str, parts: Sequence[str], data: Mapping[str, Any] | None = None,
             files: Sequence[str] = ()) -> Section:
    body = "\n".join([f'<h2 id="{key}">{fmt.esc(title)}</h2>', *parts])
    return Section(key, title, body, dict(data or {}), list(files))


def _note(key: str, title: str, text: str) -> Section:
    return _section(key, title, [fmt.missing(fmt.esc(text))], {"missing": text})


# ---------------------------------------------------------------------------------------------
# Selecting runs


def main_scale(runs: Sequence[Mapping[str, Any]], *,
               by_tokens: bool = False) -> tuple[str | None, list, str]:
    """(scale, its runs, a note) for the most common scale (ties: the larger), or with
    ``by_tokens`` the most common (scale, token budget) pair; the note says what was left out,
    empty when nothing was."""
    def key(r: Mapping[str, Any]) -> tuple[str, float]:
        tokens = float_value(r, "tokens") if by_tokens else 0.0
        return str(r.get("scale")), tokens if math.isfinite(tokens) else -1.0  # -1: not reported

    counts = Counter(key(r) for r in runs)
    if not counts:
        return None, [], ""
    order = curves.scales_of(runs)
    best = max(counts, key=lambda k: (counts[k], order.index(k[0]), k[1]))
    kept = [r for r in runs if key(r) == best]
    what = f"scale {best[0]}"
    if by_tokens and best[1] >= 0:
        what += f" and {fmt.count(best[1])} tokens"
    note = (f"Runs at {what} only ({len(kept)} of {len(runs)}), the most common; the others "
            "are left out." if len(kept) < len(runs) else "")
    return best[0], kept, note


def _series_scales(results: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, set] = {}
    for r in results:
        out.setdefault(str(r.get("mixture")), set()).add(str(r.get("scale")))
    order = curves.scales_of(results)
    return {m: [s for s in order if s in ss] for m, ss in out.items()}


# ---------------------------------------------------------------------------------------------
# Scaling law, extrapolation, decision accuracy


def loss_points(runs: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """[n, 3] (params, tokens, final loss) of the runs that have all three, positive."""
    pts = [[float_value(r, k) for k in ("params", "tokens", "final_loss")] for r in runs]
    pts = [p for p in pts if all(math.isfinite(v) and v > 0 for v in p)]
    return np.array(pts, dtype=np.float64).reshape(-1, 3)


def loss_design_gap(points: np.ndarray) -> str | None:
    """Why these (N, D, L) points cannot support a loss-surface fit; None when they can."""
    n, d = points[:, 0], points[:, 1]
    if len(points) < scaling.MIN_LOSS_POINTS:
        return f"{len(points)} run(s) with a final loss (needs {scaling.MIN_LOSS_POINTS})"
    if len(np.unique(n)) < 2:
        return "one model size"
    if len(np.unique(d)) < 2:
        return "one token budget"
    if not any(len(np.unique(d[n == s])) >= 2 for s in np.unique(n)):
        return "every model size trained at a single budget (N and D confounded)"
    return None


def screened_starts(points: np.ndarray, k: int = SCREENED_STARTS) -> np.ndarray:
    """The ``k`` starts of scaling's coarse grid with the lowest Huber objective on the points.

    On the fixture studies and on Hoffmann et al.'s points, L-BFGS-B from the best 16 reaches
    the optimum of all 243 at a tenth of the cost.
    """
    starts = scaling.start_grid("coarse")
    log_n, log_d, log_y = np.log(points).T
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.array([scaling.huber_objective(s, log_n, log_d, log_y)[0] for s in starts])
    values = np.where(np.isfinite(values), values, np.inf)
    return starts[np.argsort(values, kind="stable")[:k]]


def _chinchilla_table(fit: scaling.ChinchillaFit) -> str:
    iv, se = fit.intervals(), fit.standard_errors
    rows = []
    for k in (*scaling.PARAM_NAMES, "n_opt_exponent", "d_opt_exponent"):
        lo, hi = iv.get(k, (math.nan, math.nan))
        rows.append([fmt.esc(k), fmt.num(getattr(fit, k)), fmt.num(se.get(k)), fmt.interval(lo, hi)])
    return fmt.table(["parameter", "estimate", "bootstrap SE", f"{fit.level:.0%} interval"], rows)


def _scaling_law(results, out: Path, seed: int) -> tuple[list[str], dict, list[str], dict]:
    """(HTML parts, data, files, fits by series) of the loss-surface fits."""
    fits, gaps, panels = {}, {}, []
    for mix in curves.mixtures_of(results):
        pts = loss_points([r for r in results if str(r.get("mixture")) == mix])
        gap = loss_design_gap(pts)
        if gap is not None:
            gaps[mix] = gap
            continue
        fit = scaling.fit_chinchilla(*pts.T, grid=screened_starts(pts), n_boot=CHINCHILLA_N_BOOT,
                                     boot_starts=BOOT_STARTS, seed=seed)
        fits[mix] = fit
        panels.append((mix, fit, pts))
    data = {"fits": {m: f.to_dict() for m, f in fits.items()}, "not_fitted": gaps}
    listed = list(gaps.items())[:6]
    why = "; ".join(f"{m}: {g}" for m, g in listed) + (
        f"; and {len(gaps) - len(listed)} more" if len(gaps) > len(listed) else "")
    if not fits:
        return [fmt.missing(fmt.esc(
            "No loss-surface fit: no series has runs at ≥ 2 model sizes and ≥ 2 token budgets "
            f"with a final loss ({why})."))], data, [], fits
    name = "scaling_law.png"
    paper_plots.loss_surface_plot(panels, out / name)
    parts = [f'<p>Fitted form: <span class="form">{fmt.esc(scaling.LOSS_FORM)}</span></p>',
             '<p class="note">Fitted as Epoch did (Besiroglu et al. 2024): log-sum-exp parameters, '
             f"Huber loss (delta {scaling.HUBER_DELTA:g}) on log residuals, L-BFGS-B in float64 "
             f"from the {SCREENED_STARTS} starts of the coarse 243-start grid with the lowest "
             "objective (on the fixture studies and Hoffmann et al.'s points they reach the full "
             "grid's optimum). Intervals: percentile bootstrap over runs with "
             f"{CHINCHILLA_N_BOOT} resamples in this report (scaling's default is "
             f"{scaling.CHINCHILLA_N_BOOT}), each refitted from the full-data optimum and "
             f"{BOOT_STARTS} of those starts. Compute-optimal allocation under C = 6ND: "
             "N<sub>opt</sub> ∝ C<sup>a</sup>, D<sub>opt</sub> ∝ C<sup>b</sup> with "
             "a = beta/(alpha+beta), b = alpha/(alpha+beta). Values unrounded.</p>",
             fmt.image(name, "Final loss against tokens with the fitted loss surface")]
    for mix, fit in fits.items():
        parts.append(f"<h3>{fmt.esc(mix)}</h3>")
        parts.append(f'<p class="note">{fit.n_points} runs, {fit.n_converged}/{fit.n_starts} '
                     f"starts converged, objective {fmt.num(fit.objective)}, "
                     f"{fit.n_boot} bootstrap refits. {fmt.esc(fit.note)}</p>")
        parts.append(_chinchilla_table(fit))
    if gaps:
        parts.append(f'<p class="note">Series without a fit: {fmt.esc(why)}.</p>')
    return parts, data, [name], fits


def _extrapolation(results, curve_fits: Sequence[CurveFit], loss_fits: Mapping[str, Any],
                   seed: int) -> tuple[list[str], dict]:
    multi = [m for m, ss in _series_scales(results).items() if len(ss) >= 2]
    if not multi:
        text = "No extrapolation: no series has runs at ≥ 2 model sizes."
        return [fmt.missing(fmt.esc(text))], {"missing": text}
    runs = [r for r in results if str(r.get("mixture")) in multi]
    try:
        target = scaling.next_scale_target(runs)
    except ValueError as e:
        text = f"No extrapolation target: {e}."
        return [fmt.missing(fmt.esc(text))], {"missing": text}
    cats = curves.categories_of(runs) + [OVERALL]
    preds: list[scaling.Extrapolation] = []
    for f in curve_fits:
        if f.mixture in multi and f.category in cats and f.variable == "flops":
            preds.append(scaling.extrapolate_curve(f, target, n_boot=EXTRAPOLATION_N_BOOT, seed=seed))
    for mix, fit in loss_fits.items():
        if mix not in multi:
            continue
        mix_runs = [r for r in runs if str(r.get("mixture")) == mix]
        # The surface is already fitted: its optimum is the only start needed, and the
        # resamples refit from it (EXTRAPOLATION_BOOT_STARTS more starts).
        two = scaling.fit_two_step(mix_runs, categories=cats, mixture=mix, grid=fit.theta[None, :])
        preds += scaling.extrapolate_two_step(two, target, n_boot=EXTRAPOLATION_N_BOOT, seed=seed,
                                              boot_starts=EXTRAPOLATION_BOOT_STARTS)
    groups: dict[tuple[str, str], dict[str, scaling.Extrapolation]] = {}
    for p in preds:
        groups.setdefault((str(p.mixture), p.method), {})[p.quantity] = p
    has_loss = any("final_loss" in g for g in groups.values())
    head = ["series", "method"] + (["final loss"] if has_loss else []) + [
        fmt.esc(curves.category_label(c)) for c in cats]
    rows = []
    for (mix, method), g in sorted(groups.items(), key=lambda kv: (curves.natural_key(kv[0][0]), kv[0][1])):
        row = [fmt.esc(mix), fmt.esc(method)]
        if has_loss:
            p = g.get("final_loss")
            row.append(f"{fmt.plain(p.value, 5)} {fmt.interval(p.lo, p.hi, lambda v: fmt.plain(v, 5))}"
                       if p else "—")
        for c in cats:
            p = g.get(c)
            row.append(f"{fmt.pct(p.value)} {fmt.interval(p.lo, p.hi, fmt.pct)}" if p else "—")
        rows.append(row)
    parts = [f"<h3>Extrapolation to {fmt.esc(target.label)}</h3>",
             f'<p class="note">Target: N = {fmt.count(target.params)} parameters, D = '
             f"{fmt.count(target.tokens)} tokens (the tokens per parameter of the most-trained run "
             f"at the largest scale), C = {fmt.sci(target.flops)} FLOPs. Accuracy in %, with "
             f"{scaling.LEVEL:.0%} percentile intervals from {EXTRAPOLATION_N_BOOT} bootstrap "
             f"resamples (scaling's default is {scaling.N_BOOT}; two-step refits start from the "
             "full-data optimum). "
             "<i>curve:flops</i> extrapolates each series' accuracy-vs-FLOPs curve; <i>two-step</i> "
             "predicts the loss from L(N, D), then accuracy from loss.</p>",
             fmt.long_table(head, rows, left=2)]
    return parts, {"target": dataclasses.asdict(target), "predictions": [p.to_dict() for p in preds]}


def _decision_accuracy(results) -> tuple[list[str], dict]:
    multi = [m for m, ss in _series_scales(results).items() if len(ss) >= 2]
    if len(multi) < 2:
        text = ("No decision accuracy: it needs ≥ 2 series each with runs at ≥ 2 scales "
                f"({len(multi)} here).")
        return [fmt.missing(fmt.esc(text))], {"missing": text}
    runs = [r for r in results if str(r.get("mixture")) in multi]
    cats = curves.categories_of(runs) + [OVERALL]
    table: dict[tuple[str, str, bool], dict[str, scaling.DecisionAccuracy]] = {}
    out = []
    for c in cats:
        for predicted in (False, True):
            for d in scaling.decision_accuracy(runs, c, predicted=predicted):
                table.setdefault((d.scale, d.target_scale, predicted), {})[c] = d
                out.append(d.to_dict())
    head = ["small scale", "target", "scores"] + [fmt.esc(curves.category_label(c)) for c in cats]
    rows = []
    for (small, target, predicted), by_cat in table.items():
        rows.append([fmt.esc(small), fmt.esc(target), "curve at target FLOPs" if predicted else "observed"]
                    + [f"{fmt.plain(by_cat[c].accuracy, 3)} ({by_cat[c].n_pairs} pairs)"
                       if c in by_cat else "—" for c in cats])
    parts = ["<h3>Decision accuracy</h3>",
             '<p class="note">DataDecide (Magnusson et al. 2025): the fraction of series pairs '
             "whose order at the small scale matches the order at the target (largest) scale; a "
             "small-scale tie counts 1/2. <i>observed</i> ranks by the small scale's scores, "
             "<i>curve at target FLOPs</i> by each series' accuracy curve fitted on the runs up to "
             "that scale and evaluated at its target-scale FLOPs. Series: "
             + fmt.esc(", ".join(multi)) + ".</p>",
             fmt.table(head, rows, left=3)]
    return parts, {"series": multi, "decision_accuracy": out}


def scaling_section(results: Sequence[Mapping[str, Any]], out: Path,
                    curve_fits: Sequence[CurveFit] = (), *, seed: int = 0) -> Section:
    """Loss surface, compute-optimal exponents, extrapolation and decision accuracy."""
    parts, data, files, fits = _scaling_law(results, out, seed)
    ex_parts, ex_data = _extrapolation(results, curve_fits, fits, seed)
    da_parts, da_data = _decision_accuracy(results)
    data.update(extrapolation=ex_data, decision=da_data,
                n_boot={"chinchilla": CHINCHILLA_N_BOOT, "extrapolation": EXTRAPOLATION_N_BOOT})
    return _section("scaling", "Scaling law, extrapolation, decision accuracy",
                    parts + ex_parts + da_parts, data, files)


# ---------------------------------------------------------------------------------------------
# Category proportion sweeps (Fig. 4)


def adaptation_of(r: Mapping[str, Any]) -> tuple[str, str]:
    """(encoder, SFT set) of a run: how its LLM became an MLLM."""
    return str(r.get("encoder")), str(r.get("sft_set"))


def proportion_section(results: Sequence[Mapping[str, Any]], out: Path) -> Section:
    key, title = "proportions", "Category proportion sweeps (Fig. 4)"
    swept = [(mix, r) for r in results
             if (mix := mixtures.mixture_of(r)) is not None and mix.kind == "category"]
    if not swept:
        return _note(key, title, "No run's text mixture is a category sweep "
                                 "(category:<label>=<percent>).")
    # Runs that share a text mixture but not the encoder or SFT set (the encoder study reuses
    # the reasoning sweep's LLMs) are a sweep of their own, named by what differs.
    common = Counter(adaptation_of(r) for _, r in swept).most_common(1)[0][0]
    sweeps: dict[str, list] = {}
    for mix, r in swept:
        differs = [f"{what} {v}" for what, v, c in zip(("encoder", "SFT"), adaptation_of(r), common) if v != c]
        name = f"{mix.label} ({', '.join(differs)})" if differs else mix.label
        sweeps.setdefault(name, []).append((float(mix.percent), r))
    sweeps = dict(sorted(sweeps.items()))
    cats = curves.categories_of([r for pts in sweeps.values() for _, r in pts])
    name = "proportion_sweeps.png"
    paper_plots.proportion_sweep_plot(sweeps, cats, out / name)
    all_cats = cats + [OVERALL]
    head = ["label", "share (%)", "run", "scale"] + [fmt.esc(curves.category_label(c)) for c in all_cats]
    rows, data = [], {}
    for label, pts in sweeps.items():
        for p, r in sorted(pts, key=lambda t: (t[0], curves.natural_key(str(t[1].get("scale"))))):
            rows.append([fmt.esc(label), fmt.plain(p), fmt.esc(r.get("run")), fmt.esc(r.get("scale"))]
                        + [fmt.pm(curves.accuracy_of(r, c), curves.category_se(r, c)) for c in all_cats])
            data.setdefault(label, []).append(
                {"percent": p, "run": r.get("run"), "scale": r.get("scale"), "encoder": r.get("encoder"),
                 "sft_set": r.get("sft_set"),
                 **{c: curves.accuracy_of(r, c) for c in all_cats}})
    parts = ['<p class="note">Each run draws the label\'s share of its tokens from segments '
             "carrying the label and the rest from segments without it. Accuracy in %, ± one "
             "binomial standard error.</p>",
             fmt.image(name, "Accuracy per category against each label's share"),
             fmt.long_table(head, rows, left=4, what="runs")]
    return _section(key, title, parts, {"sweeps": data}, [name])


# ---------------------------------------------------------------------------------------------
# The mixture grid (Table 1)


def _surface_row(name: str, s: surfaces.Surface) -> list[str]:
    (rlo, rhi), (vlo, vhi) = s.location_interval["reasoning_pct"], s.location_interval["visual_pct"]
    return [fmt.esc(name), fmt.num(s.optimum["reasoning_pct"]), fmt.interval(rlo, rhi),
            fmt.num(s.optimum["visual_pct"]), fmt.interval(vlo, vhi), fmt.pct(s.value),
            fmt.interval(*s.value_interval, fmt.pct), fmt.esc(s.interval_method),
            f'<span class="note">{fmt.esc("; ".join(s.notes))}</span>']


def grid_section(results: Sequence[Mapping[str, Any]], out: Path, *, seed: int = 0) -> Section:
    key, title = "grid", "Mixture grid: reasoning × visual shares (Table 1)"
    grid_runs = [r for r in results if (m := mixtures.mixture_of(r)) is not None and m.kind == "grid"
                 and math.isfinite(curves.accuracy_of(r, OVERALL))]
    if not grid_runs:
        return _note(key, title, "No run's text mixture is a grid cell (grid:reasoning=R,visual=V).")
    scale, runs, scale_note = main_scale(grid_runs)
    x, y, names = mixtures.share_data(runs, OVERALL)
    cells: dict[tuple[float, float], list[float]] = {}
    for (r, v), acc in zip(x.tolist(), y.tolist()):
        cells.setdefault((r, v), []).append(acc)
    if len(cells) < 2:
        return _note(key, title, f"Grid runs sample {len(cells)} cell at scale {scale}: nothing "
                                 "to map.")
    cell_x = np.array(list(cells), dtype=np.float64)
    cell_y = np.array([np.mean(a) for a in cells.values()])
    optima, data, notes = [], {"scale": scale, "cells": [
        {"reasoning_pct": r, "visual_pct": v, "overall": float(np.mean(a)), "n_runs": len(a)}
        for (r, v), a in cells.items()]}, []
    fitters = (("quadratic", surfaces.fit_quadratic, {"seed": seed}),
               ("Gaussian process", surfaces.fit_gp, {}))
    for label, fit, kw in fitters:
        try:
            s = fit(x, y, names=mixtures.SHARE_AXES, **kw)
        except ValueError as e:  # too few distinct cells for this surface
            notes.append(f"{label} surface not fitted: {e}")
            continue
        optima.append((label, s))
        data[label] = s.to_dict()
    name = "grid.png"
    paper_plots.grid_heatmap(cell_x[:, 0], cell_x[:, 1], cell_y, optima, out / name)
    rs, vs = np.unique(cell_x[:, 0]), np.unique(cell_x[:, 1])
    lookup = {(r, v): a for (r, v), a in zip(map(tuple, cell_x.tolist()), cell_y.tolist())}
    cell_rows = [[fmt.plain(r)] + [fmt.pct(lookup.get((r, v))) for v in vs] for r in rs]
    parts = [f'<p class="note">Overall accuracy (%) of each cell at scale {fmt.esc(scale)} '
             f"({len(runs)} runs; cells sampled more than once show the mean). "
             + fmt.esc(scale_note) + " Optima are searched inside the convex hull of the sampled "
             f"cells; intervals are {surfaces.LEVEL:.0%} percentile intervals (quadratic: residual "
             f"bootstrap, {surfaces.N_BOOT} draws; GP: {surfaces.N_SAMPLES} posterior draws). The "
             "paper's optimum is 60 % reasoning, 15 % visual.</p>",
             fmt.image(name, "Heat map of overall accuracy over the mixture grid with the optima"),
             fmt.table(["reasoning % \\ visual %"] + [fmt.plain(v) for v in vs], cell_rows)]
    if optima:
        parts.append(fmt.table(["surface", "reasoning %", "interval", "visual %", "interval",
                                "value (%)", "interval", "interval method", "notes"],
                               [_surface_row(n, s) for n, s in optima]))
    parts += [f'<p class="note">{fmt.esc(n)}</p>' for n in notes]
    return _section(key, title, parts, data, [name])


# ---------------------------------------------------------------------------------------------
# Trade-off (Table 2)


def tradeoff_section(results: Sequence[Mapping[str, Any]], out: Path) -> Section:
    key, title = "tradeoff", "Language against vision: trade-off (Table 2)"
    lang = [r for r in results if math.isfinite(float_value(r, "language.avg_acc"))]
    if len(lang) < 2:
        return _note(key, title, f"{len(lang)} run(s) report language metrics (language.avg_acc); "
                                 "the trade-off needs ≥ 2 (the language step).")
    scale, runs, scale_note = main_scale(lang, by_tokens=True)
    ranked = {rule: tradeoff.tradeoff(runs, rule) for rule in tradeoff.RANK_RULES}
    base = ranked[tradeoff.RANK_RULES[0]]
    if len(base["runs"]) < 2:
        return _note(key, title, "Fewer than 2 runs have text accuracy, perplexity and VQA accuracy.")
    obj = base["objectives"]
    front = set(base["pareto_front"])
    name = "tradeoff.png"
    paper_plots.tradeoff_plot(base["runs"], obj["t_acc"], obj["ppl"], obj["v_acc"],
                              [n in front for n in base["runs"]], out / name)
    order = sorted(range(len(base["runs"])), key=lambda i: (base["ranks"][i], base["runs"][i]))
    head = ["run", "text acc (%)", "perplexity", "VQA acc (%)", "Pareto front"] + [
        f"rank ({fmt.esc(rule)})" for rule in tradeoff.RANK_RULES]
    rows = [[fmt.esc(base["runs"][i]), fmt.pct(obj["t_acc"][i]), fmt.plain(obj["ppl"][i], 5),
             fmt.pct(obj["v_acc"][i]),
             '<span class="yes">yes</span>' if base["runs"][i] in front else ""]
            + [str(ranked[rule]["ranks"][i]) for rule in tradeoff.RANK_RULES] for i in order]
    parts = [f'<p class="note">{fmt.esc(scale_note)} Text accuracy: the mean zero-shot accuracy of '
             "the language step; perplexity: its mean over WikiText and LAMBADA (the pre-training "
             "perplexity when a run has none); VQA: overall accuracy. The Pareto front holds the "
             "runs that no other run equals or beats on all three while beating on one. Ranking "
             "rules, fixed in advance "
             "(the paper does not state its own): <i>mean_rank</i> averages the three per-metric "
             "ranks, ties broken by the VQA then the text-accuracy rank; <i>vqa_first</i> orders by "
             "VQA, then text accuracy, then perplexity.</p>",
             fmt.image(name, "Text accuracy against VQA accuracy with the Pareto front"),
             fmt.long_table(head, rows, what="runs")]
    if base["left_out"]:
        parts.append(f'<p class="note">{base["left_out"]} run(s) missing an objective left out.</p>')
    return _section(key, title, parts, {"scale": scale, **{r: t for r, t in ranked.items()}}, [name])


# ---------------------------------------------------------------------------------------------
# Spearman structure (Fig. 5)


def spearman_section(results: Sequence[Mapping[str, Any]], out: Path, *,
                     paper_csv: str | Path | None = PAPER_SPEARMAN_CSV, seed: int = 0) -> Section:
    key, title = "spearman", "Correlation structure of the categories (Fig. 5)"
    all_cats = curves.categories_of(results)
    scored = [r for r in results if all(math.isfinite(curves.accuracy_of(r, c)) for c in all_cats)]
    scale, runs, scale_note = main_scale(scored)
    # A category constant over the runs has no rank correlation: left out, and said so.
    cats = [c for c in curves.categories_of(runs)
            if len({curves.accuracy_of(r, c) for r in runs}) > 1]
    constant = [c for c in curves.categories_of(runs) if c not in cats]
    if len(runs) < MIN_SPEARMAN_RUNS or len(cats) < 2:
        where = f" at scale {scale}, the most common" if scale is not None else ""
        return _note(key, title, f"The Spearman structure needs ≥ {MIN_SPEARMAN_RUNS} runs with "
                                 f"every category score at one scale and ≥ 2 categories that vary; "
                                 f"{len(runs)} run(s), {len(cats)} varying categor(ies) here{where}.")
    res = structure.spearman_structure(runs, cats, seed=seed)
    if constant:
        res.notes.append("constant over these runs, left out: "
                         + ", ".join(curves.category_label(c) for c in constant))
    paper = cmp = None
    if paper_csv is not None and Path(paper_csv).is_file():
        paper = structure.read_matrix(paper_csv)
        cmp = structure.compare_with_paper(res, paper)
    name = "spearman.png"
    paper_plots.spearman_plot(cats, res.rho, res.lo, res.hi,
                              f"Ours: {res.n_runs} runs at scale {scale}", out / name, paper=paper)
    head = ["pair", "rho", f"{res.level:.0%} interval", "p-value"]
    if cmp:
        head += ["paper rho", "paper inside our interval"]
    rows = []
    for i in range(len(cats)):
        for j in range(i + 1, len(cats)):
            row = [fmt.esc(f"{curves.category_label(cats[i])} – {curves.category_label(cats[j])}"),
                   fmt.num(res.rho[i, j]), fmt.interval(res.lo[i, j], res.hi[i, j]),
                   fmt.plain(res.p_value[i, j], 3)]
            if cmp:
                pc = cmp["categories"]
                if cats[i] in pc and cats[j] in pc:
                    a, b = pc.index(cats[i]), pc.index(cats[j])
                    inside = bool(cmp["paper_in_interval"][a, b])
                    row += [fmt.plain(cmp["paper"][a, b], 3),
                            '<span class="yes">yes</span>' if inside else '<span class="no">no</span>']
                else:
                    row += ["—", "—"]
            rows.append(row)
    label = lambda group: " + ".join(curves.category_label(c) for c in group)  # noqa: E731
    split = res.clustering.split if res.clustering else ()
    parts = [f'<p class="note">{fmt.esc(scale_note)} Spearman rho between category scores over '
             f"{res.n_runs} runs; {res.level:.0%} percentile intervals from {res.n_boot} bootstrap "
             f"resamples of the runs; p-values: {fmt.esc(res.p_method)}. Clustering: average "
             "linkage on 1 - rho. The paper's matrix is over its 105 3B MLLMs.</p>",
             fmt.image(name, "Spearman correlation matrix of the categories"),
             fmt.table(head, rows),
             f"<p>Clusters (cut in two): {fmt.esc(' | '.join(label(g) for g in split))}; leaf "
             f"order {fmt.esc(', '.join(curves.category_label(c) for c in res.clustering.order))}."
             if res.clustering else "<p>No clustering.</p>"]
    if cmp:
        parts.append(f"<p>The paper's split (General + OCR &amp; Chart | Knowledge + Vision-Centric) "
                     f"{'is' if cmp['split_recovered'] else 'is not'} recovered; the paper's value "
                     f"lies inside our interval for {cmp['n_in_interval']} of {cmp['n_pairs']} pairs "
                     f"(largest |ours - paper| {fmt.plain(cmp['max_abs_difference'], 3)}).</p>")
    else:
        parts.append(fmt.missing(fmt.esc("The paper's matrix (fig5_spearman.csv) is not available "
                                         "here: ours alone.")))
    parts += [f'<p class="note">{fmt.esc(n)}</p>' for n in res.notes + (cmp["notes"] if cmp else [])]
    data = {"scale": scale, "result": res.to_dict(),
            "paper": ({k: v for k, v in cmp.items() if k != "pairs"} | {"csv": str(paper_csv)})
            if cmp else None}
    return _section(key, title, parts, data, [name])


# ---------------------------------------------------------------------------------------------
# Alignment (Fig. 11), PRH's table, the colour probe


def _reasoning_x(record: Mapping[str, Any]) -> tuple[float, str]:
    """(x, series): a category sweep's label share and label; else the derived reasoning share
    and the mixture's kind."""
    mix = mixtures.mixture_of(record)
    if mix is not None and mix.kind == "category":
        return float(mix.percent), mix.label
    return mixtures.shares_of(record)[0], (mix.kind if mix is not None else "other")


def alignment_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The run's ``alignment`` result as a nested dict, from a nested or a flat exported record."""
    a = record.get("alignment")
    return dict(a) if isinstance(a, Mapping) else unflatten(record).get("alignment", {})


def _shuffled(v: Any) -> str:
    if isinstance(v, Mapping):
        mean = v.get("mean", v.get("normalised_mean"))
        sd = v.get("std", v.get("normalised_std"))
        text = fmt.plain(mean, 3) + (f" ± {fmt.plain(sd, 2)}" if fmt.finite(sd) else "")
        return text + (f" (p {fmt.plain(v['p_value'], 2)})" if fmt.finite(v.get("p_value")) else "")
    return fmt.plain(v, 3)


def _colour_table(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    probed = [r for r in runs if isinstance(alignment_of(r).get("colour"), Mapping)]
    if not probed:
        return [fmt.missing("No run reports the colour probe (alignment.colour).")]
    rows = []
    for r in probed:
        c = alignment_of(r)["colour"]
        rows.append([fmt.esc(r.get("run")), fmt.plain(c.get("language_error"), 3),
                     _shuffled(c.get("language_shuffled")), fmt.plain(c.get("vision_error"), 3),
                     _shuffled(c.get("vision_shuffled"))])
    return ["<h3>Colour probe (PRH Fig. 8)</h3>",
            '<p class="note">Normalised alignment error of the MDS embedding against CIELAB after a '
            "similarity fit (0 perfect, 1 no better than the mean); shuffled: the same with the "
            "targets permuted (mean ± sd, permutation p-value).</p>",
            fmt.long_table(["run", "language error", "language shuffled", "vision error",
                            "vision shuffled"], rows, what="runs")]


def alignment_section(results: Sequence[Mapping[str, Any]], out: Path) -> Section:
    key, title = "alignment", "LLM–vision alignment (Fig. 11)"
    runs = [r for r in results if math.isfinite(float_value(r, "alignment.score"))]
    if not runs:
        return _note(key, title, "No run reports an alignment score (alignment.score, from the "
                                 "alignment step).")
    several = len({str(r.get("scale")) for r in runs}) > 1
    series: dict[str, list[tuple[float, float]]] = {}
    sweeps: set[str] = set()  # series of one share swept: drawn as lines, the others as points
    rows, points, unplaced = [], [], []
    metrics = sorted({m for r in runs for m in (alignment_of(r).get("table") or {})})
    for r in sorted(runs, key=lambda r: curves.natural_key(str(r.get("run")))):
        a = alignment_of(r)
        x, name = _reasoning_x(r)
        name = f"{name} ({r.get('scale')})" if several else name
        score = float(a["score"])
        if math.isfinite(x):
            series.setdefault(name, []).append((x, score))
            mix = mixtures.mixture_of(r)
            if mix is not None and mix.kind == "category":
                sweeps.add(name)
        else:
            unplaced.append(str(r.get("run")))
        points.append({"run": r.get("run"), "series": name, "reasoning_pct": x, "score": score})
        rows.append([fmt.esc(r.get("run")), fmt.esc(name), fmt.plain(x), fmt.num(score),
                     fmt.esc(f"{a.get('metric', '?')}@{a.get('topk', '?')}")]
                    + [fmt.plain((a.get("table") or {}).get(m), 4) for m in metrics])
    parts, files = [], []
    if series:
        name = "alignment.png"
        paper_plots.alignment_plot(series, out / name, lines=sweeps)
        files.append(name)
        parts.append(fmt.image(name, "Alignment score against the reasoning share"))
    else:
        parts.append(fmt.missing("No run with an alignment score has a mixture placed on the "
                                 "reasoning axis."))
    parts.insert(0, '<p class="note">Score: the mean over reference vision encoders of the best '
                    "layer-pair mutual k-NN alignment (LSBS: k = 20). x: the label's share for a "
                    "category sweep, otherwise the derived reasoning share of the mixture. PRH's "
                    "metric table: each metric's best layer pair, averaged over references.</p>")
    if unplaced:
        parts.append(f'<p class="note">Not placed on the axis: {fmt.esc(", ".join(unplaced))}.</p>')
    parts.append(fmt.long_table(["run", "series", "x (%)", "score", "metric"]
                                + [fmt.esc(m) for m in metrics], rows, left=2, what="runs"))
    parts += _colour_table(runs)
    colour = {str(r.get("run")): {k: v for k, v in alignment_of(r)["colour"].items()
                                  if k in ("language_error", "language_shuffled", "vision_error",
                                           "vision_shuffled")}
              for r in runs if isinstance(alignment_of(r).get("colour"), Mapping)}
    return _section(key, title, parts, {"points": points, "colour": colour}, files)


# ---------------------------------------------------------------------------------------------
# All of them


def paper_sections(results: Sequence[Mapping[str, Any]], out: Path, *,
                   curve_fits: Sequence[CurveFit] = (), seed: int = 0,
                   paper_spearman: str | Path | None = PAPER_SPEARMAN_CSV) -> list[Section]:
    """Every paper section for these runs, in page order; PNGs are written into ``out``."""
    return [scaling_section(results, out, curve_fits, seed=seed),
            proportion_section(results, out),
            grid_section(results, out, seed=seed),
            tradeoff_section(results, out),
            spearman_section(results, out, paper_csv=paper_spearman, seed=seed),
            alignment_section(results, out)]
