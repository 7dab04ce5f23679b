"""One HTML report per study, with the data and fits beside it.

``write_report`` writes into ``out_dir``:

- ``report.html``: header, the findings table (``findings``: each of the paper's findings F1..F10
  with the paper's number, the miniature's estimate and 95% interval, and a verdict by a stated
  rule), contents, runs table, one accuracy-vs-compute plot per category
  (and overall) with its fitted parameters and functional form, the mixture comparison,
  benchmarks, MLE-Bench by object size and a beats-chance table; then the paper's figures and
  tables that the runs support (``report_paper``: scaling law, extrapolation and decision
  accuracy, proportion sweeps, the mixture grid, the trade-off, the Spearman structure,
  alignment), each replaced by a one-line note when they do not; then language, reasoning
  traces and real benchmarks. Plots are PNG files in the same folder referenced by relative
  paths, so the folder moves as a unit and the HTML stays small.
- ``category_<name>.png``, ``mixtures.png`` (``mixtures_<study>.png`` per study), ``mle.png``
  (the last only when runs have MLE) and the paper sections' PNGs.
- ``results.json``: the input list of per-run result dicts.
- ``fits.json``: every curve fit, unrounded, with its bootstrap band.
- ``analysis.json``: the paper sections' numbers, unrounded.
- ``findings.json``: the findings' rows with every part their verdicts weigh, and the rule.

When the runs carry several ``study`` values (a whole paper's worth), the runs table, the
mixture comparison and the beats-chance table are given per study, long tables start
collapsed, and the compute curves show only the series that span two or more FLOPs values.

Accuracies in the tables are percentages. Standard errors are binomial, from each benchmark's
question count, propagated through the plain mean over benchmarks.
"""

from __future__ import annotations

import datetime
import math
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from visual_priors.analysis import curves, findings as findings_lib, plots, verdicts
from visual_priors.analysis import report_format as fmt
from visual_priors.analysis import report_paper, report_signal
from visual_priors.analysis.curves import CURVE_FORM, OVERALL, CurveFit

# One-sided 5% test of accuracy above chance.
Z_BEATS_CHANCE = 1.645
# Beyond this many mixtures the comparison's bars are too thin to read: tables only.
MAX_COMPARISON_BARS = 12

# The formatting helpers live in report_format, shared with the paper's sections.
_CSS = fmt.CSS
_e, _finite, _count, _sci, _pct = fmt.esc, fmt.finite, fmt.count, fmt.sci, fmt.pct
_pm, _num, _plain, _table, _slug = fmt.pm, fmt.num, fmt.plain, fmt.table, fmt.slug
_jsonable, _write_json = fmt.jsonable, fmt.write_json


# ---------------------------------------------------------------------------------------------
# Sections


def study_groups(results: Sequence[Mapping[str, Any]]) -> list[tuple[str | None, list]]:
    """(study, its runs) in first-seen order; one group named None when the runs carry fewer
    than two studies, so a single study's page keeps its plain layout."""
    groups: dict[str, list] = {}
    for r in results:
        groups.setdefault(str(r.get("study")), []).append(r)
    if len(groups) < 2:
        return [(None, list(results))]
    return list(groups.items())


def _runs_table(results: Sequence[Mapping[str, Any]], cats: Sequence[str]) -> str:
    head = ["run", "scale", "mixture", "params", "tokens", "FLOPs", "perplexity", "overall"]
    head += [_e(curves.category_label(c)) for c in cats] + ["MLE overall", "generated overall"]
    order = sorted(results, key=lambda r: (curves.natural_key(str(r.get("mixture"))),
                                           float(r.get("params") or 0),
                                           float(r.get("tokens") or 0), str(r.get("run"))))
    rows = []
    for r in order:
        row = [_e(r.get("run")), _e(r.get("scale")), _e(r.get("mixture")),
               _count(r.get("params")), _count(r.get("tokens")), _sci(r.get("flops")),
               _plain(r.get("perplexity")), _pm(r.get("overall"), curves.category_se(r, OVERALL))]
        row += [_pm(curves.accuracy_of(r, c), curves.category_se(r, c)) for c in cats]
        row.append(_pct((r.get("mle") or {}).get("overall")))
        row.append(_pct((r.get("generated") or {}).get("overall")))
        rows.append(row)
    return _table(head, rows, left=3)


