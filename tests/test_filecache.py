"""The disk cache of fetched files: one fetch per file however many ask (single flight), the
size cap (LRU), errors reaching every waiter, a first asker that leaves, restarts. Fetches are
fakes driven by events; the cache writes real files in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
import trio.testing

from trio_sse.errors import FileGone, ResultsUnavailable
from trio_sse.filecache import FileCache


class Remote:
    """A fake remote: ``fetch(key)`` makes the fetch callable; each fetch waits for
    ``release`` (when set) and counts itself."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.fetches: list[str] = []
        self.release: trio.Event | None = None

    def fetch(self, key: str):  # type: ignore[no-untyped-def]
        async def run(fd: int) -> None:
            self.fetches.append(key)
            if self.release is not None:
                await self.release.wait()
            if key not in self.files:
                raise FileGone(f"{key} is gone")
            data = self.files[key]
            for i in range(0, len(data), 7):  # in pieces, as a channel delivers them
                os.write(fd, data[i : i + 7])
                await trio.lowlevel.checkpoint()

        return run


def read(opened: tuple[int, int]) -> bytes:
    fd, size = opened
    try:
        data = os.pread(fd, size + 10, 0)
    finally:
        os.close(fd)
    assert len(data) == size
    return data


async def test_many_askers_one_fetch(tmp_path: Path, autojump_clock) -> None:
    remote = Remote({"a": b"A" * 100})
    remote.release = trio.Event()
    cache = FileCache(str(tmp_path), 10_000)
    got: list[bytes] = []
    async with trio.open_nursery() as fetches, trio.open_nursery() as askers:
        for _ in range(100):
            askers.start_soon(lambda: _ask(cache, "a", remote, fetches, got))
        await trio.testing.wait_all_tasks_blocked()
        assert remote.fetches == ["a"]  # everyone waits for the one fetch
        remote.release.set()
    assert got == [b"A" * 100] * 100
    assert remote.fetches == ["a"]
    s = cache.statistics()
    assert (s.fetches, s.entries, s.bytes) == (1, 1, 100)
    # later askers are hits
    async with trio.open_nursery() as fetches:
        assert read(await cache.open("a", remote.fetch("a"), fetches)) == b"A" * 100
    assert cache.statistics().hits == 1 and remote.fetches == ["a"]


async def _ask(cache: FileCache, key: str, remote: Remote, nursery: trio.Nursery, got: list[bytes]) -> None:
    got.append(read(await cache.open(key, remote.fetch(key), nursery)))


async def test_errors_reach_every_waiter_and_nothing_is_cached(tmp_path: Path, autojump_clock) -> None:
    remote = Remote({})
    remote.release = trio.Event()
    cache = FileCache(str(tmp_path), 10_000)
    errors: list[BaseException] = []

    async def ask() -> None:
        try:
            await cache.open("gone", remote.fetch("gone"), fetches)
        except FileGone as exc:
            errors.append(exc)

    async with trio.open_nursery() as fetches, trio.open_nursery() as askers:
        for _ in range(5):
            askers.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        remote.release.set()
    assert len(errors) == 5 and len({id(e) for e in errors}) == 5  # each waiter its own exception
    assert all("gone is gone" in str(e) for e in errors)
    assert cache.statistics().entries == 0 and os.listdir(tmp_path) == []  # no .part left
    assert remote.fetches == ["gone"]


async def test_a_bug_in_a_fetch_becomes_unavailable_not_a_crash(tmp_path: Path, autojump_clock) -> None:
    cache = FileCache(str(tmp_path), 10_000)

    async def broken(fd: int) -> None:
        raise KeyError("oops")

    async with trio.open_nursery() as fetches:
        with pytest.raises(ResultsUnavailable, match="fetching the file failed"):
            await cache.open("k", broken, fetches)


