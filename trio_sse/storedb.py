"""Run history in SQLite, the synchronous core (SPEC §9): where the file lives, the schema and
its migrations, the write operations and the queries behind ``/api/runs`` and ``trio-sse runs``.

Owns: every SQL statement of the project. Plain ``sqlite3``, no Trio: each function takes a
connection and is meant to run in a worker thread (``store.py`` owns the threads, the one
writer task and the retries; ``runs_cli.py`` calls the queries directly).

Must not: import anything async, take the clock (timestamps come in with the operations),
log, or decide what to do about a failing database — a ``sqlite3.Error`` / ``OSError`` from
the environment (locked, corrupt, full, read-only) propagates to the caller, which
classifies it with ``classify``. An operation that is bad in itself (junk in a payload)
is *rejected* alone, inside its own savepoint, so one poison event cannot stall the rest.

Design notes:
- **Idempotent writes.** A task row is keyed by its durable event id (``<target>:<run>-<n>``,
  ``history.py``): ``INSERT OR IGNORE``, and the run's running totals move only when the row
  was new, in the same transaction. A ``run_complete`` is recorded once per run (the first
  one wins). So any operation may be applied any number of times, in any order — which is
  what lets the writer recover by replaying a run's whole durable history (``store.py``).
- **Unknown fields are kept.** Payload keys without a column go to a JSON ``extra`` column,
  so fields added later (SPEC §2.2) are not lost; a later migration can promote them to
  columns, backfilling from ``extra`` (migration 2 does exactly that for issue 10's fields).
  Keys derived at send time (``baseline``, ``change``, ``target``) are not stored.
- **Fast listing.** ``runs`` carries its totals (tasks, passed, score sum, scored), updated
  with each insert, so ``/api/runs`` reads one row per run and never aggregates ``tasks``;
  newest first is the integer primary key, descending.
- **Versioned schema.** ``PRAGMA user_version`` is the schema version; ``MIGRATIONS`` is the
  ordered list of steps, each run in its own transaction with the version bump, so a failing
  step leaves the file at the previous version. A file newer than this code is refused.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from trio_sse.errors import BadRequest, NotFound

APP_DIR: Final = "trio-sse"
DB_NAME: Final = "history.sqlite3"
# Writer and readers wait this long for another connection's lock before SQLITE_BUSY.
# Short, so a locked database is reported (and retried) instead of freezing a thread.
BUSY_TIMEOUT_MS: Final = 1000
LIST_LIMIT_MAX: Final = 10_000

# ---------------------------------------------------------------------------- where


def default_db_path(env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """``$XDG_DATA_HOME/trio-sse/history.sqlite3``, else ``~/.local/share/trio-sse/…``.

    The XDG base-directory spec says a relative ``XDG_DATA_HOME`` is invalid and must be
    ignored; so is an empty one."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME", "")
    if not base or not os.path.isabs(base):
        base = str((home if home is not None else Path.home()) / ".local" / "share")
    return Path(base) / APP_DIR / DB_NAME


# ---------------------------------------------------------------------------- faults

# sqlite3 error names (Python 3.11+: ``exc.sqlite_errorname``) → what the user is told.
_KIND_BY_CODE: Final = (
    ("SQLITE_BUSY", "locked"),
    ("SQLITE_LOCKED", "locked"),
    ("SQLITE_CORRUPT", "corrupt"),
    ("SQLITE_NOTADB", "corrupt"),
    ("SQLITE_FULL", "full"),
    ("SQLITE_READONLY", "readonly"),
    ("SQLITE_CANTOPEN", "unavailable"),
    ("SQLITE_PERM", "readonly"),
    ("SQLITE_IOERR", "io"),
)
# Fallback on the message (older builds without error names).
_KIND_BY_MESSAGE: Final = (
    ("locked", "locked"),
    ("busy", "locked"),
    ("malformed", "corrupt"),
    ("not a database", "corrupt"),
    ("disk is full", "full"),
    ("readonly", "readonly"),
    ("read-only", "readonly"),
    ("unable to open", "unavailable"),
    ("disk i/o", "io"),
)
_ADVICE: Final = {
    "locked": "is locked by another connection",
    "corrupt": "is corrupt (move the file aside; a new one is then created)",
    "full": "cannot grow: the disk (or its size limit) is full",
    "readonly": "is read-only",
    "unavailable": "cannot be opened",
    "io": "had an I/O error",
    "newer": "was written by a newer trio-sse",
    "error": "failed",
}


