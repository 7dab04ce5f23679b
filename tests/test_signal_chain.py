"""The signal chain's measurements: intervals, margins, the verdict, probes, descriptions."""

from __future__ import annotations

import re

import numpy as np
import pytest

from visual_priors.analysis import curves
from visual_priors.eval import signal, stats
from visual_priors.world import World
from visual_priors.world.describe import describe
from visual_priors.world.language_tasks import knowledge_items
from visual_priors.world.questions import QUADRANTS


@pytest.fixture(scope="module")
def world():
    return World(seed=0)


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (37, 60), (60, 60)])
def test_wilson_interval_matches_its_closed_form(k, n):
    z2 = 1.959963984540054 ** 2
    p = k / n
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = np.sqrt(z2 * p * (1 - p) / n + z2 * z2 / (4 * n * n)) / (1 + z2 / n)
    lo, hi = stats.wilson_interval(k, n)
    assert lo == pytest.approx(max(0.0, centre - half), abs=1e-9)
    assert hi == pytest.approx(min(1.0, centre + half), abs=1e-9)
    assert stats.wilson_interval(k / n * n + 1e-9, n) == (lo, hi)  # accuracy x n counts whole hits


def test_grouped_mean_combines_families_as_a_plain_mean():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(1.0, 1.0, 50), rng.normal(3.0, 2.0, 200)])
    groups = ["a"] * 50 + ["b"] * 200
    out = stats.grouped_mean(values, groups, {"a": "x", "b": "x"})
    ma, mb = values[:50].mean(), values[50:].mean()
    sa, sb = values[:50].std(ddof=1) / np.sqrt(50), values[50:].std(ddof=1) / np.sqrt(200)
    cat = out["categories"]["x"]
    # The category is the plain mean of its families (as vqa.summarize), not of all questions.
    assert cat["mean"] == pytest.approx((ma + mb) / 2)
    assert cat["se"] == pytest.approx(np.sqrt(sa**2 + sb**2) / 2)
    assert cat["ci"][0] == pytest.approx(cat["mean"] - 1.959963984540054 * cat["se"])
    assert out["groups"]["a"]["n"] == 50 and out["overall"]["mean"] == pytest.approx(cat["mean"])


def test_margins_and_paired_difference():
    scores = np.array([[-1.0, -2.0, -3.0, -np.inf], [-5.0, -1.0, -2.0, -4.0], [-1.0, -1.5, -9.0, -9.0]])
    answers = [0, 0, 1]
    m = signal.margins(scores, answers)
    assert m.tolist() == [1.0, -4.0, -0.5]
    blind = np.array([[-2.0, -1.0, -3.0, -np.inf], [-5.0, -1.0, -2.0, -4.0], [-1.0, -1.5, -9.0, -9.0]])
    diff = signal.paired_difference(scores, blind, answers, ["f", "f", "g"], {"f": "c", "g": "c"})
    # Question 0 flips from wrong to right; the others are unchanged.
    assert diff["accuracy"]["groups"]["f"]["mean"] == pytest.approx(0.5)
    assert diff["margin"]["groups"]["f"]["mean"] == pytest.approx((1.0 - (-1.0)) / 2)


def _probe(acc, chance, n=500):
    return {"accuracy": acc, "chance": chance, "ci": list(stats.wilson_interval(acc * n, n))}


def test_verdict_names_the_first_broken_hop():
    good = {"H1": {"kind": _probe(0.95, 1 / 14), "colour": _probe(0.99, 1 / 8)},
            "H2": {"all": _probe(0.9, 1 / 14), "chance": 1 / 14},
            "H3": {"heldout": _probe(0.85, 0.25), "chance": 0.25},
            "H4": {"general": {**_probe(0.7, 0.3), "chance": 0.3}},
            "H5": {"general": {"mean": 0.2, "ci": [0.1, 0.3]}}}
    assert signal.verdict(good)["broken"] is None
    bad = dict(good, H2={"all": _probe(0.08, 1 / 14), "chance": 1 / 14},
               H5={"general": {"mean": 0.01, "ci": [-0.05, 0.07]}})
    v = signal.verdict(bad)
    assert v["broken"] == "H2" and "H2 (connector)" in v["text"]
    assert v["holds"]["H5"] is False and "general" in v["reasons"]["H5"]
    # A probe within noise of chance breaks H1, and is named.
    v = signal.verdict(dict(good, H1={"count": _probe(0.2, 1 / 6, n=60)}))
    assert v["broken"] == "H1" and "count" in v["text"]


def test_probe_images_carry_their_labels(world):
    for i in range(12):
        image, label = world.probe_image("count", "test", i)
        assert label == i % 6 and image.shape == (32, 32, 3)
    assert [world.probe_image("position", "train", i)[1] for i in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]
    # The labelled object really is in its quadrant, clear of the midlines.
    for i in range(8):
        _, q, scene = world.probe_image("position", "test", i, with_scene=True)
        (o,) = scene.objects
        top, left = QUADRANTS[q].startswith("top"), QUADRANTS[q].endswith("left")
        assert (o.x < 16 - 3.2) == left and (o.y < 16 - 3.2) == top
        assert abs(o.x - 16) >= 3.2 and abs(o.y - 16) >= 3.2
    _, n, scene = world.probe_image("count", "test", 4, with_scene=True)
    assert len(scene.objects) == n + 1
    with pytest.raises(ValueError, match="unknown probe property"):
        world.probe_image("texture", "test", 0)


def test_description_states_what_the_questions_read(world):
    for bench in ("attribute", "count", "chart", "ocr", "text", "diagram", "multiview"):
        q = world.question(bench, "test", 3)
        text = describe(q.scene, q.views)
        for o in q.scene.objects:
            assert o.kind.name in text and o.colour in text
        if q.scene.sign is not None:
            assert q.scene.sign.text in text
        if q.scene.chart is not None:
            assert all(f"{c} {v}" in text for c, v in zip(q.scene.chart.colours, q.scene.chart.values))
        if q.views:
            assert text.startswith("left view:") and "right view:" in text
        # Facts of kinds are never stated: those stay the LLM's own knowledge.
        assert not re.search(r"\blegs?\b|\bused for\b", text)


def test_knowledge_items_ask_about_their_half_only(world):
    held = {k.name for k in world.heldout_kinds}
    for heldout in (True, False):
        items = knowledge_items(world, 30, heldout=heldout)
        assert len(items) == 30
        assert all((it.meta["kind"] in held) == heldout for it in items)
        assert all(it.contexts[0].startswith("Question: ") for it in items)


def test_unconstrained_fits_are_marked():
    x = np.array([1e12, 3e12, 1e13])
    flat = curves.fit_curve(x, [0.26, 0.25, 0.26], 0.25, n_boot=0)
    rising = curves.fit_curve(x, [0.35, 0.55, 0.75], 0.25, n_boot=0)
    assert rising.constrained
    assert not flat.constrained and "do not constrain" in flat.note
    assert curves.unconstrained_notes([flat, rising]) and len(curves.unconstrained_notes([rising])) == 0
