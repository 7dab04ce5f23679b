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
# DESIGN.md's table of studies: LLMs each study needs, seed replicates included (encoder
# universality reuses the reasoning-combination LLMs of the category sweep, its seeded shares'
# three seeds too; the SFT ablation the scale sweep's seeded 3B / 30B web-crawl LLMs). In
# miniature the scale sweep's two largest sizes take three budgets instead of eight, the
# category sweep's single labels three shares instead of five, and the single sources, the
# scale-up LLMs and the ten vision-grid cells three seeds each.
LLMS = {"scale_sweep": 50, "single_source": 16, "category_sweep": 52, "vision_grid": 30,
        "mixture_interpolation": 11, "encoders": 11, "sft_ablation": 3, "scale_up": 2}
TINY_LLMS = {**LLMS, "scale_sweep": 40, "single_source": 48, "category_sweep": 40, "scale_up": 6}
RUNS = {"scale_sweep": 50, "single_source": 16, "category_sweep": 52, "vision_grid": 30,
        "mixture_interpolation": 11, "encoders": 33, "sft_ablation": 11, "scale_up": 4}
TINY_RUNS = {**RUNS, "scale_sweep": 40, "single_source": 48, "category_sweep": 40, "scale_up": 12}


def _load(name, profile):
    return loading.load(f"experiments/{name}.py:{profile}")


@pytest.mark.parametrize("profile", ["paper", "tiny"])
def test_plan_of_the_paper_counts_the_llms_of_every_study(profile, capsys):
    assert cli.main(["suite", "plan", "experiments/paper.py", "--profile", profile, "--format", "json"]) == 0
    p = json.loads(capsys.readouterr().out)
    llms, runs = (LLMS, RUNS) if profile == "paper" else (TINY_LLMS, TINY_RUNS)
    assert {name: s["llms"] for name, s in p["studies"].items()} == llms
    assert {name: s["runs"] for name, s in p["studies"].items()} == runs
    # The single-source web-crawl LLM is the scale sweep's 3B / 30B one (in miniature its three
    # seeds), the SFT ablation's three are that cell's seeded replicates, and the encoder study's
    # eleven are the category sweep's.
    shared_web = 1 if profile == "paper" else 3
    assert p["llms"] == sum(llms.values()) - shared_web - 3 - 11 and p["steps_by_kind"]["pretrain"] == p["llms"]
    assert p["runs"] == sum(runs.values())
    for name in llms:  # each study alone plans the same LLMs it has inside the paper
        alone = planner.plan(_load(name, profile))
        assert alone["llms"] == llms[name] and alone["runs"] == p["studies"][name]["runs"]
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
    single = {r.mixture: r for r in spec.expand(_load("single_source", profile))[0] if r.seed == cfg.seed}
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
    # Every reasoning-combination LLM of the sweep, its seeded shares' replicates too.
    cat = {r.steps["pretrain"].hash for r in spec.expand(_load("category_sweep", "tiny"))[0]
           if r.mixture.startswith("reasoning_combination@")}
    enc_runs = spec.expand(_load("encoders", "tiny"))[0]
    assert {r.steps["pretrain"].hash for r in enc_runs} == cat and len(cat) == 3 * 3 + 2
    assert {r.encoder for r in enc_runs} == {"contrastive", "supervised", "mae"}
    # The contrastive runs, MetaCLIP's stand-in, are the category sweep's runs themselves.
    cat_eval = {r.steps["evaluate"].hash for r in spec.expand(_load("category_sweep", "tiny"))[0]}
    assert sum(r.steps["evaluate"].hash in cat_eval for r in enc_runs) == 11


def test_miniature_keeps_the_budget_ratios_and_maps_scales_in_order():
    def budgets(cfg) -> dict[str, list[int]]:  # over the sweep's grids (seeded cells and the rest)
        out = {}
        for g in studies.grids(cfg):
            for scale, values in g.tokens.items():
                out.setdefault(scale, set()).update(values)
        return {scale: sorted(values) for scale, values in out.items()}

    paper, tiny = budgets(_load("scale_sweep", "paper")), budgets(_load("scale_sweep", "tiny"))
    assert set(tiny) == {"t1", "t2", "t3", "t4", "t5"} and set(paper) == {"340M", "1B", "3B", "7B", "13B"}
    assert all(len(paper[s]) == 8 for s in paper)
    # In miniature the two largest sizes keep three of the budgets, the 3B seeded cells' ones.
    assert [len(tiny[s]) for s in ("t1", "t2", "t3", "t4", "t5")] == [8, 8, 8, 3, 3]
    assert tiny["t4"] == tiny["t5"] == [studies.tiny_tokens(n * studies.B) for n in (10, 30, 100)]
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
    # The miniature's ten cells are published ones, with three seeds each.
    tiny = spec.expand(_load("vision_grid", "tiny"))[0]
    tiny_cells = {(m.reasoning, m.visual) for m in (mixtures.parse(r.steps["pretrain"].fields["mixture"]) for r in tiny)}
    assert tiny_cells < cells and len(tiny_cells) == 10 and len(tiny) == 30


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


def test_the_cells_the_findings_compare_have_three_seeds_in_the_paper():
    runs = spec.expand(_load("paper", "tiny"))[0]
    seeds = {}
    for r in runs:
        seeds.setdefault((r.study, r.condition), set()).add(r.seed)

    def seeds_of(study, match) -> list[int]:
        found = [len(s) for (st, cond), s in seeds.items() if st == study and match(cond)]
        assert found, f"no {study} cell matches"
        return found

    # F1 / F9: the scale sweep's 340M, 1B, 3B at 30B and 3B at 10B and 100B (t1..t3 at 75k...).
    assert sorted(seeds_of("scale_sweep", lambda c: True)).count(3) == 5
    # F2 / F3 and F6: the two combinations, and the reasoning one under each encoder, at 0, 25, 100%.
    for share in (0, 25, 100):
        for combo in ("reasoning_combination", "visual_combination"):
            assert seeds_of("category_sweep", lambda c: c.endswith(f"{combo}@{share}")) == [3]
        assert seeds_of("encoders", lambda c: f"reasoning_combination@{share}-" in c) == [3, 3, 3]
    for share in (50, 75):
        assert seeds_of("encoders", lambda c: f"reasoning_combination@{share}-" in c) == [1, 1, 1]
    # F7: all SFT data against none of the perception or of the reasoning data.
    for sft_set in ("full", "perception0", "reasoning0"):
        assert seeds_of("sft_ablation", lambda c: c.endswith(f"-{sft_set}")) == [3]
    assert seeds_of("sft_ablation", lambda c: c.endswith("50")) == [1, 1]
    # F5: every cell of the grid; F10: every source.
    assert seeds_of("vision_grid", lambda c: True) == [3] * 10
    assert seeds_of("single_source", lambda c: True) == [3] * 16
    # F8: both mixtures, each SFT set, at the largest scale.
    assert seeds_of("scale_up", lambda c: True) == [3] * 4


def test_every_step_of_the_findings_study_is_a_step_of_the_paper():
    findings = {s.hash for s in spec.expand(_load("findings", "tiny"))[1]}
    paper = {s.hash for s in spec.expand(_load("paper", "tiny"))[1]}
    assert len(findings) == 283 and findings < paper
