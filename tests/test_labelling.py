"""Segment labellers (lexical, LLM judge, distilled), the registry and the label-rate report."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest

from visual_priors.data.labelling import (ALL_LABELS, LABELS, Labeller, get_labeller, names_to_bits,
                                          with_combinations)
from visual_priors.data.labelling import report
from visual_priors.world import GENRES, World

from chat_server import ChatServer, Sleeps, assert_exponential_backoff

BASE = {name: j for j, name in enumerate(LABELS)}


@pytest.fixture(scope="module")
def world():
    return World(seed=0)


@pytest.fixture(scope="module")
def test_excerpts(world):
    return report.world_excerpts(world, "test", 40)


def _floors(pr, precision, recall):
    bad = {n: (round(pr[n]["precision"], 3), round(pr[n]["recall"], 3)) for n in LABELS
           if not (pr[n]["precision"] >= precision and pr[n]["recall"] >= recall)}
    assert not bad, f"below precision {precision} / recall {recall}: {bad}"


# ----------------------------------------------------------------------- world excerpts

def test_world_excerpts_are_deterministic_and_truly_labelled(world):
    a = report.world_excerpts(world, "train", 3, genres=("web", "code"))
    b = report.world_excerpts(world, "train", 3, genres=("web", "code"))
    assert a.texts == b.texts and np.array_equal(a.bits, b.bits) and len(a) == 6
    assert a.genres == ["web"] * 3 + ["code"] * 3
    assert a.bits[3:, BASE["code_reasoning"]].all()    # every code excerpt carries code
    for i in range(3):
        text, labels = report.world_excerpt(world, "math", "test", i, cut="word", min_words=150,
                                            max_words=160)
        assert 150 <= len(text.split()) <= 160 and "math_reasoning" in labels
    # A single whole document: the excerpt's labels are the document's.
    d = world.document("science", 7, "train")
    assert d.labels_between(0, len(d.text)) == d.labels


# ----------------------------------------------------------------------- lexical

def test_lexical_reaches_floors_on_world_test_excerpts(test_excerpts):
    lab = get_labeller("lexical")
    pr = report.precision_recall(lab.label(test_excerpts.texts), test_excerpts.bits)
    # Measured on these 360 excerpts: precision >= 0.986, recall >= 0.993 on every base label.
    _floors(pr, precision=0.95, recall=0.95)


def test_lexical_reaches_floors_on_word_cut_excerpts(world):
    # Excerpts cut anywhere: a unit's labels count from its first character inside, so recall
    # is bounded by how much of a unit must show before it is recognisable.
    ex = report.world_excerpts(world, "test", 40, cut="word")
    pr = report.precision_recall(get_labeller("lexical").label(ex.texts), ex.bits)
    # Measured: precision >= 0.981, recall >= 0.957.
    _floors(pr, precision=0.93, recall=0.90)


PYTHON = '''def moving_average(values, window):
    """Running mean over a sliding window."""
    if window <= 0:
        raise ValueError("window must be positive")
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out
'''
REAL = {
    "python": (PYTHON, {"code_reasoning"}),
    "c": ("int main(void) {\n    int total = 0;\n    for (int i = 0; i < 10; i++) {\n"
          "        total += i;\n    }\n    printf(\"%d\\n\", total);\n    return 0;\n}\n",
          {"code_reasoning"}),
    "math": ("Solve 3x + 5 = 20 for x. Subtract 5 from both sides to get 3x = 15, then divide "
             "both sides by 3, so x = 5. Check: 3 * 5 + 5 = 20.", {"math_reasoning"}),
    "science": ("Plants bend towards a window because a hormone called auxin collects on the "
                "shaded side of the stem. As a result, the cells on that side grow longer than "
                "those on the lit side, which means that the stem curves towards the light.",
                {"science_reasoning"}),
    "visual": ("a red round ball to the left of the wooden box",
               {"visual_concept", "visual_attribute", "visual_relationship"}),
    "scene": ("In the photo, a small brown dog sits on a blue blanket next to an old wooden "
              "chair.", {"visual_concept", "visual_attribute", "visual_relationship"}),
    "business": ("The committee will meet on Tuesday to discuss the budget proposal and the new "
                 "hiring policy. Members are asked to send their comments by Friday.", set()),
    "news": ("Shares in the company rose 4 per cent on Monday after it reported higher than "
             "expected quarterly profits and announced a new chief executive.", set()),
    # A play's stage directions are bracketed prose, not code (Shakespeare in the starter corpus).
    "play": ("[Enter PAROLLES.]\nPAROLLES. Save you, fair queen!\nHELENA. And you, monarch!\n"
             "[Exit COUNTESS.]\nPAROLLES. No.\n[Exeunt BERTRAM and LAFEU.]\n", set()),
    "history": ("The treaty was signed in 1648 after decades of conflict. Historians still debate "
                "its political consequences for the balance of power in Europe.", set()),
}


@pytest.mark.parametrize("key", sorted(REAL))
def test_lexical_flags_real_text(key):
    text, expected = REAL[key]
    bits = get_labeller("lexical").label([text])[0]
    assert {LABELS[j] for j in np.flatnonzero(bits)} == expected


def test_lexical_reads_programs_as_code_only():
    # Arithmetic, colours and "so" inside a program are code, not math, colour or science.
    prog = ('# Count things of one colour; x grows to the right, so smaller x is further left.\n'
            'scene = [("dax", "red", 3, 4), ("blick", "blue", 9, 1)]\n'
            'total = 3 * 4 + 1\n'
            'def count(objects, colour):\n'
            '    return sum(1 for o in objects if o[1] == colour)\n'
            'print(count(scene, "red"))  # 1\n')
    bits = get_labeller("lexical").label([prog])[0]
    assert [LABELS[j] for j in np.flatnonzero(bits)] == ["code_reasoning"]
    # A comment that is a sentence describing a picture still describes it.
    bits = get_labeller("lexical").label(["# The picture shows a red dax and a blue blick.\n" + prog])[0]
    assert bits[BASE["visual_concept"]] and bits[BASE["visual_attribute"]]


def test_lexical_fingerprint_and_options(world):
    from visual_priors.data.labelling.lexical import LexicalLabeller, world_nouns

    a, b = LexicalLabeller(), get_labeller("lexical")
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 16
    int(a.fingerprint, 16)
    nouns = world_nouns(world)
    assert world.kinds[0].name in nouns and world.kinds[0].plural in nouns
    c = get_labeller("lexical", nouns=nouns)
    d = get_labeller("lexical", thresholds={"visual_concept": 2.0})
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3
    # With the kinds as nouns, "a red <kind>" names an object with visual detail.
    text = f"a red {world.kinds[0].name} beside a blue {world.kinds[1].name}"
    assert not a.label([text])[0, BASE["visual_concept"]]
    assert c.label([text])[0, BASE["visual_concept"]]
    with pytest.raises(ValueError, match="unknown labels"):
        LexicalLabeller(thresholds={"colour": 1})
    with pytest.raises(TypeError):
        a.label("one string")
    assert a.label([]).shape == (0, 6)


def test_registry():
    assert isinstance(get_labeller("lexical"), Labeller)
    with pytest.raises(ValueError, match="valid labellers: lexical, llm, distilled"):
        get_labeller("gpt")
    with pytest.raises(ValueError, match="valid options"):
        get_labeller("lexical", colour=True)
    with pytest.raises(ValueError, match="needs option"):
        get_labeller("distilled")


# ----------------------------------------------------------------------- llm judge

def _answer(text: str) -> dict:
    """The fake model's judgement: keyword rules, enough to check parsing end to end."""
    return {"code_reasoning": "def " in text, "math_reasoning": "=" in text,
            "science_reasoning": "because" in text, "visual_concept": "picture" in text,
            "visual_attribute": "red" in text, "visual_relationship": "left of" in text}


