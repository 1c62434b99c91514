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
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import trio

from trio_sse.history import Entry, format_cursor, parse_cursor
from trio_sse.model import ErrorEvent, dumps
from trio_sse.monitor import Monitor, Watched
from trio_sse.sse import GzipFramer, encode_comment, encode_event, encode_retry

KEEPALIVE = encode_comment("keepalive")
BATCH_BYTES = 64 * 1024  # at most this much queued data is joined into one write


class StreamCounters:
    """Process-wide counters of all streams (read by /metrics), the live streams (watched for
    stalled writes) and the streams per client IP (for the limits)."""

    __slots__ = ("clients", "clients_total", "events_sent", "bytes_sent", "drops", "per_ip", "live")

    def __init__(self) -> None:
        self.clients = 0
        self.clients_total = 0
        self.events_sent = 0
        self.bytes_sent = 0
        self.drops: Counter[str] = Counter()
        self.per_ip: Counter[str] = Counter()
        self.live: set[EventStream] = set()

    def admits(self, ip: str | None, max_streams: int, max_per_ip: int) -> int | None:
        """``None`` when one more stream from ``ip`` fits the limits, else the HTTP status
        that refuses it: 503 (the server is full) or 429 (this IP has too many)."""
        if self.clients >= max_streams:
            return 503
        if ip is not None and self.per_ip[ip] >= max_per_ip:
            return 429
        return None


