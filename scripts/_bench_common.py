#!/usr/bin/env python3
"""Shared pieces of the benchmark scripts (``scripts/bench_*.py``). Not part of the package,
not tests.

Owns:

* process measurements from ``/proc`` (CPU seconds, RSS) and small statistics / table helpers;
* **the raw SSE client process** (``python scripts/_bench_common.py clients ...``): one
  selectors (epoll) loop holding N plain-socket HTTP/1.1 connections, decoding chunked bodies
  and SSE frames, time-stamping (``time.time()``) every durable frame (by the ordinal at the
  end of its ``id:``) and every keepalive comment. Controlled over stdin/stdout: it prints
  ``ready`` once every connection has its opening bytes, and on ``stop`` writes a JSON
  summary and exits. Cheap per frame, so 10 000 connections fit in one process;
* **the two servers under test**, each in its own process so its CPU and RSS can be read
  (``python scripts/_bench_common.py server trio|starlette ...``):
  - ``trio``: trio-sse's real ``serve()`` (Hypercorn + Quart-Trio + Monitor + EventStream),
    with a publisher task that drives ``Monitor.apply_parsed`` with a realistic task start,
    step and finish (the parser's own events) at ``--rate`` per second after SIGUSR1;
  - ``starlette``: the peer — sse-starlette's ``EventSourceResponse`` on uvicorn, a minimal
    broadcaster with one bounded ``asyncio.Queue`` per client, sending *the same bytes*
    (frames encoded once with trio-sse's own pure encoders and shared by every client), the
    same opening, the current ``progress`` every ``--interval`` seconds, a ping as keepalive.
  Both write the wall-clock publish time of every durable event to ``--times`` when done.

Must not: import anything from the benchmark scripts, or be imported by the package.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import platform
import random
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Sequence
from typing import Any
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
DOMAINS = ("chrome", "msedge", "notepad", "settings", "vs_code", "vlc", "file_explorer",
           "libreoffice_calc", "libreoffice_writer", "windows_calc", "clock", "microsoft_paint")  # fmt: skip
ERRORS = (
    "HTTPConnectionPool(host='20.20.20.21', port=5000): Read timed out. (read timeout=90)",
    "pyautogui.FailSafeException: PyAutoGUI fail-safe triggered from mouse moving to a corner",
)

# --------------------------------------------------------------------------- measurements


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (its threads included), from /proc."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank on sorted values; NaN when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-markdown table (pastes into docs/performance.md as is)."""
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(c: object) -> str:
    if isinstance(c, float):
        if c != c:
            return "–"
        return f"{c:.3g}" if abs(c) < 100 else f"{c:.0f}"
    return str(c)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # a script, not a test: polling a port for readiness
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("trio", "hypercorn", "quart", "quart-trio", "h11", "uvicorn", "starlette", "sse-starlette"):
        try:
            versions.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return (
        f"{os.cpu_count()} × {model}, Linux {platform.release()}, Python {platform.python_version()}; "
        + ", ".join(versions)
    )


def script(name: str) -> str:
    return str(Path(__file__).resolve().parent / name)


def kill(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear in {timeout} s")
        time.sleep(0.05)


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

    def __init__(self, host: str, port: int, path: str, n: int, max_pending: int = 64, gzip: bool = False) -> None:
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
        now = time.time()
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
    p = argparse.ArgumentParser(prog="_bench_common.py clients")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/api/benchmark-sse")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-pending", type=int, default=64)
    p.add_argument("--gzip", action="store_true", help="send Accept-Encoding: gzip (as browsers do)")
    a = p.parse_args(argv)
    raise_nofile()
    loop = ClientLoop("127.0.0.1", a.port, a.path, a.n, a.max_pending, a.gzip)
    loop.run(sys.stdin.fileno())
    Path(a.out).write_text(json.dumps(loop.summary()))
    print("done", flush=True)


