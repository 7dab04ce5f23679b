"""The one training loop behind pretrain, align, SFT and the local encoders.

What differs between those stages is only the loss, the data and which parameters train (regex
freeze rules). The loop splits the model into trainable and frozen state, jits a pure step over
the device mesh with the trainable state and optimizer state donated, checkpoints with orbax
(parameters, optimizer state and data-iterator state together) and resumes from the newest
checkpoint it finds in its work directory.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from visual_priors.parallel import mesh as mesh_lib
from visual_priors.train import flops as flops_lib, optim
from visual_priors.train.checkpoint import Checkpointer
from visual_priors.train.metrics import MetricsWriter, is_finite
from visual_priors.train.step import LossFn, init_opt_state, make_train_step

log = logging.getLogger(__name__)


class NonFiniteLoss(RuntimeError):
    pass


class Preempted(RuntimeError):
    pass


@dataclasses.dataclass
class TrainResult:
    """Summary of a run. After a resume, steps, tokens and first_loss cover the whole run;
    tokens_per_s, elapsed_s and losses cover this process only."""
    steps: int
    first_loss: float
    final_loss: float
    tokens: int
    tokens_per_s: float
    elapsed_s: float
    resumed_from: int | None
    losses: list[float]
    flops: float = 0.0  # training FLOPs of the whole run, when the loss or caller counts them

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.pop("losses")
        return out


def run(model: nnx.Module, loss_fn: LossFn, data: Iterator[dict], *, steps: int, optim_cfg,
        freeze_rules=optim.ALL_TRAINABLE, mesh=None, rules=None, workdir: str | Path,
        ckpt_every: int = 0, keep: int = 2, keep_every: int = 0, log_every: int = 10,
        desc: str = "train", metadata: dict | None = None, flops_per_token: float | None = None,
        peak_flops: float | None = None, accum_steps: int = 1, tensorboard: bool = True,
        progress: bool = True) -> TrainResult:
    """Train `model` in place for `steps` steps and return a summary.

    loss_fn(model, batch) -> (scalar loss, aux) where aux["tokens"] counts the tokens the step
    trained on. `data` yields dicts of numpy arrays; if it has get_state/set_state, its position
    is checkpointed so a resumed run sees exactly the batches it would have seen.

    A loss whose aux also holds ``flops`` (the step's training FLOPs, for stages whose cost per
    token varies: image and text-only batches) is measured by that instead of `flops_per_token`.

    Checkpoints every `ckpt_every` steps keep the latest `keep` plus every `keep_every`-th step
    for good; `metadata` must match on restore (scale, vocabulary, dtype...), while the mesh may
    differ (the state is resharded onto this run's mesh). With `flops_per_token`, logged steps
    carry TFLOP/s per device and MFU against `peak_flops` per device (default: the chip's
    datasheet bf16 peak, or a measured float32 matmul on CPU).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mesh = mesh if mesh is not None else mesh_lib.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
    rules = rules if rules is not None else mesh_lib.DEFAULT_RULES
    mesh_lib.shard_model(model, mesh, rules)

    graphdef, trainable, frozen = nnx.split(model, optim.trainable_filter(freeze_rules), ...)
    if not jax.tree.leaves(trainable):
        raise ValueError(f"freeze rules {list(freeze_rules)} leave nothing to train")
    tx, lr_schedule = optim.adamw(optim_cfg, steps)
    trainable, frozen = _place(trainable, mesh), _place(frozen, mesh)
    # Created in the parameters' shardings, so the step compiles once instead of again when its
    # outputs come back sharded differently.
    opt_state = init_opt_state(tx, trainable, mesh)
    batch_sharding = mesh_lib.batch_sharding(mesh, rules)

    train_step = make_train_step(graphdef, loss_fn, tx, accum_steps)
    state_shardings = (_shardings(trainable), _shardings(opt_state))
    step_fn = jax.jit(train_step, donate_argnums=(0, 1),
                      out_shardings=(*state_shardings, None, None))

    ckpt = (open_checkpoints(workdir, dict(mesh.shape), keep=keep, keep_every=keep_every, metadata=metadata)
            if ckpt_every else None)
    start, resumed_from, totals = 0, None, {}
    if ckpt is not None:
        restored = restore_checkpoint(ckpt, trainable, opt_state, data)
        if restored is not None:
            start, opt_state, totals = restored
            resumed_from = start
            log.info("%s: resumed from step %d", desc, start)

    def save(step: int, force: bool = False) -> None:
        if ckpt is None:
            return
        totals = {"tokens": tokens_total, "first_loss": first_loss, "flops": flops_total}
        save_checkpoint(ckpt, step, trainable, opt_state, data, totals, force=force)

    stop_requested, restore_handlers = stop_signals()
    writer = MetricsWriter(workdir / "metrics.jsonl", tensorboard=tensorboard)
    losses: list[float] = []
    tokens_total, first_loss = int(totals.get("tokens", 0)), totals.get("first_loss")
    flops_total = float(totals.get("flops", 0.0))
    t_start = time.perf_counter()
    t_window, tokens_window, flops_window = t_start, 0, 0.0
    tokens_before = tokens_total
    bar = tqdm(total=steps, initial=start, desc=desc, disable=not progress, leave=False,
               dynamic_ncols=True)
    # Inside the mesh context, activation sharding constraints take effect when the step is traced.
    with mesh_lib.use_mesh(mesh, rules):
        try:
            for step in range(start, steps):
                batch = mesh_lib.global_batch(next(data), batch_sharding)
                trainable, opt_state, loss, aux = step_fn(trainable, opt_state, frozen, batch)
                loss = float(loss)
                check_loss(desc, loss, step + 1, losses, workdir)
                tokens = int(aux["tokens"])
                tokens_total += tokens
                tokens_window += tokens
                step_flops = float(aux["flops"]) if "flops" in aux else tokens * (flops_per_token or 0.0)
                flops_window += step_flops
                flops_total += step_flops
                losses.append(loss)
                if first_loss is None:
                    first_loss = loss
                bar.update(1)
                if (step + 1) % log_every == 0 or step + 1 == steps:
                    now = time.perf_counter()
                    tps = tokens_window / max(now - t_window, 1e-9)
                    record = {"step": step + 1, "loss": loss, "lr": float(lr_schedule(step)),
                              "tokens": tokens_total, "tokens_per_s": tps}
                    if flops_window:
                        if peak_flops is None:
                            peak_flops, peak_source = flops_lib.peak_flops_per_device()
                            log.info("%s: MFU against %.1f TFLOP/s per device (%s)", desc,
                                     peak_flops / 1e12, peak_source)
                        fps = flops_window / max(now - t_window, 1e-9)
                        record["tflops_per_s"] = fps / 1e12
                        record["tflops_per_s_per_device"] = fps / mesh.size / 1e12
                        record["mfu"] = fps / mesh.size / peak_flops
                    writer.write(record)
                    bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tps:,.0f}")
                    t_window, tokens_window, flops_window = now, 0, 0.0
                if ckpt is not None and (step + 1) % ckpt_every == 0 and step + 1 < steps:
                    save(step + 1)
                if stop_requested:
                    save(step + 1, force=True)
                    raise preempted(desc, stop_requested, step + 1)
        finally:
            bar.close()
            writer.close()
            if ckpt is not None:
                ckpt.close()
            restore_handlers()
    nnx.update(model, trainable)
    return summarize(steps, losses, first_loss, tokens_total, tokens_total - tokens_before,
                     time.perf_counter() - t_start, resumed_from, flops_total)


