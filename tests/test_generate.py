"""Greedy decoding: the KV-cache path against the full-forward reference, batching, EOS, compiles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from visual_priors.config import scales
from visual_priors.data.multimodal import prompt_ids
from visual_priors.model import generate
from visual_priors.model.connector import Connector
from visual_priors.model.llm import Llama, stack_layers
from visual_priors.model.mllm import MLLM

VOCAB, FEAT_DIM, N_IMAGE = 64, 16, 5
LENGTHS = (3, 9, 5, 17)  # two length buckets' worth, so rows differ a lot in padding
MAX_NEW = 10


def tiny(**over):
    cfg = scales.get("t1")  # d_model 48, 4 heads over 2 kv heads (GQA), 2 layers
    cfg.vocab_size = VOCAB
    cfg.tie_embeddings = False
    for k, v in over.items():
        setattr(cfg, k, v)
    return cfg


def shake(model, seed, std=0.3):
    """Add noise to every matrix: at init (std 0.02) the model just repeats its last token,
    which would let a decoder that ignores everything but that token pass."""
    graphdef, state = nnx.split(model)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    leaves = [x + std * jax.random.normal(k, x.shape) if "kernel" in str(path) or "embedding" in str(path) else x
              for (path, x), k in zip(leaves, keys)]
    return nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))


@nnx.jit
def _build():
    llm = shake(Llama(tiny(), rngs=nnx.Rngs(0)), 1)
    return llm, shake(Connector(FEAT_DIM, 48, rngs=nnx.Rngs(2)), 3, std=0.5)


@pytest.fixture(scope="module")
def models():
    llm, connector = _build()
    # The scanned model holds the same weights, stacked, so both layouts must decode alike.
    scanned = nnx.eval_shape(lambda: Llama(tiny(scan_layers=True), rngs=nnx.Rngs(0)))
    state = nnx.state(scanned, nnx.Param)
    nnx.replace_by_pure_dict(state, stack_layers(nnx.state(llm, nnx.Param).to_pure_dict(), 2))
    nnx.update(scanned, state)
    return {("llm", False): llm, ("llm", True): scanned,
            ("mllm", False): MLLM(llm, connector), ("mllm", True): MLLM(scanned, connector)}


def make_prompts(lengths=LENGTHS, seed=0):
    rng = np.random.default_rng(seed)
    return [[2] + rng.integers(4, VOCAB, n - 1).tolist() for n in lengths]


FEATS = np.random.default_rng(9).normal(size=(len(LENGTHS), N_IMAGE, FEAT_DIM)).astype(np.float32)


def pick_eos(full):
    """A token that row 0 emits after its first step and some other row never emits."""
    for token in full[0][1:]:
        if any(token not in row for row in full[1:]):
            return token
    raise AssertionError(f"no usable EOS in {full}")


@pytest.mark.parametrize("kind", ["llm", "mllm"])
@pytest.mark.parametrize("scan", [False, True], ids=["unrolled", "scan"])
def test_cache_matches_full_recompute_and_eos_stops_rows(models, kind, scan):
    model = models[kind, scan]
    prompts = make_prompts()
    feats = FEATS if kind == "mllm" else None
    kw = dict(image_feats=feats, max_new_tokens=MAX_NEW, pad_id=0)
    full = generate.greedy(model, prompts, eos_id=-1, use_cache=False, **kw)  # -1: never stops
    assert all(len(row) == MAX_NEW for row in full)
    assert len({tuple(row) for row in full}) == len(full)  # rows really differ
    assert all(len(set(row)) > 2 for row in full)  # and do not just repeat a token
    eos = pick_eos(full)
    expected = [row[: row.index(eos)] if eos in row else row for row in full]
    cached = generate.greedy(model, prompts, eos_id=eos, **kw)
    assert cached == expected
    assert generate.greedy(model, prompts, eos_id=eos, use_cache=False, **kw) == expected
    # EOS ends row 0 early (and is not returned); a row that never emits it runs to the limit.
    assert len(cached[0]) == full[0].index(eos) < MAX_NEW and eos not in cached[0]
    assert any(len(row) == MAX_NEW for row in cached)


def test_image_features_change_the_answer(models):
    model = models["mllm", False]
    kw = dict(max_new_tokens=MAX_NEW, eos_id=-1, pad_id=0)
    with_image = generate.greedy(model, make_prompts(), image_feats=FEATS, **kw)
    assert with_image != generate.greedy(model, make_prompts(), image_feats=-FEATS, **kw)
    # Text-only rows of an MLLM are its LLM alone.
    assert generate.greedy(model, make_prompts(), **kw) == generate.greedy(model.llm, make_prompts(), **kw)


def test_batched_equals_one_by_one(models):
    model = models["mllm", True]
    prompts = make_prompts((3, 9, 5, 14))  # one length bucket: one program per batch size
    kw = dict(image_feats=FEATS, max_new_tokens=MAX_NEW, eos_id=-1, pad_id=0)
    batched = generate.greedy(model, prompts, **kw)
    assert generate.greedy(model, prompts, batch_size=1, **kw) == batched
    assert generate.greedy(model, prompts, batch_size=3, **kw) == batched  # short last batch
    # Padding differs with the batch, positions do not (against unpadded runs: the logits test).


STEP_PROMPTS = make_prompts((5, 8), seed=4)
STEP_TOKENS = [[7, 11], [30, 2]]  # fed after the prompts, one per row per step
PREFIX = np.random.default_rng(5).normal(size=(2, 3, 48)).astype(np.float32)


@pytest.fixture(scope="module")
def unpadded_logits(models):
    """Full-forward logits of each row alone (prefix + prompt + fed tokens), no padding."""
    full_fwd = nnx.jit(lambda m, x, p: m(x, prefix=p))
    return [np.asarray(full_fwd(models["llm", False], jnp.asarray([p + [s[r] for s in STEP_TOKENS]]),
                                jnp.asarray(PREFIX[r:r + 1])))[0] for r, p in enumerate(STEP_PROMPTS)]


@nnx.jit
def _prefill_and_steps(llm, tokens, lengths, prefix, steps):
    b, n = tokens.shape[0], prefix.shape[1] + tokens.shape[1]
    cache = llm.init_cache(b, n + steps.shape[0])
    hidden, cache = llm.forward_cached(tokens, jnp.broadcast_to(jnp.arange(n), (b, n)), cache, prefix=prefix)
    outs = [llm.logits(hidden)]
    last = prefix.shape[1] + lengths - 1
    for i in range(steps.shape[0]):
        hidden, cache = llm.forward_cached(steps[i][:, None], (last + 1 + i)[:, None], cache)
        outs.append(llm.logits(hidden))
    return outs


@pytest.mark.parametrize("scan", [False, True], ids=["unrolled", "scan"])
def test_cached_step_logits_equal_full_forward(models, unpadded_logits, scan):
    tokens = np.zeros((2, 8), np.int32)  # right padding: row 0 has 3 pad columns
    for r, p in enumerate(STEP_PROMPTS):
        tokens[r, : len(p)] = p
    lengths = jnp.asarray([len(p) for p in STEP_PROMPTS])
    outs = _prefill_and_steps(models["llm", scan], jnp.asarray(tokens), lengths, jnp.asarray(PREFIX),
                              jnp.asarray(STEP_TOKENS))
    assert outs[0].dtype == jnp.float32
    n_prefix = PREFIX.shape[1]
    for r, p in enumerate(STEP_PROMPTS):
        full = unpadded_logits[r]
        # The prefill at every real position, then each decode step at its own position.
        np.testing.assert_allclose(outs[0][r, : n_prefix + len(p)], full[: n_prefix + len(p)], atol=1e-5)
        for i in range(len(STEP_TOKENS)):
            np.testing.assert_allclose(outs[1 + i][r, 0], full[n_prefix + len(p) + i], atol=1e-5)


def test_decode_step_compiles_once_per_shape(models):
    model = models["llm", False]
    kw = dict(max_new_tokens=6, eos_id=-1, pad_id=0)
    generate.greedy(model, make_prompts((4, 12), seed=1), **kw)
    before = dict(generate.TRACES)
    # Other prompts, other lengths in the same bucket: the same program runs again.
    out = generate.greedy(model, make_prompts((10, 2), seed=2), **kw)
    assert dict(generate.TRACES) == before and len(out) == 2
    # A new shape traces the prefill and the loop body once each.
    generate.greedy(model, make_prompts((4, 12, 6), seed=1), **kw)
    assert generate.TRACES["prefill"] == before["prefill"] + 1
    assert generate.TRACES["decode_step"] == before["decode_step"] + 1


def test_limits_and_all_rows_stopping(models):
    model = models["llm", False]
    prompts = make_prompts((3, 9))
    first = generate.greedy(model, prompts, max_new_tokens=1, eos_id=-1, pad_id=0)
    assert [len(row) for row in first] == [1, 1]
    # EOS as every row's first token: all rows stop at once and return nothing.
    same = [prompts[0], prompts[0]]
    assert generate.greedy(model, same, max_new_tokens=6, eos_id=first[0][0], pad_id=0) == [[], []]
    assert generate.greedy(model, prompts, max_new_tokens=0, eos_id=-1, pad_id=0) == [[], []]
    assert generate.greedy(model, [], max_new_tokens=3, eos_id=-1, pad_id=0) == []


def test_rejects_bad_inputs(models):
    kw = dict(max_new_tokens=3, eos_id=-1, pad_id=0)
    with pytest.raises(ValueError, match="bare Llama"):
        generate.greedy(models["llm", False], make_prompts(), image_feats=FEATS, **kw)
    with pytest.raises(ValueError, match="image_feats"):
        generate.greedy(models["mllm", False], make_prompts(), image_feats=FEATS[:2], **kw)
    with pytest.raises(ValueError, match="pad_id"):
        generate.greedy(models["llm", False], make_prompts(), max_new_tokens=3, eos_id=-1, pad_id=VOCAB)
    with pytest.raises(ValueError, match="at least one token"):
        generate.greedy(models["llm", False], [[2], []], **kw)


class CharTokenizer:
    """Characters as ids 4.. (mod the vocabulary); pad 0, bos 2, eos 3 decode to nothing."""

    pad_id, bos_id, eos_id = 0, 2, 3

    def encode(self, text):
        return [4 + ord(c) % (VOCAB - 4) for c in text]

    def decode(self, ids):
        return "".join(chr(ord("!") + i - 4) for i in ids if i >= 4)


def test_answer_applies_the_chat_template(models):
    model, tok = models["mllm", False], CharTokenizer()
    questions = ["What colour is the dax?", "How many?"]
    answers = generate.answer(model, tok, questions, FEATS[:2], max_new_tokens=8)
    ids = generate.greedy(model, [prompt_ids(tok, q) for q in questions], image_feats=FEATS[:2],
                          max_new_tokens=8, eos_id=tok.eos_id, pad_id=tok.pad_id)
    assert answers == [tok.decode(row).strip() for row in ids]
    assert all(isinstance(a, str) for a in answers) and any(answers)
