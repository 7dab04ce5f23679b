"""Lexical/structural segment labeller: compiled regular expressions and per-segment thresholds,
no model. It reads real English and the world's text alike (docs/labelling.md lists the rules).

    lab = LexicalLabeller()
    lab.label(["def f(x):\\n    return x + 1\\n..."])   # bool [n, 6] over LABELS
    lab.scores(texts)                                   # the evidence behind the bits

Each label has a score (a weighted count of cues in the segment) and fires when the score
reaches its threshold. Code is found by lines that look like program lines; once a segment is
code, its program lines are set aside and only its prose is read for the other labels (comment
lines that are whole sentences count as prose for the visual labels only), so that
`x = a + b` or `"red"` inside a program count as code, not as math or colour.

Speed: the segment is lower-cased once and every cue list is compiled into one alternation
grouped by first character, behind a one-character "word start" class (`LEAD`), so the regex
engine skips ahead to candidate positions quickly. See `throughput()`.

Invented nouns: world kinds have made-up names ("dax"). The labeller does not need them: its
visual rules key on scene framing, attribute words and spatial phrases. `nouns=` adds words to
the concrete-noun lexicon of the "objects named with visual detail" cue (`world_nouns(world)`
gives a world's kind names); see docs/labelling.md for what that does to world text.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from visual_priors.errors import BadValue
from visual_priors.data.labelling import LABELS

# Bump whenever a rule, a word list or a default threshold changes: the fingerprint follows it.
RULES_VERSION = "lexical-7"
# Bump when a rule read only with rules="real" changes: real-text fingerprints follow it, the world
# rules' fingerprints (and labels cached under them) stay.
REAL_RULES_VERSION = "real-2"


# Cues start at a word: right after one of these characters. A cue regex begins with this
# class (the engine then skips every other character quickly; a leading \\b or look-behind
# would make it try every position), and segments are scanned with a space in front.
LEAD = r"[ \t\n\"'(\[,.;:!?/*]"


def _check_head(p: str) -> str:
    c = p[:1]
    if not c or c in "\\()[]{}.*+?|^$":
        raise ValueError(f"a cue must start with a literal character: {p!r}")
    return c


def _trie(*patterns: str) -> str:
    """Regex snippets -> `LEAD` + one alternation grouped by first character; each snippet must
    start with one literal character. Longer snippets are tried first."""
    groups: dict[str, list[str]] = {}
    for p in patterns:
        groups.setdefault(_check_head(p), []).append(p[1:])
    return LEAD + "(?:" + "|".join(
        re.escape(c) + "(?:" + "|".join(sorted(set(r), key=len, reverse=True)) + ")"
        for c, r in groups.items()) + ")"


def _alt(words: str | Iterable[str]) -> str:
    """Literal words -> an alternation grouped by first letter (no boundary checks)."""
    items = words.split() if isinstance(words, str) else list(words)
    groups: dict[str, list[str]] = {}
    for w in sorted(set(items), key=len, reverse=True):
        groups.setdefault(w[0], []).append(re.escape(w[1:]))
    return "(?:" + "|".join(re.escape(c) + "(?:" + "|".join(r) + ")" for c, r in groups.items()) + ")"


def _lex(words: str | Iterable[str], tail: str = "") -> list[str]:
    """Whole words (not part of a longer or hyphenated word) as cue snippets."""
    items = words.split() if isinstance(words, str) else list(words)
    return [re.escape(w) + r"(?![\w-])" + tail for w in items]


def _rx(*patterns: str, flags: int = 0) -> re.Pattern:
    return re.compile(_trie(*patterns), flags)


class _Cues:
    """Weighted cue kinds scanned in one pass: {kind: (weight, [snippets])} -> one regex grouped
    by first character, each (character, kind) a named group. Overlapping cues of one label count
    once (the longer wins), which is what a label's evidence should do anyway."""

    def __init__(self, kinds: Mapping[str, tuple[float, Sequence[str]]]):
        by_char: dict[str, dict[str, list[str]]] = {}
        for kind, (_, snippets) in kinds.items():
            for p in snippets:
                by_char.setdefault(_check_head(p), {}).setdefault(kind, []).append(p[1:])
        self.group_weight: dict[str, float] = {}
        parts = []
        for i, (c, per_kind) in enumerate(by_char.items()):
            alts = []
            for kind, rests in sorted(per_kind.items(), key=lambda kv: -max(map(len, kv[1]))):
                name = f"g{i}_{kind}"
                self.group_weight[name] = float(kinds[kind][0])
                alts.append(f"(?P<{name}>" + "|".join(sorted(set(rests), key=len, reverse=True)) + ")")
            parts.append(re.escape(c) + "(?:" + "|".join(alts) + ")")
        self.rx = re.compile(LEAD + "(?:" + "|".join(parts) + ")")
        self.weights = {k: float(w) for k, (w, _) in kinds.items()}

    def score(self, text: str) -> float:
        gw = self.group_weight
        return float(sum(gw[m.lastgroup] for m in self.rx.finditer(text)))


