"""The SSH source: follow a remote benchmark log and probe the remote host over ONE connection.

Owns: ``SSHSource`` (the ``Source`` protocol of ``trio_sse.sources`` for a ``TargetSpec``
whose ``ssh`` is set, SPEC §3 "SSH target"), its connection manager, and the remote shell
commands it runs. This is the ONLY module of trio-sse that imports asyncio, asyncssh or
trio-asyncio; everything it exposes is Trio-native. It must not parse the log (``probe`` only
borrows the parser's phase mapping for ``docker logs``) nor raise for a host problem (that is
a ``SourceDown`` item or a ``ProbeResult`` field).

Lifecycle (what the monitor does)::

    source = SSHSource(target)                    # target.ssh is not None
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run)           # 1. the connection manager, first
        await nursery.start(source.follow, send)  # 2. then follow / probe, from any task
        result = await source.probe()
        ...
        nursery.cancel_scope.cancel()             # ends all three; the connection is closed

* ``run()`` opens a trio-asyncio loop of its own (``trio_asyncio.open_loop``) and keeps one
  SSH connection up in it: connect, wait for the link to drop, reconnect with capped
  exponential backoff and jitter (also after a host-key mismatch or an auth failure: those
  are retried slowly, never hammered). It reports ``started`` at once, before the first
  connection attempt. When it is cancelled it closes the connection (shielded, bounded) and
  the loop. ``follow``/``probe`` called while ``run`` is not running raise ``RuntimeError``.
* Why the source owns its loop: the program, the monitor and pytest-trio tests then need no
  asyncio set-up at all, and several SSH targets in one process are several independent
  loops. ``follow``/``probe`` run in other Trio tasks; they reach asyncio through ``_aio``,
  which sets ``trio_asyncio.current_loop`` for the call: asyncssh starts helper tasks with
  ``asyncio.ensure_future()``, and trio-asyncio finds "the running loop" through that context
  variable of the calling Trio task (without it: ``'NoneType' object has no attribute
  'create_task'``).
* ``follow(send, offset=0)``: one long-lived exec channel running ``tail -c +<offset+1> -F``
  (host file), ``docker exec -i <c> …tail…`` (file in the container) or ``docker logs -f <c>``
  (container stdout). Bytes are sent as they arrive, as ``LogBytes`` with their offset. After a
  reconnect (or a remote command that ended) it continues from the byte offset already read:
  for a file it first checks the remote size and the first bytes (``wc -c`` + ``head -c``) —
  shorter than what was read, missing, or other first bytes mean the file was truncated or
  replaced during the outage → ``LogReset`` and read from 0. ``docker logs -f`` always
  restarts at the container's first byte, so the bytes already read are skipped (and their
  start compared: a recreated container → ``LogReset``); ``--since`` was rejected because
  timestamps cannot resume at a byte. ``tail -F``'s own stderr notes ("file truncated",
  "has been replaced", "has appeared" after bytes were read) end the tail → ``LogReset`` and
  a new tail from byte 0. A missing file is not an outage: ``tail -F`` waits for it.
  A log path with ``*?[`` is a glob: the newest match is followed, and every
  ``glob_interval`` seconds a newer match is looked for (→ ``LogReset(reason="newer-match")``).
* One ``SourceDown`` per outage (the first failure's message names the host, e.g.
  ``ssh azureuser@20.1.2.3:22: connection refused``) and one ``SourceUp`` when the link is back
  — also for a drop that was repaired before the follower noticed.
* ``probe()``: the link state (while the very first connection attempt is under way, it
  waits for that attempt's verdict, at most ``connect_timeout``) plus, concurrently on the
  same connection, each bounded by
  ``command_timeout``: ``pgrep -f`` (through ``docker exec`` with a container),
  ``docker inspect`` and ``docker logs --tail 200`` (phase), and
  ``curl -s --max-time 2 <probe_url or http://<guest_ip>:5000/probe>`` (through
  ``docker exec`` with a container: the WAA guest is reachable from inside it).

Remote commands. Every value is ``shlex.quote``d; the process pattern is additionally written
as ``printf`` octal escapes so that the command line of our own shell cannot match it, and
``pgrep -a`` lines of our own probes (a concurrent ``pgrep`` sees the other's arguments) are
dropped. Each
command runs under a small POSIX-sh *guard*: it saves the channel's stdin, starts the command
in the background and waits; a watcher blocked on reading that stdin kills the command when
the channel closes (EOF). That is what ends a ``tail`` that never writes when we close its
channel. A pty (the other way to get a SIGHUP) was rejected: it merges stderr into stdout
(we need tail's stderr apart) and rewrites ``\\n`` as ``\\r\\n``. For a file inside a container
the guard runs *inside* it (``docker exec -i`` passes the EOF on), since killing a
``docker exec`` client does not kill the process it started.

Known limit: stdout and stderr of one channel are separate pipes on the remote side, so when
``tail -F`` notes a replacement, a few bytes of the new file may already have been sent as the
old file's (the reset follows at once and the new file is then read from byte 0).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import shlex
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncssh
import trio
import trio_asyncio

from trio_sse.config import TargetSpec
from trio_sse.errors import ConfigError
from trio_sse.logparse import LogParser, PhaseSeen
from trio_sse.sources import LogBytes, LogItem, LogReset, ProbeResult, SourceDown, SourceUp

log = logging.getLogger(__name__)

_READY_TEXT = "Service is operational"
# Docker container names: [a-zA-Z0-9][a-zA-Z0-9_.-]* (also keeps a leading "-", an option).
_CONTAINER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}\Z")
_GLOB_CHARS = frozenset("*?[")
# pgrep lists matches with their command lines; any line holding this text is a probe of ours
# (a concurrent pgrep, the docker client that started it), never the benchmark.
_PGREP = "pgrep -f -a --"
_HEAD_BYTES = 4096  # first bytes of a generation kept to recognise the same file on resume
_BUFFER_BYTES = 1 << 20  # unread channel bytes before SSH flow control pauses the remote
_OUTPUT_LIMIT = 1 << 20  # bytes of a probe command's output kept


@dataclass(frozen=True, slots=True)
class SSHOptions:
    """Timing and limits of one SSH source (defaults suit a cloud VM; tests shrink them)."""

    backoff_first: float = 0.5  # seconds before the first reconnect attempt
    backoff_cap: float = 30.0
    keepalive_interval: float = 3.0  # a dead link is noticed after interval * count_max
    keepalive_count_max: int = 3
    connect_timeout: float = 15.0  # TCP + SSH handshake + authentication
    command_timeout: float = 2.5  # each probe command
    close_timeout: float = 2.0  # closing a channel / the connection when cancelled
    max_channels: int = 8  # open channels at once (OpenSSH's MaxSessions default is 10)
    glob_interval: float = 5.0  # how often a glob log path is checked for a newer match

    def __post_init__(self) -> None:
        if not 0 < self.backoff_first <= self.backoff_cap:
            raise ConfigError(f"backoff must satisfy 0 < first <= cap, got {self.backoff_first} and {self.backoff_cap}")
        if self.keepalive_interval <= 0 or self.keepalive_count_max < 1:
            raise ConfigError("keepalive interval must be positive and its count at least 1")
        if min(self.connect_timeout, self.command_timeout, self.close_timeout, self.glob_interval) <= 0:
            raise ConfigError("ssh timeouts must be positive")
        if self.max_channels < 2:
            raise ConfigError(f"max channels must be at least 2, got {self.max_channels}")


def backoff_delay(attempt: int, *, first: float, cap: float, rand: Callable[[], float]) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based): ``first * 2**attempt`` capped at
    ``cap``, with "equal jitter" — uniformly in the upper half, so many monitors restarted
    together do not reconnect in lockstep, yet the wait never collapses to zero."""
    base = min(cap, first * 2.0 ** min(attempt, 64))
    return base / 2 + base / 2 * rand()


