"""Stable ids and "what came after id X"."""

from __future__ import annotations

import pytest

from trio_sse.history import MAX_CURSOR_LENGTH, History, Position, format_cursor, parse_cursor, run_id_for
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
        (Position("abc", {"": 0}), [1, 2, 3, 4, 5]),
        (Position("abc", {"": 2}), [3, 4, 5]),
        (Position("abc", {"": 5}), []),
        (Position("abc", {"": 6}), [1, 2, 3, 4, 5]),  # never issued: cannot place it → whole run
        (Position("other", {"": 2}), [1, 2, 3, 4, 5]),  # another run → whole run
        (Position("abc", {"a1b2c3": 2}), [1, 2, 3, 4, 5]),  # a lane this run does not have
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
        ("vm1:abc-3", {"vm1": Position("abc", {"": 3})}),
        ("vm1:abc-3,vm2:def-10", {"vm1": Position("abc", {"": 3}), "vm2": Position("def", {"": 10})}),
        ("vm1:abc-a1.3_b2.0", {"vm1": Position("abc", {"a1": 3, "b2": 0})}),
        ("vm1:abc-a1.3_", {}),
        ("vm1:abc-a1_3", {}),
        ("vm1:abc-a1.3.4", {}),
        ("garbage", {}),
        ("vm1:abc-3,garbage,:x-1", {"vm1": Position("abc", {"": 3})}),
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
    assert parse_cursor(format_cursor(ids)) == {"vm1": Position("abc", {"": 3}), "vm2": Position("def", {"": 1})}


def test_run_complete_is_durable_too():
    h = filled(2)
    e = h.append(RunComplete("vm1", 2, 2, 1, 0.5))
    assert e.id.endswith("-3") and b"event: run_complete" in e.frame


# ---------------------------------------------------------------- a run of several lanes


def lanes(order: str) -> History:
    """A run of two workers' files, a and b, read in ``order`` (e.g. "aabab")."""
    h = History("vm1", "ab0", lanes=True)
    seen = {"a": 0, "b": 0}
    for lane in order:
        seen[lane] += 1
        h.append(TaskComplete("vm1", f"{lane}{seen[lane]}", True, 1.0), lane=f"{lane * 6}")
    return h


def test_each_id_carries_every_lanes_count():
    h = lanes("aab")
    assert [e.id for e in h.entries] == ["vm1:ab0-aaaaaa.1", "vm1:ab0-aaaaaa.2", "vm1:ab0-aaaaaa.2_bbbbbb.1"]
    assert [(e.lane, e.n) for e in h.entries] == [("aaaaaa", 1), ("aaaaaa", 2), ("bbbbbb", 1)]
    assert h.cursor() == "vm1:ab0-aaaaaa.2_bbbbbb.1"


@pytest.mark.parametrize(
    ("live", "restarted"),
    [("aabab", "aaabb"), ("ababab", "bbbaaa"), ("abba", "aabb")],
)
def test_a_resume_after_a_restart_that_read_the_lanes_in_another_order_loses_nothing_and_repeats_nothing(
    live, restarted
):
    # The client saw a prefix of the live order; the server restarted and read the same files
    # in another interleaving. What it replays is exactly what the client is missing, and the
    # ids it hands out never go back for any lane.
    before, after = lanes(live), lanes(restarted)
    for cut in range(len(before.entries) + 1):
        seen = {e.event.task_id for e in before.entries[:cut]}
        position = parse_cursor(before.entries[cut - 1].id)["vm1"] if cut else None
        replay = after.after(position)
        got = [e.event.task_id for e in replay]
        assert sorted(got) == sorted({e.event.task_id for e in after.entries} - seen), cut
        counts = [parse_cursor(replay.entry_id(e))["vm1"].lanes for e in replay]
        for earlier, later in zip([position.lanes if position else {}] + counts, counts):
            assert all(later.get(k, 0) >= v for k, v in earlier.items())
        # and where the client is once it has everything: every lane complete
        assert parse_cursor(after.cursor(position))["vm1"].lanes == {"aaaaaa": live.count("a"),
                                                                       "bbbbbb": live.count("b")}


def test_a_lane_position_past_what_was_read_is_not_placed():
    h = lanes("ab")
    assert h.after(Position("ab0", {"aaaaaa": 5})) == list(h.entries)
    assert h.after(Position("ab0", {"": 1})) == list(h.entries)  # a single-file id against lanes


def test_a_history_of_lanes_needs_the_lane():
    with pytest.raises(ValueError):
        History("vm1", "r", lanes=True).append(result(1))
