"""The results folder over SSH, against the real sshd harness (tests/sshd.py) with the results
in the stand-in container (tests/bin/docker): steps followed over the target's one
connection, the link dropping mid-task (steps resume, none twice), 100 clients on one
screenshot costing one remote read, a vanished file, a planted symlink, the link down."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from sshd import FAST

from support import scrape_metrics
from test_results_local import Harness, folder, reset_line, step_line
from test_ssh_source import spec
from trio_sse.config import Settings, TargetSpec
from trio_sse.filecache import FileCache
from trio_sse.results import Results
from trio_sse.sources import CurrentTask, LogItem, StepSeen, TrajectoryFound
from trio_sse.sources.simulate import simulate, task_folder
from trio_sse.sources.ssh import SSHSource
from trio_sse.sources.ssh.results import SSHResults
from trio_sse.sources.ssh.results_commands import ResultsCommands
from trio_sse.testing import running_server

pytestmark = pytest.mark.sshd

A = "366de66e-cbae-4d72-b042-26390db2b145-WOS"
TASK = CurrentTask("0", "notepad", A)
GUARD = 30


def target(sshd: Any, tmp_path: Path, **fields: Any) -> TargetSpec:
    sshd.container("waa")
    fields.setdefault("results", str(tmp_path / "results"))
    return TargetSpec(name="remote", log=str(tmp_path / "waa.log"), ssh=spec(sshd), container="waa",
                      log_location="container", process_pattern=None, **fields)


@asynccontextmanager
async def following(source: SSHSource, t: TargetSpec, cache: FileCache) -> AsyncIterator[Harness]:
    h = Harness(Path(t.results or ""))
    h.results = Results("remote", SSHResults(source.link, t, t.results or "", cache))
    send, receive = trio.open_memory_channel[LogItem](0)
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run)
        nursery.start_soon(h.pump, receive)
        await nursery.start(h.results.run, send, h.current)
        yield h
        nursery.cancel_scope.cancel()


def run_guarded(command: str) -> tuple[int, bytes]:
    """Run a guarded remote command line here, its stdin held open as a channel's is."""
    with subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        out = proc.stdout.read()
        status = proc.wait(timeout=10)
    return status, out


