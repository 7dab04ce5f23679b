"""The three objectives that train a local ViT: the stand-ins for MetaCLIP, MAE and a supervised
backbone. Each model keeps its image encoder at ``.vit`` (a plain ViT), so after training only
that part is kept, frozen, as the MLLM's encoder.

Loss functions have the training loop's signature ``loss_fn(model, batch) -> (loss, aux)`` with
``aux["tokens"]`` the number of images in the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from visual_priors.model.layers import Dense, KeyStream, LayerNorm, make_param
from visual_priors.model.vision import CLIPModel, EncoderBlock, ViT, clip_loss

OBJECTIVES = ("contrastive", "mae", "supervised")
# Per-patch target normalisation (He et al. 2021 use the same epsilon).
NORM_PIX_EPS = 1e-6

__all__ = ["OBJECTIVES", "CLIPModel", "MAEModel", "KindClassifier", "LOSSES", "contrastive_loss",
           "mae_loss", "kind_loss", "random_masking", "patch_targets", "masked_mse"]


def _images(batch: dict) -> dict:
    return {"tokens": jnp.asarray(batch["images"].shape[0])}


# ---------------------------------------------------------------- contrastive


def contrastive_loss(model: CLIPModel, batch: dict):
    """CLIP's symmetric InfoNCE on a batch {images, tokens, mask} of paired images and captions."""
    return clip_loss(model, batch["images"], batch["tokens"], batch["mask"]), _images(batch)


# ---------------------------------------------------------------- masked autoencoding


