"""The procedural world: kinds, scenes, images, text of every genre, captions, instructions and
four-option questions, all derived from one seed.

    from visual_priors.world import World
    w = World(seed=0, image_size=32)
    w.document("science", 10_000).text
    w.question("spatial", "test", 3).options
"""

from visual_priors.world.genres import GENRE_ALLOWED, GENRE_REQUIRED, GENRES
from visual_priors.world.instructions import Example
from visual_priors.world.kinds import (COLOURS, HABITATS, KIND_CATEGORIES, MATERIALS, PATTERNS,
                                       SHAPES, SIZE_CLASSES, Kind)
from visual_priors.world.questions import (ALL_BENCHMARKS, BENCHMARK_CATEGORY, BENCHMARKS,
                                           CATEGORIES, COUNTERPARTS, SIZE_BIN_RANGES, SIZE_BINS,
                                           Question, format_prompt)
from visual_priors.world.scenes import Chart, PlacedObject, Scene, Sign
from visual_priors.world.text_base import LABELS, Document
from visual_priors.world.world import VERSION as WORLD_VERSION
from visual_priors.world.world import World

__all__ = [
    "ALL_BENCHMARKS", "BENCHMARKS", "BENCHMARK_CATEGORY", "CATEGORIES", "COLOURS", "COUNTERPARTS",
    "Chart", "Document", "Example", "GENRES", "GENRE_ALLOWED", "GENRE_REQUIRED", "HABITATS",
    "KIND_CATEGORIES", "Kind", "LABELS", "MATERIALS", "PATTERNS", "PlacedObject", "Question",
    "SHAPES", "SIZE_BINS", "SIZE_BIN_RANGES", "SIZE_CLASSES", "Scene", "Sign", "WORLD_VERSION",
    "World", "format_prompt",
]
