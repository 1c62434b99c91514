"""``trio-sse runs`` against real SQLite files: the list and the comparison (plain when
piped, rich on a terminal), and junk — unknown runs, bad paths, a corrupt or newer file,
bad options — each one clear line and exit 2."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from trio_sse import storedb
from trio_sse.history import History
from trio_sse.model import RunComplete, TaskComplete
from trio_sse.runs_cli import main_runs
from trio_sse.storedb import EventOp, RunInfo

THEN = [("t1", "notepad", True, 1.0), ("t2", "notepad", False, 0.0), ("t3", "chrome", True, 1.0), ("t4", "chrome", False, None)]
NOW = [("t1", "notepad", False, 0.0), ("t2", "notepad", True, 1.0), ("t3", "chrome", True, 1.0), ("t5", "vlc", True, 1.0)]


def store_run(conn: sqlite3.Connection, target: str, run: str, tasks: list, *, finished: bool = True, model: str | None = None) -> None:
    h = History(target, run)
    for task_id, domain, success, score in tasks:
        h.append(TaskComplete(target, task_id, success, score, domain=domain, error=None if score is not None else "boom"))
    if finished:
        h.append(RunComplete(target, len(tasks), len(tasks), sum(t[2] for t in tasks), None))
    ops = [EventOp(target, run, e.id, e.event.EVENT, e.data, "2024-09-16T09:30:00.000+00:00") for e in h.entries]
    storedb.apply(conn, [RunInfo(target, run, model=model, at="2024-09-16T09:30:00.000+00:00"), *ops])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "history.sqlite3"
    conn = storedb.open_for_writing(path)
    store_run(conn, "waa", "aaaa111111", THEN, model="gpt-4o")
    store_run(conn, "waa", "bbbb222222", NOW, finished=False)
    store_run(conn, "osworld", "cccc333333", THEN)
    conn.close()
    return path


def run(*argv: str, tty: bool = False, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main_runs(list(argv), env=env or {}, stdout=out, stderr=err, tty=tty)
    return code, out.getvalue(), err.getvalue()


def test_list_plain(db: Path) -> None:
    code, out, err = run("--db", str(db))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "# Runs (newest first)"
    assert lines[1].split() == ["target", "run", "started", "finished", "tasks", "passed", "rate", "average", "model"]
    assert [line.split()[:2] for line in lines[2:]] == [["osworld", "cccc333333"], ["waa", "bbbb222222"], ["waa", "aaaa111111"]]
    assert "running" in lines[3] and "interrupted" not in out
    assert lines[4].split()[2:] == [
        "2024-09-16T09:30:00.000+00:00",  # started
        "2024-09-16T09:30:00.000+00:00",  # finished
        "4/4",
        "2",
        "50.0",
        "%",
        "0.667",  # t4 raised: no score
        "gpt-4o",
    ]
    assert "\x1b" not in out and "│" not in out  # plain: no colour, no box


def test_list_filters_and_limits(db: Path) -> None:
    code, out, _ = run("--db", str(db), "--target", "waa", "--limit", "1")
    assert code == 0 and [line.split()[1] for line in out.splitlines()[2:]] == ["bbbb222222"]
    code, out, _ = run("--db", str(db), "--target", "nobody")
    assert code == 0 and out == f"no runs stored in {db} for target 'nobody'\n"


def test_list_on_a_terminal_is_a_rich_table(db: Path) -> None:
    code, out, _ = run("--db", str(db), tty=True)
    assert code == 0 and "┃" in out and "aaaa111111" in out and "gpt-4o" in out


def test_db_from_the_environment(db: Path) -> None:
    assert run(env={"TRIO_SSE_DB": str(db)})[0] == 0
    code, _, err = run(env={"XDG_DATA_HOME": str(db.parent / "empty")})
    assert code == 2 and f"no history database at {db.parent / 'empty' / 'trio-sse' / 'history.sqlite3'}" in err


def test_compare_plain(db: Path) -> None:
    code, out, err = run("--db", str(db), "compare", "waa:aaaa", "bbbb222222")
    assert (code, err) == (0, "")
    assert out.startswith("A = waa:aaaa111111 (2/4 passed, average 0.667)\nB = waa:bbbb222222 (3/4 passed, average 0.750)\n")
    assert "fixed 1, regressed 1, same 1, new 1, missing 1" in out
    domain = {line.split()[0]: line.split()[1:] for line in out.split("# Per domain")[1].split("# Per task")[0].splitlines()[2:] if line}
    assert domain["notepad"] == ["2", "1", "50.0", "%", "2", "1", "50.0", "%", "+0.0"]
    assert domain["chrome"] == ["2", "1", "50.0", "%", "1", "1", "100.0", "%", "+50.0"]
    assert domain["vlc"] == ["0", "0", "–", "1", "1", "100.0", "%", "–"]
    tasks = [line.split() for line in out.split("# Per task")[1].splitlines()[2:]]
    assert [(t[0], t[-1]) for t in tasks] == [("t1", "regressed"), ("t2", "fixed"), ("t5", "new"), ("t4", "missing"), ("t3", "same")]
    assert tasks[0][2:6] == ["pass", "1.00", "fail", "0.00"]


def test_compare_on_a_terminal_marks_regressions(db: Path) -> None:
    code, out, _ = run("--db", str(db), "compare", "waa:aaaa111111", "waa:bbbb222222", tty=True)
    assert code == 0 and "Per domain" in out and "Per task" in out and "\x1b[31m" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "waa:ffff", "bbbb"], "no stored run 'waa:ffff'"),
        (["compare", "aaaa"], "compare needs two runs"),
        (["compare", "aaaa", "bbbb", "cccc"], "compare needs two runs"),
        (["compare", "../etc", "bbbb"], "a run is named <target>:<run id>"),
        (["compare", "aaaa111111", "bbbb"], "is ambiguous"),  # (the test stores osworld:aaaa111111 too)
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["--limit", "ten"], "--limit must be an integer"),
        (["--limit", "-1"], "--limit must be an integer"),
        (["--limit", "100000"], "--limit must be an integer"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--db", "none"], "the history is off"),
        (["--db", "NONE"], "the history is off"),
    ],
)
def test_junk_is_one_line_and_exit_2(db: Path, argv: list[str], message: str) -> None:
    if message == "is ambiguous":
        conn = storedb.open_for_writing(db)
        store_run(conn, "osworld", "aaaa111111", THEN)
        conn.close()
    code, out, err = run(*(["--db", str(db)] if "--db" not in argv else []), *argv)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("kind", ["missing", "directory", "corrupt", "newer", "nul"])
def test_bad_databases(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "h.sqlite3"
    if kind == "directory":
        path.mkdir()
    elif kind == "corrupt":
        path.write_bytes(b"not sqlite at all" * 100)
    elif kind == "newer":
        storedb.open_for_writing(path).close()
        c = sqlite3.connect(path)
        c.execute("PRAGMA user_version = 42")
        c.close()
    arg = "bad\x00path" if kind == "nul" else str(path)
    code, out, err = run("--db", arg)
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    expected = {
        "missing": "no history database at",
        "directory": "no history database at",
        "corrupt": "is corrupt",
        "newer": "was written by a newer trio-sse: its schema is version 42",
        "nul": "--db must be a file path",
    }[kind]
    assert expected in err