class Clients:
    """Client processes driven from the orchestrator: start, wait until ready, stop."""

    def __init__(
        self, port: int, n: int, procs: int, workdir: Path, path: str = "/api/benchmark-sse", gzip: bool = False
    ) -> None:
        self.outs = [workdir / f"clients-{i}.json" for i in range(procs)]
        shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        self.procs = [
            subprocess.Popen(
                [sys.executable, __file__, "clients", "--port", str(port), "--path", path,
                 "--n", str(k), "--out", str(out), *(["--gzip"] if gzip else [])],  # fmt: skip
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

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def latencies(received: dict[int, list[float]], published: dict[int, float]) -> list[float]:
    return [t - published[seq] for seq, times in received.items() if seq in published for t in times]


# --------------------------------------------------------------------------- workload


class Workload:
    """The published events: realistic WAA task results (UUID-WOS ids, domains, step counts,
    a failed task with an exception message now and then)."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.n = 0

    def next(self) -> tuple[str, str, float | None, str | None, int]:
        rng = self.rng
        self.n += 1
        task_id = f"{uuid.UUID(int=rng.getrandbits(128))}-WOS"
        domain = rng.choice(DOMAINS)
        steps = rng.randint(3, 30)
        if rng.random() < 0.1:
            return task_id, domain, None, rng.choice(ERRORS), steps
        return task_id, domain, rng.choice((0.0, 0.0, 1.0)), None, steps


# --------------------------------------------------------------------------- WAA log writing


def waa_record(message: str, *, module: str = "run", lineno: int = 296) -> bytes:
    """One WAA log record as ``client/run.py`` writes it to its log file (ANSI colours)."""
    from datetime import datetime

    from trio_sse import waalog

    ts = waalog.format_timestamp(datetime.now())
    return waalog.format_record(ts, "INFO", module, lineno, "MainProcess", message, ansi=True).encode()


def waa_header(tasks: Sequence[tuple[str, str]]) -> bytes:
    from trio_sse import waalog

    return waa_record(waalog.worker_tasks(0, tasks))


def waa_task(domain: str, task_id: str, score: float, steps: int = 3) -> bytes:
    """A whole task as one append: start, instruction, steps, result, finish."""
    from trio_sse import waalog

    parts = [
        waa_record(waalog.domain(domain), module="lib_run_single", lineno=30),
        waa_record(waalog.example_id(task_id), module="lib_run_single", lineno=31),
        waa_record(waalog.instruction("Open the settings and turn on night light"), module="lib_run_single", lineno=32),
    ]
    for n in range(1, steps + 1):
        parts.append(waa_record(waalog.step(n, "import pyautogui\npyautogui.click(512, 384)"), module="lib_run_single", lineno=61))
    parts.append(waa_record(waalog.result(score), module="lib_run_single", lineno=88))
    parts.append(waa_record(waalog.finished(domain, task_id), module="run", lineno=310))
    return b"".join(parts)


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

    FINISHED = __import__("re").compile(rb"Finished ([^/\s]+)/(\S+)")

    def __init__(self, log: str, interval: float, prefix: Sequence[str], offset: float, pgrep: bool = False) -> None:
        import threading

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


# --------------------------------------------------------------------------- servers


class GcMeter:
    """Time spent in CPython's cyclic GC from ``start()`` on (gc.callbacks), per generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._t0 = 0.0

    def start(self) -> None:
        import gc

        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._t0
            self.collections[info["generation"]] += 1


def _write_times(path: str, times: dict[int, float], gc_meter: GcMeter) -> None:
    tmp = path + ".tmp"
    data = {"published": {str(k): v for k, v in times.items()}, "gc_seconds": gc_meter.seconds,
            "gc_collections": gc_meter.collections}  # fmt: skip
    Path(tmp).write_text(json.dumps(data))
    os.replace(tmp, path)


def serve_trio(a: argparse.Namespace) -> None:
    import trio

    if os.environ.get("BENCH_NO_TUNING"):  # "before" numbers: serve() without trio_sse.tuning
        import trio_sse.server

        trio_sse.server.tune_gc = lambda: None  # type: ignore[assignment]
        trio_sse.server.install_fast_send = lambda: False  # type: ignore[assignment]

    from trio_sse.config import Settings, TargetSpec
    from trio_sse.logparse import StepStarted, TaskFinished, TaskStarted
    from trio_sse.server import serve

    from trio_sse.config import SSHSpec

    if a.log:
        log = Path(a.log)
    else:
        log = Path(a.workdir) / "bench.log"
        log.touch()
    ssh = None
    if a.ssh:
        user, _, hostport = a.ssh.rpartition("@")
        host, _, port = hostport.rpartition(":")
        ssh = SSHSpec(host=host, user=user or None, port=int(port), identity=a.identity, known_hosts=a.known_hosts)
    target = TargetSpec(name="local", log=str(log), process_pattern=a.process_pattern or None, ssh=ssh)
    settings = Settings(
        port=a.port,
        targets=(target,),
        keepalive=a.keepalive,
        max_streams=100_000,
        max_streams_per_ip=100_000,
    )

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGUSR1) as signals:
            stop = trio.Event()
            go = trio.Event()

            async def trigger() -> None:
                await stop.wait()

            async def publish(monitor: object) -> None:
                await go.wait()
                meter = GcMeter()
                meter.start()
                work = Workload()
                times: dict[int, float] = {}
                t0 = trio.current_time()
                offset = 0
                for i in range(a.count):
                    await trio.sleep_until(t0 + i / a.rate)
                    task_id, domain, score, error, steps = work.next()
                    events = [
                        TaskStarted(task_id, domain, offset),
                        StepStarted(steps, "computer.mouse.single_click()", offset + 200),
                        TaskFinished(task_id, domain, score, error, steps, offset + 400),
                    ]
                    offset += 600
                    times[len(monitor.history) + 1] = time.time()  # type: ignore[attr-defined]
                    monitor.apply_parsed(events)  # type: ignore[attr-defined]
                _write_times(a.times, times, meter)

            async with trio.open_nursery() as nursery:
                sources = None
                if a.poll_interval and ssh is None:  # experiment: LocalSource's poll interval
                    from trio_sse.sources.local import LocalSource

                    sources = [LocalSource(str(log), process_pattern=target.process_pattern, poll_interval=a.poll_interval)]
                running = await nursery.start(
                    lambda task_status: serve(
                        settings, shutdown_trigger=trigger, quiet=True, sources=sources, task_status=task_status
                    )
                )
                if a.count:
                    nursery.start_soon(publish, running.hub.monitors["local"])
                async for signum in signals:
                    if signum == signal.SIGUSR1:
                        go.set()
                    else:
                        source = running.hub.monitors["local"].source
                        if a.stats and hasattr(source, "statistics"):
                            import dataclasses

                            stats = dataclasses.asdict(source.statistics())
                            Path(a.stats).write_text(json.dumps(stats))
                        stop.set()
                        break

    trio.run(main)


def serve_starlette(a: argparse.Namespace) -> None:
    import asyncio

    import uvicorn
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.routing import Route

    from trio_sse.history import History, run_id_for
    from trio_sse.model import Progress, Status, TaskComplete, dumps
    from trio_sse.sse import encode_comment, encode_event, encode_retry

    history = History("local", run_id_for(b""))
    state = {
        "progress": Progress(target="local", run=history.run),
        "status": encode_event(dumps(Status(target="local", connected=True, phase="unknown", waa_ready=False,
                                            probe_status="unknown", vnc_url=None).payload()), event="status"),  # fmt: skip
    }
    queues: set[asyncio.Queue[bytes]] = set()
    times: dict[int, float] = {}
    go = asyncio.Event()

    def progress_frame() -> bytes:
        return encode_event(dumps(state["progress"].payload()), event="progress")  # type: ignore[attr-defined]

    def broadcast(frame: bytes) -> None:
        for q in list(queues):
            try:
                q.put_nowait(frame)
            except asyncio.QueueFull:
                queues.discard(q)  # too slow: the generator is dropped on its next get

    async def publisher() -> None:
        await go.wait()
        meter = GcMeter()
        meter.start()
        loop = asyncio.get_running_loop()
        work = Workload()
        t0 = loop.time()
        last_progress = t0
        for i in range(a.count):
            delay = t0 + i / a.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task_id, domain, score, error, steps = work.next()
            result = TaskComplete(target="local", task_id=task_id, success=error is None and score == 1.0,
                                  score=score, domain=domain, steps=steps, error=error)  # fmt: skip
            times[len(history) + 1] = time.time()
            broadcast(history.append(result).frame)
            p = state["progress"]
            state["progress"] = Progress(target="local", tasks_completed=p.tasks_completed + 1, run=history.run)  # type: ignore[attr-defined]
            if loop.time() - last_progress >= a.interval:  # what trio-sse's per-client coalescing sends
                last_progress = loop.time()
                broadcast(progress_frame())
        _write_times(a.times, times, meter)

    async def stream(request: object) -> EventSourceResponse:
        q: asyncio.Queue[bytes] = asyncio.Queue(maxsize=256)
        queues.add(q)
        opening = b"".join(
            [encode_retry(3000), encode_comment("connected") + b"\n", state["status"], progress_frame()]  # type: ignore[list-item]
        )

        async def gen():  # type: ignore[no-untyped-def]
            try:
                yield opening
                while True:
                    yield await q.get()
            finally:
                queues.discard(q)

        return EventSourceResponse(gen(), ping=a.keepalive, headers={"X-Accel-Buffering": "no"})

    @contextlib.asynccontextmanager
    async def lifespan(app: object):  # type: ignore[no-untyped-def]
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, go.set)
        task = asyncio.create_task(publisher())
        yield
        task.cancel()

    app = Starlette(routes=[Route("/api/benchmark-sse", stream)], lifespan=lifespan)
    config = uvicorn.Config(app, host="127.0.0.1", port=a.port, log_level="warning", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=1)  # fmt: skip
    uvicorn.Server(config).run()


