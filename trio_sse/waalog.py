"""The benchmark-log line formats, written and read from one place (SPEC §7).

Owns: the *text* of every log line the monitor understands — Windows Agent Arena's logging
prefix and message templates, the original endpoint's simple format, dockur/windows
container lines, tqdm redraws — as small writer functions, and next to each writer the
compiled bytes regex the parser (``trio_sse.logparse``) reads it with. Keeping both in one
module is the point: the simulator (``trio_sse.sources.simulate``) writes with these
functions, the parser reads with these regexes, so writer and reader cannot drift, and
``tests/test_logparse.py`` round-trips every writer through the parser.

Must not: do I/O, keep state, import anything async, know about events or the parser.

Where the formats come from — WAA ``src/win-arena-container/client/`` at commit 6d39ed8
(``run.py``, ``lib_run_single.py``, ``desktop_env/envs/desktop_env.py``,
``desktop_env/controllers/python.py``, ``desktop_env/evaluators/getters/microsoftpaint.py``),
OSWorld's ``run_multienv.py`` (xlang-ai 8be2a40, and the later ``EnvProcess-N`` rewrite), httpx and
openai-python's own INFO records, dockur/windows' ``info`` lines. Each writer names its upstream
line; ``tests/upstream`` reproduces the real logging setup around them:

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
    "TASK_ID_MAX_BYTES",
    "TRACEBACK_HEADER",
    "VM_UNREACHABLE_RE",
    "args",
    "command_error",
    "episode_done",
    "failed_to_execute_command",
    "http_request",
    "interrupted",
    "received_signal",
    "retrying_request",
    "running_evaluators",
    "vm_did_not_become_ready",
    "vm_not_ready_yet",
    "vm_up_and_ready",
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
# The last tuple of a list cut at the line bound: ``('chrome', 'ffff...`` up to the cut.
WORKER_TASK_TAIL_RE: Final = re.compile(rb"""\(\s*(['"])(.*?)\1\s*,\s*(['"])([^'"]+)$""")


def left_tasks(counts: Mapping[str, int]) -> str:
    """``Left tasks:\\n{domain}: {n}\\n...`` — note the trailing newline WAA's f-string leaves,
    which makes an empty continuation line."""
    return "Left tasks:\n" + "".join(f"{d}: {n}\n" for d, n in counts.items())


LEFT_TASKS_RE: Final = re.compile(rb"Left tasks:\s*$")
LEFT_TASKS_ITEM_RE: Final = re.compile(rb"\s*([\w.\-]+): (\d{1,9})\s*$")


# Task ids are cut to this many bytes wherever they are read ([Example ID], Finished, Exception,
# the Worker list), so an absurdly long id is cut the same way in every record and stays one task.
TASK_ID_MAX_BYTES: Final = 256


def _tag(env: str | None) -> str:
    return f"[{env}]" if env is not None else ""


def domain(name: str, *, env: str | None = None) -> str:
    """``[Domain]: chrome`` (task start, logged before the example id; WAA run.py:224).

    ``env`` gives OSWorld's ``run_multienv`` form ``[Env 1][Domain]: chrome`` (8be2a40
    run_multienv.py:156) or ``[EnvProcess-1][Domain]: chrome`` (the later rewrite)."""
    return f"{_tag(env)}[Domain]: {name}"


DOMAIN_RE: Final = re.compile(rb"\[Domain\]: (\S+)")

# OSWorld's env tag in front of ``[Domain]``/``[Example ID]``/``[Instruction]``: whatever is in
# the brackets (``Env 1``, ``EnvProcess-2``), only when one of those three labels follows.
ENV_TAG_RE: Final = re.compile(rb"\[([^\[\]\r\n]{1,60})\](?=\[(?:Domain|Example ID|Instruction)\]: )")


def example_id(task_id: str, *, env: str | None = None) -> str:
    """``[Example ID]: 366de66e-cbae-4d72-b042-26390db2b145-WOS`` (a task starts; run.py:225)."""
    return f"{_tag(env)}[Example ID]: {task_id}"


EXAMPLE_ID_RE: Final = re.compile(rb"\[Example ID\]: (\S+)")


def instruction(text: str, *, env: str | None = None) -> str:
    """``[Instruction]: Open Notepad and ...`` (run.py:229, right after the example id)."""
    return f"{_tag(env)}[Instruction]: {text}"


INSTRUCTION_RE: Final = re.compile(rb"\[Instruction\]: ?(.*)")


def step(n: int, action: str) -> str:
    """``Step 3: pyautogui.click(...)`` (lib_run_single.py:56). ``action`` may span lines
    (continuations); the agent's special actions are the bare words ``DONE``, ``FAIL``, ``WAIT``."""
    return f"Step {n}: {action}"


STEP_RE: Final = re.compile(rb"Step (\d{1,9}): ?(.*)")


def episode_done() -> str:
    """``The episode is done.`` (lib_run_single.py:77: the agent said DONE or FAIL)."""
    return "The episode is done."


