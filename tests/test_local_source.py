"""LocalSource: tail -F of real files in tmp_path, and probes against real processes and a
real HTTP server on 127.0.0.1:0.

Reads happen on the Trio thread (see the module comment of ``trio_sse.sources.local``), so
``autojump_clock`` drives the follow tests: ``trio.sleep`` below is virtual time spent so that
many polls happen (e.g. to prove that nothing more arrives), never a wait for something.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import trio
from fakehttp import serve_http
import trio.testing

from trio_sse.errors import ConfigError
from trio_sse.sources import LogBytes, LogItem, LogReset, ProbeResult, SourceDown, SourceUp
from trio_sse.sources import local as local_module
from trio_sse.sources.local import LocalSource

POLL = 0.05


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


class Follower:
    """A LocalSource.follow running in a nursery, with helpers to await what it sent."""

    def __init__(self, recv: trio.MemoryReceiveChannel[LogItem]) -> None:
        self.recv = recv
        self.items: list[LogItem] = []

    async def until(self, predicate, *, limit: float = 30.0) -> list[LogItem]:
        """Receive until ``predicate(new)`` holds for the items ``new`` received by this
        call (checked before the first receive too); returns ``new``."""
        start = len(self.items)
        with trio.fail_after(limit):
            while not predicate(self.items[start:]):
                self.items.append(await self.recv.receive())
        return self.items[start:]

    async def next(self) -> LogItem:
        with trio.fail_after(30):
            item = await self.recv.receive()
        self.items.append(item)
        return item

    def data(self) -> bytes:
        """The bytes of the current generation (everything after the last LogReset)."""
        out = b""
        for item in self.items:
            if isinstance(item, LogReset):
                out = b""
            elif isinstance(item, LogBytes):
                assert item.offset == len(out), (item.offset, len(out))  # contiguous, no gap/dup
                out += item.data
        return out

    async def quiet(self, seconds: float = 1.0) -> None:
        """Let ``seconds`` of (virtual) time pass and assert nothing more was sent."""
        await trio.sleep(seconds)
        with pytest.raises(trio.WouldBlock):
            self.recv.receive_nowait()

    async def until_data(self, expected: bytes) -> None:
        await self.until(lambda _: len(self.data()) >= len(expected))
        assert self.data() == expected


async def start(nursery: trio.Nursery, source: LocalSource) -> Follower:
    # Unbounded-ish buffer: the test reads at its own pace and asserts on everything sent.
    send, recv = trio.open_memory_channel[LogItem](10_000)
    await nursery.start(source.follow, send)
    return Follower(recv)


def _fd_targets() -> dict[str, str]:
    """Open descriptor → what it points at (without the listing's own, closed by now)."""
    targets = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            pass
    return targets


def _open_fds() -> set[str]:
    return set(_fd_targets())


def _new_fd_targets(before: set[str]) -> set[str]:
    """What the descriptors opened since ``before`` point at."""
    return {target for fd, target in _fd_targets().items() if fd not in before}


# --------------------------------------------------------------------------- follow


async def test_reads_history_from_start_then_appends_each_byte_once(tmp_path: Path, autojump_clock) -> None:
    log = tmp_path / "run.log"
    history = b"".join(b"history line %d\n" % i for i in range(200))
    log.write_bytes(history)
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(log), poll_interval=POLL, chunk_size=1000))
        assert await f.next() == LogReset(path=str(log), reason="opened")
        await f.until_data(history)
        assert max(len(i.data) for i in f.items if isinstance(i, LogBytes)) <= 1000
        expected = history
        for i in range(50):  # appends of all sizes, incl. partial lines and empty writes
            piece = (b"x" * (i * 37 % 300)) + (b"\n" if i % 3 else b"")
            _append(log, piece)
            expected += piece
            await f.until_data(expected)
        await f.quiet()
        assert log.read_bytes() == f.data()
        assert sum(isinstance(i, LogReset) for i in f.items) == 1
        nursery.cancel_scope.cancel()


async def test_file_missing_then_appears(tmp_path: Path, autojump_clock) -> None:
    log = tmp_path / "later.log"
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(log), poll_interval=POLL))
        await f.quiet(5.0)  # 100 polls: no error, no reset, nothing
        log.write_bytes(b"first\n")
        assert await f.next() == LogReset(path=str(log), reason="opened")
        await f.until_data(b"first\n")
        nursery.cancel_scope.cancel()


