"""End to end over SSH: a real trio-sse server (Hypercorn on 127.0.0.1:0) whose targets are
followed over a real OpenSSH ``sshd`` on loopback (tests/sshd.py), read by httpx-sse clients.

The "remote" is this machine: the benchmark log is written by the simulator on this side,
sshd's sessions run the real ``tail``, ``pgrep``, ``curl`` and the stand-in ``docker``
(tests/bin/docker). Faults are real too: sshd killed and restarted, a port with nothing
listening, a known_hosts with another key, a key sshd does not accept, a container whose
every command hangs.

Waiting is event driven (what the clients saw, the simulator's ``done``); where only the
outside world can tell (a remote process, a connection count) a condition is polled under a
bounded ``fail_after``. Fault tests give the source short back-offs (``FAST``) through
``serve(sources=...)``; the plain paths go through ``Settings`` → ``hub.make_source``.

Note: ``error`` events are not replayed to a client that connects during an outage (it gets
``status.connected=false``); tests that need to *see* the first failure's message hold the
first connection attempt in ``Gate`` (a TCP relay) until the client is subscribed.
"""

from __future__ import annotations

import os
import shlex
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from sshd import FAST
from fakehttp import http_200, serve_http
from httpx_sse import aconnect_sse

from trio_sse.cli import build_parser, main, settings_from_args
from trio_sse.config import Settings, SSHSpec, TargetSpec, parse_target
from trio_sse.errors import ConfigError
from trio_sse.hub import make_source
from trio_sse.server import Running
from trio_sse.sources.simulate import SimTask
from trio_sse.sources.ssh import SSHOptions, SSHSource
from trio_sse.testing import free_port, running_server, simulated_run
from trio_sse.waalog import DOCKUR_BOOT_SEQUENCE, vm_ready

GUARD = 20  # seconds: a bound on any wait here, never a pace
STREAM_TIMEOUT = httpx.Timeout(10, read=None)
KINDS = ("status", "progress", "task_complete", "run_complete", "error")
RESULT_KEYS = ("task_id", "success", "score", "domain", "error")


# --------------------------------------------------------------------------- helpers


def expected(tasks: Sequence[SimTask]) -> list[dict[str, Any]]:
    return [
        {"task_id": t.task_id, "success": t.success, "score": t.score, "domain": t.domain, "error": t.error}
        for t in tasks
    ]


def results(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: e[k] for k in RESULT_KEYS} for e in events]


def ssh_spec(sshd, **overrides: Any) -> SSHSpec:  # type: ignore[no-untyped-def]
    fields: dict[str, Any] = dict(
        host=sshd.host, user=sshd.user, port=sshd.port, identity=str(sshd.client_key), known_hosts=str(sshd.known_hosts)
    )
    fields.update(overrides)
    return SSHSpec(**fields)


def ssh_target(  # type: ignore[no-untyped-def]
    sshd, log: str | Path, *, name: str = "vm", ssh: SSHSpec | None = None, **fields: Any
) -> TargetSpec:
    fields.setdefault("process_pattern", None)
    return TargetSpec(name=name, log=str(log), ssh=ssh or ssh_spec(sshd), **fields)


@asynccontextmanager
async def serving(*targets: TargetSpec, options: SSHOptions = FAST) -> AsyncIterator[Running]:
    """A real server on the targets; SSH sources get ``options`` (short back-offs)."""
    sources = [SSHSource(t, options=options) if t.ssh else make_source(t) for t in targets]
    async with running_server(Settings(port=0, targets=targets), sources=sources) as server:
        yield server


def source_of(server: Running, name: str = "vm") -> SSHSource:
    source = server.hub.monitors[name].source
    assert isinstance(source, SSHSource)
    return source


