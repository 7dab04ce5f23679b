"""Content-hashed steps, sharing between runs, the registry and the planner."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import time

import pytest

from visual_priors.config import loading
from visual_priors.suite import executor, planner, spec
from visual_priors.suite.registry import Registry


def _cfg(*overrides):
    return loading.load("experiments/quickstart.py:tiny", list(overrides))


def test_hashes_are_stable_and_shared():
    runs_a, steps_a = spec.expand(_cfg())
    runs_b, steps_b = spec.expand(_cfg())
    assert [s.name for s in steps_a] == [s.name for s in steps_b]
    assert len(runs_a) == 6
    tok = {r.steps["pretrain"].input("tokenizer").hash for r in runs_a}
    assert len(tok) == 1  # one tokenizer for every run
    feats = {r.steps["evaluate"].input("features").hash for r in runs_a}
    assert len(feats) == 1  # one frozen-feature step for every run
    assert len({r.steps["pretrain"].hash for r in runs_a}) == 6
    # every step appears once, after its inputs
    seen = set()
    for s in steps_a:
        assert all(d.hash in seen for d in s.inputs)
        assert s.hash not in seen
        seen.add(s.hash)


def test_a_change_upstream_changes_only_downstream_identities():
    base = {s.kind + str(s.fields.get("scale", "")) + str(s.fields.get("source", "")) + str(s.fields.get("split", "")): s.hash
            for s in spec.expand(_cfg())[1]}
    changed = spec.expand(_cfg("pretrain.optim.lr=0.001"))[1]
    for s in changed:
        key = s.kind + str(s.fields.get("scale", "")) + str(s.fields.get("source", "")) + str(s.fields.get("split", ""))
        if s.kind in ("tokenizer", "shards", "encoder", "features"):
            assert base[key] == s.hash
    old_pre = {s.hash for s in spec.expand(_cfg())[1] if s.kind in ("pretrain", "align", "sft", "evaluate")}
    new_pre = {s.hash for s in changed if s.kind in ("pretrain", "align", "sft", "evaluate")}
    assert not old_pre & new_pre


def test_same_pretrain_shared_across_studies():
    a = {r.scale: r.steps["pretrain"].hash for r in spec.expand(_cfg())[0] if r.mixture == "mix0"}
    other = _cfg("mixtures=('mix0',)", "study='other'")
    b = {r.scale: r.steps["pretrain"].hash for r in spec.expand(other)[0]}
    assert a == b


def test_tokenize_workers_reach_the_shards_steps_without_changing_their_identity():
    base = {s.hash: s for s in spec.expand(_cfg())[1] if s.kind == "shards"}
    more = [s for s in spec.expand(_cfg("data.tokenize_workers=2"))[1] if s.kind == "shards"]
    assert more and {s.hash for s in more} == set(base)
    assert all(s.options == {"workers": 2} for s in more)
    assert all(s.options == {"workers": 0} for s in base.values())


# Settings that decide how a step runs, not what it makes: the overrides, applied together, and
# the run option that carries them to the runner.
RESULT_NEUTRAL = [(("pretrain.log_every=20",), "log_every"), (("pretrain.ckpt_every=50",), "ckpt_every"),
                  (("pretrain.keep_every=100",), "keep_every"), (("pretrain.grad_accum=2",), "grad_accum"),
                  (("pretrain.model.remat='full'",), "remat"), (("mesh.data=1", "mesh.fsdp=-1"), "mesh"),
                  (("mesh.tensor=2",), "mesh"), (("rules=[('batch', 'data'), ('embed', None)]",), "rules"),
                  (("data.tokenize_workers=2",), "workers")]


def _planned(*overrides) -> list:
    return executor.plan_targets(_cfg(*overrides))[1]


@pytest.mark.parametrize("overrides,option", RESULT_NEUTRAL, ids=lambda o: ",".join(o) if isinstance(o, tuple) else o)
def test_a_result_neutral_setting_plans_no_new_step(overrides, option):
    base = _planned()
    changed = _planned(*overrides)
    assert [s.name for s in changed] == [s.name for s in base]
    # The runner still gets the setting, as a run option.
    before = [s.options[option] for s in base if option in s.options]
    after = [s.options[option] for s in changed if option in s.options]
    assert after and len(after) == len(before) and all(a != b for a, b in zip(after, before))


def test_perplexity_windows_replan_the_perplexity_and_evaluate_steps_only():
    base = {s.name for s in _planned()}
    new = [s for s in _planned("eval.perplexity_windows=7") if s.name not in base]
    assert {s.kind for s in new} == {"perplexity", "evaluate"}
    assert all(s.fields["windows"] == 7 for s in new if s.kind == "perplexity")


def test_a_learning_rate_replans_exactly_the_steps_downstream_of_pretraining():
    base = _planned()
    changed = {s.name for s in _planned("pretrain.optim.lr=0.001")}
    affected = set()
    for s in base:  # in dependency order
        if s.kind == "pretrain" or any(d.hash in affected for d in s.inputs):
            affected.add(s.hash)
    assert {s.hash for s in base if s.name not in changed} == affected
    assert {s.kind for s in base if s.hash in affected} == {"pretrain", "perplexity", "language", "alignment",
                                                             "align", "sft", "evaluate"}
    assert len(changed) == len(base)


def test_unknown_source_in_explicit_weights_names_valid_sources():
    with pytest.raises(ValueError, match=r"unknown source\(s\) \['tv_scripts'\]"):
        spec.expand(_cfg("mixtures=({'tv_scripts': 1.0},)"))


def test_planner_counts():
    p = planner.plan(_cfg())
    assert p["runs"] == 6
    assert p["steps_by_kind"]["pretrain"] == 6 and p["steps_by_kind"]["tokenizer"] == 1
    assert p["shared_steps"] >= 1 + 6 + 6 + 2  # tokenizer, shards, held-out shards, encoder, features
    assert p["pretrain_flops"] > 0
    with pytest.raises(ValueError, match="unknown chip"):
        planner.plan(_cfg(), chip="abacus")


def test_claims_start_with_the_steps_that_head_the_most_work():
    """Workers claim in longest-path-first order: the largest LLMs' chains (pre-training, then
    stage 1 and 2) come before the smaller ones', and steps that nothing waits on come last."""
    runs, steps = executor.plan_targets(_cfg())
    order = spec.longest_path_first(steps)
    assert sorted(s.hash for s in order) == sorted(s.hash for s in steps)
    at = {s.hash: i for i, s in enumerate(order)}
    for mixture in ("mix0", "mix6"):
        run = {r.scale: r for r in runs if r.mixture == mixture}
        for kind in ("pretrain", "align", "sft"):
            assert at[run["t3"].steps[kind].hash] < at[run["t2"].steps[kind].hash] < at[run["t1"].steps[kind].hash]
    leaves = [s for s in steps if s.kind in ("evaluate", "language", "perplexity", "alignment")]
    assert min(at[s.hash] for s in leaves) > max(at[s.hash] for s in steps if s.kind == "sft")
    # The plan's order puts the small LLMs first: the claim order is not just the plan's.
    assert [s.hash for s in order] != [s.hash for s in steps]


