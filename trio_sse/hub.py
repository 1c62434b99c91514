"""What every request shares: the settings, one monitor per target, the stream limits, the
streams' shared configuration, the run history and alerts, and the shutdown event. Built once
(``Hub.build``, by ``server.prepare`` or ``trio_sse.asgi``) and passed down; nothing here is
global.

``Hub.run`` is the background work of a server: the history writer (``recording.Recorder``,
unless ``--db none``), the notifier (``alerting.Alerting``, with ``--notify``), every monitor
(following and probing its target; the first two observe it) and the write watchdog. Must
not: know about HTTP, Quart or Hypercorn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Final

import trio

from trio_sse.alerting import Alerting, on_notifier_report
from trio_sse.alerts import MemoryLedger, Notifier
from trio_sse.config import Settings, TargetSpec
from trio_sse.errors import ConfigError
from trio_sse.filecache import FileCache
from trio_sse.limits import Limits, abort_slots
from trio_sse.model import RunComplete
from trio_sse.monitor import DEFAULT_SETTLE_SECONDS, Monitor, Observer, RunEvent
from trio_sse.recording import Recorder
from trio_sse.results import Results
from trio_sse.sources import Source
from trio_sse.stream import StreamConfig

# An SSH source says LogReset before it has connected; the log's bytes (what it held at
# start-up, a replay) come once the connection is up, which can take seconds. So an SSH
# target counts as caught up only after this long without new bytes (monitor.py, "Live").
SSH_SETTLE_SECONDS: Final = 10.0
# How long start-up waits for the baselines (a locked database must not hold the server: runs
# are then not compared until the next lookup succeeds).
BASELINE_LOAD_SECONDS: Final = 5.0


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
    recorder: Recorder | None = None  # the run history; None with --db none
    alerting: Alerting | None = None  # alerts; None without --notify
    # Remote files (screenshots) fetched once and kept on disk for every client (SPEC §8).
    files: FileCache = field(default_factory=lambda: FileCache(None, 512 << 20))

    @classmethod
    def build(cls, settings: Settings, sources: Sequence[Source] | None = None) -> Hub:
        """Everything a server shares; ``ConfigError`` for a ``--notify`` URL Apprise does
        not know. Nothing is opened, connected or started here (``run`` does that)."""
        if sources is None:
            sources = [make_source(spec) for spec in settings.targets]
        files = FileCache(settings.cache_dir, settings.cache_mb << 20)
        monitors: dict[str, Monitor] = {}

        def publish_error(message: str, target: str | None = None) -> None:
            _publish_error(monitors, message, target)

        recorder = None
        if settings.db is not None:
            recorder = Recorder(settings.db, baseline_ref=settings.baseline, publish_error=publish_error)
        alerting = None
        if settings.notify:
            try:  # (Apprise itself is imported only here: ~0.1 s, paid only with --notify)
                notifier = Notifier(
                    settings.notify,
                    ledger=recorder.ledger if recorder is not None else MemoryLedger(),
                    report=on_notifier_report,
                    alert_after=settings.alert_after,
                )
            except ValueError as err:  # names the scheme only: URLs carry tokens
                raise ConfigError(str(err)) from None
            compare = recorder is not None and settings.baseline is not None
            alerting = Alerting(notifier, baseline=recorder.baseline if compare else None)  # type: ignore[union-attr]
        observers: list[Observer] = [o.observe for o in (recorder, alerting) if o is not None]
        for index, (spec, source) in enumerate(zip(settings.targets, sources, strict=True)):
            monitors[spec.name] = Monitor(
                spec.name,
                source,
                success_threshold=settings.success_threshold,
                vnc_url=spec.vnc_url or getattr(source, "vnc_url", None),  # SSH: http://<host>:8006
                idle_probe_seconds=settings.idle_probe_seconds,
                stall_after=settings.stall_after,
                lanes=spec.follows_several_files,
                observers=observers,
                # The simulator truncates its log first: nothing in it is from before the start.
                replay=not (settings.simulate and index == 0),
                settle_seconds=SSH_SETTLE_SECONDS if spec.ssh is not None else DEFAULT_SETTLE_SECONDS,
                results=make_results(spec, source, files),
            )
        limits = Limits(
            max_streams=settings.max_streams,
            max_per_ip=settings.max_streams_per_ip,
            write_timeout=settings.write_timeout,
            abort=abort_slots,
        )
        return cls(
            settings, monitors, limits, StreamConfig.from_settings(settings), recorder=recorder, alerting=alerting,
            files=files,
        )

    def publish_error(self, message: str, target: str | None = None) -> None:
        """An ``error`` event to the clients of ``target`` (None: of every target)."""
        _publish_error(self.monitors, message, target)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The history writer, the notifier, every monitor and the write watchdog, until
        cancelled (``started`` once all run)."""
        try:
            async with trio.open_nursery() as nursery:
                if self.recorder is not None:
                    await nursery.start(self.recorder.run)
                    if self.settings.baseline is not None:
                        # Before the monitors read a line: results replayed at start are compared too.
                        with trio.move_on_after(BASELINE_LOAD_SECONDS):
                            for monitor in self.monitors.values():
                                monitor.set_baselines(await self.recorder.baseline_candidates(monitor.name))
                        for monitor in self.monitors.values():
                            monitor.add_observer(partial(self._refresh_baselines, nursery))
                if self.alerting is not None:
                    await nursery.start(self.alerting.run)
                for monitor in self.monitors.values():
                    await nursery.start(monitor.run)
                await nursery.start(self.limits.watch_writes)
                task_status.started()
        finally:
            self.files.close()  # a private temporary cache is removed; a configured one stays

    def _refresh_baselines(self, nursery: trio.Nursery, monitor: Monitor, item: object) -> None:
        """A run of ``monitor`` ended: with ``--baseline previous`` it is the next run's
        baseline — look the candidates up again (in the background)."""
        if isinstance(item, RunEvent) and isinstance(item.entry.event, RunComplete) and self.recorder is not None:
            recorder = self.recorder

            async def refresh() -> None:
                with trio.move_on_after(BASELINE_LOAD_SECONDS * 6):
                    await recorder.writer.wait_idle()  # the run that ended is stored first
                    monitor.set_baselines(await recorder.baseline_candidates(monitor.name))

            nursery.start_soon(refresh)


def _publish_error(monitors: dict[str, Monitor], message: str, target: str | None) -> None:
    for name, monitor in monitors.items():
        if target is None or name == target:
            monitor.publish_error(message)
