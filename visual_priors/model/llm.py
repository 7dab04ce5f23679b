"""Llama-3-style decoder: RMSNorm pre-norm, RoPE, grouped-query attention, SwiGLU, no biases.

Shapes come from a scale config (``visual_priors.config.scales.get``). RoPE uses the
rotate-half layout of Hugging Face's Llama so that its checkpoints load without permuting q/k.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from visual_priors.errors import BadValue
from visual_priors.model.layers import Dense, KeyStream, RMSNorm, make_param, masked_softmax_attention
from visual_priors.parallel.mesh import with_logical_constraint

_ACT = ("batch", "length", "embed")


def _init(stddev: float):
    return nnx.initializers.normal(stddev=stddev)


def rope_angles(positions: jax.Array, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
    """sin and cos for integer ``positions``: [L] -> [L, head_dim // 2], or per row [B, L] ->
    [B, L, head_dim // 2] (packed rows whose positions restart at each document)."""
    positions = jnp.asarray(positions)
    if positions.ndim not in (1, 2):
        raise ValueError(f"positions must be [L] or [B, L], got shape {positions.shape}")
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    angles = positions.astype(jnp.float32)[..., None] * inv_freq
    return jnp.sin(angles), jnp.cos(angles)


def apply_rope(x: jax.Array, sin: jax.Array, cos: jax.Array) -> jax.Array:
    """Rotate ``x`` [B, L, H, hd] by position; pairs are (i, i + hd/2) as in HF Llama.

    ``sin``/``cos`` come from ``rope_angles``: [L, hd/2] shared by the batch, or [B, L, hd/2].
    """
    x32 = x.astype(jnp.float32)
    half = x.shape[-1] // 2
    x1, x2 = x32[..., :half], x32[..., half:]
    if sin.ndim == 2:
        s, c = sin[None, :, None, :], cos[None, :, None, :]
    elif sin.ndim == 3:
        s, c = sin[:, :, None, :], cos[:, :, None, :]
    else:
        raise ValueError(f"sin/cos must be [L, hd/2] or [B, L, hd/2], got shape {sin.shape}")
    return jnp.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1).astype(x.dtype)


class Attention(nnx.Module):
    def __init__(self, cfg, *, rngs: nnx.Rngs):
        d, h, kv, hd = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        if h % kv:
            raise ValueError(f"n_heads={h} is not a multiple of n_kv_heads={kv}")
        if hd % 2:
            raise ValueError(f"head_dim={hd} must be even for RoPE")
        self.n_heads, self.n_kv_heads, self.head_dim = h, kv, hd
        self.dtype = jnp.dtype(cfg.dtype).name
        kw = dict(rngs=rngs, dtype=cfg.dtype, param_dtype=cfg.param_dtype)
        self.q = Dense(d, h * hd, ("embed", "heads"), kernel_init=_init(0.02), **kw)
        self.k = Dense(d, kv * hd, ("embed", "kv"), kernel_init=_init(0.02), **kw)
        self.v = Dense(d, kv * hd, ("embed", "kv"), kernel_init=_init(0.02), **kw)
        # Residual-branch outputs scaled down with depth (GPT-2) so early training is stable.
        self.o = Dense(h * hd, d, ("heads", "embed"), kernel_init=_init(0.02 / math.sqrt(2 * cfg.n_layers)), **kw)

    def _qkv(self, x, sin, cos):
        b, length, _ = x.shape
        h, kv, hd = self.n_heads, self.n_kv_heads, self.head_dim
        q = apply_rope(self.q(x).reshape(b, length, h, hd), sin, cos)
        k = apply_rope(self.k(x).reshape(b, length, kv, hd), sin, cos)
        v = self.v(x).reshape(b, length, kv, hd)
        q = with_logical_constraint(q, ("batch", "length", "heads", None))
        return q, k, v

    def __call__(self, x, sin, cos, mask):
        b, length, _ = x.shape
        q, k, v = self._qkv(x, sin, cos)
        out = masked_softmax_attention(q, k, v, mask, self.dtype)
        return self.o(out.reshape(b, length, -1))

    def cached(self, x, sin, cos, positions, cache, layer):
        """Attention of ``x`` [B, L, D] through a KV cache (see ``Llama.init_cache``).

        Each token's key/value is first written at cache column ``positions`` [B, L] (its RoPE
        position) of layer ``layer``; each query then reads the columns up to its own, so columns
        past it (stale or never written) are masked. Returns the output and the updated cache.
        """
        b, length, _ = x.shape
        q, k, v = self._qkv(x, sin, cos)
        rows = jnp.arange(b)[:, None]
        # Scatter into the whole stacked cache, not a per-layer copy, so XLA updates it in place.
        cache = {
            "k": cache["k"].at[layer, rows, positions].set(k.astype(cache["k"].dtype)),
            "v": cache["v"].at[layer, rows, positions].set(v.astype(cache["v"].dtype)),
        }
        columns = jnp.arange(cache["k"].shape[2])
        mask = (columns[None, None, :] <= positions[:, :, None])[:, None]  # [B, 1, L, M]
        out = masked_softmax_attention(q, cache["k"][layer], cache["v"][layer], mask, self.dtype)
        return self.o(out.reshape(b, length, -1)), cache


class MLP(nnx.Module):
    def __init__(self, cfg, *, rngs: nnx.Rngs):
        d, f = cfg.d_model, cfg.ffn_dim
        kw = dict(rngs=rngs, dtype=cfg.dtype, param_dtype=cfg.param_dtype)
        self.gate = Dense(d, f, ("embed", "mlp"), kernel_init=_init(0.02), **kw)
        self.up = Dense(d, f, ("embed", "mlp"), kernel_init=_init(0.02), **kw)
        self.down = Dense(f, d, ("mlp", "embed"), kernel_init=_init(0.02 / math.sqrt(2 * cfg.n_layers)), **kw)

    def __call__(self, x):
        hidden = jax.nn.silu(self.gate(x)) * self.up(x)
        hidden = with_logical_constraint(hidden, ("batch", "length", "mlp"))
        return self.down(hidden)


class Block(nnx.Module):
    def __init__(self, cfg, *, rngs: nnx.Rngs):
        kw = dict(eps=cfg.norm_eps, rngs=rngs, dtype=cfg.dtype, param_dtype=cfg.param_dtype)
        self.attn_norm = RMSNorm(cfg.d_model, **kw)
        self.attn = Attention(cfg, rngs=rngs)
        self.mlp_norm = RMSNorm(cfg.d_model, **kw)
        self.mlp = MLP(cfg, rngs=rngs)

    def __call__(self, x, sin, cos, mask):
        x = x + self.attn(self.attn_norm(x), sin, cos, mask)
        x = x + self.mlp(self.mlp_norm(x))
        return with_logical_constraint(x, _ACT)

    def cached(self, x, sin, cos, positions, cache, layer):
        """``__call__`` with attention through the KV cache (``Attention.cached``)."""
        attn, cache = self.attn.cached(self.attn_norm(x), sin, cos, positions, cache, layer)
        x = x + attn
        x = x + self.mlp(self.mlp_norm(x))
        return with_logical_constraint(x, _ACT), cache


# What a rematerialised block keeps from its forward pass: "full" keeps nothing but the block
# input, "dots" keeps weight-matmul outputs (MaxText's "minimal"), "none" turns remat off.
REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "dots_with_batch": jax.checkpoint_policies.checkpoint_dots,
}


