"""What each kind of step does: tokenizer, shards, pretrain, encoder, features, align, sft, evaluate.

Every function receives its step, the directory to write into and a way to find the outputs of
its inputs, and returns a JSON-able result that the executor stores as `result.json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from visual_priors.config import scales
from visual_priors.data import labelling, multimodal, pipeline, segments as segments_lib
from visual_priors.data import sources as sources_lib, tokenizer as tokenizer_lib
from visual_priors.data.labelling import report as labelling_report
from visual_priors.data.batches import ArrayBatches
from visual_priors.eval import mle_bench, vqa
from visual_priors.eval.language import perplexity
from visual_priors.model import connector as connector_lib, llm as llm_lib, mllm as mllm_lib, vision
from visual_priors.model.convert import hf_llama
from visual_priors.model.scoring import masked_nll
from visual_priors.parallel import mesh as mesh_lib
from visual_priors.train import flops, loop
from visual_priors.model.params_io import load_params, save_params
from visual_priors.world import BENCHMARKS, SIZE_BINS, World

Locate = Callable[[object], Path]  # step -> its finished output directory
ALIGN_PROMPT = "Describe the image."


def _world(fields) -> World:
    return World(seed=fields["world"]["seed"], image_size=fields["world"]["image_size"])


def _tokenizer(step, locate: Locate):
    out = locate(step.input("tokenizer"))
    return tokenizer_lib.load_tokenizer(out / json.loads((out / "result.json").read_text())["path"])


def _cfg(d: dict) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(d)


def _save(module, path: Path, metadata: dict) -> None:
    save_params(path, nnx.state(module, nnx.Param).to_pure_dict(), metadata)


def _restore(module, path: Path, expect: dict):
    """Fill `module`'s parameters from a checkpoint written by `_save`, checking its metadata."""
    state = nnx.state(module, nnx.Param)
    nnx.replace_by_pure_dict(state, load_params(path, state.to_pure_dict(), expect=expect))
    nnx.update(module, state)
    return module


# ---------------------------------------------------------------- data


def _resolve(name: str, corpus: dict | None):
    """The source a step names: the world's, or the real corpus its spec describes, which must
    still hold the content the study was planned on."""
    if corpus is None:
        return sources_lib.get_source(name)
    spec = {k: v for k, v in corpus.items() if k != "fingerprint"}
    source = sources_lib.resolve_source(name, {name: spec})
    if source.fingerprint != corpus["fingerprint"]:
        raise ValueError(f"corpus of source {name!r} changed since the study was planned "
                         f"(content hash {source.fingerprint}, planned {corpus['fingerprint']}); "
                         "plan the study again")
    return source


def run_tokenizer(step, out: Path, locate: Locate) -> dict:
    f = step.fields
    corpora = f.get("corpora", {})
    sources = [_resolve(name, corpora.get(name)) for name in f["sources"]]
    tok = tokenizer_lib.build_tokenizer(sources, _world(f), f["vocab_size"], out,
                                        sample_chars=f["sample_chars"])
    return {"path": Path(tok.path).name, "vocab_size": tok.vocab_size, "fingerprint": tok.fingerprint}


def run_shards(step, out: Path, locate: Locate) -> dict:
    """Tokenise a source's split into labelled-to-be segments (ArrayRecord shards)."""
    f = step.fields
    source = _resolve(f["source"], f.get("corpus"))
    world = _world(f) if "world" in f else None
    segs = segments_lib.build_segments(
        source, world, _tokenizer(step, locate), out, split=f["split"],
        segment_tokens=f["segment_tokens"], n_tokens=f["tokens"] or None,
        workers=step.options.get("workers", 0))
    return {"path": str(segs.path.relative_to(out)), "tokens": segs.n_tokens, "segments": len(segs),
            "documents": segs.meta["n_documents"]}


def _segments(shard_step, locate: Locate) -> segments_lib.SegmentSet:
    out = locate(shard_step)
    return segments_lib.SegmentSet(out / json.loads((out / "result.json").read_text())["path"])


def run_labels(step, out: Path, locate: Locate) -> dict:
    """Label every segment of a shards step; on world text also score the labels against the
    world's truth."""
    tok = _tokenizer(step, locate)
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
        bits[shards.fields["source"]] = np.load(out / json.loads((out / "result.json").read_text())["path"])
    return pipeline.SegmentPool(segs, bits)


# ---------------------------------------------------------------- language model


def llm_config(scale: str, tok) -> ml_collections.ConfigDict:
    cfg = scales.get(scale)
    if cfg.vocab_size != tok.vocab_size:
        raise ValueError(f"scale {scale} expects a vocabulary of {cfg.vocab_size} but the tokenizer has "
                         f"{tok.vocab_size}; use a profile whose data.vocab_size matches the scale")
    return cfg