def test_a_step_waits_behind_the_others_while_another_worker_runs_its_programs():
    runs, steps = executor.plan_targets(_cfg())
    order = [s.hash for s in spec.longest_path_first(steps)]
    program = {s.hash: executor.program_key(s) for s in steps}
    run = {(r.scale, r.mixture): r for r in runs}
    rows = {h: {"status": "pending", "worker": None} for h in order}
    busy, twin = run[("t3", "mix0")].steps["sft"].hash, run[("t3", "mix6")].steps["sft"].hash
    rows[busy] = {"status": "running", "worker": "w1"}
    rows[order[0]] = {"status": "done", "worker": "w0"}
    mine = executor.claim_candidates(order, rows, program, "w0")
    assert set(mine[-2:]) == {busy, twin}  # the t3 instruction tuning of the other mixture waits
    assert [h for h in mine if h not in (busy, twin)] == [h for h in order[1:] if h not in (busy, twin)]
    # The worker that runs it keeps its order (its own kept programs serve the twin next).
    assert executor.claim_candidates(order, rows, program, "w1") == order[1:]
    # Once a step of those programs is done they are compiled: nothing waits for them.
    other = run[("t3", "mix6")].steps["evaluate"].hash  # any step, standing in for a done twin
    program[other] = program[busy]
    rows[other] = {"status": "done", "worker": "w1"}
    assert executor.claim_candidates(order, rows, program, "w0") == [h for h in order[1:] if h != other]
    # Other kinds at that scale and the same kind at other scales compile other programs.
    assert program[run[("t3", "mix6")].steps["align"].hash] != program[busy]
    assert program[run[("t2", "mix6")].steps["sft"].hash] != program[busy]
    assert program[steps[0].hash] is None  # the tokenizer is at no scale


