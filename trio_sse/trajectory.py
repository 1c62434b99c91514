"""A task's trajectory as WAA and OSWorld write it (SPEC §8), as pure data: ``traj.jsonl`` bytes
in, typed records out; which file names a trajectory lists; where a task's folder is.

Owns:

* ``Trajectory`` — an incremental ``traj.jsonl`` parser (bytes chunks in any split → records):
  a half-written last line waits for its newline, a line that is not a JSON object (or lacks
  ``step_num``) is counted as junk and skipped, a line longer than ``MAX_LINE_BYTES`` is
  dropped as it arrives (counted), at most ``MAX_RECORDS`` step records are kept.
* The records: ``ResetRecord`` (line 0, written at ``env.reset``), ``StepRecord`` (one per
  executed action), ``ErrorRecord`` (the task raised).
* ``listed_name`` — the rule deciding which file names a trajectory lists: the *only* names the
  files API will ever serve.
* Where a task's folder is: ``task_dir_globs`` / ``pick_newest`` (pure path logic; the sources
  do the listing), ``safe_component`` for every domain, task id and file name used in a path.
* ``screenshot_url`` — the files API URL of a listed name.

Must not: do I/O, read a clock, log, or import anything async.

What upstream writes (verified against the source; the fixtures in ``tests/test_trajectory.py``
cite the same lines):

* WAA ``client/lib_run_single.py`` at 6d39ed8: the task folder is
  ``<result_dir>/<action_space>/<observation_type>/<model>/<trial_id>/<domain>/<example_id>``
  (``run.py:235-243``); ``TrajectoryRecorder.record_init`` (``trajectory_recorder.py:101-114``)
  appends line 0 ``{"step_num": 0, "action_timestamp": ts, "action": null, …}`` and
  ``record_step`` (``:128-148``) one line per executed *action* ``{"step_num": step_idx + 1,
  "action_timestamp", "action", "reward", "done", "info", …}`` — several actions of one agent
  step share a ``step_num`` (``lib_run_single.py:52-74``). The other keys are the observation's
  and the agent's logs as ``save_dict`` (``trajectory_recorder.py:12-66``) stored them: a file
  name ``{key}-step_{step_idx}_{action_timestamp}.{png,txt,npy,json}`` (``step_idx`` 0-based,
  ``reset`` for line 0), or a string / number kept as it is. ``action_timestamp`` is
  ``%Y%m%d@%H%M%S`` (``lib_run_single.py:31,54``). A task that raised gets
  ``{"Error": "Exception in d/id", "Exception": str(e), "Traceback": tb}`` (``run.py:264-270``).
* OSWorld ``lib_run_single.py`` at 1fd8b66 (lines 30-42): no line 0; each action line has
  ``"screenshot_file": "step_{n}_{ts}.png"``; the folder has no ``trial_id`` level
  (``run_multienv.py:160-167`` at 8be2a40); a task that raised gets ``{"Error": "Time limit
  exceeded in d/id"}`` (``run_multienv.py:186-191``).
* ``--model`` is a free string; one with a ``/`` (``Qwen/Qwen2-VL``) adds a level: folders are
  looked for 3, 4 and 5 levels below the results dir (``LEVELS``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

__all__ = [
    "ACTION_KEEP",
    "LEVELS",
    "MAX_LINE_BYTES",
    "MAX_NAME_BYTES",
    "MAX_RECORDS",
    "TRAJ_FILE",
    "ErrorRecord",
    "Record",
    "ResetRecord",
    "StepRecord",
    "Trajectory",
    "TrajectoryStatistics",
    "action_text",
    "iso_timestamp",
    "listed_name",
    "pick_newest",
    "safe_component",
    "screenshot_url",
    "task_dir_globs",
]

TRAJ_FILE: Final = "traj.jsonl"
# Directories between the results dir and <domain>: WAA (action_space/observation_type/model/
# trial_id), OSWorld (no trial_id), and WAA with a model name holding one "/". Looked for in
# this order; the newest folder wins (``pick_newest``).
LEVELS: Final = (4, 3, 5)
MAX_LINE_BYTES: Final = 4 << 20  # a traj line longer than this is dropped (counted as overlong)
MAX_RECORDS: Final = 10_000  # step records kept per trajectory (WAA's max_steps is 15..50)
ACTION_KEEP: Final = 16 * 1024  # characters of an action kept (the step event sends 2 KiB)
TRACEBACK_KEEP: Final = 64 * 1024  # characters of an error's traceback kept
MAX_NAME_BYTES: Final = 255  # a file name (one path component, as filesystems allow)

# save_dict's "{key}-step_{step_idx}_{action_timestamp}.{ext}" after "{key}-step_"
# (trajectory_recorder.py:16; the extensions it writes: :23 txt, :30/:52 png, :46 npy, :58 json).
_WAA_SUFFIX = re.compile(r"(?:[0-9]{1,9}|reset)_[0-9]{8}@[0-9]{6}\.(?:png|txt|npy|json)\Z")
# OSWorld's "step_{step_idx + 1}_{action_timestamp}.png" (lib_run_single.py:30,41).
_OSWORLD_NAME = re.compile(r"step_[0-9]{1,9}_[0-9]{8}@[0-9]{6}\.png\Z")
_OSWORLD_KEY = "screenshot_file"
_TIMESTAMP = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})@([0-9]{2})([0-9]{2})([0-9]{2})\Z")
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")


def safe_component(text: object, *, limit: int = MAX_NAME_BYTES) -> bool:
    """Whether ``text`` can be one component of a path we build: non-empty, at most ``limit``
    bytes of UTF-8, no ``/``, ``\\``, NUL or other control characters, not ``.``/``..``, not
    starting with ``.`` or ``-`` (a hidden file, an option to a remote command)."""
    if not isinstance(text, str) or not text or text[0] in ".-" or _UNSAFE.search(text):
        return False
    try:
        return len(text.encode("utf-8")) <= limit
    except UnicodeEncodeError:  # lone surrogates
        return False


def listed_name(key: str, value: object) -> bool:
    """Whether ``value`` (at ``key`` of a traj line) is a file name the recorder wrote: WAA's
    ``{key}-step_{idx}_{ts}.{ext}`` under its own key, or OSWorld's ``screenshot_file``. Any
    other string (a window title, the clipboard, an instruction) is data, never a file."""
    if not isinstance(value, str) or not safe_component(value):
        return False
    if key == _OSWORLD_KEY:
        return _OSWORLD_NAME.match(value) is not None
    prefix = f"{key}-step_"
    return value.startswith(prefix) and _WAA_SUFFIX.match(value, len(prefix)) is not None


def iso_timestamp(raw: object) -> str | None:
    """``20241120@140612`` (``%Y%m%d@%H%M%S``) → ``2024-11-20T14:06:12``; None otherwise."""
    if not isinstance(raw, str):
        return None
    m = _TIMESTAMP.match(raw)
    if m is None:
        return None
    year, month, day, hour, minute, second = m.groups()
    if not ("01" <= month <= "12" and "01" <= day <= "31" and hour <= "23" and minute <= "59" and second <= "60"):
        return None
    return f"{year}-{month}-{day}T{hour}:{minute}:{second}"


def action_text(action: object, limit: int = ACTION_KEEP) -> str | None:
    """An action as text: a string as it is, anything else (OSWorld's ``computer_13`` actions
    are objects) as compact JSON; cut to ``limit`` characters. None for a missing action."""
    if action is None:
        return None
    if isinstance(action, str):
        return action[:limit]
    return json.dumps(action, separators=(",", ":"), ensure_ascii=False, default=str)[:limit]


def screenshot_url(target: str, task_id: str, name: str) -> str:
    """The files API URL of ``name`` of ``task_id`` (SPEC §8), every part %-quoted. Without the
    token: a page adds its own ``&token=`` (it must not end up in events others see)."""
    return f"/api/tasks/{quote(task_id, safe='')}/files/{quote(name, safe='')}?target={quote(target, safe='')}"


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One executed action. ``index``: its 1-based place among the file's action lines (the
    k-th ``Step N:`` line of the log is the same action); ``step``: WAA's ``step_num``."""

    index: int
    step: int
    action: str | None
    reward: float | None
    done: bool | None
    at: str | None  # ISO-8601 (action_timestamp), the benchmark machine's clock
    screenshot: str | None  # a listed file name
    files: tuple[str, ...]  # every listed file name of the line

    def payload(self, screenshot_url: str | None) -> dict[str, Any]:
        """The step as ``GET /api/tasks/<id>`` lists it."""
        return {
            "step": self.step,
            "action": self.action,
            "reward": self.reward,
            "done": self.done,
            "at": self.at,
            "screenshot": screenshot_url,
        }


