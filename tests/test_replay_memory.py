"""What a client that stops reading costs the server (issue 11, item 1), against a real
``trio-sse serve`` process: 200 clients that ask for a 1.7 MB replay and never read must not
cost 200 copies of it. Each holds at most one bounded piece (the replay is read from the
shared history as its socket drains) plus what the kernel buffers. ``scripts/bench_stalled.py``
measures the same against the replay size; this test guards the bound."""

from __future__ import annotations

import datetime as dt

import pytest
import trio

from rawhttp import RawClient, serve_process
from trio_sse import waalog

pytestmark = pytest.mark.slow

CLIENTS = 200
BOUND = 100 * 1024 * 1024  # the goal for these 200 clients (measured: ~25 MB)


def error_run(tasks: int, error_bytes: int) -> bytes:
    """A finished WAA run whose every task raised with a long message (a large replay)."""
    ts = waalog.format_timestamp(dt.datetime(2024, 5, 6, 10, 0, 0))

    def rec(msg: str) -> str:
        return waalog.format_record(ts, "INFO", "run", 296, "MainProcess", msg, ansi=False)

    ids = [("chrome", f"{i:08x}-cbae-4d72-b042-26390db2b145-WOS") for i in range(tasks)]
    out = [rec(waalog.worker_tasks(0, ids))]
    for domain, task_id in ids:
        message = f"HTTPConnectionPool(host='20.20.20.21', port=5000): {'x' * error_bytes}"
        out += [rec(waalog.domain(domain)), rec(waalog.example_id(task_id)),
                rec(waalog.exception_in(domain, task_id, message))]  # fmt: skip
    out.append(rec(waalog.no_examples_finished()))
    return "".join(out).encode()


async def test_two_hundred_stalled_clients_do_not_copy_the_replay(tmp_path):
    log = tmp_path / "waa.log"
    log.write_bytes(error_run(400, 4000))  # a ~1.7 MB replay
    args = ["--log", str(log), "--max-streams-per-ip", "1000", "--write-timeout", "600"]
    with trio.fail_after(120):
        async with serve_process(tmp_path, args, nofile=4096) as srv:
            first = await RawClient.connect(srv.addr)
            await first.read_until(b"event: run_complete")  # the history is in memory now
            first.close()
            await srv.wait_metric("trio_sse_clients", lambda v: v == 0)
            before = srv.rss()
            clients = [await RawClient.connect(srv.addr, rcvbuf=4096) for _ in range(CLIENTS)]
            # Every one of them has a write stuck behind its full socket.
            await srv.wait_metric("trio_sse_stalled_writes", lambda v: v == CLIENTS, timeout=60)
            grown = srv.rss() - before
            for c in clients:
                c.reset()
    print(f"{CLIENTS} stalled clients of a 1.7 MB replay: server RSS +{grown / 2**20:.1f} MiB")
    assert grown < BOUND, f"RSS grew by {grown / 2**20:.0f} MiB"
