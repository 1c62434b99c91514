"""Cluster mode with main's features (SPEC §8, §9, §10; issue 14's merge), through two real
servers (``trio_sse.testing.running_server``: real Hypercorn on 127.0.0.1:0) on one real
``redis-server``, real log files, a real SQLite file, a real HTTP receiver for alerts and a
real sshd for an SSH target:

* the run history and alerts come from the leader only: a run is recorded and alerted once
  per cluster; when the leader changes mid-run the new one records the rest (the same run in
  the same database, nothing twice) and alerts what happened while nobody followed;
* ``/api/tasks/<id>`` and its files on either server: a local results folder is read by each
  process itself; an SSH target's only over the leader's connection — elsewhere a 503 (the
  file) or a view without steps (the task) naming the leader;
* what the leader's reducer computes reaches the other server's clients: the baseline
  comparison (``change``, ``run_complete.baseline``), ``progress.forecast``, the stall
  (``progress.stalled`` and its error event) and step events.

Real processes and Redis's own clock: real time; every wait is bounded (``GUARD``) and waits on
a stream's next frame or polls a condition another process makes true.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import trio

from receiver import Receiver
from redisd import RedisD
from support import wait_for
from test_cluster_redis import waa_run
from test_cluster_server import CUTS, DATA, GUARD, LEASE, append, expected_ids, settings, streaming
from test_ssh_source import spec
from trio_sse.config import TargetSpec
from trio_sse.server import Running
from trio_sse.sources.simulate import simulate, task_folder
from trio_sse.testing import running_server

pytestmark = [pytest.mark.redis, pytest.mark.slow]

START = dt.datetime(2024, 11, 20, 14, 0, 0)


def leads(server: Running) -> bool:
    node = server.hub.node
    assert node is not None
    return bool(node.leading)


@asynccontextmanager
async def leader_and_follower(
    first: Any, second: Any, **prepare: Any
) -> AsyncIterator[tuple[Running, Running]]:
    """Two servers of one cluster, the first one leading (started first, led before the
    second starts)."""
    async with running_server(first, **prepare) as a:
        await wait_for(lambda: leads(a), "the first server to lead", timeout=GUARD)
        async with running_server(second, **prepare) as b:
            yield a, b


async def writer_idle(server: Running) -> None:
    hub = server.hub
    with trio.fail_after(GUARD):
        if hub.recorder is not None:
            await hub.recorder.writer.wait_idle()
        if hub.alerting is not None:
            await hub.alerting.wait_idle()


async def get_json(url: str, path: str) -> Any:
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.get(url + path)
    assert r.status_code == 200, (path, r.text)
    return r.json()


def finish_alerts(receiver: Receiver) -> list[str]:
    return [t for t in (q.json()["title"] for q in receiver.requests) if " finished: " in t]


# ------------------------------------------------------------------ history and alerts


async def test_a_run_s_end_alerts_once_from_the_leader(redisd: RedisD, tmp_path: Path) -> None:
    """Both servers have --notify and no database (no ledger shared between them): only the
    leader's alerts go out."""
    log = tmp_path / "normal-0.log"
    receiver = Receiver()
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        base = replace(settings(redisd, log), notify=(receiver.url("json"),))
        async with leader_and_follower(base, base) as (a, b):
            await trio.sleep(1.5)  # (past the leader's settle time: what comes now is live)
            async with streaming(b.url) as on_b:
                append(log, DATA)
                await on_b.until(lambda: bool(on_b.events("run_complete")), "the run's end on the follower")
            with trio.fail_after(GUARD):
                await receiver.next_request()
            await writer_idle(a)
            await writer_idle(b)
            assert b.hub.alerting is not None and a.hub.alerting is not None
            assert b.hub.alerting.notifier.statistics().delivered == 0  # the follower observed nothing
            assert b.hub.alerting.replayed == 0
            assert a.hub.alerting.notifier.statistics().delivered == 1
        nursery.cancel_scope.cancel()
    assert len(finish_alerts(receiver)) == len(receiver.requests) == 1