# ----------------------------------------------------------------------- code (original case)

# A line that can only be a program line (Python first, then the commonest C-family shapes).
_CODE_LINE = re.compile(r"""^[ \t]*(?:
      (?:async[ \t]+)?def[ \t]+\w+[ \t]*\(.*
    | class[ \t]+\w+[ \t]*[(:].*
    | (?:return|yield|raise)(?:[ \t]*$|[ \t]+[\w.]+[ \t]*$|[ \t]+.*[()\[\]{}=<>+*/%"'].*$)
    | (?:pass|break|continue)[ \t]*$
    | import[ \t]+[\w.]+(?:[ \t]+as[ \t]+\w+)?(?:[ \t]*,[ \t]*[\w.]+)*[ \t]*$
    | from[ \t]+[\w.]+[ \t]+import[ \t]+.+$
    | (?:for|while|if|elif|with|except)[ \t]+[^\n]*:[ \t]*(?:\#.*)?$
    | (?:else|try|finally|except)[ \t]*:[ \t]*(?:\#.*)?$
    | @\w[\w.]*(?:\(.*\))?[ \t]*$
    | [a-z_]\w*[ \t]*:[ \t]*(?:str|int|float|bool|bytes|list|dict|tuple|set|None|Any|Optional|Union|
          List|Dict|Tuple|Sequence|Mapping|Callable|Iterable|np\.ndarray)\b.*$
    | [A-Za-z_][\w.]*(?:\[[^\]\n]*\])*(?:[ \t]*,[ \t]*[A-Za-z_][\w.]*)*[ \t]*
          (?:[-+*/%&|^]|//|\*\*)?=(?!=)[ \t]*\S.*$
    | [\w.]+\(.*\)[ \t]*(?:\#.*)?$
    | (?!\[[A-Z][A-Za-z ,.'-]*\][ \t]*$)[\[\]{}()].*[\[\]{}(),:;][ \t]*$
    | ["'][^"'\n]*["'][ \t]*:.*$
    | (?=[^\n]*[;{][ \t]*$)(?=[^\n]*[=()\[\]])[^\n]*$
    | [\w.$ ]*\{[ \t]*$
    | \}.*$
)""", re.MULTILINE | re.VERBOSE)
# Lines of code documentation (real docstrings and language references explain programs in prose
# between few program lines): doctest prompts, grammar rules, numpydoc section rules, `name : type`
# parameter lines. Each counts as a program line.
_DOC_LINE = re.compile(r"""^[ \t]*(?:
      >>>[ \t].*
    | [\w"]+[ \t]*::=.*
    | (?:Parameters|Returns|Yields|Raises|Examples|See[ ]Also|Notes|Attributes)[ \t]*\n[ \t]*-{3,}
    | [a-z_]\w*[ \t]:[ \t](?:node|graph|int|float|str|string|bool|list|dict|tuple|set|function|callable|
          iterable|container|object|NetworkX[ ]graph|array)\b.*
)$""", re.MULTILINE | re.VERBOSE)
# Words that only prose about programs uses; 1/4 each, quoted keywords and call forms 1/2.
_CODE_PROSE = re.compile(r"""(?:\b(?:interpreter|traceback|bytecode|docstring|namespace|iterator|iterable|
    subclass|subclasses|keyword[ ]argument|built-in[ ]function|exception[ ]handler|identifiers?)\b)
    |(?P<half>"(?:return|global|nonlocal|yield|raise|try|except|finally|import|class|def|lambda|
    await|continue|break|pass|with)"|\b__\w+__\b|\b[a-z_]\w*\(\)(?!\w))""", re.VERBOSE)
CODE_PROSE_WEIGHT, CODE_PROSE_HALF = 0.25, 0.5

_COMMENT_LINE = re.compile(r"^[ \t]*(?:#|//)[ \t]?(.*)$", re.MULTILINE)
# A comment that is a sentence (capital letter first, full stop, ? or ! last) reads as prose.
_SENTENCE = re.compile(r"^[A-Z].*[.?!]$")

# ----------------------------------------------------------------------- math (lower case)

# Equations: "x op y = z". Found from the "=" (fast), then the left side is checked.
_EQ = re.compile(r"(?<![=!<>])=(?!=)[ \t]*-?\(?[ \t]*\d")
_EQ_LEFT = re.compile(r"(?:\d|(?<![a-z])[a-z])[ \t]*\)?[ \t]*[-+*/×÷^][ \t]*\(?[ \t]*"
                      r"(?:\d+(?:\.\d+)?|[a-z]|\d+[a-z])(?![a-z])[ \t]*\)?[ \t]*$")
