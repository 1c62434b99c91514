"""Alerts through Apprise (SPEC §9), the Trio side: ``Notifier`` delivers ``alerttext.Alert``s
to every ``--notify`` URL, each alert once, and raises the "target unreachable" alert when a
target stays down longer than ``alert_after``.

Owns: the delivery — a bounded channel in, one task per destination (so a dead one delays
nobody else; alerts reach each destination in order), Apprise's blocking ``notify`` in a
worker thread with a time bound (``send_timeout``; a hung receiver's thread is abandoned, at
most ``threads`` of them at once), retries with capped exponential backoff, giving up after
``max_attempts``; the once-only rule (in this process: by key; across restarts: the
``AlertLedger``, i.e. the history database, asked before sending and told after).

Must not: block the caller (``send``, ``target_down``, ``target_up`` are synchronous and
never wait), put a URL's secrets in a message (destinations are named by Apprise's
privacy-masked URL), or decide what an alert says (``alerttext.py``).

Delivery is *at least once* across a crash: the ledger is written after the receiver
answered, so a process killed in between sends that alert again at the next start. When no
destination accepted an alert, it is not recorded, so a restart may try it again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import trio

from trio_sse.alerttext import Alert, target_unreachable

DEFAULT_ALERT_AFTER: Final = 300.0
DEFAULT_SEND_TIMEOUT: Final = 30.0
DEFAULT_BACKOFF: Final = (5.0, 600.0)  # first retry, cap (seconds)
DEFAULT_MAX_ATTEMPTS: Final = 12  # ~50 min of trying with the default backoff
# Alerts are rare (a few per run); 64 absorbs a burst such as a replay's regressions at start.
DEFAULT_BUFFER: Final = 64
DEFAULT_THREADS: Final = 4  # worker threads for Apprise at once (hung ones included)


class AlertLedger(Protocol):
    """Where sent alerts are remembered (``store.StoreLedger`` on the history database)."""

    async def was_sent(self, key: str) -> bool: ...

    def mark_sent(self, key: str, kind: str) -> None: ...


class MemoryLedger:
    """For ``--db none``: once per process only."""

    def __init__(self) -> None:
        self.sent: dict[str, str] = {}

    async def was_sent(self, key: str) -> bool:
        return key in self.sent

    def mark_sent(self, key: str, kind: str) -> None:
        self.sent.setdefault(key, kind)


@dataclass(frozen=True, slots=True)
class Destination:
    """Where alerts go: ``label`` names it without secrets; ``send`` blocks (it runs in a
    worker thread) and returns True when the receiver accepted the alert."""

    label: str
    send: Callable[[Alert], bool]


def _scheme_label(url: str) -> str:
    scheme = url.split("://", 1)[0] if "://" in url else "?"
    return f"{scheme[:20]}://…"


def apprise_destination(url: str) -> Destination:
    """A destination for an Apprise URL (``json://host:port/path``, ``slack://…``,
    ``ntfy://…``, ``mailto://…``: see Apprise's list). ``ValueError`` (naming only the
    scheme: URLs carry tokens) when Apprise does not understand it."""
    import apprise  # here: importing it costs ~0.1 s, paid only when alerts are configured

    if not isinstance(url, str) or not url.strip():
        raise ValueError("a --notify URL must not be empty")
    notifier = apprise.Apprise()
    if not notifier.add(url.strip()):
        raise ValueError(f"--notify URL {_scheme_label(url)} is not one Apprise understands (see Apprise's URL list)")
    label = notifier[0].url(privacy=True)

    def send(alert: Alert) -> bool:
        return bool(notifier.notify(body=alert.body, title=alert.title, notify_type=apprise.NotifyType(alert.level)))

    return Destination(label, send)


@dataclass(frozen=True, slots=True)
class NotifierReport:
    """``failing`` (an alert could not be delivered to a destination; it is retried),
    ``gave_up`` (it never was, after ``max_attempts``), ``dropped`` (the channel was full)."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class NotifierStatistics:
    queued: int
    delivered: int  # (alert, destination) deliveries
    failed_attempts: int
    gave_up: int
    dropped: int
    already_sent: int  # alerts skipped because the ledger had them (a restart)
    down_targets: int


