"""Process-wide tuning for a server that holds thousands of long-lived streams.

Owns ``tune_process()``: two measured, idempotent changes for a process that is ours — the
GC settings below and Hypercorn's write fast path (``trio_sse.hypercorn_patch``). Only
``cli.main`` calls it (``--no-process-tuning`` skips it); ``server.serve``, ``trio_sse.testing``
and library callers leave the process as it is unless they call it themselves. The numbers are
in ``docs/performance.md`` (``scripts/bench_fanout.py``, ``scripts/bench_capacity.py``). Must
not: touch sockets, or change any observable behaviour of a stream (bytes, order, cancellation).

* ``tune_gc()`` — CPython's cyclic GC with its default thresholds (700, 10, 10) was the
  largest single cost of fan-out: every send in Trio + Hypercorn keeps a dozen objects (the
  coroutine chain, outcome and trap objects) alive while the task is parked, so a broadcast
  to 1000 streams holds ~15 000 fresh objects at once. Young collections then run dozens of
  times per broadcast and promote those transients into the old generation, which triggers
  *full* collections of every stream's objects (~350 per stream): measured at 1000 streams,
  19 full collections of ~220 ms in 20 s, 60 % of the server's CPU, and every one a pause
  that delays all clients (p99 latency, keepalive lateness). Freezing what exists at start-up
  (modules, the app: it lives as long as the process) and raising the young threshold so a
  broadcast fits in it removes nearly all of that.
* ``install_fast_send()`` — Hypercorn's write fast path: see ``trio_sse.hypercorn_patch``.
"""

from __future__ import annotations

import gc

from trio_sse.hypercorn_patch import install_fast_send

__all__ = ["GC_THRESHOLD", "tune_gc", "tune_process"]

# Young-generation threshold: a broadcast to a few thousand streams fits in it (measured:
# ~15 live objects per stream mid-broadcast). Middle and old thresholds stay CPython's.
GC_THRESHOLD = 50_000


def tune_gc(threshold: int = GC_THRESHOLD) -> None:
    """Freeze the objects alive now and raise the young GC threshold (never lower it)."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    if young < threshold:
        gc.set_threshold(threshold, middle, old)


def tune_process() -> bool:
    """Both changes; call it once the long-lived objects (app, hub) exist, so they are frozen
    with the rest of start-up. Returns whether the write fast path is in place."""
    tune_gc()
    return install_fast_send()