async def test_truncation_resets_and_rereads_from_zero(tmp_path: Path, autojump_clock) -> None:
    log = tmp_path / "run.log"
    log.write_bytes(b"a long first run line\n")
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(log), poll_interval=POLL))
        await f.until_data(b"a long first run line\n")
        with open(log, "r+b") as fh:  # truncate in place (same inode), then a shorter run
            fh.truncate(0)
            fh.write(b"new\n")
        assert await f.next() == LogReset(path=str(log), reason="truncated")
        await f.until_data(b"new\n")
        assert f.items[-1] == LogBytes(b"new\n", 0)
        await f.quiet()
        nursery.cancel_scope.cancel()


async def test_replacement_by_rename_keeps_the_old_tail(tmp_path: Path, autojump_clock) -> None:
    log = tmp_path / "run.log"
    log.write_bytes(b"old 1\n")
    before = _open_fds()
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(log), poll_interval=POLL))
        await f.until_data(b"old 1\n")
        # No checkpoint between these: the source sees the append only after the rename.
        _append(log, b"old 2 appended just before the replace\n")
        new = tmp_path / "run.log.new"
        new.write_bytes(b"new run\n")
        os.replace(new, log)
        items = await f.until(lambda new: bool(new) and isinstance(new[-1], LogBytes) and new[-1].offset == 0)
        assert items == [
            LogBytes(b"old 2 appended just before the replace\n", 6),
            LogReset(path=str(log), reason="replaced"),
            LogBytes(b"new run\n", 0),
        ]
        _append(log, b"more\n")
        await f.until_data(b"new run\nmore\n")
        await f.quiet()
        nursery.cancel_scope.cancel()
    assert _open_fds() == before  # the old and the new descriptor are closed


class _RacingSource(LocalSource):
    """Injects the race the drain exists for: the writer appends and renames right after the
    source found the end of the old file and before it looks at the path."""

    def __init__(self, *args, race, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.race = race

    def _change(self, gen):
        if self.race is not None:
            race, self.race = self.race, None
            race()
        return super()._change(gen)


async def test_bytes_appended_between_eof_and_the_rename_check_are_drained(
    tmp_path: Path, autojump_clock
) -> None:
    log = tmp_path / "run.log"
    log.write_bytes(b"old 1\n")

    def race() -> None:
        _append(log, b"old 2 in the race window\n")
        (tmp_path / "new").write_bytes(b"new run\n")
        os.replace(tmp_path / "new", log)

    async with trio.open_nursery() as nursery:
        f = await start(nursery, _RacingSource(str(log), poll_interval=POLL, race=race))
        items = await f.until(lambda new: len(new) >= 5)
        assert items == [
            LogReset(str(log), "opened"),
            LogBytes(b"old 1\n", 0),
            LogBytes(b"old 2 in the race window\n", 6),
            LogReset(str(log), "replaced"),
            LogBytes(b"new run\n", 0),
        ]
        nursery.cancel_scope.cancel()


async def test_deleted_file_keeps_being_followed_until_a_successor_appears(
    tmp_path: Path, autojump_clock
) -> None:
    log = tmp_path / "run.log"
    log.write_bytes(b"one\n")
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(log), poll_interval=POLL))
        await f.until_data(b"one\n")
        with open(log, "ab") as writer:  # a writer holding the file across its unlink
            log.unlink()
            await f.quiet()
            writer.write(b"two\n")
            writer.flush()
            await f.until_data(b"one\ntwo\n")
        log.write_bytes(b"successor\n")
        items = await f.until(lambda new: bool(new) and isinstance(new[-1], LogBytes) and new[-1].offset == 0)
        assert items == [LogReset(str(log), "replaced"), LogBytes(b"successor\n", 0)]
        nursery.cancel_scope.cancel()


