"""Pure, incremental benchmark-log parser: bytes chunks in, typed events out (SPEC §7, §7.1).

Owns: turning the bytes of a benchmark log — Windows Agent Arena (WAA) records, OSWorld's
``run_multienv`` records (several processes in one file), the original endpoint's simple format,
dockur/windows container lines, ``print`` output and tqdm redraws — into the typed events below,
whatever way the bytes are chunked. Must not: do I/O, log, read a clock, import anything async,
know about runs' ids, success thresholds or the wire (the monitor/reducer does). The line formats
themselves live in :mod:`trio_sse.waalog`, shared with the simulator that writes them.

Usage::

    parser = LogParser()
    for chunk in chunks:
        events = parser.feed(chunk)   # any split: inside UTF-8, inside ANSI codes, inside \\r\\n
    events = parser.close()           # end of input: the last unterminated line, pending results

The events
----------
Frozen, slotted dataclasses. Every event has ``offset`` (see below); events that come from a
*record* (a ``[asctime LEVEL module/lineno-processName]`` line) also carry

* ``at`` — the record's own ``asctime`` as ISO-8601 ``YYYY-MM-DDTHH:MM:SS.mmm`` (``.000`` when
  the record has no milliseconds; None for a custom ``datefmt`` this cannot read, and for
  events from plain lines: ``print`` output, container lines, the simple format);
* ``worker`` — who wrote it, when the log has several writers: OSWorld's env tag
  (``[Env 1][Domain]: …`` → ``"Env 1"``; ``[EnvProcess-2]…`` → ``"EnvProcess-2"``;
  ``Exception in Env1 …`` → ``"Env 1"``); for a record without a tag, the tag last seen on a
  record of the same process (OSWorld's ``Step``/``Result`` records come from
  ``lib_run_single`` untagged, but from the env's process), else the process name when it is
  not ``MainProcess``, else None. A WAA log (one process per file) has ``worker`` None
  throughout: the file is the worker, and ``RunStarted.worker_id`` gives WAA's own number.

=================  ===========================================================================
event              emitted for
=================  ===========================================================================
RunStarted         ``Worker N is doing tasks: [...]`` (``worker_id`` N, ``tasks`` the list), or
                   a ``Left tasks:`` block not followed by a Worker line (OSWorld). See below.
RunArgs            ``Args: Namespace(...)``: ``max_steps``, ``model``, ``agent`` (WAA's
                   ``agent_name``) when present, ``raw`` the Namespace text.
TaskStarted        ``[Example ID]: id`` (domain from the worker's preceding ``[Domain]:``), or
                   simple-format ``Running task: X`` / ``Processing task: X``.
InstructionSeen    ``[Instruction]: text`` (first line) of the worker's current task. WAA logs
                   it right after ``[Example ID]``; a separate event keeps TaskStarted
                   immediate. ``TaskFinished.instruction`` repeats it.
StepStarted        ``Step N: action`` (``action`` its first line; ``task_id`` the worker's task)
                   or simple-format ``Step N``.
Evaluating         ``Running evaluator(s)...`` (lib_run_single.py:82): the worker's task is
                   being evaluated.
InfraHint          ``Failed to execute command. Status code: 5xx`` / ``An error occurred while
                   trying to execute the command: …`` (controllers/python.py:182/185/204/207),
                   with the worker's ``task_id``.
RateLimited        httpx's ``HTTP Request: … "HTTP/1.1 429 …"`` (``retry`` False: count these)
                   and openai's ``Retrying request to … in … seconds`` (``retry`` True: the
                   client backing off, after a 429 or a 5xx; not a second rate-limit hit).
TaskFinished       a task's end, once per task id per run (below).
RunFinished        ``Average score: x`` or ``No examples finished.`` (average None).
ServerReady        ``Response from server: {…}`` (ready iff it says ``Service is operational``),
                   ``Failed to get hello: …`` (False), ``VM is up and ready.`` (True),
                   ``VM not ready yet…`` / ``VM did not become ready after N attempts.`` (False).
PhaseSeen          a dockur/WAA container line telling the VM phase, on change only.
Interrupted        ``Interrupted by N, shutting down`` (WAA's signal handler, a ``print``:
                   console only) or OSWorld's ``Received signal N. Gracefully shutting down``.
TasksCounted       simple format ``Task N/M``.
=================  ===========================================================================

How bytes become lines
----------------------
* A line ends at ``\\n``. A ``\\r`` also ends a *segment*: tqdm redraws its bar with ``\\r`` and
  never a newline, so a physical line can hold many bars and then a real log record; each
  segment is parsed on its own, so a bar can neither hide the record after it nor pile up
  (``\\r\\n`` — a pty's line end in ``docker logs`` of ``docker run -it`` — gives an empty
  segment, which is skipped). ``offset`` of an event is the byte offset (since construction) of
  the start of the segment that produced it, except where said below.
* Segments are bounded: one longer than ``max_line_bytes`` keeps its first ``max_line_bytes``
  bytes, the rest up to the next ``\\n``/``\\r`` is dropped as it arrives (counted in
  ``overlong_lines``). A 100 MB line without a newline costs ``max_line_bytes`` of memory.
* ANSI escape sequences (CSI colours, OSC titles, lone ESC) and NUL bytes are removed; text is
  UTF-8 with invalid bytes replaced (only the captured fields are ever decoded).
* Events come out in log order: their offsets never go down.

How lines become events
-----------------------
The grammar is data: tables of ``(compiled regex, handler)`` at the end of this module, indexed
by the first byte a message can start with. Three tables:

* **WAA messages** — the text after a record prefix (and after an OSWorld env tag). The first
  prefixed line switches the parser to WAA mode for good.
* **plain lines** — lines without a prefix: in WAA mode these are continuation lines of the
  previous record (multi-line actions, tracebacks), ``print()`` output and tqdm bars. Only
  container phase lines, server-readiness lines and ``Interrupted by N`` are looked for in
  them, never a task template: an agent's code may well contain ``# Step 2`` or ``Finished``.
* **simple format** — before any WAA prefix was seen, plain lines are also matched against
  the original endpoint's ``Task N/M``, ``Running task: X``, ``Processing task: X``,
  ``Step N`` (anchored at the line start, after blanks).

Most lines of a WAA log are continuation lines no rule can match. ``_segments`` does not visit
them: one regex built from the plain-line rules finds the next line any rule could act on
(plus tqdm bars anywhere in a line), which keeps a 10 MB run fast (``scripts/bench_parser.py``).
While a ``Left tasks:`` block or a raised task's traceback is being read, every line is visited.

Decisions (SPEC §7.1 leaves them to us)
---------------------------------------
* **Run start.** ``Worker N is doing tasks: [...]`` gives ``RunStarted`` with the number of
  distinct ``(domain, task_id)`` tuples. WAA logs ``Left tasks:`` (a per-domain count, which
  in multi-worker runs counts *all* workers' tasks) just before it, so a ``Left tasks:`` block
  is held until its message ends, at the next prefixed record: if that is a ``Worker`` line,
  that line wins; otherwise ``RunStarted(total=sum of counts)`` is emitted with the offset of
  that record (at ``close``: the end-of-input offset), before the record's own events; its
  ``at``/``worker`` are the ``Left tasks`` record's. Plain lines inside the block (``print``,
  tqdm, container lines) neither end nor break it.
  A ``Worker`` line of a worker not yet seen in the current, unfinished run (several workers'
  output in one stream) does not start a new run: it emits ``RunStarted(same_run=True)``
  whose ``total_tasks`` is the size of the union of all those workers' task lists. A
  ``Worker`` line after ``RunFinished``, or from a worker already seen, starts a new run.
* **Workers.** Task state (current task, pending domain, step count, evaluating, hints) is kept
  per ``worker`` (above), so OSWorld envs interleaving in one file each keep their own task and
  a ``Result`` attaches to the task of the process that logged it. WAA's one-process files use
  a single state, as before.
* **Task ids** are cut to ``waalog.TASK_ID_MAX_BYTES`` (256) bytes wherever they are read. When
  a line was cut at ``max_line_bytes`` inside an id, a ``Finished``/``Exception`` id that is a
  prefix of the worker's current task id (or the other way round) is that task. So an id longer
  than any bound is one task, reported once, with the id its ``[Example ID]`` gave.
* **Task results** — a ``TaskFinished`` at most once per task id per run, never for a task
  that neither produced a result nor raised (success is never assumed):
  ``Result: s`` (one token: ``lib_run_single``'s ``%.2f``) is remembered for the worker's
  current task; ``Finished d/id`` emits it (score from ``Result:``, else from a ``score=``
  suffix some forks write, else None). OSWorld never logs ``Finished``: a task started by a
  tagged ``[Env N][Example ID]`` is finished by its ``Result`` record at once. A WAA task that
  has a ``Result`` but is followed by the worker's next ``[Example ID]``, ``Left tasks:``/
  ``Worker`` (a new run), the run end, or :meth:`LogParser.close` before its ``Finished`` is
  emitted then, with the offset of that line (``close``: the end-of-input offset) — the last
  task is never lost. ``Result: <several words>`` (an evaluator getter's own line, e.g.
  microsoftpaint.py:64 ``Result: Found a red circle in the screenshot``) is neither a result nor
  a parse error. ``steps`` is the highest ``Step n`` seen since the task's ``[Example ID]``.
* **A task that raised** (``Exception in [env ]d/id: msg``) gets ``score=None``,
  ``error=msg`` (``"exception without a message"`` when empty); a later ``Finished`` for it is
  ignored. Its ``failure_kind`` needs the traceback, which WAA logs as a *separate* ERROR
  record right after (run.py:261), and whose text may be the only place naming the connection
  error. So the ``TaskFinished`` of a raised task is *held* and settled, with the offset and
  ``at`` of its ``Exception`` record, at the first of:

  - a connection/timeout to the guest (``waalog.VM_UNREACHABLE_RE``, on a line not naming an
    ``HTTPSConnectionPool``) in the message — then it is not held at all — or in a later
    column-0 line of the message or of the traceback (→ ``infra`` at once);
  - the traceback's first column-0 line after ``Traceback (most recent call last):`` — the
    root-cause exception line (``ConnectionRefusedError: …`` for a refused guest), whether the
    traceback is the worker's next record or continuation lines of the Exception record;
  - the next prefixed record that is not that traceback record (from any worker: in OSWorld a
    record of another env landing between the two ends the hold; the kind then rests on the
    message); any event from a plain line; :meth:`LogParser.close`.

  Nothing else is emitted while a task is held, so offsets stay in order, and the task is never
  delayed past the next record or ``close()``.
* **failure_kind** (SPEC §7.1), on every ``TaskFinished``: the kind this task's failure has *if*
  it failed — the parser does not know the success threshold, so the reducer reports it only for
  tasks that did not pass. A task that raised: ``infra`` if the message/traceback shows the
  guest unreachable (``vm_unreachable``); else ``evaluator`` if it raised after its
  ``Running evaluator(s)...``; else ``infra`` if the task had infra hints; else ``agent``. A task
  with a score: ``max_steps`` if its highest step reached the ``Args`` line's ``max_steps``
  without ``DONE``/``FAIL`` (``The episode is done.`` or a ``DONE``/``FAIL`` action;
  ``max_steps_reached``); else ``infra`` if it had infra hints; else ``agent``. An evaluator
  error WAA swallows (``An unexpected error occurred``, then ``Result: 0.00``) is a score like
  any other (SPEC §7.1). The inputs are fields of their own: ``during_evaluation`` (the task's
  ``Running evaluator(s)...`` had been logged when it ended: for a raised task, it raised out of
  the evaluator; OSWorld logs no such line), ``vm_unreachable``, ``infra_hints`` (the task's
  ``InfraHint`` lines and ``VM did not become ready`` records), ``max_steps_reached``.
  ``max_steps`` is kept from the last ``Args`` line, across runs of a file. A raised task's
  ``vm_unreachable`` also means the guest server is not answering (SPEC §7.1: ``waa_ready``
  false) — the reducer's call; the parser emits no ``ServerReady`` for it.
* **Run end** (``Average score: x`` / ``No examples finished.``): a started task with neither
  result nor exception gets **no** event (it did not finish, and WAA itself does not count
  it); the run is over, so the next ``Worker`` line starts a new run and task ids may repeat.
* **Scores.** ``Result`` and ``Average score`` values that do not parse as a finite float
  become ``None``; finite values outside [0, 1] are kept. Both count a ``parse_error``. So does
  a ``Worker`` task list that does not end in ``]`` (e.g. truncated as overlong); a tuple cut
  inside its id still counts as a task (its id cut like everywhere else).
* ``DONE``/``FAIL``/``WAIT`` actions are ordinary ``StepStarted`` events: the agent's verdict is
  not the evaluator's, only ``Result``/``Exception`` end a task.
* **Phases.** dockur/windows lines map to ``model.PHASES`` through ``waalog.PHASE_PATTERNS``
  (after an optional ``❯`` bullet; ``Windows started succesfully`` — dockur's spelling — is
  ``oobe``); ``PhaseSeen`` is emitted only when the phase changes.
* ``Task N/M`` (simple format) emits ``TasksCounted(completed=N-1, total=M)``; ``N`` of 0 or
  above ``M`` counts a parse error (the event is still emitted, with ``completed`` clamped).
* **Resume points** (cluster mode's failover, SPEC §10). At the start of every record read
  while the parser is *between tasks* — no worker has a current task or a pending
  ``[Domain]``, no raised task is held, no ``Left tasks:`` block is open — everything the
  bytes before it can produce has been emitted, and what the parser must remember about them
  is small: :meth:`LogParser.resume_point` gives that record's offset and that state as plain
  JSON-able data (the last such record seen), and :meth:`LogParser.resume` makes a parser
  that continues at that offset as if it had read every byte before it (the same events,
  offsets in the file's coordinates). Logs in the simple format have no records: no points.
* Not supported: a record torn in two by another writer (block-buffered stdout with tqdm on
  stderr cutting into it; WAA's StreamHandler flushes after every record, so this needs a
  ``print`` longer than the buffer): the torn record is lost.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Final

from trio_sse import waalog
from trio_sse.model import PHASES

__all__ = [
    "FAILURE_KINDS",
    "Evaluating",
    "InfraHint",
    "InstructionSeen",
    "Interrupted",
    "LogParser",
    "ParsedEvent",
    "ParserStatistics",
    "PhaseSeen",
    "RateLimited",
    "RunArgs",
    "RunFinished",
    "RunStarted",
    "ServerReady",
    "StepStarted",
    "TaskFinished",
    "TaskStarted",
    "TasksCounted",
]

FAILURE_KINDS: Final = ("agent", "infra", "evaluator", "max_steps")


@dataclass(frozen=True, slots=True)
class RunStarted:
    """``Worker N is doing tasks: [...]`` (or ``Left tasks:`` when no Worker line was seen).

    ``same_run``: True when this only updates ``total_tasks`` of the current run — another
    worker's ``Worker`` line in the same stream; the run's results stay. ``worker_id``: WAA's
    N; ``tasks``: that Worker line's ``(domain, task_id)`` list, in order, without repeats;
    ``domains``: ``(domain, number of tasks)`` in order — of ``tasks``, or the ``Left tasks``
    block's own counts."""

    total_tasks: int | None
    offset: int
    same_run: bool = False
    at: str | None = None
    worker: str | None = None
    worker_id: int | None = None
    tasks: tuple[tuple[str, str], ...] = ()
    domains: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class RunArgs:
    """``Args: Namespace(...)``: the run's step budget, model and agent when the line has them."""

    max_steps: int | None
    model: str | None
    agent: str | None
    raw: str
    offset: int
    at: str | None = None
    worker: str | None = None


