"""VQA evaluation: option scoring by likelihood, the paper's answer parser, category scores.

Scores follow the paper: a category is the mean of its benchmarks and "overall" is the plain mean
over benchmarks (not the mean of category means; table 3 reproduces only that way).
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from visual_priors.data.multimodal import LENGTH_BUCKET, LETTERS, answer_ids, encode_example, prompt_ids, question_prompt
from visual_priors.model.continuations import continuation_logprobs
from visual_priors.model.scoring import masked_logprobs, target_capacity

_LETTER_PATTERNS = [
    # the letter itself must be upper case: "the answer is a dax" names no option letter
    re.compile(r"(?i:answer\s*(?:is)?\s*:?)\s*\(?([A-J])\)?(?![A-Za-z])"),
    re.compile(r"^\s*\(([A-J])\)"),
    re.compile(r"\(([A-J])\)\s*\.?\s*$"),
    re.compile(r"^\s*([A-J])\s*[.)]?\s*$"),
]


def parse_answer(text: str, options: Sequence[str]) -> int | None:
    """The option a free-form answer picks, by the paper's three steps, or None.

    1. an explicit letter ("The correct answer is (B)", "Answer: B", "(B)" at either end, "B.");
    2. the whole output equals an option's text (case-insensitive);
    3. option texts contained in the output, the longest one winning.
    """
    n = len(options)
    for pattern in _LETTER_PATTERNS:
        match = pattern.search(text)
        if match:
            index = LETTERS.index(match.group(1).upper())
            if index < n:
                return index
    norm = text.strip().strip(".").strip().lower()
    for i, opt in enumerate(options):
        if norm == opt.strip().lower():
            return i
    found = [(len(opt), i) for i, opt in enumerate(options) if opt.strip() and opt.strip().lower() in text.lower()]
    if found:
        return max(found)[1]
    return None


def encode_choices(tokenizer, question: str, options: Sequence[str], text_len: int):
    """[n_options, text_len + 1] token rows (prompt + option) and masks over the option tokens,
    encoded exactly as instruction tuning encodes a question and its answer."""
    prompt = question_prompt(question, options)
    encoded = [encode_example(tokenizer, prompt, opt, text_len) for opt in options]
    return np.stack([e[0] for e in encoded]), np.stack([e[1] for e in encoded])


@functools.partial(nnx.jit, static_argnames="max_targets")
def _option_logprob(model, tokens, mask, feats, max_targets: int):
    return masked_logprobs(model, tokens, mask, feats, max_targets=max_targets)


def score_options(model, tokenizer, questions, feats: np.ndarray | None, *, text_len: int,
                  batch_questions: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Summed and per-token log-likelihood of every option: two [Q, max options] arrays, -inf
    where a question has fewer options (yes/no questions beside four-option ones).

    feats: [Q, N, Dv] image features row-aligned with questions, or None for the blind baseline.
    Questions are scored in groups of equal option count, so each group keeps one compiled shape.
    """
    width = max(len(q.options) for q in questions)
    sums = np.full((len(questions), width), -np.inf, np.float32)
    per_token = np.full((len(questions), width), -np.inf, np.float32)
    for n_opt in sorted({len(q.options) for q in questions}):
        rows = np.array([i for i, q in enumerate(questions) if len(q.options) == n_opt])
        group = [questions[i] for i in rows]
        s, t = _score_group(model, tokenizer, group, feats, rows, n_opt, text_len, batch_questions)
        sums[rows, :n_opt], per_token[rows, :n_opt] = s, t
    return sums, per_token


