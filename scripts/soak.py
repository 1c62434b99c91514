"""Soak test (not a unit test): N clients for M minutes against a real `trio-sse serve`
process following a simulated WAA run, with churn, and a table of what happened.

Clients (raw sockets, HTTP/1.1 chunked, no library in the way):
* normal — connect (resuming with Last-Event-ID), read for a random while, leave (half by
  FIN, half by RST), reconnect after a moment;
* slow — like normal, but read in small bites with pauses (they keep up on average);
* stalled — connect and then never read (small receive buffer); the server must cut them
  within --write-timeout; they reconnect after being cut.
Every client checks its own stream: task ids never twice, and at the end — after a final
resume — every task the server knows of seen exactly once.

Every --report seconds a row: server RSS and fds, connected clients (server's gauge and ours),
streams opened, drops by reason, events and bytes sent. At the end the server's clients gauge
must return to 0 and its fd count to the baseline.

    .venv/bin/python scripts/soak.py --clients 100 --minutes 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from trio_sse.testing import free_port

LINGER_ZERO = struct.pack("ii", 1, 0)


# ---------------------------------------------------------------- server process


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


_SCRAPER: httpx.AsyncClient | None = None  # one keep-alive connection for every scrape


async def metrics(url: str) -> dict[str, float]:
    global _SCRAPER
    if _SCRAPER is None:
        _SCRAPER = httpx.AsyncClient(timeout=10)
    text = (await _SCRAPER.get(url + "/metrics")).text
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name + ("{" + ",".join(f"{v}" for v in s.labels.values()) + "}" if s.labels else "")
            out[key] = s.value
    return out


async def task_ids(url: str) -> list[str]:
    async with httpx.AsyncClient(timeout=10) as c:
        return [t["task_id"] for t in (await c.get(url + "/api/tasks")).json()]


# ---------------------------------------------------------------- clients


class ChunkedSSE:
    """Incremental HTTP/1.1 response reader: headers, chunked body, SSE fields we need."""

    def __init__(self) -> None:
        self.buf = b""
        self.head_done = False
        self.status = 0
        self.body = b""
        self.ended = False
        self.events: list[tuple[str | None, str, str]] = []  # (id, event, data)
        self._pending: dict[str, str] = {}

    def feed(self, data: bytes) -> None:
        self.buf += data
        if not self.head_done:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if not sep:
                return
            self.status = int(head[9:12])
            self.head_done, self.buf = True, rest
        while not self.ended:
            line, sep, rest = self.buf.partition(b"\r\n")
            if not sep:
                return
            size = int(line.split(b";")[0], 16)
            if size == 0:
                self.ended = True
                return
            if len(rest) < size + 2:
                return
            self.body += rest[:size]
            self.buf = rest[size + 2 :]
            self._parse()

    def _parse(self) -> None:
        while b"\n\n" in self.body:
            block, _, self.body = self.body.partition(b"\n\n")
            fields: dict[str, str] = {}
            for line in block.decode("utf-8", "replace").split("\n"):
                if line.startswith(":") or ":" not in line:
                    continue
                k, _, v = line.partition(":")
                fields[k] = v[1:] if v.startswith(" ") else v
            if "data" in fields:
                self.events.append((fields.get("id"), fields.get("event", "message"), fields["data"]))


@dataclass
class Stats:
    connects: int = 0
    refused: int = 0
    cut_by_server: int = 0  # the server ended our stream without our asking
    stalled_cut: int = 0  # … of which stalled clients' streams
    resets_sent: int = 0
    duplicates: int = 0
    errors: int = 0
    connected: int = 0
    seen: dict[str, set[str]] = field(default_factory=dict)  # client → task ids


class Client:
    def __init__(self, name: str, kind: str, addr: tuple[str, int], stats: Stats, rng: random.Random) -> None:
        self.name, self.kind, self.addr, self.stats, self.rng = name, kind, addr, stats, rng
        self.last_id: str | None = None
        self.seen: set[str] = set()
        stats.seen[name] = self.seen

    def _request(self) -> bytes:
        headers = ["GET /api/benchmark-sse?interval=1 HTTP/1.1", "Host: soak"]
        if self.last_id:
            headers.append(f"Last-Event-ID: {self.last_id}")
        return ("\r\n".join(headers) + "\r\n\r\n").encode()

    def _take(self, reader: ChunkedSSE) -> None:
        for id_, event, data in reader.events:
            if event == "task_complete":
                task = json.loads(data)["task_id"]
                if task in self.seen:
                    self.stats.duplicates += 1
                self.seen.add(task)
            if id_:
                self.last_id = id_
        reader.events.clear()

    async def session(self, lifetime: float) -> None:
        """One connection; returns when it ends (by us after ``lifetime``, or by the server)."""
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.kind in ("slow", "stalled"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        if self.kind == "stalled":
            # A server that cut us by timeout (no RST) is only noticed by talking to it: TCP
            # keepalive probes on our side get a RST once the server forgot the connection.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        reader = ChunkedSSE()
        by_us = False
        try:
            await sock.connect(self.addr)
            await sock.send(self._request())
            self.stats.connects += 1
            self.stats.connected += 1
            try:
                with trio.move_on_after(lifetime) as scope:
                    if self.kind == "stalled":
                        await self._stall(sock, reader)
                    else:
                        await self._read(sock, reader)
                by_us = scope.cancelled_caught
                if not by_us:
                    self.stats.cut_by_server += 1
            finally:
                self.stats.connected -= 1
        except OSError:
            self.stats.cut_by_server += 1  # reset by the server (a stalled client, cut)
        finally:
            if self.kind == "stalled" and not by_us:
                self.stats.stalled_cut += 1
            if by_us and self.rng.random() < 0.5:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
                self.stats.resets_sent += 1
            sock.close()

    async def _read(self, sock: trio.socket.SocketType, reader: ChunkedSSE) -> None:
        while True:
            data = await sock.recv(1024 if self.kind == "slow" else 65536)
            if not data:
                return
            reader.feed(data)
            self._take(reader)
            if reader.head_done and reader.status != 200:
                self.stats.refused += 1
                return
            if reader.ended:
                return
            if self.kind == "slow":
                await trio.sleep(self.rng.uniform(0.0, 0.05))

    async def _stall(self, sock: trio.socket.SocketType, reader: ChunkedSSE) -> None:
        """Read the headers, then never again; return once the server has cut us."""
        while not reader.head_done:
            data = await sock.recv(1)
            if not data:
                return
            reader.feed(data)
        while _tcp_state(sock) == TCP_ESTABLISHED:
            await trio.sleep(0.5)  # looking at our own socket's state, not reading it

    async def run(self, until: float) -> None:
        while trio.current_time() < until:
            lifetime = self.rng.expovariate(1 / 20) if self.kind != "stalled" else 3600
            await self.session(min(lifetime, until - trio.current_time()))
            await trio.sleep(self.rng.uniform(0.1, 1.0))

    async def catch_up(self, expected: set[str]) -> None:
        """A final resume: read until every expected task has been seen (or 10 s)."""
        self.kind = "normal"
        with trio.move_on_after(10):
            while not expected <= self.seen:
                await self.session(2.0)


TCP_ESTABLISHED = 1


def _tcp_state(sock: trio.socket.SocketType) -> int:
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError:
        return 0


# ---------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> int:
    workdir = tempfile.mkdtemp(prefix="trio-sse-soak-")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        sys.executable, "-m", "trio_sse", "serve", "--simulate", "--log", os.path.join(workdir, "sim.log"),
        "--tasks", str(args.tasks), "--step-seconds", str(args.step_seconds), "--port", str(port),
        "--write-timeout", str(args.write_timeout), "--keepalive", "5",
        "--db", os.path.join(workdir, "history.sqlite3"),  # history on, as by default, but not in $HOME
    ]  # fmt: skip
    stderr = open(os.path.join(workdir, "serve.stderr"), "wb")  # noqa: SIM115
    proc = await trio.lowlevel.open_process(argv, stderr=stderr, stdout=stderr)
    try:
        with trio.fail_after(20):
            while True:
                try:
                    await metrics(url)
                    break
                except httpx.TransportError:
                    await trio.sleep(0.1)
        await metrics(url)
        base_fds = fd_count(proc.pid)  # listening socket, log, the scraper's connection, …
        stats = Stats()
        rng = random.Random(args.seed)
        kinds = ["stalled"] * args.stalled + ["slow"] * int(args.clients * args.slow_fraction)
        kinds += ["normal"] * (args.clients - len(kinds))
        clients = [Client(f"c{i}", k, ("127.0.0.1", port), stats, random.Random(rng.random())) for i, k in enumerate(kinds)]
        start = trio.current_time()
        until = start + args.minutes * 60
        rows: list[list[str]] = []
        header = ["t (s)", "RSS MB", "fds", "clients srv/ours", "streams", "drops q/stall/limit", "events",
                  "MB sent", "history"]

        async def report() -> None:
            while True:
                m = await metrics(url)
                rows.append([
                    f"{trio.current_time() - start:.0f}", f"{rss_mb(proc.pid):.1f}", str(fd_count(proc.pid)),
                    f"{m['trio_sse_clients']:.0f}/{stats.connected}", f"{m['trio_sse_streams_total']:.0f}",
                    f"{m['trio_sse_clients_dropped_total{queue_full}']:.0f}/"
                    f"{m['trio_sse_clients_dropped_total{write_stalled}']:.0f}/"
                    f"{m['trio_sse_clients_dropped_total{over_limit}']:.0f}",
                    f"{m['trio_sse_events_sent_total']:.0f}", f"{m['trio_sse_bytes_sent_total'] / 1e6:.1f}",
                    f"{m.get('trio_sse_history_entries{local}', float('nan')):.0f}",
                ])  # fmt: skip
                print(" | ".join(rows[-1]), flush=True)
                await trio.sleep(args.report)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(report)
            async with trio.open_nursery() as crowd:
                for c in clients:
                    crowd.start_soon(c.run, until)
            # final resume of every non-stalled client, then everyone leaves
            expected = set(await task_ids(url))
            async with trio.open_nursery() as crowd:
                for c in clients:
                    if c.kind != "stalled":
                        crowd.start_soon(c.catch_up, expected)
            nursery.cancel_scope.cancel()
        with trio.move_on_after(30):
            while (await metrics(url))["trio_sse_clients"] != 0 or fd_count(proc.pid) > base_fds:
                await trio.sleep(0.2)
        m = await metrics(url)
        missing = {c.name: len(expected - c.seen) for c in clients if c.kind != "stalled" and expected - c.seen}
        print()
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for r in rows:
            print("| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |")
        print()
        print(f"clients: {args.clients} ({kinds.count('normal')} normal, {kinds.count('slow')} slow, "
              f"{kinds.count('stalled')} stalled), {args.minutes} min, run tasks at the end: {len(expected)}")
        print(f"connects {stats.connects}, ended by server {stats.cut_by_server} (stalled clients cut: "
              f"{stats.stalled_cut}), resets sent {stats.resets_sent}, refused {stats.refused}, "
              f"client errors {stats.errors}")
        print(f"duplicates {stats.duplicates}, clients missing tasks after resume: {missing or 'none'}")
        print(f"server at the end: clients gauge {m['trio_sse_clients']:.0f}, fds {fd_count(proc.pid)} "
              f"(baseline {base_fds}), RSS {rss_mb(proc.pid):.1f} MB")
        ok = not stats.duplicates and not missing
        return 0 if ok else 1
    finally:
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        with trio.move_on_after(10):
            await proc.wait()
        print(f"SIGTERM → exit in {time.monotonic() - t0:.2f} s, code {proc.returncode}; logs in {workdir}")
        stderr.close()


def cli() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--slow-fraction", type=float, default=0.1)
    p.add_argument("--stalled", type=int, default=3)
    p.add_argument("--step-seconds", type=float, default=0.04)
    p.add_argument("--tasks", type=int, default=5000, help="simulated tasks (must outlast the soak)")
    p.add_argument("--write-timeout", type=float, default=5)
    p.add_argument("--report", type=float, default=30)
    p.add_argument("--seed", type=int, default=1)
    return trio.run(main, p.parse_args())


if __name__ == "__main__":
    sys.exit(cli())
