"""``trio-sse runs`` (SPEC §9): list the stored runs, or compare two of them per domain and per
task. Rich tables on a terminal, plain aligned text when piped.

Owns: the ``runs`` command's arguments, its output and its exit codes (0 ok; 2 bad input or a
database that cannot be read — one clear line on stderr, never a traceback).

Must not: write to the database (it opens it read-only; an older schema is upgraded first,
as every reader does) or need the server running (the file is shared through SQLite's WAL).

Hooking it into ``cli.py``: either ``add_arguments(sub.add_parser("runs", …))`` then
``run_parsed(args, env)``, or hand the words after ``runs`` to ``main_runs(argv, env=env)``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from trio_sse import storedb
from trio_sse.baseline import Baseline
from trio_sse.errors import TrioSSEError

USAGE = "trio-sse runs [--db PATH] [--target NAME] [--limit N] [compare A B]"
DEFAULT_LIMIT = 50


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def add_arguments(parser: argparse.ArgumentParser, *, default_db: str | None = None) -> None:
    """The ``runs`` arguments; ``default_db`` is shown in the help (the path ``--db`` defaults to)."""
    where = default_db or "under the user's data dir"
    parser.add_argument("--db", metavar="PATH", help=f"history database (default: {where}) [env TRIO_SSE_DB]")
    parser.add_argument("--target", metavar="NAME", help="only this target's runs (default: all)")
    parser.add_argument("--limit", metavar="N", help=f"newest N runs; 0: all (default: {DEFAULT_LIMIT})")
    parser.add_argument("words", nargs="*", metavar="compare A B", help="compare run A (then) with run B (now)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trio-sse runs", usage=USAGE, description="List stored runs, or compare two.")
    add_arguments(parser)
    return parser


def main_runs(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    tty: bool | None = None,
) -> int:
    """Entry point: ``argv`` are the words after ``runs``. Returns the exit code."""
    stderr = sys.stderr if stderr is None else stderr
    try:
        args = build_parser().parse_args(list(argv))
    except _UsageError as err:
        print(f"trio-sse runs: error: {err} (usage: {USAGE})", file=stderr)
        return 2
    return run_parsed(args, env=env, stdout=stdout, stderr=stderr, tty=tty)


def run_parsed(
    args: argparse.Namespace,
    *,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    tty: bool | None = None,
) -> int:
    env = os.environ if env is None else env
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    if tty is None:
        tty = bool(getattr(stdout, "isatty", lambda: False)())
    conn: sqlite3.Connection | None = None
    try:
        path = _db_path(args.db, env)
        words = list(args.words)
        if words and words[0] != "compare":
            raise _UsageError(f"unknown command {words[0]!r}")
        if words and len(words) != 3:
            raise _UsageError("compare needs two runs: compare A B")
        limit = _limit(args.limit)
        conn = storedb.open_for_reading(path)
        if words:
            text = _compare(conn, words[1], words[2], tty=tty)
        else:
            text = _list(conn, target=args.target, limit=limit, path=path, tty=tty)
    except _UsageError as err:
        print(f"trio-sse runs: error: {err} (usage: {USAGE})", file=stderr)
        return 2
    except TrioSSEError as err:
        print(f"trio-sse runs: {err}", file=stderr)
        return 2
    except FileNotFoundError as err:
        print(f"trio-sse runs: {err} (the server creates it; --db to read another)", file=stderr)
        return 2
    except (sqlite3.Error, OSError) as err:
        print(f"trio-sse runs: {storedb.describe(path, err)}", file=stderr)
        return 2
    finally:
        if conn is not None:
            conn.close()
    stdout.write(text)
    return 0


def _db_path(option: str | None, env: Mapping[str, str]) -> Path:
    raw = option if option is not None else env.get("TRIO_SSE_DB")
    if raw is None or raw == "":
        return storedb.default_db_path(env)
    if raw.strip().lower() == "none":
        raise _UsageError("the history is off (--db none): nothing to list")
    if "\x00" in raw:
        raise _UsageError("--db must be a file path")
    return Path(raw).expanduser()


def _limit(raw: str | None) -> int | None:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise _UsageError(f"--limit must be an integer from 0 to {storedb.LIST_LIMIT_MAX}, got {raw!r}") from None
    if not 0 <= value <= storedb.LIST_LIMIT_MAX:
        raise _UsageError(f"--limit must be an integer from 0 to {storedb.LIST_LIMIT_MAX}, got {raw!r}")
    return value or None


# ---------------------------------------------------------------------------- rendering


def _rate(passed: int, total: int | None) -> str:
    return f"{100 * passed / total:.1f} %" if total else "–"


def _avg(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _state(run: storedb.RunRow) -> str:
    if run.interrupted is None:
        return "running"
    return "interrupted" if run.interrupted else (run.finished_at or "finished")


def _list(conn: sqlite3.Connection, *, target: str | None, limit: int | None, path: Path, tty: bool) -> str:
    runs = storedb.list_runs(conn, target=target, limit=limit)
    if not runs:
        return f"no runs stored in {path}" + (f" for target {target!r}" if target else "") + "\n"
    header = ("target", "run", "started", "finished", "tasks", "passed", "rate", "average", "model")
    rows = [
        (
            r.target,
            r.run,
            r.started_at or r.first_seen,
            _state(r),
            f"{r.tasks}/{r.total_tasks}" if r.total_tasks is not None else str(r.tasks),
            str(r.passed),
            _rate(r.passed, r.tasks),
            _avg(r.average),
            r.model or "",
        )
        for r in runs
    ]
    return _render([("Runs (newest first)", header, rows)], tty=tty)


def _compare(conn: sqlite3.Connection, ref_a: str, ref_b: str, *, tty: bool) -> str:
    run_a, run_b = storedb.find_run(conn, ref_a), storedb.find_run(conn, ref_b)
    tasks_a, tasks_b = storedb.run_tasks(conn, run_a), storedb.run_tasks(conn, run_b)
    base = Baseline(run_a.ref, tasks_a)
    latest_b = {t["task_id"]: t for t in tasks_b}  # last result of a retried task
    summary = base.summary(tasks_b)

    domains: dict[str, list[int]] = {}  # domain → [tasks A, passed A, tasks B, passed B]
    for task_id, t in base.tasks.items():
        row = domains.setdefault(t.domain or "–", [0, 0, 0, 0])
        row[0] += 1
        row[1] += t.success
    for t in latest_b.values():
        row = domains.setdefault(t.get("domain") or "–", [0, 0, 0, 0])
        row[2] += 1
        row[3] += t.get("success") is True
    domain_rows = []
    for domain in sorted(domains):
        ta, pa, tb, pb = domains[domain]
        delta = (
            f"{100 * (pb / tb - pa / ta):+.1f}" if ta and tb else "–"
        )
        domain_rows.append((domain, str(ta), str(pa), _rate(pa, ta), str(tb), str(pb), _rate(pb, tb), delta))

    order = {"regressed": 0, "fixed": 1, "new": 2, "missing": 3, "same": 4}
    task_rows = []
    for task_id in {**dict.fromkeys(base.tasks), **dict.fromkeys(latest_b)}:
        then = base.tasks.get(task_id)
        now = latest_b.get(task_id)
        change = base.compare(now)["change"] if now is not None else "missing"
        task_rows.append(
            (
                order[change],
                (
                    task_id,
                    (then.domain if then else now.get("domain") if now else None) or "–",
                    _result(then.success, then.score) if then else "–",
                    _result(now.get("success") is True, now.get("score")) if now else "–",
                    change,
                ),
            )
        )
    task_rows.sort(key=lambda x: (x[0], x[1][1], x[1][0]))
    head = (
        f"A = {run_a.ref} ({run_a.passed}/{run_a.tasks} passed, average {_avg(run_a.average)})\n"
        f"B = {run_b.ref} ({run_b.passed}/{run_b.tasks} passed, average {_avg(run_b.average)})\n"
        f"fixed {summary['fixed']}, regressed {summary['regressed']}, same {summary['same']}, "
        f"new {summary['new']}, missing {summary['missing']}\n\n"
    )
    return head + _render(
        [
            ("Per domain", ("domain", "A tasks", "A passed", "A rate", "B tasks", "B passed", "B rate", "Δ points"), domain_rows),
            ("Per task", ("task", "domain", "A", "B", "change"), [r for _, r in task_rows]),
        ],
        tty=tty,
    )


def _result(success: bool, score: Any) -> str:
    mark = "pass" if success else "fail"
    return f"{mark} {score:.2f}" if isinstance(score, (int, float)) and not isinstance(score, bool) else f"{mark} –"


def _render(tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[str]]]], *, tty: bool) -> str:
    if not tty:
        return "\n".join(_plain(title, header, rows) for title, header, rows in tables)
    import io

    from rich.console import Console
    from rich.table import Table

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160)
    for title, header, rows in tables:
        table = Table(title=title, title_justify="left")
        for name in header:
            table.add_column(name, overflow="fold")
        for row in rows:
            style = "red" if "regressed" in row else "green" if "fixed" in row else None
            table.add_row(*row, style=style)
        console.print(table)
    return buf.getvalue()


def _plain(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Aligned columns, two spaces apart, no colour, no box drawing: for pipes and grep."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = [f"# {title}", "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"
