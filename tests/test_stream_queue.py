"""The stream's frame queue (trio_sse.stream): what is queued goes out in order, joined into
writes of at most BATCH_BYTES (plus the frame that crosses the bound), and a lone frame goes
out at once. Companion of test_stream.py, written with the queue's rewrite for performance."""

from __future__ import annotations

import trio
import trio.testing
from test_stream import Reader, decode, monitor, stream

from trio_sse.logparse import TaskFinished
from trio_sse.stream import BATCH_BYTES


def big_finish(m, i: int) -> None:
    # ~5 KB of error text per event: a few hundred KB queued in one instant.
    m.apply_parsed([TaskFinished(f"t{i}", "notepad", None, f"boom {i} " + "x" * 5000, 1, 0)])


async def test_queued_frames_go_out_in_order_in_bounded_batches(autojump_clock):
    m = monitor()
    async with trio.open_nursery() as n:
        r = Reader(stream([m], interval=60, queue_size=1000))
        await n.start(r.run)
        await trio.testing.wait_all_tasks_blocked()
        opening = len(r.chunks)
        for i in range(100):  # all in the same instant: nothing is read in between
            big_finish(m, i)
        await trio.testing.wait_all_tasks_blocked()
        chunks = [c for _, c in r.chunks[opening:]]
        n.cancel_scope.cancel()
    frame = max(len(c) for c in chunks) - BATCH_BYTES  # no chunk exceeds the bound by more than one frame
    assert len(chunks) > 1 and frame < 6000
    assert all(len(c) < BATCH_BYTES + 6000 for c in chunks)
    got = [e.json()["task_id"] for e in decode(chunks) if e.event == "task_complete"]
    assert got == [f"t{i}" for i in range(100)]


async def test_a_lone_frame_goes_out_at_once(autojump_clock):
    m = monitor()
    async with trio.open_nursery() as n:
        r = Reader(stream([m], interval=60))
        await n.start(r.run)
        await trio.testing.wait_all_tasks_blocked()
        opening = len(r.chunks)
        m.apply_parsed([TaskFinished("only", "notepad", 1.0, None, 1, 0)])
        t0 = trio.current_time()
        await trio.testing.wait_all_tasks_blocked()
        sent = r.chunks[opening:]
        n.cancel_scope.cancel()
    # At once, in virtual time; the progress change it caused goes in the same write or the
    # next one, depending on which of the two woken tasks Trio runs first.
    assert [when for when, _ in sent] == [t0] * len(sent)
    assert [e.event for e in decode([c for _, c in sent])] == ["task_complete", "progress"]
