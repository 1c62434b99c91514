"""``trio-sse watch URL``: run as a real subprocess against a real server — plain lines into a
pipe, a live view on a pseudo-terminal, resume across a server restart, exit 0 on SIGINT,
one clear line for junk input. Log-derived text is never read as rich markup."""

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

import pytest
import trio
from browser import restartable_server
from rich.console import Console

from trio_sse.client import ConnectionEvent, ProgressEvent, RunCompleteEvent, StatusEvent, TaskCompleteEvent
from trio_sse.config import Settings, TargetSpec
from trio_sse.testing import free_port, simulated_run, simulated_server
from trio_sse.watch import View, task_line

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