class Stream:
    """One SSE client reading in the background; tests wait on what it has seen."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.ids: list[str] = []  # the SSE ids (durable events only), in order
        self._changed = trio.Event()

    def of(self, kind: str, target: str | None = None) -> list[dict[str, Any]]:
        return [d for k, d in self.events if k == kind and (target is None or d["target"] == target)]

    def last(self, target: str | None = None) -> dict[str, Any]:
        """The newest status seen (``{}`` before the first)."""
        statuses = self.of("status", target)
        return statuses[-1] if statuses else {}

    def after(self, index: int, kind: str) -> list[dict[str, Any]]:
        return [d for k, d in self.events[index:] if k == kind]

    async def until(self, pred: Callable[[], bool], guard: float = GUARD) -> None:
        try:
            with trio.fail_after(guard):
                while not pred():
                    await self._changed.wait()
        except trio.TooSlowError:
            seen = "\n".join(f"  {k}: {d}" for k, d in self.events[-30:])
            raise AssertionError(f"not seen within {guard} s; the last events were:\n{seen}") from None

    async def read(self, client: httpx.AsyncClient, params: dict[str, str], *, task_status: trio.TaskStatus[None]) -> None:
        async with aconnect_sse(client, "GET", "/api/benchmark-sse", params=params) as source:
            source.response.raise_for_status()
            task_status.started()  # headers are sent once the stream has subscribed
            async for sse in source.aiter_sse():
                if sse.event in KINDS:  # (httpx-sse reports the bare `retry:` block as "message")
                    self.events.append((sse.event, sse.json()))
                    if sse.event in ("task_complete", "run_complete"):  # (httpx-sse repeats the
                        self.ids.append(sse.id)  # last id on events without one, as browsers do)
                    self._changed.set()
                    self._changed = trio.Event()


@asynccontextmanager
async def streams(url: str, count: int = 1, **params: str) -> AsyncIterator[list[Stream]]:
    params.setdefault("interval", "1")
    limits = httpx.Limits(max_connections=count + 5)
    async with httpx.AsyncClient(base_url=url, timeout=STREAM_TIMEOUT, limits=limits) as client:
        async with trio.open_nursery() as nursery:
            out = [Stream() for _ in range(count)]
            for s in out:
                await nursery.start(s.read, client, params)
            yield out
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def stream(url: str, **params: str) -> AsyncIterator[Stream]:
    async with streams(url, 1, **params) as (one,):
        yield one


async def eventually(pred: Callable[[], bool]) -> None:
    """Poll a condition only the outside world can tell (bounded)."""
    with trio.fail_after(GUARD):
        while not pred():
            await trio.sleep(0.02)  # polling interval, not a wait for something to happen


def processes() -> dict[int, str]:
    """Live processes on this machine (the "remote"): pid → command line."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found[int(entry)] = raw.replace(b"\0", b" ").decode("utf-8", "replace")
    return found


def remote_procs(marker: str) -> list[str]:
    """Command lines of live processes containing ``marker``."""
    return [cmd for cmd in processes().values() if marker in cmd]


def remote_tails(log: Path) -> set[int]:
    """Pids of the ``tail`` processes following ``log``."""
    return {pid for pid, cmd in processes().items() if cmd.startswith("tail -c +") and cmd.endswith(f" -- {log} ")}


def our_connections_to(port: int) -> int:
    """ESTABLISHED TCP connections from this process to 127.0.0.1:``port`` (``ss -tnp``, read
    from /proc: sockets in /proc/net/tcp whose inode is one of our file descriptors)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        if state == "01" and int(remote.split(":")[1], 16) == port and inode in inodes:
            count += 1
    return count


class Gate:
    """A TCP relay in front of sshd that holds every connection until ``open()`` — a host
    whose network comes up after the monitor started. Lets a client subscribe before the
    first SSH attempt is answered (error events are not replayed to late subscribers)."""

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.port = 0
        self.accepted = 0
        self.opened = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._relay, listeners)

    async def _relay(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        async with client:
            await self.opened.wait()
            backend = await trio.open_tcp_stream("127.0.0.1", self.backend_port)
            async with backend, trio.open_nursery() as nursery:

                async def pipe(a: trio.SocketStream, b: trio.SocketStream) -> None:
                    try:
                        while data := await a.receive_some(65536):
                            await b.send_all(data)
                    except trio.BrokenResourceError:
                        pass
                    nursery.cancel_scope.cancel()

                nursery.start_soon(pipe, client, backend)
                nursery.start_soon(pipe, backend, client)

    def known_hosts(self, path: Path, host_key_pub: Path) -> Path:
        kind, blob = host_key_pub.read_text().split()[:2]
        path.write_text(f"[127.0.0.1]:{self.port} {kind} {blob}\n")
        return path


async def serve_waa_probe(answer: bytes, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """WAA's /probe answering ``answer`` (reached by curl on the remote)."""
    await serve_http(http_200(answer), task_status=task_status)


