"""Process-wide tuning for a server that holds thousands of long-lived streams.

Owns two measured changes that ``server.serve`` applies once per process (both idempotent);
the numbers are in ``docs/performance.md`` (``scripts/bench_fanout.py``,
``scripts/bench_capacity.py``). Must not: touch sockets itself, change any observable
behaviour of a stream (bytes, order, cancellation), or apply a patch it cannot verify.

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
* ``install_fast_send()`` — Hypercorn's trio worker writes every chunk under a ``trio.Lock``
  and a shielded cancel scope, and ``SocketStream.send_all`` adds its own checkpoint: two
  scheduler round trips per chunk, a third of the CPU per delivered event. The fast path:
  when the connection's send lock is free (no write in progress), try the non-blocking
  ``send`` at once; if the kernel took every byte, done — the same bytes, in the same order,
  with no task switch; otherwise (a full socket buffer, an error) the *rest* goes through
  Hypercorn's own locked, shielded path, which also handles the error exactly as before.
  Plain TCP only (TLS streams keep the stock path). It patches one method of Hypercorn's
  ``TCPServer`` and refuses to (returns False) unless the method is the stock one of a
  Hypercorn version it was checked against — an upgrade falls back to the stock path.
"""

from __future__ import annotations

import gc
import inspect
import os
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["GC_THRESHOLD", "install_fast_send", "tune_gc", "tune_process"]

# Young-generation threshold: a broadcast to a few thousand streams fits in it (measured:
# ~15 live objects per stream mid-broadcast). Middle and old thresholds stay CPython's.
GC_THRESHOLD = 50_000
# Hypercorn releases whose TCPServer.protocol_send this patch was read against.
_CHECKED = ((0, 18),)

_state = {"fast_send": False}  # process-wide by nature: a patch of a class


def tune_process() -> None:
    """Both changes, for a process that is ours to tune (``trio-sse serve``, a benchmark's
    server process)."""
    tune_gc()
    install_fast_send()


def tune_gc(threshold: int = GC_THRESHOLD) -> None:
    """Freeze the objects alive now and raise the young GC threshold. (``serve`` unfreezes
    when it returns, so a process that serves again — tests — starts from a clean slate.)"""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    if young < threshold:
        gc.set_threshold(threshold, middle, old)


def _checked_version() -> bool:
    try:
        parts = version("hypercorn").split(".")[:2]
        return (int(parts[0]), int(parts[1])) in _CHECKED
    except (PackageNotFoundError, ValueError, IndexError):
        return False


def install_fast_send() -> bool:
    """Install the write fast path in Hypercorn's trio worker; True when it is in place."""
    if _state["fast_send"]:
        return True
    import trio
    from hypercorn.events import RawData
    from hypercorn.trio.tcp_server import TCPServer

    stock = TCPServer.protocol_send
    try:
        source = inspect.getsource(stock)
    except (OSError, TypeError):
        return False
    if not (
        _checked_version()
        and stock.__module__ == "hypercorn.trio.tcp_server"
        and "self.send_lock" in source
        and "self.stream.send_all(event.data)" in source
    ):
        return False

    async def protocol_send(self: Any, event: Any) -> None:
        stream = self.stream
        if type(event) is RawData and type(stream) is trio.SocketStream and not self.send_lock.locked():
            data = event.data
            try:
                sent = os.write(stream.socket.fileno(), data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # closed, reset, aborted: the stock path raises and handles it
            if sent == len(data):
                return
            if sent:
                event = RawData(data=data[sent:], address=event.address)
        await stock(self, event)

    protocol_send.__doc__ = f"{stock.__qualname__} with trio_sse.tuning's write fast path."
    TCPServer.protocol_send = protocol_send  # type: ignore[method-assign]
    _state["fast_send"] = True
    return True
