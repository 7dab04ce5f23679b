"""Studies as grids of runs, written once at paper scale and mapped onto tiny scales.

A study config either names its runs at the top level (`scales`, `tokens`, `mixtures`,
`encoders`, `sft_sets`, `seeds`: one product) or holds `grids`, a tuple of such products, each with an
optional `name` that prefixes its run names and a `study` it belongs to (`experiments/paper.py`
gathers every study's grids into one config). Token budgets are one number per scale or a tuple
of them (the scale sweep's eight budgets).

The paper's studies are written with the paper's numbers. Under the `tiny` profile `miniature`
maps them: the five paper scales onto the five tiny ones in order, every token budget by the
same factor (so budgets keep their ratios: 3B / 30B becomes t3 / 75k tokens, 7B / 1T becomes
t4 / 2.5M), the public encoders (the runs' and the alignment references) onto the local
objectives that stand in for them, and the multimodal stages onto a budget that lets the whole
paper run on a 2-core CPU in hours.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from visual_priors.config import profiles, scales as scales_lib
from visual_priors.errors import BadValue

PAPER_TO_TINY = {"340M": "t1", "1B": "t2", "3B": "t3", "7B": "t4", "13B": "t5"}
# Tiny tokens per paper billion.
TINY_TOKENS_PER_BILLION = 2_500
# The paper's encoders and the local objective that stands in for each (config/stages.py),
# with the alignment references (profiles.ALIGNMENT_REFERENCES): the ImageNet-21k classifier by
# the supervised encoder, CLIP-H by the contrastive one.
PAPER_TO_LOCAL_ENCODERS = {"metaclip": "contrastive", "dinov2": "supervised", "mae_h": "mae",
                           "vit_l_in21k": "supervised", "clip_h": "contrastive"}
B = 10**9


@dataclasses.dataclass(frozen=True)
class Grid:
    """A product of runs: scales x token budgets x mixtures x seeds x encoders x SFT sets."""
    study: str
    name: str  # prefix of its run names ("" for a study's only grid)
    scales: tuple[str, ...]
    tokens: dict[str, tuple[int, ...]]  # scale -> its token budgets
    mixtures: tuple
    encoders: tuple[str, ...]
    sft_sets: tuple[str, ...]
    # Training seeds of each run's pre-training and adaptation: replicates of one condition.
    seeds: tuple[int, ...]


def grids(cfg: ml_collections.ConfigDict) -> list[Grid]:
    """The study's grids: `cfg.grids` when it has them (fields a grid leaves out come from the
    top level), else one grid of the top-level fields."""
    raw = list(cfg.get("grids") or ()) or [ml_collections.ConfigDict()]
    return [_grid(cfg, g) for g in raw]


def _grid(cfg, g) -> Grid:
    def pick(key, default=None):
        value = g.get(key)
        return value if value is not None else cfg.get(key, default)

    study, name = str(pick("study", "")), str(g.get("name") or "")
    where = f"study {study!r}" + (f", grid {name!r}" if name else "")
    scales = tuple(pick("scales", ()))
    if not scales:
        raise BadValue(f"{where} names no scales")
    for s in scales:
        scales_lib.get(s)  # unknown names fail with the valid ones
    tokens = pick("tokens", {})
    tokens = tokens.to_dict() if isinstance(tokens, ml_collections.ConfigDict) else dict(tokens)
    missing = [s for s in scales if s not in tokens]
    if missing:
        raise BadValue(f"{where} gives no token budget for scales {missing}")
    budgets = {}
    for s in scales:
        values = tokens[s] if isinstance(tokens[s], (list, tuple)) else (tokens[s],)
        budgets[s] = tuple(int(n) for n in values)
        if not budgets[s] or any(n < 0 for n in budgets[s]):
            raise BadValue(f"{where}: token budgets of scale {s} must be non-negative, got {list(values)}")
    mixes = tuple(pick("mixtures", ()))
    if not mixes:
        raise BadValue(f"{where} names no mixtures")
    seeds = replicate_seeds(pick("seeds"), int(cfg.seed), where)
    if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise BadValue(f"{where}: seeds must be distinct and non-negative, got {list(seeds)}")
    return Grid(study, name, scales, budgets, mixes, tuple(pick("encoders", ("contrastive",))),
                tuple(pick("sft_sets", ("full",))), seeds)


def replicate_seeds(value, seed: int, where: str) -> tuple[int, ...]:
    """Training seeds from a grid's `seeds`: a tuple of seeds, or a count n meaning the config's
    `seed` and the n - 1 after it (so `--set seed=7` replicates a study with other seeds);
    nothing is `seed` alone."""
    if isinstance(value, bool) or not (value is None or isinstance(value, (int, list, tuple))):
        raise BadValue(f"{where}: seeds must be a count or a tuple of seeds, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise BadValue(f"{where}: a count of seeds must be at least 1, got {value}")
        return tuple(range(seed, seed + value))
    return tuple(int(s) for s in value) or (seed,)


def grid(*, scales, tokens, mixtures, encoders=None, sft_sets=None, seeds=None, name: str = "",
         study: str | None = None) -> ml_collections.ConfigDict:
    """One grid; `tokens` is a budget (or tuple of budgets) for every scale, or a dict per scale;
    `seeds` (default: the config's `seed`; a count n: that seed and the n - 1 after it) repeats
    every run once per training seed."""
    if not isinstance(tokens, dict):
        tokens = {s: tokens for s in scales}
    g = ml_collections.ConfigDict({"name": name, "scales": tuple(scales),
                                   "tokens": {s: (tuple(v) if isinstance(v, (list, tuple)) else v)
                                              for s, v in tokens.items()},
                                   "mixtures": tuple(mixtures)})
    for key, value in (("encoders", encoders), ("sft_sets", sft_sets), ("seeds", seeds), ("study", study)):
        if value is not None:
            g[key] = tuple(value) if isinstance(value, (list, tuple)) else value
    return g


def in_miniature(arg: str | None) -> bool:
    """Whether a study file's profile argument (`experiments/x.py:<arg>`, none for the default)
    is the tiny profile, where studies may trade cells for seeds."""
    return (arg or "tiny") == "tiny"


def paper_study(arg: str | None, study: str, study_grids) -> ml_collections.ConfigDict:
    """A study of the paper: the profile's settings and the study's grids at paper scale,
    mapped onto tiny scales under the tiny profile."""
    cfg = profiles.get(arg or "tiny")
    cfg.study = study
    cfg.encoders = ("metaclip",)  # the paper's default encoder, MetaCLIP-B/16
    cfg.eval.alignment.encoders = profiles.ALIGNMENT_REFERENCES
    cfg.grids = tuple(study_grids)
    if cfg.profile == "tiny":
        miniature(cfg)
    return cfg


def miniature(cfg: ml_collections.ConfigDict) -> None:
    """Map a paper-scale study onto tiny scales, budgets and encoders, in place."""
    cfg.grids = tuple(_tiny_grid(g) for g in cfg.grids)
    cfg.encoders = tuple(PAPER_TO_LOCAL_ENCODERS.get(e, e) for e in cfg.encoders)
    cfg.eval.alignment.encoders = tuple(dict.fromkeys(PAPER_TO_LOCAL_ENCODERS.get(e, e)
                                                      for e in cfg.eval.alignment.encoders))
    # The multimodal stages of every run: the smallest budget measured to make an MLLM use the
    # image (docs/benchmarks.md, "The findings study"). On two 3B-equivalent runs, image minus
    # blind overall was -0.3 pp (mean of 45 runs) at 1,000 captions and 2,000 instructions,
    # +1.3 / -0.6 at 1,000 and 5,000, +0.4 / +0.9 at 3,000 and 2,000, +3.5 / +4.4 at 3,000 and
    # 5,000, and +8.7 / +5.8 at 3,000 and 10,000 (twice the instruction tuning again).
    cfg.align.examples = 3_000
    cfg.sft.examples = 5_000
    cfg.eval.questions_per_benchmark = 30
    cfg.eval.mle_per_bin = 30
    cfg.eval.language.n_per_task = 50
    cfg.eval.judge.questions_per_benchmark = 4


def _tiny_grid(g: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    out = ml_collections.ConfigDict(g.to_dict())
    out.scales = tuple(PAPER_TO_TINY[s] for s in g.scales)
    out.tokens = {PAPER_TO_TINY[s]: tuple(tiny_tokens(n) for n in (v if isinstance(v, (list, tuple)) else (v,)))
                  for s, v in g.tokens.items()}
    if g.get("encoders"):
        out.encoders = tuple(PAPER_TO_LOCAL_ENCODERS.get(e, e) for e in g.encoders)
    return out


def tiny_tokens(paper_tokens: int) -> int:
    return int(round(paper_tokens / B * TINY_TOKENS_PER_BILLION))
