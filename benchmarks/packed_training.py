"""Aggregate pre-training throughput of K same-shape runs packed into one program (train/packed.py)
against the same K runs trained one after another by the normal loop (train/loop.py).

    python benchmarks/packed_training.py [--scales t1 t2] [--runs 4 8] [--steps 40] [--vmap-runs 0 1 2]

Both sides train K tiny LLMs with the pre-training loss on packed rows of random tokens (each
run its own data seed; throughput does not depend on the data), the tiny profile's batch and
sequence length unless given, logging every 10 steps (so a packed call trains 10 steps).
Steady tokens/s is the median over the logged windows after the first (which holds
compilation), summed over the runs; the wall times cover everything, compilation and set-up
included. `--vmap-runs` lists how many runs one vectorised call takes (0: all K; 1: one run at
a time, looped over inside the program, the default on a CPU). Sequential and packed
measurements alternate, `--repeats` times, and the best of each is kept (this VM's speed drifts
with its neighbours' load)."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from visual_priors.config import profiles, scales
from visual_priors.data.batches import ArrayBatches
from visual_priors.model.llm import Llama
from visual_priors.suite import host_memory
from visual_priors.suite.steps import pretrain_loss
from visual_priors.train import loop, packed

# Run as a script: its own folder is on the path.
from train_throughput import machine_line, tiny_shape

LOG_EVERY = 10


def _data(cfg, seed: int, batch: int, seq: int) -> ArrayBatches:
    rng = np.random.default_rng(seed)
    shape = (batch * 8, seq + 1)
    return ArrayBatches({"tokens": rng.integers(0, cfg.vocab_size, shape).astype(np.int32),
                         "segment_ids": np.ones(shape, np.int32),
                         "positions": np.broadcast_to(np.arange(seq + 1, dtype=np.int32), shape).copy()},
                        batch, seed)


def _settings(steps: int, optim_cfg) -> loop.TrainSettings:
    return loop.TrainSettings(steps=steps, optim_cfg=optim_cfg, log_every=LOG_EVERY, progress=False,
                              tensorboard=False)


def _windows(workdir: Path) -> list[float]:
    """Seconds of each logged window after the first, from the run's metrics."""
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    tokens = [r["tokens"] for r in records]
    return [(b - a) / r["tokens_per_s"] for a, b, r in zip(tokens, tokens[1:], records[1:])]


def sequential(cfg, k: int, steps: int, batch: int, seq: int, optim_cfg) -> dict:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        for i in range(k):
            model = Llama(cfg, rngs=nnx.Rngs(0))
            loop.run(model, pretrain_loss, _data(cfg, i, batch, seq), _settings(steps, optim_cfg),
                     workdir=f"{d}/{i}")
        wall = time.perf_counter() - t0
        # One run at a time: the aggregate rate is one run's rate.
        window = float(np.median([w for i in range(k) for w in _windows(Path(d) / str(i))]))
    tokens = k * steps * batch * seq
    return {"steady": LOG_EVERY * batch * seq / window, "end_to_end": tokens / wall, "wall_s": wall}


def packed_run(cfg, k: int, steps: int, batch: int, seq: int, optim_cfg, vmap_runs: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        models = [Llama(cfg, rngs=nnx.Rngs(0)) for _ in range(k)]
        packed.run(models, pretrain_loss, [_data(cfg, i, batch, seq) for i in range(k)],
                   _settings(steps, optim_cfg), workdirs=[f"{d}/{i}" for i in range(k)],
                   vmap_runs=vmap_runs or k)
        wall = time.perf_counter() - t0
        window = float(np.median(_windows(Path(d) / "0")))  # every run shares the group's windows
    tokens = k * steps * batch * seq
    return {"steady": k * LOG_EVERY * batch * seq / window, "end_to_end": tokens / wall, "wall_s": wall}


def _best(a: dict, b: dict) -> dict:
    return b if b["steady"] > a.get("steady", 0.0) else a


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=["t1", "t2"])
    parser.add_argument("--runs", nargs="+", type=int, default=[4, 8], help="K, runs per group")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--vmap-runs", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--seq-len", type=int, default=None, help="default: the tiny profile's")
    parser.add_argument("--batch", type=int, default=None, help="per run; default: the tiny profile's")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    seq, batch = tiny_shape(args)
    optim_cfg = profiles.get("tiny").pretrain.optim
    print(machine_line(jax.devices()[0]))
    print(f"# batch {batch} x {seq} tokens per run, {args.steps} steps, best of {args.repeats}")
    print(f"{'scale':>5} {'K':>3} {'vmap':>4} {'seq tok/s':>10} {'packed tok/s':>12} {'steady x':>8} "
          f"{'seq wall s':>10} {'packed wall s':>13} {'end-to-end x':>12}")
    rows = []
    for scale in args.scales:
        cfg = scales.get(scale)
        for k in args.runs:
            seq_best, packed_best = {}, {w: {} for w in args.vmap_runs}
            for _ in range(args.repeats):
                seq_best = _best(seq_best, sequential(cfg, k, args.steps, batch, seq, optim_cfg))
                for w in args.vmap_runs:
                    packed_best[w] = _best(packed_best[w], packed_run(cfg, k, args.steps, batch, seq,
                                                                      optim_cfg, w))
            for w, best in packed_best.items():
                row = {"scale": scale, "runs": k, "vmap_runs": w or k, "batch": batch, "seq_len": seq,
                       "steps": args.steps, "sequential": seq_best, "packed": best,
                       "steady_speedup": best["steady"] / seq_best["steady"],
                       "end_to_end_speedup": seq_best["wall_s"] / best["wall_s"]}
                rows.append(row)
                print(f"{scale:>5} {k:>3} {w or k:>4} {seq_best['steady']:>10,.0f} {best['steady']:>12,.0f} "
                      f"{row['steady_speedup']:>8.2f} {seq_best['wall_s']:>10.1f} {best['wall_s']:>13.1f} "
                      f"{row['end_to_end_speedup']:>12.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    host_memory.restart_with_tunables()  # the malloc settings the command line runs with
    main()
