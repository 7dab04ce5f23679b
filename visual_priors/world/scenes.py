"""Scenes: placed objects, optional sign, bar chart or diagram arrows, and their split.

A scene's split is a function of its content (a blake2b digest of its canonical key), so a train
scene can never also be a test scene: samplers redraw the background tint until the digest
matches the requested split, which leaves the geometry, and any question about it, unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from visual_priors.world.kinds import COLOUR_NAMES, SIZE_FRACTION, Kind
from visual_priors.world.rng import SCENE_SPLITS, Rand, digest_int

LAYOUTS = ("scene", "chart", "card", "diagram")
# Fraction of the image height above which the ground plane ends (the horizon).
HORIZON = 0.32


@dataclass(frozen=True)
class PlacedObject:
    """One object: centre (x, y) and diameter `size` in output pixels; larger depth is farther."""

    kind: Kind
    colour: str
    x: float
    y: float
    size: float
    depth: float

    @property
    def radius(self) -> float:
        return self.size / 2


@dataclass(frozen=True)
class Sign:
    """Text on a board centred at (x, y); `scale` output pixels per font pixel."""

    text: str
    x: float
    y: float
    scale: int
    post: bool = True


@dataclass(frozen=True)
class Chart:
    colours: tuple[str, ...]
    values: tuple[int, ...]
    max_value: int = 7
    style: str = "bar"  # or "line": coloured points joined by a line


@dataclass(frozen=True)
class Scene:
    objects: tuple[PlacedObject, ...]
    background: tuple[int, int, int]
    image_size: int
    layout: str = "scene"
    sign: Sign | None = None
    chart: Chart | None = None
    arrows: tuple[tuple[int, int], ...] = ()

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; valid: {', '.join(LAYOUTS)}")

    def key(self) -> tuple:
        objs = tuple((o.kind.index, o.colour, round(o.x, 2), round(o.y, 2), round(o.size, 2),
                      round(o.depth, 4)) for o in self.objects)
        sign = None if self.sign is None else (self.sign.text, round(self.sign.x, 2),
                                               round(self.sign.y, 2), self.sign.scale, self.sign.post)
        chart = None if self.chart is None else (self.chart.colours, self.chart.values,
                                                 self.chart.max_value)
        if self.chart is not None and self.chart.style != "bar":  # bar charts keep their old keys
            chart += (self.chart.style,)
        return (self.layout, self.image_size, self.background, objs, sign, chart, self.arrows)

    @property
    def split(self) -> str:
        return scene_split(self)

    def kinds_present(self) -> frozenset[int]:
        return frozenset(o.kind.index for o in self.objects)

    def draw_order(self) -> list[int]:
        """Object indices far to near, the order the renderer paints them."""
        return sorted(range(len(self.objects)), key=lambda i: (-self.objects[i].depth, i))


def scene_split(scene: Scene) -> str:
    return SCENE_SPLITS[digest_int(repr(scene.key()).encode()) & 1]


def background_tint(r: Rand, layout: str) -> tuple[int, int, int]:
    # A shared brightness shift plus a small per-channel tint keeps backgrounds near neutral.
    if layout == "scene":
        base, shift, tint = (226, 222, 208), 12, 5
    else:
        base, shift, tint = (246, 246, 242), 5, 3
    s = r.randint(-shift, shift)
    return tuple(int(min(255, max(0, b + s + r.randint(-tint, tint)))) for b in base)


def assign_split(r: Rand, scene: Scene, split: str) -> Scene:
    """The same scene with its background tint redrawn until its digest falls in `split`."""
    if split not in SCENE_SPLITS:
        raise ValueError(f"unknown scene split {split!r}; valid: {', '.join(SCENE_SPLITS)}")
    while scene_split(scene) != split:
        scene = replace(scene, background=background_tint(r, scene.layout))
    return scene


def object_colour(r: Rand, kind: Kind, typical: float = 0.75) -> str:
    if r.chance(typical):
        return kind.colour
    return r.choice([c for c in COLOUR_NAMES if c != kind.colour])


def depth_size(kind: Kind, depth: float, image_size: int, jitter: float) -> float:
    """Apparent diameter: the kind's size class shrunk with distance."""
    return SIZE_FRACTION[kind.size_class] * image_size * (1.2 - 0.45 * depth) * jitter


def depth_y(depth: float, size: float, image_size: int) -> float:
    """Nearer objects stand lower on the ground plane, so height in the image cues depth."""
    top = HORIZON * image_size
    y = top + (1.0 - depth) * (image_size - top)
    return min(max(y, size / 2), image_size - size / 2)


def separated(x: float, y: float, size: float, placed: list[PlacedObject], min_sep: float) -> bool:
    """True when the new object's centre is at least min_sep * (sum of radii) from each other."""
    for o in placed:
        if math.hypot(x - o.x, y - o.y) < min_sep * (size / 2 + o.radius):
            return False
    return True


def place(r: Rand, kinds: list[Kind], image_size: int, *, min_sep: float = 0.6,
          colours: list[str] | None = None, typical: float = 0.75, size_scale: float = 1.0,
          tries: int = 40, region: tuple[float, float, float, float] | None = None,
          existing: list[PlacedObject] | None = None) -> list[PlacedObject]:
    """Objects on the ground plane; a kind that finds no free spot in `tries` draws is dropped.

    region: (x0, y0, x1, y1) in output pixels that every object must lie inside.
    existing: objects already in the scene that new ones must keep clear of (not returned).
    """
    S = image_size
    x0, y0, x1, y1 = region if region is not None else (0.0, 0.0, float(S), float(S))
    others: list[PlacedObject] = list(existing or [])
    placed: list[PlacedObject] = []
    for i, kind in enumerate(kinds):
        colour = colours[i] if colours is not None else object_colour(r, kind, typical)
        for _ in range(tries):
            depth = r.random()
            size = depth_size(kind, depth, S, r.uniform(0.9, 1.1)) * size_scale
            size = min(size, 0.9 * min(x1 - x0, y1 - y0))
            rad = size / 2
            y = depth_y(depth, size, S)
            if y - rad < y0 or y + rad > y1:
                y = r.uniform(y0 + rad, y1 - rad)
            x = r.uniform(x0 + rad, x1 - rad)
            if separated(x, y, size, others + placed, min_sep):
                placed.append(PlacedObject(kind, colour, round(x, 2), round(y, 2), round(size, 2),
                                           round(depth, 4)))
                break
    return placed
