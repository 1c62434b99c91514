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
from trio_sse.filecache import FileCache
from trio_sse.limits import Limits, abort_slots
from trio_sse.monitor import Monitor
from trio_sse.results import Results
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
        probe_url=spec.probe_url,
        vnc_url=spec.vnc_url,
    )


def make_results(spec: TargetSpec, source: Source, cache: FileCache) -> Results | None:
    """The results folder of a target (SPEC §8), read where its log is read: over the SSH
    source's one connection, or on this machine. None without a results folder."""
    root = spec.results_dir
    if root is None:
        return None
    if spec.ssh is not None:
        from trio_sse.sources.ssh import SSHSource
        from trio_sse.sources.ssh.results import SSHResults

        if not isinstance(source, SSHSource):
            return None  # a stand-in source for an SSH target (tests): nothing to read it with
        return Results(spec.name, SSHResults(source.link, spec, root, cache))
    from trio_sse.sources.results_local import LocalResults

    return Results(spec.name, LocalResults(root))


@dataclass(slots=True)
class Hub:
    settings: Settings
    monitors: dict[str, Monitor]
    limits: Limits
    stream_config: StreamConfig
    shutdown: trio.Event = field(default_factory=trio.Event)
    # Remote files (screenshots) fetched once and kept on disk for every client (SPEC §8).
    files: FileCache = field(default_factory=lambda: FileCache(None, 512 << 20))

    @classmethod
    def build(cls, settings: Settings, sources: Sequence[Source] | None = None) -> Hub:
        if sources is None:
            sources = [make_source(spec) for spec in settings.targets]
        files = FileCache(settings.cache_dir, settings.cache_mb << 20)
        monitors = {
            spec.name: Monitor(
                spec.name,
                source,
                success_threshold=settings.success_threshold,
                vnc_url=spec.vnc_url or getattr(source, "vnc_url", None),  # SSH: http://<host>:8006
                idle_probe_seconds=settings.idle_probe_seconds,
                lanes=spec.follows_several_files,
                results=make_results(spec, source, files),
            )
            for spec, source in zip(settings.targets, sources, strict=True)
        }
        limits = Limits(
            max_streams=settings.max_streams,
            max_per_ip=settings.max_streams_per_ip,
            write_timeout=settings.write_timeout,
            abort=abort_slots,
        )
        return cls(settings, monitors, limits, StreamConfig.from_settings(settings), files=files)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Every monitor and the write watchdog, until cancelled (``started`` once all run)."""
        try:
            async with trio.open_nursery() as nursery:
                for monitor in self.monitors.values():
                    await nursery.start(monitor.run)
                await nursery.start(self.limits.watch_writes)
                task_status.started()
        finally:
            self.files.close()  # a private temporary cache is removed; a configured one stays
