"""Model scales: the paper's five Llama-3-style sizes and five tiny stand-ins.

The paper gives only the nominal sizes (340M, 1B, 3B, 7B, 13B); the shapes below are the Llama
shapes that land within 5% of each name with a 32,000-token vocabulary. The tiny scales span
more than 30x in parameters so that scaling curves exist in miniature.
"""

from __future__ import annotations

import ml_collections

from visual_priors.errors import BadValue

# name: (d_model, n_layers, n_heads, n_kv_heads, ffn_dim, vocab_size, tie_embeddings, max_len)
_PAPER = {
    "340M": (1024, 24, 16, 16, 2816, 32000, True, 2048),
    "1B": (2048, 16, 32, 8, 8192, 32000, True, 2048),
    "3B": (3072, 28, 24, 8, 8192, 32000, True, 2048),
    "7B": (4096, 32, 32, 8, 14336, 32000, False, 2048),
    "13B": (5120, 40, 40, 40, 13824, 32000, False, 2048),
}
# Tiny vocabularies stay at 2k so the embedding does not swamp the smallest model.
TINY_VOCAB = 2048
TINY_MAX_LEN = 256
_TINY = {
    "t1": (48, 2, 4, 2, 128, TINY_VOCAB, True, TINY_MAX_LEN),
    "t2": (96, 3, 4, 2, 256, TINY_VOCAB, True, TINY_MAX_LEN),
    "t3": (128, 4, 4, 2, 384, TINY_VOCAB, True, TINY_MAX_LEN),
    "t4": (192, 5, 6, 2, 512, TINY_VOCAB, True, TINY_MAX_LEN),
    # Head size 64 as in the paper's scales, and wide enough that, like a real LLM, its step is
    # mostly matmuls (with 32-wide heads and d_model 256 a third of the step went to softmax,
    # SiLU and other elementwise work on CPU).
    "t5": (512, 4, 8, 2, 1408, TINY_VOCAB, True, TINY_MAX_LEN),
}
PAPER_SCALES = tuple(_PAPER)
TINY_SCALES = tuple(_TINY)
ALL_SCALES = PAPER_SCALES + TINY_SCALES


def get(name: str) -> ml_collections.ConfigDict:
    """The model config of one scale; unknown names fail with the list of valid ones."""
    table = {**_PAPER, **_TINY}
    if name not in table:
        raise BadValue(f"unknown scale {name!r}; valid scales: {', '.join(ALL_SCALES)}")
    d, layers, heads, kv, ffn, vocab, tie, max_len = table[name]
    cfg = ml_collections.ConfigDict()
    cfg.name = name
    cfg.d_model = d
    cfg.n_layers = layers
    cfg.n_heads = heads
    cfg.n_kv_heads = kv
    cfg.head_dim = d // heads
    cfg.ffn_dim = ffn
    cfg.vocab_size = vocab
    cfg.tie_embeddings = tie
    cfg.max_len = max_len
    cfg.rope_theta = 500000.0 if name in _PAPER else 10000.0
    cfg.norm_eps = 1e-5
    cfg.dtype = "float32"
    cfg.param_dtype = "float32"
    return cfg


def nominal_params(name: str) -> float | None:
    """The size a paper scale is named after (None for tiny scales)."""
    if name not in _PAPER:
        return None
    number, unit = float(name[:-1]), name[-1]
    return number * {"M": 1e6, "B": 1e9}[unit]
