"""The event payloads the stream carries, and their JSON shape (SPEC §2.2), both ways.

Pure: no I/O, no clock. Every payload is a frozen, slotted dataclass with an ``EVENT``
name (the SSE ``event:`` field), a ``payload()`` giving the JSON object in wire order (the
keys of the original endpoint first — the compatibility contract of SPEC §2.2 — the added
keys after them) and a ``from_payload()`` reading one back, strictly: a required key must be
there with its type, an added key may be missing or null (an older server, or the original
endpoint, does not send it), unknown keys are ignored (a newer server). The server encodes
with these; ``trio_sse.client`` decodes with them (its event types extend these with the SSE
id and the raw object).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, TypeVar

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


class PayloadError(ValueError):
    """An event's JSON object does not have the documented shape."""


_T = TypeVar("_T")
_STR = (str,)
_BOOL = (bool,)
_INT = (int,)
_OPT_STR = (str, type(None))
_OPT_INT = (int, type(None))
_OPT_NUM = (int, float, type(None))
_OPT_BOOL = (bool, type(None))


def _get(d: Mapping[str, Any], key: str, types: tuple[type, ...], *, required: bool = True) -> Any:
    """``d[key]`` checked against ``types``. A required key must be present (with a value of
    ``types``, which may include None); an added key may be missing or null."""
    if key not in d:
        if required:
            raise PayloadError(f"event data lacks the required key {key!r}")
        return None
    value = d[key]
    if value is None and not required:
        return None
    # bool is an int in Python; a count or score that is a bool is junk.
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        raise PayloadError(f"event key {key!r} has the wrong type: {value!r}")
    return value


def _score(d: Mapping[str, Any], key: str, *, required: bool = True) -> float | None:
    value = _get(d, key, _OPT_NUM, required=required)
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        raise PayloadError(f"event key {key!r} is not a finite number: {value!r}")
    return value


