"""Scales, mixtures, profiles and config loading, with the errors bad input must produce."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from visual_priors.config import loading, mixtures, profiles, scales

PAPER_DIR = Path(__file__).resolve().parents[2] / "shared" / "paper"


def test_unknown_scale_lists_valid_names():
    with pytest.raises(ValueError, match="unknown scale 't9'.*t1, t2, t3, t4, t5"):
        scales.get("t9")


def test_scale_fields_are_consistent():
    for name in scales.ALL_SCALES:
        c = scales.get(name)
        assert c.head_dim * c.n_heads == c.d_model
        assert c.n_heads % c.n_kv_heads == 0


@pytest.mark.skipif(not (PAPER_DIR / "table2_mixtures.csv").exists(), reason="paper tables not beside the clone")
def test_mixtures_equal_paper_table2():
    with open(PAPER_DIR / "table2_mixtures.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["recipe"] for r in rows] == list(mixtures.MIXTURES)
    for r in rows:
        for src in mixtures.MIXTURE_SOURCES:
            assert mixtures.MIXTURES[r["recipe"]][src] == pytest.approx(float(r[src]) / 100)


def test_mixture_lookup_normalises_and_rejects_unknown():
    w = mixtures.get("mix1")  # the paper's row sums to 99.9
    assert sum(w.values()) == pytest.approx(1.0, abs=1e-12)
    assert mixtures.get("balanced") == mixtures.get("mix6")
    with pytest.raises(ValueError, match="unknown mixture 'mix11'.*mix0"):
        mixtures.get("mix11")


def test_weights_that_do_not_sum_to_one_fail_with_the_sum():
    with pytest.raises(ValueError, match="sum to 0.9"):
        mixtures.resolve({"web_crawl": 0.5, "code": 0.4})
    with pytest.raises(ValueError, match="non-negative"):
        mixtures.resolve({"web_crawl": 1.5, "code": -0.5})
    assert mixtures.resolve({"web_crawl": 0.25, "code": 0.75}) == {"web_crawl": 0.25, "code": 0.75}


def test_profiles_keep_paper_numbers():
    paper = profiles.get("paper")
    assert paper.pretrain.optim.lr == 3e-4 and paper.pretrain.optim.warmup_steps == 1024
    assert paper.pretrain.seq_len == 2048 and paper.pretrain.batch_size == 1024
    assert paper.align.optim.lr == 1e-3 and paper.align.optim.warmup_frac == 0.06
    assert paper.sft.optim.lr == 4e-5 and paper.sft.optim.warmup_frac == 0.03
    assert paper.seed == 42
    with pytest.raises(ValueError, match="valid profiles: tiny, paper"):
        profiles.get("huge")


def test_load_with_overrides_and_validation(tmp_path):
    cfg = loading.load("experiments/quickstart.py:tiny", ["pretrain.optim.lr=0.01", "scales=('t1',)"])
    assert cfg.pretrain.optim.lr == 0.01 and tuple(cfg.scales) == ("t1",)
    with pytest.raises(KeyError, match="'lrr' is not in pretrain.optim"):
        loading.load("experiments/quickstart.py", ["pretrain.optim.lrr=1"])
    with pytest.raises(ValueError, match="unknown scale"):
        loading.load("experiments/quickstart.py", ["scales=('t1','huge')"])
    with pytest.raises(ValueError, match="unknown mixture"):
        loading.load("experiments/quickstart.py", ["mixtures=('mix0','nope')"])
    with pytest.raises(FileNotFoundError):
        loading.load(str(tmp_path / "missing.py"))
