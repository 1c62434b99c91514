"""``trio-sse watch URL``: the terminal view of a run (SPEC §6), on top of ``trio_sse.client``.

Owns: turning typed events into a rich live display on a terminal — per target a bar, the
pass rate and average, the elapsed time (the log's own clock: ``trio_sse.runclock``) and
ETA, the forecast of the final success rate and the changes against a baseline, a stall, and
per worker the step, task, instruction and latest action (the step first, so 80 columns cut
the task id, never the step; ``step`` events move them at once, between the coalesced
progress events); a line per completed task above it (wrapped at word boundaries, marked
``regressed`` / ``fixed`` against a baseline) and a per-domain summary at the run's end — or
plain lines when the
output is not a terminal (``trio-sse watch URL | tee log``); and a clean exit (code 0) on
Ctrl-C / SIGTERM, the last frame on the screen once (no echoed ``^C`` under it). Must not:
read argv (``cli.py`` does), speak HTTP/SSE itself (the client does, with resume), or render
log-derived text as rich markup (a task id like ``[red]x`` is shown as written: every such
string goes in as a ``Text``).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import trio
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from trio_sse.client import (
    BenchmarkClient,
    ConnectionEvent,
    ErrorEvent,
    Event,
    ProgressEvent,
    ProtocolError,
    RunCompleteEvent,
    StatusEvent,
    StepEvent,
    StreamRejected,
    TaskCompleteEvent,
)
from trio_sse.errors import ConfigError
from trio_sse.model import Worker
from trio_sse.runclock import RunClock

__all__ = ["main_watch", "run_watch"]

DEFAULT_TARGET = "default"  # the original endpoint's payloads name no target

# C0 controls but tab, DEL and C1 controls: a log-derived string must not move the cursor,
# clear the screen or set the window title (rich's Text keeps ESC, so we remove them here).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """Log-derived text made safe for a terminal: control characters shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _score(score: float | None) -> str:
    return "N/A" if score is None else f"{score:.2f}"


def task_line(e: TaskCompleteEvent) -> Text:
    """``[target] ✓ task_id (domain) score 1.00, 7 steps`` — or ✗ and the error."""
    line = Text()
    line.append(f"[{clean(e.target or DEFAULT_TARGET)}] ", style="dim")
    line.append("✓ " if e.success else "✗ ", style="bold green" if e.success else "bold red")
    line.append(clean(e.task_id), style="bold")
    if e.domain:
        line.append(f" ({clean(e.domain)})")
    line.append(f" score {_score(e.score)}")
    if e.steps is not None:
        line.append(f", {e.steps} steps", style="dim")
    if e.error:
        line.append(" error: ", style="red")
        line.append(clean(e.error), style="red")
    if e.change in CHANGE_STYLE:  # against the baseline run (SPEC §9): the news worth a mark
        line.append(f" · {e.change}", style=CHANGE_STYLE[e.change])
        if e.baseline is not None:
            line.append(f" (was {'✓' if e.baseline.success else '✗'} {_score(e.baseline.score)})", style="dim")
    return line


CHANGE_STYLE = {"regressed": "bold red", "fixed": "bold green"}


def run_line(e: RunCompleteEvent) -> Text:
    rate = f" ({100 * e.tasks_passed / e.tasks_completed:.1f}%)" if e.tasks_completed else ""
    avg = f", average score {e.average_score:.2f}" if e.average_score is not None else ""
    planned = (
        f" — {e.total_tasks} tasks were planned"
        if e.total_tasks is not None and e.total_tasks != e.tasks_completed
        else ""
    )
    line = Text(f"[{clean(e.target or DEFAULT_TARGET)}] ", style="dim")
    line.append(
        f"run complete: {e.tasks_passed}/{e.tasks_completed} passed{rate}{avg}{planned}", style="bold"
    )
    return line


