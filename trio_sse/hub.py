"""The objects every request shares: settings, one monitor per target, the shutdown event and
the stream counters. Built once (by ``server.serve`` or by ``app.create_app`` when Hypercorn's
own CLI loads the app) and passed down; nothing here is global.

It also runs the write watchdog: a stream whose body handed a chunk to the server that has
not been written after ``write_timeout`` seconds belongs to a client that stopped reading
(or vanished); it is dropped and its connection aborted — Hypercorn shields its writes from
cancellation, so only breaking the socket frees the request task (see ``sockets.py``)."""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import trio

from trio_sse.config import Settings, TargetSpec
from trio_sse.monitor import Monitor
from trio_sse.sources import Source
from trio_sse.stream import EventStream, StreamCounters

# How often the watchdog looks, as a fraction of the write timeout (one pass over the live
# streams is a few attribute reads each, cheap even for thousands of streams).
WATCHDOG_STEPS = 4


def make_source(spec: TargetSpec) -> Source:
    """The source for a target spec: SSH when a host is given, else a local file."""
    if spec.ssh is not None:
        from trio_sse.sources.ssh import SSHSource  # the only module importing asyncio/asyncssh

        return SSHSource(spec)
    from trio_sse.sources.local import LocalSource

    return LocalSource(
        spec.log,
        process_pattern=spec.process_pattern,
        container=spec.container,
        probe_url=spec.probe_url,
        vnc_url=spec.vnc_url,
    )


@dataclass(slots=True)
class Hub:
    settings: Settings
    monitors: dict[str, Monitor]
    shutdown: trio.Event = field(default_factory=trio.Event)
    counters: StreamCounters = field(default_factory=StreamCounters)
    refused: Counter[int] = field(default_factory=Counter)  # streams refused, by HTTP status
    # Breaks the connections of streams (installed by the server; None: drop only).
    abort: Callable[[Sequence[EventStream]], object] | None = None
    _reaped: weakref.WeakSet[EventStream] = field(default_factory=weakref.WeakSet)

    @classmethod
    def build(cls, settings: Settings, sources: Sequence[Source] | None = None) -> Hub:
        if sources is None:
            sources = [make_source(spec) for spec in settings.targets]
        monitors = {
            spec.name: Monitor(
                spec.name,
                source,
                success_threshold=settings.success_threshold,
                vnc_url=spec.vnc_url or getattr(source, "vnc_url", None),  # SSH: http://<host>:8006
                idle_probe_seconds=settings.idle_probe_seconds,
            )
            for spec, source in zip(settings.targets, sources, strict=True)
        }
        return cls(settings, monitors)

    async def run_monitors(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for monitor in self.monitors.values():
                await nursery.start(monitor.run)
            task_status.started()

    async def watch_writes(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Every ``write_timeout / WATCHDOG_STEPS`` seconds, drop and abort the streams whose
        current write is older than ``write_timeout``. Runs until cancelled."""
        timeout = self.settings.write_timeout
        task_status.started()
        while True:
            await trio.sleep(timeout / WATCHDOG_STEPS)
            self.reap_stalled(timeout)

    def reap_stalled(self, limit: float) -> list[EventStream]:
        """Drop and abort every stream whose write has been pending for ``limit`` seconds
        (each once: an aborted connection's write ends as soon as the task runs again)."""
        now = trio.current_time()
        stalled = [
            s
            for s in self.counters.live
            if s.writing_since is not None and now - s.writing_since >= limit and s not in self._reaped
        ]
        for stream in stalled:
            self._reaped.add(stream)
            stream.drop("write_stalled")
        if stalled and self.abort is not None:
            self.abort(stalled)
        return stalled
