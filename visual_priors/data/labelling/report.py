"""Label-rate tables (the layout of the paper's table 4), precision/recall against ground truth,
and labelled excerpts of world text to measure a labeller on.

    rates = label_rates({"web_crawl": bits_web, "code": bits_code})   # % of segments per label
    print(format_rates(rates, "csv"))
    ex = world_excerpts(World(seed=0), "test", 100)                     # texts + true bits
    print(format_precision_recall(precision_recall(labeller.label(ex.texts), ex.bits)))
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from visual_priors.errors import BadValue
from visual_priors.data.labelling import ALL_LABELS, LABELS, with_combinations

FORMATS = ("table", "csv")


def _as_all_labels(bits: np.ndarray) -> np.ndarray:
    """[n, 6] base bits -> [n, 8]; [n, 8] bits (already with combinations) pass unchanged."""
    bits = np.asarray(bits, bool)
    if bits.ndim == 2 and bits.shape[1] == len(ALL_LABELS):
        return bits
    if bits.ndim == 2 and bits.shape[1] == len(LABELS):
        return with_combinations(bits)
    raise ValueError(f"label bits must be [n, {len(LABELS)}] or [n, {len(ALL_LABELS)}], "
                     f"got {bits.shape}")


def label_rates(bits_by_source: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Percent of segments of each source that carry each of `ALL_LABELS` (8 columns; the
    combination columns are derived as "any of", so they are never below their members).
    A source with no segments gets NaN rates."""
    out: dict[str, dict[str, float]] = {}
    for source, bits in bits_by_source.items():
        full = _as_all_labels(bits)
        if len(full) == 0:
            rates = np.full(len(ALL_LABELS), np.nan)
        else:
            rates = 100.0 * full.mean(axis=0)
        out[source] = {name: float(r) for name, r in zip(ALL_LABELS, rates)}
    return out


def _check_fmt(fmt: str) -> None:
    if fmt not in FORMATS:
        raise BadValue(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")


def _num(x: float, digits: int = 1) -> str:
    return "nan" if x != x else f"{x:.{digits}f}"


def _render(header: list[str], rows: list[list[str]], fmt: str) -> str:
    if fmt == "csv":
        return "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for k, r in enumerate([header, *rows]):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def format_rates(rates: Mapping[str, Mapping[str, float]], fmt: str = "table",
                 beside: Mapping[str, Sequence[float]] | None = None,
                 beside_name: str = "table 4") -> str:
    """Rates as the paper's table 4 (`../shared/paper/table4_label_rates.csv`): header
    `source,code_reasoning,...,visual_combination`, one row per source, one decimal.

    `beside` (source -> 8 rates in `ALL_LABELS` order, e.g. `config.mixtures.TABLE4_RATES`)
    adds, under each source it has, a row `<source> (<beside_name>)` with its rates and a row
    `<source> (difference)`: measured minus reference, in points."""
    _check_fmt(fmt)
    header = ["source", *ALL_LABELS]
    rows = []
    for src, r in rates.items():
        mine = [float(r[name]) for name in ALL_LABELS]
        rows.append([str(src), *(_num(x) for x in mine)])
        if beside is not None and src in beside:
            ref = [float(x) for x in beside[src]]
            rows.append([f"{src} ({beside_name})", *(_num(x) for x in ref)])
            rows.append([f"{src} (difference)",
                         *("nan" if a != a else f"{a - b:+.1f}" for a, b in zip(mine, ref))])
    return _render(header, rows, fmt)


