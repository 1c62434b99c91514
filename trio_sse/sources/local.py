"""The local source: follow a log file on this machine, probe local processes / containers.

Owns: ``LocalSource`` (the ``Source`` protocol of ``trio_sse.sources`` for a file path or
glob on this host, SPEC §3 "Local target"). ``follow`` is ``tail -F`` done by hand: the file is
read from byte 0, then appended bytes are read from the open descriptor at the current offset
(each byte once; the cost is proportional to new bytes). It survives the file not existing yet,
truncation, replacement (rename over it, a new run), and a glob whose newest match changes.
On Linux an inotify descriptor wakes it as soon as the file is written or its
directory changes; the poll stays as a slower fallback (see ``_Inotify``).
``probe`` runs ``pgrep`` / ``docker`` as argument lists (never a shell) and GETs the WAA probe
URL, each bounded to a couple of seconds, and hands the raw answers to the interpretation
every source shares (``trio_sse.sources.probing``).

Must not: parse the log or interpret probe output itself, keep global state, or raise for a
host problem (that is a ``SourceDown`` / a ``ProbeResult`` field).
"""

from __future__ import annotations

import ctypes
import glob
import os
import stat
import struct
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from trio_sse.config import check_target_fields
from trio_sse.errors import ConfigError
from trio_sse.sources import LogBytes, LogItem, LogReset, ProbeResult, SourceDown, SourceUp
from trio_sse.sources.probing import PGREP, Answer, HttpAnswer, ProbeOutput, Silence, container_running, interpret

COMMAND_TIMEOUT = 2.0  # seconds for each probe subprocess and the HTTP probe
_GLOB_CHARS = frozenset("*?[")

# Why plain ``os.pread`` on the Trio thread instead of ``trio.to_thread`` per chunk: the file is
# a regular file (checked at open), so a read never waits for a writer; it is served from the
# page cache in microseconds and bounded by ``chunk_size`` (64 KiB by default), with a
# checkpoint (``await send.send``) after every chunk. A thread hop per chunk would cost more
# than the read itself, and a task parked in a worker thread looks "blocked" to Trio, so an
# ``autojump_clock`` would leap over it in tests. The trade-off: a log on a stalled network
# filesystem could stall the loop for the duration of one read; a monitor of such a log should
# use the SSH source against the host that owns the disk. The file is opened with O_NONBLOCK
# so a FIFO at the path cannot block ``open`` (and is then refused as not a regular file).


@dataclass(slots=True)
class _Generation:
    """One open file generation: the descriptor, where it came from, how far it was read."""

    fd: int
    path: str
    ident: tuple[int, int]  # (st_dev, st_ino) at open: a different pair at ``path`` = replaced
    offset: int = 0

    def close(self) -> None:
        os.close(self.fd)


class _Unreadable(Exception):
    """The path exists but cannot be followed (permission, not a regular file, I/O error)."""


