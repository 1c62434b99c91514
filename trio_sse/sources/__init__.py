"""Where bytes and probes come from: the interface every source implements.

A *source* gives the monitor two things, both Trio-native:

* ``follow(send, task_status=...)``: runs until cancelled, sending ``LogItem``s
  into ``send`` (a bounded memory channel the monitor owns; ``await send.send`` — the
  monitor keeps up, and a source that blocks on a full channel simply reads later, so
  nothing is lost). It reads the log from its start (or from ``offset``) and then follows
  appended bytes, tail -F style. A glob follows *every* matching file of the current run
  (one per worker, ``trio_sse.sources.workers``), each with its own offset; their bytes are
  interleaved as they arrive, each ``LogBytes`` naming its file. A source sends ``LogReset``
  before the first bytes of every file generation (a file starts being followed, truncation,
  replacement), then that file's ``LogBytes``; ``LogMissing`` when the configured path or glob
  has no file; ``SourceDown`` / ``SourceUp`` report an outage (an SSH link lost / back) — **one**
  ``SourceDown`` per outage, not one per retry.
  ``task_status.started()`` is called once the source is running (not necessarily connected).
* ``probe()``: one bounded-time look at the host: a ``ProbeResult``. Never raises for a
  host problem (that is a result with ``connected=False`` / ``error``); callers still wrap
  it in ``move_on_after``. What the probe commands' output means is decided in one place for
  every source: ``trio_sse.sources.probing.interpret``.

The results folder (SPEC §8, ``trio_sse.results``) sends into the same channel: a
``TrajectoryFound`` when it starts reading a task's ``traj.jsonl``, a ``StepSeen`` per action
line. The monitor tells it which tasks run now as a set of ``CurrentTask``s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # only for the protocol's annotations: importing this module stays pure
    import trio


@dataclass(frozen=True, slots=True)
class LogReset:
    """A new generation of the file ``path`` starts at byte 0: every followed file gets one
    before its first bytes (with a glob, ``path`` is the concrete match). Reasons:
    ``opened`` (a file starts being followed: at start, or a file that appeared or joined a
    glob later), ``truncated`` (it shrank, or was cut and grown again), ``replaced`` (its
    first bytes changed, or another file is at its path), ``newer-match`` (not sent by the
    sources of this package since globs follow every worker's file; kept for other sources).
    A ``LogReset`` also ends a ``LogMissing`` of the configured path."""

    path: str
    reason: str = "opened"  # opened | truncated | replaced | newer-match


@dataclass(frozen=True, slots=True)
class LogBytes:
    """Bytes of the current generation of ``path``; ``offset`` is the position of ``data[0]``
    in that file. ``path`` is the ``LogReset.path`` of the file; "" only from a source that
    follows exactly one file (then it means "the file of the last ``LogReset``")."""

    data: bytes
    offset: int
    path: str = ""


@dataclass(frozen=True, slots=True)
class LogMissing:
    """The configured log ``path`` (or glob) has no file: sent once when noticed — at start
    when it is absent, or when the followed file vanished and nothing replaced it — and again
    only after a file had appeared and gone again. A ``LogReset`` ends it."""

    path: str


@dataclass(frozen=True, slots=True)
class SourceDown:
    message: str


@dataclass(frozen=True, slots=True)
class SourceUp:
    pass


@dataclass(frozen=True, slots=True)
class StepSeen:
    """An action line of a task's ``traj.jsonl`` (the results source, SPEC §8): ``step`` is the
    line's ``step_num``, ``index`` its 1-based place among the file's action lines (several
    actions of one agent step share a ``step_num``; the reducer never sends an index twice),
    ``screenshot`` a file name the trajectory lists (not a URL), ``at`` ISO-8601 or None."""

    task_id: str
    step: int
    action: str | None
    screenshot: str | None
    at: str | None
    worker: str
    reward: float | None = None
    done: bool | None = None
    index: int = 0


@dataclass(frozen=True, slots=True)
class TrajectoryFound:
    """The results source reads this task's ``traj.jsonl`` (its first bytes arrived): from now
    on the task's steps come from there, with screenshots, not from the log's ``Step N:``."""

    task_id: str
    worker: str


@dataclass(frozen=True, slots=True)
class CurrentTask:
    """What the monitor tells the results source (``Monitor.current_tasks``): ``worker`` is
    running ``task_id`` of ``domain`` now (names as in ``progress.workers``)."""

    worker: str
    domain: str | None
    task_id: str


LogItem = LogReset | LogBytes | LogMissing | SourceDown | SourceUp | StepSeen | TrajectoryFound


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe saw. ``None`` means "this source cannot tell" (the monitor then keeps
    what the log says, e.g. WAA's own ``Response from server`` lines)."""

    connected: bool = True
    running: bool | None = None  # the benchmark process is alive (pgrep)
    phase: str | None = None  # one of model.PHASES
    waa_ready: bool | None = None
    probe_status: str | None = None
    vnc_url: str | None = None
    error: str | None = None


class Source(Protocol):
    description: str  # for logs and error messages, e.g. "azureuser@20.1.2.3:22:winarena:/client/results/logs/normal-*.log"

    async def follow(
        self,
        send: trio.MemorySendChannel[LogItem],
        *,
        task_status: trio.TaskStatus[None] = ...,  # trio.TASK_STATUS_IGNORED in implementations
    ) -> None: ...

    async def probe(self) -> ProbeResult: ...