def _respond(step: str, body: dict) -> str | None:
    """The fake model's reply for a script step: "ok", "bad" (unparseable answer) or "garbage"
    (a non-JSON body)."""
    text = body["messages"][-1]["content"]
    return {"ok": "<think>easy</think>\n" + json.dumps(_answer(text)),
            "bad": "I think it is about code.", "garbage": None}[step]


@pytest.fixture
def server():
    s = ChatServer(_respond)
    yield s
    s.close()


def _llm(server, tmp_path, **kw):
    kw.setdefault("sleep", Sleeps())
    return get_labeller("llm", url=server.url, model="judge-1", cache_dir=tmp_path / "cache",
                        concurrency=4, timeout=10, **kw)


TEXTS = ["def f(x):\n    return x", "2 + 3 = 5", "it floats because wood is light",
         "the picture shows a red cup left of a jug", "nothing here"]


def test_llm_parses_labels_and_caches_across_instances(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    lab = _llm(server, tmp_path)
    bits = lab.label(TEXTS + [TEXTS[0]])                # a repeated segment is sent once
    expected = np.array([[_answer(t)[n] for n in LABELS] for t in TEXTS + [TEXTS[0]]])
    assert np.array_equal(bits, expected)
    assert len(server.requests) == len(TEXTS)
    req = server.requests[0]
    assert req["model"] == "judge-1" and req["temperature"] == 0
    assert all(n in req["messages"][0]["content"] for n in LABELS)
    assert server.headers[0]["Authorization"] == "Bearer sk-test"
    # Same cache, a new labeller (as another process or a later run would be): nothing is sent.
    again = _llm(server, tmp_path)
    assert np.array_equal(again.label(list(reversed(TEXTS))), expected[:5][::-1])
    assert len(server.requests) == len(TEXTS) and again.requests_sent == 0
    # A new segment is sent; the cached ones still are not.
    again.label(TEXTS + ["a red hat"])
    assert len(server.requests) == len(TEXTS) + 1


def test_llm_retries_then_succeeds(server, tmp_path):
    server.script = [500, 429, "bad", "garbage"]
    sleeps = Sleeps()
    lab = _llm(server, tmp_path, sleep=sleeps, max_retries=5, backoff_base=1.0, backoff_max=30,
               seed=0)
    bits = lab.label([TEXTS[3]])
    assert np.array_equal(bits[0], [_answer(TEXTS[3])[n] for n in LABELS])
    assert len(server.requests) == 5
    assert_exponential_backoff(sleeps.calls, 4)


def test_llm_clear_error_after_max_retries(server, tmp_path):
    from visual_priors.data.labelling.llm_judge import LLMJudgeError

    server.script = [503] * 10
    lab = _llm(server, tmp_path, max_retries=2)
    with pytest.raises(LLMJudgeError) as e:
        lab.label(["some segment"])
    msg = str(e.value)
    assert lab.key("some segment")[:16] in msg and "3 attempts" in msg
    assert "injected 503" in msg                        # the last response
    assert len(server.requests) == 3
    # Nothing was cached and the claim was released: a later call tries again.
    server.script = []
    assert lab.label(["some segment"]).shape == (1, 6)


def test_llm_does_not_retry_client_errors(server, tmp_path):
    from visual_priors.data.labelling.llm_judge import LLMJudgeError

    server.script = [401]
    with pytest.raises(LLMJudgeError, match="HTTP 401"):
        _llm(server, tmp_path).label(["x"])
    assert len(server.requests) == 1


def test_llm_waits_for_a_segment_claimed_elsewhere(server, tmp_path):
    from visual_priors.data.labelling.llm_judge import PROMPT_VERSION, LabelCache, cache_key

    cache = LabelCache(tmp_path / "cache" / "labels.sqlite")
    key = cache_key("judge-1", PROMPT_VERSION, "shared segment")
    assert cache.claim(key, "other-process", lease_s=600) == "claimed"
    answer = np.array([1, 0, 0, 1, 0, 0], bool)
    # While we wait, the other process finishes and stores its answer.
    lab = _llm(server, tmp_path, sleep=Sleeps(hook=lambda: cache.put(key, answer)))
    assert np.array_equal(lab.label(["shared segment"])[0], answer)
    assert len(server.requests) == 0


def test_llm_fingerprint(server, tmp_path):
    a, b = _llm(server, tmp_path), _llm(server, tmp_path)
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 16
    c = get_labeller("llm", url=server.url, model="judge-2", cache_dir=tmp_path)
    d = get_labeller("llm", url="http://127.0.0.1:1/v1", model="judge-1", cache_dir=tmp_path)
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3


def test_parse_answer():
    from visual_priors.data.labelling.llm_judge import AnswerError, parse_answer

    full = {n: False for n in LABELS} | {"math_reasoning": True}
    assert parse_answer(json.dumps(full)).tolist() == [False, True, False, False, False, False]
    fenced = "```json\n" + json.dumps(full | {"visual_concept": "yes"}) + "\n```"
    assert parse_answer(fenced)[BASE["visual_concept"]]
    assert parse_answer("<think>{not this}</think>" + json.dumps(full))[BASE["math_reasoning"]]
    for bad in ("no json", "{", json.dumps({"code_reasoning": True}),
                json.dumps(full | {"code_reasoning": "maybe"}), "[1, 2]"):
        with pytest.raises(AnswerError):
            parse_answer(bad)


def test_rate_limiter_with_injected_clock():
    from visual_priors.data.labelling.llm_judge import RateLimiter

    now = [100.0]
    lim = RateLimiter(2.0, clock=lambda: now[0], sleep=lambda s: None)
    assert [lim.reserve() for _ in range(4)] == [0.0, 0.5, 1.0, 1.5]
    now[0] += 10.0                                     # idle: the bucket refills, up to burst
    assert lim.reserve() == 0.0 and lim.reserve() == 0.5
    burst = RateLimiter(1.0, burst=3, clock=lambda: 0.0, sleep=lambda s: None)
    assert [burst.reserve() for _ in range(5)] == [0.0, 0.0, 0.0, 1.0, 2.0]
    # Shared by threads: every thread gets its own slot, none twice.
    waits: list[float] = []
    shared = RateLimiter(4.0, clock=lambda: 0.0, sleep=waits.append)
    threads = [threading.Thread(target=shared.acquire) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == [0.25 * k for k in range(1, 8)]
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_llm_requests_go_through_the_rate_limiter(server, tmp_path):
    sleeps = Sleeps()
    lab = _llm(server, tmp_path, sleep=sleeps, requests_per_second=5.0, clock=lambda: 0.0)
    lab.label(TEXTS[:4])
    assert sorted(sleeps.calls) == pytest.approx([0.2, 0.4, 0.6])


# ----------------------------------------------------------------------- distilled

@pytest.fixture(scope="module")
def distilled_model(world, tmp_path_factory):
    from visual_priors.data.labelling import distilled

    tr = report.world_excerpts(world, "train", 60)
    path = tmp_path_factory.mktemp("distilled") / "model"
    lab = distilled.train(tr.texts, tr.bits, path, source="world ground truth", n_features=2 ** 16)
    return lab, path


def test_distilled_reaches_floors_on_held_out_excerpts(distilled_model, test_excerpts):
    lab, _ = distilled_model
    pr = report.precision_recall(lab.label(test_excerpts.texts), test_excerpts.bits)
    # Measured (540 train excerpts, 2**16 features per analyser): precision >= 0.855,
    # recall >= 0.929 on every base label.
    _floors(pr, precision=0.80, recall=0.85)


def test_distilled_round_trips_bit_exactly(distilled_model, test_excerpts):
    lab, path = distilled_model
    loaded = get_labeller("distilled", path=path)
    assert loaded.fingerprint == lab.fingerprint and len(lab.fingerprint) == 16
    texts = test_excerpts.texts[:50]
    assert np.array_equal(loaded.decision(texts), lab.decision(texts))
    assert np.array_equal(loaded.label(texts), lab.label(texts))
    assert loaded.meta["trained_on"]["source"] == "world ground truth"
    assert not any(p.suffix == ".pkl" for p in Path(path).iterdir())


def test_distilled_refuses_corrupt_or_foreign_files(distilled_model, tmp_path):
    import shutil

    from visual_priors.data.labelling.distilled import DistilledFormatError, load

    _, path = distilled_model
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    weights = bad / "weights.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(DistilledFormatError, match="corrupt"):
        load(bad)
    meta = json.loads((path / "labeller.json").read_text())
    (bad / "labeller.json").write_text(json.dumps(meta | {"format": "something.else"}))
    with pytest.raises(DistilledFormatError, match="not a distilled labeller"):
        load(bad)
    (bad / "labeller.json").write_text("{ truncated")
    with pytest.raises(DistilledFormatError, match="not valid JSON"):
        load(bad)
    with pytest.raises(DistilledFormatError, match="not found"):
        load(tmp_path / "nowhere")


def test_distilled_handles_one_class_labels(tmp_path):
    from visual_priors.data.labelling import distilled

    texts = ["def f(): return 1", "print(2)", "a red cup", "a blue box"]
    bits = np.zeros((4, 6), bool)
    bits[:2, 0] = True                                  # only code ever varies
    lab = distilled.train(texts, bits, None, n_features=2 ** 10)
    out = lab.label(texts)
    assert not out[:, 1:].any()
    with pytest.raises(ValueError, match="unknown hyper"):
        distilled.train(texts, bits, None, learning_rate=1)


# ----------------------------------------------------------------------- report

def test_label_rates_and_combinations():
    bits = np.array([[1, 0, 0, 0, 0, 0],
                     [1, 1, 0, 0, 0, 1],
                     [0, 0, 0, 0, 0, 0],
                     [0, 0, 1, 1, 1, 0]], bool)
    rates = report.label_rates({"a": bits, "b": bits[:1]})
    assert list(rates["a"]) == list(ALL_LABELS)
    assert rates["a"] == {"code_reasoning": 50.0, "math_reasoning": 25.0, "science_reasoning": 25.0,
                          "reasoning_combination": 75.0, "visual_concept": 25.0,
                          "visual_attribute": 25.0, "visual_relationship": 25.0,
                          "visual_combination": 50.0}
    assert rates["b"]["reasoning_combination"] == 100.0 and rates["b"]["visual_combination"] == 0.0
    # The combinations are "any of" their three labels.
    full = with_combinations(bits)
    assert np.array_equal(full[:, 3], bits[:, :3].any(1)) and np.array_equal(full[:, 7], bits[:, 3:].any(1))
    assert math.isnan(report.label_rates({"empty": np.zeros((0, 6), bool)})["empty"]["code_reasoning"])
    csv = report.format_rates(rates, "csv").splitlines()
    assert csv[0] == "source," + ",".join(ALL_LABELS)
    assert csv[1] == "a,50.0,25.0,25.0,75.0,25.0,25.0,25.0,50.0"
    table = report.format_rates(rates)
    assert "visual_combination" in table and "75.0" in table
    with pytest.raises(ValueError, match="valid formats"):
        report.format_rates(rates, "xml")


def test_format_rates_beside_a_reference():
    bits = np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0]], bool)
    rates = report.label_rates({"code": bits, "arts": bits})
    ref = {"code": (96.7, 13.3, 6.8, 97.3, 3.3, 2.0, 2.4, 3.7)}
    csv = report.format_rates(rates, "csv", beside=ref).splitlines()
    assert csv[1].startswith("code,50.0,0.0")
    assert csv[2] == "code (table 4),96.7,13.3,6.8,97.3,3.3,2.0,2.4,3.7"
    assert csv[3] == "code (difference),-46.7,-13.3,-6.8,-47.3,+46.7,-2.0,-2.4,+46.3"
    assert csv[4].startswith("arts,") and len(csv) == 5  # no reference row for arts


