"""One monitor per target, shared by every client (SPEC §3).

It follows the target's log once (source → parser → state + history), probes the host once
per interval (the fastest any subscriber asked for; slowly when nobody listens), and fans
out to subscribers:

* durable events (``task_complete``, ``run_complete``) and ``error`` events are *offered* to
  every subscriber without waiting (``Subscriber.offer``); a subscriber that cannot take one
  drops itself — a slow client never slows the monitor or anyone else;
* ``status`` and ``progress`` are *state*: the monitor keeps the current value and its frame
  (encoded once), bumps a version and wakes waiters; each client's own task picks up the
  newest value at its own pace (coalescing for free).

All state changes happen synchronously inside one Trio task, so a subscriber that registers
and reads the history in the same step (no ``await`` between) sees no gap and no duplicate.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Generic, Protocol, TypeVar

import trio

from trio_sse.history import Entry, History, run_id_for
from trio_sse.logparse import (
    LogParser,
    ParsedEvent,
    PhaseSeen,
    RunFinished,
    RunStarted,
    ServerReady,
    StepStarted,
    TaskFinished,
    TasksCounted,
    TaskStarted,
)
from trio_sse.model import ErrorEvent, Progress, RunComplete, RunSummary, Status, TaskComplete, dumps
from trio_sse.sources import LogBytes, LogItem, LogReset, ProbeResult, Source, SourceDown, SourceUp
from trio_sse.sse import encode_event

# A run's id is a hash of its first bytes: the first RUN_KEY_BYTES of the file generation, or
# fewer when the first durable event comes earlier (it needs its id then). Both cut points are
# positions in the log, not chunk boundaries, so the same log always gives the same ids — while
# two runs whose logs open with the same banner line (dockur prints one) still differ.
RUN_KEY_BYTES = 4096


class Subscriber(Protocol):
    """What the monitor needs of a client: an interval, and a non-blocking offer."""

    interval: float

    def offer(self, monitor: Monitor, item: Entry | ErrorEvent) -> None:
        """Take the item now or drop yourself; never block, never raise."""


T = TypeVar("T", Status, Progress)


class Watched(Generic[T]):
    """A value with a version and its frame encoded once; waiters wake on change."""

    __slots__ = ("value", "frame", "version", "_changed", "_event")

    def __init__(self, value: T, event: str) -> None:
        self._event = event
        self.version = 0
        self._changed = trio.Event()
        self.value = value
        self.frame = encode_event(dumps(value.payload()), event=event)  # type: ignore[attr-defined]

    def set(self, value: T) -> bool:
        if value == self.value:
            return False
        self.value = value
        self.frame = encode_event(dumps(value.payload()), event=self._event)  # type: ignore[attr-defined]
        self.version += 1
        self._changed.set()
        self._changed = trio.Event()
        return True

    async def wait_newer(self, version: int) -> None:
        while self.version <= version:
            await self._changed.wait()


@dataclass(frozen=True, slots=True)
class MonitorStatistics:
    bytes_read: int
    lines: int
    parse_errors: int
    overlong_lines: int
    runs: int
    outages: int
    subscribers: int


class Monitor:
    def __init__(
        self,
        name: str,
        source: Source,
        *,
        success_threshold: float = 1.0,
        vnc_url: str | None = None,
        idle_probe_seconds: float = 60.0,
        parser_factory: Callable[[], LogParser] = LogParser,
    ) -> None:
        self.name = name
        self.source = source
        self._threshold = success_threshold
        self._vnc_url = vnc_url
        self._idle_probe = idle_probe_seconds
        self._parser_factory = parser_factory
        self._subscribers: dict[Subscriber, None] = {}  # insertion-ordered set
        # How many subscribers asked for each interval: the fastest is found without a scan
        # of every subscriber (a scan per subscribe made 10 000 connects quadratic).
        self._intervals: Counter[float] = Counter()
        self._probe_wakeup = trio.Event()
        # Log-derived state of the current run.
        self._parser = parser_factory()
        self._run_key: bytearray | None = bytearray()  # None once the run id is known
        self.history = History(name, "")
        self.summary = RunSummary()
        self.run_complete: RunComplete | None = None
        self._log_phase: str | None = None
        self._log_ready: bool | None = None
        self._started_any = False
        # Source/probe-derived state.
        self._source_up = True
        self.outage: ErrorEvent | None = None  # the current outage's error event, if any
        self._probe = ProbeResult(connected=True)
        self._outages = 0
        self._runs = 0
        self._bytes = 0
        self.last_read_at: float | None = None  # trio time new log bytes last arrived (/metrics)
        self._retired_stats = (0, 0, 0)  # lines, parse errors, overlong lines of past parsers
        self.status = Watched(self._compose_status(), "status")
        self.progress = Watched(Progress(target=name), "progress")

    # ----------------------------------------------------------------- running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow and probe until cancelled."""
        # 16 items: the source reads ahead at most this many chunks while we parse.
        send, receive = trio.open_memory_channel[LogItem](16)
        async with trio.open_nursery() as nursery:
            run_source = getattr(self.source, "run", None)
            if run_source is not None:  # sources with a long-lived connection (SSH)
                await nursery.start(run_source)
            nursery.start_soon(self._consume, receive)
            await nursery.start(self.source.follow, send)
            nursery.start_soon(self._probe_loop)
            task_status.started()

    async def _consume(self, receive: trio.MemoryReceiveChannel[LogItem]) -> None:
        async with receive:
            async for item in receive:
                if isinstance(item, LogBytes):
                    self.last_read_at = trio.current_time()
                self.apply(item)

    def apply(self, item: LogItem) -> None:
        """Apply one item from the source (synchronous: state changes are atomic)."""
        if isinstance(item, LogBytes):
            self._bytes += len(item.data)
            self._feed(item.data)
        elif isinstance(item, LogReset):
            self._retire_parser()
            self._parser = self._parser_factory()
            self._start_run(None)
        elif isinstance(item, SourceDown):
            if self._source_up:
                self._source_up = False
                self._outages += 1
                self.status.set(self._compose_status())
                # Kept while the outage lasts: a client that connects during it is told why.
                self.outage = ErrorEvent(self.name, item.message)
                self._publish(self.outage)
        elif isinstance(item, SourceUp):
            if not self._source_up:
                self._source_up = True
                self.outage = None
                # The link is back now, whatever a probe taken during the outage saw (the next
                # probe fills in the rest; without subscribers it may be a minute away).
                self._probe = replace(self._probe, connected=True)
                self.status.set(self._compose_status())

    def _feed(self, data: bytes) -> None:
        key = self._run_key
        if key is not None and len(key) < RUN_KEY_BYTES:
            key += data[: RUN_KEY_BYTES - len(key)]
        self.apply_parsed(self._parser.feed(data))
        if self._run_key is not None and len(self._run_key) >= RUN_KEY_BYTES:
            self._name_run(RUN_KEY_BYTES)
            self.progress.set(replace(self.progress.value, run=self.history.run))

    def _name_run(self, limit: int) -> None:
        assert self._run_key is not None and not len(self.history)
        self.history.run = run_id_for(bytes(self._run_key[:limit]))
        self._run_key = None

    def apply_parsed(self, events: Sequence[ParsedEvent]) -> None:
        progress = self.progress.value
        status_dirty = False
        for ev in events:
            if isinstance(ev, (TaskFinished, RunFinished)) and self._run_key is not None:
                self._name_run(min(ev.offset, RUN_KEY_BYTES))  # its id needs the run's name
                progress = replace(progress, run=self.history.run)
            if isinstance(ev, TaskFinished):
                result = self._result(ev)
                self.summary.add(result)
                self._publish_durable(result)
                progress = replace(
                    progress,
                    tasks_completed=max(progress.tasks_completed + 1, self.summary.tasks_completed),
                    current_task=None,
                    current_domain=None,
                    current_step=None,
                )
            elif isinstance(ev, TaskStarted):
                self._started_any = True
                progress = replace(
                    progress, current_task=ev.task_id, current_domain=ev.domain, current_step=None
                )
            elif isinstance(ev, StepStarted):
                progress = replace(progress, current_step=ev.step)
            elif isinstance(ev, RunStarted):
                if not ev.same_run and (len(self.history) or self.run_complete is not None):
                    # A second run appended to the same file: a new run, new ids.
                    self.progress.set(progress)
                    if self._run_key is not None:
                        self._name_run(min(ev.offset, RUN_KEY_BYTES))
                    self._start_run(run_id_for(b"", f"{self.history.run}@{ev.offset}"))
                    progress = self.progress.value
                progress = replace(progress, total_tasks=ev.total_tasks)
            elif isinstance(ev, TasksCounted):
                progress = replace(
                    progress,
                    tasks_completed=max(ev.completed, self.summary.tasks_completed),
                    total_tasks=ev.total,
                )
            elif isinstance(ev, RunFinished):
                if self.run_complete is None:
                    average = ev.average_score
                    if average is None or not math.isfinite(average):
                        average = self.summary.average_score
                    done = RunComplete(
                        target=self.name,
                        tasks_completed=self.summary.tasks_completed,
                        total_tasks=progress.total_tasks,
                        tasks_passed=self.summary.tasks_passed,
                        average_score=average,
                    )
                    self.run_complete = done
                    self._publish_durable(done)
                    progress = replace(
                        progress, finished=True, current_task=None, current_domain=None, current_step=None
                    )
            elif isinstance(ev, ServerReady):
                self._log_ready = ev.ready
                status_dirty = True
            elif isinstance(ev, PhaseSeen):
                self._log_phase = ev.phase
                status_dirty = True
        self.progress.set(progress)
        if status_dirty or (self._started_any and self.status.value.phase == "unknown"):
            self.status.set(self._compose_status())

    def _result(self, ev: TaskFinished) -> TaskComplete:
        score = ev.score if ev.score is not None and math.isfinite(ev.score) else None
        return TaskComplete(
            target=self.name,
            task_id=ev.task_id,
            # Success only from a real score; a task that raised never succeeded.
            success=ev.error is None and score is not None and score >= self._threshold,
            score=score,
            domain=ev.domain,
            steps=ev.steps,
            error=ev.error,
        )

    def _start_run(self, run: str | None) -> None:
        """A new run: ``run`` is its id, or None for a new file generation whose id comes
        from its first bytes (``_name_run``)."""
        self._runs += 1
        self._run_key = bytearray() if run is None else None
        self.history = History(self.name, run or "")
        self.summary = RunSummary()
        self.run_complete = None
        self._started_any = False
        self.progress.set(Progress(target=self.name, run=run, running=self._probe.running))

    def _retire_parser(self) -> None:
        s = self._parser.statistics
        lines, errors, overlong = self._retired_stats
        self._retired_stats = (lines + s.lines, errors + s.parse_errors, overlong + s.overlong_lines)

    # ----------------------------------------------------------------- status

    def _compose_status(self) -> Status:
        p = self._probe
        phase = p.phase or self._log_phase or ("ready" if self._started_any else "unknown")
        waa_ready = p.waa_ready if p.waa_ready is not None else bool(self._log_ready)
        connected = self._source_up and p.connected
        if p.probe_status is not None:
            probe_status = p.probe_status
        elif waa_ready:
            probe_status = "ready"
        else:
            probe_status = "Not responding" if self._log_ready is False else "unknown"
        return Status(
            target=self.name,
            connected=connected,
            phase=phase if connected else "unknown",
            waa_ready=waa_ready and connected,
            probe_status=probe_status,
            vnc_url=p.vnc_url or self._vnc_url,
        )

    def apply_probe(self, result: ProbeResult) -> None:
        self._probe = result
        self.status.set(self._compose_status())
        if result.running != self.progress.value.running:
            self.progress.set(replace(self.progress.value, running=result.running))

    def probe_interval(self) -> float:
        if not self._intervals:
            return self._idle_probe
        return min(self._intervals)

    async def _probe_loop(self) -> None:
        while True:
            last = trio.current_time()
            # A probe is bounded in time; a hung host must not stall the loop.
            with trio.move_on_after(max(2.0, self.probe_interval())):
                self.apply_probe(await self.source.probe())
            # Sleep for the current interval; when a faster client arrives, the deadline moves
            # to `last + its interval` (which may already have passed: probe at once).
            deadline = last + self.probe_interval()
            while trio.current_time() < deadline:
                with trio.move_on_at(deadline):
                    await self._probe_wakeup.wait()
                    self._probe_wakeup = trio.Event()
                    deadline = min(deadline, last + self.probe_interval())

    # ----------------------------------------------------------------- fan-out

    def subscribe(self, subscriber: Subscriber, position: tuple[str, int] | None) -> Sequence[Entry]:
        """Register and return the durable entries after ``position`` — atomically."""
        faster = subscriber.interval < self.probe_interval()
        if subscriber not in self._subscribers:
            self._subscribers[subscriber] = None
            self._intervals[subscriber.interval] += 1
        if faster:
            self._probe_wakeup.set()
        return list(self.history.after(position))

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            del self._subscribers[subscriber]
            self._intervals[subscriber.interval] -= 1
            if self._intervals[subscriber.interval] <= 0:
                del self._intervals[subscriber.interval]

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def _publish_durable(self, event: TaskComplete | RunComplete) -> None:
        self._publish(self.history.append(event))

    def _publish(self, item: Entry | ErrorEvent) -> None:
        # Copy: a subscriber may unsubscribe itself while being offered an item.
        for subscriber in list(self._subscribers):
            subscriber.offer(self, item)

    # ----------------------------------------------------------------- views

    def snapshot(self) -> dict[str, object]:
        return {
            "status": self.status.value.payload(),
            "progress": self.progress.value.payload(),
            "results": [e.event.payload() for e in self.history.entries if isinstance(e.event, TaskComplete)],
            "run": {
                "id": self.history.run,
                "tasks_passed": self.summary.tasks_passed,
                "tasks_completed": self.summary.tasks_completed,
                "average_score": self.summary.average_score,
                "complete": self.run_complete.payload() if self.run_complete else None,
            },
        }

    def statistics(self) -> MonitorStatistics:
        s = self._parser.statistics
        lines, errors, overlong = self._retired_stats
        return MonitorStatistics(
            bytes_read=self._bytes,
            lines=lines + s.lines,
            parse_errors=errors + s.parse_errors,
            overlong_lines=overlong + s.overlong_lines,
            runs=self._runs,
            outages=self._outages,
            subscribers=len(self._subscribers),
        )
