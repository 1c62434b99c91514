"""Limits (SPEC §5, §2.3): concurrent streams per IP (429) and in total (503) with Retry-After
and a JSON body, slots released on every exit path; bounded request headers; an overlong
Last-Event-ID is a full replay; --max-stream-seconds recycles streams with jitter; the write
watchdog (virtual time); and a client that stops reading, next to fifty that do, over real
sockets against a real `trio-sse serve` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import trio
import trio.testing

from rawhttp import RawClient, address, serve_process
from support import IdleSource, finished_log, wait_for
from trio_sse.cli import build_parser, main, settings_from_args
from trio_sse.config import Settings, TargetSpec
from trio_sse.hub import Hub
from trio_sse.limits import WATCHDOG_STEPS, Limits
from trio_sse.monitor import Monitor
from trio_sse.stream import EventStream, StreamConfig
from trio_sse.testing import running_server


def settings_for(log: str, **kw) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(port=0, targets=(TargetSpec(log=log, process_pattern=None),), **kw)


async def open_stream(url: str, source: str = "127.0.0.1", path: str = "/api/benchmark-sse") -> RawClient:
    c = await RawClient.connect(address(url), path, source=source)
    with trio.fail_after(10):
        await c.read_until(b"\r\n\r\n")
        if c.status == 200:
            await c.read_until(b": connected")
        else:
            while b"}" not in c.body:
                assert await c.read_some()
    return c


# ---------------------------------------------------------------- stream limits


async def test_per_ip_429_and_total_503_with_retry_after_and_json(tmp_path):
    settings = settings_for(await finished_log(tmp_path), max_streams=3, max_streams_per_ip=2)
    async with running_server(settings) as server:
        hub = server.hub
        a1, a2 = await open_stream(server.url), await open_stream(server.url)
        over_ip = await open_stream(server.url)
        b1 = await open_stream(server.url, source="127.0.0.2")  # another IP: fits the total
        over_total = await open_stream(server.url, source="127.0.0.3")
        assert (a1.status, a2.status, b1.status) == (200, 200, 200)
        assert over_ip.status == 429 and over_ip.headers["retry-after"] == "10"
        assert over_total.status == 503 and over_total.headers["retry-after"] == "5"
        for refused in (over_ip, over_total):
            assert refused.headers["content-type"].startswith("application/json")
            assert "retry later" in json.loads(refused.body)["error"]
        assert dict(hub.limits.per_ip) == {"127.0.0.1": 2, "127.0.0.2": 1}
        assert dict(hub.limits.refused) == {429: 1, 503: 1}

        a1.reset()  # an abrupt leave frees the slot
        await wait_for(lambda: hub.limits.clients == 2)
        again = await open_stream(server.url)
        assert again.status == 200
        for c in (a2, b1, again, over_ip, over_total):
            c.close()
        await wait_for(lambda: hub.limits.clients == 0)
        assert not hub.limits.per_ip


async def test_requests_cancelled_before_their_body_starts_leak_no_slot(tmp_path):
    settings = settings_for(await finished_log(tmp_path), max_streams=5, max_streams_per_ip=5)
    async with running_server(settings) as server:
        hub = server.hub
        for _ in range(200):  # reset at once after the request: some die before the body is entered
            c = await RawClient.connect(address(server.url))
            c.reset()
        await wait_for(lambda: hub.limits.clients == 0 and not hub.limits.per_ip)
        ok = [await open_stream(server.url) for _ in range(5)]  # every slot is still there
        assert [c.status for c in ok] == [200] * 5
        for c in ok:
            c.close()


async def test_a_stream_over_the_limit_at_its_start_ends_at_once_and_releases_its_slot():
    # Requests racing past the route's check are caught where the slot is taken.
    counters = Limits(max_streams=1, max_per_ip=1, write_timeout=30.0)
    counters.clients = 1  # another stream took the last slot after the route's check
    stream = EventStream([Monitor("local", IdleSource())], config=StreamConfig(), shutdown=trio.Event(),
                         slot=counters.slot(("10.0.0.1", 1234)))
    async with stream:
        assert counters.clients == 2 and counters.per_ip["10.0.0.1"] == 1
        body = b"".join([chunk async for chunk in stream])
    assert body.startswith(b"retry: ") and b"too many streams" in body and b"event:" not in body
    assert counters.drops["over_limit"] == 1
    assert counters.clients == 1 and not counters.per_ip and not counters.live


# ---------------------------------------------------------------- request bounds


@pytest.mark.parametrize(
    ("pad", "closed"),
    [(40_000, False), (200_000, True)],  # one read: the app refuses it; several: h11 does, and hangs up
)
async def test_request_headers_are_bounded(tmp_path, pad, closed):
    async with running_server(settings_for(await finished_log(tmp_path))) as server:
        fits = await RawClient.connect(address(server.url), "/healthz", {"X-Pad": "a" * 8000})
        huge = await RawClient.connect(address(server.url), "/api/benchmark-sse", {"X-Pad": "a" * pad})
        with trio.fail_after(10):
            await fits.read_until(b"ok\n")
            await huge.read_until(b"\r\n\r\n")
            if closed:
                await huge.read_to_end()
    assert fits.status == 200
    assert huge.status == 431 and huge.eof == closed
    fits.close()
    huge.close()


async def test_an_overlong_last_event_id_is_a_full_replay_not_an_error(tmp_path):
    async with running_server(settings_for(await finished_log(tmp_path))) as server:
        c = await RawClient.connect(address(server.url), "/api/benchmark-sse", {"Last-Event-ID": "x" * 5000})
        with trio.fail_after(10):
            await c.read_until(b"event: run_complete")
    assert c.status == 200 and c.data.count(b"event: task_complete") == 2
    c.close()


# ---------------------------------------------------------------- lifetime


async def test_max_stream_seconds_recycles_streams_with_jitter(tmp_path):
    settings = settings_for(await finished_log(tmp_path), max_stream_seconds=1.0, keepalive=0.1)
    async with running_server(settings) as server:
        ends: list[float] = []

        async def one() -> None:
            start = trio.current_time()  # before the request: the server's clock starts later
            c = await open_stream(server.url)
            with trio.fail_after(5):
                await c.read_until(b"\r\n0\r\n\r\n")
            ends.append(trio.current_time() - start)
            body, terminated = c.dechunked()
            assert terminated and b": stream lifetime reached, reconnect" in body
            c.close()

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(one)
    assert all(0.85 <= t <= 1.5 for t in ends), ends  # 85-100 % of 1 s, plus connect and delivery
    assert max(ends) - min(ends) > 0.005, ends  # jittered, not all at once


# ---------------------------------------------------------------- write watchdog


class StuckBody:
    """Takes one chunk from a stream and then never asks for the next: a stuck write."""

    def __init__(self, stream: EventStream) -> None:
        self.stream = stream

    async def run(self, *, reads: int) -> None:
        async with self.stream:
            for _ in range(reads):
                await self.stream.__anext__()
            await trio.sleep_forever()


async def test_the_watchdog_drops_and_aborts_a_stuck_write_and_nothing_else(autojump_clock):
    settings = Settings(write_timeout=10.0, keepalive=1.0)
    hub = Hub.build(settings, [IdleSource()])
    aborted: list[list[EventStream]] = []
    hub.limits.abort = lambda slots: aborted.append([streams[s] for s in slots])
    monitor = hub.monitors["local"]
    stuck, reading = (
        EventStream([monitor], config=hub.stream_config, slot=hub.limits.slot(), shutdown=hub.shutdown)
        for _ in range(2)
    )
    streams = {stuck.slot: stuck, reading.slot: reading}
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.limits.watch_writes)
        nursery.start_soon(lambda: StuckBody(stuck).run(reads=1))

        async def drain() -> None:
            async with reading:
                async for _ in reading:
                    pass

        nursery.start_soon(drain)
        await trio.sleep(10.0 - 10.0 / WATCHDOG_STEPS / 2)
        assert stuck.dropped is None and not aborted  # not yet
        await trio.sleep(10.0 / WATCHDOG_STEPS * 1.5)
        assert stuck.dropped == "write_stalled" and aborted == [[stuck]]
        assert reading.dropped is None  # reads every keepalive: never stalled
        await trio.sleep(100)
        assert reading.dropped is None and hub.limits.drops == {"write_stalled": 1}
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------- a reader that stopped


@pytest.mark.slow
async def test_a_stalled_reader_is_cut_within_the_bound_and_slows_no_one(tmp_path):
    # A finished run of 1500 tasks: the replay (~400 KB) is more than the stalled client's
    # receive buffer plus the server's send buffer, so its very first write stalls for good.
    log = await finished_log(tmp_path, tasks=1500)
    write_timeout, keepalive = 2.0, 0.1
    args = ["--log", log, "--write-timeout", str(write_timeout), "--keepalive", str(keepalive)]
    with trio.fail_after(60):
        async with serve_process(tmp_path, args) as srv, trio.open_nursery() as nursery:
            normal: list[RawClient] = []
            gaps: list[float] = []
            measuring = trio.Event()

            async def reader() -> None:
                c = await RawClient.connect(srv.addr, "/api/benchmark-sse?interval=1")
                normal.append(c)
                await c.read_until(b"event: progress")  # replay done
                last = trio.current_time()
                while await c.read_some():
                    now = trio.current_time()
                    if measuring.is_set():
                        gaps.append(now - last)
                    last = now

            for _ in range(50):
                nursery.start_soon(reader)
            await srv.wait_metric("trio_sse_clients", lambda v: v == 50)
            rss_before = srv.rss()
            measuring.set()

            stalled = await RawClient.connect(srv.addr, rcvbuf=2048)
            t0 = trio.current_time()
            await srv.wait_metric("trio_sse_stalled_writes", lambda v: v == 1)  # its write is stuck
            await srv.wait_metric('trio_sse_clients_dropped_total{reason=write_stalled}', lambda v: v == 1)
            cut_after = trio.current_time() - t0
            await srv.wait_metric("trio_sse_clients", lambda v: v == 50)  # its slot is free again
            rss_during = srv.rss()
            measuring = trio.Event()  # stop measuring
            assert (await srv.metrics())["trio_sse_stalled_writes"] == 0
            # the server reset the connection: once our buffer is read, the RST shows
            with trio.fail_after(10):
                while await stalled.read_some():
                    pass
            assert stalled.error == "ConnectionResetError"
            nursery.cancel_scope.cancel()
    for c in [stalled, *normal]:
        c.close()
    assert cut_after <= write_timeout * (1 + 1 / WATCHDOG_STEPS) + 1.0, cut_after
    assert gaps and max(gaps) < 0.5, max(gaps)  # keepalives every 0.1 s went on throughout
    assert rss_during - rss_before < 20 * 2**20, (rss_before, rss_during)
    print(f"stalled reader cut after {cut_after:.2f} s (write timeout {write_timeout} s); "
          f"max gap at the 50 others {max(gaps) * 1000:.0f} ms; RSS {rss_before / 2**20:.1f} → "
          f"{rss_during / 2**20:.1f} MB")


# ---------------------------------------------------------------- options


def test_limit_options_from_cli_and_environment():
    parse = lambda argv, env: settings_from_args(build_parser(env).parse_args(["serve", *argv]), env)  # noqa: E731
    s = parse(["--write-timeout", "7.5", "--max-stream-seconds", "3600", "--access-log", "-"], {})
    assert (s.write_timeout, s.max_stream_seconds, s.access_log) == (7.5, 3600.0, "-")
    s = parse([], {"TRIO_SSE_WRITE_TIMEOUT": "9", "TRIO_SSE_MAX_STREAM_SECONDS": "60",
                   "TRIO_SSE_MAX_STREAMS": "10", "TRIO_SSE_MAX_STREAMS_PER_IP": "3"})
    assert (s.write_timeout, s.max_stream_seconds, s.max_streams, s.max_streams_per_ip) == (9.0, 60.0, 10, 3)
    s = parse([], {})
    assert (s.write_timeout, s.max_stream_seconds, s.max_streams, s.max_streams_per_ip) == (30.0, None, 2000, 200)


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["--write-timeout", "0"], {}, "--write-timeout"),
        (["--write-timeout", "nan"], {}, "--write-timeout"),
        (["--max-stream-seconds", "0.5"], {}, "--max-stream-seconds"),
        (["--max-stream-seconds", "forever"], {}, "--max-stream-seconds"),
        (["--max-streams", "0"], {}, "--max-streams"),
        (["--max-streams-per-ip", "-3"], {}, "--max-streams-per-ip"),
        ([], {"TRIO_SSE_WRITE_TIMEOUT": "soon"}, "TRIO_SSE_WRITE_TIMEOUT"),
        ([], {"TRIO_SSE_MAX_STREAM_SECONDS": "-1"}, "TRIO_SSE_MAX_STREAM_SECONDS"),
        (["--access-log", "/nonexistent/dir/access.log"], {}, "cannot open access log"),
    ],
)
def test_junk_limit_options_stop_start_up_with_one_line(tmp_path, capsys, argv, env, needle):
    try:
        code = main(["serve", "--port", "0", "--log", str(tmp_path / "x.log"), *argv], env=env)
    except SystemExit as exit_:  # argparse's own one-line error
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- a client that vanished

_VANISH = r"""
import subprocess, sys, trio
sys.path.insert(0, sys.argv[1])
from rawhttp import RawClient, address
from trio_sse.config import Settings, TargetSpec
from trio_sse.testing import running_server

