#!/usr/bin/env python3
"""Latency: a task's lines appended to a followed log → its ``task_complete`` at a client,
for a local log and for a log read over a loopback sshd — trio-sse against the polling
design it replaces, for the same appends (issue 6, benchmark 2). Plus start-up: a server
started on a 10 MB log → its first and last replayed event at a client.

**Appends.** A simulated WAA run (``trio_sse.sources.simulate``, as ``_bench_workloads.waa_run``
cuts it): its header, then ``--tasks`` tasks, each written as ONE append of its lines
(``[Domain]``, ``[Example ID]``, instruction, steps with their actions, ``Result``,
``Finished`` — or the exception of the one task that raises) with WAA's ANSI-coloured prefix,
every ``1/--rate`` s with ±30 % jitter (seeded: every phase gets the same run and schedule).
The append time is ``time.time()`` right after ``os.write`` returned.

**trio-sse.** A real server process (``scripts/_bench_servers.py trio --log``) follows
the log (``LocalSource``, or ``SSHSource`` to ``127.0.0.1`` with the ``tests/sshd.py``
harness: a real OpenSSH ``sshd``); ``--clients`` raw-socket clients in another process time
each durable event; the n-th ``task_complete`` is the n-th task appended.

**Polling design** (SPEC §0, the baseline): ``--clients`` pollers, each every ``--interval``
(5) s spawns ``tail -100 LOG`` — through ``ssh`` (a new connection per command, as it did)
for the SSH case — and regexes it; a task's latency is when a poller first saw its
``Finished`` (or ``Exception in``) line. Pollers start at random phases, as clients connect at random times.

Each (source, design) pair runs ``--runs`` times; the table shows medians of the per-run
p50 / p99 and the total delivered / expected.

    .venv/bin/python scripts/bench_latency.py [--tasks 30] [--rate 3] [--clients 10] [--runs 3] [--no-ssh] [--no-tuning]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _bench_clients import Clients, Poller, ssh_prefix  # noqa: E402
from _bench_measure import machine, median, percentile, ratio, table  # noqa: E402
from _bench_servers import kill, start_server  # noqa: E402
from _bench_workloads import waa_run  # noqa: E402
from trio_sse.testing import free_port  # noqa: E402


class Plan:
    """The run of one phase (a simulated WAA run, one append per task) and its (seeded)
    append schedule."""

    def __init__(self, tasks: int, rate: float, seed: int = 11) -> None:
        self.run = waa_run(tasks, seed=seed)
        rng = random.Random(seed)
        gap = 1.0 / rate
        t, self.offsets = 0.5, []
        for _ in range(tasks):
            self.offsets.append(t)
            t += gap * rng.uniform(0.7, 1.3)

    def write_header(self, path: Path) -> None:
        path.write_bytes(self.run.header)

    def append_all(self, path: Path) -> list[float]:
        """Append every task on schedule; returns the wall-clock append times."""
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        times = []
        try:
            start = time.monotonic()
            for append, offset in zip(self.run.appends, self.offsets):
                delay = start + offset - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # a script pacing its writes, not a test waiting
                os.write(fd, append)
                times.append(time.time())
        finally:
            os.close(fd)
        return times


def trio_phase(plan: Plan, a: argparse.Namespace, work: Path, ssh: dict[str, str] | None) -> dict[str, float]:
    log = work / "waa.log"
    plan.write_header(log)
    opts: dict[str, object] = {"log": log, "poll_interval": a.local_poll}
    if ssh:
        opts.update(ssh=ssh["address"], identity=ssh["identity"], known_hosts=ssh["known_hosts"])
    server, port = start_server("trio", work, no_tuning=a.no_tuning, **opts)
    try:
        with Clients(port, a.clients, 1, work, path="/api/benchmark-sse?target=local") as clients:
            clients.wait_ready()
            time.sleep(1.0 if ssh else 0.3)  # the source is following (SSH: connected) before the first append
            appended = plan.append_all(log)
            time.sleep(1.0)
            result = clients.stop()
    finally:
        kill(server)
    received: dict[int, list[float]] = result["durable"]  # type: ignore[assignment]
    lat = [t - appended[seq - 1] for seq, ts in received.items() if 0 < seq <= len(appended) for t in ts]
    return summary(lat, len(appended) * a.clients)


def polling_phase(plan: Plan, a: argparse.Namespace, work: Path, ssh: dict[str, str] | None) -> dict[str, float]:
    log = work / "waa.log"
    plan.write_header(log)
    prefix = ssh_prefix(ssh["user"], "127.0.0.1", int(ssh["port"]), ssh["identity"], ssh["known_hosts"]) if ssh else []
    rng = random.Random(5)
    pollers = [Poller(str(log), a.interval, prefix, rng.uniform(0, a.interval)) for _ in range(a.clients)]
    for p in pollers:
        p.start()
    try:
        appended = plan.append_all(log)
        time.sleep(a.interval + 1.0)  # every poller polls once more after the last append
    finally:
        for p in pollers:
            p.close()
    when = {task.task_id: t for task, t in zip(plan.run.tasks, appended)}
    lat = [p.seen[tid] - when[tid] for p in pollers for tid in when if tid in p.seen]
    return summary(lat, len(appended) * a.clients)


def summary(lat: list[float], expected: int) -> dict[str, float]:
    return {
        "delivered": len(lat),
        "expected": expected,
        "p50": percentile(lat, 50) * 1000,
        "p99": percentile(lat, 99) * 1000,
        "max": max(lat, default=float("nan")) * 1000,
    }


def start_sshd(work: Path) -> tuple[object, dict[str, str]] | None:
    """The tests' real-sshd harness (tests/sshd.py), started outside pytest."""
    if not (shutil.which("ssh") and os.path.exists("/usr/sbin/sshd")):
        return None
    import trio
    from sshd import SSHD

    d = work / "sshd"
    d.mkdir()
    sshd = SSHD(d)
    trio.run(sshd.start)
    return sshd, {
        "address": sshd.address,
        "user": sshd.user,
        "port": str(sshd.port),
        "identity": str(sshd.client_key),
        "known_hosts": str(sshd.known_hosts),
    }


