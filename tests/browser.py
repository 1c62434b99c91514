"""Headless Chromium for the dashboard tests, and a restartable real server (pytest plugin).

Owns:

* the ``chromium`` fixture: the path of a usable Chromium (Debian's ``/usr/bin/chromium``).
  Missing → the test skips, or fails when ``CI=true`` (``scripts/dev test`` installs it).
  ``playwright install`` is never used: Playwright drives the system browser.
* ``open_page(chromium, ...)``: Playwright's *sync* API, for the calling thread. Playwright's
  async API needs asyncio and our tests run under Trio, so a browser scenario is a plain
  function run with ``trio.to_thread.run_sync``; it calls back into Trio (to restart the
  server, say) with ``trio.from_thread.run``. The ``PageWatch`` it yields collects console
  errors and uncaught page errors.
* ``restartable_server(settings)``: a real trio-sse server on a fixed port that a test can
  stop and start again while a simulated run keeps writing its log (a server restart).

Must not: fake the server, or install anything.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from trio_sse.config import Settings
from trio_sse.testing import running_server

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is missing (CI=true: browser tests must run; scripts/dev test installs it)")
    pytest.skip(f"{what} is missing")


@pytest.fixture
def chromium() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the playwright Python package")
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        _missing("chromium (Debian package 'chromium')")
    return path


@dataclass(slots=True)
class PageWatch:
    """A page, and what went wrong on it: console errors and uncaught exceptions."""

    page: Any  # playwright.sync_api.Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return self.console_errors + self.page_errors


@contextmanager
def open_page(chromium: str, *, viewport: dict[str, int] = LAPTOP, timeout_ms: int = 20_000) -> Iterator[PageWatch]:
    """A fresh headless Chromium with one page (sync API: call from a worker thread)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs its own asyncio loop in this thread. Once trio-asyncio is
    # imported (the SSH source), asyncio.new_event_loop() outside Trio gives trio-asyncio's
    # synchronous loop, which cannot host Playwright's greenlets. Outside a Trio context
    # trio-asyncio keeps the policy per thread, so asking for asyncio's own loop here
    # affects this worker thread only (and without trio-asyncio it is the default anyway).
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport=viewport)
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            watch = PageWatch(page)
            page.on("console", lambda msg: watch.console_errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda err: watch.page_errors.append(str(err)))
            yield watch
        finally:
            browser.close()


class RestartableServer:
    """A real server on ``settings.port`` (fixed, so clients can come back to it)."""

    def __init__(self, settings: Settings) -> None:
        if settings.port == 0:
            raise ValueError("a restartable server needs a fixed port (trio_sse.testing.free_port())")
        self.settings = settings
        self.url = f"http://{settings.host}:{settings.port}"
        self.starts = 0
        self._stop = trio.Event()
        self._stopped = trio.Event()
        self._start = trio.Event()
        self._started = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        while True:
            async with running_server(self.settings) as running:
                assert running.url.rstrip("/") == self.url, (running.url, self.url)
                self.starts += 1
                if self.starts == 1:
                    task_status.started()
                self._started.set()
                await self._stop.wait()
            # running_server's exit ended every stream and closed the listening socket.
            self._stopped.set()
            await self._start.wait()
            self._start = trio.Event()

    async def restart(self) -> None:
        """Stop the server (every stream ends, the port closes), then start it again."""
        await self.stop()
        await self.start()

    async def stop(self) -> None:
        self._stopped = trio.Event()
        self._stop.set()
        await self._stopped.wait()
        self._stop = trio.Event()

    async def start(self) -> None:
        self._started = trio.Event()
        self._start.set()
        await self._started.wait()


@asynccontextmanager
async def restartable_server(settings: Settings) -> AsyncIterator[RestartableServer]:
    server = RestartableServer(settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        yield server
        nursery.cancel_scope.cancel()
