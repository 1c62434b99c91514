"""The state machine of one target's run, as a pure reducer (in the style of h11's connection).

Owns: turning what a target's source says — log bytes of each followed file, resets,
missing logs, outages — and what its probe sees into the run's state (``status``,
``progress``, the ``history`` of durable events with their stable ids, the ``summary``) and
the outputs to fan out: each new durable ``history.Entry`` and each ``ErrorEvent``, in order.
It holds a log parser per followed file and names runs (a hash of their first bytes, see
``RUN_KEY_BYTES``).

Usage (the monitor does exactly this, tests do it with plain tables)::

    state = RunState("vm1")
    outputs = state.log(LogReset("/x.log"))          # → []
    outputs = state.log(LogBytes(chunk, offset=0))   # → [Entry(task_complete …), …]
    state.probe(ProbeResult(connected=True, running=True))
    state.status, state.progress                      # the current values

**One file** (``lanes=False``, a plain log path): the run is the file's; a reset (truncated,
replaced, a newer file) starts a new run; so does a second run appended to the same file (a
``Worker`` line after results), with its own ids.

**Several files** (``lanes=True``, a glob): every followed file is a *lane* — one worker's log
(WAA writes ``normal-<worker>-<ts>.log`` per worker) with its own parser — and the lanes of a
run merge into it: each task once, ``tasks_completed`` never going back, the total the sum of
the lanes' task lists. A file of a worker the run already has (``sources.workers.worker_key``),
a reset of one of the run's files, or a new file after the run completed starts a new run;
bytes of files of a run that was left are ignored. The run completes when every lane has
logged its end. Ids carry each lane's count (``history``).

**Steps** (SPEC §2.2, §8): each executed action of a task is one ``step`` output (a ``Live``:
no id, not in the history, its frame encoded once), from the task's ``traj.jsonl``
(``StepSeen``, with the screenshot) or, while that is not being read, from the log's ``Step N:``
line (no screenshot) — never both: see ``_TaskSteps``. Steps also set the worker's current
step and action.

**Resume points** (cluster mode's failover, SPEC §10). One file: at each of the parser's
resume points (``LogParser.resume_point``: a record that starts while no task is open) the
reducer takes a ``RunSeed`` — the byte offset, how many durable events the run had, the
parser's state there, and its own log-derived state (progress, the run's facts, the lane,
the workers, each task's step bookkeeping, the run's task lists for the forecast).
``RunState(...).resume(seed, entries)`` with the run's first ``seed.count``
entries (as another process published them) then continues at ``seed.offset`` exactly as
this state would have: the same ids, the same payloads. Probe-derived state (connected,
running) is not part of a seed: the next probe gives it; nor are the baselines (the caller
sets them, as for any run) and the stall clock (the next bytes move the run).
Several files: no moment has every lane at a resume point, so each lane keeps its newest
point (or its first byte) and counts the events its parser gave since; after an input that
took a lane past a point the seed is the whole reducer then, plus a ``LaneSeed`` per file
(its offset, parser state and how many events from there were applied already: a resumed
lane drops that many as it reads them again). Format version 2 (``"v": 2``, ``lanes``).

Every call is synchronous and atomic: the monitor applies one input and publishes its outputs
without an ``await`` in between, so a subscriber that registers and reads the history in one
step sees no gap and no duplicate. Must not: do I/O, read a clock, import anything async, or
know about subscribers and encoding for the wire (the history encodes each entry once).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from trio_sse import forecast as _forecast
from trio_sse import waalog
from trio_sse.baseline import Baseline
from trio_sse.history import LANE_CHARS, Entry, History, run_id_for
from trio_sse.logparse import (
    Evaluating,
    InstructionSeen,
    Interrupted,
    LogParser,
    ParsedEvent,
    PhaseSeen,
    RateLimited,
    RunArgs,
    RunFinished,
    RunStarted,
    ServerReady,
    StepStarted,
    TaskFinished,
    TasksCounted,
    TaskStarted,
)
from trio_sse.model import (
    BaselineResult,
    ErrorEvent,
    Forecast,
    Progress,
    RunComplete,
    RunSummary,
    Status,
    Step,
    TaskComplete,
    Worker,
    dumps,
)
from trio_sse.sources import (
    CurrentTask,
    LogBytes,
    LogItem,
    LogMissing,
    LogReset,
    ProbeResult,
    SourceDown,
    SourceUp,
    StepSeen,
    TrajectoryFound,
)
from trio_sse.sources.workers import worker_key
from trio_sse.sse import encode_event
from trio_sse.trajectory import screenshot_url

# A run's (or lane's) id is a hash of its first bytes: the first RUN_KEY_BYTES of the file, or
# fewer when the first durable event comes earlier (it needs its id then). Both cut points are
# positions in the log, not chunk boundaries, so the same log always gives the same ids — while
# two runs whose logs open with the same banner line (dockur prints one) still differ.
RUN_KEY_BYTES = 4096

ACTION_CHARS = 2048  # of an agent's action kept for progress.action (SPEC §2.2: first 2 KiB)
# A run whose process is gone ends as interrupted once its log has been quiet this long (s).
INTERRUPT_QUIET = 60.0


@dataclass(frozen=True, slots=True)
class Live:
    """A non-durable event to fan out with its frame encoded once for every client (a ``step``:
    no id, not in the history)."""

    event: Step
    frame: bytes

    @classmethod
    def of(cls, event: Step) -> Live:
        return cls(event, encode_event(dumps(event.payload()), event=event.EVENT))


Output = Entry | ErrorEvent | Live


class _TaskSteps:
    """Step bookkeeping of one task of the run: the rule of *one step event per action*.

    The k-th ``Step N:`` line of a task's log and the k-th action line of its ``traj.jsonl``
    are the same action (both are written once per executed action, in order). A step event
    goes out for ordinal k from whichever source shows it first — except that once the task's
    ``traj.jsonl`` is being read (``TrajectoryFound``), the log's lines wait for it (it has the
    screenshot). ``emitted`` is the highest ordinal sent; nothing at or below it is sent again
    (also after a results follower re-read the file from its start)."""

    __slots__ = ("emitted", "found", "log_steps")

    def __init__(self) -> None:
        self.emitted = 0
        self.log_steps = 0  # Step lines of the task read in the log
        self.found = False  # its traj.jsonl is being read


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What the log's ``Args:`` line says of the run (for the run history)."""

    model: str | None = None
    agent: str | None = None
    max_steps: int | None = None


