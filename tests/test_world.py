"""The procedural world: determinism, splits, held-out facts, question validity, labels, images."""

import collections
import re
import time

import numpy as np
import pytest

from visual_priors.world import (ALL_BENCHMARKS, BENCHMARK_CATEGORY, BENCHMARKS, CATEGORIES,
                                 GENRE_ALLOWED, GENRE_REQUIRED, GENRES, LABELS, SIZE_BIN_RANGES,
                                 SIZE_BINS, World)
from visual_priors.world.describe import describe
from visual_priors.world.instructions import described_example
from visual_priors.world.rng import Rand
from visual_priors.world.text_base import NUMBER_WORDS

KNOWLEDGE_WITH_FACTS = ("science", "reasoning", "diagram")


@pytest.fixture(scope="module")
def world():
    return World(seed=0, image_size=32)


def _same_question(a, b):
    return (a.question == b.question and a.options == b.options and a.answer == b.answer
            and a.image.tobytes() == b.image.tobytes())


# ----------------------------------------------------------------------- determinism


def test_same_seed_same_bytes(world):
    other = World(seed=0, image_size=32)
    for genre in GENRES:
        for i in (0, 7):
            a, b = world.document(genre, i), other.document(genre, i)
            assert a.text == b.text and a.labels == b.labels
    for i in range(5):
        ia, ca = world.caption_pair("train", i)
        ib, cb = other.caption_pair("train", i)
        assert ia.tobytes() == ib.tobytes() and ca == cb
    for bench in ALL_BENCHMARKS:
        assert _same_question(world.question(bench, "test", 3), other.question(bench, "test", 3))
    assert _same_question(world.mle_question("30-60", "test", 2), other.mle_question("30-60", "test", 2))
    ea, eb = world.instruction("train", 11), other.instruction("train", 11)
    assert (ea.prompt, ea.answer, ea.kind) == (eb.prompt, eb.answer, eb.kind)


def test_different_seed_differs(world):
    other = World(seed=1, image_size=32)
    assert [k.name for k in world.kinds] != [k.name for k in other.kinds]
    assert world.document("science", 0).text != other.document("science", 0).text
    assert world.render(world.scene("train", 0)).tobytes() != other.render(other.scene("train", 0)).tobytes()
    qa, qb = world.question("count", "test", 0), other.question("count", "test", 0)
    assert not _same_question(qa, qb)


def test_items_are_index_addressable():
    fresh = World(seed=0)
    direct = fresh.document("web", 10_000).text
    busy = World(seed=0)
    for i in range(5):
        busy.document("web", i)
        busy.question("spatial", "train", i)
    assert busy.document("web", 10_000).text == direct
    assert fresh.document("web", 10_000, split="test").text != direct
    assert _same_question(World(seed=0).question("depth", "test", 500), busy.question("depth", "test", 500))


# ----------------------------------------------------------------------- kinds and splits


def test_kinds(world):
    kinds = world.kinds
    assert len(kinds) == 14
    assert [k.index for k in kinds] == list(range(len(kinds)))
    assert len({k.name for k in kinds}) == len(kinds)
    assert len({(k.shape, k.pattern) for k in kinds}) == len(kinds)
    assert {k.legs for k in kinds} <= {0, 2, 4, 6, 8}
    assert all(k.legs > 0 for k in kinds if k.category == "animal")
    held = [k for k in kinds if world.is_heldout(k)]
    assert len(held) == len(kinds) // 2
    assert {k.category for k in held} == {k.category for k in kinds}
    assert world.is_heldout(held[0].index) and world.is_heldout(held[0].name)


def test_train_and_test_scenes_disjoint(world):
    keys = {}
    for split in ("train", "test"):
        scenes = [world.scene(split, i) for i in range(150)]
        assert all(world.scene_split(s) == split for s in scenes)
        keys[split] = {s.key() for s in scenes}
    assert not keys["train"] & keys["test"]
    for bench in ("count", "science", "chart"):
        for split in ("train", "test"):
            assert world.question(bench, split, 1).scene.split == split