@dataclass(frozen=True, slots=True)
class TaskStarted:
    """``[Example ID]: id`` (domain from the preceding ``[Domain]:``), or simple-format
    ``Running task: X`` / ``Processing task: X`` (domain None)."""

    task_id: str
    domain: str | None
    offset: int
    at: str | None = None
    worker: str | None = None


@dataclass(frozen=True, slots=True)
class InstructionSeen:
    """``[Instruction]: text`` of the worker's current task (``task_id`` None if none started)."""

    task_id: str | None
    instruction: str
    offset: int
    at: str | None = None
    worker: str | None = None


@dataclass(frozen=True, slots=True)
class StepStarted:
    """``Step N: action`` (WAA) or ``Step N`` (simple format). ``action``: first line only."""

    step: int
    action: str | None
    offset: int
    at: str | None = None
    worker: str | None = None
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class Evaluating:
    """``Running evaluator(s)...``: the worker's current task is being evaluated."""

    task_id: str | None
    offset: int
    at: str | None = None
    worker: str | None = None


@dataclass(frozen=True, slots=True)
class InfraHint:
    """The guest server failed an action (HTTP 5xx) or could not be reached during a step."""

    message: str
    offset: int
    at: str | None = None
    worker: str | None = None
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class RateLimited:
    """The model API said 429 (``retry`` False) or its client is retrying (``retry`` True)."""

    retry: bool
    message: str
    offset: int
    at: str | None = None
    worker: str | None = None


