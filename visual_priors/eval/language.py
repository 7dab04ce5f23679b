"""Language evaluation: held-out perplexity, and the paper's zero-shot battery (App. B.2).

The paper reports ppl = the mean of WikiText and LAMBADA perplexity and avg acc = the mean
zero-shot accuracy over PIQA, HellaSwag, WinoGrande, ARC, COPA, SciQ, OpenBookQA and BoolQ,
with lm-evaluation-harness conventions, which this module follows:

* A request is (context, continuation); its score is the summed log-probability of the
  continuation's tokens. Trailing whitespace of the context moves to the continuation, then
  context + continuation is encoded whole and the continuation's tokens are what follows the
  context's own encoding (lm-eval's ``_encode_pair``). BOS is prepended to the context; rows
  longer than seq_len + 1 tokens lose tokens from the left.
* Multiple choice: acc = argmax of the summed log-probabilities, acc_norm = argmax of them
  divided by each choice's UTF-8 byte length (lm-eval divides by ``len(choice)``, characters
  of the choice without the delimiter; the two agree on ASCII text). Choices are continuations
  after a space; WinoGrande puts the option in the context and scores the shared rest of the
  sentence, so its acc_norm equals its acc.
* LAMBADA: context = text without its last word, target = " " + last word; acc = the greedy
  tokens equal all target tokens; perplexity = exp(-mean over passages of the target's
  summed log-probability) (per word, not per token).
* WikiText: documents scored by rolling windows (lm-eval's loglikelihood_rolling: the first
  window starts from BOS, later ones read the previous tokens as context); word perplexity =
  exp(-total log-likelihood / whitespace-separated words), tokenizer independent. Token and
  byte perplexity come with it.

All scoring runs through ``token_logprobs`` in batches of one fixed [batch, T + 1] shape per
call (T = seq_len, or the next power of two that holds every row), so one compiled program
serves a whole task. Real benchmarks are read by ``lm_tasks``; their stand-ins drawn from the
world by ``visual_priors.world.language_tasks``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from visual_priors.eval import lm_tasks
from visual_priors.model.scoring import token_logprobs
from visual_priors.world.language_tasks import WORLD_TASKS, ClozeItem, MCItem, make_task

__all__ = [
    "ClozeItem", "DEFAULT_TASKS", "MCItem", "PAPER_TASKS", "VALID_TASKS", "encode_pair",
    "evaluate_cloze", "evaluate_multiple_choice", "loglikelihood", "multiple_choice_metrics",
    "perplexity", "rolling_perplexity", "run_battery", "score_multiple_choice", "score_tokens",
]

# The world battery, and the paper's with real data (every real task needs a path).
DEFAULT_TASKS = WORLD_TASKS
PAPER_TASKS = lm_tasks.REAL_TASKS
VALID_TASKS = tuple(dict.fromkeys(WORLD_TASKS + lm_tasks.REAL_TASKS))
# GLA / Mamba tables report acc_norm for these two; ``avg_acc_gla`` follows them.
NORM_TASKS = ("hellaswag", "arc_challenge")
_MIN_T = 32


@nnx.jit
def _window_nll(model, tokens):
    return -jnp.sum(token_logprobs(model, tokens))


def perplexity(model, stream: np.ndarray, *, seq_len: int, batch_size: int = 8,
               max_windows: int | None = None) -> float:
    """exp(mean next-token NLL) over consecutive windows of seq_len + 1 tokens of a token stream."""
    n = (len(stream) - 1) // seq_len
    if max_windows is not None:
        n = min(n, max_windows)
    if n < 1:
        raise ValueError(f"a held-out stream of {len(stream)} tokens is shorter than one window of {seq_len + 1}")
    windows = np.stack([stream[i * seq_len: i * seq_len + seq_len + 1] for i in range(n)]).astype(np.int32)
    total, count = 0.0, 0
    for start in range(0, n - batch_size + 1, batch_size):
        total += float(_window_nll(model, jnp.asarray(windows[start:start + batch_size])))
        count += batch_size * seq_len
    rest = windows[(n // batch_size) * batch_size:]
    if len(rest):
        total += float(_window_nll(model, jnp.asarray(rest)))
        count += len(rest) * seq_len
    return math.exp(total / count)


# ----------------------------------------------------------------------- requests


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """([BOS] + context tokens, continuation tokens) as lm-eval encodes a request.

    Whitespace at the end of the context moves to the continuation; the continuation's tokens
    are those of context + continuation after the context's own tokens. Should a merge cross
    the boundary (the whole's tokens do not start with the context's), the continuation is
    encoded on its own instead, so the two still spell context + continuation.
    """
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    ctx = list(tokenizer.encode(context)) if context else []
    whole = list(tokenizer.encode(context + continuation))
    if whole[:len(ctx)] == ctx and len(whole) > len(ctx):
        cont = whole[len(ctx):]
    else:
        cont = list(tokenizer.encode(continuation))
    return [int(tokenizer.bos_id)] + [int(t) for t in ctx], [int(t) for t in cont]


def _logits(model, inputs):
    # As token_logprobs calls the model: an MLLM without image is its LLM on the tokens alone.
    logits = model(None, inputs) if hasattr(model, "connector") else model(inputs)
    return logits[:, logits.shape[1] - inputs.shape[1]:]


@nnx.jit
def _sum_logprobs(model, tokens, mask):
    return jnp.sum(token_logprobs(model, tokens) * mask, axis=-1)


@nnx.jit
def _sum_logprobs_greedy(model, tokens, mask):
    lp = token_logprobs(model, tokens)
    greedy = jnp.argmax(_logits(model, tokens[:, :-1]), axis=-1) == tokens[:, 1:]
    return jnp.sum(lp * mask, axis=-1), jnp.all(greedy | (mask == 0), axis=-1)


def _width(requests, seq_len: int) -> int:
    longest = max(min(len(c) + len(t), seq_len + 1) for c, t in requests) - 1
    width = _MIN_T
    while width < longest:
        width *= 2
    return min(width, seq_len)


def score_tokens(model, requests: Sequence[tuple[Sequence[int], Sequence[int]]], *, seq_len: int,
                 batch_size: int = 16, pad_id: int = 0,
                 greedy: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Summed log-probability of each request's continuation tokens after its context tokens
    (float64 [N]), and with ``greedy`` whether the argmax at every continuation position is the
    continuation's token (bool [N]).

    Each row is context + continuation cut to its last seq_len + 1 tokens and right-padded to
    one [batch_size, T + 1] shape (T <= seq_len); a continuation longer than seq_len tokens
    cannot be scored and raises ValueError.
    """
    n = len(requests)
    if n == 0:
        return np.zeros(0), (np.zeros(0, bool) if greedy else None)
    for i, (ctx, cont) in enumerate(requests):
        if not cont:
            raise ValueError(f"request {i} has an empty continuation")
        if len(cont) > seq_len:
            raise ValueError(f"request {i}: a continuation of {len(cont)} tokens does not fit "
                             f"seq_len {seq_len}")
        if not ctx:
            raise ValueError(f"request {i} has no context token (lm-eval starts from BOS)")
    width = _width(requests, seq_len)
    sums = np.zeros(n)
    hits = np.zeros(n, bool)
    for start in range(0, n, batch_size):
        chunk = requests[start:start + batch_size]
        tokens = np.full((batch_size, width + 1), pad_id, np.int32)
        mask = np.zeros((batch_size, width), np.float32)
        for row, (ctx, cont) in enumerate(chunk):
            seq = (list(ctx) + list(cont))[-(width + 1):]
            tokens[row, :len(seq)] = seq
            # Target t is token t + 1: the continuation's targets end one before the row's end.
            mask[row, len(seq) - 1 - len(cont):len(seq) - 1] = 1.0
        if greedy:
            s, g = _sum_logprobs_greedy(model, jnp.asarray(tokens), jnp.asarray(mask))
            hits[start:start + len(chunk)] = np.asarray(g)[:len(chunk)]
        else:
            s = _sum_logprobs(model, jnp.asarray(tokens), jnp.asarray(mask))
        sums[start:start + len(chunk)] = np.asarray(s, np.float64)[:len(chunk)]
    return sums, (hits if greedy else None)


