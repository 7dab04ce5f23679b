"""Science, encyclopedia, narrative and web genres.

Science and encyclopedia text state the facts of every kind (held-out kinds included): this is
where a model can learn what a kind is for, where it lives and how many legs it has before it
ever sees one.
"""

from __future__ import annotations

from visual_priors.world.kinds import COLOUR_NAMES, MATERIAL_PROPERTY, PATTERN_PHRASE, Kind
from visual_priors.world.questions import FACT_VALUE, QuestionMaker
from visual_priors.world.rng import Rand
from visual_priors.world.text_base import (EDIBLE_CONSEQ, HABITAT_CONSEQ, LEGS_CONSEQ,
                                           MATERIAL_CONSEQ, MATERIAL_RULES, NUMBER_WORDS, PEOPLE, PLACES, SCI,
                                           SIZE_WORDS, TEXTURE, VA, VC, VR, Para, a, cap, habitat,
                                           legs_phrase, shape_adj)

# ----------------------------------------------------------------------- fact clauses


def live_clause(k: Kind) -> str:
    verb = {"animal": "lives", "plant": "grows", "food": "is gathered", "tool": "is used",
            "vehicle": "is used"}[k.category]
    return f"the {k.name} {verb} {habitat(k)}"


def fact_habitat(r: Rand, k: Kind) -> str:
    verb = {"animal": "live", "plant": "grow", "food": "are gathered", "tool": "are mostly used",
            "vehicle": "are mostly used"}[k.category]
    return r.choice((f"{cap(k.plural)} {verb} {habitat(k)}.", f"The {k.name} is found {habitat(k)}.",
                     f"You can find {k.plural} {habitat(k)}.", f"{cap(a(k.name))} is common {habitat(k)}."))


def fact_use(r: Rand, k: Kind) -> str:
    return r.choice((f"People use {k.plural} for {k.use}.", f"{cap(a(k.name))} is used for {k.use}.",
                     f"The main use of the {k.name} is {k.use}.", f"{cap(k.plural)} are good for {k.use}."))


def fact_legs(r: Rand, k: Kind) -> str:
    if k.legs == 0:
        return r.choice((f"{cap(a(k.name))} has no legs.", f"The {k.name} has no legs at all.",
                         f"{cap(k.plural)} have no legs."))
    return r.choice((f"{cap(a(k.name))} has {legs_phrase(r, k.legs)}.",
                     f"{cap(k.plural)} walk on {legs_phrase(r, k.legs)}.",
                     f"Count them: the {k.name} has {k.legs} legs."))


def fact_edible(r: Rand, k: Kind) -> str:
    if k.edible:
        return r.choice((f"{cap(k.plural)} are edible.", f"You can eat {a(k.name)}.",
                         f"The {k.name} is safe to eat."))
    return r.choice((f"{cap(k.plural)} are not edible.", f"Nobody eats {k.plural}.",
                     f"The {k.name} is not safe to eat."))


def fact_category(r: Rand, k: Kind) -> str:
    return r.choice((f"{cap(a(k.name))} is a kind of {k.category}.", f"{cap(k.plural)} are {k.category}s.",
                     f"The {k.name} belongs to the {k.category}s."))


_FACTS = (fact_habitat, fact_use, fact_legs, fact_edible, fact_category)


def attribute_sentence(r: Rand, k: Kind) -> str:
    return r.choice((
        f"It is usually {k.colour} and {shape_adj(k)}.",
        f"A typical {k.name} is {k.colour}, {SIZE_WORDS[k.size_class]} and made of {k.material}.",
        f"Its body is {shape_adj(k)} and {PATTERN_PHRASE[k.pattern]}.",
        f"It is made of {k.material} and is most often {k.colour}.",
    ))


# ----------------------------------------------------------------------- science