@dataclass(frozen=True, slots=True)
class TaskFinished:
    """A task's end: from ``Result: s`` + ``Finished d/id``, ``Result`` alone (OSWorld), or
    ``Exception in d/id: msg`` (score None, error = msg). Emitted exactly once per task start.

    ``at``: the ``asctime`` of the record that ended it (Finished / Result / Exception);
    ``started_at``: its ``[Example ID]``'s. ``failure_kind`` and the four fields after it are
    explained in the module docstring."""

    task_id: str
    domain: str | None
    score: float | None
    error: str | None
    steps: int | None
    offset: int
    at: str | None = None
    worker: str | None = None
    started_at: str | None = None
    instruction: str | None = None
    failure_kind: str = "agent"
    during_evaluation: bool = False
    vm_unreachable: bool = False
    infra_hints: int = 0
    max_steps_reached: bool = False


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
    at: str | None = None
    worker: str | None = None


@dataclass(frozen=True, slots=True)
class ServerReady:
    """``Response from server: {... 'Service is operational' ...}`` / ``VM is up and ready.``
    (ready) or ``Failed to get hello: ...`` / ``VM not ready yet...`` / ``VM did not become
    ready after N attempts.`` (not ready)."""

    ready: bool
    message: str
    offset: int
    at: str | None = None
    worker: str | None = None


