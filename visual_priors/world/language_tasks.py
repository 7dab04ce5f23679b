"""Language benchmarks drawn from a World, standing in for the zero-shot suite of LLM papers.

The paper reports perplexity on WikiText and LAMBADA and zero-shot accuracy on PIQA, HellaSwag,
WinoGrande, ARC, COPA, SciQ, OpenBookQA and BoolQ. With the embedded world as the only corpus a
model knows none of the real benchmarks' vocabulary, so each gets a counterpart built from the
world (COUNTERPARTS), scored exactly like the real one (``visual_priors.eval.language``):

    wikitext            held-out encyclopedia documents, rolling perplexity
    lambada             passages whose last word (a kind's name, habitat, material or colour)
                        the earlier text makes predictable; last-word accuracy and perplexity
    world_facts         ARC / SciQ: a question about a kind's use, habitat, group, legs or
                        material, four options
    world_physical      PIQA: a goal and two solutions; only the kind with the right material
                        or use reaches it
    world_continuation  HellaSwag: a described scene and four endings; one names the object
                        at the place the context points to
    world_yesno         BoolQ: an encyclopedia passage and a yes/no question about it
    world_coref         WinoGrande: "... only the _ shattered", two kinds for the blank,
                        scored by lm-eval's partial scoring

Everything is held out: documents come from the "test" split, passages and questions from test
streams, scenes are settled into the test split. Item i of a task is drawn from its own
generator seeded by (world seed, "test", "language:" + task, i), so items are deterministic and
can be asked for one at a time.

Options are symmetric: each multiple-choice item draws its option set first, takes the answer
uniformly from it, and only then picks the kind or builds the scene that makes it true, so the
option texts alone say nothing about which one is right. Every item records in ``meta`` what it
asks, so a scripted reader of the fact table or of the passage can answer it (see the tests).

No module here needs JAX: the items are plain text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from visual_priors.world import genres_prose
from visual_priors.world.captions import object_phrase, position_phrase
from visual_priors.world.kinds import HABITAT_PHRASE, Kind
from visual_priors.world.questions import QuestionMaker, Retry, settle
from visual_priors.world.rng import Rand
from visual_priors.world.scenes import assign_split
from visual_priors.world.text_base import NUMBER_WORDS, PEOPLE, PLACES, a, cap, join_list

if TYPE_CHECKING:
    from visual_priors.world.world import World

WORLD_PPL_TASKS = ("wikitext", "lambada")
WORLD_MC_TASKS = ("world_facts", "world_physical", "world_continuation", "world_yesno",
                  "world_coref")
WORLD_TASKS = WORLD_PPL_TASKS + WORLD_MC_TASKS
COUNTERPARTS = {
    "wikitext": "WikiText", "lambada": "LAMBADA", "world_facts": "ARC / SciQ / OpenBookQA",
    "world_physical": "PIQA", "world_continuation": "HellaSwag", "world_yesno": "BoolQ",
    "world_coref": "WinoGrande",
}
# lm-eval's target delimiter: the continuation is " " + choice.
DELIMITER = " "


# ----------------------------------------------------------------------- items


@dataclass(frozen=True)
class MCItem:
    """One zero-shot multiple-choice item as lm-evaluation-harness scores it.

    Option i is the log-likelihood of ``continuations[i]`` after ``contexts[i]``. Ordinary items
    (``MCItem.choice``) share one context and put each choice, after the target delimiter, in the
    continuation. Partial scoring (``MCItem.partial``, WinoGrande) puts each option in its own
    context and scores one shared continuation.

    lengths: acc_norm's denominators, the UTF-8 byte length of each choice without the
    delimiter (for partial items, of the shared continuation, so acc_norm equals acc).
    options: the text that tells the options apart (the choices, or the words for the blank).
    meta: what the item asks, for oracles and reports; not used in scoring.
    """

    contexts: tuple[str, ...]
    continuations: tuple[str, ...]
    gold: int
    lengths: tuple[int, ...]
    options: tuple[str, ...]
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        n = len(self.contexts)
        if n < 2:
            raise ValueError(f"a multiple-choice item needs at least two options, got {n}")
        if not len(self.continuations) == len(self.lengths) == len(self.options) == n:
            raise ValueError(f"contexts, continuations, lengths and options must all have {n} "
                             f"entries: {self}")
        if not 0 <= self.gold < n:
            raise ValueError(f"gold index {self.gold} is outside the {n} options")

    @classmethod
    def choice(cls, context: str, choices: Sequence[str], gold: int, *,
               delimiter: str = DELIMITER, meta: Mapping[str, Any] | None = None) -> "MCItem":
        """Shared context, continuation = delimiter + choice (lm-eval's multiple_choice)."""
        choices = tuple(str(c) for c in choices)
        return cls((context,) * len(choices), tuple(delimiter + c for c in choices), int(gold),
                   tuple(len(c.encode("utf-8")) for c in choices), choices, dict(meta or {}))

    @classmethod
    def partial(cls, contexts: Sequence[str], continuation: str, gold: int, *,
                options: Sequence[str] | None = None, delimiter: str = DELIMITER,
                meta: Mapping[str, Any] | None = None) -> "MCItem":
        """One context per option, one shared continuation (lm-eval's multiple_inputs)."""
        contexts = tuple(contexts)
        n = len(contexts)
        return cls(contexts, (delimiter + continuation,) * n, int(gold),
                   (len(continuation.encode("utf-8")),) * n,
                   tuple(options) if options is not None else contexts, dict(meta or {}))

    @property
    def n_options(self) -> int:
        return len(self.contexts)


@dataclass(frozen=True)
class ClozeItem:
    """A LAMBADA-style item: the context and its last word (with the leading space)."""

    context: str
    target: str
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def text(self) -> str:
        return self.context + self.target


def split_last_word(text: str) -> tuple[str, str]:
    """lm-eval's LAMBADA split: context = all but the last space-separated word, target = " " +
    that word."""
    words = text.split(" ")
    if len(words) < 2:
        raise ValueError(f"a cloze text needs at least two words: {text!r}")
    return " ".join(words[:-1]), " " + words[-1]


# ----------------------------------------------------------------------- generation


def _rand(world: "World", task: str, index: int) -> Rand:
    return Rand.of(world.seed, "test", "language:" + task, index)


def wikitext_documents(world: "World", n: int, start: int = 0) -> list[str]:
    """Texts of held-out ("test" split) encyclopedia documents start .. start + n - 1."""
    return [world.document("encyclopedia", i, "test").text for i in range(start, start + n)]


_FILLERS = ("{p} stopped for a moment to rest.", "The wind was getting colder.",
            "{p} thought about the long walk home.", "A bird called somewhere far away.",
            "{p} sat down on a flat rock for a while.", "It had been a long and quiet day.",
            "{p} wrote a few words in a small notebook.", "The sky slowly turned orange.",
            "{q} laughed out loud.", "Nobody else was around.")
_LAMBADA_SLOTS = ("name", "habitat", "material", "colour")


def _lambada_item(world: "World", r: Rand) -> ClozeItem:
    kinds = list(world.kinds)
    k = r.choice(kinds)
    p, q = r.sample(PEOPLE, 2)
    slot = r.choice(_LAMBADA_SLOTS)
    sentences = [r.choice((f"{p} was walking near {r.choice(PLACES)} when {p} saw {a(k.name)}.",
                           f"One morning {p} found {a(k.name)} near {r.choice(PLACES)}.",
                           f"{p} and {q} came across {a(k.name)} on their way home."))]
    if slot == "habitat":
        sentences.append(r.choice((f"{cap(k.plural)} are only ever found {HABITAT_PHRASE[k.habitat]}.",
                                   f"Everyone knows that the {k.name} belongs "
                                   f"{HABITAT_PHRASE[k.habitat]}.")))
    elif slot == "material":
        sentences.append(r.choice((f"It was made of {k.material}, like every {k.name}.",
                                   f"Like all of its kind, it was made of {k.material}.")))
    elif slot == "colour":
        sentences.append(r.choice((f"It was {k.colour}, as {a(k.name)} always is.",
                                   f"Its body was {k.colour} all over.")))
    value = {"name": k.name, "habitat": k.habitat, "material": k.material, "colour": k.colour}[slot]
    if slot != "name" and r.chance(0.5):
        # A second kind with another value of the asked attribute: the answer must be bound to
        # the kind the last sentence names, not taken from the nearest attribute word.
        attr = {"habitat": lambda x: x.habitat, "material": lambda x: x.material,
                "colour": lambda x: x.colour}[slot]
        others = [x for x in kinds if attr(x) != value]
        if others:
            o = r.choice(others)
            sentences.append({
                "habitat": f"Earlier they had seen {a(o.name)}, which lives {HABITAT_PHRASE[o.habitat]}.",
                "material": f"Next to it lay {a(o.name)} made of {o.material}.",
                "colour": f"Next to it stood {a(o.colour)} {o.name}.",
            }[slot])
    for _ in range(r.randint(1, 3)):
        sentences.append(r.choice(_FILLERS).format(p=p, q=q))
    final = {
        "name": r.choice((f"That evening {p} told {q} all about the",
                          f"The next day {p} went back to look for the",
                          f"{q} had never seen one, so {p} drew a picture of the")),
        "habitat": r.choice((f"To find another {k.name}, {p} would have to go back to the",
                             f"{q} said that the best place to look for {a(k.name)} is the")),
        "material": r.choice((f"{q} touched the {k.name} and agreed that it was made of",
                              f"{p} explained that every {k.name} is made of")),
        "colour": r.choice((f"{q} asked what colour the {k.name} had been, and {p} said",
                            f"{p} told {q} that the {k.name} had been")),
    }[slot]
    text = " ".join(sentences) + " " + final + " " + value
    context, target = split_last_word(text)
    return ClozeItem(context, target, {"kind": k.name, "slot": slot})


def lambada_items(world: "World", n: int, start: int = 0) -> list[ClozeItem]:
    return [_lambada_item(world, _rand(world, "lambada", i)) for i in range(start, start + n)]


# ------------------------------------------------------------- multiple choice


def _facts(world: "World", r: Rand, qm: QuestionMaker, pool: list[Kind] | None = None) -> MCItem:
    """ARC / SciQ: the option set comes first (QuestionMaker.fact_choice), then the kind, one of
    `pool` (every kind by default)."""
    fact, k, answer, wrong = qm.fact_choice(r, list(pool or world.kinds),
                                            ("habitat", "use", "category", "legs", "material"))
    question = qm.fact_wording(r, fact, k, f"the {k.name}")
    options = r.shuffle([answer] + list(wrong))
    return MCItem.choice(f"Question: {question}\nAnswer:", options, options.index(answer),
                         meta={"kind": k.name, "fact": fact})


# Goals that only a kind of one material reaches, and the solution: its words before the kind
# end the context, so the two options differ only in the kind ("a dax." / "a blick.").
_MATERIAL_GOALS = {
    "wood": (("How can you keep a campfire burning through the night?",
              "Keep feeding the fire with {a}."),
             ("How can you get across a pond without a boat?", "Float across holding on to {a}.")),
    "metal": (("How can you make a ringing sound loud enough to call everyone in?",
               "Strike a spoon hard against {a}."),),
    "stone": (("How can you stop a tent from blowing away in a storm?",
               "Weigh the tent down with {a}."),
              ("How can you build a hearth that will never catch fire?",
               "Build the hearth out of {plural}.")),
    "glass": (("How can you let daylight into a dark hut?", "Make a window for the hut out of {a}."),),
    "cloth": (("How can you dry up water spilled on the floor?", "Wipe the water up with {a}."),
              ("How can you mend a tear in a coat?", "Sew a patch over the tear made from {a}.")),
}
_USE_SOLUTIONS = ("Take {a}.", "Bring along {a}.")


def _distinct_pair(r: Rand, kinds: list[Kind], key) -> list[Kind]:
    """Two kinds that differ in `key`, drawn as an unordered set and returned in random order."""
    k1 = r.choice(kinds)
    others = [k for k in kinds if key(k) != key(k1)]
    if not others:
        raise Retry("every kind has the same value")
    return r.shuffle([k1, r.choice(others)])


def _physical(world: "World", r: Rand, qm: QuestionMaker) -> MCItem:
    """PIQA: a goal and two solutions that differ only in the kind they use (the words of the
    solution before the kind end the context, so no option text tells which goal it serves)."""
    kinds = list(world.kinds)
    mode = r.choice(("material", "use"))
    pair = _distinct_pair(r, kinds, (lambda k: k.material) if mode == "material" else (lambda k: k.use))
    gold = r.randint(0, 1)
    answer = pair[gold]
    if mode == "material":
        goal, solution = r.choice(_MATERIAL_GOALS[answer.material])
        value = answer.material
    else:
        goal = r.choice((f"You need something for {answer.use}. What should you take?",
                         f"What is the best thing to bring for {answer.use}?"))
        solution = r.choice(_USE_SOLUTIONS)
        value = answer.use
    cut = solution.index("{")
    slot = solution[cut:solution.index("}") + 1]
    choices = [solution[cut:].replace(slot, k.plural if slot == "{plural}" else a(k.name))
               for k in pair]
    return MCItem.choice(f"Question: {goal}\nAnswer: {solution[:cut].rstrip()}", choices, gold,
                         meta={"mode": mode, "value": value, "kinds": [k.name for k in pair]})


_ENDING_VERBS = ("picked up the {name}.", "took a closer look at the {name}.",
                 "carefully lifted the {name}.", "pointed at the {name} and smiled.")


def _continuation(world: "World", r: Rand, qm: QuestionMaker) -> MCItem:
    """HellaSwag: a scene of the four option kinds, described with places; the context walks to
    one place, and the consistent ending names the kind standing there."""
    S = world.image_size
    option_kinds = r.sample(list(world.kinds), 4)
    answer = r.choice(option_kinds)

    def build():
        scene = qm.placed(r, r.shuffle(list(option_kinds)), min_sep=1.05, size_scale=0.8)
        places = [position_phrase(o, S) for o in scene.objects]
        if len(set(places)) != len(places):
            raise Retry("two objects share a place phrase")
        return scene

    scene = assign_split(r, settle(build), "test")
    target = next(o for o in scene.objects if o.kind is answer)
    where = position_phrase(target, S)
    listed = [f"{object_phrase(o, S, sizes=False)} {position_phrase(o, S)}"
              for o in r.shuffle(list(scene.objects))]
    p = r.choice(PEOPLE)
    context = (f"{p} looked at a picture. In it there were {join_list(listed)}. "
               f"{p} walked over to the one {where} and")
    verb = r.choice(_ENDING_VERBS)
    order = r.shuffle(list(option_kinds))
    choices = [verb.format(name=k.name) for k in order]
    return MCItem.choice(context, choices, order.index(answer),
                         meta={"place": where, "kinds": [k.name for k in order], "scene": scene})


_YESNO_FACTS = ("habitat", "use", "legs", "edible", "category", "material")
_FACT_OF = {
    "habitat": lambda k: k.habitat, "use": lambda k: k.use, "legs": lambda k: k.legs,
    "edible": lambda k: k.edible, "category": lambda k: k.category,
    "material": lambda k: k.material,
}


def _yesno_question(fact: str, name: str, value) -> str:
    if fact == "habitat":
        return f"is the {name} found {HABITAT_PHRASE[value]}"
    if fact == "use":
        return f"is the {name} used for {value}"
    if fact == "legs":
        return f"does the {name} have no legs" if value == 0 else \
            f"does the {name} have {NUMBER_WORDS[value]} legs"
    if fact == "edible":
        return f"is it safe to eat the {name}" if value else f"is the {name} unsafe to eat"
    if fact == "category":
        return f"is the {name} {a(value)}"
    return f"is the {name} made of {value}"


def _passage(r: Rand, k: Kind) -> str:
    """An encyclopedia entry stating every fact of k (its title on the first line)."""
    facts = r.shuffle([genres_prose.fact_use(r, k), genres_prose.fact_legs(r, k),
                       genres_prose.fact_edible(r, k),
                       r.choice((f"It is made of {k.material}.",
                                 f"A typical {k.name} is made of {k.material}."))])
    if r.chance(0.4):
        facts.append(f"The name {k.name} comes from an old word for 'useful thing'.")
    intro = r.choice((f"The {k.name} is {a(k.category)} found {HABITAT_PHRASE[k.habitat]}.",
                      f"{cap(a(k.name))} is {a(k.category)} that is common "
                      f"{HABITAT_PHRASE[k.habitat]}."))
    return f"{cap(k.name)}\n" + " ".join([intro] + facts)


def _yesno(world: "World", r: Rand, qm: QuestionMaker) -> MCItem:
    """BoolQ: the asked value first, then yes or no at even odds, then a kind that makes it so
    (drawing the kind first made wordings such as 'unsafe to eat' predict the answer)."""
    kinds = list(world.kinds)
    fact = r.choice(_YESNO_FACTS)
    of = _FACT_OF[fact]
    values = list(dict.fromkeys(of(k) for k in kinds))
    values = [v for v in values if any(of(k) != v for k in kinds)]
    if not values:
        raise Retry("no value that some kinds lack")
    value = r.choice(sorted(values, key=str))
    yes = r.chance(0.5)
    k = r.choice([x for x in kinds if (of(x) == value) == yes])
    context = f"{_passage(r, k)}\nQuestion: {_yesno_question(fact, k.name, value)}?\nAnswer:"
    return MCItem.choice(context, ("no", "yes"), int(yes),
                         meta={"kind": k.name, "fact": fact, "value": value})


_COREF = {
    "wood": "{p} threw the {x} and the {y} into the fire, and only the _ burned to ashes.",
    "metal": "{p} left the {x} and the {y} out in the rain, and only the _ began to rust.",
    "stone": "{p} tried to lift the {x} and the {y}, but the _ was far too heavy to lift.",
    "glass": "{p} dropped the {x} and the {y} on the floor, and only the _ shattered.",
    "cloth": "{p} used the {x} and the {y} to mop up a spill, and only the _ soaked up the water.",
}


def _coref(world: "World", r: Rand, qm: QuestionMaker) -> MCItem:
    """WinoGrande: two kinds of different materials fill the blank; partial scoring."""
    pair = _distinct_pair(r, list(world.kinds), lambda k: k.material)
    gold = r.randint(0, 1)
    material = pair[gold].material
    sentence = _COREF[material].format(p=r.choice(PEOPLE), x=pair[0].name, y=pair[1].name)
    cut = sentence.index("_")
    names = [k.name for k in pair]
    return MCItem.partial([sentence[:cut] + name for name in names], sentence[cut + 1:].strip(),
                          gold, options=names,
                          meta={"sentence": sentence, "material": material})


_MC_BUILDERS = {"world_facts": _facts, "world_physical": _physical,
                "world_continuation": _continuation, "world_yesno": _yesno,
                "world_coref": _coref}


def mc_item(world: "World", task: str, index: int, qm: QuestionMaker | None = None) -> MCItem:
    """Item `index` of a world multiple-choice task."""
    if task not in _MC_BUILDERS:
        raise ValueError(f"unknown world multiple-choice task {task!r}; valid: "
                         f"{', '.join(WORLD_MC_TASKS)}")
    qm = qm or QuestionMaker(world)
    r = _rand(world, task, index)
    for _ in range(100):
        try:
            return _MC_BUILDERS[task](world, r, qm)
        except Retry:
            continue
    raise RuntimeError(f"could not build item {index} of {task}")


def mc_items(world: "World", task: str, n: int, start: int = 0) -> list[MCItem]:
    qm = QuestionMaker(world)
    return [mc_item(world, task, i, qm) for i in range(start, start + n)]


def knowledge_items(world: "World", n: int, *, heldout: bool) -> list[MCItem]:
    """The signal chain's text-knowledge hop: world_facts questions about the fact-held-out
    kinds (whose facts appear in pre-training text only) or about the others (whose facts
    instruction data also states), n each, from their own test streams."""
    qm = QuestionMaker(world)
    pool = world.heldout_kinds if heldout else world.train_kinds
    task = "knowledge:" + ("heldout" if heldout else "train")
    items = []
    for i in range(n):
        r = _rand(world, task, i)
        for _ in range(100):
            try:
                items.append(_facts(world, r, qm, pool))
                break
            except Retry:
                continue
        else:
            raise RuntimeError(f"could not build item {i} of {task}")
    return items


def make_task(world: "World", task: str, n: int, start: int = 0) -> list:
    """Items start .. start + n - 1 of a world task: document texts for wikitext, ClozeItems for
    lambada, MCItems for the rest."""
    if task == "wikitext":
        return wikitext_documents(world, n, start)
    if task == "lambada":
        return lambada_items(world, n, start)
    if task in WORLD_MC_TASKS:
        return mc_items(world, task, n, start)
    raise ValueError(f"unknown world task {task!r}; valid: {', '.join(WORLD_TASKS)}")


__all__ = [
    "COUNTERPARTS", "ClozeItem", "DELIMITER", "MCItem", "WORLD_MC_TASKS", "WORLD_PPL_TASKS",
    "WORLD_TASKS", "knowledge_items", "lambada_items", "make_task", "mc_item", "mc_items", "split_last_word",
    "wikitext_documents",
]
