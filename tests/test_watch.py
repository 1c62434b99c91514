"""``trio-sse watch URL``: run as a real subprocess against a real server — plain lines into a
pipe, a live view on a pseudo-terminal (read at 80 columns as the terminal shows it, with
pyte: the step visible, lines that fit, one last frame after a Ctrl-C typed on it), resume
across a server restart, exit 0 on SIGINT, one clear line for junk input. The view itself with
a hand-moved clock: each worker's step, instruction and action, pass rate, elapsed time (the
log's clock) and ETA, a stall, the per-domain summary once. Log-derived text is never read as
rich markup."""

from __future__ import annotations

import codecs
import errno
import fcntl
import io
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pyte
import pytest
import trio
from browser import restartable_server
from rich.cells import cell_len
from rich.console import Console

from trio_sse.client import (
    ConnectionEvent,
    ProgressEvent,
    RunCompleteEvent,
    StatusEvent,
    StepEvent,
    TaskCompleteEvent,
)
from trio_sse.config import Settings, TargetSpec
from trio_sse.model import BaselineResult, Forecast, Worker
from trio_sse.testing import free_port, simulated_run, simulated_server
from trio_sse.watch import View, run_from_id, task_line

GUARD = 40  # seconds: a guard against a hang, never a wait
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def watch_cmd(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "trio_sse", "watch", url, "--interval", "1", *args]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIO_SSE_", "COLUMNS", "LINES"))}
    env.pop("NO_COLOR", None)
    env.pop("FORCE_COLOR", None)
    env.pop("TERM", None)
    env.update(extra)
    return env


