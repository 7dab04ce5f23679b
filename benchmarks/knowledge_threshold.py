"""How many pre-training tokens a tiny LLM needs before it stores the world's facts (the signal
chain's H3 hop), at several batch sizes.

    python benchmarks/knowledge_threshold.py [--scale t3] [--mixture source:web_crawl]
        [--tokens 75000 300000 600000 1200000] [--batch 16 4] [--root R] [--workers 2]

Each (tokens, batch) LLM is pre-trained by the suite (`visual-priors pretrain`'s steps, packed
where shapes allow; a rerun on the same --root reuses them) and then measured two ways:

- H3 as the suite scores it (`eval.signal.knowledge_hop`): four-option fact questions in
  text, "Question: What is the dax used for?\\nAnswer:", for the kinds whose facts appear only
  as sentences in pre-training text (held out) and for the others (which also have question
  and answer text), 95% Wilson intervals;
- a statement probe: after "People use daxes for", "Daxes are good for" and "A dax is used
  for", is the kind's own use the likeliest of the world's uses (one per kind, so chance is one
  in the number of kinds)? It asks for the fact in the very words the text states it, so it
  tells a fact never stored from one stored but not extractable as an answer.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from visual_priors.config import profiles
from visual_priors.eval import signal
from visual_priors.eval.language import evaluate_multiple_choice
from visual_priors.suite import host_memory
from visual_priors.suite.executor import Options, output_dir, plan_targets, run_study
from visual_priors.suite.step_io import read_result, tokenizer_of, world_of
from visual_priors.suite.steps import load_llm
from visual_priors.world.language_tasks import MCItem

STATEMENTS = ("People use {plural} for", "{Plural} are good for", "A {name} is used for")
# The tiny profile's context length, as the language step scores the LLM.
SEQ_LEN = 128


def statement_probe(model, tok, world) -> dict:
    """Share of (kind, statement) pairs whose likeliest continuation among the world's uses is
    the kind's own, for held-out kinds and the others; chance is one over the number of uses."""
    uses = sorted({k.use for k in world.kinds})

    def accuracy(kinds) -> float:
        items = [MCItem.choice(form.format(plural=k.plural, Plural=k.plural.capitalize(), name=k.name),
                               uses, uses.index(k.use)) for k in kinds for form in STATEMENTS]
        return evaluate_multiple_choice(model, tok, items, seq_len=SEQ_LEN)["acc"]

    return {"heldout": accuracy(world.heldout_kinds), "train": accuracy(world.train_kinds),
            "chance": 1 / len(uses)}


def study(args, batch: int):
    cfg = profiles.get("tiny")
    cfg.study = "knowledge_threshold"
    cfg.seed, cfg.world.seed = args.seed, args.world_seed
    cfg.scales = (args.scale,)
    cfg.tokens = {args.scale: tuple(args.tokens)}
    cfg.mixtures = (args.mixture,)
    cfg.pretrain.batch_size = batch
    return cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", default="t3")
    p.add_argument("--mixture", default="source:web_crawl")
    p.add_argument("--tokens", type=int, nargs="+", default=[75_000, 300_000, 600_000, 1_200_000])
    p.add_argument("--batch", type=int, nargs="+", default=[16, 4])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--world-seed", type=int, default=0)
    p.add_argument("--root", default="runs")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--pack", type=int, default=8)
    args = p.parse_args()

    rows = []
    root = Path(args.root)
    locate = lambda s: output_dir(root, s)  # noqa: E731
    for batch in args.batch:
        cfg = study(args, batch)
        run_study(cfg, root, stage="pretrain", report=False,
                  options=Options(workers=args.workers, pack=args.pack))
        world = world_of(cfg.world.to_dict())
        for step in plan_targets(cfg, "pretrain")[1]:
            if step.kind != "pretrain":
                continue
            tok = tokenizer_of(step, locate)
            model = load_llm(locate(step), step.unit.scale, tok)
            h3 = signal.knowledge_hop(model, tok, world, n=cfg.eval.knowledge_questions, seq_len=SEQ_LEN)
            probe = statement_probe(model, tok, world)
            train = read_result(locate(step))["train"]
            rows.append((step.unit.tokens, batch, train["steps"], train["final_loss"], h3, probe))

    print(f"\n{args.scale} on {args.mixture}, world {args.world_seed}, seed {args.seed}: H3 accuracy on "
          f"{rows[0][4]['heldout']['n']} questions per half (chance {rows[0][4]['chance']:.0%}), statement "
          f"probe (chance {rows[0][5]['chance']:.0%})\n")
    print("| tokens | batch | steps | final loss | H3 held-out | H3 other kinds | statement held-out | statement other |")
    print("|---:|---:|---:|---:|---|---|---:|---:|")
    for tokens, batch, n_steps, loss, h3, probe in sorted(rows, key=lambda r: (r[0], -r[1])):
        cells = [f"{h3[k]['accuracy']:.1%} [{h3[k]['ci'][0]:.1%}, {h3[k]['ci'][1]:.1%}]" for k in ("heldout", "train")]
        print(f"| {tokens:,} | {batch} | {n_steps:,} | {loss:.2f} | {cells[0]} | {cells[1]} | "
              f"{probe['heldout']:.0%} | {probe['train']:.0%} |")


if __name__ == "__main__":
    host_memory.restart_with_tunables()  # the malloc settings the command line runs with
    main()
