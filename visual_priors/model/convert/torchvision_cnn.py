"""torchvision / timm CNN checkpoints (``.pth``) -> ``visual_priors.model.cnn.MobileCNN``.

Tensors are read by ``torch_pickle`` (no torch). Layouts: torchvision's ``mobilenet_v2``
(``features.0.0.weight`` ... ``classifier.1.weight``) and timm's ``efficientnet_lite*`` /
``tf_efficientnet_lite*`` (``conv_stem.weight``, ``bn1.*``, ``blocks.{stage}.{i}.conv_dw.weight``
..., ``conv_head.weight``, ``bn2.*``, ``classifier.weight``). Conv weights are torch
[out, in/groups, kh, kw] and our kernels [kh, kw, in/groups, out]; Linear weights [out, in]
and ours [in, out]. ``num_batches_tracked`` counters are dropped.

    model = torchvision_cnn.load("mobilenet_v2-7ebf99e0.pth", "mobilenet_v2")
    out = model(images_uint8)            # {"tokens": [B, 49, 1280], "pooled": [B, 1280]}
    torchvision_cnn.import_checkpoint("efficientnet_lite0.pth", "efficientnet_lite0", "ckpt")
    model = encoders.load_frozen("ckpt")    # from visual_priors.model import encoders

``config`` fields may be overridden by keyword (``feature_layer=-3``, ``image_size=160``,
``width_mult=0.5`` for a narrower torchvision MobileNetV2); ``num_classes`` defaults to the
checkpoint's classifier (pass 0 for a checkpoint without one).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx, traverse_util

from visual_priors.errors import BadFile, BadValue
from visual_priors.model import cnn
from visual_priors.model.convert import torch_pickle
from visual_priors.model.params_io import save_params

ARCHS = (
    ("mobilenet_v2", "torchvision MobileNetV2 (IMAGENET1K_V1/V2): 224 px, 7x7 tokens of width 1280"),
    ("efficientnet_lite0", "timm efficientnet_lite0 (PyTorch-trained): 224 px, BN eps 1e-5, symmetric padding"),
    ("efficientnet_lite1", "timm efficientnet_lite1 layout (width 1.0, depth 1.1): 240 px, BN eps 1e-5"),
    ("efficientnet_lite2", "timm efficientnet_lite2 layout (width 1.1, depth 1.2): 260 px, BN eps 1e-5"),
    ("efficientnet_lite3", "timm efficientnet_lite3 layout (width 1.2, depth 1.4): 280 px, BN eps 1e-5"),
    ("efficientnet_lite4", "timm efficientnet_lite4 layout (width 1.4, depth 1.8): 300 px, BN eps 1e-5"),
    ("tf_efficientnet_lite0", "timm tf_efficientnet_lite0 (Google's TF weights): 224 px, BN eps 1e-3, SAME padding"),
    ("tf_efficientnet_lite1", "timm tf_efficientnet_lite1 (TF weights): 240 px, BN eps 1e-3, SAME padding"),
    ("tf_efficientnet_lite2", "timm tf_efficientnet_lite2 (TF weights): 260 px, BN eps 1e-3, SAME padding"),
    ("tf_efficientnet_lite3", "timm tf_efficientnet_lite3 (TF weights): 280 px, BN eps 1e-3, SAME padding"),
    ("tf_efficientnet_lite4", "timm tf_efficientnet_lite4 (TF weights): 300 px, BN eps 1e-3, SAME padding"),
)

_BN = (("weight", "scale"), ("bias", "bias"), ("running_mean", "mean"), ("running_var", "var"))
_CLASSIFIER = {"mobilenet_v2": "classifier.1", "efficientnet_lite": "classifier"}


# ---------------------------------------------------------------- configs


def config(arch: str, **overrides) -> ml_collections.ConfigDict:
    """``cnn.cnn_config(arch)`` with ``overrides``; unknown archs and fields fail clearly."""
    if arch not in dict(ARCHS):
        raise BadValue(f"unknown arch {arch!r}; valid: {', '.join(a for a, _ in ARCHS)}")
    return _override(cnn.cnn_config(arch), overrides)


def _override(cfg: ml_collections.ConfigDict, overrides: dict) -> ml_collections.ConfigDict:
    unknown = sorted(set(overrides) - set(cfg.keys()))
    if unknown:
        raise BadValue(f"unknown config fields {unknown}; valid: {', '.join(sorted(cfg.keys()))}")
    for k, v in overrides.items():
        # Sequences as the field already holds them (tuples from cnn_config, lists from JSON).
        cfg[k] = type(cfg[k])(v) if isinstance(v, (list, tuple)) else v
    cnn.validate(cfg)
    return cfg


def _config_for(arch: str, tensors: dict, overrides: dict) -> ml_collections.ConfigDict:
    """The config, with ``num_classes`` read from the classifier unless given."""
    if "num_classes" not in overrides:
        family = cnn.cnn_config(arch).family if arch in dict(ARCHS) else None
        weight = tensors.get(f"{_CLASSIFIER.get(family)}.weight")
        if weight is not None and weight.ndim == 2:
            overrides = {**overrides, "num_classes": int(weight.shape[0])}
    return config(arch, **overrides)


# ---------------------------------------------------------------- tensor mapping


def _conv(torch_conv: str, torch_bn: str, path: tuple) -> list[tuple[str, tuple, str]]:
    pairs = [(f"{torch_conv}.weight", (*path, "kernel"), "conv")]
    pairs += [(f"{torch_bn}.{t}", (*path, "bn", ours), "copy") for t, ours in _BN]
    return pairs


def name_pairs(cfg) -> list[tuple[str, tuple, str]]:
    """(torch name, pure-dict path, how: "conv" | "linear" | "copy") of every tensor of
    ``MobileCNN(cfg)``. The only place that knows both layouts."""
    arch = cnn.layout(cfg)
    pairs = []
    if cfg.family == "mobilenet_v2":
        pairs += _conv("features.0.0", "features.0.1", ("stem",))
        for i, b in enumerate(arch.blocks):
            p, j = f"features.{i + 1}.conv", 0
            if b.expand:
                pairs += _conv(f"{p}.0.0", f"{p}.0.1", ("blocks", i, "expand"))
                j = 1
            pairs += _conv(f"{p}.{j}.0", f"{p}.{j}.1", ("blocks", i, "depthwise"))
            pairs += _conv(f"{p}.{j + 1}", f"{p}.{j + 2}", ("blocks", i, "project"))
        last = f"features.{len(arch.blocks) + 1}"
        pairs += _conv(f"{last}.0", f"{last}.1", ("head",))
    else:
        pairs += _conv("conv_stem", "bn1", ("stem",))
        for i, b in enumerate(arch.blocks):
            p = f"blocks.{b.stage}.{b.index}"
            if b.expand:  # timm's InvertedResidual
                pairs += _conv(f"{p}.conv_pw", f"{p}.bn1", ("blocks", i, "expand"))
                pairs += _conv(f"{p}.conv_dw", f"{p}.bn2", ("blocks", i, "depthwise"))
                pairs += _conv(f"{p}.conv_pwl", f"{p}.bn3", ("blocks", i, "project"))
            else:  # timm's DepthwiseSeparableConv
                pairs += _conv(f"{p}.conv_dw", f"{p}.bn1", ("blocks", i, "depthwise"))
                pairs += _conv(f"{p}.conv_pw", f"{p}.bn2", ("blocks", i, "project"))
        pairs += _conv("conv_head", "bn2", ("head",))
    if cfg.num_classes:
        head = _CLASSIFIER[cfg.family]
        pairs += [(f"{head}.weight", ("classifier", "kernel"), "linear"),
                  (f"{head}.bias", ("classifier", "bias"), "copy")]
    return pairs


def _abstract_params(cfg) -> dict:
    """Pure dict of ShapeDtypeStructs of ``MobileCNN(cfg)``'s parameters; nothing allocated."""
    return nnx.state(nnx.eval_shape(lambda: cnn.build(cfg, rngs=nnx.Rngs(0))), nnx.Param).to_pure_dict()


