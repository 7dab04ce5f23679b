"""Log-likelihood of several continuations of one prompt, the prompt run once.

Multiple-choice scoring asks for log p(option | image, prompt) of every option of a question.
Scored as whole rows (prompt + option, one row per option), the image prefix and the prompt,
most of each row, pass through the blocks once per option. Here they pass once per question:
the prompt fills a KV cache (right-padded as in ``generate``: every token's keys/values at the
column equal to its RoPE position), the cache is repeated for each option, and each option's
tokens then run as a continuation at the columns after their own prompt's end. Each option
token reads exactly the prompt and the option tokens before it, so the scores equal those of
the whole rows up to float rounding.

The output head runs at option positions only: the last prompt position predicts an option's
first token, each option token the next.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from visual_priors.model.generate import llm_and_prefix, right_pad
from visual_priors.model.scoring import target_logprobs

# Continuations are padded to a multiple of this (one compiled shape for most option sets).
CONTINUATION_BUCKET = 8


@nnx.jit
def _continuation_sums(model, prompt, lengths, conts, cont_mask, feats):
    """[Q, K] summed log-probabilities and token counts of ``conts`` [Q, K, C] (``cont_mask``
    1 on real tokens) after right-padded ``prompt`` [Q, P] of ``lengths`` [Q]."""
    llm, prefix = llm_and_prefix(model, feats)
    q, p = prompt.shape
    _, k, c = conts.shape
    n_prefix = 0 if prefix is None else prefix.shape[1]
    cache = llm.init_cache(q, n_prefix + p + c)
    hidden, cache = llm.forward_cached(prompt, jnp.broadcast_to(jnp.arange(n_prefix + p), (q, n_prefix + p)),
                                       cache, prefix=prefix)
    last = n_prefix + lengths - 1                                  # each prompt's last column
    h_last = jnp.repeat(hidden[jnp.arange(q), last], k, axis=0)     # [Q*K, D]
    cache = jax.tree.map(lambda x: jnp.repeat(x, k, axis=1), cache)  # [layers, Q*K, ...]
    flat = conts.reshape(q * k, c)
    # A continuation's last token predicts nothing scored, so it is never fed.
    positions = jnp.repeat(last, k)[:, None] + 1 + jnp.arange(c - 1)
    h_cont, _ = llm.forward_cached(flat[:, :-1], positions, cache)
    lp = target_logprobs(llm.logits(jnp.concatenate([h_last[:, None], h_cont], axis=1)), flat)  # [Q*K, C]
    m = cont_mask.reshape(q * k, c)
    return jnp.sum(lp * m, axis=-1).reshape(q, k), jnp.sum(m, axis=-1).reshape(q, k)


def continuation_logprobs(model, prompts: list[list[int]], continuations: list[list[list[int]]],
                          feats=None, *, pad_id: int, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Summed log-probability and token count of every continuation: two [Q, K] arrays for
    ``prompts`` (Q token lists, BOS included) each with K ``continuations`` (token lists, at
    least one token each), after image ``feats`` [Q, N, D] (an MLLM) or none.

    Batches of ``batch_size`` prompts (a short last batch repeats its last row), all padded to
    the longest prompt and continuation of the call: one compiled program per call.
    """
    k = len(continuations[0])
    if any(len(c) != k for c in continuations) or any(len(t) == 0 for c in continuations for t in c):
        raise ValueError("every prompt needs the same number of non-empty continuations")
    sums = np.empty((len(prompts), k), np.float32)
    counts = np.empty((len(prompts), k), np.float32)
    # One width for every batch: one compiled program per call, at the cost of some padding.
    longest = max(len(t) for c in continuations for t in c)
    width = max(2, -(-longest // CONTINUATION_BUCKET) * CONTINUATION_BUCKET)
    prompt_width = max(map(len, prompts))
    for start in range(0, len(prompts), batch_size):
        rows = np.arange(start, min(start + batch_size, len(prompts)))
        rows = np.concatenate([rows, np.full(batch_size - len(rows), rows[-1])])
        prompt, lengths = right_pad([prompts[r] for r in rows], pad_id, width=prompt_width)
        conts = np.full((len(rows), k, width), pad_id, np.int32)
        mask = np.zeros((len(rows), k, width), np.float32)
        for i, r in enumerate(rows):
            for j, t in enumerate(continuations[r]):
                conts[i, j, :len(t)] = t
                mask[i, j, :len(t)] = 1.0
        f = None if feats is None else jnp.asarray(np.asarray(feats)[rows])
        s, n = _continuation_sums(model, jnp.asarray(prompt), jnp.asarray(lengths), jnp.asarray(conts),
                                  jnp.asarray(mask), f)
        keep = slice(0, min(batch_size, len(prompts) - start))
        sums[start:start + batch_size], counts[start:start + batch_size] = np.asarray(s)[keep], np.asarray(n)[keep]
    return sums, counts