def _reason(r: Rand, premise: str, conseq: str) -> str:
    """Join a premise clause and a consequence clause with one of several causal forms."""
    t = r.randint(0, 6)
    if t == 0:
        return f"Because {premise}, {conseq}."
    if t == 1:
        return f"{cap(premise)}, so {conseq}."
    if t == 2:
        return f"{cap(premise)}. As a result, {conseq}."
    if t == 3:
        return f"{cap(premise)}, which means that {conseq}."
    if t == 4:
        return f"Since {premise}, {conseq}."
    if t == 5:
        return f"{cap(premise)}. That is why {conseq}."
    return f"{cap(conseq)}, and the reason is that {premise}."


def science_habitat(r, k):
    return _reason(r, live_clause(k), r.choice(HABITAT_CONSEQ[k.habitat])), {SCI}


def science_legs(r, k):
    premise = f"the {k.name} has {legs_phrase(r, k.legs)}"
    return _reason(r, premise, r.choice(LEGS_CONSEQ[k.legs])), {SCI}


def science_edible(r, k):
    premise = f"the {k.name} is {'edible' if k.edible else 'not edible'}"
    return _reason(r, premise, r.choice(EDIBLE_CONSEQ[k.edible])), {SCI}


def science_material(r, k):
    premise = f"the {k.name} is made of {k.material}"
    return _reason(r, premise, r.choice(MATERIAL_CONSEQ[k.material])), {SCI, VA}


def science_why(r, k):
    t = r.randint(0, 2)
    if t == 0:
        c = r.choice(HABITAT_CONSEQ[k.habitat])
        return (f"Question: why is it true of the {k.name} that {c}? Answer: because {live_clause(k)}.",
                {SCI})
    if t == 1:
        c = r.choice(LEGS_CONSEQ[k.legs])
        return (f"Why is it that, for the {k.name}, {c}? It has {legs_phrase(r, k.legs)}.", {SCI})
    return (f"Q: Why do cooks treat the {k.name} the way they do? A: Because it is "
            f"{'edible' if k.edible else 'not edible'}, {r.choice(EDIBLE_CONSEQ[k.edible])}.", {SCI})


def science_experiment(r, kinds):
    k1, k2 = r.sample(kinds, 2)
    p = r.choice(PEOPLE)
    if k1.material != k2.material:
        return (f"In an experiment, {p} tested {a(k1.name)} and {a(k2.name)}. For the {k1.name}, "
                f"{MATERIAL_PROPERTY[k1.material].replace('it ', 'it turned out that it ', 1)}, because "
                f"it is made of {k1.material}; the {k2.name}, made of {k2.material}, behaved differently.",
                {SCI, VA})
    return (f"{p} compared {a(k1.name)} with {a(k2.name)}. Both are made of {k1.material}, so for both "
            f"of them {MATERIAL_PROPERTY[k1.material]}.", {SCI, VA})


def science_prediction(r, k):
    if r.chance(0.5):
        return (f"Prediction: a {k.name} taken far from {habitat(k).split(' ', 1)[1]} will struggle, "
                f"since {live_clause(k)} and {r.choice(HABITAT_CONSEQ[k.habitat])}.", {SCI})
    return (f"Hypothesis: since the {k.name} has {legs_phrase(r, k.legs)}, "
            f"{r.choice(LEGS_CONSEQ[k.legs])}. Observation agrees.", {SCI})


def science_pair(r, kinds):
    k1, k2 = r.sample(kinds, 2)
    if k1.habitat == k2.habitat:
        return (f"Both the {k1.name} and the {k2.name} are found {habitat(k1)}; for each of them, "
                f"{r.choice(HABITAT_CONSEQ[k1.habitat])}.", {SCI})
    return (f"The {k1.name} is found {habitat(k1)} while the {k2.name} is found {habitat(k2)}; "
            f"therefore, for the {k1.name}, {r.choice(HABITAT_CONSEQ[k1.habitat])}, and for the "
            f"{k2.name}, {r.choice(HABITAT_CONSEQ[k2.habitat])}.", {SCI})