def rerun_list(results: Sequence[TaskComplete]) -> dict[str, list[str]]:
    """The tasks among ``results`` that failed for infrastructure reasons, in WAA's task-list
    shape (``{"domain": ["id", …]}``)."""
    out: dict[str, list[str]] = {}
    for r in results:
        if r.failure_kind == "infra":
            out.setdefault(r.domain or "unknown", []).append(r.task_id)
    return out


def running_task_view(
    target: str,
    task_id: str,
    worker: str,
    *,
    domain: str | None,
    instruction: str | None,
    started_at: str | None,
    step: int | None,
    action: str | None,
    evaluating: bool,
) -> dict[str, object]:
    """A running task as ``GET /api/tasks/<id>`` shows it (``finished`` false): its worker's
    view (``RunState.task``, and a cluster mirror from the published progress)."""
    return {
        "task_id": task_id,
        "target": target,
        "domain": domain,
        "worker": worker,
        "instruction": instruction,
        "started_at": started_at,
        "current_step": step,
        "action": action,
        "evaluating": evaluating,
        "finished": False,
    }


@dataclass(frozen=True, slots=True)
class Stall:
    """A stall as it began: how long nothing had moved, the task open then, the last log line,
    and when it last moved (the monitor's clock: what tells two stalls apart)."""

    seconds: float
    task_id: str | None
    last_line: str | None
    since: float


class _WorkerState:
    """What one worker (a file, an OSWorld env) is doing now."""

    __slots__ = ("action", "domain", "evaluating", "instruction", "started_at", "step", "task")

    def __init__(self) -> None:
        self.task: str | None = None
        self.domain: str | None = None
        self.step: int | None = None
        self.evaluating = False
        self.instruction: str | None = None
        self.action: str | None = None
        self.started_at: str | None = None

    def start(self, task: str | None, domain: str | None, at: str | None = None) -> None:
        self.task, self.domain, self.step, self.evaluating = task, domain, None, False
        self.instruction = self.action = None
        self.started_at = at

    def view(self, name: str) -> Worker:
        return Worker(name, self.task, self.domain, self.step, self.evaluating, self.instruction, self.action)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _seconds_between(start: str | None, end: str | None) -> float | None:
    """``end - start`` of two of the log's ISO-8601 times, or None."""
    if not start or not end:
        return None
    try:
        return round((_dt.datetime.fromisoformat(end) - _dt.datetime.fromisoformat(start)).total_seconds(), 3)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class RunStatistics:
    bytes_read: int
    lines: int
    parse_errors: int
    overlong_lines: int
    runs: int
    outages: int


SEED_VERSION = 2  # a seed of several files (``lanes``); one without ``v`` is of one file (1)


@dataclass(frozen=True, slots=True)
class LaneSeed:
    """(several files) Where one followed file of the run stood when the run's seed was taken:
    its parser continues at ``offset`` (a resume point of its own, or 0: read the file from
    its first byte) with ``parser`` (its state there; None at 0), and the first ``skip`` events
    it gives from there on were applied already (they come before the seed). ``name`` is the
    lane's id part ("" while it has none: then ``offset`` is 0, and its first bytes name it
    again); ``ended`` / ``total`` / ``results`` / ``label`` what the lane said."""

    path: str
    offset: int
    parser: Mapping[str, Any] | None
    skip: int
    name: str
    ended: bool
    total: int | None
    results: int
    label: str

    def encode(self) -> dict[str, Any]:
        return {"path": self.path, "offset": self.offset, "parser": None if self.parser is None else dict(self.parser),
                "skip": self.skip, "name": self.name, "ended": self.ended, "total": self.total,
                "results": self.results, "label": self.label}  # fmt: skip

    @classmethod
    def decode(cls, raw: Any) -> LaneSeed:
        try:
            lane = cls(raw["path"], raw["offset"], raw["parser"], raw["skip"], raw["name"], raw["ended"],
                       raw["total"], raw["results"], raw["label"])  # fmt: skip
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a lane seed: {exc!r}") from None
        if not (
            isinstance(lane.path, str)
            and lane.path
            and all(type(n) is int and n >= 0 for n in (lane.offset, lane.skip, lane.results))
            and (lane.parser is None or isinstance(lane.parser, Mapping))
            and isinstance(lane.name, str)
            and len(lane.name) <= 64
            and type(lane.ended) is bool
            and (lane.total is None or (type(lane.total) is int and lane.total >= 0))
            and isinstance(lane.label, str)
        ):
            raise ValueError(f"not a lane seed: a field has the wrong type ({raw.get('path')!r})")
        if (lane.parser is None) != (lane.offset == 0) or (not lane.name and lane.offset):
            raise ValueError(f"not a lane seed: offset {lane.offset} of {lane.path!r} without its parser state or name")
        return lane


@dataclass(frozen=True, slots=True)
class RunSeed:
    """Where a run stood at a resume point (see the module docstring): plain data,
    ``encode`` → JSON-able, ``decode`` checks every field (ValueError for junk).

    One file: ``offset`` and ``parser`` are the file's. Several files (format version 2):
    ``lanes`` has each file's place; ``offset`` is the sum of their offsets (it grows with
    every new resume point) and ``parser`` is empty."""

    offset: int  # the resume point's byte offset in the file
    count: int  # durable events of the run produced by the bytes before it
    run: str  # the run's id
    parser: Mapping[str, Any]  # LogParser.resume_point()'s state
    progress: Mapping[str, Any]  # the progress payload there
    facts: Mapping[str, Any] = field(default_factory=dict)  # the reducer's own, see _seed_facts
    lanes: tuple[LaneSeed, ...] | None = None  # (several files) each file's place

    def encode(self) -> dict[str, Any]:
        out = {"offset": self.offset, "count": self.count, "run": self.run, "parser": dict(self.parser),
               "progress": dict(self.progress), "facts": dict(self.facts)}  # fmt: skip
        if self.lanes is not None:
            out["v"] = SEED_VERSION
            out["lanes"] = [lane.encode() for lane in self.lanes]
        return out

    @classmethod
    def decode(cls, raw: Any) -> RunSeed:
        try:
            version = raw.get("v", 1)
            lanes = raw.get("lanes")
            if version not in (1, SEED_VERSION) or type(version) is not int:
                raise ValueError(f"not a run seed: unknown format version {version!r}")
            if (version == SEED_VERSION) != (lanes is not None):
                raise ValueError(f"not a run seed: format version {version} with{'out' if lanes is None else ''} lanes")
            if lanes is not None:
                if not isinstance(lanes, list) or not lanes:
                    raise ValueError("not a run seed: lanes must be a non-empty list")
                lanes = tuple(LaneSeed.decode(lane) for lane in lanes)
                if len({lane.path for lane in lanes}) != len(lanes):
                    raise ValueError("not a run seed: a file twice in its lanes")
            seed = cls(raw["offset"], raw["count"], raw["run"], raw["parser"], raw["progress"], raw["facts"], lanes)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a run seed: {exc!r}") from None
        if not (
            type(seed.offset) is int
            and type(seed.count) is int
            and seed.offset >= 0
            and seed.count >= 0
            and isinstance(seed.run, str)
            and seed.run
            and all(isinstance(x, Mapping) for x in (seed.parser, seed.progress, seed.facts))
        ):
            raise ValueError("not a run seed: a field has the wrong type")
        return seed


