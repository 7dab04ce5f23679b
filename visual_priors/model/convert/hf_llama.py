"""Hugging Face Llama checkpoints <-> ``visual_priors.model.llm.Llama``.

A Hugging Face directory holds ``config.json`` and either ``model.safetensors`` or shards listed
in ``model.safetensors.index.json``. Tensors are read and written with ``safetensors.numpy``
(no torch). The model's RoPE already pairs dimensions as HF does (rotate-half), so q/k load
unpermuted; torch ``Linear`` weights are [out, in] and our kernels [in, out], so those transpose.

    model = hf_llama.load("Llama-3.2-1B")                # a Llama, float32 parameters
    hf_llama.save(model, "out")                          # LlamaForCausalLM.from_pretrained("out")
    hf_llama.import_checkpoint("Llama-3.2-1B", "ckpt")   # the project's checkpoint format
    hf_llama.export_checkpoint("ckpt", "out")
"""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import ml_collections
import ml_dtypes  # noqa: F401  registers "bfloat16" with numpy, which safetensors.numpy needs for BF16
import numpy as np
import safetensors.numpy
from flax import nnx, traverse_util

from visual_priors.config import scales
from visual_priors.errors import BadFile, BadValue, MissingFile, read_json, read_safetensors
from visual_priors.model.llm import Llama, stack_layers, unstack_layers
from visual_priors.model.params_io import load_params, save_params

# Every tensor: HF name, our pure-dict path ("{i}" = layer index), and whether the HF tensor is
# the transpose of ours. The only place that knows both layouts. Paths are those of the per-layer
# layout (also what checkpoints hold); models with ``cfg.scan_layers`` are (un)stacked at the edges.
_TENSORS = (
    ("model.embed_tokens.weight", "embedding", False),
    ("model.layers.{i}.input_layernorm.weight", "layers/{i}/attn_norm/scale", False),
    ("model.layers.{i}.self_attn.q_proj.weight", "layers/{i}/attn/q/kernel", True),
    ("model.layers.{i}.self_attn.k_proj.weight", "layers/{i}/attn/k/kernel", True),
    ("model.layers.{i}.self_attn.v_proj.weight", "layers/{i}/attn/v/kernel", True),
    ("model.layers.{i}.self_attn.o_proj.weight", "layers/{i}/attn/o/kernel", True),
    ("model.layers.{i}.post_attention_layernorm.weight", "layers/{i}/mlp_norm/scale", False),
    ("model.layers.{i}.mlp.gate_proj.weight", "layers/{i}/mlp/gate/kernel", True),
    ("model.layers.{i}.mlp.up_proj.weight", "layers/{i}/mlp/up/kernel", True),
    ("model.layers.{i}.mlp.down_proj.weight", "layers/{i}/mlp/down/kernel", True),
    ("model.norm.weight", "final_norm/scale", False),
    ("lm_head.weight", "lm_head/kernel", True),  # untied models only
)
_LM_HEAD = "lm_head.weight"
_EMBED = "model.embed_tokens.weight"

_REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
# HF fields whose other values change the computation in ways this Llama does not implement.
_FIXED = {"hidden_act": "silu", "rope_scaling": None, "attention_bias": False, "mlp_bias": False}
# HF's LlamaConfig defaults, for fields a config.json may leave out.
_DEFAULTS = {"max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
             "tie_word_embeddings": False}

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


# ---------------------------------------------------------------- configs


