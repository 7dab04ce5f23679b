"""Response surfaces over sampled inputs and their predicted optimum inside the sampled region.

The inputs are any [n, d] points (e.g. a mixture's (reasoning %, visual %) shares, or source
weights) with one response each.

**Region.** The predicted optimum is searched only inside the convex hull of the sampled inputs
(within their affine span): on a grid that is not rectangular the bounding box would
extrapolate into corners nobody sampled; the hull does not (it still holds unsampled interior
points). The search evaluates the surface on a dense grid of candidates inside the hull and
refines the best few with SLSQP under the hull's facets as linear constraints.

**Quadratic.** y = b0 + sum_i b_i s_i + sum_{i<=j} b_ij s_i s_j by ordinary least squares in
float64, where s are the inputs or a linear map of them; coefficient covariance s^2 (F'F)^-1
with s^2 = RSS / (n - p). Interval for the optimum (location per axis and value): percentile
residual bootstrap by default (the design stays fixed, residuals rescaled by sqrt(n / (n - p))
are resampled onto the fitted values, the coefficients refitted and the optimum located
again); a bootstrap over cells is available.

**Gaussian process.** scikit-learn ``GaussianProcessRegressor`` with ConstantKernel x RBF +
WhiteKernel on inputs scaled to [0, 1] per axis (axes that never vary dropped) and
standardised responses; hyper-parameters maximise the log marginal likelihood from
``N_RESTARTS`` restarts with a fixed ``random_state``. The optimum is the maximum of the
posterior mean. Interval: functions drawn from the posterior of the latent surface (the
white-noise term excluded) on a candidate grid inside the hull; the argmax and the maximum of
each draw give the location and value intervals (resolution: the candidate grid's spacing;
the maximum of a draw sits above the posterior mean's maximum on average, so the value
interval leans high).

All intervals are two-sided percentile intervals at ``LEVEL`` = 0.95.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import optimize, spatial

LEVEL = 0.95
N_BOOT = 1000
N_SAMPLES = 1000
N_RESTARTS = 10
RANDOM_STATE = 0
GRID_POINTS = 4000  # candidates for locating an optimum
SAMPLE_POINTS = 900  # candidates the GP draws are evaluated on (their covariance is dense)


# ---------------------------------------------------------------------------------------------
# The sampled region and maximisation inside it

class SampledRegion:
    """The convex hull of sampled points within their affine span.

    Coordinates z in the span come from an SVD of the centred points (directions with a
    singular value below ``rel_tol`` x the largest are dropped); the hull's facets give
    A z + b <= 0 inside.
    """

    def __init__(self, points: Any, rel_tol: float = 1e-6):
        p = np.asarray(points, dtype=np.float64)
        if p.ndim != 2 or len(p) == 0:
            raise ValueError(f"a region needs an [n, d] array of points, got shape {p.shape}")
        self.points = p
        self.centre = p.mean(axis=0)
        _, s, vt = np.linalg.svd(p - self.centre, full_matrices=False)
        self.dim = int(np.sum(s > rel_tol * s[0])) if s.size and s[0] > 0 else 0
        self.basis = vt[: self.dim].T  # [d, m]
        z = self.reduce(p)
        self.lo, self.hi = (z.min(axis=0), z.max(axis=0)) if self.dim else (None, None)
        self.equations = None
        if self.dim >= 2:
            try:
                hull = spatial.ConvexHull(z)
            except spatial.QhullError:  # nearly flat in some direction: joggle the input
                hull = spatial.ConvexHull(z, qhull_options="QJ")
            self.equations = hull.equations  # [facets, m + 1]

    def reduce(self, x: Any) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.centre) @ self.basis

    def expand(self, z: Any) -> np.ndarray:
        return self.centre + np.asarray(z, dtype=np.float64) @ self.basis.T

    def _inside_z(self, z: np.ndarray, tol: float = 1e-9) -> np.ndarray:
        if self.dim == 0:
            return np.ones(len(z), dtype=bool)
        if self.dim == 1:
            return (z[:, 0] >= self.lo[0] - tol) & (z[:, 0] <= self.hi[0] + tol)
        return np.all(z @ self.equations[:, :-1].T + self.equations[:, -1] <= tol, axis=1)

    def contains(self, x: Any, tol: float = 1e-7) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        off_span = np.linalg.norm(x - self.expand(self.reduce(x)), axis=1)
        scale = max(1.0, float(np.abs(self.points).max()))
        return (off_span <= tol * scale) & self._inside_z(self.reduce(x), tol * scale)

    def candidates(self, n: int) -> np.ndarray:
        """About ``n`` points inside the region (plus the sampled points themselves): a grid in
        the input axes when the points fill their space, in the span's axes when they do not,
        random convex combinations of the points beyond three dimensions."""
        d = self.points.shape[1]
        if self.dim == 0:
            return self.points[:1].copy()
        if self.dim > 3:
            rng = np.random.default_rng(0)
            lam = rng.dirichlet(np.full(len(self.points), 0.3), size=n)
            return np.vstack([self.points, lam @ self.points])
        k = max(2, int(math.ceil(n ** (1.0 / self.dim))))
        if self.dim == d:  # full-dimensional: a grid in the original axes, then the hull test
            lo, hi = self.points.min(axis=0), self.points.max(axis=0)
            axes = [np.linspace(a, b, k) for a, b in zip(lo, hi)]
            grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)
            grid = grid[self._inside_z(self.reduce(grid), 1e-9 * max(1.0, float(np.abs(hi).max())))]
        else:
            axes = [np.linspace(a, b, k) for a, b in zip(self.lo, self.hi)]
            z = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, self.dim)
            grid = self.expand(z[self._inside_z(z, 1e-12)])
        return np.vstack([self.points, grid])

    def spacing(self, n: int) -> np.ndarray:
        """Grid step per input axis of ``candidates(n)`` (NaN beyond three dimensions)."""
        if self.dim == 0 or self.dim > 3:
            return np.full(self.points.shape[1], np.nan)
        k = max(2, int(math.ceil(n ** (1.0 / self.dim))))
        if self.dim == self.points.shape[1]:
            return (self.points.max(axis=0) - self.points.min(axis=0)) / (k - 1)
        return np.abs(self.basis) @ ((self.hi - self.lo) / (k - 1))

    def describe(self) -> str:
        d = self.points.shape[1]
        span = "" if self.dim == d else f", in their {self.dim}-dimensional affine span"
        return f"convex hull of the {len(self.points)} sampled points{span}"

    def refine(self, f: Callable[[np.ndarray], float], x0: np.ndarray) -> tuple[np.ndarray, float]:
        """Local maximum of f from x0 inside the region (SLSQP in span coordinates)."""
        f0 = float(f(x0))
        if self.dim == 0:
            return x0, f0
        z0 = self.reduce(x0)
        neg = lambda z: -float(f(self.expand(z)))  # noqa: E731
        if self.dim == 1:
            sol = optimize.minimize(neg, z0, method="L-BFGS-B", bounds=[(self.lo[0], self.hi[0])])
        else:
            a, b = self.equations[:, :-1], self.equations[:, -1]
            cons = {"type": "ineq", "fun": lambda z: -(a @ z + b), "jac": lambda z: -a}
            sol = optimize.minimize(neg, z0, method="SLSQP", constraints=[cons],
                                    options={"ftol": 1e-12, "maxiter": 200})
        x = self.expand(sol.x)
        if np.all(np.isfinite(sol.x)) and self.contains(x, 1e-6)[0] and -sol.fun >= f0:
            return x, float(-sol.fun)
        return x0, f0

    def maximise(self, f_batch: Callable[[np.ndarray], np.ndarray], cands: np.ndarray,
                 n_starts: int = 3) -> tuple[np.ndarray, float]:
        """Best of the candidates, refined from the ``n_starts`` best of them."""
        vals = f_batch(cands)
        best_x, best_f = cands[int(np.argmax(vals))], float(np.max(vals))
        single = lambda x: float(f_batch(np.atleast_2d(x))[0])  # noqa: E731
        for i in np.argsort(-vals)[:n_starts]:
            x, fx = self.refine(single, cands[i])
            if fx > best_f:
                best_x, best_f = x, fx
        return best_x, best_f


# ---------------------------------------------------------------------------------------------
# Fitted surfaces


@dataclasses.dataclass
class Surface:
    """A fitted response surface and its predicted optimum within the sampled region.

    ``shares`` and ``share_interval`` hold the optimum's derived (reasoning %, visual %) shares
    when the inputs are source weights (set by ``mixtures``); None otherwise.
    """

    method: str
    inputs: list[str]
    optimum: dict[str, float]
    value: float
    location_interval: dict[str, tuple[float, float]]
    value_interval: tuple[float, float]
    level: float
    n_draws: int
    interval_method: str
    region: str
    params: dict[str, Any]
    notes: list[str]
    shares: dict[str, float] | None = None
    share_interval: dict[str, tuple[float, float]] | None = None
    draws: np.ndarray | None = dataclasses.field(default=None, repr=False)
    predict: Callable[[np.ndarray], np.ndarray] | None = dataclasses.field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("draws", "predict")}
        d["params"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                       for k, v in self.params.items()}
        return d


def percentile_interval(draws: np.ndarray, level: float) -> np.ndarray:
    """[2, ...]: the two-sided ``level`` percentile interval of draws along the first axis."""
    tail = (1.0 - level) / 2.0
    return np.quantile(draws, [tail, 1.0 - tail], axis=0)


def quadratic_terms(names: Sequence[str]) -> list[str]:
    """Names of the full quadratic's terms: 1, s_i, s_i*s_j (i <= j)."""
    k = len(names)
    return (["1"] + list(names)
            + [f"{names[i]}^2" if i == j else f"{names[i]}*{names[j]}"
               for i in range(k) for j in range(i, k)])


