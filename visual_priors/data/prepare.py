"""Sources -> tokenizer -> segments -> labels, for commands that work on data outside a study.

The suite runs the same functions as content-hashed steps; this module caches by the same
content keys under one directory, so `visual-priors data label` and `data mixture` reuse
what they built before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visual_priors.data import segments as segments_lib
from visual_priors.data import sources as sources_lib
from visual_priors.data import tokenizer as tokenizer_lib
from visual_priors.data.labelling import report


def resolve(names: Sequence[str], corpora: dict[str, dict] | None) -> list[sources_lib.AnySource]:
    return [sources_lib.resolve_source(n, corpora) for n in names]


def prepare_segments(sources: Sequence[sources_lib.AnySource], world: Any, *, cache_dir: str | Path,
                     vocab_size: int, sample_chars: int, segment_tokens: int, world_tokens: int,
                     corpus_tokens: int | None = None, split: str = "train", workers: int = 0,
                     progress: bool = True) -> tuple[tokenizer_lib.Tokenizer, dict[str, segments_lib.SegmentSet]]:
    """The tokenizer trained on all the sources and every source's segments of `split`: world
    sources up to `world_tokens` (they are endless), real corpora whole unless `corpus_tokens`."""
    cache_dir = Path(cache_dir)
    tok = tokenizer_lib.build_tokenizer(sources, world, vocab_size, cache_dir / "tokenizers",
                                        sample_chars=sample_chars)
    sets = {}
    for source in sources:
        budget = world_tokens if isinstance(source, sources_lib.Source) else corpus_tokens
        sets[source.name] = segments_lib.build_segments(
            source, world, tok, cache_dir / "segments", split=split, segment_tokens=segment_tokens,
            n_tokens=budget, workers=workers, progress=progress)
    return tok, sets


def label_sets(sets: dict[str, segments_lib.SegmentSet], labeller: Any | Mapping[str, Any],
               tok: tokenizer_lib.Tokenizer, *, progress: bool = True) -> dict[str, np.ndarray]:
    """Every set's labels by `labeller`: one for all, or a mapping source name -> labeller."""
    pick = labeller.__getitem__ if isinstance(labeller, Mapping) else (lambda _: labeller)
    return {name: segments_lib.label_segments(s, pick(name), tok, progress=progress)
            for name, s in sets.items()}


def distillation_examples(sets: dict[str, segments_lib.SegmentSet], tok: tokenizer_lib.Tokenizer,
                          labels: dict[str, np.ndarray] | None = None) -> tuple[list[str], list[np.ndarray]]:
    """(texts, label bits per set) a distilled labeller learns from: the segments whose truth the
    world knows, or with a teacher's `labels` every segment."""
    texts, bits = [], []
    for name, s in sets.items():
        if labels is None:
            idx = np.flatnonzero(s.truth_known)
            texts += s.texts(tok, idx)
            bits.append(s.truth[idx])
        else:
            texts += s.texts(tok)
            bits.append(labels[name])
    return texts, bits


def label_report(sets: dict[str, segments_lib.SegmentSet],
                 labels: dict[str, np.ndarray]) -> dict[str, Any]:
    """Label rates per source (table 4's layout) and, over segments whose truth the world knows,
    precision and recall per label, per source and pooled."""
    out: dict[str, Any] = {"rates": report.label_rates(labels), "precision_recall": {}}
    pred, true = [], []
    for name, s in sets.items():
        known = s.truth_known
        if known.any():
            out["precision_recall"][name] = report.precision_recall(labels[name][known], s.truth[known])
            pred.append(labels[name][known])
            true.append(s.truth[known])
    if pred:
        out["precision_recall_all"] = report.precision_recall(np.concatenate(pred), np.concatenate(true))
    return out
