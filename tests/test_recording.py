"""The server's run history wired to real SQLite files: what the monitors observe is written
once (also when a replay hands it over again), a corrupt database at start-up is reported
once — an error event for every target, one log line — and retried until it can be written,
and the ``--baseline`` of a run is found (previous, named, unknown)."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import pytest
import trio

from trio_sse import storedb
from trio_sse.history import History
from trio_sse.model import RunComplete, TaskComplete
from trio_sse.monitor import Monitor, RunMeta
from trio_sse.recording import Recorder
from trio_sse.sources import LogBytes, LogReset

from support import IdleSource
from support import TWO_TASK_RUN as RUN

QUICK = {"backoff": (0.01, 0.05)}


class Errors:
    """``publish_error`` as a channel the test awaits."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str | None]] = []
        self._send, self._receive = trio.open_memory_channel[tuple[str, str | None]](math.inf)

    def __call__(self, message: str, target: str | None) -> None:
        self.items.append((message, target))
        self._send.send_nowait((message, target))

    async def next(self) -> tuple[str, str | None]:
        with trio.fail_after(10):
            return await self._receive.receive()


def stored(path: Path) -> list[tuple[storedb.RunRow, list[str]]]:
    conn = storedb.open_for_reading(path)
    try:
        return [(r, [t["id"] for t in storedb.run_tasks(conn, r)]) for r in storedb.list_runs(conn)]
    finally:
        conn.close()


async def test_what_a_monitor_publishes_is_written_once_also_when_replayed(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    recorder = Recorder(path, **QUICK)
    monitor = Monitor("vm1", IdleSource(), observers=[recorder.observe])
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.run)
        monitor.apply(LogReset("/x.log"))
        monitor.apply(LogBytes(RUN, 0))
        # A restart's replay hands the same entries over again (another monitor, same log).
        again = Monitor("vm1", IdleSource(), observers=[recorder.observe])
        again.apply(LogReset("/x.log"))
        again.apply(LogBytes(RUN, 0))
        with trio.fail_after(10):
            await recorder.writer.wait_idle()
        nursery.cancel_scope.cancel()
    ((row, ids),) = stored(path)
    assert (row.target, row.run, row.tasks, row.passed, row.total_tasks, row.finished) == (
        "vm1", monitor.history.run, 2, 1, 2, True)
    assert ids == [e.id for e in monitor.history.entries[:2]]
    assert recorder.writer.statistics().duplicates >= 3
    assert recorder.outage is None and recorder.outages == 0


async def test_run_metadata_is_recorded_without_erasing_what_is_known(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    recorder = Recorder(path)
    monitor = Monitor("vm1", IdleSource())
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.run)
        recorder.observe(monitor, RunMeta("vm1", "abcdef0123", total_tasks=150, model="gpt-4o", max_steps=15))
        recorder.observe(monitor, RunMeta("vm1", "abcdef0123", total_tasks=151))
        with trio.fail_after(10):
            await recorder.writer.wait_idle()
        nursery.cancel_scope.cancel()
    ((row, ids),) = stored(path)
    assert (row.run, row.total_tasks, row.model, row.max_steps, row.tasks, ids) == ("abcdef0123", 151, "gpt-4o", 15, 0, [])


async def test_a_corrupt_database_at_start_up_is_reported_once_and_written_once_repaired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    errors = Errors()
    recorder = Recorder(path, publish_error=errors, **QUICK)
    monitor = Monitor("vm1", IdleSource(), observers=[recorder.observe])
    caplog.set_level(logging.WARNING, logger="trio_sse")
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.run)
        message, target = await errors.next()  # at start-up: no event needed to find out
        assert target is None and "corrupt" in message and str(path) in message
        assert recorder.outage is not None and recorder.outage.kind == "corrupt"
        monitor.apply(LogReset("/x.log"))
        monitor.apply(LogBytes(RUN, 0))  # the monitor carries on; the writer keeps them
        await trio.sleep(0.2)  # several retries (backoff 0.01-0.05 s) of the same outage
        assert recorder.writer.statistics().faults >= 3
        shutil.move(path, tmp_path / "aside.sqlite3")  # what the message advises
        with trio.fail_after(10):
            await recorder.writer.wait_idle()
        nursery.cancel_scope.cancel()
    assert errors.items == [(message, None)]  # one error event per outage
    lines = [r.getMessage() for r in caplog.records if r.name == "trio_sse"]
    assert lines == [message, f"run history: history database {path} is written again"]
    assert recorder.outage is None and recorder.outages == 1
    ((row, ids),) = stored(path)
    assert ids == [e.id for e in monitor.history.entries[:2]] and row.finished