def loglikelihood(model, tokenizer, pairs: Sequence[tuple[str, str]], *, seq_len: int,
                  batch_size: int = 16, greedy: bool = False):
    """lm-eval's loglikelihood requests: (summed log-probabilities [N], greedy flags or None)."""
    cache: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    requests = []
    for context, continuation in pairs:
        key = (context, continuation)
        if key not in cache:
            cache[key] = encode_pair(tokenizer, context, continuation)
        requests.append(cache[key])
    return score_tokens(model, requests, seq_len=seq_len, batch_size=batch_size,
                        pad_id=int(tokenizer.pad_id), greedy=greedy)


# ----------------------------------------------------------------------- multiple choice


def score_multiple_choice(model, tokenizer, items: Sequence[MCItem], *, seq_len: int,
                          batch_size: int = 16) -> list[np.ndarray]:
    """Per item, the summed log-probability of each option's continuation."""
    pairs = [(ctx, cont) for item in items for ctx, cont in zip(item.contexts, item.continuations)]
    sums, _ = loglikelihood(model, tokenizer, pairs, seq_len=seq_len, batch_size=batch_size)
    out, at = [], 0
    for item in items:
        out.append(sums[at:at + item.n_options])
        at += item.n_options
    return out


def multiple_choice_metrics(items: Sequence[MCItem], scores: Sequence[np.ndarray]) -> dict:
    """{"acc", "acc_norm", "n"}: argmax of the scores, and of the scores over byte lengths."""
    if len(items) != len(scores):
        raise ValueError(f"{len(items)} items but {len(scores)} score rows")
    if not items:
        raise ValueError("no items to score")
    acc = norm = 0
    for item, s in zip(items, scores):
        s = np.asarray(s, np.float64)
        acc += int(np.argmax(s)) == item.gold
        norm += int(np.argmax(s / np.maximum(np.asarray(item.lengths, np.float64), 1.0))) == item.gold
    return {"acc": acc / len(items), "acc_norm": norm / len(items), "n": len(items)}


