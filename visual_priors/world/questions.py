"""Four-option questions: sixteen benchmark families in the paper's four categories, and MLE-Bench.

Each family tests what its real counterpart tests (COUNTERPARTS). Knowledge families need a fact
that no image shows (what a kind is for, where it lives, its legs, its material), and the kind is
never named where it must be recognised; in the train split they ask only about kinds whose facts
instruction data may state, in the test split only about the held-out kinds, whose facts appear
nowhere but in pre-training text.

Options are symmetric: every family draws its four options as a set first, takes the answer
uniformly from that set, and only then builds the scene (or picks the kind) that makes it true.
So nothing about the options alone (which one is the median number, the one most like the others,
the longest, the most common value) tells the answer; only the image and the question do.
Scenes for a chosen answer are redrawn on their own (`settle`), never the options, since redrawing
the options whenever a scene is hard to build would again favour some answers.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple, TypeVar

import numpy as np

from visual_priors.world.kinds import (COLOUR_NAMES, HABITAT_PHRASE, HABITATS, KIND_CATEGORIES,
                                       MATERIAL_PROPERTY, SHAPES, SIZE_CLASSES, USES, Kind)
from visual_priors.world.layouts import (CHART_MAX, card_capacity, card_scale, card_scene,
                                         chart_scene, diagram_scene, objects_scene,
                                         random_objects_scene, sign_scene)
from visual_priors.world.render import board_extent
from visual_priors.world.rng import Rand
from visual_priors.world.scenes import (PlacedObject, Scene, assign_split, background_tint,
                                        depth_y, object_colour, place)
from visual_priors.world.text_base import a

if TYPE_CHECKING:
    from visual_priors.world.world import World

T = TypeVar("T")

CATEGORIES = ("general", "knowledge", "ocr_chart", "vision_centric")
BENCHMARKS: dict[str, tuple[str, ...]] = {
    "general": ("attribute", "existence", "perception", "scene"),
    "knowledge": ("science", "reasoning", "diagram", "math"),
    "ocr_chart": ("text", "chart", "ocr"),
    "vision_centric": ("count", "spatial", "depth", "multiview", "realworld"),
}
BENCHMARK_CATEGORY = {b: c for c, bs in BENCHMARKS.items() for b in bs}
ALL_BENCHMARKS = tuple(b for bs in BENCHMARKS.values() for b in bs)
COUNTERPARTS = {
    "attribute": "GQA", "existence": "MME", "perception": "MMBench", "scene": "SEED-Bench",
    "science": "ScienceQA", "reasoning": "MMMU", "diagram": "AI2D", "math": "MathVista",
    "text": "TextVQA", "chart": "ChartQA", "ocr": "OCRBench",
    "count": "CV-Bench 2D count (COCO)", "spatial": "CV-Bench 2D relation (ADE20K)",
    "depth": "CV-Bench 3D depth and distance (Omni3D)", "multiview": "BLINK multi-view",
    "realworld": "RealWorldQA",
}
# What each family asks, for reports and the documentation.
TESTS = {
    "attribute": "colours and shapes of objects picked out by kind, side or colour",
    "existence": "yes/no: is a kind there, is the count n, is A left of B, is A this colour",
    "perception": "which kind is shown, alone or on one side",
    "scene": "which of four one-slot variations of a two-object caption matches",
    "science": "a fact (use, habitat, group, legs) of a kind shown or named",
    "reasoning": "two steps: recognise two kinds and compare their legs; a material's consequence",
    "diagram": "follow an arrow to an object, then recall a fact about it",
    "math": "arithmetic over what is seen: total legs, counts after removing or adding",
    "text": "a number or word written on a sign in a scene",
    "chart": "bar and line charts: extremes, values, differences",
    "ocr": "printed words and numbers on a card",
    "count": "how many objects, of a kind or of a colour",
    "spatial": "left, right, above or below between two named objects",
    "depth": "closest or farthest from the camera; nearest to an object on the ground (3D)",
    "multiview": "two views of the same objects: how the camera moved between them",
    "realworld": "cluttered scenes: where a kind is, which takes most or least space, counts",
    "mle": "which of four kinds is present, by the target's pixel share",
}
YES_NO = ("Yes", "No")
SIZE_BINS = ("0-30", "30-60", "60-100")
# Visible share of the image covered by the MLE target. The small bin starts at 3% so the target
# still spans a few dozen pixels at 32 px.
SIZE_BIN_RANGES = {"0-30": (0.03, 0.30), "30-60": (0.30, 0.60), "60-100": (0.60, 1.0)}
MLE_QUESTIONS = ("Which of the following appears in this image?",
                 "Which of the following is in the image?",
                 "Which of the following can be seen in the image?")
LETTERS = "ABCD"
CATEGORY_OPTION = {"animal": "an animal", "plant": "a plant", "food": "a food", "tool": "a tool",
                   "vehicle": "a vehicle"}
SPATIAL_OPTIONS = ("to the left", "to the right", "above", "below")
OPPOSITE = {"to the left": "to the right", "to the right": "to the left",
            "above": "below", "below": "above"}
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
# Each outcome of the leg comparison is made equally likely, so none of these is a safe guess.
LEG_COMPARISON = ("the one on the left", "the one on the right",
                  "both have legs, and the same number of them", "neither of them has legs")
_SIMILAR_DIGITS = {"0": "869", "1": "74", "2": "73", "3": "852", "4": "19", "5": "639",
                   "6": "580", "7": "12", "8": "306", "9": "846"}
# Largest count a counting scene must hold: six objects still fit a 32 px image at 0.8 scale.
MAX_COUNT = 6
# Camera motions of the multi-view family, and how far each one moves the view.
CAMERA_MOTIONS = ("to the left", "to the right", "forward", "backward")
PAN, ZOOM = 0.22, 1.4
# Words on signs (TextVQA-like): short, and several share letters with others.
SIGN_WORDS = ("STOP", "SHOP", "SHIP", "SLOW", "SNOW", "OPEN", "OVEN", "EXIT", "EDIT", "PARK",
              "PORK", "MILK", "MILL", "SALE", "SAFE", "CAFE", "BANK", "BAKE", "FOOD", "FOOT",
              "ROAD", "READ", "WEST", "EAST")
FACT_VALUE: dict[str, Callable[[Kind], str]] = {
    "habitat": lambda k: HABITAT_PHRASE[k.habitat],
    "use": lambda k: k.use,
    "category": lambda k: CATEGORY_OPTION[k.category],
    "legs": lambda k: str(k.legs),
    "material": lambda k: MATERIAL_PROPERTY[k.material],
}
FACT_VALUES = {
    "habitat": tuple(HABITAT_PHRASE[h] for h in HABITATS),
    "use": tuple(u for c in KIND_CATEGORIES for u in USES[c]),
    "category": tuple(CATEGORY_OPTION.values()),
    "legs": ("0", "2", "4", "6", "8"),
    "material": tuple(MATERIAL_PROPERTY.values()),
}


@dataclass(frozen=True, eq=False)
class Question:
    """A multiple-choice question: four options, or Yes / No for the MME-like family.

    fact_kinds: indices of the kinds whose facts it relies on. query: what is asked, in a form
    `world.oracle` evaluates on the scene (its own reading, not the generator's answer).
    views: the two scenes of a multi-view question (`scene` is the first).
    """

    image: np.ndarray | None
    question: str
    options: tuple[str, ...]
    answer: int
    benchmark: str
    category: str
    size_bin: str | None = None
    fact_kinds: tuple[int, ...] = ()
    scene: Scene | None = None
    query: tuple = ()
    views: tuple[Scene, ...] = ()

    @property
    def answer_text(self) -> str:
        return self.options[self.answer]

    @property
    def prompt(self) -> str:
        return format_prompt(self.question, self.options)


def format_prompt(question: str, options) -> str:
    return "\n".join([question] + [f"{LETTERS[i]}. {o}" for i, o in enumerate(options)])


class Draft(NamedTuple):
    scene: Scene
    question: str
    answer: str
    distractors: list[str]
    fact_kinds: tuple[int, ...] = ()
    query: tuple = ()
    views: tuple[Scene, ...] = ()


class Retry(Exception):
    """A sampled scene cannot carry this question; draw another."""


def chosen(scene: Scene, question: str, answer: str, options, fact_kinds=(), query=()) -> Draft:
    """A draft from an option set drawn before its answer."""
    return Draft(scene, question, answer, [o for o in options if o != answer], tuple(fact_kinds),
                 tuple(query))


def yes_no(scene: Scene, question: str, yes: bool, query: tuple) -> Draft:
    return Draft(scene, question, YES_NO[0] if yes else YES_NO[1],
                 [YES_NO[1] if yes else YES_NO[0]], (), query)


def settle(build: Callable[[], T], tries: int = 100) -> T:
    """build() until it stops raising Retry. Used once the options and answer are fixed: only the
    scene is redrawn, so answers whose scenes are harder to build are not made rarer."""
    for _ in range(tries):
        try:
            return build()
        except Retry:
            continue
    raise Retry("no scene for the chosen answer")


def pick(r: Rand, answer: str, preferred, pool, n: int = 3) -> list[str]:
    """n distinct distractors, none equal to the answer, preferred ones first (in random order).

    Only for answers read off a random scene whose value is not itself a clue (colours, shapes)."""
    out: list[str] = []
    for group in (r.shuffle(list(dict.fromkeys(preferred))), r.shuffle(list(dict.fromkeys(pool)))):
        for item in group:
            if item != answer and item not in out:
                out.append(item)
                if len(out) == n:
                    return out
    raise Retry(f"not enough distractors for {answer!r}")


def window(r: Rand, lo: int, hi: int, step: int = 1, n: int = 4) -> list[int]:
    """n consecutive values (step apart) inside [lo, hi], the window's start uniform.

    Callers take the answer uniformly from the window, so its rank among the options is uniform
    whatever the bounds; options centred on the answer made it the median."""
    starts = (hi - lo) // step - n + 2
    if starts < 1:
        raise ValueError(f"no room for {n} values in [{lo}, {hi}] with step {step}")
    s = lo + step * r.randint(0, starts - 1)
    return [s + i * step for i in range(n)]


def confusable_numbers(r: Rand, digits: int) -> list[str]:
    """Four distinct numbers of `digits` digits, each at most one misreading from a hidden hub.

    The hub is just one more candidate: options built as misreadings of the answer made the
    answer the string closest to all the others."""
    lo, hi = (0 if digits == 1 else 10 ** (digits - 1)), 10 ** digits - 1
    hub = str(r.randint(lo, hi))
    cands = [hub]
    for i, ch in enumerate(hub):
        for alt in _SIMILAR_DIGITS[ch]:
            v = hub[:i] + alt + hub[i + 1:]
            if len(v) == 1 or v[0] != "0":
                cands.append(v)
    if digits > 1 and hub[-1] != "0":
        cands.append(hub[::-1])
    cands += [str(v) for v in (int(hub) - 1, int(hub) + 1) if lo <= v <= hi]
    cands = list(dict.fromkeys(cands))
    while len(cands) < 4:
        v = str(r.randint(lo, hi))
        if v not in cands:
            cands.append(v)
    return r.sample(cands, 4)


def side_of(a: PlacedObject, b: PlacedObject) -> str | None:
    """Clear relation of a to b for spatial questions, or None when ambiguous."""
    dx, dy = a.x - b.x, a.y - b.y
    gap = 0.5 * (a.radius + b.radius)
    if abs(dx) >= 1.6 * abs(dy) and abs(dx) >= gap:
        return "to the left" if dx < 0 else "to the right"
    if abs(dy) >= 1.6 * abs(dx) and abs(dy) >= gap:
        return "above" if dy < 0 else "below"
    return None


def ground_distance(p: PlacedObject, q: PlacedObject, image_size: int) -> float:
    """Distance on the ground plane: across (image x) and into the picture (depth), both 0..1."""
    return math.hypot((p.x - q.x) / image_size, p.depth - q.depth)


def camera_moved(scene: Scene, motion: str) -> Scene:
    """The same objects seen after the camera moved (one of CAMERA_MOTIONS)."""
    S = scene.image_size
    objs = []
    for o in scene.objects:
        if motion in ("to the left", "to the right"):
            # A camera moving left sees everything shifted to the right.
            dx = PAN * S * (1 if motion == "to the left" else -1)
            objs.append(replace(o, x=round(o.x + dx, 2)))
            continue
        k = ZOOM if motion == "forward" else 1 / ZOOM
        depth = min(1.0, max(0.0, o.depth + (-0.2 if motion == "forward" else 0.2)))
        size = o.size * k
        objs.append(replace(o, x=round(S / 2 + (o.x - S / 2) * k, 2), y=round(depth_y(depth, size, S), 2),
                            size=round(size, 2), depth=round(depth, 4)))
    return replace(scene, objects=tuple(objs))


_RELATION_WORDS = {"to the left": "to the left of", "to the right": "to the right of",
                   "above": "above", "below": "below"}


def phrase(d: tuple) -> str:
    """A two-object caption (colour A, kind A, relation, colour B, kind B) in words."""
    return f"a {d[0]} {d[1].name} {_RELATION_WORDS[d[2]]} a {d[3]} {d[4].name}".replace(
        "a orange", "an orange")


def holds(scene: Scene, d: tuple) -> bool:
    """Whether the scene shows caption d (kinds as Kind objects or indices)."""
    ka, kb = (k if isinstance(k, int) else k.index for k in (d[1], d[4]))
    return any(p is not q and (p.colour, p.kind.index, q.colour, q.kind.index) == (d[0], ka, d[3], kb)
               and side_of(p, q) == d[2] for p in scene.objects for q in scene.objects)


def mirrored(scene: Scene) -> Scene:
    """The scene flipped left to right (depth and height unchanged)."""
    S = scene.image_size
    return replace(scene, objects=tuple(replace(o, x=round(S - o.x, 2)) for o in scene.objects))


def likeness(a: Kind, b: Kind) -> float:
    """How easily kind b is confused with kind a: same category, colour or shape."""
    return (1.0 + 2.0 * (a.category == b.category) + 1.5 * (a.colour == b.colour)
            + 1.5 * (a.shape == b.shape))


class QuestionMaker:
    def __init__(self, world: "World"):
        self.w = world
        self.kinds = world.kinds
        self.S = world.image_size

    # ------------------------------------------------------------------ helpers

    def kind_group(self, r: Rand, n: int = 4) -> list[Kind]:
        """n kinds that look or behave alike: drawn by likeness to a random hub kind, which is
        itself only one more candidate, so no member is the group's centre by construction."""
        hub = r.choice(self.kinds)
        pool = list(self.kinds)
        weights = [likeness(hub, k) for k in pool]
        out = []
        for _ in range(n):
            k = r.weighted(pool, weights)
            i = pool.index(k)
            pool.pop(i)
            weights.pop(i)
            out.append(k)
        return out

    def similar_kind(self, r: Rand, target: Kind, exclude: set[int]) -> Kind:
        pool = [k for k in self.kinds if k.index not in exclude and k.index != target.index]
        if not pool:
            raise Retry("no kind left to swap in")
        return r.weighted(pool, [likeness(target, k) for k in pool])

    def _use_options(self, r: Rand, pool: list[Kind]) -> list[str]:
        """Two uses from each of two categories, so no option is the odd one out."""
        by_cat: dict[str, list[str]] = {}
        for k in pool:
            uses = by_cat.setdefault(k.category, [])
            if k.use not in uses:
                uses.append(k.use)
        pairs = [c for c, uses in by_cat.items() if len(uses) >= 2]
        if len(pairs) >= 2:
            c1, c2 = r.sample(pairs, 2)
            return r.sample(by_cat[c1], 2) + r.sample(by_cat[c2], 2)
        have = [u for uses in by_cat.values() for u in uses]
        return r.sample(have, min(4, len(have)))

    def fact_choice(self, r: Rand, pool: list[Kind], facts: tuple[str, ...] = ("habitat", "use",
                    "category", "legs")) -> tuple[str, Kind, str, list[str]]:
        """(fact, kind, answer, distractors) for a fact question about a kind of `pool`.

        The options come first, drawn from values that some kind of the pool has; the answer is
        uniform among them and the kind is drawn last. Asking about a random kind instead made
        common values (four legs, a busy habitat) the safe guess."""
        weights = {"habitat": 0.3, "use": 0.3, "category": 0.25, "legs": 0.15, "material": 0.3}
        values = {f: list(dict.fromkeys(FACT_VALUE[f](k) for k in pool)) for f in facts}
        # A fact with fewer than four values in the pool would need options that are never right.
        usable = [f for f in facts if len(values[f]) >= 4] or list(facts)
        fact = r.weighted(usable, [weights[f] for f in usable])
        value, have = FACT_VALUE[fact], values[fact]
        if fact == "use":
            options = self._use_options(r, pool)
        else:
            options = r.sample(have, min(4, len(have)))
        answer = r.choice(options)
        # Only tiny worlds lack four values; their padding can never be the answer.
        spare = [v for v in r.shuffle(list(FACT_VALUES[fact])) if v not in options]
        options += spare[:4 - len(options)]
        k = r.choice([x for x in pool if value(x) == answer])
        return fact, k, answer, [o for o in options if o != answer]

    @staticmethod
    def fact_wording(r: Rand, fact: str, k: Kind, ref: str) -> str:
        """The question for `fact` about kind k, referred to as `ref` ('the object in the image')."""
        if fact == "habitat":
            forms = [f"Where is {ref} usually found?", f"In which place is {ref} most common?"]
            if k.category == "animal":
                forms.append(f"Where does {ref} usually live?")
            return r.choice(forms)
        if fact == "use":
            return r.choice((f"What is {ref} used for?", f"What do people use {ref} for?"))
        if fact == "category":
            return r.choice((f"What kind of thing is {ref}?", f"Which group does {ref} belong to?"))
        if fact == "legs":
            return r.choice((f"How many legs does {ref} have?", f"How many legs has {ref} got?"))
        return r.choice((f"Which of these is true of {ref}?", f"Which statement about {ref} is correct?"))

    def finish(self, r: Rand, split: str, benchmark: str, draft: Draft,
               size_bin: str | None = None, image: np.ndarray | None = None) -> Question:
        scene = assign_split(r, draft.scene, split)
        n = len(draft.distractors)
        if n not in (1, 3) or draft.answer in draft.distractors or len(set(draft.distractors)) != n:
            raise AssertionError(f"bad options for {benchmark}: {draft}")
        if n == 1:
            # Yes / No in that order, as MME asks.
            options = list(YES_NO)
        else:
            # A full shuffle: distractors in a fixed order would betray the one inserted among them.
            options = r.shuffle(list(draft.distractors) + [draft.answer])
        pos = options.index(draft.answer)
        views = ()
        if draft.views:
            # The second view shares the first one's (split-settling) background.
            views = (scene,) + tuple(replace(v, background=scene.background) for v in draft.views[1:])
            image = self.w.render_views(views)
        if image is None:
            image = self.w.render(scene)
        category = "mle" if benchmark == "mle" else BENCHMARK_CATEGORY[benchmark]
        return Question(image, draft.question, tuple(options), pos, benchmark, category, size_bin,
                        tuple(sorted(set(draft.fact_kinds))), scene, draft.query, views)

    def make(self, benchmark: str, r: Rand, split: str, facts: list[Kind]) -> Question:
        gen = getattr(self, "q_" + benchmark, None)
        if benchmark not in BENCHMARK_CATEGORY or gen is None:
            raise ValueError(f"unknown benchmark {benchmark!r}; valid: {', '.join(ALL_BENCHMARKS)}")
        for _ in range(200):
            try:
                draft = gen(r, facts)
            except Retry:
                continue
            return self.finish(r, split, benchmark, draft)
        raise RuntimeError(f"could not build a {benchmark} question")

    def objects(self, r: Rand, n: int, min_visible: float = 0.5, **kw) -> Scene:
        """Random objects; overlapping layouts must leave each object at least min_visible seen."""
        scene = random_objects_scene(r, self.kinds, self.S, n, **kw)
        if scene.objects and kw.get("min_sep", 0.6) < 1.0:
            if self.w.renderer.visibility(scene).min() < min_visible:
                raise Retry
        return scene

    def placed(self, r: Rand, kinds: list[Kind], min_visible: float = 0.5, **kw) -> Scene:
        """Exactly these kinds, in this order (Retry when one finds no room or is hidden)."""
        scene = objects_scene(r, kinds, self.S, **kw)
        if len(scene.objects) != len(kinds):
            raise Retry
        if kw.get("min_sep", 0.6) < 1.0 and self.w.renderer.visibility(scene).min() < min_visible:
            raise Retry
        return scene

    def counted(self, r: Rand, kinds: list[Kind], colours: list[str] | None = None,
                **kw) -> Scene:
        """A counting scene holding every one of `kinds` (shuffled together with `colours`)."""
        idx = r.shuffle(list(range(len(kinds))))
        ks = [kinds[i] for i in idx]
        cs = None if colours is None else [colours[i] for i in idx]
        return settle(lambda: self.placed(r, ks, colours=cs, min_sep=1.05, **kw))

    # ------------------------------------------------------------------ general

    def q_attribute(self, r: Rand, facts) -> Draft:
        scene = self.objects(r, r.randint(2, 4), min_sep=0.8)
        objs = scene.objects
        if len(objs) < 2:
            raise Retry
        t = r.random()
        if t < 0.5:
            o = r.choice(objs)
            if sum(x.kind is o.kind for x in objs) != 1:
                raise Retry
            # The kind's typical colour is always an option and right one time in four, so
            # knowing kinds' colours from text does not answer the question.
            options = [o.kind.colour] + r.sample([c for c in COLOUR_NAMES if c != o.kind.colour], 3)
            colour = r.choice(options)
            scene = replace(scene, objects=tuple(replace(x, colour=colour) if x is o else x for x in objs))
            q = r.choice((f"What colour is the {o.kind.name}?", f"Which colour does the {o.kind.name} have?",
                          f"What is the colour of the {o.kind.name} in the image?"))
            return chosen(scene, q, colour, options, query=("colour_of", o.kind.index))
        if t < 0.75:
            ref = r.choice(objs)
            side = r.choice(("left", "right"))
            others = [x for x in objs if x is not ref]
            if sum(x.kind is ref.kind for x in objs) != 1 or \
                    any(abs(x.x - ref.x) < 0.5 * (x.radius + ref.radius) for x in others):
                raise Retry
            hits = [x for x in others if (x.x < ref.x) == (side == "left")]
            if len(hits) != 1:
                raise Retry
            o = hits[0]
            q = f"What colour is the object to the {side} of the {ref.kind.name}?"
            pref = [ref.colour] + [x.colour for x in objs]
            return Draft(scene, q, o.colour, pick(r, o.colour, pref, COLOUR_NAMES),
                         query=("colour_beside", ref.kind.index, side))
        counts = Counter(x.colour for x in objs)
        unique = [x for x in objs if counts[x.colour] == 1]
        if not unique:
            raise Retry
        o = r.choice(unique)
        # Repainted in a colour no other object has, drawn uniformly: a kind's typical colour
        # would tell its shape to anyone who knows kinds from text.
        colour = r.choice([c for c in COLOUR_NAMES if c not in counts or c == o.colour])
        scene = replace(scene, objects=tuple(replace(x, colour=colour) if x is o else x for x in objs))
        q = r.choice((f"What shape is the {colour} object?", f"Which shape does the {colour} thing have?"))
        return Draft(scene, q, o.kind.shape, pick(r, o.kind.shape, [x.kind.shape for x in objs], SHAPES),
                     query=("shape_of_colour", colour))

    def q_existence(self, r: Rand, facts) -> Draft:
        """MME-style yes/no perception: existence, count, position and colour, each answer drawn
        first (Yes as often as No) and the scene built to make it true."""
        yes = r.chance(0.5)
        t = r.random()
        if t < 0.35:
            group = self.kind_group(r, 3)
            asked = group[0]
            shown = group[1:1 + r.randint(1, 2)] + ([asked] if yes else [])
            scene = settle(lambda: self.placed(r, r.shuffle(list(shown)), min_sep=0.75))
            q = r.choice((f"Is there {a(asked.name)} in the image?",
                          f"Does the picture show {a(asked.name)}?"))
            return yes_no(scene, q, yes, ("exists", asked.index))
        if t < 0.55:
            m = r.randint(1, MAX_COUNT - 1)
            n = m if yes else r.choice([v for v in (m - 1, m + 1) if 1 <= v <= MAX_COUNT])
            scene = self.counted(r, [r.choice(self.kinds) for _ in range(n)],
                                 size_scale=0.8 if n >= 4 else 0.95)
            q = f"Are there {m} objects in the image?" if m > 1 else "Is there exactly one object in the image?"
            return yes_no(scene, q, yes, ("count_is", m))
        if t < 0.8:
            rel = r.choice(SPATIAL_OPTIONS)
            want = rel if yes else OPPOSITE[rel]

            def build() -> tuple[PlacedObject, PlacedObject, Scene]:
                scene = self.objects(r, 2, min_sep=0.9)
                if len(scene.objects) < 2:
                    raise Retry
                first, second = scene.objects
                seen = side_of(first, second)
                if seen == want:
                    return first, second, scene
                if seen == OPPOSITE[want]:
                    return second, first, scene
                raise Retry

            p, q_obj, scene = settle(build)
            words = {"to the left": "to the left of", "to the right": "to the right of",
                     "above": "above", "below": "below"}
            q = f"Is the {p.kind.name} {words[rel]} the {q_obj.kind.name}?"
            return yes_no(scene, q, yes, ("side_is", p.kind.index, q_obj.kind.index, rel))
        c = r.choice(COLOUR_NAMES)
        k = r.choice(self.kinds)
        colour = c if yes else r.choice([x for x in COLOUR_NAMES if x != c])
        rest = r.sample([x for x in self.kinds if x.index != k.index], r.randint(0, 2))
        scene = settle(lambda: self.placed(r, r.shuffle([k] + rest),
                                           colours=None, min_sep=0.8))
        scene = replace(scene, objects=tuple(replace(o, colour=colour) if o.kind is k else o
                                             for o in scene.objects))
        q = f"Is the {k.name} {c}?"
        return yes_no(scene, q, yes, ("colour_is", k.index, c))

    def q_perception(self, r: Rand, facts) -> Draft:
        group = self.kind_group(r)
        k = r.choice(group)
        if r.chance(0.65):
            scene = settle(lambda: self.placed(r, [k], size_scale=1.3))
            q = r.choice(("What is the object in the image?", "Which of these is shown in the image?",
                          "What is this object called?", "Name the object in the picture."))
            return chosen(scene, q, k.name, [x.name for x in group], query=("kind_at", "only"))
        other = r.choice([x for x in self.kinds if x not in group])
        left = r.chance(0.5)

        def build() -> Scene:
            scene = self.placed(r, [k, other], min_sep=1.0)
            a_, b_ = sorted(scene.objects, key=lambda x: x.x)
            if b_.x - a_.x < 0.3 * self.S:
                raise Retry
            return scene if (a_.kind is k) == left else mirrored(scene)

        scene = settle(build)
        side = "left" if left else "right"
        q = f"What is the object on the {side}?"
        return chosen(scene, q, k.name, [x.name for x in group], query=("kind_at", side))

    def q_scene(self, r: Rand, facts) -> Draft:
        # A hidden hub description; the options are four one-slot variations of it, and the
        # image shows one of them. Variations of the answer made the answer the hub.
        kA, kB = r.sample(self.kinds, 2)
        hub = (object_colour(r, kA), kA, r.choice(SPATIAL_OPTIONS), object_colour(r, kB), kB)

        def variant(how: str) -> tuple:
            cA, ka, rel, cB, kb = hub
            if how == "relation":
                return cA, ka, OPPOSITE[rel], cB, kb
            if how == "colour A":
                return r.choice([c for c in COLOUR_NAMES if c != cA]), ka, rel, cB, kb
            if how == "colour B":
                return cA, ka, rel, r.choice([c for c in COLOUR_NAMES if c != cB]), kb
            if how == "kind A":
                return cA, self.similar_kind(r, ka, {kb.index}), rel, cB, kb
            return cA, ka, rel, cB, self.similar_kind(r, kb, {ka.index})

        variants = [variant(how) for how in r.sample(("relation", "colour A", "colour B", "kind A",
                                                      "kind B"), 4)]
        ans = r.choice(variants)
        cA, ka, rel, cB, kb = ans

        def build() -> Scene:
            scene = self.placed(r, [ka, kb], colours=[cA, cB], min_sep=1.0)
            seen = side_of(*scene.objects)
            if seen == OPPOSITE[rel] and rel in ("to the left", "to the right"):
                return mirrored(scene)
            if seen != rel:
                raise Retry
            return scene

        scene = settle(build)
        if not holds(scene, ans) or any(holds(scene, v) for v in variants if v is not ans):
            raise Retry
        q = r.choice(("Which description matches the image?", "Which caption best describes the picture?"))
        triples = tuple((phrase(v), (v[0], v[1].index, v[2], v[3], v[4].index)) for v in variants)
        return chosen(scene, q, phrase(ans), [phrase(v) for v in variants],
                      query=("describes", triples))

    # ------------------------------------------------------------------ knowledge

    def _referred(self, r: Rand, k: Kind, named: float = 0.0) -> tuple[Scene, str, tuple]:
        """A scene showing kind k, how to refer to it, and that reference as the oracle reads it.

        With probability `named` the question names the kind (as ScienceQA's questions often do),
        so its text facts alone answer it; otherwise the image must be read to know which kind."""
        if r.chance(named):
            scene = settle(lambda: self.placed(r, [k], size_scale=1.25))
            return scene, f"the {k.name} in the image", ("named", k.index)
        if r.chance(0.65):
            scene = settle(lambda: self.placed(r, [k], size_scale=1.25))
            return scene, r.choice(("the object in the image", "the thing shown", "this object")), ("only",)
        other = r.choice([x for x in self.kinds if x.index != k.index])

        def build() -> Scene:
            scene = self.placed(r, r.shuffle([k, other]), min_sep=1.0)
            a_, b_ = sorted(scene.objects, key=lambda x: x.x)
            if b_.x - a_.x < 0.3 * self.S:
                raise Retry
            return scene

        scene = settle(build)
        side = "left" if min(scene.objects, key=lambda x: x.x).kind.index == k.index else "right"
        return scene, f"the object on the {side}", ("side", side)

    def q_science(self, r: Rand, facts) -> Draft:
        fact, k, ans, wrong = self.fact_choice(r, facts)
        scene, ref, where = self._referred(r, k, named=0.5)
        return Draft(scene, self.fact_wording(r, fact, k, ref), ans, wrong, (k.index,),
                     ("fact", fact, where))

    def q_reasoning(self, r: Rand, facts) -> Draft:
        if r.chance(0.4):
            outcome = r.randint(0, 3)
            legged = [k for k in facts if k.legs]
            if outcome < 2:
                pairs = [(x, y) for x in facts for y in facts if x.legs > y.legs]
            elif outcome == 2:
                pairs = [(x, y) for x in legged for y in legged if x.legs == y.legs]
            else:
                pairs = [(x, y) for x in facts for y in facts if not x.legs and not y.legs and x is not y]
            if not pairs:
                raise Retry
            more, fewer = r.choice(pairs)
            left_kind = fewer if outcome == 1 else more

            def build() -> Scene:
                scene = self.placed(r, [more, fewer], min_sep=1.0)
                a_, b_ = sorted(scene.objects, key=lambda x: x.x)
                if b_.x - a_.x < 0.3 * self.S:
                    raise Retry
                return scene if a_.kind is left_kind else mirrored(scene)

            scene = settle(build)
            q = r.choice(("Which of the two objects in the image has more legs?",
                          "Comparing the two things shown, which one has more legs?"))
            return chosen(scene, q, LEG_COMPARISON[outcome], LEG_COMPARISON, (more.index, fewer.index),
                          ("legs_compare",))
        fact, k, ans, wrong = self.fact_choice(r, facts, ("material",))
        scene, ref, where = self._referred(r, k, named=0.3)
        return Draft(scene, self.fact_wording(r, fact, k, ref), ans, wrong, (k.index,),
                     ("fact", fact, where))

    def q_diagram(self, r: Rand, facts) -> Draft:
        fact, target, ans, wrong = self.fact_choice(r, facts)
        a_, b_ = r.sample([x for x in self.kinds if x.index != target.index], 2)
        hop = r.randint(0, 1)
        chain = [a_, target, b_] if hop == 0 else [b_, a_, target]
        scene = diagram_scene(r, chain, self.S)
        source = chain[hop]
        q = self.fact_wording(r, fact, target, "that object")
        q = f"In the diagram, the arrow from the {source.name} points to another object. {q}"
        return Draft(scene, q, ans, wrong, (target.index,), ("fact", fact, ("arrow_from", source.index)))

    def q_math(self, r: Rand, facts) -> Draft:
        t = r.random()
        animals = [k for k in facts if k.legs]
        if t < 0.5 and animals:
            combos: dict[int, list[tuple[Kind, ...]]] = {}
            for n in (2, 3):
                for combo in itertools.product(animals, repeat=n):
                    combos.setdefault(sum(k.legs for k in combo), []).append(combo)
            # Windows of four consecutive even totals that two or three of these animals can make.
            starts = [s for s in sorted(combos) if all(s + 2 * i in combos for i in range(4))]
            if starts:
                s = r.choice(starts)
                values = [s + 2 * i for i in range(4)]
                total = r.choice(values)
                herd = list(r.choice(combos[total]))
                scene = self.counted(r, herd, size_scale=0.9)
                q = r.choice(("How many legs do the animals in the image have altogether?",
                              "Counting every leg, how many legs do the animals shown have in total?"))
                return chosen(scene, q, str(total), [str(v) for v in values],
                              tuple(k.index for k in herd), ("legs_total",))
        if t < 0.75:
            values = window(r, 0, MAX_COUNT - 1)
            left = r.choice(values)
            n = r.randint(max(3, left + 1), MAX_COUNT)
            palette = r.sample(COLOUR_NAMES, r.randint(2, 3))
            c = palette[0]
            colours = [c] * (n - left) + [r.choice(palette[1:]) for _ in range(left)]
            scene = self.counted(r, [r.choice(self.kinds) for _ in range(n)], colours, size_scale=0.8)
            q = f"If all the {c} objects were taken away, how many objects would be left?"
            return chosen(scene, q, str(left), [str(v) for v in values], query=("left_without", c))
        main = r.choice(self.kinds)
        have_values = window(r, 1, MAX_COUNT - 1)
        have = r.choice(have_values)
        rest = r.sample([k for k in self.kinds if k.index != main.index],
                        r.randint(0, min(2, MAX_COUNT - have)))
        scene = self.counted(r, [main] * have + rest, size_scale=0.8)
        extra = r.randint(1, 4)
        q = f"If {extra} more {main.plural if extra > 1 else main.name} were added, how many {main.plural} would there be?"
        return chosen(scene, q, str(have + extra), [str(v + extra) for v in have_values],
                      query=("count_plus", main.index, extra))

    # ------------------------------------------------------------------ OCR and charts

    def q_text(self, r: Rand, facts) -> Draft:
        q_forms = ("What does the sign say?", "What is written on the sign?",
                   "Which {} appears on the sign?")
        if r.chance(0.4):
            # A word on the sign, in the smaller print that a word needs to fit.
            scale = card_scale(self.S)
            words = [w for w in SIGN_WORDS if board_extent(w, scale)[0] <= self.S - 2]
            options = r.sample(words, 4)
            word = r.choice(options)
            scene = sign_scene(r, self.kinds, self.S, word, r.randint(0, 2), scale=scale)
            q = r.choice(q_forms).format("word")
            return chosen(scene, q, word, options, query=("sign_text",))
        options = confusable_numbers(r, 1 if r.chance(0.55) else 2)
        number = r.choice(options)
        scene = sign_scene(r, self.kinds, self.S, number, r.randint(0, 2))
        q = r.choice(q_forms).format("number")
        return chosen(scene, q, number, options, query=("sign_text",))

    def q_chart(self, r: Rand, facts) -> Draft:
        style = r.choice(("bar", "line"))
        item = "bar" if style == "bar" else "point"
        t = r.random()
        n = r.randint(3, 5)
        values = [r.randint(1, CHART_MAX) for _ in range(n)]
        if t < 0.5:
            scene = chart_scene(r, self.S, n, values, style=style)
            colours = list(scene.chart.colours)
            tallest = t < 0.35
            best = max(values) if tallest else min(values)
            if values.count(best) != 1:
                raise Retry
            ans = colours[values.index(best)]
            if style == "bar":
                q = "Which bar is the tallest?" if tallest else "Which bar is the shortest?"
                q = r.choice((q, q.replace("Which bar is", "What colour is the bar that is")))
            else:
                q = "Which point of the line is the highest?" if tallest else \
                    "Which point of the line is the lowest?"
                q = r.choice((q, q.replace("Which point", "What colour is the point")))
            return Draft(scene, q, ans, pick(r, ans, colours, COLOUR_NAMES),
                         query=("chart_extreme", "max" if tallest else "min"))
        if t < 0.85:
            options = window(r, 1, CHART_MAX)
            i = r.randint(0, n - 1)
            values[i] = r.choice(options)
            scene = chart_scene(r, self.S, n, values, style=style)
            colour = scene.chart.colours[i]
            q = r.choice((f"What is the value of the {colour} {item}?", f"How high does the {colour} {item} reach?"))
            return chosen(scene, q, str(values[i]), [str(v) for v in options],
                          query=("chart_value", colour))
        options = window(r, 1, CHART_MAX - 1)
        d = r.choice(options)
        i, j = r.sample(range(n), 2)
        values[j] = r.randint(1, CHART_MAX - d)
        values[i] = values[j] + d
        scene = chart_scene(r, self.S, n, values, style=style)
        colours = scene.chart.colours
        q = f"How much higher is the {colours[i]} {item} than the {colours[j]} {item}?"
        return chosen(scene, q, str(d), [str(v) for v in options],
                      query=("chart_diff", colours[i], colours[j]))

    def q_ocr(self, r: Rand, facts) -> Draft:
        cap = card_capacity(self.S)
        short = [k for k in self.kinds if len(k.name) <= cap]
        if len(short) >= 4 and r.chance(0.5):
            # Look-alike names around a hidden hub; the printed one is drawn from them.
            hub = r.choice(short)
            alike = [k for k in short if len(k.name) == len(hub.name) or k.name[0] == hub.name[0]]
            group = r.sample(alike, min(4, len(alike)))
            group += r.sample([k for k in short if k not in group], 4 - len(group))
            options = [k.name.upper() for k in group]
            word = r.choice(options)
            scene = card_scene(r, self.S, word)
            q = r.choice(("What word is printed on the card?", "Read the word in the image.",
                          "Which word is written in the image?"))
            return chosen(scene, q, word, options, query=("card_text",))
        options = confusable_numbers(r, r.randint(3, max(3, min(4, cap))))
        number = r.choice(options)
        scene = card_scene(r, self.S, number)
        q = r.choice(("What number is printed on the label?", "Read the number in the image.",
                      "Which number is written in the image?"))
        return chosen(scene, q, number, options, query=("card_text",))

    # ------------------------------------------------------------------ vision-centric

    def q_count(self, r: Rand, facts) -> Draft:
        t = r.random()
        if t < 0.4:
            options = window(r, 1, MAX_COUNT)
            n = r.choice(options)
            scene = self.counted(r, [r.choice(self.kinds) for _ in range(n)],
                                 size_scale=0.8 if n >= 4 else 0.95)
            q = r.choice(("How many objects are in the image?", "How many things can you count in the picture?"))
            return chosen(scene, q, str(n), [str(v) for v in options], query=("count_all",))
        options = window(r, 1, MAX_COUNT - 1)
        have = r.choice(options)
        room = MAX_COUNT - have
        if t < 0.7:
            main = r.choice(self.kinds)
            rest = [r.choice([k for k in self.kinds if k.index != main.index])
                    for _ in range(r.randint(0, min(2, room)))]
            scene = self.counted(r, [main] * have + rest, size_scale=0.8)
            q = f"How many {main.plural} are there in the image?"
            return chosen(scene, q, str(have), [str(v) for v in options], query=("count_kind", main.index))
        c = r.choice(COLOUR_NAMES)
        # At least two objects, so a lone object never answers the colour question by itself.
        n_other = r.randint(1 if have == 1 else 0, min(3, room))
        colours = [c] * have + [r.choice([x for x in COLOUR_NAMES if x != c]) for _ in range(n_other)]
        kinds = [r.choice(self.kinds) for _ in colours]
        scene = self.counted(r, kinds, colours, size_scale=0.8 if len(kinds) >= 4 else 0.95)
        q = f"How many {c} objects are in the image?"
        return chosen(scene, q, str(have), [str(v) for v in options], query=("count_colour", c))

    def q_spatial(self, r: Rand, facts) -> Draft:
        rel = r.choice(SPATIAL_OPTIONS)

        def build() -> tuple[PlacedObject, PlacedObject, Scene]:
            scene = self.objects(r, r.randint(2, 3), min_sep=0.9)
            if len(scene.objects) < 2:
                raise Retry
            a_, b_ = r.sample(list(scene.objects), 2)
            seen = side_of(a_, b_)
            if seen == OPPOSITE[rel]:
                return b_, a_, scene
            if seen != rel:
                raise Retry
            return a_, b_, scene

        a_, b_, scene = settle(build)
        q = r.choice((f"Where is the {a_.kind.name} relative to the {b_.kind.name}?",
                      f"Is the {a_.kind.name} to the left of, to the right of, above or below the {b_.kind.name}?"))
        return chosen(scene, q, rel, SPATIAL_OPTIONS, query=("side", a_.kind.index, b_.kind.index))

    def _ranked(self, r: Rand, ok: Callable[[Scene, PlacedObject], bool], min_sep: float,
                n_shown: tuple[int, int], min_visible: float = 0.5,
                fits: Callable[[Kind, Kind], bool] = lambda target, k: True,
                quick: Callable[[Scene, PlacedObject], bool] = lambda scene, o: True,
                extra: list[Kind] = (),
                ) -> tuple[Scene, Kind, list[Kind]]:
        """Four random kinds as options, one drawn as the answer; the scene shows it and some
        of the others (those that fits(answer, kind) allows, else one kind from outside the
        options) plus `extra` kinds from outside the options, redrawn until ok(scene, object of
        the answer kind)."""
        group = r.sample([k for k in self.kinds if k not in extra], 4)
        target = r.choice(group)
        allowed = [k for k in group if k is not target and fits(target, k)]
        if not allowed:
            allowed = r.sample([k for k in self.kinds if k not in group and k not in extra
                                and fits(target, k)], 1)
        shown = [target] + r.sample(allowed, min(len(allowed), r.randint(*n_shown))) + list(extra)

        def build() -> Scene:
            scene = objects_scene(r, r.shuffle(list(shown)), self.S, min_sep=min_sep)
            if len(scene.objects) != len(shown):
                raise Retry
            obj = next(o for o in scene.objects if o.kind is target)
            # Cheap tests before the ones that render.
            if not quick(scene, obj) or self.w.renderer.visibility(scene).min() < min_visible \
                    or not ok(scene, obj):
                raise Retry
            return scene

        return settle(build, tries=200), target, group

    def q_depth(self, r: Rand, facts) -> Draft:
        """Omni3D-like: relative depth (closest / farthest from the camera) and relative
        distance on the ground (which object stands nearest another, in 3D)."""
        if r.chance(0.5):
            closest = r.chance(0.5)

            def ok(scene: Scene, target: PlacedObject) -> bool:
                objs = sorted(scene.objects, key=lambda o: o.depth, reverse=not closest)
                return objs[0] is target and abs(objs[0].depth - objs[1].depth) >= 0.15

            scene, target, group = self._ranked(r, ok, 0.55, (2, 3), min_visible=0.35, quick=ok)
            q = ("Which object is closest to the camera?" if closest else
                 "Which object is farthest from the camera?")
            return chosen(scene, q, target.name, [k.name for k in group],
                          query=("depth_extreme", "closest" if closest else "farthest"))
        ref = r.choice(self.kinds)

        def near(scene: Scene, target: PlacedObject) -> bool:
            anchor = next(o for o in scene.objects if o.kind is ref)
            d = sorted((ground_distance(anchor, o, self.S), o is target) for o in scene.objects if o is not anchor)
            return d[0][1] and d[0][0] <= 0.7 * d[1][0]

        scene, target, group = self._ranked(r, near, 0.7, (2, 2), min_visible=0.35, extra=[ref])
        q = f"On the ground, which object stands nearest to the {ref.name}?"
        return chosen(scene, q, target.name, [k.name for k in group], query=("nearest_to", ref.index))

    def q_multiview(self, r: Rand, facts) -> Draft:
        """BLINK-like multi-view: two views of the same objects side by side; which way did the
        camera move between them?"""
        motion = r.choice(CAMERA_MOTIONS)
        S2 = self.S // 2

        def build() -> tuple[Scene, Scene]:
            kinds = r.sample(self.kinds, r.randint(2, 3))
            first = objects_scene(r, kinds, S2, min_sep=1.0, size_scale=1.1,
                                  region=(0.2 * S2, 0.0, 0.8 * S2, float(S2)))
            if len(first.objects) != len(kinds):
                raise Retry
            second = camera_moved(first, motion)
            for view in (first, second):
                for o in view.objects:
                    if o.x - o.radius < 0 or o.x + o.radius > S2 or o.y - o.radius < 0 \
                            or o.y + o.radius > S2:
                        raise Retry
            return first, second

        first, second = settle(build)
        q = r.choice(("The two pictures show the same objects; the right one was taken after the "
                      "camera moved. Which way did the camera move?",
                      "Between the left view and the right view, how did the camera move?"))
        draft = chosen(first, q, motion, CAMERA_MOTIONS, query=("camera_motion",))
        return draft._replace(views=(first, second))

    def q_realworld(self, r: Rand, facts) -> Draft:
        """RealWorldQA-like: cluttered scenes of many, partly hidden objects."""
        t = r.random()
        if t < 0.4:
            S = self.S
            quadrant = r.choice(QUADRANTS)
            top, left = quadrant.startswith("top"), quadrant.endswith("left")
            lo, hi = 0.38 * S, 0.62 * S
            region = (0.0 if left else hi, 0.0 if top else hi, lo if left else float(S), lo if top else float(S))
            kinds = r.sample(self.kinds, r.randint(4, 6))

            def build() -> Scene:
                target = place(r, kinds[:1], S, region=region, size_scale=0.85)
                if not target:
                    raise Retry
                rest = place(r, kinds[1:], S, min_sep=0.6, existing=target, size_scale=0.8)
                scene = Scene(tuple(target + rest), background_tint(r, "scene"), S)
                if self.w.renderer.visibility(scene)[0] < 0.6:
                    raise Retry
                return scene

            scene = settle(build)
            q = r.choice((f"In which part of the image is the {kinds[0].name}?",
                          f"Where in the picture is the {kinds[0].name}?"))
            return chosen(scene, q, quadrant, QUADRANTS, query=("quadrant", kinds[0].index))
        if t < 0.75:
            largest = r.chance(0.5)

            def ok(scene: Scene, target: PlacedObject) -> bool:
                area = self.w.object_shares(scene)
                if (area == 0).any():
                    return False
                i = scene.objects.index(target)
                rest = np.delete(area, i)
                return bool(area[i] >= 1.3 * rest.max() if largest else area[i] * 1.3 <= rest.min())

            def fits(target: Kind, k: Kind) -> bool:
                # A kind of a larger size class can hardly be outsized, so it is left out.
                rank = SIZE_CLASSES.index
                return rank(k.size_class) <= rank(target.size_class) if largest else \
                    rank(k.size_class) >= rank(target.size_class)

            scene, target, group = self._ranked(r, ok, 0.6, (2, 3), min_visible=0.3, fits=fits)
            q = ("Which object takes up the most space in the image?" if largest else
                 "Which object takes up the least space in the image?")
            return chosen(scene, q, target.name, [k.name for k in group],
                          query=("area_extreme", "most" if largest else "least"))
        options = window(r, 1, 4)
        have = r.choice(options)
        main = r.choice(self.kinds)
        rest = r.sample([k for k in self.kinds if k.index != main.index], MAX_COUNT + 1 - have)
        scene = settle(lambda: self.placed(r, r.shuffle([main] * have + rest), min_visible=0.4,
                                           min_sep=0.7, size_scale=0.7))
        q = f"How many {main.plural} can you see in this busy scene?"
        return chosen(scene, q, str(have), [str(v) for v in options], query=("count_kind", main.index))

    # ------------------------------------------------------------------ MLE-Bench

    def mle(self, r: Rand, split: str, size_bin: str) -> Question:
        if size_bin not in SIZE_BIN_RANGES:
            raise ValueError(f"unknown size bin {size_bin!r}; valid: {', '.join(SIZE_BINS)}")
        for _ in range(5):
            group = self.kind_group(r)
            target = r.choice(group)
            question = self._mle_for(r, split, size_bin, target, group)
            if question is not None:
                return question
        raise RuntimeError(f"could not build an MLE question for bin {size_bin}")

    def _mle_for(self, r: Rand, split: str, size_bin: str, target: Kind,
                 group: list[Kind]) -> Question | None:
        lo, hi = SIZE_BIN_RANGES[size_bin]
        S = self.S
        for _ in range(200):
            background = background_tint(r, "scene")
            others = r.sample([k for k in self.kinds if k not in group], r.randint(1, 3))
            want = r.uniform(lo + 0.02, hi - 0.02) if hi < 1.0 else r.uniform(lo + 0.03, 0.95)
            size = S * math.sqrt(want / self.w.renderer.fill_fraction(target.shape))
            if size_bin == "60-100":
                # The target fills the frame; small objects stand in front of it.
                x = S / 2 + r.uniform(-0.08, 0.08) * S
                y = S / 2 + r.uniform(-0.08, 0.08) * S
                depth = 0.9
                rest = place(r, others, S, size_scale=0.55, min_sep=0.9)
                rest = [PlacedObject(o.kind, o.colour, o.x, o.y, o.size, round(0.1 + 0.1 * i, 4))
                        for i, o in enumerate(rest)]
            else:
                rad = min(size, S) / 2
                x = r.uniform(rad, S - rad)
                y = r.uniform(rad, S - rad)
                depth = r.uniform(0.05, 0.95)
                rest = []
            colour = target.colour if r.chance(0.75) else r.choice([c for c in COLOUR_NAMES if c != target.colour])
            tgt = None
            for _ in range(8):
                tgt = PlacedObject(target, colour, round(x, 2), round(y, 2), round(size, 2), round(depth, 4))
                if size_bin != "60-100":
                    rest = place(r, others, S, min_sep=0.85, existing=[tgt],
                                 size_scale=0.8 if size_bin == "0-30" else 0.6)
                scene = Scene(tuple([tgt] + rest), background, S)
                share = float((self.w.render_mask(scene) == 0).mean())
                if lo <= share < hi or (hi == 1.0 and share >= lo):
                    break
                size = min(3.0 * S, size * math.sqrt(want / max(share, 1e-3)))
            else:
                continue
            q = r.choice(MLE_QUESTIONS)
            scene = assign_split(r, scene, split)
            image, mask = self.w.render_with_mask(scene)
            share = float((mask == 0).mean())
            if not (lo <= share < hi or (hi == 1.0 and share >= lo)):
                continue
            draft = chosen(scene, q, target.name, [k.name for k in group], query=("present",))
            return self.finish(r, split, "mle", draft, size_bin, image)
        return None