async def test_the_history_is_the_leaders_and_a_new_leader_continues_the_run(redisd: RedisD, tmp_path: Path) -> None:
    """One database file for both (``hypercorn -w N`` on one host). Leader A records tasks
    1-3, follower B records nothing; A stops, the rest of the log is written before B takes
    over: B resumes at A's checkpoint, records the run's rest (and again, idempotently, what
    A published), and its end alerts once — it happened while nobody followed."""
    log = tmp_path / "normal-0.log"
    log.write_bytes(b"")
    receiver = Receiver()
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        base = replace(settings(redisd, log, LEASE), db=str(tmp_path / "history.sqlite3"),
                       notify=(receiver.url("json"),))  # fmt: skip
        a, stop_a = await nursery.start(server_task, base)
        await wait_for(lambda: leads(a), "the first server to lead", timeout=GUARD)
        b, _ = await nursery.start(server_task, base)
        async with streaming(b.url) as on_b:
            append(log, DATA[: CUTS[3]])
            await on_b.until(lambda: len(on_b.durable) == 3, "three tasks")
            await writer_idle(a)
            await writer_idle(b)
            assert a.hub.recorder is not None and b.hub.recorder is not None
            assert a.hub.recorder.writer.statistics().written >= 3
            assert b.hub.recorder.writer.statistics().written == 0  # only the leader records
            runs = (await get_json(b.url, "/api/runs"))["runs"]  # any process reads the file
            assert len(runs) == 1 and runs[0]["tasks"] == 3 and runs[0]["finished"] is None
            assert not receiver.requests
            await stop_a()  # its lease released; the rest is written before B takes over
            append(log, DATA[CUTS[3] :])
            await on_b.until(lambda: bool(on_b.events("run_complete")), "the run's end")
            ids = on_b.ids
        node = b.hub.node
        assert node is not None and leads(b)
        assert (node.statistics()["vm1"].terms, node.statistics()["vm1"].resumed) == (1, 1)
        with trio.fail_after(GUARD):
            await receiver.next_request()
        await writer_idle(b)
        runs = (await get_json(b.url, "/api/runs"))["runs"]
        run = runs[0]["run"]
        tasks = (await get_json(b.url, f"/api/runs/{run}"))["tasks"]
        assert b.hub.alerting is not None and b.hub.alerting.notifier.statistics().delivered == 1
        nursery.cancel_scope.cancel()
    assert ids == expected_ids()
    assert len(runs) == 1 and runs[0]["tasks"] == 8 and runs[0]["finished"] is not None
    assert sorted(t["task_id"] for t in tasks) == sorted(f"t{i}-WOS" for i in range(1, 9))  # each once
    assert len(finish_alerts(receiver)) == len(receiver.requests) == 1
    assert finish_alerts(receiver)[0].startswith(f"vm1 run {run} finished: 4/39 passed")  # (39 listed)


async def server_task(config: Any, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """A server in a task of its own (so servers stop in any order): ``started`` with
    (running, stop) — ``await stop()`` ends it and returns once it has ended."""
    stop, done = trio.Event(), trio.Event()

    async def stopped() -> None:
        stop.set()
        with trio.fail_after(GUARD):
            await done.wait()

    try:
        async with running_server(config) as server:
            task_status.started((server, stopped))
            await stop.wait()
    finally:
        done.set()


# ------------------------------------------------------------------ the leader's reducer, on a mirror


def run_log(scores: list[float], *, banner: str, upto: int | None = None, step_of: int | None = None) -> bytes:
    """A WAA log of ``len(scores)`` notepad tasks t1..tN with these scores (a banner line
    first: another banner, another run). ``upto``: only tasks 1..upto-1 finished and task
    ``upto`` started, up to its ``Step 1`` line when ``step_of == upto``; else the whole run
    and its end."""
    listed = ", ".join(f"('notepad', 't{i}-WOS')" for i in range(1, len(scores) + 1))
    lines = [f"[2024-05-06 09:59:59,000 INFO run/70-MainProcess] {banner}",
             f"[2024-05-06 10:00:00,001 INFO run/80-MainProcess] Worker 0 is doing tasks: [{listed}]"]  # fmt: skip
    for i, score in enumerate(scores, 1):
        lines += [
            f"[2024-05-06 10:{i:02d}:01,001 INFO run/90-MainProcess] [Domain]: notepad",
            f"[2024-05-06 10:{i:02d}:01,002 INFO run/91-MainProcess] [Example ID]: t{i}-WOS",
        ]
        if i == upto and step_of != upto:
            break
        lines.append(f"[2024-05-06 10:{i:02d}:02,001 INFO lib_run_single/30-MainProcess] Step 1: pyautogui.click({i}, 2)")
        if i == upto:
            break
        lines += [
            f"[2024-05-06 10:{i:02d}:03,001 INFO lib_run_single/40-MainProcess] Result: {score:.2f}",
            f"[2024-05-06 10:{i:02d}:03,002 INFO run/99-MainProcess] Finished notepad/t{i}-WOS",
        ]
    else:
        lines.append("[2024-05-06 11:00:00,001 INFO run/120-MainProcess] Average score: 0.5")
    return "".join(line + "\n" for line in lines).encode()


def grow(log: Path, now: bytes) -> None:
    """Append what ``now`` has beyond the log's bytes (which it must start with)."""
    had = log.read_bytes()
    assert now.startswith(had)
    append(log, now[len(had) :])


THEN = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]  # the baseline run
NOW = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0]  # t1 regressed, t2 fixed, t3-t5 the same, t6 regressed


