"""What the multimodal stages can be asked for: vision encoders by name and SFT sets.

Encoders. A name in ``cfg.encoders`` is either one of the local objectives below, trained on
world images, or a key of ``cfg.imported_encoders`` (a public checkpoint the user points at).

SFT sets. The SFT-data ablation (the paper's Fig. 7) removes part of the perception-oriented or
of the reasoning-oriented vision-language examples from stage 2 and keeps the rest. A set name
is ``full``, ``perception<P>`` or ``reasoning<R>`` (P, R in percent kept: 100, 50, 0 in the
paper), optionally followed by ``+blind``: the blind-tuning recipe of the paper's appendix K,
a first pass of stage 2 over the same examples with every image withheld, then the normal pass.

Perception and reasoning labels of world instructions follow the paper's two clusters: an
image example from a General or OCR & Chart family, a caption or an MLE-Bench question is
perception-oriented; one from a Knowledge or Vision-Centric family is reasoning-oriented.
Text-only examples are neither and are always kept (the paper filters vision-language data).
"""

from __future__ import annotations

import dataclasses
import re

from visual_priors.errors import BadValue

# name -> (what it is, the paper's encoder it stands in for)
LOCAL_ENCODERS = {
    "contrastive": ("ViT trained with an image-caption contrastive loss on world images", "MetaCLIP"),
    "mae": ("ViT trained by masked autoencoding of world images", "MAE"),
    "supervised": ("ViT trained to classify the kind of the object in world images",
                   "a supervised backbone"),
}

PERCEPTION_CATEGORIES = ("general", "ocr_chart")
REASONING_CATEGORIES = ("knowledge", "vision_centric")
PERCEPTION_SOURCES = ("caption", "mle")
SFT_LABELS = ("perception", "reasoning")
_SET = re.compile(r"^(full|perception(\d+)|reasoning(\d+))(\+blind)?$")


@dataclasses.dataclass(frozen=True)
class SFTSet:
    name: str
    keep: dict  # label -> fraction of that label's image examples kept
    blind: bool

    def spec(self) -> dict:
        return {"name": self.name, "keep": dict(self.keep), "blind": self.blind}


def parse_sft_set(name: str) -> SFTSet:
    m = _SET.match(str(name))
    if not m:
        raise BadValue(f"unknown SFT set {name!r}; valid: full, perception<P>, reasoning<R> "
                       "(P, R = percent kept, 0..100), each optionally +blind")
    keep = {label: 1.0 for label in SFT_LABELS}
    for label, pct in (("perception", m.group(2)), ("reasoning", m.group(3))):
        if pct is not None:
            if not 0 <= int(pct) <= 100:
                raise BadValue(f"SFT set {name!r}: {label} share {pct}% is outside 0..100")
            keep[label] = int(pct) / 100.0
    return SFTSet(str(name), keep, bool(m.group(4)))


def sft_label(category: str | None, source: str, has_image: bool) -> str | None:
    """perception, reasoning, or None (text-only or unlabelled) for one world SFT example."""
    if not has_image:
        return None
    if source in PERCEPTION_SOURCES or category in PERCEPTION_CATEGORIES:
        return "perception"
    if category in REASONING_CATEGORIES:
        return "reasoning"
    return None


def validate_encoders(names, imported, *, require_paths: bool = True) -> None:
    """Every name is a local objective or a declared imported encoder (with a path, unless
    `require_paths` is off: a study is planned before its checkpoints are at hand)."""
    if not names:
        raise BadValue("cfg.encoders is empty: name at least one encoder")
    for name in names:
        if name in LOCAL_ENCODERS:
            continue
        if name not in imported:
            raise BadValue(f"unknown encoder {name!r}; local: {', '.join(LOCAL_ENCODERS)}; "
                           f"imported: {', '.join(imported) or 'none declared'} "
                           "(declare one with --set imported_encoders.<name>.path=...)")
        if require_paths and not imported[name].get("path"):
            raise BadValue(f"imported encoder {name!r} has no checkpoint path; set "
                           f"imported_encoders.{name}.path to its directory or file")
