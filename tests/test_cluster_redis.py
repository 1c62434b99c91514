"""Cluster mode against a real ``redis-server`` (tests/redisd.py): the lease, fencing, the
publisher and the mirror — round trip, two mirrors, a late reader, Redis killed mid-run,
Redis restarted empty, a leader taking over from a dead one, and junk in Redis.

Clocks: Redis's expiry runs on Redis's own clock, which ``autojump_clock`` cannot drive, and
these tests wait on real sockets, so they run in real time. Waits are on events (a
subscriber's arrivals, a value's version, the lease's state), each bounded by ``fail_after``.
Only the tests where Redis's clock is the thing under test (a lease expiring, a leader
giving up when it cannot renew) use a short real expiry, and say so.

The leader in these tests is a real ``monitor.Monitor`` fed log bytes synchronously through
``apply`` (a source that is never run), so each test decides exactly what the leader has
read when.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from redisd import RedisD
from trio_sse.history import Position
from trio_sse.cluster.codec import MAX_EXTRA, Checkpoint, PublishStep
from trio_sse.cluster.keys import Token
from trio_sse.cluster.lease import Lease, Leadership
from trio_sse.cluster.mirror import Mirror
from trio_sse.cluster.node import ClusterNode
from trio_sse.cluster.publisher import LogPosition, Publisher
from trio_sse.cluster.redis import RedisStore, open_store
from trio_sse.cluster.timing import ClusterTiming
from trio_sse.errors import ClusterDataError, RedisUnavailable
from trio_sse.history import Entry
from trio_sse.model import ErrorEvent, TaskComplete, dumps
from trio_sse.monitor import Monitor
from trio_sse.runstate import Live
from trio_sse.sources import LogBytes, LogReset, ProbeResult, SourceDown
from trio_sse.sources.local import LocalSource

pytestmark = [pytest.mark.redis, pytest.mark.slow]

# Quick back-off and short blocking reads so outages and recoveries take a fraction of a
# second; generous call timeouts for a loaded 2-core machine.
FAST = ClusterTiming(
    lease_seconds=10.0,
    op_timeout=3.0,
    block_ms=500,
    backoff_first=0.02,
    backoff_cap=0.2,
    read_count=7,  # small pages: paging is exercised by every run of more than 7 events
    publish_chunk=5,  # small chunks: so is chunked publishing
)
GUARD = 20  # seconds: the bound on any one test step (never reached when things work)


# ------------------------------------------------------------------ a leader to publish


def waa_run(tasks: int, *, first: int = 1, header: bool = True, end: bool = False) -> bytes:
    """WAA log lines: the task list (header), ``tasks`` tasks from number ``first``, and
    optionally the run's end."""
    lines = []
    if header:
        listed = ", ".join(f"('notepad', 't{i}-WOS')" for i in range(1, 40))
        lines.append(f"[2024-05-06 10:00:00,001 INFO run/80-MainProcess] Worker 0 is doing tasks: [{listed}]")
    for i in range(first, first + tasks):
        lines += [
            f"[2024-05-06 10:{i:02d}:01,001 INFO run/90-MainProcess] [Domain]: notepad",
            f"[2024-05-06 10:{i:02d}:01,002 INFO run/91-MainProcess] [Example ID]: t{i}-WOS",
            f"[2024-05-06 10:{i:02d}:02,001 INFO lib_run_single/30-MainProcess] Step 1: pyautogui.click({i}, 2)",
            f"[2024-05-06 10:{i:02d}:03,001 INFO lib_run_single/40-MainProcess] Result: {i % 2}.00",
            f"[2024-05-06 10:{i:02d}:03,002 INFO run/99-MainProcess] Finished notepad/t{i}-WOS",
        ]
    if end:
        lines.append("[2024-05-06 11:00:00,001 INFO run/120-MainProcess] Average score: 0.5")
    return "".join(line + "\n" for line in lines).encode()


class Log:
    """A leader's monitor and what it has read."""

    def __init__(self, name: str = "vm1") -> None:
        self.monitor = Monitor(name, _NoSource(), idle_probe_seconds=60)
        self.offset = 0
        self.monitor.apply(LogReset("/results/logs/normal.log"))

    def feed(self, data: bytes) -> None:
        self.monitor.apply(LogBytes(data, self.offset))
        self.offset += len(data)

    def position(self) -> LogPosition:
        return LogPosition(self.offset, "fp-1")

    @property
    def entries(self) -> list[Entry]:
        return list(self.monitor.history.entries)


