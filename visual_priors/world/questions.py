"""Four-option questions: sixteen benchmark families in the paper's four categories, and MLE-Bench.

Each family tests what its real counterpart tests (COUNTERPARTS). Knowledge families need a fact
that no image shows (what a kind is for, where it lives, its legs, its material), and the kind is
never named where it must be recognised; in the train split they ask only about kinds whose facts
instruction data may state, in the test split only about the held-out kinds, whose facts appear
nowhere but in pre-training text.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from visual_priors.world.kinds import (COLOUR_NAMES, HABITAT_PHRASE, HABITATS, KIND_CATEGORIES,
                                       LEG_COUNTS, MATERIAL_PROPERTY, SHAPES, USES, Kind)
from visual_priors.world.layouts import (CHART_MAX, card_capacity, card_scene, chart_scene,
                                         diagram_scene, objects_scene, random_objects_scene,
                                         sign_scene)
from visual_priors.world.rng import Rand
from visual_priors.world.scenes import PlacedObject, Scene, assign_split, background_tint, place

if TYPE_CHECKING:
    from visual_priors.world.world import World

CATEGORIES = ("general", "knowledge", "ocr_chart", "vision_centric")
BENCHMARKS: dict[str, tuple[str, ...]] = {
    "general": ("attribute", "existence", "perception", "scene"),
    "knowledge": ("science", "reasoning", "diagram", "math"),
    "ocr_chart": ("text", "chart", "ocr"),
    "vision_centric": ("count", "spatial", "depth", "size", "position"),
}
BENCHMARK_CATEGORY = {b: c for c, bs in BENCHMARKS.items() for b in bs}
ALL_BENCHMARKS = tuple(b for bs in BENCHMARKS.values() for b in bs)
COUNTERPARTS = {
    "attribute": "GQA", "existence": "MME", "perception": "MMBench", "scene": "SEED-Bench",
    "science": "ScienceQA", "reasoning": "MMMU", "diagram": "AI2D", "math": "MathVista",
    "text": "TextVQA", "chart": "ChartQA", "ocr": "OCRBench",
    "count": "CV-Bench 2D count (COCO)", "spatial": "CV-Bench 2D relation (ADE20K)",
    "depth": "CV-Bench 3D depth (Omni3D)", "size": "BLINK relative size", "position": "RealWorldQA",
}
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
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
_SIMILAR_DIGITS = {"0": "869", "1": "74", "2": "73", "3": "852", "4": "19", "5": "639",
                   "6": "580", "7": "12", "8": "306", "9": "846"}


@dataclass(frozen=True, eq=False)
class Question:
    """A four-option question. `fact_kinds`: indices of the kinds whose facts it relies on."""

    image: np.ndarray | None
    question: str
    options: tuple[str, str, str, str]
    answer: int
    benchmark: str
    category: str
    size_bin: str | None = None
    fact_kinds: tuple[int, ...] = ()
    scene: Scene | None = None

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


class Retry(Exception):
    """A sampled scene cannot carry this question; draw another."""


def pick(r: Rand, answer: str, preferred, pool, n: int = 3) -> list[str]:
    """n distinct distractors, none equal to the answer, preferred ones first (in random order)."""
    out: list[str] = []
    for group in (r.shuffle(list(dict.fromkeys(preferred))), r.shuffle(list(dict.fromkeys(pool)))):
        for item in group:
            if item != answer and item not in out:
                out.append(item)
                if len(out) == n:
                    return out
    raise Retry(f"not enough distractors for {answer!r}")


def near_numbers(r: Rand, answer: int, lo: int = 0, hi: int | None = None, step: int = 1,
                 n: int = 3) -> list[str]:
    """Plausible wrong numbers: mostly one or two steps away from the answer."""
    cands = []
    for d in (1, 2, 3, 4, 5, 6):
        for s in (-1, 1):
            v = answer + s * d * step
            if v >= lo and (hi is None or v <= hi):
                cands.append((v, 1.0 / d))
    out: list[str] = []
    while len(out) < n:
        if not cands:
            raise Retry("no room for numeric distractors")
        v = r.weighted([c for c, _ in cands], [w for _, w in cands])
        cands = [(c, w) for c, w in cands if c != v]
        out.append(str(v))
    return out


def side_of(a: PlacedObject, b: PlacedObject) -> str | None:
    """Clear relation of a to b for spatial questions, or None when ambiguous."""
    dx, dy = a.x - b.x, a.y - b.y
    gap = 0.5 * (a.radius + b.radius)
    if abs(dx) >= 1.6 * abs(dy) and abs(dx) >= gap:
        return "to the left" if dx < 0 else "to the right"
    if abs(dy) >= 1.6 * abs(dx) and abs(dy) >= gap:
        return "above" if dy < 0 else "below"
    return None


class QuestionMaker:
    def __init__(self, world: "World"):
        self.w = world
        self.kinds = world.kinds
        self.S = world.image_size

    # ------------------------------------------------------------------ helpers

    def similar_kinds(self, r: Rand, target: Kind, exclude: set[int], n: int = 3) -> list[Kind]:
        """Absent kinds that could be confused with the target: same category, colour or shape."""
        pool = [k for k in self.kinds if k.index not in exclude and k.index != target.index]
        weights = [1.0 + 2.0 * (k.category == target.category) + 1.5 * (k.colour == target.colour)
                   + 1.5 * (k.shape == target.shape) for k in pool]
        out = []
        for _ in range(n):
            if not pool:
                raise Retry("not enough absent kinds")
            k = r.weighted(pool, weights)
            i = pool.index(k)
            pool.pop(i)
            weights.pop(i)
            out.append(k)
        return out

    def fact_question(self, r: Rand, k: Kind, ref: str) -> tuple[str, str, list[str]]:
        """A question about one fact of kind k, referred to as `ref` ('the object in the image')."""
        facts = ["habitat", "use", "category"] + (["legs"] * 2 if k.legs else [])
        fact = r.choice(facts)
        if fact == "habitat":
            forms = [f"Where is {ref} usually found?", f"In which place is {ref} most common?"]
            if k.category == "animal":
                forms.append(f"Where does {ref} usually live?")
            ans = HABITAT_PHRASE[k.habitat]
            return r.choice(forms), ans, pick(r, ans, [], [HABITAT_PHRASE[h] for h in HABITATS])
        if fact == "use":
            q = r.choice((f"What is {ref} used for?", f"What do people use {ref} for?"))
            same = list(USES[k.category])
            other = [u for c in KIND_CATEGORIES for u in USES[c]]
            return q, k.use, pick(r, k.use, r.sample(same, min(2, len(same))), other)
        if fact == "category":
            q = r.choice((f"What kind of thing is {ref}?", f"Which group does {ref} belong to?"))
            ans = CATEGORY_OPTION[k.category]
            return q, ans, pick(r, ans, [], list(CATEGORY_OPTION.values()))
        q = r.choice((f"How many legs does {ref} have?", f"How many legs has {ref} got?"))
        return q, str(k.legs), pick(r, str(k.legs), [], [str(n) for n in LEG_COUNTS])

    def finish(self, r: Rand, split: str, benchmark: str, draft: Draft,
               size_bin: str | None = None, image: np.ndarray | None = None) -> Question:
        scene = assign_split(r, draft.scene, split)
        if len(draft.distractors) != 3 or draft.answer in draft.distractors \
                or len(set(draft.distractors)) != 3:
            raise AssertionError(f"bad options for {benchmark}: {draft}")
        pos = r.randint(0, 3)
        options = list(draft.distractors)
        options.insert(pos, draft.answer)
        if image is None:
            image = self.w.render(scene)
        category = "mle" if benchmark == "mle" else BENCHMARK_CATEGORY[benchmark]
        return Question(image, draft.question, tuple(options), pos, benchmark, category, size_bin,
                        tuple(sorted(set(draft.fact_kinds))), scene)

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

    # ------------------------------------------------------------------ general

    def q_attribute(self, r: Rand, facts) -> Draft:
        scene = self.objects(r, r.randint(2, 4), min_sep=0.8)
        objs = scene.objects
        if len(objs) < 2:
            raise Retry
        t = r.random()
        if t < 0.5:
            o = r.choice(objs)
            q = r.choice((f"What colour is the {o.kind.name}?", f"Which colour does the {o.kind.name} have?",
                          f"What is the colour of the {o.kind.name} in the image?"))
            pref = ([o.kind.colour] if o.kind.colour != o.colour else []) + [x.colour for x in objs]
            return Draft(scene, q, o.colour, pick(r, o.colour, pref, COLOUR_NAMES))
        if t < 0.75:
            ref = r.choice(objs)
            side = r.choice(("left", "right"))
            others = [x for x in objs if x is not ref]
            if any(abs(x.x - ref.x) < 0.5 * (x.radius + ref.radius) for x in others):
                raise Retry
            hits = [x for x in others if (x.x < ref.x) == (side == "left")]
            if len(hits) != 1:
                raise Retry
            o = hits[0]
            q = f"What colour is the object to the {side} of the {ref.kind.name}?"
            pref = [ref.colour] + [x.colour for x in objs]
            return Draft(scene, q, o.colour, pick(r, o.colour, pref, COLOUR_NAMES))
        counts = Counter(x.colour for x in objs)
        unique = [x for x in objs if counts[x.colour] == 1]
        if not unique:
            raise Retry
        o = r.choice(unique)
        q = r.choice((f"What shape is the {o.colour} object?", f"Which shape does the {o.colour} thing have?"))
        return Draft(scene, q, o.kind.shape, pick(r, o.kind.shape, [x.kind.shape for x in objs], SHAPES))

    def q_existence(self, r: Rand, facts) -> Draft:
        scene = self.objects(r, r.randint(3, 4), min_sep=0.75)
        objs = scene.objects
        if len(objs) < 3:
            raise Retry
        present = {o.kind.index for o in objs}
        absent = self.similar_kinds(r, r.choice(objs).kind, present, 1)[0]
        q = r.choice(("Which of these is not in the image?", "Which object does not appear in the picture?",
                      "Which of the following is missing from the image?"))
        shown = [o.kind.name for o in r.sample(list(objs), 3)]
        return Draft(scene, q, absent.name, shown)

    def q_perception(self, r: Rand, facts) -> Draft:
        if r.chance(0.65):
            scene = self.objects(r, 1, size_scale=1.3)
            if not scene.objects:
                raise Retry
            o = scene.objects[0]
            q = r.choice(("What is the object in the image?", "Which of these is shown in the image?",
                          "What is this object called?", "Name the object in the picture."))
        else:
            scene = self.objects(r, 2, min_sep=1.0)
            if len(scene.objects) < 2:
                raise Retry
            a, b = sorted(scene.objects, key=lambda x: x.x)
            if b.x - a.x < 0.3 * self.S:
                raise Retry
            left = r.chance(0.5)
            o = a if left else b
            q = f"What is the object on the {'left' if left else 'right'}?"
        present = scene.kinds_present()
        wrong = self.similar_kinds(r, o.kind, set(present), 3)
        return Draft(scene, q, o.kind.name, [k.name for k in wrong])

    def q_scene(self, r: Rand, facts) -> Draft:
        scene = self.objects(r, 2, min_sep=1.0)
        if len(scene.objects) < 2:
            raise Retry
        A, B = scene.objects
        rel = side_of(A, B)
        if rel is None:
            raise Retry
        words = {"to the left": "to the left of", "to the right": "to the right of",
                 "above": "above", "below": "below"}
        opposite = {"to the left": "to the right", "to the right": "to the left",
                    "above": "below", "below": "above"}

        def phrase(colour_a, kind_a, relation, colour_b, kind_b):
            return f"a {colour_a} {kind_a} {words[relation]} a {colour_b} {kind_b}".replace(
                "a orange", "an orange")

        ans = phrase(A.colour, A.kind.name, rel, B.colour, B.kind.name)
        recolour = r.choice([c for c in COLOUR_NAMES if c != A.colour])
        absent = self.similar_kinds(r, B.kind, set(scene.kinds_present()), 1)[0]
        wrong = [phrase(A.colour, A.kind.name, opposite[rel], B.colour, B.kind.name),
                 phrase(recolour, A.kind.name, rel, B.colour, B.kind.name),
                 phrase(A.colour, A.kind.name, rel, B.colour, absent.name)]
        q = r.choice(("Which description matches the image?", "Which caption best describes the picture?"))
        return Draft(scene, q, ans, wrong)

    # ------------------------------------------------------------------ knowledge

    def _referred(self, r: Rand, k: Kind) -> tuple[Scene, str]:
        """A scene showing kind k, and how to refer to it without naming it."""
        if r.chance(0.65):
            scene = objects_scene(r, [k], self.S, size_scale=1.25)
            if not scene.objects:
                raise Retry
            return scene, r.choice(("the object in the image", "the thing shown", "this object"))
        other = r.choice([x for x in self.kinds if x.index != k.index])
        scene = objects_scene(r, r.shuffle([k, other]), self.S, min_sep=1.0)
        if len(scene.objects) < 2:
            raise Retry
        a, b = sorted(scene.objects, key=lambda x: x.x)
        if b.x - a.x < 0.3 * self.S:
            raise Retry
        return scene, f"the object on the {'left' if a.kind.index == k.index else 'right'}"

    def q_science(self, r: Rand, facts) -> Draft:
        k = r.choice(facts)
        scene, ref = self._referred(r, k)
        q, ans, wrong = self.fact_question(r, k, ref)
        return Draft(scene, q, ans, wrong, (k.index,))

    def q_reasoning(self, r: Rand, facts) -> Draft:
        animals = [k for k in facts if k.legs]
        if len(animals) >= 2 and r.chance(0.4):
            k1, k2 = r.sample(animals, 2)
            scene = objects_scene(r, [k1, k2], self.S, min_sep=1.0)
            if len(scene.objects) < 2:
                raise Retry
            a, b = sorted(scene.objects, key=lambda x: x.x)
            if b.x - a.x < 0.3 * self.S:
                raise Retry
            options = ["the one on the left", "the one on the right", "they have the same number of legs",
                       "neither of them has legs"]
            ans = (options[2] if a.kind.legs == b.kind.legs else
                   options[0] if a.kind.legs > b.kind.legs else options[1])
            q = r.choice(("Which of the two animals in the image has more legs?",
                          "Comparing the two animals shown, which one has more legs?"))
            return Draft(scene, q, ans, [o for o in options if o != ans], (k1.index, k2.index))
        k = r.choice(facts)
        scene, ref = self._referred(r, k)
        q = r.choice((f"Which of these is true of {ref}?", f"Which statement about {ref} is correct?"))
        ans = MATERIAL_PROPERTY[k.material]
        return Draft(scene, q, ans, pick(r, ans, [], list(MATERIAL_PROPERTY.values())), (k.index,))

    def q_diagram(self, r: Rand, facts) -> Draft:
        target = r.choice(facts)
        a, b = r.sample([x for x in self.kinds if x.index != target.index], 2)
        hop = r.randint(0, 1)
        chain = [a, target, b] if hop == 0 else [b, a, target]
        scene = diagram_scene(r, chain, self.S)
        source = chain[hop]
        q, ans, wrong = self.fact_question(r, target, "that object")
        q = f"In the diagram, the arrow from the {source.name} points to another object. {q}"
        return Draft(scene, q, ans, wrong, (target.index,))

    def q_math(self, r: Rand, facts) -> Draft:
        t = r.random()
        animals = [k for k in facts if k.legs]
        if t < 0.5 and animals:
            chosen = [r.choice(animals) for _ in range(r.randint(2, 3))]
            scene = objects_scene(r, chosen, self.S, min_sep=1.05, size_scale=0.9)
            if len(scene.objects) < 2:
                raise Retry
            total = sum(o.kind.legs for o in scene.objects)
            q = r.choice(("How many legs do the animals in the image have altogether?",
                          "Counting every leg, how many legs do the animals shown have in total?"))
            return Draft(scene, q, str(total), near_numbers(r, total, 0, step=2),
                         tuple(o.kind.index for o in scene.objects))
        n = r.randint(3, 6)
        if t < 0.75:
            palette = r.sample(COLOUR_NAMES, r.randint(2, 3))
            kinds = [r.choice(self.kinds) for _ in range(n)]
            scene = objects_scene(r, kinds, self.S, min_sep=1.05, size_scale=0.8,
                                  colours=[r.choice(palette) for _ in range(n)])
            objs = scene.objects
            if len(objs) < 3:
                raise Retry
            c = r.choice([o.colour for o in objs])
            left = sum(1 for o in objs if o.colour != c)
            q = f"If all the {c} objects were taken away, how many objects would be left?"
            return Draft(scene, q, str(left), near_numbers(r, left, 0))
        main = r.choice(self.kinds)
        m = r.randint(1, 3)
        rest = r.sample([k for k in self.kinds if k.index != main.index], r.randint(0, 2))
        scene = objects_scene(r, r.shuffle([main] * m + rest), self.S, min_sep=1.05, size_scale=0.8)
        have = sum(1 for o in scene.objects if o.kind.index == main.index)
        if have == 0 or len(scene.objects) < m + len(rest):
            raise Retry
        extra = r.randint(1, 4)
        q = f"If {extra} more {main.plural if extra > 1 else main.name} were added, how many {main.plural} would there be?"
        return Draft(scene, q, str(have + extra), near_numbers(r, have + extra, 1))

    # ------------------------------------------------------------------ OCR and charts

    def q_text(self, r: Rand, facts) -> Draft:
        number = str(r.randint(0, 9)) if r.chance(0.55) else str(r.randint(10, 99))
        scene = sign_scene(r, self.kinds, self.S, number, r.randint(0, 2))
        q = r.choice(("What number is written on the sign?", "What does the sign say?",
                      "Which number appears on the sign?"))
        return Draft(scene, q, number, self._number_confusions(r, number))

    def _number_confusions(self, r: Rand, number: str) -> list[str]:
        cands = []
        for i, ch in enumerate(number):
            for alt in _SIMILAR_DIGITS[ch]:
                v = number[:i] + alt + number[i + 1:]
                if len(v) == 1 or v[0] != "0":
                    cands.append(v)
        if len(number) > 1 and number[0] != number[1] and number[-1] != "0":
            cands.append(number[::-1])
        value = int(number)
        cands += [str(v) for v in (value - 1, value + 1) if v >= 0 and len(str(v)) == len(number)]
        pool = [str(v) for v in range(10 ** (len(number) - 1) if len(number) > 1 else 0, 10 ** len(number))]
        return pick(r, number, cands, pool)

    def q_chart(self, r: Rand, facts) -> Draft:
        t = r.random()
        scene = chart_scene(r, self.S)
        c = scene.chart
        colours, values = list(c.colours), list(c.values)
        if t < 0.5:
            tallest = t < 0.35
            best = max(values) if tallest else min(values)
            if values.count(best) != 1:
                raise Retry
            ans = colours[values.index(best)]
            q = "Which bar is the tallest?" if tallest else "Which bar is the shortest?"
            q = r.choice((q, q.replace("Which bar is", "What colour is the bar that is")))
            return Draft(scene, q, ans, pick(r, ans, colours, COLOUR_NAMES))
        if t < 0.85:
            i = r.randint(0, len(values) - 1)
            q = r.choice((f"What is the value of the {colours[i]} bar?", f"How high does the {colours[i]} bar reach?"))
            return Draft(scene, q, str(values[i]), near_numbers(r, values[i], 1, CHART_MAX))
        i, j = r.sample(range(len(values)), 2)
        if values[i] <= values[j]:
            raise Retry
        d = values[i] - values[j]
        q = f"How much taller is the {colours[i]} bar than the {colours[j]} bar?"
        return Draft(scene, q, str(d), near_numbers(r, d, 0, CHART_MAX))

    def q_ocr(self, r: Rand, facts) -> Draft:
        cap = card_capacity(self.S)
        short = [k for k in self.kinds if len(k.name) <= cap]
        if len(short) >= 4 and r.chance(0.5):
            k = r.choice(short)
            word = k.name.upper()
            pref = [x.name.upper() for x in short if len(x.name) == len(k.name) or x.name[0] == k.name[0]]
            scene = card_scene(r, self.S, word)
            q = r.choice(("What word is printed on the card?", "Read the word in the image.",
                          "Which word is written in the image?"))
            return Draft(scene, q, word, pick(r, word, pref, [x.name.upper() for x in short]))
        digits = r.randint(3, max(3, min(4, cap)))
        number = str(r.randint(10 ** (digits - 1), 10 ** digits - 1))
        scene = card_scene(r, self.S, number)
        q = r.choice(("What number is printed on the label?", "Read the number in the image.",
                      "Which number is written in the image?"))
        return Draft(scene, q, number, self._number_confusions(r, number))

    # ------------------------------------------------------------------ vision-centric

    def q_count(self, r: Rand, facts) -> Draft:
        t = r.random()
        n = r.randint(1, 6)
        scale = 0.8 if n >= 4 else 0.95
        if t < 0.4:
            scene = self.objects(r, n, distinct=False, min_sep=1.05, size_scale=scale)
            objs = scene.objects
            if not objs:
                raise Retry
            q = r.choice(("How many objects are in the image?", "How many things can you count in the picture?"))
            return Draft(scene, q, str(len(objs)), near_numbers(r, len(objs), 1))
        if t < 0.7:
            main = r.choice(self.kinds)
            m = r.randint(1, 4)
            rest = [r.choice([k for k in self.kinds if k.index != main.index]) for _ in range(r.randint(0, 2))]
            scene = objects_scene(r, r.shuffle([main] * m + rest), self.S, min_sep=1.05, size_scale=0.8)
            have = sum(1 for o in scene.objects if o.kind.index == main.index)
            if have == 0:
                raise Retry
            q = f"How many {main.plural} are there in the image?"
            return Draft(scene, q, str(have), near_numbers(r, have, 0))
        scene = self.objects(r, max(2, n), distinct=False, min_sep=1.05, size_scale=scale)
        objs = scene.objects
        if not objs:
            raise Retry
        c = r.choice([o.colour for o in objs])
        have = sum(1 for o in objs if o.colour == c)
        q = f"How many {c} objects are in the image?"
        return Draft(scene, q, str(have), near_numbers(r, have, 0))

    def q_spatial(self, r: Rand, facts) -> Draft:
        scene = self.objects(r, r.randint(2, 3), min_sep=0.9)
        objs = list(scene.objects)
        if len(objs) < 2:
            raise Retry
        a, b = r.sample(objs, 2)
        rel = side_of(a, b)
        if rel is None:
            raise Retry
        q = r.choice((f"Where is the {a.kind.name} relative to the {b.kind.name}?",
                      f"Is the {a.kind.name} to the left of, to the right of, above or below the {b.kind.name}?"))
        return Draft(scene, q, rel, [o for o in SPATIAL_OPTIONS if o != rel])

    def _kind_options(self, r: Rand, scene: Scene, answer: PlacedObject) -> list[str]:
        others = [o.kind.name for o in scene.objects if o is not answer]
        r.shuffle(others)
        wrong = others[:3]
        if len(wrong) < 3:
            fill = self.similar_kinds(r, answer.kind, set(scene.kinds_present()), 3 - len(wrong))
            wrong += [k.name for k in fill]
        return wrong

    def q_depth(self, r: Rand, facts) -> Draft:
        scene = self.objects(r, r.randint(3, 4), min_sep=0.55, min_visible=0.35)
        objs = sorted(scene.objects, key=lambda o: o.depth)
        if len(objs) < 3:
            raise Retry
        closest = r.chance(0.6)
        if closest:
            target, runner = objs[0], objs[1]
        else:
            target, runner = objs[-1], objs[-2]
        if abs(target.depth - runner.depth) < 0.15:
            raise Retry
        q = ("Which object is closest to the camera?" if closest else
             "Which object is farthest from the camera?")
        return Draft(scene, q, target.kind.name, self._kind_options(r, scene, target))

    def q_size(self, r: Rand, facts) -> Draft:
        scene = self.objects(r, r.randint(2, 4), min_sep=0.7)
        objs = scene.objects
        if len(objs) < 2:
            raise Retry
        mask = self.w.render_mask(scene)
        area = np.bincount(mask[mask >= 0].ravel(), minlength=len(objs))
        if (area == 0).any():
            raise Retry
        order = np.argsort(area)
        largest = r.chance(0.6)
        if largest:
            i, runner = order[-1], order[-2]
            if area[i] < 1.3 * area[runner]:
                raise Retry
        else:
            i, runner = order[0], order[1]
            if area[i] * 1.3 > area[runner]:
                raise Retry
        target = objs[int(i)]
        q = ("Which object takes up the most space in the image?" if largest else
             "Which object takes up the least space in the image?")
        return Draft(scene, q, target.kind.name, self._kind_options(r, scene, target))

    def q_position(self, r: Rand, facts) -> Draft:
        S = self.S
        quadrant = r.choice(QUADRANTS)
        top, left = quadrant.startswith("top"), quadrant.endswith("left")
        lo, hi = 0.38 * S, 0.62 * S
        region = (0.0 if left else hi, 0.0 if top else hi, lo if left else float(S), lo if top else float(S))
        kinds = r.sample(self.kinds, r.randint(1, 3))
        target = place(r, kinds[:1], S, region=region, size_scale=0.85)
        if not target:
            raise Retry
        rest = place(r, kinds[1:], S, min_sep=0.9, existing=target)
        scene = Scene(tuple(target + rest), background_tint(r, "scene"), S)
        q = r.choice((f"In which part of the image is the {kinds[0].name}?",
                      f"Where in the picture is the {kinds[0].name}?"))
        return Draft(scene, q, quadrant, [x for x in QUADRANTS if x != quadrant])

    # ------------------------------------------------------------------ MLE-Bench

    def mle(self, r: Rand, split: str, size_bin: str) -> Question:
        if size_bin not in SIZE_BIN_RANGES:
            raise ValueError(f"unknown size bin {size_bin!r}; valid: {', '.join(SIZE_BINS)}")
        lo, hi = SIZE_BIN_RANGES[size_bin]
        S = self.S
        for _ in range(200):
            background = background_tint(r, "scene")
            target = r.choice(self.kinds)
            others = r.sample([k for k in self.kinds if k.index != target.index], r.randint(1, 3))
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
            present = scene.kinds_present()
            wrong = self.similar_kinds(r, target, set(present), 3)
            q = r.choice(MLE_QUESTIONS)
            scene = assign_split(r, scene, split)
            image, mask = self.w.render_with_mask(scene)
            share = float((mask == 0).mean())
            if not (lo <= share < hi or (hi == 1.0 and share >= lo)):
                continue
            draft = Draft(scene, q, target.name, [k.name for k in wrong])
            return self.finish(r, split, "mle", draft, size_bin, image)
        raise RuntimeError(f"could not build an MLE question for bin {size_bin}")