def precision_recall(pred_bits: np.ndarray, true_bits: np.ndarray, *, intervals: bool = False,
                     confidence: float = 0.95, draws: int = 2000,
                     seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per label of `ALL_LABELS` (combinations derived from the base bits of each side):
    precision, recall, f1 and support (segments truly carrying the label). Precision is NaN
    without predictions, recall NaN without true segments, f1 NaN only without either.

    With `intervals`, also `precision_ci` and `recall_ci` (Wilson score intervals: well behaved
    near 0 and 1 and for the few positives a gold set has) and `f1_ci` (percentile bootstrap over
    segments, `draws` resamples shared by all labels), each [low, high] at `confidence`."""
    pred, true = _as_all_labels(pred_bits), _as_all_labels(true_bits)
    if pred.shape != true.shape:
        raise ValueError(f"predicted bits {pred.shape} and true bits {true.shape} differ in shape")
    out: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(ALL_LABELS):
        p, t = pred[:, j], true[:, j]
        tp = float(np.sum(p & t))
        n_pred, n_true = float(p.sum()), float(t.sum())
        precision = tp / n_pred if n_pred else float("nan")
        recall = tp / n_true if n_true else float("nan")
        # 2tp / (predicted + true): the harmonic mean of precision and recall where both exist,
        # and 0 when there are predictions or true segments but no hit.
        f1 = 2 * tp / (n_pred + n_true) if n_pred + n_true else float("nan")
        out[name] = {"precision": precision, "recall": recall, "f1": f1, "support": n_true}
        if intervals:
            out[name]["precision_ci"] = _wilson(tp, n_pred, confidence)
            out[name]["recall_ci"] = _wilson(tp, n_true, confidence)
    if intervals:
        for name, ci in zip(ALL_LABELS, _f1_bootstrap(pred, true, confidence, draws, seed)):
            out[name]["f1_ci"] = ci
    return out


def _wilson(hits: float, n: float, confidence: float) -> list[float]:
    if n <= 0:
        return [float("nan"), float("nan")]
    from scipy.stats import binomtest  # scipy only where intervals are asked for

    ci = binomtest(int(hits), int(n)).proportion_ci(confidence, method="wilson")
    return [float(ci.low), float(ci.high)]


def _f1_bootstrap(pred: np.ndarray, true: np.ndarray, confidence: float, draws: int,
                  seed: int) -> list[list[float]]:
    """Percentile interval of each column's F1 over resamples of the segments (rows)."""
    n = len(pred)
    if n == 0:
        return [[float("nan"), float("nan")] for _ in range(pred.shape[1])]
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=draws).astype(np.float64)  # [draws, n]
    tp = counts @ (pred & true)
    den = counts @ pred + counts @ true
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(den > 0, 2 * tp / den, np.nan)
    tail = 100 * (1 - confidence) / 2
    out = []
    for col in f1.T:
        col = col[~np.isnan(col)]
        out.append([float(x) for x in np.percentile(col, [tail, 100 - tail])] if len(col)
                   else [float("nan"), float("nan")])
    return out


def format_precision_recall(pr: Mapping[str, Mapping[str, Any]], fmt: str = "table") -> str:
    """One row per label: `label,precision,recall,f1,support` (ratios with three decimals).
    Where `pr` has intervals (`precision_recall(..., intervals=True)`), the table shows each
    ratio as `value [low, high]` and csv adds `_low`/`_high` columns after each ratio."""
    _check_fmt(fmt)
    ratios = ("precision", "recall", "f1")
    with_ci = all(f"{r}_ci" in m for m in pr.values() for r in ratios) and bool(pr)
    header = ["label"]
    for r in ratios:
        header += [r, f"{r}_low", f"{r}_high"] if with_ci and fmt == "csv" else [r]
    header.append("support")
    rows = []
    for name, m in pr.items():
        row = [name]
        for r in ratios:
            if not with_ci:
                row.append(_num(m[r], 3))
            elif fmt == "csv":
                row += [_num(m[r], 3), *(_num(x, 3) for x in m[f"{r}_ci"])]
            else:
                low, high = m[f"{r}_ci"]
                row.append(f"{_num(m[r], 3)} [{_num(low, 2)}, {_num(high, 2)}]")
        rows.append([*row, str(int(m["support"]))])
    return _render(header, rows, fmt)


# ----------------------------------------------------------------------- world excerpts

