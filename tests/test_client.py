"""trio_sse.client: typed events from a real server, resume across a server restart, no retry
on 4xx, the server's ``retry`` honoured, junk input refused.

Against the real server (``trio_sse.testing``) wherever it can produce the case; an in-memory
httpx transport only for faults it cannot (a chosen ``retry``, a 503, a broken stream),
where Trio's virtual clock then times the reconnects exactly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import trio
from browser import RestartableServer, restartable_server

from trio_sse.client import (
    BenchmarkClient,
    ConnectionEvent,
    ErrorEvent,
    ProgressEvent,
    ProtocolError,
    RunCompleteEvent,
    StatusEvent,
    StepEvent,
    StreamRejected,
    TaskCompleteEvent,
    decode_event,
)
from trio_sse.config import Settings, TargetSpec
from trio_sse.errors import ConfigError
from trio_sse.testing import SimRun, free_port, running_server, simulated_run, simulated_server

GUARD = 30  # seconds: only a guard against a hang, never a wait


def _settings(log: Path, **kw: object) -> Settings:
    target = TargetSpec(name="local", log=str(log), process_pattern=None)
    return replace(Settings(port=free_port(), targets=(target,)), **kw)  # type: ignore[arg-type]


class Counting(httpx.AsyncBaseTransport):
    """A real network transport that counts the requests it sends."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


# ------------------------------------------------------------------ against the real server


async def test_events_are_typed_and_match_the_run(tmp_path: Path) -> None:
    async with simulated_server(tmp_path, tasks=5, step_seconds=0.01) as sim:
        seen: list[object] = []
        with trio.fail_after(GUARD):
            async with BenchmarkClient(sim.url, interval=1) as client:
                async for event in client.events():
                    seen.append(event)
                    if isinstance(event, RunCompleteEvent):
                        break
    statuses = [e for e in seen if isinstance(e, StatusEvent)]
    progresses = [e for e in seen if isinstance(e, ProgressEvent)]
    results = [e for e in seen if isinstance(e, TaskCompleteEvent)]
    (done,) = [e for e in seen if isinstance(e, RunCompleteEvent)]
    assert statuses and progresses, "a client gets status and progress at once on connect"
    assert all(e.target == "local" for e in statuses + progresses + results)
    assert all(isinstance(e.raw, dict) and e.raw["target"] == "local" for e in results)
    assert [(r.task_id, r.domain, r.success, r.score, r.error) for r in results] == [
        (t.task_id, t.domain, t.success, t.score, t.error) for t in sim.expected
    ]
    assert all(r.id for r in results) and len({r.id for r in results}) == len(results)
    assert done.tasks_completed == 5 and done.tasks_passed == sum(t.success for t in sim.expected)
    assert done.id and client.last_event_id == done.id
    assert isinstance(progresses[-1].tasks_completed, int)
    # every durable id names the same run (progress.run names it too, once it is known)
    runs = {e.id.split(":", 1)[1].rsplit("-", 1)[0] for e in [*results, done]}
    assert len(runs) == 1 and all(p.run in (None, *runs) for p in progresses)


async def test_step_events_are_typed_and_their_screenshots_load_with_the_token(tmp_path: Path) -> None:
    """``serve --simulate`` with its results folder: a ``StepEvent`` per agent step (no id: not
    durable), each screenshot a path on the server, served with the caller's token."""
    log = tmp_path / "waa.log"
    target = TargetSpec(name="local", log=str(log), results=str(tmp_path / "results"), process_pattern=None)
    settings = Settings(port=0, targets=(target,), simulate=True, sim_tasks=3, sim_step_seconds=0.05, token="t0ken")
    steps: list[StepEvent] = []
    async with running_server(settings) as server:
        with trio.fail_after(GUARD):
            async with BenchmarkClient(server.url, interval=1, token="t0ken") as client:
                async for event in client.events():
                    if isinstance(event, StepEvent):
                        steps.append(event)
                    if isinstance(event, RunCompleteEvent):
                        break
            shots = [s.screenshot for s in steps if s.screenshot is not None]
            assert shots, "steps read from the trajectories carry their screenshot"
            async with httpx.AsyncClient(base_url=server.url) as http:
                ok = await http.get(shots[-1], headers={"Authorization": "Bearer t0ken"})
                refused = await http.get(shots[-1])
    assert steps and all(s.target == "local" and s.worker == "0" and isinstance(s.raw, dict) for s in steps)
    assert all(not hasattr(s, "id") for s in steps), "step events are not durable: no id"
    by_task: dict[str, list[int]] = {}
    for s in steps:
        by_task.setdefault(s.task_id, []).append(s.step)
    assert all(n == sorted(n) for n in by_task.values()), by_task
    assert all(s.startswith("/api/tasks/") and "/files/screenshot-step_" in s and s.endswith("?target=local") for s in shots)
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/png" and ok.content.startswith(b"\x89PNG")
    assert refused.status_code == 401


