"""The SSH link of one target: ONE connection kept up, and exec channels on it, Trio-native.

Owns: ``Link`` (the connection manager: connect, notice the drop, reconnect with capped
exponential backoff and jitter, outage bookkeeping, ``_explain``), ``Connection`` (one live
SSH connection: open an exec channel, run a command to its end), ``Pipe`` (one channel's
output for a Trio task to drain), the asyncio bridge (``_aio``), ``SSHOptions`` and
``SSHStatistics``. This is the ONLY module of trio-sse that imports asyncio, asyncssh or
trio-asyncio; everything it exposes is Trio-native and raises only ``LinkLost`` /
``ChannelError`` (no asyncssh exception leaves it). Must not: know what the commands are for
(the log, the probe: ``follow.py`` and ``probe.py``), build command lines (``commands.py``), or
raise for a host problem out of ``run`` (that is an outage, reported through the state below).

Lifecycle::

    link = Link(target.ssh, options=..., rand=random.random, label="SSHSource …")
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)            # 1. reports started at once, then connects
        conn = link.connection                   # 2. None while down; from any task
        async with conn.open(command) as pipe:   #    a long-lived channel (holds a slot)
            while (item := await pipe.next()) is not None: ...
        status, out, err = await conn.run(command)   # or run one to its end
        nursery.cancel_scope.cancel()            # closes the connection (shielded, bounded)

* ``run()`` opens a trio-asyncio loop of its own (``trio_asyncio.open_loop``) and keeps one
  SSH connection up in it: connect, wait for the link to drop, reconnect with capped
  exponential backoff and jitter (also after a host-key mismatch or an auth failure: those
  are retried slowly, never hammered). It reports ``started`` at once, before the first
  connection attempt. When it is cancelled it closes the connection (shielded, bounded) and
  the loop. Using the link while ``run`` is not running raises ``RuntimeError``
  (``require_running``).
* Why the link owns its loop: the program, the monitor and pytest-trio tests then need no
  asyncio set-up at all, and several SSH targets in one process are several independent
  loops. Other Trio tasks reach asyncio through ``_aio``, which sets
  ``trio_asyncio.current_loop`` for the call: asyncssh starts helper tasks with
  ``asyncio.ensure_future()``, and trio-asyncio finds "the running loop" through that context
  variable of the calling Trio task (without it: ``'NoneType' object has no attribute
  'create_task'``).
* Outages: ``outages`` counts them (one per outage, however many retries it takes; the first
  failure's message, e.g. ``ssh azureuser@20.1.2.3:22: connection refused``, is
  ``down_message``); ``wait_changed()`` wakes on every change (connected, lost, run ended), so
  a user of the link reports one ``SourceDown`` per outage and one ``SourceUp`` when it is back.
* Channels: at most ``max_channels`` open at once (a ``trio.Semaphore``; OpenSSH's MaxSessions
  default is 10). A channel sshd refuses (MaxSessions, counting ours for a moment after we
  closed them) is retried a little later each time while the link lives. Closing a channel
  closes it and waits, shielded and bounded: cancelling an asyncssh call alone would leave the
  remote command running (the remote guard of ``commands.py`` sees the EOF and kills it).
* More uses of the same connection (following ``traj.jsonl`` files, fetching screenshots —
  SPEC §8) are more ``Connection`` methods: another exec channel is ``open``/``run`` as they
  are; an SFTP client would be a ``Connection`` method that starts it with ``_aio`` and
  releases it like a channel.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncssh
import trio
import trio_asyncio

from trio_sse.config import SSHSpec
from trio_sse.errors import ConfigError
from trio_sse.sources.ssh.commands import backoff_delay

log = logging.getLogger(__name__)

_BUFFER_BYTES = 1 << 20  # unread channel bytes before SSH flow control pauses the remote
_OUTPUT_LIMIT = 1 << 20  # bytes of a command's output kept by Connection.run
_OPEN_RETRY_CAP = 0.5  # seconds between tries to open a channel sshd refused (MaxSessions)

CommandResult = tuple[int | None, bytes, bytes]  # (exit status or None, stdout, stderr)


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
    # How often the follower looks at the log's files: new glob matches, and whether each
    # followed file is still the one read (size, first bytes, last bytes read).
    glob_interval: float = 5.0
    worker_window: float = 15 * 60.0  # a glob match quieter than this behind the newest is history

    def __post_init__(self) -> None:
        if not 0 < self.backoff_first <= self.backoff_cap:
            raise ConfigError(f"backoff must satisfy 0 < first <= cap, got {self.backoff_first} and {self.backoff_cap}")
        if self.keepalive_interval <= 0 or self.keepalive_count_max < 1:
            raise ConfigError("keepalive interval must be positive and its count at least 1")
        if min(self.connect_timeout, self.command_timeout, self.close_timeout, self.glob_interval) <= 0:
            raise ConfigError("ssh timeouts must be positive")
        if self.max_channels < 2:
            raise ConfigError(f"max channels must be at least 2, got {self.max_channels}")
        if not (math.isfinite(self.worker_window) and self.worker_window >= 0):
            raise ConfigError(f"worker window must be a number of seconds >= 0, got {self.worker_window}")


@dataclass(frozen=True, slots=True)
class SSHStatistics:
    attempts: int  # connection attempts, failed ones included
    connections_opened: int  # successful SSH connections (logins)
    reconnects: int  # connections opened after a previous one was lost
    outages: int  # link outages started (initial failures included)
    commands_run: int  # exec channels opened (follow + probes)
    channels_open: int  # exec channels open right now
    connected: bool


class LinkLost(Exception):
    """The connection a channel was to run on is gone (the link will make a new one)."""


class ChannelError(Exception):
    """A channel could not be opened or closed on a live connection (the message says why)."""


# --------------------------------------------------------------------------- asyncssh glue


class _Client(asyncssh.SSHClient):
    """Remembers why the connection ended (asyncio side, sync callback)."""

    def __init__(self) -> None:
        self.lost: Exception | None = None
        self.closed = False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc


class Pipe(asyncssh.SSHClientSession):  # type: ignore[type-arg]
    """One exec channel's output, in channel order, for a Trio task to drain (``next``).

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


