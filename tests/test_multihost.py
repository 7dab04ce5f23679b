"""Multi-host training: start-up validation, per-process data, and two real processes on CPU.

Run as a script (`python tests/test_multihost.py PROCESS_ID PROCESS_COUNT ADDRESS WORKDIR`), this
file is one process of a training run; the test below launches it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from visual_priors.data.batches import ArrayBatches
from visual_priors.parallel import distributed

ROOT = Path(__file__).resolve().parents[1]
GLOBAL_BATCH = 8
STEPS = 3


def _tokens(n=64, t=17):
    # The counting pattern of test_train: each row counts up from a random start (mod vocab).
    start = np.random.default_rng(0).integers(0, 64, size=(n, 1))
    return ((start + np.arange(t)[None]) % 64).astype(np.int32)


def _train(process_id: int, process_count: int, address: str, workdir: str) -> dict:
    """One process of a data-parallel run over every process's devices; per-step losses."""
    if process_count > 1:
        started = distributed.initialize(address, process_count, process_id)
        again = distributed.initialize(address, process_count, process_id)  # a no-op
        assert started and again
    import jax
    import jax.numpy as jnp
    import ml_collections
    from flax import nnx

    from visual_priors.config import scales
    from visual_priors.model.llm import Llama
    from visual_priors.model.scoring import masked_nll
    from visual_priors.parallel.mesh import make_mesh
    from visual_priors.train import loop

    def loss_fn(model, batch):
        loss, count = masked_nll(model, batch["tokens"], jnp.ones_like(batch["tokens"]))
        return loss, {"tokens": count}

    cfg = scales.get("t1")
    cfg.vocab_size, cfg.n_layers = 64, 1
    optim_cfg = ml_collections.ConfigDict(dict(lr=3e-3, warmup_frac=0.1, min_lr_ratio=0.1, b1=0.9,
                                               b2=0.95, eps=1e-8, weight_decay=0.0, clip=1.0))
    data = ArrayBatches({"tokens": _tokens()}, GLOBAL_BATCH, seed=0,
                        process_index=process_id, process_count=process_count)
    result = loop.run(Llama(cfg, rngs=nnx.Rngs(0)), loss_fn, data,
                      loop.TrainSettings(steps=STEPS, optim_cfg=optim_cfg, ckpt_every=0, progress=False),
                      mesh=make_mesh({"data": -1}), workdir=workdir)
    return {"losses": result.losses, "tokens": result.tokens, "devices": jax.device_count(),
            "processes": jax.process_count()}


def _launch(process_id, process_count, address, workdir, local_devices):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VP_")}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
               XLA_FLAGS=f"--xla_force_host_platform_device_count={local_devices}")
    args = [sys.executable, __file__, str(process_id), str(process_count), address, str(workdir)]
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _result(proc, timeout):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"process {proc.args[2:4]} timed out; stderr:\n{err[-4000:]}")
    assert proc.returncode == 0, f"process {proc.args[2:4]} failed; stderr:\n{err[-4000:]}"
    return json.loads([l for l in out.splitlines() if l.startswith("RESULT ")][-1][len("RESULT "):])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# About 35 s of CPU over three processes: 27-43 s wall on a shared 2-core machine.
def test_two_processes_train_like_one_process_with_all_devices(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    t0 = time.perf_counter()
    # Two processes x 2 CPU devices, and one process with 4: the same global batches and mesh.
    procs = [_launch(pid, 2, address, tmp_path / f"p{pid}", 2) for pid in range(2)]
    procs.append(_launch(0, 1, "", tmp_path / "single", 4))
    try:
        results = [_result(p, timeout=max(1.0, 120 - (time.perf_counter() - t0))) for p in procs]
    finally:
        for p in procs:  # a failed process leaves its peer waiting for it
            if p.poll() is None:
                p.kill()
                p.communicate()
    *workers, single = results
    assert [(w["processes"], w["devices"]) for w in workers] == [(2, 4), (2, 4)]
    assert (single["processes"], single["devices"]) == (1, 4)
    assert len(single["losses"]) == STEPS
    for w in workers:
        np.testing.assert_allclose(w["losses"], single["losses"], rtol=1e-5)
        assert w["tokens"] == single["tokens"] == STEPS * GLOBAL_BATCH * 16


# --- start-up validation ----------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch):
    for name in (distributed.ENV_ADDRESS, distributed.ENV_NUM_PROCESSES, distributed.ENV_PROCESS_ID,
                 distributed.ENV_MODE):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_nothing_asked_for_is_a_single_process_run(clean_env):
    assert distributed.initialize() is False


@pytest.mark.parametrize("kwargs, message", [
    (dict(coordinator_address="localhost", num_processes=2, process_id=0), "host:port"),
    (dict(coordinator_address="localhost:http", num_processes=2, process_id=0), "'localhost:http'"),
    (dict(coordinator_address="10.0.0.1:70000", num_processes=2, process_id=0), "port 1-65535"),
    (dict(coordinator_address="h:1234", num_processes=0, process_id=0), "num_processes must be >= 1, got 0"),
    (dict(coordinator_address="h:1234", num_processes=2, process_id=2), r"\[0, 2\).*got 2"),
    (dict(coordinator_address="h:1234", num_processes=2, process_id=-1), "process_id must be >= 0, got -1"),
    (dict(coordinator_address="h:1234"), "missing: num_processes, process_id"),
    (dict(mode="manual"), "'manual'"),
])
def test_initialize_rejects_bad_settings(clean_env, kwargs, message):
    with pytest.raises(ValueError, match=message):
        distributed.initialize(**kwargs)


def test_initialize_reads_the_environment_and_arguments_win(clean_env):
    clean_env.setenv(distributed.ENV_ADDRESS, "h:1234")
    clean_env.setenv(distributed.ENV_NUM_PROCESSES, "two")
    with pytest.raises(ValueError, match="VP_NUM_PROCESSES must be an integer, got 'two'"):
        distributed.initialize(process_id=0)
    clean_env.setenv(distributed.ENV_NUM_PROCESSES, "2")
    clean_env.setenv(distributed.ENV_PROCESS_ID, "1")
    with pytest.raises(ValueError, match=r"\[0, 2\).*got 5"):
        distributed.initialize(process_id=5)
    clean_env.setenv(distributed.ENV_MODE, "sometimes")
    with pytest.raises(ValueError, match="VP_DISTRIBUTED"):
        distributed.initialize()


def test_cli_validates_multi_host_flags(clean_env, capsys):
    from visual_priors import cli

    assert cli.main(["--process-id", "1", "scales"]) == 2
    assert "missing: coordinator_address, num_processes" in capsys.readouterr().err


def test_process_rows():
    assert distributed.process_rows(8, 0, 1) == slice(0, 8)
    assert [distributed.process_rows(12, p, 3) for p in range(3)] == [slice(0, 4), slice(4, 8), slice(8, 12)]
    with pytest.raises(ValueError, match="10 is not divisible by the process count 4"):
        distributed.process_rows(10, 0, 4)
    with pytest.raises(ValueError, match="process_index=2, process_count=2"):
        distributed.process_rows(8, 2, 2)


# --- per-process data ---------------------------------------------------------------------------


def _assert_union_is_single(single, per_process, steps):
    for _ in range(steps):
        want = next(single)
        parts = [next(d) for d in per_process]
        for key, value in want.items():
            assert all(len(p[key]) == len(value) // len(parts) for p in parts)
            np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), value)


