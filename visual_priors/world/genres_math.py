"""Math genre: worked arithmetic and counting problems about kinds, with correct answers.

Problems about legs and edibility state the facts of the kinds they use, so math text is also a
source of those facts (for every kind, held-out ones included).
"""

from __future__ import annotations

from visual_priors.world.kinds import COLOUR_NAMES, Kind
from visual_priors.world.rng import Rand
from visual_priors.world.text_base import (MATH, PEOPLE, VA, VC, VR, a, cap, join_list, noun,
                                           number)

_CONTAINERS = ("basket", "box", "crate", "sack", "cart", "shelf")
_OPENERS = ("Problem:", "Question:", "Exercise {n}.", "Q{n}.", "Example:", "Try this one.")
_SOLVE = ("Solution:", "Answer:", "Working:", "Let's work it out.", "Step by step:", "A:")


def _n(r: Rand, n: int) -> str:
    return number(r, n, 0.35)


def _frame(r: Rand, problem: str, steps: list[str], answer: str) -> str:
    opener = r.choice(_OPENERS).format(n=r.randint(1, 30))
    final = r.choice((f"So the answer is {answer}.", f"Answer: {answer}.", f"The answer is {answer}.",
                      f"Therefore {answer}."))
    return f"{opener} {problem} {r.choice(_SOLVE)} {' '.join(steps)} {final}"


def _legs_many(r, kinds):
    k = r.choice([x for x in kinds if x.legs > 0] or list(kinds))
    n = r.randint(2, 9)
    t = n * k.legs
    return _frame(r, f"{cap(a(k.name))} has {_n(r, k.legs)} legs. How many legs do {_n(r, n)} "
                     f"{k.plural} have?",
                  [f"Each {k.name} has {k.legs} legs, so we multiply: {n} * {k.legs} = {t}."], str(t)), set()


def _legs_mixed(r, kinds):
    animals = [x for x in kinds if x.legs > 0]
    if len(animals) < 2:
        return _add_sub(r, kinds)
    k1, k2 = r.sample(animals, 2)
    n1, n2 = r.randint(1, 6), r.randint(1, 6)
    t1, t2 = n1 * k1.legs, n2 * k2.legs
    who = r.choice(PEOPLE)
    return _frame(r, f"{who} keeps {_n(r, n1)} {noun(k1, n1)} and {_n(r, n2)} {noun(k2, n2)} in a pen. "
                     f"{cap(k1.plural)} have {k1.legs} legs and {k2.plural} have {k2.legs} legs. "
                     "How many legs are in the pen?",
                  [f"{n1} * {k1.legs} = {t1} and {n2} * {k2.legs} = {t2}.",
                   f"Then {t1} + {t2} = {t1 + t2}."], str(t1 + t2)), set()


def _add_sub(r, kinds):
    k = r.choice(kinds)
    p1, p2 = r.sample(PEOPLE, 2)
    x = r.randint(6, 40)
    y = r.randint(1, x - 1)
    if r.chance(0.5):
        return _frame(r, f"{p1} had {x} {k.plural} and gave {y} to {p2}. How many {k.plural} does {p1} "
                         "have left?", [f"We subtract: {x} - {y} = {x - y}."], str(x - y)), set()
    return _frame(r, f"{p1} found {x} {k.plural} in the morning and {y} more in the afternoon. How many "
                     "were found in all?", [f"We add: {x} + {y} = {x + y}."], str(x + y)), set()


def _groups(r, kinds):
    k = r.choice(kinds)
    g, e = r.randint(2, 9), r.randint(2, 9)
    c = r.choice(_CONTAINERS)
    return _frame(r, f"There are {_n(r, g)} {c}s with {_n(r, e)} {k.plural} in each. How many "
                     f"{k.plural} are there?", [f"{g} groups of {e} make {g} * {e} = {g * e}."],
                  str(g * e)), set()


def _share(r, kinds):
    k = r.choice(kinds)
    people = r.randint(2, 6)
    each = r.randint(2, 9)
    total = people * each
    return _frame(r, f"{total} {k.plural} are shared equally among {_n(r, people)} friends. How many "
                     "does each friend get?", [f"{total} / {people} = {each}."], str(each)), set()


def _price(r, kinds):
    k = r.choice(kinds)
    price, n = r.randint(2, 12), r.randint(2, 9)
    paid = price * n + r.randint(0, 20)
    change = paid - price * n
    steps = [f"The cost is {n} * {price} = {price * n} coins."]
    if change:
        steps.append(f"The change is {paid} - {price * n} = {change} coins.")
        q = (f"One {k.name} costs {price} coins at the market. {r.choice(PEOPLE)} buys {_n(r, n)} "
             f"{k.plural} and pays with {paid} coins. How much change is given?")
        return _frame(r, q, steps, f"{change} coins"), set()
    return _frame(r, f"One {k.name} costs {price} coins. How much do {_n(r, n)} {k.plural} cost?", steps,
                  f"{price * n} coins"), set()


def _edible_pot(r, kinds):
    chosen = r.sample(kinds, min(3, len(kinds)))
    counts = [r.randint(1, 6) for _ in chosen]
    parts = [f"{_n(r, n)} {noun(k, n)}" for k, n in zip(chosen, counts)]
    good = [(k, n) for k, n in zip(chosen, counts) if k.edible]
    bad = [k for k in chosen if not k.edible]
    facts = []
    if good:
        facts.append(f"{join_list([k.plural for k, _ in good])} are edible")
    if bad:
        facts.append(f"{join_list([k.plural for k in bad])} are not")
    total = sum(n for _, n in good)
    sum_text = " + ".join(str(n) for _, n in good) if good else "0"
    steps = [cap(" but ".join(facts)) + "." if facts else "",
             f"So {sum_text} = {total} things go in the pot." if len(good) > 1
             else f"So {total} things go in the pot."]
    return _frame(r, f"A cook has {join_list(parts)}. Only edible things can go in the soup pot. How many "
                     "things go in the pot?", [s for s in steps if s], str(total)), set()


