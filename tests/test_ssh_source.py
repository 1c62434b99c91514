"""SSHSource against a real OpenSSH sshd on loopback (tests/sshd.py), plus its pure parts.

The "remote" is this machine: the test writes the log, sshd's sessions run the real ``tail``,
``pgrep``, ``curl`` and the stand-in ``docker`` (tests/bin/docker). Waiting is event driven
where the code under test gives an event (items on the follow channel); where only the outside
world can tell (a remote process gone, a counter), a condition is polled under a bounded
``fail_after``.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import trio
from sshd import FAST
from fakehttp import http_200, serve_http

from trio_sse.config import SSHSpec, TargetSpec
from trio_sse.errors import ConfigError
from trio_sse.sources import LogBytes, LogItem, LogMissing, LogReset, SourceDown, SourceUp
from trio_sse.sources.ssh import SSHOptions, SSHSource
from trio_sse.sources.ssh.commands import Check, FileState, RemoteCommands, Survey, _tail_note, backoff_delay, parse_survey
from trio_sse.sources.workers import Match

GUARD = 20  # seconds: a bound on any wait here, never a pace
# The follower looks at the log's files every 0.1 s (new matches, rewrites), not every 5 s.
GLOB = replace(FAST, glob_interval=0.1)


# --------------------------------------------------------------------------- helpers


class Collected:
    """Drains a follow channel; ``until(pred)`` waits for the items to satisfy ``pred``."""

    def __init__(self) -> None:
        self.items: list[LogItem] = []
        self._changed = trio.Event()

    async def pump(self, receive: trio.MemoryReceiveChannel[LogItem]) -> None:
        async for item in receive:
            self.items.append(item)
            self._changed.set()
            self._changed = trio.Event()

    async def until(self, pred: Callable[[], bool]) -> None:
        with trio.fail_after(GUARD):
            while not pred():
                await self._changed.wait()

    def data(self) -> bytes:
        """The bytes of the current generation; asserts every offset continues the last."""
        out = b""
        for item in self.items:
            if isinstance(item, LogReset):
                out = b""
            elif isinstance(item, LogBytes):
                assert item.offset == len(out), f"offset {item.offset} after {len(out)} bytes"
                out += item.data
        return out

    def kinds(self) -> list[str]:
        """Item types in order, consecutive LogBytes folded into one 'bytes'."""
        out: list[str] = []
        for item in self.items:
            kind = type(item).__name__
            if not (kind == "LogBytes" and out and out[-1] == kind):
                out.append(kind)
        return out

    def of(self, kind: type) -> list[LogItem]:
        return [i for i in self.items if isinstance(i, kind)]


async def eventually(pred: Callable[[], bool]) -> None:
    """Poll a condition only the outside world can tell (bounded)."""
    with trio.fail_after(GUARD):
        while not pred():
            await trio.sleep(0.02)  # polling interval, not a wait for something to happen


def remote_procs(marker: str) -> list[str]:
    """Command lines of live processes on this machine (the "remote") containing ``marker``."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        cmd = raw.replace(b"\0", b" ").decode("utf-8", "replace")
        if marker in cmd and state != "Z":
            found.append(cmd)
    return found


def spec(sshd, **overrides) -> SSHSpec:  # type: ignore[no-untyped-def]
    kwargs = dict(
        host=sshd.host,
        user=sshd.user,
        port=sshd.port,
        identity=str(sshd.client_key),
        known_hosts=str(sshd.known_hosts),
    )
    kwargs.update(overrides)
    return SSHSpec(**kwargs)


def target(sshd, log: str | Path, *, ssh: SSHSpec | None = None, **fields) -> TargetSpec:  # type: ignore[no-untyped-def]
    fields.setdefault("process_pattern", None)
    return TargetSpec(name="remote", log=str(log), ssh=ssh or spec(sshd), **fields)


@asynccontextmanager
async def following(source: SSHSource) -> AsyncIterator[Collected]:
    """run() + follow() in a nursery; cancelled (the way the monitor stops) on exit."""
    got = Collected()
    send, receive = trio.open_memory_channel[LogItem](0)
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run)
        nursery.start_soon(got.pump, receive)
        await nursery.start(source.follow, send)
        yield got
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def running(source: SSHSource) -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run)
        yield nursery
        nursery.cancel_scope.cancel()


@contextmanager
def local_process(marker: str) -> Iterator[None]:
    """A process on the "remote" whose command line holds ``marker`` (for pgrep)."""
    proc = subprocess.Popen(["sh", "-c", "sleep 60; :", marker])
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(0, 0.0, 0.25), (0, 1.0, 0.5), (1, 0.0, 0.5), (3, 1.0, 4.0), (6, 1.0, 30.0), (6, 0.0, 15.0), (10_000, 0.5, 22.5)],
)
def test_backoff_is_capped_exponential_with_jitter_in_the_upper_half(attempt: int, rand: float, expected: float) -> None:
    assert backoff_delay(attempt, first=0.5, cap=30.0, rand=lambda: rand) == pytest.approx(expected)


def test_commands_quote_every_value() -> None:
    evil = "x'; touch /tmp/pwned; echo '$(id)`id`"
    cmds = RemoteCommands(log=evil, container="c1", log_location="container", process_pattern=evil, probe_url=evil)
    survey = cmds.survey([Check(evil, 5, 0, 3)])  # (window_start 0 reaches tail -c as +1)
    every = (cmds.follow(5), cmds.resume_check(3), survey, cmds.process(), cmds.inspect(), cmds.container_logs(), cmds.waa_probe())
    for command in every:
        assert command is not None
        words = shlex.split(command)  # a valid shell word list, no stray quote
        assert words[0] in ("sh", "docker")
    # The log path reaches tail as one word, after "--", and tail -c +N is 1-based.
    script = shlex.split(cmds.follow(5))[-1]  # docker exec -i c1 sh -c SCRIPT
    guarded = shlex.split(script)  # the guard runs `sh -c INNER`: wait for the file, then tail
    words = shlex.split(guarded[guarded.index("-c") + 1])
    at = words.index("tail")
    assert words[at : at + 8] == ["tail", "-c", "+6", "-F", "-s", "0.1", "--", evil]
    assert words[:4] == ["while", "[", "!", "-f"] and words[4] == evil
    # The glob and the checked paths reach the survey's shell as arguments ($1…), not as code.
    looked = shlex.split(shlex.split(survey)[-1])
    at = looked.index("docker")
    assert looked[at : at + 3] == ["docker", "exec", "c1"]
    assert looked[at + 6 : at + 12] == ["sh", evil, evil, "5", "1", "3"]
    # The pattern never appears in clear on the command line (pgrep -f would match our shell).
    assert "touch" not in cmds.process()  # type: ignore[operator]