@dataclass(frozen=True, slots=True)
class PhaseSeen:
    """A dockur/WAA container line that tells the VM phase (one of ``model.PHASES``)."""

    phase: str
    offset: int
    at: str | None = None
    worker: str | None = None


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The benchmark was stopped by a signal (``Interrupted by 2, shutting down``)."""

    signal: int
    offset: int
    at: str | None = None
    worker: str | None = None


ParsedEvent = (
    RunStarted
    | RunArgs
    | TaskStarted
    | InstructionSeen
    | StepStarted
    | Evaluating
    | InfraHint
    | RateLimited
    | TaskFinished
    | TasksCounted
    | RunFinished
    | ServerReady
    | PhaseSeen
    | Interrupted
)


@dataclass(frozen=True, slots=True)
class ParserStatistics:
    """What a parser has consumed so far (for ``/metrics`` and tests)."""

    bytes: int
    lines: int
    overlong_lines: int
    parse_errors: int


def _text(raw: bytes) -> str:
    # Only captured fields are decoded; "replace" so junk bytes never raise (SPEC §7).
    return raw.decode("utf-8", "replace").strip()


_BULLET: Final = waalog.BULLET.encode()
_TRACEBACK: Final = waalog.TRACEBACK_HEADER.encode()
_ID_MAX: Final = waalog.TASK_ID_MAX_BYTES
_NL: Final = b"\n"
_CR: Final = b"\r"
_ESC: Final = b"\x1b"
_NUL: Final = b"\x00"
_MAIN: Final = b"MainProcess"
_VERDICTS: Final = frozenset({"DONE", "FAIL"})
_ISO_RE: Final = re.compile(rb"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:[,.](\d{3}))?")
_ENV_TOKEN_RE: Final = re.compile(r"Env ?(\d{1,4})")
_UNSET: Final = object()


class _Task:
    """A task between its ``[Example ID]`` and its end (mutable, parser-private)."""

    __slots__ = (
        "cut", "domain", "done", "evaluating", "has_result", "hints", "instruction", "last_action",
        "result_at", "rid", "score", "started_at", "steps", "tagged", "task_id", "worker",
    )  # fmt: skip

    def __init__(self, rid: bytes, cut: bool, domain: str | None, worker: str | None, at: str | None) -> None:
        self.rid = rid  # the id's bytes (cut to TASK_ID_MAX_BYTES)
        self.cut = cut  # the id may have been cut by the line bound
        self.task_id = rid.decode("utf-8", "replace")
        self.domain = domain
        self.worker = worker
        self.started_at = at
        self.tagged = False  # started by an OSWorld [Env N][Example ID]: no Finished will come
        self.instruction: str | None = None
        self.steps: int | None = None
        self.last_action: str | None = None
        self.done = False  # the agent said DONE/FAIL ("The episode is done.")
        self.evaluating = False
        self.hints = 0
        self.has_result = False
        self.score: float | None = None
        self.result_at: str | None = None


class _Worker:
    """One writer's task state (WAA: the file's only one; OSWorld: one per env)."""

    __slots__ = ("cur", "pending_domain")

    def __init__(self) -> None:
        self.cur: _Task | None = None
        self.pending_domain: str | None = None


class _Held:
    """A raised task whose TaskFinished waits for its traceback (see the module docstring)."""

    __slots__ = ("event", "in_traceback", "proc", "tb_record", "vm")

    def __init__(self, event: TaskFinished, proc: bytes | None) -> None:
        self.event = event
        self.proc = proc  # the process that logged the Exception record
        self.tb_record = False  # its traceback record has been seen
        self.in_traceback = False  # past a "Traceback (most recent call last):" line
        self.vm = False


class LogParser:
    """Incremental parser; one per log file generation (see the module docstring)."""

    def __init__(self, *, max_line_bytes: int = 64 * 1024) -> None:
        if not isinstance(max_line_bytes, int) or max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be a positive integer, got {max_line_bytes!r}")
        self._max = max_line_bytes
        # Splitting state: the raw bytes of the unfinished segment (never more than _max),
        # where it starts, and whether we are dropping the rest of an overlong one.
        self._buf = bytearray()
        self._seg_start = 0
        self._discarding = False
        self._closed = False
        self._ends_open = False  # the last byte fed was not "\n"
        self._visit_all = False  # tests: visit every line (the reference for the fast path)
        # Statistics.
        self._nbytes = 0
        self._nlines = 0
        self._overlong = 0
        self._errors = 0
        # The record being parsed: its prefix match (None for a plain line), its env tag,
        # whether its segment was cut at the line bound.
        self._pm: re.Match[bytes] | None = None
        self._tag: str | None = None
        self._trunc = False
        # Grammar state.
        self._out: list[ParsedEvent] = []
        self._waa = False  # a WAA prefix was seen: plain lines are continuations
        self._left: int | None = None  # the total of a held "Left tasks:" block
        self._left_domains: list[tuple[str, int]] = []
        self._left_at: str | None = None
        self._left_worker: str | None = None
        self._run_active = False
        self._workers: set[bytes] = set()  # WAA "Worker N" ids of the current run
        self._run_tasks: set[tuple[bytes, bytes]] = set()
        self._finished: set[str] = set()  # task ids reported in this run
        self._ws: dict[str | None, _Worker] = {}
        self._proc_worker: dict[bytes, str | None] = {}
        self._max_steps: int | None = None
        self._held: _Held | None = None
        self._scan = False  # reading a held task's continuation/traceback lines
        self._last_phase: str | None = None
        # Resume points (see the module docstring): the newest one, and copies of the big
        # sets as of their last change (they only grow, or are replaced by ``_reset_run``:
        # their identity and size tell whether the copy is current).
        self._base = 0  # the offset this parser started at (``resume``)
        self._point: tuple[int, dict[str, Any]] | None = None
        self.points = 0  # resume points seen (a counter callers compare)
        self._copies: dict[str, tuple[set[Any], int, list[Any]]] = {}

    # ------------------------------------------------------------------ public API

    @property
    def statistics(self) -> ParserStatistics:
        return ParserStatistics(
            bytes=self._nbytes - self._base,
            lines=self._nlines,
            overlong_lines=self._overlong,
            parse_errors=self._errors,
        )

    def feed(self, data: bytes) -> list[ParsedEvent]:
        """Consume ``data`` (any chunk of the log) and return the events it completed."""
        if self._closed:
            raise RuntimeError("LogParser.feed() called after close()")
        data = bytes(data)
        out: list[ParsedEvent] = []
        if not data:
            return out
        self._out = out
        start = self._nbytes
        self._nbytes += len(data)
        self._nlines += data.count(_NL)
        self._ends_open = data[-1:] != _NL
        cut = max(data.rfind(_NL), data.rfind(_CR))
        if cut < 0:  # still inside one segment
            self._stash(data)
            return out
        i = 0
        if self._buf or self._discarding:
            # Finish the segment the previous chunks began.
            nl, cr = data.find(_NL), data.find(_CR)
            j = nl if cr < 0 else cr if nl < 0 else min(nl, cr)
            self._stash(data[:j])
            self._end_partial()
            i = j + 1
        if i <= cut:
            self._segments(data[i:cut], start + i)
        self._seg_start = start + cut + 1
        if cut + 1 < len(data):
            self._stash(data[cut + 1 :])
        return out

    def close(self) -> list[ParsedEvent]:
        """End of input: parse an unterminated last line and emit what is still pending (a
        held ``Left tasks:`` total, a raised task waiting for its traceback, a task's
        ``Result`` without ``Finished``). Idempotent."""
        out: list[ParsedEvent] = []
        if self._closed:
            return out
        self._closed = True
        self._out = out
        if self._ends_open:
            self._nlines += 1
        if self._buf or self._discarding:
            self._end_partial()
        self._pm = None
        self._tag = None
        if self._held is not None:
            self._settle()
        self._flush_left(self._nbytes)
        self._flush_results(self._nbytes)
        return out

    # ------------------------------------------------------------------ resume points

    def resume_point(self) -> tuple[int, dict[str, Any]] | None:
        """The newest resume point: (offset, state), or None before the first. ``state`` is
        JSON-able (str, int, bool, None, lists, dicts) for :meth:`resume`."""
        return self._point

    def resume(self, state: Mapping[str, Any], offset: int) -> LogParser:
        """This (new) parser continues at ``offset`` of a file as one that read the bytes
        before it and stood at a resume point with ``state`` there. Raises ValueError for a
        state this module did not make. Returns self."""
        if self._nbytes or self._closed:
            raise RuntimeError("LogParser.resume() needs a new parser")
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an integer >= 0, got {offset!r}")
        try:
            waa, run_active, max_steps, phase = state["waa"], state["run_active"], state["max_steps"], state["phase"]
            workers = [_raw(w) for w in state["workers"]]
            run_tasks = [(_raw(d), _raw(t)) for d, t in state["run_tasks"]]
            finished = list(state["finished"])
            procs = {_raw(p): w for p, w in state["procs"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a parser resume state: {exc!r}") from None
        if not (
            isinstance(waa, bool)
            and isinstance(run_active, bool)
            and (max_steps is None or type(max_steps) is int)
            and (phase is None or phase in PHASES)
            and all(isinstance(t, str) for t in finished)
            and all(w is None or isinstance(w, str) for w in procs.values())
        ):
            raise ValueError("not a parser resume state: a field has the wrong type")
        self._waa, self._run_active, self._max_steps, self._last_phase = waa, run_active, max_steps, phase
        self._workers, self._run_tasks, self._finished = set(workers), set(run_tasks), set(finished)
        self._proc_worker = procs
        self._base = self._nbytes = self._seg_start = offset
        return self

    def _mark_point(self, off: int) -> None:
        def copy(name: str, items: set[Any], encode: Callable[[Any], Any]) -> list[Any]:
            had = self._copies.get(name)
            if had is None or had[0] is not items or had[1] != len(items):
                had = self._copies[name] = (items, len(items), sorted(encode(i) for i in items))
            return had[2]

        self.points += 1
        self._point = (off, {
            "waa": self._waa,
            "run_active": self._run_active,
            "max_steps": self._max_steps,
            "phase": self._last_phase,
            "workers": copy("workers", self._workers, _str),
            "run_tasks": copy("run_tasks", self._run_tasks, lambda dt: [_str(dt[0]), _str(dt[1])]),
            "finished": copy("finished", self._finished, str),
            "procs": {_str(p): w for p, w in self._proc_worker.items()},
        })  # fmt: skip

    # ------------------------------------------------------------------ bytes → segments

    def _stash(self, piece: bytes) -> None:
        """Add bytes of the unfinished segment, keeping at most ``max_line_bytes``."""
        if self._discarding or not piece:
            return
        room = self._max - len(self._buf)
        if len(piece) > room:
            self._buf += piece[:room]
            self._discarding = True
            self._overlong += 1
        else:
            self._buf += piece

    def _end_partial(self) -> None:
        raw = bytes(self._buf)
        trunc = self._discarding
        self._buf.clear()
        self._discarding = False
        seg = self._clean(raw)
        if seg:
            self._line(seg, self._seg_start, trunc)

    @staticmethod
    def _clean(raw: bytes) -> bytes:
        if _ESC in raw:
            raw = waalog.ANSI_RE.sub(b"", raw)
        if _NUL in raw:
            raw = raw.replace(_NUL, b"")
        return raw

    def _segments(self, body: bytes, pos: int) -> None:
        """Parse complete segments: ``body`` is them joined by terminators (the last one's
        terminator excluded) and starts at offset ``pos``."""
        # "\r" and "\n" both end a segment; replacing one byte by one keeps offsets.
        norm = body.replace(_CR, _NL) if _CR in body else body
        # Cleaning the whole body at once is much cheaper than per segment, and keeps every
        # "\n" (waalog.ANSI_RE can never match one), so line k of the clean text is line k of
        # the raw text.
        clean = norm
        if _ESC in clean:
            clean = waalog.ANSI_RE.sub(b"", clean)
        if _NUL in clean:
            clean = clean.replace(_NUL, b"")
        raw_lens: list[int] | None = None
        if len(norm) > self._max or clean is not norm or self._visit_all:
            raw_lens = list(map(len, norm.split(_NL)))
            if self._visit_all or max(raw_lens) > self._max:
                self._segments_slowly(norm, clean, raw_lens, pos)
                return
        # Raw offset of clean line number k: raw_before[k] + k (the lengths of the raw lines
        # before it, plus their terminators). k is counted as we go (lines come in order).
        raw_before = None if raw_lens is None or clean is norm else list(accumulate(raw_lens, initial=0))
        k = 0
        kpos = 0  # clean position of the start of line k
        c = clean
        n = len(c)
        i = 0  # always the start of a line not yet looked at
        next_bar = -1  # the next tqdm bar marker ("%|", "it [") at or after i (cached search)
        line = self._line
        while i <= n:
            if self._left is not None or self._scan:
                ls = i  # every line matters now
            else:
                first, later = (_CAND_FIRST_WAA, _CAND_LATER_WAA) if self._waa else (_CAND_FIRST, _CAND_LATER)
                if first.match(c, i) is not None:
                    ls = i
                else:
                    m = later.search(c, i)
                    ls = m.start() + 1 if m is not None else n + 1
                    if next_bar < i:
                        b1, b2 = c.find(b"%|", i), c.find(b"it [", i)
                        next_bar = min(b1 if b1 >= 0 else n + 1, b2 if b2 >= 0 else n + 1)
                    if next_bar < ls:
                        ls = c.rfind(_NL, i, next_bar) + 1 or i
                    if ls > n:
                        return
            j = c.find(_NL, ls)
            if j < 0:
                j = n
            if j > ls:
                if raw_before is None:
                    off = pos + ls
                else:
                    k += c.count(_NL, kpos, ls)
                    kpos = ls
                    off = pos + raw_before[k] + k
                line(c[ls:j], off, False)
            i = j + 1

    def _segments_slowly(self, norm: bytes, clean: bytes, raw_lens: list[int], pos: int) -> None:
        """Every segment through ``_line`` (overlong segments cut *raw*, then cleaned, exactly
        as the chunked path does)."""
        mx = self._max
        segs = norm.split(_NL) if clean is norm else clean.split(_NL)
        raw_segs = norm.split(_NL) if any(n > mx for n in raw_lens) else None
        for k, (n, seg) in enumerate(zip(raw_lens, segs, strict=True)):
            trunc = n > mx
            if trunc:
                self._overlong += 1
                assert raw_segs is not None
                seg = self._clean(raw_segs[k][:mx])
            if seg:
                self._line(seg, pos, trunc)
            pos += n + 1

    # ------------------------------------------------------------------ segments → events

    def _line(self, seg: bytes, off: int, trunc: bool) -> None:
        self._trunc = trunc
        if seg[:1] == b"[":
            m = waalog.PREFIX_RE.match(seg)
            if m is not None:
                self._record(seg, m, off)
                return
        # A plain line: continuation, print(), tqdm bar, container line, or simple format.
        self._pm = None
        self._tag = None
        if self._scan:
            self._scan_line(seg)
        s = seg.lstrip()
        if not s:
            return
        if b"%|" in s or b"it [" in s:  # cheap test before the regex: most lines are not bars
            bar = waalog.TQDM_RE.match(s)
            if bar is not None:
                # The next log record is often glued right after the last redraw.
                rest = s[bar.end() :]
                if rest:
                    self._line(rest, off, trunc)
                return
        if s.startswith(_BULLET):
            s = s[len(_BULLET) :]
            if not s:
                return
        if self._left is not None:
            mm = waalog.LEFT_TASKS_ITEM_RE.match(s)
            if mm is not None:
                self._left += int(mm[2])
                self._left_domains.append((_text(mm[1]), int(mm[2])))
                return
        rules = (_LINE_INDEX if self._waa else _SIMPLE_INDEX).get(s[0])
        if rules is not None:
            for lit, rx, handler in rules:
                if s.startswith(lit):
                    mm = rx.match(s)
                    if mm is not None:
                        handler(self, mm, off)
                        return

    def _record(self, seg: bytes, m: re.Match[bytes], off: int) -> None:
        """A ``[asctime LEVEL module/lineno-process] message`` line."""
        if self._held is None and self._left is None:
            for w in self._ws.values():
                if w.cur is not None or w.pending_domain is not None:
                    break
            else:  # no task open: a resume point
                self._mark_point(off)
        self._waa = True
        pos = m.end()
        held = self._held
        if held is not None:
            if not held.tb_record and m[5] == held.proc and seg.startswith(_TRACEBACK, pos):
                held.tb_record = True
                held.in_traceback = True
                return  # the held task's traceback: read its lines (_scan_line)
            self._settle()
        self._pm = m
        self._tag = None
        if self._left is not None and not seg.startswith(b"Worker ", pos):
            # A new record that is not the Worker line: the Left tasks block is over.
            self._flush_left(off)
        if pos < len(seg) and seg[pos] == 0x5B:  # "[": an OSWorld env tag before [Domain] etc.?
            t = waalog.ENV_TAG_RE.match(seg, pos)
            if t is not None:
                self._tag = tag = _text(t[1])
                self._proc_worker[m[5]] = tag
                pos = t.end()
        if pos < len(seg):
            rules = _WAA_INDEX.get(seg[pos])
            if rules is not None:
                for lit, rx, handler in rules:
                    if seg.startswith(lit, pos):
                        mm = rx.match(seg, pos)
                        if mm is not None:
                            handler(self, mm, off)
                            return

    def _scan_line(self, seg: bytes) -> None:
        """A continuation line while a raised task is held: look for the guest being
        unreachable, and for the traceback's root-cause line (see the module docstring)."""
        held = self._held
        assert held is not None
        if seg[:1] in b" \t":  # a frame or source line of the traceback
            return
        s = seg.rstrip()
        if not s:
            return
        if s.startswith(_TRACEBACK):
            held.in_traceback = True
            return
        if waalog.VM_UNREACHABLE_RE.search(s) is not None and waalog.VM_EXCLUDE_RE.search(s) is None:
            held.vm = True
            self._settle()
        elif held.in_traceback:
            self._settle()

    # ------------------------------------------------------------------ helpers

    def _at(self) -> str | None:
        """The current record's ``asctime`` as ISO-8601 (None for plain lines)."""
        pm = self._pm
        if pm is None:
            return None
        t = _ISO_RE.match(pm[1])
        if t is None:
            return None
        return f"{t[1].decode()}T{t[2].decode()}.{(t[3] or b'000').decode()}"

    def _worker(self) -> str | None:
        """Who wrote the current record (see the module docstring)."""
        if self._tag is not None:
            return self._tag
        pm = self._pm
        if pm is None:
            return None
        proc = pm[5]
        w = self._proc_worker.get(proc, _UNSET)
        if w is _UNSET:
            w = None if proc == _MAIN else _text(proc)
            self._proc_worker[proc] = w
        return w  # type: ignore[return-value]

    def _state(self, worker: str | None) -> _Worker:
        w = self._ws.get(worker)
        if w is None:
            w = self._ws[worker] = _Worker()
        return w

    def _task_id(self, m: re.Match[bytes], group: int) -> tuple[bytes, bool]:
        """A task id's bytes, cut to TASK_ID_MAX_BYTES, and whether the line bound may have
        cut it (the line was cut and the id runs to its end)."""
        return m[group][:_ID_MAX], self._trunc and m.end(group) == len(m.string)

    @staticmethod
    def _same_task(cur: _Task, rid: bytes, cut: bool) -> bool:
        return cur.rid == rid or (cut and cur.rid.startswith(rid)) or (cur.cut and rid.startswith(cur.rid))

    def _number(self, raw: bytes | None) -> float | None:
        """A score or average: a finite float or None; anything odd counts a parse error."""
        try:
            value = float(raw) if raw else math.nan
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            self._errors += 1
            return None
        if not 0.0 <= value <= 1.0:
            self._errors += 1
        return value

    def _emit(self, ev: ParsedEvent) -> None:
        if self._held is not None:  # nothing overtakes a held task (offsets stay in order)
            self._settle()
        self._out.append(ev)

    def _settle(self) -> None:
        """Emit the held raised task, its failure kind decided on what was read."""
        held = self._held
        assert held is not None
        self._held = None
        self._scan = False
        ev = held.event
        if held.vm:
            ev = _replace_kind(ev, "infra", vm_unreachable=True)
        self._out.append(ev)

    def _finish_scored(self, w: _Worker, off: int, at: str | None) -> None:
        """The worker's current task ended with a Result (or a Finished): report it."""
        cur = w.cur
        assert cur is not None
        w.cur = None
        if cur.task_id in self._finished:
            return
        self._finished.add(cur.task_id)
        ms = self._max_steps
        reached = (
            ms is not None
            and cur.steps is not None
            and cur.steps >= ms
            and not cur.done
            and cur.last_action not in _VERDICTS
        )
        kind = "max_steps" if reached else "infra" if cur.hints else "agent"
        self._emit(
            TaskFinished(
                cur.task_id, cur.domain, cur.score, None, cur.steps, off, at, cur.worker, cur.started_at,
                cur.instruction, kind, cur.evaluating, False, cur.hints, reached,
            )  # fmt: skip
        )

    def _flush_result(self, w: _Worker, off: int) -> None:
        """The worker's task has a Result but no Finished yet, and something else began."""
        cur = w.cur
        if cur is not None and cur.has_result:
            self._finish_scored(w, off, cur.result_at)

    def _flush_results(self, off: int) -> None:
        for w in list(self._ws.values()):
            self._flush_result(w, off)

    def _flush_left(self, off: int) -> None:
        """The held ``Left tasks:`` block ended at the record at ``off`` (not a Worker line)."""
        total = self._left
        if total is not None:
            self._left = None
            self._new_run()
            self._emit(RunStarted(total, off, False, self._left_at, self._left_worker, None, (), tuple(self._left_domains)))

    def _new_run(self) -> None:
        self._run_active = True
        self._reset_run()

    def _end_run(self) -> None:
        self._run_active = False
        self._reset_run()

    def _reset_run(self) -> None:
        self._workers = set()
        self._run_tasks = set()
        self._finished = set()
        self._ws = {}
        self._proc_worker = {}

    # ------------------------------------------------------------------ handlers (grammar)

    def _on_worker(self, m: re.Match[bytes], off: int) -> None:
        worker_id, listing = m[1], m[2]
        found = list(waalog.WORKER_TASK_RE.finditer(listing))
        ordered = dict.fromkeys((f[2], f[4][:_ID_MAX]) for f in found)
        listing = listing.rstrip()
        truncated = not listing.endswith(b"]")
        if truncated:
            # A list cut at the line bound inside its last tuple (a very long id): that task
            # counts too, with its id cut like everywhere else.
            tail = waalog.WORKER_TASK_TAIL_RE.search(listing, found[-1].end() if found else 0)
            if tail is not None:
                ordered[(tail[2], tail[4][:_ID_MAX])] = None
        unreadable = not ordered and listing != b"[]"
        if truncated or unreadable:
            self._errors += 1
        self._left = None  # the Worker line is the better total (see module docstring)
        self._flush_results(off)
        if self._run_active and worker_id not in self._workers:
            same_run = True
        else:
            self._new_run()
            same_run = False
        self._workers.add(worker_id)
        self._run_tasks.update(ordered)
        total = None if unreadable and not self._run_tasks else len(self._run_tasks)
        tasks = tuple((_text(d), t.decode("utf-8", "replace")) for d, t in ordered)
        counts: dict[str, int] = {}
        for d, _ in tasks:
            counts[d] = counts.get(d, 0) + 1
        self._emit(
            RunStarted(total, off, same_run, self._at(), self._worker(), int(worker_id), tasks, tuple(counts.items()))
        )

    def _on_left_tasks(self, m: re.Match[bytes], off: int) -> None:
        self._flush_results(off)
        self._left = 0
        self._left_domains = []
        self._left_at = self._at()
        self._left_worker = self._worker()

    def _on_args(self, m: re.Match[bytes], off: int) -> None:
        ns = m[1]
        steps = waalog.ARGS_MAX_STEPS_RE.search(ns)
        model = waalog.ARGS_MODEL_RE.search(ns)
        agent = waalog.ARGS_AGENT_RE.search(ns)
        if steps is not None:
            self._max_steps = int(steps[1])
        self._emit(
            RunArgs(
                int(steps[1]) if steps is not None else None,
                model[2].decode("utf-8", "replace") if model is not None else None,
                agent[2].decode("utf-8", "replace") if agent is not None else None,
                _text(ns), off, self._at(), self._worker(),
            )  # fmt: skip
        )

    def _on_domain(self, m: re.Match[bytes], off: int) -> None:
        self._state(self._worker()).pending_domain = _text(m[1])

    def _on_example(self, m: re.Match[bytes], off: int) -> None:
        worker = self._worker()
        w = self._state(worker)
        self._flush_result(w, off)
        rid, cut = self._task_id(m, 1)
        domain, w.pending_domain = w.pending_domain, None
        at = self._at()
        cur = w.cur = _Task(rid, cut, domain, worker, at)
        cur.tagged = self._tag is not None
        self._emit(TaskStarted(cur.task_id, domain, off, at, worker))

    def _on_instruction(self, m: re.Match[bytes], off: int) -> None:
        worker = self._worker()
        cur = self._state(worker).cur
        text = _text(m[1])
        if cur is not None:
            cur.instruction = text
        self._emit(InstructionSeen(cur.task_id if cur is not None else None, text, off, self._at(), worker))

    def _on_step(self, m: re.Match[bytes], off: int) -> None:
        n = int(m[1])
        worker = self._worker()
        cur = self._state(worker).cur
        action = _text(m[2]) if m[2] else ""
        task_id = None
        if cur is not None:
            if cur.steps is None or n > cur.steps:
                cur.steps = n
            cur.last_action = action
            task_id = cur.task_id
        self._emit(StepStarted(n, action or None, off, self._at(), worker, task_id))

    def _on_episode_done(self, m: re.Match[bytes], off: int) -> None:
        cur = self._state(self._worker()).cur
        if cur is not None:
            cur.done = True

    def _on_evaluating(self, m: re.Match[bytes], off: int) -> None:
        worker = self._worker()
        cur = self._state(worker).cur
        if cur is not None:
            cur.evaluating = True
        self._emit(Evaluating(cur.task_id if cur is not None else None, off, self._at(), worker))

    def _on_infra_hint(self, m: re.Match[bytes], off: int) -> None:
        worker = self._worker()
        cur = self._state(worker).cur
        if cur is not None:
            cur.hints += 1
        self._emit(InfraHint(_text(m[0]), off, self._at(), worker, cur.task_id if cur is not None else None))

    def _on_result(self, m: re.Match[bytes], off: int) -> None:
        score = self._number(m[1])
        worker = self._worker()
        w = self._state(worker)
        cur = w.cur
        if cur is not None:
            cur.has_result = True
            cur.score = score
            cur.result_at = self._at()
            if cur.tagged:  # OSWorld writes no Finished line: the Result ends the task
                self._finish_scored(w, off, cur.result_at)

    def _on_finished(self, m: re.Match[bytes], off: int) -> None:
        domain = _text(m[1])
        rid, cut = self._task_id(m, 2)
        worker = self._worker()
        w = self._state(worker)
        cur = w.cur
        if cur is not None and self._same_task(cur, rid, cut):
            if not cur.has_result and m[3]:
                cur.score = self._number(m[3])
            cur.domain = domain
            self._finish_scored(w, off, self._at())
        else:
            task_id = rid.decode("utf-8", "replace")
            if task_id not in self._finished:
                # Not the current task (the log began mid-task, or workers interleave): it did
                # finish, so report it, with the score only the line itself can give.
                self._finished.add(task_id)
                score = self._number(m[3]) if m[3] else None
                self._emit(TaskFinished(task_id, domain, score, None, None, off, self._at(), worker))

    def _on_exception(self, m: re.Match[bytes], off: int) -> None:
        env, domain = m[1], _text(m[2])
        rid, cut = self._task_id(m, 3)
        raw_msg = m[4] or b""
        error = _text(raw_msg) or "exception without a message"
        pm = self._pm
        proc = pm[5] if pm is not None else None
        if env is not None:
            token = _text(env)
            tm = _ENV_TOKEN_RE.fullmatch(token)
            tag = f"Env {tm[1]}" if tm is not None else token
            if proc is not None:
                self._proc_worker[proc] = tag
            self._tag = tag
        worker = self._worker()
        w = self._state(worker)
        cur = w.cur
        task_id = rid.decode("utf-8", "replace")
        started_at = instruction = None
        steps = None
        evaluating = False
        hints = 0
        if cur is not None and self._same_task(cur, rid, cut):
            task_id, steps, started_at, instruction = cur.task_id, cur.steps, cur.started_at, cur.instruction
            evaluating, hints = cur.evaluating, cur.hints
            w.cur = None
        elif cur is not None:
            self._flush_result(w, off)
        if task_id in self._finished:
            return
        self._finished.add(task_id)
        vm = waalog.VM_UNREACHABLE_RE.search(raw_msg) is not None and waalog.VM_EXCLUDE_RE.search(raw_msg) is None
        kind = "infra" if vm else "evaluator" if evaluating else "infra" if hints else "agent"
        ev = TaskFinished(
            task_id, domain, None, error, steps, off, self._at(), worker, started_at, instruction, kind,
            evaluating, vm, hints, False,
        )  # fmt: skip
        if vm:
            self._emit(ev)  # nothing the traceback says can change the kind
        else:
            self._emit_held(ev, proc)

    def _emit_held(self, ev: TaskFinished, proc: bytes | None) -> None:
        if self._held is not None:
            self._settle()
        self._held = _Held(ev, proc)
        self._scan = True

    def _on_run_end(self, average: float | None, off: int) -> None:
        self._flush_results(off)
        self._end_run()
        self._emit(RunFinished(average, off, self._at(), self._worker()))

    def _on_average(self, m: re.Match[bytes], off: int) -> None:
        self._on_run_end(self._number(m[1]), off)

    def _on_no_examples(self, m: re.Match[bytes], off: int) -> None:
        self._on_run_end(None, off)

    def _on_response(self, m: re.Match[bytes], off: int) -> None:
        self._emit(ServerReady(waalog.OPERATIONAL in m[1], _text(m[1]), off, self._at(), self._worker()))

    def _on_failed_hello(self, m: re.Match[bytes], off: int) -> None:
        self._emit(ServerReady(False, _text(m[1]), off, self._at(), self._worker()))

    def _on_vm_up(self, m: re.Match[bytes], off: int) -> None:
        self._emit(ServerReady(True, _text(m[0]), off, self._at(), self._worker()))

    def _on_vm_not_ready(self, m: re.Match[bytes], off: int) -> None:
        worker = self._worker()
        if m[1] is not None:  # "did not become ready after N attempts": the reset gave up
            cur = self._state(worker).cur
            if cur is not None:
                cur.hints += 1
        self._emit(ServerReady(False, _text(m[0]), off, self._at(), worker))

    def _on_http_429(self, m: re.Match[bytes], off: int) -> None:
        self._emit(RateLimited(False, _text(m[0]), off, self._at(), self._worker()))

    def _on_retrying(self, m: re.Match[bytes], off: int) -> None:
        self._emit(RateLimited(True, _text(m[0]), off, self._at(), self._worker()))

    def _on_interrupted(self, m: re.Match[bytes], off: int) -> None:
        self._emit(Interrupted(int(m[1]), off, self._at(), self._worker()))

    def _on_phase(self, phase: str, off: int) -> None:
        if phase != self._last_phase:
            self._last_phase = phase
            self._emit(PhaseSeen(phase, off, self._at(), self._worker()))

    # simple format

    def _on_task_count(self, m: re.Match[bytes], off: int) -> None:
        n, total = int(m[1]), int(m[2])
        if n < 1 or n > total:
            self._errors += 1
        self._emit(TasksCounted(min(max(n - 1, 0), total), total, off))

    def _on_running(self, m: re.Match[bytes], off: int) -> None:
        rid, cut = self._task_id(m, 1)
        w = self._state(None)
        cur = w.cur = _Task(rid, cut, None, None, None)
        self._emit(TaskStarted(cur.task_id, None, off))


