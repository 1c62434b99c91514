"""The local source: follow log files on this machine, probe local processes / containers.

Owns: ``LocalSource`` (the ``Source`` protocol of ``trio_sse.sources`` for a file path or
glob on this host, SPEC §3 "Local target"). ``follow`` is ``tail -F`` done by hand: each
file is read from byte 0, then appended bytes are read from its open descriptor at its own
offset (each byte once; the cost is proportional to new bytes). A glob follows every match
that belongs to the current run (``trio_sse.sources.workers.select``: one file per worker,
the ones that changed within ``worker_window`` of the newest, at most ``max_files``), each
with its own offset; their bytes go out interleaved as they arrive, each ``LogBytes`` naming
its file. Before reading, every round compares each file with what was read of it
(``trio_sse.sources.fingerprint``: its size, its first bytes, the bytes just before the
offset), so a log rewritten in place (``cp``, ``dd``, ``open('wb')``) or cut and grown again
is a new generation (``LogReset``, then byte 0) even when it is already longer than the
offset; another file at the path (a rename over it) is one too. A path or glob without a file
is reported once (``LogMissing``). On Linux an inotify descriptor wakes it as soon as a
followed file is written or a watched directory changes; the poll stays as a slower fallback
(see ``_Inotify``). A log inside a container (``log_location`` ``container`` / ``stdout``)
is followed with the SSH follower's commands run on this machine (``ssh.loopback``). A caller
that already read a single (non-glob) file up to an offset (cluster mode's failover) can
continue there: ``follow(offset=, head=)`` checks the file's first bytes and size first; a
caller that read files of a glob gives each one's place: ``follow(starts={path: (offset,
head)})`` (``resumes_globs``).
``probe`` runs ``pgrep`` / ``docker`` as argument lists (never a shell) and GETs the WAA probe
URL, each bounded to a couple of seconds, and hands the raw answers to the interpretation
every source shares (``trio_sse.sources.probing``).

Must not: parse the log or interpret probe output itself, keep global state, or raise for a
host problem (that is a ``SourceDown`` / ``LogMissing`` item or a ``ProbeResult`` field).
"""

from __future__ import annotations

import ctypes
import glob
import logging
import math
import os
import stat
import struct
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from trio_sse.config import LOG_LOCATIONS, check_target_fields
from trio_sse.errors import ConfigError
from trio_sse.sources import LogBytes, LogItem, LogMissing, LogReset, ProbeResult, SourceDown, SourceUp
from trio_sse.sources.fingerprint import HEAD_BYTES, Fingerprint, verdict
from trio_sse.sources.probing import PGREP, Answer, HttpAnswer, ProbeOutput, Silence, container_running, interpret
from trio_sse.sources.workers import Match, select

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 2.0  # seconds for each probe subprocess and the HTTP probe
MAX_FILES = 64  # files of one glob followed at once (a descriptor and a watch each)
WORKER_WINDOW = 15 * 60.0  # seconds: a glob match quieter than this behind the newest is history
_GLOB_CHARS = frozenset("*?[")
_ROUND_CHUNKS = 16  # chunks read from one file before the others get their turn
_REMEMBERED = 256  # files left by a glob whose offsets are kept, should they rejoin

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
class _File:
    """One followed file: the descriptor, where it came from, what was read of it."""

    fd: int
    path: str
    ident: tuple[int, int]  # (st_dev, st_ino) at open: a different pair at ``path`` = replaced
    fp: Fingerprint = field(default_factory=Fingerprint)
    gone: bool = False  # its path vanished; still read through the descriptor

    @property
    def offset(self) -> int:
        return self.fp.offset

    def close(self) -> None:
        os.close(self.fd)


class _Unreadable(Exception):
    """The path exists but cannot be followed (permission, not a regular file, I/O error)."""


