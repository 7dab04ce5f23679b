"""Scale-up (the paper's Table 3 and Table 6): 7B LLMs on 1T tokens, mix0 against mix6, each
instruction-tuned as usual and with blind tuning first (appendix K)."""

from visual_priors.config.studies import B, grid, paper_study


def get_config(arg: str = "tiny"):
    return paper_study(arg, "scale_up", [grid(scales=("7B",), tokens=1000 * B, mixtures=("mix0", "mix6"),
                                              sft_sets=("full", "full+blind"))])