def remat_policy(cfg) -> str:
    """The config's remat policy name (``cfg.remat``; True/False are read as "full"/"none")."""
    value = cfg.get("remat", "none")
    if isinstance(value, bool) or value is None:
        value = "full" if value else "none"
    if value not in REMAT_POLICIES:
        raise BadValue(f"unknown remat policy {value!r}; valid: {', '.join(REMAT_POLICIES)}", "remat")
    return value


def _run_block(block: Block, x, sin, cos, mask):
    return block(x, sin, cos, mask)


class Llama(nnx.Module):
    """Decoder-only LM. ``cfg`` is a scale config; optional fields:

    - ``cfg.remat``: rematerialisation policy of each block (see ``REMAT_POLICIES``);
    - ``cfg.scan_layers``: keep the blocks' weights stacked along a leading ``layers`` axis and
      run them with ``lax.scan``, so compile time and program size do not grow with depth;
    - ``cfg.dtype`` / ``cfg.param_dtype``: compute and master-weight dtypes.
    """

    def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
        # Frozen (hashable) copy: it lives in the static part of the module graph.
        self.cfg = ml_collections.FrozenConfigDict(cfg)
        cfg = self.cfg
        self.dtype = jnp.dtype(cfg.dtype).name
        self.remat = remat_policy(cfg)
        self.scan_layers = bool(cfg.get("scan_layers", False))
        keys = KeyStream(rngs)
        self.embedding = make_param(
            keys, _init(0.02), (cfg.vocab_size, cfg.d_model), ("vocab", "embed"), cfg.param_dtype
        )
        if self.scan_layers:
            layer_keys = jax.random.split(keys.params(), cfg.n_layers)
            self.layers = nnx.vmap(lambda k: Block(cfg, rngs=KeyStream(k)), in_axes=0, out_axes=0,
                                   transform_metadata={nnx.PARTITION_NAME: "layers"})(layer_keys)
        else:
            self.layers = nnx.List([Block(cfg, rngs=keys) for _ in range(cfg.n_layers)])
        self.final_norm = RMSNorm(
            cfg.d_model, eps=cfg.norm_eps, rngs=keys, dtype=cfg.dtype, param_dtype=cfg.param_dtype
        )
        self.lm_head = (
            None
            if cfg.tie_embeddings
            else Dense(
                cfg.d_model, cfg.vocab_size, ("embed", "vocab"), kernel_init=_init(0.02),
                rngs=keys, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
            )
        )

    def embed(self, tokens: jax.Array) -> jax.Array:
        """Token embeddings [B, T, d_model] in the compute dtype."""
        # Gather from a replicated copy (the FSDP all-gather): a gather from a vocab-sharded
        # table makes the partitioner fall back to a full rematerialisation.
        table = with_logical_constraint(self.embedding[...], (None, None))
        x = jnp.take(table, tokens, axis=0).astype(self.dtype)
        return with_logical_constraint(x, _ACT)

    def _embed_with_prefix(self, tokens, prefix):
        """Embeddings [B, P+T, D] of ``tokens`` with ``prefix`` [B, P, D] (optional) inserted after
        the first token, and P.

        The first token is the text's BOS, so an image sits where LLaVA puts it: after the start
        of the text, never before it. An LLM pre-trained on documents that each begin with BOS
        has never attended across a BOS; image tokens placed before it are out of its reach
        until its attention is retrained (measured: a connector alone could not teach a frozen
        LLM to name what the image shows). Logit ``P + t`` still predicts token ``t + 1``.
        """
        x = self.embed(tokens)
        if prefix is None:
            return x, 0
        if prefix.shape[0] != x.shape[0] or prefix.shape[-1] != x.shape[-1]:
            raise ValueError(f"prefix {prefix.shape} does not fit token embeddings {x.shape}")
        return jnp.concatenate([x[:, :1], prefix.astype(self.dtype), x[:, 1:]], axis=1), prefix.shape[1]

    def _inputs(self, tokens, prefix, mask, segment_ids=None, positions=None):
        if prefix is not None and (segment_ids is not None or positions is not None):
            raise ValueError(
                "segment_ids/positions (packed rows) cannot be combined with a prefix (image tokens)"
            )
        x, n_prefix = self._embed_with_prefix(tokens, prefix)
        b, length, _ = x.shape
        allowed = jnp.tril(jnp.ones((length, length), dtype=bool))[None]
        if mask is not None:
            mask = jnp.asarray(mask).astype(bool)
            if mask.shape[1] == length - n_prefix and n_prefix:
                mask = jnp.concatenate([mask[:, :1], jnp.ones((b, n_prefix), bool), mask[:, 1:]], axis=1)
            if mask.shape != (b, length):
                raise ValueError(f"mask {mask.shape} must be [B, T] or [B, P+T] = {(b, length)}")
        if segment_ids is not None:
            allowed = allowed & self._segment_mask(segment_ids, mask, tuple(tokens.shape))
        elif mask is not None:
            allowed = allowed & mask[:, None, :]
        allowed = allowed[:, None]  # [B, 1, L, L], broadcast over heads
        if positions is None:
            positions = jnp.arange(length)
        else:
            positions = jnp.asarray(positions)
            if positions.shape != tuple(tokens.shape):
                raise ValueError(f"positions {positions.shape} must match tokens {tuple(tokens.shape)}")
            positions = with_logical_constraint(positions, ("batch", "length"))
        sin, cos = rope_angles(positions, self.cfg.head_dim, self.cfg.rope_theta)
        if sin.ndim == 3:
            sin = with_logical_constraint(sin, ("batch", "length", None))
            cos = with_logical_constraint(cos, ("batch", "length", None))
        return with_logical_constraint(x, _ACT), sin, cos, allowed

    @staticmethod
    def _segment_mask(segment_ids, mask, shape):
        """[B, L, L] mask of packed rows, ANDed with the causal mask: a query reads only keys of
        its own segment; segment 0 (and positions where ``mask`` is false) is padding, which no
        other position reads and which reads only itself (so no row of scores is fully masked)."""
        segment_ids = jnp.asarray(segment_ids)
        if segment_ids.shape != shape:
            raise ValueError(f"segment_ids {segment_ids.shape} must match tokens {shape}")
        if not jnp.issubdtype(segment_ids.dtype, jnp.integer):
            raise ValueError(f"segment_ids must be integers, got {segment_ids.dtype}")
        segment_ids = with_logical_constraint(segment_ids, ("batch", "length"))
        if mask is not None:
            segment_ids = jnp.where(mask, segment_ids, 0)
        same = segment_ids[:, :, None] == segment_ids[:, None, :]
        real_key = (segment_ids != 0)[:, None, :]
        self_only = jnp.eye(shape[1], dtype=bool)[None]
        return same & (real_key | self_only)

    def _blocks(self, x, sin, cos, mask):
        policy = REMAT_POLICIES[self.remat]
        if self.scan_layers:
            return self._scan_blocks(x, sin, cos, mask, policy)
        run = _run_block if self.remat == "none" else nnx.remat(_run_block, policy=policy)
        states = [x]
        for block in self.layers:
            x = run(block, x, sin, cos, mask)
            states.append(x)
        return states

    def _scan_blocks(self, x, sin, cos, mask, policy):
        graphdef, stacked = nnx.split(self.layers)

        def body(h, layer_state):
            h = nnx.merge(graphdef, layer_state)(h, sin, cos, mask)
            return h, h

        if self.remat != "none":
            body = jax.checkpoint(body, policy=policy, prevent_cse=False)
        _, outs = jax.lax.scan(body, x, stacked)
        return [x] + [outs[i] for i in range(outs.shape[0])]

    def logits(self, x: jax.Array) -> jax.Array:
        """Final norm and output head on hidden states [B, L, D] -> float32 [B, L, V]."""
        x = self.final_norm(x)
        if self.lm_head is None:
            w = self.embedding[...].astype(self.dtype)
            # A 2-D matmul: the gradient of the 3-D einsum into the table is ~4x slower on CPU.
            b, length, d = x.shape
            out = jnp.dot(x.reshape(b * length, d), w.T, preferred_element_type=jnp.float32)
            out = out.reshape(b, length, -1)
        else:
            out = self.lm_head(x, out_dtype=jnp.float32)
        return with_logical_constraint(out.astype(jnp.float32), ("batch", "length", "vocab"))

    def __call__(
        self,
        tokens: jax.Array,
        *,
        prefix: jax.Array | None = None,
        mask=None,
        segment_ids: jax.Array | None = None,
        positions: jax.Array | None = None,
    ) -> jax.Array:
        """Logits float32 [B, P+T, V] for ``tokens`` [B, T] after optional ``prefix`` [B, P, D].

        Attention is causal over the whole sequence. ``mask`` ([B, T] or [B, P+T], true for real
        positions) removes padding from the keys.

        Packed rows: ``segment_ids`` (int [B, T]) confines attention to earlier tokens of the same
        segment (document); id 0 marks padding, which no other token attends and which attends
        only itself. ``positions`` (int [B, T]) are the RoPE positions, normally the index within
        each document; 0..T-1 when None. Neither can be combined with ``prefix``.
        """
        return self.logits(self.hidden_states(tokens, prefix, mask=mask, segment_ids=segment_ids,
                                              positions=positions)[-1])

    def hidden_states(
        self,
        tokens: jax.Array,
        prefix: jax.Array | None = None,
        *,
        mask=None,
        segment_ids: jax.Array | None = None,
        positions: jax.Array | None = None,
    ) -> list[jax.Array]:
        """Residual stream [B, L, D] after the embedding and after each block (n_layers + 1).

        ``mask``, ``segment_ids`` and ``positions`` as in ``__call__``.
        """
        x, sin, cos, allowed = self._inputs(tokens, prefix, mask, segment_ids, positions)
        return self._blocks(x, sin, cos, allowed)

    # Incremental decoding. The cache holds every layer's keys and values, stacked:
    # {"k", "v"} each [n_layers, B, max_len, n_kv_heads, head_dim] in the compute dtype, and a
    # token's entries sit at the column equal to its RoPE position (so a row's positions are
    # exactly those of an unpadded run of that row; see ``visual_priors.model.generate``).

    def init_cache(self, batch: int, max_len: int) -> dict:
        """An empty KV cache for ``batch`` rows of up to ``max_len`` positions."""
        cfg = self.cfg
        shape = (cfg.n_layers, batch, max_len, cfg.n_kv_heads, cfg.head_dim)
        return {"k": jnp.zeros(shape, self.dtype), "v": jnp.zeros(shape, self.dtype)}

    def forward_cached(
        self, tokens: jax.Array, positions: jax.Array, cache: dict, *, prefix: jax.Array | None = None
    ) -> tuple[jax.Array, dict]:
        """Run ``prefix`` [B, P, D] (optional) + ``tokens`` [B, T] through the blocks with a cache.

        ``positions`` (int [B, P+T]) are the RoPE positions of those inputs and the cache columns
        their keys/values are written to; each input attends to cache columns up to its own
        position, i.e. to everything written there before plus the inputs of this call at or
        before it. A prefill is a call with positions 0..P+T-1; a decode step passes one token
        per row at that row's next position. Positions must be below the cache's ``max_len``
        (JAX drops out-of-range writes). Returns the final residual stream [B, P+T, D] (feed it
        to ``logits``) and the updated cache. Remat does not apply: this is inference only.
        """
        x, _ = self._embed_with_prefix(tokens, prefix)
        positions = jnp.asarray(positions)
        if positions.shape != x.shape[:2]:
            raise ValueError(f"positions {positions.shape} must be [B, P+T] = {x.shape[:2]}")
        sin, cos = rope_angles(positions, self.cfg.head_dim, self.cfg.rope_theta)
        x = with_logical_constraint(x, _ACT)
        if self.scan_layers:
            graphdef, stacked = nnx.split(self.layers)

            def body(carry, xs):
                h, cache = carry
                layer_state, layer = xs
                return nnx.merge(graphdef, layer_state).cached(h, sin, cos, positions, cache, layer), None

            (x, cache), _ = jax.lax.scan(body, (x, cache), (stacked, jnp.arange(self.cfg.n_layers)))
        else:
            for layer, block in enumerate(self.layers):
                x, cache = block.cached(x, sin, cos, positions, cache, layer)
        return x, cache