class Output:
    """Everything a process wrote so far; ``until`` reads more until a condition holds."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.text = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    async def until(self, condition: Callable[[str], bool]) -> str:
        while not condition(self.text):
            try:
                chunk = await self.stream.receive_some(65536)
            except trio.BrokenResourceError as exc:  # a pty master reads EIO once the child is gone
                if not (isinstance(exc.__cause__, OSError) and exc.__cause__.errno == errno.EIO):
                    raise
                chunk = b""
            if not chunk:
                raise AssertionError(f"the output ended before the condition held:\n{self.text}")
            self.text += self._decoder.decode(chunk)
        return self.text

    async def rest(self) -> str:
        try:
            await self.until(lambda _: False)
        except AssertionError:
            pass
        return self.text


def task_lines(text: str, task_id: str) -> list[str]:
    return [line for line in ANSI.sub("", text).splitlines() if f" {task_id} " in line and ("✓" in line or "✗" in line)]


def expected_line_part(t: object) -> str:
    mark = "✓" if t.success else "✗"  # type: ignore[attr-defined]
    score = "N/A" if t.score is None else f"{t.score:.2f}"  # type: ignore[attr-defined]
    return f"{mark} {t.task_id} ({t.domain}) score {score}"  # type: ignore[attr-defined]


async def stop_with_sigint(proc: trio.Process) -> int:
    proc.send_signal(signal.SIGINT)
    with trio.fail_after(10):
        return await proc.wait()


# ------------------------------------------------------------------ a pipe: plain lines


@pytest.mark.slow
async def test_piped_output_is_plain_lines_one_per_task(tmp_path: Path) -> None:
    async with simulated_server(tmp_path, tasks=4, step_seconds=0.02) as sim:
        proc = await trio.lowlevel.open_process(
            watch_cmd(sim.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env()
        )
        assert proc.stdout is not None and proc.stderr is not None
        out = Output(proc.stdout)
        with trio.fail_after(GUARD):
            # Lines arrive while the process runs (no buffering until exit): `| tee log` works.
            await out.until(lambda text: "run complete" in text)
            rc = await stop_with_sigint(proc)
            await out.rest()
            err = await Output(proc.stderr).rest()
    assert rc == 0, err
    assert err == ""
    assert not ANSI.search(out.text), "no escape codes into a pipe"
    for t in sim.expected:
        lines = task_lines(out.text, t.task_id)
        assert len(lines) == 1, (t.task_id, out.text)
        assert expected_line_part(t) in lines[0]
        if t.error:
            assert f"error: {t.error}" in lines[0]
    passed = sum(t.success for t in sim.expected)
    assert f"run complete: {passed}/4 passed" in out.text
    assert out.text.startswith(f"connected to {sim.url}")


# ------------------------------------------------------------------ a terminal: the live view


@pytest.mark.slow
async def test_on_a_terminal_it_shows_a_live_progress_view(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # rows, cols
    async with simulated_server(tmp_path, tasks=4, step_seconds=0.05) as sim:
        try:
            proc = await trio.lowlevel.open_process(
                watch_cmd(sim.url),
                stdin=subprocess.DEVNULL,
                stdout=slave,
                stderr=slave,
                env=clean_env(TERM="xterm-256color"),
            )
        finally:
            os.close(slave)
        stream = trio.lowlevel.FdStream(master)
        out = Output(stream)
        with trio.fail_after(GUARD):
            async with stream:
                await out.until(lambda text: "run complete" in ANSI.sub("", text))
                # The bar reaches 4/4 (progress follows the run's last durable event).
                await out.until(lambda text: re.search(r"local\s.*4/4", ANSI.sub("", text)) is not None)
                rc = await stop_with_sigint(proc)
                await out.rest()
    assert rc == 0, out.text
    assert ANSI.search(out.text), "a terminal gets colours and a redrawn live view"
    plain = ANSI.sub("", out.text)
    for t in sim.expected:
        assert len(task_lines(out.text, t.task_id)) == 1, (t.task_id, plain)
        assert expected_line_part(t) in plain
    assert "Traceback" not in plain and "KeyboardInterrupt" not in plain


# ------------------------------------------------------------------ resume across a restart


@pytest.mark.slow
async def test_resumes_across_a_server_restart_each_task_once(tmp_path: Path) -> None:
    log = tmp_path / "waa.log"
    target = TargetSpec(name="local", log=str(log), process_pattern=None)
    settings = replace(Settings(port=free_port(), targets=(target,)), retry_ms=200)
    async with restartable_server(settings) as server:
        proc = await trio.lowlevel.open_process(
            watch_cmd(server.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env()
        )
        assert proc.stdout is not None
        out = Output(proc.stdout)
        with trio.fail_after(GUARD):
            # The run starts once the watcher is connected (a process start takes a while).
            await out.until(lambda text: "connected to" in text)
            async with simulated_run(log, tasks=8, step_seconds=0.1) as run:
                await out.until(lambda text: text.count("✓") + text.count("✗") >= 2)
                await server.restart()
                assert not run.done.is_set(), "the restart must happen mid-run"
                await out.until(lambda text: "run complete" in text)
            rc = await stop_with_sigint(proc)
    assert rc == 0
    assert "connection lost (the server ended the stream); reconnecting in 0.2s" in out.text
    assert f"reconnected to {server.url}" in out.text
    for t in run.expected:
        assert len(task_lines(out.text, t.task_id)) == 1, (t.task_id, out.text)


# ------------------------------------------------------------------ junk and refusals


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-a-url"], "server URL must look like http://HOST:PORT, got 'not-a-url'"),
        (["ftp://127.0.0.1:1"], "server URL must look like http://HOST:PORT"),
        (["http://127.0.0.1:99999"], "bad port"),
    ],
)
async def test_junk_url_is_one_line_and_exit_2(args: Sequence[str], message: str) -> None:
    with trio.fail_after(GUARD):
        result = await trio.run_process(
            [sys.executable, "-m", "trio_sse", "watch", *args], capture_stdout=True, capture_stderr=True, check=False, env=clean_env()
        )
    err = result.stderr.decode()
    assert result.returncode == 2
    assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "settings", "message"),
    [
        (["--target", "nosuch"], {}, "unknown target 'nosuch'"),
        (["--token", "wrong"], {"token": "right"}, "a valid token is required"),
        ([], {"token": "right"}, "a valid token is required"),
    ],
)
async def test_a_refused_stream_is_one_line_and_exit_1(
    tmp_path: Path, extra: list[str], settings: dict[str, str], message: str
) -> None:
    async with simulated_server(tmp_path, tasks=1, step_seconds=0.001, **settings) as sim:
        with trio.fail_after(GUARD):
            result = await trio.run_process(
                watch_cmd(sim.url, *extra), capture_stdout=True, capture_stderr=True, check=False, env=clean_env()
            )
    err = result.stderr.decode()
    assert result.returncode == 1, (result.stdout, err)
    assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
async def test_the_token_comes_from_the_environment_too(tmp_path: Path) -> None:
    async with simulated_server(tmp_path, tasks=2, step_seconds=0.001, token="right") as sim:
        await sim.done.wait()
        proc = await trio.lowlevel.open_process(
            watch_cmd(sim.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(TRIO_SSE_TOKEN="right")
        )
        assert proc.stdout is not None
        out = Output(proc.stdout)
        with trio.fail_after(GUARD):
            await out.until(lambda text: "run complete" in text)
            assert await stop_with_sigint(proc) == 0


# ------------------------------------------------------------------ the view itself


HOSTILE_ID = "[red]x[/red][link=http://evil.example]y[/link]"
HOSTILE_ERROR = "[bold]boom[/] \x1b[2J\x1b]0;title\x07 <b>"


def _render(view: View) -> str:
    return view.console.file.getvalue()  # type: ignore[attr-defined]


def test_log_text_is_never_read_as_markup_in_plain_lines() -> None:
    console = Console(file=io.StringIO(), force_terminal=False, width=300)
    view = View(console, "http://monitor.test")
    with view:
        # (the task under way first: once its result is in, it is no longer the current task)
        view.handle(ProgressEvent("t", 1, 3, HOSTILE_ID, 2, current_domain="[i]d[/i]", run="r1"))
        view.handle(TaskCompleteEvent("t", HOSTILE_ID, False, None, domain="[i]d[/i]", error=HOSTILE_ERROR))
    text = _render(view)
    assert f"✗ {HOSTILE_ID} ([i]d[/i]) score N/A error: [bold]boom[/]" in text
    assert f"1/3 done, {HOSTILE_ID} ([i]d[/i]) step 2" in text
    assert "\x1b" not in text, "control sequences from the log are defused"
    assert "\\x1b[2J\\x1b]0;title\\x07 <b>" in text


def test_log_text_is_never_read_as_markup_in_the_live_view() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=300, color_system=None)
    view = View(console, "http://monitor.test")  # no refresh thread: redrawn on each event
    with view:
        view.handle(ProgressEvent("t", 1, 3, HOSTILE_ID, 2, current_domain="d", run="r1"))
        console.print(view.renderable())
    # The step first, then the domain and the task (cut first when the line is too long).
    assert f"step 2 · d · {HOSTILE_ID}" in _render(view)


def test_replayed_results_print_once_and_a_new_run_resets() -> None:
    console = Console(file=io.StringIO(), force_terminal=False, width=200)
    view = View(console, "http://monitor.test")
    a = TaskCompleteEvent("t", "task-a", True, 1.0, domain="notepad")
    with view:
        view.handle(ConnectionEvent("live"))
        view.handle(ProgressEvent("t", 0, 2, None, None, run="r1"))
        view.handle(a)
        view.handle(ConnectionEvent("reconnecting", "the server ended the stream", 3.0))
        view.handle(ConnectionEvent("live"))
        view.handle(a)  # a full replay (the server could not place our id): no second line
        view.handle(ProgressEvent("t", 0, 2, None, None, run="r2"))
        view.handle(a)  # the same task in a new run is news
        view.handle(StatusEvent("t", False, "unknown", False, None, None))
        view.handle(RunCompleteEvent("t", 2, 3, 1, 0.5))
    text = _render(view)
    assert text.count("✓ task-a (notepad) score 1.00") == 2
    assert "connection lost (the server ended the stream); reconnecting in 3s" in text
    assert "reconnected to http://monitor.test" in text
    assert "[t] a new run started" in text
    assert "[t] VM offline" in text
    assert "[t] run complete: 1/2 passed (50.0%), average score 0.50 — 3 tasks were planned" in text


def test_task_line_shows_zero_as_zero() -> None:
    line = task_line(TaskCompleteEvent("t", "a", False, 0.0, steps=3)).plain
    assert line == "[t] ✗ a score 0.00, 3 steps"


@pytest.mark.slow
async def test_a_bad_interval_is_one_line_and_exit_2() -> None:
    with trio.fail_after(GUARD):
        result = await trio.run_process(
            [sys.executable, "-m", "trio_sse", "watch", "http://127.0.0.1:1", "--interval", "0"],
            capture_stdout=True, capture_stderr=True, check=False, env=clean_env(),
        )
    err = result.stderr.decode()
    assert result.returncode == 2
    assert "interval" in err and "got '0'" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
async def test_an_unreachable_server_is_said_once_and_retried_until_sigint() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = await trio.lowlevel.open_process(
        watch_cmd(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env()
    )
    assert proc.stdout is not None
    out = Output(proc.stdout)
    with trio.fail_after(GUARD):
        await out.until(lambda text: f"cannot connect to {url} (ConnectError" in text)
        assert await stop_with_sigint(proc) == 0
        await out.rest()


def test_an_outage_is_one_line_not_one_per_attempt() -> None:
    console = Console(file=io.StringIO(), force_terminal=False, width=200)
    view = View(console, "http://monitor.test")
    refused = ConnectionEvent("reconnecting", "ConnectError: refused", 3.0)
    with view:
        for _ in range(3):
            view.handle(refused)
        view.handle(ConnectionEvent("live"))
        view.handle(ConnectionEvent("reconnecting", "the server ended the stream", 3.0))
        view.handle(refused)
        view.handle(refused)
    lines = _render(view).splitlines()
    assert lines == [
        "cannot connect to http://monitor.test (ConnectError: refused); retrying every 3s",
        "connected to http://monitor.test",
        "connection lost (the server ended the stream); reconnecting in 3s",
        "connection lost (ConnectError: refused); reconnecting in 3s",
    ]


# ------------------------------------------------------------------ the live view at 80 columns

LONG_A = "41d848ad-c29b-4681-be8f-8d8a1d2a4b33-WOS-with-a-very-long-suffix"
LONG_B = "0e763496-b6bb-4508-a427-fad0b6c3e195-WOS"
INSTRUCTION_A = "Open a new tab in Chrome and search for 'Windows Agent Arena', then bookmark the page."
ACTION_B = "pyautogui.hotkey('ctrl', 's')\npyautogui.typewrite('second line')"


class FakeClock:
    """Monotonic seconds the test moves by hand (the view's ``clock``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def frame(view: View, width: int = 80) -> list[str]:
    """The live view as a terminal of ``width`` columns would show it now."""
    out = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None, legacy_windows=False)
    out.print(view.renderable())
    return out.file.getvalue().splitlines()  # type: ignore[attr-defined]


