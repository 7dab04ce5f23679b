"""Multimodal LLM: frozen-encoder features -> connector -> image tokens before the text.

Parameter paths start with ``llm/`` and ``connector/``, which the training stages' freeze rules
match (stage 1 trains ``connector/.*`` only; stage 2 both).
"""

from __future__ import annotations

import jax
from flax import nnx

from visual_priors.model.connector import Connector
from visual_priors.model.llm import Llama


class MLLM(nnx.Module):
    def __init__(self, llm: Llama, connector: Connector):
        if connector.out_dim != llm.cfg.d_model:
            raise ValueError(f"connector outputs {connector.out_dim} but the LLM width is {llm.cfg.d_model}")
        self.llm = llm
        self.connector = connector

    def image_prefix(self, image_feats: jax.Array | None) -> jax.Array | None:
        """Connector output [B, N, d_model]; gradients stop at the frozen encoder's features."""
        if image_feats is None:
            return None
        return self.connector(jax.lax.stop_gradient(image_feats))

    def __call__(self, image_feats: jax.Array | None, tokens: jax.Array, *, mask=None) -> jax.Array:
        """Logits float32 [B, N+T, V] (N = 0 when ``image_feats`` is None).

        ``mask`` ([B, T] or [B, N+T], true for real positions) removes padding from the keys.
        """
        return self.llm(tokens, prefix=self.image_prefix(image_feats), mask=mask)

    def hidden_states(self, image_feats: jax.Array | None, tokens: jax.Array, *, mask=None) -> list[jax.Array]:
        """The LLM's residual stream over image and text positions (n_layers + 1 arrays)."""
        return self.llm.hidden_states(tokens, self.image_prefix(image_feats), mask=mask)