def test_follow_command_per_log_location() -> None:
    def cmds(location: str) -> RemoteCommands:
        return RemoteCommands(log="/l og", container="waa", log_location=location, process_pattern=None, probe_url="http://h/p")

    host = shlex.split(cmds("host").follow(0))
    def inner(guard_script: str) -> str:
        words = shlex.split(guard_script)
        return words[words.index("-c") + 1]

    assert host[:2] == ["sh", "-c"] and "tail -c +1 -F -s 0.1 -- '/l og'" in inner(host[2])
    inside = shlex.split(cmds("container").follow(41))
    assert inside[:5] == ["docker", "exec", "-i", "waa", "sh"]
    assert "tail -c +42 -F -s 0.1 -- '/l og'" in inner(inside[6])
    stdout = shlex.split(cmds("stdout").follow(99))
    assert stdout[:2] == ["sh", "-c"] and "docker logs -f waa 2>&1" in stdout[2]
    bare = RemoteCommands(log="/l", container=None, log_location="host", process_pattern=None, probe_url="http://h/p")
    assert bare.process() is None and bare.inspect() is None and bare.container_logs() is None


H1, H2 = "0" * 32, "f" * 32


@pytest.mark.parametrize(
    ("out", "checks", "listing", "expected"),
    [
        (b"M 0\n", 0, True, Survey((), ())),
        (b"C 10 %s %s\nC missing\nM 2\n5\n7\n/a b\0/c\nd\0" % (H1.encode(), H2.encode()), 2, True,
         Survey((FileState(10, H1, H2), None), (Match("/a b", 5.0), Match("/c\nd", 7.0)))),
        (b"C 10 %s %s\n" % (H1.encode(), H2.encode()), 1, False, Survey((FileState(10, H1, H2),), None)),
        (b"\xff\xfe/x\0", 0, True, None),  # garbage
        (b"", 1, False, None),  # nothing (a tool missing, the command killed)
        (b"C 10 %s\n" % H1.encode(), 1, False, None),  # a word short
        (b"C 10 %s %s\n" % (H1.encode(), b"z" * 31), 1, False, None),  # not an MD5
        (b"C ten %s %s\n" % (H1.encode(), H2.encode()), 1, False, None),
        (b"C missing\nextra", 1, False, None),  # trailing junk
        (b"M 2\n5\n7\n/a\0", 0, True, None),  # a name short (stat raced a deletion)
        (b"M 1\n5\n7\n/a\0/b\0", 0, True, None),  # a name too many
        (b"M 1\n5\n/a", 0, True, None),  # the name not ended
        (b"M 1\nx\n/a\0", 0, True, None),
        (b"M\n", 0, True, None),
    ],
)
def test_parse_survey(out: bytes, checks: int, listing: bool, expected: Survey | None) -> None:
    assert parse_survey(out, checks, listing=listing) == expected


@pytest.mark.parametrize(
    ("line", "offset", "reason"),
    [
        ("tail: /x/log: file truncated", 10, "truncated"),
        ("tail: '/x/log' has been replaced;  following new file", 10, "replaced"),
        ("tail: '/x/log' has appeared;  following new file", 10, "replaced"),
        ("tail: '/x/log' has appeared;  following new file", 0, None),
        ("tail: cannot open '/x/log' for reading: No such file or directory", 10, None),
        ("tail: '/x/log' has become inaccessible: No such file or directory", 10, None),
        ("", 0, None),
    ],
)
def test_tail_notes(line: str, offset: int, reason: str | None) -> None:
    assert _tail_note(line, offset) == reason


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"container": "-rm", "log_location": "container"}, "container name"),
        ({"container": "a b", "log_location": "stdout"}, "container name"),
        ({"probe_url": "ftp://x/probe"}, "probe URL"),
        ({"probe_url": "http://"}, "probe URL"),
        ({"process_pattern": ""}, "process pattern"),
        ({"ssh": None}, "has no ssh host"),
    ],
)
def test_bad_target_fields_are_refused_in_one_sentence(fields: dict, message: str) -> None:
    ssh = fields.pop("ssh", SSHSpec(host="h"))
    with pytest.raises(ConfigError, match=message):
        SSHSource(TargetSpec(name="t", ssh=ssh, **fields))


@pytest.mark.parametrize(
    "kwargs",
    [{"backoff_first": 0}, {"backoff_first": 5, "backoff_cap": 1}, {"keepalive_count_max": 0}, {"command_timeout": -1}, {"max_channels": 1},
     {"worker_window": -1.0}, {"worker_window": float("nan")}, {"worker_window": float("inf")}, {"glob_interval": 0}],
)
def test_bad_options_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        SSHOptions(**kwargs)


def test_description_and_vnc_default() -> None:
    source = SSHSource(TargetSpec(name="t", log="/r/x.log", ssh=SSHSpec(host="20.1.2.3", user="azureuser")))
    assert source.description == "azureuser@20.1.2.3:22:/r/x.log"
    assert source.vnc_url == "http://20.1.2.3:8006"
    six = SSHSource(TargetSpec(name="t", container="waa", log_location="stdout", ssh=SSHSpec(host="::1", port=2222)))
    assert six.description == "[::1]:2222:docker logs waa"
    assert six.vnc_url == "http://[::1]:8006"


async def test_follow_and_probe_need_run() -> None:
    source = SSHSource(TargetSpec(name="t", ssh=SSHSpec(host="127.0.0.1")))
    send, _ = trio.open_memory_channel[LogItem](1)
    with pytest.raises(RuntimeError, match="run\\(\\) must be running"):
        await source.follow(send)
    with pytest.raises(RuntimeError, match="run\\(\\) must be running"):
        await source.probe()


# --------------------------------------------------------------------------- follow, real sshd

@pytest.mark.sshd
async def test_follow_history_then_appended_bytes_each_once(sshd, tmp_path: Path) -> None:
    log = tmp_path / "bench.log"
    history = b"".join(b"[2024-01-01 00:00:%02d INFO run/1-Main] line %d\n" % (i, i) for i in range(200))
    log.write_bytes(history)
    source = SSHSource(target(sshd, log), options=FAST)
    async with following(source) as got:
        await got.until(lambda: got.data() == history)
        expected = history
        for chunk in (b"Step 1: click\n", b"partial line ", b"finished\n", bytes(range(256)) * 8):
            with log.open("ab") as f:
                f.write(chunk)
            expected += chunk
            await got.until(lambda: len(got.data()) >= len(expected))
            assert got.data() == expected
        assert got.items[0] == LogReset(str(log), "opened")
        assert got.of(SourceDown) == [] and got.of(LogReset) == [got.items[0]]
        stats = source.statistics()
        assert stats.connections_opened == 1 and stats.channels_open == 1 and stats.connected


