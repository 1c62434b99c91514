"""A run compared with a baseline run, task by task (SPEC §9). Pure.

Owns: the ``baseline`` and ``change`` fields of a ``task_complete`` payload, the
``run_complete.baseline`` summary, and the baseline's per-domain pass counts (the forecast's
prior). Input is plain payload dicts (the stored tasks of the baseline, ``storedb.run_tasks``;
the live ``task_complete`` payloads), so this module needs neither the database nor a clock.

Must not: import anything async, read the database, or change the payloads it is given.

Rules:
- a task is matched by ``task_id``; when a run holds the same task twice (a retry), its
  last result counts;
- ``change`` compares *success* (``score >= success_threshold`` as each run recorded it):
  ``fixed`` (failed then, passes now), ``regressed`` (passed then, fails now), ``same``,
  ``new`` (not in the baseline). A change of score without a change of success is ``same``;
- averages follow SPEC §2.2: the mean over tasks that have a score (a task that raised has
  none), ``None`` when none has.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

FIXED: Final = "fixed"
REGRESSED: Final = "regressed"
SAME: Final = "same"
NEW: Final = "new"
CHANGES: Final = (FIXED, REGRESSED, SAME, NEW)
MAX_LISTED: Final = 50  # task ids listed per change in a summary (a run_complete stays small)


@dataclass(frozen=True, slots=True)
class BaselineTask:
    score: float | None
    success: bool
    domain: str | None


def _score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _average(scores: Iterable[float | None]) -> float | None:
    known = [s for s in scores if s is not None]
    return round(sum(known) / len(known), 6) if known else None


def _latest(payloads: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """task_id → its last payload (junk without a task_id is skipped)."""
    out: dict[str, Mapping[str, Any]] = {}
    for p in payloads:
        task_id = p.get("task_id")
        if isinstance(task_id, str) and task_id:
            out.pop(task_id, None)  # keep log order of the last occurrence
            out[task_id] = p
    return out


class Baseline:
    """The tasks of the run compared with. ``run`` names it (``<target>:<run>``)."""

    __slots__ = ("run", "tasks", "average")

    def __init__(self, run: str, tasks: Iterable[Mapping[str, Any]]) -> None:
        self.run = run
        self.tasks: dict[str, BaselineTask] = {
            task_id: BaselineTask(
                _score(p.get("score")),
                p.get("success") is True,
                p.get("domain") if isinstance(p.get("domain"), str) else None,
            )
            for task_id, p in _latest(tasks).items()
        }
        self.average = _average(t.score for t in self.tasks.values())

    def __len__(self) -> int:
        return len(self.tasks)

    def compare(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """``{"baseline": {"score", "success"} or None, "change": …}`` for one result."""
        then = self.tasks.get(payload.get("task_id"))  # type: ignore[arg-type]
        if then is None:
            return {"baseline": None, "change": NEW}
        now = payload.get("success") is True
        change = SAME if now == then.success else FIXED if now else REGRESSED
        return {"baseline": {"score": then.score, "success": then.success}, "change": change}

    def decorate(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of a ``task_complete`` payload with ``baseline`` and ``change`` added."""
        return {**payload, **self.compare(payload)}

    def summary(self, payloads: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """``run_complete.baseline``: how the run's results compare, overall."""
        latest = _latest(payloads)
        counts = dict.fromkeys(CHANGES, 0)
        listed: dict[str, list[str]] = {FIXED: [], REGRESSED: []}
        for task_id, p in latest.items():
            change = self.compare(p)["change"]
            counts[change] += 1
            if change in listed and len(listed[change]) < MAX_LISTED:
                listed[change].append(task_id)
        return {
            "run": self.run,
            **counts,
            "missing": sum(1 for task_id in self.tasks if task_id not in latest),
            "passed_then": sum(t.success for t in self.tasks.values()),
            "tasks_then": len(self.tasks),
            "passed_now": sum(1 for p in latest.values() if p.get("success") is True),
            "tasks_now": len(latest),
            "average_then": self.average,
            "average_now": _average(_score(p.get("score")) for p in latest.values()),
            "fixed_tasks": listed[FIXED],
            "regressed_tasks": listed[REGRESSED],
        }

    def domain_rates(self) -> dict[str | None, tuple[int, int]]:
        """Per domain: (passed, tasks) — the forecast's prior."""
        out: dict[str | None, tuple[int, int]] = {}
        for t in self.tasks.values():
            passed, total = out.get(t.domain, (0, 0))
            out[t.domain] = (passed + t.success, total + 1)
        return out