def evaluate_multiple_choice(model, tokenizer, items: Sequence[MCItem], *, seq_len: int,
                             batch_size: int = 16) -> dict:
    scores = score_multiple_choice(model, tokenizer, items, seq_len=seq_len, batch_size=batch_size)
    return multiple_choice_metrics(items, scores)


# ----------------------------------------------------------------------- cloze and rolling


def evaluate_cloze(model, tokenizer, items: Sequence[ClozeItem], *, seq_len: int,
                   batch_size: int = 16) -> dict:
    """LAMBADA: {"acc": greedy last-word accuracy, "perplexity": exp(-mean last-word
    log-likelihood), "n"}."""
    if not items:
        raise ValueError("no cloze items to score")
    sums, hits = loglikelihood(model, tokenizer, [(it.context, it.target) for it in items],
                               seq_len=seq_len, batch_size=batch_size, greedy=True)
    return {"acc": float(np.mean(hits)), "perplexity": float(math.exp(-np.mean(sums))),
            "n": len(items)}


def _rolling_requests(tokens: list[int], bos: int, seq_len: int) -> list[tuple[list[int], list[int]]]:
    """Disjoint windows of at most seq_len predicted tokens covering every token once, each
    after as much preceding text as fits (BOS before the first)."""
    full = [bos] + tokens
    out = []
    for start in range(0, len(tokens), seq_len):
        end = min(start + seq_len, len(tokens))
        ctx = full[:start + 1][-(seq_len + 1 - (end - start)):]
        out.append((ctx, tokens[start:end]))
    return out


def rolling_perplexity(model, tokenizer, texts: Sequence[str], *, seq_len: int,
                       batch_size: int = 16) -> dict:
    """WikiText-style perplexity of whole documents (lm-eval's loglikelihood_rolling).

    Returns word_perplexity (lm-eval's reported WikiText metric: words are runs between
    whitespace), token_perplexity, byte_perplexity, bits_per_byte, and the counts.
    """
    requests, words, n_bytes = [], 0, 0
    for text in texts:
        tokens = [int(t) for t in tokenizer.encode(text)]
        if not tokens:
            continue
        requests += _rolling_requests(tokens, int(tokenizer.bos_id), seq_len)
        words += len(re.split(r"\s+", text))
        n_bytes += len(text.encode("utf-8"))
    if not requests:
        raise ValueError("no text to score")
    sums, _ = score_tokens(model, requests, seq_len=seq_len, batch_size=batch_size,
                           pad_id=int(tokenizer.pad_id))
    total = float(np.sum(sums))
    n_tokens = sum(len(cont) for _, cont in requests)
    return {"word_perplexity": math.exp(-total / words), "token_perplexity": math.exp(-total / n_tokens),
            "byte_perplexity": math.exp(-total / n_bytes),
            "bits_per_byte": -total / n_bytes / math.log(2), "tokens": n_tokens, "words": words,
            "documents": len(texts)}


# ----------------------------------------------------------------------- battery


def _default_seq_len(model) -> int:
    cfg = getattr(getattr(model, "llm", model), "cfg", None)
    return int(cfg.max_len) if cfg is not None and "max_len" in cfg else 2048