@dataclass(frozen=True, slots=True)
class SSHStatistics:
    attempts: int  # connection attempts, failed ones included
    connections_opened: int  # successful SSH connections (logins)
    reconnects: int  # connections opened after a previous one was lost
    outages: int  # link outages started (initial failures included)
    commands_run: int  # exec channels opened (follow + probes)
    channels_open: int  # exec channels open right now
    connected: bool


# --------------------------------------------------------------------------- remote commands


def _guard(command: str) -> str:
    """A ``sh -c`` command running the *simple* command ``command`` so that it is killed when
    the channel's stdin reaches EOF (our side closed the channel, or sshd lost the client).
    ``command`` must be one simple command (so ``$!`` is its own pid); its exit status is
    the script's."""
    script = (
        "exec 3<&0 </dev/null; "
        f"{command} 3<&- & c=$!; "
        "{ read -r x <&3; kill $c; } 2>/dev/null & w=$!; "
        "wait $c; r=$?; kill $w 2>/dev/null; exit $r"
    )
    return f"sh -c {shlex.quote(script)}"


def _octal(text: str) -> str:
    """``"$(printf '\\160…')"``: ``text`` without its characters on our command line."""
    escaped = "".join(f"\\{b:03o}" for b in text.encode())
    return f"\"$(printf '{escaped}')\""


