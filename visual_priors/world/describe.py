"""A scene's ground-truth description in words: what perfect perception would report.

The signal chain's fourth hop (H4) asks a model each question with the image replaced by this
text, so what it then gets right is what its reasoning achieves once perception is perfect.
The description states everything the questions read off an image, in one fixed order:
objects left to right (size, colour, shape, kind, where), depth order, the area each takes
when that decides a question, sign and card text, chart values, diagram arrows, and both
views of a multi-view image. Facts of kinds (legs, use, ...) are never stated: those stay the
LLM's own knowledge.
"""

from __future__ import annotations

from visual_priors.world.captions import position_phrase, size_word
from visual_priors.world.scenes import PlacedObject, Scene


def _object(o: PlacedObject, image_size: int) -> str:
    """'small red square wopla (top left)'."""
    where = position_phrase(o, image_size).replace("in the ", "").replace("at the ", "").replace("on the ", "")
    return f"{size_word(o, image_size)}{o.colour} {o.kind.shape} {o.kind.name} ({where})"


def _objects(scene: Scene) -> str:
    S = scene.image_size
    objs = sorted(scene.objects, key=lambda o: (o.x, o.y))
    if len(objs) == 1:
        return _object(objs[0], S)
    text = "left to right: " + ", ".join(_object(o, S) for o in objs)
    if scene.layout == "scene":
        near = sorted(scene.objects, key=lambda o: o.depth)
        big = sorted(scene.objects, key=lambda o: -o.size)
        text += "; nearest first: " + ", ".join(o.kind.name for o in near)
        text += "; largest first: " + ", ".join(o.kind.name for o in big)
    return text


def describe(scene: Scene, views: tuple[Scene, ...] = ()) -> str:
    """One line describing the scene (or both views of a multi-view image), in a fixed terse
    form: 'left to right: red square wopla (top left), blue cross koop (right); nearest first:
    koop, wopla; largest first: wopla, koop.'"""
    if len(views) >= 2:
        return f"left view: {describe(views[0])} right view: {describe(views[1])}"
    if scene.layout == "chart":
        c = scene.chart
        kind = "bar chart" if c.style == "bar" else "line chart"
        return f"{kind}: " + ", ".join(f"{col} {v}" for col, v in zip(c.colours, c.values)) + "."
    if scene.layout == "card":
        return f"card printed with {scene.sign.text}."
    parts = []
    if scene.objects:
        parts.append(_objects(scene))
    if scene.layout == "diagram":
        parts.append("arrows: " + ", ".join(f"{scene.objects[i].kind.name} to {scene.objects[j].kind.name}"
                                            for i, j in scene.arrows))
    if scene.sign is not None:
        parts.append(f"sign reads {scene.sign.text}")
    return ("; ".join(parts) or "empty") + "."