def _runs_section(results: Sequence[Mapping[str, Any]], cats: Sequence[str]) -> str:
    parts = ['<h2 id="runs">Runs</h2>',
             "<p class=\"note\">Accuracies in %, ± one binomial standard error. Overall is the "
             "plain mean over benchmarks, options scored by likelihood; generated overall scores "
             "greedy free-form answers parsed to an option (unparsable = wrong).</p>"]
    for study, runs in study_groups(results):
        table = _runs_table(runs, cats)
        if study is None:
            parts.append(table if len(runs) <= fmt.LONG_TABLE
                         else fmt.details(f"{len(runs)} runs", table))
        else:
            parts.append(fmt.details(f"Study <b>{_e(study)}</b>: {len(runs)} run(s)", table,
                                     open_=len(runs) <= fmt.LONG_TABLE))
    return "\n".join(parts)


def _fit_table(fits: Sequence[CurveFit]) -> str:
    head = ["mixture", "a", "b", "midpoint FLOPs", "points", "RMSE (pp)", "band", "note"]
    rows = []
    for f in fits:
        band = f"{curves.BAND_LEVEL:.0%}, {f.n_boot} resamples" if f.has_band else "none"
        rows.append([_e(f.mixture), _num(f.a), _num(f.b), _sci(f.midpoint),
                     str(f.n_points), _plain(100.0 * f.rmse if _finite(f.rmse) else None, 3),
                     band, f'<span class="note">{_e(f.note)}</span>'])
    return fmt.long_table(head, rows, what="fits")


def curve_series(results: Sequence[Mapping[str, Any]]) -> tuple[list, list[str]]:
    """(runs to draw against compute, series left out): when some series span two or more
    positive FLOPs values, only those; otherwise every run (a single-compute series has no
    curve, and dozens of them, e.g. grid cells, bury the ones that do)."""
    spans: dict[str, set] = {}
    for r in results:
        c = float(r.get("flops") or 0.0)
        spans.setdefault(str(r.get("mixture")), set()).update([c] if c > 0 else [])
    multi = {m for m, cs in spans.items() if len(cs) >= 2}
    if not multi:
        return list(results), []
    left = sorted(set(spans) - multi, key=curves.natural_key)
    return [r for r in results if str(r.get("mixture")) in multi], left


def _curve_sections(results, cats, fits, out_dir: Path, *, n_boot: int,
                    left_out: Sequence[str] = ()) -> tuple[str, dict[str, str]]:
    parts = ['<h2 id="curves">Accuracy against pre-training compute</h2>',
             "<p>Each mixture's points are fitted separately with the bounded form</p>",
             f'<p><span class="form">{_e(CURVE_FORM)}</span></p>',
             "<p class=\"note\">C is pre-training FLOPs; the floor is chance and the ceiling 1; "
             "b is the slope in logits per decade of compute and the midpoint (halfway from "
             "chance to 1) is at C = 10<sup>-a/b</sup>. Least squares in float64; bands are "
             f"{curves.BAND_LEVEL:.0%} percentile intervals from {n_boot} bootstrap "
             "resamples of the points, shown only with at least three distinct FLOPs values. "
             "Parameters are unrounded.</p>"]
    if left_out:
        parts.append(f'<p class="note">{len(left_out)} series with a single compute value are '
                     "not drawn here (they appear in the mixture comparison and the sections "
                     f"below): {_e(', '.join(left_out))}.</p>")
    files = {}
    for cat in cats:
        name = f"category_{_slug(cat)}.png"
        plots.category_plot(results, cat, fits, out_dir / name)
        files[cat] = name
        label = curves.category_label(cat)
        cat_fits = [f for f in fits if f.category == cat]
        parts += [f'<h3 id="cat-{_e(_slug(cat))}">{_e(label)}</h3>',
                  f'<img src="{_e(name)}" alt="{_e(label)} accuracy against pre-training FLOPs">',
                  f'<p>Fitted form: <span class="form">{_e(CURVE_FORM)}</span></p>',
                  _fit_table(cat_fits) if cat_fits else "<p>No points in this category.</p>"]
    return "\n".join(parts), files