def test_format_rates_reproduces_the_paper_table_layout():
    paper = Path(__file__).resolve().parents[2] / "shared" / "paper" / "table4_label_rates.csv"
    if not paper.is_file():
        pytest.skip("the paper's tables are not checked out next to the repository")
    lines = paper.read_text().splitlines()
    rates = {row.split(",")[0]: dict(zip(ALL_LABELS, map(float, row.split(",")[1:])))
             for row in lines[1:]}
    assert report.format_rates(rates, "csv").splitlines() == lines


def test_precision_recall_hand_computed():
    true = names_to_bits([{"code_reasoning"}, {"code_reasoning", "visual_concept"}, set(),
                          {"visual_attribute"}])
    pred = names_to_bits([{"code_reasoning"}, set(), {"code_reasoning"}, {"visual_relationship"}])
    pr = report.precision_recall(pred, true)
    code = pr["code_reasoning"]
    assert (code["precision"], code["recall"], code["support"]) == (0.5, 0.5, 2)
    assert code["f1"] == 0.5
    assert pr["reasoning_combination"]["precision"] == 0.5
    # Visual combination: true on rows 1, 3; predicted on row 3 -> precision 1, recall 1/2.
    vis = pr["visual_combination"]
    assert (vis["precision"], vis["recall"]) == (1.0, 0.5) and vis["f1"] == pytest.approx(2 / 3)
    assert math.isnan(pr["math_reasoning"]["precision"]) and math.isnan(pr["math_reasoning"]["recall"])
    assert pr["visual_relationship"]["precision"] == 0.0 and pr["visual_relationship"]["f1"] == 0.0
    assert math.isnan(pr["visual_relationship"]["recall"])
    assert math.isnan(pr["visual_attribute"]["precision"]) and pr["visual_attribute"]["recall"] == 0.0
    assert math.isnan(pr["math_reasoning"]["f1"])
    csv = report.format_precision_recall(pr, "csv").splitlines()
    assert csv[0] == "label,precision,recall,f1,support"
    assert csv[1] == "code_reasoning,0.500,0.500,0.500,2"
    assert len(csv) == 1 + len(ALL_LABELS)
    with pytest.raises(ValueError):
        report.precision_recall(pred[:2], true)


