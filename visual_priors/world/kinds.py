"""Object kinds: made-up names, visual attributes and facts, all drawn from the world seed.

Names are invented so that a kind's facts can only be learned from this world's own text.
"""

from __future__ import annotations

from dataclasses import dataclass

from visual_priors.world.real_words import is_real_word
from visual_priors.world.rng import Rand

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 39, 40),
    "orange": (245, 132, 20),
    "yellow": (236, 206, 30),
    "green": (44, 160, 44),
    "blue": (31, 96, 210),
    "purple": (140, 70, 190),
    "brown": (140, 86, 45),
    "black": (35, 35, 35),
}
COLOUR_NAMES = tuple(COLOURS)

SHAPES = ("circle", "square", "triangle", "diamond", "hexagon", "star", "cross")
SHAPE_ADJ = {
    "circle": "round", "square": "square", "triangle": "triangular", "diamond": "diamond-shaped",
    "hexagon": "six-sided", "star": "star-shaped", "cross": "cross-shaped",
}
# In order of legibility: at 32 px a small object's single spot still shows, its four dots do
# not, so a world of n kinds uses the first ceil(n / len(SHAPES)) patterns.
PATTERNS = ("plain", "spotted", "barred", "striped", "dotted")
PATTERN_PHRASE = {
    "plain": "plain, with no markings",
    "striped": "striped",
    "spotted": "marked with one pale spot in the middle",
    "barred": "marked with a single bar down the middle",
    "dotted": "covered in four small dots",
}
SIZE_CLASSES = ("small", "medium", "large")
# Diameter of an object of each size class at middle distance, as a fraction of the image side.
SIZE_FRACTION = {"small": 0.26, "medium": 0.33, "large": 0.41}
MATERIALS = ("wood", "metal", "stone", "cloth", "glass")
MATERIAL_ADJ = {"wood": "wooden", "metal": "metal", "stone": "stone", "cloth": "cloth", "glass": "glass"}
# One property per material, each true of that material only, so it can serve as an option.
MATERIAL_PROPERTY = {
    "wood": "it burns in a fire",
    "metal": "it rusts in the rain",
    "stone": "it is too heavy to lift easily",
    "glass": "it shatters when dropped",
    "cloth": "it soaks up water",
}
KIND_CATEGORIES = ("animal", "plant", "food", "tool", "vehicle")
USES = {
    "animal": ("pulling carts", "guarding houses", "carrying messages", "herding goats",
               "catching mice", "giving wool", "ploughing fields"),
    "plant": ("making medicine", "dyeing cloth", "weaving baskets", "making rope",
              "flavouring soup", "feeding goats", "thatching roofs"),
    "food": ("making soup", "baking bread", "feeding travellers", "brewing tea",
             "sweetening cakes", "pickling", "stuffing pies"),
    "tool": ("cutting wood", "digging holes", "carrying water", "fixing roofs", "grinding grain",
             "catching fish", "sharpening knives"),
    "vehicle": ("crossing rivers", "hauling grain", "carrying passengers", "moving logs",
                "delivering letters", "racing", "carrying stones"),
}
ALL_USES = tuple(u for c in KIND_CATEGORIES for u in USES[c])
HABITATS = ("forest", "desert", "river", "mountains", "marsh", "village")
HABITAT_PHRASE = {
    "forest": "in the forest", "desert": "in the desert", "river": "by the river",
    "mountains": "in the mountains", "marsh": "in the marsh", "village": "in the village",
}
LEG_COUNTS = (0, 2, 4, 6, 8)

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "bl", "gr",
           "tr", "sn", "pl", "st", "kr", "dr", "fl", "sk", "w", "h", "j", "gl", "br", "sp")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "i", "o", "u", "ee", "oo", "ai")
_CODAS = ("x", "k", "p", "t", "n", "m", "sh", "ck", "rt", "nd", "l", "ff", "g", "b", "z", "mp")


@dataclass(frozen=True)
class Kind:
    """One object kind. Visual attributes: colour, shape, size_class, pattern (the glyph).
    Facts, learnable only from text: material, category, use, edible, legs, habitat."""

    name: str
    colour: str
    shape: str
    size_class: str
    material: str
    category: str
    use: str
    edible: bool
    legs: int
    habitat: str
    index: int
    pattern: str = "plain"
    # Whether its facts are held out of instruction data (World.is_heldout) and, in pre-training
    # text, stated only as sentences, never as questions and answers.
    fact_heldout: bool = False

    @property
    def plural(self) -> str:
        return plural(self.name)

    def facts(self) -> dict[str, object]:
        return {"material": self.material, "category": self.category, "use": self.use,
                "edible": self.edible, "legs": self.legs, "habitat": self.habitat}


def plural(name: str) -> str:
    if name.endswith(("s", "x", "z", "sh", "ch")):
        return name + "es"
    return name + "s"


def _make_name(r: Rand) -> str:
    if r.chance(0.55):
        return r.choice(_ONSETS) + r.choice(_VOWELS) + r.choice(_CODAS)
    return (r.choice(_ONSETS) + r.choice(_VOWELS) + r.choice(_ONSETS) + r.choice(_VOWELS)
            + r.choice(_CODAS + ("", "")))


