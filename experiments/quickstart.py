"""Quickstart: three scales x two text mixtures, one encoder, the whole pipeline.

The language-favourable mixture (mix0) against the balanced one (mix6) of the paper's table 2,
each pre-trained at three scales, adapted to a multimodal model with the same encoder and
evaluated on every VQA category. `tiny` runs on a laptop CPU in minutes; `paper` is the same
study at the paper's 340M / 1B / 3B scales.

    visual-priors suite run experiments/quickstart.py           # tiny profile
    visual-priors suite run experiments/quickstart.py:paper
"""

from visual_priors.config import profiles


def get_config(arg: str = "tiny"):
    cfg = profiles.get(arg or "tiny")
    cfg.study = "quickstart"
    cfg.mixtures = ("mix0", "mix6")
    if cfg.profile == "tiny":
        cfg.scales = ("t1", "t2", "t3")
        # Budgets grow with the model, so the three runs of a mixture span ~20x in compute,
        # and none sees more than one epoch of a source's shard.
        cfg.tokens = {"t1": 200_000, "t2": 400_000, "t3": 600_000}
    else:
        cfg.scales = ("340M", "1B", "3B")
        cfg.tokens = {"340M": 10_000_000_000, "1B": 30_000_000_000, "3B": 50_000_000_000}
    return cfg