def quadratic_features(s: Any) -> np.ndarray:
    s = np.atleast_2d(np.asarray(s, dtype=np.float64))
    n, k = s.shape
    cols = [np.ones(n)] + [s[:, i] for i in range(k)]
    cols += [s[:, i] * s[:, j] for i in range(k) for j in range(i, k)]
    return np.column_stack(cols)


def stationary_point(beta: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(stationary point, Hessian eigenvalues) of a quadratic with coefficients ``beta``."""
    g = beta[1 : k + 1]
    h = np.zeros((k, k))
    idx = k + 1
    for i in range(k):
        for j in range(i, k):
            h[i, j] = h[j, i] = (2.0 * beta[idx]) if i == j else beta[idx]
            idx += 1
    try:
        xs = np.linalg.solve(h, -g)
    except np.linalg.LinAlgError:
        xs = np.full(k, np.nan)
    return xs, np.linalg.eigvalsh(h)


def input_names(names: Sequence[str] | None, d: int) -> list[str]:
    """The inputs' names: those given, else x0, x1, ..."""
    names = [f"x{i}" for i in range(d)] if names is None else list(names)
    if len(names) != d:
        raise ValueError(f"{len(names)} names for {d} input columns")
    return names


def _check_xy(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    x = x.reshape(-1, 1) if x.ndim == 1 else x
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} input rows but {len(y)} responses")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("inputs and responses must be finite; drop incomplete runs first")
    return x, y


def fit_quadratic(x: Any, y: Any, *, names: Sequence[str] | None = None,
                  transform: Any = None, transform_names: Sequence[str] | None = None,
                  n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0,
                  bootstrap: str = "residual", n_grid: int = GRID_POINTS) -> Surface:
    """Full quadratic by OLS and its maximum inside the sampled region.

    ``x`` [n, d] are the inputs the region is built on (``names`` label its columns; x0, x1,
    ... by default); the quadratic is in ``x @ transform`` (the inputs themselves when None),
    e.g. source weights mapped to derived shares.
    ``bootstrap`` is "residual" (design fixed) or "cases" (resample the cells; draws whose
    design loses rank are redrawn).
    """
    x, y = _check_xy(x, y)
    names = input_names(names, x.shape[1])
    t = None if transform is None else np.asarray(transform, dtype=np.float64)
    to_s = (lambda a: a) if t is None else (lambda a: np.asarray(a) @ t)  # noqa: E731
    s_names = names if t is None else list(transform_names or [f"s{i}" for i in range(t.shape[1])])
    f = quadratic_features(to_s(x))
    n, p = f.shape
    rank = np.linalg.matrix_rank(f)
    if rank < p:
        raise ValueError(f"a full quadratic in {len(s_names)} variables has {p} terms but the "
                         f"design has rank {rank} ({n} points): use a reduced form")
    beta = np.linalg.lstsq(f, y, rcond=None)[0]
    resid = y - f @ beta
    dof = n - p
    s2 = float(resid @ resid / dof) if dof > 0 else float("nan")
    cov = s2 * np.linalg.inv(f.T @ f)
    notes = [] if dof > 0 else ["no residual degrees of freedom: covariance and interval undefined"]

    region = SampledRegion(x)
    cands = region.candidates(n_grid)
    f_cands = quadratic_features(to_s(cands))
    pred = lambda b: (lambda a: quadratic_features(to_s(a)) @ b)  # noqa: E731
    x_opt, v_opt = region.maximise(pred(beta), cands)

    draws_x, draws_v = [], []
    if dof > 0 and n_boot > 0:
        rng = np.random.default_rng(seed)
        if bootstrap == "residual":
            r = (resid - resid.mean()) * math.sqrt(n / dof)
            ystar = (f @ beta)[None, :] + r[rng.integers(0, n, size=(n_boot, n))]
            betas = np.linalg.lstsq(f, ystar.T, rcond=None)[0].T
        elif bootstrap == "cases":
            betas = []
            while len(betas) < n_boot:
                idx = rng.integers(0, n, size=n)
                if np.linalg.matrix_rank(f[idx]) == p:
                    betas.append(np.linalg.lstsq(f[idx], y[idx], rcond=None)[0])
            betas = np.array(betas)
        else:
            raise ValueError(f"bootstrap must be 'residual' or 'cases', got {bootstrap!r}")
        grid_vals = f_cands @ betas.T  # [candidates, draws]
        for b_i, col in zip(betas, grid_vals.T):
            if t is None:  # an interior maximum needs no search
                xs, eig = stationary_point(b_i, x.shape[1])
                if np.all(eig < 0) and region.contains(xs)[0]:
                    draws_x.append(xs)
                    draws_v.append(float(pred(b_i)(xs)[0]))
                    continue
            x0 = cands[int(np.argmax(col))]
            xb, vb = region.refine(lambda a, b_i=b_i: float(pred(b_i)(np.atleast_2d(a))[0]), x0)
            draws_x.append(xb)
            draws_v.append(vb)
    draws_x, draws_v = np.array(draws_x).reshape(-1, x.shape[1]), np.array(draws_v)
    if len(draws_v):
        loc = percentile_interval(draws_x, level)
        val = percentile_interval(draws_v, level)
    else:
        loc, val = np.full((2, x.shape[1]), np.nan), np.full(2, np.nan)

    if dof > 0 and v_opt > y.max() + 2.0 * math.sqrt(s2):
        notes.append("the predicted optimum exceeds the best sampled response by more than two "
                     "residual SDs: the surface extrapolates between the sampled points")
    xs, eig = stationary_point(beta, len(s_names))
    kind = ("maximum" if np.all(eig < 0) else "minimum" if np.all(eig > 0) else "saddle")
    if kind != "maximum":
        notes.append(f"the fitted quadratic has a {kind}, not a maximum: the optimum lies on "
                     "the region's boundary")
    params = {"terms": quadratic_terms(s_names), "coefficients": beta, "covariance": cov,
              "residual_sd": math.sqrt(s2) if dof > 0 else float("nan"),
              "r_squared": float(1.0 - resid @ resid / np.sum((y - y.mean()) ** 2)),
              "n_points": n, "stationary_point": dict(zip(s_names, xs.tolist())),
              "stationary_kind": kind, "hessian_eigenvalues": eig}
    method = f"{bootstrap} bootstrap ({len(draws_v)} draws), percentile"
    return Surface(
        "quadratic (OLS)", names, dict(zip(names, x_opt.tolist())), v_opt,
        {nm: (float(loc[0, i]), float(loc[1, i])) for i, nm in enumerate(names)},
        (float(val[0]), float(val[1])), level, len(draws_v), method, region.describe(), params,
        notes, draws=draws_x, predict=pred(beta))


def _gp_kernel(n_dims: int, ard: bool):
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    ls = np.full(n_dims, 0.5) if ard else 0.5
    return (ConstantKernel(1.0, (1e-2, 1e2)) * RBF(ls, (1e-2, 1e2))
            + WhiteKernel(0.1, (1e-6, 1e1)))


def fit_gp(x: Any, y: Any, *, names: Sequence[str] | None = None, ard: bool = True,
           n_samples: int = N_SAMPLES, n_restarts: int = N_RESTARTS,
           random_state: int = RANDOM_STATE, level: float = LEVEL, n_grid: int = GRID_POINTS,
           n_sample_grid: int = SAMPLE_POINTS) -> Surface:
    """Gaussian-process surface, the maximum of its posterior mean inside the sampled region,
    and the argmax / max distribution of posterior draws of the latent surface."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor

    x, y = _check_xy(x, y)
    names = input_names(names, x.shape[1])
    lo, hi = x.min(axis=0), x.max(axis=0)
    varying = hi > lo
    if not np.any(varying):
        raise ValueError("a GP surface needs inputs that vary")
    width = hi[varying] - lo[varying]
    scale = lambda a: (np.atleast_2d(a)[:, varying] - lo[varying]) / width  # noqa: E731
    y_mean, y_sd = float(y.mean()), float(y.std()) or 1.0
    gp = GaussianProcessRegressor(_gp_kernel(int(varying.sum()), ard), normalize_y=False,
                                  n_restarts_optimizer=n_restarts, random_state=random_state)
    notes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        gp.fit(scale(x), (y - y_mean) / y_sd)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        notes.append("a kernel hyper-parameter reached its bound")
    predict = lambda a: gp.predict(scale(a)) * y_sd + y_mean  # noqa: E731

    region = SampledRegion(x)
    x_opt, v_opt = region.maximise(predict, region.candidates(n_grid))

    grid = region.candidates(n_sample_grid)
    mean, cov = gp.predict(scale(grid), return_cov=True)
    noise = float(gp.kernel_.k2.noise_level)
    cov_f = cov - noise * np.eye(len(grid))  # the latent surface: white noise taken out
    w, v = np.linalg.eigh((cov_f + cov_f.T) / 2.0)
    root = v * np.sqrt(np.clip(w, 0.0, None))
    rng = np.random.default_rng(random_state)
    draws = (mean[:, None] + root @ rng.standard_normal((len(grid), n_samples))) * y_sd + y_mean
    arg = np.argmax(draws, axis=0)
    draws_x, draws_v = grid[arg], draws[arg, np.arange(n_samples)]
    loc, val = percentile_interval(draws_x, level), percentile_interval(draws_v, level)

    k1 = gp.kernel_.k1
    ls = np.atleast_1d(k1.k2.length_scale) * (width if ard else 1.0)
    params = {"kernel": str(gp.kernel_), "log_marginal_likelihood": float(gp.log_marginal_likelihood_value_),
              "length_scale": ls if ard else float(ls[0]),
              "length_scale_units": ("input units per axis" if ard
                                     else "fraction of each axis's sampled range"),
              "signal_sd": float(math.sqrt(k1.k1.constant_value) * y_sd),
              "noise_sd": float(math.sqrt(noise) * y_sd), "n_points": len(y),
              "inputs_used": [nm for nm, keep in zip(names, varying) if keep],
              "sample_grid_points": len(grid),
              "sample_grid_spacing": dict(zip(names, region.spacing(n_sample_grid).tolist()))}
    method = (f"argmax of {n_samples} posterior draws of the latent surface on "
              f"{len(grid)} candidates, percentile")
    return Surface(
        "gaussian process", names, dict(zip(names, x_opt.tolist())), v_opt,
        {nm: (float(loc[0, i]), float(loc[1, i])) for i, nm in enumerate(names)},
        (float(val[0]), float(val[1])), level, n_samples, method, region.describe(), params,
        notes, draws=draws_x, predict=predict)


