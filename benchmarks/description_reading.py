"""From how many examples the final MLLM learns to answer from a scene's description (the signal
chain's H4 hop), family by family.

    python benchmarks/description_reading.py [--scale 3B] [--tokens 480]
        [--mixture category:reasoning_combination=100] [--batch 4] [--seed 42]
        [--families attribute chart] [--examples 1000 4000 8000] [--passes 1] [--root R] [--workers 2]

One run of the paper in miniature (`--scale` and `--tokens`, in the paper's units: 3B on 480B
is t3 on 1.2M tokens; pre-training, stage 1 and stage 2 at the miniature's budgets) is made by
the suite, so a rerun on the same --root reuses it. For each count in `--examples`, its final
MLLM continues stage 2 on that many questions of each of `--families` asked about the scene's
true description (text only, stage 2's batch size and optimizer, `--passes` passes), starting
afresh from the run's checkpoint. Before, and after each count's passes, `--questions`
test questions of every family (the first of them are the run's own evaluation questions) are
asked about their scenes' descriptions, as the evaluate step asks them for H4: accuracy per
family with a 95% Wilson interval.

It tells an H4 that fails for want of examples from one the model cannot learn at all: stage 2
holds a few hundred described questions over all sixteen families.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from visual_priors.config.studies import B, grid, paper_study
from visual_priors.data import multimodal
from visual_priors.eval import signal, vqa
from visual_priors.suite import adapt_steps
from visual_priors.suite import host_memory
from visual_priors.suite.executor import Options, output_dir, plan_targets, run_study
from visual_priors.suite.step_io import tokenizer_of, world_of
from visual_priors.suite.vision_steps import load_features
from visual_priors.train import loop
from visual_priors.world.describe import describe
from visual_priors.world.instructions import described_example, described_prompt
from visual_priors.world.questions import ALL_BENCHMARKS
from visual_priors.world.rng import Rand


def study(args):
    cfg = paper_study("tiny", "description_reading", [
        grid(scales=(args.scale,), tokens=args.tokens * B, mixtures=(args.mixture,))])
    cfg.seed, cfg.world.seed = args.seed, args.world_seed
    cfg.pretrain.batch_size = args.batch
    return cfg


def described_hits(model, tok, questions, text_len: int) -> dict:
    """{family: 0/1 array}: which of the world's questions are answered from their descriptions."""
    asked = [SimpleNamespace(question=described_prompt(describe(q.scene, q.views), q.question), options=q.options)
             for q in questions]
    sums, _ = vqa.score_options(model, tok, asked, None, text_len=text_len)
    hits = np.argmax(sums, axis=1) == np.array([q.answer for q in questions])
    families = np.array([q.benchmark for q in questions])
    return {f: hits[families == f] for f in ALL_BENCHMARKS if (families == f).any()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", default="3B")
    p.add_argument("--tokens", type=float, default=480, help="pre-training tokens, paper billions")
    p.add_argument("--mixture", default="category:reasoning_combination=100")
    p.add_argument("--batch", type=int, default=4, help="pre-training batch size")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--world-seed", type=int, default=0)
    p.add_argument("--families", nargs="+", default=["attribute", "chart"], choices=ALL_BENCHMARKS)
    p.add_argument("--examples", type=int, nargs="+", default=[1000, 4000, 8000],
                   help="described questions per trained family, one continuation each")
    p.add_argument("--passes", type=int, default=1)
    p.add_argument("--questions", type=int, default=100, help="test questions per family")
    p.add_argument("--root", default="runs")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()

    cfg = study(args)
    root = Path(args.root)
    locate = lambda s: output_dir(root, s)  # noqa: E731
    run_study(cfg, root, stage="sft", report=False, options=Options(workers=args.workers))
    run = plan_targets(cfg, "sft")[0][0]
    sft = run.steps["sft"]
    tok = tokenizer_of(sft, locate)
    feature_dim = load_features(locate(sft.input("features")), "eval").shape[-1]

    def final_mllm():
        return adapt_steps.load_mllm(sft.input("pretrain"), locate(sft), locate, tok, feature_dim)

    world = world_of(cfg.world.to_dict())
    questions = [world.question(f, "test", i) for f in ALL_BENCHMARKS for i in range(args.questions)]
    text_len = cfg.eval.described_text_len
    rows = [(0, described_hits(final_mllm(), tok, questions, text_len), 0.0)]
    for count in args.examples:
        model = final_mllm()
        r = Rand(np.random.default_rng(args.seed))
        examples = [described_example(world, family, "train", r) for _ in range(count) for family in args.families]
        tokens, mask = adapt_steps.encode_examples([{"prompt": e.prompt, "answer": e.answer} for e in examples],
                                                   tok, cfg.sft.text_len)
        t0 = time.perf_counter()
        for n in range(args.passes):
            data = multimodal.ExampleBatches(tokens, mask, None, np.full(len(examples), -1), cfg.sft.batch_size,
                                             args.seed + n)
            loss_fn = adapt_steps.MllmLoss(train_llm=True, max_targets=adapt_steps.answer_capacity(data))
            loop.run(model, loss_fn, data,
                     loop.TrainSettings(steps=len(data), optim_cfg=cfg.sft.optim, freeze_rules=adapt_steps.SFT_RULES,
                                        desc=f"{count} described x {len(args.families)}, pass {n + 1}"),
                     # Named by the run's stage-2 step and the continuation's data: a rerun resumes
                     # its own checkpoint, never one of other families.
                     workdir=root / "description_reading" / sft.name / f"{'-'.join(args.families)}-{count}-pass{n + 1}")
        rows.append((count, described_hits(model, tok, questions, text_len), time.perf_counter() - t0))

    def cell(hits) -> str:
        b = signal.proportion(hits)
        return f"{b['accuracy']:.0%} [{b['ci'][0]:.0%}, {b['ci'][1]:.0%}]"

    trained = list(dict.fromkeys(args.families))
    print(f"\n{run.name}: {args.questions} described questions per family, trained on "
          f"{', '.join(trained)} ({args.passes} pass{'es' if args.passes > 1 else ''})\n")
    print("| described questions added per trained family | " + " | ".join(trained)
          + " | the other families, pooled | continuation, s |")
    print("|---:|" + "---|" * (len(trained) + 1) + "---:|")
    for count, hits, seconds in rows:
        others = np.concatenate([h for f, h in hits.items() if f not in trained])
        print(f"| {count:,} | " + " | ".join(cell(hits[f]) for f in trained) + f" | {cell(others)} | {seconds:.0f} |")


if __name__ == "__main__":
    host_memory.restart_with_tunables()  # the malloc settings the command line runs with
    main()