def test_precision_recall_intervals():
    rng = np.random.default_rng(1)
    true = rng.random((120, 6)) < 0.3
    pred = true ^ (rng.random((120, 6)) < 0.15)  # about 15% of the bits flipped
    plain = report.precision_recall(pred, true)
    pr = report.precision_recall(pred, true, intervals=True)
    for name, m in pr.items():
        for ratio in ("precision", "recall", "f1"):
            assert m[ratio] == plain[name][ratio]
            low, high = m[f"{ratio}_ci"]
            assert 0 <= low <= m[ratio] <= high <= 1, (name, ratio)
            assert high - low < 0.4
    # Precision's interval is scipy's Wilson interval, not a normal approximation.
    from scipy.stats import binomtest

    code = pr["code_reasoning"]
    hits = int(np.sum(pred[:, 0] & true[:, 0]))
    ci = binomtest(hits, int(pred[:, 0].sum())).proportion_ci(0.95, method="wilson")
    assert code["precision_ci"] == pytest.approx([ci.low, ci.high])
    # The bootstrap is seeded: the same call gives the same interval; more data, narrower.
    assert report.precision_recall(pred, true, intervals=True) == pr
    big = report.precision_recall(np.tile(pred, (8, 1)), np.tile(true, (8, 1)), intervals=True)
    width = lambda m: m["f1_ci"][1] - m["f1_ci"][0]  # noqa: E731
    assert width(big["reasoning_combination"]) < width(pr["reasoning_combination"])
    csv = report.format_precision_recall(pr, "csv").splitlines()
    assert csv[0] == ("label,precision,precision_low,precision_high,recall,recall_low,recall_high,"
                      "f1,f1_low,f1_high,support")
    assert "[" in report.format_precision_recall(pr)