@pytest.mark.sshd
async def test_follow_from_an_offset_the_caller_already_has(sshd, tmp_path: Path) -> None:
    log = tmp_path / "bench.log"
    log.write_bytes(b"hello\nworld\n")
    source = SSHSource(target(sshd, log), options=GLOB)
    got = Collected()
    send, receive = trio.open_memory_channel[LogItem](0)
    async with running(source) as nursery:
        nursery.start_soon(got.pump, receive)
        await nursery.start(partial(source.follow, send, offset=6))
        await got.until(lambda: bool(got.items))
        assert got.items == [LogBytes(b"world\n", 6, str(log))]  # no LogReset: the caller has bytes 0-5
        # Bytes read from the offset on are not the file's first bytes: the surveys after
        # them (one per 0.1 s while bytes come) must not take the file for another one.
        for n, line in enumerate((b"more\n", b"again\n"), start=2):
            with log.open("ab") as fh:
                fh.write(line)
            await got.until(lambda n=n: len(got.items) == n)
            answered = source.surveys
            await eventually(lambda answered=answered: source.surveys >= answered + 1)
        assert got.items == [LogBytes(b"world\n", 6, str(log)), LogBytes(b"more\n", 12, str(log)),
                             LogBytes(b"again\n", 17, str(log))]  # no LogReset
    with pytest.raises(ValueError, match="offset must be >= 0"):
        await source.follow(send, offset=-1)


@pytest.mark.sshd
@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (b"hello\nworld\nagain\n", ["LogBytes"]),  # the same file, grown: on at byte 6
        (b"HELLO\nworld\nagain\n", ["LogReset", "LogBytes"]),  # other first bytes: replaced
        (b"hel", ["LogReset", "LogBytes"]),  # shorter than the offset: truncated
    ],
)
async def test_follow_from_an_offset_checks_the_first_bytes_the_caller_read(
    sshd, tmp_path: Path, now: bytes, expected: list[str]
) -> None:
    # Cluster mode: another process read bytes 0-5 ("hello\n") and recorded them.
    log = tmp_path / "bench.log"
    log.write_bytes(now)
    source = SSHSource(target(sshd, log), options=FAST)
    got = Collected()
    send, receive = trio.open_memory_channel[LogItem](0)
    async with running(source) as nursery:
        nursery.start_soon(got.pump, receive)
        await nursery.start(partial(source.follow, send, offset=6, head=b"hello\n"))
        await got.until(lambda: sum(len(i.data) for i in got.of(LogBytes)) >= len(now) - (6 if len(expected) == 1 else 0))
        assert got.kinds() == expected
        if len(expected) == 1:
            assert got.items[0] == LogBytes(b"world\nagain\n", 6, str(log))
        else:
            reset = got.items[0]
            assert isinstance(reset, LogReset) and reset.reason == ("truncated" if now == b"hel" else "replaced")
            assert got.data() == now  # read from byte 0


@pytest.mark.sshd
async def test_a_glob_starts_each_file_the_caller_read_at_its_offset(sshd, tmp_path: Path) -> None:
    # Cluster mode's failover of a glob target: another process read 8 bytes of a and of b.
    a, b, c = (tmp_path / f"normal-{w}-1.log" for w in range(3))
    a.write_bytes(b"a first\na second\n")  # the same file, grown: on at byte 8, no LogReset
    b.write_bytes(b"B first\nb second\n")  # other first bytes: replaced, from byte 0
    c.write_bytes(b"c only\n")  # a file the caller never read: opened, from byte 0
    source = SSHSource(target(sshd, tmp_path / "normal-*.log"), options=FAST)
    assert source.resumes_globs
    got = Collected()
    send, receive = trio.open_memory_channel[LogItem](0)
    starts = {str(a): (8, b"a first\n"), str(b): (8, b"b first\n")}
    async with running(source) as nursery:
        nursery.start_soon(got.pump, receive)
        await nursery.start(partial(source.follow, send, starts=starts))
        want = len(b"a second\n") + len(b"B first\nb second\n") + len(b"c only\n")
        await got.until(lambda: sum(len(i.data) for i in got.of(LogBytes)) >= want)  # type: ignore[attr-defined]
    by_path: dict[str, list[LogItem]] = {}
    for item in got.items:
        by_path.setdefault(item.path, []).append(item)  # type: ignore[union-attr]
    assert all(isinstance(i, LogBytes) for i in by_path[str(a)])
    assert by_path[str(a)][0].offset == 8  # type: ignore[union-attr]
    assert b"".join(i.data for i in by_path[str(a)]) == b"a second\n"  # type: ignore[union-attr]
    assert by_path[str(b)][0] == LogReset(str(b), "replaced")
    assert b"".join(i.data for i in by_path[str(b)][1:]) == b"B first\nb second\n"  # type: ignore[union-attr]
    assert by_path[str(c)][0] == LogReset(str(c), "opened")
    with pytest.raises(ValueError, match="first bytes"):
        await source.follow(send, starts={str(a): (3, b"")})
    one = SSHSource(target(sshd, a), options=FAST)
    assert not one.resumes_globs
    with pytest.raises(ValueError, match="glob"):
        await one.follow(send, starts={str(a): (0, b"")})


@pytest.mark.sshd
async def test_run_ending_stops_follow_with_a_clear_error(sshd, tmp_path: Path) -> None:
    source = SSHSource(target(sshd, tmp_path / "x.log"), options=FAST)
    send, receive = trio.open_memory_channel[LogItem](10)
    with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="run\\(\\) must be running"), flatten_subgroups=True):
        async with trio.open_nursery() as outer:
            async with trio.open_nursery() as inner:
                await inner.start(source.run)
                await outer.start(source.follow, send)
                await eventually(lambda: source.statistics().channels_open == 1)
                inner.cancel_scope.cancel()  # run() ends first; follow must not hang


@pytest.mark.sshd
async def test_outage_gives_one_sourcedown_then_resumes_at_the_right_offset(sshd, tmp_path: Path) -> None:
    log = tmp_path / "bench.log"
    log.write_bytes(b"before the outage\n")
    source = SSHSource(target(sshd, log), options=FAST)
    async with following(source) as got:
        await got.until(lambda: got.data() == b"before the outage\n")
        await sshd.stop()
        await got.until(lambda: bool(got.of(SourceDown)))
        # Bytes written while the host is unreachable; several reconnect attempts fail.
        with log.open("ab") as f:
            f.write(b"during the outage\n")
        down = got.of(SourceDown)
        assert len(down) == 1
        assert f"ssh {sshd.user}@127.0.0.1:{sshd.port}: connection lost" in down[0].message  # type: ignore[attr-defined]
        probe = await source.probe()
        assert not probe.connected and probe.error is not None and "127.0.0.1" in probe.error
        await sshd.start()
        await got.until(lambda: got.data() == b"before the outage\nduring the outage\n")
        with log.open("ab") as f:
            f.write(b"after\n")
        await got.until(lambda: got.data().endswith(b"after\n"))
        assert got.data() == b"before the outage\nduring the outage\nafter\n"
        assert got.kinds() == ["LogReset", "LogBytes", "SourceDown", "SourceUp", "LogBytes"]
        stats = source.statistics()
        assert (stats.connections_opened, stats.reconnects, stats.outages) == (2, 1, 1)


