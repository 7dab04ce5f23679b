"""The multimodal side: visual tokens, cached features, freeze rules, SFT sets, stage FLOPs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from visual_priors.config import scales, stages
from visual_priors.model import connector as connector_lib, encoders, llm as llm_lib, mllm as mllm_lib
from visual_priors.model import vision, visual_tokens
from visual_priors.suite import adapt_steps, vision_steps
from visual_priors.suite.spec import Step
from visual_priors.train import flops, loop
from visual_priors.world import BENCHMARK_CATEGORY, World


def _vit(pool="mean"):
    cfg = vision.vit_config("tiny")
    cfg.pool = pool
    return vision.ViT(cfg, rngs=nnx.Rngs(0))


# ---------------------------------------------------------------- visual tokens


def test_resize_tokens_matches_torch_bilinear_interpolation():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(2, 16, 5)).astype(np.float32)
    for n_out in (4, 36, 576):
        ours = np.asarray(visual_tokens.resize_tokens(jnp.asarray(x), n_out))
        grid = torch.from_numpy(x.reshape(2, 4, 4, 5)).permute(0, 3, 1, 2)
        side = int(n_out ** 0.5)
        ref = torch.nn.functional.interpolate(grid, size=(side, side), mode="bilinear", align_corners=False)
        ref = ref.permute(0, 2, 3, 1).reshape(2, n_out, 5).numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert visual_tokens.resize_tokens(jnp.asarray(x), 16) is not None
    np.testing.assert_array_equal(np.asarray(visual_tokens.resize_tokens(jnp.asarray(x), 16)), x)


def test_encoder_check_names_mismatches():
    vit = _vit()
    check = visual_tokens.check_encoder(vit, 32, 36)
    assert (check.patch_tokens, check.visual_tokens, check.width) == (16, 36, 96)
    assert "4x4 patch tokens" in check.describe() and "6x6 visual tokens" in check.describe()
    with pytest.raises(visual_tokens.FeatureShapeError, match="features.tokens: 20 tokens"):
        visual_tokens.check_encoder(vit, 32, 20)

    class Lying:
        """An encoder whose config promises a grid its weights do not give."""
        cfg = vit.cfg

        def num_tokens(self, size):
            return 64

        def __call__(self, x):
            return vit(x)

    with pytest.raises(visual_tokens.FeatureShapeError, match="yields 16 patch tokens .* promises 64"):
        visual_tokens.check_encoder(Lying(), 32, 16)


def test_cached_features_equal_fresh_ones(tmp_path):
    world = World(seed=0, image_size=32)
    vit = _vit("cls")
    encoders.save_frozen(vit, tmp_path / "enc" / "encoder", "vit", vit.cfg, objective="test")
    enc_step = Step(vision_steps.ImportedEncoder(world={}, checkpoint={"test": 1}, probe={}))
    wfields = {"seed": 0, "image_size": 32}
    step = Step(vision_steps.Features(world=wfields, layer=-3, tokens=9, dtype="float32", align=6, sft=12,
                                      eval={"questions_per_benchmark": 1, "mle_per_bin": 1}),
                (enc_step,))
    out = tmp_path / "feats"
    out.mkdir()
    result = step.run(out, lambda s: tmp_path / "enc")
    assert result["tokens"] == 9 and result["patch_tokens"] == 16 and result["encoder_flops"] > 0
    cached = vision_steps.load_features(out, "align")
    # Fresh: the same encoder at the same layer on the same images, resized the same way.
    fresh_vit = encoders.load_frozen(tmp_path / "enc" / "encoder", feature_layer=-3)
    images = np.stack([world.caption_pair("train", vision_steps.ALIGN_OFFSET + i)[0] for i in range(6)])
    fresh = vision_steps.FeatureWriter(fresh_vit, 9, "float32").encode(images)
    np.testing.assert_array_equal(np.asarray(cached), fresh)  # bitwise: same program, same inputs
    eager = visual_tokens.visual_tokens(fresh_vit, jnp.asarray(images), 9)
    np.testing.assert_allclose(np.asarray(cached), np.asarray(eager), atol=1e-6)
    # and the layer matters: the default layer gives other features
    other = visual_tokens.visual_tokens(vit, jnp.asarray(images), 9)
    assert not np.allclose(np.asarray(cached), np.asarray(other))


# ---------------------------------------------------------------- freeze rules


def _mllm(feature_dim=8):
    cfg = scales.get("t1")
    cfg.vocab_size = 64
    return mllm_lib.MLLM(llm_lib.Llama(cfg, rngs=nnx.Rngs(0)),
                         connector_lib.Connector(feature_dim, cfg.d_model, rngs=nnx.Rngs(1)))


class _Batches:
    def __init__(self, with_feats=True):
        self.rng = np.random.default_rng(0)
        self.with_feats = with_feats

    def __next__(self):
        batch = {"tokens": self.rng.integers(1, 64, (4, 13)).astype(np.int32),
                 "mask": np.ones((4, 13), np.float32)}
        if self.with_feats:
            batch["feats"] = self.rng.normal(size=(4, 4, 8)).astype(np.float32)
        return batch


def _params(module):
    return jax.tree.map(np.asarray, nnx.state(module, nnx.Param).to_pure_dict())


def _opt_elements(workdir, step=1):
    leaves = ocp.StandardCheckpointer().restore((workdir / "checkpoints" / str(step) / "opt").absolute())
    return sum(int(np.size(x)) for x in jax.tree.leaves(leaves))


def _size(tree):
    return sum(int(np.size(x)) for x in jax.tree.leaves(tree))


def _settings(optim: dict, freeze_rules) -> loop.TrainSettings:
    """Two steps, each checkpointed, so the tests can read the optimizer state on disk."""
    return loop.TrainSettings(steps=2, optim_cfg=ml_collections.ConfigDict(optim), freeze_rules=freeze_rules,
                              ckpt_every=1, progress=False, tensorboard=False)


def test_stage_one_trains_the_connector_only_and_holds_no_state_for_the_rest(tmp_path):
    model = _mllm()
    llm_before, conn_before = _params(model.llm), _params(model.connector)
    optim = {"lr": 1e-2, "warmup_frac": 0.06, "weight_decay": 0.0}
    loop.run(model, adapt_steps.MllmLoss(train_llm=False), _Batches(),
             _settings(optim, adapt_steps.ALIGN_RULES), workdir=tmp_path)
    jax.tree.map(np.testing.assert_array_equal, _params(model.llm), llm_before)  # bitwise
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(_params(model.connector)),
                                                       jax.tree.leaves(conn_before)))
    # Adam's two moments for the connector and scalar step counts: nothing for the LLM.
    assert 0 < _opt_elements(tmp_path) - 2 * _size(conn_before) <= 4


def test_stage_two_trains_connector_and_llm(tmp_path):
    model = _mllm()
    before = _params(model)
    optim = {"lr": 1e-3, "warmup_frac": 0.03, "weight_decay": 0.0}
    loop.run(model, adapt_steps.MllmLoss(train_llm=True), _Batches(),
             _settings(optim, adapt_steps.SFT_RULES), workdir=tmp_path)
    after = _params(model)
    changed = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(before))]
    assert all(changed)
    assert 0 < _opt_elements(tmp_path) - 2 * _size(before) <= 4


class _WithEncoder(nnx.Module):
    """An MLLM that runs its encoder in the graph (no cached features), as a user computing
    features on the fly would: the freeze rules alone must keep the encoder fixed."""

    def __init__(self, vit, mllm):
        self.encoder, self.llm, self.connector = vit, mllm.llm, mllm.connector

    def __call__(self, feats, tokens, mask=None):
        return self.llm(tokens, prefix=self.connector(jax.lax.stop_gradient(feats)), mask=mask)


@pytest.mark.parametrize("rules", [adapt_steps.ALIGN_RULES, adapt_steps.SFT_RULES], ids=["align", "sft"])
def test_an_encoder_inside_the_model_stays_bitwise_frozen_without_optimizer_state(tmp_path, rules):
    from visual_priors.model.scoring import masked_nll

    model = _WithEncoder(_vit(), _mllm(feature_dim=96))
    before = _params(model.encoder)
    trained = _size(_params(model.connector)) + (_size(_params(model.llm)) if len(rules) > 1 else 0)
    rng = np.random.default_rng(0)

    class Images:
        def __next__(self):
            return {"images": rng.integers(0, 255, (4, 32, 32, 3)).astype(np.uint8),
                    "tokens": rng.integers(1, 64, (4, 13)).astype(np.int32),
                    "mask": np.ones((4, 13), np.float32)}

    def loss_fn(m, batch):
        loss, count = masked_nll(m, batch["tokens"], batch["mask"], m.encoder(batch["images"])["tokens"])
        return loss, {"tokens": count}

    loop.run(model, loss_fn, Images(), _settings({"lr": 1e-2}, rules), workdir=tmp_path)
    jax.tree.map(np.testing.assert_array_equal, _params(model.encoder), before)
    assert 0 < _opt_elements(tmp_path) - 2 * trained <= 4


# ---------------------------------------------------------------- SFT sets


def test_sft_set_names_parse_and_bad_ones_are_named():
    s = stages.parse_sft_set("perception50+blind")
    assert s.keep == {"perception": 0.5, "reasoning": 1.0} and s.blind
    assert stages.parse_sft_set("full").keep == {"perception": 1.0, "reasoning": 1.0}
    for bad in ("perception", "reasoning150", "half", "full+deaf"):
        with pytest.raises(ValueError, match="SFT set"):
            stages.parse_sft_set(bad)


def test_select_sft_keeps_the_stated_share_of_each_label():
    examples = ([{"label": "perception", "i": i} for i in range(40)]
                + [{"label": "reasoning", "i": i} for i in range(20)]
                + [{"label": None, "i": i} for i in range(10)])
    kept = adapt_steps.select_sft(examples, {"perception": 0.5, "reasoning": 0.0}, seed=3)
    labels = [e["label"] for e in kept]
    assert labels.count("perception") == 20 and labels.count("reasoning") == 0 and labels.count(None) == 10
    assert kept == adapt_steps.select_sft(examples, {"perception": 0.5, "reasoning": 0.0}, seed=3)
    assert adapt_steps.select_sft(examples, {"perception": 1.0, "reasoning": 1.0}, seed=3) == examples


def test_world_sft_labels_follow_the_two_clusters():
    world = World(seed=0, image_size=32)
    seen = {}
    for i in range(300):
        ex = world.instruction("train", i)
        label = stages.sft_label(BENCHMARK_CATEGORY.get(ex.source), ex.source, ex.image is not None)
        seen.setdefault(label, set()).add(ex.source)
    assert {"count", "spatial", "science"} <= seen["reasoning"]
    assert {"caption", "attribute", "text"} <= seen["perception"]
    assert seen[None] <= {"fact", "fact_choice", "arithmetic", "described"}


# ---------------------------------------------------------------- FLOPs


def test_vit_forward_flops_match_the_compiled_program():
    for name, pool, layer in (("tiny", "mean", -2), ("tiny", "cls", -1), ("tiny", "mean", 2), ("conv", "mean", -1)):
        cfg = vision.vit_config(name)
        cfg.pool, cfg.feature_layer = pool, layer
        vit = vision.ViT(cfg, rngs=nnx.Rngs(0))
        images = jnp.zeros((1, 32, 32, 3), jnp.float32)
        counted = flops.compiled_forward_flops(lambda x: vit(x)["tokens"], images)
        formula = flops.vit_forward_flops(vit.cfg)
        # XLA also counts softmax, norms and GELUs, which the formula leaves out; of a 3x3
        # convolution it counts only the taps inside the map (the formula counts the padding's).
        low = 0.9 if cfg.stem else 1.0
        assert low * formula <= counted <= 1.15 * formula, (formula, counted)


@pytest.mark.parametrize("train_llm", [True, False])
def test_stage_flops_match_the_compiled_gradient(train_llm):
    model = _mllm()
    rules = adapt_steps.SFT_RULES if train_llm else adapt_steps.ALIGN_RULES
    from visual_priors.train import optim
    graphdef, trainable, frozen = nnx.split(model, optim.trainable_filter(rules), ...)
    batch = jax.tree.map(jnp.asarray, next(_Batches()))
    loss_fn = adapt_steps.MllmLoss(train_llm=train_llm)

    def grads(params):
        return jax.grad(lambda p: loss_fn(nnx.merge(graphdef, p, frozen), batch)[0])(params)

    counted = flops.compiled_forward_flops(grads, trainable)
    _, aux = loss_fn(model, batch)
    formula = float(aux["flops"])
    assert 0.85 * counted <= formula <= 1.15 * counted, (formula, counted)


# ---------------------------------------------------------------- imported encoders in the suite


def test_imported_checkpoint_runs_as_an_encoder_step_and_refuses_changed_weights(tmp_path):
    pytest.importorskip("torch")
    t = pytest.importorskip("transformers")
    hf_dir = tmp_path / "clip"
    t.CLIPVisionModel(t.CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, image_size=48, patch_size=16)
                      ).save_pretrained(hf_dir)
    spec = {"path": str(hf_dir), "arch": "", "fingerprint": encoders.fingerprint(hf_dir)}
    step = Step(vision_steps.ImportedEncoder(world={"seed": 0, "image_size": 32}, checkpoint=spec,
                                             probe={"train": 56, "test": 28}))
    out = tmp_path / "step"
    result = step.run(out, lambda s: tmp_path)
    # 32 px world images are resized to the checkpoint's 48 px: a 3x3 grid of width 32.
    assert (result["family"], result["input_size"], result["patch_tokens"], result["feature_dim"]) == \
        ("clip", 48, 9, 32)
    assert 0.0 <= result["probe_accuracy"] <= 1.0 and result["forward_flops_per_image"] > 0
    assert encoders.load_frozen(out / "encoder").cfg.image_size == 48
    weights = hf_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ValueError, match="changed since the study was planned"):
        step.run(tmp_path / "again", lambda s: tmp_path)


def test_a_finished_blind_pass_is_restored_not_run_again(tmp_path, monkeypatch):
    from visual_priors.data import multimodal

    def withheld():
        rng = np.random.default_rng(0)
        return multimodal.ExampleBatches(rng.integers(1, 64, (8, 13)).astype(np.int32),
                                         np.ones((8, 13), np.float32), None, np.full(8, -1), 4, 0)

    model = _mllm()
    optim = ml_collections.ConfigDict({"lr": 1e-3})
    loss_fn = adapt_steps.MllmLoss(train_llm=True)
    first = adapt_steps.blind_pass(model, loss_fn, withheld(), optim, tmp_path)
    assert first["steps"] == 2 and first["flops"] > 0
    trained = _params(model)

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished blind pass ran again")

    monkeypatch.setattr(adapt_steps.loop, "run", must_not_train)
    again = _mllm()
    assert adapt_steps.blind_pass(again, loss_fn, withheld(), optim, tmp_path) == first
    jax.tree.map(np.testing.assert_array_equal, _params(again), trained)
