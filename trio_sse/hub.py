"""The objects every request shares: settings, one monitor per target, the shutdown event and
the stream counters. Built once (by ``server.serve`` or by ``app.create_app`` when Hypercorn's
own CLI loads the app) and passed down; nothing here is global."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from trio_sse.config import Settings, TargetSpec
from trio_sse.monitor import Monitor
from trio_sse.sources import Source
from trio_sse.stream import StreamCounters


def make_source(spec: TargetSpec) -> Source:
    """The source for a target spec: SSH when a host is given, else a local file."""
    if spec.ssh is not None:
        from trio_sse.sources.ssh import SSHSource  # the only module importing asyncio/asyncssh

        return SSHSource.from_spec(spec)
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
    streams_per_ip: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, sources: Sequence[Source] | None = None) -> Hub:
        if sources is None:
            sources = [make_source(spec) for spec in settings.targets]
        monitors = {
            spec.name: Monitor(
                spec.name,
                source,
                success_threshold=settings.success_threshold,
                vnc_url=spec.vnc_url,
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
