"""What a run reads: source weights, a category sweep point or a grid cell, all validated.

Three kinds of mixture, each a list of components (a share of the run's tokens drawn from the
segments that satisfy a label predicate, within some sources):

- **sources** (`"mix6"`, `"source:code"` for one source alone, or explicit weights): one
  component per source, its weight of tokens.
  mix0..mix10 are the paper's table 2 (3B LLMs, 50B tokens), in percent of tokens per source.
- **category** (`"category:visual_concept=25"`): p% of tokens from segments carrying the label,
  the rest from segments without it, each drawn from the pool in natural proportions.
- **grid** (`"grid:reasoning=60,visual=15"`): r% of tokens from segments with a reasoning label
  and v% with a visual label (the "any of" combinations), the rest from segments with neither.
  Segments carrying both count toward both shares. With `overlap="natural"` (the default) they
  make up r x P(visual | reasoning in the pool) of the tokens, clipped to what keeps every
  component non-negative; the realised reasoning and visual shares are then exactly r and v.
  With `overlap="exclusive"` no such segment is drawn (r% reasoning-only, v% visual-only).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from visual_priors.data.labelling import ALL_LABELS
from visual_priors.errors import BadValue

MIXTURE_SOURCES = ("web_crawl", "encyclopedia", "academic", "literature", "math", "code")
# The paper's sixteen sources (App. B.1); the default pool of category and grid mixtures.
PAPER_SOURCES = ("web_crawl", "encyclopedia", "academic", "literature", "math", "code", "arts",
                 "biology", "computer_science", "economics", "food", "law", "medicine",
                 "philosophy", "politics", "qa_forum")

_TABLE2 = {
    "mix0": (50.0, 2.5, 2.5, 20.0, 5.0, 20.0),
    "mix1": (48.3, 3.4, 2.9, 17.0, 5.8, 22.5),
    "mix2": (46.7, 4.3, 3.3, 14.0, 6.7, 25.0),
    "mix3": (45.0, 5.2, 3.8, 11.0, 7.5, 27.5),
    "mix4": (43.3, 6.1, 4.2, 8.0, 8.3, 30.0),
    "mix5": (41.7, 7.1, 4.6, 5.0, 9.2, 32.5),
    "mix6": (40.0, 8.0, 5.0, 2.0, 10.0, 35.0),
    "mix7": (36.5, 7.0, 7.5, 2.0, 11.5, 35.5),
    "mix8": (33.0, 6.5, 9.5, 2.0, 12.0, 37.0),
    "mix9": (29.5, 6.0, 11.5, 2.0, 12.5, 38.5),
    "mix10": (26.0, 5.5, 12.5, 2.0, 13.0, 41.0),
}
MIXTURES = {
    name: dict(zip(MIXTURE_SOURCES, (w / 100.0 for w in row))) for name, row in _TABLE2.items()
}
# The paper's names for the two recipes it scales up.
ALIASES = {"language_favorable": "mix0", "balanced": "mix6"}
# Rows of table 2 sum to 100 only to the paper's rounding (mix1 sums to 99.9).
PAPER_TOLERANCE = 2e-3
TOLERANCE = 1e-6

# Table 4: % of 1,024-token segments of each source carrying each label (ALL_LABELS order).
TABLE4_RATES = {
    "web_crawl": (3.5, 3.6, 8.6, 10.0, 27.7, 14.1, 13.5, 26.9),
    "encyclopedia": (0.5, 2.3, 3.0, 3.4, 12.2, 2.9, 6.0, 12.4),
    "academic": (21.0, 68.2, 74.4, 83.3, 5.2, 0.7, 5.1, 5.3),
    "literature": (0.3, 1.3, 8.9, 9.1, 33.4, 8.4, 27.9, 33.5),
    "math": (31.1, 81.7, 83.2, 92.9, 7.8, 2.8, 6.6, 8.0),
    "code": (96.7, 13.3, 6.8, 97.3, 3.3, 2.0, 2.4, 3.7),
}

REASONING, VISUAL = "reasoning_combination", "visual_combination"
OVERLAP_RULES = ("natural", "exclusive")


def validate_weights(weights: Mapping[str, float], *, tolerance: float = TOLERANCE) -> None:
    """Weights must be finite, non-negative and sum to one; the error names the sum."""
    bad = {k: v for k, v in weights.items() if not math.isfinite(v) or v < 0}
    if bad:
        raise BadValue(f"mixture weights must be finite and non-negative, got {bad}")
    total = math.fsum(weights.values())
    if abs(total - 1.0) > tolerance:
        raise BadValue(f"mixture weights must sum to 1, but they sum to {total:.6g}: {dict(weights)}")


def get(name: str) -> dict[str, float]:
    """The source weights of a named mixture, renormalised to sum exactly to one."""
    name = ALIASES.get(name, name)
    if name not in MIXTURES:
        valid = ", ".join(list(MIXTURES) + list(ALIASES))
        raise BadValue(f"unknown mixture {name!r}; valid mixtures: {valid}, "
                       "source:<name>, category:<label>=<percent>, grid:reasoning=<r>,visual=<v>")
    weights = MIXTURES[name]
    validate_weights(weights, tolerance=PAPER_TOLERANCE)
    total = sum(weights.values())
    return {k: v / total for k, v in weights.items()}


def derived_shares(weights: Mapping[str, float],
                   rates: Mapping[str, Sequence[float]] = TABLE4_RATES) -> tuple[float, float]:
    """(reasoning %, visual %) of a source mixture: sum of weight x the source's combination rate.

    This is how table 2's reasoning and visual columns follow from table 4.
    """
    r_col, v_col = ALL_LABELS.index(REASONING), ALL_LABELS.index(VISUAL)
    missing = sorted(set(weights) - set(rates))
    if missing:
        raise BadValue(f"no label rates for source(s) {missing}; known: {', '.join(rates)}")
    return (math.fsum(w * rates[s][r_col] for s, w in weights.items()),
            math.fsum(w * rates[s][v_col] for s, w in weights.items()))


@dataclass(frozen=True)
class Component:
    """A share of the run's tokens, drawn from segments of `sources` that carry every label in
    `require` and none in `exclude` (label names from ALL_LABELS)."""

    name: str
    share: float
    sources: tuple[str, ...]
    require: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


# Tokens of the pool's segments that satisfy (require, exclude): what natural proportions need.
PoolTokens = Callable[[tuple[str, ...], tuple[str, ...]], int]


@dataclass(frozen=True)
class Mixture:
    """A validated mixture of one of the three kinds; `spec` is its canonical, hashable form."""

    kind: str  # "sources" | "category" | "grid"
    name: str
    weights: tuple[tuple[str, float], ...] = ()
    label: str = ""
    percent: float = 0.0
    reasoning: float = 0.0
    visual: float = 0.0
    overlap: str = "natural"
    pool: tuple[str, ...] = ()

    @property
    def sources(self) -> tuple[str, ...]:
        """Every source the mixture may draw from."""
        return tuple(s for s, _ in self.weights) if self.kind == "sources" else self.pool

    @property
    def spec(self) -> dict[str, Any]:
        if self.kind == "sources":
            return {"kind": "sources", "name": self.name, "weights": dict(self.weights)}
        if self.kind == "category":
            return {"kind": "category", "label": self.label, "percent": self.percent,
                    "pool": list(self.pool)}
        return {"kind": "grid", "reasoning": self.reasoning, "visual": self.visual,
                "overlap": self.overlap, "pool": list(self.pool)}

    def components(self, pool_tokens: PoolTokens | None = None) -> list[Component]:
        """The components with their token shares; zero-share components are left out.

        Grid mixtures with natural overlap need `pool_tokens` to know how often the pool's
        reasoning text also carries visual labels.
        """
        if self.kind == "sources":
            comps = [Component(s, w, (s,)) for s, w in self.weights]
        elif self.kind == "category":
            p = self.percent / 100
            comps = [Component(f"with {self.label}", p, self.pool, require=(self.label,)),
                     Component(f"without {self.label}", 1 - p, self.pool, exclude=(self.label,))]
        else:
            r, v = self.reasoning / 100, self.visual / 100
            both = 0.0
            if self.overlap == "natural":
                if pool_tokens is None:
                    raise BadValue("a grid mixture with natural overlap needs the pool's label "
                                   "statistics (pool_tokens)")
                with_r = pool_tokens((REASONING,), ())
                p_v_given_r = pool_tokens((REASONING, VISUAL), ()) / with_r if with_r else 0.0
                both = min(max(r * p_v_given_r, r + v - 1.0, 0.0), r, v)
            comps = [
                Component("reasoning and visual", both, self.pool, require=(REASONING, VISUAL)),
                Component("reasoning only", r - both, self.pool, require=(REASONING,), exclude=(VISUAL,)),
                Component("visual only", v - both, self.pool, require=(VISUAL,), exclude=(REASONING,)),
                Component("neither", 1 - r - v + both, self.pool, exclude=(REASONING, VISUAL)),
            ]
        return [c for c in comps if c.share > 1e-12]


def _percent(value: Any, what: str) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise BadValue(f"{what} must be a number in [0, 100], got {value!r}") from None
    if not (math.isfinite(p) and 0.0 <= p <= 100.0):
        raise BadValue(f"{what} must be in [0, 100], got {value!r}")
    return p


def _label(name: Any) -> str:
    if name not in ALL_LABELS:
        raise BadValue(f"unknown label {name!r}; valid labels: {', '.join(ALL_LABELS)}")
    return str(name)


def _pool(pool: Any, known_sources: Sequence[str] | None,
          default_pool: Sequence[str] | None) -> tuple[str, ...]:
    if pool is None:
        pool = PAPER_SOURCES if default_pool is None else default_pool
    pool = tuple((pool,) if isinstance(pool, str) else pool)
    if not pool:
        raise BadValue("a mixture's pool needs at least one source")
    _check_sources(pool, known_sources)
    return tuple(sorted(set(pool)))


def _check_sources(names: Sequence[str], known_sources: Sequence[str] | None) -> None:
    if known_sources is None:
        return
    unknown = sorted(set(names) - set(known_sources))
    if unknown:
        raise BadValue(f"unknown source(s) {unknown} in mixture; "
                       f"valid sources: {', '.join(sorted(known_sources))}")


_KV = re.compile(r"^\s*([a-z_]+)\s*=\s*([^,]+?)\s*$")


def _parse_string(text: str) -> dict[str, Any]:
    """'source:code' / 'category:visual_concept=25' / 'grid:reasoning=60,visual=15[,overlap=exclusive]'."""
    kind, _, rest = text.partition(":")
    if kind == "category":
        label, sep, percent = rest.partition("=")
        if not sep:
            raise BadValue(f"write a category mixture as category:<label>=<percent>, got {text!r}")
        return {"kind": "category", "label": label.strip(), "percent": percent.strip()}
    if kind == "source":  # one source alone, named after it (the single-source study)
        name = rest.strip()
        return {"kind": "sources", "name": name, "weights": {name: 1.0}}
    if kind == "grid":
        fields: dict[str, Any] = {"kind": "grid"}
        for item in rest.split(","):
            m = _KV.match(item)
            if not m or m.group(1) not in ("reasoning", "visual", "overlap"):
                raise BadValue("write a grid mixture as grid:reasoning=<r>,visual=<v>"
                               f"[,overlap=natural|exclusive], got {text!r}")
            fields[m.group(1)] = m.group(2)
        return fields
    return {"kind": "sources", "name": text}


def parse(mixture: str | Mapping[str, Any], known_sources: Sequence[str] | None = None,
          default_pool: Sequence[str] | None = None) -> Mixture:
    """Any mixture spec -> a validated `Mixture`; errors name the bad field.

    Accepts a table-2 name or alias, 'source:<name>' (that source alone), 'category:<label>=<p>', 'grid:reasoning=<r>,visual=<v>',
    plain source weights {source: weight}, or a dict with "kind" (as `Mixture.spec` writes it).
    `known_sources`, when given, is what source names must be among; category and grid
    mixtures without a pool draw from `default_pool` (the paper's sixteen sources if None).
    """
    if isinstance(mixture, Mixture):
        return mixture
    if isinstance(mixture, str):
        fields = _parse_string(mixture)
    else:
        fields = dict(mixture)
        if "kind" not in fields:
            fields = {"kind": "sources", "weights": fields}
    kind = fields.get("kind")
    if kind == "sources":
        if "weights" in fields:
            weights = {str(k): float(v) for k, v in dict(fields["weights"]).items()}
            named = fields.get("name")
            if named is not None and str(named) in MIXTURES:
                validate_weights(weights, tolerance=PAPER_TOLERANCE)
            else:
                validate_weights(weights)
            name = str(named) if named else ",".join(f"{k}={v:g}" for k, v in sorted(weights.items()))
        else:
            name = ALIASES.get(str(fields.get("name")), str(fields.get("name")))
            weights = get(name)
        weights = {k: v for k, v in weights.items() if v > 0}
        _check_sources(list(weights), known_sources)
        return Mixture("sources", name, weights=tuple(sorted(weights.items())))
    if kind == "category":
        label = _label(fields.get("label"))
        percent = _percent(fields.get("percent"), f"the share of {label}")
        pool = _pool(fields.get("pool"), known_sources, default_pool)
        return Mixture("category", f"{label}@{percent:g}", label=label, percent=percent, pool=pool)
    if kind == "grid":
        r = _percent(fields.get("reasoning"), "the reasoning share")
        v = _percent(fields.get("visual"), "the visual share")
        if r + v > 100.0 + 1e-9 and fields.get("overlap", "natural") == "exclusive":
            raise BadValue(f"reasoning {r:g}% + visual {v:g}% exceed 100% with exclusive overlap")
        overlap = str(fields.get("overlap", "natural"))
        if overlap not in OVERLAP_RULES:
            raise BadValue(f"unknown overlap rule {overlap!r}; valid: {', '.join(OVERLAP_RULES)}")
        pool = _pool(fields.get("pool"), known_sources, default_pool)
        name = f"r{r:g}-v{v:g}" + ("" if overlap == "natural" else "-exclusive")
        return Mixture("grid", name, reasoning=r, visual=v, overlap=overlap, pool=pool)
    raise BadValue(f"unknown mixture kind {kind!r}; valid kinds: sources, category, grid")


def resolve(mixture: str | Mapping[str, float]) -> dict[str, float]:
    """The source weights of a source mixture given by name or as explicit weights, validated."""
    m = parse(mixture)
    if m.kind != "sources":
        raise BadValue(f"{m.name} is a {m.kind} mixture, not source weights")
    return dict(m.weights)
