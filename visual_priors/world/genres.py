"""Documents of every genre, with the ground-truth labels their text carries."""

from __future__ import annotations

import math

from visual_priors.world import genres_code, genres_math, genres_prose, genres_visual
from visual_priors.world.kinds import Kind
from visual_priors.world.rng import Rand
from visual_priors.world.text_base import (CODE, LABELS, MATH, MAX_WORDS, MIN_WORDS, SCI, VA, VC,
                                           VR, DocBuilder, Document)

GENRES = ("visual_concept", "visual_attribute", "visual_relationship", "code", "math", "science",
          "encyclopedia", "narrative", "web")

# The label every document of a genre carries, and the labels it may carry at all.
GENRE_REQUIRED: dict[str, frozenset[str]] = {
    "visual_concept": frozenset({VC}),
    "visual_attribute": frozenset({VA}),
    "visual_relationship": frozenset({VR}),
    "code": frozenset({CODE}),
    "math": frozenset({MATH}),
    "science": frozenset({SCI}),
    "encyclopedia": frozenset(),
    "narrative": frozenset({VC}),
    "web": frozenset(),
}
GENRE_ALLOWED: dict[str, frozenset[str]] = {
    "visual_concept": frozenset({VC, VA}),
    "visual_attribute": frozenset({VA, VC, VR}),
    "visual_relationship": frozenset({VR, VC, VA}),
    "code": frozenset({CODE, VC, VA, VR}),
    "math": frozenset({MATH, VC, VA, VR}),
    "science": frozenset({SCI, VA}),
    "encyclopedia": frozenset({VA, SCI}),
    "narrative": frozenset({VC, VA, VR, SCI}),
    "web": frozenset(LABELS),
}


def _snippet(r: Rand, kinds: tuple[Kind, ...]) -> tuple[str, set[str]]:
    k = r.choice(kinds)
    who = r.choice(genres_prose.PEOPLE)
    text, lab = genres_prose.sighting(r, k, who, r.chance(0.5))
    return f"{text} {who} {r.choice(genres_prose.ACTIONS)}.", lab


def web_chunk(r: Rand, kinds: tuple[Kind, ...], genre: str) -> tuple[str, set[str]]:
    if genre == "encyclopedia":
        p = genres_prose.encyclopedia_entry(r, kinds, r.chance(0.5), r.chance(0.2))
    elif genre == "narrative":
        return _snippet(r, kinds)
    elif genre == "math":
        return genres_math.math_unit(r, kinds, r.chance(0.3))
    elif genre == "science":
        p = genres_prose.science_unit(r, kinds, r.chance(0.5))
    elif genre == "visual_concept":
        p = genres_visual.concept_scene(r, kinds, r.chance(0.5))
    elif genre == "visual_attribute":
        p = genres_visual.attribute_unit(r, kinds, r.chance(0.3), False)
    elif genre == "visual_relationship":
        p = genres_visual.relationship_unit(r, kinds, r.chance(0.5), r.chance(0.4))
    elif genre == "code":
        return genres_code.program(r, kinds, r.chance(0.3))
    else:
        raise ValueError(f"unknown web chunk genre {genre!r}")
    return p.text(), p.labels


def target_words(r: Rand) -> int:
    """Log-uniform length in [MIN_WORDS, MAX_WORDS]: many short documents, some long ones."""
    return int(round(math.exp(r.uniform(math.log(MIN_WORDS), math.log(MAX_WORDS)))))


def write_document(genre: str, r: Rand, kinds: tuple[Kind, ...]) -> Document:
    if genre not in GENRES:
        raise ValueError(f"unknown genre {genre!r}; valid genres: {', '.join(GENRES)}")
    doc = DocBuilder(target_words(r))
    if genre == "visual_concept":
        genres_visual.visual_concept_doc(r, kinds, doc)
    elif genre == "visual_attribute":
        genres_visual.visual_attribute_doc(r, kinds, doc)
    elif genre == "visual_relationship":
        genres_visual.visual_relationship_doc(r, kinds, doc)
    elif genre == "code":
        genres_code.code_doc(r, kinds, doc)
    elif genre == "math":
        genres_math.math_doc(r, kinds, doc)
    elif genre == "science":
        genres_prose.science_doc(r, kinds, doc)
    elif genre == "encyclopedia":
        genres_prose.encyclopedia_doc(r, kinds, doc)
    elif genre == "narrative":
        genres_prose.narrative_doc(r, kinds, doc)
    else:
        genres_prose.web_doc(r, kinds, doc, lambda rr, g: web_chunk(rr, kinds, g))
    sep = "\n\n" if genre in ("code", "encyclopedia", "web", "math") else (
        "\n\n" if r.chance(0.5) else " ")
    return Document(text=doc.text(sep), genre=genre, labels=frozenset(doc.labels),
                    spans=doc.spans(sep))