@dataclass(frozen=True, slots=True)
class RemoteCommands:
    """The shell command lines of one target (pure; tested without SSH)."""

    log: str
    container: str | None
    log_location: str  # host | container | stdout
    process_pattern: str | None
    probe_url: str

    def _in_container(self, command: str) -> str:
        assert self.container is not None
        return f"docker exec {shlex.quote(self.container)} {command}"

    @property
    def is_glob(self) -> bool:
        return self.log_location != "stdout" and any(c in _GLOB_CHARS for c in self.log)

    def follow(self, offset: int, path: str | None = None) -> str:
        """Follow ``path`` (default: the log) from byte ``offset`` (0-based; ``tail -c +N`` is
        1-based)."""
        if self.log_location == "stdout":
            assert self.container is not None
            return _guard(f"docker logs -f {shlex.quote(self.container)} 2>&1")
        quoted = shlex.quote(path or self.log)
        # GNU tail -F falls back to polling once a second for a file that did not exist when
        # it started (no inotify): new bytes would come late, and a file truncated and regrown
        # within the second would go unnoticed. So wait for the file first (a missing file is
        # normal: the benchmark has not started yet), and bound tail's own polling with -s.
        script = f"while [ ! -e {quoted} ]; do sleep 0.1; done; exec tail -c +{offset + 1} -F -s 0.1 -- {quoted}"
        tail = f"sh -c {shlex.quote(script)}"
        if self.log_location == "container":
            assert self.container is not None
            # The guard runs in the container; -i passes the channel's EOF on to it.
            return f"docker exec -i {shlex.quote(self.container)} {_guard(tail)}"
        return _guard(tail)

    def resume_check(self, head: int, path: str | None = None) -> str:
        """Prints ``missing`` or the file's size, a newline and its first ``head`` bytes."""
        path = shlex.quote(path or self.log)
        script = f"if [ -r {path} ]; then wc -c < {path} && head -c {head} -- {path}; else echo missing; fi"
        command = f"sh -c {shlex.quote(script)}"
        if self.log_location == "container":
            command = self._in_container(command)
        return _guard(command)

    def newest(self) -> str:
        """Prints the newest regular file matching the glob ``log`` and a newline (just the
        newline when none does; ties: the greater name). The pattern reaches the remote shell
        as a quoted argument; only its unquoted expansion ``$1`` (with ``IFS=``, so no word
        splitting) matches files — nothing in it is ever run."""
        script = (
            'IFS=; n=; for f in $1; do [ -f "$f" ] || continue; '
            'if [ -z "$n" ] || ! [ "$n" -nt "$f" ]; then n=$f; fi; done; printf "%s\\n" "$n"'
        )
        command = f"sh -c {shlex.quote(script)} sh {shlex.quote(self.log)}"
        return _guard(self._in_container(command) if self.log_location == "container" else command)

    def process(self) -> str | None:
        if self.process_pattern is None:
            return None
        command = f"{_PGREP} {_octal(self.process_pattern)}"
        return _guard(self._in_container(command) if self.container else command)

    def inspect(self) -> str | None:
        if self.container is None:
            return None
        return _guard(f"docker inspect -f {shlex.quote('{{.State.Running}}')} {shlex.quote(self.container)}")

    def container_logs(self) -> str | None:
        if self.container is None:
            return None
        return _guard(f"docker logs --tail 200 {shlex.quote(self.container)} 2>&1")

    def waa_probe(self) -> str:
        command = f"curl -s --max-time 2 {shlex.quote(self.probe_url)}"
        return _guard(self._in_container(command) if self.container else command)


