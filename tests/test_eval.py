"""Answer parsing (the paper's App. H), option scoring, perplexity and MLE weighting."""

import math
from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from visual_priors.config import scales
from visual_priors.data.multimodal import answer_ids, encode_example, prompt_ids, question_prompt
from visual_priors.eval import mle_bench
from visual_priors.eval.language import perplexity
from visual_priors.eval.vqa import parse_answer, score_options, summarize
from visual_priors.model.connector import Connector
from visual_priors.model.llm import Llama
from visual_priors.model.mllm import MLLM
from visual_priors.model.scoring import token_logprobs

OPTIONS = ["red", "dark red", "blue", "green"]


def test_explicit_letters():
    assert parse_answer("The correct answer is (B)", OPTIONS) == 1
    assert parse_answer("Answer: C", OPTIONS) == 2
    assert parse_answer("(D) because it is green", OPTIONS) == 3
    assert parse_answer("I think it is (A)", OPTIONS) == 0
    assert parse_answer("B.", OPTIONS) == 1
    assert parse_answer("A", OPTIONS) == 0


def test_lowercase_article_is_not_a_letter():
    # "a" in "the answer is a ..." must not be read as option A
    assert parse_answer("the answer is a blue one", OPTIONS) == 2


def test_exact_option_text():
    assert parse_answer("Green.", OPTIONS) == 3
    assert parse_answer("  dark red ", OPTIONS) == 1


def test_longest_substring_wins():
    assert parse_answer("it looks dark red to me", OPTIONS) == 1
    assert parse_answer("surely red", OPTIONS) == 0


def test_no_answer():
    assert parse_answer("I cannot tell", OPTIONS) is None


# (output, options, expected index or None): the paper's three steps, in order, on outputs that
# trip simpler parsers.
TRICKY = [
    ("The correct answer is (B) dark red", OPTIONS, 1),          # letter beats the option text
    ("Answer: B. red", OPTIONS, 1),                               # letter beats "red"
    ("answer is: D", OPTIONS, 3),
    ("(C)", OPTIONS, 2),
    ("It must be green (D).", OPTIONS, 3),                        # letter at the end
    ("D)", OPTIONS, 3),
    ("E", OPTIONS, None),                                         # a letter past the options
    ("Answer: I", ["a", "b", "c", "d", "e", "f", "g", "h", "i"], 8),  # nine options
    ("I am not sure, maybe red", OPTIONS, 0),                     # "I" is no letter here
    ("A red apple", OPTIONS, 0),                                  # leading article, then text
    ("RED", OPTIONS, 0),                                          # exact, case-insensitive
    ("dark red.", OPTIONS, 1),
    ("between red and dark red, dark red", OPTIONS, 1),           # longest substring
    ("It is neither blue nor green", OPTIONS, 3),                 # longest substring, even here
    ("Yes", ["Yes", "No"], 0),
    ("No, it is not.", ["Yes", "No"], 1),
    ("", OPTIONS, None),
    ("Answer: (B)", OPTIONS, 1),
    ("The answer is B because it is red", OPTIONS, 1),
]


@pytest.mark.parametrize("text,options,want", TRICKY)
def test_parser_table(text, options, want):
    assert parse_answer(text, options) == want


def test_overall_is_mean_over_benchmarks_not_categories():
    acc = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.0}
    cat = {"a": "general", "b": "general", "c": "general", "d": "knowledge"}
    s = summarize(acc, cat)
    assert s["overall"] == 0.75
    assert s["categories"] == {"general": 1.0, "knowledge": 0.0}


class _CharTokenizer:
    """A byte-level stand-in tokenizer, so the test needs no trained vocabulary."""
    pad_id, bos_id, eos_id, vocab_size = 0, 1, 2, 64

    def encode(self, text):
        return [3 + (ord(c) % 61) for c in text]


def _mllm():
    cfg = scales.get("t1")
    cfg.vocab_size, cfg.n_layers = 64, 1
    return MLLM(Llama(cfg, rngs=nnx.Rngs(0)), Connector(8, cfg.d_model, rngs=nnx.Rngs(1)))


def test_option_scores_equal_summed_answer_logprobs():
    # At text_len 76 the longer questions overflow (whole rows, prompts cut to fit each option)
    # and the shorter run their prompt once with the options continuing it, in one batch.
    model, tok = _mllm(), _CharTokenizer()
    text_len = 76
    rng = np.random.default_rng(0)
    qs = [SimpleNamespace(question=f"what is {'very ' * i}{i}?", options=("red", "blue", "dark green", "x"),
                          answer=i % 4) for i in range(5)]
    encoded = [encode_example(tok, question_prompt(q.question, q.options), opt, text_len)
               for q in qs for opt in q.options]
    tokens, masks = np.stack([e[0] for e in encoded]), np.stack([e[1] for e in encoded])
    fits = [len(prompt_ids(tok, question_prompt(q.question, q.options))) + max(len(answer_ids(tok, o)) for o in q.options)
            <= text_len + 1 for q in qs]
    assert any(fits) and not all(fits)
    feats = rng.normal(size=(5, 3, 8)).astype(np.float32)
    reference = nnx.jit(lambda m, t, f: token_logprobs(m, t, f))
    for f in (feats, None):
        sums, per_token = score_options(model, tok, qs, f, text_len=text_len, batch_questions=2)
        lp = reference(model, jnp.asarray(tokens), None if f is None else jnp.asarray(np.repeat(f, 4, axis=0)))
        want = np.asarray(jnp.sum(lp * masks[:, 1:], -1)).reshape(5, 4)
        np.testing.assert_allclose(sums, want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(per_token, want / masks[:, 1:].sum(-1).reshape(5, 4), rtol=1e-4, atol=1e-4)
        if f is feats:
            with_image = sums
    assert not np.allclose(sums, with_image)  # the image changes the scores


def test_perplexity_is_exp_of_mean_next_token_nll():
    cfg = scales.get("t1")
    cfg.vocab_size, cfg.n_layers = 64, 1
    model = Llama(cfg, rngs=nnx.Rngs(0))
    stream = np.random.default_rng(1).integers(0, 64, 16 * 5 + 1).astype(np.int32)
    got = perplexity(model, stream, seq_len=16, batch_size=2)
    nll = []
    for i in range(5):
        w = jnp.asarray(stream[i * 16: i * 16 + 17][None])
        nll.append(-float(jnp.sum(token_logprobs(model, w))))
    assert got == pytest.approx(math.exp(sum(nll) / (5 * 16)), rel=1e-5)
    # an untrained model is close to uniform over the vocabulary
    assert 0.5 * 64 < got < 2 * 64


def test_mle_overall_is_weighted_by_split_size():
    # gpt-5 row of the paper's table 5: 732 / 698 / 431 questions
    acc = {"0-30": 0.7363, "30-60": 0.9069, "60-100": 0.8631}
    out = mle_bench.summarize(acc, {"0-30": 732, "30-60": 698, "60-100": 431})
    assert out["overall"] == pytest.approx(0.8297, abs=1e-4)
    assert out["macro"] == pytest.approx(0.8354, abs=1e-4)
