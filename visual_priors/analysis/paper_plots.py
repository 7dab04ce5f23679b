"""Figures of the paper's analyses (scaling law, proportion sweeps, grid, trade-off, Spearman
structure, alignment), written as PNG files on the Agg canvas as ``plots`` does.

Each function takes numbers already selected and fitted by ``report_paper`` and draws them; none
fits anything itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from visual_priors.analysis import curves
from visual_priors.analysis.curves import OVERALL
from visual_priors.analysis.plots import MARKERS, legend_size, new_figure, save_figure
from visual_priors.analysis.scaling import ChinchillaFit

LINESTYLES = ("-", "--", ":", "-.")


def _grid_shape(n: int) -> tuple[int, int]:
    ncols = 1 if n == 1 else (2 if n <= 4 else 3)
    return int(np.ceil(n / ncols)), ncols


def loss_surface_plot(panels: Sequence[tuple[str, ChinchillaFit, np.ndarray]],
                      path: str | Path) -> Path:
    """Final loss against tokens, one panel per series: the points (N, D, L) coloured by model
    size and the fitted L(N, D) at each size as a line, with the irreducible loss E dashed."""
    nrows, ncols = _grid_shape(len(panels))
    fig = new_figure(6.2 * ncols, 4.4 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (title, fit, points) in zip(axes, panels):
        n, d, y = np.asarray(points, dtype=np.float64).T
        sizes = np.unique(n)
        cmap = colormaps["viridis"]
        lo, hi = np.log10(d.min()), np.log10(d.max())
        grid = np.logspace(lo - 0.15, hi + 0.15, 80)
        for i, size in enumerate(sizes):
            col = cmap(i / max(len(sizes) - 1, 1) * 0.85)
            keep = n == size
            ax.plot(d[keep], y[keep], MARKERS[i % len(MARKERS)], color=col, ms=6, zorder=3,
                    label=f"N = {size:.3g}")
            ax.plot(grid, fit.predict(size, grid), color=col, lw=1.6, zorder=2)
        ax.axhline(fit.E, color="0.4", ls="--", lw=1.0, label=f"E = {fit.E:.4g}")
        ax.set_xscale("log")
        ax.set_xlabel("Pre-training tokens D (log scale)")
        ax.set_ylabel("Final training loss")
        ax.set_title(f"{title}: alpha {fit.alpha:.3g}, beta {fit.beta:.3g}", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=legend_size(len(sizes) + 1), frameon=False)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("Loss surface L(N, D) = E + A/N^alpha + B/D^beta: points and fitted curves", y=1.0)
    fig.tight_layout()
    return save_figure(fig, path)


def proportion_sweep_plot(sweeps: Mapping[str, Sequence[tuple[float, Mapping[str, Any]]]],
                          categories: Sequence[str], path: str | Path) -> Path:
    """Fig. 4: per sweep (a label, with what else differs in parentheses), each category's
    accuracy (and overall) against the label's share of the text; one line style per scale
    when a label was swept at several."""
    labels = list(sweeps)
    nrows, ncols = _grid_shape(len(labels))
    fig = new_figure(5.4 * ncols, 3.9 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    cats = list(categories) + [OVERALL]
    colours = {c: colormaps["tab10"](i % 10) for i, c in enumerate(categories)}
    colours[OVERALL] = "black"
    all_scales = curves.scales_of([r for pts in sweeps.values() for _, r in pts])
    styles = {s: LINESTYLES[i % len(LINESTYLES)] for i, s in enumerate(all_scales)}
    for ax, label in zip(axes, labels):
        pts = sweeps[label]
        for scale in curves.scales_of([r for _, r in pts]):
            sub = sorted(((p, r) for p, r in pts if str(r.get("scale")) == scale), key=lambda t: t[0])
            xs = np.array([p for p, _ in sub])
            for c in cats:
                ys = np.array([curves.accuracy_of(r, c) for _, r in sub])
                se = np.array([curves.category_se(r, c) for _, r in sub])
                if not np.any(np.isfinite(ys)):
                    continue
                ax.errorbar(xs, ys, yerr=np.where(np.isfinite(se), se, 0.0), color=colours[c],
                            ls=styles[scale], marker="o", ms=4, lw=2.0 if c == OVERALL else 1.3,
                            capsize=2, elinewidth=0.8)
        ax.set_xlabel(f"{label.split(' (')[0].replace('_', ' ')} share of the text (%)")
        ax.set_ylabel("Accuracy")
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        ax.set_title(label.replace("_", " "))
        ax.grid(True, alpha=0.3)
    for ax in axes[len(labels):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=colours[c], marker="o", label=curves.category_label(c))
               for c in cats]
    if len(all_scales) > 1:
        handles += [Line2D([], [], color="0.3", ls=styles[s], label=f"scale {s}") for s in all_scales]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 6), frameon=False,
               fontsize=legend_size(len(handles)), bbox_to_anchor=(0.5, 1.0))
    fig.suptitle("Category proportion sweeps (paper Fig. 4)", y=1.05)
    fig.tight_layout()
    return save_figure(fig, path)


def _edges(values: np.ndarray) -> np.ndarray:
    """Cell edges around sorted centres: midpoints inside, half a gap beyond the ends."""
    if len(values) == 1:
        return np.array([values[0] - 2.5, values[0] + 2.5])
    mid = (values[1:] + values[:-1]) / 2.0
    return np.concatenate([[values[0] - (mid[0] - values[0])], mid,
                           [values[-1] + (values[-1] - mid[-1])]])


def grid_heatmap(reasoning: np.ndarray, visual: np.ndarray, acc: np.ndarray,
                 optima: Sequence[tuple[str, Any]], path: str | Path) -> Path:
    """Table 1 as a heat map: overall accuracy of each (reasoning %, visual %) cell, blank where
    no run sampled it, with each surface's optimum and its interval as error bars."""
    rs, vs = np.unique(reasoning), np.unique(visual)
    z = np.full((len(rs), len(vs)), np.nan)
    for r, v, a in zip(reasoning, visual, acc):
        z[np.searchsorted(rs, r), np.searchsorted(vs, v)] = a
    fig = new_figure(1.6 + 0.95 * len(vs) + 2.0, 1.2 + 0.55 * len(rs))
    ax = fig.add_subplot(1, 1, 1)
    mesh = ax.pcolormesh(_edges(vs), _edges(rs), np.ma.masked_invalid(z), cmap="viridis",
                         shading="flat")
    cbar = fig.colorbar(mesh, ax=ax, pad=0.02)
    cbar.ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=1))
    cbar.set_label("Overall accuracy")
    span = np.nanmax(z) - np.nanmin(z) if np.any(np.isfinite(z)) else 0.0
    for i, r in enumerate(rs):
        for j, v in enumerate(vs):
            if np.isfinite(z[i, j]):
                light = span > 0 and (z[i, j] - np.nanmin(z)) / span > 0.6
                ax.text(v, r, f"{100 * z[i, j]:.1f}", ha="center", va="center", fontsize=7,
                        color="black" if light else "white")
    styles = (("X", "#d62728"), ("P", "#ff7f0e"), ("D", "#e377c2"))
    for (name, surf), (mk, col) in zip(optima, styles):
        rv, vv = surf.optimum["reasoning_pct"], surf.optimum["visual_pct"]
        (rlo, rhi), (vlo, vhi) = surf.location_interval["reasoning_pct"], surf.location_interval["visual_pct"]
        # A draw-based interval need not contain the refined optimum: clip, never negative.
        xerr = ([[max(vv - vlo, 0.0)], [max(vhi - vv, 0.0)]]
                if np.isfinite(vlo) and np.isfinite(vhi) else None)
        yerr = ([[max(rv - rlo, 0.0)], [max(rhi - rv, 0.0)]]
                if np.isfinite(rlo) and np.isfinite(rhi) else None)
        ax.errorbar([vv], [rv], xerr=xerr, yerr=yerr, fmt=mk, color=col, ms=10, mec="white",
                    mew=1.2, capsize=4, elinewidth=1.6, zorder=5,
                    label=f"{name} optimum {rv:.1f} / {vv:.1f}")
    ax.set_xticks(vs)
    ax.set_yticks(rs)
    ax.set_xlabel("Visual-world share (%)")
    ax.set_ylabel("Reasoning share (%)")
    ax.set_title("Overall accuracy over the mixture grid (paper Table 1)")
    if optima:
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.14), fontsize=8, frameon=False, ncol=1)
    return save_figure(fig, path)


