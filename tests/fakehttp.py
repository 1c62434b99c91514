"""A tiny HTTP server for tests: a stand-in for WAA's ``/probe`` (or any endpoint) on
127.0.0.1:0. Real sockets, no framework: it reads one request head and answers with fixed
bytes — or never answers, for the tests of a hung probe."""

from __future__ import annotations

import trio


def http_200(body: bytes, content_type: str = "application/json") -> bytes:
    """A whole HTTP/1.1 response carrying ``body``, closing the connection."""
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
        % (content_type.encode(), len(body), body)
    )


async def serve_http(response: bytes | None, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Answer every request with the raw ``response`` (``None``: read it and never answer).
    ``task_status.started`` gets the port."""

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    return
                request += chunk
            if response is None:
                await trio.sleep_forever()
            await stream.send_all(response)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)
