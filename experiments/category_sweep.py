"""Category sweep (the paper's Fig. 4): each of the eight labels at 0/25/50/75/100% of 30B tokens.

The rest of each run's tokens come from segments without the label, from the whole pool in
natural proportions (`category:<label>=<percent>` mixtures, config/mixtures.py). 3B LLMs. The
two combinations the findings compare (F2 reasoning prior, F3 perception prior) are trained
with three seeds (`SEEDS`) at 0, 25 and 100% (`SEEDED_PERCENTS`: F2's slope, F3's gain in the
first quarter against the rest), at 50 and 75% with the config's seed, as are the six single
labels. In miniature the six single labels, which no finding compares on their own, take three
shares (`TINY_SINGLE_PERCENTS`: both ends and the middle) instead of five, to pay for the
seeds of the cells the findings do compare.
"""

from visual_priors.config.studies import B, grid, in_miniature, paper_study
from visual_priors.data.labelling import ALL_LABELS

PERCENTS = (0, 25, 50, 75, 100)
# Three replicates: the config's own seed (profiles: 42) and the two after it, so that
# `--set seed=7` repeats the study with other training seeds.
SEEDS = 3
SEEDED = ("reasoning_combination", "visual_combination")
SEEDED_PERCENTS = (0, 25, 100)
TINY_SINGLE_PERCENTS = (0, 50, 100)


def _mixtures(labels, percents=PERCENTS) -> tuple[str, ...]:
    return tuple(f"category:{label}={p}" for label in labels for p in percents)


def get_config(arg: str = "tiny"):
    singles = TINY_SINGLE_PERCENTS if in_miniature(arg) else PERCENTS
    return paper_study(arg, "category_sweep", [
        grid(scales=("3B",), tokens=30 * B, mixtures=_mixtures(SEEDED, SEEDED_PERCENTS), seeds=SEEDS),
        grid(scales=("3B",), tokens=30 * B,
             mixtures=_mixtures(SEEDED, [p for p in PERCENTS if p not in SEEDED_PERCENTS])
             + _mixtures((l for l in ALL_LABELS if l not in SEEDED), singles))])
