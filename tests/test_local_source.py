"""LocalSource: tail -F of real files in tmp_path, and probes against real processes and a
real HTTP server on 127.0.0.1:0.

Reads happen on the Trio thread (see the module comment of ``trio_sse.sources.local``), so
``autojump_clock`` drives the follow tests: ``trio.sleep`` below is virtual time spent so that
many polls happen (e.g. to prove that nothing more arrives), never a wait for something.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import trio
from fakehttp import serve_http
import trio.testing

from trio_sse.errors import ConfigError
from trio_sse.sources import LogBytes, LogItem, LogMissing, LogReset, ProbeResult, SourceDown, SourceUp
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

    def data_of(self, path: Path | str) -> bytes:
        """The bytes of the current generation of one file (after its last LogReset)."""
        path = str(path)
        out = b""
        for item in self.items:
            if isinstance(item, LogReset) and item.path == path:
                out = b""
            elif isinstance(item, LogBytes) and item.path == path:
                assert item.offset == len(out), (path, item.offset, len(out))
                out += item.data
        return out

    def resets(self) -> list[LogReset]:
        return [i for i in self.items if isinstance(i, LogReset)]

    async def until_data_of(self, path: Path | str, expected: bytes) -> None:
        await self.until(lambda _: len(self.data_of(path)) >= len(expected))
        assert self.data_of(path) == expected

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
        assert await f.next() == LogMissing(str(log))  # reported once...
        await f.quiet(5.0)  # ...then 100 polls: no error, no reset, nothing
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
        assert f.items[-1] == LogBytes(b"new\n", 0, str(log))
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
            LogBytes(b"old 2 appended just before the replace\n", 6, str(log)),
            LogReset(path=str(log), reason="replaced"),
            LogBytes(b"new run\n", 0, str(log)),
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
        if self.race is not None and gen.offset > 0:  # once the old file was read to its end
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
            LogBytes(b"old 1\n", 0, str(log)),
            LogBytes(b"old 2 in the race window\n", 6, str(log)),
            LogReset(str(log), "replaced"),
            LogBytes(b"new run\n", 0, str(log)),
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
            assert await f.next() == LogMissing(str(log))  # the path has no file...
            await f.quiet()
            writer.write(b"two\n")  # ...but the writer's bytes still arrive
            writer.flush()
            await f.until_data(b"one\ntwo\n")
        log.write_bytes(b"successor\n")
        items = await f.until(lambda new: bool(new) and isinstance(new[-1], LogBytes) and new[-1].offset == 0)
        assert items == [LogReset(str(log), "replaced"), LogBytes(b"successor\n", 0, str(log))]
        nursery.cancel_scope.cancel()


def _stamp(path: Path, seconds_ago: float) -> None:
    """Set ``path``'s mtime to ``seconds_ago`` before now (files written by the test itself
    get the real clock's mtime: the window compares mtimes with each other, not with now)."""
    when = time.time_ns() - int(seconds_ago * 1e9)
    os.utime(path, ns=(when, when))


