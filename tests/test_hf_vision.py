import json

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import safetensors.numpy
from flax import nnx
from PIL import Image

from visual_priors.model import encoders, vision
from visual_priors.model.convert import hf_vision

RNG = np.random.default_rng(0)
ENC = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=64,
            max_position_embeddings=16)
DINO = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, image_size=56, patch_size=14)


def uint8_images(size, n=2):
    return RNG.integers(0, 256, (n, size, size, 3)).astype(np.uint8)


@nnx.jit
def forward(vit, images, keep=None):
    """(hidden states, outputs) as one program: compiling is cheaper than running op by op."""
    return vit.hidden_states(images, keep), vit(images, keep)


# ---------------------------------------------------------------- the ViT options, without transformers


def test_local_vit_defaults_and_resizing():
    cfg = vision.vit_config("tiny")
    cfg.update(depth=1, width=32, heads=2, mlp_dim=64)
    vit = nnx.jit(lambda: vision.ViT(cfg, rngs=nnx.Rngs(0)))()
    assert vit.num_prefix_tokens == 0
    # The default mean/std reproduce the old uint8 -> [-1, 1] mapping bit for bit.
    every = jnp.arange(256, dtype=jnp.uint8).reshape(1, 16, 16, 1).repeat(3, -1)
    np.testing.assert_array_equal(vision.to_float_images(every, "float32"),
                                  every.astype(jnp.float32) / 127.5 - 1.0)
    # Images of another size are resized to image_size as PIL resizes them (here bilinearly),
    # at most one grey level apart, then normalised.
    big = uint8_images(48)
    pil = np.stack([np.asarray(Image.fromarray(x).resize((32, 32), Image.BILINEAR)) for x in big])
    ours = np.asarray(vit.preprocess(jnp.asarray(big))) * 127.5 + 127.5
    assert np.abs(ours - pil).max() <= 1 + 1e-4 and np.mean(np.abs(ours - pil) > 0.5) < 0.02
    assert forward(vit, jnp.asarray(big))[1]["tokens"].shape == (2, 16, 32)
    # A config saved before the new fields existed is completed to the same one: the same ViT.
    old = ml_collections.ConfigDict({k: v for k, v in cfg.to_dict().items() if k not in vision._ARCH_DEFAULTS})
    assert nnx.eval_shape(lambda: vision.ViT(old, rngs=nnx.Rngs(0))).cfg == vit.cfg
    cfg.update(pool="cls", class_token=False)
    with pytest.raises(ValueError, match="class token"):
        vision.ViT(cfg, rngs=nnx.Rngs(0))


def test_prefix_tokens_and_options_shapes():
    cfg = vision.vit_config("tiny")
    cfg.update(pool="map", num_registers=3, pre_norm=True, layer_scale=1e-5, swiglu=True, act="gelu",
               class_token=True, patch_bias=False, qkv_bias=False, pos_grid=2)
    vit = nnx.eval_shape(lambda: vision.ViT(cfg, rngs=nnx.Rngs(0)))
    out = nnx.eval_shape(lambda m: m(jnp.zeros((2, 32, 32, 3), jnp.uint8)), vit)
    assert vit.num_prefix_tokens == 4 and out["tokens"].shape == (2, 16, 96) and out["pooled"].shape == (2, 96)
    assert vit.pos_embed.get_value().shape == (1 + 4, 96)  # the 2x2 checkpoint grid, resized to 4x4
    assert vit.blocks[0].fc1.kernel.get_value().shape == (96, 2 * 192) and vit.blocks[0].q.bias is None
    with pytest.raises(ValueError, match="unknown activation"):
        cfg.act = "relu6"
        vision.ViT(cfg, rngs=nnx.Rngs(0))


def test_resize_matrix_keeps_an_equal_grid_and_constants():
    for antialias in (False, True):
        np.testing.assert_allclose(vision.resize_matrix(5, 5, antialias), np.eye(5), atol=1e-12)
        for n_in, n_out in ((4, 7), (9, 3)):
            np.testing.assert_allclose(vision.resize_matrix(n_in, n_out, antialias).sum(1), 1.0, atol=1e-12)


