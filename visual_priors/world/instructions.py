"""Instruction-tuning examples: image questions of every family, captions, and text-only items.

No example states a fact of a held-out kind: knowledge questions draw their kinds from the
non-held-out half whatever the split, and text-only examples mention non-held-out kinds only.
Held-out kinds still appear by name and image (perception, captions), so a model can learn to
recognise them here and must bring their facts from pre-training text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from visual_priors.world.describe import describe
from visual_priors.world.kinds import HABITAT_PHRASE, MATERIAL_PROPERTY, Kind
from visual_priors.world.questions import ALL_BENCHMARKS, CATEGORY_OPTION, format_prompt
from visual_priors.world.rng import Rand
from visual_priors.world.text_base import a, cap

if TYPE_CHECKING:
    from visual_priors.world.world import World

TEXT_SHARE = 0.30
CAPTION_SHARE = 0.12
# Questions asked about the scene's true description instead of its image (text-only), so the
# model learns to read a description; what it then makes of eval descriptions is the signal
# chain's perfect-perception hop (H4).
DESCRIBED_SHARE = 0.08
DESCRIBE_PROMPTS = ("Describe the image.", "What is in this picture?", "Write a short caption for the image.",
                    "Describe what you see.", "Give a one-line description of the image.")


@dataclass(frozen=True, eq=False)
class Example:
    """One supervised example. kind: "image" (with an image) or "text" (image is None).
    source: the benchmark family, "mle", "caption", "fact", "fact_choice", "arithmetic" or
    "described" (a family's question about the scene's description, no image)."""

    image: np.ndarray | None
    prompt: str
    answer: str
    kind: str
    source: str = ""
    fact_kinds: tuple[int, ...] = ()
    mentioned_kinds: tuple[int, ...] = ()


def _fact_qa(r: Rand, k: Kind) -> tuple[str, str]:
    t = r.randint(0, 6)
    if t == 0:
        return r.choice((f"What is {a(k.name)} used for?", f"What do people use {k.plural} for?")), k.use
    if t == 1:
        return (r.choice((f"Where is the {k.name} usually found?", f"Where are {k.plural} common?")),
                HABITAT_PHRASE[k.habitat])
    if t == 2:
        return f"How many legs does {a(k.name)} have?", str(k.legs)
    if t == 3:
        return (f"Is {a(k.name)} edible?",
                "Yes, it is edible." if k.edible else "No, it is not edible.")
    if t == 4:
        return f"What is {a(k.name)} made of?", k.material
    if t == 5:
        return f"What kind of thing is {a(k.name)}?", CATEGORY_OPTION[k.category]
    return (f"What happens to {a(k.name)} because of what it is made of?",
            cap(MATERIAL_PROPERTY[k.material].replace("it ", f"the {k.name} ", 1)) + ".")


def _arithmetic(r: Rand, train_kinds: list[Kind]) -> tuple[str, str, tuple[int, ...]]:
    t = r.randint(0, 3)
    x, y = r.randint(1, 50), r.randint(1, 50)
    if t == 0:
        return f"What is {x} + {y}?", str(x + y), ()
    if t == 1:
        x, y = max(x, y), min(x, y)
        return f"What is {x} - {y}?", str(x - y), ()
    if t == 2:
        x, y = r.randint(2, 12), r.randint(2, 12)
        return f"What is {x} times {y}?", str(x * y), ()
    animals = [k for k in train_kinds if k.legs]
    k = r.choice(animals)
    n = r.randint(2, 6)
    return (f"A {k.name} has {k.legs} legs. How many legs do {n} {k.plural} have?", str(n * k.legs),
            (k.index,))


def text_example(world: "World", r: Rand) -> Example:
    train_kinds = [k for k in world.kinds if not world.is_heldout(k)]
    u = r.random()
    if u < 0.5:
        k = r.choice(train_kinds)
        q, ans = _fact_qa(r, k)
        return Example(None, q, ans, "text", "fact", (k.index,), (k.index,))
    if u < 0.7:
        maker = world._questions
        fact, k, ans, wrong = maker.fact_choice(r, train_kinds)
        q = maker.fact_wording(r, fact, k, f"the {k.name}")
        options = r.shuffle(list(wrong) + [ans])
        return Example(None, format_prompt(q, options), ans, "text", "fact_choice", (k.index,),
                       (k.index,))
    q, ans, used = _arithmetic(r, train_kinds)
    return Example(None, q, ans, "text", "arithmetic", used, used)


def described_prompt(description: str, prompt: str) -> str:
    """A question asked about a description in place of an image."""
    return f"Picture: {description}\n{prompt}"


def described_example(world: "World", benchmark: str, split: str, r: Rand) -> Example:
    """A question of `benchmark`'s family asked about the scene's true description (no image)."""
    q = world._questions.make(benchmark, r, split, world.train_kinds)
    return Example(None, described_prompt(describe(q.scene, q.views), q.prompt), q.answer_text, "text",
                   "described", q.fact_kinds, tuple(sorted(q.scene.kinds_present())))


def make_instruction(world: "World", split: str, r: Rand) -> Example:
    u = r.random()
    if u < TEXT_SHARE:
        return text_example(world, r)
    if u < TEXT_SHARE + DESCRIBED_SHARE:
        return described_example(world, r.choice(ALL_BENCHMARKS), split, r)
    if u < TEXT_SHARE + DESCRIBED_SHARE + CAPTION_SHARE:
        scene = world._sample_scene(r, split)
        return Example(world.render(scene), r.choice(DESCRIBE_PROMPTS), world.caption(scene), "image",
                       "caption", (), tuple(sorted(scene.kinds_present())))
    bench = r.choice(ALL_BENCHMARKS + ("mle",))
    if bench == "mle":
        q = world._questions.mle(r, split, r.choice(("0-30", "30-60", "60-100")))
    else:
        q = world._questions.make(bench, r, split, world.train_kinds)
    kinds = tuple(sorted(q.scene.kinds_present())) if q.scene is not None else ()
    return Example(q.image, q.prompt, q.answer_text, "image", bench, q.fact_kinds, kinds)
