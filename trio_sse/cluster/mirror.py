"""Every process's view of a target in cluster mode: Redis → the interface of a local monitor.

``Mirror(store, target)`` is what the per-client stream code (``stream.EventStream``), the
snapshot routes and ``/metrics`` use instead of a local ``monitor.Monitor`` when the process
runs with ``--redis``: the same names — ``name``, ``status`` and ``progress`` (watched values:
``value``, ``frame`` encoded once, ``version``, ``wait_newer``), ``history`` (``run``,
``entries``, ``after((run, n))`` → ``history.Entry``), ``outage``, ``subscribe`` /
``unsubscribe`` (the subscription and the replay after a position, atomically),
``subscriber_count``, ``snapshot()``, ``task()``, ``rerun()``, ``publish_error()``,
``statistics()`` — and it offers each new durable entry, error event and step event (a
``runstate.Live``, with the leader's frame bytes) to its subscribers with
``subscriber.offer(mirror, item)``, as a monitor does. ``results`` is the target's results
folder as this process reads it (set by the hub; None: none), for ``/api/tasks/<id>``.

``run()`` is one Trio task per target per process:

1. *sync*: the newest entry of the target's live stream (status, progress, the leader's
   source outage, which run Redis holds) and then every event of that run (``XRANGE``, paged
   by ``read_count``);
2. *follow*: ``XREAD BLOCK`` on the run's stream and the live stream from the last ids seen,
   applying what arrives in order — a live entry naming another run first drains the old
   run's stream to its end, then starts the new run's history and reads its stream from the
   start.

Nothing twice, nothing lost: an event is taken only if its ordinal is above the last one the
history holds (a re-read after a reconnect, a republish after Redis restarted empty, two
leaders deriving the same event — all skipped by ordinal, never offered again); the reads
are ordered, so a later ordinal never comes before an earlier one. After any Redis failure
the mirror syncs again from step 1, so whatever happened meanwhile (a restart, a failover,
an empty Redis being refilled) is caught up from what Redis holds, not from stream ids that
may no longer mean anything.

Redis down: no exception leaves ``run``. The mirror keeps its history and values (clients'
streams stay open, keepalives go on), offers one ``ErrorEvent`` per outage and shows it as
``outage`` while it lasts (a client connecting meanwhile is told), counts it, and retries
with capped back-off. Junk in Redis: a malformed entry is skipped, logged and counted; a key
holding the wrong type blocks the target like an outage and is reported the same way, with
the key named.

Must not: write to Redis, decide leadership, or touch a log.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import trio

from trio_sse.cluster.codec import (
    LiveError,
    LiveState,
    LiveStep,
    decode_entry,
    decode_error,
    decode_live,
    decode_progress,
    decode_status,
    decode_step,
)
from trio_sse.cluster.redis import RedisStore, StreamEntry
from trio_sse.cluster.timing import backoff_delay
from trio_sse.errors import ClusterDataError, RedisUnavailable
from trio_sse.history import Entry, History, Position, Replay
from trio_sse.model import ErrorEvent, Progress, RunComplete, RunSummary, Status, TaskComplete, dumps
from trio_sse.runstate import Live, Output, rerun_list, running_task_view
from trio_sse.sse import encode_event
from trio_sse.versioned import Versioned

log = logging.getLogger(__name__)

T = TypeVar("T", Status, Progress)


class Subscriber(Protocol):
    interval: float

    def offer(self, monitor: Mirror, item: Output) -> None: ...


class ReplicaValue(Versioned[T]):
    """A latest value as the leader published it: ``frame`` is built from the leader's own
    payload JSON (byte-identical on every process); waiters wake on change."""

    __slots__ = ("frame", "_data", "_event")

    def __init__(self, value: T, event: str) -> None:
        super().__init__(value)
        self._event = event
        self._data = dumps(value.payload())
        self.frame = encode_event(self._data, event=event)

    def set_data(self, value: T, data: str) -> bool:
        if data == self._data:
            return False
        self.value = value
        self._data = data
        self.frame = encode_event(data, event=self._event)
        self._bump()
        return True


class ReplicaHistory:
    """The durable events of the current run as Redis holds them, in their order (``seq``
    1, 2, 3 …; one skipped as junk leaves a hole). Placement is ``history.History``'s own —
    by each lane's count, so a hole never shifts a resume."""

    __slots__ = ("target", "run", "_history", "_last")

    def __init__(self, target: str, run: str) -> None:
        self.target = target
        self.run = run
        self._history: History | None = None
        self._last = 0

    def __len__(self) -> int:
        return len(self._history) if self._history is not None else 0

    @property
    def entries(self) -> Sequence[Entry]:
        return self._history.entries if self._history is not None else ()

    @property
    def last_n(self) -> int:
        return self._last

    def add(self, n: int, entry: Entry) -> bool:
        """Take the entry if its place is new (above the last); False for a duplicate."""
        if n <= self._last:
            return False
        if self._history is None:
            self._history = History(self.target, self.run, lanes=bool(entry.lane))
        self._history.adopt(entry)
        self._last = n
        return True

    def placeable(self, position: Position | None) -> bool:
        return self._history is not None and self._history.placeable(position)

    def cursor(self, position: Position | None = None) -> str | None:
        return self._history.cursor(position) if self._history is not None else None

    def after(self, position: Position | None) -> Replay:
        """Entries after ``position``; the whole run for another run, None, or a place we
        never had (the same rule as ``history.History.after``)."""
        if self._history is None:
            return Replay([], 0, 0)
        entries = self._history.entries
        if not self._history.placeable(position):
            return Replay(entries, 0, len(entries))  # type: ignore[arg-type]
        assert position is not None
        return Replay(entries, 0, len(entries), floor=dict(position.lanes), target=self.target, run=self.run)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class MirrorStatistics:
    # The leader's monitor statistics as last published (0 before any).
    bytes_read: int
    lines: int
    parse_errors: int
    overlong_lines: int
    runs: int
    outages: int  # the leader's source outages (as the leader counts them)
    subscribers: int
    # The mirror's own.
    redis_outages: int  # Redis outages this mirror saw (one error event each)
    syncs: int  # full syncs (the first, and one after every failure)
    entries: int  # durable entries taken
    duplicates: int  # entries skipped as already held (re-reads, republishes)
    junk: int  # malformed entries skipped
    connected: bool  # the last Redis call succeeded


