"""Visual-world genres: scene descriptions (concept), attributes of kinds, spatial relations.

Each unit function returns (text, labels): the labels are those the unit's words truly carry, e.g.
a sentence naming an object's colour carries visual_attribute whatever genre it sits in.
"""

from __future__ import annotations

import math

from visual_priors.world.kinds import COLOUR_NAMES, PATTERN_PHRASE, Kind
from visual_priors.world.rng import Rand
from visual_priors.world.scenes import PlacedObject, place
from visual_priors.world.text_base import (PLACES, SIZE_WORDS, TEXTURE, VA, VC, VR, Para, a, cap,
                                           counted, join_list, number, shape_adj)

_SPOTS = ("in the grass", "on the ground", "near the water", "in the shade", "on a flat stone",
          "among the reeds", "in the sunlight", "on a wooden table", "in the dust", "by the path")
_SCENE_MOODS = ("It looks like a busy market day.", "The light suggests late afternoon.",
                "The scene is calm and still.", "It seems to be a bright morning.",
                "The picture is a little blurry at the edges.", "Rain clouds hang in the sky.")
_COLOUR_FACTS = (
    "Orange lies between red and yellow.", "Green and blue are both cool colours.",
    "Black shows up well against a pale background.", "Brown is a dark, earthy colour.",
    "Purple is made by mixing red and blue.", "Yellow is the brightest of the usual colours.",
    "Red stands out against green grass.", "Mixing yellow and blue gives green.",
)
_SHAPE_FACTS = (
    "A triangle has three corners.", "A square has four equal sides.",
    "A hexagon has six sides.", "A star has five points.", "A circle has no corners at all.",
    "A diamond is a square turned on its corner.", "A cross is made of two crossing bars.",
)
_PERSPECTIVE_RULES = (
    "Things that are closer to the viewer look bigger.",
    "When one object hides part of another, the hidden one is farther away.",
    "In a picture of the ground, objects lower in the frame are usually closer to the viewer.",
    "Objects near the horizon are far away and look small.",
    "Something on your left in a picture stays on the left no matter how large it is.",
    "If A is left of B and B is left of C, then A is left of C.",
    "If A is in front of B, then B is behind A.",
    "Above and below describe height in the picture; in front and behind describe distance.",
)


def layout(r: Rand, kinds: tuple[Kind, ...], n: int, *, distinct: bool = True,
           min_sep: float = 0.8) -> list[PlacedObject]:
    """A described scene's geometry, in a 100-unit frame (never rendered)."""
    chosen = r.sample(kinds, n) if distinct else [r.choice(kinds) for _ in range(n)]
    return place(r, chosen, 100, min_sep=min_sep)


def _np(o: PlacedObject, colours: bool, det: str = "the") -> str:
    body = f"{o.colour} {o.kind.name}" if colours else o.kind.name
    if det == "a":
        return a(body)
    return f"the {body}"


# ----------------------------------------------------------------------- visual concept

def concept_scene(r: Rand, kinds: tuple[Kind, ...], colours: bool) -> Para:
    p = Para()
    vc = {VC, VA} if colours else {VC}
    p.add(r.choice((
        f"This picture shows {r.choice(PLACES)}.", f"The photo was taken in {r.choice(PLACES)}.",
        f"Here is a scene from {r.choice(PLACES)}.", f"In this image we look at {r.choice(PLACES)}.",
        f"The drawing shows a quiet corner of {r.choice(PLACES)}.",
        f"Picture {r.randint(1, 40)} shows {r.choice(PLACES)}.",
    )), {VC})
    groups: list[tuple[Kind, str, int]] = []
    for kind in r.sample(kinds, r.randint(1, 5)):
        groups.append((kind, r.choice(COLOUR_NAMES) if r.chance(0.25) else kind.colour,
                       r.randint(1, 4) if r.chance(0.4) else 1))
    phrases = [counted(r, k, n, c if colours else None) for k, c, n in groups]
    total = sum(n for _, _, n in groups)
    style = r.randint(0, 3)
    if style == 0:
        many = total > 1
        lead = r.choice(("I can see", "We can see", "There are" if many else "There is",
                         "The scene includes"))
        p.add(f"{lead} {join_list(phrases)}.", vc)
    elif style == 1:
        for ph in phrases:
            p.add(r.choice((f"There is {ph} {r.choice(_SPOTS)}." if ph.startswith(("a ", "an "))
                            else f"There are {ph} {r.choice(_SPOTS)}.",
                            f"Look closely and you will find {ph}.",
                            f"{cap(ph)} can be seen {r.choice(_SPOTS)}.",
                            f"Also in view: {ph}.")), vc)
    elif style == 2:
        p.add(f"Photo {r.randint(1, 99)}: {join_list(phrases)}.", vc)
    else:
        first, rest = phrases[0], phrases[1:]
        p.add(f"The first thing you notice is {first}.", vc)
        if rest:
            p.add(f"Besides that, there {'is' if len(rest) == 1 and rest[0].startswith(('a ', 'an ')) else 'are'} "
                  f"{join_list(rest)}.", vc)
    if r.chance(0.5):
        p.add(r.choice((f"In total there are {number(r, total)} things in view.",
                        f"That makes {number(r, total)} objects in the picture.")), {VC})
    if len(groups) == 1 and r.chance(0.5):
        p.add(f"The {groups[0][0].name} is the only {groups[0][0].category} in the picture.", {VC})
    if r.chance(0.4):
        p.add(r.choice(_SCENE_MOODS), {VC})
    if r.chance(0.3):
        p.add(r.choice(("Nothing else is visible.", "The rest of the picture is empty.",
                        "No people appear in the picture.")), {VC})
    return p


