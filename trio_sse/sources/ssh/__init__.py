"""The SSH source: follow a remote benchmark log and probe the remote host over ONE connection.

Owns: ``SSHSource`` (the ``Source`` protocol of ``trio_sse.sources`` for a ``TargetSpec``
whose ``ssh`` is set, SPEC §3 "SSH target"), which composes the parts of this package:

* ``commands.py`` — pure: every remote command line, the guard, ``backoff_delay``;
* ``link.py`` — the ONLY module of trio-sse importing asyncio, asyncssh or trio-asyncio: the
  one connection (kept up, reconnected with backoff), its exec channels, ``SSHOptions``;
* ``follow.py`` — following the log's files on the link (``follow``);
* ``loopback.py`` — the same exec-channel API for commands run on this machine (a local
  target whose log is inside a container: ``LocalSource`` uses it);
* ``probe.py`` — the probe on the link (``probe``).

Must not: import asyncio or asyncssh itself, parse the log, or raise for a host problem (that
is a ``SourceDown`` item or a ``ProbeResult`` field). Target options are validated by
``TargetSpec`` / ``SSHSpec`` (config.py) when the spec is built, not here.

Lifecycle (what the monitor does)::

    source = SSHSource(target)                    # target.ssh is not None
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run)           # 1. the connection manager, first
        await nursery.start(source.follow, send)  # 2. then follow / probe, from any task
        result = await source.probe()
        ...
        nursery.cancel_scope.cancel()             # ends all three; the connection is closed

``run()`` reports ``started`` at once, before the first connection attempt; ``follow`` /
``probe`` called while ``run`` is not running raise ``RuntimeError``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import trio

from trio_sse.config import TargetSpec
from trio_sse.errors import ConfigError
from trio_sse.sources import LogItem, ProbeResult
from trio_sse.sources.ssh.commands import RemoteCommands, _tail_note, backoff_delay
from trio_sse.sources.ssh.follow import Follower
from trio_sse.sources.ssh.link import Link, SSHOptions, SSHStatistics, where
from trio_sse.sources.ssh.probe import probe

__all__ = ["RemoteCommands", "SSHOptions", "SSHSource", "SSHStatistics", "_tail_note", "backoff_delay"]


class SSHSource:
    """Follow and probe one SSH target. See the module docstring for the lifecycle."""

    def __init__(
        self,
        target: TargetSpec,
        *,
        options: SSHOptions = SSHOptions(),
        rand: Callable[[], float] = random.random,
    ) -> None:
        if target.ssh is None:
            raise ConfigError(f"target {target.name!r} has no ssh host")
        ssh = target.ssh
        self.target = target
        self.ssh = ssh
        self.options = options
        host = f"[{ssh.host}]" if ":" in ssh.host else ssh.host
        self.vnc_url = target.vnc_url or f"http://{host}:8006"
        self.commands = RemoteCommands(
            log=target.log,
            container=target.container,
            log_location=target.log_location,
            process_pattern=target.process_pattern,
            probe_url=target.probe_url or f"http://{target.guest_ip}:5000/probe",
        )
        if target.log_location == "stdout":
            self.log_name = f"docker logs {target.container}"
        elif target.log_location == "container":
            self.log_name = f"{target.container}:{target.log}"
        else:
            self.log_name = target.log
        self.where = where(ssh)
        self.description = f"{self.where}:{self.log_name}"
        self.resumes_globs = self.commands.is_glob  # follow(starts=…) works
        self.link = Link(ssh, options=options, rand=rand, label=f"SSHSource {self.description}")
        self._follower = Follower(self.link, self.commands, log_name=self.log_name)

    def statistics(self) -> SSHStatistics:
        return self.link.statistics()

    @property
    def surveys(self) -> int:
        """Looks at the log's files answered so far (``follow.Follower``; tests wait on it)."""
        return self._follower.surveys

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the one SSH connection up until cancelled (``Link.run``)."""
        await self.link.run(task_status=task_status)

    async def follow(
        self,
        send: trio.MemorySendChannel[LogItem],
        *,
        offset: int = 0,
        head: bytes = b"",
        starts: Mapping[str, tuple[int, bytes]] | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Follow the remote log until cancelled (``follow.Follower.run``): every followed
        file gets ``LogReset(reason="opened")`` once it is seen, then its ``LogBytes``; a log
        with no file gets ``LogMissing``.

        ``offset`` > 0 resumes a generation of a single log file the caller already has up to
        that byte (no ``LogReset`` is sent first; ``head``, its first bytes, are checked against
        the file first); a glob refuses it (``ValueError``). ``starts``: a glob's files the
        caller read, each ``(offset, head)`` by the name its items carry (cluster mode's
        failover of a glob target; ``resumes_globs``)."""
        await self._follower.run(send, offset=offset, head=head, starts=starts, task_status=task_status)

    async def probe(self) -> ProbeResult:
        """One bounded look at the host (``probe.probe``). Never raises for a host problem;
        the result's ``error`` says what went wrong."""
        return await probe(self.link, self.commands, vnc_url=self.vnc_url)
