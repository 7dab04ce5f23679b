"""From a frozen encoder's patch features to the fixed number of visual tokens the LLM reads.

The paper "uniformly resizes" every encoder's features to 576 tokens: the encoder's patch grid
(14 x 14 for a ViT-B/16 at 224 px, 16 x 16 for a ViT/14 at 224 px, 7 x 7 for a CNN's last map)
is interpolated bilinearly to 24 x 24, as Cambrian does. Before any image is encoded,
``check_encoder`` runs the encoder abstractly on one image of the size the data has and checks
that the grid it yields is the one its configuration promises and that both grids are square,
so a checkpoint whose preprocessing and patch size disagree fails at start-up, not mid-way.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp


class FeatureShapeError(ValueError):
    """An encoder's token grid disagrees with its config or cannot be resized to the asked count."""


def square_side(n: int, what: str) -> int:
    side = math.isqrt(int(n))
    if side * side != n:
        raise FeatureShapeError(f"{what}: {n} tokens do not form a square grid")
    return side


def resize_tokens(tokens: jax.Array, n_out: int) -> jax.Array:
    """[B, n, D] patch tokens on a square grid -> [B, n_out, D] by bilinear interpolation of the
    grid (half-pixel centres, no antialiasing: torch's interpolate with align_corners=False)."""
    b, n, d = tokens.shape
    if n == n_out:
        return tokens
    g, g_out = square_side(n, "encoder patch grid"), square_side(n_out, "visual tokens")
    grid = tokens.reshape(b, g, g, d).astype(jnp.float32)
    out = jax.image.resize(grid, (b, g_out, g_out, d), "bilinear", antialias=False)
    return out.reshape(b, n_out, d).astype(tokens.dtype)


@dataclasses.dataclass(frozen=True)
class EncoderCheck:
    """What an encoder makes of the data's images, checked once before encoding."""
    image_size: int        # size of the images given to it
    input_size: int        # size its preprocessing resizes them to
    patch_tokens: int      # patch tokens it yields at the feature layer
    visual_tokens: int     # tokens after resizing
    width: int             # feature width (the connector's input)

    def describe(self) -> str:
        g, v = math.isqrt(self.patch_tokens), math.isqrt(self.visual_tokens)
        return (f"{self.image_size} px images -> {self.input_size} px -> {g}x{g} patch tokens of width "
                f"{self.width} -> {v}x{v} visual tokens")


def check_encoder(encoder, image_size: int, n_tokens: int) -> EncoderCheck:
    """Abstract forward on one uint8 image of ``image_size``: the token count must equal the one
    ``encoder.num_tokens(image_size)`` promises, and both it and ``n_tokens`` must be squares."""
    images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.uint8)
    out = jax.eval_shape(lambda x: encoder(x)["tokens"], images)
    got = int(out.shape[1])
    promised = int(encoder.num_tokens(image_size))
    input_size = int(encoder.cfg.image_size)
    if got != promised:
        raise FeatureShapeError(
            f"encoder yields {got} patch tokens for {image_size} px images but its configuration "
            f"(input {input_size} px) promises {promised}; the checkpoint's patch size or "
            "preprocessing does not match its config")
    square_side(got, f"encoder patch grid at {input_size} px")
    square_side(n_tokens, "features.tokens")
    return EncoderCheck(image_size, input_size, got, int(n_tokens), int(out.shape[-1]))


def visual_tokens(encoder, images: jax.Array, n_tokens: int) -> jax.Array:
    """Frozen features of ``images`` at the encoder's feature layer, resized to ``n_tokens``."""
    return resize_tokens(jax.lax.stop_gradient(encoder(images)["tokens"]), n_tokens)