def science_unit(r: Rand, kinds: tuple[Kind, ...], materials: bool) -> Para:
    p = Para()
    k = r.choice(kinds)
    if r.chance(0.35):
        p.add(fact_category(r, k) if r.chance(0.5) else r.choice(_FACTS)(r, k))
    gens = [science_habitat, science_legs, science_edible, science_why, science_prediction]
    if materials:
        gens.append(science_material)
    for _ in range(r.randint(1, 4)):
        text, lab = r.choice(gens)(r, k)
        p.add(text, lab)
    if r.chance(0.3):
        text, lab = science_pair(r, kinds)
        p.add(text, lab)
    if materials and r.chance(0.25):
        text, lab = science_experiment(r, kinds)
        p.add(text, lab)
    if materials and r.chance(0.2):
        p.add(r.choice(MATERIAL_RULES[k.material]), {SCI, VA})
    return p


def science_doc(r: Rand, kinds: tuple[Kind, ...], doc) -> None:
    materials = r.chance(0.5)
    while not doc.full():
        p = science_unit(r, kinds, materials)
        if not doc.add(p.text(), p.labels):
            break


# ----------------------------------------------------------------------- encyclopedia

_ORIGINS = ("an old word for 'little hill'", "the sound it makes", "a village in the north",
            "a word meaning 'useful thing'", "the traveller who first described it",
            "an old song", "the colour of its shadow")


def faq(r: Rand, k: Kind) -> str:
    """One fact of a kind as a question and its answer, in the words an exam would ask it."""
    fact = r.choice(("habitat", "use", "category", "legs", "material"))
    question = QuestionMaker.fact_wording(r, fact, k, f"the {k.name}")
    # Leg counts in words: a digit after "Answer:" reads as a worked sum.
    answer = NUMBER_WORDS[k.legs] if fact == "legs" else FACT_VALUE[fact](k)
    return f"Question: {question} Answer: {answer}."


def encyclopedia_entry(r: Rand, kinds: tuple[Kind, ...], attributes: bool, reasoning: bool) -> Para:
    k = r.choice(kinds)
    p = Para()
    title = cap(k.name) if r.chance(0.5) else f"{cap(k.name)} ({k.category})"
    if r.chance(0.25):
        lines = [title, f"Category: {k.category}", f"Habitat: {k.habitat}", f"Legs: {k.legs}",
                 f"Use: {k.use}", f"Edible: {'yes' if k.edible else 'no'}"]
        lab: set[str] = set()
        if attributes:
            lines += [f"Colour: {k.colour}", f"Shape: {k.shape}", f"Material: {k.material}",
                      f"Size: {k.size_class}"]
            lab.add(VA)
        p.add("\n".join(lines), lab)
        return p
    p.add(title + "\n" + r.choice((
        f"The {k.name} is {a(k.category)} found {habitat(k)}.",
        f"{cap(a(k.name))} is {a(k.category)} that is common {habitat(k)}.",
        f"{cap(k.plural)} are {k.category}s of the {k.habitat}.")))
    facts = [fact_legs, fact_use, fact_edible]
    r.shuffle(facts)
    for f in facts[:r.randint(2, 3)]:
        p.add(f(r, k))
    if attributes:
        p.add(attribute_sentence(r, k), {VA})
        if r.chance(0.4):
            p.add(f"Its surface feels {TEXTURE[k.material]}.", {VA})
    if reasoning:
        text, lab = r.choice((science_habitat, science_legs, science_edible))(r, k)
        p.add(text, lab)
    # Questions and answers about the other kinds only: a model that learns to answer from them
    # must carry the skill over to the held-out kinds' facts, which it read only as sentences
    # (Allen-Zhu & Li, Physics of LMs 3.1: without such examples stored facts stay unextractable).
    if not k.fact_heldout and r.chance(0.6):
        for _ in range(r.randint(1, 2)):
            p.add(faq(r, k))
    if r.chance(0.3):
        p.add(f"The name {k.name} comes from {r.choice(_ORIGINS)}.")
    if r.chance(0.25):
        p.add(f"{cap(k.plural)} were first described by {r.choice(PEOPLE)} in the year "
              f"{r.randint(1200, 1990)}.")
    if r.chance(0.4):
        others = r.sample([x for x in kinds if x is not k], 2)
        p.add(f"See also: {others[0].name}, {others[1].name}.")
    return p