async def test_a_mirror_carries_the_leader_s_baseline_forecast_stall_and_steps(redisd: RedisD, tmp_path: Path) -> None:
    log = tmp_path / "normal-0.log"
    db = str(tmp_path / "history.sqlite3")
    # The baseline run, recorded by a server of its own (no cluster) into the shared database.
    log.write_bytes(run_log(THEN, banner="first"))
    alone = replace(settings(redisd, log), redis=None, db=db)
    async with running_server(alone) as first:
        await wait_for(lambda: first.hub.monitors["vm1"].run_complete is not None, "the first run", timeout=GUARD)
        await writer_idle(first)
    # The next run, half done when the cluster starts: each new leader loads its baselines
    # before reading a line (--baseline previous: the first run).
    log.write_bytes(run_log(NOW, banner="second", upto=3))
    base = replace(settings(redisd, log), db=db, baseline="previous", stall_after=1.0)
    async with leader_and_follower(base, base) as (a, b):
        async with streaming(b.url) as on_b:
            await on_b.until(lambda: len(on_b.durable) == 2, "the replay of tasks 1-2")
            changes = [json.loads(f.data)["change"] for f in on_b.events("task_complete")]
            assert changes == ["regressed", "fixed"]
            # The forecast, from the leader's reducer (2 of 6 done, the baseline's rate as prior).
            await on_b.until(lambda: any(json.loads(f.data)["forecast"] for f in on_b.events("progress")),
                             "a progress with the forecast")  # fmt: skip
            forecast = next(json.loads(f.data)["forecast"] for f in on_b.events("progress") if json.loads(f.data)["forecast"])
            assert 0 <= forecast["low"] <= forecast["success_rate"] <= forecast["high"] <= 1
            # Task 3 is open and nothing moves: a stall (stall_after 1 s), said on the follower too.
            await on_b.until(lambda: any("run stalled" in json.loads(f.data)["message"] for f in on_b.events("error")),
                             "the stall's error event")  # fmt: skip
            await on_b.until(lambda: any(json.loads(f.data)["stalled"] for f in on_b.events("progress")),
                             "a progress with stalled")  # fmt: skip
            # A new step of task 3 ends the stall and goes out as a step event.
            grow(log, run_log(NOW, banner="second", upto=3, step_of=3))
            await on_b.until(lambda: bool(on_b.events("step")), "the step event")
            step = json.loads(on_b.events("step")[0].data)
            assert (step["task_id"], step["step"], step["action"]) == ("t3-WOS", 1, "pyautogui.click(3, 2)")
            await on_b.until(lambda: json.loads(on_b.events("progress")[-1].data)["stalled"] is None, "the stall's end")
            # The running task's view on either process: its worker as the published progress has it.
            running = [(await get_json(s.url, "/api/tasks/t3-WOS"))["task"] for s in (a, b)]
            assert running[0] == running[1]
            assert {k: running[1][k] for k in ("finished", "worker", "domain", "current_step", "action")} == {
                "finished": False, "worker": "0", "domain": "notepad", "current_step": 1,
                "action": "pyautogui.click(3, 2)",
            }  # fmt: skip
            grow(log, run_log(NOW, banner="second"))
            await on_b.until(lambda: bool(on_b.events("run_complete")), "the run's end")
            done = json.loads(on_b.events("run_complete")[0].data)
            results = [json.loads(f.data) for f in on_b.events("task_complete")]
        snapshots = [(await get_json(s.url, "/api/benchmark"))["targets"]["vm1"] for s in (a, b)]
    assert [r["change"] for r in results] == ["regressed", "fixed", "same", "same", "same", "regressed"]
    assert results[0]["baseline"] == {"score": 1.0, "success": True}
    assert (done["baseline"]["fixed"], done["baseline"]["regressed"]) == (1, 2)
    assert snapshots[0] == snapshots[1]  # every process answers from Redis alike
    assert [r["change"] for r in snapshots[1]["results"]] == [r["change"] for r in results]


