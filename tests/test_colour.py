"""PRH's colour experiment: CIELAB, Kabsch-Umeyama alignment, MDS, co-occurrence PMI, and the
probe end to end on a tiny LLM."""

import json

import numpy as np
import pytest
from flax import nnx
from scipy.spatial.distance import pdist, squareform
from scipy.spatial.transform import Rotation

from visual_priors.config import scales
from visual_priors.data import tokenizer as tokenizer_lib
from visual_priors.eval import alignment_features as af
from visual_priors.eval import colour
from visual_priors.eval.colour_space import (align_similarity, mds_embedding, shuffled_alignment,
                                             srgb_to_lab)
from visual_priors.model.llm import Llama
from visual_priors.model.params_io import save_params
from visual_priors.world import GENRES, World

# sRGB (D65) -> CIELAB reference values (Lindbloom's calculator, sRGB companding, D65 white).
LAB_REFERENCE = [
    ((255, 255, 255), (100.0, 0.0, 0.0)),
    ((0, 0, 0), (0.0, 0.0, 0.0)),
    ((255, 0, 0), (53.2408, 80.0925, 67.2032)),
    ((0, 255, 0), (87.7347, -86.1827, 83.1793)),
    ((0, 0, 255), (32.2970, 79.1875, -107.8602)),
    ((128, 128, 128), (53.5850, 0.0, 0.0)),
    ((1, 1, 1), (0.2742, 0.0, 0.0)),  # below both linear thresholds (sRGB and L*)
]


@pytest.mark.parametrize("rgb, lab", LAB_REFERENCE)
def test_srgb_to_lab_matches_reference_values(rgb, lab):
    np.testing.assert_allclose(srgb_to_lab(np.array(rgb, np.uint8)), lab, atol=0.02)


def test_srgb_to_lab_keeps_leading_shape():
    rgb = np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8)
    out = srgb_to_lab(rgb)
    assert out.shape == (1, 2, 3) and out.dtype == np.float64
    np.testing.assert_allclose(out[0, 1], srgb_to_lab([0, 0, 255]))


def _random_points(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 3)) * 20


def test_alignment_recovers_a_similarity_transform_exactly():
    z = _random_points(12)
    rotation = Rotation.from_rotvec([0.3, -1.1, 0.7]).as_matrix()
    y = 2.5 * z @ rotation.T + np.array([10.0, -4.0, 7.0])
    fit = align_similarity(z, y)
    assert fit.rms < 1e-9 and fit.normalised < 1e-10
    assert fit.scale == pytest.approx(2.5)
    np.testing.assert_allclose(fit.rotation, rotation, atol=1e-10)
    assert not fit.reflected


def test_a_mirrored_copy_aligns_only_with_reflection_allowed():
    z = _random_points(10, seed=1)
    mirrored = z * np.array([-1.0, 1.0, 1.0]) * 0.5 + 3.0
    fit = align_similarity(z, mirrored)
    assert fit.rms < 1e-9 and fit.reflected
    assert align_similarity(z, mirrored, allow_reflection=False).normalised > 0.1


def test_alignment_errors_are_rms_and_rms_over_target_spread():
    z, y = _random_points(15, seed=2), _random_points(15, seed=3)
    fit = align_similarity(z, y)
    rms = np.sqrt(((fit.aligned - y) ** 2).sum(1).mean())
    spread = np.sqrt(((y - y.mean(0)) ** 2).sum(1).mean())
    assert fit.rms == pytest.approx(rms)
    assert fit.normalised == pytest.approx(rms / spread)
    # Unrelated points do no better than collapsing onto the targets' mean (error 1).
    assert 0.5 < fit.normalised <= 1.0


def test_shuffled_baseline_separates_true_pairing_from_chance():
    y = _random_points(10, seed=4)
    z = y @ Rotation.from_rotvec([1.0, 0.2, 0.0]).as_matrix().T
    out = shuffled_alignment(z, y, n_permutations=50, seed=0)
    assert out["p_value"] == pytest.approx(1 / 51)
    assert out["normalised_mean"] > 0.5 and out["normalised_std"] > 0
    assert out == shuffled_alignment(z, y, n_permutations=50, seed=0)