def _names(r: Rand, n: int, reserved: frozenset[str]) -> list[str]:
    names: list[str] = []
    while len(names) < n:
        name = _make_name(r)
        if not 3 <= len(name) <= 7 or name in reserved or is_real_word(name):
            continue
        # No name inside another (or inside its plural), so option text stays unambiguous.
        if any(name in other or other in name or name in plural(other) or other in plural(name)
               for other in names):
            continue
        names.append(name)
    return names


def _vocabulary_words() -> frozenset[str]:
    words: set[str] = set()
    pieces = list(COLOURS) + list(SHAPES) + list(SHAPE_ADJ.values()) + list(PATTERNS)
    pieces += list(PATTERN_PHRASE.values()) + list(SIZE_CLASSES) + list(MATERIALS)
    pieces += list(MATERIAL_PROPERTY.values()) + list(KIND_CATEGORIES) + list(ALL_USES)
    pieces += list(HABITATS)
    for piece in pieces:
        words.update(piece.replace("-", " ").split())
    return frozenset(words)


def make_kinds(seed: int, n_kinds: int = 14, reserved: frozenset[str] = frozenset()) -> tuple[Kind, ...]:
    """The world's kinds, balanced over categories, with unique (shape, pattern) glyphs."""
    if not len(KIND_CATEGORIES) * 2 <= n_kinds <= len(SHAPES) * len(PATTERNS):
        raise ValueError(f"n_kinds must be in [{len(KIND_CATEGORIES) * 2}, "
                         f"{len(SHAPES) * len(PATTERNS)}], got {n_kinds}")
    r = Rand.of(seed, "train", "kinds", 0)
    names = _names(r, n_kinds, reserved | _vocabulary_words())
    categories = [KIND_CATEGORIES[i % len(KIND_CATEGORIES)] for i in range(n_kinds)]
    # Every shape in the plainest patterns first: with 14 kinds each of the 7 shapes comes plain
    # and spotted, so a kind shows at a glance (measured at 32 px with 28 kinds over all five
    # patterns: a supervised CNN reads 60% of kinds, with 14 kinds over two 93%).
    tiers = [r.shuffle([(s, p) for s in SHAPES]) for p in PATTERNS]
    glyphs = r.shuffle([g for tier in tiers for g in tier][:n_kinds])
    # Attributes are dealt round-robin within each half (fact-held-out or not), so that both
    # halves share one distribution of answers: otherwise a model's answer prior learned on the
    # training half would be anti-correlated with the truth on the held-out half.
    held = _heldout_from_categories(seed, categories)
    halves = ([i for i in range(n_kinds) if i in held], [i for i in range(n_kinds) if i not in held])

    def dealt(values, members=None):
        out = {}
        for h, half in enumerate(halves):
            idx = [i for i in half if members is None or i in members]
            vals = r.shuffle([values[(j + h) % len(values)] for j in range(len(idx))])
            out.update(zip(idx, vals))
        return out

    colours = dealt(COLOUR_NAMES)
    sizes = dealt(SIZE_CLASSES)
    materials = dealt(MATERIALS)
    habitats = dealt(HABITATS)
    legs = dealt((2, 4, 6, 8), {i for i in range(n_kinds) if categories[i] == "animal"})
    uses = {c: r.shuffle(list(USES[c])) for c in KIND_CATEGORIES}
    kinds = []
    for i in range(n_kinds):
        cat = categories[i]
        # Each use belongs to one kind while a category has fewer kinds than uses.
        use_list = uses[cat]
        rank = sum(1 for c in categories[:i] if c == cat)
        use = use_list[rank % len(use_list)]
        if cat == "food":
            edible = True
        elif cat in ("tool", "vehicle"):
            edible = False
        else:
            edible = r.chance(0.5 if cat == "plant" else 0.35)
        kinds.append(Kind(
            name=names[i], colour=colours[i], shape=glyphs[i][0], size_class=sizes[i],
            material=materials[i], category=cat, use=use, edible=edible,
            legs=legs.get(i, 0), habitat=habitats[i], index=i,
            pattern=glyphs[i][1], fact_heldout=i in held,
        ))
    return tuple(kinds)


def heldout_indices(seed: int, kinds: tuple[Kind, ...]) -> frozenset[int]:
    """Half of each category's kinds, so both halves span every category and leg count."""
    return _heldout_from_categories(seed, [k.category for k in kinds])


def _heldout_from_categories(seed: int, categories: list[str]) -> frozenset[int]:
    r = Rand.of(seed, "train", "heldout", 0)
    out: set[int] = set()
    flip = 0
    for cat in KIND_CATEGORIES:
        members = r.shuffle([i for i, c in enumerate(categories) if c == cat])
        half = len(members) // 2 + (flip if len(members) % 2 else 0)
        if len(members) % 2:
            flip ^= 1
        out.update(members[:half])
    return frozenset(out)
