#!/usr/bin/env python3
"""Benchmark of the run history (``trio_sse/store.py``, ``storedb.py``), two tables:

1. **Writer throughput**: durable events per second the ONE writer task sustains (real
   SQLite file, WAL, worker threads, batches of up to 256 per transaction), fresh file and
   a replay of the same events (all duplicates), against the naive way — one transaction
   per event — in the same invocation. The goal is >= 100x the fastest realistic task rate.
   Assumed fastest realistic rate: 20 task results/s over all targets (10 targets x 40
   parallel WAA workers finishing a task every 20 s; a broken VM that makes every task
   raise at once is faster for a moment, and the writer's channel and resync absorb that).
2. **/api/runs latency with 10 000 stored runs** (``--runs``, ``--tasks-per-run`` tasks
   each): the queries as the API makes them (``HistoryReader``: a worker thread, a
   read-only WAL connection) plus JSON encoding, against a naive listing that aggregates
   the tasks table (``GROUP BY``) instead of reading the totals kept on each run.

Median of ``--repeat`` runs (throughput) / of ``--calls`` calls (latency).

    python scripts/bench_store.py [--events 20000] [--runs 10000] [--tasks-per-run 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_measure import machine, median, percentile, ratio, table  # noqa: E402

from trio_sse import storedb  # noqa: E402
from trio_sse.history import History  # noqa: E402
from trio_sse.model import RunComplete, TaskComplete  # noqa: E402
from trio_sse.sources.simulate import DOMAINS  # noqa: E402
from trio_sse.store import HistoryReader, HistoryWriter  # noqa: E402

REALISTIC_RATE = 20.0  # durable events per second, all targets together (see the docstring)
AT = "2024-09-16T09:30:00.000+00:00"


def make_runs(n_runs: int, tasks_per_run: int, *, first: int = 0) -> list[History]:
    runs = []
    for r in range(first, first + n_runs):
        h = History(f"target{r % 10}", f"{r:010x}")
        for i in range(tasks_per_run):
            ok = (r + i) % 3 == 0
            h.append(
                TaskComplete(
                    h.target,
                    f"{r:08x}-{i:04x}-4d72-b042-26390db2b145-WOS",
                    ok,
                    1.0 if ok else 0.0 if i % 7 else None,
                    domain=DOMAINS[i % len(DOMAINS)],
                    steps=i % 15,
                    error=None if i % 7 else "TimeoutError: no answer from the VM",
                )
            )
        h.append(RunComplete(h.target, tasks_per_run, tasks_per_run, tasks_per_run // 3, 0.33))
        runs.append(h)
    return runs


def ops_of(runs: Sequence[History]) -> list[storedb.Op]:
    return [storedb.EventOp(h.target, h.run, e.id, e.event.EVENT, e.data, AT) for h in runs for e in h.entries]


# ---------------------------------------------------------------------------- 1. writer


def naive_rate(path: Path, runs: Sequence[History]) -> float:
    conn = storedb.open_for_writing(path)
    ops = ops_of(runs)
    t0 = time.perf_counter()
    for op in ops:
        storedb.apply(conn, [op])  # one transaction each
    elapsed = time.perf_counter() - t0
    conn.close()
    return len(ops) / elapsed


async def writer_rate(path: Path, runs: Sequence[History]) -> tuple[float, float]:
    """(fresh, replay) events per second through HistoryWriter."""
    n = sum(len(h) for h in runs)
    rates = []
    for _ in range(2):  # the second pass is the replay after a restart: all duplicates
        writer = HistoryWriter(path, buffer=n)  # holds them all: measures the writer, not resync
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            t0 = time.perf_counter()
            for h in runs:
                for e in h.entries:
                    writer.record(h, e)
            await writer.wait_idle()
            rates.append(n / (time.perf_counter() - t0))
            nursery.cancel_scope.cancel()
        s = writer.statistics()
        assert s.written + s.duplicates == n and s.overflows == 0, s
    return rates[0], rates[1]


# ---------------------------------------------------------------------------- 2. queries


NAIVE_LIST = """
SELECT r.id, r.target, r.run, r.first_seen, r.finished_at, COUNT(t.event_id), SUM(t.success),
       AVG(t.score)
