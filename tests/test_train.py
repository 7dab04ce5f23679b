"""The shared training loop: learning, freezing, checkpoint resumption, guards."""

from __future__ import annotations

import functools
import os
import re
import signal

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from visual_priors.config import scales
from visual_priors.errors import BadValue
from visual_priors.data.batches import ArrayBatches
from visual_priors.model.connector import Connector
from visual_priors.model.llm import Llama
from visual_priors.model.mllm import MLLM
from visual_priors.model.scoring import masked_nll
from visual_priors.train import flops, loop
from visual_priors.train.compile_meter import CompileMeter


def _tiny_cfg():
    cfg = scales.get("t1")
    cfg.vocab_size = 64
    cfg.n_layers = 1
    return cfg


def _optim(lr=3e-3):
    return ml_collections.ConfigDict(dict(lr=lr, warmup_frac=0.1, min_lr_ratio=0.1, b1=0.9, b2=0.95,
                                          eps=1e-8, weight_decay=0.0, clip=1.0))


def _settings(steps, **overrides):
    """Settings of a tiny test run: `_optim()`'s optimizer and no progress bar unless overridden."""
    return loop.TrainSettings(steps=steps, optim_cfg=_optim(), **{"progress": False, **overrides})


def _data(seed=0, n=64, t=17):
    # A learnable pattern: each row counts up from a random start (mod vocab).
    rng = np.random.default_rng(seed)
    start = rng.integers(0, 64, size=(n, 1))
    tokens = ((start + np.arange(t)[None]) % 64).astype(np.int32)
    return ArrayBatches({"tokens": tokens}, batch_size=8, seed=seed)


def _lm_loss(model, batch):
    loss, count = masked_nll(model, batch["tokens"], jnp.ones_like(batch["tokens"]))
    return loss, {"tokens": count}


def _params(model):
    return jax.tree.map(np.asarray, nnx.state(model, nnx.Param).to_pure_dict())


def test_loss_falls_and_metrics_are_logged(tmp_path):
    model = Llama(_tiny_cfg(), rngs=nnx.Rngs(0))
    res = loop.run(model, _lm_loss, _data(), _settings(60, log_every=10, flops_per_token=1e6),
                   workdir=tmp_path)
    assert res.final_loss < 0.5 * res.first_loss
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 6
    import json
    rec = json.loads(lines[-1])
    assert {"step", "loss", "lr", "tokens_per_s", "tflops_per_s"} <= set(rec)


def test_frozen_parameters_are_unchanged_and_have_no_optimizer_state(tmp_path):
    cfg = _tiny_cfg()
    model = MLLM(Llama(cfg, rngs=nnx.Rngs(0)), Connector(8, cfg.d_model, rngs=nnx.Rngs(1)))
    before = _params(model)
    rng = np.random.default_rng(0)
    data = ArrayBatches({"tokens": rng.integers(0, 64, (32, 9)).astype(np.int32),
                         "mask": np.ones((32, 9), np.float32),
                         "feats": rng.normal(size=(32, 4, 8)).astype(np.float32)}, 8, 0)

    def loss_fn(m, b):
        loss, count = masked_nll(m, b["tokens"], b["mask"], b["feats"])
        return loss, {"tokens": count}

    res = loop.run(model, loss_fn, data, _settings(5, freeze_rules=[("connector/.*", True)]),
                   workdir=tmp_path)
    after = _params(model)
    same_llm = jax.tree.map(np.array_equal, before["llm"], after["llm"])
    assert all(jax.tree.leaves(same_llm))
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), before["connector"], after["connector"])
    assert all(jax.tree.leaves(changed))
    assert res.steps == 5
    with pytest.raises(ValueError, match="leave nothing to train"):
        loop.run(model, loss_fn, data, _settings(1, freeze_rules=[("nothing/.*", True)]),
                 workdir=tmp_path / "x")


class _Interrupt(Exception):
    pass


class _FailingData(ArrayBatches):
    def __init__(self, *a, fail_at, **k):
        super().__init__(*a, **k)
        self.fail_at = fail_at

    def __next__(self):
        if self.position == self.fail_at:
            raise _Interrupt()
        return super().__next__()