async def main():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    s = Settings(port=0, targets=(TargetSpec(log=sys.argv[2], process_pattern=None),),
                 keepalive=1.0, write_timeout=2.0)
    async with running_server(s) as srv:
        c = await RawClient.connect(address(srv.url))
        await c.read_until(b": connected")
        # The network goes away under an open stream: no FIN, no RST, no ACK ever again.
        subprocess.run(["ip", "link", "set", "lo", "down"], check=True)
        t0 = trio.current_time()
        with trio.fail_after(60):
            while srv.hub.limits.clients:
                await trio.sleep(0.05)
        print(trio.current_time() - t0, s.keepalive + srv.hub.limits.tcp_user_timeout)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        c.close()

trio.run(main)
"""


@pytest.mark.slow
async def test_a_vanished_client_is_noticed_within_keepalive_plus_tcp_user_timeout(tmp_path):
    # A private network namespace whose loopback is taken down under an open stream (needs
    # root for `unshare -n`; iptables/tc are not available here).
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs `unshare -n` (root) to make a network vanish")
    log = await finished_log(tmp_path)
    tests = os.path.dirname(__file__)
    result = await trio.run_process(["unshare", "-n", sys.executable, "-c", _VANISH, tests, log],
                                    capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    noticed, bound = map(float, result.stdout.split())
    assert noticed <= bound + 1.5, (noticed, bound)  # + the kernel's probe-timer granularity
    print(f"vanished client noticed after {noticed:.2f} s (keepalive + TCP_USER_TIMEOUT = {bound:.2f} s)")