def cli_settings(argv: list[str]) -> Settings:
    return settings_from_args(build_parser({}).parse_args(["serve", *argv]), {})


# --------------------------------------------------------------------------- command line → targets


def test_ssh_options_make_an_ssh_target(tmp_path: Path) -> None:
    key, known = tmp_path / "id", tmp_path / "known"
    key.write_text("k")
    known.write_text("h")
    s = cli_settings(
        ["--ssh", "azureuser@20.1.2.3:2222", "--identity", str(key), "--known-hosts", str(known),
         "--container", "winarena", "--log", "/tmp/waa.log", "--probe-url", "http://20.20.20.21:5000/probe"]
    )
    (t,) = s.targets
    assert t.ssh == SSHSpec("20.1.2.3", "azureuser", 2222, str(key), str(known), True)
    assert (t.name, t.log, t.container, t.log_location) == ("remote", "/tmp/waa.log", "winarena", "container")
    assert (t.probe_url, t.vnc_url) == ("http://20.20.20.21:5000/probe", "http://20.1.2.3:8006")
    assert t.process_pattern == "python.*run.py"
    t = cli_settings(["--ssh", "h", "--container", "c", "--log-location", "stdout", "--vnc-url", "http://v:1"]).targets[0]
    assert (t.ssh.port, t.ssh.user, t.log_location, t.vnc_url) == (22, None, "stdout", "http://v:1")
    t = cli_settings(["--ssh", "[::1]:2200", "--insecure-no-host-key-check"]).targets[0]
    assert (t.ssh.host, t.ssh.port, t.ssh.verify_host_key, t.vnc_url) == ("::1", 2200, False, "http://[::1]:8006")


def test_ssh_target_urls_and_toml(tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("k")
    t = parse_target(
        f"vm1=ssh://bob@host1:2201/results/logs/normal-%2A.log?container=waa&log_location=host"
        f"&probe=http://10.0.0.5:5000/probe&vnc=http://host1:9000&identity={key}&known_hosts={key}"
    )
    assert t.ssh == SSHSpec("host1", "bob", 2201, str(key), str(key), True)
    assert (t.log, t.container, t.log_location) == ("/results/logs/normal-*.log", "waa", "host")
    assert (t.probe_url, t.vnc_url) == ("http://10.0.0.5:5000/probe", "http://host1:9000")
    cfg = tmp_path / "t.toml"
    cfg.write_text(
        f'identity = "{key}"\n[[targets]]\nname = "a"\nssh = "u@h1:2222"\ncontainer = "w"\nlog_location = "stdout"\n'
        '[[targets]]\nname = "b"\nhost = "h2"\nuser = "x"\nprobe = "http://p:1/probe"\n'
    )
    a, b = cli_settings(["--config", str(cfg)]).targets
    assert a.ssh == SSHSpec("h1", "u", 2222, str(key), None, True)  # the top-level identity is the default
    assert (a.container, a.log_location, a.vnc_url) == ("w", "stdout", "http://h1:8006")
    assert (b.ssh.display, b.probe_url, b.log_location) == ("x@h2", "http://p:1/probe", "host")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--target", "a=ssh://host:0/x"], "port must be from 1 to 65535"),
        (["--target", "a=ssh://host:99999/x"], "port must be from 1 to 65535"),
        (["--target", "a=ssh://u:secret@host/x"], "passwords are not supported"),
        (["--target", "a=ssh://host/x?identity="], "identity must not be empty"),
        (["--target", "a=ssh://host/x?container=a%20b"], "container name must be"),
        (["--target", "a=ssh://host/x?probe=ftp://x"], "probe URL must start with http"),
        (["--ssh", "[::1"], "[user@]host[:port]"),
        (["--ssh", "h:22:33"], "[user@]host[:port]"),
        (["--ssh", "h;rm", "--log", "/x"], "[user@]host[:port]"),
        (["--ssh", "h", "--identity", "/nonexistent/id_ed25519"], "identity file '/nonexistent/id_ed25519' does not exist"),
        (["--ssh", "h", "--known-hosts", "/nonexistent/kh"], "known_hosts file '/nonexistent/kh' does not exist"),
        (["--ssh", "h", "--container=-rm"], "container name must be"),
        (["--ssh", "h", "--log-location", "stdout"], "needs a container name"),
    ],
)
def test_ssh_junk_stops_start_up_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    assert main(["serve", "--port", "0", *argv], env={}) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# --------------------------------------------------------------------------- streaming


