"""The `visual-priors data` commands on small world data: label table, distillation, mixtures."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from visual_priors import cli
from visual_priors.data.labelling import ALL_LABELS
from visual_priors.data.labelling.gold import load_gold

PAPER_DIR = Path(__file__).resolve().parents[2] / "shared" / "paper"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("data_cli")


def _data(cache, *args):
    return ["data", *args, "--sources", "math,literature,code", "--tokens", "20000",
            "--sample-chars", "200000", "--cache", str(cache)]


def test_label_prints_table4_layout_and_precision_recall(cache, capsys):
    assert cli.main([*_data(cache, "label"), "--format", "csv"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("source,"))
    if (PAPER_DIR / "table4_label_rates.csv").exists():
        assert header == (PAPER_DIR / "table4_label_rates.csv").read_text().splitlines()[0]
    rows = {r["source"]: r for r in csv.DictReader(io.StringIO("\n".join(lines[lines.index(header):])))
            if r["source"] in ("math", "literature", "code")}
    assert set(rows) == {"math", "literature", "code"}
    assert float(rows["math"]["math_reasoning"]) > 80 and float(rows["code"]["code_reasoning"]) > 60
    assert float(rows["literature"]["visual_combination"]) > 60
    assert "against the world's true labels" in out and "precision" in out

    assert cli.main([*_data(cache, "label"), "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert set(rep["rates"]["math"]) == set(ALL_LABELS)
    assert rep["precision_recall_all"]["math_reasoning"]["precision"] > 0.9


def test_distilled_labeller_from_the_command_line(cache, tmp_path, capsys):
    out = tmp_path / "distilled"
    assert cli.main([*_data(cache, "distill"), "--teacher", "truth", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "distilled labeller written" in printed
    world_segments = int(re.search(r"\(([\d,]+) segments", printed).group(1).replace(",", ""))
    assert cli.main([*_data(cache, "label"), "--labeller", "distilled", "--option", f"path={out}",
                     "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["precision_recall_all"]["reasoning_combination"]["f1"] > 0.8
    # --gold adds the gold set's development half, and only that half, to the world's truth.
    assert cli.main([*_data(cache, "distill"), "--teacher", "truth", "--gold",
                     "--out", str(tmp_path / "with_gold")]) == 0
    printed = capsys.readouterr().out
    dev = len(load_gold().subset("dev"))
    assert f"({world_segments + dev:,} segments" in printed


def test_mixture_draw_reports_requested_and_realised(cache, capsys):
    assert cli.main([*_data(cache, "mixture", "category:visual_concept=40"), "--draw", "60000",
                     "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["requested"] == {"with visual_concept": 0.4, "without visual_concept": pytest.approx(0.6)}
    assert rep["drawn"]["total"] >= 60000
    assert abs(rep["drawn"]["label_shares"]["visual_concept"] - 0.4) < 0.05


def test_bad_data_input_fails_with_the_problem_named(cache, capsys):
    assert cli.main([*_data(cache, "mixture", "mix6"), "--draw", "1000"]) == 2
    assert "unknown source(s)" in capsys.readouterr().err  # mix6 needs sources not given
    assert cli.main([*_data(cache, "mixture", "category:math_reasoning=50"), "--draw", "1000",
                     "--max-epochs", "1", "--seq-len", "63"]) == 0
    capsys.readouterr()
    assert cli.main(["data", "mixture", "category:math_reasoning=90", "--sources", "math,literature",
                     "--tokens", "20000", "--sample-chars", "200000", "--cache", str(cache),
                     "--draw", "10000000", "--max-epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "cannot be built" in err and "with math_reasoning: needs 9,000,000" in err
    assert cli.main(["data", "label", "--sources", "wiki", "--cache", str(cache)]) == 2
    assert "unknown source(s) ['wiki']" in capsys.readouterr().err
    assert cli.main([*_data(cache, "label"), "--labeller", "oracle"]) == 2
    assert "unknown labeller 'oracle'" in capsys.readouterr().err


def _csv_rows(out: str, first: str) -> dict[str, dict]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first + ","))
    return {r[first]: r for r in csv.DictReader(io.StringIO("\n".join(lines[start:])))}


def test_gold_scores_with_intervals_on_the_heldout_half(capsys):
    assert cli.main(["data", "label", "--gold", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "rules=real" in out and "(heldout)" in out and "Wilson" in out
    rows = _csv_rows(out, "label")
    assert set(rows) == set(ALL_LABELS)
    reasoning = rows["reasoning_combination"]
    assert float(reasoning["f1_low"]) <= float(reasoning["f1"]) <= float(reasoning["f1_high"])
    assert float(reasoning["f1"]) >= 0.8 and float(rows["visual_combination"]["f1"]) >= 0.7
    # The world rules, asked for by name, find almost no visual concepts in real prose.
    assert cli.main(["data", "label", "--gold", "--option", "rules=world", "--split", "all",
                     "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["labeller"] == "lexical rules=world" and rep["split"] == "all"
    assert rep["precision_recall"]["visual_concept"]["f1"] < 0.3
    assert rep["precision_recall"]["visual_concept"]["support"] > float(rows["visual_concept"]["support"])


def test_bad_gold_file_is_named_in_one_line(tmp_path, capsys):
    bad = tmp_path / "gold.jsonl"
    bad.write_text(json.dumps({"id": "a", "split": "heldout", "labels": [], "text": "x"}) + "\n")
    assert cli.main(["data", "label", "--gold", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gold.jsonl:1: missing field 'source'" in err


def test_real_corpora_are_labelled_with_the_real_text_rules_beside_table4(cache, tmp_path, capsys):
    docs = ["The old stone bridge crosses the river below a red brick tower with a round window. "
            "On the left bank stands a white church with a tall spire." for _ in range(40)]
    (tmp_path / "enc.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    (tmp_path / "sources.json").write_text(json.dumps(
        {"encyclopedia": {"format": "jsonl", "paths": ["enc.jsonl"]}}))
    args = ["data", "label", "--sources", "encyclopedia,math", "--corpora",
            str(tmp_path / "sources.json"), "--tokens", "20000", "--sample-chars", "200000",
            "--vocab", "400", "--cache", str(cache)]  # a vocabulary the short corpus can fill
    assert cli.main([*args, "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["labellers"]["encyclopedia"]["name"] == "lexical rules=real"
    assert rep["labellers"]["math"]["name"] == "lexical rules=world"  # the world keeps its rules
    assert rep["table4"]["encyclopedia"]["visual_combination"] == 12.4 and "math" not in rep["table4"]
    assert rep["rates"]["encyclopedia"]["visual_concept"] == 100.0
    assert cli.main([*args, "--format", "csv"]) == 0
    rows = _csv_rows(capsys.readouterr().out, "source")
    assert rows["encyclopedia (table 4)"]["visual_concept"] == "12.2"
    assert rows["encyclopedia (difference)"]["visual_concept"] == "+87.8"
    assert "math (table 4)" not in rows


def test_sources_lists_the_sixteen(capsys):
    assert cli.main(["data", "sources"]) == 0
    out = capsys.readouterr().out
    starred = [line.split()[1] for line in out.splitlines() if line.startswith("* ") and not line.startswith("* =")]
    assert len(starred) == 16 and "qa_forum" in starred
