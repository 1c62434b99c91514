"""Pure, incremental benchmark-log parser: bytes chunks in, typed events out (SPEC §7).

CONTRACT (implementation pending — see the helper brief).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunStarted:
    """``Worker N is doing tasks: [...]`` (or ``Left tasks:`` when no Worker line was seen)."""

    total_tasks: int | None
    offset: int


@dataclass(frozen=True, slots=True)
class TaskStarted:
    """``[Example ID]: id`` (domain from the preceding ``[Domain]:``), or simple-format
    ``Running task: X`` / ``Processing task: X`` (domain None)."""

    task_id: str
    domain: str | None
    offset: int


@dataclass(frozen=True, slots=True)
class StepStarted:
    """``Step N: action`` (WAA) or ``Step N`` (simple format). ``action``: first line only."""

    step: int
    action: str | None
    offset: int


@dataclass(frozen=True, slots=True)
class TaskFinished:
    """A task's result: from ``Result: s`` + ``Finished d/id``, or ``Exception in d/id: msg``
    (score None, error = msg). Emitted exactly once per task start."""

    task_id: str
    domain: str | None
    score: float | None
    error: str | None
    steps: int | None
    offset: int


@dataclass(frozen=True, slots=True)
class TasksCounted:
    """Simple format ``Task N/M``: task N of M has started, so N-1 are complete."""

    completed: int
    total: int
    offset: int


@dataclass(frozen=True, slots=True)
class RunFinished:
    """``Average score: x`` or ``No examples finished.`` (average None)."""

    average_score: float | None
    offset: int


@dataclass(frozen=True, slots=True)
class ServerReady:
    """``Response from server: {... 'Service is operational' ...}`` (ready) or
    ``Failed to get hello: ...`` (not ready)."""

    ready: bool
    message: str
    offset: int


@dataclass(frozen=True, slots=True)
class PhaseSeen:
    """A dockur/WAA container line that tells the VM phase (one of ``model.PHASES``)."""

    phase: str
    offset: int


ParsedEvent = (
    RunStarted | TaskStarted | StepStarted | TaskFinished | TasksCounted | RunFinished | ServerReady | PhaseSeen
)
