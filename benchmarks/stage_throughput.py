"""Stage 2 (instruction tuning) FLOP rate per tiny scale, on the SFT data of a finished study.

    python benchmarks/stage_throughput.py --root R [--steps 200] [--scales t3 t4 t5]

Each scale's MLLM (a randomly initialised LLM and connector: the rate does not depend on the
weights) trains `--steps` batches of stage 2 exactly as `sft` steps do (the run's examples,
batches of 8 cut to their longest row, the answer-position head, AdamW), in this one process.
The rate is the loss's own FLOP count over the seconds not spent compiling. It tells
`benchmarks/study_time.py` how much faster the wider scales run than the ones a finished study
trained.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from flax import nnx

from visual_priors.config import profiles, scales
from visual_priors.data import multimodal
from visual_priors.data.tokenizer import load_tokenizer
from visual_priors.model import connector as connector_lib, llm as llm_lib, mllm as mllm_lib
from visual_priors.suite import host_memory
from visual_priors.suite.adapt_steps import SFT_RULES, MllmLoss, answer_capacity, encode_examples
from visual_priors.suite.vision_steps import load_features
from visual_priors.train import loop
from visual_priors.train.compile_meter import CompileMeter
from visual_priors.train.session import TrainSettings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="a finished study's root (its tokenizer and features steps)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--scales", nargs="+", default=["t3", "t4", "t5"])
    args = ap.parse_args()
    root = Path(args.root)
    tok = load_tokenizer(next(root.glob("tokenizer-*/*.model")))
    feat_dir = next(root.glob("features-*"))
    feats = load_features(feat_dir, "sft")
    cfg = profiles.get("tiny")
    examples = json.loads((feat_dir / "sft.json").read_text())[: 2 * args.steps * cfg.sft.batch_size]
    tokens, mask = encode_examples(examples, tok, cfg.sft.text_len)
    rows = np.array([e["row"] for e in examples])
    for scale in args.scales:
        llm_cfg = scales.get(scale)
        model = mllm_lib.MLLM(llm_lib.Llama(llm_cfg, rngs=nnx.Rngs(0)),
                              connector_lib.Connector(feats.shape[-1], llm_cfg.d_model, rngs=nnx.Rngs(1)))
        data = multimodal.ExampleBatches(tokens, mask, feats, rows, cfg.sft.batch_size, 0)
        loss_fn = MllmLoss(train_llm=True, max_targets=answer_capacity(data))
        settings = TrainSettings(steps=args.steps, optim_cfg=cfg.sft.optim, freeze_rules=SFT_RULES,
                                 progress=False, tensorboard=False)
        t0 = time.perf_counter()
        with CompileMeter() as compiling, tempfile.TemporaryDirectory() as work:
            result = loop.run(model, loss_fn, data, settings, workdir=work)
        seconds = time.perf_counter() - t0 - compiling.seconds
        print(f"{scale}: {result.flops / seconds / 1e9:.1f} GFLOP/s over {args.steps} steps "
              f"({seconds:.1f} s computing, {compiling.seconds:.1f} s compiling)", flush=True)


if __name__ == "__main__":
    host_memory.restart_with_tunables()
    main()
