"""What every trainer does around its compiled step, for one run (loop.py) or several trained
together (packed.py): the run's settings, resuming from and saving checkpoints on their cadence,
metering (tokens, FLOPs, tokens/s, TFLOP/s, MFU), the metrics files, the progress bar, loss checks,
stop signals and the final summary.

Each run keeps its own metrics.jsonl and checkpoints in its own work directory, in one layout for
every trainer, so a run saved by one resumes in the other.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import ml_collections
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from visual_priors.errors import BadValue
from visual_priors.train import flops as flops_lib, optim
from visual_priors.train.checkpoint import Checkpointer
from visual_priors.train.metrics import MetricsWriter, is_finite

log = logging.getLogger(__name__)


class NonFiniteLoss(RuntimeError):
    pass


class Preempted(RuntimeError):
    pass


class UnevenResume(RuntimeError):
    """Runs trained together whose newest checkpoints are at different steps, so they cannot
    advance together."""


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """How a run trains, logs and checkpoints: everything but its model, loss, data and placement.

    `steps` AdamW updates from `optim_cfg` (train/optim.py) of the parameters `freeze_rules` mark
    trainable, each over `accum_steps` microbatches. A checkpoint every `ckpt_every` steps (0:
    none) keeps the latest `keep` plus every `keep_every`-th step for good; `metadata` must match
    on restore (scale, vocabulary, dtype...). Metrics every `log_every` steps; where FLOPs are
    counted (`flops_per_token`, or a loss whose aux holds ``flops``) they carry TFLOP/s and MFU
    against `peak_flops` per device (default: the chip's datasheet bf16 peak, or a measured float32
    matmul on CPU). `desc` names the run in the progress bar, the logs and its errors.
    """
    steps: int
    optim_cfg: ml_collections.ConfigDict
    freeze_rules: Sequence = optim.ALL_TRAINABLE
    ckpt_every: int = 0
    keep: int = 2
    keep_every: int = 0
    log_every: int = 10
    accum_steps: int = 1
    desc: str = "train"
    metadata: dict | None = None
    flops_per_token: float | None = None
    peak_flops: float | None = None
    tensorboard: bool = True
    progress: bool = True

    def __post_init__(self):
        least = {"steps": 0, "ckpt_every": 0, "keep": 1, "keep_every": 0, "log_every": 1, "accum_steps": 1}
        for name, low in least.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise BadValue(f"training setting {name} must be a whole number of at least {low}, "
                               f"got {value!r}")
        for name, value in (("flops_per_token", self.flops_per_token), ("peak_flops", self.peak_flops)):
            if value is not None and not (isinstance(value, numbers.Real) and 0 < value < math.inf):
                raise BadValue(f"training setting {name} must be a positive number or None, got {value!r}")


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


class Session:
    """The runs of one trainer from resume to summary. As a context manager it catches stop
    signals (SIGTERM, a first Ctrl-C) while open; leaving it closes the progress bar, metrics files
    and checkpoints (waiting for the last save) and puts the signal handlers back.

    A trainer calls `resume`, then after each call of its compiled program `reached`, and
    `settle` wherever `reached` asks it to (or after every step), and `results` at the end.
    """

    def __init__(self, settings: TrainSettings, workdirs: Sequence[str | Path], datas: Sequence,
                 names: Sequence[str], *, lr_schedule: Callable, mesh_shape: dict):
        self.settings, self.lr_schedule = settings, lr_schedule
        self.specs = list(zip(names, workdirs, datas))
        self.layout = {"mesh": dict(mesh_shape)}
        # MFU is the whole group's use of the devices it shares.
        self.n_devices = math.prod(mesh_shape.values())
        self.label = settings.desc if len(self.specs) == 1 else f"{settings.desc} x{len(self.specs)}"
        self.peak_flops = settings.peak_flops
        self.runs: list[_Run] = []
        self.bar = None

    def __enter__(self) -> Session:
        self.runs = [_Run(name, Path(w), data, self.settings, self.layout) for name, w, data in self.specs]
        self.stop_requested, self._restore_handlers = stop_signals()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
        for r in self.runs:
            r.close()
        self._restore_handlers()

    def resume(self, trainables: list, opt_states: list) -> tuple[int, list]:
        """Restore every run from its newest checkpoint (its trainable state in place, its data to
        the saved position); the step they resume from and their optimizer states. The clock and
        the progress bar start there."""
        restored = [r.restore(t, o) for r, t, o in zip(self.runs, trainables, opt_states)]
        starts = [step for step, _ in restored]
        if len(set(starts)) > 1:
            detail = ", ".join(f"{r.name} at {s}" for r, s in zip(self.runs, starts))
            raise UnevenResume(f"packed runs resume from different steps ({detail}); train them one by one")
        self.start = self.step = self.accounted = starts[0]
        if self.start:
            log.info("%s: resumed from step %d", self.label, self.start)
        self.bar = tqdm(total=self.settings.steps, initial=self.start, desc=self.label,
                        disable=not self.settings.progress, leave=False, dynamic_ncols=True)
        self.t_start = self.t_window = time.perf_counter()
        return self.start, [opt for _, opt in restored]

    def reached(self, step: int) -> bool:
        """Move the progress bar to `step`, the last step dispatched; whether the trainer must
        `settle` now: at a logging point, a checkpoint, a stop or the end."""
        self.bar.update(step - self.step)
        self.step = step
        return self._log_due(step) or self._save_due(step) or bool(self.stop_requested)

    def settle(self, fetched: list, state_of: Callable[[int], tuple]) -> None:
        """Account the steps since the last settling, then log, checkpoint and stop as due.

        `fetched` holds those steps' outputs in order, one (losses, aux) per program call, each
        value with leading [steps, runs] axes. Every loss is checked before anything after it is
        saved. `state_of(k)` is run k's (trainable, opt_state) to checkpoint."""
        for losses, aux in fetched:
            for i in range(len(losses)):
                self.accounted += 1
                for k, r in enumerate(self.runs):
                    tokens = int(aux["tokens"][i][k])
                    step_flops = (float(aux["flops"][i][k]) if "flops" in aux
                                  else tokens * (self.settings.flops_per_token or 0.0))
                    r.add(self.accounted, float(losses[i][k]), tokens, step_flops)
        step = self.accounted
        if self._log_due(step):
            self._log(step)
        if self._save_due(step) or self.stop_requested:
            for k, r in enumerate(self.runs):
                r.save(step, *state_of(k), force=bool(self.stop_requested))
        if self.stop_requested:
            name = signal.Signals(self.stop_requested[0]).name
            raise Preempted(f"{self.settings.desc}: stopped by {name} after step {step}; checkpoint saved, "
                            "a rerun resumes from it")

    def results(self) -> list[TrainResult]:
        elapsed = time.perf_counter() - self.t_start
        return [r.result(self.settings.steps, elapsed, self.start or None) for r in self.runs]

    def _log_due(self, step: int) -> bool:
        return step % self.settings.log_every == 0 or step == self.settings.steps

    def _save_due(self, step: int) -> bool:
        # The last step is not saved: the caller keeps the trained model.
        every = self.settings.ckpt_every
        return bool(every) and step % every == 0 and step < self.settings.steps

    def _log(self, step: int) -> None:
        """Each run's metrics over the window since the last logging point."""
        now = time.perf_counter()
        seconds = max(now - self.t_window, 1e-9)
        group_flops = sum(r.flops_window for r in self.runs)
        if group_flops and self.peak_flops is None:
            self.peak_flops, source = flops_lib.peak_flops_per_device()
            log.info("%s: MFU against %.1f TFLOP/s per device (%s)", self.label, self.peak_flops / 1e12, source)
        lr = float(self.lr_schedule(step - 1))
        for r in self.runs:
            record = {"step": step, "loss": r.losses[-1], "lr": lr, "tokens": r.tokens,
                      "tokens_per_s": r.tokens_window / seconds}
            if group_flops:
                record["tflops_per_s"] = r.flops_window / seconds / 1e12
                record["tflops_per_s_per_device"] = r.flops_window / seconds / self.n_devices / 1e12
                record["mfu"] = group_flops / seconds / self.n_devices / self.peak_flops
            r.writer.write(record)
        tps = sum(r.tokens_window for r in self.runs) / seconds
        self.bar.set_postfix(loss=f"{np.mean([r.losses[-1] for r in self.runs]):.3f}", tok_s=f"{tps:,.0f}")
        for r in self.runs:
            r.tokens_window, r.flops_window = 0, 0.0
        self.t_window = now


