"""VQA evaluation throughput: questions/s of each way the evaluate step reads a model.

    python benchmarks/evaluation.py [t1 t3 ...] [--questions 256] [--new 8]

Random-weight MLLMs of the named scales (the speed does not depend on the weights) with the
demo's image prefix (16 tokens of 96 features), on the world's own VQA questions (every
benchmark, 2-4 options) under a word-level tokenizer of their words. Modes:

- likelihood, prompt once: ``vqa.score_options`` as the evaluate step calls it (the image and
  prompt run once per question, options as continuations of its KV cache);
- likelihood, whole rows: every option as its own prompt + option row (the path a question takes
  when it overflows the text length; before the shared prompt, every question's path);
- blind: likelihood, prompt once, without the image;
- greedy: ``generate.answer`` with ``--new`` new tokens, as the generated-answer pass does.

Each mode: the first call (compilation included), then the best of three steady calls.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from flax import nnx

from visual_priors.config import scales
from visual_priors.eval import vqa
from visual_priors.model import generate
from visual_priors.model.connector import Connector
from visual_priors.model.llm import Llama
from visual_priors.model.mllm import MLLM
from visual_priors.suite import host_memory
from visual_priors.world import World
from visual_priors.world.questions import ALL_BENCHMARKS

N_IMAGE_TOKENS, FEATURE_DIM = 16, 96


class WordTokenizer:
    """Words of the questions to ids (throughput needs realistic lengths, not a trained vocabulary)."""
    pad_id, bos_id, eos_id = 0, 1, 2

    def __init__(self, vocab_size: int):
        self.vocab_size, self.ids = vocab_size, {}

    def encode(self, text: str) -> list[int]:
        return [self.ids.setdefault(w, 3 + len(self.ids) % (self.vocab_size - 3)) for w in text.split()]

    def decode(self, ids) -> str:
        return " ".join(str(i) for i in ids)


def timed(fn) -> tuple[float, float]:
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return first, best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scales", nargs="*", default=["t1", "t3"])
    p.add_argument("--questions", type=int, default=256)
    p.add_argument("--new", type=int, default=8, help="new tokens per generated answer")
    p.add_argument("--text-len", type=int, default=128)
    args = p.parse_args()
    world = World(0)
    names = list(ALL_BENCHMARKS)
    questions = [world.question(names[i % len(names)], "test", i) for i in range(args.questions)]
    feats = np.random.default_rng(0).normal(size=(len(questions), N_IMAGE_TOKENS, FEATURE_DIM)).astype(np.float32)
    print(f"device {jax.devices()[0].device_kind}, {len(questions)} questions "
          f"({np.mean([len(q.options) for q in questions]):.1f} options each), text length {args.text_len}")
    print(f"{'scale':>5} {'mode':<26} {'first call s':>12} {'steady s':>9} {'questions/s':>12}")
    for name in args.scales:
        cfg = scales.get(name)
        tok = WordTokenizer(cfg.vocab_size)
        model = MLLM(Llama(cfg, rngs=nnx.Rngs(0)), Connector(FEATURE_DIM, cfg.d_model, rngs=nnx.Rngs(1)))
        rows = np.arange(len(questions))
        modes = {
            "likelihood, prompt once": lambda: vqa.score_options(model, tok, questions, feats, text_len=args.text_len),
            "likelihood, whole rows": lambda: [
                vqa._score_whole_rows(model, tok, [questions[i] for i in rows[sel]], feats, rows[sel], n,
                                      args.text_len, 32)
                for n in sorted({len(q.options) for q in questions})
                for sel in [np.array([len(q.options) == n for q in questions])]],
            "blind, prompt once": lambda: vqa.score_options(model, tok, questions, None, text_len=args.text_len),
            f"greedy, {args.new} new tokens": lambda: generate.answer(
                model, tok, [vqa.question_prompt(q.question, q.options) for q in questions], feats,
                max_new_tokens=args.new, batch_size=64),
        }
        for mode, fn in modes.items():
            first, best = timed(fn)
            print(f"{name:>5} {mode:<26} {first:>12.2f} {best:>9.2f} {len(questions) / best:>12,.0f}")


if __name__ == "__main__":
    host_memory.restart_with_tunables()  # the malloc settings the command line runs with
    main()
