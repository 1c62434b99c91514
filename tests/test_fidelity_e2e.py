"""Issue 10 end to end: upstream-faithful WAA logs (tests/upstream) written over time into real
files, followed by a real server on the README's glob, read by a real SSE client — the same
answers live, in the snapshot, in ``run_complete``, in ``/api/tasks`` and for a late client."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio
from httpx_sse import aconnect_sse
from upstream import build

from trio_sse.config import Settings, TargetSpec
from trio_sse.testing import running_server

pytestmark = pytest.mark.slow


async def write_timeline(root: Path, fx, *, pace: float = 0.0) -> None:  # type: ignore[no-untyped-def]
    """Append each file's bytes in the order upstream wrote them (a real, growing log)."""
    for name, data in fx.timeline:
        if not name.startswith("logs/"):
            continue
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as f:
            f.write(data)
        await trio.sleep(pace)  # (a real writer's pace: the follower is real too)


async def collect(url: str, *, until: str = "run_complete") -> dict[str, list[dict]]:
    got: dict[str, list[dict]] = {}
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as c:
        async with aconnect_sse(c, "GET", url + "/api/benchmark-sse?interval=1") as es:
            async for sse in es.aiter_sse():
                if not sse.data:  # the opening's retry: no event
                    continue
                got.setdefault(sse.event, []).append(sse.json())
                if sse.event == until:
                    return got
    return got


async def test_two_workers_files_written_live_are_one_run(tmp_path):
    fx = build("waa_parallel")
    glob = str(tmp_path / "logs" / "normal-*.log")
    settings = Settings(port=0, targets=(TargetSpec(log=glob, process_pattern=None),))
    with trio.fail_after(60):
        async with running_server(settings) as server, trio.open_nursery() as n:
            n.start_soon(lambda: write_timeline(tmp_path, fx, pace=0.002))
            live = await collect(server.url)
            async with httpx.AsyncClient() as c:
                snapshot = (await c.get(server.url + "/api/benchmark")).json()["targets"]["local"]
                tasks = (await c.get(server.url + "/api/tasks")).json()
            late = await collect(server.url)  # a client that comes after: the replay
    ids = [t["task_id"] for t in live["task_complete"]]
    assert len(ids) == 5 == len(set(ids))
    (done,) = live["run_complete"]
    assert (done["tasks_completed"], done["total_tasks"], done["interrupted"]) == (5, 5, False)
    completed = [p["tasks_completed"] for p in live["progress"]]
    assert completed == sorted(completed)  # never backwards
    assert {t["worker"] for t in live["task_complete"]} == {"0", "1"}
    passed = sum(t["success"] for t in live["task_complete"])
    scored = [t["score"] for t in live["task_complete"] if t["score"] is not None]
    assert done["tasks_passed"] == passed and done["average_score"] == pytest.approx(sum(scored) / len(scored))
    assert snapshot["run"]["average_score"] == pytest.approx(done["average_score"])
    assert sorted(t["task_id"] for t in tasks) == sorted(ids)
    assert [t["task_id"] for t in late["task_complete"]] == ids  # the same ids, the same order
    assert all(t["failure_kind"] is None for t in live["task_complete"] if t["success"])
    assert all(t["failure_kind"] == "agent" for t in live["task_complete"] if not t["success"])


async def test_a_guest_that_is_down_is_reported_truthfully(tmp_path):
    fx = build("waa_vm_down")
    log = tmp_path / "logs" / "normal-0-20241120@140512.log"
    log.parent.mkdir(parents=True)
    log.write_bytes(fx.artifacts[fx.logs()[0]])
    settings = Settings(port=0, targets=(TargetSpec(log=str(log), process_pattern=None),))
    with trio.fail_after(30):
        async with running_server(settings) as server:
            live = await collect(server.url)
            async with httpx.AsyncClient() as c:
                rerun = (await c.get(server.url + "/api/rerun?target=local")).json()
                status = (await c.get(server.url + "/api/benchmark")).json()["targets"]["local"]["status"]
    (done,) = live["run_complete"]
    assert done["average_score"] is None  # "No examples finished."
    assert {t["failure_kind"] for t in live["task_complete"]} == {"infra"}
    assert status["waa_ready"] is False and status["phase"] != "ready"
    assert sorted(t for ids in rerun.values() for t in ids) == sorted(t["task_id"] for t in live["task_complete"])