async def test_glob_follows_every_worker_file_of_the_current_run(tmp_path: Path, autojump_clock) -> None:
    """Issue 10 item 1: WAA's parallel workers write normal-<worker>-<ts>.log side by side.
    Every worker's newest file is followed, each with its own offsets, bytes tagged."""
    logs = tmp_path / "logs"
    logs.mkdir()
    old0 = logs / "normal-0-20241120@140000.log"  # worker 0's previous run
    w0 = logs / "normal-0-20241120@150000.log"
    w1 = logs / "normal-1-20241120@150002.log"
    lone = logs / "normal-2-20241119@090000.log"  # a worker of a run a day ago: history
    for path in (old0, w0, w1, lone):
        path.write_bytes(b"%s history\n" % path.name.encode())
    _stamp(old0, 3600)
    _stamp(lone, 86400)
    (logs / "other.txt").write_bytes(b"not a match\n")
    (logs / "normal-9-20241120@150000.log.d").mkdir()  # no match: ends in .d
    (logs / "normal-8-20241120@150000.log").mkdir()  # a directory named like a log
    os.mkfifo(logs / "normal-7-20241120@150000.log")  # a FIFO named like a log
    pattern = str(logs / "normal-*.log")
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(pattern, poll_interval=POLL))
        await f.until_data_of(w1, b"%s history\n" % w1.name.encode())
        await f.until_data_of(w0, b"%s history\n" % w0.name.encode())
        assert f.resets() == [LogReset(str(w0), "opened"), LogReset(str(w1), "opened")]
        # Both grow at once: each byte once, in its own file, as it arrives.
        expected = {w0: f.data_of(w0), w1: f.data_of(w1)}
        for i in range(30):
            path = (w0, w1)[i % 2]
            piece = b"step %d of %s\n" % (i, path.name.encode()) + b"x" * (i * 97 % 700)
            _append(path, piece)
            expected[path] += piece
            await f.until_data_of(path, expected[path])
        assert f.data_of(w0) == expected[w0] and f.data_of(w1) == expected[w1]
        assert f.data_of(old0) == b"" and f.data_of(lone) == b""
        # A worker that starts later joins.
        w3 = logs / "normal-3-20241120@150500.log"
        w3.write_bytes(b"worker 3 started\n")
        await f.until_data_of(w3, b"worker 3 started\n")
        assert f.resets()[-1] == LogReset(str(w3), "opened")
        # Worker 0 starts a new run: its new file is opened; the old one is read to its end
        # and left (what is appended to it later is not read).
        _append(w0, b"last line of w0's run\n")
        expected[w0] += b"last line of w0's run\n"
        new0 = logs / "normal-0-20241120@160000.log"
        new0.write_bytes(b"w0 again\n")
        await f.until_data_of(new0, b"w0 again\n")
        assert f.resets()[-1] == LogReset(str(new0), "opened")
        assert f.data_of(w0) == expected[w0]
        _append(w0, b"written after it was left\n")
        _append(new0, b"more\n")
        await f.until_data_of(new0, b"w0 again\nmore\n")
        await f.quiet(3.0)
        assert f.data_of(w0) == expected[w0]
        # The lone old file grows again: now it is a worker of the current run, read whole.
        _append(lone, b"awake\n")
        await f.until_data_of(lone, b"%s history\nawake\n" % lone.name.encode())
        assert f.resets()[-1] == LogReset(str(lone), "opened")
        assert not any(isinstance(i, (SourceDown, LogMissing)) for i in f.items)
        nursery.cancel_scope.cancel()


async def test_a_file_left_behind_the_window_continues_where_it_stopped(tmp_path: Path, autojump_clock) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"  # two workers (no timestamps: two keys)
    a.write_bytes(b"a1\n")
    b.write_bytes(b"b1\n")
    source = LocalSource(str(tmp_path / "*.log"), poll_interval=POLL, worker_window=60)
    async with trio.open_nursery() as nursery:
        f = await start(nursery, source)
        await f.until_data_of(a, b"a1\n")
        await f.until_data_of(b, b"b1\n")
        _stamp(a, 120)  # a is two minutes behind b: out of the window, left
        (tmp_path / "c.log").write_bytes(b"")  # a directory event: the glob is looked at now
        await f.until(lambda _: LogReset(str(tmp_path / "c.log"), "opened") in f.items)
        await f.quiet(3.0)
        _append(a, b"a2\n")  # a grows again: it rejoins where it stopped, no reset
        await f.until_data_of(a, b"a1\na2\n")
        assert [r.path for r in f.resets()].count(str(a)) == 1
        # Left again, then rewritten while nobody looked: it rejoins as a new generation.
        _stamp(a, 120)
        (tmp_path / "d.log").write_bytes(b"")
        await f.until(lambda _: LogReset(str(tmp_path / "d.log"), "opened") in f.items)
        await f.quiet(3.0)
        a.write_bytes(b"A new run, longer than what was read\n")
        await f.until_data_of(a, b"A new run, longer than what was read\n")
        assert f.resets()[-1] == LogReset(str(a), "replaced")
        nursery.cancel_scope.cancel()


