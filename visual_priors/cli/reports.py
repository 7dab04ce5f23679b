"""`benchmarks`, `analyze` and `report`: what a study is scored on and what its finished runs show."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from visual_priors.cli.common import add_config, load_config, name_path_pairs


def register(sub) -> None:
    p = sub.add_parser("benchmarks", help="the world's benchmark families and the real benchmark loaders")
    p.add_argument("--check", action="append", default=[], metavar="NAME=PATH",
                   help="read a benchmark file with its loader and count its items (repeatable)")
    p.set_defaults(func=cmd_benchmarks)

    p = sub.add_parser("analyze", help="the report's numbers as JSON: curve fits, the paper's "
                                       "analyses and the findings with their verdicts")
    add_config(p)
    p.set_defaults(func=cmd_analyze)
    p = sub.add_parser("report", help="write runs/<study>/report.html from finished runs")
    add_config(p)
    p.set_defaults(func=cmd_report)


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
    for name, path in name_path_pairs(args.check, "--check").items():
        items = real.get(name).load(Path(path).expanduser())
        print(f"{name}: {len(items)} items read from {path}")
    return 0


def _finished_runs(args):
    """(the study, its finished runs' results); with none, says so on stderr."""
    from visual_priors.suite.executor import collect

    cfg = load_config(args)
    results = list(collect(cfg, Path(args.root)).values())
    if not results:
        print(f"no finished runs of {cfg.study} under {args.root}; run `visual-priors suite run` first",
              file=sys.stderr)
    return cfg, results


def cmd_analyze(args) -> int:
    """The report's numbers as JSON: curve fits, every paper analysis the runs allow and the
    findings table (analysis/findings.py) with each finding's verdict."""
    from visual_priors.analysis.report import analysis_numbers

    cfg, results = _finished_runs(args)
    if not results:
        return 1
    print(json.dumps(analysis_numbers(results, study=cfg.study), indent=1, allow_nan=False))
    return 0


def cmd_report(args) -> int:
    from visual_priors.analysis.report import write_report

    cfg, results = _finished_runs(args)
    if not results:
        return 1
    print(write_report(results, Path(args.root) / cfg.study, study=cfg.study))
    return 0