def server_main(argv: Sequence[str]) -> None:
    p = argparse.ArgumentParser(prog="_bench_common.py server")
    p.add_argument("kind", choices=("trio", "starlette"))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rate", type=float, default=4.0)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--interval", type=float, default=5.0)
    p.add_argument("--keepalive", type=float, default=15.0)
    p.add_argument("--times", default="")
    p.add_argument("--workdir", required=True)
    p.add_argument("--log", default="", help="trio: follow this log (default: an empty one)")
    p.add_argument("--ssh", default="", help="trio: follow --log over SSH at USER@HOST:PORT")
    p.add_argument("--identity", default=None)
    p.add_argument("--known-hosts", default=None)
    p.add_argument("--process-pattern", default="", help="trio: probe this pgrep pattern")
    p.add_argument("--poll-interval", type=float, default=0.0, help="trio: LocalSource poll interval (experiment)")
    p.add_argument("--stats", default="", help="trio: write the source's statistics() here on exit")
    a = p.parse_args(argv)
    raise_nofile()
    (serve_trio if a.kind == "trio" else serve_starlette)(a)


SERVERS = {"trio": "trio-sse (Quart-Trio + Hypercorn)", "starlette": "sse-starlette + uvicorn"}


def start_server(kind: str, workdir: Path, **opts: object) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    args = [sys.executable, __file__, "server", kind, "--port", str(port), "--workdir", str(workdir)]
    for k, v in opts.items():
        if v is not None:
            args += [f"--{k.replace('_', '-')}", str(v)]
    proc = subprocess.Popen(args)
    wait_port(port, proc)
    return proc, port


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "clients":
        clients_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "server":
        server_main(sys.argv[2:])
    else:
        sys.exit("usage: _bench_common.py clients|server ... (used by scripts/bench_*.py)")