def _comparison_body(results, cats, out_dir: Path, name: str) -> tuple[str, str | None]:
    """Plot (unless the mixtures are too many to tell apart) and tables; (HTML, PNG name)."""
    n_mix = len(curves.mixtures_of(results))
    if n_mix <= MAX_COMPARISON_BARS:
        plots.mixture_comparison_plot(results, out_dir / name)
        figure = f'<img src="{_e(name)}" alt="Mixtures compared per category at each scale">'
    else:
        name, figure = None, (f'<p class="note">{n_mix} mixtures: too many bars to draw; the '
                              "table below and the paper sections compare them.</p>")
    scale = curves.largest_scale(results)
    reps = curves.representative_runs(results, scale) if scale is not None else {}
    all_cats = list(cats) + [OVERALL]
    parts = [figure, f"<p><b>At the largest scale ({_e(scale)})</b></p>",
             "<p class=\"note\">Most-trained run of each mixture at this scale. Accuracy in %, "
             "± one binomial standard error.</p>"]
    head = ["mixture", "run", "FLOPs"] + [_e(curves.category_label(c)) for c in all_cats]
    rows = [[_e(m), _e(r.get("run")), _sci(r.get("flops"))]
            + [_pm(curves.accuracy_of(r, c), curves.category_se(r, c)) for c in all_cats]
            for m, r in reps.items()]
    parts.append(fmt.long_table(head, rows, left=2, what="mixtures"))
    if len(reps) < 2:
        parts.append(f"<p>Only one mixture at scale {_e(scale)}: nothing to compare.</p>")
        return "\n".join(parts), name

    parts.append("<p class=\"note\">Winner = highest accuracy; margin over the runner-up in "
                 "percentage points. The SE of the margin treats the two runs as independent "
                 "binomial samples, sqrt(SE<sub>1</sub><sup>2</sup> + SE<sub>2</sub>"
                 "<sup>2</sup>).</p>")
    head = ["category", "winner", "accuracy", "runner-up", "accuracy", "margin (pp)",
            "SE of margin (pp)", "margin / SE"]
    rows = []
    for c in all_cats:
        ranked = sorted(((curves.accuracy_of(r, c), m, r) for m, r in reps.items()
                         if _finite(curves.accuracy_of(r, c))), key=lambda t: -t[0])
        if len(ranked) < 2:
            rows.append([_e(curves.category_label(c))] + ["—"] * 7)
            continue
        (a1, m1, r1), (a2, m2, r2) = ranked[0], ranked[1]
        s1, s2 = curves.category_se(r1, c), curves.category_se(r2, c)
        se = math.sqrt(s1 ** 2 + s2 ** 2) if _finite(s1) and _finite(s2) else float("nan")
        margin = a1 - a2
        z = margin / se if _finite(se) and se > 0 else float("nan")
        winner = _e(m1) if margin > 0 else f"tie ({_e(m1)}, {_e(m2)})"
        rows.append([_e(curves.category_label(c)), winner, _pm(a1, s1), _e(m2), _pm(a2, s2),
                     _plain(100.0 * margin, 3), _plain(100.0 * se if _finite(se) else None, 3),
                     _plain(z, 3)])
    parts.append(_table(head, rows, left=2))
    return "\n".join(parts), name


def _comparison_section(results, cats, out_dir: Path) -> tuple[str, list[str]]:
    """The comparison of mixtures, once per study when the runs carry several."""
    parts, files = ['<h2 id="comparison">Mixture comparison</h2>'], []
    for study, runs in study_groups(results):
        name = "mixtures.png" if study is None else f"mixtures_{_slug(study)}.png"
        body, drawn = _comparison_body(runs, curves.categories_of(runs), out_dir, name)
        parts += ([] if study is None else [f"<h3>Study {_e(study)}</h3>"]) + [body]
        files += [drawn] if drawn else []
    return "\n".join(parts), files


def _mle_section(results, out_dir: Path) -> tuple[str, str | None]:
    path = plots.mle_plot(results, out_dir / "mle.png")
    if path is None:
        return ('<h2 id="mle">MLE-Bench by object size</h2>\n'
                "<p>No run reports MLE-Bench results.</p>"), None
    return ('<h2 id="mle">MLE-Bench by object size</h2>\n'
            f'<img src="{path.name}" alt="MLE-Bench accuracy by object size">\n'
            "<p class=\"note\">Object existence, four options; bins are the target's share of "
            "image pixels. The overall value is the one each run reports.</p>"), path.name


