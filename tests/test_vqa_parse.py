"""The paper's three-step answer parser (App. H)."""

from visual_priors.eval.vqa import parse_answer, summarize

OPTIONS = ["red", "dark red", "blue", "green"]


def test_explicit_letters():
    assert parse_answer("The correct answer is (B)", OPTIONS) == 1
    assert parse_answer("Answer: C", OPTIONS) == 2
    assert parse_answer("(D) because it is green", OPTIONS) == 3
    assert parse_answer("I think it is (A)", OPTIONS) == 0
    assert parse_answer("B.", OPTIONS) == 1
    assert parse_answer("A", OPTIONS) == 0


def test_lowercase_article_is_not_a_letter():
    # "a" in "the answer is a ..." must not be read as option A
    assert parse_answer("the answer is a blue one", OPTIONS) == 2


def test_exact_option_text():
    assert parse_answer("Green.", OPTIONS) == 3
    assert parse_answer("  dark red ", OPTIONS) == 1


def test_longest_substring_wins():
    assert parse_answer("it looks dark red to me", OPTIONS) == 1
    assert parse_answer("surely red", OPTIONS) == 0


def test_no_answer():
    assert parse_answer("I cannot tell", OPTIONS) is None


def test_overall_is_mean_over_benchmarks_not_categories():
    acc = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.0}
    cat = {"a": "general", "b": "general", "c": "general", "d": "knowledge"}
    s = summarize(acc, cat)
    assert s["overall"] == 0.75
    assert s["categories"] == {"general": 1.0, "knowledge": 0.0}
