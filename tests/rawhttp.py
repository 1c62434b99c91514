"""Raw-socket HTTP/1.1 clients for the fault tests: a client that never reads, a client that
resets, a thousand clients at once. Plain trio sockets, no HTTP library in the way, so the
tests see exactly the bytes (and the TCP behaviour) the server produces; and a real
``trio-sse serve`` child process to aim them at (``serve_process``)."""

from __future__ import annotations

import os
import resource
import signal
import socket
import struct
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from support import child_env, scrape_metrics, wait_healthy, wait_metric
from trio_sse.testing import free_port

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


# ---------------------------------------------------------------- a real `trio-sse serve`


@dataclass
class ServerProcess:
    proc: trio.Process
    url: str
    stderr_path: Path

    @property
    def addr(self) -> tuple[str, int]:
        return address(self.url)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def rss(self) -> int:
        return rss_bytes(self.proc.pid)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    async def metrics(self, headers: Mapping[str, str] | None = None) -> dict[str, float]:
        """Every sample of /metrics as ``'name{label=v}' → value`` (``support.parse_metrics``)."""
        return await scrape_metrics(self.url, headers)

    async def wait_metric(self, name: str, predicate: Callable[[float], bool], *, timeout: float = 20.0) -> float:
        return await wait_metric(self.url, name, predicate, timeout=timeout)


@asynccontextmanager
async def serve_process(
    tmp_path: Path, args: Sequence[str], *, env: Mapping[str, str] | None = None, nofile: int | None = None
) -> AsyncIterator[ServerProcess]:
    """``python -m trio_sse serve ARGS --port P`` as a child process, healthy on entry;
    SIGTERM and waited for on exit (if still running)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stderr_path = tmp_path / f"serve-{port}.stderr"
    argv = [sys.executable, "-m", "trio_sse", "serve", "--port", str(port), *args]
    if nofile is not None:  # the child inherits our limit
        raise_nofile(nofile)
    with open(stderr_path, "wb") as stderr:
        async with trio.open_nursery() as nursery:
            proc: trio.Process = await nursery.start(
                lambda task_status: trio.run_process(
                    argv, stdout=stderr, stderr=stderr, check=False, env=child_env(env), task_status=task_status
                )
            )
            server = ServerProcess(proc, url, stderr_path)
            try:
                await wait_healthy(url, proc, stderr_path=stderr_path)
                yield server
            finally:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    with trio.move_on_after(10):
                        await proc.wait()
                    if proc.returncode is None:
                        proc.kill()