def _chance_table(results, cats) -> tuple[str, str | None]:
    scale = curves.largest_scale(results)
    reps = curves.representative_runs(results, scale) if scale is not None else {}
    any_blind = any(r.get("blind") for r in reps.values())
    head = ["category", "mixture", "run", "accuracy", "chance", "acc − chance (pp)",
            "SE at chance (pp)", "(acc − chance) / SE", f"beats chance (z > {Z_BEATS_CHANCE})"]
    if any_blind:
        head.append("blind accuracy")
    rows = []
    for c in list(cats) + [OVERALL]:
        for m, r in reps.items():
            acc, ch = curves.accuracy_of(r, c), curves.chance_of(r, c)
            se = curves.category_se(r, c, p=ch) if _finite(ch) else float("nan")
            diff = acc - ch
            z = diff / se if _finite(se) and se > 0 and _finite(diff) else float("nan")
            verdict = "—"
            if _finite(z):
                verdict = ('<span class="yes">yes</span>' if z > Z_BEATS_CHANCE
                           else '<span class="no">no</span>')
            row = [_e(curves.category_label(c)), _e(m), _e(r.get("run")), _pct(acc), _pct(ch),
                   _plain(100.0 * diff if _finite(diff) else None, 3),
                   _plain(100.0 * se if _finite(se) else None, 3), _plain(z, 3), verdict]
            if any_blind:
                row.append(_pct((r.get("blind") or {}).get(c)) if c != OVERALL else "—")
            rows.append(row)
    return fmt.long_table(head, rows, left=3), scale


def _chance_section(results, cats) -> str:
    parts = ['<h2 id="chance">Beats chance</h2>',
             "<p class=\"note\">Largest scale (of each study when there are several), most-trained "
             "run per mixture. The standard error is the binomial one under the null hypothesis "
             "(every benchmark at chance accuracy), so the ratio is a one-sample z statistic.</p>"]
    for study, runs in study_groups(results):
        table, scale = _chance_table(runs, curves.categories_of(runs) if study else cats)
        parts += ([f"<h3>Study {_e(study)}</h3>"] if study is not None else []) + [
            f"<p>Scale {_e(scale)}.</p>", table]
    return "\n".join(parts)


def _ordered_runs(results) -> list:
    return sorted(results, key=lambda r: (curves.natural_key(str(r.get("scale"))), str(r.get("mixture")),
                                          str(r.get("run"))))


def _benchmark_section(results) -> str:
    """Every benchmark's accuracy per run, beside its chance level and the blind baseline of the
    largest run: the table the category scores are means of."""
    runs = _ordered_runs([r for r in results if r.get("benchmarks")])
    if not runs:
        return ""
    top = runs[-1]
    bmap = top.get("benchmark_category") or {}
    chance = top.get("chance_benchmarks") or {}
    blind = top.get("blind_benchmarks") or {}
    head = ["category", "benchmark", "chance", f"blind ({_e(top.get('run'))})"] + [_e(r.get("run")) for r in runs]
    rows = []
    for b in sorted(bmap, key=lambda b: (bmap[b], b)):
        rows.append([_e(curves.category_label(bmap[b])), _e(b), _pct(chance.get(b)), _pct(blind.get(b))]
                    + [_pct((r.get("benchmarks") or {}).get(b)) for r in runs])
    table = _table(head, rows, left=2)
    if len(runs) > 12:  # one column per run
        table = fmt.details(f"{len(runs)} runs × {len(rows)} benchmarks (click to expand)", table)
    return ('<h2 id="benchmarks">Benchmarks</h2>\n<p>Accuracy in % per benchmark (options scored '
            "by likelihood); a category is the mean of its benchmarks. Blind: the same model with "
            "the image withheld.</p>\n" + table)


