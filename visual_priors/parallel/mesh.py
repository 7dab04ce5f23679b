"""Device meshes and the logical-axis rules that place weights and activations on them.

The mesh has three axes: ``data`` (pure data parallelism), ``fsdp`` (data parallelism with
parameters sharded along ``embed``) and ``tensor`` (Megatron-style sharding of heads, MLP and
vocabulary). Models name logical axes only; a rules table, from config, maps each logical name
to a mesh axis, a tuple of mesh axes, or ``None`` (replicated).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import jax
import numpy as np
from flax import linen as nn
from flax import nnx
from flax.core import spmd as core_spmd
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from visual_priors.errors import BadValue

MESH_AXES = ("data", "fsdp", "tensor")

DEFAULT_RULES = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", "tensor"),
    ("vocab", "tensor"),
    ("length", None),
    ("layers", None),
)


def normalize_rules(rules: Iterable | None) -> tuple:
    """Rules as a tuple of ``(logical name, None | mesh axis | tuple of mesh axes)``.

    Accepts the list-of-lists form that configs and JSON produce; rejects unknown mesh axes.
    """
    if rules is None:
        return DEFAULT_RULES
    out = []
    for pair in rules:
        if isinstance(pair, (str, bytes)) or len(pair) != 2:
            raise BadValue(f"a sharding rule must be a (logical name, mesh axes) pair, got {pair!r}")
        name, target = pair
        if target is None or isinstance(target, str):
            targets = () if target is None else (target,)
        else:
            targets = tuple(target)
        unknown = [t for t in targets if t not in MESH_AXES]
        if unknown:
            raise BadValue(f"rule for {name!r} names unknown mesh axes {unknown}; valid: {MESH_AXES}")
        if not targets:
            target = None
        elif len(targets) == 1:
            target = targets[0]
        else:
            target = targets
        out.append((str(name), target))
    return tuple(out)


DCN_PREFIX = "dcn_"


def _resolve_sizes(shape: dict, n: int, what: str) -> dict:
    """Fill in the one ``-1`` axis so the sizes use exactly ``n`` devices."""
    rest = [a for a, s in shape.items() if s == -1]
    if len(rest) > 1:
        raise BadValue(f"at most one mesh axis may be -1, got {rest} in {shape}")
    bad = [a for a, s in shape.items() if s < 1 and s != -1]
    if bad:
        raise BadValue(f"mesh axis sizes must be positive or -1, got {shape}")
    known = math.prod(s for s in shape.values() if s != -1)
    if n % known:
        raise BadValue(f"mesh sizes {shape} do not divide the {what} {n}")
    if rest:
        shape[rest[0]] = n // known
    elif known != n:
        raise BadValue(f"mesh sizes {shape} use {known} devices but {n} are available"
                       "; use -1 for one axis or pass devices explicitly")
    return shape


def _slices(devices: list, n_slices: int) -> list[list]:
    """Devices grouped by slice: TPU slice_index where present, else by host, else in order
    (the last lets one CPU process stand in for a multi-slice pod)."""
    for key in ("slice_index", "process_index"):
        groups: dict = {}
        for d in devices:
            groups.setdefault(getattr(d, key, None), []).append(d)
        if None not in groups and len(groups) == n_slices:
            return [groups[k] for k in sorted(groups)]
    if len(devices) % n_slices:
        raise BadValue(f"{len(devices)} devices do not split into {n_slices} slices")
    per = len(devices) // n_slices
    return [devices[i * per:(i + 1) * per] for i in range(n_slices)]


def make_mesh(mesh_cfg: Mapping, *, devices: Sequence | None = None) -> Mesh:
    """A ``(data, fsdp, tensor)`` mesh over ``devices`` (default: all devices).

    ``mesh_cfg`` maps axis names to sizes within a slice; missing axes have size 1 and one axis
    may be ``-1``, meaning whatever is left. For multi-slice pods, ``dcn_data``, ``dcn_fsdp``
    and ``dcn_tensor`` give sizes across slices (over the data-centre network; default 1): each
    mesh axis then has size dcn x ici, slice-major, so only that axis's collectives cross slices.
    """
    devices = list(jax.devices() if devices is None else devices)
    sizes = {str(k): v for k, v in dict(mesh_cfg.items()).items()}
    valid = MESH_AXES + tuple(DCN_PREFIX + a for a in MESH_AXES)
    unknown = sorted(set(sizes) - set(valid))
    if unknown:
        raise BadValue(f"unknown mesh axes {unknown}; valid axes are {valid}")
    dcn = {a: int(sizes.get(DCN_PREFIX + a, 1)) for a in MESH_AXES}
    if any(s < 1 for s in dcn.values()):
        raise BadValue(f"across-slice sizes must be positive, got {dcn}")
    n_slices = math.prod(dcn.values())
    if len(devices) % n_slices:
        raise BadValue(f"across-slice sizes {dcn} do not divide the device count {len(devices)}")
    per_slice = len(devices) // n_slices
    ici = _resolve_sizes({a: int(sizes.get(a, 1)) for a in MESH_AXES}, per_slice,
                         "device count" if n_slices == 1 else "devices per slice")
    if n_slices == 1:
        grid = mesh_utils.create_device_mesh(tuple(ici.values()), devices, allow_split_physical_axes=True)
    else:
        # [slice axes..., ici axes...] -> interleave each axis's slice and in-slice parts.
        per = [mesh_utils.create_device_mesh(tuple(ici.values()), group, allow_split_physical_axes=True)
               for group in _slices(devices, n_slices)]
        grid = np.stack(per).reshape(*dcn.values(), *ici.values())
        grid = grid.transpose(0, 3, 1, 4, 2, 5).reshape([dcn[a] * ici[a] for a in MESH_AXES])
    # Auto axes: shardings are hints the compiler propagates, so model code stays plain jnp.
    return Mesh(grid, MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * len(MESH_AXES))


def _axis_size(mesh, target) -> int:
    names = (target,) if isinstance(target, str) else tuple(target)
    return math.prod(mesh.shape[a] for a in names)


def logical_to_mesh_spec(
    axes: Sequence[str | None],
    rules: Iterable | None = None,
    *,
    shape: Sequence[int] | None = None,
    mesh=None,
) -> PartitionSpec:
    """Mesh PartitionSpec for an array whose dimensions have logical names ``axes``.

    Rules apply in order and a mesh axis is used at most once (a later claim on it leaves that
    dimension replicated). With ``shape`` and ``mesh`` given, a dimension that the mesh axes do
    not divide is left replicated, so odd sizes still place instead of failing.
    """
    spec = list(nn.logical_to_mesh_axes(tuple(axes), normalize_rules(rules)))
    if shape is not None and mesh is not None:
        for i, (dim, target) in enumerate(zip(shape, spec)):
            if target is not None and dim % _axis_size(mesh, target):
                spec[i] = None
    return PartitionSpec(*spec)


def logical_to_mesh_sharding(tree, mesh: Mesh, rules: Iterable | None = None):
    """Map a tree of logical PartitionSpecs to a tree of NamedShardings on ``mesh``."""
    rules = normalize_rules(rules)
    return jax.tree.map(
        lambda p: NamedSharding(mesh, logical_to_mesh_spec(tuple(p), rules)),
        tree,
        is_leaf=lambda x: isinstance(x, PartitionSpec),
    )


def _variable_axes(var: nnx.Variable) -> tuple | None:
    sharding = var.get_metadata().get("out_sharding")
    return tuple(sharding) if sharding else None


def state_shardings(state, mesh: Mesh, rules: Iterable | None = None):
    """NamedShardings for an NNX State (or model): a tree shaped like ``nnx.state(model)``.

    Variables with logical axes follow the rules; anything else (RNG state, scalars) is
    replicated. Suitable for ``jax.jit(in_shardings=..., out_shardings=...)``.
    """
    if isinstance(state, nnx.Module):
        state = nnx.state(state)
    rules = normalize_rules(rules)

    def one(var):
        value = var.get_value()
        axes = _variable_axes(var)
        shape = getattr(value, "shape", ())
        if axes is None or len(axes) != len(shape):
            spec = PartitionSpec()
        else:
            spec = logical_to_mesh_spec(axes, rules, shape=shape, mesh=mesh)
        return var.replace(NamedSharding(mesh, spec))

    return jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def shard_model(model: nnx.Module, mesh: Mesh, rules: Iterable | None = None) -> nnx.Module:
    """Place ``model``'s state on ``mesh`` by each Variable's logical axes (in place).

    Returns the model for chaining.
    """
    state = nnx.state(model)
    placed = jax.device_put(state, state_shardings(state, mesh, rules))
    nnx.update(model, placed)
    return model


def batch_sharding(mesh: Mesh, rules: Iterable | None = None) -> NamedSharding:
    """Sharding of ``[B, ...]`` inputs: the leading dimension over the ``batch`` rule."""
    return NamedSharding(mesh, logical_to_mesh_spec(("batch",), rules))


def global_batch(local: Mapping, sharding: NamedSharding) -> dict[str, jax.Array]:
    """Global arrays from this process's rows of a batch; in one process, `jax.device_put`.

    Each process passes its own rows (`distributed.process_rows`). The global shape is stated,
    not inferred, so a mesh that would have processes hold the same rows (replicas, which must
    be fed identical data) fails here instead of silently training on mismatched rows.
    """
    processes = jax.process_count()

    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(
            sharding, x, (x.shape[0] * processes, *x.shape[1:]))

    return {k: one(v) for k, v in local.items()}


@contextlib.contextmanager
def use_mesh(mesh: Mesh, rules: Iterable | None = None):
    """Make ``mesh`` and ``rules`` current, so that ``with_logical_constraint`` takes effect.

    Trace (jit) the model inside this context; outside it, the constraints are no-ops.
    """
    with jax.set_mesh(mesh), core_spmd.logical_axis_rules(normalize_rules(rules)):
        yield mesh


def with_logical_constraint(x: jax.Array, axes: Sequence[str | None]) -> jax.Array:
    """Constrain an activation's sharding by logical names; a no-op without a current mesh.

    Uses the rules made current by ``use_mesh`` (``DEFAULT_RULES`` if none are). Meshes with
    explicit axes carry shardings in their types, so nothing is added there either.
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or not mesh.are_all_axes_auto:
        return x
    rules = core_spmd.get_logical_axis_rules() or DEFAULT_RULES
    spec = logical_to_mesh_spec(axes, rules, shape=x.shape, mesh=mesh)
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


def create_sharded(build: Callable[[], nnx.Module], mesh: Mesh, rules: Iterable | None = None) -> nnx.Module:
    """``build()``'s module with every variable created in place in its mesh sharding.

    Shapes come from an abstract trace; the initialisers then run under ``jit`` with those
    output shardings, so each device computes only its own shards and no host ever holds the
    whole model (what a 13B model on a pod needs).
    """
    abstract = nnx.eval_shape(build)
    graphdef, _ = nnx.split(abstract)
    shardings = state_shardings(abstract, mesh, rules)
    state = jax.jit(lambda: nnx.state(build()), out_shardings=shardings)()
    return nnx.merge(graphdef, state)
