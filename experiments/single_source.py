"""Single source (the paper's Fig. 3 and Fig. 8): sixteen 3B LLMs on 30B tokens of one source each.

Its web-crawl LLM is the scale sweep's 3B / 30B one: one step, shared when both studies run
under the same root.
"""

from visual_priors.config.mixtures import PAPER_SOURCES
from visual_priors.config.studies import B, grid, paper_study


def get_config(arg: str = "tiny"):
    return paper_study(arg, "single_source", [grid(scales=("3B",), tokens=30 * B,
                                                   mixtures=tuple(f"source:{s}" for s in PAPER_SOURCES))])