@pytest.mark.sshd
async def test_many_failed_attempts_in_one_outage_give_one_sourcedown(sshd, tmp_path: Path) -> None:
    log = tmp_path / "bench.log"
    log.write_bytes(b"x\n")
    attempts = []

    def rand() -> float:
        attempts.append(trio.current_time())
        return 0.0

    source = SSHSource(target(sshd, log), options=FAST, rand=rand)
    async with following(source) as got:
        await got.until(lambda: got.data() == b"x\n")
        await sshd.stop()
        await eventually(lambda: len(attempts) >= 5)  # one backoff draw per failed attempt
        assert len(got.of(SourceDown)) == 1
        await sshd.start()
        await got.until(lambda: bool(got.of(SourceUp)))
        assert got.kinds() == ["LogReset", "LogBytes", "SourceDown", "SourceUp"]


@pytest.mark.sshd
async def test_connection_refused_at_start_then_server_appears(sshd, tmp_path: Path) -> None:
    log = tmp_path / "bench.log"
    log.write_bytes(b"hello\n")
    await sshd.stop()
    source = SSHSource(target(sshd, log), options=FAST)
    async with following(source) as got:
        await got.until(lambda: bool(got.of(SourceDown)))
        assert got.of(SourceDown) == [SourceDown(f"ssh {sshd.user}@127.0.0.1:{sshd.port}: connection refused")]
        probe = await source.probe()
        assert probe.connected is False and probe.error == f"ssh {sshd.user}@127.0.0.1:{sshd.port}: connection refused"
        assert probe.vnc_url == "http://127.0.0.1:8006"
        await sshd.start()
        await got.until(lambda: got.data() == b"hello\n")
        assert got.kinds() == ["SourceDown", "SourceUp", "LogReset", "LogBytes"]  # the file is seen once connected


@pytest.mark.sshd
@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("host key", "host key of 127.0.0.1 not verified: it is not in {known} or does not match it"),
        ("client key", "authentication failed"),
    ],
)
async def test_untrusted_host_key_or_refused_login_is_clear_and_retried_slowly(sshd, tmp_path: Path, which: str, message: str) -> None:
    log = tmp_path / "bench.log"
    log.write_bytes(b"secret\n")
    if which == "host key":
        ssh = spec(sshd, known_hosts=str(sshd.wrong_known_hosts))
    else:
        ssh = spec(sshd, identity=str(sshd.wrong_key))
    draws: list[float] = []

    def rand() -> float:
        draws.append(trio.current_time())
        return 0.0  # the shortest delay jitter allows: half of first * 2**attempt

    options = SSHOptions(backoff_first=0.4, backoff_cap=30.0, connect_timeout=5.0)
    source = SSHSource(target(sshd, log, ssh=ssh), options=options, rand=rand)
    async with following(source) as got:
        await got.until(lambda: bool(got.of(SourceDown)))
        text = got.of(SourceDown)[0].message  # type: ignore[attr-defined]
        assert text.startswith(f"ssh {sshd.user}@127.0.0.1:{sshd.port}: ")
        assert message.format(known=sshd.wrong_known_hosts) in text
        await eventually(lambda: len(draws) >= 3)
        # Attempt n waits at least 0.2 * 2**n seconds: not hammered.
        assert draws[1] - draws[0] >= 0.2 - 0.01 and draws[2] - draws[1] >= 0.4 - 0.01
        assert got.data() == b"" and len(got.of(SourceDown)) == 1
        assert source.statistics().connections_opened == 0


@pytest.mark.sshd
async def test_host_key_check_can_be_turned_off_explicitly(sshd, tmp_path: Path) -> None:
    log = tmp_path / "bench.log"
    log.write_bytes(b"trusted anyway\n")
    ssh = spec(sshd, known_hosts=str(sshd.wrong_known_hosts), verify_host_key=False)
    source = SSHSource(target(sshd, log, ssh=ssh), options=FAST)
    async with following(source) as got:
        await got.until(lambda: got.data() == b"trusted anyway\n")
        assert got.of(SourceDown) == []


def test_harness_skips_without_sshd_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    from sshd import _need

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        _need("/nonexistent/sshd")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not installed"):
        _need("/nonexistent/sshd")


@pytest.mark.sshd
async def test_missing_remote_log_is_waited_for_not_an_outage(sshd, tmp_path: Path) -> None:
    log = tmp_path / f"later-{uuid.uuid4().hex}.log"
    source = SSHSource(target(sshd, log), options=FAST)
    async with following(source) as got:
        await eventually(lambda: bool(remote_procs(f"-F -s 0.1 -- {log}")))  # waiting for it
        await got.until(lambda: bool(got.items))
        assert got.items == [LogMissing(str(log))]  # reported once: no error, not an outage
        log.write_bytes(b"now it exists\n")
        await got.until(lambda: got.data() == b"now it exists\n")
        assert got.kinds() == ["LogMissing", "LogReset", "LogBytes"]
        assert got.of(LogReset) == [LogReset(str(log), "opened")]


@pytest.mark.sshd
@pytest.mark.parametrize("how", ["truncated", "replaced"])
async def test_truncated_or_replaced_remote_log_resets_then_reads_the_new_bytes(sshd, tmp_path: Path, how: str) -> None:
    log = tmp_path / "bench.log"
    old = b"old run line\n" * 100
    log.write_bytes(old)
    source = SSHSource(target(sshd, log), options=FAST)
    async with following(source) as got:
        await got.until(lambda: got.data() == old)
        if how == "truncated":
            with log.open("r+b") as f:
                f.truncate(0)
                f.write(b"new run\n")
        else:
            fresh = tmp_path / "fresh.log"
            fresh.write_bytes(b"new run\n")
            fresh.rename(log)
        await got.until(lambda: len(got.of(LogReset)) == 2 and got.data() == b"new run\n")
        with log.open("ab") as f:
            f.write(b"more\n")
        await got.until(lambda: got.data() == b"new run\nmore\n")
        assert got.of(LogReset)[1] == LogReset(str(log), how)


