"""A run's wall time and ETA on the benchmark machine's own clock (pure; for ``watch``).

Owns: reading the log's times (ISO-8601 as the benchmark machine wrote them, no zone) and
turning them into "how long has this run been going" and "how long until it ends". The log's
clock is never compared with this machine's: the two may be hours apart (time zones) or
simply wrong. Only differences between the log's own times are used, plus one estimate of
the log clock's "now": ``now - offset``, where ``offset`` is the smallest (this clock minus
the log's time) seen on a *live* event — one that was written just now (a replayed result is
old news and gives only a lower bound). The dashboard (static/dashboard.js) does the same.

Must not: read a clock itself (``now`` is passed in, any monotonic seconds), or import
anything async.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

__all__ = ["Elapsed", "RunClock", "log_seconds"]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def log_seconds(text: object) -> float | None:
    """A log time (``2024-05-06T10:11:12.345``, or with a space, or with a zone) as seconds
    since an arbitrary fixed point; None for anything else. A time without a zone is read as
    UTC: only differences between two of them mean anything."""
    if not isinstance(text, str) or not text:
        return None
    try:
        when = _dt.datetime.fromisoformat(text.strip().replace(",", "."))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return (when - _EPOCH).total_seconds()


@dataclass(frozen=True, slots=True)
class Elapsed:
    seconds: float
    exact: bool  # False: a lower bound (no live event has told the log clock's "now" yet)


class RunClock:
    """What the log's times say of one run. ``observe`` each time an event carries one."""

    __slots__ = ("_last_finish", "_latest", "_offset", "_seen_at")

    def __init__(self) -> None:
        self._latest: float | None = None  # the newest log time seen
        self._seen_at = 0.0  # ``now`` when it was seen
        self._offset: float | None = None  # now - log time, smallest seen on a live event
        self._last_finish: float | None = None  # the newest finished_at

    def observe(self, text: object, now: float, *, live: bool, finish: bool = False) -> None:
        t = log_seconds(text)
        if t is None:
            return
        if self._latest is None or t > self._latest:
            self._latest, self._seen_at = t, now
        if finish and (self._last_finish is None or t > self._last_finish):
            self._last_finish = t
        if live and (self._offset is None or now - t < self._offset):
            self._offset = now - t

    def log_now(self, now: float) -> float | None:
        """The log clock's estimated "now" (exact once a live event was seen, else a lower
        bound: the newest time seen plus the time since), or None when nothing was seen."""
        if self._latest is None:
            return None
        if self._offset is None:
            return self._latest + (now - self._seen_at)
        return max(self._latest, now - self._offset)

    def elapsed(self, started_at: object, now: float, *, finished: bool) -> Elapsed | None:
        """From the run's first record to now (or, once finished, to the newest time seen)."""
        start = log_seconds(started_at)
        if start is None or self._latest is None:
            return None
        if finished:
            return Elapsed(max(0.0, self._latest - start), True)
        log_now = self.log_now(now)
        assert log_now is not None
        return Elapsed(max(0.0, log_now - start), self._offset is not None)

    def eta(self, started_at: object, now: float, *, done: int, total: int | None) -> float | None:
        """The run's own pace — its finished tasks over the log time they took — applied to
        the tasks still to do, less the time since the last one finished (0 at the least)."""
        start = log_seconds(started_at)
        last = self._last_finish
        if start is None or last is None or total is None or done <= 0 or total <= done or last <= start:
            return None
        per_task = (last - start) / done
        log_now = self.log_now(now)
        since = 0.0 if log_now is None else max(0.0, log_now - last)
        return max(0.0, (total - done) * per_task - since)