def _str(raw: bytes) -> str:
    """Bytes from the log as text that round-trips exactly (latin-1), for resume states."""
    return raw.decode("latin-1")


def _raw(text: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"expected text, got {type(text).__name__}")
    return text.encode("latin-1")


def _replace_kind(ev: TaskFinished, kind: str, *, vm_unreachable: bool) -> TaskFinished:
    return TaskFinished(
        ev.task_id, ev.domain, ev.score, ev.error, ev.steps, ev.offset, ev.at, ev.worker, ev.started_at,
        ev.instruction, kind, ev.during_evaluation, vm_unreachable, ev.infra_hints, ev.max_steps_reached,
    )  # fmt: skip


# ---------------------------------------------------------------------- the grammar, as data

_Handler = Callable[[LogParser, "re.Match[bytes]", int], None]
_Rule = tuple["re.Pattern[bytes]", _Handler]


def _phase_rule(phase: str) -> _Handler:
    assert phase in PHASES, phase

    def handler(parser: LogParser, m: re.Match[bytes], off: int) -> None:
        parser._on_phase(phase, off)

    return handler


# Messages after a WAA prefix. Order only matters between rules sharing a first byte.
WAA_MESSAGE_RULES: Final[tuple[_Rule, ...]] = (
    (waalog.STEP_RE, LogParser._on_step),
    (waalog.EXAMPLE_ID_RE, LogParser._on_example),
    (waalog.DOMAIN_RE, LogParser._on_domain),
    (waalog.INSTRUCTION_RE, LogParser._on_instruction),
    (waalog.RESULT_RE, LogParser._on_result),
    (waalog.EVALUATING_RE, LogParser._on_evaluating),
    (waalog.FINISHED_RE, LogParser._on_finished),
    (waalog.EXCEPTION_RE, LogParser._on_exception),
    (waalog.EPISODE_DONE_RE, LogParser._on_episode_done),
    (waalog.WORKER_RE, LogParser._on_worker),
    (waalog.LEFT_TASKS_RE, LogParser._on_left_tasks),
    (waalog.ARGS_RE, LogParser._on_args),
    (waalog.AVERAGE_RE, LogParser._on_average),
    (waalog.NO_EXAMPLES_RE, LogParser._on_no_examples),
    (waalog.VM_UP_RE, LogParser._on_vm_up),
    (waalog.VM_NOT_READY_RE, LogParser._on_vm_not_ready),
    (waalog.INFRA_HINT_RE, LogParser._on_infra_hint),
    (waalog.HTTP_429_RE, LogParser._on_http_429),
    (waalog.RETRYING_RE, LogParser._on_retrying),
    (waalog.RECEIVED_SIGNAL_RE, LogParser._on_interrupted),
)

