"""What every request shares: the settings, one monitor per target, the stream limits, the
streams' shared configuration and the shutdown event. Built once (``Hub.build``, by
``server.prepare`` or ``trio_sse.asgi``) and passed down; nothing here is global.

``Hub.run`` is the background work of a server: every monitor (following and probing its
target) and the write watchdog. Must not: know about HTTP, Quart or Hypercorn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from trio_sse.config import Settings, TargetSpec
from trio_sse.limits import Limits, abort_slots
from trio_sse.monitor import Monitor
from trio_sse.sources import Source
from trio_sse.stream import StreamConfig


def make_source(spec: TargetSpec) -> Source:
    """The source for a target spec: SSH when a host is given, else a local file."""
    if spec.ssh is not None:
        from trio_sse.sources.ssh import SSHSource  # sources/ssh/link.py: the only asyncio/asyncssh code

        return SSHSource(spec)
    from trio_sse.sources.local import LocalSource

    return LocalSource(
        spec.log,
        process_pattern=spec.process_pattern,
        container=spec.container,
        log_location=spec.log_location,
        probe_url=spec.probe_url,
        vnc_url=spec.vnc_url,
    )


@dataclass(slots=True)
class Hub:
    settings: Settings
    monitors: dict[str, Monitor]
    limits: Limits
    stream_config: StreamConfig
    shutdown: trio.Event = field(default_factory=trio.Event)

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
        limits = Limits(
            max_streams=settings.max_streams,
            max_per_ip=settings.max_streams_per_ip,
            write_timeout=settings.write_timeout,
            abort=abort_slots,
        )
        return cls(settings, monitors, limits, StreamConfig.from_settings(settings))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Every monitor and the write watchdog, until cancelled (``started`` once all run)."""
        async with trio.open_nursery() as nursery:
            for monitor in self.monitors.values():
                await nursery.start(monitor.run)
            await nursery.start(self.limits.watch_writes)
            task_status.started()
