"""Pure, incremental benchmark-log parser: bytes chunks in, typed events out (SPEC §7).

Owns: turning the bytes of a benchmark log — Windows Agent Arena (WAA) records, the original
endpoint's simple format, dockur/windows container lines, tqdm redraws — into the typed
events below, whatever way the bytes are chunked. Must not: do I/O, log, read a clock, import
anything async, or know about runs' ids or the wire (the monitor does). The line formats
themselves live in :mod:`trio_sse.waalog`, shared with the simulator that writes them.

Usage::

    parser = LogParser()
    for chunk in chunks:
        events = parser.feed(chunk)   # any split: inside UTF-8, inside ANSI codes, inside \\r\\n
    events = parser.close()           # end of input: the last unterminated line, pending results

How bytes become lines
----------------------
* A line ends at ``\\n``. A ``\\r`` also ends a *segment*: tqdm redraws its bar with ``\\r`` and
  never a newline, so a physical line can hold many bars and then a real log record; each
  segment is parsed on its own, so a bar can neither hide the record after it nor pile up
  (``\\r\\n`` thus gives an empty segment, which is skipped). ``offset`` of an event is the
  byte offset (since construction) of the start of the segment that produced it.
* Segments are bounded: one longer than ``max_line_bytes`` keeps its first ``max_line_bytes``
  bytes, the rest up to the next ``\\n``/``\\r`` is dropped as it arrives (counted in
  ``overlong_lines``). A 100 MB line without a newline costs ``max_line_bytes`` of memory.
* ANSI escape sequences (CSI colours, OSC titles, lone ESC) and NUL bytes are removed; text is
  UTF-8 with invalid bytes replaced (only the captured fields are ever decoded).

How lines become events
-----------------------
The grammar is data: tables of ``(compiled regex, handler)`` at the end of this module, indexed
by the first byte a line can start with, so the usual line (an action, a traceback, a
``Reward:`` record) costs a dict lookup. Three tables:

* **WAA messages** — the text after a ``[ts LEVEL module/lineno-process]`` prefix. The first
  prefixed line switches the parser to WAA mode for good.
* **plain lines** — lines without a prefix: in WAA mode these are continuation lines of the
  previous record (multi-line actions, tracebacks), ``print()`` output and tqdm bars. Only
  the container phase lines and the server-readiness lines are looked for in them, never a
  task template: an agent's code may well contain ``# Step 2`` or ``Finished``.
* **simple format** — before any WAA prefix was seen, plain lines are also matched against
  the original endpoint's ``Task N/M``, ``Running task: X``, ``Processing task: X``,
  ``Step N`` (anchored at the line start, after blanks).

Decisions (SPEC §7 leaves them to us)
-------------------------------------
* **Run start.** ``Worker N is doing tasks: [...]`` gives ``RunStarted`` with the number of
  distinct ``(domain, task_id)`` tuples. WAA logs ``Left tasks:`` (a per-domain count, which
  in multi-worker runs counts *all* workers' tasks) just before it, so a ``Left tasks:`` block
  is held until its message ends, at the next prefixed record: if that is a ``Worker`` line,
  that line wins; otherwise ``RunStarted(total=sum of counts)`` is emitted with the offset of
  that record (at ``close``: the end-of-input offset), before the record's own events. Plain
  lines inside the block (``print``, tqdm, container lines) neither end nor break it.
  A ``Worker`` line of a worker not yet seen in the current, unfinished run (several workers'
  output in one stream) does not start a new run: it emits ``RunStarted(same_run=True)``
  whose ``total_tasks`` is the size of the union of all those workers' task lists. A
  ``Worker`` line after ``RunFinished``, or from a worker already seen, starts a new run.
* **Task results** — a ``TaskFinished`` at most once per task id per run, never for a task
  that neither produced a result nor raised (success is never assumed):
  ``Result: s`` is remembered for the current task (the last ``[Example ID]``);
  ``Finished d/id`` emits it (score from ``Result:``, else from a ``score=`` suffix some forks
  write, else None); ``Exception in d/id: msg`` emits at once with ``score=None``,
  ``error=msg`` (a later ``Finished`` for that task is ignored). A task that has a ``Result``
  but is followed by the next ``[Example ID]``, ``Left tasks:``/``Worker`` (a new run), the
  run end, or :meth:`LogParser.close` before its ``Finished`` is emitted then, with the
  offset of that line (``close``: the end-of-input offset) — the last task is never lost.
  ``steps`` is the highest ``Step n`` seen since the task's ``[Example ID]``.
* **Run end** (``Average score: x`` / ``No examples finished.``): a started task with neither
  result nor exception gets **no** event (it did not finish, and WAA itself does not count
  it); the run is over, so the next ``Worker`` line starts a new run and task ids may repeat.
* **Scores.** ``Result`` and ``Average score`` values that do not parse as a finite float
  become ``None``; finite values outside [0, 1] are kept. Both count a ``parse_error``. So does
  a ``Worker`` task list that does not end in ``]`` (e.g. truncated as overlong).
* ``DONE``/``FAIL``/``WAIT`` actions are ordinary ``StepStarted`` events: the agent's verdict is
  not the evaluator's, only ``Result``/``Exception`` end a task.
* **Phases.** dockur/windows lines map to ``model.PHASES`` through ``waalog.PHASE_PATTERNS``
  (after an optional ``❯`` bullet); ``PhaseSeen`` is emitted only when the phase changes, as a
  download prints hundreds of progress lines.
* ``Task N/M`` (simple format) emits ``TasksCounted(completed=N-1, total=M)``; ``N`` of 0 or
  above ``M`` counts a parse error (the event is still emitted, with ``completed`` clamped).
* Not supported: tasks of concurrent workers *interleaved* in one stream (WAA writes one log
  per worker); results attach to the most recent ``[Example ID]``. Nor a record torn in two
  by another stream's write (block-buffered stdout with tqdm on stderr cutting into it): the
  torn record is lost; running WAA with ``PYTHONUNBUFFERED=1`` avoids it.

Speed: most lines of a WAA log are continuation lines no rule can match; ``_segments`` skips
them by their first byte (``_MAYBE``) without a call, which keeps a 10 MB run above 50 MB/s
(``scripts/bench_parser.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from trio_sse import waalog
from trio_sse.model import PHASES

__all__ = [
    "LogParser",
    "ParsedEvent",
    "ParserStatistics",
    "PhaseSeen",
    "RunFinished",
    "RunStarted",
    "ServerReady",
    "StepStarted",
    "TaskFinished",
    "TaskStarted",
    "TasksCounted",
]


@dataclass(frozen=True, slots=True)
class RunStarted:
    """``Worker N is doing tasks: [...]`` (or ``Left tasks:`` when no Worker line was seen).

    ``same_run`` (added): True when this only updates ``total_tasks`` of the current run —
    another worker's ``Worker`` line in the same stream; the run's results stay."""

    total_tasks: int | None
    offset: int
    same_run: bool = False


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
_NL: Final = b"\n"
_CR: Final = b"\r"
_ESC: Final = b"\x1b"
_NUL: Final = b"\x00"


class _Task:
    """The task between its ``[Example ID]`` and its result (mutable, parser-private)."""

    __slots__ = ("domain", "has_result", "score", "steps", "task_id")

    def __init__(self, task_id: str, domain: str | None) -> None:
        self.task_id = task_id
        self.domain = domain
        self.steps: int | None = None
        self.has_result = False
        self.score: float | None = None


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
        # Statistics.
        self._nbytes = 0
        self._nlines = 0
        self._overlong = 0
        self._errors = 0
        # Grammar state.
        self._out: list[ParsedEvent] = []
        self._waa = False  # a WAA prefix was seen: plain lines are continuations
        self._left: int | None = None  # the total of a held "Left tasks:" block
        self._run_active = False
        self._workers: set[bytes] = set()
        self._run_tasks: set[tuple[bytes, bytes]] = set()
        self._finished: set[str] = set()  # task ids reported in this run
        self._cur: _Task | None = None
        self._pending_domain: str | None = None
        self._last_phase: str | None = None

    # ------------------------------------------------------------------ public API

    @property
    def statistics(self) -> ParserStatistics:
        return ParserStatistics(
            bytes=self._nbytes,
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
        held ``Left tasks:`` total, a task's ``Result`` without ``Finished``). Idempotent."""
        out: list[ParsedEvent] = []
        if self._closed:
            return out
        self._closed = True
        self._out = out
        if self._ends_open:
            self._nlines += 1
        if self._buf:
            self._end_partial()
        self._flush_left(self._nbytes)
        self._flush_result(self._nbytes)
        return out

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
        self._buf.clear()
        self._discarding = False
        seg = self._clean(raw)
        if seg:
            self._line(seg, self._seg_start)

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
        raw_segs = norm.split(_NL)
        # Cleaning the whole body at once is much cheaper than per segment, and gives the
        # same segments because ANSI_RE can never match "\n" (see waalog.ANSI_RE); the raw
        # split still gives each segment's offset and true length.
        clean = norm
        if _ESC in clean:
            clean = waalog.ANSI_RE.sub(b"", clean)
        if _NUL in clean:
            clean = clean.replace(_NUL, b"")
        segs = raw_segs if clean is norm else clean.split(_NL)
        mx = self._max
        line = self._line
        maybe = _MAYBE
        for raw, seg in zip(raw_segs, segs, strict=True):
            n = len(raw)
            if n > mx:
                # Same result as the chunked path: keep the first max bytes *raw*, then clean.
                self._overlong += 1
                seg = self._clean(raw[:mx])
            # Fast path: most lines of a WAA log are continuation lines (action code) that no
            # rule can match; skipping them here is exactly what _line would conclude.
            if seg and (seg[0] in maybe or b"%|" in seg or b"it [" in seg or self._left is not None):
                line(seg, pos)
            pos += n + 1

    # ------------------------------------------------------------------ segments → events

    def _line(self, seg: bytes, off: int) -> None:
        if seg[:1] == b"[":
            m = waalog.PREFIX_RE.match(seg)
            if m is not None:
                self._waa = True
                pos = m.end()
                if self._left is not None and not seg.startswith(b"Worker ", pos):
                    # A new record that is not the Worker line: the Left tasks block is over.
                    self._flush_left(off)
                if pos < len(seg):
                    rules = _WAA_INDEX.get(seg[pos])
                    if rules is not None:
                        for rx, handler in rules:
                            mm = rx.match(seg, pos)
                            if mm is not None:
                                handler(self, mm, off)
                                return
                return
        # A plain line: continuation, print(), tqdm bar, container line, or simple format.
        s = seg.lstrip()
        if not s:
            return
        if b"%|" in s or b"it [" in s:  # cheap test before the regex: most lines are not bars
            bar = waalog.TQDM_RE.match(s)
            if bar is not None:
                # The next log record is often glued right after the last redraw.
                rest = s[bar.end() :]
                if rest:
                    self._line(rest, off)
                return
        if s.startswith(_BULLET):
            s = s[len(_BULLET) :]
            if not s:
                return
        if self._left is not None:
            mm = waalog.LEFT_TASKS_ITEM_RE.match(s)
            if mm is not None:
                self._left += int(mm[2])
                return
        rules = (_LINE_INDEX if self._waa else _SIMPLE_INDEX).get(s[0])
        if rules is not None:
            for rx, handler in rules:
                mm = rx.match(s)
                if mm is not None:
                    handler(self, mm, off)
                    return

    # ------------------------------------------------------------------ helpers

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

    def _emit_finished(
        self, task_id: str, domain: str | None, score: float | None, error: str | None, steps: int | None, off: int
    ) -> None:
        if task_id in self._finished:
            return
        self._finished.add(task_id)
        self._out.append(TaskFinished(task_id, domain, score, error, steps, off))

    def _flush_result(self, off: int) -> None:
        """The current task has a Result but no Finished yet, and something else began."""
        cur = self._cur
        if cur is not None and cur.has_result:
            self._cur = None
            self._emit_finished(cur.task_id, cur.domain, cur.score, None, cur.steps, off)

    def _flush_left(self, off: int) -> None:
        """The held ``Left tasks:`` block ended at the record at ``off`` (not a Worker line)."""
        total = self._left
        if total is not None:
            self._left = None
            self._new_run()
            self._out.append(RunStarted(total, off))

    def _new_run(self) -> None:
        self._run_active = True
        self._workers = set()
        self._run_tasks = set()
        self._finished = set()
        self._cur = None
        self._pending_domain = None

    def _end_run(self) -> None:
        self._run_active = False
        self._workers = set()
        self._run_tasks = set()
        self._finished = set()
        self._cur = None
        self._pending_domain = None

    # ------------------------------------------------------------------ handlers (grammar)

    def _on_worker(self, m: re.Match[bytes], off: int) -> None:
        worker, listing = m[1], m[2]
        tasks = {(d, t) for _, d, _, t in waalog.WORKER_TASK_RE.findall(listing)}
        listing = listing.rstrip()
        truncated = not listing.endswith(b"]")
        unreadable = not tasks and listing != b"[]"
        if truncated or unreadable:
            self._errors += 1
        self._left = None  # the Worker line is the better total (see module docstring)
        self._flush_result(off)
        if self._run_active and worker not in self._workers:
            same_run = True
        else:
            self._new_run()
            same_run = False
        self._workers.add(worker)
        self._run_tasks |= tasks
        total = None if unreadable and not self._run_tasks else len(self._run_tasks)
        self._out.append(RunStarted(total, off, same_run))

    def _on_left_tasks(self, m: re.Match[bytes], off: int) -> None:
        self._flush_result(off)
        self._left = 0

    def _on_domain(self, m: re.Match[bytes], off: int) -> None:
        self._pending_domain = _text(m[1])

    def _on_example(self, m: re.Match[bytes], off: int) -> None:
        self._flush_result(off)
        task_id = _text(m[1])
        domain, self._pending_domain = self._pending_domain, None
        self._cur = _Task(task_id, domain)
        self._out.append(TaskStarted(task_id, domain, off))

    def _on_step(self, m: re.Match[bytes], off: int) -> None:
        n = int(m[1])
        cur = self._cur
        if cur is not None and (cur.steps is None or n > cur.steps):
            cur.steps = n
        action = _text(m[2]) if m[2] else ""
        self._out.append(StepStarted(n, action or None, off))

    def _on_result(self, m: re.Match[bytes], off: int) -> None:
        score = self._number(m[1])
        cur = self._cur
        if cur is not None:
            cur.has_result = True
            cur.score = score

    def _on_finished(self, m: re.Match[bytes], off: int) -> None:
        domain, task_id = _text(m[1]), _text(m[2])
        cur = self._cur
        if cur is not None and cur.task_id == task_id:
            self._cur = None
            if task_id in self._finished:
                return
            score = cur.score if cur.has_result else self._number(m[3]) if m[3] else None
            self._emit_finished(task_id, domain, score, None, cur.steps, off)
        elif task_id not in self._finished:
            # Not the current task (the log began mid-task, or workers interleave): it did
            # finish, so report it, with the score only the line itself can give.
            score = self._number(m[3]) if m[3] else None
            self._emit_finished(task_id, domain, score, None, None, off)

    def _on_exception(self, m: re.Match[bytes], off: int) -> None:
        domain, task_id = _text(m[1]), _text(m[2])
        error = _text(m[3]) or "exception without a message"
        cur = self._cur
        steps = None
        if cur is not None:
            if cur.task_id == task_id:
                steps = cur.steps
                self._cur = None
            else:
                self._flush_result(off)
        self._emit_finished(task_id, domain, None, error, steps, off)

    def _on_run_end(self, average: float | None, off: int) -> None:
        self._flush_result(off)
        self._end_run()
        self._out.append(RunFinished(average, off))

    def _on_average(self, m: re.Match[bytes], off: int) -> None:
        self._on_run_end(self._number(m[1]), off)

    def _on_no_examples(self, m: re.Match[bytes], off: int) -> None:
        self._on_run_end(None, off)

    def _on_response(self, m: re.Match[bytes], off: int) -> None:
        self._out.append(ServerReady(waalog.OPERATIONAL in m[1], _text(m[1]), off))

    def _on_failed_hello(self, m: re.Match[bytes], off: int) -> None:
        self._out.append(ServerReady(False, _text(m[1]), off))

    def _on_phase(self, phase: str, off: int) -> None:
        if phase != self._last_phase:
            self._last_phase = phase
            self._out.append(PhaseSeen(phase, off))

    # simple format

    def _on_task_count(self, m: re.Match[bytes], off: int) -> None:
        n, total = int(m[1]), int(m[2])
        if n < 1 or n > total:
            self._errors += 1
        self._out.append(TasksCounted(min(max(n - 1, 0), total), total, off))

    def _on_running(self, m: re.Match[bytes], off: int) -> None:
        task_id = _text(m[1])
        self._cur = _Task(task_id, None)
        self._out.append(TaskStarted(task_id, None, off))


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
    (waalog.RESULT_RE, LogParser._on_result),
    (waalog.FINISHED_RE, LogParser._on_finished),
    (waalog.EXCEPTION_RE, LogParser._on_exception),
    (waalog.WORKER_RE, LogParser._on_worker),
    (waalog.LEFT_TASKS_RE, LogParser._on_left_tasks),
    (waalog.AVERAGE_RE, LogParser._on_average),
    (waalog.NO_EXAMPLES_RE, LogParser._on_no_examples),
)

