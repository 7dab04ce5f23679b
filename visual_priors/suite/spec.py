"""Runs expand into content-hashed steps.

A step's identity is a hash of its kind, its own fields and the identities of its inputs, so two
runs (or two studies) that need the same tokenizer, shard, encoder or pre-trained LLM share one
step, and changing any field upstream changes every identity downstream. Outputs live at
`<root>/<kind>-<hash>/` with the step's spec beside them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from functools import cached_property

from pathlib import Path

import ml_collections

from visual_priors.config import mixtures, stages as stages_lib
from visual_priors.config.studies import grids
from visual_priors.data import sources as sources_lib
from visual_priors.data.labelling import config_for_source
from visual_priors.errors import BadValue
from visual_priors.eval import alignment as alignment_lib
from visual_priors.model import encoders as encoders_lib
from visual_priors.world import WORLD_VERSION

HASH_LEN = 12
# Bumped when a kind's implementation changes what it writes, so old outputs are not reused
# (pretrain 2: loss by target-logit selection, t5 reshaped, per-layer checkpoint with its config).
# (shards 2 / pretrain 3: labelled 1,024-token segments in ArrayRecord shards, mixtures of
# labelled components packed with document-bounded attention; shards 3: memory-mapped index.)
# (encoder 2: three local objectives or an imported checkpoint, saved as a bare frozen encoder;
# features 3: chosen layer resized to a fixed token count; align/sft/evaluate 2: SFT sets.)
# (features 4 / evaluate 3: sixteen world families with yes/no and multi-view questions, real
# benchmark files, the reasoning judge; language 1: the language battery of each LLM;
# alignment 1: PRH's representational alignment of each LLM with reference encoders.)
# (encoder 3 / features 5 / align 3 / language 2 / evaluate 4 / sft 3: the signal chain:
# five probes, the naming hop, text knowledge, described questions and paired scores; image
# tokens after the text's BOS.)
# (pretrain 4: mesh, sharding rules, cadence, microbatching and remat moved to run options.)
VERSIONS = {"tokenizer": 1, "shards": 3, "labels": 1, "pretrain": 4, "encoder": 3, "features": 5,
            "align": 3, "sft": 3, "evaluate": 4, "language": 2, "real_features": 1, "alignment": 1}


@dataclasses.dataclass(frozen=True, eq=False)
class Step:
    kind: str
    fields: dict
    inputs: tuple[Step, ...] = ()
    # How to run it, not what it makes (worker processes, mesh, logging and checkpoint
    # cadence): the runner honours them, but they are not part of the identity.
    options: dict = dataclasses.field(default_factory=dict)
    # Steps planned wherever this one is, without being its inputs: they neither enter its
    # identity nor wait for it (a run's evaluation brings along its LLM's alignment step).
    companions: tuple[Step, ...] = ()

    @cached_property
    def hash(self) -> str:
        payload = {"kind": self.kind, "version": VERSIONS.get(self.kind, 1), "fields": self.fields,
                   "inputs": sorted(f"{s.kind}:{s.hash}" for s in self.inputs)}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_jsonable)
        return hashlib.sha256(blob.encode()).hexdigest()[:HASH_LEN]

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.hash}"

    def input(self, kind: str) -> Step:
        found = [s for s in self.inputs if s.kind == kind]
        if len(found) != 1:
            raise KeyError(f"step {self.name} has {len(found)} inputs of kind {kind!r}")
        return found[0]

    def inputs_of(self, kind: str) -> list[Step]:
        return [s for s in self.inputs if s.kind == kind]

    def spec(self) -> dict:
        """Identity and inputs, plus the options it was planned with (a record, not hashed)."""
        return {"kind": self.kind, "hash": self.hash, "fields": self.fields,
                "inputs": [s.name for s in self.inputs], "options": self.options}


def _jsonable(x):
    if isinstance(x, ml_collections.ConfigDict):
        return x.to_dict()
    if isinstance(x, (tuple, set, frozenset)):
        return list(x)
    raise TypeError(f"cannot hash a {type(x).__name__}")


def _plain(x):
    """ConfigDicts and tuples as plain JSON values, so fields hash the same however written."""
    return json.loads(json.dumps(x, default=_jsonable))


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
    mixes, corpora = study_mixtures(cfg)
    # The tokenizer and the held-out text cover the whole pool, not only what this study draws
    # from, so that studies drawing on different sources still share one tokenizer and hence
    # their common LLMs (the paper tokenises everything with one vocabulary).
    all_sources = sorted({src for m in mixes for src in m.sources} | set(cfg.data.get("pool") or ()))
    # A real corpus is identified by its reader spec and its content hash, not by the world.
    used_corpora = {s: {**corpora[s], "fingerprint": sources_lib.resolve_source(s, corpora).fingerprint}
                    for s in all_sources if s in corpora}

    def origin(src: str) -> dict:
        return {"corpus": used_corpora[src]} if src in used_corpora else {"world": world}

    tokenizer = Step("tokenizer", {"world": world, "sources": all_sources, "corpora": used_corpora,
                                   "vocab_size": cfg.data.vocab_size,
                                   "sample_chars": cfg.data.tokenizer_sample_chars})
    segment_tokens = cfg.data.segment_tokens
    workers = {"workers": cfg.data.tokenize_workers}
    shards = {src: Step("shards", {**origin(src), "source": src, "split": "train",
                                   "tokens": cfg.data.shard_tokens, "segment_tokens": segment_tokens},
                        (tokenizer,), workers) for src in all_sources}
    heldout = {src: Step("shards", {**origin(src), "source": src, "split": "test",
                                    "tokens": cfg.data.heldout_tokens, "segment_tokens": segment_tokens},
                         (tokenizer,), workers) for src in all_sources}
    # Real corpora get the labeller config for real text (labelling.config_for_source).
    labels = {src: Step("labels", {"labeller": config_for_source(_plain(cfg.data.labeller),
                                                                 real_text=src in used_corpora)},
                        (shards[src], tokenizer))
              for src in all_sources}
    study_grids = grids(cfg)
    encoders = list(dict.fromkeys(e for g in study_grids for e in g.encoders))
    stages_lib.validate_encoders(encoders, cfg.imported_encoders, require_paths=False)
    alignment_fields, alignment_encoders = _alignment_settings(cfg, world, tokenizer)
    features = {name: Step("features", {
        "world": world, "layer": cfg.features.layer, "tokens": cfg.features.tokens,
        "dtype": cfg.features.dtype, "align": _plain(cfg.align.examples), "sft": cfg.sft.examples,
        # Only what decides which images are encoded: scoring settings leave features alone.
        "eval": {k: cfg.eval[k] for k in ("questions_per_benchmark", "mle_per_bin", "naming_per_kind")}},
        (_encoder_step(cfg, name, world, tokenizer),))
        for name in encoders}
    # Real benchmark images get their own step, so adding files retrains nothing.
    bench_files = real_benchmarks(cfg)
    real_features = {name: Step("real_features", {
        "image_size": world["image_size"], "layer": cfg.features.layer, "tokens": cfg.features.tokens,
        "dtype": cfg.features.dtype, "benchmarks": bench_files}, (feats.input("encoder"),))
        for name, feats in features.items()} if bench_files else {}

    model = _plain(cfg.pretrain.model)
    pretrain_options = {**{k: model.pop(k) for k in PRETRAIN_MODEL_OPTIONS if k in model},
                        **pretrain_run_options(cfg)}

    def pretrain_step(scale: str, mixture: mixtures.Mixture, tokens: int) -> Step:
        return Step("pretrain", {
            "scale": scale, "mixture": _plain(mixture.spec), "tokens": tokens, "seed": cfg.seed,
            "max_epochs": cfg.data.max_epochs,
            "seq_len": cfg.pretrain.seq_len, "batch_size": cfg.pretrain.batch_size,
            "optim": _plain(cfg.pretrain.optim), "model": model,
            "perplexity_windows": cfg.eval.perplexity_windows},
            (tokenizer, *(shards[s] for s in mixture.sources), *(labels[s] for s in mixture.sources),
             *(heldout[s] for s in all_sources)), pretrain_options)

    runs, names = [], set()
    for grid in study_grids:
        sft_sets = [stages_lib.parse_sft_set(name) for name in grid.sft_sets]
        several_budgets = any(len(b) > 1 for b in grid.tokens.values())
        for raw_mixture in grid.mixtures:
            mixture = mixtures.parse(raw_mixture, default_pool=cfg.data.get("pool"))  # validated above
            for scale in grid.scales:
                for tokens in grid.tokens[scale]:
                    pretrain = pretrain_step(scale, mixture, tokens)
                    # Language ability belongs to the LLM: one step, shared by every encoder and SFT set.
                    language = Step("language", {"world": world, **_plain(cfg.eval.language),
                                                 "knowledge_questions": cfg.eval.knowledge_questions},
                                    (pretrain, tokenizer))
                    # So is its alignment with the reference encoders (none when they are off).
                    llm_alignment = (Step("alignment", alignment_fields,
                                          (pretrain, tokenizer, *alignment_encoders))
                                     if alignment_encoders else None)
                    for encoder in grid.encoders:
                        feats = features[encoder]
                        align = Step("align", {"seed": cfg.seed, **_plain(cfg.align)}, (pretrain, feats, tokenizer))
                        for sft_set in sft_sets:
                            sft = Step("sft", {"seed": cfg.seed, **_plain(cfg.sft), "set": sft_set.spec()},
                                       (pretrain, align, feats, tokenizer))
                            evaluate = Step("evaluate", {k: v for k, v in _plain(cfg.eval).items()
                                                         if k not in ("language", "benchmarks",
                                                                      "alignment")},
                                            (pretrain, sft, feats, tokenizer, language)
                                            + ((real_features[encoder],) if real_features else ()),
                                            companions=(llm_alignment,) if llm_alignment else ())
                            # Names grow only along the axes the grid varies.
                            name = f"{scale}-{token_label(tokens)}" if several_budgets else scale
                            name += f"-{mixture.name}"
                            series = mixture.name
                            if len(grid.encoders) > 1:
                                name += f"-{encoder}"
                                series += f" / {encoder}"
                            if len(sft_sets) > 1:
                                name += f"-{sft_set.name}"
                                series += f" / {sft_set.name}"
                            if grid.name:  # runs of different grids are never pooled in a fit
                                name = f"{grid.name}/{name}"
                                series = f"{grid.name}: {series}"
                            if name in names:
                                raise BadValue(f"study {cfg.study!r} has two runs named {name!r}; "
                                               "give its grids distinct names")
                            names.add(name)
                            run_steps = {"pretrain": pretrain, "align": align, "sft": sft, "evaluate": evaluate}
                            if llm_alignment:
                                run_steps["alignment"] = llm_alignment
                            runs.append(Run(name, scale, mixture.name, tokens, run_steps,
                                            encoder=encoder, sft_set=sft_set.name, study=grid.study,
                                            series=series))
    return runs, topological([r.steps["evaluate"] for r in runs])


# Model settings that change memory and speed, not the parameters a run ends with.
PRETRAIN_MODEL_OPTIONS = ("remat",)


def pretrain_run_options(cfg) -> dict:
    """How a pretrain step runs, kept out of its identity: a checkpoint restores onto any mesh
    and sharding, microbatches add up to the same update, and cadence only decides what is
    logged and kept (numbers may differ in the last bits, as on any other device count)."""
    return {"mesh": _plain(cfg.mesh), "rules": _plain(cfg.rules),
            "ckpt_every": cfg.pretrain.ckpt_every, "keep_every": cfg.pretrain.keep_every,
            "log_every": cfg.pretrain.log_every, "grad_accum": cfg.pretrain.grad_accum}


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


def _alignment_settings(cfg, world: dict, tokenizer: Step) -> tuple[dict, list[Step]]:
    """The alignment step's fields (with the colour probe's under ``colour`` when it is on) and
    its reference encoders' steps (shared with the runs that use the same encoders); no steps
    when ``eval.alignment.encoders`` is empty."""
    settings = _plain(cfg.eval.get("alignment") or {})
    names = list(dict.fromkeys(settings.get("encoders") or ()))
    if not names:
        return {}, []
    stages_lib.validate_encoders(names, cfg.imported_encoders, require_paths=False)
    for metric in (settings["metric"], *settings["table_metrics"]):
        alignment_lib.get_metric(metric)  # unknown names fail with the valid ones
    colour = _colour_settings(settings.pop("colour", None))
    fields = {"world": world, "seed": cfg.seed, **settings, "encoders": names}
    if colour is not None:  # absent when off: the step is then the one it was without the probe
        fields["colour"] = colour
    return fields, [_encoder_step(cfg, name, world, tokenizer) for name in names]


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


def _encoder_step(cfg, name: str, world: dict, tokenizer: Step) -> Step:
    """A local encoder trained on the world, or a public checkpoint imported (identified by its
    content); either way the step's output is a frozen encoder plus its kind-probe accuracy."""
    probe = _plain(cfg.encoder.probe)
    if name in stages_lib.LOCAL_ENCODERS:
        fields = {"world": world, "seed": cfg.seed, "objective": name, "vit": cfg.encoder.vit,
                  "steps": cfg.encoder.steps, "batch_size": cfg.encoder.batch_size,
                  "optim": _plain(cfg.encoder.optim), "probe": probe}
        if name == "contrastive":  # captions are tokenised: the tokenizer is an input
            return Step("encoder", {**fields, "text_len": cfg.encoder.text_len}, (tokenizer,))
        return Step("encoder", fields)
    spec = _plain(cfg.imported_encoders[name])
    # Without a path the study can still be planned; the encoder step refuses to run.
    content = encoders_lib.fingerprint(spec["path"]) if spec.get("path") else None
    # The name keeps encoders apart while their paths are not given yet.
    return Step("encoder", {"world": world, "import": {**spec, "name": name, "fingerprint": content},
                            "probe": probe})


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
