"""Cluster mode wired end to end (SPEC §10, issue 14): real trio-sse servers (in this process
through ``trio_sse.testing.running_server``, as ``python -m trio_sse serve`` children, and as
``hypercorn -k trio -w 2 trio_sse.asgi:app``) on one real ``redis-server`` (tests/redisd.py),
a real log file, real HTTP clients.

* two servers serve one service: the same events with the same ids, every route on either,
  one leader, ``/metrics`` labelled by process;
* the follower process is SIGKILLed: the other takes over within the lease, continues at the
  byte offset its checkpoint names (it does not read the bytes before it), and its clients
  see no gap and no duplicate; a client of the dead process resumes on the other by id;
* Redis down / back / restarted empty, through the server: streams stay open (keepalives go
  on), one ``error`` event per outage, the outage metric, and nothing twice afterwards;
* ``hypercorn -w 2``: both workers serve the same events, one of them leads, a stream resumes
  on the other worker.

Clocks: Redis's lease expiry runs on its own clock, and these are real processes and
sockets, so the tests run in real time — with a 1 s lease where a follower dies, the default
elsewhere; every wait is on an event, a stream's next frame or a condition polled over the
wire, each bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trio

from rawhttp import serve_process
from redisd import RedisD
from support import child_env, parse_metrics, scrape_metrics, wait_for, wait_healthy
from test_cluster_redis import waa_run
from trio_sse.cluster.codec import Checkpoint
from trio_sse.cluster.redis import open_store
from trio_sse.config import Settings, TargetSpec
from trio_sse.monitor import Monitor
from trio_sse.sources import LogBytes, LogReset
from trio_sse.testing import free_port, running_server

pytestmark = [pytest.mark.redis, pytest.mark.slow]

GUARD = 30  # seconds: the bound on any one wait (never reached when things work)
LEASE = 1.0  # where a follower dies: the takeover is what is measured
STEADY = 10.0  # elsewhere: the default, so a loaded machine cannot make leadership flap
DATA = waa_run(8, end=True)
# Where each task's "Finished" line ends: appending DATA[CUTS[i-1]:CUTS[i]] finishes task i.
CUTS = [0] + [DATA.index(b"\n", DATA.index(f"Finished notepad/t{i}-WOS".encode())) + 1 for i in range(1, 9)]


def expected_ids(data: bytes = DATA) -> list[str]:
    """The ids a local monitor gives the whole log: the oracle."""
    monitor = Monitor("vm1", _Never(), idle_probe_seconds=60)
    monitor.apply(LogReset("/x.log"))
    monitor.apply(LogBytes(data, 0))
    return [e.id for e in monitor.history.entries]


class _Never:
    description = "never run"

    async def follow(self, send, *, task_status=trio.TASK_STATUS_IGNORED):  # pragma: no cover
        raise AssertionError

    async def probe(self):  # pragma: no cover
        raise AssertionError


def settings(redisd: RedisD, log: Path, lease: float = STEADY) -> Settings:
    return Settings(
        port=0,
        targets=(TargetSpec(name="vm1", log=str(log), process_pattern=None),),
        redis=redisd.url,
        lease_seconds=lease,
        keepalive=0.3,
    )


def append(log: Path, data: bytes) -> None:
    with log.open("ab") as f:
        f.write(data)


# ------------------------------------------------------------------ an SSE client


@dataclass
class Frame:
    event: str | None  # None: a comment
    id: str | None
    data: str


@dataclass
class Client:
    """One stream, read by a background task: every frame and comment, in order."""

    url: str
    last_event_id: str | None = None
    frames: list[Frame] = field(default_factory=list)
    ended: bool = False
    _changed: trio.Event = field(default_factory=trio.Event)

    @property
    def durable(self) -> list[Frame]:
        return [f for f in self.frames if f.id is not None]

    @property
    def ids(self) -> list[str]:
        return [f.id for f in self.durable if f.id is not None]

    def events(self, name: str) -> list[Frame]:
        return [f for f in self.frames if f.event == name]

    @property
    def comments(self) -> list[str]:
        return [f.data for f in self.frames if f.event is None]

    async def until(self, check: Callable[[], bool], what: str) -> None:
        with trio.move_on_after(GUARD):
            while not check():
                await self._changed.wait()
            return
        raise AssertionError(f"waited {GUARD} s for {what}; got {[(f.event, f.id) for f in self.frames]}")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        headers = {"Accept-Encoding": "identity"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as c:
            async with c.stream("GET", self.url + "/api/benchmark-sse?interval=1", headers=headers) as r:
                assert r.status_code == 200
                task_status.started()
                buf = b""
                try:
                    async for chunk in r.aiter_raw():
                        buf += chunk
                        while b"\n\n" in buf or (buf.startswith(b":") and b"\n" in buf):
                            if buf.startswith(b":"):
                                line, _, buf = buf.partition(b"\n")
                                self.frames.append(Frame(None, None, line[1:].strip().decode()))
                            else:
                                raw, _, buf = buf.partition(b"\n\n")
                                self._frame(raw.decode())
                            self._changed.set()
                            self._changed = trio.Event()
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    pass  # the server died: the stream ended without its last chunk
        self.ended = True
        self._changed.set()

    def _frame(self, raw: str) -> None:
        fields: dict[str, str] = {}
        for line in raw.split("\n"):
            if line.startswith(":"):
                self.frames.append(Frame(None, None, line[1:].strip()))
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        if "event" in fields or "data" in fields:
            self.frames.append(Frame(fields.get("event", "message"), fields.get("id"), fields.get("data", "")))


@asynccontextmanager
async def streaming(url: str, last_event_id: str | None = None) -> AsyncIterator[Client]:
    client = Client(url, last_event_id)
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        yield client
        nursery.cancel_scope.cancel()


def task_ids(client: Client) -> list[str]:
    return [json.loads(f.data)["task_id"] for f in client.events("task_complete")]


def leaders(samples: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in samples.items() if k.startswith("trio_sse_cluster_leader{")}


async def checkpoint(redisd: RedisD, min_count: int) -> Checkpoint:
    """The checkpoint in Redis once it counts at least ``min_count`` events (polled: it is
    another process's write)."""
    async with open_store(redisd.url) as store:
        with trio.fail_after(GUARD):
            while True:
                ck = await store.checkpoint(store.keys("vm1"))
                if ck is not None and ck.count >= min_count:
                    return ck
                await trio.sleep(0.02)  # polling another process's write


# ------------------------------------------------------------------ one service, two servers


async def test_two_servers_serve_one_service(redisd: RedisD, tmp_path: Path) -> None:
    log = tmp_path / "normal-0.log"
    log.write_bytes(DATA[: CUTS[3]])
    async with running_server(settings(redisd, log)) as a, running_server(settings(redisd, log)) as b:
        async with streaming(a.url) as on_a, streaming(b.url) as on_b:
            append(log, DATA[CUTS[3] : CUTS[6]])
            for client in (on_a, on_b):
                await client.until(lambda c=client: len(c.durable) == 6, "six tasks")
            append(log, DATA[CUTS[6] :])
            for client in (on_a, on_b):
                await client.until(lambda c=client: bool(c.events("run_complete")), "the run's end")
            assert on_a.ids == on_b.ids == expected_ids()
            assert [f.data for f in on_a.durable] == [f.data for f in on_b.durable]  # byte-identical payloads
            # A late client of the other server resumes by the first one's id.
            async with streaming(b.url, last_event_id=on_a.ids[4]) as late:
                await late.until(lambda: len(late.durable) == 4, "the replay after event 5")
                assert late.ids == expected_ids()[5:]
        # Every route on either process, the same answers.
        async with httpx.AsyncClient(timeout=10) as c:
            for path in ("/api/benchmark", "/api/tasks", "/api/tasks?format=csv", "/api/rerun?target=vm1"):
                ra, rb = await c.get(a.url + path), await c.get(b.url + path)
                assert ra.status_code == rb.status_code == 200, path
                assert ra.content == rb.content, path
            snap = (await c.get(a.url + "/api/benchmark")).json()["targets"]["vm1"]
            assert [r["task_id"] for r in snap["results"]] == [f"t{i}-WOS" for i in range(1, 9)]
            assert snap["run"]["complete"] is not None and snap["progress"]["tasks_completed"] == 8
            for url in (a.url, b.url):
                page = await c.get(url + "/")
                assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            # /metrics: every series labelled by its process; one leader between them.
            ma, mb = (await c.get(a.url + "/metrics")).text, (await c.get(b.url + "/metrics")).text
        owners = {a.hub.node.owner, b.hub.node.owner}  # type: ignore[union-attr]
        assert len(owners) == 2
        for text, hub in ((ma, a.hub), (mb, b.hub)):
            types, samples = parse_metrics(text)
            assert samples and all(f"process={hub.node.owner}" in k for k in samples), text  # type: ignore[union-attr]
            for name in ("trio_sse_process_info", "trio_sse_cluster_leader", "trio_sse_redis_connected",
                         "trio_sse_redis_outages", "trio_sse_lease_acquisitions", "trio_sse_cluster_duplicates_skipped"):
                assert name in types, name  # fmt: skip
            assert samples[f"trio_sse_redis_connected{{process={hub.node.owner},target=vm1}}"] == 1  # type: ignore[union-attr]
            assert samples[f"trio_sse_history_entries{{process={hub.node.owner},target=vm1}}"] == 9  # type: ignore[union-attr]
        lead = leaders(parse_metrics(ma)[1]) | leaders(parse_metrics(mb)[1])
        assert sorted(lead.values()) == [0.0, 1.0], lead  # one follower for the target, cluster-wide


# ------------------------------------------------------------------ failover


async def test_the_follower_is_killed_and_the_other_continues_at_its_byte_offset(
    redisd: RedisD, tmp_path: Path
) -> None:
    log = tmp_path / "normal-0.log"
    log.write_bytes(DATA[: CUTS[1]])
    args = ["--target", f"vm1={log}", "--redis", redisd.url, "--lease", str(LEASE), "--keepalive", "0.3"]
    async with serve_process(tmp_path, args, env={"TRIO_SSE_STALL_AFTER": "0"}) as a:
        await wait_for_leader(a.url)
        async with running_server(settings(redisd, log, LEASE)) as b:
            node = b.hub.node
            assert node is not None
            async with streaming(b.url) as on_b, streaming(a.url) as on_a:
                append(log, DATA[CUTS[1] : CUTS[5]])
                await on_b.until(lambda: len(on_b.durable) == 5, "five tasks on the surviving process")
                await on_a.until(lambda: len(on_a.durable) == 5, "five tasks on the follower's own process")
                ck = await checkpoint(redisd, 4)  # at the start of task 5's record: 4 events before it
                assert DATA[ck.offset - 1 : ck.offset] == b"\n" and ck.offset < CUTS[5]
                assert not node.leading, a.stderr  # process A follows
                a.proc.send_signal(signal.SIGKILL)
                killed = trio.current_time()
                append(log, DATA[CUTS[5] :])  # written while nobody follows
                await on_b.until(lambda: len(on_b.durable) >= 6, "the first event after the kill")
                failover = trio.current_time() - killed
                await on_b.until(lambda: bool(on_b.events("run_complete")), "the run's end")
                await on_a.until(lambda: on_a.ended, "the dead process's stream to end")
                # The new follower resumed at the checkpoint: it never read the bytes before it.
                stats = node.statistics()["vm1"]
                assert (stats.terms, stats.resumed) == (1, 1)
                monitor = node.leading["vm1"]
                assert monitor.statistics().bytes_read == len(DATA) - ck.offset < len(DATA)  # type: ignore[attr-defined]
                # No gap, no duplicate, the same ids as one process reading the whole log.
                assert on_b.ids == expected_ids()
                assert task_ids(on_b) == [f"t{i}-WOS" for i in range(1, 9)]
                done = [json.loads(f.data)["tasks_completed"] for f in on_b.events("progress")]
                assert done == sorted(done)  # progress never went back for this client
                assert failover <= LEASE + 1.0, failover  # SPEC §10: within the lease (+1 s goal)
                # A client of the dead process reconnects to the other and resumes by id.
                async with streaming(b.url, last_event_id=on_a.ids[-1]) as again:
                    await again.until(lambda: len(again.durable) == 4, "the events after the last one it had")
                    assert on_a.ids + again.ids == expected_ids()
            metrics = await scrape_metrics(b.url)
            assert metrics[f"trio_sse_cluster_resumes_total{{process={node.owner},target=vm1}}"] == 1
            assert metrics[f"trio_sse_cluster_leader{{process={node.owner},target=vm1}}"] == 1


def worker_log(worker: int, first: int) -> tuple[bytes, list[int]]:
    """One WAA worker's file (``normal-<w>-<ts>.log``): four tasks from ``first`` and the end;
    and where each task's "Finished" line ends."""
    data = waa_run(4, first=first, end=True).replace(b"Worker 0 ", f"Worker {worker} ".encode())
    ends = (data.index(b"\n", data.index(f"Finished notepad/t{i}-WOS".encode())) + 1 for i in range(first, first + 4))
    cuts = [0, *ends]
    return data, cuts


async def test_the_follower_of_a_glob_is_killed_and_the_other_continues_each_file_at_its_offset(
    redisd: RedisD, tmp_path: Path
) -> None:
    """Issue 14 item 2: a glob target (WAA's worker files) resumes too — each file at its
    own byte offset — instead of being read again from byte 0."""
    logs = [tmp_path / "normal-0-20240506@100000.log", tmp_path / "normal-1-20240506@100001.log"]
    (w0, c0), (w1, c1) = worker_log(0, 1), worker_log(1, 11)
    logs[0].write_bytes(w0[: c0[3]])
    logs[1].write_bytes(w1[: c1[3]])
    pattern = str(tmp_path / "normal-*.log")
    args = ["--target", f"vm1={pattern}", "--redis", redisd.url, "--lease", str(LEASE), "--keepalive", "0.3"]
    async with serve_process(tmp_path, args, env={"TRIO_SSE_STALL_AFTER": "0"}) as a:
        await wait_for_leader(a.url)
        async with running_server(settings(redisd, Path(pattern), LEASE)) as b:
            node = b.hub.node
            assert node is not None
            async with streaming(b.url) as on_b:
                await on_b.until(lambda: len(on_b.durable) == 6, "three tasks of each worker")
                ck = await checkpoint(redisd, 4)
                extra = json.loads(ck.extra)
                assert extra["v"] == 2 and set(extra["heads"]) == {str(p) for p in logs}  # each file's place
                offsets = {lane["path"]: lane["offset"] for lane in extra["seed"]["lanes"]}
                assert all(offsets.values()) and ck.offset == sum(offsets.values())
                assert not node.leading, a.stderr  # process A follows
                a.proc.send_signal(signal.SIGKILL)
                await a.proc.wait()
                ck = await checkpoint(redisd, 4)  # its last (the successor needs the lease first: 1 s)
                append(logs[0], w0[c0[3] :])  # written while nobody follows
                append(logs[1], w1[c1[3] :])
                await on_b.until(lambda: bool(on_b.events("run_complete")), "the run's end")
                stats = node.statistics()["vm1"]
                assert (stats.terms, stats.resumed) == (1, 1)
                # Every id once; every task once; the run's end once.
                assert len(on_b.ids) == len(set(on_b.ids)) == 9
                assert sorted(task_ids(on_b)) == sorted([f"t{i}-WOS" for i in (1, 2, 3, 4, 11, 12, 13, 14)])
                assert len(on_b.events("run_complete")) == 1
                done = [json.loads(f.data)["tasks_completed"] for f in on_b.events("progress")]
                assert done == sorted(done)  # progress never went back for this client
            metrics = await scrape_metrics(b.url)
            total = len(w0) + len(w1)
            assert metrics[f"trio_sse_cluster_resumes_total{{process={node.owner},target=vm1}}"] == 1
            read = metrics[f"trio_sse_log_bytes_read_total{{process={node.owner},target=vm1}}"]
            assert read == total - ck.offset < total  # each file from its offset: nothing before read


async def wait_for_leader(url: str) -> None:
    with trio.fail_after(GUARD):
        while not any(v == 1 for v in leaders(await scrape_metrics(url)).values()):
            await trio.sleep(0.05)  # polling another process


async def test_a_log_replaced_during_the_failover_is_read_from_its_first_byte(redisd: RedisD, tmp_path: Path) -> None:
    log = tmp_path / "normal-0.log"
    log.write_bytes(DATA[: CUTS[5]])
    args = ["--target", f"vm1={log}", "--redis", redisd.url, "--lease", str(LEASE)]
    async with serve_process(tmp_path, args) as a:
        await wait_for_leader(a.url)
        async with running_server(settings(redisd, log, LEASE)) as b:
            node = b.hub.node
            assert node is not None
            async with streaming(b.url) as on_b:
                await on_b.until(lambda: len(on_b.durable) == 5, "five tasks")
                await checkpoint(redisd, 4)
                a.proc.send_signal(signal.SIGKILL)
                other = waa_run(3, first=20, end=True)  # another run over the same path
                log.write_bytes(other)
                await on_b.until(lambda: len(on_b.durable) == 9, "the new run")
                stats = node.statistics()["vm1"]
                assert stats.resumed == 1  # handed the checkpoint …
                assert node.leading["vm1"].statistics().bytes_read == len(other)  # type: ignore[attr-defined]
                assert on_b.ids[5:] == expected_ids(other)  # … which did not fit: a new run, from byte 0
                assert task_ids(on_b)[5:] == ["t20-WOS", "t21-WOS", "t22-WOS"]


# ------------------------------------------------------------------ Redis down, back, empty


async def test_redis_outages_through_the_server(redisd: RedisD, tmp_path: Path) -> None:
    log = tmp_path / "normal-0.log"
    log.write_bytes(DATA[: CUTS[2]])
    async with running_server(settings(redisd, log)) as server:
        node = server.hub.node
        assert node is not None
        owner = node.owner
        async with streaming(server.url) as client:
            await client.until(lambda: len(client.durable) == 2, "two tasks")
            await redisd.stop()  # Redis dies (SIGKILL)
            await client.until(lambda: bool(client.events("error")), "the outage's error event")
            error = json.loads(client.events("error")[0].data)
            assert error["target"] == "vm1" and "paused" in error["message"] and "redis" in error["message"]
            append(log, DATA[CUTS[2] : CUTS[3]])  # the follower reads it; Redis cannot take it now
            kept = len(client.comments)
            await client.until(lambda: len(client.comments) >= kept + 3, "keepalives during the outage")
            assert not client.ended and len(client.events("error")) == 1  # one per outage, not per retry
            metrics = await scrape_metrics(server.url)
            assert metrics[f"trio_sse_redis_outages_total{{process={owner},target=vm1}}"] == 1
            assert metrics[f"trio_sse_redis_connected{{process={owner},target=vm1}}"] == 0
            await redisd.start()  # back, with its data (AOF)
            await client.until(lambda: len(client.durable) == 3, "the task written during the outage")
            # Restarted empty: the follower writes the run again; nobody gets anything twice.
            await redisd.restart_empty()
            await client.until(lambda: len(client.events("error")) == 2, "the second outage's error event")
            append(log, DATA[CUTS[3] : CUTS[4]])
            await client.until(lambda: len(client.durable) == 4, "the next task")
            assert client.ids == expected_ids()[:4] and not client.ended
            # A client that connects now gets the whole run from the refilled Redis.
            await wait_for(lambda: len(server.hub.monitors["vm1"].history) == 4, "the mirror to hold 4 events")
            async with streaming(server.url) as fresh:
                await fresh.until(lambda: len(fresh.durable) == 4, "the replay")
                assert fresh.ids == client.ids
        metrics = await scrape_metrics(server.url)
        assert metrics[f"trio_sse_redis_outages_total{{process={owner},target=vm1}}"] == 2
        assert metrics[f"trio_sse_redis_connected{{process={owner},target=vm1}}"] == 1


# ------------------------------------------------------------------ hypercorn -w 2


async def per_worker(url: str, want: int = 2) -> dict[str, dict[str, float]]:
    """/metrics of each worker behind one port: fresh connections until ``want`` processes
    answered (the kernel hands each connection to one of them)."""
    seen: dict[str, dict[str, float]] = {}
    with trio.fail_after(GUARD):
        while len(seen) < want:
            async with httpx.AsyncClient(timeout=10) as c:
                samples = parse_metrics((await c.get(url + "/metrics")).text)[1]
            owner = next(k for k in samples if k.startswith("trio_sse_process_info{")).split("process=")[1].rstrip("}")
            seen[owner] = samples
    return seen


def value(samples: dict[str, float], name: str, owner: str, target: str | None = None) -> float:
    labels = f"process={owner}" + (f",target={target}" if target else "")
    return samples.get(f"{name}{{{labels}}}", 0.0)


async def serving_worker(url: str, before: dict[str, float]) -> str:
    """The worker whose ``trio_sse_streams_total`` went up since ``before`` (the stream just
    opened: ours are the only streams)."""
    with trio.fail_after(GUARD):
        while True:
            for owner, samples in (await per_worker(url)).items():
                if value(samples, "trio_sse_streams_total", owner) > before.get(owner, 0):
                    return owner


async def streams_opened(url: str) -> dict[str, float]:
    return {o: value(s, "trio_sse_streams_total", o) for o, s in (await per_worker(url)).items()}


async def test_hypercorn_with_two_workers_is_one_service(redisd: RedisD, tmp_path: Path) -> None:
    log = tmp_path / "normal-0.log"
    log.write_bytes(DATA[: CUTS[2]])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = child_env({"TRIO_SSE_TARGET": f"vm1={log}", "TRIO_SSE_REDIS": redisd.url})  # the default lease
    hypercorn = os.path.join(os.path.dirname(sys.executable), "hypercorn")
    argv = [hypercorn, "-k", "trio", "-w", "2", "--bind", f"127.0.0.1:{port}", "trio_sse.asgi:app"]
    stderr_path = tmp_path / "hypercorn.stderr"
    with stderr_path.open("wb") as stderr:
        async with trio.open_nursery() as n:
            proc = await n.start(lambda task_status: trio.run_process(
                argv, stdout=subprocess.DEVNULL, stderr=stderr, check=False, env=env, task_status=task_status))  # fmt: skip
            try:
                await wait_healthy(url, proc, stderr_path=stderr_path)
                workers = await per_worker(url)
                assert len(workers) == 2
                # One follower cluster-wide (a local target: one reader of the file, as there
                # would be one SSH connection).
                with trio.fail_after(GUARD):
                    while sum(value(s, "trio_sse_cluster_leader", o, "vm1") for o, s in workers.items()) != 1:
                        workers = await per_worker(url)
                # A stream on each worker.
                clients: dict[str, Client] = {}
                async with trio.open_nursery() as streams:
                    with trio.fail_after(GUARD):
                        while len(clients) < 2:
                            before = await streams_opened(url)
                            client = Client(url)
                            await streams.start(client.run)
                            owner = await serving_worker(url, before)
                            if owner in clients:
                                continue  # both on one worker: keep it open, try again
                            clients[owner] = client
                    one, two = clients.values()
                    append(log, DATA[CUTS[2] :])
                    for client in (one, two):
                        await client.until(lambda c=client: bool(c.events("run_complete")), "the run's end")
                    assert one.ids == two.ids == expected_ids()
                    # Resume by Last-Event-ID on the other worker than the one the id came from.
                    first_owner = next(o for o, c in clients.items() if c is one)
                    with trio.fail_after(GUARD):
                        while True:
                            before = await streams_opened(url)
                            again = Client(url, last_event_id=one.ids[2])
                            await streams.start(again.run)
                            if await serving_worker(url, before) != first_owner:
                                break
                    await again.until(lambda: len(again.durable) == 6, "the events after the third")
                    assert again.ids == expected_ids()[3:]
                    streams.cancel_scope.cancel()
                workers = await per_worker(url)
                assert sum(value(s, "trio_sse_cluster_leader", o, "vm1") for o, s in workers.items()) == 1
            finally:
                proc.send_signal(signal.SIGTERM)
                with trio.move_on_after(15):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
    err = stderr_path.read_text(errors="replace")
    assert "Traceback" not in err, err
