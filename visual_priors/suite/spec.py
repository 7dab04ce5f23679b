"""A study's runs as a composition of stage units (`stage.Step`), content-hashed.

`expand` builds each run's steps from the config with one constructor per stage; steps with
equal identities are one step, so two runs (or two studies) that need the same tokenizer,
shard, encoder or pre-trained LLM share it. Outputs live at `<root>/<kind>-<hash>/` with the
step's spec beside them.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import ml_collections

from visual_priors.config import mixtures, stages as stages_lib
from visual_priors.config.studies import grids
from visual_priors.data import sources as sources_lib
from visual_priors.data.labelling import config_for_source
from visual_priors.errors import BadValue
from visual_priors.eval import alignment as alignment_lib
from visual_priors.model import encoders as encoders_lib
from visual_priors.suite.adapt_steps import Align, Sft
from visual_priors.suite.eval_steps import Alignment, Evaluate, Language
from visual_priors.suite.stage import Step, plain as _plain
from visual_priors.suite.steps import PRETRAIN_MODEL_OPTIONS, Labels, Perplexity, Pretrain, Shards, Tokenizer
from visual_priors.suite.vision_steps import Encoder, Features, ImportedEncoder, RealFeatures
from visual_priors.world import WORLD_VERSION


@dataclasses.dataclass(frozen=True)
class Run:
    name: str
    scale: str
    mixture: str
    tokens: int
    steps: dict[str, Step]  # kind -> the run's own step of that kind
    encoder: str = "contrastive"
    sft_set: str = "full"
    study: str = ""
    # What curves are fitted over: the text mixture, split by whatever else its grid varies.
    series: str = ""
    seed: int = 0
    # The run's name without its seed: replicates of one condition share it.
    condition: str = ""


def study_mixtures(cfg: ml_collections.ConfigDict) -> tuple[list[mixtures.Mixture], dict[str, dict]]:
    """Every grid's mixtures, validated (in grid order, each once), and the real corpora the
    config names ({} if none)."""
    corpora = sources_lib.load_corpora(cfg.data.corpora) if cfg.data.get("corpora") else {}
    known = sources_lib.known_sources(corpora)
    parsed = {}
    for grid in grids(cfg):
        for m in grid.mixtures:
            mix = mixtures.parse(m, known_sources=known, default_pool=cfg.data.get("pool"))
            parsed.setdefault(json.dumps(mix.spec, sort_keys=True), mix)
    return list(parsed.values()), corpora


def expand(cfg: ml_collections.ConfigDict) -> tuple[list[Run], list[Step]]:
    """The study's runs and all their distinct steps in dependency order."""
    # The generator's version is part of every world-derived identity: new world content must
    # not reuse tokenizers, shards or features made from the old one.
    world = {**_plain(cfg.world), "version": WORLD_VERSION}
    data = _TextData(cfg, world)
    study_grids = grids(cfg)
    encoders = list(dict.fromkeys(e for g in study_grids for e in g.encoders))
    stages_lib.validate_encoders(encoders, cfg.imported_encoders, require_paths=False)
    features = {name: features_step(cfg, world, encoder_step(cfg, name, world, data.tokenizer))
                for name in encoders}
    # Real benchmark images get their own step, so adding files retrains nothing.
    bench_files = real_benchmarks(cfg)
    real_features = {name: real_features_step(cfg, world, feats, bench_files)
                     for name, feats in features.items()} if bench_files else {}
    # Alike for every LLM and run: the alignment settings with their reference encoders, and
    # what evaluation measures.
    alignment, references = alignment_setup(cfg, world, data.tokenizer)
    evaluation = evaluate_unit(cfg)

    runs, names = [], set()
    for grid in study_grids:
        sft_sets = [stages_lib.parse_sft_set(name) for name in grid.sft_sets]
        budgets = [(scale, tokens) for scale in grid.scales for tokens in grid.tokens[scale]]
        for raw_mixture, (scale, tokens), seed in itertools.product(grid.mixtures, budgets, grid.seeds):
            mixture = mixtures.parse(raw_mixture, default_pool=cfg.data.get("pool"))  # validated above
            pretrain = pretrain_step(cfg, data, scale, mixture, tokens, seed)
            # Language ability and alignment belong to the LLM: one step each, shared by every
            # encoder and SFT set (no alignment step when the reference encoders are off).
            language = language_step(cfg, world, pretrain, data.tokenizer)
            perplexity = Step(Perplexity(cfg.eval.perplexity_windows),
                              (pretrain, data.tokenizer, *data.heldout.values()))
            llm_alignment = (Step(alignment, (pretrain, data.tokenizer, *references))
                             if alignment is not None else None)
            for encoder, sft_set in itertools.product(grid.encoders, sft_sets):
                feats = features[encoder]
                align = Step(Align(seed=seed, **_plain(cfg.align)), (pretrain, feats, data.tokenizer))
                sft = Step(Sft(seed=seed, **_plain(cfg.sft), set=sft_set.spec()),
                           (pretrain, align, feats, data.tokenizer))
                evaluate = Step(evaluation,
                                (pretrain, sft, feats, data.tokenizer, language, perplexity,
                                 *([real_features[encoder]] if real_features else [])),
                                companions=(llm_alignment,) if llm_alignment else ())
                condition, series = _run_name(grid, scale, tokens, mixture.name, encoder, sft_set.name,
                                              several_budgets=any(len(b) > 1 for b in grid.tokens.values()),
                                              several_sft_sets=len(sft_sets) > 1)
                name = f"{condition}-s{seed}" if len(grid.seeds) > 1 else condition
                if name in names:
                    raise BadValue(f"study {cfg.study!r} has two runs named {name!r}; "
                                   "give its grids distinct names")
                names.add(name)
                run_steps = {"pretrain": pretrain, "perplexity": perplexity, "align": align, "sft": sft,
                             "evaluate": evaluate}
                if llm_alignment:
                    run_steps["alignment"] = llm_alignment
                runs.append(Run(name, scale, mixture.name, tokens, run_steps, encoder=encoder,
                                sft_set=sft_set.name, study=grid.study, series=series, seed=seed,
                                condition=condition))
    return runs, topological([r.steps["evaluate"] for r in runs])


