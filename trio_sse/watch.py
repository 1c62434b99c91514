"""``trio-sse watch URL``: the terminal view of a run (SPEC §6), on top of ``trio_sse.client``.

Owns: turning typed events into a rich live display on a terminal — a progress bar per
target with its current task and step, and a line per completed task above it — or into
plain lines when the output is not a terminal (``trio-sse watch URL | tee log``); and a clean
exit (code 0) on Ctrl-C / SIGTERM. Must not: read argv (``cli.py`` does), speak HTTP/SSE
itself (the client does, with resume), or render log-derived text as rich markup (a task id
like ``[red]x`` is shown as written: every such string goes in as a ``Text``).
"""

from __future__ import annotations

import re
import os
import signal
import sys
from dataclasses import dataclass, field

import trio
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TimeRemainingColumn,
)
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
    StreamRejected,
    TaskCompleteEvent,
)
from trio_sse.errors import ConfigError

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
    return line


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


@dataclass(slots=True)
class _Target:
    """What the view remembers of one target."""

    name: str
    run: str | None = None
    seen: set[str] = field(default_factory=set)  # task ids of the current run already shown
    task_key: tuple[str | None, int] | None = None  # (current task, completed) last printed
    status_key: tuple[bool, str, bool] | None = None
    bar: TaskID | None = None


class _Detail(ProgressColumn):
    """The target's current task, domain and step — plain text, never markup."""

    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get("detail", "")), overflow="ellipsis", no_wrap=True)


class _Name(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(task.description, style="bold")


class View:
    """Events in, output out. ``live`` (a terminal) shows bars; otherwise plain lines only."""

    def __init__(self, console: Console, url: str) -> None:
        self.console = console
        self.url = url
        self.live = console.is_terminal
        self.targets: dict[str, _Target] = {}
        self._connects = 0
        self._outage: str | None = None  # the reason last shown while disconnected
        self.progress = Progress(
            _Name(),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            # The ETA from the pace seen while watching (the log carries no start time).
            TimeRemainingColumn(),
            _Detail(),
            console=console,
            auto_refresh=self.live,
            disable=not self.live,
        )

    def __enter__(self) -> View:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.__exit__(None, None, None)

    def print(self, line: Text) -> None:
        # Progress.console.print prints above the live bars (or plainly when not live).
        self.console.print(line, soft_wrap=True, highlight=False, markup=False)

    def _target(self, name: str | None) -> _Target:
        name = clean(name or DEFAULT_TARGET)
        t = self.targets.get(name)
        if t is None:
            t = self.targets[name] = _Target(name)
            if self.live:
                t.bar = self.progress.add_task(name, total=None, detail="")
        return t

    def handle(self, event: Event | ConnectionEvent) -> None:
        if isinstance(event, ConnectionEvent):
            self._connection(event)
        elif isinstance(event, StatusEvent):
            self._status(event)
        elif isinstance(event, ProgressEvent):
            self._progress(event)
        elif isinstance(event, TaskCompleteEvent):
            self._task_complete(event)
        elif isinstance(event, RunCompleteEvent):
            self.print(run_line(event))
        elif isinstance(event, ErrorEvent):
            line = Text(f"[{clean(event.target or DEFAULT_TARGET)}] ", style="dim")
            line.append(f"error: {clean(event.message)}", style="bold red")
            self.print(line)

    def _connection(self, e: ConnectionEvent) -> None:
        if e.state == "live":
            self._connects += 1
            self._outage = None
            word = "connected to" if self._connects == 1 else "reconnected to"
            self.print(Text(f"{word} {self.url}", style="green"))
            return
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

    def _new_run(self, t: _Target, run: str | None) -> None:
        if run is not None and run != t.run:
            if t.run is not None:
                self.print(Text(f"[{t.name}] a new run started", style="bold"))
            t.run = run
            t.seen.clear()

    def _progress(self, e: ProgressEvent) -> None:
        t = self._target(e.target)
        self._new_run(t, e.run)
        if e.current_task:
            detail = clean(e.current_task)
            if e.current_domain:
                detail += f" ({clean(e.current_domain)})"
            if e.current_step is not None:
                detail += f" step {e.current_step}"
        else:
            detail = "finished" if e.finished else ("running" if e.running else "idle")
        if self.live and t.bar is not None:
            self.progress.update(t.bar, completed=e.tasks_completed, total=e.total_tasks, detail=detail)
            return
        # Plain output: a line when the task changes, not every step (a log stays readable).
        key = (e.current_task, e.tasks_completed)
        if key != t.task_key:
            t.task_key = key
            total = "?" if e.total_tasks is None else e.total_tasks
            line = Text(f"[{t.name}] ", style="dim")
            line.append(f"{e.tasks_completed}/{total} done, {detail}")
            self.print(line)

    def _task_complete(self, e: TaskCompleteEvent) -> None:
        t = self._target(e.target)
        if e.task_id in t.seen:  # a replay we already showed (after a reconnect)
            return
        t.seen.add(e.task_id)
        self.print(task_line(e))


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
        with View(console, url) as view:
            async for event in client.events(connection_events=True):
                view.handle(event)


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