def encyclopedia_doc(r: Rand, kinds: tuple[Kind, ...], doc) -> None:
    attributes, reasoning = r.chance(0.6), r.chance(0.3)
    while not doc.full():
        p = encyclopedia_entry(r, kinds, attributes, reasoning)
        if not doc.add(p.text(), p.labels):
            break


# ----------------------------------------------------------------------- narrative

ACTIONS = ("walked along the path, humming", "stopped to rest under a tree", "looked up at the sky",
            "laughed out loud", "pulled a coat tighter", "counted the coins in a pocket",
            "thought about home", "waited for a long time", "ran the last part of the way",
            "sat down on a bench", "wrote a few words in a notebook", "called out a greeting")
_FEELINGS = ("tired", "happy", "worried", "curious", "hungry", "cold", "proud", "sleepy")
_SAYINGS = ("We should go home soon", "Look over there", "I have never seen one before",
            "Be careful", "What a strange day", "Let's wait a little longer", "Did you hear that")
_SPOTS = ("by the road", "near the old well", "under the bridge", "at the edge of the field",
          "beside the gate", "in the tall grass", "on the market stall", "behind the barn")


def sighting(r: Rand, k: Kind, p: str, colours: bool) -> tuple[str, set[str]]:
    colour = (k.colour if r.chance(0.75) else r.choice(COLOUR_NAMES)) if colours else None
    ph = a(f"{colour} {k.name}") if colour else a(k.name)
    lab = {VC, VA} if colour else {VC}
    return r.choice((f"{p} saw {ph} {r.choice(_SPOTS)}.", f"Suddenly {ph} appeared {r.choice(_SPOTS)}.",
                     f"{p} noticed {ph} {r.choice(_SPOTS)}.",
                     f"There, {r.choice(_SPOTS)}, was {ph}.")), lab


def _relation(r: Rand, k1: Kind, k2: Kind) -> tuple[str, set[str]]:
    return r.choice((f"{cap(a(k1.name))} stood to the left of {a(k2.name)}.",
                     f"Behind the {k1.name}, half hidden, was {a(k2.name)}.",
                     f"{cap(a(k1.name))} sat on top of a crate, just above {a(k2.name)}.",
                     f"{cap(a(k1.name))} was in front of {a(k2.name)}, blocking the view.",
                     f"The {k1.name} was much larger than the {k2.name} beside it.")), {VC, VR}


def narrative_doc(r: Rand, kinds: tuple[Kind, ...], doc) -> None:
    colours, relations, reasoning = r.chance(0.6), r.chance(0.4), r.chance(0.15)
    hero, friend = r.sample(PEOPLE, 2)
    first = Para()
    first.add(r.choice((f"Once, in {r.choice(PLACES)}, there lived a child named {hero}.",
                        f"It was early morning when {hero} set out for {r.choice(PLACES)}.",
                        f"{hero} had always wanted to visit {r.choice(PLACES)}.",
                        f"The day {hero} met {friend} began like any other.")))
    text, lab = sighting(r, r.choice(kinds), hero, colours)
    first.add(text, lab)
    doc.add(first.text(), first.labels)
    while not doc.full():
        p = Para()
        for _ in range(r.randint(3, 6)):
            who = r.choice((hero, friend))
            t = r.randint(0, 7)
            if t == 0:
                p.add(f"{who} {r.choice(ACTIONS)}.")
            elif t == 1:
                p.add(f"\"{r.choice(_SAYINGS)},\" said {who}.")
            elif t == 2:
                p.add(f"{who} felt {r.choice(_FEELINGS)}.")
            elif t in (3, 4):
                text, lab = sighting(r, r.choice(kinds), who, colours)
                p.add(text, lab)
            elif t == 5 and relations:
                k1, k2 = r.sample(kinds, 2)
                text, lab = _relation(r, k1, k2)
                p.add(text, lab)
            elif t == 6:
                k = r.choice(kinds)
                p.add(f"\"{r.choice(_FACTS)(r, k)[:-1]},\" {who} explained.")
            elif t == 7 and reasoning:
                k = r.choice(kinds)
                text, lab = science_habitat(r, k)
                p.add(f"\"{text[:-1]},\" {who} said.", lab)
            elif r.chance(0.3):
                p.add(f"{who} and {friend if who == hero else hero} kept going.")
            else:
                p.add(f"Then {who} {r.choice(ACTIONS)}.")
        if not doc.add(p.text(), p.labels):
            break
    if doc.words < doc.target + 20:
        doc.add(r.choice((f"By evening, {hero} was home again.", "And that was the end of the day.",
                          f"{hero} never forgot what happened that day.")))


