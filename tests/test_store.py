"""The history writer and readers on real SQLite files: events written once (also across a
restart's replay), a full channel recovered from the run's history, and every database
fault for real — locked by another connection's transaction, corrupt, read-only file and
folder, disk full — reported once, retried with capped backoff, nothing lost. Waits are
events: a report, a finished thread call; the backoff schedule runs in virtual time."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_sse import storedb
from trio_sse.errors import BadRequest, HistoryUnavailable, NotFound
from trio_sse.history import History
from trio_sse.model import RunComplete, TaskComplete
from trio_sse.store import HistoryReader, HistoryWriter, StoreLedger, StoreReport
from trio_sse.storedb import RunInfo

FAST = functools.partial(storedb.open_for_writing, busy_timeout_ms=20)
QUICK_BACKOFF = (0.01, 0.05)


def make_run(target: str = "waa", run: str = "abc123def0", tasks: int = 4, *, complete: bool = True) -> History:
    h = History(target, run)
    for i in range(tasks):
        h.append(TaskComplete(target, f"task-{i}-WOS", i % 2 == 0, 1.0 if i % 2 == 0 else 0.0, domain=f"d{i % 3}"))
    if complete:
        h.append(RunComplete(target, tasks, tasks, (tasks + 1) // 2, None))
    return h


def record_all(writer: HistoryWriter, h: History) -> None:
    for e in h.entries:
        writer.record(h, e)


def stored(path: Path) -> tuple[list[storedb.RunRow], dict[str, list[str]]]:
    """What is in the file: the runs, and each run's task event ids."""
    c = storedb.open_for_reading(path)
    try:
        runs = storedb.list_runs(c)
        return runs, {r.ref: [t["id"] for t in storedb.run_tasks(c, r)] for r in runs}
    finally:
        c.close()


class Reports:
    """The writer's report callback, also a channel the test awaits."""

    def __init__(self) -> None:
        self.items: list[StoreReport] = []
        self._send, self._receive = trio.open_memory_channel[StoreReport](math.inf)

    def __call__(self, report: StoreReport) -> None:
        self.items.append(report)
        self._send.send_nowait(report)

    async def next(self) -> StoreReport:
        return await self._receive.receive()

    @property
    def kinds(self) -> list[str]:
        return [r.kind for r in self.items]


class CountingRunSync:
    """The real ``trio.to_thread.run_sync``; each finished call is announced, so a test can
    wait for "the writer tried again" without sleeping."""

    def __init__(self) -> None:
        self.calls = 0
        self._send, self._receive = trio.open_memory_channel[int](math.inf)

    async def __call__(self, fn: Callable[..., Any], *args: Any, abandon_on_cancel: bool = False) -> Any:
        try:
            return await trio.to_thread.run_sync(fn, *args, abandon_on_cancel=abandon_on_cancel)
        finally:
            self.calls += 1
            self._send.send_nowait(self.calls)

    async def wait_calls(self, n: int) -> None:
        while self.calls < n:
            await self._receive.receive()


async def inline(fn: Callable[..., Any], *args: Any, abandon_on_cancel: bool = False) -> Any:
    """No thread: lets the backoff test run under autojump_clock (a thread in flight would
    make the clock jump to the next deadline)."""
    return fn(*args)


# ---------------------------------------------------------------------------- happy path


async def test_events_and_run_info_are_written_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    writer = HistoryWriter(path)
    h = make_run()
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        writer.record_run(RunInfo("waa", h.run, model="gpt-4o", agent="navi", max_steps=15))
        record_all(writer, h)
        with trio.fail_after(10):
            await writer.wait_idle()
        reader = HistoryReader(path)
        (run,) = await reader.list_runs()
        assert (run.target, run.run, run.tasks, run.passed, run.finished) == ("waa", h.run, 4, 2, True)
        assert (run.model, run.agent, run.max_steps) == ("gpt-4o", "navi", 15)
        row, tasks = await reader.run_with_tasks(h.run)
        assert [t["id"] for t in tasks] == [e.id for e in h.entries[:4]]
        written = {k: v for k, v in json.loads(h.entries[0].data).items() if k not in ("baseline", "change")}
        assert tasks[0] == {**written, "id": h.entries[0].id} | {  # (a comparison is derived, not stored)
            k: None for k in ("failure_kind", "instruction", "started_at", "finished_at", "duration_s", "worker")
        }
        _, text = await reader.run_csv(f"waa:{h.run}")
        assert text.count("\r\n") == 5 and "task-3-WOS" in text
        assert (await reader.previous_run("waa")) == run
        assert await reader.failure_kinds(h.run) == {"unknown": 2}
        await reader.aclose()
        nursery.cancel_scope.cancel()
    s = writer.statistics()
    assert (s.written, s.duplicates, s.rejected, s.overflows, s.outage) == (6, 0, 0, 0, None)


