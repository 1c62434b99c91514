#!/usr/bin/env python3
"""The servers under test of the benchmarks (``scripts/bench_*.py``), each in its own process
so its CPU and RSS can be read (``python scripts/_bench_servers.py trio|starlette ...``), and
``start_server`` / ``kill`` to run one from a benchmark script. Not part of the package, not
tests.

* ``trio``: trio-sse's real server (``trio_sse.testing.running_server``: Hypercorn +
  Quart-Trio + Monitor + EventStream), with a publisher task that drives ``Monitor.apply_parsed`` with a realistic task start,
  step and finish (the parser's own events) at ``--rate`` per second after SIGUSR1. The
  process is tuned as ``trio-sse serve`` tunes its own (``trio_sse.tuning.tune_process``)
  unless ``--no-tuning`` (the "before" numbers); ``--db PATH`` keeps the run history there
  (as ``trio-sse serve`` does by default: every durable event goes to the history writer);
* ``starlette``: the peer — sse-starlette's ``EventSourceResponse`` on uvicorn, a minimal
  broadcaster with one bounded ``asyncio.Queue`` per client, sending *the same bytes*
  (frames encoded once with trio-sse's own pure encoders and shared by every client), the
  same opening, the current ``progress`` every ``--interval`` seconds, a ping as keepalive.

Both publish the same tasks (``_bench_workloads.published_tasks``) and write the wall-clock
publish time of every durable event, and their GC time, to ``--times`` when done.

Must not: measure from outside (the scripts do, with ``_bench_measure``) or talk to clients
other than through its HTTP server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # trio_sse from this checkout, also when run as a script

from _bench_measure import GcMeter, raise_nofile  # noqa: E402
from _bench_workloads import published_tasks  # noqa: E402
from trio_sse.testing import free_port  # noqa: E402

SERVERS = {"trio": "trio-sse (Quart-Trio + Hypercorn)", "starlette": "sse-starlette + uvicorn"}

# --------------------------------------------------------------------------- the servers


def _write_times(path: str, times: dict[int, float], gc_meter: GcMeter) -> None:
    tmp = path + ".tmp"
    data = {"published": {str(k): v for k, v in times.items()}, "gc_seconds": gc_meter.seconds,
            "gc_collections": gc_meter.collections}  # fmt: skip
    Path(tmp).write_text(json.dumps(data))
    os.replace(tmp, path)


def serve_trio(a: argparse.Namespace) -> None:
    import trio

    from trio_sse.config import Settings, SSHSpec, TargetSpec
    from trio_sse.logparse import StepStarted, TaskFinished, TaskStarted
    from trio_sse.testing import running_server
    from trio_sse.tuning import tune_process

    if a.log:
        log = Path(a.log)
    else:
        log = Path(a.workdir) / "bench.log"
        log.touch()
    ssh = None
    if a.ssh:
        user, _, hostport = a.ssh.rpartition("@")
        host, _, port = hostport.rpartition(":")
        ssh = SSHSpec(host=host, user=user or None, port=int(port), identity=a.identity, known_hosts=a.known_hosts)
    target = TargetSpec(name="local", log=str(log), process_pattern=a.process_pattern or None, ssh=ssh,
                        results=a.results or "none")
    settings = Settings(
        port=a.port,
        targets=(target,),
        keepalive=a.keepalive,
        max_streams=100_000,
        max_streams_per_ip=100_000,
        process_tuning=False,  # the server leaves the process alone; main() tunes it (--no-tuning: not)
        db=a.db or None,  # (Settings' own default: no history)
    )

    sources = None
    if a.poll_interval and ssh is None:  # experiment: LocalSource's poll interval
        from trio_sse.sources.local import LocalSource

        sources = [LocalSource(str(log), process_pattern=target.process_pattern, poll_interval=a.poll_interval)]

    async def publish(monitor: object, go: trio.Event) -> None:
        await go.wait()
        meter = GcMeter()
        meter.start()
        times: dict[int, float] = {}
        t0 = trio.current_time()
        offset = 0
        for i, t in enumerate(published_tasks(a.count)):
            await trio.sleep_until(t0 + i / a.rate)
            events = [
                TaskStarted(t.task_id, t.domain, offset),
                StepStarted(t.steps, "computer.mouse.single_click()", offset + 200),
                TaskFinished(t.task_id, t.domain, t.score, t.error, t.steps, offset + 400),
            ]
            offset += 600
            times[len(monitor.history) + 1] = time.time()  # type: ignore[attr-defined]
            monitor.apply_parsed(events)  # type: ignore[attr-defined]
        _write_times(a.times, times, meter)

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGUSR1) as signals:
            go = trio.Event()
            async with trio.open_nursery() as nursery:
                # The real server (trio_sse.testing: prepare + serve, streams ended on exit).
                async with running_server(settings, sources=sources) as running:
                    if not a.no_tuning:
                        tune_process()  # as `trio-sse serve` does, once the app and hub exist
                    monitor = running.hub.monitors["local"]
                    if a.count:
                        nursery.start_soon(publish, monitor, go)
                    async for signum in signals:
                        if signum == signal.SIGUSR1:
                            go.set()
                            continue
                        if a.stats and hasattr(monitor.source, "statistics"):
                            import dataclasses

                            Path(a.stats).write_text(json.dumps(dataclasses.asdict(monitor.source.statistics())))
                        break
                nursery.cancel_scope.cancel()  # a publisher never told to start

    trio.run(main)


def serve_starlette(a: argparse.Namespace) -> None:
    import asyncio

    import uvicorn
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.routing import Route

    from trio_sse.history import History, run_id_for
    from trio_sse.model import Progress, Status, TaskComplete, dumps
    from trio_sse.sse import encode_comment, encode_event, encode_retry

    history = History("local", run_id_for(b""))
    state = {
        "progress": Progress(target="local", run=history.run),
        "status": encode_event(dumps(Status(target="local", connected=True, phase="unknown", waa_ready=False,
                                            probe_status="unknown", vnc_url=None).payload()), event="status"),  # fmt: skip
    }
    queues: set[asyncio.Queue[bytes]] = set()
    times: dict[int, float] = {}
    go = asyncio.Event()

    def progress_frame() -> bytes:
        return encode_event(dumps(state["progress"].payload()), event="progress")  # type: ignore[attr-defined]

    def broadcast(frame: bytes) -> None:
        for q in list(queues):
            try:
                q.put_nowait(frame)
            except asyncio.QueueFull:
                queues.discard(q)  # too slow: the generator is dropped on its next get

    async def publisher() -> None:
        await go.wait()
        meter = GcMeter()
        meter.start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        last_progress = t0
        for i, t in enumerate(published_tasks(a.count) if a.count else ()):
            delay = t0 + i / a.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            result = TaskComplete(target="local", task_id=t.task_id, success=t.error is None and t.score == 1.0,
                                  score=t.score, domain=t.domain, steps=t.steps, error=t.error)  # fmt: skip
            times[len(history) + 1] = time.time()
            broadcast(history.append(result).frame)
            p = state["progress"]
            state["progress"] = Progress(target="local", tasks_completed=p.tasks_completed + 1, run=history.run)  # type: ignore[attr-defined]
            if loop.time() - last_progress >= a.interval:  # what trio-sse's per-client coalescing sends
                last_progress = loop.time()
                broadcast(progress_frame())
        _write_times(a.times, times, meter)

    async def stream(request: object) -> EventSourceResponse:
        q: asyncio.Queue[bytes] = asyncio.Queue(maxsize=256)
        queues.add(q)
        opening = b"".join(
            [encode_retry(3000), encode_comment("connected") + b"\n", state["status"], progress_frame()]  # type: ignore[list-item]
        )

        async def gen():  # type: ignore[no-untyped-def]
            try:
                yield opening
                while True:
                    yield await q.get()
            finally:
                queues.discard(q)

        return EventSourceResponse(gen(), ping=a.keepalive, headers={"X-Accel-Buffering": "no"})

    @contextlib.asynccontextmanager
    async def lifespan(app: object):  # type: ignore[no-untyped-def]
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, go.set)
        task = asyncio.create_task(publisher())
        yield
        task.cancel()

    app = Starlette(routes=[Route("/api/benchmark-sse", stream)], lifespan=lifespan)
    config = uvicorn.Config(app, host="127.0.0.1", port=a.port, log_level="warning", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=1)  # fmt: skip
    uvicorn.Server(config).run()


def server_main(argv: Sequence[str]) -> None:
    p = argparse.ArgumentParser(prog="_bench_servers.py", description="a server under test (see the module docstring)")
    p.add_argument("kind", choices=("trio", "starlette"))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rate", type=float, default=4.0)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--interval", type=float, default=5.0)
    p.add_argument("--keepalive", type=float, default=15.0)
    p.add_argument("--times", default="")
    p.add_argument("--workdir", required=True)
    p.add_argument("--log", default="", help="trio: follow this log (default: an empty one)")
    p.add_argument("--ssh", default="", help="trio: follow --log over SSH at USER@HOST:PORT")
    p.add_argument("--identity", default=None)
    p.add_argument("--known-hosts", default=None)
    p.add_argument("--process-pattern", default="", help="trio: probe this pgrep pattern")
    p.add_argument("--poll-interval", type=float, default=0.0, help="trio: LocalSource poll interval (experiment)")
    p.add_argument("--stats", default="", help="trio: write the source's statistics() here on exit")
    p.add_argument("--results", default="", help="trio: the target's results folder (SPEC §8; default: none)")
    p.add_argument("--no-tuning", action="store_true",
                   help="trio: leave the process untuned (no trio_sse.tuning.tune_process): the 'before' numbers")  # fmt: skip
    p.add_argument("--db", default="", help="trio: keep the run history in this SQLite file (default: none)")
    a = p.parse_args(argv)
    raise_nofile()
    (serve_trio if a.kind == "trio" else serve_starlette)(a)


# --------------------------------------------------------------------------- running one from a script


def start_server(kind: str, workdir: Path, **opts: object) -> tuple[subprocess.Popen[bytes], int]:
    """A server process of ``kind`` on a free port, listening on return. ``opts`` are its
    options (``poll_interval=0.5`` → ``--poll-interval 0.5``; ``True`` → a bare flag; ``None``
    and ``False`` → left out)."""
    port = free_port()
    args = [sys.executable, __file__, kind, "--port", str(port), "--workdir", str(workdir)]
    for k, v in opts.items():
        if v is None or v is False:
            continue
        args.append(f"--{k.replace('_', '-')}")
        if v is not True:
            args.append(str(v))
    proc = subprocess.Popen(args)
    wait_port(port, proc)
    return proc, port


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # a script, not a test: polling a port for readiness
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Until the server wrote ``path`` (its ``--times``: publishing is over)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear in {timeout} s")
        time.sleep(0.05)


def kill(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    server_main(sys.argv[1:])