@pytest.mark.sshd
async def test_remote_run_streams_end_to_end(sshd, tmp_path: Path) -> None:
    log = tmp_path / "waa_benchmark.log"
    # Settings alone: the hub makes the SSHSource (default options), as `trio-sse serve --ssh` does.
    settings = Settings(port=0, targets=(ssh_target(sshd, log),))
    async with running_server(settings) as server, stream(server.url) as s:
        async with simulated_run(log, tasks=5, step_seconds=0.01) as run:
            await s.until(lambda: bool(s.of("run_complete")))
        assert results(s.of("task_complete")) == expected(run.expected)
        (done,) = s.of("run_complete")
        assert (done["tasks_completed"], done["total_tasks"], done["target"]) == (5, 5, "vm")
        assert done["tasks_passed"] == sum(t.success for t in run.expected)
        statuses = s.of("status")
        # A healthy link is never reported down, and the VNC link defaults to the SSH host.
        assert statuses and all(st["connected"] for st in statuses), statuses
        assert statuses[-1]["probe"]["vnc_url"] == "http://127.0.0.1:8006"
        assert all(d["target"] == "vm" for _, d in s.events)
        # run_complete exactly once: a new client's replay holds the run once, then the state.
        async with stream(server.url) as late:
            await late.until(lambda: bool(late.of("progress")))
            assert len(late.of("run_complete")) == 1
            assert results(late.of("task_complete")) == expected(run.expected)
        stats = source_of(server).statistics()
        assert stats.connections_opened == 1 and stats.outages == 0 and stats.connected


@pytest.mark.sshd
async def test_sshd_killed_mid_run_one_error_then_resume_exactly(sshd, tmp_path: Path) -> None:
    log = tmp_path / "waa_benchmark.log"
    async with serving(ssh_target(sshd, log)) as server, stream(server.url) as s:
        source = source_of(server)
        async with simulated_run(log, tasks=8, step_seconds=0.03) as run:
            await s.until(lambda: len(s.of("task_complete")) >= 2)
            await sshd.stop()
            await s.until(lambda: bool(s.of("error")) and s.last()["connected"] is False)
            down_at = len(s.events)
            (error,) = s.of("error")
            assert error["message"].startswith(f"ssh {sshd.user}@127.0.0.1:{sshd.port}: ") and error["target"] == "vm"
            # Retries go on during the outage without another error: let a few more attempts
            # fail (the port accepts and drops them), then bring sshd back on the same port.
            attempts = source.statistics().attempts
            listeners = await trio.open_tcp_listeners(sshd.port, host="127.0.0.1")
            async with trio.open_nursery() as nursery:

                async def refuse(conn: trio.SocketStream) -> None:
                    await conn.aclose()

                nursery.start_soon(trio.serve_listeners, refuse, listeners)
                await eventually(lambda: source.statistics().attempts >= attempts + 3)
                nursery.cancel_scope.cancel()
            for listener in listeners:
                await listener.aclose()
            assert len(s.of("error")) == 1 and server.hub.monitors["vm"].statistics().outages == 1
            await sshd.start()
            await s.until(lambda: any(st["connected"] for st in s.after(down_at, "status")))
            await s.until(lambda: bool(s.of("run_complete")))
            assert run.done.is_set()
        ids = [e["task_id"] for e in s.of("task_complete")]
        assert len(ids) == len(set(ids))
        assert results(s.of("task_complete")) == expected(run.expected)  # none lost, none repeated
        assert len(s.of("run_complete")) == 1 and len(s.of("error")) == 1
        stats = source.statistics()
        assert (stats.connections_opened, stats.reconnects, stats.outages) == (2, 1, 1)


