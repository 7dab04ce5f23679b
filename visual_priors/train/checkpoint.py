"""Orbax checkpoints of one training run: trainable parameters, optimizer state, data state.

A checkpoint also carries metadata (what model it belongs to); restoring onto a model with
different metadata fails with a message naming the mismatched fields. Its layout (the mesh it was
written from) is recorded too but may differ: arrays are restored straight into the shardings of
the state they are restored into, so a run may resume on another mesh shape. If the newest checkpoint
cannot be read, the previous one is used with a warning, so a crash during a save costs at most
one checkpoint interval.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from visual_priors.model.params_io import CheckpointMismatch, abstract

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self, directory: str | Path, *, keep: int = 2, keep_every: int = 0,
                 metadata: dict | None = None, layout: dict | None = None, async_save: bool = True):
        """Keeps the latest `keep` checkpoints, and every step divisible by `keep_every` for good."""
        self.directory = Path(directory).absolute()
        self.metadata = dict(metadata or {})
        self.layout = dict(layout or {})
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, keep_period=keep_every or None, create=True,
            enable_async_checkpointing=async_save)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, params: Any, opt_leaves: list, data_state: dict | None,
             progress: dict | None = None, *, force: bool = False) -> None:
        """`progress` holds the run's running totals (tokens, first loss) so a resumed run reports
        the whole run, not only what it did after the restart."""
        items = dict(
            params=ocp.args.StandardSave(params),
            opt=ocp.args.StandardSave(opt_leaves),
            meta=ocp.args.JsonSave({"metadata": self.metadata, "layout": self.layout, "data": data_state,
                                    "step": step, "progress": progress or {}}),
        )
        self.manager.save(step, args=ocp.args.Composite(**items), force=force)

    def restore_latest(self, params_like: Any, opt_like: list) -> tuple[int, Any, list, dict | None, dict] | None:
        """(step, params, opt_leaves, data_state, progress) of the newest readable checkpoint, or None.

        Metadata is read and checked before any array, so a checkpoint of another model fails
        loudly instead of passing for a corrupt one.
        """
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
                self._check_metadata(meta["metadata"])
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    params=ocp.args.StandardRestore(abstract(params_like)),
                    opt=ocp.args.StandardRestore(abstract(opt_like)),
                ))
            except CheckpointMismatch:
                raise
            except Exception as err:  # a partial or corrupt save: fall back to an older one
                log.warning("checkpoint at step %d in %s is unreadable (%s); trying an older one",
                            step, self.directory, err)
                continue
            if meta.get("layout", {}) != self.layout:
                log.info("checkpoint at step %d was written with layout %s; resharded onto %s",
                         step, meta.get("layout"), self.layout)
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