def test_every_genre_is_covered(test_excerpts):
    assert set(test_excerpts.genres) == set(GENRES)


def test_docs_quote_the_prompt_verbatim():
    from visual_priors.data.labelling.llm_judge import LABEL_DEFINITIONS, SYSTEM_PROMPT

    doc = Path(__file__).resolve().parents[1] / "docs" / "labelling.md"
    text = doc.read_text()
    for name, definition in LABEL_DEFINITIONS.items():
        assert f"- `{name}`: {definition}" in text, name
    intro, _, tail = SYSTEM_PROMPT.partition("\n\n")
    assert intro in text and tail.rpartition("\n\n")[2] in text


def test_labeller_from_config(world):
    from visual_priors.data.labelling import labeller_from_config
    from visual_priors.data.labelling.lexical import world_nouns

    assert labeller_from_config({"name": "lexical"}).fingerprint == get_labeller("lexical").fingerprint
    lab = labeller_from_config({"name": "lexical", "nouns": "world"}, world=world)
    assert lab.fingerprint == get_labeller("lexical", nouns=world_nouns(world)).fingerprint
    with pytest.raises(ValueError, match="needs a name"):
        labeller_from_config({"nouns": []})
    with pytest.raises(ValueError, match="needs a world"):
        labeller_from_config({"name": "lexical", "nouns": "world"})


