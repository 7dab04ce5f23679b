"""The paper's studies in experiments/: their runs and LLMs, what they share, their miniature."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from visual_priors import cli
from visual_priors.config import loading, mixtures, studies
from visual_priors.suite import planner, spec

PAPER_DIR = Path(__file__).resolve().parents[2] / "shared" / "paper"
# DESIGN.md's table of studies: LLMs each study needs (encoder universality reuses the five
# reasoning-combination LLMs of the category sweep).
LLMS = {"scale_sweep": 50, "single_source": 16, "category_sweep": 52, "vision_grid": 30,
        "mixture_interpolation": 11, "encoders": 5, "sft_ablation": 1, "scale_up": 2}


def _load(name, profile):
    return loading.load(f"experiments/{name}.py:{profile}")


@pytest.mark.parametrize("profile", ["paper", "tiny"])
def test_plan_of_the_paper_counts_the_llms_of_every_study(profile, capsys):
    assert cli.main(["suite", "plan", "experiments/paper.py", "--profile", profile, "--format", "json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert {name: s["llms"] for name, s in p["studies"].items()} == LLMS
    # 167 LLMs named by the studies; the single-source and SFT-ablation web-crawl LLMs are the
    # scale sweep's 3B / 30B one (its first seed), and the encoder study's five are the category
    # sweep's. The findings' cells have three seeds: 15 of the scale sweep, 18 of the category sweep.
    assert p["llms"] == sum(LLMS.values()) - 2 - 5 and p["steps_by_kind"]["pretrain"] == p["llms"]
    assert p["runs"] == 50 + 16 + 52 + 30 + 11 + 15 + 5 + 4
    assert p["studies"]["encoders"]["runs"] == 15 and p["studies"]["scale_up"]["runs"] == 4
    for name in LLMS:  # each study alone plans the same LLMs it has inside the paper
        alone = planner.plan(_load(name, profile))
        assert alone["llms"] == LLMS[name] and alone["runs"] == p["studies"][name]["runs"]
    hours = p["device_hours_by_chip"]
    assert hours["h100"] == pytest.approx(p["train_flops"] / (989e12 * 0.4) / 3600)
    assert hours["tpu-v4"] > hours["tpu-v5p"] > hours["h100"]
    assert p["train_flops"] == pytest.approx(sum(p["flops_by_kind"].values()))


def test_paper_scale_plan_is_in_the_range_of_the_papers_compute():
    p = planner.plan(_load("paper", "paper"))
    # The paper spent 500,000 GPU-hours on everything; training alone at 40% MFU on H100s must
    # be a sizeable fraction of that, not orders of magnitude away.
    assert 5e4 < p["device_hours"] < 5e5
    assert p["flops_by_kind"]["pretrain"] > p["flops_by_kind"]["sft"] > p["flops_by_kind"]["align"]


@pytest.mark.parametrize("profile", ["paper", "tiny"])
def test_scale_sweep_and_single_source_share_the_web_crawl_llm(profile):
    cfg = _load("scale_sweep", profile)
    # The sweep's seeded cells: the replicate with the config's own seed is the shared LLM.
    sweep = {(r.scale, r.tokens): r for r in spec.expand(cfg)[0] if r.seed == cfg.seed}
    single = {r.mixture: r for r in spec.expand(_load("single_source", profile))[0]}
    scale = "3B" if profile == "paper" else "t3"
    tokens = 30 * studies.B if profile == "paper" else studies.tiny_tokens(30 * studies.B)
    shared = sweep[(scale, tokens)]
    assert shared.steps["pretrain"].hash == single["web_crawl"].steps["pretrain"].hash
    assert shared.steps["evaluate"].hash == single["web_crawl"].steps["evaluate"].hash
    others = {r.steps["pretrain"].hash for m, r in single.items() if m != "web_crawl"}
    assert shared.steps["pretrain"].hash not in others
    # Inside the paper they are one step under both studies' runs.
    runs = spec.expand(_load("paper", profile))[0]
    owners = [r.name for r in runs if r.steps["pretrain"].hash == shared.steps["pretrain"].hash]
    assert {o.split("/")[0] for o in owners} == {"scale_sweep", "single_source", "sft_ablation"}


def test_encoder_study_reuses_the_category_sweeps_reasoning_llms():
    sweep = _load("category_sweep", "tiny")
    # The sweep's reasoning-combination cells are seeded: the config's own seed is the shared one.
    cat = {r.steps["pretrain"].hash for r in spec.expand(sweep)[0]
           if r.mixture.startswith("reasoning_combination@") and r.seed == sweep.seed}
    enc_runs = spec.expand(_load("encoders", "tiny"))[0]
    assert {r.steps["pretrain"].hash for r in enc_runs} == cat and len(cat) == 5
    assert {r.encoder for r in enc_runs} == {"contrastive", "supervised", "mae"}
    # The contrastive runs, MetaCLIP's stand-in, are the category sweep's runs themselves.
    cat_eval = {r.steps["evaluate"].hash for r in spec.expand(_load("category_sweep", "tiny"))[0]}
    assert sum(r.steps["evaluate"].hash in cat_eval for r in enc_runs) == 5


def test_miniature_keeps_the_budget_ratios_and_maps_scales_in_order():
    def budgets(cfg) -> dict[str, list[int]]:  # over the sweep's grids (seeded cells and the rest)
        out = {}
        for g in studies.grids(cfg):
            for scale, values in g.tokens.items():
                out.setdefault(scale, set()).update(values)
        return {scale: sorted(values) for scale, values in out.items()}

    paper, tiny = budgets(_load("scale_sweep", "paper")), budgets(_load("scale_sweep", "tiny"))
    assert set(tiny) == {"t1", "t2", "t3", "t4", "t5"} and set(paper) == {"340M", "1B", "3B", "7B", "13B"}
    assert all(len(paper[s]) == len(tiny[studies.PAPER_TO_TINY[s]]) == 8 for s in paper)
    p, t = paper["3B"], tiny["t3"]
    assert p[0] == t[0] == 0 and len(p) == len(t) == 8
    assert [n / p[-1] for n in p] == pytest.approx([n / t[-1] for n in t])
    up = studies.grids(_load("scale_up", "tiny"))[0]
    assert up.tokens["t4"][0] / t[4] == pytest.approx(1000 / 30)  # 1T against the default 30B


@pytest.mark.skipif(not (PAPER_DIR / "table1_grid.csv").exists(), reason="paper tables not beside the clone")
def test_vision_grid_has_the_cells_of_table1():
    with open(PAPER_DIR / "table1_grid.csv") as f:
        cells = {(float(r["reasoning_pct"]), float(r["visual_pct"])) for r in csv.DictReader(f)}
    runs = spec.expand(_load("vision_grid", "paper"))[0]
    got = {(m.reasoning, m.visual) for m in (mixtures.parse(r.steps["pretrain"].fields["mixture"]) for r in runs)}
    assert got == cells and len(runs) == 30


def test_mixture_interpolation_runs_table2_at_3b_on_50b():
    runs = spec.expand(_load("mixture_interpolation", "paper"))[0]
    assert [r.mixture for r in runs] == [f"mix{i}" for i in range(11)]
    assert {(r.scale, r.tokens) for r in runs} == {("3B", 50 * studies.B)}


def test_imported_encoders_plan_without_paths_but_refuse_to_run(tmp_path, capsys):
    assert cli.main(["suite", "plan", "experiments/encoders.py:paper"]) == 0
    runs = spec.expand(_load("encoders", "paper"))[0]
    assert len({r.steps["evaluate"].input("features").input("encoder").hash for r in runs}) == 3
    assert cli.main(["suite", "run", "experiments/encoders.py:paper", "--root", str(tmp_path)]) == 2
    assert "has no checkpoint path" in capsys.readouterr().err
    assert not any(tmp_path.glob("*-*"))  # nothing started


def test_alignment_references_need_their_paths_before_anything_runs(tmp_path, capsys):
    # The runs' own encoder has weights, the alignment references (CLIP-H, ...) have none.
    weights = tmp_path / "metaclip"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"")
    root = tmp_path / "runs"
    assert cli.main(["suite", "run", "experiments/scale_up.py:paper", "--root", str(root),
                     "--set", f"imported_encoders.metaclip.path={weights}"]) == 2
    assert "imported encoder 'clip_h' has no checkpoint path" in capsys.readouterr().err
    assert not any(root.glob("*-*"))


def test_grids_name_their_runs_and_refuse_duplicates():
    cfg = studies.paper_study("tiny", "x", [
        studies.grid(scales=("3B",), tokens=(10 * studies.B, 30 * studies.B), mixtures=("mix0",)),
        studies.grid(name="more", scales=("1B",), tokens=5 * studies.B, mixtures=("mix6",),
                     sft_sets=("full", "reasoning0"))])
    names = [r.name for r in spec.expand(cfg)[0]]
    assert names == ["t3-25k-mix0", "t3-75k-mix0", "more/t2-mix6-full", "more/t2-mix6-reasoning0"]
    twice = studies.paper_study("tiny", "x", [studies.grid(scales=("3B",), tokens=30 * studies.B,
                                                           mixtures=("mix0",))] * 2)
    with pytest.raises(ValueError, match="two runs named 't3-mix0'"):
        spec.expand(twice)
    with pytest.raises(ValueError, match="no token budget for scales"):
        studies.grids(studies.paper_study("tiny", "x", [studies.grid(scales=("3B",), tokens={"1B": 1},
                                                                     mixtures=("mix0",))]))


def test_seeds_repeat_each_run_and_the_configs_own_seed_shares_its_steps():
    base = loading.load("experiments/quickstart.py")
    seeded = loading.load("experiments/quickstart.py", [f"seeds=({base.seed},1,2)"])
    base_runs, base_steps = spec.expand(base)
    runs, steps = spec.expand(seeded)
    assert len(runs) == 3 * len(base_runs)
    by_name = {r.name: r for r in runs}
    for run in base_runs:
        replicates = [by_name[f"{run.name}-s{s}"] for s in (base.seed, 1, 2)]
        assert {r.condition for r in replicates} == {run.name} and [r.seed for r in replicates] == [base.seed, 1, 2]
        # The config's own seed is the unseeded run, step for step.
        assert replicates[0].steps["evaluate"].hash == run.steps["evaluate"].hash
        pretrains = [r.steps["pretrain"] for r in replicates]
        assert len({p.hash for p in pretrains}) == 3 and [p.unit.seed for p in pretrains] == [base.seed, 1, 2]
        assert [r.steps["sft"].unit.seed for r in replicates] == [base.seed, 1, 2]
        # The frozen encoder's features are shared by every seed.
        assert len({r.steps["evaluate"].input("features").hash for r in replicates}) == 1
    assert {s.name for s in base_steps} <= {s.name for s in steps}


def test_a_count_of_seeds_starts_at_the_configs_seed():
    runs = {r.name: r for r in spec.expand(_load("scale_sweep", "tiny"))[0]}
    other = {r.name: r for r in spec.expand(loading.load("experiments/scale_sweep.py:tiny", ["seed=7"]))[0]}
    seeded = sorted(n for n in runs if "-s" in n)
    assert len(seeded) == 15 and {n.rsplit("-s", 1)[1] for n in seeded} == {"42", "43", "44"}
    assert {n.rsplit("-s", 1)[1] for n in other if "-s" in n} == {"7", "8", "9"}
    assert [other[n.replace("-s42", "-s7")].steps["sft"].unit.seed for n in seeded if n.endswith("-s42")] == [7] * 5
    for bad, why in ((0, "at least 1"), ("3", "a count or a tuple")):
        with pytest.raises(ValueError, match=why):
            studies.replicate_seeds(bad, 42, "study 'x'")


def test_repeated_or_negative_seeds_are_refused():
    with pytest.raises(ValueError, match="seeds must be distinct and non-negative"):
        spec.expand(loading.load("experiments/quickstart.py", ["seeds=(1,1)"]))
