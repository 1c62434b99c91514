"""The per-client stream: ordering, keepalive and coalescing timing (virtual time), durable
events never coalesced, resume, drop on overflow, shutdown."""

from __future__ import annotations

import trio
import trio.testing

from support import IdleSource, decode_sse as decode
from trio_sse.logparse import RunFinished, RunStarted, StepStarted, TaskFinished, TaskStarted
from trio_sse.model import Progress
from trio_sse.monitor import Monitor
from trio_sse.limits import Limits
from trio_sse.stream import KEEPALIVE, EventStream, StreamConfig


def monitor(name: str = "local") -> Monitor:
    return Monitor(name, IdleSource())


def finish(m: Monitor, task_id: str, score: float | None = 1.0, error: str | None = None) -> None:
    m.apply_parsed(
        [
            TaskStarted(task_id, "notepad", 0),
            StepStarted(1, "click", 0),
            TaskFinished(task_id, "notepad", score, error, 1, 0),
        ]
    )


def stream(monitors, *, limits: Limits | None = None, client=None, **kw) -> EventStream:
    """A stream with the defaults of a server; ``keepalive``/``retry_ms``/``queue_*`` go to
    its StreamConfig, the rest are per-request arguments."""
    config = {k: kw.pop(k) for k in ("keepalive", "retry_ms", "queue_size", "queue_bytes") if k in kw}
    limits = limits or Limits(max_streams=10_000, max_per_ip=10_000, write_timeout=30.0)
    kw.setdefault("shutdown", trio.Event())
    return EventStream(monitors, config=StreamConfig(**config), slot=limits.slot(client), **kw)


class Reader:
    """Enters and drains a stream in one task — exactly as the HTTP layer does — recording
    (virtual time, chunk)."""

    def __init__(self, s: EventStream) -> None:
        self.s = s
        self.chunks: list[tuple[float, bytes]] = []
        self.ended = trio.Event()

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with self.s:
            task_status.started()
            async for chunk in self.s:
                self.chunks.append((trio.current_time(), chunk))
        self.ended.set()

    def events(self):
        return decode([c for _, c in self.chunks])


async def test_opening_order_retry_comment_replay_then_state():
    m = monitor()
    m.apply_parsed([RunStarted(3, 0)])
    finish(m, "t1")
    finish(m, "t2", 0.0)
    async with stream([m], retry_ms=1234) as s:
        first = await s.__anext__()
    assert first.startswith(b"retry: 1234\n\n: connected\n\n")
    events = decode([first])
    assert [e.event for e in events] == ["message", "task_complete", "task_complete", "status", "progress"]
    assert [e.json()["task_id"] for e in events[1:3]] == ["t1", "t2"]
    assert events[1].id == f"local:{m.history.run}-1" and events[2].id.endswith("-2")
    assert events[3].id == events[2].id  # non-durable events carry no id: last id stays
    assert events[4].json()["tasks_completed"] == 2 and events[4].json()["total_tasks"] == 3


async def test_resume_gives_only_what_came_after(autojump_clock):
    m = monitor()
    for i in range(5):
        finish(m, f"t{i}")
    async with stream([m], last_event_id=f"local:{m.history.run}-3") as s:
        events = decode([await s.__anext__()])
    assert [e.json().get("task_id") for e in events if e.event == "task_complete"] == ["t3", "t4"]


async def test_unplaceable_id_replays_the_whole_run(autojump_clock):
    m = monitor()
    for i in range(3):
        finish(m, f"t{i}")
    for junk in ["garbage", "local:ffff-2", "x" * 10_000, "local:" + m.history.run + "-99"]:
        async with stream([m], last_event_id=junk) as s:
            events = decode([await s.__anext__()])
        assert [e.json()["task_id"] for e in events if e.event == "task_complete"] == ["t0", "t1", "t2"]


async def test_keepalive_after_exact_silence(autojump_clock):
    m = monitor()
    async with trio.open_nursery() as n:
        r = Reader(stream([m], keepalive=15.0, interval=5))
        await n.start(r.run)
        await trio.sleep(40)
        times = [t for t, c in r.chunks if c == KEEPALIVE]
        assert times == [15.0, 30.0]
        # An event resets the silence timer.
        m.progress.set(Progress(target="local", current_step=7))
        await trio.sleep(20)
        assert [t for t, c in r.chunks if c == KEEPALIVE] == [15.0, 30.0, 55.0]
        n.cancel_scope.cancel()


async def test_progress_is_coalesced_to_one_per_interval(autojump_clock):
    m = monitor()
    async with trio.open_nursery() as n:
        r = Reader(stream([m], interval=5, keepalive=1000))
        await n.start(r.run)
        await trio.sleep(0.1)
        for step in range(1, 11):  # ten changes in one second
            m.progress.set(Progress(target="local", current_step=step))
            await trio.sleep(0.1)
        await trio.sleep(10)
        progress = [(t, e) for t, c in r.chunks for e in decode([c]) if e.event == "progress"]
        # the opening snapshot at 0, the first change at once, then the newest at 0.1 + 5
        assert [round(t, 6) for t, _ in progress] == [0.0, 0.1, 5.1]
        assert [e.json()["current_step"] for _, e in progress] == [None, 1, 10]
        n.cancel_scope.cancel()


