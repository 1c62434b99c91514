#!/usr/bin/env python3
"""Cluster mode measured through real servers (issue 14): fan-out over 1, 2 and 4 processes
against the single process, side by side in one invocation, and failover.

Every server is a real ``python -m trio_sse serve`` process following one real log file
(target ``vm1``): the embedded default ("single", no Redis), or N processes with ``--redis``
on one real ``redis-server`` (``tests/redisd.py``, ``appendfsync everysec`` as
docs/cluster.md recommends). This script is the benchmark running the benchmark: it appends
one simulated WAA task to the log at ``--rate`` per second (``_bench_workloads.waa_run``: the
n-th append finishes task n) and stamps each append's wall time; which append each event
follows from is what a reducer fed the same appends says (a task that raised can wait for
the next record).

**Fan-out.** ``--clients`` raw-socket SSE clients (``_bench_clients``: separate processes,
their CPU not counted) spread evenly over the N processes' ports; all connected and open
before the first append. Measured over the publish window (first append → last + a drain):
delivered / expected durable events (lost = the difference), events received twice or out of
order, p50 / p99 delivery latency (client receive − append, both ``time.monotonic()``: on
Linux one clock for every process, and a wall-clock step cannot move it;
the whole path: file → follower → Redis → every process's mirror → its clients), and CPU
seconds per 1000 delivered events of all server processes together, and with redis-server's
own CPU added. Ratios against "single" (goal: ≤ 1.3× CPU, p99 ≤ 2×); the added p50 is the
Redis hop seen end to end (goal ≤ 5 ms). ``--runs`` rounds, configurations alternating
within a round; medians.

**Failover.** Two cluster processes (default 10 s lease), an SSE client on the one that does
not follow the log. Tasks 1-5 are appended; once the client has them and a seeded random part
of the renew cycle has passed, the follower is SIGKILLed and task 6 appended at once, then
7-10 at ``--failover-rate``. Failover time: SIGKILL → task 6 at the client; what the dead
lease had left (``PTTL`` at the kill) and the takeover after it; lost and duplicated events
(the client's ids against a local monitor's over the final log); whether the survivor
resumed at the checkpoint's byte offset and how many bytes it read. Median over
``--failover-runs``.

    .venv/bin/python scripts/bench_cluster_service.py [--clients 1000] [--rate 4] [--duration 15] [--runs 3]
        [--processes 1,2,4] [--failover-runs 5] [--lease 10]

Needs ``redis-server`` on PATH (``scripts/dev test`` installs it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

import httpx  # noqa: E402
import trio  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from redisd import RedisD  # noqa: E402  (tests/redisd.py: a redis-server on a free port)

from _bench_clients import Clients  # noqa: E402
from _bench_measure import cpu_seconds, latencies, machine, median, percentile, ratio, table  # noqa: E402
from _bench_servers import kill, wait_port  # noqa: E402
from _bench_workloads import waa_run  # noqa: E402
from trio_sse.history import Entry  # noqa: E402
from trio_sse.model import TaskComplete  # noqa: E402
from trio_sse.monitor import Monitor  # noqa: E402
from trio_sse.runstate import RunState  # noqa: E402
from trio_sse.sources import LogBytes, LogReset, ProbeResult  # noqa: E402
from trio_sse.testing import free_port  # noqa: E402

TARGET = "vm1"


# --------------------------------------------------------------------------- servers


def serve(work: Path, log: Path, tag: str, *, redis: str | None = None, prefix: str = "", lease: float = 10.0,
          keepalive: float = 15.0) -> tuple[subprocess.Popen[bytes], int]:  # fmt: skip
    """A real ``trio-sse serve`` process, listening on return."""
    port = free_port()
    argv = [sys.executable, "-m", "trio_sse", "serve", "--port", str(port), "--target", f"{TARGET}={log}",
            "--max-streams", "100000", "--max-streams-per-ip", "100000", "--stall-after", "0",
            "--keepalive", str(keepalive)]  # fmt: skip
    if redis is not None:
        argv += ["--redis", redis, "--redis-prefix", prefix, "--lease", str(lease)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_SSE_")}
    with open(work / f"serve-{tag}-{port}.log", "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
    wait_port(port, proc)
    return proc, port


def metrics(port: int) -> dict[str, float]:
    """Every sample of a server's /metrics as ``name{k=v,…}`` (labels sorted, process dropped)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "process")
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def wait_until(check: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)  # a script, not a test: polling servers over HTTP
    raise RuntimeError(f"waited {timeout:g} s for {what}")


def leader_of(ports: list[int]) -> int | None:
    """The port of the process that follows the target (None: none yet, or not exactly one)."""
    leading = [p for p in ports if metrics(p).get(f"trio_sse_cluster_leader{{target={TARGET}}}") == 1]
    return leading[0] if len(leading) == 1 else None


