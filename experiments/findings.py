"""The smallest study that decides findings F1-F4 and F9 (visual_priors/analysis/findings.py).

Its runs are cells of the paper's own studies, under the same settings, so every step it makes
is a step of `experiments/paper.py` too, and each cell is trained with three seeds:

- F1 scale and F9 alignment: web-crawl LLMs at 340M / 1B / 3B with 30B tokens, and the 3B one
  at 10B and 100B tokens as well (the scale sweep's cells, Fig. 2);
- F2 reasoning prior, F3 perception prior: the reasoning and the visual combination at
  0/25/50/75/100% of 30B tokens at 3B (the category sweep's cells, Fig. 4);
- F4 structure: the Spearman correlations over all of its 3B runs (Fig. 5).

    visual-priors suite plan experiments/findings.py
    visual-priors suite run  experiments/findings.py --workers 2 --pack 8
    visual-priors analyze    experiments/findings.py     # findings under "findings"
"""

from visual_priors.config.studies import B, grid, paper_study

# The config's own seed (profiles: 42) and two more: the first replicate is the paper study's run.
SEEDS = (42, 43, 44)
PERCENTS = (0, 25, 50, 75, 100)


def get_config(arg: str = "tiny"):
    scale = grid(scales=("340M", "1B", "3B"),
                 tokens={"340M": 30 * B, "1B": 30 * B, "3B": (10 * B, 30 * B, 100 * B)},
                 mixtures=("source:web_crawl",), seeds=SEEDS, name="scale_sweep", study="scale_sweep")
    combinations = tuple(f"category:{label}={p}" for label in ("reasoning_combination", "visual_combination")
                         for p in PERCENTS)
    categories = grid(scales=("3B",), tokens=30 * B, mixtures=combinations, seeds=SEEDS,
                      name="category_sweep", study="category_sweep")
    return paper_study(arg, "findings", [scale, categories])