FROM runs r LEFT JOIN tasks t ON t.run_ref = r.id
GROUP BY r.id ORDER BY r.id DESC LIMIT ?
"""


def build_history(path: Path, n_runs: int, tasks_per_run: int) -> None:
    conn = storedb.open_for_writing(path)
    chunk = max(1, 2000 // max(tasks_per_run, 1))
    for start in range(0, n_runs, chunk):
        runs = make_runs(min(chunk, n_runs - start), tasks_per_run, first=start)
        storedb.apply(conn, ops_of(runs))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


async def query_latencies(path: Path, calls: int, n_runs: int) -> list[tuple[str, list[float]]]:
    reader = HistoryReader(path)
    listed = await reader.list_runs(limit=1000)
    some = listed[len(listed) // 2]
    cases = {
        "GET /api/runs (newest 100)": lambda: reader.list_runs(limit=100),
        f"GET /api/runs (all {n_runs})": lambda: reader.list_runs(limit=None),
        "GET /api/runs?target=… (100)": lambda: reader.list_runs(target="target3", limit=100),
        "GET /api/runs/<run> (its tasks)": lambda: reader.run_with_tasks(some.ref),
        "--baseline previous": lambda: reader.previous_run("target3", exclude_run=some.run),
    }
    out = []
    for name, call in cases.items():
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            result = await call()
            if isinstance(result, list):
                json.dumps([r.payload() for r in result])
            elif isinstance(result, tuple):
                json.dumps({"run": result[0].payload(), "tasks": result[1]})
            times.append(time.perf_counter() - t0)
        out.append((name, times))
    await reader.aclose()
    return out


def naive_latencies(path: Path, calls: int, limit: int) -> list[float]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        rows = conn.execute(NAIVE_LIST, (limit,)).fetchall()
        json.dumps(rows)  # (tuples: cheaper to encode than the API's objects)
        times.append(time.perf_counter() - t0)
    conn.close()
    return times


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=20_000, help="durable events per throughput run (default 20000)")
    p.add_argument("--runs", type=int, default=10_000, help="stored runs for the latency table (default 10000)")
    p.add_argument("--tasks-per-run", type=int, default=20, help="tasks of each stored run (default 20)")
    p.add_argument("--repeat", type=int, default=5, help="throughput repetitions (default 5)")
    p.add_argument("--calls", type=int, default=50, help="calls per query (default 50)")
    a = p.parse_args(argv)
    print(f"# bench_store — {machine()}; SQLite {sqlite3.sqlite_version}")
    per_run = 150
    runs = make_runs(max(1, a.events // (per_run + 1)), per_run)
    n = sum(len(h) for h in runs)

    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        naive, fresh, replay = [], [], []
        for i in range(a.repeat):
            naive.append(naive_rate(Path(tmp) / f"naive{i}.sqlite3", runs))
            f, r = trio.run(writer_rate, Path(tmp) / f"writer{i}.sqlite3", runs)
            fresh.append(f)
            replay.append(r)
        print(f"\n## 1. Writer throughput ({n} durable events, {len(runs)} runs of {per_run} tasks; median of {a.repeat})\n")
        rows = [
            ("one transaction per event (naive)", median(naive), 1.0, ratio(median(naive), REALISTIC_RATE)),
            ("HistoryWriter, new events", median(fresh), ratio(median(fresh), median(naive)), ratio(median(fresh), REALISTIC_RATE)),
            ("HistoryWriter, replay (duplicates)", median(replay), ratio(median(replay), median(naive)), ratio(median(replay), REALISTIC_RATE)),
        ]
        print(table(("writer", "events/s", "× naive", f"× {REALISTIC_RATE:g}/s (fastest realistic)"), rows))

        path = Path(tmp) / "history.sqlite3"
        t0 = time.perf_counter()
        build_history(path, a.runs, a.tasks_per_run)
        size = path.stat().st_size
        print(
            f"\n## 2. Query latency with {a.runs} runs × {a.tasks_per_run} tasks "
            f"({size / 2**20:.0f} MiB, built in {time.perf_counter() - t0:.0f} s; {a.calls} calls each, incl. JSON)\n"
        )
        results = trio.run(query_latencies, path, a.calls, a.runs)
        rows = [(name, median(t) * 1000, percentile(t, 95) * 1000, "") for name, t in results]
        for limit, label in ((100, "newest"), (-1, "all")):
            naive_q = naive_latencies(path, a.calls, limit)
            ours = median(next(t for name, t in results if name.startswith(f"GET /api/runs ({label}")))
            rows.append(
                (
                    f"naive: GROUP BY over tasks ({label})",
                    median(naive_q) * 1000,
                    percentile(naive_q, 95) * 1000,
                    f"{ratio(median(naive_q), ours):.2f}× ours",
                )
            )
        print(table(("query", "median ms", "p95 ms", "vs /api/runs"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