EPISODE_DONE_RE: Final = re.compile(rb"The episode is done\.")


def running_evaluators() -> str:
    """``Running evaluator(s)...`` (lib_run_single.py:82): the agent loop is over, the task's
    evaluator runs next; an exception from here on came out of the evaluator."""
    return "Running evaluator(s)..."


EVALUATING_RE: Final = re.compile(rb"Running evaluator\(s\)\.\.\.")


def result(score: float) -> str:
    """``Result: 1.00`` — ``lib_run_single`` logs ``"Result: %.2f"`` (lib_run_single.py:84)."""
    return f"Result: {score:.2f}"


# Only a message that is ``Result:`` and one token is a task result (``%.2f`` always makes one
# token). Evaluator getters log their own ``Result: <sentence>`` (getters/microsoftpaint.py:64
# ``Result: Found a red circle in the screenshot``): several words, so no match — neither a
# result nor a parse error.
RESULT_RE: Final = re.compile(rb"Result: *(\S*)\s*$")


def finished(domain_name: str, task_id: str) -> str:
    """``Finished chrome/366de66e-...-WOS`` (run.py:280: the task ran to its end without
    raising). OSWorld's ``run_multienv`` writes no such line."""
    return f"Finished {domain_name}/{task_id}"


# Some WAA forks append `` score=0.0``; the parser takes it when no ``Result:`` was seen.
FINISHED_RE: Final = re.compile(rb"Finished ([^/\s]+)/(\S+)(?: +score=(\S+))?")


def exception_in(domain_name: str, task_id: str, message: str, *, env: str | None = None) -> str:
    """``Exception in chrome/366de66e-...-WOS: <str(e)>`` (run.py:259, level ERROR); WAA logs
    ``traceback.format_exc()`` next as a separate ERROR record (run.py:261). OSWorld names the
    env first: ``Exception in Env1 chrome/...: <e>`` (8be2a40 run_multienv.py:182, no traceback)
    or ``Exception in EnvProcess-1 chrome/...: <e>`` (the rewrite, then a traceback record)."""
    where = f"{env} " if env is not None else ""
    return f"Exception in {where}{domain_name}/{task_id}: {message}"


# The env token cannot hold a ``/`` (so a WAA message such as ``a/b c/d`` never reads as one);
# the ``: message`` part may be missing when the line was cut at the line bound inside the id.
EXCEPTION_RE: Final = re.compile(rb"Exception in (?:([^/\s]+) )?([^/\s]+)/(\S+?)(?:: ?(.*))?$")

TRACEBACK_HEADER: Final = "Traceback (most recent call last):"

# A connection error or timeout talking to the guest's WAA server, as ``requests``/``urllib3``
# word it in ``str(e)`` and in the traceback: the guest server is plain HTTP on port 5000, so a
# ``HTTPConnectionPool(host=...)``; the socket-level causes; and requests' own class names. A line
# naming ``HTTPSConnectionPool`` is a TLS host (a model API, a download), not the guest: the
# parser skips such lines (see ``VM_EXCLUDE_RE``).
VM_UNREACHABLE_RE: Final = re.compile(
    rb"HTTPConnectionPool\(host=|Connection refused|Max retries exceeded|Read timed out|Connect(?:ion)? timed out"
    rb"|ConnectTimeout|ReadTimeout|Connection aborted|RemoteDisconnected|Connection reset by peer"
    rb"|No route to host|Failed to establish a new connection|Name or service not known"
)
VM_EXCLUDE_RE: Final = re.compile(rb"HTTPSConnectionPool\(")


def average_score(mean: float) -> str:
    """``Average score: 0.4`` (run end, run.py:292; WAA formats the float with ``str``).
    OSWorld's run_multienv writes ``Average score: 0`` when no task scored."""
    return f"Average score: {mean}"


AVERAGE_RE: Final = re.compile(rb"Average score: *(\S*)")


def no_examples_finished() -> str:
    """``No examples finished.`` (run end with no score, run.py:290)."""
    return "No examples finished."


NO_EXAMPLES_RE: Final = re.compile(rb"No examples finished\.")


def response_from_server(payload: Mapping[str, object] | None = None) -> str:
    """``Response from server: {'message': 'Service is operational', ...}`` (WAA server is up;
    a ``print`` in run.py:372, so on the console only)."""
    body = dict(payload) if payload is not None else {"message": "Service is operational"}
    return f"Response from server: {body!r}"


RESPONSE_RE: Final = re.compile(rb"Response from server: ?(.*)")
OPERATIONAL: Final = b"Service is operational"


def failed_to_get_hello(reason: str) -> str:
    """``Failed to get hello: <reason>`` (WAA server not reachable yet; ``print``, run.py:375)."""
    return f"Failed to get hello: {reason}"


FAILED_HELLO_RE: Final = re.compile(rb"Failed to get hello: ?(.*)")


def vm_up_and_ready() -> str:
    """``VM is up and ready.`` (desktop_env.py:127, after every reset: the WAA server's
    ``/probe`` answered 200). In the log file, unlike the ``print`` lines above."""
    return "VM is up and ready."


