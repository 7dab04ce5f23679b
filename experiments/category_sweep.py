"""Category sweep (the paper's Fig. 4): each of the eight labels at 0/25/50/75/100% of 30B tokens.

The rest of each run's tokens come from segments without the label, from the whole pool in
natural proportions (`category:<label>=<percent>` mixtures, config/mixtures.py). 3B LLMs.
"""

from visual_priors.config.studies import B, grid, paper_study
from visual_priors.data.labelling import ALL_LABELS

PERCENTS = (0, 25, 50, 75, 100)


def get_config(arg: str = "tiny"):
    return paper_study(arg, "category_sweep", [grid(
        scales=("3B",), tokens=30 * B,
        mixtures=tuple(f"category:{label}={p}" for label in ALL_LABELS for p in PERCENTS))])
