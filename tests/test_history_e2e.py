"""Run history and alerts end to end, all real: a real Hypercorn (``running_server``) or a real
``trio-sse serve`` process, real SQLite files, a real HTTP receiver on loopback for Apprise's
``json://``.

* ``/api/runs`` and its junk; ``--db none``; the token;
* a corrupt database at start-up: the streams go on, clients get an ``error`` event, the
  metric and one log line say so, and writing resumes once the file is moved aside;
* SIGKILL mid-run, restart, finish, SIGKILL, delete the log, restart: the run and all its
  tasks are in ``/api/runs``, nothing twice (issue 13's first "done when");
* alerts: a finished run alerts once, and not again after a restart that replays the log
  (with the database's ledger and with ``--db none``); a second simulated run compared with
  the first (``--sim-runs 2 --baseline previous``); a target unreachable past ``--alert-after``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from httpx_sse import aconnect_sse

from rawhttp import serve_process
from receiver import Receiver
from support import parse_metrics, scrape_metrics, wait_for, wait_metric
from trio_sse.config import Settings, TargetSpec
from trio_sse.hub import Hub
from trio_sse.sources.simulate import plan_run, render_run, simulate
from trio_sse.testing import running_server

pytestmark = pytest.mark.slow  # real servers, threads, a child process

TIMEOUT = httpx.Timeout(10.0, read=None)


def base_settings(tmp_path: Path, **fields: Any) -> Settings:
    log = tmp_path / "waa.log"
    settings = Settings(port=0, targets=(TargetSpec(name="local", log=str(log), process_pattern=None),))
    return replace(settings, **{"db": str(tmp_path / "history.sqlite3"), **fields})


async def get(url: str, path: str, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=TIMEOUT) as c:
        return await c.get(url + path, **kw)


async def idle(hub: Hub) -> None:
    """Until the server has written and alerted everything it has seen so far."""
    with trio.fail_after(20):
        for monitor in hub.monitors.values():
            await monitor.caught_up.wait()
        if hub.recorder is not None:
            await hub.recorder.writer.wait_idle()
        if hub.alerting is not None:
            await hub.alerting.wait_idle()


async def write_run(log: Path, tasks: int = 3, **kw: Any) -> list[str]:
    """A whole simulated run written into ``log`` at once; the task ids in order."""
    result = await simulate(log, tasks=tasks, step_seconds=0, **kw)
    return [t.task_id for t in result.tasks]


# ---------------------------------------------------------------------------- the runs API


@asynccontextmanager
async def server_with_two_runs(tmp_path: Path, **fields: Any) -> AsyncIterator[tuple[str, Hub, list[str]]]:
    settings = base_settings(tmp_path, **fields)
    async with running_server(settings) as server:
        await idle(server.hub)
        log = Path(settings.targets[0].log)
        ids: list[str] = []
        for seed in (0, 1):
            ids.append(server.hub.monitors["local"].history.run)
            await write_run(log, tasks=3, seed=seed)
            await wait_for(lambda: server.hub.monitors["local"].run_complete is not None, "the run's end")
            ids[-1] = server.hub.monitors["local"].history.run
            await idle(server.hub)
        yield server.url, server.hub, ids


async def test_runs_newest_first_one_run_its_tasks_and_csv(tmp_path: Path) -> None:
    async with server_with_two_runs(tmp_path) as (url, hub, (first, second)):
        r = await get(url, "/api/runs")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert (body["limit"], body["offset"]) == (100, 0)
        assert [(x["target"], x["run"], x["tasks"], x["total_tasks"]) for x in body["runs"]] == [
            ("local", second, 3, 3), ("local", first, 3, 3)]  # fmt: skip
        newest = body["runs"][0]
        expected = plan_run(3, seed=1)
        assert newest["passed"] == sum(t.success for t in expected) and newest["interrupted"] is False
        assert (await get(url, "/api/runs?limit=1&offset=1")).json()["runs"][0]["run"] == first
        assert (await get(url, "/api/runs?target=local&limit=1")).json()["runs"][0]["run"] == second
        assert (await get(url, "/api/runs?target=elsewhere")).json()["runs"] == []

        for ref in (second, f"local:{second}", second[:6]):
            r = await get(url, f"/api/runs/{ref}")
            assert r.status_code == 200, r.text
            assert r.json()["run"] == newest
            tasks = r.json()["tasks"]
            assert [(t["task_id"], t["success"], t["score"], t["domain"]) for t in tasks] == [
                (t.task_id, t.success, t.score, t.domain) for t in expected]  # fmt: skip
            assert [t["id"] for t in tasks] == [e.id for e in hub.monitors["local"].history.entries[:3]]

        r = await get(url, f"/api/runs/local:{second}.csv")
        assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
        assert r.headers["content-disposition"] == f'attachment; filename="trio-sse-local-{second}.csv"'
        rows = r.text.split("\r\n")
        assert rows[0].startswith("task_id,domain,success,score") and len([x for x in rows if x]) == 4
        assert rows[1].startswith(f"{expected[0].task_id},{expected[0].domain},")


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/api/runs?limit=abc", 400, "limit must be an integer from 1 to 10000, got 'abc'"),
        ("/api/runs?limit=0", 400, "limit must be an integer from 1 to 10000, got '0'"),
        ("/api/runs?limit=10001", 400, "limit must be an integer from 1 to 10000"),
        ("/api/runs?limit=-5", 400, "limit must be an integer"),
        ("/api/runs?limit=2.5", 400, "limit must be an integer"),
        ("/api/runs?limit=", 400, "limit must be an integer"),
        ("/api/runs?limit=" + "9" * 5000, 400, "limit must be an integer from 1 to 10000, got '99999"),
        ("/api/runs?offset=x", 400, "offset must be an integer from 0 to 1000000000, got 'x'"),
        ("/api/runs?offset=-1", 400, "offset must be an integer"),
        ("/api/runs?target=", 400, "target must be a target name"),
        ("/api/runs?target=a%20b", 400, "target must be a target name (1-64 letters, digits, '_', '-' or '.'), got 'a b'"),
        ("/api/runs?target=" + "x" * 65, 400, "target must be a target name"),
        ("/api/runs/ffffffffff", 404, "no stored run 'ffffffffff'"),
        ("/api/runs/local:ffffffff", 404, "no stored run 'local:ffffffff'"),
        ("/api/runs/ffff.csv", 404, "no stored run 'ffff'"),
        ("/api/runs/not-a-run", 400, "a run is named <target>:<run id> or <run id> (hex), got 'not-a-run'"),
        ("/api/runs/%3Cscript%3E", 400, "a run is named"),
        ("/api/runs/" + "a" * 300, 400, "a run is named"),
        ("/api/runs/.csv", 400, "a run is named"),
    ],
)
async def test_runs_api_junk_is_a_clear_json_error(tmp_path: Path, path: str, status: int, error: str) -> None:
    settings = base_settings(tmp_path)
    async with running_server(settings) as server:
        await idle(server.hub)
        r = await get(server.url, path)
    assert r.status_code == status and r.headers["content-type"] == "application/json"
    assert error in r.json()["error"]


async def test_runs_api_with_db_none_says_the_history_is_off(tmp_path: Path) -> None:
    async with running_server(base_settings(tmp_path, db=None)) as server:
        for path in ("/api/runs", "/api/runs/abcd1234", "/api/runs/abcd1234.csv"):
            r = await get(server.url, path)
            assert (r.status_code, r.json()) == (404, {"error": "the run history is off (this server runs with --db none)"})
        metrics = await scrape_metrics(server.url)
        assert "trio_sse_history_up" not in metrics and "trio_sse_history_writes_total" not in metrics
    assert not (tmp_path / "history.sqlite3").exists()


async def test_runs_api_needs_the_token(tmp_path: Path) -> None:
    async with running_server(base_settings(tmp_path, token="s3cret")) as server:
        assert (await get(server.url, "/api/runs")).status_code == 401
        assert (await get(server.url, "/api/runs/abcd.csv")).status_code == 401
        r = await get(server.url, "/api/runs", headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and r.json()["runs"] == []
        assert (await get(server.url, "/api/runs?token=s3cret")).status_code == 200


async def test_the_database_is_created_at_start_up_with_history_metrics(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "history.sqlite3"
    async with running_server(base_settings(tmp_path, db=str(path))) as server:
        await idle(server.hub)
        assert path.is_file() and (path.parent.stat().st_mode & 0o777) == 0o700
        metrics = await scrape_metrics(server.url)
        assert metrics["trio_sse_history_up"] == 1.0 and metrics["trio_sse_history_outages_total"] == 0
        assert metrics["trio_sse_history_pending"] == 0
        await write_run(Path(server.hub.settings.targets[0].log), tasks=2)
        await wait_metric(server.url, "trio_sse_history_writes_total", lambda v: v >= 3)  # 2 tasks + the end


# ---------------------------------------------------------------------------- a broken database


async def test_a_corrupt_database_does_not_stop_the_server_and_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = base_settings(tmp_path)
    db = Path(settings.db or "")
    db.write_bytes(b"SQLite format 2\x00" + b"garbage" * 1000)
    caplog.set_level(logging.WARNING, logger="trio_sse")
    async with running_server(settings) as server:
        await idle(server.hub)
        assert (await get(server.url, "/api/runs")).status_code == 503
        events: list[tuple[str, dict]] = []
        async with httpx.AsyncClient(timeout=TIMEOUT) as c:
            async with aconnect_sse(c, "GET", server.url + "/api/benchmark-sse") as es:
                expected = await write_run(Path(settings.targets[0].log), tasks=2)
                async for sse in es.aiter_sse():
                    if sse.event in ("task_complete", "run_complete", "error"):
                        events.append((sse.event, sse.json()))
                    if sse.event == "run_complete":
                        break
        # The clients got the whole run: the database is not on their path.
        assert [e["task_id"] for kind, e in events if kind == "task_complete"] == expected
        metrics = await scrape_metrics(server.url)
        assert metrics["trio_sse_history_up"] == 0.0 and metrics["trio_sse_history_outages_total"] == 1
        assert metrics["trio_sse_history_pending"] >= 1  # kept, retried
        lines = [r.getMessage() for r in caplog.records if r.name == "trio_sse"]
        assert len(lines) == 1 and lines[0].startswith(f"run history: history database {db} is corrupt")
        # Fix the file as the message says: writing resumes, with what was kept.
        shutil.move(db, tmp_path / "corrupt-aside.sqlite3")
        await wait_metric(server.url, "trio_sse_history_up", lambda v: v == 1.0, timeout=30)
        await idle(server.hub)
        r = await get(server.url, "/api/runs")
        assert [x["tasks"] for x in r.json()["runs"]] == [2]
    assert [r.getMessage() for r in caplog.records if r.name == "trio_sse"][1:] == [
        f"run history: history database {db} is written again"]  # fmt: skip


async def test_clients_get_an_error_event_when_the_database_is_locked(tmp_path: Path) -> None:
    """The outage's error event reaches every client connected when it is found (a locked
    file: another connection holds its write lock while results arrive)."""
    import sqlite3

    settings = base_settings(tmp_path)
    async with running_server(settings) as server:
        await idle(server.hub)  # the database exists, the writer is idle
        blocker = sqlite3.connect(settings.db or "", isolation_level=None)
        try:
            with trio.fail_after(20):
                async with httpx.AsyncClient(timeout=TIMEOUT) as c:
                    async with aconnect_sse(c, "GET", server.url + "/api/benchmark-sse") as es:
                        seen: list[str] = []
                        async for sse in es.aiter_sse():
                            seen.append(sse.event)
                            if sse.event == "progress" and "task_complete" not in seen and not blocker.in_transaction:
                                blocker.execute("BEGIN EXCLUSIVE")  # from now on the writer cannot write
                                await write_run(Path(settings.targets[0].log), tasks=2)
                            if sse.event == "error":
                                error = sse.json()
                                break
        finally:
            if blocker.in_transaction:
                blocker.execute("ROLLBACK")
            blocker.close()
        assert seen.count("task_complete") == 2 and "run_complete" in seen  # the stream went on
        assert error["target"] == "local"
        assert error["message"].startswith(f"run history: history database {settings.db} is locked by another connection")
        await wait_metric(server.url, "trio_sse_history_up", lambda v: v == 1.0, timeout=30)  # the lock is gone
        await idle(server.hub)
        assert [x["tasks"] for x in (await get(server.url, "/api/runs")).json()["runs"]] == [2]


# ---------------------------------------------------------------------------- SIGKILL, restart, delete


def _cut_after_results(data: bytes, n: int) -> int:
    """The offset just after the ``n``-th ``Finished …`` line."""
    at = -1
    for _ in range(n):
        at = data.index(b"Finished ", at + 1)
    return data.index(b"\n", at) + 1


async def test_sigkill_mid_run_restart_and_a_deleted_log_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    log, db = tmp_path / "waa.log", tmp_path / "history.sqlite3"
    plan = plan_run(6, seed=0)
    data = b"".join(c for _, c in render_run(plan, ansi=True))
    cut = _cut_after_results(data, 3)
    log.write_bytes(data[:cut])
    args = ["--log", str(log), "--db", str(db)]

    async def runs(url: str) -> list[dict]:
        return (await get(url, "/api/runs")).json()["runs"]

    async def tasks(url: str, run: str) -> list[str]:
        return [t["task_id"] for t in (await get(url, f"/api/runs/{run}")).json()["tasks"]]

    # 1. Mid-run: what the server has read is in the database; then SIGKILL (no shutdown at all).
    async with serve_process(tmp_path, args) as srv:
        live = [t["task_id"] for t in (await get(srv.url, "/api/tasks")).json()]
        assert len(live) >= 3
        await wait_for_async(lambda: runs(srv.url), lambda r: len(r) == 1 and r[0]["tasks"] == len(live))
        run = (await runs(srv.url))[0]["run"]
        assert await tasks(srv.url, run) == live and (await runs(srv.url))[0]["finished"] is None
        srv.proc.kill()
        await srv.proc.wait()
    # 2. Restart on the same log: the replay writes nothing twice; the run goes on to its end.
    async with serve_process(tmp_path, args) as srv:
        with open(log, "ab") as f:
            f.write(data[cut:])
        await wait_for_async(lambda: runs(srv.url), lambda r: r[0]["finished"] is not None)
        (row,) = await runs(srv.url)
        expected = [t.task_id for t in plan]
        assert row["run"] == run and row["tasks"] == 6 and row["passed"] == sum(t.success for t in plan)
        assert await tasks(srv.url, run) == expected
        srv.proc.kill()
        await srv.proc.wait()
    # 3. The VM is gone, the log with it: the run is still there, whole.
    log.unlink()
    async with serve_process(tmp_path, args) as srv:
        (row,) = await runs(srv.url)
        assert (row["run"], row["tasks"], row["interrupted"]) == (run, 6, False)
        assert await tasks(srv.url, run) == expected
        assert (await get(srv.url, "/api/tasks")).json() == []  # nothing live: only history


async def wait_for_async(fetch: Any, predicate: Any, timeout: float = 20.0) -> None:
    """Ask ``fetch()`` again until ``predicate`` holds of its answer (a real child process)."""
    with trio.fail_after(timeout):
        while not predicate(await fetch()):
            await trio.sleep(0.05)


# ---------------------------------------------------------------------------- alerts


@pytest.mark.parametrize("db", ["file", "none"])
async def test_a_finished_run_alerts_once_and_not_again_after_a_restart(tmp_path: Path, db: str) -> None:
    receiver = Receiver()
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        fields: dict[str, Any] = {"notify": (receiver.url("json"),)}
        if db == "none":
            fields["db"] = None
        settings = base_settings(tmp_path, **fields)
        async with running_server(settings) as server:
            await idle(server.hub)  # caught up with the (missing) log: what comes now is live
            await write_run(Path(settings.targets[0].log), tasks=3)
            with trio.fail_after(20):
                request = await receiver.next_request()
            await idle(server.hub)
            run = server.hub.monitors["local"].history.run
        # The restart replays the log, its run_complete included: no second alert.
        async with running_server(settings) as server:
            await idle(server.hub)
            assert server.hub.monitors["local"].history.run == run and server.hub.alerting is not None
            assert server.hub.alerting.replayed == 1
            metrics = await scrape_metrics(server.url)
        nursery.cancel_scope.cancel()
    assert len(receiver.requests) == 1
    payload = request.json()
    expected = plan_run(3)
    passed = sum(t.success for t in expected)
    assert payload["title"].startswith(f"local run {run} finished: {passed}/3 passed")
    assert f"Run: {run}" in payload["message"] and payload["type"] == "success"
    assert metrics["trio_sse_alerts_delivered_total"] == 0  # (the second server's own count)


async def test_a_second_simulated_run_is_compared_with_the_first_and_alerts_once(tmp_path: Path) -> None:
    receiver = Receiver()
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        settings = base_settings(
            tmp_path, simulate=True, sim_tasks=8, sim_step_seconds=0.01, sim_runs=2, baseline="previous",
            notify=(receiver.url("json"),),
        )  # fmt: skip
        async with running_server(settings) as server:
            hub = server.hub
            await wait_for(lambda: sum(" finished: " in q.json()["title"] for q in receiver.requests) == 2,
                           "both runs' finish alerts", timeout=30)  # fmt: skip
            await idle(hub)
            r = await get(server.url, "/api/runs")
            second, first = (x["run"] for x in r.json()["runs"])
            metrics = await scrape_metrics(server.url)
            # The stream itself carries the comparison, live (SPEC §9): the second run's events.
            entries = hub.monitors["local"].history.entries
            changes = {e.event.task_id: e.event.change for e in entries if e.event.EVENT == "task_complete"}
            done = entries[-1].event
        nursery.cancel_scope.cancel()
    from trio_sse.sources.simulate import plan_runs

    then, now = plan_runs(8, 2, showcase=True)  # (serve --simulate writes the showcase run)
    regressed = [b.task_id for a, b in zip(then, now, strict=True) if a.success and not b.success]
    fixed = [b.task_id for a, b in zip(then, now, strict=True) if not a.success and b.success]
    titles = [q.json()["title"] for q in receiver.requests]
    assert titles[0].startswith(f"local run {first} finished") and "vs baseline" not in titles[0]
    assert sorted(titles[1:-1]) == sorted(f"local run {second}: {t} regressed" for t in regressed)
    assert titles[-1].startswith(f"local run {second} finished")
    assert f"{len(fixed)} fixed, {len(regressed)} regressed vs baseline" in titles[-1]
    assert f"Baseline local:{first}: " in receiver.requests[-1].json()["message"]
    assert len(titles) == 2 + len(regressed)  # each once
    assert metrics["trio_sse_alerts_delivered_total"] == len(titles)
    assert sorted(t for t, c in changes.items() if c == "regressed") == sorted(regressed)
    assert sorted(t for t, c in changes.items() if c == "fixed") == sorted(fixed)
    assert set(changes.values()) <= {"fixed", "regressed", "same"}  # the same task list: nothing new
    assert done.EVENT == "run_complete" and done.baseline["run"] == f"local:{first}"
    assert (done.baseline["fixed"], done.baseline["regressed"]) == (len(fixed), len(regressed))


async def test_a_target_unreachable_past_alert_after_alerts_once(tmp_path: Path) -> None:
    receiver = Receiver()
    log = tmp_path / "waa.log"
    log.mkdir()  # a folder where the log should be: the local source cannot read it (an outage)
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        settings = base_settings(tmp_path, notify=(receiver.url("json"),), alert_after=0.3)
        async with running_server(settings) as server:
            with trio.fail_after(20):
                request = await receiver.next_request()
            assert server.hub.monitors["local"].status.value.connected is False
            await trio.sleep(0.5)  # (nothing more is coming: the outage goes on, one alert)
            await server.hub.alerting.wait_idle()  # type: ignore[union-attr]
        nursery.cancel_scope.cancel()
    assert len(receiver.requests) == 1
    payload = request.json()
    assert payload["title"] == "local unreachable for 0 min" and payload["type"] == "failure"
    assert f"Last error: cannot follow {log}: not a regular file" in payload["message"]


async def test_metrics_count_alert_troubles(tmp_path: Path) -> None:
    receiver = Receiver(["fail"])
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        settings = base_settings(tmp_path, notify=(receiver.url("json"),), simulate=True, sim_tasks=2,
                                 sim_step_seconds=0)  # fmt: skip
        async with running_server(settings) as server:
            await wait_metric(server.url, "trio_sse_alerts_failed_attempts_total", lambda v: v == 1)
            _, samples = parse_metrics((await get(server.url, "/metrics")).text)
            assert samples["trio_sse_alerts_given_up_total"] == 0 and samples["trio_sse_alerts_dropped_total"] == 0
        nursery.cancel_scope.cancel()