def test_configs_from_hf_dicts():
    assert set(hf_vision.DESCRIPTIONS) == set(hf_vision.FAMILIES)
    clip = hf_vision.vit_config_from_hf({"model_type": "clip", "vision_config": {"patch_size": 14}})
    assert (clip.width, clip.image_size, clip.patch_size, clip.act, clip.pool) == (768, 224, 14, "quick_gelu", "cls")
    assert clip.image_mean == hf_vision._CLIP_MEAN and clip.pre_norm and not clip.patch_bias
    giant = hf_vision.vit_config_from_hf({"model_type": "dinov2", "hidden_size": 1536, "num_hidden_layers": 40,
                                          "num_attention_heads": 24, "use_swiglu_ffn": True, "image_size": 518})
    assert giant.swiglu and giant.mlp_dim == 4096 and giant.pos_grid == 37
    assert giant.image_mean == (0.485, 0.456, 0.406) and giant.layer_scale == 1.0
    pre = {"crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "resample": 2,
           "image_mean": [0.1, 0.2, 0.3], "image_std": [1, 1, 1], "size": {"shortest_edge": 256}}
    cfg = hf_vision.vit_config_from_hf({"model_type": "dinov2", "image_size": 518}, pre)
    assert (cfg.image_size, cfg.pos_grid, cfg.resize, cfg.image_mean) == (224, 37, "bilinear", (0.1, 0.2, 0.3))
    siglip = hf_vision.vit_config_from_hf({"architectures": ["SiglipModel"], "vision_config": {}})
    assert siglip.pool == "map" and not siglip.class_token and siglip.image_std == (0.5, 0.5, 0.5)
    vit_l = hf_vision.vit_config_from_hf({"model_type": "vit", "hidden_size": 1024, "num_hidden_layers": 24,
                                          "num_attention_heads": 16, "intermediate_size": 4096})
    assert (vit_l.pool, vit_l.patch_size, vit_l.image_size, vit_l.resize) == ("cls_tanh", 16, 224, "bilinear")
    assert vit_l.image_mean == (0.5, 0.5, 0.5) and vit_l.norm_eps == 1e-12 and vit_l.act == "gelu"
    assert hf_vision.vit_config_from_hf({"architectures": ["ViTForImageClassification"]}, pooler=False).pool == "cls"
    with pytest.raises(ValueError, match="'resnet'.*supported"):
        hf_vision.vit_config_from_hf({"model_type": "resnet"})
    with pytest.raises(ValueError, match="hidden_act='relu'"):
        hf_vision.vit_config_from_hf({"model_type": "vit_mae", "hidden_act": "relu"})


# ---------------------------------------------------------------- against transformers


@pytest.fixture(scope="module")
def transformers():
    pytest.importorskip("torch")
    return pytest.importorskip("transformers")


def randomize(model):
    """Every parameter random (norm and layer scales around 1), so that any misplaced tensor shows."""
    import torch

    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            around_one = name.endswith("lambda1") or ("norm" in name and name.endswith("weight"))
            p.copy_(float(around_one) + 0.3 * torch.randn(p.shape, generator=g))
    return model.eval()


def saved(model, path):
    randomize(model).save_pretrained(path)
    return model


def hf_outputs(model, pixels, **kw):
    import torch

    with torch.no_grad():
        out = model(torch.as_tensor(pixels.transpose(0, 3, 1, 2), dtype=torch.float32),
                    output_hidden_states=True, **kw)
    pooled = out.pooler_output if getattr(out, "pooler_output", None) is not None else out.last_hidden_state[:, 0]
    return [h.numpy() for h in out.hidden_states], pooled.numpy()


def normalised(images, cfg):
    return ((images / 255.0 - np.asarray(cfg.image_mean)) / np.asarray(cfg.image_std)).astype(np.float32)


