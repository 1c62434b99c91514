"""What every request shares: the settings, one monitor per target, the stream limits, the
streams' shared configuration, the run history and alerts, and the shutdown event. Built once
(``Hub.build``, by ``server.prepare`` or ``trio_sse.asgi``) and passed down; nothing here is
global.

``Hub.run`` is the background work of a server: the history writer (``recording.Recorder``,
unless ``--db none``), the notifier (``alerting.Alerting``, with ``--notify``), every monitor
(following and probing its target; the first two observe it) and the write watchdog.

**Cluster mode** (``settings.redis``, SPEC §10): ``hub.node`` is a ``cluster.node.ClusterNode``
and ``hub.monitors`` are its mirrors (every target served from Redis, on every process).
``Hub.run`` runs the node, which builds a fresh source and monitor for a target
(``build_monitor``, as the embedded default does) whenever this process takes over the
target's lease, resuming at the previous leader's checkpoint when it left one. Only those
leader monitors are observed by the history writer and the alerts — a run is recorded and
alerted once per cluster, by whichever process follows it; a new leader records the run as
far as its predecessor published it again (writes are idempotent by event id) and counts as
*live* every event Redis did not have when its term began (``Monitor(known=…)``), so what
happened while no process followed still alerts. Each term loads the ``--baseline``
candidates before its monitor reads a line. The results folder (``/api/tasks/<id>``, its
files) is read by every process itself for a local target; for an SSH target only the
leader's one connection can read it, so another process answers 503 naming the leader
(``_LeaderResults``).

Must not: know about HTTP, Quart or Hypercorn.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import trio

from trio_sse.alerting import Alerting, on_notifier_report
from trio_sse.alerts import MemoryLedger, Notifier
from trio_sse.config import Settings, TargetSpec
from trio_sse.errors import ConfigError, ResultsUnavailable
from trio_sse.filecache import FileCache
from trio_sse.limits import Limits, abort_slots
from trio_sse.model import RunComplete
from trio_sse.monitor import DEFAULT_SETTLE_SECONDS, Monitor, Observer, RunEvent
from trio_sse.recording import Recorder
from trio_sse.results import Results, ResultsStatistics
from trio_sse.sources import Source
from trio_sse.stream import StreamConfig
from trio_sse.targetview import TargetView
from trio_sse.versioned import Versioned

if TYPE_CHECKING:
    from trio_sse.cluster.node import ClusterNode, Resume
    from trio_sse.trajectory import Trajectory

log = logging.getLogger(__name__)

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


def make_results(spec: TargetSpec, source: Source | None, cache: FileCache) -> Results | None:
    """The results folder of a target (SPEC §8), read where its log is read: over the SSH
    source's one connection, or on this machine. None without a results folder (or, for an
    SSH target, without its source: nothing to read it with)."""
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


def build_monitor(
    settings: Settings,
    spec: TargetSpec,
    source: Source,
    files: FileCache,
    *,
    observers: Sequence[Observer] = (),
    replay: bool = True,
    known: tuple[str, int] | None = None,
) -> Monitor:
    """The monitor of one target, with the settings' options (both modes build it so)."""
    return Monitor(
        spec.name,
        source,
        success_threshold=settings.success_threshold,
        vnc_url=spec.vnc_url or getattr(source, "vnc_url", None),  # SSH: http://<host>:8006
        idle_probe_seconds=settings.idle_probe_seconds,
        stall_after=settings.stall_after,
        lanes=spec.follows_several_files,
        observers=observers,
        replay=replay,
        settle_seconds=SSH_SETTLE_SECONDS if spec.ssh is not None else DEFAULT_SETTLE_SECONDS,
        results=make_results(spec, source, files),
        known=known,
    )


def build_node(settings: Settings, files: FileCache, observers: Sequence[Observer]) -> ClusterNode:
    """Cluster mode: the node of this process (nothing connects until it runs). Its leader
    monitors are observed by ``observers`` (the history writer, the alerts)."""
    assert settings.redis is not None
    from trio_sse.cluster.node import ClusterNode  # coredis: imported in cluster mode only
    from trio_sse.cluster.timing import ClusterTiming

    def make_monitor(name: str, resume: Resume | None) -> Monitor:
        spec = settings.target(name)
        assert spec is not None
        # What the cluster had of the current run as this term begins (this process's mirror
        # of it, milliseconds behind Redis): those events are not news (see the docstring).
        held = node.mirrors[name].history
        known = (held.run, held.last_n) if held.run else None
        monitor = build_monitor(settings, spec, make_source(spec), files, observers=observers, known=known)
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

    node = ClusterNode(
        settings.redis,
        [t.name for t in settings.targets],
        make_monitor,
        prefix=settings.redis_prefix,
        timing=ClusterTiming(lease_seconds=settings.lease_seconds),
    )
    return node


