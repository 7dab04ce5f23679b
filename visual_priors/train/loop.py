"""The one training loop behind pretrain, align, SFT and the local encoders.

What differs between those stages is only the loss, the data and which parameters train (regex
freeze rules). The loop splits the model into trainable and frozen state, jits a pure step over
the device mesh with the trainable state and optimizer state donated, checkpoints with orbax
(parameters, optimizer state and data-iterator state together) and resumes from the newest
checkpoint it finds in its work directory. Everything around the step (checkpoints, metrics,
loss checks, stop signals) is train/session.py's, shared with packed training.

A process keeps the jitted steps of its latest runs: a run whose model structure, loss,
optimizer settings, step count and placement equal an earlier run's reuses that run's programs
instead of tracing them again, so a worker that adapts one LLM after another compiles once.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from visual_priors.parallel import mesh as mesh_lib
from visual_priors.train import optim
# The settings, summary and errors of every trainer: callers know them as loop.TrainSettings,
# loop.TrainResult, loop.NonFiniteLoss and loop.Preempted.
from visual_priors.train.session import (NonFiniteLoss, Preempted, Session, TrainResult,  # noqa: F401
                                         TrainSettings)
from visual_priors.train.step import LossFn, make_train_step, opt_state_shardings


def run(model: nnx.Module, loss_fn: LossFn, data: Iterator[dict], settings: TrainSettings, *,
        workdir: str | Path, mesh=None, rules=None) -> TrainResult:
    """Train `model` in place as `settings` say and return a summary.

    loss_fn(model, batch) -> (scalar loss, aux) where aux["tokens"] counts the tokens the step
    trained on. `data` yields dicts of numpy arrays; if it has get_state/set_state, its position
    is checkpointed so a resumed run sees exactly the batches it would have seen.

    A loss whose aux also holds ``flops`` (the step's training FLOPs, for stages whose cost per
    token varies: image and text-only batches) is measured by that instead of
    `settings.flops_per_token`. Checkpoints in `workdir` may come from another mesh: the state is
    resharded onto this run's `mesh` (default: data parallel over every device).

    A `loss_fn` that compares equal to an earlier run's (the same function, or equal frozen
    dataclasses) lets this run reuse that run's compiled step; a closure made for each run does not.
    """
    mesh = mesh if mesh is not None else mesh_lib.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    rules = rules if rules is not None else mesh_lib.DEFAULT_RULES
    mesh_lib.shard_model(model, mesh, rules)

    graphdef, trainable, frozen = optim.split(model, settings.freeze_rules)
    trainable, frozen = _place(trainable, mesh), _place(frozen, mesh)
    compiled = _compiled(graphdef, loss_fn, settings, trainable, mesh, rules)
    opt_state = compiled.init(trainable)
    step_fn, lr_schedule = compiled.step, compiled.lr_schedule
    batch_sharding = mesh_lib.batch_sharding(mesh, rules)

    with Session(settings, [workdir], [data], [settings.desc], lr_schedule=lr_schedule,
                 mesh_shape=dict(mesh.shape)) as session:
        start, (opt_state,) = session.resume([trainable], [opt_state])
        # Inside the mesh context, activation sharding constraints take effect when the step is traced.
        with mesh_lib.use_mesh(mesh, rules):
            # Losses are fetched where the session settles (logging points, checkpoints, a stop, the
            # end), not after every step, so the host readies the next batches while the device
            # computes; every loss is still checked before anything after it is saved.
            pending = []  # (loss, aux) of the steps since the last settling, still on the device
            for step in range(start + 1, settings.steps + 1):
                batch = mesh_lib.global_batch(next(data), batch_sharding)
                trainable, opt_state, loss, aux = step_fn(trainable, opt_state, frozen, batch)
                pending.append((loss, aux))
                if session.reached(step):
                    # One call of one step of one run each: [1, 1] leading axes.
                    fetched = [jax.tree.map(lambda x: np.asarray(x)[None, None], p)
                               for p in jax.device_get(pending)]
                    session.settle(fetched, lambda k: (trainable, opt_state))
                    pending = []
    nnx.update(model, trainable)
    return session.results()[0]


class _Compiled:
    """A run's optimizer and its jitted programs: the optimizer state's initialiser and the step."""

    def __init__(self, graphdef, loss_fn, settings: TrainSettings, trainable, mesh):
        tx, self.lr_schedule = optim.adamw(settings.optim_cfg, settings.steps)
        # The optimizer state is created in the parameters' shardings, so the step compiles
        # once instead of again when its outputs come back sharded differently.
        opt_shardings = opt_state_shardings(tx, trainable, mesh)
        self.init = jax.jit(tx.init, out_shardings=opt_shardings)
        self.step = jax.jit(make_train_step(graphdef, loss_fn, tx, settings.accum_steps), donate_argnums=(0, 1),
                            out_shardings=(_shardings(trainable), opt_shardings, None, None))


# The jitted programs of the latest runs of this process, by everything their tracing depends on
# besides the arguments' shapes: a worker that adapts LLM after LLM of one shape traces (and
# reads from the compilation cache) each program once instead of once a run. A loss made afresh
# for each run (a closure) never matches; module functions and frozen dataclasses do.
_KEEP_COMPILED = 8
_compiled_runs: OrderedDict = OrderedDict()


def _compiled(graphdef, loss_fn, settings: TrainSettings, trainable, mesh, rules) -> _Compiled:
    shardings = _shardings(trainable)
    key = (graphdef, loss_fn, json.dumps(settings.optim_cfg.to_dict(), sort_keys=True), settings.steps,
           settings.accum_steps, mesh, mesh_lib.normalize_rules(rules), jax.tree.structure(shardings),
           tuple(jax.tree.leaves(shardings)))
    try:
        hash(key)
    except TypeError:  # a loss that cannot be a key: compiled for this run alone
        return _Compiled(graphdef, loss_fn, settings, trainable, mesh)
    if key not in _compiled_runs:
        _compiled_runs[key] = _Compiled(graphdef, loss_fn, settings, trainable, mesh)
        while len(_compiled_runs) > _KEEP_COMPILED:
            _compiled_runs.popitem(last=False)
    _compiled_runs.move_to_end(key)
    return _compiled_runs[key]


def _shardings(tree):
    return jax.tree.map(lambda x: x.sharding, tree)


def _place(tree, mesh):
    """Commit every leaf to a mesh sharding (replicated unless already laid out), so the
    step's input shardings are the same on the first call as on every later one."""
    def put(x):
        sharding = getattr(x, "sharding", None)
        if not isinstance(sharding, jax.sharding.NamedSharding):
            sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        return jax.device_put(x, sharding)

    return jax.tree.map(put, tree)
