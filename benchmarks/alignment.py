"""Layer-pair alignment time: every (LLM layer, vision layer) pair of PRH's pipeline.

    python benchmarks/alignment.py             # N = 1,024; a 7B LLM (33 x 4096) vs a ViT-L (24 x 1024)
    python benchmarks/alignment.py --n 512 --llm-layers 9 --llm-width 512 \\
        --vision-layers 6 --vision-width 256   # a CPU-sized shape

Random features (the time does not depend on their values), ``layer_pair_scores`` with
mutual_knn at k = 10 by default: each layer's neighbours once, then all Lx x Ly pairs compared
in vmapped batches. The first call (compilation included) is timed apart from the best of
``--repeats`` steady calls.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from visual_priors.eval import alignment
from visual_priors.suite import host_memory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1024, help="image-caption pairs")
    p.add_argument("--llm-layers", type=int, default=33, help="LLM hidden states (7B: 32 blocks + embeddings)")
    p.add_argument("--llm-width", type=int, default=4096)
    p.add_argument("--vision-layers", type=int, default=24, help="vision blocks (ViT-L: 24)")
    p.add_argument("--vision-width", type=int, default=1024)
    p.add_argument("--metric", default="mutual_knn", choices=list(alignment.METRICS))
    p.add_argument("--topk", type=int, default=10, help="neighbours, for the metrics that take them")
    p.add_argument("--pair-batch", type=int, default=None, help="layer pairs compared at once")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    rng = np.random.default_rng(0)
    x = jax.device_put(rng.standard_normal((args.n, args.llm_layers, args.llm_width), np.float32))
    y = jax.device_put(rng.standard_normal((args.n, args.vision_layers, args.vision_width), np.float32))
    kw = {"topk": args.topk} if args.metric in alignment.KNN_METRICS + ("cknna",) else {}
    pairs = args.llm_layers * args.vision_layers
    device = jax.devices()[0]
    print(f"device {device.platform} ({device.device_kind}); N = {args.n}; LLM {args.llm_layers} x "
          f"{args.llm_width} vs vision {args.vision_layers} x {args.vision_width}: {pairs} layer pairs; "
          f"{args.metric} {kw}")

    def once() -> float:
        t0 = time.perf_counter()
        alignment.layer_pair_scores(x, y, args.metric, pair_batch=args.pair_batch, **kw)  # returns host numbers
        return time.perf_counter() - t0

    first = once()
    steady = min(once() for _ in range(args.repeats))
    print(f"first call (with compilation) {first:.2f} s; steady {steady:.3f} s "
          f"({pairs / steady:,.0f} layer pairs/s)")


if __name__ == "__main__":
    host_memory.restart_with_tunables()  # the malloc settings the command line runs with
    main()