async def test_a_glob_matching_a_thousand_files_follows_at_most_max_files(
    tmp_path: Path, autojump_clock, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(1000):
        (tmp_path / f"task-{i:04d}.log").write_bytes(b"%d\n" % i)  # 1000 workers (no timestamps)
    newest = tmp_path / "task-0999.log"
    _stamp(newest, -1)  # the newest is always among those followed
    before = _open_fds()
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(tmp_path / "task-*.log"), poll_interval=POLL))
        await f.until(lambda _: sum(isinstance(i, LogBytes) for i in f.items) >= 64)
        await f.quiet(3.0)
        assert len(f.resets()) == 64 and len({r.path for r in f.resets()}) == 64
        assert LogReset(str(newest), "opened") in f.items
        assert len(_new_fd_targets(before) - {"anon_inode:inotify"}) == 64
        nursery.cancel_scope.cancel()
    warnings = [r for r in caplog.records if "following the 64 changed most recently" in r.getMessage()]
    assert len(warnings) == 1 and "1000 files" in warnings[0].getMessage()
    assert _open_fds() == before


@pytest.mark.parametrize("name", ["normal-0 with spaces-20241120@150000.log", "normal-'quoted\"-1.log",
                                  "normal-new\nline-2.log", "normal-$(touch x)-3.log", "normal-é-4.log"])
async def test_odd_file_names_in_a_glob_are_just_names(tmp_path: Path, autojump_clock, name: str) -> None:
    odd = tmp_path / name
    odd.write_bytes(b"odd\n")
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(tmp_path / "normal-*.log"), poll_interval=POLL))
        await f.until_data_of(odd, b"odd\n")
        assert f.resets() == [LogReset(str(odd), "opened")]
        nursery.cancel_scope.cancel()
    assert sorted(os.listdir(tmp_path)) == [name]


# --------------------------------------------------------------------------- rewritten in place
# Issue 10 item 6. On main these lost the new run's first bytes: the file was compared by its
# size only, and a log rewritten in place by a longer run is not shorter than what was read.
# The rewrites run as real commands while the follower waits (the Trio thread is blocked in
# subprocess.run, so it cannot look at the file half-written: the rewrite is done first).

RUN_A = b"".join(b"[2024-11-20 14:00:0%d] a%d Finished\n" % (i, i) for i in range(2))
RUN_B = b"".join(b"[2024-11-20 15:00:0%d] b%d Finished\n" % (i, i) for i in range(6))  # longer


@pytest.mark.parametrize("how", ["cp", "dd conv=notrunc", "open('wb')"])
async def test_a_log_rewritten_in_place_by_a_longer_run_is_read_from_its_first_byte(
    tmp_path: Path, autojump_clock, how: str
) -> None:
    log = tmp_path / "run.log"
    log.write_bytes(RUN_A)
    other = tmp_path / "run-b.log"
    other.write_bytes(RUN_B)
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(log), poll_interval=POLL))
        await f.until_data(RUN_A)
        inode = log.stat().st_ino
        await trio.testing.wait_all_tasks_blocked()
        if how == "cp":
            subprocess.run(["cp", str(other), str(log)], check=True)
        elif how == "dd conv=notrunc":
            subprocess.run(["dd", f"if={other}", f"of={log}", "conv=notrunc", "status=none"], check=True)
        else:
            with open(log, "wb") as fh:
                fh.write(RUN_B)
        assert log.stat().st_ino == inode and log.stat().st_size > len(RUN_A)  # in place, longer
        await f.until(lambda _: len(f.data()) >= len(RUN_B))
        assert f.data() == RUN_B  # main: RUN_A + RUN_B[len(RUN_A):], i.e. [a0, a1, b2 … b5]
        assert f.resets() == [LogReset(str(log), "opened"), LogReset(str(log), "replaced")]
        await f.quiet()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("cut", "reason"),
    [
        (5000, "truncated"),  # the first 4 KiB stayed; the bytes where the follower stopped did not
        (40, "replaced"),  # the first bytes changed too: from outside, another file's content
    ],
)
async def test_a_log_cut_shorter_and_grown_again_before_the_follower_looks_is_a_new_generation(
    tmp_path: Path, autojump_clock, cut: int, reason: str
) -> None:
    log = tmp_path / "run.log"
    first = b"".join(b"first run line %04d\n" % i for i in range(400))  # 8000 bytes
    log.write_bytes(first)
    regrown = b"".join(b"second run, other task %04d\n" % i for i in range(300))
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(log), poll_interval=POLL))
        await f.until_data(first)
        await trio.testing.wait_all_tasks_blocked()
        subprocess.run(["truncate", "-s", str(cut), str(log)], check=True)
        _append(log, regrown)
        expected = first[:cut] + regrown
        assert len(expected) > len(first)
        await f.until(lambda _: len(f.data()) >= len(expected))
        assert f.data() == expected  # main: the first run's 8000 bytes, then the regrown tail
        assert f.resets()[-1] == LogReset(str(log), reason)
        nursery.cancel_scope.cancel()