def baseline_line(target: str | None, summary: object) -> Text | None:
    """``run_complete.baseline`` (SPEC §9) as one line: the run compared with, the changes,
    the pass counts and averages then and now. None when there is no (readable) summary."""
    if not isinstance(summary, dict) or not isinstance(summary.get("run"), str):
        return None

    def count(key: str) -> int:
        value = summary.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def avg(key: str) -> str:
        value = summary.get(key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return f"{value:.2f}" if ok else "N/A"

    line = Text(f"[{clean(target or DEFAULT_TARGET)}] ", style="dim")
    line.append(f"vs baseline {clean(summary['run'])}: ")
    line.append(f"{count('fixed')} fixed", style="green" if count("fixed") else "")
    line.append(", ")
    line.append(f"{count('regressed')} regressed", style="bold red" if count("regressed") else "")
    line.append(f", {count('same')} same, {count('new')} new")
    line.append(
        f"; passed {count('passed_then')}/{count('tasks_then')} → {count('passed_now')}/{count('tasks_now')}, "
        f"average {avg('average_then')} → {avg('average_now')}"
    )
    return line


def forecast_text(p: ProgressEvent | None) -> str | None:
    """``expected 62% (55–70%)``: the forecast of the final success rate and its 90 % interval
    (SPEC §9), while the run goes; None without one."""
    f = p.forecast if p is not None else None
    if f is None or p is None or p.finished:
        return None
    return f"expected {100 * f.success_rate:.0f}% ({100 * f.low:.0f}–{100 * f.high:.0f}%)"


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _stalled(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d} min"


_ID_RE = re.compile(r"^(.+):([0-9a-f]+)-([0-9a-f._]+)$")


def run_from_id(event_id: str | None, target: str) -> str | None:
    """The run a durable event's id names (``<target>:<run>-<n>``; several targets' ids are
    joined with ``,``), or None. Ids are opaque; this is only used, when one parses, to know a
    result's run before the coalesced progress says a new run started (as the dashboard does)."""
    for part in (event_id or "").split(","):
        m = _ID_RE.match(part.strip())
        if m and m.group(1) == target:
            return m.group(2)
    return None


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0]


@dataclass(slots=True)
class _TaskInfo:
    """What the view learnt of an open task: from each worker's entry in ``progress.workers``
    (an older server: from the top-level fields, for the worker that moved last only) and
    from ``step`` events, which come at once — so the newest step wins, whichever came last."""

    instruction: str | None = None
    action: str | None = None
    step: int = -1  # the step the action belongs to


@dataclass(slots=True)
class _Target:
    """What the view remembers of one target."""

    name: str
    run: str | None = None
    past_runs: set[str] = field(default_factory=set)  # runs this view left
    seen: set[str] = field(default_factory=set)  # task ids of the current run already shown
    results: dict[str, TaskCompleteEvent] = field(default_factory=dict)  # the run's, for the sums
    task_key: dict[str, tuple[str | None, int]] = field(default_factory=dict)  # worker → (task, completed) printed
    instructed: set[str] = field(default_factory=set)  # tasks whose instruction was printed (plain)
    status_key: tuple[bool, str, bool] | None = None
    status: StatusEvent | None = None
    progress: ProgressEvent | None = None
    progress_at: float = 0.0
    complete: RunCompleteEvent | None = None
    summarised: bool = False  # the run's per-domain summary was printed
    tasks: dict[str, _TaskInfo] = field(default_factory=dict)
    stepped: dict[str, str] = field(default_factory=dict)  # worker → the task of its latest step event
    clock: RunClock = field(default_factory=RunClock)
    watched_since: float | None = None  # when this view first saw the run (no started_at)

    def passed(self) -> int:
        return sum(r.success for r in self.results.values())

    def average(self) -> float | None:
        """WAA's: over the tasks with a score (at the end, the server's own figure)."""
        if self.complete is not None and self.complete.average_score is not None:
            return self.complete.average_score
        scores = [r.score for r in self.results.values() if r.score is not None]
        return sum(scores) / len(scores) if scores else None

    def done(self) -> int:
        p = self.progress
        return max(p.tasks_completed if p else 0, self.complete.tasks_completed if self.complete else 0, len(self.results))

    def total(self) -> int | None:
        if self.progress is not None and self.progress.total_tasks is not None:
            return self.progress.total_tasks
        return self.complete.total_tasks if self.complete is not None else None

    def finished(self) -> bool:
        return self.complete is not None or bool(self.progress and self.progress.finished)

    def learn(self, task: str | None, instruction: str | None, action: str | None, step: int | None) -> None:
        if not task or task in self.results:
            return
        info = self.tasks.get(task)
        if info is None:
            info = self.tasks[task] = _TaskInfo()
            while len(self.tasks) > MAX_TASK_INFO:
                del self.tasks[next(iter(self.tasks))]
        if instruction:
            info.instruction = instruction
        n = -1 if step is None else step
        if action and n >= info.step:
            info.action, info.step = action, n
        elif n > info.step:
            info.step = n

    def changes(self) -> tuple[int, int]:
        """(fixed, regressed) against the baseline run so far."""
        changes = [r.change for r in self.results.values()]
        return changes.count("fixed"), changes.count("regressed")


