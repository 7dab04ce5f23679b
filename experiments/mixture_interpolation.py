"""Mixture interpolation (the paper's Table 2): mix0 (language-favourable) to mix10, 3B on 50B tokens."""

from visual_priors.config.studies import B, grid, paper_study


def get_config(arg: str = "tiny"):
    return paper_study(arg, "mixture_interpolation", [grid(
        scales=("3B",), tokens=50 * B, mixtures=tuple(f"mix{i}" for i in range(11)))])
