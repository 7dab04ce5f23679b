"""The paper's findings F1..F10, each with the miniature's estimate, a 95% interval and a verdict.

``findings(records)`` turns a study's run results (``suite.executor.collect``'s records, nested
or flat) into one row per finding: ``id``, ``title``, ``paper`` (the paper's statement, its
number where the paper has one and the figure or table it comes from, read at run time from
``../shared/paper``), ``estimate`` and ``interval`` (the headline statistic), ``n_runs``,
``verdict`` and ``reason`` (one sentence naming the rule that decided), plus every ``part`` the
verdict weighs, ``notes`` and ``details``.

**Statistic and interval.** Each finding is one or more *parts*; a part is a statistic with a
stated null and the side of it the paper is on (> null, < null, or inside a range). Its interval
is the two-sided percentile interval at ``LEVEL`` of ``N_BOOT`` bootstrap draws, seeded by
``SEED`` and the finding's number, so the same runs always give the same rows. One draw:

- *questions*: each run's benchmark accuracy is redrawn as Binomial(n, p) / n, n its question
  count and p its accuracy (exactly a resample of its questions with replacement); category
  and overall scores are the plain means over benchmarks, as the evaluation computes them;
- *seeds*: the runs of one condition (records with the same ``condition``, the run name without
  its seed suffix, or the same design point) are seed replicates: the condition's score is
  their mean, and a draw resamples their seed effects with replacement, each effect holding
  only the spread between seeds that question noise does not explain (``pool_seeds``: the
  draws' variance is then the unbiased (seed + question variance) / m);
- *runs*: statistics over a population of runs (rank correlations: F4, F9, F10's ordering)
  also resample the conditions with replacement; designed comparisons (slopes over a sweep,
  differences between named conditions, the grid's optimum) keep their design fixed.

With one seed per condition an interval of a designed comparison holds question noise only;
the row's notes say so. Scores without question counts enter without question noise (noted).
Records missing ``seed`` count as seed 0, records missing ``condition`` are their own condition;
the same run reported by two studies (same scale, tokens, text mixture, encoder, SFT set and
seed, same scores) counts once.

**Verdict rule**: ``analysis/verdicts.py``, the same for every finding and fixed before any
study ran (reproduced, contradicted, inconclusive; *not run* when the results lack the runs a
part needs, and the reason says which). Draws: ``analysis/bootstrap.py``.

**The findings** (statistics; accuracy differences and slopes in percentage points, pp):

- F1 scale: per category and overall, the slopes of accuracy on log10 parameters and on log10
  tokens of one additive least-squares fit over the scale sweep (one text mixture, web-crawl
  when it qualifies, at >= 2 sizes and >= 2 positive budgets): each > 0. The L(N, D) fit of
  the same runs' final loss (``scaling.fit_chinchilla``, bootstrap over runs): E is more than
  ``E_FLOOR`` of the lowest loss (E runs to its bound 0 otherwise), alpha and beta inside
  ``EXPONENT_RANGE``.
- F2 reasoning prior: over the reasoning-combination sweep (``category:reasoning_combination``),
  the slope of Knowledge and of Vision-Centric accuracy on the share (pp per 0 -> 100 %) > 0,
  and their mean slope minus that of General and OCR & Chart > 0.
- F3 perception prior: over the visual-combination sweep, the slope of the perception score
  (mean of General and OCR & Chart) > 0, and the gain from 0 to 25 % minus the gain from 25 to
  100 % > 0 (most of the gain in the first quarter: saturation).
- F4 structure: Spearman correlations of the four categories over the conditions at the most
  common scale (the paper's 3B runs) with the usual encoder and SFT set: the mean within-cluster
  rho (General-OCR, Knowledge-Vision-Centric) minus the mean of the four cross-cluster rho > 0.
- F5 best mixture: the full quadratic over the grid cells (``surfaces``): the signed distance of
  its maximum from the edge of the cells' convex hull (share points; negative outside, -inf when
  the quadratic has no maximum) > 0, i.e. an interior optimum; the distance of the hull-bound
  optimum from Table 1's best cell is reported beside it.
- F6 encoders: F2's statistics with each encoder's sweep; every one > 0.
- F7 SFT data: remaining performance (% of the ``full`` SFT set's score, as Fig. 7) of
  ``reasoning0`` minus that of ``perception0`` on the perception score > 0 (withholding
  perception data costs more), and of ``perception0`` minus ``reasoning0`` on Knowledge > 0.
- F8 scale-up: at the largest scale with both, overall VQA of mix6 minus mix0 > 0; mix6's
  perplexity relative to mix0's, (ppl6 - ppl0) / ppl0, < ``PPL_MARGIN``; blind tuning
  (``full+blind`` minus ``full``, mean over the mixtures run both ways) > 0 on Knowledge and < 0
  on OCR & Chart.
- F9 alignment: Spearman of the LLMs' alignment score (mutual k-NN) with their parameter count
  over the LLMs of one text mixture at >= 2 sizes (the scale sweep's) > 0, and with language
  ability (minus the held-out perplexity) over every LLM > 0.
- F10 single sources: over the single-source runs (>= 3 sources), Spearman of overall accuracy
  with the paper's Fig. 3 values (when SPEC.md gives them) > 0; the reasoning-centric sources
  (code, math, academic) minus the others on the reasoning score (mean of Knowledge and
  Vision-Centric) > 0; web-crawl minus the others on the perception score > 0.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visual_priors.analysis import curves, mixtures, report_paper, scaling, structure, surfaces
from visual_priors.analysis.bootstrap import Streams, Table, pooled_table, regression, scalar_draws, spearman_pair
from visual_priors.analysis.curves import OVERALL
from visual_priors.analysis.records import as_records, float_value
from visual_priors.analysis.tradeoff import objectives_of
from visual_priors.analysis.verdicts import LEVEL, Part, decide, fmt_g, percentile_interval
from visual_priors.config import mixtures as mixture_config

N_BOOT = 2000
SEED = 0
# Bootstrap refits of the L(N, D) surface, each an L-BFGS-B run from the full-data optimum
# alone (as the report's extrapolations): about 2 s on the fixture's 12 points.
FIT_N_BOOT = 100
# E below this share of the lowest observed loss is E at its bound 0.
E_FLOOR = 0.01
# alpha or beta below 0.05 is a term flat over any feasible range (a 30x change moves it by
# under 16%); above 2, the end of the start grids, a term that vanishes within the sweep.
EXPONENT_RANGE = (0.05, 2.0)
# "Comparable perplexity" (F8): mix6's at most this much above mix0's, relative.
PPL_MARGIN = 0.10
# Fewest shares a proportion sweep needs for a slope, and sources F10 needs.
MIN_SHARES = 3
MIN_SOURCES = 3
PAPER_DIR = report_paper.PAPER_SPEARMAN_CSV.parent
PERCEPTION, REASONING = structure.PAPER_SPLIT
PAPER_CATEGORIES = (*PERCEPTION, *REASONING)
# The paper's reasoning-centric sources (Fig. 3's text, SPEC A4.5).
REASONING_SOURCES = ("code", "math", "academic")
PERCEPTION_SOURCE = "web_crawl"
# The Fig. 3 labels SPEC.md writes differently from config.mixtures.PAPER_SOURCES.
_SPEC_SOURCE_NAMES = {"academia": "academic", "q_a_forum": "qa_forum"}


# What each finding claims: id -> (title, the paper's statement, where it says so). The paper's
# numbers are read from ../shared/paper when a row is made (``PaperFacts``).
STATEMENTS = {
    "F1": ("Scale: accuracy rises with model size and with tokens",
           "Avg VQA and every category rise with model size at fixed data and with data at fixed "
           "size (web-crawl LLMs, 340M-13B, 0-100B tokens); the loss surface is the Chinchilla "
           f"form {scaling.LOSS_FORM} with E > 0 (Epoch's refit of Hoffmann et al.: E = "
           f"{scaling.EPOCH_2024['E']}, alpha = {scaling.EPOCH_2024['alpha']}, beta = "
           f"{scaling.EPOCH_2024['beta']}).", "Fig. 2, SPEC A4.6"),
    "F2": ("Reasoning prior: reasoning text raises Knowledge and Vision-Centric",
           "A larger reasoning-combination share raises Avg VQA and Vision-Centric VQA "
           "progressively up to 75 %; the reasoning-heavy categories (Knowledge, Vision-Centric) "
           "gain, the perception-heavy ones much less.", "Fig. 4, §3.3"),
    "F3": ("Perception prior: visual text helps General and OCR, then saturates",
           "A small share of visual-combination text helps, then the gain saturates or declines "
           "(visual-world labels, Fig. 4); perception comes diffusely from broad text.",
           "Fig. 4, §3.3"),
    "F4": ("Structure: a perception and a reasoning cluster of categories",
           "Spearman correlations over the 3B MLLMs pair General with OCR & Chart (0.37) and "
           "Knowledge with Vision-Centric (0.33); cross-cluster pairs are near zero.", "Fig. 5"),
    "F5": ("Best mixture: an interior optimum of the reasoning x visual grid",
           "Over 30 blends of 50-85 % reasoning and 5-30 % visual text, Avg VQA peaks inside the "
           "grid, at about 60 % reasoning and 15 % visual.", "Table 1, §3.4"),
    "F6": ("Encoders: the reasoning prior holds with every vision encoder",
           "With MetaCLIP-B/16, DINOv2-G and MAE-H alike, Knowledge and Vision-Centric rise with "
           "the reasoning share; perception-heavy trends differ between encoders.", "Fig. 6, §3.6"),
    "F7": ("SFT data: perception data serves perception, reasoning data Knowledge",
           "Withholding perception-oriented SFT data costs General and OCR & Chart more than "
           "withholding reasoning-oriented data does; Knowledge loses more without reasoning "
           "data.", "Fig. 7, §3.6"),
    "F8": ("Scale-up: the balanced mixture beats the language-favourable one",
           "At 7B / 1T tokens the balanced mixture (mix6) beats the language-favourable one (mix0) "
           "on VQA with comparable (here lower) perplexity; blind instruction tuning helps "
           "Knowledge and costs OCR & Chart.", "Table 3, Table 6 (App. K)"),
    "F9": ("Alignment: LLM-vision alignment rises with scale and language ability",
           "Mutual k-NN alignment of LLM and vision representations rises with the LLM's "
           "competence (PRH: with 1 - bits-per-byte) and, in LSBS, with the reasoning share "
           "(0.0508-0.0520).", "PRH Fig. 3; LSBS Fig. 11, App. A.3"),
    "F10": ("Single sources: reasoning sources lead on Knowledge / Vision-Centric",
            "Every single-source LLM with Vision-Centric above 42 % read reasoning-centric (code, "
            "math, academia) or visual-rich (arts, food) text; web-crawl is best on General and "
            "OCR & Chart.", "Fig. 3, §3.2"),
}


# ---------------------------------------------------------------------------------------------
# Parts, verdicts, rows


@dataclasses.dataclass
class Finding:
    """One finding's parts (empty when not run) and what the row says beside them."""

    id: str
    title: str
    paper: dict[str, Any]
    parts: list[Part] = dataclasses.field(default_factory=list)
    runs: list[Mapping[str, Any]] = dataclasses.field(default_factory=list)
    missing: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    seeds: list[int] = dataclasses.field(default_factory=list)
    # Whether every part resamples runs (rank correlations): run-to-run variation is then inside
    # the interval even with one seed per condition.
    over_runs: bool = False

    @classmethod
    def of(cls, fid: str, value: float | None = None, numbers: str = "") -> Finding:
        """Finding ``fid`` with its title and the paper's statement (``STATEMENTS``), and the
        paper's value of the headline statistic and its numbers in words where it has them."""
        title, statement, citation = STATEMENTS[fid]
        return cls(fid, title, {"statement": statement, "citation": citation, "value": value,
                                "numbers": numbers})

    def count_in(self, table: Table) -> None:
        """The table's runs and seeds count towards the row (a run in two tables once), with
        its note on question counts."""
        counted = {id(r) for r in self.runs}
        self.runs += [r for r in table.runs if id(r) not in counted]
        self.seeds += table.seeds
        if table.without_questions:
            self.notes.append(f"{table.without_questions} run(s) without question counts: their "
                              "scores enter without question noise.")

    def row(self, level: float = LEVEL) -> dict[str, Any]:
        base = {"id": self.id, "title": self.title, "paper": self.paper, "level": level,
                "n_runs": len(self.runs)}
        if self.missing is not None or not self.parts:
            return {**base, "statistic": None, "unit": "", "estimate": None,
                    "interval": [None, None], "verdict": "not run",
                    "reason": f"Not run: {self.missing or 'no part could be computed'}.",
                    "parts": [], "notes": self.notes, "details": self.details,
                    "seeds_per_condition": None}
        head = self.parts[0]
        verdict, reason = decide(self.parts, level)
        notes = list(self.notes)
        if self.seeds and max(self.seeds) <= 1 and not self.over_runs:
            notes.append("One seed per condition: the intervals hold question noise, not "
                         "training-seed variation.")
        return {**base, "statistic": head.name, "unit": head.unit, "estimate": float(head.estimate),
                "interval": list(head.interval(level)), "verdict": verdict, "reason": reason,
                "parts": [p.to_dict(level) for p in self.parts], "notes": notes,
                "details": self.details,
                "seeds_per_condition": [min(self.seeds), max(self.seeds)] if self.seeds else None}


