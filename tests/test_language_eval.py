"""Zero-shot language battery: lm-eval scoring, real-task loaders, world tasks, run_battery."""

import json
import math
import re

import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from flax import nnx

from visual_priors.config import scales
from visual_priors.eval import language, lm_tasks
from visual_priors.eval.language import (MCItem, encode_pair, evaluate_cloze,
                                         evaluate_multiple_choice, multiple_choice_metrics,
                                         rolling_perplexity, run_battery, score_multiple_choice)
from visual_priors.model.llm import Llama
from visual_priors.model.scoring import token_logprobs
from visual_priors.world import World
from visual_priors.world import language_tasks as lt
from visual_priors.world.kinds import ALL_USES
from visual_priors.world.questions import FACT_VALUE


class _CharTokenizer:
    """A byte-level stand-in tokenizer, so the tests need no trained vocabulary."""
    pad_id, bos_id, eos_id, vocab_size = 0, 1, 2, 64

    def encode(self, text):
        return [3 + (ord(c) % 61) for c in text]


class _WordTokenizer:
    """Words carry their leading space, as SentencePiece pieces do; a lone space is a token."""
    pad_id, bos_id, eos_id = 0, 1, 2

    def __init__(self):
        self.vocab = {}

    def encode(self, text):
        return [self.vocab.setdefault(p, 3 + len(self.vocab)) for p in re.findall(r" ?\S+| ", text)]


@pytest.fixture(scope="module")
def model():
    cfg = scales.get("t1")
    cfg.vocab_size, cfg.n_layers = 64, 1
    return Llama(cfg, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def world():
    return World(seed=0)


@nnx.jit
def _forward(model, tokens):
    return token_logprobs(model, tokens), model(tokens[:, :-1])


def _independent(model, tok, context, continuation, seq_len):
    """One unpadded forward of [BOS] + context + continuation, cut to its last seq_len + 1
    tokens: (continuation log-likelihood, whether greedy decoding reproduces it)."""
    cont = tok.encode(continuation)
    row = ([tok.bos_id] + tok.encode(context) + cont)[-(seq_len + 1):]
    lp, logits = _forward(model, jnp.asarray([row], jnp.int32))
    greedy = np.asarray(jnp.argmax(logits[0], -1))[-len(cont):]
    return float(jnp.sum(lp[0, -len(cont):])), bool(np.all(greedy == np.asarray(cont)))


# ----------------------------------------------------------------------- scoring


def test_multiple_choice_equals_one_forward_per_option(model):
    tok = _CharTokenizer()
    # Most rows are longer than seq_len + 1 and lose tokens from the left (which also keeps the
    # number of shapes the unpadded forwards compile for small); the short ones are padded.
    items = [
        MCItem.choice("Question: which of these is red?\nAnswer:", ["a tomato", "the sky", "grass"], 0),
        MCItem.choice("Q: pick\nA:", ["xy", "a much longer option"], 1),
        MCItem.choice("a long preamble that does not fit in the window " * 2 + "so:",
                      ["yes", "no", "maybe", "never"], 2),
        MCItem.partial(["The cup fell off the table because the cup",
                        "The cup fell off the table because the pot"], "was wobbly.", 1,
                       options=["the cup", "the pot"]),
        MCItem.choice("Short:", ["é", "ab"], 0),
    ]
    seq_len = 24
    scores = score_multiple_choice(model, tok, items, seq_len=seq_len, batch_size=3)
    acc = norm = 0
    for item, got in zip(items, scores):
        want = [_independent(model, tok, c, t, seq_len)[0]
                for c, t in zip(item.contexts, item.continuations)]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        acc += int(np.argmax(want)) == item.gold
        norm += int(np.argmax(np.array(want) / np.array(item.lengths))) == item.gold
    res = evaluate_multiple_choice(model, tok, items, seq_len=seq_len, batch_size=3)
    assert res == {"acc": acc / len(items), "acc_norm": norm / len(items), "n": len(items)}
    # acc_norm divides by UTF-8 bytes of the choice, without the delimiter
    assert items[4].lengths == (2, 2) and items[0].lengths == (8, 7, 5)
    assert items[3].lengths == (len("was wobbly."),) * 2


def test_acc_norm_differs_from_acc():
    item = MCItem.choice("ctx", ["a", "bbbbbbbb"], 1)
    # summed log-probs favour the short choice, per byte the long one
    res = multiple_choice_metrics([item], [np.array([-2.0, -4.0])])
    assert res == {"acc": 0.0, "acc_norm": 1.0, "n": 1}


def test_encode_pair_keeps_whitespace_with_the_continuation():
    tok = _WordTokenizer()
    ctx, cont = encode_pair(tok, "Question: is it?\nAnswer: ", "yes")
    assert ctx == [tok.bos_id] + tok.encode("Question: is it?\nAnswer:")
    assert cont == tok.encode(" yes")
    ctx2, cont2 = encode_pair(tok, "Answer:", " no")
    assert cont2 == tok.encode(" no") and ctx2[1:] == tok.encode("Answer:")


def test_cloze_greedy_and_perplexity_match_independent_forward(model):
    tok = _CharTokenizer()
    items = [lt.ClozeItem(*lt.split_last_word(t)) for t in
             ("the cat sat on the mat", "a a a a a a a a a a a a a a a a a a a a a a a a a a a")]
    assert items[0].context == "the cat sat on the" and items[0].target == " mat"
    res = evaluate_cloze(model, tok, items, seq_len=24, batch_size=4)
    lls, hits = zip(*[_independent(model, tok, it.context, it.target, 24) for it in items])
    assert res["acc"] == pytest.approx(np.mean(hits))
    assert res["perplexity"] == pytest.approx(math.exp(-np.mean(lls)), rel=1e-4)


def test_rolling_windows_cover_every_token_once(model):
    tokens = list(range(10, 10 + 75))
    reqs = language._rolling_requests(tokens, 1, 32)
    assert [t for _, cont in reqs for t in cont] == tokens
    assert reqs[0][0] == [1]
    for ctx, cont in reqs:
        assert len(ctx) + len(cont) <= 33
        assert ([1] + tokens)[:([1] + tokens).index(cont[0])][-len(ctx):] == ctx
    # a document shorter than the window is one forward from BOS
    tok = _CharTokenizer()
    text = "A short page.\nWith two  lines."
    res = rolling_perplexity(model, tok, [text], seq_len=64)
    ll = float(jnp.sum(_forward(model, jnp.asarray([[1] + tok.encode(text)], jnp.int32))[0]))
    assert res["words"] == 6 and res["tokens"] == len(text)
    assert res["word_perplexity"] == pytest.approx(math.exp(-ll / 6), rel=1e-4)
    assert res["token_perplexity"] == pytest.approx(math.exp(-ll / len(text)), rel=1e-4)


# ----------------------------------------------------------------------- real-task loaders


def _jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _parquet(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records), path)
    return path


