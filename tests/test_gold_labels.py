"""The gold set loads, rejects bad files by name, and the default labeller for real corpora keeps
its held-out F1 (a drift guard: a rule change that loses real-text quality fails here)."""

import json

import pytest

from visual_priors.config import profiles
from visual_priors.data.labelling import config_for_source, labeller_from_config
from visual_priors.data.labelling.gold import GOLD_PATH, GoldFormatError, load_gold
from visual_priors.data.labelling.report import precision_recall


def test_gold_file_is_valid_and_split():
    gold = load_gold()
    assert len(gold) >= 300
    dev, held = gold.subset("dev"), gold.subset("heldout")
    assert len(dev) + len(held) == len(gold) and not set(dev.ids) & set(held.ids)


def test_default_labeller_for_real_text_keeps_its_heldout_f1():
    held = load_gold().subset("heldout")
    config = config_for_source(profiles.get("paper").data.labeller, real_text=True)
    pr = precision_recall(labeller_from_config(config).label(held.texts), held.bits)
    assert pr["reasoning_combination"]["f1"] >= 0.8
    assert pr["visual_combination"]["f1"] >= 0.7
    for name in ("code_reasoning", "visual_concept", "visual_attribute"):  # >= 20 positives
        assert pr[name]["support"] >= 20 and pr[name]["f1"] >= 0.6, name


@pytest.mark.parametrize("row, field", [
    ({"split": "test"}, "split"), ({"labels": ["shiny"]}, "labels"), ({"text": 3}, "text")])
def test_bad_gold_row_names_file_and_field(tmp_path, row, field):
    good = json.loads(GOLD_PATH.read_text().splitlines()[0])
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({**good, **row}) + "\n")
    with pytest.raises(GoldFormatError, match=rf"bad\.jsonl:1: field '{field}'"):
        load_gold(path)
