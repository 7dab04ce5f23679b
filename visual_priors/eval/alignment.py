"""Representational alignment between two models (the Platonic Representation Hypothesis).

Each metric takes row-paired features ``feats_a`` [N, D_a], ``feats_b`` [N, D_b] (row i of both
describes the same image-caption pair) and returns a float. Definitions follow PRH's reference
``metrics.py``:

* Neighbours are by cosine similarity (inner product of L2-normalised rows) with the sample
  itself excluded (its similarity set to -1e8); kNN(i) = the ``topk`` most similar, in
  descending order.
* ``mutual_knn``: mean over i of |kNN_a(i) & kNN_b(i)| / k.
* ``cycle_knn``: fraction of i found among kNN_a(j) for some j in kNN_b(i). Not symmetric.
* ``lcs_knn``: mean length of the longest common subsequence of the ordered lists kNN_a(i),
  kNN_b(i) (not divided by k, as PRH).
* ``edit_distance_knn``: 1 - mean Levenshtein distance (unit costs) between those lists / k.
* ``cka``: kernels K, L (``kernel_metric`` 'ip': inner products of the rows as given; 'rbf':
  exp(-|a - b|^2 / (2 sigma^2))), biased HSIC(K, L) = tr(K H L H) with H = I - 11'/N, and
  CKA = HSIC(K, L) / (sqrt(HSIC(K, K) HSIC(L, L)) + 1e-6).
* ``unbiased_cka``: the same ratio with Song et al.'s (2012) unbiased HSIC: with K~, L~ the
  kernels with zeroed diagonals, [tr(K~ L~) + 1'K~1 1'L~1 / ((N-1)(N-2)) - 2/(N-2) 1'K~L~1]
  / (N(N-3)).
* ``cknna``: inner-product kernels restricted to mutual neighbours. M_K = rows' top-k of K
  (self excluded when ``unbiased``), M = M_K * M_L, sim(K, L) = HSIC_u(M * K, M * L) (biased
  HSIC and self included when not ``unbiased``); score = sim(K, L) / (sqrt(sim(K, K) sim(L, L))
  + 1e-6). Needs topk >= 2.
* ``svcca``: each feature standardised (column mean 0, divided by its sample std + 1e-8), the
  top ``cca_dim`` left singular vectors of each, then CCA between the two; score = mean of the
  ``cca_dim`` canonical correlations. PRH takes the singular vectors from a randomised SVD and
  fits sklearn's iterative CCA, so its value varies from call to call; here the singular
  subspace is exact and the canonical correlations are the singular values of U_a' U_b (both
  bases orthonormal, with centred columns), which is what a converged CCA returns:
  deterministic, no seed needed (the tests check it against PRH's recipe with sklearn's CCA).

Neighbour lists and kernels are float32 with exact (HIGHEST precision) products; LCS and edit
distance run their dynamic programs a table row at a time for all samples at once.

Every metric is split into a per-model ``prepare`` (neighbour lists, centred kernels, singular
directions) and a pairwise ``compare``, so that ``layer_pair_scores`` prepares each layer once
and compares all layer pairs under ``vmap`` in batches of ``pair_batch`` pairs;
``layer_pair_tables`` does several metrics in one compiled program, sharing preparations.

The layer-pair pipeline (PRH's ``measure_alignment.py``): ``prepare_features`` clamps outliers
("emergent outliers") at the q-quantile of |values| (q = 0.95); ``exact=True`` (the default
here, as PRH's ``platonic.Alignment.score``) takes the quantile over the whole [N, L, D] tensor
(the sorted |values| at index floor(q * count)), ``exact=False`` (PRH's command-line default)
the mean over samples of each sample's q-quantile. ``layer_pair_scores`` L2-normalises each
layer's rows and scores every (layer of x, layer of y) pair; ``best_layer_pair`` returns the
best score and its pair, starting from 0 as PRH does (a pair must score above 0 to count).
``alignment_report`` is what the suite's alignment step records for one LLM: LSBS's score
(mutual k-NN at k = 20, best layer pair, mean over reference encoders) and PRH's table.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from visual_priors.errors import BadValue

__all__ = ["METRICS", "alignment_report", "alignment_score", "best_layer_pair", "cka", "cknna",
           "cycle_knn", "default_pair_batch", "edit_distance_knn", "edit_distances", "get_metric",
           "layer_pair_scores", "layer_pair_tables", "lcs_knn", "lcs_lengths", "metric_options",
           "mutual_knn", "prepare_features", "svcca", "unbiased_cka"]

_SELF = -1e8  # similarity of a sample to itself: never among its neighbours
_HI = jax.lax.Precision.HIGHEST  # exact float32 products on accelerators too (no TF32 / bf16 passes)
KNN_METRICS = ("mutual_knn", "cycle_knn", "lcs_knn", "edit_distance_knn")


# ---------------------------------------------------------------- shared pieces


def _l2_normalize(x: jax.Array) -> jax.Array:
    """Rows divided by their norm (at least 1e-12, as torch's F.normalize)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _gram(x: jax.Array) -> jax.Array:
    return jnp.matmul(x, x.T, precision=_HI)


def _knn(x: jax.Array, topk: int) -> jax.Array:
    """int32 [N, topk]: each row's nearest neighbours by cosine, most similar first, self excluded."""
    sim = _gram(_l2_normalize(x))
    sim = jnp.where(jnp.eye(x.shape[0], dtype=bool), _SELF, sim)
    return jax.lax.top_k(sim, topk)[1]


def _center(k: jax.Array) -> jax.Array:
    """H K H with H = I - 11'/N: rows and columns minus their means, plus the grand mean."""
    return k - k.mean(0, keepdims=True) - k.mean(1, keepdims=True) + k.mean()


def _hsic_biased(k: jax.Array, l: jax.Array) -> jax.Array:
    """tr(K H L H) = sum((H K H) * L') (no 1/(N-1)^2 factor: it cancels in every ratio)."""
    return jnp.sum(_center(k) * l.T)


def _hsic_unbiased(k: jax.Array, l: jax.Array) -> jax.Array:
    """Song et al. (2012) eq. 5; tr(K~ L~) as sum(K~ * L~'), 1'K~L~1 as colsums(K~) . rowsums(L~)."""
    m = k.shape[0]
    off = ~jnp.eye(m, dtype=bool)
    kt, lt = jnp.where(off, k, 0.0), jnp.where(off, l, 0.0)
    return (jnp.sum(kt * lt.T) + kt.sum() * lt.sum() / ((m - 1) * (m - 2))
            - 2.0 * jnp.dot(kt.sum(0), lt.sum(1), precision=_HI) / (m - 2)) / (m * (m - 3))


def _kernel(x: jax.Array, kernel_metric: str, rbf_sigma: float) -> jax.Array:
    if kernel_metric == "ip":
        return _gram(x)
    sq = jnp.sum(x * x, axis=1)
    dist2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * _gram(x), 0.0)
    return jnp.exp(-dist2 / (2.0 * rbf_sigma ** 2))