def _open_generation(path: str) -> _Generation:
    """Open ``path`` for following. FileNotFoundError propagates (the caller just waits)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except PermissionError:
        raise _Unreadable(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise _Unreadable(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise _Unreadable(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _Unreadable(f"cannot follow {path}: not a regular file")
    return _Generation(fd=fd, path=path, ident=(st.st_dev, st.st_ino))


# inotify(7) constants (<sys/inotify.h>). IN_NONBLOCK / IN_CLOEXEC are defined as O_NONBLOCK /
# O_CLOEXEC, which differ between architectures, so they are taken from ``os``.
_IN_MODIFY = 0x2
_IN_ATTRIB = 0x4  # includes a change of the link count: the file was unlinked / renamed over
_IN_CLOSE_WRITE = 0x8
_IN_MOVED_TO = 0x80
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000  # the watch is gone (its inode was deleted, its filesystem unmounted)
_FILE_MASK = _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVE_SELF | _IN_DELETE_SELF
_DIR_MASK = _IN_CREATE | _IN_MOVED_TO | _IN_DELETE
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len name bytes
# With every wanted watch in place the poll only backs inotify up (NFS and other filesystems
# where a remote writer raises no events, a glob match in another directory), so it can be slow.
_BACKUP_POLL = 0.25


def _load_libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):  # no libc symbols (musl without inotify, odd builds)
        return None
    return libc


_LIBC = _load_libc()  # read-only after import


class _Inotify:
    """Why: polling the file every 50 ms puts ~25 ms of latency on every appended line (and
    polling faster costs CPU while idle); inotify(7) makes an append wake the follower at once
    and costs nothing while the log is quiet. Owns one non-blocking inotify descriptor with at
    most two watches: the followed file (through ``/proc/self/fd/N``, i.e. the very inode we
    hold open, with no window for a rename in between) and a directory (where the file appears
    or is replaced). Events are only wake-ups: they are read and discarded, and the caller
    re-checks the file itself, so a lost or merged event never loses bytes — the poll remains.

    The constructor raises OSError when inotify is unavailable (not Linux, no libc symbol,
    ``inotify_init1`` failed); the caller then polls as before. A watch that cannot be added
    (ENOENT, the per-user watch limit ENOSPC) only makes ``watch`` report "not covered".
    """

    def __init__(self) -> None:
        if _LIBC is None:
            raise OSError("inotify is not available on this platform")
        self._libc = _LIBC
        fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd: int = fd
        self._key: tuple[object, ...] | None = None  # what the watches cover now
        self._wds: list[int] = []

    def watch(self, file: str | None, directory: str | None, ident: object = None) -> tuple[bool, bool]:
        """Point the watches at ``file`` (a path to the followed inode; ``ident`` tells its
        generations apart, as a descriptor number is reused) and ``directory``.
        Returns (changed, covered): ``covered`` when every wanted watch is in place;
        ``changed`` when they were all added just now — the caller must look at the file
        again before waiting, since what happened before the watches existed raised no event.
        When not covered the caller polls at its usual interval and this retries each call."""
        key = (file, directory, ident)
        if key == self._key:
            return False, True
        for wd in self._wds:
            self._libc.inotify_rm_watch(self.fd, wd)  # EINVAL for a watch already gone: fine
        self._wds = []
        self._key = None
        # Removing a watch queues an IN_IGNORED: discard it, or a caller retrying a watch that
        # cannot be added would be woken by its own retry at once, again and again.
        self._drain()
        covered = True
        for path, mask in ((file, _FILE_MASK), (directory, _DIR_MASK)):
            if path is None:
                continue
            wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
            if wd < 0:
                covered = False
            else:
                self._wds.append(wd)
        if covered:
            self._key = key  # otherwise retry on the next call
        return covered, covered

    async def wait(self, timeout: float) -> None:
        """Until an event arrives or ``timeout`` seconds pass; then discard pending events."""
        with trio.move_on_after(timeout):
            await trio.lowlevel.wait_readable(self.fd)
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return
            pos = 0
            while pos + _EVENT.size <= len(data):
                wd, mask, _cookie, size = _EVENT.unpack_from(data, pos)
                # One of our watches vanished (its inode was freed): re-add on the next call.
                # ``inotify_rm_watch`` queues IN_IGNORED too, for a wd no longer in the list.
                if (mask & _IN_IGNORED and wd in self._wds) or mask & _IN_Q_OVERFLOW:
                    self._key = None
                pos += _EVENT.size + size

    def close(self) -> None:
        trio.lowlevel.notify_closing(self.fd)
        os.close(self.fd)


def _static_dir(pattern: str) -> str:
    """The directory part of ``pattern`` before its first glob character."""
    parts = pattern.split(os.sep)
    for i, part in enumerate(parts):
        if any(c in _GLOB_CHARS for c in part):
            return os.sep.join(parts[:i]) or (os.sep if pattern.startswith(os.sep) else ".")
    return os.path.dirname(pattern) or "."


def _stat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _resumable(gen: _Generation, offset: int, head: bytes) -> str | None:
    """None when ``gen`` is the file a caller read up to ``offset`` (its first bytes are
    ``head`` and it is at least that long; reading goes on there), else the ``LogReset``
    reason (``gen`` is then read from byte 0)."""
    try:
        if os.fstat(gen.fd).st_size < offset:
            return "truncated"
        if os.pread(gen.fd, len(head), 0) != head:
            return "replaced"
    except OSError:
        return "replaced"
    gen.offset = offset
    return None


class LocalSource:
    """Follow a log file (or the newest match of a glob) on this machine and probe it."""

    def __init__(
        self,
        log: str,
        *,
        process_pattern: str | None = "python.*run.py",
        container: str | None = None,
        probe_url: str | None = None,
        vnc_url: str | None = None,
        poll_interval: float = 0.05,
        chunk_size: int = 64 * 1024,
    ) -> None:
        check_target_fields(log=log, container=container, process_pattern=process_pattern, probe_url=probe_url)
        if not (isinstance(poll_interval, (int, float)) and 0 < poll_interval <= 60):
            raise ConfigError(f"poll interval must be more than 0 and at most 60 seconds, got {poll_interval!r}")
        if not (isinstance(chunk_size, int) and 1 <= chunk_size <= 16 * 1024 * 1024):
            raise ConfigError(f"chunk size must be an integer from 1 to 16777216 bytes, got {chunk_size!r}")
        self.log = log
        self.process_pattern = process_pattern
        self.container = container
        self.probe_url = probe_url
        self.vnc_url = vnc_url
        self.poll_interval = float(poll_interval)
        self.chunk_size = chunk_size
        self.is_glob = any(c in _GLOB_CHARS for c in log)
        where = f" in container {container}" if container else ""
        self.description = f"local:{log}{where}"

    # ------------------------------------------------------------------ follow

    def _newest_match(self) -> tuple[str, int] | None:
        """The glob match with the newest mtime (ties: the greater name), as (path, mtime_ns)."""
        best: tuple[int, str] | None = None
        for path in glob.glob(self.log):
            st = _stat_or_none(path)
            if st is None or not stat.S_ISREG(st.st_mode):
                continue
            key = (st.st_mtime_ns, path)
            if best is None or key > best:
                best = key
        return None if best is None else (best[1], best[0])

    def _candidate(self) -> str | None:
        if not self.is_glob:
            return self.log
        newest = self._newest_match()
        return None if newest is None else newest[0]

    def _change(self, gen: _Generation) -> str | None:
        """What happened to the followed file while we were at its end (None: nothing)."""
        st = os.fstat(gen.fd)
        if st.st_size < gen.offset:
            return "truncated"
        now = _stat_or_none(gen.path)
        if now is not None and (now.st_dev, now.st_ino) != gen.ident:
            return "replaced"
        # A path that vanished (rotated away, no successor yet) keeps being followed through
        # the open descriptor: a writer holding it may still append.
        if self.is_glob:
            newest = self._newest_match()
            if newest is not None and newest[0] != gen.path and newest[1] > st.st_mtime_ns:
                return "newer-match"
        return None

    async def _send_chunks(
        self, gen: _Generation, send: trio.MemorySendChannel[LogItem], end: int | None = None
    ) -> int:
        """Read from ``gen.offset`` to EOF (or ``end``), sending LogBytes. Returns bytes read."""
        total = 0
        while end is None or gen.offset < end:
            size = self.chunk_size if end is None else min(self.chunk_size, end - gen.offset)
            data = os.pread(gen.fd, size, gen.offset)
            if not data:
                break
            await send.send(LogBytes(data=data, offset=gen.offset))
            gen.offset += len(data)
            total += len(data)
        return total

    async def _idle(self, notify: _Inotify | None, gen: _Generation | None) -> None:
        """Wait for something to look at: an inotify event, else the poll interval."""
        if notify is None:
            await trio.sleep(self.poll_interval)
            return
        if gen is not None:
            changed, covered = notify.watch(
                f"/proc/self/fd/{gen.fd}", os.path.dirname(gen.path) or ".", gen.ident
            )
        elif self.is_glob:
            changed, covered = notify.watch(None, _static_dir(self.log))
        else:
            changed, covered = notify.watch(None, os.path.dirname(self.log) or ".")
        if changed:
            await trio.lowlevel.checkpoint()
            return  # look again first: what happened before the watch raised no event
        await notify.wait(max(self.poll_interval, _BACKUP_POLL) if covered else self.poll_interval)

    async def follow(
        self,
        send: trio.MemorySendChannel[LogItem],
        *,
        offset: int = 0,
        head: bytes = b"",
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Follow until cancelled. ``offset`` > 0 (with ``head``, the file's first bytes as the
        caller read them): the caller has the file up to ``offset`` — if the file first opened
        still starts with ``head`` and is at least that long, reading continues there without a
        ``LogReset``; otherwise it is another file: ``LogReset`` (replaced / truncated) and
        byte 0. Later generations always start at 0."""
        if offset < 0 or (offset > 0 and not head):
            raise ValueError(f"offset must be >= 0 and come with the file's first bytes, got {offset}")
        gen: _Generation | None = None
        reason = "opened"  # the LogReset reason of the next generation
        resume = offset  # the first generation's offset, if it is still the caller's file
        outage: str | None = None  # set while a SourceDown is outstanding

        async def down(message: str) -> None:
            nonlocal outage
            if outage is None:
                outage = message
                await send.send(SourceDown(message))

        async def up() -> None:
            nonlocal outage
            if outage is not None:
                outage = None
                await send.send(SourceUp())

        try:
            notify: _Inotify | None = _Inotify()
        except OSError:  # not Linux, or no descriptor to spare: poll as before
            notify = None
        task_status.started()
        try:
            while True:
                if gen is None:
                    path = self._candidate()
                    if path is None:  # glob without a match yet
                        await self._idle(notify, None)
                        continue
                    try:
                        gen = _open_generation(path)
                    except FileNotFoundError:  # not there yet: wait quietly
                        await self._idle(notify, None)
                        continue
                    except _Unreadable as exc:
                        await down(str(exc))
                        await trio.sleep(self.poll_interval)
                        continue
                    await up()
                    if resume:
                        reason = _resumable(gen, resume, head) or ""
                        resume = 0
                    if reason:
                        await send.send(LogReset(path=path, reason=reason))
                try:
                    if await self._send_chunks(gen, send):
                        await up()
                        continue
                    change = self._change(gen)
                except OSError as exc:  # EIO and the like: keep the fd, retry at the same offset
                    await down(f"cannot read {gen.path}: {exc.strerror or exc}")
                    await trio.sleep(self.poll_interval)
                    continue
                if change == "truncated":
                    gen.offset = 0
                    await send.send(LogReset(path=gen.path, reason="truncated"))
                    continue
                if change is not None:  # replaced / newer-match
                    # Drain what the old file still holds (bytes appended just before the
                    # rename), bounded by its size now so a busy writer cannot hold us here.
                    try:
                        await self._send_chunks(gen, send, end=os.fstat(gen.fd).st_size)
                    except OSError:
                        pass  # the old generation is being dropped anyway
                    gen.close()
                    gen = None
                    reason = change
                    continue
                await self._idle(notify, gen)
        finally:
            if gen is not None:
                gen.close()
            if notify is not None:
                notify.close()

    # ------------------------------------------------------------------ probe

    async def _run(self, argv: Sequence[str], *, merge_stderr: bool = False) -> Answer | Silence:
        """Run ``argv`` for at most COMMAND_TIMEOUT seconds (``merge_stderr``: stderr into
        stdout, in the order written)."""
        output: dict[str, Any] = {"stderr": subprocess.STDOUT} if merge_stderr else {"capture_stderr": True}
        with trio.move_on_after(COMMAND_TIMEOUT):
            try:
                done = await trio.run_process(list(argv), capture_stdout=True, stdin=subprocess.DEVNULL, check=False, **output)
            except OSError:  # FileNotFoundError, PermissionError: no such tool here
                return Silence.MISSING
            return Answer(done.returncode, done.stdout, done.stderr or b"")
        return Silence.TIMEOUT

    async def _probe_process(self, prefix: Sequence[str]) -> Answer | Silence | None:
        if self.process_pattern is None:
            return None
        # -a lists each match's command line, so the interpretation can drop the lines of our
        # own probes: a sibling target's concurrent pgrep has the same pattern on its command
        # line and would otherwise count as the benchmark.
        return await self._run([*prefix, *PGREP, self.process_pattern])

    async def _probe_url(self) -> HttpAnswer | Silence:
        assert self.probe_url is not None
        with trio.move_on_after(COMMAND_TIMEOUT):
            try:
                async with httpx.AsyncClient(timeout=COMMAND_TIMEOUT, follow_redirects=False) as client:
                    response = await client.get(self.probe_url)
            except httpx.HTTPError:
                return Silence.TIMEOUT
            return HttpAnswer(response.status_code, response.text)
        return Silence.TIMEOUT

    async def probe(self) -> ProbeResult:
        """Run the probe commands (the process check and the container's logs only once
        ``docker inspect`` answered) and hand their answers to the shared interpretation."""
        process: Answer | Silence | None = None
        inspect: Answer | Silence | None = None
        logs: Answer | Silence | None = None
        waa: HttpAnswer | Silence | None = None

        async def container_side(container: str, running: bool) -> None:
            async def get_process() -> None:
                nonlocal process
                process = await self._probe_process(["docker", "exec", container])

            async def get_logs() -> None:
                nonlocal logs
                logs = await self._run(["docker", "logs", "--tail", "200", container], merge_stderr=True)

            async with trio.open_nursery() as nursery:
                if running:  # a stopped container runs nothing: no docker exec into it
                    nursery.start_soon(get_process)
                nursery.start_soon(get_logs)

        async def host_side() -> None:
            nonlocal process, inspect
            if self.container is None:
                process = await self._probe_process([])
                return
            answer = await self._run(["docker", "inspect", "-f", "{{.State.Running}}", self.container])
            inspect = answer
            if isinstance(answer, Answer) and answer.status == 0:
                await container_side(self.container, container_running(answer))

        async def waa_side() -> None:
            nonlocal waa
            waa = await self._probe_url()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(host_side)
            if self.probe_url is not None:
                nursery.start_soon(waa_side)
        return interpret(
            ProbeOutput(
                container=self.container,
                link=None,  # no link: the container, if any, is the host
                process=process,
                inspect=inspect,
                logs=logs,
                waa=waa,
                vnc_url=self.vnc_url,
            )
        )
