"""trio_sse.tuning and trio_sse.hypercorn_patch: the GC settings and Hypercorn's write fast
path. The fast path is checked end to end over real sockets — a replay far larger than the
socket buffers (the partial-write fallback), a client that resets (the error fallback), a
cancelled writer — and its guard is checked against a Hypercorn it does not know. Only
``cli.main`` tunes the process; ``serve`` and ``trio_sse.testing`` never do."""

from __future__ import annotations

import datetime as dt
import gc
import re

import pytest
import trio
import trio.testing
from hypercorn.trio.tcp_server import TCPServer
from rawhttp import RawClient, address

from trio_sse import cli, hypercorn_patch, tuning, waalog
from trio_sse.config import Settings, TargetSpec
from trio_sse.logparse import TaskFinished
from trio_sse.server import Running
from trio_sse.testing import running_server


@pytest.fixture
def gc_threshold():
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)
    gc.unfreeze()


def test_tune_gc_raises_the_young_threshold_and_freezes_startup_objects(gc_threshold):
    gc.set_threshold(700, 10, 10)
    tuning.tune_gc()
    assert gc.get_threshold() == (tuning.GC_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() > 0


def test_tune_gc_never_lowers_a_higher_threshold(gc_threshold):
    gc.set_threshold(200_000, 5, 7)
    tuning.tune_gc()
    assert gc.get_threshold() == (200_000, 5, 7)


def test_fast_send_refuses_a_protocol_send_it_does_not_know(monkeypatch):
    async def other(self, event):  # a Hypercorn whose method is not the stock one
        raise AssertionError("not called")

    monkeypatch.setattr(hypercorn_patch, "_state", {"fast_send": False})
    monkeypatch.setattr(TCPServer, "protocol_send", other)
    assert hypercorn_patch.install_fast_send() is False
    assert TCPServer.protocol_send is other


def test_fast_send_refuses_an_unchecked_hypercorn_version(monkeypatch):
    stock = TCPServer.protocol_send
    monkeypatch.setattr(hypercorn_patch, "_state", {"fast_send": False})
    monkeypatch.setattr(TCPServer, "protocol_send", stock)
    monkeypatch.setattr(hypercorn_patch, "version", lambda name: "99.1.0")
    assert hypercorn_patch.install_fast_send() is False
    assert TCPServer.protocol_send is stock


def _log(tasks: int) -> bytes:
    ts = waalog.format_timestamp(dt.datetime(2024, 5, 6, 10, 0, 0))

    def rec(msg: str) -> str:
        return waalog.format_record(ts, "INFO", "run", 296, "MainProcess", msg, ansi=True)

    ids = [(f"d{i % 7}", f"{i:08x}-cbae-4d72-b042-26390db2b145-WOS") for i in range(tasks)]
    out = [rec(waalog.worker_tasks(0, ids))]
    for domain, task_id in ids:
        out += [rec(waalog.domain(domain)), rec(waalog.example_id(task_id)), rec(waalog.result(1.0)),
                rec(waalog.finished(domain, task_id))]  # fmt: skip
    return "".join(out).encode()


def _task_ids(body: bytes) -> list[str]:
    return re.findall(r'"task_id":"([^"]+)"', body.decode())


@pytest.fixture
def fast_send():
    assert hypercorn_patch.install_fast_send()


async def test_stream_is_intact_when_the_socket_takes_only_part_of_a_write(tmp_path, fast_send):
    log = tmp_path / "waa.log"
    log.write_bytes(_log(3000))  # a replay of ~900 KB: many times the socket buffers
    settings = Settings(port=0, targets=(TargetSpec(log=str(log), process_pattern=None),), gzip=False)
    with trio.fail_after(30):
        async with running_server(settings) as server:
            assert "fast path" in (TCPServer.protocol_send.__doc__ or "")
            monitor = server.hub.monitors["local"]
            while len(monitor.history) < 3000:
                await trio.sleep(0.01)  # the source reads the file in 64 KiB chunks
            client = await RawClient.connect(address(server.url), rcvbuf=4096)
            # Let the server write until the socket is full: the rest waits in Hypercorn's
            # stock path (the fast path's fallback) while nothing reads.
            await trio.testing.wait_all_tasks_blocked()
            monitor.apply_parsed([TaskFinished("live-after-replay", "d0", 1.0, None, 1, 0)])
            while _task_ids(client.dechunked()[0])[-1:] != ["live-after-replay"]:
                assert await client.read_some()
            client.close()
    body = client.dechunked()[0]
    expected = [f"{i:08x}-cbae-4d72-b042-26390db2b145-WOS" for i in range(3000)] + ["live-after-replay"]
    assert _task_ids(body) == expected  # every event once, in log order
    ids = re.findall(rb"^id: local:[0-9a-f]+-(\d+)$", body, re.M)
    assert [int(i) for i in ids] == list(range(1, 3002))


async def test_a_reset_client_is_dropped_and_others_keep_streaming(tmp_path, fast_send):
    log = tmp_path / "waa.log"
    log.write_bytes(_log(1))
    settings = Settings(port=0, targets=(TargetSpec(log=str(log), process_pattern=None),), gzip=False)
    with trio.fail_after(20):
        async with running_server(settings) as server:
            monitor = server.hub.monitors["local"]
            while len(monitor.history) < 1:
                await trio.sleep(0.01)  # the source reads the file
            gone = await RawClient.connect(address(server.url))
            stays = await RawClient.connect(address(server.url))
            for c in (gone, stays):
                await c.read_until(b"event: progress")
            gone.reset()
            n = 0
            while server.hub.limits.clients > 1:  # writes to the reset peer fail and end it
                n += 1
                monitor.apply_parsed([TaskFinished(f"t{n}", "d0", 1.0, None, 1, 0)])
                await trio.sleep(0.01)
            monitor.apply_parsed([TaskFinished("last", "d0", 1.0, None, 1, 0)])
            await stays.read_until(b'"task_id":"last"')
            stays.close()
    assert _task_ids(stays.dechunked()[0])[1:] == [f"t{i}" for i in range(1, n + 1)] + ["last"]


async def test_a_cancelled_writer_never_writes_on_the_fast_path(fast_send):
    """The stock path's lock is a checkpoint: a cancelled task raises before writing. The
    fast path keeps that (``checkpoint_if_cancelled``), even when its send would succeed."""
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    client = await trio.open_tcp_stream(*listener.socket.getsockname()[:2])
    server_stream = await listener.accept()

    class Protocol:
        async def handle(self, event):  # noqa: ANN001
            raise AssertionError("not reached")

    tcp = TCPServer.__new__(TCPServer)
    tcp.stream, tcp.send_lock, tcp.protocol = server_stream, trio.Lock(), Protocol()
    from hypercorn.events import RawData

    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await tcp.protocol_send(RawData(data=b"never"))
    await tcp.protocol_send(RawData(data=b"sent"))  # not cancelled: written at once
    assert await client.receive_some(100) == b"sent"
    for s in (client, server_stream, listener):
        await s.aclose()


@pytest.mark.parametrize("tuned", [True, False])
async def test_serve_never_tunes_the_process(tmp_path, gc_threshold, tuned):
    gc.set_threshold(700, 10, 10)
    log = tmp_path / "x.log"
    log.write_bytes(b"")
    settings = Settings(port=0, targets=(TargetSpec(log=str(log), process_pattern=None),), process_tuning=tuned)
    async with running_server(settings):
        threshold = gc.get_threshold()[0]
    assert threshold == 700


@pytest.mark.parametrize(("argv", "tuned"), [([], True), (["--no-process-tuning"], False)])
def test_the_cli_tunes_its_own_process_unless_told_not_to(tmp_path, gc_threshold, monkeypatch, argv, tuned):
    gc.set_threshold(700, 10, 10)
    calls: list[str] = []
    monkeypatch.setattr(tuning, "install_fast_send", lambda: calls.append("fast send") or True)
    seen: list[int] = []

    async def serve(prepared, *, shutdown_trigger, task_status):  # noqa: ANN001 (a stand-in server)
        seen.append(gc.get_threshold()[0])
        task_status.started(Running(url="http://127.0.0.1:1", binds=(), hub=prepared.hub))

    monkeypatch.setattr("trio_sse.server.serve", serve)
    assert cli.main(["serve", "--port", "0", "--log", str(tmp_path / "x.log"), *argv], env={}) == 0
    assert seen == [tuning.GC_THRESHOLD if tuned else 700]
    assert calls == (["fast send"] if tuned else [])
