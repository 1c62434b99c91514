"""``/metrics`` in the Prometheus text format, via prometheus-client.

A custom collector reads the hub's live counters at scrape time (no second set of counters to
keep in step, no global registry: each app gets its own ``CollectorRegistry``)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from trio_sse.hub import Hub


class _HubCollector:
    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        c = self._hub.counters
        yield GaugeMetricFamily("trio_sse_clients", "Connected stream clients", value=c.clients)
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
        for reason in ("queue_full", "write_stalled", *sorted(set(c.drops) - {"queue_full", "write_stalled"})):
            drops.add_metric([reason], c.drops.get(reason, 0))
        yield drops
        outages = CounterMetricFamily("trio_sse_target_outages", "Source outages (reconnects)", labels=["target"])
        errors = CounterMetricFamily("trio_sse_parse_errors", "Log lines that failed to parse", labels=["target"])
        read = CounterMetricFamily("trio_sse_log_bytes_read", "Log bytes read", labels=["target"])
        runs = CounterMetricFamily("trio_sse_runs_seen", "Runs seen (file generations)", labels=["target"])
        for name, m in self._hub.monitors.items():
            s = m.statistics()
            outages.add_metric([name], s.outages)
            errors.add_metric([name], s.parse_errors)
            read.add_metric([name], s.bytes_read)
            runs.add_metric([name], s.runs)
        yield from (outages, errors, read, runs)


def render(hub: Hub) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_HubCollector(hub))  # type: ignore[arg-type]
    return generate_latest(registry)