_MATH = _Cues({
    "worked": (1.0, [
        r"answer(?: is|:) -?\d", r"therefore,? \d", r"subtracting gives\b", r"adding gives\b",
        *(rf"{d}\d* (?:times|plus|minus|divided by) \d" for d in "0123456789"),
        r"compute \d", r"calculate \d", r"divide \d", r"multiply \d", r"half of \d",
        r"solve (?:for )?[\w(]*\s*[-+=^*/]", r"simplify [\w(]*\s*[-+=^*/]",
        r"evaluate [\w(]*\s*[-+=^*/]", r"factor(?:i[sz]e)? [\w(]*\s*[-+=^*/]"]),
    "word": (0.5, _lex("theorem theorems lemma corollary equation equations polynomial quadratic "
                       "denominator numerator hypotenuse arithmetic algebra fraction fractions")),
    "question": (0.25, [r"how (?:many|much)\b[^.?!\n]{0,120}\?"]),
})
_LATEX = re.compile(r"\\(?:frac|sqrt|sum|int|cdot|times|leq|geq|alpha|beta|theta|pi)\b"
                    r"|\$(?!o\()[^$\n]{1,80}\$")
EQUATION_WEIGHT = LATEX_WEIGHT = 1.0
# Formulas as papers write them: "g(i) = k + i", "p(a) = exp(...)", set membership, argmax.
_FORMULA = re.compile(r"\b[a-z]\w{0,3} ?\([a-z0-9 ,|.]{1,20}\) ?= ?[-\w(]|∈|∑|∂|\barg ?max\b|\blog p ?\(")
FORMULA_WEIGHT = 0.5

# ----------------------------------------------------------------------- science (lower case)

_SCIENCE = _Cues({
    "causal": (1.0, [
        r"because\b(?! \d)", r"as a result\b", r"which means that\b", r"that is why\b",
        r"this is why\b", r"the reason (?:is|was|why)\b",
        *_lex("hypothesis hypotheses prediction predictions experiment experiments"),
        r"since (?:the|it|a|an|they|this|these|its|their|we|there|most|all|light|heat|water)\b",
        r" (?<=, )so (?!we\b|the answer\b|[a-z] ?=|\d|far\b|much\b|many\b|that\b|to speak\b)"]),
    # Connectives as common in legal or argumentative prose as in explanations of nature.
    "connective": (0.5, [
        r"therefore\b(?!,? (?:\d|more\b|neither\b|fewer\b|less\b))", r"thus\b(?!,? \d)",
        r"hence\b(?!,? \d)", r"consequently\b", r"due to\b", r"leads? to\b", r"caused by\b",
        r"causes\b"]),
    "why": (0.5, [r"why\b"]),
    "word": (0.25, _lex(
        "energy molecule molecules atom atoms cell cells species evolution gravity temperature "
        "pressure chemical reaction oxygen carbon photosynthesis organism organisms bacteria "
        "protein electron electrons magnetic velocity acceleration observation observations "
        "evidence mechanism")),
})

# Science reasoning is about the natural world: causal cues only count in a segment that also
# talks about it (so "because" in a contract or a changelog does not make science).
_NATURE = _rx(*_lex(
    "animal animals plant plants tree trees leaf leaves root roots seed seeds flower flowers fruit "
    "water sun sunlight light heat hot cold warm temperature air wind rain snow ice weather "
    "climate soil sand mud rock rocks stone stones metal wood glass cloth fire burn burns burned "
    "float floats sink sinks rust rusts melt melts freeze freezes evaporate dissolve dissolves "
    "legs body blood bone bones muscle brain skin heart lungs breathe breathing eat eats food "
    "grow grows growth live lives alive die dies habitat forest desert river marsh mountains "
    "ocean sea lake species cell cells gene genes dna protein virus bacteria disease infection "
    "organism organisms evolution predator prey energy force forces gravity mass weight pressure "
    "gas gases liquid solid chemical chemicals reaction reactions acid oxygen carbon hydrogen "
    "molecule molecules atom atoms electron electrons electricity magnet magnetic planet planets "
    "star stars earth moon orbit wave waves sound vibration friction velocity acceleration "
    "experiment experiments observation observations hypothesis prediction"))

# Mechanism verbs of explanations of nature ("fins that open and close to create suction").
_MECHANISM = _rx(*_lex("causing resulting triggers stimulates converts"), r"results? (?:in|from)\b",
                 r"to (?:produce|create|generate|release|absorb|capture)\b", r"in response to\b")
