"""Python client for the event stream (SPEC §6): typed events over httpx + httpx-sse, with resume.

Owns: connecting to ``/api/benchmark-sse``, reconnecting after a network error or a clean end
of stream with ``Last-Event-ID`` (waiting the server's ``retry`` time, as EventSource does),
and turning SSE frames into frozen, typed event values. Must not: parse SSE by hand (httpx-sse
does that), retry a 4xx (the request itself is wrong: retrying cannot help), or import server
modules — it talks only the wire contract of SPEC §2 (its event types are the pure payload
types of ``trio_sse.model``, decoded with their ``from_payload``), so it also reads the
original endpoint.

Usage (under Trio)::

    async with BenchmarkClient("http://127.0.0.1:8765") as client:
        async for event in client.events():
            if isinstance(event, TaskCompleteEvent):
                print(event.task_id, event.success, event.score)

Event types the client does not know are skipped, so a newer server does not break it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import httpx
import trio
from httpx_sse import SSEError, aconnect_sse

from trio_sse import model
from trio_sse.errors import ConfigError, TrioSSEError

__all__ = [
    "BenchmarkClient",
    "ConnectionEvent",
    "ErrorEvent",
    "Event",
    "ProgressEvent",
    "ProtocolError",
    "RunCompleteEvent",
    "StatusEvent",
    "StepEvent",
    "StreamRejected",
    "TaskCompleteEvent",
]

DEFAULT_RETRY: Final = 3.0  # seconds; EventSource's usual default until the server says otherwise
STREAM_PATH: Final = "/api/benchmark-sse"


class StreamRejected(TrioSSEError):
    """The server answered with an HTTP error (4xx): retrying the same request cannot help.
    ``str(err)`` is the server's own sentence; ``status`` its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ProtocolError(TrioSSEError):
    """The server sent something that is not this stream (not ``text/event-stream``, or an
    event whose data is not the documented JSON)."""

    status = 502


# --- typed events ----------------------------------------------------------------------------
# The server's own payload types (``trio_sse.model``) with what a client adds: the SSE ``id``
# of a durable event (where a resume starts after) and the decoded JSON object as ``raw``
# (fields added by newer servers stay reachable); ``raw`` takes no part in equality or hashing
# (a dict cannot be hashed). ``target`` is None for a server that does not name targets.


def _raw() -> Any:
    return field(default_factory=dict, compare=False, hash=False, repr=False)


@dataclass(frozen=True, slots=True)
class StatusEvent(model.Status):
    raw: dict[str, Any] = _raw()


@dataclass(frozen=True, slots=True)
class ProgressEvent(model.Progress):
    raw: dict[str, Any] = _raw()


@dataclass(frozen=True, slots=True)
class TaskCompleteEvent(model.TaskComplete):
    id: str | None = None  # the SSE id (durable events); what a resume starts after
    raw: dict[str, Any] = _raw()


@dataclass(frozen=True, slots=True)
class RunCompleteEvent(model.RunComplete):
    id: str | None = None
    raw: dict[str, Any] = _raw()


@dataclass(frozen=True, slots=True)
class ErrorEvent(model.ErrorEvent):
    """The server's ``error`` event (a source is down, ...): news, not a client failure."""

    raw: dict[str, Any] = _raw()


@dataclass(frozen=True, slots=True)
class StepEvent(model.Step):
    """One agent step (SPEC §2.2, §8), sent at once and never replayed (no id). ``screenshot``
    is a path on the server (``/api/tasks/<id>/files/<name>?target=…``) without the token:
    fetch it from the same server with your own credentials."""

    raw: dict[str, Any] = _raw()


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """Not from the server: the client's own connection state, yielded only when
    ``events(connection_events=True)`` asks for it (a UI shows "live" / "reconnecting")."""

    EVENT: ClassVar[str] = "connection"
    state: str  # "live" | "reconnecting"
    reason: str | None = None  # why the previous connection ended (reconnecting only)
    retry_in: float | None = None  # seconds until the next attempt (reconnecting only)


