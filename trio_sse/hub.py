"""What every request shares: the settings, one monitor per target, the stream limits, the
streams' shared configuration and the shutdown event. Built once (``Hub.build``, by
``server.prepare`` or ``trio_sse.asgi``) and passed down; nothing here is global.

``Hub.run`` is the background work of a server: every monitor (following and probing its
target) and the write watchdog. In cluster mode (``settings.redis``, SPEC §10) ``hub.node``
is a ``cluster.node.ClusterNode`` and ``hub.monitors`` are its mirrors (every target served
from Redis, on every process): ``Hub.run`` runs the node, which builds a fresh source and
monitor for a target (``build_monitor``, as the embedded default does) whenever this process
takes over the target's lease, resuming at the previous leader's checkpoint when it left one.
Must not: know about HTTP, Quart or Hypercorn.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from trio_sse.config import Settings, TargetSpec
from trio_sse.limits import Limits, abort_slots
from trio_sse.monitor import Monitor
from trio_sse.sources import Source
from trio_sse.stream import StreamConfig
from trio_sse.targetview import TargetView

if TYPE_CHECKING:
    from trio_sse.cluster.node import ClusterNode, Resume

log = logging.getLogger(__name__)


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


def build_monitor(settings: Settings, spec: TargetSpec, source: Source) -> Monitor:
    """The monitor of one target, with the settings' options (both modes build it so)."""
    return Monitor(
        spec.name,
        source,
        success_threshold=settings.success_threshold,
        vnc_url=spec.vnc_url or getattr(source, "vnc_url", None),  # SSH: http://<host>:8006
        idle_probe_seconds=settings.idle_probe_seconds,
        stall_after=settings.stall_after,
        lanes=spec.follows_several_files,
    )


def build_node(settings: Settings) -> ClusterNode:
    """Cluster mode: the node of this process (nothing connects until it runs)."""
    assert settings.redis is not None
    from trio_sse.cluster.node import ClusterNode  # coredis: imported in cluster mode only
    from trio_sse.cluster.timing import ClusterTiming

    def make_monitor(name: str, resume: Resume | None) -> Monitor:
        spec = settings.target(name)
        assert spec is not None
        monitor = build_monitor(settings, spec, make_source(spec))
        if resume is not None:
            try:
                monitor.resume(resume.checkpoint.extra, resume.entries)
            except ValueError as exc:  # another version's checkpoint, a glob, …: read from byte 0
                log.warning("target %s: not resuming at byte %d (%s); reading the log from the start",
                            name, resume.checkpoint.offset, exc)  # fmt: skip
            else:
                log.info("target %s: resuming at byte %d after event %d of run %s", name,
                         resume.checkpoint.offset, resume.checkpoint.count, resume.checkpoint.run)  # fmt: skip
        return monitor

    return ClusterNode(
        settings.redis,
        [t.name for t in settings.targets],
        make_monitor,
        prefix=settings.redis_prefix,
        timing=ClusterTiming(lease_seconds=settings.lease_seconds),
    )


@dataclass(slots=True)
class Hub:
    settings: Settings
    monitors: dict[str, TargetView]  # local monitors, or (cluster mode) the node's mirrors
    limits: Limits
    stream_config: StreamConfig
    shutdown: trio.Event = field(default_factory=trio.Event)
    node: ClusterNode | None = None  # cluster mode only

    @classmethod
    def build(cls, settings: Settings, sources: Sequence[Source] | None = None) -> Hub:
        node = None
        monitors: dict[str, TargetView]
        if settings.redis is not None:
            if sources is not None:
                raise ValueError("cluster mode builds a fresh source for every leadership term: no sources=")
            node = build_node(settings)
            monitors = dict(node.mirrors)
        else:
            if sources is None:
                sources = [make_source(spec) for spec in settings.targets]
            monitors = {
                spec.name: build_monitor(settings, spec, source)
                for spec, source in zip(settings.targets, sources, strict=True)
            }
        limits = Limits(
            max_streams=settings.max_streams,
            max_per_ip=settings.max_streams_per_ip,
            write_timeout=settings.write_timeout,
            abort=abort_slots,
        )
        return cls(settings, monitors, limits, StreamConfig.from_settings(settings), node=node)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Every monitor (cluster mode: the node) and the write watchdog, until cancelled
        (``started`` once all run)."""
        async with trio.open_nursery() as nursery:
            if self.node is not None:
                await nursery.start(self.node.run)  # started at once, whether Redis answers or not
            else:
                for monitor in self.monitors.values():
                    await nursery.start(monitor.run)  # type: ignore[attr-defined]  # local: a Monitor
            await nursery.start(self.limits.watch_writes)
            task_status.started()
