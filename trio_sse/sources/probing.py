"""What a probe's raw command output means: ONE interpretation for every source.

Owns: ``interpret`` (the raw answers of one probe — pgrep, docker inspect, docker logs, the WAA
probe — in, a ``ProbeResult`` out), the types of those answers (``Answer``, ``HttpAnswer``,
``Silence``, ``ProbeOutput``), ``PGREP`` (the process check's command words, so that the
lines of our own probes can be told apart), ``container_running`` and ``last_phase``. The
local source (``local.py``) and the SSH source (``ssh/probe.py``) run the commands their own
way (subprocesses; exec channels) and hand the answers here. Pure: no I/O, no clock, and must
not import trio, asyncio or anything else async (``logparse`` lends the phase mapping).

The rules (tested as a table in ``tests/test_probing.py``):

* ``connected`` is the link when the source has one (SSH: the connection held); a source
  without a link (local) reports whether the container, when one is named, answered as
  running — there the container is the host.
* ``docker inspect``: an error names the container and quotes docker's first stderr line; a
  stopped container is an error ("container X is not running") and nothing runs in it: a
  process check that was asked says ``running: false`` whatever pgrep answered.
* ``pgrep -f -a``: exit 0/1 decide (a login shell may write noise to stderr), and lines that
  hold ``PGREP`` are probes of ours — a sibling target's concurrent pgrep, or the docker client
  that started one, lists the same pattern on its command line — never the benchmark. Another
  exit status is an error. A host without pgrep cannot tell (``None``), which is not an error:
  the check is on by default.
* ``docker logs``: the last phase line wins (``None`` when docker failed or none matched).
* WAA probe: ready when the body holds ``Service is operational``; otherwise the HTTP status
  when the source knows it, else ``Not responding``. Not asked: ``None`` (the monitor then
  goes by the log).
* A command that did not answer in time is an error naming it; several errors are joined
  with ``"; "``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from trio_sse.logparse import LogParser, PhaseSeen
from trio_sse.sources import ProbeResult

# The process check is ``pgrep -f -a -- <pattern>``: -a lists each match's command line, so
# a line holding these words can be recognised as a probe of ours (see the module docstring).
PGREP = ("pgrep", "-f", "-a", "--")
_PGREP_MARK = " ".join(PGREP).encode()
READY_TEXT = "Service is operational"


@dataclass(frozen=True, slots=True)
class Answer:
    """A probe command that ran to its end."""

    status: int | None  # exit status; None: it ended without one (killed by a signal)
    stdout: bytes = b""
    stderr: bytes = b""


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """The WAA probe URL answered over HTTP (a source that fetches it itself)."""

    status_code: int
    text: str


class Silence(enum.Enum):
    """A probe command that gave no answer."""

    TIMEOUT = "timeout"  # asked, and no answer within its time (or its channel failed)
    MISSING = "missing"  # the tool could not be started here (not installed)


Reply = Answer | Silence | None  # None: not asked


@dataclass(frozen=True, slots=True)
class ProbeOutput:
    """Everything one probe saw, uninterpreted."""

    container: str | None = None  # the container named by the target (for messages)
    link: bool | None = None  # the connection held (SSH); None: the source has no link
    process: Reply = None  # pgrep -f -a -- PATTERN (through docker exec with a container)
    inspect: Reply = None  # docker inspect -f '{{.State.Running}}' CONTAINER
    logs: Reply = None  # docker logs --tail 200 CONTAINER, stderr merged into stdout
    waa: Answer | HttpAnswer | Silence | None = None  # the WAA /probe URL
    vnc_url: str | None = None


def container_running(inspect: Answer) -> bool:
    """Whether a successful ``docker inspect -f '{{.State.Running}}'`` says running."""
    return inspect.stdout.decode("utf-8", "replace").strip() == "true"


def last_phase(data: bytes) -> str | None:
    """The VM phase the last phase line of ``data`` tells (``docker logs`` output), or None.
    The parser owns the mapping of dockur/WAA lines to phases; ``close`` parses a last line
    that has no newline."""
    parser = LogParser()
    events = [*parser.feed(data), *parser.close()]
    phases = [e.phase for e in events if isinstance(e, PhaseSeen)]
    return phases[-1] if phases else None


def _first_line(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:200] if text else ""


def _failure(answer: Answer) -> str:
    return _first_line(answer.stderr) or f"exit status {answer.status}"


def interpret(raw: ProbeOutput) -> ProbeResult:
    """The ``ProbeResult`` of one probe's raw answers (rules in the module docstring)."""
    errors: list[str] = []
    running: bool | None = None
    # The container's state: True running, False stopped, None not asked or not told.
    up: bool | None = None
    inspect = raw.inspect
    if isinstance(inspect, Answer):
        if inspect.status != 0:
            errors.append(f"docker inspect {raw.container}: {_failure(inspect)}")
        else:
            up = container_running(inspect)
            if not up:
                errors.append(f"container {raw.container} is not running")
    elif inspect is Silence.TIMEOUT:
        errors.append("docker inspect did not answer in time")
    elif inspect is Silence.MISSING:
        errors.append("docker is not available")

    process = raw.process
    if up is False:
        running = False if process is not None else None  # nothing runs in a stopped container
    elif isinstance(process, Answer):
        if process.status in (0, 1):  # by exit status only: stderr may hold login-shell noise
            running = any(line.strip() and _PGREP_MARK not in line for line in process.stdout.splitlines())
        else:
            errors.append(f"pgrep: {_failure(process)}")
    elif process is Silence.TIMEOUT:
        errors.append("pgrep did not answer in time")

    phase = None
    if isinstance(raw.logs, Answer) and raw.logs.status == 0:
        phase = last_phase(raw.logs.stdout)

    waa_ready: bool | None = None
    probe_status: str | None = None
    waa = raw.waa
    if isinstance(waa, HttpAnswer):
        waa_ready = READY_TEXT in waa.text
        probe_status = "ready" if waa_ready else f"HTTP {waa.status_code}"
    elif waa is not None:
        waa_ready = isinstance(waa, Answer) and waa.status == 0 and READY_TEXT in waa.stdout.decode("utf-8", "replace")
        probe_status = "ready" if waa_ready else "Not responding"

    connected = raw.link if raw.link is not None else (raw.inspect is None or up is True)
    return ProbeResult(
        connected=connected,
        running=running,
        phase=phase,
        waa_ready=waa_ready,
        probe_status=probe_status,
        vnc_url=raw.vnc_url,
        error="; ".join(errors) or None,
    )
