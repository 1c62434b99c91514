"""Admission and the write watchdog: what one client may take of the server, in one place.

Owns ``Limits`` — the process's stream slots (in total and per client IP, SPEC §5), the status
that refuses a stream (503: the server is full; 429: this IP has too many), the counters
``/metrics`` reads (clients, streams, refusals, drops, events and bytes sent), and the write
watchdog — and ``Slot``, the one object a stream receives from it.

A slot is *taken* when the stream's body starts (``Slot.take``, synchronous: no checkpoint
between the check and the count) and *released* however the stream ends (``Slot.release``,
idempotent), so a request that dies before its body starts holds nothing. A request may be
refused early (``Limits.refusal``: before any header is sent); a request that raced past that
check is still caught when it takes its slot, and ends at once.

The watchdog: a stream whose body handed a chunk to the server that has not been written
after ``write_timeout`` seconds belongs to a client that stopped reading (or vanished). It is
dropped and its connection aborted through ``abort`` — Hypercorn shields its writes from
cancellation, so only breaking the socket frees the request task (``sockets.abort_peers``).

Must not: know about HTTP frameworks, events or encoding. Trio only for the watchdog's timer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import trio

from trio_sse.errors import TooManyStreams
from trio_sse.sockets import abort_peers

Address = tuple[str, int]

RETRY_AFTER_PER_IP = 10  # seconds (429: this IP has too many streams open)
RETRY_AFTER_FULL = 5  # seconds (503: the server is full)
# How often the watchdog looks, as a fraction of the write timeout (one pass over the live
# streams is a few attribute reads each, cheap even for thousands of streams).
WATCHDOG_STEPS = 4


class Slot:
    """One stream's claim on the limits. The stream sets ``writing_since`` while a chunk it
    handed out is being written, and ``on_drop`` so the watchdog can end it."""

    __slots__ = ("_limits", "_taken", "client", "ip", "on_drop", "reaped", "server", "writing_since")

    def __init__(self, limits: Limits, client: Address | None, server: Address | None, ip: str | None) -> None:
        self._limits = limits
        self.client = client  # the TCP peer: with ``server``, what finds the connection to abort
        self.server = server
        self.ip = ip if ip is not None else client[0] if client else None  # counted per IP
        self.writing_since: float | None = None
        self.on_drop: Callable[[str], None] | None = None
        self._taken = False
        self.reaped = False

    @property
    def limits(self) -> Limits:
        return self._limits

    def take(self) -> bool:
        """Count this stream (always: ``release`` undoes it) and say whether it fits."""
        limits = self._limits
        fits = limits.check(self.ip) is None
        self._taken = True
        limits.clients += 1
        limits.clients_total += 1
        if self.ip is not None:
            limits.per_ip[self.ip] += 1
        limits.live.add(self)
        if not fits:
            limits.drops["over_limit"] += 1
        return fits

    def release(self) -> None:
        if not self._taken:
            return
        self._taken = False
        self.writing_since = None
        self.on_drop = None
        limits = self._limits
        limits.clients -= 1
        limits.live.discard(self)
        if self.ip is not None:
            limits.per_ip[self.ip] -= 1
            if limits.per_ip[self.ip] <= 0:
                del limits.per_ip[self.ip]


class Limits:
    """The process's stream limits and counters (see the module docstring)."""

    __slots__ = (
        "abort", "bytes_sent", "clients", "clients_total", "drops", "events_sent", "live",
        "max_per_ip", "max_streams", "per_ip", "refused", "write_timeout",
    )  # fmt: skip

    def __init__(
        self,
        *,
        max_streams: int,
        max_per_ip: int,
        write_timeout: float,
        abort: Callable[[Sequence[Slot]], object] | None = None,
    ) -> None:
        self.max_streams = max_streams
        self.max_per_ip = max_per_ip
        self.write_timeout = write_timeout
        # Breaks the connections of slots (None: drop only). ``abort_slots`` by default.
        self.abort = abort
        self.clients = 0
        self.clients_total = 0
        self.events_sent = 0
        self.bytes_sent = 0
        self.drops: Counter[str] = Counter()
        self.refused: Counter[int] = Counter()  # streams refused, by HTTP status
        self.per_ip: Counter[str] = Counter()
        self.live: set[Slot] = set()

    # ------------------------------------------------------------ admission

    def check(self, ip: str | None) -> int | None:
        """``None`` when one more stream from ``ip`` fits, else the status that refuses it."""
        if self.clients >= self.max_streams:
            return 503
        if ip is not None and self.per_ip[ip] >= self.max_per_ip:
            return 429
        return None

    def refusal(self, ip: str | None) -> TooManyStreams | None:
        """The error refusing one more stream from ``ip`` (counted), or None when it fits."""
        status = self.check(ip)
        if status is None:
            return None
        self.refused[status] += 1
        if status == 503:
            return TooManyStreams(
                f"the server has its maximum of {self.max_streams} streams open; retry later",
                status=503,
                retry_after=RETRY_AFTER_FULL,
            )
        return TooManyStreams(
            f"too many streams from this address (at most {self.max_per_ip}); retry later",
            status=429,
            retry_after=RETRY_AFTER_PER_IP,
        )

    def slot(self, client: Address | None = None, server: Address | None = None, *, ip: str | None = None) -> Slot:
        """An untaken slot for a stream on the connection ``client`` → ``server`` (the stream
        takes it when it starts). ``ip``: the client's address when it is not the TCP peer's
        (a trusted proxy forwarded it)."""
        return Slot(self, client, server, ip)

    # ------------------------------------------------------------ the write watchdog

    @property
    def tcp_user_timeout(self) -> float:
        """The kernel's bound on unacknowledged data for the listening sockets: a little after
        the watchdog's (which sees stuck stream writes first and counts them), so the kernel
        is the backstop for what the watchdog cannot see — a peer that vanished, a stuck write
        outside a stream."""
        return self.write_timeout * (1 + 1 / WATCHDOG_STEPS) + 1.0

    async def watch_writes(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Every ``write_timeout / WATCHDOG_STEPS`` seconds, drop and abort the streams whose
        current write is older than ``write_timeout``. Runs until cancelled."""
        task_status.started()
        while True:
            await trio.sleep(self.write_timeout / WATCHDOG_STEPS)
            self.reap_stalled(self.write_timeout)

    def reap_stalled(self, limit: float) -> list[Slot]:
        """Drop and abort every stream whose write has been pending for ``limit`` seconds
        (each once: an aborted connection's write ends as soon as its task runs again)."""
        now = trio.current_time()
        stalled = [
            s for s in self.live if s.writing_since is not None and now - s.writing_since >= limit and not s.reaped
        ]
        for slot in stalled:
            slot.reaped = True
            if slot.on_drop is not None:
                slot.on_drop("write_stalled")
        if stalled and self.abort is not None:
            self.abort(stalled)
        return stalled

    def stalled_writes(self, at_least: float) -> int:
        """How many streams' current write has been pending for ``at_least`` seconds."""
        now = trio.current_time()
        return sum(1 for s in self.live if s.writing_since is not None and now - s.writing_since >= at_least)


def abort_slots(slots: Iterable[Slot]) -> int:
    """Abort the connections the slots' streams are written to (found by their addresses)."""
    return abort_peers((s.server, s.client) for s in slots if s.server is not None and s.client is not None)
