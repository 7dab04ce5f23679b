"""A micro study through the command line: every step really runs, reruns reuse everything."""

from __future__ import annotations

import json
import time

import pytest

from visual_priors import cli
from visual_priors.config import loading
from visual_priors.suite import spec
from visual_priors.suite.eval_steps import Evaluate

MICRO = [
    "--set", "scales=('t1',)", "--set", "tokens.t1=40000",
    "--set", "data.shard_tokens=50000", "--set", "data.heldout_tokens=3000",
    "--set", "data.tokenizer_sample_chars=300000",
    "--set", "encoder.steps=20", "--set", "encoder.batch_size=32",
    "--set", "align.examples=128", "--set", "sft.examples=256",
    "--set", "eval.questions_per_benchmark=8", "--set", "eval.mle_per_bin=8",
    "--set", "eval.language.n_per_task=12", "--set", "eval.judge.questions_per_benchmark=2",
    "--set", "encoder.probe.train=140", "--set", "encoder.probe.test=70",
    "--set", "eval.knowledge_questions=16", "--set", "eval.naming_per_kind=2",
]


@pytest.fixture(scope="module")
def micro_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    # Two worker processes share the steps through the registry.
    code = cli.main(["suite", "run", "experiments/quickstart.py", "--root", str(root), *MICRO, "--workers", "2"])
    assert code == 0
    return root


def test_micro_study_writes_report_with_every_category(micro_root):
    report = micro_root / "quickstart" / "report.html"
    html = report.read_text()
    for category in ("general", "knowledge", "ocr_chart", "vision_centric"):
        assert (micro_root / "quickstart" / f"category_{category}.png").stat().st_size > 1000
        assert f"category_{category}.png" in html
    results = json.loads((micro_root / "quickstart" / "results.json").read_text())
    assert sorted(r["run"] for r in results) == ["t1-mix0", "t1-mix6"]
    for r in results:
        assert set(r["categories"]) == {"general", "knowledge", "ocr_chart", "vision_centric"}
        assert 0.0 <= r["overall"] <= 1.0 and r["flops"] > 0
        assert set(r["mle"]) >= {"0-30", "30-60", "60-100", "overall"}
        gen = r["generated"]  # greedy answers through the KV cache, parsed to options
        assert 0.0 <= gen["overall"] <= 1.0 and 0.0 <= gen["unparsed"] <= 1.0
        assert set(gen["categories"]) == set(r["categories"]) and gen["examples"]
        # Every family scored, with its chance level (1/2 for the yes/no family) and blind score.
        assert len(r["benchmarks"]) == 16 and r["chance_benchmarks"]["existence"] == 0.5
        assert set(r["blind_benchmarks"]) == set(r["benchmarks"])
        lang = r["language"]
        assert lang["perplexity"]["wikitext"] > 1 and lang["perplexity"]["lambada"] > 1
        assert set(lang["tasks"]) >= {"world_facts", "world_yesno"} and 0 <= lang["avg_acc"] <= 1
        judge = r["judge"]
        assert judge["judge"] == "rules" and judge["n"] == 2 * 9
        assert set(judge["by_category"]) == {"knowledge", "vision_centric"}
        # The signal chain, every hop measured against its chance with an interval.
        chain = r["chain"]
        assert set(chain) == {"H1", "H2", "H3", "H4", "H5"}
        assert set(chain["H1"]) == {"kind", "colour", "shape", "count", "position"}
        assert chain["H2"]["all"]["n"] == 2 * 14 and chain["H2"]["chance"] == pytest.approx(1 / 14)
        assert chain["H3"]["heldout"]["n"] == 16 and chain["H3"]["train"]["n"] == 16
        assert set(chain["H4"]) == set(chain["H5"]) == set(r["categories"])
        assert r["chain_verdict"]["text"]
        sig = r["signal"]
        for condition in ("image", "blind", "described", "image_minus_blind"):
            overall = sig[condition]["margin"]["overall"]
            assert overall["ci"][0] <= overall["mean"] <= overall["ci"][1]
        # Accuracy from margins is the accuracy the run reports.
        assert sig["image"]["accuracy"]["overall"]["mean"] == pytest.approx(r["overall"])
        # Every LLM's alignment with the reference encoder, and its colour probe.
        assert 0.0 <= r["alignment"]["score"] <= 1.0
        colour = r["alignment"]["colour"]
        assert colour["language_error"] >= 0 and colour["vision_error"] >= 0
    assert html.index(">Signal chain</h2>") < html.index(">Runs</h2>")
    for section in ("Benchmarks", "Language", "Reasoning traces", "LLM–vision alignment (Fig. 11)"):
        assert f">{section}</h2>" in html