def _run_name(grid, scale: str, tokens: int, mixture: str, encoder: str, sft_set: str, *,
              several_budgets: bool, several_sft_sets: bool) -> tuple[str, str]:
    """(run name, fit series): names grow only along the axes the grid varies."""
    name = f"{scale}-{token_label(tokens)}" if several_budgets else scale
    name += f"-{mixture}"
    series = mixture
    if len(grid.encoders) > 1:
        name += f"-{encoder}"
        series += f" / {encoder}"
    if several_sft_sets:
        name += f"-{sft_set}"
        series += f" / {sft_set}"
    if grid.name:  # runs of different grids are never pooled in a fit
        name = f"{grid.name}/{name}"
        series = f"{grid.name}: {series}"
    return name, series


class _TextData:
    """The study's text steps: one tokenizer, train and held-out shards and labels per source."""

    def __init__(self, cfg, world: dict):
        mixes, corpora = study_mixtures(cfg)
        # The tokenizer and the held-out text cover the whole pool, not only what this study
        # draws from, so that studies drawing on different sources still share one tokenizer
        # and hence their common LLMs (the paper tokenises everything with one vocabulary).
        self.sources = sorted({src for m in mixes for src in m.sources} | set(cfg.data.get("pool") or ()))
        # A real corpus is identified by its reader spec and its content hash, not by the world.
        corpora = {s: {**corpora[s], "fingerprint": sources_lib.resolve_source(s, corpora).fingerprint}
                   for s in self.sources if s in corpora}
        self.tokenizer = Step(Tokenizer(world=world, sources=self.sources, corpora=corpora,
                                        vocab_size=cfg.data.vocab_size,
                                        sample_chars=cfg.data.tokenizer_sample_chars))

        def shards(src: str, split: str, tokens: int) -> Step:
            origin = {"corpus": corpora[src]} if src in corpora else {"world": world}
            return Step(Shards(source=src, split=split, tokens=tokens,
                               segment_tokens=cfg.data.segment_tokens, **origin),
                        (self.tokenizer,), {"workers": cfg.data.tokenize_workers})

        self.train = {src: shards(src, "train", cfg.data.shard_tokens) for src in self.sources}
        self.heldout = {src: shards(src, "test", cfg.data.heldout_tokens) for src in self.sources}
        # Real corpora get the labeller config for real text (labelling.config_for_source).
        self.labels = {src: Step(Labels(config_for_source(_plain(cfg.data.labeller), real_text=src in corpora)),
                                 (self.train[src], self.tokenizer))
                       for src in self.sources}