def tradeoff_plot(names: Sequence[str], t_acc: Sequence[float], ppl: Sequence[float],
                  v_acc: Sequence[float], front: Sequence[bool], path: str | Path) -> Path:
    """Text accuracy against VQA accuracy, coloured by perplexity; the Pareto front ringed and
    named."""
    t, p, v = (np.asarray(a, dtype=np.float64) for a in (t_acc, ppl, v_acc))
    on = np.asarray(front, dtype=bool)
    fig = new_figure(7.2, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    ok = np.isfinite(p) & (p > 0)
    norm = LogNorm(p[ok].min(), p[ok].max()) if ok.any() and p[ok].max() > p[ok].min() else None
    sc = ax.scatter(t, v, c=p, cmap="viridis_r", norm=norm, s=36, zorder=3)
    cbar = fig.colorbar(sc, ax=ax, pad=0.02)
    cbar.set_label("Perplexity (log scale; lower is better)")
    ax.scatter(t[on], v[on], s=130, facecolors="none", edgecolors="#d62728", lw=1.5, zorder=4,
               label="Pareto front")
    right = np.nanmean([np.nanmin(t), np.nanmax(t)])
    for i in np.flatnonzero(on):  # names point inwards so none runs off the axes
        ax.annotate(str(names[i]), (t[i], v[i]), xytext=(-6 if t[i] > right else 6, -10),
                    textcoords="offset points", fontsize=7, ha="right" if t[i] > right else "left")
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=1))
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=1))
    ax.set_xlabel("Text accuracy (mean zero-shot)")
    ax.set_ylabel("VQA accuracy (overall)")
    ax.set_title("Language against vision: the trade-off (paper Table 2)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return save_figure(fig, path)


def _matrix_panel(ax, cats: Sequence[str], m: np.ndarray, title: str,
                  lo: np.ndarray | None = None, hi: np.ndarray | None = None):
    im = ax.imshow(m, cmap="RdBu_r", vmin=-1.0, vmax=1.0)
    labels = [curves.category_label(c) for c in cats]
    ax.set_xticks(range(len(cats)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(cats)))
    ax.set_yticklabels(labels, fontsize=8)
    for i in range(len(cats)):
        for j in range(len(cats)):
            if not np.isfinite(m[i, j]):
                continue
            text = f"{m[i, j]:.2f}"
            if lo is not None and i != j and np.isfinite(lo[i, j]) and np.isfinite(hi[i, j]):
                text += f"\n[{lo[i, j]:.2f}, {hi[i, j]:.2f}]"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if abs(m[i, j]) > 0.6 else "black")
    ax.set_title(title, fontsize=10)
    return im