class _Step:
    """A step as the registry sees it: a hash, a kind, a name, inputs."""

    def __init__(self, h, inputs=()):
        self.hash, self.kind, self.name, self.inputs = h, "pretrain", f"pretrain-{h}", tuple(inputs)

    def spec(self):
        return {"hash": self.hash, "inputs": [d.hash for d in self.inputs]}


def _dag(n_roots=6, fanout=3):
    """Roots, then steps that each need two of them, then one step that needs all of those."""
    roots = [_Step(f"r{i}") for i in range(n_roots)]
    mids = [_Step(f"m{i}-{j}", (roots[i], roots[(i + 1) % n_roots])) for i in range(n_roots) for j in range(fanout)]
    return roots + mids + [_Step("top", mids)]


def _claiming_worker(path, hashes, log_path, work_s, lease_s):
    """What a worker process does: claim a ready step, 'run' it, record who ran it, finish."""
    import os
    import time

    me = f"w{os.getpid()}"
    steps = {h: _Step(h) for h in hashes}
    with Registry(path) as reg:
        while True:
            claimed = reg.claim(hashes, me, lease_s=lease_s, max_attempts=1)
            if not claimed:
                rows = reg.statuses(hashes)
                if all(r["status"] == "done" for r in rows.values()):
                    break
                time.sleep(0.02)
                continue
            time.sleep(work_s)
            with open(log_path, "a") as f:
                f.write(f"{claimed[0]} {me} {time.time()}\n")
            assert reg.finish(steps[claimed[0]], f"/out/{claimed[0]}", worker=me)


