"""Following a remote log over the SSH link: ``LogItem``s out, each byte once.

Owns: ``Follower`` (what ``SSHSource.follow`` runs: the tail channel, the resume check after a
reconnect, the newest match of a glob, skipping and comparing ``docker logs`` output, and the
``SourceDown`` / ``SourceUp`` items of outages). Must not: import asyncio or asyncssh (it uses
``link.py``'s Trio-native API), build command lines (``commands.py``), parse the log, or raise
for a host problem (an outage is an item; a failed command is retried after a backoff).

* One long-lived exec channel running ``tail -c +<offset+1> -F`` (host file),
  ``docker exec -i <c> …tail…`` (file in the container) or ``docker logs -f <c>`` (container
  stdout). Bytes are sent as they arrive, as ``LogBytes`` with their offset.
* After a reconnect (or a remote command that ended) it continues from the byte offset already
  read: for a file it first checks the remote size and the first bytes (``wc -c`` +
  ``head -c``) — shorter than what was read, missing, or other first bytes mean the file was
  truncated or replaced during the outage → ``LogReset`` and read from 0. ``docker logs -f``
  always restarts at the container's first byte, so the bytes already read are skipped (and
  their start compared: a recreated container → ``LogReset``); ``--since`` was rejected because
  timestamps cannot resume at a byte.
* ``tail -F``'s own stderr notes ("file truncated", "has been replaced", "has appeared" after
  bytes were read) end the tail → ``LogReset`` and a new tail from byte 0. A missing file is
  not an outage: ``tail -F`` waits for it.
* A log path with ``*?[`` is a glob: the newest match is followed, and every ``glob_interval``
  seconds a newer match is looked for (→ ``LogReset(reason="newer-match")``).
* One ``SourceDown`` per outage (the link's first failure message, naming the host) and one
  ``SourceUp`` when the link is back — also for a drop that was repaired before the follower
  noticed.

Known limit: stdout and stderr of one channel are separate pipes on the remote side, so when
``tail -F`` notes a replacement, a few bytes of the new file may already have been sent as the
old file's (the reset follows at once and the new file is then read from byte 0).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from trio_sse.sources import LogBytes, LogItem, LogReset, SourceDown, SourceUp
from trio_sse.sources.ssh.commands import RemoteCommands, _tail_note
from trio_sse.sources.ssh.link import ChannelError, Connection, Link, LinkLost, Pipe

log = logging.getLogger(__name__)

_HEAD_BYTES = 4096  # first bytes of a generation kept to recognise the same file on resume
_RESET, _LOST, _ENDED, _NO_MATCH = "reset", "lost", "ended", "no match"


@dataclass(slots=True)
class _Generation:
    """What the follower has read of the current file generation."""

    offset: int
    head: bytes = b""  # its first bytes (up to _HEAD_BYTES)
    path: str | None = None  # the file followed (the newest match of a glob log)

    def add(self, data: bytes) -> None:
        if len(self.head) < _HEAD_BYTES:
            self.head += data[: _HEAD_BYTES - len(self.head)]
        self.offset += len(data)


@dataclass(slots=True)
class _LinkWatch:
    """One follower's view of outages: what it has reported."""

    reported: int = 0
    down: bool = False


