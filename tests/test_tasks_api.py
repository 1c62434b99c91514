"""The trajectory and files API (SPEC §8) on a real Hypercorn (127.0.0.1:0): a task's view
and steps, its listed files and nothing else (every junk name over a raw socket, so no client
library normalises it first), the token, a vanished file (404 and a metric), a target without
results, and ``serve --simulate`` live: step events with screenshots that load."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import trio
from httpx_sse import aconnect_sse

from rawhttp import address, request
from support import scrape_metrics
from trio_sse.config import Settings, TargetSpec
from trio_sse.sources.simulate import SimTask, simulate, task_folder
from trio_sse.testing import running_server

START = dt.datetime(2024, 11, 20, 14, 0, 0)
TOKEN = "s3cret-token"


def client(url: str, **kw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=None), **kw)


async def finished_run(tmp_path: Path, tasks: int = 6) -> tuple[Path, Path, tuple[SimTask, ...]]:
    log, results = tmp_path / "waa.log", tmp_path / "results"
    done = await simulate(log, tasks=tasks, step_seconds=0, seed=3, clock_start=START, results_dir=results)
    return log, results, done.tasks


def settings(log: Path, results: Path | str, **kw: Any) -> Settings:
    target = TargetSpec(name="vm1", log=str(log), results=str(results), process_pattern=None)
    return Settings(port=0, targets=(target,), **kw)


async def wait_run(server: Any) -> None:
    monitor = server.hub.monitors["vm1"]
    with trio.fail_after(20):
        while monitor.run_complete is None:
            await trio.sleep(0.01)  # the source reads the file (polling the state, bounded)


async def raw_get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` byte for byte as given (no client normalises it) and read to the close."""
    stream = await trio.open_tcp_stream(*address(url))
    async with stream:
        await stream.send_all(request(path, {"Connection": "close", **(headers or {})}))
        data = bytearray()
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    if fields.get("transfer-encoding") == "chunked":
        out, rest = bytearray(), body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out += rest[:n]
            rest = rest[n + 2 :]
        body = bytes(out)
    return int(status_line.split()[1]), fields, body


async def test_a_finished_tasks_view_steps_error_and_screenshots(tmp_path: Path) -> None:
    log, results, plan = await finished_run(tmp_path)
    async with running_server(settings(log, results)) as server, client(server.url) as c:
        await wait_run(server)
        for t in plan:
            r = await c.get(f"/api/tasks/{t.task_id}")
            assert r.status_code == 200 and r.headers["content-type"] == "application/json"
            body = r.json()
            assert body["task"]["task_id"] == t.task_id and body["task"]["finished"] is True
            assert body["task"]["domain"] == t.domain and body["trajectory"]["found"] is True
            # one line per executed action; the action that raised has none (run.py:255-270)
            actions = t.actions[: t.steps - 1] if t.error else t.actions
            assert [s["action"] for s in body["steps"]] == list(actions)
            assert [s["step"] for s in body["steps"]] == list(range(1, len(actions) + 1))
            if t.error:
                assert body["error"]["message"] == t.error
                assert body["error"]["traceback"].startswith("Traceback (most recent call last):")
            else:
                assert body["error"] is None
            for s in body["steps"]:
                assert s["screenshot"].startswith(f"/api/tasks/{quote(t.task_id)}/files/screenshot-step_")
                assert s["screenshot"].endswith(".png?target=vm1")
        shot = body["steps"][0]["screenshot"]
        r = await c.get(shot)
        name = shot.split("/files/")[1].split("?")[0].replace("%40", "@")
        on_disk = (results / task_folder(plan[-1]) / name).read_bytes()
        assert r.status_code == 200 and r.content == on_disk and r.content.startswith(b"\x89PNG\r\n\x1a\n")
        assert r.headers["content-type"] == "image/png"
        assert r.headers["content-length"] == str(len(on_disk))
        assert r.headers["cache-control"] == "private, max-age=86400, immutable"
        assert r.headers["x-content-type-options"] == "nosniff"
        head = await c.head(shot)
        assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(on_disk))
        txt = await c.get(shot.replace("screenshot-step_", "accessibility_tree-step_").replace(".png", ".txt"))
        assert txt.status_code == 200 and txt.headers["content-type"] == "text/plain; charset=utf-8"


async def test_every_junk_name_and_task_is_a_404_json(tmp_path: Path) -> None:
    log, results, plan = await finished_run(tmp_path)
    (tmp_path / "secret.txt").write_text("TOP-SECRET-CONTENT")
    task = plan[0]
    base = f"/api/tasks/{task.task_id}/files/"
    junk = [
        base + "..", base + "%2e%2e", base + "..%2F..%2Fsecret.txt", base + "%2F%2Fetc%2Fpasswd",
        base + "a%00b.png", base + "x" * 300 + ".png", base + "result.txt", base + "traj.jsonl",
        base + ".trio-sse-simulated", base + "screenshot-step_0_20991231@235959.png", base + "a/b.png",
        base + "..%5C..%5Csecret.txt", base + "%C3%28.png", base + "?x=1", base + "/etc/passwd",
        base + "./screenshot-step_0_20241120@140612.png", "/api/tasks//files/x.png",
        "/api/tasks/no-such-task", "/api/tasks/no-such-task/files/screenshot-step_0_20241120@140612.png",
        "/api/tasks/%00", "/api/tasks/" + "a" * 10_000, "/api/tasks/..%2F..%2Fetc", f"/api/tasks/{task.task_id}?target=nope",
    ]
    async with running_server(settings(log, results)) as server:
        await wait_run(server)
        for path in junk:
            status, fields, body = await raw_get(server.url, path)
            assert status == 404, (path, status, body[:200])
            assert fields["content-type"] == "application/json", path
            assert set(json.loads(body)) == {"error"}, path
            assert b"TOP-SECRET" not in body and b"Traceback" not in body