class EventStream:
    def __init__(
        self,
        monitors: Sequence[Monitor],
        *,
        shutdown: trio.Event,
        counters: StreamCounters,
        interval: float = 5.0,
        last_event_id: str | None = None,
        keepalive: float = 15.0,
        retry_ms: int = 3000,
        gzip: bool = False,
        queue_size: int = 256,
        max_seconds: float | None = None,
        client: tuple[str, int] | None = None,
        server: tuple[str, int] | None = None,
        admit: Callable[[], bool] | None = None,
    ) -> None:
        self.interval = interval
        # The connection's addresses (ASGI scope): the IP counts against the per-IP limit;
        # both let a watchdog find and abort the connection when a write is stuck.
        self.client = client
        self.server = server
        self._admit = admit
        self._ip = client[0] if client else None
        # When the body handed out the chunk that is being written now (None: not writing).
        self.writing_since: float | None = None
        self._monitors = list(monitors)
        self._shutdown = shutdown
        self._counters = counters
        self._last_event_id = last_event_id
        self._keepalive = keepalive
        self._retry_ms = retry_ms
        self._gzip = GzipFramer() if gzip else None
        self._max_seconds = max_seconds
        # queue_size frames may wait for the socket; more means the client is too slow.
        self._queue: list[bytes] = []  # short (0-1 frames mostly): a list is 56 bytes, a deque 760
        self._queue_size = queue_size
        self._closed = False  # no more frames are queued; the body ends once it is drained
        self._waiter: Any = None  # the body task parked on an empty queue (trio.lowlevel.Task)
        self._single = len(self._monitors) == 1
        self._ids: dict[str, str] = {}
        # Version of each watched value whose frame went out in the opening chunk: a change
        # between _open and the watcher's first step must still be sent.
        self._opened: dict[int, int] = {}
        self._prefix: bytes | None = None
        self._last_enqueue = 0.0
        self._nursery_manager: Any = None  # trio's nursery manager (not a public type)
        self._nursery: trio.Nursery | None = None
        self._finished = False
        self.dropped: str | None = None

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> EventStream:
        # Checked again here, where the slot is taken: requests racing past the route's
        # check must not exceed the limits. A refused stream ends at once (the client
        # retries after ``retry``); its headers went out already.
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        # No checkpoint between the check and taking the slot; from here on __aexit__
        # releases the slot, whatever happens.
        admitted = self._admit is None or self._admit()
        self._counters.clients += 1
        self._counters.clients_total += 1
        if self._ip is not None:
            self._counters.per_ip[self._ip] += 1
        self._counters.live.add(self)
        try:
            if not admitted:
                self._counters.drops["over_limit"] += 1
                self._prefix = encode_retry(self._retry_ms) + encode_comment("too many streams, retry later")
                self._close_queue()
                return self
            self._prefix = self._open()
            self._last_enqueue = trio.current_time()
            for monitor in self._monitors:
                self._nursery.start_soon(self._watch, monitor.status)
                self._nursery.start_soon(self._watch, monitor.progress)
            self._nursery.start_soon(self._keepalive_task)
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._nursery is not None and self._nursery_manager is not None
        self._nursery.cancel_scope.cancel()
        try:
            return await self._nursery_manager.__aexit__(exc_type, exc, tb)
        finally:
            for monitor in self._monitors:
                monitor.unsubscribe(self)
            self._close_queue()
            self.writing_since = None
            self._counters.clients -= 1
            self._counters.live.discard(self)
            if self._ip is not None:
                self._counters.per_ip[self._ip] -= 1
                if self._counters.per_ip[self._ip] <= 0:
                    del self._counters.per_ip[self._ip]

    def _open(self) -> bytes:
        """Subscribe to every monitor and build the opening chunk: retry, comment, replay,
        then the current status and progress of each target (SPEC §2.3)."""
        cursor = parse_cursor(self._last_event_id)
        parts = [encode_retry(self._retry_ms), encode_comment("connected") + b"\n"]
        for monitor in self._monitors:
            position = cursor.get(monitor.name)
            replay = monitor.subscribe(self, position)  # atomic with the subscription
            if position is not None and position[0] == monitor.history.run and position[1] <= len(
                monitor.history
            ):
                # A placeable position of a target with nothing new: keep it in the cursor.
                self._ids[monitor.name] = f"{monitor.name}:{position[0]}-{position[1]}"
            for entry in replay:
                parts.append(self._entry_frame(monitor, entry))
        for monitor in self._monitors:
            parts.append(monitor.status.frame)
            parts.append(monitor.progress.frame)
            self._opened[id(monitor.status)] = monitor.status.version
            self._opened[id(monitor.progress)] = monitor.progress.version
            if monitor.outage is not None:  # the source is down now: say why, once
                parts.append(encode_event(dumps(monitor.outage.payload()), event=monitor.outage.EVENT))
        self._counters.events_sent += len(parts) - 2
        return b"".join(parts)

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
            self._counters.drops[reason] += 1
            self._end()

    # ------------------------------------------------------------ producers

    def offer(self, monitor: Monitor, item: Entry | ErrorEvent) -> None:
        if isinstance(item, Entry):
            frame = self._entry_frame(monitor, item)
        else:
            frame = encode_event(dumps(item.payload()), event=item.EVENT)
        self._enqueue(frame)

    def _entry_frame(self, monitor: Monitor, entry: Entry) -> bytes:
        if self._single:
            return entry.frame  # encoded once by the history, shared by every client
        self._ids[monitor.name] = entry.id
        return entry.frame_with_id(format_cursor(self._ids.values()))

    def _enqueue(self, frame: bytes, *, event: bool = True) -> None:
        if self._closed:
            return
        if len(self._queue) >= self._queue_size:
            self.drop("queue_full")
            return
        self._queue.append(frame)
        self._last_enqueue = trio.current_time()
        if event:
            self._counters.events_sent += 1
        if self._waiter is not None:
            self._wake()

    async def _watch(self, watched: Watched) -> None:  # type: ignore[type-arg]
        seen = self._opened.get(id(watched), watched.version)  # went out in the opening chunk
        while True:
            await watched.wait_newer(seen)
            seen = watched.version
            self._enqueue(watched.frame)
            await trio.sleep(self.interval)

    async def _keepalive_task(self) -> None:
        """A keepalive comment after ``keepalive`` seconds of silence; the end of the stream
        at shutdown (the hub's event) or when its lifetime is reached."""
        end_at = math.inf if self._max_seconds is None else trio.current_time() + self._max_seconds
        while not self._closed:
            with trio.move_on_at(min(self._last_enqueue + self._keepalive, end_at)):
                await self._shutdown.wait()
                self._enqueue(encode_comment("server shutting down"), event=False)
                self._end()
                return
            now = trio.current_time()
            if now >= end_at:
                self._enqueue(encode_comment("stream lifetime reached, reconnect"), event=False)
                self._end()
            elif now >= self._last_enqueue + self._keepalive:
                self._enqueue(KEEPALIVE, event=False)

    # ------------------------------------------------------------ body

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> bytes:
        self.writing_since = None  # asked for more: the previous chunk was written
        data = await self._next_chunk()
        self.writing_since = trio.current_time()
        return data

    async def _next_chunk(self) -> bytes:
        if self._finished or self.dropped is not None:
            raise StopAsyncIteration
        if self._prefix is not None:
            data, self._prefix = self._prefix, None
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
        if self._gzip is not None:
            data = self._gzip.frame(data)
        self._counters.bytes_sent += len(data)
        return data

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
