"""Shared pieces of the text genres: labels, the document builder and phrase helpers."""

from __future__ import annotations

from dataclasses import dataclass

from visual_priors.world.kinds import HABITAT_PHRASE, SHAPE_ADJ, Kind, plural
from visual_priors.world.rng import Rand

LABELS = ("code_reasoning", "math_reasoning", "science_reasoning", "visual_concept",
          "visual_attribute", "visual_relationship")
CODE, MATH, SCI, VC, VA, VR = LABELS
NONE: frozenset[str] = frozenset()

MIN_WORDS, MAX_WORDS = 40, 400
# A unit that would push a document past this many words is left out.
HARD_MAX_WORDS = 440

PEOPLE = ("Mira", "Tomas", "Lena", "Odo", "Sefa", "Ravi", "Ines", "Bruno", "Kaya", "Pell",
          "Anouk", "Jonah", "Yara", "Emil", "Noor", "Hugo", "Talia", "Ivo")
PLACES = ("a meadow", "a village square", "the bank of a river", "a busy market", "a forest clearing",
          "a sandy desert", "a mountain path", "a muddy marsh", "a kitchen table", "a workshop floor",
          "a farmyard", "a harbour", "an orchard", "a school yard")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "eleven", "twelve")
SIZE_WORDS = {"small": "small", "medium": "medium-sized", "large": "large"}

HABITAT_CONSEQ = {
    "forest": ("it can hide among the trees", "it seldom stands in full sun",
               "it is used to shade and fallen leaves"),
    "desert": ("it can go for days without water", "it copes well with great heat",
               "it is used to dry sand and bright sun"),
    "river": ("it is never far from water", "it copes with floods in spring",
              "it is used to wet stones and fast water"),
    "mountains": ("it copes with cold winds", "it can manage steep and rocky slopes",
                  "it is used to thin air and snow"),
    "marsh": ("it does not mind wet ground", "it can cope with deep mud",
              "it is used to reeds and standing water"),
    "village": ("it is used to people", "it is often seen near houses",
                "it is used to noise and busy streets"),
}
LEGS_CONSEQ = {
    0: ("it cannot walk on its own", "it has to be carried, pushed or pulled"),
    2: ("it walks upright", "it keeps its balance on two feet"),
    4: ("it stands steadily", "it can carry loads on its back"),
    6: ("it can climb rough walls", "it grips uneven ground well"),
    8: ("it moves quickly over rocks", "it almost never slips"),
}
EDIBLE_CONSEQ = {
    True: ("people gather it for food", "cooks keep it in their kitchens",
           "it is sold at the food market"),
    False: ("nobody puts it in a cooking pot", "it is never served at meals",
            "children are told not to bite it"),
}
MATERIAL_CONSEQ = {
    "wood": ("it burns in a fire", "it floats on water", "it can be carved with a knife"),
    "metal": ("it rusts in the rain", "it gets hot in the summer sun", "it rings when struck"),
    "stone": ("it is too heavy to lift easily", "it stays cool in the sun",
              "it does not burn in a fire"),
    "glass": ("it shatters when dropped", "light passes through it", "it must be handled gently"),
    "cloth": ("it soaks up water", "it folds easily", "it can be mended with a needle"),
}
MATERIAL_RULES = {
    "wood": ("Things made of wood burn in a fire.", "Wood floats, so wooden things float on water."),
    "metal": ("Metal left out in the rain slowly rusts.", "Metal warms up quickly in the sun."),
    "stone": ("Stone is heavy, so stone things are hard to lift.", "Stone does not burn."),
    "glass": ("Glass is brittle, so glass things shatter when they fall.",
              "Light passes through glass."),
    "cloth": ("Cloth soaks up water like a sponge.", "Cloth is soft, so it folds easily."),
}
TEXTURE = {"wood": "grainy", "metal": "shiny", "stone": "rough", "glass": "smooth and clear",
           "cloth": "soft"}


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def a(word: str) -> str:
    return f"{article(word)} {word}"


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def number(r: Rand, n: int, words: float = 0.6) -> str:
    if 0 <= n < len(NUMBER_WORDS) and r.chance(words):
        return NUMBER_WORDS[n]
    return str(n)


def noun(kind: Kind | str, n: int = 1) -> str:
    name = kind if isinstance(kind, str) else kind.name
    return name if n == 1 else plural(name)


def counted(r: Rand, kind: Kind, n: int, colour: str | None = None) -> str:
    """'a red dax', 'three daxes', 'two blue daxes'."""
    body = f"{colour} {noun(kind, n)}" if colour else noun(kind, n)
    if n == 1:
        return a(body)
    return f"{number(r, n, 0.8)} {body}"


def join_list(items: list[str]) -> str:
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def habitat(kind: Kind) -> str:
    return HABITAT_PHRASE[kind.habitat]


def legs_phrase(r: Rand, n: int) -> str:
    if n == 0:
        return "no legs"
    return f"{number(r, n, 0.7)} legs"


def shape_adj(kind: Kind) -> str:
    return SHAPE_ADJ[kind.shape]


class DocBuilder:
    """Accumulates text units with the labels each one carries."""

    __slots__ = ("parts", "part_labels", "labels", "words", "target")

    def __init__(self, target: int):
        self.parts: list[str] = []
        self.part_labels: list[frozenset[str]] = []
        self.labels: set[str] = set()
        self.words = 0
        self.target = target

    def full(self) -> bool:
        return self.words >= self.target

    def add(self, text: str, labels=NONE) -> bool:
        n = len(text.split())
        if self.parts and self.words + n > HARD_MAX_WORDS:
            return False
        self.parts.append(text)
        self.part_labels.append(frozenset(labels))
        self.labels.update(labels)
        self.words += n
        return True

    def text(self, sep: str = "\n\n") -> str:
        return sep.join(self.parts)

    def spans(self, sep: str = "\n\n") -> tuple[tuple[int, int, frozenset[str]], ...]:
        """(start, end, labels) of each unit in `text(sep)`, by character offset."""
        out, start = [], 0
        for part, labels in zip(self.parts, self.part_labels):
            out.append((start, start + len(part), labels))
            start += len(part) + len(sep)
        return tuple(out)


@dataclass(frozen=True)
class Document:
    """A generated document: its text, genre, the labels its text carries, and which characters
    carry them (`spans`: (start, end, labels) per unit), so any excerpt's true labels are known."""

    text: str
    genre: str
    labels: frozenset[str]
    spans: tuple[tuple[int, int, frozenset[str]], ...] = ()

    def labels_between(self, start: int, end: int) -> frozenset[str]:
        """True labels of the characters [start, end): the union over the units they overlap."""
        out: set[str] = set()
        for s, e, labels in self.spans:
            if s < end and start < e:
                out |= labels
        return frozenset(out)


class Para:
    """Sentences of one paragraph with their labels."""

    __slots__ = ("sentences", "labels")

    def __init__(self):
        self.sentences: list[str] = []
        self.labels: set[str] = set()

    def add(self, sentence: str, labels=NONE) -> None:
        # A repeated sentence adds nothing but noise, and its labels are already recorded.
        if sentence in self.sentences:
            return
        self.sentences.append(sentence)
        self.labels.update(labels)

    def text(self) -> str:
        return " ".join(self.sentences)

    def __len__(self) -> int:
        return len(self.sentences)
