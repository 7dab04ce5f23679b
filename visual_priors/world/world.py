"""The World: one seeded universe of kinds, scenes, images, text and questions."""

from __future__ import annotations

import numpy as np

from visual_priors.world.captions import caption as _caption
from visual_priors.world.genres import GENRES, write_document
from visual_priors.world.instructions import Example, make_instruction
from visual_priors.world.kinds import Kind, heldout_indices, make_kinds
from visual_priors.world.layouts import (card_capacity, card_scene, chart_scene, diagram_scene,
                                         objects_scene, random_objects_scene, sign_scene)
from visual_priors.world.kinds import COLOUR_NAMES, SHAPES
from visual_priors.world.questions import (ALL_BENCHMARKS, MAX_COUNT, QUADRANTS, SIZE_BINS, Question,
                                           QuestionMaker)
from visual_priors.world.render import Renderer
from visual_priors.world.rng import Rand, digest_int, split_id
from visual_priors.world.scenes import Scene, assign_split, scene_split
from visual_priors.world.text_base import Document

# Changes whenever generated content changes, so cached outputs derived from the world are not reused.
VERSION = 4
# What the frozen encoder's linear probes read (World.probe_image).
PROBE_PROPERTIES = ("kind", "colour", "shape", "count", "position")
# Around the two views of a multi-view image.
VIEW_FRAME = (128, 128, 128)