# ---------------------------------------------------------------------------------------------
# The paper's numbers, read at run time


class PaperFacts:
    """The paper's tables (``../shared/paper`` CSVs and SPEC.md); None where a file is absent."""

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder is not None else None

    def _file(self, name: str) -> Path | None:
        path = self.folder / name if self.folder is not None else None
        return path if path is not None and path.is_file() else None

    def fig5(self) -> tuple[list[str], np.ndarray] | None:
        path = self._file("fig5_spearman.csv")
        return structure.read_matrix(path) if path else None

    def table1(self) -> tuple[np.ndarray, np.ndarray] | None:
        path = self._file("table1_grid.csv")
        return mixtures.read_table1(path) if path else None

    def table3(self) -> dict[tuple[str, str], dict[str, float]] | None:
        """(mixture, blind_tuning) -> the row's numbers."""
        path = self._file("table3_scaleup.csv")
        if path is None:
            return None
        with open(path, newline="") as f:
            return {(r["mixture"], r["blind_tuning"]): {k: float(v) for k, v in r.items()
                                                        if k not in ("model", "mixture", "blind_tuning")}
                    for r in csv.DictReader(f)}

    def _spec(self) -> str | None:
        path = self._file("SPEC.md")
        return path.read_text(encoding="utf-8") if path else None

    def fig7(self) -> dict[str, dict[str, float]] | None:
        """SPEC A6.4: condition -> remaining performance (%) per column."""
        text = self._spec()
        return markdown_table(text, "Condition") if text else None

    def fig3(self) -> dict[str, float] | None:
        """SPEC A4.5: source -> Avg VQA (%) of its single-source 3B LLM."""
        text = self._spec()
        m = re.search(r"Parsed from figure labels[^:]*:\s*(.*?)\.\s", text or "")
        if not m:
            return None
        out = {}
        for item in m.group(1).split(","):
            name, value = item.strip().rsplit(" ", 1)
            key = re.sub(r"[\s-]+", "_", name.strip().lower())
            out[_SPEC_SOURCE_NAMES.get(key, key)] = float(value)
        return out