# --------------------------------------------------------------------------- one connection


class Connection:
    """One live SSH connection of a ``Link``. It stays usable until it is lost; the link then
    makes a new ``Connection`` (``wait_replaced`` returns once that happened)."""

    def __init__(self, link: Link, conn: asyncssh.SSHClientConnection, client: _Client) -> None:
        self._link = link
        self._conn = conn
        self._client = client

    @property
    def alive(self) -> bool:
        """Still the link's current connection, and not closed."""
        return self._link._current is self and not self._client.closed

    async def wait_replaced(self) -> None:
        """Wait until this is no longer the link's current connection."""
        while self._link._current is self:
            await self._link.wait_changed()

    @asynccontextmanager
    async def open(self, command: str) -> AsyncIterator[Pipe]:
        """An exec channel running ``command``, closed (shielded, bounded) on exit. It holds
        one of the link's channel slots while open. Raises ``LinkLost`` when the connection is
        gone, ``ChannelError`` when the channel cannot be opened on a live one."""
        link = self._link
        async with link._slots:
            pipe = await self._open(command)
            try:
                yield pipe
            finally:
                await self._close(pipe)

    async def run(self, command: str) -> CommandResult:
        """Run ``command`` to its end: (exit status, stdout, stderr), output capped."""
        async with self.open(command) as pipe:
            out, err = bytearray(), bytearray()
            while (item := await pipe.next()) is not None:
                is_err, data = item
                buf = err if is_err else out
                buf += data[: max(0, _OUTPUT_LIMIT - len(buf))]
        return pipe.exit_status, bytes(out), bytes(err)

    async def _open(self, command: str) -> Pipe:
        link = self._link
        attempt = 0
        while True:
            pipe = Pipe(link.require_running())
            try:
                await link._aio(self._conn.create_session, lambda: pipe, command, encoding=None)
                break
            except asyncssh.ChannelOpenError as exc:
                # sshd refuses sessions over its MaxSessions (ours may still count there for
                # a moment after we closed them, or sshd's limit is lower than ours). On a
                # live link that is backpressure: try again, a little later each time; the
                # caller's own timeout bounds the wait.
                if not self.alive:
                    raise LinkLost() from exc
                log.info("ssh %s: channel refused (%s), retrying", link.where, exc.reason)
                await trio.sleep(min(_OPEN_RETRY_CAP, 0.02 * 2**attempt))
                attempt += 1
            except (asyncssh.Error, OSError) as exc:
                if not self.alive:
                    raise LinkLost() from exc
                raise ChannelError(str(exc) or type(exc).__name__) from exc
            except BaseException:
                # Cancelled while asyncssh was setting the channel up: once the session
                # exists, the exec request may already have started the remote command, and
                # cancelling the asyncssh call does not close the channel. Close it here, or
                # the command would run until the connection ends.
                if pipe.chan is not None and not pipe.ended:
                    try:
                        await self._shut(pipe)
                    except ChannelError as exc:  # the cancellation is what must propagate
                        log.info("ssh %s: closing a cancelled channel failed: %s", link.where, exc)
                raise
        link._commands += 1
        link._channels += 1
        return pipe

    async def _close(self, pipe: Pipe) -> None:
        """Close the channel and wait for it (shielded, bounded): the remote guard sees EOF and
        kills the command. Cancelling an asyncssh call alone would leave it open."""
        self._link._channels -= 1
        if not pipe.ended:
            await self._shut(pipe)

    async def _shut(self, pipe: Pipe) -> None:
        link = self._link
        with trio.CancelScope(shield=True), trio.move_on_after(link.options.close_timeout) as bounded:
            try:
                await link._aio(_close_channel, pipe.chan)
            except (asyncssh.Error, OSError) as exc:
                raise ChannelError(str(exc) or type(exc).__name__) from exc
        if bounded.cancelled_caught:
            # The remote command may outlive us until the connection closes: say so.
            log.warning("ssh %s: a channel did not close within %.1f s", link.where, link.options.close_timeout)