def _torch_shape(shape: tuple, how: str) -> tuple:
    if how == "conv":  # ours [kh, kw, in, out] <- torch [out, in, kh, kw]
        return (shape[3], shape[2], shape[0], shape[1])
    return shape[::-1] if how == "linear" else shape


def _oriented(x: np.ndarray, how: str) -> np.ndarray:
    if how == "conv":
        return x.transpose(2, 3, 1, 0)
    return x.T if how == "linear" else x


def expected_torch_shapes(cfg) -> dict[str, tuple]:
    """Torch name -> shape of every tensor a checkpoint for ``cfg`` must hold."""
    shapes = {k: v.shape for k, v in traverse_util.flatten_dict(_abstract_params(cfg)).items()}
    pairs = name_pairs(cfg)
    table = {p for _, p, _ in pairs}
    if table != set(shapes):  # a bug here, not in the checkpoint
        raise AssertionError(f"conversion table and model disagree on {sorted(table ^ set(shapes), key=str)[:8]}")
    return {name: _torch_shape(shapes[path], how) for name, path, how in pairs}


def _without_extras(tensors: dict) -> dict:
    kept = {k: v for k, v in tensors.items() if not k.endswith(".num_batches_tracked")}
    # nn.DataParallel / DistributedDataParallel save every name under "module.".
    if kept and all(k.startswith("module.") for k in kept):
        kept = {k[len("module."):]: v for k, v in kept.items()}
    return kept


