"""Held-out perplexity of a language model on packed token windows."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from flax import nnx

from visual_priors.model.scoring import token_logprobs


@nnx.jit
def _window_nll(model, tokens):
    return -jnp.sum(token_logprobs(model, tokens))


def perplexity(model, stream: np.ndarray, *, seq_len: int, batch_size: int = 8,
               max_windows: int | None = None) -> float:
    """exp(mean next-token NLL) over consecutive windows of seq_len + 1 tokens of a token stream."""
    n = (len(stream) - 1) // seq_len
    if max_windows is not None:
        n = min(n, max_windows)
    if n < 1:
        raise ValueError(f"a held-out stream of {len(stream)} tokens is shorter than one window of {seq_len + 1}")
    windows = np.stack([stream[i * seq_len: i * seq_len + seq_len + 1] for i in range(n)]).astype(np.int32)
    total, count = 0.0, 0
    for start in range(0, n - batch_size + 1, batch_size):
        total += float(_window_nll(model, jnp.asarray(windows[start:start + batch_size])))
        count += batch_size * seq_len
    rest = windows[(n // batch_size) * batch_size:]
    if len(rest):
        total += float(_window_nll(model, jnp.asarray(rest)))
        count += len(rest) * seq_len
    return math.exp(total / count)