# ----------------------------------------------------------------------- held-out facts


def test_knowledge_questions_follow_heldout_rule(world):
    for split, want_heldout in (("train", False), ("test", True)):
        for bench in BENCHMARKS["knowledge"]:
            for i in range(25):
                q = world.question(bench, split, i)
                assert all(world.is_heldout(k) == want_heldout for k in q.fact_kinds), (bench, split, i)
                if bench in KNOWLEDGE_WITH_FACTS:
                    assert q.fact_kinds
        # The kind whose fact is asked is either named (ScienceQA-style: text facts answer it)
        # or must be recognised, and then it is not read off the question.
        named = 0
        for i in range(40):
            q = world.question("science", split, i)
            is_named = q.query[2][0] == "named"
            named += is_named
            assert (world.kinds[q.fact_kinds[0]].name in q.question) == is_named
        assert 8 <= named <= 32


def test_a_described_example_asks_its_familys_question_about_the_scene_in_words(world):
    for bench in ALL_BENCHMARKS:
        ex = described_example(world, bench, "train", Rand(np.random.default_rng(3)))
        # The same draws make the family's question about the same scene, with its image.
        q = world._questions.make(bench, Rand(np.random.default_rng(3)), "train", world.train_kinds)
        assert (ex.kind, ex.source, ex.image) == ("text", "described", None)
        assert ex.prompt == f"Picture: {describe(q.scene, q.views)}\n{q.prompt}"
        assert ex.answer == q.answer_text and ex.fact_kinds == q.fact_kinds


def test_instructions_never_state_heldout_facts(world):
    held_names = [k.name for k in world.kinds if world.is_heldout(k)]
    pattern = re.compile(r"\b(" + "|".join(held_names) + r")(e?s)?\b", re.IGNORECASE)
    kinds = collections.Counter()
    sources = set()
    for i in range(600):
        ex = world.instruction("train", i)
        kinds[ex.kind] += 1
        sources.add(ex.source)
        assert not any(world.is_heldout(k) for k in ex.fact_kinds)
        if ex.kind == "text":
            assert ex.image is None
            # A question about a scene's description names the kinds it shows, never their facts.
            if ex.source != "described":
                assert not pattern.search(ex.prompt + " " + ex.answer), ex.prompt
        else:
            assert ex.image.shape == (32, 32, 3)
    assert 0.30 < kinds["text"] / 600 < 0.46 and "described" in sources
    assert set(ALL_BENCHMARKS) | {"caption", "mle"} <= sources
    # Instruction data for held-out scenes still uses non-held-out facts.
    for i in range(100):
        assert not any(world.is_heldout(k) for k in world.instruction("test", i).fact_kinds)


def test_pretraining_text_states_facts_of_all_kinds(world):
    mentioned = set()
    legs = re.compile(r"\b[Aa] (\w+) has (\w+) legs\b")
    words = {w: i for i, w in enumerate(NUMBER_WORDS)} | {"no": 0}
    by_name = {k.name: k for k in world.kinds}
    for i in range(150):
        for genre in ("encyclopedia", "science", "math"):
            text = world.document(genre, i).text
            mentioned |= {name for name in by_name if name in text}
            for name, n in legs.findall(text):
                if name in by_name:
                    assert by_name[name].legs == (int(n) if n.isdigit() else words[n]), (name, n)
    assert mentioned == set(by_name)


# ----------------------------------------------------------------------- questions


def _check(q, bench):
    assert q.benchmark == bench
    n = 2 if bench == "existence" else 4  # MME-like yes/no
    assert len(q.options) == n and len(set(q.options)) == n
    assert all(isinstance(o, str) and o for o in q.options)
    assert 0 <= q.answer < n
    assert q.image.shape == (32, 32, 3) and q.image.dtype == np.uint8


