"""Content-hashed steps, sharing between runs, the registry and the planner."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from visual_priors.config import loading
from visual_priors.suite import planner, spec
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


def _worker(path, hashes, q):
    reg = Registry(path)

    class S:
        kind = "pretrain"

        def __init__(self, h):
            self.hash, self.name = h, f"pretrain-{h}"

        def spec(self):
            return {"hash": self.hash}

    for h in hashes:
        s = S(h)
        reg.register("study", s)
        reg.start(s)
        reg.finish(s, f"/out/{h}")
    reg.close()
    q.put(len(hashes))


def test_registry_under_concurrent_writers(tmp_path):
    path = tmp_path / "registry.sqlite"
    q = mp.get_context("spawn").Queue()
    procs = [mp.get_context("spawn").Process(target=_worker, args=(path, [f"{w}-{i}" for i in range(20)], q))
             for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    reg = Registry(path)
    rows = reg.rows("study")
    assert len(rows) == 60 and all(r["status"] == "done" and r["attempts"] == 1 for r in rows)


def test_a_corpus_changed_after_planning_is_refused(tmp_path):
    import json

    from visual_priors.suite import runners

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
        runners.RUNNERS["tokenizer"](tokenizer, tmp_path / "out", lambda step: tmp_path)


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
    assert by_kind["encoder"] == 2 and by_kind["features"] == 2 and by_kind["align"] == 12
    assert by_kind["sft"] == 24 and by_kind["evaluate"] == 24
    mae = next(s for s in steps if s.kind == "encoder" and s.fields.get("objective") == "mae")
    assert mae.inputs == ()  # only the contrastive encoder reads captions through the tokenizer
    with pytest.raises(ValueError, match="unknown encoder 'clip'"):
        spec.expand(_cfg("encoders=('clip',)"))