@pytest.mark.sshd
async def test_connection_refused_at_start_server_still_serves(sshd, tmp_path: Path) -> None:
    """No stream client until the host is up: the polling fallback (/api/benchmark) must tell
    the truth by itself, and without subscribers the next probe is a minute away."""
    log = tmp_path / "waa_benchmark.log"
    # The log exists from the start: a missing log is one error event of its own (not this
    # test's matter), and whether the follower looked before the simulated run wrote it was a race.
    log.touch()
    await sshd.stop()  # nothing listens on its port: every attempt is refused
    async with serving(ssh_target(sshd, log)) as server, httpx.AsyncClient(base_url=server.url) as c:
        source = source_of(server)

        async def connected() -> bool:
            return (await c.get("/api/benchmark")).json()["targets"]["vm"]["status"]["connected"]

        await eventually(lambda: source.statistics().attempts >= 5)  # retried, one outage
        assert source.statistics().outages == 1 and server.hub.monitors["vm"].statistics().outages == 1
        assert await connected() is False
        assert (await c.get("/healthz")).status_code == 200 and (await c.get("/metrics")).status_code == 200
        # The host comes up: connected at once (not at the next probe), and the run streams.
        await sshd.start()
        with trio.fail_after(GUARD):
            while not await connected():
                await trio.sleep(0.02)  # polling interval of this check
        async with stream(server.url) as s:
            async with simulated_run(log, tasks=2, step_seconds=0) as run:
                await s.until(lambda: bool(s.of("run_complete")))
            assert results(s.of("task_complete")) == expected(run.expected)
            assert s.of("error") == [] and all(st["connected"] for st in s.of("status"))


@pytest.mark.sshd
@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        ("host key", "host key of 127.0.0.1 not verified"),
        ("client key", "authentication failed"),
    ],
)
async def test_wrong_host_key_or_refused_login_is_one_clear_error(sshd, tmp_path: Path, fault: str, needle: str) -> None:
    gate = Gate(sshd.port)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(gate.serve)
        host_key = sshd.tmp / ("other_host_ed25519.pub" if fault == "host key" else "host_ed25519.pub")
        known = gate.known_hosts(tmp_path / "gate_known_hosts", host_key)
        identity = sshd.wrong_key if fault == "client key" else sshd.client_key
        spec = ssh_spec(sshd, port=port, known_hosts=str(known), identity=str(identity))
        async with serving(ssh_target(sshd, tmp_path / "x.log", ssh=spec)) as server, stream(server.url) as s:
            await eventually(lambda: gate.accepted >= 1)  # the first attempt waits at the gate
            gate.opened.set()
            await s.until(lambda: bool(s.of("error")))
            (error,) = s.of("error")
            assert error["message"].startswith(f"ssh {sshd.user}@127.0.0.1:{port}: ") and needle in error["message"]
            if fault == "host key":
                assert str(known) in error["message"]  # which file to fix
            await s.until(lambda: s.last()["connected"] is False)
            # Retried (slowly, never hammered), still one error.
            await eventually(lambda: gate.accepted >= 3)
            assert len(s.of("error")) == 1 and server.hub.monitors["vm"].statistics().outages == 1
            assert source_of(server).statistics().connections_opened == 0
        nursery.cancel_scope.cancel()


