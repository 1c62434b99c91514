"""Run history (SPEC §9), the Trio side: the ONE writer task and the readers of the database.

Owns: ``HistoryWriter`` — fed by ``record`` / ``record_run`` / ``record_alert``, which never
block and never touch the disk — and ``HistoryReader``, the async face of the queries for
``/api/runs``. Every SQL statement lives in ``storedb.py``; every database call here runs in
a worker thread (``trio.to_thread.run_sync``), never on the event path.

Must not: block the caller, lose a durable event for good, stop anything else when the
database misbehaves, or parse payloads (the thread does that, in ``storedb``).

How nothing is lost
-------------------
An operation is always in exactly one of these places until it is in the database:
1. the bounded channel (``buffer``, default 1024 operations — see ``DEFAULT_BUFFER``);
2. the writer's current batch (``batch``, default 256), kept and retried while the database
   fails;
3. the *resync set*: when the channel is full (or closed), ``record`` does not wait and does
   not drop the run: it remembers the run's durable history object (``history.History``:
   append-only, one per run, so a reference is enough) under ``(target, run)``. After its
   next successful commit the writer replays each remembered run whole. Writes are
   idempotent (``storedb``: keyed by event id, first ``run_complete`` wins, totals move only
   on a new row), so replaying what is already stored writes nothing twice. The reference
   keeps a finished run's history alive even after the monitor moved on to the next run.
   Run metadata and alert marks that overflow are merged into the same set.
The database failing (locked by another connection, corrupt, disk full, read-only, the folder
missing) leaves everything in 1–3; the writer reports the outage once through ``report``
(``StoreReport``; the caller makes it an ``error`` event, a metric and one log line), retries
with capped exponential backoff (``backoff``), reopening the file each time (a file moved
aside or a disk cleaned up is picked up), and says ``recovered`` when a commit succeeds. A
process that dies with operations in 1–3 loses nothing either: the log is replayed at start
and the replay is written idempotently. On cancellation the writer makes one last, shielded
attempt to write 1–3 (``flush_seconds``).

An operation bad in itself (junk payload) is rejected alone and reported (``rejected``), so a
poison event cannot stall the queue.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import trio

from trio_sse import storedb
from trio_sse.errors import HistoryUnavailable
from trio_sse.storedb import AlertOp, EventOp, Op, RunInfo, RunRow

T = TypeVar("T")

# The channel holds a whole replay burst: at start every target's current run is replayed at
# once (WAA runs have 150-400 tasks; several targets), and it rides out ~50 s of the fastest
# task rate we plan for (20 durable events/s over all targets) while the database is locked.
# Past that, runs go to the resync set (memory: one reference per run), not to a bigger queue.
# Memory bound: 1024 small tuples referencing strings that exist anyway (~100 KiB).
DEFAULT_BUFFER: Final = 1024
# One transaction per batch: a burst costs one commit, not one per event.
DEFAULT_BATCH: Final = 256
DEFAULT_BACKOFF: Final = (0.5, 60.0)  # first retry, cap (seconds)
DEFAULT_FLUSH_SECONDS: Final = 2.0


class EntryLike(Protocol):
    """A durable event as ``history.Entry`` carries it."""

    @property
    def id(self) -> str: ...
    @property
    def data(self) -> str: ...
    @property
    def event(self) -> Any: ...  # has ``EVENT``: "task_complete" / "run_complete"


class RunLog(Protocol):
    """A run's durable history as ``history.History`` keeps it (append-only)."""

    target: str
    run: str

    @property
    def entries(self) -> Sequence[EntryLike]: ...


class RunSync(Protocol):
    def __call__(self, fn: Callable[..., T], *args: Any, abandon_on_cancel: bool = False) -> Awaitable[T]: ...


@dataclass(frozen=True, slots=True)
class StoreReport:
    """What the writer tells its owner. ``kind``: ``locked``, ``corrupt``, ``full``,
    ``readonly``, ``unavailable``, ``io``, ``newer``, ``error`` (an outage began or changed
    kind; writes are kept and retried), ``recovered`` (writing again), ``rejected`` (bad
    operations dropped), ``shutdown`` (operations left unwritten at exit: the next start's
    replay of the log writes them)."""

    kind: str
    message: str

    @property
    def is_outage(self) -> bool:
        return self.kind not in ("recovered", "rejected", "shutdown")


