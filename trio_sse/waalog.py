"""The benchmark-log line formats, written and read from one place (SPEC §7).

Owns: the *text* of every log line the monitor understands — Windows Agent Arena's logging
prefix and message templates, the original endpoint's simple format, dockur/windows
container lines, tqdm redraws — as small writer functions, and next to each writer the
compiled bytes regex the parser (``trio_sse.logparse``) reads it with. Keeping both in one
module is the point: the simulator (``trio_sse.sources.simulate``) writes with these
functions, the parser reads with these regexes, so writer and reader cannot drift, and
``tests/test_logparse.py`` round-trips every writer through the parser.

Must not: do I/O, keep state, import anything async, know about events or the parser.

Where the formats come from (WAA ``client/run.py`` and ``lib_run_single.py``):

* logging format ``[%(asctime)s %(levelname)s %(module)s/%(lineno)d-%(processName)s] %(message)s``;
  the coloured variant WAA installs on its file and stdout handlers is
  ``\\x1b[1;33m[%(asctime)s \\x1b[31m%(levelname)s \\x1b[32m%(module)s/%(lineno)d-%(processName)s\\x1b[1;33m] \\x1b[0m%(message)s``.
* a message with newlines (a traceback, a multi-line agent action, ``Left tasks:``) continues on
  the following lines *without* a prefix — :func:`format_record` writes exactly that.
* ``asctime`` is ``%Y-%m-%d %H:%M:%S,mmm`` (logging's default).

Writers return ``str``; encode with UTF-8. Readers are ``re.Pattern[bytes]`` because the
parser works on raw bytes and decodes only the few captured groups it keeps.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

__all__ = [
    "ANSI_RE",
    "BULLET",
    "DOCKUR_BOOT_SEQUENCE",
    "PREFIX_RE",
    "TQDM_RE",
    "average_score",
    "dockur_info",
    "domain",
    "example_id",
    "exception_in",
    "failed_to_get_hello",
    "finished",
    "format_prefix",
    "format_record",
    "format_timestamp",
    "instruction",
    "left_tasks",
    "no_examples_finished",
    "response_from_server",
    "result",
    "simple_processing_task",
    "simple_running_task",
    "simple_step",
    "simple_task_count",
    "step",
    "tqdm_redraw",
    "vm_ready",
    "worker_tasks",
]

# --------------------------------------------------------------------------- prefix

# The colours of WAA's formatter, byte for byte (run.py: ``formatter = logging.Formatter(fmt=...)``).
_YELLOW: Final = "\x1b[1;33m"
_RED: Final = "\x1b[31m"
_GREEN: Final = "\x1b[32m"
_RESET: Final = "\x1b[0m"


def format_timestamp(when: _dt.datetime) -> str:
    """``asctime`` as Python logging writes it: ``2024-05-06 10:11:12,345``."""
    return when.strftime("%Y-%m-%d %H:%M:%S") + f",{when.microsecond // 1000:03d}"


def format_prefix(ts: str, level: str, module: str, lineno: int, process: str, *, ansi: bool) -> str:
    """The ``[...] `` prefix of one WAA log record, including the space before the message.

    ``ts`` is a :func:`format_timestamp` string, ``level`` e.g. ``INFO``, ``module`` the
    module name without ``.py`` (``run``, ``lib_run_single``), ``process`` e.g.
    ``MainProcess``. ``ansi=True`` gives the coloured variant WAA writes to its log files
    and stdout; ``ansi=False`` the plain logging format.
    """
    if ansi:
        return f"{_YELLOW}[{ts} {_RED}{level} {_GREEN}{module}/{lineno}-{process}{_YELLOW}] {_RESET}"
    return f"[{ts} {level} {module}/{lineno}-{process}] "


def format_record(
    ts: str, level: str, module: str, lineno: int, process: str, message: str, *, ansi: bool
) -> str:
    """One whole log record: prefix + message + ``\\n``.

    A message containing newlines is written as logging does: its second and later lines
    follow *without* a prefix (continuation lines). ``message`` must not end with a newline
    unless the original message does (``Left tasks:`` does — see :func:`left_tasks`).
    """
    return format_prefix(ts, level, module, lineno, process, ansi=ansi) + message + "\n"


# Reading side. After ANSI stripping a prefixed line is ``[ts LEVEL module/lineno-process] msg``.
# The timestamp is matched loosely (digits, ``-``, ``:``, ``,``, ``.``, space) so a custom
# ``datefmt`` still parses; the level is one word; module names are identifiers; the process
# name is anything up to ``]`` (``MainProcess``, ``SpawnProcess-3``, ``ForkPoolWorker-1``).
PREFIX_RE: Final = re.compile(
    rb"\[(\d[\d\-:,. T]{6,40}) ([A-Z]{3,8}) ([A-Za-z_][\w.<>]*)/(\d{1,7})-([^\]\r\n]{0,80})\] ?"
)

# ECMA-48 escape sequences: CSI (``ESC [ params intermediates final``, the colours), OSC
# (``ESC ] ... BEL|ST``, window titles), two-byte Fe escapes, then any lone ESC left over
# (a truncated sequence). None of the alternatives can match ``\r`` or ``\n``: the parser
# relies on that to strip a whole chunk at once without moving line boundaries.
ANSI_RE: Final = re.compile(
    rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b\r\n]*(?:\x07|\x1b\\)?|[@-Z\\-_])|\x1b"
)

# --------------------------------------------------------------------------- WAA messages
# Each writer returns the *message* part; wrap it with format_record().


def worker_tasks(worker_id: int, tasks: Sequence[tuple[str, str]]) -> str:
    """``Worker 0 is doing tasks: [('notepad', '366de66e-...-WOS'), ...]`` (run start; the list
    is Python's repr of ``(domain, task_id)`` tuples and gives the run's total)."""
    return f"Worker {worker_id} is doing tasks: {[(str(d), str(t)) for d, t in tasks]!r}"


WORKER_RE: Final = re.compile(rb"Worker (\d{1,9}) is doing tasks: (\[.*)")
# One ``('domain', 'task_id')`` tuple of the repr; either quote style (repr picks ``"`` when
# the string holds a ``'``).
WORKER_TASK_RE: Final = re.compile(rb"""\(\s*(['"])(.*?)\1\s*,\s*(['"])(.*?)\3\s*\)""")


def left_tasks(counts: Mapping[str, int]) -> str:
    """``Left tasks:\\n{domain}: {n}\\n...`` — note the trailing newline WAA's f-string leaves,
    which makes an empty continuation line."""
    return "Left tasks:\n" + "".join(f"{d}: {n}\n" for d, n in counts.items())


LEFT_TASKS_RE: Final = re.compile(rb"Left tasks:\s*$")
LEFT_TASKS_ITEM_RE: Final = re.compile(rb"\s*([\w.\-]+): (\d{1,9})\s*$")


def domain(name: str) -> str:
    """``[Domain]: chrome`` (task start, logged before the example id)."""
    return f"[Domain]: {name}"


DOMAIN_RE: Final = re.compile(rb"\[Domain\]: (\S+)")


def example_id(task_id: str) -> str:
    """``[Example ID]: 366de66e-cbae-4d72-b042-26390db2b145-WOS`` (a task starts)."""
    return f"[Example ID]: {task_id}"


EXAMPLE_ID_RE: Final = re.compile(rb"\[Example ID\]: (\S+)")


def instruction(text: str) -> str:
    """``[Instruction]: Open Notepad and ...`` (informational; the parser ignores it)."""
    return f"[Instruction]: {text}"


def step(n: int, action: str) -> str:
    """``Step 3: pyautogui.click(...)``. ``action`` may span lines (continuations); the
    agent's special actions are the bare words ``DONE``, ``FAIL`` and ``WAIT``."""
    return f"Step {n}: {action}"


STEP_RE: Final = re.compile(rb"Step (\d{1,9}): ?(.*)")


def result(score: float) -> str:
    """``Result: 1.00`` — ``lib_run_single`` logs ``"Result: %.2f"``."""
    return f"Result: {score:.2f}"


RESULT_RE: Final = re.compile(rb"Result: *(\S*)")


def finished(domain_name: str, task_id: str) -> str:
    """``Finished chrome/366de66e-...-WOS`` (the task ran to its end without raising)."""
    return f"Finished {domain_name}/{task_id}"


# Some WAA forks append `` score=0.0``; the parser takes it when no ``Result:`` was seen.
FINISHED_RE: Final = re.compile(rb"Finished ([^/\s]+)/(\S+)(?: +score=(\S+))?")


def exception_in(domain_name: str, task_id: str, message: str) -> str:
    """``Exception in chrome/366de66e-...-WOS: <str(e)>``; WAA logs the traceback next, as a
    separate record whose message is the multi-line ``traceback.format_exc()``."""
    return f"Exception in {domain_name}/{task_id}: {message}"


EXCEPTION_RE: Final = re.compile(rb"Exception in ([^/\s]+)/(\S+?): ?(.*)")


def average_score(mean: float) -> str:
    """``Average score: 0.4`` (run end; WAA formats the float with ``str``)."""
    return f"Average score: {mean}"


AVERAGE_RE: Final = re.compile(rb"Average score: *(\S*)")


def no_examples_finished() -> str:
    """``No examples finished.`` (run end with no score)."""
    return "No examples finished."


NO_EXAMPLES_RE: Final = re.compile(rb"No examples finished\.")


def response_from_server(payload: Mapping[str, object] | None = None) -> str:
    """``Response from server: {'message': 'Service is operational', ...}`` (WAA server is up)."""
    body = dict(payload) if payload is not None else {"message": "Service is operational"}
    return f"Response from server: {body!r}"


RESPONSE_RE: Final = re.compile(rb"Response from server: ?(.*)")
OPERATIONAL: Final = b"Service is operational"


def failed_to_get_hello(reason: str) -> str:
    """``Failed to get hello: <reason>`` (WAA server not reachable yet)."""
    return f"Failed to get hello: {reason}"


FAILED_HELLO_RE: Final = re.compile(rb"Failed to get hello: ?(.*)")

# --------------------------------------------------------------------------- simple format
# The original endpoint's log (no prefix, one fact per line).


def simple_task_count(n: int, total: int) -> str:
    """``Task 5/30``: task 5 of 30 starts (so 4 are complete)."""
    return f"Task {n}/{total}"


SIMPLE_TASK_RE: Final = re.compile(rb"Task (\d{1,9})/(\d{1,9})\b")


def simple_running_task(task_id: str) -> str:
    """``Running task: task_001_notepad``."""
    return f"Running task: {task_id}"


def simple_processing_task(task_id: str) -> str:
    """``Processing task: task_001_notepad`` (an older spelling of the same fact)."""
    return f"Processing task: {task_id}"


SIMPLE_RUNNING_RE: Final = re.compile(rb"(?:Running|Processing) task: (\S+)")


def simple_step(n: int) -> str:
    """``Step 12``."""
    return f"Step {n}"


SIMPLE_STEP_RE: Final = re.compile(rb"Step (\d{1,9})\b(?::? ?(.*))?")

# --------------------------------------------------------------------------- container lines
# dockur/windows prints its progress with ``info``: a blue ``❯`` bullet, the text in cyan.

BULLET: Final = "\u276f "  # "❯ "


def dockur_info(text: str, *, ansi: bool = True) -> str:
    """One dockur/windows ``info`` line (no newline): ``❯ Booting Windows using QEMU ...``."""
    if ansi:
        return f"\x1b[1;34m{BULLET}\x1b[1;36m{text}\x1b[0m"
    return f"{BULLET}{text}"


def vm_ready() -> str:
    """WAA's own line when the VM and its server are up (phase ``ready``)."""
    return "VM is up and running, and the Windows Arena Server is ready to use!"


# A realistic boot of a fresh container, in order, with the phase each line tells (``None``:
# the line tells nothing). The simulator can write these; tests check the parser agrees.
DOCKUR_BOOT_SEQUENCE: Final[tuple[tuple[str | None, str], ...]] = (
    (None, dockur_info("Starting Windows for Docker v4.00...")),
    (None, dockur_info("For support visit https://github.com/dockur/windows")),
    ("downloading", dockur_info("Downloading Windows 11 Pro...")),
    ("downloading", "  12%  640M  3m12s"),
    ("downloading", "  45%  2.4G  1m48s"),
    ("downloading", " 100%  5.4G  0s"),
    ("extracting", dockur_info("Extracting Windows 11 Pro image...")),
    ("configuring", dockur_info("Adding drivers to image...")),
    ("configuring", dockur_info("Adding XML file to image...")),
    ("building", dockur_info("Building Windows 11 Pro image...")),
    ("booting", dockur_info("Booting Windows using QEMU v8.2.2...")),
    ("booting", 'BdsDxe: loading Boot0004 "Windows Boot Manager" from HD(1,GPT,0B6A9C3E,0x800,0x40000)'),
    ("booting", 'BdsDxe: starting Boot0004 "Windows Boot Manager" from HD(1,GPT,0B6A9C3E,0x800,0x40000)'),
    ("oobe", dockur_info("Windows started successfully, visit http://127.0.0.1:8006/ to view the screen...")),
    ("ready", vm_ready()),
)

# Phase lines, matched after ANSI stripping, leading blanks and an optional ``❯`` bullet.
# Ordered (phase, regex); the parser indexes them by first byte. Each pattern is specific
# (``...``, ``image``, ``Windows``) because an agent's multi-line action or a traceback may
# start a continuation line with an ordinary word such as "Extracting".
PHASE_PATTERNS: Final[tuple[tuple[str, re.Pattern[bytes]], ...]] = (
    ("downloading", re.compile(rb"Downloading .+")),
    # wget-style progress: percent, size, time left (`` 45%  1.2G  34s``).
    ("downloading", re.compile(rb"\d{1,3}% +[\d.]+[KMGT]?B? +\S+\s*$")),
    ("extracting", re.compile(rb"Extracting .+\.\.\.")),
    ("configuring", re.compile(rb"Adding .+ image\b")),
    ("configuring", re.compile(rb"Configuring Windows\b")),
    ("building", re.compile(rb"Building Windows\b")),
    ("booting", re.compile(rb"Booting Windows\b")),
    ("booting", re.compile(rb'BdsDxe: (?:loading|starting) Boot\w+ "Windows Boot Manager"')),
    ("oobe", re.compile(rb"Windows started successfully\b")),
    ("ready", re.compile(rb"VM is up and running, and the Windows Arena Server is ready")),
)


def tqdm_redraw(desc: str, n: int, total: int, *, elapsed: str = "00:00", remaining: str = "?") -> str:
    """One tqdm redraw as it lands in a log that mixes stderr in: ``\\r`` then the bar, no
    newline — the next redraw, or the next log record *right after the bar*, follows on the
    same physical line (see ``TQDM_RE``)."""
    pct = int(100 * n / total) if total else 0
    filled = pct // 10
    bar = "\u2588" * filled + " " * (10 - filled)
    return f"\r{desc}: {pct:3d}%|{bar}| {n}/{total} [{elapsed}<{remaining}, ?it/s]"


# A tqdm bar at the start of a segment: ``desc: 45%|####      | 9/20 [00:05<00:06, 1.6it/s]`` or,
# without a total, ``desc: 9it [00:05, 1.6it/s]``. Whatever follows the closing ``]`` on the
# same segment is a real line (stdout and stderr share the file, so the next log record is
# written right after the last redraw) and is parsed on its own.
TQDM_RE: Final = re.compile(
    rb"(?:[^\r\n|\[]{0,200}?: *)?(?:\d{1,3}%\|[^|\r\n]{0,200}\| *[\d.]+[kMGT]?/[\d.?]+[kMGT]? |[\d.]+[kMGT]?it )"
    rb"\[[^\]\r\n]{0,200}\]"
)


def tasks_repr(tasks: Iterable[tuple[str, str]]) -> str:
    """The list repr used by :func:`worker_tasks` (exposed for tests)."""
    return repr([(str(d), str(t)) for d, t in tasks])