def pretrain_step(cfg, data: _TextData, scale: str, mixture: mixtures.Mixture, tokens: int, seed: int) -> Step:
    model = _plain(cfg.pretrain.model)
    options = {**{k: model.pop(k) for k in PRETRAIN_MODEL_OPTIONS if k in model}, **pretrain_run_options(cfg)}
    unit = Pretrain(scale=scale, mixture=_plain(mixture.spec), tokens=tokens, seed=seed,
                    max_epochs=cfg.data.max_epochs, seq_len=cfg.pretrain.seq_len,
                    batch_size=cfg.pretrain.batch_size, optim=_plain(cfg.pretrain.optim), model=model)
    return Step(unit, (data.tokenizer, *(data.train[s] for s in mixture.sources),
                       *(data.labels[s] for s in mixture.sources)), options)


def pretrain_run_options(cfg) -> dict:
    """How a pretrain step runs, kept out of its identity: a checkpoint restores onto any mesh
    and sharding, microbatches add up to the same update, and cadence only decides what is
    logged and kept (numbers may differ in the last bits, as on any other device count)."""
    return {"mesh": _plain(cfg.mesh), "rules": _plain(cfg.rules),
            "ckpt_every": cfg.pretrain.ckpt_every, "keep_every": cfg.pretrain.keep_every,
            "log_every": cfg.pretrain.log_every, "grad_accum": cfg.pretrain.grad_accum}


def language_step(cfg, world: dict, pretrain: Step, tokenizer: Step) -> Step:
    return Step(Language(world=world, **_plain(cfg.eval.language),
                         knowledge_questions=cfg.eval.knowledge_questions), (pretrain, tokenizer))


# Evaluation settings other steps own: the language battery, the real files (their own
# features step), the alignment step and the perplexity step.
_NOT_EVALUATE = ("language", "benchmarks", "alignment", "perplexity_windows")


def evaluate_unit(cfg) -> Evaluate:
    return Evaluate(**{k: v for k, v in _plain(cfg.eval).items() if k not in _NOT_EVALUATE})


def features_step(cfg, world: dict, encoder: Step) -> Step:
    # Only what decides which images are encoded: scoring settings leave features alone.
    return Step(Features(world=world, layer=cfg.features.layer, tokens=cfg.features.tokens,
                         dtype=cfg.features.dtype, align=_plain(cfg.align.examples), sft=cfg.sft.examples,
                         eval={k: cfg.eval[k] for k in ("questions_per_benchmark", "mle_per_bin",
                                                        "naming_per_kind")}),
                (encoder,))


def real_features_step(cfg, world: dict, features: Step, bench_files: dict) -> Step:
    return Step(RealFeatures(image_size=world["image_size"], layer=cfg.features.layer,
                             tokens=cfg.features.tokens, dtype=cfg.features.dtype, benchmarks=bench_files),
                (features.input("encoder"),))


def token_label(tokens: int) -> str:
    """75000 -> '75k', 30_000_000_000 -> '30B', 0 -> '0'."""
    for unit, size in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if tokens >= size:
            return f"{tokens / size:g}{unit}"
    return str(tokens)


def real_benchmarks(cfg) -> dict:
    """The real benchmark files a study names, each with its registry entry checked and a
    fingerprint of its files, so files changed after planning are noticed."""
    from visual_priors.eval import real
    out = {}
    for name, path in sorted(_plain(cfg.eval.get("benchmarks") or {}).items()):
        real.get(name)
        out[name] = {"path": str(Path(path).expanduser()), "fingerprint": real.fingerprint(path)}
    return out