@pytest.mark.sshd
@pytest.mark.parametrize("how", ["truncated", "replaced", "deleted"])
async def test_log_changed_during_an_outage_is_detected_on_resume(sshd, tmp_path: Path, how: str) -> None:
    log = tmp_path / "bench.log"
    old = b"old run line\n" * 10
    log.write_bytes(old)
    source = SSHSource(target(sshd, log), options=FAST)
    async with following(source) as got:
        await got.until(lambda: got.data() == old)
        await sshd.stop()
        await got.until(lambda: bool(got.of(SourceDown)))
        if how == "truncated":
            log.write_bytes(b"short\n")
        elif how == "replaced":
            log.write_bytes(b"new run line\n" * 20)  # longer, other first bytes
        else:
            log.unlink()
        await sshd.start()
        if how == "deleted":  # nothing at the path: reported, then whatever comes is new
            await got.until(lambda: bool(got.of(SourceUp)) and bool(got.of(LogMissing)))
            assert got.of(LogMissing) == [LogMissing(str(log))]
            log.write_bytes(b"a new file\n")
        else:
            await got.until(lambda: bool(got.of(SourceUp)) and len(got.of(LogReset)) == 2)
        expected = {"truncated": b"short\n", "replaced": b"new run line\n" * 20, "deleted": b"a new file\n"}[how]
        await got.until(lambda: got.data() == expected)
        assert got.of(LogReset)[1] == LogReset(str(log), "replaced" if how == "deleted" else how)


def _stamp(path: Path, seconds_ago: float) -> None:
    when = time.time_ns() - int(seconds_ago * 1e9)
    os.utime(path, ns=(when, when))


def data_of(got: Collected, name: str) -> bytes:
    """The bytes of the current generation of the file named ``name`` in items."""
    out = b""
    for item in got.items:
        if isinstance(item, LogReset) and item.path == name:
            out = b""
        elif isinstance(item, LogBytes) and item.path == name:
            assert item.offset == len(out), f"{name}: offset {item.offset} after {len(out)} bytes"
            out += item.data
    return out


@pytest.mark.sshd
@pytest.mark.parametrize("location", ["host", "container"])
async def test_glob_follows_every_worker_file_of_the_current_run(sshd, tmp_path: Path, location: str) -> None:
    """Issue 10 item 1 over SSH: one tail channel per worker file, bytes tagged per file."""
    sshd.container("waa")
    fields = {"container": "waa", "log_location": "container"} if location == "container" else {}
    prefix = "waa:" if location == "container" else ""
    old0 = tmp_path / "normal-0-20241120@140000.log"
    lone = tmp_path / "normal-2-20241119@090000.log"
    for path in (old0, lone):
        path.write_bytes(b"history of %s\n" % path.name.encode())
    _stamp(old0, 3600)
    _stamp(lone, 86400)
    (tmp_path / "normal-8-20241120@150000.log").mkdir()  # a directory named like a log
    os.mkfifo(tmp_path / "normal-7-20241120@150000.log")  # a FIFO named like a log
    source = SSHSource(target(sshd, f"{tmp_path}/normal-*.log", **fields), options=GLOB)
    w0 = tmp_path / "normal-0-20241120@150000.log"
    w1 = tmp_path / "normal-1-20241120@150002.log"
    async with following(source) as got:
        # old0 alone is the newest match at first: it is followed until its worker's new run
        await got.until(lambda: data_of(got, f"{prefix}{old0}") == b"history of %s\n" % old0.name.encode())
        w0.write_bytes(b"w0 starts\n")
        w1.write_bytes(b"w1 starts\n")
        await got.until(lambda: data_of(got, f"{prefix}{w0}") == b"w0 starts\n" and data_of(got, f"{prefix}{w1}") == b"w1 starts\n")
        expected = {w0: b"w0 starts\n", w1: b"w1 starts\n"}
        for i in range(20):
            path = (w0, w1)[i % 2]
            piece = b"step %d\n" % i + bytes(range(256)) * (i % 3)
            with path.open("ab") as fh:
                fh.write(piece)
            expected[path] += piece
            await got.until(lambda p=path: data_of(got, f"{prefix}{p}") == expected[p])
        with old0.open("ab") as fh:  # worker 0's previous run is no longer followed
            fh.write(b"late line\n")
        w3 = tmp_path / "normal-3-20241120@150500.log"
        w3.write_bytes(b"w3 joins\n")
        await got.until(lambda: data_of(got, f"{prefix}{w3}") == b"w3 joins\n")
        with w0.open("ab") as fh:
            fh.write(b"after\n")
        await got.until(lambda: data_of(got, f"{prefix}{w0}") == expected[w0] + b"after\n")
        resets = got.of(LogReset)
        assert resets == [LogReset(f"{prefix}{p}", "opened") for p in (old0, w0, w1, w3)]
        assert data_of(got, f"{prefix}{old0}") == b"history of %s\n" % old0.name.encode()
        assert data_of(got, f"{prefix}{lone}") == b""
        assert got.of(SourceDown) == [] and got.of(LogMissing) == []
        assert source.statistics().channels_open <= 4  # three tails (+ a survey at most)