async def test_resumes_across_a_server_restart_without_loss_or_repeat(tmp_path: Path) -> None:
    log = tmp_path / "waa.log"
    # retry 200 ms: the client comes back quickly once the server is up again.
    settings = _settings(log, retry_ms=200)
    results: list[TaskCompleteEvent] = []
    states: list[str] = []
    two_seen = trio.Event()
    restarted_mid_run: list[bool] = []

    async def restart_after_two_results(server: RestartableServer, run: SimRun) -> None:
        # From another task, so the client keeps reading while the server goes down (a
        # client that stopped reading would hold the server's shutdown up).
        await two_seen.wait()
        await server.restart()
        restarted_mid_run.append(not run.done.is_set())

    async with restartable_server(settings) as server, simulated_run(log, tasks=8, step_seconds=0.05) as run:
        with trio.fail_after(GUARD):
            async with trio.open_nursery() as nursery, BenchmarkClient(server.url, interval=1) as client:
                nursery.start_soon(restart_after_two_results, server, run)
                async for event in client.events(connection_events=True):
                    if isinstance(event, ConnectionEvent):
                        states.append(event.state)
                    elif isinstance(event, TaskCompleteEvent):
                        results.append(event)
                        if len(results) == 2:
                            two_seen.set()
                    elif isinstance(event, RunCompleteEvent):
                        break
    assert restarted_mid_run == [True], "the restart must happen while the run is still being written"
    assert server.starts == 2
    assert states[:2] == ["live", "reconnecting"] and states[-1] == "live"
    assert client.connects >= 2
    # Nothing lost, nothing twice: exactly the planned tasks, in log order.
    assert [r.task_id for r in results] == [t.task_id for t in run.expected]
    ids = [r.id for r in results]
    assert len(set(ids)) == len(ids)


async def test_last_event_id_given_by_the_caller_resumes_after_it(tmp_path: Path) -> None:
    async with simulated_server(tmp_path, tasks=5, step_seconds=0.005) as sim:
        with trio.fail_after(GUARD):
            await sim.done.wait()
            first = await _collect_until_run_complete(sim.url)
            second_id = first[1].id
            later = await _collect_until_run_complete(sim.url, last_event_id=second_id)
    assert [e.task_id for e in first if isinstance(e, TaskCompleteEvent)] == [t.task_id for t in sim.expected]
    assert [getattr(e, "task_id", "END") for e in later] == [t.task_id for t in sim.expected[2:]] + ["END"]


async def _collect_until_run_complete(url: str, **kw: object) -> list[TaskCompleteEvent | RunCompleteEvent]:
    out: list[TaskCompleteEvent | RunCompleteEvent] = []
    async with BenchmarkClient(url, interval=1, **kw) as client:  # type: ignore[arg-type]
        async for event in client.events():
            if isinstance(event, TaskCompleteEvent | RunCompleteEvent):
                out.append(event)
            if isinstance(event, RunCompleteEvent):
                return out
    raise AssertionError("the stream ended")


async def test_retry_from_the_server_is_taken(tmp_path: Path) -> None:
    async with simulated_server(tmp_path, tasks=1, step_seconds=0.001, retry_ms=1234) as sim:
        async with BenchmarkClient(sim.url) as client:
            assert client.retry == 3.0  # EventSource's usual default until the server speaks
            with trio.fail_after(GUARD):
                async for _ in client.events():
                    break
            assert client.retry == pytest.approx(1.234)