async def test_glob_follows_the_newest_match_and_switches(tmp_path: Path, autojump_clock) -> None:
    base = 1_700_000_000 * 10**9
    older, current = tmp_path / "normal-1.log", tmp_path / "normal-2.log"
    older.write_bytes(b"older run\n")
    current.write_bytes(b"current run\n")
    (tmp_path / "other.txt").write_bytes(b"not a match\n")
    os.utime(older, ns=(base, base))
    os.utime(current, ns=(base + 10**9, base + 10**9))
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(tmp_path / "normal-*.log"), poll_interval=POLL))
        assert await f.next() == LogReset(str(current), "opened")
        await f.until_data(b"current run\n")
        # Appending to the followed file keeps it the newest; touching an older one does not
        # make it newer than the followed file.
        _append(current, b"step\n")
        await f.until_data(b"current run\nstep\n")
        os.utime(older, ns=(base + 5 * 10**8, base + 5 * 10**8))
        await f.quiet()
        # A new run's file appears; the old one gets a last line just before.
        _append(current, b"last line of the old run\n")
        newest = tmp_path / "normal-3.log"
        newest.write_bytes(b"newest run\n")
        future = os.stat(current).st_mtime_ns + 10**9
        os.utime(newest, ns=(future, future))
        items = await f.until(lambda new: bool(new) and isinstance(new[-1], LogBytes) and new[-1].offset == 0)
        assert items == [
            LogBytes(b"last line of the old run\n", len(b"current run\nstep\n")),
            LogReset(str(newest), "newer-match"),
            LogBytes(b"newest run\n", 0),
        ]
        nursery.cancel_scope.cancel()


async def test_empty_glob_waits_quietly_for_a_match(tmp_path: Path, autojump_clock) -> None:
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(tmp_path / "logs" / "normal-*.log"), poll_interval=POLL))
        await f.quiet(5.0)
        (tmp_path / "logs").mkdir()
        (tmp_path / "logs" / "normal-7.log").write_bytes(b"run\n")
        assert await f.next() == LogReset(str(tmp_path / "logs" / "normal-7.log"), "opened")
        await f.until_data(b"run\n")
        nursery.cancel_scope.cancel()


async def test_not_a_regular_file_is_one_outage_then_recovers(tmp_path: Path, autojump_clock) -> None:
    log = tmp_path / "run.log"
    log.mkdir()  # a directory where the log should be: unreadable as a log
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(log), poll_interval=POLL))
        down = await f.next()
        assert down == SourceDown(f"cannot follow {log}: not a regular file")
        await f.quiet(5.0)  # 100 more failed attempts, no second SourceDown
        log.rmdir()
        log.write_bytes(b"ok\n")
        assert await f.next() == SourceUp()
        assert await f.next() == LogReset(str(log), "opened")
        await f.until_data(b"ok\n")
        nursery.cancel_scope.cancel()


async def permission_scenario(directory: str) -> list[LogItem]:
    """A file without read permission: one SourceDown, then SourceUp once it is readable.
    Runs where DAC permissions apply (not as a root with CAP_DAC_OVERRIDE)."""
    log = Path(directory) / "locked.log"
    log.write_bytes(b"secret\n")
    os.chmod(log, 0)
    send, recv = trio.open_memory_channel[LogItem](1000)
    async with trio.open_nursery() as nursery:
        await nursery.start(LocalSource(str(log), poll_interval=POLL).follow, send)
        items = [await recv.receive()]
        await trio.sleep(5.0)  # virtual time: 100 more failed attempts
        os.chmod(log, 0o644)
        while not isinstance(items[-1], LogBytes):
            items.append(await recv.receive())
        nursery.cancel_scope.cancel()
    return items


def _run_permission_scenario_here(directory: str) -> list[LogItem]:
    return trio.run(permission_scenario, directory, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.mark.slow
def test_permission_denied_is_one_outage_then_source_up(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        items = _run_permission_scenario_here(str(tmp_path))
    else:
        # root reads anything (CAP_DAC_OVERRIDE): run the scenario in a child whose
        # capability bounding set lacks the DAC overrides, so permissions apply to it.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and util-linux setpriv is missing: cannot drop CAP_DAC_OVERRIDE")
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); import test_local_source as t; "
            "print(repr(t._run_permission_scenario_here(sys.argv[2])))"
        )
        done = subprocess.run(
            [setpriv, "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-c", code,
             str(Path(__file__).parent), str(tmp_path)],
            capture_output=True, check=False, timeout=60,
        )
        assert done.returncode == 0, done.stderr.decode()
        items = eval(done.stdout.decode(), {  # our own repr of frozen dataclasses
            "SourceDown": SourceDown, "SourceUp": SourceUp, "LogReset": LogReset, "LogBytes": LogBytes,
        })
    log = str(tmp_path / "locked.log")
    assert items == [
        SourceDown(f"cannot read {log}: permission denied"),
        SourceUp(),
        LogReset(log, "opened"),
        LogBytes(b"secret\n", 0),
    ]


