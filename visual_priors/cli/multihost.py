"""The multi-host flags, given before the subcommand, and joining the multi-process runtime."""

from __future__ import annotations

import argparse
import os

# The variables visual_priors.parallel.distributed reads; named here so that a single-process
# command does not import JAX just to find out.
DISTRIBUTED_ENV = ("VP_COORDINATOR_ADDRESS", "VP_NUM_PROCESSES", "VP_PROCESS_ID", "VP_DISTRIBUTED")


def add_flags(parser: argparse.ArgumentParser) -> None:
    multi = parser.add_argument_group("multi-host (run the same command once per host; before the subcommand)")
    multi.add_argument("--coordinator-address", metavar="HOST:PORT",
                       help="address of process 0 (env VP_COORDINATOR_ADDRESS)")
    multi.add_argument("--num-processes", type=int, help="number of processes (env VP_NUM_PROCESSES)")
    multi.add_argument("--process-id", type=int, help="this process, 0..N-1 (env VP_PROCESS_ID)")
    multi.add_argument("--distributed", choices=("auto",),
                       help="let JAX detect the processes (TPU pods, SLURM; env VP_DISTRIBUTED=auto)")


def start(args) -> None:
    """Join the multi-process JAX runtime, before anything touches JAX, if one is asked for."""
    flags = (args.coordinator_address, args.num_processes, args.process_id, args.distributed)
    if all(v is None for v in flags) and not any(os.environ.get(k) for k in DISTRIBUTED_ENV):
        return
    from visual_priors.parallel import distributed

    distributed.initialize(args.coordinator_address, args.num_processes, args.process_id,
                           mode=args.distributed)