@pytest.mark.parametrize(
    ("kw", "status", "message"),
    [
        ({"target": "nosuch"}, 404, "unknown target 'nosuch'"),
        ({"token": "wrong"}, 401, "token"),
    ],
)
async def test_4xx_raises_the_servers_message_and_never_retries(
    tmp_path: Path, kw: dict[str, str], status: int, message: str
) -> None:
    transport = Counting()
    async with simulated_server(tmp_path, tasks=1, step_seconds=0.001, token="sekrit") as sim:
        client = BenchmarkClient(sim.url, interval=1, transport=transport, **{"token": "sekrit", **kw})
        with trio.fail_after(GUARD):
            async with client:
                with pytest.raises(StreamRejected) as info:
                    async for _ in client.events():
                        pass
    assert info.value.status == status
    assert message in str(info.value)
    assert len(transport.requests) == 1


async def test_a_valid_token_is_sent(tmp_path: Path) -> None:
    transport = Counting()
    async with simulated_server(tmp_path, tasks=1, step_seconds=0.001, token="sekrit") as sim:
        async with BenchmarkClient(sim.url, interval=1, token="sekrit", transport=transport) as client:
            with trio.fail_after(GUARD):
                async for event in client.events():
                    assert isinstance(event, StatusEvent | ProgressEvent | TaskCompleteEvent | RunCompleteEvent)
                    break
    assert transport.requests[0].headers["authorization"] == "Bearer sekrit"
    assert "token" not in str(transport.requests[0].url)  # a header, not the URL (logs)


async def test_leaving_the_loop_early_closes_the_stream(tmp_path: Path) -> None:
    async with simulated_server(tmp_path, tasks=3, step_seconds=0.01) as sim:
        with trio.fail_after(GUARD):
            async with BenchmarkClient(sim.url, interval=1) as client:
                async for _ in client.events():
                    break  # an abandoned iterator: __aexit__ must close its response

            # The server sees the client go: no stream is left open.
            while sum(m.subscriber_count for m in sim.hub.monitors.values()):
                await trio.sleep(0.01)


# ------------------------------------------------------------------ faults, on an in-memory transport

Handler = Callable[[httpx.Request], httpx.Response]


