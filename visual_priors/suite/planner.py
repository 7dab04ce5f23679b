"""What a study will cost before it runs: runs, LLMs, unique and shared steps per study, training
FLOPs and device-hours per chip.

FLOPs count what trains: pre-training (MaxText's accounting, causal attention at half), stage 1
(connector only: forward and activation gradients through the frozen LLM) and stage 2 (connector
and LLM), and local encoders; frozen-feature encoding and evaluation are forward passes over a
fixed, small set of images and questions and are left out. The paper reports 500,000 GPU-hours
for all of its runs, evaluation included.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from visual_priors.errors import BadValue
from visual_priors.suite import spec as spec_lib

# Dense bf16 peak per chip, TFLOP/s (vendor datasheets).
PEAK_TFLOPS = {"h100": 989.0, "tpu-v4": 275.0, "tpu-v5p": 459.0}
PAPER_GPU_HOURS = 500_000


def plan(cfg, *, mfu: float = 0.4, chip: str = "h100") -> dict:
    if chip not in PEAK_TFLOPS:
        raise BadValue(f"unknown chip {chip!r}; valid chips: {', '.join(PEAK_TFLOPS)}")
    if not 0 < mfu <= 1:
        raise BadValue(f"MFU must be in (0, 1], got {mfu}")
    runs, steps = spec_lib.expand(cfg)
    need = {run.name: spec_lib.topological([run.steps["evaluate"]]) for run in runs}
    users, studies_of = Counter(), defaultdict(set)
    for run in runs:
        for step in need[run.name]:
            users[step.hash] += 1
            studies_of[step.hash].add(run.study or cfg.study)
    cost = {s.hash: s.unit.flops(s) for s in steps}
    by_kind_flops = Counter()
    for s in steps:
        by_kind_flops[s.kind] += cost[s.hash]
    total = sum(cost.values())
    studies = {}
    for run in runs:
        name = run.study or cfg.study
        entry = studies.setdefault(name, {"runs": 0, "hashes": set()})
        entry["runs"] += 1
        entry["hashes"].update(s.hash for s in need[run.name])
    kinds = {s.hash: s.kind for s in steps}
    per_study = {name: {"runs": e["runs"], "llms": sum(1 for h in e["hashes"] if kinds[h] == "pretrain"),
                       "steps": len(e["hashes"]),
                       "shared_with_other_studies": sum(1 for h in e["hashes"] if len(studies_of[h]) > 1),
                       "flops": sum(cost[h] for h in e["hashes"])}
                 for name, e in studies.items()}
    hours = {c: device_hours(total, c, mfu) for c in PEAK_TFLOPS}
    return {
        "study": cfg.study, "profile": cfg.profile, "runs": len(runs), "steps": len(steps),
        "llms": sum(1 for s in steps if s.kind == "pretrain"),
        "steps_by_kind": dict(Counter(s.kind for s in steps)),
        "shared_steps": sum(1 for s in steps if users[s.hash] > 1),
        "studies": per_study,
        "flops_by_kind": {k: v for k, v in by_kind_flops.items() if v},
        "train_flops": total, "pretrain_flops": by_kind_flops["pretrain"],
        "chip": chip, "mfu": mfu, "device_hours": hours[chip], "device_hours_by_chip": hours,
        "pretrain_device_hours": device_hours(by_kind_flops["pretrain"], chip, mfu),
        "paper_gpu_hours": PAPER_GPU_HOURS,
    }


def device_hours(train_flops: float, chip: str, mfu: float) -> float:
    return train_flops / (PEAK_TFLOPS[chip] * 1e12 * mfu) / 3600.0