def test_every_benchmark_gives_valid_questions(world):
    assert set(BENCHMARKS) == set(CATEGORIES)
    assert all(len(b) >= 2 for b in BENCHMARKS.values())
    positions = collections.Counter()
    for bench in ALL_BENCHMARKS:
        for split in ("train", "test"):
            for i in range(15):
                q = world.question(bench, split, i)
                _check(q, bench)
                assert q.category == BENCHMARK_CATEGORY[bench]
                assert q.size_bin is None
                if len(q.options) == 4:
                    positions[q.answer] += 1
    n = sum(positions.values())
    # Four binomial standard deviations: the letter of the answer is uniform.
    assert all(abs(positions[p] - n / 4) < 4 * (n * 3 / 16) ** 0.5 for p in range(4)), positions


def _option_guesses(options) -> dict[str, int]:
    """What option-only rules pick: each is a function of the options alone."""
    idx = range(len(options))
    agree = [sum(sum(x == y for x, y in zip(options[i], options[j])) for j in idx if j != i) for i in idx]
    guesses = {"centroid": agree.index(max(agree)),
               "longest": max(idx, key=lambda i: len(options[i])),
               "shortest": min(idx, key=lambda i: len(options[i]))}
    if all(o.isdigit() for o in options):
        order = sorted(idx, key=lambda i: int(options[i]))
        guesses.update(smallest=order[0], second=order[1], third=order[2], largest=order[-1])
    return guesses


def test_options_alone_do_not_reveal_the_answer(world):
    """Every family draws its options as a set and the answer uniformly from it, so rules that see
    only the options (the one most like the others, the median number, the longest, the value
    most often right in the train split) stay at chance, neither above it nor below it."""
    n = 200
    failures = []
    for bench in ALL_BENCHMARKS + ("mle",):
        right, seen = collections.Counter(), collections.Counter()
        for i in range(n):
            q = world.question(bench, "train", i)
            right[q.answer_text] += 1
            seen.update(q.options)
        hits, counts = collections.Counter(), collections.Counter()
        for i in range(n):
            q = world.question(bench, "test", i)
            guesses = _option_guesses(q.options)
            score = [(right[o] + 1) / (seen[o] + 4) for o in q.options]
            guesses["train prior"] = score.index(max(score))
            for rule, guess in guesses.items():
                counts[rule] += 1
                hits[rule] += guess == q.answer
        chance = 1 / len(q.options)
        for rule, m in counts.items():
            acc = hits[rule] / m
            # Four standard errors of a chance-level rate: 0.12 at 200 questions.
            if m >= 20 and abs(acc - chance) >= max(0.12, 4 * (chance * (1 - chance) / m) ** 0.5):
                failures.append((bench, rule, round(acc, 3), m))
    assert not failures, failures


def test_answers_match_the_scene(world):
    for i in range(20):
        q = world.question("count", "test", i)
        objs = q.scene.objects
        text = q.question
        if "objects are in the image" in text and not any(c in text for c in ("red", "blue", "green",
                                                                              "yellow", "orange", "purple",
                                                                              "brown", "black")):
            assert int(q.answer_text) == len(objs)
        q = world.question("text", "test", i)
        assert q.answer_text == q.scene.sign.text
        q = world.question("chart", "test", i)
        chart = q.scene.chart
        if q.question.startswith("What is the value of the"):
            colour = q.question.split("the ")[2].split(" ")[0]
            assert int(q.answer_text) == chart.values[chart.colours.index(colour)]
        q = world.question("spatial", "test", i)
        names = re.findall(r"the (\w+)", q.question)
        a = next(o for o in q.scene.objects if o.kind.name == names[0])
        b = next(o for o in q.scene.objects if o.kind.name == names[-1])
        expected = {"to the left": a.x < b.x, "to the right": a.x > b.x,
                    "above": a.y < b.y, "below": a.y > b.y}[q.answer_text]
        assert expected
        q = world.question("existence", "test", i)
        assert q.options == ("Yes", "No")
        asked = re.match(r"(?:Is there|Does the picture show) an? (\w+) in the image\?", q.question)
        if asked:
            present = {o.kind.name for o in q.scene.objects}
            assert (q.answer_text == "Yes") == (asked.group(1) in present)
        q = world.question("multiview", "test", i)
        first, second = q.views
        assert q.scene is first and len(first.objects) == len(second.objects)
        zoom = second.objects[0].size / first.objects[0].size
        assert (zoom > 1.2) == (q.answer_text == "forward") and (zoom < 0.8) == (q.answer_text == "backward")