def test_winogrande_partial_scoring_by_hand(tmp_path, model):
    doc = {"sentence": "The ball would not fit in the case because _ was too big.",
           "option1": "the ball", "option2": "the case", "answer": "1"}
    root = tmp_path / "winogrande"
    _parquet(root / "winogrande_xl" / "validation-00000-of-00001.parquet", [doc])
    _parquet(root / "winogrande_xl" / "train-00000-of-00001.parquet", [dict(doc, answer="2")] * 3)
    _parquet(root / "winogrande_debiased" / "validation-00000-of-00001.parquet",
             [dict(doc, answer="2")] * 5)
    (item,) = lm_tasks.load_task("winogrande", root)
    assert item.contexts == ("The ball would not fit in the case because the ball",
                             "The ball would not fit in the case because the case")
    assert item.continuations == (" was too big.",) * 2 and item.gold == 0
    tok = _CharTokenizer()
    by_hand = []
    for ctx in item.contexts:
        row = [tok.bos_id] + tok.encode(ctx) + tok.encode(" was too big.")
        lp, _ = _forward(model, jnp.asarray([row], jnp.int32))
        by_hand.append(float(jnp.sum(lp[0, -len(" was too big."):])))
    (got,) = score_multiple_choice(model, tok, [item], seq_len=128)
    np.testing.assert_allclose(got, by_hand, rtol=1e-4, atol=1e-4)
    res = evaluate_multiple_choice(model, tok, [item], seq_len=128)
    assert res["acc"] == float(np.argmax(by_hand) == 0) == res["acc_norm"]


