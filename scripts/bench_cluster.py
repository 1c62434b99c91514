#!/usr/bin/env python3
"""Cluster mode (issue 14): the Redis hop and failover, measured against a real redis-server.

**Hop.** A leader process (a ``Monitor`` fed one WAA task per append at ``--rate`` per second,
with a ``Publisher`` on the target's lease) and a mirror process (a ``Mirror`` with one
subscriber), each its own process with its own Redis connection, as two trio-sse processes
of a cluster are. For every task, the wall time (``time.time()``) when the leader's monitor
applied it and when the mirror offered its ``task_complete`` to its subscriber: the added
latency of the Redis hop. Baseline, in the same run: a subscriber on the leader's own monitor
(the single-process path: apply → offer). CPU: each process's own CPU seconds over the run,
per event.

**Failover.** Two cluster processes (``ClusterNode``, ``LocalSource`` on the same log file,
default lease 10 s), an observer process's mirror timing every event. Tasks 1-5 are
appended; when the observer has them and a seeded random part of the lease has passed (so
the kill falls anywhere in the renew cycle), the leader (the process that printed
``leading``) is SIGKILLed and task 6 is appended at once, then 7-10 at ``--failover-rate``. Failover time:
SIGKILL → task 6 at the observer; also what the dead lease had left (``PTTL`` at the
kill) and the takeover after the expiry (the part the lease loop controls). Lost and
duplicated: the observer's ids against a local
monitor's over the final log. ``--runs`` times; median.

    .venv/bin/python scripts/bench_cluster.py [--events 500] [--rate 50] [--runs 5] [--lease 10]

Needs ``redis-server`` on PATH (``scripts/dev test`` installs it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

import trio  # noqa: E402
from redisd import RedisD  # noqa: E402  (tests/redisd.py: a redis-server on a free port)

from _bench_measure import machine, median, percentile, ratio, table  # noqa: E402
from trio_sse.cluster.mirror import Mirror  # noqa: E402
from trio_sse.cluster.node import ClusterNode  # noqa: E402
from trio_sse.cluster.publisher import Publisher  # noqa: E402
from trio_sse.cluster.lease import Lease  # noqa: E402
from trio_sse.cluster.redis import RedisStore  # noqa: E402
from trio_sse.cluster.timing import ClusterTiming  # noqa: E402
from trio_sse.history import Entry  # noqa: E402
from trio_sse.monitor import Monitor  # noqa: E402
from trio_sse.sources import LogBytes, LogReset, ProbeResult  # noqa: E402
from trio_sse.sources.local import LocalSource  # noqa: E402

TIMING = ClusterTiming(backoff_first=0.02, backoff_cap=0.5)


def task_bytes(i: int, *, header: bool = False) -> bytes:
    lines = []
    if header:
        listed = ", ".join(f"('notepad', 't{k}-WOS')" for k in range(1, 2001))
        lines.append(f"[2024-05-06 10:00:00,001 INFO run/80-MainProcess] Worker 0 is doing tasks: [{listed}]")
    lines += [
        f"[2024-05-06 10:00:01,001 INFO run/90-MainProcess] [Domain]: notepad",
        f"[2024-05-06 10:00:01,002 INFO run/91-MainProcess] [Example ID]: t{i}-WOS",
        f"[2024-05-06 10:00:02,001 INFO lib_run_single/30-MainProcess] Step 1: pyautogui.click({i}, 2)",
        f"[2024-05-06 10:00:03,001 INFO lib_run_single/40-MainProcess] Result: {i % 2}.00",
        f"[2024-05-06 10:00:03,002 INFO run/99-MainProcess] Finished notepad/t{i}-WOS",
    ]
    return "".join(line + "\n" for line in lines).encode()


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _NoSource:
    description = "benchmark"

    async def follow(self, send, *, task_status=trio.TASK_STATUS_IGNORED):  # type: ignore[no-untyped-def]
        raise AssertionError("fed by the benchmark")

    async def probe(self) -> ProbeResult:
        return ProbeResult()


class Stamp:
    """A subscriber that stamps the wall time of every durable entry by its ordinal."""

    interval = 5.0

    def __init__(self) -> None:
        self.times: dict[int, float] = {}
        self.ids: list[str] = []
        self.arrived = trio.Event()

    def offer(self, monitor: object, item: object) -> None:
        if isinstance(item, Entry):
            self.times[int(item.id.rsplit("-", 1)[1])] = time.time()
            self.ids.append(item.id)
            self.arrived.set()
            self.arrived = trio.Event()


# --------------------------------------------------------------------------- child processes


def leader_main(url: str, target: str, events: int, rate: float, out: str) -> None:
    """Phase 1, single process: a monitor and a subscriber on it. Phase 2, the same feed
    into a fresh monitor with a publisher (the mirror process waits on that one)."""

    async def feed(monitor: Monitor) -> tuple[dict[int, float], float]:
        applied: dict[int, float] = {}
        monitor.apply(LogReset("bench.log"))
        offset = 0
        cpu0 = cpu_self()
        start = trio.current_time()
        for i in range(1, events + 1):
            await trio.sleep_until(start + (i - 1) / rate)
            data = task_bytes(i, header=i == 1)
            applied[i] = time.time()
            monitor.apply(LogBytes(data, offset))
            offset += len(data)
        return applied, cpu0

    async def main() -> None:
        single = Monitor("single", _NoSource(), idle_probe_seconds=60)
        local = Stamp()
        single.subscribe(local, None)
        applied_single, cpu0 = await feed(single)
        cpu_single = cpu_self() - cpu0
        monitor = Monitor(target, _NoSource(), idle_probe_seconds=60)
        async with RedisStore(url, timing=TIMING) as store:
            keys = store.keys(target)
            got = await store.acquire(keys, f"bench-leader-{os.getpid()}")
            assert got.token is not None, "the lease is held by someone else"
            lease = Lease(store, keys, got.token, acquired_at=trio.current_time())
            publisher = Publisher(store, monitor, lease)
            async with trio.open_nursery() as nursery:
                await nursery.start(publisher.run)
                applied, cpu0 = await feed(monitor)
                while publisher.statistics().lag:  # let the last step out
                    await trio.sleep(0.01)
                cpu = cpu_self() - cpu0
                nursery.cancel_scope.cancel()
        Path(out).write_text(json.dumps({
            "single": {"applied": applied_single, "offered": local.times, "cpu": cpu_single},
            "cluster": {"applied": applied, "cpu": cpu},
        }))  # fmt: skip

    trio.run(main)


def mirror_main(url: str, target: str, events: int, out: str) -> None:
    async def main() -> None:
        stamp = Stamp()
        async with RedisStore(url, timing=TIMING) as store, trio.open_nursery() as nursery:
            mirror = Mirror(store, target)
            mirror.subscribe(stamp, None)
            await nursery.start(mirror.run)
            await mirror.synced.wait()
            print("ready", flush=True)
            cpu0 = cpu_self()
            with trio.fail_after(600):
                while len(stamp.times) < events:
                    await stamp.arrived.wait()
            cpu = cpu_self() - cpu0
            nursery.cancel_scope.cancel()
        Path(out).write_text(json.dumps({"times": stamp.times, "cpu": cpu}))

    trio.run(main)


def node_main(url: str, target: str, log: str, lease: float) -> None:
    def make_monitor(name: str, resume: object) -> Monitor:  # (re-reads: the package-level path)
        print(f"leading {name}", flush=True)
        return Monitor(name, LocalSource(log, process_pattern=None), idle_probe_seconds=60)

    node = ClusterNode(url, [target], make_monitor, timing=ClusterTiming(lease_seconds=lease, backoff_first=0.02, backoff_cap=0.5))
    trio.run(node.run)


# --------------------------------------------------------------------------- orchestration


def child(*args: str, stdout: int | None = subprocess.PIPE) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=stdout, stdin=subprocess.DEVNULL)


def read_line(proc: subprocess.Popen[bytes], expect: bytes, timeout: float = 60) -> None:
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(expect):
            return
        if not line and proc.poll() is not None:
            raise RuntimeError(f"child exited with {proc.returncode} before {expect!r}")
    raise TimeoutError(expect)


def hop(url: str, events: int, rate: float, work: Path, run: int) -> dict[str, float]:
    target = f"hop{run}"
    mirror_out, leader_out = work / f"mirror{run}.json", work / f"leader{run}.json"
    mirror = child("mirror", url, target, str(events), str(mirror_out))
    read_line(mirror, b"ready")
    leader = child("leader", url, target, str(events), str(rate), str(leader_out), stdout=None)
    if leader.wait(timeout=2 * events / rate + 120) != 0 or mirror.wait(timeout=120) != 0:
        raise RuntimeError("a benchmark process failed")
    led = json.loads(leader_out.read_text())
    mir = json.loads(mirror_out.read_text())
    single = [(led["single"]["offered"][n] - t) * 1000 for n, t in led["single"]["applied"].items()]
    cluster = [(mir["times"][n] - t) * 1000 for n, t in led["cluster"]["applied"].items()]
    return {
        "single_p50": percentile(single, 50),
        "single_p99": percentile(single, 99),
        "single_cpu": led["single"]["cpu"] / events * 1e6,
        "cluster_p50": percentile(cluster, 50),
        "cluster_p99": percentile(cluster, 99),
        "leader_cpu": led["cluster"]["cpu"] / events * 1e6,
        "mirror_cpu": mir["cpu"] / events * 1e6,
        "delivered": len(cluster),
    }


def failover(redis: RedisD, lease: float, rate: float, run: int, work: Path, phase: float) -> tuple[float, float, int, int]:
    url = redis.url
    target = f"fo{run}"
    log = work / f"{target}.log"
    tasks = [task_bytes(i, header=i == 1) for i in range(1, 11)]
    log.write_bytes(tasks[0])
    nodes = [child("node", url, target, str(log), str(lease))]
    read_line(nodes[0], b"leading")
    nodes.append(child("node", url, target, str(log), str(lease)))
    times: dict[int, float] = {}
    ids: list[str] = []

    async def observe() -> tuple[float, float]:
        stamp = Stamp()
        async with RedisStore(url, timing=TIMING) as store, trio.open_nursery() as nursery:
            mirror = Mirror(store, target)
            mirror.subscribe(stamp, None)
            await nursery.start(mirror.run)
            with log.open("ab") as f:
                for data in tasks[1:5]:
                    f.write(data)
            with trio.fail_after(60):
                while len(stamp.times) < 5:
                    await stamp.arrived.wait()
            await trio.sleep(phase * lease)  # the kill falls anywhere in the renew cycle
            nodes[0].send_signal(signal.SIGKILL)
            killed = time.time()
            pttl = await redis.command("PTTL", f"trio-sse:{{{target}}}:lease")  # what the dead lease had left
            left = int(pttl[1:]) / 1000
            with log.open("ab") as f:
                f.write(tasks[5])
            for data in tasks[6:]:
                await trio.sleep(1 / rate)
                with log.open("ab") as f:
                    f.write(data)
            with trio.fail_after(lease * 3 + 30):
                while 6 not in stamp.times or len(stamp.ids) < 10:
                    await stamp.arrived.wait()
            await trio.sleep(0.5)  # a duplicate would arrive now, if any
            times.update(stamp.times)
            ids.extend(stamp.ids)
            nursery.cancel_scope.cancel()
            return stamp.times[6] - killed, left

    try:
        took, left = trio.run(observe)
    finally:
        for proc in nodes:
            proc.kill()
            proc.wait()
    expected = Monitor(target, _NoSource())
    expected.apply(LogReset(str(log)))
    expected.apply(LogBytes(log.read_bytes(), 0))
    want = [e.id for e in expected.history.entries]
    lost = len(set(want) - set(ids))
    duplicated = len(ids) - len(set(ids))
    return took, left, lost, duplicated


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("leader", "mirror", "node"):
        kind, args = sys.argv[1], sys.argv[2:]
        if kind == "leader":
            leader_main(args[0], args[1], int(args[2]), float(args[3]), args[4])
        elif kind == "mirror":
            mirror_main(args[0], args[1], int(args[2]), args[3])
        else:
            node_main(args[0], args[1], args[2], float(args[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="tasks per second for the hop")
    parser.add_argument("--hop-runs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5, help="failover runs")
    parser.add_argument("--lease", type=float, default=10.0, help="lease expiry for the failover runs")
    parser.add_argument("--failover-rate", type=float, default=5.0)
    parser.add_argument("--appendfsync", choices=("always", "everysec"), default="everysec",
                        help="redis-server's AOF fsync policy (docs/cluster.md recommends everysec)")
    a = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))

    async def start() -> RedisD:
        server = RedisD(work, appendfsync=a.appendfsync)
        await server.start()
        return server

    redis = trio.run(start)
    try:
        print(f"# cluster mode, {machine()}; redis-server, appendonly yes, appendfsync {a.appendfsync}\n")
        hops = [hop(redis.url, a.events, a.rate, work, run) for run in range(a.hop_runs)]
        if not hops:
            raise SystemExit("--hop-runs must be at least 1")

        def med(key: str) -> float:
            return median([h[key] for h in hops])

        print(f"## Redis hop: {a.events} tasks at {a.rate:g}/s, median of {a.hop_runs} runs\n")
        print(table(
            ["path", "p50 ms", "p99 ms", "CPU µs/event", "delivered"],
            [
                ["single process: monitor → subscriber", med("single_p50"), med("single_p99"), med("single_cpu"),
                 f"{a.events}/{a.events}"],
                ["cluster: monitor → publisher → Redis → mirror → subscriber", med("cluster_p50"), med("cluster_p99"),
                 f"{med('leader_cpu'):.0f} leader + {med('mirror_cpu'):.0f} mirror", f"{min(h['delivered'] for h in hops):.0f}/{a.events}"],
                ["added by the Redis hop", med("cluster_p50") - med("single_p50"), med("cluster_p99") - med("single_p99"),
                 f"{ratio(med('leader_cpu') + med('mirror_cpu'), med('single_cpu')):.3g}× the single process", ""],
            ],
        ))  # fmt: skip
        print("\n(CPU per event at a low steady rate includes the process's timer wake-ups; see docs/cluster.md)")
        phases = random.Random(14).random  # seeded: every invocation kills at the same moments
        if not a.runs:
            return
        results = [failover(redis, a.lease, a.failover_rate, run, work, phases()) for run in range(a.runs)]
        print(f"\n## Failover: SIGKILL of the leader → the next event at another process's mirror (lease {a.lease:g} s)\n")
        print(table(
            ["run", "failover s", "lease left at the kill s", "after the expiry s", "lost", "duplicated"],
            [[i + 1, f"{t:.2f}", f"{left:.2f}", f"{t - left:.3f}", lost, dup] for i, (t, left, lost, dup) in enumerate(results)]
            + [["median", f"{median([r[0] for r in results]):.2f}", "", f"{median([r[0] - r[1] for r in results]):.3f}",
                sum(r[2] for r in results), sum(r[3] for r in results)]],
        ))  # fmt: skip
    finally:
        trio.run(redis.stop)


if __name__ == "__main__":
    main()
