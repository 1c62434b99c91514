"""What the routes, the streams and ``/metrics`` read of a target: one ``Protocol`` that the
local ``monitor.Monitor`` (one process, the embedded default) and the cluster's
``cluster.mirror.Mirror`` (``--redis``: the target as Redis holds it) both satisfy, so every
route works the same on any process of a cluster. Pure: typing only.

Must not: hold state or behaviour (the classes that satisfy it do); grow beyond what the
consumers really read — each member below names who reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from trio_sse.history import Entry, Position, Replay
from trio_sse.model import ErrorEvent, Progress, Status
from trio_sse.runstate import Output

T_co = TypeVar("T_co", Status, Progress, covariant=True)


class WatchedView(Protocol[T_co]):
    """A latest value (``status``, ``progress``): its frame encoded once, a version that goes
    up on change, and a wait for a newer one (stream.py's per-client watchers)."""

    @property
    def value(self) -> T_co: ...

    @property
    def frame(self) -> bytes: ...

    @property
    def version(self) -> int: ...

    async def wait_newer(self, version: int) -> None: ...


class HistoryView(Protocol):
    """The current run's durable events (``history.History`` or the mirror's replica)."""

    @property
    def run(self) -> str: ...

    @property
    def entries(self) -> Sequence[Entry]: ...  # /api/tasks, the publisher

    def __len__(self) -> int: ...  # /metrics

    def placeable(self, position: Position | None) -> bool: ...  # stream.py: resume

    def cursor(self, position: Position | None = None) -> str | None: ...  # stream.py: resume


class StatisticsView(Protocol):
    """``statistics()`` as ``/metrics`` reads it (a mirror: the leader's, as last published)."""

    @property
    def bytes_read(self) -> int: ...

    @property
    def lines(self) -> int: ...

    @property
    def parse_errors(self) -> int: ...

    @property
    def runs(self) -> int: ...

    @property
    def outages(self) -> int: ...

    @property
    def subscribers(self) -> int: ...


class Subscriber(Protocol):
    """What a target needs of a client (``stream.EventStream``): its status pace, and an
    offer that never blocks (take the item now or drop yourself)."""

    interval: float

    def offer(self, target: TargetView, item: Output) -> None: ...


class TargetView(Protocol):
    name: str

    @property
    def status(self) -> WatchedView[Status]: ...

    @property
    def progress(self) -> WatchedView[Progress]: ...

    @property
    def history(self) -> HistoryView: ...

    @property
    def outage(self) -> ErrorEvent | None: ...  # why news may be stale now (told at connect)

    def subscribe(self, subscriber: Subscriber, position: Position | None) -> Replay:
        """Register and return the durable entries after ``position`` — atomically."""
        ...

    def unsubscribe(self, subscriber: Subscriber) -> None: ...

    @property
    def subscriber_count(self) -> int: ...  # /metrics

    def snapshot(self) -> dict[str, object]: ...  # /api/benchmark

    def rerun(self) -> dict[str, list[str]]: ...  # /api/rerun

    def task(self, task_id: str) -> tuple[dict[str, object], str | None] | None: ...  # /api/tasks/<id>

    def publish_error(self, message: str) -> ErrorEvent: ...  # hub: the history database's outages

    def statistics(self) -> StatisticsView: ...  # /metrics


__all__ = ["HistoryView", "StatisticsView", "Subscriber", "TargetView", "WatchedView"]