def test_piqa_and_boolq_layouts(tmp_path):
    piqa = _parquet(tmp_path / "piqa.parquet", [
        {"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Eat the lid.", "label": 0}])
    (item,) = lm_tasks.load_task("piqa", piqa)
    assert item.contexts[0] == "Question: Open a jar\nAnswer:"
    assert item.continuations == (" Twist the lid.", " Eat the lid.") and item.gold == 0
    sg = _jsonl(tmp_path / "boolq" / "val.jsonl",
                [{"passage": "Cats purr.", "question": "do cats purr", "idx": 0, "label": 1}])
    (item,) = lm_tasks.load_task("boolq", sg.parent)
    assert item.contexts[0] == "Cats purr.\nQuestion: do cats purr?\nAnswer:"
    assert item.continuations == (" no", " yes") and item.gold == 1
    google = _jsonl(tmp_path / "google.jsonl",
                    [{"passage": "Dogs bark.", "question": "do dogs meow", "answer": False}])
    assert lm_tasks.load_task("boolq", google)[0].gold == 0


def test_hellaswag_preprocess(tmp_path):
    doc = {"ind": 4, "activity_label": "Removing ice from car",
           "ctx_a": "Then, the man writes over the snow covering the window of a car.",
           "ctx_b": "then", "endings": ["The man [title] cleans the  window.", "[header] It melts.",
                                        "A dog barks.", "He stops."],
           "label": "2", "source_id": "x", "split": "val", "split_type": "indomain"}
    path = _parquet(tmp_path / "hellaswag" / "data" / "validation-00000-of-00001.parquet", [doc])
    (item,) = lm_tasks.load_task("hellaswag", path.parents[1])
    assert item.contexts[0] == ("Removing ice from car: Then, the man writes over the snow "
                                "covering the window of a car. Then")
    # as lm-eval: strip comes before the [header] removal, so a space can stay in front
    assert item.options == ("The man. cleans the window.", " It melts.", "A dog barks.", "He stops.")
    assert item.gold == 2


def test_arc_openbookqa_sciq_copa_layouts(tmp_path):
    root = tmp_path / "ai2_arc"
    easy = [{"id": "a", "question": "Which is a metal?",
             "choices": {"text": ["wood", "iron", "glass", "cloth"], "label": ["1", "2", "3", "4"]},
             "answerKey": "2"},
            {"id": "b", "question": "Which is wet?",
             "choices": {"text": ["water", "sand"], "label": ["A", "B"]}, "answerKey": "A"}]
    _parquet(root / "ARC-Easy" / "test-00000-of-00001.parquet", easy)
    _parquet(root / "ARC-Easy" / "train-00000-of-00001.parquet", easy[::-1])
    _parquet(root / "ARC-Challenge" / "test-00000-of-00001.parquet",
             [dict(easy[0], answerKey="4")])
    items = lm_tasks.load_task("arc_easy", root)
    assert [i.gold for i in items] == [1, 0]
    assert items[0].contexts[0] == "Question: Which is a metal?\nAnswer:"
    assert items[0].continuations[1] == " iron"
    assert [i.gold for i in lm_tasks.load_task("arc_challenge", root)] == [3]
    assert len(lm_tasks.load_task("arc_easy", root, limit=1)) == 1

    obqa = _jsonl(tmp_path / "obqa" / "main" / "test.jsonl", [
        {"id": "1", "question_stem": "The sun is a", "answerKey": "C",
         "choices": {"text": ["moon", "planet", "star", "rock"], "label": ["A", "B", "C", "D"]}}])
    (item,) = lm_tasks.load_task("openbookqa", obqa.parents[1])
    assert item.contexts[0] == "The sun is a" and item.gold == 2

    (item,) = lm_tasks.load_task("sciq", _jsonl(tmp_path / "sciq_test.jsonl", [
        {"question": "What gas do plants take in?", "distractor1": "oxygen", "distractor2": "helium",
         "distractor3": "neon", "correct_answer": "carbon dioxide", "support": "  Plants use CO2."}]))
    assert item.contexts[0] == "Plants use CO2.\nQuestion: What gas do plants take in?\nAnswer:"
    assert item.options == ("oxygen", "helium", "neon", "carbon dioxide") and item.gold == 3

    (item,) = lm_tasks.load_task("copa", _jsonl(tmp_path / "copa.jsonl", [
        {"premise": "My body cast a shadow over the grass.", "choice1": "The sun was rising.",
         "choice2": "The grass was cut.", "question": "cause", "idx": 0, "label": 0}]))
    assert item.contexts[0] == "My body cast a shadow over the grass because"
    assert item.continuations == (" the sun was rising.", " the grass was cut.") and item.gold == 0


