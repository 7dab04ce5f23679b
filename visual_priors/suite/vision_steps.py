"""Vision steps: make a frozen encoder (train one on the world or import a public checkpoint)
and encode, once, every image the multimodal stages and the evaluation will read."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from visual_priors.config import stages
from visual_priors.errors import BadValue, read_json
from visual_priors.eval import judge, probe as probe_lib
from visual_priors.model import encoders, vision, visual_tokens
from visual_priors.suite.stage import Stage, Step
from visual_priors.suite.step_io import Locate, read_result, tokenizer_of, world_of
from visual_priors.train import encoders as train_encoders, flops
from visual_priors.world import BENCHMARK_CATEGORY, BENCHMARKS, SIZE_BINS
from visual_priors.world.describe import describe

ALIGN_PROMPT = "Describe the image."
# Stage-1 pairs are drawn after the local encoders' own training scenes.
ALIGN_OFFSET = 100_000
ENCODE_BATCH = 256


# Encoder 2: three local objectives or an imported checkpoint, saved as a bare frozen encoder;
# 3: the signal chain's five probes.
ENCODER_VERSION = 3


@dataclasses.dataclass(frozen=True)
class Encoder(Stage):
    """A ViT trained on the world's train split with one of the local objectives, saved frozen,
    with how well linear probes read kinds and scene facts from it."""
    kind: ClassVar[str] = "encoder"
    version: ClassVar[int] = ENCODER_VERSION
    world: dict
    seed: int
    objective: str  # config.stages.LOCAL_ENCODERS
    vit: str  # the architecture (model/vision.py's VIT_NAMES)
    steps: int
    batch_size: int
    optim: dict
    probe: dict  # training and test images of the linear probes
    text_len: int | None = None  # contrastive only: its captions are tokenised

    def run(self, step: Step, out: Path, locate: Locate) -> dict:
        world = world_of(self.world)
        tok = tokenizer_of(step, locate) if self.objective == "contrastive" else None
        # Trains, then probes with self.probe's sizes.
        encoder, result = train_encoders.train_local_encoder(self.objective, world, step.fields, out / "work",
                                                             tokenizer=tok)
        encoders.save_frozen(encoder, out / "encoder", "vit", encoder.cfg, objective=self.objective)
        return _encoder_result(encoder, world, self.probe, result)

    def flops(self, step: Step) -> float:
        vit = vision.vit_config(self.vit)
        with vit.unlocked():
            vit.feature_layer = -1  # training runs every block
        # Forward plus backward: three forward passes' worth per image.
        return 3.0 * flops.vit_forward_flops(vit) * self.steps * self.batch_size


@dataclasses.dataclass(frozen=True)
class ImportedEncoder(Stage):
    """A public checkpoint imported into the frozen-encoder format, identified by its content
    (`checkpoint`: the imported_encoders entry with its name and fingerprint), then probed as a
    local one is."""
    kind: ClassVar[str] = "encoder"
    version: ClassVar[int] = ENCODER_VERSION
    world: dict
    checkpoint: dict
    probe: dict

    def identity(self) -> dict:
        return {"world": self.world, "import": self.checkpoint, "probe": self.probe}

    def run(self, step: Step, out: Path, locate: Locate) -> dict:
        spec = self.checkpoint
        if not spec.get("path"):
            raise BadValue("an imported encoder of this study has no checkpoint path; set "
                           "imported_encoders.<name>.path to its directory or file")
        now = encoders.fingerprint(spec["path"])
        if now != spec["fingerprint"]:
            raise BadValue(f"encoder checkpoint {spec['path']} changed since the study was planned "
                           f"(fingerprint {now}, planned {spec['fingerprint']}); plan the study again")
        meta = encoders.import_encoder(spec, out / "encoder")
        encoder = encoders.load_frozen(out / "encoder")
        world = world_of(self.world)
        result = {"imported": spec["path"], "family": meta.get("family") or meta.get("arch"),
                  "probe": probe_lib.kind_probe(encoder, world, n_train=self.probe["train"],
                                                n_test=self.probe["test"])}
        return _encoder_result(encoder, world, self.probe, result)


def _encoder_result(encoder, world, probe_sizes: dict, result: dict) -> dict:
    probe = result.pop("probe")
    check = visual_tokens.check_encoder(encoder, world.image_size, encoder.num_tokens(world.image_size))
    # The signal chain's first hop (H1): what the questions ask about, read linearly from the
    # frozen tokens of held-out images.
    probes = probe_lib.scene_probes(encoder, world, n_train=probe_sizes["train"], n_test=probe_sizes["test"])
    return {**result, "probe": probe, "probe_accuracy": probe["accuracy"], "probes": probes,
            "patch_tokens": check.patch_tokens, "feature_dim": check.width,
            "input_size": check.input_size,
            "forward_flops_per_image": encoder_forward_flops(encoder, world.image_size)}


def finished_encoders(root: str | Path) -> list[dict]:
    """Every encoder step finished under a run root: its name, the encoder (objective or imported
    family), probe accuracy, patch tokens and width; None where its result lacks a field."""
    rows = []
    for done in sorted(Path(root).glob("encoder-*/result.json")):
        out = done.parent
        result = read_result(out)
        fields = read_json(out / "spec.json", "step spec")["fields"]
        rows.append({"step": out.name,
                     "encoder": fields.get("objective") or result.get("family") or fields.get("kind", "?"),
                     "probe_accuracy": result.get("probe_accuracy"),
                     # Older results name only the training's feature_tokens.
                     "tokens": result.get("patch_tokens", result.get("feature_tokens")),
                     "width": result.get("feature_dim")})
    return rows


def encoder_forward_flops(encoder, image_size: int) -> float:
    """One image's forward FLOPs: the ViT formula, or XLA's count for any other module."""
    if hasattr(encoder, "blocks"):
        return flops.vit_forward_flops(encoder.cfg)
    images = jnp.zeros((1, image_size, image_size, 3), jnp.uint8)
    return flops.compiled_forward_flops(lambda x: encoder(x)["tokens"], images)


class FeatureWriter:
    """Encodes images in batches into a memory-mapped .npy of [n, tokens, width]."""

    def __init__(self, encoder, n_tokens: int, dtype: str):
        self.encoder, self.n_tokens, self.dtype = encoder, n_tokens, np.dtype(dtype)
        self._encode = nnx.jit(lambda m, x: visual_tokens.visual_tokens(m, x, n_tokens))
        self.images = 0

    def encode(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self._encode(self.encoder, jnp.asarray(images)), np.float32)

    def write(self, path: Path, images: list[np.ndarray], width: int, desc: str) -> None:
        feats = np.lib.format.open_memmap(path, mode="w+", dtype=self.dtype,
                                          shape=(len(images), self.n_tokens, width))
        for i in tqdm(range(0, len(images), ENCODE_BATCH), desc=desc, leave=False):
            feats[i:i + ENCODE_BATCH] = self.encode(np.stack(images[i:i + ENCODE_BATCH])).astype(self.dtype)
        feats.flush()
        del feats
        self.images += len(images)


@dataclasses.dataclass(frozen=True)
class Features(Stage):
    """Every image the runs will use, encoded once: the encoder is frozen, so features are
    shared by every LLM, stage and evaluation that uses this encoder."""
    kind: ClassVar[str] = "features"
    # 3: chosen layer resized to a fixed token count; 4: sixteen world families; 5: the signal
    # chain's naming images, descriptions and held-out facts.
    version: ClassVar[int] = 5
    world: dict
    layer: int
    tokens: int
    dtype: str
    align: int  # stage-1 pairs
    sft: int  # stage-2 examples
    # Only what decides which images are encoded: scoring settings leave features alone.
    eval: dict

    def run(self, step: Step, out: Path, locate: Locate) -> dict:
        return run_features(step, out, locate)


@dataclasses.dataclass(frozen=True)
class RealFeatures(Stage):
    """The images of the real benchmark files a study names, encoded: a step of their own, so
    adding files retrains nothing."""
    kind: ClassVar[str] = "real_features"
    image_size: int
    layer: int
    tokens: int
    dtype: str
    benchmarks: dict  # name -> {"path", "fingerprint"}

    def run(self, step: Step, out: Path, locate: Locate) -> dict:
        return run_real_features(step, out, locate)


def run_features(step, out: Path, locate: Locate) -> dict:
    u = step.unit
    world = world_of(u.world)
    encoder = encoders.load_frozen(locate(step.input("encoder")) / "encoder", u.layer)
    check = visual_tokens.check_encoder(encoder, world.image_size, u.tokens)
    writer = FeatureWriter(encoder, u.tokens, u.dtype)

    # Stage 1: image-caption pairs.
    pairs = [world.caption_pair("train", ALIGN_OFFSET + i)
             for i in tqdm(range(u.align), desc="align images", leave=False)]
    writer.write(out / "align.npy", [p[0] for p in pairs], check.width, "encode align")
    (out / "align.json").write_text(json.dumps(
        [{"prompt": ALIGN_PROMPT, "answer": caption, "row": i} for i, (_, caption) in enumerate(pairs)]))

    # Stage 2: instruction examples; text-only ones get feature row -1. Each image example
    # carries its perception / reasoning label for the SFT-data ablation.
    images, sft = [], []
    for i in tqdm(range(u.sft), desc="sft examples", leave=False):
        ex = world.instruction("train", i)
        row = -1
        if ex.image is not None:
            row = len(images)
            images.append(ex.image)
        sft.append({"prompt": ex.prompt, "answer": ex.answer, "row": row, "source": ex.source,
                    "label": stages.sft_label(BENCHMARK_CATEGORY.get(ex.source), ex.source, row >= 0)})
    writer.write(out / "sft.npy", images, check.width, "encode sft")
    (out / "sft.json").write_text(json.dumps(sft))

    # Evaluation: held-out scenes of every benchmark and the three MLE size bins.
    ev = u.eval
    questions = []
    for benches in BENCHMARKS.values():
        for bench in benches:
            questions += [world.question(bench, "test", i) for i in range(ev["questions_per_benchmark"])]
    for size_bin in SIZE_BINS:
        questions += [world.mle_question(size_bin, "test", i) for i in range(ev["mle_per_bin"])]
    writer.write(out / "eval.npy", [q.image for q in questions], check.width, "encode eval")
    heldout = {k.index for k in world.heldout_kinds}
    (out / "eval.json").write_text(json.dumps([
        {"question": q.question, "options": list(q.options), "answer": q.answer,
         "benchmark": q.benchmark, "category": q.category, "size_bin": q.size_bin,
         # What the rule-based judge checks reasoning traces against.
         "evidence": judge.world_evidence(world, q),
         # The scene in words, for the perfect-perception hop (H4).
         "description": describe(q.scene, q.views),
         # Whether the answer needs a fact that only pre-training text states.
         "heldout_facts": bool(q.fact_kinds) and set(q.fact_kinds) <= heldout} for q in questions]))

    # The connector hop (H2): held-out single-object images of every kind, with their captions.
    n_naming = ev.get("naming_per_kind", 0) * len(world.kinds)
    scenes = [world.kind_image("test", i, with_scene=True) for i in range(n_naming)]
    writer.write(out / "kinds.npy", [t[0] for t in scenes], check.width, "encode kinds")
    (out / "kinds.json").write_text(json.dumps([{"caption": world.caption(t[2]), "kind": t[1]} for t in scenes]))
    per_image = encoder_forward_flops(encoder, world.image_size)
    return {"align": len(pairs), "sft": len(sft), "sft_images": len(images), "eval": len(questions),
            "kinds": n_naming,
            "check": check.describe(), "tokens": check.visual_tokens, "feature_dim": check.width,
            "patch_tokens": check.patch_tokens,
            # The frozen encoder runs forward only, once per image, here.
            "encoder_flops": per_image * writer.images}


def run_real_features(step, out: Path, locate: Locate) -> dict:
    """Encode the images of the real benchmark files a study names (resized to the world's
    image size, the size the encoder's own preprocessing starts from) into real.npy, their
    questions into real.json. Refuses files changed since the study was planned."""
    from PIL import Image

    from visual_priors.eval import real
    items, images = [], []
    u = step.unit
    image_size = u.image_size
    encoder = encoders.load_frozen(locate(step.input("encoder")) / "encoder", u.layer)
    check = visual_tokens.check_encoder(encoder, image_size, u.tokens)
    writer = FeatureWriter(encoder, u.tokens, u.dtype)
    for name, spec in sorted(u.benchmarks.items()):
        root = Path(spec["path"])
        if real.fingerprint(root) != spec["fingerprint"]:
            raise BadValue(f"benchmark {name}: files under {root} changed since the study was planned; "
                           f"plan it again")
        for item in real.get(name).load(root):
            row = -1
            if item.image is not None:
                row = len(images)
                im = Image.fromarray(real.decode_image(item.image)).resize((image_size, image_size),
                                                                          Image.BICUBIC)
                images.append(np.asarray(im))
            items.append({**real.item_record(item), "row": row})
    writer.write(out / "real.npy", images, check.width, "encode real benchmarks")
    (out / "real.json").write_text(json.dumps(items))
    counts = {name: sum(it["benchmark"] == name for it in items) for name in u.benchmarks}
    return {"items": counts, "images": len(images), "check": check.describe(),
            "encoder_flops": encoder_forward_flops(encoder, image_size) * writer.images}


def load_features(feat_dir: Path, name: str) -> np.ndarray:
    """Cached features of an image set ("align", "sft", "eval"), memory-mapped."""
    return np.load(feat_dir / f"{name}.npy", mmap_mode="r")