async def test_cancellation_closes_the_descriptor(tmp_path: Path, autojump_clock) -> None:
    log = tmp_path / "run.log"
    log.write_bytes(b"x\n")
    before = _open_fds()
    with trio.move_on_after(10):
        async with trio.open_nursery() as nursery:
            f = await start(nursery, LocalSource(str(log), poll_interval=POLL))
            await f.until_data(b"x\n")
            # it really holds the file open (and, on Linux, an inotify descriptor)
            assert _new_fd_targets(before) - {"anon_inode:inotify"} == {str(log)}
    assert _open_fds() == before


# --------------------------------------------------------------------------- inotify wake-ups
# These run on the REAL clock with a 60 s poll (the largest allowed) under fail_after(5): the
# poll cannot fire, so only an inotify wake-up can deliver. Nothing here sleeps.

SLOW_POLL = 60.0
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux-only")


@linux_only
async def test_append_wakes_the_follower_without_the_poll(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_bytes(b"history\n")
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            f = await start(nursery, LocalSource(str(log), poll_interval=SLOW_POLL))
            await f.until_data(b"history\n")
            expected = b"history\n"
            for i in range(20):
                await trio.testing.wait_all_tasks_blocked()  # the follower is parked, waiting
                _append(log, b"line %d\n" % i)
                expected += b"line %d\n" % i
                await f.until_data(expected)
            nursery.cancel_scope.cancel()


@linux_only
async def test_file_created_after_follow_started_wakes_it(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            f = await start(nursery, LocalSource(str(log), poll_interval=SLOW_POLL))
            await trio.testing.wait_all_tasks_blocked()
            log.write_bytes(b"first\n")
            assert await f.next() == LogReset(str(log), "opened")
            await f.until_data(b"first\n")
            await trio.testing.wait_all_tasks_blocked()
            _append(log, b"second\n")  # the new generation is watched too
            await f.until_data(b"first\nsecond\n")
            nursery.cancel_scope.cancel()


@linux_only
async def test_replace_by_rename_wakes_it(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_bytes(b"old\n")
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            f = await start(nursery, LocalSource(str(log), poll_interval=SLOW_POLL))
            await f.until_data(b"old\n")
            for n in range(3):  # each replacement is a new inode to watch
                await trio.testing.wait_all_tasks_blocked()
                (tmp_path / "new").write_bytes(b"run %d\n" % n)
                os.replace(tmp_path / "new", log)
                items = await f.until(lambda new: bool(new) and isinstance(new[-1], LogBytes))
                assert items == [LogReset(str(log), "replaced"), LogBytes(b"run %d\n" % n, 0)]
                await trio.testing.wait_all_tasks_blocked()
                _append(log, b"more\n")
                await f.until_data(b"run %d\nmore\n" % n)
            nursery.cancel_scope.cancel()


@linux_only
async def test_inotify_follow_leaks_no_descriptor(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_bytes(b"a\n")
    before = _open_fds()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            f = await start(nursery, LocalSource(str(log), poll_interval=SLOW_POLL))
            await f.until_data(b"a\n")
            assert _new_fd_targets(before) == {str(log), "anon_inode:inotify"}
            for n in range(5):
                await trio.testing.wait_all_tasks_blocked()
                (tmp_path / "new").write_bytes(b"b%d\n" % n)
                os.replace(tmp_path / "new", log)
                await f.until(lambda new, n=n: LogBytes(b"b%d\n" % n, 0) in new)
            assert _new_fd_targets(before) == {str(log), "anon_inode:inotify"}
            nursery.cancel_scope.cancel()
    assert _open_fds() == before


class _CountingSource(LocalSource):
    """Counts the looks at the file at its end; a busy loop becomes an error, not a hang
    (under autojump_clock a task that never blocks would stop virtual time)."""

    looks = 0

    def _change(self, gen):
        self.looks += 1
        assert self.looks < 10_000, "the follower spins"
        return super()._change(gen)


@linux_only
async def test_a_watch_that_cannot_be_added_is_retried_without_waking_itself(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_bytes(b"x\n")
    notify = local_module._Inotify()
    try:
        for _ in range(3):  # file watch added, directory watch fails: retried on every call
            assert notify.watch(str(log), str(tmp_path / "missing"), 1) == (False, False)
            with pytest.raises(BlockingIOError):  # its own watch removal queued no wake-up
                os.read(notify.fd, 4096)
        assert notify.watch(str(log), str(tmp_path), 1) == (True, True)
        assert notify.watch(str(log), str(tmp_path), 1) == (False, True)
        _append(log, b"y\n")
        assert os.read(notify.fd, 4096)  # and the watch is live
    finally:
        notify.close()


@linux_only
async def test_directory_removed_under_a_followed_file_neither_spins_nor_stops(
    tmp_path: Path, autojump_clock
) -> None:
    # A writer holds the file open across the unlink and the rmdir of its directory.
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "run.log"
    log.write_bytes(b"one\n")
    source = _CountingSource(str(log), poll_interval=POLL)
    async with trio.open_nursery() as nursery:
        f = await start(nursery, source)
        await f.until_data(b"one\n")
        with open(log, "ab") as writer:
            log.unlink()
            logs.rmdir()
            looks = source.looks
            await f.quiet(5.0)
            assert source.looks - looks <= 5.0 / POLL + 5  # one look per poll, not a spin
            writer.write(b"two\n")
            writer.flush()
            await f.until_data(b"one\ntwo\n")
        logs.mkdir()
        log.write_bytes(b"successor\n")
        items = await f.until(lambda new: bool(new) and isinstance(new[-1], LogBytes) and new[-1].offset == 0)
        assert items == [LogReset(str(log), "replaced"), LogBytes(b"successor\n", 0)]
        nursery.cancel_scope.cancel()


async def test_without_inotify_it_polls_at_its_interval(tmp_path: Path, autojump_clock, monkeypatch) -> None:
    def unavailable(self) -> None:
        raise OSError("inotify_init1: too many open files")

    monkeypatch.setattr(local_module._Inotify, "__init__", unavailable)
    log = tmp_path / "run.log"
    log.write_bytes(b"a\n")
    before = _open_fds()
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(log), poll_interval=1.0))
        await f.until_data(b"a\n")
        assert _new_fd_targets(before) == {str(log)}  # no inotify descriptor
        expected = b"a\n"
        for i in range(5):
            await trio.testing.wait_all_tasks_blocked()
            t0 = trio.current_time()
            _append(log, b"%d\n" % i)
            expected += b"%d\n" % i
            await f.until_data(expected)
            assert 0 < trio.current_time() - t0 <= 1.0  # found by the next poll, not at once
        log.unlink()
        log.write_bytes(b"successor\n")
        items = await f.until(lambda new: bool(new) and isinstance(new[-1], LogBytes))
        assert items == [LogReset(str(log), "replaced"), LogBytes(b"successor\n", 0)]
        nursery.cancel_scope.cancel()
    assert _open_fds() == before


@linux_only
async def test_with_inotify_virtual_time_does_not_pass_before_an_append_arrives(
    tmp_path: Path, autojump_clock
) -> None:
    # The counterpart of the test above: the inotify descriptor is readable as soon as the
    # write returns, so Trio's I/O check sees it before autojump would advance the clock.
    log = tmp_path / "run.log"
    log.write_bytes(b"a\n")
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(log), poll_interval=1.0))
        await f.until_data(b"a\n")
        await trio.sleep(10)  # well parked
        t0 = trio.current_time()
        _append(log, b"b\n")
        await f.until_data(b"a\nb\n")
        assert trio.current_time() == t0
        nursery.cancel_scope.cancel()


async def test_large_history_arrives_in_bounded_chunks_through_a_small_channel(
    tmp_path: Path, autojump_clock
) -> None:
    log = tmp_path / "big.log"
    history = os.urandom(1_000_000)  # not even UTF-8: bytes are bytes
    log.write_bytes(history)
    send, recv = trio.open_memory_channel[LogItem](0)  # the source waits for a slow consumer
    got = bytearray()
    async with trio.open_nursery() as nursery:
        await nursery.start(LocalSource(str(log), poll_interval=POLL, chunk_size=4096).follow, send)
        with trio.fail_after(30):
            assert await recv.receive() == LogReset(str(log), "opened")
            while len(got) < len(history):
                item = await recv.receive()
                assert isinstance(item, LogBytes) and item.offset == len(got) and len(item.data) <= 4096
                got += item.data
        nursery.cancel_scope.cancel()
    assert bytes(got) == history


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"log": ""}, "log path must be a non-empty string"),
        ({"log": "/tmp/a\x00b.log"}, "must not contain NUL"),
        ({"log": "/tmp/a\nb.log"}, "must not contain NUL or newline"),
        ({"log": "/tmp/a.log", "poll_interval": 0}, "poll interval"),
        ({"log": "/tmp/a.log", "poll_interval": -1.0}, "poll interval"),
        ({"log": "/tmp/a.log", "poll_interval": float("nan")}, "poll interval"),
        ({"log": "/tmp/a.log", "chunk_size": 0}, "chunk size"),
        ({"log": "/tmp/a.log", "chunk_size": 1.5}, "chunk size"),
        ({"log": "/tmp/a.log", "container": "--rm"}, "container name"),
        ({"log": "/tmp/a.log", "container": "a b"}, "container name"),
        ({"log": "/tmp/a.log", "container": ""}, "container name"),
        ({"log": "/tmp/a.log", "probe_url": "localhost:5000/probe"}, "probe URL"),
        ({"log": "/tmp/a.log", "probe_url": "ftp://x/probe"}, "probe URL"),
        ({"log": "/tmp/a.log", "process_pattern": ""}, "process pattern"),
    ],
)
def test_junk_arguments_are_refused_at_construction(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LocalSource(**kwargs)


def test_description_names_the_log() -> None:
    assert LocalSource("/tmp/waa.log").description == "local:/tmp/waa.log"
    assert "container waa" in LocalSource("/tmp/waa.log", container="waa").description


# --------------------------------------------------------------------------- probe


async def test_probe_sees_a_real_process_by_pattern() -> None:
    token = f"86399.{os.getpid()}"
    source = LocalSource("/nonexistent.log", process_pattern=rf"^sleep {token.replace('.', '[.]')}$")
    assert (await source.probe()).running is False
    process = await trio.lowlevel.open_process(["sleep", token])
    try:
        result = await source.probe()
        assert result == ProbeResult(connected=True, running=True)  # nothing else configured
    finally:
        process.kill()
        await process.wait()
    assert (await source.probe()).running is False


async def test_two_local_targets_probing_at_once_do_not_take_each_other_for_the_benchmark(tmp_path: Path) -> None:
    """Issue 10 item 4: with two local targets, one target's ``pgrep -f PATTERN`` matched the
    other's concurrent pgrep (its command line holds the pattern): "running" with nothing
    running. The sibling probe is made deterministic here: a process whose command line is
    exactly such a probe's stays up for the whole test (the real concurrent probes run too)."""
    token = uuid.uuid4().hex
    pattern = f"python.*run.py --run-tag {token}"  # the default pattern, made unique to this test
    sources = [LocalSource(str(tmp_path / f"{name}.log"), process_pattern=pattern) for name in ("vm1", "vm2")]

    async def probe_both() -> list[bool | None]:
        results: dict[int, bool | None] = {}

        async def one(i: int) -> None:
            results[i] = (await sources[i].probe()).running

        async with trio.open_nursery() as nursery:
            for i in range(len(sources)):
                nursery.start_soon(one, i)
        return [results[i] for i in range(len(sources))]

    sibling = await trio.lowlevel.open_process(
        [sys.executable, "-c", "import time; time.sleep(3600)", "pgrep", "-f", "-a", "--", pattern]
    )
    try:
        assert await probe_both() == [False, False]
        run_py = tmp_path / "run.py"
        run_py.write_text("import time\ntime.sleep(3600)\n")
        benchmark = await trio.lowlevel.open_process([sys.executable, str(run_py), "--run-tag", token])
        try:
            assert await probe_both() == [True, True]
        finally:
            benchmark.kill()
            await benchmark.wait()
        assert await probe_both() == [False, False]
    finally:
        sibling.kill()
        await sibling.wait()


async def test_probe_without_pgrep_or_docker_gives_none_not_an_exception(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no pgrep, no docker
    assert await LocalSource("/x.log").probe() == ProbeResult(connected=True, running=None)
    result = await LocalSource("/x.log", container="waa").probe()
    assert result.connected is False and result.running is None and result.phase is None
    assert "docker" in (result.error or "")


async def test_probe_with_no_process_pattern_runs_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    source = LocalSource("/x.log", process_pattern=None, vnc_url="http://h:8006")
    assert await source.probe() == ProbeResult(connected=True, vnc_url="http://h:8006")


FAKE_DOCKER = """#!/bin/sh
# A stand-in for the docker CLI (no daemon here): answers the three commands LocalSource runs.
case "$1" in
inspect) [ "$4" = "waa" ] && echo "$FAKE_RUNNING" && exit 0
         echo "Error: No such object: $4" >&2; exit 1 ;;
exec) shift 2; exec "$@" ;;
logs) echo "Windows started successfully, visit http://127.0.0.1:8006/ to view the screen..."
      echo "VM is up and running, and the Windows Arena Server is ready to use!" >&2
      echo "Booting Windows using QEMU v9.0.2..."  # a reboot: the newest line wins
      printf "some later unrelated line without newline" >&2 ;;
esac
"""


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_RUNNING", "true")
    return docker


async def test_probe_container_running_phase_and_process(fake_docker: Path, monkeypatch) -> None:
    token = f"86398.{os.getpid()}"
    source = LocalSource("/x.log", container="waa", process_pattern=rf"^sleep {token.replace('.', '[.]')}$")
    process = await trio.lowlevel.open_process(["sleep", token])
    try:
        result = await source.probe()
    finally:
        process.kill()
        await process.wait()
    # the last phase line wins, in the order docker wrote stdout and stderr
    assert result == ProbeResult(connected=True, running=True, phase="booting")
    assert (await source.probe()).running is False


async def test_probe_container_stopped_or_unknown(fake_docker: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_RUNNING", "false")
    stopped = await LocalSource("/x.log", container="waa").probe()
    assert stopped.connected is False and stopped.running is None
    assert stopped.error == "container waa is not running"
    assert stopped.phase == "booting"  # docker logs works for a stopped container too
    missing = await LocalSource("/x.log", container="nope").probe()
    assert missing.connected is False and missing.phase is None
    assert missing.error == "docker inspect nope: Error: No such object: nope"


async def _serve_once(response: bytes, nursery: trio.Nursery) -> int:
    """A tiny HTTP server on 127.0.0.1:0 answering every request with ``response`` (empty:
    never answer); its port."""
    return await nursery.start(serve_http, response or None)  # type: ignore[no-any-return]


def _http(status: str, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (status.encode(), len(body), body)


async def test_probe_url_ready_and_not_ready() -> None:
    async with trio.open_nursery() as nursery:
        ok = await _serve_once(_http("200 OK", b'{"status": "Service is operational"}'), nursery)
        bad = await _serve_once(_http("503 Service Unavailable", b"booting"), nursery)
        plain = await _serve_once(_http("200 OK", b"hello"), nursery)
        result = await LocalSource("/x.log", process_pattern=None, probe_url=f"http://127.0.0.1:{ok}/probe").probe()
        assert result == ProbeResult(connected=True, waa_ready=True, probe_status="ready")
        result = await LocalSource("/x.log", process_pattern=None, probe_url=f"http://127.0.0.1:{bad}/probe").probe()
        assert (result.waa_ready, result.probe_status) == (False, "HTTP 503")
        result = await LocalSource("/x.log", process_pattern=None, probe_url=f"http://127.0.0.1:{plain}/").probe()
        assert (result.waa_ready, result.probe_status) == (False, "HTTP 200")
        nursery.cancel_scope.cancel()


async def test_probe_url_unreachable_is_not_responding() -> None:
    with trio.socket.socket() as sock:  # bound, never listening: connection refused
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = await LocalSource("/x.log", process_pattern=None, probe_url=f"http://127.0.0.1:{port}/probe").probe()
    assert result == ProbeResult(connected=True, waa_ready=False, probe_status="Not responding")


async def test_probe_url_that_hangs_gives_up_after_two_seconds(autojump_clock) -> None:
    async with trio.open_nursery() as nursery:
        port = await _serve_once(b"", nursery)  # accepts, reads, never answers
        start = trio.current_time()
        result = await LocalSource("/x.log", process_pattern=None, probe_url=f"http://127.0.0.1:{port}/").probe()
        assert trio.current_time() - start == pytest.approx(2.0)
        assert (result.waa_ready, result.probe_status) == (False, "Not responding")
        nursery.cancel_scope.cancel()