def _list(d: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = d.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise PayloadError(f"event key {key!r} is not a list of objects: {value!r}"[:200])
    return value


def _object_or_none(d: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = d.get(key)
    if value is not None and not isinstance(value, dict):
        raise PayloadError(f"event key {key!r} is not an object: {value!r}"[:200])
    return value


def _target(d: Mapping[str, Any]) -> Any:
    # Added by this server; the original endpoint has one target and does not name it.
    return _get(d, "target", _OPT_STR, required=False)


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

    @classmethod
    def from_payload(cls: type[_T], d: Mapping[str, Any], **extra: Any) -> _T:
        probe = d.get("probe")
        probe = probe if isinstance(probe, dict) else {}
        return cls(
            target=_target(d),
            connected=_get(d, "connected", _BOOL),
            phase=_get(d, "phase", _STR),
            waa_ready=_get(d, "waa_ready", _BOOL),
            probe_status=_get(probe, "status", _OPT_STR, required=False),
            vnc_url=_get(probe, "vnc_url", _OPT_STR, required=False),
            **extra,
        )


@dataclass(frozen=True, slots=True)
class BaselineResult:
    """A task's result in the baseline run (``task_complete.baseline``, SPEC §9)."""

    score: float | None
    success: bool

    def payload(self) -> dict[str, Any]:
        return {"score": self.score, "success": self.success}

    @classmethod
    def from_payload(cls, d: Any) -> BaselineResult | None:
        if d is None:
            return None
        if not isinstance(d, dict):
            raise PayloadError(f"event key 'baseline' is not an object: {d!r}"[:200])
        return cls(score=_score(d, "score", required=False), success=bool(_get(d, "success", _OPT_BOOL, required=False)))


@dataclass(frozen=True, slots=True)
class Forecast:
    """The expected final success rate and its 90 % interval (``progress.forecast``, SPEC §9)."""

    success_rate: float
    low: float
    high: float

    def payload(self) -> dict[str, Any]:
        return {"success_rate": self.success_rate, "low": self.low, "high": self.high}

    @classmethod
    def from_payload(cls, d: Any) -> Forecast | None:
        if d is None:
            return None
        if not isinstance(d, dict):
            raise PayloadError(f"event key 'forecast' is not an object: {d!r}"[:200])
        return cls(_score(d, "success_rate") or 0.0, _score(d, "low") or 0.0, _score(d, "high") or 0.0)


@dataclass(frozen=True, slots=True)
class Worker:
    """One worker (process, env) of a run and what it is doing (``progress.workers``)."""

    worker: str
    current_task: str | None = None
    current_domain: str | None = None
    current_step: int | None = None
    evaluating: bool = False
    instruction: str | None = None  # of its current task
    action: str | None = None  # of its current step (first 2 KiB)

    def payload(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "current_task": self.current_task,
            "current_domain": self.current_domain,
            "current_step": self.current_step,
            "evaluating": self.evaluating,
            "instruction": self.instruction,
            "action": self.action,
        }

    @classmethod
    def from_payload(cls, d: Mapping[str, Any]) -> Worker:
        return cls(
            worker=_get(d, "worker", _STR),
            current_task=_get(d, "current_task", _OPT_STR, required=False),
            current_domain=_get(d, "current_domain", _OPT_STR, required=False),
            current_step=_get(d, "current_step", _OPT_INT, required=False),
            evaluating=bool(_get(d, "evaluating", _OPT_BOOL, required=False)),
            instruction=_get(d, "instruction", _OPT_STR, required=False),
            action=_get(d, "action", _OPT_STR, required=False),
        )


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
    # Added by issue 10 (SPEC §2.2); all optional for old clients.
    workers: tuple[Worker, ...] = ()
    rate_limited: int = 0  # the model API's HTTP 429 answers in this run
    instruction: str | None = None  # of the current task
    action: str | None = None  # of the current step (first 2 KiB)
    average_score: float | None = None  # WAA's: over the tasks with a Result
    started_at: str | None = None  # the run's first record's own time (ISO-8601, log's clock)
    max_steps: int | None = None  # the step budget (the Args line)
    stalled: float | None = None  # seconds since the run last moved, while stalled (SPEC §8)
    success_threshold: float | None = None  # the score at or above which a task passed
    forecast: Forecast | None = None  # the final success rate expected (SPEC §9)
    log_time: str | None = None  # the newest record's own time (the log's clock: wall time, ETA)

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
            "workers": [w.payload() for w in self.workers],
            "rate_limited": self.rate_limited,
            "instruction": self.instruction,
            "action": self.action,
            "average_score": self.average_score,
            "started_at": self.started_at,
            "max_steps": self.max_steps,
            "stalled": self.stalled,
            "success_threshold": self.success_threshold,
            "forecast": self.forecast.payload() if self.forecast is not None else None,
            "log_time": self.log_time,
        }

    @classmethod
    def from_payload(cls: type[_T], d: Mapping[str, Any], **extra: Any) -> _T:
        return cls(
            target=_target(d),
            tasks_completed=_get(d, "tasks_completed", _INT),
            total_tasks=_get(d, "total_tasks", _OPT_INT),
            current_task=_get(d, "current_task", _OPT_STR),
            current_step=_get(d, "current_step", _OPT_INT),
            running=_get(d, "running", _OPT_BOOL, required=False),
            current_domain=_get(d, "current_domain", _OPT_STR, required=False),
            run=_get(d, "run", _OPT_STR, required=False),
            finished=bool(_get(d, "finished", _OPT_BOOL, required=False)),
            workers=tuple(Worker.from_payload(w) for w in _list(d, "workers")),
            rate_limited=_get(d, "rate_limited", _OPT_INT, required=False) or 0,
            instruction=_get(d, "instruction", _OPT_STR, required=False),
            action=_get(d, "action", _OPT_STR, required=False),
            average_score=_score(d, "average_score", required=False),
            started_at=_get(d, "started_at", _OPT_STR, required=False),
            max_steps=_get(d, "max_steps", _OPT_INT, required=False),
            stalled=_score(d, "stalled", required=False),
            success_threshold=_score(d, "success_threshold", required=False),
            forecast=Forecast.from_payload(d.get("forecast")),
            log_time=_get(d, "log_time", _OPT_STR, required=False),
            **extra,
        )


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
    # Added by issue 10 (SPEC §2.2, §7.1); all optional for old clients.
    failure_kind: str | None = None  # None when it passed; agent | infra | evaluator | max_steps
    instruction: str | None = None
    started_at: str | None = None  # ISO-8601, the log's own clock
    finished_at: str | None = None
    duration_s: float | None = None
    worker: str | None = None
    baseline: BaselineResult | None = None  # the same task in the baseline run (SPEC §9)
    change: str | None = None  # fixed | regressed | same | new; None without a baseline

    def payload(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "success": self.success,
            "score": self.score,
            "target": self.target,
            "domain": self.domain,
            "steps": self.steps,
            "error": self.error,
            "failure_kind": self.failure_kind,
            "instruction": self.instruction,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "worker": self.worker,
            "baseline": self.baseline.payload() if self.baseline is not None else None,
            "change": self.change,
        }

    @classmethod
    def from_payload(cls: type[_T], d: Mapping[str, Any], **extra: Any) -> _T:
        return cls(
            target=_target(d),
            task_id=_get(d, "task_id", _STR),
            success=_get(d, "success", _BOOL),
            score=_score(d, "score"),
            domain=_get(d, "domain", _OPT_STR, required=False),
            steps=_get(d, "steps", _OPT_INT, required=False),
            error=_get(d, "error", _OPT_STR, required=False),
            failure_kind=_get(d, "failure_kind", _OPT_STR, required=False),
            instruction=_get(d, "instruction", _OPT_STR, required=False),
            started_at=_get(d, "started_at", _OPT_STR, required=False),
            finished_at=_get(d, "finished_at", _OPT_STR, required=False),
            duration_s=_score(d, "duration_s", required=False),
            worker=_get(d, "worker", _OPT_STR, required=False),
            baseline=BaselineResult.from_payload(d.get("baseline")),
            change=_get(d, "change", _OPT_STR, required=False),
            **extra,
        )


@dataclass(frozen=True, slots=True)
class RunComplete:
    """The end of a run. Durable."""

    EVENT: ClassVar[str] = "run_complete"
    target: str
    tasks_completed: int
    total_tasks: int | None
    tasks_passed: int
    average_score: float | None
    interrupted: bool = False  # stopped (Interrupted by N, or the process gone with a task open)
    baseline: Mapping[str, Any] | None = None  # the comparison with the baseline run (SPEC §9)

    def payload(self) -> dict[str, Any]:
        return {
            "tasks_completed": self.tasks_completed,
            "total_tasks": self.total_tasks,
            "tasks_passed": self.tasks_passed,
            "average_score": self.average_score,
            "target": self.target,
            "interrupted": self.interrupted,
            "baseline": dict(self.baseline) if self.baseline is not None else None,
        }

    @classmethod
    def from_payload(cls: type[_T], d: Mapping[str, Any], **extra: Any) -> _T:
        return cls(
            target=_target(d),
            tasks_completed=_get(d, "tasks_completed", _INT),
            total_tasks=_get(d, "total_tasks", _OPT_INT),
            tasks_passed=_get(d, "tasks_passed", _INT),
            average_score=_score(d, "average_score"),
            interrupted=bool(_get(d, "interrupted", _OPT_BOOL, required=False)),
            baseline=_object_or_none(d, "baseline"),
            **extra,
        )


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """Something the user should know (a source is down, a file vanished). Never coalesced."""

    EVENT: ClassVar[str] = "error"
    target: str
    message: str

    def payload(self) -> dict[str, Any]:
        return {"message": self.message, "target": self.target}

    @classmethod
    def from_payload(cls: type[_T], d: Mapping[str, Any], **extra: Any) -> _T:
        return cls(target=_target(d), message=_get(d, "message", _STR), **extra)


@dataclass(frozen=True, slots=True)
class Step:
    """One agent step (SPEC §2.2, §8): sent at once, never coalesced, no id (not durable).
    ``action`` is its first 2 KiB ("" when the log's simple format names none); ``screenshot``
    the files API URL of its screenshot (None when the step came from the log, not from the
    task's ``traj.jsonl``); ``at`` ISO-8601, the benchmark machine's clock."""

    EVENT: ClassVar[str] = "step"
    target: str
    task_id: str
    step: int
    action: str = ""
    screenshot: str | None = None
    at: str | None = None
    worker: str | None = None

    def payload(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "step": self.step,
            "action": self.action,
            "screenshot": self.screenshot,
            "at": self.at,
            "target": self.target,
            "worker": self.worker,
        }

    @classmethod
    def from_payload(cls: type[_T], d: Mapping[str, Any], **extra: Any) -> _T:
        return cls(
            target=_target(d),
            task_id=_get(d, "task_id", _STR),
            step=_get(d, "step", _INT),
            action=_get(d, "action", _STR),
            screenshot=_get(d, "screenshot", _OPT_STR),
            at=_get(d, "at", _OPT_STR),
            worker=_get(d, "worker", _OPT_STR, required=False),
            **extra,
        )


Durable = TaskComplete | RunComplete
Event = Status | Progress | TaskComplete | RunComplete | ErrorEvent | Step
EVENT_TYPES: Final[dict[str, type[Event]]] = {
    c.EVENT: c for c in (Status, Progress, TaskComplete, RunComplete, ErrorEvent, Step)
}


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
        """WAA's own definition (``run.py``'s ``Average score``): the mean over the tasks
        that produced a ``Result``; a task that raised is left out; None when none did (WAA
        logs ``No examples finished.``). The same number live, in the snapshot and at the end."""
        if self.scored == 0:
            return None
        return round(self.score_sum / self.scored, 6)
