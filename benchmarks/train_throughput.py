"""Pre-training throughput of each tiny scale through the real training loop.

    python benchmarks/train_throughput.py [--scales t1 t2 t3 t4 t5] [--steps 60]

Tokens/s are measured after compilation (the first steps are excluded) with the tiny profile's
sequence length and batch size, on random tokens (throughput does not depend on the data).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from visual_priors.config import profiles, scales
from visual_priors.data.batches import ArrayBatches
from visual_priors.model.llm import Llama, count_params
from visual_priors.model.scoring import masked_nll
from visual_priors.train import flops, loop


def measure(scale: str, steps: int, warmup: int = 5) -> dict:
    prof = profiles.get("tiny")
    cfg = scales.get(scale)
    seq, batch = prof.pretrain.seq_len, prof.pretrain.batch_size
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, cfg.vocab_size, size=(batch * 8, seq + 1)).astype(np.int32)
    model = Llama(cfg, rngs=nnx.Rngs(0))

    def loss_fn(m, b):
        loss, count = masked_nll(m, b["tokens"], jnp.ones_like(b["tokens"]))
        return loss, {"tokens": count}

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = loop.run(model, loss_fn, ArrayBatches({"tokens": tokens}, batch, 0), steps=steps + warmup,
                       optim_cfg=prof.pretrain.optim, workdir=d, log_every=1, progress=False)
        total = time.perf_counter() - t0
        records = [json.loads(line) for line in open(f"{d}/metrics.jsonl")]
    steady = records[warmup:]
    tps = float(np.median([r["tokens_per_s"] for r in steady]))
    return {"scale": scale, "params": count_params(cfg), "seq_len": seq, "batch": batch,
            "tokens_per_s": tps, "tflops_per_s": tps * flops.train_flops_per_token(cfg, seq) / 1e12,
            "wall_s_incl_compile": total, "final_loss": res.final_loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=list(scales.TINY_SCALES))
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
          f"{jax.device_count()} {jax.devices()[0].platform} device(s), jax {jax.__version__}")
    print(f"{'scale':>5} {'params':>11} {'tokens/s':>10} {'TFLOP/s':>8} {'wall s':>7}")
    for s in args.scales:
        r = measure(s, args.steps)
        print(f"{r['scale']:>5} {r['params']:>11,} {r['tokens_per_s']:>10,.0f} {r['tflops_per_s']:>8.4f} "
              f"{r['wall_s_incl_compile']:>7.1f}")


if __name__ == "__main__":
    main()