def test_real_corpora_default_to_the_real_text_rules():
    from visual_priors.config import profiles
    from visual_priors.data.labelling import config_for_source, labeller_from_config

    default = profiles.get("paper").data.labeller
    real = labeller_from_config(config_for_source(default, real_text=True))
    world = labeller_from_config(config_for_source(default, real_text=False))
    assert (real.rules, world.rules) == ("real", "world")
    # Labels cached under the world rules' fingerprint are not reused for real text.
    assert real.fingerprint != world.fingerprint
    assert world.fingerprint == get_labeller("lexical").fingerprint
    # Rules named in the config, and other backends, are left as they are.
    assert config_for_source({"name": "lexical", "rules": "world"}, True)["rules"] == "world"
    assert config_for_source({"name": "distilled", "path": "x"}, True) == {"name": "distilled", "path": "x"}


# A paper's paragraph (written for this test in the register of the starter corpus's ACL papers):
# everyday words used as technical terms.
PAPER = ("We fine-tune BERT on the annotated corpus and build a small classifier on top of the "
         "encoder. Figure 2 shows the accuracy of each baseline: our model (red line) outperforms "
         "the parser by a large margin, as can be seen in Table 3. Each parse tree is flattened "
         "into a bag of words over a context window, and GloVe embeddings initialise the field "
         "vectors. The upper part of Table 4 reports precision and recall after a second round of "
         "training; the numbers in green mark the best scores, as pointed out by Smith et al.")


def test_real_rules_read_technical_usage_as_no_sight():
    real = get_labeller("lexical", rules="real")
    bits = real.label([PAPER])[0]
    assert not bits[BASE["visual_concept"]:].any(), [LABELS[j] for j in np.flatnonzero(bits)]
    # The same cues in a description are still read, and a description of a picture inside a
    # paper (an image caption quoted as an example) still counts.
    assert real.label([REAL["scene"][0]])[0][BASE["visual_concept"]:].all()
    caption = PAPER + ' For example, the image shows "a brown dog sitting on a red sofa".'
    assert real.label([caption])[0][[BASE["visual_concept"], BASE["visual_attribute"]]].all()
    # The world rules have no technical register: their outputs (and fingerprint) are unchanged.
    assert get_labeller("lexical").label([PAPER])[0][BASE["visual_attribute"]]