class Follower:
    """Follows one target's log on ``link``; ``run`` may be called by several tasks at once
    (each call keeps its own generation and outage view)."""

    def __init__(self, link: Link, commands: RemoteCommands, *, log_name: str) -> None:
        self.link = link
        self.commands = commands
        self.log_name = log_name  # how items and messages name the log

    async def run(
        self,
        send: trio.MemorySendChannel[LogItem],
        *,
        offset: int = 0,
        head: bytes = b"",
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Follow the remote log until cancelled (see the module docstring).

        ``offset`` > 0 resumes a generation the caller already has up to that byte (no
        ``LogReset`` is sent first); 0 starts with ``LogReset(reason="opened")``. ``head``:
        the generation's first bytes as the caller read them (another process, in cluster
        mode) — checked like after a reconnect, so a file that changed meanwhile is a
        ``LogReset`` and read from 0."""
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        self.link.require_running()
        gen = _Generation(offset, head[:_HEAD_BYTES] if offset else b"")
        watch = _LinkWatch()
        task_status.started()
        if offset == 0:
            await send.send(LogReset(self.log_name, "opened"))
        attempt = 0
        while True:
            conn = await self._wait_link(send, watch)
            try:
                outcome = await self._follow_on(conn, send, gen)
            except LinkLost:
                outcome = _LOST
            except ChannelError as exc:
                log.warning("ssh %s: following %s failed: %s", self.link.where, self.log_name, exc)
                outcome = _ENDED
            if outcome == _LOST or not conn.alive:
                await conn.wait_replaced()
                attempt = 0
            elif outcome == _NO_MATCH:
                await trio.sleep(self.link.options.glob_interval)
            elif outcome == _ENDED:
                await trio.sleep(self.link.backoff(attempt))
                attempt += 1
            else:
                attempt = 0

    async def _wait_link(self, send: trio.MemorySendChannel[LogItem], watch: _LinkWatch) -> Connection:
        """The current connection, once there is one; reports outages on the way."""
        link = self.link
        while True:
            link.require_running()  # run() ended: stop with a clear error instead of waiting forever
            if link.outages > watch.reported:
                watch.reported = link.outages
                if not watch.down:
                    watch.down = True
                    await send.send(SourceDown(link.down_message or f"ssh {link.where}: connection lost"))
            conn = link.connection
            if conn is not None and link.outages == watch.reported:
                if watch.down:
                    watch.down = False
                    await send.send(SourceUp())
                return conn
            await link.wait_changed()

    def _display(self, path: str | None) -> str:
        """How ``LogReset.path`` names the followed file (a glob's current match if any)."""
        if path is None:
            return self.log_name
        c = self.commands
        return f"{c.container}:{path}" if c.log_location == "container" else path

    async def _reset(self, send: trio.MemorySendChannel[LogItem], gen: _Generation, reason: str) -> None:
        name = self._display(gen.path)
        log.info("ssh %s: %s: %s, reading it from the start", self.link.where, name, reason)
        gen.offset, gen.head = 0, b""
        await send.send(LogReset(name, reason))

    async def _follow_on(self, conn: Connection, send: trio.MemorySendChannel[LogItem], gen: _Generation) -> str:
        """One remote follow command on ``conn``: returns _RESET, _ENDED or _NO_MATCH (raises
        LinkLost / ChannelError)."""
        stdout_mode = self.commands.log_location == "stdout"
        if self.commands.is_glob:
            newest = await self._newest(conn)
            if newest is None:
                return _ENDED
            if not newest:
                return _NO_MATCH
            if gen.path is not None and newest != gen.path:
                gen.path = newest
                await self._reset(send, gen, "newer-match")
            gen.path = newest
        if gen.offset > 0 and not stdout_mode:
            reason = await self._resume_check(conn, gen)
            if reason == _ENDED:
                return _ENDED
            if reason is not None:
                await self._reset(send, gen, reason)
        async with conn.open(self.commands.follow(0 if stdout_mode else gen.offset, gen.path)) as pipe:
            if not self.commands.is_glob:
                return await self._pump(pipe, send, gen, skip=gen.offset if stdout_mode else 0)
            outcome = _RESET  # unless the pump ends first: a newer match ended it
            async with trio.open_nursery() as nursery:

                async def pump() -> None:
                    nonlocal outcome
                    outcome = await self._pump(pipe, send, gen, skip=0)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(pump)
                await self._watch_glob(conn, gen.path)
                nursery.cancel_scope.cancel()
            return outcome

    async def _newest(self, conn: Connection) -> str | None:
        """The newest match of the glob log ("" when none), or None when it cannot be told."""
        with trio.move_on_after(self.link.options.command_timeout):
            status, out, _ = await conn.run(self.commands.newest())
            if status == 0 and out.endswith(b"\n"):
                return out[:-1].decode("utf-8", "surrogateescape")
        if not conn.alive:
            raise LinkLost()
        return None

    async def _watch_glob(self, conn: Connection, path: str | None) -> None:
        """Return once a match newer than ``path`` appears (polled every ``glob_interval``) or
        the connection is gone. Never raises for a host problem (it runs in a nursery)."""
        while True:
            await trio.sleep(self.link.options.glob_interval)
            try:
                newest = await self._newest(conn)
            except (LinkLost, ChannelError):
                return
            if newest and newest != path:
                return

    async def _resume_check(self, conn: Connection, gen: _Generation) -> str | None:
        """None: the remote file is still the one read up to ``gen.offset``; else the reset
        reason, or _ENDED when it cannot be told now."""
        with trio.move_on_after(self.link.options.command_timeout):
            status, out, _ = await conn.run(self.commands.resume_check(len(gen.head), gen.path))
            first, _, head = out.partition(b"\n")
            if status == 0 and first.strip() == b"missing":
                return "replaced"
            if status == 0 and first.strip().isdigit():
                if int(first) < gen.offset:
                    return "truncated"
                return None if head == gen.head else "replaced"
        if not conn.alive:
            raise LinkLost()
        return _ENDED

    async def _pump(self, pipe: Pipe, send: trio.MemorySendChannel[LogItem], gen: _Generation, *, skip: int) -> str:
        """Forward one follow channel's bytes. ``skip``: bytes at the start of this stream that
        were already sent (docker logs restarts at 0); their start is compared to ``gen.head``."""
        errbuf = b""
        seen = b""  # this stream's bytes while they are compared with gen.head
        pos = 0  # this stream's byte count
        while (item := await pipe.next()) is not None:
            is_err, data = item
            if is_err:
                errbuf += data
                *lines, errbuf = errbuf.split(b"\n")
                errbuf = errbuf[-4096:]
                for raw in lines:
                    line = raw.decode("utf-8", "replace").strip()
                    reason = _tail_note(line, gen.offset)
                    if reason is not None:
                        await self._reset(send, gen, reason)
                        return _RESET
                    if line:
                        log.info("ssh %s: %s: %s", self.link.where, self.log_name, line)
                continue
            if pos < skip:
                n = min(len(data), skip - pos)
                if pos < len(gen.head):
                    seen += data[:n]
                    m = min(len(seen), len(gen.head))
                    if seen[:m] != gen.head[:m]:  # another stream (a recreated container)
                        await self._reset(send, gen, "replaced")
                        data, skip = seen + data[n:], 0
                        pos = 0
                        if not data:
                            continue
                        await send.send(LogBytes(data, gen.offset))
                        gen.add(data)
                        pos = len(data)
                        continue
                pos += n
                data = data[n:]
                if not data:
                    continue
            await send.send(LogBytes(data, gen.offset))
            gen.add(data)
            pos += len(data)
        return _ENDED
