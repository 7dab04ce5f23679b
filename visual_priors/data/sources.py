"""Text sources: named, deterministic document streams drawn from the world and the local stdlib.

A source is a repeating cycle of components. A component is either a world genre or the local
Python standard library's own source code (`STDLIB`). Document `i` of a source comes from
component `cycle[i % len(cycle)]`, and is that component's `k`-th document, where `k` counts
earlier positions with the same component; so any slice of a source is computed without
generating what comes before it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visual_priors.errors import BadFile, BadValue, MissingFile
from visual_priors.world import GENRES

STDLIB = "python_stdlib"
SPLITS = ("train", "val", "test")

# Stdlib files are assigned to splits by a hash of their relative path, out of this many buckets.
_STDLIB_BUCKETS = 20
_STDLIB_SPLIT_BUCKETS = {"train": range(0, 18), "val": range(18, 19), "test": range(19, 20)}
# Chunks of about this many characters, cut at line ends, so a document is a few KB.
STDLIB_CHUNK_CHARS = 4096
# Directories that are tests, installed packages or machine-specific configuration, not library
# code; the tests also hold files with deliberately broken syntax and encodings.
_STDLIB_SKIP_DIRS = frozenset(
    {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
)


def _stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _split_of(relpath: str) -> str:
    bucket = int(hashlib.sha256(relpath.encode()).hexdigest(), 16) % _STDLIB_BUCKETS
    for split, buckets in _STDLIB_SPLIT_BUCKETS.items():
        if bucket in buckets:
            return split
    raise AssertionError(bucket)


class StdlibCorpus:
    """The standard library's .py files of one split, in sorted path order, as chunks.

    The files are read as one stream and cut at line ends into chunks of at least chunk_chars
    characters (small files share a chunk). Files are read lazily, only as far as the chunks
    asked for; past the end the chunks repeat.
    """

    def __init__(self, split: str, root: str | Path | None = None,
                 chunk_chars: int = STDLIB_CHUNK_CHARS):
        if split not in _STDLIB_SPLIT_BUCKETS:
            raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        self.root = Path(root) if root is not None else _stdlib_root()
        self.split = split
        self.chunk_chars = chunk_chars
        self.files = self._list_files()
        self._chunks: list[str] = []
        self._pending: list[str] = []
        self._pending_chars = 0
        self._next_file = 0

    def _list_files(self) -> list[Path]:
        files = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [
                d for d in dirnames if d not in _STDLIB_SKIP_DIRS and not d.startswith("config-")
            ]
            for name in filenames:
                if not name.endswith(".py") or name.startswith("_sysconfigdata"):
                    continue
                path = Path(dirpath) / name
                rel = path.relative_to(self.root).as_posix()
                if _split_of(rel) == self.split:
                    files.append(path)
        files.sort(key=lambda p: p.relative_to(self.root).as_posix())
        return files

    def _read_next_file(self) -> bool:
        if self._next_file >= len(self.files):
            if self._pending_chars:
                self._flush()
                return True
            return False
        path = self.files[self._next_file]
        self._next_file += 1
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            return True
        if text and not text.endswith("\n"):
            text += "\n"
        for line in text.splitlines(keepends=True):
            self._pending.append(line)
            self._pending_chars += len(line)
            if self._pending_chars >= self.chunk_chars:
                self._flush()
        return True

    def _flush(self) -> None:
        chunk = "".join(self._pending)
        self._pending, self._pending_chars = [], 0
        if chunk.strip():
            self._chunks.append(chunk)

    def chunk(self, index: int) -> str:
        while index >= len(self._chunks) and self._read_next_file():
            pass
        if not self._chunks:
            raise RuntimeError(f"no readable .py files for split {self.split!r} under {self.root}")
        return self._chunks[index % len(self._chunks)]


_STDLIB_CORPORA: dict[tuple[str, str], StdlibCorpus] = {}


def stdlib_corpus(split: str) -> StdlibCorpus:
    """The shared, lazily filled stdlib corpus of a split (its chunks only depend on the files)."""
    key = (str(_stdlib_root()), split)
    if key not in _STDLIB_CORPORA:
        _STDLIB_CORPORA[key] = StdlibCorpus(split)
    return _STDLIB_CORPORA[key]


@dataclass(frozen=True)
class Source:
    """A deterministic document stream: document i comes from component cycle[i % len(cycle)]."""

    name: str
    description: str
    cycle: tuple[str, ...]
    _offsets: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _per_cycle: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not self.cycle:
            raise ValueError(f"source {self.name!r} has an empty cycle")
        unknown = [c for c in self.cycle if c != STDLIB and c not in GENRES]
        if unknown:
            raise ValueError(
                f"source {self.name!r} uses unknown components {unknown}; "
                f"valid: {', '.join(GENRES + (STDLIB,))}"
            )
        seen: dict[str, int] = {}
        offsets = []
        for c in self.cycle:
            offsets.append(seen.get(c, 0))
            seen[c] = seen.get(c, 0) + 1
        object.__setattr__(self, "_offsets", tuple(offsets))
        object.__setattr__(self, "_per_cycle", seen)

    @property
    def composition(self) -> dict[str, float]:
        """Share of documents per component."""
        return {c: n / len(self.cycle) for c, n in self._per_cycle.items()}

    @property
    def fingerprint(self) -> str:
        """Identifies the content: the cycle, and the Python version when stdlib code is used."""
        parts = [self.name, *self.cycle]
        if STDLIB in self.cycle:
            parts.append("python%d.%d" % sys.version_info[:2])
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]

    def locate(self, position: int) -> tuple[str, int]:
        """(component, index within that component) of document `position`."""
        if position < 0:
            raise ValueError(f"document position must be >= 0, got {position}")
        rounds, phase = divmod(position, len(self.cycle))
        component = self.cycle[phase]
        return component, rounds * self._per_cycle[component] + self._offsets[phase]

    def document(self, world: Any, position: int, split: str = "train") -> str:
        return self.document_with_truth(world, position, split)[0]

    def document_with_truth(self, world: Any, position: int,
                            split: str = "train") -> tuple[str, Any | None]:
        """(text, the world's `Document` with its true label spans), or (text, None) for
        standard-library code, whose labels the world does not know."""
        component, index = self.locate(position)
        if component == STDLIB:
            return stdlib_corpus(split).chunk(index), None
        doc = world.document(component, index, split)
        return doc.text, doc

    def documents(self, world: Any, split: str = "train", start: int = 0,
                  count: int = 1) -> list[str]:
        """Documents start .. start+count-1 of this source."""
        return [self.document(world, i, split) for i in range(start, start + count)]

    def iter_documents(self, world: Any, split: str = "train", start: int = 0) -> Iterator[str]:
        """All documents from `start` on (endless)."""
        i = start
        while True:
            yield self.document(world, i, split)
            i += 1


_GENRE_DESCRIPTIONS = {
    "visual_concept": "descriptions naming the objects in scenes",
    "visual_attribute": "descriptions of objects' colours, shapes, sizes and materials",
    "visual_relationship": "descriptions of objects' spatial relations and depth order",
    "code": "programs that compute over scenes",
    "math": "worked arithmetic and counting problems",
    "science": "science-style causal reasoning about kinds",
    "encyclopedia": "encyclopedia-style definitions and facts",
    "narrative": "narrative prose",
    "web": "noisy web-style blends of genres",
}

_S, _VC, _VA, _VR = STDLIB, "visual_concept", "visual_attribute", "visual_relationship"
# The paper's sixteen sources (App. B.1) in the embedded world: each is a cycle of world genres
# (and the standard library's code) chosen for what that kind of text is about.
_PAPER_SOURCES = (
    Source("web_crawl", "web crawl: the world's noisy web genre", ("web",)),
    Source("encyclopedia", "encyclopedia articles: definitions and facts about kinds",
           ("encyclopedia",)),
    Source("academic", "academic papers: science reasoning with some mathematics (3:1)",
           ("science", "science", "math", "science")),
    Source(
        "literature",
        "books: narrative prose interleaved with visual descriptions (5 narrative : 3 visual)",
        ("narrative", _VC, "narrative", _VA, "narrative", "narrative", _VR, "narrative"),
    ),
    Source("math", "mathematics: worked arithmetic and counting problems", ("math",)),
    Source(
        "code",
        "code: the local Python standard library in chunks of a few KB, with the world's "
        "scene programs as every fourth document",
        (_S, _S, _S, "code"),
    ),
    Source("arts", "arts: how things look, their colours and arrangement, and stories about them",
           (_VA, _VC, _VR, "narrative", _VA, "encyclopedia")),
    Source("biology", "biology: science reasoning and facts about living kinds",
           ("science", "encyclopedia", "science", _VC)),
    Source("computer_science", "computer science: programs, library code and their reasoning",
           ("code", _S, "science", "math")),
    Source("economics", "economics: counting and arithmetic amid web-style discussion",
           ("math", "web", "encyclopedia", "math", "web")),
    Source("food", "food: what edible kinds look like and what is known about them",
           (_VA, "encyclopedia", _VC, "science")),
    Source("law", "law: rules and facts stated as prose", ("encyclopedia", "narrative", "web")),
    Source("medicine", "medicine: causal reasoning and reference facts",
           ("science", "encyclopedia", "science", "narrative")),
    Source("philosophy", "philosophy: argument in prose", ("narrative", "science", "encyclopedia")),
    Source("politics", "politics: web discussion and narrative", ("web", "narrative", "encyclopedia")),
    Source("qa_forum", "q-a forum: questions answered with arithmetic, code and explanations",
           ("web", "math", "code", "science")),
)
_MIXTURE_SOURCES = _PAPER_SOURCES[:6]

SOURCES: dict[str, Source] = {s.name: s for s in _PAPER_SOURCES}
for _genre in GENRES:
    if _genre in ("math", "encyclopedia"):
        # The mixture sources of these names already are the single genre.
        continue
    # "code" names the mixture source (stdlib + world), so the world-only genre is "world_code".
    _name = "world_code" if _genre in SOURCES else _genre
    SOURCES[_name] = Source(
        _name, f"world genre {_genre}: {_GENRE_DESCRIPTIONS.get(_genre, _genre)}", (_genre,)
    )
del _genre, _name

PAPER_SOURCES = tuple(s.name for s in _PAPER_SOURCES)
MIXTURE_SOURCES = tuple(s.name for s in _MIXTURE_SOURCES)


def world_id(world: Any) -> str:
    """What a world's text depends on, for cache keys: its seed and, when it has them, its kinds."""
    parts = [f"seed={int(world.seed)}"]
    kinds = getattr(world, "kinds", None)
    if kinds is not None:
        parts.append(f"n_kinds={len(kinds)}")
    return ",".join(parts)


def get_source(name: str | Source) -> Source:
    """The registered source of that name; the error lists the valid names."""
    if isinstance(name, (Source, FileSource)):
        return name
    if name not in SOURCES:
        raise BadValue(f"unknown source {name!r}; valid sources: {', '.join(sorted(SOURCES))}")
    return SOURCES[name]


def get_sources(names: Sequence[str | Source]) -> list[Source]:
    return [get_source(n) for n in names]


# Share of a file-backed corpus's documents held out as its test split, chosen by a hash of
# the document's position so that the split never changes with the reading order of workers.
HELDOUT_PER_MILLE = 10


def _in_split(fingerprint: str, position: int, split: str, heldout_per_mille: int) -> bool:
    digest = hashlib.sha256(f"{fingerprint}:{position}".encode()).digest()
    heldout = int.from_bytes(digest[:4], "little") % 1000 < heldout_per_mille
    if split not in SPLITS:
        raise BadValue(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return heldout if split == "test" else (split == "train" and not heldout)


class FileSource:
    """A real corpus: the documents a reader spec names (JSONL, Parquet, ArrayRecord, TFDS,
    seqio), split into train and test by a hash of each document's position."""

    def __init__(self, name: str, spec: dict, base_dir: str | Path | None = None,
                 heldout_per_mille: int = HELDOUT_PER_MILLE):
        from visual_priors.data.readers import open_reader  # pyarrow/tfds only when used

        self.name = name
        self.spec = dict(spec)
        self.reader = open_reader(self.spec, base_dir=base_dir)
        self.heldout_per_mille = int(heldout_per_mille)
        self.description = f"{name}: {self.reader.description}"

    @property
    def fingerprint(self) -> str:
        parts = [self.name, self.reader.fingerprint, str(self.heldout_per_mille)]
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]

    def iter_documents(self, world: Any = None, split: str = "train", start: int = 0) -> Iterator[str]:
        """The split's documents in reading order, from the `start`-th on (finite)."""
        fp, seen = self.reader.fingerprint, 0
        for position, text in enumerate(self.reader.documents()):
            if _in_split(fp, position, split, self.heldout_per_mille):
                if seen >= start:
                    yield text
                seen += 1

    def documents(self, world: Any = None, split: str = "train", start: int = 0,
                  count: int = 1) -> list[str]:
        it = self.iter_documents(world, split, start)
        return [text for _, text in zip(range(count), it)]

    def document(self, world: Any, position: int, split: str = "train") -> str:
        docs = self.documents(world, split, position, 1)
        if not docs:
            raise IndexError(f"source {self.name!r} has fewer than {position + 1} {split} documents")
        return docs[0]


AnySource = Source | FileSource


def load_corpora(path: str | Path) -> dict[str, dict]:
    """A JSON file mapping source names to reader specs (what `data fetch-starter` writes);
    relative paths in the specs are relative to the file's directory."""
    path = Path(path)
    try:
        specs = json.loads(path.read_text())
    except FileNotFoundError:
        raise MissingFile(f"corpora file {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise BadFile(f"corpora file {path} is not valid JSON: {err}") from None
    if not isinstance(specs, dict) or not all(isinstance(v, dict) for v in specs.values()):
        raise BadFile(f"corpora file {path} must map source names to reader specs")
    base = path.resolve().parent
    return {name: {**spec, "base_dir": str(base)} for name, spec in specs.items()}


def resolve_source(name: str, corpora: dict[str, dict] | None = None) -> AnySource:
    """The source of that name: a real corpus when `corpora` names it, else the world's."""
    if corpora and name in corpora:
        spec = dict(corpora[name])
        base_dir = spec.pop("base_dir", None)
        return FileSource(name, spec, base_dir=base_dir)
    return get_source(name)


def known_sources(corpora: dict[str, dict] | None = None) -> list[str]:
    return sorted(set(SOURCES) | set(corpora or {}))