class RunSync(Protocol):
    def __call__(
        self, fn: Callable[..., Any], *args: Any, abandon_on_cancel: bool = ..., limiter: trio.CapacityLimiter | None = ...
    ) -> Any: ...


@dataclass(slots=True)
class _Pending:
    alert: Alert
    left: int
    delivered: int = 0


@dataclass(slots=True)
class _Down:
    deadline: float
    message: str
    since: str
    alerted: bool = False


def _attempt(send: Callable[[Alert], bool], alert: Alert) -> tuple[bool, str]:
    """One delivery, in a worker thread. Any exception is a failed attempt (supervision
    boundary: a notification plugin must not take the monitor down)."""
    try:
        return bool(send(alert)), "the receiver refused it or could not be reached"
    except Exception as exc:  # noqa: BLE001
        return False, f"{type(exc).__name__}: {exc}"[:300]


class Notifier:
    """Start ``run`` in a nursery; call ``send`` / ``target_down`` / ``target_up``."""

    def __init__(
        self,
        destinations: Sequence[str | Destination],
        *,
        ledger: AlertLedger,
        report: Callable[[NotifierReport], None] | None = None,
        alert_after: float = DEFAULT_ALERT_AFTER,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        backoff: tuple[float, float] = DEFAULT_BACKOFF,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        buffer: int = DEFAULT_BUFFER,
        threads: int = DEFAULT_THREADS,
        run_sync: RunSync = trio.to_thread.run_sync,
    ) -> None:
        if not 0 < backoff[0] <= backoff[1]:
            raise ValueError(f"backoff must be (first, cap) with 0 < first <= cap, got {backoff!r}")
        if max_attempts < 1 or alert_after < 0 or send_timeout <= 0:
            raise ValueError("max_attempts must be >= 1, alert_after >= 0 and send_timeout > 0")
        self.destinations = [d if isinstance(d, Destination) else apprise_destination(d) for d in destinations]
        self._ledger = ledger
        self._report = report or (lambda _r: None)
        self._alert_after = alert_after
        self._send_timeout = send_timeout
        self._backoff = backoff
        self._max_attempts = max_attempts
        self._run_sync = run_sync
        self._limiter = trio.CapacityLimiter(threads)
        self._send, self._receive = trio.open_memory_channel[Alert](buffer)
        # Per destination, bounded too: while one fails for long (retrying with backoff), new
        # alerts beyond this many are dropped for it (reported) instead of holding up the others.
        self._queue_size = buffer
        self._queues = [trio.open_memory_channel[_Pending](buffer) for _ in self.destinations]
        self._seen: set[str] = set()
        self._down: dict[str, _Down] = {}
        self._down_changed = trio.Event()
        self._busy = 0
        self._idle = trio.Event()
        self._idle.set()
        self._delivery = trio.Event()  # set (and replaced) at each delivery
        self._delivered = self._failed = self._gave_up = self._dropped = self._already = 0

    # ------------------------------------------------------------ the caller's side

    def send(self, alert: Alert) -> bool:
        """Queue ``alert`` unless an alert with its key was already queued in this process.
        Never blocks; False when skipped or dropped (channel full: reported)."""
        if alert.key in self._seen:
            return False
        if not self.destinations:
            return False
        try:
            self._send.send_nowait(alert)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self._dropped += 1
            self._report(NotifierReport("dropped", f"alert {alert.key} dropped: too many alerts waiting"))
            return False
        self._seen.add(alert.key)
        self._busy += 1  # until the ledger says it was sent, or every destination is done
        if self._idle.is_set():
            self._idle = trio.Event()
        return True

    def target_down(self, target: str, message: str, *, since: str) -> None:
        """The target became unreachable (``since``: when, ISO-8601, for the alert's key).
        The unreachable alert goes out if it is still down ``alert_after`` seconds later."""
        down = self._down.get(target)
        if down is None:
            self._down[target] = _Down(trio.current_time() + self._alert_after, message, since)
            self._down_changed.set()
        else:
            down.message = message

    def target_up(self, target: str) -> None:
        if self._down.pop(target, None) is not None:
            self._down_changed.set()

    def statistics(self) -> NotifierStatistics:
        return NotifierStatistics(
            queued=self._send.statistics().current_buffer_used,
            delivered=self._delivered,
            failed_attempts=self._failed,
            gave_up=self._gave_up,
            dropped=self._dropped,
            already_sent=self._already,
            down_targets=len(self._down),
        )

    async def wait_idle(self) -> None:
        """Until every queued alert was delivered, given up, or found already sent."""
        while not self._is_idle():
            await self._idle.wait()

    async def wait_delivered(self, count: int) -> None:
        """Until ``count`` deliveries (alert × destination) in all have succeeded."""
        while self._delivered < count:
            await self._delivery.wait()

    def _is_idle(self) -> bool:
        return self._busy == 0

    # ------------------------------------------------------------ the tasks

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for destination, (_send, receive) in zip(self.destinations, self._queues, strict=True):
                nursery.start_soon(self._destination_worker, destination, receive)
            nursery.start_soon(self._watch_unreachable)
            nursery.start_soon(self._dispatch)
            task_status.started()

    async def _dispatch(self) -> None:
        async for alert in self._receive:
            if await self._ledger.was_sent(alert.key):
                self._already += 1
                self._busy -= 1
                self._check_idle()
                continue
            pending = _Pending(alert, len(self.destinations))
            for destination, (send, _receive) in zip(self.destinations, self._queues, strict=True):
                try:
                    send.send_nowait(pending)
                except trio.WouldBlock:  # that destination has been failing for long
                    self._dropped += 1
                    self._report(
                        NotifierReport(
                            "dropped",
                            f"alert {alert.key} to {destination.label} dropped: {self._queue_size} alerts wait for it already",
                        )
                    )
                    self._done_with(pending)

    def _check_idle(self) -> None:
        if self._is_idle():
            self._idle.set()

    async def _destination_worker(self, destination: Destination, receive: trio.MemoryReceiveChannel[_Pending]) -> None:
        async for pending in receive:
            if await self._deliver(destination, pending.alert):
                pending.delivered += 1
            self._done_with(pending)

    def _done_with(self, pending: _Pending) -> None:
        """One destination is done with ``pending``; the last one records it."""
        pending.left -= 1
        if pending.left == 0:
            if pending.delivered:
                self._ledger.mark_sent(pending.alert.key, pending.alert.kind)
            self._busy -= 1
            self._check_idle()

    async def _deliver(self, destination: Destination, alert: Alert) -> bool:
        delay = self._backoff[0]
        for attempt in range(1, self._max_attempts + 1):
            ok, why = False, f"no answer within {self._send_timeout:g} s"
            with trio.move_on_after(self._send_timeout):
                ok, why = await self._run_sync(
                    _attempt, destination.send, alert, abandon_on_cancel=True, limiter=self._limiter
                )
            if ok:
                self._delivered += 1
                self._delivery.set()
                self._delivery = trio.Event()
                return True
            self._failed += 1
            if attempt == self._max_attempts:
                self._gave_up += 1
                self._report(
                    NotifierReport(
                        "gave_up", f"alert {alert.key} to {destination.label}: gave up after {attempt} attempts ({why})"
                    )
                )
                return False
            if attempt == 1:
                self._report(NotifierReport("failing", f"alert {alert.key} to {destination.label}: {why}; retrying"))
            await trio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])
        return False  # (not reached)

    async def _watch_unreachable(self) -> None:
        while True:
            now = trio.current_time()
            next_deadline = math.inf
            for target, down in list(self._down.items()):
                if down.alerted:
                    continue
                if down.deadline <= now:
                    down.alerted = True
                    self.send(target_unreachable(target, seconds=self._alert_after, message=down.message, since=down.since))
                else:
                    next_deadline = min(next_deadline, down.deadline)
            self._down_changed = trio.Event()
            with trio.move_on_at(next_deadline):
                await self._down_changed.wait()