MECHANISM_WEIGHT = 0.5
# Words of the scientific register; real prose names nature everywhere ("blood", "fire", "sun"),
# so causal cues count as science only beside at least SCIENCE_TERMS_MIN distinct ones of these.
_SCI_TERMS = re.compile(r"\b(?:" + _alt(
    "species organism organisms cell cells tissue tissues protein proteins gene genes dna bacteria "
    "bacterium virus viruses infection disease diseases symptoms immune enzyme enzymes hormone "
    "molecule molecules atom atoms electron electrons ion ions oxygen hydrogen nitrogen carbon "
    "chemical chemicals compound compounds acid reaction reactions metal minerals temperature "
    "pressure energy force gravity gravitational mass density velocity acceleration friction "
    "radiation wavelength pigment pigments photosynthesis chlorophyll evolution evolved fossil "
    "fossils sediment erosion weathering climate atmosphere orbit planet planets galaxy nucleus "
    "organ organs muscle muscles nerve nerves brain lungs airways airflow reproduction spores "
    "pollination pollinators predator prey habitat ecosystem nutrients vibrate vibration "
    "buoyant suction heat sunlight blood sugar") + r")\b")
SCIENCE_TERMS_MIN = 2

# ----------------------------------------------------------------------- visual concept

CONCRETE_NOUNS = tuple("""
ball balls box boxes table tables chair chairs tree trees house houses car cars dog dogs cat cats
bird birds horse horses cow cows sheep goat goats boat boats ship ships bridge river lake mountain
mountains hill hills road street door doors window windows wall walls roof floor bed lamp cup cups
plate plates bowl bowls bottle bottles vase book books pen pencil bag bags basket baskets hat hats
coat shirt dress shoe shoes flower flowers leaf leaves grass rock rocks stone stones sky cloud
clouds sun moon apple apples banana bananas bread cake cheese egg eggs fish key keys clock phone
computer screen bicycle bike bus train truck plane kite fence gate garden field forest beach sand
sea wave waves tower castle church building buildings bench sofa couch desk shelf mirror rug
carpet curtain curtains candle candles fire knife fork spoon pot pan kettle teapot jar jug toy
toys doll bear rabbit mouse mice duck ducks chicken pig pigs lion tiger elephant giraffe zebra
monkey snake frog butterfly bee spider man men woman women boy boys girl girls child children
people person baby umbrella balloon balloons ladder bucket barrel crate wheel wheels cart tent
flag sign pole statue fountain painting jacket scarf glove gloves boot boots ring necklace hair
face eyes hand hands feet tail wings pyramid
""".split())

COLOURS = ("red orange yellow green blue purple brown black white grey gray pink violet golden "
           "silver crimson scarlet beige turquoise navy maroon teal").split()
SHAPES = ("round square triangular circular rectangular oval spherical cylindrical conical "
          "diamond-shaped six-sided star-shaped cross-shaped heart-shaped hexagonal pointed curved"
          ).split()
SHAPE_NOUNS = "triangle circle hexagon rectangle cube sphere cylinder cone".split()
PATTERNS = "striped spotted dotted barred speckled checkered patterned".split()
TEXTURES = ("shiny glossy rough smooth soft fluffy furry grainy metallic shimmering "
            "matte wrinkled velvety bumpy fuzzy polished rusty sparkling glittering").split()
MATERIAL_ADJ = ("wooden metal stone glass plastic leather woollen woolen iron steel golden silver "
                "brick marble velvet cotton silk paper clay ceramic").split()
MATERIALS = ("wood metal stone glass cloth plastic paper steel iron gold silver leather wool "
             "cotton clay brick marble silk").split()
SIZES = "small large big tiny huge medium-sized enormous giant".split()

_PICTURE = "(?:picture|photo|photograph|image|drawing|painting|scene)"
_SCENE = _rx(
    *(rf"{d} {_PICTURE} (?:shows|showed|contains|contained|has|had|includes|included|depicts|"
      rf"depicted|was taken)\b" for d in ("this", "the next", "the", "a", "each", "every")),
    r"in (?:this|the next) (?:picture|photo|photograph|image|drawing|painting)\b",
    r"in a (?:picture|photo|photograph|image) there\b", r"in the (?:photo|photograph)(?:,| is\b)",
    *(rf"{p} \d+(?::| shows)" for p in ("picture", "photo", "image", "figure")),
    r"here is (?:a|an|the) (?:scene|picture|photo|view)\b", r"here we see\b",
    *(rf"{w} (?:can|could) (?:see|spot)\b" for w in ("i", "we", "you")),
    r"can be seen\b", r"in view\b", *(rf"{v} visible\b" for v in ("is", "are", "was", "were")),
    r"you will (?:find|see)\b", r"the first thing you notice\b", r"look closely\b",
    *(rf"{v} (?:a|an|the|two|three|four|five|some|\d+)\b"
      for v in ("saw", "noticed", "spotted", "watched")),
    r"appeared\b", r"there, [^.,\n]{3,40}, (?:was|were|stood|sat)\b",
    *(rf"{v} (?:on|in|by|near|beside|under|against) (?:a|an|the)\b"
      for v in ("stood", "sat", "lay", "hung")),
    r"the scene (?:is|was|has|includes)\b",
)

