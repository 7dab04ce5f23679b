"""The two adaptation stages that turn a pre-trained LLM into an MLLM (LLaVA-1.5's recipe).

Stage 1 (align) trains the connector alone on image-caption pairs; stage 2 (sft) trains the
connector and the LLM on instructions, text-only and with images. Both read cached features of
the frozen encoder, train one epoch, and put the loss on answer tokens only. Freeze rules decide
what trains; frozen parameters are split off before differentiation (no gradient, no optimizer
state). Stage 2 can use a filtered SFT set (the SFT-data ablation) and the blind-tuning recipe.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

import jax.numpy as jnp
import numpy as np
from flax import nnx

from visual_priors.data import multimodal
from visual_priors.data.files import write_atomic
from visual_priors.model import connector as connector_lib, llm as llm_lib, mllm as mllm_lib
from visual_priors.errors import BadValue
from visual_priors.model.scoring import masked_nll, target_capacity
from visual_priors.config import scales
from visual_priors.eval import signal
from visual_priors.model import vision
from visual_priors.suite import steps
from visual_priors.suite.stage import Stage, Step
from visual_priors.suite.step_io import (Locate, as_config, read_result, restore_module, save_module, tokenizer_of,
                                         world_of)
from visual_priors.suite.vision_steps import Encoder, load_features
from visual_priors.train import flops, loop

ALIGN_RULES = (("connector/.*", True),)                       # everything else frozen
SFT_RULES = (("connector/.*", True), ("llm/.*", True))         # the encoder is not in the model
# What stage 1 may train (cfg.align.train): LLaVA's connector alone, or the LLM with it.
ALIGN_PARTS = {("connector",): ALIGN_RULES, ("connector", "llm"): SFT_RULES}


def align_rules(parts) -> tuple:
    """Freeze rules of stage 1 for ``cfg.align.train``; unknown combinations fail."""
    key = tuple(parts or ("connector",))
    if key not in ALIGN_PARTS:
        raise BadValue(f"align.train={list(key)} is not one of {[list(k) for k in ALIGN_PARTS]}", "align.train")
    return ALIGN_PARTS[key]


def build_mllm(pretrain_step, locate: Locate, tok, feature_dim: int, seed: int, *,
               load_pretrained: bool = True) -> mllm_lib.MLLM:
    """The pre-trained LLM (or a blank one to be overwritten) with a fresh connector."""
    scale = pretrain_step.unit.scale
    cfg = steps.llm_config(scale, tok)
    llm = (steps.load_llm(locate(pretrain_step), scale, tok) if load_pretrained
           else llm_lib.Llama(cfg, rngs=nnx.Rngs(0)))
    conn = connector_lib.Connector(feature_dim, cfg.d_model, rngs=nnx.Rngs(seed))
    return mllm_lib.MLLM(llm, conn)


def load_mllm(pretrain_step, align_dir: Path, locate: Locate, tok, feature_dim: int) -> mllm_lib.MLLM:
    """The MLLM after stage 1: the pre-trained LLM with its trained connector, or the whole
    model where stage 1 trained the LLM as well."""
    if (align_dir / "mllm").exists():
        model = build_mllm(pretrain_step, locate, tok, feature_dim, 0, load_pretrained=False)
        return restore_module(model, align_dir / "mllm", {"kind": "mllm"})
    model = build_mllm(pretrain_step, locate, tok, feature_dim, 0)
    restore_module(model.connector, align_dir / "connector", {"kind": "connector"})
    return model


@dataclasses.dataclass(frozen=True)
class MllmLoss:
    """Answer-token loss with the step's training FLOPs (image and text batches differ); the
    output head runs at answer positions only, in ``max_targets`` slots (``answer_capacity``),
    or everywhere when None. A value, not a closure: runs with equal losses share their
    compiled steps (train/loop.py)."""
    train_llm: bool
    max_targets: int | None = None

    def __call__(self, model: mllm_lib.MLLM, batch: dict):
        tokens = batch["tokens"]
        loss, count = masked_nll(model, tokens, batch["mask"], batch.get("feats"), max_targets=self.max_targets)
        n_visual = batch["feats"].shape[1] if "feats" in batch else 0
        conn_params = model.connector.fc1.kernel.size + model.connector.fc2.kernel.size  # matmul weights
        per_example = flops.mllm_train_flops(model.llm.cfg, conn_params, n_visual, tokens.shape[1] - 1,
                                             train_llm=self.train_llm)
        return loss, {"tokens": count, "flops": jnp.asarray(per_example * tokens.shape[0], jnp.float32)}


def answer_capacity(*datasets: multimodal.ExampleBatches) -> int:
    """Slots for the answer tokens of any batch of ``datasets``: one static size per run."""
    return target_capacity([d.mask[rows] for d in datasets for rows in d.batches])


def encode_examples(examples: list[dict], tok, text_len: int) -> tuple[np.ndarray, np.ndarray]:
    enc = [multimodal.encode_example(tok, e["prompt"], e["answer"], text_len) for e in examples]
    return np.stack([e[0] for e in enc]), np.stack([e[1] for e in enc])


def select_sft(examples: list[dict], keep: dict, seed: int) -> list[dict]:
    """The SFT set: of each label's image examples keep the first round(share * n) of a seeded
    shuffle; text-only and unlabelled examples are all kept. Order is preserved."""
    rng = np.random.default_rng(seed)
    dropped = set()
    for label, share in sorted(keep.items()):
        idx = [i for i, e in enumerate(examples) if e.get("label") == label]
        n_keep = int(round(share * len(idx)))
        dropped.update(np.asarray(idx)[rng.permutation(len(idx))[n_keep:]].tolist())
    return [e for i, e in enumerate(examples) if i not in dropped]


def _batches(tokens, mask, feats, rows, stage: Align | Sft) -> multimodal.ExampleBatches:
    return multimodal.ExampleBatches(tokens, mask, feats, np.asarray(rows), stage.batch_size, stage.seed)


# align/sft 2: SFT sets; 3: the signal chain (naming hop, image tokens after the text's BOS).
ADAPT_VERSION = 3


class _Adaptation(Stage):
    """What both stages share: the run's owner in progress output and the training FLOPs of
    an MLLM over their examples."""

    def describe(self, step: Step, owner: str) -> str:
        return f"({owner})"

    def _flops(self, step: Step, *, train_llm: bool, passes: int = 1) -> float:
        llm = scales.get(step.input("pretrain").unit.scale)
        feats = step.input("features")
        encoder = feats.input("encoder").unit
        # An imported encoder's width is not read before it runs: the LLM's stands in (it only
        # sizes the connector, a negligible share of the step).
        width = int(vision.vit_config(encoder.vit).width) if isinstance(encoder, Encoder) else llm.d_model
        connector = width * llm.d_model + llm.d_model * llm.d_model
        per_example = flops.mllm_train_flops(llm, connector, feats.unit.tokens, self.text_len,
                                             train_llm=train_llm)
        return per_example * self.examples * passes


@dataclasses.dataclass(frozen=True)
class Align(_Adaptation):
    """Stage 1: the connector (and, in tiny, the LLM) learns to turn image features into
    caption-predicting tokens."""
    kind: ClassVar[str] = "align"
    version: ClassVar[int] = ADAPT_VERSION
    seed: int
    examples: int
    batch_size: int
    train: list  # what trains: ["connector"] or ["connector", "llm"]
    text_len: int
    optim: dict

    def __post_init__(self):
        align_rules(self.train)  # an unknown combination fails when the study is planned

    def run(self, step: Step, out: Path, locate: Locate) -> dict:
        return run_align(step, out, locate)

    def flops(self, step: Step) -> float:
        return self._flops(step, train_llm="llm" in self.train)


@dataclasses.dataclass(frozen=True)
class Sft(_Adaptation):
    """Stage 2: connector and LLM tuned on an SFT set (config/stages.py) of instructions."""
    kind: ClassVar[str] = "sft"
    version: ClassVar[int] = ADAPT_VERSION
    seed: int
    examples: int
    batch_size: int
    text_len: int
    optim: dict
    set: dict  # stages.SftSet.spec(): which examples are kept, and blind tuning

    def run(self, step: Step, out: Path, locate: Locate) -> dict:
        return run_sft(step, out, locate)

    def flops(self, step: Step) -> float:
        # Blind tuning: a pass without images first.
        return self._flops(step, train_llm=True, passes=2 if self.set["blind"] else 1)


def run_align(step, out: Path, locate: Locate, mesh=None) -> dict:
    """Stage 1: the connector alone learns to turn image features into caption-predicting tokens."""
    f: Align = step.unit
    tok = tokenizer_of(step, locate)
    feat_dir = locate(step.input("features"))
    feats = load_features(feat_dir, "align")
    examples = json.loads((feat_dir / "align.json").read_text())[: f.examples]
    tokens, mask = encode_examples(examples, tok, f.text_len)
    data = _batches(tokens, mask, feats, [e["row"] for e in examples], f)
    model = build_mllm(step.input("pretrain"), locate, tok, feats.shape[-1], f.seed)
    rules = align_rules(f.train)
    loss_fn = MllmLoss(train_llm=rules is SFT_RULES, max_targets=answer_capacity(data))
    result = loop.run(model, loss_fn, data,
                      loop.TrainSettings(steps=len(data), optim_cfg=as_config(f.optim), freeze_rules=rules,
                                         ckpt_every=100, desc="align", metadata={"kind": "align"}),
                      mesh=mesh, workdir=out / "work")
    if rules is SFT_RULES:  # stage 2 starts from the LLM stage 1 tuned, not the pre-trained one
        save_module(model, out / "mllm", {"kind": "mllm"})
    else:
        save_module(model.connector, out / "connector", {"kind": "connector"})
    out_result = {"train": result.to_dict(), "examples": len(examples), "flops": result.flops}
    if (feat_dir / "kinds.json").exists():  # the connector hop (H2)
        records = json.loads((feat_dir / "kinds.json").read_text())
        out_result["naming"] = signal.naming_hop(model, tok, world_of(step.input("features").unit.world),
                                                 load_features(feat_dir, "kinds"), records,
                                                 prompt=examples[0]["prompt"], text_len=f.text_len)
    return out_result


def blind_pass(model, loss_fn, withheld: multimodal.ExampleBatches, optim_cfg, out: Path, mesh=None) -> dict:
    """Blind tuning's first pass (stage 2 with every image withheld), trained into ``model`` in
    place. A pass that finished before an interruption is restored, not run again: its result
    file, written last, marks it complete."""
    done = out / "result.json"
    if done.exists():
        restore_module(model, out / "mllm", {"kind": "mllm"})
        return read_result(out)
    train = loop.run(model, loss_fn, withheld,
                     loop.TrainSettings(steps=len(withheld), optim_cfg=optim_cfg, freeze_rules=SFT_RULES,
                                        ckpt_every=100, desc="sft blind", metadata={"kind": "sft-blind"}),
                     mesh=mesh, workdir=out / "work")
    save_module(model, out / "mllm", {"kind": "mllm"})
    write_atomic(done, json.dumps(train.to_dict()).encode())
    return train.to_dict()


def run_sft(step, out: Path, locate: Locate, mesh=None) -> dict:
    """Stage 2: connector and LLM tuned on instructions, text-only and with images; with
    ``set.blind`` a first pass over the same examples with every image withheld."""
    f: Sft = step.unit
    sft_set = f.set
    tok = tokenizer_of(step, locate)
    feat_dir = locate(step.input("features"))
    feats = load_features(feat_dir, "sft")
    available = json.loads((feat_dir / "sft.json").read_text())[: f.examples]
    examples = select_sft(available, sft_set["keep"], f.seed)
    tokens, mask = encode_examples(examples, tok, f.text_len)
    rows = np.array([e["row"] for e in examples])
    model = load_mllm(step.input("pretrain"), locate(step.input("align")), locate, tok, feats.shape[-1])
    data = _batches(tokens, mask, feats, rows, f)
    withheld = _batches(tokens, mask, None, np.full(len(rows), -1), f) if sft_set["blind"] else None
    loss_fn = MllmLoss(train_llm=True, max_targets=answer_capacity(data, *filter(None, [withheld])))
    result = {"examples": len(examples), "available": len(available),
              "image_examples": int((rows >= 0).sum()),
              "by_label": {str(k): sum(e.get("label") == k for e in examples)
                           for k in ("perception", "reasoning", None)}}
    total_flops = 0.0
    if sft_set["blind"]:
        result["blind"] = blind_pass(model, loss_fn, withheld, as_config(f.optim), out / "blind", mesh)
        total_flops += result["blind"]["flops"]
    train = loop.run(model, loss_fn, data,
                     loop.TrainSettings(steps=len(data), optim_cfg=as_config(f.optim), freeze_rules=SFT_RULES,
                                        ckpt_every=100, desc="sft", metadata={"kind": "sft"}),
                     mesh=mesh, workdir=out / "work")
    save_module(model, out / "mllm", {"kind": "mllm"})
    return {**result, "train": train.to_dict(), "flops": total_flops + train.flops}
