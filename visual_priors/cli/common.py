"""Argument helpers the command areas share: a study's config and how its steps run."""

from __future__ import annotations

import argparse

from visual_priors.errors import BadValue


def load_config(args):
    """The study named by CONFIG (and --profile), with its --set overrides."""
    from visual_priors.config import loading

    spec = args.config
    if getattr(args, "profile", None):
        if ":" in spec:
            raise BadValue(f"{spec} names a profile already; drop it or --profile", "--profile")
        spec = f"{spec}:{args.profile}"
    return loading.load(spec, args.set)


def add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="study file, optionally with :profile (e.g. experiments/quickstart.py:tiny)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set pretrain.optim.lr=1e-3 (repeatable)")
    p.add_argument("--root", default="runs", help="where step outputs and the registry live (default: runs)")
    p.add_argument("--profile", help="tiny or paper (the same as CONFIG:profile)")


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes on this host, each pinned to its share of the GPUs or CPU cores")
    p.add_argument("--retries", type=int, default=2, help="times a failed step is tried again (default 2)")
    p.add_argument("--backoff", type=float, default=10.0,
                   help="seconds before the first retry, doubling after each (default 10)")
    p.add_argument("--lease", type=float, default=120.0,
                   help="seconds a worker's claim on a step lasts unless renewed (default 120)")
    p.add_argument("--pack", type=int, default=1,
                   help="train up to K same-shape pre-training runs together in one program (default 1: off)")


def run_options(args):
    """The executor's Options from the flags of `add_run_options`."""
    from visual_priors.suite.executor import Options

    return Options(workers=args.workers, retries=args.retries, backoff_s=args.backoff,
                   lease_s=args.lease, pack=args.pack)


def name_path_pairs(values: list[str], flag: str) -> dict[str, str]:
    """Repeated NAME=PATH flag values as {name: path}."""
    out = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise BadValue(f"{flag} wants NAME=PATH, got {v!r}", flag)
        out[name] = path
    return out