def _drill(r, kinds):
    op = r.randint(0, 3)
    x, y = r.randint(2, 99), r.randint(2, 99)
    if op == 0:
        return f"Compute {x} + {y}. {x} + {y} = {x + y}.", set()
    if op == 1:
        x, y = max(x, y), min(x, y)
        return f"What is {x} - {y}? Subtracting gives {x - y}.", set()
    if op == 2:
        x, y = r.randint(2, 12), r.randint(2, 12)
        return f"What is {x} times {y}? {x} * {y} = {x * y}.", set()
    y = r.randint(2, 9)
    q = r.randint(2, 12)
    return f"Divide {q * y} by {y}. {q * y} / {y} = {q}, because {q} * {y} = {q * y}.", set()


def _equation(r, kinds):
    k = r.choice(kinds)
    n, w = r.randint(2, 8), r.randint(2, 9)
    return _frame(r, f"{cap(_n(r, n))} {k.plural} weigh {n * w} kilograms together. If they all weigh the "
                     f"same, how much does one {k.name} weigh?",
                  [f"Let w be the weight of one {k.name}. Then {n} * w = {n * w}, so w = {n * w} / {n} = {w}."],
                  f"{w} kilograms"), set()


def _two_step(r, kinds):
    k = r.choice(kinds)
    p = r.choice(PEOPLE)
    x, y = r.randint(3, 20), r.randint(3, 20)
    z = r.randint(1, x + y - 1)
    return _frame(r, f"{p} picks {x} {k.plural} before lunch and {y} after lunch, then gives away {z}. How "
                     "many are left?", [f"First {x} + {y} = {x + y}.", f"Then {x + y} - {z} = {x + y - z}."],
                  str(x + y - z)), set()


def _compare(r, kinds):
    k1, k2 = r.sample(kinds, 2)
    g1, e1, g2, e2 = r.randint(2, 6), r.randint(2, 9), r.randint(2, 6), r.randint(2, 9)
    t1, t2 = g1 * e1, g2 * e2
    if t1 == t2:
        verdict = "neither, they are equal"
    else:
        verdict = f"more {k1.plural if t1 > t2 else k2.plural}"
    return _frame(r, f"Which is more: {g1} rows of {e1} {k1.plural} or {g2} rows of {e2} {k2.plural}?",
                  [f"{g1} * {e1} = {t1} and {g2} * {e2} = {t2}."], verdict), set()


def _half(r, kinds):
    k = r.choice(kinds)
    n = 2 * r.randint(2, 15)
    return _frame(r, f"Half of the {n} {k.plural} in the field are asleep. How many are awake?",
                  [f"Half of {n} is {n} / 2 = {n // 2}, and the rest, {n} - {n // 2} = {n // 2}, are awake."],
                  str(n // 2)), set()


def _scene_count(r, kinds):
    """A counting problem posed about a picture: it also describes the picture."""
    k1, k2 = r.sample(kinds, 2)
    c1, c2 = r.sample(COLOUR_NAMES, 2)
    n1, n2, n3 = r.randint(1, 5), r.randint(1, 5), r.randint(1, 5)
    q = (f"In a picture there are {_n(r, n1)} {c1} {noun(k1, n1)}, {_n(r, n2)} {c2} {noun(k1, n2)} and "
         f"{_n(r, n3)} {c1} {noun(k2, n3)}.")
    if r.chance(0.5):
        return _frame(r, q + f" How many {k1.plural} are there?",
                      [f"Both colours count: {n1} + {n2} = {n1 + n2}."], str(n1 + n2)), {VC, VA}
    return _frame(r, q + f" How many {c1} things are there?",
                  [f"The {c1} ones are the {k1.plural} and the {k2.plural} of that colour: "
                   f"{n1} + {n3} = {n1 + n3}."], str(n1 + n3)), {VC, VA}


def _scene_sides(r, kinds):
    k = r.choice(kinds)
    left, right = r.randint(1, 9), r.randint(1, 9)
    return _frame(r, f"In the photo, {_n(r, left)} {noun(k, left)} stand to the left of the well and "
                     f"{_n(r, right)} to the right of it. How many {k.plural} are in the photo?",
                  [f"{left} + {right} = {left + right}."], str(left + right)), {VC, VR}


_PLAIN = (_legs_many, _legs_mixed, _add_sub, _groups, _share, _price, _edible_pot, _drill,
          _equation, _two_step, _compare, _half)
_VISUAL = (_scene_count, _scene_sides)


def math_unit(r: Rand, kinds: tuple[Kind, ...], visual: bool) -> tuple[str, set[str]]:
    gen = r.choice(_VISUAL) if visual and r.chance(0.45) else r.choice(_PLAIN)
    text, labels = gen(r, kinds)
    return text, {MATH} | labels


def math_doc(r: Rand, kinds: tuple[Kind, ...], doc) -> None:
    visual = r.chance(0.3)
    while not doc.full():
        text, labels = math_unit(r, kinds, visual)
        if not doc.add(text, labels):
            break