def _language_section(results) -> str:
    runs = [r for r in _ordered_runs(results) if r.get("language")]
    if not runs:
        return ""
    tasks = sorted({t for r in runs for t in (r["language"].get("tasks") or {})})
    head = ["run", "WikiText ppl", "LAMBADA ppl", "LAMBADA acc", "mean ppl", "avg acc"]
    head += [f"{_e(t)} acc / acc_norm" for t in tasks]
    rows = []
    for r in runs:
        lang = r["language"]
        ppl = lang.get("perplexity") or {}
        row = [_e(r.get("run")), _plain(ppl.get("wikitext")), _plain(ppl.get("lambada")),
               _pct(lang.get("lambada_acc")), _plain(ppl.get("mean")), _pct(lang.get("avg_acc"))]
        for t in tasks:
            m = (lang.get("tasks") or {}).get(t) or {}
            row.append(f"{_pct(m.get('acc'))} / {_pct(m.get('acc_norm'))}")
        rows.append(row)
    return ('<h2 id="language">Language</h2>\n'
            "<p>The pre-trained LLM of each run: perplexity on held-out "
            "WikiText-like and LAMBADA-like text, LAMBADA last-word accuracy, and zero-shot "
            "multiple choice by log-likelihood (acc; acc_norm divides by the continuation's "
            "bytes). Accuracy in %.</p>\n" + fmt.long_table(head, rows, what="runs"))


def _judge_section(results) -> str:
    runs = [r for r in _ordered_runs(results) if r.get("judge")]
    if not runs:
        return ""
    cats = sorted({c for r in runs for c in (r["judge"].get("by_category") or {})})
    head = ["run", "judge", "traces", "logical soundness (% coherent)", "depth (words)"]
    head += [f"{_e(curves.category_label(c))} soundness / depth" for c in cats]
    rows = []
    for r in runs:
        j = r["judge"]
        row = [_e(r.get("run")), _e(j.get("judge")), _count(j.get("n")), _plain(j.get("soundness"), 3),
               _plain(j.get("depth"), 3)]
        for c in cats:
            m = (j.get("by_category") or {}).get(c) or {}
            row.append(f"{_plain(m.get('soundness'), 3)} / {_plain(m.get('depth'), 3)}")
        rows.append(row)
    return ('<h2 id="judge">Reasoning traces</h2>\n'
            "<p>Answers with an explanation to Knowledge and "
            "Vision-Centric questions, judged for logical soundness and depth (App. A.2 of the "
            "paper).</p>\n" + fmt.long_table(head, rows, left=2, what="runs"))


def _real_section(results) -> str:
    runs = [r for r in _ordered_runs(results) if r.get("real")]
    if not runs:
        return ""
    names = sorted({b for r in runs for b in (r["real"].get("scores") or {})})
    head = ["run"] + [_e(n) for n in names] + ["overall"]
    rows = [[_e(r.get("run"))] + [_plain(((r["real"].get("scores") or {}).get(n) or {}).get("score"), 3)
                                  for n in names] + [_pct(r["real"].get("overall"))] for r in runs]
    return ('<h2 id="real">Real benchmarks</h2>\n'
            "<p>Each benchmark's own metric on 0-100 (MME perception / "
            "20, OCRBench / 10, VQA accuracy for TextVQA, relaxed accuracy for ChartQA).</p>\n"
            + fmt.long_table(head, rows, what="runs"))


def battery_text(name: str, result: Mapping[str, Any]) -> str:
    """One run's evaluation battery as plain text, for the terminal."""
    pct = lambda v: "—" if not _finite(v) else f"{100 * float(v):.1f}"
    lines = [f"== {name}: overall {pct(result.get('overall'))}% (chance "
             f"{pct(curves.chance_of(result, OVERALL))}%, blind {pct(result.get('blind_overall'))}%)"]
    for c, v in (result.get("categories") or {}).items():
        lines.append(f"  {curves.category_label(c):<16} {pct(v):>5}%   blind {pct((result.get('blind') or {}).get(c)):>5}%")
    bench = result.get("benchmarks") or {}
    lines.append("  benchmarks: " + ", ".join(f"{b} {pct(v)}" for b, v in sorted(bench.items())))
    mle = result.get("mle") or {}
    if mle:
        lines.append("  MLE-Bench: " + ", ".join(f"{k} {pct(v)}" for k, v in mle.items()))
    lang = result.get("language") or {}
    if lang:
        ppl = lang.get("perplexity") or {}
        lines.append(f"  language: ppl WikiText {_plain(ppl.get('wikitext'))}, LAMBADA "
                     f"{_plain(ppl.get('lambada'))}; avg acc {pct(lang.get('avg_acc'))}%")
    judge = result.get("judge") or {}
    if judge:
        lines.append(f"  judge ({judge.get('judge')}): soundness {_plain(judge.get('soundness'), 3)}%, "
                     f"depth {_plain(judge.get('depth'), 3)} words over {judge.get('n')} traces")
    if result.get("real"):
        lines.append("  real: " + ", ".join(f"{b} {_plain(s.get('score'), 3)}"
                                            for b, s in sorted(result["real"]["scores"].items())))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Entry point


