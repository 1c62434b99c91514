"""Security (SPEC §5): the token on every route but /healthz (header or ?token=, constant
time, 401 JSON otherwise), the token absent from every log — our logger, Hypercorn's error
log, the access log of a real `trio-sse serve` process, its stderr — and from error bodies;
CORS only for listed origins, never `*` with a token."""

from __future__ import annotations

import logging
import signal

import httpx
import pytest
import trio

from rawhttp import RawClient, address, serve_process
from support import finished_log
from trio_sse.config import Settings, TargetSpec
from trio_sse.errors import ConfigError
from trio_sse.server import REDACTED, prepare, redact, redact_atoms, serve
from trio_sse.testing import running_server

TOKEN = "s3cret-T0ken_4f9a"
WRONG = "s3cret-T0ken_4f9b"  # one character off: must be refused, and never logged either
ROUTES = ["/api/benchmark-sse", "/api/benchmark", "/api/tasks", "/", "/static/dashboard.js", "/metrics"]


async def get(url: str, path: str, *, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and the first bytes of the body (a stream is left after its opening)."""
    c = await RawClient.connect(address(url), path, headers)
    try:
        with trio.fail_after(10):
            await c.read_until(b"\r\n\r\n")
            head = bytes(c.data).split(b"\r\n\r\n")[0].decode("latin1").split("\r\n")
            hdrs = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
            if c.status == 200 and "event-stream" in hdrs.get("content-type", ""):
                await c.read_until(b": connected")
            elif "content-length" in hdrs:
                while len(c.body) < int(hdrs["content-length"]):
                    assert await c.read_some()
        return c.status, hdrs, c.body
    finally:
        c.close()


@pytest.fixture
async def token_server(tmp_path):
    settings = Settings(port=0, targets=(TargetSpec(log=await finished_log(tmp_path), process_pattern=None),),
                        token=TOKEN)
    async with running_server(settings) as server:
        yield server.url


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    "how",
    [
        {},  # no token at all
        {"headers": {"Authorization": f"Bearer {WRONG}"}},
        {"query": WRONG},
        {"query": ""},
        {"headers": {"Authorization": "Bearer "}},
        {"headers": {"Authorization": f"Basic {TOKEN}"}},  # the right secret, the wrong scheme
        {"headers": {"Authorization": f"Bearer {TOKEN}x"}},
        {"headers": {"Authorization": f"Bearer {TOKEN[:-1]}"}},
        {"query": TOKEN.upper()},
    ],
    ids=["missing", "wrong-header", "wrong-query", "empty-query", "empty-bearer", "basic", "longer", "shorter",
         "case"],
)
async def test_no_valid_token_is_401_json_on_every_route(token_server, path, how):
    full = path + (f"?token={how['query']}" if "query" in how else "")
    status, headers, body = await get(token_server, full, headers=how.get("headers"))
    assert status == 401
    assert headers["content-type"].startswith("application/json")
    assert headers["www-authenticate"].startswith("Bearer")
    assert b'"error"' in body and WRONG.encode() not in body and TOKEN.encode() not in body


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("via", ["header", "query", "lowercase-scheme"])
async def test_the_right_token_opens_every_route(token_server, path, via):
    headers = {}
    if via == "header":
        headers["Authorization"] = f"Bearer {TOKEN}"
    elif via == "lowercase-scheme":
        headers["Authorization"] = f"bearer {TOKEN}"
    full = path + (f"?token={TOKEN}" if via == "query" else "")
    status, _, _ = await get(token_server, full, headers=headers)
    assert status == 200


async def test_healthz_needs_no_token(token_server):
    status, _, body = await get(token_server, "/healthz")
    assert (status, body) == (200, b"ok\n")


async def test_pages_tell_browsers_not_to_leak_the_url_as_referer(token_server):
    _, headers, _ = await get(token_server, f"/?token={TOKEN}")
    assert headers["referrer-policy"] == "no-referrer"


# ---------------------------------------------------------------- logs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"GET /api/benchmark-sse?token={TOKEN} HTTP/1.1", f"GET /api/benchmark-sse?token={REDACTED} HTTP/1.1"),
        (f"interval=5&token={WRONG}&x=1", f"interval=5&token={REDACTED}&x=1"),
        (f"TOKEN={WRONG}", f"TOKEN={REDACTED}"),
        (f"tok%65n={WRONG}", f"tok%65n={REDACTED}"),  # the app decodes the name: so do we
        (f"http://h/?a=1&token={WRONG}#frag", f"http://h/?a=1&token={REDACTED}#frag"),
        ("tokens=abc&mytoken=def", "tokens=abc&mytoken=def"),  # other names stay
        (f"Bearer {TOKEN}", f"Bearer {REDACTED}"),  # the configured token anywhere
    ],
)
def test_redact(text, expected):
    assert redact(text, TOKEN) == expected


def test_redacted_access_log_atoms_drop_auth_headers_and_environment():
    atoms = {
        "r": "GET /api/benchmark-sse HTTP/1.1",
        "R": f"GET /api/benchmark-sse?token={WRONG} HTTP/1.1",
        "q": f"token={WRONG}",
        "f": f"http://dash/?token={TOKEN}",
        "{authorization}i": f"Bearer {TOKEN}",
        "{trio_sse_token}e": TOKEN,
        "{path}e": "/usr/bin",
        "s": "200",
    }
    out = redact_atoms(atoms, TOKEN)
    assert "{trio_sse_token}e" not in out and "{path}e" not in out
    assert out["{authorization}i"] == REDACTED
    assert TOKEN not in repr(out) and WRONG not in repr(out)
    assert out["r"] == atoms["r"] and out["s"] == "200"


async def test_token_absent_from_our_logs_hypercorns_and_the_access_log_file(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    access = tmp_path / "access.log"
    settings = Settings(port=0, targets=(TargetSpec(log=await finished_log(tmp_path), process_pattern=None),),
                        token=TOKEN, access_log=str(access))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        prepared = prepare(settings, quiet=False)
        server = await nursery.start(lambda task_status: serve(prepared, shutdown_trigger=stop.wait,
                                                               task_status=task_status))
        for path in ROUTES + ["/nope", "/api/benchmark-sse?interval=abc"]:
            sep = "&" if "?" in path else "?"
            await get(server.url, f"{path}{sep}token={TOKEN}")
            await get(server.url, f"{path}{sep}token={WRONG}")
            await get(server.url, path, headers={"Authorization": f"Bearer {WRONG}"})
        stop.set()
    assert caplog.records, "nothing was logged: the check below would be empty"
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert TOKEN not in text and WRONG not in text
    lines = access.read_text().splitlines()
    assert len(lines) >= 3 * (len(ROUTES) + 2) - 2, lines  # streams are logged when they end
    assert any(f"token={REDACTED}" in line for line in lines) or all("?" not in line for line in lines)
    assert not any(TOKEN in line or WRONG in line for line in lines)


@pytest.mark.slow
async def test_token_absent_from_a_real_process_access_log_and_stderr(tmp_path):
    log = await finished_log(tmp_path)
    args = ["--log", log, "--access-log", "-"]
    async with serve_process(tmp_path, args, env={"TRIO_SSE_TOKEN": TOKEN}) as srv:
        async with httpx.AsyncClient(timeout=10) as c:
            ok = await c.get(srv.url + f"/api/benchmark?token={TOKEN}", headers={"Referer": f"http://x/?token={TOKEN}"})
            bad = await c.get(srv.url + f"/api/tasks?interval=1&token={WRONG}")
            hdr = await c.get(srv.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            junk = await c.get(srv.url + f"/api/benchmark-sse?interval=zz&token={TOKEN}")
        stream = await RawClient.connect(srv.addr, f"/api/benchmark-sse?token={TOKEN}")
        await stream.read_until(b": connected")
        stream.close()
        srv.proc.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            await srv.proc.wait()
    assert (ok.status_code, bad.status_code, hdr.status_code, junk.status_code) == (200, 401, 200, 400)
    out = srv.stderr  # stdout (the access log) and stderr, together
    assert "/api/benchmark" in out and "/api/tasks" in out and "/metrics" in out, out  # it did log
    assert f"token={REDACTED}" in out or "token=%3Credacted%3E" in out
    assert TOKEN not in out and WRONG not in out
    assert "Traceback" not in out


# ---------------------------------------------------------------- CORS


async def test_cors_only_for_listed_origins(tmp_path):
    settings = Settings(port=0, targets=(TargetSpec(log=await finished_log(tmp_path), process_pattern=None),),
                        token=TOKEN, cors_origins=("https://dash.example",))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with running_server(settings) as server, httpx.AsyncClient(base_url=server.url) as c:
        listed = await c.get("/api/benchmark", headers=auth | {"Origin": "https://dash.example"})
        other = await c.get("/api/benchmark", headers=auth | {"Origin": "https://evil.example"})
        none = await c.get("/api/benchmark", headers=auth)
        pre_ok = await c.options("/api/benchmark-sse", headers={
            "Origin": "https://dash.example", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, last-event-id"})
        pre_bad = await c.options("/api/benchmark-sse", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert listed.headers["access-control-allow-origin"] == "https://dash.example"
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in none.headers
    assert pre_ok.status_code == 204  # a preflight carries no token, and needs none
    assert pre_ok.headers["access-control-allow-origin"] == "https://dash.example"
    assert "authorization" in pre_ok.headers["access-control-allow-headers"].lower()
    assert pre_bad.status_code == 403 and "access-control-allow-origin" not in pre_bad.headers


async def test_no_cors_by_default(tmp_path):
    settings = Settings(port=0, targets=(TargetSpec(log=await finished_log(tmp_path), process_pattern=None),))
    async with running_server(settings) as server, httpx.AsyncClient(base_url=server.url) as c:
        r = await c.get("/api/benchmark", headers={"Origin": "https://dash.example"})
        pre = await c.options("/api/benchmark-sse", headers={"Origin": "https://dash.example"})
    assert "access-control-allow-origin" not in r.headers
    assert pre.status_code == 403


def test_never_a_wildcard_origin_with_a_token():
    with pytest.raises(ConfigError, match="not allowed together with a token"):
        Settings(token=TOKEN, cors_origins=("*",))


async def test_the_access_log_file_is_closed_when_the_server_stops_or_is_never_served(tmp_path):
    # Hypercorn's own handling leaves the FileHandler open on a process-wide logger; a second
    # server in the process replaced it and the first file leaked (a ResourceWarning later).
    log = await finished_log(tmp_path)

    def settings(name: str) -> Settings:
        return Settings(port=0, targets=(TargetSpec(log=log, process_pattern=None),),
                        access_log=str(tmp_path / name))

    handlers = []
    for name in ("a.log", "b.log"):
        prepared = prepare(settings(name))
        handlers += prepared.config.accesslog.handlers
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            server = await nursery.start(lambda task_status: serve(prepared, shutdown_trigger=stop.wait,
                                                                   task_status=task_status))
            await get(server.url, "/api/health")
            stop.set()
    unserved = prepare(settings("c.log"))
    handlers += unserved.config.accesslog.handlers
    unserved.close()
    assert len(handlers) == 3 and all(h.stream is None for h in handlers)  # closed
    assert "/api/health" in (tmp_path / "a.log").read_text() and "/api/health" in (tmp_path / "b.log").read_text()