def _param_count(model: nnx.Module) -> int:
    return int(sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


@functools.lru_cache(maxsize=64)
def _count_abstract(cfg: ml_collections.FrozenConfigDict) -> int:
    return _param_count(nnx.eval_shape(lambda: Llama(cfg, rngs=nnx.Rngs(0))))


def count_params(cfg_or_model) -> int:
    """Number of parameters of ``Llama(cfg)`` from abstract shapes (nothing is allocated).

    Also accepts a built module and counts its ``nnx.Param`` leaves.
    """
    if isinstance(cfg_or_model, nnx.Module):
        return _param_count(cfg_or_model)
    return _count_abstract(ml_collections.FrozenConfigDict(cfg_or_model))


def stack_layers(params: dict, n_layers: int) -> dict:
    """Per-layer pure dict (``layers/{i}/...``) -> the scan layout (``layers/...`` stacked)."""
    per_layer = [params["layers"][i] for i in range(n_layers)]
    return {**params, "layers": jax.tree.map(lambda *xs: jnp.stack(xs), *per_layer)}


def unstack_layers(params: dict, n_layers: int) -> dict:
    """The scan layout -> per-layer pure dict, the inverse of ``stack_layers``."""
    layers = {i: jax.tree.map(lambda x, i=i: x[i], params["layers"]) for i in range(n_layers)}
    return {**params, "layers": layers}