def test_lambada_and_wikitext_layouts(tmp_path):
    (item,) = lm_tasks.load_task("lambada", _jsonl(tmp_path / "lambada_test.jsonl",
                                                   [{"text": "he gave the dog a bone"}]))
    assert (item.context, item.target) == ("he gave the dog a", " bone")
    pages = lm_tasks.load_task("wikitext", _parquet(
        tmp_path / "wikitext-2-raw-v1" / "test-00000-of-00001.parquet",
        [{"page": " = Title = \n Some text . \n"}, {"page": "Another page"}]).parents[0])
    assert pages == [" = Title = \n Some text . \n", "Another page"]


def test_bad_layout_names_the_file_and_field(tmp_path):
    bad = _jsonl(tmp_path / "piqa.jsonl", [{"goal": "x", "sol1": "a", "sol2": "b"}])
    with pytest.raises(lm_tasks.TaskFormatError, match=r"piqa\.jsonl.*'label'") as err:
        lm_tasks.load_task("piqa", bad)
    assert isinstance(err.value, ValueError)
    arc = _jsonl(tmp_path / "arc.jsonl", [{"question": "q", "answerKey": "A"}])
    with pytest.raises(ValueError, match=r"arc\.jsonl.*'choices\.text'"):
        lm_tasks.load_task("arc_easy", arc)
    only_train = tmp_path / "hs"
    _jsonl(only_train / "train.jsonl", [{"x": 1}])
    with pytest.raises(lm_tasks.TaskFormatError, match="validation"):
        lm_tasks.load_task("hellaswag", only_train)


# ----------------------------------------------------------------------- world tasks


def test_world_tasks_are_deterministic_and_held_out(world):
    for task in lt.WORLD_TASKS:
        a, b = lt.make_task(world, task, 6), lt.make_task(World(seed=0), task, 6)
        assert a == b, task
        assert lt.make_task(world, task, 3, start=3) == a[3:], task
        assert lt.make_task(World(seed=1), task, 6) != a, task
    assert lt.wikitext_documents(world, 2) == [world.document("encyclopedia", i, "test").text
                                               for i in range(2)]
    for item in lt.make_task(world, "world_continuation", 20):
        assert item.meta["scene"].split == "test"


def _kind_in(world, text):
    found = [k for k in world.kinds if re.search(rf"\b{k.name}(es|s)?\b", text)]
    assert len(found) == 1, (text, found)
    return found[0]


_COREF_CUES = {"burned": "wood", "rust": "metal", "heavy": "stone", "shattered": "glass",
               "soaked": "cloth"}


def _oracle(world, task, item):
    """Answer from the world's fact table or the passage, never from the item's gold."""
    if task == "world_facts":
        k = _kind_in(world, item.contexts[0])
        return item.options.index(FACT_VALUE[item.meta["fact"]](k))
    if task == "world_physical":
        kinds = [_kind_in(world, o) for o in item.options]
        if item.meta["mode"] == "use":
            use = next(u for u in ALL_USES if u in item.contexts[0])
            return [k.use for k in kinds].index(use)
        return [k.material for k in kinds].index(item.meta["value"])
    if task == "world_continuation":
        ctx = item.contexts[0]
        place = re.search(r"walked over to the one (.+) and$", ctx).group(1)
        names = [_kind_in(world, o).name for o in item.options]
        hits = [i for i, n in enumerate(names) if f"{n} {place}," in ctx or f"{n} {place}." in ctx
                or f"{n} {place} and" in ctx]
        assert len(hits) == 1
        return hits[0]
    if task == "world_yesno":
        question = item.contexts[0].split("\nQuestion: ")[1]
        k = _kind_in(world, question)
        assert k.name in item.contexts[0].split("\n")[0].lower()
        return int(getattr(k, item.meta["fact"]) == item.meta["value"])
    if task == "world_coref":
        material = next(m for cue, m in _COREF_CUES.items() if cue in item.continuations[0])
        return [world.kind(o).material for o in item.options].index(material)
    raise AssertionError(task)


