"""Which log files belong to which worker, and which matches of a glob are the current run.

Owns: ``worker_key`` (the worker a log file belongs to, from its name) and ``select`` (the
matches of a glob log path that a source follows: one file per worker, the current run's).
Used by the sources (``local.py``, ``ssh/follow.py``) and by the reducer, so both agree on
what a worker is. Must not: do I/O, read a clock or import anything async (the callers stat
the files and pass their mtimes).

WAA's ``client/run.py`` (upstream 6d39ed8, ``setup_logging``, lines 35-50) names its log files
``<result_dir>/logs/normal-<worker_id>-<datetime_str>.log`` (and ``debug-…``, ``sdebug-…``)
with ``datetime_str = datetime.now().strftime("%Y%m%d@%H%M%S")`` taken once per process, so
every worker of one run writes ``normal-<worker>-<its start time>.log`` side by side, and the
next run of the same worker writes a file whose name sorts after it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# A timestamp at the end of a file name (before its extensions), after a separator. The
# forms: WAA's %Y%m%d@%H%M%S, ISO-like dates with an optional time (2024-11-20T14-06-12,
# 2024-11-20_14:06:12.123Z), compact dates with an optional time (20241120, 20241120T1406,
# 20241120_140612), and Unix epoch seconds or milliseconds (10 or 13 digits).
_TIMESTAMP = (
    r"\d{8}@\d{6}"
    r"|\d{4}-\d{2}-\d{2}(?:[T_ @-]\d{2}[-:.]?\d{2}(?:[-:.]?\d{2}(?:[.,]\d+)?)?)?Z?"
    r"|\d{8}(?:[T_@-]?\d{4}(?:\d{2})?)?Z?"
    r"|\d{13}|\d{10}"
)
# WAA's own names (client/run.py:44-47), whatever follows the worker id.
_WAA = re.compile(r"((?:normal|debug|sdebug)-\d{1,6})-.+", re.DOTALL)
_STAMPED = re.compile(rf"(?:(?P<stem>.*?)[-_.])?(?:{_TIMESTAMP})(?P<ext>(?:\.[A-Za-z][A-Za-z0-9]*)*)", re.DOTALL)


def _basename(path: str) -> str:
    return path.rstrip("/").rpartition("/")[2] or path


def worker_key(path: str) -> str:
    """The worker a log file belongs to. WAA's names → ``normal-<worker>`` (``debug-…``,
    ``sdebug-…``), whatever follows the worker id (``…/normal-0-20241120@140612.log`` →
    ``normal-0``); other names → the name without a trailing timestamp and without extensions
    (``x_2024-11-20T14-06-12.log`` → ``x``); a name that is only a timestamp → its extensions
    without the dot (``log``: successive runs of one writer); a name without a trailing
    timestamp → the name itself (``normal-1.log``). Files with the same key are one worker's
    successive runs."""
    name = _basename(path)
    waa = _WAA.fullmatch(name)
    if waa is not None:
        return waa.group(1)
    m = _STAMPED.fullmatch(name)
    if m is None:
        return name
    stem = m.group("stem")
    if stem:
        return stem
    return m.group("ext").lstrip(".") or name


@dataclass(frozen=True, slots=True)
class Match:
    """A regular file matching the glob, and when it last changed (seconds, any epoch)."""

    path: str
    mtime: float


@dataclass(frozen=True, slots=True)
class Selection:
    paths: tuple[str, ...]  # the files to follow, sorted by path
    left_out: int = 0  # files of the current run beyond ``limit`` (the caller warns)


def _name_order(m: Match) -> tuple[str, str]:
    return (_basename(m.path), m.path)


def select(matches: Iterable[Match], *, window: float, limit: int) -> Selection:
    """The matches a glob follows (SPEC §3 "Several files at once"):

    1. per ``worker_key``, the file whose name sorts last (a newer timestamp of the same
       worker is its newer run: the older file is history);
    2. among those, the files that changed within ``window`` seconds of the newest one — a
       lone older file that stopped growing long ago is history, not a worker — but always
       at least the newest;
    3. at most ``limit`` of them, the most recently changed first (``left_out`` counts the
       others).
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    latest: dict[str, Match] = {}
    for m in {m.path: m for m in matches}.values():
        key = worker_key(m.path)
        seen = latest.get(key)
        if seen is None or _name_order(m) > _name_order(seen):
            latest[key] = m
    if not latest:
        return Selection(())
    by_recency = sorted(latest.values(), key=lambda m: (m.mtime, *_name_order(m)), reverse=True)
    newest = by_recency[0].mtime
    current = [m for m in by_recency if m.mtime >= newest - window]
    chosen = current[:limit]
    return Selection(tuple(sorted(m.path for m in chosen)), left_out=len(current) - len(chosen))