# --------------------------------------------------------------------------- fan-out


def producers(wl: object, count: int) -> dict[int, int]:
    """Event ordinal → the index of the append (``wl.appends[:count]``, then ``wl.tail``) it
    follows from, by a reducer fed the same appends."""
    state = RunState(TARGET)
    state.log(LogReset("x.log"))
    offset = len(wl.header)  # type: ignore[attr-defined]
    state.log(LogBytes(wl.header, 0))  # type: ignore[attr-defined]
    out: dict[int, int] = {}
    for i, data in enumerate((*wl.appends[:count], wl.tail)):  # type: ignore[attr-defined]
        for item in state.log(LogBytes(data, offset)):
            if isinstance(item, Entry) and isinstance(item.event, TaskComplete):
                out[item.seq] = i
        offset += len(data)
    return out


def fanout_run(kind: str, n: int, a: argparse.Namespace, redis: RedisD, work: Path, run: int) -> dict[str, float]:
    tag = f"{kind}{n}-{run}"
    log = work / f"{tag}.log"
    wl = waa_run(a.count, seed=run)
    log.write_bytes(wl.header)
    servers: list[tuple[subprocess.Popen[bytes], int]] = []
    clients: list[Clients] = []
    try:
        for i in range(n):
            if kind == "single":
                servers.append(serve(work, log, f"{tag}-{i}"))
            else:
                servers.append(serve(work, log, f"{tag}-{i}", redis=redis.url, prefix=f"bench-{tag}"))
        ports = [p for _, p in servers]
        if kind == "cluster":
            wait_until(lambda: leader_of(ports) is not None, "one leader")
            wait_until(lambda: all(metrics(p).get(f"trio_sse_redis_connected{{target={TARGET}}}") == 1 for p in ports),
                       "every mirror connected")  # fmt: skip
        share = [a.clients // n + (1 if i < a.clients % n else 0) for i in range(n)]
        procs = max(1, a.client_procs // n)
        for i, port in enumerate(ports):
            sub = work / f"{tag}-clients-{i}"
            sub.mkdir()
            clients.append(Clients(port, share[i], procs, sub, monotonic=True))
        opened = failed = 0
        for c in clients:
            o, f = c.wait_ready()
            opened, failed = opened + o, failed + f
        time.sleep(1.0)  # settle: every client has its opening
        pids = [proc.pid for proc, _ in servers]
        cpu0 = [cpu_seconds(pid) for pid in pids]
        rcpu0 = cpu_seconds(redis.pid) if redis.pid else 0.0
        appended: list[float] = []
        t0 = time.monotonic()
        with log.open("ab") as f:
            for i, data in enumerate((*wl.appends[: a.count], wl.tail)):
                delay = t0 + i / a.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                f.write(data)
                f.flush()
                appended.append(time.monotonic())
        # Which append each event follows from, as one process reading the same appends
        # says (a task that raised may wait for the next record: logparse holds it).
        published = {n: appended[i] for n, i in producers(wl, a.count).items()}
        time.sleep(a.drain)  # the tail reaches every client
        cpu = sum(cpu_seconds(pid) for pid in pids) - sum(cpu0)
        rcpu = (cpu_seconds(redis.pid) - rcpu0) if (kind == "cluster" and redis.pid) else 0.0
        results = [c.stop() for c in clients]
    finally:
        for c in clients:
            c.kill()
        for proc, _ in servers:
            kill(proc)
    lat: list[float] = []
    reordered = 0
    for r in results:
        lat += latencies(r["durable"], published)  # type: ignore[arg-type]
        reordered += int(r["reordered"])  # type: ignore[call-overload]
    delivered = len(lat)
    expected = opened * len(published)
    return {
        "opened": opened,
        "failed": failed,
        "delivered": delivered,
        "expected": expected,
        "lost": max(0, expected - delivered),
        "dup": reordered,
        "p50": percentile(lat, 50) * 1000,
        "p99": percentile(lat, 99) * 1000,
        "cpu_k": cpu / max(delivered, 1) * 1000,
        "cpu_k_redis": (cpu + rcpu) / max(delivered, 1) * 1000,
        "cpu": cpu,
        "rcpu": rcpu,
    }


def fanout(a: argparse.Namespace, redis: RedisD, work: Path) -> None:
    configs = [("single", 1)] + [("cluster", n) for n in a.processes]
    results: dict[tuple[str, int], list[dict[str, float]]] = {c: [] for c in configs}
    for run in range(a.runs):
        order = configs if run % 2 == 0 else configs[::-1]  # alternate: drift hits both ends alike
        for kind, n in order:
            r = fanout_run(kind, n, a, redis, work, run)
            results[(kind, n)].append(r)
            print(f"  run {run + 1} {kind} ×{n}: delivered {r['delivered']:.0f}/{r['expected']:.0f}, "
                  f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, {r['cpu_k']:.3f} CPU s/1000 "
                  f"(+redis {r['cpu_k_redis']:.3f})", file=sys.stderr, flush=True)  # fmt: skip

    def med(c: tuple[str, int], key: str) -> float:
        return median([r[key] for r in results[c]])

    base = ("single", 1)
    rows = []
    for c in configs:
        kind, n = c
        rows.append([
            "single process (no Redis)" if kind == "single" else f"cluster, {n} process{'es' if n > 1 else ''}",
            f"{sum(r['delivered'] for r in results[c]):.0f}/{sum(r['expected'] for r in results[c]):.0f}",
            f"{sum(r['lost'] for r in results[c]):.0f}", f"{sum(r['dup'] for r in results[c]):.0f}",
            med(c, "p50"), med(c, "p99"), med(c, "cpu_k"), med(c, "cpu_k_redis"),
            f"{ratio(med(c, 'cpu_k_redis'), med(base, 'cpu_k')):.2f}×", f"{ratio(med(c, 'p99'), med(base, 'p99')):.2f}×",
            "" if kind == "single" else f"{med(c, 'p50') - med(base, 'p50'):+.1f}",
        ])  # fmt: skip
    print(f"## Fan-out: {a.clients} clients, {a.rate:g} events/s for {a.duration:g} s, median of {a.runs} runs\n")
    print(table(
        ["configuration", "delivered (all runs)", "lost", "twice/out of order", "p50 ms", "p99 ms",
         "CPU s/1000 ev (servers)", "… + redis-server", "CPU vs single", "p99 vs single", "added p50 ms"],
        rows,
    ))  # fmt: skip
    print("\n(CPU vs single: all server processes + redis-server against the single process; goal ≤ 1.3×, p99 ≤ 2×.\n"
          " added p50: the Redis hop end to end, file → follower → Redis → mirror → client; goal ≤ 5 ms)\n")  # fmt: skip


# --------------------------------------------------------------------------- failover


def expected_ids(data: bytes) -> list[str]:
    class _None:
        description = "none"

        async def follow(self, send, *, task_status=trio.TASK_STATUS_IGNORED):  # type: ignore[no-untyped-def]
            raise AssertionError

        async def probe(self) -> ProbeResult:
            return ProbeResult()

    monitor = Monitor(TARGET, _None())
    monitor.apply(LogReset("x.log"))
    monitor.apply(LogBytes(data, 0))
    return [e.id for e in monitor.history.entries]


class Stream:
    """One SSE client (httpx): the wall time each durable id first arrived, and every id."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/api/benchmark-sse"
        self.ids: list[str] = []
        self.first: dict[str, float] = {}
        self.changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as c:
            async with c.stream("GET", self.url, headers={"Accept-Encoding": "identity"}) as r:
                task_status.started()
                buf = b""
                async for chunk in r.aiter_raw():
                    now = time.monotonic()
                    buf += chunk
                    while b"\n\n" in buf:
                        frame, _, buf = buf.partition(b"\n\n")
                        for line in frame.split(b"\n"):
                            if line.startswith(b"id: "):
                                i = line[4:].decode()
                                self.ids.append(i)
                                self.first.setdefault(i, now)
                    self.changed.set()
                    self.changed = trio.Event()

    async def until(self, count: int, timeout: float) -> None:
        with trio.fail_after(timeout):
            while len(self.ids) < count:
                await self.changed.wait()


def failover_run(a: argparse.Namespace, redis: RedisD, work: Path, run: int, phase: float) -> dict[str, float]:
    tag = f"fo{run}"
    log = work / f"{tag}.log"
    wl = waa_run(10, seed=100 + run)
    log.write_bytes(wl.header + wl.appends[0])
    first, p1 = serve(work, log, f"{tag}-a", redis=redis.url, prefix=f"bench-{tag}", lease=a.lease)
    servers = [(first, p1)]
    try:
        wait_until(lambda: leader_of([p1]) == p1, "the first process to lead")
        servers.append(serve(work, log, f"{tag}-b", redis=redis.url, prefix=f"bench-{tag}", lease=a.lease))
        p2 = servers[1][1]
        wait_until(lambda: metrics(p2).get(f"trio_sse_redis_connected{{target={TARGET}}}") == 1, "the second's mirror")

        async def observe() -> dict[str, float]:
            stream = Stream(p2)
            async with trio.open_nursery() as nursery:
                await nursery.start(stream.run)
                with log.open("ab") as f:
                    for data in wl.appends[1:5]:
                        f.write(data)
                # Five tasks written; a task that raised is complete only at the next record
                # (WAA writes its Error line after the traceback), so count what the bytes give.
                before_kill = len(expected_ids(log.read_bytes()))
                await stream.until(before_kill, 60)
                await trio.sleep(phase * a.lease / 3)  # the kill falls anywhere in the renew cycle
                first.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                pttl = await redis.command("PTTL", f"bench-{tag}:{{{TARGET}}}:lease")
                with log.open("ab") as f:
                    f.write(wl.appends[5])
                for data in (*wl.appends[6:], wl.tail):
                    await trio.sleep(1 / a.failover_rate)
                    with log.open("ab") as f:
                        f.write(data)
                await stream.until(11, a.lease * 3 + 30)  # 10 tasks and the run's end
                await trio.sleep(0.5)  # a duplicate would arrive now, if any
                nursery.cancel_scope.cancel()
            want = expected_ids(log.read_bytes())
            m = metrics(p2)
            return {
                "failover": stream.first[want[before_kill]] - killed,  # the first event after the kill
                "left": int(pttl[1:].split(b"\r")[0]) / 1000,
                "lost": len(set(want) - set(stream.ids)),
                "dup": len(stream.ids) - len(set(stream.ids)),
                "resumed": m.get(f"trio_sse_cluster_resumes_total{{target={TARGET}}}", 0),
                "read": m.get(f"trio_sse_log_bytes_read_total{{target={TARGET}}}", 0),
                "size": log.stat().st_size,
            }

        return trio.run(observe)
    finally:
        for proc, _ in servers:
            proc.kill()
            proc.wait()


def failovers(a: argparse.Namespace, redis: RedisD, work: Path) -> None:
    phases = random.Random(14).random  # seeded: every invocation kills at the same moments
    results = []
    for run in range(a.failover_runs):
        r = failover_run(a, redis, work, run, phases())
        results.append(r)
        print(f"  failover {run + 1}: {r['failover']:.2f} s, lost {r['lost']}, dup {r['dup']}, "
              f"resumed {r['resumed']:.0f}, read {r['read']:.0f}/{r['size']:.0f} bytes", file=sys.stderr, flush=True)  # fmt: skip
    print(f"## Failover: SIGKILL of the follower → the next event at a client of the other process "
          f"(lease {a.lease:g} s, {a.failover_runs} runs)\n")  # fmt: skip
    print(table(
        ["run", "failover s", "lease left at the kill s", "after the expiry s", "lost", "duplicated",
         "resumed at the offset", "bytes read by the successor / log"],
        [[i + 1, f"{r['failover']:.2f}", f"{r['left']:.2f}", f"{r['failover'] - r['left']:.3f}", r["lost"], r["dup"],
          "yes" if r["resumed"] else "no", f"{r['read']:.0f} / {r['size']:.0f}"] for i, r in enumerate(results)]
        + [["median", f"{median([r['failover'] for r in results]):.2f}", "",
            f"{median([r['failover'] - r['left'] for r in results]):.3f}",
            sum(r["lost"] for r in results), sum(r["dup"] for r in results), "", ""]],
    ))  # fmt: skip
    print(f"\n(goal: failover ≤ lease + 1 s = {a.lease + 1:g} s, 0 lost, 0 duplicated)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--client-procs", type=int, default=4, help="client processes in all (at least one per server)")
    p.add_argument("--rate", type=float, default=4.0, help="events per second")
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--drain", type=float, default=1.5, help="seconds after the last append before stopping")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--processes", default="1,2,4", help="cluster sizes to measure")
    p.add_argument("--failover-runs", type=int, default=5)
    p.add_argument("--lease", type=float, default=10.0)
    p.add_argument("--failover-rate", type=float, default=5.0)
    p.add_argument("--appendfsync", choices=("always", "everysec"), default="everysec")
    a = p.parse_args()
    a.processes = [int(x) for x in a.processes.split(",") if x]
    a.count = int(a.rate * a.duration)
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-service-"))

    async def start() -> RedisD:
        server = RedisD(work, appendfsync=a.appendfsync)
        await server.start()
        return server

    redis = trio.run(start)
    try:
        print(f"# cluster mode through real servers; {machine()}; redis-server "
              f"{subprocess.run(['redis-server', '--version'], capture_output=True, text=True).stdout.split()[2]}, "
              f"appendonly yes, appendfsync {a.appendfsync}\n")  # fmt: skip
        if a.runs:
            fanout(a, redis, work)
        if a.failover_runs:
            failovers(a, redis, work)
    finally:
        trio.run(redis.stop)


if __name__ == "__main__":
    main()
