"""PRH's alignment metrics, the layer-pair pipeline, feature extraction and the suite's step.

References used here, independent of the implementation: hand-worked neighbour cases, PRH's
definitions (SPEC B2) written out in numpy (argsort neighbours, N x N masks, explicit HSIC
matrices), Song et al.'s unbiased HSIC as a U-statistic over ordered 4-tuples, PRH's SVCCA
recipe with scikit-learn's CCA, and plain-Python dynamic programs for LCS and edit distance.
"""

from __future__ import annotations

import itertools
import json

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from visual_priors.eval import alignment as al
from visual_priors.eval import alignment_features as af

RNG = np.random.default_rng(0)


def _unit(degrees) -> np.ndarray:
    t = np.deg2rad(np.asarray(degrees, float))
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _structured(n=96, seed=0):
    """Two row-paired feature sets sharing a 6-dimensional latent, plus noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 6))
    a = np.concatenate([3 * z @ rng.normal(size=(6, 20)), 0.3 * rng.normal(size=(n, 12))], 1)
    b = np.concatenate([3 * z[:, :4] @ rng.normal(size=(4, 15)), rng.normal(size=(n, 9))], 1)
    return a + 0.1 * rng.normal(size=a.shape), b + 0.1 * rng.normal(size=b.shape)


# ---------------------------------------------------------------- numpy references (SPEC B2)


def _np_knn(x, k):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -1e8)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def _np_mutual_knn(a, b, k):
    n = len(a)
    ma, mb = np.zeros((n, n)), np.zeros((n, n))
    np.put_along_axis(ma, _np_knn(a, k), 1, axis=1)
    np.put_along_axis(mb, _np_knn(b, k), 1, axis=1)
    return np.mean((ma * mb).sum(1) / k)


def _np_cycle_knn(a, b, k):
    ka, kb = _np_knn(a, k), _np_knn(b, k)
    return np.mean([i in set(ka[kb[i]].ravel()) for i in range(len(a))])


def _py_lcs(x, y):
    t = [[0] * (len(y) + 1) for _ in range(len(x) + 1)]
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            t[i][j] = t[i - 1][j - 1] + 1 if x[i - 1] == y[j - 1] else max(t[i - 1][j], t[i][j - 1])
    return t[-1][-1]


def _py_levenshtein(x, y):
    t = [[i + j if i * j == 0 else 0 for j in range(len(y) + 1)] for i in range(len(x) + 1)]
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            t[i][j] = min(t[i - 1][j] + 1, t[i][j - 1] + 1, t[i - 1][j - 1] + (x[i - 1] != y[j - 1]))
    return t[-1][-1]


def _np_cka(a, b, kernel="ip", sigma=1.0):
    def gram(x):
        if kernel == "ip":
            return x @ x.T
        d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * sigma**2))

    k, l = gram(a), gram(b)
    h = np.eye(len(a)) - 1.0 / len(a)
    hsic = lambda p, q: np.trace(p @ h @ q @ h)  # noqa: E731
    return hsic(k, l) / (np.sqrt(hsic(k, k) * hsic(l, l)) + 1e-6)


def _u_statistic_hsic(k, l):
    """Song et al. (2012): the unbiased HSIC as the mean over ordered distinct (i, j, q, r) of
    K_ij L_ij + K_ij L_qr - 2 K_ij L_iq."""
    m = len(k)
    terms = [k[i, j] * l[i, j] + k[i, j] * l[q, r] - 2 * k[i, j] * l[i, q]
             for i, j, q, r in itertools.permutations(range(m), 4)]
    return np.mean(terms)


# ---------------------------------------------------------------- hand-worked neighbours


def test_one_neighbour_case_worked_by_hand():
    """A pairs up (0,1), (2,3), (4,5) as nearest neighbours; B pairs (0,1), (2,4), (3,5). With
    k = 1 only rows 0 and 1 agree: every kNN metric is 1/3 (edit distances 0,0,1,1,1,1; the
    cycle closes for 0 and 1 only)."""
    a = _unit([0, 5, 60, 65, 120, 125])
    b = _unit([0, 5, 60, 120, 65, 125])
    for name in al.KNN_METRICS:
        assert al.METRICS[name](a, b, topk=1) == pytest.approx(1 / 3, abs=1e-6), name


def test_identical_features_are_perfectly_aligned():
    a, _ = _structured(48)
    assert al.mutual_knn(a, a, topk=5) == pytest.approx(1.0)
    assert al.cycle_knn(a, a, topk=5) == pytest.approx(1.0)
    assert al.lcs_knn(a, a, topk=5) == pytest.approx(5.0)  # a length, not a fraction
    assert al.edit_distance_knn(a, a, topk=5) == pytest.approx(1.0)
    for name in ("cka", "unbiased_cka", "cknna", "svcca"):
        assert al.METRICS[name](a, a) == pytest.approx(1.0, abs=1e-4), name


def test_independent_features_share_about_k_over_n_minus_1_neighbours():
    n, k = 300, 10
    got = np.mean([al.mutual_knn(RNG.normal(size=(n, 32)), RNG.normal(size=(n, 32)), topk=k) for _ in range(3)])
    assert got == pytest.approx(k / (n - 1), abs=0.008)


def test_knn_metrics_follow_prh_definitions_in_numpy():
    a, b = _structured(80, seed=1)
    for k in (3, 10):
        assert al.mutual_knn(a, b, topk=k) == pytest.approx(_np_mutual_knn(a, b, k), abs=1e-6)
        assert al.cycle_knn(a, b, topk=k) == pytest.approx(_np_cycle_knn(a, b, k), abs=1e-6)
        ka, kb = _np_knn(a, k), _np_knn(b, k)
        lcs = np.mean([_py_lcs(list(x), list(y)) for x, y in zip(ka, kb)])
        edit = 1 - np.mean([_py_levenshtein(list(x), list(y)) for x, y in zip(ka, kb)]) / k
        assert al.lcs_knn(a, b, topk=k) == pytest.approx(lcs, abs=1e-5)
        assert al.edit_distance_knn(a, b, topk=k) == pytest.approx(edit, abs=1e-6)


def test_ordered_list_dynamic_programs_match_plain_python():
    a = RNG.integers(0, 7, size=(400, 8))
    b = RNG.integers(0, 7, size=(400, 8))
    b[:50] = a[:50]  # some identical lists
    lcs = np.asarray(al.lcs_lengths(jnp.asarray(a), jnp.asarray(b)))
    edit = np.asarray(al.edit_distances(jnp.asarray(a), jnp.asarray(b)))
    assert lcs.tolist() == [_py_lcs(list(x), list(y)) for x, y in zip(a, b)]
    assert edit.tolist() == [_py_levenshtein(list(x), list(y)) for x, y in zip(a, b)]
    assert (lcs[:50] == 8).all() and (edit[:50] == 0).all()


# ---------------------------------------------------------------- kernel metrics


def test_cka_matches_the_formula_with_either_kernel_and_ignores_rotations():
    a, b = _structured(40, seed=2)
    assert al.cka(a, b) == pytest.approx(_np_cka(a, b), rel=1e-4)
    a_s, b_s = a / 10, b / 10  # an RBF width at the scale of the distances
    assert al.cka(a_s, b_s, kernel_metric="rbf", rbf_sigma=2.0) == pytest.approx(
        _np_cka(a_s, b_s, "rbf", 2.0), rel=1e-4)
    q, _ = np.linalg.qr(RNG.normal(size=(a.shape[1], a.shape[1])))
    assert al.cka(3.0 * a @ q, b) == pytest.approx(al.cka(a, b), rel=1e-4)  # orthogonal + isotropic


def test_unbiased_hsic_is_song_et_al_u_statistic():
    a, b = RNG.normal(size=(7, 3)), RNG.normal(size=(7, 4))
    k, l = a @ a.T, b @ b.T
    got = float(al._hsic_unbiased(jnp.asarray(k, jnp.float32), jnp.asarray(l, jnp.float32)))
    assert got == pytest.approx(_u_statistic_hsic(k, l), rel=1e-4, abs=1e-6)
    expected = _u_statistic_hsic(k, l) / np.sqrt(_u_statistic_hsic(k, k) * _u_statistic_hsic(l, l))
    assert al.unbiased_cka(a, b) == pytest.approx(expected, rel=1e-3)


def test_cknna_with_every_neighbour_is_unbiased_cka_and_needs_k_of_two():
    a, b = _structured(30, seed=3)
    assert al.cknna(a, b, topk=29) == pytest.approx(al.unbiased_cka(a, b), rel=1e-4)
    assert al.cknna(a, b, topk=5) != pytest.approx(al.cknna(a, b, topk=29), rel=1e-3)
    with pytest.raises(ValueError, match="CKNNA requires topk >= 2"):
        al.cknna(a, b, topk=1)


def test_svcca_matches_prh_recipe_with_sklearn_cca():
    from sklearn.cross_decomposition import CCA

    a, b = _structured(120, seed=4)

    def prh(x, y, q):
        def std(v):
            v = v - v.mean(0)
            return v / (v.std(0, ddof=1) + 1e-8)

        u1 = np.linalg.svd(std(x), full_matrices=False)[0][:, :q]
        u2 = np.linalg.svd(std(y), full_matrices=False)[0][:, :q]
        c1, c2 = CCA(n_components=q, max_iter=2000, tol=1e-9).fit(u1, u2).transform(u1, u2)
        return np.mean([np.corrcoef(c1[:, i], c2[:, i])[0, 1] for i in range(q)])

    for q in (4, 10):
        assert al.svcca(a, b, cca_dim=q) == pytest.approx(prh(a, b, q), abs=2e-3)
    with pytest.raises(ValueError, match="cca_dim"):
        al.svcca(a[:, :5], b, cca_dim=10)


# ---------------------------------------------------------------- registry and checks


def test_registry_names_and_clear_errors():
    assert list(al.METRICS) == ["mutual_knn", "cycle_knn", "lcs_knn", "edit_distance_knn", "cka",
                                "unbiased_cka", "cknna", "svcca"]
    with pytest.raises(ValueError, match="unknown alignment metric 'mnn'; valid: mutual_knn"):
        al.get_metric("mnn")
    a = RNG.normal(size=(12, 4))
    with pytest.raises(TypeError, match="mutual_knn: .*'k'.*; its options are topk"):
        al.layer_pair_scores(a[:, None], a[:, None], "mutual_knn", k=3)
    with pytest.raises(ValueError, match="topk must be an integer in 1..N-1 = 11"):
        al.mutual_knn(a, a, topk=12)
    with pytest.raises(ValueError, match="row-paired"):
        al.mutual_knn(a, a[:10])
    with pytest.raises(ValueError, match="kernel_metric"):
        al.cka(a, a, kernel_metric="cosine")


# ---------------------------------------------------------------- pipeline


def test_clamp_is_the_exact_or_per_sample_quantile():
    x = RNG.standard_t(2, size=(20, 3, 8)).astype(np.float32)
    tau = np.sort(np.abs(x).ravel())[int(0.95 * x.size)]
    got = np.asarray(al.prepare_features(x))
    np.testing.assert_allclose(got, np.clip(x, -tau, tau), rtol=1e-6)
    assert (np.abs(x) > tau).any() and np.abs(got).max() == pytest.approx(tau)
    tau_mean = np.mean([np.quantile(np.abs(s), 0.9) for s in x])
    np.testing.assert_allclose(np.asarray(al.prepare_features(x, q=0.9, exact=False)),
                               np.clip(x, -tau_mean, tau_mean), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(al.prepare_features(x, q=None)), x)


def test_ragged_layers_are_clamped_together_and_zero_padded():
    layers = [RNG.normal(size=(10, 4)), 5 * RNG.normal(size=(10, 7))]
    tau = np.sort(np.abs(np.concatenate([l.ravel() for l in layers])))[int(0.95 * 110)]
    got = np.asarray(al.prepare_features(layers))
    assert got.shape == (10, 2, 7)
    np.testing.assert_allclose(got[:, 0, :4], np.clip(layers[0], -tau, tau), rtol=1e-6)
    assert (got[:, 0, 4:] == 0).all()


def test_layer_pairs_score_every_pair_and_find_the_shared_layer():
    n = 40
    x = RNG.normal(size=(n, 3, 12))
    y = RNG.normal(size=(n, 4, 9))
    y[:, 2, :] = x[:, 1, :9] @ np.diag(np.arange(1, 10))  # shares layer 1 of x (mostly)
    x[:, 1, 9:] *= 0.05
    requests = {"mutual_knn": ("mutual_knn", {"topk": 5}), "cka": ("cka", {}), "svcca": ("svcca", {"cca_dim": 4})}
    tables = al.layer_pair_tables(x, y, requests)
    normed = lambda f: f / np.linalg.norm(f, axis=1, keepdims=True)  # noqa: E731
    for name, (_, kw) in requests.items():
        scores = tables[name]
        assert scores.shape == (3, 4)
        np.testing.assert_allclose(al.layer_pair_scores(x, y, name, **kw), scores, atol=1e-6)
        for i, j in ((0, 0), (1, 2), (2, 3)):
            assert scores[i, j] == pytest.approx(al.METRICS[name](normed(x[:, i]), normed(y[:, j]), **kw),
                                                 abs=1e-5)
        assert al.best_layer_pair(scores)[1] == (1, 2), name
    # Pair batches and zero padding (of widths, as the step's shape buckets) change nothing.
    padded = np.concatenate([x, np.zeros((n, 3, 20))], axis=2)
    for other in (al.layer_pair_tables(x, y, requests, pair_batch=5), al.layer_pair_tables(padded, y, requests)):
        for name in requests:
            np.testing.assert_allclose(other[name], tables[name], atol=1e-5)


def test_best_pair_starts_from_zero_and_takes_the_first_of_ties():
    assert al.best_layer_pair([[0.1, 0.3], [0.3, 0.2]]) == (0.3, (0, 1))
    assert al.best_layer_pair([[-0.1, 0.0]]) == (0.0, None)
    score, pair = al.alignment_score(RNG.normal(size=(30, 2, 5)), RNG.normal(size=(30, 3, 6)), topk=4)
    assert 0 < score <= 1 and pair[0] in (0, 1) and pair[1] in (0, 1, 2)


def test_report_averages_the_references_and_holds_prhs_table():
    x = RNG.normal(size=(48, 3, 10))
    refs = {"same": x[:, :2] @ RNG.normal(size=(10, 10)), "other": RNG.normal(size=(48, 2, 12))}
    rep = al.alignment_report(x, refs, topk=5, table_topk=4)
    per = rep["encoders"]
    assert set(per) == {"same", "other"} and per["same"]["score"] > per["other"]["score"]
    assert rep["score"] == pytest.approx((per["same"]["score"] + per["other"]["score"]) / 2)
    assert np.asarray(per["same"]["layer_scores"]).shape == (3, 2) and per["same"]["llm_layers"] == 3
    assert set(per["same"]["table"]) == set(al.METRICS) == set(rep["table"])
    x_feats = np.asarray(al.prepare_features(x))
    expected = al.best_layer_pair(al.layer_pair_scores(x_feats, np.asarray(al.prepare_features(refs["other"])),
                                                       "cknna", topk=4))[0]
    assert per["other"]["table"]["cknna"]["score"] == pytest.approx(expected, abs=1e-5)


# ---------------------------------------------------------------- features of the project's models


@pytest.fixture(scope="module")
def world():
    from visual_priors.world import World
    return World(seed=0, image_size=32)


@pytest.fixture(scope="module")
def tok(world, tmp_path_factory):
    """A 2,048-piece tokenizer (the tiny scales' vocabulary) trained on world captions and text."""
    from visual_priors.data import tokenizer as tokenizer_lib
    from visual_priors.world import GENRES
    text = [world.caption_pair("train", i)[1] for i in range(1500)]
    text += [world.document(g, i).text for g in GENRES for i in range(6)]
    return tokenizer_lib.train_tokenizer(["\n".join(text)], 2048, tmp_path_factory.mktemp("tok") / "tok.model")


def test_pairs_are_deterministic_held_out_windows(world):
    images, captions = af.caption_pairs(world, 4, seed=3)
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8
    again, same = af.caption_pairs(world, 4, seed=3)
    assert same == captions and (again == images).all()
    assert af.caption_pairs(world, 4, seed=4)[1] != captions
    assert captions[0] == world.caption_pair("test", 12)[1]


def test_llm_features_average_real_tokens_and_ignore_padding(tok):
    from visual_priors.config import scales
    from visual_priors.model.llm import Llama

    model = Llama(scales.get("t1"), rngs=nnx.Rngs(0))
    captions = ["a red cup on the left", "a big blue ball in the centre and a sign that reads 42", "a cat"]
    tokens, mask = af.caption_tokens(tok, captions, max_len=64)
    assert (tokens[:, 0] == tok.bos_id).all() and mask.sum(1).tolist() == [
        1 + len(tok.encode(c)) for c in captions]
    feats = af.llm_features(model, tokens, mask, batch_size=2)
    assert feats.shape == (3, 3, 48)  # embeddings + 2 blocks of t1
    t, m = af.caption_tokens(tok, captions[2:], max_len=64)  # the most padded caption, alone
    np.testing.assert_allclose(af.llm_features(model, t, m)[0], feats[2], atol=1e-5)
    states = model.hidden_states(jnp.asarray(tokens[:1, :mask[0].sum()]))
    np.testing.assert_allclose(feats[0, 2], np.asarray(states[2][0]).mean(0), atol=1e-5)
    # Chosen states in the order given; BOS left out of the mean when asked (the colour probe's).
    np.testing.assert_allclose(af.llm_features(model, tokens, mask, layers=(2, 0)), feats[:, [2, 0]], atol=1e-6)
    no_bos = af.llm_features(model, tokens, mask, layers=(2,), skip_bos=True)
    np.testing.assert_allclose(no_bos[0, 0], np.asarray(states[2][0, 1:]).mean(0), atol=1e-5)
    with pytest.raises(ValueError, match="after BOS"):
        af.llm_features(model, tokens[:, :1], mask[:, :1], skip_bos=True)


def test_vision_features_per_block_for_vit_and_per_stage_for_cnn():
    from visual_priors.model import cnn, vision

    images = RNG.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    for pool in ("mean", "cls"):
        cfg = vision.vit_config("tiny")
        cfg.pool = pool
        vit = vision.ViT(cfg, rngs=nnx.Rngs(1))
        feats = af.vision_features(vit, images, batch_size=2)
        assert feats.shape == (3, cfg.depth, cfg.width)
        last = np.asarray(vit.hidden_states(jnp.asarray(images))[-1])
        expected = last[:, 0] if pool == "cls" else last[:, vit.num_prefix_tokens:].mean(1)
        np.testing.assert_allclose(feats[:, -1], expected, atol=1e-5)
    cfg = cnn.cnn_config("mobilenet_v2")
    cfg.image_size = 32
    net = cnn.build(cfg, rngs=nnx.Rngs(0))
    stages = af.vision_features(net, images)
    assert [s.shape for s in stages] == [(3, c) for c in net.map_channels]
    assert al.prepare_features(stages).shape == (3, len(net.map_channels), max(net.map_channels))


# ---------------------------------------------------------------- the suite's step


# The colour probe at its cheapest that still embeds (the tiny profile's costs ~1-2 s per LLM).
COLOUR_SMALL = ("eval.alignment.colour.n_images=8", "eval.alignment.colour.n_pairs=20000",
                "eval.alignment.colour.mds_inits=2", "eval.alignment.colour.n_permutations=30")


def test_alignment_step_runs_on_the_runs_llm_and_reaches_the_collected_record(tmp_path, tok):
    from visual_priors.config import loading, scales
    from visual_priors.model import encoders, vision
    from visual_priors.model.convert import hf_llama
    from visual_priors.model.llm import Llama
    from visual_priors.model.params_io import save_params
    from visual_priors.suite import executor, spec

    cfg = loading.load("experiments/quickstart.py:tiny", ["scales=('t1',)", "mixtures=('mix0',)",
                                                           "eval.alignment.pairs=24", *COLOUR_SMALL])
    (run,) = spec.expand(cfg)[0]
    step = run.steps["alignment"]
    assert step in run.steps["evaluate"].companions and step.fields["topk"] == 20
    assert step.fields["colour"] == {"n_images": 8, "n_pairs": 20_000, "grid_levels": 6, "mds_inits": 2,
                                     "n_permutations": 30, "seed": 0}
    (encoder_step,) = step.inputs_of("encoder")
    # The reference is the study's own encoder (tiny: the supervised one): the same step, not a second one.
    assert encoder_step.hash == run.steps["evaluate"].input("features").input("encoder").hash
    tok_dir = tmp_path / step.input("tokenizer").name
    tok_dir.mkdir()
    (tok_dir / "tok.model").write_bytes(open(tok.path, "rb").read())
    (tok_dir / "result.json").write_text(json.dumps({"path": "tok.model"}))
    llm_cfg = scales.get("t1")
    save_params(tmp_path / step.input("pretrain").name / "llm",
                nnx.state(Llama(llm_cfg, rngs=nnx.Rngs(0)), nnx.Param).to_pure_dict(),
                hf_llama.checkpoint_metadata(llm_cfg))
    vit_cfg = vision.vit_config("tiny")
    encoders.save_frozen(vision.ViT(vit_cfg, rngs=nnx.Rngs(0)), tmp_path / encoder_step.name / "encoder", "vit",
                         vit_cfg, objective="supervised")

    out = tmp_path / step.name
    out.mkdir()
    result = step.run(out, lambda s: tmp_path / s.name)
    ref = result["encoders"]["supervised"]
    assert result["metric"] == "mutual_knn" and result["samples"] == 24 and result["scale"] == "t1"
    assert result["score"] == ref["score"] and 0 <= ref["score"] <= 1
    assert (ref["llm_layers"], ref["vision_layers"]) == (3, vit_cfg.depth)
    assert set(ref["table"]) == set(al.METRICS) and result["table_topk"] == 10
    # PRH's colour probe of the same LLM: headline errors beside the shuffled baselines, the
    # points a plot needs, the whole probe and its plot beside the result.
    c = result["colour"]
    for half in ("language", "vision"):
        assert np.isfinite(c[f"{half}_error"]) and 0 <= c[f"{half}_error"] <= 1
        assert set(c[f"{half}_shuffled"]) == {"mean", "std", "p_value"}
        assert all(np.isfinite(v) for v in c[f"{half}_shuffled"].values())
        k = len(c[half]["names"])
        assert np.asarray(c[half]["aligned"]).shape == np.asarray(c[half]["lab"]).shape == (k, 3)
    assert c["language"]["names"][:2] == ["red", "orange"] and c["language"]["layers"] == [1, 2]
    assert c["vision"]["n_images"] == 8 and c["mds_inits"] == 2 and c["n_permutations"] == 30
    whole = json.loads((out / "colour.json").read_text())
    assert whole["language_error"] == c["language_error"] and whole["vision"]["mds"]
    assert (out / "colour_ab.png").read_bytes()[:4] == b"\x89PNG"
    (out / "result.json").write_text(json.dumps(result))
    eval_dir = tmp_path / run.steps["evaluate"].name
    eval_dir.mkdir()
    (eval_dir / "result.json").write_text(json.dumps({"overall": 0.5}))
    record = executor.collect(cfg, tmp_path)[run.name]
    assert record["alignment"]["score"] == result["score"] and record["overall"] == 0.5
    assert record["alignment"]["colour"] == c


def test_alignment_settings_plan_steps_without_touching_other_identities():
    from visual_priors.config import loading
    from visual_priors.suite import executor, planner, spec

    base = loading.load("experiments/quickstart.py:tiny")
    runs, steps = spec.expand(base)
    llms = {r.steps["pretrain"].hash for r in runs}
    aligned = [s for s in steps if s.kind == "alignment"]
    assert len(aligned) == len(llms) == 6  # one per LLM
    # The executor's plan of the study's evaluation brings them along, after their inputs.
    planned = executor.plan_targets(base)[1]
    order = {s.hash: i for i, s in enumerate(planned)}
    assert all(s.hash in order and all(order[d.hash] < order[s.hash] for d in s.inputs) for s in aligned)
    assert planner.plan(base)["steps_by_kind"]["alignment"] == 6
    off = loading.load("experiments/quickstart.py:tiny", ["eval.alignment.encoders=()"])
    more = loading.load("experiments/quickstart.py:tiny", ["eval.alignment.topk=10"])
    # The colour probe's settings are the alignment step's alone; off, they leave its fields.
    no_colour = loading.load("experiments/quickstart.py:tiny", ["eval.alignment.colour.enabled=False"])
    other_colour = loading.load("experiments/quickstart.py:tiny", ["eval.alignment.colour.mds_inits=3"])
    others = {s.hash for s in steps if s.kind != "alignment"}
    for cfg in (off, more, no_colour, other_colour):
        assert {s.hash for s in spec.expand(cfg)[1] if s.kind != "alignment"} == others
    assert not [s for s in spec.expand(off)[1] if s.kind == "alignment"]
    for cfg in (more, no_colour, other_colour):
        changed = [s for s in spec.expand(cfg)[1] if s.kind == "alignment"]
        assert len(changed) == 6 and {s.hash for s in changed}.isdisjoint(s.hash for s in aligned)
    assert all("colour" in s.fields for s in aligned)
    assert not [s for s in spec.expand(no_colour)[1] if s.kind == "alignment" and "colour" in s.fields]
    with pytest.raises(ValueError, match="colour.n_pairs must be positive"):
        spec.expand(loading.load("experiments/quickstart.py:tiny", ["eval.alignment.colour.n_pairs=0"]))
    paper_colour = loading.load("experiments/category_sweep.py:paper").eval.alignment.colour
    assert (paper_colour.mds_inits, paper_colour.n_pairs) == (1000, 300_000)  # PRH's
    with pytest.raises(ValueError, match="unknown alignment metric"):
        spec.expand(loading.load("experiments/quickstart.py:tiny", ["eval.alignment.metric='mnn'"]))
    paper_tiny = loading.load("experiments/category_sweep.py:tiny")
    assert tuple(paper_tiny.eval.alignment.encoders) == ("supervised", "contrastive")
    assert tuple(loading.load("experiments/category_sweep.py:paper").eval.alignment.encoders) == (
        "vit_l_in21k", "dinov2", "clip_h")
    assert isinstance(paper_tiny.eval.alignment, ml_collections.ConfigDict)
