"""Real benchmark files: loaders for local copies of the paper's 16 VQA benchmarks (lmms-eval /
Hugging Face parquet layouts) and MLE-Bench's ``data.jsonl``, each with its own metric.

Every loader turns a local directory (or file) into a list of `Item`s in a fixed order; every
benchmark names its category (Cambrian-1's grouping, as the paper groups them) and its metric,
which turns per-item predictions into the benchmark's score on a 0-100 scale (MME's perception
score / 20, OCRBench's count / 10, VQA accuracy for TextVQA, relaxed accuracy for ChartQA,
accuracy elsewhere), so category means and the overall mean combine like the paper's tables.

The loaders share one way of reading files (`visual_priors.eval.real.files`: split and config
choice, parquet and jsonl rows, image cells); the metrics share `check_predictions` and
`accuracy` below, so every result holds "score" and "n" and scoring no items is a ValueError
naming the benchmark. Importing this package registers every benchmark.

Nothing here downloads: paths come from the user.
"""

from __future__ import annotations

import io
import numbers
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from visual_priors.errors import BadFile, BadValue, MissingFile

__all__ = [
    "REGISTRY", "Benchmark", "BenchmarkFileError", "Item", "accuracy", "check_predictions",
    "decode_image", "general_knowledge", "get", "mle", "ocr_vision", "option_right", "percent",
    "register",
]


class BenchmarkFileError(BadFile):
    """A benchmark file is missing, unreadable or not in the layout its loader expects; the
    message names the file and, where it can, the row."""


@dataclass(frozen=True)
class Item:
    """One evaluation question.

    image: encoded image bytes (PNG/JPEG as stored in the file), or None for text-only items;
        `decode_image` turns them into uint8 [H, W, 3]. Multi-image items (BLINK, MMMU) keep
        every image in `images`; `image` is then the images pasted side by side.
    options: the answer options for multiple-choice items, () for open-ended ones.
    answer: the index into options for multiple choice; the reference answer text otherwise.
    answers: every reference answer (TextVQA's ten human answers, OCRBench's list); for
        multiple choice, (options[answer],).
    subtask: the benchmark's own sub-division (MME category, CV-Bench source, OCRBench type,
        MLE size bin, ...), "" if none.
    pair: items that form one scoring unit (MME's two questions per image) share a pair id.
    """

    benchmark: str
    qid: str
    question: str
    options: tuple[str, ...]
    answer: int | str
    answers: tuple[str, ...]
    image: bytes | None = None
    images: tuple[bytes, ...] = ()
    subtask: str = ""
    pair: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def multiple_choice(self) -> bool:
        return bool(self.options)


def item_record(item: Item) -> dict:
    """An item without its image bytes, as JSON-ready fields (``item_from_record`` inverts it),
    so a benchmark loaded once for encoding is scored later without reading its files again."""
    return {f.name: getattr(item, f.name) for f in fields(Item) if f.name not in ("image", "images")}


def item_from_record(record: dict) -> Item:
    return Item(**{**record, "options": tuple(record["options"]), "answers": tuple(record["answers"])})


def fingerprint(path: str | Path) -> str:
    """Content fingerprint of a benchmark file or of every file under a benchmark folder."""
    from visual_priors.data import files as files_lib
    root = Path(path).expanduser()
    if not root.exists():
        raise MissingFile(f"benchmark path {root} does not exist")
    found = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    return files_lib.fingerprint(root, found)


def decode_image(data: bytes) -> np.ndarray:
    """uint8 [H, W, 3] from encoded image bytes."""
    from PIL import Image
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


@dataclass(frozen=True)
class Benchmark:
    """name: registry key; title: the paper's name; category: general | knowledge | ocr_chart |
    vision_centric | mle; load(path) -> items (a `BenchmarkFileError` naming the benchmark when
    the files hold none); score(items, predictions) -> {"score": 0-100, "n": the number of items,
    plus sub-scores}, where predictions[i] is an option index (or None) for multiple-choice items
    and the generated text (or None) for open-ended ones; see `check_predictions`."""

    name: str
    title: str
    category: str
    load: Callable[[Path], list[Item]]
    score: Callable[[Sequence[Item], Sequence], dict]
    layout: str = ""


REGISTRY: dict[str, Benchmark] = {}


def register(bench: Benchmark) -> Benchmark:
    if bench.name in REGISTRY:
        raise ValueError(f"benchmark {bench.name!r} registered twice")
    REGISTRY[bench.name] = bench
    return bench


def get(name: str) -> Benchmark:
    if name not in REGISTRY:
        raise BadValue(f"unknown benchmark {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


# --------------------------------------------------------------------------- scoring helpers

def check_predictions(benchmark: str, items: Sequence[Item], predictions: Sequence) -> None:
    """The checks every metric makes before scoring: one prediction per item, at least one item
    (a ValueError naming `benchmark` otherwise), an option index or None for multiple-choice
    items and the generated text or None for open-ended ones (a TypeError otherwise)."""
    if len(items) != len(predictions):
        raise ValueError(f"{benchmark}: {len(predictions)} predictions for {len(items)} items")
    if not items:
        raise ValueError(f"{benchmark}: no items to score")
    for item, pred in zip(items, predictions):
        if item.multiple_choice:
            if pred is not None and (not isinstance(pred, numbers.Integral) or isinstance(pred, bool)):
                raise TypeError(f"{item.benchmark} {item.qid}: multiple-choice items take an option "
                                f"index or None, got {pred!r}")
        elif pred is not None and not isinstance(pred, str):
            raise TypeError(f"{item.benchmark} {item.qid}: open-ended items take the generated text "
                            f"or None, got {type(pred).__name__}")


def option_right(item: Item, prediction) -> bool:
    """Whether a (checked) multiple-choice prediction picks the answer."""
    return prediction is not None and int(prediction) == item.answer


def percent(flags: Iterable) -> float:
    """100 * the share of true flags; 0.0 for none."""
    flags = list(flags)
    return 100.0 * sum(flags) / len(flags) if flags else 0.0


def accuracy(items: Sequence[Item], right: Sequence, **groups: Sequence[str]) -> dict:
    """{"score": accuracy %, "n": items, "subtask/<name>": accuracy % per subtask}, plus
    "<group>/<key>" for every keyword: a key per item ("" leaves the item out of the group)."""
    out = {"score": percent(right), "n": len(items)}
    for prefix, keys in {"subtask": [it.subtask for it in items], **groups}.items():
        by: dict[str, list] = defaultdict(list)
        for key, flag in zip(keys, right):
            if key:
                by[key].append(flag)
        out.update({f"{prefix}/{key}": percent(flags) for key, flags in sorted(by.items())})
    return out


# Importing the benchmark modules registers them.
from visual_priors.eval.real import general_knowledge, mle, ocr_vision  # noqa: E402,F401