# Things a reader can picture, as real descriptions name them: body parts, landforms, buildings
# and objects. Distinct ones count 1/3 each: a segment naming three is a concept.
# People, and nouns that are as often verbs or abstractions ("bear", "train", "table 2"), are left out.
_NOT_PICTURABLE = set("""man men woman women boy boys girl girls child children people person baby
face hand hands feet eyes bear train table tables sign key keys screen book books phone computer
toy toys""".split())
_PICTURABLE = re.compile(r"\b(?:" + _alt((set(CONCRETE_NOUNS) - _NOT_PICTURABLE) | set("""
fin fins tail tails wing wings feather feathers plumage beak bill bills petal petals leaves bark
scales scale horn horns antlers fur mane claws talons paws teeth tooth jaw jaws skull crest ears
legs skin shell shells trunk branches stem stems roots seeds cones blossom blooms berries
forest forests woods wood hills valley valleys plain plains desert swamp swamps marsh island
islands coast shore shores cliff cliffs cave caves waterfall glacier glaciers mountains riverbank
statue statues pedestal dome domes arch arches columns tower towers temple palace fort walls
gate ruins monument stones lintel lintels fountain courtyard garden gardens mosaic mosaics
panel panels canvas sculpture sword swords crown sceptre shield helmet armour cloak gown robe
sleeves beard torch lantern candle chariot horse steed ship boat basket envelope rope
""".split())) + r")\b")
PICTURABLE_WEIGHT = 1 / 3
# What a description of looks or arrangement adds to the concept score.
DESCRIBED_WEIGHT = 1.0
# Colour words written with a capital are names ("the Golden Horde", "Snow White", "Black Sea").
_PROPER_COLOUR = re.compile(r"\b(?:" + "|".join(c.capitalize() for c in COLOURS) + r")\b")

# ----------------------------------------------------------------------- visual attribute

_UNITS = r"(?! (?:root|roots|metres?|meters?|miles?|feet|foot|inches|kilometres?|kilometers?|units?)\b)"
_ATTRIBUTE = _Cues({
    "colour": (1.0, _lex(COLOURS, r"(?! (?:cross|house|sea|tea|pepper|wine|card|carpet|medals?)\b)")),
    # How real descriptions give colour, shape and size besides colour names.
    "look": (1.0, [*_lex("pale colourful colorful colourless colorless transparent translucent "
                         "iridescent lustrous elongated slender forked stripes markings spotted"),
                   r"in colou?r\b",
                   rf"made (?:of|from) (?:{_alt(('brass', 'bronze', 'concrete', 'basalt', 'nylon', 'fabric', 'sandstone', 'reinforced'))})\b"]),
    "look_half": (0.5, _lex("dark bright flat tall thin thick narrow")),
    # "village square" is a place, "square metres" a unit.
    "shape": (1.0, [w[0] + "".join(rf"(?<!{p} {w[0]})" for p in ("village", "market", "town",
                                                                  "perfect"))
                    + re.escape(w[1:]) + r"(?![\w-])" + _UNITS + r"(?! (?:number|numbers|brackets?)\b)"
                    for w in SHAPES]),
    # Shape nouns are as often geometry ("a circle of radius r") as the look of a thing.
    "shape_noun": (0.5, _lex(SHAPE_NOUNS)),
    "pattern": (1.0, [*_lex(PATTERNS), r"with no markings\b", r"marked with\b", r"covered in\b",
                      *(rf"{v} {_alt(TEXTURES)}\b" for v in ("feels", "felt", "looks", "looked"))]),
    "material": (1.0, [rf"made (?:of|from|out of) {_alt(MATERIALS)}\b", r"built from\b",
                       r"carved from\b",
                       *(rf"{re.escape(m)} (?:things|objects)\b" for m in MATERIAL_ADJ)]),
    # Alone, "soft", "smooth" and "rough" are as often abstract ("soft attention", "rough idea").
    "texture": (0.5, _lex(t for t in TEXTURES if t not in ("soft", "smooth", "rough"))),
    "material_adj": (0.5, [rf"{re.escape(m)} (?!things\b|objects\b|age\b)[a-z]" for m in MATERIAL_ADJ]),
    "size": (0.5, [rf"{d} {_alt(SIZES)}(?![\w-])(?! (?:number|numbers|amount|amounts|group|groups|"
                   r"part|proportion|scale|quantities|majority|population|range|extent|share|"
                   r"set|sets|body|variety|collection|fraction|percentage)\b)"
                   for d in ("a", "an", "the", "is", "are", "was", "were", "very", "quite",
                             "rather", "as", "and", ",")]),
})