def test_array_batches_split_each_global_batch_over_processes():
    arrays = {"tokens": _tokens(n=40), "id": np.arange(40)}
    for count in (2, 4):
        single = ArrayBatches(arrays, GLOBAL_BATCH, seed=3)
        parts = [ArrayBatches(arrays, GLOBAL_BATCH, seed=3, process_index=p, process_count=count)
                 for p in range(count)]
        _assert_union_is_single(single, parts, steps=12)  # 5 batches an epoch: crosses two epochs
    with pytest.raises(ValueError, match="not divisible by the process count 3"):
        ArrayBatches(arrays, GLOBAL_BATCH, seed=3, process_index=0, process_count=3)


def _pool():
    # Imported here so that the training processes, which run this file, skip its imports.
    from visual_priors.data.pipeline import ArraySegments, SegmentPool

    rng = np.random.default_rng(1)
    return SegmentPool({name: ArraySegments([rng.integers(0, 100, rng.integers(5, 40)).astype(np.int32)
                                             for _ in range(n)])
                        for name, n in (("code", 30), ("math", 40), ("web_crawl", 80))})


def _pretrain(pool, **kw):
    from visual_priors.data.pipeline import PretrainData

    return PretrainData(pool, {"web_crawl": 0.5, "math": 0.3, "code": 0.2}, seq_len=16,
                        batch_size=GLOBAL_BATCH, seed=7, **kw)


def test_pretrain_data_splits_global_batches_and_resumes_per_process():
    pool = _pool()
    single = _pretrain(pool)
    parts = [_pretrain(pool, process_index=p, process_count=2) for p in range(2)]
    _assert_union_is_single(single, parts, steps=30)
    assert all(p.counter.report() == single.counter.report() for p in parts)  # global counts

    states = [p.get_state() for p in parts]
    expected = [[next(p) for _ in range(4)] for p in parts]
    for p, state, want in zip(range(2), states, expected):
        resumed = _pretrain(pool, process_index=p, process_count=2)
        resumed.set_state(state)
        for batch in want:
            got = next(resumed)
            assert got.keys() == batch.keys() == {"tokens", "segment_ids", "positions"}
            for key in batch:
                np.testing.assert_array_equal(got[key], batch[key])
        assert resumed.counter.report() == parts[p].counter.report()


def test_pretrain_data_reads_only_its_own_rows(monkeypatch):
    from visual_priors.data import pipeline

    reads = []
    read = pipeline.ArraySegments.tokens
    monkeypatch.setattr(pipeline.ArraySegments, "tokens", lambda self, i: reads.append(i) or read(self, i))
    data = _pretrain(_pool(), process_index=1, process_count=4)
    pieces = 0
    for _ in range(5):
        batch = next(data)
        assert batch["tokens"].shape == (GLOBAL_BATCH // 4, 17)
        pieces += int(batch["segment_ids"].max(axis=1).sum())
    assert len(reads) == pieces  # one read per piece of its own rows, none for the others


def test_global_batch_matches_device_put_in_one_process():
    import jax

    from visual_priors.parallel import mesh as mesh_lib

    mesh = mesh_lib.make_mesh({"data": -1})
    sharding = mesh_lib.batch_sharding(mesh)
    local = {"tokens": _tokens(n=8), "source": np.arange(8, dtype=np.int32)}
    got = mesh_lib.global_batch(local, sharding)
    for key, value in local.items():
        want = jax.device_put(value, sharding)
        assert got[key].sharding == want.sharding and got[key].dtype == want.dtype
        np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(want))


if __name__ == "__main__":
    pid, count, address, workdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    print("RESULT " + json.dumps(_train(pid, count, address, workdir)), flush=True)
