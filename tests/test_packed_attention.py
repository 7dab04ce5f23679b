"""Packed rows: several documents in one row, attention confined to each document (segment_ids),
RoPE positions restarting per document, and the loss leaving out cross-document targets."""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from devices import run_with_devices
from visual_priors.config import scales
from visual_priors.model.connector import Connector
from visual_priors.model.llm import Llama, apply_rope, rope_angles
from visual_priors.model.mllm import MLLM
from visual_priors.model.scoring import masked_nll, packed_target_mask, token_logprobs

VOCAB = 96
DOC_LENS = (5, 7, 4)  # documents A, B, C
PAD = 4
T = sum(DOC_LENS) + PAD  # 20


def tiny(**over):
    cfg = scales.get("t1")
    cfg.vocab_size = VOCAB
    cfg.n_layers = 2
    for k, v in over.items():
        setattr(cfg, k, v)
    return cfg


def _docs(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, VOCAB, n).astype(np.int32) for n in DOC_LENS]


def pack(docs, order, length, pad_token=0):
    """(tokens, segment_ids, positions) int32 [length] for ``docs[order]`` then padding."""
    toks, seg, pos = [], [], []
    for sid, i in enumerate(order, start=1):
        toks += list(docs[i])
        seg += [sid] * len(docs[i])
        pos += list(range(len(docs[i])))
    n_pad = length - len(toks)
    assert n_pad >= 0
    toks += [pad_token] * n_pad
    seg += [0] * n_pad
    pos += [0] * n_pad
    return tuple(np.asarray(a, np.int32) for a in (toks, seg, pos))


def packed_batch(docs, orders, length):
    rows = [pack(docs, o, length, pad_token=7 + r) for r, o in enumerate(orders)]
    return tuple(jnp.asarray(np.stack(a)) for a in zip(*rows))


fwd = nnx.jit(lambda m, x, seg=None, pos=None: m(x, segment_ids=seg, positions=pos))
nll = nnx.jit(lambda m, x, mask, seg=None, pos=None: masked_nll(m, x, mask, segment_ids=seg, positions=pos))
logprobs = nnx.jit(lambda m, x, seg=None, pos=None: token_logprobs(m, x, segment_ids=seg, positions=pos))


@pytest.fixture(scope="module")
def model():
    return nnx.jit(lambda: Llama(tiny(), rngs=nnx.Rngs(0)))()


@pytest.mark.parametrize("over", [{}, {"scan_layers": True}, {"remat": "full"},
                                  {"scan_layers": True, "remat": "dots"}], ids=["plain", "scan", "full", "scan-dots"])
def test_packed_logits_equal_each_document_run_alone(over):
    m = nnx.jit(lambda: Llama(tiny(**over), rngs=nnx.Rngs(1)))()
    docs = _docs()
    orders = [(0, 1, 2), (2, 0, 1)]
    x, seg, pos = packed_batch(docs, orders, T)
    out = np.asarray(fwd(m, x, seg, pos))
    assert out.shape == (2, T, VOCAB) and np.isfinite(out).all()  # padding rows too
    alone = [np.asarray(fwd(m, jnp.asarray(d[None])))[0] for d in docs]
    for r, order in enumerate(orders):
        start = 0
        for i in order:
            n = len(docs[i])
            np.testing.assert_allclose(out[r, start:start + n], alone[i], atol=1e-5, err_msg=f"row {r} doc {i}")
            start += n
    # Without segment_ids the same row attends across documents: the reference would not match.
    crossed = np.asarray(fwd(m, x))[0, DOC_LENS[0]:DOC_LENS[0] + DOC_LENS[1]]
    assert np.abs(crossed - alone[1]).max() > 1e-3


