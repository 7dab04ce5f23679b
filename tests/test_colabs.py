"""The colabs/ notebooks, executed headless on a synthetic export with known ground truth.

Each notebook runs in a fresh `python3` kernel with the export in `VISUAL_PRIORS_EXPORT` and
writes `summary.json` in its working directory; the tests read the numbers from there. Fewer
bootstrap resamples than the notebooks' defaults are injected after the parameters cell (as
papermill does) to keep the file within CI's time; the fits themselves are unchanged.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel  # noqa: E402

import analysis_fixture as fx  # noqa: E402
from visual_priors.analysis import records  # noqa: E402
from visual_priors.config.profiles import ALIGNMENT_METRICS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COLABS = ROOT / "colabs"
NOTEBOOKS = ("scaling_curves", "mixtures", "alignment")
KERNEL = "python3"
CELL_TIMEOUT_S = 120
PAPER_FIG5 = ROOT.parent / "shared" / "paper" / "fig5_spearman.csv"
FAST = {"scaling_curves": "N_BOOT = 40\nCHINCHILLA_N_BOOT = 40",
        "mixtures": "N_BOOT = 200\nGP_SAMPLES = 200",
        "alignment": ""}
# |fitted - true| allowed for the Chinchilla exponents: 12 runs per source with 0.2% loss noise
# pin them to about +-0.025; 0.05 is about 15% of either exponent.
EXPONENT_TOL = 0.05
# The paper's optimum and how far the GP's may sit from it (grid step: 5 points).
OPTIMUM, OPTIMUM_TOL = (60.0, 15.0), 7.5


def _runs_this_python(argv: list[str]) -> bool:
    # jupyter_client replaces a bare "python" with the interpreter that starts the kernel.
    bare = {"python", f"python{sys.version_info[0]}", "python%i.%i" % sys.version_info[:2]}
    return bool(argv) and (argv[0] in bare or os.path.abspath(argv[0]) == os.path.abspath(sys.executable))


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory) -> str | None:
    """A JUPYTER_PATH under which `python3` runs this interpreter, or None when the one jupyter
    finds already does (the venv's own spec). The user's own kernels are never touched."""
    try:
        if _runs_this_python(KernelSpecManager().get_kernel_spec(KERNEL).argv):
            return None
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    install(kernel_name=KERNEL, prefix=str(prefix))
    return str(prefix / "share" / "jupyter")


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    return fx.write_export(tmp_path_factory.mktemp("export") / "results.parquet")


def execute(name: str, export_path: Path, workdir: Path, kernel_path: str | None,
            params: str = "") -> tuple[dict, str]:
    """Run one notebook in workdir; (its summary.json, all its printed text)."""
    nb = nbformat.read(COLABS / f"{name}.ipynb", as_version=4)
    if params:
        at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        nb.cells.insert(at + 1, nbformat.v4.new_code_cell(params, metadata={"tags": ["injected-parameters"]}))
    env = {"VISUAL_PRIORS_EXPORT": str(export_path), "MPLBACKEND": "Agg"}
    if kernel_path:
        env["JUPYTER_PATH"] = os.pathsep.join(p for p in (kernel_path, os.environ.get("JUPYTER_PATH")) if p)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        # Raises CellExecutionError, with the cell and its traceback, on any error.
        nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=CELL_TIMEOUT_S,
                                resources={"metadata": {"path": str(workdir)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.outputs if o.output_type == "stream")
    return json.loads((workdir / "summary.json").read_text()), text


# ---------------------------------------------------------------------------------------------
# The export as records and as a DataFrame


def test_load_export_gives_records_and_the_exported_columns(export, tmp_path):
    runs, frame = records.load_export(export)
    exported = pq.read_table(export).to_pandas()
    assert runs == records.as_records(export)
    assert len(frame) == len(exported) == len(fx.paper_results())
    assert list(frame["run"]) == list(exported["run"])
    for col in exported.columns:
        assert col in frame.columns, col
        a, b = frame[col].to_numpy(), exported[col].to_numpy()
        if exported[col].dtype.kind in "fi":
            np.testing.assert_allclose(a.astype(float), b.astype(float), equal_nan=True, err_msg=col)
        else:
            assert [x for x in a if pd.notna(x)] == [x for x in b if pd.notna(x)], col
    # The same columns from the CSV export, and from collect's nested results (which also
    # keep the lists the exporter leaves out, e.g. each reference's best layer pair).
    _, csv = records.load_export(fx.write_export(tmp_path / "results.csv"))
    nested_runs, nested = records.load_export(fx.paper_results())
    assert len(nested_runs) == len(runs)
    assert set(csv.columns) == set(frame.columns) < set(nested.columns)
    assert "alignment.encoders.contrastive.layers" in set(nested.columns) - set(frame.columns)
    for col in ("overall", "final_loss", "alignment.table.cka", "alignment.encoders.supervised.score"):
        np.testing.assert_allclose(csv[col], frame[col], equal_nan=True)
        np.testing.assert_allclose(nested[col], frame[col], equal_nan=True)
    empty_runs, empty = records.load_export([])
    assert empty_runs == [] and empty.empty


# ---------------------------------------------------------------------------------------------
# The notebooks as files


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_files_are_clean_and_parameterised(name):
    nb = nbformat.read(COLABS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "visual-priors suite export" in first.source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "outputs not cleared"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    assert 'EXPORT = os.environ.get("VISUAL_PRIORS_EXPORT", "results.parquet")' in params[0].source
    assert any(line.startswith("# !pip install") for c in code for line in c.source.splitlines())


# ---------------------------------------------------------------------------------------------
# Executed on the synthetic paper


def test_scaling_notebook_recovers_the_law(export, tmp_path, kernel_path):
    summary, text = execute("scaling_curves", export, tmp_path, kernel_path, FAST["scaling_curves"])
    sources = {f"source:{s}" for s in fx.SWEEP_E}
    assert set(summary["swept_mixtures"]) == sources
    assert set(summary["chinchilla"]) == sources
    for mix, fit in summary["chinchilla"].items():
        for name in ("alpha", "beta"):
            assert abs(fit[name] - fx.LAW[name]) < EXPONENT_TOL, (mix, name, fit[name])
            lo, hi = fit["intervals"][name]
            assert lo <= fit[name] <= hi
            assert repr(fit[name]) in text  # printed unrounded
        assert fit["n_points"] == len(fx.PARAMS) * len(fx.TOKENS) and fit["n_boot"] == 40
    # Two-step loss at the next size against the law itself.
    losses = [e for e in summary["extrapolation"] if e["quantity"] == "final_loss"]
    assert {e["mixture"] for e in losses} == sources
    for e in losses:
        t = e["target"]
        assert t["label"] == "t4"
        truth = fx.chinchilla_loss(t["params"], t["tokens"], fx.SWEEP_E[e["mixture"].split(":")[1]])
        assert abs(e["value"] - truth) < 0.01 * truth, (e["mixture"], e["value"], truth)
    # Every scale orders the three sources as the largest does (E alone differs).
    decisions = summary["decision_accuracy"]
    assert {(d["scale"], d["predicted"]) for d in decisions} == {
        (s, p) for s in ("t1", "t2") for p in (False, True)}
    assert all(d["accuracy"] == 1.0 and d["n_pairs"] == 3 for d in decisions)


def test_mixtures_notebook_finds_the_optimum(export, tmp_path, kernel_path):
    fig5 = f"\nPAPER_FIG5 = {str(PAPER_FIG5)!r}" if PAPER_FIG5.exists() else ""
    summary, text = execute("mixtures", export, tmp_path, kernel_path, FAST["mixtures"] + fig5)
    grid = fx.GRID_CELLS
    assert summary["grid"]["cells"] == len(grid)
    assert (summary["grid"]["scale"], summary["grid"]["tokens"]) == ("t3", 75_000)
    # Category-sweep runs sit on one axis only; everything else has both shares.
    assert summary["runs_with_shares"] == summary["runs"] - 5
    for name in ("gp", "quadratic"):
        opt = summary["surfaces"][name]["optimum"]
        for axis, truth in zip(("reasoning_pct", "visual_pct"), OPTIMUM):
            assert abs(opt[axis] - truth) <= OPTIMUM_TOL, (name, axis, opt[axis])
            lo, hi = summary["surfaces"][name]["location_interval"][axis]
            assert lo <= opt[axis] <= hi
    sp = summary["spearman"]
    rho = np.array(sp["rho"])
    assert sp["categories"] == list(fx.CATEGORIES) and np.allclose(np.diag(rho), 1.0)
    assert np.allclose(rho, rho.T)
    if fig5:
        assert summary["fig5"]["n_pairs"] == 6
    else:
        assert "No comparison with the paper" in text
    # The run with the best VQA accuracy is never dominated.
    group = [r for r in fx.paper_results() if (r["scale"], r["token_budget"]) == ("t3", 75_000)]
    assert summary["tradeoff"]["runs"] == len(group)
    assert max(group, key=lambda r: r["overall"])["run"] in summary["tradeoff"]["pareto_front"]


def test_alignment_notebook_sees_alignment_rise_with_reasoning(export, tmp_path, kernel_path):
    summary, text = execute("alignment", export, tmp_path, kernel_path)
    assert summary["aligned"] == 5
    by_line = {row["line"]: row for row in summary["score_vs_reasoning"]}
    assert set(by_line) == {"all", "code_reasoning"}
    assert by_line["all"]["runs"] == 5 and by_line["all"]["spearman"] > 0.8
    assert summary["prh_metrics"] == list(ALIGNMENT_METRICS)
    # The fixture's VQA rises with the code-reasoning share too.
    assert summary["score_vs_overall"]["runs"] == 5 and summary["score_vs_overall"]["spearman"] > 0


@pytest.mark.slow  # every notebook once more; the three above cover the same cells
def test_notebooks_skip_what_an_export_lacks(tmp_path, kernel_path):
    """Five category-sweep runs without alignment: one scale, no grid, no alignment."""
    runs = [{k: v for k, v in r.items() if k != "alignment"} for r in fx.paper_results()
            if r["study"] == "category_sweep"]
    from visual_priors.suite import export as exporter

    path = exporter.write(runs, tmp_path / "sweep.csv")
    for name in NOTEBOOKS:
        workdir = tmp_path / name
        workdir.mkdir()
        summary, text = execute(name, path, workdir, kernel_path, FAST[name])
        assert summary["runs"] == 5
        assert "Skipped" in text, name
    scaling = json.loads((tmp_path / "scaling_curves" / "summary.json").read_text())
    assert scaling["swept_mixtures"] == [] and scaling["chinchilla"] == {}
    mixtures = json.loads((tmp_path / "mixtures" / "summary.json").read_text())
    assert "surfaces" not in mixtures and mixtures["runs_with_shares"] == 0
    assert math.isfinite(mixtures["spearman"]["rho"][0][1])
    alignment = json.loads((tmp_path / "alignment" / "summary.json").read_text())
    assert alignment["aligned"] == 0 and "score_vs_reasoning" not in alignment