def test_interrupted_run_resumes_to_identical_parameters(tmp_path):
    straight = Llama(_tiny_cfg(), rngs=nnx.Rngs(0))
    whole = loop.run(straight, _lm_loss, _data(), _settings(12), workdir=tmp_path / "a")

    first = Llama(_tiny_cfg(), rngs=nnx.Rngs(0))
    base = _data()
    failing = _FailingData(base.arrays, base.batch_size, base.seed, fail_at=8)
    with pytest.raises(_Interrupt):
        loop.run(first, _lm_loss, failing, _settings(12, ckpt_every=3), workdir=tmp_path / "b")
    resumed = Llama(_tiny_cfg(), rngs=nnx.Rngs(0))
    res = loop.run(resumed, _lm_loss, _data(), _settings(12, ckpt_every=3), workdir=tmp_path / "b")
    assert res.resumed_from == 6
    assert res.tokens == whole.tokens and res.first_loss == whole.first_loss  # whole-run totals
    same = jax.tree.map(np.array_equal, _params(straight), _params(resumed))
    assert all(jax.tree.leaves(same))


def test_runs_of_one_shape_share_their_compiled_step_and_train_as_if_compiled_alone(tmp_path):
    """A second run of the same model shape, loss and optimizer in one process traces nothing;
    one with another schedule (more steps) or another loss gets a program of its own."""
    def train(seed, steps, loss_fn, name):
        model = Llama(_tiny_cfg(), rngs=nnx.Rngs(seed))
        with CompileMeter() as meter:
            loop.run(model, loss_fn, _data(seed), _settings(steps), workdir=tmp_path / name)
        return _params(model), meter.seconds

    train(0, 12, _lm_loss, "first")
    reused, reused_s = train(1, 12, _lm_loss, "reused")
    # A new partial object is a loss never seen before: compiled afresh, as for a run alone.
    alone, alone_s = train(1, 12, functools.partial(_lm_loss), "alone")
    assert reused_s < 0.2 * alone_s
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, reused, alone)))
    longer, longer_s = train(1, 16, _lm_loss, "longer")
    longer_alone, _ = train(1, 16, functools.partial(_lm_loss), "longer-alone")
    assert longer_s > 0.2 * alone_s  # its warm-up and decay are other constants: traced again
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, longer, longer_alone)))


def test_non_finite_loss_stops_with_the_step(tmp_path):
    model = Llama(_tiny_cfg(), rngs=nnx.Rngs(0))

    def bad_loss(m, b):
        loss, count = _lm_loss(m, b)
        return loss * jnp.nan, count

    with pytest.raises(loop.NonFiniteLoss, match="at step 1"):
        loop.run(model, bad_loss, _data(), _settings(3), workdir=tmp_path)


@pytest.mark.parametrize("bad, problem", [
    ({"ckpt_every": -1}, "ckpt_every must be a whole number of at least 0, got -1"),
    ({"log_every": 0}, "log_every must be a whole number of at least 1, got 0"),
    ({"steps": 2.5}, "steps must be a whole number of at least 0, got 2.5"),
    ({"accum_steps": 0}, "accum_steps must be a whole number of at least 1"),
    ({"keep": 0}, "keep must be a whole number of at least 1"),
    ({"peak_flops": 0.0}, "peak_flops must be a positive number or None, got 0.0"),
    ({"flops_per_token": float("nan")}, "flops_per_token must be a positive number or None"),
])
def test_settings_reject_bad_values_by_name(bad, problem):
    with pytest.raises(BadValue, match=f"^training setting {re.escape(problem)}"):
        _settings(**{"steps": 4, **bad})


def test_flops_follow_6n_plus_causal_attention():
    cfg = scales.get("t3")
    n = flops.decoder_matmul_params(cfg)
    per_tok = flops.train_flops_per_token(cfg, 128)
    attn = 12 * cfg.n_layers * 128 * cfg.d_model / 2
    assert per_tok == pytest.approx(6 * n + attn)


