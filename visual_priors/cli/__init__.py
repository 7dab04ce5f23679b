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

Each area's module (suite, reports, models, data) registers its own subcommands; its handlers
parse arguments and call the library.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from visual_priors.cli import data, models, multihost, reports, suite
from visual_priors.errors import UserError
from visual_priors.suite import host_memory


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visual-priors", description=__doc__.splitlines()[0])
    multihost.add_flags(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    # The order `visual-priors -h` lists them in: scales first.
    models.register_scales(sub)
    suite.register(sub)
    reports.register(sub)
    models.register(sub)
    data.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the command itself, not a call from Python: start again with the tunables
        host_memory.restart_with_tunables()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        multihost.start(args)
        return args.func(args)
    except UserError as err:  # bad input: one line; anything else is a bug and keeps its traceback
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2