def markdown_table(text: str, first_header: str) -> dict[str, dict[str, float]] | None:
    """The first markdown table whose header starts with ``first_header``: row label -> column
    -> number (cells that are not numbers left out)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or cells[0] != first_header:
            continue
        out = {}
        for row in lines[i + 2:]:
            if not row.startswith("|"):
                break
            vals = [c.strip() for c in row.strip().strip("|").split("|")]
            out[vals[0]] = {h: float(v) for h, v in zip(cells[1:], vals[1:])
                            if re.fullmatch(r"-?[0-9.]+", v)}
        return out
    return None


# ---------------------------------------------------------------------------------------------
# Runs: identity, conditions, adaptation


def seed_of(record: Mapping[str, Any]) -> int:
    s = record.get("seed")
    return int(s) if s is not None and not (isinstance(s, float) and math.isnan(s)) else 0


def condition_of(record: Mapping[str, Any]) -> str:
    return str(record.get("condition") or record.get("run"))


def tokens_of(record: Mapping[str, Any]) -> float:
    """The run's token budget (the tokens it read when it names none): the design's value, the
    same for every scale, where the tokens read differ by a few batches."""
    t = float_value(record, "token_budget")
    return t if math.isfinite(t) else float_value(record, "tokens")


def mixture_name(record: Mapping[str, Any]) -> str | None:
    mix = mixtures.mixture_of(record)
    return mix.name if mix is not None else None


def llm_key(record: Mapping[str, Any]) -> tuple:
    """What decides a run's LLM: scale, tokens and text mixture."""
    return str(record.get("scale")), tokens_of(record), mixture_name(record) or str(record.get("mixture"))


def distinct_runs(records: Sequence[Mapping[str, Any]]) -> list[dict]:
    """The records less repeats: one run reported by two studies (the same LLM, encoder, SFT
    set and seed, with the same scores) counts once."""
    seen, out = set(), []
    for r in records:
        key = (llm_key(r), *report_paper.adaptation_of(r), seed_of(r),
               tuple(sorted((r.get("categories") or {}).items())), str(r.get("overall")))
        if key not in seen:
            seen.add(key)
            out.append(dict(r))
    return out