@dataclass(frozen=True)
class Excerpts:
    """Excerpts of world text with their true labels: texts[i] came from genres[i] and truly
    carries bits[i] (bool [n, 6] over `LABELS`)."""

    texts: list[str]
    bits: np.ndarray
    genres: list[str]

    def __len__(self) -> int:
        return len(self.texts)


_DOC_SEP = "\n\n"
CUTS = ("unit", "word")


def _rng(*key: Any) -> np.random.Generator:
    h = hashlib.blake2b(repr(key).encode(), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(h, "little"))


def world_excerpt(world: Any, genre: str, split: str, index: int, *, min_words: int = 150,
                  max_words: int = 600, cut: str = "unit", seed: int = 0) -> tuple[str, frozenset[str]]:
    """One excerpt of about `min_words`..`max_words` words from a stream of consecutive `genre`
    documents of `split` (joined by blank lines, as in a packed token stream) and the labels its
    characters truly carry (`Document.labels_between`, unioned over the documents it covers).

    cut="unit": the excerpt starts at a unit (a paragraph or program) and ends at the end of the
    unit that reaches the word target, so every unit it covers is whole. cut="word": it starts
    at any word of the first document and is exactly the target number of words long, cutting
    units anywhere (a unit's labels count as soon as one character of it is inside)."""
    if cut not in CUTS:
        raise BadValue(f"unknown cut {cut!r}; valid cuts: {', '.join(CUTS)}")
    if not 0 < min_words <= max_words:
        raise BadValue(f"need 0 < min_words <= max_words, got {min_words}, {max_words}")
    r = _rng("world_excerpt", seed, genre, split, index)
    target = int(r.integers(min_words, max_words + 1))
    doc_index = int(r.integers(0, 2**31 - 1))
    first = world.document(genre, doc_index, split)
    # Where in the first document the excerpt starts.
    if cut == "unit":
        start = first.spans[int(r.integers(0, len(first.spans)))][0] if first.spans else 0
    else:
        starts = [m.start() for m in re.finditer(r"\S+", first.text)]
        start = starts[int(r.integers(0, len(starts)))] if starts else 0
    # Concatenate documents until enough words follow `start`.
    pieces, spans, offset, words = [], [], 0, 0
    doc = first
    while True:
        if pieces:
            pieces.append(_DOC_SEP)
            offset += len(_DOC_SEP)
        pieces.append(doc.text)
        spans.extend((offset + s, offset + e, lab) for s, e, lab in doc.spans)
        offset += len(doc.text)
        words = len("".join(pieces)[start:].split())
        if words >= target + (1 if cut == "word" else 0):
            break
        doc_index += 1
        doc = world.document(genre, doc_index, split)
    stream = "".join(pieces)
    if cut == "unit":
        end, count = start, 0
        for s, e, _ in spans:
            if e <= start:
                continue
            count += len(stream[max(s, start):e].split())
            end = e
            if count >= target:
                break
    else:
        ms = list(re.finditer(r"\S+", stream[start:]))
        end = start + ms[target - 1].end()
    labels: set[str] = set()
    for s, e, lab in spans:
        if s < end and start < e:
            labels |= lab
    return stream[start:end], frozenset(labels)


def world_excerpts(world: Any, split: str, n_per_genre: int, *, genres: Sequence[str] | None = None,
                   min_words: int = 150, max_words: int = 600, cut: str = "unit",
                   seed: int = 0) -> Excerpts:
    """`n_per_genre` excerpts (see `world_excerpt`) of each genre (default: all world genres)."""
    from visual_priors.data.labelling import names_to_bits
    from visual_priors.world import GENRES

    texts, sets, gs = [], [], []
    for genre in (GENRES if genres is None else genres):
        for i in range(n_per_genre):
            text, labels = world_excerpt(world, genre, split, i, min_words=min_words,
                                         max_words=max_words, cut=cut, seed=seed)
            texts.append(text)
            sets.append(labels)
            gs.append(genre)
    return Excerpts(texts=texts, bits=names_to_bits(sets), genres=gs)