def _ratio(cross, self_a, self_b) -> jax.Array:
    return cross / (jnp.sqrt(self_a * self_b) + 1e-6)


# ---------------------------------------------------------------- ordered-list DPs


def lcs_lengths(a: jax.Array, b: jax.Array) -> jax.Array:
    """Longest common subsequence length of each row pair of int [N, k] lists -> int32 [N].

    The DP table is filled a row at a time (lax.scan over a's k positions), every row at once:
    L[i, j] = max(L[i, j-1], L[i-1, j], L[i-1, j-1] + [a_i == b_j]) is, along j, the running
    maximum of u[j] = max(L[i-1, j], L[i-1, j-1] + [a_i == b_j]) (L[i, 0] = 0).
    """
    n, k = a.shape
    match = (a[:, :, None] == b[:, None, :]).astype(jnp.int32)  # [N, i, j]

    def row(prev, match_i):
        u = jnp.maximum(prev[:, 1:], prev[:, :-1] + match_i)
        return jnp.concatenate([jnp.zeros((n, 1), jnp.int32), jax.lax.cummax(u, axis=1)], axis=1), None

    last, _ = jax.lax.scan(row, jnp.zeros((n, k + 1), jnp.int32), jnp.swapaxes(match, 0, 1))
    return last[:, -1]


