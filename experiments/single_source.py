"""Single source (the paper's Fig. 3 and Fig. 8): sixteen 3B LLMs on 30B tokens of one source each.

Its web-crawl LLM is the scale sweep's 3B / 30B one: one step, shared when both studies run
under the same root. In miniature every source is trained with three seeds (the config's and
the two after it, so the web-crawl ones are the scale sweep's seeded cell), which F10's
comparisons of sources need at this noise; at paper scale one LLM per source, as published.
"""

from visual_priors.config.mixtures import PAPER_SOURCES
from visual_priors.config.studies import B, grid, in_miniature, paper_study

TINY_SEEDS = 3


def get_config(arg: str = "tiny"):
    return paper_study(arg, "single_source", [grid(scales=("3B",), tokens=30 * B,
                                                   mixtures=tuple(f"source:{s}" for s in PAPER_SOURCES),
                                                   seeds=TINY_SEEDS if in_miniature(arg) else None)])
