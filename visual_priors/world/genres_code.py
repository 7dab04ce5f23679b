"""Code genre: short Python programs that compute over scenes, with comments and true outputs.

Every printed result is computed here from the same data the program holds, so a reader (or a
model) that executes the program in its head gets the stated answer.
"""

from __future__ import annotations

import math
from collections import Counter

from visual_priors.world.kinds import COLOUR_NAMES, HABITATS, Kind
from visual_priors.world.rng import Rand
from visual_priors.world.text_base import CODE, VA, VC, VR, join_list

_LIST_NAMES = ("scene", "objects", "items", "things", "picture", "shapes")
_VAR_NAMES = ("obj", "o", "item", "thing", "x_obj")


def _objects(r: Rand, kinds: tuple[Kind, ...], n: int) -> list[dict]:
    chosen = [r.choice(kinds) for _ in range(n)]
    out = []
    for k in chosen:
        colour = k.colour if r.chance(0.7) else r.choice(COLOUR_NAMES)
        out.append({"kind": k.name, "colour": colour, "x": r.randint(0, 31), "y": r.randint(0, 31),
                    "size": r.randint(3, 14), "depth": round(r.uniform(0.5, 9.5), 1), "_k": k})
    return out


def _literal(r: Rand, name: str, objs: list[dict], fields: tuple[str, ...], style: str) -> list[str]:
    lines = [f"{name} = ["]
    for o in objs:
        if style == "dict":
            body = ", ".join(f'"{f}": {o[f]!r}' if isinstance(o[f], (int, float)) else f'"{f}": "{o[f]}"'
                             for f in fields)
            lines.append(f"    {{{body}}},")
        else:
            body = ", ".join(repr(o[f]) if isinstance(o[f], (int, float)) else f'"{o[f]}"' for f in fields)
            lines.append(f"    ({body}),")
    lines.append("]")
    return lines


def _describe(r: Rand, objs: list[dict]) -> tuple[list[str], set[str]]:
    """A descriptive comment about the scene; it carries visual labels like any description."""
    labels = {VC}
    parts = [f"a {o['colour']} {o['kind']}" for o in objs[:4]]
    labels.add(VA)
    lines = [f"# The picture shows {join_list(parts)}."]
    if len(objs) >= 2 and r.chance(0.6):
        a, b = objs[0], objs[1]
        if a["x"] != b["x"]:
            rel = "left" if a["x"] < b["x"] else "right"
            lines.append(f"# The {a['kind']} is to the {rel} of the {b['kind']}.")
            labels.add(VR)
    return lines, labels


def _count_colour(r, kinds, objs, L, v):
    colour = r.choice([o["colour"] for o in objs])
    fn = r.choice(("count_colour", "count_by_colour", "how_many"))
    result = sum(1 for o in objs if o["colour"] == colour)
    head = [r.choice(("# Count how many objects in a scene have a given colour.",
                      "# How many things of one colour are in the picture?"))]
    data = _literal(r, L, objs, ("kind", "colour", "x", "y"), "tuple")
    if r.chance(0.5):
        body = [f"def {fn}(objects, colour):",
                "    # Each object is (kind, colour, x, y); only the colour matters here.",
                "    total = 0",
                "    for kind, col, x, y in objects:",
                "        if col == colour:",
                "            total += 1",
                "    return total"]
    else:
        body = [f"def {fn}(objects, colour):",
                "    # A generator avoids building a list just to count it.",
                f"    return sum(1 for {v} in objects if {v}[1] == colour)"]
    return head + data + [""] + body + ["", f'print({fn}({L}, "{colour}"))  # {result}']


def _sort_size(r, kinds, objs, L, v):
    order = sorted(objs, key=lambda o: o["size"], reverse=True)
    names = [o["kind"] for o in order]
    data = _literal(r, L, objs, ("kind", "colour", "size"), "dict")
    return ([r.choice(("# Sort the objects from largest to smallest.",
                       "# List objects by size, biggest first."))] + data + ["",
            "def by_size(objects):",
            "    # sorted() is stable, so equal sizes keep their original order.",
            f'    return sorted(objects, key=lambda {v}: {v}["size"], reverse=True)',
            "",
            f"for {v} in by_size({L}):",
            f'    print({v}["kind"], {v}["size"])',
            "# Output order: " + ", ".join(names)])


