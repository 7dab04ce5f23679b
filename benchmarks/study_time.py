"""How long a study will take on this machine, from the step times of a study that ran here.

    python benchmarks/study_time.py experiments/paper.py --from experiments/findings.py --root R
        [--set KEY=VALUE ...] [--workers 2] [--speedup t4=1.24 --speedup t5=2.01] [--remaining]

The finished study (`--from`, with the `--set` overrides it ran with, found under `--root`)
gives each kind of step its cost per scale, in two parts: compiling (the most seconds a step of
that kind and scale spent compiling, paid by the first such step; later ones read the programs
from the compilation cache or the worker's kept steps) and computing (the rest of a step's
seconds, a packed group's shared by its steps: per planned training FLOP for pre-training and
the two adaptation stages, per step for the others). Every step of the target study (same
`--set`) gets the cost of its kind at its scale; a scale the finished study did not train takes
the FLOP rate and compile seconds of the largest one it did (wider models run at a higher rate
on a CPU, so this overestimates them; `--speedup t5=2.0` gives the ratio where it is known) and,
for steps that train nothing, the nearest scale's seconds times the ratio of parameter counts.
The steps are then scheduled as the executor claims them (`spec.longest_path_first`, one step at
a time on each of `--workers` workers) to give a wall time.

The finished study is scheduled the same way from its own costs, beside its measured wall time:
how far the model is from the run it was calibrated on. Packing is not simulated (a packed group
counts as its steps one after another), nor two workers compiling the same programs at once,
nor the drift of a shared machine.

The target's compute is also split by study (each step counted once, under the first study in
the config whose runs need it), so that a trade of cells can be priced before it runs; with
`--remaining`, steps already finished under `--root` are left out: what resuming the target
there would still take (the paper on a root where the findings study ran).
"""

from __future__ import annotations

import argparse
import heapq
import json
import sqlite3
from collections import defaultdict
from pathlib import Path

from visual_priors.config import loading, scales
from visual_priors.suite import host_memory, spec
from visual_priors.suite.executor import REGISTRY_FILE, is_done, output_dir, plan_targets, program_key
from visual_priors.train import flops

TRAINING = ("pretrain", "align", "sft")


def scale_of(step) -> str | None:
    """The LLM scale a step works at (None for the steps every scale shares)."""
    key = program_key(step)
    return key[1] if key else None


def measured(root, steps) -> dict:
    """(kind, scale) -> {compute seconds, planned FLOPs, steps, compile seconds} over the
    finished steps among `steps`."""
    costs = defaultdict(lambda: {"compute": 0.0, "flops": 0.0, "n": 0, "compile": 0.0})
    for step in steps:
        path = output_dir(root, step) / "result.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        share = result.get("packed", 1)
        c = costs[(step.kind, scale_of(step))]
        c["compute"] += (result["seconds"] - result.get("compile_seconds", 0.0)) / share
        c["flops"] += step.unit.flops(step)
        c["n"] += 1
        c["compile"] = max(c["compile"], result.get("compile_seconds", 0.0))
    return dict(costs)


def _params(scale: str) -> float:
    return flops.decoder_matmul_params(scales.get(scale))


def cost_of(step, costs: dict, speedup: dict | None = None) -> tuple[float, float, bool]:
    """A step's estimated compute and compile seconds, and whether its scale was extrapolated;
    `speedup` (scale -> FLOP rate over the largest trained scale's) scales training steps at
    scales the finished study did not train."""
    kind, scale = step.kind, scale_of(step)
    known = sorted((s for k, s in costs if k == kind and s is not None), key=_params)
    ratio = 1.0
    if (kind, scale) in costs:
        c, guessed = costs[(kind, scale)], False
    elif scale is None or not known:
        raise SystemExit(f"the finished study ran no {kind} step to take its cost from")
    elif kind in TRAINING:  # the FLOP rate of the largest scale trained, times `speedup`
        c, guessed, ratio = costs[(kind, known[-1])], True, 1.0 / (speedup or {}).get(scale, 1.0)
    else:  # the nearest scale's seconds, in proportion to the parameters
        nearest = min(known, key=lambda s: abs(_params(s) - _params(scale)))
        c, guessed, ratio = costs[(kind, nearest)], True, _params(scale) / _params(nearest)
    if kind in TRAINING:
        compute = step.unit.flops(step) * c["compute"] / c["flops"] * ratio
    else:
        compute = c["compute"] / c["n"] * ratio
    return compute, c["compile"], guessed