def _open_file(path: str) -> _File:
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
    return _File(fd=fd, path=path, ident=(st.st_dev, st.st_ino))


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
    """Why: polling the files every 50 ms puts ~25 ms of latency on every appended line (and
    polling faster costs CPU while idle); inotify(7) makes an append wake the follower at once
    and costs nothing while the log is quiet. Owns one non-blocking inotify descriptor with a
    watch per followed file (through ``/proc/self/fd/N``, i.e. the very inode we hold open,
    with no window for a rename in between) and per directory (where files appear or are
    replaced). Events are only wake-ups: they are read and discarded (``wait`` only tells
    whether one came from a directory, i.e. a glob may have new matches), and the caller
    re-checks the files itself, so a lost or merged event never loses bytes — the poll remains.

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
        self._wds: set[int] = set()
        self._dir_wds: set[int] = set()
        self._dir_event = False  # a directory event (or a lost watch / overflow) was drained

    def watch(self, files: Sequence[tuple[str, object]], directories: Sequence[str]) -> tuple[bool, bool]:
        """Point the watches at ``files`` (paths to followed inodes, each with an ident that
        tells its generations apart, as a descriptor number is reused) and ``directories``.
        Returns (changed, covered): ``covered`` when every wanted watch is in place;
        ``changed`` when they were all added just now — the caller must look at the files
        again before waiting, since what happened before the watches existed raised no event.
        When not covered the caller polls at its usual interval and this retries each call."""
        key = (tuple(files), tuple(sorted(set(directories))))
        if key == self._key:
            return False, True
        for wd in self._wds:
            self._libc.inotify_rm_watch(self.fd, wd)  # EINVAL for a watch already gone: fine
        self._wds, self._dir_wds = set(), set()
        self._key = None
        # Removing a watch queues an IN_IGNORED: discard it, or a caller retrying a watch that
        # cannot be added would be woken by its own retry at once, again and again.
        self._drain()
        self._dir_event = False
        covered = True
        wanted = [(path, _FILE_MASK) for path, _ in files] + [(d, _DIR_MASK) for d in key[1]]
        for path, mask in wanted:
            wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
            if wd < 0:
                covered = False
                continue
            self._wds.add(wd)
            if mask == _DIR_MASK:
                self._dir_wds.add(wd)
        if covered:
            self._key = key  # otherwise retry on the next call
        return covered, covered

    async def wait(self, timeout: float) -> bool:
        """Until an event arrives or ``timeout`` seconds pass; then discard pending events.
        True when one of them came from a directory (or a watch was lost, or events were)."""
        with trio.move_on_after(timeout):
            await trio.lowlevel.wait_readable(self.fd)
        self._drain()
        dir_event, self._dir_event = self._dir_event, False
        return dir_event

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
                # ``inotify_rm_watch`` queues IN_IGNORED too, for a wd no longer in the set.
                if (mask & _IN_IGNORED and wd in self._wds) or mask & _IN_Q_OVERFLOW:
                    self._key = None
                    self._dir_event = True
                elif wd in self._dir_wds:
                    self._dir_event = True
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


@dataclass(frozen=True, slots=True)
class _Left:
    """A file a glob stopped following while it still existed: where to continue if it
    comes back unchanged."""

    ident: tuple[int, int]
    fp: Fingerprint


class LocalSource:
    """Follow a log file (or every current match of a glob) on this machine and probe it."""

    def __init__(
        self,
        log: str,
        *,
        process_pattern: str | None = "python.*run.py",
        container: str | None = None,
        log_location: str = "host",
        probe_url: str | None = None,
        vnc_url: str | None = None,
        poll_interval: float = 0.05,
        chunk_size: int = 64 * 1024,
        glob_interval: float | None = None,
        worker_window: float = WORKER_WINDOW,
        max_files: int = MAX_FILES,
    ) -> None:
        check_target_fields(log=log, container=container, process_pattern=process_pattern, probe_url=probe_url)
        if log_location not in LOG_LOCATIONS:
            raise ConfigError(f"log location must be host, container or stdout, got {log_location!r}")
        if log_location != "host" and not container:
            raise ConfigError(f"log location {log_location!r} needs a container name")
        if not (isinstance(poll_interval, (int, float)) and 0 < poll_interval <= 60):
            raise ConfigError(f"poll interval must be more than 0 and at most 60 seconds, got {poll_interval!r}")
        if not (isinstance(chunk_size, int) and 1 <= chunk_size <= 16 * 1024 * 1024):
            raise ConfigError(f"chunk size must be an integer from 1 to 16777216 bytes, got {chunk_size!r}")
        if glob_interval is None:
            # How often the files are looked at besides inotify's wake-ups (new matches, mtimes):
            # a glob scan here is cheap; in a container each look is a `docker exec`.
            glob_interval = 1.0 if log_location == "host" else 5.0
        if not (isinstance(glob_interval, (int, float)) and 0 < glob_interval <= 3600):
            raise ConfigError(f"glob interval must be more than 0 and at most 3600 seconds, got {glob_interval!r}")
        if not (isinstance(worker_window, (int, float)) and math.isfinite(worker_window) and worker_window >= 0):
            raise ConfigError(f"worker window must be a number of seconds >= 0, got {worker_window!r}")
        if not (isinstance(max_files, int) and 1 <= max_files <= MAX_FILES):
            raise ConfigError(f"max files must be an integer from 1 to {MAX_FILES}, got {max_files!r}")
        self.log = log
        self.process_pattern = process_pattern
        self.container = container
        self.log_location = log_location
        self.probe_url = probe_url
        self.vnc_url = vnc_url
        self.poll_interval = float(poll_interval)
        self.chunk_size = chunk_size
        self.glob_interval = float(glob_interval)
        self.worker_window = float(worker_window)
        self.max_files = max_files
        self.is_glob = log_location != "stdout" and any(c in _GLOB_CHARS for c in log)
        # ``follow(starts=…)`` works (cluster mode's failover of a glob target).
        self.resumes_globs = self.is_glob
        if log_location == "stdout":
            self.description = f"local:docker logs {container}"
        elif log_location == "container":
            self.description = f"local:{container}:{log}"
        else:
            where = f" in container {container}" if container else ""
            self.description = f"local:{log}{where}"

    # ------------------------------------------------------------------ follow

    async def follow(
        self,
        send: trio.MemorySendChannel[LogItem],
        *,
        offset: int = 0,
        head: bytes = b"",
        starts: Mapping[str, tuple[int, bytes]] | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Follow until cancelled (see the module docstring).

        ``offset`` > 0 (one file, not a glob; with ``head``, the file's first bytes as the
        caller read them): the caller has the file up to ``offset`` — if the file first opened
        still starts with ``head`` and is at least that long, reading continues there without a
        ``LogReset``; otherwise it is another generation: ``LogReset`` (replaced / truncated)
        and byte 0. Later generations always start at 0. A glob refuses an offset
        (``ValueError``): each of its files starts at byte 0, or where ``starts`` says.

        ``starts`` (a glob): path → (offset, head) of files the caller read
        (the same check per file: its first bytes are ``head`` and it is at least ``offset``
        long — then it continues at ``offset`` without a ``LogReset``, at 0 too; else
        ``LogReset`` and byte 0). A match not in ``starts`` joins as always."""
        if offset < 0 or (offset > 0 and not head):
            raise ValueError(f"offset must be >= 0 and come with the file's first bytes, got {offset}")
        if offset and self.is_glob:
            raise ValueError("offset resumes one log file; a glob follows each match from its first byte")
        if starts is not None:
            if not self.resumes_globs:
                raise ValueError("starts resumes the files of a glob")
            for path, (at, first) in starts.items():
                if not (isinstance(path, str) and type(at) is int and at >= 0 and isinstance(first, bytes)):
                    raise ValueError(f"a start is a path with an offset >= 0 and first bytes, got {path!r}: {at!r}")
                if at > 0 and not first:
                    raise ValueError(f"offset {at} of {path!r} must come with the file's first bytes")
        if self.log_location != "host":
            # Inside the container: the SSH follower's commands (docker exec … tail -F,
            # docker logs -f) run on this machine.
            from trio_sse.sources.ssh.loopback import follow_in_container

            await follow_in_container(self, send, offset=offset, head=head, starts=starts, task_status=task_status)
            return
        follower = _Follow(self, send, offset=offset, head=head, starts=starts)
        try:
            task_status.started()
            while True:
                if not await follower.round():
                    await follower.idle()
        finally:
            follower.close()

    def _change(self, f: _File) -> str | None:
        """What happened to the followed file since it was last read (None: nothing; it may
        have grown): ``moved`` (another file is at its path: drain this one, open that),
        ``returned`` (its path had vanished and it is back), or a ``LogReset`` reason for
        its content (``truncated`` / ``replaced``, see ``fingerprint.verdict``)."""
        now = _stat_or_none(f.path)
        if now is None:
            # A path that vanished (rotated away, no successor yet) keeps being followed
            # through the open descriptor: a writer holding it may still append.
            f.gone = True
        elif (now.st_dev, now.st_ino) != f.ident:
            return "moved"
        elif f.gone:
            f.gone = False
            return "returned"
        return _content_change(f.fd, f.fp)


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


