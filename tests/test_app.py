"""End to end over real sockets: a real Hypercorn on 127.0.0.1:0 following a simulated run,
read by httpx-sse, by curl, and by the original endpoint's own example client."""

from __future__ import annotations

import json
import shutil
import subprocess
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import httpx
import pytest
import trio
import trio.testing
from httpx_sse import aconnect_sse

from trio_sse.config import Settings, TargetSpec
from trio_sse.sources.simulate import plan_run, render_run
from trio_sse.testing import free_port, running_server, simulated_run, simulated_server

STREAM_TIMEOUT = httpx.Timeout(10.0, read=None)


def expected_results(expected) -> list[dict]:
    return [
        {"task_id": t.task_id, "success": t.success, "score": t.score, "domain": t.domain, "error": t.error}
        for t in expected
    ]


def seen_results(events) -> list[dict]:
    keys = ("task_id", "success", "score", "domain", "error")
    return [{k: e[k] for k in keys} for e in events]


@asynccontextmanager
async def client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=STREAM_TIMEOUT) as c:
        yield c


async def collect_run(url: str, *, params: dict | None = None, headers: dict | None = None):
    """Read the stream until run_complete; return (events by type, last id)."""
    out: dict[str, list] = {"status": [], "progress": [], "task_complete": [], "run_complete": [], "error": []}
    last_id = None
    async with client(url) as c, aconnect_sse(c, "GET", "/api/benchmark-sse", params=params, headers=headers or {}) as es:
        async for sse in es.aiter_sse():
            if sse.event not in out:  # httpx-sse reports the bare `retry:` block as an empty "message"
                continue
            out[sse.event].append(sse.json())
            if sse.id:
                last_id = sse.id
            if sse.event == "run_complete":
                break
    return out, last_id


async def test_whole_simulated_run_streams_every_task_once(tmp_path):
    with trio.fail_after(30):
        async with simulated_server(tmp_path, tasks=6, step_seconds=0.01) as sim:
            events, _ = await collect_run(sim.url, params={"interval": "1"})
    assert seen_results(events["task_complete"]) == expected_results(sim.expected)
    (done,) = events["run_complete"]
    assert done["tasks_completed"] == 6 and done["total_tasks"] == 6
    assert done["tasks_passed"] == sum(t.success for t in sim.expected)
    # Exact key sets: the original endpoint's keys (SPEC §2.2) plus the documented additions.
    assert all(e.keys() == STATUS_KEYS and e["probe"].keys() == {"status", "vnc_url"} for e in events["status"])
    assert all(e["type"] == "vm_status" for e in events["status"])
    assert all(e.keys() == PROGRESS_KEYS for e in events["progress"])
    assert all(e.keys() == TASK_KEYS for e in events["task_complete"])
    assert done.keys() == RUN_KEYS


STATUS_KEYS = {"type", "connected", "phase", "waa_ready", "probe", "target"}
PROGRESS_KEYS = {"tasks_completed", "total_tasks", "current_task", "current_step",
                 "target", "running", "current_domain", "run", "finished",
                 # added by issue 10 (SPEC §2.2)
                 "workers", "rate_limited", "instruction", "action", "average_score", "started_at",
                 "max_steps", "stalled", "success_threshold", "forecast", "log_time"}
TASK_KEYS = {"task_id", "success", "score", "target", "domain", "steps", "error",
             "failure_kind", "instruction", "started_at", "finished_at", "duration_s", "worker",
             "baseline", "change"}
RUN_KEYS = {"tasks_completed", "total_tasks", "tasks_passed", "average_score", "target", "interrupted",
            "baseline"}


async def test_same_log_same_ids_after_a_restart(tmp_path):
    log = tmp_path / "waa.log"
    async with simulated_run(log, tasks=3, step_seconds=0) as run:
        await run.done.wait()
    settings = Settings(port=0, targets=(TargetSpec(log=str(log), process_pattern=None),))
    ids = []
    for _ in range(2):
        async with running_server(settings) as server:
            async with client(server.url) as c, aconnect_sse(c, "GET", "/api/benchmark-sse") as es:
                got = []
                async for sse in es.aiter_sse():
                    if sse.event in ("task_complete", "run_complete"):
                        got.append(sse.id)
                    if sse.event == "run_complete":
                        break
            ids.append(got)
    assert ids[0] == ids[1] and len(ids[0]) == 4 and len(set(ids[0])) == 4