def store(path: Path, target: str, run: str, outcomes: list[bool], *, finished: bool = True) -> None:
    h = History(target, run)
    for i, ok in enumerate(outcomes):
        h.append(TaskComplete(target, f"t{i}-WOS", ok, 1.0 if ok else 0.0, domain="notepad"))
    if finished:
        h.append(RunComplete(target, len(outcomes), len(outcomes), sum(outcomes), None))
    conn = storedb.open_for_writing(path)
    try:
        storedb.apply(conn, [storedb.EventOp(target, run, e.id, e.event.EVENT, e.data, "2024-09-16T09:30:00+00:00")
                             for e in h.entries])
    finally:
        conn.close()


async def test_baseline_previous_is_the_targets_last_finished_run(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    store(path, "vm1", "aaaa000001", [True, True])
    store(path, "vm1", "aaaa000002", [True, False])
    store(path, "vm1", "aaaa000003", [False, False], finished=False)  # still running: not a baseline
    store(path, "vm2", "bbbb000001", [False, False])
    recorder = Recorder(path, baseline_ref="previous")
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.run)
        base = await recorder.baseline("vm1", "cccc000004")
        assert base is not None and base.run == "vm1:aaaa000002"
        assert base.compare({"task_id": "t1-WOS", "success": True})["change"] == "fixed"
        assert await recorder.baseline("vm1", "cccc000004") is base  # looked up once per run
        # The previous run's own baseline is the one before it.
        assert (await recorder.baseline("vm1", "aaaa000002")).run == "vm1:aaaa000001"  # type: ignore[union-attr]
        assert await recorder.baseline("vm3", "dddd000001") is None  # no finished run of that target
        nursery.cancel_scope.cancel()


async def test_a_named_baseline_and_one_that_is_not_stored(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    store(path, "vm1", "aaaa000001", [True])
    errors = Errors()
    named = Recorder(path, baseline_ref="vm1:aaaa0000")  # a unique prefix
    unknown = Recorder(path, baseline_ref="vm1:ffff", publish_error=errors)
    async with trio.open_nursery() as nursery:
        await nursery.start(named.run)
        await nursery.start(unknown.run)
        assert (await named.baseline("vm2", "cccc000001")).run == "vm1:aaaa000001"  # type: ignore[union-attr]
        assert await unknown.baseline("vm1", "cccc000001") is None
        assert await unknown.baseline("vm1", "cccc000002") is None
        nursery.cancel_scope.cancel()
    assert errors.items == [("baseline vm1:ffff: no stored run 'vm1:ffff'; runs are not compared", "vm1")]


async def test_no_baseline_while_the_database_cannot_answer_and_one_once_it_can(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "history.sqlite3"
    recorder = Recorder(path, baseline_ref="previous")  # (not running: nothing creates the file)
    assert await recorder.baseline("vm1", "cccc000001") is None
    store(path, "vm1", "aaaa000001", [True])
    base = await recorder.baseline("vm1", "cccc000001")  # asked again: not cached as "none"
    assert base is not None and base.run == "vm1:aaaa000001"
    await recorder.reader.aclose()


async def test_observing_never_waits_even_when_the_writer_is_not_running(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "history.sqlite3", buffer=4)
    monitor = Monitor("vm1", IdleSource(), observers=[recorder.observe])
    with trio.fail_after(1):  # synchronous: a full channel goes to the writer's resync set
        for n in range(3):
            monitor.apply(LogReset("/x.log"))
            monitor.apply(LogBytes(RUN.replace(b"10:00:0", b"1%d:00:0" % n), 0))
    assert recorder.writer.statistics().overflows > 0
