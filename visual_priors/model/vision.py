"""A small ViT for locally trained vision encoders, and a CLIP-style model to train it.

The MLLM reads the ViT's patch tokens from ``feature_layer`` (penultimate by default, as in
LLaVA); ``pooled`` (from the final layer) feeds the contrastive objective.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from visual_priors.model.layers import Dense, KeyStream, LayerNorm, make_param, masked_softmax_attention

_VIT = {
    # name: (image_size, patch_size, width, depth, heads, mlp_dim)
    "tiny": (32, 8, 96, 4, 4, 192),
    "small": (64, 8, 192, 6, 6, 384),
}
VIT_NAMES = tuple(_VIT)
POOLS = ("mean", "cls")


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
    cfg.feature_layer = -2
    cfg.pool = "mean"
    cfg.norm_eps = 1e-6
    cfg.dtype = "float32"
    cfg.param_dtype = "float32"
    return cfg


def text_config(vit_cfg: ml_collections.ConfigDict, vocab_size: int, max_len: int = 128) -> ml_collections.ConfigDict:
    """The CLIP text tower: as wide as the ViT, two blocks deep."""
    return ml_collections.ConfigDict(
        dict(vocab_size=int(vocab_size), width=vit_cfg.width, depth=2, heads=vit_cfg.heads,
             mlp_dim=vit_cfg.mlp_dim, max_len=int(max_len))
    )


class EncoderBlock(nnx.Module):
    """Pre-LN transformer block with biases and GELU (bidirectional attention)."""

    def __init__(self, width, heads, mlp_dim, *, eps, rngs, dtype="float32", param_dtype="float32"):
        if width % heads:
            raise ValueError(f"width={width} is not a multiple of heads={heads}")
        self.heads = heads
        self.dtype = jnp.dtype(dtype).name
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.norm1 = LayerNorm(width, eps=eps, **kw)
        self.q = Dense(width, width, ("embed", "heads"), use_bias=True, **kw)
        self.k = Dense(width, width, ("embed", "heads"), use_bias=True, **kw)
        self.v = Dense(width, width, ("embed", "heads"), use_bias=True, **kw)
        self.o = Dense(width, width, ("heads", "embed"), use_bias=True, **kw)
        self.norm2 = LayerNorm(width, eps=eps, **kw)
        self.fc1 = Dense(width, mlp_dim, ("embed", "mlp"), use_bias=True, **kw)
        self.fc2 = Dense(mlp_dim, width, ("mlp", "embed"), use_bias=True, **kw)

    def __call__(self, x, mask=None):
        """x [B, L, W]; mask [B, L] (True = real token) hides padded keys."""
        b, length, w = x.shape
        h = self.heads
        y = self.norm1(x)
        q = self.q(y).reshape(b, length, h, w // h)
        k = self.k(y).reshape(b, length, h, w // h)
        v = self.v(y).reshape(b, length, h, w // h)
        allowed = jnp.ones((b, 1, 1, length), bool) if mask is None else mask.astype(bool)[:, None, None, :]
        att = masked_softmax_attention(q, k, v, allowed, self.dtype).reshape(b, length, w)
        x = x + self.o(att)
        return x + self.fc2(jax.nn.gelu(self.fc1(self.norm2(x))))


def to_float_images(images: jax.Array, dtype) -> jax.Array:
    """uint8 [0, 255] -> [-1, 1]; float images are taken as already normalised."""
    if images.dtype == jnp.uint8:
        return (images.astype(jnp.float32) / 127.5 - 1.0).astype(dtype)
    return images.astype(dtype)


class ViT(nnx.Module):
    def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
        if cfg.image_size % cfg.patch_size:
            raise ValueError(f"image_size={cfg.image_size} is not a multiple of patch_size={cfg.patch_size}")
        if cfg.pool not in POOLS:
            raise ValueError(f"unknown pool {cfg.pool!r}; valid: {POOLS}")
        if not -(cfg.depth + 1) <= cfg.feature_layer <= cfg.depth:
            raise ValueError(f"feature_layer={cfg.feature_layer} outside a depth-{cfg.depth} ViT")
        self.cfg = ml_collections.FrozenConfigDict(cfg)
        self.dtype = jnp.dtype(cfg.dtype).name
        keys = KeyStream(rngs)
        kw = dict(rngs=keys, dtype=cfg.dtype, param_dtype=cfg.param_dtype)
        p, w = cfg.patch_size, cfg.width
        self.num_patches = (cfg.image_size // p) ** 2
        self.patch_embed = Dense(p * p * 3, w, (None, "embed"), use_bias=True, **kw)
        n_pos = self.num_patches + (cfg.pool == "cls")
        self.pos_embed = make_param(keys, nnx.initializers.normal(0.02), (n_pos, w), (None, "embed"), cfg.param_dtype)
        self.cls = (
            make_param(keys, nnx.initializers.zeros, (1, w), (None, "embed"), cfg.param_dtype)
            if cfg.pool == "cls"
            else None
        )
        self.blocks = nnx.List(
            [EncoderBlock(w, cfg.heads, cfg.mlp_dim, eps=cfg.norm_eps, **kw) for _ in range(cfg.depth)]
        )
        self.final_norm = LayerNorm(w, eps=cfg.norm_eps, **kw)

    def patchify(self, images: jax.Array) -> jax.Array:
        b, hgt, wid, c = images.shape
        s, p = self.cfg.image_size, self.cfg.patch_size
        if (hgt, wid, c) != (s, s, 3):
            raise ValueError(f"images {images.shape} do not match the ViT's [B, {s}, {s}, 3]")
        x = images.reshape(b, s // p, p, s // p, p, c).transpose(0, 1, 3, 2, 4, 5)
        return x.reshape(b, (s // p) ** 2, p * p * c)

    def hidden_states(self, images: jax.Array, keep: jax.Array | None = None) -> list[jax.Array]:
        """Residual stream after the patch embedding and after each block (depth + 1).

        ``keep`` (int [B, K] patch indices) passes only those patches (with their position
        embeddings, and the class token if any) through the blocks: masked autoencoding.
        """
        x = self.patch_embed(self.patchify(to_float_images(images, self.dtype)))
        pos = self.pos_embed[...].astype(x.dtype)
        first = 1 if self.cls is not None else 0
        x = x + pos[first:][None]
        if keep is not None:
            x = jnp.take_along_axis(x, keep[..., None], axis=1)
        if self.cls is not None:
            cls = self.cls[...].astype(x.dtype) + pos[:1]
            x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, x.shape[-1])), x], axis=1)
        states = [x]
        for block in self.blocks:
            x = block(x)
            states.append(x)
        return states

    def __call__(self, images: jax.Array, keep: jax.Array | None = None) -> dict[str, jax.Array]:
        """``tokens`` [B, N, width] from ``feature_layer``; ``pooled`` [B, width] from the last.
        With ``keep`` (see ``hidden_states``) N is the number of kept patches."""
        states = self.hidden_states(images, keep)
        first = 1 if self.cls is not None else 0
        tokens = states[self.cfg.feature_layer][:, first:]
        final = self.final_norm(states[-1])
        pooled = final[:, 0] if self.cls is not None else jnp.mean(final, axis=1)
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
