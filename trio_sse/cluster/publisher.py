"""The leader's side: what the local monitor of a target knows, written to Redis (SPEC §10).

``Publisher(store, view, lease)`` runs inside ``lead(lease)`` next to the monitor it
publishes. It is a *subscriber* of that monitor (``offer`` never blocks: it only wakes the
writer; error events are queued, at most ``errors_kept``) and watches its ``status`` and
``progress``. It keeps no copy of the durable events: it reads the monitor's ``history``
(``run``, ``entries``) each time it writes, so whatever Redis lost — a step that failed
during an outage, everything after an empty restart — is written again from there
(``republish()``), and nothing is held twice in memory.

One writer task, one publish script call per step, steps back to back: a step carries the
durable entries Redis does not have yet (at most ``publish_chunk``), the newest status and
progress (older values that were never written are simply superseded — coalescing), the
queued error events, the source outage and the monitor's statistics, and, when it reaches
the end of the history, the checkpoint (``position()``: the byte offset and first-bytes
fingerprint the monitor stands at, for a successor). The snapshot of all that is taken
synchronously, between two awaits, so the checkpoint always matches the entries it goes with.

The script does the rest atomically: only while our token holds the lease (fencing), entries
only in order and never one Redis has already (by ordinal), the checkpoint only once Redis
has every entry it counts. What the publisher does with its reply:

* written → go on (another step at once if more is pending);
* gap (Redis has fewer entries than assumed: it lost data) → send again from what it has;
* lease vacant (lapsed or lost with Redis's data) → ``lease.confirm()`` takes it back if
  nobody led since (and counts a reclaim: republish) or loses it;
* fenced (another token holds it) → ``lease.lose()``: ``lead`` is cancelled;
* Redis unreachable → retry with capped back-off (newest values win); the monitor goes on.

A run replaced while Redis was down: the rest of the previous run's entries is written
first (a step without state), then the new run — so a mirror's clients get the old run's
``run_complete`` before the new run starts.

Must not: block or slow the monitor (no awaits in ``offer``), drop a durable event, or talk to
Redis other than through ``RedisStore``.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from trio_sse.cluster.codec import Checkpoint, PublishStep, entry_n
from trio_sse.cluster.lease import Lease
from trio_sse.cluster.redis import RedisStore
from trio_sse.cluster.timing import backoff_delay
from trio_sse.errors import ClusterDataError, ClusterError, RedisUnavailable
from trio_sse.history import Entry
from trio_sse.model import ErrorEvent, dumps

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LogPosition:
    """Where the leader's monitor stands: the bytes before ``offset`` of the log generation
    whose first bytes hash to ``fingerprint`` produced every durable event of its history
    (``offset`` is a line boundary, not a chunk boundary). ``extra``: opaque JSON for a
    successor (per-file offsets, a reducer seed), at most 64 KiB."""

    offset: int
    fingerprint: str
    extra: str = ""


class _HistoryView(Protocol):
    run: str

    @property
    def entries(self) -> Sequence[Entry]: ...


class _WatchedView(Protocol):
    version: int

    @property
    def value(self) -> Any: ...  # has .payload()

    async def wait_newer(self, version: int) -> None: ...


class LeaderView(Protocol):
    """What the publisher reads of the leader's monitor (``monitor.Monitor`` has it all)."""

    name: str
    history: _HistoryView
    status: _WatchedView
    progress: _WatchedView
    outage: ErrorEvent | None

    def subscribe(self, subscriber: Any, position: tuple[str, int] | None) -> Sequence[Entry]: ...

    def unsubscribe(self, subscriber: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class PublisherStatistics:
    steps: int  # publish calls that wrote
    entries: int  # durable entries written (re-sent ones Redis already had not counted)
    republishes: int  # full resends (Redis lost data, or asked to)
    redis_failures: int  # publish calls that could not reach Redis
    errors_dropped: int  # error events dropped while Redis was down (oldest first)
    lag: int  # durable entries of the history Redis does not have yet (as far as we know)


class Publisher:
    # Subscriber protocol: the fastest status pace this subscriber asks of the monitor.
    # Clients of other processes cannot ask the leader for theirs (not propagated), so the
    # publisher asks for the default client interval.
    interval: float

    def __init__(
        self,
        store: RedisStore,
        view: LeaderView,
        lease: Lease,
        *,
        interval: float = 5.0,
        position: Callable[[], LogPosition | None] | None = None,
        statistics: Callable[[], object] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.interval = interval
        self._store = store
        self._view = view
        self._lease = lease
        self._keys = lease.keys
        self._position = position
        self._statistics = statistics if statistics is not None else getattr(view, "statistics", None)
        self._rand = rand
        self._errors: deque[str] = deque()
        self._dirty = trio.Event()
        self._dirty.set()  # the first step at once: state, and what Redis has
        # What Redis holds of our history, as far as we know: the history object we wrote
        # from, its run, and the last ordinal Redis has (None: unknown — ask first).
        self._history: _HistoryView | None = None
        self._published: int | None = None
        self._steps = 0
        self._entries_written = 0
        self._republishes = 0
        self._redis_failures = 0
        self._errors_dropped = 0
        self._down = False

    # ------------------------------------------------------------ subscriber

    def offer(self, monitor: object, item: Entry | ErrorEvent) -> None:
        if isinstance(item, ErrorEvent):
            if len(self._errors) >= self._store.timing.errors_kept:
                self._errors.popleft()
                self._errors_dropped += 1
            self._errors.append(dumps(item.payload()))
        self._dirty.set()

    def republish(self) -> None:
        """Write the whole current run again (what Redis has already is skipped by ordinal).
        Called on a lease reclaim; the leader may call it too, e.g. after it re-read its log."""
        self._republishes += 1
        self._published = None
        self._dirty.set()

    def statistics(self) -> PublisherStatistics:
        entries = self._view.history.entries
        last = entry_n(self._keys.target, entries[-1]) if entries else 0
        lag = last - (self._published or 0) if self._history is self._view.history else last
        return PublisherStatistics(
            self._steps, self._entries_written, self._republishes, self._redis_failures, self._errors_dropped, max(0, lag)
        )

    # ------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Publish until cancelled (when the lease is lost, ``lead`` is)."""
        self._view.subscribe(self, None)  # its replay is the history, read directly
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch, self._view.status)
                nursery.start_soon(self._watch, self._view.progress)
                nursery.start_soon(self._watch_reclaims)
                task_status.started()
                await self._write_loop()
                nursery.cancel_scope.cancel()
        finally:
            self._view.unsubscribe(self)

    async def _watch(self, watched: _WatchedView) -> None:
        seen = watched.version
        while True:
            await watched.wait_newer(seen)
            seen = watched.version
            self._dirty.set()

    async def _watch_reclaims(self) -> None:
        seen = self._lease.reclaims
        while True:
            await self._lease.wait_reclaimed(seen)
            seen = self._lease.reclaims
            self.republish()

    async def _write_loop(self) -> None:
        timing = self._store.timing
        attempt = 0
        while True:
            await self._dirty.wait()
            self._dirty = trio.Event()
            while self._lease.held:
                step, history, errors = self._next_step()
                try:
                    result = await self._store.publish(self._keys, self._lease.token, step)
                except (RedisUnavailable, ClusterDataError) as exc:
                    self._failed(exc)
                    await trio.sleep(backoff_delay(attempt, first=timing.backoff_first, cap=timing.backoff_cap, rand=self._rand))
                    attempt += 1
                    continue
                attempt = 0
                if self._down:
                    self._down = False
                    log.info("publishing target %s again", self._keys.target)
                if result.fenced:
                    self._lease.lose("publish fenced: another process holds the lease")
                    return
                if result.vacant:
                    try:
                        if not await self._lease.confirm():
                            return
                    except RedisUnavailable as exc:
                        self._failed(exc)
                        await trio.sleep(backoff_delay(0, first=timing.backoff_first, cap=timing.backoff_cap, rand=self._rand))
                    continue
                if self._history is not history:
                    self._history = history
                self._published = result.published
                if result.gap:
                    continue
                self._steps += 1
                for _ in range(errors):
                    self._errors.popleft()
                if step.state and not self._pending():
                    break

    def _failed(self, exc: Exception) -> None:
        self._redis_failures += 1
        if not self._down:
            self._down = True
            log.warning("publishing target %s: %s (retrying; the monitor goes on)", self._keys.target, exc)

    def _pending(self) -> bool:
        """Durable entries of the current history Redis does not have yet."""
        history = self._view.history
        if history is not self._history or self._published is None:
            return True
        entries = history.entries
        return bool(entries) and entry_n(self._keys.target, entries[-1]) > self._published

    def _next_step(self) -> tuple[PublishStep, _HistoryView, int]:
        """The next step, from a synchronous snapshot of the view: (step, the history it
        writes from, how many queued errors it carries)."""
        view = self._view
        current = view.history
        chunk = self._store.timing.publish_chunk
        old = self._history
        if old is not None and old is not current and old.run and self._published is not None:
            # The monitor started a new run: first the rest of the previous one, if any.
            tail = self._after(old, self._published, chunk)
            if tail:
                return PublishStep(run=old.run, entries=tail, state=False), old, 0
        if old is not current:
            self._published = None
        if self._published is None:
            # Unknown: a state-only step tells us what Redis has of this run.
            return self._state_step(current, ()), current, len(self._errors)
        entries = self._after(current, self._published, chunk)
        return self._state_step(current, entries), current, len(self._errors)

    def _after(self, history: _HistoryView, published: int, limit: int) -> list[tuple[int, Entry]]:
        entries = history.entries
        if not entries:
            return []
        first = entry_n(self._keys.target, entries[0])
        start = published + 1 - first
        if start < 0:
            raise ClusterError(
                f"target {self._keys.target}: history starts at event {first} but redis has only "
                f"{published}: the events between cannot be republished"
            )
        return [(first + i, e) for i, e in enumerate(entries[start : start + limit], start)]

    def _state_step(self, history: _HistoryView, entries: Sequence[tuple[int, Entry]]) -> PublishStep:
        view = self._view
        checkpoint = None
        last = entry_n(self._keys.target, history.entries[-1]) if history.entries else 0
        reaches_end = (entries[-1][0] if entries else self._published) == last
        if history.run and self._position is not None and reaches_end and self._published is not None:
            pos = self._position()
            if pos is not None:
                checkpoint = Checkpoint(history.run, last, pos.offset, pos.fingerprint, pos.extra)
        return PublishStep(
            run=history.run,
            entries=entries,
            status=dumps(view.status.value.payload()),
            progress=dumps(view.progress.value.payload()),
            outage=view.outage.message if view.outage is not None else None,
            stats=self._stats(),
            errors=list(self._errors),
            checkpoint=checkpoint,
        )

    def _stats(self) -> dict[str, int]:
        if self._statistics is None:
            return {}
        s = self._statistics()
        if not dataclasses.is_dataclass(s) or isinstance(s, type):
            return {}
        return {k: v for k, v in dataclasses.asdict(s).items() if type(v) is int}
