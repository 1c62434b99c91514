#!/usr/bin/env python3
"""What a client that stops reading costs the server, against the size of the replay it asked
for (issue 11, item 1). The claim: flat — a stalled client holds one bounded piece of the
replay (read from the shared history as its socket drains), not a copy of it.

For each replay size, a real ``trio-sse serve`` process follows a finished run whose tasks
all raised with long messages; one client reads the whole replay (so the history is in
memory), then ``--clients`` raw clients connect with a tiny receive buffer and never read.
Once every one of them has a write stuck behind its full socket (the server's own
``trio_sse_stalled_writes`` gauge), the server's RSS growth is divided by the number of
clients. Median of ``--runs`` runs per size; the ratio column compares each size with the
smallest (the baseline of this invocation): ~1.0 everywhere means flat.

    .venv/bin/python scripts/bench_stalled.py [--clients 200] [--runs 3] [--sizes 0.1,0.4,1.7,6.8]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trio_sse import waalog  # noqa: E402
from trio_sse.testing import free_port  # noqa: E402

ERROR_BYTES = 4000


def error_run(replay_mb: float) -> bytes:
    ts = waalog.format_timestamp(dt.datetime(2024, 5, 6, 10, 0, 0))

    def rec(msg: str) -> str:
        return waalog.format_record(ts, "INFO", "run", 296, "MainProcess", msg, ansi=False)

    tasks = max(1, int(replay_mb * 1e6 / (ERROR_BYTES + 250)))
    ids = [("chrome", f"{i:08x}-cbae-4d72-b042-26390db2b145-WOS") for i in range(tasks)]
    out = [rec(waalog.worker_tasks(0, ids))]
    for domain, task_id in ids:
        message = f"HTTPConnectionPool(host='20.20.20.21', port=5000): {'x' * ERROR_BYTES}"
        out += [rec(waalog.domain(domain)), rec(waalog.example_id(task_id)),
                rec(waalog.exception_in(domain, task_id, message))]  # fmt: skip
    out.append(rec(waalog.no_examples_finished()))
    return "".join(out).encode()


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return float("nan")


def wait(predicate, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise SystemExit(f"bench_stalled: timed out waiting for {what}")
        time.sleep(0.05)


def request() -> bytes:
    return b"GET /api/benchmark-sse HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n"


def one_run(replay_mb: float, clients: int) -> tuple[float, int]:
    """(server RSS bytes per stalled client, replay bytes)."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "waa.log"
        log.write_bytes(error_run(replay_mb))
        port = free_port()
        argv = [sys.executable, "-m", "trio_sse", "serve", "--port", str(port), "--log", str(log),
                "--max-streams-per-ip", str(clients + 10), "--write-timeout", "3600",
                "--db", str(Path(tmp) / "history.sqlite3")]  # history as by default, not in $HOME  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        socks: list[socket.socket] = []
        try:
            wait(lambda: _healthy(port), "the server")
            # One reader takes the whole replay: the history is in memory from here on.
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(request())
                got = b""
                while b"event: run_complete" not in got:
                    data = s.recv(1 << 16)
                    if not data:
                        raise SystemExit("bench_stalled: stream ended early")
                    got += data
                replay = len(got)
            wait(lambda: metric(port, "trio_sse_clients") == 0, "the reader to leave")
            before = rss(proc.pid)
            for _ in range(clients):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.connect(("127.0.0.1", port))
                s.sendall(request())
                socks.append(s)
            wait(lambda: metric(port, "trio_sse_stalled_writes") == clients, "every write to stall")
            return (rss(proc.pid) - before) / clients, replay
        finally:
            for s in socks:
                s.close()
            proc.terminate()
            proc.wait(timeout=30)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--sizes", default="0.1,0.4,1.7,6.8", help="replay sizes in MB, comma-separated")
    a = p.parse_args()
    sizes = [float(x) for x in a.sizes.split(",")]
    rows = []
    for size in sizes:
        per_client, replays = [], []
        for run in range(a.runs):
            kib, replay = one_run(size, a.clients)
            per_client.append(kib)
            replays.append(replay)
            print(f"  replay {replay / 1e6:5.2f} MB, run {run + 1}: {kib / 1024:7.1f} KiB per stalled client",
                  file=sys.stderr)
        rows.append((statistics.median(replays), statistics.median(per_client)))
    print(f"\nstalled clients: {a.clients} per run, median of {a.runs} runs; os {os.uname().release}\n")
    print("| replay size | server RSS per stalled client | × the smallest replay's |")
    print("|-------------|-------------------------------|-------------------------|")
    base = rows[0][1]
    for replay, per in rows:
        print(f"| {replay / 1e6:8.2f} MB | {per / 1024:25.1f} KiB | {per / base:23.2f} |")


if __name__ == "__main__":
    main()
