"""A real ``redis-server`` on a loopback port, for cluster-mode tests (pytest plugin).

Owns: the ``redisd`` fixture (a :class:`RedisD`) and the temporary directory its server keeps
its data and log in. It must not know anything about trio-sse's own code (tests build their
clients from ``redisd.url``).

How it works:

* ``redis-server`` runs in the foreground on ``127.0.0.1:<free port>`` with every setting on
  its command line (no config file), ``--dir`` in the test's temporary directory, logging to
  ``redis.log`` there (shown when a start fails).
* Persistence: ``appendonly yes`` with ``appendfsync always``, so a SIGKILL loses no
  acknowledged write and ``start()`` after ``stop()`` comes back *with* the data — an outage,
  not a loss. ``restart_empty()`` deletes the data files between the two: Redis restarted
  without its data (the case the leader must republish for). No RDB snapshots (``save ""``).
* Readiness: ``PING`` over a plain socket is polled until ``+PONG`` (a server still loading
  its AOF answers ``-LOADING``) under a bounded ``fail_after`` — no fixed sleep.
* ``await redisd.stop()`` is SIGKILL (a crash, not a shutdown: nothing is flushed on the way
  out); ``await redisd.start()`` starts it again on the same port; ``redisd.frozen()``
  (SIGSTOP … SIGCONT) keeps the connections open while nothing answers — a hung server.
* ``await redisd.command("SET", "k", "v")`` sends one command and returns the raw reply
  bytes, for tests that put junk at a key without going through the code under test.

If ``redis-server`` is missing, tests using the fixture skip — or fail when ``CI=true``, so CI
cannot go green without it (``scripts/dev test`` installs the Debian package ``redis-server``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

REDIS_BINARY = "redis-server"


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path and os.access(path, os.X_OK):
        return path
    reason = f"{tool} is not installed (Debian: apt-get install redis-server)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _resp(*args: str | bytes) -> bytes:
    """One command in RESP (an array of bulk strings)."""
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        raw = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class RedisD:
    """One redis-server. Attributes tests use: ``host``, ``port``, ``url``, ``dir``, ``log``."""

    def __init__(self, tmp: Path, *, appendfsync: str = "always") -> None:
        self.binary = _need(REDIS_BINARY)
        self.appendfsync = appendfsync  # "always" for tests; benchmarks may use "everysec"
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.dir = tmp / "redis"
        self.dir.mkdir()
        self.log = tmp / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        assert not self.running, "redis-server is already running"
        argv = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.dir),
            "--logfile", str(self.log),
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        with trio.fail_after(10):
            while True:
                if self._proc.poll() is not None:
                    log = self.log.read_text() if self.log.exists() else ""
                    raise RuntimeError(f"redis-server exited with {self._proc.returncode}:\n{log}")
                try:
                    if (await self.command("PING")).startswith(b"+PONG"):
                        return
                except OSError:
                    pass
                await trio.sleep(0.01)  # polling interval of the readiness check

    async def stop(self) -> None:
        """SIGKILL the server (a crash) and reap it. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.send_signal(signal.SIGCONT)  # a frozen server must die too
            proc.kill()
        except ProcessLookupError:
            pass
        with trio.fail_after(10):
            while proc.poll() is None:
                await trio.sleep(0.01)  # polling the kernel's reaping, bounded above

    async def restart_empty(self) -> None:
        """Kill the server, delete its data, start it again on the same port: empty."""
        await self.stop()
        for path in self.dir.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        await self.start()

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """The server stops (SIGSTOP) and goes on (SIGCONT) after the block: connections stay
        open but nothing answers — a hung Redis."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            if self._proc is not None:
                self._proc.send_signal(signal.SIGCONT)

    async def command(self, *args: str | bytes) -> bytes:
        """Send one command on a fresh connection; the raw reply (its first read)."""
        stream = await trio.open_tcp_stream(self.host, self.port)
        async with stream:
            with trio.fail_after(5):
                await stream.send_all(_resp(*args))
                return await stream.receive_some(1 << 16)


@pytest.fixture
async def redisd(tmp_path: Path) -> AsyncIterator[RedisD]:
    server = RedisD(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