def stop_sshd(sshd: object) -> None:
    import trio

    trio.run(sshd.stop)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- start-up


def startup(a: argparse.Namespace, work: Path) -> dict[str, float]:
    """Server process start → port open → first event at a client → the whole replay."""
    from bench_parser import generate  # the parser benchmark's 154-task WAA log generator

    log = work / "big.log"
    if not log.exists():
        log.write_bytes(generate(154, 30))
    size = log.stat().st_size
    port = free_port()
    t0 = time.time()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "_bench_servers.py"), "trio", "--port", str(port),
         "--workdir", str(work), "--log", str(log), *(["--no-tuning"] if a.no_tuning else [])],  # fmt: skip
    )
    import socket

    try:
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.time() - t0 > 30:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.005)  # polling for the port, as a client retrying would
        t_port = time.time()
        sock.sendall(f"GET /api/benchmark-sse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        buf = b""
        t_first = t_all = float("nan")
        count = 0
        sock.settimeout(10)
        while count < 154:
            data = sock.recv(1 << 20)
            if not data:
                break
            buf += data
            new = buf.count(b"event: task_complete")
            if new and count == 0:
                t_first = time.time()
            count = new
        t_all = time.time()
        sock.close()
    finally:
        kill(server)
    return {"size_mb": size / 1e6, "port_s": t_port - t0, "first_s": t_first - t0, "all_s": t_all - t0, "events": count}


# --------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=30)
    p.add_argument("--rate", type=float, default=3.0, help="tasks appended per second")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--interval", type=float, default=5.0, help="the polling design's interval")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--local-poll", type=float, default=None,
                   help="experiment: LocalSource poll interval in s (default: the product's)")  # fmt: skip
    p.add_argument("--no-ssh", action="store_true")
    p.add_argument("--no-startup", action="store_true")
    p.add_argument("--no-tuning", action="store_true",
                   help="run trio-sse's server untuned (no trio_sse.tuning.tune_process): the 'before' numbers")  # fmt: skip
    a = p.parse_args()
    print(f"machine: {machine()}")
    print(f"latency: {a.tasks} tasks appended at ~{a.rate:g}/s, {a.clients} clients, {a.runs} runs; "
          f"{'trio-sse untuned; ' if a.no_tuning else ''}"
          f"polling design every {a.interval:g} s\n")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        work = Path(tmp)
        sshd = None
        ssh = None
        if not a.no_ssh:
            started = start_sshd(work)
            if started is None:
                print("  (no sshd/ssh here: SSH rows skipped)")
            else:
                sshd, ssh = started
        try:
            plan = Plan(a.tasks, a.rate)
            sources = [("local", None)] + ([("ssh (loopback sshd)", ssh)] if ssh else [])
            designs: list[tuple[str, Callable[..., dict[str, float]]]] = [
                ("trio-sse", trio_phase),
                (f"polling design ({a.interval:g} s)", polling_phase),
            ]
            for source, ssh_opts in sources:
                res: dict[str, list[dict[str, float]]] = {}
                for i in range(a.runs):
                    for design, fn in designs:
                        run = work / f"run-{source[:3]}-{design[:4]}-{i}"
                        run.mkdir()
                        r = fn(plan, a, run, ssh_opts)
                        res.setdefault(design, []).append(r)
                        print(f"  {source:20} {design:24} run {i + 1}: {r['delivered']}/{r['expected']}, "
                              f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms", flush=True)  # fmt: skip
                meds = {d: {k: median([r[k] for r in rs]) for k in rs[0]} for d, rs in res.items()}
                for design, _ in designs:
                    m = meds[design]
                    rows.append([source, design, f"{sum(r['delivered'] for r in res[design]):.0f}/"
                                 f"{sum(r['expected'] for r in res[design]):.0f}", m["p50"], m["p99"], m["max"]])  # fmt: skip
                t, b = meds[designs[0][0]], meds[designs[1][0]]
                rows.append([source, "ratio trio-sse / polling", "", ratio(t["p50"], b["p50"]), ratio(t["p99"], b["p99"]), ""])
        finally:
            if sshd is not None:
                stop_sshd(sshd)
        print()
        print(table(["log", "design", "delivered/expected", "p50 ms", "p99 ms", "max ms"], rows))
        if not a.no_startup:
            runs = [startup(a, work) for _ in range(a.runs)]
            m = {k: median([r[k] for r in runs]) for k in runs[0]}
            print()
            print(f"start-up with a {m['size_mb']:.1f} MB WAA log ({m['events']:.0f} tasks), median of {a.runs}:")
            print(table(["from process start to", "seconds"], [
                ["port accepting", m["port_s"]],
                ["first task_complete at the client", m["first_s"]],
                [f"all {m['events']:.0f} replayed", m["all_s"]],
            ]))  # fmt: skip


if __name__ == "__main__":
    main()