def alignment_setup(cfg, world: dict, tokenizer: Step) -> tuple[Alignment | None, list[Step]]:
    """The unit of every LLM's alignment step (with the colour probe when it is on) and its
    reference encoders' steps (shared with the runs that use the same encoders); (None, [])
    when ``eval.alignment.encoders`` is empty."""
    settings = _plain(cfg.eval.get("alignment") or {})
    names = list(dict.fromkeys(settings.get("encoders") or ()))
    if not names:
        return None, []
    stages_lib.validate_encoders(names, cfg.imported_encoders, require_paths=False)
    for metric in (settings["metric"], *settings["table_metrics"]):
        alignment_lib.get_metric(metric)  # unknown names fail with the valid ones
    settings["colour"] = _colour_settings(settings.pop("colour", None))
    unit = Alignment(world=world, seed=cfg.seed, **{**settings, "encoders": names})
    return unit, [encoder_step(cfg, name, world, tokenizer) for name in names]


def _colour_settings(colour: dict | None) -> dict | None:
    """The colour probe's fields (``eval.alignment.colour`` without its switch), None when off."""
    if not colour or not colour.get("enabled"):
        return None
    fields = {k: v for k, v in colour.items() if k != "enabled"}
    for key in ("n_images", "n_pairs", "mds_inits", "n_permutations"):
        if int(fields[key]) < 1:
            raise BadValue(f"eval.alignment.colour.{key} must be positive, got {fields[key]}")
    if not 1 <= int(fields["grid_levels"]) <= 256:
        raise BadValue(f"eval.alignment.colour.grid_levels must be in 1..256, got {fields['grid_levels']}")
    return fields


def encoder_step(cfg, name: str, world: dict, tokenizer: Step) -> Step:
    """A local encoder trained on the world, or a public checkpoint imported (identified by its
    content); either way the step's output is a frozen encoder plus its kind-probe accuracy."""
    probe = _plain(cfg.encoder.probe)
    if name in stages_lib.LOCAL_ENCODERS:
        unit = Encoder(world=world, seed=cfg.seed, objective=name, vit=cfg.encoder.vit, steps=cfg.encoder.steps,
                       batch_size=cfg.encoder.batch_size, optim=_plain(cfg.encoder.optim), probe=probe,
                       # Contrastive captions are tokenised: the tokenizer is an input.
                       text_len=cfg.encoder.text_len if name == "contrastive" else None)
        return Step(unit, (tokenizer,) if name == "contrastive" else ())
    spec = _plain(cfg.imported_encoders[name])
    # Without a path the study can still be planned; the encoder step refuses to run.
    content = encoders_lib.fingerprint(spec["path"]) if spec.get("path") else None
    # The name keeps encoders apart while their paths are not given yet.
    return Step(ImportedEncoder(world=world, checkpoint={**spec, "name": name, "fingerprint": content},
                                probe=probe))


def topological(targets: list[Step]) -> list[Step]:
    """Every step the targets need, each once, inputs before the steps that use them."""
    order, seen = [], set()

    def visit(step: Step) -> None:
        if step.hash in seen:
            return
        for dep in step.inputs:
            visit(dep)
        seen.add(step.hash)
        order.append(step)
        for companion in step.companions:
            visit(companion)

    for t in targets:
        visit(t)
    return order


# A step that trains nothing still takes time (evaluation, features, language ability): counted
# as this many FLOPs when ordering claims, about ten seconds of a tiny step on one CPU core.
STEP_OVERHEAD_FLOPS = 5e11


def longest_path_first(steps: list[Step]) -> list[Step]:
    """`steps` in the order workers should claim them: by the work left on the longest chain
    that starts at each (its training FLOPs, plus STEP_OVERHEAD_FLOPS a step, through the steps
    among `steps` that use its output), longest first, ties in the given order. List scheduling
    by this priority starts the long chains (the largest LLMs' pre-training, then their
    adaptation) while short ones fill the gaps, instead of leaving one chain to run alone on one
    worker at the end of a study."""
    within = {s.hash for s in steps}
    users: dict[str, list[Step]] = {s.hash: [] for s in steps}
    for s in steps:
        for dep in s.inputs:
            if dep.hash in within:
                users[dep.hash].append(s)
    chain: dict[str, float] = {}
    for s in reversed(topological(steps)):  # every user of a step before the step itself
        if s.hash in within:
            chain[s.hash] = (s.unit.flops(s) + STEP_OVERHEAD_FLOPS
                             + max((chain[u.hash] for u in users[s.hash]), default=0.0))
    rank = {s.hash: i for i, s in enumerate(steps)}
    return sorted(steps, key=lambda s: (-chain[s.hash], rank[s.hash]))
