"""Reasoning-trace judges (the paper's App. A.2): prompts, the LLM judge against a local
chat-completions server, the rule judge for the world, and the soundness / depth summary."""

from __future__ import annotations

import json
import math
import re

import pytest

from visual_priors.eval.judge import (PROMPT_VERSION, RUBRIC, JudgeError, LLMReasoningJudge,
                                      RuleJudge, Trace, Verdict, explain_prompt, parse_verdict,
                                      split_answer, summarize, trace_of, trace_words,
                                      world_trace, world_vocabulary)

from chat_server import ChatServer, Sleeps, assert_exponential_backoff

# ----------------------------------------------------------------------- prompts


def test_explain_prompt_letters_options_and_asks_for_steps():
    p = explain_prompt("Which group does the koop belong to?", ["a tool", "an animal"])
    lines = p.splitlines()
    assert lines[:3] == ["Which group does the koop belong to?", "A. a tool", "B. an animal"]
    assert "step by step" in p and p.rstrip().endswith('"Answer: <letter>".')
    with pytest.raises(ValueError):
        explain_prompt("q", [str(i) for i in range(30)])


@pytest.mark.parametrize("text, trace, answer", [
    ("The koop is red.\nAnswer: B", "The koop is red.", "Answer: B"),
    ("It is a koop, so it is an animal.\n\n**Final answer:** (B)\n", "It is a koop, so it is an animal.",
     "**Final answer:** (B)"),
    ("The koop is red. So the answer is B.", "The koop is red.", "So the answer is B."),
    ("It is a koop. Answer: (D)", "It is a koop.", "Answer: (D)"),
    ("Answer: C", "", "Answer: C"),
    ("The koop is red.\nThe answer is clearly B", "The koop is red.\nThe answer is clearly B", ""),
    # A lone line of prose that starts with the answer keeps its reasoning.
    ("The answer is B because the koop on the left is red and round.",
     "The answer is B because the koop on the left is red and round.", ""),
])
def test_split_answer(text, trace, answer):
    assert split_answer(text) == (trace, answer)
    assert trace_of(text) == trace


def test_trace_words_counts_the_explanation_only():
    assert trace_words("The red koop - on the left - pulls carts.\nAnswer: B") == 8
    assert trace_words("Answer: B") == 0
    assert trace_words("") == 0


# ----------------------------------------------------------------------- the LLM judge

def _judgement(user: str) -> dict:
    """The fake judge: coherent when the output's final letter is the reference answer's."""
    reference = re.search(r"Reference answer: ([A-D])\.", user).group(1)
    output = user.split("<<<\n", 1)[1].rsplit("\n>>>", 1)[0]
    letters = re.findall(r"Answer: ([A-D])", output)
    ok = bool(letters) and letters[-1] == reference
    return {"coherent": ok, "reason": "follows" if ok else "ends on the wrong option"}


def _respond(step: str, body: dict) -> str | None:
    """The fake judge's reply for a script step: "ok", "bad" (prose), "nokey" (JSON without
    "coherent") or "garbage" (a non-JSON body)."""
    user = body["messages"][-1]["content"]
    return {"ok": "<think>let me see</think>\n```json\n" + json.dumps(_judgement(user)) + "\n```",
            "bad": "The reasoning looks fine to me.",
            "nokey": json.dumps({"verdict": "yes"}), "garbage": None}[step]


@pytest.fixture
def server():
    s = ChatServer(_respond)
    yield s
    s.close()


def _judge(server, tmp_path, **kw):
    kw.setdefault("sleep", Sleeps())
    return LLMReasoningJudge(server.url, "judge-1", cache_dir=tmp_path / "cache", concurrency=4,
                             timeout=10, **kw)


Q = "Which group does the object on the left belong to?"
OPTS = ("a tool", "an animal", "a plant", "a food")
TRACES = [
    Trace(Q, OPTS, 1, "The object on the left is a red koop. Koops pull carts, so it is an "
                      "animal.\nAnswer: B", "science", "knowledge"),
    Trace(Q, OPTS, 1, "It looks like a plant.\nAnswer: C", "science", "knowledge"),
    Trace("Where is the koop relative to the drul?", ("above", "below", "to the left", "to the right"),
          2, "The koop is left of the drul.\nAnswer: C", "spatial", "vision_centric"),
]