def edit_distances(a: jax.Array, b: jax.Array) -> jax.Array:
    """Levenshtein distance (insert, delete, substitute: cost 1) of each row pair of int [N, k]
    lists -> int32 [N].

    Row i of the table from row i-1: t[j] = min(D[i-1, j] + 1, D[i-1, j-1] + [a_i != b_j]),
    t[0] = i, and D[i, j] = min over j' <= j of t[j'] + (j - j') = j + running min of t[j] - j.
    """
    n, k = a.shape
    cost = (a[:, :, None] != b[:, None, :]).astype(jnp.int32)
    cols = jnp.arange(k + 1, dtype=jnp.int32)

    def row(prev, xs):
        i, cost_i = xs
        t = jnp.minimum(prev[:, 1:] + 1, prev[:, :-1] + cost_i)
        t = jnp.concatenate([jnp.full((n, 1), i, jnp.int32), t], axis=1)
        return cols + jax.lax.cummin(t - cols, axis=1), None

    first = jnp.broadcast_to(cols, (n, k + 1))
    last, _ = jax.lax.scan(row, first, (jnp.arange(1, k + 1, dtype=jnp.int32), jnp.swapaxes(cost, 0, 1)))
    return last[:, -1]


# ---------------------------------------------------------------- metrics: prepare / compare
# prepare(x [N, D], **options) -> a pytree for one model (or layer); compare(a, b, **options)
# -> scalar. Both take every option of their metric and use the ones they need; metrics that
# share a prepare function and its options share the prepared layers (``layer_pair_tables``).


def _prep_knn(x, topk):
    return _knn(x, topk)


def _cmp_mutual(a, b, topk):
    hits = jnp.sum(a[:, :, None] == b[:, None, :], axis=(1, 2))
    return jnp.mean(hits / topk)


def _cmp_cycle(a, b, topk):
    back = a[b]  # [N, k, k]: a's neighbours of each of b's neighbours of i
    found = jnp.any(back == jnp.arange(a.shape[0])[:, None, None], axis=(1, 2))
    return jnp.mean(found.astype(jnp.float32))


def _cmp_lcs(a, b, topk):
    return jnp.mean(lcs_lengths(a, b).astype(jnp.float32))


def _cmp_edit(a, b, topk):
    return 1.0 - jnp.mean(edit_distances(a, b).astype(jnp.float32)) / topk


def _prep_kernel(x, kernel_metric, rbf_sigma):
    k = _kernel(x, kernel_metric, rbf_sigma)
    kc = _center(k)
    return {"k": k, "kc": kc, "biased": jnp.sum(kc * kc), "unbiased": _hsic_unbiased(k, k)}


def _cmp_cka(a, b, kernel_metric, rbf_sigma):
    # tr(K H L H) = sum((H K H) * (H L H)): H is symmetric and idempotent.
    return _ratio(jnp.sum(a["kc"] * b["kc"]), a["biased"], b["biased"])


def _cmp_ucka(a, b, kernel_metric, rbf_sigma):
    return _ratio(_hsic_unbiased(a["k"], b["k"]), a["unbiased"], b["unbiased"])


def _prep_cknna(x, topk, unbiased):
    k = _gram(x)
    ranked = jnp.where(jnp.eye(x.shape[0], dtype=bool), -jnp.inf, k) if unbiased else k
    idx = jax.lax.top_k(ranked, topk)[1]
    mask = jnp.zeros_like(k).at[jnp.arange(x.shape[0])[:, None], idx].set(1.0)
    hsic = _hsic_unbiased if unbiased else _hsic_biased
    return {"k": k, "mask": mask, "self": hsic(mask * k, mask * k)}


def _cmp_cknna(a, b, topk, unbiased):
    m = a["mask"] * b["mask"]
    hsic = _hsic_unbiased if unbiased else _hsic_biased
    return _ratio(hsic(m * a["k"], m * b["k"]), a["self"], b["self"])


def _prep_svcca(x, cca_dim):
    """An orthonormal basis [N, cca_dim] of the top cca_dim left singular directions of the
    standardised features. CCA depends on the subspace only, so the basis is the QR of x V with
    V the top eigenvectors of x'x (or directly the top eigenvectors of xx' when D > N): eigh,
    unlike a CPU SVD, stays fast inside the per-layer loop."""
    x = x - x.mean(0)
    x = x / (jnp.std(x, axis=0, ddof=1) + 1e-8)
    n, d = x.shape
    if d <= n:
        _, v = jnp.linalg.eigh(jnp.matmul(x.T, x, precision=_HI))
        return jnp.linalg.qr(jnp.matmul(x, v[:, -cca_dim:], precision=_HI))[0]
    return jnp.linalg.eigh(_gram(x))[1][:, -cca_dim:]