@dataclass(frozen=True, slots=True)
class WriterStatistics:
    queued: int  # operations in the channel
    pending: int  # operations in the batch being written or retried
    resync_runs: int  # runs waiting for a whole replay
    written: int  # operations that changed the database
    duplicates: int  # operations already recorded (replays)
    rejected: int
    overflows: int  # record calls that found the channel full (→ resync set)
    faults: int  # failed commit attempts
    commits: int
    outage: str | None  # the current outage's kind, None when healthy


@dataclass(slots=True)
class _Resync:
    log: RunLog | None = None
    info: RunInfo | None = None


class _Fault(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _stamp(moment: _dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


class HistoryWriter:
    """The one writer of the history database. Start ``run`` in a nursery; call the
    ``record*`` methods from anywhere on the Trio thread."""

    def __init__(
        self,
        path: Path | str,
        *,
        report: Callable[[StoreReport], None] | None = None,
        buffer: int = DEFAULT_BUFFER,
        batch: int = DEFAULT_BATCH,
        backoff: tuple[float, float] = DEFAULT_BACKOFF,
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
        wall: Callable[[], _dt.datetime] = utc_now,
        connect: Callable[[Path], sqlite3.Connection] = storedb.open_for_writing,
        run_sync: RunSync = trio.to_thread.run_sync,
        eager: bool = False,
    ) -> None:
        """``eager``: open (create, migrate) the database as soon as ``run`` starts, so a bad
        file is reported — and retried — at start-up rather than at the first event."""
        if buffer < 1 or batch < 1:
            raise ValueError("buffer and batch must be at least 1")
        if not 0 < backoff[0] <= backoff[1]:
            raise ValueError(f"backoff must be (first, cap) with 0 < first <= cap, got {backoff!r}")
        self.path = Path(path)
        self._report = report or (lambda _report: None)
        self._batch = batch
        self._backoff = backoff
        self._flush_seconds = flush_seconds
        self._wall = wall
        self._connect = connect
        self._run_sync = run_sync
        self._eager = eager
        self._send, self._receive = trio.open_memory_channel[Op](buffer)
        self._resync: dict[tuple[str, str], _Resync] = {}
        self._resync_alerts: dict[str, AlertOp] = {}
        self._pending: list[Op] = []
        self._in_flight = 0  # operations accepted by the channel and not yet committed
        self._conn: sqlite3.Connection | None = None  # used by one worker thread at a time
        self._outage: str | None = None
        self._idle = trio.Event()
        self._idle.set()
        self._written = self._duplicates = self._rejected = self._overflows = self._faults = self._commits = 0

    # ------------------------------------------------------------ the caller's side

    def record(self, log: RunLog, entry: EntryLike) -> None:
        """A durable event of ``log``'s run (call right after ``log.append``). Never blocks."""
        op = EventOp(log.target, log.run, entry.id, entry.event.EVENT, entry.data, _stamp(self._wall()))
        if not self._offer(op):
            self._resync.setdefault((log.target, log.run), _Resync()).log = log

    def record_run(self, info: RunInfo) -> None:
        """What is known about a run (model, agent, max_steps, total, start); call when it
        changes. ``None`` fields never erase known ones. Never blocks."""
        if not info.run:
            raise ValueError("record_run needs the run's id (call it once the run is named)")
        info = dataclasses.replace(info, at=_stamp(self._wall()))
        if not self._offer(info):
            slot = self._resync.setdefault((info.target, info.run), _Resync())
            slot.info = info if slot.info is None else slot.info.merged(info)

    def record_alert(self, key: str, kind: str) -> None:
        """An alert was delivered (``alerts.Notifier`` calls this). Never blocks."""
        op = AlertOp(key, kind, _stamp(self._wall()))
        if not self._offer(op):
            self._resync_alerts.setdefault(key, op)

    def _offer(self, op: Op) -> bool:
        if self._idle.is_set():
            self._idle = trio.Event()
        try:
            self._send.send_nowait(op)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self._overflows += 1
            return False
        self._in_flight += 1
        return True

    def statistics(self) -> WriterStatistics:
        return WriterStatistics(
            queued=self._send.statistics().current_buffer_used,
            pending=len(self._pending),
            resync_runs=len(self._resync),
            written=self._written,
            duplicates=self._duplicates,
            rejected=self._rejected,
            overflows=self._overflows,
            faults=self._faults,
            commits=self._commits,
            outage=self._outage,
        )

    def _is_idle(self) -> bool:
        # (Not the channel's buffer: an item handed straight to the waiting writer is in
        # neither the buffer nor the batch yet.)
        return self._in_flight == 0 and not self._resync and not self._resync_alerts

    async def wait_idle(self) -> None:
        """Until everything recorded so far is in the database (or rejected). Needs ``run``
        to be running; waits through an outage."""
        while not self._is_idle():
            await self._idle.wait()

    # ------------------------------------------------------------ the writer task

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write until cancelled; then one last shielded attempt to write what is left."""
        task_status.started()
        try:
            if self._eager:
                await self._commit([])  # an empty transaction: opens the file, retries until it can
            while True:
                batch = await self._next_batch()
                await self._commit(batch)
                if self._is_idle():
                    self._idle.set()
        finally:
            with trio.CancelScope(shield=True):
                await self._final_flush()

    async def _next_batch(self) -> list[Op]:
        if self._resync or self._resync_alerts:
            return []  # (not reached in practice: see the module docstring) replay now
        batch = [await self._receive.receive()]
        while len(batch) < self._batch:
            try:
                batch.append(self._receive.receive_nowait())
            except trio.WouldBlock:
                break
        return batch

    def _take_resync(self) -> tuple[list[Op], dict[tuple[str, str], _Resync], dict[str, AlertOp]]:
        """The resync set as operations, built here on the Trio thread (the history objects
        are only ever read on it)."""
        runs, alerts = self._resync, self._resync_alerts
        self._resync, self._resync_alerts = {}, {}
        at = _stamp(self._wall())
        ops: list[Op] = []
        for (target, run), slot in runs.items():
            if slot.info is not None:
                ops.append(slot.info)
            if slot.log is not None:
                ops.extend(EventOp(target, run, e.id, e.event.EVENT, e.data, at) for e in list(slot.log.entries))
        ops.extend(alerts.values())
        return ops, runs, alerts

    def _give_back(self, runs: dict[tuple[str, str], _Resync], alerts: dict[str, AlertOp]) -> None:
        for key, slot in runs.items():
            mine = self._resync.setdefault(key, _Resync())
            mine.log = mine.log or slot.log
            if slot.info is not None:
                mine.info = slot.info if mine.info is None else slot.info.merged(mine.info)
        for key, op in alerts.items():
            self._resync_alerts.setdefault(key, op)

    async def _commit(self, batch: list[Op]) -> None:
        """Write ``batch`` (and the resync set), retrying until it is written."""
        self._pending = batch
        delay = self._backoff[0]
        while True:
            resync, runs, alerts = self._take_resync()
            try:
                result = await self._run_sync(self._apply_in_thread, [*batch, *resync])
            except _Fault as fault:
                self._give_back(runs, alerts)
                self._faults += 1
                if fault.kind != self._outage:
                    self._outage = fault.kind
                    self._report(StoreReport(fault.kind, f"{fault.message}; writes are kept and retried"))
                await trio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            break
        self._pending = []
        self._in_flight -= len(batch)
        self._commits += 1
        self._written += result.written
        self._duplicates += result.duplicates
        if self._outage is not None:
            self._outage = None
            self._report(StoreReport("recovered", f"history database {self.path} is written again"))
        if result.rejected:
            self._rejected += len(result.rejected)
            op, why = result.rejected[0]
            name = op.event_id if isinstance(op, EventOp) else op.key if isinstance(op, AlertOp) else f"{op.target}:{op.run}"
            more = f" (and {len(result.rejected) - 1} more)" if len(result.rejected) > 1 else ""
            self._report(StoreReport("rejected", f"history database {self.path}: dropped a bad record {name}: {why}{more}"))

    def _apply_in_thread(self, ops: list[Op]) -> storedb.ApplyResult:
        try:
            if self._conn is None:
                self._conn = self._connect(self.path)
            return storedb.apply(self._conn, ops)
        except (sqlite3.Error, OSError, ValueError) as exc:
            # ValueError here is from opening (e.g. a path sqlite cannot take); a bad
            # operation's ValueError is caught per operation inside storedb.apply.
            self._close_in_thread()
            raise _Fault(storedb.classify(exc), storedb.describe(self.path, exc)) from None

    def _close_in_thread(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def _flush_in_thread(self, ops: list[Op]) -> storedb.ApplyResult | None:
        try:
            return self._apply_in_thread(ops) if ops else None
        finally:
            self._close_in_thread()

    async def _final_flush(self) -> None:
        ops = list(self._pending)
        self._pending = []
        while True:
            try:
                ops.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        resync, _runs, _alerts = self._take_resync()
        ops.extend(resync)
        with trio.move_on_after(self._flush_seconds):
            try:
                # Abandoned if it overruns: the thread then finishes and closes the file alone.
                result = await self._run_sync(self._flush_in_thread, ops, abandon_on_cancel=True)
            except _Fault as fault:
                self._report(StoreReport("shutdown", f"{fault.message}; {len(ops)} records not written (the log's replay at the next start writes them)"))
                return
            if result is not None:
                self._written += result.written
                self._duplicates += result.duplicates
            return
        self._report(StoreReport("shutdown", f"history database {self.path}: gave up writing {len(ops)} records at shutdown after {self._flush_seconds:g} s (the log's replay at the next start writes them)"))


class HistoryReader:
    """Queries for the API, each in a worker thread, on one read-only connection (WAL: never
    waits for the writer). Database trouble → ``HistoryUnavailable`` (503) with a clear
    sentence; unknown runs → ``NotFound``; junk names → ``BadRequest``."""

    def __init__(self, path: Path | str, *, run_sync: RunSync = trio.to_thread.run_sync) -> None:
        self.path = Path(path)
        self._run_sync = run_sync
        self._lock = trio.Lock()  # one query at a time on the one connection
        self._conn: sqlite3.Connection | None = None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._lock:
            return await self._run_sync(self._in_thread, fn, args)

    def _in_thread(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            if self._conn is None:
                self._conn = storedb.open_for_reading(self.path)
            self._conn.execute("BEGIN")  # one snapshot for the call's queries
            try:
                return fn(self._conn, *args)
            finally:
                if self._conn.in_transaction:
                    self._conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
            if isinstance(exc, FileNotFoundError):
                raise HistoryUnavailable(f"no history database at {self.path} yet") from None
            raise HistoryUnavailable(storedb.describe(self.path, exc)) from None

    async def aclose(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    async def list_runs(self, *, target: str | None = None, limit: int | None = 100, offset: int = 0) -> list[RunRow]:
        return await self._call(lambda c: storedb.list_runs(c, target=target, limit=limit, offset=offset))

    async def find_run(self, ref: str) -> RunRow:
        return await self._call(storedb.find_run, ref)

    async def run_with_tasks(self, ref: str) -> tuple[RunRow, list[dict[str, Any]]]:
        """``/api/runs/<run>``: the run and its tasks, from one snapshot."""

        def query(conn: sqlite3.Connection) -> tuple[RunRow, list[dict[str, Any]]]:
            row = storedb.find_run(conn, ref)
            return row, storedb.run_tasks(conn, row)

        return await self._call(query)

    async def run_csv(self, ref: str) -> tuple[RunRow, str]:
        """``/api/runs/<run>.csv``: the run and its tasks as CSV text."""
        row, tasks = await self.run_with_tasks(ref)
        return row, storedb.tasks_csv(tasks)

    async def failure_kinds(self, ref: str) -> dict[str, int]:
        return await self._call(lambda c: storedb.failure_kinds(c, storedb.find_run(c, ref)))

    async def previous_run(self, target: str, *, exclude_run: str | None = None) -> RunRow | None:
        return await self._call(lambda c: storedb.previous_run(c, target, exclude_run=exclude_run))

    async def alert_sent(self, key: str) -> bool:
        return await self._call(storedb.alert_sent, key)


class StoreLedger:
    """``alerts.AlertLedger`` on the history database: an alert is sent once, also across
    restarts. When the database cannot answer, an alert counts as not sent (at least once
    beats never)."""

    def __init__(self, reader: HistoryReader, writer: HistoryWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def was_sent(self, key: str) -> bool:
        try:
            return await self._reader.alert_sent(key)
        except HistoryUnavailable:
            return False

    def mark_sent(self, key: str, kind: str) -> None:
        self._writer.record_alert(key, kind)
