"""Greedy decoding throughput: tokens/s with the KV cache against full recomputation.

    python benchmarks/generation.py [t1 t3 ...] [--batch 8] [--new 64]

Random-weight decoders of the named scales (the speed does not depend on the weights), a batch
of prompts of 10..39 tokens, every row decoding `--new` tokens (no EOS). Compilation is timed
apart: the first call, then the best of three steady calls.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from flax import nnx

from visual_priors.config import scales
from visual_priors.model import generate
from visual_priors.model.llm import Llama
from visual_priors.suite import host_memory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scales", nargs="*", default=["t1", "t3"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--new", type=int, default=64)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    print(f"device {jax.devices()[0].device_kind}, batch {args.batch}, {args.new} new tokens")
    print(f"{'scale':>5} {'scan':>5} {'cache':>5} {'first call s':>12} {'steady ms':>10} {'tok/s':>9}")
    for name in args.scales:
        cfg = scales.get(name)
        prompts = [[2] + rng.integers(4, cfg.vocab_size, n).tolist()
                   for n in rng.integers(10, 40, args.batch)]
        for scan in (False, True):
            cfg.scan_layers = scan
            model = Llama(cfg, rngs=nnx.Rngs(0))
            for use_cache in (True, False):
                kw = dict(max_new_tokens=args.new, eos_id=-1, pad_id=0, use_cache=use_cache)
                t0 = time.perf_counter()
                generate.greedy(model, prompts, **kw)
                first = time.perf_counter() - t0
                best, out = float("inf"), []
                for _ in range(3):
                    t0 = time.perf_counter()
                    out = generate.greedy(model, prompts, **kw)
                    best = min(best, time.perf_counter() - t0)
                n = sum(len(r) for r in out)
                print(f"{name:>5} {str(scan):>5} {str(use_cache):>5} {first:>12.2f} {best * 1e3:>10.1f} "
                      f"{n / best:>9,.0f}")


if __name__ == "__main__":
    host_memory.restart_with_tunables()  # the malloc settings the command line runs with
    main()
