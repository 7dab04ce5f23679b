"""PRH's colour experiment (Huh et al. 2024, Fig. 8 / App. D) on the procedural world: does an
LLM's geometry of colour words, and the geometry of colour co-occurrence in the world's images,
match perceptual colour space (CIELAB)?

Vision (co-occurrence). ``n_pairs`` pixel pairs (A, B) are drawn from world images: an image,
a pixel and an offset, uniform over the offsets with 0 < dx^2 + dy^2 <= radius^2 (radius 4, as
PRH), pairs falling off the image redrawn. Colours are quantised on an RGB grid of
``grid_levels`` bins per channel (cell = floor(v * levels / 256) per channel; 6 levels, bins of
~43 sRGB steps). A grid, not the world's eight named colours: objects are coloured
independently of their neighbours, so which *named* colours touch carries no colour geometry
(snapped to the palette, world seed 0 gives a normalised error of 0.87 against 0.84 shuffled;
on the grid 0.76 against 0.98). The geometry lives in the renderer's shading (outlines at half
intensity, edges box-filtered into the background, the darker ground plane), which a grid
keeps. Cells holding less than ``min_share`` of all pixel
draws are dropped, with the pairs that touch them. The count table is symmetrised (a pair is
unordered): p(A, B) = (C + C^T) / sum, p(A) its row sums, K = log p(A, B) / (p(A) p(B)) (PMI).
Zero counts: a pair never seen gets the smallest PMI observed among seen pairs (as unrelated as
the least related observed pair, instead of -inf). D = max K - K (PRH), diagonal set to 0. Each
cell's target is the CIELAB value of the mean sRGB colour of the pixels it received.

Language. The world's colour words (``visual_priors.world.kinds.COLOURS``), each in PRH's three
sentences, "The colour <col>.", "This colour is <col>.", "The colour of this thing is <col>."
(spelled as the world's text spells it; PRH's American spelling is ``PRH_TEMPLATES``). A sentence
is BOS + its tokens; its feature is the mean over its own tokens (BOS, identical in every
sentence, left out; right padding masked) of the residual stream of the chosen layers,
concatenated. Default layers: the last four block outputs (PRH's RoBERTa variant concatenates
the last four layers; fewer when the LLM has fewer blocks). A word's feature is the mean over
its three sentences; D = pairwise Euclidean distances; the targets are the CIELAB values of the
world's own RGB for each word.

Both: metric MDS of D to 3-D (best of ``mds_inits`` random starts; PRH 1,000), Kabsch-Umeyama
similarity alignment to the targets on z and -z, the better kept (``colour_space``). Errors: RMS
Delta E (CIELAB units) after alignment, and that divided by the targets' RMS spread (0 perfect,
1 = no better than collapsing onto the mean). Chance: the same with the targets' rows permuted
(``shuffled``: mean and std over permutations, and a permutation p-value). The CIELAB coordinates
themselves score 0. The vision half depends on the images alone (``vision_colour_probe``), so
the LLMs of one world share it (``world_vision_probe`` computes it once per world and settings
in a process); the language half is ``language_colour_probe``. Headline: ``language_error`` and
``vision_error`` (normalised) beside ``language_shuffled`` / ``vision_shuffled`` = {mean, std,
p_value} of the shuffled baseline; ``summary`` keeps those and what a plot needs (the suite's
alignment step records it under ``colour``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from flax import nnx
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.spatial.distance import pdist, squareform

from visual_priors.errors import BadValue, read_json
from visual_priors.eval.alignment_features import caption_tokens, llm_features
from visual_priors.eval.colour_space import (DEFAULT_MDS_INITS, align_similarity, mds_embedding,
                                             shuffled_alignment, srgb_to_lab)
from visual_priors.world.kinds import COLOURS

SENTENCE_TEMPLATES = ("The colour {}.", "This colour is {}.", "The colour of this thing is {}.")
PRH_TEMPLATES = ("The color {}.", "This color is {}.", "The color of this thing is {}.")
PAIR_RADIUS = 4
PRH_PAIRS = 300_000
DEFAULT_GRID_LEVELS = 6
DEFAULT_MIN_SHARE = 1e-3
DEFAULT_LAST_LAYERS = 4


# ---------------------------------------------------------------- vision: co-occurrence


def world_images(world, n_images: int, *, split: str = "train", start: int = 0) -> np.ndarray:
    """Scene images start..start+n_images-1 of a split of the world: uint8 [n, S, S, 3]."""
    if n_images < 1:
        raise ValueError(f"n_images must be positive, got {n_images}")
    return np.stack([world.render(world.scene(split, i)) for i in range(start, start + n_images)])


def pair_offsets(radius: int) -> np.ndarray:
    """Every (dy, dx) with 0 < dy^2 + dx^2 <= radius^2: int [m, 2]."""
    r = int(radius)
    if r < 1:
        raise ValueError(f"radius must be at least 1, got {radius}")
    return np.array([(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)
                     if 0 < dy * dy + dx * dx <= r * r])


def sample_pixel_pairs(images: np.ndarray, n_pairs: int, *, radius: int = PAIR_RADIUS,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Colours of ``n_pairs`` pixel pairs within ``radius`` of each other, each [n_pairs, 3]."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [n, H, W, 3], got shape {images.shape}")
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be positive, got {n_pairs}")
    offsets = pair_offsets(radius)
    n, h, w = images.shape[:3]
    rng = np.random.default_rng(seed)
    first, second = [], []
    left = n_pairs
    while left > 0:
        m = 2 * left + 16
        i, y, x = rng.integers(0, n, m), rng.integers(0, h, m), rng.integers(0, w, m)
        off = offsets[rng.integers(0, len(offsets), m)]
        y2, x2 = y + off[:, 0], x + off[:, 1]
        inside = np.nonzero((y2 >= 0) & (y2 < h) & (x2 >= 0) & (x2 < w))[0][:left]
        first.append(images[i[inside], y[inside], x[inside]])
        second.append(images[i[inside], y2[inside], x2[inside]])
        left -= len(inside)
    return np.concatenate(first), np.concatenate(second)


def grid_cells(colours: np.ndarray, levels: int) -> np.ndarray:
    """Index of each sRGB colour's cell on a ``levels``^3 RGB grid: int [n]."""
    if not 1 <= levels <= 256:
        raise ValueError(f"grid levels must be in 1..256, got {levels}")
    q = (np.asarray(colours, np.int64) * levels) // 256
    return (q[:, 0] * levels + q[:, 1]) * levels + q[:, 2]


