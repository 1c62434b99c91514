"""Baseline comparison: the four changes as a table, retries (last result counts), junk in
payloads, the run summary and the per-domain prior; round trip through the real store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trio_sse import storedb
from trio_sse.baseline import MAX_LISTED, Baseline
from trio_sse.history import History
from trio_sse.model import TaskComplete

THEN = [
    {"task_id": "a", "success": True, "score": 1.0, "domain": "notepad"},
    {"task_id": "b", "success": False, "score": 0.0, "domain": "notepad"},
    {"task_id": "c", "success": False, "score": None, "domain": "chrome", "error": "boom"},
    {"task_id": "d", "success": True, "score": 1.0, "domain": "chrome"},
    {"task_id": "e", "success": False, "score": 0.5, "domain": "chrome"},
]


@pytest.mark.parametrize(
    ("now", "baseline", "change"),
    [
        ({"task_id": "a", "success": True, "score": 1.0}, {"score": 1.0, "success": True}, "same"),
        ({"task_id": "a", "success": False, "score": 0.0}, {"score": 1.0, "success": True}, "regressed"),
        ({"task_id": "a", "success": False, "score": None, "error": "x"}, {"score": 1.0, "success": True}, "regressed"),
        ({"task_id": "b", "success": True, "score": 1.0}, {"score": 0.0, "success": False}, "fixed"),
        ({"task_id": "c", "success": True, "score": 1.0}, {"score": None, "success": False}, "fixed"),
        ({"task_id": "e", "success": False, "score": 0.0}, {"score": 0.5, "success": False}, "same"),  # score only
        ({"task_id": "zzz", "success": True, "score": 1.0}, None, "new"),
        ({"task_id": None, "success": True}, None, "new"),
        ({"success": "yes"}, None, "new"),
        ({"task_id": "a", "success": "true"}, {"score": 1.0, "success": True}, "regressed"),  # only True is success
    ],
)
def test_compare(now: dict[str, Any], baseline: dict[str, Any] | None, change: str) -> None:
    b = Baseline("waa:then", THEN)
    assert b.compare(now) == {"baseline": baseline, "change": change}
    decorated = b.decorate(now)
    assert decorated == {**now, "baseline": baseline, "change": change}
    assert "change" not in now  # not modified


def test_a_retried_task_counts_with_its_last_result() -> None:
    b = Baseline("r", [{"task_id": "a", "success": False, "score": 0.0}, {"task_id": "a", "success": True, "score": 1.0}])
    assert len(b) == 1 and b.tasks["a"].success
    now = [{"task_id": "a", "success": True, "score": 1.0}, {"task_id": "a", "success": False, "score": 0.0}]
    s = b.summary(now)
    assert (s["regressed"], s["same"], s["tasks_now"], s["passed_now"]) == (1, 0, 1, 0)


def test_junk_baseline_rows_are_skipped_or_neutral() -> None:
    b = Baseline(
        "r",
        [
            {"task_id": "", "success": True},
            {"success": True, "score": 1.0},
            {"task_id": 5, "success": True},
            {"task_id": "x", "success": 1, "score": float("nan"), "domain": 7},
        ],
    )
    assert list(b.tasks) == ["x"]
    assert (b.tasks["x"].success, b.tasks["x"].score, b.tasks["x"].domain) == (False, None, None)
    assert b.average is None


def test_summary() -> None:
    b = Baseline("waa:then", THEN)
    now = [
        {"task_id": "a", "success": False, "score": 0.0},  # regressed
        {"task_id": "b", "success": True, "score": 1.0},  # fixed
        {"task_id": "c", "success": True, "score": 1.0},  # fixed
        {"task_id": "new-1", "success": True, "score": 1.0},  # new
    ]
    assert b.summary(now) == {
        "run": "waa:then",
        "fixed": 2,
        "regressed": 1,
        "same": 0,
        "new": 1,
        "missing": 2,  # d and e have not run (yet)
        "passed_then": 2,
        "tasks_then": 5,
        "passed_now": 3,
        "tasks_now": 4,
        "average_then": 0.625,  # (1 + 0 + 1 + 0.5) / 4: c raised, has no score
        "average_now": 0.75,
        "fixed_tasks": ["b", "c"],
        "regressed_tasks": ["a"],
    }
    assert b.summary([])["average_now"] is None


def test_summary_lists_are_capped() -> None:
    then = [{"task_id": f"t{i}", "success": True, "score": 1.0} for i in range(MAX_LISTED + 10)]
    now = [{"task_id": f"t{i}", "success": False, "score": 0.0} for i in range(MAX_LISTED + 10)]
    s = Baseline("r", then).summary(now)
    assert s["regressed"] == MAX_LISTED + 10 and len(s["regressed_tasks"]) == MAX_LISTED


def test_domain_rates() -> None:
    assert Baseline("r", THEN).domain_rates() == {"notepad": (1, 2), "chrome": (1, 3)}
    assert Baseline("r", [{"task_id": "x", "success": True}]).domain_rates() == {None: (1, 1)}


def test_round_trip_through_the_store(tmp_path: Path) -> None:
    """What the lead does for --baseline: the stored run's tasks → Baseline."""
    h = History("waa", "0123456789")
    for p in THEN:
        h.append(TaskComplete("waa", p["task_id"], p["success"], p["score"], domain=p["domain"], error=p.get("error")))
    conn = storedb.open_for_writing(tmp_path / "h.sqlite3")
    storedb.apply(conn, [storedb.EventOp("waa", h.run, e.id, e.event.EVENT, e.data, "t") for e in h.entries])
    row = storedb.find_run(conn, "waa:0123456789")
    b = Baseline(row.ref, storedb.run_tasks(conn, row))
    conn.close()
    assert b.run == "waa:0123456789"
    assert b.domain_rates() == Baseline("x", THEN).domain_rates()
    assert b.average == row.average == 0.625
    live = json.loads(History("waa", "ffff").append(TaskComplete("waa", "d", False, 0.0)).data)
    assert b.compare(live)["change"] == "regressed"
