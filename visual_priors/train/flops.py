"""Training FLOPs by MaxText's accounting.

Per token, a dense decoder costs 6 N for the weight matmuls (forward 2N, backward 4N) plus
attention scores and values, 12 * layers * seq * d_model for full attention, counted at half for
causal attention. A frozen part contributes its forward pass only (2 N per token).

A multimodal stage counts the frozen encoder forward-only (once per image, where it runs: the
features step, since stages read cached features), the connector forward and backward, and the
LLM forward and backward: 6 N when it trains (stage 2), 4 N when it is frozen but gradients must
still flow back through it to the connector (stage 1: activation gradients, no weight gradients).
"""

from __future__ import annotations

import functools
import time


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


def mllm_train_flops(cfg, connector_params: int, n_visual: int, text_positions: int, *,
                     train_llm: bool) -> float:
    """Training FLOPs of one example: ``n_visual`` image tokens (0 for text-only) before
    ``text_positions`` text positions, through a connector of ``connector_params`` weights."""
    length = n_visual + text_positions
    weight_passes = 6.0 if train_llm else 4.0  # forward, activation grads, (weight grads)
    llm = (weight_passes * decoder_matmul_params(cfg) + attention_flops_per_token(cfg, length)) * length
    return llm + 6.0 * connector_params * n_visual


def vit_forward_flops(cfg, image_size: int | None = None) -> float:
    """Forward FLOPs of one image through a ViT (``visual_priors.model.vision``) up to its
    feature layer (later blocks never run when only features are wanted): the convolutional
    stem if it has one, patch embedding and blocks with non-causal attention; norms, softmax
    and activations left out."""
    image = image_size or cfg.image_size
    side = image // cfg.patch_size
    patches = side * side
    tokens = patches + int(cfg.get("pool", "mean") == "cls") + int(cfg.get("registers", 0))
    w, mlp = cfg.width, cfg.mlp_dim
    mlp_mats = 3 if cfg.get("mlp", "gelu") == "swiglu" else 2
    per_token = 4 * w * w + mlp_mats * w * mlp
    blocks = cfg.get("feature_layer", -1) % (cfg.depth + 1)  # index into the depth + 1 states
    # Each stem stage: a 3x3 convolution at stride 1, then one at stride 2 that halves the map.
    stem, channels, pixels = 0.0, 3, image * image
    for c in cfg.get("stem", ()):
        stem += pixels * 9 * channels * c + pixels // 4 * 9 * c * c
        channels, pixels = c, pixels // 4
    # The patch embedding reads each patch's cells of the last map (of the image, without a stem).
    matmuls = 2.0 * (stem + pixels * channels * w + blocks * tokens * per_token)
    attention = blocks * 4.0 * tokens * tokens * w  # scores and values
    return matmuls + attention


def compiled_forward_flops(fn, *args) -> float:
    """FLOPs of ``fn(*args)`` by XLA's cost analysis of the lowered program (any module, e.g. a
    CNN, whose formula would otherwise be written by hand)."""
    import jax

    cost = jax.jit(fn).lower(*args).cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per device program
        cost = cost[0]
    return float(cost["flops"])


# Dense datasheet peaks per chip, TFLOP/s, for bf16 and for float32 matmuls (TF32 on NVIDIA).
# Keys are matched as substrings of jax's device_kind, longest first.
DATASHEET_TFLOPS = {
    "H200": {"bfloat16": 989.0, "float32": 494.7},
    "H100": {"bfloat16": 989.0, "float32": 494.7},
    "A100": {"bfloat16": 312.0, "float32": 156.0},
    "L4": {"bfloat16": 121.0, "float32": 60.0},
    "TPU v4": {"bfloat16": 275.0, "float32": 275.0},
    "TPU v5 lite": {"bfloat16": 197.0, "float32": 197.0},
    "TPU v5p": {"bfloat16": 459.0, "float32": 459.0},
    "TPU v5": {"bfloat16": 459.0, "float32": 459.0},
    "TPU v6 lite": {"bfloat16": 918.0, "float32": 918.0},
}


def datasheet_peak_flops(device_kind: str, dtype: str = "bfloat16") -> float | None:
    """Peak FLOP/s of one chip from its datasheet, or None for an unknown chip."""
    for key in sorted(DATASHEET_TFLOPS, key=len, reverse=True):
        if key.lower() in device_kind.lower():
            return DATASHEET_TFLOPS[key][str(dtype)] * 1e12
    return None


@functools.lru_cache(maxsize=4)
def measured_matmul_flops(n: int = 2048, dtype: str = "float32", repeats: int = 20) -> float:
    """FLOP/s of a large square matmul on the default device: the practical peak of a machine
    without a datasheet figure (a CPU). The best of ``repeats`` timed runs after compilation."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x, y: x @ y)
    f(a, a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f(a, a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best


def peak_flops_per_device(device=None, dtype: str = "bfloat16") -> tuple[float, str]:
    """(peak FLOP/s of one device, where the figure comes from): the datasheet for known
    accelerators, a measured float32 matmul otherwise."""
    import jax

    device = device or jax.devices()[0]
    peak = datasheet_peak_flops(device.device_kind, dtype)
    if peak is not None:
        return peak, f"datasheet {device.device_kind} {dtype}"
    # A CPU's devices share its cores, so the measured peak is split between them.
    share = len(jax.local_devices()) if device.platform == "cpu" else 1
    return measured_matmul_flops() / share, f"measured float32 matmul on {device.device_kind}"
