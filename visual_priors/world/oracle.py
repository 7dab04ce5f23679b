"""Scripted oracles: answer a world question by reading its scene, or from its text alone.

`scene_oracle` evaluates the question's `query` on the scene itself (object positions, colours,
depths, pixel areas from the renderer's mask, the chart's values, the sign's text, the kinds'
facts), never looking at which option the generator marked, so a question it fails on is one
whose scene does not decide its answer. `text_oracle` sees the question text and options only,
plus the world's fact table (what pre-training text states): it answers knowledge questions that
name their kind and guesses otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from visual_priors.world.questions import (FACT_VALUE, QUADRANTS, YES_NO, Question,
                                           ground_distance, holds, side_of)
from visual_priors.world.scenes import PlacedObject, Scene

if TYPE_CHECKING:
    from visual_priors.world.world import World


class OracleError(ValueError):
    """The scene does not decide the question (no object or several fit its reference)."""


def _one(objs, what: str) -> PlacedObject:
    if len(objs) != 1:
        raise OracleError(f"{len(objs)} objects are {what}")
    return objs[0]


def _of_kind(scene: Scene, kind: int) -> PlacedObject:
    return _one([o for o in scene.objects if o.kind.index == kind], f"of kind {kind}")


def _referred(scene: Scene, where: tuple) -> PlacedObject:
    if where[0] == "only":
        return _one(list(scene.objects), "in the image")
    if where[0] == "named":
        return _of_kind(scene, where[1])
    if where[0] == "side":
        ordered = sorted(scene.objects, key=lambda o: o.x)
        return ordered[0] if where[1] == "left" else ordered[-1]
    if where[0] == "arrow_from":
        src = scene.objects.index(_of_kind(scene, where[1]))
        return scene.objects[_one([b for a, b in scene.arrows if a == src], "arrow targets")]
    raise OracleError(f"unknown reference {where!r}")


def _yes(flag: bool) -> str:
    return YES_NO[0] if flag else YES_NO[1]


def _legs_compare(scene: Scene) -> str:
    left, right = sorted(scene.objects, key=lambda o: o.x)
    a, b = left.kind.legs, right.kind.legs
    if a == b:
        return "neither of them has legs" if a == 0 else "both have legs, and the same number of them"
    return "the one on the left" if a > b else "the one on the right"


def _camera_motion(views: tuple[Scene, ...]) -> str:
    first, second = views
    pairs = [(p, next(q for q in second.objects if q.kind.index == p.kind.index)) for p in first.objects]
    zoom = float(np.mean([q.size / p.size for p, q in pairs]))
    if zoom > 1.15:
        return "forward"
    if zoom < 1 / 1.15:
        return "backward"
    shift = float(np.mean([q.x - p.x for p, q in pairs]))
    # What the camera sees moves the other way.
    return "to the left" if shift > 0 else "to the right"


def answer_text(question: Question, world: "World") -> str:
    """The answer the scene gives to the question, as option text."""
    s, q = question.scene, question.query
    if not q:
        raise OracleError(f"{question.benchmark} question carries no query")
    op, args = q[0], q[1:]
    objs = s.objects
    if op == "colour_of":
        return _of_kind(s, args[0]).colour
    if op == "colour_beside":
        ref = _of_kind(s, args[0])
        return _one([o for o in objs if o is not ref and (o.x < ref.x) == (args[1] == "left")],
                    f"{args[1]} of the reference").colour
    if op == "shape_of_colour":
        return _one([o for o in objs if o.colour == args[0]], f"{args[0]}").kind.shape
    if op == "exists":
        return _yes(any(o.kind.index == args[0] for o in objs))
    if op == "count_is":
        return _yes(len(objs) == args[0])
    if op == "side_is":
        return _yes(side_of(_of_kind(s, args[0]), _of_kind(s, args[1])) == args[2])
    if op == "colour_is":
        return _yes(_of_kind(s, args[0]).colour == args[1])
    if op == "kind_at":
        return _referred(s, ("only",) if args[0] == "only" else ("side", args[0])).kind.name
    if op == "describes":
        shown = [text for text, d in args[0] if holds(s, d)]
        return _one(shown, "captions the scene shows")
    if op == "fact":
        return FACT_VALUE[args[0]](_referred(s, args[1]).kind)
    if op == "legs_compare":
        return _legs_compare(s)
    if op == "legs_total":
        return str(sum(o.kind.legs for o in objs))
    if op == "left_without":
        return str(sum(o.colour != args[0] for o in objs))
    if op == "count_plus":
        return str(sum(o.kind.index == args[0] for o in objs) + args[1])
    if op in ("sign_text", "card_text"):
        return s.sign.text
    if op == "chart_extreme":
        values = list(s.chart.values)
        best = max(values) if args[0] == "max" else min(values)
        return s.chart.colours[_one([i for i, v in enumerate(values) if v == best], "extreme")]
    if op == "chart_value":
        return str(s.chart.values[s.chart.colours.index(args[0])])
    if op == "chart_diff":
        c = s.chart
        return str(c.values[c.colours.index(args[0])] - c.values[c.colours.index(args[1])])
    if op == "count_all":
        return str(len(objs))
    if op == "count_kind":
        return str(sum(o.kind.index == args[0] for o in objs))
    if op == "count_colour":
        return str(sum(o.colour == args[0] for o in objs))
    if op == "side":
        return side_of(_of_kind(s, args[0]), _of_kind(s, args[1]))
    if op == "depth_extreme":
        return (min if args[0] == "closest" else max)(objs, key=lambda o: o.depth).kind.name
    if op == "nearest_to":
        anchor = _of_kind(s, args[0])
        return min((o for o in objs if o is not anchor),
                   key=lambda o: ground_distance(anchor, o, s.image_size)).kind.name
    if op == "camera_motion":
        return _camera_motion(question.views)
    if op == "quadrant":
        o = _of_kind(s, args[0])
        half = s.image_size / 2
        return QUADRANTS[2 * (o.y > half) + (o.x > half)]
    if op == "area_extreme":
        shares = world.object_shares(s)
        i = int(np.argmax(shares) if args[0] == "most" else np.argmin(shares))
        return objs[i].kind.name
    if op == "present":
        return _one([opt for opt in question.options if any(o.kind.name == opt for o in objs)],
                    "options present")
    raise OracleError(f"unknown query {op!r}")


def scene_oracle(question: Question, world: "World") -> int | None:
    """The option the scene makes true, or None when the scene does not decide it."""
    try:
        text = answer_text(question, world)
    except OracleError:
        return None
    hits = [i for i, o in enumerate(question.options) if o == text]
    return hits[0] if len(hits) == 1 else None


def text_oracle(question: Question, world: "World") -> int | None:
    """The option the text alone gives: for a knowledge question that names its kind, the kind's
    fact from the world's table; otherwise None (the question cannot be answered unseen)."""
    q = question.query
    if q and q[0] == "fact" and q[2][0] == "named":
        value = FACT_VALUE[q[1]](world.kinds[q[2][1]])
        if value in question.options:
            return question.options.index(value)
    return None

