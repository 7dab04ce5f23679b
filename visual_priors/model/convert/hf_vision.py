"""Hugging Face vision encoders -> ``visual_priors.model.vision.ViT``.

Families (``FAMILIES``): CLIP and MetaCLIP, SigLIP, DINOv2 (with SwiGLU and registers), MAE, and
the original ViT (Google's ImageNet-21k ViTs, the Platonic-representation reference). A
directory holds ``config.json`` and ``model.safetensors`` or shards listed in
``model.safetensors.index.json``, and may hold ``preprocessor_config.json`` (image size, mean,
std, resampling; else the family's published defaults). Only the vision tower of a dual-tower
CLIP/SigLIP checkpoint is read. Tensors are read lazily with ``safetensors`` (numpy, no torch).

    vit = hf_vision.load("clip-vit-large-patch14-336")        # a ViT, float32 parameters
    hf_vision.import_checkpoint("dinov2-base", "ckpt")        # the project's checkpoint format
    vit = encoders.load_frozen("ckpt")       # from visual_priors.model import encoders

The ViT's ``hidden_states`` are Hugging Face's ``output_hidden_states=True`` tuple (the input to
the first block, after CLIP's ``pre_layrnorm``, then each block's output, before the final norm),
``pooled`` its ``pooler_output`` (SigLIP's attention-pooling head; ViT's tanh pooler; for MAE and
a ViT saved without a pooler, the normed class token). MAE runs as a feature extractor: every patch kept, in order
(``mask_ratio`` is ignored; ``ViT(..., keep=...)`` does the masking when wanted).

The ViT runs at the processor's image size: images of another size (world images) are resized
whole to it with the processor's resampling (by default bicubic, bilinear for ViT; no centre crop), and
a checkpoint whose position grid differs (DINOv2: 518 px grid, 224 px crop) has the grid resized
the way transformers' ``interpolate_pos_encoding`` does.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import ml_collections
import ml_dtypes
import numpy as np
import safetensors
from flax import nnx, traverse_util

from visual_priors.errors import BadFile, MissingFile, read_json
from visual_priors.model import vision
from visual_priors.model.params_io import save_params

FAMILIES = ("clip", "siglip", "dinov2", "mae", "vit")
DESCRIPTIONS = {
    "clip": "CLIP and MetaCLIP vision towers (CLIPVisionModel, CLIPModel, MetaClip2Model): class token, "
            "pre-norm, quick-GELU",
    "siglip": "SigLIP vision towers (SiglipVisionModel, SiglipModel): no class token, attention-pooling head",
    "dinov2": "DINOv2 (Dinov2Model, Dinov2WithRegistersModel): layer scale, SwiGLU MLP (giant), register tokens",
    "mae": "MAE encoders (ViTMAEModel, ViTMAEForPreTraining) as feature extractors: all patches, in order",
    "vit": "the original ViT (ViTModel, ViTForImageClassification, e.g. google/vit-large-patch16-224-in21k): "
           "class token, tanh pooler when saved with one",
}
_MODEL_TYPES = {
    "clip": "clip", "clip_vision_model": "clip", "metaclip_2": "clip", "metaclip_2_vision_model": "clip",
    "siglip": "siglip", "siglip_vision_model": "siglip",
    "dinov2": "dinov2", "dinov2_with_registers": "dinov2",
    "vit_mae": "mae",
    "vit": "vit",
}
_ARCHITECTURES = {
    "CLIPModel": "clip", "CLIPVisionModel": "clip", "CLIPVisionModelWithProjection": "clip",
    "MetaClip2Model": "clip", "MetaClip2VisionModel": "clip",
    "SiglipModel": "siglip", "SiglipVisionModel": "siglip",
    "Dinov2Model": "dinov2", "Dinov2WithRegistersModel": "dinov2",
    "ViTMAEModel": "mae", "ViTMAEForPreTraining": "mae",
    "ViTModel": "vit", "ViTForImageClassification": "vit",
}

# HF config defaults (the config classes'), for fields a config.json leaves out.
_ENCODER = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, image_size=224)
_CONFIG_DEFAULTS = {
    "clip": dict(_ENCODER, intermediate_size=3072, patch_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5),
    "siglip": dict(_ENCODER, intermediate_size=3072, patch_size=16, hidden_act="gelu_pytorch_tanh",
                   layer_norm_eps=1e-6, vision_use_head=True),
    "dinov2": dict(_ENCODER, mlp_ratio=4, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-6, qkv_bias=True,
                   layerscale_value=1.0, use_swiglu_ffn=False, num_register_tokens=0),
    "mae": dict(_ENCODER, intermediate_size=3072, patch_size=16, hidden_act="gelu", layer_norm_eps=1e-12,
                qkv_bias=True),
}
_CONFIG_DEFAULTS["vit"] = _CONFIG_DEFAULTS["mae"]  # ViTMAEConfig copies ViTConfig
_CONFIG_DEFAULTS_REGISTERS = dict(patch_size=16, num_register_tokens=4)  # Dinov2WithRegistersConfig's
_HF_ACTIVATIONS = {"gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh",
                   "quick_gelu": "quick_gelu"}

# Preprocessing the families publish (their processors' defaults), 0..1 units.
_CLIP_MEAN, _CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_PREPROCESS = {
    "clip": (_CLIP_MEAN, _CLIP_STD),
    "siglip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "dinov2": (_IMAGENET_MEAN, _IMAGENET_STD),
    "mae": (_IMAGENET_MEAN, _IMAGENET_STD),
    "vit": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # ViTImageProcessor's
}
# The processors' default resampling (PIL codes): ViTImageProcessor's is bilinear.
_DEFAULT_RESAMPLE = {"vit": 2}
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos3", 2: "bilinear", 3: "bicubic"}

# Every tensor of a family: HF name after the vision tower's prefix ("{i}" = layer index), our
# pure-dict path, and how the HF tensor becomes ours. The only place that knows both layouts.
# Rows whose path the configured ViT lacks (registers, biases, the pooling head...) are skipped.
SAME, LINEAR, CONV, SQUEEZE, UNSQUEEZE = "same", "linear", "conv", "squeeze", "unsqueeze"
# linear: torch Linear [out, in] -> kernel [in, out]; conv: patch Conv2d [W, 3, p, p] -> kernel
# [p*p*3, W] in the ViT's (row, column, channel) patch order; squeeze: drop HF's leading 1 axis;
# unsqueeze: HF [W] -> [1, W].
_CLIP_BLOCKS = (
    ("encoder.layers.{i}.layer_norm1.weight", "blocks/{i}/norm1/scale", SAME),
    ("encoder.layers.{i}.layer_norm1.bias", "blocks/{i}/norm1/bias", SAME),
    ("encoder.layers.{i}.self_attn.q_proj.weight", "blocks/{i}/q/kernel", LINEAR),
    ("encoder.layers.{i}.self_attn.q_proj.bias", "blocks/{i}/q/bias", SAME),
    ("encoder.layers.{i}.self_attn.k_proj.weight", "blocks/{i}/k/kernel", LINEAR),
    ("encoder.layers.{i}.self_attn.k_proj.bias", "blocks/{i}/k/bias", SAME),
    ("encoder.layers.{i}.self_attn.v_proj.weight", "blocks/{i}/v/kernel", LINEAR),
    ("encoder.layers.{i}.self_attn.v_proj.bias", "blocks/{i}/v/bias", SAME),
    ("encoder.layers.{i}.self_attn.out_proj.weight", "blocks/{i}/o/kernel", LINEAR),
    ("encoder.layers.{i}.self_attn.out_proj.bias", "blocks/{i}/o/bias", SAME),
    ("encoder.layers.{i}.layer_norm2.weight", "blocks/{i}/norm2/scale", SAME),
    ("encoder.layers.{i}.layer_norm2.bias", "blocks/{i}/norm2/bias", SAME),
    ("encoder.layers.{i}.mlp.fc1.weight", "blocks/{i}/fc1/kernel", LINEAR),
    ("encoder.layers.{i}.mlp.fc1.bias", "blocks/{i}/fc1/bias", SAME),
    ("encoder.layers.{i}.mlp.fc2.weight", "blocks/{i}/fc2/kernel", LINEAR),
    ("encoder.layers.{i}.mlp.fc2.bias", "blocks/{i}/fc2/bias", SAME),
    ("post_layernorm.weight", "final_norm/scale", SAME),
    ("post_layernorm.bias", "final_norm/bias", SAME),
)
# DINOv2, MAE and ViT share the ViT layout of the attention; DINOv2's MLP and norm names differ.
_VIT_ATTENTION = (
    ("encoder.layer.{i}.attention.attention.query.weight", "blocks/{i}/q/kernel", LINEAR),
    ("encoder.layer.{i}.attention.attention.query.bias", "blocks/{i}/q/bias", SAME),
    ("encoder.layer.{i}.attention.attention.key.weight", "blocks/{i}/k/kernel", LINEAR),
    ("encoder.layer.{i}.attention.attention.key.bias", "blocks/{i}/k/bias", SAME),
    ("encoder.layer.{i}.attention.attention.value.weight", "blocks/{i}/v/kernel", LINEAR),
    ("encoder.layer.{i}.attention.attention.value.bias", "blocks/{i}/v/bias", SAME),
    ("encoder.layer.{i}.attention.output.dense.weight", "blocks/{i}/o/kernel", LINEAR),
    ("encoder.layer.{i}.attention.output.dense.bias", "blocks/{i}/o/bias", SAME),
    ("embeddings.cls_token", "cls", SQUEEZE),
    ("embeddings.position_embeddings", "pos_embed", SQUEEZE),
    ("embeddings.patch_embeddings.projection.weight", "patch_embed/kernel", CONV),
    ("embeddings.patch_embeddings.projection.bias", "patch_embed/bias", SAME),
    ("layernorm.weight", "final_norm/scale", SAME),
    ("layernorm.bias", "final_norm/bias", SAME),
)
# MAE and the original ViT: the ViT attention, then norms and MLP under the names BERT gave them.
_VIT_BLOCKS = (
    *_VIT_ATTENTION,
    ("encoder.layer.{i}.layernorm_before.weight", "blocks/{i}/norm1/scale", SAME),
    ("encoder.layer.{i}.layernorm_before.bias", "blocks/{i}/norm1/bias", SAME),
    ("encoder.layer.{i}.layernorm_after.weight", "blocks/{i}/norm2/scale", SAME),
    ("encoder.layer.{i}.layernorm_after.bias", "blocks/{i}/norm2/bias", SAME),
    ("encoder.layer.{i}.intermediate.dense.weight", "blocks/{i}/fc1/kernel", LINEAR),
    ("encoder.layer.{i}.intermediate.dense.bias", "blocks/{i}/fc1/bias", SAME),
    ("encoder.layer.{i}.output.dense.weight", "blocks/{i}/fc2/kernel", LINEAR),
    ("encoder.layer.{i}.output.dense.bias", "blocks/{i}/fc2/bias", SAME),
)
_TENSORS = {
    "clip": (
        ("embeddings.patch_embedding.weight", "patch_embed/kernel", CONV),
        ("embeddings.class_embedding", "cls", UNSQUEEZE),
        ("embeddings.position_embedding.weight", "pos_embed", SAME),
        ("pre_layrnorm.weight", "pre_norm/scale", SAME),
        ("pre_layrnorm.bias", "pre_norm/bias", SAME),
        *_CLIP_BLOCKS,
    ),
    "siglip": (
        ("embeddings.patch_embedding.weight", "patch_embed/kernel", CONV),
        ("embeddings.patch_embedding.bias", "patch_embed/bias", SAME),
        ("embeddings.position_embedding.weight", "pos_embed", SAME),
        *_CLIP_BLOCKS,
        ("head.probe", "head/probe", SQUEEZE),
        ("head.attention.in_proj_weight", "head/in_proj/kernel", LINEAR),
        ("head.attention.in_proj_bias", "head/in_proj/bias", SAME),
        ("head.attention.out_proj.weight", "head/out_proj/kernel", LINEAR),
        ("head.attention.out_proj.bias", "head/out_proj/bias", SAME),
        ("head.layernorm.weight", "head/norm/scale", SAME),
        ("head.layernorm.bias", "head/norm/bias", SAME),
        ("head.mlp.fc1.weight", "head/fc1/kernel", LINEAR),
        ("head.mlp.fc1.bias", "head/fc1/bias", SAME),
        ("head.mlp.fc2.weight", "head/fc2/kernel", LINEAR),
        ("head.mlp.fc2.bias", "head/fc2/bias", SAME),
    ),
    "dinov2": (
        *_VIT_ATTENTION,
        ("embeddings.register_tokens", "registers", SQUEEZE),
        ("encoder.layer.{i}.norm1.weight", "blocks/{i}/norm1/scale", SAME),
        ("encoder.layer.{i}.norm1.bias", "blocks/{i}/norm1/bias", SAME),
        ("encoder.layer.{i}.layer_scale1.lambda1", "blocks/{i}/ls1", SAME),
        ("encoder.layer.{i}.norm2.weight", "blocks/{i}/norm2/scale", SAME),
        ("encoder.layer.{i}.norm2.bias", "blocks/{i}/norm2/bias", SAME),
        # One of the two MLPs, by cfg.swiglu: weights_in is [gate | up], our fused fc1.
        ("encoder.layer.{i}.mlp.fc1.weight", "blocks/{i}/fc1/kernel", LINEAR),
        ("encoder.layer.{i}.mlp.fc1.bias", "blocks/{i}/fc1/bias", SAME),
        ("encoder.layer.{i}.mlp.fc2.weight", "blocks/{i}/fc2/kernel", LINEAR),
        ("encoder.layer.{i}.mlp.fc2.bias", "blocks/{i}/fc2/bias", SAME),
        ("encoder.layer.{i}.mlp.weights_in.weight", "blocks/{i}/fc1/kernel", LINEAR),
        ("encoder.layer.{i}.mlp.weights_in.bias", "blocks/{i}/fc1/bias", SAME),
        ("encoder.layer.{i}.mlp.weights_out.weight", "blocks/{i}/fc2/kernel", LINEAR),
        ("encoder.layer.{i}.mlp.weights_out.bias", "blocks/{i}/fc2/bias", SAME),
        ("encoder.layer.{i}.layer_scale2.lambda1", "blocks/{i}/ls2", SAME),
    ),
    "mae": _VIT_BLOCKS,
    "vit": (
        *_VIT_BLOCKS,
        ("pooler.dense.weight", "pooler/kernel", LINEAR),
        ("pooler.dense.bias", "pooler/bias", SAME),
    ),
}
# The tensor that locates the vision tower in a file (its name's prefix is the tower's).
_ANCHOR = {"clip": "embeddings.patch_embedding.weight", "siglip": "embeddings.patch_embedding.weight",
           "dinov2": "embeddings.patch_embeddings.projection.weight",
           "mae": "embeddings.patch_embeddings.projection.weight",
           "vit": "embeddings.patch_embeddings.projection.weight"}
_POOLER = "pooler.dense.weight"  # present in a ViT checkpoint saved with its pooler
# Tensors under the tower's prefix that a feature extractor does not use.
_UNUSED = ("embeddings.mask_token", "embeddings.position_ids")

# Importing ml_dtypes registers "bfloat16" with numpy, which safetensors needs to read BF16 tensors.
_BFLOAT16 = ml_dtypes.bfloat16

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
PREPROCESSOR_FILE = "preprocessor_config.json"


# ---------------------------------------------------------------- configs


def family_of(hf: dict) -> str:
    """The family of an HF ``config.json`` dict, from ``model_type`` (else ``architectures``)."""
    model_type = hf.get("model_type")
    if model_type is not None:
        if model_type not in _MODEL_TYPES:
            raise BadFile(f"model_type {model_type!r} is not a supported vision encoder; supported: "
                             f"{', '.join(sorted(_MODEL_TYPES))} (families {', '.join(FAMILIES)})")
        return _MODEL_TYPES[model_type]
    known = [_ARCHITECTURES[a] for a in hf.get("architectures") or () if a in _ARCHITECTURES]
    if not known:
        raise BadFile(f"config.json has no model_type and no known architecture "
                         f"({hf.get('architectures')}); supported: {', '.join(sorted(_ARCHITECTURES))}")
    return known[0]


def _square(value, what: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise BadFile(f"{what}={value} is not square; only square images are supported")
        value = value[0]
    return int(value)


def _processed_size(pre: dict) -> int | None:
    """The side of the images a preprocessor config feeds the model (its crop, else its resize)."""
    if pre.get("do_center_crop", "crop_size" in pre) and pre.get("crop_size") is not None:
        size = pre["crop_size"]
    elif pre.get("do_resize", True) and pre.get("size") is not None:
        size = pre["size"]  # no crop: the resized image is what the model sees
    else:
        return None
    if isinstance(size, dict):
        if "height" in size or "width" in size:
            return _square([size.get("height"), size.get("width")], "preprocessor size")
        if "shortest_edge" in size:
            return int(size["shortest_edge"])
        raise BadFile(f"preprocessor size {size} has neither height/width nor shortest_edge")
    return _square(size, "preprocessor size")


def vit_config_from_hf(hf: dict, preprocessor: dict | None = None, name: str = "hf-vit", *,
                       pooler: bool = True) -> ml_collections.ConfigDict:
    """A ``vision.ViT`` config from an HF ``config.json`` dict (and its ``preprocessor_config.json``
    dict when there is one; else the family's published mean/std and the native image size).
    ``pooler``: whether a ViT-family checkpoint holds its tanh pooler (ViTModel does,
    ViTForImageClassification does not; config.json cannot tell)."""
    family = family_of(hf)
    tower = hf.get("vision_config", hf) if family in ("clip", "siglip") else hf
    defaults = dict(_CONFIG_DEFAULTS[family])
    if hf.get("model_type") == "dinov2_with_registers":
        defaults.update(_CONFIG_DEFAULTS_REGISTERS)
    v = {**defaults, **{k: x for k, x in tower.items() if x is not None}}
    if v["hidden_act"] not in _HF_ACTIVATIONS:
        raise BadFile(f"unsupported hidden_act={v['hidden_act']!r}; supported: {', '.join(_HF_ACTIVATIONS)}")
    if v.get("num_channels", 3) != 3:
        raise BadFile(f"num_channels={v['num_channels']}: only RGB encoders are supported")
    patch = _square(v["patch_size"], "patch_size")
    native = _square(v["image_size"], "image_size")
    if native % patch:
        raise BadFile(f"image_size={native} is not a multiple of patch_size={patch}")

    cfg = vision.vit_config("tiny")
    cfg.name = name
    cfg.patch_size = patch
    cfg.width = int(v["hidden_size"])
    cfg.depth = int(v["num_hidden_layers"])
    cfg.heads = int(v["num_attention_heads"])
    cfg.norm_eps = float(v["layer_norm_eps"])
    cfg.act = _HF_ACTIVATIONS[v["hidden_act"]]
    cfg.pos_grid = native // patch
    default_resample = _DEFAULT_RESAMPLE.get(family, 3)
    cfg.resize = _PIL_RESAMPLE[default_resample]
    if family == "dinov2":
        mlp = int(cfg.width * v["mlp_ratio"])
        cfg.swiglu = bool(v["use_swiglu_ffn"])
        # HF's Dinov2SwiGLUFFN: two thirds of the MLP width, rounded up to a multiple of 8.
        cfg.mlp_dim = (int(mlp * 2 / 3) + 7) // 8 * 8 if cfg.swiglu else mlp
        cfg.layer_scale = float(v["layerscale_value"]) or 1.0  # always present; the value is loaded
        cfg.num_registers = int(v["num_register_tokens"])
        # Dinov2WithRegisters resizes its position grid with antialiasing, Dinov2 without.
        cfg.pos_resize = "bicubic_antialias" if hf.get("model_type") == "dinov2_with_registers" else "bicubic"
    else:
        cfg.mlp_dim = int(v["intermediate_size"])
    cfg.qkv_bias = bool(v.get("qkv_bias", True))
    if family == "siglip":  # no class token; HF's pooler is the attention-pooling head, if any
        cfg.pool = "map" if v["vision_use_head"] else "mean"
        cfg.class_token = False
    elif family == "vit" and pooler:
        cfg.pool = "cls_tanh"
        cfg.class_token = True
    else:
        cfg.pool = "cls"
        cfg.class_token = True
    cfg.patch_bias = family != "clip"
    cfg.pre_norm = family == "clip"

    mean, std = _PREPROCESS[family]
    size = None
    if preprocessor:
        if preprocessor.get("do_normalize", True):
            mean, std = preprocessor.get("image_mean", mean), preprocessor.get("image_std", std)
        else:
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        size = _processed_size(preprocessor)
        resample = preprocessor.get("resample", default_resample)
        if resample not in _PIL_RESAMPLE:
            raise BadFile(f"preprocessor resample={resample!r} is not one of {sorted(_PIL_RESAMPLE)}")
        cfg.resize = _PIL_RESAMPLE[resample]
    cfg.image_size = size or native
    if cfg.image_size % patch:
        raise BadFile(f"the preprocessor's image size {cfg.image_size} is not a multiple of patch_size={patch}")
    cfg.image_mean = tuple(float(x) for x in mean)
    cfg.image_std = tuple(float(x) for x in std)
    return cfg


def read_config(hf_dir: str | Path, dtype="float32") -> tuple[str, ml_collections.ConfigDict]:
    """(family, ViT config) of an HF directory, named after it, with parameters in ``dtype``."""
    hf_dir = Path(hf_dir)
    config_file = hf_dir / "config.json"
    if not config_file.exists():
        raise MissingFile(f"{config_file} not found: not a Hugging Face model directory")
    hf = read_json(config_file, "Hugging Face config")
    pre_file = hf_dir / PREPROCESSOR_FILE
    pre = read_json(pre_file, "Hugging Face preprocessor config") if pre_file.exists() else None
    family = family_of(hf)
    pooler = False
    if family == "vit":
        tensors = _Tensors(hf_dir)
        pooler = _tower_prefix(tensors.files, family, tensors.dir) + _POOLER in tensors.files
    cfg = vit_config_from_hf(hf, pre, name=hf_dir.absolute().name, pooler=pooler)
    cfg.param_dtype = jnp.dtype(dtype).name
    return family, cfg


# ---------------------------------------------------------------- tensor mapping


def _path(text: str) -> tuple:
    # Block indices are the int keys of the nnx.List in the pure dict.
    return tuple(int(p) if p.isdigit() else p for p in text.split("/"))


def _show(path: tuple) -> str:
    return "/".join(map(str, path))


def _abstract_params(cfg) -> dict:
    """Pure dict of ShapeDtypeStructs of ``ViT(cfg)``'s parameters; nothing is allocated."""
    return nnx.state(nnx.eval_shape(lambda: vision.ViT(cfg, rngs=nnx.Rngs(0))), nnx.Param).to_pure_dict()


def _shapes(cfg) -> dict:
    return {k: v.shape for k, v in traverse_util.flatten_dict(_abstract_params(cfg)).items()}


def name_pairs(family: str, cfg, shapes: dict | None = None) -> list[tuple[str, tuple, str]]:
    """(HF name after the tower prefix, pure-dict path, transform) of every tensor of ``ViT(cfg)``."""
    shapes = _shapes(cfg) if shapes is None else shapes
    pairs = []
    for hf_name, path, kind in _TENSORS[family]:
        if family == "dinov2" and ".mlp." in hf_name and (".weights_" in hf_name) != bool(cfg.swiglu):
            continue
        for i in range(cfg.depth) if "{i}" in hf_name else [None]:
            p = _path(path.format(i=i))
            if p in shapes:
                pairs.append((hf_name.format(i=i), p, kind))
    covered = {p for _, p, _ in pairs}
    if covered != set(shapes) or len(covered) != len(pairs):  # a table bug, not a checkpoint problem
        raise AssertionError(f"the {family} table does not cover the ViT: "
                             f"{sorted(map(_show, set(shapes) - covered))}")
    return pairs


def _hf_shape(kind: str, ours: tuple, patch: int) -> tuple:
    """The shape an HF tensor must have to become one of shape ``ours``."""
    if kind == LINEAR:
        return ours[::-1]
    if kind == CONV:
        return (ours[1], 3, patch, patch)
    if kind == SQUEEZE:
        return (1, *ours)
    if kind == UNSQUEEZE:
        return ours[1:]
    return ours


def _convert(x: np.ndarray, kind: str, ours: tuple) -> np.ndarray:
    if kind == LINEAR:
        return x.T
    if kind == CONV:  # [W, c, row, col] -> [(row, col, c), W], the order of ViT.patchify
        return x.transpose(2, 3, 1, 0).reshape(ours)
    return x.reshape(ours)


class _Tensors:
    """Lazy access to the tensors of an HF directory (single file or shards), naming the file
    in every read error."""

    def __init__(self, hf_dir: str | Path):
        self.dir = Path(hf_dir)
        if (self.dir / SINGLE_FILE).exists():
            self.files = {n: SINGLE_FILE for n in self._open(SINGLE_FILE).keys()}
        elif (self.dir / INDEX_FILE).exists():
            self.files = json.loads((self.dir / INDEX_FILE).read_text())["weight_map"]
            for f in sorted(set(self.files.values())):
                if not (self.dir / f).exists():
                    raise FileNotFoundError(f"{f}, listed in {INDEX_FILE}, is not in {self.dir}")
        else:
            raise FileNotFoundError(f"{self.dir} has neither {SINGLE_FILE} nor {INDEX_FILE}")
        self._handles = {}

    def _open(self, file: str):
        try:
            return safetensors.safe_open(self.dir / file, framework="numpy")
        except Exception as e:  # safetensors raises its own error type for any unreadable file
            raise BadFile(f"cannot read {self.dir / file}: {e}") from e

    def get(self, name: str) -> np.ndarray:
        file = self.files[name]
        if file not in self._handles:
            self._handles[file] = self._open(file)
        try:
            return self._handles[file].get_tensor(name)
        except Exception as e:
            raise BadFile(f"cannot read tensor {name} from {self.dir / file}: {e}") from e


def _tower_prefix(names, family: str, where: Path) -> str:
    """The name prefix of the vision tower ('' for a vision model, 'vision_model.' in CLIPModel...)."""
    anchor = _ANCHOR[family]
    found = sorted(n[: -len(anchor)] for n in names if n == anchor or n.endswith("." + anchor))
    if not found:
        raise BadFile(f"missing tensor: no {anchor} in {where}, so no {family} vision tower")
    if len(found) > 1:
        raise BadFile(f"{where} holds several {anchor} (prefixes {found}); cannot tell the vision tower")
    return found[0]


def read_params(hf_dir: str | Path, family: str, cfg) -> dict:
    """The ``ViT(cfg)`` parameter pure dict (numpy, ``cfg.param_dtype``) from an HF directory."""
    tensors = _Tensors(hf_dir)
    prefix = _tower_prefix(tensors.files, family, tensors.dir)
    shapes = _shapes(cfg)
    pairs = name_pairs(family, cfg, shapes)
    wanted = {prefix + n for n, _, _ in pairs}
    missing = sorted(wanted - set(tensors.files))
    unexpected = sorted(n for n in tensors.files if n.startswith(prefix) and n not in wanted
                        and not n[len(prefix):].startswith(_UNUSED))
    for label, names in (("missing", missing), ("unexpected", unexpected)):
        if names:
            more = f" and {len(names) - 8} more" if len(names) > 8 else ""
            raise BadFile(f"{label} tensor(s) in {tensors.dir} for a {family} ViT with this config.json: "
                             f"{', '.join(names[:8])}{more}")
    dtype = jnp.dtype(cfg.param_dtype)
    flat = {}
    for hf_name, path, kind in pairs:
        x = tensors.get(prefix + hf_name)
        want = _hf_shape(kind, shapes[path], cfg.patch_size)
        if x.shape != want:
            raise BadFile(f"tensor {prefix + hf_name} has shape {x.shape}, the config expects {want}")
        flat[path] = np.ascontiguousarray(_convert(np.asarray(x), kind, shapes[path]), dtype=dtype)
    return traverse_util.unflatten_dict(flat)


# ---------------------------------------------------------------- models and checkpoints


def _to_jax(params: dict) -> dict:
    return traverse_util.unflatten_dict(
        {k: jnp.asarray(v) for k, v in traverse_util.flatten_dict(params).items()})


def build(cfg, params: dict) -> vision.ViT:
    """A ``ViT(cfg)`` holding ``params`` (a pure dict), without a random initialisation."""
    params = _to_jax(params)
    graphdef, state = nnx.split(nnx.eval_shape(lambda: vision.ViT(cfg, rngs=nnx.Rngs(0))))
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state)


def load(hf_dir: str | Path, dtype="float32") -> vision.ViT:
    """A ``ViT`` from an HF vision-encoder directory, parameters in ``dtype`` (compute float32)."""
    family, cfg = read_config(hf_dir, dtype)
    return build(cfg, read_params(hf_dir, family, cfg))


def checkpoint_metadata(family: str, cfg) -> dict:
    return {"kind": "vit", "family": family, "config": cfg.to_dict()}


def import_checkpoint(hf_dir: str | Path, out_dir: str | Path, dtype="float32") -> ml_collections.ConfigDict:
    """HF vision-encoder directory -> the project's standalone ViT checkpoint; returns the config."""
    family, cfg = read_config(hf_dir, dtype)
    save_params(out_dir, _to_jax(read_params(hf_dir, family, cfg)), checkpoint_metadata(family, cfg))
    return cfg
