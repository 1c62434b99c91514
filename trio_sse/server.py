"""``serve(settings)``: the monitors, the optional simulator and Hypercorn in one nursery.

Shutdown is an event, not a timeout: when ``shutdown_trigger`` returns, the hub's shutdown
event ends every stream (final frames flushed, body terminated), Hypercorn stops accepting and
finds no request left to wait for, and ``serve`` returns — no grace period waited out.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from trio_sse.app import create_app
from trio_sse.config import Settings
from trio_sse.hub import Hub
from trio_sse.sources import Source

log = logging.getLogger("trio_sse")

# Hypercorn waits this long for open requests after the shutdown trigger; our streams end at
# once, so this only bounds a pathological case (a client that stopped reading mid-write).
GRACEFUL_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Running:
    """What ``nursery.start(serve, ...)`` returns."""

    url: str  # base URL of the first bind, e.g. "http://127.0.0.1:8765"
    binds: tuple[str, ...]
    hub: Hub


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def hypercorn_config(settings: Settings, *, quiet: bool = False) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [bind_address(settings.host, settings.port)]
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.accesslog = None  # no access log: it would print query strings (tokens)
    config.errorlog = None if quiet else "-"
    config.keep_alive_timeout = 75  # longer than common proxy idle limits
    return config


async def serve(
    settings: Settings,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    sources: Sequence[Source] | None = None,
    quiet: bool = False,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until ``shutdown_trigger`` returns (or until cancelled)."""
    hub = Hub.build(settings, sources)
    app = create_app(hub=hub)
    config = hypercorn_config(settings, quiet=quiet)

    async def trigger() -> None:
        if shutdown_trigger is None:
            await trio.sleep_forever()
        else:
            await shutdown_trigger()
        hub.shutdown.set()  # every stream ends now, so Hypercorn has nothing to wait for

    async def http(*, task_status: trio.TaskStatus[list[str]]) -> None:
        await hypercorn_serve(app, config, shutdown_trigger=trigger, task_status=task_status)  # type: ignore[arg-type]
        nursery.cancel_scope.cancel()  # HTTP is done: stop monitors and the simulator

    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run_monitors)
        if settings.simulate:
            from trio_sse.sources.simulate import simulate

            nursery.start_soon(
                partial(
                    simulate,
                    settings.targets[0].log,
                    tasks=settings.sim_tasks,
                    step_seconds=settings.sim_step_seconds,
                )
            )
        binds = await nursery.start(http)
        task_status.started(Running(url=binds[0], binds=tuple(binds), hub=hub))