def two_workers(step_a: int, **extra: object) -> ProgressEvent:
    return ProgressEvent(
        "local", 1, 30, LONG_A, step_a, current_domain="libreoffice_writer", run="abc",
        workers=(Worker("1", LONG_A, "libreoffice_writer", step_a), Worker("2", LONG_B, "vs_code", 4, evaluating=True)),
        instruction=INSTRUCTION_A, action="pyautogui.click(512, 384)", started_at="2020-01-01T10:00:00",
        max_steps=15, success_threshold=1.0, **extra,  # type: ignore[arg-type]
    )


def test_the_live_view_keeps_each_workers_step_and_says_what_it_does_at_80_columns() -> None:
    clock = FakeClock()
    view = View(Console(file=io.StringIO(), force_terminal=True, width=80, color_system=None), "http://m.test", clock=clock)
    with view:
        view.handle(ConnectionEvent("live"))
        # The replay: a result that finished at 10:20 on the log's clock (years from ours).
        view.handle(TaskCompleteEvent("local", "done-1", True, 1.0, domain="chrome", finished_at="2020-01-01T10:20:00", id="local:abc-1"))
        # Worker 2 moved last: progress carries its instruction and action.
        view.handle(replace(two_workers(7), instruction="Install the Python extension.", action=ACTION_B, current_task=LONG_B, current_step=4))
        view.handle(two_workers(7))
        clock.now += 30
        lines = frame(view)
    text = "\n".join(lines)
    assert all(len(line) <= 80 for line in lines), text
    assert lines[0].startswith("local ") and lines[0].endswith(" 1/30   3%"), text
    assert lines[1] == "  passed 1/1 100.0% (≥1.00) · avg 1.00 · elapsed ≥0:20:30 · ETA 9:39:30", text
    # Each worker: the step first (never the part that is cut), then domain and task.
    assert lines[2].startswith("  1 step 7/15 · libreoffice_writer · 41d848ad-c29b-4681-be8f") and lines[2].endswith("…"), text
    assert lines[3] == "    Open a new tab in Chrome and search for 'Windows Agent Arena', then bookmar…", text
    assert lines[4] == "    ▸ pyautogui.click(512, 384)", text
    assert lines[5] == f"  2 step 4/15 · evaluating · vs_code · {LONG_B}", text
    assert lines[6] == "    Install the Python extension."
    assert lines[7] == "    ▸ pyautogui.hotkey('ctrl', 's')", "an action's first line"
    assert len(lines) == 8, text


