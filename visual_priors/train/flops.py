"""Training FLOPs by MaxText's accounting.

Per token, a dense decoder costs 6 N for the weight matmuls (forward 2N, backward 4N) plus
attention scores and values, 12 * layers * seq * d_model for full attention, counted at half for
causal attention. A frozen part contributes its forward pass only (2 N per token).
"""

from __future__ import annotations


def decoder_matmul_params(cfg) -> int:
    """Parameters that take part in per-token matmuls (the embedding lookup is free; the head is not)."""
    d, f, L = cfg.d_model, cfg.ffn_dim, cfg.n_layers
    q = d * cfg.n_heads * cfg.head_dim
    kv = 2 * d * cfg.n_kv_heads * cfg.head_dim
    o = cfg.n_heads * cfg.head_dim * d
    mlp = 3 * d * f
    head = d * cfg.vocab_size
    return L * (q + kv + o + mlp) + head


def attention_flops_per_token(cfg, seq_len: int, *, causal: bool = True) -> float:
    full = 12.0 * cfg.n_layers * seq_len * cfg.n_heads * cfg.head_dim
    return full / 2 if causal else full


def train_flops_per_token(cfg, seq_len: int) -> float:
    """Forward and backward FLOPs per trained token of a decoder."""
    return 6.0 * decoder_matmul_params(cfg) + attention_flops_per_token(cfg, seq_len)


def forward_flops_per_token(cfg, seq_len: int) -> float:
    return 2.0 * decoder_matmul_params(cfg) + attention_flops_per_token(cfg, seq_len) / 3.0


def pretrain_flops(cfg, tokens: int, seq_len: int) -> float:
    return train_flops_per_token(cfg, seq_len) * float(tokens)