# Shapes and dimensions written with a hyphen or a number ("H-shaped", "30 metres high").
_LOOK_EXTRA = re.compile(r"[a-z]+-shaped\b|\d+ ?(?:m|cm|mm|ft|in|metres|meters|feet|inches|centimetres)"
                         r" (?:\([^)\n]{1,20}\) )?(?:high|tall|long|wide|across|in diameter)\b")

# ----------------------------------------------------------------------- visual relationship

_REL_VERBS = ("is are was were sits sit sat stands stand stood lies lie lay hangs hang hung placed "
              "located positioned hidden hides hid perched leans leaned leaning").split()
_REL_PREPS = ("above below beneath underneath behind beside under over between inside atop "
              "opposite alongside").split() + ["across from", "in the middle of"]
_DET = r"(?:the|a|an|this|that|his|her|its|their|my|your|our|some|two|three|\d+)\b"
_RELATION = _rx(
    r"to the (?:left|right) of\b", r"on the (?:left|right)(?: hand)?(?: side)? of\b",
    r"in front of\b", r"on top of\b", r"next to\b",
    *(rf"{v}\s+(?:directly |just |partly |half |slightly |right |far )?{_alt(_REL_PREPS)} {_DET}"
      for v in _REL_VERBS),
    # "Behind the dax, half hidden, was ..." opening a sentence ("the barn behind the house" is
    # a place, not an arrangement being described).
    r"b(?:(?<=[.!?\"]\sb)|(?<=\A b)|(?<=\nb))ehind (?:the|a|an)\b",
    *(rf"{c} (?:to|from) (?:the viewer|us|the camera)\b"
      for c in ("closer", "nearer", "farther", "further")),
    r"is (?:left|right) of\b(?! another)", r"are (?:left|right) of\b",
    r"far away\b", r"farther away\b", r"further away\b", r"far apart\b", r"close together\b",
    r"closest (?:object )?to (?:the viewer|us)\b", r"nearest (?:object )?to (?:the viewer|us)\b",
    *(rf"{v} (?:left|right) (?:part|corner|side)\b" for v in ("top", "bottom", "upper", "lower")),
    # Size comparisons between things ("looks larger than the dax"), not of quantities.
    *(rf"{v} (?:much |a little |slightly )?(?:larger|smaller|bigger|taller|shorter|wider) than\b"
      r"(?! \d| expected| usual| before| ever)"
      for v in ("looks", "look", "looked", "appears", "is", "are", "was", "were")),
    r"higher up\b", r"in the (?:foreground|background)\b", r"hiding part of\b",
    r"blocking the view\b", r"surrounded by\b",
)
# Real descriptions place parts on a thing ("suspended beneath is a basket", "topped by lintels");
# read with rules="real" only (world sentences of other labels use these phrases too).
_RELATION_REAL = _rx(
    r"suspended (?:beneath|below|above|from)\b", r"topped (?:by|with)\b", r"at both ends\b",
    r"at (?:the|its|each|one) (?:top|bottom|base|tip|front|rear|back|centre|center|edge|end) of\b",
    *(rf"{w} (?:ring|layer|surface|edge|toe|panels?)\b" for w in ("outer", "inner")),
    r"covered (?:by|with)\b", r"runs? (?:into|along)\b",
    *(rf"{w} (?:part|side|surface|jaw|half)\b" for w in ("upper", "lower")),
    r"inside (?:is|are|was|were|these|this)\b", r"in the (?:centre|center|middle) of\b",
    r"faces? (?:east|west|north|south)\b", r"from the front\b", r"rest of the body\b",
)

# ----------------------------------------------------------------------- technical register