def _stream(*chunks: str, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk.encode()

    h = {"content-type": "text/event-stream; charset=utf-8", **(headers or {})}
    return httpx.Response(status, headers=h, content=body())


STATUS = 'event: status\ndata: {"type":"vm_status","connected":true,"phase":"ready","waa_ready":true,"probe":{"status":"ready","vnc_url":null}}\n\n'
TASK = 'id: local:ab-{n}\nevent: task_complete\ndata: {{"task_id":"t{n}","success":true,"score":1.0,"target":"local"}}\n\n'


class Script:
    """Answers each request with the next response and notes when (Trio time) it came."""

    def __init__(self, *responses: Handler) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            self.times.append(trio.current_time())
            return self.responses.pop(0)(request)

        return httpx.MockTransport(handle)


async def _take(client: BenchmarkClient, n: int, **kw: bool) -> list[object]:
    out: list[object] = []
    async for event in client.events(**kw):
        out.append(event)
        if len(out) == n:
            break
    return out


async def test_waits_the_servers_retry_then_resumes_with_last_event_id(autojump_clock: object) -> None:
    script = Script(
        lambda r: _stream("retry: 5000\n\n: connected\n\n", STATUS, TASK.format(n=1)),  # then ends
        lambda r: _stream(TASK.format(n=2)),
    )
    async with BenchmarkClient("http://monitor.test", transport=script.transport()) as client:
        events = await _take(client, 3)
    assert [type(e) for e in events] == [StatusEvent, TaskCompleteEvent, TaskCompleteEvent]
    assert script.times[1] - script.times[0] == pytest.approx(5.0)
    assert "last-event-id" not in script.requests[0].headers
    assert script.requests[1].headers["last-event-id"] == "local:ab-1"
    assert client.last_event_id == "local:ab-2"


async def test_network_errors_reconnect_after_retry(autojump_clock: object) -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def cut(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            yield TASK.format(n=1).encode()
            raise httpx.ReadError("connection reset")

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    script = Script(refused, cut, lambda r: _stream(TASK.format(n=2)))
    async with BenchmarkClient("http://monitor.test", transport=script.transport()) as client:
        events = await _take(client, 5, connection_events=True)
    assert [getattr(e, "state", getattr(e, "task_id", None)) for e in events] == [
        "reconnecting", "live", "t1", "reconnecting", "live",
    ]
    assert "ConnectError" in events[0].reason  # type: ignore[attr-defined]
    assert "ReadError" in events[3].reason  # type: ignore[attr-defined]
    assert [b - a for a, b in zip(script.times, script.times[1:])] == [pytest.approx(3.0)] * 2
    assert script.requests[2].headers["last-event-id"] == "local:ab-1"


async def test_503_waits_at_least_retry_after(autojump_clock: object) -> None:
    full = httpx.Response(503, json={"error": "too many streams"}, headers={"retry-after": "7"})
    script = Script(lambda r: full, lambda r: _stream(STATUS))
    async with BenchmarkClient("http://monitor.test", transport=script.transport()) as client:
        events = await _take(client, 2, connection_events=True)
    assert events[0] == ConnectionEvent("reconnecting", "HTTP 503: too many streams", 7.0)
    assert script.times[1] - script.times[0] == pytest.approx(7.0)


async def test_unknown_event_types_and_comments_are_skipped(autojump_clock: object) -> None:
    script = Script(
        lambda r: _stream(
            ": keepalive\n\n",
            "event: future_thing\ndata: {\"x\": 1}\n\n",
            "data: an unnamed message\n\n",
            'event: error\ndata: {"message":"SSH connection failed","target":"vm"}\n\n',
        )
    )
    async with BenchmarkClient("http://monitor.test", transport=script.transport()) as client:
        events = await _take(client, 1)
    assert events == [ErrorEvent(target="vm", message="SSH connection failed")]


async def test_not_an_event_stream_is_a_protocol_error() -> None:
    script = Script(lambda r: httpx.Response(200, html="<html>a dashboard</html>"))
    async with BenchmarkClient("http://monitor.test", transport=script.transport()) as client:
        with pytest.raises(ProtocolError, match="not an event stream"):
            await _take(client, 1)
    assert len(script.requests) == 1


async def test_204_ends_the_iteration() -> None:
    script = Script(lambda r: httpx.Response(204))
    async with BenchmarkClient("http://monitor.test", transport=script.transport()) as client:
        assert await _take(client, 1) == []


async def test_events_outside_async_with_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        BenchmarkClient("http://monitor.test").events()


# ------------------------------------------------------------------ decoding and junk input


def test_the_original_endpoints_payloads_decode() -> None:
    # Straight from the seed documents: no "target", none of the added keys.
    status = decode_event(
        "status",
        '{"type": "vm_status", "connected": true, "phase": "oobe", "waa_ready": false, '
        '"probe": {"status": "Not responding", "vnc_url": "http://20.123.45.67:8006"}}',
    )
    assert status == StatusEvent(None, True, "oobe", False, "Not responding", "http://20.123.45.67:8006")
    progress = decode_event(
        "progress", '{"tasks_completed": 5, "total_tasks": 30, "current_task": "task_001_notepad", "current_step": 12}'
    )
    assert progress == ProgressEvent(None, 5, 30, "task_001_notepad", 12)
    task = decode_event("task_complete", '{"task_id": "task_001_notepad", "success": true, "score": 1.0}')
    assert task == TaskCompleteEvent(None, "task_001_notepad", True, 1.0)
    assert decode_event("error", '{"message": "SSH connection failed"}') == ErrorEvent(None, "SSH connection failed")


def test_a_step_event_decodes() -> None:
    step = decode_event(
        "step",
        '{"task_id":"366de66e-WOS","step":3,"action":"pyautogui.click(512, 384)",'
        '"screenshot":"/api/tasks/366de66e-WOS/files/screenshot-step_2_20241120%40140612.png?target=vm1",'
        '"at":"2024-11-20T14:06:12","target":"vm1","worker":"0","newer_key":1}',
    )
    assert step == StepEvent(
        "vm1", "366de66e-WOS", 3, "pyautogui.click(512, 384)",
        "/api/tasks/366de66e-WOS/files/screenshot-step_2_20241120%40140612.png?target=vm1", "2024-11-20T14:06:12", "0",
    )  # fmt: skip
    assert isinstance(step, StepEvent) and step.raw["newer_key"] == 1
    from_log = decode_event("step", '{"task_id":"a","step":1,"action":"","screenshot":null,"at":null,"target":"t"}')
    assert isinstance(from_log, StepEvent) and from_log.screenshot is None and from_log.worker is None


def test_a_zero_score_stays_zero_and_null_stays_none() -> None:
    zero = decode_event("task_complete", '{"task_id":"a","success":false,"score":0}')
    raised = decode_event("task_complete", '{"task_id":"a","success":false,"score":null,"error":"boom"}')
    assert isinstance(zero, TaskCompleteEvent) and zero.score == 0.0
    assert isinstance(raised, TaskCompleteEvent) and raised.score is None and raised.error == "boom"


@pytest.mark.parametrize(
    ("event", "data", "match"),
    [
        ("task_complete", "not json", "not JSON"),
        ("task_complete", "[1, 2]", "not a JSON object"),
        ("task_complete", '{"success": true, "score": 1}', "'task_id'"),
        ("task_complete", '{"task_id": 5, "success": true, "score": 1}', "'task_id'"),
        ("task_complete", '{"task_id": "a", "success": "yes", "score": 1}', "'success'"),
        ("task_complete", '{"task_id": "a", "success": true, "score": true}', "'score'"),
        ("task_complete", '{"task_id": "a", "success": true, "score": 1e999}', "finite"),
        ("progress", '{"tasks_completed": "3", "total_tasks": 5, "current_task": null, "current_step": null}', "'tasks_completed'"),
        ("run_complete", '{"tasks_completed": 1, "total_tasks": 1, "average_score": 1.0}', "'tasks_passed'"),
        ("error", '{"message": null}', "'message'"),
        ("step", '{"step": 1, "action": "", "screenshot": null, "at": null}', "'task_id'"),
        ("step", '{"task_id": "a", "step": "1", "action": "", "screenshot": null, "at": null}', "'step'"),
        ("step", '{"task_id": "a", "step": true, "action": "", "screenshot": null, "at": null}', "'step'"),
        ("step", '{"task_id": "a", "step": 1, "action": null, "screenshot": null, "at": null}', "'action'"),
        ("step", '{"task_id": "a", "step": 1, "action": "", "screenshot": 5, "at": null}', "'screenshot'"),
        ("step", '{"task_id": "a", "step": 1, "action": ""}', "'screenshot'"),
        ("step", "[]", "not a JSON object"),
    ],
)
def test_bad_data_of_a_known_type_is_a_protocol_error(event: str, data: str, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_event(event, data)


@pytest.mark.parametrize(
    ("args", "kw", "match"),
    [
        (("localhost:8765",), {}, "must look like http://HOST:PORT"),
        (("ftp://example.com",), {}, "must look like http://HOST:PORT"),
        (("",), {}, "must look like http://HOST:PORT"),
        (("http://",), {}, "must look like http://HOST:PORT"),
        (("http://h:99999",), {}, "bad port"),
        (("http://h:8765?interval=2",), {}, "query"),
        ((None,), {}, "must be a string"),
        (("http://h",), {"interval": 0}, "interval must be an integer from 1 to 60, got 0"),
        (("http://h",), {"interval": 61}, "got 61"),
        (("http://h",), {"interval": "5"}, "got '5'"),
        (("http://h",), {"interval": 2.5}, "got 2.5"),
        (("http://h",), {"interval": True}, "got True"),
        (("http://h",), {"token": ""}, "token must be non-empty"),
        (("http://h",), {"token": "a b"}, "no whitespace"),
        (("http://h",), {"target": ""}, "target must be a non-empty name"),
    ],
)
def test_junk_arguments_are_refused_with_one_sentence(args: tuple[object, ...], kw: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        BenchmarkClient(*args, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765/api/benchmark-sse"),
        ("http://127.0.0.1:8765/", "http://127.0.0.1:8765/api/benchmark-sse"),
        ("https://example.com/monitor/", "https://example.com/monitor/api/benchmark-sse"),
        ("http://[::1]:8765/api/benchmark-sse", "http://[::1]:8765/api/benchmark-sse"),
    ],
)
def test_the_stream_url_is_built_from_the_base_url(base: str, url: str) -> None:
    assert BenchmarkClient(base).url == url