def test_four_workers_run_every_step_once_after_its_inputs(tmp_path):
    path, log = tmp_path / "registry.sqlite", tmp_path / "ran.txt"
    dag = _dag()
    with Registry(path) as reg:
        reg.register_many([("study", s, "") for s in dag])
    ctx = mp.get_context("spawn")
    hashes = [s.hash for s in dag]
    procs = [ctx.Process(target=_claiming_worker, args=(path, hashes, log, 0.05, 30.0)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    lines = [line.split() for line in log.read_text().splitlines()]
    ran = [h for h, _, _ in lines]
    assert sorted(ran) == sorted(hashes)  # every step, exactly once
    assert len({w for _, w, _ in lines}) > 1  # the work was shared
    when = {h: float(t) for h, _, t in lines}
    starts = {r["hash"]: r["started"] for r in Registry(path).rows()}
    for s in dag:  # no step started before each of its inputs had finished
        assert all(starts[s.hash] >= when[d.hash] - 1e-3 for d in s.inputs)


def test_workers_share_the_steps_ready_to_be_packed_together(tmp_path):
    """Six steps alike ready at once on two workers: each worker packs three, not one worker
    six while the other waits; steps that are not alike are never packed with them."""
    reg = Registry(tmp_path / "registry.sqlite")
    steps = [_Step(f"s{i}") for i in range(6)] + [_Step("odd")]
    for s in steps:
        reg.register("study", s)
    hashes = [s.hash for s in steps]
    alike = lambda h, taken: not taken or (h == "odd") == (taken[0] == "odd")  # noqa: E731
    first = reg.claim(hashes, "w0", lease_s=30, max_attempts=1, limit=8, accept=alike, spread=2)
    second = reg.claim(hashes, "w1", lease_s=30, max_attempts=1, limit=8, accept=alike, spread=2)
    assert first == ["s0", "s1", "s2"] and second == ["s3", "s4", "s5"]
    assert reg.claim(hashes, "w0", lease_s=30, max_attempts=1, limit=8, accept=alike, spread=2) == ["odd"]
    # One worker takes every ready step alike, up to the pack's limit.
    reg2 = Registry(tmp_path / "one.sqlite")
    for s in steps:
        reg2.register("study", s)
    assert reg2.claim(hashes, "w0", lease_s=30, max_attempts=1, limit=4, accept=alike) == ["s0", "s1", "s2", "s3"]


def _claim_and_hang(path, h, lease_s):
    import time

    reg = Registry(path)
    assert reg.claim([h], "doomed", lease_s=lease_s, max_attempts=2) == [h]
    time.sleep(600)


def test_a_killed_workers_step_is_taken_over_when_its_lease_expires(tmp_path):
    path = tmp_path / "registry.sqlite"
    step = _Step("a")
    reg = Registry(path)
    reg.register("study", step)
    ctx = mp.get_context("spawn")
    doomed = ctx.Process(target=_claim_and_hang, args=(path, "a", 1.0))
    doomed.start()
    deadline = time.time() + 60
    while reg.status("a") != "running" and time.time() < deadline:
        time.sleep(0.05)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join()
    assert reg.claim(["a"], "survivor", lease_s=30, max_attempts=2) == []  # the lease still holds
    time.sleep(1.2)
    assert reg.claim(["a"], "survivor", lease_s=30, max_attempts=2) == ["a"]
    assert not reg.finish(step, "/out/a", worker="doomed")  # a late finish of the dead worker is refused
    assert reg.finish(step, "/out/a", worker="survivor")
    row = reg.rows()[0]
    assert row["status"] == "done" and row["attempts"] == 2 and row["worker"] == "survivor"


def test_failed_steps_retry_after_back_off_and_block_their_dependants_for_good(tmp_path):
    reg = Registry(tmp_path / "registry.sqlite")
    a = _Step("a")
    b = _Step("b", (a,))
    reg.register_many([("study", a, ""), ("study", b, "")])
    t = 1000.0
    assert reg.claim(["a", "b"], "w", lease_s=10, max_attempts=2, now=t) == ["a"]
    reg.fail(a, "boom", log_tail="line 1\nline 2", backoff_s=50.0, worker="w")
    retry_at = reg.statuses(["a"])["a"]["not_before"]
    assert reg.claim(["a", "b"], "w", lease_s=10, max_attempts=2, now=retry_at - 1) == []  # backing off
    assert reg.claim(["a", "b"], "w", lease_s=10, max_attempts=2, now=retry_at + 1) == ["a"]
    reg.fail(a, "boom again", backoff_s=50.0, worker="w")
    row = reg.statuses(["a"])["a"]
    assert row["attempts"] == 2 and row["not_before"] - row["ended"] == pytest.approx(100.0)  # doubled
    assert reg.claim(["a", "b"], "w", lease_s=10, max_attempts=2, now=time.time() + 1e6) == []
    assert reg.status("b") == "failed" and "inputs failed" in reg.statuses(["b"])["b"]["error"]
    assert reg.reset(["a", "b"]) == 2 and reg.status("a") == "pending"


def test_interrupted_step_is_given_back_without_spending_an_attempt(tmp_path):
    reg = Registry(tmp_path / "registry.sqlite")
    a = _Step("a")
    reg.register("study", a)
    reg.claim(["a"], "w", lease_s=10, max_attempts=1)
    reg.release(a, "w", "interrupted: SIGTERM")
    row = reg.statuses(["a"])["a"]
    assert row["status"] == "pending" and row["attempts"] == 0


def test_registry_closes_after_its_with_block_even_when_the_block_raises(tmp_path):
    with Registry(tmp_path / "registry.sqlite") as reg:
        reg.register("study", _Step("a"))
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        reg.status("a")
    with pytest.raises(RuntimeError, match="inside"):
        with Registry(tmp_path / "registry.sqlite") as reg:
            assert reg.status("a") == "pending"
            raise RuntimeError("inside the block")
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        reg.status("a")


def test_a_corpus_changed_after_planning_is_refused(tmp_path):
    import json

    corpus = tmp_path / "web.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"document {i} about a red box."}) + "\n"
                              for i in range(50)))
    (tmp_path / "sources.json").write_text(json.dumps(
        {"web_crawl": {"format": "jsonl", "paths": ["web.jsonl"]}}))
    cfg = _cfg(f"data.corpora='{tmp_path / 'sources.json'}'", "mixtures=({'web_crawl': 1.0},)")
    tokenizer = next(s for s in spec.expand(cfg)[1] if s.kind == "tokenizer")
    assert tokenizer.fields["corpora"]["web_crawl"]["fingerprint"]
    with corpus.open("a") as f:
        f.write(json.dumps({"text": "one more document"}) + "\n")
    with pytest.raises(ValueError, match="corpus of source 'web_crawl' changed since the study was planned"):
        tokenizer.run(tmp_path / "out", lambda step: tmp_path)


