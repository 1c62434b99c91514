"""The SSH probe: one bounded look at the host, over the link's one connection.

Owns: ``probe`` (what ``SSHSource.probe`` runs): the link state (while the very first
connection attempt is under way, it waits for that attempt's verdict, at most
``connect_timeout``) plus, concurrently on the same connection, each bounded by
``command_timeout``: ``pgrep -f -a`` (through ``docker exec`` with a container),
``docker inspect`` and ``docker logs --tail 200`` (phase), and
``curl -s --max-time 2 <probe_url or http://<guest_ip>:5000/probe>`` (through ``docker exec``
with a container: the WAA guest is reachable from inside it). The answers go, raw, to the
interpretation every source shares (``trio_sse.sources.probing.interpret``). Must not: import
asyncio or asyncssh, build command lines (``commands.py``), interpret output itself, or raise
for a host problem (that is a ``ProbeResult`` field).
"""

from __future__ import annotations

import logging

import trio

from trio_sse.sources import ProbeResult
from trio_sse.sources.probing import Answer, ProbeOutput, Silence, interpret
from trio_sse.sources.ssh.commands import RemoteCommands
from trio_sse.sources.ssh.link import ChannelError, Link, LinkLost

log = logging.getLogger(__name__)


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
    answers: dict[str, Answer | Silence] = {}

    async def one(key: str, command: str | None) -> None:
        if command is None:
            return  # not asked
        answers[key] = Silence.TIMEOUT
        with trio.move_on_after(timeout):
            try:
                status, out, err = await conn.run(command)
            except (LinkLost, ChannelError) as exc:
                log.info("ssh %s: probe %s failed: %s", link.where, key, exc)
            else:
                answers[key] = Answer(status, out, err)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, "process", commands.process())
        nursery.start_soon(one, "inspect", commands.inspect())
        nursery.start_soon(one, "logs", commands.container_logs())
        nursery.start_soon(one, "waa", commands.waa_probe())
    return interpret(
        ProbeOutput(
            container=commands.container,
            link=conn.alive,
            process=answers.get("process"),
            inspect=answers.get("inspect"),
            logs=answers.get("logs"),
            waa=answers.get("waa"),
            vnc_url=vnc_url,
        )
    )
