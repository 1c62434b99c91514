"""Shutdown and disconnect storms over real sockets (SPEC §5): a thousand connected clients
all get their final frames and a terminated chunked body within 1 s of the trigger, also
when one of them stopped reading; a thousand abrupt resets leak no task, no fd, no slot,
and the server goes on streaming to the others."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
import signal

import pytest
import trio

from rawhttp import RawClient, address, open_fds, raise_nofile, serve_process
from support import finished_log, wait_for
from trio_sse.config import Settings, TargetSpec
from trio_sse.server import Running, prepare, serve

N = 1000
CONNECT_AT_ONCE = 200  # concurrent connects (the listen backlog is 1024)


def settings_for(log: str, **kw: object) -> Settings:
    base: dict[str, object] = dict(
        port=0,
        targets=(TargetSpec(log=log, process_pattern=None),),
        max_streams=10 * N,
        max_streams_per_ip=10 * N,
        keepalive=0.2,
    )
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


@asynccontextmanager
async def server(settings: Settings) -> AsyncIterator[tuple[Running, trio.Event, trio.Event]]:
    """A real server; yields (running, stop, stopped)."""
    stop, stopped = trio.Event(), trio.Event()

    async def run(task_status: trio.TaskStatus[Running]) -> None:
        try:
            await serve(prepare(settings, quiet=True), shutdown_trigger=stop.wait, task_status=task_status)
        finally:
            stopped.set()

    async with trio.open_nursery() as nursery:
        running = await nursery.start(run)
        try:
            yield running, stop, stopped
        finally:
            stop.set()


async def connect_many(
    nursery: trio.Nursery,
    addr: tuple[str, int],
    n: int,
    *,
    keep_reading: bool = True,
    headers: dict[str, str] | None = None,
) -> list[RawClient]:
    """``n`` streams, each read up to its opening comment; with ``keep_reading`` each goes on
    reading to the end in ``nursery``."""
    clients: list[RawClient] = []
    limiter = trio.CapacityLimiter(CONNECT_AT_ONCE)

    async def one() -> None:
        async with limiter:
            c = await RawClient.connect(addr, headers=headers)
            await c.read_until(b": connected")
        clients.append(c)
        if keep_reading:
            await c.read_to_end()

    ready = trio.Event()

    async def watch() -> None:
        while len(clients) < n:
            await trio.sleep(0.01)
        ready.set()

    for _ in range(n):
        nursery.start_soon(one)
    nursery.start_soon(watch)
    await ready.wait()
    return clients


@pytest.mark.slow
async def test_sigterm_with_a_thousand_clients_and_a_stalled_one_exits_within_one_second(tmp_path):
    # The server is a real `trio-sse serve` process, measured from SIGTERM to its exit. The
    # clients read what it sent only afterwards (the kernel holds it), so they take no CPU
    # from the server while it shuts down. One more client asked for the whole replay of a
    # long run and never reads: its write is stuck in Hypercorn's shielded send (the default
    # write timeout, 30 s, is far away).
    log = await finished_log(tmp_path, tasks=1500)
    args = ["--log", log, "--max-streams", str(2 * N), "--max-streams-per-ip", str(2 * N)]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            async with serve_process(tmp_path, args, nofile=4 * N + 1000) as srv:
                first = await RawClient.connect(srv.addr)
                await first.read_until(b"event: run_complete\n")
                last_id = first.dechunked()[0].split(b"event: run_complete")[0].rsplit(b"id: ", 1)[1].split()[0]
                first.close()
                resume = {"Last-Event-ID": last_id.decode()}  # nothing to replay for the thousand
                clients = await connect_many(nursery, srv.addr, N, keep_reading=False, headers=resume)
                stalled = await RawClient.connect(srv.addr, rcvbuf=2048)
                await srv.wait_metric("trio_sse_stalled_writes", lambda v: v == 1)
                assert (await srv.metrics())["trio_sse_clients"] == N + 1
                srv.proc.send_signal(signal.SIGTERM)
                t0 = trio.current_time()
                await srv.proc.wait()
                elapsed = trio.current_time() - t0
            for c in clients:
                nursery.start_soon(c.read_to_end)
    assert srv.proc.returncode == 0, srv.stderr
    assert "Traceback" not in srv.stderr
    assert elapsed < 1.0, f"shutdown took {elapsed:.2f} s"
    for c in clients:
        assert c.eof and c.error is None
        body, terminated = c.dechunked()
        assert terminated, bytes(c.data[-100:])
        assert body.endswith(b": server shutting down\n") and b"event: task_complete" not in body
        c.close()
    stalled.close()
    print(f"SIGTERM with {N} clients and a stalled one: exit after {elapsed * 1000:.0f} ms")


async def test_shutdown_is_immediate_with_a_client_that_stopped_reading(tmp_path):
    # A replay bigger than every buffer on the way: the stalled client's very first write
    # blocks (in Hypercorn's shielded send) and stays blocked; the write timeout is far away.
    log = await finished_log(tmp_path, tasks=400)
    settings = settings_for(log, write_timeout=600, send_buffer=4096, keepalive=15)
    with trio.fail_after(60):
        async with trio.open_nursery() as readers:
            async with server(settings) as (running, stop, stopped):
                addr = address(running.url)
                stalled = await RawClient.connect(addr, rcvbuf=2048)
                await stalled.read_until(b"\r\n\r\n")  # headers only; never reads again
                normal = await connect_many(readers, addr, 50)
                hub = running.hub
                await wait_for(
                    lambda: any(s.writing_since is not None and trio.current_time() - s.writing_since > 0.3
                                for s in hub.limits.live),
                    "a stalled write",
                )
                t0 = trio.current_time()
                stop.set()
                await stopped.wait()
                elapsed = trio.current_time() - t0
    assert elapsed < 1.0, f"shutdown took {elapsed:.2f} s"
    assert all(c.dechunked()[1] for c in normal)
    assert hub.limits.clients == 0
    for c in [stalled, *normal]:
        c.close()
    print(f"shutdown with a stalled client: {elapsed * 1000:.0f} ms")


def count_tasks() -> int:
    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

    return walk(trio.lowlevel.current_root_task())


async def test_a_thousand_resets_leak_nothing_and_others_keep_streaming(tmp_path):
    raise_nofile(4 * N + 1000)
    log = await finished_log(tmp_path)
    with trio.fail_after(60):
        async with trio.open_nursery() as readers:
            async with server(settings_for(log)) as (running, stop, stopped):
                hub = running.hub
                addr = address(running.url)
                watcher = (await connect_many(readers, addr, 1))[0]
                await wait_for(lambda: hub.limits.clients == 1, "the watcher")
                fds, tasks = open_fds(), count_tasks()

                burst = await connect_many(readers, addr, N, keep_reading=False)
                await wait_for(lambda: hub.limits.clients == N + 1, "all connected")
                for c in burst:
                    c.reset()
                await wait_for(lambda: hub.limits.clients == 1, "all resets noticed")
                await wait_for(lambda: open_fds() <= fds, "fds released")
                await wait_for(lambda: count_tasks() <= tasks, "tasks ended")
                assert dict(hub.limits.per_ip) == {"127.0.0.1": 1}  # the watcher's slot only
                # the watcher goes on receiving after the burst
                seen = watcher.data.count(b": keepalive")
                await wait_for(lambda: watcher.data.count(b": keepalive") >= seen + 2, "keepalives")
            assert hub.limits.clients == 0 and not hub.limits.per_ip
    assert watcher.dechunked()[1]
    watcher.close()