def test_per_row_positions_reach_rope(model):
    hd, theta = 12, 10000.0
    pos = jnp.asarray([[0, 1, 2, 0, 1], [4, 3, 2, 1, 0]])
    sin, cos = rope_angles(pos, hd, theta)
    assert sin.shape == (2, 5, hd // 2)
    x = jax.random.normal(jax.random.key(0), (2, 5, 3, hd))
    rotated = apply_rope(x, sin, cos)
    for b in range(2):
        sb, cb = rope_angles(pos[b], hd, theta)
        np.testing.assert_allclose(rotated[b:b + 1], apply_rope(x[b:b + 1], sb, cb), atol=1e-6)
    # In the model: a row with positions 0..T-1 is the default, a row of all-zero positions is not.
    toks = jnp.tile(jax.random.randint(jax.random.key(1), (1, 10), 0, VOCAB), (2, 1))
    positions = jnp.stack([jnp.arange(10), jnp.zeros(10, jnp.int32)])
    out = fwd(model, toks, None, positions)
    ref = fwd(model, toks[:1])
    np.testing.assert_allclose(out[0], ref[0], atol=1e-5)
    assert np.abs(np.asarray(out[1, 1:] - ref[0, 1:])).max() > 1e-3


def test_packed_nll_is_token_weighted_mean_of_per_document_nlls(model):
    docs = _docs(1)
    orders = [(0, 1, 2), (1, 2)]
    x, seg, pos = packed_batch(docs, orders, T + 1)  # [B, T+1] rows
    loss, count = nll(model, x, jnp.ones_like(x), seg, pos)

    per_doc = [nll(model, jnp.asarray(d[None]), jnp.ones((1, len(d)), jnp.int32)) for d in docs]
    total, n = 0.0, 0
    for order in orders:
        for i in order:
            doc_loss, doc_count = per_doc[i]
            assert int(doc_count) == len(docs[i]) - 1
            total += float(doc_loss) * int(doc_count)
            n += int(doc_count)
    # Boundary targets (first token of each next document) and padding targets are not counted.
    assert int(count) == n == sum(DOC_LENS) - 3 + (DOC_LENS[1] + DOC_LENS[2] - 2)
    np.testing.assert_allclose(float(loss), total / n, rtol=1e-5)

    lp = np.asarray(logprobs(model, x, seg, pos))
    valid = np.asarray(packed_target_mask(seg))
    assert valid.sum() == n and (lp[~valid] == 0).all()
    np.testing.assert_allclose(-lp.sum(), total, rtol=1e-5)
    # Boundary: row 0's target at index len(A) (B's first token) is excluded, the one before kept.
    a = DOC_LENS[0]
    assert valid[0, a - 2] and not valid[0, a - 1] and valid[0, a]

    # The caller's mask still applies on top; an MLLM without image scores like its LLM.
    mask = jnp.ones_like(x).at[:, -6:].set(0)
    _, masked_count = nll(model, x, mask, seg, pos)
    assert int(masked_count) == int((valid & np.asarray(mask[:, 1:], bool)).sum())
    mllm = MLLM(model, Connector(8, model.cfg.d_model, rngs=nnx.Rngs(2)))
    np.testing.assert_allclose(logprobs(mllm, x, seg, pos), lp, atol=1e-6)


def test_no_segment_ids_is_unchanged_and_padding_rows_have_finite_grads(model):
    x = jax.random.randint(jax.random.key(3), (2, 12), 0, VOCAB)
    ones = jnp.ones_like(x)
    arange = jnp.broadcast_to(jnp.arange(12), x.shape)
    np.testing.assert_allclose(fwd(model, x), fwd(model, x, ones, arange), atol=1e-6)
    np.testing.assert_allclose(fwd(model, x), fwd(model, x, ones), atol=1e-6)

    # Row 0 packs A and B between leading and trailing padding; row 1 is all padding.
    docs = _docs(2)
    tok, seg, pos = (np.roll(a, 3) for a in pack(docs, (0, 1), T + 1))
    assert (seg[:3] == 0).all() and (seg[-5:] == 0).all()
    x = jnp.asarray(np.stack([tok, np.full_like(tok, 5)]))
    seg = jnp.asarray(np.stack([seg, np.zeros_like(seg)]))
    pos = jnp.asarray(np.stack([pos, np.zeros_like(pos)]))
    loss_and_grad = nnx.jit(nnx.value_and_grad(
        lambda m, x: masked_nll(m, x, jnp.ones_like(x), segment_ids=seg, positions=pos), has_aux=True))
    (loss, count), grads = loss_and_grad(model, x)
    assert int(count) == DOC_LENS[0] + DOC_LENS[1] - 2
    leaves = jax.tree.leaves(nnx.state(grads))
    assert np.isfinite(float(loss)) and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert any(float(jnp.abs(g).max()) > 0 for g in leaves)
    # Padding tokens influence neither the loss nor the gradients.
    (loss2, _), grads2 = loss_and_grad(model, x.at[:, -5:].set(11).at[:, :3].set(13).at[1].set(3))
    np.testing.assert_allclose(float(loss2), float(loss), rtol=1e-6)
    for a, b in zip(leaves, jax.tree.leaves(nnx.state(grads2))):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # Only padding rows: count 0, loss 0, no NaN.
    l0, c0 = nll(model, x, jnp.ones_like(x), jnp.zeros_like(seg), pos)
    assert int(c0) == 0 and float(l0) == 0.0


def test_shape_and_prefix_errors(model):
    x = jnp.zeros((2, 10), jnp.int32)
    seg = jnp.ones((2, 10), jnp.int32)
    prefix = jnp.zeros((2, 3, model.cfg.d_model))
    with pytest.raises(ValueError, match="prefix"):
        model(x, prefix=prefix, segment_ids=seg)
    with pytest.raises(ValueError, match="prefix"):
        model.hidden_states(x, prefix, positions=seg)
    with pytest.raises(ValueError, match=r"segment_ids \(2, 9\) must match tokens \(2, 10\)"):
        model(x, segment_ids=seg[:, :9])
    with pytest.raises(ValueError, match=r"positions \(1, 10\) must match tokens \(2, 10\)"):
        model.hidden_states(x, segment_ids=seg, positions=seg[:1])
    with pytest.raises(ValueError, match="integers"):
        model(x, segment_ids=seg.astype(jnp.float32))
    with pytest.raises(ValueError, match=r"segment_ids \(2, 9\) must match tokens \(2, 10\)"):
        masked_nll(model, x, jnp.ones_like(x), segment_ids=seg[:, 1:])
    with pytest.raises(ValueError, match=r"positions \(2, 11\) must match tokens \(2, 10\)"):
        token_logprobs(model, x, positions=jnp.ones((2, 11), jnp.int32))
    with pytest.raises(ValueError, match="feats"):
        token_logprobs(model, x, jnp.zeros((2, 4, 8)), segment_ids=seg)


_SHARDED = textwrap.dedent(
    """
    import json, re
    import jax, jax.numpy as jnp, numpy as np
    from flax import nnx
    from visual_priors.config import scales
    from visual_priors.model.llm import Llama
    from visual_priors.model.scoring import masked_nll
    from visual_priors.parallel import mesh as pm

    cfg = scales.get("t1")
    cfg.vocab_size = 64
    cfg.scan_layers = True
    cfg.remat = "full"
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.integers(0, 64, (8, 17)), jnp.int32)
    # Four documents of 5 tokens per row (the last one cut), row 0 all padding.
    seg = jnp.asarray(np.repeat(np.arange(1, 5), 5)[None, :17].repeat(8, 0) * (np.arange(8)[:, None] > 0), jnp.int32)
    pos = jnp.asarray(np.tile(np.arange(5), 4)[None, :17].repeat(8, 0), jnp.int32)

    def loss(m, x, seg, pos):
        return masked_nll(m, x, jnp.ones_like(x), segment_ids=seg, positions=pos)[0]

    step = nnx.jit(nnx.value_and_grad(loss))
    model = nnx.jit(lambda: Llama(cfg, rngs=nnx.Rngs(0)))()
    ref_loss, ref_grads = step(model, x, seg, pos)
    mesh = pm.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    with pm.use_mesh(mesh):
        sharded = pm.shard_model(nnx.clone(model), mesh)
        batch = jax.device_put((x, seg, pos), pm.batch_sharding(mesh))
        l, g = step(sharded, *batch)
        txt = step.lower(sharded, *batch).as_text()
    diff = max(float(jnp.abs(a - b).max())
               for a, b in zip(jax.tree.leaves(nnx.state(g)), jax.tree.leaves(nnx.state(ref_grads))))
    # The segment ids / positions ([8, 16] int32 inputs of the model) carry a batch constraint.
    constrained = [l for l in txt.splitlines() if "sharding_constraint" in l and "tensor<8x16xi32>" in l]
    print("RESULT " + json.dumps(dict(loss=float(l), ref=float(ref_loss), grad_diff=diff, n_int=len(constrained))))
    """
)


def test_packed_loss_under_a_sharded_mesh_matches_one_device():
    res = run_with_devices(_SHARDED, 8)
    assert res["n_int"] >= 2, res  # segment_ids and positions
    assert abs(res["loss"] - res["ref"]) < 1e-5 and res["grad_diff"] < 1e-5, res
