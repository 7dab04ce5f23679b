"""Profiles: every setting a study needs besides its own grid, at paper scale or in miniature.

`paper` holds the paper's numbers (App. B.1); `tiny` keeps the same structure with sizes, step
counts and learning rates that train on a 2-core CPU in minutes. Tiny learning rates are higher
than the paper's because tiny models see a few hundred steps, not tens of thousands.
"""

from __future__ import annotations

import ml_collections

from visual_priors.config.mixtures import PAPER_SOURCES
from visual_priors.errors import BadValue

PROFILES = ("tiny", "paper")
# The vision models LSBS measures every LLM's alignment against (after PRH): ViT-L/16 trained on
# ImageNet-21k, DINOv2-giant and CLIP ViT-H/14 (LAION-2B), by their `imported_encoders` names.
ALIGNMENT_REFERENCES = ("vit_l_in21k", "dinov2", "clip_h")
# PRH's metrics (visual_priors.eval.alignment.METRICS), the table every LLM gets.
ALIGNMENT_METRICS = ("mutual_knn", "cycle_knn", "lcs_knn", "edit_distance_knn", "cka", "unbiased_cka",
                     "cknna", "svcca")


def _optim(lr, warmup_frac=None, warmup_steps=None, weight_decay=0.1, clip=1.0):
    c = ml_collections.ConfigDict()
    c.lr = lr
    c.warmup_frac = warmup_frac if warmup_frac is not None else 0.0
    c.warmup_steps = warmup_steps
    c.min_lr_ratio = 0.1
    c.b1, c.b2, c.eps = 0.9, 0.95, 1e-8
    c.weight_decay = weight_decay
    c.clip = clip
    return c