# --------------------------------------------------------------------------- the link


def where(ssh: SSHSpec) -> str:
    """How messages name the host: ``[user@]host:port`` (an IPv6 address in brackets)."""
    user = f"{ssh.user}@" if ssh.user else ""
    host = f"[{ssh.host}]" if ":" in ssh.host else ssh.host
    return f"{user}{host}:{ssh.port}"


class Link:
    """Keep one SSH connection to ``ssh`` up while ``run`` runs; hand it out to other tasks.
    See the module docstring."""

    def __init__(
        self,
        ssh: SSHSpec,
        *,
        options: SSHOptions,
        rand: Callable[[], float],
        label: str,
    ) -> None:
        self.ssh = ssh
        self.options = options
        self.label = label  # names the owner in RuntimeError messages
        self._rand = rand
        self.where = where(ssh)
        # State owned by run(); read by the users of the link.
        self._loop: trio_asyncio.TrioEventLoop | None = None
        self._current: Connection | None = None
        self._outages = 0
        self._in_outage = False
        self._down_message: str | None = None
        self._changed = trio.Event()
        self._slots = trio.Semaphore(options.max_channels)
        self._attempts = 0
        self._connections = 0
        self._commands = 0
        self._channels = 0

    # ------------------------------------------------------------------ state, for users

    @property
    def connection(self) -> Connection | None:
        """The current connection, or None while the link is down (or not yet up)."""
        return self._current

    @property
    def outages(self) -> int:
        """Outages started so far (one per outage, not one per failed retry)."""
        return self._outages

    @property
    def down_message(self) -> str | None:
        """Why the link is down (the first failure of the current outage), else None."""
        return self._down_message

    async def wait_changed(self) -> None:
        """Wait for the next change: connected, lost, or ``run`` ended."""
        await self._changed.wait()

    async def wait_first_verdict(self) -> None:
        """While the very first connection attempt is under way, wait for its verdict (at
        most ``connect_timeout``); return at once otherwise."""
        if self._current is None and self._connections == 0 and not self._in_outage:
            with trio.move_on_after(self.options.connect_timeout):
                while self._current is None and not self._in_outage and self._loop is not None:
                    await self._changed.wait()

    def backoff(self, attempt: int) -> float:
        """Seconds before retry ``attempt`` (0-based), with this link's options and jitter."""
        opts = self.options
        return backoff_delay(attempt, first=opts.backoff_first, cap=opts.backoff_cap, rand=self._rand)

    def statistics(self) -> SSHStatistics:
        return SSHStatistics(
            attempts=self._attempts,
            connections_opened=self._connections,
            reconnects=max(0, self._connections - 1),
            outages=self._outages,
            commands_run=self._commands,
            channels_open=self._channels,
            connected=self._current is not None,
        )

    # ------------------------------------------------------------------ asyncio bridge

    def require_running(self) -> trio_asyncio.TrioEventLoop:
        """The link's loop; ``RuntimeError`` when ``run`` is not running."""
        if self._loop is None:
            raise RuntimeError(f"{self.label}: run() must be running before follow()/probe()")
        return self._loop

    async def _aio(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``await fn(*args, **kwargs)`` — an asyncio coroutine function — on our loop."""
        loop = self.require_running()
        token = trio_asyncio.current_loop.set(loop)
        try:
            return await loop.run_aio_coroutine(fn(*args, **kwargs))
        finally:
            trio_asyncio.current_loop.reset(token)

    # ------------------------------------------------------------------ connection manager

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep one SSH connection up until cancelled (see the module docstring)."""
        if self._loop is not None:
            raise RuntimeError(f"{self.label}: run() is already running")
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
        self._current = None
        self._down_message = message
        self._notify()

    async def _drop_connection(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            with trio.move_on_after(self.options.close_timeout):
                await self._aio(_close_connection, current._conn)

    async def _connect(self) -> Connection:
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
        return Connection(self, conn, client)

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
        attempt = 0
        while True:
            self._attempts += 1
            try:
                current = await self._connect()
            except Exception as exc:  # supervision boundary: every failure is an outage + retry
                self._mark_down(f"ssh {self.where}: {self._explain(exc)}")
            else:
                self._connections += 1
                if self._in_outage:
                    log.info("ssh %s: connected again", self.where)
                self._in_outage = False
                self._down_message = None
                self._current = current
                self._notify()
                up_since = trio.current_time()
                await self._aio(current._conn.wait_closed)
                client = current._client
                reason = self._explain(client.lost) if client.lost else "closed by the server"
                detail = "" if reason.lower() in ("connection lost", "disconnected: connection lost") else f" ({reason})"
                self._mark_down(f"ssh {self.where}: connection lost{detail}")
                if trio.current_time() - up_since >= self.options.backoff_cap:
                    attempt = 0  # it was a healthy connection: start over from the short delay
            await trio.sleep(self.backoff(attempt))
            attempt += 1
