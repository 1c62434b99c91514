"""One event stream per client (SPEC §2.3): the per-client nursery and the body it feeds.

``EventStream`` is an async context manager *and* an async iterator of body chunks, so the
HTTP layer can enter it (``async with``) and drain it (``async for``) in one task — the
nursery lives in ``__aenter__``/``__aexit__``, never inside a generator (Trio forbids a
``yield`` inside a nursery; PEP 789). It knows nothing of Quart or HTTP.

Inside the nursery, one task per concern: a status task and a progress task per target
(each sends the newest value when it changed, at most once per ``interval`` — coalescing)
and a keepalive task (a comment after ``keepalive`` seconds of silence), which also ends the
stream at shutdown and at the optional lifetime limit (one timer per client, not three
tasks: at 10 000 clients every task is ~3 KB). Durable and error events are pushed by the
monitors through ``offer`` without waiting. Everything lands in one bounded queue of encoded
frames (a list the body task parks on — no memory channel: the wake-up is a single
reschedule); the body iterator drains it, batching what is queued into one write. When the
queue is full the client is not keeping up: it is dropped at once (it reconnects and resumes
by id), never waited for. Ending gracefully closes the queue: producers' frames are ignored
from then on, the body sends what is queued and ends, and leaving the stream cancels them.

What a stream is given: a ``StreamConfig`` (built once from the settings, shared by every
stream), a ``limits.Slot`` (its claim on the server's limits: taken when the body starts,
released however it ends; the slot also carries the watchdog's view of its writes), and the
request's own data (targets, interval, resume id, gzip, lifetime). Its nursery lives in one
``asynccontextmanager`` (``_run``) that ``__aenter__`` / ``__aexit__`` enter and leave. The
replay is not copied: it is a view of each monitor's shared history (``history.Replay``), read in pieces of about ``BATCH_BYTES`` as the socket drains, so a client
that stops reading holds one piece, not the run.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import trio

from trio_sse.config import Settings
from trio_sse.history import Entry, Replay, format_cursor, parse_cursor, position_id
from trio_sse.limits import Slot
from trio_sse.model import dumps
from trio_sse.runstate import Live, Output
from trio_sse.targetview import TargetView, WatchedView
from trio_sse.sse import GzipFramer, encode_comment, encode_event, encode_retry

KEEPALIVE = encode_comment("keepalive")
BATCH_BYTES = 64 * 1024  # at most this much queued data is joined into one write


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """What every stream of a server shares, built once from the settings."""

    keepalive: float = 15.0  # seconds of silence before a keepalive comment
    retry_ms: int = 3000  # the opening ``retry:``
    # What a client may have unsent before it is dropped: live frames queued behind its socket,
    # in bytes and in frames (the replay is not queued: it is read from the shared history).
    queue_bytes: int = 1 << 20
    queue_size: int = 256

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamConfig:
        return cls(
            keepalive=settings.keepalive,
            retry_ms=settings.retry_ms,
            queue_bytes=settings.queue_bytes,
            queue_size=settings.queue_size,
        )


class EventStream:
    """One client's stream. Per-request data (targets, interval, resume id, gzip, lifetime)
    comes with the request; the ``slot`` is its claim on the server's limits."""

    def __init__(
        self,
        monitors: Sequence[TargetView],  # local monitors, or a cluster's mirrors
        *,
        config: StreamConfig,
        slot: Slot,
        shutdown: trio.Event,
        interval: float = 5.0,
        last_event_id: str | None = None,
        gzip: bool = False,
        lifetime: float | None = None,
    ) -> None:
        self.interval = interval
        self.slot = slot
        self._limits = slot.limits  # the process's counters (events and bytes sent, drops)
        self._config = config
        self._monitors = list(monitors)
        self._shutdown = shutdown
        self._last_event_id = last_event_id
        self._gzip = GzipFramer() if gzip else None
        self._lifetime = lifetime
        # Live frames waiting for the socket (bounded by queue_bytes / queue_size: more means
        # the client is too slow). Short (0-1 frames mostly): a list is 56 bytes, a deque 760.
        self._queue: list[bytes] = []
        self._queued = 0  # bytes in the queue
        # What goes out before the queue, in order: the opening comment, the replay of each
        # target (views of the shared history, read piece by piece as the socket drains), then
        # the status and progress current when the stream opened.
        self._replays: list[tuple[TargetView, Replay]] = []
        self._suffix: bytes | None = None
        self._opening = True  # until the prefix, the replay and the suffix have gone out
        self._replay_ids: dict[str, str] = {}  # multi-target: the cursor while replaying
        self._closed = False  # no more frames are queued; the body ends once it is drained
        self._waiter: Any = None  # the body task parked on an empty queue (trio.lowlevel.Task)
        self._single = len(self._monitors) == 1
        self._ids: dict[str, str] = {}
        # Version of each watched value whose frame went out in the opening chunk: a change
        # between _open and the watcher's first step must still be sent.
        self._opened: dict[int, int] = {}
        self._prefix: bytes | None = None
        self._last_enqueue = 0.0
        self._running: AbstractAsyncContextManager[EventStream] | None = None  # _run(), entered
        self._finished = False
        self.dropped: str | None = None

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> EventStream:
        self._running = self._run()
        return await self._running.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._running is not None
        running, self._running = self._running, None
        return await running.__aexit__(exc_type, exc, tb)

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[EventStream]:
        """The stream's lifetime: its producers in a nursery; leaving cancels them, waits for
        them, then unsubscribes and releases the slot — however the stream ends. (One
        generator per stream: an ``AsyncExitStack`` with its deque and callback wrappers
        cost 1.8 KiB more per stream.) The one ``yield`` inside a nursery that Trio allows: a
        context manager's, entered and left by the same task (the request's); never the body's
        async iteration (STYLE.md)."""
        try:
            async with trio.open_nursery() as nursery:
                # Checked again here, where the slot is taken, with no checkpoint in between:
                # requests racing past the route's check must not exceed the limits. A refused
                # stream ends at once (the client retries after ``retry``); its headers went out.
                if not self.slot.take():
                    self._prefix = encode_retry(self._config.retry_ms) + encode_comment("too many streams, retry later")
                    self._close_queue()
                else:
                    self.slot.on_drop = self.drop
                    self._prefix = self._open()
                    self._last_enqueue = trio.current_time()
                    for monitor in self._monitors:
                        nursery.start_soon(self._watch, monitor.status)
                        nursery.start_soon(self._watch, monitor.progress)
                    nursery.start_soon(self._keepalive_task)
                try:
                    yield self
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            self._release()

    def _release(self) -> None:
        for monitor in self._monitors:
            monitor.unsubscribe(self)
        self._close_queue()
        self.slot.release()

    def _open(self) -> bytes:
        """Subscribe to every monitor (taking a view of what to replay) and return the
        opening: retry and comment. The replay follows piece by piece, then the current
        status and progress of each target (SPEC §2.3)."""
        cursor = parse_cursor(self._last_event_id)
        for monitor in self._monitors:
            position = cursor.get(monitor.name)
            replay = monitor.subscribe(self, position)  # atomic with the subscription
            history = monitor.history
            if position is not None and history.placeable(position):
                # A placeable position of a target: where this client's cursor starts.
                self._replay_ids[monitor.name] = position_id(monitor.name, position)
            if replay:
                self._replays.append((monitor, replay))
            # Live frames queue up behind the replay; their cursor starts where it ends.
            end = history.cursor(position)
            if end is not None:
                self._ids[monitor.name] = end
        parts = []
        for monitor in self._monitors:
            parts.append(monitor.status.frame)
            parts.append(monitor.progress.frame)
            self._opened[id(monitor.status)] = monitor.status.version
            self._opened[id(monitor.progress)] = monitor.progress.version
            if monitor.outage is not None:  # the source is down now: say why, once
                parts.append(encode_event(dumps(monitor.outage.payload()), event=monitor.outage.EVENT))
        self._limits.events_sent += len(parts)
        self._suffix = b"".join(parts)
        return encode_retry(self._config.retry_ms) + encode_comment("connected") + b"\n"

    def _end(self) -> None:
        """End gracefully: take no more frames, let the body drain what is queued. (The
        producers are not cancelled here: the body drains inside this nursery's scope, and
        the final frames and the body's end must still go out. Their frames are ignored from
        now on; leaving the stream cancels them.)"""
        self._close_queue()

    def _close_queue(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        task, self._waiter = self._waiter, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    def drop(self, reason: str) -> None:
        """End at once, discarding what is queued (the client resumes by id)."""
        if self.dropped is None and not self._finished:
            self.dropped = reason
            self._limits.drops[reason] += 1
            self._end()

    # ------------------------------------------------------------ producers

    def offer(self, monitor: TargetView, item: Output) -> None:
        if isinstance(item, Entry):
            frame = self._entry_frame(monitor, item)
        elif isinstance(item, Live):
            frame = item.frame  # a step: encoded once by the reducer, no id
        else:
            frame = encode_event(dumps(item.payload()), event=item.EVENT)
        self._enqueue(frame)

    def _entry_frame(self, monitor: TargetView, entry: Entry, ids: dict[str, str] | None = None) -> bytes:
        if self._single:
            return entry.frame  # encoded once by the history, shared by every client
        ids = self._ids if ids is None else ids
        ids[monitor.name] = entry.id
        return entry.frame_with_id(format_cursor(ids.values()))

    def _enqueue(self, frame: bytes, *, event: bool = True) -> None:
        if self._closed:
            return
        config = self._config
        if len(self._queue) >= config.queue_size or self._queued + len(frame) > config.queue_bytes:
            self.drop("queue_full")
            return
        self._queue.append(frame)
        self._queued += len(frame)
        self._last_enqueue = trio.current_time()
        if event:
            self._limits.events_sent += 1
        if self._waiter is not None:
            self._wake()

    async def _watch(self, watched: WatchedView) -> None:  # type: ignore[type-arg]
        seen = self._opened.get(id(watched), watched.version)  # went out in the opening chunk
        while True:
            await watched.wait_newer(seen)
            seen = watched.version
            self._enqueue(watched.frame)
            await trio.sleep(self.interval)

    async def _keepalive_task(self) -> None:
        """A keepalive comment after ``keepalive`` seconds of silence; the end of the stream
        at shutdown (the hub's event) or when its lifetime is reached."""
        end_at = math.inf if self._lifetime is None else trio.current_time() + self._lifetime
        keepalive = self._config.keepalive
        while not self._closed:
            with trio.move_on_at(min(self._last_enqueue + keepalive, end_at)):
                await self._shutdown.wait()
                self._enqueue(encode_comment("server shutting down"), event=False)
                self._end()
                return
            now = trio.current_time()
            if now >= end_at:
                self._enqueue(encode_comment("stream lifetime reached, reconnect"), event=False)
                self._end()
            elif now >= self._last_enqueue + keepalive:
                self._enqueue(KEEPALIVE, event=False)

    # ------------------------------------------------------------ body

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> bytes:
        slot = self.slot
        slot.writing_since = None  # asked for more: the previous chunk was written
        data = await self._next_chunk()
        slot.writing_since = trio.current_time()
        return data

    async def _next_chunk(self) -> bytes:
        if self._finished or self.dropped is not None:
            raise StopAsyncIteration
        if self._opening:
            data = self._opening_piece()
            self._opening = self._replays or self._suffix is not None
        else:
            queue = self._queue
            while not queue:
                if self._closed:
                    self._finished = True
                    if self._gzip is not None:
                        return self._gzip.close()  # the gzip trailer, then the end of the body
                    raise StopAsyncIteration
                await self._park()
                if self.dropped is not None:
                    raise StopAsyncIteration
            if len(queue) == 1:
                data = queue.pop()
            else:
                n = size = 0
                while n < len(queue) and size < BATCH_BYTES:
                    size += len(queue[n])
                    n += 1
                data = b"".join(queue[:n])
                del queue[:n]
            self._queued -= len(data)
        if self._gzip is not None:
            data = self._gzip.frame(data)
        self._limits.bytes_sent += len(data)
        return data

    def _opening_piece(self) -> bytes:
        """The next piece of what goes out before the queue — the opening comment, the replay,
        the state at opening — as whole frames joined up to about BATCH_BYTES (one frame may be
        larger): a small replay leaves in one write, a large one in bounded pieces as the
        socket drains. Replayed frames are the history's own (single target) or re-encoded
        with this client's cursor (several targets); nothing is held beyond the piece."""
        parts: list[bytes] = []
        size = 0
        if self._prefix is not None:
            parts.append(self._prefix)
            size += len(self._prefix)
            self._prefix = None
        while self._replays and size < BATCH_BYTES:
            monitor, replay = self._replays[0]
            entries, start, end = replay.entries, replay.start, replay.end
            while start < end and size < BATCH_BYTES:
                entry = entries[start]
                start += 1
                if not replay.included(entry):
                    continue
                if self._single:
                    frame = replay.frame(entry)
                else:
                    self._replay_ids[monitor.name] = replay.entry_id(entry)
                    frame = entry.frame_with_id(format_cursor(self._replay_ids.values()))
                parts.append(frame)
                size += len(frame)
                self._limits.events_sent += 1
            if start < end:
                self._replays[0] = (monitor, Replay(entries, start, end, floor=replay.floor,
                                                    target=replay.target, run=replay.run))
            else:
                del self._replays[0]
        if not self._replays and self._suffix is not None and size < BATCH_BYTES:
            parts.append(self._suffix)
            self._suffix = None
        return b"".join(parts)

    async def _park(self) -> None:
        """Wait until a frame is queued or the queue is closed (``_wake``)."""
        self._waiter = trio.lowlevel.current_task()

        def abort(raise_cancel: Any) -> trio.lowlevel.Abort:
            self._waiter = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)


def parse_interval(raw: str | None) -> int:
    """The ``interval`` query parameter: integer seconds 1..60 (SPEC §1). Raises ValueError
    with the sentence the API returns."""
    if raw is None:
        return 5
    if raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= 60:
        return int(raw)
    shown = raw if len(raw) <= 40 else raw[:40] + "…"
    raise ValueError(f"interval must be an integer from 1 to 60, got {shown!r}")


def accepts_gzip(header: str | None) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (RFC 9110 §12.5.3: ``gzip;q=0`` refuses it)."""
    if not header:
        return False
    allowed = False
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        name = name.strip().lower()
        if name not in ("gzip", "x-gzip", "*"):
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if not math.isfinite(q):
            q = 0.0
        if name == "*" and allowed:
            continue
        allowed = q > 0 if name != "*" else (q > 0 or allowed)
        if name in ("gzip", "x-gzip"):
            return allowed
    return allowed