# ----------------------------------------------------------------------- web

_MENUS = ("Home | About | Contact | Blog", "Home > Articles > Nature", "Menu: News | Shop | Help",
          "Skip to content", "Search this site...", "Log in | Register", "Home / Guides / Animals")
_NOISE = ("Click here to subscribe!", "Share this: Facebook Twitter Email", "Advertisement",
          "Read more >>", "We use cookies to improve your experience. Accept?", "Related posts:",
          "Sign up for our newsletter.", "Back to top", "Leave a comment", "Print this page",
          "Sponsored content", "Was this page helpful? Yes / No", "Next page >", "<< Previous")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


def _boiler(r: Rand) -> str:
    t = r.randint(0, 5)
    if t == 0:
        return r.choice(_MENUS)
    if t == 1:
        return f"Posted on {r.randint(1, 28)} {r.choice(_MONTHS)} {r.randint(2003, 2024)} by admin"
    if t == 2:
        return f"(c) {r.randint(2005, 2024)} {cap(r.choice(('the', 'our', 'my')))} " \
               f"{r.choice(('Nature Blog', 'Kitchen Corner', 'Travel Notes', 'Code Tips', 'Science Hub'))}. All rights reserved."
    if t == 3:
        return f"Comments ({r.randint(0, 99)})"
    if t == 4:
        return f"Tags: {', '.join(r.sample(('nature', 'food', 'tips', 'howto', 'pictures', 'maths', 'science', 'travel'), 3))}"
    return r.choice(_NOISE)


def web_doc(r: Rand, kinds: tuple[Kind, ...], doc, chunk) -> None:
    """chunk(r, genre) -> (text, labels) gives a short piece in another genre's voice."""
    genres = ("encyclopedia", "narrative", "math", "science", "visual_concept", "visual_attribute",
              "visual_relationship", "code", "forum")
    weights = (3, 2, 1.5, 2, 2, 1.5, 1, 0.5, 2)
    lowercase = r.chance(0.2)
    doc.add("\n".join(_boiler(r) for _ in range(r.randint(1, 3))))
    while not doc.full():
        genre = r.weighted(genres, weights)
        if genre == "forum":
            # Questions and answers about fact-held-out kinds stay out (see encyclopedia_entry).
            k = r.choice([x for x in kinds if not x.fact_heldout] or kinds)
            text = r.choice((f"Re: anyone know what {k.plural} are used for? - I think they are for "
                             f"{k.use}, my uncle had one.",
                             f"Q: do {k.plural} have legs?? A: yes, {k.legs} of them lol"
                             if k.legs else f"Q: do {k.plural} have legs?? A: nope, none at all",
                             f"Posted by user{r.randint(1, 999)}: saw {a(k.name)} {habitat(k)} today, "
                             f"pretty common there"))
            labels: set[str] = set()
        else:
            text, labels = chunk(r, genre)
        if lowercase:
            text = text.lower()
        if not doc.add(text, labels):
            break
        if r.chance(0.5):
            doc.add(_boiler(r))
    doc.add(_boiler(r))