def config_from_hf(hf: dict, name: str = "hf-llama") -> ml_collections.ConfigDict:
    """A scale config (the fields of ``scales.get``) from an HF Llama ``config.json`` dict."""
    if hf.get("model_type", "llama") != "llama":
        raise BadFile(f"model_type {hf['model_type']!r} is not supported; only 'llama' is", "config.json")
    missing = [k for k in _REQUIRED if k not in hf]
    if missing:
        raise BadFile(f"config.json lacks {', '.join(missing)}")
    for key, supported in _FIXED.items():
        if hf.get(key, supported) != supported:
            raise BadFile(f"unsupported {key}={hf[key]!r}: only {supported!r} is implemented", "config.json")
    heads = hf["num_attention_heads"]
    cfg = ml_collections.ConfigDict()
    cfg.name = name
    cfg.d_model = hf["hidden_size"]
    cfg.n_layers = hf["num_hidden_layers"]
    cfg.n_heads = heads
    cfg.n_kv_heads = hf.get("num_key_value_heads") or heads
    cfg.head_dim = hf.get("head_dim") or hf["hidden_size"] // heads
    cfg.ffn_dim = hf["intermediate_size"]
    cfg.vocab_size = hf["vocab_size"]
    cfg.tie_embeddings = bool(hf.get("tie_word_embeddings", _DEFAULTS["tie_word_embeddings"]))
    cfg.max_len = hf.get("max_position_embeddings", _DEFAULTS["max_position_embeddings"])
    cfg.rope_theta = _rope_theta(hf)
    cfg.norm_eps = float(hf.get("rms_norm_eps", _DEFAULTS["rms_norm_eps"]))
    cfg.dtype = "float32"
    cfg.param_dtype = "float32"
    return cfg


def _rope_theta(hf: dict) -> float:
    # transformers 5 writes {"rope_parameters": {"rope_type", "rope_theta"}}; 4.x a top-level rope_theta.
    rope = hf.get("rope_parameters")
    if rope is None:
        return float(hf.get("rope_theta", _DEFAULTS["rope_theta"]))
    if rope.get("rope_type", "default") != "default":
        raise BadFile(f"unsupported rope_parameters.rope_type={rope['rope_type']!r}: only 'default' is implemented", "config.json")
    return float(rope.get("rope_theta", hf.get("rope_theta", _DEFAULTS["rope_theta"])))


def config_to_hf(cfg) -> dict:
    """The ``config.json`` dict of ``LlamaForCausalLM`` for a scale config.

    Written in the transformers 4.x form (top-level rope_theta, torch_dtype), which 5.x reads too.
    """
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": int(cfg.vocab_size),
        "hidden_size": int(cfg.d_model),
        "intermediate_size": int(cfg.ffn_dim),
        "num_hidden_layers": int(cfg.n_layers),
        "num_attention_heads": int(cfg.n_heads),
        "num_key_value_heads": int(cfg.n_kv_heads),
        "head_dim": int(cfg.head_dim),
        "hidden_act": "silu",
        "max_position_embeddings": int(cfg.max_len),
        "rms_norm_eps": float(cfg.norm_eps),
        "rope_theta": float(cfg.rope_theta),
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": bool(cfg.tie_embeddings),
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "use_cache": True,
        "torch_dtype": jnp.dtype(cfg.param_dtype).name,
    }


# ---------------------------------------------------------------- tensor mapping


def name_pairs(cfg) -> list[tuple[str, tuple, bool]]:
    """(HF name, pure-dict path, transposed) of every tensor of ``Llama(cfg)``."""
    pairs = []
    for hf_name, path, transposed in _TENSORS:
        if hf_name == _LM_HEAD and cfg.tie_embeddings:
            continue
        for i in range(cfg.n_layers) if "{i}" in hf_name else [None]:
            pairs.append((hf_name.format(i=i), _path(path.format(i=i)), transposed))
    return pairs


def _path(text: str) -> tuple:
    # Layer indices are the int keys of the nnx.List in the pure dict.
    return tuple(int(p) if p.isdigit() else p for p in text.split("/"))


def _abstract_params(cfg) -> dict:
    """Pure dict of ShapeDtypeStructs of ``Llama(cfg)``'s parameters in the per-layer layout;
    nothing is allocated."""
    per_layer = ml_collections.ConfigDict({**cfg.to_dict(), "scan_layers": False})
    return nnx.state(nnx.eval_shape(lambda: Llama(per_layer, rngs=nnx.Rngs(0))), nnx.Param).to_pure_dict()


def _expected(cfg, pairs) -> dict:
    """Path -> shape, after checking the table covers exactly the model's parameters."""
    shapes = {k: v.shape for k, v in traverse_util.flatten_dict(_abstract_params(cfg)).items()}
    _check_names({p for _, p, _ in pairs}, set(shapes), "the conversion table", "Llama parameter", _show)
    return shapes


def _show(path: tuple) -> str:
    return "/".join(map(str, path))