def test_a_stall_counts_on_between_progress_events_and_the_end_says_finished() -> None:
    clock = FakeClock()
    view = View(Console(file=io.StringIO(), force_terminal=True, width=80, color_system=None), "http://m.test", clock=clock)
    with view:
        view.handle(ConnectionEvent("live"))
        view.handle(ProgressEvent("local", 0, 3, "t1", 2, run="abc", stalled=700.0))
        clock.now += 120
        assert "  stalled for 14 min" in frame(view)
        assert frame(view)[1] == "  watching 0:02:00", "no started_at (an older server): the time watched, so labelled"
        view.handle(ConnectionEvent("reconnecting", "the server ended the stream", 3.0))
        assert frame(view)[0].startswith("local (last known) "), "values from before an outage are labelled"
        view.handle(ConnectionEvent("live"))
        view.handle(RunCompleteEvent("local", 3, 3, 2, 0.5, id="local:abc-4"))
        lines = frame(view)
    assert "  finished" in lines and not any("stalled" in line for line in lines)


def test_the_per_domain_summary_is_printed_once_per_run() -> None:
    console = Console(file=io.StringIO(), force_terminal=False, width=80)
    view = View(console, "http://m.test")
    results = [
        TaskCompleteEvent("t", "a", True, 1.0, domain="notepad", id="t:abc-1"),
        TaskCompleteEvent("t", "b", False, 0.0, domain="notepad", id="t:abc-2"),
        TaskCompleteEvent("t", "c", False, None, domain="chrome", error="boom", id="t:abc-3"),
    ]
    end = RunCompleteEvent("t", 3, 3, 1, 0.5, id="t:abc-4")
    with view:
        for e in [*results, end]:
            view.handle(e)
        view.handle(ConnectionEvent("reconnecting", "the server ended the stream", 1.0))
        for e in [*results, end]:  # a full replay (the server could not place our id)
            view.handle(e)
        # A late event of the run we left, once a new one started: not news.
        view.handle(ProgressEvent("t", 0, 2, None, None, run="def"))
        view.handle(TaskCompleteEvent("t", "a", True, 1.0, domain="notepad", id="t:abc-1"))
    text = _render(view)
    assert text.count("[t] run complete") == 1 and text.count("[t] by domain") == 1, text
    table = text[text.index("[t] by domain"):].splitlines()[1:4]
    assert [line.split() for line in table] == [
        ["domain", "tasks", "passed", "average"],
        ["chrome", "1", "0", "(0%)", "N/A"],
        ["notepad", "2", "1", "(50%)", "0.50"],
    ], text
    assert text.count("✓ a (notepad)") == 1
    assert "[t] a new run started" in text


