"""Scale sweep (the paper's Fig. 2): five model sizes x eight token budgets, web-crawl text only.

A budget of 0 tokens is a randomly initialised LLM that only sees the multimodal stages. Under
`tiny` the sizes are t1..t5 and the budgets keep their ratios (0..250k tokens). The cells the
findings compare (F1 scale, F9 alignment: 340M / 1B / 3B at 30B tokens, and 3B at 10B and
100B) are trained with three seeds (`SEEDS`), the rest with the config's seed. In miniature the
two largest sizes take three budgets (`TINY_LARGE_BUDGETS`, the 3B seeded cells' 10B, 30B and
100B) instead of eight: their multimodal stages cost the same whatever the budget (a t5 run's
several times a t3 run's), and three budgets across a decade still put both sizes in the loss fit:

    visual-priors suite plan experiments/scale_sweep.py:paper
    visual-priors suite run  experiments/scale_sweep.py
"""

from visual_priors.config.studies import B, grid, in_miniature, paper_study

SCALES = ("340M", "1B", "3B", "7B", "13B")
BUDGETS = tuple(n * B for n in (0, 5, 10, 20, 30, 50, 70, 100))
# Three replicates: the config's own seed (profiles: 42) and the two after it, so that
# `--set seed=7` repeats the study with other training seeds.
SEEDS = 3
SEEDED = {"340M": (30 * B,), "1B": (30 * B,), "3B": (10 * B, 30 * B, 100 * B)}
TINY_LARGE_BUDGETS = {"7B": (10 * B, 30 * B, 100 * B), "13B": (10 * B, 30 * B, 100 * B)}


def get_config(arg: str = "tiny"):
    budgets = {s: BUDGETS for s in SCALES}
    if in_miniature(arg):
        budgets.update(TINY_LARGE_BUDGETS)
    rest = {s: tuple(n for n in budgets[s] if n not in SEEDED.get(s, ())) for s in SCALES}
    return paper_study(arg, "scale_sweep", [
        grid(scales=tuple(SEEDED), tokens=SEEDED, mixtures=("source:web_crawl",), seeds=SEEDS),
        grid(scales=SCALES, tokens=rest, mixtures=("source:web_crawl",))])