def test_mds_recovers_points_that_live_in_3d():
    x = _random_points(14, seed=5)
    points, stress = mds_embedding(squareform(pdist(x)), n_init=4, random_state=0)
    assert points.shape == (14, 3)
    assert stress < 1e-2  # raw stress; the squared distances sum to ~1e5
    assert align_similarity(points, x).normalised < 1e-3


def test_mds_rejects_asymmetric_or_non_finite_input():
    d = squareform(pdist(_random_points(5)))
    with pytest.raises(ValueError, match="symmetric"):
        mds_embedding(d + np.triu(np.ones_like(d)))
    d[0, 1] = d[1, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        mds_embedding(d)


# ---------------------------------------------------------------- vision side


def test_pixel_pairs_are_distinct_pixels_within_the_radius():
    # Each pixel's colour encodes its own (image, y, x), so pairs can be traced back.
    n, s = 3, 20
    img, yy, xx = np.meshgrid(np.arange(n), np.arange(s), np.arange(s), indexing="ij")
    images = np.stack([img, yy, xx], -1).astype(np.uint8)
    a, b = colour.sample_pixel_pairs(images, 5000, radius=4, seed=3)
    assert a.shape == b.shape == (5000, 3)
    assert np.all(a[:, 0] == b[:, 0])
    d2 = (a[:, 1:].astype(int) - b[:, 1:].astype(int)) ** 2
    assert np.all((d2.sum(1) > 0) & (d2.sum(1) <= 16))
    # Every one of the 48 offsets of the radius-4 disk shows up.
    assert len({tuple(o) for o in (b[:, 1:].astype(int) - a[:, 1:].astype(int))}) == 48
    a2, b2 = colour.sample_pixel_pairs(images, 5000, radius=4, seed=3)
    assert np.array_equal(a, a2) and np.array_equal(b, b2)


def test_pmi_and_dissimilarity_of_a_hand_computed_table():
    counts = np.array([[4.0, 2.0, 0.0], [2.0, 2.0, 2.0], [0.0, 2.0, 6.0]])
    pmi, d = colour.pmi_dissimilarity(counts)
    p = counts / 20.0
    pa = np.array([6, 6, 8]) / 20.0
    assert pmi[0, 0] == pytest.approx(np.log(p[0, 0] / (pa[0] * pa[0])))
    assert pmi[1, 2] == pytest.approx(np.log(p[1, 2] / (pa[1] * pa[2])))
    # The unseen pair takes the smallest observed PMI.
    seen = pmi[counts > 0]
    assert pmi[0, 2] == pytest.approx(seen.min())
    np.testing.assert_allclose(d, np.where(np.eye(3, dtype=bool), 0.0, pmi.max() - pmi))


def test_cooccurrence_counts_grid_cells_and_their_mean_colour():
    # Two shades of red share a cell of a 2-level grid; blue is alone in its own.
    first = np.array([[200, 10, 10], [250, 0, 0], [0, 0, 255], [200, 10, 10]], np.uint8)
    second = np.array([[0, 0, 255], [200, 10, 10], [0, 0, 255], [0, 0, 255]], np.uint8)
    with pytest.raises(ValueError, match="at least 4"):
        colour.colour_cooccurrence(first, second, grid_levels=2, min_share=0.0)
    extra = np.array([[0, 255, 0], [255, 255, 255]], np.uint8)
    first, second = np.concatenate([first, extra]), np.concatenate([second, extra[::-1]])
    co = colour.colour_cooccurrence(first, second, grid_levels=2, min_share=0.0)
    cells = list(co["cells"])  # red (4), green (2), blue (1), white (7) on the 2x2x2 grid
    assert cells == [1, 2, 4, 7]
    red, blue, green, white = cells.index(4), cells.index(1), cells.index(2), cells.index(7)
    np.testing.assert_allclose(co["rgb"][red], [212.5, 7.5, 7.5])
    assert co["counts"][red, blue] == co["counts"][blue, red] == 2
    assert co["counts"][blue, blue] == 2 and co["counts"][red, red] == 2
    assert co["counts"][green, white] == 2 and co["counts"].sum() == 12
    assert co["share"].sum() == pytest.approx(1.0)


# ---------------------------------------------------------------- the probe


class _CharTokenizer:
    """A character-level stand-in, so the probe needs no trained vocabulary."""
    pad_id, bos_id, eos_id, vocab_size = 0, 1, 2, 64

    def encode(self, text):
        return [3 + (ord(c) % 61) for c in text]


@pytest.fixture(scope="module")
def tiny_llm():
    cfg = scales.get("t1")
    cfg.vocab_size = 64
    return Llama(cfg, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def images():
    return colour.world_images(World(seed=0, image_size=32), 12)


PROBE_KW = dict(n_pairs=20_000, grid_levels=4, mds_inits=2, n_permutations=30)


@pytest.fixture(scope="module")
def probe(tiny_llm, images):
    return colour.colour_probe(tiny_llm, _CharTokenizer(), images=images, seed=1, **PROBE_KW)


def test_sentence_features_ignore_padding_and_bos(tiny_llm):
    tok = _CharTokenizer()
    sentences = ["This colour is red.", "The colour of this thing is purple."]
    both = colour.sentence_features(tiny_llm, tok, sentences, layers=(1, 2))
    alone = colour.sentence_features(tiny_llm, tok, sentences[:1], layers=(1, 2))
    assert both.shape == (2, 2 * tiny_llm.cfg.d_model)
    np.testing.assert_allclose(both[0], alone[0], rtol=1e-5, atol=1e-6)
    # By hand: the mean over the sentence's own positions of the concatenated states.
    tokens = np.array([[tok.bos_id] + tok.encode(sentences[0])])
    states = tiny_llm.hidden_states(tokens)
    expect = np.concatenate([np.asarray(states[1])[0, 1:], np.asarray(states[2])[0, 1:]], -1).mean(0)
    np.testing.assert_allclose(alone[0], expect, rtol=1e-5, atol=1e-6)


def test_sentence_features_are_the_alignment_pooling_without_bos(tiny_llm):
    """One masked mean serves both probes: colour's features are alignment_features' pooling of
    the chosen states with BOS left out, and match a hand-pooled forward pass row by row."""
    tok = _CharTokenizer()
    sentences = colour.colour_sentences(["red", "purple", "yellow"])
    layers = (2, 1)  # any order, as given
    feats = colour.sentence_features(tiny_llm, tok, sentences, layers=layers, batch_size=4)
    tokens, mask = af.caption_tokens(tok, sentences)
    pooled = af.llm_features(tiny_llm, tokens, mask, layers=layers, skip_bos=True)
    assert feats.dtype == np.float64 and feats.shape == (9, 2 * tiny_llm.cfg.d_model)
    np.testing.assert_allclose(feats, pooled.reshape(9, -1), rtol=1e-6, atol=1e-7)
    forward = nnx.jit(lambda model, tokens: model.hidden_states(tokens))
    for i in (0, 8):  # the shortest sentence (most padding) and the longest, each alone, unpadded
        states = forward(tiny_llm, np.array([[tok.bos_id] + tok.encode(sentences[i])]))
        expect = np.concatenate([np.asarray(states[k])[0, 1:] for k in layers], -1).mean(0)
        np.testing.assert_allclose(feats[i], expect, rtol=1e-5, atol=1e-6)
    # Keeping BOS (the alignment step's pooling) gives other features; every state by default.
    with_bos = af.llm_features(tiny_llm, tokens, mask)
    assert with_bos.shape == (9, tiny_llm.cfg.n_layers + 1, tiny_llm.cfg.d_model)
    np.testing.assert_allclose(with_bos[:, [2, 1]], af.llm_features(tiny_llm, tokens, mask, layers=layers),
                               rtol=1e-6, atol=1e-7)
    assert not np.allclose(with_bos[:, [2, 1]].reshape(9, -1), feats, atol=1e-4)
    with pytest.raises(ValueError, match="after BOS"):
        colour.sentence_features(tiny_llm, tok, ["red", ""], layers=layers)


def test_default_layers_are_the_last_four_blocks():
    assert colour.default_layers(12) == (9, 10, 11, 12)
    assert colour.default_layers(2) == (1, 2)


def test_colour_probe_end_to_end(probe):
    lang, vis = probe["language"], probe["vision"]
    assert lang["names"] == ["red", "orange", "yellow", "green", "blue", "purple", "brown", "black"]
    assert lang["layers"] == [1, 2]
    for part in (lang, vis):
        k = len(part["names"])
        for key in ("lab", "mds", "aligned", "rgb"):
            arr = np.asarray(part[key])
            assert arr.shape == (k, 3) and np.all(np.isfinite(arr)), key
        assert np.isfinite(part["error"]) and 0 <= part["error_normalised"] <= 1
        assert part["error_normalised"] != part["shuffled"]["normalised_mean"]
        assert 0 < part["shuffled"]["p_value"] <= 1
    assert vis["n_images"] == 12 and vis["pairs_used"] <= 20_000 and len(vis["names"]) >= 4
    np.testing.assert_allclose(lang["lab"][0], srgb_to_lab(lang["rgb"][0]))
    assert probe["language_error"] == lang["error_normalised"]
    json.dumps(probe)  # JSON-able as it stands


def test_colour_probe_is_deterministic_for_a_seed(tiny_llm, images, probe):
    again = colour.colour_probe(tiny_llm, _CharTokenizer(), images=images, seed=1, **PROBE_KW)
    assert json.dumps(again) == json.dumps(probe)
    other = colour.colour_probe(tiny_llm, _CharTokenizer(), images=images, seed=2, **PROBE_KW)
    assert other["vision"]["error"] != probe["vision"]["error"]
    # A vision half computed once serves every LLM of the world.
    reused = colour.colour_probe(tiny_llm, _CharTokenizer(), vision=probe["vision"], seed=1, **PROBE_KW)
    assert json.dumps(reused) == json.dumps(probe)


def test_headline_puts_errors_beside_shuffled_mean_sd_and_p(probe):
    for half in ("language", "vision"):
        shuffled = probe[half]["shuffled"]
        assert probe[f"{half}_shuffled"] == {"mean": shuffled["normalised_mean"],
                                             "std": shuffled["normalised_std"], "p_value": shuffled["p_value"]}
    short = colour.summary(probe)
    assert set(short) == {"language_error", "language_shuffled", "vision_error", "vision_shuffled", "seed",
                          "mds_inits", "n_permutations", "language", "vision"}
    assert short["language"]["aligned"] == probe["language"]["aligned"]
    assert short["vision"]["names"] == probe["vision"]["names"] and short["n_permutations"] == 30
    assert "mds" not in short["language"] and short["language"]["layers"] == [1, 2]
    # The summary draws as the whole result does.
    assert colour.plot_colour_probe(short) == colour.plot_colour_probe(probe)


def test_world_vision_half_is_computed_once_per_world_and_settings(monkeypatch):
    render = colour.world_images
    rendered = []

    def counting(world, n_images, **kw):
        rendered.append(repr(world))
        return render(world, n_images, **kw)

    monkeypatch.setattr(colour, "world_images", counting)
    world = World(seed=3, image_size=32)
    kw = dict(n_images=6, n_pairs=5000, grid_levels=4, mds_inits=1, n_permutations=10, seed=4)
    first = colour.world_vision_probe(world, **kw)
    first["error"] = -1.0  # a copy: changing it leaves the next caller's alone
    again = colour.world_vision_probe(World(seed=3, image_size=32), **kw)
    assert len(rendered) == 1 and again["error"] >= 0
    direct = colour.vision_colour_probe(render(world, 6), **{k: v for k, v in kw.items() if k != "n_images"})
    assert json.dumps(again) == json.dumps(direct)
    colour.world_vision_probe(World(seed=4, image_size=32), **kw)
    colour.world_vision_probe(world, **{**kw, "seed": 5})
    assert len(rendered) == 3


def test_plot_writes_png_for_both_projections(probe, tmp_path):
    for projection in ("ab", "3d"):
        png = colour.plot_colour_probe(probe, tmp_path / f"c_{projection}.png", projection=projection)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / f"c_{projection}.png").read_bytes() == png
    with pytest.raises(ValueError, match="projection"):
        colour.plot_colour_probe(probe, projection="xy")


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    """A run root laid out as the suite writes it: tokenizer step, pretrain step with its LLM."""
    root = tmp_path_factory.mktemp("runs")
    world = World(seed=0, image_size=32)
    tok_dir = root / "tokenizer-aaaa"
    texts = [world.document(g, i).text for g in GENRES for i in range(40)]
    tok = tokenizer_lib.train_tokenizer(texts, scales.get("t1").vocab_size, tok_dir / "tok.model")
    (tok_dir / "result.json").write_text(json.dumps({"path": "tok.model"}))
    (tok_dir / "spec.json").write_text(json.dumps(
        {"kind": "tokenizer", "inputs": [], "fields": {"world": {"seed": 0, "image_size": 32}}}))
    pre_dir = root / "pretrain-bbbb"
    pre_dir.mkdir()
    (pre_dir / "spec.json").write_text(json.dumps(
        {"kind": "pretrain", "inputs": ["tokenizer-aaaa", "shards-cccc"], "fields": {"scale": "t1"}}))
    llm = Llama(scales.get("t1"), rngs=nnx.Rngs(7))
    save_params(pre_dir / "llm", nnx.state(llm, nnx.Param).to_pure_dict(),
                {"kind": "llm", "scale": "t1", "vocab_size": tok.vocab_size})
    return root, llm, tok


def test_probe_run_reads_a_finished_pretrain_step(run_root, tmp_path):
    root, llm, tok = run_root
    loaded, loaded_tok, loaded_world = colour.load_pretrained(root, "pretrain-bbbb")
    assert loaded_tok.vocab_size == tok.vocab_size and loaded_world.image_size == 32
    np.testing.assert_array_equal(np.asarray(loaded.embedding[...]), np.asarray(llm.embedding[...]))

    kw = dict(n_images=8, **PROBE_KW)
    result = colour.probe_run(root, "pretrain-bbbb", out=tmp_path / "colour", **kw)
    images = colour.world_images(World(seed=0, image_size=32), 8)
    direct = colour.colour_probe(llm, tok, images=images, **kw)
    assert result["language_error"] == pytest.approx(direct["language_error"])
    assert result["vision_error"] == direct["vision_error"]
    assert result["pretrain_step"] == "pretrain-bbbb"
    assert json.loads((tmp_path / "colour" / "colour.json").read_text()) == result
    assert (tmp_path / "colour" / "colour_ab.png").exists()
    with pytest.raises(ValueError, match="not a pretrain step"):
        colour.load_pretrained(root, "tokenizer-aaaa")


def test_cli_prints_both_errors_beside_their_shuffled_baselines(run_root, tmp_path, capsys):
    from visual_priors import cli

    root = run_root[0]
    out = tmp_path / "probe"
    assert cli.main(["colour", "--root", str(root), "--step", "pretrain-bbbb", "--out", str(out),
                     "--images", "8", "--pairs", "20000", "--mds-inits", "2", "--permutations", "30"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "colour.json").read_text())
    assert result["mds_inits"] == 2 and result["vision"]["n_images"] == 8
    assert result["language"]["shuffled"]["n_permutations"] == 30
    rows = {line.split()[0]: line.split() for line in printed.splitlines() if line.split()}
    for half in ("language", "vision"):
        shuffled = result[f"{half}_shuffled"]
        assert rows[half][1:6] == [f"{result[f'{half}_error']:.3f}", f"{shuffled['mean']:.3f}", "+-",
                                   f"{shuffled['std']:.3f}", f"{shuffled['p_value']:.3f}"]
    assert (out / "colour_ab.png").exists() and (out / "colour_3d.png").exists()
    assert cli.main(["colour", "--root", str(root), "--step", "tokenizer-aaaa"]) == 2
    assert "not a pretrain step" in capsys.readouterr().err