class World:
    """Everything derives from `seed`: item i of any stream is drawn from its own generator seeded
    with (seed, split, stream, i), so any item can be asked for directly and the same seed always
    gives the same bytes.

    image_size: side of rendered images in pixels (32 by default; 64 and 224 work too).
    n_kinds: number of kinds (10..35, 14 by default: every shape plain and spotted); half of
    them are fact-held-out.
    """

    def __init__(self, seed: int = 0, image_size: int = 32, n_kinds: int = 14):
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.seed = int(seed)
        self.image_size = int(image_size)
        self.renderer = Renderer(self.image_size)
        self._half: Renderer | None = None  # draws the views of multi-view questions
        self.kinds: tuple[Kind, ...] = make_kinds(self.seed, n_kinds)
        self._heldout = heldout_indices(self.seed, self.kinds)
        self.heldout_kinds: list[Kind] = [k for k in self.kinds if k.index in self._heldout]
        self.train_kinds: list[Kind] = [k for k in self.kinds if k.index not in self._heldout]
        self._by_name = {k.name: k for k in self.kinds}
        self._questions = QuestionMaker(self)

    def __repr__(self) -> str:
        return f"World(seed={self.seed}, image_size={self.image_size}, n_kinds={len(self.kinds)})"

    # ------------------------------------------------------------------ kinds

    def kind(self, key: int | str) -> Kind:
        """A kind by index or by name."""
        if isinstance(key, str):
            if key not in self._by_name:
                raise KeyError(f"no kind named {key!r}")
            return self._by_name[key]
        return self.kinds[key]

    def is_heldout(self, kind: Kind | int | str) -> bool:
        """True for kinds whose facts are kept out of instruction data and train questions."""
        if isinstance(kind, Kind):
            return kind.index in self._heldout
        return self.kind(kind).index in self._heldout

    def fact_kinds(self, split: str) -> list[Kind]:
        """Kinds that knowledge questions of a split may ask about."""
        if split == "train":
            return self.train_kinds
        if split == "test":
            return self.heldout_kinds
        raise ValueError(f"unknown question split {split!r}; valid: train, test")

    # ------------------------------------------------------------------ images

    def _rand(self, split: str, stream: str, index: int) -> Rand:
        return Rand.of(self.seed, split, stream, index)

    def _sample_scene(self, r: Rand, split: str) -> Scene:
        S = self.image_size
        u = r.random()
        if u < 0.76:
            distinct = r.chance(0.7)
            while True:
                scene = random_objects_scene(r, self.kinds, S, r.randint(1, MAX_COUNT), distinct=distinct,
                                             min_sep=0.6)
                # Captions name every object, so each must stay at least half visible.
                if scene.objects and self.renderer.visibility(scene).min() >= 0.5:
                    break
        elif u < 0.84:
            text = str(r.randint(0, 9)) if r.chance(0.55) else str(r.randint(10, 99))
            scene = sign_scene(r, self.kinds, S, text, r.randint(0, 2))
        elif u < 0.90:
            scene = chart_scene(r, S)
        elif u < 0.95:
            cap = card_capacity(S)
            short = [k for k in self.kinds if len(k.name) <= cap]
            if short and r.chance(0.5):
                text = r.choice(short).name.upper()
            else:
                digits = r.randint(3, max(3, min(4, cap)))
                text = str(r.randint(10 ** (digits - 1), 10 ** digits - 1))
            scene = card_scene(r, S, text)
        else:
            scene = diagram_scene(r, r.sample(self.kinds, 3), S)
        return assign_split(r, scene, split)

    def scene(self, split: str, index: int) -> Scene:
        """Scene `index` of a split; a scene's split is fixed by its content, so the two never meet."""
        return self._sample_scene(self._rand(split, "scene", index), split)

    def kind_image(self, split: str, index: int, *, with_scene: bool = False):
        """A kind-labelled image: one object alone on the ground plane, so its label is never
        ambiguous -> (uint8 image, kind index), plus the Scene when `with_scene`.

        Kinds go round-robin over `index` (balanced classes for probes), every kind included:
        held-out kinds hide facts, not looks. Position, depth and colour (the kind's own colour
        three times in four) come from the stream "kind_image", so no other content changes;
        the split is settled as for every scene, so train and test images never coincide.
        """
        r = self._rand(split, "kind_image", index)
        kind = self.kinds[index % len(self.kinds)]
        scene = assign_split(r, random_objects_scene(r, self.kinds, self.image_size, 1, pool=[kind]),
                             split)
        image = self.render(scene)
        return (image, kind.index, scene) if with_scene else (image, kind.index)

    def probe_image(self, prop: str, split: str, index: int, *, with_scene: bool = False):
        """An image labelled with one property the questions ask about -> (uint8 image, class),
        plus the Scene when `with_scene`.

        kind, colour, shape: one object alone (as `kind_image`, labelled by its kind, its
        colour or its shape); count: 1..MAX_COUNT objects apart from each other (label: count
        minus one); position: one object whose centre lies in a quadrant, clear of the midlines
        by a tenth of the side (label: QUADRANTS index). Classes go round-robin over `index`.
        """
        if prop in ("kind", "colour", "shape"):
            _, kind, scene = self.kind_image(split, index, with_scene=True)
            o = scene.objects[0]
            label = {"kind": kind, "colour": COLOUR_NAMES.index(o.colour),
                     "shape": SHAPES.index(o.kind.shape)}[prop]
        elif prop == "count":
            r = self._rand(split, "probe:count", index)
            label = index % MAX_COUNT
            while True:
                scene = random_objects_scene(r, self.kinds, self.image_size, label + 1, distinct=False,
                                             min_sep=1.05, size_scale=0.8 if label >= 3 else 0.95)
                if len(scene.objects) == label + 1:
                    break
            scene = assign_split(r, scene, split)
        elif prop == "position":
            r = self._rand(split, "probe:position", index)
            label, S = index % len(QUADRANTS), self.image_size
            top, left = label < 2, label % 2 == 0
            near, far = 0.0, 0.4 * S
            region = (near if left else S - far, near if top else S - far,
                      far if left else S - near, far if top else S - near)
            while True:
                scene = objects_scene(r, [r.choice(self.kinds)], S, region=region)
                if scene.objects:
                    break
            scene = assign_split(r, scene, split)
        else:
            raise ValueError(f"unknown probe property {prop!r}; valid: {', '.join(PROBE_PROPERTIES)}")
        image = self.render(scene)
        return (image, label, scene) if with_scene else (image, label)

    def scene_split(self, scene: Scene) -> str:
        return scene_split(scene)

    def render(self, scene: Scene) -> np.ndarray:
        """uint8 [image_size, image_size, 3]."""
        return self.renderer.render(scene)

    def render_views(self, views: tuple[Scene, ...]) -> np.ndarray:
        """Two half-size views side by side on a neutral frame: uint8 [image_size, image_size, 3]."""
        S, half = self.image_size, self.image_size // 2
        if self._half is None:
            self._half = Renderer(half)
        image = np.full((S, S, 3), VIEW_FRAME, np.uint8)
        top = (S - half) // 2
        for i, view in enumerate(views[:2]):
            image[top:top + half, i * half:(i + 1) * half] = self._half.render(view)
        return image

    def render_mask(self, scene: Scene) -> np.ndarray:
        """int16 [image_size, image_size]: index of the object seen at each pixel, -1 background,
        -2 sign."""
        return self.renderer.mask(scene)

    def render_with_mask(self, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
        return self.renderer.render_with_mask(scene)

    def object_shares(self, scene: Scene) -> np.ndarray:
        """Visible fraction of the image covered by each object, from the rendered mask."""
        mask = self.render_mask(scene)
        counts = np.bincount(mask[mask >= 0].ravel(), minlength=len(scene.objects))
        return counts / mask.size

    # ------------------------------------------------------------------ text

    def document(self, genre: str, index: int, split: str = "train") -> Document:
        if genre not in GENRES:
            raise ValueError(f"unknown genre {genre!r}; valid genres: {', '.join(GENRES)}")
        split_id(split)
        return write_document(genre, self._rand(split, "doc:" + genre, index), self.kinds)

    def caption(self, scene: Scene) -> str:
        # The wording varies with the scene, yet one scene always gets the same caption.
        key = digest_int(repr(scene.key()).encode()) & 0x7FFFFFFFFFFFFFFF
        return _caption(self._rand("train", "caption", key), scene)

    def caption_pair(self, split: str, index: int) -> tuple[np.ndarray, str]:
        scene = self.scene(split, index)
        return self.render(scene), self.caption(scene)

    # ------------------------------------------------------------------ questions

    def question(self, benchmark: str, split: str, index: int) -> Question:
        if benchmark == "mle":
            r = self._rand(split, "question:mle", index)
            return self._questions.mle(r, split, r.choice(SIZE_BINS))
        if benchmark not in ALL_BENCHMARKS:
            raise ValueError(f"unknown benchmark {benchmark!r}; valid: {', '.join(ALL_BENCHMARKS)}, mle")
        r = self._rand(split, "question:" + benchmark, index)
        return self._questions.make(benchmark, r, split, self.fact_kinds(split))

    def mle_question(self, size_bin: str, split: str, index: int) -> Question:
        r = self._rand(split, "mle:" + size_bin, index)
        return self._questions.mle(r, split, size_bin)

    def instruction(self, split: str, index: int) -> Example:
        self.fact_kinds(split)
        return make_instruction(self, split, self._rand(split, "instruction", index))