class _SignallingData(ArrayBatches):
    """Sends this process a signal while the loop is drawing batch `at`, like a preemption."""

    def __init__(self, *a, at, sig, **k):
        super().__init__(*a, **k)
        self.at, self.sig = at, sig

    def __next__(self):
        if self.position == self.at:
            os.kill(os.getpid(), self.sig)
        return super().__next__()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_a_checkpoint_and_the_rerun_matches(tmp_path, sig):
    straight = Llama(_tiny_cfg(), rngs=nnx.Rngs(0))
    loop.run(straight, _lm_loss, _data(), _settings(12), workdir=tmp_path / "a")

    base = _data()
    stopped = Llama(_tiny_cfg(), rngs=nnx.Rngs(0))
    with pytest.raises(loop.Preempted, match=f"stopped by {signal.Signals(sig).name} after step 8"):
        loop.run(stopped, _lm_loss, _SignallingData(base.arrays, 8, 0, at=7, sig=sig),
                 _settings(12, ckpt_every=100), workdir=tmp_path / "b")
    assert signal.getsignal(sig) is not None  # handlers are put back
    resumed = Llama(_tiny_cfg(), rngs=nnx.Rngs(0))
    res = loop.run(resumed, _lm_loss, _data(), _settings(12, ckpt_every=100), workdir=tmp_path / "b")
    assert res.resumed_from == 8
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, _params(straight), _params(resumed))))


def test_checkpoint_metadata_mismatch_and_corrupt_latest(tmp_path, caplog):
    from visual_priors.train.checkpoint import CheckpointMismatch, Checkpointer

    params = {"w": np.arange(4, dtype=np.float32)}
    opt = [np.zeros(4, np.float32)]
    ckpt = Checkpointer(tmp_path, keep=3, metadata={"scale": "t1"}, async_save=False)
    for step in (1, 2):
        ckpt.save(step, {"w": params["w"] + step}, opt, {"position": step}, {"tokens": 10 * step})
    ckpt.close()

    with pytest.raises(CheckpointMismatch, match="scale: checkpoint has 't1', run expects 't2'"):
        Checkpointer(tmp_path, metadata={"scale": "t2"}).restore_latest(params, opt)

    # Damage every array file of the newest checkpoint: restore falls back to step 1 with a warning.
    for f in (tmp_path / "2" / "params").rglob("*"):
        if f.is_file() and f.stat().st_size > 0 and f.suffix not in (".json",):
            f.write_bytes(b"\0garbage")
    step, restored, _, data_state, progress = Checkpointer(tmp_path, metadata={"scale": "t1"}).restore_latest(params, opt)
    assert step == 1 and data_state == {"position": 1} and progress == {"tokens": 10}
    np.testing.assert_array_equal(np.asarray(restored["w"]), params["w"] + 1)
    assert "unreadable" in caplog.text


class _ScaledData(ArrayBatches):
    """Adds a per-row loss `scale`: `factor` in the batch of step `at` (1-based), 1 elsewhere."""

    def __init__(self, *a, at, factor, **k):
        super().__init__(*a, **k)
        self.at, self.factor = at, factor

    def __next__(self):
        step = self.position + 1
        batch = super().__next__()
        batch["scale"] = np.full(self.batch_size, self.factor if step == self.at else 1.0, np.float32)
        return batch


def test_loss_spike_is_warned_with_its_step(tmp_path, caplog):
    def scaled_loss(m, b):
        loss, aux = _lm_loss(m, b)
        return loss * b["scale"][0], aux

    base = _data()
    data = _ScaledData(base.arrays, base.batch_size, base.seed, at=25, factor=10.0)
    model = Llama(_tiny_cfg(), rngs=nnx.Rngs(0))
    with caplog.at_level("WARNING", logger="visual_priors.train.session"):
        loop.run(model, scaled_loss, data, _settings(27, tensorboard=False), workdir=tmp_path)
    spikes = [r.getMessage() for r in caplog.records if "loss spike at step" in r.getMessage()]
    assert len(spikes) == 1 and "loss spike at step 25:" in spikes[0], spikes  # only the scaled step


def test_bf16_compute_with_float32_master_weights(tmp_path):
    def bf16_cfg():
        cfg = _tiny_cfg()
        cfg.dtype, cfg.param_dtype = "bfloat16", "float32"
        return cfg

    model = Llama(bf16_cfg(), rngs=nnx.Rngs(0))
    res = loop.run(model, _lm_loss, _data(), _settings(40, tensorboard=False), workdir=tmp_path / "bf16")
    assert res.final_loss < 0.6 * res.first_loss
    dtypes = {x.dtype for x in jax.tree.leaves(_params(model))}
    assert dtypes == {np.dtype(np.float32)}, dtypes  # the optimizer updated float32 masters
    # Same initial weights, so the first losses differ only by bf16 rounding in the forward pass.
    f32 = loop.run(Llama(_tiny_cfg(), rngs=nnx.Rngs(0)), _lm_loss, _data(), _settings(1, tensorboard=False),
                   workdir=tmp_path / "f32")
    assert res.first_loss != f32.first_loss  # bf16 really was used
    assert res.first_loss == pytest.approx(f32.first_loss, rel=0.02)


