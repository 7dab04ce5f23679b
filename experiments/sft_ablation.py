"""SFT-data ablation (the paper's Fig. 7): one LLM, five instruction-tuning sets.

All SFT data, then half or none of the perception-oriented image examples, then half or none of
the reasoning-oriented ones. The paper does not say which LLM; this uses the 3B / 30B web-crawl
LLM, so the LLM and the `full` run are shared with the single-source study. The three sets F7
compares (all, no perception data, no reasoning data) are trained with three seeds, the scale
sweep's seeded 3B / 30B LLMs (so the `full` runs are the scale sweep's too); the halves with the
config's seed.
"""

from visual_priors.config.studies import B, grid, paper_study

SFT_SETS = ("full", "perception50", "perception0", "reasoning50", "reasoning0")
SEEDS = 3  # the config's seed and the two after it, as the scale sweep's seeded cells
SEEDED = ("full", "perception0", "reasoning0")


def get_config(arg: str = "tiny"):
    web = {"scales": ("3B",), "tokens": 30 * B, "mixtures": ("source:web_crawl",)}
    return paper_study(arg, "sft_ablation", [
        grid(**web, sft_sets=SEEDED, seeds=SEEDS),
        grid(**web, sft_sets=tuple(s for s in SFT_SETS if s not in SEEDED))])