def from_torch_tensors(tensors: dict, cfg, *, where: str = "the checkpoint") -> dict:
    """A ``MobileCNN`` parameter pure dict (numpy, ``cfg.param_dtype``) from torch-named tensors;
    missing, unexpected or mis-shaped tensors fail naming them."""
    tensors = _without_extras(tensors)
    pairs = name_pairs(cfg)
    expected = expected_torch_shapes(cfg)
    missing = [n for n, _, _ in pairs if n not in tensors]
    unexpected = sorted(set(tensors) - set(expected))
    problems = []
    for label, names in (("missing", missing), ("unexpected", unexpected)):
        if names:
            more = f" and {len(names) - 8} more" if len(names) > 8 else ""
            problems.append(f"{label} tensors: {', '.join(names[:8])}{more}")
    if problems:
        hint = ("; for a checkpoint without a classifier pass num_classes=0"
                if any(n.startswith("classifier") for n in missing) else "")
        raise BadFile(f"{where} does not fit {cfg.name} ({cfg.family}, width_mult={cfg.width_mult}, "
                         f"depth_mult={cfg.depth_mult}): {'; '.join(problems)}{hint}")
    dtype = jnp.dtype(cfg.param_dtype)
    flat = {}
    for name, path, how in pairs:
        x = np.asarray(tensors[name])
        if x.shape != expected[name]:
            raise BadFile(f"tensor {name} in {where} has shape {x.shape}, {cfg.name} with "
                             f"width_mult={cfg.width_mult} expects {expected[name]}")
        flat[path] = np.ascontiguousarray(_oriented(x, how), dtype=dtype)
    return traverse_util.unflatten_dict(flat)


# ---------------------------------------------------------------- models and checkpoints


def _to_jax(params: dict) -> dict:
    # device_put, not jnp.asarray, which compiles a conversion for every distinct shape.
    return traverse_util.unflatten_dict(
        {k: jax.device_put(v) for k, v in traverse_util.flatten_dict(params).items()})


def build(cfg, params: dict) -> cnn.MobileCNN:
    """A ``MobileCNN(cfg)`` holding ``params``, without a random initialisation."""
    graphdef, state = nnx.split(nnx.eval_shape(lambda: cnn.build(cfg, rngs=nnx.Rngs(0))))
    nnx.replace_by_pure_dict(state, _to_jax(params))
    return nnx.merge(graphdef, state)


def read(path: str | Path, arch: str, *, key: str | None = None, **overrides):
    """(config, parameter pure dict) of the checkpoint ``path`` read as ``arch``."""
    tensors = torch_pickle.load_state_dict(path, key)
    cfg = _config_for(arch, _without_extras(tensors), overrides)
    return cfg, from_torch_tensors(tensors, cfg, where=str(path))


def load(path: str | Path, arch: str, *, key: str | None = None, **overrides) -> cnn.MobileCNN:
    """A ``MobileCNN`` from a torchvision/timm checkpoint file. ``key`` picks a nested state dict
    ("state_dict_ema"); ``overrides`` set config fields (``feature_layer=-2``...)."""
    cfg, params = read(path, arch, key=key, **overrides)
    return build(cfg, params)


def checkpoint_metadata(cfg) -> dict:
    return {"kind": "cnn", "arch": cfg.name, "config": cfg.to_dict()}


def import_checkpoint(path: str | Path, arch: str, out_dir: str | Path, *, key: str | None = None,
                      **overrides) -> ml_collections.ConfigDict:
    """Checkpoint file -> the project's parameter files (``params_io.save_params``) with metadata
    ``{"kind": "cnn", "arch", "config"}``; returns the config."""
    cfg, params = read(path, arch, key=key, **overrides)
    save_params(out_dir, _to_jax(params), checkpoint_metadata(cfg))
    return cfg