def classify(exc: BaseException) -> str:
    """``locked``, ``corrupt``, ``full``, ``readonly``, ``unavailable``, ``io``, ``newer`` or
    ``error``: what kind of trouble a database exception is."""
    if isinstance(exc, SchemaTooNew):
        return "newer"
    if isinstance(exc, PermissionError):
        return "readonly"
    if isinstance(exc, OSError):
        return "unavailable"
    name = getattr(exc, "sqlite_errorname", None) or ""
    for prefix, kind in _KIND_BY_CODE:
        if name.startswith(prefix):
            return kind
    text = str(exc).lower()
    for needle, kind in _KIND_BY_MESSAGE:
        if needle in text:
            return kind
    return "error"


def describe(path: Path | str, exc: BaseException) -> str:
    """One clear sentence about a database failure (never a traceback)."""
    kind = classify(exc)
    return f"history database {path} {_ADVICE[kind]}: {exc}"


class SchemaTooNew(sqlite3.DatabaseError):
    """The file's schema version is newer than this code knows."""


# ---------------------------------------------------------------------------- schema


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    apply: Callable[[sqlite3.Connection], None]


_V1 = """
CREATE TABLE runs (
    id               INTEGER PRIMARY KEY,   -- insertion order: newest first = id DESC
    target           TEXT NOT NULL,
    run              TEXT NOT NULL,         -- history.run_id_for: stable across restarts
    first_seen       TEXT NOT NULL,         -- ISO-8601 UTC, when this store first heard of it
    last_seen        TEXT NOT NULL,
    finished_at      TEXT,                  -- when its run_complete was recorded
    interrupted      INTEGER,               -- NULL: not complete, 0 finished, 1 interrupted
    complete_id      TEXT,                  -- the run_complete's event id (recorded once)
    total_tasks      INTEGER,
    tasks_completed  INTEGER NOT NULL DEFAULT 0,
    tasks_passed     INTEGER NOT NULL DEFAULT 0,
    score_sum        REAL NOT NULL DEFAULT 0,
    scored           INTEGER NOT NULL DEFAULT 0,
    reported_average REAL,                  -- run_complete.average_score (WAA's own line)
    extra            TEXT NOT NULL DEFAULT '{}',
    UNIQUE (target, run)
);
CREATE INDEX runs_by_target ON runs (target, id);
CREATE TABLE tasks (
    event_id    TEXT PRIMARY KEY,           -- <target>:<run>-<n>: a replay inserts nothing
    run_ref     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,           -- n: the event's place in the run
    task_id     TEXT NOT NULL,
    domain      TEXT,
    success     INTEGER NOT NULL,
    score       REAL,
    steps       INTEGER,
    error       TEXT,
    recorded_at TEXT NOT NULL,
    extra       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX tasks_by_run ON tasks (run_ref, seq);
CREATE TABLE alerts (
    key     TEXT PRIMARY KEY,               -- e.g. <target>:<run>:finished
    kind    TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
"""


def _v1(conn: sqlite3.Connection) -> None:
    # Statement by statement: ``executescript`` would commit, and the step must not.
    for statement in _V1.split(";"):  # (no ";" inside the DDL's comments)
        if statement.strip():
            conn.execute(statement)


# Issue 10's fields (SPEC §2.2, §7.1) as columns. Before this step they were kept in
# ``extra``; the step moves them out, so nothing recorded under v1 is lost.
_V2_TASK_COLUMNS: Final = (
    ("failure_kind", "TEXT"),
    ("instruction", "TEXT"),
    ("started_at", "TEXT"),
    ("finished_at", "TEXT"),
    ("duration_s", "REAL"),
    ("worker", "TEXT"),
)
_V2_RUN_COLUMNS: Final = (("model", "TEXT"), ("agent", "TEXT"), ("max_steps", "INTEGER"), ("started_at", "TEXT"))


