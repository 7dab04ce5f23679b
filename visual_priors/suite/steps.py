"""Text and language-model steps: tokenizer, shards, labels, pretrain. (Vision steps are in
vision_steps, the adaptation stages in adapt_steps, evaluation in eval_steps.)

Every function receives its step, the directory to write into and a way to find the outputs of
its inputs, and returns a JSON-able result that the executor stores as `result.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from visual_priors.config import scales
from visual_priors.data import labelling, pipeline, segments as segments_lib
from visual_priors.data import sources as sources_lib, tokenizer as tokenizer_lib
from visual_priors.data.labelling import report as labelling_report
from visual_priors.errors import BadValue
from visual_priors.eval.language import perplexity
from visual_priors.model import llm as llm_lib
from visual_priors.model.convert import hf_llama
from visual_priors.model.scoring import masked_nll
from visual_priors.parallel import mesh as mesh_lib
from visual_priors.suite import spec as spec_lib
from visual_priors.suite.step_io import Locate, as_config, read_result, restore_module, tokenizer_of, world_of
from visual_priors.train import flops, loop
from visual_priors.model.params_io import save_params

# ---------------------------------------------------------------- data


def _resolve(name: str, corpus: dict | None):
    """The source a step names: the world's, or the real corpus its spec describes, which must
    still hold the content the study was planned on."""
    if corpus is None:
        return sources_lib.get_source(name)
    spec = {k: v for k, v in corpus.items() if k != "fingerprint"}
    source = sources_lib.resolve_source(name, {name: spec})
    if source.fingerprint != corpus["fingerprint"]:
        raise BadValue(f"corpus of source {name!r} changed since the study was planned "
                       f"(content hash {source.fingerprint}, planned {corpus['fingerprint']}); "
                       "plan the study again")
    return source


def run_tokenizer(step, out: Path, locate: Locate) -> dict:
    f = step.fields
    corpora = f.get("corpora", {})
    sources = [_resolve(name, corpora.get(name)) for name in f["sources"]]
    tok = tokenizer_lib.build_tokenizer(sources, world_of(f), f["vocab_size"], out,
                                        sample_chars=f["sample_chars"])
    return {"path": Path(tok.path).name, "vocab_size": tok.vocab_size, "fingerprint": tok.fingerprint}


def run_shards(step, out: Path, locate: Locate) -> dict:
    """Tokenise a source's split into labelled-to-be segments (ArrayRecord shards)."""
    f = step.fields
    source = _resolve(f["source"], f.get("corpus"))
    world = world_of(f) if "world" in f else None
    segs = segments_lib.build_segments(
        source, world, tokenizer_of(step, locate), out, split=f["split"],
        segment_tokens=f["segment_tokens"], n_tokens=f["tokens"] or None,
        workers=step.options.get("workers", 0))
    return {"path": str(segs.path.relative_to(out)), "tokens": segs.n_tokens, "segments": len(segs),
            "documents": segs.meta["n_documents"]}


def _segments(shard_step, locate: Locate) -> segments_lib.SegmentSet:
    out = locate(shard_step)
    return segments_lib.SegmentSet(out / read_result(out)["path"])


def run_labels(step, out: Path, locate: Locate) -> dict:
    """Label every segment of a shards step; on world text also score the labels against the
    world's truth."""
    tok = tokenizer_of(step, locate)
    segs = _segments(step.input("shards"), locate)
    labeller = labelling.labeller_from_config(step.fields["labeller"])
    bits = segments_lib.label_segments(segs, labeller, tok, path=out / "labels.npy")
    result = {"path": "labels.npy", "labeller": labeller.name, "fingerprint": labeller.fingerprint,
              "source": segs.source, "segments": len(segs),
              "rates": labelling_report.label_rates({segs.source: bits})[segs.source]}
    known = segs.truth_known
    if known.any():
        result["truth_segments"] = int(known.sum())
        result["precision_recall"] = labelling_report.precision_recall(bits[known], segs.truth[known])
    return result


def _pool(step, locate: Locate) -> pipeline.SegmentPool:
    """The training segments of a pretrain step's sources with their labels."""
    segs, bits = {}, {}
    for lab in step.inputs_of("labels"):
        shards = lab.input("shards")
        out = locate(lab)
        segs[shards.fields["source"]] = _segments(shards, locate)
        bits[shards.fields["source"]] = np.load(out / read_result(out)["path"])
    return pipeline.SegmentPool(segs, bits)


# ---------------------------------------------------------------- language model


def llm_config(scale: str, tok) -> ml_collections.ConfigDict:
    cfg = scales.get(scale)
    if cfg.vocab_size != tok.vocab_size:
        raise BadValue(f"scale {scale} expects a vocabulary of {cfg.vocab_size} but the tokenizer has "
                       f"{tok.vocab_size}; use a profile whose data.vocab_size matches the scale")
    return cfg


def run_pretrain(step, out: Path, locate: Locate, mesh=None) -> dict:
    f, opts = step.fields, step.options
    cfg = pretrain_config(step, locate)
    mesh = mesh or mesh_lib.make_mesh(opts["mesh"])
    model = new_llm(cfg, step, mesh)
    data = pretrain_data(step, locate)
    if f["tokens"] == 0:  # the scale sweep's 0B point: the randomly initialised LLM itself
        result = loop.TrainResult(steps=0, first_loss=float("nan"), final_loss=float("nan"), tokens=0,
                                  tokens_per_s=0.0, elapsed_s=0.0, resumed_from=None, losses=[])
    else:
        result = loop.run(model, pretrain_loss, data, pretrain_options(step, cfg), mesh=mesh, rules=opts["rules"],
                          workdir=out / "work")
    return finish_pretrain(step, out, locate, model, cfg, data, result)