def _leftmost(r, kinds, objs, L, v):
    which = r.choice(("leftmost", "rightmost", "topmost", "lowest"))
    key, fn = {"leftmost": ("x", "min"), "rightmost": ("x", "max"),
               "topmost": ("y", "min"), "lowest": ("y", "max")}[which]
    vals = [o[key] for o in objs]
    target = (min if fn == "min" else max)(vals)
    best = objs[vals.index(target)]
    data = _literal(r, L, objs, ("kind", "x", "y"), "dict")
    why = ("# x grows to the right, so the smallest x is furthest left." if key == "x"
           else "# y grows downwards in image coordinates, so small y means high up.")
    return ([f"# Find the {which} object in the picture.", why] + data + ["",
            f"def {which}(objects):",
            f'    return {fn}(objects, key=lambda {v}: {v}["{key}"])',
            "",
            f'print({which}({L})["kind"])  # {best["kind"]}'])


def _total_legs(r, kinds, objs, L, v):
    present = sorted({o["kind"] for o in objs})
    legs = {o["_k"].name: o["_k"].legs for o in objs}
    total = sum(legs[o["kind"]] for o in objs)
    table = ["LEGS = {"] + [f'    "{k}": {legs[k]},' for k in present] + ["}"]
    data = _literal(r, L, objs, ("kind", "colour"), "tuple")
    return (["# Add up the legs of everything in the scene.",
             "# Legs depend on the kind, not on the colour, so we look them up by kind."]
            + table + data + ["",
            "def total_legs(objects):",
            "    count = 0",
            "    for kind, colour in objects:",
            "        count += LEGS[kind]",
            "    return count",
            "",
            f"print(total_legs({L}))  # {total}"])


def _left_of(r, kinds, objs, L, v):
    a, b = objs[0], objs[1]
    res = a["x"] < b["x"]
    data = _literal(r, L, objs[:3], ("kind", "x", "y"), "dict")
    return (["# Spatial relations from coordinates.",
             "# An object is left of another when its centre has a smaller x."] + data + ["",
            "def left_of(a, b):",
            '    return a["x"] < b["x"]',
            "",
            "def above(a, b):",
            "    # Image rows count downwards, so above means a smaller y.",
            '    return a["y"] < b["y"]',
            "",
            f"print(left_of({L}[0], {L}[1]))  # {res}",
            f"print(above({L}[0], {L}[1]))  # {a['y'] < b['y']}"])


def _closest(r, kinds, objs, L, v):
    best = min(objs, key=lambda o: o["depth"])
    data = _literal(r, L, objs, ("kind", "depth"), "tuple")
    return (["# Which object is closest to the camera?",
             "# depth is the distance from the camera in metres; smaller is closer."] + data + ["",
            f"closest = min({L}, key=lambda {v}: {v}[1])",
            f"print(closest[0])  # {best['kind']}"])


def _count_kinds(r, kinds, objs, L, v):
    counts = Counter(o["kind"] for o in objs)
    data = _literal(r, L, objs, ("kind", "colour"), "tuple")
    shown = "{" + ", ".join(f"'{k}': {n}" for k, n in counts.items()) + "}"
    return (["from collections import Counter", "",
             "# Count the objects of each kind; Counter keeps first-seen order."] + data + ["",
            f"counts = Counter(kind for kind, colour in {L})",
            "print(dict(counts))",
            f"# {shown}"])


def _edible(r, kinds, objs, L, v):
    present = sorted({o["kind"] for o in objs})
    edible = [k for k in present if next(o["_k"] for o in objs if o["kind"] == k).edible]
    keep = [o["kind"] for o in objs if o["kind"] in edible]
    data = _literal(r, L, objs, ("kind", "x"), "tuple")
    return (["# Keep only the things that can be eaten.",
             "# The set lists every edible kind that appears in this scene."]
            + [f"EDIBLE = {{{', '.join(repr(k) for k in edible)}}}" if edible else "EDIBLE = set()"]
            + data + ["",
            f"food = [kind for kind, x in {L} if kind in EDIBLE]",
            f"print(food)  # {keep}"])


