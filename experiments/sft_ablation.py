"""SFT-data ablation (the paper's Fig. 7): one LLM, five instruction-tuning sets.

All SFT data, then half or none of the perception-oriented image examples, then half or none of
the reasoning-oriented ones. The paper does not say which LLM; this uses the 3B / 30B web-crawl
LLM, so the LLM and the `full` run are shared with the single-source study.
"""

from visual_priors.config.studies import B, grid, paper_study

SFT_SETS = ("full", "perception50", "perception0", "reasoning50", "reasoning0")


def get_config(arg: str = "tiny"):
    return paper_study(arg, "sft_ablation", [grid(scales=("3B",), tokens=30 * B, mixtures=("source:web_crawl",),
                                                  sft_sets=SFT_SETS)])
