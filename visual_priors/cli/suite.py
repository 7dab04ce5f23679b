"""`suite plan | run | step | retry | clean | export | status` and the one-stage commands
`pretrain`, `adapt` and `evaluate`."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from visual_priors.cli.common import add_config, add_run_options, load_config, name_path_pairs, run_options
from visual_priors.errors import BadValue, UserError


def register(sub) -> None:
    suite = sub.add_parser("suite", help="plan, run and inspect studies").add_subparsers(dest="suite_command", required=True)
    p = suite.add_parser("plan", help="runs, steps and FLOPs of a study")
    add_config(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--mfu", type=float, default=0.4)
    p.add_argument("--chip", default="h100")
    p.set_defaults(func=cmd_plan)
    p = suite.add_parser("run", help="run every unfinished step of a study, then report")
    add_config(p)
    add_run_options(p)
    p.set_defaults(func=lambda a: run_stage(a, "evaluate"))
    p = suite.add_parser("step", help="run one step whose inputs are finished (a cluster work unit)")
    add_config(p)
    p.add_argument("step", metavar="STEP_NAME", help="e.g. pretrain-1a2b3c4d5e6f (`suite plan --format json` "
                                                      "and `suite status` show names)")
    p.set_defaults(func=cmd_step)
    p = suite.add_parser("retry", help="give a study's failed steps fresh attempts and run it again")
    add_config(p)
    add_run_options(p)
    p.set_defaults(func=cmd_retry)
    p = suite.add_parser("clean", help="forget failed steps and delete their partial outputs")
    p.add_argument("--failed", action="store_true", help="clean the failed steps")
    p.add_argument("--root", default="runs")
    p.add_argument("--study", default=None, help="only this study's failed steps")
    p.set_defaults(func=cmd_clean)
    p = suite.add_parser("export", help="results of every finished run as one Parquet or CSV table")
    add_config(p)
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
        add_config(p)
        add_run_options(p)
        p.add_argument("--run", action="append", help="run name, e.g. t1-mix0 (repeatable; default all)")
        p.set_defaults(func=lambda a, s=stage: run_stage(a, s))
    # The last of them, evaluate, also takes the battery's inputs.
    p.add_argument("--benchmark", action="append", default=[], metavar="NAME=PATH",
                   help="a real benchmark file or folder (see `visual-priors benchmarks`; repeatable)")
    p.add_argument("--lm-task", action="append", default=[], metavar="NAME=PATH",
                   help="an lm-evaluation-harness task's local copy, e.g. piqa=/data/piqa (repeatable)")
    p.add_argument("--judge-url", default=None, help="OpenAI-compatible endpoint for the reasoning judge")
    p.add_argument("--judge-model", default=None, help="the judge's model name at --judge-url")
    p.set_defaults(func=cmd_evaluate)


def cmd_plan(args) -> int:
    from visual_priors.suite.planner import plan

    p = plan(load_config(args), mfu=args.mfu, chip=args.chip)
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


def run_stage(args, stage: str, cfg=None) -> int:
    """Every unfinished step of the chosen runs up to `stage`; 1 when steps failed, 130 when
    interrupted (a rerun resumes)."""
    from visual_priors.suite.executor import StudyFailed, run_study
    from visual_priors.train.loop import Preempted

    try:
        run_study(cfg if cfg is not None else load_config(args), args.root, stage=stage,
                  only=getattr(args, "run", None) or None, report=stage == "evaluate",
                  options=run_options(args))
    except StudyFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (Preempted, KeyboardInterrupt):
        print("interrupted: finished steps are kept; run the same command again to resume",
              file=sys.stderr)
        return 130
    return 0


def cmd_evaluate(args) -> int:
    """The evaluate stage with the command line's benchmark files, lm-eval tasks and judge, then
    each chosen run's results printed."""
    from visual_priors.analysis.report import battery_text
    from visual_priors.suite import spec as spec_lib
    from visual_priors.suite.executor import collect

    cfg = load_config(args)
    with cfg.unlocked():
        cfg.eval.benchmarks.update(name_path_pairs(args.benchmark, "--benchmark"))
        cfg.eval.language.paths.update(name_path_pairs(args.lm_task, "--lm-task"))
        if args.judge_url:
            if not args.judge_model:
                raise BadValue("--judge-url needs --judge-model", "--judge-model")
            cfg.eval.judge.url, cfg.eval.judge.model = args.judge_url, args.judge_model
    code = run_stage(args, "evaluate", cfg)
    if code:
        return code
    runs, _ = spec_lib.expand(cfg)
    chosen = [r for r in runs if not args.run or r.name in args.run]
    for name, res in collect(cfg, Path(args.root), chosen).items():
        print(battery_text(name, res))
    return 0


def cmd_step(args) -> int:
    from visual_priors.suite.executor import StudyFailed, run_one

    try:
        run_one(load_config(args), args.root, args.step)
    except StudyFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _registry_path(root: str) -> Path:
    from visual_priors.suite.executor import REGISTRY_FILE

    return Path(root) / REGISTRY_FILE


def cmd_status(args) -> int:
    from visual_priors.suite.registry import Registry

    path = _registry_path(args.root)
    if not path.exists():
        print(f"no registry at {path}: nothing has run under {args.root} yet")
        return 0
    with Registry(path) as registry:
        rows = registry.rows(args.study)
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


def _failed_rows(root: str, study: str | None) -> list[dict]:
    from visual_priors.suite.registry import Registry

    path = _registry_path(root)
    if not path.exists():
        return []
    with Registry(path) as registry:
        return registry.rows(study, status="failed")


def cmd_retry(args) -> int:
    """The study's failed steps (and those they held back) get fresh attempts, then it runs."""
    from visual_priors.suite.registry import Registry

    cfg = load_config(args)
    rows = _failed_rows(args.root, cfg.study)
    if rows:
        with Registry(_registry_path(args.root)) as registry:
            registry.reset([r["hash"] for r in rows])
    print(f"{len(rows)} failed steps of {cfg.study} reset: " + (", ".join(r["name"] for r in rows) or "none"))
    return run_stage(args, "evaluate", cfg)


def cmd_clean(args) -> int:
    from visual_priors.suite.registry import Registry

    if not args.failed:
        raise BadValue("say what to clean: --failed", "suite clean")
    rows = _failed_rows(args.root, args.study)
    for r in rows:
        shutil.rmtree(Path(args.root) / f"{r['name']}.partial", ignore_errors=True)
    if rows:
        with Registry(_registry_path(args.root)) as registry:
            registry.forget([r["hash"] for r in rows])
    print(f"removed {len(rows)} failed steps and their partial outputs"
          + (": " + ", ".join(r["name"] for r in rows) if rows else ""))
    return 0


def cmd_export(args) -> int:
    from visual_priors.suite import export
    from visual_priors.suite.executor import collect

    cfg = load_config(args)
    results = list(collect(cfg, Path(args.root)).values())
    out = args.out or str(Path(args.root) / cfg.study / "results.parquet")
    try:
        path = export.write(results, out)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{len(results)} runs -> {path}")
    return 0