def get(profile: str) -> ml_collections.ConfigDict:
    if profile not in PROFILES:
        raise BadValue(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    tiny = profile == "tiny"
    cfg = ml_collections.ConfigDict()
    cfg.profile = profile
    cfg.seed = 42
    # Training seeds of every run (pre-training and adaptation), each a replicate of the run;
    # empty: `seed` alone. The encoder and the world keep `seed` and `world.seed`.
    cfg.seeds = ()

    cfg.world = ml_collections.ConfigDict(dict(seed=0, image_size=32 if tiny else 224))

    cfg.data = ml_collections.ConfigDict()
    cfg.data.vocab_size = 2048 if tiny else 32000
    # Characters the tokenizer is trained on, an equal share from each source.
    cfg.data.tokenizer_sample_chars = 3_000_000 if tiny else 100_000_000
    # Tokens tokenised per source (0: all of a real corpus): enough that no tiny run repeats data.
    cfg.data.shard_tokens = 1_500_000 if tiny else 0
    cfg.data.heldout_tokens = 20_000 if tiny else 2_000_000
    # The unit that is labelled and drawn: 1,024 tokens in the paper.
    cfg.data.segment_tokens = 256 if tiny else 1024
    # Segment labeller (visual_priors.data.labelling.get_labeller): name and options. Lexical
    # without `rules` reads real corpora with rules="real" and world text with the world rules.
    cfg.data.labeller = ml_collections.ConfigDict({"name": "lexical"})
    # Passes over a component's segments a run may make before the mixture counts as short.
    cfg.data.max_epochs = 2.0 if tiny else 1.0
    # Sources that category and grid mixtures draw from when they name no pool.
    cfg.data.pool = PAPER_SOURCES
    # A JSON file mapping source names to real corpora (what `data fetch-starter` writes);
    # empty: every source is the world's.
    cfg.data.corpora = ""
    # Processes that tokenise shards of a source in parallel (0: in the calling process).
    cfg.data.tokenize_workers = 0 if tiny else 16

    cfg.pretrain = ml_collections.ConfigDict()
    cfg.pretrain.seq_len = 128 if tiny else 2048
    cfg.pretrain.batch_size = 16 if tiny else 1024
    cfg.pretrain.optim = _optim(3e-3 if tiny else 3e-4, warmup_frac=0.07 if tiny else None,
                                warmup_steps=None if tiny else 1024)
    cfg.pretrain.ckpt_every = 200 if tiny else 1000
    cfg.pretrain.keep_every = 0 if tiny else 10000  # checkpoints kept for good besides the latest
    cfg.pretrain.log_every = 10 if tiny else 50
    # Microbatches per optimizer step: the global batch stays batch_size sequences.
    cfg.pretrain.grad_accum = 1
    # Compute dtype, master-weight dtype, rematerialisation and layer scan (see model/llm.py).
    cfg.pretrain.model = ml_collections.ConfigDict(dict(
        dtype="float32" if tiny else "bfloat16", param_dtype="float32",
        remat="none" if tiny else "full", scan_layers=not tiny))

    # Vision encoders the runs use, by name: a local objective trained on world images
    # (contrastive, mae, supervised: config/stages.py) or a key of `imported_encoders`.
    cfg.encoders = ("supervised",) if tiny else ("contrastive",)
    # Public checkpoints, by the name `encoders` uses: {"path": Hugging Face directory or
    # torchvision .pth file, "arch": "" for Hugging Face (detected) or a CNN arch}.
    # Paper: e.g. --set imported_encoders.metaclip.path=/ckpt/metaclip-b16-fullcc2.5b
    # --set encoders="('metaclip',)".
    cfg.imported_encoders = ml_collections.ConfigDict()
    # The alignment references besides dinov2: e.g. google/vit-large-patch16-224-in21k and
    # laion/CLIP-ViT-H-14-laion2B-s32B-b79K.
    if not tiny:
        for name in ("metaclip", "dinov2", "mae_h", "vit_l_in21k", "clip_h"):
            cfg.imported_encoders[name] = ml_collections.ConfigDict({"path": "", "arch": ""})

    # Training of the local encoders (every objective) and the kind probe that checks them.
    cfg.encoder = ml_collections.ConfigDict()
    # Tiny: a small convolutional network (vision.vit_config("conv")): patch ViTs of this size
    # do not learn the world's kinds from a few hundred steps at 32 px.
    cfg.encoder.vit = "conv" if tiny else "small"
    cfg.encoder.steps = 600 if tiny else 20000
    cfg.encoder.batch_size = 64 if tiny else 1024
    cfg.encoder.text_len = 24
    cfg.encoder.optim = _optim(2e-3 if tiny else 1e-3, warmup_frac=0.05, weight_decay=0.05)
    cfg.encoder.probe = ml_collections.ConfigDict(dict(train=1000 if tiny else 10000,
                                                       test=500 if tiny else 5000))

    # Frozen features: which layer (penultimate, as LLaVA) and how many visual tokens per image
    # (the encoder's patch grid resized bilinearly to a square grid: 24 x 24 in the paper).
    cfg.features = ml_collections.ConfigDict()
    # The penultimate layer, as LLaVA; the tiny encoder has one state only (no blocks).
    cfg.features.layer = -1 if tiny else -2
    cfg.features.tokens = 16 if tiny else 576
    cfg.features.dtype = "float32" if tiny else "float16"  # as cached on disk

    cfg.align = ml_collections.ConfigDict()
    cfg.align.examples = 3000 if tiny else 1_000_000
    cfg.align.batch_size = 8 if tiny else 512
    # What stage 1 trains. LLaVA trains the connector alone; a tiny LLM that has read a few
    # hundred thousand tokens has no in-context copying (it names a kind mentioned one sentence
    # earlier no better than chance), so a connector alone cannot make it name what it sees
    # (measured with perfect image features: 5.4% against 3.6% chance); tiny trains both.
    cfg.align.train = ("connector", "llm") if tiny else ("connector",)
    cfg.align.text_len = 80 if tiny else 256
    cfg.align.optim = _optim(5e-3 if tiny else 1e-3, warmup_frac=0.06, weight_decay=0.0)

    cfg.sft = ml_collections.ConfigDict()
    cfg.sft.examples = 10_000 if tiny else 3_500_000
    # Tiny models learn per update, not per example: with perfect image features, 5,385
    # perception examples in batches of 8 reach 83% where batches of 32 stay at chance.
    cfg.sft.batch_size = 8 if tiny else 512
    # Long enough for most questions asked about a scene's description (H4's training data).
    cfg.sft.text_len = 128 if tiny else 2048
    cfg.sft.optim = _optim(2e-3 if tiny else 4e-5, warmup_frac=0.03, weight_decay=0.0)
    # SFT sets the runs use (config/stages.py): "full", "perception50", "reasoning0", ...,
    # each optionally "+blind" (a first pass of stage 2 with the images withheld).
    cfg.sft_sets = ("full",)

    cfg.eval = ml_collections.ConfigDict()
    # Held-out world questions per benchmark family and per MLE size bin.
    cfg.eval.questions_per_benchmark = 60 if tiny else 500
    cfg.eval.mle_per_bin = 60 if tiny else 500
    cfg.eval.text_len = 96 if tiny else 512
    # The signal chain (visual_priors.eval.signal): held-out single-object images per kind that
    # the model names after stage 1 (H2), text fact questions per group of kinds asked of each
    # LLM (H3), and the length of a question asked about the scene's description (H4).
    cfg.eval.naming_per_kind = 10 if tiny else 50
    cfg.eval.knowledge_questions = 200 if tiny else 1000
    cfg.eval.described_text_len = 160 if tiny else 768
    cfg.eval.perplexity_windows = 32 if tiny else 1000
    # Greedy free-form answers (KV cache) parsed back to an option, beside likelihood scoring;
    # 0 turns generation off.
    cfg.eval.answer_tokens = 8 if tiny else 64
    # Real benchmark files, name -> local path (`visual-priors benchmarks` lists the names):
    # scored beside the world's families, and in their place once all four categories are given.
    cfg.eval.benchmarks = ml_collections.ConfigDict()
    # Language ability of each pre-trained LLM: perplexity on WikiText- and LAMBADA-like world
    # text and zero-shot multiple choice on world tasks, plus every lm-eval task given a path
    # (piqa, hellaswag, winogrande, arc_easy, arc_challenge, copa, sciq, openbookqa, boolq).
    cfg.eval.language = ml_collections.ConfigDict(dict(
        tasks=("wikitext", "lambada", "world_facts", "world_physical", "world_continuation",
               "world_yesno"),
        n_per_task=100 if tiny else 1000, seq_len=128 if tiny else 2048, paths={}))
    # Representational alignment of each pre-trained LLM with reference vision encoders (PRH's
    # metrics, LSBS's App. B.2): on `pairs` held-out world image-caption pairs (window `seed` of
    # the test split), the best layer-pair `metric` at `topk` (LSBS: mutual k-NN, k = 20)
    # averaged over `encoders`, plus every metric of `table_metrics` at `table_topk` (PRH's
    # k = 10). Features are clamped at the `q`-quantile of |values| (`exact`: over the whole
    # tensor); captions are cut to `text_len` tokens. The paper's references are imported
    # checkpoints; tiny measures against the local contrastive encoder (CLIP's stand-in) that
    # the studies train anyway, and the paper's studies in miniature against the stand-ins of all
    # three. () turns it off.
    # `colour`: PRH's colour probe (Fig. 8, visual_priors.eval.colour) of the same LLM in the
    # same step: colour-word sentence features and pixel-pair co-occurrence in `n_images` world
    # scenes (`n_pairs` pairs, an RGB grid of `grid_levels` per channel), each embedded by metric
    # MDS (best of `mds_inits` starts) and aligned to CIELAB, against `n_permutations` shuffled
    # assignments; `seed` fixes pairs, starts and permutations. The paper profile is PRH's
    # (300,000 pairs, 1,000 starts); tiny costs ~0.3-1.6 s per LLM on a 2-core CPU, plus ~1 s
    # once per world and worker for the vision half. enabled=False leaves the step as it was
    # without it (the same identity).
    cfg.eval.alignment = ml_collections.ConfigDict(dict(
        encoders=("supervised",) if tiny else ALIGNMENT_REFERENCES, pairs=256 if tiny else 1024,
        metric="mutual_knn", topk=20, q=0.95, exact=True, table_metrics=ALIGNMENT_METRICS, table_topk=10,
        text_len=64 if tiny else 256,
        colour=ml_collections.ConfigDict(dict(
            enabled=True, n_images=64 if tiny else 500, n_pairs=50_000 if tiny else 300_000,
            grid_levels=6, mds_inits=8 if tiny else 1000, n_permutations=200 if tiny else 1000,
            seed=0))))
    # Reasoning traces on Knowledge and Vision-Centric questions, judged by the world's rules, or
    # by an LLM over an OpenAI-compatible endpoint when `url` and `model` are set.
    cfg.eval.judge = ml_collections.ConfigDict(dict(
        questions_per_benchmark=4 if tiny else 100, max_tokens=24 if tiny else 256, url="", model=""))

    cfg.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
    cfg.rules = [("batch", ("data", "fsdp")), ("embed", "fsdp"), ("mlp", "tensor"),
                 ("heads", "tensor"), ("kv", "tensor"), ("vocab", "tensor"), ("length", None),
                 ("layers", None)]
    return cfg
