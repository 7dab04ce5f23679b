"""Layers shared by the decoder, the vision encoders and the connector.

Every weight carries logical axis names (``embed, mlp, heads, kv, vocab`` or ``None``) in its
``out_sharding`` metadata; ``visual_priors.parallel.mesh`` maps them to mesh axes. Variables are
created unsharded (``eager_sharding=False``) so that models build without a mesh, and are
placed on one later with ``shard_model``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

Axes = Sequence[str | None]

default_kernel_init = nnx.initializers.normal(stddev=0.02)


class KeyStream:
    """Per-parameter keys derived from one key by a plain counter.

    Each ``nnx.Rngs`` draw updates an RNG Variable, and under ``nnx.eval_shape`` that update
    costs time that grows with the traced graph, so deep models drew keys quadratically slowly.
    Modules take one draw from their ``nnx.Rngs`` and hand a KeyStream to their parts; it has
    the same ``params()`` method, so layers accept either.
    """

    def __init__(self, rngs_or_key):
        self._key = rngs_or_key.params() if isinstance(rngs_or_key, nnx.Rngs) else rngs_or_key
        self._count = 0

    def params(self) -> jax.Array:
        self._count += 1
        return jax.random.fold_in(self._key, self._count)


def partitioned(init: Callable, axes: Axes) -> Callable:
    """An initializer whose Variable records the logical axes ``axes``."""
    return nnx.with_partitioning(init, tuple(axes), eager_sharding=False)


def make_param(rngs: nnx.Rngs | KeyStream, init: Callable, shape: Sequence[int], axes: Axes, dtype) -> nnx.Param:
    if len(axes) != len(shape):
        raise ValueError(f"axes {tuple(axes)} do not match shape {tuple(shape)}")
    return nnx.Param(partitioned(init, axes)(rngs.params(), tuple(shape), jnp.dtype(dtype)))


class Dense(nnx.Module):
    """``x @ kernel (+ bias)`` computed in ``dtype`` with parameters kept in ``param_dtype``."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        axes: Axes,
        *,
        rngs: nnx.Rngs,
        use_bias: bool = False,
        kernel_init: Callable = default_kernel_init,
        dtype="float32",
        param_dtype="float32",
    ):
        self.dtype = jnp.dtype(dtype).name
        self.kernel = make_param(rngs, kernel_init, (in_dim, out_dim), axes, param_dtype)
        self.bias = (
            make_param(rngs, nnx.initializers.zeros, (out_dim,), axes[-1:], param_dtype)
            if use_bias
            else None
        )

    def __call__(self, x: jax.Array, *, out_dtype=None) -> jax.Array:
        dtype = jnp.dtype(self.dtype)
        # As a 2-D matmul: XLA's CPU backend runs the backward pass of a 3-D dot much slower.
        lead = x.shape[:-1]
        y = jnp.dot(x.reshape(-1, x.shape[-1]).astype(dtype), self.kernel[...].astype(dtype),
                    preferred_element_type=out_dtype)
        y = y.reshape(*lead, y.shape[-1])
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, *, eps: float, rngs: nnx.Rngs, dtype="float32", param_dtype="float32"):
        self.eps = float(eps)
        self.dtype = jnp.dtype(dtype).name
        self.scale = make_param(rngs, nnx.initializers.ones, (dim,), ("embed",), param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        # Statistics in float32 whatever the compute dtype: bf16 variance loses too much.
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (y * self.scale[...].astype(jnp.float32)).astype(self.dtype)


class LayerNorm(nnx.Module):
    def __init__(self, dim: int, *, eps: float, rngs: nnx.Rngs, dtype="float32", param_dtype="float32"):
        self.eps = float(eps)
        self.dtype = jnp.dtype(dtype).name
        self.scale = make_param(rngs, nnx.initializers.ones, (dim,), ("embed",), param_dtype)
        self.bias = make_param(rngs, nnx.initializers.zeros, (dim,), ("embed",), param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        y = y * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)
        return y.astype(self.dtype)


def masked_softmax_attention(q, k, v, mask, dtype):
    """Multi-head attention with grouped keys/values.

    q [B, L, H, hd]; k, v [B, M, K, hd] with H a multiple of K; mask broadcastable to
    [B, H, L, M] (True = attend). Query head ``h`` reads key/value head ``h // (H // K)``, the
    grouping of Hugging Face's ``repeat_kv``. Repeating k/v to H heads before the einsums runs
    faster on CPU than a grouped 5-D einsum. Scores and softmax in float32.
    """
    groups = q.shape[2] // k.shape[2]
    if groups > 1:
        k = jnp.repeat(k, groups, axis=2)
        v = jnp.repeat(v, groups, axis=2)
    scale = q.shape[-1] ** -0.5
    scores = jnp.einsum("blhd,bmhd->bhlm", q, k, preferred_element_type=jnp.float32) * scale
    scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(dtype)
    return jnp.einsum("bhlm,bmhd->blhd", probs, v)
