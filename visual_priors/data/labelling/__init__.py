"""Segment labels: the paper's six categories and two "any of" combinations, and the labellers.

A labeller maps segment texts to a boolean matrix [n, 6] over `LABELS`; the combination labels
are derived, never predicted (`with_combinations`). Backends: `lexical` (no model), `llm`
(an OpenAI-compatible chat endpoint, cached on disk), `distilled` (a linear classifier trained
on another backend's or the world's labels).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from visual_priors.errors import BadValue
from visual_priors.world.text_base import LABELS  # code, math, science, concept, attribute, relationship

REASONING = LABELS[:3]
VISUAL = LABELS[3:]
COMBINATIONS = {"reasoning_combination": REASONING, "visual_combination": VISUAL}
# The column order of the paper's table 4.
ALL_LABELS = (*REASONING, "reasoning_combination", *VISUAL, "visual_combination")


def with_combinations(bits: np.ndarray) -> np.ndarray:
    """[n, 6] base labels -> [n, 8] in `ALL_LABELS` order, each combination the "any of" its three."""
    bits = np.asarray(bits, bool)
    if bits.ndim != 2 or bits.shape[1] != len(LABELS):
        raise ValueError(f"label bits must be [n, {len(LABELS)}], got {bits.shape}")
    r, v = bits[:, :3], bits[:, 3:]
    return np.concatenate([r, r.any(1, keepdims=True), v, v.any(1, keepdims=True)], axis=1)


def label_column(name: str) -> int:
    """Index of a label (base or combination) in `ALL_LABELS`; the error lists the valid names."""
    if name not in ALL_LABELS:
        raise BadValue(f"unknown label {name!r}; valid labels: {', '.join(ALL_LABELS)}")
    return ALL_LABELS.index(name)


def names_to_bits(label_sets: Sequence[frozenset[str] | set[str]]) -> np.ndarray:
    """Sets of base label names -> bool [n, 6]."""
    out = np.zeros((len(label_sets), len(LABELS)), bool)
    for i, labels in enumerate(label_sets):
        for name in labels:
            out[i, LABELS.index(name)] = True
    return out


# The labeller interface and backends (imported last: the registry loads backends lazily).
from visual_priors.data.labelling.registry import BACKENDS, Labeller, get_labeller  # noqa: E402


def config_for_source(config, real_text: bool) -> dict:
    """The labeller config one source is labelled with. A lexical config that names no `rules`
    reads a real corpus with rules="real" (tuned on hand-labelled real segments: the world rules
    find science in scripture and almost no visual concepts in prose); world text keeps the config
    as given, so it keeps the world rules that match the world's own labels and its cached labels."""
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    config = dict(config)
    if real_text and config.get("name") == "lexical" and "rules" not in config:
        config["rules"] = "real"
    return config


def labeller_from_config(config, world=None) -> Labeller:
    """A labeller from a config mapping {"name": backend, **options} (a dict or a ConfigDict).
    For the lexical backend, `nouns="world"` means the names of `world`'s kinds."""
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    options = dict(config)
    if "name" not in options:
        raise BadValue(f"a labeller config needs a name (one of {', '.join(BACKENDS)}), "
                       f"got {sorted(options)}")
    name = options.pop("name")
    if name == "lexical" and isinstance(options.get("nouns"), str):
        if options["nouns"] != "world":
            raise BadValue(f"nouns must be a list of words or 'world', got {options['nouns']!r}")
        if world is None:
            raise ValueError("nouns='world' needs a world")
        from visual_priors.data.labelling.lexical import world_nouns
        options["nouns"] = world_nouns(world)
    return get_labeller(name, **options)