# ------------------------------------------------------------------ /api/tasks/<id> and its files


async def test_task_views_and_files_on_either_server_for_a_local_results_folder(redisd: RedisD, tmp_path: Path) -> None:
    log, results = tmp_path / "waa.log", tmp_path / "results"
    done = await simulate(log, tasks=4, step_seconds=0, seed=3, clock_start=START, results_dir=results)
    target = TargetSpec(name="vm1", log=str(log), results=str(results), process_pattern=None)
    base = replace(settings(redisd, log), targets=(target,))
    async with leader_and_follower(base, base) as (a, b):
        for server in (a, b):
            await wait_for(lambda s=server: len(s.hub.monitors["vm1"].history) == 5, "the run in the mirror",
                           timeout=GUARD)  # fmt: skip
        async with httpx.AsyncClient(timeout=10) as c:
            for t in done.tasks:
                va, vb = [(await c.get(f"{s.url}/api/tasks/{t.task_id}")).json() for s in (a, b)]
                assert va == vb, t.task_id  # the same view from the follower and the leader
                assert vb["task"]["finished"] is True and vb["trajectory"]["found"] is True
                assert len(vb["steps"]) == (t.steps - 1 if t.error else t.steps)
            shot = vb["steps"][-1]["screenshot"]
            on_disk = (results / task_folder(done.tasks[-1]) / unquote(shot.split("/files/")[1].split("?")[0])).read_bytes()
            for server in (a, b):
                r = await c.get(server.url + shot)
                assert r.status_code == 200 and r.content == on_disk and r.headers["content-type"] == "image/png"
            missing = await c.get(f"{b.url}/api/tasks/nope-WOS")
            assert missing.status_code == 404 and "unknown task 'nope-WOS'" in missing.json()["error"]


@pytest.mark.sshd
async def test_an_ssh_targets_results_are_read_by_the_leader_only(redisd: RedisD, sshd: Any, tmp_path: Path) -> None:
    """One SSH connection per target cluster-wide (SPEC §10): the follower process has none to
    read the results folder with, so a file is a 503 naming the leader, and the task's view
    (its result, from Redis) says why it has no steps."""
    log, results = tmp_path / "waa.log", tmp_path / "results"
    done = await simulate(log, tasks=2, step_seconds=0, seed=5, clock_start=START, results_dir=results)
    target = TargetSpec(name="vm1", log=str(log), results=str(results), ssh=spec(sshd), process_pattern=None)
    base = replace(settings(redisd, log), targets=(target,), cache_dir=str(tmp_path / "cache"))
    task = done.tasks[0]
    async with leader_and_follower(base, base) as (a, b):
        for server in (a, b):
            await wait_for(lambda s=server: len(s.hub.monitors["vm1"].history) == 3, "the run in the mirror",
                           timeout=GUARD)  # fmt: skip
        owner = a.hub.node.owner  # type: ignore[union-attr]
        async with httpx.AsyncClient(timeout=20) as c:
            want = task.steps - 1 if task.error else task.steps
            with trio.fail_after(GUARD):
                while True:  # (a trajectory the leader still follows may not be read whole yet)
                    lead = (await c.get(f"{a.url}/api/tasks/{task.task_id}")).json()
                    if lead["trajectory"]["found"] is True and len(lead["steps"]) == want:
                        break
                    await trio.sleep(0.05)
            shot = lead["steps"][0]["screenshot"]
            assert (await c.get(a.url + shot)).status_code == 200
            other = (await c.get(f"{b.url}/api/tasks/{task.task_id}")).json()
            assert other["task"] == lead["task"] and other["steps"] == []
            assert other["trajectory"]["found"] is False and owner in other["trajectory"]["reason"]
            r = await c.get(b.url + shot)
            assert r.status_code == 503 and r.headers["content-type"] == "application/json"
            assert f"followed by process {owner}" in r.json()["error"]
        assert a.hub.node is not None and b.hub.node is not None
        source = a.hub.node.leading["vm1"].source  # type: ignore[attr-defined]
        assert source.statistics().connections_opened == 1  # the leader's one connection
        assert not b.hub.node.leading
