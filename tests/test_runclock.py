"""``trio_sse.runclock``: a run's wall time and ETA from the log's own times only (pure).

The log's clock is years away from ``now`` in every case here: nothing may compare the two."""

from __future__ import annotations

import pytest

from trio_sse.runclock import Elapsed, RunClock, log_seconds

START = "2020-01-01T10:00:00"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2020-01-01T10:00:00", 1577872800.0),
        ("2020-01-01 10:00:00", 1577872800.0),
        ("2020-01-01T10:00:00.250", 1577872800.25),
        ("2020-01-01 10:00:00,250", 1577872800.25),  # logging's own comma
        ("2020-01-01T11:00:00+01:00", 1577872800.0),  # a zone, when there is one, is honoured
    ],
)
def test_log_times_are_read_as_written(text: str, seconds: float) -> None:
    assert log_seconds(text) == seconds


@pytest.mark.parametrize("junk", [None, "", "yesterday", "2020-13-01T10:00:00", "10:00:00", 1577872800, b"2020-01-01", "2020-01-01T25:00"])
def test_junk_is_no_time(junk: object) -> None:
    assert log_seconds(junk) is None


def test_nothing_known_gives_nothing() -> None:
    clock = RunClock()
    assert clock.log_now(5.0) is None
    assert clock.elapsed(START, 5.0, finished=False) is None
    assert clock.eta(START, 5.0, done=0, total=10) is None
    clock.observe("junk", 5.0, live=True)
    assert clock.log_now(5.0) is None


def test_replayed_times_give_a_lower_bound_and_a_live_one_the_exact_time() -> None:
    clock = RunClock()
    # A replay at now=100: two results, at 10:10 and 10:20 on the log's clock.
    clock.observe("2020-01-01T10:10:00", 100.0, live=False, finish=True)
    clock.observe("2020-01-01T10:20:00", 100.0, live=False, finish=True)
    assert clock.elapsed(START, 100.0, finished=False) == Elapsed(20 * 60, exact=False)
    assert clock.elapsed(START, 130.0, finished=False) == Elapsed(20 * 60 + 30, exact=False)
    # 2 tasks in 20 min, 8 to go: 80 min, less the 30 s since the last one (at least).
    assert clock.eta(START, 130.0, done=2, total=10) == 80 * 60 - 30
    # A live result at 10:31 arrives at now=200: the log clock's now is known from here on.
    clock.observe("2020-01-01T10:31:00", 200.0, live=True, finish=True)
    assert clock.elapsed(START, 200.0, finished=False) == Elapsed(31 * 60, exact=True)
    assert clock.elapsed(START, 260.0, finished=False) == Elapsed(32 * 60, exact=True)
    assert clock.eta(START, 260.0, done=3, total=10) == pytest.approx(7 * 31 * 60 / 3 - 60)
    # A slower live event (it travelled longer) does not move the estimate back.
    clock.observe("2020-01-01T10:31:30", 300.0, live=True)
    assert clock.log_now(300.0) == log_seconds("2020-01-01T10:32:40")
    # Finished: from the first record to the newest time, whatever the clock says now.
    assert clock.elapsed(START, 10_000.0, finished=True) == Elapsed(31 * 60 + 30, exact=True)


def test_eta_needs_the_runs_own_pace() -> None:
    clock = RunClock()
    clock.observe("2020-01-01T10:05:00", 0.0, live=True)  # a step: no result yet
    assert clock.eta(START, 0.0, done=0, total=10) is None
    clock.observe("2020-01-01T10:10:00", 0.0, live=True, finish=True)
    assert clock.eta(START, 0.0, done=1, total=None) is None
    assert clock.eta(START, 0.0, done=10, total=10) is None
    assert clock.eta("junk", 0.0, done=1, total=10) is None
    assert clock.eta("2020-01-01T10:20:00", 0.0, done=1, total=10) is None  # a start after the result
    # Long past the pace: "any moment", never negative.
    assert clock.eta(START, 10_000_000.0, done=1, total=2) == 0.0
