"""A results folder over the target's ONE SSH connection (SPEC §8): the ``ResultsBackend`` of
``trio_sse.results`` for an SSH target.

Owns: ``SSHResults`` — finding a task's folder, following a ``traj.jsonl``, reading a file and
fetching a listed file into the local ``FileCache``, all as exec channels on the link of the
target's ``SSHSource`` (``link.py``: no second connection; the log follower, the probes and
these share it and its channel slots). Following reuses the log's ``follow.Follower`` on the
file (``tail -c +N -F``; after a reconnect it resumes at the byte already read, checking size
and first bytes: steps resume, none twice). Where the folder is: on the VM when the target's
log is on the host, else inside the container (``docker exec``), as WAA writes it there.

Must not: import asyncio or asyncssh (``link.py`` is the only module that does), build command
lines (``results_commands.py`` / ``commands.py``), write anything on the target, or hold a
fetched file in memory (pieces go to the cache file as they arrive).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import trio

from trio_sse.config import TargetSpec
from trio_sse.errors import FileGone, ResultsUnavailable
from trio_sse.filecache import FileCache
from trio_sse.sources import LogItem
from trio_sse.sources.ssh.commands import RemoteCommands
from trio_sse.sources.ssh.follow import Follower
from trio_sse.sources.ssh.link import ChannelError, Connection, Link, LinkLost
from trio_sse.sources.ssh.results_commands import MISSING_STATUS, ResultsCommands
from trio_sse.trajectory import task_dir_globs

log = logging.getLogger(__name__)

READ_TIMEOUT = 120.0  # seconds for one file read (a large screenshot over a slow link)
_GLOB_CHARS = frozenset("*?[")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class SSHResults:
    """The results folder ``root`` of an SSH target, read over ``link``."""

    find_retry = (0.5, 5.0)

    def __init__(self, link: Link, target: TargetSpec, root: str, cache: FileCache) -> None:
        self.link = link
        self.root = root
        self.cache = cache
        inside = target.container is not None and target.log_location != "host"
        self.location = "container" if inside else "host"
        self.container = target.container if inside else None
        self.commands = ResultsCommands(root, self.container)
        where = f"{link.where}:{self.container}:" if self.container else f"{link.where}:"
        self.description = f"{where}{root}"
        self.reads = 0  # remote file reads (exec channels running cat): trajectories and files

    def _connection(self) -> Connection:
        self.link.require_running()
        conn = self.link.connection
        if conn is None:
            raise ResultsUnavailable(self.link.down_message or f"ssh {self.link.where}: not connected")
        return conn

    async def find_task_dir(self, domain: str, task_id: str) -> str | None:
        if task_dir_globs(self.root, domain, task_id) is None:
            return None  # not a path component: never looked up
        conn = self._connection()
        with trio.move_on_after(self.link.options.command_timeout):
            try:
                status, out, err = await conn.run(self.commands.find(domain, task_id))
            except (LinkLost, ChannelError) as exc:
                raise ResultsUnavailable(f"ssh {self.link.where}: {exc or 'connection lost'}") from None
            if status == 0 and out.endswith(b"\n"):
                return out[:-1].decode("utf-8", "surrogateescape") or None
            raise ResultsUnavailable(f"ssh {self.link.where}: looking for a task folder failed: {err[:200]!r}")
        raise ResultsUnavailable(f"ssh {self.link.where}: looking for a task folder timed out")

    async def follow(
        self,
        path: str,
        send: trio.MemorySendChannel[LogItem],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        if _GLOB_CHARS.intersection(path):
            # The tail command reads such a path as a glob; task folders never have one.
            log.warning("ssh %s: not following %r (glob characters in a task folder)", self.link.where, path)
            task_status.started()
            await trio.sleep_forever()
        commands = RemoteCommands(
            log=path,
            container=self.container,
            log_location=self.location,
            process_pattern=None,
            probe_url="http://127.0.0.1/",  # unused: this follower never probes
        )
        await Follower(self.link, commands, log_name=path).run(send, task_status=task_status)

    async def read(self, path: str, sink: Callable[[bytes], None], *, limit: int) -> None:
        conn = self._connection()
        self.reads += 1
        err = bytearray()
        status: int | None = None
        with trio.move_on_after(READ_TIMEOUT) as bounded:
            try:
                async with conn.open(self.commands.read(path)) as pipe:
                    total = 0
                    while (item := await pipe.next()) is not None:
                        is_err, data = item
                        if is_err:
                            err += data[: max(0, 512 - len(err))]
                            continue
                        total += len(data)
                        if total > limit:
                            raise ResultsUnavailable(f"{path} is larger than {limit} bytes")
                        sink(data)
                status = pipe.exit_status
            except (LinkLost, ChannelError) as exc:
                raise ResultsUnavailable(f"ssh {self.link.where}: reading {path}: {exc or 'connection lost'}") from None
        if bounded.cancelled_caught:
            raise ResultsUnavailable(f"ssh {self.link.where}: reading {path} timed out")
        if status == MISSING_STATUS:
            raise FileGone(f"{path} is not there")
        if status != 0:
            detail = bytes(err).decode("utf-8", "replace").strip()
            raise ResultsUnavailable(f"ssh {self.link.where}: reading {path} failed (exit {status}) {detail}".strip())

    async def open_file(self, path: str, nursery: trio.Nursery) -> tuple[int, int]:
        key = f"{self.link.where}\0{self.container or ''}\0{path}"

        async def fetch(fd: int) -> None:
            await self.read(path, lambda data: _write_all(fd, data), limit=self.cache.max_bytes)

        return await self.cache.open(key, fetch, nursery)
