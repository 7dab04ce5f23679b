"""Pre-training several same-shape LLMs together (train/packed.py), for the executor.

Steps that differ only in their data mixture or seed (a category sweep at one scale, say) share one
compiled program; each still writes exactly what `steps.run_pretrain` writes into its own output
directory, and checkpoints in its own work directory in the single-run layout.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flax import nnx

from visual_priors.parallel import mesh as mesh_lib
from visual_priors.suite import steps as steps_lib
from visual_priors.suite.step_io import Locate
from visual_priors.train import packed

log = logging.getLogger(__name__)

def run_pretrain_packed(steps: list, outs: list[Path], locate: Locate) -> list[dict]:
    """Pre-train `steps` (equal pack keys) together; for each, write into its `out` what
    `steps.run_pretrain` writes and return its result with "packed": the group's size.

    Runs whose checkpoints stopped at different steps (one was resumed alone meanwhile) cannot
    advance together: they are trained one by one instead, each from its own checkpoint, with
    "packed": 1."""
    _check_group(steps, outs)
    cfgs = [steps_lib.pretrain_config(s, locate) for s in steps]
    mesh = mesh_lib.make_mesh(steps[0].options["mesh"])
    # Every run starts from the initialisation it would have alone (its own seed); runs that
    # share a seed share one initialisation, cloned.
    models, first_of_seed = [], {}
    for step, cfg in zip(steps, cfgs):
        seed = step.unit.seed
        if seed in first_of_seed:
            models.append(nnx.clone(first_of_seed[seed]))
        else:
            first_of_seed[seed] = steps_lib.new_llm(cfg, step, mesh)
            models.append(first_of_seed[seed])
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
    keys = [s.unit.pack_key(s) for s in steps]
    if keys[0] is None or any(k != keys[0] for k in keys):
        raise ValueError("steps packed together must be pretrain steps with equal pack keys: "
                         + ", ".join(s.name for s in steps))
