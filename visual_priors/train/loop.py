"""The one training loop behind pretrain, align, SFT and the local encoders.

What differs between those stages is only the loss, the data and which parameters train (regex
freeze rules). The loop splits the model into trainable and frozen state, jits a pure step over
the device mesh with the trainable state and optimizer state donated, checkpoints with orbax
(parameters, optimizer state and data-iterator state together) and resumes from the newest
checkpoint it finds in its work directory. Everything around the step (checkpoints, metrics,
loss checks, stop signals) is train/session.py's, shared with packed training.
"""

from __future__ import annotations

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
from visual_priors.train.step import LossFn, init_opt_state, make_train_step


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
    """
    mesh = mesh if mesh is not None else mesh_lib.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    rules = rules if rules is not None else mesh_lib.DEFAULT_RULES
    mesh_lib.shard_model(model, mesh, rules)

    graphdef, trainable, frozen = optim.split(model, settings.freeze_rules)
    tx, lr_schedule = optim.adamw(settings.optim_cfg, settings.steps)
    trainable, frozen = _place(trainable, mesh), _place(frozen, mesh)
    # Created in the parameters' shardings, so the step compiles once instead of again when its
    # outputs come back sharded differently.
    opt_state = init_opt_state(tx, trainable, mesh)
    batch_sharding = mesh_lib.batch_sharding(mesh, rules)

    train_step = make_train_step(graphdef, loss_fn, tx, settings.accum_steps)
    state_shardings = (_shardings(trainable), _shardings(opt_state))
    step_fn = jax.jit(train_step, donate_argnums=(0, 1),
                      out_shardings=(*state_shardings, None, None))

    with Session(settings, [workdir], [data], [settings.desc], lr_schedule=lr_schedule,
                 mesh_shape=dict(mesh.shape)) as session:
        start, (opt_state,) = session.resume([trainable], [opt_state])
        # Inside the mesh context, activation sharding constraints take effect when the step is traced.
        with mesh_lib.use_mesh(mesh, rules):
            for step in range(start + 1, settings.steps + 1):
                batch = mesh_lib.global_batch(next(data), batch_sharding)
                trainable, opt_state, loss, aux = step_fn(trainable, opt_state, frozen, batch)
                session.reached(step)
                # Every step is checked as it ends: one call of one step of one run.
                one = jax.tree.map(lambda x: np.asarray(x)[None, None], (loss, aux))
                session.settle([one], lambda k: (trainable, opt_state))
    nnx.update(model, trainable)
    return session.results()[0]


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