async def test_resume_across_a_server_restart_loses_and_repeats_nothing(tmp_path):
    log = tmp_path / "waa.log"
    port = free_port()
    settings = Settings(port=port, targets=(TargetSpec(log=str(log), process_pattern=None),))
    seen: list[str] = []
    last_id = None
    with trio.fail_after(60):
        async with simulated_run(log, tasks=8, step_seconds=0.02) as run:
            async with running_server(settings) as server:
                async with client(server.url) as c, aconnect_sse(c, "GET", "/api/benchmark-sse") as es:
                    async for sse in es.aiter_sse():
                        if sse.event == "task_complete":
                            seen.append(sse.json()["task_id"])
                            last_id = sse.id
                            if len(seen) == 3:
                                break
            # the server is down while the run goes on; then it comes back on the same port
            async with running_server(settings) as server:
                events, _ = await collect_run(server.url, headers={"Last-Event-ID": last_id})
            seen += [e["task_id"] for e in events["task_complete"]]
            assert run.done.is_set()
    assert seen == [t.task_id for t in run.expected]


@pytest.mark.parametrize("bad", ["abc", "0", "61", "2.5", "", "-1", "1e1", "٣", "5 ", "99999999999999999999"])
async def test_interval_junk_is_400_with_a_clear_json_error(tmp_path, bad):
    async with simulated_server(tmp_path, tasks=1, step_seconds=0) as sim, client(sim.url) as c:
        r = await c.get("/api/benchmark-sse", params={"interval": bad})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"error": f"interval must be an integer from 1 to 60, got {bad!r}"}


async def test_unknown_target_and_route_are_json_404(tmp_path):
    async with simulated_server(tmp_path, tasks=1, step_seconds=0) as sim, client(sim.url) as c:
        r = await c.get("/api/benchmark-sse", params={"target": "<nope>"})
        assert r.status_code == 404 and "unknown target '<nope>'" in r.json()["error"]
        r = await c.get("/api/benchmark", params={"target": "nope"})
        assert r.status_code == 404
        r = await c.get("/no/such/route")
        assert r.status_code == 404 and r.json()["error"].startswith("no such route")
        r = await c.post("/api/benchmark-sse")
        assert r.status_code == 405 and "error" in r.json()
        r = await c.get("/static/../../etc/passwd")
        assert r.status_code == 404


async def test_snapshot_tasks_healthz_metrics(tmp_path):
    async with simulated_server(tmp_path, tasks=4, step_seconds=0) as sim, client(sim.url) as c:
        await sim.done.wait()
        with trio.fail_after(10):
            while (await c.get("/api/benchmark")).json()["targets"]["local"]["run"]["complete"] is None:
                await trio.sleep(0.01)
        snap = (await c.get("/api/benchmark")).json()["targets"]["local"]
        assert seen_results(snap["results"]) == expected_results(sim.expected)
        assert snap["progress"]["tasks_completed"] == 4 and snap["progress"]["finished"] is True
        tasks = (await c.get("/api/tasks")).json()
        assert seen_results(tasks) == expected_results(sim.expected)
        r = await c.get("/healthz")
        assert r.status_code == 200 and r.text == "ok\n"
        metrics = (await c.get("/metrics")).text
        assert "trio_sse_clients " in metrics and 'trio_sse_parse_errors_total{target="local"}' in metrics
        page = await c.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]


async def test_stream_headers_and_opening(tmp_path):
    async with simulated_server(tmp_path, tasks=1, step_seconds=0) as sim, client(sim.url) as c:
        async with c.stream("GET", "/api/benchmark-sse", headers={"Accept-Encoding": "identity"}) as r:
            assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert r.headers["cache-control"] == "no-cache"
            assert r.headers["x-accel-buffering"] == "no"
            assert "content-encoding" not in r.headers
            first = await r.aiter_raw().__anext__()
            assert first.startswith(b"retry: 3000\n\n: connected\n")


async def test_gzip_when_asked_each_frame_at_once(tmp_path):
    async with simulated_server(tmp_path, tasks=2, step_seconds=0) as sim, client(sim.url) as c:
        async with c.stream("GET", "/api/benchmark-sse", headers={"Accept-Encoding": "gzip"}) as r:
            assert r.headers["content-encoding"] == "gzip"
            assert r.headers["cache-control"] == "no-cache, no-transform"
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            # the very first raw chunk inflates on its own into the opening frames
            text = inflate.decompress(await r.aiter_raw().__anext__())
            assert text.startswith(b"retry: 3000\n\n: connected\n")


async def test_gzip_can_be_turned_off(tmp_path):
    async with simulated_server(tmp_path, tasks=1, step_seconds=0, gzip=False) as sim, client(sim.url) as c:
        async with c.stream("GET", "/api/benchmark-sse", headers={"Accept-Encoding": "gzip"}) as r:
            assert "content-encoding" not in r.headers


