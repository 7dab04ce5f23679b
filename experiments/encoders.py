"""Encoder universality (the paper's Fig. 6): the same LLMs adapted with three vision encoders.

The reasoning prior should transfer whatever the encoder (Knowledge and Vision-Centric move
together across encoders) while perception depends on it. `tiny` pairs the quickstart's six LLMs
(mix0 and mix6 at t1..t3, shared with the quickstart when both run under one root) with the
three locally trained encoders; `paper` pairs the 3B / 30B reasoning-combination sweep with
MetaCLIP-B/16, DINOv2-G and MAE-H, imported from checkpoints the user points at:

    visual-priors suite run experiments/encoders.py
    visual-priors suite run experiments/encoders.py:paper \\
        --set imported_encoders.metaclip.path=/ckpt/metaclip-b16-fullcc2.5b \\
        --set imported_encoders.dinov2.path=/ckpt/dinov2-giant \\
        --set imported_encoders.mae_h.path=/ckpt/vit-mae-huge
"""

from pathlib import Path

from visual_priors.config import loading


def get_config(arg: str = "tiny"):
    cfg = loading.load(f"{Path(__file__).with_name('quickstart.py')}:{arg or 'tiny'}")
    cfg.study = "encoders"
    if cfg.profile == "tiny":
        cfg.encoders = ("contrastive", "mae", "supervised")
    else:
        cfg.encoders = ("metaclip", "dinov2", "mae_h")
        cfg.scales = ("3B",)
        cfg.tokens = {"3B": 30_000_000_000}
        cfg.mixtures = tuple(f"category:reasoning_combination={p}" for p in (0.0, 0.25, 0.5, 0.75, 1.0))
    return cfg
