"""The leader's side: what the local monitor of a target knows, written to Redis (SPEC §10).

``Publisher(store, view, lease)`` runs inside ``lead(lease)`` next to the monitor it
publishes. It is a *subscriber* of that monitor (``offer`` never blocks: it only wakes the
writer; error events and step events are queued, at most ``errors_kept`` of each — steps are
news, not history: a client of a local monitor misses them while disconnected too) and
watches its ``status`` and
``progress``. It keeps no copy of the durable events: it reads the monitor's ``history``
(``run``, ``entries``) each time it writes, so whatever Redis lost — a step that failed
during an outage, everything after an empty restart — is written again from there
(``republish()``), and nothing is held twice in memory.

One writer task, one publish script call per step, steps back to back: a step carries the
durable entries Redis does not have yet (at most ``publish_chunk``), the newest status and
progress (older values that were never written are simply superseded — coalescing), the
queued error and step events, the source outage and the monitor's statistics, and the checkpoint
(``position()``: the byte offset, the first-bytes fingerprint and how many durable events
came before it — the monitor's newest resume point, for a successor) once Redis holds those
events, each checkpoint once. The snapshot of all that is taken synchronously, between two
awaits, so the checkpoint always matches the entries it goes with.

The script does the rest atomically: only while our token holds the lease (fencing), entries
only in order and never one Redis has already (by ordinal), the checkpoint only once Redis
has every entry it counts. What the publisher does with its reply:

* written → go on (another step at once if more is pending);
* gap (Redis has fewer entries than assumed: it lost data) → send again from what it has;
* lease vacant (lapsed or lost with Redis's data) → ``lease.confirm()`` takes it back if
  nobody led since (and counts a reclaim: republish) or loses it;
* fenced (another token holds it) → ``lease.lose()``: ``lead`` is cancelled;
* Redis unreachable → retry with capped back-off (newest values win); the monitor goes on.

Before writing a run's entries it asks what Redis has of that run (a step without state).
When Redis has *more* than the monitor's history — a new leader re-reading its log from the
first byte after a failover — status and progress are held back until the history has
caught up (at most ``catch_up_seconds``): no client sees progress run backwards. A wake-up
that brings nothing new (a watcher that woke after the step already carried its change) is
not written.

A run replaced while Redis was down: the rest of the previous run's entries is written
first (a step without state), then the new run — so a mirror's clients get the old run's
``run_complete`` before the new run starts. (Runs that began *and* ended while Redis was
down, before the publisher saw them, are not written: like a late client of a local monitor,
mirrors see the current run.)

Must not: block or slow the monitor (no awaits in ``offer``), drop a durable event, or talk to
Redis other than through ``RedisStore``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import trio

from trio_sse.cluster.codec import MAX_EXTRA, MAX_FINGERPRINT, Checkpoint, PublishStep, entry_n
from trio_sse.cluster.lease import Lease
from trio_sse.cluster.redis import RedisStore
from trio_sse.cluster.timing import backoff_delay
from trio_sse.errors import ClusterDataError, ClusterError, RedisUnavailable
from trio_sse.history import Entry, Position
from trio_sse.model import ErrorEvent, dumps
from trio_sse.runstate import Live

if TYPE_CHECKING:
    from trio_sse.monitor import ResumePoint

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LogPosition:
    """Where the leader's monitor stands: the bytes before ``offset`` of the log generation
    whose first bytes hash to ``fingerprint`` produced the first ``count`` durable events of
    its history (None: every one; ``offset`` is a line boundary, not a chunk boundary).
    ``extra``: opaque JSON for a successor (per-file offsets, a reducer seed), at most
    ``codec.MAX_EXTRA``. ``monitor.ResumePoint`` has the same fields."""

    offset: int
    fingerprint: str
    extra: str = ""
    count: int | None = None  # durable events before ``offset``; None: all of the history now


class _HistoryView(Protocol):
    @property
    def run(self) -> str: ...

    @property
    def entries(self) -> Sequence[Entry]: ...


class _WatchedView(Protocol):
    @property
    def version(self) -> int: ...

    @property
    def value(self) -> Any: ...  # has .payload()

    async def wait_newer(self, version: int) -> None: ...


class LeaderView(Protocol):
    """What the publisher reads of the leader's monitor (``monitor.Monitor`` has it all)."""

    @property
    def name(self) -> str: ...

    @property
    def history(self) -> _HistoryView: ...

    @property
    def status(self) -> _WatchedView: ...

    @property
    def progress(self) -> _WatchedView: ...

    @property
    def outage(self) -> ErrorEvent | None: ...

    def subscribe(self, subscriber: Any, position: Position | None) -> Sequence[Entry]: ...

    def unsubscribe(self, subscriber: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class PublisherStatistics:
    steps: int  # publish calls that wrote
    entries: int  # durable entries written (re-sent ones Redis already had not counted)
    republishes: int  # full resends (Redis lost data, or asked to)
    redis_failures: int  # publish calls that could not reach Redis
    errors_dropped: int  # error (and step) events dropped while Redis was down (oldest first)
    lag: int  # durable entries of the history Redis does not have yet (as far as we know)
    holding: bool  # state held back: Redis has more of this run than our history (re-reading)


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
        position: Callable[[], LogPosition | ResumePoint | None] | None = None,
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
        self._live_steps: deque[str] = deque()
        self._dirty = trio.Event()
        self._dirty.set()  # the first step at once: state, and what Redis has
        # What Redis holds of our history, as far as we know: the history object we wrote
        # from, its run, and the last ordinal Redis has (None: unknown — ask first).
        self._history: _HistoryView | None = None
        self._redis_run: str | None = None  # the run Redis holds events of (None: unknown)
        self._published: int | None = None  # the last ordinal Redis holds of it
        self._behind = False  # Redis has more of our run than our history (re-reading)
        self._hold_until = math.inf  # set when running: the end of the catch-up hold
        self._written: tuple[object, ...] | None = None  # the last state step's signature
        self._checkpointed: tuple[str, int, int] | None = None  # the last checkpoint written
        self._too_big = False  # a position over codec.MAX_EXTRA was skipped (said once)
        self._steps = 0
        self._entries_written = 0
        self._republishes = 0
        self._redis_failures = 0
        self._errors_dropped = 0
        self._down = False

    # ------------------------------------------------------------ subscriber

    def offer(self, monitor: object, item: Entry | ErrorEvent | Live) -> None:
        if isinstance(item, (ErrorEvent, Live)):
            queue = self._errors if isinstance(item, ErrorEvent) else self._live_steps
            if len(queue) >= self._store.timing.errors_kept:
                queue.popleft()
                self._errors_dropped += 1
            queue.append(dumps(item.payload() if isinstance(item, ErrorEvent) else item.event.payload()))
        self._dirty.set()

    def republish(self) -> None:
        """Write the whole current run again (what Redis has already is skipped by ordinal).
        Called on a lease reclaim (Redis may have lost everything); the leader may call it
        too. This is "the function the leader calls with its current history": the history
        is the monitor's own, read at the next step."""
        self._republishes += 1
        self._published = None
        self._redis_run = None
        self._written = None
        self._checkpointed = None
        self._dirty.set()

    def statistics(self) -> PublisherStatistics:
        history = self._view.history
        last = self._last_n(history)
        lag = last - (self._published or 0) if self._known(history) else last
        return PublisherStatistics(
            self._steps,
            self._entries_written,
            self._republishes,
            self._redis_failures,
            self._errors_dropped,
            max(0, lag),
            self._holding,
        )

    # ------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Publish until cancelled (when the lease is lost, ``lead`` is)."""
        self._hold_until = trio.current_time() + self._store.timing.catch_up_seconds
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
            deadline = self._hold_until if self._holding else math.inf
            with trio.move_on_at(deadline):
                await self._dirty.wait()
            self._dirty = trio.Event()
            while self._lease.held:
                plan = self._next_step()
                if plan is None:
                    break  # holding back state while catching up, and nothing else to write
                step, history, errors, steps = plan
                signature = self._signature(history)  # taken with the step, before any await
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
                before = self._published if self._redis_run == step.run and self._published is not None else 0
                self._history = history
                self._redis_run = result.run
                self._published = result.published
                if result.gap:
                    continue
                self._steps += 1
                self._entries_written += sum(1 for n, _ in step.entries if before < n <= result.published)
                for _ in range(errors):
                    self._errors.popleft()
                for _ in range(steps):
                    self._live_steps.popleft()
                if step.state:
                    self._written = signature
                if step.checkpoint is not None:  # written once; again only after a republish
                    ck = step.checkpoint
                    self._checkpointed = (ck.run, ck.count, ck.offset)
                if step.state and not self._pending():
                    break

    def _failed(self, exc: Exception) -> None:
        self._redis_failures += 1
        if not self._down:
            self._down = True
            log.warning("publishing target %s: %s (retrying; the monitor goes on)", self._keys.target, exc)

    def _known(self, history: _HistoryView) -> bool:
        """Whether we know what Redis holds of ``history``'s (named) run."""
        return self._history is history and self._published is not None and self._redis_run == history.run

    def _pending(self) -> bool:
        """Durable entries of the current history Redis does not have yet."""
        history = self._view.history
        if not history.run:
            return False
        if not self._known(history):
            return True
        return self._last_n(history) > (self._published or 0)

    def _last_n(self, history: _HistoryView) -> int:
        entries = history.entries
        return entry_n(self._keys.target, entries[-1]) if entries else 0

    @property
    def _holding(self) -> bool:
        return self._behind and trio.current_time() < self._hold_until

    def _next_step(self) -> tuple[PublishStep, _HistoryView, int, int] | None:
        """The next step, from a synchronous snapshot of the view: (step, the history it
        writes from, how many queued errors and steps it carries); None when there is nothing to write
        now. Order: the previous run's unwritten tail; a probe (a step without state) when
        we do not know what Redis has of the current run; then entries with state — unless
        Redis already has more of this run than we do (a new leader re-reading its log):
        then state is held back until we catch up or ``catch_up_seconds`` pass."""
        current = self._view.history
        chunk = self._store.timing.publish_chunk
        old = self._history
        if old is not None and old is not current and old.run and self._redis_run == old.run and self._published is not None:
            tail = self._after(old, self._published, chunk)
            if tail:  # the monitor started a new run: first the rest of the previous one
                return PublishStep(run=old.run, entries=tail, state=False), old, 0, 0
        if current.run:
            if not self._known(current):
                return PublishStep(run=current.run, state=False), current, 0, 0
            assert self._published is not None
            entries = self._after(current, self._published, chunk)
            self._behind = self._published > self._last_n(current)
        else:  # not named yet: no entries; what matters is whether Redis has a run
            if self._redis_run is None or self._history is not current:
                return PublishStep(run="", state=False), current, 0, 0
            entries = []
            self._behind = bool(self._redis_run)
        if self._holding:
            return None
        if not entries and not self._errors and not self._live_steps and self._signature(current) == self._written:
            return None  # a wake-up for a change the previous step already carried
        return self._state_step(current, entries), current, len(self._errors), len(self._live_steps)

    def _signature(self, history: _HistoryView) -> tuple[object, ...]:
        """What a state step carries, as versions: equal → nothing new to write (statistics
        and the checkpoint ride along with the next change)."""
        view = self._view
        outage = view.outage.message if view.outage is not None else None
        return (id(history), history.run, self._last_n(history), view.status.version, view.progress.version, outage)

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
        after = entries[-1][0] if entries else self._published  # what Redis holds after the step
        if history.run and self._position is not None and after is not None:
            pos = self._position()
            # Without a count the position is the history's end; with one, an earlier place.
            count = getattr(pos, "count", None) if pos is not None else None
            count = last if count is None else count
            if pos is not None and count <= after and (history.run, count, pos.offset) != self._checkpointed:
                if len(pos.extra) > MAX_EXTRA or len(pos.fingerprint) > MAX_FINGERPRINT:
                    if not self._too_big:  # (a run of ~10 000 tasks): a successor re-reads the log
                        self._too_big = True
                        log.warning("target %s: resume point too large for redis (%d characters); not written",
                                    self._keys.target, len(pos.extra))  # fmt: skip
                else:
                    checkpoint = Checkpoint(history.run, count, pos.offset, pos.fingerprint, pos.extra)
        return PublishStep(
            run=history.run,
            entries=entries,
            status=dumps(view.status.value.payload()),
            progress=dumps(view.progress.value.payload()),
            outage=view.outage.message if view.outage is not None else None,
            stats=self._stats(),
            errors=list(self._errors),
            steps=list(self._live_steps),
            checkpoint=checkpoint,
        )

    def _stats(self) -> dict[str, int]:
        if self._statistics is None:
            return {}
        s = self._statistics()
        if not dataclasses.is_dataclass(s) or isinstance(s, type):
            return {}
        return {k: v for k, v in dataclasses.asdict(s).items() if type(v) is int}
