"""Stable ids and "what came after id X"."""

from __future__ import annotations

import pytest

from trio_sse.history import MAX_CURSOR_LENGTH, History, format_cursor, parse_cursor, run_id_for
from trio_sse.model import RunComplete, TaskComplete


def result(i: int) -> TaskComplete:
    return TaskComplete(target="vm1", task_id=f"task-{i}", success=i % 2 == 0, score=float(i % 2 == 0))


def filled(n: int, run: str = "abc") -> History:
    h = History("vm1", run)
    for i in range(n):
        h.append(result(i))
    return h


def test_ids_are_stable_and_derived_from_run_and_place():
    a, b = filled(3, run_id_for(b"[2024-05-06 10:00:00 INFO run/1-Main] Worker 0 ...")), filled(
        3, run_id_for(b"[2024-05-06 10:00:00 INFO run/1-Main] Worker 0 ...")
    )
    assert [e.id for e in a.entries] == [e.id for e in b.entries]
    assert a.entries[0].id == f"vm1:{a.run}-1"
    assert run_id_for(b"first line of run A") != run_id_for(b"first line of run B")
    assert run_id_for(b"x", "salt1") != run_id_for(b"x", "salt2")


def test_entry_frame_is_encoded_once_with_its_id():
    h = filled(1)
    e = h.entries[0]
    assert e.frame.startswith(b"id: vm1:abc-1\nevent: task_complete\ndata: {")
    assert e.frame_with_id("a:b-1,vm1:abc-1").startswith(b"id: a:b-1,vm1:abc-1\n")


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        (None, [1, 2, 3, 4, 5]),
        (("abc", 0), [1, 2, 3, 4, 5]),
        (("abc", 2), [3, 4, 5]),
        (("abc", 5), []),
        (("abc", 6), [1, 2, 3, 4, 5]),  # never issued: cannot place it → whole run
        (("other", 2), [1, 2, 3, 4, 5]),  # another run → whole run
    ],
)
def test_after(position, expected):
    h = filled(5)
    assert [int(e.id.rsplit("-", 1)[1]) for e in h.after(position)] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, {}),
        ("", {}),
        ("vm1:abc-3", {"vm1": ("abc", 3)}),
        ("vm1:abc-3,vm2:def-10", {"vm1": ("abc", 3), "vm2": ("def", 10)}),
        ("garbage", {}),
        ("vm1:abc-3,garbage,:x-1", {"vm1": ("abc", 3)}),
        ("vm1:ABC-3", {}),  # run ids are lower-case hex
        ("vm1:abc--3", {}),
        ("vm1:abc-99999999999999999999", {}),
        ("\x00\n💥", {}),
        ("vm1:abc-3" + "," * MAX_CURSOR_LENGTH, {}),  # too long: unplaceable, not an error
    ],
)
def test_parse_cursor_never_raises(raw, expected):
    assert parse_cursor(raw) == expected


def test_cursor_round_trip():
    ids = ["vm2:def-1", "vm1:abc-3"]
    assert parse_cursor(format_cursor(ids)) == {"vm1": ("abc", 3), "vm2": ("def", 1)}


def test_run_complete_is_durable_too():
    h = filled(2)
    e = h.append(RunComplete("vm1", 2, 2, 1, 0.5))
    assert e.id.endswith("-3") and b"event: run_complete" in e.frame
