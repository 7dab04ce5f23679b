"""Colour-space tools of PRH's colour experiment (Huh et al. 2024, App. D): CIELAB, metric MDS
to 3-D, and Kabsch-Umeyama similarity alignment.

Definitions used:

* ``srgb_to_lab``: sRGB (IEC 61966-2-1, values 0..255) -> linear RGB (v/12.92 at or below
  0.04045, else ((v + 0.055)/1.055)^2.4) -> CIE XYZ (the standard sRGB matrix, D65) ->
  CIELAB (CIE 1976) relative to the D65 reference white Xn, Yn, Zn = 0.95047, 1, 1.08883:
  L* = 116 f(Y/Yn) - 16, a* = 500 (f(X/Xn) - f(Y/Yn)), b* = 200 (f(Y/Yn) - f(Z/Zn)), with
  f(t) = t^(1/3) above (6/29)^3 and t / (3 (6/29)^2) + 4/29 below.
* ``align_similarity``: Umeyama (1991): the rotation R, translation t and isotropic scale c
  minimising sum_i ||c R z_i + t - y_i||^2, with R a proper rotation. As in PRH it is run on
  z and on -z (the reflection of z through the origin), and the better fit is kept, so any
  orthogonal map is allowed. Errors: ``rms`` = sqrt(mean_i ||aligned_i - y_i||^2), in the
  targets' units (CIELAB: Delta E 1976); ``normalised`` = rms / sqrt(mean_i ||y_i - mean(y)||^2),
  the RMS spread of the targets. Collapsing every point onto the targets' mean (c = 0) gives
  normalised error 1, so the optimum lies in [0, 1], and embeddings of different sizes compare.
* ``mds_embedding``: metric MDS (SMACOF, scikit-learn) of a dissimilarity matrix to 3-D,
  ``n_init`` random starts from a fixed ``random_state``, the lowest raw stress kept. PRH uses
  1,000 starts.
* ``shuffled_alignment``: the chance level of an alignment error: the same alignment against
  targets whose rows are permuted (the colour-to-name assignment shuffled), over many random
  permutations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.manifold import MDS

# D65 reference white (CIE 1931 2-degree observer), Y normalised to 1.
D65_WHITE = np.array([0.95047, 1.0, 1.08883])
# Linear sRGB -> CIE XYZ (IEC 61966-2-1).
SRGB_TO_XYZ = np.array([
    [0.4124564, 0.3575761, 0.1804375],
    [0.2126729, 0.7151522, 0.0721750],
    [0.0193339, 0.1191920, 0.9503041],
])
_DELTA = 6.0 / 29.0

# PRH runs 1,000 restarts; a handful already finds the best stress on a few dozen points.
DEFAULT_MDS_INITS = 8
# scikit-learn's default (1e-6) stops SMACOF while exact 3-D distances are still off by ~1%.
MDS_TOLERANCE = 1e-9


def srgb_to_linear(rgb) -> np.ndarray:
    """sRGB values in 0..255 (any shape [..., 3]) -> linear RGB in 0..1, float64."""
    v = np.asarray(rgb, np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_to_xyz(rgb) -> np.ndarray:
    """sRGB in 0..255 -> CIE XYZ (D65, Y of white = 1), float64 [..., 3]."""
    return srgb_to_linear(rgb) @ SRGB_TO_XYZ.T


def _lab_f(t: np.ndarray) -> np.ndarray:
    return np.where(t > _DELTA ** 3, np.cbrt(t), t / (3 * _DELTA ** 2) + 4.0 / 29.0)


def srgb_to_lab(rgb) -> np.ndarray:
    """sRGB in 0..255 ([..., 3], uint8 or float) -> CIELAB (L*, a*, b*) under D65, float64."""
    rgb = np.asarray(rgb)
    if rgb.shape[-1:] != (3,):
        raise ValueError(f"colours must have a last axis of 3 (R, G, B), got shape {rgb.shape}")
    fx, fy, fz = np.moveaxis(_lab_f(srgb_to_xyz(rgb) / D65_WHITE), -1, 0)
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


# ---------------------------------------------------------------- alignment


@dataclass(frozen=True)
class Alignment:
    """``aligned`` = scale * (sign * z) @ rotation.T + translation, the fitted copy of z [n, 3]."""

    aligned: np.ndarray
    rms: float
    normalised: float
    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    reflected: bool


def _umeyama(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale, proper rotation and translation minimising sum ||c R z_i + t - y_i||^2."""
    mz, my = z.mean(0), y.mean(0)
    zc, yc = z - mz, y - my
    var_z = float((zc ** 2).sum() / len(z))
    u, d, vt = np.linalg.svd(yc.T @ zc / len(z))
    s = np.ones(len(d))
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[-1] = -1.0
    rotation = u @ np.diag(s) @ vt
    scale = float((d * s).sum() / var_z) if var_z > 0 else 0.0
    return scale, rotation, my - scale * rotation @ mz


