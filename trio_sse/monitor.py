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

Cluster mode (SPEC §10) asks two more things of a monitor of one file: ``position()`` — where a
successor could continue (the reducer's newest resume point, with the file's first bytes to
recognise it by) — and ``resume(extra, entries)`` before ``run`` — continue from such a
position: the reducer is seeded and the source starts at its byte offset, checking the
file's first bytes itself (other first bytes, or a shorter file: a ``LogReset``, read from 0).
A monitor of a glob does the same per file: its position has each file's place and first
bytes, and its source starts each file at its own offset (``follow(starts=…)``).

All state changes happen synchronously inside one Trio task (apply an input to the reducer,
publish its outputs, update the watched values), so a subscriber that registers and reads the
history in the same step (no ``await`` between) sees no gap and no duplicate. Must not: parse
the log or decide what a run is (``runstate`` does), or know about HTTP, the history database
or alerts.

**Observers** (given at construction: the hub's run history and alerts) are called
synchronously with what happened, right after the subscribers got it: each durable entry as a
``RunEvent`` (with the run's ``History`` it belongs to, and whether it is ``live``), each
``ErrorEvent``, the source's ``SourceDown`` / ``SourceUp``, a ``RunMeta`` when what is known
about the current run changes, and ``Stalled`` (issue 12's stall detector calls
``observe``). An observer must not block; one that raises is logged and counted, never
allowed to break the monitor.

**Live or replayed.** At start-up the log is read from its first byte: what it already held
was written before this server ran (a restart replays it). ``live`` turns true once the
source has caught up: no new log bytes for ``settle_seconds`` (the timer starts with the
monitor and restarts with every chunk; no source says "caught up" yet, see the README). A
monitor built with ``replay=False`` (the simulator's, which truncates its log) is live at once.
In cluster mode a new leader's monitor is told what the cluster already had of the current
run (``known=(run, n)``, from Redis): events 1..n of that run are never live (the previous
leader observed them), and its later events are live at once, replayed or not — they happened
while no process followed the target, and nobody has reported them yet.
"""

from __future__ import annotations

import base64
import inspect
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

import trio

from trio_sse.baseline import Baseline
from trio_sse.history import Entry, History, Position, Replay, run_id_for
from trio_sse.logparse import LogParser, ParsedEvent
from trio_sse.model import ErrorEvent, Progress, RunComplete, RunSummary, Status, dumps
from trio_sse.results import Results
from trio_sse.runstate import RUN_KEY_BYTES, Output, RunSeed, RunState
from trio_sse.sources import (
    CurrentTask,
    LogBytes,
    LogItem,
    LogReset,
    ProbeResult,
    Source,
    SourceDown,
    SourceUp,
    StepSeen,
)
from trio_sse.sources.fingerprint import HEAD_BYTES
from trio_sse.sse import encode_event
from trio_sse.versioned import Versioned

__all__ = [
    "HEAD_BYTES",
    "RUN_KEY_BYTES",
    "Monitor",
    "MonitorStatistics",
    "Observed",
    "Observer",
    "ResumePoint",
    "RunEvent",
    "RunMeta",
    "Stalled",
    "Subscriber",
    "Watched",
]

log = logging.getLogger("trio_sse")

# Seconds without new log bytes after which the monitor counts as caught up with what the log
# held at start-up (a local file is read in milliseconds; an SSH follow streams it in one burst).
DEFAULT_SETTLE_SECONDS = 1.0

FORECAST_PACE = 2.0  # seconds between two forecasts at most


class Subscriber(Protocol):
    """What the monitor needs of a client: an interval, and a non-blocking offer."""

    interval: float

    def offer(self, monitor: Monitor, item: Output) -> None:
        """Take the item now or drop yourself; never block, never raise (a ``Live`` step
        carries its frame; a subscriber that does not want steps ignores it)."""


@dataclass(frozen=True, slots=True)
class RunEvent:
    """A durable entry, for observers: ``log`` is the run's history it belongs to (not always
    the monitor's current one: a chunk can end one run and start the next), ``live`` is False
    for what the log already held when the monitor started (a replay)."""

    log: History
    entry: Entry
    live: bool


@dataclass(frozen=True, slots=True)
class RunMeta:
    """What is known about the current run, sent to observers when it changes (and once the
    run is named). ``model`` / ``agent`` / ``max_steps`` / ``started_at`` come from the
    reducer's ``run_info`` when it has one (the ``Args:`` line; see ``Monitor._run_meta``)."""

    target: str
    run: str
    total_tasks: int | None = None
    model: str | None = None
    agent: str | None = None
    max_steps: int | None = None
    started_at: str | None = None


@dataclass(frozen=True, slots=True)
class Stalled:
    """The run has not moved for ``seconds`` (SPEC §8). Issue 12's stall detector reports it
    with ``Monitor.observe``; ``episode`` tells stalls apart (e.g. the log offset)."""

    target: str
    run: str
    seconds: float
    task_id: str | None
    last_line: str | None
    episode: str


Observed = RunEvent | ErrorEvent | SourceDown | SourceUp | RunMeta | Stalled


class Observer(Protocol):
    def __call__(self, monitor: Monitor, item: Observed, /) -> None:
        """Take note; never block (the monitor's task is the event path)."""


T = TypeVar("T", Status, Progress)


class Watched(Versioned[T]):
    """A value with a version and its frame encoded once; waiters wake on change."""

    __slots__ = ("frame", "_event")

    def __init__(self, value: T, event: str) -> None:
        super().__init__(value)
        self._event = event
        self.frame = encode_event(dumps(value.payload()), event=event)  # type: ignore[attr-defined]

    def set(self, value: T) -> bool:
        if value == self.value:
            return False
        self.value = value
        self.frame = encode_event(dumps(value.payload()), event=self._event)  # type: ignore[attr-defined]
        self._bump()
        return True


class _Detached:
    """A run's history that is already gone from the reducer: just this one entry."""

    __slots__ = ("target", "run", "entries")

    def __init__(self, target: str, entry: Entry) -> None:
        self.target = target
        self.run = entry.id[len(target) + 1 :].partition("-")[0]  # "<target>:<run>-<place>"
        self.entries = (entry,)


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """``Monitor.position()``: the bytes before ``offset`` of the file whose first bytes hash to
    ``fingerprint`` produced the run's first ``count`` durable events; ``extra`` is the JSON a
    successor's ``Monitor.resume`` takes (the first bytes and the reducer's seed)."""

    offset: int
    fingerprint: str
    extra: str
    count: int


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
        stall_after: float = 600.0,
        lanes: bool = False,
        parser_factory: Callable[[], LogParser] = LogParser,
        observers: Sequence[Observer] = (),
        replay: bool = True,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
        results: Results | None = None,
        known: tuple[str, int] | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self._observers = tuple(observers)
        self.observer_errors = 0
        self._settle = settle_seconds
        # Set once what the log held at start-up has been read (see the module docstring).
        self.caught_up = trio.Event()
        if not replay:
            self.caught_up.set()
        # (cluster mode) The run and how many of its durable events the service already had
        # when this monitor started: see "Live or replayed".
        self._known = known
        self._meta: RunMeta | None = None
        # The target's results folder (SPEC §8): told which tasks run now (``current_tasks``,
        # a new set whenever a worker starts or ends a task), it sends their steps back as items.
        self.results = results
        self.current_tasks: Versioned[frozenset[CurrentTask]] = Versioned(frozenset())
        self.state = RunState(
            name, success_threshold=success_threshold, vnc_url=vnc_url, lanes=lanes, parser_factory=parser_factory
        )
        self._idle_probe = idle_probe_seconds
        self._stall_after = stall_after
        self._subscribers: dict[Subscriber, None] = {}  # insertion-ordered set
        # How many subscribers asked for each interval: the fastest is found without a scan
        # of every subscriber (a scan per subscribe made 10 000 connects quadratic).
        self._intervals: Counter[float] = Counter()
        self._probe_wakeup = trio.Event()
        self._results_changed = trio.Event()  # wakes the forecast
        self.last_read_at: float | None = None  # trio time new log bytes last arrived (/metrics)
        self.status = Watched(self.state.status, "status")
        self.progress = Watched(self.state.progress, "progress")
        self._lanes = lanes
        self._head = bytearray()  # the first HEAD_BYTES of the followed file (one file only)
        self._heads: dict[str, bytearray] = {}  # (several files) path → its first HEAD_BYTES
        self._start: tuple[int, bytes] | None = None  # (offset, first bytes) to follow from: resume()
        self._starts: dict[str, tuple[int, bytes]] | None = None  # (several files) the same per file
        self._position: tuple[RunSeed, ResumePoint] | None = None  # the last one made (cached)

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
            follow = self.source.follow
            if self._start is not None:
                offset, head = self._start
                follow = partial(follow, offset=offset, head=head)  # type: ignore[call-arg]
            elif self._starts is not None:
                follow = partial(follow, starts=self._starts)  # type: ignore[call-arg]
            await nursery.start(follow, send)
            nursery.start_soon(self._probe_loop)
            nursery.start_soon(self._forecast_loop)
            if self._stall_after > 0:
                nursery.start_soon(self._stall_loop)
            task_status.started()

    async def _consume(self, receive: trio.MemoryReceiveChannel[LogItem]) -> None:
        async with receive:
            settle_at = trio.current_time() + self._settle
            while not self.caught_up.is_set():
                with trio.move_on_at(settle_at):
                    try:
                        item = await receive.receive()
                    except trio.EndOfChannel:
                        return
                    if isinstance(item, LogBytes):
                        self.last_read_at = trio.current_time()
                        self.state.moved(self.last_read_at)
                        settle_at = self.last_read_at + self._settle
                    elif isinstance(item, StepSeen):
                        self.state.moved(trio.current_time())
                    self.apply(item)
                    continue
                self.caught_up.set()  # nothing new for settle_seconds: what follows is live
            async for item in receive:
                if isinstance(item, LogBytes):
                    self.last_read_at = trio.current_time()
                    self.state.moved(self.last_read_at)
                elif isinstance(item, StepSeen):
                    self.state.moved(trio.current_time())  # a new step: the run moves
                self.apply(item)

    @property
    def live(self) -> bool:
        """Whether what the monitor reads now happens now (not a replay of the log at start)."""
        return self.caught_up.is_set()

    def _is_live(self, run: str, entry: Entry) -> bool:
        known = self._known
        if known is not None and run == known[0]:
            return entry.seq > known[1]
        return self.live

    def apply(self, item: LogItem) -> None:
        """Apply one item from the source (synchronous: state changes are atomic)."""
        if not self._lanes:
            head = self._head
            if isinstance(item, LogReset):
                head.clear()
            elif isinstance(item, LogBytes) and item.offset == len(head) < HEAD_BYTES:
                head += item.data[: HEAD_BYTES - len(head)]
        elif isinstance(item, LogReset):
            self._heads[item.path] = bytearray()
        elif isinstance(item, LogBytes):
            head = self._heads.get(item.path)
            if head is not None and item.offset <= len(head) < min(HEAD_BYTES, item.offset + len(item.data)):
                head += item.data[len(head) - item.offset : HEAD_BYTES - item.offset]
        before = self.state.history
        self._publish(self.state.log(item), before)
        if self._observers and isinstance(item, (SourceDown, SourceUp)):
            self.observe(item)

    # ----------------------------------------------------------------- resuming (cluster mode)

    def position(self) -> ResumePoint | None:
        """Where a successor could continue this run (see the module docstring), or None: no
        resume point in the current run yet.

        Several files (a glob): ``extra`` is format 2 — the reducer's seed with each file's
        place (``LaneSeed``) and each file's first bytes (``heads``); ``offset`` is the sum
        of the files' offsets and ``fingerprint`` the hash of their first bytes."""
        seed = self.state.seed
        if seed is None or seed.run != self.history.run:
            return None
        if self._lanes:
            return self._lanes_position(seed)
        if not self._head:
            return None
        if self._position is None or self._position[0] is not seed:
            head = bytes(self._head)
            extra = json.dumps({"v": 1, "head": base64.b64encode(head).decode(), "seed": seed.encode()},
                               separators=(",", ":"), ensure_ascii=False)  # fmt: skip
            self._position = (seed, ResumePoint(seed.offset, run_id_for(head), extra, seed.count))
        return self._position[1]

    def _lanes_position(self, seed: RunSeed) -> ResumePoint | None:
        if seed.lanes is None:
            return None
        if self._position is None or self._position[0] is not seed:
            heads = {lane.path: bytes(self._heads.get(lane.path, b"")) for lane in seed.lanes}
            if any(lane.offset and len(heads[lane.path]) < min(lane.offset, HEAD_BYTES) for lane in seed.lanes):
                return None  # (cannot happen: the bytes before an offset were read)
            extra = json.dumps({"v": 2, "heads": {p: base64.b64encode(h).decode() for p, h in heads.items()},
                                "seed": seed.encode()}, separators=(",", ":"), ensure_ascii=False)  # fmt: skip
            fingerprint = run_id_for(b"".join(heads[lane.path] for lane in seed.lanes))
            self._position = (seed, ResumePoint(seed.offset, fingerprint, extra, seed.count))
        return self._position[1]

    def resume(self, extra: str, entries: Sequence[Entry]) -> None:
        """Before ``run``: continue from a ``position()`` another monitor of this file made
        (``extra``), with the run's first ``count`` durable ``entries``. The source then
        starts at its byte offset if the file's first bytes are still the same (else it sends
        a ``LogReset`` and the file is read from byte 0, a new run). ValueError, nothing
        changed, when ``extra`` or ``entries`` do not fit, or the source cannot start at an
        offset (its ``follow`` takes no ``offset`` and ``head``)."""
        if self._lanes:
            self._resume_lanes(extra, entries)
            return
        params = inspect.signature(self.source.follow).parameters
        if "offset" not in params or "head" not in params:
            raise ValueError(f"{self.source.description}: cannot start at an offset")
        try:
            raw = json.loads(extra)
            head = base64.b64decode(raw["head"], validate=True)
            seed = RunSeed.decode(raw["seed"])
            version = raw["v"]
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"not a resume position: {exc!r}") from None
        if version != 1 or not 0 < len(head) <= HEAD_BYTES:
            raise ValueError("not a resume position: unknown version or first bytes")
        self.state.resume(seed, entries)
        self._head[:] = head
        self._start = (seed.offset, head)
        self._resumed()

    def _resume_lanes(self, extra: str, entries: Sequence[Entry]) -> None:
        """``resume`` of a glob target: every file of the seed starts at its own offset, if its
        first bytes are still the same (``follow(starts=…)``; a source says it can with
        ``resumes_globs``)."""
        if not getattr(self.source, "resumes_globs", False):
            raise ValueError(f"{self.source.description}: cannot start at an offset (each file of a glob)")
        try:
            raw = json.loads(extra)
            version = raw["v"]
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"not a resume position: {exc!r}") from None
        if version == 1:
            raise ValueError(f"{self.source.description}: cannot start at an offset: a position of one file "
                             "(format 1), the target follows a glob")  # fmt: skip
        if version != 2:
            raise ValueError(f"not a resume position: unknown version {version!r}")
        try:
            heads = {p: base64.b64decode(h, validate=True) for p, h in raw["heads"].items()}
            seed = RunSeed.decode(raw["seed"])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"not a resume position: {exc!r}") from None
        if seed.lanes is None or set(heads) != {lane.path for lane in seed.lanes}:
            raise ValueError("not a resume position: the files' first bytes do not fit the seed")
        starts = {}
        for lane in seed.lanes:
            head = heads[lane.path]
            if len(head) > HEAD_BYTES or (lane.offset and len(head) < min(lane.offset, HEAD_BYTES)):
                raise ValueError(f"not a resume position: the first bytes of {lane.path!r}")
            starts[lane.path] = (lane.offset, head)
        self.state.resume(seed, entries)
        self._heads = {p: bytearray(h) for p, h in heads.items()}
        self._starts = starts
        self._resumed()

    def _resumed(self) -> None:
        if self._observers:  # the run history gets the run as the predecessor published it
            for entry in self.history.entries:  # (writes are idempotent by event id)
                self.observe(RunEvent(self.history, entry, False))
        self._results_changed.set()  # (the forecast)
        self._publish(())

    def apply_parsed(self, events: Sequence[ParsedEvent], path: str = "") -> None:
        """Apply parsed log events (benchmarks and tests drive the monitor this way)."""
        before = self.state.history
        self._publish(self.state.parsed(events, path), before)

    def apply_probe(self, result: ProbeResult) -> None:
        before = self.state.history
        self._publish(self.state.probe(result, trio.current_time()), before)

    def set_running(self, running: bool | None) -> None:
        """This process runs the benchmark itself (``serve --simulate``): it is running while
        ``running`` is True, whatever a process check says; None gives the check back."""
        self.state.running_override = running
        before = self.state.history
        self._publish(self.state.probe(self.state.last_probe, trio.current_time()), before)

    def _publish(self, outputs: Sequence[Output], before: History | None = None) -> None:
        """Offer each output to every subscriber and observer, then update the watched values.
        ``before``: the run's history before the input that made these outputs."""
        if before is None:
            before = self.state.history
        for item in outputs:
            # Copy: a subscriber may unsubscribe itself while being offered an item.
            for subscriber in list(self._subscribers):
                subscriber.offer(self, item)
            if isinstance(item, Entry):
                self._results_changed.set()  # (the forecast)
                if self._observers:
                    run_log = self._history_of(item, before)
                    self.observe(RunEvent(run_log, item, self._is_live(run_log.run, item)))
            elif isinstance(item, ErrorEvent) and self._observers:
                self.observe(item)
        self.status.set(self.state.status)
        self.progress.set(self.state.progress)
        self.current_tasks.set(self.state.current_tasks())
        if self._observers:
            meta = self._run_meta()
            if meta is not None and meta != self._meta:
                self._meta = meta
                self.observe(meta)

    def _history_of(self, entry: Entry, before: History) -> History:
        """The run ``entry`` belongs to: the current one, or — when this input ended a run and
        started another — the one before. (Two runs started by one input: the entry's own
        run could only be rebuilt from its id; ``_Detached`` keeps that one entry.)"""
        current = self.state.history
        if current is before or entry.id.startswith(f"{self.name}:{current.run}-"):
            return current
        if entry.id.startswith(f"{self.name}:{before.run}-"):
            return before
        return _Detached(self.name, entry)  # type: ignore[return-value]

    def _run_meta(self) -> RunMeta | None:
        """The current run's metadata, None until the run is named.

        HOOK for the parser's ``RunArgs`` (the ``Args:`` line): when the reducer exposes
        ``run_info`` — an object with ``model``, ``agent``, ``max_steps`` and optionally
        ``started_at`` of the current run (None when unknown) — its values are sent along
        (``storedb.RunInfo`` columns). Until then only the run id and total are known."""
        run = self.state.history.run
        if not run:
            return None
        info = getattr(self.state, "run_info", None)
        return RunMeta(
            target=self.name,
            run=run,
            total_tasks=self.state.progress.total_tasks,
            model=getattr(info, "model", None),
            agent=getattr(info, "agent", None),
            max_steps=getattr(info, "max_steps", None),
            started_at=getattr(info, "started_at", None),
        )

    def observe(self, item: Observed) -> None:
        """Hand ``item`` to every observer. An observer that raises is logged (once per
        monitor and observer) and counted; the monitor carries on."""
        for observer in self._observers:
            try:
                observer(self, item)
            except Exception:  # supervision boundary: an observer must not break the event path
                self.observer_errors += 1
                if self.observer_errors == 1:
                    log.exception("monitor %s: an observer failed (further failures are only counted)", self.name)

    def publish_error(self, message: str) -> ErrorEvent:
        """Send an ``error`` event about this target to every subscriber now (the hub's own
        news, e.g. the history database failing). Not durable, not sent to observers."""
        item = ErrorEvent(self.name, message)
        for subscriber in list(self._subscribers):
            subscriber.offer(self, item)
        return item

    def add_observer(self, observer: Observer) -> None:
        """One more observer (called after the others)."""
        self._observers = (*self._observers, observer)

    def set_baselines(self, candidates: Sequence[Baseline], *, previous: bool = False) -> None:
        """The runs to compare this target's run with, best first (``runstate``)."""
        self.state.set_baselines(candidates, previous=previous)
        self._results_changed.set()

    async def _forecast_loop(self) -> None:
        """``progress.forecast`` after new results, at most once per ``FORECAST_PACE``: it
        takes milliseconds, and the coalesced progress is sent no faster anyway."""
        while True:
            await self._results_changed.wait()
            self._results_changed = trio.Event()
            self.state.update_forecast()
            self._publish(())
            await trio.sleep(FORECAST_PACE)

    async def _stall_loop(self) -> None:
        """Look for a stall a few times per ``stall_after`` (and at least twice a minute, so
        ``progress.stalled`` counts up while it lasts)."""
        step = min(self._stall_after / 4, 30.0)
        while True:
            await trio.sleep(step)
            began = self.state.tick(trio.current_time(), self._stall_after)
            self._publish(began)
            stall = self.state.stall
            if began and stall is not None and self._observers:  # alerts: one per stall
                run = self.state.history.run
                self.observe(Stalled(self.name, run, stall.seconds, stall.task_id, stall.last_line, f"{run}@{stall.since:.3f}"))

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

    def task(self, task_id: str) -> tuple[dict[str, object], str | None] | None:
        """What the current run knows of ``task_id`` and its domain (``RunState.task``)."""
        return self.state.task(task_id)

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