def pmi_dissimilarity(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PMI K and dissimilarity D = max K - K (zero diagonal) of a symmetric count table [k, k].

    Unseen pairs get the smallest PMI of the seen ones."""
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or not np.allclose(counts, counts.T):
        raise ValueError("counts must be a symmetric square table")
    if np.any(counts.sum(1) <= 0):
        raise ValueError("every colour needs at least one count")
    p = counts / counts.sum()
    marginal = p.sum(1)
    seen = counts > 0
    pmi = np.zeros_like(p)
    pmi[seen] = np.log(p[seen] / np.outer(marginal, marginal)[seen])
    pmi[~seen] = pmi[seen].min()
    dissimilarity = pmi.max() - pmi
    np.fill_diagonal(dissimilarity, 0.0)
    return pmi, dissimilarity


def colour_cooccurrence(first: np.ndarray, second: np.ndarray, *,
                        grid_levels: int = DEFAULT_GRID_LEVELS,
                        min_share: float = DEFAULT_MIN_SHARE) -> dict:
    """Grid cells kept, their mean sRGB [k, 3], symmetric pair counts [k, k], shares [k], PMI
    and dissimilarity [k, k] of paired colours (see the module docstring)."""
    first, second = np.asarray(first), np.asarray(second)
    a, b = grid_cells(first, grid_levels), grid_cells(second, grid_levels)
    n_cells = grid_levels ** 3
    both = np.concatenate([a, b])
    draws = np.bincount(both, minlength=n_cells)
    kept = np.nonzero((draws > 0) & (draws >= min_share * len(both)))[0]
    if len(kept) < 4:
        raise ValueError(f"only {len(kept)} colour cells hold a {min_share} share of the pixels; "
                         "need at least 4 for a 3-D embedding (lower min_share or add images)")
    index = np.full(n_cells, -1)
    index[kept] = np.arange(len(kept))
    ia, ib = index[a], index[b]
    ok = (ia >= 0) & (ib >= 0)
    counts = np.zeros((len(kept), len(kept)))
    np.add.at(counts, (ia[ok], ib[ok]), 1.0)
    counts = counts + counts.T
    sums = np.zeros((n_cells, 3))
    np.add.at(sums, both, np.concatenate([first, second]).astype(np.float64))
    mean_rgb = sums[kept] / draws[kept][:, None]
    pmi, dissimilarity = pmi_dissimilarity(counts)
    return {"cells": kept, "rgb": mean_rgb, "counts": counts, "share": draws[kept] / len(both),
            "pmi": pmi, "dissimilarity": dissimilarity, "pairs_used": int(ok.sum())}


# ---------------------------------------------------------------- language: colour words


def colour_sentences(words: Sequence[str], templates: Sequence[str] = SENTENCE_TEMPLATES) -> list[str]:
    """Sentences word-major: word 0 in every template, then word 1, ..."""
    return [t.format(w) for w in words for t in templates]


def default_layers(n_layers: int, last: int = DEFAULT_LAST_LAYERS) -> tuple[int, ...]:
    """Indices into ``Llama.hidden_states`` (0 = embedding output, i = block i's output) of the
    last ``last`` block outputs (all blocks when there are fewer)."""
    return tuple(range(max(1, n_layers - last + 1), n_layers + 1))


def sentence_features(llm, tokenizer, sentences: Sequence[str], *, layers: Sequence[int],
                      batch_size: int = 64) -> np.ndarray:
    """Per sentence: masked mean over its tokens (BOS excluded) of the hidden states ``layers``,
    concatenated -> float64 [n, len(layers) * d_model]. The pooling is the alignment features'
    (``alignment_features.llm_features``) with BOS left out."""
    tokens, mask = caption_tokens(tokenizer, sentences)
    feats = llm_features(llm, tokens, mask, layers=layers, skip_bos=True, batch_size=batch_size)
    return feats.reshape(len(sentences), -1).astype(np.float64)


def word_features(llm, tokenizer, words: Sequence[str], *,
                  templates: Sequence[str] = SENTENCE_TEMPLATES,
                  layers: Sequence[int] | None = None) -> np.ndarray:
    """Mean over the templates of each word's sentence feature: float64 [n_words, F]."""
    if layers is None:
        layers = default_layers(llm.cfg.n_layers)
    feats = sentence_features(llm, tokenizer, colour_sentences(words, templates), layers=layers)
    return feats.reshape(len(words), len(templates), -1).mean(1)


def euclidean_dissimilarity(features: np.ndarray) -> np.ndarray:
    """Pairwise Euclidean distances between rows: float64 [n, n]."""
    return squareform(pdist(np.asarray(features, np.float64)))


# ---------------------------------------------------------------- the probe


def embed_and_align(dissimilarity: np.ndarray, lab: np.ndarray, *, mds_inits: int,
                    n_permutations: int, seed: int) -> dict:
    """MDS to 3-D, alignment to ``lab`` and the shuffled baseline, as JSON-able values."""
    points, stress = mds_embedding(dissimilarity, n_init=mds_inits, random_state=seed)
    fit = align_similarity(points, lab)
    shuffled = shuffled_alignment(points, lab, n_permutations=n_permutations, seed=seed)
    return {"error": fit.rms, "error_normalised": fit.normalised, "shuffled": shuffled,
            "stress": stress, "reflected": fit.reflected, "scale": fit.scale,
            "mds": points.tolist(), "aligned": fit.aligned.tolist(), "lab": np.asarray(lab).tolist()}


def language_colour_probe(llm, tokenizer, *, words: dict[str, tuple[int, int, int]] | None = None,
                          templates: Sequence[str] = SENTENCE_TEMPLATES,
                          layers: Sequence[int] | None = None, mds_inits: int = DEFAULT_MDS_INITS,
                          n_permutations: int = 200, seed: int = 0) -> dict:
    """The language half: colour words (name -> sRGB, the world's palette by default) embedded
    by the LLM, MDS, aligned to CIELAB, with the shuffled baseline (JSON-able dict)."""
    words = dict(COLOURS if words is None else words)
    if len(words) < 4:
        raise ValueError(f"need at least 4 colour words for a 3-D embedding, got {len(words)}")
    layers = [int(i) for i in (default_layers(llm.cfg.n_layers) if layers is None else layers)]
    names = list(words)
    rgb = np.array([words[w] for w in names], np.float64)
    feats = word_features(llm, tokenizer, names, templates=templates, layers=layers)
    return {"names": names, "rgb": rgb.tolist(), "layers": layers, "templates": list(templates),
            "feature_dim": int(feats.shape[1]),
            **embed_and_align(euclidean_dissimilarity(feats), srgb_to_lab(rgb), mds_inits=mds_inits,
                              n_permutations=n_permutations, seed=seed)}


def vision_colour_probe(images: np.ndarray, *, n_pairs: int = PRH_PAIRS, radius: int = PAIR_RADIUS,
                        grid_levels: int = DEFAULT_GRID_LEVELS, min_share: float = DEFAULT_MIN_SHARE,
                        mds_inits: int = DEFAULT_MDS_INITS, n_permutations: int = 200,
                        seed: int = 0) -> dict:
    """The vision half: colour co-occurrence PMI of pixel pairs in ``images`` (uint8 [n, H, W, 3]),
    MDS, aligned to CIELAB, with the shuffled baseline (JSON-able dict). It depends on the images
    alone, so every LLM of one world shares it."""
    first, second = sample_pixel_pairs(images, n_pairs, radius=radius, seed=seed)
    co = colour_cooccurrence(first, second, grid_levels=grid_levels, min_share=min_share)
    hexes = ["#%02x%02x%02x" % tuple(int(round(v)) for v in c) for c in co["rgb"]]
    return {"names": hexes, "rgb": co["rgb"].tolist(), "share": co["share"].tolist(),
            "n_images": int(len(images)), "n_pairs": int(n_pairs), "pairs_used": co["pairs_used"],
            "radius": int(radius), "grid_levels": int(grid_levels), "min_share": float(min_share),
            **embed_and_align(co["dissimilarity"], srgb_to_lab(co["rgb"]), mds_inits=mds_inits,
                              n_permutations=n_permutations, seed=seed)}


# The vision half of each (world, settings) met in this process, as JSON text (a fresh copy per
# call): every LLM of one world shares it, so a worker probing many LLMs computes it once.
_WORLD_VISION: dict[str, str] = {}
_WORLD_VISION_KEPT = 8


def world_vision_probe(world, *, n_images: int = 500, image_split: str = "train", **probe_kw) -> dict:
    """``vision_colour_probe`` of ``n_images`` scene images of ``image_split`` of ``world``,
    computed once per world and settings in a process. probe_kw go to ``vision_colour_probe``."""
    key = json.dumps({"world": repr(world), "n_images": int(n_images), "split": image_split,
                      **probe_kw}, sort_keys=True, default=float)
    if key not in _WORLD_VISION:
        images = world_images(world, n_images, split=image_split)
        _WORLD_VISION[key] = json.dumps(vision_colour_probe(images, **probe_kw))
        while len(_WORLD_VISION) > _WORLD_VISION_KEPT:
            _WORLD_VISION.pop(next(iter(_WORLD_VISION)))
    return json.loads(_WORLD_VISION[key])


def shuffled_headline(part: dict) -> dict:
    """A half's shuffled baseline as the headline states it: the normalised error's mean and
    standard deviation over permutations, and the permutation p-value of the true pairing."""
    s = part["shuffled"]
    return {"mean": s["normalised_mean"], "std": s["normalised_std"], "p_value": s["p_value"]}


def colour_probe(llm, tokenizer, *, world=None, images: np.ndarray | None = None,
                 n_images: int = 500, image_split: str = "train", n_pairs: int = PRH_PAIRS,
                 radius: int = PAIR_RADIUS, grid_levels: int = DEFAULT_GRID_LEVELS,
                 min_share: float = DEFAULT_MIN_SHARE, words: dict[str, tuple[int, int, int]] | None = None,
                 templates: Sequence[str] = SENTENCE_TEMPLATES, layers: Sequence[int] | None = None,
                 mds_inits: int = DEFAULT_MDS_INITS, n_permutations: int = 200, seed: int = 0,
                 vision: dict | None = None) -> dict:
    """The colour experiment for one LLM: language and vision embeddings against CIELAB.

    images: uint8 [n, H, W, 3]; when None, ``n_images`` scene images of ``image_split`` of
    ``world`` (required then; ``world_vision_probe``, once per world and settings in a
    process). words: colour name -> sRGB, the world's palette by default. ``seed`` fixes the
    pixel pairs, the MDS starts and the permutations. vision: a finished ``vision_colour_probe``
    result to reuse instead of computing it. Returns a JSON-able dict: ``language`` and
    ``vision`` (each: names, rgb, lab targets, mds points, aligned points, error = RMS Delta E,
    error_normalised, shuffled baseline, stress), and the headline numbers ``language_error``,
    ``vision_error`` (normalised) beside ``language_shuffled``, ``vision_shuffled``
    (``shuffled_headline``: mean, std, p_value).
    """
    common = dict(mds_inits=mds_inits, n_permutations=n_permutations, seed=seed)
    language = language_colour_probe(llm, tokenizer, words=words, templates=templates,
                                     layers=layers, **common)
    if vision is None:
        vision_kw = dict(n_pairs=n_pairs, radius=radius, grid_levels=grid_levels, min_share=min_share,
                         **common)
        if images is not None:
            vision = vision_colour_probe(images, **vision_kw)
        elif world is not None:
            vision = world_vision_probe(world, n_images=n_images, image_split=image_split, **vision_kw)
        else:
            raise ValueError("give images or a world to draw them from")
    return {"language": language, "vision": vision, "seed": int(seed), "mds_inits": int(mds_inits),
            "language_error": language["error_normalised"], "language_shuffled": shuffled_headline(language),
            "vision_error": vision["error_normalised"], "vision_shuffled": shuffled_headline(vision)}


# The keys of each half a plot needs (``plot_colour_probe``), with its errors.
SUMMARY_PART_KEYS = ("names", "rgb", "lab", "aligned", "error", "error_normalised", "stress")


def summary(result: dict) -> dict:
    """A ``colour_probe`` result cut to its headline numbers and what its plot needs: per half
    the names, sRGB, CIELAB targets, aligned 3-D points and errors; the language layers; the
    vision sampling (images, pairs, grid). ``plot_colour_probe`` draws it as it draws the
    whole result."""
    lang, vis = result["language"], result["vision"]
    return {**{k: result[k] for k in ("language_error", "language_shuffled", "vision_error",
                                      "vision_shuffled", "seed", "mds_inits")},
            "n_permutations": lang["shuffled"]["n_permutations"],
            "language": {**{k: lang[k] for k in SUMMARY_PART_KEYS}, "layers": lang["layers"]},
            "vision": {**{k: vis[k] for k in SUMMARY_PART_KEYS},
                       **{k: vis[k] for k in ("n_images", "n_pairs", "pairs_used", "grid_levels")}}}


# ---------------------------------------------------------------- figure


def plot_colour_probe(result: dict, path: str | Path | None = None, *, projection: str = "ab") -> bytes:
    """CIELAB targets beside the aligned language and vision embeddings, each point drawn in its
    own colour. projection: "ab" (a*, b* plane) or "3d" (a*, b*, L*). Returns the PNG bytes,
    also written to ``path`` when given."""
    if projection not in ("ab", "3d"):
        raise ValueError(f"projection must be 'ab' or '3d', got {projection!r}")
    lang, vis = result["language"], result["vision"]
    panels = [
        ("CIELAB (targets)", [(lang, "lab", "o"), (vis, "lab", "s")]),
        (f"language, aligned (err {result['language_error']:.2f}, "
         f"shuffled {result['language_shuffled']['mean']:.2f})", [(lang, "aligned", "o")]),
        (f"vision co-occurrence, aligned (err {result['vision_error']:.2f}, "
         f"shuffled {result['vision_shuffled']['mean']:.2f})", [(vis, "aligned", "s")]),
    ]
    fig = Figure(figsize=(15, 5))
    FigureCanvasAgg(fig)
    for k, (title, layers) in enumerate(panels):
        ax = fig.add_subplot(1, 3, k + 1, **({"projection": "3d"} if projection == "3d" else {}))
        for part, key, marker in layers:
            pts = np.asarray(part[key])
            faces = np.clip(np.asarray(part["rgb"]) / 255.0, 0, 1)
            if projection == "3d":
                ax.scatter(pts[:, 1], pts[:, 2], pts[:, 0], c=faces, marker=marker, s=50,
                           edgecolors="k", linewidths=0.5, depthshade=False)
            else:
                ax.scatter(pts[:, 1], pts[:, 2], c=faces, marker=marker, s=60, edgecolors="k",
                           linewidths=0.5)
            if part is lang:
                for name, p in zip(part["names"], pts):
                    xyz = (p[1], p[2], p[0]) if projection == "3d" else (p[1], p[2])
                    ax.text(*xyz, " " + name, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("a*")
        ax.set_ylabel("b*")
        if projection == "3d":
            ax.set_zlabel("L*")
        else:
            ax.axhline(0, color="0.85", lw=0.5, zorder=0)
            ax.axvline(0, color="0.85", lw=0.5, zorder=0)
            ax.set_aspect("equal", adjustable="datalim")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    png = buf.getvalue()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
    return png


# ---------------------------------------------------------------- a finished run


def load_pretrained(root: str | Path, pretrain_step: str | Path):
    """(llm, tokenizer, world) of a finished pretrain step under a suite run root.

    The same reading as the suite's ``load_llm``, done here from the step's ``spec.json`` so
    that evaluation code does not depend on the suite: the scale from the spec, the tokenizer
    from its ``tokenizer-*`` input, the world from the tokenizer step's fields."""
    from visual_priors.config import scales
    from visual_priors.data.tokenizer import load_tokenizer
    from visual_priors.model.llm import Llama
    from visual_priors.model.params_io import load_params
    from visual_priors.world import World

    root = Path(root)
    step_dir = Path(pretrain_step) if Path(pretrain_step).is_absolute() else root / pretrain_step
    spec = read_json(step_dir / "spec.json", "step spec")
    if spec.get("kind") != "pretrain":
        raise BadValue(f"{step_dir} is a {spec.get('kind')!r} step, not a pretrain step")
    tok_name = next((s for s in spec["inputs"] if s.startswith("tokenizer-")), None)
    if tok_name is None:
        raise BadValue(f"{step_dir} names no tokenizer input")
    tok_dir = root / tok_name
    tok = load_tokenizer(tok_dir / read_json(tok_dir / "result.json", "step result")["path"])
    world_fields = read_json(tok_dir / "spec.json", "step spec")["fields"]["world"]
    world = World(seed=world_fields["seed"], image_size=world_fields["image_size"])
    scale = spec["fields"]["scale"]
    cfg = scales.get(scale)
    if cfg.vocab_size != tok.vocab_size:
        raise ValueError(f"scale {scale} expects a vocabulary of {cfg.vocab_size}, the tokenizer has "
                         f"{tok.vocab_size}")
    llm = Llama(cfg, rngs=nnx.Rngs(0))
    state = nnx.state(llm, nnx.Param)
    nnx.replace_by_pure_dict(state, load_params(step_dir / "llm", state.to_pure_dict(),
                                                expect={"kind": "llm", "scale": scale,
                                                        "vocab_size": cfg.vocab_size}))
    nnx.update(llm, state)
    return llm, tok, world


def probe_run(root: str | Path, pretrain_step: str | Path, *, out: str | Path | None = None,
              **probe_kw) -> dict:
    """``colour_probe`` of a finished pretrain step (a directory name under ``root``, or a
    path), on its own world's images. With ``out``, writes ``colour.json`` and
    ``colour_ab.png`` / ``colour_3d.png`` there. ``probe_kw`` go to ``colour_probe``."""
    llm, tok, world = load_pretrained(root, pretrain_step)
    result = colour_probe(llm, tok, world=world, **probe_kw)
    result["pretrain_step"] = Path(pretrain_step).name
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "colour.json").write_text(json.dumps(result, indent=1))
        plot_colour_probe(result, out / "colour_ab.png", projection="ab")
        plot_colour_probe(result, out / "colour_3d.png", projection="3d")
    return result