def _cmp_svcca(a, b, cca_dim):
    return jnp.mean(jnp.linalg.svd(jnp.matmul(a.T, b, precision=_HI), compute_uv=False))


_PARTS = {
    "mutual_knn": (_prep_knn, _cmp_mutual), "cycle_knn": (_prep_knn, _cmp_cycle),
    "lcs_knn": (_prep_knn, _cmp_lcs), "edit_distance_knn": (_prep_knn, _cmp_edit),
    "cka": (_prep_kernel, _cmp_cka), "unbiased_cka": (_prep_kernel, _cmp_ucka),
    "cknna": (_prep_cknna, _cmp_cknna), "svcca": (_prep_svcca, _cmp_svcca),
}


# ---------------------------------------------------------------- public metrics


def mutual_knn(feats_a, feats_b, topk: int = 10) -> float:
    """Mean fraction of each sample's k nearest neighbours that the two models share."""
    return _pair_score("mutual_knn", feats_a, feats_b, topk=topk)


def cycle_knn(feats_a, feats_b, topk: int = 10) -> float:
    """Fraction of samples that b's neighbours, then a's neighbours of those, lead back to."""
    return _pair_score("cycle_knn", feats_a, feats_b, topk=topk)


def lcs_knn(feats_a, feats_b, topk: int = 10) -> float:
    """Mean longest-common-subsequence length of the ordered neighbour lists (0..k)."""
    return _pair_score("lcs_knn", feats_a, feats_b, topk=topk)


def edit_distance_knn(feats_a, feats_b, topk: int = 10) -> float:
    """1 - mean edit distance between the ordered neighbour lists / k."""
    return _pair_score("edit_distance_knn", feats_a, feats_b, topk=topk)


def cka(feats_a, feats_b, kernel_metric: str = "ip", rbf_sigma: float = 1.0) -> float:
    """Centered kernel alignment with the biased HSIC."""
    return _pair_score("cka", feats_a, feats_b, kernel_metric=kernel_metric, rbf_sigma=rbf_sigma)


def unbiased_cka(feats_a, feats_b, kernel_metric: str = "ip", rbf_sigma: float = 1.0) -> float:
    """Centered kernel alignment with the unbiased HSIC (needs N >= 4)."""
    return _pair_score("unbiased_cka", feats_a, feats_b, kernel_metric=kernel_metric, rbf_sigma=rbf_sigma)


def cknna(feats_a, feats_b, topk: int = 10, unbiased: bool = True) -> float:
    """Centered kernel nearest-neighbour alignment (needs topk >= 2)."""
    return _pair_score("cknna", feats_a, feats_b, topk=topk, unbiased=unbiased)


def svcca(feats_a, feats_b, cca_dim: int = 10) -> float:
    """Mean canonical correlation between the top cca_dim singular directions of each model."""
    return _pair_score("svcca", feats_a, feats_b, cca_dim=cca_dim)


METRICS = {f.__name__: f for f in (mutual_knn, cycle_knn, lcs_knn, edit_distance_knn, cka,
                                   unbiased_cka, cknna, svcca)}


def get_metric(name: str):
    """The metric function of that name; unknown names fail with the valid ones."""
    if name not in METRICS:
        raise BadValue(f"unknown alignment metric {name!r}; valid: {', '.join(METRICS)}", "eval.alignment.metric")
    return METRICS[name]