def spearman_plot(categories: Sequence[str], rho: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                  title: str, path: str | Path, *,
                  paper: tuple[Sequence[str], np.ndarray] | None = None) -> Path:
    """Our Spearman matrix with its interval in each cell, and the paper's beside it if given."""
    ncols = 2 if paper is not None else 1
    fig = new_figure(5.2 * ncols + 0.8, 4.6)
    axes = fig.subplots(1, ncols, squeeze=False).ravel()
    im = _matrix_panel(axes[0], categories, np.asarray(rho), title, np.asarray(lo), np.asarray(hi))
    if paper is not None:
        _matrix_panel(axes[1], paper[0], np.asarray(paper[1]), "Paper, Fig. 5 (105 3B MLLMs)")
    fig.colorbar(im, ax=list(axes), shrink=0.85, label="Spearman rho")
    return save_figure(fig, path)


def alignment_plot(series: Mapping[str, Sequence[tuple[float, float]]], path: str | Path, *,
                   ylabel: str = "Alignment score", lines: Collection[str] | None = None) -> Path:
    """Fig. 11: alignment score against the reasoning share of the text, one marker style per
    series; the series in ``lines`` (all when None: sweeps of one share) joined by a line, the
    others (several mixtures at one share, grids) as points."""
    fig = new_figure(7.2, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    cmap = colormaps["tab10"]
    for i, (name, pts) in enumerate(series.items()):
        xs, ys = zip(*sorted(pts))
        joined = lines is None or name in lines
        ax.plot(xs, ys, marker=MARKERS[i % len(MARKERS)], color=cmap(i % 10), lw=1.5 if joined else 0,
                ms=5, label=name)
    ax.set_xlabel("Reasoning share of the text (%; a category sweep: its label's share)")
    ax.set_ylabel(ylabel)
    ax.set_title("LLM-vision alignment against reasoning data (paper Fig. 11)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=legend_size(len(series)),
              frameon=False)
    return save_figure(fig, path)
