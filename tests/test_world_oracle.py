"""World benchmarks are answerable from the image and not from the question alone.

A scripted oracle that reads each question's scene answers every question right; a text-only
model trained on the train split's questions and options stays near chance on the test split,
except on Knowledge, whose questions that name their kind the world's fact table answers.
"""

import zlib

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from visual_priors.world import ALL_BENCHMARKS, BENCHMARK_CATEGORY, World
from visual_priors.world.oracle import scene_oracle, text_oracle

N_TRAIN, N_TEST = 300, 150
DIM = 1 << 14


@pytest.fixture(scope="module")
def world():
    return World(seed=0, image_size=32)


@pytest.mark.parametrize("bench", ALL_BENCHMARKS + ("mle",))
def test_scene_oracle_answers_every_question(world, bench):
    for split in ("train", "test"):
        for i in range(30):
            q = world.question(bench, split, i)
            assert scene_oracle(q, world) == q.answer, (split, i, q.question, q.options, q.answer_text)


def test_scene_oracle_can_fail(world):
    """The oracle reads the scene, not the label: a question put on another scene loses it."""
    wrong = 0
    for i in range(40):
        a, b = world.question("count", "test", i), world.question("count", "test", i + 100)
        moved = type(a)(**{**a.__dict__, "scene": b.scene})
        wrong += scene_oracle(moved, world) != a.answer
    assert wrong >= 15


def _words(text: str) -> list[str]:
    return text.lower().replace("?", " ").replace(".", " ").replace(",", " ").split()


def _features(q) -> np.ndarray:
    """Hashed bag of option words, question-word x option-word pairs and option position, one
    row per option."""
    rows = np.zeros((len(q.options), DIM), np.float32)
    qw = _words(q.question)
    for j, opt in enumerate(q.options):
        ow = _words(opt)
        keys = [f"o:{w}" for w in ow] + [f"p:{j}", f"n:{len(q.options)}"]
        keys += [f"x:{a}|{b}" for a in qw for b in ow]
        for k in keys:
            rows[j, zlib.crc32(k.encode()) % DIM] += 1.0
    return rows


def _text_only_accuracy(world, bench) -> tuple[float, float]:
    X, y = [], []
    for i in range(N_TRAIN):
        q = world.question(bench, "train", i)
        X.append(_features(q))
        y += [int(j == q.answer) for j in range(len(q.options))]
    model = LogisticRegression(C=1.0, max_iter=300).fit(np.concatenate(X), y)
    hits, chance = 0, 0.0
    for i in range(N_TEST):
        q = world.question(bench, "test", i)
        hits += int(np.argmax(model.decision_function(_features(q))) == q.answer)
        chance += 1 / len(q.options)
    return hits / N_TEST, chance / N_TEST


@pytest.mark.parametrize("bench", [b for b in ALL_BENCHMARKS if BENCHMARK_CATEGORY[b] != "knowledge"]
                         + ["mle"])
def test_text_alone_stays_near_chance(world, bench):
    acc, chance = _text_only_accuracy(world, bench)
    # Four standard errors of a chance-level rate on 150 questions (0.14 at four options).
    margin = 4 * (chance * (1 - chance) / N_TEST) ** 0.5
    assert acc < chance + margin, (bench, acc, chance)
    assert all(text_oracle(world.question(bench, "test", i), world) is None for i in range(30))


def test_knowledge_needs_only_text_facts_where_the_kind_is_named(world):
    for bench, least in (("science", 0.35), ("reasoning", 0.1)):
        right = answered = 0
        for i in range(N_TEST):
            q = world.question(bench, "test", i)
            guess = text_oracle(q, world)
            if guess is not None:
                answered += 1
                right += guess == q.answer
        assert answered >= least * N_TEST and right == answered, (bench, answered, right)
    # Diagram and math questions need the image as well.
    assert all(text_oracle(world.question(b, "test", i), world) is None
               for b in ("diagram", "math") for i in range(30))
