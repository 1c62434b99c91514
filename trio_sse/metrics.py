"""``/metrics`` in the Prometheus text format, via prometheus-client.

A custom collector reads the hub's live counters at scrape time (no second set of counters to
keep in step, no global registry: each app gets its own ``CollectorRegistry``).

Monitor lag is reported as ``trio_sse_log_read_age_seconds``: seconds since the target's
monitor last received new log bytes from its source. We cannot know when the benchmark
*appended* a byte (the writer may be on another host), so this is the honest bound we have:
near 0 while a run is writing, growing while the log is quiet — and also when following is
broken, which is what to alert on together with ``trio_sse_target_connected``.

Cluster mode (``--redis``, SPEC §10): every series carries ``process="<owner id>"`` (host, pid
and a random part: ``hypercorn -w N`` workers behind one port are told apart), plus
``trio_sse_process_info`` and the cluster's own series (``_cluster_series``). The per-target
log series are the leader's, as it last published them, on every process; the log read age
is only known on the leader (absent elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

import trio

from trio_sse.hub import Hub

DROP_REASONS = ("queue_full", "write_stalled", "over_limit")
STALLED_WRITE_SECONDS = 1.0  # a write pending this long counts in trio_sse_stalled_writes


class _HubCollector:
    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        c = self._hub.limits
        yield GaugeMetricFamily("trio_sse_clients", "Connected stream clients", value=c.clients)
        yield GaugeMetricFamily(
            "trio_sse_client_addresses",
            "Distinct client addresses with a stream open (forwarded addresses behind a trusted proxy)",
            value=len(c.per_ip),
        )
        per_target = GaugeMetricFamily(
            "trio_sse_target_clients", "Stream clients subscribed to a target", labels=["target"]
        )
        for name, m in self._hub.monitors.items():
            per_target.add_metric([name], m.subscriber_count)
        yield per_target
        yield CounterMetricFamily("trio_sse_streams", "Streams opened", value=c.clients_total)
        yield CounterMetricFamily("trio_sse_events_sent", "Events sent to clients", value=c.events_sent)
        yield CounterMetricFamily("trio_sse_bytes_sent", "Body bytes sent to clients", value=c.bytes_sent)
        drops = CounterMetricFamily("trio_sse_clients_dropped", "Clients dropped", labels=["reason"])
        for reason in (*DROP_REASONS, *sorted(set(c.drops) - set(DROP_REASONS))):
            drops.add_metric([reason], c.drops.get(reason, 0))
        yield drops
        refused = CounterMetricFamily(
            "trio_sse_streams_refused", "Streams refused by the limits, by HTTP status", labels=["status"]
        )
        for status in (429, 503):
            refused.add_metric([str(status)], c.refused.get(status, 0))
        yield refused
        yield GaugeMetricFamily(
            "trio_sse_stalled_writes",
            f"Streams whose current write has been pending for {STALLED_WRITE_SECONDS:g} s or more",
            value=c.stalled_writes(STALLED_WRITE_SECONDS),
        )
        now = trio.current_time()
        outages = CounterMetricFamily("trio_sse_target_outages", "Source outages (reconnects)", labels=["target"])
        errors = CounterMetricFamily("trio_sse_parse_errors", "Log lines that failed to parse", labels=["target"])
        read = CounterMetricFamily("trio_sse_log_bytes_read", "Log bytes read", labels=["target"])
        runs = CounterMetricFamily("trio_sse_runs_seen", "Runs seen (file generations)", labels=["target"])
        lines = CounterMetricFamily("trio_sse_log_lines", "Log lines parsed", labels=["target"])
        age = GaugeMetricFamily(
            "trio_sse_log_read_age_seconds",
            "Seconds since the monitor last received new log bytes (absent before the first)",
            labels=["target"],
        )
        connected = GaugeMetricFamily(
            "trio_sse_target_connected", "1 while the target's host/source is reachable", labels=["target"]
        )
        history = GaugeMetricFamily(
            "trio_sse_history_entries", "Durable events of the current run held for replay", labels=["target"]
        )
        for name, m in self._hub.monitors.items():
            s = m.statistics()
            outages.add_metric([name], s.outages)
            errors.add_metric([name], s.parse_errors)
            read.add_metric([name], s.bytes_read)
            runs.add_metric([name], s.runs)
            lines.add_metric([name], s.lines)
            last = getattr(m, "last_read_at", None)
            if last is not None:
                age.add_metric([name], max(0.0, now - last))
            connected.add_metric([name], 1.0 if m.status.value.connected else 0.0)
            history.add_metric([name], len(m.history))
        yield from (outages, errors, read, runs, lines, age, connected, history)
        yield from self._history()
        yield from self._alerts()
        yield from _results_metrics(self._hub)

    def _history(self) -> Iterator[Metric]:
        recorder = self._hub.recorder
        if recorder is None:  # --db none: no history metrics at all
            return
        w = recorder.writer.statistics()
        yield GaugeMetricFamily(
            "trio_sse_history_up", "1 while the run history database is written, 0 during an outage",
            value=0.0 if recorder.outage is not None else 1.0,
        )  # fmt: skip
        yield CounterMetricFamily(
            "trio_sse_history_outages", "Run history database outages (locked, corrupt, full, read-only…)",
            value=recorder.outages,
        )  # fmt: skip
        yield CounterMetricFamily(
            "trio_sse_history_writes", "Records that changed the run history database", value=w.written
        )
        yield GaugeMetricFamily(
            "trio_sse_history_pending", "Records waiting to be written (queued or being retried)",
            value=w.queued + w.pending,
        )  # fmt: skip
        yield CounterMetricFamily(
            "trio_sse_history_rejected", "Records dropped as bad in themselves (junk payloads)", value=w.rejected
        )

    def _alerts(self) -> Iterator[Metric]:
        alerting = self._hub.alerting
        if alerting is None:  # no --notify
            return
        n = alerting.notifier.statistics()
        yield CounterMetricFamily("trio_sse_alerts_delivered", "Alerts delivered (per destination)", value=n.delivered)
        yield CounterMetricFamily(
            "trio_sse_alerts_failed_attempts", "Alert deliveries that failed (each is retried)", value=n.failed_attempts
        )
        yield CounterMetricFamily(
            "trio_sse_alerts_given_up", "Alert deliveries given up after every retry", value=n.gave_up
        )
        yield CounterMetricFamily(
            "trio_sse_alerts_dropped", "Alerts dropped: too many waiting", value=n.dropped + alerting.dropped
        )


def _results_metrics(hub: Hub) -> Iterator[Metric]:
    """The results folders (SPEC §8): trajectories followed, files gone, the file cache."""
    followed = GaugeMetricFamily(
        "trio_sse_trajectories_followed", "Task trajectories (traj.jsonl) followed now", labels=["target"]
    )
    steps = CounterMetricFamily("trio_sse_trajectory_steps_read", "Action lines read from followed trajectories",
                                labels=["target"])
    junk = CounterMetricFamily("trio_sse_trajectory_junk_lines", "traj.jsonl lines that were not records",
                               labels=["target"])
    missing = CounterMetricFamily(
        "trio_sse_result_files_missing", "Files a trajectory lists that were gone on the target", labels=["target"]
    )
    for name, m in hub.monitors.items():
        results = getattr(m, "results", None)
        if results is None:
            continue
        r = results.statistics()
        followed.add_metric([name], r.followers)
        steps.add_metric([name], r.steps_seen)
        junk.add_metric([name], r.junk_lines)
        missing.add_metric([name], r.files_missing)
    yield from (followed, steps, junk, missing)
    files = getattr(hub, "files", None)
    if files is None:
        return
    c = files.statistics()
    yield GaugeMetricFamily("trio_sse_file_cache_bytes", "Bytes of fetched files in the disk cache", value=c.bytes)
    yield GaugeMetricFamily("trio_sse_file_cache_entries", "Files in the disk cache", value=c.entries)
    yield CounterMetricFamily("trio_sse_file_cache_hits", "File requests answered from the disk cache", value=c.hits)
    yield CounterMetricFamily("trio_sse_file_cache_fetches", "Files fetched from targets (remote reads)",
                              value=c.fetches)
    yield CounterMetricFamily("trio_sse_file_cache_evictions", "Files evicted from the disk cache (its cap)",
                              value=c.evictions)


class _ClusterCollector:
    """The hub's series plus the cluster's, every one labelled with this process's id."""

    def __init__(self, hub: Hub) -> None:
        assert hub.node is not None
        self._hub = hub
        self._node = hub.node
        self._inner = _HubCollector(hub)

    def collect(self) -> Iterator[Metric]:
        label = {"process": self._node.owner}
        for metric in (*self._inner.collect(), *self._cluster_series()):
            metric.samples = [s._replace(labels={**s.labels, **label}) for s in metric.samples]
            yield metric

    def _cluster_series(self) -> Iterator[Metric]:
        node = self._node
        stats = node.statistics()
        yield GaugeMetricFamily("trio_sse_process_info", "This process of the cluster (its id is the process label)",
                                value=1)  # fmt: skip
        leader = GaugeMetricFamily("trio_sse_cluster_leader", "1 while this process follows the target", labels=["target"])
        acquired = CounterMetricFamily("trio_sse_lease_acquisitions", "Times this process took the target's lease",
                                       labels=["target"])  # fmt: skip
        lost = CounterMetricFamily("trio_sse_lease_losses", "Leases this process lost while leading", labels=["target"])
        resumed = CounterMetricFamily(
            "trio_sse_cluster_resumes",
            "Leadership terms that began at the previous leader's byte offset (the rest re-read the log)",
            labels=["target"],
        )
        terms = CounterMetricFamily("trio_sse_cluster_terms", "Leadership terms this process began", labels=["target"])
        redis_up = GaugeMetricFamily("trio_sse_redis_connected", "1 while this process's view of the target reads Redis",
                                     labels=["target"])  # fmt: skip
        outages = CounterMetricFamily("trio_sse_redis_outages", "Redis outages this process's view of the target saw",
                                      labels=["target"])  # fmt: skip
        duplicates = CounterMetricFamily(
            "trio_sse_cluster_duplicates_skipped", "Events read from Redis again and skipped (never sent twice)",
            labels=["target"],
        )
        junk = CounterMetricFamily("trio_sse_cluster_junk", "Malformed Redis entries skipped", labels=["target"])
        lag = GaugeMetricFamily("trio_sse_publisher_lag", "Durable events the leader has not written to Redis yet",
                                labels=["target"])  # fmt: skip
        failures = CounterMetricFamily("trio_sse_publisher_redis_failures", "Leader's publish calls that failed",
                                       labels=["target"])  # fmt: skip
        for name, t in stats.items():
            leader.add_metric([name], 1.0 if t.leading.leading else 0.0)
            acquired.add_metric([name], t.leading.acquisitions)
            lost.add_metric([name], t.leading.losses)
            terms.add_metric([name], t.terms)
            resumed.add_metric([name], t.resumed)
            redis_up.add_metric([name], 1.0 if t.mirror.connected else 0.0)
            outages.add_metric([name], t.mirror.redis_outages)
            duplicates.add_metric([name], t.mirror.duplicates)
            junk.add_metric([name], t.mirror.junk)
            if t.publisher is not None:  # while leading
                lag.add_metric([name], t.publisher.lag)
                failures.add_metric([name], t.publisher.redis_failures)
        yield from (leader, acquired, lost, terms, resumed, redis_up, outages, duplicates, junk, lag, failures)


def render(hub: Hub) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    collector = _HubCollector(hub) if hub.node is None else _ClusterCollector(hub)
    registry.register(collector)  # type: ignore[arg-type]
    return generate_latest(registry)
