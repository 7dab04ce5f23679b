"""Pre-training several same-shape LLMs together (train/packed.py), for the executor.

Steps that differ only in their data mixture (a category sweep at one scale, say) share one
compiled program; each still writes exactly what `steps.run_pretrain` writes into its own output
directory, and checkpoints in its own work directory in the single-run layout.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import jax
from flax import nnx

from visual_priors.parallel import mesh as mesh_lib
from visual_priors.suite import steps as steps_lib
from visual_priors.suite.step_io import Locate
from visual_priors.train import packed

log = logging.getLogger(__name__)

# What the runs of a group share: model, budget, schedule, seed (one initialisation serves all),
# data epochs, and the run options of one program (accumulation, remat, checkpointing, logging,
# mesh). Left out: the mixture, which packing varies; the sharding rules (one device);
# perplexity_windows, evaluated per run after training.
PACK_FIELDS = ("scale", "model", "tokens", "seq_len", "batch_size", "optim", "seed", "max_epochs")
PACK_OPTIONS = ("grad_accum", "remat", "ckpt_every", "keep_every", "log_every", "mesh")


def pack_key(step) -> tuple | None:
    """Pretrain steps with equal keys can be trained together; None for a step that cannot be
    packed (another kind, a zero-token budget, or a mesh over more than one device)."""
    if step.kind != "pretrain":
        return None
    f = step.fields
    if not f["tokens"] or not _one_device(step.options["mesh"]):
        return None
    return (tuple(json.dumps(f.get(name), sort_keys=True) for name in PACK_FIELDS)
            + tuple(json.dumps(step.options.get(name), sort_keys=True) for name in PACK_OPTIONS))


def _one_device(mesh_cfg) -> bool:
    if jax.process_count() != 1:
        return False
    try:
        return mesh_lib.make_mesh(mesh_cfg).size == 1
    except ValueError:  # a mesh this host cannot make: left to run_pretrain to report
        return False


def run_pretrain_packed(steps: list, outs: list[Path], locate: Locate) -> list[dict]:
    """Pre-train `steps` (equal pack keys) together; for each, write into its `out` what
    `steps.run_pretrain` writes and return its result with "packed": the group's size.

    Runs whose checkpoints stopped at different steps (one was resumed alone meanwhile) cannot
    advance together: they are trained one by one instead, each from its own checkpoint, with
    "packed": 1."""
    _check_group(steps, outs)
    cfgs = [steps_lib.pretrain_config(s, locate) for s in steps]
    first = steps_lib.new_llm(cfgs[0], steps[0], mesh_lib.make_mesh(steps[0].options["mesh"]))
    # One seed and one shape: every run starts from the initialisation it would have alone.
    models = [first] + [nnx.clone(first) for _ in steps[1:]]
    datas = [steps_lib.pretrain_data(s, locate) for s in steps]
    try:
        results = packed.run(models, steps_lib.pretrain_loss, datas, steps_lib.pretrain_options(steps[0], cfgs[0]),
                             workdirs=[Path(o) / "work" for o in outs],
                             names=[f"{s.name} ({d.mixture.name})" for s, d in zip(steps, datas)])
    except packed.UnevenResume as err:
        log.warning("%s", err)
        return [{**steps_lib.run_pretrain(s, Path(o), locate), "packed": 1} for s, o in zip(steps, outs)]
    return [{**steps_lib.finish_pretrain(s, Path(o), locate, m, cfg, d, r), "packed": len(steps)}
            for s, o, m, cfg, d, r in zip(steps, outs, models, cfgs, datas, results)]


def _check_group(steps: list, outs: list) -> None:
    if not steps or len(steps) != len(outs):
        raise ValueError(f"need one output directory per step, got {len(steps)} steps and {len(outs)}")
    keys = [pack_key(s) for s in steps]
    if keys[0] is None or any(k != keys[0] for k in keys):
        raise ValueError("steps packed together must be pretrain steps with equal pack keys: "
                         + ", ".join(s.name for s in steps))
