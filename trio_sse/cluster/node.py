"""Cluster mode of one process, assembled: what the hub builds and the server runs.

``ClusterNode(url, targets, make_monitor)`` is made synchronously (the URL is checked, nothing
connects) and holds, per target:

* a ``Mirror`` — ``node.mirrors[name]`` is what every client of this process is served from,
  in place of a local monitor (the leader's own clients too: one path for every process, so a
  failover changes nothing for a connected client, and every process sends the same frames);
* a ``Leadership`` — the lease loop; while this process holds the target's lease it runs a
  fresh monitor (``make_monitor(name, resume)``: a new source and monitor for every term,
  since a monitor that lost the lease is stale) and a ``Publisher`` next to it.

``await nursery.start(node.run)`` opens the Redis connection and runs all of it until
cancelled; nothing in it raises for a Redis problem (each loop reports and retries).

Two optional hooks, set before ``run`` (the hub does): ``prepare(name, monitor)`` is awaited
after a term's monitor is made and before it runs (the hub loads its ``--baseline`` there),
and ``ended(name, monitor)`` is called when a term ends, however it ends.

The monitor a term gets only needs what ``publisher.LeaderView`` lists (``monitor.Monitor``
has it) plus ``run(task_status=…)``; if it has ``position()`` (→ ``LogPosition``) the
checkpoint is published too. **Resume at the byte offset**: before a term starts, the node
reads the checkpoint the previous leader left and the run's events it counts from Redis and
hands them to ``make_monitor`` as a ``Resume`` (None when there is none, or Redis cannot give
it whole): the caller's monitor continues at that offset if the log's first bytes still
match (``monitor.Monitor.resume``). Without one — or when the caller declines — the monitor
re-reads its log from the first byte: its events get the same ids, Redis skips the ones it
has, and the publisher holds back status and progress until the new term has caught up. A
failover costs a re-read at worst, never a duplicate or a lost event.

Must not: serve HTTP, build sources (``make_monitor`` does), or talk to Redis except through
the store.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import trio

from trio_sse.cluster.codec import Checkpoint, decode_entry
from trio_sse.cluster.keys import DEFAULT_PREFIX, owner_id
from trio_sse.cluster.lease import Lease, Leadership, LeadershipStatistics
from trio_sse.cluster.mirror import Mirror, MirrorStatistics
from trio_sse.cluster.publisher import LeaderView, Publisher, PublisherStatistics
from trio_sse.cluster.redis import RedisStore
from trio_sse.cluster.timing import ClusterTiming
from trio_sse.errors import ClusterDataError, RedisUnavailable
from trio_sse.history import Entry

log = logging.getLogger(__name__)


class LeaderMonitor(LeaderView, Protocol):
    async def run(self, *, task_status: Any = ...) -> None: ...


@dataclass(frozen=True, slots=True)
class Resume:
    """What the previous leader left for a successor: its last checkpoint and the run's
    first ``checkpoint.count`` durable events as Redis holds them (ids, frames, in order)."""

    checkpoint: Checkpoint
    entries: Sequence[Entry]


@dataclass(frozen=True, slots=True)
class TargetStatistics:
    leading: LeadershipStatistics
    mirror: MirrorStatistics
    publisher: PublisherStatistics | None  # while this process leads the target
    terms: int  # leadership terms this process began for the target
    resumed: int  # of those, the ones handed a checkpoint to resume at (Resume)


class ClusterNode:
    def __init__(
        self,
        url: str,
        targets: Sequence[str],
        make_monitor: Callable[[str, Resume | None], LeaderMonitor],
        *,
        prefix: str = DEFAULT_PREFIX,
        timing: ClusterTiming | None = None,
        owner: str | None = None,
        publisher_interval: float = 5.0,
    ) -> None:
        self.store = RedisStore(url, prefix=prefix, timing=timing, max_connections=max(64, 2 * len(targets) + 16))
        self.owner = owner or owner_id(socket.gethostname(), os.getpid())
        self._make_monitor = make_monitor
        self._publisher_interval = publisher_interval
        self.mirrors: dict[str, Mirror] = {name: Mirror(self.store, name) for name in targets}
        self.leaderships: dict[str, Leadership] = {
            name: Leadership(self.store, name, self.owner, partial(self._lead, name)) for name in targets
        }
        self.leading: dict[str, LeaderMonitor] = {}  # the monitors of the targets this process leads now
        self._publishers: dict[str, Publisher] = {}
        self._terms: dict[str, int] = dict.fromkeys(targets, 0)
        self._resumed: dict[str, int] = dict.fromkeys(targets, 0)
        self.prepare: Callable[[str, LeaderMonitor], Awaitable[None]] | None = None  # see the docstring
        self.ended: Callable[[str, LeaderMonitor], None] | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Mirror every target and take part in every lease, until cancelled. Started as soon
        as the loops run (not when Redis first answers)."""
        async with self.store, trio.open_nursery() as nursery:
            for mirror in self.mirrors.values():
                await nursery.start(mirror.run)
            for leadership in self.leaderships.values():
                await nursery.start(leadership.run)
            task_status.started()

    async def _lead(self, name: str, lease: Lease) -> None:
        resume = await self._resume(name)
        self._terms[name] += 1
        self._resumed[name] += resume is not None
        monitor = self._make_monitor(name, resume)
        try:
            if self.prepare is not None:
                await self.prepare(name, monitor)
            position = getattr(monitor, "position", None)
            publisher = Publisher(self.store, monitor, lease, interval=self._publisher_interval, position=position)
            self.leading[name] = monitor
            self._publishers[name] = publisher
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(publisher.run)  # first: it sees every change the monitor makes
                    await nursery.start(monitor.run)
            finally:
                del self.leading[name]
                del self._publishers[name]
        finally:
            if self.ended is not None:
                self.ended(name, monitor)

    async def _resume(self, name: str) -> Resume | None:
        """The previous leader's checkpoint and the events it counts, or None (none, or Redis
        cannot give them whole now: the new term then re-reads its log, which is correct)."""
        keys = self.store.keys(name)
        try:
            checkpoint = await self.store.checkpoint(keys)
            if checkpoint is None or not checkpoint.run:
                return None
            entries: list[Entry] = []
            key, after = keys.events(checkpoint.run), "0-0"
            while len(entries) < checkpoint.count:
                batch = await self.store.range_after(key, after)
                if not batch:
                    break
                for stream_id, fields in batch:
                    n, entry = decode_entry(keys, checkpoint.run, stream_id, fields)
                    if n != len(entries) + 1:
                        raise ClusterDataError(f"{key}: event {n} where {len(entries) + 1} belongs")
                    entries.append(entry)
                    if len(entries) == checkpoint.count:
                        break
                after = batch[-1][0]
        except (RedisUnavailable, ClusterDataError) as exc:
            log.warning("target %s: no resume point (%s); the new leader reads its log from the start", name, exc)
            return None
        if len(entries) < checkpoint.count:
            log.warning("target %s: redis has %d of the %d events the checkpoint counts; reading the log from the start",
                        name, len(entries), checkpoint.count)  # fmt: skip
            return None
        return Resume(checkpoint, entries)

    async def holder(self, name: str) -> str | None:
        """The owner id of the process that holds the target's lease now (None: nobody, or
        Redis cannot say now)."""
        try:
            return await self.store.lease_holder(self.store.keys(name))
        except (RedisUnavailable, ClusterDataError):
            return None

    def statistics(self) -> dict[str, TargetStatistics]:
        out = {}
        for name, mirror in self.mirrors.items():
            publisher = self._publishers.get(name)
            out[name] = TargetStatistics(
                self.leaderships[name].statistics(),
                mirror.statistics(),
                publisher.statistics() if publisher is not None else None,
                self._terms[name],
                self._resumed[name],
            )
        return out
