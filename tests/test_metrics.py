"""/metrics (SPEC §1, §5): Prometheus text that prometheus-client's own parser reads back, with
every documented family, and numbers that move with what happens: clients (per target),
events and bytes sent (bytes exactly what a client received), refusals, drops, outages,
parse errors, log bytes and the log's read age."""

from __future__ import annotations

import datetime

import httpx
import pytest
import trio

from rawhttp import RawClient, address
from support import finished_log, parse_metrics, wait_metric
from trio_sse import waalog
from trio_sse.config import Settings, TargetSpec
from trio_sse.testing import running_server

FAMILIES = {
    # name (as the parser reports it) → type
    "trio_sse_clients": "gauge",
    "trio_sse_target_clients": "gauge",
    "trio_sse_streams": "counter",
    "trio_sse_events_sent": "counter",
    "trio_sse_bytes_sent": "counter",
    "trio_sse_clients_dropped": "counter",
    "trio_sse_streams_refused": "counter",
    "trio_sse_stalled_writes": "gauge",
    "trio_sse_target_outages": "counter",
    "trio_sse_parse_errors": "counter",
    "trio_sse_log_bytes_read": "counter",
    "trio_sse_runs_seen": "counter",
    "trio_sse_log_lines": "counter",
    "trio_sse_log_read_age_seconds": "gauge",
    "trio_sse_target_connected": "gauge",
    "trio_sse_history_entries": "gauge",
}


async def scrape(url: str) -> tuple[dict[str, str], dict[str, float]]:
    """Family types, and every sample as ``name{k=v,…}`` → value."""
    async with httpx.AsyncClient() as c:
        r = await c.get(url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse_metrics(r.text)


async def test_every_family_parses_with_its_type(tmp_path):
    settings = Settings(port=0, targets=(TargetSpec(log=await finished_log(tmp_path, tasks=3), process_pattern=None),))
    async with running_server(settings) as server:
        types, samples = await scrape(server.url)
    assert {name: types.get(name) for name in FAMILIES} == FAMILIES
    assert samples["trio_sse_clients"] == 0
    for reason in ("queue_full", "write_stalled", "over_limit"):
        assert samples[f"trio_sse_clients_dropped_total{{reason={reason}}}"] == 0
    assert samples["trio_sse_streams_refused_total{status=429}"] == 0


async def test_numbers_move_with_clients_events_and_bytes(tmp_path):
    settings = Settings(port=0, targets=(TargetSpec(log=await finished_log(tmp_path, tasks=3), process_pattern=None),),
                        keepalive=3600, max_streams_per_ip=1)
    async with running_server(settings) as server:
        with trio.fail_after(10):
            while True:  # the monitor has read the whole log
                _, before = await scrape(server.url)
                if before.get("trio_sse_log_read_age_seconds{target=local}") is not None:
                    break
                await trio.sleep(0.01)
        c = await RawClient.connect(address(server.url))
        with trio.fail_after(10):
            await c.read_until(b"event: progress")
        refused = await RawClient.connect(address(server.url))  # the per-IP limit is 1
        with trio.fail_after(10):
            await refused.read_until(b"\r\n\r\n")
        _, during = await scrape(server.url)
        c.close()
        refused.close()
        await wait_metric(server.url, "trio_sse_clients", lambda v: v == 0, timeout=10)
    body, _ = c.dechunked()
    assert refused.status == 429
    assert before["trio_sse_clients"] == 0 and during["trio_sse_clients"] == 1
    assert during["trio_sse_target_clients{target=local}"] == 1
    assert during["trio_sse_streams_total"] == before["trio_sse_streams_total"] + 1
    # 3 task_complete + run_complete + status + progress (retry and the comment are no events)
    assert during["trio_sse_events_sent_total"] - before["trio_sse_events_sent_total"] == 6
    assert during["trio_sse_bytes_sent_total"] - before["trio_sse_bytes_sent_total"] == len(body)
    assert during["trio_sse_streams_refused_total{status=429}"] == 1
    assert before["trio_sse_log_bytes_read_total{target=local}"] == (tmp_path / "waa.log").stat().st_size
    assert before["trio_sse_log_lines_total{target=local}"] > 0
    assert before["trio_sse_target_connected{target=local}"] == 1
    assert before["trio_sse_history_entries{target=local}"] == 4  # 3 task_complete + run_complete
    assert 0 <= before["trio_sse_log_read_age_seconds{target=local}"] < 10


async def test_parse_errors_outages_and_read_age_move(tmp_path):
    log = tmp_path / "waa.log"
    stamp = waalog.format_timestamp(datetime.datetime(2024, 1, 1))
    record = lambda msg: waalog.format_record(stamp, "INFO", "lib_run_single", 1, "MainProcess", msg, ansi=False)  # noqa: E731
    log.write_text(record(waalog.worker_tasks(0, [("notepad", "t-1")])))
    broken = tmp_path / "not-a-file.log"
    broken.mkdir()  # a directory cannot be followed: an outage of that target
    settings = Settings(port=0, targets=(TargetSpec(name="good", log=str(log), process_pattern=None),
                                         TargetSpec(name="bad", log=str(broken), process_pattern=None)))
    async with running_server(settings) as server:

        async def wait(key: str, predicate) -> float:  # type: ignore[no-untyped-def]
            return await wait_metric(server.url, key, predicate, timeout=10)

        await wait("trio_sse_target_outages_total{target=bad}", lambda v: v == 1)
        await wait("trio_sse_target_connected{target=bad}", lambda v: v == 0)
        first = await wait("trio_sse_log_read_age_seconds{target=good}", lambda v: v >= 0)
        assert (await scrape(server.url))[1]["trio_sse_parse_errors_total{target=good}"] == 0
        with open(log, "a") as f:  # a score outside [0, 1] is a parse error, not a result
            f.write(record(waalog.domain("notepad")) + record(waalog.example_id("t-1")) + record("Result: 7.00"))
        await wait("trio_sse_parse_errors_total{target=good}", lambda v: v == 1)
        # while nothing is written, the age of the last read grows
        await wait("trio_sse_log_read_age_seconds{target=good}", lambda v: v >= 0.2)
        assert first < 10


@pytest.mark.parametrize("token", [None, "tok"])
async def test_metrics_needs_the_token_when_one_is_set(tmp_path, token):
    settings = Settings(port=0, targets=(TargetSpec(log=str(tmp_path / "x.log"), process_pattern=None),),
                        token=token)
    async with running_server(settings) as server, httpx.AsyncClient() as c:
        r = await c.get(server.url + "/metrics")
    assert r.status_code == (401 if token else 200)