def _encoder_section(results, cats) -> str:
    """Per-category accuracy of the same LLMs under each encoder, with each encoder's kind-probe
    accuracy; empty unless the study compares encoders."""
    encoders = sorted({r.get("encoder") for r in results if r.get("encoder")})
    if len(encoders) < 2:
        return ""
    probe = {r["encoder"]: r.get("encoder_probe") for r in results if r.get("encoder")}
    head = ["encoder", "kind probe", "LLM (scale / text mixture)"] + [
        _e(curves.category_label(c)) for c in cats] + ["overall"]
    rows = []
    key = lambda r: (curves.natural_key(str(r.get("scale"))), str(r.get("text_mixture")), r["encoder"])
    for r in sorted((r for r in results if r.get("encoder")), key=key):
        rows.append([_e(r["encoder"]), _pct(probe.get(r["encoder"])),
                     _e(f"{r.get('scale')} / {r.get('text_mixture')}")]
                    + [_pct(r.get("categories", {}).get(c)) for c in cats] + [_pct(r.get("overall"))])
    return ('<h2 id="encoders">Encoders</h2>\n'
            "<p>The same pre-trained LLMs adapted with each vision encoder. "
            "Kind probe: linear-probe accuracy of the encoder's features on held-out world images. "
            "Accuracy in %.</p>\n" + fmt.long_table(head, rows, left=3, what="runs"))


_VERDICT_MARKS = {"reproduced": "✓", "contradicted": "✗", "inconclusive": "?", "not run": "–"}


def _verdict(v: str) -> str:
    css = _slug(v).replace("_", "-")
    return f'<span class="verdict v-{css}">{_VERDICT_MARKS.get(v, "")} {_e(v)}</span>'


def _estimate(value: Any, interval: Sequence[Any], unit: str = "") -> str:
    if not _finite(value) and value not in (float("inf"), float("-inf")):
        return "—"
    lo, hi = interval
    show = lambda v: "−∞" if v == float("-inf") else "∞" if v == float("inf") else _plain(v, 3)  # noqa: E731
    return (f"<b>{show(value)}</b> [{show(lo) if lo is not None else '—'}, "
            f"{show(hi) if hi is not None else '—'}] {_e(unit)}")


def _paper_cell(paper: Mapping[str, Any]) -> str:
    numbers = f'<br><span class="note">{_e(paper["numbers"])}</span>' if paper.get("numbers") else ""
    return f'{_e(paper["statement"])}{numbers}<br><i>{_e(paper["citation"])}</i>'


def _findings_section(rows: Sequence[Mapping[str, Any]]) -> str:
    """The findings table the page opens with, and every part each verdict weighs."""
    level = rows[0]["level"] if rows else verdicts.LEVEL
    head = ["finding", "the paper says", f"miniature estimate [{level:.0%} interval]", "verdict",
            "reason"]
    table_rows, part_rows = [], []
    for r in rows:
        notes = "".join(f'<br><span class="note">{_e(n)}</span>' for n in r["notes"])
        estimate = (f'<span class="note">{_e(r["statistic"])}</span><br>'
                    f'{_estimate(r["estimate"], r["interval"], r["unit"])}' if r["statistic"] else "—")
        table_rows.append([f'<b>{_e(r["id"])}</b> {_e(r["title"])}', _paper_cell(r["paper"]), estimate,
                           _verdict(r["verdict"]), _e(r["reason"]) + notes])
        for p in r["parts"]:
            part_rows.append([_e(r["id"]), _e(p["name"]),
                              _estimate(p["estimate"], p["interval"], p["unit"]),
                              _e(p["paper_side"]), _plain(p["paper"], 3), _verdict(p["verdict"])])
    counts = Counter(r["verdict"] for r in rows)
    summary = ", ".join(f"{counts[v]} {v}" for v in verdicts.VERDICTS if counts[v])
    table = _table(head, table_rows, left=5)
    if rows and counts["not run"] == len(rows):
        table = fmt.details(f"No finding has the runs it needs ({summary})", table)
    parts = ['<h2 id="findings">Findings</h2>',
             f"<p><b>{_e(summary)}.</b> Each finding's statistic with its {level:.0%} interval "
             "(bootstrap over questions and seed replicates; rank correlations also over runs). "
             f"<i>Reproduced</i>: every part's interval on the paper's side of its null; "
             "<i>contradicted</i>: a part's interval, simultaneous over the finding's parts "
             "(Bonferroni), entirely on the other side; <i>inconclusive</i>: otherwise; "
             "<i>not run</i>: the runs it needs are missing. Rules fixed in "
             "<code>analysis/findings.py</code>; numbers in <a href=\"findings.json\">findings.json</a>.</p>",
             table]
    if part_rows:
        parts.append(fmt.details(f"Every part the verdicts weigh ({len(part_rows)})", _table(
            ["finding", "part", f"estimate [{level:.0%} interval]", "paper's side", "paper", "verdict"],
            part_rows, left=2)))
    return "\n".join(parts)