def assert_close(ours, theirs):
    theirs = np.asarray(theirs)
    np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def assert_matches(vit, model, images, keep=None, **kw):
    """Every hidden state and the pooled output of ``vit`` on uint8 ``images`` against HF's on the
    same normalised pixels; then the tokens from feature_layer."""
    theirs, pooled = hf_outputs(model, normalised(images, vit.cfg), **kw)
    ours, out = forward(vit, jnp.asarray(images), keep)
    assert len(ours) == len(theirs) == vit.cfg.depth + 1
    for a, b in zip(ours, theirs):
        assert_close(a, b)
    if keep is None:
        assert_close(out["pooled"], pooled)
        np.testing.assert_array_equal(out["tokens"], ours[-2][:, vit.num_prefix_tokens:])


def build_hf(transformers, kind, tmp_path):
    """(model whose forward HF compares, saved directory) for one checkpoint kind."""
    t = transformers
    vision_cfg = dict(ENC, image_size=32, patch_size=8)
    if kind == "clip_vision":
        model = t.CLIPVisionModel(t.CLIPVisionConfig(**vision_cfg))
        return saved(model, tmp_path), tmp_path
    if kind == "clip_full":
        model = t.CLIPModel(t.CLIPConfig(vision_config=vision_cfg, text_config=TEXT, projection_dim=16))
        return saved(model, tmp_path).vision_model, tmp_path
    if kind == "metaclip_2":
        if not hasattr(t, "MetaClip2Model"):
            pytest.skip("this transformers has no MetaCLIP 2")
        model = t.MetaClip2Model(t.MetaClip2Config(vision_config=vision_cfg, text_config=TEXT, projection_dim=16))
        return saved(model, tmp_path).vision_model, tmp_path
    if kind == "siglip_vision":
        model = t.SiglipVisionModel(t.SiglipVisionConfig(**vision_cfg))
        return saved(model, tmp_path), tmp_path
    if kind == "siglip_full":
        model = t.SiglipModel(t.SiglipConfig(vision_config=vision_cfg, text_config=TEXT))
        return saved(model, tmp_path).vision_model, tmp_path
    if kind == "dinov2":
        return saved(t.Dinov2Model(t.Dinov2Config(**DINO)), tmp_path), tmp_path
    if kind == "dinov2_swiglu":
        return saved(t.Dinov2Model(t.Dinov2Config(use_swiglu_ffn=True, **DINO)), tmp_path), tmp_path
    if kind == "dinov2_registers":
        if not hasattr(t, "Dinov2WithRegistersModel"):
            pytest.skip("this transformers has no Dinov2WithRegisters")
        model = t.Dinov2WithRegistersModel(t.Dinov2WithRegistersConfig(num_register_tokens=2, **DINO))
        return saved(model, tmp_path), tmp_path
    if kind == "vit":  # ImageNet-21k ViTs ship as a ViTModel with its tanh pooler
        return saved(t.ViTModel(t.ViTConfig(**vision_cfg)), tmp_path), tmp_path
    if kind == "vit_classifier":  # encoder under "vit.", no pooler, plus a classifier
        model = t.ViTForImageClassification(t.ViTConfig(num_labels=5, **vision_cfg))
        return saved(model, tmp_path).vit, tmp_path
    if kind == "mae":
        return saved(t.ViTMAEModel(t.ViTMAEConfig(mask_ratio=0.0, **vision_cfg)), tmp_path), tmp_path
    if kind == "mae_pretraining":  # public MAE checkpoints: encoder under "vit.", plus a decoder
        model = t.ViTMAEForPreTraining(t.ViTMAEConfig(
            mask_ratio=0.0, decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
            decoder_intermediate_size=32, **vision_cfg))
        return saved(model, tmp_path).vit, tmp_path
    raise AssertionError(kind)