class _LeaderResults:
    """Cluster mode, an SSH target's results folder on any process: read by the leader's
    monitor over its one connection (SPEC §10: one SSH connection per target cluster-wide);
    on a process that does not lead the target, ``ResultsUnavailable`` (503) naming the
    process that does."""

    def __init__(self, node: ClusterNode, name: str, root: str) -> None:
        self._node = node
        self._name = name
        self.root = root
        self.description = f"the results folder {root} of {name}"

    async def _results(self) -> Results:
        leading = self._node.leading.get(self._name)
        results = getattr(leading, "results", None)
        if results is not None:
            return results  # type: ignore[no-any-return]
        holder = await self._node.holder(self._name)
        who = f"process {holder}" if holder else "no process right now (a new one takes over within the lease time)"
        raise ResultsUnavailable(
            f"target {self._name} is followed by {who}; its results folder is read over that process's SSH "
            f"connection only (one per target in a cluster), not by this one ({self._node.owner}): ask again "
            "(a load balancer may send you to that process)"
        )

    async def task_trajectory(self, domain: str | None, task_id: str, *, finished: bool) -> tuple[str, Trajectory] | None:
        return await (await self._results()).task_trajectory(domain, task_id, finished=finished)

    async def open_file(self, domain: str | None, task_id: str, name: str, *, finished: bool) -> tuple[int, int]:
        return await (await self._results()).open_file(domain, task_id, name, finished=finished)

    @property
    def backend(self) -> _LeaderResults:
        return self  # (app.py names ``results.backend.root``)

    def statistics(self) -> ResultsStatistics:
        results = getattr(self._node.leading.get(self._name), "results", None)
        return results.statistics() if results is not None else ResultsStatistics(0, 0, 0, 0, 0)


