"""Packed pre-training: same-shape LLMs trained together in one program get the losses and
parameters each would get alone, write what run_pretrain writes, and resume after a stop, packed
again or alone."""

from __future__ import annotations

import dataclasses
import json
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from test_resume import _flagged, _losses
from test_suite import _cfg
from test_train import _data, _lm_loss, _settings, _tiny_cfg
from visual_priors.data import pipeline
from visual_priors.model.llm import Llama
from visual_priors.suite import executor, spec, steps as steps_lib
from visual_priors.suite.packed_steps import run_pretrain_packed
from visual_priors.suite.step_io import tokenizer_of
from visual_priors.train import loop, packed

# Two mixtures over a three-source pool, each with two training seeds (four runs that differ in
# initialisation, batches or both); 8 steps of 4 x 128 tokens, a checkpoint every 3.
TINY = ("scales=('t1',)", "tokens.t1=4096", "pretrain.batch_size=4", "pretrain.log_every=1",
        "pretrain.ckpt_every=3", "mixtures=('source:code','category:visual_concept=50')", "seeds=(42,7)",
        "data.pool=('code','math','web_crawl')", "data.shard_tokens=20000", "data.heldout_tokens=3000",
        "data.tokenizer_sample_chars=200000", "eval.perplexity_windows=4")
STEPS = 8


def pack_key(step):
    return step.unit.pack_key(step)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The study's inputs, and each pretrain step trained alone by the normal runner."""
    root = tmp_path_factory.mktemp("runs")
    cfg = _cfg(*TINY)
    executor.run_study(cfg, root, stage="pretrain", report=False)
    runs, _ = spec.expand(cfg)
    return [r.steps["pretrain"] for r in runs], lambda s: executor.output_dir(root, s)


@pytest.fixture(scope="module")
def packed_outs(study, tmp_path_factory):
    steps, locate = study
    outs = [tmp_path_factory.mktemp(f"packed{k}") for k in range(len(steps))]
    return outs, run_pretrain_packed(steps, outs, locate)


def _params_of(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def _saved_params(out, step, locate) -> list[np.ndarray]:
    return _params_of(steps_lib.load_llm(out, step.fields["scale"], tokenizer_of(step, locate)))


def _assert_same_training(a, b, *, rtol=1e-5):
    la, lb = _losses(a / "work"), _losses(b / "work")
    assert sorted(la) == sorted(lb) == list(range(1, STEPS + 1))
    np.testing.assert_allclose([lb[s] for s in sorted(lb)], [la[s] for s in sorted(la)], rtol=rtol)


def test_packed_runs_match_runs_trained_alone(study, packed_outs):
    steps, locate = study
    outs, results = packed_outs
    assert len({pack_key(s) for s in steps}) == 1 and len({json.dumps(s.fields["mixture"]) for s in steps}) == 2
    assert len({s.fields["seed"] for s in steps}) == 2
    for step, out, result in zip(steps, outs, results):
        alone = locate(step)
        _assert_same_training(alone, out)
        for x, y in zip(_saved_params(alone, step, locate), _saved_params(out, step, locate)):
            np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-6)
        reference = json.loads((alone / "result.json").read_text())
        assert result.pop("packed") == 4
        # What the executor adds around every runner's result: name, wall and compile time.
        assert set(result) == set(reference) - {"step", "seconds", "compile_seconds", "compile_cache_hits"}
        for key in ("tokens", "mixture", "tokens_by_source", "tokens_by_label", "requested_shares"):
            assert result[key] == reference[key], key
        assert result["train"]["steps"] == STEPS and result["train"]["resumed_from"] is None
        assert (out / "drawn.json").read_text() == (alone / "drawn.json").read_text()
        assert (out / "llm" / "metadata.json").read_text() == (alone / "llm" / "metadata.json").read_text()
    # Different mixtures and seeds really were different runs.
    assert len({_losses(o / "work")[STEPS] for o in outs}) == 4


def test_pack_key_groups_steps_that_differ_only_in_mixture_and_seed(study):
    steps, _ = study
    assert pack_key(steps[0]) is not None and len({pack_key(s) for s in steps}) == 1
    runs, all_steps = spec.expand(_cfg(*TINY, "scales=('t1','t2')", "tokens.t2=8192"))
    by_scale = {}
    for r in runs:
        by_scale.setdefault(r.scale, set()).add(pack_key(r.steps["pretrain"]))
    assert len(by_scale["t1"]) == len(by_scale["t2"]) == 1 and by_scale["t1"] != by_scale["t2"]

    def changed(**fields):
        return dataclasses.replace(steps[0], unit=dataclasses.replace(steps[0].unit, **fields))

    def run_as(**options):
        return dataclasses.replace(steps[0], options={**steps[0].options, **options})

    assert pack_key(changed(tokens=8192)) != pack_key(steps[0])
    assert pack_key(changed(tokens=0)) is None  # an untrained LLM: nothing to pack
    assert pack_key(run_as(mesh={"data": 2, "fsdp": 1, "tensor": 1})) is None
    # One compiled program logs, checkpoints and accumulates alike for every run in it.
    assert pack_key(run_as(log_every=5)) != pack_key(steps[0])
    assert pack_key(run_as(grad_accum=2)) != pack_key(steps[0])
    assert all(pack_key(s) is None for s in all_steps if s.kind != "pretrain")


