"""Text mixtures: source weights that sum to one.

mix0..mix10 are the paper's table 2 (3B LLMs, 50B tokens), in percent of tokens per source.
mix0 is the language-favourable recipe, mix6 the balanced one that ranks first overall.
"""

from __future__ import annotations

from collections.abc import Mapping

MIXTURE_SOURCES = ("web_crawl", "encyclopedia", "academic", "literature", "math", "code")

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


def validate_weights(weights: Mapping[str, float], *, tolerance: float = TOLERANCE) -> None:
    """Weights must be non-negative and sum to one; the error names the sum."""
    negative = {k: v for k, v in weights.items() if v < 0}
    if negative:
        raise ValueError(f"mixture weights must be non-negative, got {negative}")
    total = sum(weights.values())
    if abs(total - 1.0) > tolerance:
        raise ValueError(f"mixture weights must sum to 1, but they sum to {total:.6g}: {dict(weights)}")


def get(name: str) -> dict[str, float]:
    """The source weights of a named mixture, renormalised to sum exactly to one."""
    name = ALIASES.get(name, name)
    if name not in MIXTURES:
        valid = ", ".join(list(MIXTURES) + list(ALIASES))
        raise ValueError(f"unknown mixture {name!r}; valid mixtures: {valid}")
    weights = MIXTURES[name]
    validate_weights(weights, tolerance=PAPER_TOLERANCE)
    total = sum(weights.values())
    return {k: v / total for k, v in weights.items()}


def resolve(mixture: str | Mapping[str, float]) -> dict[str, float]:
    """A mixture given by name or as explicit weights, validated."""
    if isinstance(mixture, str):
        return get(mixture)
    weights = {str(k): float(v) for k, v in dict(mixture).items()}
    validate_weights(weights)
    return weights
