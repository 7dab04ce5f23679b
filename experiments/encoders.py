"""Encoder universality (the paper's Fig. 6): the reasoning-combination sweep's LLMs with three
vision encoders.

The reasoning prior should transfer whatever the encoder (Knowledge and Vision-Centric move
together across encoders) while perception depends on it. `paper` pairs the 3B / 30B
reasoning-combination LLMs (shared with the category sweep) with MetaCLIP-B/16, DINOv2-G and
MAE-H, imported from checkpoints the user points at; `tiny` with the local contrastive,
supervised and MAE encoders that stand in for them:

    visual-priors suite run experiments/encoders.py
    visual-priors suite run experiments/encoders.py:paper \\
        --set imported_encoders.metaclip.path=/ckpt/metaclip-b16-fullcc2.5b \\
        --set imported_encoders.dinov2.path=/ckpt/dinov2-giant \\
        --set imported_encoders.mae_h.path=/ckpt/vit-mae-huge
"""

from visual_priors.config.studies import B, grid, paper_study

PERCENTS = (0, 25, 50, 75, 100)


def get_config(arg: str = "tiny"):
    return paper_study(arg, "encoders", [grid(
        scales=("3B",), tokens=30 * B, encoders=("metaclip", "dinov2", "mae_h"),
        mixtures=tuple(f"category:reasoning_combination={p}" for p in PERCENTS))])
