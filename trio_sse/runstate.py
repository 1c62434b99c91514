"""The state machine of one target's run, as a pure reducer (in the style of h11's connection).

Owns: turning what a target's source says — log bytes of each file generation, resets,
outages — and what its probe sees into the run's state (``status``, ``progress``, the
``history`` of durable events with their stable ids, the ``summary``) and the outputs to fan
out: each new durable ``history.Entry`` and each ``ErrorEvent``, in order. It holds the log
parser(s) and names runs (a run's id is a hash of its first bytes, see ``RUN_KEY_BYTES``).

Usage (the monitor does exactly this, tests do it with plain tables)::

    state = RunState("vm1")
    outputs = state.log(LogReset("/x.log"))          # → []
    outputs = state.log(LogBytes(chunk, offset=0))   # → [Entry(task_complete …), …]
    state.probe(ProbeResult(connected=True, running=True))
    state.status, state.progress                      # the current values

Every call is synchronous and atomic: the monitor applies one input and publishes its outputs
without an ``await`` in between, so a subscriber that registers and reads the history in one
step sees no gap and no duplicate. Must not: do I/O, read a clock, import anything async, or
know about subscribers and encoding for the wire (the history encodes each entry once).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

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
from trio_sse.model import ErrorEvent, Progress, RunComplete, RunSummary, Status, TaskComplete
from trio_sse.sources import LogBytes, LogItem, LogReset, ProbeResult, SourceDown, SourceUp

# A run's id is a hash of its first bytes: the first RUN_KEY_BYTES of the file generation, or
# fewer when the first durable event comes earlier (it needs its id then). Both cut points are
# positions in the log, not chunk boundaries, so the same log always gives the same ids — while
# two runs whose logs open with the same banner line (dockur prints one) still differ.
RUN_KEY_BYTES = 4096

Output = Entry | ErrorEvent


@dataclass(frozen=True, slots=True)
class RunStatistics:
    bytes_read: int
    lines: int
    parse_errors: int
    overlong_lines: int
    runs: int
    outages: int


class RunState:
    """One target's run; see the module docstring."""

    def __init__(
        self,
        target: str,
        *,
        success_threshold: float = 1.0,
        vnc_url: str | None = None,
        parser_factory: Callable[[], LogParser] = LogParser,
    ) -> None:
        self.target = target
        self._threshold = success_threshold
        self._vnc_url = vnc_url
        self._parser_factory = parser_factory
        # Log-derived state of the current run.
        self._parser = parser_factory()
        self._run_key: bytearray | None = bytearray()  # None once the run id is known
        self.history = History(target, "")
        self.summary = RunSummary()
        self.run_complete: RunComplete | None = None
        self.progress = Progress(target=target)
        self._log_phase: str | None = None
        self._log_ready: bool | None = None
        self._started_any = False
        # Source/probe-derived state.
        self._source_up = True
        self.outage: ErrorEvent | None = None  # the current outage's error event, if any
        self._probe = ProbeResult(connected=True)
        # Statistics.
        self._outages = 0
        self._runs = 0
        self._bytes = 0
        self._retired = (0, 0, 0)  # lines, parse errors, overlong lines of past parsers
        self.status = self._compose_status()

    # ----------------------------------------------------------------- inputs

    def log(self, item: LogItem) -> list[Output]:
        """Apply one item from the source; returns what to fan out, in order."""
        out: list[Output] = []
        if isinstance(item, LogBytes):
            self._bytes += len(item.data)
            self._feed(item.data, out)
        elif isinstance(item, LogReset):
            self._retire_parser()
            self._parser = self._parser_factory()
            self._start_run(None)
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
        return out

    def parsed(self, events: Sequence[ParsedEvent]) -> list[Output]:
        """Apply parsed log events directly (the log path feeds the parser's output here)."""
        out: list[Output] = []
        self._apply_parsed(events, out)
        return out

    def probe(self, result: ProbeResult) -> None:
        """Apply what one probe of the host saw."""
        self._probe = result
        self.status = self._compose_status()
        if result.running != self.progress.running:
            self.progress = replace(self.progress, running=result.running)

    # ----------------------------------------------------------------- the log

    def _feed(self, data: bytes, out: list[Output]) -> None:
        key = self._run_key
        if key is not None and len(key) < RUN_KEY_BYTES:
            key += data[: RUN_KEY_BYTES - len(key)]
        self._apply_parsed(self._parser.feed(data), out)
        if self._run_key is not None and len(self._run_key) >= RUN_KEY_BYTES:
            self._name_run(RUN_KEY_BYTES)
            self.progress = replace(self.progress, run=self.history.run)

    def _name_run(self, limit: int) -> None:
        assert self._run_key is not None and not len(self.history)
        self.history.run = run_id_for(bytes(self._run_key[:limit]))
        self._run_key = None

    def _apply_parsed(self, events: Sequence[ParsedEvent], out: list[Output]) -> None:
        progress = self.progress
        status_dirty = False
        for ev in events:
            if isinstance(ev, (TaskFinished, RunFinished)) and self._run_key is not None:
                self._name_run(min(ev.offset, RUN_KEY_BYTES))  # its id needs the run's name
                progress = replace(progress, run=self.history.run)
            if isinstance(ev, TaskFinished):
                result = self._result(ev)
                self.summary.add(result)
                out.append(self.history.append(result))
                progress = replace(
                    progress,
                    tasks_completed=max(progress.tasks_completed + 1, self.summary.tasks_completed),
                    current_task=None,
                    current_domain=None,
                    current_step=None,
                )
            elif isinstance(ev, TaskStarted):
                self._started_any = True
                progress = replace(progress, current_task=ev.task_id, current_domain=ev.domain, current_step=None)
            elif isinstance(ev, StepStarted):
                progress = replace(progress, current_step=ev.step)
            elif isinstance(ev, RunStarted):
                if not ev.same_run and (len(self.history) or self.run_complete is not None):
                    # A second run appended to the same file: a new run, new ids.
                    if self._run_key is not None:
                        self._name_run(min(ev.offset, RUN_KEY_BYTES))
                    self._start_run(run_id_for(b"", f"{self.history.run}@{ev.offset}"))
                    progress = self.progress
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
                        target=self.target,
                        tasks_completed=self.summary.tasks_completed,
                        total_tasks=progress.total_tasks,
                        tasks_passed=self.summary.tasks_passed,
                        average_score=average,
                    )
                    self.run_complete = done
                    out.append(self.history.append(done))
                    progress = replace(
                        progress, finished=True, current_task=None, current_domain=None, current_step=None
                    )
            elif isinstance(ev, ServerReady):
                self._log_ready = ev.ready
                status_dirty = True
            elif isinstance(ev, PhaseSeen):
                self._log_phase = ev.phase
                status_dirty = True
        self.progress = progress
        if status_dirty or (self._started_any and self.status.phase == "unknown"):
            self.status = self._compose_status()

    def _result(self, ev: TaskFinished) -> TaskComplete:
        score = ev.score if ev.score is not None and math.isfinite(ev.score) else None
        return TaskComplete(
            target=self.target,
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
        self.history = History(self.target, run or "")
        self.summary = RunSummary()
        self.run_complete = None
        self._started_any = False
        self.progress = Progress(target=self.target, run=run, running=self._probe.running)

    def _retire_parser(self) -> None:
        s = self._parser.statistics
        lines, errors, overlong = self._retired
        self._retired = (lines + s.lines, errors + s.parse_errors, overlong + s.overlong_lines)

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
        s = self._parser.statistics
        lines, errors, overlong = self._retired
        return RunStatistics(
            bytes_read=self._bytes,
            lines=lines + s.lines,
            parse_errors=errors + s.parse_errors,
            overlong_lines=overlong + s.overlong_lines,
            runs=self._runs,
            outages=self._outages,
        )
