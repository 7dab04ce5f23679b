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

import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from visual_priors.train import flops as flops_lib, loop, optim
from visual_priors.train.checkpoint import Checkpointer
from visual_priors.train.metrics import MetricsWriter
from visual_priors.train.step import LossFn, make_train_step

log = logging.getLogger(__name__)

# What loop.run records for a one-device mesh: a packed run resumed alone sees the same layout.
ONE_DEVICE = {"data": 1, "fsdp": 1, "tensor": 1}


class UnevenResume(RuntimeError):
    """The runs' newest checkpoints are at different steps, so they cannot advance together."""


def run(models: Sequence[nnx.Module], loss_fn: LossFn, datas: Sequence[Iterator[dict]], *, steps: int,
        optim_cfg, workdirs: Sequence[str | Path], names: Sequence[str] | None = None,
        freeze_rules=optim.ALL_TRAINABLE, ckpt_every: int = 0, keep: int = 2, keep_every: int = 0,
        log_every: int = 10, desc: str = "packed", metadata: dict | None = None,
        flops_per_token: float | None = None, peak_flops: float | None = None, accum_steps: int = 1,
        tensorboard: bool = True, progress: bool = True, vmap_runs: int | None = None,
        steps_per_call: int | None = None) -> list[loop.TrainResult]:
    """Train each of `models` in place on its own `datas[k]` for `steps` steps, together on one
    device; one TrainResult per run, as `loop.run` would return it.

    The models must have the same structure and shapes (their values may differ). Arguments are
    `loop.run`'s, per run where plural; `names` name the runs in errors (default: their work
    directories). A run whose loss is not finite stops the group with NonFiniteLoss naming it;
    runs whose newest checkpoints are at different steps raise UnevenResume before training
    (each then resumes alone with `loop.run`).

    One call of the compiled program takes up to `steps_per_call` steps (default: `log_every`),
    never past a logging point, a checkpoint or the end; a stop signal is acted on after the
    call. Each run's metrics record its own loss, tokens, tokens/s and TFLOP/s; `mfu` is the
    whole group's use of the device.
    """
    n = len(models)
    if not n or len(datas) != n or len(workdirs) != n or (names is not None and len(names) != n):
        raise ValueError(f"need one data iterator and work directory per model, got {n} models, "
                         f"{len(datas)} iterators, {len(workdirs)} work directories")
    workdirs = [Path(w) for w in workdirs]
    for w in workdirs:
        w.mkdir(parents=True, exist_ok=True)
    names = list(names) if names is not None else [str(w) for w in workdirs]
    tx, lr_schedule = optim.adamw(optim_cfg, steps)
    graphdef, trainables, frozens = _split(models, freeze_rules)
    init = jax.jit(tx.init)
    opt_states = [init(t) for t in trainables]
    ckpts = [loop.open_checkpoints(w, ONE_DEVICE, keep=keep, keep_every=keep_every, metadata=metadata)
             for w in workdirs] if ckpt_every else []
    runs = [_Run(name, w, data, tensorboard) for name, w, data in zip(names, workdirs, datas)]
    stop_requested, restore_handlers = loop.stop_signals()
    try:
        start = _restore(runs, ckpts, trainables, opt_states)
        device = jax.devices()[0]
        trainable, opt_state, frozen = (jax.device_put(_stack(x), device) for x in (trainables, opt_states, frozens))
        train_step = make_train_step(graphdef, loss_fn, tx, accum_steps)
        call = jax.jit(_steps(_packed_step(train_step, n, vmap_runs)), donate_argnums=(0, 1))
        meter = _Meter(flops_per_token, peak_flops)
        bar = tqdm(total=steps, initial=start, desc=f"{desc} x{n}", disable=not progress, leave=False,
                   dynamic_ncols=True)
        step, accounted, pending = start, start, []  # pending: (loss [S, K], aux) not yet fetched
        try:
            while step < steps:
                length = _call_length(step, steps, log_every, ckpt_every if ckpts else 0,
                                      steps_per_call or log_every)
                batches = _next_batches(runs, length, device)
                trainable, opt_state, loss, aux = call(trainable, opt_state, frozen, batches)
                pending.append((loss, aux))
                step += length
                bar.update(length)
                log_now = step % log_every == 0 or step == steps
                save_now = bool(ckpts) and step % ckpt_every == 0 and step < steps
                if not (log_now or save_now or stop_requested):
                    continue
                meter.account(runs, jax.device_get(pending), accounted + 1)
                accounted, pending = step, []
                if log_now:
                    meter.log(runs, step, float(lr_schedule(step - 1)), bar)
                if save_now or stop_requested:
                    _save(runs, ckpts, step, trainable, opt_state, force=bool(stop_requested))
                if stop_requested:
                    raise loop.preempted(desc, stop_requested, step)
        finally:
            bar.close()
    finally:
        for r in runs:
            r.writer.close()
        for c in ckpts:
            c.close()
        restore_handlers()
    for k, model in enumerate(models):
        nnx.update(model, _slice(trainable, k))
    elapsed = time.perf_counter() - meter.t_start
    return [r.result(steps, elapsed, start or None) for r in runs]


