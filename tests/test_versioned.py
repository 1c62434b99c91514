"""versioned.Versioned and the values built on it (monitor.Watched, cluster.mirror.ReplicaValue):
a change wakes every waiter once, an equal value is no change, and a change made while a waiter
was busy elsewhere is not missed (it compares versions, the event only wakes it)."""

from __future__ import annotations

import trio
import trio.testing

from trio_sse.cluster.mirror import ReplicaValue
from trio_sse.model import Progress, dumps
from trio_sse.monitor import Watched
from trio_sse.versioned import Versioned


async def test_a_change_wakes_every_waiter_and_an_equal_value_is_no_change() -> None:
    value: Versioned[int] = Versioned(1)
    woken: list[int] = []

    async def waiter(n: int) -> None:
        await value.wait_newer(0)
        woken.append(n)

    async with trio.open_nursery() as nursery:
        for n in range(3):
            nursery.start_soon(waiter, n)
        await trio.testing.wait_all_tasks_blocked()
        assert value.set(1) is False and value.version == 0  # equal: nobody woken
        await trio.testing.wait_all_tasks_blocked()
        assert woken == []
        assert value.set(2) is True and value.version == 1
    assert sorted(woken) == [0, 1, 2]


async def test_a_change_between_two_waits_is_not_missed() -> None:
    value: Versioned[str] = Versioned("a")
    seen = value.version
    value.set("b")  # nobody was waiting
    with trio.fail_after(1):
        await value.wait_newer(seen)  # returns at once
    assert value.value == "b"


async def test_watched_and_replica_frames_follow_the_value() -> None:
    p0, p1 = Progress(target="vm1"), Progress(target="vm1", tasks_completed=1)
    watched = Watched(p0, "progress")
    replica = ReplicaValue(p0, "progress")
    assert watched.frame == replica.frame and watched.frame.startswith(b"event: progress\n")
    assert watched.set(p1) and watched.version == 1 and b'"tasks_completed":1' in watched.frame
    assert replica.set_data(p1, dumps(p1.payload())) and replica.frame == watched.frame
    assert not replica.set_data(p1, dumps(p1.payload()))  # the same JSON: no change
    assert replica.version == 1