def test_plain_lines_give_the_sums_each_tasks_instruction_once_and_each_workers_task() -> None:
    console = Console(file=io.StringIO(), force_terminal=False, width=80)
    view = View(console, "http://m.test")
    with view:
        view.handle(ProgressEvent("t", 0, 4, "x", 1, current_domain="d", run="r", instruction=HOSTILE_ERROR))
        view.handle(ProgressEvent("t", 0, 4, "x", 2, current_domain="d", run="r", instruction=HOSTILE_ERROR))
        view.handle(TaskCompleteEvent("t", "x", True, 1.0, domain="d"))
        view.handle(ProgressEvent(
            "t", 1, 4, "z", 1, current_domain="d", run="r",
            workers=(Worker("1", "y", "d", 3), Worker("2", "z", "d", 1)),
        ))
    lines = _render(view).splitlines()
    assert lines == [
        "[t] 0/4 done, x (d) step 1",
        "[t] x instruction: [bold]boom[/] \\x1b[2J\\x1b]0;title\\x07 <b>",
        "[t] ✓ x (d) score 1.00",
        "[t] 1/4 done, worker 1: y (d) step 3 · passed 1/1 (100.0%) · average 1.00",
        "[t] 1/4 done, worker 2: z (d) step 1 · passed 1/1 (100.0%) · average 1.00",
    ], lines


