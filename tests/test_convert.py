import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
from flax import nnx

from visual_priors import cli
from visual_priors.config import scales
from visual_priors.model.convert import hf_llama
from visual_priors.model.llm import Llama, count_params, unstack_layers
from visual_priors.model.params_io import save_params

TOKENS = np.random.default_rng(0).integers(0, 64, size=(2, 12))
CONFIGS = {
    "tied-gqa": {},
    "untied": {"tie_embeddings": False},
    "mha-wide-heads": {"n_kv_heads": 4, "head_dim": 16, "rope_theta": 123456.0, "norm_eps": 1e-6},
}


def tiny_cfg(**over):
    cfg = scales.get("t1")
    cfg.vocab_size = 64
    cfg.update(over)
    return cfg


def random_llama(cfg, seed=0):
    """Every parameter random (norm scales around 1), so that any misplaced tensor shows."""
    model = Llama(cfg, rngs=nnx.Rngs(seed))
    rng = np.random.default_rng(seed)
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.asarray(rng.normal(1.0 if path[-1].key == "scale" else 0.0, 0.2, x.shape), x.dtype),
        state.to_pure_dict()))
    nnx.update(model, state)
    return model


def params_of(model):
    return nnx.state(model, nnx.Param).to_pure_dict()


def assert_same_params(a, b):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def write_index(hf_dir, shards):
    """Rewrites hf_dir's tensors as the given shards (lists of names) plus an index."""
    tensors = safetensors.numpy.load_file(hf_dir / hf_llama.SINGLE_FILE)
    (hf_dir / hf_llama.SINGLE_FILE).unlink()
    weight_map = {}
    for n, names in enumerate(shards, 1):
        file = f"model-{n:05d}-of-{len(shards):05d}.safetensors"
        safetensors.numpy.save_file({k: tensors[k] for k in names}, hf_dir / file, metadata={"format": "pt"})
        weight_map.update({k: file for k in names})
    (hf_dir / hf_llama.INDEX_FILE).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("over", CONFIGS.values(), ids=CONFIGS.keys())
def test_save_load_round_trip_is_exact(tmp_path, over):
    cfg = tiny_cfg(**over)
    model = random_llama(cfg)
    hf_llama.save(model, tmp_path)
    names = set(safetensors.numpy.load_file(tmp_path / hf_llama.SINGLE_FILE))
    assert ("lm_head.weight" in names) == (not cfg.tie_embeddings)
    hf = json.loads((tmp_path / "config.json").read_text())
    assert hf["architectures"] == ["LlamaForCausalLM"] and hf["num_key_value_heads"] == cfg.n_kv_heads

    loaded = hf_llama.load(tmp_path)
    assert_same_params(params_of(model), params_of(loaded))
    logits = np.asarray(loaded(TOKENS))
    assert logits.dtype == np.float32 and logits.shape == (2, 12, 64)
    np.testing.assert_array_equal(np.asarray(model(TOKENS)), logits)


def test_scanned_model_saves_per_layer_and_builds_back(tmp_path):
    cfg = tiny_cfg(scan_layers=True)
    model = random_llama(cfg)
    hf_llama.save(model, tmp_path)
    loaded = hf_llama.load(tmp_path)  # HF configs know no scan: a per-layer model
    assert_same_params(unstack_layers(params_of(model), cfg.n_layers), params_of(loaded))
    # Scanned and unrolled layers compile differently, so logits agree only to rounding.
    np.testing.assert_allclose(np.asarray(model(TOKENS)), np.asarray(loaded(TOKENS)), atol=1e-5)
    rescanned = hf_llama.build(cfg, params_of(loaded))
    assert_same_params(params_of(model), params_of(rescanned))


def test_config_round_trip_and_transformers5_rope_parameters():
    cfg = tiny_cfg(**CONFIGS["mha-wide-heads"])
    assert hf_llama.config_from_hf(hf_llama.config_to_hf(cfg), name="t1").to_dict() == cfg.to_dict()
    hf = hf_llama.config_to_hf(cfg)
    del hf["rope_theta"], hf["rope_scaling"]
    hf["rope_parameters"] = {"rope_type": "default", "rope_theta": 777.0}
    assert hf_llama.config_from_hf(hf).rope_theta == 777.0


