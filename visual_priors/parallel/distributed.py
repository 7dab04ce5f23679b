"""Multi-host start-up: the same command runs once per host, one JAX process each.

`initialize` joins the processes into one JAX runtime (JAX's multi-controller model), so that
`jax.devices()` lists every host's devices and one mesh spans them. It must run before anything
touches a JAX backend. Each process then reads only its own rows of every global batch
(`process_rows`), and `parallel.mesh.global_batch` assembles the global arrays.

Settings come from arguments or, where an argument is None, from the environment:
`VP_COORDINATOR_ADDRESS` (host:port of process 0), `VP_NUM_PROCESSES`, `VP_PROCESS_ID`, and
`VP_DISTRIBUTED=auto` to let JAX detect them itself (Cloud TPU pods, SLURM, Open MPI).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import jax

from visual_priors.errors import BadValue


ENV_ADDRESS = "VP_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "VP_NUM_PROCESSES"
ENV_PROCESS_ID = "VP_PROCESS_ID"
ENV_MODE = "VP_DISTRIBUTED"
MODES = ("auto",)

_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):(\d+)$")


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, local_device_ids: Sequence[int] | None = None,
               *, mode: str | None = None) -> bool:
    """Start JAX's multi-process runtime if a multi-process run is asked for.

    Returns True when this process is part of a multi-process runtime (started now or by an
    earlier call: a second call is a no-op), False for a plain single-process run, which is what
    no arguments and no `VP_*` variables mean. `mode="auto"` (or `VP_DISTRIBUTED=auto`) lets
    JAX detect whatever is not given; otherwise address, process count and id are all needed.
    """
    if jax.distributed.is_initialized():
        return True
    mode = mode if mode is not None else os.environ.get(ENV_MODE) or None
    if mode is not None and mode not in MODES:
        raise BadValue(f"distributed mode must be one of {MODES}, got {mode!r} "
                         f"(from the argument or {ENV_MODE})")
    address = _setting(coordinator_address, ENV_ADDRESS)
    count = _int_setting(num_processes, "num_processes", ENV_NUM_PROCESSES)
    index = _int_setting(process_id, "process_id", ENV_PROCESS_ID)
    given = {"coordinator_address": address, "num_processes": count, "process_id": index}
    if mode is None:
        if all(v is None for v in given.values()):
            return False
        missing = [k for k, v in given.items() if v is None]
        if missing:
            raise BadValue(f"a multi-process run needs coordinator_address, num_processes and "
                             f"process_id (or {ENV_MODE}=auto); missing: {', '.join(missing)}")
    _validate(address, count, index)
    _use_gloo_for_cpu_collectives()
    jax.distributed.initialize(address, count, index, local_device_ids)
    return True


def process_rows(global_batch_size: int, process_index: int | None = None,
                 process_count: int | None = None) -> slice:
    """The rows of every global batch that this process reads (default: JAX's process).

    Process p reads the p-th of `process_count` equal, contiguous blocks, so the processes'
    rows together are the whole global batch, in process order.
    """
    index = jax.process_index() if process_index is None else int(process_index)
    count = jax.process_count() if process_count is None else int(process_count)
    if count < 1 or not 0 <= index < count:
        raise BadValue(f"process_index must be in [0, process_count) with process_count >= 1, "
                         f"got process_index={index}, process_count={count}")
    if global_batch_size % count:
        raise BadValue(f"the global batch size {global_batch_size} is not divisible by the "
                         f"process count {count}; every process must read the same number of rows")
    rows = global_batch_size // count
    return slice(index * rows, (index + 1) * rows)


def _setting(value, env: str):
    return value if value is not None else os.environ.get(env) or None


def _int_setting(value, name: str, env: str) -> int | None:
    if value is not None:
        source = name
    else:
        value, source = os.environ.get(env) or None, env
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadValue(f"{source} must be an integer, got {value!r}") from None


def _validate(address: str | None, count: int | None, index: int | None) -> None:
    if address is not None:
        match = _ADDRESS.match(address)
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise BadValue(f"coordinator address must be host:port (port 1-65535), got {address!r}")
    if count is not None and count < 1:
        raise BadValue(f"num_processes must be >= 1, got {count}")
    if index is not None and index < 0:
        raise BadValue(f"process_id must be >= 0, got {index}")
    if index is not None and count is not None and index >= count:
        raise BadValue(f"process_id must be in [0, {count}) for num_processes={count}, got {index}")


def _use_gloo_for_cpu_collectives() -> None:
    # Without a CPU collectives implementation, computations spanning the CPU devices of several
    # processes fail. jax 0.10 defaults to gloo (TCP, through the coordinator); this restores it
    # if it was switched off and leaves an explicit choice (mpi) alone. It only configures the
    # CPU client, so it changes nothing on GPU or TPU hosts.
    if jax.config.jax_cpu_collectives_implementation is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
