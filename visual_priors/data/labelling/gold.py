"""The gold set: real text segments labelled by hand, to measure labellers on real text.

`gold/starter_gold.jsonl` holds about 300 segments of 100-400 words from the starter corpus
(Wikipedia leads, Shakespeare, ACL papers, competition mathematics, networkx) and from Python's
standard library (source and the language reference in `pydoc_data`), each read and labelled
against the definitions in docs/labelling.md. One JSON object per line:

    {"id", "split": "dev" | "heldout", "labels": [base label names], "source", "package",
     "version", "licence", "path", "documents", "char_start", "text", ...}

The split is fixed and stratified by source and by whether a segment carries a reasoning or a
visual label: cue rules and trained labellers may look at `dev` only; `heldout` is for the
final measurement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from visual_priors.data.labelling import LABELS, names_to_bits
from visual_priors.errors import BadFile, BadValue

GOLD_PATH = Path(__file__).with_name("gold") / "starter_gold.jsonl"
SPLITS = ("dev", "heldout")
_REQUIRED = {"id": str, "split": str, "labels": list, "source": str, "package": str,
             "version": str, "licence": str, "path": str, "text": str}


class GoldFormatError(BadFile):
    """A gold file that cannot be read; the message names the file, line and field."""


@dataclass(frozen=True)
class Gold:
    """Labelled segments: texts[i] truly carries bits[i] (bool [n, 6] over `LABELS`)."""

    texts: list[str]
    bits: np.ndarray
    splits: np.ndarray   # str [n]: "dev" or "heldout"
    sources: np.ndarray  # str [n]
    ids: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, split: str) -> "Gold":
        """The segments of one split ("dev", "heldout") or all of them ("all")."""
        if split == "all":
            return self
        if split not in SPLITS:
            raise BadValue(f"unknown split {split!r}; valid: all, {', '.join(SPLITS)}")
        idx = np.flatnonzero(self.splits == split)
        return Gold([self.texts[i] for i in idx], self.bits[idx], self.splits[idx],
                    self.sources[idx], [self.ids[i] for i in idx])


def _check(path: Path, lineno: int, row: object) -> dict:
    where = f"{path}:{lineno}"
    if not isinstance(row, dict):
        raise GoldFormatError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for field, kind in _REQUIRED.items():
        if field not in row:
            raise GoldFormatError(f"{where}: missing field {field!r}")
        if not isinstance(row[field], kind):
            raise GoldFormatError(f"{where}: field {field!r} must be a {kind.__name__}, "
                                  f"got {type(row[field]).__name__}")
    if row["split"] not in SPLITS:
        raise GoldFormatError(f"{where}: field 'split' must be one of {', '.join(SPLITS)}, "
                              f"got {row['split']!r}")
    unknown = [x for x in row["labels"] if x not in LABELS]
    if unknown:
        raise GoldFormatError(f"{where}: field 'labels' has unknown label(s) {unknown}; "
                              f"valid: {', '.join(LABELS)}")
    if not row["text"].strip():
        raise GoldFormatError(f"{where}: field 'text' is empty")
    return row


def load_gold(path: str | Path = GOLD_PATH) -> Gold:
    """Reads and checks a gold JSONL file; raises `GoldFormatError` naming the file, line and
    field of the first problem (ids must be unique)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise GoldFormatError(f"{path}: cannot read the gold file ({err})") from None
    rows, seen = [], set()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = _check(path, lineno, json.loads(line))
        except json.JSONDecodeError as err:
            raise GoldFormatError(f"{path}:{lineno}: invalid JSON ({err.msg})") from None
        if row["id"] in seen:
            raise GoldFormatError(f"{path}:{lineno}: field 'id' repeats {row['id']!r}")
        seen.add(row["id"])
        rows.append(row)
    if not rows:
        raise GoldFormatError(f"{path}: no segments")
    return Gold(texts=[r["text"] for r in rows],
                bits=names_to_bits([set(r["labels"]) for r in rows]),
                splits=np.array([r["split"] for r in rows]),
                sources=np.array([r["source"] for r in rows]),
                ids=[r["id"] for r in rows])
