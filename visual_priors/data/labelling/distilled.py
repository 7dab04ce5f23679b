"""Distilled segment labeller: hashed word and character n-grams and one logistic regression per
label, trained on another labeller's output (the LLM judge's) or on the world's ground truth, so
that very many segments can be labelled cheaply.

    lab = train(texts, bits, "runs/labeller-distilled")   # bits: bool [n, 6] over LABELS
    lab = load("runs/labeller-distilled")                 # or get_labeller("distilled", path=...)
    lab.label(texts)                                      # bool [n, 6]

Saved as a directory with two files, no pickle: `labeller.json` (format name and version, label
order, vectoriser settings, thresholds, training summary and the sha256 of the weights file) and
`weights.npz` (coef float32 [6, n_features_total], intercept float32 [6]). Loading checks every
one of these, so a corrupt, truncated or foreign file is refused with a clear error.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visual_priors.data.files import write_atomic
from visual_priors.data.labelling import LABELS
from visual_priors.errors import BadFile, BadValue

FORMAT = "visual_priors.labelling.distilled"
FORMAT_VERSION = 1
META_FILE, WEIGHTS_FILE = "labeller.json", "weights.npz"

DEFAULT_HYPER: dict[str, Any] = {
    "n_features": 2 ** 18,          # per analyser (word, char): the model has twice as many
    "word_ngram_range": (1, 2),
    "char_ngram_range": (3, 5),
    "lowercase": True,
    "C": 32.0,                      # inverse L2 strength of each logistic regression
    "class_weight": "balanced",     # None or "balanced"
    "max_iter": 2000,
    "threshold": 0.5,               # probability at which a label fires
}


class DistilledFormatError(BadFile):
    """A saved distilled labeller is missing, corrupt, or not what it claims to be."""


def _vectorizers(settings: dict[str, Any]):
    from sklearn.feature_extraction.text import HashingVectorizer

    common = dict(n_features=int(settings["n_features"]), alternate_sign=False, norm="l2",
                  lowercase=bool(settings["lowercase"]), dtype=np.float32)
    word = HashingVectorizer(analyzer="word", ngram_range=tuple(settings["word_ngram_range"]),
                             token_pattern=settings["token_pattern"], **common)
    char = HashingVectorizer(analyzer="char_wb", ngram_range=tuple(settings["char_ngram_range"]),
                             **common)
    return word, char


def _vector_settings(hyper: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "hashing_word_char", "n_features": int(hyper["n_features"]),
            "word_ngram_range": [int(x) for x in hyper["word_ngram_range"]],
            "char_ngram_range": [int(x) for x in hyper["char_ngram_range"]],
            "lowercase": bool(hyper["lowercase"]), "token_pattern": r"(?u)\b\w\w+\b",
            "char_analyzer": "char_wb", "norm": "l2 per analyser", "alternate_sign": False}


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class DistilledLabeller:
    """A linear multi-label classifier over hashed n-grams; build with `train` or `load`."""

    name = "distilled"

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, vectorizer: dict[str, Any],
                 thresholds: Sequence[float], meta: dict[str, Any] | None = None):
        coef = np.asarray(coef, np.float32)
        intercept = np.asarray(intercept, np.float32)
        width = 2 * int(vectorizer["n_features"])
        if coef.shape != (len(LABELS), width) or intercept.shape != (len(LABELS),):
            raise DistilledFormatError(f"weights have shapes {coef.shape} and {intercept.shape}; "
                                       f"expected {(len(LABELS), width)} and {(len(LABELS),)}")
        if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
            raise DistilledFormatError("weights contain NaN or infinite values")
        self.coef, self.intercept = coef, intercept
        self.vectorizer = dict(vectorizer)
        self.thresholds = np.asarray(thresholds, np.float64)
        valid = (self.thresholds > 0) & (self.thresholds < 1)
        if self.thresholds.shape != (len(LABELS),) or not valid.all():
            raise DistilledFormatError(f"thresholds must be {len(LABELS)} probabilities in (0, 1), "
                                       f"got {thresholds!r}")
        self._logit_thresholds = np.log(self.thresholds / (1 - self.thresholds)).astype(np.float32)
        self.meta = dict(meta or {})
        self._word, self._char = _vectorizers(self.vectorizer)
        digest = hashlib.sha256()
        digest.update(json.dumps(self.vectorizer, sort_keys=True).encode())
        digest.update(self.thresholds.tobytes())
        digest.update(coef.tobytes())
        digest.update(intercept.tobytes())
        self.fingerprint = digest.hexdigest()[:16]
        self.path: Path | None = None

    def __repr__(self) -> str:
        return f"DistilledLabeller(path={str(self.path)!r}, fingerprint={self.fingerprint})"

    def features(self, texts: Sequence[str]):
        import scipy.sparse as sp

        if isinstance(texts, str):
            raise TypeError("expected a sequence of texts, got one string")
        return sp.hstack([self._word.transform(texts), self._char.transform(texts)], format="csr",
                         dtype=np.float32)

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [n, 6]: the logit of each label."""
        if len(texts) == 0:
            return np.zeros((0, len(LABELS)), np.float32)
        x = self.features(texts)
        return np.asarray(x @ self.coef.T, np.float32) + self.intercept

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.decision(texts).astype(np.float64)))

    def label(self, texts: Sequence[str]) -> np.ndarray:
        """bool [n, 6] over LABELS."""
        return self.decision(texts) >= self._logit_thresholds

    # -- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write `labeller.json` and `weights.npz` into directory `path` (atomically each)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_atomic(path / WEIGHTS_FILE, write=lambda f: np.savez_compressed(
            f, coef=self.coef, intercept=self.intercept))
        digest = _sha256_file(path / WEIGHTS_FILE)
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "labels": list(LABELS),
                "vectorizer": self.vectorizer, "thresholds": [float(t) for t in self.thresholds],
                "weights_file": WEIGHTS_FILE, "weights_sha256": digest,
                "coef_shape": list(self.coef.shape), "fingerprint": self.fingerprint,
                **{k: v for k, v in self.meta.items() if k not in _RESERVED}}
        write_atomic(path / META_FILE, json.dumps(meta, indent=1, sort_keys=True).encode())
        self.path = path
        return path