def _errors(aligned: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    rms = float(np.sqrt(((aligned - y) ** 2).sum(1).mean()))
    spread = float(np.sqrt(((y - y.mean(0)) ** 2).sum(1).mean()))
    return rms, rms / spread if spread > 0 else float("nan")


def align_similarity(z, y, *, allow_reflection: bool = True) -> Alignment:
    """Kabsch-Umeyama similarity alignment of points z [n, d] onto targets y [n, d] (float64).

    With ``allow_reflection`` (PRH), the fit is also made to -z and the one of lower error kept.
    """
    z, y = np.asarray(z, np.float64), np.asarray(y, np.float64)
    if z.ndim != 2 or z.shape != y.shape:
        raise ValueError(f"z and y must be row-paired [n, d] arrays of one shape, got {z.shape}, {y.shape}")
    if len(z) < 2:
        raise ValueError(f"need at least 2 points to align, got {len(z)}")
    best = None
    for sign in ((1.0, -1.0) if allow_reflection else (1.0,)):
        scale, rotation, translation = _umeyama(sign * z, y)
        aligned = scale * (sign * z) @ rotation.T + translation
        rms, normalised = _errors(aligned, y)
        if best is None or rms < best.rms - 1e-12:
            best = Alignment(aligned, rms, normalised, scale, rotation, translation, sign < 0)
    return best


def shuffled_alignment(z, y, *, n_permutations: int = 200, seed: int = 0,
                       allow_reflection: bool = True) -> dict:
    """Alignment errors of z against row-permuted targets: the error a z unrelated to y gets.

    Returns the mean and standard deviation of the permuted ``normalised`` and ``rms`` errors,
    and ``p_value`` = (1 + #permutations at least as good as the true pairing) / (1 + n), the
    one-sided permutation test of "z's geometry matches y's".
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be positive, got {n_permutations}")
    z, y = np.asarray(z, np.float64), np.asarray(y, np.float64)
    observed = align_similarity(z, y, allow_reflection=allow_reflection).normalised
    rng = np.random.default_rng(seed)
    norm, rms = np.empty(n_permutations), np.empty(n_permutations)
    for i in range(n_permutations):
        fit = align_similarity(z, y[rng.permutation(len(y))], allow_reflection=allow_reflection)
        norm[i], rms[i] = fit.normalised, fit.rms
    return {"normalised_mean": float(norm.mean()), "normalised_std": float(norm.std()),
            "rms_mean": float(rms.mean()), "rms_std": float(rms.std()),
            "p_value": float((1 + np.sum(norm <= observed + 1e-12)) / (1 + n_permutations)),
            "n_permutations": int(n_permutations)}


# ---------------------------------------------------------------- MDS


def mds_embedding(dissimilarity, *, n_components: int = 3, n_init: int = DEFAULT_MDS_INITS,
                  random_state: int = 0, max_iter: int = 1000,
                  eps: float = MDS_TOLERANCE) -> tuple[np.ndarray, float]:
    """Metric MDS of a symmetric dissimilarity matrix [n, n] -> (points [n, n_components], raw
    stress of the best of ``n_init`` random starts). ``eps``: SMACOF's convergence tolerance on
    the relative stress change."""
    d = np.asarray(dissimilarity, np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"dissimilarity must be a square matrix, got shape {d.shape}")
    if not np.all(np.isfinite(d)):
        raise ValueError("dissimilarity has non-finite entries")
    if not np.allclose(d, d.T):
        raise ValueError("dissimilarity must be symmetric")
    mds = MDS(n_components=n_components, metric_mds=True, metric="precomputed", n_init=n_init,
              init="random", max_iter=max_iter, eps=eps, random_state=random_state, normalized_stress=False)
    points = mds.fit_transform(d)
    return np.asarray(points, np.float64), float(mds.stress_)