def test_llm_judge_parses_verdicts_and_caches_across_instances(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    judge = _judge(server, tmp_path)
    verdicts = judge.judge(TRACES + [TRACES[0]])       # a repeated trace is sent once
    assert [v.coherent for v in verdicts] == [True, False, True, True]
    assert verdicts[1] == Verdict(False, "ends on the wrong option", 5)
    assert [v.words for v in verdicts] == [trace_words(t.text) for t in TRACES + [TRACES[0]]]
    assert len(server.requests) == 3 and judge.requests_sent == 3
    req = server.requests[0]
    assert req["model"] == "judge-1" and req["temperature"] == 0
    system = req["messages"][0]["content"]
    assert RUBRIC in system and '"coherent"' in system
    sent = {r["messages"][1]["content"] for r in server.requests}
    first = next(u for u in sent if "Koops pull carts" in u)
    assert Q in first and "A. a tool\nB. an animal\nC. a plant\nD. a food" in first
    assert "Reference answer: B. an animal" in first and TRACES[0].text in first
    assert server.headers[0]["Authorization"] == "Bearer sk-test"
    # Same cache, a new judge (another process or a later run): nothing is sent.
    again = _judge(server, tmp_path)
    assert again.judge(list(reversed(TRACES))) == verdicts[:3][::-1]
    assert len(server.requests) == 3 and again.requests_sent == 0
    # A changed output is a new key; so is another judge model.
    again.judge([Trace(Q, OPTS, 1, TRACES[0].text + " ")])
    assert len(server.requests) == 4
    other = LLMReasoningJudge(server.url, "judge-2", cache_dir=tmp_path / "cache", sleep=Sleeps())
    other.judge(TRACES[:1])
    assert len(server.requests) == 5 and other.fingerprint != judge.fingerprint
    assert judge.key(TRACES[0]) != other.key(TRACES[0]) and PROMPT_VERSION.startswith("reasoning-judge")


def test_llm_judge_retries_http_errors_and_malformed_answers(server, tmp_path):
    server.script = [500, 429, "bad", "garbage", "nokey"]
    sleeps = Sleeps()
    judge = _judge(server, tmp_path, sleep=sleeps, max_retries=5, backoff_base=1.0, seed=0)
    assert judge.judge(TRACES[:1])[0].coherent
    assert len(server.requests) == 6
    assert_exponential_backoff(sleeps.calls, 5)


def test_llm_judge_clear_error_after_max_retries(server, tmp_path):
    server.script = [503] * 10
    judge = _judge(server, tmp_path, max_retries=2)
    with pytest.raises(JudgeError) as e:
        judge.judge(TRACES[:1])
    msg = str(e.value)
    assert judge.key(TRACES[0])[:16] in msg and "not judged after 3 attempts" in msg
    assert "injected 503" in msg and len(server.requests) == 3
    # Malformed answers exhausted: the error shows the last one.
    server.script = ["bad"] * 3
    with pytest.raises(JudgeError, match="unparseable answer.*looks fine to me"):
        judge.judge(TRACES[:1])
    # Nothing was cached and the claim was released: a later call succeeds.
    server.script = []
    assert judge.judge(TRACES[:1])[0].coherent


def test_llm_judge_does_not_retry_client_errors(server, tmp_path):
    server.script = [401]
    with pytest.raises(JudgeError, match="HTTP 401"):
        _judge(server, tmp_path).judge(TRACES[:1])
    assert len(server.requests) == 1


def test_parse_verdict():
    assert parse_verdict('{"coherent": true, "reason": "ok"}') == {"coherent": True, "reason": "ok"}
    assert parse_verdict('<think>{"coherent": true}</think> {"coherent": "no"}') == \
        {"coherent": False, "reason": ""}
    from visual_priors.data.chat import AnswerError
    for bad in ("fine", '{"reason": "x"}', '{"coherent": "maybe"}', "[true]"):
        with pytest.raises(AnswerError):
            parse_verdict(bad)


# ----------------------------------------------------------------------- the rule judge

VOCAB = {"kinds": ["koop", "drul", "bleff", "faiz", "wopla"],
         "colours": ["red", "blue", "green", "purple", "black"]}
FACTS = {"koop": {"use": "pulling carts", "habitat": "forest", "legs": 4, "material": "wood",
                  "category": "animal"},
         "drul": {"use": "making rope", "habitat": "marsh", "legs": 2, "material": "cloth",
                  "category": "animal"}}
EVIDENCE = {"present": [{"name": "koop", "colour": "red"}, {"name": "drul", "colour": "blue"}],
            "facts": {"koop": FACTS["koop"]}, "answer_text": "an animal"}


def _rule(text, question=Q, options=OPTS, answer=1, evidence=EVIDENCE):
    return RuleJudge(VOCAB).judge_one(Trace(question, options, answer, text, "science",
                                            "knowledge", evidence))


GOOD = ("The object on the left is a red koop. Koops have four legs and are used for pulling "
        "carts, so it is an animal.\nAnswer: B")


def test_rule_judge_accepts_a_correct_trace_with_true_evidence():
    v = _rule(GOOD)
    assert v.coherent, v.reason
    assert v.words == trace_words(GOOD) == 24
    assert "koop" in v.reason and "B (an animal)" in v.reason
    # A denial is not a claim, plurals and possessives are kinds, a quoted option is a citation.
    assert _rule("There is no blue koop here: the koop's colour is red, and koops are "
                 "animals.\nAnswer: B").coherent


@pytest.mark.parametrize("text, why", [
    (GOOD.replace("a red koop", "a blue koop"), "states a blue koop, but the image has the koop in red"),
    (GOOD.replace("a red koop.", "a koop. The koop is green."), "states a green koop"),
    (GOOD.replace("four legs", "six legs"), "states the koop has 6 legs, but it has 4"),
    ("The object on the left is a six-legged koop, an animal.\nAnswer: B", "has 6 legs"),
    (GOOD.replace("Answer: B", "Answer: C"), "picks C (a plant), not B (an animal)"),
    # No answer line: parse_answer reads the whole output, which names no option here.
    ("The object on the left is a red koop with four legs.\nI am not sure.", "picks no option"),
    (GOOD.replace("red koop", "red koop next to a bleff"), "names a bleff"),
    ("It is clearly an animal, as anyone can tell.\nAnswer: B", "gives no evidence"),
])
def test_rule_judge_rejects(text, why):
    v = _rule(text)
    assert not v.coherent and why in v.reason, v.reason


def test_rule_judge_attributes_leg_counts_to_the_right_kind():
    evidence = {**EVIDENCE, "facts": FACTS}
    text = ("The koop has 4 legs and the drul has 2 legs, so 6 legs in total. The red koop is on "
            "the left.\nAnswer: B")
    assert _rule(text, evidence=evidence).coherent
    v = _rule(text.replace("drul has 2", "drul has 4"), evidence=evidence)
    assert not v.coherent and v.reason == "states the drul has 4 legs, but it has 2"
    # Legless is zero legs; a kind without facts cannot be checked.
    assert "has 0 legs" in _rule("The red koop is legless.\nAnswer: B").reason
    assert _rule("The red koop is an animal; the drul has 8 legs.\nAnswer: B").coherent


def test_rule_judge_evidence_can_be_a_fact_alone():
    q, opts = "What do people use the koop for?", ("pulling carts", "making rope", "racing", "pickling")
    ev = {"present": [], "facts": {"koop": FACTS["koop"]}, "answer_text": "pulling carts"}
    assert _rule("Koops live in the forest.\nAnswer: A", q, opts, 0, ev).coherent
    assert not _rule("People use it for that.\nAnswer: A", q, opts, 0, ev).coherent


def test_rule_judge_quoted_options_and_kinds_named_by_the_question():
    q = "Which description matches the image?"
    opts = ("a red koop above a blue drul", "a green koop above a blue drul",
            "a red koop below a blue drul", "a red faiz above a blue drul")
    text = ("The koop is red, so option B (a green koop above a blue drul) is wrong, and there is "
            "no faiz. The red koop is above the blue drul.\nAnswer: A")
    v = _rule(text, q, opts, 0)
    assert v.coherent, v.reason
    assert not _rule(text.replace("The red koop is above", "The green koop is above"), q, opts, 0).coherent


def test_rule_judge_on_world_questions():
    from visual_priors.world import World

    world = World(seed=0)
    judge = RuleJudge(world_vocabulary(world))
    q = world.question("diagram", "test", 1)      # how many legs has the object the arrow points to
    target = next(k for k in world.kinds if k.index == q.fact_kinds[0])
    source = next(o for o in q.scene.objects if o.kind.name in q.question and o.kind is not target)
    letter = "ABCD"[q.answer]
    right = (f"The arrow starts at the {source.colour} {source.kind.name} and points to the "
             f"{target.name}. A {target.name} has {target.legs} legs.\nAnswer: {letter}")
    v = judge.judge_one(world_trace(world, q, right))
    assert v.coherent, v.reason
    wrong = right.replace(f"has {target.legs} legs", f"has {target.legs + 2} legs")
    assert not judge.judge_one(world_trace(world, q, wrong)).coherent
    t = world_trace(world, q, right)
    assert (t.benchmark, t.category) == ("diagram", "knowledge")
    assert t.evidence["facts"][target.name]["legs"] == target.legs
    assert t.evidence["answer_text"] == q.options[q.answer]


# ----------------------------------------------------------------------- summary

def test_summarize_hand_checked():
    traces = [Trace("q", ("a", "b"), 0, "x", bench, cat) for bench, cat in
              [("science", "knowledge"), ("science", "knowledge"), ("math", "knowledge"),
               ("count", "vision_centric")]]
    verdicts = [Verdict(True, "", 10), Verdict(False, "", 20), Verdict(True, "", 30),
                Verdict(False, "", 41)]
    s = summarize(traces, verdicts)
    assert (s["soundness"], s["depth"], s["n"]) == (50.0, 25.25, 4)
    assert s["by_category"] == {"knowledge": {"soundness": pytest.approx(200 / 3), "depth": 20.0, "n": 3},
                                "vision_centric": {"soundness": 0.0, "depth": 41.0, "n": 1}}
    assert s["by_benchmark"]["science"] == {"soundness": 50.0, "depth": 15.0, "n": 2}
    assert s["by_benchmark"]["math"] == {"soundness": 100.0, "depth": 30.0, "n": 1}
    empty = summarize([], [])
    assert empty["n"] == 0 and math.isnan(empty["soundness"]) and math.isnan(empty["depth"])
    with pytest.raises(ValueError):
        summarize(traces, verdicts[:3])