def test_real_corpora_are_labelled_with_the_real_text_rules(tmp_path):
    import json

    (tmp_path / "web.jsonl").write_text(json.dumps({"text": "a red box on a table."}) + "\n")
    (tmp_path / "sources.json").write_text(json.dumps(
        {"web_crawl": {"format": "jsonl", "paths": ["web.jsonl"]}}))
    steps = spec.expand(_cfg(f"data.corpora='{tmp_path / 'sources.json'}'"))[1]
    labels = {s.input("shards").fields["source"]: s for s in steps if s.kind == "labels"}
    assert labels["web_crawl"].fields["labeller"] == {"name": "lexical", "rules": "real"}
    # World sources keep their labeller config, hence the labels of the world rules.
    world = [s for src, s in labels.items() if src != "web_crawl"]
    assert world and all(s.fields["labeller"] == {"name": "lexical"} for s in world)


def test_scoring_settings_change_only_the_evaluate_steps():
    base = {s.hash for s in spec.expand(_cfg())[1]}
    changed = spec.expand(_cfg("eval.answer_tokens=4", "eval.text_len=64"))[1]
    new = [s for s in changed if s.hash not in base]
    assert new and {s.kind for s in new} == {"evaluate"}
    fewer = spec.expand(_cfg("eval.questions_per_benchmark=5"))[1]
    assert {s.kind for s in fewer if s.hash not in base} == {"features", "align", "sft", "evaluate"}


def test_encoders_and_sft_sets_multiply_runs_and_share_the_rest():
    runs, steps = spec.expand(_cfg("encoders=('contrastive', 'mae')", "sft_sets=('full', 'perception0+blind')"))
    assert len(runs) == 6 * 2 * 2
    assert len({r.steps["pretrain"].hash for r in runs}) == 6  # LLMs shared across encoders and sets
    by_kind = {}
    for s in steps:
        by_kind[s.kind] = by_kind.get(s.kind, 0) + 1
    # The two runs' encoders and the alignment steps' reference (tiny: the supervised encoder).
    assert by_kind["encoder"] == 3 and by_kind["features"] == 2 and by_kind["align"] == 12
    assert by_kind["sft"] == 24 and by_kind["evaluate"] == 24
    mae = next(s for s in steps if s.kind == "encoder" and s.fields.get("objective") == "mae")
    assert mae.inputs == ()  # only the contrastive encoder reads captions through the tokenizer
    with pytest.raises(ValueError, match="unknown encoder 'clip'"):
        spec.expand(_cfg("encoders=('clip',)"))
