"""The paper's sections of the report on a synthetic paper with known ground truth
(tests/analysis_fixture.py), and their notes on a study that supports none of them."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import analysis_fixture as fx
from test_analysis import study_2x3
from visual_priors.analysis import report, report_paper, scaling

PAPER_CSV = Path(__file__).resolve().parents[2] / "shared" / "paper" / "fig5_spearman.csv"
SECTION_PNGS = {"scaling": "scaling_law.png", "proportions": "proportion_sweeps.png",
                "grid": "grid.png", "tradeoff": "tradeoff.png", "spearman": "spearman.png",
                "alignment": "alignment.png"}


def _png_ok(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


@pytest.fixture(scope="module")
def paper_report(tmp_path_factory):
    """The whole synthetic paper in one report: (html, analysis.json, folder)."""
    out = tmp_path_factory.mktemp("paper")
    path = report.write_report(fx.paper_results(), out, study="paper", n_boot=20,
                               paper_spearman=PAPER_CSV)
    return path.read_text(), json.loads((out / "analysis.json").read_text()), out


def test_every_section_with_its_png(paper_report):
    page, analysis, out = paper_report
    for key, png in SECTION_PNGS.items():
        assert f'<h2 id="{key}">' in page and f'href="#{key}"' in page
        assert _png_ok(out / png) and f'src="{png}"' in page, key
        assert "missing" not in analysis["sections"][key]
    # Three studies: their runs, comparisons and beats-chance tables apart.
    for study in ("scale_sweep", "vision_grid", "category_sweep"):
        assert f"Study <b>{study}</b>" in page and f"<h3>Study {study}</h3>" in page
    assert _png_ok(out / "mixtures_scale_sweep.png")
    assert not (out / "mixtures_vision_grid.png").exists()  # 30 mixtures: tables only
    # Only the sweep's series span several compute values, so only they get curves.
    fits = json.loads((out / "fits.json").read_text())["fits"]
    assert {f["mixture"] for f in fits} == {f"source:{s}" for s in fx.SWEEP_E}
    assert "<details" in page  # long tables collapsed


def test_findings_open_the_page(paper_report):
    page, _, out = paper_report
    doc = json.loads((out / "findings.json").read_text())
    rows = {r["id"]: r for r in doc["findings"]}
    assert list(rows) == [f"F{i}" for i in range(1, 11)] and doc["level"] == 0.95
    # The fixture's scale sweep follows a loss law with E > 0 and rising accuracies; its
    # proportion sweep is of code_reasoning, not of the reasoning combination F2 needs.
    assert rows["F1"]["verdict"] == "reproduced" and rows["F2"]["verdict"] == "not run"
    assert rows["F4"]["paper"]["value"] == pytest.approx(0.345)
    assert page.index('<h2 id="findings">') < page.index("<nav>") < page.index('<h2 id="runs">')
    assert '<span class="verdict v-reproduced">' in page and '<span class="verdict v-not-run">' in page
    assert 'href="#findings"' in page and 'href="findings.json"' in page


def test_chinchilla_exponents_near_the_fixture_law(paper_report):
    page, analysis, _ = paper_report
    law_a = fx.LAW["beta"] / (fx.LAW["alpha"] + fx.LAW["beta"])
    fits = analysis["sections"]["scaling"]["fits"]
    assert set(fits) == {f"source:{s}" for s in fx.SWEEP_E}
    for mix, fit in fits.items():
        assert fit["alpha"] == pytest.approx(fx.LAW["alpha"], abs=0.03), mix
        assert fit["beta"] == pytest.approx(fx.LAW["beta"], abs=0.03), mix
        assert fit["n_opt_exponent"] == pytest.approx(law_a, abs=0.03), mix
        assert fit["d_opt_exponent"] == pytest.approx(1 - law_a, abs=0.03), mix
        lo, hi = fit["intervals"]["n_opt_exponent"]
        assert lo <= fit["n_opt_exponent"] <= hi and fit["n_boot"] == report_paper.CHINCHILLA_N_BOOT
        # Printed unrounded.
        assert f"<td>{fit['n_opt_exponent']!r}</td>" in page and f"<td>{fit['alpha']!r}</td>" in page
    # E alone is poorly pinned on 12 points, but the fitted losses keep the sources' order.
    loss = {m: f["E"] + f["A"] / 2e6 ** f["alpha"] + f["B"] / 4e5 ** f["beta"] for m, f in fits.items()}
    assert loss["source:code"] < loss["source:web_crawl"] < loss["source:encyclopedia"]
    assert loss["source:web_crawl"] == pytest.approx(fx.chinchilla_loss(2e6, 4e5), rel=0.01)


def test_screened_starts_reach_the_full_grid_optimum():
    runs = [r for r in fx.paper_results() if r["mixture"] == "source:web_crawl"]
    pts = report_paper.loss_points(runs)
    full = scaling.fit_chinchilla(*pts.T, n_boot=0)  # all 243 coarse-grid starts
    screened = scaling.fit_chinchilla(*pts.T, grid=report_paper.screened_starts(pts), n_boot=0)
    assert len(report_paper.screened_starts(pts)) == report_paper.SCREENED_STARTS
    assert screened.objective == pytest.approx(full.objective, rel=1e-6)
    for k in scaling.PARAM_NAMES:
        assert getattr(screened, k) == pytest.approx(getattr(full, k), rel=1e-4)


def test_extrapolation_and_decision_accuracy(paper_report):
    page, analysis, _ = paper_report
    sec = analysis["sections"]["scaling"]
    ex = sec["extrapolation"]
    assert ex["target"]["label"] == "t4" and "Extrapolation to t4" in page
    preds = ex["predictions"]
    methods = {(p["mixture"], p["method"]) for p in preds}
    assert methods == {(f"source:{s}", m) for s in fx.SWEEP_E for m in ("curve:flops", "two-step")}
    for p in preds:
        assert p["lo"] <= p["value"] <= p["hi"] or p["value"] is None
    # Every scale orders the three sources alike in the fixture: decision accuracy 1.
    observed = [d for d in sec["decision"]["decision_accuracy"] if not d["predicted"]]
    assert observed and all(d["accuracy"] == 1.0 and d["n_pairs"] == 3 for d in observed)


def test_grid_optimum_near_60_15(paper_report):
    page, analysis, _ = paper_report
    grid = analysis["sections"]["grid"]
    assert len(grid["cells"]) == len(fx.GRID_CELLS)
    q, gp = grid["quadratic"], grid["Gaussian process"]
    assert abs(q["optimum"]["reasoning_pct"] - 60) <= 5 and abs(q["optimum"]["visual_pct"] - 15) <= 2
    assert abs(gp["optimum"]["reasoning_pct"] - 60) <= 8 and abs(gp["optimum"]["visual_pct"] - 15) <= 3
    (rlo, rhi), (vlo, vhi) = q["location_interval"]["reasoning_pct"], q["location_interval"]["visual_pct"]
    assert rlo <= 60 <= rhi and vlo <= 15 <= vhi
    assert f"<td>{q['optimum']['reasoning_pct']!r}</td>" in page
    # The cell table is Table 1's layout: a row per reasoning share, a column per visual share.
    assert '<th class="l">reasoning % \\ visual %</th>' in page


def test_tradeoff_front_matches_a_brute_force_check(paper_report):
    page, analysis, _ = paper_report
    t = analysis["sections"]["tradeoff"]["mean_rank"]
    runs = [r for r in fx.paper_results() if r["scale"] == "t3" and r["tokens"] == 75_000]
    assert sorted(t["runs"]) == sorted(r["run"] for r in runs)
    # Better = higher text accuracy, lower perplexity, higher VQA.
    g = {r["run"]: np.array([r["language"]["avg_acc"], -r["language"]["perplexity"]["mean"],
                             r["overall"]]) for r in runs}
    front = {a for a in g if not any(np.all(g[b] >= g[a]) and np.any(g[b] > g[a]) for b in g)}
    assert set(t["pareto_front"]) == front
    assert "Runs at scale t3 and 75K tokens only (35 of 71)" in page


def test_proportions_and_alignment(paper_report):
    page, analysis, _ = paper_report
    sweeps = analysis["sections"]["proportions"]["sweeps"]
    assert list(sweeps) == ["code_reasoning"]
    assert [p["percent"] for p in sweeps["code_reasoning"]] == [0, 25, 50, 75, 100]
    points = analysis["sections"]["alignment"]["points"]
    by_run = {r["run"]: r["alignment"]["score"] for r in fx.paper_results() if "alignment" in r}
    assert {p["run"]: p["score"] for p in points} == by_run
    assert sorted(p["reasoning_pct"] for p in points) == [0, 25, 50, 75, 100]
    assert "<th>mutual_knn</th>" in page and "<th>cknna</th>" in page  # PRH's metric table
    assert "No run reports the colour probe" in page


def test_sweeps_with_another_encoder_are_their_own(tmp_path):
    # The encoder study reuses the reasoning sweep's LLMs with other encoders: same text
    # mixture and scale, so one line per (scale, encoder), never mixed.
    sweep = [r for r in fx.paper_results() if str(r["text_mixture"]).startswith("category:")]
    other = [{**r, "run": f"{r['run']}-mae", "encoder": "mae"} for r in sweep]
    data = report_paper.proportion_section(sweep + other, tmp_path).data["sweeps"]
    assert list(data) == ["code_reasoning", "code_reasoning (encoder mae)"]
    for name, enc in (("code_reasoning", "contrastive"), ("code_reasoning (encoder mae)", "mae")):
        assert [p["percent"] for p in data[name]] == [0, 25, 50, 75, 100]
        assert {p["encoder"] for p in data[name]} == {enc}
    assert _png_ok(tmp_path / "proportion_sweeps.png")


def test_spearman_beside_the_papers_matrix(paper_report):
    if not PAPER_CSV.is_file():
        pytest.skip("the paper's fig5_spearman.csv is not on this machine")
    page, analysis, _ = paper_report
    sec = analysis["sections"]["spearman"]
    assert sec["scale"] == "t3" and sec["paper"]["csv"] == str(PAPER_CSV)
    assert sec["paper"]["paper"][0][2] == pytest.approx(0.37)  # General - OCR & Chart
    assert "<th>paper rho</th>" in page and "paper's split" in page
    assert "not available here" not in page


def test_spearman_without_the_papers_matrix(tmp_path):
    runs = [r for r in fx.paper_results() if r["scale"] == "t3"]
    for csv in (tmp_path / "absent.csv", None):
        sec = report_paper.spearman_section(runs, tmp_path, paper_csv=csv)
        assert "not available here: ours alone" in sec.html and sec.data["paper"] is None
        assert _png_ok(tmp_path / "spearman.png")
    # The matrix against scipy directly.
    cats = list(fx.CATEGORIES)
    rho = stats.spearmanr(np.array([[r["categories"][c] for c in cats] for r in runs])).statistic
    np.testing.assert_allclose(sec.data["result"]["rho"], rho, atol=1e-12)
    # Too few runs: a note, no figure.
    few = report_paper.spearman_section(runs[:3], tmp_path / "few", paper_csv=None)
    assert not few.shown and "needs ≥ 4 runs" in few.html


def test_colour_probe_table_tolerates_missing_keys(tmp_path):
    runs = [r for r in fx.paper_results() if "alignment" in r][:2]
    runs[0]["alignment"]["colour"] = {"language_error": 0.61, "vision_error": 0.42,
                                      "language_shuffled": {"mean": 0.97, "std": 0.05, "p_value": 0.01},
                                      "vision_shuffled": 0.99}
    runs[1]["alignment"]["colour"] = {"language_error": 0.7}
    sec = report_paper.alignment_section(runs, tmp_path)
    assert "Colour probe" in sec.html
    assert "<td>0.97 ± 0.05 (p 0.01)</td>" in sec.html and "<td>0.99</td>" in sec.html
    assert sec.data["colour"][runs[1]["run"]] == {"language_error": 0.7}


def test_quickstart_like_study_renders_notes_instead_of_figures(tmp_path):
    results = study_2x3()
    text = html.unescape(report.write_report(results, tmp_path, study="synthetic-2x3", n_boot=10,
                                             paper_spearman=None).read_text())
    for key, png in SECTION_PNGS.items():
        assert f'<h2 id="{key}">' in text and not (tmp_path / png).exists(), key
    for note in ("No loss-surface fit", "No run's text mixture is a category sweep",
                 "No run's text mixture is a grid cell", "report language metrics",
                 "The Spearman structure needs", "No run reports an alignment score"):
        assert note in text
    assert text.count('class="missing"') >= 6
    # Two mixtures at three scales still support an extrapolation and decision accuracy.
    analysis = json.loads((tmp_path / "analysis.json").read_text())["sections"]["scaling"]
    assert {p["method"] for p in analysis["extrapolation"]["predictions"]} == {"curve:flops"}
    assert {d["scale"] for d in analysis["decision"]["decision_accuracy"]} == {"t1", "t2"}
    # The same numbers without the page (what `visual-priors analyze` prints).
    numbers = report.analysis_numbers(results, study="synthetic-2x3", n_boot=10, paper_spearman=None)
    assert numbers == {"fits": json.loads((tmp_path / "fits.json").read_text()),
                       "analysis": json.loads((tmp_path / "analysis.json").read_text()),
                       "findings": json.loads((tmp_path / "findings.json").read_text())["findings"]}
