"""Batched greedy decoding for an ``MLLM`` or a bare ``Llama``, with or without a KV cache.

Padding. Prompts of different lengths share a batch by *right* padding: row r's prompt fills
columns P..P+len_r-1 after the P image-prefix columns, and every token's keys/values sit at the
cache column equal to its RoPE position, so each row sees exactly the positions of an unpadded
run of that row alone, and batched output equals one-at-a-time output. The prefill writes
padding into the cache after each prompt, but no query ever reads it: a query reads columns up
to its own position only, and row r's t-th new token is written at column P+len_r+t before the
query at that column runs. Right padding keeps RoPE positions equal to column indices (no
per-row position offsets, no key mask), at the cost of a per-row write column (a scatter).

Rows with and without an image cannot share a batch (the prefix has one length for all rows):
call ``greedy`` once with ``image_feats`` for the image rows and once with ``image_feats=None``
for the text-only rows.

One compiled program per (batch, prompt-length bucket, prefix length, max_new_tokens): prompt
lengths are rounded up to a multiple of ``LENGTH_BUCKET`` and a short last batch is filled
with copies of its last row, so evaluating many batches reuses one program. ``TRACES`` counts
traces of the prefill and of the decode step (tests use it to check that nothing recompiles).
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from visual_priors.data.multimodal import prompt_ids

LENGTH_BUCKET = 16
TRACES: collections.Counter = collections.Counter()


def llm_and_prefix(model, feats):
    """(Llama, image prefix or None) of an MLLM or a bare Llama."""
    if hasattr(model, "connector"):
        return model.llm, model.image_prefix(feats)
    if feats is not None:
        raise ValueError("image_feats given to a bare Llama; pass an MLLM")
    return model, None


@functools.partial(nnx.jit, static_argnames="max_new_tokens")
def _greedy_cached(model, tokens, lengths, feats, eos_id, pad_id, *, max_new_tokens):
    """[B, max_new_tokens] greedy ids (pad after a row's EOS) from right-padded ``tokens``.

    ``eos_id`` and ``pad_id`` are traced scalars: changing them does not recompile."""
    TRACES["prefill"] += 1
    llm, prefix = llm_and_prefix(model, feats)
    b, t = tokens.shape
    n_prefix = 0 if prefix is None else prefix.shape[1]
    rows = jnp.arange(b)
    # The last generated token is never fed back, so it needs no column.
    cache = llm.init_cache(b, n_prefix + t + max_new_tokens - 1)
    positions = jnp.broadcast_to(jnp.arange(n_prefix + t), (b, n_prefix + t))
    hidden, cache = llm.forward_cached(tokens, positions, cache, prefix=prefix)
    last = n_prefix + lengths - 1  # column of each row's last prompt token
    # Logits only at each row's last prompt position: [B, P+T, V] would dwarf the cache.
    first = jnp.argmax(llm.logits(hidden[rows, last][:, None])[:, 0], axis=-1).astype(jnp.int32)
    out = jnp.full((b, max_new_tokens), pad_id, jnp.int32).at[:, 0].set(first)

    def running(state):
        step, _, _, _, done = state
        return (step < max_new_tokens) & ~jnp.all(done)

    def decode(state):
        # Feed out[:, step-1], which sits at column last + step, and emit out[:, step].
        TRACES["decode_step"] += 1
        step, token, cache, out, done = state
        hidden, cache = llm.forward_cached(token[:, None], (last + step)[:, None], cache)
        token = jnp.argmax(llm.logits(hidden)[:, 0], axis=-1).astype(jnp.int32)
        token = jnp.where(done, pad_id, token)
        out = out.at[:, step].set(token)
        return step + 1, token, cache, out, done | (token == eos_id)

    state = (jnp.int32(1), first, cache, out, first == eos_id)
    return jax.lax.while_loop(running, decode, state)[3]


@nnx.jit
def _next_uncached(model, tokens, feats, last):
    """Greedy next id of each row from a full forward over ``tokens``, read at text column
    ``last`` [B]; later columns cannot change it (causal attention)."""
    logits = model(feats, tokens) if hasattr(model, "connector") else model(tokens)
    n_prefix = logits.shape[1] - tokens.shape[1]
    return jnp.argmax(logits[jnp.arange(tokens.shape[0]), n_prefix + last], axis=-1)


def _greedy_uncached(model, tokens, lengths, feats, eos_id, pad_id, *, max_new_tokens):
    """The reference: a full forward over everything so far for every new token."""
    eos_id, pad_id = int(eos_id), int(pad_id)
    b, t = tokens.shape
    # One fixed-size buffer (one compiled forward); generated ids are appended in place.
    seq = np.full((b, t + max_new_tokens - 1), pad_id, np.int32)
    seq[:, :t] = tokens
    out = np.full((b, max_new_tokens), pad_id, np.int32)
    done = np.zeros(b, bool)
    rows = np.arange(b)
    for step in range(max_new_tokens):
        token = np.asarray(_next_uncached(model, jnp.asarray(seq), feats, jnp.asarray(lengths - 1 + step)))
        token = np.where(done, pad_id, token)
        out[:, step] = token
        done |= token == eos_id
        if done.all():
            break
        if step + 1 < max_new_tokens:
            seq[rows, lengths + step] = token
    return out


def right_pad(prompts: Sequence[Sequence[int]], pad_id: int, width: int | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """[rows, width] right-padded prompts and their lengths; ``width`` (default: the longest)
    rounded up to a multiple of ``LENGTH_BUCKET``."""
    lengths = np.array([len(p) for p in prompts], np.int32)
    width = -(-int(width or lengths.max()) // LENGTH_BUCKET) * LENGTH_BUCKET
    tokens = np.full((len(prompts), width), pad_id, np.int32)
    for row, prompt in enumerate(prompts):
        tokens[row, : len(prompt)] = prompt
    return tokens, lengths


def _until_eos(ids: np.ndarray, eos_id: int) -> list[int]:
    ids = [int(i) for i in ids]
    return ids[: ids.index(eos_id)] if eos_id in ids else ids


def greedy(
    model,
    prompts: Sequence[Sequence[int]],
    *,
    image_feats=None,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    use_cache: bool = True,
    batch_size: int | None = None,
) -> list[list[int]]:
    """Greedy continuation of each prompt: its generated ids up to and excluding EOS.

    ``model``: an ``MLLM`` or a bare ``Llama``. ``prompts``: token-id lists, already templated
    (BOS included), of any lengths. ``image_feats``: frozen-encoder features [len(prompts), N, D]
    that the MLLM's connector turns into an N-token prefix before every prompt; None for
    text-only rows (see the module docstring for mixing the two). A row stops at its EOS; at
    most ``max_new_tokens`` ids are generated per row, EOS included. ``pad_id`` (a valid token
    id) only fills padding. ``use_cache=False`` recomputes the full forward for every token (the
    slow reference). ``batch_size``: rows per compiled batch (default: all at once).
    Nothing stops a sequence from outgrowing the context the model was trained on
    (``cfg.max_len``); RoPE extrapolates, but the caller chooses sensible limits.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not prompts:
        return []
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (BOS)")
    llm = model.llm if hasattr(model, "connector") else model
    if not 0 <= pad_id < llm.cfg.vocab_size:
        # A padding id outside the table embeds as NaN, and 0 * NaN leaks through attention.
        raise ValueError(f"pad_id {pad_id} is not a token id of a vocabulary of {llm.cfg.vocab_size}")
    if image_feats is not None:
        if not hasattr(model, "connector"):
            raise ValueError("image_feats given to a bare Llama; pass an MLLM")
        image_feats = np.asarray(image_feats) if not isinstance(image_feats, jax.Array) else image_feats
        if image_feats.ndim != 3 or image_feats.shape[0] != len(prompts):
            raise ValueError(f"image_feats {image_feats.shape} must be [{len(prompts)}, N, D]")
    if max_new_tokens == 0:
        return [[] for _ in prompts]
    batch_size = batch_size or len(prompts)
    run = _greedy_cached if use_cache else _greedy_uncached
    results: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start:start + batch_size])
        fill = batch_size - len(chunk)  # a short last batch repeats its last row: same shape
        tokens, lengths = right_pad(chunk + chunk[-1:] * fill, pad_id)
        feats = None
        if image_feats is not None:
            f = image_feats[start:start + batch_size]
            feats = jnp.asarray(jnp.concatenate([f] + [f[-1:]] * fill) if fill else f)
        out = run(model, jnp.asarray(tokens), jnp.asarray(lengths), feats, jnp.int32(eos_id),
                  jnp.int32(pad_id), max_new_tokens=max_new_tokens)
        results += [_until_eos(row, eos_id) for row in np.asarray(out)[: len(chunk)]]
    return results


def answer(
    model,
    tokenizer,
    prompts_text: Sequence[str],
    image_feats=None,
    *,
    max_new_tokens: int = 64,
    use_cache: bool = True,
    batch_size: int | None = None,
) -> list[str]:
    """Free-form answers to ``prompts_text``, templated as in instruction tuning
    (``visual_priors.data.multimodal.prompt_ids``) and decoded greedily.

    ``tokenizer`` needs ``encode``, ``decode``, ``bos_id``, ``eos_id`` and ``pad_id``;
    ``image_feats`` as in ``greedy``. Answers are trained as " " + text, so each decoded answer
    is returned without surrounding whitespace.
    """
    prompts = [prompt_ids(tokenizer, text) for text in prompts_text]
    ids = greedy(model, prompts, image_feats=image_feats, max_new_tokens=max_new_tokens,
                 eos_id=tokenizer.eos_id, pad_id=tokenizer.pad_id, use_cache=use_cache,
                 batch_size=batch_size)
    return [tokenizer.decode(row).strip() for row in ids]