# Fewer resamples than curves.N_BOOT: a report of ~50 runs is written in seconds.
REPORT_N_BOOT = 100

_CORE_SECTIONS = (("findings", "Findings"), ("signal", "Signal chain"), ("runs", "Runs"), ("encoders", "Encoders"),
                  ("curves", "Accuracy against pre-training compute"),
                  ("comparison", "Mixture comparison"), ("benchmarks", "Benchmarks"),
                  ("mle", "MLE-Bench by object size"), ("chance", "Beats chance"))
_TAIL_SECTIONS = (("language", "Language"), ("judge", "Reasoning traces"),
                  ("real", "Real benchmarks"))


def _contents(blocks: Sequence[tuple[str, str, str]]) -> str:
    """A linked list of the sections present; ``blocks`` are (anchor, title, html)."""
    items = [f'<li><a href="#{key}">{_e(title)}</a></li>' for key, title, body in blocks if body]
    return "<nav><b>Contents</b><ul>" + "".join(items) + "</ul></nav>"


def _header_list(label: str, names: Sequence[str]) -> str:
    text = _e(", ".join(names))
    return (f"{label}: {text}" if len(names) <= 12
            else fmt.details(f"{len(names)} {label}", f'<p class="meta">{text}</p>'))


def write_report(results: Sequence[Mapping[str, Any]], out_dir: str | Path, *, study: str,
                 title: str | None = None, n_boot: int = REPORT_N_BOOT, seed: int = 0,
                 paper_spearman: str | Path | None = report_paper.PAPER_SPEARMAN_CSV) -> Path:
    """Write report.html, its PNG plots, results.json, fits.json and analysis.json into out_dir.

    Works from a single run upwards; ``blind``, ``mle``, ``n_questions`` and ``perplexity``
    may be missing from any run. ``n_boot`` resamples give the curves' bands;
    ``paper_spearman`` is the paper's Fig. 5 matrix (CSV), shown beside ours when the file
    exists. Returns the path of report.html.
    """
    results = [dict(r) for r in results]
    if not results:
        raise ValueError("write_report needs at least one run result")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The fits are small problems: BLAS threads only contend (tenfold slower on a busy machine).
    with threadpool_limits(1, user_api="blas"):
        return _write(results, out, study=study, title=title, n_boot=n_boot, seed=seed,
                      paper_spearman=paper_spearman)


def _fits_json(study: str, fits: Sequence[CurveFit], *, n_boot: int, seed: int) -> dict:
    return {"study": study, "form": CURVE_FORM, "band_level": curves.BAND_LEVEL, "n_boot": n_boot,
            "seed": seed, "fits": [f.to_dict() for f in fits]}


def _analysis_json(study: str, paper: Sequence[report_paper.Section], *, seed: int) -> dict:
    return {"study": study, "seed": seed, "sections": {p.key: p.data for p in paper}}


def _finding_rows(results: list[dict], paper_spearman: str | Path | None) -> list[dict]:
    # The paper's other tables sit beside its Fig. 5 CSV; without it, statements alone.
    paper_dir = Path(paper_spearman).parent if paper_spearman is not None else None
    return findings_lib.findings(results, paper_dir=paper_dir)


def _curve_fits(results: list[dict], *, n_boot: int, seed: int):
    cats = curves.categories_of(results)
    curve_runs, left_out = curve_series(results)
    fits = curves.fit_curves(curve_runs, categories=cats + [OVERALL], n_boot=n_boot, seed=seed)
    return cats, curve_runs, left_out, fits