@pytest.mark.sshd
async def test_remote_log_missing_then_appearing_then_replaced_by_a_new_run(sshd, tmp_path: Path) -> None:
    log = tmp_path / "waa_benchmark.log"
    async with serving(ssh_target(sshd, log)) as server, stream(server.url) as s:
        await eventually(lambda: bool(remote_procs(f"-F -s 0.1 -- {log}")))  # waiting for the file
        async with simulated_run(log, tasks=2, step_seconds=0, seed=1) as first:
            await s.until(lambda: bool(s.of("run_complete")))
        assert results(s.of("task_complete")) == expected(first.expected)
        missing = [{"message": f"log not found: {log} (waiting for it to appear)", "target": "vm"}]
        assert s.of("error") == missing and s.last()["connected"] is True  # said once; no outage
        first_ids = list(s.ids)
        mark = len(s.events)
        # The log is truncated and a new run written into it. The truncation is seen (a new
        # tail on the remote) before the new run's bytes come, so none of them can be read as
        # the old file's (see the README's known limits for a truncate-and-write race).
        tails = remote_tails(log)
        log.write_bytes(b"")
        await eventually(lambda: bool(remote_tails(log)) and not remote_tails(log) & tails)
        async with simulated_run(log, tasks=3, step_seconds=0, seed=2) as second:
            await s.until(lambda: bool(s.after(mark, "run_complete")))
        assert results(s.after(mark, "task_complete")) == expected(second.expected)  # only the new run's
        new_ids = s.ids[len(first_ids) :]
        runs = {i.rsplit("-", 1)[0] for i in new_ids}  # "vm:<run>-<n>": one new run, its own ids
        assert len(runs) == 1 and runs.isdisjoint(i.rsplit("-", 1)[0] for i in first_ids), (first_ids, new_ids)
        new_run = next(iter(runs)).split(":", 1)[1]
        await s.until(lambda: s.of("progress")[-1]["run"] == new_run)  # progress names it too
        assert s.of("error") == missing and all(st["connected"] for st in s.of("status"))
        assert source_of(server).statistics().outages == 0


@pytest.mark.sshd
async def test_hung_probe_does_not_delay_task_delivery(sshd, tmp_path: Path) -> None:
    log = tmp_path / "waa_benchmark.log"
    sshd.container("waa")
    hang = sshd.docker_dir / "waa" / "hang"
    hang.touch()  # every docker command on "waa" hangs: pgrep, inspect, logs, curl
    options = SSHOptions(backoff_first=0.05, backoff_cap=0.2, command_timeout=10.0)
    target = ssh_target(sshd, log, container="waa", process_pattern="run.py")  # the log itself is on the host
    async with serving(target, options=options) as server, stream(server.url, interval="5") as s:
        # A probe is hung now (the monitor gives up on it after its 5 s interval).
        await eventually(lambda: len(remote_procs(str(hang))) == 4)
        start = trio.current_time()
        async with simulated_run(log, tasks=3, step_seconds=0) as run:
            await s.until(lambda: bool(s.of("run_complete")))
        elapsed = trio.current_time() - start
        assert results(s.of("task_complete")) == expected(run.expected)
        assert remote_procs(str(hang)), "the hung probe should still be running"
        assert elapsed < 2.0, elapsed
        assert source_of(server).statistics().channels_open >= 2  # the follow + the hung probe


@pytest.mark.sshd
async def test_status_phase_and_waa_probe_are_truthful(sshd, tmp_path: Path) -> None:
    lines = {phase: text for phase, text in DOCKUR_BOOT_SEQUENCE if phase}
    box = sshd.container("waa", logs=f"{lines['building']}\n{lines['booting']}\nnoise\n".encode())
    async with trio.open_nursery() as nursery:
        waa_scope = trio.CancelScope()

        async def waa(task_status: trio.TaskStatus[int]) -> None:
            with waa_scope:
                await serve_waa_probe(b'{"message": "Service is operational"}', task_status=task_status)

        waa_port = await nursery.start(waa)
        (tmp_path / "x.log").touch()  # (a missing log is reported in probe.status too: not this test's matter)
        target = ssh_target(sshd, tmp_path / "x.log", container="waa", log_location="host",
                            probe_url=f"http://127.0.0.1:{waa_port}/probe")
        async with serving(target) as server, stream(server.url) as s:
            last = s.last
            await s.until(lambda: last().get("phase") == "booting")
            await s.until(lambda: last()["waa_ready"] and last()["probe"]["status"] == "ready")
            for phase, line in [("oobe", lines["oobe"]), ("ready", vm_ready())]:
                with (box / "logs").open("a") as f:
                    f.write(line + "\n")
                await s.until(lambda: last()["phase"] == phase)
            waa_scope.cancel()  # the WAA server goes away: curl is refused
            await s.until(lambda: not last()["waa_ready"])
            assert last()["probe"]["status"] == "Not responding" and last()["connected"] is True
            phases = [st["phase"] for st in s.of("status")]
            seen = [p for i, p in enumerate(phases) if p != "unknown" and (i == 0 or p != phases[i - 1])]
            assert seen == ["booting", "oobe", "ready"], phases
        nursery.cancel_scope.cancel()