def metric_options(name: str, n: int, widths: Sequence[int], **kw) -> dict:
    """Every option of metric ``name`` (defaults filled in), checked against N samples and the
    feature widths it will see; unknown options and impossible values fail clearly."""
    sig = inspect.signature(get_metric(name))
    try:
        bound = sig.bind(None, None, **kw)
    except TypeError as err:
        valid = [p for p in sig.parameters if p not in ("feats_a", "feats_b")]
        raise TypeError(f"{name}: {err}; its options are {', '.join(valid)}") from None
    bound.apply_defaults()
    opts = {k: v for k, v in bound.arguments.items() if k not in ("feats_a", "feats_b")}
    if "topk" in opts:
        topk = opts["topk"]
        if name == "cknna" and (topk is None or topk < 2):
            raise ValueError(f"CKNNA requires topk >= 2, got {topk}")
        if not isinstance(topk, (int, np.integer)) or not 1 <= topk <= n - 1:
            raise ValueError(f"{name}: topk must be an integer in 1..N-1 = {n - 1}, got {topk!r}")
        opts["topk"] = int(topk)
    if "kernel_metric" in opts:
        if opts["kernel_metric"] not in ("ip", "rbf"):
            raise ValueError(f"{name}: kernel_metric must be 'ip' or 'rbf', got {opts['kernel_metric']!r}")
        if not opts["rbf_sigma"] > 0:
            raise ValueError(f"{name}: rbf_sigma must be positive, got {opts['rbf_sigma']}")
        opts["rbf_sigma"] = float(opts["rbf_sigma"])
    if name == "unbiased_cka" or (name == "cknna" and opts["unbiased"]):
        if n < 4:
            raise ValueError(f"{name}: the unbiased HSIC needs at least 4 samples, got {n}")
    if name == "cknna":
        opts["unbiased"] = bool(opts["unbiased"])
    if name == "svcca":
        dim = opts["cca_dim"]
        if not isinstance(dim, (int, np.integer)) or not 1 <= dim <= min(n - 1, *widths):
            raise ValueError(f"svcca: cca_dim must be an integer in 1..min(N - 1, widths) = "
                             f"{min(n - 1, *widths)}, got {dim!r}")
        opts["cca_dim"] = int(dim)
    return opts


@functools.lru_cache(maxsize=None)
def _pair_program(name: str, options: tuple):
    prepare, compare = _PARTS[name]
    opts = dict(options)
    return jax.jit(lambda a, b: compare(prepare(a, **opts), prepare(b, **opts), **opts))


def _pair_score(name: str, feats_a, feats_b, **kw) -> float:
    a, b = jnp.asarray(feats_a, jnp.float32), jnp.asarray(feats_b, jnp.float32)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"{name} needs row-paired [N, D] features, got {a.shape} and {b.shape}")
    opts = metric_options(name, a.shape[0], (a.shape[1], b.shape[1]), **kw)
    return float(_pair_program(name, tuple(sorted(opts.items())))(a, b))


# ---------------------------------------------------------------- the layer-pair pipeline


def prepare_features(feats, q: float | None = 0.95, exact: bool = True) -> jax.Array:
    """Outlier-clamped features float32 [N, L, D] from [N, L, D] or a list of L [N, D_l] layers
    (e.g. a CNN's stages). Values are clamped to [-tau, tau], tau the q-quantile of |values|
    (module docstring; q None or 1: no clamp). Layers narrower than the widest are padded with
    zeros after clamping, which changes no metric here: inner products, distances, neighbours
    and standardised singular directions are the same with or without zero columns."""
    if isinstance(feats, (list, tuple)):
        layers = [jnp.asarray(f, jnp.float32) for f in feats]
        if not layers or any(f.ndim != 2 or f.shape[0] != layers[0].shape[0] for f in layers):
            raise ValueError(f"layers must be [N, D] with one N, got {[tuple(f.shape) for f in layers]}")
    else:
        layers = [jnp.asarray(feats, jnp.float32)]
        if layers[0].ndim != 3:
            raise ValueError(f"features must be [N, L, D] or a list of [N, D] layers, got {layers[0].shape}")
    if q is not None and q != 1 and not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1], got {q}")
    return _clamp_and_stack(layers, None if q is None or q == 1 else float(q), bool(exact))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _clamp_and_stack(layers: list, q: float | None, exact: bool) -> jax.Array:
    """[N, L, D] from one [N, L, D] array or several [N, D_l] layers, clamped (q not None)."""
    if len(layers) == 1 and layers[0].ndim == 3:
        layers = [layers[0][:, i] for i in range(layers[0].shape[1])]
    if q is not None:
        flat = jnp.abs(jnp.concatenate(layers, axis=1))  # [N, every value of a sample]
        tau = jnp.sort(flat.ravel())[int(q * flat.size)] if exact else jnp.mean(jnp.quantile(flat, q, axis=1))
        layers = [jnp.clip(f, -tau, tau) for f in layers]
    width = max(f.shape[1] for f in layers)
    return jnp.stack([jnp.pad(f, ((0, 0), (0, width - f.shape[1]))) for f in layers], axis=1)