def test_results_commands_run_nothing_that_a_value_says(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    evil = f"/x'; touch {pwned}; echo '$(touch {pwned})`touch {pwned}`"
    cmds = ResultsCommands(evil)
    assert run_guarded(cmds.find(evil, evil)) == (0, b"\n")  # no such folder
    assert run_guarded(cmds.read(evil))[0] == 3  # MISSING_STATUS
    assert not pwned.exists()
    # and the real thing: a folder at the WAA depth, a file in it
    d = folder(tmp_path / "r e s")
    d.mkdir(parents=True)
    (d / "f.png").write_bytes(b"png bytes")
    real = ResultsCommands(str(tmp_path / "r e s"))
    assert run_guarded(real.find("notepad", A)) == (0, f"{d}\n".encode())
    assert run_guarded(real.read(str(d / "f.png"))) == (0, b"png bytes")
    os.symlink(d / "f.png", d / "link.png")
    assert run_guarded(real.read(str(d / "link.png")))[0] == 3  # a symlink is not served


async def test_steps_over_ssh_resume_after_the_link_drops_none_twice(sshd, tmp_path: Path) -> None:
    t = target(sshd, tmp_path)
    source = SSHSource(t, options=FAST)
    async with following(source, t, FileCache(None, 1 << 20)) as h:
        h.run_tasks(TASK)
        d = folder(tmp_path / "results")
        d.mkdir(parents=True)  # the folder appears after the task started
        traj = d / "traj.jsonl"
        traj.write_bytes(reset_line() + step_line(1))
        await h.until(lambda: len(h.steps()) == 1)
        assert h.items[0] == TrajectoryFound(A, "0")
        await sshd.stop()
        with traj.open("ab") as f:  # the agent goes on while the link is down
            f.write(step_line(2) + step_line(3)[:20])
        await trio.sleep(0.3)
        await sshd.start()
        await h.until(lambda: len(h.steps()) == 2)  # after the reconnect; step 3 is half-written
        with traj.open("ab") as f:
            f.write(step_line(3)[20:] + step_line(4))
        await h.until(lambda: len(h.steps()) == 4)
        assert [s[1] for s in h.steps()] == [1, 2, 3, 4]  # resumed at the byte read: none twice
        assert source.statistics().reconnects == 1


async def test_a_hundred_clients_on_one_screenshot_cost_one_remote_read(sshd, tmp_path: Path) -> None:
    t = target(sshd, tmp_path)
    done = await simulate(t.log, tasks=3, step_seconds=0, seed=5, results_dir=t.results,
                          clock_start=dt.datetime(2024, 11, 20, 14, 0))
    task = done.tasks[0]
    source = SSHSource(t, options=FAST)
    settings = Settings(port=0, targets=(t,), cache_dir=str(tmp_path / "cache"))
    async with running_server(settings, sources=[source]) as server:
        monitor = server.hub.monitors["remote"]
        backend = monitor.results.backend
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as c:
            with trio.fail_after(GUARD):
                while monitor.run_complete is None:
                    await trio.sleep(0.02)  # the log arrives over SSH (polling the state, bounded)
            view = (await c.get(f"/api/tasks/{task.task_id}")).json()
            assert view["trajectory"]["found"] is True and len(view["steps"]) == task.steps
            reads = backend.reads
            shot = view["steps"][-1]["screenshot"]
            bodies: list[bytes] = []

            async def look() -> None:
                r = await c.get(shot)
                assert r.status_code == 200 and r.headers["content-type"] == "image/png"
                bodies.append(r.content)

            async with trio.open_nursery() as n:
                for _ in range(100):
                    n.start_soon(look)
            name = shot.split("/files/")[1].split("?")[0].replace("%40", "@")
            on_disk = (Path(t.results or "") / task_folder(task) / name).read_bytes()
            assert bodies == [on_disk] * 100
            assert backend.reads == reads + 1  # exactly one remote read for the hundred
            assert server.hub.files.statistics().fetches == 1
            assert source.statistics().connections_opened == 1  # and no second connection
            assert (await c.get(shot)).status_code == 200 and backend.reads == reads + 1  # from the disk cache
            metrics = await scrape_metrics(server.url)
            assert metrics["trio_sse_file_cache_fetches_total"] == 1.0


async def test_a_vanished_file_a_symlink_and_the_link_down(sshd, tmp_path: Path) -> None:
    t = target(sshd, tmp_path)
    done = await simulate(t.log, tasks=3, step_seconds=0, seed=6, results_dir=t.results,
                          clock_start=dt.datetime(2024, 11, 20, 14, 0))
    task = next(x for x in done.tasks if x.error is None)
    source = SSHSource(t, options=FAST)
    settings = Settings(port=0, targets=(t,), cache_dir=str(tmp_path / "cache"))
    async with running_server(settings, sources=[source]) as server:
        monitor = server.hub.monitors["remote"]
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as c:
            with trio.fail_after(GUARD):
                while monitor.run_complete is None:
                    await trio.sleep(0.02)
            view = (await c.get(f"/api/tasks/{task.task_id}")).json()
            first, second = view["steps"][0]["screenshot"], view["steps"][1]["screenshot"]
            d = Path(t.results or "") / task_folder(task)
            os.unlink(d / first.split("/files/")[1].split("?")[0].replace("%40", "@"))
            r = await c.get(first)
            assert r.status_code == 404 and "no longer on the target" in r.json()["error"]
            assert (await scrape_metrics(server.url))["trio_sse_result_files_missing_total{target=remote}"] == 1.0
            secret = tmp_path / "secret.txt"
            secret.write_text("TOP-SECRET")
            name = second.split("/files/")[1].split("?")[0].replace("%40", "@")
            os.unlink(d / name)
            os.symlink(secret, d / name)
            r = await c.get(second)
            assert r.status_code == 404 and b"TOP-SECRET" not in r.content
            await sshd.stop()
            with trio.fail_after(GUARD):
                while monitor.status.value.connected:
                    await trio.sleep(0.02)
            other = next(x for x in done.tasks if x is not task)
            view = (await c.get(f"/api/tasks/{other.task_id}")).json()
            assert view["trajectory"]["found"] is False and "127.0.0.1" in view["trajectory"]["reason"]
            shot = f"/api/tasks/{task.task_id}/files/" + view_name(task, t)
            r = await c.get(shot)
            assert r.status_code == 503 and set(r.json()) == {"error"}


def view_name(task: Any, t: TargetSpec) -> str:
    """A listed file of ``task`` not fetched yet (its reset screenshot)."""
    d = Path(t.results or "") / task_folder(task)
    line0 = json.loads((d / "traj.jsonl").read_text().splitlines()[0])
    return str(line0["screenshot"])