@pytest.mark.slow
@pytest.mark.parametrize("compressed", [False, True])
async def test_curl_prints_each_event_as_it_happens(tmp_path, compressed):
    """curl -N (and --compressed) print a task's event while the rest of the run is not even
    written yet: the second half is appended only after curl has printed the first task."""
    if shutil.which("curl") is None:
        pytest.fail("curl is missing (scripts/dev test installs it)")
    data = b"".join(chunk for _, chunk in render_run(plan_run(3, seed=1), ansi=True))
    cut = data.index(b"\n", data.index(b"Finished ")) + 1  # up to the first task's end
    log = tmp_path / "waa.log"
    log.write_bytes(data[:cut])
    settings = Settings(port=0, targets=(TargetSpec(log=str(log), process_pattern=None),))
    out = bytearray()
    async with running_server(settings) as server:
        argv = ["curl", "-sS", "-N", f"{server.url}/api/benchmark-sse?interval=1"]
        proc = await trio.lowlevel.open_process(argv + (["--compressed"] if compressed else []),
                                                stdout=subprocess.PIPE)
        assert proc.stdout is not None

        async def until(marker: bytes) -> None:
            while marker not in out:
                chunk = await proc.stdout.receive_some(65536)
                assert chunk, f"curl ended early: {bytes(out)!r}"
                out.extend(chunk)

        try:
            with trio.fail_after(10):
                await until(b"event: task_complete\n")
                assert out.count(b"event: task_complete\n") == 1
                with open(log, "ab") as f:
                    f.write(data[cut:])
                await until(b"event: run_complete\n")
        finally:
            proc.kill()
            await proc.wait()
            await proc.stdout.aclose()
    assert out.startswith(b"retry: 3000\n\n: connected\n")
    assert out.count(b"event: task_complete\n") == 3


def seed_client(url: str, stop_after: str = "run_complete") -> list[tuple[str, dict]]:
    """The original endpoint's Python example (seeds/sse-usage-examples.md), verbatim in
    spirit: requests, iter_lines, 'event:'/'data:' prefixes, json.loads."""
    import requests

    response = requests.get(url, stream=True, timeout=(5, 30))
    got = []
    event_type = None
    for line in response.iter_lines():
        if line:
            line = line.decode("utf-8")
            if line.startswith("event:"):
                event_type = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:].strip())
                got.append((event_type, data))
                if event_type == stop_after:
                    response.close()
                    return got
    return got


async def test_the_seed_python_client_works_unchanged(tmp_path):
    # The client connects before the run is written (a client connecting later would get the
    # replay first, then status: SPEC §2.3), so what it sees does not depend on timing.
    log = tmp_path / "waa.log"
    log.write_bytes(b"")
    settings = Settings(port=0, targets=(TargetSpec(log=str(log), process_pattern=None),))
    with trio.fail_after(30):
        async with running_server(settings) as server, trio.open_nursery() as n:
            got: list[tuple[str, dict]] = []

            async def read() -> None:
                got.extend(await trio.to_thread.run_sync(seed_client, f"{server.url}/api/benchmark-sse?interval=5"))

            n.start_soon(read)
            monitor = server.hub.monitors["local"]
            while not monitor.subscriber_count:
                await trio.sleep(0.01)  # the client thread connects over a real socket
            async with simulated_run(log, tasks=3, step_seconds=0.01) as sim:
                await sim.done.wait()
    kinds = [k for k, _ in got]
    assert kinds[0] == "status" and "progress" in kinds and kinds[-1] == "run_complete"
    status = got[0][1]
    assert status["type"] == "vm_status" and "probe" in status and "vnc_url" in status["probe"]
    assert [d["task_id"] for k, d in got if k == "task_complete"] == [t.task_id for t in sim.expected]


