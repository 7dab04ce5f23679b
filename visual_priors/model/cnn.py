"""Frozen CNN vision encoders: MobileNetV2 and EfficientNet-Lite0..4.

Both are stacks of inverted-residual blocks (MobileNetV2, Sandler et al. 2018): a 3x3 stride-2
stem, blocks of [1x1 expansion] -> kxk depthwise -> 1x1 linear projection (a residual add when
shape allows), a 1x1 head conv, global average pooling and a linear classifier. Every conv has
no bias and is followed by BatchNorm; ReLU6 follows all but the projections.

- ``mobilenet_v2``: torchvision's MobileNetV2 (BatchNorm eps 1e-5, padding (k-1)//2 each side).
- ``efficientnet_lite{0..4}``: timm's ``efficientnet_lite*``, PyTorch-trained: EfficientNet-B0's
  block table without squeeze-excite, ReLU6 instead of swish, stem (32) and head (1280) kept
  fixed while width and depth scale; BatchNorm eps 1e-5 and symmetric padding (timm's default
  ``pad_type=''`` gives ((stride-1) + (k-1))//2, which is (k-1)//2 for every conv here).
- ``tf_efficientnet_lite{0..4}``: timm's ports of Google's TF checkpoints (the same tensors
  under the same names): BatchNorm eps 1e-3, TF "SAME" padding (one more pixel after than
  before on stride-2 convs of even inputs) and inputs normalised with mean = std = 0.5.

The model is inference-only: BatchNorm always uses the checkpoint's running statistics, which
are ``nnx.Param`` like every other weight (one parameter tree to save, load and freeze). It is
built to be loaded, so it initialises to placeholders (zero kernels, identity BatchNorm) made
with numpy: random draws for its ~70 distinct weight shapes would cost 20 s of initializer
compilation on a CPU.

Output contract of ``visual_priors.model.vision.ViT``: ``model(images)`` returns ``tokens``
[B, h*w, C], the feature map at ``cfg.feature_layer`` flattened row-major, and ``pooled``
[B, C_head], the global average of the last map (what the classifier reads).

Feature maps are numbered 0 (stem), 1..7 (the end of each stage of the block table) and 8 (the
head conv's output, the last map before pooling); ``feature_layer`` indexes that list and may be
negative (-1, the default, is the head).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from visual_priors.model.layers import Dense, KeyStream, make_param

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FAMILIES = ("mobilenet_v2", "efficientnet_lite")
PADDINGS = ("symmetric", "same")

# MobileNetV2 (paper Table 2): expansion t, output channels c, repeats n, first stride s; 3x3.
_MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                 (6, 160, 3, 2), (6, 320, 1, 1))
# EfficientNet-B0 (paper Table 1) minus squeeze-excite: t, c, n, s, kernel.
_EFFICIENTNET = ((1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
                 (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3))
# Lite variant: (width multiplier, depth multiplier, image size) of the TF Lite release.
_LITE_SCALES = {0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260), 3: (1.2, 1.4, 280),
                4: (1.4, 1.8, 300)}

CNN_NAMES = ("mobilenet_v2", *(f"efficientnet_lite{i}" for i in _LITE_SCALES),
             *(f"tf_efficientnet_lite{i}" for i in _LITE_SCALES))


def cnn_config(name: str = "mobilenet_v2") -> ml_collections.ConfigDict:
    """The config of a named CNN; unknown names fail with the valid ones."""
    if name not in CNN_NAMES:
        raise ValueError(f"unknown CNN {name!r}; valid: {', '.join(CNN_NAMES)}")
    cfg = ml_collections.ConfigDict()
    cfg.name = name
    cfg.family = "mobilenet_v2" if name == "mobilenet_v2" else "efficientnet_lite"
    cfg.width_mult, cfg.depth_mult, cfg.image_size = (1.0, 1.0, 224)
    if cfg.family == "efficientnet_lite":
        cfg.width_mult, cfg.depth_mult, cfg.image_size = _LITE_SCALES[int(name[-1])]
    tf = name.startswith("tf_")
    cfg.num_classes = 1000          # 0: no classifier (a headless checkpoint)
    cfg.bn_eps = 1e-3 if tf else 1e-5
    cfg.padding = "same" if tf else "symmetric"
    cfg.feature_layer = -1
    cfg.mean = (0.5, 0.5, 0.5) if tf else IMAGENET_MEAN
    cfg.std = (0.5, 0.5, 0.5) if tf else IMAGENET_STD
    cfg.dtype = "float32"
    cfg.param_dtype = "float32"
    return cfg


# ---------------------------------------------------------------- block table


def make_divisible(v: float, divisor: int = 8) -> int:
    """Nearest multiple of ``divisor`` (at least ``divisor``), never more than 10% below ``v``:
    how both torchvision and timm round scaled channel counts."""
    rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * v else rounded


@dataclasses.dataclass(frozen=True)
class Block:
    stage: int        # row of the block table, 0-based
    index: int        # position within the stage
    in_ch: int
    mid_ch: int       # width of the depthwise conv
    out_ch: int
    kernel: int
    stride: int
    expand: bool      # a 1x1 expansion conv precedes the depthwise one

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_ch == self.out_ch


@dataclasses.dataclass(frozen=True)
class Layout:
    stem: int                  # channels of the stem conv
    blocks: tuple[Block, ...]
    head: int                  # channels of the head conv (the pooled width)

    @property
    def num_stages(self) -> int:
        return self.blocks[-1].stage + 1

    def map_channels(self) -> tuple[int, ...]:
        """Channels of feature maps 0 (stem) .. num_stages + 1 (head)."""
        ends = [next(b for b in reversed(self.blocks) if b.stage == s).out_ch for s in range(self.num_stages)]
        return (self.stem, *ends, self.head)

    def map_strides(self) -> tuple[tuple[int, ...], ...]:
        """The convolution strides applied before each feature map."""
        per_stage = [tuple(b.stride for b in self.blocks if b.stage == s) for s in range(self.num_stages)]
        out, acc = [(2,)], (2,)
        for strides in per_stage:
            acc = acc + strides
            out.append(acc)
        out.append(acc)
        return tuple(out)


def layout(cfg) -> Layout:
    """Channels, kernels and strides of every block of ``cfg``'s network."""
    w, d = float(cfg.width_mult), float(cfg.depth_mult)
    blocks = []
    if cfg.family == "mobilenet_v2":
        # torchvision: stem and every stage scaled by the width; the head only ever grows.
        stem, head = make_divisible(32 * w), make_divisible(1280 * max(1.0, w))
        rows = [(t, c, n, s, 3) for t, c, n, s in _MOBILENET_V2]
    elif cfg.family == "efficientnet_lite":
        # Lite keeps stem and head fixed, and scales the depth of all stages but the first and
        # last by ceil(n * depth).
        stem, head = 32, 1280
        last = len(_EFFICIENTNET) - 1
        rows = [(t, c, n if i in (0, last) else math.ceil(n * d), s, k)
                for i, (t, c, n, s, k) in enumerate(_EFFICIENTNET)]
    else:
        raise ValueError(f"unknown CNN family {cfg.family!r}; valid: {', '.join(FAMILIES)}")
    in_ch = stem
    for stage, (t, c, n, s, k) in enumerate(rows):
        out_ch = make_divisible(c * w)
        for i in range(n):
            # in_ch is a multiple of 8, so the rounding torchvision and timm apply to in_ch * t
            # changes nothing.
            mid = in_ch * t
            blocks.append(Block(stage, i, in_ch, mid, out_ch, k, s if i == 0 else 1, t != 1))
            in_ch = out_ch
    return Layout(stem, tuple(blocks), head)


