"""The history database's synchronous core on real SQLite files: where it lives, schema and
migrations (upgrade from v1, refusal of a newer file, a failing step rolled back), idempotent
writes (a replay writes nothing twice, in any order), junk payloads rejected alone, the
queries behind /api/runs and the CSV export."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from trio_sse import storedb
from trio_sse.errors import BadRequest, NotFound
from trio_sse.history import History
from trio_sse.model import RunComplete, TaskComplete
from trio_sse.storedb import AlertOp, EventOp, RunInfo

AT = "2024-09-16T09:30:00.000+00:00"


def event_ops(history: History) -> list[EventOp]:
    return [EventOp(history.target, history.run, e.id, e.event.EVENT, e.data, AT) for e in history.entries]


def sample_run(target: str = "waa", run: str = "abc123def0", *, complete: bool = True, interrupted: bool = False) -> History:
    h = History(target, run)
    h.append(TaskComplete(target, "t1-WOS", True, 1.0, domain="notepad", steps=3))
    h.append(TaskComplete(target, "t2-WOS", False, 0.0, domain="notepad", steps=8))
    h.append(TaskComplete(target, "t3-WOS", False, None, domain="chrome", steps=2, error="TimeoutError: boom"))
    h.append(TaskComplete(target, "t4-WOS", False, 0.5, domain="chrome", steps=5))
    if complete:
        done = RunComplete(target, 4, 4, 1, 0.5)
        h.append(done)
        if interrupted:  # the monitor adds `interrupted` (SPEC §2.2); the store reads the wire JSON
            e = h.entries[-1]
            data = json.loads(e.data)
            data["interrupted"] = True
            h._entries[-1] = type(e)(e.id, e.event, json.dumps(data), e.frame)
    return h


@pytest.fixture
def conn(tmp_path: Path):
    c = storedb.open_for_writing(tmp_path / "data" / "history.sqlite3")
    yield c
    c.close()


# ---------------------------------------------------------------------------- where


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"XDG_DATA_HOME": "/srv/data"}, "/srv/data/trio-sse/history.sqlite3"),
        ({"XDG_DATA_HOME": "relative/dir"}, "/home/u/.local/share/trio-sse/history.sqlite3"),  # invalid per spec
        ({"XDG_DATA_HOME": ""}, "/home/u/.local/share/trio-sse/history.sqlite3"),
        ({}, "/home/u/.local/share/trio-sse/history.sqlite3"),
    ],
)
def test_default_path_follows_xdg(env: dict[str, str], expected: str) -> None:
    assert storedb.default_db_path(env, home=Path("/home/u")) == Path(expected)


def test_new_file_is_wal_current_schema_in_a_private_folder(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "history.sqlite3"
    c = storedb.open_for_writing(path)
    try:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert storedb.schema_version(c) == storedb.SCHEMA_VERSION == len(storedb.MIGRATIONS)
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    finally:
        c.close()


# ---------------------------------------------------------------------------- migrations


def test_upgrade_from_v1_moves_issue_10_fields_out_of_extra(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    assert storedb.migrate(old, storedb.MIGRATIONS[:1]) == 0
    assert storedb.schema_version(old) == 1
    # What a v1 writer stored: issue 10's fields had no column, so they went to `extra`.
    old.execute(
        "INSERT INTO runs (target, run, first_seen, last_seen, extra, tasks_completed, tasks_passed, score_sum, scored) "
        "VALUES ('waa', 'abc123', ?, ?, ?, 1, 0, 0.0, 1)",
        (AT, AT, json.dumps({"model": "gpt-4o", "agent": "navi", "max_steps": 15, "workers": 4})),
    )
    old.execute(
        "INSERT INTO tasks (event_id, run_ref, seq, task_id, domain, success, score, recorded_at, extra) "
        "VALUES ('waa:abc123-1', 1, 1, 't1', 'chrome', 0, 0.0, ?, ?)",
        (AT, json.dumps({"failure_kind": "max_steps", "duration_s": 42.5, "worker": "0", "future_field": [1, 2]})),
    )
    old.close()

    c = storedb.open_for_writing(path)
    try:
        assert storedb.schema_version(c) == storedb.SCHEMA_VERSION
        run = storedb.find_run(c, "waa:abc123")
        assert (run.model, run.agent, run.max_steps) == ("gpt-4o", "navi", 15)
        (task,) = storedb.run_tasks(c, run)
        assert task["failure_kind"] == "max_steps"
        assert task["duration_s"] == 42.5
        assert task["worker"] == "0"
        assert task["future_field"] == [1, 2]  # still kept
        extra = json.loads(c.execute("SELECT extra FROM tasks").fetchone()[0])
        assert extra == {"future_field": [1, 2]}  # moved, not copied
        assert json.loads(c.execute("SELECT extra FROM runs").fetchone()[0]) == {"workers": 4}
        assert storedb.failure_kinds(c, run) == {"max_steps": 1}
    finally:
        c.close()


def test_a_newer_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    storedb.open_for_writing(path).close()
    c = sqlite3.connect(path)
    c.execute("PRAGMA user_version = 99")
    c.close()
    with pytest.raises(storedb.SchemaTooNew) as info:
        storedb.open_for_writing(path)
    assert storedb.classify(info.value) == "newer"
    assert "version 99" in storedb.describe(path, info.value)
    with pytest.raises(storedb.SchemaTooNew):
        storedb.open_for_reading(path)
    c = sqlite3.connect(path)
    assert storedb.schema_version(c) == 99
    c.close()


def test_a_failing_step_leaves_the_previous_version_and_no_trace(tmp_path: Path) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("step 3 failed")

    path = tmp_path / "h.sqlite3"
    steps = (*storedb.MIGRATIONS, storedb.Migration(storedb.SCHEMA_VERSION + 1, "broken", broken))
    with pytest.raises(RuntimeError, match="step 3 failed"):
        storedb.open_for_writing(path, steps)
    c = sqlite3.connect(path)
    assert storedb.schema_version(c) == storedb.SCHEMA_VERSION
    assert c.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchone() is None
    c.close()


def test_migration_steps_must_be_consecutive(tmp_path: Path) -> None:
    c = sqlite3.connect(tmp_path / "h.sqlite3", isolation_level=None)
    with pytest.raises(ValueError, match="consecutive"):
        storedb.migrate(c, (storedb.MIGRATIONS[0], storedb.Migration(3, "gap", lambda conn: None)))
    c.close()


def test_reader_migrates_an_old_file_and_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    storedb.migrate(old, storedb.MIGRATIONS[:1])
    old.close()
    r = storedb.open_for_reading(path)
    assert storedb.schema_version(r) == storedb.SCHEMA_VERSION
    r.close()
    r = storedb.open_for_reading(path)  # current now: read-only
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        r.execute("INSERT INTO alerts VALUES ('k', 'x', 'y')")
    r.close()
    with pytest.raises(FileNotFoundError, match="no history database"):
        storedb.open_for_reading(tmp_path / "missing.sqlite3")


# ---------------------------------------------------------------------------- writes


def test_a_replay_writes_nothing_twice_in_any_order(conn: sqlite3.Connection) -> None:
    h = sample_run()
    ops = event_ops(h)
    first = storedb.apply(conn, ops)
    assert (first.written, first.duplicates, first.rejected) == (5, 0, [])
    again = storedb.apply(conn, list(reversed(ops)) + ops)
    assert (again.written, again.duplicates) == (0, 10)
    (run,) = storedb.list_runs(conn)
    assert (run.tasks, run.passed, run.total_tasks, run.finished) == (4, 1, 4, True)
    assert run.average == pytest.approx(0.5)  # mean over the 3 scored tasks (SPEC §2.2)
    assert conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 4


def test_out_of_order_writes_give_the_same_totals(tmp_path: Path) -> None:
    h = sample_run()
    ops = event_ops(h)
    a = storedb.open_for_writing(tmp_path / "a.sqlite3")
    b = storedb.open_for_writing(tmp_path / "b.sqlite3")
    storedb.apply(a, ops)
    for op in reversed(ops):  # run_complete first, one transaction each
        storedb.apply(b, [op])
    assert storedb.list_runs(a)[0].payload() == storedb.list_runs(b)[0].payload()
    assert storedb.run_tasks(a, storedb.list_runs(a)[0]) == storedb.run_tasks(b, storedb.list_runs(b)[0])
    a.close()
    b.close()


def test_first_run_complete_wins(conn: sqlite3.Connection) -> None:
    h = sample_run(complete=False)
    storedb.apply(conn, event_ops(h))
    done = EventOp("waa", h.run, f"waa:{h.run}-5", "run_complete", json.dumps({"interrupted": True, "tasks_completed": 4}), AT)
    later = EventOp("waa", h.run, f"waa:{h.run}-6", "run_complete", json.dumps({"interrupted": False}), "2030-01-01")
    assert storedb.apply(conn, [done, later]).written == 1
    (run,) = storedb.list_runs(conn)
    assert (run.interrupted, run.finished, run.finished_at) == (True, False, AT)


def test_unknown_fields_are_kept_and_derived_ones_are_not(conn: sqlite3.Connection) -> None:
    payload = {
        "task_id": "t1",
        "success": True,
        "score": 1.0,
        "target": "waa",
        "domain": "paint",
        "failure_kind": None,
        "instruction": "Draw a circle",
        "started_at": "2024-09-16T09:30:00",
        "duration_s": 12.25,
        "worker": "2",
        "baseline": {"score": 0.0, "success": False},
        "change": "fixed",
        "a_field_from_the_future": {"nested": [1, "x"]},
    }
    storedb.apply(conn, [EventOp("waa", "abc1", "waa:abc1-1", "task_complete", json.dumps(payload), AT)])
    (task,) = storedb.run_tasks(conn, storedb.find_run(conn, "abc1"))
    assert task["a_field_from_the_future"] == {"nested": [1, "x"]}
    assert (task["instruction"], task["duration_s"], task["worker"]) == ("Draw a circle", 12.25, "2")
    assert "baseline" not in task and "change" not in task
    assert task["target"] == "waa"  # from the run, not stored per task
    stored = json.loads(conn.execute("SELECT extra FROM tasks").fetchone()[0])
    assert stored == {"a_field_from_the_future": {"nested": [1, "x"]}}


JUNK = [
    ("not JSON", "task_complete", "waa:abc1-1", "{not json"),
    ("a list", "task_complete", "waa:abc1-1", "[1, 2]"),
    ("no task_id", "task_complete", "waa:abc1-1", '{"success": true}'),
    ("empty task_id", "task_complete", "waa:abc1-1", '{"task_id": "", "success": true}'),
    ("success a string", "task_complete", "waa:abc1-1", '{"task_id": "x", "success": "yes"}'),
    ("id without -n", "task_complete", "waa:abc1", '{"task_id": "x", "success": true}'),
    ("not durable", "progress", "waa:abc1-1", '{"task_id": "x", "success": true}'),
    ("interrupted junk", "run_complete", "waa:abc1-1", '{"interrupted": "maybe"}'),
]


@pytest.mark.parametrize(("why", "event", "event_id", "data"), JUNK, ids=[j[0] for j in JUNK])
def test_junk_is_rejected_alone(conn: sqlite3.Connection, why: str, event: str, event_id: str, data: str) -> None:
    good = EventOp("waa", "abc1", "waa:abc1-7", "task_complete", '{"task_id": "ok", "success": true, "score": 1}', AT)
    result = storedb.apply(conn, [EventOp("waa", "abc1", event_id, event, data, AT), good])
    assert result.written == 1
    assert len(result.rejected) == 1 and result.rejected[0][1]
    (run,) = storedb.list_runs(conn)
    assert (run.tasks, run.passed) == (1, 1)


def test_a_run_needs_a_name(conn: sqlite3.Connection) -> None:
    result = storedb.apply(conn, [RunInfo("waa", "", model="m", at=AT), RunInfo("", "abc", at=AT)])
    assert len(result.rejected) == 2
    assert storedb.list_runs(conn) == []


@pytest.mark.parametrize(
    ("field", "raw", "stored"),
    [
        ("score", "NaN", None),
        ("score", "Infinity", None),
        ("score", '"0.5"', None),
        ("score", "true", None),
        ("steps", '"3"', None),
        ("steps", "3.5", None),
        ("steps", str(2**70), None),
        ("domain", "7", None),
        ("duration_s", "-0.0", -0.0),
    ],
)
def test_wrong_types_become_null(conn: sqlite3.Connection, field: str, raw: str, stored: object) -> None:
    data = '{"task_id": "x", "success": false, "%s": %s}' % (field, raw)
    assert storedb.apply(conn, [EventOp("waa", "abc1", "waa:abc1-1", "task_complete", data, AT)]).written == 1
    (task,) = storedb.run_tasks(conn, storedb.find_run(conn, "abc1"))
    assert task[field] == stored


def test_run_info_merges_and_none_never_erases(conn: sqlite3.Connection) -> None:
    storedb.apply(conn, [RunInfo("waa", "abc1", model="gpt-4o", max_steps=15, extra={"a": 1}, at=AT)])
    storedb.apply(conn, [RunInfo("waa", "abc1", agent="navi", total_tasks=154, extra={"b": float("nan")}, at=AT)])
    assert storedb.apply(conn, [RunInfo("waa", "abc1", at=AT)]).duplicates == 1
    run = storedb.find_run(conn, "waa:abc1")
    assert (run.model, run.agent, run.max_steps, run.total_tasks) == ("gpt-4o", "navi", 15, 154)
    assert json.loads(conn.execute("SELECT extra FROM runs").fetchone()[0]) == {"a": 1, "b": None}
    assert RunInfo("w", "r", model="a").merged(RunInfo("w", "r", agent="b")) == RunInfo("w", "r", model="a", agent="b")


def test_alerts_are_recorded_once(conn: sqlite3.Connection) -> None:
    assert not storedb.alert_sent(conn, "waa:abc1:finished")
    r = storedb.apply(conn, [AlertOp("waa:abc1:finished", "finished", AT), AlertOp("waa:abc1:finished", "finished", "later")])
    assert (r.written, r.duplicates) == (1, 1)
    assert storedb.alert_sent(conn, "waa:abc1:finished")


# ---------------------------------------------------------------------------- queries


def fill(conn: sqlite3.Connection, runs: list[tuple[str, str, bool | None]]) -> None:
    for target, run, interrupted in runs:
        h = sample_run(target, run, complete=interrupted is not None, interrupted=bool(interrupted))
        storedb.apply(conn, event_ops(h))


def test_list_runs_newest_first_filtered_and_paged(conn: sqlite3.Connection) -> None:
    fill(conn, [("a", "0001", False), ("b", "0002", False), ("a", "0003", None)])
    assert [r.run for r in storedb.list_runs(conn)] == ["0003", "0002", "0001"]
    assert [r.run for r in storedb.list_runs(conn, target="a")] == ["0003", "0001"]
    assert [r.run for r in storedb.list_runs(conn, limit=1, offset=1)] == ["0002"]
    assert storedb.list_runs(conn, target="nobody") == []
    running = storedb.list_runs(conn)[0].payload()
    assert running == {
        "target": "a",
        "run": "0003",
        "started": AT,
        "finished": None,
        "interrupted": None,
        "tasks": 4,
        "total_tasks": None,
        "passed": 1,
        "average": 0.5,
        "model": None,
        "agent": None,
        "max_steps": None,
    }
    for bad in (-1, storedb.LIST_LIMIT_MAX + 1):
        with pytest.raises(BadRequest, match="limit"):
            storedb.list_runs(conn, limit=bad)
    with pytest.raises(BadRequest, match="offset"):
        storedb.list_runs(conn, offset=-1)


def test_previous_is_the_last_finished_run_of_the_target(conn: sqlite3.Connection) -> None:
    fill(conn, [("a", "0001", False), ("b", "0002", False), ("a", "0003", True), ("a", "0004", None)])
    assert storedb.previous_run(conn, "a").run == "0001"  # 0003 was interrupted, 0004 runs
    assert storedb.previous_run(conn, "a", exclude_run="0001") is None
    assert storedb.previous_run(conn, "b").run == "0002"
    assert storedb.previous_run(conn, "c") is None


def test_find_run_by_full_name_id_or_prefix(conn: sqlite3.Connection) -> None:
    fill(conn, [("a", "abcd1234ef", False), ("b", "abcd1234ef", False), ("a", "abce000000", False)])
    assert storedb.find_run(conn, "a:abcd1234ef").target == "a"
    assert storedb.find_run(conn, " b:ABCD1234EF ").target == "b"
    assert storedb.find_run(conn, "abce").run == "abce000000"
    assert storedb.find_run(conn, "a:abcd").run == "abcd1234ef"
    with pytest.raises(BadRequest, match="ambiguous"):
        storedb.find_run(conn, "abcd1234ef")  # two targets
    with pytest.raises(NotFound, match="no stored run"):
        storedb.find_run(conn, "a:abc")  # shorter than a prefix may be
    with pytest.raises(NotFound, match="no stored run"):
        storedb.find_run(conn, "ffff")


@pytest.mark.parametrize("junk", ["", "   ", "not-hex!", "a:", ":abc", "x" * 200, "a:b:c", "a b:abcd", "\x00abcd"])
def test_find_run_junk_is_a_bad_request(conn: sqlite3.Connection, junk: str) -> None:
    with pytest.raises(BadRequest, match="a run is named"):
        storedb.find_run(conn, junk)


def test_tasks_come_back_in_log_order(conn: sqlite3.Connection) -> None:
    h = sample_run(complete=False)
    for op in reversed(event_ops(h)):
        storedb.apply(conn, [op])
    tasks = storedb.run_tasks(conn, storedb.find_run(conn, h.run))
    assert [t["task_id"] for t in tasks] == ["t1-WOS", "t2-WOS", "t3-WOS", "t4-WOS"]
    assert tasks[2]["error"] == "TimeoutError: boom" and tasks[2]["score"] is None
    assert storedb.failure_kinds(conn, storedb.find_run(conn, h.run)) == {"unknown": 3}


def test_csv_is_rfc4180_and_never_starts_a_formula() -> None:
    tasks = [
        {"task_id": "t1", "domain": "paint", "success": True, "score": 1.0, "steps": 3, "id": "waa:abc-1"},
        {"task_id": "t2", "success": False, "score": None, "error": 'line1\nline "2", with comma'},
        {"task_id": "=HYPERLINK(\"http://x\")", "success": False, "instruction": "+1 then -2", "score": -0.0},
    ]
    text = storedb.tasks_csv(tasks)
    assert text.startswith(",".join(storedb.CSV_COLUMNS) + "\r\n")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert rows[0]["success"] == "true" and rows[0]["score"] == "1.0" and rows[0]["steps"] == "3"
    assert rows[1]["error"] == 'line1\nline "2", with comma' and rows[1]["score"] == ""
    assert rows[2]["task_id"] == "'=HYPERLINK(\"http://x\")"
    assert rows[2]["instruction"] == "'+1 then -2"
    assert rows[2]["score"] == "-0.0"  # a number is not text: left as it is
    assert storedb.tasks_csv([]) == ",".join(storedb.CSV_COLUMNS) + "\r\n"


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (sqlite3.OperationalError("database is locked"), "locked"),
        (sqlite3.DatabaseError("file is not a database"), "corrupt"),
        (sqlite3.DatabaseError("database disk image is malformed"), "corrupt"),
        (sqlite3.OperationalError("database or disk is full"), "full"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "readonly"),
        (sqlite3.OperationalError("unable to open database file"), "unavailable"),
        (sqlite3.OperationalError("disk I/O error"), "io"),
        (PermissionError(13, "Permission denied"), "readonly"),
        (FileNotFoundError(2, "No such file"), "unavailable"),
        (sqlite3.OperationalError("something new"), "error"),
    ],
)
def test_classify_by_message(exc: BaseException, kind: str) -> None:
    assert storedb.classify(exc) == kind
    assert storedb.describe("/x/h.sqlite3", exc).startswith("history database /x/h.sqlite3 ")