async def test_shutdown_ends_every_stream_cleanly_and_at_once(tmp_path):
    log = tmp_path / "waa.log"
    log.write_text("")
    settings = Settings(port=0, targets=(TargetSpec(log=str(log), process_pattern=None),))
    ended = []

    async def reader(url: str, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with client(url) as c, c.stream("GET", "/api/benchmark-sse") as r:
            task_status.started()
            # aiter_bytes inflates gzip and raises on a body cut short (no chunked terminator)
            body = b"".join([chunk async for chunk in r.aiter_bytes()])
        ended.append(body)

    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            async with running_server(settings) as server:
                for _ in range(20):
                    await n.start(reader, server.url)
            start = trio.current_time()
    assert trio.current_time() - start < 2.0
    assert len(ended) == 20 and all(b.endswith(b": server shutting down\n") for b in ended)


async def test_app_reads_settings_from_the_environment(tmp_path, monkeypatch):
    import importlib
    import sys

    from trio_sse.app import create_app, hub_of

    monkeypatch.setenv("TRIO_SSE_LOG", str(tmp_path / "x.log"))
    monkeypatch.setenv("TRIO_SSE_KEEPALIVE", "2.5")
    monkeypatch.delitem(sys.modules, "trio_sse.asgi", raising=False)
    for app in (create_app(), importlib.import_module("trio_sse.asgi").app):  # both spellings
        hub = hub_of(app)
        assert hub.settings.targets[0].log == str(tmp_path / "x.log") and hub.settings.keepalive == 2.5


async def test_many_clients_one_monitor(tmp_path):
    """Fan-out: clients share one monitor; each gets every task once."""
    async with simulated_server(tmp_path, tasks=3, step_seconds=0.02) as sim:
        results: list[list[str]] = []

        async def one() -> None:
            events, _ = await collect_run(sim.url)
            results.append([e["task_id"] for e in events["task_complete"]])

        with trio.fail_after(30):
            async with trio.open_nursery() as n:
                for _ in range(30):
                    n.start_soon(one)
            # The server is in this Trio run: once everything is idle it has seen every
            # disconnect and unsubscribed.
            while sim.hub.monitors["local"].subscriber_count:
                await trio.testing.wait_all_tasks_blocked(0.01)
    assert results == [[t.task_id for t in sim.expected]] * 30


def test_settings_are_validated_on_replace_too():
    with pytest.raises(Exception, match="keepalive"):
        replace(Settings(), keepalive=0)


async def test_the_simulated_run_counts_as_the_running_benchmark(tmp_path):
    # serve --simulate: the benchmark runs inside the server, where pgrep cannot see it; the
    # badge must not say "not running" for the whole demo.
    settings = Settings(port=0, targets=(TargetSpec(log=str(tmp_path / "sim.log")),),  # default pgrep pattern
                        simulate=True, sim_tasks=2, sim_step_seconds=0.01)
    async with running_server(settings) as server, client(server.url) as c:
        events, _ = await collect_run(server.url)
        assert all(p["running"] is True for p in events["progress"][1:])  # after the first probe
    monitor = server.hub.monitors["local"]
    assert monitor.progress.value.running is False  # the run was written: nothing runs now


async def test_rerun_gives_the_infra_failures_as_waas_task_list(tmp_path):
    from upstream import build

    fx = build("waa_vm_down")
    log = tmp_path / "normal-0.log"
    log.write_bytes(fx.artifacts[fx.logs()[0]])
    two = Settings(port=0, targets=(TargetSpec(name="vm1", log=str(log), process_pattern=None),
                                    TargetSpec(name="vm2", log=str(tmp_path / "none.log"), process_pattern=None)))
    async with running_server(two) as server, client(server.url) as c:
        monitor = server.hub.monitors["vm1"]
        with trio.fail_after(10):
            while monitor.run_complete is None:
                await trio.sleep(0.01)  # the source reads the file
        r = await c.get("/api/rerun?target=vm1")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert sorted(t for ids in body.values() for t in ids) == sorted(
            e.event.task_id for e in monitor.history.entries if getattr(e.event, "failure_kind", None) == "infra")
        assert body and all(isinstance(v, list) for v in body.values())
        assert (await c.get("/api/rerun")).status_code == 400  # two targets: which one?
        assert (await c.get("/api/rerun?target=nope")).status_code == 404
        assert (await c.get("/api/rerun?target=vm2")).json() == {}


async def test_tasks_as_csv_with_formulas_made_inert(tmp_path):
    import csv as csvlib
    import io

    from trio_sse.logparse import TaskFinished

    log = tmp_path / "waa.log"
    log.write_bytes(b"")
    settings = Settings(port=0, targets=(TargetSpec(log=str(log), process_pattern=None),))
    async with running_server(settings) as server, client(server.url) as c:
        monitor = server.hub.monitors["local"]
        monitor.apply_parsed([TaskFinished("t1", "notepad", 1.0, None, 3, 0),
                              TaskFinished("t2", "chrome", None, "=HYPERLINK(\"http://evil\")", 1, 10)])
        r = await c.get("/api/tasks?format=csv")
        j = await c.get("/api/tasks?format=json")
        bad = await c.get("/api/tasks?format=xml")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csvlib.DictReader(io.StringIO(r.text)))
    assert [row["task_id"] for row in rows] == ["t1", "t2"] == [t["task_id"] for t in j.json()]
    assert rows[0]["success"] == "True" and rows[1]["failure_kind"] == "agent"
    assert rows[1]["error"].startswith("'=")  # a spreadsheet shows it, never runs it
    assert bad.status_code == 400 and "format must be json or csv" in bad.json()["error"]