def _content_change(fd: int, fp: Fingerprint) -> str | None:
    """Compare what was read (``fp``) with the file behind ``fd`` now (a few preads from the
    page cache: cheap enough for every round)."""
    if fp.offset == 0:
        return None
    size = os.fstat(fd).st_size
    head = os.pread(fd, len(fp.head), 0)
    tail = os.pread(fd, len(fp.tail), fp.tail_start) if fp.tail else b""
    return verdict(fp.offset, size=size, head_same=head == fp.head, tail_same=tail == fp.tail)


def _resumable(f: _File, offset: int, head: bytes) -> str | None:
    """None when ``f`` is the generation a caller read up to ``offset`` (its first bytes are
    ``head``, it is at least that long): ``f`` then continues there. Else the ``LogReset``
    reason (``truncated`` / ``replaced``): it is read from byte 0."""
    size = os.fstat(f.fd).st_size
    reason = verdict(offset, size=size, head_same=os.pread(f.fd, len(head), 0) == head, tail_same=True)
    if reason is None and offset:
        # What later rounds compare: the first bytes (the bytes before the offset were not
        # read here, so there is no tail to compare until reading adds one).
        f.fp = Fingerprint(offset=offset, head=head[:HEAD_BYTES])
    return reason


class _Follow:
    """The state of one ``LocalSource.follow`` call: the followed files and one round of
    looking at them (``round``), then waiting for news (``idle``)."""

    def __init__(
        self,
        source: LocalSource,
        send: trio.MemorySendChannel[LogItem],
        *,
        offset: int = 0,
        head: bytes = b"",
        starts: Mapping[str, tuple[int, bytes]] | None = None,
    ) -> None:
        self.src = source
        self.send = send
        # (one file) where the caller already stands in the file first opened: (offset, its
        # first bytes), checked by ``join`` and then forgotten.
        self.resume: tuple[int, bytes] | None = (offset, head) if offset else None
        # (a glob) the same for each file the caller read, checked by its first ``join``.
        self.starts: dict[str, tuple[int, bytes]] = dict(starts or {})
        self.files: dict[str, _File] = {}
        self.left: OrderedDict[str, _Left] = OrderedDict()  # bounded by _REMEMBERED
        self.wanted: tuple[str, ...] = () if source.is_glob else (source.log,)
        self.matched = False  # the last glob scan found a regular file
        self.scan_due = True
        self.last_scan = -math.inf
        self.missing_reported = False
        self.outage: str | None = None  # set while a SourceDown is outstanding
        self.next_reason = "opened"  # the LogReset reason of the single file's next generation
        self.warned: set[str] = set()  # unreadable glob matches already logged
        self.cap_warned = False
        try:
            self.notify: _Inotify | None = _Inotify()
        except OSError:  # not Linux, or no descriptor to spare: poll as before
            self.notify = None

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files.clear()
        if self.notify is not None:
            self.notify.close()

    # ------------------------------------------------------------ items

    async def down(self, message: str) -> None:
        if self.outage is None:
            self.outage = message
            await self.send.send(SourceDown(message))

    async def up(self) -> None:
        if self.outage is not None:
            self.outage = None
            await self.send.send(SourceUp())

    async def reset(self, f: _File, reason: str) -> None:
        f.fp.clear()
        self.missing_reported = False
        await self.send.send(LogReset(path=f.path, reason=reason))

    async def read(self, f: _File, *, end: int | None = None, chunks: int | None = None) -> tuple[int, bool]:
        """Send ``f``'s bytes from its offset to EOF (or ``end``), at most ``chunks`` chunks.
        Returns (bytes read, whether more may be there)."""
        total = n = 0
        size = self.src.chunk_size
        while end is None or f.offset < end:
            if chunks is not None and n >= chunks:
                return total, True
            want = size if end is None else min(size, end - f.offset)
            data = os.pread(f.fd, want, f.offset)
            if not data:
                break
            await self.send.send(LogBytes(data=data, offset=f.offset, path=f.path))
            f.fp.add(data)
            total += len(data)
            n += 1
        return total, False

    # ------------------------------------------------------------ one round

    async def round(self) -> bool:
        """Look at the glob and every followed file once. True when a file may have more
        bytes right now (the caller comes back at once instead of waiting)."""
        src = self.src
        if src.is_glob and (self.scan_due or trio.current_time() - self.last_scan >= src.glob_interval):
            self.scan()
        for path in [p for p in self.files if p not in self.wanted]:
            await self.leave(self.files.pop(path))
        unreadable: str | None = None
        for path in self.wanted:
            if path not in self.files:
                problem = await self.join(path)
                unreadable = unreadable or problem
        if unreadable is not None and not self.files:
            await self.down(unreadable)
        await self.report_missing()
        busy = False
        for f in list(self.files.values()):
            busy = await self.service(f) or busy
        return busy

    def scan(self) -> None:
        src = self.src
        matches = []
        for path in glob.glob(src.log):
            st = _stat_or_none(path)
            if st is not None and stat.S_ISREG(st.st_mode):
                matches.append(Match(path, st.st_mtime_ns / 1e9))
        chosen = select(matches, window=src.worker_window, limit=src.max_files)
        if chosen.left_out and not self.cap_warned:
            self.cap_warned = True
            log.warning(
                "%s: %d files of the current run match; following the %d changed most recently (max_files)",
                src.log, len(chosen.paths) + chosen.left_out, len(chosen.paths),
            )
        self.matched = bool(matches)
        self.wanted = chosen.paths
        self.scan_due = False
        self.last_scan = trio.current_time()

    async def join(self, path: str, reason: str | None = None) -> str | None:
        """Start following ``path`` (``reason``: of its ``LogReset``, when known); returns why
        it cannot be read, if so."""
        try:
            f = _open_file(path)
        except FileNotFoundError:  # not there (yet): wait quietly
            return None
        except _Unreadable as exc:
            if not self.src.is_glob:
                await self.down(str(exc))
            elif path not in self.warned:
                self.warned.add(path)
                log.warning("%s (skipped)", exc)
            return str(exc)
        self.warned.discard(path)
        self.files[path] = f
        await self.up()
        left = self.left.pop(path, None)
        resume, self.resume = self.resume, None
        if self.src.is_glob:
            resume = self.starts.pop(path, None)
        if reason is None and resume is not None:
            try:
                reason = _resumable(f, *resume)
            except OSError:
                reason = "replaced"  # cannot tell: read it again from byte 0
            if reason is None:  # the caller's file: continue at its offset, no LogReset
                self.next_reason = "opened"
                return None
        if reason is None and left is not None:
            if left.ident != f.ident:
                reason = "replaced"
            else:
                try:
                    reason = _content_change(f.fd, left.fp)
                except OSError:
                    reason = "replaced"  # cannot tell: read it again from byte 0
                if reason is None:  # the same file, maybe grown: continue where we stopped
                    f.fp = left.fp
                    return None
        if reason is None:
            reason = "opened" if self.src.is_glob else self.next_reason
        self.next_reason = "opened"
        await self.reset(f, reason)
        return None

    async def leave(self, f: _File) -> None:
        """Stop following ``f`` (no longer wanted): read what it holds now, then close it
        silently, keeping its offset should it be wanted again."""
        try:
            await self.read(f, end=os.fstat(f.fd).st_size)
        except OSError:
            pass  # it is being dropped anyway
        if not f.gone:
            self.left[f.path] = _Left(f.ident, f.fp)
            while len(self.left) > _REMEMBERED:
                self.left.popitem(last=False)
        f.close()

    async def report_missing(self) -> None:
        """``LogMissing`` once, when nothing is at the log path (or matches the glob). A file
        still followed through its descriptor is reported by ``service`` when its path
        vanishes (what ``_change`` saw: the two must not disagree)."""
        if self.src.is_glob:
            missing = not self.matched and not self.files
        else:
            missing = not self.files and _stat_or_none(self.src.log) is None
        if missing:
            await self.missing()

    async def missing(self) -> None:
        if not self.missing_reported:
            self.missing_reported = True
            await self.send.send(LogMissing(self.src.log))

    async def service(self, f: _File) -> bool:
        """Look at ``f`` (changed?) and send what it has; True when it may have more."""
        try:
            change = self.src._change(f)
            if change == "moved":
                # Drain what the old file still holds (bytes appended just before the
                # rename), bounded by its size now so a busy writer cannot hold us here.
                try:
                    await self.read(f, end=os.fstat(f.fd).st_size)
                except OSError:
                    pass  # the old generation is being dropped anyway
                del self.files[f.path]
                f.close()
                self.left.pop(f.path, None)
                self.scan_due = True  # (a glob: whether the new file is still wanted)
                if await self.join(f.path, "replaced") is None and f.path not in self.files:
                    self.next_reason = "replaced"  # it vanished again: whatever comes next
                return f.path in self.files
            if f.gone and not self.src.is_glob:
                await self.missing()  # the writer may still append: read on through the fd
            if change == "returned" and not self.src.is_glob:
                await self.reset(f, "replaced")  # it was reported missing: a new generation
            elif change in ("truncated", "replaced"):
                await self.reset(f, change)
            read, more = await self.read(f, chunks=_ROUND_CHUNKS)
        except OSError as exc:  # EIO and the like: keep the fd, retry at the same offset
            await self.down(f"cannot read {f.path}: {exc.strerror or exc}")
            return False
        if read:
            await self.up()
        return more

    # ------------------------------------------------------------ waiting

    async def idle(self) -> None:
        """Wait for something to look at: an inotify event, else the poll interval."""
        src = self.src
        timeout = src.poll_interval
        if src.is_glob:
            timeout = min(timeout, max(0.0, self.last_scan + src.glob_interval - trio.current_time()))
        if self.outage is not None or self.notify is None:
            await trio.sleep(timeout)
            return
        files = [(f"/proc/self/fd/{f.fd}", f.ident) for f in self.files.values()]
        directories = {os.path.dirname(f.path) or "." for f in self.files.values()}
        directories.add(_static_dir(src.log) if src.is_glob else os.path.dirname(src.log) or ".")
        changed, covered = self.notify.watch(files, sorted(directories))
        if changed:
            self.scan_due = True
            await trio.lowlevel.checkpoint()
            return  # look again first: what happened before the watch raised no event
        if covered:
            timeout = max(src.poll_interval, _BACKUP_POLL)
            if src.is_glob:
                timeout = min(timeout, max(0.0, self.last_scan + src.glob_interval - trio.current_time()))
        if await self.notify.wait(timeout):
            self.scan_due = True