def _score_group(model, tokenizer, questions, feats, rows, n_opt: int, text_len: int,
                 batch_questions: int) -> tuple[np.ndarray, np.ndarray]:
    """Questions of one option count: the prompt (and image) run once per question, the options
    as its continuations; a question whose prompt and longest option overflow ``text_len`` is
    scored as whole rows instead, where instruction tuning's encoding cuts the prompt's start
    to fit each option."""
    prompts = [prompt_ids(tokenizer, question_prompt(q.question, q.options)) for q in questions]
    options = [[answer_ids(tokenizer, opt) for opt in q.options] for q in questions]
    fits = np.array([len(p) + max(map(len, o)) <= text_len + 1 for p, o in zip(prompts, options)])
    sums = np.empty((len(questions), n_opt), np.float32)
    counts = np.empty((len(questions), n_opt), np.float32)
    shared, whole = np.flatnonzero(fits), np.flatnonzero(~fits)
    if len(shared):
        sums[shared], counts[shared] = continuation_logprobs(
            model, [prompts[i] for i in shared], [options[i] for i in shared],
            None if feats is None else np.asarray(feats)[rows[shared]],
            pad_id=tokenizer.pad_id, batch_size=batch_questions)
    if len(whole):
        sums[whole], counts[whole] = _score_whole_rows(model, tokenizer, [questions[i] for i in whole], feats,
                                                       rows[whole], n_opt, text_len, batch_questions)
    return sums, sums / np.maximum(counts, 1)


def _score_whole_rows(model, tokenizer, questions, feats, rows, n_opt: int, text_len: int,
                      batch_questions: int) -> tuple[np.ndarray, np.ndarray]:
    """Summed log-likelihood and token count of every option, one prompt + option row each."""
    encoded = [encode_choices(tokenizer, q.question, q.options, text_len) for q in questions]
    tokens = np.stack([e[0] for e in encoded])
    masks = np.stack([e[1] for e in encoded])
    sums, counts = [], []
    # (start, stop, pad): padding repeats the last question so every batch keeps one shape.
    chunks = [(a, min(a + batch_questions, len(questions)), max(0, a + batch_questions - len(questions)))
              for a in range(0, len(questions), batch_questions)]
    # Option-token slots for the fullest batch: one static head size for the whole group.
    capacity = target_capacity([_pad_rows(masks[a:b], pad) for a, b, pad in chunks])
    for start, stop, pad in chunks:
        tk = _pad_rows(tokens[start:stop], pad).reshape(-1, text_len + 1)
        mk = _pad_rows(masks[start:stop], pad).reshape(-1, text_len + 1)
        # Cut to the longest row (in LENGTH_BUCKET steps): the rest is padding after every option.
        used = int(np.max(np.nonzero(mk.any(axis=0))[0], initial=0)) + 1
        width = min(text_len + 1, -(-used // LENGTH_BUCKET) * LENGTH_BUCKET)
        tk, mk = tk[:, :width], mk[:, :width]
        fb = None
        if feats is not None:
            fb = np.repeat(_pad_rows(np.asarray(feats[rows[start:stop]]), pad), n_opt, axis=0)
        s, c = _option_logprob(model, jnp.asarray(tk), jnp.asarray(mk), None if fb is None else jnp.asarray(fb),
                               max_targets=capacity)
        sums.append(np.asarray(s).reshape(batch_questions, n_opt)[: stop - start])
        counts.append(np.asarray(c).reshape(batch_questions, n_opt)[: stop - start])
    return np.concatenate(sums), np.concatenate(counts)


def _pad_rows(x: np.ndarray, pad: int) -> np.ndarray:
    if pad == 0:
        return x
    return np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])


def accuracy_by(questions, predictions: np.ndarray, key: str) -> dict[str, float]:
    hits, totals = defaultdict(int), defaultdict(int)
    for q, p in zip(questions, predictions):
        k = getattr(q, key)
        totals[k] += 1
        hits[k] += int(p == q.answer)
    return {k: hits[k] / totals[k] for k in sorted(totals)}


def summarize(benchmark_acc: dict[str, float], benchmark_category: dict[str, str]) -> dict:
    """Category means of benchmark accuracies and the plain mean over benchmarks."""
    by_cat = defaultdict(list)
    for bench, acc in benchmark_acc.items():
        by_cat[benchmark_category[bench]].append(acc)
    categories = {c: float(np.mean(v)) for c, v in by_cat.items()}
    overall = float(np.mean(list(benchmark_acc.values()))) if benchmark_acc else float("nan")
    return {"categories": categories, "overall": overall}