def summarize(steps: int, losses: list[float], first_loss: float | None, tokens: int, tokens_now: int,
              elapsed: float, resumed_from: int | None, flops: float) -> TrainResult:
    """The TrainResult of a run that trained `tokens_now` of its `tokens` in this process."""
    return TrainResult(steps=steps, first_loss=first_loss if first_loss is not None else float("nan"),
                       final_loss=float(np.mean(losses[-10:])) if losses else float("nan"),
                       tokens=tokens, tokens_per_s=tokens_now / max(elapsed, 1e-9), elapsed_s=elapsed,
                       resumed_from=resumed_from, losses=losses, flops=flops)


def check_loss(desc: str, loss: float, step: int, recent: list[float], workdir: Path) -> None:
    """Stop on a non-finite loss (before anything after it is saved); warn on a spike against
    the `recent` losses."""
    if not is_finite(loss):
        raise NonFiniteLoss(f"{desc}: loss is {loss} at step {step}; stopping. "
                            f"The last good checkpoint is kept in {Path(workdir) / 'checkpoints'}")
    if recent and loss > 2.0 * float(np.mean(recent[-20:])) and step > 21:
        log.warning("%s: loss spike at step %d: %.4f (recent mean %.4f)",
                    desc, step, loss, float(np.mean(recent[-20:])))


def preempted(desc: str, stop_requested: list, step: int) -> Preempted:
    name = signal.Signals(stop_requested[0]).name
    return Preempted(f"{desc}: stopped by {name} after step {step}; checkpoint saved, a rerun resumes from it")


# Checkpoints in one layout for every trainer (this loop and train/packed.py), so a run saved
# by one resumes in the other.


def open_checkpoints(workdir: str | Path, mesh_shape: dict, *, keep: int, keep_every: int,
                     metadata: dict | None) -> Checkpointer:
    return Checkpointer(Path(workdir) / "checkpoints", keep=keep, keep_every=keep_every, metadata=metadata,
                        layout={"mesh": dict(mesh_shape)})


def restore_checkpoint(ckpt: Checkpointer, trainable: nnx.State, opt_state, data):
    """(step, opt_state, totals) of the newest checkpoint, or None; `trainable` is filled in place
    and `data` set to its saved position."""
    restored = ckpt.restore_latest(trainable.to_pure_dict(), jax.tree.leaves(opt_state))
    if restored is None:
        return None
    step, params, opt_leaves, data_state, totals = restored
    nnx.replace_by_pure_dict(trainable, params)
    if data_state is not None and hasattr(data, "set_state"):
        data.set_state(data_state)
    return step, jax.tree.unflatten(jax.tree.structure(opt_state), opt_leaves), totals


def save_checkpoint(ckpt: Checkpointer, step: int, trainable: nnx.State, opt_state, data, totals: dict, *,
                    force: bool = False) -> None:
    data_state = data.get_state() if hasattr(data, "get_state") else None
    ckpt.save(step, trainable.to_pure_dict(), jax.tree.leaves(opt_state), data_state, totals, force=force)


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


def stop_signals() -> tuple[list, Callable[[], None]]:
    """(flag, restore): SIGTERM (preemption) and a first Ctrl-C append to `flag`, asking the loop
    to checkpoint and stop at the end of the current step; a second Ctrl-C interrupts at once.
    `restore()` puts the previous handlers back."""
    flag = []

    def handler(signum, frame):
        if flag and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.append(signum)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return flag, restore