class _NoSource:
    description = "never run"

    async def follow(self, send, *, task_status=trio.TASK_STATUS_IGNORED):  # pragma: no cover
        raise AssertionError("the test feeds the monitor itself")

    async def probe(self) -> ProbeResult:  # pragma: no cover
        raise AssertionError("the test feeds the monitor itself")


class Recorder:
    """A subscriber that keeps what it is offered; tests wait on its arrivals."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self.items: list[Entry | ErrorEvent | Live] = []
        self._arrived = trio.Event()

    def offer(self, monitor: object, item: Entry | ErrorEvent | Live) -> None:
        self.items.append(item)
        self._arrived.set()
        self._arrived = trio.Event()

    @property
    def entries(self) -> list[Entry]:
        return [i for i in self.items if isinstance(i, Entry)]

    @property
    def errors(self) -> list[ErrorEvent]:
        return [i for i in self.items if isinstance(i, ErrorEvent)]

    @property
    def steps(self) -> list[Live]:
        return [i for i in self.items if isinstance(i, Live)]

    async def until(self, check: Callable[[], bool]) -> None:
        with trio.fail_after(GUARD):
            while not check():
                await self._arrived.wait()


async def until_value(watched, check: Callable[[], bool]) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(GUARD):
        while not check():
            await watched.wait_newer(watched.version)


async def until_true(check: Callable[[], bool], poke: Callable[[], Awaitable[object]]) -> None:
    """Wait for ``check`` by awaiting ``poke`` (one event-driven step) between looks."""
    with trio.fail_after(GUARD):
        while not check():
            await poke()


def ids(entries: list[Entry]) -> list[str]:
    return [e.id for e in entries]


@asynccontextmanager
async def store_for(redisd: RedisD, timing: ClusterTiming = FAST) -> AsyncIterator[RedisStore]:
    async with open_store(redisd.url, timing=timing) as store:
        yield store


class Proc:
    """One trio-sse process as far as cluster mode goes: its Redis store and the nursery
    its mirrors and lease loops run in (inside the store's lifetime, as in the server)."""

    def __init__(self, store: RedisStore, nursery: trio.Nursery) -> None:
        self.store = store
        self.nursery = nursery


@asynccontextmanager
async def process(redisd: RedisD, timing: ClusterTiming = FAST) -> AsyncIterator[Proc]:
    async with open_store(redisd.url, timing=timing) as store, trio.open_nursery() as nursery:
        yield Proc(store, nursery)
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def leading(store: RedisStore, log: Log, owner: str = "leader-a") -> AsyncIterator[tuple[Lease, Publisher]]:
    """Take the lease directly and run a publisher for ``log`` (no renew loop: these tests
    finish well within the 10 s expiry)."""
    keys = store.keys(log.monitor.name)
    got = await store.acquire(keys, owner)
    assert got.token is not None
    lease = Lease(store, keys, got.token, acquired_at=trio.current_time())
    publisher = Publisher(store, log.monitor, lease, position=log.position)
    async with trio.open_nursery() as nursery:
        lease._scope = nursery.cancel_scope
        await nursery.start(publisher.run)
        yield lease, publisher
        nursery.cancel_scope.cancel()


async def mirrored(proc: Proc, name: str = "vm1") -> tuple[Mirror, Recorder]:
    mirror = Mirror(proc.store, name)
    await proc.nursery.start(mirror.run)
    recorder = Recorder()
    mirror.subscribe(recorder, None)
    return mirror, recorder


# ------------------------------------------------------------------ the harness itself


async def test_the_harness_keeps_data_across_a_crash_and_can_start_empty(redisd: RedisD) -> None:
    assert (await redisd.command("SET", "k", "v")).startswith(b"+OK")
    await redisd.stop()
    with pytest.raises(OSError):
        await redisd.command("PING")
    await redisd.start()
    assert await redisd.command("GET", "k") == b"$1\r\nv\r\n"  # appendfsync always: nothing lost
    await redisd.restart_empty()
    assert await redisd.command("GET", "k") == b"$-1\r\n"


async def test_a_hung_redis_is_a_timeout_not_a_hang(redisd: RedisD) -> None:
    # Our time limit is the thing under test: 0.3 s of real time.
    async with store_for(redisd, ClusterTiming(op_timeout=0.3)) as store:
        await store.ping()
        with redisd.frozen():
            with pytest.raises(RedisUnavailable, match="no answer to PING within 0.3 s"):
                await store.ping()
        await store.ping()  # fresh connections once it answers again


async def test_an_unreachable_redis_is_unavailable(redisd: RedisD) -> None:
    async with store_for(redisd) as store:
        await redisd.stop()
        with pytest.raises(RedisUnavailable, match=f"redis redis://127.0.0.1:{redisd.port}/0"):
            await store.ping()
        await redisd.start()
        await store.ping()


# ------------------------------------------------------------------ the lease


async def test_one_lease_holder_at_a_time(redisd: RedisD) -> None:
    async with store_for(redisd) as store:
        keys = store.keys("vm1")
        a = await store.acquire(keys, "proc-a")
        assert a.token == Token(1, "proc-a")
        b = await store.acquire(keys, "proc-b")
        assert b.token is None and 9000 < b.holder_ms <= 10_000
        assert (await store.acquire(keys, "proc-a")).token == a.token  # a retried acquire keeps it
        assert await store.renew(keys, a.token) == 1
        assert await store.renew(keys, Token(1, "proc-b")) == 0
        assert not await store.release(keys, Token(1, "proc-b"))
        assert await store.release(keys, a.token)
        b = await store.acquire(keys, "proc-b")
        assert b.token == Token(2, "proc-b")  # a new epoch for every acquisition


async def test_a_renew_takes_back_a_lease_nobody_took_but_not_one_another_took(redisd: RedisD) -> None:
    async with store_for(redisd) as store:
        keys = store.keys("vm1")
        a = await store.acquire(keys, "proc-a")
        assert a.token is not None
        await redisd.command("DEL", keys.lease)  # as if it lapsed (its expiry is tested below)
        assert await store.renew(keys, a.token) == 2  # nobody led since: ours again
        assert await store.renew(keys, a.token) == 1
        await redisd.command("DEL", keys.lease)
        b = await store.acquire(keys, "proc-b")
        assert b.token == Token(2, "proc-b")
        await redisd.command("DEL", keys.lease)
        assert await store.renew(keys, a.token) == 0  # epoch 2 was someone else's: a's is over
        await redisd.restart_empty()
        assert await store.renew(keys, a.token) == 2  # redis lost everything: nobody else led
        assert await redisd.command("GET", keys.epoch) == b"$1\r\n1\r\n"


async def test_a_successor_takes_over_right_after_the_lease_expires(redisd: RedisD) -> None:
    # Redis's clock is under test here: a real 0.5 s expiry.
    timing = ClusterTiming(lease_seconds=0.5, op_timeout=3.0, backoff_first=0.02, backoff_cap=0.2)
    async with store_for(redisd, timing) as store, trio.open_nursery() as nursery:
        keys = store.keys("vm1")
        dead = await store.acquire(keys, "dead-proc")  # acquires, then never renews: it died
        died_at = trio.current_time()
        assert dead.token is not None
        took_over = trio.Event()
        taken_at: list[float] = []

        async def lead(lease: Lease) -> None:
            taken_at.append(trio.current_time())
            took_over.set()
            await trio.sleep_forever()

        successor = Leadership(store, "vm1", "next-proc", lead)
        await nursery.start(successor.run)
        with trio.fail_after(GUARD):
            await took_over.wait()
        waited = taken_at[0] - died_at
        assert 0.45 <= waited <= 0.5 + 0.4, waited  # the expiry, plus well under the 1 s goal
        assert successor.lease is not None and successor.lease.token.epoch == 2
        nursery.cancel_scope.cancel()
    async with store_for(redisd) as store:
        assert (await store.acquire(store.keys("vm1"), "third")).token == Token(3, "third")  # released


async def test_a_leader_that_cannot_renew_stops_before_its_lease_could_pass_on(redisd: RedisD) -> None:
    # Redis's clock is under test here: a real 1 s expiry; the leader gives up at 0.8 s.
    timing = ClusterTiming(lease_seconds=1.0, op_timeout=0.3, backoff_first=0.02, backoff_cap=0.2)
    async with store_for(redisd, timing) as store, trio.open_nursery() as nursery:
        leads: list[Lease] = []
        ended = trio.Event()

        async def lead(lease: Lease) -> None:
            leads.append(lease)
            try:
                await trio.sleep_forever()
            finally:
                ended.set()

        leadership = Leadership(store, "vm1", "proc-a", lead)
        await nursery.start(leadership.run)
        await until_true(lambda: bool(leads), lambda: trio.sleep(0.01))
        acquired = trio.current_time()
        await redisd.stop()
        with trio.fail_after(GUARD):
            await ended.wait()
        stopped = trio.current_time() - acquired
        assert leads[0].lost is not None and "could not renew" in leads[0].lost
        assert stopped < 1.0, stopped  # before the successor could possibly start
        await redisd.start()  # its data is back
        await until_true(lambda: len(leads) == 2, lambda: trio.sleep(0.01))
        # Leading again: with a new epoch, or — when its old lease had not expired yet in
        # Redis — with the same token (nobody else can have led in between).
        assert leads[1].token.owner == "proc-a" and leads[1].token.epoch in (1, 2)
        stats = leadership.statistics()
        assert stats.losses == 1 and stats.acquisitions == 2 and stats.leading
        nursery.cancel_scope.cancel()


async def test_a_lead_function_that_crashes_is_logged_and_the_lease_released(
    redisd: RedisD, caplog: pytest.LogCaptureFixture
) -> None:
    async with store_for(redisd, ClusterTiming(backoff_cap=0.05, backoff_first=0.01)) as store, trio.open_nursery() as nursery:
        calls: list[int] = []

        async def lead(lease: Lease) -> None:
            calls.append(lease.token.epoch)
            if len(calls) == 1:
                raise RuntimeError("a bug")
            await trio.sleep_forever()

        await nursery.start(Leadership(store, "vm1", "proc-a", lead).run)
        await until_true(lambda: len(calls) == 2, lambda: trio.sleep(0.01))
        assert calls == [1, 2]  # released, then acquired again
        assert "leading target vm1 failed" in caplog.text and "a bug" in caplog.text
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ publish and mirror


async def test_round_trip_leader_to_mirror(redisd: RedisD) -> None:
    async with process(redisd) as proc:
        store = proc.store
        log = Log()
        async with leading(store, log):
            mirror, seen = await mirrored(proc)
            log.feed(waa_run(3))
            await seen.until(lambda: len(seen.entries) == 3)
            log.feed(waa_run(9, first=4, header=False, end=True))
            await seen.until(lambda: len(seen.entries) == 13)
            await until_value(mirror.progress, lambda: mirror.progress.frame == log.monitor.progress.frame)
            await until_value(mirror.status, lambda: mirror.status.frame == log.monitor.status.frame)
        # The same entries: ids, typed events, JSON and frames, byte for byte.
        assert seen.entries == log.entries
        assert mirror.history.run == log.monitor.history.run
        assert mirror.snapshot() == log.monitor.snapshot()
        checkpoint = await store.checkpoint(store.keys("vm1"))
        assert checkpoint == Checkpoint(log.monitor.history.run, 13, log.offset, "fp-1")
        assert await store.checkpoint(store.keys("vm2")) is None
        assert mirror.statistics().duplicates == 0


async def test_step_events_reach_every_mirror_once_byte_for_byte(redisd: RedisD) -> None:
    """SPEC §8's step events are news, not history: written to the live stream, offered by
    every mirror as the leader offered them (the same frame bytes), each once."""
    async with process(redisd) as proc, process(redisd) as other:
        log = Log()
        leader_side = Recorder()
        log.monitor.subscribe(leader_side, None)
        async with leading(proc.store, log):
            m1, seen1 = await mirrored(proc)
            m2, seen2 = await mirrored(other)
            for mirror in (m1, m2):
                with trio.fail_after(GUARD):
                    await mirror.synced.wait()
            data = waa_run(3, end=True)
            cut = 0
            for i in range(1, 4):  # up to each task's step: the task still runs, its step goes out
                step_end = data.index(b"\n", data.index(f"click({i}, 2)".encode())) + 1
                log.feed(data[cut:step_end])
                cut = step_end
            log.feed(data[cut:])
            assert len(leader_side.steps) == 3
            for seen in (seen1, seen2):
                await seen.until(lambda seen=seen: len(seen.steps) == 3 and len(seen.entries) == 4)
        for seen in (seen1, seen2):
            assert [s.frame for s in seen.steps] == [s.frame for s in leader_side.steps]
            assert [s.event for s in seen.steps] == [s.event for s in leader_side.steps]
            assert seen.entries == log.entries


async def test_a_checkpoint_too_large_for_redis_is_skipped_and_publishing_goes_on(redisd: RedisD) -> None:
    async with process(redisd) as proc:
        log = Log()
        huge = LogPosition(0, "fp-1", "x" * (MAX_EXTRA + 1))
        log.position = lambda: huge  # type: ignore[method-assign]
        async with leading(proc.store, log):
            mirror, seen = await mirrored(proc)
            log.feed(waa_run(3))
            await seen.until(lambda: len(seen.entries) == 3)
            await until_value(mirror.progress, lambda: mirror.progress.frame == log.monitor.progress.frame)
        assert await proc.store.checkpoint(proc.store.keys("vm1")) is None


async def test_two_mirrors_see_the_same_sequence_and_a_late_one_gets_the_replay(redisd: RedisD) -> None:
    async with process(redisd) as proc, process(redisd) as other:
        log = Log()
        async with leading(proc.store, log):
            m1, seen1 = await mirrored(proc)
            m2, seen2 = await mirrored(other)
            for i in range(1, 10):
                log.feed(waa_run(1, first=i, header=i == 1))
            log.monitor.apply(SourceDown("ssh vm1: connection refused"))
            log.feed(waa_run(2, first=10, header=False, end=True))
            await seen1.until(lambda: len(seen1.entries) == 12 and bool(seen1.errors))
            await seen2.until(lambda: len(seen2.entries) == 12 and bool(seen2.errors))
            late, _ = await mirrored(other)
            with trio.fail_after(GUARD):
                await late.synced.wait()
            replay = late.subscribe(Recorder(), None)
        assert seen1.items == seen2.items
        assert seen1.entries == log.entries
        assert seen1.errors == [ErrorEvent("vm1", "ssh vm1: connection refused")]
        assert replay == log.entries  # everything of the run for a client that saw nothing
        assert late.subscribe(Recorder(), Position(log.monitor.history.run, {"": 10})) == log.entries[10:]
        assert late.outage == ErrorEvent("vm1", "ssh vm1: connection refused")  # still down


async def test_a_new_run_reaches_mirrors_after_the_old_runs_last_event(redisd: RedisD) -> None:
    async with process(redisd) as proc:
        log = Log()
        async with leading(proc.store, log):
            mirror, seen = await mirrored(proc)
            log.feed(waa_run(2))
            await seen.until(lambda: len(seen.entries) == 2)
            first_run = log.monitor.history.run
            log.feed(waa_run(1, first=3, header=False, end=True))
            # A second run appended to the same file: new run, new ids.
            log.feed(waa_run(1, first=20).replace(b"t20-WOS", b"u20-WOS"))
            await seen.until(lambda: len(seen.entries) == 5)
            await until_value(mirror.progress, lambda: mirror.history.run == log.monitor.history.run)
        second_run = log.monitor.history.run
        assert second_run != first_run
        assert ids(seen.entries) == [f"vm1:{first_run}-{n}" for n in (1, 2, 3, 4)] + [f"vm1:{second_run}-1"]
        assert [e.event.EVENT for e in seen.entries] == ["task_complete"] * 3 + ["run_complete", "task_complete"]
        assert mirror.history.entries == log.entries
        ttl = await redisd.command("PTTL", proc.store.keys("vm1").events(first_run))
        assert ttl.startswith(b":") and 0 < int(ttl[1:]) <= 3_600_000  # the old run's stream expires


async def test_redis_killed_mid_run_nothing_lost_nothing_twice(redisd: RedisD) -> None:
    async with process(redisd) as proc, process(redisd) as reader:
        log = Log()
        async with leading(proc.store, log) as (_, publisher):
            mirror, seen = await mirrored(reader)
            log.feed(waa_run(4))
            await seen.until(lambda: len(seen.entries) == 4)
            await redisd.stop()
            await seen.until(lambda: bool(seen.errors))  # the mirror says so, once
            log.feed(waa_run(6, first=5, header=False))  # the leader reads on meanwhile
            assert mirror.outage is not None and "paused" in mirror.outage.message
            await redisd.start()  # its data is back (AOF), the publisher and mirror catch up
            await seen.until(lambda: len(seen.entries) == 10)
            await until_true(lambda: mirror.outage is None, lambda: trio.sleep(0.01))
        assert seen.entries == log.entries  # in order, each once
        assert len(seen.errors) == 1 and "paused" in seen.errors[0].message
        stats = mirror.statistics()
        assert stats.redis_outages == 1 and stats.connected
        assert publisher.statistics().redis_failures >= 1


async def test_redis_restarted_empty_is_refilled_by_the_leader(redisd: RedisD) -> None:
    # The renew loop must notice the empty Redis: renew often (the expiry stays 10 s).
    timing = replace(FAST, renew_fraction=0.02, give_up_fraction=0.9)
    async with process(redisd, timing) as leader, process(redisd) as reader:
        log = Log()
        leads: list[Lease] = []
        publishers: list[Publisher] = []

        async def lead(lease: Lease) -> None:
            leads.append(lease)
            publisher = Publisher(leader.store, log.monitor, lease, position=log.position)
            publishers.append(publisher)
            await publisher.run()

        leader.nursery.start_soon(Leadership(leader.store, "vm1", "proc-a", lead).run)
        mirror, seen = await mirrored(reader)
        log.feed(waa_run(5))
        await seen.until(lambda: len(seen.entries) == 5)
        await redisd.restart_empty()
        await until_true(lambda: bool(leads) and leads[0].reclaims > 0, lambda: trio.sleep(0.02))
        log.feed(waa_run(2, first=6, header=False))
        await seen.until(lambda: len(seen.entries) == 7)
        late, _ = await mirrored(reader)
        await until_true(lambda: len(late.history) == 7, lambda: trio.sleep(0.02))
        assert len(leads) == 1  # the same leadership throughout: taken back, not lost
        assert publishers[0].statistics().republishes >= 1
        assert seen.entries == log.entries  # the old mirror: nothing twice
        assert list(late.history.entries) == log.entries  # a new one: everything
        assert mirror.statistics().duplicates >= 5


async def test_a_paused_leader_is_fenced_and_stops(redisd: RedisD) -> None:
    async with process(redisd) as proc:
        store = proc.store
        old = Log()
        async with leading(store, old) as (lease, publisher):
            mirror, seen = await mirrored(proc)
            old.feed(waa_run(2))
            await seen.until(lambda: len(seen.entries) == 2)
            # The old leader "pauses" past its expiry and another process takes over.
            await redisd.command("DEL", lease.keys.lease)
            new = await store.acquire(lease.keys, "proc-new")
            assert new.token is not None and new.token.epoch == 2
            old.feed(waa_run(1, first=3, header=False))  # the old leader wakes up and writes
            await until_true(lambda: lease.lost is not None, lambda: trio.sleep(0.01))
        assert "fenced" in (lease.lost or "")
        result = await store.publish(lease.keys, lease.token, PublishStep(run="r", status="S", progress="P"))
        assert result.fenced
        stream = await store.range_after(lease.keys.events(old.monitor.history.run), "0-0")
        assert len(seen.entries) == 2 and len(stream) == 2  # the third never reached Redis


async def test_a_new_leader_continues_without_repeating_an_event(redisd: RedisD) -> None:
    data = waa_run(8, end=True)
    cut = data.index(b"\n", data.index(b"Finished notepad/t5-WOS")) + 1  # a line boundary
    async with process(redisd) as proc_a, process(redisd) as proc_b:
        mirror, seen = await mirrored(proc_b)
        first = Log()
        async with leading(proc_a.store, first, owner="proc-a") as (lease, _):
            first.feed(data[:cut])
            await seen.until(lambda: len(seen.entries) == 5)
        # proc-a died (no release: its lease just stops being renewed); here it expires now.
        await redisd.command("DEL", lease.keys.lease)
        checkpoint = await proc_b.store.checkpoint(lease.keys)
        assert checkpoint is not None and checkpoint.count == 5 and checkpoint.fingerprint == "fp-1"
        assert checkpoint.offset == cut
        # The successor reads the same log (it re-derives the same ids) and publishes.
        second = Log()
        async with leading(proc_b.store, second, owner="proc-b"):
            second.feed(data)
            await seen.until(lambda: len(seen.entries) == 9)
            await until_value(mirror.progress, lambda: mirror.progress.frame == second.monitor.progress.frame)
        assert ids(seen.entries) == ids(second.entries)  # no gap, no duplicate
        key = lease.keys.events(second.monitor.history.run)
        stream = await proc_b.store.range_after(key, "0-0")
        stream += await proc_b.store.range_after(key, stream[-1][0])
        assert [int(f[b"n"]) for _, f in stream] == list(range(1, 10))  # Redis holds each once


# ------------------------------------------------------------------ junk in Redis


async def test_junk_at_the_lease_key_is_reported_and_nothing_crashes(
    redisd: RedisD, caplog: pytest.LogCaptureFixture
) -> None:
    async with process(redisd) as proc:
        store = proc.store
        keys = store.keys("vm1")
        await redisd.command("SET", keys.lease, "hello")
        with pytest.raises(ClusterDataError, match=r"foreign value at trio-sse:\{vm1\}:lease"):
            await store.acquire(keys, "proc-a")
        await redisd.command("DEL", keys.lease)
        await redisd.command("HSET", keys.lease, "a", "b")
        with pytest.raises(ClusterDataError, match="WRONGTYPE"):
            await store.acquire(keys, "proc-a")
        await redisd.command("DEL", keys.lease)
        await redisd.command("SET", keys.epoch, "not a number")
        with pytest.raises(ClusterDataError, match="not an integer"):
            await store.acquire(keys, "proc-a")

        led = trio.Event()

        async def lead(lease: Lease) -> None:
            led.set()
            await trio.sleep_forever()

        proc.nursery.start_soon(Leadership(store, "vm1", "proc-a", lead).run)
        await until_true(lambda: "not an integer" in caplog.text, lambda: trio.sleep(0.02))
        assert not led.is_set()
        await redisd.command("DEL", keys.epoch)  # the operator cleans up: it leads
        with trio.fail_after(GUARD):
            await led.wait()


async def test_malformed_entries_are_skipped_and_a_foreign_key_type_is_an_outage(redisd: RedisD) -> None:
    async with process(redisd) as proc:
        log = Log()
        async with leading(proc.store, log) as (lease, publisher):
            mirror, seen = await mirrored(proc)
            log.feed(waa_run(2))
            await seen.until(lambda: len(seen.entries) == 2)
            run = log.monitor.history.run
            events = lease.keys.events(run)
            # Junk in the run's stream and in the live stream: skipped, counted.
            await redisd.command("XADD", events, "*", "n", "3", "id", "vm1:nope", "event", "task_complete", "data", "{}")
            await redisd.command("XADD", events, "*", "garbage", b"\xff")
            await redisd.command("XADD", lease.keys.live, "*", "kind", "state", "status", "[]")
            await redisd.command("XADD", lease.keys.live, "*", "kind", "error", "data", dumps({"target": "vm1"}))
            log.feed(waa_run(1, first=3, header=False))  # event 3, the real one
            await seen.until(lambda: len(seen.entries) == 3)
            assert seen.entries == log.entries
            assert mirror.statistics().junk == 4
            # A foreign type at the run's key: the mirror cannot read it — an outage, named.
            await redisd.command("DEL", events)
            await redisd.command("SET", events, "x")
            log.feed(waa_run(1, first=4, header=False))
            await seen.until(lambda: bool(seen.errors))
            assert "WRONGTYPE" in seen.errors[0].message and events in seen.errors[0].message
            assert mirror.outage is not None
            await redisd.command("HSET", lease.keys.meta, "checkpoint", "{nope")
            with pytest.raises(ClusterDataError, match="field checkpoint is not JSON"):
                await proc.store.checkpoint(lease.keys)
            # The leader's publish hits the same key: it says so and the monitor goes on.
            await until_true(lambda: publisher.statistics().redis_failures > 0, lambda: trio.sleep(0.01))
        assert len(log.entries) == 4


async def test_mirror_and_leader_with_redis_down_from_the_start(redisd: RedisD) -> None:
    await redisd.stop()
    async with process(redisd) as proc:
        mirror, seen = await mirrored(proc)
        await seen.until(lambda: bool(seen.errors))
        assert mirror.outage is not None and not mirror.synced.is_set()
        await redisd.start()
        with trio.fail_after(GUARD):
            await mirror.synced.wait()
        assert mirror.outage is None and len(seen.errors) == 1
        assert mirror.statistics().redis_outages == 1
        log = Log()
        async with leading(proc.store, log):
            log.feed(waa_run(1))
            await seen.until(lambda: len(seen.entries) == 1)
        assert isinstance(seen.entries[0].event, TaskComplete)


async def test_a_new_leader_re_reading_its_log_holds_back_its_progress_until_caught_up(redisd: RedisD) -> None:
    data = waa_run(8, end=True)
    after = [data.index(b"\n", data.index(f"Finished notepad/t{i}-WOS".encode())) + 1 for i in range(1, 9)]
    async with process(redisd) as proc_a, process(redisd) as proc_b:
        mirror, seen = await mirrored(proc_b)
        first = Log()
        async with leading(proc_a.store, first, owner="proc-a") as (lease, _):
            first.feed(data[: after[5]])
            await seen.until(lambda: len(seen.entries) == 6)
            await until_value(mirror.progress, lambda: mirror.progress.frame == first.monitor.progress.frame)
        await redisd.command("DEL", lease.keys.lease)  # proc-a died; its lease expired
        live_before = await proc_b.store.last_entry(lease.keys.live)
        assert live_before is not None
        second = Log()
        async with leading(proc_b.store, second, owner="proc-b") as (_, publisher):
            second.feed(data[: after[2]])  # 3 of the 6 tasks Redis has: behind
            await until_true(lambda: publisher.statistics().holding, lambda: trio.sleep(0.01))
            assert (await proc_b.store.last_entry(lease.keys.live)) == live_before  # no progress of 3
            assert mirror.progress.value.tasks_completed == 6
            second.feed(data[after[2] :])
            await seen.until(lambda: len(seen.entries) == 9)
            await until_value(mirror.progress, lambda: mirror.progress.frame == second.monitor.progress.frame)
            assert not publisher.statistics().holding
        live = await proc_b.store.range_after(lease.keys.live, live_before[0])
        done = [json.loads(f[b"progress"])["tasks_completed"] for _, f in live if f[b"kind"] == b"state"]
        assert done and done == sorted(done) and done[0] >= 6  # never backwards for any client
        assert ids(seen.entries) == ids(second.entries)


# ------------------------------------------------------------------ two processes, one dies


async def test_the_leader_process_is_killed_and_another_takes_over(redisd: RedisD, tmp_path: Path) -> None:
    # Redis's clock is under test here: a real 1 s lease expiry. Process A is a real process
    # (tests/cluster_node.py) killed with SIGKILL: no release, no goodbye.
    log = tmp_path / "normal-0.log"
    data = waa_run(8, end=True)
    after = [data.index(b"\n", data.index(f"Finished notepad/t{i}-WOS".encode())) + 1 for i in range(1, 9)]
    log.write_bytes(data[: after[0]])
    script = Path(__file__).with_name("cluster_node.py")
    proc_a = await trio.lowlevel.open_process(
        [sys.executable, str(script), redisd.url, str(log), "1.0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert proc_a.stdout is not None
        with trio.fail_after(GUARD):
            assert (await proc_a.stdout.receive_some(100)).startswith(b"leading vm1")
        terms: list[str] = []

        def make_monitor(name: str, resume: object) -> Monitor:
            terms.append(name)
            return Monitor(name, LocalSource(str(log), process_pattern=None), idle_probe_seconds=60)

        node_b = ClusterNode(redisd.url, ["vm1"], make_monitor, timing=replace(FAST, lease_seconds=1.0))
        async with trio.open_nursery() as nursery:
            await nursery.start(node_b.run)
            seen = Recorder()
            node_b.mirrors["vm1"].subscribe(seen, None)
            with log.open("ab") as f:
                f.write(data[after[0] : after[4]])
            await seen.until(lambda: len(seen.entries) == 5)
            assert not terms  # process A leads
            proc_a.send_signal(signal.SIGKILL)
            killed = trio.current_time()
            with log.open("ab") as f:
                f.write(data[after[4] :])  # written while nobody follows the log
            await seen.until(lambda: len(seen.entries) >= 6)
            failover = trio.current_time() - killed
            await seen.until(lambda: len(seen.entries) == 9)
            assert terms == ["vm1"]
            expected = Log()
            expected.feed(data)
            assert ids(seen.entries) == ids(expected.entries)  # no gap, no duplicate
            assert seen.entries == expected.entries  # the same frames
            assert failover <= 1.0 + 1.0, failover  # SPEC §10: within the lease time (+1 s goal)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            proc_a.kill()
            await proc_a.wait()
