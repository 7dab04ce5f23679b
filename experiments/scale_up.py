"""Scale-up (the paper's Table 3 and Table 6): 7B LLMs on 1T tokens, mix0 against mix6, each
instruction-tuned as usual and with blind tuning first (appendix K).

In miniature both LLMs are trained with three seeds (the config's and the two after it), which
F8's differences between mixtures and SFT sets need at this noise; at paper scale one each, as
published."""

from visual_priors.config.studies import B, grid, in_miniature, paper_study

TINY_SEEDS = 3


def get_config(arg: str = "tiny"):
    return paper_study(arg, "scale_up", [grid(scales=("7B",), tokens=1000 * B, mixtures=("mix0", "mix6"),
                                              sft_sets=("full", "full+blind"),
                                              seeds=TINY_SEEDS if in_miniature(arg) else None)])
