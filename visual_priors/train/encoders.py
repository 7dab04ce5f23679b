"""Train a small local vision encoder on world images with one of three objectives.

``contrastive`` (image-caption CLIP: the stand-in for MetaCLIP), ``mae`` (masked autoencoding:
MAE) or ``supervised`` (kind classification: a supervised backbone). All three go through the one
training loop, checkpoint and resume in their work directory, and are scored by a linear probe of
kind on held-out scenes, so each shows it learned something about what it sees.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from visual_priors.data.batches import ArrayBatches
from visual_priors.eval.probe import kind_images, kind_probe
from visual_priors.model import vision, vision_objectives as objectives
from visual_priors.world.kinds import COLOUR_NAMES
from visual_priors.train import loop

# Objective knobs a `fields` mapping may leave out.
DEFAULTS = {
    "vit": "tiny",             # vision.vit_config name; image_size always follows the world
    "max_images": 8192,        # training images: min(steps * batch_size, max_images)
    "ckpt_every": 200,
    "mask_ratio": 0.75,        # mae
    "decoder_width": 64,       # mae
    "decoder_depth": 2,        # mae
    # Kind images the probe fits on (train split) and is scored on (test split): 40 and 20
    # per kind with 28 kinds. The suite's fields carry cfg.encoder.probe here.
    "probe": {"train": 1120, "test": 560},
}
# Stream id that keeps MAE mask seeds apart from any other use of the run seed.
_MASK_STREAM = 0x4D41


def caption_arrays(world, tok, split: str, start: int, count: int, text_len: int):
    """Images [n, S, S, 3] uint8, caption ids [n, text_len] padded with tok.pad_id, and masks
    [n, text_len] float32 (1 = real token) for world caption pairs start..start + count."""
    images, tokens, masks = [], [], []
    for i in range(start, start + count):
        image, caption = world.caption_pair(split, i)
        ids = tok.encode(caption)[:text_len]
        row = np.full(text_len, tok.pad_id, np.int32)
        row[: len(ids)] = ids
        images.append(image)
        tokens.append(row)
        masks.append((np.arange(text_len) < len(ids)).astype(np.float32))
    return np.stack(images), np.stack(tokens), np.stack(masks)


class MaskSeeds:
    """Adds per-row MAE mask seeds to every batch, drawn from (seed, batch position): the masks
    are fixed by the data position, which the loop checkpoints, so resumption masks alike."""

    def __init__(self, inner: ArrayBatches, seed: int):
        self.inner, self.seed = inner, int(seed)

    def seeds(self, position: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, _MASK_STREAM, int(position)))
        seeds = rng.integers(0, 2**31 - 1, size=self.inner.batch_size, dtype=np.int32)
        return seeds[self.inner.local_rows]  # this process's rows of the global batch

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        position = self.inner.position
        return {**next(self.inner), "mask_seed": self.seeds(position)}

    def get_state(self) -> dict:
        return self.inner.get_state()

    def set_state(self, state: dict) -> None:
        self.inner.set_state(state)


def _get(fields, key):
    value = fields.get(key, None)
    return DEFAULTS[key] if value is None else value


def encoder_vit_config(world, fields) -> ml_collections.ConfigDict:
    cfg = vision.vit_config(_get(fields, "vit"))
    cfg.image_size = world.image_size
    return cfg


def train_local_encoder(objective: str, world, fields, workdir: str | Path, *, tokenizer=None,
                        mesh=None, progress: bool = True) -> tuple[vision.ViT, dict]:
    """Train a ViT on the world's train split with `objective`; return it and a JSON-able result.

    fields: steps, batch_size, seed, optim (an optimizer config as cfg.encoder.optim), text_len
    (contrastive, which also needs `tokenizer`) and optionally the DEFAULTS keys; other keys
    are ignored. Checkpoints go to `workdir` every ckpt_every steps and on SIGTERM; a rerun
    resumes from the latest. The result holds the training summary, the kind probe,
    feature_tokens/feature_dim and, for contrastive, held-out caption retrieval.

    "contrastive" is the suite's original encoder step, bit for bit: the same caption pairs,
    CLIPModel, batches and loop settings.
    """
    if objective not in objectives.OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; valid: {', '.join(objectives.OBJECTIVES)}")
    if objective == "contrastive" and tokenizer is None:
        raise ValueError("the contrastive objective needs a tokenizer for its captions")
    steps, batch_size, seed = int(fields["steps"]), int(fields["batch_size"]), int(fields["seed"])
    optim_cfg = fields["optim"]
    if not isinstance(optim_cfg, ml_collections.ConfigDict):
        optim_cfg = ml_collections.ConfigDict(dict(optim_cfg))
    vcfg = encoder_vit_config(world, fields)
    n_images = min(steps * batch_size, int(_get(fields, "max_images")))
    rows = dict(process_index=jax.process_index(), process_count=jax.process_count())

    if objective == "contrastive":
        images, tokens, masks = caption_arrays(world, tokenizer, "train", 0, n_images, fields["text_len"])
        model = vision.CLIPModel(vcfg, vocab_size=tokenizer.vocab_size, rngs=nnx.Rngs(seed))
        data = ArrayBatches({"images": images, "tokens": tokens, "mask": masks}, batch_size, seed, **rows)
        kind = "clip"  # as the suite's encoder checkpoints have always been labelled
    elif objective == "mae":
        images = np.stack([world.render(world.scene("train", i)) for i in range(n_images)])
        model = objectives.MAEModel(vcfg, rngs=nnx.Rngs(seed), mask_ratio=float(_get(fields, "mask_ratio")),
                                    decoder_width=int(_get(fields, "decoder_width")),
                                    decoder_depth=int(_get(fields, "decoder_depth")))
        data = MaskSeeds(ArrayBatches({"images": images}, batch_size, seed, **rows), seed)
        kind = "mae"
    else:
        images, labels, colours = kind_images(world, "train", 0, n_images, colours=True)
        model = objectives.KindClassifier(vcfg, len(world.kinds), rngs=nnx.Rngs(seed),
                                          n_colours=len(COLOUR_NAMES))
        data = ArrayBatches({"images": images, "labels": labels, "colours": colours}, batch_size, seed, **rows)
        kind = "supervised"

    settings = loop.TrainSettings(steps=steps, optim_cfg=optim_cfg, ckpt_every=int(_get(fields, "ckpt_every")),
                                  desc=f"encoder ({objective})", metadata={"kind": kind}, progress=progress)
    train = loop.run(model, objectives.LOSSES[objective], data, settings, mesh=mesh, workdir=workdir)
    probe = _get(fields, "probe")
    result = {"objective": objective, "train": train.to_dict(),
              "probe": kind_probe(model.vit, world, n_train=int(probe["train"]), n_test=int(probe["test"])),
              "feature_tokens": (vcfg.image_size // vcfg.patch_size) ** 2, "feature_dim": vcfg.width}
    if objective == "contrastive":
        result["retrieval_top1_of_100"] = _retrieval(model, world, tokenizer, fields["text_len"])
    return model.vit, result


def _retrieval(model: vision.CLIPModel, world, tok, text_len: int) -> float:
    """Held-out retrieval: how often a test image picks its own caption among 100."""
    images, tokens, masks = caption_arrays(world, tok, "test", 0, 100, text_len)
    img = model.encode_image(jnp.asarray(images))
    txt = model.encode_text(jnp.asarray(tokens), jnp.asarray(masks))
    sims = np.asarray(img @ txt.T)
    return float(np.mean(np.argmax(sims, axis=1) == np.arange(len(sims))))
