"""Resumption: a run SIGKILLed mid-training (possibly mid-save) and restarted logs the same losses
and ends with the same parameters, bit for bit, as a run never stopped; which checkpoints are kept;
what a run stopped by a non-finite loss leaves behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from devices import ROOT
from test_train import _data, _lm_loss, _params, _settings, _tiny_cfg
from visual_priors.data.batches import ArrayBatches
from visual_priors.model.llm import Llama
from visual_priors.train import loop
from visual_priors.train.checkpoint import Checkpointer

# Trains a tiny Llama on a two-source grain mixture (so the iterator state matters) and writes
# metrics.jsonl, params.npz and a RESULT line into argv[1]. Every next() sleeps, so the test can
# kill it between steps.
SCRIPT = r"""
import json, sys, time
import jax, jax.numpy as jnp, ml_collections, numpy as np
from flax import nnx
from visual_priors.config import scales
from visual_priors.data.pipeline import ArraySegments, PretrainData, SegmentPool
from visual_priors.model.llm import Llama
from visual_priors.model.scoring import masked_nll
from visual_priors.train import loop

workdir, delay = sys.argv[1], float(sys.argv[2])
cfg = scales.get("t1"); cfg.vocab_size = 64; cfg.n_layers = 1
rng = np.random.default_rng(0)
pool = SegmentPool({"a": ArraySegments([(np.arange(100) % 64).astype(np.int32)] * 30),  # learnable
                   "b": ArraySegments([rng.integers(0, 64, 100).astype(np.int32)        # noise
                                       for _ in range(30)])})
data = PretrainData(pool, {"a": 0.7, "b": 0.3}, seq_len=16, batch_size=4, seed=3)

class Slow:
    # Delegates the checkpointed state, so the loop still saves and restores the iterator.
    def __init__(self, inner): self.inner = inner
    def __iter__(self): return self
    def __next__(self):
        time.sleep(delay)
        return next(self.inner)
    def get_state(self): return self.inner.get_state()
    def set_state(self, state): self.inner.set_state(state)

def loss_fn(model, batch):
    loss, count = masked_nll(model, batch["tokens"], jnp.ones_like(batch["tokens"]))
    return loss, {"tokens": count}

optim_cfg = ml_collections.ConfigDict(dict(lr=3e-3, warmup_frac=0.1, min_lr_ratio=0.1, b1=0.9,
                                           b2=0.95, eps=1e-8, weight_decay=0.0, clip=1.0))
model = Llama(cfg, rngs=nnx.Rngs(0))
settings = loop.TrainSettings(steps=30, optim_cfg=optim_cfg, ckpt_every=3, keep=2, log_every=1, progress=False,
                              tensorboard=False)
res = loop.run(model, loss_fn, Slow(data), settings, workdir=workdir)
params = nnx.state(model, nnx.Param).to_pure_dict()
flat = {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v)
        for path, v in jax.tree_util.tree_flatten_with_path(params)[0]}
np.savez(workdir + "/params.npz", **flat)
print("RESULT " + json.dumps({"resumed_from": res.resumed_from, "tokens": res.tokens,
                              "first_loss": res.first_loss, "drawn": data.counter.counts()}))