def _call_length(step: int, steps: int, log_every: int, ckpt_every: int, most: int) -> int:
    """Steps of the next call: up to the next logging point, checkpoint or the end, at most `most`."""
    ends = [steps, (step // log_every + 1) * log_every]
    if ckpt_every:
        ends.append((step // ckpt_every + 1) * ckpt_every)
    return max(1, min(min(ends) - step, most))


def _split(models, freeze_rules):
    """(graphdef, trainable states, frozen states) of models that must share one graph and shapes."""
    parts = [nnx.split(m, optim.trainable_filter(freeze_rules), ...) for m in models]
    graphdef = parts[0][0]
    if not jax.tree.leaves(parts[0][1]):
        raise ValueError(f"freeze rules {list(freeze_rules)} leave nothing to train")
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


def _restore(runs, ckpts, trainables, opt_states) -> int:
    """Resume every run from its newest checkpoint (in place); the step they resume from."""
    restored = [loop.restore_checkpoint(c, t, o, r.data) for r, c, t, o in zip(runs, ckpts, trainables, opt_states)]
    starts = [0 if x is None else x[0] for x in restored] or [0]
    if len(set(starts)) > 1:
        detail = ", ".join(f"{r.name} at {s}" for r, s in zip(runs, starts))
        raise UnevenResume(f"packed runs resume from different steps ({detail}); train them one by one")
    for k, x in enumerate(restored):
        if x is not None:
            opt_states[k] = x[1]
            runs[k].resume(x[2])
    if starts[0]:
        log.info("%d packed runs resumed from step %d", len(runs), starts[0])
    return starts[0]


def _save(runs, ckpts: list[Checkpointer], step: int, trainable, opt_state, *, force: bool) -> None:
    for k, (r, ckpt) in enumerate(zip(runs, ckpts)):
        loop.save_checkpoint(ckpt, step, _slice(trainable, k), _slice(opt_state, k), r.data, r.totals(),
                             force=force)


def _stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _slice(tree, k: int):
    return jax.tree.map(lambda x: x[k], tree)


def _next_batches(runs, n_steps: int, device) -> dict:
    """The runs' next `n_steps` batches, stacked [step, run, ...] and sent to the device at once."""
    rows = [[next(r.data) for r in runs] for _ in range(n_steps)]
    return jax.device_put({key: np.stack([[b[key] for b in row] for row in rows]) for key in rows[0][0]},
                          device)


class _Run:
    """One run's running totals, losses and metrics file."""

    def __init__(self, name: str, workdir: Path, data, tensorboard: bool):
        self.name, self.workdir, self.data = name, workdir, data
        self.writer = MetricsWriter(workdir / "metrics.jsonl", tensorboard=tensorboard)
        self.losses: list[float] = []
        self.tokens, self.first_loss, self.flops = 0, None, 0.0
        self.tokens_before, self.tokens_window, self.flops_window = 0, 0, 0.0

    def resume(self, totals: dict) -> None:
        self.tokens = self.tokens_before = int(totals.get("tokens", 0))
        self.first_loss = totals.get("first_loss")
        self.flops = float(totals.get("flops", 0.0))

    def add(self, step: int, loss: float, tokens: int, flops: float) -> None:
        loop.check_loss(self.name, loss, step, self.losses, self.workdir)
        self.losses.append(loss)
        if self.first_loss is None:
            self.first_loss = loss
        self.tokens += tokens
        self.tokens_window += tokens
        self.flops += flops
        self.flops_window += flops

    def totals(self) -> dict:
        return {"tokens": self.tokens, "first_loss": self.first_loss, "flops": self.flops}

    def result(self, steps: int, elapsed: float, resumed_from: int | None) -> loop.TrainResult:
        return loop.summarize(steps, self.losses, self.first_loss, self.tokens, self.tokens - self.tokens_before,
                              elapsed, resumed_from, self.flops)


class _Meter:
    """Accounts fetched losses to their runs and writes each run's metrics at logging points."""

    def __init__(self, flops_per_token: float | None, peak_flops: float | None):
        self.flops_per_token, self.peak_flops = flops_per_token or 0.0, peak_flops
        self.t_start = self.t_window = time.perf_counter()

    def account(self, runs: list[_Run], fetched: list, first_step: int) -> None:
        """Per step in order, per run: check the loss and add the step's tokens and FLOPs.
        `fetched` holds each call's losses [S, K] and aux values [S, K]."""
        rows = [(loss[i], {key: v[i] for key, v in aux.items()}) for loss, aux in fetched for i in range(len(loss))]
        for step, (loss, aux) in enumerate(rows, first_step):
            for k, r in enumerate(runs):
                tokens = int(aux["tokens"][k])
                step_flops = float(aux["flops"][k]) if "flops" in aux else tokens * self.flops_per_token
                r.add(step, float(loss[k]), tokens, step_flops)

    def log(self, runs: list[_Run], step: int, lr: float, bar) -> None:
        now = time.perf_counter()
        seconds = max(now - self.t_window, 1e-9)
        group_flops = sum(r.flops_window for r in runs)
        if group_flops and self.peak_flops is None:
            self.peak_flops, source = flops_lib.peak_flops_per_device()
            log.info("packed: MFU against %.1f TFLOP/s per device (%s)", self.peak_flops / 1e12, source)
        for r in runs:
            record = {"step": step, "loss": r.losses[-1], "lr": lr, "tokens": r.tokens,
                      "tokens_per_s": r.tokens_window / seconds}
            if group_flops:
                record["tflops_per_s"] = r.flops_window / seconds / 1e12
                record["mfu"] = group_flops / seconds / self.peak_flops
            r.writer.write(record)
        tps = sum(r.tokens_window for r in runs) / seconds
        bar.set_postfix(loss=f"{np.mean([r.losses[-1] for r in runs]):.3f}", tok_s=f"{tps:,.0f}")
        for r in runs:
            r.tokens_window, r.flops_window = 0, 0.0
        self.t_window = now
