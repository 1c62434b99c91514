"""Following a remote log over the SSH link: ``LogItem``s out, each byte once.

Owns: ``Follower`` (what ``SSHSource.follow`` runs: one tail channel per followed file, the
survey of the log's files every round, the resume check after a reconnect, skipping and
comparing ``docker logs`` output, and the ``SourceDown`` / ``SourceUp`` items of outages).
Must not: import asyncio or asyncssh (it uses ``link.py``'s Trio-native API), build command
lines (``commands.py``), parse the log, or raise for a host problem (an outage is an item; a
failed command is retried after a backoff).

* Every followed file has its own long-lived exec channel running
  ``tail -c +<offset+1> -F`` (host file) or ``docker exec -i <c> …tail…`` (file in the
  container); its bytes are sent as they arrive, as ``LogBytes`` with their offset and the
  file's name. A glob (``*?[``) follows every match of the current run
  (``trio_sse.sources.workers.select``: one file per worker, those that changed within
  ``worker_window`` of the newest), at most ``max_channels - 2`` of them (two channels stay
  for the probe and the survey; beyond that the most recently changed, and one warning).
* Every ``glob_interval`` seconds (for one path without a glob: only when a tail sent or said
  something since the last look, else once a minute; at once when a ``tail`` says anything on
  stderr, and after every reconnect) one survey command (``RemoteCommands.survey``) lists the matches
  with their mtimes and, for each followed file, its size and the MD5 of its first bytes and
  of the bytes read since the last survey (``trio_sse.sources.fingerprint``): a shrink, other
  first bytes or other bytes where we read mean the file was truncated or replaced — also in place (``cp``, ``dd``, ``open('wb')``), also during an outage → its
  tail is stopped, ``LogReset``, and it is read again from byte 0. New matches join
  (``LogReset(reason="opened")``), files no longer wanted are closed silently (their offset
  kept, should they come back unchanged). A path or glob without a file is ``LogMissing``.
* ``tail -F``'s own stderr notes ("file truncated", "has been replaced", "has appeared" after
  bytes were read) end that tail → ``LogReset`` and a new tail from byte 0.
* ``docker logs -f`` (container stdout) always restarts at the container's first byte, so
  after a reconnect the bytes already read are skipped (and their start compared: a
  recreated container → ``LogReset``); ``--since`` was rejected because timestamps cannot
  resume at a byte.
* One ``SourceDown`` per outage (the link's first failure message, naming the host) and one
  ``SourceUp`` when the link is back — also for a drop that was repaired before the follower
  noticed.

Known limits (documented in the README): stdout and stderr of one channel are separate pipes
on the remote side, so when ``tail -F`` notes a replacement, a few bytes of the new file may
already have been sent as the old file's (the reset follows at once and the new file is then
read from byte 0). A file rewritten in place *without* shrinking below the offset (``dd
conv=notrunc``, or ``cp`` / ``open('wb')`` faster than ``tail`` looks) is noticed by the next
survey, up to ``glob_interval`` seconds later; until then its new bytes past the old offset
go out as the old generation's. A rewrite in place that keeps the size of a file without a
glob (no byte for ``tail`` to send) is noticed within a minute.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import trio

from trio_sse.sources import LogBytes, LogItem, LogMissing, LogReset, SourceDown, SourceUp
from trio_sse.sources.fingerprint import HEAD_BYTES, Fingerprint, Snapshot, verdict
from trio_sse.sources.ssh.commands import Check, FileState, RemoteCommands, Survey, _tail_note, parse_survey
from trio_sse.sources.ssh.link import ChannelError, Connection, Link, LinkLost, Pipe
from trio_sse.sources.workers import select

log = logging.getLogger(__name__)

MAX_FILES = 64  # files of one glob followed at once, whatever the channel limit
# One path (no glob): while its tail sends nothing and says nothing, nothing can have happened
# that the survey would see but a same-size rewrite in place; look then only this often.
_IDLE_SURVEY = 60.0
_REMEMBERED = 256  # files left by a glob whose offsets are kept, should they rejoin
_RESET, _LOST, _ENDED = "reset", "lost", "ended"


@dataclass(slots=True)
class _LinkWatch:
    """One follower's view of outages: what it has reported."""

    reported: int = 0
    down: bool = False


@dataclass(slots=True)
class _Tail:
    """A running tail task of one file: how to stop it, and when it has stopped."""

    scope: trio.CancelScope
    done: trio.Event = field(default_factory=trio.Event)

    async def stop(self) -> None:
        self.scope.cancel()
        await self.done.wait()