# ----------------------------------------------------------------------- visual attribute

def attribute_unit(r: Rand, kinds: tuple[Kind, ...], scenes: bool, relations: bool) -> Para:
    k = r.choice(kinds)
    p = Para()
    K, Ks = k.name, k.plural
    for _ in range(r.randint(2, 5)):
        t = r.randint(0, 9)
        if t == 0:
            p.add(r.choice((f"{cap(a(K))} is usually {k.colour}.", f"Most {Ks} are {k.colour}.",
                            f"The typical colour of {a(K)} is {k.colour}.",
                            f"You will usually see {Ks} in {k.colour}.")), {VA})
        elif t == 1:
            p.add(r.choice((f"{cap(a(K))} is {shape_adj(k)}.", f"{cap(Ks)} have the shape of {a(k.shape)}.",
                            f"Seen from the front, {a(K)} looks like {a(k.shape)}.",
                            f"The outline of {a(K)} is {a(k.shape)}.")), {VA})
        elif t == 2:
            p.add(r.choice((f"Its surface is {PATTERN_PHRASE[k.pattern]}.",
                            f"{cap(a(K))} is {PATTERN_PHRASE[k.pattern]}.",
                            f"The body of {a(K)} is {PATTERN_PHRASE[k.pattern]}.")), {VA})
        elif t == 3:
            p.add(r.choice((f"{cap(Ks)} are {SIZE_WORDS[k.size_class]}.",
                            f"{cap(a(K))} is a {SIZE_WORDS[k.size_class]} thing.",
                            f"In size, {a(K)} counts as {SIZE_WORDS[k.size_class]}.")), {VA})
        elif t == 4:
            p.add(r.choice((f"{cap(Ks)} are made of {k.material}.", f"Every {K} is made of {k.material}.",
                            f"The {K} is built from {k.material}, which feels {TEXTURE[k.material]}.")),
                  {VA})
        elif t == 5:
            p.add(f"{cap(a(K))} is {a(SIZE_WORDS[k.size_class])} {k.colour} {shape_adj(k)} thing "
                  f"made of {k.material}.", {VA})
        elif t == 6:
            other = r.choice([c for c in COLOUR_NAMES if c != k.colour])
            p.add(r.choice((f"Now and then one sees {a(other)} {K}, but {k.colour} is far more common.",
                            f"A few {Ks} are {other}, yet most are {k.colour}.")), {VA})
        elif t == 7:
            p.add(r.choice(_COLOUR_FACTS + _SHAPE_FACTS), {VA})
        elif t == 8 and scenes:
            seen = r.choice([c for c in COLOUR_NAMES if c != k.colour])
            p.add(r.choice((f"In this picture the {K} is {seen}, not the usual {k.colour}.",
                            f"The {K} in the photo is {seen} and {shape_adj(k)}.")), {VA, VC})
        elif t == 9 and relations:
            o = r.choice([x for x in kinds if x.size_class != k.size_class])
            big, small = (k, o) if ("small", "medium", "large").index(k.size_class) > \
                ("small", "medium", "large").index(o.size_class) else (o, k)
            p.add(r.choice((f"{cap(a(big.name))} is larger than {a(small.name)}.",
                            f"{cap(a(small.name))} is smaller than {a(big.name)}.")), {VA, VR})
        else:
            p.add(f"{cap(Ks)} are {k.colour} and {shape_adj(k)}.", {VA})
    return p


