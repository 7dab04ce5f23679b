"""LLaVA-1.5 connector: a two-layer GELU MLP from vision features to the LLM's width."""

from __future__ import annotations

import jax
from flax import nnx

from visual_priors.model.layers import Dense, KeyStream


class Connector(nnx.Module):
    def __init__(self, in_dim: int, out_dim: int, *, rngs: nnx.Rngs, dtype="float32", param_dtype="float32"):
        keys = KeyStream(rngs)
        kw = dict(rngs=keys, use_bias=True, dtype=dtype, param_dtype=param_dtype)
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        # Megatron layout: the hidden layer is split over `tensor`, the output over `embed`.
        self.fc1 = Dense(in_dim, out_dim, (None, "mlp"), **kw)
        self.fc2 = Dense(out_dim, out_dim, ("mlp", "embed"), **kw)

    def __call__(self, feats: jax.Array) -> jax.Array:
        """[B, N, in_dim] -> [B, N, out_dim]."""
        if feats.shape[-1] != self.in_dim:
            raise ValueError(f"features of width {feats.shape[-1]} given to a connector from {self.in_dim}")
        # Exact (erf) GELU, as in LLaVA's nn.GELU.
        return self.fc2(jax.nn.gelu(self.fc1(feats), approximate=False))