@pytest.mark.sshd
@pytest.mark.parametrize("location", ["container", "stdout"])
async def test_log_inside_the_container_or_its_stdout(sshd, tmp_path: Path, location: str) -> None:
    box = sshd.container("waa")
    log = tmp_path / "in-container.log" if location == "container" else box / "logs"
    target = ssh_target(sshd, log if location == "container" else "/unused", container="waa", log_location=location)
    async with serving(target) as server, stream(server.url) as s:
        async with simulated_run(log, tasks=3, step_seconds=0.01) as run:
            await s.until(lambda: bool(s.of("run_complete")))
        assert results(s.of("task_complete")) == expected(run.expected)
        assert s.of("error") == [] and s.last()["connected"] is True
        # What runs on the remote: tail inside `docker exec -i waa …`, or `docker logs -f waa`.
        follower = f"tail -c +1 -F -s 0.1 -- {log}" if location == "container" else "docker logs -f waa"
        assert remote_procs(follower)


# --------------------------------------------------------------------------- several targets, many clients


@pytest.mark.sshd
async def test_two_targets_one_down_the_healthy_one_streams(sshd, tmp_path: Path) -> None:
    log = tmp_path / "good.log"
    good = ssh_target(sshd, log, name="good")
    down = ssh_target(sshd, tmp_path / "down.log", name="down", ssh=ssh_spec(sshd, port=free_port()))
    async with serving(good, down) as server:
        async with stream(server.url) as s, stream(server.url, target="good") as only:
            async with simulated_run(log, tasks=4, step_seconds=0.01) as run:
                await s.until(lambda: bool(s.of("run_complete")))
                await only.until(lambda: bool(only.of("run_complete")))
            await s.until(lambda: any(not st["connected"] for st in s.of("status", "down")))
        assert all(d.get("target") in ("good", "down") for _, d in s.events)
        assert results(s.of("task_complete", "good")) == expected(run.expected)
        assert s.of("task_complete", "down") == [] and s.of("status", "good")[-1]["connected"] is True
        assert {d["target"] for _, d in only.events} == {"good"}
        assert results(only.of("task_complete")) == expected(run.expected)
        async with httpx.AsyncClient(base_url=server.url) as c:
            assert (await c.get("/api/benchmark-sse", params={"target": "nope"})).status_code == 404


