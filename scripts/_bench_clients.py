#!/usr/bin/env python3
"""The clients of the benchmarks (``scripts/bench_*.py``). Not part of the package, not tests.

Owns:

* **the raw SSE client process** (``python scripts/_bench_clients.py --port P --n N --out F``):
  one selectors (epoll) loop holding N plain-socket HTTP/1.1 connections, decoding chunked
  bodies and SSE frames, time-stamping (``time.time()``, or with ``--monotonic`` the
  system-wide ``CLOCK_MONOTONIC``, which a wall-clock step cannot move) every durable frame (by the ordinal
  at the end of its ``id:``) and every keepalive comment. Controlled over stdin/stdout: it
  prints ``ready`` once every connection has its opening bytes, and on ``stop`` writes a JSON
  summary and exits. Cheap per frame, so 10 000 connections fit in one process. ``Clients``
  starts and stops such processes from a benchmark script;
* **the polling design's client** (``Poller``, ``ssh_prefix``): the design trio-sse replaces
  (SPEC §0), spawning ``tail`` (and ``pgrep``) every interval, through ``ssh`` for a remote log.

Must not: import trio or trio_sse (a client process stays light), or know any server's
internals: clients see only bytes on the wire (or a command's output).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _bench_measure import raise_nofile

# --------------------------------------------------------------------------- client process


class _Conn:
    __slots__ = ("sock", "state", "head", "raw", "left", "sse", "chunked", "t_open", "t_ka", "inflate", "last_seq")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.state = 0  # 0 connecting, 1 awaiting headers, 2 body, 3 closed
        self.head = b""
        self.raw = b""  # undecoded chunked bytes
        self.left = 0  # bytes left in the current chunk; -1: expect CRLF after a chunk
        self.sse = b""  # decoded SSE text not yet split into frames
        self.chunked = True
        self.t_open = 0.0
        self.t_ka = 0.0
        self.inflate: Any = None  # a zlib decompressor when the response is gzip
        self.last_seq = 0  # the last durable ordinal seen: they must only grow


class ClientLoop:
    """N raw-socket SSE clients in one selectors loop (see the module docstring)."""

    def __init__(
        self, host: str, port: int, path: str, n: int, max_pending: int = 64, gzip: bool = False, monotonic: bool = False
    ) -> None:
        self.clock = time.monotonic if monotonic else time.time
        self.addr = (host, port)
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            + ("Accept-Encoding: gzip, deflate, br\r\n" if gzip else "")
            + 
            "Cache-Control: no-cache\r\n\r\n"
        ).encode()
        self.n = n
        self.max_pending = max_pending
        self.sel = selectors.DefaultSelector()
        self.started = 0
        self.pending = 0
        self.opened = 0
        self.failed = 0
        self.closed = 0
        self.statuses: dict[str, int] = {}
        self.durable: dict[int, list[float]] = {}
        self.frames: dict[str, int] = {}
        # (when, gap) of every keepalive: gap = seconds since the opening or the last keepalive
        self.ka_gaps: list[tuple[float, float]] = []
        self.bytes = 0
        self.reordered = 0
        self.ready_sent = False
        self.stop = False

    def _start_one(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = s.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS):
            s.close()
            self.failed += 1
            return
        c = _Conn(s)
        self.sel.register(s, selectors.EVENT_WRITE, c)
        self.started += 1
        self.pending += 1

    def _fill(self) -> None:
        while self.started + self.failed < self.n and self.pending < self.max_pending:
            self._start_one()

    def _close(self, c: _Conn, failed: bool) -> None:
        if c.state == 3:
            return
        if c.state < 2:
            self.pending -= 1
        self.sel.unregister(c.sock)
        c.sock.close()
        if failed and c.state < 2:
            self.failed += 1
        else:
            self.closed += 1
        c.state = 3

    def _frames(self, c: _Conn, data: bytes, now: float) -> None:
        if b"\r" in data:  # sse-starlette ends lines with CRLF (WHATWG allows CR, LF, CRLF)
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = c.sse + data
        start = 0
        n = len(buf)
        while start < n:
            first = buf[start : start + 1]
            if first == b"\n":  # a blank line: dispatches nothing (e.g. after a comment)
                start += 1
                continue
            if first == b":":  # a comment line stands alone (keepalives need no blank line)
                end = buf.find(b"\n", start)
                if end < 0:
                    break
                if buf.startswith(b": connected", start):
                    kind = "open"
                else:
                    kind = "keepalive"
                    self.ka_gaps.append((now, now - (c.t_ka or c.t_open)))
                    c.t_ka = now
                start = end + 1
            else:
                end = buf.find(b"\n\n", start)
                if end < 0:
                    break
                frame = buf[start:end]
                start = end + 2
                if first == b"i":  # id: <target>:<run>-<n>  → a durable event
                    nl = frame.find(b"\n")
                    line = frame[:nl] if nl >= 0 else frame
                    seq = int(line.rsplit(b"-", 1)[1])
                    self.durable.setdefault(seq, []).append(now)
                    if seq <= c.last_seq:
                        self.reordered += 1  # a duplicate or an event out of order
                    c.last_seq = seq
                    kind = "durable"
                elif first == b"e":
                    nl = frame.find(b"\n")
                    kind = frame[7:nl].decode() if nl >= 0 else "event"
                else:
                    kind = "retry" if first == b"r" else "other"
            self.frames[kind] = self.frames.get(kind, 0) + 1
        c.sse = buf[start:]

    def _body(self, c: _Conn, data: bytes, now: float) -> None:
        if not c.chunked:
            self._frames(c, c.inflate.decompress(data) if c.inflate else data, now)
            return
        buf = c.raw + data if c.raw else data
        pos = 0
        out = []
        n = len(buf)
        while pos < n:
            if c.left > 0:
                take = min(c.left, n - pos)
                out.append(buf[pos : pos + take])
                pos += take
                c.left -= take
                if c.left:
                    break
                c.left = -1
            if c.left == -1:
                if n - pos < 2:
                    break
                pos += 2
                c.left = 0
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                break
            size = int(buf[pos:nl].split(b";", 1)[0], 16)
            pos = nl + 2
            if size == 0:
                break  # the body's end; the server closes or keeps the connection idle
            c.left = size
        c.raw = buf[pos:]
        if out:
            body = b"".join(out)
            self._frames(c, c.inflate.decompress(body) if c.inflate else body, now)

    def _readable(self, c: _Conn) -> None:
        try:
            data = c.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(c, failed=True)
            return
        now = self.clock()
        if not data:
            self._close(c, failed=c.state < 2)
            return
        self.bytes += len(data)
        if c.state == 1:
            c.head += data
            end = c.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, rest = c.head[:end].decode("latin-1"), c.head[end + 4 :]
            c.head = b""
            status = head.split(" ", 2)[1] if " " in head else "?"
            if status != "200":
                self.statuses[status] = self.statuses.get(status, 0) + 1
                self._close(c, failed=True)
                return
            c.chunked = "transfer-encoding: chunked" in head.lower()
            if "content-encoding: gzip" in head.lower():
                c.inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            c.state = 2
            c.t_open = now
            self.pending -= 1
            self.opened += 1
            if rest:
                self._body(c, rest, now)
        elif c.state == 2:
            self._body(c, data, now)

    def run(self, control: int | None) -> None:
        if control is not None:
            self.sel.register(control, selectors.EVENT_READ, None)
        self._fill()
        while not self.stop:
            for key, mask in self.sel.select(timeout=0.5):
                c = key.data
                if c is None:
                    line = os.read(control, 4096) if control is not None else b""
                    if not line or b"stop" in line:
                        self.stop = True
                    continue
                if c.state == 0:
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        self._close(c, failed=True)
                        continue
                    c.sock.send(self.request)  # ~100 bytes into an empty socket buffer
                    c.state = 1
                    self.sel.modify(c.sock, selectors.EVENT_READ, c)
                else:
                    self._readable(c)
            self._fill()
            if not self.ready_sent and self.started + self.failed >= self.n and self.pending == 0:
                self.ready_sent = True
                print(f"ready {self.opened} {self.failed}", flush=True)

    def summary(self) -> dict[str, object]:
        return {
            "opened": self.opened,
            "failed": self.failed,
            "closed": self.closed,
            "statuses": self.statuses,
            "durable": {str(k): v for k, v in self.durable.items()},
            "frames": self.frames,
            "ka_gaps": self.ka_gaps,
            "bytes": self.bytes,
            "reordered": self.reordered,
        }


def clients_main(argv: Sequence[str]) -> None:
    p = argparse.ArgumentParser(prog="_bench_clients.py", description="N raw-socket SSE clients (see the module docstring)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/api/benchmark-sse")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-pending", type=int, default=64)
    p.add_argument("--gzip", action="store_true", help="send Accept-Encoding: gzip (as browsers do)")
    p.add_argument("--monotonic", action="store_true", help="stamp with time.monotonic() (Linux: system-wide)")
    a = p.parse_args(argv)
    raise_nofile()
    loop = ClientLoop("127.0.0.1", a.port, a.path, a.n, a.max_pending, a.gzip, a.monotonic)
    loop.run(sys.stdin.fileno())
    Path(a.out).write_text(json.dumps(loop.summary()))
    print("done", flush=True)


class Clients:
    """Client processes driven from the orchestrator: start, wait until ready, stop (a context
    manager: killed on exit if not stopped)."""

    def __init__(
        self, port: int, n: int, procs: int, workdir: Path, path: str = "/api/benchmark-sse", gzip: bool = False,
        monotonic: bool = False,
    ) -> None:
        self.outs = [workdir / f"clients-{i}.json" for i in range(procs)]
        shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        self.procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--port", str(port), "--path", path,
                 "--n", str(k), "--out", str(out), *(["--gzip"] if gzip else []),
                 *(["--monotonic"] if monotonic else [])],  # fmt: skip
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            for k, out in zip(shares, self.outs)
        ]

    def wait_ready(self) -> tuple[int, int]:
        opened = failed = 0
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().split()
            if not line or line[0] != b"ready":
                raise RuntimeError(f"client process ended early: {line!r}")
            opened += int(line[1])
            failed += int(line[2])
        return opened, failed

    def stop(self) -> dict[str, object]:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(b"stop\n")
            proc.stdin.flush()
        merged: dict[str, object] = {"opened": 0, "failed": 0, "closed": 0, "bytes": 0, "reordered": 0}
        durable: dict[int, list[float]] = {}
        frames: dict[str, int] = {}
        statuses: dict[str, int] = {}
        gaps: list[float] = []
        for proc, out in zip(self.procs, self.outs):
            proc.wait(60)
            s = json.loads(out.read_text())
            for k in ("opened", "failed", "closed", "bytes", "reordered"):
                merged[k] += s[k]  # type: ignore[operator]
            for k, v in s["durable"].items():
                durable.setdefault(int(k), []).extend(v)
            for k, v in s["frames"].items():
                frames[k] = frames.get(k, 0) + v
            for k, v in s["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
            gaps.extend(s["ka_gaps"])
        merged.update(durable=durable, frames=frames, statuses=statuses, ka_gaps=gaps)
        return merged

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()  # stopped ones have exited already

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------- the polling design


def ssh_prefix(user: str, host: str, port: int, identity: str, known_hosts: str) -> list[str]:
    """The ``ssh`` command line the polling design runs each remote command with (one new
    connection per command, as it did; host keys verified, unlike it)."""
    return ["ssh", "-i", identity, "-p", str(port), "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
            f"{user}@{host}"]  # fmt: skip


class Poller:
    """One client of the design trio-sse replaces (SPEC §0): every ``interval`` seconds it
    spawns ``tail -100 LOG`` (through ``ssh`` for a remote log) — and with ``pgrep`` also the
    process check — and regexes the output. Generous to it: its regex matches WAA's
    ``Finished domain/task_id`` (the original's patterns never matched WAA at all). Records
    when each task id was first seen."""

    # A task's end as WAA logs it: ``Finished domain/task_id`` — or ``Exception in
    # domain/task_id: …`` for one that raised (generous to it too: the original's patterns
    # never matched WAA at all).
    FINISHED = re.compile(rb"(?:Finished|Exception in) ([^/\s]+)/([^\s:]+)")

    def __init__(self, log: str, interval: float, prefix: Sequence[str], offset: float, pgrep: bool = False) -> None:
        self.log = log
        self.interval = interval
        self.prefix = list(prefix)
        self.offset = offset
        self.pgrep = pgrep
        self.seen: dict[str, float] = {}
        self.commands = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        due = time.monotonic() + self.offset
        while not self.stop.wait(max(0.0, due - time.monotonic())):
            if self.pgrep:
                subprocess.run([*self.prefix, "pgrep", "-f", "python.*run.py"], capture_output=True)
                self.commands += 1
            out = subprocess.run([*self.prefix, "tail", "-100", self.log], capture_output=True).stdout
            self.commands += 1
            now = time.time()
            for m in self.FINISHED.finditer(out):
                self.seen.setdefault(m.group(2).decode(), now)
            due += self.interval

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


if __name__ == "__main__":
    clients_main(sys.argv[1:])
