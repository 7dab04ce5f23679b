"""Text and language-model stages: tokenizer, shards, labels, pretrain. (Vision stages are in
vision_steps, the adaptation stages in adapt_steps, evaluation in eval_steps.)

Each stage is a unit (`stage.Stage`) of the fields that decide its result; its runner receives
the step, the directory to write into and a way to find the outputs of its inputs, and returns
a JSON-able result that the executor stores as `result.json`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

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
from visual_priors.suite.stage import Stage, Step
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


@dataclasses.dataclass(frozen=True)
class Tokenizer(Stage):
    """One vocabulary for the whole pool of sources, so studies drawing on different sources
    still share their common LLMs."""
    kind: ClassVar[str] = "tokenizer"
    world: dict
    sources: list
    corpora: dict  # real corpora by source name, with their content fingerprints
    vocab_size: int
    sample_chars: int

    def run(self, step: Step, out: Path, locate: Locate) -> dict:
        sources = [_resolve(name, self.corpora.get(name)) for name in self.sources]
        tok = tokenizer_lib.build_tokenizer(sources, world_of(self.world), self.vocab_size, out,
                                            sample_chars=self.sample_chars)
        return {"path": Path(tok.path).name, "vocab_size": tok.vocab_size, "fingerprint": tok.fingerprint}


@dataclasses.dataclass(frozen=True)
class Shards(Stage):
    """A source's split tokenised into labelled-to-be segments (ArrayRecord shards); the text
    comes from the world or from a real corpus (exactly one of the two is set)."""
    kind: ClassVar[str] = "shards"
    version: ClassVar[int] = 3
    source: str
    split: str
    tokens: int
    segment_tokens: int
    world: dict | None = None
    corpus: dict | None = None

    def run(self, step: Step, out: Path, locate: Locate) -> dict:
        source = _resolve(self.source, self.corpus)
        world = world_of(self.world) if self.world is not None else None
        segs = segments_lib.build_segments(
            source, world, tokenizer_of(step, locate), out, split=self.split,
            segment_tokens=self.segment_tokens, n_tokens=self.tokens or None,
            workers=step.options.get("workers", 0))
        return {"path": str(segs.path.relative_to(out)), "tokens": segs.n_tokens, "segments": len(segs),
                "documents": segs.meta["n_documents"]}

    def describe(self, step: Step, owner: str) -> str:
        return f"({self.source}, {self.split}, {self.tokens:,} tokens)"


def _segments(shard_step, locate: Locate) -> segments_lib.SegmentSet:
    out = locate(shard_step)
    return segments_lib.SegmentSet(out / read_result(out)["path"])


@dataclasses.dataclass(frozen=True)
class Labels(Stage):
    """Every segment of a shards step labelled; on world text the labels are also scored
    against the world's truth."""
    kind: ClassVar[str] = "labels"
    labeller: dict

    def run(self, step: Step, out: Path, locate: Locate) -> dict:
        tok = tokenizer_of(step, locate)
        segs = _segments(step.input("shards"), locate)
        labeller = labelling.labeller_from_config(self.labeller)
        bits = segments_lib.label_segments(segs, labeller, tok, path=out / "labels.npy")
        result = {"path": "labels.npy", "labeller": labeller.name, "fingerprint": labeller.fingerprint,
                  "source": segs.source, "segments": len(segs),
                  "rates": labelling_report.label_rates({segs.source: bits})[segs.source]}
        known = segs.truth_known
        if known.any():
            result["truth_segments"] = int(known.sum())
            result["precision_recall"] = labelling_report.precision_recall(bits[known], segs.truth[known])
        return result

    def describe(self, step: Step, owner: str) -> str:
        return f"({step.input('shards').unit.source}, {self.labeller['name']})"


def _pool(step, locate: Locate) -> pipeline.SegmentPool:
    """The training segments of a pretrain step's sources with their labels."""
    segs, bits = {}, {}
    for lab in step.inputs_of("labels"):
        shards = lab.input("shards")
        out = locate(lab)
        segs[shards.unit.source] = _segments(shards, locate)
        bits[shards.unit.source] = np.load(out / read_result(out)["path"])
    return pipeline.SegmentPool(segs, bits)


