"""Packed training: K same-shape models trained together in one compiled program.

Studies such as a category sweep pre-train many small LLMs that differ only in their data. Here
the per-model train step (train/step.py) is mapped over a leading run axis of the trainable
state, the optimizer state and the batches ([K, B, L]), so that each run gets exactly the updates
it would get alone, from its own data, while the runs share one compile, one dispatch per step
and the host's round trips. `vmap_runs` sets how many runs one vectorised call takes, the rest
being looped over inside the same program: by default all of them on an accelerator and one on
a CPU, where vectorising tiny models buys nothing and spills their activations out of cache
(docs/benchmarks.md, "Packed training").

One call of the program trains several steps (up to the next logging point), and losses are
fetched from the device in bulk at logging, checkpoint and stop points, checked before anything
after them is saved. Every run keeps its own metrics.jsonl and its own checkpoints, in exactly
`loop.run`'s layout in its own work directory, so a stopped run resumes whether it is trained
packed again or alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from visual_priors.train import optim
# UnevenResume: callers catch it as packed.UnevenResume.
from visual_priors.train.session import Session, TrainResult, TrainSettings, UnevenResume  # noqa: F401
from visual_priors.train.step import LossFn, make_train_step

# What loop.run records for a one-device mesh: a packed run resumed alone sees the same layout.
ONE_DEVICE = {"data": 1, "fsdp": 1, "tensor": 1}


def run(models: Sequence[nnx.Module], loss_fn: LossFn, datas: Sequence[Iterator[dict]], settings: TrainSettings,
        *, workdirs: Sequence[str | Path], names: Sequence[str] | None = None, vmap_runs: int | None = None,
        steps_per_call: int | None = None) -> list[TrainResult]:
    """Train each of `models` in place on its own `datas[k]` as `settings` say, together on one
    device; one TrainResult per run, as `loop.run` would return it.

    The models must have the same structure and shapes (their values may differ). `loss_fn` is
    `loop.run`'s; `names` name the runs in errors (default: their work directories). A run whose
    loss is not finite stops the group with NonFiniteLoss naming it; runs whose newest
    checkpoints are at different steps raise UnevenResume before training (each then resumes
    alone with `loop.run`).

    One call of the compiled program takes up to `steps_per_call` steps (default:
    `settings.log_every`), never past a logging point, a checkpoint or the end; a stop signal is
    acted on after the call. Each run's metrics record its own loss, tokens, tokens/s and TFLOP/s;
    `mfu` is the whole group's use of the device.
    """
    n = len(models)
    if not n or len(datas) != n or len(workdirs) != n or (names is not None and len(names) != n):
        raise ValueError(f"need one data iterator and work directory per model, got {n} models, "
                         f"{len(datas)} iterators, {len(workdirs)} work directories")
    names = list(names) if names is not None else [str(Path(w)) for w in workdirs]
    tx, lr_schedule = optim.adamw(settings.optim_cfg, settings.steps)
    graphdef, trainables, frozens = _split(models, settings.freeze_rules)
    init = jax.jit(tx.init)
    opt_states = [init(t) for t in trainables]
    with Session(settings, workdirs, datas, names, lr_schedule=lr_schedule, mesh_shape=ONE_DEVICE) as session:
        step, opt_states = session.resume(trainables, opt_states)
        device = jax.devices()[0]
        trainable, opt_state, frozen = (jax.device_put(_stack(x), device)
                                        for x in (trainables, opt_states, frozens))
        train_step = make_train_step(graphdef, loss_fn, tx, settings.accum_steps)
        call = jax.jit(_steps(_packed_step(train_step, n, vmap_runs)), donate_argnums=(0, 1))
        pending = []  # (loss [S, K], aux) of the calls since the last settling, still on the device
        while step < settings.steps:
            length = _call_length(step, settings, steps_per_call or settings.log_every)
            batches = _next_batches(datas, length, device)
            trainable, opt_state, loss, aux = call(trainable, opt_state, frozen, batches)
            pending.append((loss, aux))
            step += length
            if session.reached(step):
                session.settle(jax.device_get(pending), lambda k: (_slice(trainable, k), _slice(opt_state, k)))
                pending = []
    for k, model in enumerate(models):
        nnx.update(model, _slice(trainable, k))
    return session.results()


def _call_length(step: int, settings: TrainSettings, most: int) -> int:
    """Steps of the next call: up to the next logging point, checkpoint or the end, at most `most`."""
    ends = [settings.steps, (step // settings.log_every + 1) * settings.log_every]
    if settings.ckpt_every:
        ends.append((step // settings.ckpt_every + 1) * settings.ckpt_every)
    return max(1, min(min(ends) - step, most))


def _split(models, freeze_rules):
    """(graphdef, trainable states, frozen states) of models that must share one graph and shapes."""
    parts = [optim.split(m, freeze_rules) for m in models]
    graphdef = parts[0][0]
    for k, part in enumerate(parts[1:], 1):
        if part[0] != graphdef or _signature(part[1:]) != _signature(parts[0][1:]):
            raise ValueError(f"model {k} differs in structure or shapes from model 0; packed runs "
                             "must have the same shape")
    return graphdef, [p[1] for p in parts], [p[2] for p in parts]


def _signature(tree) -> tuple:
    return jax.tree.structure(tree), [(x.shape, x.dtype) for x in jax.tree.leaves(tree)]


def _packed_step(train_step, n_runs: int, vmap_runs: int | None):
    """The per-run step over a leading run axis of every argument: vectorised over `vmap_runs`
    runs at a time, looped over the rest inside the program."""
    if vmap_runs is None:
        # On a CPU one tiny run's step already keeps the cores busy, and vectorising K runs only
        # multiplies its working set past the cache (a t1 run's logits are 16 MB at batch 16);
        # an accelerator wants all K in one call.
        vmap_runs = 1 if jax.default_backend() == "cpu" else n_runs
    width = min(vmap_runs, n_runs)
    if width == n_runs:
        return jax.vmap(train_step)

    def step(trainable, opt_state, frozen, batch):
        # One run at a time loops over the plain step: a vmap of one would add size-1 axes that
        # cost the program copies and slower layouts.
        return jax.lax.map(lambda args: train_step(*args), (trainable, opt_state, frozen, batch),
                           batch_size=width if width > 1 else None)
    return step


def _steps(packed_step):
    """`packed_step` over a leading step axis of the batches ([S, K, B, ...]) in one call: XLA
    allocates a call's scratch memory afresh, and on a CPU faulting it in costs nearly as much as
    a tiny run's step itself, so the fewer calls the better."""
    def call(trainable, opt_state, frozen, batches):
        def one(carry, batch):
            trainable, opt_state, loss, aux = packed_step(*carry, frozen, batch)
            return (trainable, opt_state), (loss, aux)

        (trainable, opt_state), (loss, aux) = jax.lax.scan(one, (trainable, opt_state), batches)
        return trainable, opt_state, loss, aux
    return call


def _stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _slice(tree, k: int):
    return jax.tree.map(lambda x: x[k], tree)


def _next_batches(datas, n_steps: int, device) -> dict:
    """The runs' next `n_steps` batches, stacked [step, run, ...] and sent to the device at once."""
    rows = [[next(data) for data in datas] for _ in range(n_steps)]
    return jax.device_put({key: np.stack([[b[key] for b in row] for row in rows]) for key in rows[0][0]},
                          device)