@functools.lru_cache(maxsize=None)
def _layers_program(requests: tuple, pair_batch: int):
    """One compiled program for several (metric, options) requests: each distinct preparation
    runs once per layer (lax.map over layers), then every pair of layers is compared under
    vmap, ``pair_batch`` pairs at a time -> float32 [len(requests), Lx, Ly]."""
    preps = list(dict.fromkeys((_PARTS[name][0], opts) for name, opts in requests))

    def program(x, y):  # [N, Lx, Dx], [N, Ly, Dy]
        def states(feats):
            layers = jnp.swapaxes(feats, 0, 1)
            return [jax.lax.map(lambda f, p=p, o=o: p(_l2_normalize(f), **dict(o)), layers) for p, o in preps]

        sx, sy = states(x), states(y)
        lx, ly = x.shape[1], y.shape[1]
        ii, jj = jnp.meshgrid(jnp.arange(lx), jnp.arange(ly), indexing="ij")

        def pair(ij):
            scores = []
            for name, opts in requests:
                prepare, compare = _PARTS[name]
                k = preps.index((prepare, opts))
                a, b = (jax.tree.map(lambda s, i=i: s[i], st[k]) for st, i in ((sx, ij[0]), (sy, ij[1])))
                scores.append(compare(a, b, **dict(opts)))
            return jnp.stack(scores)

        scores = jax.lax.map(pair, (ii.ravel(), jj.ravel()), batch_size=pair_batch)
        return scores.T.reshape(len(requests), lx, ly)

    return jax.jit(program)


