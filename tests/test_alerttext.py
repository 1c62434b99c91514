"""What alerts say: keys (once-only), titles and bodies from payloads, with junk and hostile
log text in them."""

from __future__ import annotations

from typing import Any

import pytest

from trio_sse.alerttext import (
    FAILURE,
    MAX_FIELD,
    SUCCESS,
    WARNING,
    clean,
    for_durable,
    run_finished,
    run_stalled,
    target_unreachable,
    task_regressed,
)

DONE = {"tasks_completed": 150, "total_tasks": 154, "tasks_passed": 45, "average_score": 0.3125, "target": "waa"}
SUMMARY = {
    "run": "waa:def456",
    "fixed": 3,
    "regressed": 12,
    "new": 1,
    "passed_then": 50,
    "tasks_then": 154,
    "average_then": 0.33,
    "average_now": 0.3125,
    "regressed_tasks": [f"task-{i}" for i in range(12)],
}


def test_finished() -> None:
    a = run_finished("waa", "abc123", DONE)
    assert (a.key, a.kind, a.level) == ("waa:abc123:finished", "finished", SUCCESS)
    assert a.title == "waa run abc123 finished: 45/154 passed (29.2 %)"
    assert a.body.splitlines() == [
        "Target: waa",
        "Run: abc123",
        "Tasks completed: 150 of 154",
        "Passed: 45 (29.2 %)",
        "Average score: 0.312",
    ]


def test_finished_against_a_baseline_with_more_regressions_is_a_warning() -> None:
    a = run_finished("waa", "abc123", DONE, SUMMARY)
    assert a.level == WARNING
    assert a.title.endswith("45/154 passed (29.2 %), 3 fixed, 12 regressed vs baseline")
    assert "Baseline waa:def456: 50/154 passed (32.5 %), average 0.330 (now 0.312)" in a.body
    assert "Fixed: 3, regressed: 12, new: 1" in a.body
    assert "Regressed: task-0, task-1, task-2, task-3, task-4, task-5, task-6, task-7, task-8, task-9 and 2 more" in a.body


def test_interrupted() -> None:
    a = run_finished("waa", "abc123", {**DONE, "interrupted": True})
    assert (a.key, a.kind, a.level) == ("waa:abc123:interrupted", "interrupted", WARNING)
    assert "interrupted: 45/154" in a.title and "benchmark process is gone" in a.body


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"tasks_completed": "many", "total_tasks": -1, "tasks_passed": None, "average_score": float("nan")},
        {"tasks_completed": True, "total_tasks": 0, "tasks_passed": 3, "average_score": "0.5"},
    ],
)
def test_finished_with_junk_says_what_it_knows(payload: dict[str, Any]) -> None:
    a = run_finished("waa", "r1", payload, {"fixed": "x", "regressed_tasks": "nope"})
    assert a.key == "waa:r1:finished"
    assert "Average score: n/a" in a.body
    assert "nan" not in a.body.lower()


def test_stalled_and_hostile_log_text() -> None:
    line = "\x1b[31mStep 3:\x1b[0m click\r\nFAKE: Target: evil\u2028" + "x" * 1000
    a = run_stalled("waa", "abc", seconds=725, task_id="t-1", last_line=line, episode="offset-1234")
    assert (a.key, a.kind, a.level) == ("waa:abc:stalled:offset-1234", "stalled", WARNING)
    assert a.title == "waa run abc stalled for 12 min"
    last = [x for x in a.body.splitlines() if x.startswith("Last log line: ")]
    assert len(last) == 1 and "\x1b" not in last[0] and "\r" not in last[0]
    assert "FAKE: Target: evil" in last[0]  # on the same line: cannot pose as a field
    assert len(last[0]) <= len("Last log line: ") + MAX_FIELD
    assert run_stalled("waa", "abc", seconds=-5, task_id=None, last_line=None, episode="e").body.count("\n") == 3


def test_unreachable() -> None:
    a = target_unreachable("waa", seconds=300, message="ssh: Connection refused", since="2024-09-16T09:30:00+00:00")
    assert (a.key, a.kind, a.level) == ("waa:unreachable:2024-09-16T09:30:00+00:00", "unreachable", FAILURE)
    assert a.title == "waa unreachable for 5 min"
    assert "Last error: ssh: Connection refused" in a.body


def test_regressed_only_for_regressions() -> None:
    payload = {"task_id": "t-9", "domain": "paint", "success": False, "score": 0.0, "change": "regressed", "baseline": {"score": 1.0, "success": True}, "failure_kind": "max_steps"}
    a = task_regressed("waa", "abc", payload)
    assert a is not None and (a.key, a.kind) == ("waa:abc:regressed:t-9", "regressed")
    assert "Task: t-9 (paint)" in a.body and "Score: 1.000 in the baseline, 0.000 now" in a.body
    assert "Failure kind: max_steps" in a.body
    for change in ("fixed", "same", "new", None):
        assert task_regressed("waa", "abc", {**payload, "change": change}) is None
    assert task_regressed("waa", "abc", {"change": "regressed", "baseline": "junk"}) is not None


def test_for_durable() -> None:
    assert for_durable("waa", "r", "run_complete", {**DONE, "baseline": SUMMARY}).kind == "finished"
    assert "vs baseline" in for_durable("waa", "r", "run_complete", {**DONE, "baseline": SUMMARY}).title
    assert for_durable("waa", "r", "run_complete", {**DONE, "baseline": None}).title.endswith("(29.2 %)")
    assert for_durable("waa", "r", "task_complete", {"task_id": "x", "change": "same"}) is None
    assert for_durable("waa", "r", "progress", {}) is None


def test_clean() -> None:
    assert clean("a\tb\n\nc\x00d") == "a b c d"
    assert clean("x" * 10, 5) == "xxxx…"
    assert clean(None) == "None"
