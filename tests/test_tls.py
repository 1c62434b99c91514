"""TLS and HTTP/2 (SPEC §5): --certfile/--keyfile serve HTTPS with ALPN h2 + http/1.1, and
HTTP/2 lifts the browsers' six-streams-per-origin limit — more than six concurrent streams
over one connection all receive their events. Bad certificate options stop start-up with
one line."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
import trio
import trustme
from httpx_sse import aconnect_sse

from trio_sse.cli import main
from trio_sse.config import Settings, TargetSpec
from trio_sse.testing import running_server, simulated_run

STREAMS = 10  # more than the 6 a browser allows per origin over HTTP/1.1


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cert_files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in server_cert.cert_chain_pems))
    server_cert.private_key_pem.write_to_path(str(key))
    return cert, key


async def test_https_with_http2_carries_more_than_six_streams_on_one_connection(tmp_path, ca, cert_files):
    cert, key = cert_files
    log = tmp_path / "waa.log"
    async with simulated_run(log, tasks=2, step_seconds=0) as run:
        await run.done.wait()
    settings = Settings(
        port=0, targets=(TargetSpec(log=str(log), process_pattern=None),), certfile=str(cert), keyfile=str(key)
    )
    context = ssl.create_default_context()
    ca.configure_trust(context)
    results: list[tuple[str, list[str]]] = []
    with trio.fail_after(30):
        async with running_server(settings) as server:
            assert server.url.startswith("https://127.0.0.1:")
            limits = httpx.Limits(max_connections=1)  # every stream on the one connection
            async with httpx.AsyncClient(http2=True, verify=context, limits=limits,
                                         timeout=httpx.Timeout(10, read=None)) as client:

                async def one() -> None:
                    async with aconnect_sse(client, "GET", server.url + "/api/benchmark-sse") as es:
                        version = es.response.http_version
                        events = []
                        async for sse in es.aiter_sse():
                            if sse.event:
                                events.append(sse.event)
                            if "run_complete" in events and "progress" in events:
                                break  # replay first, then the current status and progress
                        results.append((version, events))

                async with trio.open_nursery() as nursery:
                    for _ in range(STREAMS):
                        nursery.start_soon(one)
    assert len(results) == STREAMS
    for version, events in results:
        assert version == "HTTP/2"
        assert events.count("task_complete") == 2 and "status" in events and "progress" in events


async def test_https_still_speaks_http1_to_clients_without_h2(tmp_path, ca, cert_files):
    cert, key = cert_files
    settings = Settings(port=0, targets=(TargetSpec(log=str(tmp_path / "none.log"), process_pattern=None),),
                        certfile=str(cert), keyfile=str(key))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with running_server(settings) as server:
        async with httpx.AsyncClient(verify=context) as client:
            r = await client.get(server.url + "/healthz")
        # and plain HTTP to the TLS port is refused, not served
        async with httpx.AsyncClient() as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(server.url.replace("https://", "http://") + "/healthz")
    assert r.http_version == "HTTP/1.1" and r.text == "ok\n"


@pytest.mark.parametrize(
    ("which", "needle"),
    [
        ("cert-only", "must be given together"),
        ("missing", "cannot use TLS certificate"),
        ("junk", "cannot use TLS certificate"),
        ("swapped", "cannot use TLS certificate"),
    ],
)
def test_bad_certificate_options_stop_start_up_with_one_line(tmp_path, cert_files, capsys, which, needle):
    cert, key = cert_files
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    argv = {
        "cert-only": ["--certfile", str(cert)],
        "missing": ["--certfile", str(tmp_path / "nope.pem"), "--keyfile", str(key)],
        "junk": ["--certfile", str(junk), "--keyfile", str(junk)],
        "swapped": ["--certfile", str(key), "--keyfile", str(cert)],
    }[which]
    code = main(["serve", "--port", "0", "--log", str(tmp_path / "x.log"), *argv], env={})
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_certificate_options_from_the_environment(tmp_path, cert_files):
    from trio_sse.config import settings_from_env

    cert, key = cert_files
    s = settings_from_env({"TRIO_SSE_CERTFILE": str(cert), "TRIO_SSE_KEYFILE": str(key)})
    assert (s.certfile, s.keyfile) == (str(cert), str(key))
