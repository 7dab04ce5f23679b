"""Per-device memory of a pre-training step, from the compiled program, without the hardware.

The train step of the real loop is lowered against abstract, sharded inputs (no parameter is
allocated) and compiled for a mesh of the requested shape; XLA's memory analysis of that
program gives what each device must hold: arguments (parameters, optimizer state, batch),
outputs, temporaries (activations kept for the backward pass, gradients), minus what donation
lets outputs reuse. On a machine without the accelerators, the mesh is built from that many
host CPU devices, so the figures are the CPU compiler's: layouts and fusion differ a little
from TPU/GPU, the sharding and the activation footprint do not.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from visual_priors.config import profiles, scales
from visual_priors.model.llm import Llama, count_params
from visual_priors.model.scoring import masked_nll
from visual_priors.parallel import mesh as mesh_lib
from visual_priors.train import optim
from visual_priors.train.step import make_train_step, opt_state_shardings


def ensure_host_devices(n: int) -> None:
    """Make JAX expose at least ``n`` CPU devices; only possible before JAX starts its backends."""
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        if jax.device_count() < n:
            raise RuntimeError(f"this process already started JAX with {jax.device_count()} devices; "
                               f"plan {n} devices in a fresh process")
        return
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()
    jax.config.update("jax_platforms", "cpu")


def _abstract(tree, shardings):
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def compile_train_step(cfg: ml_collections.ConfigDict, mesh, *, batch: int, seq_len: int,
                       rules=None, optim_cfg=None, accum_steps: int = 1):
    """The compiled train step of ``Llama(cfg)`` on ``mesh`` for a global batch of ``batch``
    sequences of ``seq_len`` tokens, from abstract values only."""
    optim_cfg = optim_cfg or profiles.get("paper").pretrain.optim
    abstract = nnx.eval_shape(lambda: Llama(cfg, rngs=nnx.Rngs(0)))
    graphdef, params, rest = nnx.split(abstract, nnx.Param, ...)
    params = _abstract(params, mesh_lib.state_shardings(params, mesh, rules))
    rest = _abstract(rest, mesh_lib.state_shardings(rest, mesh, rules))
    tx, _ = optim.adamw(optim_cfg, 1000)
    opt_shardings = opt_state_shardings(tx, params, mesh)
    opt_state = _abstract(jax.eval_shape(tx.init, params), opt_shardings)
    tokens = jax.ShapeDtypeStruct((batch, seq_len + 1), jnp.int32,
                                  sharding=mesh_lib.batch_sharding(mesh, rules))

    def loss_fn(model, b):
        loss, count = masked_nll(model, b["tokens"], jnp.ones_like(b["tokens"]))
        return loss, {"tokens": count}

    step = make_train_step(graphdef, loss_fn, tx, accum_steps)
    out_shardings = (jax.tree.map(lambda x: x.sharding, params), opt_shardings, None, None)
    with mesh_lib.use_mesh(mesh, rules):
        lowered = jax.jit(step, donate_argnums=(0, 1), out_shardings=out_shardings).lower(
            params, opt_state, rest, {"tokens": tokens})
    return lowered.compile()


def plan_memory(scale: str, mesh_cfg: dict, *, batch: int, seq_len: int, dtype: str = "bfloat16",
                param_dtype: str = "float32", remat: str = "full", scan_layers: bool = True,
                accum_steps: int = 1, rules=None, devices=None) -> dict:
    """Per-device bytes of one train step of ``scale`` on a mesh of ``mesh_cfg``."""
    cfg = scales.get(scale)
    cfg.update(dict(dtype=dtype, param_dtype=param_dtype, remat=remat, scan_layers=scan_layers))
    mesh = mesh_lib.make_mesh(mesh_cfg, devices=devices)
    t0 = time.perf_counter()
    compiled = compile_train_step(cfg, mesh, batch=batch, seq_len=seq_len, rules=rules,
                                  accum_steps=accum_steps)
    mem = compiled.memory_analysis()
    per_device = {
        "arguments": int(mem.argument_size_in_bytes),
        "outputs": int(mem.output_size_in_bytes),
        "aliased": int(mem.alias_size_in_bytes),
        "temporaries": int(mem.temp_size_in_bytes),
    }
    per_device["total"] = per_device["arguments"] + per_device["outputs"] - per_device["aliased"] \
        + per_device["temporaries"]
    return {
        "scale": scale, "params": count_params(cfg), "mesh": dict(mesh.shape), "devices": mesh.size,
        "batch": batch, "seq_len": seq_len, "accum_steps": accum_steps, "dtype": dtype,
        "param_dtype": param_dtype, "remat": remat, "scan_layers": scan_layers,
        "per_device_bytes": per_device, "compile_s": time.perf_counter() - t0,
        "compiled_for": jax.devices()[0].platform,
    }
