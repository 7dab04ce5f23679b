"""What a study will cost before it runs: runs, unique and shared steps, training FLOPs."""

from __future__ import annotations

from collections import Counter

from visual_priors.config import scales
from visual_priors.suite import spec as spec_lib
from visual_priors.train import flops

# Dense bf16 peak per chip, TFLOP/s (vendor datasheets).
PEAK_TFLOPS = {"h100": 989.0, "tpu-v4": 275.0, "tpu-v5p": 459.0}


def plan(cfg, *, mfu: float = 0.4, chip: str = "h100") -> dict:
    if chip not in PEAK_TFLOPS:
        raise ValueError(f"unknown chip {chip!r}; valid chips: {', '.join(PEAK_TFLOPS)}")
    runs, steps = spec_lib.expand(cfg)
    users = Counter()
    for run in runs:
        for step in spec_lib.topological([run.steps["evaluate"]]):
            users[step.hash] += 1
    by_kind = Counter(s.kind for s in steps)
    pretrain_flops = 0.0
    for s in steps:
        if s.kind == "pretrain":
            pretrain_flops += flops.pretrain_flops(scales.get(s.fields["scale"]), s.fields["tokens"],
                                                   s.fields["seq_len"])
    seconds = pretrain_flops / (PEAK_TFLOPS[chip] * 1e12 * mfu)
    return {
        "study": cfg.study, "profile": cfg.profile, "runs": len(runs), "steps": len(steps),
        "steps_by_kind": dict(by_kind), "shared_steps": sum(1 for s in steps if users[s.hash] > 1),
        "pretrain_flops": pretrain_flops, "chip": chip, "mfu": mfu,
        "pretrain_device_hours": seconds / 3600.0,
    }
