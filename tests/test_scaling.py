"""Loss-surface fits, accuracy curves against any scale variable, two-step extrapolation,
decision accuracy and run records in every form, checked against closed forms, hand-computed
cases and Epoch's published fit."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special

from visual_priors.analysis import curves, records, scaling
from visual_priors.suite import export

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "chinchilla_fig4_points.csv"
# Hoffmann et al. 2022's published fit: the truth of the synthetic surfaces below.
HOFFMANN = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28}


def surface(n, d, p=HOFFMANN):
    return p["E"] + p["A"] * np.asarray(n, float) ** -p["alpha"] + p["B"] * np.asarray(d, float) ** -p["beta"]


def synthetic_points(noise: float, seed: int = 0):
    """An 8 x 8 grid of (N, D) with multiplicative log-normal noise on L."""
    n, d = np.meshgrid(np.logspace(7, 10, 8), np.logspace(9, 12, 8))
    n, d = n.ravel(), d.ravel()
    rng = np.random.default_rng(seed)
    return n, d, surface(n, d) * np.exp(rng.normal(0.0, noise, n.size))


# ---------------------------------------------------------------------------------------------
# Objective


def test_huber_by_hand():
    assert scaling.huber(5e-4, 1e-3) == pytest.approx(0.5 * 5e-4**2, rel=1e-12)
    assert scaling.huber(-2e-3, 1e-3) == pytest.approx(1e-3 * (2e-3 - 0.5e-3), rel=1e-12)
    assert scaling.huber(0.0) == 0.0


def test_objective_matches_direct_formula_and_finite_differences():
    n, d, y = synthetic_points(noise=0.01, seed=4)
    log_n, log_d, log_y = np.log(n), np.log(d), np.log(y)
    rng = np.random.default_rng(0)
    for theta in [np.array([6.0, 6.0, 0.5, 0.34, 0.28]), np.array([3.0, 9.0, 0.2, 0.5, 0.4]),
                  *rng.uniform([0, 0, -1, 0, 0], [25, 25, 1, 2, 2], size=(4, 5))]:
        value, grad = scaling.huber_objective(theta, log_n, log_d, log_y)
        A, B, E, alpha, beta = np.exp(theta[0]), np.exp(theta[1]), np.exp(theta[2]), *theta[3:]
        resid = np.log(E + A * n**-alpha + B * d**-beta) - log_y
        assert value == pytest.approx(np.sum(scaling.huber(resid)), rel=1e-10)
        h = 1e-6
        numeric = np.array([(scaling.huber_objective(theta + h * e, log_n, log_d, log_y)[0]
                             - scaling.huber_objective(theta - h * e, log_n, log_d, log_y)[0]) / (2 * h)
                            for e in np.eye(5)])
        assert np.allclose(grad, numeric, rtol=1e-5, atol=1e-9)


def test_start_grids():
    assert scaling.start_grid("epoch").shape == (4500, 5)
    assert scaling.start_grid("coarse").shape == (243, 5)
    assert set(scaling.start_grid("epoch")[:, 2]) == {-1.0, -0.5, 0.0, 0.5, 1.0}
    with pytest.raises(ValueError):
        scaling.start_grid("fine")


# ---------------------------------------------------------------------------------------------
# Chinchilla fits


def test_recovers_noise_free_surface_exactly():
    fit = scaling.fit_chinchilla(*synthetic_points(noise=0.0), n_boot=0)
    for k, v in HOFFMANN.items():
        assert getattr(fit, k) == pytest.approx(v, rel=1e-4), k


def test_recovers_noisy_surface_and_intervals_cover_truth():
    # 0.5% multiplicative noise on 64 points; truth inside the 95% bootstrap interval and
    # within 3 bootstrap standard errors.
    fit = scaling.fit_chinchilla(*synthetic_points(noise=0.005, seed=1), n_boot=100,
                                 boot_starts=0, level=0.95, seed=2)
    assert fit.n_boot == 100
    iv, se = fit.intervals(), fit.standard_errors
    for k, v in HOFFMANN.items():
        assert iv[k][0] <= v <= iv[k][1], (k, iv[k])
        assert abs(getattr(fit, k) - v) <= 3 * se[k], k
    assert abs(fit.alpha - 0.34) < 0.03 and abs(fit.beta - 0.28) < 0.03
    assert abs(fit.E - 1.69) < 0.05
    lo, hi = fit.predict_interval(1e11, 2e12)
    assert lo <= surface(1e11, 2e12) <= hi
    assert lo < fit.predict(1e11, 2e12) < hi


def test_compute_optimal_allocation_on_the_iso_flop_line():
    fit = scaling.ChinchillaFit(objective=0.0, n_points=0, **HOFFMANN)
    assert fit.n_opt_exponent == pytest.approx(0.28 / 0.62)
    assert fit.d_opt_exponent == pytest.approx(0.34 / 0.62)
    for c in (1e18, 5.76e23, 1e26):
        n_opt, d_opt = fit.compute_optimal(c)
        assert 6 * n_opt * d_opt == pytest.approx(c, rel=1e-12)
        # Independent check: minimise L(N, C / 6N) numerically over log N.
        res = optimize.minimize_scalar(lambda u: fit.predict(np.exp(u), c / (6 * np.exp(u))),
                                       bracket=(np.log(n_opt) - 3, np.log(n_opt) + 3), tol=1e-12)
        assert res.x == pytest.approx(np.log(n_opt), abs=1e-4)
        grid = n_opt * np.logspace(-1, 1, 201)
        assert fit.predict(n_opt, d_opt) <= np.min(fit.predict(grid, c / (6 * grid))) + 1e-12
    n_arr, d_arr = fit.compute_optimal(np.array([1e20, 1e22]))
    assert n_arr.shape == (2,) and np.all(np.diff(n_arr) > 0)


def test_too_few_points_and_dropping():
    with pytest.raises(ValueError, match="at least 6"):
        scaling.fit_chinchilla([1e8, 1e9, 1e10], [1e9, 1e10, 1e11], [3.0, 2.8, 2.5], n_boot=0)
    n, d, y = synthetic_points(noise=0.01)
    fit = scaling.fit_chinchilla(n, d, y, drop_highest=3, n_boot=0)
    assert fit.n_dropped == 3 and fit.n_points == n.size - 3
    out = json.loads(json.dumps(fit.to_dict()))
    assert out["A"] == fit.A and out["n_boot"] == 0 and "dropped" in out["note"]


def _reference_points():
    if not REFERENCE.exists():
        pytest.skip(f"reference data missing: {REFERENCE} (shared/reference beside the repo)")
    return scaling.read_chinchilla_points(REFERENCE)


def test_reference_points_match_epoch_replication():
    # Epoch (Besiroglu et al. 2024, table 1), after dropping the 5 highest-loss points:
    # estimate (bootstrap SE). Every parameter must land within one published SE; E, alpha
    # and beta also within a quarter of it.
    n, d, y = _reference_points()
    assert n.size == 245
    fit = scaling.fit_chinchilla(n, d, y, drop_highest=5, n_boot=0)
    assert fit.n_points == 240 and fit.n_dropped == 5
    for k, v in scaling.EPOCH_2024.items():
        assert abs(getattr(fit, k) - v) <= scaling.EPOCH_2024_SE[k], (k, getattr(fit, k))
    for k in ("E", "alpha", "beta"):
        assert abs(getattr(fit, k) - scaling.EPOCH_2024[k]) <= 0.25 * scaling.EPOCH_2024_SE[k]
    # Hoffmann et al.'s own beta (0.28) lies outside: the replication's point.
    assert fit.beta - 0.28 > 3 * scaling.EPOCH_2024_SE["beta"]


@pytest.mark.slow
def test_full_epoch_grid_reaches_the_coarse_grid_optimum():
    n, d, y = _reference_points()
    coarse = scaling.fit_chinchilla(n, d, y, drop_highest=5, n_boot=0)
    full = scaling.fit_chinchilla(n, d, y, drop_highest=5, n_boot=0, grid="epoch")
    assert full.n_starts == 4500
    assert full.objective == pytest.approx(coarse.objective, rel=1e-9)
    for k in scaling.PARAM_NAMES:
        assert getattr(full, k) == pytest.approx(getattr(coarse, k), rel=1e-4), k


def test_command_line_fits_an_exported_table(tmp_path, capsys):
    n, d, y = synthetic_points(noise=0.0)
    runs = [{"run": f"r{i}", "scale": "s", "mixture": "m", "params": float(a), "tokens": float(b),
             "flops": 6 * float(a) * float(b), "final_loss": float(c)}
            for i, (a, b, c) in enumerate(zip(n, d, y))]
    path = export.write(runs, tmp_path / "runs.csv")
    assert scaling.main(["--runs", str(path), "--n-boot", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["alpha"] == pytest.approx(0.34, rel=1e-4) and out["n_points"] == n.size


# ---------------------------------------------------------------------------------------------
# Synthetic study runs


SCALES = {"s1": 1e6, "s2": 4e6, "s3": 1.6e7, "s4": 6.4e7, "s5": 2.56e8}
BUDGETS = (2e7, 6e7, 2e8, 6e8, 2e9)
CHANCE = 0.25
# acc(L) = chance + (1 - chance) * sigmoid(a + b L), per category.
MAP = {"general": (14.0, -4.0), "knowledge": (20.0, -6.0)}


def study_runs(noise_loss=0.0, noise_acc=0.0, seed=0, mixture="web"):
    rng = np.random.default_rng(seed)
    runs = []
    for scale, n in SCALES.items():
        for d in BUDGETS:
            loss = float(surface(n, d) * np.exp(rng.normal(0, noise_loss)))
            cats = {c: float(CHANCE + (1 - CHANCE) * special.expit(a + b * loss)
                             + rng.normal(0, noise_acc))
                    for c, (a, b) in MAP.items()}
            runs.append({"run": f"{scale}-{d:.0e}-{mixture}", "study": "synthetic", "scale": scale,
                         "mixture": mixture, "params": n, "tokens": d, "flops": 6 * n * d,
                         "final_loss": loss, "categories": cats,
                         "overall": float(np.mean(list(cats.values()))),
                         "chance": {"general": CHANCE, "knowledge": CHANCE}})
    return runs


def test_curves_against_params_and_tokens_recover_the_sigmoid():
    a, b = -8.0, 1.2
    rng = np.random.default_rng(3)
    runs = []
    for i, n in enumerate(np.logspace(5, 9, 9)):
        d = 20 * n
        acc = float(curves.curve(n, a, b, 0.25) + rng.normal(0, 0.003))
        runs.append({"run": f"r{i}", "scale": f"s{i}", "mixture": "m", "params": n, "tokens": d,
                     "flops": 6 * n * d, "categories": {"general": acc}, "overall": acc, "chance": 0.25})
    fits = {f.variable: f for v in ("params", "tokens", "flops")
            for f in scaling.fit_category_curves(runs, v, categories=["general"], n_boot=0)}
    assert fits["params"].a == pytest.approx(a, abs=0.3) and fits["params"].b == pytest.approx(b, abs=0.05)
    # D = 20 N: the same slope, the intercept shifted by b log10(20).
    assert fits["tokens"].b == pytest.approx(fits["params"].b, rel=1e-6)
    assert fits["tokens"].a == pytest.approx(fits["params"].a - fits["params"].b * np.log10(20), abs=1e-5)
    assert fits["params"].form == "acc(N) = chance + (1 - chance) * sigmoid(a + b * log10(N))"
    d = fits["tokens"].to_dict()
    assert d["variable"] == "tokens" and len(d["tokens"]) == 9 and "midpoint_tokens" in d
    # One implementation: the flops fit is curves' own.
    ref = curves.fit_curves(runs, categories=["general"], n_boot=0)[0]
    assert (fits["flops"].a, fits["flops"].b) == (ref.a, ref.b)
    with pytest.raises(ValueError, match="scale variable"):
        curves.fit_curves(runs, variable="steps")


def test_flat_exported_table_gives_the_same_fits(tmp_path):
    runs = study_runs(noise_acc=0.004, seed=5)
    flat = [export.flatten(r) for r in runs]
    assert "categories.general" in flat[0]
    for form in (flat, export.table(runs), export.write(runs, tmp_path / "r.parquet"),
                 export.write(runs, tmp_path / "r.csv")):
        back = records.as_records(form)
        assert back[0]["categories"] == runs[0]["categories"]
        assert back[0]["chance"] == runs[0]["chance"]
        f1 = scaling.fit_category_curves(back, "params", n_boot=0)
        f2 = scaling.fit_category_curves(runs, "params", n_boot=0)
        assert [v for f in f1 for v in (f.a, f.b)] == pytest.approx(
            [v for f in f2 for v in (f.a, f.b)], rel=1e-12)
    # Columns another run had are nulls in the table, and dropped again.
    mixed = export.table([runs[0], {**runs[1], "extra": {"x": 1.0}}])
    assert "extra" not in records.as_records(mixed)[0] and records.as_records(mixed)[1]["extra"] == {"x": 1.0}


def test_records_from_pandas():
    runs = study_runs()
    back = records.as_records(pd.DataFrame([export.flatten(r) for r in runs]))
    assert back[3]["categories"] == runs[3]["categories"] and back[3]["params"] == runs[3]["params"]


def test_dotted_keys_read_the_same_from_nested_and_flat_records(tmp_path):
    nested = {"run": "a", "overall": 0.3, "language": {"perplexity": {"mean": 20.0}},
              "categories": {"knowledge": 0.25, "general": None}}
    flat = export.flatten(nested)
    assert "language.perplexity.mean" in flat
    for r in (nested, flat):
        assert records.float_value(r, "language.perplexity.mean") == 20.0
        assert curves.accuracy_of(r, "knowledge") == 0.25 and curves.accuracy_of(r, "overall") == 0.3
        assert math.isnan(curves.accuracy_of(r, "general"))  # None
        assert math.isnan(records.float_value(r, "language.avg_acc"))  # absent
        assert curves.categories_of([r]) == ["general", "knowledge"]  # the paper's order
    assert records.as_float("0.5") == 0.5
    assert all(math.isnan(records.as_float(v)) for v in ("", "n/a", True, None, {"a": 1}))
    # collect's JSON: a mapping of run name to record (or a list); nulls dropped on reading.
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"a": flat}))
    assert records.as_records(path) == [{"run": "a", "overall": 0.3, "language": {
        "perplexity": {"mean": 20.0}}, "categories": {"knowledge": 0.25}}]


def test_two_step_recovers_both_steps_and_extrapolates():
    runs = study_runs(noise_loss=0.003, noise_acc=0.003, seed=7)
    fit = scaling.fit_two_step(runs, categories=list(MAP))
    assert fit.loss_fit.alpha == pytest.approx(0.34, abs=0.05)
    assert fit.loss_fit.beta == pytest.approx(0.28, abs=0.05)
    assert fit.loss_fit.E == pytest.approx(1.69, abs=0.1)
    for c, (a, b) in MAP.items():
        m = fit.maps[c]
        assert m.b == pytest.approx(b, rel=0.1) and m.midpoint_loss == pytest.approx(-a / b, abs=0.02)
    target = scaling.Target(params=1e9, tokens=2e10, label="next")
    true_loss = float(surface(1e9, 2e10))
    preds = {e.quantity: e for e in scaling.extrapolate_two_step(fit, target, n_boot=100, seed=1,
                                                                  level=0.9)}
    assert preds["final_loss"].lo <= true_loss <= preds["final_loss"].hi
    assert preds["final_loss"].value == pytest.approx(true_loss, rel=0.01)
    for c, (a, b) in MAP.items():
        truth = CHANCE + (1 - CHANCE) * special.expit(a + b * true_loss)
        e = preds[c]
        assert e.method == "two-step" and e.n_boot == 100 and e.level == 0.9
        assert e.lo <= truth <= e.hi and e.lo <= e.value <= e.hi
        assert fit.predict(1e9, 2e10, c) == pytest.approx(e.value)
    json.dumps([e.to_dict() for e in preds.values()])


def test_a_fit_whose_irreducible_loss_underflowed_seeds_the_two_step_fit():
    # A fit whose E ran to its bound 0 (exp(e) underflowed) still has a start to give.
    runs = study_runs(noise_loss=0.003, noise_acc=0.003, seed=7)
    fit = scaling.fit_two_step(runs, categories=list(MAP)).loss_fit
    floored = dataclasses.replace(fit, E=0.0)
    assert np.isfinite(floored.theta).all() and math.exp(floored.theta[2]) < 1e-300
    again = scaling.fit_two_step(runs, categories=list(MAP), grid=floored.theta[None, :])
    assert np.isfinite(again.loss_fit.objective)


# Final losses of 15 tiny web-crawl LLMs (params, tokens, loss; batch 4, world 1, seed 7): the
# largest size ends above the next, so alpha runs to its bound and the fit and its bootstrap
# refits can push log A past 709 (on a 2-core Xeon the fit's own A and 12 of 20 refits do; where
# exactly is sensitive to the fifth digit, so the test asserts no overflow, not that one happened).
ALPHA_AT_ITS_BOUND = [
    (149232, 25000, 5.48144), (149232, 75000, 4.05814), (149232, 250000, 2.20861),
    (501408, 25000, 5.12294), (501408, 75000, 3.63298), (501408, 250000, 1.38895),
    (1049728, 25000, 5.04119), (1049728, 75000, 3.34838), (1049728, 250000, 1.2477),
    (2361408, 25000, 4.96818), (2361408, 75000, 3.33787), (2361408, 250000, 1.17226),
    (12325376, 25000, 4.90869), (12325376, 75000, 3.56332), (12325376, 250000, 1.4592)]


def test_coefficients_beyond_float_range_are_inf_in_the_bootstrap_and_its_errors_not_a_warning():
    n, d, y = np.array(ALPHA_AT_ITS_BOUND, dtype=float).T
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning fails the test
        fit = scaling.fit_chinchilla(n, d, y, n_boot=20)
        # Refits of A spread over 1e200 (squares past a float): its error is inf, the others'
        # are as numpy's.
        wide = dataclasses.replace(fit, boot=np.array([[1e200, 1.0, 0.5, 18.0, 0.5], [3e200, 2.0, 0.7, 19.0, 0.6],
                                                       [5e199, 4.0, 0.9, 17.0, 0.4]]))
        errors = wide.standard_errors
    assert errors["A"] == math.inf and errors["beta"] == pytest.approx(0.1)
    assert fit.alpha > 10 and not np.isnan(fit.A) and not np.isnan(fit.boot).any()
    assert not any(math.isnan(v) for bounds in fit.intervals().values() for v in bounds)


def test_direct_curve_extrapolation_interval():
    a, b = -9.0, 0.7
    flops = np.logspace(10, 14, 12)
    acc = curves.curve(flops, a, b, 0.25) + np.random.default_rng(2).normal(0, 0.004, flops.size)
    fit = curves.fit_curve(flops, acc, 0.25, n_boot=0, category="general", mixture="m")
    target = scaling.Target(params=1e8, tokens=2e9)  # C = 6 N D = 1.2e18
    e = scaling.extrapolate_curve(fit, target, n_boot=200, seed=0, level=0.9)
    truth = float(curves.curve(1.2e18, a, b, 0.25))
    assert e.method == "curve:flops" and e.lo <= truth <= e.hi and e.lo <= e.value <= e.hi
    assert scaling.Target(1e8, 2e9, flops=5e18).value("flops") == 5e18


def test_next_scale_target_follows_the_scale_table():
    from visual_priors.config import scales
    from visual_priors.model import llm

    runs = [{"run": f"{s}", "scale": s, "mixture": "m", "params": llm.count_params(scales.get(s)),
             "tokens": t, "flops": 1.1 * 6 * llm.count_params(scales.get(s)) * t}
            for s, t in (("t1", 1e5), ("t2", 2e5), ("t3", 4e5))]
    target = scaling.next_scale_target(runs)
    n4 = llm.count_params(scales.get("t4"))
    assert target.label == "t4" and target.params == n4
    assert target.tokens == pytest.approx(4e5 / runs[2]["params"] * n4)
    assert target.flops == pytest.approx(1.1 * 6 * n4 * target.tokens)
    assert scaling.next_scale_target(runs, scale="t5", tokens=1e6).tokens == 1e6
    with pytest.raises(ValueError, match="no scale after"):
        scaling.next_scale_target([{**runs[0], "scale": "t5"}])


def test_extrapolate_runs_both_forms_per_mixture():
    runs = study_runs(noise_acc=0.003, seed=1) + study_runs(noise_acc=0.003, seed=2, mixture="code")[:4]
    out = scaling.extrapolate(runs, scaling.Target(1e9, 2e10), categories=["general"], n_boot=20)
    methods = {(e.mixture, e.method, e.quantity) for e in out}
    assert ("web", "curve:flops", "general") in methods and ("web", "two-step", "general") in methods
    assert ("web", "two-step", "final_loss") in methods
    # Four runs are too few for L(N, D): the direct curve only.
    assert ("code", "curve:flops", "general") in methods
    assert not any(m == "code" and meth == "two-step" for m, meth, _ in methods)


# ---------------------------------------------------------------------------------------------
# Decision accuracy


def test_pair_agreement_by_hand():
    target = {"m1": 0.50, "m2": 0.40, "m3": 0.40, "m4": 0.30}
    small = {"m1": 0.20, "m2": 0.25, "m3": 0.10, "m4": 0.10}
    # (m1,m2) disagree, (m1,m3) (m1,m4) (m2,m4) agree, (m2,m3) tied at the target: skipped,
    # (m3,m4) tied at the small scale: 1/2.  (0 + 1 + 1 + 1 + 0.5) / 5.
    out = scaling.pair_agreement(small, target)
    assert out == {"accuracy": pytest.approx(0.7), "n_pairs": 5, "n_target_ties": 1, "n_missing": 0}
    # With a tolerance of 0.12 every target difference but (m1,m4)'s 0.20 is a tie, and
    # (m1,m4)'s small-scale difference of 0.10 is one too: 1/2 from one pair.
    tol = scaling.pair_agreement(small, target, tie_tol=0.12)
    assert (tol["n_pairs"], tol["n_target_ties"], tol["accuracy"]) == (1, 5, 0.5)
    missing = scaling.pair_agreement({**small, "m5": float("nan")}, {**target, "m5": 0.1})
    assert missing["n_missing"] == 4 and missing["accuracy"] == pytest.approx(0.7)


def _scored_run(scale, params, mixture, overall, flops, seed=0, loss=3.0):
    return {"run": f"{scale}-{mixture}-{flops:.0e}-{seed}", "scale": scale, "mixture": mixture,
            "params": params, "tokens": flops / (6 * params), "flops": flops, "final_loss": loss,
            "categories": {"general": overall}, "overall": overall, "chance": 0.25}


def test_decision_accuracy_on_study_runs():
    small = {"m1": 0.20, "m2": 0.25, "m3": 0.10, "m4": 0.10}
    mid = {"m1": 0.45, "m2": 0.35, "m3": 0.30, "m4": 0.20}
    target = {"m1": 0.50, "m2": 0.40, "m3": 0.40, "m4": 0.30}
    runs = []
    for m in small:
        # Two seeds at the top FLOPs averaged; a shorter run at the same scale is ignored.
        runs += [_scored_run("a", 1e6, m, small[m] - 0.01, 1e12, 0),
                 _scored_run("a", 1e6, m, small[m] + 0.01, 1e12, 1),
                 _scored_run("a", 1e6, m, 0.9, 1e11),
                 _scored_run("b", 1e7, m, mid[m], 1e13, loss=2.0 + mid[m]),
                 _scored_run("c", 1e8, m, target[m], 1e14, loss=2.0 + target[m])]
    out = scaling.decision_accuracy(runs, "overall")
    assert [(o.scale, o.target_scale) for o in out] == [("a", "c"), ("b", "c")]
    assert out[0].accuracy == pytest.approx(0.7) and out[0].n_target_ties == 1
    assert out[1].accuracy == pytest.approx(1.0) and out[1].n_pairs == 5
    # Order does not depend on the direction of the metric: loss rises with the accuracy here.
    by_loss = scaling.decision_accuracy(runs, "final_loss", target_scale="c")
    assert by_loss[1].accuracy == pytest.approx(1.0)
    # Scale a against b: (m1,m2) 0, four agreements, (m3,m4) tied at a: 4.5 / 6.
    assert scaling.decision_accuracy(runs, "general", target_scale="b")[0].accuracy == pytest.approx(0.75)
    with pytest.raises(ValueError):
        scaling.decision_accuracy(runs, "final_loss", predicted=True)


def test_predicted_scores_fix_a_crossing():
    # Two mixtures whose curves cross between the small scales and the target: raw small-scale
    # scores rank them wrongly, the extrapolated curves rightly.
    # The curves cross at log10 C = 10 / 0.85 = 11.8, above every small-scale run.
    truth = {"steep": (-12.0, 1.0), "flat": (-2.0, 0.15)}
    runs = []
    for m, (a, b) in truth.items():
        for scale, params, flops in (("a", 1e5, (1e10, 2e10, 4e10)), ("b", 1e6, (1e11, 2e11, 4e11)),
                                     ("c", 1e8, (1e13,))):
            runs += [_scored_run(scale, params, m, float(curves.curve(c, a, b, 0.25)), c) for c in flops]
    raw = scaling.decision_accuracy(runs, "overall")
    pred = scaling.decision_accuracy(runs, "overall", predicted=True)
    assert [o.accuracy for o in raw] == [0.0, 0.0]
    assert [o.accuracy for o in pred] == [1.0, 1.0] and all(o.predicted for o in pred)