def vm_not_ready_yet() -> str:
    """``VM not ready yet. Retrying in 5 seconds...`` (desktop_env.py:130)."""
    return "VM not ready yet. Retrying in 5 seconds..."


def vm_did_not_become_ready(attempts: int = 20) -> str:
    """``VM did not become ready after 20 attempts.`` (desktop_env.py:134, level ERROR; the
    reset goes on, and the task then fails talking to the guest)."""
    return f"VM did not become ready after {attempts} attempts."


VM_UP_RE: Final = re.compile(rb"VM is up and ready\.")
VM_NOT_READY_RE: Final = re.compile(rb"VM (?:not ready yet|did not become ready after (\d{1,9}) attempts)\b.*")

# --------------------------------------------------------------------------- run arguments


def args(namespace: str) -> str:
    """``Args: Namespace(action_space='pyautogui', ..., max_steps=15, ...)`` (run.py:139,
    ``logger.info("Args: %s", args)``; OSWorld run_multienv.py:198 the same). ``namespace`` is
    the ``repr`` of an ``argparse.Namespace``."""
    return f"Args: {namespace}"


ARGS_RE: Final = re.compile(rb"Args: (Namespace\(.*)")
ARGS_MAX_STEPS_RE: Final = re.compile(rb"[(,] ?max_steps=(\d{1,9})\b")
ARGS_MODEL_RE: Final = re.compile(rb"[(,] ?model=(['\"])(.*?)\1")
# WAA's flag is ``--agent_name`` (start_client.sh passes ``--agent``, which argparse expands).
ARGS_AGENT_RE: Final = re.compile(rb"[(,] ?agent(?:_name)?=(['\"])(.*?)\1")

# --------------------------------------------------------------------------- infrastructure hints


def failed_to_execute_command(status: int) -> str:
    """``Failed to execute command. Status code: 500`` (controllers/python.py:182 and 204: the
    guest server answered an action with an error status)."""
    return f"Failed to execute command. Status code: {status}"


def command_error(error: str) -> str:
    """``An error occurred while trying to execute the command: <e>`` (controllers/python.py:185
    and 207: a ``requests`` error talking to the guest, swallowed; the step goes on)."""
    return f"An error occurred while trying to execute the command: {error}"


INFRA_HINT_RE: Final = re.compile(
    rb"(?:Failed to execute command\. Status code: 5\d\d|An error occurred while trying to execute the command:).*"
)

# --------------------------------------------------------------------------- model API (file only)


def http_request(method: str, url: str, status: int, reason: str, *, http_version: str = "HTTP/1.1") -> str:
    """httpx's own INFO record for every request (logger ``httpx``, ``_client.py``):
    ``HTTP Request: POST https://api.openai.com/v1/chat/completions "HTTP/1.1 429 Too Many
    Requests"``. WAA's file handler has no filter, so these reach ``normal-*.log``; its stdout
    handler keeps only ``desktopenv.*``, so not the console."""
    return f'HTTP Request: {method} {url} "{http_version} {status} {reason}"'


HTTP_429_RE: Final = re.compile(rb'HTTP Request: \S+ \S+ "HTTP/[\d.]+ 429\b.*')


def retrying_request(url: str, seconds: float) -> str:
    """openai-python's INFO record before it retries (logger ``openai._base_client``;
    ``log.info("Retrying request to %s in %f seconds", options.url, timeout)``, line 1087 in
    1.54.4): ``Retrying request to /chat/completions in 0.436551 seconds``."""
    return f"Retrying request to {url} in {seconds:f} seconds"


RETRYING_RE: Final = re.compile(rb"Retrying request to \S+ in [\d.]+ seconds")

# --------------------------------------------------------------------------- interruption


def interrupted(signo: int) -> str:
    """``Interrupted by 2, shutting down`` (a ``print`` in run.py:363, WAA's SIGINT/SIGTERM/SIGHUP
    handler: on the console only, never in the log file)."""
    return f"Interrupted by {signo}, shutting down"


INTERRUPTED_RE: Final = re.compile(rb"Interrupted by (\d{1,3}), shutting down\s*$")


def received_signal(signo: int) -> str:
    """OSWorld run_multienv (the EnvProcess rewrite): ``Received signal 2. Gracefully shutting
    down...`` (a record of the main process)."""
    return f"Received signal {signo}. Gracefully shutting down..."


RECEIVED_SIGNAL_RE: Final = re.compile(rb"Received signal (\d{1,3})\. Gracefully shutting down")

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
    # sic: the dockur/windows versions WAA's base image is built on spell it so.
    ("oobe", dockur_info("Windows started succesfully, visit http://localhost:8006/ to view the screen...")),
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
    # dockur/windows spells it "succesfully" (src/power.sh in the versions WAA's base image is
    # built on); later versions fixed it. Both are phase oobe.
    ("oobe", re.compile(rb"Windows started succes{1,2}fully\b")),
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