def test_world_items_are_answerable_by_an_oracle(world):
    for task in lt.WORLD_MC_TASKS:
        items = lt.make_task(world, task, 200)
        assert all(_oracle(world, task, it) == it.gold for it in items), task
    for item in lt.make_task(world, "lambada", 200):
        word = item.target.strip()
        assert item.target == " " + word and " " not in word
        if item.meta["slot"] == "name":
            assert _kind_in(world, item.context).name == word
        else:
            names = "|".join(k.name for k in world.kinds)
            last = re.findall(rf"\b({names})\b", item.context)[-1]
            assert getattr(world.kind(last), item.meta["slot"]) == word
            assert word in item.context  # stated earlier in the passage too


def test_world_options_are_symmetric(world):
    """Rules that read only the options stay at chance; so does the gold position."""
    for task in lt.WORLD_MC_TASKS:
        items = lt.make_task(world, task, 400)
        prior = {}
        for it in lt.make_task(world, task, 400, start=400):
            prior[it.options[it.gold]] = prior.get(it.options[it.gold], 0) + 1
        n = items[0].n_options
        chance = 1.0 / n
        rules = {
            "first": lambda it: 0,
            "longest": lambda it: int(np.argmax(it.lengths)),
            "shortest": lambda it: int(np.argmin(it.lengths)),
            "alphabetical": lambda it: int(np.argmin([sorted(it.options).index(o) for o in it.options])),
            "prior": lambda it: int(np.argmax([prior.get(o, 0) for o in it.options])),
        }
        for name, rule in rules.items():
            acc = np.mean([rule(it) == it.gold for it in items])
            assert abs(acc - chance) < 0.08, (task, name, acc)
        counts = np.bincount([it.gold for it in items], minlength=n) / len(items)
        assert np.all(np.abs(counts - chance) < 0.08), (task, counts)


# ----------------------------------------------------------------------- battery


def test_run_battery_returns_every_key(tmp_path, model, world):
    piqa = _jsonl(tmp_path / "piqa.jsonl", [
        {"goal": f"Goal {i}", "sol1": "Do it.", "sol2": "Do not.", "label": i % 2} for i in range(5)])
    out = run_battery(model, _CharTokenizer(), world=world,
                      tasks=lt.WORLD_TASKS + ("piqa",), n_per_task=3, seq_len=64,
                      paths={"piqa": str(piqa)}, batch_size=8, progress=False)
    json.dumps(out)
    assert set(out["perplexity"]) == {"wikitext", "lambada", "mean"}
    assert out["perplexity"]["mean"] == pytest.approx(
        (out["perplexity"]["wikitext"] + out["perplexity"]["lambada"]) / 2)
    assert out["perplexity"]["wikitext"] == out["wikitext"]["word_perplexity"]
    assert 0.0 <= out["lambada_acc"] <= 1.0
    assert set(out["tasks"]) == set(lt.WORLD_MC_TASKS) | {"piqa"}
    for res in out["tasks"].values():
        assert set(res) == {"acc", "acc_norm", "n"} and res["n"] == 3
    assert out["avg_acc"] == pytest.approx(np.mean([r["acc"] for r in out["tasks"].values()]))
    assert out["sources"]["piqa"] == str(piqa) and out["sources"]["lambada"] == "world"


def test_unknown_or_unavailable_tasks_fail_with_the_valid_names(model, world):
    tok = _CharTokenizer()
    with pytest.raises(ValueError, match="valid: .*world_facts.*piqa"):
        run_battery(model, tok, world=world, tasks=("wikitext", "nope"), progress=False)
    with pytest.raises(ValueError, match="hellaswag.*paths"):
        run_battery(model, tok, world=world, tasks=("hellaswag",), progress=False)
    with pytest.raises(ValueError, match="world"):
        run_battery(model, tok, tasks=("world_facts",), progress=False)