def _tail_note(line: str, offset: int) -> str | None:
    """The ``LogReset`` reason a ``tail -F`` stderr line asks for, if any."""
    if "file truncated" in line:
        return "truncated"
    if "has been replaced" in line:
        return "replaced"
    if "has appeared" in line and offset > 0:  # a new file where the read one was
        return "replaced"
    return None


# --------------------------------------------------------------------------- asyncssh glue


class _Client(asyncssh.SSHClient):
    """Remembers why the connection ended (asyncio side, sync callback)."""

    def __init__(self) -> None:
        self.lost: Exception | None = None
        self.closed = False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc


class _Pipe(asyncssh.SSHClientSession):  # type: ignore[type-arg]
    """One exec channel's output, in channel order, for a Trio task to drain.

    The asyncssh callbacks (asyncio side) append to a deque and set a Trio event (both run on
    the same thread, inside Trio). Past ``_BUFFER_BYTES`` unread bytes the channel pauses
    reading, so SSH flow control stops the remote command instead of memory growing."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.chan: Any = None
        self.items: deque[tuple[bool, bytes]] = deque()  # (is_stderr, data)
        self.size = 0
        self.paused = False
        self.ended = False
        self.exit_status: int | None = None
        self._wakeup = trio.Event()

    # asyncio side -----------------------------------------------------------------
    def connection_made(self, chan: Any) -> None:
        self.chan = chan

    def data_received(self, data: bytes, datatype: int | None) -> None:
        self.items.append((datatype == asyncssh.EXTENDED_DATA_STDERR, bytes(data)))
        self.size += len(data)
        if self.size > _BUFFER_BYTES and not self.paused:
            self.paused = True
            self.chan.pause_reading()
        self._wakeup.set()

    def exit_status_received(self, status: int) -> None:
        self.exit_status = status

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self._wakeup.set()

    # Trio side --------------------------------------------------------------------
    async def next(self) -> tuple[bool, bytes] | None:
        """The next piece of output (stderr flag, bytes), or None once the channel closed."""
        while not self.items:
            if self.ended:
                return None
            await self._wakeup.wait()
            self._wakeup = trio.Event()
        is_err, data = self.items.popleft()
        # Join what else of the same stream is waiting: fewer, larger items.
        while self.items and self.items[0][0] == is_err:
            data += self.items.popleft()[1]
        self.size -= len(data)
        if self.paused and self.size <= _BUFFER_BYTES // 2:
            self.paused = False
            self._loop.call_soon(self.chan.resume_reading)
        return is_err, data


async def _close_channel(chan: Any) -> None:
    chan.close()
    await chan.wait_closed()


async def _close_connection(conn: asyncssh.SSHClientConnection) -> None:
    conn.close()
    await conn.wait_closed()


class _Lost(Exception):
    """The connection a command ran on is gone."""


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


_RESET, _LOST, _ENDED, _NO_MATCH = "reset", "lost", "ended", "no match"
_OPEN_RETRY_CAP = 0.5  # seconds between tries to open a channel sshd refused (MaxSessions)


# --------------------------------------------------------------------------- the source


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
        if target.container is not None and not _CONTAINER_RE.match(target.container):
            raise ConfigError(
                "container name must be letters, digits, '_', '.' or '-' "
                f"(not starting with one of the last three), got {target.container!r}"
            )
        if target.process_pattern is not None and (not target.process_pattern or "\x00" in target.process_pattern):
            raise ConfigError(f"process pattern must be a non-empty string without NUL, got {target.process_pattern!r}")
        if target.probe_url is not None and not re.match(r"https?://[^\s/]+\S*\Z", target.probe_url):
            raise ConfigError(f"probe URL must start with http:// or https:// and name a host, got {target.probe_url!r}")
        if not 1 <= ssh.port <= 65535:
            raise ConfigError(f"ssh port must be from 1 to 65535, got {ssh.port}")
        self.target = target
        self.ssh = ssh
        self.options = options
        self._rand = rand
        user = f"{ssh.user}@" if ssh.user else ""
        host = f"[{ssh.host}]" if ":" in ssh.host else ssh.host
        self.where = f"{user}{host}:{ssh.port}"
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
        self.description = f"{self.where}:{self.log_name}"
        # State owned by run(); read by follow/probe.
        self._loop: trio_asyncio.TrioEventLoop | None = None
        self._conn: asyncssh.SSHClientConnection | None = None
        self._client: _Client | None = None
        self._outages = 0
        self._in_outage = False
        self._down_message: str | None = None
        self._changed = trio.Event()
        self._slots = trio.Semaphore(options.max_channels)
        self._attempts = 0
        self._connections = 0
        self._commands = 0
        self._channels = 0

    # ------------------------------------------------------------------ introspection

    def statistics(self) -> SSHStatistics:
        return SSHStatistics(
            attempts=self._attempts,
            connections_opened=self._connections,
            reconnects=max(0, self._connections - 1),
            outages=self._outages,
            commands_run=self._commands,
            channels_open=self._channels,
            connected=self._conn is not None,
        )

    # ------------------------------------------------------------------ asyncio bridge

    def _running_loop(self) -> trio_asyncio.TrioEventLoop:
        if self._loop is None:
            raise RuntimeError(f"SSHSource {self.description}: run() must be running before follow()/probe()")
        return self._loop

    async def _aio(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``await fn(*args, **kwargs)`` — an asyncio coroutine function — on our loop."""
        loop = self._running_loop()
        token = trio_asyncio.current_loop.set(loop)
        try:
            return await loop.run_aio_coroutine(fn(*args, **kwargs))
        finally:
            trio_asyncio.current_loop.reset(token)

    # ------------------------------------------------------------------ connection manager

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep one SSH connection up until cancelled (see the module docstring)."""
        if self._loop is not None:
            raise RuntimeError(f"SSHSource {self.description}: run() is already running")
        async with trio_asyncio.open_loop() as loop:
            self._loop = loop
            try:
                task_status.started()
                await self._keep_connected()
            finally:
                with trio.CancelScope(shield=True):
                    await self._drop_connection()
                self._loop = None
                self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _mark_down(self, message: str) -> None:
        if not self._in_outage:
            self._in_outage = True
            self._outages += 1
            log.warning("%s", message)
        self._conn = None
        self._client = None
        self._down_message = message
        self._notify()

    async def _drop_connection(self) -> None:
        conn, self._conn, self._client = self._conn, None, None
        if conn is not None:
            with trio.move_on_after(self.options.close_timeout):
                await self._aio(_close_connection, conn)

    async def _connect(self) -> tuple[asyncssh.SSHClientConnection, _Client]:
        ssh, opts = self.ssh, self.options
        kwargs: dict[str, Any] = {
            "port": ssh.port,
            "keepalive_interval": opts.keepalive_interval,
            "keepalive_count_max": opts.keepalive_count_max,
            "connect_timeout": opts.connect_timeout,
        }
        if ssh.user:
            kwargs["username"] = ssh.user
        if ssh.identity:
            kwargs["client_keys"] = [ssh.identity]
        if not ssh.verify_host_key:
            kwargs["known_hosts"] = None  # the explicit, warned opt-out
        elif ssh.known_hosts:
            kwargs["known_hosts"] = ssh.known_hosts
        client = _Client()
        # asyncssh has its own connect_timeout (and cleans up after it); ours is a backstop.
        with trio.fail_after(opts.connect_timeout + opts.close_timeout):
            conn, _ = await self._aio(asyncssh.create_connection, lambda: client, ssh.host, **kwargs)
        return conn, client

    def _explain(self, exc: BaseException) -> str:
        """A one-line reason for a failed or lost connection."""
        host = self.ssh.host
        if isinstance(exc, asyncssh.HostKeyNotVerifiable):
            where = self.ssh.known_hosts or "~/.ssh/known_hosts"
            return f"host key of {host} not verified: it is not in {where} or does not match it"
        if isinstance(exc, asyncssh.PermissionDenied):
            return "authentication failed (permission denied; check the user and identity file)"
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused"
        if isinstance(exc, (TimeoutError, trio.TooSlowError)):
            return "connection timed out"
        if isinstance(exc, socket.gaierror):
            return f"cannot resolve host {host}: {exc.strerror or exc}"
        if isinstance(exc, asyncssh.ConnectionLost):
            return str(exc.reason) or "connection lost"
        if isinstance(exc, asyncssh.DisconnectError):
            return f"disconnected: {exc.reason}"
        if isinstance(exc, OSError):
            return exc.strerror or str(exc) or type(exc).__name__
        return str(exc) or type(exc).__name__

    async def _keep_connected(self) -> None:
        opts = self.options
        attempt = 0
        while True:
            self._attempts += 1
            try:
                conn, client = await self._connect()
            except Exception as exc:  # supervision boundary: every failure is an outage + retry
                self._mark_down(f"ssh {self.where}: {self._explain(exc)}")
            else:
                self._connections += 1
                if self._in_outage:
                    log.info("ssh %s: connected again", self.where)
                self._in_outage = False
                self._down_message = None
                self._conn, self._client = conn, client
                self._notify()
                up_since = trio.current_time()
                await self._aio(conn.wait_closed)
                reason = self._explain(client.lost) if client.lost else "closed by the server"
                detail = "" if reason.lower() in ("connection lost", "disconnected: connection lost") else f" ({reason})"
                self._mark_down(f"ssh {self.where}: connection lost{detail}")
                if trio.current_time() - up_since >= opts.backoff_cap:
                    attempt = 0  # it was a healthy connection: start over from the short delay
            await trio.sleep(backoff_delay(attempt, first=opts.backoff_first, cap=opts.backoff_cap, rand=self._rand))
            attempt += 1

    def _alive(self, conn: asyncssh.SSHClientConnection) -> bool:
        return self._conn is conn and self._client is not None and not self._client.closed

    async def _wait_replaced(self, conn: asyncssh.SSHClientConnection) -> None:
        """Wait until ``conn`` is no longer the current connection."""
        while self._conn is conn:
            await self._changed.wait()

    # ------------------------------------------------------------------ channels

    async def _open(self, conn: asyncssh.SSHClientConnection, command: str) -> _Pipe:
        attempt = 0
        while True:
            pipe = _Pipe(self._running_loop())
            try:
                await self._aio(conn.create_session, lambda: pipe, command, encoding=None)
                break
            except asyncssh.ChannelOpenError as exc:
                # sshd refuses sessions over its MaxSessions (ours may still count there for
                # a moment after we closed them, or sshd's limit is lower than ours). On a
                # live link that is backpressure: try again, a little later each time; the
                # caller's own timeout bounds the wait.
                if not self._alive(conn):
                    raise _Lost() from exc
                log.info("ssh %s: channel refused (%s), retrying", self.where, exc.reason)
                await trio.sleep(min(_OPEN_RETRY_CAP, 0.02 * 2**attempt))
                attempt += 1
            except (asyncssh.Error, OSError) as exc:
                if not self._alive(conn):
                    raise _Lost() from exc
                raise
        self._commands += 1
        self._channels += 1
        return pipe

    async def _close(self, pipe: _Pipe) -> None:
        """Close the channel and wait for it (shielded, bounded): the remote guard sees EOF and
        kills the command. Cancelling an asyncssh call alone would leave it open."""
        self._channels -= 1
        with trio.CancelScope(shield=True), trio.move_on_after(self.options.close_timeout) as bounded:
            if not pipe.ended:
                await self._aio(_close_channel, pipe.chan)
        if bounded.cancelled_caught:
            # The remote command may outlive us until the connection closes: say so.
            log.warning("ssh %s: a channel did not close within %.1f s", self.where, self.options.close_timeout)

    async def _run_command(self, conn: asyncssh.SSHClientConnection, command: str) -> tuple[int | None, bytes, bytes]:
        """Run one command to its end: (exit status, stdout, stderr), output capped."""
        async with self._slots:
            pipe = await self._open(conn, command)
            out, err = bytearray(), bytearray()
            try:
                while (item := await pipe.next()) is not None:
                    is_err, data = item
                    buf = err if is_err else out
                    buf += data[: max(0, _OUTPUT_LIMIT - len(buf))]
            finally:
                await self._close(pipe)
        return pipe.exit_status, bytes(out), bytes(err)

    # ------------------------------------------------------------------ follow

    async def _wait_link(self, send: trio.MemorySendChannel[LogItem], watch: _LinkWatch) -> asyncssh.SSHClientConnection:
        """The current connection, once there is one; reports outages on the way."""
        while True:
            self._running_loop()  # run() ended: stop with a clear error instead of waiting forever
            if self._outages > watch.reported:
                watch.reported = self._outages
                if not watch.down:
                    watch.down = True
                    await send.send(SourceDown(self._down_message or f"ssh {self.where}: connection lost"))
            conn = self._conn
            if conn is not None and self._outages == watch.reported:
                if watch.down:
                    watch.down = False
                    await send.send(SourceUp())
                return conn
            await self._changed.wait()

    def _display(self, path: str | None) -> str:
        """How ``LogReset.path`` names the followed file (a glob's current match if any)."""
        if path is None:
            return self.log_name
        return f"{self.target.container}:{path}" if self.target.log_location == "container" else path

    async def _reset(self, send: trio.MemorySendChannel[LogItem], gen: _Generation, reason: str) -> None:
        name = self._display(gen.path)
        log.info("ssh %s: %s: %s, reading it from the start", self.where, name, reason)
        gen.offset, gen.head = 0, b""
        await send.send(LogReset(name, reason))

    async def follow(
        self,
        send: trio.MemorySendChannel[LogItem],
        *,
        offset: int = 0,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Follow the remote log until cancelled (see the module docstring).

        ``offset`` > 0 resumes a generation the caller already has up to that byte (no
        ``LogReset`` is sent first); 0 starts with ``LogReset(reason="opened")``."""
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        self._running_loop()
        gen = _Generation(offset)
        watch = _LinkWatch()
        task_status.started()
        if offset == 0:
            await send.send(LogReset(self.log_name, "opened"))
        attempt = 0
        while True:
            conn = await self._wait_link(send, watch)
            try:
                outcome = await self._follow_on(conn, send, gen)
            except _Lost:
                outcome = _LOST
            except (asyncssh.Error, OSError) as exc:
                log.warning("ssh %s: following %s failed: %s", self.where, self.log_name, exc)
                outcome = _ENDED
            if outcome == _LOST or not self._alive(conn):
                await self._wait_replaced(conn)
                attempt = 0
            elif outcome == _NO_MATCH:
                await trio.sleep(self.options.glob_interval)
            elif outcome == _ENDED:
                opts = self.options
                await trio.sleep(backoff_delay(attempt, first=opts.backoff_first, cap=opts.backoff_cap, rand=self._rand))
                attempt += 1
            else:
                attempt = 0

    async def _follow_on(self, conn: asyncssh.SSHClientConnection, send: trio.MemorySendChannel[LogItem], gen: _Generation) -> str:
        """One remote follow command on ``conn``: returns _RESET, _LOST or _ENDED."""
        stdout_mode = self.target.log_location == "stdout"
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
        async with self._slots:
            pipe = await self._open(conn, self.commands.follow(0 if stdout_mode else gen.offset, gen.path))
            try:
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
            finally:
                await self._close(pipe)

    async def _newest(self, conn: asyncssh.SSHClientConnection) -> str | None:
        """The newest match of the glob log ("" when none), or None when it cannot be told."""
        with trio.move_on_after(self.options.command_timeout):
            status, out, _ = await self._run_command(conn, self.commands.newest())
            if status == 0 and out.endswith(b"\n"):
                return out[:-1].decode("utf-8", "surrogateescape")
        if not self._alive(conn):
            raise _Lost()
        return None

    async def _watch_glob(self, conn: asyncssh.SSHClientConnection, path: str | None) -> None:
        """Return once a match newer than ``path`` appears (polled every ``glob_interval``) or
        the connection is gone. Never raises for a host problem (it runs in a nursery)."""
        while True:
            await trio.sleep(self.options.glob_interval)
            try:
                newest = await self._newest(conn)
            except (_Lost, asyncssh.Error, OSError):
                return
            if newest and newest != path:
                return

    async def _resume_check(self, conn: asyncssh.SSHClientConnection, gen: _Generation) -> str | None:
        """None: the remote file is still the one read up to ``gen.offset``; else the reset
        reason, or _ENDED when it cannot be told now."""
        with trio.move_on_after(self.options.command_timeout):
            status, out, _ = await self._run_command(conn, self.commands.resume_check(len(gen.head), gen.path))
            first, _, head = out.partition(b"\n")
            if status == 0 and first.strip() == b"missing":
                return "replaced"
            if status == 0 and first.strip().isdigit():
                if int(first) < gen.offset:
                    return "truncated"
                return None if head == gen.head else "replaced"
        if not self._alive(conn):
            raise _Lost()
        return _ENDED

    async def _pump(self, pipe: _Pipe, send: trio.MemorySendChannel[LogItem], gen: _Generation, *, skip: int) -> str:
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
                        log.info("ssh %s: %s: %s", self.where, self.log_name, line)
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

    # ------------------------------------------------------------------ probe

    async def probe(self) -> ProbeResult:
        """One bounded look at the host (see the module docstring). Never raises for a host
        problem; the result's ``error`` says what went wrong."""
        self._running_loop()
        if self._conn is None and self._connections == 0 and not self._in_outage:
            # The first attempt is still under way: wait for its verdict (bounded) rather than
            # report a host that was never tried as down (status would flap false → true).
            with trio.move_on_after(self.options.connect_timeout):
                while self._conn is None and not self._in_outage and self._loop is not None:
                    await self._changed.wait()
        conn = self._conn
        if conn is None:
            return ProbeResult(
                connected=False,
                vnc_url=self.vnc_url,
                error=self._down_message or f"ssh {self.where}: not connected yet",
            )
        timeout = self.options.command_timeout
        results: dict[str, tuple[int | None, bytes, bytes] | None] = {}

        async def one(key: str, command: str | None) -> None:
            if command is None:
                return
            results[key] = None
            with trio.move_on_after(timeout):
                try:
                    results[key] = await self._run_command(conn, command)
                except (_Lost, asyncssh.Error, OSError) as exc:
                    log.info("ssh %s: probe %s failed: %s", self.where, key, exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "process", self.commands.process())
            nursery.start_soon(one, "inspect", self.commands.inspect())
            nursery.start_soon(one, "logs", self.commands.container_logs())
            nursery.start_soon(one, "waa", self.commands.waa_probe())
        return self._probe_result(conn, results)

    def _probe_result(self, conn: asyncssh.SSHClientConnection, results: dict[str, Any]) -> ProbeResult:
        errors: list[str] = []
        running: bool | None = None
        container_down = False
        container = self.target.container
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
            connected=self._alive(conn),
            running=running,
            phase=phase,
            waa_ready=waa_ready,
            probe_status=probe_status,
            vnc_url=self.vnc_url,
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
