"""The SSH probe: one bounded look at the host, over the link's one connection.

Owns: ``probe`` (what ``SSHSource.probe`` runs): the link state (while the very first
connection attempt is under way, it waits for that attempt's verdict, at most
``connect_timeout``) plus, concurrently on the same connection, each bounded by
``command_timeout``: ``pgrep -f -a`` (through ``docker exec`` with a container),
``docker inspect`` and ``docker logs --tail 200`` (phase), and
``curl -s --max-time 2 <probe_url or http://<guest_ip>:5000/probe>`` (through ``docker exec``
with a container: the WAA guest is reachable from inside it). Must not: import asyncio or
asyncssh, build command lines (``commands.py``), or raise for a host problem (that is a
``ProbeResult`` field).
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from trio_sse.logparse import LogParser, PhaseSeen
from trio_sse.sources import ProbeResult
from trio_sse.sources.ssh.commands import _PGREP, RemoteCommands
from trio_sse.sources.ssh.link import ChannelError, CommandResult, Connection, Link, LinkLost

log = logging.getLogger(__name__)

_READY_TEXT = "Service is operational"


async def probe(link: Link, commands: RemoteCommands, *, vnc_url: str) -> ProbeResult:
    """One bounded look at the host (see the module docstring). Never raises for a host
    problem; the result's ``error`` says what went wrong."""
    link.require_running()
    # The first attempt may still be under way: wait for its verdict (bounded) rather than
    # report a host that was never tried as down (status would flap false → true).
    await link.wait_first_verdict()
    conn = link.connection
    if conn is None:
        return ProbeResult(
            connected=False,
            vnc_url=vnc_url,
            error=link.down_message or f"ssh {link.where}: not connected yet",
        )
    timeout = link.options.command_timeout
    results: dict[str, CommandResult | None] = {}

    async def one(key: str, command: str | None) -> None:
        if command is None:
            return
        results[key] = None
        with trio.move_on_after(timeout):
            try:
                results[key] = await conn.run(command)
            except (LinkLost, ChannelError) as exc:
                log.info("ssh %s: probe %s failed: %s", link.where, key, exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, "process", commands.process())
        nursery.start_soon(one, "inspect", commands.inspect())
        nursery.start_soon(one, "logs", commands.container_logs())
        nursery.start_soon(one, "waa", commands.waa_probe())
    return _probe_result(conn, commands.container, vnc_url, results)


def _probe_result(conn: Connection, container: str | None, vnc_url: str, results: dict[str, Any]) -> ProbeResult:
    errors: list[str] = []
    running: bool | None = None
    container_down = False
    if (inspect := results.get("inspect")) is not None:
        status, out, err = inspect
        if status != 0:
            errors.append(f"docker inspect {container}: {_first_line(err) or f'exit status {status}'}")
        elif out.decode("utf-8", "replace").strip() != "true":
            container_down = True
            running = False  # nothing runs in a stopped container
            errors.append(f"container {container} is not running")
    elif "inspect" in results:
        errors.append("docker inspect did not answer in time")
    if (proc := results.get("process")) is not None and not container_down:
        status, out, err = proc
        theirs = [line for line in out.splitlines() if line.strip() and _PGREP.encode() not in line]
        # By exit status only: a login shell may write noise to stderr (~/.bashrc).
        if status in (0, 1):
            running = bool(theirs)
        else:
            errors.append(f"pgrep: {_first_line(err) or f'exit status {status}'}")
    elif "process" in results and not container_down:
        errors.append("pgrep did not answer in time")
    phase: str | None = None
    if (logs := results.get("logs")) is not None and logs[0] == 0:
        phase = _last_phase(logs[1])
    waa_ready, probe_status = False, "Not responding"
    if (waa := results.get("waa")) is not None and waa[0] == 0 and _READY_TEXT in waa[1].decode("utf-8", "replace"):
        waa_ready, probe_status = True, "ready"
    return ProbeResult(
        connected=conn.alive,
        running=running,
        phase=phase,
        waa_ready=waa_ready,
        probe_status=probe_status,
        vnc_url=vnc_url,
        error="; ".join(errors) or None,
    )


def _first_line(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:200] if text else ""


def _last_phase(data: bytes) -> str | None:
    """The VM phase told by the last phase line of ``docker logs`` output, or None."""
    parser = LogParser()
    events = [*parser.feed(data), *parser.close()]
    phases = [e.phase for e in events if isinstance(e, PhaseSeen)]
    return phases[-1] if phases else None
