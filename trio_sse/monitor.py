"""One monitor per target, shared by every client (SPEC §3): the tasks, the source and the
fan-out around the target's pure ``runstate.RunState``.

It follows the target's log once (source → ``RunState.log``), probes the host once per
interval (the fastest any subscriber asked for; slowly when nobody listens), and fans out what
the reducer returns to subscribers:

* durable events (``task_complete``, ``run_complete``) and ``error`` events are *offered* to
  every subscriber without waiting (``Subscriber.offer``); a subscriber that cannot take one
  drops itself — a slow client never slows the monitor or anyone else;
* ``status`` and ``progress`` are *state*: the monitor keeps the current value and its frame
  (encoded once), bumps a version and wakes waiters; each client's own task picks up the
  newest value at its own pace (coalescing for free).

All state changes happen synchronously inside one Trio task (apply an input to the reducer,
publish its outputs, update the watched values), so a subscriber that registers and reads the
history in the same step (no ``await`` between) sees no gap and no duplicate. Must not: parse
the log or decide what a run is (``runstate`` does), or know about HTTP.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import trio

from trio_sse.history import Entry, History, Position, Replay
from trio_sse.logparse import LogParser, ParsedEvent
from trio_sse.model import ErrorEvent, Progress, RunComplete, RunSummary, Status, dumps
from trio_sse.runstate import RUN_KEY_BYTES, Output, RunState
from trio_sse.results import Latest, Results
from trio_sse.sources import CurrentTask, LogBytes, LogItem, ProbeResult, Source
from trio_sse.sse import encode_event

__all__ = ["RUN_KEY_BYTES", "Monitor", "MonitorStatistics", "Subscriber", "Watched"]


class Subscriber(Protocol):
    """What the monitor needs of a client: an interval, and a non-blocking offer."""

    interval: float

    def offer(self, monitor: Monitor, item: Output) -> None:
        """Take the item now or drop yourself; never block, never raise (a ``Live`` step
        carries its frame; a subscriber that does not want steps ignores it)."""


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
        lanes: bool = False,
        parser_factory: Callable[[], LogParser] = LogParser,
        results: Results | None = None,
    ) -> None:
        self.name = name
        self.source = source
        # The target's results folder (SPEC §8): told which tasks run now (``current_tasks``,
        # a new set whenever a worker starts or ends a task), it sends their steps back as items.
        self.results = results
        self.current_tasks: Latest[frozenset[CurrentTask]] = Latest(frozenset())
        self.state = RunState(
            name, success_threshold=success_threshold, vnc_url=vnc_url, lanes=lanes, parser_factory=parser_factory
        )
        self._idle_probe = idle_probe_seconds
        self._subscribers: dict[Subscriber, None] = {}  # insertion-ordered set
        # How many subscribers asked for each interval: the fastest is found without a scan
        # of every subscriber (a scan per subscribe made 10 000 connects quadratic).
        self._intervals: Counter[float] = Counter()
        self._probe_wakeup = trio.Event()
        self.last_read_at: float | None = None  # trio time new log bytes last arrived (/metrics)
        self.status = Watched(self.state.status, "status")
        self.progress = Watched(self.state.progress, "progress")

    # ----------------------------------------------------------------- the reducer's state

    @property
    def history(self) -> History:
        return self.state.history

    @property
    def summary(self) -> RunSummary:
        return self.state.summary

    @property
    def run_complete(self) -> RunComplete | None:
        return self.state.run_complete

    @property
    def outage(self) -> ErrorEvent | None:
        return self.state.outage

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
            if self.results is not None:
                await nursery.start(self.results.run, send.clone(), self.current_tasks)
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
        self._publish(self.state.log(item))

    def apply_parsed(self, events: Sequence[ParsedEvent], path: str = "") -> None:
        """Apply parsed log events (benchmarks and tests drive the monitor this way)."""
        self._publish(self.state.parsed(events, path))

    def apply_probe(self, result: ProbeResult) -> None:
        self._publish(self.state.probe(result))

    def set_running(self, running: bool | None) -> None:
        """This process runs the benchmark itself (``serve --simulate``): it is running while
        ``running`` is True, whatever a process check says; None gives the check back."""
        self.state.running_override = running
        self._publish(self.state.probe(self.state.last_probe))

    def _publish(self, outputs: Sequence[Output]) -> None:
        for item in outputs:
            # Copy: a subscriber may unsubscribe itself while being offered an item.
            for subscriber in list(self._subscribers):
                subscriber.offer(self, item)
        self.status.set(self.state.status)
        self.progress.set(self.state.progress)
        self.current_tasks.set(self.state.current_tasks())

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

    def subscribe(self, subscriber: Subscriber, position: Position | None) -> Replay:
        """Register and return the durable entries after ``position`` — atomically (a view
        of the history, not a copy)."""
        faster = subscriber.interval < self.probe_interval()
        if subscriber not in self._subscribers:
            self._subscribers[subscriber] = None
            self._intervals[subscriber.interval] += 1
        if faster:
            self._probe_wakeup.set()
        return self.history.after(position)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            del self._subscribers[subscriber]
            self._intervals[subscriber.interval] -= 1
            if self._intervals[subscriber.interval] <= 0:
                del self._intervals[subscriber.interval]

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    # ----------------------------------------------------------------- views

    def snapshot(self) -> dict[str, object]:
        summary, done = self.summary, self.run_complete
        return {
            "status": self.status.value.payload(),
            "progress": self.progress.value.payload(),
            "results": [r.payload() for r in self.state.results()],
            "run": {
                "id": self.history.run,
                "tasks_passed": summary.tasks_passed,
                "tasks_completed": summary.tasks_completed,
                "average_score": summary.average_score,
                "complete": done.payload() if done else None,
            },
        }

    def rerun(self) -> dict[str, list[str]]:
        """The current run's infrastructure failures, as WAA's task list (``/api/rerun``)."""
        return self.state.rerun()

    def statistics(self) -> MonitorStatistics:
        s = self.state.statistics()
        return MonitorStatistics(
            bytes_read=s.bytes_read,
            lines=s.lines,
            parse_errors=s.parse_errors,
            overlong_lines=s.overlong_lines,
            runs=s.runs,
            outages=s.outages,
            subscribers=len(self._subscribers),
        )
