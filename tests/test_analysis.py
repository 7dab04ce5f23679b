"""Curve fits, bootstrap bands, standard errors and the HTML report on synthetic studies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from visual_priors.analysis import curves, plots, report

BENCH = {
    "general": ["attribute", "perception", "scene", "count"],
    "knowledge": ["fact", "science", "use", "habitat"],
    "ocr_chart": ["glyph", "chart", "table"],
    "vision_centric": ["depth", "relation", "size", "position", "compare"],
}
SCALES = {"t1": 60_000, "t2": 500_000, "t3": 2_000_000}
# Per mixture and category: true (a, b) of the curve in log10 FLOPs.
TRUE = {
    "mix0": {"general": (-6.0, 0.5), "knowledge": (-7.5, 0.55), "ocr_chart": (-9.0, 0.6),
             "vision_centric": (-6.5, 0.45)},
    "mix6": {"general": (-6.2, 0.52), "knowledge": (-7.0, 0.55), "ocr_chart": (-9.0, 0.6),
             "vision_centric": (-6.0, 0.48)},
}


def make_run(scale: str, mixture: str, rng: np.random.Generator, *, tokens: int = 3_000_000,
             name: str | None = None, blind: bool = True, mle: bool = True) -> dict:
    params = SCALES[scale]
    flops = 6.0 * params * tokens
    chance = 0.25
    bench, bcat, nq = {}, {}, {}
    for cat, names in BENCH.items():
        a, b = TRUE[mixture][cat]
        mean = float(curves.curve(flops, a, b, chance))
        for n in names:
            bench[n] = float(np.clip(mean + rng.normal(0, 0.01), 0, 1))
            bcat[n] = cat
            nq[n] = 200
    cats = {c: float(np.mean([bench[n] for n in names])) for c, names in BENCH.items()}
    run = {
        "run": name or f"{scale}-{mixture}", "study": "synthetic", "scale": scale,
        "mixture": mixture, "params": params, "tokens": tokens, "flops": flops,
        "benchmarks": bench, "categories": cats, "benchmark_category": bcat,
        "overall": float(np.mean(list(bench.values()))), "chance": chance,
        "perplexity": 40.0 / (1 + np.log10(params)), "final_loss": 3.0, "n_questions": nq,
    }
    if blind:
        run["blind"] = {c: chance + 0.3 * (v - chance) for c, v in cats.items()}
    if mle:
        base = cats["general"]
        run["mle"] = {"0-30": base - 0.05, "30-60": base, "60-100": base + 0.03,
                      "overall": base - 0.01}
    return run


def study_2x3(seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [make_run(s, m, rng) for m in TRUE for s in SCALES]


# ---------------------------------------------------------------------------------------------
# Fits


def synthetic_points(a, b, chance, n=10, noise=0.004, seed=0):
    rng = np.random.default_rng(seed)
    flops = np.logspace(9, 15, n)
    acc = curves.curve(flops, a, b, chance) + rng.normal(0, noise, n)
    return flops, acc


@pytest.mark.parametrize("a,b,chance", [(-9.0, 0.75, 0.25), (-4.0, 0.3, 0.5), (5.0, -0.4, 0.0)])
def test_fit_recovers_parameters(a, b, chance):
    flops, acc = synthetic_points(a, b, chance, n=12, noise=0.002)
    fit = curves.fit_curve(flops, acc, chance, n_boot=0)
    assert fit.ok and fit.n_points == 12
    # a is the intercept at log10 C = 0, far outside the data: compare the curve's midpoint too.
    assert fit.b == pytest.approx(b, rel=0.08)
    assert -fit.a / fit.b == pytest.approx(-a / b, abs=0.15)
    assert fit.rmse < 0.004
    assert np.allclose(fit.predict(flops), curves.curve(flops, a, b, chance), atol=0.005)
    assert isinstance(fit.a, float) and isinstance(fit.b, float)


def test_bootstrap_band_covers_true_curve():
    a, b, chance = -9.0, 0.75, 0.25
    flops, acc = synthetic_points(a, b, chance, n=10, noise=0.006, seed=3)
    fit = curves.fit_curve(flops, acc, chance, n_boot=200, seed=1)
    assert fit.has_band and fit.n_boot == 200
    true = curves.curve(fit.band_x, a, b, chance)
    inside = (true >= fit.band_lo - 1e-12) & (true <= fit.band_hi + 1e-12)
    assert inside.mean() >= 0.8
    assert np.all(fit.band_lo <= fit.band_hi)
    # Seeded: the same call gives the same band.
    again = curves.fit_curve(flops, acc, chance, n_boot=200, seed=1)
    np.testing.assert_array_equal(fit.band_lo, again.band_lo)


def test_single_point_reports_no_fit():
    fit = curves.fit_curve([1e12], [0.4], 0.25)
    assert not fit.ok and fit.n_points == 1 and not fit.has_band
    assert "not possible" in fit.note
    assert np.isnan(fit.predict(1e12))
    assert fit.to_dict()["band"] is None


def test_two_points_fit_without_band():
    fit = curves.fit_curve([1e10, 1e12], [0.35, 0.5], 0.25, n_boot=200)
    assert fit.ok and not fit.has_band
    assert np.allclose(fit.predict([1e10, 1e12]), [0.35, 0.5], atol=1e-6)
    # Points at or below chance stay finite thanks to the parameter box.
    low = curves.fit_curve([1e10, 1e12], [0.2, 0.1], 0.25)
    assert np.isfinite(low.a) and np.isfinite(low.b)


def test_zero_flops_points_left_out():
    fit = curves.fit_curve([0.0, 1e10, 1e11, 1e12], [0.25, 0.3, 0.4, 0.5], 0.25, n_boot=20)
    assert fit.n_points == 3 and "left out" in fit.note and fit.ok


def test_standard_errors():
    assert curves.binomial_se(0.5, 100) == pytest.approx(0.05)
    se = curves.binomial_se([0.5, 0.2], [100, 0])
    assert se[0] == pytest.approx(0.05) and np.isnan(se[1])
    run = make_run("t2", "mix0", np.random.default_rng(0))
    ses = curves.run_standard_errors(run)
    b = BENCH["ocr_chart"]
    expected = np.sqrt(sum(run["benchmarks"][n] * (1 - run["benchmarks"][n]) / 200 for n in b)) / 3
    assert ses["categories"]["ocr_chart"] == pytest.approx(expected)
    assert set(ses["benchmarks"]) == set(run["benchmarks"])
    assert curves.category_se(run, "general", p=0.25) == pytest.approx(
        np.sqrt(4 * 0.25 * 0.75 / 200) / 4)
    del run["n_questions"]
    assert np.isnan(curves.category_se(run, "general"))


def test_fit_curves_groups_and_representatives():
    results = study_2x3()
    fits = curves.fit_curves(results, n_boot=30)
    assert {(f.category, f.mixture) for f in fits} == {(c, m) for c in BENCH for m in TRUE}
    assert all(f.ok and f.has_band and f.n_points == 3 for f in fits)
    assert curves.largest_scale(results) == "t3"
    reps = curves.representative_runs(results, "t3")
    assert list(reps) == ["mix0", "mix6"]
    assert curves.mixtures_of([{"mixture": m} for m in ("mix10", "mix2", "mix0")]) == [
        "mix0", "mix2", "mix10"]


# ---------------------------------------------------------------------------------------------
# Plots and report


def _png_ok(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


def test_plots_write_pngs(tmp_path):
    results = study_2x3()
    fits = curves.fit_curves(results, n_boot=20)
    assert _png_ok(plots.category_plot(results, "general", fits, tmp_path / "g.png"))
    assert _png_ok(plots.mixture_comparison_plot(results, tmp_path / "m.png"))
    assert _png_ok(plots.mle_plot(results, tmp_path / "mle.png"))
    for r in results:
        r.pop("mle")
    assert plots.mle_plot(results, tmp_path / "none.png") is None


def test_report_on_2x3_study(tmp_path):
    results = study_2x3()
    path = report.write_report(results, tmp_path / "out", study="synthetic-2x3", n_boot=50)
    assert path == tmp_path / "out" / "report.html"
    text = path.read_text()
    assert "synthetic-2x3" in text and curves.CURVE_FORM in text
    for cat in list(BENCH) + ["overall"]:
        png = tmp_path / "out" / f"category_{cat}.png"
        assert _png_ok(png)
        assert f'src="category_{cat}.png"' in text
        assert curves.category_label(cat).replace("&", "&amp;") in text
    for name in ("mixtures.png", "mle.png"):
        assert _png_ok(tmp_path / "out" / name) and f'src="{name}"' in text
    for r in results:
        assert f"<td class=\"l\">{r['run']}</td>" in text
    assert "Beats chance" in text and "Mixture comparison" in text and "winner" in text
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["run"] for r in saved] == [r["run"] for r in results]
    fits = json.loads((tmp_path / "out" / "fits.json").read_text())
    assert fits["form"] == curves.CURVE_FORM
    assert len(fits["fits"]) == (len(BENCH) + 1) * 2
    assert all(f["band"] is not None for f in fits["fits"])


def test_report_single_run_and_missing_optional_keys(tmp_path):
    run = make_run("t2", "mix0", np.random.default_rng(1), blind=False, mle=False)
    del run["perplexity"]
    path = report.write_report([run], tmp_path, study="one")
    text = path.read_text()
    assert "not possible" in text and "nothing to compare" in text
    assert "No run reports MLE-Bench" in text
    assert not (tmp_path / "mle.png").exists()
    assert _png_ok(tmp_path / "category_general.png")
    fits = json.loads((tmp_path / "fits.json").read_text())
    assert all(f["a"] is None for f in fits["fits"])


def test_report_escapes_run_names(tmp_path):
    rng = np.random.default_rng(2)
    evil = '<script>alert("x")</script>&co'
    results = [make_run("t1", "mix0", rng, name=evil), make_run("t3", "mix0", rng)]
    text = report.write_report(results, tmp_path, study="<b>study</b>", n_boot=10).read_text()
    assert "<script>" not in text and "<b>study</b>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;co" in text
    assert "&lt;b&gt;study&lt;/b&gt;" in text


def test_flat_curve_has_an_infinite_midpoint_and_still_reports(tmp_path):
    # Accuracies that barely move with compute give |a / b| beyond float range.
    fit = curves.fit_curve([1e11, 1e12, 1e13], [0.26, 0.255, 0.262], 0.25, n_boot=20)
    fit.a, fit.b = -400.0, 1e-3
    assert fit.midpoint == float("inf")
    json.dumps(report._jsonable(fit.to_dict()), allow_nan=False)  # strict JSON: inf becomes null
