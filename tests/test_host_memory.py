"""The malloc tunables the command line runs with: set when it starts, kept when given, and
what they are for, an XLA CPU call that no longer faults its scratch memory in afresh."""

import os
import platform
import subprocess
import sys

import pytest

from visual_priors.suite import host_memory

pytestmark = pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc malloc tunables")

# The gradient of a softmax head over 4096 rows of 2,048 words: a train step in small, whose
# scratch (32 MB of logits and their gradient) is allocated and freed on every call. Prints the
# tunables it ran with and its minor page faults per call.
PROBE = """
from visual_priors.suite import host_memory
host_memory.restart_with_tunables()
import os, resource
import jax, jax.numpy as jnp

def loss(w, x):
    return -jax.nn.log_softmax(jnp.tanh(x @ w[0]) @ w[1]).mean()

grad = jax.jit(jax.grad(loss))
w, x = (jnp.full((64, 256), 0.01), jnp.full((256, 2048), 0.01)), jnp.ones((4096, 64))
jax.block_until_ready(grad(w, x))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    jax.block_until_ready(grad(w, x))
print(os.environ.get("GLIBC_TUNABLES"))
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def _probe(env_tunables):
    env = {k: v for k, v in os.environ.items() if k != host_memory.ENV}
    if env_tunables is not None:
        env[host_memory.ENV] = env_tunables
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout.split()
    return out[0], float(out[1])


def test_a_command_restarts_with_the_tunables_and_then_stops_faulting_its_scratch_in():
    tunables, faults = _probe(None)
    assert tunables == host_memory.TUNABLES
    own, default_faults = _probe("glibc.malloc.hugetlb=0")
    assert own == "glibc.malloc.hugetlb=0"  # a user's own setting is kept, not overridden
    # Tens of MB in 4 kB pages: about 12,000 faults per call with glibc's defaults.
    assert default_faults > 3_000
    assert faults < 100


def test_workers_are_handed_the_tunables_and_a_users_own_are_kept():
    assert host_memory.child_env({"A": "1"}) == {"A": "1", host_memory.ENV: host_memory.TUNABLES}
    assert host_memory.child_env({host_memory.ENV: "x", "A": "1"}) == {host_memory.ENV: "x", "A": "1"}