_RESERVED = {"format", "format_version", "labels", "vectorizer", "thresholds", "weights_file",
             "weights_sha256", "coef_shape", "fingerprint"}


def load(path: str | os.PathLike) -> DistilledLabeller:
    """Load a saved distilled labeller, checking that the files are what they claim to be."""
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise DistilledFormatError(f"{path} is not a distilled labeller: {META_FILE} not found "
                                   f"(train one with visual_priors.data.labelling.distilled.train)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DistilledFormatError(f"{meta_path} is corrupt (not valid JSON: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise DistilledFormatError(f"{meta_path} is not a distilled labeller (format {got!r}, "
                                   f"expected {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DistilledFormatError(f"{meta_path} has format version {meta.get('format_version')!r}; "
                                   f"this code reads version {FORMAT_VERSION}")
    if meta.get("labels") != list(LABELS):
        raise DistilledFormatError(f"{meta_path} labels {meta.get('labels')!r} differ from "
                                   f"{list(LABELS)!r}")
    weights_path = path / str(meta.get("weights_file", WEIGHTS_FILE))
    if not weights_path.is_file():
        raise DistilledFormatError(f"weights file {weights_path} is missing")
    digest = _sha256_file(weights_path)
    if digest != meta.get("weights_sha256"):
        raise DistilledFormatError(f"{weights_path} is corrupt or was replaced: sha256 {digest[:16]}... "
                                   f"does not match {str(meta.get('weights_sha256'))[:16]}... "
                                   f"recorded in {META_FILE}")
    try:
        with np.load(weights_path, allow_pickle=False) as z:
            coef, intercept = z["coef"], z["intercept"]
    except Exception as e:  # noqa: BLE001 - any failure to read is a format error here
        raise DistilledFormatError(f"{weights_path} cannot be read as weights: {e}") from None
    if coef.dtype != np.float32 or intercept.dtype != np.float32:
        raise DistilledFormatError(f"{weights_path} weights are {coef.dtype}/{intercept.dtype}, "
                                   f"expected float32")
    try:
        lab = DistilledLabeller(coef, intercept, meta["vectorizer"], meta["thresholds"],
                                {k: v for k, v in meta.items() if k not in _RESERVED})
    except KeyError as e:
        raise DistilledFormatError(f"{meta_path} lacks {e}") from None
    if meta.get("fingerprint") not in (None, lab.fingerprint):
        raise DistilledFormatError(f"{path} fingerprint {meta.get('fingerprint')} does not match "
                                   f"its contents ({lab.fingerprint})")
    lab.path = path
    return lab


def train(texts: Sequence[str], bits: np.ndarray, path: str | os.PathLike | None, *,
          source: str = "", **hyper: Any) -> DistilledLabeller:
    """Fit one logistic regression per label on hashed word+char n-grams of `texts` against
    `bits` (bool [n, 6] over LABELS, e.g. an LLM judge's labels or world ground truth), save it
    to directory `path` (unless None) and return it. `source` is recorded as where the labels
    came from. Hyper-parameters and defaults: `DEFAULT_HYPER`."""
    from sklearn.linear_model import LogisticRegression

    unknown = set(hyper) - set(DEFAULT_HYPER)
    if unknown:
        raise BadValue(f"unknown hyper-parameters {sorted(unknown)}; valid: {sorted(DEFAULT_HYPER)}")
    h = {**DEFAULT_HYPER, **hyper}
    bits = np.asarray(bits, bool)
    if isinstance(texts, str) or bits.shape != (len(texts), len(LABELS)):
        raise ValueError(f"need bits of shape [len(texts), {len(LABELS)}] = "
                         f"[{len(texts)}, {len(LABELS)}], got {bits.shape}")
    if len(texts) == 0:
        raise ValueError("no training texts")
    vec = _vector_settings(h)
    probe = DistilledLabeller(np.zeros((len(LABELS), 2 * vec["n_features"]), np.float32),
                              np.zeros(len(LABELS), np.float32), vec, [h["threshold"]] * len(LABELS))
    x = probe.features(list(texts))
    coef = np.zeros((len(LABELS), x.shape[1]), np.float32)
    intercept = np.zeros(len(LABELS), np.float32)
    for j in range(len(LABELS)):
        y = bits[:, j]
        if y.all() or not y.any():
            # One class only: a constant answer (a large logit of the right sign).
            intercept[j] = 20.0 if y.all() else -20.0
            continue
        clf = LogisticRegression(C=float(h["C"]), class_weight=h["class_weight"],
                                 max_iter=int(h["max_iter"]), solver="liblinear")
        clf.fit(x, y)
        coef[j] = clf.coef_[0]
        intercept[j] = clf.intercept_[0]
    import sklearn

    meta = {"trained_on": {"segments": len(texts), "positives": {n: int(bits[:, j].sum())
                                                                for j, n in enumerate(LABELS)},
                           "source": source},
            "hyper": {k: (list(v) if isinstance(v, tuple) else v) for k, v in h.items()},
            "sklearn_version": sklearn.__version__}
    lab = DistilledLabeller(coef, intercept, vec, [h["threshold"]] * len(LABELS), meta)
    if path is not None:
        lab.save(path)
    return lab
