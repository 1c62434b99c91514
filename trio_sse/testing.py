"""Helpers for *your* tests: a real trio-sse server on a simulated WAA run, in a few lines.

Built for pytest-trio ("programmatic simulations" of dashboards and scripts)::

    from trio_sse.testing import simulated_server

    async def test_my_dashboard_script(tmp_path):
        async with simulated_server(tmp_path, tasks=3, step_seconds=0.01) as sim:
            results = await my_script(sim.url)          # e.g. uses trio_sse.client
            await sim.done.wait()
            assert {r.task_id for r in results} == {t.task_id for t in sim.expected}

The pieces compose: ``simulated_run`` writes a log, ``running_server`` serves a log (and can
be stopped and started again on the same port while the run goes on — a server restart).
Everything runs in the caller's Trio run, on 127.0.0.1 with an OS-chosen port.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import trio

from trio_sse.config import Settings, TargetSpec
from trio_sse.hub import Hub
from trio_sse.server import Running, prepare, serve
from trio_sse.sources.simulate import SimTask, plan_runs, simulate

__all__ = ["SimRun", "SimServer", "free_port", "running_server", "simulated_run", "simulated_server"]


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1 (for a server restarted on the
    same port; for a single start prefer port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(slots=True)
class SimRun:
    log_path: Path
    expected: Sequence[SimTask]  # what the simulated run's task results will be (the first run's)
    done: trio.Event  # set when the whole run is written (every run, with runs > 1)
    runs: Sequence[Sequence[SimTask]] = ()  # every run's expected results, in order


@dataclass(slots=True)
class SimServer:
    url: str
    log_path: Path
    expected: Sequence[SimTask]
    done: trio.Event
    hub: Hub


@asynccontextmanager
async def simulated_run(
    log_path: str | Path,
    *,
    tasks: int = 5,
    step_seconds: float = 0.05,
    seed: int = 0,
    ansi: bool = True,
    runs: int = 1,
) -> AsyncIterator[SimRun]:
    """Write a simulated WAA run (``runs`` runs of the same tasks) into ``log_path`` in the
    background."""
    plans = plan_runs(tasks, runs, seed=seed)
    run = SimRun(Path(log_path), plans[0], trio.Event(), plans)

    async def write() -> None:
        await simulate(str(log_path), tasks=tasks, step_seconds=step_seconds, seed=seed, ansi=ansi, runs=runs)
        run.done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        yield run
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def running_server(settings: Settings, **prepare_kwargs: Any) -> AsyncIterator[Running]:
    """A real Hypercorn serving ``settings`` (``prepare_kwargs``: ``sources=``); ended (streams
    closed) on exit. The process is left as it is (no GC tuning, no Hypercorn patch)."""
    stop = trio.Event()
    prepared = prepare(settings, quiet=True, **prepare_kwargs)
    with prepared.sock:  # closed by serve; here too if serve never starts
        async with trio.open_nursery() as nursery:
            running: Running = await nursery.start(
                lambda task_status: serve(prepared, shutdown_trigger=stop.wait, task_status=task_status)
            )
            try:
                yield running
            finally:
                stop.set()


@asynccontextmanager
async def simulated_server(
    tmp_path: str | Path,
    *,
    tasks: int = 5,
    step_seconds: float = 0.05,
    seed: int = 0,
    ansi: bool = True,
    runs: int = 1,
    **settings: Any,
) -> AsyncIterator[SimServer]:
    """A simulated run and a server following it. ``settings`` are ``Settings`` fields (e.g.
    ``db=str(tmp_path / "h.sqlite3")``: the run history, off unless given)."""
    log_path = Path(tmp_path) / "waa_benchmark.log"
    base = Settings(port=0, targets=(TargetSpec(name="local", log=str(log_path), process_pattern=None),))
    async with running_server(replace(base, **settings)) as server:
        async with simulated_run(
            log_path, tasks=tasks, step_seconds=step_seconds, seed=seed, ansi=ansi, runs=runs
        ) as run:
            yield SimServer(server.url, log_path, run.expected, run.done, server.hub)
