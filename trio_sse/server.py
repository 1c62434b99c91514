"""Start-up in two steps: ``prepare(settings)`` (synchronous: builds the hub and the app, opens
the access log, checks the certificate, binds the listening socket — every problem a
``ConfigError`` raised right there) and ``serve(prepared, …)`` (async: the hub's background
work, the optional simulator and Hypercorn in one nursery, until the shutdown trigger).

Shutdown is an event, not a timeout: when ``shutdown_trigger`` returns, the hub's shutdown
event ends every stream (final frames flushed, body terminated), Hypercorn stops accepting and
finds no request left to wait for, and ``serve`` returns — no grace period waited out.

The listening socket is made here (``sockets.listen_socket``: ``TCP_USER_TIMEOUT``, keepalive,
modest send buffer) and handed to Hypercorn's public ``hypercorn.trio.serve`` as ``fd://N``,
because Hypercorn shields its socket writes: a client that stopped reading could otherwise
hold a write, and shutdown, forever. Writes still pending shortly after shutdown are aborted
(``sockets.abort_connections``). The access log (off by default) goes through
``RedactingLogger``: no token, no query value named ``token``, no ``Authorization`` header
ever reaches it. Must not: tune the process (GC, patches: ``cli.main`` does, when asked).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.logging import Logger as HypercornLogger
from hypercorn.trio import serve as hypercorn_serve
from quart_trio import QuartTrio

from trio_sse.app import MAX_REQUEST_HEAD, create_app
from trio_sse.config import Settings
from trio_sse.errors import ConfigError
from trio_sse.hub import Hub
from trio_sse.sockets import abort_connections, listen_socket, unsent_bytes, writable
from trio_sse.sources import Source

log = logging.getLogger("trio_sse")

# Hypercorn waits this long for open requests after the shutdown trigger; our streams end at
# once, so this only bounds a pathological case (a client that stopped reading mid-write).
GRACEFUL_TIMEOUT = 5.0
# This long after the shutdown trigger (and every as long again), connections whose peer takes
# no data (unsent bytes, send buffer full) are aborted: a shielded write to them would hold
# the exit. Everyone else has had their final frames written by then.
SHUTDOWN_SWEEP = 0.25
# Bound on a request's header block (h11: bytes of an incomplete event; h2: header list);
# the app checks the complete head against the same number.
MAX_HEADER_BYTES = MAX_REQUEST_HEAD
TLS_HANDSHAKE_TIMEOUT = 10.0
# Idle keep-alive connections (between requests; streams are never idle) are closed after
# this long. Kept short on purpose: Hypercorn's trio worker only releases a connection the
# *client* closed once this timer runs out (its idle task outlives the reader), so every
# closed keep-alive connection holds a task and an fd this long (measured: 75 s held ~100
# fds in a soak with churn). Behind a proxy with upstream keep-alive, set the proxy's
# upstream idle timeout below this (nginx: ``keepalive_timeout 4s;`` in the upstream block).
KEEP_ALIVE_TIMEOUT = 5.0

REDACTED = "<redacted>"
_QUERY_ITEM = re.compile(r"(?P<key>[^?&=\s\"]+)=(?P<value>[^&\s\"#]*)")


LISTEN_BACKLOG = 1024


@dataclass(frozen=True, slots=True)
class Running:
    """What ``nursery.start(serve, ...)`` returns."""

    url: str  # base URL of the first bind, e.g. "http://127.0.0.1:8765"
    binds: tuple[str, ...]
    hub: Hub


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def redact(text: str, token: str | None = None) -> str:
    """``text`` with the value of every ``token=`` query item (however its name is
    percent-encoded) and every occurrence of ``token`` replaced."""

    def item(m: re.Match[str]) -> str:
        if unquote_plus(m["key"]).strip().lower() == "token":
            return f"{m['key']}={REDACTED}"
        return m[0]

    text = _QUERY_ITEM.sub(item, text)
    if token:
        text = text.replace(token, REDACTED)
    return text


class _Atoms(dict):  # type: ignore[type-arg]
    """Like Hypercorn's ``AccessLogAtoms``: header atoms are case-insensitive, and an atom
    the line does not have (or that was removed) prints as ``-``."""

    def __getitem__(self, key: str) -> Any:
        try:
            return super().__getitem__(key.lower() if key.startswith("{") else key)
        except KeyError:
            return "-"


def redact_atoms(atoms: Mapping[str, Any], token: str | None) -> dict[str, Any]:
    """Hypercorn access-log atoms with secrets removed: the Authorization header, any
    environment variable, ``token=`` query values (also in Referer) and the token itself."""
    out = _Atoms()
    for key, value in atoms.items():
        if key.endswith("}e") and key.startswith("{"):
            continue  # environment variables (TRIO_SSE_TOKEN among them) never go to a log
        if key in ("{authorization}i", "{proxy-authorization}i", "{cookie}i"):
            value = REDACTED
        elif isinstance(value, str):
            value = redact(value, token)
        out[key] = value
    return out


def logger_class(token: str | None) -> type[HypercornLogger]:
    """A Hypercorn ``Logger`` whose access-log lines pass through ``redact_atoms``."""

    class RedactingLogger(HypercornLogger):
        def atoms(self, request: Any, response: Any, request_time: float) -> Mapping[str, str]:
            return redact_atoms(super().atoms(request, response, request_time), token)

    return RedactingLogger


def access_logger(target: str | None) -> logging.Logger | str | None:
    """The access log: "-" and None as Hypercorn takes them; a file gets a logger of its own.

    Hypercorn would put a ``FileHandler`` on the process-wide ``hypercorn.access`` logger and
    never close it (a second server in the process replaces it, leaking the first's file).
    This logger belongs to one server, which closes it (``close_access_log``). Raises ``OSError``.
    """
    if target is None or target == "-":
        return target
    logger = logging.Logger("hypercorn.access")  # not registered: nobody else holds it
    handler = logging.FileHandler(target)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
                                           "[%Y-%m-%d %H:%M:%S %z]"))  # Hypercorn's own
    logger.addHandler(handler)
    logger.propagate = False
    return logger


def close_access_log(config: HypercornConfig) -> None:
    if isinstance(config.accesslog, logging.Logger):
        for handler in config.accesslog.handlers:
            handler.close()


def hypercorn_config(settings: Settings, *, quiet: bool = False) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [bind_address(settings.host, settings.port)]  # serve() hands over its own socket
    config.backlog = LISTEN_BACKLOG
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.logger_class = logger_class(settings.token)
    config.accesslog = access_logger(settings.access_log)  # None (default): no access log
    config.errorlog = None if quiet else "-"
    config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT
    config.h11_max_incomplete_size = MAX_HEADER_BYTES
    config.h2_max_header_list_size = MAX_HEADER_BYTES
    config.ssl_handshake_timeout = TLS_HANDSHAKE_TIMEOUT
    if settings.certfile is not None:
        config.certfile = settings.certfile
        config.keyfile = settings.keyfile
        config.alpn_protocols = ["h2", "http/1.1"]
    return config


async def _simulate(settings: Settings, monitor: Any) -> None:
    """``serve --simulate``: write the simulated run; while it is written, the benchmark of
    this target runs — in this very process, which no process check can see."""
    from trio_sse.sources.simulate import simulate

    target = settings.targets[0]
    monitor.set_running(True)
    try:
        try:
            await simulate(target.log, tasks=settings.sim_tasks, step_seconds=settings.sim_step_seconds,
                           results_dir=target.results_dir, showcase=True, runs=settings.sim_runs)
        except (ValueError, OSError) as err:  # the results folder (the log was checked at start)
            if target.results_dir is None:
                raise
            log.warning("simulate: not writing the results folder %s: %s", target.results_dir, err)
            await simulate(target.log, tasks=settings.sim_tasks, step_seconds=settings.sim_step_seconds,
                           showcase=True, runs=settings.sim_runs)
    finally:
        monitor.set_running(False)


def _stuck(sock: Any) -> bool:
    """A connection whose peer takes no data: unsent bytes and no room for more."""
    try:
        return unsent_bytes(sock) > 0 and not writable(sock)
    except OSError:
        return False


@dataclass(slots=True)
class Prepared:
    """A server ready to run: what ``prepare`` built. ``serve`` consumes it (once)."""

    settings: Settings
    hub: Hub
    app: QuartTrio
    config: HypercornConfig
    sock: socket.socket  # the bound, listening socket (closed by ``serve`` or ``close``)

    @property
    def local(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]  # type: ignore[no-any-return]

    def close(self) -> None:
        """Release what ``prepare`` opened, for a server that is never served."""
        self.sock.close()
        close_access_log(self.config)


def prepare(settings: Settings, *, sources: Sequence[Source] | None = None, quiet: bool = False) -> Prepared:
    """Build everything ``serve`` needs; raise ``ConfigError`` (one line) for a bad access-log
    path, certificate or bind address. No Trio run needed."""
    if settings.simulate:  # the simulator writes the first target's log: it must be writable
        path = settings.targets[0].log
        try:
            with open(path, "ab"):
                pass
        except OSError as err:
            raise ConfigError(f"cannot write the simulated run to {path}: {err.strerror or err}") from None
    hub = Hub.build(settings, sources)
    app = create_app(hub)
    try:
        config = hypercorn_config(settings, quiet=quiet)  # opens the access log file now
        _ = config.log
    except OSError as err:  # so a bad path fails at start, in one line
        raise ConfigError(f"cannot open access log {settings.access_log}: {err.strerror or err}") from None
    try:
        return Prepared(settings, hub, app, config, _tls_and_socket(settings, hub, config))
    except BaseException:
        close_access_log(config)
        raise


def _tls_and_socket(settings: Settings, hub: Hub, config: HypercornConfig) -> socket.socket:
    if settings.certfile is not None:
        try:
            config.create_ssl_context()  # fail at start, in one line, on a bad cert or key
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(
                f"cannot use TLS certificate {settings.certfile} / key {settings.keyfile}: "
                f"{getattr(err, 'strerror', None) or err}"
            ) from None
    try:
        sock = listen_socket(
            settings.host,
            settings.port,
            user_timeout=hub.limits.tcp_user_timeout,
            send_buffer=settings.send_buffer,
            backlog=LISTEN_BACKLOG,
        )
    except OSError as err:
        where = bind_address(settings.host, settings.port)
        raise ConfigError(f"cannot listen on {where}: {err.strerror or err}") from None
    return sock


async def serve(
    prepared: Prepared,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until ``shutdown_trigger`` returns (or until cancelled)."""
    settings, hub, config = prepared.settings, prepared.hub, prepared.config
    local = prepared.local
    # Hypercorn gets its own descriptor of our socket (``fd://``; it closes that one), so the
    # socket's options are ours and the two closes cannot hit a reused descriptor number.
    config.bind = [f"fd://{os.dup(prepared.sock.fileno())}"]
    prepared.sock.close()

    async def sweep() -> None:
        while True:
            await trio.sleep(SHUTDOWN_SWEEP)
            aborted = abort_connections(local, only=_stuck)
            if aborted:
                log.info("shutdown: aborted %d connection(s) whose peer stopped reading", aborted)

    async def trigger() -> None:
        if shutdown_trigger is None:
            await trio.sleep_forever()
        else:
            await shutdown_trigger()
        hub.shutdown.set()  # every stream ends now, so Hypercorn has nothing to wait for
        nursery.start_soon(sweep)

    async def http(*, task_status: trio.TaskStatus[list[str]]) -> None:
        await hypercorn_serve(prepared.app, config, shutdown_trigger=trigger, task_status=task_status, mode="asgi")
        nursery.cancel_scope.cancel()  # HTTP is done: stop monitors, watchdog, simulator

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run)
            if settings.simulate:
                nursery.start_soon(_simulate, settings, hub.monitors[settings.targets[0].name])
            binds = await nursery.start(http)
            task_status.started(Running(url=binds[0], binds=tuple(binds), hub=hub))
    finally:
        close_access_log(config)