def feature_grid(cfg, image_size: int | None = None) -> tuple[int, int]:
    """(h, w) of the map at ``cfg.feature_layer`` for square inputs of ``image_size`` (default
    ``cfg.image_size``). Every conv here maps n pixels to ceil(n / stride), with either padding."""
    size = int(cfg.image_size if image_size is None else image_size)
    if size < 1:
        raise ValueError(f"image size must be positive, got {size}")
    for s in layout(cfg).map_strides()[_layer_index(cfg)]:
        size = -(-size // s)
    return size, size


def _layer_index(cfg) -> int:
    n_maps = len(layout(cfg).map_channels())
    layer = int(cfg.feature_layer)
    if not -n_maps <= layer < n_maps:
        raise ValueError(f"feature_layer={layer} outside the {n_maps} feature maps of {cfg.name} "
                         f"(0 = stem .. {n_maps - 1} = head, or negative from the end)")
    return layer % n_maps


def validate(cfg) -> None:
    if cfg.family not in FAMILIES:
        raise ValueError(f"unknown CNN family {cfg.family!r}; valid: {', '.join(FAMILIES)}")
    if cfg.padding not in PADDINGS:
        raise ValueError(f"unknown padding {cfg.padding!r}; valid: {', '.join(PADDINGS)}")
    if not (cfg.width_mult > 0 and cfg.depth_mult > 0 and cfg.bn_eps > 0):
        raise ValueError(f"width_mult, depth_mult and bn_eps must be positive "
                         f"({cfg.width_mult}, {cfg.depth_mult}, {cfg.bn_eps})")
    if int(cfg.image_size) < 1 or int(cfg.num_classes) < 0:
        raise ValueError(f"bad image_size={cfg.image_size} or num_classes={cfg.num_classes}")
    if len(cfg.mean) != 3 or len(cfg.std) != 3 or min(cfg.std) <= 0:
        raise ValueError(f"mean and std need 3 values each (std positive): {cfg.mean}, {cfg.std}")
    _layer_index(cfg)


# ---------------------------------------------------------------- layers


def _constant(value: float):
    """An initializer filling with numpy and placing with device_put. Eager jnp initializers (and
    jnp.asarray) compile once per shape, about 70 ms each for the ~70 shapes of these networks."""
    def init(key, shape, dtype):
        return jax.device_put(np.full(shape, value, dtype))
    return init


class BatchNorm(nnx.Module):
    """Inference-mode BatchNorm over the last axis: (x - mean) / sqrt(var + eps) * scale + bias
    with the checkpoint's running statistics, computed in float32."""

    def __init__(self, ch: int, *, eps: float, rngs, param_dtype="float32"):
        self.eps = float(eps)
        ones, zeros = _constant(1.0), _constant(0.0)
        self.scale = make_param(rngs, ones, (ch,), ("embed",), param_dtype)
        self.bias = make_param(rngs, zeros, (ch,), ("embed",), param_dtype)
        self.mean = make_param(rngs, zeros, (ch,), ("embed",), param_dtype)
        self.var = make_param(rngs, ones, (ch,), ("embed",), param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        f32 = jnp.float32
        mult = self.scale[...].astype(f32) * jax.lax.rsqrt(self.var[...].astype(f32) + self.eps)
        shift = self.bias[...].astype(f32) - self.mean[...].astype(f32) * mult
        return x.astype(f32) * mult + shift


class ConvBN(nnx.Module):
    """Bias-free conv (kernel [kh, kw, in/groups, out], NHWC) -> BatchNorm -> ReLU6 if ``act``."""

    def __init__(self, in_ch, out_ch, kernel, *, stride=1, groups=1, act=True, cfg, rngs):
        self.stride = int(stride)
        self.groups = int(groups)
        self.act = bool(act)
        self.dtype = jnp.dtype(cfg.dtype).name
        p = (kernel - 1) // 2
        # "same" is TF's: total padding as needed for ceil(n / stride) outputs, the odd pixel after.
        self.padding = "SAME" if cfg.padding == "same" else ((p, p), (p, p))
        self.kernel = make_param(rngs, _constant(0.0), (kernel, kernel, in_ch // groups, out_ch),
                                 (None, None, None, "embed"), cfg.param_dtype)
        self.bn = BatchNorm(out_ch, eps=cfg.bn_eps, rngs=rngs, param_dtype=cfg.param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = jnp.dtype(self.dtype)
        y = jax.lax.conv_general_dilated(
            x.astype(dtype), self.kernel[...].astype(dtype), (self.stride, self.stride), self.padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=self.groups)
        y = self.bn(y)
        if self.act:
            y = jnp.clip(y, 0.0, 6.0)
        return y.astype(dtype)


class InvertedResidual(nnx.Module):
    """[1x1 expand + ReLU6] -> kxk depthwise + ReLU6 -> 1x1 linear projection (+ input)."""

    def __init__(self, block: Block, *, cfg, rngs):
        kw = dict(cfg=cfg, rngs=rngs)
        self.residual = block.residual
        self.expand = ConvBN(block.in_ch, block.mid_ch, 1, **kw) if block.expand else None
        self.depthwise = ConvBN(block.mid_ch, block.mid_ch, block.kernel, stride=block.stride,
                                groups=block.mid_ch, **kw)
        self.project = ConvBN(block.mid_ch, block.out_ch, 1, act=False, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


# ---------------------------------------------------------------- the encoder


class MobileCNN(nnx.Module):
    """MobileNetV2 or EfficientNet-Lite (``cfg.family``), inference only.

    Parameter paths: ``stem``, ``blocks/{i}`` (all stages in order, each with ``expand`` (absent
    when the expansion is 1), ``depthwise`` and ``project``), ``head``, ``classifier``; each conv
    holds ``kernel`` and ``bn/{scale,bias,mean,var}``.
    """

    def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
        validate(cfg)
        self.cfg = ml_collections.FrozenConfigDict(cfg)
        self.dtype = jnp.dtype(cfg.dtype).name
        arch = layout(cfg)
        keys = KeyStream(rngs)
        kw = dict(cfg=cfg, rngs=keys)
        self.stem = ConvBN(3, arch.stem, 3, stride=2, **kw)
        self.blocks = nnx.List([InvertedResidual(b, **kw) for b in arch.blocks])
        self.head = ConvBN(arch.blocks[-1].out_ch, arch.head, 1, **kw)
        self.classifier = (
            Dense(arch.head, cfg.num_classes, ("embed", None), use_bias=True, rngs=keys,
                  kernel_init=_constant(0.0), dtype=cfg.dtype, param_dtype=cfg.param_dtype)
            if cfg.num_classes else None)
        # Index of the last block of each stage, to read feature maps 1..num_stages.
        self.stage_ends = tuple(i for i, b in enumerate(arch.blocks)
                                if i + 1 == len(arch.blocks) or arch.blocks[i + 1].stage != b.stage)
        self.map_channels = arch.map_channels()
        self.feature_index = _layer_index(cfg)

    # ---- shapes

    @property
    def width(self) -> int:
        """Channels of ``tokens``."""
        return self.map_channels[self.feature_index]

    @property
    def pooled_width(self) -> int:
        return self.map_channels[-1]

    @property
    def grid_size(self) -> tuple[int, int]:
        """(h, w) of the token grid: inputs are always resized to ``cfg.image_size``."""
        return feature_grid(self.cfg)

    def num_tokens(self, image_size: int | None = None) -> int:
        """Tokens per image for input images of ``image_size`` px. Every input is resized to
        ``cfg.image_size`` first, so this is the same for any size."""
        if image_size is not None and int(image_size) < 1:
            raise ValueError(f"image size must be positive, got {image_size}")
        h, w = self.grid_size
        return h * w

    # ---- forward

    def preprocess(self, images: jax.Array) -> jax.Array:
        """uint8 [B, H, W, 3] -> /255 -> (x - mean) / std; float images are taken as already
        normalised. Then bilinear resize (antialiased when shrinking) to ``cfg.image_size``."""
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be [B, H, W, 3], got {images.shape}")
        if images.dtype == jnp.uint8:
            mean = jnp.asarray(self.cfg.mean, jnp.float32)
            std = jnp.asarray(self.cfg.std, jnp.float32)
            x = (images.astype(jnp.float32) / 255.0 - mean) / std
        elif jnp.issubdtype(images.dtype, jnp.floating):
            x = images.astype(jnp.float32)
        else:
            raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")
        b, h, w, c = x.shape
        s = int(self.cfg.image_size)
        if (h, w) != (s, s):  # normalising and resizing are both linear, so their order is free
            x = jax.image.resize(x, (b, s, s, c), "bilinear")
        return x.astype(self.dtype)

    def feature_maps(self, images: jax.Array) -> list[jax.Array]:
        """NHWC maps 0 (stem), 1..num_stages (stage ends), num_stages + 1 (head)."""
        x = self.stem(self.preprocess(images))
        maps = [x]
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                maps.append(x)
        maps.append(self.head(x))
        return maps

    def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
        """``tokens`` [B, h*w, width] from ``feature_layer``; ``pooled`` [B, pooled_width]."""
        maps = self.feature_maps(images)
        fmap = maps[self.feature_index]
        b, h, w, c = fmap.shape
        pooled = jnp.mean(maps[-1].astype(jnp.float32), axis=(1, 2)).astype(self.dtype)
        return dict(tokens=fmap.reshape(b, h * w, c), pooled=pooled)

    def logits(self, images: jax.Array) -> jax.Array:
        """ImageNet-style class logits [B, num_classes], float32 (eval mode: no dropout)."""
        if self.classifier is None:
            raise ValueError(f"{self.cfg.name} was built with num_classes=0: it has no classifier")
        return self.classifier(self(images)["pooled"], out_dtype=jnp.float32).astype(jnp.float32)


def build(cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> MobileCNN:
    """A ``MobileCNN`` of ``cfg`` with placeholder parameters, to be replaced by loaded ones."""
    return MobileCNN(cfg, rngs=rngs)