# Words of technical writing about models, data and experiments (research papers, software
# documentation). In a segment with at least TECHNICAL_TERMS_MIN distinct ones (rules="real"),
# everyday words are technical terms ("parse tree", "context window", "GloVe", "bag of words",
# "a large corpus", "built on top of BERT", "Figure 2 shows the accuracy", "as can be seen in
# Table 3"): the visual labels then read only cues that describe a sight.
_TECHNICAL = re.compile(r"\b(?:" + _alt("""
et al dataset datasets corpus corpora baseline baselines accuracy annotated annotation annotations
annotators embedding embeddings neural encoder decoder tokens state-of-the-art benchmark benchmarks
hyperparameters parameters f1 bleu precision recall classifier classifiers training evaluation
evaluate evaluated supervised unsupervised pretrained pre-trained fine-tuning fine-tuned transformer
lstm rnn cnn bert gpt vectors vector semantic syntactic lexical parser parsing algorithm algorithms
metric metrics experiments experimental outperforms appendix sota nlp""".split()) + r")\b")
TECHNICAL_TERMS_MIN = 4
# Uses that technical text gives the visual cues: figures and tables that "show" results, "we can
# see that", size words of quantities, building "on top of" a model, "at the end of" a sentence,
# a figure's legend ("the numbers in red", "the blue line", "(green)"), "a second round",
# "as pointed out", "a flat structure", "the upper part of Table 5", "is above the baseline".
_LEGEND = ("line lines curve curves bar bars dot dots point points box boxes region regions area "
           "arrow arrows edge edges node nodes word words text font cells colour color bold shade "
           "shaded highlight highlighted marks circles squares triangles").split()
_TECHNICAL_USES = re.compile(
    r"\(" + _alt(COLOURS) + r"\b|\b(?:in|by|with|as) " + _alt(COLOURS) + r"\b"
    r"|\b" + _alt(COLOURS) + r"(?:[/ -]" + _alt(COLOURS) + r")? (?:" + _alt(_LEGEND) + r")\b"
    r"|\b(?:first|second|third|final|next|each|every|one|another|two|three|\d+) rounds?\b"
    r"|\brounds? of\b|\bpointed out\b|\b(?:covered in|marked with|built from|transparent|flat)\b"
    r"|\b(?:figure|fig\.|table) \d+:|\b(?:upper|lower) (?:part|half)\b"
    r"|\b(?:is|are|was|were|lies|lie) (?:much |slightly )?(?:above|below|larger than|smaller than"
    r"|bigger than|wider than)"
    r"|(?:figure|fig\.|table|image|picture|photo)s? \d+ (?:shows|showed)\b"
    r"|\b(?:we|i|you|one) (?:can|could) (?:see|spot)\b|\bcan be seen\b|\bappeared\b"
    r"|\b(?:on top of|at the (?:top|bottom|end|front|back|base|centre|center) of|covered (?:by|with)"
    r"|in the (?:centre|center|middle) of|next to|far away|surrounded by)\b"
    r"|\b(?:a|an|the|is|are|was|were|very|quite|rather|as|and) " + _alt(SIZES) + r"\b"
    r"|\b(?:" + _alt(MATERIAL_ADJ) + r") (?!things\b|objects\b)(?=[a-z])")

# ----------------------------------------------------------------------- the labeller

DEFAULT_THRESHOLDS: dict[str, float] = {
    "code_reasoning": 3.0,       # program lines in the segment
    "math_reasoning": 1.0,       # equations, worked solutions, LaTeX (maths words 1/2, how-many 1/4)
    "science_reasoning": 1.0,    # causal forms (why, therefore/thus/... 1/2, science words 1/4)
    "visual_concept": 1.0,       # scene framing / sightings (objects named with detail 1/2)
    "visual_attribute": 1.0,     # colour, shape, pattern, material (texture, size words 1/2)
    "visual_relationship": 1.0,  # spatial relation phrases
}
DETAIL_WEIGHT = 0.5
# "world": the cues that read the procedural world's genres; "real": tuned on the development half
# of the gold set (`gold.py`) for real prose, adding a scientific-register requirement for science,
# concept from several picturable things or a described look, and part placement phrases, and
# reading technical writing's terms ("parse tree", "a large corpus") as no sight.
RULES = ("world", "real")