async def test_the_first_asker_leaving_does_not_cancel_the_fetch(tmp_path: Path, autojump_clock) -> None:
    remote = Remote({"a": b"data"})
    remote.release = trio.Event()
    cache = FileCache(str(tmp_path), 10_000)
    got: list[bytes] = []
    async with trio.open_nursery() as fetches:
        async with trio.open_nursery() as first:
            first.start_soon(_ask, cache, "a", remote, fetches, got)
            await trio.testing.wait_all_tasks_blocked()
            first.cancel_scope.cancel()  # the client that asked first went away
        async with trio.open_nursery() as second:
            second.start_soon(_ask, cache, "a", remote, fetches, got)
            await trio.testing.wait_all_tasks_blocked()
            remote.release.set()
    assert got == [b"data"] and remote.fetches == ["a"]


async def test_the_cap_evicts_the_least_recently_used(tmp_path: Path, autojump_clock) -> None:
    remote = Remote({k: k.encode() * 40 for k in "abcd"})  # 40 bytes each
    cache = FileCache(str(tmp_path), 100)
    async with trio.open_nursery() as fetches:
        for k in "ab":
            read(await cache.open(k, remote.fetch(k), fetches))
        read(await cache.open("a", remote.fetch("a"), fetches))  # a is now the most recent
        read(await cache.open("c", remote.fetch("c"), fetches))  # 120 > 100: b goes
        assert cache.statistics().evictions == 1
        read(await cache.open("a", remote.fetch("a"), fetches))
        read(await cache.open("b", remote.fetch("b"), fetches))  # fetched again
    assert remote.fetches == ["a", "b", "c", "b"]
    s = cache.statistics()
    assert s.bytes <= 100 and s.entries == 2
    assert len(os.listdir(tmp_path)) == 2


async def test_a_file_larger_than_the_cap_is_served_and_kept_alone(tmp_path: Path, autojump_clock) -> None:
    remote = Remote({"small": b"s" * 10, "huge": b"h" * 500})
    cache = FileCache(str(tmp_path), 100)
    async with trio.open_nursery() as fetches:
        read(await cache.open("small", remote.fetch("small"), fetches))
        assert read(await cache.open("huge", remote.fetch("huge"), fetches)) == b"h" * 500
    assert cache.statistics().entries == 1


async def test_an_open_file_survives_its_eviction(tmp_path: Path, autojump_clock) -> None:
    remote = Remote({"a": b"a" * 80, "b": b"b" * 80})
    cache = FileCache(str(tmp_path), 100)
    async with trio.open_nursery() as fetches:
        opened = await cache.open("a", remote.fetch("a"), fetches)  # being served…
        read(await cache.open("b", remote.fetch("b"), fetches))  # …when it is evicted
        assert read(opened) == b"a" * 80


async def test_a_restart_keeps_the_files_and_their_order_and_drops_partial_ones(tmp_path: Path, autojump_clock) -> None:
    remote = Remote({k: k.encode() * 40 for k in "abc"})
    first = FileCache(str(tmp_path), 1000)
    async with trio.open_nursery() as fetches:
        for k in "abc":
            read(await first.open(k, remote.fetch(k), fetches))
        os.utime(tmp_path / FileCache.name_of("a"), ns=(1, 1))  # a: the oldest
        os.utime(tmp_path / FileCache.name_of("b"), ns=(2, 2))
        (tmp_path / f"{FileCache.name_of('d')}.7.part").write_bytes(b"half")
        (tmp_path / "unrelated.txt").write_bytes(b"x")
        second = FileCache(str(tmp_path), 100)  # a smaller cap: the oldest go first
        read(await second.open("c", remote.fetch("c"), fetches))
    assert remote.fetches == ["a", "b", "c"]  # c came from disk
    assert sorted(os.listdir(tmp_path)) == sorted([FileCache.name_of("b"), FileCache.name_of("c"), "unrelated.txt"])


async def test_without_a_directory_a_private_one_is_made_and_removed(autojump_clock) -> None:
    cache = FileCache(None, 1000)
    remote = Remote({"a": b"x"})
    async with trio.open_nursery() as fetches:
        read(await cache.open("a", remote.fetch("a"), fetches))
    directory = cache.directory
    assert os.path.isdir(directory) and oct(os.stat(directory).st_mode & 0o777) == "0o700"
    cache.close()
    assert not os.path.exists(directory)


def test_junk_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        FileCache(None, 0)
