"""Spearman structure of category scores: hand-computed and scipy references, bootstrap
intervals, permutation p-values, clustering, and the comparison with the paper's Fig. 5."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from visual_priors.analysis import structure

PAPER_DIR = Path(__file__).resolve().parents[2] / "shared" / "paper"
FIG5 = PAPER_DIR / "fig5_spearman.csv"
needs_fig5 = pytest.mark.skipif(not FIG5.exists(), reason="paper tables not beside the clone")
CATS = ["general", "knowledge", "ocr_chart", "vision_centric"]
# Fig. 5 as SPEC A6.3 prints it, for runs without the CSV beside the clone.
FIG5_RHO = np.array([[1.00, -0.03, 0.37, -0.10], [-0.03, 1.00, 0.08, 0.33],
                     [0.37, 0.08, 1.00, 0.07], [-0.10, 0.33, 0.07, 1.00]])


def test_spearman_hand_computed_without_ties():
    # rho = 1 - 6 sum d^2 / (n (n^2 - 1)); x vs y: d = (-1, 1, -1, 1, 0) -> 1 - 24/120 = 0.8.
    x = np.array([[1, 2, 5], [2, 1, 4], [3, 4, 3], [4, 3, 2], [5, 5, 1]], dtype=float)
    want = np.array([[1.0, 0.8, -1.0], [0.8, 1.0, -0.8], [-1.0, -0.8, 1.0]])
    np.testing.assert_allclose(structure.spearman(x), want, atol=1e-12)
    np.testing.assert_allclose(structure.batched_spearman(x), want, atol=1e-12)


def test_spearman_with_ties_hand_computed_and_scipy():
    # Average ranks (1, 2.5, 2.5, 4) and (1, 4, 2.5, 2.5): Pearson of those = 2.25 / 4.5 = 0.5.
    x = np.array([[1, 1], [2, 3], [2, 2], [3, 2]], dtype=float)
    assert structure.spearman(x)[0, 1] == pytest.approx(0.5, abs=1e-12)
    # A batch of tied samples: every matrix equals scipy's pairwise spearmanr.
    rng = np.random.default_rng(3)
    batch = rng.integers(0, 4, size=(5, 12, 3)).astype(float)
    got = structure.batched_spearman(batch)
    for b in range(5):
        for i in range(3):
            for j in range(3):
                want = stats.spearmanr(batch[b, :, i], batch[b, :, j]).statistic
                assert got[b, i, j] == pytest.approx(want, abs=1e-12)


def _correlated(n: int, rho: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).multivariate_normal(np.zeros(len(rho)), rho, size=n)


def test_bootstrap_interval_covers_the_sample_value_and_narrows_with_runs():
    x = _correlated(60, FIG5_RHO, seed=0)
    res = structure.spearman_structure(x, CATS, n_boot=500, n_perm=0)
    off = ~np.eye(4, dtype=bool)
    assert np.all(res.lo[off] <= res.rho[off]) and np.all(res.rho[off] <= res.hi[off])
    assert res.level == structure.LEVEL and res.n_boot == 500
    assert np.all(res.n_kept[off] == 500)
    big = structure.spearman_structure(_correlated(600, FIG5_RHO, seed=0), CATS,
                                       n_boot=500, n_perm=0)
    assert np.all((big.hi - big.lo)[off] < (res.hi - res.lo)[off])


def test_permutation_p_value_is_exact_for_few_runs():
    # n = 6: all 720 re-pairings enumerated; |rho| = 1 only for the identity and the reversal.
    x = np.column_stack([np.arange(6.0), np.arange(6.0) ** 2, [3.0, 1, 4, 1, 5, 9]])
    p, method = structure.permutation_pvalues(x)
    assert method.startswith("exact")
    assert p[0, 1] == pytest.approx(2 / 720)
    assert 0.0 < p[0, 2] <= 1.0 and np.isnan(p[0, 0])


def test_constant_category_gives_nan_and_a_note():
    x = _correlated(40, FIG5_RHO, seed=1)
    x[:, 2] = 0.25
    res = structure.spearman_structure(x, CATS, n_boot=100, n_perm=0)
    assert np.all(np.isnan(res.rho[2])) and np.all(np.isnan(res.rho[:, 2]))
    assert np.isfinite(res.rho[0, 1])
    assert any("ocr_chart" in n for n in res.notes)
    assert any("treated as 0" in n for n in res.notes)


def test_clustering_recovers_constructed_blocks():
    cats = ["a", "b", "c", "d", "e", "f"]
    block = np.array([0, 1, 0, 1, 0, 1])  # interleaved, so input order gives nothing away
    rho = np.where(block[:, None] == block[None, :], 0.7, 0.05)
    np.fill_diagonal(rho, 1.0)
    cl = structure.cluster_categories(rho, cats)
    assert structure.same_split(cl.split, [("a", "c", "e"), ("b", "d", "f")])
    first = {cl.order[i] for i in range(3)}
    assert first in ({"a", "c", "e"}, {"b", "d", "f"})  # leaves of one block are contiguous
    assert cl.linkage.shape == (5, 4)


def test_paper_fig5_matrix_splits_perception_from_reasoning():
    if FIG5.exists():
        cats, rho = structure.read_matrix(FIG5)
        np.testing.assert_allclose(rho, FIG5_RHO)
    else:
        cats, rho = CATS, FIG5_RHO
    cl = structure.cluster_categories(rho, cats)
    assert structure.same_split(cl.split, structure.PAPER_SPLIT)
    assert structure.same_split(cl.split, [("general", "ocr_chart"), ("knowledge", "vision_centric")])


def _records(x: np.ndarray, flat: bool) -> list[dict]:
    out = []
    for i, row in enumerate(x):
        if flat:
            out.append({"run": f"r{i}", **{f"categories.{c}": float(v) for c, v in zip(CATS, row)}})
        else:
            out.append({"run": f"r{i}", "categories": dict(zip(CATS, map(float, row)))})
    return out


def test_nested_and_flat_records_give_the_same_structure():
    x = _correlated(30, FIG5_RHO, seed=2)
    nested = _records(x, flat=False)
    nested.append({"run": "incomplete", "categories": {"general": 0.3}})
    a = structure.spearman_structure(nested, n_boot=50, n_perm=0)
    b = structure.spearman_structure(_records(x, flat=True), n_boot=50, n_perm=0)
    assert a.categories == b.categories == CATS and a.n_runs == b.n_runs == 30
    np.testing.assert_allclose(a.rho, b.rho)
    np.testing.assert_allclose(a.rho, structure.spearman(x))
    assert any("1 run(s)" in n for n in a.notes)


def test_compare_with_paper_on_data_drawn_with_the_papers_correlations():
    paper = (CATS, FIG5_RHO) if not FIG5.exists() else FIG5
    res = structure.spearman_structure(_correlated(400, FIG5_RHO, seed=4), CATS,
                                       n_boot=400, n_perm=0)
    cmp = structure.compare_with_paper(res, paper)
    np.testing.assert_allclose(cmp["difference"], res.rho - FIG5_RHO, atol=1e-12)
    assert cmp["n_pairs"] == 6 and cmp["n_in_interval"] >= 5
    assert cmp["split_recovered"]
    # Data whose structure pairs General with Knowledge instead do not recover the split.
    swapped = FIG5_RHO[np.ix_([0, 2, 1, 3], [0, 2, 1, 3])]
    other = structure.spearman_structure(_correlated(400, swapped, seed=4), CATS,
                                         n_boot=100, n_perm=0)
    cmp2 = structure.compare_with_paper(other, paper)
    assert not cmp2["split_recovered"]
    assert cmp2["n_in_interval"] < cmp["n_in_interval"]
    assert math.isfinite(cmp2["max_abs_difference"])


@needs_fig5
def test_command_prints_the_papers_split(capsys):
    structure.main([str(FIG5)])
    out = capsys.readouterr().out
    assert "paper's split recovered: True" in out
