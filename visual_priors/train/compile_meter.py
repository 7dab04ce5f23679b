"""Seconds this process spends compiling, read from JAX's own monitoring events.

JAX reports each tracing, lowering and XLA compilation as a time span; a persistent-cache hit
replaces the XLA compilation with a (short) cache read inside the same span. Nested spans (a
jitted function traced inside another) would count twice if their durations were summed, so
the meter measures the union of the spans that fall in its window.

    with CompileMeter() as meter:
        train()
    meter.seconds, meter.cache_hits
"""

from __future__ import annotations

import threading
import time

from jax import monitoring

# Tracing, lowering to MLIR and the backend compile (or its persistent-cache read).
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                  "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"

_lock = threading.Lock()
_spans: list[tuple[float, float]] = []
_hits: list[float] = []
_installed = False


def _on_span(event: str, start: float, end: float, **_) -> None:
    if event in COMPILE_EVENTS:
        with _lock:
            _spans.append((start, end))


def _on_event(event: str, **_) -> None:
    if event == CACHE_HIT_EVENT:
        with _lock:
            _hits.append(time.time())


def _install() -> None:
    global _installed
    with _lock:
        if not _installed:
            monitoring.register_event_time_span_listener(_on_span)
            monitoring.register_event_listener(_on_event)
            _installed = True


def union_seconds(spans: list[tuple[float, float]]) -> float:
    """Total length of the union of [start, end] intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


class CompileMeter:
    """Compile seconds and persistent-cache hits between enter and exit (this process)."""

    def __enter__(self) -> CompileMeter:
        _install()
        self.start, self.end = time.time(), None
        return self

    def __exit__(self, *exc) -> None:
        self.end = time.time()

    def _window(self) -> tuple[float, float]:
        return self.start, self.end if self.end is not None else time.time()

    @property
    def seconds(self) -> float:
        lo, hi = self._window()
        with _lock:
            spans = [(max(s, lo), min(e, hi)) for s, e in _spans if e > lo and s < hi]
        return union_seconds(spans)

    @property
    def cache_hits(self) -> int:
        lo, hi = self._window()
        with _lock:
            return sum(lo <= t <= hi for t in _hits)