# Lines that mean the same with or without a prefix: server readiness and container phases.
SERVER_RULES: Final[tuple[_Rule, ...]] = (
    (waalog.RESPONSE_RE, LogParser._on_response),
    (waalog.FAILED_HELLO_RE, LogParser._on_failed_hello),
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


def _index(*tables: Iterable[_Rule]) -> dict[int, tuple[_Rule, ...]]:
    index: dict[int, list[_Rule]] = {}
    for table in tables:
        for rule in table:
            for b in _first_bytes(rule[0]):
                index.setdefault(b, []).append(rule)
    return {b: tuple(rules) for b, rules in index.items()}


_WAA_INDEX: Final = _index(WAA_MESSAGE_RULES, SERVER_RULES, PHASE_RULES)
_LINE_INDEX: Final = _index(SERVER_RULES, PHASE_RULES)
_SIMPLE_INDEX: Final = _index(SIMPLE_RULES, SERVER_RULES, PHASE_RULES)

# First bytes of a line that _line may act on: a prefix, leading blanks, the "❯" bullet, or
# the first byte of any plain-line rule. Any other line is skipped without a call.
_MAYBE: Final = frozenset(b"[ \t\n\r\x0b\x0c" + _BULLET[:1] + bytes(_LINE_INDEX) + bytes(_SIMPLE_INDEX))