class _Lane:
    """One followed file of the run: its parser, its name, what it has said."""

    __slots__ = (
        "ended", "events", "key", "label", "name", "parser", "path", "point", "point_events", "results", "run_key",
        "skip", "total",
    )  # fmt: skip

    def __init__(self, path: str, parser: LogParser) -> None:
        self.path = path
        self.key = worker_key(path)
        self.parser = parser
        self.run_key: bytearray | None = bytearray()  # its first bytes, until it is named
        self.name = ""  # (several lanes) a hash of its first bytes, LANE_CHARS long
        self.ended = False  # its "Average score" / "No examples finished." was read
        self.total: int | None = None  # its task list's size
        self.results = 0  # task results it reported in the current run
        self.label = self.key if path else "main"  # its worker's name (WAA's number, once known)
        # (several files) Resume points: the parser's newest (offset, state) — (0, None): the
        # file's start —, how many events it had given before it, how many it gave in all,
        # and how many it is still to give that a resumed reducer applied already.
        self.point: tuple[int, Mapping[str, Any] | None] = (0, None)
        self.point_events = 0
        self.events = 0
        self.skip = 0


class RunState:
    """One target's run; see the module docstring."""

    def __init__(
        self,
        target: str,
        *,
        success_threshold: float = 1.0,
        vnc_url: str | None = None,
        lanes: bool = False,
        parser_factory: Callable[[], LogParser] = LogParser,
    ) -> None:
        self.target = target
        self._threshold = success_threshold
        self._vnc_url = vnc_url
        self._multi = lanes
        self._parser_factory = parser_factory
        # Log-derived state of the current run.
        self._lanes: dict[str, _Lane] = {}  # path → lane (one, keyed "", with lanes=False)
        self._last_path = ""  # where LogBytes without a path belong
        self.history = History(target, "", lanes=lanes)
        self.summary = RunSummary()
        self._task_ids: set[str] = set()  # (several lanes) tasks reported in this run
        self.run_complete: RunComplete | None = None
        self.progress = Progress(target=target, success_threshold=success_threshold)
        self._log_phase: str | None = None
        self._log_ready: bool | None = None
        self._started_any = False
        self._missing: str | None = None  # the configured log path, while it has no file
        # What the workers of the current run are doing, and what the log said of the run.
        self._workers: dict[str, _WorkerState] = {}
        self.run_info = RunInfo()
        self._interrupted = False  # "Interrupted by N" read: the run ends when the process does
        self._steps: dict[str, _TaskSteps] = {}  # task id → its step bookkeeping (this run)
        self._pending_steps: list[tuple[str, str, int, Step]] = []  # log steps of this input
        self._unreachable = False  # the last task failed talking to the guest (the VM is down)
        self.running_override: bool | None = None  # set while this server runs the benchmark
        # The baseline (SPEC §9): candidates in order of preference, the one in use for this run,
        # and what the forecast needs (the run's task lists: task id → domain).
        self._baselines: tuple[Baseline, ...] = ()
        self._follow_previous = False  # --baseline previous: each run that ends is the next one's
        self.baseline: Baseline | None = None
        self._task_list: dict[str, str] = {}
        # Stalls (SPEC §8): when the run last moved (the monitor's clock) and what it said last.
        self._moved_at: float | None = None
        self._stalled = False
        self.stall: Stall | None = None  # the current stall, from its start
        self._last_line: str | None = None
        # Source/probe-derived state.
        self._source_up = True
        self.outage: ErrorEvent | None = None  # the current outage's error event, if any
        self._probe = ProbeResult(connected=True)
        # Statistics.
        self._outages = 0
        self._runs = 0
        self._bytes = 0
        self._retired = (0, 0, 0)  # lines, parse errors, overlong lines of past parsers
        self.seed: RunSeed | None = None  # the newest resume point of the current run
        self._seed_due = False  # (several files) a lane passed a resume point in this input
        if not lanes:
            self._lanes[""] = _Lane("", parser_factory())
        self.status = self._compose_status()

    # ----------------------------------------------------------------- inputs

    def log(self, item: LogItem) -> list[Output]:
        """Apply one item from the source; returns what to fan out, in order."""
        out: list[Output] = []
        if isinstance(item, LogBytes):
            self._bytes += len(item.data)
            self._remember_last_line(item.data)
            lane = self._lanes.get("" if not self._multi else item.path or self._last_path)
            if lane is not None:  # (else: a file of a run that was left)
                self._feed(lane, item.data, out)
        elif isinstance(item, LogReset):
            self._reset(item, out)
        elif isinstance(item, LogMissing):
            if self._missing != item.path:
                self._missing = item.path
                out.append(ErrorEvent(self.target, f"log not found: {item.path} (waiting for it to appear)"))
                self.status = self._compose_status()
        elif isinstance(item, SourceDown):
            if self._source_up:
                self._source_up = False
                self._outages += 1
                # Kept while the outage lasts: a client that connects during it is told why.
                self.outage = ErrorEvent(self.target, item.message)
                out.append(self.outage)
                self.status = self._compose_status()
        elif isinstance(item, SourceUp):
            if not self._source_up:
                self._source_up = True
                self.outage = None
                # The link is back now, whatever a probe taken during the outage saw (the next
                # probe fills in the rest; without subscribers it may be a minute away).
                self._probe = replace(self._probe, connected=True)
                self.status = self._compose_status()
        elif isinstance(item, StepSeen):
            self._step_seen(item, out)
        elif isinstance(item, TrajectoryFound):
            steps = self._steps.get(item.task_id)
            if steps is not None:
                steps.found = True
        self._flush_steps(out)
        if self._seed_due:
            self._seed_due = False
            self._take_lanes_seed()
        return out

    def parsed(self, events: Sequence[ParsedEvent], path: str = "") -> list[Output]:
        """Apply parsed log events directly, as if read from the file at ``path`` (with
        lanes: that lane, made if new). Benchmarks and tests drive the state this way."""
        out: list[Output] = []
        key = path if self._multi else ""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(key, self._parser_factory())
        self._apply_parsed(lane, events, out)
        self._flush_steps(out)
        return out

    # ----------------------------------------------------------------- baseline and forecast

    def set_baselines(self, candidates: Sequence[Baseline], *, previous: bool = False) -> None:
        """The runs to compare with, best first (``--baseline previous``: the target's latest
        finished runs; ``--baseline RUN``: that one). The current run uses the first that is
        not itself — chosen now, or when the run gets its name. With ``previous``, a run
        that ends here becomes the first candidate at once (``_keep_as_baseline``): the next
        run is compared with it even when it starts before the database has stored it."""
        self._baselines = tuple(candidates)
        self._follow_previous = previous
        self._choose_baseline()

    @property
    def baseline_candidates(self) -> tuple[Baseline, ...]:
        return self._baselines

    def _keep_as_baseline(self) -> None:
        """``--baseline previous``: the run that just ended, from its results as read, is the
        first candidate (the same tasks the database stores for it); two are kept, as the
        database lookup gives, so a run that is itself the latest can still use the one before."""
        if not self._follow_previous or not self.history.run or self.run_complete is None:
            return
        if self.run_complete.interrupted:
            return  # an interrupted run is never a baseline (``storedb.RunRow.finished``)
        me = f"{self.target}:{self.history.run}"
        finished = Baseline(me, (r.payload() for r in self.results()))
        self._baselines = (finished, *(b for b in self._baselines if b.run != me))[:2]

    def _choose_baseline(self) -> None:
        """Before the run has its name nothing is compared (its results need the name first)."""
        if not self.history.run:
            self.baseline = None
            return
        me = f"{self.target}:{self.history.run}"
        self.baseline = next((b for b in self._baselines if b.run != me), None)

    def update_forecast(self) -> None:
        """``progress.forecast`` from the results so far, the run's task lists and the
        baseline's per-domain rates (``trio_sse.forecast``; a few ms: the monitor calls this
        at its own pace, not per event)."""
        results = self.results()
        total = self.progress.total_tasks
        if not results or self.run_complete is not None or not total:
            value = None
        else:
            payloads = [r.payload() for r in results]
            totals = _forecast.domain_totals((d, t) for t, d in self._task_list.items())
            prior = self.baseline.domain_rates() if self.baseline is not None else None
            got = _forecast.forecast(totals, _forecast.tally(payloads), prior=prior, total_tasks=total)
            value = Forecast(got["success_rate"], got["low"], got["high"]) if got else None
        if value != self.progress.forecast:
            self.progress = replace(self.progress, forecast=value)

    # ----------------------------------------------------------------- stalls

    def moved(self, now: float) -> None:
        """Something moved at ``now`` (new log bytes, a new step): a stall, if any, is over."""
        self._moved_at = now
        if self._stalled:
            self._stalled = False
            self.stall = None
            self.progress = replace(self.progress, stalled=None)

    def tick(self, now: float, stall_after: float) -> list[Output]:
        """A look at the clock: a running run that has not moved for ``stall_after`` seconds is
        stalled — ``progress.stalled`` counts the seconds, and the stall's start gives one
        ``error`` naming the task and the worker and quoting the last log line."""
        out: list[Output] = []
        running = self._started_any and self.run_complete is None and self._probe.running is not False
        if not running or self._moved_at is None or stall_after <= 0:
            return out
        idle = now - self._moved_at
        if idle < stall_after:
            return out
        self.progress = replace(self.progress, stalled=round(idle, 1))
        if not self._stalled:
            self._stalled = True
            busy = [(name, w) for name, w in sorted(self._workers.items()) if w.task is not None]
            self.stall = Stall(idle, busy[0][1].task if busy else None, self._last_line, self._moved_at)
            where = ", ".join(f"task {w.task} (worker {name}, step {w.step})" for name, w in busy) or "no task open"
            line = f"; last log line: {self._last_line!r}" if self._last_line else ""
            out.append(ErrorEvent(self.target, f"run stalled: nothing new for {_minutes(idle)}: {where}{line}"))
        return out

    def _remember_last_line(self, data: bytes) -> None:
        end = data.rstrip(b"\r\n \t")
        if not end:
            return
        cut = max(end.rfind(b"\n"), end.rfind(b"\r"))
        line = waalog.ANSI_RE.sub(b"", end[cut + 1 :][-400:]).decode("utf-8", "replace").strip()
        if line:
            self._last_line = line[-200:]

    @property
    def last_probe(self) -> ProbeResult:
        return self._probe

    def probe(self, result: ProbeResult, now: float | None = None) -> list[Output]:
        """Apply what one probe of the host saw (at ``now``, the monitor's clock). A run that
        was interrupted (``Interrupted by N``), or whose process is gone with a task open,
        ends here — when the process check says it is gone, and only then (SPEC §7.1); a log
        that still grew in the last ``INTERRUPT_QUIET`` seconds is not one that ended (a
        process check that misses the benchmark must not end a live run)."""
        if self.running_override is not None:
            result = replace(result, running=self.running_override)
        self._probe = result
        self.status = self._compose_status()
        if result.running != self.progress.running:
            self.progress = replace(self.progress, running=result.running)
        out: list[Output] = []
        if result.running is False and self.run_complete is None and self._started_any:
            quiet = now is None or self._moved_at is None or now - self._moved_at >= INTERRUPT_QUIET
            if self._interrupted or (quiet and any(w.task is not None for w in self._workers.values())):
                self._complete(out, lane_name=self._any_lane_name(), interrupted=True)
        return out

    # ----------------------------------------------------------------- files and runs

    def _reset(self, item: LogReset, out: list[Output]) -> None:
        self.seed = None  # another file generation: nothing before it is a place in it
        if self._missing is not None:
            self._missing = None
            self.status = self._compose_status()
        if not self._multi:
            lane = self._lanes[""]
            self._close(lane, out)  # what the old file still held (a last task) ends its run
            self._lanes[""] = _Lane("", self._parser_factory())
            self._start_run(None)
            return
        self._last_path = item.path
        known = self._lanes.get(item.path)
        same_worker = any(lane.key == worker_key(item.path) for lane in self._lanes.values())
        if known is not None or same_worker or self.run_complete is not None or not self._lanes:
            # This file restarts, a worker the run has starts again, the run is over, or
            # nothing was followed yet: a new run.
            for lane in list(self._lanes.values()):
                self._close(lane, out)
            self._lanes = {}
            self._start_run(None)
        self._lanes[item.path] = _Lane(item.path, self._parser_factory())
        self._update_total()

    def _feed(self, lane: _Lane, data: bytes, out: list[Output]) -> None:
        key = lane.run_key
        if key is not None and len(key) < RUN_KEY_BYTES:
            key += data[: RUN_KEY_BYTES - len(key)]
        points = lane.parser.points
        events = lane.parser.feed(data)
        if self._multi:
            self._feed_lane(lane, events, lane.parser.points != points, out)
        else:
            self._feed_file(lane, events, lane.parser.points != points, out)
        if lane.run_key is not None and len(lane.run_key) >= RUN_KEY_BYTES:
            self._name(lane, RUN_KEY_BYTES)

    def _feed_file(self, lane: _Lane, events: list[ParsedEvent], crossed: bool, out: list[Output]) -> None:
        point = lane.parser.resume_point() if crossed else None
        if point is None:
            self._apply_parsed(lane, events, out)
        else:
            # The events of the bytes before the point first (offsets never go down), then
            # the state there is the seed, then the rest.
            offset, parser_state = point
            cut = next((i for i, ev in enumerate(events) if ev.offset >= offset), len(events))
            self._apply_parsed(lane, events[:cut], out)
            self._take_seed(lane, offset, parser_state)
            self._apply_parsed(lane, events[cut:], out)

    def _feed_lane(self, lane: _Lane, events: list[ParsedEvent], crossed: bool, out: list[Output]) -> None:
        """(several files) Any moment between two inputs is a place a successor can continue
        from, as long as each lane says where its parser can restart (its newest resume point)
        and how many of the events it gives from there were applied: the lane keeps count."""
        point = lane.parser.resume_point() if crossed else None
        if point is not None:
            offset, state = point
            cut = next((i for i, ev in enumerate(events) if ev.offset >= offset), len(events))
            lane.point, lane.point_events = (offset, state), lane.events + cut
            self._seed_due = True  # taken once the input is applied (steps flushed)
        lane.events += len(events)
        if lane.skip:  # (a resumed lane) events the seed's reducer had applied already
            skipped = min(lane.skip, len(events))
            lane.skip -= skipped
            events = events[skipped:]
        self._apply_parsed(lane, events, out)

    # ----------------------------------------------------------------- resume points

    def _take_seed(self, lane: _Lane, offset: int, parser_state: Mapping[str, Any]) -> None:
        if lane.run_key is not None or not self.history.run:
            return  # the run has no name yet: nothing a successor could number from
        facts = self._seed_facts()
        facts["lane"] = [lane.ended, lane.total, lane.results, lane.label]
        self.seed = RunSeed(offset, len(self.history), self.history.run, parser_state, self.progress.payload(), facts)

    def _take_lanes_seed(self) -> None:
        """(several files) The run as it stands now, with each lane's place (``LaneSeed``)."""
        if not self.history.run or not self._lanes:
            return  # the run has no name yet: nothing a successor could number from
        lanes = []
        for lane in self._lanes.values():
            offset, state = lane.point
            if lane.run_key is not None:  # not named yet: its first bytes will name it again
                offset, state, before = 0, None, 0
            else:
                before = lane.point_events if offset else 0
            skip = lane.events - before + lane.skip
            lanes.append(LaneSeed(lane.path, offset, state, skip, lane.name, lane.ended, lane.total, lane.results,
                                  lane.label))  # fmt: skip
        self.seed = RunSeed(sum(lane.offset for lane in lanes), len(self.history), self.history.run, {},
                            self.progress.payload(), self._seed_facts(), tuple(lanes))  # fmt: skip

    def _seed_facts(self) -> dict[str, Any]:
        return {
            "model": self.run_info.model,
            "agent": self.run_info.agent,
            "max_steps": self.run_info.max_steps,
            "phase": self._log_phase,
            "ready": self._log_ready,
            "unreachable": self._unreachable,
            "started": self._started_any,
            "interrupted": self._interrupted,
            "workers": {n: [w.task, w.domain, w.step, w.evaluating, w.instruction, w.action, w.started_at]
                        for n, w in self._workers.items()},
            "last_line": self._last_line,
            "steps": {t: [s.emitted, s.log_steps, s.found] for t, s in self._steps.items()},
            "task_list": dict(self._task_list),
        }

    def resume(self, seed: RunSeed, entries: Sequence[Entry]) -> None:
        """Continue from ``seed`` (a new state only): the run's first ``seed.count`` durable
        ``entries`` as published (their ids and frames kept), the parser(s) and the reducer's
        facts as they were at the seed. One file: the next bytes to apply are those at
        ``seed.offset``. Several files (``lanes=True``, a seed with ``lanes``): the next bytes
        of each of the seed's files are those at its ``LaneSeed.offset``, without a
        ``LogReset`` (a ``LogReset`` of one of them means it restarted: a new run, as always);
        other files join with their ``LogReset``. ValueError (nothing changed) when seed or
        entries do not fit."""
        if self._bytes or len(self.history) or self.history.run:
            raise ValueError("only a new state can resume")
        if (seed.lanes is not None) != self._multi:
            raise ValueError("only a new state of the seed's kind can resume: a seed of several files (lanes) "
                             "resumes a state of several files (lanes=True), a seed of one file one of one file")
        if len(entries) != seed.count or any(
            e.seq != i or bool(e.lane) != self._multi or not e.id.startswith(f"{self.target}:{seed.run}-")
            for i, e in enumerate(entries, 1)
        ):
            raise ValueError(f"the entries are not events 1..{seed.count} of run {seed.run}")
        f = seed.facts
        try:
            progress = Progress.from_payload(seed.progress)
            if seed.lanes is None:
                lane = _Lane("", self._parser_factory().resume(seed.parser, seed.offset))
                ended, total, results, label = f["lane"]
                lanes = {"": lane}
            else:
                lanes, label = self._resumed_lanes(seed.lanes), ""
            run_info = RunInfo(f["model"], f["agent"], f["max_steps"])
            workers = {}
            for name, (task, domain, step, evaluating, instruction, action, started_at) in f["workers"].items():
                w = workers[name] = _WorkerState()
                w.task, w.domain, w.step, w.evaluating, w.instruction, w.action, w.started_at = (
                    task, domain, step, bool(evaluating), instruction, action, started_at
                )
            facts = (f["phase"], f["ready"], bool(f["unreachable"]), bool(f["started"]), bool(f["interrupted"]))
            last_line = f["last_line"]
            steps = {}
            for task_id, (emitted, log_steps, found) in f["steps"].items():
                if not (isinstance(task_id, str) and type(emitted) is int and type(log_steps) is int):
                    raise TypeError(f"steps of {task_id!r}: ordinals must be integers")
                steps[task_id] = _TaskSteps()
                steps[task_id].emitted, steps[task_id].log_steps, steps[task_id].found = emitted, log_steps, bool(found)
            task_list = dict(f["task_list"])
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in task_list.items()):
                raise TypeError("the task list maps task ids to domains (text)")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a run seed: {exc!r}") from None
        if progress.target != self.target or not isinstance(label, str):
            raise ValueError(f"the seed is of target {progress.target!r}, not {self.target!r}")
        history = History(self.target, seed.run, lanes=self._multi)
        summary = RunSummary()
        done = None
        for e in entries:
            history.adopt(e)
            if isinstance(e.event, TaskComplete):
                summary.add(e.event)
            elif isinstance(e.event, RunComplete):
                done = e.event
        if seed.lanes is None:
            lane.run_key = None  # named: the run is
            lane.ended, lane.total, lane.results, lane.label = bool(ended), total, results, label
        else:
            history.lanes = True
            self._task_ids = {e.event.task_id for e in entries if isinstance(e.event, TaskComplete)}
            self._last_path = seed.lanes[-1].path
        self._lanes = lanes
        self.history, self.summary, self.run_complete = history, summary, done
        self.progress, self.run_info, self._workers = progress, run_info, workers
        self._log_phase, self._log_ready, self._unreachable, self._started_any, self._interrupted = facts
        self._last_line = last_line if isinstance(last_line, str) else None
        self._steps, self._task_list, self._pending_steps = steps, task_list, []
        self._runs = 1
        self.seed = seed
        self._choose_baseline()  # (baselines given before: the run has its name now)
        self.status = self._compose_status()

    def _resumed_lanes(self, seeds: Sequence[LaneSeed]) -> dict[str, _Lane]:
        lanes = {}
        for s in seeds:
            parser = self._parser_factory()
            if s.parser is not None:
                parser.resume(s.parser, s.offset)
            lane = lanes[s.path] = _Lane(s.path, parser)
            if s.name:
                lane.run_key = None  # named (else its first bytes name it: it starts at 0)
            lane.name, lane.ended, lane.total, lane.results, lane.label = s.name, s.ended, s.total, s.results, s.label
            lane.point, lane.skip = (s.offset, s.parser), s.skip
        return lanes

    def _name(self, lane: _Lane, limit: int) -> None:
        """Name ``lane`` by its first ``limit`` bytes (and the run, if it has no name yet)."""
        assert lane.run_key is not None
        first = bytes(lane.run_key[:limit])
        run_id = run_id_for(first)
        lane.run_key = None
        if self._multi:
            taken = {other.name for other in self._lanes.values() if other is not lane}
            lane.name = run_id[:LANE_CHARS]
            if lane.name in taken:  # two files that open alike: the worker tells them apart
                lane.name = run_id_for(first, lane.key)[:LANE_CHARS]
        if not self.history.run:
            assert not len(self.history)
            self.history.run = run_id
            self.progress = replace(self.progress, run=run_id)
            self._choose_baseline()

    def _close(self, lane: _Lane, out: list[Output]) -> None:
        """The file of ``lane`` is left: what its parser still held (a task whose end was
        waiting for the next record) belongs to the run it was part of."""
        self._apply_parsed(lane, lane.parser.close(), out)
        self._retire_parser(lane.parser)

    def _start_run(self, run: str | None) -> None:
        """A new run: ``run`` is its id, or None for one named by its first bytes."""
        self._runs += 1
        self.history = History(self.target, run or "", lanes=self._multi)
        self.summary = RunSummary()
        self._task_ids = set()
        self.run_complete = None
        self._started_any = False
        self._workers = {}
        self._steps = {}
        self._pending_steps = []
        self._interrupted = False
        self._task_list = {}
        self._choose_baseline()
        self.progress = Progress(
            target=self.target,
            run=run,
            running=self._probe.running,
            max_steps=self.run_info.max_steps,
            success_threshold=self._threshold,
        )

    def _update_total(self) -> None:
        totals = [lane.total for lane in self._lanes.values() if lane.total is not None]
        if totals:
            self.progress = replace(self.progress, total_tasks=sum(totals))

    def _retire_parser(self, parser: LogParser) -> None:
        s = parser.statistics
        lines, errors, overlong = self._retired
        self._retired = (lines + s.lines, errors + s.parse_errors, overlong + s.overlong_lines)

    # ----------------------------------------------------------------- events

    def _worker(self, lane: _Lane, ev: ParsedEvent) -> tuple[str, _WorkerState]:
        name = getattr(ev, "worker", None) or lane.label
        state = self._workers.get(name)
        if state is None:
            state = self._workers[name] = _WorkerState()
        return name, state

    def _show(self, name: str, w: _WorkerState, **fields: object) -> None:
        """Progress after a change of worker ``name``: it is the one ``current_*`` shows."""
        self.progress = replace(
            self.progress,
            current_task=w.task,
            current_domain=w.domain,
            current_step=w.step,
            instruction=w.instruction,
            action=w.action,
            workers=tuple(self._workers[k].view(k) for k in sorted(self._workers)),
            **fields,  # type: ignore[arg-type]
        )

    def _apply_parsed(self, lane: _Lane, events: Sequence[ParsedEvent], out: list[Output]) -> None:
        status_dirty = False
        for ev in events:
            if isinstance(ev, (TaskFinished, RunFinished)) and lane.run_key is not None:
                self._name(lane, min(ev.offset, RUN_KEY_BYTES))  # its id needs the run's name
            at = getattr(ev, "at", None)
            if at and not isinstance(ev, (ServerReady, PhaseSeen)):
                if self.progress.started_at is None:
                    self.progress = replace(self.progress, started_at=at, log_time=at)
                elif self.progress.log_time is None or at > self.progress.log_time:
                    self.progress = replace(self.progress, log_time=at)
            if isinstance(ev, TaskFinished):
                name, w = self._worker(lane, ev)
                if w.task == ev.task_id or w.task is None:
                    w.start(None, None)
                result = self._result(ev, name)
                if ev.vm_unreachable:
                    self._unreachable, status_dirty = True, True
                elif ev.score is not None and self._unreachable:
                    self._unreachable, status_dirty = False, True  # the guest answered again
                if self._multi:
                    if result.task_id in self._task_ids:
                        continue  # another worker's file reported it already (each task once)
                    self._task_ids.add(result.task_id)
                lane.results += 1
                self.summary.add(result)
                out.append(self.history.append(result, lane.name))
                self._show(
                    name,
                    w,
                    tasks_completed=max(self.progress.tasks_completed + 1, self.summary.tasks_completed),
                    average_score=self.summary.average_score,
                )
            elif isinstance(ev, TaskStarted):
                self._started_any = True
                name, w = self._worker(lane, ev)
                w.start(ev.task_id, ev.domain, ev.at)
                self._steps.setdefault(ev.task_id, _TaskSteps())
                self._show(name, w)
            elif isinstance(ev, InstructionSeen):
                name, w = self._worker(lane, ev)
                if ev.task_id is None or ev.task_id == w.task:
                    w.instruction = ev.instruction
                    self._show(name, w)
            elif isinstance(ev, StepStarted):
                name, w = self._worker(lane, ev)
                w.step = ev.step
                w.action = ev.action[:ACTION_CHARS] if ev.action else None
                self._show(name, w)
                self._log_step(name, w, ev)
            elif isinstance(ev, Evaluating):
                name, w = self._worker(lane, ev)
                w.evaluating = True
                self._show(name, w)
            elif isinstance(ev, RateLimited):
                if not ev.retry:
                    self.progress = replace(self.progress, rate_limited=self.progress.rate_limited + 1)
            elif isinstance(ev, RunArgs):
                self.run_info = RunInfo(ev.model, ev.agent, ev.max_steps)
                self.progress = replace(self.progress, max_steps=ev.max_steps)
            elif isinstance(ev, Interrupted):
                self._interrupted = True
                if self._probe.running is not True and self.run_complete is None:
                    # Nothing says the process lives on (no process check, or it is gone).
                    self._complete(out, lane_name=lane.name, interrupted=True)
            elif isinstance(ev, RunStarted):
                if not ev.same_run and (lane.ended or lane.results or self.run_complete is not None):
                    # A second run appended to the same file: a new run, new ids.
                    if lane.run_key is not None:
                        self._name(lane, min(ev.offset, RUN_KEY_BYTES))
                    salt = f"{self.history.run}@{ev.offset}"
                    if self._multi:
                        for other in list(self._lanes.values()):
                            if other is not lane:
                                self._retire_parser(other.parser)
                        self._lanes = {lane.path: lane}
                    self._start_run(run_id_for(b"", salt))
                    lane.ended, lane.results = False, 0
                    lane.name = self.history.run[:LANE_CHARS] if self._multi else ""
                if ev.worker_id is not None and ev.worker is None:
                    lane.label = str(ev.worker_id)
                for domain, task_id in ev.tasks:
                    self._task_list[task_id] = domain
                lane.total = ev.total_tasks
                self._update_total()
            elif isinstance(ev, TasksCounted):
                self.progress = replace(
                    self.progress,
                    tasks_completed=max(ev.completed, self.summary.tasks_completed),
                    total_tasks=ev.total,
                )
            elif isinstance(ev, RunFinished):
                lane.ended = True
                if self.run_complete is None and all(other.ended for other in self._lanes.values()):
                    average = ev.average_score if not self._multi else None
                    self._complete(out, lane_name=lane.name, average=average)
            elif isinstance(ev, ServerReady):
                self._log_ready = ev.ready
                if ev.ready:
                    self._unreachable = False
                status_dirty = True
            elif isinstance(ev, PhaseSeen):
                self._log_phase = ev.phase
                status_dirty = True
        if status_dirty or (self._started_any and self.status.phase == "unknown"):
            self.status = self._compose_status()

    # ----------------------------------------------------------------- steps (SPEC §8)

    def _log_step(self, name: str, w: _WorkerState, ev: StepStarted) -> None:
        """A ``Step N:`` line of the worker's current task: a step event, unless the task's
        trajectory is read (then that sends it) or it was sent already. Held until the end of
        this input and sent only if the task is still running then: a task that started and
        ended within one read (a log read from its start, a server restart) is history, not
        news — its steps stay in the trajectory API."""
        task = w.task
        if task is None:
            return
        steps = self._steps.setdefault(task, _TaskSteps())
        steps.log_steps += 1
        if steps.found or steps.log_steps <= steps.emitted:
            return
        step = Step(self.target, task, ev.step, (ev.action or "")[:ACTION_CHARS], None, ev.at, name)
        self._pending_steps.append((task, name, steps.log_steps, step))

    def _flush_steps(self, out: list[Output]) -> None:
        if not self._pending_steps:
            return
        for task, name, ordinal, step in self._pending_steps:
            w = self._workers.get(name)
            steps = self._steps.get(task)
            if w is None or w.task != task or steps is None or steps.found or ordinal <= steps.emitted:
                continue
            steps.emitted = ordinal
            out.append(Live.of(step))
        self._pending_steps = []

    def _step_seen(self, item: StepSeen, out: list[Output]) -> None:
        """An action line of a task's ``traj.jsonl``: its step event (with the screenshot), once
        per action; the worker's current action and step when it is that worker's task."""
        steps = self._steps.get(item.task_id)
        if steps is None or item.index < 1:
            return  # not a task of this run (a follower of an older run's task, junk)
        action = (item.action or "")[:ACTION_CHARS]
        w = self._workers.get(item.worker)
        if w is not None and w.task == item.task_id and item.index >= steps.log_steps:
            w.step, w.action = item.step, action or None  # the newest step of its task
            self._show(item.worker, w)
        if item.index <= steps.emitted:
            return
        steps.emitted = item.index
        url = screenshot_url(self.target, item.task_id, item.screenshot) if item.screenshot else None
        out.append(Live.of(Step(self.target, item.task_id, item.step, action, url, item.at, item.worker)))

    def current_tasks(self) -> frozenset[CurrentTask]:
        """Every worker's task running now."""
        return frozenset(CurrentTask(name, w.domain, w.task) for name, w in self._workers.items() if w.task is not None)

    def task(self, task_id: str) -> tuple[dict[str, object], str | None] | None:
        """What the run knows of ``task_id`` (``GET /api/tasks/<id>``): its result (the
        ``task_complete`` payload, ``finished`` true) or, while it runs, its worker's view
        (``finished`` false); and its domain. None for a task not in the current run."""
        for entry in reversed(self.history.entries):
            result = entry.event
            if isinstance(result, TaskComplete) and result.task_id == task_id:
                return {**result.payload(), "finished": True}, result.domain
        for name, w in self._workers.items():
            if w.task == task_id:
                view = running_task_view(
                    self.target, task_id, name, domain=w.domain, instruction=w.instruction, started_at=w.started_at,
                    step=w.step, action=w.action, evaluating=w.evaluating,
                )  # fmt: skip
                return view, w.domain
        return None

    def _complete(
        self, out: list[Output], *, lane_name: str, average: float | None = None, interrupted: bool = False
    ) -> None:
        """The run ends: its ``run_complete``. The average is the log's own when it says one
        (WAA's ``Average score``), else the same definition over the results read."""
        if average is None or not math.isfinite(average):
            average = self.summary.average_score
        done = RunComplete(
            target=self.target,
            tasks_completed=self.summary.tasks_completed,
            total_tasks=self.progress.total_tasks,
            tasks_passed=self.summary.tasks_passed,
            average_score=average,
            interrupted=interrupted,
            baseline=self.baseline.summary(r.payload() for r in self.results()) if self.baseline else None,
        )
        if self._multi and not lane_name:
            lane_name = self._any_lane_name()
        if self._multi and not self.history.run:
            return  # nothing of the run was ever named: nothing to end
        self.run_complete = done
        out.append(self.history.append(done, lane_name))
        self._keep_as_baseline()
        for w in self._workers.values():
            w.start(None, None)
        self.progress = replace(
            self.progress,
            finished=True,
            current_task=None,
            current_domain=None,
            current_step=None,
            instruction=None,
            action=None,
            average_score=self.summary.average_score,
            workers=tuple(self._workers[k].view(k) for k in sorted(self._workers)),
            forecast=None,
        )

    def _any_lane_name(self) -> str:
        for lane in self._lanes.values():
            if lane.name:
                return lane.name
        return ""

    def rerun(self) -> dict[str, list[str]]:
        """The current run's tasks to run again because of infrastructure failures, in WAA's
        own task-list shape (``{"domain": ["id", …]}``, what ``run.py`` reads)."""
        return rerun_list(self.results())

    def _result(self, ev: TaskFinished, worker: str) -> TaskComplete:
        score = ev.score if ev.score is not None and math.isfinite(ev.score) else None
        # Success only from a real score; a task that raised never succeeded.
        success = ev.error is None and score is not None and score >= self._threshold
        result = TaskComplete(
            target=self.target,
            task_id=ev.task_id,
            success=success,
            score=score,
            domain=ev.domain,
            steps=ev.steps,
            error=ev.error,
            failure_kind=None if success else ev.failure_kind,
            instruction=ev.instruction,
            started_at=ev.started_at,
            finished_at=ev.at,
            duration_s=_seconds_between(ev.started_at, ev.at),
            worker=worker,
        )
        if self.baseline is not None:
            compared = self.baseline.compare({"task_id": result.task_id, "success": success})
            then = compared["baseline"]
            result = replace(
                result,
                baseline=BaselineResult(then["score"], then["success"]) if then else None,
                change=compared["change"],
            )
        return result

    # ----------------------------------------------------------------- status

    def _compose_status(self) -> Status:
        p = self._probe
        # Tasks running mean a VM that is up — unless they fail talking to it (SPEC §7.1).
        running_tasks = self._started_any and not self._unreachable
        phase = p.phase or self._log_phase or ("ready" if running_tasks else "unknown")
        log_ready = bool(self._log_ready) and not self._unreachable
        waa_ready = p.waa_ready if p.waa_ready is not None else log_ready
        connected = self._source_up and p.connected
        if self._missing is not None:
            probe_status = f"log not found: {self._missing}"
        elif p.probe_status is not None:
            probe_status = p.probe_status
        elif waa_ready:
            probe_status = "ready"
        else:
            not_ready = self._log_ready is False or self._unreachable
            probe_status = "Not responding" if not_ready else "unknown"
        return Status(
            target=self.target,
            connected=connected,
            phase=phase if connected else "unknown",
            waa_ready=waa_ready and connected,
            probe_status=probe_status,
            vnc_url=p.vnc_url or self._vnc_url,
        )

    # ----------------------------------------------------------------- views

    def results(self) -> list[TaskComplete]:
        return [e.event for e in self.history.entries if isinstance(e.event, TaskComplete)]

    def statistics(self) -> RunStatistics:
        lines, errors, overlong = self._retired
        for lane in self._lanes.values():
            s = lane.parser.statistics
            lines, errors, overlong = lines + s.lines, errors + s.parse_errors, overlong + s.overlong_lines
        return RunStatistics(
            bytes_read=self._bytes,
            lines=lines,
            parse_errors=errors,
            overlong_lines=overlong,
            runs=self._runs,
            outages=self._outages,
        )