def _distance(r, kinds, objs, L, v):
    a, b = objs[0], objs[1]
    d = round(math.hypot(a["x"] - b["x"], a["y"] - b["y"]), 2)
    data = _literal(r, L, objs[:2], ("kind", "x", "y"), "tuple")
    return (["import math", "",
             "# Straight-line distance between two objects in pixels."] + data + ["",
            "def distance(a, b):",
            "    # Pythagoras on the difference of the centres.",
            "    return math.hypot(a[1] - b[1], a[2] - b[2])",
            "",
            f"print(round(distance({L}[0], {L}[1]), 2))  # {d}"])


def _overlap(r, kinds, objs, L, v):
    a, b = objs[0], objs[1]
    ra, rb = a["size"] / 2, b["size"] / 2
    res = abs(a["x"] - b["x"]) < ra + rb and abs(a["y"] - b["y"]) < ra + rb
    data = _literal(r, L, objs[:2], ("kind", "x", "y", "size"), "dict")
    return (["# Do the bounding boxes of two objects overlap?",
             "# Boxes overlap when they overlap along both axes at once."] + data + ["",
            "def overlaps(a, b):",
            '    half = (a["size"] + b["size"]) / 2',
            '    return abs(a["x"] - b["x"]) < half and abs(a["y"] - b["y"]) < half',
            "",
            f"print(overlaps({L}[0], {L}[1]))  # {res}"])


def _habitat(r, kinds, objs, L, v):
    present = sorted({o["kind"] for o in objs})
    hab = {o["_k"].name: o["_k"].habitat for o in objs}
    place = r.choice(sorted(set(hab.values())) if r.chance(0.8) else list(HABITATS))
    found = [k for k in present if hab[k] == place]
    return (["# Which of these kinds are found in a given habitat?"]
            + ["HABITAT = {"] + [f'    "{k}": "{hab[k]}",' for k in present] + ["}", "",
            "def found_in(place):",
            "    # Sorted so the answer does not depend on dictionary order.",
            "    return sorted(k for k, h in HABITAT.items() if h == place)",
            "",
            f'print(found_in("{place}"))  # {found}'])


def _mean_size(r, kinds, objs, L, v):
    mean = round(sum(o["size"] for o in objs) / len(objs), 2)
    data = _literal(r, L, objs, ("kind", "size"), "tuple")
    return (["# Average apparent size of the objects."] + data + ["",
            f"sizes = [size for kind, size in {L}]",
            "# Divide by the count, not a fixed number, so any scene works.",
            "mean = sum(sizes) / len(sizes)",
            f"print(round(mean, 2))  # {mean}"])


def _dataclass(r, kinds, objs, L, v):
    a, b = objs[0], objs[1]
    return (["from dataclasses import dataclass", "",
             "", "@dataclass",
             "class Thing:",
             "    kind: str",
             "    colour: str",
             "    x: int",
             "    y: int",
             "",
             "    def is_left_of(self, other):",
             "        # Compare centres only; sizes do not change left and right.",
             "        return self.x < other.x",
             "",
             "    def describe(self):",
             '        return f"a {self.colour} {self.kind}"',
             "",
             f'a = Thing("{a["kind"]}", "{a["colour"]}", {a["x"]}, {a["y"]})',
             f'b = Thing("{b["kind"]}", "{b["colour"]}", {b["x"]}, {b["y"]})',
             "print(a.describe(), a.is_left_of(b))",
             f"# a {a['colour']} {a['kind']} {a['x'] < b['x']}"])


_PROGRAMS = (_count_colour, _sort_size, _leftmost, _total_legs, _left_of, _closest, _count_kinds,
             _edible, _distance, _overlap, _habitat, _mean_size, _dataclass)


def program(r: Rand, kinds: tuple[Kind, ...], describe: bool) -> tuple[str, set[str]]:
    objs = _objects(r, kinds, r.randint(3, 6))
    L, v = r.choice(_LIST_NAMES), r.choice(_VAR_NAMES)
    lines = r.choice(_PROGRAMS)(r, kinds, objs, L, v)
    labels = {CODE}
    if describe:
        extra, lab = _describe(r, objs)
        lines = extra + lines
        labels |= lab
    return "\n".join(lines), labels


def code_doc(r: Rand, kinds: tuple[Kind, ...], doc) -> None:
    describe = r.chance(0.3)
    while not doc.full():
        text, labels = program(r, kinds, describe and r.chance(0.7))
        if not doc.add(text, labels):
            break
