"""The shared probe interpretation (trio_sse.sources.probing): raw answers in, ProbeResult out.

Pure: plain tables, no processes, no SSH. The local and SSH sources' own tests check that they
feed it the real commands' answers; these rows pin down what each answer means.
"""

from __future__ import annotations

import pytest

from trio_sse.sources import ProbeResult
from trio_sse.sources.probing import (
    PGREP,
    Answer,
    HttpAnswer,
    ProbeOutput,
    Silence,
    container_running,
    interpret,
    last_phase,
)

OURS = b"4101 pgrep -f -a -- python.*run.py\n"  # a sibling target's concurrent probe
VIA_DOCKER = b"4102 docker exec waa pgrep -f -a -- python.*run.py\n"  # the client that started one
BENCH = b"77 python -u run.py --agent navi\n"
BOOTING = b"Booting Windows using QEMU v9.0.2...\n"
OOBE = b"Windows started successfully, visit http://127.0.0.1:8006/ to view the screen...\n"
STOPPED = Answer(0, b"false\n")
RUNNING = Answer(0, b"true\n")


def test_pgrep_words_are_the_marker_of_our_own_lines() -> None:
    assert " ".join(PGREP).encode() in OURS and " ".join(PGREP).encode() in VIA_DOCKER
    assert PGREP[-1] == "--"  # a pattern starting with "-" is never read as an option


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Nothing asked: a local target with no checks; an SSH link that just dropped.
        (ProbeOutput(), ProbeResult(connected=True)),
        (ProbeOutput(link=False), ProbeResult(connected=False)),
        (ProbeOutput(vnc_url="http://h:8006"), ProbeResult(connected=True, vnc_url="http://h:8006")),
        # pgrep -f -a: exit status decides; our own probes' lines never count.
        (ProbeOutput(process=Answer(0, BENCH)), ProbeResult(running=True)),
        (ProbeOutput(process=Answer(1)), ProbeResult(running=False)),
        (ProbeOutput(process=Answer(0, OURS)), ProbeResult(running=False)),
        (ProbeOutput(process=Answer(0, OURS + VIA_DOCKER + b"\n  \n")), ProbeResult(running=False)),
        (ProbeOutput(process=Answer(0, OURS + BENCH)), ProbeResult(running=True)),
        (ProbeOutput(process=Answer(1, b"", b"bash: warning: setlocale\n")), ProbeResult(running=False)),
        (ProbeOutput(process=Answer(0, b"\xff\xfe 9 python run.py \x1b[31m\n")), ProbeResult(running=True)),
        (
            ProbeOutput(process=Answer(2, b"", b"pgrep: invalid regular expression\nusage\n")),
            ProbeResult(running=None, error="pgrep: pgrep: invalid regular expression"),  # as the host said it
        ),
        (ProbeOutput(process=Answer(3)), ProbeResult(error="pgrep: exit status 3")),
        (ProbeOutput(process=Silence.TIMEOUT), ProbeResult(error="pgrep did not answer in time")),
        (ProbeOutput(process=Silence.MISSING), ProbeResult(running=None)),  # the host cannot tell
        # docker inspect: without a link the container is the host.
        (ProbeOutput(container="waa", inspect=RUNNING), ProbeResult(connected=True)),
        (ProbeOutput(container="waa", inspect=RUNNING, link=True), ProbeResult(connected=True)),
        (
            ProbeOutput(container="waa", inspect=STOPPED),
            ProbeResult(connected=False, running=None, error="container waa is not running"),
        ),
        (
            ProbeOutput(container="waa", inspect=STOPPED, link=True, process=Answer(0, BENCH)),
            ProbeResult(connected=True, running=False, error="container waa is not running"),
        ),
        (  # a stopped container hides pgrep's own failure (its docker exec cannot run)
            ProbeOutput(container="waa", inspect=STOPPED, link=True, process=Answer(1, b"", b"Error: not running")),
            ProbeResult(connected=True, running=False, error="container waa is not running"),
        ),
        (
            ProbeOutput(container="waa", inspect=Answer(0, b"\xff\xfe\n")),
            ProbeResult(connected=False, error="container waa is not running"),
        ),
        (
            ProbeOutput(container="nope", inspect=Answer(1, b"", b"Error: No such object: nope\n")),
            ProbeResult(connected=False, error="docker inspect nope: Error: No such object: nope"),
        ),
        (
            ProbeOutput(container="nope", inspect=Answer(1, b"", b"Error: No such object: nope\n"), link=True, process=Answer(1)),
            ProbeResult(connected=True, running=False, error="docker inspect nope: Error: No such object: nope"),
        ),
        (ProbeOutput(container="waa", inspect=Answer(125)), ProbeResult(connected=False, error="docker inspect waa: exit status 125")),
        (ProbeOutput(container="waa", inspect=Answer(None)), ProbeResult(connected=False, error="docker inspect waa: exit status None")),
        (
            ProbeOutput(container="waa", inspect=Answer(1, b"", b"x" * 500)),
            ProbeResult(connected=False, error="docker inspect waa: " + "x" * 200),
        ),
        (ProbeOutput(container="waa", inspect=Silence.TIMEOUT), ProbeResult(connected=False, error="docker inspect did not answer in time")),
        (ProbeOutput(container="waa", inspect=Silence.MISSING), ProbeResult(connected=False, error="docker is not available")),
        (  # every error is told, in a fixed order
            ProbeOutput(container="waa", link=True, inspect=Silence.TIMEOUT, process=Silence.TIMEOUT),
            ProbeResult(connected=True, error="docker inspect did not answer in time; pgrep did not answer in time"),
        ),
        # docker logs: the last phase line wins; a failed docker logs tells nothing.
        (ProbeOutput(logs=Answer(0, OOBE + BOOTING)), ProbeResult(phase="booting")),
        (ProbeOutput(logs=Answer(0, BOOTING + OOBE.rstrip(b"\n"))), ProbeResult(phase="oobe")),
        (ProbeOutput(logs=Answer(0, b"\x1b[32m" + BOOTING + b"\xff\xfe junk\n")), ProbeResult(phase="booting")),
        (ProbeOutput(logs=Answer(0, b"hello\n")), ProbeResult(phase=None)),
        (ProbeOutput(logs=Answer(1, BOOTING)), ProbeResult(phase=None)),
        (ProbeOutput(logs=Silence.TIMEOUT), ProbeResult(phase=None)),
        # WAA probe: over HTTP (local) the status is known; through curl -s it is not.
        (ProbeOutput(waa=HttpAnswer(200, '{"status": "Service is operational"}')), ProbeResult(waa_ready=True, probe_status="ready")),
        (ProbeOutput(waa=HttpAnswer(503, "booting")), ProbeResult(waa_ready=False, probe_status="HTTP 503")),
        (ProbeOutput(waa=HttpAnswer(200, "hello")), ProbeResult(waa_ready=False, probe_status="HTTP 200")),
        (ProbeOutput(waa=Answer(0, b'{"message": "Service is operational"}')), ProbeResult(waa_ready=True, probe_status="ready")),
        (ProbeOutput(waa=Answer(0, b"<html>\xff</html>")), ProbeResult(waa_ready=False, probe_status="Not responding")),
        (ProbeOutput(waa=Answer(7)), ProbeResult(waa_ready=False, probe_status="Not responding")),
        (ProbeOutput(waa=Answer(28, b"Service is operational")), ProbeResult(waa_ready=False, probe_status="Not responding")),
        (ProbeOutput(waa=Silence.TIMEOUT), ProbeResult(waa_ready=False, probe_status="Not responding")),
    ],
)
def test_interpret(raw: ProbeOutput, expected: ProbeResult) -> None:
    assert interpret(raw) == expected


def test_a_whole_probe_of_a_running_vm() -> None:
    raw = ProbeOutput(
        container="winarena",
        link=True,
        process=Answer(0, OURS + BENCH),
        inspect=RUNNING,
        logs=Answer(0, BOOTING + OOBE),
        waa=Answer(0, b'{"status": "Service is operational"}'),
        vnc_url="http://20.1.2.3:8006",
    )
    assert interpret(raw) == ProbeResult(
        connected=True, running=True, phase="oobe", waa_ready=True, probe_status="ready", vnc_url="http://20.1.2.3:8006"
    )


@pytest.mark.parametrize(
    ("stdout", "running"),
    [(b"true\n", True), (b"true", True), (b"  true \n", True), (b"false\n", False), (b"", False), (b"TRUE\n", False), (b"\xff", False)],
)
def test_container_running(stdout: bytes, running: bool) -> None:
    assert container_running(Answer(0, stdout)) is running


def test_last_phase_reads_whole_output_and_a_last_line_without_newline() -> None:
    assert last_phase(b"") is None
    assert last_phase(BOOTING.rstrip(b"\n")) == "booting"
    assert last_phase(OOBE + b"unrelated\n") == "oobe"