class LexicalLabeller:
    """Multi-label segment labeller from compiled regular expressions; no model, no state."""

    name = "lexical"

    def __init__(self, nouns: Iterable[str] = (), thresholds: Mapping[str, float] | None = None,
                 rules: str = "world"):
        if rules not in RULES:
            raise BadValue(f"unknown rules {rules!r}; valid: {', '.join(RULES)}")
        self.rules = rules
        unknown = set(thresholds or ()) - set(LABELS)
        if unknown:
            raise BadValue(f"unknown labels in thresholds: {sorted(unknown)}; "
                             f"valid: {', '.join(LABELS)}")
        self.thresholds = {**DEFAULT_THRESHOLDS, **{k: float(v) for k, v in (thresholds or {}).items()}}
        self.nouns = tuple(sorted({n.strip().lower() for n in nouns if n and n.strip()}))
        lexicon = set(CONCRETE_NOUNS) | set(self.nouns)
        # Texture words are left out: "rough walls", "soft ground" rarely describe a sight.
        mods = COLOURS + SHAPES + PATTERNS + MATERIAL_ADJ + SIZES
        self._detail = _rx(*(re.escape(m) + rf"(?:,? {_alt(mods)})* {_alt(lexicon)}(?![\w-])"
                             for m in mods))
        self._th = np.array([self.thresholds[k] for k in LABELS], np.float32)
        blob = json.dumps({"version": RULES_VERSION, "rules": rules, "nouns": self.nouns,
                           "thresholds": self.thresholds,
                           **({"real_version": REAL_RULES_VERSION} if rules == "real" else {})},
                          sort_keys=True)
        self.fingerprint = hashlib.sha256(blob.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"LexicalLabeller(nouns={len(self.nouns)}, fingerprint={self.fingerprint})"

    def _score(self, text: str) -> list[float]:
        body, n_code = _CODE_LINE.subn("", text)
        body, n_doc = _DOC_LINE.subn("", body)
        code = float(n_code + n_doc)
        for m in _CODE_PROSE.finditer(body):
            code += CODE_PROSE_HALF if m.group("half") else CODE_PROSE_WEIGHT
        if code >= self.thresholds["code_reasoning"]:
            # Program lines carry no prose evidence. Comment sentences are read for the visual
            # labels (a comment describing a picture describes it), not for math or science
            # (comments explain the code: "so the smallest x is furthest left").
            plain = " " + _COMMENT_LINE.sub("", body).lower()
            visual = _COMMENT_LINE.sub(
                lambda m: m.group(1) if _SENTENCE.match(m.group(1).strip()) else "", body)
        else:
            plain = " " + text.lower()
            visual = text
        visual = " " + _PROPER_COLOUR.sub("_", visual).lower()
        real = self.rules == "real"
        technical = real and len(set(_TECHNICAL.findall(plain))) >= TECHNICAL_TERMS_MIN
        if technical:
            visual = _TECHNICAL_USES.sub("_", visual)
        n_eq = 0
        for m in _EQ.finditer(plain):
            if _EQ_LEFT.search(plain, max(0, m.start() - 40), m.start()):
                n_eq += 1
        math = (EQUATION_WEIGHT * n_eq + LATEX_WEIGHT * len(_LATEX.findall(plain))
                + FORMULA_WEIGHT * len(_FORMULA.findall(plain)) + _MATH.score(plain))
        science = _SCIENCE.score(plain)
        if real:
            science += MECHANISM_WEIGHT * len(_MECHANISM.findall(plain))
        if science and (_NATURE.search(plain) is None or (
                real and len(set(_SCI_TERMS.findall(plain))) < SCIENCE_TERMS_MIN)):
            science = 0.0
        attribute = _ATTRIBUTE.score(visual) + len(_LOOK_EXTRA.findall(visual))
        relation = float(len(_RELATION.findall(visual)))
        concept = len(_SCENE.findall(visual)) + DETAIL_WEIGHT * len(self._detail.findall(visual))
        if real:
            relation += len(_RELATION_REAL.findall(visual))
            # Describing how things look or sit presents visible things; so does naming several.
            # Not in technical text, where "tree", "window" or "field" are terms and a described
            # look is more often a figure's legend ("shown in red").
            concept += 0.0 if technical else (
                PICTURABLE_WEIGHT * len(set(_PICTURABLE.findall(visual)))
                + DESCRIBED_WEIGHT * (attribute >= self.thresholds["visual_attribute"]
                                      or relation >= self.thresholds["visual_relationship"]))
        return [code, math, science, concept, attribute, relation]

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """float [n, 6]: each label's evidence score; a label fires at its threshold."""
        if isinstance(texts, str):
            raise TypeError("expected a sequence of texts, got one string")
        out = np.zeros((len(texts), len(LABELS)), np.float32)
        for i, t in enumerate(texts):
            out[i] = self._score(t)
        return out

    def label(self, texts: Sequence[str]) -> np.ndarray:
        """bool [n, 6] over `LABELS`."""
        return self.scores(texts) >= self._th


def world_nouns(world) -> list[str]:
    """The names of a world's kinds and their plurals, for `LexicalLabeller(nouns=...)`."""
    out: list[str] = []
    for k in world.kinds:
        out += [k.name, k.plural]
    return out


def throughput(labeller, texts: Sequence[str], repeats: int = 1) -> float:
    """MB (UTF-8) of text labelled per second by `labeller` on one core."""
    size = sum(len(t.encode()) for t in texts) * repeats
    start = time.perf_counter()
    for _ in range(repeats):
        labeller.label(texts)
    return size / 1e6 / (time.perf_counter() - start)
