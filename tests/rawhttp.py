"""Raw-socket HTTP/1.1 clients for the fault tests: a client that never reads, a client that
resets, a thousand clients at once. Plain trio sockets, no HTTP library in the way, so the
tests see exactly the bytes (and the TCP behaviour) the server produces. (A real
``trio-sse serve`` child process to aim them at: ``support.serve_process``.)"""

from __future__ import annotations

import os
import resource
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

import trio

LINGER_ZERO = struct.pack("ii", 1, 0)


def raise_nofile(wanted: int) -> None:
    """Raise RLIMIT_NOFILE toward ``wanted`` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def request(path: str = "/api/benchmark-sse", headers: Mapping[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def address(url: str) -> tuple[str, int]:
    hostport = url.split("://", 1)[1]
    host, _, port = hostport.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass
class RawClient:
    """One connection; ``data`` holds every byte received so far."""

    sock: trio.socket.SocketType
    data: bytearray = field(default_factory=bytearray)
    eof: bool = False
    error: str | None = None

    @classmethod
    async def connect(
        cls,
        addr: tuple[str, int],
        path: str = "/api/benchmark-sse",
        headers: Mapping[str, str] | None = None,
        *,
        rcvbuf: int | None = None,
        source: str | None = None,
    ) -> RawClient:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if source is not None:  # another loopback address (127.0.0.0/8): another client IP
            await sock.bind((source, 0))
        if rcvbuf is not None:
            # Set before connect, so the advertised window is small from the start.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        await sock.connect(addr)
        client = cls(sock)
        await sock.send(request(path, headers))
        return client

    async def read_until(self, needle: bytes) -> None:
        while needle not in self.data:
            if not await self.read_some():
                raise EOFError(f"connection ended before {needle!r}; got {bytes(self.data[-200:])!r}")

    async def read_some(self) -> bool:
        try:
            chunk = await self.sock.recv(65536)
        except OSError as err:
            self.error = type(err).__name__
            self.eof = True
            return False
        if not chunk:
            self.eof = True
            return False
        self.data += chunk
        return True

    async def read_to_end(self) -> None:
        while await self.read_some():
            pass

    def reset(self) -> None:
        """Close abruptly: RST instead of FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
        self.sock.close()

    def close(self) -> None:
        self.sock.close()

    @property
    def status(self) -> int:
        return int(bytes(self.data[9:12]))

    @property
    def headers(self) -> dict[str, str]:
        head = bytes(self.data).split(b"\r\n\r\n")[0].decode("latin1").split("\r\n")
        return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}

    @property
    def body(self) -> bytes:
        head, sep, body = bytes(self.data).partition(b"\r\n\r\n")
        return body

    def dechunked(self) -> tuple[bytes, bool]:
        """The body without chunk framing, and whether the terminating chunk arrived."""
        body = self.body
        out = bytearray()
        while body:
            size_line, sep, rest = body.partition(b"\r\n")
            if not sep:
                return bytes(out), False
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                return bytes(out), rest.startswith(b"\r\n")
            out += rest[:size]
            body = rest[size + 2 :]
        return bytes(out), False