Event = StatusEvent | ProgressEvent | TaskCompleteEvent | RunCompleteEvent | ErrorEvent | StepEvent
_TYPES: Final[dict[str, type[Event]]] = {
    c.EVENT: c for c in (StatusEvent, ProgressEvent, TaskCompleteEvent, RunCompleteEvent, ErrorEvent, StepEvent)
}
_DURABLE: Final = frozenset({TaskCompleteEvent.EVENT, RunCompleteEvent.EVENT})


def decode_event(event: str, data: str, id: str | None = None) -> Event | None:
    """One SSE event (type, data, id) → a typed event; None for a type this client does not
    know (forward compatible). Raises ``ProtocolError`` when a known type has bad data."""
    cls = _TYPES.get(event)
    if cls is None:
        return None
    try:
        obj = json.loads(data)
    except ValueError:
        raise ProtocolError(f"{event} event data is not JSON: {data[:200]!r}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{event} event data is not a JSON object: {data[:200]!r}")
    extra: dict[str, Any] = {"raw": obj}
    if event in _DURABLE:
        extra["id"] = id
    try:
        return cls.from_payload(obj, **extra)  # type: ignore[no-any-return]
    except model.PayloadError as err:
        raise ProtocolError(str(err)) from None


# --- the client ------------------------------------------------------------------------------


def _stream_url(base_url: str) -> str:
    if not isinstance(base_url, str):
        raise ConfigError(f"server URL must be a string like http://127.0.0.1:8765, got {base_url!r}")
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"server URL must look like http://HOST:PORT, got {base_url!r}")
    try:
        parts.port  # noqa: B018 — raises ValueError for a junk port
    except ValueError:
        raise ConfigError(f"server URL has a bad port: {base_url!r}") from None
    if parts.query or parts.fragment:
        raise ConfigError(f"server URL must not have a query or fragment, got {base_url!r}")
    path = parts.path.rstrip("/")
    if path.endswith(STREAM_PATH):  # the stream's own URL was given: accept it
        path = path[: -len(STREAM_PATH)]
    return f"{parts.scheme}://{parts.netloc}{path}{STREAM_PATH}"


def check_interval(interval: object) -> int:
    """The server's own rule (SPEC §1), checked before any request is made."""
    if isinstance(interval, bool) or not isinstance(interval, int) or not 1 <= interval <= 60:
        raise ConfigError(f"interval must be an integer from 1 to 60, got {interval!r}")
    return interval


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    text = response.text.strip()
    return f"HTTP {response.status_code}" + (f": {text[:200]}" if text else "")


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "0")))
    except ValueError:  # an HTTP date: not worth parsing here, the retry time applies
        return 0.0


async def _finish(frames: AsyncIterator[Any]) -> None:
    """End httpx's chain of async generators (httpx-sse → text → bytes → raw → transport →
    httpcore) by an exception raised at its bottom, so every layer finishes.

    Closing only the top generator (``aclose``, or leaving an ``async for``) throws
    GeneratorExit into that one; the layers below stay suspended at their ``yield`` and are
    garbage collected unexhausted, which Trio reports as a ResourceWarning per layer. Pulled
    under a cancelled scope, the chain reaches the socket, Cancelled is raised there and
    unwinds every layer; the scope then absorbs it. (Data already buffered is just read.)
    """
    with trio.CancelScope() as scope:
        scope.cancel()
        with suppress(Exception):  # StopAsyncIteration (already finished) or a read error
            while True:
                await frames.__anext__()