def _check_tasks(tasks: Sequence[str], world, paths: Mapping[str, str]) -> None:
    valid = ", ".join(VALID_TASKS)
    unknown = [t for t in tasks if t not in VALID_TASKS]
    if unknown:
        raise ValueError(f"unknown language task(s) {', '.join(map(repr, unknown))}; valid: {valid}")
    missing = [t for t in tasks if t in lm_tasks.MC_TASKS and t not in paths]
    if missing:
        raise ValueError(f"real task(s) {', '.join(missing)} need a local copy in paths[name]; "
                         f"valid tasks: {valid}")
    needs_world = [t for t in tasks if t in WORLD_TASKS and t not in paths]
    if needs_world and world is None:
        raise ValueError(f"world task(s) {', '.join(needs_world)} need world= (or, for wikitext and "
                         f"lambada, a path to the real data); valid tasks: {valid}")
    stray = [t for t in paths if t not in lm_tasks.REAL_TASKS]
    if stray:
        raise ValueError(f"paths given for {', '.join(stray)}, which are not real tasks; real "
                         f"tasks: {', '.join(lm_tasks.REAL_TASKS)}")


def run_battery(model, tokenizer, *, world=None, tasks: Sequence[str] = DEFAULT_TASKS,
                n_per_task: int | None = 200, seq_len: int | None = None,
                paths: Mapping[str, str] | None = None, batch_size: int = 16,
                progress: bool = True) -> dict:
    """The paper's language numbers for one model, JSON-serialisable:

        {"perplexity": {"wikitext", "lambada", "mean"}, "lambada_acc",
         "tasks": {name: {"acc", "acc_norm", "n"}}, "avg_acc", ...}

    tasks: world tasks (``visual_priors.world.language_tasks.WORLD_TASKS``, drawn from `world`)
    and real ones (``lm_tasks.REAL_TASKS``, read from ``paths[name]``); wikitext and lambada
    come from their path when one is given, from the world otherwise. n_per_task: items per
    task (documents for wikitext); for real tasks the first n, all when None. seq_len: context
    window, the model config's max_len by default. "mean" is the arithmetic mean of the
    perplexities present, "avg_acc" the mean acc over the multiple-choice tasks (None when
    there are none); "avg_acc_gla" takes acc_norm for HellaSwag and ARC-Challenge as GLA's
    tables do. Unknown task names, and real multiple-choice tasks without a path, raise
    ValueError listing the valid names.
    """
    paths = dict(paths or {})
    tasks = tuple(tasks)
    _check_tasks(tasks, world, paths)
    seq_len = int(seq_len) if seq_len is not None else _default_seq_len(model)
    n_world = 200 if n_per_task is None else int(n_per_task)
    out: dict[str, Any] = {"perplexity": {}, "lambada_acc": None, "tasks": {}, "avg_acc": None,
                           "avg_acc_gla": None, "seq_len": seq_len, "sources": {}}
    kw = {"seq_len": seq_len, "batch_size": batch_size}
    bar = tqdm(tasks, desc="language eval", unit="task", disable=not progress, leave=False)
    for name in bar:
        bar.set_postfix_str(name)
        real = name in paths
        out["sources"][name] = str(paths[name]) if real else "world"
        items = (lm_tasks.load_task(name, paths[name], n_per_task) if real
                 else make_task(world, name, n_world))
        if name == "wikitext":
            res = rolling_perplexity(model, tokenizer, items, **kw)
            out["wikitext"] = res
            out["perplexity"]["wikitext"] = res["word_perplexity"]
        elif name == "lambada":
            res = evaluate_cloze(model, tokenizer, items, **kw)
            out["lambada"] = res
            out["perplexity"]["lambada"] = res["perplexity"]
            out["lambada_acc"] = res["acc"]
        else:
            out["tasks"][name] = evaluate_multiple_choice(model, tokenizer, items, **kw)
    found = out["perplexity"]
    out["perplexity"] = {"wikitext": found.get("wikitext"), "lambada": found.get("lambada"),
                         "mean": float(np.mean(list(found.values()))) if found else None}
    if out["tasks"]:
        res = out["tasks"]
        out["avg_acc"] = float(np.mean([r["acc"] for r in res.values()]))
        out["avg_acc_gla"] = float(np.mean([r["acc_norm"] if t in NORM_TASKS else r["acc"]
                                            for t, r in res.items()]))
    return out

