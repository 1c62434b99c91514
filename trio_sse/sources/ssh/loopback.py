"""The exec-channel API of ``link.py``, for commands run on this machine instead of over SSH.

Owns: ``LocalLink`` / ``LocalConnection`` / ``LocalPipe`` (a "link" that is always up, whose
channels are local ``sh -c`` processes with stdin, stdout and stderr pipes) and
``follow_in_container`` (what ``LocalSource.follow`` runs for a log inside a container on this
machine: the SSH follower, ``follow.Follower``, with the same ``docker exec … tail -F`` /
``docker logs -f`` / survey commands from ``commands.py``). So a local container target reads
WAA's ``/client/results/logs/normal-*.log`` inside the ``winarena`` container exactly as an
SSH target does. Must not: build command lines, parse the log, or use asyncio / asyncssh
(it imports ``link.py`` only for its option and exception types).

Why a process per channel is bounded: stdout and stderr are read into a channel of a few
chunks; when the follower stops taking them the readers stop, the OS pipe fills, and the
command blocks — the same backpressure SSH flow control gives. Closing a channel closes the
command's stdin: the guard of ``commands.py`` sees the EOF and kills the command (inside the
container: ``docker exec -i`` passes the EOF on), bounded by ``close_timeout``, then SIGKILL.
"""

from __future__ import annotations

import logging
import random
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Protocol

import trio

from trio_sse.sources import LogItem
from trio_sse.sources.ssh.commands import RemoteCommands, backoff_delay
from trio_sse.sources.ssh.follow import Follower
from trio_sse.sources.ssh.link import ChannelError, CommandResult, SSHOptions



class ContainerLog(Protocol):
    """What of a ``LocalSource`` this module reads (a protocol: no import of local.py, which
    imports this module)."""

    log: str
    container: str | None
    log_location: str
    glob_interval: float
    worker_window: float
    max_files: int

log = logging.getLogger(__name__)

_OUTPUT_LIMIT = 1 << 20  # bytes of a command's output kept by run (as link.py)
_READ = 64 * 1024


class LocalPipe:
    """One local command's output, in arrival order, for a Trio task to drain (``next``)."""

    def __init__(self, receive: trio.MemoryReceiveChannel[tuple[bool, bytes]]) -> None:
        self._receive = receive
        self.exit_status: int | None = None

    async def next(self) -> tuple[bool, bytes] | None:
        """The next piece of output (stderr flag, bytes), or None once both pipes ended."""
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            return None


class LocalConnection:
    """Always up (a local machine does not drop): ``alive`` is True, ``wait_replaced`` never
    returns."""

    alive = True

    def __init__(self, options: SSHOptions) -> None:
        self._options = options
        self.commands_run = 0

    async def wait_replaced(self) -> None:
        await trio.sleep_forever()

    @asynccontextmanager
    async def open(self, command: str) -> AsyncIterator[LocalPipe]:
        """``sh -c command`` with its pipes, closed (shielded, bounded) on exit. Raises
        ``ChannelError`` when it cannot be started."""
        try:
            process = await trio.lowlevel.open_process(
                ["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except OSError as exc:
            raise ChannelError(f"cannot run sh: {exc.strerror or exc}") from exc
        self.commands_run += 1
        # 4 chunks: a little read-ahead; beyond it the command blocks on its full pipe.
        send, receive = trio.open_memory_channel[tuple[bool, bytes]](4)
        pipe = LocalPipe(receive)
        try:
            # The nursery lives in this context manager's frame (entered and left by the
            # caller's task), so yielding inside it is safe (it is no async iterator).
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_read, process.stdout, False, send.clone())
                nursery.start_soon(_read, process.stderr, True, send.clone())
                send.close()
                try:
                    yield pipe
                finally:
                    await self._close(process)
                    nursery.cancel_scope.cancel()
        finally:
            pipe.exit_status = process.returncode
            receive.close()
            with trio.CancelScope(shield=True):  # the pipes' descriptors (the process is gone)
                for stream in (process.stdin, process.stdout, process.stderr):
                    if stream is not None:
                        await stream.aclose()

    async def run(self, command: str) -> CommandResult:
        """Run ``command`` to its end: (exit status, stdout, stderr), output capped."""
        out, err = bytearray(), bytearray()
        async with self.open(command) as pipe:
            while (item := await pipe.next()) is not None:
                is_err, data = item
                buf = err if is_err else out
                buf += data[: max(0, _OUTPUT_LIMIT - len(buf))]
        return pipe.exit_status, bytes(out), bytes(err)

    async def _close(self, process: trio.Process) -> None:
        with trio.CancelScope(shield=True):
            with trio.move_on_after(self._options.close_timeout):
                assert process.stdin is not None
                await process.stdin.aclose()  # EOF: the guard kills the command
                await process.wait()
            if process.returncode is None:
                log.warning("a local command did not end within %.1f s of its EOF: killed", self._options.close_timeout)
                process.kill()
                await process.wait()


async def _read(
    stream: trio.abc.ReceiveStream | None, is_err: bool, send: trio.MemorySendChannel[tuple[bool, bytes]]
) -> None:
    assert stream is not None
    async with send:
        while data := await stream.receive_some(_READ):
            await send.send((is_err, data))


class LocalLink:
    """What ``follow.Follower`` needs of a ``link.Link``, for this machine: one connection,
    never down."""

    outages = 0
    down_message = None

    def __init__(self, options: SSHOptions, *, where: str = "localhost") -> None:
        self.options = options
        self.where = where
        self.connection = LocalConnection(options)

    def require_running(self) -> None:
        return None

    async def wait_changed(self) -> None:
        await trio.sleep_forever()

    def backoff(self, attempt: int) -> float:
        opts = self.options
        return backoff_delay(attempt, first=opts.backoff_first, cap=opts.backoff_cap, rand=random.random)


def log_name(source: ContainerLog) -> str:
    """How items name a log inside a container (as the SSH source names them)."""
    if source.log_location == "stdout":
        return f"docker logs {source.container}"
    return f"{source.container}:{source.log}"


async def follow_in_container(
    source: ContainerLog,
    send: trio.MemorySendChannel[LogItem],
    *,
    offset: int = 0,
    head: bytes = b"",
    starts: Mapping[str, tuple[int, bytes]] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Follow ``source``'s log inside its container on this machine until cancelled
    (``offset`` / ``head`` / ``starts``: as ``Follower.run``)."""
    assert source.container is not None
    commands = RemoteCommands(
        log=source.log,
        container=source.container,
        log_location=source.log_location,
        process_pattern=None,  # (the probe is LocalSource's own)
        probe_url="http://127.0.0.1/unused",
    )
    options = SSHOptions(
        backoff_first=0.5,
        backoff_cap=30.0,
        glob_interval=source.glob_interval,
        worker_window=source.worker_window,
        max_channels=source.max_files + 2,  # no channel limit here: the file bound decides
    )
    link = LocalLink(options)
    # LocalLink has the part of link.Link's API the follower uses (duck typing).
    follower = Follower(link, commands, log_name=log_name(source))  # type: ignore[arg-type]
    await follower.run(send, offset=offset, head=head, starts=starts, task_status=task_status)