def default_pair_batch(n: int) -> int:
    """Layer pairs compared at once: about 2^24 / N^2 (16 at N = 1,024), so that the kernel
    metrics' per-pair [N, N] intermediates stay within a few hundred MB."""
    return max(1, 2**24 // (n * n))


def layer_pair_tables(feats_x, feats_y, requests: dict, *, pair_batch: int | None = None) -> dict:
    """{label: float64 [Lx, Ly]} for ``requests`` = {label: (metric, options)}: every metric
    between layer i of x and layer j of y for every pair, rows of each layer L2-normalised
    first, all in one compiled program. Layers are prepared once per distinct preparation
    (neighbour lists, kernels, singular directions), so metrics that share one (the four kNN
    metrics at one k, the two CKAs) share the work."""
    x, y = jnp.asarray(feats_x, jnp.float32), jnp.asarray(feats_y, jnp.float32)
    if x.ndim != 3 or y.ndim != 3 or x.shape[0] != y.shape[0]:
        raise ValueError(f"layer pairs need row-paired [N, L, D] features, got {x.shape} and {y.shape}")
    if not requests:
        raise ValueError("no metrics requested")
    n = x.shape[0]
    pair_batch = default_pair_batch(n) if pair_batch is None else int(pair_batch)
    if pair_batch < 1:
        raise ValueError(f"pair_batch must be positive, got {pair_batch}")
    labels = list(requests)
    checked = tuple((requests[label][0], tuple(sorted(metric_options(
        requests[label][0], n, (x.shape[2], y.shape[2]), **requests[label][1]).items()))) for label in labels)
    program = _layers_program(checked, min(pair_batch, x.shape[1] * y.shape[1]))
    out = np.asarray(program(x, y), np.float64)
    return {label: out[i] for i, label in enumerate(labels)}


def layer_pair_scores(feats_x, feats_y, metric: str = "mutual_knn", *, pair_batch: int | None = None,
                      **kw) -> np.ndarray:
    """float64 [Lx, Ly]: ``metric`` (with options ``kw``) between layer i of x [N, Lx, Dx] and
    layer j of y [N, Ly, Dy] for every pair, rows of each layer L2-normalised first. Each layer
    is prepared once; pairs are compared under vmap, ``pair_batch`` at a time (default
    ``default_pair_batch(N)``), so memory holds one batch of pairs, not all of them."""
    return layer_pair_tables(feats_x, feats_y, {metric: (metric, kw)}, pair_batch=pair_batch)[metric]


def best_layer_pair(scores) -> tuple[float, tuple[int, int] | None]:
    """(best score, (i, j)) of a layer-pair matrix, the first pair in row-major order on ties.
    As PRH, the best starts at 0: when no pair scores above 0 the result is (0.0, None)."""
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or not scores.size:
        raise ValueError(f"scores must be a non-empty [Lx, Ly] matrix, got shape {scores.shape}")
    flat = np.where(np.isnan(scores), -np.inf, scores).ravel()
    best = int(np.argmax(flat))
    if not flat[best] > 0:
        return 0.0, None
    i, j = np.unravel_index(best, scores.shape)
    return float(flat[best]), (int(i), int(j))


def alignment_score(feats_x, feats_y, metric: str = "mutual_knn", *, q: float | None = 0.95, exact: bool = True,
                    pair_batch: int | None = None, **kw) -> tuple[float, tuple[int, int] | None]:
    """PRH's score of two models: both feature stacks outlier-clamped (``prepare_features``),
    every layer pair scored, the best score and its (layer of x, layer of y)."""
    scores = layer_pair_scores(prepare_features(feats_x, q, exact), prepare_features(feats_y, q, exact),
                               metric, pair_batch=pair_batch, **kw)
    return best_layer_pair(scores)


def _with_topk(metric: str, topk: int) -> dict:
    """``topk`` for the metrics that take one."""
    return {"topk": topk} if "topk" in inspect.signature(get_metric(metric)).parameters else {}


# Zero layers and zero columns change no score (padded layers are dropped from the results), so
# features are padded to these multiples: models of neighbouring sizes share a compiled program.
LAYER_BUCKET, WIDTH_BUCKET = 8, 128


def _bucketed(x: jax.Array) -> jax.Array:
    n, layers, width = x.shape
    return jnp.pad(x, ((0, 0), (0, -layers % LAYER_BUCKET), (0, -width % WIDTH_BUCKET)))


def alignment_report(llm_feats, references: dict, *, metric: str = "mutual_knn", topk: int = 20,
                     q: float | None = 0.95, exact: bool = True, table_metrics: Sequence[str] = tuple(METRICS),
                     table_topk: int = 10, pair_batch: int | None = None) -> dict:
    """An LLM's alignment with each reference vision model, as LSBS reports it: per reference the
    best layer-pair ``metric`` (at ``topk``: LSBS uses mutual_knn at k = 20), its pair and the
    whole layer-pair matrix, plus PRH's table (every metric of ``table_metrics``, at
    ``table_topk`` where it takes one, k = 10 in PRH) with its mean over references; and
    ``score``, the mean over references of the best ``metric`` score (LSBS's alignment score).

    ``llm_feats`` [N, L, D] and every reference's features ([N, L, D] or a list of [N, D_l]
    layers) are clamped with ``prepare_features(q, exact)`` first.
    """
    if not references:
        raise ValueError("alignment_report needs at least one reference model")
    requests = {"study": (metric, _with_topk(metric, topk))}
    requests.update({m: (m, _with_topk(m, table_topk)) for m in table_metrics})
    x = prepare_features(llm_feats, q, exact)
    per_ref = {}
    for name, feats in references.items():
        y = prepare_features(feats, q, exact)
        for m, kw in requests.values():  # checked at the real sizes, before padding
            metric_options(m, x.shape[0], (x.shape[2], y.shape[2]), **kw)
        tables = {label: scores[:x.shape[1], :y.shape[1]] for label, scores in
                  layer_pair_tables(_bucketed(x), _bucketed(y), requests, pair_batch=pair_batch).items()}
        best, pair = best_layer_pair(tables["study"])
        table = {}
        for m in table_metrics:
            s, p = best_layer_pair(tables[m])
            table[m] = {"score": s, "layers": list(p) if p else None}
        per_ref[name] = {"score": best, "layers": list(pair) if pair else None,
                         "layer_scores": tables["study"].tolist(), "llm_layers": int(x.shape[1]),
                         "vision_layers": int(y.shape[1]), "table": table}
    return {"score": float(np.mean([r["score"] for r in per_ref.values()])), "metric": metric, "topk": topk,
            "q": q, "exact": exact, "samples": int(x.shape[0]), "encoders": per_ref, "table_topk": table_topk,
            "table": {m: float(np.mean([r["table"][m]["score"] for r in per_ref.values()]))
                      for m in table_metrics}}