def test_the_runner_honours_log_every_though_it_leaves_the_identity_alone(study, tmp_path):
    steps, locate = study
    runs, _ = spec.expand(_cfg(*TINY, "pretrain.log_every=4"))
    step = next(r.steps["pretrain"] for r in runs if r.steps["pretrain"].hash == steps[0].hash)
    assert step.options["log_every"] == 4 and steps[0].options["log_every"] == 1
    steps_lib.run_pretrain(step, tmp_path, locate)
    assert sorted(_losses(tmp_path / "work")) == [4, STEPS]
    assert sorted(_losses(locate(steps[0]) / "work")) == list(range(1, STEPS + 1))


def test_a_stopped_group_resumes_packed_or_alone(study, packed_outs, tmp_path, monkeypatch):
    steps, locate = study
    outs = [tmp_path / f"run{k}" for k in range(len(steps))]
    stop_after = 4  # steps: between the checkpoints at 3 and 6, so the stop's own save is used
    draws = []
    original = pipeline.PretrainData.__next__

    def next_then_stop(self):
        draws.append(1)
        if len(draws) == stop_after * len(steps):  # the last run's batch of that step
            signal.raise_signal(signal.SIGTERM)
        return original(self)

    monkeypatch.setattr(pipeline.PretrainData, "__next__", next_then_stop)
    with pytest.raises(loop.Preempted, match=f"after step {stop_after}"):
        run_pretrain_packed(steps, outs, locate)
    monkeypatch.undo()

    alone = steps_lib.run_pretrain(steps[0], outs[0], locate)
    rest = run_pretrain_packed(steps[1:], outs[1:], locate)
    assert [r["train"]["resumed_from"] for r in [alone, *rest]] == [stop_after] * len(steps)
    assert [r["packed"] for r in rest] == [len(steps) - 1] * (len(steps) - 1)
    uninterrupted, _ = packed_outs
    for k, out in enumerate(outs):
        _assert_same_training(uninterrupted[k], out)
        assert (out / "drawn.json").read_text() == (uninterrupted[k] / "drawn.json").read_text()


def test_runs_that_cannot_resume_together_train_one_by_one(study, tmp_path, monkeypatch):
    steps, locate = study

    def uneven(*args, **kwargs):
        raise packed.UnevenResume("runs resume from different steps")

    monkeypatch.setattr(packed, "run", uneven)
    outs = [tmp_path / "a", tmp_path / "b"]
    results = run_pretrain_packed(steps[:2], outs, locate)
    assert [r["packed"] for r in results] == [1, 1]
    for step, out in zip(steps, outs):
        assert _losses(out / "work") == _losses(locate(step) / "work")  # the normal runner, bit for bit


def _tiny_models(n):
    return [Llama(_tiny_cfg(), rngs=nnx.Rngs(0)) for _ in range(n)]


def test_runs_vectorised_in_one_vmap_match_the_loop(tmp_path):
    """The default on a CPU, one run at a time inside the program, is checked against the normal
    runner above; here both runs go through one vmap, the default on an accelerator."""
    settings = _settings(5, log_every=2, flops_per_token=1e6, peak_flops=1e12, tensorboard=False)
    alone = []
    for k in range(2):
        model = _tiny_models(1)[0]
        result = loop.run(model, _lm_loss, _data(k), settings, workdir=tmp_path / f"alone{k}")
        alone.append((result.losses, _params_of(model)))
    models = _tiny_models(2)
    results = packed.run(models, _lm_loss, [_data(k) for k in range(2)], settings,
                         workdirs=[tmp_path / f"packed{k}" for k in range(2)], vmap_runs=2)
    for k, ((losses, params), result, model) in enumerate(zip(alone, results, models)):
        np.testing.assert_allclose(result.losses, losses, rtol=1e-5)
        for x, y in zip(params, _params_of(model)):
            np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-6)
        # The same metrics, logged at the same steps; only the timings differ.
        records = [_records(tmp_path / f"{kind}{k}") for kind in ("alone", "packed")]
        assert [sorted(r) for r in records[0]] == [sorted(r) for r in records[1]]
        assert [r["step"] for r in records[1]] == [2, 4, 5] and "mfu" in records[1][0]
        for a, b in zip(*records):
            assert (a["tokens"], a["lr"]) == (b["tokens"], b["lr"])
            assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)


def _records(workdir) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_non_finite_loss_names_its_run(tmp_path):
    def nan_when_flagged(m, b):
        loss, aux = _lm_loss(m, b)
        return loss * jnp.where(b["flag"][0] > 0, jnp.nan, 1.0), aux

    with pytest.raises(loop.NonFiniteLoss, match="second: loss is nan at step 3;"):
        packed.run(_tiny_models(2), nan_when_flagged, [_flagged(99), _flagged(3)],
                   _settings(6, log_every=5, tensorboard=False), workdirs=[tmp_path / "a", tmp_path / "b"],
                   names=["first", "second"])


def test_runs_checkpointed_at_different_steps_are_not_packed(tmp_path):
    dirs = [tmp_path / "a", tmp_path / "b"]
    loop.run(_tiny_models(1)[0], _lm_loss, _data(), _settings(4, ckpt_every=2, tensorboard=False),
             workdir=dirs[0])
    with pytest.raises(packed.UnevenResume, match="at 2, .* at 0"):
        packed.run(_tiny_models(2), _lm_loss, [_data(), _data(1)],
                   _settings(4, ckpt_every=2, tensorboard=False), workdirs=dirs)