@pytest.mark.sshd
async def test_glob_over_ssh_is_capped_at_the_channels_it_may_use(sshd, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(1000):
        (tmp_path / f"task-{i:04d}.log").write_bytes(b"%d\n" % i)
    newest = tmp_path / "task-0999.log"
    _stamp(newest, -1)
    source = SSHSource(target(sshd, f"{tmp_path}/task-*.log"), options=GLOB)  # max_channels 8
    async with following(source) as got:
        await got.until(lambda: len(got.of(LogBytes)) >= 6)
        answered = source.surveys
        await eventually(lambda: source.surveys >= answered + 10)  # ten more rounds: nobody else joins
        assert len(got.of(LogReset)) == 6 and LogReset(str(newest), "opened") in got.items
        assert source.statistics().channels_open <= 7
    warnings = [r.getMessage() for r in caplog.records if "changed most recently" in r.getMessage()]
    assert len(warnings) == 1 and "1000 files" in warnings[0] and "following the 6" in warnings[0]


@pytest.mark.sshd
@pytest.mark.parametrize("name", ["normal-0 with spaces-20241120@150000.log", "normal-'quoted\"-1.log",
                                  "normal-new\nline-2.log", "normal-$(touch pwned-h6)`touch pwned-h6`-3.log"])
async def test_odd_file_names_in_a_remote_glob_are_just_names(sshd, tmp_path: Path, name: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    odd = logs / name
    odd.write_bytes(b"odd\n")
    source = SSHSource(target(sshd, f"{logs}/normal-*.log"), options=GLOB)
    async with following(source) as got:
        await got.until(lambda: data_of(got, str(odd)) == b"odd\n")
        with odd.open("ab") as fh:
            fh.write(b"more\n")
        await got.until(lambda: data_of(got, str(odd)) == b"odd\nmore\n")
        assert got.of(LogReset) == [LogReset(str(odd), "opened")]
    assert sorted(os.listdir(logs)) == [name]  # nothing in the name ran, wherever a shell stood
    assert not any((where / "pwned-h6").exists() for where in (Path.home(), sshd.home, Path.cwd(), logs))


@pytest.mark.sshd
async def test_a_remote_file_left_behind_the_window_continues_where_it_stopped(sshd, tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_bytes(b"a1\n")
    b.write_bytes(b"b1\n")
    source = SSHSource(target(sshd, f"{tmp_path}/*.log"), options=replace(GLOB, worker_window=60))
    async with following(source) as got:
        await got.until(lambda: data_of(got, str(a)) == b"a1\n" and data_of(got, str(b)) == b"b1\n")
        _stamp(a, 120)  # two minutes behind b: left
        await eventually(lambda: not any("tail -c" in p and str(a) in p for p in remote_procs(str(tmp_path))))
        with a.open("ab") as fh:  # grows again: rejoins where it stopped
            fh.write(b"a2\n")
        await got.until(lambda: data_of(got, str(a)) == b"a1\na2\n")
        assert [r.path for r in got.of(LogReset)].count(str(a)) == 1
        _stamp(a, 120)
        await eventually(lambda: not any("tail -c" in p and str(a) in p for p in remote_procs(str(tmp_path))))
        a.write_bytes(b"A new run, longer than what was read\n")
        await got.until(lambda: data_of(got, str(a)) == b"A new run, longer than what was read\n")
        assert got.of(LogReset)[-1] == LogReset(str(a), "replaced")


# --------------------------------------------------------------------------- rewritten in place


@contextmanager
def tails_stopped(marker: str) -> Iterator[None]:
    """SIGSTOP the remote ``tail`` processes following ``marker`` for the block, so they
    cannot look at the file while the test rewrites it: they only see the end result (the
    race a busy host loses to a fast ``cp``, made certain)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd[:1] == [b"tail"] and marker.encode() in cmd:
                pids.append(int(entry))
    assert pids, f"no remote tail of {marker}"
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


RUN_A = b"".join(b"[2024-11-20 14:00:0%d] a%d Finished\n" % (i, i) for i in range(2))
RUN_B = b"".join(b"[2024-11-20 15:00:0%d] b%d Finished\n" % (i, i) for i in range(6))  # longer


@pytest.mark.sshd
@pytest.mark.parametrize("how", ["cp", "dd conv=notrunc", "open('wb')"])
async def test_a_remote_log_rewritten_in_place_by_a_longer_run_is_read_from_its_first_byte(sshd, tmp_path: Path, how: str) -> None:
    """Issue 10 item 6 over SSH, while following (main noticed it only after a reconnect)."""
    log = tmp_path / "bench.log"
    log.write_bytes(RUN_A)
    other = tmp_path / "run-b"
    other.write_bytes(RUN_B)
    source = SSHSource(target(sshd, log), options=GLOB)
    async with following(source) as got:
        await got.until(lambda: got.data() == RUN_A)
        with tails_stopped(str(log)):
            if how == "cp":
                subprocess.run(["cp", str(other), str(log)], check=True)
            elif how == "dd conv=notrunc":
                subprocess.run(["dd", f"if={other}", f"of={log}", "conv=notrunc", "status=none"], check=True)
            else:
                with open(log, "wb") as fh:
                    fh.write(RUN_B)
        # tail goes on at its old offset (it missed the rewrite); the next survey sees it
        await got.until(lambda: len(got.of(LogReset)) == 2)
        await got.until(lambda: len(got.data()) >= len(RUN_B))
        assert got.data() == RUN_B
        assert got.of(LogReset) == [LogReset(str(log), "opened"), LogReset(str(log), "replaced")]


@pytest.mark.sshd
async def test_a_remote_log_cut_and_grown_again_is_a_new_generation(sshd, tmp_path: Path) -> None:
    log = tmp_path / "bench.log"
    first = b"".join(b"first run line %04d\n" % i for i in range(400))  # 8000 bytes
    log.write_bytes(first)
    regrown = b"".join(b"second run, other task %04d\n" % i for i in range(300))
    source = SSHSource(target(sshd, log), options=GLOB)
    async with following(source) as got:
        await got.until(lambda: got.data() == first)
        with tails_stopped(str(log)):
            subprocess.run(["truncate", "-s", "5000", str(log)], check=True)
            with log.open("ab") as fh:
                fh.write(regrown)
        await got.until(lambda: len(got.of(LogReset)) == 2)
        expected = first[:5000] + regrown
        await got.until(lambda: len(got.data()) >= len(expected))
        assert got.data() == expected
        assert got.of(LogReset)[1] == LogReset(str(log), "truncated")


# --------------------------------------------------------------------------- missing logs


@pytest.mark.sshd
@pytest.mark.parametrize("location", ["host", "container"])
async def test_a_missing_remote_log_is_reported_once_until_a_file_came_and_went(sshd, tmp_path: Path, location: str) -> None:
    sshd.container("waa")
    fields = {"container": "waa", "log_location": "container"} if location == "container" else {}
    name = ("waa:" if location == "container" else "") + str(tmp_path / "logs" / "mistyped.log")
    log = tmp_path / "logs" / "mistyped.log"
    source = SSHSource(target(sshd, log, **fields), options=GLOB)
    async with following(source) as got:
        await got.until(lambda: bool(got.items))
        assert got.items == [LogMissing(name)]
        log.parent.mkdir()
        log.write_bytes(b"one\n")
        await got.until(lambda: got.data() == b"one\n")
        log.unlink()
        await got.until(lambda: len(got.of(LogMissing)) == 2)
        log.write_bytes(b"two\n")
        await got.until(lambda: got.data() == b"two\n")
        assert got.kinds() == ["LogMissing", "LogReset", "LogBytes", "LogMissing", "LogReset", "LogBytes"]
        assert got.of(LogReset) == [LogReset(name, "opened"), LogReset(name, "replaced")]


@pytest.mark.sshd
@pytest.mark.parametrize("kind", ["directory", "fifo"])
async def test_a_remote_log_path_that_is_not_a_file_is_missing_not_followed(sshd, tmp_path: Path, kind: str) -> None:
    log = tmp_path / "bench.log"
    if kind == "directory":
        log.mkdir()
    else:
        os.mkfifo(log)
    source = SSHSource(target(sshd, log), options=GLOB)
    async with following(source) as got:
        await got.until(lambda: bool(got.items))
        assert got.items == [LogMissing(str(log))]
        await eventually(lambda: bool(remote_procs(f"while [ ! -f {log} ]")))  # waited out, not read
        log.rmdir() if kind == "directory" else log.unlink()
        log.write_bytes(b"a real log\n")
        await got.until(lambda: got.data() == b"a real log\n")
        assert got.kinds() == ["LogMissing", "LogReset", "LogBytes"]


@pytest.mark.sshd
async def test_a_remote_glob_without_files_is_reported_missing(sshd, tmp_path: Path) -> None:
    pattern = f"{tmp_path}/logs/normal-*.log"
    source = SSHSource(target(sshd, pattern), options=GLOB)
    async with following(source) as got:
        await got.until(lambda: bool(got.items))
        assert got.items == [LogMissing(pattern)]
        await eventually(lambda: source.statistics().commands_run >= 6)  # several rounds...
        assert got.items == [LogMissing(pattern)]  # ...one report
        (tmp_path / "logs").mkdir()
        (tmp_path / "logs" / "normal-0-20241120@150000.log").write_bytes(b"run\n")
        await got.until(lambda: got.data() == b"run\n")
        (tmp_path / "logs" / "normal-0-20241120@150000.log").unlink()
        await got.until(lambda: len(got.of(LogMissing)) == 2)
        assert got.kinds() == ["LogMissing", "LogReset", "LogBytes", "LogMissing"]


# --------------------------------------------------------------------------- cleanup and safety


@pytest.mark.sshd
@pytest.mark.parametrize("location", ["host", "container"])
@pytest.mark.parametrize("exists", [True, False])
async def test_cancelled_follow_leaves_no_remote_tail(sshd, tmp_path: Path, location: str, exists: bool) -> None:
    log = tmp_path / f"marker-{uuid.uuid4().hex}.log"
    if exists:
        log.write_bytes(b"idle log: the tail never writes again\n")
    sshd.container("waa")
    fields = {"container": "waa", "log_location": "container"} if location == "container" else {}
    source = SSHSource(target(sshd, log, **fields), options=FAST)
    async with running(source):
        got = Collected()
        send, receive = trio.open_memory_channel[LogItem](0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(got.pump, receive)
            await nursery.start(source.follow, send)
            if exists:
                await got.until(lambda: len(got.data()) > 0)
            await eventually(lambda: any("tail -c +" in p for p in remote_procs(log.name)))
            nursery.cancel_scope.cancel()  # the target was removed
        assert source.statistics().channels_open == 0
        try:
            await eventually(lambda: remote_procs(log.name) == [])
        except trio.TooSlowError:
            raise AssertionError(f"still running on the remote: {remote_procs(log.name)}") from None
        assert sshd.running and source.statistics().connected  # the link itself stays up


@pytest.mark.sshd
async def test_values_cannot_inject_remote_commands(sshd, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    evil = f"x; touch {pwned}; echo $(touch {pwned}) `touch {pwned}` '"
    log = f"{tmp_path}/{evil}"
    source = SSHSource(
        target(sshd, log, process_pattern=evil, probe_url=f"http://127.0.0.1:1/$(touch${{IFS}}{pwned})"),
        options=FAST,
    )
    async with following(source) as got:
        await eventually(lambda: any("tail -c +1 -F" in p for p in remote_procs("x; touch")))
        probe = await source.probe()
        assert probe.connected and probe.running is False and probe.waa_ready is False
        assert got.kinds() == ["LogMissing"]  # the odd path simply does not exist
    assert not pwned.exists()
    # The same through a glob: the pattern is only ever matched against file names.
    options = SSHOptions(backoff_first=0.05, backoff_cap=0.2, glob_interval=0.05)
    globbed = SSHSource(target(sshd, f"{tmp_path}/*{evil}*"), options=options)
    async with following(globbed) as got:
        await eventually(lambda: globbed.statistics().commands_run >= 3)
        assert got.kinds() == ["LogMissing"]
    assert not pwned.exists()


@pytest.mark.sshd
async def test_hung_probe_command_returns_within_its_timeout(sshd, tmp_path: Path) -> None:
    sshd.container("waa")
    hang = sshd.docker_dir / "waa" / "hang"
    hang.touch()
    # Long enough for the four hung commands to start on a slow machine (bash + ~/.bashrc).
    options = SSHOptions(backoff_first=0.05, backoff_cap=0.2, command_timeout=3.0)
    source = SSHSource(target(sshd, tmp_path / "x.log", container="waa", process_pattern="run.py"), options=options)
    async with running(source):
        await eventually(lambda: source.statistics().connected)
        results = []

        async def probe_timed() -> None:
            start = trio.current_time()
            results.append((await source.probe(), trio.current_time() - start))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe_timed)
            # pgrep, inspect, logs and curl all go through the hung stand-in.
            await eventually(lambda: len(remote_procs(str(hang))) == 4)
        [(probe, elapsed)] = results
        assert 3.0 <= elapsed < 3.0 + 2.0  # the command timeout, plus at most the bounded close
        assert probe.connected and probe.running is None and probe.phase is None
        assert probe.waa_ready is False and probe.probe_status == "Not responding"
        assert "did not answer in time" in (probe.error or "")
        # Every hung stand-in was ended on the remote when its channel was closed.
        await eventually(lambda: remote_procs(str(hang)) == [])
        assert source.statistics().channels_open == 0


# --------------------------------------------------------------------------- docker paths


async def _serve_waa_probe(answer: bytes, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """WAA's /probe answering ``answer`` (reached by curl on the remote)."""
    await serve_http(http_200(answer), task_status=task_status)


@pytest.mark.sshd
async def test_probe_with_container_process_phase_and_waa(sshd, tmp_path: Path) -> None:
    marker = f"fake-run-{uuid.uuid4().hex}"
    sshd.container("waa", logs=b"\x1b[1;34m\xe2\x9d\xaf Booting Windows using QEMU v8.2.2...\x1b[0m\nsome noise\n")
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_serve_waa_probe, b'{"message": "Service is operational"}')
        source = SSHSource(
            target(sshd, tmp_path / "x.log", container="waa", process_pattern=marker, probe_url=f"http://127.0.0.1:{port}/probe"),
            options=FAST,
        )
        async with running(source):
            await eventually(lambda: source.statistics().connected)
            with local_process(marker):
                probe = await source.probe()
            assert probe.connected and probe.running is True and probe.phase == "booting"
            assert probe.waa_ready is True and probe.probe_status == "ready" and probe.error is None
            assert probe.vnc_url == "http://127.0.0.1:8006"
            probe = await source.probe()
            assert probe.running is False and probe.error is None
            (sshd.docker_dir / "waa" / "running").write_text("false\n")
            probe = await source.probe()
            assert probe.running is False and probe.error == "container waa is not running"
            (sshd.docker_dir / "waa" / "running").write_text("true\n")
            sshd.container("waa")  # logs emptied: no phase line
            probe = await source.probe()
            assert probe.phase is None
        nursery.cancel_scope.cancel()


@pytest.mark.sshd
async def test_probe_without_container_uses_plain_pgrep_and_names_missing_container(sshd, tmp_path: Path) -> None:
    marker = f"fake-run-{uuid.uuid4().hex}"
    source = SSHSource(target(sshd, tmp_path / "x.log", process_pattern=marker, probe_url="http://127.0.0.1:1/probe"), options=FAST)
    async with running(source):
        await eventually(lambda: source.statistics().connected)
        with local_process(marker):
            assert (await source.probe()).running is True
        probe = await source.probe()
        assert probe.running is False and probe.phase is None and probe.waa_ready is False
    ghost = SSHSource(target(sshd, tmp_path / "x.log", container="ghost"), options=FAST)
    async with running(ghost):
        await eventually(lambda: ghost.statistics().connected)
        probe = await ghost.probe()
        assert probe.error is not None and "docker inspect ghost: Error response from daemon: No such container: ghost" in probe.error


@pytest.mark.sshd
async def test_follow_file_inside_container(sshd, tmp_path: Path) -> None:
    sshd.container("waa")
    log = tmp_path / "in-container.log"
    log.write_bytes(b"line 1\n")
    source = SSHSource(target(sshd, log, container="waa", log_location="container"), options=FAST)
    async with following(source) as got:
        await got.until(lambda: got.data() == b"line 1\n")
        with log.open("ab") as f:
            f.write(b"line 2\n")
        await got.until(lambda: got.data() == b"line 1\nline 2\n")
        assert got.items[0] == LogReset(f"waa:{log}", "opened")
        await sshd.stop()
        with log.open("ab") as f:
            f.write(b"line 3\n")
        await sshd.start()
        await got.until(lambda: got.data() == b"line 1\nline 2\nline 3\n")


@pytest.mark.sshd
async def test_follow_container_stdout_resumes_by_skipping_what_was_read(sshd, tmp_path: Path) -> None:
    box = sshd.container("waa", logs=b"boot 1\n")
    source = SSHSource(target(sshd, "/unused", container="waa", log_location="stdout"), options=FAST)
    async with following(source) as got:
        await got.until(lambda: got.data() == b"boot 1\n")
        with (box / "logs").open("ab") as f:
            f.write(b"boot 2\n")
        await got.until(lambda: got.data() == b"boot 1\nboot 2\n")
        await sshd.stop()
        with (box / "logs").open("ab") as f:
            f.write(b"boot 3\n")
        await sshd.start()
        await got.until(lambda: got.data() == b"boot 1\nboot 2\nboot 3\n")
        assert got.kinds() == ["LogReset", "LogBytes", "SourceDown", "SourceUp", "LogBytes"]
        # The container is recreated during an outage: its output starts differently.
        await sshd.stop()
        (box / "logs").write_bytes(b"another container\n")
        await sshd.start()
        await got.until(lambda: got.data() == b"another container\n")
        assert got.of(LogReset)[-1] == LogReset("docker logs waa", "replaced")


# --------------------------------------------------------------------------- sharing


@pytest.mark.sshd
async def test_one_connection_for_follow_and_twenty_concurrent_probes(sshd, tmp_path: Path) -> None:
    log = tmp_path / "bench.log"
    log.write_bytes(b"x\n")
    sshd.container("waa", logs=b"Booting Windows\n")
    # (glob_interval: the follower's own survey runs once, at the start, not during the probes)
    options = SSHOptions(backoff_first=0.05, backoff_cap=0.2, command_timeout=15.0, glob_interval=3600.0)
    source = SSHSource(target(sshd, log, container="waa", process_pattern="no-such-process-here"), options=options)
    async with following(source) as got:
        await got.until(lambda: got.data() == b"x\n")
        results = []

        async def probe() -> None:
            results.append(await source.probe())

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(probe)
        assert len(results) == 20
        # (Concurrent pgreps see each other's arguments: those lines are not "running".)
        assert {(r.connected, r.running, r.phase, r.error) for r in results} == {(True, False, "booting", None)}
        stats = source.statistics()
        assert stats.connections_opened == 1 and stats.reconnects == 0
        assert stats.commands_run == 2 + 20 * 4  # the survey, the follow + pgrep, inspect, logs, curl per probe
        assert stats.channels_open == 1  # only the follow is left


@pytest.mark.sshd
async def test_two_targets_in_one_process(sshd, tmp_path: Path) -> None:
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    for i, log in enumerate(logs):
        log.write_bytes(b"target %d\n" % i)
    sources = [SSHSource(target(sshd, log), options=FAST) for log in logs]
    async with following(sources[0]) as a, following(sources[1]) as b:
        await a.until(lambda: a.data() == b"target 0\n")
        await b.until(lambda: b.data() == b"target 1\n")
    assert [s.statistics().connections_opened for s in sources] == [1, 1]


@pytest.mark.sshd
async def test_dead_link_is_noticed_by_keepalive(sshd, tmp_path: Path) -> None:
    log = tmp_path / "bench.log"
    log.write_bytes(b"x\n")
    options = SSHOptions(backoff_first=0.05, backoff_cap=0.2, keepalive_interval=0.3, keepalive_count_max=2, connect_timeout=1.0)
    source = SSHSource(target(sshd, log), options=options)
    async with following(source) as got:
        await got.until(lambda: got.data() == b"x\n")
        with sshd.frozen():  # sshd and its sessions stop answering; TCP stays open
            with trio.fail_after(5):  # ~0.6 s of keepalives, plus slack
                await got.until(lambda: bool(got.of(SourceDown)))
        assert "keepalive" in got.of(SourceDown)[0].message.lower()  # type: ignore[attr-defined]
        await got.until(lambda: bool(got.of(SourceUp)))
        with log.open("ab") as f:
            f.write(b"y\n")
        await got.until(lambda: got.data() == b"x\ny\n")


def test_stand_in_docker_refuses_unknown_commands(tmp_path: Path) -> None:
    docker = Path(__file__).parent / "bin" / "docker"
    env = {**os.environ, "TRIO_SSE_FAKE_DOCKER": str(tmp_path)}
    bad = subprocess.run([str(docker), "rm", "-f", "x"], env=env, capture_output=True)
    assert bad.returncode != 0 and b"not a docker command" in bad.stderr
    missing = subprocess.run([str(docker), "logs", "nope"], env=env, capture_output=True)
    assert missing.returncode == 1 and b"No such container: nope" in missing.stderr


@pytest.mark.sshd
async def test_channels_refused_over_sshds_max_sessions_are_retried(sshd, tmp_path: Path) -> None:
    # sshd allows 4 sessions per connection here; we let 8 open at once, so sshd refuses
    # some (ChannelOpenError) and every one of them must be retried, not lost.
    await sshd.stop()
    sshd.config.write_text(sshd.config.read_text() + "MaxSessions 4\n")
    await sshd.start()
    log = tmp_path / "x.log"
    log.write_bytes(b"x\n")
    sshd.container("waa", logs=b"Booting Windows\n")
    options = replace(FAST, command_timeout=15.0, glob_interval=3600.0)  # the wait for a free session is part of it
    source = SSHSource(target(sshd, log, container="waa", process_pattern="no-such-process-here"), options=options)
    async with following(source) as got:
        await got.until(lambda: got.data() == b"x\n")
        results = []

        async def probe() -> None:
            results.append(await source.probe())

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for _ in range(5):
                    nursery.start_soon(probe)
    assert {(r.connected, r.running, r.phase, r.error) for r in results} == {(True, False, "booting", None)}
    assert source.statistics().commands_run == 2 + 5 * 4  # the survey and the follow, 4 per probe