async def test_durable_events_are_never_coalesced(autojump_clock):
    m = monitor()
    async with trio.open_nursery() as n:
        r = Reader(stream([m], interval=60, queue_size=1000))
        await n.start(r.run)
        await trio.testing.wait_all_tasks_blocked()
        for i in range(300):  # all in the same instant
            finish(m, f"t{i}", score=float(i % 2))
        m.apply_parsed([RunFinished(0.5, 0)])
        await trio.sleep(1)
        events = r.events()
        done = [e.json()["task_id"] for e in events if e.event == "task_complete"]
        assert done == [f"t{i}" for i in range(300)]
        assert [e.event for e in events].count("run_complete") == 1
        ids = [e.id for e in events if e.event in ("task_complete", "run_complete")]
        assert len(set(ids)) == 301
        n.cancel_scope.cancel()


async def test_a_client_that_cannot_keep_up_is_dropped_not_waited_for(autojump_clock):
    m = monitor()
    counters = Limits(max_streams=10, max_per_ip=10, write_timeout=30.0)
    async with stream([m], queue_size=4, limits=counters) as slow, stream([m], queue_size=1000) as fast:
        await slow.__anext__()  # opening chunk, then it stops reading
        await fast.__anext__()
        for i in range(10):
            finish(m, f"t{i}")
        assert slow.dropped == "queue_full"
        assert counters.drops["queue_full"] == 1
        assert m.subscriber_count == 2  # until the HTTP layer exits the stream
        # The dropped stream ends at once; the other one got everything.
        assert [c async for c in slow] == []
        got = decode([await fast.__anext__()])
        assert [e.json()["task_id"] for e in got if e.event == "task_complete"] == [f"t{i}" for i in range(10)]
    assert m.subscriber_count == 0


async def test_shutdown_ends_the_stream_with_final_frames(autojump_clock):
    m = monitor()
    shutdown = trio.Event()
    async with trio.open_nursery() as n:
        r = Reader(stream([m], shutdown=shutdown))
        await n.start(r.run)
        await trio.sleep(1)
        finish(m, "last")
        shutdown.set()
        with trio.fail_after(1):
            await r.ended.wait()
    events = r.events()
    assert [e.json()["task_id"] for e in events if e.event == "task_complete"] == ["last"]
    assert r.chunks[-1][1].endswith(b": server shutting down\n")


async def test_lifetime_limit_ends_the_stream(autojump_clock):
    m = monitor()
    r = Reader(stream([m], lifetime=30))
    await r.run()
    assert r.chunks[-1][0] == 30.0


async def test_multi_target_cursor_resumes_every_target(autojump_clock):
    a, b = monitor("vm1"), monitor("vm2")
    finish(a, "a1")
    finish(b, "b1")
    async with trio.open_nursery() as n:
        r = Reader(stream([a, b]))
        await n.start(r.run)
        await trio.testing.wait_all_tasks_blocked()
        finish(a, "a2")
        await trio.testing.wait_all_tasks_blocked()
        n.cancel_scope.cancel()
    last_id = [e.id for e in r.events() if e.event == "task_complete"][-1]
    assert last_id == f"vm1:{a.history.run}-2,vm2:{b.history.run}-1"
    finish(a, "a3")
    finish(b, "b2")
    async with stream([a, b], last_event_id=last_id) as s:
        events = decode([await s.__anext__()])
    assert [e.json()["task_id"] for e in events if e.event == "task_complete"] == ["a3", "b2"]


async def test_gzip_stream_inflates_frame_by_frame(autojump_clock):
    import zlib

    m = monitor()
    finish(m, "t1")
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    async with stream([m], gzip=True) as s:
        text = inflate.decompress(await s.__anext__())
    assert text.startswith(b"retry: 3000") and b'"task_id":"t1"' in text


async def test_status_and_progress_of_every_target_first(autojump_clock):
    a, b = monitor("vm1"), monitor("vm2")
    async with stream([a, b]) as s:
        events = decode([await s.__anext__()])
    assert [(e.event, e.json()["target"]) for e in events if e.data] == [
        ("status", "vm1"), ("progress", "vm1"), ("status", "vm2"), ("progress", "vm2")
    ]


async def test_a_client_connecting_during_an_outage_is_told_why(autojump_clock):
    from trio_sse.sources import SourceDown, SourceUp

    m = monitor()
    m.apply(SourceDown("ssh vm: connection refused"))
    async with stream([m]) as s:
        events = decode([await s.__anext__()])
    assert [(e.event, e.json()) for e in events if e.event == "error"] == [
        ("error", {"message": "ssh vm: connection refused", "target": "local"})
    ]
    assert [e.json()["connected"] for e in events if e.event == "status"] == [False]
    m.apply(SourceUp())
    async with stream([m]) as s:
        events = decode([await s.__anext__()])
    assert [e.event for e in events if e.event == "error"] == []


async def test_steps_go_out_at_once_encoded_once_without_an_id_and_are_not_replayed(autojump_clock):
    m = monitor()
    m.apply_parsed([RunStarted(3, 0), TaskStarted("t1", "notepad", 0)])
    async with stream([m], interval=60) as one, stream([m], interval=60, queue_size=1000) as two:
        await one.__anext__()
        await two.__anext__()
        m.apply_parsed([StepStarted(1, "click", 10), StepStarted(2, "type", 20)])
        assert one._queue[0] is two._queue[0]  # the same bytes object: encoded once for all
        got = decode([await one.__anext__()])
        assert [(e.event, e.id, e.json()["step"]) for e in got] == [("step", "", 1), ("step", "", 2)]
        assert trio.current_time() == 0  # no interval waited: sent at once
    async with stream([m]) as late:  # a client connecting later gets no step from the past
        assert "step" not in [e.event for e in decode([await late.__anext__()])]
