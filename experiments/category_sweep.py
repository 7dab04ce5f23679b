"""Category sweep (the paper's Fig. 4): each of the eight labels at 0/25/50/75/100% of 30B tokens.

The rest of each run's tokens come from segments without the label, from the whole pool in
natural proportions (`category:<label>=<percent>` mixtures, config/mixtures.py). 3B LLMs. The
two combinations the findings compare (F2 reasoning prior, F3 perception prior) are trained
with three seeds (`SEEDS`), the six single labels with the config's seed.
"""

from visual_priors.config.studies import B, grid, paper_study
from visual_priors.data.labelling import ALL_LABELS

PERCENTS = (0, 25, 50, 75, 100)
# The config's own seed (profiles: 42) and two more.
SEEDS = (42, 43, 44)
SEEDED = ("reasoning_combination", "visual_combination")


def _mixtures(labels) -> tuple[str, ...]:
    return tuple(f"category:{label}={p}" for label in labels for p in PERCENTS)


def get_config(arg: str = "tiny"):
    return paper_study(arg, "category_sweep", [
        grid(scales=("3B",), tokens=30 * B, mixtures=_mixtures(SEEDED), seeds=SEEDS),
        grid(scales=("3B",), tokens=30 * B, mixtures=_mixtures(l for l in ALL_LABELS if l not in SEEDED))])