class _Run:
    """One run's running totals, losses, metrics file and checkpoints."""

    def __init__(self, name: str, workdir: Path, data, settings: TrainSettings, layout: dict):
        self.name, self.workdir, self.data = name, workdir, data
        workdir.mkdir(parents=True, exist_ok=True)
        self.writer = MetricsWriter(workdir / "metrics.jsonl", tensorboard=settings.tensorboard)
        self.ckpt = (Checkpointer(workdir / "checkpoints", keep=settings.keep, keep_every=settings.keep_every,
                                  metadata=settings.metadata, layout=layout) if settings.ckpt_every else None)
        self.losses: list[float] = []
        self.tokens, self.first_loss, self.flops = 0, None, 0.0
        self.tokens_before, self.tokens_window, self.flops_window = 0, 0, 0.0

    def restore(self, trainable: nnx.State, opt_state) -> tuple[int, object]:
        """(step, opt_state) of the newest checkpoint, or (0, `opt_state`) without one."""
        if self.ckpt is None:
            return 0, opt_state
        restored = self.ckpt.restore_latest(trainable.to_pure_dict(), jax.tree.leaves(opt_state))
        if restored is None:
            return 0, opt_state
        step, params, opt_leaves, data_state, totals = restored
        nnx.replace_by_pure_dict(trainable, params)
        if data_state is not None and hasattr(self.data, "set_state"):
            self.data.set_state(data_state)
        self.tokens = self.tokens_before = int(totals.get("tokens", 0))
        self.first_loss = totals.get("first_loss")
        self.flops = float(totals.get("flops", 0.0))
        return step, jax.tree.unflatten(jax.tree.structure(opt_state), opt_leaves)

    def add(self, step: int, loss: float, tokens: int, flops: float) -> None:
        """Stop on a non-finite loss (before anything after it is saved); warn on a spike
        against the recent losses."""
        if not is_finite(loss):
            raise NonFiniteLoss(f"{self.name}: loss is {loss} at step {step}; stopping. "
                                f"The last good checkpoint is kept in {self.workdir / 'checkpoints'}")
        recent = float(np.mean(self.losses[-20:])) if self.losses else math.inf
        if loss > 2.0 * recent and step > 21:
            log.warning("%s: loss spike at step %d: %.4f (recent mean %.4f)", self.name, step, loss, recent)
        self.losses.append(loss)
        if self.first_loss is None:
            self.first_loss = loss
        self.tokens += tokens
        self.tokens_window += tokens
        self.flops += flops
        self.flops_window += flops

    def save(self, step: int, trainable: nnx.State, opt_state, *, force: bool) -> None:
        if self.ckpt is None:
            return
        data_state = self.data.get_state() if hasattr(self.data, "get_state") else None
        totals = {"tokens": self.tokens, "first_loss": self.first_loss, "flops": self.flops}
        self.ckpt.save(step, trainable.to_pure_dict(), jax.tree.leaves(opt_state), data_state, totals, force=force)

    def result(self, steps: int, elapsed: float, resumed_from: int | None) -> TrainResult:
        """The run's summary, when this process trained its tokens since `tokens_before` in `elapsed` s."""
        nan = float("nan")
        return TrainResult(steps=steps, first_loss=self.first_loss if self.first_loss is not None else nan,
                           final_loss=float(np.mean(self.losses[-10:])) if self.losses else nan,
                           tokens=self.tokens, tokens_per_s=(self.tokens - self.tokens_before) / max(elapsed, 1e-9),
                           elapsed_s=elapsed, resumed_from=resumed_from, losses=self.losses, flops=self.flops)

    def close(self) -> None:
        self.writer.close()
        if self.ckpt is not None:
            self.ckpt.close()


def stop_signals() -> tuple[list, Callable[[], None]]:
    """(flag, restore): SIGTERM (preemption) and a first Ctrl-C append to `flag`, asking the
    trainer to checkpoint and stop at the end of the current step; a second Ctrl-C interrupts at
    once. `restore()` puts the previous handlers back."""
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
