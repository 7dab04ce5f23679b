"""Encoder universality (the paper's Fig. 6): the reasoning-combination sweep's LLMs with three
vision encoders.

The reasoning prior should transfer whatever the encoder (Knowledge and Vision-Centric move
together across encoders) while perception depends on it. `paper` pairs the 3B / 30B
reasoning-combination LLMs (shared with the category sweep) with MetaCLIP-B/16, DINOv2-G and
MAE-H, imported from checkpoints the user points at; `tiny` with the local contrastive,
supervised and MAE encoders that stand in for them. As in the category sweep, the shares F6
compares at both ends and in the first quarter (0, 25 and 100%) are trained with three seeds
(adaptation on the sweep's seeded LLMs), 50 and 75% with the config's seed:

    visual-priors suite run experiments/encoders.py
    visual-priors suite run experiments/encoders.py:paper \\
        --set imported_encoders.metaclip.path=/ckpt/metaclip-b16-fullcc2.5b \\
        --set imported_encoders.dinov2.path=/ckpt/dinov2-giant \\
        --set imported_encoders.mae_h.path=/ckpt/vit-mae-huge
"""

from visual_priors.config.studies import B, grid, paper_study

PERCENTS = (0, 25, 50, 75, 100)
# The category sweep's seeded shares and seeds, so that every seeded LLM is the sweep's own.
SEEDS = 3
SEEDED_PERCENTS = (0, 25, 100)
ENCODERS = ("metaclip", "dinov2", "mae_h")


def _mixtures(percents) -> tuple[str, ...]:
    return tuple(f"category:reasoning_combination={p}" for p in percents)


def get_config(arg: str = "tiny"):
    return paper_study(arg, "encoders", [
        grid(scales=("3B",), tokens=30 * B, encoders=ENCODERS, mixtures=_mixtures(SEEDED_PERCENTS), seeds=SEEDS),
        grid(scales=("3B",), tokens=30 * B, encoders=ENCODERS,
             mixtures=_mixtures(p for p in PERCENTS if p not in SEEDED_PERCENTS))])