# Lines that mean the same with or without a prefix: server readiness, container phases, and
# WAA's "Interrupted by N" print.
SERVER_RULES: Final[tuple[_Rule, ...]] = (
    (waalog.RESPONSE_RE, LogParser._on_response),
    (waalog.FAILED_HELLO_RE, LogParser._on_failed_hello),
    (waalog.INTERRUPTED_RE, LogParser._on_interrupted),
)
PHASE_RULES: Final[tuple[_Rule, ...]] = tuple((rx, _phase_rule(phase)) for phase, rx in waalog.PHASE_PATTERNS)

SIMPLE_RULES: Final[tuple[_Rule, ...]] = (
    (waalog.SIMPLE_TASK_RE, LogParser._on_task_count),
    (waalog.SIMPLE_RUNNING_RE, LogParser._on_running),
    (waalog.SIMPLE_STEP_RE, LogParser._on_step),
)

_DIGITS: Final = b"0123456789"


def _first_bytes(rx: re.Pattern[bytes]) -> bytes:
    """The bytes a match of ``rx`` can start with (the patterns all begin with a literal,
    an escaped literal, ``\\d`` or an alternation of literals)."""
    p = rx.pattern
    if p.startswith(rb"\d"):
        return _DIGITS
    if p.startswith(b"(?:"):
        return bytes(sorted({alt[:1][0] for alt in p[3 : p.index(b")")].split(b"|")}))
    if p.startswith(b"\\"):
        return p[1:2]
    assert p[:1].isalnum() or p[:1] in b"[", p
    return p[:1]


