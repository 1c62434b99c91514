"""A real HTTP receiver on 127.0.0.1:0 for the alert tests: it records every request whole
(h11 parses them) and answers by a script — ``"ok"`` (200), ``"fail"`` (500) or ``"hang"``
(no answer until ``release()``, then 200). Tests await ``next_request()``; nothing sleeps."""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import h11
import trio


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in urllib.parse.parse_qs(self.body.decode(), keep_blank_values=True).items()}


class Receiver:
    def __init__(self, script: Sequence[str] = (), *, then: str = "ok") -> None:
        self.script = list(script)
        self.then = then
        self.requests: list[Request] = []
        self.closed = 0  # connections the client closed after our answer
        self._arrived_send, self._arrived = trio.open_memory_channel[Request](math.inf)
        self._closed_send, self._closed = trio.open_memory_channel[int](math.inf)
        self._release = trio.Event()
        self.port = 0

    def url(self, scheme: str, path: str = "/hook") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def release(self) -> None:
        """Answer the hung requests (200) and every later "hang"."""
        self._release.set()

    async def next_request(self) -> Request:
        return await self._arrived.receive()

    async def wait_closed(self, n: int) -> None:
        """Until ``n`` connections in all were closed by the client after our answer."""
        while self.closed < n:
            await self._closed.receive()

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            conn = h11.Connection(h11.SERVER)
            head: h11.Request | None = None
            body = b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    conn.receive_data(data)
                    if not data and conn.their_state is not h11.DONE:
                        return
                    continue
                if isinstance(event, h11.Request):
                    head = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    return
            assert head is not None
            request = Request(
                head.method.decode(),
                head.target.decode(),
                {k.decode().lower(): v.decode() for k, v in head.headers},
                body,
            )
            index = len(self.requests)
            self.requests.append(request)
            self._arrived_send.send_nowait(request)
            behaviour = self.script[index] if index < len(self.script) else self.then
            if behaviour == "hang":
                await self._release.wait()
            status = 500 if behaviour == "fail" else 200
            reply = b'{"ok": true}' if status == 200 else b'{"error": "receiver says no"}'
            await stream.send_all(
                conn.send(
                    h11.Response(
                        status_code=status,
                        headers=[("Content-Type", "application/json"), ("Content-Length", str(len(reply))), ("Connection", "close")],
                    )
                )
                + conn.send(h11.Data(data=reply))
                + conn.send(h11.EndOfMessage())
            )
            # Wait for the client to close its end: then its thread is done with us.
            while await stream.receive_some(65536):
                pass
            self.closed += 1
            self._closed_send.send_nowait(self.closed)
