"""Standalone parameter files: a model's final weights as an orbax checkpoint plus metadata.

This is the project's own format for a trained LLM (and the other stages' modules): what the
pre-training step writes, what later stages and the Hugging Face converter read. A file is
checked against the metadata its reader expects (scale, vocabulary...) before any array is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from visual_priors.errors import BadFile


class CheckpointMismatch(BadFile):
    """A checkpoint written for another model (scale, vocabulary...): never restored into this one."""


def abstract(tree):
    """Shape/dtype/sharding stand-ins for ``tree``'s arrays: what orbax restores into."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def save_params(path: str | Path, params: Any, metadata: dict | None = None) -> None:
    """Write final parameters (a pure dict) as a standalone checkpoint."""
    path = Path(path).absolute()
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path / "params", params, force=True)
    if metadata is not None:
        (path / "metadata.json").write_text(json.dumps(metadata, indent=1, sort_keys=True))


def load_params(path: str | Path, params_like: Any, expect: dict | None = None) -> Any:
    """Read parameters written by save_params, checking metadata fields given in expect."""
    path = Path(path).absolute()
    if expect:
        meta_file = path / "metadata.json"
        saved = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        diffs = {k: (saved.get(k), v) for k, v in expect.items() if saved.get(k) != v}
        if diffs:
            detail = "; ".join(f"{k}: file has {a!r}, expected {b!r}" for k, (a, b) in diffs.items())
            raise CheckpointMismatch(f"parameters in {path} do not fit this model ({detail})")
    with ocp.StandardCheckpointer() as ckptr:
        return ckptr.restore(path / "params", abstract(params_like))
