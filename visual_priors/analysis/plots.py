"""Figures of a study's results, written as PNG files.

Figures are drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas attached
directly, so nothing here touches pyplot's global state or the process-wide backend.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from visual_priors.analysis import curves
from visual_priors.analysis.curves import OVERALL, CurveFit

DPI = 110
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p")


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def mixture_colours(mixtures: Sequence[str]) -> dict[str, Any]:
    cmap = colormaps["tab10" if len(mixtures) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(mixtures)}


def scale_markers(scales: Sequence[str]) -> dict[str, str]:
    return {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(scales)}


def study_chance(results: Sequence[Mapping[str, Any]], category: str) -> float:
    vals = [curves.chance_of(r, category) for r in results]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def legend_size(n: int) -> float:
    return 8.0 if n <= 12 else 6.5


def category_plot(results: Sequence[Mapping[str, Any]], category: str,
                  fits: Sequence[CurveFit] | Mapping[Any, CurveFit], path: str | Path) -> Path:
    """Accuracy of one category against pre-training FLOPs, one colour per mixture.

    Points carry binomial error bars and one marker shape per scale; each mixture's fitted
    curve and bootstrap band are drawn where they exist, with the chance line dashed and the
    image-withheld (blind) accuracy as hollow markers when runs report it.
    """
    fit_list = list(fits.values()) if isinstance(fits, Mapping) else list(fits)
    by_mix = {f.mixture: f for f in fit_list if f.category == category}
    mixtures = curves.mixtures_of(results)
    colours = mixture_colours(mixtures)
    markers = scale_markers(curves.scales_of(results))

    fig = new_figure(7.5, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    any_positive = any(float(r.get("flops") or 0.0) > 0 for r in results)
    if any_positive:
        ax.set_xscale("log")
    handles: list[Any] = []
    has_blind = has_zero = False
    for mix in mixtures:
        col = colours[mix]
        runs = [r for r in results if str(r.get("mixture")) == mix]
        for r in runs:
            acc = curves.accuracy_of(r, category)
            if not np.isfinite(acc):
                continue
            c = float(r.get("flops") or 0.0)
            if c <= 0 and any_positive:
                # No pre-training: no place on a log axis, shown as a level instead.
                ax.axhline(acc, color=col, ls=":", lw=1.2)
                has_zero = True
                continue
            se = curves.category_se(r, category)
            ax.errorbar([c], [acc], yerr=None if not np.isfinite(se) else [se],
                        fmt=markers[str(r.get("scale"))], color=col, ms=6, capsize=3,
                        elinewidth=1, zorder=3)
            blind = (r.get("blind") or {}).get(category) if category != OVERALL else None
            if blind is not None:
                ax.plot([c], [float(blind)], markers[str(r.get("scale"))], mfc="none",
                        mec=col, ms=7, mew=1.3, zorder=3)
                has_blind = True
        fit = by_mix.get(mix)
        label = mix
        if fit is not None and fit.ok and not fit.constrained:
            label = f"{mix} (fit not constrained: points only)"
        elif fit is not None and fit.ok:
            grid = fit.band_x if fit.has_band else curves.default_grid(fit.x)
            ax.plot(grid, fit.predict(grid), color=col, lw=1.8, zorder=2)
            if fit.has_band:
                ax.fill_between(fit.band_x, fit.band_lo, fit.band_hi, color=col,
                                alpha=0.18, lw=0, zorder=1)
            label = f"{mix} (a={fit.a:.3g}, b={fit.b:.3g})"
        handles.append(Line2D([], [], color=col, marker="o", lw=1.8, label=label))

    chance = study_chance(results, category)
    if np.isfinite(chance):
        ax.axhline(chance, color="0.35", ls="--", lw=1.2)
        handles.append(Line2D([], [], color="0.35", ls="--", label=f"chance ({chance:.0%})"))
    if has_blind:
        handles.append(Line2D([], [], color="0.3", marker="o", mfc="none", ls="none",
                              label="blind (image withheld)"))
    if has_zero:
        handles.append(Line2D([], [], color="0.3", ls=":", label="no pre-training (0 FLOPs)"))
    if any(f.has_band and f.constrained for f in by_mix.values()):
        handles.append(Patch(color="0.5", alpha=0.25,
                             label=f"{curves.BAND_LEVEL:.0%} bootstrap band"))
    scale_handles = [Line2D([], [], color="0.3", marker=m, ls="none", label=f"scale {s}")
                     for s, m in markers.items()]

    if any_positive:
        # Explicit limits: autoscaling a log axis around one distinct value breaks the frame.
        pos = [float(r.get("flops") or 0.0) for r in results if float(r.get("flops") or 0.0) > 0]
        lo, hi = np.log10(min(pos)), np.log10(max(pos))
        pad = max(0.08 * (hi - lo), 0.3)
        ax.set_xlim(10.0 ** (lo - pad), 10.0 ** (hi + pad))
    ax.set_xlabel("Pre-training FLOPs" + (" (log scale)" if any_positive else ""))
    ax.set_ylabel("Accuracy")
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_title(f"{curves.category_label(category)}: accuracy vs pre-training compute")
    ax.grid(True, which="major", alpha=0.3)
    if not any_positive:
        ax.text(0.5, 0.5, "no run has positive pre-training FLOPs", transform=ax.transAxes,
                ha="center", va="center", color="0.4")
    # One legend: a second one added with add_artist is cut off by the tight bounding box.
    n = len(handles) + len(scale_handles)
    ax.legend(handles=handles + scale_handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              fontsize=legend_size(n), ncol=1 if n <= 24 else 2, frameon=False)
    return save_figure(fig, path)


def mixture_comparison_plot(results: Sequence[Mapping[str, Any]], path: str | Path, *,
                            scales: Sequence[str] | None = None) -> Path:
    """Per category (and overall), bars comparing mixtures at each scale.

    Each bar is the most-trained run of that mixture at that scale, with a binomial error bar;
    ``scales`` restricts the groups (e.g. to the largest scale only).
    """
    cats = curves.categories_of(results) + [OVERALL]
    mixtures = curves.mixtures_of(results)
    colours = mixture_colours(mixtures)
    groups = list(scales) if scales is not None else curves.scales_of(results)
    reps = {s: curves.representative_runs(results, s) for s in groups}

    ncols = 1 if len(cats) == 1 else (2 if len(cats) <= 4 else 3)
    nrows = int(np.ceil(len(cats) / ncols))
    width_each = max(4.2, 0.9 + 0.28 * len(groups) * len(mixtures))
    fig = new_figure(min(width_each * ncols, 22.0), 3.6 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    bar_w = 0.8 / max(len(mixtures), 1)
    x = np.arange(len(groups))
    for ax, cat in zip(axes, cats):
        for j, mix in enumerate(mixtures):
            vals, errs, xs = [], [], []
            for i, s in enumerate(groups):
                r = reps[s].get(mix)
                if r is None:
                    continue
                acc = curves.accuracy_of(r, cat)
                if not np.isfinite(acc):
                    continue
                se = curves.category_se(r, cat)
                vals.append(acc)
                errs.append(se if np.isfinite(se) else 0.0)
                xs.append(x[i] - 0.4 + bar_w * (j + 0.5))
            if vals:
                ax.bar(xs, vals, bar_w * 0.95, yerr=errs, color=colours[mix], capsize=2,
                       error_kw={"elinewidth": 0.8}, label=mix)
        chance = study_chance(results, cat)
        if np.isfinite(chance):
            ax.axhline(chance, color="0.35", ls="--", lw=1.1)
        ax.set_xticks(x)
        ax.set_xticklabels(groups)
        ax.set_xlabel("scale")
        ax.set_ylabel("Accuracy")
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        ax.set_title(curves.category_label(cat))
        ax.grid(True, axis="y", alpha=0.3)
    for ax in axes[len(cats):]:
        ax.set_visible(False)
    handles = [Patch(color=colours[m], label=m) for m in mixtures]
    handles.append(Line2D([], [], color="0.35", ls="--", label="chance"))
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 8),
               fontsize=legend_size(len(handles)), frameon=False, bbox_to_anchor=(0.5, 1.0))
    fig.suptitle("Mixtures compared at each scale (most-trained run per scale and mixture)",
                 y=1.04)
    fig.tight_layout()
    return save_figure(fig, path)


def _bin_order(bins: Sequence[str]) -> list[str]:
    def key(b: str) -> tuple:
        m = re.match(r"\s*(\d+(?:\.\d+)?)", b)
        return (0, float(m.group(1)), b) if m else (1, 0.0, b)
    return sorted(bins, key=key)


def mle_plot(results: Sequence[Mapping[str, Any]], path: str | Path) -> Path | None:
    """MLE-Bench accuracy per object-size bin, one line per run; None (no file) without data."""
    runs = [r for r in results if r.get("mle")]
    if not runs:
        return None
    bins = _bin_order(sorted({b for r in runs for b in r["mle"] if b != "overall"}))
    has_overall = any("overall" in r["mle"] for r in runs)
    mixtures = curves.mixtures_of(runs)
    colours = mixture_colours(mixtures)
    markers = scale_markers(curves.scales_of(runs))

    fig = new_figure(7.5 if len(runs) <= 12 else 9.5, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    xs = np.arange(len(bins), dtype=float)
    x_overall = len(bins) + 0.5
    for r in sorted(runs, key=lambda r: (curves.natural_key(str(r.get("mixture"))),
                                         float(r.get("params") or 0), float(r.get("tokens") or 0))):
        col = colours[str(r.get("mixture"))]
        mk = markers[str(r.get("scale"))]
        ys = np.array([float(r["mle"].get(b, np.nan)) for b in bins])
        ax.plot(xs, ys, marker=mk, color=col, lw=1.3, ms=5, label=str(r.get("run")))
        if "overall" in r["mle"]:
            ax.plot([x_overall], [float(r["mle"]["overall"])], marker=mk, color=col, ms=6)
    chance = study_chance(runs, "mle")
    if np.isfinite(chance):
        ax.axhline(chance, color="0.35", ls="--", lw=1.1, label=f"chance ({chance:.0%})")
    ticks = list(xs) + ([x_overall] if has_overall else [])
    labels = [f"{b}%" for b in bins] + (["overall"] if has_overall else [])
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels)
    if has_overall:
        ax.axvline(len(bins) - 0.25, color="0.8", lw=0.8)
    ax.set_xlabel("Target object size (share of image pixels)")
    ax.set_ylabel("Accuracy")
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_title("MLE-Bench: object existence accuracy by object size")
    ax.grid(True, axis="y", alpha=0.3)
    n = len(runs) + 1
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=legend_size(n),
              ncol=1 if n <= 20 else 2, frameon=False, title="run")
    return save_figure(fig, path)