def test_each_worker_shows_its_own_instruction_and_action_from_progress_workers() -> None:
    clock = FakeClock()
    view = View(Console(file=io.StringIO(), force_terminal=True, width=80, color_system=None), "http://m.test", clock=clock)
    with view:
        view.handle(ConnectionEvent("live"))
        # A newer server: each worker's entry carries its own instruction and action (the
        # top-level fields name only the worker that moved last).
        view.handle(replace(two_workers(7), workers=(
            Worker("1", LONG_A, "libreoffice_writer", 7, instruction="Bold the title.", action="pyautogui.click(1, 2)"),
            Worker("2", LONG_B, "vs_code", 4, instruction="Install the Python extension.", action=ACTION_B),
        )))
        lines = frame(view)
    assert lines[3:5] == ["    Bold the title.", "    ▸ pyautogui.click(1, 2)"], lines
    assert lines[6:8] == ["    Install the Python extension.", "    ▸ pyautogui.hotkey('ctrl', 's')"], lines


def test_a_step_event_moves_its_worker_at_once() -> None:
    clock = FakeClock()
    view = View(Console(file=io.StringIO(), force_terminal=True, width=80, color_system=None), "http://m.test", clock=clock)
    with view:
        view.handle(ConnectionEvent("live"))
        view.handle(two_workers(7))
        frame_before = frame(view)
        # Worker 2's next step arrives before the next (coalesced) progress (so it is no
        # longer evaluating either).
        view.handle(StepEvent("local", LONG_B, 5, "pyautogui.press('enter')", "/api/tasks/x/files/s.png?target=local", worker="2"))
        moved = frame(view)
        # Worker 1's task ends and its next one's first step comes before progress names it.
        view.handle(TaskCompleteEvent("local", LONG_A, True, 1.0, domain="libreoffice_writer", id="local:abc-2"))
        view.handle(StepEvent("local", "next-task-WOS", 1, "WAIT", None, worker="1"))
        ahead = frame(view)
        # A late step of the finished task: not news.
        view.handle(StepEvent("local", LONG_A, 8, "pyautogui.click(9, 9)", None, worker="1"))
        late = frame(view)
    assert moved[5:7] == [f"  2 step 5/15 · vs_code · {LONG_B}", "    ▸ pyautogui.press('enter')"], moved
    assert moved[2:5] == frame_before[2:5], "the other worker is as it was"
    assert ahead[2:4] == ["  1 step 1/15 · next-task-WOS", "    ▸ WAIT"], ahead
    assert late == ahead


def test_the_forecast_and_the_changes_against_a_baseline() -> None:
    clock = FakeClock()
    console = Console(file=io.StringIO(), force_terminal=True, width=200, color_system=None)  # (lines above the view)
    view = View(console, "http://m.test", clock=clock)
    regressed = TaskCompleteEvent("local", "t-2", False, 0.0, domain="chrome", id="local:abc-2",
                                  baseline=BaselineResult(1.0, True), change="regressed")  # fmt: skip
    with view:
        view.handle(ConnectionEvent("live"))
        view.handle(TaskCompleteEvent("local", "t-1", True, 1.0, domain="chrome", id="local:abc-1",
                                      baseline=BaselineResult(0.0, False), change="fixed"))  # fmt: skip
        view.handle(regressed)
        view.handle(two_workers(3, forecast=Forecast(0.6234, 0.55, 0.7049)))
        lines = frame(view)
        view.handle(RunCompleteEvent("local", 2, 2, 1, 0.5, id="local:abc-3", baseline={
            "run": "local:0123abcd", "fixed": 1, "regressed": 1, "same": 0, "new": 0, "missing": 28,
            "passed_then": 1, "tasks_then": 30, "passed_now": 1, "tasks_now": 2, "average_then": 0.4, "average_now": 0.5,
        }))  # fmt: skip
        end = frame(view)
    assert lines[2] == "  expected 62% (55–70%) · vs baseline: 1 fixed, 1 regressed", lines
    assert "expected" not in "\n".join(end) and "  vs baseline: 1 fixed, 1 regressed" in end, end
    printed = ANSI.sub("", _render(view))
    assert "✗ t-2 (chrome) score 0.00 · regressed (was ✓ 1.00)" in printed
    assert "✓ t-1 (chrome) score 1.00 · fixed (was ✗ 0.00)" in printed
    assert ("[local] vs baseline local:0123abcd: 1 fixed, 1 regressed, 0 same, 0 new; passed 1/30 → 1/2, "
            "average 0.40 → 0.50") in printed  # fmt: skip
    assert task_line(replace(regressed, change="same")).plain.endswith("score 0.00"), "only a change is marked"


