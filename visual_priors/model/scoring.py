"""Next-token log-probabilities of packed [B, T+1] token rows, with or without an image prefix.

Training losses, perplexity and option scoring all go through here so that the three agree on
which logit predicts which token.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _check_row_shape(name: str, value, tokens: jax.Array) -> jax.Array:
    value = jnp.asarray(value)
    if value.shape != tuple(tokens.shape):
        raise ValueError(f"{name} {value.shape} must match tokens {tuple(tokens.shape)} ([B, T+1])")
    return value


def packed_target_mask(segment_ids: jax.Array) -> jax.Array:
    """bool [B, T] for [B, T+1] ``segment_ids``: whether target t+1 is scored.

    A target counts only if it is in the same segment as its input position t and that segment
    is not padding (id 0). So the first token of each document, which would be predicted from the
    previous document, is excluded, and so is every padding target.
    """
    inputs, targets = segment_ids[:, :-1], segment_ids[:, 1:]
    return (targets == inputs) & (targets != 0)


def token_logprobs(
    model,
    tokens: jax.Array,
    feats: jax.Array | None = None,
    *,
    segment_ids: jax.Array | None = None,
    positions: jax.Array | None = None,
) -> jax.Array:
    """log p(tokens[:, t+1] | image, tokens[:, :t+1]) as [B, T] float32.

    `model` is an MLLM when feats is given (feats [B, N, Dv] become N prefix tokens), otherwise
    either an MLLM called without image or a bare LLM.

    Packed rows (several documents in one row): ``segment_ids`` and ``positions`` are int
    [B, T+1] like ``tokens`` (see ``Llama.__call__``); the model reads ``[:, :-1]`` of each.
    Attention then stays within a document, and targets that ``packed_target_mask`` excludes
    (a document's first token predicted from the previous document, and padding, id 0) get
    log-probability 0, so a sum over the result is the sum of per-document log-likelihoods.
    Packed rows cannot be combined with ``feats``.
    """
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    packed = segment_ids is not None or positions is not None
    if packed:
        if feats is not None:
            raise ValueError("segment_ids/positions (packed rows) cannot be combined with image feats")
        kw = {}
        if segment_ids is not None:
            segment_ids = _check_row_shape("segment_ids", segment_ids, tokens)
            kw["segment_ids"] = segment_ids[:, :-1]
        if positions is not None:
            kw["positions"] = _check_row_shape("positions", positions, tokens)[:, :-1]
        # An MLLM without image is its LLM on the tokens alone.
        llm = model.llm if hasattr(model, "connector") else model
        logits = llm(inputs, **kw)
    elif feats is not None:
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
    lp = target_logit - jax.nn.logsumexp(logits, axis=-1)
    if segment_ids is not None:
        lp = jnp.where(packed_target_mask(segment_ids), lp, 0.0)
    return lp


def masked_nll(
    model,
    tokens: jax.Array,
    mask: jax.Array,
    feats: jax.Array | None = None,
    *,
    segment_ids: jax.Array | None = None,
    positions: jax.Array | None = None,
):
    """Mean negative log-likelihood over target positions where mask[:, 1:] is 1, and their count.

    With packed rows (``segment_ids`` [B, T+1], optional ``positions`` [B, T+1]; see
    ``token_logprobs``) a target also needs the same non-zero segment id as its input position:
    each document's first token and all padding targets are left out of both the mean and the
    count, so the loss is the token-weighted mean of the documents' own NLLs.
    """
    lp = token_logprobs(model, tokens, feats, segment_ids=segment_ids, positions=positions)
    m = mask[:, 1:].astype(jnp.float32)
    if segment_ids is not None:
        m = m * packed_target_mask(jnp.asarray(segment_ids)).astype(jnp.float32)
    count = jnp.sum(m)
    return -jnp.sum(lp * m) / jnp.maximum(count, 1.0), count