def _check_names(have: set, want: set, where: str, what: str, show=str, limit: int = 8) -> None:
    problems = []
    for label, names in (("missing", want - have), ("unexpected", have - want)):
        if names:
            # A wrong name prefix makes every tensor missing: show the first few and the count.
            shown = [show(n) for n in sorted(names, key=str)[:limit]]
            more = f" and {len(names) - limit} more" if len(names) > limit else ""
            problems.append(f"{label} {what}s: {', '.join(shown)}{more}")
    if problems:
        raise BadFile(f"{where} does not fit the config: {'; '.join(problems)}")


def _oriented(x: np.ndarray, transposed: bool, dtype=None) -> np.ndarray:
    return np.ascontiguousarray(x.T if transposed else x, dtype=dtype)


def to_hf_tensors(params: dict, cfg) -> dict[str, np.ndarray]:
    """HF-named numpy tensors from a ``Llama`` parameter pure dict, in the parameters' dtype."""
    pairs = name_pairs(cfg)
    expected = _expected(cfg, pairs)
    flat = traverse_util.flatten_dict(params)
    _check_names(set(flat), set(expected), "the parameters", "parameter", _show)
    out = {}
    for hf_name, path, transposed in pairs:
        x = np.asarray(flat[path])
        if x.shape != expected[path]:
            raise BadFile(f"parameter {_show(path)} has shape {x.shape}, "
                             f"the config expects {expected[path]}")
        out[hf_name] = _oriented(x, transposed)
    return out


def from_hf_tensors(tensors: dict, cfg) -> dict:
    """A ``Llama`` parameter pure dict (numpy, ``cfg.param_dtype``) from HF-named tensors."""
    pairs = name_pairs(cfg)
    expected = _expected(cfg, pairs)
    tensors = _without_redundant(tensors, cfg)
    _check_names(set(tensors), {n for n, _, _ in pairs}, "the checkpoint", "tensor")
    dtype = jnp.dtype(cfg.param_dtype)
    flat = {}
    for hf_name, path, transposed in pairs:
        x = np.asarray(tensors[hf_name])
        want = expected[path][::-1] if transposed else expected[path]
        if x.shape != want:
            raise BadFile(f"tensor {hf_name} has shape {x.shape}, the config expects {want}")
        flat[path] = _oriented(x, transposed, dtype)
    return traverse_util.unflatten_dict(flat)


def _without_redundant(tensors: dict, cfg) -> dict:
    """Drops tensors that some writers store although they carry nothing new."""
    # Checkpoints from transformers < 4.31 saved the RoPE frequency buffer; it is recomputed.
    kept = {k: v for k, v in tensors.items() if not k.endswith(".rotary_emb.inv_freq")}
    if cfg.tie_embeddings and _LM_HEAD in kept:
        if _EMBED in kept and not np.array_equal(kept[_LM_HEAD], kept[_EMBED]):
            raise BadFile(f"tie_word_embeddings is true but {_LM_HEAD} differs from {_EMBED}")
        del kept[_LM_HEAD]
    return kept


# ---------------------------------------------------------------- Hugging Face directories


def read_config(hf_dir: str | Path, dtype="float32") -> ml_collections.ConfigDict:
    """The scale config of an HF directory, named after it, with parameters in ``dtype``."""
    hf_dir = Path(hf_dir)
    cfg = config_from_hf(read_json(hf_dir / "config.json", "Hugging Face config"), name=hf_dir.absolute().name)
    cfg.param_dtype = jnp.dtype(dtype).name
    return cfg


