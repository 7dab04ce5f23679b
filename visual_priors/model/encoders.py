"""Frozen vision encoders in one saved form, whatever made them.

A local encoder (trained on world images) and an imported public checkpoint (Hugging Face ViT
families, torchvision-format CNNs) are both saved as the project's parameter files with metadata
``{"kind": "vit" | "cnn", "config": ...}``; ``load_frozen`` rebuilds either, optionally reading
features from another layer. An imported checkpoint is identified by ``fingerprint``: a hash
of its config and of every weight file's size, head and tail, cheap enough to compute at
planning time on multi-gigabyte files yet changed by any re-download of other weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import ml_collections
from flax import nnx

from visual_priors.data import files as files_lib
from visual_priors.errors import BadValue, MissingFile
from visual_priors.model import vision
from visual_priors.model.params_io import load_params, save_params

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def fingerprint(path: str | Path) -> str:
    path = Path(path).expanduser()
    if not path.exists():
        raise MissingFile(f"encoder checkpoint {path} does not exist")
    files = sorted(p for p in (path.rglob("*") if path.is_dir() else [path]) if p.is_file()
                   and (p.suffix in WEIGHT_SUFFIXES or p.name.endswith(".json")))
    if not files:
        raise MissingFile(f"no weights ({', '.join(WEIGHT_SUFFIXES)}) under {path}")
    return files_lib.fingerprint(path, files)


def save_frozen(module, path: str | Path, kind: str, config, **metadata) -> None:
    config = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
    save_params(path, nnx.state(module, nnx.Param).to_pure_dict(),
                {"kind": kind, "config": config, **metadata})


def metadata(path: str | Path) -> dict:
    meta_file = Path(path) / "metadata.json"
    if not meta_file.is_file():
        raise MissingFile(f"{path} holds no encoder (no metadata.json)")
    return json.loads(meta_file.read_text())


def build(kind: str, config: dict):
    """An encoder module of ``kind`` with random parameters (to be overwritten)."""
    cfg = ml_collections.ConfigDict(config)
    if kind == "vit":
        return vision.ViT(cfg, rngs=nnx.Rngs(0))
    if kind == "cnn":
        from visual_priors.model import cnn
        return cnn.build(cfg, rngs=nnx.Rngs(0))
    raise BadValue(f"unknown encoder kind {kind!r}; valid: vit, cnn")


def load_frozen(path: str | Path, feature_layer: int | None = None):
    """The encoder saved at ``path``; ``feature_layer`` overrides the layer its tokens come from."""
    meta = metadata(path)
    config = dict(meta["config"])
    if feature_layer is not None:
        config["feature_layer"] = int(feature_layer)
    module = build(meta["kind"], config)
    state = nnx.state(module, nnx.Param)
    nnx.replace_by_pure_dict(state, load_params(path, state.to_pure_dict(), expect={"kind": meta["kind"]}))
    nnx.update(module, state)
    return module


def import_encoder(spec: dict, out: str | Path) -> dict:
    """Convert the public checkpoint ``spec`` ({"path", "arch"}) into ``out``; its metadata."""
    src = Path(spec["path"]).expanduser()
    if spec.get("arch"):
        from visual_priors.model.convert import torchvision_cnn
        torchvision_cnn.import_checkpoint(src, spec["arch"], out)
    else:
        from visual_priors.model.convert import hf_vision
        hf_vision.import_checkpoint(src, out)
    return metadata(out)
