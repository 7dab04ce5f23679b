"""Scene builders for each layout: object scenes, signs, bar charts, printed cards, diagrams.

Builders return scenes without a split; `scenes.assign_split` settles that afterwards.
"""

from __future__ import annotations

from visual_priors.world.kinds import COLOUR_NAMES, Kind
from visual_priors.world.render import FONT_W, board_extent, text_extent
from visual_priors.world.rng import Rand
from visual_priors.world.scenes import Chart, PlacedObject, Scene, Sign, background_tint, place

CHART_MAX = 7


def sign_scale(image_size: int) -> int:
    """Output pixels per font pixel on signs: 2 at 32 px, so a digit is 10 x 14 pixels."""
    return max(2, image_size // 24)


def card_scale(image_size: int) -> int:
    return max(1, image_size // 32)


def card_capacity(image_size: int) -> int:
    """How many characters fit on one printed line of a card."""
    scale = card_scale(image_size)
    return (image_size - 2 + scale) // ((FONT_W + 1) * scale)


def objects_scene(r: Rand, kinds: list[Kind], image_size: int, **kw) -> Scene:
    objs = place(r, kinds, image_size, **kw)
    return Scene(tuple(objs), background_tint(r, "scene"), image_size)


def random_objects_scene(r: Rand, all_kinds: tuple[Kind, ...], image_size: int, n: int, *,
                         distinct: bool = True, pool: list[Kind] | None = None, **kw) -> Scene:
    source = list(pool) if pool is not None else list(all_kinds)
    if distinct:
        chosen = r.sample(source, min(n, len(source)))
    else:
        chosen = [r.choice(source) for _ in range(n)]
    return objects_scene(r, chosen, image_size, **kw)


def sign_scene(r: Rand, all_kinds: tuple[Kind, ...], image_size: int, text: str,
               n_objects: int, scale: int | None = None) -> Scene:
    """A sign (on a post, or hanging at the top when wide) beside a few objects; `scale` output
    pixels per font pixel, `sign_scale` by default."""
    S = image_size
    scale = scale or sign_scale(S)
    bw, bh = board_extent(text, scale)
    free_side = S - bw - 2
    if free_side >= 0.4 * S:
        # Sign on a post at one side, objects on the other side.
        left = r.chance(0.5)
        bx0 = 1 if left else S - bw - 1
        by0 = r.randint(1, max(1, int(0.4 * S) - bh // 2))
        region = (float(bw + 3), 0.0, float(S), float(S)) if left else (0.0, 0.0, float(S - bw - 3), float(S))
        post = True
    else:
        # A wide sign hangs at the top; objects stand below it.
        bx0 = r.randint(1, max(1, S - bw - 1))
        by0 = 1
        region = (0.0, float(by0 + bh + 1), float(S), float(S))
        post = False
    sign = Sign(text, bx0 + bw / 2, by0 + bh / 2, scale, post)
    kinds = r.sample(all_kinds, n_objects)
    objs = place(r, kinds, S, region=region, min_sep=0.9, size_scale=0.8)
    return Scene(tuple(objs), background_tint(r, "scene"), S, sign=sign)


def chart_scene(r: Rand, image_size: int, n_bars: int | None = None,
                values: list[int] | None = None, style: str = "bar") -> Scene:
    """A bar chart, or a line chart whose points carry the colours (style "line")."""
    n = n_bars if n_bars is not None else r.randint(3, 5)
    colours = tuple(r.sample(COLOUR_NAMES, n))
    vals = tuple(values) if values is not None else tuple(r.randint(1, CHART_MAX) for _ in range(n))
    return Scene((), background_tint(r, "chart"), image_size, layout="chart",
                 chart=Chart(colours, vals, CHART_MAX, style))


def card_scene(r: Rand, image_size: int, text: str) -> Scene:
    S = image_size
    scale = card_scale(S)
    tw, th = text_extent(text, scale)
    if tw > S - 2:
        raise ValueError(f"{text!r} does not fit on a {S} px card")
    x0 = r.randint(1, S - 1 - tw)
    y0 = r.randint(1, S - 1 - th)
    sign = Sign(text, x0 + tw / 2, y0 + th / 2, scale, post=False)
    return Scene((), background_tint(r, "card"), S, layout="card", sign=sign)


def diagram_scene(r: Rand, chain: list[Kind], image_size: int) -> Scene:
    """Three objects at the corners of a triangle joined by arrows chain[0] -> chain[1] -> chain[2].

    Objects are stored in chain order; which corner each one takes is random.
    """
    S = image_size
    spots = r.shuffle([(0.5, 0.24), (0.2, 0.74), (0.8, 0.74)])
    objs = []
    for i, kind in enumerate(chain[:3]):
        fx, fy = spots[i]
        size = S * r.uniform(0.24, 0.29)
        objs.append(PlacedObject(kind, kind.colour, round(S * (fx + r.uniform(-0.03, 0.03)), 2),
                                 round(S * (fy + r.uniform(-0.03, 0.03)), 2), round(size, 2),
                                 round(0.5 + 0.1 * i, 4)))
    return Scene(tuple(objs), background_tint(r, "diagram"), S, layout="diagram",
                 arrows=((0, 1), (1, 2)))
