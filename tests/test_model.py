import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from visual_priors.config import scales
from visual_priors.model import layers
from visual_priors.model.connector import Connector
from visual_priors.model.llm import Attention, Llama, apply_rope, count_params, rope_angles
from visual_priors.model.mllm import MLLM
from visual_priors.model.vision import CLIPModel, ViT, clip_loss, text_config, vit_config

LOGICAL = {"vocab", "embed", "mlp", "heads", "kv", None}


def tiny(**over):
    cfg = scales.get("t1")
    cfg.vocab_size = 96
    cfg.n_layers = 2
    for k, v in over.items():
        setattr(cfg, k, v)
    cfg.head_dim = cfg.d_model // cfg.n_heads
    return cfg


def tokens(b, t, vocab, seed=0):
    return jax.random.randint(jax.random.key(seed), (b, t), 0, vocab)


# Jitted entry points: one compile per shape is much cheaper than op-by-op eager dispatch.
fwd = nnx.jit(lambda m, x, prefix=None, mask=None: m(x, prefix=prefix, mask=mask))
mllm_fwd = nnx.jit(lambda m, f, x: (m(f, x), m(None, x)))


_build = nnx.jit(lambda key: Llama(tiny(), rngs=nnx.Rngs(params=key)))


def build_tiny(seed):
    return _build(jax.random.key(seed))


@pytest.fixture(scope="module")
def model():
    return build_tiny(0)


def test_logits_shape_dtype_and_causality(model):
    cfg = tiny()
    x = tokens(2, 10, cfg.vocab_size)
    out = fwd(model, x)
    assert out.shape == (2, 10, cfg.vocab_size) and out.dtype == jnp.float32
    t = 6
    y = x.at[:, t].set((x[:, t] + 1) % cfg.vocab_size)
    out2 = fwd(model, y)
    np.testing.assert_allclose(out[:, :t], out2[:, :t], atol=1e-6)
    assert np.abs(np.asarray(out[:, t:] - out2[:, t:])).max() > 1e-4


def test_bf16_compute_keeps_float32_logits():
    cfg = tiny(dtype="bfloat16")

    @nnx.jit
    def build_and_run(x):
        m = Llama(cfg, rngs=nnx.Rngs(0))
        return m.embedding[...].dtype == jnp.float32, m(x)

    params_f32, out = build_and_run(tokens(2, 10, cfg.vocab_size))
    assert bool(params_f32)
    assert out.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out)))