async def test_the_files_and_views_need_the_token(tmp_path: Path) -> None:
    log, results, plan = await finished_run(tmp_path)
    async with running_server(settings(log, results, token=TOKEN)) as server, client(server.url) as c:
        await wait_run(server)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        view = (await c.get(f"/api/tasks/{plan[0].task_id}", headers=auth)).json()
        shot = view["steps"][0]["screenshot"]
        assert "token" not in shot  # URLs in events and views never carry it
        for path in (f"/api/tasks/{plan[0].task_id}", shot):
            r = await c.get(path)
            assert r.status_code == 401 and r.json()["error"].startswith("a valid token is required")
            assert (await c.get(path, params={"token": "wrong"})).status_code == 401
            assert (await c.get(path, headers=auth)).status_code == 200
            assert (await c.get(path + f"&token={TOKEN}" if "?" in path else path + f"?token={TOKEN}")).status_code == 200


async def test_a_vanished_file_is_a_404_and_a_metric(tmp_path: Path) -> None:
    log, results, plan = await finished_run(tmp_path)
    async with running_server(settings(log, results)) as server, client(server.url) as c:
        await wait_run(server)
        view = (await c.get(f"/api/tasks/{plan[1].task_id}")).json()
        shot = view["steps"][-1]["screenshot"]
        name = shot.split("/files/")[1].split("?")[0].replace("%40", "@")
        (results / task_folder(plan[1]) / name).unlink()
        r = await c.get(shot)
        assert r.status_code == 404 and "no longer on the target" in r.json()["error"]
        metrics = await scrape_metrics(server.url)
        assert metrics["trio_sse_result_files_missing_total{target=vm1}"] == 1.0


async def test_a_target_without_results_has_views_without_steps(tmp_path: Path) -> None:
    log, _results, plan = await finished_run(tmp_path)
    async with running_server(settings(log, "none")) as server, client(server.url) as c:
        await wait_run(server)
        raised = next(t for t in plan if t.error)
        body = (await c.get(f"/api/tasks/{raised.task_id}")).json()
        assert body["steps"] == [] and body["trajectory"] == {"found": False, "reason": "the target has no results folder (--results)"}
        assert body["error"] == {"message": raised.error, "traceback": None}  # from the log
        r = await c.get(f"/api/tasks/{raised.task_id}/files/screenshot-step_0_20241120@140612.png")
        assert r.status_code == 404 and "no results folder" in r.json()["error"]


@pytest.mark.slow  # real time: the simulator writes at its pace
async def test_serve_simulate_streams_steps_with_screenshots_that_load(tmp_path: Path) -> None:
    s = Settings(port=0, simulate=True, sim_tasks=6, sim_step_seconds=0.02,
                 targets=(TargetSpec(log=str(tmp_path / "sim.log"), results=str(tmp_path / "results"),
                                     process_pattern=None),))
    steps: list[dict[str, Any]] = []
    running_view = None
    async with running_server(s) as server, client(server.url) as c:
        async with aconnect_sse(c, "GET", "/api/benchmark-sse") as es:
            async for sse in es.aiter_sse():
                if sse.event == "step":
                    step = sse.json()
                    steps.append(step)
                    if running_view is None and step["screenshot"]:
                        running_view = (await c.get(f"/api/tasks/{step['task_id']}")).json()
                        live_png = await c.get(step["screenshot"])
                        assert live_png.status_code == 200 and live_png.content.startswith(b"\x89PNG")
                if sse.event == "run_complete":
                    break
        assert sse.id  # (durable)
    assert running_view is not None and running_view["task"]["finished"] is False
    assert running_view["steps"] and running_view["steps"][-1]["screenshot"]
    with_shots = [st for st in steps if st["screenshot"]]
    assert len(with_shots) >= len(steps) // 2 > 0
    per_task: dict[str, list[int]] = {}
    for st in steps:
        assert set(st) == {"task_id", "step", "action", "screenshot", "at", "target", "worker"}
        per_task.setdefault(st["task_id"], []).append(st["step"])
    # one event per action, never both sources, never twice: strictly increasing per task
    for numbers in per_task.values():
        assert numbers == sorted(set(numbers)), numbers


async def test_a_huge_screenshot_is_streamed_not_held(tmp_path: Path) -> None:
    import tracemalloc

    log, results, plan = await finished_run(tmp_path)
    task = plan[0]
    traj = results / task_folder(task) / "traj.jsonl"
    name = json.loads(traj.read_text().splitlines()[1])["screenshot"]
    big = bytes(range(256)) * (40 * 4096)  # 40 MiB
    (results / task_folder(task) / name).write_bytes(big)
    async with running_server(settings(log, results)) as server, client(server.url) as c:
        await wait_run(server)
        url = f"/api/tasks/{task.task_id}/files/{quote(name)}?target=vm1"
        tracemalloc.start()
        try:
            got, pieces = 0, 0
            async with c.stream("GET", url) as r:
                assert r.status_code == 200 and r.headers["content-length"] == str(len(big))
                async for chunk in r.aiter_raw():
                    assert chunk == big[got : got + len(chunk)]
                    got += len(chunk)
                    pieces += 1
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert got == len(big) and pieces > 100
    assert peak < 8 << 20, peak  # server and client together: pieces, never the 40 MiB
