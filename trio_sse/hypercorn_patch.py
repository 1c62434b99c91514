"""The patches of Hypercorn trio-sse carries, and nothing else touching Hypercorn's internals.

Owns two patches, each applied only to a process that is ours (``cli.main``; never by
``server.serve``, ``trio_sse.testing`` or a library caller unless they ask), each refusing to
install on a Hypercorn it was not read against. ``pyproject.toml`` pins Hypercorn to the
release range checked here while the patches exist; their right long-term home is upstream.

* ``install_fast_send()`` — a write fast path in the trio worker (applied by
  ``tuning.tune_process``, so ``--no-process-tuning`` skips it). Must not change the bytes,
  their order, or what a cancelled or failing write does.
* ``install_error_bodies()`` — requests that never reach the app (a malformed request line, a
  header block over the limit, a ``Transfer-Encoding`` h11 does not implement) are answered by
  Hypercorn's h11 protocol with an empty body; this gives them the JSON ``{"error": …}`` every
  other error has. HTTP/2 stream errors are RST frames, with no body to give.

The fast path, in detail:

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

__all__ = ["CHECKED_RELEASES", "install_error_bodies", "install_fast_send", "installed"]

# Hypercorn releases (major, minor) whose TCPServer.protocol_send this patch was read against.
CHECKED_RELEASES = ((0, 18),)

_state = {"fast_send": False, "error_bodies": False}  # process-wide by nature: patches of classes


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


# What the status hints of h11's protocol errors mean (h11 gives no message to the server).
ERROR_MESSAGES = {
    400: "bad request: the request line or headers could not be parsed",
    413: "request too large",
    414: "request line too long",
    431: "request headers too large",
    501: "not implemented: only Transfer-Encoding: chunked is supported",
}


def install_error_bodies() -> bool:
    """JSON bodies for the errors Hypercorn's h11 protocol answers itself; True when in place."""
    if _state["error_bodies"]:
        return True
    import json
    from itertools import chain

    import h11
    from hypercorn.protocol.h11 import H11Protocol

    stock = H11Protocol._send_error_response
    try:
        source = inspect.getsource(stock)
    except (OSError, TypeError):
        return False
    if not (_checked_version() and '(b"content-length", b"0")' in source and "h11.EndOfMessage()" in source):
        return False

    async def _send_error_response(self: Any, status_code: int) -> None:
        message = ERROR_MESSAGES.get(status_code, f"request refused (HTTP {status_code})")
        body = json.dumps({"error": message}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await self._send_h11_event(
            h11.Response(status_code=status_code, headers=list(chain(headers, self.config.response_headers("h11"))))
        )
        await self._send_h11_event(h11.Data(data=body))
        await self._send_h11_event(h11.EndOfMessage())

    _send_error_response.__doc__ = "Hypercorn's error response with trio_sse.hypercorn_patch's JSON body."
    H11Protocol._send_error_response = _send_error_response  # type: ignore[method-assign]
    _state["error_bodies"] = True
    return True