def random_masking(seeds: jax.Array, num_patches: int, mask_ratio: float) -> tuple[jax.Array, jax.Array]:
    """One random mask per row from int seeds [B]: (keep int [B, K] visible patch indices in
    ascending order, masked bool [B, N]). K = int(N * (1 - mask_ratio)), at least 1.

    The same seeds always give the same masks, so masks travel with the data (whose position
    is checkpointed) and a resumed run masks exactly as an uninterrupted one.
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    n_keep = max(1, int(num_patches * (1.0 - mask_ratio)))
    noise = jax.vmap(lambda s: jax.random.uniform(jax.random.key(s), (num_patches,)))(seeds)
    keep = jnp.sort(jnp.argsort(noise, axis=1)[:, :n_keep], axis=1)
    rows = jnp.arange(seeds.shape[0])[:, None]
    masked = jnp.ones((seeds.shape[0], num_patches), bool).at[rows, keep].set(False)
    return keep, masked


def patch_targets(vit: ViT, images: jax.Array) -> jax.Array:
    """Pixels of each patch [B, N, p*p*3], normalised to zero mean and unit variance per patch
    (uint8 images are read as 0..1; the per-patch normalisation makes the scale immaterial)."""
    x = images.astype(jnp.float32) / (255.0 if images.dtype == jnp.uint8 else 1.0)
    x = vit.patchify(x)
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.var(x, axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + NORM_PIX_EPS)


def masked_mse(pred: jax.Array, target: jax.Array, masked: jax.Array) -> jax.Array:
    """Mean squared error over the masked patches only: visible patches carry no loss."""
    per_patch = jnp.mean(jnp.square(pred.astype(jnp.float32) - target), axis=-1)
    m = masked.astype(jnp.float32)
    return jnp.sum(per_patch * m) / jnp.maximum(jnp.sum(m), 1.0)


class MAEModel(nnx.Module):
    """Masked autoencoder (He et al. 2021): the ViT encodes only the visible patches; a light
    decoder fills the masked places with a learned mask token, adds its own position
    embeddings and predicts every patch's normalised pixels."""

    def __init__(self, vit_cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs, decoder_width: int,
                 decoder_depth: int, mask_ratio: float = 0.75, decoder_heads: int = 4):
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        keys = KeyStream(rngs)
        kw = dict(rngs=keys, dtype=vit_cfg.dtype, param_dtype=vit_cfg.param_dtype)
        p = vit_cfg.patch_size
        self.vit = ViT(vit_cfg, rngs=nnx.Rngs(keys.params()))
        self.mask_ratio = float(mask_ratio)
        self.num_patches = (vit_cfg.image_size // p) ** 2
        # Normalises the encoder's last layer here, so the decoder depends on ViT.hidden_states only.
        self.encoder_norm = LayerNorm(vit_cfg.width, eps=vit_cfg.norm_eps, **kw)
        self.decoder_embed = Dense(vit_cfg.width, decoder_width, ("embed", None), use_bias=True, **kw)
        self.mask_token = make_param(keys, nnx.initializers.normal(0.02), (1, decoder_width),
                                     (None, None), vit_cfg.param_dtype)
        self.decoder_pos = make_param(keys, nnx.initializers.normal(0.02),
                                      (self.num_patches, decoder_width), (None, None), vit_cfg.param_dtype)
        self.decoder_blocks = nnx.List([
            EncoderBlock(decoder_width, decoder_heads, 4 * decoder_width, eps=vit_cfg.norm_eps, **kw)
            for _ in range(decoder_depth)])
        self.decoder_norm = LayerNorm(decoder_width, eps=vit_cfg.norm_eps, **kw)
        self.pred = Dense(decoder_width, p * p * 3, (None, None), use_bias=True, **kw)

    def __call__(self, images: jax.Array, keep: jax.Array) -> jax.Array:
        """Predicted normalised pixels of every patch [B, N, p*p*3] from the patches in `keep`."""
        x = self.vit.hidden_states(images, keep)[-1]
        x = x[:, x.shape[1] - keep.shape[1]:]  # drop the class token or registers, if any
        x = self.decoder_embed(self.encoder_norm(x))
        b, d = x.shape[0], x.shape[-1]
        full = jnp.broadcast_to(self.mask_token[...].astype(x.dtype), (b, self.num_patches, d))
        full = full.at[jnp.arange(b)[:, None], keep].set(x)
        y = full + self.decoder_pos[...].astype(x.dtype)[None]
        for block in self.decoder_blocks:
            y = block(y)
        return self.pred(self.decoder_norm(y))


def mae_loss(model: MAEModel, batch: dict):
    """Reconstruction error on masked patches; batch {images, mask_seed int [B]}."""
    images = batch["images"]
    keep, masked = random_masking(batch["mask_seed"], model.num_patches, model.mask_ratio)
    loss = masked_mse(model(images, keep), patch_targets(model.vit, images), masked)
    return loss, _images(batch)


# ---------------------------------------------------------------- supervised


# Weight of the colour cross-entropy beside the kind's. Kind is colour-blind (a kind is
# painted in another colour one time in four), so a kind-only encoder drops colour (colour
# probe 64%); at weight 1 colour crowds kind out (kind probe 65% against 86%); at 0.1 both
# stay (80% / 86%), measured after 600 steps on 14 kinds.
COLOUR_WEIGHT = 0.1


class KindClassifier(nnx.Module):
    """Linear heads over the ViT's pooled output: one logit per kind and, with ``n_colours``,
    one per colour."""

    def __init__(self, vit_cfg: ml_collections.ConfigDict, n_kinds: int, *, rngs: nnx.Rngs,
                 n_colours: int = 0):
        keys = KeyStream(rngs)
        self.vit = ViT(vit_cfg, rngs=nnx.Rngs(keys.params()))
        # A zero head starts at uniform predictions (loss log n_kinds), as big_vision does.
        kw = dict(use_bias=True, kernel_init=nnx.initializers.zeros, rngs=keys, dtype=vit_cfg.dtype,
                  param_dtype=vit_cfg.param_dtype)
        self.head = Dense(vit_cfg.width, int(n_kinds), ("embed", None), **kw)
        self.colour_head = Dense(vit_cfg.width, int(n_colours), ("embed", None), **kw) if n_colours else None

    def __call__(self, images: jax.Array) -> jax.Array:
        return self.head(self.vit(images)["pooled"], out_dtype=jnp.float32)


def _ce(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels))


def kind_loss(model: KindClassifier, batch: dict):
    """Cross-entropy of the kind labels; batch {images, labels int [B]}, plus COLOUR_WEIGHT
    times that of ``colours`` (int [B]) when the model has a colour head."""
    pooled = model.vit(batch["images"])["pooled"]
    loss = _ce(model.head(pooled), batch["labels"])
    if model.colour_head is not None:
        loss = loss + COLOUR_WEIGHT * _ce(model.colour_head(pooled), batch["colours"])
    return loss, _images(batch)


LOSSES = {"contrastive": contrastive_loss, "mae": mae_loss, "supervised": kind_loss}