def _tensorboard_scalars(directory) -> dict[str, dict[int, float]]:
    """tag -> {step: value} from tensorboardX event files, read without TensorFlow. TFRecord framing:
    uint64 length, uint32 masked crc32c of the length, the data, uint32 masked crc32c of the data."""
    import struct

    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    out: dict[str, dict[int, float]] = {}
    files = sorted(directory.glob("events.out.tfevents.*"))
    assert files, f"no event file in {directory}"
    for path in files:
        raw, pos = path.read_bytes(), 0
        while pos < len(raw):
            header = raw[pos:pos + 8]
            (length,) = struct.unpack("<Q", header)
            (length_crc,) = struct.unpack("<I", raw[pos + 8:pos + 12])
            assert length_crc == masked_crc32c(header), f"corrupt record length in {path}"
            data = raw[pos + 12:pos + 12 + length]
            (data_crc,) = struct.unpack("<I", raw[pos + 12 + length:pos + 16 + length])
            assert data_crc == masked_crc32c(data), f"corrupt record in {path}"
            pos += 16 + length
            event = Event.FromString(data)
            for value in event.summary.value:
                number = value.simple_value if value.WhichOneof("value") == "simple_value" \
                    else value.tensor.float_val[0]
                out.setdefault(value.tag, {})[event.step] = number
    return out


def test_throughput_metrics_and_tensorboard_scalars(tmp_path):
    import json

    model = Llama(_tiny_cfg(), rngs=nnx.Rngs(0))
    loop.run(model, _lm_loss, _data(), _settings(6, log_every=2, flops_per_token=1e6, peak_flops=1e12),
             workdir=tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6]
    n_devices = jax.device_count()  # the default mesh spans every device
    for r in records:
        assert r["tokens_per_s"] > 0
        # FLOPs are summed per step and divided by the window's time, as tokens are: equal up
        # to rounding.
        assert r["tflops_per_s"] == pytest.approx(r["tokens_per_s"] * 1e6 / 1e12, rel=1e-12)
        assert r["tflops_per_s_per_device"] == pytest.approx(r["tokens_per_s"] * 1e6 / n_devices / 1e12,
                                                             rel=1e-12)
        # per-device FLOP/s over the 1e12 peak
        assert r["mfu"] == pytest.approx(r["tokens_per_s"] * 1e6 / n_devices / 1e12, rel=1e-12)
        assert r["mfu"] == pytest.approx(r["tflops_per_s_per_device"] * 1e12 / 1e12, rel=1e-12)

    scalars = _tensorboard_scalars(tmp_path / "tensorboard")
    assert {"train/loss", "train/mfu", "train/lr", "train/tokens_per_s"} <= set(scalars)
    for tag in ("loss", "mfu"):
        assert sorted(scalars[f"train/{tag}"]) == [2, 4, 6]
        for r in records:  # TensorBoard stores float32
            assert scalars[f"train/{tag}"][r["step"]] == pytest.approx(r[tag], rel=1e-6)


def test_mfu_defaults_to_a_measured_peak_on_cpu(tmp_path):
    import json

    model = Llama(_tiny_cfg(), rngs=nnx.Rngs(0))
    flops_per_token = flops.train_flops_per_token(_tiny_cfg(), 16)
    loop.run(model, _lm_loss, _data(),
             _settings(4, log_every=2, tensorboard=False, flops_per_token=flops_per_token, peak_flops=None),
             workdir=tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for r in records:
        assert 0 < r["mfu"] < 1.5, r


def test_progress_flag_is_honoured_on_fresh_and_resumed_runs(tmp_path, capfd):
    # The bar must follow `progress`, not whether a checkpoint was restored.
    loop.run(Llama(_tiny_cfg(), rngs=nnx.Rngs(0)), _lm_loss, _data(),
             _settings(4, ckpt_every=2, progress=True, tensorboard=False), workdir=tmp_path)
    assert "train: " in capfd.readouterr().err  # tqdm draws "train: ..%|" on stderr
    res = loop.run(Llama(_tiny_cfg(), rngs=nnx.Rngs(0)), _lm_loss, _data(),
                   _settings(8, ckpt_every=2, tensorboard=False), workdir=tmp_path)
    assert res.resumed_from == 2
    assert "train: " not in capfd.readouterr().err