def test_bfloat16_round_trip(tmp_path):
    model = random_llama(tiny_cfg(param_dtype="bfloat16"))
    hf_llama.save(model, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["torch_dtype"] == "bfloat16"
    header_len = int.from_bytes((tmp_path / hf_llama.SINGLE_FILE).read_bytes()[:8], "little")
    header = json.loads((tmp_path / hf_llama.SINGLE_FILE).read_bytes()[8:8 + header_len])
    assert header["model.norm.weight"]["dtype"] == "BF16"
    assert_same_params(params_of(model), params_of(hf_llama.load(tmp_path, dtype="bfloat16")))
    as_f32 = params_of(hf_llama.load(tmp_path))  # default float32: bf16 widens exactly
    np.testing.assert_array_equal(as_f32["embedding"], np.asarray(params_of(model)["embedding"], np.float32))


def test_sharded_checkpoint_loads(tmp_path):
    model = random_llama(tiny_cfg(tie_embeddings=False))
    hf_llama.save(model, tmp_path)
    names = sorted(hf_llama.to_hf_tensors(params_of(model), model.cfg))
    write_index(tmp_path, [names[: len(names) // 2], names[len(names) // 2:]])
    assert_same_params(params_of(model), params_of(hf_llama.load(tmp_path)))
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model-00002-of-00002.safetensors"):
        hf_llama.load(tmp_path)


def test_checkpoint_export_import_is_exact(tmp_path):
    cfg = tiny_cfg(tie_embeddings=False, name="mine")
    params = params_of(random_llama(cfg))
    save_params(tmp_path / "ckpt", params, hf_llama.checkpoint_metadata(cfg))
    hf_llama.export_checkpoint(tmp_path / "ckpt", tmp_path / "hf")
    hf_llama.import_checkpoint(tmp_path / "hf", tmp_path / "back")
    cfg_back, params_back = hf_llama.read_checkpoint(tmp_path / "back")
    assert_same_params(params, params_back)
    assert cfg_back.to_dict() == {**cfg.to_dict(), "name": "hf"}


def test_export_of_a_suite_pretrain_checkpoint(tmp_path):
    # The pretrain step's metadata names a standard scale and carries no model config.
    cfg = scales.get("t1")
    params = params_of(random_llama(cfg))
    save_params(tmp_path / "llm", params, {"kind": "llm", "scale": "t1", "vocab_size": cfg.vocab_size})
    hf_llama.export_checkpoint(tmp_path / "llm", tmp_path / "hf")
    assert_same_params(params, params_of(hf_llama.load(tmp_path / "hf")))


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("field,value", [
    ("rope_scaling", {"rope_type": "llama3", "factor": 8.0}),
    ("attention_bias", True),
    ("mlp_bias", True),
    ("hidden_act", "gelu"),
    ("rope_parameters", {"rope_type": "yarn", "rope_theta": 1e4}),
    ("model_type", "mistral"),
])
def test_unsupported_config_fields_are_named(tmp_path, field, value):
    hf_llama.save(random_llama(tiny_cfg()), tmp_path)
    hf = json.loads((tmp_path / "config.json").read_text())
    hf[field] = value
    (tmp_path / "config.json").write_text(json.dumps(hf))
    with pytest.raises(ValueError, match=field):
        hf_llama.load(tmp_path)


def hf_tensors(cfg):
    return hf_llama.to_hf_tensors(params_of(random_llama(cfg)), cfg)


def test_missing_extra_and_misshaped_tensors_are_named():
    cfg = tiny_cfg()
    tensors = hf_tensors(cfg)
    missing = {k: v for k, v in tensors.items() if k != "model.layers.1.mlp.up_proj.weight"}
    with pytest.raises(ValueError, match=r"missing tensors: model\.layers\.1\.mlp\.up_proj\.weight"):
        hf_llama.from_hf_tensors(missing, cfg)
    unprefixed = {k.removeprefix("model."): v for k, v in tensors.items()}  # a base LlamaModel's names
    with pytest.raises(ValueError, match=r"missing tensors: .* and 12 more; unexpected tensors: embed_tokens"):
        hf_llama.from_hf_tensors(unprefixed, cfg)
    extra = {**tensors, "model.layers.2.mlp.up_proj.weight": tensors["model.layers.1.mlp.up_proj.weight"]}
    with pytest.raises(ValueError, match=r"unexpected tensors: model\.layers\.2\.mlp\.up_proj\.weight"):
        hf_llama.from_hf_tensors(extra, cfg)
    misshaped = {**tensors, "model.layers.0.self_attn.k_proj.weight": np.zeros((48, 48), np.float32)}
    with pytest.raises(ValueError, match=r"model\.layers\.0\.self_attn\.k_proj\.weight has shape \(48, 48\).*\(24, 48\)"):
        hf_llama.from_hf_tensors(misshaped, cfg)


def test_parameters_that_do_not_fit_the_config_are_named():
    cfg = tiny_cfg()
    params = params_of(random_llama(cfg))
    with pytest.raises(ValueError, match=r"missing parameters: lm_head/kernel"):
        hf_llama.to_hf_tensors(params, tiny_cfg(tie_embeddings=False))
    with pytest.raises(ValueError, match=r"layers/0/mlp/gate/kernel has shape \(48, 128\), the config expects \(48, 96\)"):
        hf_llama.to_hf_tensors(params, tiny_cfg(ffn_dim=96))


def test_tied_checkpoints_may_store_an_equal_lm_head_and_rope_buffers():
    cfg = tiny_cfg()
    tensors = hf_tensors(cfg)
    embed = tensors["model.embed_tokens.weight"]
    with_copies = {**tensors, "lm_head.weight": embed.copy(),
                   "model.layers.0.self_attn.rotary_emb.inv_freq": np.ones(6, np.float32)}
    assert_same_params(hf_llama.from_hf_tensors(tensors, cfg), hf_llama.from_hf_tensors(with_copies, cfg))
    with pytest.raises(ValueError, match="lm_head.weight differs"):
        hf_llama.from_hf_tensors({**tensors, "lm_head.weight": embed + 1}, cfg)


# ---------------------------------------------------------------- command line


def test_cli_export_and_import(tmp_path, capsys):
    cfg = tiny_cfg(name="mine")
    params = params_of(random_llama(cfg))
    save_params(tmp_path / "ckpt", params, hf_llama.checkpoint_metadata(cfg))

    assert cli.main(["convert", "export", str(tmp_path / "ckpt"), str(tmp_path / "hf")]) == 0
    assert {"config.json", "model.safetensors"} <= {p.name for p in (tmp_path / "hf").iterdir()}
    assert f"{count_params(cfg):,} parameters" in capsys.readouterr().out

    assert cli.main(["convert", "import", str(tmp_path / "hf"), str(tmp_path / "back")]) == 0
    meta = json.loads((tmp_path / "back" / "metadata.json").read_text())
    assert meta["kind"] == "llm" and meta["model"]["d_model"] == cfg.d_model
    assert_same_params(params, hf_llama.read_checkpoint(tmp_path / "back")[1])

    assert cli.main(["convert", "import", str(tmp_path / "nowhere"), str(tmp_path / "x")]) == 2
    assert "nowhere" in capsys.readouterr().err


# ---------------------------------------------------------------- against transformers


@pytest.fixture(scope="module")
def transformers():
    pytest.importorskip("torch")
    return pytest.importorskip("transformers")


def hf_logits(model, tokens):
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(tokens)).logits.numpy()


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_transformers_checkpoint_loads_with_the_same_logits(tmp_path, transformers, tie):
    import torch

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, rope_theta=250000.0, rms_norm_eps=1e-5,
        max_position_embeddings=64, tie_word_embeddings=tie, initializer_range=0.2)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():  # HF initialises norms to one, which would hide swapped norms
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    model.save_pretrained(tmp_path)

    ours = hf_llama.load(tmp_path)
    assert (ours.cfg.n_kv_heads, ours.cfg.head_dim, ours.cfg.rope_theta) == (2, 16, 250000.0)
    np.testing.assert_allclose(np.asarray(ours(TOKENS)), hf_logits(model, TOKENS), rtol=1e-4, atol=1e-4)

    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")  # how most public checkpoints ship
    widened = params_of(hf_llama.load(tmp_path / "bf16"))
    np.testing.assert_array_equal(widened["layers"][1]["attn"]["k"]["kernel"],
                                  model.model.layers[1].self_attn.k_proj.weight.detach().float().numpy().T)


@pytest.mark.parametrize("over", CONFIGS.values(), ids=CONFIGS.keys())
def test_saved_checkpoint_loads_in_transformers_with_the_same_logits(tmp_path, transformers, over):
    model = random_llama(tiny_cfg(**over))
    hf_llama.save(model, tmp_path)
    theirs = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    np.testing.assert_allclose(hf_logits(theirs, TOKENS), np.asarray(model(TOKENS)), rtol=1e-4, atol=1e-4)