# ---------------------------------------------------------------- language model


def llm_config(scale: str, tok) -> ml_collections.ConfigDict:
    cfg = scales.get(scale)
    if cfg.vocab_size != tok.vocab_size:
        raise BadValue(f"scale {scale} expects a vocabulary of {cfg.vocab_size} but the tokenizer has "
                       f"{tok.vocab_size}; use a profile whose data.vocab_size matches the scale")
    return cfg


# Model settings that change memory and speed, not the parameters a run ends with.
PRETRAIN_MODEL_OPTIONS = ("remat",)
# What the runs of a pack share besides their fields other than the mixture: the run options
# of one program (accumulation, remat, checkpointing, logging, mesh). The sharding rules are
# left out (one device).
PACK_OPTIONS = ("grad_accum", "remat", "ckpt_every", "keep_every", "log_every", "mesh")


@dataclasses.dataclass(frozen=True)
class Pretrain(Stage):
    """An LLM pre-trained on a text mixture for a token budget (0: the initialisation itself)."""
    kind: ClassVar[str] = "pretrain"
    # 2: loss by target-logit selection, t5 reshaped, per-layer checkpoint with its config;
    # 3: labelled 1,024-token segments, mixtures packed with document-bounded attention;
    # 4: mesh, sharding rules, cadence, microbatching and remat moved to run options;
    # 5: held-out perplexity moved to a stage of its own (Perplexity).
    version: ClassVar[int] = 5
    scale: str
    mixture: dict  # config.mixtures' spec of the parsed mixture
    tokens: int
    seed: int  # initialisation and batch order
    max_epochs: float  # passes over a component's segments before the mixture counts as short
    seq_len: int
    batch_size: int
    optim: dict
    model: dict  # model settings that change the parameters (dtypes, layer scan)

    def run(self, step: Step, out: Path, locate: Locate) -> dict:
        return run_pretrain(step, out, locate)

    def describe(self, step: Step, owner: str) -> str:
        return f"({owner})"

    def flops(self, step: Step) -> float:
        return flops.pretrain_flops(scales.get(self.scale), self.tokens, self.seq_len)

    def pack_key(self, step: Step) -> tuple | None:
        """Equal for steps that differ only in their mixture and seed (packing varies them: each
        run starts from its own initialisation and draws its own batches); None for a
        zero-token budget or a mesh over more than one device."""
        if not self.tokens or not _one_device(step.options["mesh"]):
            return None
        shared = {k: v for k, v in step.fields.items() if k not in ("mixture", "seed")}
        return (json.dumps(shared, sort_keys=True),
                *(json.dumps(step.options.get(name), sort_keys=True) for name in PACK_OPTIONS))


def _one_device(mesh_cfg) -> bool:
    if jax.process_count() != 1:
        return False
    try:
        return mesh_lib.make_mesh(mesh_cfg).size == 1
    except ValueError:  # a mesh this host cannot make: left to run_pretrain to report
        return False


def run_pretrain(step, out: Path, locate: Locate, mesh=None) -> dict:
    opts = step.options
    cfg = pretrain_config(step, locate)
    mesh = mesh or mesh_lib.make_mesh(opts["mesh"])
    model = new_llm(cfg, step, mesh)
    data = pretrain_data(step, locate)
    if step.unit.tokens == 0:  # the scale sweep's 0B point: the randomly initialised LLM itself
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
    cfg = llm_config(step.unit.scale, tokenizer_of(step, locate))
    cfg.update(step.unit.model)
    cfg.update({k: step.options[k] for k in PRETRAIN_MODEL_OPTIONS if k in step.options})
    return cfg


def new_llm(cfg, step, mesh) -> llm_lib.Llama:
    return mesh_lib.create_sharded(lambda: llm_lib.Llama(cfg, rngs=nnx.Rngs(step.unit.seed)), mesh,
                                   step.options["rules"])