def schedule(steps, compute: dict, compile_s: dict, workers: int) -> float:
    """Wall time of list scheduling in claim order: each free worker takes the first ready step;
    the first step of a kind and scale compiles its programs, later ones read them."""
    inside = {s.hash for s in steps}
    done_at, running, now = {}, [], 0.0
    free, compiled = list(range(workers)), set()
    pending = spec.longest_path_first(steps)
    while pending or running:
        while free:
            ready = next((s for s in pending
                          if all(d.hash not in inside or done_at.get(d.hash, now + 1) <= now for d in s.inputs)), None)
            if ready is None:
                break
            pending.remove(ready)
            w = free.pop(0)
            key = (ready.kind, scale_of(ready))
            seconds = compute[ready.hash] + (0.0 if key in compiled else compile_s[ready.hash])
            compiled.add(key)
            heapq.heappush(running, (now + seconds, w, ready.hash))
        now, w, h = heapq.heappop(running)
        done_at[h] = now
        free.append(w)
    return now


def measured_wall(root, steps) -> float:
    with sqlite3.connect(root / REGISTRY_FILE) as db:
        rows = db.execute(f"SELECT started, ended FROM steps WHERE status='done' AND hash IN "
                          f"({','.join('?' * len(steps))})", [s.hash for s in steps]).fetchall()
    return max(e for _, e in rows) - min(s for s, _ in rows)


def study_of(runs) -> dict:
    """step hash -> the study of the first run that needs it (runs in the config's order)."""
    owner = {}
    for run in runs:
        for step in spec.topological(list(run.steps.values())):
            owner.setdefault(step.hash, run.study)
    return owner


def report(name: str, steps, costs, workers: int, speedup: dict | None = None, runs=None) -> None:
    compute, compile_s, extrapolated, by_kind = {}, {}, 0.0, defaultdict(float)
    for s in steps:
        compute[s.hash], compile_s[s.hash], guessed = cost_of(s, costs, speedup)
        extrapolated += compute[s.hash] if guessed else 0.0
        by_kind[(s.kind, scale_of(s) or "-")] += compute[s.hash]
    total = sum(compute.values())
    print(f"{name}: {len(steps)} steps, {total:,.0f} step-seconds of compute "
          f"({100 * extrapolated / total:.0f}% at scales the finished study did not run), plus compiling")
    for (kind, scale), sec in sorted(by_kind.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {kind:<11} {scale:<4} {sec:9,.0f} s")
    if runs is not None:
        owner, by_study = study_of(runs), defaultdict(lambda: [0, 0.0])
        for s in steps:
            counts = by_study[owner[s.hash]]
            counts[0], counts[1] = counts[0] + 1, counts[1] + compute[s.hash]
        print("  by study (a shared step under the first that needs it):")
        for study, (n, sec) in by_study.items():
            print(f"    {study:<22} {n:5d} steps {sec:9,.0f} s")
    wall = schedule(steps, compute, compile_s, workers)
    print(f"  on {workers} workers, claimed longest path first: {wall:,.0f} s ({wall / 3600:.2f} h)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study")
    ap.add_argument("--from", dest="finished", required=True, help="the study that ran under --root")
    ap.add_argument("--root", required=True)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--remaining", action="store_true",
                    help="leave out the target's steps already finished under --root")
    ap.add_argument("--speedup", action="append", default=[], metavar="SCALE=X",
                    help="a scale the finished study did not train runs its training at X times the FLOP "
                         "rate of the largest one it did (benchmarks/stage_throughput.py measures it)")
    args = ap.parse_args()
    speedup = {k: float(v) for k, v in (item.split("=", 1) for item in args.speedup)}
    root = Path(args.root)
    _, done = plan_targets(loading.load(args.finished, args.overrides))
    costs = measured(root, done)
    if not costs:
        raise SystemExit(f"no finished step of {args.finished} under {root}")
    report(f"{args.finished} (calibration)", done, costs, args.workers)
    print(f"  measured: {measured_wall(root, done):,.0f} s")
    runs, target = plan_targets(loading.load(args.study, args.overrides))
    if args.remaining:
        finished = {s.hash for s in target if is_done(root, s)}
        print(f"{len(finished)} of the target's {len(target)} steps are finished under {root}")
        target = [s for s in target if s.hash not in finished]
    report(args.study, target, costs, args.workers, speedup, runs)


if __name__ == "__main__":
    host_memory.restart_with_tunables()
    main()