def test_plain_lines_carry_the_forecast_and_never_a_line_per_step() -> None:
    console = Console(file=io.StringIO(), force_terminal=False, width=200)
    view = View(console, "http://m.test")
    with view:
        view.handle(TaskCompleteEvent("t", "x", True, 1.0, domain="d", id="t:r-1"))
        view.handle(ProgressEvent("t", 1, 4, "y", 1, current_domain="d", run="r", forecast=Forecast(0.5, 0.25, 0.75)))
        view.handle(StepEvent("t", "y", 2, "pyautogui.click(1, 2)", None, worker="0"))
        view.handle(StepEvent("t", "y", 3, "WAIT", None, worker="0"))
    lines = _render(view).splitlines()
    assert lines == [
        "[t] ✓ x (d) score 1.00",
        "[t] 1/4 done, y (d) step 1 · passed 1/1 (100.0%) · average 1.00 · expected 50% (25–75%)",
    ], lines


@pytest.mark.parametrize("junk", [None, "", "garbage", "t:abc", "other:abc-1", "t:ABC-1", "t:abc-1:2"])
def test_an_id_that_does_not_parse_names_no_run(junk: str | None) -> None:
    assert run_from_id(junk, "t") is None


def test_ids_name_their_run_also_in_a_stream_of_several_targets() -> None:
    assert run_from_id("t:abc-1", "t") == "abc"
    assert run_from_id("u:111-4,t:abc-0.3_1.2", "t") == "abc"


# ------------------------------------------------------------------ a real terminal, 80 columns, Ctrl-C


def _screen(text: str, cols: int, rows: int) -> list[str]:
    screen = pyte.Screen(cols, rows)
    pyte.Stream(screen).feed(text)
    return [line.rstrip() for line in screen.display]


def _set_controlling_terminal() -> None:
    # (in the child, after setsid): the pty becomes its terminal, so a Ctrl-C typed there
    # reaches it as SIGINT through the line discipline, as at a real keyboard.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.mark.slow
async def test_at_80_columns_the_step_shows_lines_fit_and_ctrl_c_leaves_one_frame(tmp_path: Path) -> None:
    cols, rows = 80, 60
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    async with simulated_server(tmp_path, tasks=6, step_seconds=0.15) as sim:
        try:
            proc = await trio.lowlevel.open_process(
                watch_cmd(sim.url),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=clean_env(TERM="xterm-256color"),
                start_new_session=True,
                preexec_fn=_set_controlling_terminal,
            )
            stream = trio.lowlevel.FdStream(os.dup(master))
            out = Output(stream)
            step_line = re.compile(r"^  step \d+/15 · \w+ · [0-9a-f]{8}-")
            with trio.fail_after(GUARD):
                async with stream:
                    # Mid-run: the worker's line starts with its step.
                    mid = await out.until(lambda text: any(step_line.match(x) for x in _screen(text, cols, rows)))
                    await out.until(lambda text: "by domain" in ANSI.sub("", text))
                    echo_while_live = termios.tcgetattr(slave)[3] & termios.ECHO
                    os.write(master, b"\x03")  # Ctrl-C, typed
                    with trio.fail_after(10):
                        rc = await proc.wait()
                    echo_after = termios.tcgetattr(slave)[3] & termios.ECHO
                    os.close(slave)  # the last holder: the master reads the end now
                    slave = -1
                    await out.rest()
        finally:
            if slave >= 0:
                os.close(slave)
            os.close(master)
    assert rc == 0, out.text
    assert any(step_line.match(x) for x in _screen(mid, cols, rows))
    # Everything rich wrote is at most 80 columns wide: result lines are wrapped at word
    # boundaries by rich (never by the terminal, mid-number).
    segments = [s for s in re.split(r"[\r\n]", ANSI.sub("", out.text)) if s]
    assert max(cell_len(s) for s in segments) <= cols, [s for s in segments if cell_len(s) > cols]
    final = _screen(out.text, cols, rows)
    # The last frame once: the bar is on the screen one time, no "^C" under it.
    assert sum(line.startswith("local ━") for line in final) == 1, "\n".join(final)
    assert not any("^C" in line for line in final), "\n".join(final)
    assert echo_while_live == 0 and echo_after != 0, "the terminal's echo is off while live, and restored"
    plain = ANSI.sub("", out.text)
    for t in sim.expected:
        assert len(task_lines(out.text, t.task_id)) == 1, (t.task_id, plain)
    assert plain.count("run complete") == 1 and plain.count("by domain") == 1
    assert "Traceback" not in plain and "KeyboardInterrupt" not in plain
