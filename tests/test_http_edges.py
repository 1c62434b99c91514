"""Protocol edges (issue 11, items 2-7): every error is JSON, never a traceback, never a 500
for bad input. HEAD answers headers only; a WebSocket upgrade is refused cleanly (401 before
404 with a token); an overlong static name is a 404; errors raised below the app get JSON
bodies in a real ``trio-sse serve`` process; a request with both Content-Length and
Transfer-Encoding is refused and its connection closed; CORS origins compare as browsers
send them, and ``*`` without a token is honoured."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import trio

from rawhttp import serve_process
from trio_sse.config import Settings, TargetSpec
from trio_sse.testing import running_server

TOKEN = "s3cret-token"


def settings_for(tmp_path, **kw) -> Settings:  # type: ignore[no-untyped-def]
    log = tmp_path / "waa.log"
    log.write_bytes(b"")
    return Settings(port=0, targets=(TargetSpec(log=str(log), process_pattern=None),), **kw)


async def exchange(url: str, raw: bytes, *, until_eof: bool = True) -> bytes:
    """Send ``raw`` on a new connection; everything the server sends until it closes."""
    host, _, port = url.removeprefix("http://").rpartition(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(raw)
        out = b""
        with trio.fail_after(10):
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return out
                out += data
                if not until_eof and b"\r\n\r\n" in out:
                    return out


def response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


# ---------------------------------------------------------------- HEAD


async def test_head_answers_headers_only_and_holds_no_slot(tmp_path):
    async with running_server(settings_for(tmp_path, max_streams_per_ip=200)) as server:
        limits = server.hub.limits
        async with httpx.AsyncClient(base_url=server.url) as c:
            for _ in range(201):  # one more than the per-IP limit: none of them holds a slot
                r = await c.head("/api/benchmark-sse")
                assert r.status_code == 200 and r.content == b""
                assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert limits.clients == 0 and limits.clients_total == 0
            assert (await c.head("/api/benchmark-sse?interval=abc")).status_code == 400


# ---------------------------------------------------------------- WebSocket


def upgrade(path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("token", [None, TOKEN])
async def test_a_websocket_upgrade_is_refused_with_json_and_no_traceback(tmp_path, caplog, token):
    caplog.set_level(logging.DEBUG)
    async with running_server(settings_for(tmp_path, token=token)) as server:
        for path in ("/", "/api/benchmark-sse", "/nope"):
            status, headers, body = response(await exchange(server.url, upgrade(path)))
            if token is None:
                assert status == 404 and path in json.loads(body)["error"]
            else:
                assert status == 401 and "token" in json.loads(body)["error"]
                assert headers["www-authenticate"].startswith("Bearer")
                authorised = upgrade(f"{path}?token={TOKEN}")
                status, _, body = response(await exchange(server.url, authorised))
                assert status == 404 and "no WebSocket route" in json.loads(body)["error"]
            assert headers["content-type"] == "application/json"
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


# ---------------------------------------------------------------- static names


@pytest.mark.parametrize("name", ["a" * 300 + ".css", "x" * 255 + ".js", "é" * 200 + ".png", "a%00b.css"])
async def test_overlong_or_odd_static_names_are_a_json_404(tmp_path, name):
    async with running_server(settings_for(tmp_path)) as server, httpx.AsyncClient(base_url=server.url) as c:
        r = await c.get(f"/static/{name}")
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    assert len(r.json()["error"]) < 200


# ---------------------------------------------------------------- below the app


@pytest.mark.slow
async def test_errors_raised_below_the_app_have_json_bodies(tmp_path):
    log = tmp_path / "waa.log"
    log.write_bytes(b"")
    async with serve_process(tmp_path, ["--log", str(log)]) as srv:
        cases = [
            (b"GARBAGE\r\n\r\n", 400, "could not be parsed"),
            (b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431, "headers too large"),
            (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "Transfer-Encoding"),
        ]
        for raw, want, text in cases:
            status, headers, body = response(await exchange(srv.url, raw))
            assert status == want, raw[:40]
            assert headers["content-type"] == "application/json" and text in json.loads(body)["error"]
    assert "Traceback" not in srv.stderr


# ---------------------------------------------------------------- request smuggling


async def test_content_length_and_transfer_encoding_together_are_refused_and_the_connection_closed(tmp_path):
    smuggle = (
        b"POST /api/benchmark HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"  # pipelined: must never be answered
    )
    async with running_server(settings_for(tmp_path)) as server:
        raw = await exchange(server.url, smuggle)
    status, headers, body = response(raw)
    assert status == 400 and headers.get("connection", "").lower() == "close"
    assert "Content-Length and Transfer-Encoding" in json.loads(body[: int(headers["content-length"])])["error"]
    assert raw.count(b"HTTP/1.1 ") == 1 and b"ok\n" not in raw  # the pipelined request got nothing


# ---------------------------------------------------------------- CORS


@pytest.mark.parametrize(
    ("configured", "sent", "allowed"),
    [
        ("https://Dash.Example", "https://dash.example", "https://dash.example"),
        ("https://dash.example:443", "https://dash.example", "https://dash.example"),
        ("http://dash.example:80/", "http://dash.example", "http://dash.example"),
        ("https://dash.example:8443", "https://dash.example:8443", "https://dash.example:8443"),
        ("https://dash.example:8443", "https://dash.example", None),
        ("https://dash.example", "http://dash.example", None),
        ("https://dash.example", "https://dash.example.evil", None),
    ],
)
async def test_cors_origins_compare_as_browsers_send_them(tmp_path, configured, sent, allowed):
    from trio_sse.config import origin

    async with running_server(settings_for(tmp_path, cors_origins=(origin(configured),))) as server:
        async with httpx.AsyncClient(base_url=server.url) as c:
            r = await c.get("/api/benchmark", headers={"Origin": sent})
            pre = await c.options("/api/benchmark-sse", headers={"Origin": sent, "Access-Control-Request-Method": "GET"})
    assert r.headers.get("access-control-allow-origin") == allowed
    assert pre.status_code == (204 if allowed else 403)


async def test_a_wildcard_origin_without_a_token_is_honoured(tmp_path):
    async with running_server(settings_for(tmp_path, cors_origins=("*",))) as server:
        async with httpx.AsyncClient(base_url=server.url) as c:
            r = await c.get("/api/benchmark", headers={"Origin": "https://anyone.example"})
            pre = await c.options("/api/benchmark-sse", headers={"Origin": "https://x.example"})
            plain = await c.get("/api/benchmark")  # no Origin: not a CORS request
    assert r.headers["access-control-allow-origin"] == "*" and pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-origin" not in plain.headers
