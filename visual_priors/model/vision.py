"""Vision transformers: small local ones trained here, and public encoders imported into the same
``ViT`` (``model.convert.hf_vision``: CLIP/MetaCLIP, SigLIP, DINOv2, MAE); plus a CLIP-style
model to train a local one.

The MLLM reads the ViT's patch tokens from ``feature_layer`` (penultimate by default, as in
LLaVA); ``pooled`` (from the final layer) feeds the contrastive objective.

Token order is ``[class token?, registers..., patches...]``; ``ViT.num_prefix_tokens`` counts the
tokens before the patches. Images are uint8 ``[B, H, W, 3]`` (normalised with the config's
``image_mean`` / ``image_std``) or already-normalised floats; other sizes than ``image_size`` are
resized to it whole (no centre crop, ``cfg.resize``: bicubic for imported families, as their
processors resample). The position embeddings keep the grid they were trained at
(``pos_grid``) and are resized to the running grid when the two differ, the way Hugging Face's
``interpolate_pos_encoding`` does (``pos_resize``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from visual_priors.model.layers import Dense, KeyStream, LayerNorm, make_param, masked_softmax_attention

_VIT = {
    # name: (image_size, patch_size, width, depth, heads, mlp_dim)
    "tiny": (32, 8, 96, 4, 4, 192),
    "small": (64, 8, 192, 6, 6, 384),
    # A small convolutional network in the ViT's clothes: three stem stages (32 -> 4 px maps),
    # a linear embedding per 8 px cell and no transformer block. On 32 px world scenes it
    # learns kinds from a few hundred steps where the patch ViTs above do not (measured, kind
    # probe after 600 steps of kind classification: 86-92% against 48-72%).
    "conv": (32, 8, 96, 0, 4, 192),
}
_STEMS = {"conv": (32, 64, 96)}
VIT_NAMES = tuple(_VIT)
# cls_tanh: BERT/ViT's pooler, tanh of a dense layer over the normed class token (HF ViTModel).
POOLS = ("mean", "cls", "map", "cls_tanh")

ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # exact (erf), torch's nn.GELU()
    "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),  # OpenAI CLIP's
}
RESIZE_METHODS = ("nearest", "bilinear", "bicubic", "lanczos3")
POS_RESIZE = ("bicubic", "bicubic_antialias")

# Architecture fields with the values that make today's local ViT; configs saved before a field
# existed are completed with these (``ViT`` does it), so they keep computing what they did.
_ARCH_DEFAULTS = dict(
    class_token=None,  # None: one exactly when pool is "cls" or "cls_tanh"
    num_registers=0,  # DINOv2's register tokens (after the class token, no position embedding)
    patch_bias=True,
    qkv_bias=True,
    pre_norm=False,  # a LayerNorm before the blocks (CLIP's pre_layrnorm)
    layer_scale=0.0,  # 0: off; else the initial value of per-channel residual-branch scales
    act="gelu_tanh",  # jax.nn.gelu's default approximation, what local ViTs train with
    swiglu=False,  # MLP silu(x W_gate) * (x W_up), fc1 holding [gate | up] (DINOv2-giant)
    image_mean=(0.5, 0.5, 0.5),  # per channel, 0..1 units: uint8 -> (x/255 - mean) / std
    image_std=(0.5, 0.5, 0.5),  # 0.5/0.5 is the [-1, 1] mapping local ViTs train with
    resize="bilinear",  # jax.image.resize method for images of another size
    pos_grid=0,  # side of the position-embedding grid; 0: image_size // patch_size
    pos_resize="bicubic",  # how that grid is resized: torch's bicubic, or with antialias
    # Channels of the stages of a convolutional stem before the patch embedding (Xiao et al.
    # 2021, "Early convolutions help transformers see better"): each stage is a stride-1 and a
    # stride-2 3x3 convolution and halves the map; patch_size stays the image side one token
    # covers. () is the plain linear patch embedding of imported ViTs.
    stem=(),
)


def vit_config(name: str = "tiny") -> ml_collections.ConfigDict:
    """Shape of a local ViT; unknown names fail with the valid ones."""
    if name not in _VIT:
        raise ValueError(f"unknown ViT {name!r}; valid: {', '.join(VIT_NAMES)}")
    image_size, patch_size, width, depth, heads, mlp_dim = _VIT[name]
    cfg = ml_collections.ConfigDict()
    cfg.name = name
    cfg.image_size = image_size
    cfg.patch_size = patch_size
    cfg.width = width
    cfg.depth = depth
    cfg.heads = heads
    cfg.mlp_dim = mlp_dim
    # Penultimate, as LLaVA reads; the last (and only) state of a model without blocks.
    cfg.feature_layer = -2 if depth >= 1 else -1
    cfg.pool = "mean"
    cfg.norm_eps = 1e-6
    cfg.dtype = "float32"
    cfg.param_dtype = "float32"
    cfg.update(_ARCH_DEFAULTS)
    cfg.stem = _STEMS.get(name, ())
    return cfg


def text_config(vit_cfg: ml_collections.ConfigDict, vocab_size: int, max_len: int = 128) -> ml_collections.ConfigDict:
    """The CLIP text tower: as wide as the ViT, two blocks deep."""
    return ml_collections.ConfigDict(
        dict(vocab_size=int(vocab_size), width=vit_cfg.width, depth=2, heads=vit_cfg.heads,
             mlp_dim=vit_cfg.mlp_dim, max_len=int(max_len))
    )


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class EncoderBlock(nnx.Module):
    """Pre-LN transformer block with biases (bidirectional attention).

    Options for imported encoders: the MLP activation ``act``, a SwiGLU MLP, per-channel layer
    scales on both residual branches (``layer_scale`` > 0 is their initial value), no q/k/v bias.
    """

    def __init__(self, width, heads, mlp_dim, *, eps, rngs, dtype="float32", param_dtype="float32",
                 act="gelu_tanh", swiglu=False, layer_scale=0.0, qkv_bias=True):
        if width % heads:
            raise ValueError(f"width={width} is not a multiple of heads={heads}")
        _activation(act)
        self.heads = heads
        self.dtype = jnp.dtype(dtype).name
        self.act = act
        self.swiglu = bool(swiglu)
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.norm1 = LayerNorm(width, eps=eps, **kw)
        self.q = Dense(width, width, ("embed", "heads"), use_bias=qkv_bias, **kw)
        self.k = Dense(width, width, ("embed", "heads"), use_bias=qkv_bias, **kw)
        self.v = Dense(width, width, ("embed", "heads"), use_bias=qkv_bias, **kw)
        self.o = Dense(width, width, ("heads", "embed"), use_bias=True, **kw)
        self.norm2 = LayerNorm(width, eps=eps, **kw)
        self.fc1 = Dense(width, mlp_dim * (2 if swiglu else 1), ("embed", "mlp"), use_bias=True, **kw)
        self.fc2 = Dense(mlp_dim, width, ("mlp", "embed"), use_bias=True, **kw)
        scale = nnx.initializers.constant(layer_scale)
        self.ls1 = make_param(rngs, scale, (width,), ("embed",), param_dtype) if layer_scale else None
        self.ls2 = make_param(rngs, scale, (width,), ("embed",), param_dtype) if layer_scale else None

    def mlp(self, y):
        h = self.fc1(y)
        if self.swiglu:
            gate, up = jnp.split(h, 2, axis=-1)
            return self.fc2(jax.nn.silu(gate) * up)
        return self.fc2(ACTIVATIONS[self.act](h))

    def __call__(self, x, mask=None):
        """x [B, L, W]; mask [B, L] (True = real token) hides padded keys."""
        b, length, w = x.shape
        h = self.heads
        y = self.norm1(x)
        q = self.q(y).reshape(b, length, h, w // h)
        k = self.k(y).reshape(b, length, h, w // h)
        v = self.v(y).reshape(b, length, h, w // h)
        allowed = jnp.ones((b, 1, 1, length), bool) if mask is None else mask.astype(bool)[:, None, None, :]
        att = self.o(masked_softmax_attention(q, k, v, allowed, self.dtype).reshape(b, length, w))
        x = x + (att if self.ls1 is None else att * self.ls1[...].astype(att.dtype))
        y = self.mlp(self.norm2(x))
        return x + (y if self.ls2 is None else y * self.ls2[...].astype(y.dtype))


def _conv3x3(rngs, c_in: int, c_out: int, param_dtype) -> nnx.Param:
    init = nnx.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")
    return make_param(rngs, init, (3, 3, c_in, c_out), (None, None, None, None), param_dtype)


class ConvStemLayer(nnx.Module):
    """One stage of a convolutional stem: a 3x3 convolution at stride 1, then one at stride 2,
    each followed by LayerNorm over channels and GELU: [B, H, W, C_in] -> [B, H/2, W/2, C_out]."""

    def __init__(self, c_in: int, c_out: int, *, rngs, eps: float = 1e-6, dtype="float32",
                 param_dtype="float32"):
        self.dtype = jnp.dtype(dtype).name
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.kernel1 = _conv3x3(rngs, c_in, c_out, param_dtype)
        self.norm1 = LayerNorm(c_out, eps=eps, **kw)
        self.kernel2 = _conv3x3(rngs, c_out, c_out, param_dtype)
        self.norm2 = LayerNorm(c_out, eps=eps, **kw)

    def _conv(self, x, kernel, stride):
        return jax.lax.conv_general_dilated(x.astype(self.dtype), kernel[...].astype(self.dtype),
                                            (stride, stride), ((1, 1), (1, 1)),
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.gelu(self.norm1(self._conv(x, self.kernel1, 1)))
        return jax.nn.gelu(self.norm2(self._conv(x, self.kernel2, 2)))


class MAPHead(nnx.Module):
    """Multi-head attention pooling (SigLIP's head): a learned probe attends over the tokens, then
    a residual MLP. ``in_proj`` holds [q | k | v] as torch's ``nn.MultiheadAttention`` does."""

    def __init__(self, width, heads, mlp_dim, *, eps, act, rngs, dtype="float32", param_dtype="float32"):
        self.heads = heads
        self.act = act
        self.dtype = jnp.dtype(dtype).name
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.probe = make_param(rngs, nnx.initializers.normal(0.02), (1, width), (None, "embed"), param_dtype)
        self.in_proj = Dense(width, 3 * width, ("embed", None), use_bias=True, **kw)
        self.out_proj = Dense(width, width, ("heads", "embed"), use_bias=True, **kw)
        self.norm = LayerNorm(width, eps=eps, **kw)
        self.fc1 = Dense(width, mlp_dim, ("embed", "mlp"), use_bias=True, **kw)
        self.fc2 = Dense(mlp_dim, width, ("mlp", "embed"), use_bias=True, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x [B, N, W] -> [B, W]."""
        b, n, w = x.shape
        h = self.heads
        kernel = self.in_proj.kernel[...].astype(self.dtype)
        bias = self.in_proj.bias[...].astype(self.dtype)
        # The probe needs only the q third of the projection, the tokens only k and v.
        q = self.probe[...].astype(self.dtype) @ kernel[:, :w] + bias[:w]
        kv = jnp.einsum("bnw,wk->bnk", x.astype(self.dtype), kernel[:, w:]) + bias[w:]
        k = kv[..., :w].reshape(b, n, h, w // h)
        v = kv[..., w:].reshape(b, n, h, w // h)
        q = jnp.broadcast_to(q.reshape(1, 1, h, w // h), (b, 1, h, w // h))
        att = masked_softmax_attention(q, k, v, jnp.ones((b, 1, 1, n), bool), self.dtype)
        y = self.out_proj(att.reshape(b, 1, w))
        y = y + self.fc2(ACTIVATIONS[self.act](self.fc1(self.norm(y))))
        return y[:, 0]


def to_float_images(images: jax.Array, dtype, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> jax.Array:
    """uint8 [0, 255] -> (x/255 - mean) / std per channel; float images are taken as already
    normalised. The defaults give [-1, 1], bit for bit what x/127.5 - 1 gives."""
    if images.dtype == jnp.uint8:
        mean = jnp.asarray(mean, jnp.float32)
        std = jnp.asarray(std, jnp.float32)
        return ((images.astype(jnp.float32) / 255.0 - mean) / std).astype(dtype)
    return images.astype(dtype)


def resize_matrix(n_in: int, n_out: int, antialias: bool = False) -> np.ndarray:
    """[n_out, n_in] weights of 1-D bicubic resampling with half-pixel centres: torch's
    ``interpolate(mode="bicubic", align_corners=False)`` (a = -0.75, edge taps clamped), or with
    ``antialias`` its PIL-style filter (a = -0.5, widened when shrinking, renormalised at edges)."""

    def cubic(t, a):
        t = np.abs(t)
        return np.where(t < 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                        np.where(t < 2, (((t - 5) * t + 8) * t - 4) * a, 0.0))

    scale = n_in / n_out
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    if not antialias:
        src = (rows + 0.5) * scale - 0.5
        base = np.floor(src)
        for tap in range(-1, 3):
            np.add.at(m, (rows, np.clip(base + tap, 0, n_in - 1).astype(int)), cubic(src - (base + tap), -0.75))
        return m
    support, stretch = 2 * max(scale, 1.0), max(scale, 1.0)
    for i in rows:
        centre = scale * (i + 0.5)
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n_in)
        w = cubic((np.arange(lo, hi) - centre + 0.5) / stretch, -0.5)
        m[i, lo:hi] = w / w.sum()
    return m


def _complete(cfg) -> ml_collections.FrozenConfigDict:
    """``cfg`` frozen, with ``_ARCH_DEFAULTS`` for the fields it lacks."""
    return ml_collections.FrozenConfigDict({**_ARCH_DEFAULTS, **cfg.to_dict()})


class ViT(nnx.Module):
    def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
        cfg = _complete(cfg)
        if cfg.image_size % cfg.patch_size:
            raise ValueError(f"image_size={cfg.image_size} is not a multiple of patch_size={cfg.patch_size}")
        if cfg.pool not in POOLS:
            raise ValueError(f"unknown pool {cfg.pool!r}; valid: {POOLS}")
        if not -(cfg.depth + 1) <= cfg.feature_layer <= cfg.depth:
            raise ValueError(f"feature_layer={cfg.feature_layer} outside a depth-{cfg.depth} ViT")
        pools_cls = cfg.pool in ("cls", "cls_tanh")
        has_cls = pools_cls if cfg.class_token is None else bool(cfg.class_token)
        if pools_cls and not has_cls:
            raise ValueError(f"pool={cfg.pool!r} needs a class token (class_token is False)")
        if cfg.resize not in RESIZE_METHODS:
            raise ValueError(f"unknown resize {cfg.resize!r}; valid: {RESIZE_METHODS}")
        if cfg.pos_resize not in POS_RESIZE:
            raise ValueError(f"unknown pos_resize {cfg.pos_resize!r}; valid: {POS_RESIZE}")
        if len(cfg.image_mean) != 3 or len(cfg.image_std) != 3:
            raise ValueError(f"image_mean {cfg.image_mean} and image_std {cfg.image_std} need 3 channels each")
        self.cfg = cfg
        self.dtype = jnp.dtype(cfg.dtype).name
        keys = KeyStream(rngs)
        kw = dict(rngs=keys, dtype=cfg.dtype, param_dtype=cfg.param_dtype)
        p, w = cfg.patch_size, cfg.width
        self.grid = cfg.image_size // p
        self.pos_grid = cfg.pos_grid or self.grid
        self.num_patches = self.grid**2
        stem = tuple(int(c) for c in cfg.stem)
        if p % (2 ** len(stem)):
            raise ValueError(f"patch_size {p} is not divisible by the stem's stride {2 ** len(stem)}")
        chans = (3,) + stem
        self.stem = nnx.List([ConvStemLayer(c_in, c_out, rngs=keys, eps=cfg.norm_eps, dtype=cfg.dtype,
                                            param_dtype=cfg.param_dtype)
                              for c_in, c_out in zip(chans[:-1], chans[1:])])
        sub = p // 2 ** len(stem)
        self.patch_embed = Dense(sub * sub * chans[-1], w, (None, "embed"), use_bias=cfg.patch_bias, **kw)
        n_pos = self.pos_grid**2 + has_cls
        self.pos_embed = make_param(keys, nnx.initializers.normal(0.02), (n_pos, w), (None, "embed"), cfg.param_dtype)
        self.cls = (
            make_param(keys, nnx.initializers.zeros, (1, w), (None, "embed"), cfg.param_dtype) if has_cls else None
        )
        self.registers = (
            make_param(keys, nnx.initializers.normal(0.02), (cfg.num_registers, w), (None, "embed"), cfg.param_dtype)
            if cfg.num_registers
            else None
        )
        self.pre_norm = LayerNorm(w, eps=cfg.norm_eps, **kw) if cfg.pre_norm else None
        block = dict(eps=cfg.norm_eps, act=cfg.act, swiglu=cfg.swiglu, layer_scale=cfg.layer_scale,
                     qkv_bias=cfg.qkv_bias, **kw)
        self.blocks = nnx.List([EncoderBlock(w, cfg.heads, cfg.mlp_dim, **block) for _ in range(cfg.depth)])
        self.final_norm = LayerNorm(w, eps=cfg.norm_eps, **kw)
        self.head = (
            MAPHead(w, cfg.heads, cfg.mlp_dim, eps=cfg.norm_eps, act=cfg.act, **kw) if cfg.pool == "map" else None
        )
        self.pooler = Dense(w, w, ("embed", None), use_bias=True, **kw) if cfg.pool == "cls_tanh" else None

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patches (class token, registers): callers drop these."""
        return (self.cls is not None) + self.cfg.num_registers

    def num_tokens(self, image_size: int | None = None) -> int:
        """Patch tokens per image (the length of ``tokens``) for input images of ``image_size``
        px: every input is resized to ``cfg.image_size`` first, so the same for any size."""
        if image_size is not None and int(image_size) < 1:
            raise ValueError(f"image size must be positive, got {image_size}")
        return self.num_patches

    def preprocess(self, images: jax.Array) -> jax.Array:
        """uint8 or normalised float [B, H, W, 3] -> normalised [B, S, S, 3], S = image_size."""
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images {images.shape} are not [B, H, W, 3]")
        b, s = images.shape[0], self.cfg.image_size
        if images.shape[1:3] != (s, s) and images.dtype == jnp.uint8:
            # As the processors' PIL resize: width, then height, whole pixel values after each pass
            # (one float pass would differ by a few grey levels where PIL clips an overshoot).
            for shape in ((b, images.shape[1], s, 3), (b, s, s, 3)):
                x = jax.image.resize(images.astype(jnp.float32), shape, self.cfg.resize)
                images = jnp.clip(jnp.round(x), 0, 255).astype(jnp.uint8)
        elif images.shape[1:3] != (s, s):
            images = jax.image.resize(images.astype(jnp.float32), (b, s, s, 3), self.cfg.resize)
        return to_float_images(images, self.dtype, self.cfg.image_mean, self.cfg.image_std)

    def patchify(self, images: jax.Array) -> jax.Array:
        """[B, S, S, C] -> [B, patches, p * p * C], each patch flattened (row, column, channel);
        of a stem's feature map [B, S', S', C'] alike, with patches p * S' / S wide."""
        b, hgt, wid, c = images.shape
        s = self.cfg.image_size
        if (hgt, wid, c) != (s, s, 3) and not (hgt == wid and len(self.stem) and s % hgt == 0):
            raise ValueError(f"images {images.shape} do not match the ViT's [B, {s}, {s}, 3]")
        p = self.cfg.patch_size * hgt // s
        x = images.reshape(b, hgt // p, p, hgt // p, p, c).transpose(0, 1, 3, 2, 4, 5)
        return x.reshape(b, (hgt // p) ** 2, p * p * c)

    def embed_patches(self, images: jax.Array) -> jax.Array:
        """Normalised images [B, S, S, 3] -> patch embeddings [B, patches, W], through the stem."""
        x = images
        for layer in self.stem:
            x = layer(x)
        return self.patch_embed(self.patchify(x))

    def positions(self) -> jax.Array:
        """Position embeddings [(class token) + grid**2, W] at the running grid."""
        pos = self.pos_embed[...]
        if self.pos_grid == self.grid:
            return pos.astype(self.dtype)
        first = int(self.cls is not None)
        m = jnp.asarray(resize_matrix(self.pos_grid, self.grid, self.cfg.pos_resize == "bicubic_antialias"),
                        jnp.float32)
        patches = pos[first:].astype(jnp.float32).reshape(self.pos_grid, self.pos_grid, -1)
        patches = jnp.einsum("ia,jb,abd->ijd", m, m, patches, precision=jax.lax.Precision.HIGHEST)
        return jnp.concatenate([pos[:first].astype(jnp.float32), patches.reshape(self.num_patches, -1)]).astype(
            self.dtype)

    def hidden_states(self, images: jax.Array, keep: jax.Array | None = None) -> list[jax.Array]:
        """The input to the first block, then the output of each block (depth + 1 states):
        Hugging Face's ``output_hidden_states``; the first is after the pre-blocks norm if any.

        ``keep`` (int [B, K] patch indices) passes only those patches (with their position
        embeddings, and the class token and registers if any) through the blocks: masked
        autoencoding.
        """
        x = self.embed_patches(self.preprocess(images))
        pos = self.positions().astype(x.dtype)
        first = 1 if self.cls is not None else 0
        x = x + pos[first:][None]
        if keep is not None:
            x = jnp.take_along_axis(x, keep[..., None], axis=1)
        prefix = []
        if self.cls is not None:
            prefix.append(self.cls[...].astype(x.dtype) + pos[:1])
        if self.registers is not None:
            prefix.append(self.registers[...].astype(x.dtype))
        if prefix:
            prefix = jnp.concatenate(prefix)
            x = jnp.concatenate([jnp.broadcast_to(prefix, (x.shape[0], *prefix.shape)), x], axis=1)
        if self.pre_norm is not None:
            x = self.pre_norm(x)
        states = [x]
        for block in self.blocks:
            x = block(x)
            states.append(x)
        return states

    def __call__(self, images: jax.Array, keep: jax.Array | None = None) -> dict[str, jax.Array]:
        """``tokens`` [B, N, width]: patch tokens from ``feature_layer``; ``pooled`` [B, width]
        from the normed last layer (class token, its tanh pooler, patch mean, or attention-pooling head).
        With ``keep`` (see ``hidden_states``) N is the number of kept patches."""
        states = self.hidden_states(images, keep)
        n = self.num_prefix_tokens
        tokens = states[self.cfg.feature_layer][:, n:]
        final = self.final_norm(states[-1])
        if self.cfg.pool == "cls":
            pooled = final[:, 0]
        elif self.cfg.pool == "cls_tanh":
            pooled = jnp.tanh(self.pooler(final[:, 0]))
        elif self.cfg.pool == "map":
            pooled = self.head(final)
        else:
            pooled = jnp.mean(final[:, n:], axis=1)
        return dict(tokens=tokens, pooled=pooled)


class TextEncoder(nnx.Module):
    """Bidirectional transformer over token ids, mean-pooled over real (unpadded) tokens."""

    def __init__(self, cfg: ml_collections.ConfigDict, *, eps: float, rngs, dtype="float32", param_dtype="float32"):
        self.max_len = int(cfg.max_len)
        self.dtype = jnp.dtype(dtype).name
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        init = nnx.initializers.normal(0.02)
        self.token_embed = make_param(rngs, init, (cfg.vocab_size, cfg.width), ("vocab", "embed"), param_dtype)
        self.pos_embed = make_param(rngs, init, (cfg.max_len, cfg.width), (None, "embed"), param_dtype)
        self.blocks = nnx.List(
            [EncoderBlock(cfg.width, cfg.heads, cfg.mlp_dim, eps=eps, **kw) for _ in range(cfg.depth)]
        )
        self.final_norm = LayerNorm(cfg.width, eps=eps, **kw)

    def __call__(self, tokens: jax.Array, token_mask: jax.Array) -> jax.Array:
        length = tokens.shape[1]
        if length > self.max_len:
            raise ValueError(f"text of length {length} exceeds max_len={self.max_len}")
        x = jnp.take(self.token_embed[...], tokens, axis=0).astype(self.dtype)
        x = x + self.pos_embed[...][:length].astype(self.dtype)[None]
        for block in self.blocks:
            x = block(x, token_mask)
        x = self.final_norm(x).astype(jnp.float32)
        m = token_mask.astype(jnp.float32)[..., None]
        return jnp.sum(x * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)


def _l2_normalize(x: jax.Array) -> jax.Array:
    x = x.astype(jnp.float32)
    return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + 1e-12)


class CLIPModel(nnx.Module):
    """Image and text towers projected to a shared space with a learnable temperature.

    ``CLIPModel(vit_config(...), vocab_size=V, rngs=...)``; ``text_cfg`` defaults to
    ``text_config(vit_cfg, vocab_size)``. The image tower is the attribute ``vit``.
    """

    def __init__(
        self,
        vit_cfg: ml_collections.ConfigDict,
        *,
        rngs: nnx.Rngs,
        vocab_size: int | None = None,
        text_cfg: ml_collections.ConfigDict | None = None,
        embed_dim: int = 64,
        init_logit_scale: float = math.log(1 / 0.07),
        max_logit_scale: float = math.log(100.0),
    ):
        if text_cfg is None:
            if vocab_size is None:
                raise ValueError("CLIPModel needs vocab_size or text_cfg")
            text_cfg = text_config(vit_cfg, vocab_size)
        keys = KeyStream(rngs)
        kw = dict(dtype=vit_cfg.dtype, param_dtype=vit_cfg.param_dtype)
        self.max_logit_scale = float(max_logit_scale)
        self.vit = ViT(vit_cfg, rngs=nnx.Rngs(keys.params()))
        self.text = TextEncoder(text_cfg, eps=vit_cfg.norm_eps, rngs=keys, **kw)
        self.image_proj = Dense(vit_cfg.width, embed_dim, ("embed", None), rngs=keys, **kw)
        self.text_proj = Dense(text_cfg.width, embed_dim, ("embed", None), rngs=keys, **kw)
        self.logit_scale = make_param(keys, nnx.initializers.constant(init_logit_scale), (), (), "float32")

    def encode_image(self, images: jax.Array) -> jax.Array:
        """Unit-norm image embeddings [B, embed_dim]."""
        return _l2_normalize(self.image_proj(self.vit(images)["pooled"]))

    def encode_text(self, tokens: jax.Array, token_mask: jax.Array) -> jax.Array:
        """Unit-norm text embeddings [B, embed_dim]."""
        return _l2_normalize(self.text_proj(self.text(tokens, token_mask)))

    def __call__(self, images, tokens, token_mask) -> jax.Array:
        """Similarity logits [B_images, B_texts], scaled by the temperature."""
        scale = jnp.exp(jnp.minimum(self.logit_scale[...], self.max_logit_scale))
        return scale * self.encode_image(images) @ self.encode_text(tokens, token_mask).T


def clip_loss(model: CLIPModel, images: jax.Array, tokens: jax.Array, token_mask: jax.Array) -> jax.Array:
    """Symmetric InfoNCE over a batch of paired images and captions (row i pairs with i)."""
    logits = model(images, tokens, token_mask)
    labels = jnp.arange(logits.shape[0])
    i2t = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    t2i = optax.softmax_cross_entropy_with_integer_labels(logits.T, labels)
    return 0.5 * (jnp.mean(i2t) + jnp.mean(t2i))