@dataclass(frozen=True, slots=True)
class ResetRecord:
    """Line 0: the observation after ``env.reset`` (WAA only)."""

    at: str | None
    screenshot: str | None
    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """The task raised: ``message`` is the exception's text (WAA's ``Exception``, else the
    ``Error`` line itself), ``traceback`` WAA's ``Traceback`` when there is one."""

    message: str
    traceback: str | None


Record = StepRecord | ResetRecord | ErrorRecord


@dataclass(frozen=True, slots=True)
class TrajectoryStatistics:
    lines: int  # complete lines read
    junk: int  # lines that were not a trajectory record
    overlong: int  # lines longer than MAX_LINE_BYTES, dropped
    dropped: int  # step records past MAX_RECORDS


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _files(obj: dict[str, Any]) -> tuple[str, ...]:
    return tuple(v for k, v in obj.items() if listed_name(k, v))


def _screenshot(obj: dict[str, Any]) -> str | None:
    for key in ("screenshot", _OSWORLD_KEY):
        value = obj.get(key)
        if listed_name(key, value):
            return value  # type: ignore[no-any-return]
    return None


class Trajectory:
    """One ``traj.jsonl``, parsed incrementally (see the module docstring).

    ``feed(chunk)`` returns the records completed by ``chunk`` (in file order) and keeps them:
    ``steps``, ``reset``, ``error`` and ``files`` (every listed name) are the trajectory so far.
    ``close()`` ends the input: an unterminated last line counts if it is a whole JSON object
    (WAA always ends a line; a torn one is junk)."""

    __slots__ = ("_buf", "_skipping", "steps", "reset", "error", "files", "_lines", "_junk", "_overlong", "_dropped")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skipping = False  # inside an overlong line, until its newline
        self.steps: list[StepRecord] = []
        self.reset: ResetRecord | None = None
        self.error: ErrorRecord | None = None
        self.files: set[str] = set()
        self._lines = self._junk = self._overlong = self._dropped = 0

    @property
    def statistics(self) -> TrajectoryStatistics:
        return TrajectoryStatistics(self._lines, self._junk, self._overlong, self._dropped)

    @property
    def indexed(self) -> int:
        """Action lines read so far (kept or dropped): the next one's ``index`` minus one."""
        return len(self.steps) + self._dropped

    def feed(self, data: bytes) -> list[Record]:
        out: list[Record] = []
        start = 0
        while start < len(data):
            nl = data.find(b"\n", start)
            end = len(data) if nl < 0 else nl
            if self._skipping:
                if nl >= 0:
                    self._skipping = False
            else:
                room = MAX_LINE_BYTES - len(self._buf)
                if end - start > room:
                    self._buf.clear()
                    self._overlong += 1
                    self._skipping = nl < 0  # the rest of the line, up to its newline, is dropped
                else:
                    self._buf += data[start:end]
                    if nl >= 0:
                        line, self._buf = bytes(self._buf), bytearray()
                        self._line(line, out)
            if nl < 0:
                break
            start = nl + 1
        return out

    def close(self) -> list[Record]:
        out: list[Record] = []
        if self._buf and not self._skipping:
            line, self._buf = bytes(self._buf), bytearray()
            self._line(line, out)
        self._buf = bytearray()
        self._skipping = False
        return out

    def _line(self, raw: bytes, out: list[Record]) -> None:
        if not raw.strip():
            return  # a blank line is nothing (WAA writes none)
        self._lines += 1
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, invalid UTF-8, absurdly nested
            self._junk += 1
            return
        if not isinstance(obj, dict):
            self._junk += 1
            return
        if "Error" in obj:
            message = obj.get("Exception")
            if not isinstance(message, str) or not message:
                message = obj["Error"] if isinstance(obj["Error"], str) else json.dumps(obj["Error"], default=str)
            tb = obj.get("Traceback")
            record: Record = ErrorRecord(message[:TRACEBACK_KEEP], tb[:TRACEBACK_KEEP] if isinstance(tb, str) else None)
            self.error = record
            out.append(record)
            return
        step = obj.get("step_num")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            self._junk += 1
            return
        files = _files(obj)
        self.files.update(files)
        at = iso_timestamp(obj.get("action_timestamp"))
        if step == 0:
            record = ResetRecord(at, _screenshot(obj), files)
            self.reset = record
            out.append(record)
            return
        if len(self.steps) >= MAX_RECORDS:
            self._dropped += 1
            return
        done = obj.get("done")
        record = StepRecord(
            index=self.indexed + 1,
            step=step,
            action=action_text(obj.get("action")),
            reward=_number(obj.get("reward")),
            done=done if isinstance(done, bool) else None,
            at=at,
            screenshot=_screenshot(obj),
            files=files,
        )
        self.steps.append(record)
        out.append(record)