def _literal(rx: re.Pattern[bytes]) -> bytes:
    """The literal text every match of ``rx`` starts with (maybe empty): checked with
    ``startswith`` before the regex, which is several times cheaper on the many records (e.g.
    ``Reward: 0.00``) that share a first byte with some rule but match none."""
    p = rx.pattern
    out = bytearray()
    i = 0
    while i < len(p):
        c = p[i : i + 1]
        if c == b"\\":
            nxt = p[i + 1 : i + 2]
            if not nxt or nxt.isalnum():  # \d, \s, \b, ...: not a literal
                break
            out += nxt
            i += 2
            continue
        if c in b".^$*+?{}[]()|":
            break
        out += c
        i += 1
    if p[i : i + 1] in (b"*", b"?", b"{"):  # a quantifier: the last literal is not certain
        del out[-1:]
    return bytes(out)


_IndexedRule = tuple[bytes, "re.Pattern[bytes]", _Handler]


def _index(*tables: Iterable[_Rule]) -> dict[int, tuple[_IndexedRule, ...]]:
    index: dict[int, list[_IndexedRule]] = {}
    for table in tables:
        for rx, handler in table:
            for b in _first_bytes(rx):
                index.setdefault(b, []).append((_literal(rx), rx, handler))
    return {b: tuple(rules) for b, rules in index.items()}