# ----------------------------------------------------------------------- visual relationship

def relation_sentences(r: Rand, objs: list[PlacedObject], colours: bool) -> Para:
    p = Para()
    lab = {VR, VA} if colours else {VR}
    n = len(objs)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    r.shuffle(pairs)
    for i, j in pairs[:r.randint(2, 6)]:
        A, B = objs[i], objs[j]
        na, nb = _np(A, colours), _np(B, colours)
        dx, dy = B.x - A.x, B.y - A.y
        close = math.hypot(dx, dy) < 1.2 * (A.radius + B.radius)
        t = r.randint(0, 4)
        if t <= 1 and abs(dx) > 8:
            side = "left" if dx > 0 else "right"
            p.add(r.choice((f"{cap(na)} is to the {side} of {nb}.",
                            f"To the {'right' if side == 'left' else 'left'} of {na} stands {nb}.",
                            f"{cap(nb)} is on the {'right' if side == 'left' else 'left'} side of {na}.")),
                  lab)
        elif t == 2 and abs(dy) > 8:
            if dy > 0:
                p.add(r.choice((f"{cap(na)} is above {nb}.", f"{cap(nb)} sits below {na}.",
                                f"Higher up in the picture than {nb} is {na}.")), lab)
            else:
                p.add(r.choice((f"{cap(na)} is below {nb}.", f"{cap(nb)} is above {na}.")), lab)
        elif t == 3 and abs(A.depth - B.depth) > 0.1:
            front, back = (na, nb) if A.depth < B.depth else (nb, na)
            if close:
                p.add(r.choice((f"{cap(front)} is in front of {back}, hiding part of it.",
                                f"{cap(back)} is partly hidden behind {front}.")), lab)
            else:
                p.add(r.choice((f"{cap(front)} is closer to the viewer than {back}.",
                                f"{cap(back)} is farther away than {front}.",
                                f"{cap(back)} is behind {front}.")), lab)
        elif t == 4 and abs(A.size - B.size) > 4:
            big, small = (na, nb) if A.size > B.size else (nb, na)
            p.add(r.choice((f"{cap(big)} looks larger than {small}.",
                            f"{cap(small)} looks smaller than {big}.")), lab)
        elif close:
            p.add(r.choice((f"{cap(na)} is next to {nb}.", f"{cap(na)} and {nb} are close together.")),
                  lab)
        else:
            p.add(f"{cap(na)} and {nb} are far apart.", lab)
    xs = sorted(range(n), key=lambda i: objs[i].x)
    if n >= 3 and r.chance(0.5):
        left, mid, right = objs[xs[0]], objs[xs[1]], objs[xs[2]]
        if mid.x - left.x > 6 and right.x - mid.x > 6:
            p.add(f"{cap(_np(mid, colours))} is between {_np(left, colours)} and "
                  f"{_np(right, colours)}.", lab)
    if r.chance(0.4):
        near = min(objs, key=lambda o: o.depth)
        p.add(r.choice((f"{cap(_np(near, colours))} is the closest object to the viewer.",
                        f"Nearest to us is {_np(near, colours)}.")), lab)
    if r.chance(0.3):
        o = r.choice(objs)
        v = "top" if o.y < 50 else "bottom"
        h = "left" if o.x < 50 else "right"
        p.add(f"{cap(_np(o, colours))} is in the {v} {h} part of the picture.", lab)
    return p


def relationship_unit(r: Rand, kinds: tuple[Kind, ...], concept: bool, colours: bool) -> Para:
    if r.chance(0.12):
        p = Para()
        for rule in r.sample(_PERSPECTIVE_RULES, r.randint(1, 3)):
            p.add(rule, {VR})
        return p
    objs = layout(r, kinds, r.randint(2, 5))
    while len(objs) < 2:
        objs = layout(r, kinds, r.randint(2, 5))
    p = Para()
    if concept:
        lab = {VC, VA} if colours else {VC}
        p.add(r.choice(("This picture contains", "In the next picture there are",
                        "The scene has", "Here we see")) + " "
              + join_list([_np(o, colours, "a") for o in objs]) + ".", lab)
    body = relation_sentences(r, objs, colours)
    p.sentences += body.sentences
    p.labels |= body.labels
    return p


