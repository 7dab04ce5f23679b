"""Features of this project's models for the alignment metrics (``eval.alignment``), following
PRH's ``extract_features.py``, and the image-caption pairs they are measured on.

* Pairs: ``caption_pairs`` renders held-out (test-split) world scenes with the world's reference
  caption of each, window ``seed`` of the split: scenes seed * n .. seed * n + n - 1. PRH uses
  1,024 WIT pairs; the world stands in for WIT.
* LLM: captions are tokenised with BOS first (as a Hugging Face Llama tokenizer does) and padded
  on the right; every hidden state (the embedding output and each block's output,
  ``Llama.hidden_states``) is mean-pooled over the caption's real tokens -> [N, n_layers + 1, D].
  Attention is causal and padded keys are masked, so padding changes no real token's state.
  The same pooling serves other probes: a chosen subset of hidden states, and the mean taken
  without BOS (identical in every row) when asked (``eval.colour``'s sentence features).
* ViT: the class token of each block's output (PRH: ``blocks.{i}.add_1``, the residual stream
  after the block, before the final norm) -> [N, depth, D]; an encoder without a class token
  (the local ones, SigLIP) gives the mean of its patch tokens instead (registers left out).
* CNN: each feature map (stem, every stage's end, the head conv) averaged over its grid, a list
  of [N, C_l] (the widths differ; ``alignment.prepare_features`` stacks them).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax.numpy as jnp
import numpy as np
from flax import nnx

PAIR_SPLIT = "test"


def caption_pairs(world, n: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Images uint8 [n, S, S, 3] and their captions: window ``seed`` of the test split."""
    if n < 1 or seed < 0:
        raise ValueError(f"need n >= 1 pairs and seed >= 0, got n={n}, seed={seed}")
    pairs = [world.caption_pair(PAIR_SPLIT, seed * n + i) for i in range(n)]
    return np.stack([p[0] for p in pairs]), [p[1] for p in pairs]


def caption_tokens(tokenizer, captions: Sequence[str], max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """int32 tokens [n, T] (BOS + caption, cut to ``max_len`` when given, pad_id after) and a
    bool mask of real tokens; T is the longest row, at most ``max_len``."""
    rows = [([int(tokenizer.bos_id)] + [int(t) for t in tokenizer.encode(c)])[:max_len] for c in captions]
    width = max(len(r) for r in rows)
    tokens = np.full((len(rows), width), tokenizer.pad_id, np.int32)
    for i, r in enumerate(rows):
        tokens[i, :len(r)] = r
    return tokens, np.arange(width)[None, :] < np.array([len(r) for r in rows])[:, None]


def _batched(encode, model, arrays: tuple[np.ndarray, ...], batch_size: int):
    """``encode(model, *batch)`` over rows in batches of one size (the last one padded with
    copies of the first row, so one compiled program serves all), outputs concatenated."""
    n = len(arrays[0])
    batch_size = min(batch_size, n)
    padded = [np.concatenate([a, np.repeat(a[:1], -n % batch_size, axis=0)]) for a in arrays]
    outs = [encode(model, *(jnp.asarray(a[i:i + batch_size]) for a in padded))
            for i in range(0, len(padded[0]), batch_size)]
    return [np.concatenate([np.asarray(o[k], np.float32) for o in outs])[:n] for k in range(len(outs[0]))]


@partial(nnx.jit, static_argnames=("layers", "skip_bos"))
def _pooled_llm_states(model, tokens, mask, *, layers, skip_bos):
    w = mask.astype(jnp.float32)
    if skip_bos:
        w = w.at[:, 0].set(0.0)
    w = w[:, :, None]
    count = jnp.maximum(w.sum(1), 1.0)
    states = model.hidden_states(tokens, mask=mask)
    # Each state is pooled as it comes: [B, T, D] states of every layer are never held together.
    return (jnp.stack([(states[i].astype(jnp.float32) * w).sum(1) / count
                       for i in (range(len(states)) if layers is None else layers)], axis=1),)


def llm_features(model, tokens: np.ndarray, mask: np.ndarray, *, layers: Sequence[int] | None = None,
                 skip_bos: bool = False, batch_size: int = 64) -> np.ndarray:
    """float32 [N, L, d_model]: hidden states averaged over each row's real tokens (``mask``).

    layers: indices into ``Llama.hidden_states`` (0 = embedding output, i = block i's output),
    every one (L = n_layers + 1) by default. skip_bos: leave position 0 (BOS, the same in every
    row) out of the mean; the row's other tokens still attend to it."""
    if tokens.shape != mask.shape or tokens.ndim != 2:
        raise ValueError(f"tokens {tokens.shape} and mask {mask.shape} must be the same [N, T]")
    mask = np.asarray(mask, bool)
    if not mask[:, int(skip_bos):].any(axis=1).all():
        raise ValueError("every row needs at least one real token" + (" after BOS" if skip_bos else ""))
    layers = None if layers is None else tuple(int(i) for i in layers)
    encode = partial(_pooled_llm_states, layers=layers, skip_bos=bool(skip_bos))
    return _batched(encode, model, (tokens, mask), batch_size)[0]


def _vit_states(encoder, images):
    first = encoder.num_prefix_tokens
    # Each block's output ([0] is the blocks' input); a ViT without blocks has only its stem's.
    states = encoder.hidden_states(images)[1:] or encoder.hidden_states(images)
    if encoder.cls is not None:
        return tuple(s[:, 0].astype(jnp.float32) for s in states)
    return tuple(s[:, first:].astype(jnp.float32).mean(axis=1) for s in states)


def _cnn_states(encoder, images):
    return tuple(m.astype(jnp.float32).mean(axis=(1, 2)) for m in encoder.feature_maps(images))


def vision_features(encoder, images: np.ndarray, *, batch_size: int = 128) -> np.ndarray | list[np.ndarray]:
    """A ViT's class token (or mean patch token) of every block -> float32 [N, depth, width];
    a CNN's pooled feature maps -> a list of float32 [N, C_l] (stem, stages, head)."""
    if hasattr(encoder, "feature_maps"):
        return _batched(nnx.jit(_cnn_states), encoder, (images,), batch_size)
    if hasattr(encoder, "hidden_states") and hasattr(encoder, "num_prefix_tokens"):
        return np.stack(_batched(nnx.jit(_vit_states), encoder, (images,), batch_size), axis=1)
    raise TypeError(f"no alignment features for a {type(encoder).__name__}: expected a ViT or a CNN")
