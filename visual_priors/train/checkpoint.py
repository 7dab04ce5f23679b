"""Orbax checkpoints of one training run: trainable parameters, optimizer state, data state.

A checkpoint also carries metadata (what model it belongs to); restoring onto a model with
different metadata fails with a message naming the mismatched fields. If the newest checkpoint
cannot be read, the previous one is used with a warning, so a crash during a save costs at most
one checkpoint interval.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class CheckpointMismatch(ValueError):
    pass


class Checkpointer:
    def __init__(self, directory: str | Path, *, keep: int = 2, metadata: dict | None = None,
                 async_save: bool = True):
        self.directory = Path(directory).absolute()
        self.metadata = dict(metadata or {})
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, params: Any, opt_leaves: list, data_state: dict | None,
             progress: dict | None = None, *, force: bool = False) -> None:
        """`progress` holds the run's running totals (tokens, first loss) so a resumed run reports
        the whole run, not only what it did after the restart."""
        items = dict(
            params=ocp.args.StandardSave(params),
            opt=ocp.args.StandardSave(opt_leaves),
            meta=ocp.args.JsonSave({"metadata": self.metadata, "data": data_state, "step": step,
                                    "progress": progress or {}}),
        )
        self.manager.save(step, args=ocp.args.Composite(**items), force=force)

    def restore_latest(self, params_like: Any, opt_like: list) -> tuple[int, Any, list, dict | None, dict] | None:
        """(step, params, opt_leaves, data_state, progress) of the newest readable checkpoint, or None."""
        steps = sorted(self.manager.all_steps(), reverse=True)
        for step in steps:
            try:
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    params=ocp.args.StandardRestore(_abstract(params_like)),
                    opt=ocp.args.StandardRestore(_abstract(opt_like)),
                    meta=ocp.args.JsonRestore(),
                ))
            except CheckpointMismatch:
                raise
            except Exception as err:  # a partial or corrupt save: fall back to an older one
                log.warning("checkpoint at step %d in %s is unreadable (%s); trying an older one",
                            step, self.directory, err)
                continue
            self._check_metadata(restored["meta"]["metadata"])
            meta = restored["meta"]
            return step, restored["params"], restored["opt"], meta["data"], meta.get("progress", {})
        return None

    def _check_metadata(self, saved: dict) -> None:
        diffs = {k: (saved.get(k), v) for k, v in self.metadata.items() if saved.get(k) != v}
        if diffs:
            detail = "; ".join(f"{k}: checkpoint has {a!r}, run expects {b!r}" for k, (a, b) in diffs.items())
            raise CheckpointMismatch(f"checkpoint in {self.directory} belongs to another run ({detail})")

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def _abstract(tree):
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
        return ckptr.restore(path / "params", _abstract(params_like))