@pytest.mark.sshd
async def test_fifty_clients_share_one_connection_and_the_same_remote_commands(sshd, tmp_path: Path) -> None:
    """One SSH connection (our counter, our process's sockets, sshd's per-connection
    processes) and as many remote commands with 50 clients as with 1. What is compared: the
    source's ``commands_run`` while the simulator writes the same run (same plan, same pace,
    about 2.5 s) once with 1 client and once with 50, all asking for 1 s updates; probes go at
    the fastest interval asked for, so both windows hold the same probes (4 commands each:
    pgrep, inspect, logs, curl) give or take one, and the same surveys of the log's files
    (1 command every ``glob_interval``, and when a tail reports something) give or take one.
    (Without sharing, 50 clients would be 50 follows and 50 times the probes.)"""
    log = tmp_path / "waa_benchmark.log"
    log.touch()
    sshd.container("waa", logs=b"Booting Windows\n")
    target = ssh_target(sshd, log, container="waa", process_pattern=f"run.py-{uuid.uuid4().hex}")
    async with serving(target) as server:
        source = source_of(server)

        async def window(clients: list[Stream]) -> int:
            if log.stat().st_size:  # start from an empty log, its truncation already seen
                tails = remote_tails(log)
                log.write_bytes(b"")
                await eventually(lambda: bool(remote_tails(log)) and not remote_tails(log) & tails)
            marks = [len(c.events) for c in clients]  # (later clients got the last run replayed)
            before = source.statistics().commands_run
            async with simulated_run(log, tasks=4, step_seconds=0.1, seed=3) as run:
                await run.done.wait()
                used = source.statistics().commands_run - before
                for c, mark in zip(clients, marks):
                    await c.until(lambda c=c, mark=mark: bool(c.after(mark, "run_complete")))
            for c, mark in zip(clients, marks):
                assert results(c.after(mark, "task_complete")) == expected(run.expected)
            return used

        # Steady state first: the follow is running and the first probe has come and gone.
        await eventually(lambda: bool(remote_tails(log)))
        await eventually(lambda: source.statistics().commands_run >= 5 and source.statistics().channels_open == 1)
        async with stream(server.url) as one:
            with_one = await window([one])
        async with streams(server.url, 50) as fifty:
            await eventually(lambda: server.hub.monitors["vm"].subscriber_count == 50)  # the 1 has left
            with_fifty = await window(fifty)
            assert source.statistics().connections_opened == 1
            assert our_connections_to(sshd.port) == 1
            assert sshd.connections() == 1
        assert abs(with_fifty - with_one) <= 4 + 1, (with_one, with_fifty)
        assert with_fifty < 50, (with_one, with_fifty)
        # The two connection counts can tell: a second source is a second connection.
        other = SSHSource(target, options=FAST)
        async with trio.open_nursery() as nursery:
            await nursery.start(other.run)
            await eventually(lambda: other.statistics().connected)
            assert (our_connections_to(sshd.port), sshd.connections()) == (2, 2)
            nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- shell quoting


@pytest.mark.sshd
async def test_hostile_log_path_from_the_command_line_runs_nothing(sshd, tmp_path: Path) -> None:
    pwned = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    evil = f"x; touch {pwned}"
    try:
        settings = cli_settings(
            ["--ssh", sshd.address, "--identity", str(sshd.client_key), "--known-hosts", str(sshd.known_hosts),
             "--port", "0", "--log", evil, "--probe-url", f"http://127.0.0.1:1/$(touch${{IFS}}{pwned})",
             "--db", str(tmp_path / "history.sqlite3")]  # (its default path is in $HOME: not from a test)
        )
        assert settings.targets[0].log == evil
        async with running_server(settings) as server, stream(server.url, target="remote") as s:
            source = source_of(server, "remote")
            await s.until(lambda: s.last().get("connected") is True)
            # The follow runs (it waits for a file literally named "x; touch …", one quoted
            # word on the remote) and a whole probe (pgrep + curl) has come and gone.
            await eventually(lambda: bool(remote_procs(f"while [ ! -f {shlex.quote(evil)} ]")))
            await eventually(lambda: source.statistics().commands_run >= 3 and source.statistics().channels_open == 1)
            await s.until(lambda: bool(s.of("error")))
            assert s.of("task_complete") == []
            assert s.of("error") == [{"message": f"log not found: {evil} (waiting for it to appear)", "target": "remote"}]
        assert not pwned.exists()
    finally:
        pwned.unlink(missing_ok=True)


def test_make_source_builds_an_ssh_source() -> None:
    source = make_source(TargetSpec(name="vm", log="/x.log", ssh=SSHSpec("h", "u")))
    assert isinstance(source, SSHSource) and source.description == "u@h:22:/x.log"
    with pytest.raises(ConfigError, match="container name"):
        make_source(TargetSpec(name="vm", log="/x.log", ssh=SSHSpec("h"), container="-x"))