_WAA_INDEX: Final = _index(WAA_MESSAGE_RULES, SERVER_RULES, PHASE_RULES)
_LINE_INDEX: Final = _index(SERVER_RULES, PHASE_RULES)
_SIMPLE_INDEX: Final = _index(SIMPLE_RULES, SERVER_RULES, PHASE_RULES)


def _candidates(index: dict[int, tuple[_IndexedRule, ...]]) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """Regexes finding the next (cleaned) line ``_line`` could act on outside a Left-tasks
    block or a held traceback: after blanks, a byte some plain-line rule starts with, the
    ``❯`` bullet's first byte, or ``[`` (a record prefix). ``_line`` ignores every other line
    (it strips blanks and dispatches on the first byte), so the lines skipped are lines it would
    ignore. The first form matches at a line start; the second finds the ``\\n`` before one
    (a literal first byte lets ``re`` scan fast)."""
    firsts = bytes(sorted({*index, _BULLET[0], ord("[")}))
    body = rb"[ \t\x0b\x0c]*[" + b"".join(b"\\x%02x" % c for c in firsts) + b"]"
    return re.compile(body), re.compile(b"\n" + body)


_CAND_FIRST_WAA, _CAND_LATER_WAA = _candidates(_LINE_INDEX)
_CAND_FIRST, _CAND_LATER = _candidates(_SIMPLE_INDEX)
