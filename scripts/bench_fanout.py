#!/usr/bin/env python3
"""Fan-out: N concurrent SSE clients, durable events published at R per second, trio-sse
against sse-starlette + uvicorn in the same invocation (issue 6, benchmark 1).

Each run starts one server process, connects N raw-socket clients from a separate process
(``scripts/_bench_clients.py``; ``--client-procs`` of them), waits until every client
has its opening frames, then signals the server (SIGUSR1) to publish ``R × duration``
``task_complete`` events at a steady rate, waits one second for the tail to drain and stops.

* **trio-sse**: the real ``serve()``; the publisher calls ``Monitor.apply_parsed`` with the
  parser's own events for a task start, a step and a finish — the path a log line takes after
  parsing (history append, encode once, ``offer`` to every ``EventStream``, per-client
  progress coalescing). The log-to-client path (source + parser) is ``bench_latency.py``'s.
* **sse-starlette + uvicorn**: a minimal broadcaster sending the same bytes (see
  ``_bench_servers.serve_starlette``).

With ``--db``, the comparison is trio-sse against itself with the run history on (every
durable event recorded by the history writer into a fresh SQLite file per run, as
``trio-sse serve`` does by default) — the issue 13 check that the history adds no measurable
CPU to fan-out — instead of against sse-starlette.

Measured per server (median of ``--runs`` alternating runs): delivered / expected durable
events, p50 / p99 delivery latency (client receive ``time.time()`` − publish ``time.time()``
on the same machine), server CPU seconds per 1000 delivered durable events (``/proc`` of the
server process, from the publish signal to the end of the drain), server RSS growth per
connection; then the ratios trio-sse / sse-starlette.

    .venv/bin/python scripts/bench_fanout.py [--clients 1000] [--rate 4] [--duration 15] [--runs 3] [--no-tuning] [--db]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_clients import Clients  # noqa: E402
from _bench_measure import cpu_seconds, latencies, machine, median, percentile, ratio, rss_bytes, table  # noqa: E402
from _bench_servers import SERVERS, kill, start_server, wait_file  # noqa: E402

HISTORY = {"trio-db": "trio-sse with the run history (--db)"}


def one_run(kind: str, a: argparse.Namespace, workdir: Path, n: int = 0, **server_opts: object) -> dict[str, float]:
    """One run of ``kind`` (``trio-db``: trio-sse with the run history, a fresh file per run);
    ``server_opts`` are more options of its server (bench_steps.py runs trio-sse with a
    results folder this way)."""
    count = int(a.rate * a.duration)
    times = workdir / f"times-{kind}.json"
    times.unlink(missing_ok=True)
    db = workdir / f"history-{n}.sqlite3" if kind == "trio-db" else None  # a fresh file per run
    server, port = start_server(kind.removesuffix("-db"), workdir, rate=a.rate, count=count, times=times,
                                keepalive=a.keepalive, no_tuning=a.no_tuning, db=db, **server_opts)  # fmt: skip
    try:
        time.sleep(0.5)  # let the fresh process settle before the RSS baseline
        rss0 = rss_bytes(server.pid)
        with Clients(port, a.clients, a.client_procs, workdir, gzip=a.gzip) as clients:
            opened, failed = clients.wait_ready()
            time.sleep(1.0)
            rss1 = rss_bytes(server.pid)
            cpu0 = cpu_seconds(server.pid)
            t0 = time.monotonic()
            server.send_signal(signal.SIGUSR1)
            wait_file(times, server, a.duration * 3 + 30)
            time.sleep(1.0)  # the tail of the last events reaches the clients
            cpu1 = cpu_seconds(server.pid)
            elapsed = time.monotonic() - t0
            result = clients.stop()
    finally:
        kill(server)

    report = json.loads(times.read_text())
    published = {int(k): v for k, v in report["published"].items()}
    lat = latencies(result["durable"], published)  # type: ignore[arg-type]
    delivered = len(lat)
    expected = opened * len(published)
    return {
        "opened": opened,
        "reordered": result["reordered"],  # type: ignore[dict-item]
        "failed": failed,
        "delivered": delivered,
        "expected": expected,
        "p50": percentile(lat, 50) * 1000,
        "p99": percentile(lat, 99) * 1000,
        "max": max(lat, default=float("nan")) * 1000,
        "cpu_per_1000": (cpu1 - cpu0) / delivered * 1000 if delivered else float("nan"),
        "cpu_pct": (cpu1 - cpu0) / elapsed * 100,
        "rss_per_conn": (rss1 - rss0) / max(opened, 1) / 1024,
        "rss": rss1 / 2**20,
        "gc_pct": sum(report["gc_seconds"]) / (cpu1 - cpu0) * 100 if cpu1 > cpu0 else float("nan"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rate", type=float, default=4.0, help="durable events per second")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of publishing per run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--client-procs", type=int, default=1)
    p.add_argument("--keepalive", type=float, default=15.0)
    p.add_argument("--only", choices=(*SERVERS, *HISTORY), help="run one server only (profiling)")
    p.add_argument("--gzip", action="store_true",
                   help="clients send Accept-Encoding: gzip as browsers do (trio-sse compresses; the peer does not)")  # fmt: skip
    p.add_argument("--no-tuning", action="store_true",
                   help="run trio-sse's server untuned (no trio_sse.tuning.tune_process): the 'before' numbers")  # fmt: skip
    p.add_argument("--db", action="store_true",
                   help="compare trio-sse without and with the run history (instead of with sse-starlette)")
    a = p.parse_args()
    labels = {**SERVERS, **HISTORY}
    kinds = ["trio", "trio-db"] if a.db else list(SERVERS)
    if a.only:
        kinds = [a.only]
    print(f"machine: {machine()}")
    print(f"fan-out: {a.clients} clients{' asking for gzip' if a.gzip else ''}{', trio-sse untuned' if a.no_tuning else ''}, {a.rate:g} task_complete/s "
          f"for {a.duration:g} s, {a.runs} runs each\n")  # fmt: skip
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        for i in range(a.runs):
            for kind in kinds if i % 2 == 0 else kinds[::-1]:
                r = one_run(kind, a, Path(tmp), i)
                runs[kind].append(r)
                print(
                    f"  run {i + 1} {kind:9}: {r['delivered']}/{r['expected']} delivered ({r['reordered']} out of order), p50 {r['p50']:.1f} ms, "
                    f"p99 {r['p99']:.1f} ms, max {r['max']:.0f} ms, CPU {r['cpu_per_1000']:.3f} s/1000 "
                    f"({r['cpu_pct']:.0f}% of a core, GC {r['gc_pct']:.0f}% of it), RSS {r['rss_per_conn']:.1f} KiB/conn",
                    flush=True,
                )
    med = {k: {m: median([r[m] for r in rs]) for m in rs[0]} for k, rs in runs.items()}
    rows = []
    for kind in kinds:
        m = med[kind]
        rows.append(
            [labels[kind], f"{m['delivered']:.0f}/{m['expected']:.0f}", f"{sum(r['reordered'] for r in runs[kind])}",
             m["p50"], m["p99"],
             m["cpu_per_1000"], m["cpu_pct"], m["gc_pct"], m["rss_per_conn"]]  # fmt: skip
        )
    print()
    print(table(["server", "delivered/expected", "out of order (all runs)", "p50 ms", "p99 ms", "CPU s / 1000 events",
                 "CPU % of a core", "GC % of CPU", "RSS KiB / conn"], rows))  # fmt: skip
    if kinds == ["trio", "trio-db"]:
        t, h = med["trio"], med["trio-db"]
        print()
        print(
            table(
                ["ratio with history / without", "value", "target"],
                [
                    ["CPU per delivered event", ratio(h["cpu_per_1000"], t["cpu_per_1000"]), "≈ 1.0 (no measurable change)"],
                    ["p50 latency", ratio(h["p50"], t["p50"]), ""],
                    ["p99 latency", ratio(h["p99"], t["p99"]), ""],
                    ["RSS per connection", ratio(h["rss_per_conn"], t["rss_per_conn"]), ""],
                ],
            )
        )
    elif len(kinds) == 2:
        t, s = med["trio"], med["starlette"]
        print()
        print(
            table(
                ["ratio trio-sse / sse-starlette", "value", "target"],
                [
                    ["CPU per delivered event", ratio(t["cpu_per_1000"], s["cpu_per_1000"]), "≤ 1.0"],
                    ["p50 latency", ratio(t["p50"], s["p50"]), ""],
                    ["p99 latency", ratio(t["p99"], s["p99"]), "≤ 1.0"],
                    ["RSS per connection", ratio(t["rss_per_conn"], s["rss_per_conn"]), ""],
                ],
            )
        )


if __name__ == "__main__":
    main()
