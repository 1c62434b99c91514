"""Helpers the test modules share, each written once (imported as ``from support import …``:
pytest puts ``tests/`` on ``sys.path``, as for ``rawhttp``, ``fakehttp``, ``sshd``).

Owns:

* ``finished_log``: a whole simulated WAA run, already written, for tests that need a log;
* ``wait_for``: polling a condition about a real server over real sockets (no virtual time
  there), bounded, naming what it waited for;
* ``decode_sse``: SSE events from body chunks through httpx-sse's *public* API, the
  independent oracle for our frames (chunks are fed as given: byte by byte, split anywhere);
* ``IdleSource``: a source with nothing to say, for tests that drive a monitor directly;
* ``/metrics`` reading: ``parse_metrics`` (prometheus-client's own parser), ``scrape_metrics``,
  ``wait_metric``;
* a child process of ours: ``child_env`` (its environment), ``wait_healthy`` (a server child
  answering ``/healthz``). ``rawhttp.serve_process`` runs a real ``trio-sse serve`` with them.

A free port is ``trio_sse.testing.free_port`` (public API): import it from there.

Must not: define fixtures (the plugins ``browser.py`` and ``sshd.py`` do), fake the server,
hold any test's expectations, or import the other helper modules (``rawhttp`` imports this).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import httpx
import trio
from httpx_sse import EventSource, ServerSentEvent
from prometheus_client.parser import text_string_to_metric_families

from trio_sse.sources import ProbeResult
from trio_sse.testing import simulated_run

__all__ = [
    "IdleSource",
    "child_env",
    "decode_sse",
    "finished_log",
    "parse_metrics",
    "scrape_metrics",
    "wait_for",
    "wait_healthy",
    "wait_metric",
]

# Polling a child process or a real server we do not drive: how often to look again.
POLL = 0.01


async def finished_log(tmp_path: Path, tasks: int = 2) -> str:
    """``tmp_path/waa.log`` holding a whole simulated run of ``tasks`` tasks (written at once)."""
    log = tmp_path / "waa.log"
    async with simulated_run(log, tasks=tasks, step_seconds=0) as run:
        await run.done.wait()
    return str(log)


async def wait_for(predicate: Callable[[], bool], what: str = "the condition", *, timeout: float = 10.0) -> None:
    """Poll ``predicate`` until it holds (real sockets: no virtual time here); fail after
    ``timeout`` seconds naming ``what``."""
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(POLL)
        return
    raise AssertionError(f"waited {timeout:g} s for {what}")


def decode_sse(chunks: Iterable[bytes]) -> list[ServerSentEvent]:
    """The events in a response body arriving as ``chunks``, as httpx-sse reads them: an
    ``EventSource`` over a streamed ``httpx.Response``, each chunk fed as it is."""
    body = [bytes(c) for c in chunks]
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=iter(body))
    return list(EventSource(response).iter_sse())


class IdleSource:
    """A source with nothing to say (the tests drive the monitor directly)."""

    description = "idle"

    async def follow(self, send, *, task_status=trio.TASK_STATUS_IGNORED):  # type: ignore[no-untyped-def]
        task_status.started()
        await trio.sleep_forever()

    async def probe(self) -> ProbeResult:
        return ProbeResult(connected=True)


# ---------------------------------------------------------------- /metrics


def parse_metrics(text: str) -> tuple[dict[str, str], dict[str, float]]:
    """Family types, and every sample as ``name{k=v,…}`` (labels sorted) or a bare ``name``
    → value, read with prometheus-client's own parser."""
    types: dict[str, str] = {}
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return types, samples


async def scrape_metrics(url: str, headers: Mapping[str, str] | None = None) -> dict[str, float]:
    """Every sample of ``url``/metrics (see ``parse_metrics``)."""
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.get(url + "/metrics", headers=dict(headers or {}))
    r.raise_for_status()
    return parse_metrics(r.text)[1]


async def wait_metric(
    url: str,
    name: str,
    predicate: Callable[[float], bool],
    *,
    timeout: float = 20.0,
    headers: Mapping[str, str] | None = None,
) -> float:
    """Scrape until sample ``name`` exists and satisfies ``predicate``; its value."""
    with trio.move_on_after(timeout):
        while True:
            value = (await scrape_metrics(url, headers)).get(name)
            if value is not None and predicate(value):
                return value
            await trio.sleep(0.05)  # each look is a request the server answers: not too often
    raise AssertionError(f"waited {timeout:g} s for {name} to satisfy the predicate")


# ---------------------------------------------------------------- child processes


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment for a child process: no ``TRIO_SSE_*`` of the developer's, unbuffered
    output, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_SSE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


async def wait_healthy(url: str, proc: trio.Process, *, stderr_path: Path | None = None, timeout: float = 20.0) -> None:
    """Until ``url``/healthz answers 200 (bounded); fails at once if ``proc`` exits first,
    with its stderr when ``stderr_path`` is given."""
    with trio.fail_after(timeout):
        async with httpx.AsyncClient() as c:
            while True:
                if proc.returncode is not None:
                    said = stderr_path.read_text(errors="replace") if stderr_path is not None else ""
                    raise AssertionError(f"server exited early ({proc.returncode}): {said}")
                try:
                    if (await c.get(url + "/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.05)  # polling a child process we do not control


# ---------------------------------------------------------------- a two-task WAA run

# Two tasks (one passed, one failed) and WAA's own average: the run the history and alert tests
# record and alert on.
TWO_TASK_RUN = (
    b"[2024-05-06 10:00:00,001 INFO run/80-MainProcess] Worker 0 is doing tasks: "
    b"[('notepad', 'aaaa-WOS'), ('chrome', 'bbbb-WOS')]\n"
    b"[2024-05-06 10:00:01,002 INFO run/91-MainProcess] [Example ID]: aaaa-WOS\n"
    b"[2024-05-06 10:00:03,001 INFO lib_run_single/40-MainProcess] Result: 1.00\n"
    b"[2024-05-06 10:00:03,002 INFO run/99-MainProcess] Finished notepad/aaaa-WOS\n"
    b"[2024-05-06 10:00:04,002 INFO run/91-MainProcess] [Example ID]: bbbb-WOS\n"
    b"[2024-05-06 10:00:06,001 INFO lib_run_single/40-MainProcess] Result: 0.00\n"
    b"[2024-05-06 10:00:06,002 INFO run/99-MainProcess] Finished chrome/bbbb-WOS\n"
    b"[2024-05-06 10:00:07,001 INFO run/120-MainProcess] Average score: 0.5\n"
)