async def test_a_rewrite_of_the_same_bytes_plus_more_is_the_same_generation(tmp_path: Path, autojump_clock) -> None:
    """The counterpart: a copy of the same log that only grew (rsync, a sync client) is not a
    new run — nothing is read twice."""
    log = tmp_path / "run.log"
    log.write_bytes(RUN_B[:40])
    (tmp_path / "copy").write_bytes(RUN_B)
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(log), poll_interval=POLL))
        await f.until_data(RUN_B[:40])
        subprocess.run(["cp", str(tmp_path / "copy"), str(log)], check=True)
        await f.until_data(RUN_B)
        assert f.resets() == [LogReset(str(log), "opened")]
        nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- missing logs


async def test_a_missing_log_is_reported_once_until_a_file_came_and_went(tmp_path: Path, autojump_clock) -> None:
    log = tmp_path / "logs" / "mistyped.log"  # not even its directory exists
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(log), poll_interval=POLL))
        assert await f.next() == LogMissing(str(log))
        await f.quiet(5.0)
        log.parent.mkdir()
        log.write_bytes(b"one\n")
        assert await f.next() == LogReset(str(log), "opened")  # ends the missing report
        await f.until_data(b"one\n")
        log.unlink()  # gone, nothing in its place (and no writer holds it)
        assert await f.next() == LogMissing(str(log))
        await f.quiet(5.0)
        log.write_bytes(b"two\n")
        items = await f.until(lambda new: bool(new) and isinstance(new[-1], LogBytes))
        assert items == [LogReset(str(log), "replaced"), LogBytes(b"two\n", 0, str(log))]
        # Moved away and back unchanged: it was reported missing, so it is a new generation.
        (tmp_path / "aside").write_bytes(b"")
        os.replace(log, tmp_path / "aside")
        assert await f.next() == LogMissing(str(log))
        os.replace(tmp_path / "aside", log)
        items = await f.until(lambda new: bool(new) and isinstance(new[-1], LogBytes))
        assert items == [LogReset(str(log), "replaced"), LogBytes(b"two\n", 0, str(log))]
        await f.quiet()
        nursery.cancel_scope.cancel()


async def test_a_glob_whose_files_all_vanished_is_reported_missing_again(tmp_path: Path, autojump_clock) -> None:
    pattern = str(tmp_path / "normal-*.log")
    a = tmp_path / "normal-0-20241120@150000.log"
    b = tmp_path / "normal-1-20241120@150000.log"
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(pattern, poll_interval=POLL))
        assert await f.next() == LogMissing(pattern)
        a.write_bytes(b"a\n")
        b.write_bytes(b"b\n")
        await f.until_data_of(a, b"a\n")
        await f.until_data_of(b, b"b\n")
        a.unlink()
        await f.quiet(3.0)  # b is still there: the glob is not missing
        b.unlink()
        assert await f.next() == LogMissing(pattern)
        await f.quiet(3.0)
        assert [type(i).__name__ for i in f.items].count("LogMissing") == 2
        nursery.cancel_scope.cancel()