# ----------------------------------------------------------------------- scene questions

_QA_FORMS = (("Question: {q} Answer: {a}.", "Q: {q} A: {a}."))


def scene_qa_unit(r: Rand, kinds: tuple[Kind, ...], relation: bool = False) -> Para:
    """A picture described object by object, then questions about it answered from the
    description. Answering needs the
    description just read (no fact of a kind helps), the way looking needs the image: what
    each object's colour, shape and place are, and whether a kind is there."""
    from visual_priors.world.describe import describe
    from visual_priors.world.questions import side_of
    from visual_priors.world.scenes import Scene

    least = 2 if relation else 1
    while True:
        objs = layout(r, kinds, r.randint(least, 4), distinct=True, min_sep=1.0)
        pairs = [(x, y) for x in objs for y in objs if x is not y and side_of(x, y)]
        if len(objs) >= least and (pairs or not relation):
            break
    objs = [PlacedObject(o.kind, r.choice(COLOUR_NAMES) if r.chance(0.5) else o.kind.colour, o.x, o.y,
                         o.size, o.depth) for o in objs]
    p = Para()
    # Labelled as what it is to a reader: objects with their attributes and places (relations
    # are stated, and labelled, in the answers that name them).
    p.add(r.choice(("In the picture:", "The image shows", "What the photo shows:", "Picture:")) + " "
          + describe(Scene(tuple(objs), (0, 0, 0), 100)), {VC, VA})
    form = r.choice(_QA_FORMS)
    # A relation question first when one is asked for (relationship documents must carry one).
    first = [3] if relation else []
    for turn in range(r.randint(1, 3) + len(first)):
        # No counting here: "how many ... ? Answer: n" is a worked sum's signature, and a
        # visual description should not read as mathematics.
        t = first[turn] if turn < len(first) else r.choice((0, 1, 3, 4))
        o = r.choice(objs)
        if t == 0:
            q, ans, lab = f"What colour is the {o.kind.name}?", o.colour, {VA}
        elif t == 1:
            q, ans, lab = f"What shape is the {o.colour} {o.kind.name}?", o.kind.shape, {VA}
        elif t == 3 and len(objs) > 1:
            o, other = r.choice([(x, y) for x in objs for y in objs if x is not y and side_of(x, y)]
                                or [(o, r.choice([x for x in objs if x is not o]))])
            rel = side_of(o, other)
            if rel is None:
                continue
            q = f"Where is the {o.kind.name} relative to the {other.kind.name}?"
            ans = f"the {o.kind.name} is {rel}{' of' if rel.startswith('to the') else ''} the {other.kind.name}"
            lab = {VR}
        else:
            absent = r.choice([k for k in kinds if k not in {x.kind for x in objs}])
            kind = r.choice((o.kind, absent))
            q = f"Is there {a(kind.name)} in the picture?"
            ans, lab = ("Yes" if kind is o.kind else "No"), {VC}
        p.add(form.format(q=q, a=ans), lab)
    return p


def visual_concept_doc(r: Rand, kinds: tuple[Kind, ...], doc) -> None:
    colours = r.chance(0.5)
    while not doc.full():
        p = concept_scene(r, kinds, colours)
        if not doc.add(p.text(), p.labels):
            break


def visual_attribute_doc(r: Rand, kinds: tuple[Kind, ...], doc) -> None:
    scenes, relations = r.chance(0.3), r.chance(0.3)
    while not doc.full():
        p = scene_qa_unit(r, kinds) if r.chance(0.3) else attribute_unit(r, kinds, scenes, relations)
        if not doc.add(p.text(), p.labels):
            break


def visual_relationship_doc(r: Rand, kinds: tuple[Kind, ...], doc) -> None:
    concept, colours = r.chance(0.5), r.chance(0.4)
    while not doc.full():
        p = scene_qa_unit(r, kinds, relation=True) if r.chance(0.4) else relationship_unit(r, kinds, concept, colours)
        if not doc.add(p.text(), p.labels):
            break