def _promote(conn: sqlite3.Connection, table: str, key: str, columns: Sequence[tuple[str, str]]) -> None:
    for name, kind in columns:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    names = [name for name, _ in columns]
    rows = conn.execute(f"SELECT {key}, extra FROM {table} WHERE extra != '{{}}'").fetchall()
    for row_key, extra_text in rows:
        extra = _loads_object(extra_text)
        moved = {name: extra.pop(name) for name in names if name in extra}
        if moved:
            sets = ", ".join(f"{name} = ?" for name in moved)
            conn.execute(
                f"UPDATE {table} SET {sets}, extra = ? WHERE {key} = ?",
                (*(_column_value(name, v) for name, v in moved.items()), _dumps(extra), row_key),
            )


def _v2(conn: sqlite3.Connection) -> None:
    _promote(conn, "tasks", "event_id", _V2_TASK_COLUMNS)
    _promote(conn, "runs", "id", _V2_RUN_COLUMNS)
    conn.execute("CREATE INDEX tasks_by_failure ON tasks (run_ref, failure_kind)")


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(1, "runs, tasks (keyed by event id), alerts sent", _v1),
    Migration(2, "issue 10's fields as columns: failure kind, instruction, timings, worker; model/agent/max_steps", _v2),
)
SCHEMA_VERSION: Final = MIGRATIONS[-1].version


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, steps: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the file to the last of ``steps``; returns the version it was at. Each step and
    its version bump commit together (SQLite DDL is transactional)."""
    start = current = schema_version(conn)
    known = steps[-1].version if steps else 0
    if current > known:
        raise SchemaTooNew(f"its schema is version {current}, this trio-sse knows up to {known}; upgrade trio-sse")
    for step in steps:
        if step.version <= current:
            continue
        if step.version != current + 1:
            raise ValueError(f"migration steps must be consecutive: {current} -> {step.version}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            if schema_version(conn) >= step.version:
                conn.execute("ROLLBACK")
                current = schema_version(conn)
                continue
            step.apply(conn)
            conn.execute(f"PRAGMA user_version = {int(step.version)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = step.version
    return start


# ---------------------------------------------------------------------------- connections


def _configure(conn: sqlite3.Connection, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")


def open_for_writing(
    path: Path | str, steps: Sequence[Migration] = MIGRATIONS, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> sqlite3.Connection:
    """The writer's connection: creates the file (and its folder, private) when missing, WAL
    mode, migrated. ``check_same_thread=False``: the one writer task uses it from whichever
    worker thread Trio picks, one call at a time."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        _configure(conn, busy_timeout_ms)
        # WAL: readers (the API, `trio-sse runs`) never wait for the writer, nor it for them.
        # synchronous=NORMAL: in WAL mode a commit survives a crash of this process; only a
        # power cut can lose the last commits, which a replay of the log then restores.
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch to WAL mode (journal_mode is {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate(conn, steps)
    except BaseException:
        conn.close()
        raise
    return conn


def open_for_reading(path: Path | str) -> sqlite3.Connection:
    """A reader's connection to an existing file (never creates one). Read-only when the
    schema is current; an older file is migrated first (read-write), a newer one refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no history database at {path}")
    uri = path.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    try:
        _configure(conn)
        version = schema_version(conn)
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(f"its schema is version {version}, this trio-sse knows up to {SCHEMA_VERSION}; upgrade trio-sse")
        if version < SCHEMA_VERSION:
            conn.close()
            conn = sqlite3.connect(f"{uri}?mode=rw", uri=True, isolation_level=None, check_same_thread=False)
            _configure(conn)
            migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


# ---------------------------------------------------------------------------- operations

# Payload keys computed at send time, not facts of the run: not stored.
_DERIVED: Final = frozenset({"baseline", "change", "target"})
_TASK_COLUMNS: Final = (
    "task_id",
    "domain",
    "success",
    "score",
    "steps",
    "error",
    "failure_kind",
    "instruction",
    "started_at",
    "finished_at",
    "duration_s",
    "worker",
)
_RUN_COMPLETE_KEYS: Final = frozenset(
    {"tasks_completed", "total_tasks", "tasks_passed", "average_score", "interrupted", "finished_at"}
)
_RUN_INFO_COLUMNS: Final = ("model", "agent", "max_steps", "started_at", "total_tasks")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What is known about a run besides its durable events: the ``Args:`` line's model,
    agent and step budget, the task lists' total, when it started. ``None`` = not known
    (never overwrites a known value); ``extra`` keeps anything else (merged)."""

    target: str
    run: str
    model: str | None = None
    agent: str | None = None
    max_steps: int | None = None
    total_tasks: int | None = None
    started_at: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    at: str = ""  # when it was recorded (set by the writer)

    def merged(self, newer: RunInfo) -> RunInfo:
        """This info updated by a newer one (its known values win)."""
        return RunInfo(
            self.target,
            self.run,
            *(
                getattr(newer, name) if getattr(newer, name) is not None else getattr(self, name)
                for name in ("model", "agent", "max_steps", "total_tasks", "started_at")
            ),
            extra={**self.extra, **newer.extra},
            at=newer.at or self.at,
        )


@dataclass(frozen=True, slots=True)
class EventOp:
    """A durable event (``task_complete`` / ``run_complete``) to record. ``data`` is the
    payload's JSON exactly as it went on the wire (``history.Entry.data``)."""

    target: str
    run: str
    event_id: str
    event: str
    data: str
    at: str


@dataclass(frozen=True, slots=True)
class AlertOp:
    """An alert was delivered: never send it again."""

    key: str
    kind: str
    at: str


Op = RunInfo | EventOp | AlertOp


class Rejected(ValueError):
    """An operation that is bad in itself (not the database's fault)."""


@dataclass(slots=True)
class ApplyResult:
    written: int = 0  # operations that changed something
    duplicates: int = 0  # already recorded (a replay)
    rejected: list[tuple[Op, str]] = field(default_factory=list)


def apply(conn: sqlite3.Connection, ops: Iterable[Op]) -> ApplyResult:
    """Record ``ops`` in one transaction. Environmental errors propagate (and roll back);
    a bad operation is rolled back alone and reported in ``rejected``."""
    result = ApplyResult()
    runs: dict[tuple[str, str], int] = {}  # run refs seen in this transaction
    conn.execute("BEGIN IMMEDIATE")
    try:
        for op in ops:
            conn.execute("SAVEPOINT op")
            try:
                changed = _apply_one(conn, op, runs)
            except (Rejected, ValueError, TypeError, sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError) as exc:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                runs.clear()  # a run row this op created is gone again
                result.rejected.append((op, str(exc) or type(exc).__name__))
                continue
            conn.execute("RELEASE op")
            if changed:
                result.written += 1
            else:
                result.duplicates += 1
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _apply_one(conn: sqlite3.Connection, op: Op, runs: dict[tuple[str, str], int]) -> bool:
    if isinstance(op, EventOp):
        run_ref = runs.get((op.target, op.run))
        if run_ref is None:
            run_ref = runs[(op.target, op.run)] = _ensure_run(conn, op.target, op.run, op.at)
        payload = _loads_object(op.data)
        if op.event == "task_complete":
            return _insert_task(conn, run_ref, op, payload)
        if op.event == "run_complete":
            return _complete_run(conn, run_ref, op, payload)
        raise Rejected(f"not a durable event: {op.event!r}")
    if isinstance(op, RunInfo):
        return _upsert_run_info(conn, op)
    if isinstance(op, AlertOp):
        cur = conn.execute("INSERT OR IGNORE INTO alerts (key, kind, sent_at) VALUES (?, ?, ?)", (op.key, op.kind, op.at))
        return cur.rowcount == 1
    raise Rejected(f"not an operation: {type(op).__name__}")


def _ensure_run(conn: sqlite3.Connection, target: str, run: str, at: str) -> int:
    if not isinstance(target, str) or not target or not isinstance(run, str) or not run:
        raise Rejected(f"a run needs a target and a run id, got {target!r}, {run!r}")
    conn.execute(
        "INSERT OR IGNORE INTO runs (target, run, first_seen, last_seen) VALUES (?, ?, ?, ?)", (target, run, at, at)
    )
    row = conn.execute("SELECT id FROM runs WHERE target = ? AND run = ?", (target, run)).fetchone()
    return int(row[0])


def _seq(event_id: str) -> int:
    tail = event_id.rpartition("-")[2]
    if not tail.isdigit():
        raise Rejected(f"event id {event_id!r} does not end with -<n>")
    return int(tail)


def _insert_task(conn: sqlite3.Connection, run_ref: int, op: EventOp, payload: dict[str, Any]) -> bool:
    task_id = payload.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise Rejected(f"task_complete {op.event_id} has no task_id")
    success = payload.get("success")
    if not isinstance(success, bool):
        raise Rejected(f"task_complete {op.event_id}: success must be true or false, got {success!r}")
    values = {name: _column_value(name, payload.get(name)) for name in _TASK_COLUMNS}
    values["success"] = int(success)
    extra = {k: v for k, v in payload.items() if k not in _TASK_COLUMNS and k not in _DERIVED}
    columns = ", ".join(_TASK_COLUMNS)
    marks = ", ".join("?" for _ in _TASK_COLUMNS)
    cur = conn.execute(
        f"INSERT OR IGNORE INTO tasks (event_id, run_ref, seq, recorded_at, extra, {columns}) "
        f"VALUES (?, ?, ?, ?, ?, {marks})",
        (op.event_id, run_ref, _seq(op.event_id), op.at, _dumps(extra), *(values[c] for c in _TASK_COLUMNS)),
    )
    if cur.rowcount != 1:
        return False
    score = values["score"]
    conn.execute(
        "UPDATE runs SET tasks_completed = tasks_completed + 1, tasks_passed = tasks_passed + ?, "
        "score_sum = score_sum + ?, scored = scored + ?, last_seen = ? WHERE id = ?",
        (int(success), score or 0.0, int(score is not None), op.at, run_ref),
    )
    return True


def _complete_run(conn: sqlite3.Connection, run_ref: int, op: EventOp, payload: dict[str, Any]) -> bool:
    interrupted = payload.get("interrupted", False)
    if not isinstance(interrupted, bool):
        raise Rejected(f"run_complete {op.event_id}: interrupted must be true or false, got {interrupted!r}")
    finished_at = payload.get("finished_at") if isinstance(payload.get("finished_at"), str) else op.at
    extra = {k: v for k, v in payload.items() if k not in _RUN_COMPLETE_KEYS and k not in _DERIVED}
    cur = conn.execute(
        "UPDATE runs SET complete_id = ?, finished_at = ?, interrupted = ?, "
        "total_tasks = COALESCE(?, total_tasks), reported_average = ?, last_seen = ? "
        "WHERE id = ? AND complete_id IS NULL",
        (
            op.event_id,
            finished_at,
            int(interrupted),
            _int_or_none(payload.get("total_tasks")),
            _float_or_none(payload.get("average_score")),
            op.at,
            run_ref,
        ),
    )
    if cur.rowcount != 1:
        return False
    if extra:
        _merge_run_extra(conn, run_ref, {"run_complete": extra})
    return True


def _upsert_run_info(conn: sqlite3.Connection, info: RunInfo) -> bool:
    run_ref = _ensure_run(conn, info.target, info.run, info.at)
    row = conn.execute(
        f"SELECT {', '.join(_RUN_INFO_COLUMNS)}, extra FROM runs WHERE id = ?", (run_ref,)
    ).fetchone()
    current = dict(zip(_RUN_INFO_COLUMNS, row[:-1], strict=True))
    updates = {}
    for name in _RUN_INFO_COLUMNS:
        value = _column_value(name, getattr(info, name))
        if value is not None and value != current[name]:
            updates[name] = value
    extra = _loads_object(row[-1])
    new_extra = {**extra, **_jsonable(dict(info.extra))}
    if new_extra != extra:
        updates["extra"] = _dumps(new_extra)
    if not updates:
        return False
    sets = ", ".join(f"{name} = ?" for name in updates)
    conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*updates.values(), run_ref))
    return True


