"""A results folder on this machine (SPEC §8): the ``ResultsBackend`` of ``trio_sse.results``.

Owns: ``LocalResults`` — finding a task's folder (``trajectory.task_dir_globs`` /
``pick_newest`` over ``glob``), following a ``traj.jsonl`` (``LocalSource.follow``: the log's
own tail -F, woken by inotify), reading a file in pieces and opening a listed file to serve it
(no cache: it is on this disk already). Files are opened ``O_NOFOLLOW`` and must be regular
files: a symlink planted in a task folder does not lead the files API elsewhere.

Why plain ``glob`` / ``os.pread`` on the Trio thread: the same reasons as ``sources/local.py``
(a local regular file answers from the page cache in microseconds; a thread hop would cost
more and would make ``autojump_clock`` tests leap over it). Each read is bounded (64 KiB) and
followed by a checkpoint.

Must not: write anything, parse a trajectory (``trajectory.py``), or raise for a missing folder
(that is None: the caller looks again later).
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Callable

import trio

from trio_sse.errors import FileGone, ResultsUnavailable
from trio_sse.sources import LogItem
from trio_sse.sources.local import LocalSource
from trio_sse.trajectory import pick_newest, task_dir_globs

CHUNK = 64 * 1024


def open_regular(path: str) -> tuple[int, int]:
    """``path`` opened read-only without following a symlink, and its size; ``FileGone`` when
    it is missing or not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # ENOENT, ELOOP (a symlink), EACCES: nothing we may serve
        raise FileGone(f"{path} is not there") from None
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise FileGone(f"{path} is not there") from None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise FileGone(f"{path} is not a regular file")
    return fd, st.st_size


class LocalResults:
    """The results folder ``root`` on this machine."""

    find_retry = (0.05, 1.0)

    def __init__(self, root: str) -> None:
        self.root = root
        self.description = f"local:{root}"

    async def find_task_dir(self, domain: str, task_id: str) -> str | None:
        patterns = task_dir_globs(self.root, domain, task_id)
        if patterns is None:
            return None
        found: list[tuple[str, int]] = []
        for pattern in patterns:
            for path in sorted(glob.glob(pattern)):
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    found.append((path, st.st_mtime_ns))
        await trio.lowlevel.checkpoint()
        return pick_newest(found)

    async def follow(
        self,
        path: str,
        send: trio.MemorySendChannel[LogItem],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        # The path as a glob matching just itself: LocalSource reads "*?[" as a glob.
        source = LocalSource(glob.escape(path), process_pattern=None)
        await source.follow(send, task_status=task_status)

    async def read(self, path: str, sink: Callable[[bytes], None], *, limit: int) -> None:
        fd, size = open_regular(path)
        try:
            if size > limit:
                raise ResultsUnavailable(f"{path} is larger than {limit} bytes")
            offset = 0
            while offset < limit:
                data = os.pread(fd, min(CHUNK, limit - offset), offset)
                if not data:
                    break
                offset += len(data)
                sink(data)
                await trio.lowlevel.checkpoint()
        finally:
            os.close(fd)

    async def open_file(self, path: str, nursery: trio.Nursery) -> tuple[int, int]:
        await trio.lowlevel.checkpoint()
        return open_regular(path)
