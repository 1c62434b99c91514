#!/usr/bin/env python3
"""Capacity: how many idle SSE streams one server process holds with keepalives on time, and
the RSS each costs — trio-sse against sse-starlette + uvicorn (issue 6, benchmark 3).

For each step (default 1000, 5000, 10000 streams) and server: a fresh server process; the
streams are opened by ``--client-procs`` raw-socket client processes
(``scripts/_bench_clients.py``, RLIMIT_NOFILE raised to its hard limit); once all are
open the server's RSS is read, then the streams are held idle for ``--hold`` seconds, in
which every stream should get a keepalive comment every ``--keepalive`` seconds. Measured:
streams opened / asked, connect time, RSS growth per stream (RSS with the streams − RSS of
the fresh process, ÷ streams), keepalive lateness p50 / p99 / max (the gap between a
stream's consecutive keepalives — or its opening and the first — minus the keepalive
period, as seen by the client) of the keepalives that arrived once every stream was open
(steady state; those that arrived while the rest were still connecting are shown apart),
keepalives received / expected, server CPU % while idle.

    .venv/bin/python scripts/bench_capacity.py [--steps 1000,5000,10000] [--keepalive 5] [--hold 16] [--no-tuning]

The default keepalive here is 5 s (trio-sse's default is 15 s): three times the timer load,
and three keepalive rounds per stream in a 16 s hold, so the whole run stays near 3 minutes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_clients import Clients  # noqa: E402
from _bench_measure import cpu_seconds, machine, percentile, raise_nofile, ratio, rss_bytes, table  # noqa: E402
from _bench_servers import SERVERS, kill, start_server  # noqa: E402


def one_step(kind: str, n: int, a: argparse.Namespace, workdir: Path) -> dict[str, float]:
    server, port = start_server(kind, workdir, keepalive=a.keepalive, no_tuning=a.no_tuning)
    try:
        time.sleep(0.5)
        rss0 = rss_bytes(server.pid)
        t0 = time.monotonic()
        procs = max(1, min(a.client_procs, -(-n // 2500)))
        with Clients(port, n, procs, workdir, gzip=a.gzip) as clients:
            opened, failed = clients.wait_ready()
            connect = time.monotonic() - t0
            ready_at = time.time()
            time.sleep(1.0)
            rss1 = rss_bytes(server.pid)
            cpu0 = cpu_seconds(server.pid)
            time.sleep(a.hold)
            cpu1 = cpu_seconds(server.pid)
            rss2 = rss_bytes(server.pid)
            result = clients.stop()
    finally:
        kill(server)
    gaps = result["ka_gaps"]
    late = [g - a.keepalive for t, g in gaps if t > ready_at + a.keepalive]  # type: ignore[union-attr]
    ramp_late = [g - a.keepalive for t, g in gaps if t <= ready_at + a.keepalive]  # type: ignore[union-attr]
    expected = opened * int((a.hold + 1.0 + connect * 0) // a.keepalive)
    return {
        "asked": n,
        "opened": opened,
        "failed": failed,
        "closed": result["closed"],  # type: ignore[dict-item]
        "connect_s": connect,
        "rss_per_conn": (rss1 - rss0) / max(opened, 1) / 1024,
        "rss_mib": rss2 / 2**20,
        "ka": len(gaps),  # type: ignore[arg-type]
        "ka_expected": expected,
        "late_p50": percentile(late, 50),
        "late_p99": percentile(late, 99),
        "late_max": max(late, default=float("nan")),
        "ramp_late_p99": percentile(ramp_late, 99),
        "cpu_pct": (cpu1 - cpu0) / a.hold * 100,
        "statuses": str(result["statuses"] or ""),  # type: ignore[dict-item]
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", default="1000,5000,10000")
    p.add_argument("--keepalive", type=float, default=5.0)
    p.add_argument("--hold", type=float, default=16.0)
    p.add_argument("--client-procs", type=int, default=4, help="at most this many (2500 streams each)")
    p.add_argument("--only", choices=tuple(SERVERS))
    p.add_argument("--gzip", action="store_true", help="clients send Accept-Encoding: gzip as browsers do")
    p.add_argument("--no-tuning", action="store_true",
                   help="run trio-sse's server untuned (no trio_sse.tuning.tune_process): the 'before' numbers")  # fmt: skip
    a = p.parse_args()
    hard = raise_nofile()
    steps = [int(s) for s in a.steps.split(",")]
    if max(steps) + 100 > hard:
        sys.exit(f"RLIMIT_NOFILE hard limit is {hard}; raise it (ulimit -Hn) for {max(steps)} streams")
    kinds = [a.only] if a.only else list(SERVERS)
    print(f"machine: {machine()}")
    print(f"capacity: idle streams {steps}{', trio-sse untuned' if a.no_tuning else ''}, keepalive every {a.keepalive:g} s, held {a.hold:g} s\n")
    rows = []
    res: dict[tuple[str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        for n in steps:
            for kind in kinds:
                r = one_step(kind, n, a, Path(tmp))
                res[kind, n] = r
                print(
                    f"  {kind:9} {n:6}: opened {r['opened']:.0f} (failed {r['failed']:.0f}{' ' + r['statuses'] if r['statuses'] else ''}) "
                    f"in {r['connect_s']:.1f} s, RSS {r['rss_per_conn']:.1f} KiB/stream, keepalives {r['ka']:.0f}/{r['ka_expected']:.0f} "
                    f"late p50 {r['late_p50'] * 1000:.0f} ms p99 {r['late_p99'] * 1000:.0f} ms max {r['late_max'] * 1000:.0f} ms "
                    f"(while connecting: p99 {r['ramp_late_p99'] * 1000:.0f} ms), "
                    f"idle CPU {r['cpu_pct']:.1f}%",
                    flush=True,
                )
                rows.append(
                    [SERVERS[kind], n, f"{r['opened']:.0f}", r["connect_s"], r["rss_per_conn"], r["rss_mib"],
                     f"{r['ka']:.0f}/{r['ka_expected']:.0f}", r["late_p50"] * 1000, r["late_p99"] * 1000,
                     r["late_max"] * 1000, r["ramp_late_p99"] * 1000, r["cpu_pct"]]  # fmt: skip
                )
    print()
    print(table(["server", "streams", "opened", "connect s", "RSS KiB / stream", "RSS MiB",
                 "keepalives got/expected", "late p50 ms", "late p99 ms", "late max ms",
                 "late p99 ms while connecting", "idle CPU %"], rows))  # fmt: skip
    if len(kinds) == 2:
        print()
        print(
            table(
                ["streams", "RSS / stream trio-sse ÷ sse-starlette", "keepalive p99 lateness trio-sse − sse-starlette (ms)"],
                [
                    [n, ratio(res["trio", n]["rss_per_conn"], res["starlette", n]["rss_per_conn"]),
                     (res["trio", n]["late_p99"] - res["starlette", n]["late_p99"]) * 1000]  # fmt: skip
                    for n in steps
                ],
            )
        )


if __name__ == "__main__":
    main()