@dataclass(slots=True)
class Hub:
    settings: Settings
    monitors: dict[str, TargetView]  # local monitors, or (cluster mode) the node's mirrors
    limits: Limits
    stream_config: StreamConfig
    shutdown: trio.Event = field(default_factory=trio.Event)
    recorder: Recorder | None = None  # the run history; None with --db none
    alerting: Alerting | None = None  # alerts; None without --notify
    # Remote files (screenshots) fetched once and kept on disk for every client (SPEC §8).
    files: FileCache = field(default_factory=lambda: FileCache(None, 512 << 20))
    node: ClusterNode | None = None  # cluster mode only
    # Cluster mode: the results folders this process reads itself (local targets' mirrors).
    readers: list[Results] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, sources: Sequence[Source] | None = None) -> Hub:
        """Everything a server shares; ``ConfigError`` for a ``--notify`` URL Apprise does
        not know. Nothing is opened, connected or started here (``run`` does that)."""
        files = FileCache(settings.cache_dir, settings.cache_mb << 20)
        monitors: dict[str, TargetView] = {}

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
        node = None
        readers: list[Results] = []
        if settings.redis is not None:
            if sources is not None:
                raise ValueError("cluster mode builds a fresh source for every leadership term: no sources=")
            node = build_node(settings, files, observers)
            for spec in settings.targets:
                mirror = node.mirrors[spec.name]
                monitors[spec.name] = mirror
                root = spec.results_dir
                if root is not None and spec.ssh is None:
                    reader = make_results(spec, None, files)
                    assert reader is not None
                    readers.append(reader)
                    mirror.results = reader
                elif root is not None:
                    mirror.results = _LeaderResults(node, spec.name, root)
        else:
            if sources is None:
                sources = [make_source(spec) for spec in settings.targets]
            for index, (spec, source) in enumerate(zip(settings.targets, sources, strict=True)):
                # The simulator truncates its log first: nothing in it is from before the start.
                replay = not (settings.simulate and index == 0)
                monitors[spec.name] = build_monitor(settings, spec, source, files, observers=observers, replay=replay)
        limits = Limits(
            max_streams=settings.max_streams,
            max_per_ip=settings.max_streams_per_ip,
            write_timeout=settings.write_timeout,
            abort=abort_slots,
        )
        return cls(
            settings, monitors, limits, StreamConfig.from_settings(settings), recorder=recorder, alerting=alerting,
            files=files, node=node, readers=readers,
        )  # fmt: skip

    def publish_error(self, message: str, target: str | None = None) -> None:
        """An ``error`` event to the clients of ``target`` (None: of every target)."""
        _publish_error(self.monitors, message, target)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The history writer, the notifier, every monitor (cluster mode: the node) and the
        write watchdog, until cancelled (``started`` once all run)."""
        try:
            async with trio.open_nursery() as nursery:
                if self.recorder is not None:
                    await nursery.start(self.recorder.run)
                if self.alerting is not None:
                    await nursery.start(self.alerting.run)
                if self.node is not None:
                    for reader in self.readers:
                        # Read on demand only (no task of its own to follow: the leader does
                        # that); its channel is never sent to.
                        send, _unused = trio.open_memory_channel[Any](0)
                        await nursery.start(reader.run, send, Versioned(frozenset()))
                    self.node.prepare = partial(self._prepare_term, nursery)
                    self.node.ended = self._end_term
                    await nursery.start(self.node.run)  # started at once, whether Redis answers or not
                else:
                    if self.recorder is not None and self.settings.baseline is not None:
                        # Before the monitors read a line: results replayed at start are compared too.
                        with trio.move_on_after(BASELINE_LOAD_SECONDS):
                            for monitor in self._local_monitors():
                                await self._load_baselines(monitor)
                        for monitor in self._local_monitors():
                            monitor.add_observer(partial(self._refresh_baselines, nursery))
                    for monitor in self._local_monitors():
                        await nursery.start(monitor.run)
                await nursery.start(self.limits.watch_writes)
                task_status.started()
        finally:
            self.files.close()  # a private temporary cache is removed; a configured one stays

    def _local_monitors(self) -> list[Monitor]:
        return [m for m in self.monitors.values() if isinstance(m, Monitor)]

    async def _prepare_term(self, nursery: trio.Nursery, name: str, monitor: Any) -> None:
        """Cluster mode, before a leader monitor reads a line: its baselines, as the embedded
        default loads them at start-up."""
        if self.recorder is None or self.settings.baseline is None or not isinstance(monitor, Monitor):
            return
        with trio.move_on_after(BASELINE_LOAD_SECONDS):
            await self._load_baselines(monitor)
        monitor.add_observer(partial(self._refresh_baselines, nursery))

    def _end_term(self, name: str, monitor: Any) -> None:
        """Cluster mode, a leadership term ended: an unreachable alert this process was timing
        is not its to send any more (the next leader times its own)."""
        if self.alerting is not None:
            self.alerting.notifier.target_up(name)

    async def _load_baselines(self, monitor: Monitor) -> None:
        assert self.recorder is not None
        candidates = await self.recorder.baseline_candidates(monitor.name)
        monitor.set_baselines(candidates, previous=self.settings.baseline == "previous")

    def _refresh_baselines(self, nursery: trio.Nursery, monitor: Monitor, item: object) -> None:
        """A run of ``monitor`` ended. With ``--baseline previous`` the reducer keeps that run
        as the next one's baseline itself; the database is asked again (in the background)
        only when it could not answer before — a named baseline, or the runs before this one."""
        if (
            isinstance(item, RunEvent)
            and isinstance(item.entry.event, RunComplete)
            and self.recorder is not None
            and len(monitor.state.baseline_candidates) < 2
        ):
            recorder = self.recorder

            async def refresh() -> None:
                with trio.move_on_after(BASELINE_LOAD_SECONDS * 6):
                    await recorder.writer.wait_idle()  # the run that ended is stored first
                    known = monitor.state.baseline_candidates  # newer than the database's, if any
                    runs = {b.run for b in known}
                    merged = (*known, *(b for b in await recorder.baseline_candidates(monitor.name) if b.run not in runs))
                    monitor.set_baselines(merged[:2], previous=self.settings.baseline == "previous")

            nursery.start_soon(refresh)


def _publish_error(monitors: dict[str, TargetView], message: str, target: str | None) -> None:
    for name, monitor in monitors.items():
        if target is None or name == target:
            monitor.publish_error(message)
