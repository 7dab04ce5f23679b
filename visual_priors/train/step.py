"""The pure train step shared by the training loop and the memory planner.

One step is one optimizer update. With gradient accumulation the global batch is cut into
microbatches that run one after another under ``lax.scan``; each microbatch's gradient is
weighted by its token count, so the update equals the one the whole batch would give at once.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from visual_priors.parallel.mesh import with_logical_constraint

LossFn = Callable[[nnx.Module, dict], tuple[jax.Array, dict]]


def microbatches(batch: dict, accum_steps: int) -> dict:
    """[B, ...] arrays -> [accum_steps, B / accum_steps, ...].

    Microbatch i takes rows i, i + A, i + 2A, ... so that every data shard contributes equally
    to every microbatch (contiguous slices would leave most devices idle).
    """
    def split(x):
        if x.shape[0] % accum_steps:
            raise ValueError(f"batch of {x.shape[0]} rows does not split into {accum_steps} microbatches")
        x = x.reshape(x.shape[0] // accum_steps, accum_steps, *x.shape[1:])
        return jnp.swapaxes(x, 0, 1)

    return jax.tree.map(split, batch)


def make_train_step(graphdef, loss_fn: LossFn, tx: optax.GradientTransformation,
                    accum_steps: int = 1):
    """``step(trainable, opt_state, frozen, batch) -> (trainable, opt_state, loss, aux)``.

    ``aux`` must hold ``tokens`` (the step's trained-token count); with accumulation every aux
    value is summed over microbatches and the loss is the token-weighted mean.
    """
    if accum_steps < 1:
        raise ValueError(f"accum_steps must be at least 1, got {accum_steps}")

    def loss_of(params, frozen, batch):
        return loss_fn(nnx.merge(graphdef, params, frozen), batch)

    def apply(trainable, opt_state, grads):
        updates, opt_state = tx.update(grads, opt_state, trainable)
        return jax.tree.map(jnp.add, trainable, updates), opt_state

    if accum_steps == 1:
        def step(trainable, opt_state, frozen, batch):
            (loss, aux), grads = jax.value_and_grad(loss_of, has_aux=True)(trainable, frozen, batch)
            trainable, opt_state = apply(trainable, opt_state, grads)
            return trainable, opt_state, loss, aux
        return step

    def weighted(params, frozen, batch):
        loss, aux = loss_of(params, frozen, batch)
        return loss * aux["tokens"], (loss, aux)

    def step(trainable, opt_state, frozen, batch):
        def one(carry, mb):
            mb = jax.tree.map(lambda x: with_logical_constraint(x, ("batch",) + (None,) * (x.ndim - 1)), mb)
            (total, (_, aux)), grads = jax.value_and_grad(weighted, has_aux=True)(trainable, frozen, mb)
            acc_grads, acc_total, acc_aux = carry
            return (jax.tree.map(jnp.add, acc_grads, grads), acc_total + total,
                    jax.tree.map(jnp.add, acc_aux, aux)), None

        parts = microbatches(batch, accum_steps)
        first = jax.tree.map(lambda x: x[0], parts)
        aux_shape = jax.eval_shape(lambda: loss_of(trainable, frozen, first)[1])
        zeros = (jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), trainable),
                 jnp.zeros((), jnp.float32),
                 jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), aux_shape))
        (grads, total, aux), _ = jax.lax.scan(one, zeros, parts)
        n = jnp.maximum(aux["tokens"], 1).astype(jnp.float32)
        grads = jax.tree.map(lambda g, p: (g / n).astype(p.dtype), grads, trainable)
        trainable, opt_state = apply(trainable, opt_state, grads)
        return trainable, opt_state, total / n, aux

    return step


def opt_state_shardings(tx: optax.GradientTransformation, params, mesh):
    """Shardings of ``tx``'s state for ``params`` (arrays or ShapeDtypeStructs with shardings):
    each moment takes its parameter's sharding (FSDP shards the optimizer state too), anything
    else (step counts) is replicated. Left to itself, jit would replicate the freshly made zeros."""
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    state = jax.eval_shape(tx.init, params)
    param_shardings = jax.tree.map(lambda x: x.sharding, params)
    return optax.tree_map_params(tx, lambda _, s: s, state, param_shardings,
                                 transform_non_params=lambda _: replicated)