def run_pretrain(step, out: Path, locate: Locate, mesh=None) -> dict:
    f = step.fields
    tok = _tokenizer(step, locate)
    cfg = llm_config(f["scale"], tok)
    cfg.update(f.get("model", {}))
    mesh = mesh or mesh_lib.make_mesh(f["mesh"])
    model = mesh_lib.create_sharded(lambda: llm_lib.Llama(cfg, rngs=nnx.Rngs(f["seed"])), mesh, f["rules"])
    data = pipeline.PretrainData(_pool(step, locate), f["mixture"], seq_len=f["seq_len"],
                                 batch_size=f["batch_size"], seed=f["seed"], total_tokens=f["tokens"],
                                 max_epochs=f["max_epochs"], process_index=jax.process_index(),
                                 process_count=jax.process_count())
    steps = max(1, f["tokens"] // (f["seq_len"] * f["batch_size"]))

    def loss_fn(model, batch):
        tokens = batch["tokens"]
        loss, _ = masked_nll(model, tokens, jnp.ones_like(tokens), segment_ids=batch["segment_ids"],
                             positions=batch["positions"])
        # The budget counts every input position, boundary targets included.
        return loss, {"tokens": jnp.asarray(tokens.shape[0] * (tokens.shape[1] - 1))}

    result = loop.run(model, loss_fn, data, steps=steps, optim_cfg=_cfg(f["optim"]),
                      mesh=mesh, rules=f["rules"], workdir=out / "work",
                      ckpt_every=f["ckpt_every"], keep_every=f.get("keep_every", 0),
                      log_every=f["log_every"], desc=f"pretrain {f['scale']}",
                      accum_steps=f.get("grad_accum", 1), metadata=_llm_metadata(f["scale"], cfg),
                      flops_per_token=flops.train_flops_per_token(cfg, f["seq_len"]))
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
    return _restore(llm_lib.Llama(cfg, rngs=nnx.Rngs(0)), pretrain_dir / "llm",
                    {"kind": "llm", "scale": scale, "vocab_size": cfg.vocab_size})


# ---------------------------------------------------------------- vision encoder


def encoder_config(fields) -> ml_collections.ConfigDict:
    cfg = vision.vit_config("tiny")
    cfg.image_size = fields["world"]["image_size"]
    return cfg


def _caption_arrays(world: World, tok, split: str, start: int, count: int, text_len: int):
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


def run_encoder(step, out: Path, locate: Locate, mesh=None) -> dict:
    """Train a small ViT with a contrastive image-caption objective (the stand-in for MetaCLIP)."""
    f = step.fields
    world, tok = _world(f), _tokenizer(step, locate)
    vcfg = encoder_config(f)
    n_pairs = min(f["steps"] * f["batch_size"], 8192)
    images, tokens, masks = _caption_arrays(world, tok, "train", 0, n_pairs, f["text_len"])
    model = vision.CLIPModel(vcfg, vocab_size=tok.vocab_size, rngs=nnx.Rngs(f["seed"]))
    data = ArrayBatches({"images": images, "tokens": tokens, "mask": masks}, f["batch_size"], f["seed"],
                        process_index=jax.process_index(), process_count=jax.process_count())

    def loss_fn(model, batch):
        loss = vision.clip_loss(model, batch["images"], batch["tokens"], batch["mask"])
        return loss, {"tokens": jnp.asarray(batch["images"].shape[0])}

    result = loop.run(model, loss_fn, data, steps=f["steps"], optim_cfg=_cfg(f["optim"]),
                      mesh=mesh, workdir=out / "work", ckpt_every=200, desc="encoder",
                      metadata={"kind": "clip"})
    _save(model, out / "clip", {"kind": "clip"})
    # Held-out retrieval: does each test image pick its own caption among 100?
    ti, tt, tm = _caption_arrays(world, tok, "test", 0, 100, f["text_len"])
    img = model.encode_image(jnp.asarray(ti))
    txt = model.encode_text(jnp.asarray(tt), jnp.asarray(tm))
    sims = np.asarray(img @ txt.T)
    retrieval = float(np.mean(np.argmax(sims, axis=1) == np.arange(len(sims))))
    return {"train": result.to_dict(), "retrieval_top1_of_100": retrieval,
            "feature_tokens": (vcfg.image_size // vcfg.patch_size) ** 2, "feature_dim": vcfg.width}


def load_encoder(encoder_dir: Path, fields, vocab_size: int) -> vision.CLIPModel:
    model = vision.CLIPModel(encoder_config(fields), vocab_size=vocab_size, rngs=nnx.Rngs(0))
    return _restore(model, encoder_dir / "clip", {"kind": "clip"})


# ---------------------------------------------------------------- frozen features


def run_features(step, out: Path, locate: Locate) -> dict:
    """Encode every image the runs will use once: the encoder is frozen, so features are shared."""
    f = step.fields
    enc_step = step.input("encoder")
    world = _world(enc_step.fields)
    tok = _tokenizer(enc_step, locate)
    clip = load_encoder(locate(enc_step), enc_step.fields, tok.vocab_size)
    encode = nnx.jit(lambda m, x: m.vit(x)["tokens"])

    def featurize(images: list[np.ndarray]) -> np.ndarray:
        chunks = [np.asarray(encode(clip, jnp.asarray(np.stack(images[i:i + 256]))))
                  for i in range(0, len(images), 256)]
        return np.concatenate(chunks).astype(np.float32)

    # Stage 1: image-caption pairs, drawn after the encoder's own training pairs.
    pairs = [world.caption_pair("train", 100_000 + i) for i in tqdm(range(f["align"]), desc="align images", leave=False)]
    np.save(out / "align.npy", featurize([p[0] for p in pairs]))
    (out / "align.json").write_text(json.dumps(
        [{"prompt": ALIGN_PROMPT, "answer": caption, "row": i} for i, (_, caption) in enumerate(pairs)]))

    # Stage 2: instruction examples; text-only ones get feature row -1.
    images, sft = [], []
    for i in tqdm(range(f["sft"]), desc="sft examples", leave=False):
        ex = world.instruction("train", i)
        row = -1
        if ex.image is not None:
            row = len(images)
            images.append(ex.image)
        sft.append({"prompt": ex.prompt, "answer": ex.answer, "row": row})
    np.save(out / "sft.npy", featurize(images))
    (out / "sft.json").write_text(json.dumps(sft))

    # Evaluation: held-out scenes of every benchmark and the three MLE size bins.
    ev = f["eval"]
    questions = []
    for category, benches in BENCHMARKS.items():
        for bench in benches:
            questions += [world.question(bench, "test", i) for i in range(ev["questions_per_benchmark"])]
    for size_bin in SIZE_BINS:
        questions += [world.mle_question(size_bin, "test", i) for i in range(ev["mle_per_bin"])]
    np.save(out / "eval.npy", featurize([q.image for q in questions]))
    (out / "eval.json").write_text(json.dumps([
        {"question": q.question, "options": list(q.options), "answer": q.answer,
         "benchmark": q.benchmark, "category": q.category, "size_bin": q.size_bin} for q in questions]))
    return {"align": len(pairs), "sft": len(sft), "sft_images": len(images), "eval": len(questions)}


# ---------------------------------------------------------------- multimodal stages


def build_mllm(pretrain_step, locate: Locate, tok, feature_dim: int, seed: int, *,
               load_pretrained: bool = True) -> mllm_lib.MLLM:
    """The pre-trained LLM (or a blank one to be overwritten) with a fresh connector."""
    scale = pretrain_step.fields["scale"]
    cfg = llm_config(scale, tok)
    llm = load_llm(locate(pretrain_step), scale, tok) if load_pretrained else llm_lib.Llama(cfg, rngs=nnx.Rngs(0))
    conn = connector_lib.Connector(feature_dim, cfg.d_model, rngs=nnx.Rngs(seed))
    return mllm_lib.MLLM(llm, conn)


def _mllm_loss(model, batch):
    loss, count = masked_nll(model, batch["tokens"], batch["mask"], batch.get("feats"))
    return loss, {"tokens": count}


def _example_batches(feat_dir: Path, stage: str, f: dict, tok) -> tuple[multimodal.ExampleBatches, np.ndarray, list]:
    """Encoded examples of a stage ("align" or "sft") with their cached image features."""
    feats = np.load(feat_dir / f"{stage}.npy")
    examples = json.loads((feat_dir / f"{stage}.json").read_text())[: f["examples"]]
    enc = [multimodal.encode_example(tok, e["prompt"], e["answer"], f["text_len"]) for e in examples]
    data = multimodal.ExampleBatches(np.stack([e[0] for e in enc]), np.stack([e[1] for e in enc]), feats,
                                     np.array([e["row"] for e in examples]), f["batch_size"], f["seed"])
    return data, feats, examples


def run_align(step, out: Path, locate: Locate, mesh=None) -> dict:
    """Stage 1: the connector alone learns to turn image features into caption-predicting tokens."""
    f = step.fields
    tok = _tokenizer(step, locate)
    data, feats, examples = _example_batches(locate(step.input("features")), "align", f, tok)
    model = build_mllm(step.input("pretrain"), locate, tok, feats.shape[-1], f["seed"])
    result = loop.run(model, _mllm_loss, data, steps=len(data), optim_cfg=_cfg(f["optim"]),
                      freeze_rules=[("connector/.*", True)], mesh=mesh, workdir=out / "work",
                      ckpt_every=100, desc="align", metadata={"kind": "align"})
    _save(model.connector, out / "connector", {"kind": "connector"})
    return {"train": result.to_dict(), "examples": len(examples)}


def load_mllm(pretrain_step, connector_dir: Path, locate: Locate, tok, feature_dim: int) -> mllm_lib.MLLM:
    model = build_mllm(pretrain_step, locate, tok, feature_dim, 0)
    _restore(model.connector, connector_dir, {"kind": "connector"})
    return model


def run_sft(step, out: Path, locate: Locate, mesh=None) -> dict:
    """Stage 2: connector and LLM tuned on instructions, text-only and with images."""
    f = step.fields
    tok = _tokenizer(step, locate)
    data, feats, examples = _example_batches(locate(step.input("features")), "sft", f, tok)
    model = load_mllm(step.input("pretrain"), locate(step.input("align")) / "connector", locate, tok,
                      feats.shape[-1])
    result = loop.run(model, _mllm_loss, data, steps=len(data), optim_cfg=_cfg(f["optim"]),
                      freeze_rules=[("connector/.*", True), ("llm/.*", True)], mesh=mesh,
                      workdir=out / "work", ckpt_every=100, desc="sft", metadata={"kind": "sft"})
    _save(model, out / "mllm", {"kind": "mllm"})
    return {"train": result.to_dict(), "examples": len(examples),
            "image_examples": int(sum(e["row"] >= 0 for e in examples))}


def _questions(feat_dir: Path):
    from types import SimpleNamespace
    return [SimpleNamespace(**q) for q in json.loads((feat_dir / "eval.json").read_text())]


def run_evaluate(step, out: Path, locate: Locate) -> dict:
    """Option scoring by likelihood on held-out questions, with and without the image."""
    f = step.fields
    tok = _tokenizer(step, locate)
    feat_dir = locate(step.input("features"))
    feats = np.load(feat_dir / "eval.npy")
    questions = _questions(feat_dir)
    pre_step = step.input("pretrain")
    # Every parameter comes from the SFT checkpoint, so the pre-trained LLM is not read first.
    model = _restore(build_mllm(pre_step, locate, tok, feats.shape[-1], 0, load_pretrained=False),
                     locate(step.input("sft")) / "mllm", {"kind": "mllm"})

    sums, _ = vqa.score_options(model, tok, questions, feats, text_len=f["text_len"])
    blind_sums, _ = vqa.score_options(model, tok, questions, None, text_len=f["text_len"])
    pred, blind_pred = sums.argmax(1), blind_sums.argmax(1)

    vqa_idx = [i for i, q in enumerate(questions) if q.category != "mle"]
    mle_idx = [i for i, q in enumerate(questions) if q.category == "mle"]
    vq = [questions[i] for i in vqa_idx]
    bench_acc = vqa.accuracy_by(vq, pred[vqa_idx], "benchmark")
    bench_cat = {q.benchmark: q.category for q in vq}
    summary = vqa.summarize(bench_acc, bench_cat)
    blind = vqa.summarize(vqa.accuracy_by(vq, blind_pred[vqa_idx], "benchmark"), bench_cat)
    mq = [questions[i] for i in mle_idx]
    mle_acc = vqa.accuracy_by(mq, pred[mle_idx], "size_bin")
    counts = {b: sum(q.size_bin == b for q in mq) for b in mle_acc}
    pre = json.loads((locate(pre_step) / "result.json").read_text())
    n_questions = {b: sum(q.benchmark == b for q in vq) for b in bench_acc}
    return {
        "scale": pre["scale"], "params": pre["params"], "tokens": pre["tokens"], "flops": pre["flops"],
        "benchmarks": bench_acc, "benchmark_category": bench_cat, "categories": summary["categories"],
        "overall": summary["overall"], "blind": blind["categories"], "blind_overall": blind["overall"],
        "chance": 1.0 / len(questions[0].options), "mle": mle_bench.summarize(mle_acc, counts),
        "perplexity": pre["perplexity_mean"], "final_loss": pre["train"]["final_loss"],
        "n_questions": n_questions,
    }


RUNNERS = {
    "tokenizer": run_tokenizer, "shards": run_shards, "labels": run_labels, "pretrain": run_pretrain, "encoder": run_encoder,
    "features": run_features, "align": run_align, "sft": run_sft, "evaluate": run_evaluate,
}