# ----------------------------------------------------------------------------- folders


def _glob_escape(text: str) -> str:
    """``glob.escape`` without importing glob's I/O (the same rule: ``*?[`` in brackets)."""
    return re.sub(r"([*?[])", r"[\1]", text)


def task_dir_globs(root: str, domain: str, task_id: str) -> list[str] | None:
    """Glob patterns (Python ``glob`` syntax, ``root``/``domain``/``task_id`` escaped) of where
    the folder of ``task_id`` in ``domain`` may be, in ``LEVELS`` order; None when the domain or
    id cannot be a path component (nothing is then ever looked up)."""
    if not root or "\x00" in root or not safe_component(domain) or not safe_component(task_id):
        return None
    base = _glob_escape(root.rstrip("/") or "/")
    tail = f"{_glob_escape(domain)}/{_glob_escape(task_id)}"
    return [f"{base}/{'*/' * levels}{tail}" for levels in LEVELS]


def pick_newest(candidates: Iterable[tuple[str, int]]) -> str | None:
    """The folder to follow among ``(path, mtime_ns)`` candidates in search order: the newest
    (a run writes into its task's folder now; an older trial's folder of the same task is
    history); ties keep the earlier one. The remote search applies the same rule."""
    best: tuple[str, int] | None = None
    for path, mtime in candidates:
        if best is None or mtime > best[1]:
            best = (path, mtime)
    return None if best is None else best[0]


def steps_payload(steps: Sequence[StepRecord], url: Any) -> list[dict[str, Any]]:
    """``steps`` as the API lists them; ``url(name)`` turns a screenshot name into its URL."""
    return [s.payload(url(s.screenshot) if s.screenshot else None) for s in steps]