@dataclass(slots=True)
class _File:
    """One followed remote file and what was read of its current generation."""

    path: str  # on the host (or in the container)
    name: str  # how items name it
    fp: Fingerprint = field(default_factory=lambda: Fingerprint(windowed=True))
    announced: bool = False  # its generation's LogReset was sent
    generation: int = 0  # counts its restarts from byte 0
    next_reason: str = "opened"  # the reason of that LogReset, when it is sent
    # Orders the file's items: a round's LogReset and the tail's first bytes never cross.
    lock: trio.Lock = field(default_factory=trio.Lock)
    tail: _Tail | None = None


class Follower:
    """Follows one target's log on ``link``; ``run`` may be called by several tasks at once
    (each call keeps its own files and outage view)."""

    def __init__(self, link: Link, commands: RemoteCommands, *, log_name: str) -> None:
        self.link = link
        self.commands = commands
        self.log_name = log_name  # how items and messages name the log
        self.looks = 0  # surveys of the log's files started (all runs)
        self.surveys = 0  # ... and answered with a whole answer

    async def run(
        self,
        send: trio.MemorySendChannel[LogItem],
        *,
        offset: int = 0,
        head: bytes = b"",
        starts: Mapping[str, tuple[int, bytes]] | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Follow the remote log until cancelled (see the module docstring).

        ``offset`` > 0 resumes a generation the caller already has up to that byte (no
        ``LogReset`` is sent first); only for one file (not a glob: each of its files starts
        at byte 0). ``head``: that generation's first bytes as the caller read them (another
        process, in cluster mode) — checked by the first survey like after a reconnect, so a
        file that changed meanwhile is a ``LogReset`` and read from byte 0.

        ``starts`` (a glob): the same for each file the caller read, keyed by the name its
        items carry — ``(offset, head)``. Such a file joins as one the glob left and comes back
        (``_Files.left``): the survey compares its size and first bytes, and it continues at
        ``offset`` without a ``LogReset``, or gets one and is read from byte 0."""
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        if offset and self.commands.is_glob:
            raise ValueError("offset resumes one log file; a glob follows each match from its first byte")
        if starts is not None:
            if not self.commands.is_glob:
                raise ValueError("starts resumes the files of a glob")
            for name, (at, first) in starts.items():
                if not (isinstance(name, str) and type(at) is int and at >= 0 and isinstance(first, bytes)):
                    raise ValueError(f"a start is a path with an offset >= 0 and first bytes, got {name!r}: {at!r}")
                if at > 0 and not first:
                    raise ValueError(f"offset {at} of {name!r} must come with the file's first bytes")
        self.link.require_running()
        if self.commands.log_location == "stdout":
            await _Stdout(self, send, offset, head).run(task_status)
        else:
            await _Files(self, send, offset, head, starts or {}).run(task_status)

    async def wait_link(self, send: trio.MemorySendChannel[LogItem], watch: _LinkWatch) -> Connection:
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

    def display(self, path: str) -> str:
        """How items name a followed file."""
        c = self.commands
        return f"{c.container}:{path}" if c.log_location == "container" else path


# --------------------------------------------------------------------------- files


class _Files:
    """One ``Follower.run`` of a file path or glob: the followed files, the rounds."""

    def __init__(
        self,
        follower: Follower,
        send: trio.MemorySendChannel[LogItem],
        offset: int,
        head: bytes,
        starts: Mapping[str, tuple[int, bytes]] | None = None,
    ) -> None:
        self.f = follower
        self.link = follower.link
        self.commands = follower.commands
        self.send = send
        self.files: dict[str, _File] = {}
        self.left: OrderedDict[str, Fingerprint] = OrderedDict()  # bounded by _REMEMBERED
        # (a glob) the files the caller read: as if this follower had left them there.
        for name, (at, first) in (starts or {}).items():
            self.left[self._path_of(name)] = Fingerprint(offset=at, head=first[:HEAD_BYTES], windowed=True)
        self.resets = 0  # LogResets sent: a survey older than the last one cannot say "missing"
        self.missing_reported = False
        self.cap_warned = False
        self.survey_failed = False  # logged once per streak
        self.wake = trio.Event()
        self.active = False  # a tail sent or said something since the last survey
        self.failure: BaseException | None = None  # a tail's LinkLost / ChannelError
        self.limit = max(1, min(MAX_FILES, self.link.options.max_channels - 2))
        if not self.commands.is_glob:
            one = _File(self.commands.log, follower.log_name)
            if offset:
                # The first survey compares ``head`` (and the size) with the file, as after a
                # reconnect: other first bytes or a shorter file → LogReset, byte 0.
                one.fp.offset, one.fp.head, one.announced = offset, head[:HEAD_BYTES], True
            self.files[one.path] = one

    def _path_of(self, name: str) -> str:
        """The file an item name (``Follower.display``) stands for."""
        c = self.commands
        prefix = f"{c.container}:"
        return name[len(prefix) :] if c.log_location == "container" and name.startswith(prefix) else name

    async def run(self, task_status: trio.TaskStatus[None]) -> None:
        watch = _LinkWatch()
        task_status.started()
        attempt = 0
        while True:
            conn = await self.f.wait_link(self.send, watch)
            outcome = await self._on(conn)
            if outcome == _LOST or not conn.alive:
                await conn.wait_replaced()
                attempt = 0
            else:
                await trio.sleep(self.link.backoff(attempt))
                attempt += 1

    # ------------------------------------------------------------ one connection

    async def _on(self, conn: Connection) -> str:
        """Follow on ``conn`` until it is lost (_LOST) or a command failed on it (_ENDED)."""
        self.failure = None
        outcome: str | None = None
        last = -math.inf  # the first round on a connection always looks (the resume check)
        async with trio.open_nursery() as nursery:
            try:
                while self.failure is None:
                    now = trio.current_time()
                    if self.commands.is_glob or self.active or now - last >= _IDLE_SURVEY:
                        self.active, last = False, now
                        await self._round(conn, nursery)
                    with trio.move_on_after(self.link.options.glob_interval):
                        await self.wake.wait()
                    self.wake = trio.Event()
            except LinkLost:
                outcome = _LOST
            except ChannelError as exc:
                self.failure = exc
            finally:
                nursery.cancel_scope.cancel()  # every tail: their channels are closed
        if outcome is None:
            if isinstance(self.failure, ChannelError):
                log.warning("ssh %s: following %s failed: %s", self.link.where, self.f.log_name, self.failure)
            outcome = _LOST if isinstance(self.failure, LinkLost) else _ENDED
        return outcome

    async def _round(self, conn: Connection, nursery: trio.Nursery) -> None:
        checked = [(f, f.generation, f.fp.begin_check()) for f in self.files.values() if f.fp.offset > 0]
        resets_before = self.resets
        survey = await self._survey(conn, [(f.path, snap) for f, _, snap in checked])
        if survey is None:
            for f, generation, _ in checked:
                if f.generation == generation:
                    f.fp.end_check(False)
            await self._start_tails(conn, nursery)  # single file: keep following meanwhile
            return
        for (f, generation, snap), state in zip(checked, survey.checks, strict=True):
            if f.generation != generation:
                continue  # its tail has restarted it since
            reason = None if state is None else _verdict(snap, state)
            f.fp.end_check(state is not None and reason is None)
            if reason is not None:
                await self._restart(f, reason)
            # (gone: the listing below decides)
        assert survey.matches is not None
        present = {m.path for m in survey.matches}
        if self.commands.is_glob:
            await self._select(conn, survey)
            missing = not present
        else:
            one = self.files[self.commands.log]
            missing = one.path not in present
            if missing and (one.announced or one.fp.offset) and self.resets == resets_before:
                # It vanished: what comes at the path next is another generation.
                await self._restart(one, None)
            elif not missing and not one.announced:
                await self._announce(one)
        if missing and not self.missing_reported and self.resets == resets_before:
            self.missing_reported = True
            await self.send.send(LogMissing(self.f.log_name))
        await self._start_tails(conn, nursery)

    async def _survey(self, conn: Connection, snaps: list[tuple[str, Snapshot]], *, listing: bool = True) -> Survey | None:
        checks = [Check(p, s.head, s.window_start, s.window) for p, s in snaps]
        self.f.looks += 1
        with trio.move_on_after(self.link.options.command_timeout):
            status, out, err = await conn.run(self.commands.survey(checks, listing=listing))
            survey = parse_survey(out, len(checks), listing=listing) if status == 0 else None
            if survey is not None:
                self.survey_failed = False
                self.f.surveys += 1
                return survey
            if not self.survey_failed:
                self.survey_failed = True
                detail = err.decode("utf-8", "replace").strip()[:300] or f"exit status {status}"
                log.warning("ssh %s: looking at %s failed (%s); trying again", self.link.where, self.f.log_name, detail)
            return None
        if not conn.alive:
            raise LinkLost()
        return None  # too slow this time

    async def _select(self, conn: Connection, survey: Survey) -> None:
        assert survey.matches is not None
        chosen = select(survey.matches, window=self.link.options.worker_window, limit=self.limit)
        if chosen.left_out and not self.cap_warned:
            self.cap_warned = True
            log.warning(
                "ssh %s: %d files of the current run match %s; following the %d changed most recently "
                "(one channel each, max_channels - 2)",
                self.link.where, len(chosen.paths) + chosen.left_out, self.f.log_name, len(chosen.paths),
            )
        present = {m.path for m in survey.matches}
        for path in [p for p in self.files if p not in chosen.paths]:
            f = self.files.pop(path)
            if f.tail is not None:
                await f.tail.stop()
            if path in present and f.announced:
                self.left[path] = f.fp
                while len(self.left) > _REMEMBERED:
                    self.left.popitem(last=False)
        joining = [p for p in chosen.paths if p not in self.files]
        back = [p for p in joining if p in self.left]
        reasons: dict[str, str] = {}
        if back:
            snaps = [(p, self.left[p].begin_check()) for p in back]
            found = await self._survey(conn, snaps, listing=False)
            if found is None:
                joining = [p for p in joining if p not in back]  # next round
                for p in back:
                    self.left[p].end_check(False)
            else:
                for (path, snap), state in zip(snaps, found.checks, strict=True):
                    fp = self.left.pop(path)
                    reason = "replaced" if state is None else _verdict(snap, state)
                    fp.end_check(reason is None)
                    if reason is None:  # the same file, maybe grown: continue where we stopped
                        self.files[path] = _File(path, self.f.display(path), fp, announced=True)
                    else:
                        reasons[path] = reason
        for path in joining:
            if path not in self.files:
                f = self.files[path] = _File(path, self.f.display(path))
                f.next_reason = reasons.get(path, "opened")
                await self._announce(f)

    # ------------------------------------------------------------ items of one file

    async def _announce(self, f: _File) -> None:
        """Send ``f``'s LogReset unless it was sent (under its lock)."""
        async with f.lock:
            await self._announce_locked(f)

    async def _announce_locked(self, f: _File) -> None:
        if not f.announced:
            f.announced = True
            self.resets += 1
            self.missing_reported = False
            await self.send.send(LogReset(f.name, f.next_reason))
            f.next_reason = "opened"

    async def _restart(self, f: _File, reason: str | None) -> None:
        """A new generation of ``f`` from byte 0: stop its tail and send ``LogReset(reason)``
        (None: later, when it is seen again, as ``replaced``); the round starts a new tail."""
        if f.tail is not None:
            await f.tail.stop()
        where = self.link.where
        async with f.lock:
            f.fp.clear()
            f.generation += 1
            if reason is None:
                log.info("ssh %s: %s vanished; waiting for it", where, f.name)
                f.announced, f.next_reason = False, "replaced"
            else:
                log.info("ssh %s: %s: %s, reading it from the start", where, f.name, reason)
                f.announced, f.next_reason = False, reason
                await self._announce_locked(f)

    async def _start_tails(self, conn: Connection, nursery: trio.Nursery) -> None:
        for f in self.files.values():
            if f.tail is None:
                f.tail = await nursery.start(self._tail, conn, f)

    async def _tail(self, conn: Connection, f: _File, *, task_status: trio.TaskStatus[_Tail]) -> None:
        """Keep one tail channel of ``f`` open (a note that resets reopens it from byte 0; a
        channel that ended is reopened after a backoff) until stopped."""
        with trio.CancelScope() as scope:
            me = _Tail(scope)
            task_status.started(me)
            attempt = 0
            try:
                while True:
                    async with conn.open(self.commands.follow(f.fp.offset, f.path)) as pipe:
                        outcome = await self._pump(pipe, f)
                    if outcome != _RESET:
                        self.active = True
                        self.wake.set()  # the round looks at once: vanished? replaced?
                        await trio.sleep(self.link.backoff(attempt))
                        attempt += 1
                    else:
                        attempt = 0
            except (LinkLost, ChannelError) as exc:
                self.failure = exc
                self.wake.set()
            finally:
                me.done.set()
                if f.tail is me:
                    f.tail = None

    async def _pump(self, pipe: Pipe, f: _File) -> str:
        """Forward one tail channel's bytes; _RESET after a note that reset ``f``."""
        errbuf = b""
        while (item := await pipe.next()) is not None:
            is_err, data = item
            if is_err:
                errbuf += data
                *lines, errbuf = errbuf.split(b"\n")
                errbuf = errbuf[-4096:]
                for raw in lines:
                    line = raw.decode("utf-8", "replace").strip()
                    reason = _tail_note(line, f.fp.offset)
                    if reason is not None:
                        async with f.lock:
                            f.fp.clear()
                            f.generation += 1
                            f.announced, f.next_reason = False, reason
                            log.info("ssh %s: %s: %s, reading it from the start", self.link.where, f.name, reason)
                            await self._announce_locked(f)
                        return _RESET
                    if line:
                        log.info("ssh %s: %s: %s", self.link.where, f.name, line)
                        self.active = True
                        self.wake.set()  # e.g. "has become inaccessible": the round looks now
                continue
            async with f.lock:
                await self._announce_locked(f)
                await self.send.send(LogBytes(data, f.fp.offset, f.name))
                f.fp.add(data)
            self.active = True  # the next round checks that these continued the same file
        return _ENDED