def read_tensors(hf_dir: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of ``model.safetensors`` or of the shards its index lists."""
    hf_dir = Path(hf_dir)
    if (hf_dir / SINGLE_FILE).exists():
        files = [hf_dir / SINGLE_FILE]
    elif (hf_dir / INDEX_FILE).exists():
        weight_map = read_json(hf_dir / INDEX_FILE, "safetensors index")["weight_map"]
        files = [hf_dir / f for f in sorted(set(weight_map.values()))]
    else:
        raise MissingFile(f"{hf_dir} has neither {SINGLE_FILE} nor {INDEX_FILE}")
    tensors = {}
    for f in files:
        if not f.exists():
            raise MissingFile(f"{f.name}, listed in {INDEX_FILE}, is not in {hf_dir}")
        tensors.update(read_safetensors(f))
    return tensors


def write_hf(hf_dir: str | Path, cfg, tensors: dict[str, np.ndarray]) -> Path:
    """config.json + one model.safetensors."""
    hf_dir = Path(hf_dir)
    hf_dir.mkdir(parents=True, exist_ok=True)
    (hf_dir / "config.json").write_text(json.dumps(config_to_hf(cfg), indent=2, sort_keys=True) + "\n")
    # transformers refuses safetensors files whose metadata does not name a framework.
    safetensors.numpy.save_file(tensors, hf_dir / SINGLE_FILE, metadata={"format": "pt"})
    return hf_dir


def build(cfg, params: dict) -> Llama:
    """A ``Llama(cfg)`` holding ``params`` (a per-layer pure dict), without a random initialisation."""
    params = _to_jax(params)
    if cfg.get("scan_layers", False):
        params = stack_layers(params, cfg.n_layers)
    graphdef, state = nnx.split(nnx.eval_shape(lambda: Llama(cfg, rngs=nnx.Rngs(0))))
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state)


def _to_jax(params: dict) -> dict:
    return traverse_util.unflatten_dict(
        {k: jnp.asarray(v) for k, v in traverse_util.flatten_dict(params).items()})


def load(hf_dir: str | Path, dtype="float32") -> Llama:
    """A ``Llama`` from an HF Llama directory, parameters in ``dtype`` (compute stays float32)."""
    cfg = read_config(hf_dir, dtype)
    return build(cfg, from_hf_tensors(read_tensors(hf_dir), cfg))


def save(model: Llama, hf_dir: str | Path) -> Path:
    """Writes ``model`` as an HF Llama directory, tensors in the parameters' dtype."""
    params = nnx.state(model, nnx.Param).to_pure_dict()
    if model.cfg.get("scan_layers", False):
        params = unstack_layers(params, model.cfg.n_layers)
    return write_hf(hf_dir, model.cfg, to_hf_tensors(params, model.cfg))


# ---------------------------------------------------------------- project checkpoints


def checkpoint_metadata(cfg) -> dict:
    """The metadata of a standalone LLM checkpoint (what the pretrain step writes) with the full
    model config. Parameters are always stored per layer (the default layout), so a scan flag
    is not recorded."""
    model = cfg.to_dict()
    model.pop("scan_layers", None)
    return {"kind": "llm", "scale": cfg.name, "vocab_size": cfg.vocab_size, "model": model}


def import_checkpoint(hf_dir: str | Path, out_dir: str | Path, dtype="float32") -> ml_collections.ConfigDict:
    """HF Llama directory -> the project's standalone LLM checkpoint; returns the model config."""
    cfg = read_config(hf_dir, dtype)
    save_params(out_dir, _to_jax(from_hf_tensors(read_tensors(hf_dir), cfg)), checkpoint_metadata(cfg))
    return cfg


def read_checkpoint(ckpt_dir: str | Path) -> tuple[ml_collections.ConfigDict, dict]:
    """(model config, parameter pure dict) of a checkpoint written by ``save_params``."""
    meta_file = Path(ckpt_dir) / "metadata.json"
    if not meta_file.exists():
        raise MissingFile(f"{meta_file} not found: not an LLM checkpoint written by visual-priors")
    meta = read_json(meta_file, "checkpoint metadata")
    if meta.get("kind") != "llm":
        raise BadValue(f"{ckpt_dir} holds a {meta.get('kind')!r} checkpoint, not an 'llm' one")
    if "model" in meta:
        cfg = ml_collections.ConfigDict(meta["model"])
    else:  # the suite's pretrain step records only a standard scale's name
        cfg = scales.get(meta["scale"])
        if cfg.vocab_size != meta.get("vocab_size"):
            raise BadFile(f"{ckpt_dir}: vocab_size {meta.get('vocab_size')} does not match scale "
                             f"{meta['scale']} ({cfg.vocab_size})")
    return cfg, load_params(ckpt_dir, _abstract_params(cfg))


def export_checkpoint(ckpt_dir: str | Path, hf_dir: str | Path) -> ml_collections.ConfigDict:
    """The project's LLM checkpoint -> HF Llama directory; returns the model config."""
    cfg, params = read_checkpoint(ckpt_dir)
    write_hf(hf_dir, cfg, to_hf_tensors(params, cfg))
    return cfg
