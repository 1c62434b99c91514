"""Behind a real nginx (issue 11, item 8): with ``--forwarded-allow-ips`` the per-IP limit,
the access log and ``/metrics`` see each client's own address; without it every client has
nginx's address and the per-IP limit caps the whole audience; a client cannot pick its own
address, through nginx or around it. Clients come from several loopback addresses
(127.0.0.2, 127.0.0.3, …: each is another client IP)."""

from __future__ import annotations

import httpx
import pytest
import trio

from rawhttp import RawClient, address
from trio_sse.config import Settings, TargetSpec
from trio_sse.testing import running_server

pytestmark = pytest.mark.slow


def settings_for(tmp_path, **kw) -> Settings:  # type: ignore[no-untyped-def]
    log = tmp_path / "waa.log"
    log.write_bytes(b"")
    return Settings(port=0, targets=(TargetSpec(log=str(log), process_pattern=None),), max_streams_per_ip=2, **kw)


async def open_stream(url: str, source: str, headers: dict[str, str] | None = None) -> RawClient:
    c = await RawClient.connect(address(url), source=source, headers=headers)
    with trio.fail_after(10):
        await c.read_until(b"\r\n\r\n")
        if c.status == 200:
            await c.read_until(b": connected")
    return c


async def metric(url: str, name: str) -> float:
    async with httpx.AsyncClient() as c:
        text = (await c.get(url + "/metrics")).text
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))


async def test_behind_nginx_each_client_has_its_own_address(tmp_path, nginx_proxy):
    access = tmp_path / "access.log"
    settings = settings_for(tmp_path, forwarded_allow_ips=("127.0.0.1",), access_log=str(access))
    async with running_server(settings) as server, nginx_proxy(address(server.url)[1]) as proxy:
        limits = server.hub.limits
        a1, a2 = await open_stream(proxy.url, "127.0.0.2"), await open_stream(proxy.url, "127.0.0.2")
        over = await open_stream(proxy.url, "127.0.0.2")
        b1 = await open_stream(proxy.url, "127.0.0.3")  # another client: fits
        # A client claiming another address gets its own: nginx appends the real one.
        spoof = await open_stream(proxy.url, "127.0.0.3", {"X-Forwarded-For": "127.0.0.9"})
        assert (a1.status, a2.status, b1.status, spoof.status) == (200, 200, 200, 200)
        assert over.status == 429
        assert dict(limits.per_ip) == {"127.0.0.2": 2, "127.0.0.3": 2}
        assert await metric(server.url, "trio_sse_client_addresses") == 2
        for c in (a1, a2, over, b1, spoof):
            c.close()
        with trio.fail_after(10):
            while limits.clients:
                await trio.sleep(0.01)  # nginx passes the closes on
    log = access.read_text()
    assert "127.0.0.2" in log and "127.0.0.3" in log and "127.0.0.9" not in log


async def test_without_the_option_the_proxy_is_one_client(tmp_path, nginx_proxy):
    async with running_server(settings_for(tmp_path)) as server, nginx_proxy(address(server.url)[1]) as proxy:
        a = await open_stream(proxy.url, "127.0.0.2")
        b = await open_stream(proxy.url, "127.0.0.3")
        c = await open_stream(proxy.url, "127.0.0.4")  # three people, one address: refused
        assert (a.status, b.status, c.status) == (200, 200, 429)
        assert dict(server.hub.limits.per_ip) == {"127.0.0.1": 2}
        for x in (a, b, c):
            x.close()


async def test_headers_from_an_untrusted_peer_are_ignored(tmp_path):
    settings = settings_for(tmp_path, forwarded_allow_ips=("127.0.0.1",))
    async with running_server(settings) as server:
        forged = {"X-Forwarded-For": "10.9.9.9", "Forwarded": "for=10.9.9.8"}
        c1 = await open_stream(server.url, "127.0.0.5", forged)
        c2 = await open_stream(server.url, "127.0.0.5", forged)
        c3 = await open_stream(server.url, "127.0.0.5", forged)  # still 127.0.0.5: over the limit
        assert (c1.status, c2.status, c3.status) == (200, 200, 429)
        assert dict(server.hub.limits.per_ip) == {"127.0.0.5": 2}
        for c in (c1, c2, c3):
            c.close()