async def test_a_replay_after_a_restart_writes_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    h = make_run()
    for attempt in range(2):  # the second writer is the restarted server replaying the log
        writer = HistoryWriter(path)
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            record_all(writer, h)
            with trio.fail_after(10):
                await writer.wait_idle()
            nursery.cancel_scope.cancel()
        s = writer.statistics()
        assert (s.written, s.duplicates) == ((5, 0) if attempt == 0 else (0, 5))
    runs, tasks = stored(path)
    assert [(r.tasks, r.passed) for r in runs] == [(4, 2)]
    assert tasks == {f"waa:{h.run}": [e.id for e in h.entries[:4]]}


async def test_a_full_channel_loses_nothing_the_run_is_replayed_whole(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    writer = HistoryWriter(path, buffer=3, batch=2)
    first = make_run(run="aaaa000001", tasks=20)
    second = make_run(run="bbbb000002", tasks=7, complete=False)
    # Before the writer runs, so the channel fills: every record call must still return at once.
    record_all(writer, first)
    writer.record_run(RunInfo("waa", first.run, model="m1"))
    writer.record_run(RunInfo("waa", first.run, max_steps=15))
    record_all(writer, second)  # the monitor moved on; `first` is only referenced by the writer
    for i in range(5):
        writer.record_alert(f"waa:{first.run}:alert{i}", "finished")
    s = writer.statistics()
    assert s.queued == 3 and s.overflows == len(first) + 2 + len(second) + 5 - 3
    assert s.resync_runs == 2
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        with trio.fail_after(10):
            await writer.wait_idle()
        nursery.cancel_scope.cancel()
    runs, tasks = stored(path)
    assert tasks == {
        f"waa:{second.run}": [e.id for e in second.entries],
        f"waa:{first.run}": [e.id for e in first.entries[:-1]],
    }
    by_run = {r.run: r for r in runs}
    assert by_run[first.run].finished and (by_run[first.run].model, by_run[first.run].max_steps) == ("m1", 15)
    c = storedb.open_for_reading(path)
    assert all(storedb.alert_sent(c, f"waa:{first.run}:alert{i}") for i in range(5))
    c.close()


async def test_a_bad_record_is_dropped_alone_and_reported(tmp_path: Path) -> None:
    @dataclasses.dataclass
    class Junk:
        id: str
        data: str
        event: Any = TaskComplete

    path = tmp_path / "h.sqlite3"
    reports = Reports()
    writer = HistoryWriter(path, report=reports)
    h = make_run(tasks=2, complete=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        writer.record(h, h.entries[0])
        writer.record(h, Junk("waa:abc123def0-9", '["a list"]'))
        writer.record(h, h.entries[1])
        with trio.fail_after(10):
            await writer.wait_idle()
        nursery.cancel_scope.cancel()
    assert reports.kinds == ["rejected"]
    assert "record waa:abc123def0-9: payload is not a JSON object" in reports.items[0].message
    assert stored(path)[1] == {f"waa:{h.run}": [e.id for e in h.entries]}


def test_record_run_needs_a_named_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="run's id"):
        HistoryWriter(tmp_path / "h").record_run(RunInfo("waa", ""))
    with pytest.raises(ValueError, match="backoff"):
        HistoryWriter(tmp_path / "h", backoff=(0, 1))


async def test_cancellation_writes_what_is_left(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    writer = HistoryWriter(path)
    h = make_run(tasks=50)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        record_all(writer, h)
        nursery.cancel_scope.cancel()  # before the writer got to any of it
    assert stored(path)[1] == {f"waa:{h.run}": [e.id for e in h.entries[:-1]]}


# ---------------------------------------------------------------------------- backoff (virtual time)


async def test_retries_back_off_exponentially_to_the_cap_one_report_per_outage(tmp_path: Path, autojump_clock: Any) -> None:
    attempts: list[float] = []
    errors = [sqlite3.OperationalError("database is locked")] * 3 + [sqlite3.OperationalError("database or disk is full")] * 5

    def connect(path: Path) -> sqlite3.Connection:
        attempts.append(trio.current_time())
        if errors:
            raise errors.pop(0)
        return storedb.open_for_writing(path)

    reports = Reports()
    writer = HistoryWriter(tmp_path / "h.sqlite3", report=reports, backoff=(0.5, 4.0), connect=connect, run_sync=inline)
    h = make_run()
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        start = trio.current_time()
        record_all(writer, h)
        with trio.fail_after(100):
            await writer.wait_idle()
        nursery.cancel_scope.cancel()
    gaps = [round(b - a, 9) for a, b in zip(attempts, attempts[1:], strict=False)]
    assert attempts[0] == start
    assert gaps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert reports.kinds == ["locked", "full", "recovered"]
    assert writer.statistics().faults == 8
    assert stored(tmp_path / "h.sqlite3")[0][0].tasks == 4


async def test_recording_never_waits_during_an_outage(tmp_path: Path, autojump_clock: Any) -> None:
    down = True

    def connect(path: Path) -> sqlite3.Connection:
        if down:
            raise sqlite3.OperationalError("database is locked")
        return storedb.open_for_writing(path)

    writer = HistoryWriter(tmp_path / "h.sqlite3", buffer=16, connect=connect, run_sync=inline)
    runs = [make_run(run=f"{i:010x}", tasks=50) for i in range(20)]
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        record_all(writer, runs[0])
        await trio.sleep(30)  # the writer tried, failed, and is backing off
        assert writer.statistics().outage == "locked"
        for h in runs[1:]:
            record_all(writer, h)
        s = writer.statistics()
        assert s.queued == 16 and s.resync_runs == 20
        down = False
        with trio.fail_after(200):
            await writer.wait_idle()
        nursery.cancel_scope.cancel()
    _, tasks = stored(tmp_path / "h.sqlite3")
    assert tasks == {f"waa:{h.run}": [e.id for e in h.entries[:-1]] for h in runs}


# ---------------------------------------------------------------------------- real faults


@pytest.fixture
def readonly() -> Iterator[Callable[[Path], None]]:
    """Make a file or folder really read-only: ``chattr +i`` as root (root ignores mode
    bits), mode bits otherwise. Undone at the end so tmp_path can be removed."""
    done: list[tuple[Path, int]] = []

    def make(path: Path) -> None:
        done.append((path, os.stat(path).st_mode))
        if os.geteuid() == 0:
            subprocess.run(["chattr", "+i", str(path)], check=True)
        else:
            os.chmod(path, 0o555 if path.is_dir() else 0o444)

    yield make
    for path, mode in reversed(done):
        undo(path, mode)


def undo(path: Path, mode: int | None = None) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    elif mode is not None:
        os.chmod(path, mode)


async def outage_then_recovery(
    path: Path,
    expected_kinds: set[str],
    fix: Callable[[], None],
    *,
    connect: Callable[[Path], sqlite3.Connection] = FAST,
    tasks: int = 30,
) -> Reports:
    """Record a run while the database is broken; check the outage is reported once and
    retried; ``fix`` it; check it recovers and every event is there once."""
    reports = Reports()
    run_sync = CountingRunSync()
    writer = HistoryWriter(path, report=reports, backoff=QUICK_BACKOFF, connect=connect, run_sync=run_sync)
    h = make_run(tasks=tasks)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        record_all(writer, h)
        with trio.fail_after(20):
            fault = await reports.next()
            assert fault.kind in expected_kinds, fault
            assert str(path) in fault.message and "retried" in fault.message
            await run_sync.wait_calls(run_sync.calls + 3)  # it keeps trying
            assert writer.statistics().outage == fault.kind and writer.statistics().faults >= 3
            fix()
            assert (await reports.next()).kind == "recovered"
            await writer.wait_idle()
        nursery.cancel_scope.cancel()
    assert reports.kinds == [fault.kind, "recovered"]  # one report per outage, not per retry
    runs, tasks = stored(path)
    assert tasks[f"waa:{h.run}"] == [e.id for e in h.entries[:-1]]
    assert [r.finished for r in runs if r.run == h.run] == [True]
    return reports


async def test_locked_by_another_connections_transaction(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    storedb.open_for_writing(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO alerts VALUES ('held', 'x', 'y')")

    def release() -> None:
        holder.execute("COMMIT")
        holder.close()

    await outage_then_recovery(path, {"locked"}, release)
    c = storedb.open_for_reading(path)
    assert storedb.alert_sent(c, "held")  # the other connection's write is intact
    c.close()


async def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"this is not an SQLite file\n" * 200)

    await outage_then_recovery(path, {"corrupt"}, lambda: path.rename(tmp_path / "h.sqlite3.corrupt"))
    assert (tmp_path / "h.sqlite3.corrupt").read_bytes().startswith(b"this is not")  # never touched


async def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    storedb.open_for_writing(path).close()
    path.write_bytes(path.read_bytes()[:600])  # a valid header, pages gone
    await outage_then_recovery(path, {"corrupt"}, lambda: path.unlink())


async def test_read_only_file(tmp_path: Path, readonly: Callable[[Path], None]) -> None:
    path = tmp_path / "h.sqlite3"
    storedb.open_for_writing(path).close()
    readonly(path)
    with pytest.raises(OSError):  # the setup really is read-only
        path.open("ab").close()
    await outage_then_recovery(path, {"readonly"}, lambda: undo(path, 0o644))


async def test_read_only_folder(tmp_path: Path, readonly: Callable[[Path], None]) -> None:
    folder = tmp_path / "data"
    path = folder / "h.sqlite3"
    storedb.open_for_writing(path).close()  # a clean close removes the -wal and -shm files
    assert sorted(p.name for p in folder.iterdir()) == ["h.sqlite3"]
    readonly(folder)
    with pytest.raises(OSError):
        (folder / "probe").touch()
    await outage_then_recovery(path, {"unavailable", "readonly"}, lambda: undo(folder, 0o755))


async def test_disk_full(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    storedb.open_for_writing(path).close()
    limit: dict[str, int | None] = {"pages": None}
    c = sqlite3.connect(path)
    limit["pages"] = c.execute("PRAGMA page_count").fetchone()[0]
    c.close()

    def connect(p: Path) -> sqlite3.Connection:
        conn = FAST(p)
        if limit["pages"] is not None:  # no room beyond what the file has now
            conn.execute(f"PRAGMA max_page_count = {limit['pages']}")
        return conn

    def free_space() -> None:
        limit["pages"] = None

    # 300 tasks need pages the file does not have (30 would fit in its half-empty ones).
    await outage_then_recovery(path, {"full"}, free_space, connect=connect, tasks=300)


async def test_shutdown_during_an_outage_reports_what_was_left(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"garbage" * 100)
    reports = Reports()
    writer = HistoryWriter(path, report=reports, backoff=QUICK_BACKOFF, connect=FAST)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        record_all(writer, make_run(tasks=3))
        with trio.fail_after(10):
            assert (await reports.next()).kind == "corrupt"
        nursery.cancel_scope.cancel()
    assert reports.kinds == ["corrupt", "shutdown"]
    assert "4 records not written" in reports.items[-1].message
    assert "replay" in reports.items[-1].message


# ---------------------------------------------------------------------------- readers


async def test_reader_errors_are_clear(tmp_path: Path) -> None:
    reader = HistoryReader(tmp_path / "missing.sqlite3")
    with pytest.raises(HistoryUnavailable, match="no history database at"):
        await reader.list_runs()
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"junk" * 1000)
    with pytest.raises(HistoryUnavailable, match="is corrupt"):
        await HistoryReader(bad).list_runs()
    good = tmp_path / "good.sqlite3"
    storedb.open_for_writing(good).close()
    reader = HistoryReader(good)
    with pytest.raises(NotFound, match="no stored run 'abcdef'"):
        await reader.run_with_tasks("abcdef")
    with pytest.raises(BadRequest, match="a run is named"):
        await reader.run_csv("../../etc/passwd")
    with pytest.raises(BadRequest, match="limit"):
        await reader.list_runs(limit=-5)
    assert await reader.list_runs() == []  # still usable after the errors
    await reader.aclose()


async def test_ledger_remembers_alerts_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    writer = HistoryWriter(path)
    reader = HistoryReader(path)
    ledger = StoreLedger(reader, writer)
    assert not await ledger.was_sent("waa:abc:finished")  # no file yet: not sent
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        ledger.mark_sent("waa:abc:finished", "finished")
        with trio.fail_after(10):
            await writer.wait_idle()
        nursery.cancel_scope.cancel()
    await reader.aclose()
    reader = HistoryReader(path)
    restarted = StoreLedger(reader, HistoryWriter(path))
    assert await restarted.was_sent("waa:abc:finished")
    assert not await restarted.was_sent("waa:abc:interrupted")
    await reader.aclose()


async def test_an_eager_writer_opens_the_database_at_start_a_lazy_one_at_its_first_record(tmp_path: Path) -> None:
    eager, lazy = tmp_path / "eager" / "h.sqlite3", tmp_path / "lazy" / "h.sqlite3"
    called = trio.Event()

    async def run_sync(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = await trio.to_thread.run_sync(fn, *args, **kwargs)
        called.set()
        return result

    writers = [HistoryWriter(eager, eager=True, run_sync=run_sync), HistoryWriter(lazy)]
    async with trio.open_nursery() as nursery:
        for w in writers:
            await nursery.start(w.run)
        with trio.fail_after(10):
            await called.wait()  # the eager writer's first (empty) transaction, with no record
        conn = storedb.open_for_reading(eager)
        try:
            assert storedb.schema_version(conn) == storedb.SCHEMA_VERSION
        finally:
            conn.close()
        assert writers[0].statistics().commits == 1 and not lazy.exists()
        nursery.cancel_scope.cancel()