def test_pretraining_logged_falling_loss_and_source_counts(micro_root):
    pre = [json.loads(p.read_text()) for p in micro_root.glob("pretrain-*/result.json")]
    assert len(pre) == 2
    for r in pre:
        assert r["train"]["final_loss"] < r["train"]["first_loss"]
        drawn = r["tokens_by_source"]
        assert sum(drawn.values()) == r["tokens"]
        assert (next(micro_root.glob("pretrain-*/work/metrics.jsonl"))).stat().st_size > 0


def test_planned_training_flops_bound_what_each_training_step_measured(micro_root):
    """The plan counts every example at its full length (batches are cut to their longest row,
    so a step measures less) and counts what each stage trains: stage 1 trains the LLM in the
    tiny profile, and its plan counts the LLM's weight gradients too."""
    _, steps = spec.expand(loading.load("experiments/quickstart.py", MICRO[1::2]))
    checked = set()
    for step in steps:
        if step.kind in ("pretrain", "align", "sft"):
            measured = json.loads((micro_root / step.name / "result.json").read_text())["flops"]
            assert measured <= step.unit.flops(step) * (1 + 1e-6) <= 2 * measured, step.name
            checked.add(step.kind)
    assert checked == {"pretrain", "align", "sft"}


def test_rerun_reuses_every_step(micro_root, capsys):
    t0 = time.perf_counter()
    assert cli.main(["suite", "run", "experiments/quickstart.py", "--root", str(micro_root), *MICRO]) == 0
    out = capsys.readouterr().out
    assert "0 steps run" in out and "0 failed" in out
    assert time.perf_counter() - t0 < 30
    assert cli.main(["suite", "status", "--root", str(micro_root), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["status"] == "done" and r["attempts"] == 1 for r in rows)
    assert len({r["worker"] for r in rows}) == 2  # both workers ran steps
    # Every step records the seconds it spent compiling; training steps compile something.
    assert all(r["compile_s"] is not None and r["compile_s"] >= 0 for r in rows)
    assert all(r["compile_s"] > 0 for r in rows if r["kind"] == "pretrain")


def test_analyze_prints_the_reports_numbers(micro_root, capsys):
    assert cli.main(["analyze", "experiments/quickstart.py", "--root", str(micro_root), *MICRO]) == 0
    numbers = json.loads(capsys.readouterr().out)
    study = micro_root / "quickstart"
    assert numbers["fits"] == json.loads((study / "fits.json").read_text())
    assert numbers["analysis"] == json.loads((study / "analysis.json").read_text())
    points = numbers["analysis"]["sections"]["alignment"]["points"]
    assert sorted(p["run"] for p in points) == ["t1-mix0", "t1-mix6"]  # both LLMs' alignment scores
    assert cli.main(["analyze", "experiments/quickstart.py", "--root", str(micro_root / "empty")]) == 1
    assert "no finished runs of quickstart" in capsys.readouterr().err


def test_export_writes_every_finished_run_as_parquet_and_csv(micro_root, tmp_path, capsys):
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    results = {r["run"]: r for r in json.loads((micro_root / "quickstart" / "results.json").read_text())}
    for name in ("all.parquet", "all.csv"):
        out = tmp_path / name
        assert cli.main(["suite", "export", "experiments/quickstart.py", "--root", str(micro_root), *MICRO,
                         "--out", str(out)]) == 0
        table = (pq.read_table(out) if name.endswith("parquet") else pa_csv.read_csv(out)).to_pylist()
        assert sorted(row["run"] for row in table) == sorted(results)
        for row in table:
            r = results[row["run"]]
            assert row["categories.knowledge"] == pytest.approx(r["categories"]["knowledge"])
            assert row["benchmarks.count"] == pytest.approx(r["benchmarks"]["count"])
            assert row["language.perplexity.wikitext"] == pytest.approx(r["language"]["perplexity"]["wikitext"])
            assert row["token_budget"] == 40000 and row["study"] == "quickstart"
    assert cli.main(["suite", "export", "experiments/quickstart.py", "--root", str(micro_root), *MICRO,
                     "--out", str(tmp_path / "x.xlsx")]) == 1
    assert ".parquet, .csv" in capsys.readouterr().err


def test_failed_step_keeps_finished_steps(micro_root, monkeypatch, capsys):
    # A new evaluation config makes new evaluate steps; make them fail.
    extra = [*MICRO, "--set", "eval.text_len=48"]

    def broken(self, step, out, locate):
        raise RuntimeError("evaluation exploded")

    monkeypatch.setattr(Evaluate, "run", broken)
    before = {p.name for p in micro_root.iterdir()}
    assert cli.main(["suite", "run", "experiments/quickstart.py", "--root", str(micro_root), *extra,
                     "--retries", "1", "--backoff", "0.05"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: RuntimeError: evaluation exploded" in out
    assert before <= {p.name for p in micro_root.iterdir()}  # nothing finished was lost
    assert cli.main(["suite", "status", "--root", str(micro_root), "--format", "json"]) == 0
    failed = [r for r in json.loads(capsys.readouterr().out) if r["status"] == "failed"]
    assert len(failed) == 2 and all(r["attempts"] == 2 for r in failed)  # tried, then retried once
    assert cli.main(["suite", "status", "--root", str(micro_root)]) == 0
    assert "evaluation exploded" in capsys.readouterr().out
    # `clean --failed` forgets them and removes their partial outputs; a rerun starts them afresh.
    assert all((micro_root / f"{r['name']}.partial").is_dir() for r in failed)
    assert cli.main(["suite", "clean", "--failed", "--root", str(micro_root)]) == 0
    assert "removed 2 failed steps" in capsys.readouterr().out
    assert not any((micro_root / f"{r['name']}.partial").exists() for r in failed)
    assert cli.main(["suite", "status", "--root", str(micro_root), "--format", "json"]) == 0
    assert not [r for r in json.loads(capsys.readouterr().out) if r["status"] == "failed"]


def test_retry_gives_failed_steps_fresh_attempts_and_shows_their_log_tail(micro_root, monkeypatch, capsys):
    import logging

    extra = [*MICRO, "--set", "eval.text_len=40"]
    real = Evaluate.run

    def broken(self, step, out, locate):
        logging.getLogger("visual_priors.test").warning("scoring %s, about to fail", step.name)
        raise RuntimeError("disk full")

    monkeypatch.setattr(Evaluate, "run", broken)
    assert cli.main(["suite", "run", "experiments/quickstart.py", "--root", str(micro_root), *extra,
                     "--retries", "0"]) == 1
    out = capsys.readouterr().out
    assert "log tail" in out and "about to fail" in out
    assert cli.main(["suite", "status", "--root", str(micro_root)]) == 0
    assert "about to fail" in capsys.readouterr().out
    monkeypatch.setattr(Evaluate, "run", real)
    assert cli.main(["suite", "retry", "experiments/quickstart.py", "--root", str(micro_root), *extra]) == 0
    out = capsys.readouterr().out
    assert "2 failed steps of quickstart reset" in out and "2 steps run" in out


def test_bad_names_fail_with_valid_lists(capsys, tmp_path):
    assert cli.main(["suite", "run", "experiments/quickstart.py", "--root", str(tmp_path),
                     "--set", "scales=('t1','t9')"]) == 2
    assert "valid scales" in capsys.readouterr().err
    assert cli.main(["suite", "plan", "experiments/quickstart.py", "--set", "mixtures=('mix0','mixX')"]) == 2
    assert "valid mixtures" in capsys.readouterr().err
    assert cli.main(["suite", "plan", "experiments/quickstart.py",
                     "--set", "mixtures=({'web_crawl': 0.7, 'code': 0.2},)"]) == 2
    assert "sum to 0.9" in capsys.readouterr().err


def test_scales_command_prints_counts(capsys):
    assert cli.main(["scales"]) == 0
    out = capsys.readouterr().out
    for name in ("340M", "1B", "3B", "7B", "13B", "t1", "t5"):
        assert name in out


def test_encoder_study_with_sft_sets_and_blind_tuning(micro_root, capsys):
    """Two more local encoders and two SFT sets on the micro study's t1-mix0 LLM: the LLM is
    reused, every (encoder, SFT set) pair is adapted and evaluated, and the SFT sets differ in
    what they trained on as their names say."""
    extra = [*MICRO, "--set", "study='encoders'", "--set", "mixtures=('mix0',)",
             "--set", "encoders=('mae', 'supervised')",
             "--set", "sft_sets=('full', 'reasoning0+blind')"]
    assert cli.main(["suite", "run", "experiments/quickstart.py", "--root", str(micro_root), *extra]) == 0
    out = capsys.readouterr().out
    assert "] pretrain-" not in out and "] encoder-" in out  # the LLM is reused, encoders are new
    results = {r["run"]: r for r in json.loads((micro_root / "encoders" / "results.json").read_text())}
    assert sorted(results) == ["t1-mix0-mae-full", "t1-mix0-mae-reasoning0+blind",
                               "t1-mix0-supervised-full", "t1-mix0-supervised-reasoning0+blind"]
    for r in results.values():
        assert 0.0 <= r["encoder_probe"] <= 1.0 and set(r["categories"]) == {
            "general", "knowledge", "ocr_chart", "vision_centric"}
    html = (micro_root / "encoders" / "report.html").read_text()
    assert ">Encoders</h2>" in html and "supervised" in html
    sft = {json.loads(p.read_text())["step"]: json.loads(p.read_text())
           for p in micro_root.glob("sft-*/result.json")}
    ablated = [r for r in sft.values() if "blind" in r]
    full = [r for r in sft.values() if "blind" not in r and r["available"] == 256]
    assert len(ablated) == 2 and full
    for r in ablated:
        assert r["by_label"]["reasoning"] == 0 and r["by_label"]["perception"] > 0
        assert r["blind"]["steps"] > 0 and r["flops"] > r["train"]["flops"]
    assert all(r["by_label"]["reasoning"] > 0 for r in full)


def _real_fixtures(root):
    """A tiny MME (parquet, Hugging Face layout) and MLE-Bench (data.jsonl) on disk."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    def png(colour):
        out = io.BytesIO()
        Image.new("RGB", (40, 30), colour).save(out, format="PNG")
        return out.getvalue()

    mme = root / "MME" / "data" / "test-00000-of-00001.parquet"
    mme.parent.mkdir(parents=True)
    rows = []
    for i, colour in enumerate([(255, 0, 0), (0, 0, 255)]):
        for q, a in (("Is the picture red?", "Yes" if i == 0 else "No"),
                     ("Is the picture blue?", "No" if i == 0 else "Yes")):
            rows.append({"question_id": f"color/{i}.png", "category": "color", "question": q,
                         "answer": a, "image": {"bytes": png(colour), "path": f"{i}.png"}})
    pq.write_table(pa.Table.from_pylist(rows), mme)
    mle = root / "MLE"
    (mle / "images").mkdir(parents=True)
    lines = []
    for k, sub in enumerate(["existence_0-30", "existence_30-60", "existence_60-100"]):
        (mle / "images" / f"{k}.png").write_bytes(png((10 * k, 0, 0)))
        lines.append(json.dumps({"image": f"images/{k}.png", "question": "Which of the following appears "
                                 "in this image?", "choices": ["cat", "dog", "car", "tree"], "answer": "dog",
                                 "answer_text": "dog", "sub_task": sub}))
    (mle / "data.jsonl").write_text("\n".join(lines) + "\n")
    return root / "MME", mle / "data.jsonl"


def test_evaluate_reads_real_benchmark_files_without_retraining(micro_root, tmp_path, capsys):
    mme, mle = _real_fixtures(tmp_path)
    before = {p.name for p in micro_root.iterdir()}
    capsys.readouterr()
    code = cli.main(["evaluate", "experiments/quickstart.py", "--root", str(micro_root), *MICRO,
                     "--run", "t1-mix0", "--benchmark", f"mme={mme}", "--benchmark", f"mle_bench={mle}"])
    assert code == 0
    printed = capsys.readouterr().out
    new = {p.name.split("-")[0] for p in micro_root.iterdir()} - {n.split("-")[0] for n in before}
    assert new == {"real_features"}  # plus one new evaluate step; nothing is retrained
    assert not [p for p in micro_root.iterdir() if p.name not in before and p.name.startswith(("align", "sft"))]
    res = json.loads(next(p for p in micro_root.glob("evaluate-*/result.json")
                          if "real" in json.loads(p.read_text())).read_text())
    scores = res["real"]["scores"]
    assert set(scores) == {"mme", "mle_bench"} and scores["mme"]["n"] == 4
    assert 0 <= scores["mme"]["score"] <= 100 and set(scores["mle_bench"]) >= {"0-30", "overall", "macro"}
    assert res["real"]["categories"] == {"general": scores["mme"]["score"] / 100}
    # Only one category of real files: the world's families stay the run's scores.
    assert len(res["benchmarks"]) == 16
    assert "== t1-mix0" in printed and "real: mle_bench" in printed


def test_suite_step_runs_one_step_whose_inputs_are_done(micro_root, capsys):
    from visual_priors.config import loading
    from visual_priors.suite import spec

    extra = [*MICRO, "--set", "eval.text_len=44"]
    cfg = loading.load("experiments/quickstart.py", [a for a in extra if a != "--set"])
    run = next(r for r in spec.expand(cfg)[0] if r.name == "t1-mix0")
    step = run.steps["evaluate"]
    assert not (micro_root / step.name).exists()
    assert cli.main(["suite", "step", "experiments/quickstart.py", step.name, "--root", str(micro_root),
                     *extra]) == 0
    assert (micro_root / step.name / "result.json").is_file()
    assert not (micro_root / f"{run.steps['evaluate'].name}.partial").exists()
    # A step whose inputs are not finished is refused with their names.
    fresh = loading.load("experiments/quickstart.py", [a for a in [*extra, "--set", "sft.examples=200"]
                                                       if a != "--set"])
    blocked = next(r for r in spec.expand(fresh)[0] if r.name == "t1-mix0").steps["evaluate"]
    assert cli.main(["suite", "step", "experiments/quickstart.py", blocked.name, "--root", str(micro_root),
                     *extra, "--set", "sft.examples=200"]) == 2
    assert "needs unfinished inputs: sft-" in capsys.readouterr().err
    assert cli.main(["suite", "step", "experiments/quickstart.py", "evaluate-000000000000",
                     "--root", str(micro_root), *extra]) == 2


@pytest.mark.slow
def test_sigterm_stops_every_worker_and_a_rerun_finishes_the_study(tmp_path):
    """`suite run --workers 2` stopped by SIGTERM mid-study: the workers give their steps back
    (none is left 'running' under a lease), and the same command finishes the study."""
    import signal
    import sqlite3
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "visual_priors.cli", "suite", "run", "experiments/quickstart.py",
           "--root", str(tmp_path), *MICRO, "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    done = 0
    while time.time() < deadline and done < 12:
        time.sleep(1)
        if (tmp_path / "registry.sqlite").exists():
            with sqlite3.connect(tmp_path / "registry.sqlite") as db:
                done = db.execute("SELECT count(*) FROM steps WHERE status='done'").fetchone()[0]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 130, proc.stderr.read()[-2000:]
    with sqlite3.connect(tmp_path / "registry.sqlite") as db:
        states = dict(db.execute("SELECT status, count(*) FROM steps GROUP BY status").fetchall())
    assert states.get("running", 0) == 0 and states.get("pending", 0) > 0
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    with sqlite3.connect(tmp_path / "registry.sqlite") as db:
        assert {s for (s,) in db.execute("SELECT status FROM steps")} == {"done"}


def test_a_zero_token_budget_is_the_randomly_initialised_llm(micro_root):
    """The scale sweep's 0B point: no training, the initial LLM saved with its perplexities."""
    extra = [a if a != "tokens.t1=40000" else "tokens.t1=0" for a in MICRO]
    before = set(micro_root.glob("pretrain-*")) | set(micro_root.glob("perplexity-*"))
    assert cli.main(["pretrain", "experiments/quickstart.py", "--root", str(micro_root), *extra,
                     "--set", "mixtures=('mix0',)"]) == 0
    (new,) = set(micro_root.glob("pretrain-*")) - before
    res = json.loads((new / "result.json").read_text())
    assert res["tokens"] == 0 and res["train"]["steps"] == 0 and res["flops"] == 0
    assert (new / "llm").is_dir()
    # The pretrain command brings the LLM's held-out perplexity along. Untrained, it predicts
    # about uniformly over the 2,048-word vocabulary.
    (ppl,) = set(micro_root.glob("perplexity-*")) - before
    assert 1000 < json.loads((ppl / "result.json").read_text())["mean"] < 4000
