"""glibc malloc settings that stop a CPU train step from paying for its memory on every call.

XLA's CPU runtime allocates each call's scratch buffers with `posix_memalign` and frees them at
its end. A tiny train step's scratch is tens of megabytes (75 MB for t1 pre-training at batch
16), which glibc serves from a fresh `mmap` and unmaps on free, so every call faults its pages in
again: about 19,000 page faults per t1 step, 40-55 ms of kernel time in a 70-90 ms step
(docs/benchmarks.md, "Host memory"). The tunables keep freed memory for the next call instead:
one malloc arena (a thread's own arena cannot hold a chunk over 64 MB and falls back to
`mmap`), no `mmap` for large chunks, no trimming of the heap's top, and the heap backed by
transparent huge pages where the kernel offers them on request (glibc 2.35+). The cost: a
process keeps the most memory it ever held until it exits.

Tunables are read once, when a process starts, so the command line sets them and starts itself
again before JAX starts, and the executor hands them to the worker processes it
spawns. A `GLIBC_TUNABLES` of your own is kept as it is (set it to anything, e.g.
`GLIBC_TUNABLES=glibc.malloc.hugetlb=0`, to run with glibc's defaults).
"""

from __future__ import annotations

import os
import platform
import sys

TUNABLES = ":".join(["glibc.malloc.arena_max=1", "glibc.malloc.mmap_max=0",
                     f"glibc.malloc.trim_threshold={2**62}", "glibc.malloc.hugetlb=1"])
ENV = "GLIBC_TUNABLES"


def applies(env: dict[str, str] | None = None) -> bool:
    """Whether the C library reads the tunables and ``env`` (default: this process's) gives none."""
    env = os.environ if env is None else env
    return ENV not in env and sys.platform == "linux" and platform.libc_ver()[0] == "glibc"


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with the tunables added where they apply."""
    env = dict(os.environ if env is None else env)
    if applies(env):
        env[ENV] = TUNABLES
    return env


def restart_with_tunables() -> None:
    """Start this command again with the tunables, unless it already runs with them (or its own)."""
    if applies():
        os.execve(sys.executable, sys.orig_argv, child_env())

