import textwrap

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import PartitionSpec as P

from visual_priors.parallel import mesh as pm

from devices import run_with_devices


def test_rules_accept_config_lists_and_reject_unknown_axes():
    rules = pm.normalize_rules([["batch", ["data", "fsdp"]], ["embed", "fsdp"], ["length", None], ["mlp", []]])
    assert rules == (("batch", ("data", "fsdp")), ("embed", "fsdp"), ("length", None), ("mlp", None))
    with pytest.raises(ValueError, match="unknown mesh axes"):
        pm.normalize_rules([("embed", "model")])
    with pytest.raises(ValueError, match="pair"):
        pm.normalize_rules(["embed"])


def test_logical_to_mesh_specs():
    r = pm.DEFAULT_RULES
    assert pm.logical_to_mesh_spec(("embed", "heads"), r) == P("fsdp", "tensor")
    assert pm.logical_to_mesh_spec(("vocab", "embed"), r) == P("tensor", "fsdp")
    # fsdp is taken by batch, so embed stays replicated in activations.
    assert pm.logical_to_mesh_spec(("batch", "length", "embed"), r) == P(("data", "fsdp"), None, None)
    assert pm.logical_to_mesh_spec((None, "unnamed"), r) == P(None, None)


def test_mesh_on_one_device_and_bad_sizes():
    mesh = pm.make_mesh({"data": -1})
    assert dict(mesh.shape) == {"data": len(jax.devices()), "fsdp": 1, "tensor": 1}
    n = len(jax.devices())
    with pytest.raises(ValueError, match="do not divide"):
        pm.make_mesh({"data": n + 1, "fsdp": -1})
    with pytest.raises(ValueError, match="at most one"):
        pm.make_mesh({"data": -1, "tensor": -1})
    with pytest.raises(ValueError, match="unknown mesh axes"):
        pm.make_mesh({"model": 1})


def test_model_partition_specs_map_through_the_rules():
    from flax import nnx

    from visual_priors.config import scales
    from visual_priors.model.llm import Llama

    cfg = scales.get("t1")
    model = nnx.eval_shape(lambda: Llama(cfg, rngs=nnx.Rngs(0)))
    mesh = pm.make_mesh({"data": -1})
    logical = pm.logical_to_mesh_sharding(nnx.get_partition_spec(nnx.state(model)), mesh)
    direct = pm.state_shardings(model, mesh, pm.DEFAULT_RULES)
    assert logical["embedding"].get_value().spec == P("tensor", "fsdp")
    assert direct["layers"][0]["mlp"]["down"]["kernel"].get_value().spec == P("tensor", "fsdp")
    assert direct["final_norm"]["scale"].get_value().spec == P("fsdp")


def test_constraint_is_a_noop_outside_a_mesh():
    x = jnp.ones((4, 3))
    assert pm.with_logical_constraint(x, ("batch", "embed")) is x


_SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    from flax import nnx
    from visual_priors.config import scales
    from visual_priors.model.connector import Connector
    from visual_priors.model.llm import Llama
    from visual_priors.model.mllm import MLLM
    from visual_priors.parallel import mesh as pm

    res = {"devices": len(jax.devices())}
    cfg = scales.get("t1")
    cfg.vocab_size, cfg.n_layers = 64, 2

    build = nnx.jit(lambda: MLLM(Llama(cfg, rngs=nnx.Rngs(0)), Connector(16, cfg.d_model, rngs=nnx.Rngs(1))))

    feats = jax.random.normal(jax.random.key(1), (4, 3, 16))
    toks = jax.random.randint(jax.random.key(2), (4, 8), 0, cfg.vocab_size)
    loss = lambda m, f, t: jnp.mean(m(f, t) ** 2)
    ref_model = build()
    ref = nnx.jit(lambda m, f, t: m(f, t))(ref_model, feats, toks)
    ref_grad = nnx.jit(nnx.grad(loss))(ref_model, feats, toks)

    mesh = pm.make_mesh({"data": 2, "fsdp": 2, "tensor": -1})
    res["mesh"] = dict(mesh.shape)
    rules = [list(r) for r in pm.DEFAULT_RULES]  # as a config would give them
    model = pm.shard_model(build(), mesh, rules)
    q = model.llm.layers[0].attn.q.kernel[...]
    res["q_spec"] = str(q.sharding.spec)
    res["q_shards"] = len({str(s.index) for s in q.addressable_shards})
    bs = pm.batch_sharding(mesh, rules)
    with pm.use_mesh(mesh, rules):
        fwd = nnx.jit(lambda m, f, t: m(f, t))
        out = fwd(model, jax.device_put(feats, bs), jax.device_put(toks, bs))
        grad = nnx.jit(nnx.grad(loss))(model, jax.device_put(feats, bs), jax.device_put(toks, bs))
        res["hlo_constraints"] = fwd.lower(model, feats, toks).as_text().count("sharding_constraint") if hasattr(fwd, "lower") else -1
    res["out_spec"] = str(out.sharding.spec)
    res["max_diff"] = float(np.abs(np.asarray(out) - np.asarray(ref)).max())
    res["grad_diff"] = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                           for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(ref_grad)))
    errors = []
    for bad in ({"data": 3, "fsdp": -1}, {"data": 2, "fsdp": 2}, {"data": 16}):
        try:
            pm.make_mesh(bad)
        except ValueError as e:
            errors.append(str(e))
    res["errors"] = errors
    print("RESULT " + json.dumps(res))
    """
)


def test_sharded_model_matches_unsharded_on_eight_devices():
    res = run_with_devices(_SCRIPT, 8, timeout=300)
    assert res["devices"] == 8
    assert res["mesh"] == {"data": 2, "fsdp": 2, "tensor": 2}
    assert res["q_spec"] == str(P("fsdp", "tensor")) and res["q_shards"] == 4
    assert res["out_spec"] == str(P(("data", "fsdp"), None, "tensor"))
    assert res["max_diff"] < 1e-5 and res["grad_diff"] < 1e-5
    assert res["hlo_constraints"] > 0
    assert len(res["errors"]) == 3
    assert "do not divide the device count 8" in res["errors"][0]
    assert "use 4 devices but 8 are available" in res["errors"][1]
    assert "do not divide the device count 8" in res["errors"][2]
