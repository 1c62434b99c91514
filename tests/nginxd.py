"""A real nginx reverse proxy on a loopback port, in front of a server under test (pytest plugin).

Owns the ``nginx_proxy`` fixture: ``async with nginx_proxy(upstream_port) as proxy`` starts
``nginx -g 'daemon off;'`` with a configuration written to a temporary directory — the
README's "Behind nginx" location block plus ``X-Forwarded-For`` — and yields a ``Proxy``
(its port, its access log); it is stopped (SIGTERM, waited for) on exit. Readiness is polled
(connect) under a bounded ``fail_after``, never a fixed sleep. It must not know anything about
trio-sse's own code.

If ``nginx`` is missing the tests using it skip — or fail when ``CI=true``, so CI cannot go
green without it (``scripts/dev test`` installs the Debian package).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

CONFIG = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 1h;
            gzip off;
        }}
    }}
}}
"""


@dataclass
class Proxy:
    port: int
    dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def error_log(self) -> str:
        path = self.dir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def nginx_proxy(tmp_path: Path) -> Callable[[int], Any]:
    if NGINX is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is missing (scripts/dev test installs it); CI must not skip this test")
        pytest.skip("nginx is not installed")

    @asynccontextmanager
    async def start(upstream: int) -> AsyncIterator[Proxy]:
        port = _free_port()
        d = tmp_path / f"nginx-{port}"
        d.mkdir()
        user = "user root;" if os.geteuid() == 0 else ""
        conf = d / "nginx.conf"
        conf.write_text(CONFIG.format(dir=d, port=port, upstream=upstream, user=user))
        argv = [NGINX, "-p", str(d), "-c", str(conf), "-e", str(d / "error.log"), "-g", "daemon off;"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            with trio.fail_after(20):
                while True:
                    assert proc.poll() is None, f"nginx exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                    try:
                        stream = await trio.open_tcp_stream("127.0.0.1", port)
                    except OSError:
                        await trio.sleep(0.05)  # polling a child process we do not control
                        continue
                    await stream.aclose()
                    break
            yield Proxy(port, d)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()

    return start