async def test_empty_glob_waits_quietly_for_a_match(tmp_path: Path, autojump_clock) -> None:
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(tmp_path / "logs" / "normal-*.log"), poll_interval=POLL))
        assert await f.next() == LogMissing(str(tmp_path / "logs" / "normal-*.log"))
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


async def test_a_fifo_at_the_log_path_is_refused_without_blocking(tmp_path: Path, autojump_clock) -> None:
    log = tmp_path / "run.log"
    os.mkfifo(log)  # nobody writes it: a blocking open would hang the follower
    async with trio.open_nursery() as nursery:
        f = await start(nursery, LocalSource(str(log), poll_interval=POLL))
        assert await f.next() == SourceDown(f"cannot follow {log}: not a regular file")
        await f.quiet(5.0)
        log.unlink()
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


def _run_scenario_here(name: str, directory: str) -> list[LogItem]:
    return trio.run(globals()[name], directory, clock=trio.testing.MockClock(autojump_threshold=0))


def _run_where_permissions_apply(name: str, directory: Path) -> list[LogItem]:
    """Run the scenario ``name`` (an async function of a directory returning items) where
    DAC permissions apply: here, or, as root, in a child without the DAC overrides."""
    if os.geteuid() != 0:
        return _run_scenario_here(name, str(directory))
    # root reads anything (CAP_DAC_OVERRIDE): run the scenario in a child whose
    # capability bounding set lacks the DAC overrides, so permissions apply to it.
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and util-linux setpriv is missing: cannot drop CAP_DAC_OVERRIDE")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_local_source as t; "
        "print(repr(t._run_scenario_here(sys.argv[2], sys.argv[3])))"
    )
    done = subprocess.run(
        [setpriv, "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-c", code,
         str(Path(__file__).parent), name, str(directory)],
        capture_output=True, check=False, timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    return eval(done.stdout.decode(), {  # type: ignore[no-any-return]  # our own repr of frozen dataclasses
        "SourceDown": SourceDown, "SourceUp": SourceUp, "LogReset": LogReset, "LogBytes": LogBytes,
        "LogMissing": LogMissing,
    })


@pytest.mark.slow
def test_permission_denied_is_one_outage_then_source_up(tmp_path: Path) -> None:
    items = _run_where_permissions_apply("permission_scenario", tmp_path)
    log = str(tmp_path / "locked.log")
    assert items == [
        SourceDown(f"cannot read {log}: permission denied"),
        SourceUp(),
        LogReset(log, "opened"),
        LogBytes(b"secret\n", 0, str(log)),
    ]


async def unreadable_glob_scenario(directory: str) -> list[LogItem]:
    """A glob whose only match cannot be read, then a readable worker's file, then the first
    one made readable."""
    locked = Path(directory) / "normal-0-20241120@150000.log"
    locked.write_bytes(b"secret\n")
    os.chmod(locked, 0)
    send, recv = trio.open_memory_channel[LogItem](1000)
    items: list[LogItem] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(LocalSource(str(Path(directory) / "normal-*.log"), poll_interval=POLL).follow, send)
        items.append(await recv.receive())
        await trio.sleep(5.0)  # virtual time: many more rounds, no second SourceDown
        (Path(directory) / "normal-1-20241120@150001.log").write_bytes(b"readable\n")
        while len([i for i in items if isinstance(i, LogBytes)]) < 1:
            items.append(await recv.receive())
        await trio.sleep(5.0)
        os.chmod(locked, 0o644)
        while len([i for i in items if isinstance(i, LogBytes)]) < 2:
            items.append(await recv.receive())
        await trio.sleep(5.0)
        while True:
            try:
                items.append(recv.receive_nowait())
            except trio.WouldBlock:
                break
        nursery.cancel_scope.cancel()
    return items


@pytest.mark.slow
def test_unreadable_glob_match_is_skipped_and_an_outage_only_when_nothing_else_is_readable(tmp_path: Path) -> None:
    items = _run_where_permissions_apply("unreadable_glob_scenario", tmp_path)
    locked = str(tmp_path / "normal-0-20241120@150000.log")
    other = str(tmp_path / "normal-1-20241120@150001.log")
    assert items == [
        SourceDown(f"cannot read {locked}: permission denied"),
        SourceUp(),
        LogReset(other, "opened"),
        LogBytes(b"readable\n", 0, other),
        LogReset(locked, "opened"),
        LogBytes(b"secret\n", 0, locked),
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
            assert await f.next() == LogMissing(str(log))
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
                assert items == [LogReset(str(log), "replaced"), LogBytes(b"run %d\n" % n, 0, str(log))]
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
                await f.until(lambda new, n=n: LogBytes(b"b%d\n" % n, 0, str(log)) in new)
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
            assert notify.watch([(str(log), 1)], [str(tmp_path / "missing")]) == (False, False)
            with pytest.raises(BlockingIOError):  # its own watch removal queued no wake-up
                os.read(notify.fd, 4096)
        assert notify.watch([(str(log), 1)], [str(tmp_path)]) == (True, True)
        assert notify.watch([(str(log), 1)], [str(tmp_path)]) == (False, True)
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
            assert await f.next() == LogMissing(str(log))
            looks = source.looks
            await f.quiet(5.0)
            assert source.looks - looks <= 5.0 / POLL + 5  # one look per poll, not a spin
            writer.write(b"two\n")
            writer.flush()
            await f.until_data(b"one\ntwo\n")
        logs.mkdir()
        log.write_bytes(b"successor\n")
        items = await f.until(lambda new: bool(new) and isinstance(new[-1], LogBytes) and new[-1].offset == 0)
        assert items == [LogReset(str(log), "replaced"), LogBytes(b"successor\n", 0, str(log))]
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
        assert items == [LogReset(str(log), "replaced"), LogBytes(b"successor\n", 0, str(log))]
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


# --------------------------------------------------------------------------- inside a container
# A local container target reads its log inside the container (docker exec … tail -F) with the
# SSH follower's commands run on this machine. The stand-in docker (tests/bin/docker) runs
# `docker exec` on this machine, so the "container's" files are tmp_path's. Real clock:
# these wait on real processes (a bounded fail_after guards each wait).

STAND_IN_BIN = Path(__file__).parent / "bin"


@pytest.fixture
def container(tmp_path: Path, monkeypatch) -> Path:
    """A running stand-in container named ``waa``; returns its directory (``logs`` in it is
    what `docker logs` prints)."""
    docker_dir = tmp_path / "docker"
    (docker_dir / "waa").mkdir(parents=True)
    (docker_dir / "waa" / "logs").write_bytes(b"")
    monkeypatch.setenv("PATH", f"{STAND_IN_BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("TRIO_SSE_FAKE_DOCKER", str(docker_dir))
    return docker_dir / "waa"


def _procs_with(marker: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker in cmd and state != "Z":
                found.append(cmd)
    return found


async def _eventually(pred) -> None:
    """Poll a condition only the outside world can tell (bounded)."""
    with trio.fail_after(20):
        while not pred():
            await trio.sleep(0.02)  # polling interval, not a wait for something to happen


@pytest.mark.slow
async def test_a_glob_inside_a_local_container_follows_every_worker_file(tmp_path: Path, container: Path) -> None:
    logs = tmp_path / f"results-{uuid.uuid4().hex}" / "logs"
    pattern = f"{logs}/normal-*.log"
    source = LocalSource(pattern, container="waa", log_location="container", process_pattern=None, glob_interval=0.1)
    assert source.description == f"local:waa:{pattern}"
    before = _open_fds()
    async with trio.open_nursery() as nursery:
        f = await start(nursery, source)
        assert await f.next() == LogMissing(f"waa:{pattern}")
        logs.mkdir(parents=True)
        w0, w1 = logs / "normal-0-20241120@150000.log", logs / "normal-1-20241120@150001.log"
        w0.write_bytes(RUN_A)
        w1.write_bytes(b"w1\n")
        await f.until_data_of(f"waa:{w0}", RUN_A)
        await f.until_data_of(f"waa:{w1}", b"w1\n")
        _append(w1, b"w1 step\n")
        await f.until_data_of(f"waa:{w1}", b"w1\nw1 step\n")
        # Rewritten in place by a longer run while its tail cannot look: the tail goes on at
        # its old offset, the next survey sees the first bytes changed.
        tails = [int(p) for p in os.listdir("/proc") if p.isdigit() and _is_tail_of(p, str(w0))]
        assert tails
        for pid in tails:
            os.kill(pid, signal.SIGSTOP)
        try:
            subprocess.run(["cp", "--no-preserve=all", "/dev/stdin", str(w0)], input=RUN_B, check=True)
        finally:
            for pid in tails:
                os.kill(pid, signal.SIGCONT)
        await f.until(lambda _: LogReset(f"waa:{w0}", "replaced") in f.items)
        await f.until_data_of(f"waa:{w0}", RUN_B)
        assert [r.path for r in f.resets()] == [f"waa:{w0}", f"waa:{w1}", f"waa:{w0}"]
        nursery.cancel_scope.cancel()
    await _eventually(lambda: _procs_with(str(logs)) == [])  # no tail left behind
    assert _open_fds() == before  # nor a pipe


def _is_tail_of(pid: str, path: str) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return cmd[:1] == [b"tail"] and path.encode() in cmd


@pytest.mark.slow
async def test_a_local_containers_stdout_is_followed(container: Path) -> None:
    (container / "logs").write_bytes(b"boot 1\n")
    source = LocalSource("/unused", container="waa", log_location="stdout", process_pattern=None)
    assert source.description == "local:docker logs waa"
    async with trio.open_nursery() as nursery:
        f = await start(nursery, source)
        await f.until_data(b"boot 1\n")
        _append(container / "logs", b"boot 2\n")
        await f.until_data(b"boot 1\nboot 2\n")
        assert f.resets() == [LogReset("docker logs waa", "opened")]
        assert f.items[-1] == LogBytes(b"boot 2\n", 7, "docker logs waa")
        nursery.cancel_scope.cancel()


@pytest.mark.slow
async def test_a_missing_local_container_is_one_warning_not_a_crash(
    tmp_path: Path, container: Path, caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    # A docker that counts its calls, then is the stand-in: how many rounds were tried.
    counting = tmp_path / "counting-bin"
    counting.mkdir()
    calls = tmp_path / "docker-calls"
    (counting / "docker").write_text(f'#!/bin/sh\necho x >> {shlex.quote(str(calls))}\nexec {STAND_IN_BIN}/docker "$@"\n')
    (counting / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{counting}{os.pathsep}{os.environ['PATH']}")
    source = LocalSource(f"{tmp_path}/normal-*.log", container="ghost", log_location="container",
                         process_pattern=None, glob_interval=0.05)
    async with trio.open_nursery() as nursery:
        f = await start(nursery, source)
        await _eventually(lambda: calls.exists() and len(calls.read_text().split()) >= 10)  # ten rounds
        assert f.items == [] and source_looks(caplog) == 1
        nursery.cancel_scope.cancel()
    [warning] = [r.getMessage() for r in caplog.records if "looking at" in r.getMessage()]
    assert "No such container: ghost" in warning


def source_looks(caplog: pytest.LogCaptureFixture) -> int:
    return sum("looking at" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"log_location": "inside"}, "log location must be host, container or stdout"),
        ({"log_location": "container"}, "needs a container name"),
        ({"glob_interval": 0}, "glob interval"),
        ({"worker_window": -1}, "worker window"),
        ({"worker_window": float("inf")}, "worker window"),
        ({"max_files": 0}, "max files"),
        ({"max_files": 65}, "max files"),
    ],
)
def test_junk_follow_options_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LocalSource("/tmp/a.log", **kwargs)


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
