"""Next-token log-probabilities of packed [B, T+1] token rows, with or without an image prefix.

Training losses, perplexity and option scoring all go through here so that the three agree on
which logit predicts which token.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


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


def target_logprobs(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """log-softmax of ``logits`` [..., V] read at ``targets`` [...] (float32 [...])."""
    # The target's logit picked by comparison rather than a gather: the gather's gradient is a
    # scatter into a zeroed [..., V] buffer, which costs more than the fused select.
    hit = targets[..., None] == jnp.arange(logits.shape[-1], dtype=targets.dtype)
    return jnp.sum(jnp.where(hit, logits, 0.0), axis=-1) - jax.nn.logsumexp(logits, axis=-1)


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
    lp = target_logprobs(logits[:, logits.shape[1] - inputs.shape[1]:].astype(jnp.float32), targets)
    if segment_ids is not None:
        lp = jnp.where(packed_target_mask(segment_ids), lp, 0.0)
    return lp


def target_capacity(mask, multiple: int = 64) -> int:
    """Most targets any row set of ``mask`` ([..., B, T+1] arrays, or one) scores, rounded up to
    ``multiple``: a static ``max_targets`` for ``masked_logprobs`` that one compiled shape keeps."""
    masks = mask if isinstance(mask, (list, tuple)) else [mask]
    most = max(int((np.asarray(m)[..., 1:] > 0).sum()) for m in masks)
    return max(multiple, -(-most // multiple) * multiple)


def masked_logprobs(model, tokens: jax.Array, mask: jax.Array, feats: jax.Array | None = None, *,
                    max_targets: int) -> tuple[jax.Array, jax.Array]:
    """Per row [B]: the summed log-probability of the targets where mask[:, 1:] is non-zero
    (weighted by it), and the sum of those weights, as ``token_logprobs`` would give them.

    The output head and its log-softmax run only at the scored positions, gathered into
    ``max_targets`` slots (static; callers size it with ``target_capacity`` over all their
    batches, since targets past it would be left out), not at every position: in instruction
    tuning and option scoring most positions are prompt or image, and at the tiny scales the
    head over the vocabulary is most of a step's work.
    """
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    weights = mask[:, 1:].astype(jnp.float32)
    llm = model.llm if hasattr(model, "connector") else model
    if hasattr(model, "connector"):
        hidden = model.hidden_states(feats, inputs)[-1]
    else:
        if feats is not None:
            raise ValueError("image feats need an MLLM")
        hidden = model.hidden_states(inputs)[-1]
    b, t = inputs.shape
    hidden = hidden[:, hidden.shape[1] - t:]
    slots = min(max_targets, b * t)
    flat_w = weights.reshape(-1)
    count = jnp.sum(flat_w != 0)
    idx = jnp.nonzero(flat_w != 0, size=slots, fill_value=0)[0]
    filled = jnp.arange(slots) < count
    lp = target_logprobs(llm.logits(hidden.reshape(b * t, -1)[idx][None])[0], targets.reshape(-1)[idx])
    lp = jnp.where(filled, lp * flat_w[idx], 0.0)
    sums = jax.ops.segment_sum(lp, idx // t, num_segments=b)
    return sums, jnp.sum(weights, axis=-1)


def masked_nll(
    model,
    tokens: jax.Array,
    mask: jax.Array,
    feats: jax.Array | None = None,
    *,
    segment_ids: jax.Array | None = None,
    positions: jax.Array | None = None,
    max_targets: int | None = None,
):
    """Mean negative log-likelihood over target positions where mask[:, 1:] is 1, and their count.

    With packed rows (``segment_ids`` [B, T+1], optional ``positions`` [B, T+1]; see
    ``token_logprobs``) a target also needs the same non-zero segment id as its input position:
    each document's first token and all padding targets are left out of both the mean and the
    count, so the loss is the token-weighted mean of the documents' own NLLs.

    With ``max_targets`` (unpacked rows only) the output head runs at the masked positions alone
    (``masked_logprobs``); the value is the same.
    """
    if max_targets is not None:
        if segment_ids is not None or positions is not None:
            raise ValueError("max_targets applies to unpacked rows only")
        sums, counts = masked_logprobs(model, tokens, mask, feats, max_targets=max_targets)
        count = jnp.sum(counts)
        return -jnp.sum(sums) / jnp.maximum(count, 1.0), count
    lp = token_logprobs(model, tokens, feats, segment_ids=segment_ids, positions=positions)
    m = mask[:, 1:].astype(jnp.float32)
    if segment_ids is not None:
        m = m * packed_target_mask(jnp.asarray(segment_ids)).astype(jnp.float32)
    count = jnp.sum(m)
    return -jnp.sum(lp * m) / jnp.maximum(count, 1.0), count