def main_adaptation(records: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """The most common (encoder, SFT set): the paper's default adaptation in a whole study."""
    counts = Counter(report_paper.adaptation_of(r) for r in records)
    return counts.most_common(1)[0][0] if counts else None


def with_adaptation(records, adaptation) -> list:
    return [r for r in records if report_paper.adaptation_of(r) == adaptation]


# ---------------------------------------------------------------------------------------------
# Scores of conditions with their bootstrap draws


def group_by(records: Sequence[Mapping[str, Any]], key: Callable) -> dict[Any, list]:
    out: dict[Any, list] = defaultdict(list)
    for r in records:
        out[key(r)].append(r)
    return dict(out)


@dataclasses.dataclass
class Context:
    records: list[dict]
    paper: PaperFacts
    n_boot: int
    seed: int
    fit_n_boot: int

    def streams(self, finding_id: str) -> Streams:
        return Streams(self.seed, int(finding_id[1:]))


def _missing_categories(records, needed: Sequence[str]) -> list[str]:
    have = set(curves.categories_of(records))
    return [c for c in needed if c not in have]


# ---------------------------------------------------------------------------------------------
# F1 scale


def crossed(runs: Sequence[Mapping[str, Any]]) -> bool:
    """Whether size and budget vary apart: some size at >= 2 budgets and some budget at >= 2
    sizes (slopes at fixed tokens and at fixed size both have data)."""
    points = {(float_value(r, "params"), tokens_of(r)) for r in runs}
    per_size, per_budget = Counter(n for n, _ in points), Counter(d for _, d in points)
    return max(per_size.values(), default=0) >= 2 and max(per_budget.values(), default=0) >= 2


def scale_series(records: Sequence[Mapping[str, Any]], *,
                 budgets: bool = True) -> tuple[str | None, list, str]:
    """(text mixture, its runs, why not) of the scale sweep: runs of one text mixture with the
    usual adaptation and positive tokens at >= 2 sizes, with ``budgets`` also at >= 2 budgets
    varied apart from size (``crossed``); web-crawl (the paper's Fig. 2) when it qualifies,
    else the mixture with the most (size, budget) points."""
    runs = [r for r in with_adaptation(records, main_adaptation(records))
            if tokens_of(r) > 0 and float_value(r, "params") > 0]
    by_mix = group_by(runs, mixture_name)
    points = {m: len({(float_value(r, "params"), tokens_of(r)) for r in rs})
              for m, rs in by_mix.items()}
    sizes = {m: len({float_value(r, "params") for r in rs}) for m, rs in by_mix.items()}
    ok = [m for m, rs in by_mix.items() if sizes[m] >= 2 and (not budgets or crossed(rs))]
    if not ok:
        most = max(by_mix, key=lambda m: (points[m], str(m)), default=None)
        need = "runs of one text mixture at >= 2 model sizes" + (
            ", some size at two token budgets and some budget at two sizes" if budgets else "")
        return None, [], (f"a scale sweep: {need} (the most complete, {most}, has "
                          f"{sizes.get(most, 0)} size(s) and {points.get(most, 0)} (size, budget) "
                          "point(s))")
    pick = "web_crawl" if "web_crawl" in ok else max(ok, key=lambda m: (points[m], str(m)))
    return pick, by_mix[pick], ""


def _loss_parts(runs, ctx: Context) -> tuple[list[Part], str | None, dict]:
    points = report_paper.loss_points(runs)
    gap = report_paper.loss_design_gap(points)
    if gap is not None:
        return [], f"an L(N, D) fit of the scale sweep's final loss ({gap})", {}
    fit = scaling.fit_chinchilla(*points.T, grid=report_paper.screened_starts(points),
                                 n_boot=ctx.fit_n_boot, boot_starts=0,
                                 level=LEVEL, seed=ctx.seed)
    if fit.boot is None:
        return [], "an L(N, D) fit with bootstrap refits (every resample was degenerate)", {}
    lowest = float(points[:, 2].min())
    parts = [Part("irreducible loss E as a share of the lowest loss", fit.E / lowest,
                  fit.boot[:, 2] / lowest, E_FLOOR, ">"),
             Part("loss exponent alpha (parameters)", fit.alpha, fit.boot[:, 3], EXPONENT_RANGE, "inside"),
             Part("loss exponent beta (tokens)", fit.beta, fit.boot[:, 4], EXPONENT_RANGE, "inside")]
    return parts, None, {"loss_fit": fit.to_dict()}


def scale_finding(ctx: Context) -> Finding:
    f = Finding.of("F1")
    mix, runs, why = scale_series(ctx.records)
    if why:
        f.missing = why
        return f
    cats = curves.categories_of(runs)
    columns = [OVERALL] + cats
    table = pooled_table(group_by(runs, lambda r: (float_value(r, "params"), tokens_of(r))),
                         columns, ctx.n_boot, ctx.streams(f.id).next())
    design = np.array([[1.0, math.log10(n), math.log10(d)] for n, d in table.keys])
    coef = regression(design, table.point.T)                    # [k, 3]
    coef_draws = regression(design, table.draws.transpose(0, 2, 1))  # [B, k, 3]
    for j, c in enumerate(columns):
        label = curves.category_label(c) if c != OVERALL else "Overall"
        for axis, what in ((1, "parameters"), (2, "tokens")):
            f.parts.append(Part(f"{label} slope on log10 {what}", 100 * coef[j, axis],
                                100 * coef_draws[:, j, axis], 0.0, ">", "pp per decade"))
    loss_parts, gap, details = _loss_parts(runs, ctx)
    if gap:
        f.parts, f.missing = [], gap
        return f
    f.parts += loss_parts
    f.count_in(table)
    f.details = {"text_mixture": mix, **details}
    return f


# ---------------------------------------------------------------------------------------------
# F2, F3, F6: proportion sweeps


def sweeps(records: Sequence[Mapping[str, Any]], label: str) -> dict[tuple[str, str], list]:
    """Per adaptation (encoder, SFT set), the runs of ``category:<label>=<p>`` at the sweep's
    most common scale."""
    swept = [r for r in records if (m := mixtures.mixture_of(r)) is not None
             and m.kind == "category" and m.label == label]
    out = {}
    for adaptation, runs in group_by(swept, report_paper.adaptation_of).items():
        out[adaptation] = report_paper.main_scale(runs)[1]
    return out


def share_of(record: Mapping[str, Any]) -> float:
    return float(mixtures.mixture_of(record).percent)


def _sweep_table(runs, ctx_n_boot: int, rng) -> Table:
    return pooled_table(group_by(runs, share_of), PAPER_CATEGORIES, ctx_n_boot, rng)


def share_slopes(table: Table, names: Sequence[str]) -> tuple[float, np.ndarray]:
    """(slope, draws) of the mean of the named categories on the share, in pp per 0 -> 100 %."""
    design = np.column_stack([np.ones(len(table.keys)), np.array(table.keys) / 100.0])
    point, draws = table.values(names)
    return 100 * float(regression(design, point)[1]), 100 * regression(design, draws)[:, 1]


def reasoning_parts(table: Table, prefix: str = "") -> list[Part]:
    """F2's statistics on one sweep: the reasoning categories' slope over the perception ones',
    and each reasoning category's slope."""
    unit = "pp per 0-100% share"
    r, r_d = share_slopes(table, REASONING)
    p, p_d = share_slopes(table, PERCEPTION)
    parts = [Part(f"{prefix}Knowledge + Vision-Centric slope minus General + OCR & Chart slope",
                  r - p, r_d - p_d, 0.0, ">", unit)]
    for c in REASONING:
        s, s_d = share_slopes(table, (c,))
        parts.append(Part(f"{prefix}{curves.category_label(c)} slope on the share", s, s_d, 0.0, ">", unit))
    return parts


def _sweep_gap(runs, label: str) -> str | None:
    shares = {share_of(r) for r in runs}
    if len(shares) < MIN_SHARES:
        return (f"a {label} proportion sweep (category:{label}=<p>) at >= {MIN_SHARES} shares "
                f"({len(shares)} here)")
    missing = _missing_categories(runs, PAPER_CATEGORIES)
    return f"the four categories ({', '.join(missing)} missing)" if missing else None


def _main_sweep(ctx: Context, label: str) -> tuple[list, str | None]:
    found = sweeps(ctx.records, label)
    if not found:
        return [], f"a {label} proportion sweep (category:{label}=<p>; none here)"
    # The usual encoder and SFT set's sweep (the encoder study adds others), else the longest.
    runs = found.get(main_adaptation(ctx.records)) or max(found.values(), key=len)
    return runs, _sweep_gap(runs, label)


def reasoning_finding(ctx: Context) -> Finding:
    f = Finding.of("F2")
    runs, gap = _main_sweep(ctx, mixture_config.REASONING)
    if gap:
        f.missing = gap
        return f
    table = _sweep_table(runs, ctx.n_boot, ctx.streams(f.id).next())
    f.parts = reasoning_parts(table)
    f.count_in(table)
    return f


def perception_finding(ctx: Context) -> Finding:
    f = Finding.of("F3")
    runs, gap = _main_sweep(ctx, mixture_config.VISUAL)
    shares = {share_of(r) for r in runs}
    if not gap and not {0.0, 25.0, 100.0} <= shares:
        gap = f"a visual-combination sweep with shares 0, 25 and 100 % (found {sorted(shares)})"
    if gap:
        f.missing = gap
        return f
    table = _sweep_table(runs, ctx.n_boot, ctx.streams(f.id).next())
    slope, slope_d = share_slopes(table, PERCEPTION)
    point, draws = table.values(PERCEPTION)
    at = {k: i for i, k in enumerate(table.keys)}
    first = lambda v: v[..., at[25.0]] - v[..., at[0.0]]  # noqa: E731
    rest = lambda v: v[..., at[100.0]] - v[..., at[25.0]]  # noqa: E731
    f.parts = [Part("General + OCR & Chart slope on the visual share", slope, slope_d, 0.0, ">",
                    "pp per 0-100% share"),
               Part("gain from 0 to 25 % minus gain from 25 to 100 % (General + OCR & Chart)",
                    100 * float(first(point) - rest(point)), 100 * (first(draws) - rest(draws)),
                    0.0, ">", "pp")]
    total = float(point[at[100.0]] - point[at[0.0]])
    f.details = {"share_of_gain_in_first_quarter": float(first(point)) / total if total else None}
    f.count_in(table)
    return f


def encoder_finding(ctx: Context) -> Finding:
    f = Finding.of("F6")
    found = sweeps(ctx.records, mixture_config.REASONING)
    sft = main_adaptation(ctx.records)[1] if ctx.records else None
    usable = {a: runs for a, runs in found.items()
              if a[1] == sft and _sweep_gap(runs, mixture_config.REASONING) is None}
    if len(usable) < 2:
        f.missing = (f"reasoning-combination sweeps (>= {MIN_SHARES} shares) with >= 2 encoders "
                     f"({len(usable)} here)")
        return f
    streams = ctx.streams(f.id)
    for (encoder, _), runs in sorted(usable.items()):
        table = _sweep_table(runs, ctx.n_boot, streams.next())
        f.parts += reasoning_parts(table, prefix=f"{encoder}: ")
        f.count_in(table)
    f.details = {"encoders": sorted(e for e, _ in usable)}
    return f


# ---------------------------------------------------------------------------------------------
# F4 structure


def structure_finding(ctx: Context) -> Finding:
    fig5 = ctx.paper.fig5()
    paper_value = numbers = None
    if fig5 is not None:
        paper_value = float(within_minus_cross(np.asarray(fig5[1]), list(fig5[0])))
        numbers = f"within minus cross-cluster rho = {paper_value:.3g} over 105 3B MLLMs"
    f = Finding.of("F4", paper_value, numbers or "")
    adaptation = main_adaptation(ctx.records)
    scored = [r for r in with_adaptation(ctx.records, adaptation)
              if all(math.isfinite(curves.accuracy_of(r, c)) for c in PAPER_CATEGORIES)]
    scale, runs, note = report_paper.main_scale(scored)
    groups = group_by(runs, condition_of)
    if len(groups) < report_paper.MIN_SPEARMAN_RUNS:
        f.missing = (f">= {report_paper.MIN_SPEARMAN_RUNS} conditions with all four category "
                     f"scores at one scale ({len(groups)} here)")
        return f
    streams = ctx.streams(f.id)
    table = pooled_table(groups, PAPER_CATEGORIES, ctx.n_boot, streams.next())
    idx = table.resampled(streams.next())
    draws = table.draws[np.arange(ctx.n_boot)[:, None], idx]   # [B, n, 4]
    estimate = within_minus_cross(structure.spearman(table.point), PAPER_CATEGORIES)
    f.parts = [Part("mean within-cluster rho minus mean cross-cluster rho", estimate,
                    within_minus_cross(structure.batched_spearman(draws), PAPER_CATEGORIES),
                    0.0, ">", "rho", paper_value)]
    f.count_in(table)
    f.over_runs, f.details = True, {"scale": scale}
    f.notes += [note] if note else []
    return f


def within_minus_cross(rho: np.ndarray, categories: Sequence[str]) -> Any:
    """Mean rho of the two paper clusters' pairs minus the mean of the four cross pairs;
    ``rho`` [..., k, k] over ``categories``."""
    at = {c: i for i, c in enumerate(categories)}
    pair = lambda a, b: rho[..., at[a], at[b]]  # noqa: E731
    within = (pair(*PERCEPTION) + pair(*REASONING)) / 2.0
    cross = sum(pair(a, b) for a in PERCEPTION for b in REASONING) / 4.0
    return within - cross


# ---------------------------------------------------------------------------------------------
# F5 best mixture


def hull_depth(region: surfaces.SampledRegion, points: np.ndarray) -> np.ndarray:
    """Signed distance of points [m, 2] from the hull's edge: positive inside."""
    z = region.reduce(points)
    a, b = region.equations[:, :-1], region.equations[:, -1]
    return -np.max(z @ a.T + b, axis=-1)


def quadratic_maximum_depth(region: surfaces.SampledRegion, beta: np.ndarray) -> float:
    """Depth of a 2-D quadratic's maximum inside the hull; -inf when it has no maximum."""
    xs, eig = surfaces.stationary_point(beta, 2)
    if not (np.all(eig < 0) and np.all(np.isfinite(xs))):
        return -math.inf
    return float(hull_depth(region, xs[None, :])[0])


def _paper_best_cell(paper: PaperFacts) -> tuple[np.ndarray | None, str]:
    """Table 1's best cell (reasoning %, visual %) and its words; (None, "") without the CSV."""
    t1 = paper.table1()
    if t1 is None:
        return None, ""
    i = int(np.argmax(t1[1]))
    best = t1[0][i]
    return best, f"best cell {best[0]:g} % reasoning / {best[1]:g} % visual at {t1[1][i]:g} %"


def grid_cells(records: Sequence[Mapping[str, Any]]) -> tuple[str | None, dict, str]:
    """(scale, runs by (reasoning %, visual %), note) of the grid mixtures with the usual
    adaptation at the grid's most common scale."""
    cells = [r for r in with_adaptation(records, main_adaptation(records))
             if (m := mixtures.mixture_of(r)) is not None and m.kind == "grid"
             and math.isfinite(curves.accuracy_of(r, OVERALL))]
    scale, runs, note = report_paper.main_scale(cells)
    return scale, group_by(runs, mixtures.shares_of), note


def _optimum_details(region: surfaces.SampledRegion, beta: np.ndarray, betas: np.ndarray,
                     best: np.ndarray | None) -> tuple[dict, list[str]]:
    """Where the surface peaks inside the hull, with its interval, and how far from Table 1's
    best cell."""
    cands = region.candidates(surfaces.GRID_POINTS)
    feats = surfaces.quadratic_features(cands)
    opt, opts = cands[int(np.argmax(feats @ beta))], cands[np.argmax(feats @ betas.T, axis=0)]
    details = {"optimum": dict(zip(mixtures.SHARE_AXES, opt.tolist())),
               "optimum_interval": {a: list(percentile_interval(opts[:, i], LEVEL))
                                    for i, a in enumerate(mixtures.SHARE_AXES)}}
    if best is None:
        return details, []
    lo, hi = percentile_interval(np.linalg.norm(opts - best, axis=1), LEVEL)
    details.update(distance_to_paper_best=float(np.linalg.norm(opt - best)), distance_interval=[lo, hi])
    return details, [f"The best mixture in the hull is {opt[0]:.3g} % reasoning / {opt[1]:.3g} % "
                     f"visual, {fmt_g(details['distance_to_paper_best'])} share points from the paper's "
                     f"{best[0]:g} / {best[1]:g} ({LEVEL:.0%} interval {fmt_g(lo)} to {fmt_g(hi)})."]


def grid_finding(ctx: Context) -> Finding:
    best, numbers = _paper_best_cell(ctx.paper)
    f = Finding.of("F5", None, numbers)
    scale, groups, note = grid_cells(ctx.records)
    x = np.array(list(groups), dtype=np.float64).reshape(-1, 2)
    design = surfaces.quadratic_features(x) if len(x) else np.empty((0, 6))
    if len(x) <= 6 or np.linalg.matrix_rank(design) < 6 or np.linalg.matrix_rank(x - x.mean(0)) < 2:
        f.missing = ("grid cells (grid:reasoning=R,visual=V) that pin a full quadratic: >= 7 "
                     f"cells spanning both shares ({len(x)} here)")
        return f
    table = pooled_table(groups, [OVERALL], ctx.n_boot, ctx.streams(f.id).next())
    region = surfaces.SampledRegion(x)
    beta = regression(design, table.point[:, 0])
    betas = regression(design, table.draws[:, :, 0])            # [B, 6]
    depth = np.array([quadratic_maximum_depth(region, b) for b in betas])
    f.parts = [Part("depth of the fitted quadratic's maximum inside the grid's hull",
                    quadratic_maximum_depth(region, beta), depth, 0.0, ">", "share points")]
    details, notes = _optimum_details(region, beta, betas, best)
    f.details = {"scale": scale, "share_of_draws_without_maximum": float(np.mean(depth == -math.inf)),
                 **details}
    f.count_in(table)
    f.notes += notes + ([note] if note else [])
    return f


# ---------------------------------------------------------------------------------------------
# F7 SFT data, F8 scale-up


def _one_llm_sets(records, sets: Sequence[str]) -> list | None:
    """The runs of the LLM (and encoder) instruction-tuned with every named SFT set; the one with
    the most runs when several are."""
    by_llm = group_by([r for r in records if str(r.get("sft_set")) in sets],
                      lambda r: (llm_key(r), str(r.get("encoder"))))
    full = [rs for rs in by_llm.values() if {str(r.get("sft_set")) for r in rs} >= set(sets)]
    return max(full, key=len) if full else None


def _fig7_paper(paper: PaperFacts) -> tuple[float | None, float | None, str]:
    """Fig. 7's two differences (perception score, Knowledge) and its numbers in words."""
    fig7 = paper.fig7() or {}
    p0, r0 = fig7.get("Perception SFT 0 %"), fig7.get("Reasoning SFT 0 %")
    if not p0 or not r0:
        return None, None, ""
    perception = lambda row: (row["General"] + row["OCR & Chart"]) / 2  # noqa: E731
    words = (f"remaining performance without perception SFT data: General {p0['General']:g}, "
             f"OCR & Chart {p0['OCR & Chart']:g}, Knowledge {p0['Knowledge']:g} %; without "
             f"reasoning SFT data: {r0['General']:g}, {r0['OCR & Chart']:g}, {r0['Knowledge']:g} %")
    return perception(r0) - perception(p0), p0["Knowledge"] - r0["Knowledge"], words


def remaining(table: Table, values: np.ndarray, names: Sequence[str], sft: str) -> np.ndarray:
    """Fig. 7's unit: each named category's score with SFT set ``sft`` as % of the full set's,
    averaged over the categories; ``values`` [..., condition, column]."""
    cols = [table.columns.index(c) for c in names]
    at = table.keys.index
    return (100 * values[..., at(sft), cols] / values[..., at("full"), cols]).mean(axis=-1)


def sft_finding(ctx: Context) -> Finding:
    paper_value, paper_k, numbers = _fig7_paper(ctx.paper)
    f = Finding.of("F7", paper_value, numbers)
    runs = _one_llm_sets(ctx.records, ("full", "perception0", "reasoning0"))
    if runs is None:
        f.missing = "one LLM instruction-tuned with the full, perception0 and reasoning0 SFT sets"
        return f
    table = pooled_table(group_by(runs, lambda r: str(r.get("sft_set"))),
                         [*PERCEPTION, "knowledge"], ctx.n_boot, ctx.streams(f.id).next())
    for names, a, b, label, paper in (
            (PERCEPTION, "reasoning", "perception", "General + OCR & Chart", paper_value),
            (("knowledge",), "perception", "reasoning", "Knowledge", paper_k)):
        gap = lambda v: (remaining(table, v, names, f"{a}0")  # noqa: E731
                         - remaining(table, v, names, f"{b}0"))
        f.parts.append(Part(f"{label}: remaining performance without {a} SFT data minus without "
                            f"{b} SFT data", float(gap(table.point)), gap(table.draws), 0.0, ">",
                            "% of the full set's score", paper))
    f.count_in(table)
    return f


def _table3_paper(paper: PaperFacts) -> tuple[dict[str, float], str]:
    """Table 3 / 6 in the parts' units (VQA gain, relative perplexity, blind-tuning gains in pp,
    averaged over the two mixtures) and in words; ({}, "") without the CSV."""
    t3 = paper.table3()
    if t3 is None:
        return {}, ""
    m0, m6 = t3[("mix0", "no")], t3[("mix6", "no")]
    blind = {c: float(np.mean([t3[(m, "yes")][c] - t3[(m, "no")][c] for m in ("mix0", "mix6")]))
             for c in ("knowledge", "ocr_chart")}
    values = {"vqa": m6["overall"] - m0["overall"], "ppl": m6["ppl"] / m0["ppl"] - 1.0, **blind}
    return values, (f"overall VQA {m6['overall']:g} (mix6) vs {m0['overall']:g} (mix0), perplexity "
                    f"{m6['ppl']:g} vs {m0['ppl']:g}; blind tuning: Knowledge {blind['knowledge']:+.3g} "
                    f"pp, OCR & Chart {blind['ocr_chart']:+.3g} pp")


def scale_up_runs(records: Sequence[Mapping[str, Any]]) -> tuple[list, tuple, list[str], str]:
    """(runs, (params, tokens, encoder), mixtures run with blind tuning too, why not) of mix0 and
    mix6 at the largest scale where both have the full SFT set."""
    runs = [r for r in records if mixture_name(r) in ("mix0", "mix6")
            and str(r.get("sft_set")) in ("full", "full+blind")]
    where_of = lambda r: (float_value(r, "params"), tokens_of(r), str(r.get("encoder")))  # noqa: E731
    pairs = group_by([r for r in runs if str(r.get("sft_set")) == "full"], where_of)
    both = [k for k, rs in pairs.items() if {mixture_name(r) for r in rs} == {"mix0", "mix6"}]
    if not both:
        return [], (), [], "mix0 and mix6 runs with the full SFT set at one scale"
    here = [r for r in runs if where_of(r) == max(both)]
    blind = [m for m in ("mix0", "mix6")
             if {str(r.get("sft_set")) for r in here if mixture_name(r) == m} == {"full", "full+blind"}]
    if not blind:
        return [], (), [], "a full+blind run beside a full one of mix0 or mix6 at the scale-up's scale"
    if not all(math.isfinite(objectives_of(r)[1]) for r in here if str(r.get("sft_set")) == "full"):
        return [], (), [], ("the perplexity of the mix0 and mix6 LLMs (language.perplexity.mean "
                            "or perplexity)")
    return here, max(both), blind, ""


def scale_up_finding(ctx: Context) -> Finding:
    paper, numbers = _table3_paper(ctx.paper)
    f = Finding.of("F8", paper.get("vqa"), numbers)
    here, where, blind_mixes, why = scale_up_runs(ctx.records)
    if why:
        f.missing = why
        return f
    streams = ctx.streams(f.id)
    acc = pooled_table(group_by(here, lambda r: (mixture_name(r), str(r.get("sft_set")))),
                       [OVERALL, "knowledge", "ocr_chart"], ctx.n_boot, streams.next())
    ppl = pooled_table(group_by([r for r in here if str(r.get("sft_set")) == "full"], mixture_name),
                       ["ppl"], ctx.n_boot, streams.next(), scalar_draws(lambda r: objectives_of(r)[1]))
    col = lambda v, c, k: 100 * v[..., acc.keys.index(k), acc.columns.index(c)]  # noqa: E731
    vqa = lambda v: col(v, OVERALL, ("mix6", "full")) - col(v, OVERALL, ("mix0", "full"))  # noqa: E731
    rel = lambda v: v[..., ppl.keys.index("mix6"), 0] / v[..., ppl.keys.index("mix0"), 0] - 1.0  # noqa: E731
    blind = lambda v, c: np.mean([col(v, c, (m, "full+blind")) - col(v, c, (m, "full"))  # noqa: E731
                                  for m in blind_mixes], axis=0)
    f.parts = [Part("overall VQA of mix6 minus mix0", float(vqa(acc.point)), vqa(acc.draws), 0.0, ">",
                    "pp", paper.get("vqa")),
               Part("perplexity of mix6 relative to mix0", float(rel(ppl.point)), rel(ppl.draws),
                    PPL_MARGIN, "<", "(ppl6 - ppl0) / ppl0", paper.get("ppl")),
               Part("Knowledge gain from blind tuning", float(blind(acc.point, "knowledge")),
                    blind(acc.draws, "knowledge"), 0.0, ">", "pp", paper.get("knowledge")),
               Part("OCR & Chart gain from blind tuning", float(blind(acc.point, "ocr_chart")),
                    blind(acc.draws, "ocr_chart"), 0.0, "<", "pp", paper.get("ocr_chart"))]
    f.count_in(acc)
    f.details = {"params": where[0], "tokens": where[1], "blind_tuned": blind_mixes}
    return f


# ---------------------------------------------------------------------------------------------
# F9 alignment, F10 single sources


def alignment_score(record: Mapping[str, Any]) -> float:
    return float_value(report_paper.alignment_of(record), "score")


def _rank_part(name: str, table: Table, other: Callable[[Any], float], rng, paper=None) -> Part:
    """Spearman of the table's one column with a per-condition value, conditions resampled."""
    x = np.array([other(k) for k in table.keys], dtype=np.float64)
    idx = table.resampled(rng)
    draws = spearman_pair(table.draws[np.arange(len(idx))[:, None], idx, 0], x[idx])
    return Part(name, float(spearman_pair(table.point[:, 0], x)), draws, 0.0, ">", "rho", paper)


def alignment_finding(ctx: Context) -> Finding:
    f = Finding.of("F9")
    llms = {}  # one record per LLM and seed: the alignment belongs to the LLM
    for r in ctx.records:
        if math.isfinite(alignment_score(r)):
            llms.setdefault((llm_key(r), seed_of(r)), r)
    aligned = list(llms.values())
    mix, series, why = scale_series(aligned, budgets=False)
    language = [r for r in aligned if math.isfinite(objectives_of(r)[1])]
    least = report_paper.MIN_SPEARMAN_RUNS
    if why or min(len({llm_key(r) for r in rs}) for rs in (series, language)) < least:
        f.missing = (f"alignment scores of >= {least} LLMs of one text mixture at >= 2 sizes and "
                     f"of >= {least} LLMs with a perplexity ({len(aligned)} LLM(s) with an "
                     "alignment score here)")
        return f
    streams = ctx.streams(f.id)
    score = scalar_draws(alignment_score)
    by_scale = pooled_table(group_by(series, llm_key), ["alignment"], ctx.n_boot, streams.next(), score)
    params = {llm_key(r): float_value(r, "params") for r in series}
    by_lang = pooled_table(group_by(language, llm_key), ["alignment"], ctx.n_boot, streams.next(), score)
    ability = {k: -float(np.mean([objectives_of(r)[1] for r in rs]))
               for k, rs in group_by(language, llm_key).items()}
    f.parts = [_rank_part("Spearman rho of alignment with parameters (scale sweep)", by_scale,
                          params.get, streams.next()),
               _rank_part("Spearman rho of alignment with language ability (minus perplexity)",
                          by_lang, ability.get, streams.next())]
    f.count_in(by_scale)
    f.count_in(by_lang)
    f.over_runs = True
    f.details = {"text_mixture": mix}
    return f


def single_sources(records: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """Source -> runs of one-source mixtures, usual adaptation, the most common scale."""
    one = [r for r in with_adaptation(records, main_adaptation(records))
           if (m := mixtures.mixture_of(r)) is not None and m.kind == "sources" and len(m.weights) == 1]
    runs = report_paper.main_scale(one, by_tokens=True)[1]
    return group_by(runs, lambda r: mixtures.mixture_of(r).weights[0][0])


def source_finding(ctx: Context) -> Finding:
    fig3 = ctx.paper.fig3()
    numbers = ""
    if fig3:
        ranked = sorted(fig3.items(), key=lambda kv: -kv[1])
        numbers = "Avg VQA " + ", ".join(f"{s} {v:g}" for s, v in ranked)
    f = Finding.of("F10", None, numbers)
    groups = single_sources(ctx.records)
    missing = _missing_categories([r for rs in groups.values() for r in rs], PAPER_CATEGORIES)
    reasoning = [s for s in groups if s in REASONING_SOURCES]
    if len(groups) < MIN_SOURCES or missing or not reasoning or PERCEPTION_SOURCE not in groups \
            or len(reasoning) == len(groups):
        f.missing = (f"single-source runs of >= {MIN_SOURCES} sources with the four categories, "
                     f"among them web_crawl, one of {', '.join(REASONING_SOURCES)} and another "
                     f"(sources here: {', '.join(sorted(groups)) or 'none'})")
        return f
    streams = ctx.streams(f.id)
    table = pooled_table(groups, [OVERALL, *PAPER_CATEGORIES], ctx.n_boot, streams.next())
    is_r = np.array([k in reasoning for k in table.keys])
    is_web = np.array([k == PERCEPTION_SOURCE for k in table.keys])

    def lead(names, inside):
        point, draws = table.values(names)
        gap = lambda v: 100 * (v[..., inside].mean(-1) - v[..., ~inside].mean(-1))  # noqa: E731
        return float(gap(point)), gap(draws)

    shared = [k for k in table.keys if fig3 and k in fig3]
    if len(shared) >= MIN_SOURCES:
        sub = pooled_table({k: groups[k] for k in shared}, [OVERALL], ctx.n_boot, streams.next())
        f.parts.append(_rank_part("Spearman rho of overall accuracy with the paper's Fig. 3", sub,
                                  fig3.get, streams.next()))
    else:
        f.notes.append("The paper's Fig. 3 values (SPEC.md A4.5) are not available for >= "
                       f"{MIN_SOURCES} of these sources: no rank agreement computed.")
    f.parts += [Part("reasoning sources minus the others on Knowledge + Vision-Centric",
                     *lead(REASONING, is_r), 0.0, ">", "pp"),
                Part("web-crawl minus the others on General + OCR & Chart",
                     *lead(PERCEPTION, is_web), 0.0, ">", "pp")]
    leaders = {}
    for name, cols in (("knowledge_vision_centric", REASONING), ("general_ocr_chart", PERCEPTION)):
        point = table.values(cols)[0]
        leaders[name] = [table.keys[i] for i in np.argsort(-point)[:3]]
    f.details = {"leaders": leaders}
    f.notes.append(f"Lead on Knowledge + Vision-Centric: {', '.join(leaders['knowledge_vision_centric'])}; "
                   f"on General + OCR & Chart: {', '.join(leaders['general_ocr_chart'])}.")
    f.count_in(table)
    return f


# ---------------------------------------------------------------------------------------------
# All of them


FINDINGS = (scale_finding, reasoning_finding, perception_finding, structure_finding, grid_finding,
            encoder_finding, sft_finding, scale_up_finding, alignment_finding, source_finding)


def findings(records: Any, *, paper_dir: str | Path | None = PAPER_DIR, n_boot: int = N_BOOT,
             seed: int = SEED, fit_n_boot: int = FIT_N_BOOT) -> list[dict[str, Any]]:
    """One row per finding F1..F10 (see the module notes) from run records (nested or flat)."""
    ctx = Context(distinct_runs(as_records(records)), PaperFacts(paper_dir), n_boot, seed, fit_n_boot)
    return [make(ctx).row(LEVEL) for make in FINDINGS]


def findings_json(rows: Sequence[Mapping[str, Any]], *, study: str, n_boot: int = N_BOOT,
                  seed: int = SEED) -> dict[str, Any]:
    """findings.json's content: the rows with the rule that decided them."""
    return {"study": study, "level": LEVEL, "n_boot": n_boot, "seed": seed,
            "rule": ("reproduced: every part's interval on the paper's side of its null; "
                     "contradicted: a part's simultaneous (Bonferroni) interval entirely on the "
                     "other side; inconclusive: otherwise; not run: runs missing"),
            "findings": list(rows)}