def _np_rope(x, positions, theta):
    half = x.shape[-1] // 2
    inv = 1.0 / theta ** (np.arange(0, x.shape[-1], 2) / x.shape[-1])
    ang = positions[:, None] * inv[None]
    s, c = np.sin(ang)[None, :, None], np.cos(ang)[None, :, None]
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def test_gqa_equals_multi_head_with_repeated_kv_heads():
    cfg = tiny(d_model=32, n_heads=4, n_kv_heads=2)
    mha_cfg = tiny(d_model=32, n_heads=4, n_kv_heads=4)
    gqa, mha = nnx.jit(lambda: (Attention(cfg, rngs=nnx.Rngs(0)), Attention(mha_cfg, rngs=nnx.Rngs(1))))()
    hd, groups = cfg.head_dim, 2
    mha.q.kernel[...] = gqa.q.kernel[...]
    mha.o.kernel[...] = gqa.o.kernel[...]
    for name in ("k", "v"):
        w = np.asarray(getattr(gqa, name).kernel[...]).reshape(32, 2, hd)
        getattr(mha, name).kernel[...] = jnp.asarray(np.repeat(w, groups, axis=1).reshape(32, 4 * hd))
    length = 7
    x = jax.random.normal(jax.random.key(3), (2, length, 32))
    sin, cos = rope_angles(jnp.arange(length), hd, cfg.rope_theta)
    mask = jnp.tril(jnp.ones((length, length), bool))[None, None]
    out, out_mha = nnx.jit(lambda a, b, x: (a(x, sin, cos, mask), b(x, sin, cos, mask)))(gqa, mha, x)
    np.testing.assert_allclose(out, out_mha, atol=1e-5)

    # Independent reference in numpy: query head h reads key/value head h // groups.
    xn, pos = np.asarray(x, np.float64), np.arange(length)
    q = _np_rope((xn @ np.asarray(gqa.q.kernel[...])).reshape(2, length, 4, hd), pos, cfg.rope_theta)
    k = _np_rope((xn @ np.asarray(gqa.k.kernel[...])).reshape(2, length, 2, hd), pos, cfg.rope_theta)
    v = (xn @ np.asarray(gqa.v.kernel[...])).reshape(2, length, 2, hd)
    heads = []
    for h in range(4):
        s = np.einsum("bld,bmd->blm", q[:, :, h], k[:, :, h // groups]) / np.sqrt(hd)
        s = np.where(np.tril(np.ones((length, length), bool)), s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        heads.append(np.einsum("blm,bmd->bld", p, v[:, :, h // groups]))
    ref = np.concatenate(heads, axis=-1) @ np.asarray(gqa.o.kernel[...])
    np.testing.assert_allclose(out, ref, atol=1e-4)


def test_rope_scores_depend_only_on_relative_position():
    hd = 16
    q = jax.random.normal(jax.random.key(0), (1, 1, 1, hd))
    k = jax.random.normal(jax.random.key(1), (1, 1, 1, hd))

    def score(m, n):
        sm, cm = rope_angles(jnp.array([m]), hd, 10000.0)
        sn, cn = rope_angles(jnp.array([n]), hd, 10000.0)
        return float(jnp.sum(apply_rope(q, sm, cm) * apply_rope(k, sn, cn)))

    for m, n in [(5, 2), (9, 9), (3, 11)]:
        for shift in (1, 17, 100):
            assert score(m, n) == pytest.approx(score(m + shift, n + shift), abs=1e-4)
    assert abs(score(5, 2) - score(5, 4)) > 1e-4
    # Position 0 is the identity.
    s0, c0 = rope_angles(jnp.array([0]), hd, 10000.0)
    np.testing.assert_allclose(apply_rope(q, s0, c0), q, atol=1e-7)


def _hand_count(cfg):
    d, h, kv, hd, f, v, n = (cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.ffn_dim,
                             cfg.vocab_size, cfg.n_layers)
    per_layer = d * h * hd + 2 * d * kv * hd + h * hd * d + 3 * d * f + 2 * d
    return v * d + n * per_layer + d + (0 if cfg.tie_embeddings else v * d)


def test_param_count_tied_and_untied_match_hand_formula():
    tied = tiny(d_model=40, n_heads=4, n_kv_heads=2, ffn_dim=72, n_layers=3, tie_embeddings=True)
    untied = tiny(d_model=40, n_heads=4, n_kv_heads=2, ffn_dim=72, n_layers=3, tie_embeddings=False)
    assert count_params(tied) == _hand_count(tied)
    assert count_params(untied) == _hand_count(untied)
    assert count_params(untied) - count_params(tied) == untied.vocab_size * untied.d_model
    model = nnx.eval_shape(lambda: Llama(untied, rngs=nnx.Rngs(0)))
    assert count_params(model) == _hand_count(untied)
    assert model.lm_head is not None
    assert nnx.eval_shape(lambda: Llama(tied, rngs=nnx.Rngs(0))).lm_head is None


@pytest.mark.parametrize("name", ["340M", "1B", "3B", "7B", "13B"])
def test_paper_scales_are_within_five_percent_of_their_names(name):
    cfg = scales.get(name)
    n = count_params(cfg)
    assert n == _hand_count(cfg)
    assert abs(n / scales.nominal_params(name) - 1) < 0.05


def test_every_weight_names_logical_axes():
    # Abstract models carry the same metadata without allocating or compiling anything.
    mllm = nnx.eval_shape(
        lambda: MLLM(Llama(tiny(tie_embeddings=False), rngs=nnx.Rngs(0)), Connector(24, 48, rngs=nnx.Rngs(1)))
    )
    clip = nnx.eval_shape(lambda: CLIPModel(vit_config(), vocab_size=50, rngs=nnx.Rngs(2)))
    for model in (mllm, clip):
        for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
            axes = var.get_metadata().get("out_sharding")
            assert axes is not None and len(tuple(axes)) == len(var.get_value().shape), path
            assert set(axes) <= LOGICAL, (path, axes)
    flat = dict(nnx.to_flat_state(nnx.state(mllm, nnx.Param)))
    assert tuple(flat[("llm", "embedding")].get_metadata()["out_sharding"]) == ("vocab", "embed")
    assert tuple(flat[("llm", "layers", 0, "attn", "k", "kernel")].get_metadata()["out_sharding"]) == ("embed", "kv")


def test_prefix_changes_only_later_logits_and_mllm_lengths(model):
    cfg = tiny()
    llm = model
    x = tokens(2, 10, cfg.vocab_size)
    prefix = jax.random.normal(jax.random.key(1), (2, 4, cfg.d_model))
    out = fwd(llm, x, prefix)
    assert out.shape == (2, 14, cfg.vocab_size)
    # The prefix sits after the first token (the text's BOS): [x0, p0..p3, x1..x9].
    changed = prefix.at[:, 2].add(1.0)
    out2 = fwd(llm, x, changed)
    np.testing.assert_allclose(out[:, :3], out2[:, :3], atol=1e-6)
    assert (np.abs(np.asarray(out[:, 3:] - out2[:, 3:])).max(axis=-1) > 1e-6).all()
    # ... so the first token sees no image, and every image token sees it.
    first = fwd(llm, x.at[:, 0].set((x[:, 0] + 1) % cfg.vocab_size), prefix)
    assert (np.abs(np.asarray(out - first)).max(axis=-1) > 1e-6).all()

    mllm = MLLM(llm, Connector(24, cfg.d_model, rngs=nnx.Rngs(2)))
    feats = jax.random.normal(jax.random.key(3), (2, 5, 24))
    with_image, text_only = mllm_fwd(mllm, feats, x)
    assert with_image.shape == (2, 5 + 10, cfg.vocab_size)
    np.testing.assert_allclose(text_only, fwd(llm, x), atol=1e-6)
    states = nnx.eval_shape(lambda m: m.hidden_states(feats, x), mllm)
    assert [s.shape for s in states] == [(2, 15, cfg.d_model)] * (cfg.n_layers + 1)
    paths = {"/".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(mllm, nnx.Param))}
    assert "connector/fc1/kernel" in paths and "llm/embedding" in paths
    with pytest.raises(ValueError, match="width"):
        nnx.eval_shape(lambda m: m(jnp.zeros((2, 5, 23)), x), mllm)


def test_padding_mask_hides_keys(model):
    cfg = tiny()
    x = tokens(2, 10, cfg.vocab_size)
    mask = jnp.ones((2, 10), bool).at[:, :2].set(False)  # left padding
    y = x.at[:, :2].set((x[:, :2] + 5) % cfg.vocab_size)
    np.testing.assert_allclose(fwd(model, x, mask=mask)[:, 2:], fwd(model, y, mask=mask)[:, 2:], atol=1e-5)
    # A [B, T] mask with a prefix covers only the tokens.
    prefix = jnp.ones((2, 3, cfg.d_model))
    assert fwd(model, x, prefix, mask).shape == (2, 13, cfg.vocab_size)


def test_hidden_states_feed_the_logits_and_remat_matches(model):
    cfg = tiny()
    x = tokens(2, 10, cfg.vocab_size)
    states, logits, emb = nnx.jit(lambda m, x: (m.hidden_states(x), m.logits(m.hidden_states(x)[-1]), m.embed(x)))(
        model, x
    )
    assert len(states) == cfg.n_layers + 1 and all(s.shape == (2, 10, cfg.d_model) for s in states)
    np.testing.assert_allclose(states[0], emb)
    np.testing.assert_allclose(logits, fwd(model, x), atol=1e-6)

    grad = nnx.jit(nnx.grad(lambda m, x: jnp.mean(m(x) ** 2)))
    g1 = jax.tree.leaves(grad(model, x))
    for policy in ("full", "dots"):
        remat = nnx.clone(model)
        remat.remat = policy
        for a, b in zip(g1, jax.tree.leaves(grad(remat, x))):
            np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="unknown remat policy 'some'"):
        Llama(tiny(remat="some"), rngs=nnx.Rngs(0))


@pytest.mark.parametrize("remat", ["none", "full"])
def test_scanned_layers_match_the_unrolled_model(model, remat):
    from visual_priors.model.llm import stack_layers, unstack_layers

    cfg = tiny(scan_layers=True, remat=remat)
    scanned = Llama(cfg, rngs=nnx.Rngs(1))
    kernel = scanned.layers.mlp.up.kernel
    assert kernel.shape == (cfg.n_layers, cfg.d_model, cfg.ffn_dim)
    assert tuple(kernel.get_metadata()["out_sharding"]) == ("layers", "embed", "mlp")
    unrolled = nnx.state(model, nnx.Param).to_pure_dict()
    state = nnx.state(scanned, nnx.Param)
    nnx.replace_by_pure_dict(state, stack_layers(unrolled, cfg.n_layers))
    nnx.update(scanned, state)
    x = tokens(2, 10, cfg.vocab_size)
    np.testing.assert_allclose(fwd(scanned, x), fwd(model, x), atol=1e-5)
    states = nnx.jit(lambda m, x: m.hidden_states(x))(scanned, x)
    assert len(states) == cfg.n_layers + 1
    grad = nnx.jit(nnx.grad(lambda m, x: jnp.mean(m(x) ** 2)))
    g_scan = unstack_layers(nnx.state(grad(scanned, x)).to_pure_dict(), cfg.n_layers)
    g_ref = nnx.state(grad(model, x)).to_pure_dict()
    for a, b in zip(jax.tree.leaves(g_ref), jax.tree.leaves(g_scan)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_vit_and_clip():
    images32 = jnp.zeros((3, 32, 32, 3), jnp.uint8)
    for pool in ("mean", "cls"):
        cfg = vit_config("tiny")
        cfg.pool = pool
        vit = nnx.eval_shape(lambda: ViT(cfg, rngs=nnx.Rngs(0)))
        out = nnx.eval_shape(lambda m: m(images32), vit)
        n = (cfg.image_size // cfg.patch_size) ** 2
        assert n == 16 and out["tokens"].shape == (3, n, cfg.width) and out["pooled"].shape == (3, cfg.width)
        assert vit.pos_embed.get_value().shape == (n + (pool == "cls"), cfg.width)
    with pytest.raises(ValueError, match="unknown ViT"):
        vit_config("huge")

    # Numerics on a one-block CLIP so that a single program is compiled.
    cfg = vit_config("tiny")
    cfg.update(image_size=16, width=32, depth=1, heads=2, mlp_dim=64)
    text_cfg = text_config(cfg, vocab_size=40, max_len=16)
    text_cfg.depth = 1
    model = nnx.jit(lambda: CLIPModel(cfg, text_cfg=text_cfg, rngs=nnx.Rngs(0)))()
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (8, 16, 16, 3)), jnp.uint8)
    toks = jnp.asarray(rng.integers(0, 40, (8, 12)), jnp.int32)
    mask = jnp.asarray(np.arange(12)[None] < rng.integers(4, 13, (8, 1)), jnp.float32)
    noisy = jnp.where(mask > 0, toks, (toks + 7) % 40)
    opt = nnx.Optimizer(model, optax.adamw(1e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt):
        checks = dict(
            vit=model.vit(images), states=model.vit.hidden_states(images),
            vit_float=model.vit(images.astype(jnp.float32) / 127.5 - 1),
            text=model.encode_text(toks, mask), text_noisy=model.encode_text(noisy, mask),
            image=model.encode_image(images),
        )
        loss, grads = nnx.value_and_grad(clip_loss)(model, images, toks, mask)
        opt.update(model, grads)
        return loss, checks

    loss, c = step(model, opt)
    assert c["vit"]["tokens"].shape == (8, 4, 32) and len(c["states"]) == 2
    # Penultimate layer by default; uint8 is the same image as its [-1, 1] float form.
    np.testing.assert_allclose(c["vit"]["tokens"], c["states"][-2], atol=1e-6)
    np.testing.assert_allclose(c["vit_float"]["tokens"], c["vit"]["tokens"], atol=1e-5)
    assert c["text"].shape == c["image"].shape == (8, 64)
    np.testing.assert_allclose(jnp.linalg.norm(c["image"], axis=-1), 1.0, atol=1e-5)
    # Padded text positions do not matter.
    np.testing.assert_allclose(c["text_noisy"], c["text"], atol=1e-5)
    # The contrastive loss falls on random paired data.
    losses = [float(loss)] + [float(step(model, opt)[0]) for _ in range(11)]
    assert losses[-1] < 0.5 * losses[0]


def test_keystream_is_deterministic():
    a = layers.KeyStream(jax.random.key(0))
    b = layers.KeyStream(jax.random.key(0))
    ka, kb = [a.params() for _ in range(3)], [b.params() for _ in range(3)]
    assert all(bool(jnp.all(jax.random.key_data(x) == jax.random.key_data(y))) for x, y in zip(ka, kb))
    assert not bool(jnp.all(jax.random.key_data(ka[0]) == jax.random.key_data(ka[1])))
    m1, m2 = build_tiny(7), build_tiny(7)
    np.testing.assert_array_equal(m1.layers[1].mlp.up.kernel[...], m2.layers[1].mlp.up.kernel[...])


def _answer_rows(b, t, vocab, seed):
    rng = np.random.default_rng(seed)
    toks = rng.integers(0, vocab, (b, t)).astype(np.int32)
    mask = np.zeros((b, t), np.float32)
    for r in range(b):
        start = rng.integers(1, t - 4)
        mask[r, start:start + rng.integers(1, 4)] = 1.0
    return jnp.asarray(toks), jnp.asarray(mask)


@pytest.mark.parametrize("with_image", [False, True])
def test_answer_only_head_gives_the_full_heads_loss_and_gradient(with_image):
    from visual_priors.model.scoring import masked_logprobs, masked_nll, target_capacity
    cfg = tiny()
    llm = build_tiny(3)
    model = MLLM(llm, Connector(12, cfg.d_model, rngs=nnx.Rngs(1))) if with_image else llm
    toks, mask = _answer_rows(4, 17, cfg.vocab_size, 5)
    feats = jax.random.normal(jax.random.key(2), (4, 3, 12)) if with_image else None
    k = target_capacity(mask, multiple=8)
    assert k >= int(mask[:, 1:].sum()) and k % 8 == 0

    # Reference: log-softmax at every position by hand, summed where the mask is 1.
    logits = (model(feats, toks[:, :-1]) if with_image else model(toks[:, :-1]))[:, -16:]
    ref_lp = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), toks[:, 1:, None], -1)[..., 0]
    sums, counts = masked_logprobs(model, toks, mask, feats, max_targets=k)
    np.testing.assert_allclose(sums, jnp.sum(ref_lp * mask[:, 1:], -1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(counts, mask[:, 1:].sum(-1))

    grad = nnx.jit(nnx.grad(lambda m, mt: masked_nll(m, toks, mask, feats, max_targets=mt)[0]),
                   static_argnums=1)
    full, picked = grad(model, None), grad(model, k)
    for a, b in zip(jax.tree.leaves(nnx.state(full)), jax.tree.leaves(nnx.state(picked))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert any(float(jnp.abs(a).max()) > 0 for a in jax.tree.leaves(nnx.state(picked)))
