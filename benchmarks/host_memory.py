"""Page faults, kernel time and tokens/s of tiny pre-training with glibc's malloc defaults
against the tunables the command line runs with (visual_priors/suite/host_memory.py).

    python benchmarks/host_memory.py [--scales t1 t3] [--steps 20] [--repeats 2]

Each measurement is a fresh process started with `GLIBC_TUNABLES` set either way (tunables
are read when a process starts), training the tiny profile's batch on random tokens (as
benchmarks/packed_training.py does) one run by the normal loop, then four runs packed into one
program. A process trains STEPS steps of each once to warm up, then STEPS and 3 x STEPS; the
difference between the last two gives the faults and kernel seconds per step without
compilation and set-up. Tokens/s is the steady rate of the longer one. The two settings
alternate, `--repeats` times; the table shows the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

import jax
import numpy as np

from visual_priors.config import profiles, scales
from visual_priors.suite import host_memory

# Run as a script: its own folder is on the path.
from packed_training import packed_run, sequential
from train_throughput import machine_line, tiny_shape

SETTINGS = {"glibc defaults": "glibc.malloc.hugetlb=0", "tunables": host_memory.TUNABLES}
PACKED_RUNS = 4


def _usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_minflt, r.ru_stime


def _measure(train, steps: int) -> dict:
    """Per-step faults and kernel seconds of ``train(n)`` from n = steps and n = 3 x steps, after
    a first ``train(steps)`` that grows the heap to its working size (not counted)."""
    train(steps)
    spent = {}
    for n in (steps, 3 * steps):
        faults, sys_s = _usage()
        result = train(n)
        after = _usage()
        spent[n] = (after[0] - faults, after[1] - sys_s, result["steady"])
    extra = 2 * steps
    return {"faults_per_step": (spent[3 * steps][0] - spent[steps][0]) / extra,
            "kernel_ms_per_step": 1e3 * (spent[3 * steps][1] - spent[steps][1]) / extra,
            "tokens_per_s": spent[3 * steps][2]}


def child(scale: str, steps: int) -> dict:
    cfg = scales.get(scale)
    optim_cfg = profiles.get("tiny").pretrain.optim
    seq, batch = tiny_shape(argparse.Namespace(seq_len=None, batch=None))
    loop = _measure(lambda n: sequential(cfg, 1, n, batch, seq, optim_cfg), steps)
    packed = _measure(lambda n: packed_run(cfg, PACKED_RUNS, n, batch, seq, optim_cfg, 1), steps)
    packed["faults_per_step"] /= PACKED_RUNS  # per run and step, as the loop's
    packed["kernel_ms_per_step"] /= PACKED_RUNS
    return {"loop": loop, "packed": packed}


def _run_child(scale: str, steps: int, tunables: str) -> dict:
    env = {**os.environ, host_memory.ENV: tunables}
    out = subprocess.run([sys.executable, __file__, "--child", scale, "--steps", str(steps)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=["t1", "t3"])
    parser.add_argument("--steps", type=int, default=20, help="a multiple of the loops' 10-step logging")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps)))
        return
    print(machine_line(jax.devices()[0]))
    print(f"# {args.steps} and {3 * args.steps} steps per process after {args.steps} to warm up, "
          f"median of {args.repeats}; "
          f"packed: {PACKED_RUNS} runs, faults and kernel time per run and step")
    print(f"{'scale':>5} {'training':>8} {'malloc':>15} {'faults/step':>12} {'kernel ms/step':>14} "
          f"{'tokens/s':>9}")
    for scale in args.scales:
        rows = {name: [] for name in SETTINGS}
        for _ in range(args.repeats):
            for name, tunables in SETTINGS.items():
                rows[name].append(_run_child(scale, args.steps, tunables))
        for training in ("loop", "packed"):
            for name, results in rows.items():
                med = {k: float(np.median([r[training][k] for r in results])) for k in results[0][training]}
                print(f"{scale:>5} {training:>8} {name:>15} {med['faults_per_step']:>12,.0f} "
                      f"{med['kernel_ms_per_step']:>14.1f} {med['tokens_per_s']:>9,.0f}", flush=True)


if __name__ == "__main__":
    main()
