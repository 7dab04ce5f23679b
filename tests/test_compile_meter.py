"""The compile meter: seconds spent tracing and compiling, and persistent-cache hits."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest

from visual_priors.train.compile_meter import CompileMeter, union_seconds


def test_union_counts_nested_and_overlapping_spans_once():
    assert union_seconds([]) == 0.0
    assert union_seconds([(0, 2), (1, 3), (5, 6)]) == pytest.approx(4.0)
    assert union_seconds([(0, 10), (2, 3), (4, 5)]) == pytest.approx(10.0)  # nested: once


def test_a_new_program_compiles_and_the_same_one_does_not():
    f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum())
    x = jnp.ones((37, 19))
    with CompileMeter() as first:
        f(x).block_until_ready()
    with CompileMeter() as second:
        f(x).block_until_ready()
    assert first.seconds > 0
    assert second.seconds == 0.0
    with CompileMeter() as other_shape:
        f(jnp.ones((41, 19))).block_until_ready()
    assert other_shape.seconds > 0


_CHILD = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp
    jax.config.update("jax_compilation_cache_dir", sys.argv[1])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    from visual_priors.train.compile_meter import CompileMeter
    with CompileMeter() as m:
        jax.jit(lambda x: jnp.cumsum(jnp.sin(x) @ x.T, axis=0))(jnp.ones((29, 13))).block_until_ready()
    print(json.dumps({"seconds": m.seconds, "hits": m.cache_hits}))
""")


def test_a_second_process_reads_the_program_from_the_persistent_cache(tmp_path):
    def child():
        out = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / "cache")], check=True,
                             capture_output=True, text=True).stdout
        import json
        return json.loads(out.strip().splitlines()[-1])
    first, second = child(), child()
    assert first["hits"] == 0 and first["seconds"] > 0
    assert second["hits"] >= 1