def pretrain_data(step, locate: Locate) -> pipeline.PretrainData:
    u = step.unit
    return pipeline.PretrainData(_pool(step, locate), u.mixture, seq_len=u.seq_len,
                                 batch_size=u.batch_size, seed=u.seed, total_tokens=u.tokens,
                                 max_epochs=u.max_epochs, process_index=jax.process_index(),
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
    u, opts = step.unit, step.options
    return loop.TrainSettings(steps=max(1, u.tokens // (u.seq_len * u.batch_size)),
                              optim_cfg=as_config(u.optim), ckpt_every=opts["ckpt_every"],
                              keep_every=opts["keep_every"], log_every=opts["log_every"],
                              desc=f"pretrain {u.scale}", accum_steps=opts["grad_accum"],
                              metadata=_llm_metadata(u.scale, cfg),
                              flops_per_token=flops.train_flops_per_token(cfg, u.seq_len))


def finish_pretrain(step, out: Path, locate: Locate, model, cfg, data: pipeline.PretrainData,
                    result: loop.TrainResult) -> dict:
    """Save a trained LLM with its drawn-token counts; the step's result."""
    u = step.unit
    params = nnx.state(model, nnx.Param).to_pure_dict()
    if cfg.get("scan_layers", False):  # saved per layer, the layout every later stage reads
        params = llm_lib.unstack_layers(params, cfg.n_layers)
    # The full model config rides along, so `visual-priors convert export` can rebuild the model.
    save_params(out / "llm", params, hf_llama.checkpoint_metadata(cfg))
    drawn = data.counter.report()  # rows of seq_len + 1 count seq_len trained tokens
    assert drawn["total"] == result.tokens, (drawn["total"], result.tokens)
    (out / "drawn.json").write_text(json.dumps(drawn, indent=2))
    return {
        "scale": u.scale, "params": llm_lib.count_params(cfg), "tokens": result.tokens,
        "flops": flops.pretrain_flops(cfg, result.tokens, u.seq_len),
        "train": result.to_dict(),
        "mixture": data.mixture.name, "tokens_by_source": drawn["by_source"],
        "tokens_by_label": drawn["by_label"], "label_shares": drawn["label_shares"],
        "component_shares": drawn["component_shares"],
        "requested_shares": {p.component.name: p.component.share for p in data.planned},
    }


@dataclasses.dataclass(frozen=True)
class Perplexity(Stage):
    """The pre-trained LLM's perplexity on each source's held-out text (at most `windows`
    windows of its training length each) and their geometric mean: a step of its own, so
    measuring more or fewer windows leaves the LLM alone."""
    kind: ClassVar[str] = "perplexity"
    windows: int

    def run(self, step: Step, out: Path, locate: Locate) -> dict:
        pre = step.input("pretrain")
        model = load_llm(locate(pre), pre.unit.scale, tokenizer_of(step, locate))
        ppl = {s.unit.source: perplexity(model, _segments(s, locate).stream(), seq_len=pre.unit.seq_len,
                                         max_windows=self.windows)
               for s in step.inputs_of("shards")}
        return {"perplexity": ppl, "mean": float(np.exp(np.mean(np.log(list(ppl.values()))))) if ppl else None}

    def describe(self, step: Step, owner: str) -> str:
        return f"({owner})"


def _llm_metadata(scale: str, cfg) -> dict:
    """What a pre-training checkpoint must agree on to be resumed: model, vocabulary, dtypes,
    parameter layout. The mesh is not here: a checkpoint restores onto any mesh."""
    return {"kind": "llm", "scale": scale, "vocab_size": cfg.vocab_size, "dtype": cfg.dtype,
            "param_dtype": cfg.param_dtype, "scan_layers": bool(cfg.get("scan_layers", False))}


def load_llm(pretrain_dir: Path, scale: str, tok) -> llm_lib.Llama:
    cfg = llm_config(scale, tok)
    return restore_module(llm_lib.Llama(cfg, rngs=nnx.Rngs(0)), pretrain_dir / "llm",
                    {"kind": "llm", "scale": scale, "vocab_size": cfg.vocab_size})
