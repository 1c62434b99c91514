"""The event payloads the stream carries, and their JSON shape (SPEC §2.2).

Pure: no I/O, no clock. Every payload is a frozen, slotted dataclass with an ``EVENT``
name (the SSE ``event:`` field) and a ``payload()`` giving the JSON object in wire order:
the keys of the original endpoint first (the compatibility contract of SPEC §2.2), the
added keys after them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

PHASES: Final = (
    "downloading",
    "extracting",
    "configuring",
    "building",
    "booting",
    "oobe",
    "ready",
    "unknown",
)


def dumps(obj: Any) -> str:
    """Compact JSON, one line (SPEC §2.1: one ``data:`` line of compact JSON)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True, slots=True)
class Status:
    """VM / container / WAA-server state of one target."""

    EVENT: ClassVar[str] = "status"
    target: str
    connected: bool = False
    phase: str = "unknown"
    waa_ready: bool = False
    probe_status: str = "unknown"
    vnc_url: str | None = None

    def payload(self) -> dict[str, Any]:
        return {
            "type": "vm_status",
            "connected": self.connected,
            "phase": self.phase,
            "waa_ready": self.waa_ready,
            "probe": {"status": self.probe_status, "vnc_url": self.vnc_url},
            "target": self.target,
        }


@dataclass(frozen=True, slots=True)
class Progress:
    """Where the run is. Coalesced on the wire: only the newest value matters."""

    EVENT: ClassVar[str] = "progress"
    target: str
    tasks_completed: int = 0
    total_tasks: int | None = None
    current_task: str | None = None
    current_step: int | None = None
    running: bool | None = None
    current_domain: str | None = None
    run: str | None = None
    finished: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "tasks_completed": self.tasks_completed,
            "total_tasks": self.total_tasks,
            "current_task": self.current_task,
            "current_step": self.current_step,
            "target": self.target,
            "running": self.running,
            "current_domain": self.current_domain,
            "run": self.run,
            "finished": self.finished,
        }


@dataclass(frozen=True, slots=True)
class TaskComplete:
    """One finished task. Durable: carries an id, replayed on resume."""

    EVENT: ClassVar[str] = "task_complete"
    target: str
    task_id: str
    success: bool
    score: float | None
    domain: str | None = None
    steps: int | None = None
    error: str | None = None

    def payload(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "success": self.success,
            "score": self.score,
            "target": self.target,
            "domain": self.domain,
            "steps": self.steps,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class RunComplete:
    """The end of a run. Durable."""

    EVENT: ClassVar[str] = "run_complete"
    target: str
    tasks_completed: int
    total_tasks: int | None
    tasks_passed: int
    average_score: float | None

    def payload(self) -> dict[str, Any]:
        return {
            "tasks_completed": self.tasks_completed,
            "total_tasks": self.total_tasks,
            "tasks_passed": self.tasks_passed,
            "average_score": self.average_score,
            "target": self.target,
        }


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """Something the user should know (a source is down, a file vanished). Never coalesced."""

    EVENT: ClassVar[str] = "error"
    target: str
    message: str

    def payload(self) -> dict[str, Any]:
        return {"message": self.message, "target": self.target}


Durable = TaskComplete | RunComplete
Event = Status | Progress | TaskComplete | RunComplete | ErrorEvent


@dataclass(slots=True)
class RunSummary:
    """Aggregates of the current run's results (for the snapshot and ``run_complete``)."""

    tasks_completed: int = 0
    tasks_passed: int = 0
    score_sum: float = 0.0
    scored: int = 0
    results: list[TaskComplete] = field(default_factory=list)

    def add(self, result: TaskComplete) -> None:
        self.results.append(result)
        self.tasks_completed += 1
        self.tasks_passed += result.success
        if result.score is not None:
            self.score_sum += result.score
            self.scored += 1

    @property
    def average_score(self) -> float | None:
        # WAA's own "Average score" counts a task that raised as 0; mirror that by dividing
        # by every completed task, not only the scored ones.
        if self.tasks_completed == 0:
            return None
        return round(self.score_sum / self.tasks_completed, 6)