def _merge_run_extra(conn: sqlite3.Connection, run_ref: int, more: dict[str, Any]) -> None:
    row = conn.execute("SELECT extra FROM runs WHERE id = ?", (run_ref,)).fetchone()
    conn.execute("UPDATE runs SET extra = ? WHERE id = ?", (_dumps({**_loads_object(row[0]), **more}), run_ref))


# ---------------------------------------------------------------------------- value hygiene

_INT_COLUMNS: Final = frozenset({"steps", "max_steps", "total_tasks"})
_FLOAT_COLUMNS: Final = frozenset({"score", "duration_s"})


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -(2**63) <= value < 2**63 else None


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _column_value(name: str, value: Any) -> Any:
    """A payload value as its column holds it; a value of the wrong type becomes NULL (the
    payload is the wire's: its types are the contract, junk is not worth a rejection)."""
    if value is None:
        return None
    if name in _INT_COLUMNS:
        return _int_or_none(value)
    if name in _FLOAT_COLUMNS:
        return _float_or_none(value)
    if name == "success":
        return value
    return value if isinstance(value, str) else None


def _jsonable(value: Any) -> Any:
    """JSON-safe copy: non-finite floats → None, unknown objects → their ``str``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(_jsonable(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _loads_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise Rejected(f"payload is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Rejected("payload is not a JSON object")
    return value


# ---------------------------------------------------------------------------- queries


@dataclass(frozen=True, slots=True)
class RunRow:
    """One stored run, as ``/api/runs`` lists it."""

    id: int
    target: str
    run: str
    first_seen: str
    started_at: str | None
    finished_at: str | None
    interrupted: bool | None
    total_tasks: int | None
    tasks: int
    passed: int
    average: float | None  # mean over tasks with a score (SPEC §2.2); None when none had
    model: str | None
    agent: str | None
    max_steps: int | None

    @property
    def ref(self) -> str:
        """The name that finds this run again: ``<target>:<run>``."""
        return f"{self.target}:{self.run}"

    @property
    def finished(self) -> bool:
        return self.interrupted is False

    def payload(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "run": self.run,
            "started": self.started_at or self.first_seen,
            "finished": self.finished_at,
            "interrupted": self.interrupted,
            "tasks": self.tasks,
            "total_tasks": self.total_tasks,
            "passed": self.passed,
            "average": self.average,
            "model": self.model,
            "agent": self.agent,
            "max_steps": self.max_steps,
        }


_RUN_SELECT: Final = (
    "SELECT id, target, run, first_seen, started_at, finished_at, interrupted, total_tasks, "
    "tasks_completed, tasks_passed, score_sum, scored, model, agent, max_steps FROM runs"
)


def _run_row(row: Sequence[Any]) -> RunRow:
    (id_, target, run, first_seen, started_at, finished_at, interrupted, total, tasks, passed, score_sum, scored,
     model, agent, max_steps) = row  # fmt: skip
    return RunRow(
        id=id_,
        target=target,
        run=run,
        first_seen=first_seen,
        started_at=started_at,
        finished_at=finished_at,
        interrupted=None if interrupted is None else bool(interrupted),
        total_tasks=total,
        tasks=tasks,
        passed=passed,
        average=round(score_sum / scored, 6) if scored else None,
        model=model,
        agent=agent,
        max_steps=max_steps,
    )


def list_runs(
    conn: sqlite3.Connection, *, target: str | None = None, limit: int | None = None, offset: int = 0
) -> list[RunRow]:
    """Runs newest first (by when this store first saw them)."""
    if limit is not None and not 0 <= limit <= LIST_LIMIT_MAX:
        raise BadRequest(f"limit must be an integer from 0 to {LIST_LIMIT_MAX}, got {limit!r}")
    if offset < 0:
        raise BadRequest(f"offset must not be negative, got {offset!r}")
    where, args = ("WHERE target = ?", [target]) if target is not None else ("", [])
    rows = conn.execute(
        f"{_RUN_SELECT} {where} ORDER BY id DESC LIMIT ? OFFSET ?", (*args, -1 if limit is None else limit, offset)
    ).fetchall()
    return [_run_row(r) for r in rows]


_REF: Final = re.compile(r"(?:(?P<target>[^:\s]{1,64}):)?(?P<run>[0-9a-fA-F]{1,16})\Z")
MIN_PREFIX: Final = 4


def find_run(conn: sqlite3.Connection, ref: str) -> RunRow:
    """A run by ``<target>:<run>``, ``<run>``, or a unique prefix of at least 4 hex digits of
    the run id (``NotFound`` / ``BadRequest`` with a clear sentence otherwise)."""
    m = _REF.match(ref.strip()) if isinstance(ref, str) else None
    if m is None:
        raise BadRequest(f"a run is named <target>:<run id> or <run id> (hex), got {str(ref)[:80]!r}")
    target, run = m.group("target"), m.group("run").lower()
    where, args = ("run = ?", [run])
    if target is not None:
        where, args = ("target = ? AND run = ?", [target, run])
    rows = conn.execute(f"{_RUN_SELECT} WHERE {where} ORDER BY id DESC LIMIT 2", args).fetchall()
    if not rows and len(run) >= MIN_PREFIX:
        # A prefix: the run ids are hex, so a range scan on the (target, run) index.
        bound = run[:-1] + chr(ord(run[-1]) + 1)
        where = "run >= ? AND run < ?" + (" AND target = ?" if target is not None else "")
        args = [run, bound] + ([target] if target is not None else [])
        rows = conn.execute(f"{_RUN_SELECT} WHERE {where} ORDER BY id DESC LIMIT 2", args).fetchall()
    if not rows:
        raise NotFound(f"no stored run {ref.strip()!r}")
    if len(rows) > 1:
        a, b = (_run_row(r) for r in rows)
        raise BadRequest(f"run {ref.strip()!r} is ambiguous ({a.ref}, {b.ref}, …): name it as <target>:<run id>")
    return _run_row(rows[0])


def previous_run(conn: sqlite3.Connection, target: str, *, exclude_run: str | None = None) -> RunRow | None:
    """The target's last *finished* run (not interrupted, not ``exclude_run``): what
    ``--baseline previous`` compares with."""
    rows = conn.execute(
        f"{_RUN_SELECT} WHERE target = ? AND interrupted = 0 AND run != ? ORDER BY id DESC LIMIT 1",
        (target, exclude_run or ""),
    ).fetchall()
    return _run_row(rows[0]) if rows else None


_TASK_SELECT: Final = f"SELECT event_id, {', '.join(_TASK_COLUMNS)}, extra FROM tasks"


def run_tasks(conn: sqlite3.Connection, run: RunRow) -> list[dict[str, Any]]:
    """The run's task results in log order, shaped like their ``task_complete`` payloads
    (plus ``id``, the event id, and the stored extra keys)."""
    out = []
    for row in conn.execute(f"{_TASK_SELECT} WHERE run_ref = ? ORDER BY seq", (run.id,)):
        task: dict[str, Any] = {"id": row[0]}
        task.update(zip(_TASK_COLUMNS, row[1:-1], strict=True))
        task["success"] = bool(task["success"])
        task["target"] = run.target
        for key, value in _loads_object(row[-1]).items():
            task.setdefault(key, value)
        out.append(task)
    return out


def failure_kinds(conn: sqlite3.Connection, run: RunRow) -> dict[str, int]:
    """How many of the run's tasks failed each way (SPEC §7.1: agent, infra, evaluator,
    max_steps; ``unknown`` for a failure recorded without a kind)."""
    rows = conn.execute(
        "SELECT COALESCE(failure_kind, 'unknown'), COUNT(*) FROM tasks WHERE run_ref = ? AND success = 0 "
        "GROUP BY 1 ORDER BY 2 DESC, 1",
        (run.id,),
    ).fetchall()
    return {kind: count for kind, count in rows}


def alert_sent(conn: sqlite3.Connection, key: str) -> bool:
    return conn.execute("SELECT 1 FROM alerts WHERE key = ?", (key,)).fetchone() is not None


CSV_COLUMNS: Final = (
    "task_id",
    "domain",
    "success",
    "score",
    "steps",
    "error",
    "failure_kind",
    "started_at",
    "finished_at",
    "duration_s",
    "worker",
    "instruction",
    "id",
)
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    # Log-derived text opened in a spreadsheet: never let it start a formula (CSV injection).
    if text.startswith(_FORMULA_START) and not isinstance(value, (int, float)):
        return "'" + text
    return text


def tasks_csv(tasks: Iterable[Mapping[str, Any]]) -> str:
    """Pure: a run's tasks as CSV (RFC 4180, ``\\r\\n`` line ends, a header row)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for task in tasks:
        writer.writerow([_csv_cell(task.get(c)) for c in CSV_COLUMNS])
    return buf.getvalue()