# The pieces of run_pretrain, shared with the packed trainer (packed_steps.py).


def pretrain_config(step, locate: Locate) -> ml_collections.ConfigDict:
    """The LLM config of a pretrain step: its scale, checked against its tokenizer, with the
    step's model settings (dtypes, layer scan) and its run options' remat."""
    cfg = llm_config(step.fields["scale"], tokenizer_of(step, locate))
    cfg.update(step.fields.get("model", {}))
    cfg.update({k: step.options[k] for k in spec_lib.PRETRAIN_MODEL_OPTIONS if k in step.options})
    return cfg


def new_llm(cfg, step, mesh) -> llm_lib.Llama:
    return mesh_lib.create_sharded(lambda: llm_lib.Llama(cfg, rngs=nnx.Rngs(step.fields["seed"])), mesh,
                                   step.options["rules"])


def pretrain_data(step, locate: Locate) -> pipeline.PretrainData:
    f = step.fields
    return pipeline.PretrainData(_pool(step, locate), f["mixture"], seq_len=f["seq_len"],
                                 batch_size=f["batch_size"], seed=f["seed"], total_tokens=f["tokens"],
                                 max_epochs=f["max_epochs"], process_index=jax.process_index(),
                                 process_count=jax.process_count())


def pretrain_loss(model, batch):
    tokens = batch["tokens"]
    loss, _ = masked_nll(model, tokens, jnp.ones_like(tokens), segment_ids=batch["segment_ids"],
                         positions=batch["positions"])
    # The budget counts every input position, boundary targets included.
    return loss, {"tokens": jnp.asarray(tokens.shape[0] * (tokens.shape[1] - 1))}


def pretrain_options(step, cfg) -> loop.TrainSettings:
    """The training loop's settings for a pretrain step: what it trains from its fields, how it
    logs, checkpoints and accumulates from its options."""
    f, opts = step.fields, step.options
    return loop.TrainSettings(steps=max(1, f["tokens"] // (f["seq_len"] * f["batch_size"])),
                              optim_cfg=as_config(f["optim"]), ckpt_every=opts["ckpt_every"],
                              keep_every=opts["keep_every"], log_every=opts["log_every"],
                              desc=f"pretrain {f['scale']}", accum_steps=opts["grad_accum"],
                              metadata=_llm_metadata(f["scale"], cfg),
                              flops_per_token=flops.train_flops_per_token(cfg, f["seq_len"]))


def finish_pretrain(step, out: Path, locate: Locate, model, cfg, data: pipeline.PretrainData,
                    result: loop.TrainResult) -> dict:
    """Save a trained LLM with its perplexities and drawn-token counts; the step's result."""
    f = step.fields
    params = nnx.state(model, nnx.Param).to_pure_dict()
    if cfg.get("scan_layers", False):  # saved per layer, the layout every later stage reads
        params = llm_lib.unstack_layers(params, cfg.n_layers)
    # The full model config rides along, so `visual-priors convert export` can rebuild the model.
    save_params(out / "llm", params, hf_llama.checkpoint_metadata(cfg))
    ppl = {}
    for s in step.inputs_of("shards"):
        if s.fields["split"] == "test":
            stream = _segments(s, locate).stream()
            ppl[s.fields["source"]] = perplexity(model, stream, seq_len=f["seq_len"],
                                                  max_windows=f["perplexity_windows"])
    drawn = data.counter.report()  # rows of seq_len + 1 count seq_len trained tokens
    assert drawn["total"] == result.tokens, (drawn["total"], result.tokens)
    (out / "drawn.json").write_text(json.dumps(drawn, indent=2))
    return {
        "scale": f["scale"], "params": llm_lib.count_params(cfg), "tokens": result.tokens,
        "flops": flops.pretrain_flops(cfg, result.tokens, f["seq_len"]),
        "train": result.to_dict(), "perplexity": ppl,
        "perplexity_mean": float(np.exp(np.mean(np.log(list(ppl.values()))))) if ppl else None,
        "mixture": data.mixture.name, "tokens_by_source": drawn["by_source"],
        "tokens_by_label": drawn["by_label"], "label_shares": drawn["label_shares"],
        "component_shares": drawn["component_shares"],
        "requested_shares": {p.component.name: p.component.share for p in data.planned},
    }


def _llm_metadata(scale: str, cfg) -> dict:
    """What a pre-training checkpoint must agree on to be resumed: model, vocabulary, dtypes,
    parameter layout. The mesh is not here: a checkpoint restores onto any mesh."""
    return {"kind": "llm", "scale": scale, "vocab_size": cfg.vocab_size, "dtype": cfg.dtype,
            "param_dtype": cfg.param_dtype, "scan_layers": bool(cfg.get("scan_layers", False))}


def load_llm(pretrain_dir: Path, scale: str, tok) -> llm_lib.Llama:
    cfg = llm_config(scale, tok)
    return restore_module(llm_lib.Llama(cfg, rngs=nnx.Rngs(0)), pretrain_dir / "llm",
                    {"kind": "llm", "scale": scale, "vocab_size": cfg.vocab_size})
