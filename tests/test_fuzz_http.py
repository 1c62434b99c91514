"""Fuzz the stream route's inputs (SPEC §1, §5) against a real `trio-sse serve` process:
hypothesis picks interval, target, lastEventId, token (query, percent-encoded or raw), and
the Last-Event-ID, Authorization and Accept-Encoding headers. Every answer is a 200 stream
(only its opening is read) or a 400/401/404 with a JSON error — never a 500, never a
traceback on the server's stderr."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from support import child_env
from trio_sse.sources.simulate import plan_run, render_run
from trio_sse.testing import free_port

TOKEN = "fuzz-T0ken"
pytestmark = pytest.mark.slow  # a real `trio-sse serve` child process


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[str, int], Path]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    log = tmp / "waa.log"
    log.write_bytes(b"".join(chunk for _, chunk in render_run(plan_run(3))))
    port = free_port()
    stderr = tmp / "stderr.txt"
    env = child_env({"TRIO_SSE_TOKEN": TOKEN})
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trio_sse", "serve", "--port", str(port), "--target", f"local={log}",
             "--target", f"other={log}", "--keepalive", "30"],
            stdout=err, stderr=err, env=env,
        )
    try:
        deadline = time.monotonic() + 20
        while True:  # polling a child process we do not control
            assert proc.poll() is None, stderr.read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)
        yield ("127.0.0.1", port), stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    text = stderr.read_text(errors="replace")
    assert proc.returncode == 0, text
    assert "Traceback" not in text and "Error in ASGI" not in text, text


# What a parameter can be: absent, a plausible value, or junk (percent-encoded or raw).
RAW_SAFE = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#&?"),
                   max_size=30)
JUNK = st.one_of(st.text(max_size=40), st.binary(max_size=20).map(lambda b: b.decode("latin-1")))


def param(plausible: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.one_of(
        st.none(),
        plausible.map(lambda v: quote(v, safe="")),
        JUNK.map(lambda v: quote(v, safe="")),
        RAW_SAFE,  # sent as is: may hold broken %-escapes
    )


HEADER_VALUE = st.text(
    alphabet=st.characters(codec="latin-1", exclude_categories=("Cc",)), max_size=60
).map(str.strip)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    query = {
        "interval": draw(st.one_of(st.none(), st.sampled_from(["1", "5", "60"]),
                                   param(st.sampled_from(["0", "61", "2.5", "", "abc", "-1", "٣"])))),
        "target": draw(st.one_of(st.none(), st.sampled_from(["local", "other"]),
                                 param(st.sampled_from(["nope", "", "LOCAL", "local/../x"])))),
        "lastEventId": draw(param(st.sampled_from(["local:abc-1", "junk", "", "x" * 5000]))),
        "token": draw(param(st.sampled_from([TOKEN, TOKEN + "x", "", TOKEN.upper()]))),
    }
    target = "/api/benchmark-sse"
    pairs = [f"{k}={v}" for k, v in query.items() if v is not None]
    if pairs:
        target += "?" + "&".join(draw(st.permutations(pairs)))
    headers = ["Host: fuzz"]
    # Mostly the right token in the header, so the checks behind the token get fuzzed too.
    auth = draw(st.sampled_from(["valid", "valid", "valid", "fuzz"]))
    if auth == "valid":
        headers.append(f"Authorization: Bearer {TOKEN}")
    for name, plausible in (
        ("Last-Event-ID", st.sampled_from(["local:abc-2", "", "garbage", "x" * 5000])),
        ("Authorization", st.sampled_from([f"bearer {TOKEN}", "Bearer", "Basic x", ""])),
        ("Accept-Encoding", st.sampled_from(["gzip", "gzip;q=0", "*", "br, gzip;q=0.5", "identity", "gzip;q=nan"])),
    ):
        if name == "Authorization" and auth == "valid":
            continue
        value = draw(st.one_of(st.none(), plausible, HEADER_VALUE))
        if value is not None:
            headers.append(f"{name}: {value}")
    return (f"GET {target} HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode("latin-1")


def exchange(addr: tuple[str, int], request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(addr, timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before the headers: {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if status == 200:
            while not body:  # the opening chunk (gzip or not); then we leave
                chunk = sock.recv(65536)
                assert chunk
                body += chunk
        else:
            while len(body) < int(headers.get("content-length", "0")):
                chunk = sock.recv(65536)
                assert chunk
                body += chunk
        return status, headers, body


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests())
def test_stream_route_inputs_never_500(server, request):
    addr, _ = server
    status, headers, body = exchange(addr, request)
    event(f"status {status}")
    assert status in (200, 400, 401, 404), (status, request, body)
    if status == 200:
        assert headers["content-type"] == "text/event-stream; charset=utf-8"
        if headers.get("content-encoding") != "gzip":
            assert b"retry: " in body
    else:
        assert headers["content-type"].startswith("application/json")
        error = json.loads(body)["error"]
        assert isinstance(error, str) and error and "Traceback" not in error and TOKEN not in error
