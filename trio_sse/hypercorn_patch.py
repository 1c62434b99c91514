"""The one patch of Hypercorn trio-sse carries: a write fast path in its trio worker.

Owns ``install_fast_send()`` and nothing else that touches Hypercorn's internals. Applied only
by ``tuning.tune_process()``, i.e. by ``cli.main`` for a process that is ours (never by
``server.serve``, ``trio_sse.testing`` or a library caller unless they ask). Must not: change
the bytes, their order, or what a cancelled or failing write does; install on a Hypercorn it
was not read against. ``pyproject.toml`` pins Hypercorn to the release range checked here while
the patch exists; its right long-term home is upstream Hypercorn.

Why: Hypercorn's trio worker writes every chunk under a ``trio.Lock`` and a shielded cancel
scope, and ``SocketStream.send_all`` adds its own checkpoint: two scheduler round trips per
chunk, a third of the CPU per delivered event (``docs/performance.md``). The fast path: when
the connection's send lock is free (no write in progress), try the non-blocking ``send`` at
once; if the kernel took every byte, done — the same bytes, in the same order, with no task
switch; otherwise (a full socket buffer, an error) the *rest* goes through Hypercorn's own
locked, shielded path, which also handles the error exactly as before. Plain TCP only (TLS
streams keep the stock path).

Cancellation: the stock path's lock acquisition is a checkpoint, so a cancelled request task
raises ``Cancelled`` there before writing anything. The fast path keeps that: it starts with
``checkpoint_if_cancelled()`` (a cancel point that costs no scheduler round trip when nothing
is cancelled), so a cancelled task never writes, and a task that only ever takes the fast path
can still be cancelled.
"""

from __future__ import annotations

import inspect
import os
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import trio
from hypercorn.events import RawData
from hypercorn.trio.tcp_server import TCPServer

__all__ = ["CHECKED_RELEASES", "install_fast_send", "installed"]

# Hypercorn releases (major, minor) whose TCPServer.protocol_send this patch was read against.
CHECKED_RELEASES = ((0, 18),)

_state = {"fast_send": False}  # process-wide by nature: a patch of a class


def _checked_version() -> bool:
    try:
        parts = version("hypercorn").split(".")[:2]
        return (int(parts[0]), int(parts[1])) in CHECKED_RELEASES
    except (PackageNotFoundError, ValueError, IndexError):
        return False


def installed() -> bool:
    return _state["fast_send"]


def install_fast_send() -> bool:
    """Install the write fast path in Hypercorn's trio worker; True when it is in place."""
    if _state["fast_send"]:
        return True
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
            await trio.lowlevel.checkpoint_if_cancelled()
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

    protocol_send.__doc__ = f"{stock.__qualname__} with trio_sse.hypercorn_patch's write fast path."
    TCPServer.protocol_send = protocol_send  # type: ignore[method-assign]
    _state["fast_send"] = True
    return True