MAX_TASK_INFO = 64  # open tasks remembered per target (a worker each, and some slack)


class View:
    """Events in, output out. ``live`` (a terminal) shows a redrawn view of every target —
    its bar, pass rate, average, elapsed time and ETA, and per worker the step, task,
    instruction and latest action — with a line per finished task above it; otherwise plain
    lines only. ``clock`` gives monotonic seconds (``trio.current_time`` under Trio)."""

    def __init__(self, console: Console, url: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.url = url
        self.live = console.is_terminal
        self.clock = clock
        self.targets: dict[str, _Target] = {}
        self._connects = 0
        self._connected = False
        self._replay_done = False  # this connection's replay is over: events are news now
        self._outage: str | None = None  # the reason last shown while disconnected
        self._live = Live(console=console, auto_refresh=False, transient=False, redirect_stdout=False,
                          redirect_stderr=False, vertical_overflow="crop") if self.live else None

    def __enter__(self) -> View:
        if self._live is not None:
            self._live.update(self.renderable(), refresh=False)
            self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.update(self.renderable(), refresh=False)
            self._live.stop()  # the last frame stays on the screen, once

    def refresh(self) -> None:
        """Redraw the live view (the elapsed time and stall counters move on by themselves)."""
        if self._live is not None:
            self._live.update(self.renderable(), refresh=True)

    def print(self, line: RenderableType) -> None:
        # Above the live view (or plainly when not live). On a terminal rich wraps at word
        # boundaries (never mid-number); into a pipe a line stays one line.
        self.console.print(line, soft_wrap=not self.live, highlight=False, markup=False)

    def _target(self, name: str | None) -> _Target:
        name = clean(name or DEFAULT_TARGET)
        t = self.targets.get(name)
        if t is None:
            t = self.targets[name] = _Target(name)
        return t

    def handle(self, event: Event | ConnectionEvent) -> None:
        if isinstance(event, ConnectionEvent):
            self._connection(event)
        elif isinstance(event, StatusEvent):
            self._replay_done = True
            self._status(event)
        elif isinstance(event, ProgressEvent):
            self._replay_done = True
            self._progress(event)
        elif isinstance(event, TaskCompleteEvent):
            self._task_complete(event)
        elif isinstance(event, RunCompleteEvent):
            self._run_complete(event)
        elif isinstance(event, StepEvent):
            self._step(event)
        elif isinstance(event, ErrorEvent):
            line = Text(f"[{clean(event.target or DEFAULT_TARGET)}] ", style="dim")
            line.append(f"error: {clean(event.message)}", style="bold red")
            self.print(line)
        self.refresh()

    def _connection(self, e: ConnectionEvent) -> None:
        if e.state == "live":
            self._connects += 1
            self._connected = True
            self._replay_done = False
            self._outage = None
            word = "connected to" if self._connects == 1 else "reconnected to"
            self.print(Text(f"{word} {self.url}", style="green"))
            return
        self._connected = False
        # One line per outage (and per new reason), not one per attempt: a server that is
        # down for an hour must not fill a log.
        reason = clean(e.reason or "")
        if reason == self._outage:
            return
        self._outage = reason
        if self._connects == 0:
            line = f"cannot connect to {self.url} ({reason}); retrying every {e.retry_in:g}s"
        else:
            line = f"connection lost ({reason}); reconnecting in {e.retry_in:g}s"
        self.print(Text(line, style="yellow"))

    def _status(self, e: StatusEvent) -> None:
        t = self._target(e.target)
        t.status = e
        key = (e.connected, e.phase, e.waa_ready)
        if key == t.status_key:
            return
        t.status_key = key
        line = Text(f"[{t.name}] ", style="dim")
        if not e.connected:
            line.append("VM offline", style="bold red")
        else:
            line.append(f"VM {clean(e.phase)}, WAA {'ready' if e.waa_ready else 'not ready'}")
        if e.vnc_url:
            line.append(f", VNC {clean(e.vnc_url)}", style="dim")
        self.print(line)

    def _new_run(self, t: _Target, run: str | None) -> bool:
        """Follow ``run`` (None: unknown, the same). False when it is one this view left."""
        if run is None or run == t.run:
            return True
        if run in t.past_runs:
            return False  # a late event of a run we left must not wipe the new one
        if t.run is None:
            t.run = run  # the first word of it (a replay names its run before progress does)
            return True
        self.print(Text(f"[{t.name}] a new run started", style="bold"))
        t.past_runs.add(t.run)
        t.run = run
        t.seen.clear()
        t.results.clear()
        t.task_key.clear()
        t.instructed.clear()
        t.tasks.clear()
        t.stepped.clear()
        t.complete = None
        t.summarised = False
        t.clock = RunClock()
        t.watched_since = None
        return True

    def _progress(self, e: ProgressEvent) -> None:
        t = self._target(e.target)
        if not self._new_run(t, e.run):
            return
        now = self.clock()
        t.progress, t.progress_at = e, now
        if t.watched_since is None:
            t.watched_since = now
        t.learn(e.current_task, e.instruction, e.action, e.current_step)
        for w in e.workers:  # each worker's own instruction and action (a newer server)
            t.learn(w.current_task, w.instruction, w.action, w.current_step)
        if self.live:
            return
        # Plain output: a line when a worker's task changes, not every step (a log stays
        # readable); the instruction once per task.
        several = len(e.workers) > 1
        workers = e.workers if several else (None,)
        total = "?" if e.total_tasks is None else e.total_tasks
        for w in workers:
            name = w.worker if w is not None else ""
            task = w.current_task if w is not None else e.current_task
            if task is not None and task in t.results:
                task = None  # its result is in (progress is coalesced, results are not)
            key = (task, e.tasks_completed)
            if t.task_key.get(name) == key:
                continue
            t.task_key[name] = key
            if w is not None:
                detail = self._task_detail(task, w.current_domain, w.current_step)
            else:
                detail = self._task_detail(task, e.current_domain, e.current_step)
            if task is None:
                detail = "finished" if e.finished else ("running" if e.running else "idle")
            line = Text(f"[{t.name}] ", style="dim")
            line.append(f"{e.tasks_completed}/{total} done, " + (f"worker {clean(name)}: " if several else "") + detail)
            line.append(self._sums(t), style="dim")
            self.print(line)
        for task in {e.current_task} | {w.current_task for w in e.workers}:
            info = t.tasks.get(task) if task else None
            if task and info is not None and info.instruction and task not in t.instructed:
                t.instructed.add(task)
                line = Text(f"[{t.name}] ", style="dim")
                line.append(f"{clean(task)} instruction: {clean(info.instruction)}")
                self.print(line)

    @staticmethod
    def _task_detail(task: str | None, domain: str | None, step: int | None) -> str:
        detail = clean(task or "")
        if domain:
            detail += f" ({clean(domain)})"
        if step is not None:
            detail += f" step {step}"
        return detail

    def _sums(self, t: _Target) -> str:
        """`` · passed 3/5 (60.0%) · average 0.62 · expected 58% (41–73%)`` while the run goes
        (plain lines)."""
        if not t.results:
            return ""
        n = len(t.results)
        avg = t.average()
        out = f" · passed {t.passed()}/{n} ({100 * t.passed() / n:.1f}%)" + (f" · average {avg:.2f}" if avg is not None else "")
        forecast = None if t.finished() else forecast_text(t.progress)
        return out + (f" · {forecast}" if forecast else "")

    def _step(self, e: StepEvent) -> None:
        """A step moves its worker's step and action at once. Nothing is printed for it in
        plain output (a line per task, not per step, keeps a log readable)."""
        t = self._target(e.target)
        if e.task_id in t.results or t.finished():
            return  # late news of a finished task
        t.learn(e.task_id, None, e.action or None, e.step)
        if e.worker is not None:
            t.stepped[e.worker] = e.task_id

    def _task_complete(self, e: TaskCompleteEvent) -> None:
        t = self._target(e.target)
        if not self._new_run(t, run_from_id(e.id, t.name)):
            return
        t.results[e.task_id] = e
        t.tasks.pop(e.task_id, None)
        t.clock.observe(e.finished_at, self.clock(), live=self._replay_done, finish=True)
        if e.task_id in t.seen:  # a replay we already showed (after a reconnect)
            return
        t.seen.add(e.task_id)
        self.print(task_line(e))

    def _run_complete(self, e: RunCompleteEvent) -> None:
        t = self._target(e.target)
        if not self._new_run(t, run_from_id(e.id, t.name)):
            return
        t.complete = e
        if t.summarised:  # a replay of the end we already showed
            return
        t.summarised = True
        self.print(run_line(e))
        against = baseline_line(t.name, e.baseline)
        if against is not None:
            self.print(against)
        if t.results:
            self.print(domain_table(t.name, list(t.results.values())))

    # ------------------------------------------------------------------ the live view

    def renderable(self) -> RenderableType:
        now = self.clock()
        parts: list[RenderableType] = [self._target_view(t, now) for t in self.targets.values()]
        if not parts:
            parts.append(Text("waiting for the server…", style="dim"))
        return Group(*parts)

    def _target_view(self, t: _Target, now: float) -> RenderableType:
        done, total = t.done(), t.total()
        head = Table.grid(padding=(0, 1), expand=True)
        head.add_column(no_wrap=True)
        head.add_column(ratio=1)
        head.add_column(no_wrap=True, justify="right")
        name = Text(t.name, style="bold")
        if not self._connected:
            name.append(" (last known)", style="dim italic")
        counts = f"{done}/{'?' if total is None else total}"
        if total:
            counts += f" {100 * min(done, total) / total:3.0f}%"
        bar = ProgressBar(total=float(total) if total else None, completed=float(min(done, total or done)),
                          finished_style="green" if t.finished() else "bar.finished", pulse=total is None and not t.finished())
        head.add_row(name, bar, Text(counts, style="green"))
        lines: list[RenderableType] = [head, self._sums_line(t, now)]
        outlook = self._outlook_line(t)
        if outlook is not None:
            lines.append(outlook)
        p = t.progress
        if t.complete is not None:
            lines.append(Text("  interrupted" if t.complete.interrupted else "  finished", style="bold"))
        elif p is not None and p.stalled is not None and not p.finished:
            stalled = p.stalled + max(0.0, now - t.progress_at)
            lines.append(Text(f"  stalled for {_stalled(stalled)}", style="bold red", no_wrap=True, overflow="ellipsis"))
        if p is not None and not t.finished():
            workers = list(p.workers) or [None]
            for w in workers:
                lines.extend(self._worker_lines(t, p, w, several=len(workers) > 1))
        return Group(*lines)

    def _sums_line(self, t: _Target, now: float) -> Text:
        parts: list[str] = []
        n = len(t.results)
        threshold = t.progress.success_threshold if t.progress else None
        if n:
            rate = f"passed {t.passed()}/{n} {100 * t.passed() / n:.1f}%"
            if threshold is not None:
                rate += f" (≥{threshold:.2f})"  # the score a pass needs
            parts.append(rate)
            avg = t.average()
            parts.append(f"avg {avg:.2f}" if avg is not None else "avg N/A")
        p = t.progress
        started = p.started_at if p else None
        if started:
            el = t.clock.elapsed(started, now, finished=t.finished())
            if el is None:
                parts.append(f"started {started.replace('T', ' ')[:19]}")
            else:
                parts.append(f"elapsed {'≥' if not el.exact else ''}{_clock(el.seconds)}")
        elif t.watched_since is not None and not t.finished():
            parts.append(f"watching {_clock(now - t.watched_since)}")
        if t.finished():
            pass
        elif started:
            eta = t.clock.eta(started, now, done=t.done(), total=t.total())
            if eta is not None:
                parts.append(f"ETA {_clock(eta)}")
        return Text("  " + " · ".join(parts), style="dim", no_wrap=True, overflow="ellipsis")

    def _outlook_line(self, t: _Target) -> Text | None:
        """``  expected 62% (55–70%) · vs baseline: 1 fixed, 2 regressed`` when there is a
        forecast (SPEC §9: while the run goes) or a result compared with a baseline."""
        parts = Text("  ", no_wrap=True, overflow="ellipsis")
        forecast = None if t.finished() else forecast_text(t.progress)
        if forecast:
            parts.append(forecast, style="cyan")
        if any(r.change is not None for r in t.results.values()):
            fixed, regressed = t.changes()
            if forecast:
                parts.append(" · ")
            parts.append("vs baseline: ")
            parts.append(f"{fixed} fixed", style="green" if fixed else "")
            parts.append(", ")
            parts.append(f"{regressed} regressed", style="bold red" if regressed else "")
        return parts if len(parts) > 2 else None

    def _worker_lines(self, t: _Target, p: ProgressEvent, w: Worker | None, *, several: bool) -> list[Text]:
        task = w.current_task if w is not None else p.current_task
        domain = w.current_domain if w is not None else p.current_domain
        step = w.current_step if w is not None else p.current_step
        evaluating = w.evaluating if w is not None else False
        if task is not None and task in t.results:
            task = None  # between tasks: its result is in, the next one not yet
        ahead = t.stepped.get(w.worker if w is not None else "")
        if ahead is None and w is None and len(t.stepped) == 1:
            ahead = next(iter(t.stepped.values()))  # (an older server: one worker, unnamed)
        if ahead is not None and ahead != task and ahead not in t.results and ahead in t.tasks:
            # A step event named this worker's next task before the (coalesced) progress did.
            task, domain, step, evaluating = ahead, None, None, False
        info = t.tasks.get(task) if task is not None else None
        if info is not None and info.step >= 0 and (step is None or info.step > step):
            step, evaluating = info.step, False  # a step event came after the last progress
        line = Text("  ", no_wrap=True, overflow="ellipsis")
        if several and w is not None:
            line.append(f"{clean(w.worker)} ", style="bold")
        if task is None:
            line.append("next task starting…", style="dim")
            return [line]
        # The step first: a long task id is what gets cut at 80 columns, never the step.
        if step is not None:
            line.append(f"step {step}" + (f"/{p.max_steps}" if p.max_steps else ""), style="bold cyan")
            line.append(" · ")
        if evaluating:
            line.append("evaluating · ", style="yellow")
        if domain:
            line.append(clean(domain))
            line.append(" · ")
        line.append(clean(task), style="bold")
        out = [line]
        if info is not None and info.instruction:
            out.append(Text("    " + clean(info.instruction), style="italic", no_wrap=True, overflow="ellipsis"))
        if info is not None and info.action:
            out.append(Text("    ▸ " + clean(_first_line(info.action)), style="dim", no_wrap=True, overflow="ellipsis"))
        return out


def domain_table(target: str, results: list[TaskCompleteEvent]) -> Table:
    """The run's per-domain summary: tasks, passed, average score (WAA's, over the scored)."""
    table = Table(title=Text(f"[{clean(target)}] by domain", style="bold"), title_justify="left", box=None, pad_edge=False,
                  show_edge=False, highlight=False)
    table.add_column("domain", no_wrap=False)
    table.add_column("tasks", justify="right", no_wrap=True)
    table.add_column("passed", justify="right", no_wrap=True)
    table.add_column("average", justify="right", no_wrap=True)
    domains: dict[str, list[TaskCompleteEvent]] = {}
    for r in results:
        domains.setdefault(r.domain or "—", []).append(r)
    for domain in sorted(domains):
        rs = domains[domain]
        passed = sum(r.success for r in rs)
        scores = [r.score for r in rs if r.score is not None]
        avg = f"{sum(scores) / len(scores):.2f}" if scores else "N/A"
        table.add_row(Text(clean(domain)), str(len(rs)), f"{passed} ({100 * passed / len(rs):.0f}%)", avg)
    return table


async def run_watch(
    url: str,
    *,
    interval: int = 5,
    token: str | None = None,
    target: str | None = None,
    console: Console | None = None,
) -> None:
    """Show the stream at ``url`` until cancelled. Raises ``ConfigError`` for a bad URL or
    interval, ``StreamRejected`` when the server refuses (4xx), ``ProtocolError`` when the
    URL is not a trio-sse server."""
    client = BenchmarkClient(url, interval=interval, token=token, target=target)
    console = console if console is not None else Console()
    async with client:
        refused: StreamRejected | ProtocolError | None = None
        with _quiet_terminal(console), View(console, url, clock=trio.current_time) as view:
            async with trio.open_nursery() as nursery:
                if view.live:
                    nursery.start_soon(_tick, view)
                try:
                    async for event in client.events(connection_events=True):
                        view.handle(event)
                except (StreamRejected, ProtocolError) as exc:
                    refused = exc  # raised as itself below, not inside an exception group
                nursery.cancel_scope.cancel()
        if refused is not None:
            raise refused


async def _tick(view: View) -> None:
    """Redraw once a second: the elapsed time, the ETA and a stall go on between events."""
    while True:
        await trio.sleep(1)
        view.refresh()


@contextmanager
def _quiet_terminal(console: Console) -> Iterator[None]:
    """While the live view is drawn: no echo of typed keys on the terminal. A Ctrl-C echoed
    as ``^C`` would move the cursor under the view, and its last redraw would then leave
    the old frame on the screen: the bars printed twice."""
    fd = sys.stdin.fileno() if sys.stdin is not None and not sys.stdin.closed else -1
    if not console.is_terminal or fd < 0 or not os.isatty(fd):
        yield
        return
    import termios  # POSIX only; a terminal elsewhere keeps its echo

    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        yield
        return
    quiet = list(saved)
    quiet[3] &= ~(termios.ECHO | getattr(termios, "ECHOCTL", 0))
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


def main_watch(
    url: str,
    *,
    interval: int = 5,
    token: str | None = None,
    target: str | None = None,
    console: Console | None = None,
) -> int:
    """The ``watch`` command: run until Ctrl-C / SIGTERM (exit 0). A bad argument prints one
    line and gives 2; a refused or unreadable stream gives 1."""
    try:
        # Validate before starting Trio, so a typo gives one line, not a traceback.
        BenchmarkClient(url, interval=interval, token=token, target=target)
    except ConfigError as exc:
        print(f"trio-sse watch: error: {exc}", file=sys.stderr)
        return 2
    try:
        return trio.run(_until_signal, url, interval, token, target, console)
    except KeyboardInterrupt:  # only if it lands before our signal receiver is installed
        return 0
    except BaseException as exc:  # noqa: BLE001 (only to recognise a closed pipe, re-raised otherwise)
        if not _broken_pipe(exc):
            raise
        # The reader went away (``watch URL | head -3``): stop quietly, as Unix tools do, and
        # keep Python from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0


def _broken_pipe(exc: BaseException) -> bool:
    """``exc`` is a BrokenPipeError — or rich's reaction to one, ``SystemExit`` raised while
    handling it — or an exception group made only of those."""
    if isinstance(exc, BrokenPipeError):
        return True
    if isinstance(exc, SystemExit) and isinstance(exc.__context__, BrokenPipeError):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_broken_pipe(e) for e in exc.exceptions)
    return False


async def _until_signal(
    url: str, interval: int, token: str | None, target: str | None, console: Console | None
) -> int:
    code = 0
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    return

            async def watch() -> None:
                nonlocal code
                try:
                    await run_watch(url, interval=interval, token=token, target=target, console=console)
                except (StreamRejected, ProtocolError) as exc:
                    print(f"trio-sse watch: error: {exc}", file=sys.stderr)
                    code = 1
                nursery.cancel_scope.cancel()

            nursery.start_soon(stop_on_signal)
            nursery.start_soon(watch)
    return code