KINDS = ("clip_vision", "clip_full", "metaclip_2", "siglip_vision", "siglip_full", "dinov2", "dinov2_swiglu",
         "dinov2_registers", "mae", "mae_pretraining", "vit", "vit_classifier")


def mae_identity_noise(vit, n):
    import torch  # argsort of increasing noise keeps every patch in its place

    return {"noise": torch.arange(vit.num_patches, dtype=torch.float32).repeat(n, 1)}


@pytest.mark.parametrize("kind", KINDS)
def test_hidden_states_match_transformers(tmp_path, transformers, kind):
    model, hf_dir = build_hf(transformers, kind, tmp_path)
    vit = hf_vision.load(hf_dir)
    assert vit.cfg.feature_layer == -2
    images = uint8_images(vit.cfg.image_size)
    kw = mae_identity_noise(vit, len(images)) if kind.startswith("mae") else {}
    assert_matches(vit, model, images, **kw)


def test_float_images_and_mae_masking_match_transformers(tmp_path, transformers):
    import torch

    model, hf_dir = build_hf(transformers, "mae", tmp_path)
    vit = hf_vision.load(hf_dir)
    images = uint8_images(32)
    pixels = normalised(images, vit.cfg)
    # Already-normalised float images skip the normalisation.
    theirs, _ = hf_outputs(model, pixels, **mae_identity_noise(vit, 2))
    assert_close(forward(vit, jnp.asarray(pixels))[0][-1], theirs[-1])
    # HF's random masking keeps the patches argsort(noise)[:, :K], in that order: keep= does the same.
    model.config.mask_ratio = 0.75
    noise = torch.rand(2, vit.num_patches, generator=torch.Generator().manual_seed(0))
    keep = jnp.asarray(torch.argsort(noise, dim=1)[:, : vit.num_patches // 4].numpy())
    assert_matches(vit, model, images, keep=keep, noise=noise)


@pytest.mark.parametrize("kind", ["dinov2", "dinov2_registers"])
def test_dinov2_position_grid_is_resized_as_transformers_does(tmp_path, transformers, kind):
    model, hf_dir = build_hf(transformers, kind, tmp_path)
    (hf_dir / "preprocessor_config.json").write_text(json.dumps({"crop_size": {"height": 42, "width": 42}}))
    vit = hf_vision.load(hf_dir)
    assert (vit.cfg.image_size, vit.grid, vit.pos_grid) == (42, 3, 4)  # runs at 42 px, trained at 56
    assert_matches(vit, model, uint8_images(42))


def test_resizing_follows_the_hf_image_processor(tmp_path, transformers):
    model, hf_dir = build_hf(transformers, "clip_vision", tmp_path)
    processor = transformers.CLIPImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False)
    processor.save_pretrained(hf_dir)
    vit = hf_vision.load(hf_dir)
    assert vit.cfg.resize == "bicubic" and vit.cfg.image_std == tuple(processor.image_std)
    world = uint8_images(64)  # world images of another size
    pixels = processor(images=list(world), return_tensors="np")["pixel_values"].transpose(0, 2, 3, 1)
    # PIL resamples in fixed point: at most one grey level apart, and rarely.
    levels = np.abs(np.asarray(vit.preprocess(jnp.asarray(world))) - pixels) * np.asarray(vit.cfg.image_std) * 255
    assert levels.max() < 1.01 and np.mean(levels > 0.5) < 0.02


def test_vit_resizes_as_its_default_image_processor(tmp_path, transformers):
    _, hf_dir = build_hf(transformers, "vit", tmp_path)  # no preprocessor_config.json
    vit = hf_vision.load(hf_dir)
    assert vit.cfg.pool == "cls_tanh" and vit.cfg.resize == "bilinear"
    processor = transformers.ViTImageProcessor(size={"height": 32, "width": 32})  # its defaults otherwise
    assert vit.cfg.image_mean == tuple(processor.image_mean) and vit.cfg.image_std == tuple(processor.image_std)
    world = uint8_images(64)
    pixels = processor(images=list(world), return_tensors="np")["pixel_values"].transpose(0, 2, 3, 1)
    levels = np.abs(np.asarray(vit.preprocess(jnp.asarray(world))) - pixels) * np.asarray(vit.cfg.image_std) * 255
    # PIL rounds after each bilinear pass: under a grey level apart (bicubic would be ~6 on average).
    assert levels.max() < 1.01 and levels.mean() < 0.5


def test_checkpoint_round_trip_is_bitwise(tmp_path, transformers):
    _, hf_dir = build_hf(transformers, "siglip_vision", tmp_path / "hf")
    cfg = hf_vision.import_checkpoint(hf_dir, tmp_path / "ckpt")
    meta = json.loads((tmp_path / "ckpt" / "metadata.json").read_text())
    assert meta["kind"] == "vit" and meta["family"] == "siglip" and meta["config"]["pool"] == "map"
    assert meta["config"] == json.loads(json.dumps(cfg.to_dict()))
    images = jnp.asarray(uint8_images(32))
    _, a = forward(hf_vision.load(hf_dir), images)
    _, b = forward(encoders.load_frozen(tmp_path / "ckpt"), images)
    for k in ("tokens", "pooled"):
        np.testing.assert_array_equal(a[k], b[k])


def test_sharded_and_bfloat16_checkpoints(tmp_path, transformers):
    import torch

    model, hf_dir = build_hf(transformers, "clip_full", tmp_path / "one")
    images = jnp.asarray(uint8_images(32))
    want = forward(hf_vision.load(hf_dir), images)[1]["tokens"]
    tensors = safetensors.numpy.load_file(hf_dir / hf_vision.SINGLE_FILE)
    (hf_dir / hf_vision.SINGLE_FILE).unlink()
    names = sorted(tensors)
    weight_map = {}
    for n, part in enumerate((names[::2], names[1::2]), 1):
        file = f"model-0000{n}-of-00002.safetensors"
        safetensors.numpy.save_file({k: tensors[k] for k in part}, hf_dir / file, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
    (hf_dir / hf_vision.INDEX_FILE).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    np.testing.assert_array_equal(forward(hf_vision.load(hf_dir), images)[1]["tokens"], want)
    # Public checkpoints often ship in bfloat16: read, then kept in the dtype asked for.
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    vit = hf_vision.load(tmp_path / "bf16", dtype="bfloat16")
    assert vit.blocks[0].q.kernel.get_value().dtype == jnp.bfloat16


# ---------------------------------------------------------------- errors


def test_unknown_family_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "resnet", "architectures": ["ResNetModel"]}))
    with pytest.raises(ValueError, match="model_type 'resnet' is not a supported vision encoder"):
        hf_vision.load(tmp_path)


def test_missing_tensor_wrong_shape_and_corrupt_file_are_named(tmp_path, transformers):
    _, hf_dir = build_hf(transformers, "dinov2", tmp_path)
    file = hf_dir / hf_vision.SINGLE_FILE
    tensors = safetensors.numpy.load_file(file)

    gone = "encoder.layer.1.layer_scale2.lambda1"
    safetensors.numpy.save_file({k: v for k, v in tensors.items() if k != gone}, file, metadata={"format": "pt"})
    with pytest.raises(ValueError, match=f"missing tensor.*{gone}"):
        hf_vision.load(hf_dir)

    safetensors.numpy.save_file(tensors, file, metadata={"format": "pt"})
    config = json.loads((hf_dir / "config.json").read_text())
    (hf_dir / "config.json").write_text(json.dumps({**config, "mlp_ratio": 2}))
    with pytest.raises(ValueError, match=r"tensor encoder.layer.0.mlp.fc1.weight has shape \(128, 32\), "
                                         r"the config expects \(64, 32\)"):
        hf_vision.load(hf_dir)
    (hf_dir / "config.json").write_text(json.dumps(config))

    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"cannot read .*{hf_vision.SINGLE_FILE}"):
        hf_vision.load(hf_dir)