def analysis_numbers(results: Sequence[Mapping[str, Any]], *, study: str, n_boot: int = REPORT_N_BOOT,
                     seed: int = 0, paper_spearman: str | Path | None = report_paper.PAPER_SPEARMAN_CSV) -> dict:
    """The report's numbers without the page: ``fits`` (fits.json's content), ``analysis``
    (analysis.json's: every paper section's numbers, unrounded) and ``findings`` (the rows of
    findings.json: each finding's estimate, interval and verdict). Its plots are drawn into a
    temporary directory and dropped."""
    results = [dict(r) for r in results]
    if not results:
        raise ValueError("analysis_numbers needs at least one run result")
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1, user_api="blas"):
        *_, fits = _curve_fits(results, n_boot=n_boot, seed=seed)
        paper = report_paper.paper_sections(results, Path(tmp), curve_fits=fits, seed=seed,
                                            paper_spearman=paper_spearman)
        rows = _finding_rows(results, paper_spearman)
    return fmt.jsonable({"fits": _fits_json(study, fits, n_boot=n_boot, seed=seed),
                         "analysis": _analysis_json(study, paper, seed=seed), "findings": rows})


def _write(results: list[dict], out: Path, *, study: str, title: str | None, n_boot: int,
           seed: int, paper_spearman: str | Path | None) -> Path:
    cats, curve_runs, left_out, fits = _curve_fits(results, n_boot=n_boot, seed=seed)
    _write_json(out / "results.json", results)
    _write_json(out / "fits.json", _fits_json(study, fits, n_boot=n_boot, seed=seed))

    curve_html, _ = _curve_sections(curve_runs, cats + [OVERALL], fits, out, n_boot=n_boot,
                                    left_out=left_out)
    comparison_html, _ = _comparison_section(results, cats, out)
    mle_html, _ = _mle_section(results, out)
    paper = report_paper.paper_sections(results, out, curve_fits=fits, seed=seed,
                                        paper_spearman=paper_spearman)
    _write_json(out / "analysis.json", _analysis_json(study, paper, seed=seed))
    rows = _finding_rows(results, paper_spearman)
    _write_json(out / "findings.json", findings_lib.findings_json(rows, study=study))
    core = dict(findings=_findings_section(rows), signal=report_signal.signal_section(results),
                runs=_runs_section(results, cats), encoders=_encoder_section(results, cats),
                curves=curve_html, comparison=comparison_html,
                benchmarks=_benchmark_section(results), mle=mle_html,
                chance=_chance_section(results, cats), language=_language_section(results),
                judge=_judge_section(results), real=_real_section(results))
    blocks = ([(k, t, core[k]) for k, t in _CORE_SECTIONS]
              + [(p.key, p.title, p.html) for p in paper]
              + [(k, t, core[k]) for k, t in _TAIL_SECTIONS])
    title = title or f"Visual priors: {study}"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    studies = [s for s, _ in study_groups(results) if s is not None]
    # The findings open the page, before the per-run notes (hundreds of lines in a whole paper).
    body = "\n".join(b for k, _, b in blocks if b and k != "findings")
    # What a reader must know before any number: where the chain breaks, where the image
    # does not help (and, from the curves, which fits the points do not constrain).
    notes = report_signal.findings(results) + curves.unconstrained_notes(fits)
    read_first = ('<div class="findings"><b>Read this first</b><ul>'
                  + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul></div>") if notes else ""
    doc = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p class="meta">Study: <b>{_e(study)}</b> &middot; generated {_e(now)} &middot;
{len(results)} run(s) &middot; scales: {_e(", ".join(curves.scales_of(results)))}</p>
<div class="meta">{_header_list("studies", studies) if studies else ""}
{_header_list("mixtures", curves.mixtures_of(results))}</div>
<p class="meta">Data: <a href="results.json">results.json</a> &middot; fits:
<a href="fits.json">fits.json</a> &middot; paper analyses: <a href="analysis.json">analysis.json</a>
&middot; findings: <a href="findings.json">findings.json</a>. Plots are the PNG files beside this page.</p>
{core["findings"]}
{read_first}
{_contents(blocks)}
{body}
</body>
</html>
"""
    path = out / "report.html"
    path.write_text(doc, encoding="utf-8")
    return path