"""

STEPS = 30
KILL_AT = 15  # a checkpoint step: the kill lands just as its (async) save starts


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _start(workdir, delay=0.08):
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(workdir), str(delay)], env=_env(),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc, timeout=120) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-4000:]
    return json.loads([l for l in out.splitlines() if l.startswith("RESULT ")][-1][len("RESULT "):])


def _losses(workdir) -> dict[int, float]:
    """step -> loss, the last record per step (a resumed run logs some steps twice)."""
    out = {}
    path = workdir / "metrics.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            if line.endswith("}"):  # a line cut by the kill is skipped
                rec = json.loads(line)
                out[rec["step"]] = rec["loss"]
    return out


def test_sigkilled_run_resumes_bitwise(tmp_path):
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    # Run A (uninterrupted) and the first life of run B side by side, to save wall time.
    a = _start(a_dir)
    b = _start(b_dir)
    deadline = time.monotonic() + 120
    while max(_losses(b_dir), default=0) < KILL_AT:
        assert b.poll() is None, f"run B ended before it was killed: {b.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, "run B never reached the kill step"
        time.sleep(0.01)
    os.kill(b.pid, signal.SIGKILL)
    b.communicate(timeout=30)
    assert b.returncode == -signal.SIGKILL
    killed_at = max(_losses(b_dir))
    assert killed_at < STEPS  # the kill landed mid-run

    straight = _finish(a)
    resumed = _finish(_start(b_dir))

    start = resumed["resumed_from"]
    assert start is not None and start > 0 and start % 3 == 0 and start <= killed_at
    # Whole-run totals and the per-source token counts come back from the checkpoint.
    assert resumed["tokens"] == straight["tokens"] and resumed["drawn"] == straight["drawn"]
    assert resumed["first_loss"] == straight["first_loss"]

    la, lb = _losses(a_dir), _losses(b_dir)
    assert sorted(la) == sorted(lb) == list(range(1, STEPS + 1))
    # JSON floats round-trip exactly, so == here is bitwise equality of the float32 losses.
    diffs = {s: (la[s], lb[s]) for s in range(start + 1, STEPS + 1) if la[s] != lb[s]}
    assert not diffs, f"losses differ after resuming from step {start}: {diffs}"

    pa, pb = np.load(a_dir / "params.npz"), np.load(b_dir / "params.npz")
    assert sorted(pa.files) == sorted(pb.files) and pa.files
    for name in pa.files:
        assert pa[name].dtype == pb[name].dtype
        assert pa[name].tobytes() == pb[name].tobytes(), name


# In-process checks of what is kept on disk and what a failed run leaves behind.


def _steps_on_disk(directory) -> set[int]:
    return {int(p.name) for p in directory.iterdir() if p.name.isdigit()}


def test_keep_every_keeps_milestones_besides_the_latest(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=1, keep_every=4, async_save=False)
    for step in range(1, 10):
        ckpt.save(step, {"w": np.full(2, step, np.float32)}, [np.zeros(2, np.float32)], None)
    ckpt.close()
    assert _steps_on_disk(tmp_path) == {4, 8, 9}


def test_loop_keeps_latest_and_every_kth_checkpoint(tmp_path):
    model = Llama(_tiny_cfg(), rngs=nnx.Rngs(0))
    loop.run(model, _lm_loss, _data(), _settings(12, ckpt_every=1, keep=2, keep_every=5, tensorboard=False),
             workdir=tmp_path)
    # The loop saves after steps 1..11, not after the final step 12 (the caller keeps the model):
    # the latest two (10, 11) plus the milestones 5 and 10.
    assert _steps_on_disk(tmp_path / "checkpoints") == {5, 10, 11}


class _FlaggedData(ArrayBatches):
    """Adds a per-row `flag` that is 1 in the batch of step `flag_step` (1-based) only."""

    def __init__(self, *a, flag_step, **k):
        super().__init__(*a, **k)
        self.flag_step = flag_step

    def __next__(self):
        step = self.position + 1
        batch = super().__next__()
        batch["flag"] = np.full(self.batch_size, float(step == self.flag_step), np.float32)
        return batch


def _flagged(flag_step):
    base = _data()
    return _FlaggedData(base.arrays, base.batch_size, base.seed, flag_step=flag_step)


def test_non_finite_loss_keeps_the_last_good_checkpoint_and_a_clean_rerun_resumes(tmp_path):
    def nan_when_flagged(m, b):
        loss, aux = _lm_loss(m, b)
        return loss * jnp.where(b["flag"][0] > 0, jnp.nan, 1.0), aux

    model = Llama(_tiny_cfg(), rngs=nnx.Rngs(0))
    with pytest.raises(loop.NonFiniteLoss, match="at step 7;"):
        loop.run(model, nan_when_flagged, _flagged(7), _settings(12, ckpt_every=2, tensorboard=False),
                 workdir=tmp_path)
    # Steps 2, 4, 6 were saved (keep=2): nothing written at or after the NaN.
    assert _steps_on_disk(tmp_path / "checkpoints") == {4, 6}

    clean = Llama(_tiny_cfg(), rngs=nnx.Rngs(0))
    res = loop.run(clean, lambda m, b: _lm_loss(m, b), _flagged(7),
                   _settings(12, ckpt_every=2, tensorboard=False), workdir=tmp_path)
    assert res.resumed_from == 6 and np.isfinite(res.final_loss)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(_params(clean)))
