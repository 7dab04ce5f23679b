"""Scale sweep (the paper's Fig. 2): five model sizes x eight token budgets, web-crawl text only.

A budget of 0 tokens is a randomly initialised LLM that only sees the multimodal stages. Under
`tiny` the sizes are t1..t5 and the budgets keep their ratios (0..250k tokens):

    visual-priors suite plan experiments/scale_sweep.py:paper
    visual-priors suite run  experiments/scale_sweep.py
"""

from visual_priors.config.studies import B, grid, paper_study

SCALES = ("340M", "1B", "3B", "7B", "13B")
BUDGETS = tuple(n * B for n in (0, 5, 10, 20, 30, 50, 70, 100))


def get_config(arg: str = "tiny"):
    return paper_study(arg, "scale_sweep", [grid(scales=SCALES, tokens=BUDGETS, mixtures=("source:web_crawl",))])
