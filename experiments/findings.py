"""The smallest study that decides findings F1-F4 and F9 (visual_priors/analysis/findings.py).

Its runs are the seeded grids of the paper's own studies, under the same settings, so every
step it makes is a step of `experiments/paper.py` too:

- F1 scale and F9 alignment: web-crawl LLMs at 340M / 1B / 3B with 30B tokens, and the 3B one
  at 10B and 100B tokens as well (the scale sweep's seeded cells, Fig. 2);
- F2 reasoning prior, F3 perception prior: the reasoning and the visual combination at
  0, 25 and 100% of 30B tokens at 3B (the category sweep's seeded cells, Fig. 4: F2's slope,
  F3's gain in the first quarter against the rest);
- F4 structure: the Spearman correlations over all of its 3B runs (Fig. 5).

Each cell is trained with three seeds, the config's `seed` and the two after it: `--set seed=7
--set world.seed=1` repeats the study with other training seeds in another world.

    visual-priors suite plan experiments/findings.py
    visual-priors suite run  experiments/findings.py --workers 2 --pack 8
    visual-priors analyze    experiments/findings.py     # the verdicts under "findings"
"""

from pathlib import Path

from visual_priors.config import loading
from visual_priors.config.studies import paper_study

STUDIES = ("scale_sweep", "category_sweep")


def get_config(arg: str = "tiny"):
    grids = []
    for name in STUDIES:
        study = loading.load(f"{Path(__file__).with_name(name + '.py')}:{arg or 'tiny'}")
        for g in study.grids:
            if g.get("seeds"):  # the cells the findings compare
                g.study, g.name = study.study, study.study
                grids.append(g)
    out = paper_study(arg, "findings", [])
    out.grids = tuple(grids)  # already mapped to the profile by each study
    return out