class BenchmarkClient:
    """A resuming reader of one server's event stream. Enter it (``async with``) to get an
    HTTP connection pool; iterate ``events()`` for typed events, forever (wrap in
    ``trio.move_on_after`` or ``break`` to stop). ``last_event_id`` is where a new client
    would resume."""

    def __init__(
        self,
        base_url: str,
        *,
        interval: int = 5,
        target: str | None = None,
        token: str | None = None,
        last_event_id: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = _stream_url(base_url)
        self.interval = check_interval(interval)
        if target is not None and (not isinstance(target, str) or not target):
            raise ConfigError(f"target must be a non-empty name, got {target!r}")
        if token is not None and (not isinstance(token, str) or not token or any(c.isspace() for c in token)):
            raise ConfigError("token must be non-empty and contain no whitespace")
        self.target = target
        self._token = token
        self.last_event_id: str | None = last_event_id or None
        self.retry: float = DEFAULT_RETRY  # seconds; replaced by the server's ``retry:``
        self.connects = 0  # successful connections so far (1 + reconnects)
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._iterators: list[Any] = []

    async def __aenter__(self) -> BenchmarkClient:
        # read=None: a stream is silent between events for as long as the run is (the
        # server's keepalive comments are the only traffic); httpx's default would cut it.
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, read=None), transport=self._transport
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Close iterators the caller left mid-stream, so their responses close now rather
        # than whenever the garbage collector finds them.
        iterators, self._iterators = self._iterators, []
        with trio.CancelScope(shield=True):
            for it in iterators:
                await it.aclose()
            if self._http is not None:
                await self._http.aclose()
        self._http = None

    def _params(self) -> dict[str, str]:
        params = {"interval": str(self.interval)}
        if self.target is not None:
            params["target"] = self.target
        return params

    def _headers(self) -> dict[str, str]:
        # One connection per stream: when a stream ends we reconnect after ``retry`` anyway,
        # and an idle kept-alive socket left in the pool would hold up a server's graceful
        # shutdown (Hypercorn waits for it) for nothing.
        headers: dict[str, str] = {"Connection": "close"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def events(self, *, connection_events: bool = False) -> AsyncIterator[Event | ConnectionEvent]:
        """Typed events, reconnecting as needed; ends only if the server answers 204 (WHATWG:
        "stop reconnecting"). Raises ``StreamRejected`` on a 4xx, ``ProtocolError`` on a
        response that is not this stream."""
        if self._http is None:
            raise RuntimeError("use 'async with BenchmarkClient(...) as client' before events()")
        it = self._events(self._http, connection_events)
        self._iterators.append(it)
        return it

    async def _events(
        self, http: httpx.AsyncClient, connection_events: bool
    ) -> AsyncIterator[Event | ConnectionEvent]:
        while True:
            delay: float | None = None
            try:
                async with aconnect_sse(
                    http, "GET", self.url, params=self._params(), headers=self._headers()
                ) as source:
                    response = source.response
                    status = response.status_code
                    if status == 204:
                        return
                    if status >= 400:
                        await response.aread()
                        message = _error_message(response)
                        if status < 500:
                            raise StreamRejected(status, message)
                        # 5xx (e.g. 503: the server is full): try again later, no sooner
                        # than it asked.
                        reason = f"HTTP {status}: {message}"
                        delay = max(self.retry, _retry_after(response))
                    else:
                        self.connects += 1
                        if connection_events:
                            yield ConnectionEvent("live")
                        frames = source.aiter_sse()
                        try:
                            async for sse in frames:
                                if sse.retry is not None:
                                    self.retry = sse.retry / 1000
                                if sse.id:
                                    # httpx-sse keeps the last id across events, as the
                                    # spec's "last event ID buffer" does.
                                    self.last_event_id = sse.id
                                if not sse.data:  # WHATWG: empty data buffer → no event
                                    continue
                                event = decode_event(sse.event, sse.data, sse.id)
                                if event is not None:
                                    yield event
                        finally:
                            await _finish(frames)
                        reason = "the server ended the stream"
            except SSEError as exc:
                raise ProtocolError(f"{self.url} is not an event stream: {exc}") from None
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if delay is None:
                delay = self.retry
            if connection_events:
                yield ConnectionEvent("reconnecting", reason, delay)
            await trio.sleep(delay)
