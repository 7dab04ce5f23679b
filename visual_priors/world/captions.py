"""Captions: short descriptions naming each object with its colour and position."""

from __future__ import annotations

import math
from collections import Counter

from visual_priors.world.rng import Rand
from visual_priors.world.scenes import PlacedObject, Scene
from visual_priors.world.text_base import NUMBER_WORDS, a, join_list, noun

_PREFIXES = ("", "", "a picture of ", "an image of ", "a photo showing ", "")


def position_phrase(o: PlacedObject, image_size: int) -> str:
    h = o.x / image_size
    v = o.y / image_size
    col = "left" if h < 0.36 else "right" if h > 0.64 else "middle"
    row = "top" if v < 0.42 else "bottom" if v > 0.74 else "middle"
    if row == "middle" and col == "middle":
        return "in the centre"
    if row == "middle":
        return f"on the {col}"
    if col == "middle":
        return f"at the {row}"
    return f"at the {row} {col}"


def size_word(o: PlacedObject, image_size: int) -> str:
    s = o.size / image_size
    return "small " if s < 0.17 else "big " if s > 0.42 else ""


def object_phrase(o: PlacedObject, image_size: int, sizes: bool = True) -> str:
    return a(f"{size_word(o, image_size) if sizes else ''}{o.colour} {o.kind.name}")


def relation(A: PlacedObject, B: PlacedObject) -> str:
    """The clearest relation of A to B: in front of / behind, left / right, above / below."""
    dx, dy = B.x - A.x, B.y - A.y
    overlap = math.hypot(dx, dy) < 0.9 * (A.radius + B.radius)
    if overlap and abs(A.depth - B.depth) > 0.02:
        return "in front of" if A.depth < B.depth else "behind"
    if abs(dx) >= abs(dy):
        return "to the left of" if dx > 0 else "to the right of"
    return "above" if dy > 0 else "below"


def _objects_caption(r: Rand, scene: Scene) -> str:
    S = scene.image_size
    objs = sorted(scene.objects, key=lambda o: (o.x, o.y))
    if len(objs) == 1:
        return f"{object_phrase(objs[0], S)} {position_phrase(objs[0], S)}"
    if len(objs) == 2:
        A, B = (objs[0], objs[1]) if r.chance(0.5) else (objs[1], objs[0])
        return f"{object_phrase(A, S)} {relation(A, B)} {object_phrase(B, S)}"
    groups = Counter((o.kind.name, o.colour) for o in objs)
    if max(groups.values()) > 1:
        parts = []
        for (name, colour), n in groups.items():
            parts.append(a(f"{colour} {name}") if n == 1 else
                         f"{NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else n} {colour} {noun(name, n)}")
        return join_list(parts)
    return join_list([f"{object_phrase(o, S)} {position_phrase(o, S)}" for o in objs])


def caption(r: Rand, scene: Scene) -> str:
    prefix = r.choice(_PREFIXES)
    if scene.layout == "chart":
        c = scene.chart
        top = max(c.values)
        text = f"a bar chart with {join_list(list(c.colours))} bars"
        if c.values.count(top) == 1:
            text += f"; the {c.colours[c.values.index(top)]} bar is the tallest"
        return text
    if scene.layout == "card":
        t = scene.sign.text
        what = f"the number {t}" if t.isdigit() else f"the word {t}"
        return r.choice((f"a white card with {what} printed on it", f"a label that reads {t}",
                         f"printed text: {t}"))
    if scene.layout == "diagram":
        hops = [f"from the {scene.objects[i].kind.name} to the {scene.objects[j].kind.name}"
                for i, j in scene.arrows]
        return f"a diagram with arrows {join_list(hops)}"
    parts = []
    if scene.objects:
        parts.append(_objects_caption(r, scene))
    if scene.sign is not None:
        t = scene.sign.text
        parts.append(r.choice((f"a sign showing the number {t}", f"a sign that reads {t}",
                               f"a sign with {t} written on it")))
    return prefix + " and ".join(parts)