class Mirror:
    def __init__(self, store: RedisStore, name: str, *, rand: Callable[[], float] = random.random) -> None:
        self.name = name
        self._store = store
        self._keys = store.keys(name)
        self._rand = rand
        self._subscribers: dict[Subscriber, None] = {}  # insertion-ordered set
        self.history = ReplicaHistory(name, "")
        self.status: ReplicaValue[Status] = ReplicaValue(Status(target=name), "status")
        self.progress: ReplicaValue[Progress] = ReplicaValue(Progress(target=name), "progress")
        self._source_outage: ErrorEvent | None = None  # the leader's, from the live state
        self._redis_outage: ErrorEvent | None = None  # ours
        self._events_id = "0-0"  # last stream id read of events:<run>
        self._live_id = "0-0"
        self._leader_stats: dict[str, int] = {}
        self._redis_outages = 0
        self._syncs = 0
        self._taken = 0
        self._duplicates = 0
        self._junk = 0
        self._connected = False
        self.synced = trio.Event()  # set after the first successful sync (tests, readiness)
        self.results: Any = None  # the results folder as this process reads it (the hub sets it)

    # ------------------------------------------------------------ the monitor interface

    @property
    def outage(self) -> ErrorEvent | None:
        """Why this target's news may be stale now: our Redis outage first, else the
        leader's source outage."""
        return self._redis_outage or self._source_outage

    def subscribe(self, subscriber: Subscriber, position: Position | None) -> Replay:
        """Register and return the durable entries after ``position`` — atomically."""
        self._subscribers[subscriber] = None
        return self.history.after(position)

    def rerun(self) -> dict[str, list[str]]:
        """The current run's infrastructure failures, as WAA's task list (``/api/rerun``)."""
        return rerun_list([e.event for e in self.history.entries if isinstance(e.event, TaskComplete)])

    def task(self, task_id: str) -> tuple[dict[str, object], str | None] | None:
        """What the current run knows of ``task_id`` (``GET /api/tasks/<id>``), as the
        leader's reducer answers it (``RunState.task``): its result, or — while it runs — its
        worker's view from the published progress (without ``started_at``, which progress
        does not carry: null here). None for a task not in the current run."""
        for entry in reversed(self.history.entries):
            result = entry.event
            if isinstance(result, TaskComplete) and result.task_id == task_id:
                return {**result.payload(), "finished": True}, result.domain
        for w in self.progress.value.workers:
            if w.current_task == task_id:
                view = running_task_view(
                    self.name, task_id, w.worker, domain=w.current_domain, instruction=w.instruction,
                    started_at=None, step=w.current_step, action=w.action, evaluating=w.evaluating,
                )  # fmt: skip
                return view, w.current_domain
        return None

    def publish_error(self, message: str) -> ErrorEvent:
        """An ``error`` event about this target to this process's clients now (the hub's own
        news, e.g. the history database failing). Not written to Redis."""
        item = ErrorEvent(self.name, message)
        self._offer(item)
        return item

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.pop(subscriber, None)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def _offer(self, item: Output) -> None:
        for subscriber in list(self._subscribers):  # one may unsubscribe while offered
            subscriber.offer(self, item)

    def snapshot(self) -> dict[str, object]:
        summary = RunSummary()
        complete: RunComplete | None = None
        for entry in self.history.entries:
            if isinstance(entry.event, TaskComplete):
                summary.add(entry.event)
            elif isinstance(entry.event, RunComplete):
                complete = entry.event
        return {
            "status": self.status.value.payload(),
            "progress": self.progress.value.payload(),
            "results": [e.event.payload() for e in self.history.entries if isinstance(e.event, TaskComplete)],
            "run": {
                "id": self.history.run,
                "tasks_passed": summary.tasks_passed,
                "tasks_completed": summary.tasks_completed,
                "average_score": summary.average_score,
                "complete": complete.payload() if complete else None,
            },
        }

    def statistics(self) -> MirrorStatistics:
        s = self._leader_stats
        return MirrorStatistics(
            bytes_read=s.get("bytes_read", 0),
            lines=s.get("lines", 0),
            parse_errors=s.get("parse_errors", 0),
            overlong_lines=s.get("overlong_lines", 0),
            runs=s.get("runs", 0),
            outages=s.get("outages", 0),
            subscribers=len(self._subscribers),
            redis_outages=self._redis_outages,
            syncs=self._syncs,
            entries=self._taken,
            duplicates=self._duplicates,
            junk=self._junk,
            connected=self._connected,
        )

    # ------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Mirror until cancelled. Started at once; the values fill in when Redis answers."""
        timing = self._store.timing
        task_status.started()
        attempt = 0
        while True:
            try:
                await self._sync()
                self._up()
                attempt = 0
                while True:
                    await self._follow_once()
            except (RedisUnavailable, ClusterDataError) as exc:
                self._down(exc)
            await trio.sleep(backoff_delay(attempt, first=timing.backoff_first, cap=timing.backoff_cap, rand=self._rand))
            attempt += 1

    def _up(self) -> None:
        self._connected = True
        if self._redis_outage is not None:
            log.info("mirror of target %s: redis is back, caught up", self.name)
            self._redis_outage = None
        self.synced.set()

    def _down(self, exc: Exception) -> None:
        self._connected = False
        if self._redis_outage is None:
            self._redis_outages += 1
            log.warning("mirror of target %s: %s (retrying)", self.name, exc)
            self._redis_outage = ErrorEvent(
                self.name, f"cluster view of {self.name} paused: {exc}; it catches up when redis is back"
            )
            self._offer(self._redis_outage)

    async def _sync(self) -> None:
        """Step 1: the newest state, then every event of its run we do not have."""
        self._syncs += 1
        last = await self._store.last_entry(self._keys.live)
        self._live_id = "0-0"
        if last is not None:
            self._live_id = last[0]
            item = self._decode_live(last)
            if isinstance(item, LiveState):
                await self._apply_state(item, drain=False)
        self._events_id = "0-0"
        await self._drain()

    async def _drain(self) -> None:
        """Read the current run's stream to its end."""
        if not self.history.run:
            return
        key = self._keys.events(self.history.run)
        while True:
            batch = await self._store.range_after(key, self._events_id)
            self._take_events(batch)
            if len(batch) < self._store.timing.read_count:
                return

    async def _follow_once(self) -> None:
        streams = {self._keys.live: self._live_id}
        if self.history.run:
            streams[self._keys.events(self.history.run)] = self._events_id
        got = await self._store.read(streams)
        if self.history.run:
            self._take_events(got.get(self._keys.events(self.history.run), []))
        for raw in got.get(self._keys.live, []):
            self._live_id = raw[0]
            item = self._decode_live(raw)
            if isinstance(item, LiveError):
                self._offer(decode_error(item.data))
            elif isinstance(item, LiveStep):
                self._offer(Live(decode_step(item.data), encode_event(item.data, event="step")))
            elif isinstance(item, LiveState):
                await self._apply_state(item, drain=True)

    def _decode_live(self, raw: StreamEntry) -> LiveState | LiveError | LiveStep | None:
        try:
            return decode_live(self._keys, raw[0], raw[1])
        except ClusterDataError as exc:
            self._junk += 1
            log.warning("mirror of target %s: skipped: %s", self.name, exc)
            return None

    def _take_events(self, batch: Sequence[StreamEntry]) -> None:
        run = self.history.run
        for stream_id, fields in batch:
            self._events_id = stream_id
            try:
                n, entry = decode_entry(self._keys, run, stream_id, fields)
            except ClusterDataError as exc:
                self._junk += 1
                log.warning("mirror of target %s: skipped: %s", self.name, exc)
                continue
            if n > self.history.last_n + 1:
                log.warning("mirror of target %s: events %d..%d of run %s missing", self.name, self.history.last_n + 1, n - 1, run)
            if self.history.add(n, entry):
                self._taken += 1
                self._offer(entry)
            else:
                self._duplicates += 1

    async def _apply_state(self, state: LiveState, *, drain: bool) -> None:
        if state.run and state.run != self.history.run:
            if drain:
                await self._drain()  # the old run's last events before the new run starts
            self.history = ReplicaHistory(self.name, state.run)
            self._events_id = "0-0"
            if drain:
                await self._drain()
        self.status.set_data(decode_status(state.status), state.status)
        self.progress.set_data(decode_progress(state.progress), state.progress)
        if state.outage is None:
            self._source_outage = None
        elif self._source_outage is None or self._source_outage.message != state.outage:
            self._source_outage = ErrorEvent(self.name, state.outage)
        self._leader_stats = dict(state.stats)