def _verdict(snap: Snapshot, state: FileState) -> str | None:
    return verdict(snap.offset, size=state.size, head_same=state.head == snap.head_md5, tail_same=state.window == snap.window_md5)


# --------------------------------------------------------------------------- docker logs


@dataclass(slots=True)
class _Stream:
    """What was read of the container's output."""

    offset: int
    head: bytes = b""

    def add(self, data: bytes) -> None:
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self.offset += len(data)


class _Stdout:
    """One ``Follower.run`` of ``docker logs -f`` (container stdout)."""

    def __init__(self, follower: Follower, send: trio.MemorySendChannel[LogItem], offset: int, head: bytes) -> None:
        self.f = follower
        self.send = send
        self.stream = _Stream(offset, head[:HEAD_BYTES])  # what docker logs replays is compared with it

    async def run(self, task_status: trio.TaskStatus[None]) -> None:
        link = self.f.link
        watch = _LinkWatch()
        task_status.started()
        if self.stream.offset == 0:
            await self.send.send(LogReset(self.f.log_name, "opened"))
        attempt = 0
        while True:
            conn = await self.f.wait_link(self.send, watch)
            try:
                async with conn.open(self.f.commands.follow(0)) as pipe:
                    outcome = await self._pump(pipe, skip=self.stream.offset)
            except LinkLost:
                outcome = _LOST
            except ChannelError as exc:
                log.warning("ssh %s: following %s failed: %s", link.where, self.f.log_name, exc)
                outcome = _ENDED
            if outcome == _LOST or not conn.alive:
                await conn.wait_replaced()
                attempt = 0
            else:
                await trio.sleep(link.backoff(attempt))
                attempt += 1

    async def _reset(self) -> None:
        log.info("ssh %s: %s: replaced, reading it from the start", self.f.link.where, self.f.log_name)
        self.stream = _Stream(0)
        await self.send.send(LogReset(self.f.log_name, "replaced"))

    async def _emit(self, data: bytes) -> None:
        await self.send.send(LogBytes(data, self.stream.offset, self.f.log_name))
        self.stream.add(data)

    async def _pump(self, pipe: Pipe, *, skip: int) -> str:
        """Forward the stream's bytes. ``skip``: bytes at its start that were already sent
        (docker logs restarts at 0); their start is compared to what was read."""
        seen = b""  # this stream's bytes while they are compared with the head
        pos = 0  # this stream's byte count
        while (item := await pipe.next()) is not None:
            _, data = item  # (2>&1: everything comes as stdout)
            if pos < skip:
                head = self.stream.head
                n = min(len(data), skip - pos)
                if pos < len(head):
                    seen += data[:n]
                    m = min(len(seen), len(head))
                    if seen[:m] != head[:m]:  # another stream (a recreated container)
                        await self._reset()
                        data, skip, pos = seen + data[n:], 0, 0
                        if data:
                            await self._emit(data)
                            pos = len(data)
                        continue
                pos += n
                data = data[n:]
                if not data:
                    continue
            await self._emit(data)
            pos += len(data)
        return _ENDED
