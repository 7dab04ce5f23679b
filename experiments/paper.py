"""The whole paper: every study, each LLM, encoder and run that several studies share made once.

    visual-priors suite plan experiments/paper.py:paper           # runs, steps, FLOPs, device-hours
    visual-priors suite run  experiments/paper.py --profile tiny --workers 2   # the paper in miniature

Runs are named `<study>/<run>`, and each study's steps are also listed under the study's own
name (`visual-priors suite status --study category_sweep`).
"""

from pathlib import Path

from visual_priors.config import loading
from visual_priors.config.studies import paper_study

STUDIES = ("scale_sweep", "single_source", "category_sweep", "vision_grid", "mixture_interpolation",
           "encoders", "sft_ablation", "scale_up")


def get_config(arg: str = "tiny"):
    grids = []
    cfg = None
    for name in STUDIES:
        study = loading.load(f"{Path(__file__).with_name(name + '.py')}:{arg or 'tiny'}")
        for g in study.grids:
            g.study, g.name = study.study, study.study
            grids.append(g)
        settings = _settings(study)
        if cfg is None:
            cfg = settings
        elif settings != cfg:
            raise ValueError(f"study {name} departs from the others in settings besides its grids; "
                             "the paper composes studies that share everything else")
    out = paper_study(arg, "paper", [])
    out.grids = tuple(grids)  # already mapped to the profile by each study
    return out


def _settings(study) -> dict:
    d = study.to_dict()
    d.pop("grids"), d.pop("study")
    return d