def test_mle_pixel_shares_inside_bins(world):
    for size_bin in SIZE_BINS:
        lo, hi = SIZE_BIN_RANGES[size_bin]
        for i in range(15):
            q = world.mle_question(size_bin, "test", i)
            _check(q, "mle")
            assert q.category == "mle" and q.size_bin == size_bin
            assert q.question.startswith("Which of the following")
            share = float(world.object_shares(q.scene)[0])
            assert lo <= share <= hi, (size_bin, share)
            assert q.scene.objects[0].kind.name == q.answer_text
            present = q.scene.kinds_present()
            names = {world.kinds[k].name for k in present}
            assert all(o not in names for j, o in enumerate(q.options) if j != q.answer)


# ----------------------------------------------------------------------- text


def test_document_labels_consistent_with_genre(world):
    assert len(LABELS) == 6
    seen = collections.defaultdict(set)
    for genre in GENRES:
        for i in range(60):
            d = world.document(genre, i)
            assert d.genre == genre
            assert d.labels <= set(LABELS)
            assert GENRE_REQUIRED[genre] <= d.labels <= GENRE_ALLOWED[genre], (genre, i, d.labels)
            n = len(d.text.split())
            assert 30 <= n <= 450, (genre, n)
            seen[genre].add(d.labels)
    # Labels vary within a genre: the classifier has more to learn than the genre.
    assert len(seen["web"]) > 3 and len(seen["math"]) > 1 and len(seen["encyclopedia"]) > 1


def test_documents_are_varied_and_fast(world):
    start = time.perf_counter()
    texts = [world.document(GENRES[i % len(GENRES)], i).text for i in range(1800)]
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, elapsed
    assert len(set(texts)) == len(texts)
    lengths = [len(t.split()) for t in texts]
    assert min(lengths) < 80 and max(lengths) > 300


# ----------------------------------------------------------------------- images


@pytest.mark.parametrize("size", [32, 64])
def test_render_shape_and_captions(size):
    w = World(seed=3, image_size=size)
    layouts = set()
    for i in range(40):
        scene = w.scene("train", i)
        layouts.add(scene.layout)
        img = w.render(scene)
        assert img.shape == (size, size, 3) and img.dtype == np.uint8
        assert img.std() > 5
        cap = w.caption(scene)
        assert cap == w.caption(scene)
        for o in scene.objects:
            assert o.kind.name in cap or scene.layout != "scene" or len(scene.objects) > 2
    assert {"scene", "chart", "card", "diagram"} <= layouts
    q = w.question("count", "test", 0)
    assert q.image.shape == (size, size, 3)


def test_caption_names_colours_and_positions(world):
    for i in range(30):
        scene = world.scene("train", i)
        if scene.layout != "scene" or len(scene.objects) > 2 or scene.sign is not None:
            continue
        cap = world.caption(scene)
        for o in scene.objects:
            assert f"{o.colour} {o.kind.name}" in cap or f"{o.colour} {o.kind.plural}" in cap


def test_code_documents_run_and_print_what_they_claim(world):
    import contextlib
    import io

    from visual_priors.world.genres_code import program
    from visual_priors.world.rng import Rand

    for i in range(120):
        src, labels = program(Rand.of(0, "train", "code-test", i), world.kinds, i % 3 == 0)
        assert "code_reasoning" in labels
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(src, f"<program {i}>", "exec"), {})
        printed = out.getvalue().strip().splitlines()
        claimed = re.findall(r"^print\(.*\)  # (.*)$", src, re.M)
        assert printed[-len(claimed):] == claimed if claimed else printed, src
