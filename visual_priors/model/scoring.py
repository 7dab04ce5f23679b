"""Next-token log-probabilities of packed [B, T+1] token rows, with or without an image prefix.

Training losses, perplexity and option scoring all go through here so that the three agree on
which logit predicts which token.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def token_logprobs(model, tokens: jax.Array, feats: jax.Array | None = None) -> jax.Array:
    """log p(tokens[:, t+1] | image, tokens[:, :t+1]) as [B, T] float32.

    `model` is an MLLM when feats is given (feats [B, N, Dv] become N prefix tokens), otherwise
    either an MLLM called without image or a bare LLM.
    """
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    if feats is not None:
        logits = model(feats, inputs)
    elif hasattr(model, "connector"):
        logits = model(None, inputs)
    else:
        logits = model(inputs)
    logits = logits[:, logits.shape[1] - inputs.shape[1]:].astype(jnp.float32)
    # The target's logit picked by comparison rather than a gather: the gather's gradient is a
    # scatter into a zeroed [B, T, V] buffer, which costs more than the fused select.
    hit = targets[..., None] == jnp.arange(logits.shape[-1], dtype=targets.dtype)
    target_logit = jnp.sum(jnp.where(hit, logits, 0.0), axis=-1)
    return target_logit - jax.nn.logsumexp(logits, axis=-1)


def masked_nll(model, tokens: jax.Array, mask: jax.Array, feats: jax.Array | None = None):
    """Mean negative log-likelihood over target positions where mask[:, 1:] is 1, and their count."""
    lp = token_logprobs(model, tokens, feats)
    m = mask[:, 1:].astype(jnp.float32)
    count = jnp.sum(m)
    return -jnp.sum(lp * m) / jnp.maximum(count, 1.0), count
