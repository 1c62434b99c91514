"""Files fetched from targets, cached on local disk with a size cap: one fetch per file however
many clients ask (SPEC §8: "hundreds of clients looking at the live screenshot cost one fetch").

Owns: ``FileCache`` — a directory of fetched files named by a hash of their key (the target
and the remote path), an LRU index with a byte cap (``--cache-mb``), and *single flight*:
while a key is being fetched, every other caller waits for that fetch instead of starting its
own. The fetch runs in a nursery the caller names (the target's results service), not in the
request that asked first, so a client that goes away does not cancel it for the others.

A fetch writes into ``<name>.<n>.part`` and renames it when complete, so a file in the cache is
always whole; callers get an open descriptor (read it in pieces: nothing is held in memory).
Recency survives a restart (a hit touches the file's mtime; the index is rebuilt from the
directory at first use, oldest first). The newest file is kept even when it alone is larger
than the cap; everything older is evicted first. Evicting a file that is being served is safe
(POSIX: the open descriptor keeps its data until closed).

Must not: know about SSH or HTTP (a fetch is a callable given by the caller), or keep a
file's bytes in memory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from trio_sse.errors import ResultsUnavailable, TrioSSEError

log = logging.getLogger(__name__)

_HASH_CHARS = 64  # sha256 hex: the names of cached files


@dataclass(frozen=True, slots=True)
class CacheStatistics:
    entries: int
    bytes: int
    hits: int
    misses: int  # callers that had to wait for a fetch (theirs or another's)
    fetches: int  # fetches started (remote reads)
    evictions: int


class _Flight:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: BaseException | None = None


class FileCache:
    """See the module docstring. ``directory`` None: a private temporary directory, removed
    by ``close()``."""

    def __init__(self, directory: str | None, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"cache size must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self._directory = directory
        self._temporary = directory is None
        self._ready = False
        self._index: OrderedDict[str, int] = OrderedDict()  # name → size, oldest first
        self._bytes = 0
        self._flights: dict[str, _Flight] = {}  # name → the fetch under way
        self._serial = 0
        self._hits = self._misses = self._fetches = self._evictions = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def directory(self) -> str:
        self._open()
        assert self._directory is not None
        return self._directory

    def _open(self) -> None:
        """Make the directory and index what it holds (at first use: a server that never
        fetches a remote file never touches the disk)."""
        if self._ready:
            return
        if self._directory is None:
            self._directory = tempfile.mkdtemp(prefix="trio-sse-files-")
        os.makedirs(self._directory, mode=0o700, exist_ok=True)
        found: list[tuple[int, str, int]] = []
        with os.scandir(self._directory) as entries:
            for entry in entries:
                try:
                    if entry.name.endswith(".part"):  # a fetch that never finished
                        os.unlink(entry.path)
                        continue
                    if len(entry.name) != _HASH_CHARS or not entry.is_file(follow_symlinks=False):
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                found.append((st.st_mtime_ns, entry.name, st.st_size))
        for _mtime, name, size in sorted(found):
            self._index[name] = size
            self._bytes += size
        self._ready = True
        self._evict()

    def close(self) -> None:
        if self._temporary and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
            self._ready = False
            self._index.clear()
            self._bytes = 0

    def statistics(self) -> CacheStatistics:
        return CacheStatistics(len(self._index), self._bytes, self._hits, self._misses, self._fetches, self._evictions)

    # ------------------------------------------------------------------ use

    @staticmethod
    def name_of(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    async def open(
        self, key: str, fetch: Callable[[int], Awaitable[None]], nursery: trio.Nursery
    ) -> tuple[int, int]:
        """An open descriptor of the cached file of ``key`` and its size; the caller closes it.
        On a miss ``fetch(fd)`` writes the file into ``fd`` (started in ``nursery`` once, however
        many callers wait). What ``fetch`` raises reaches every waiter."""
        self._open()
        name = self.name_of(key)
        for _attempt in range(3):  # the file can be evicted between its fetch and our open
            opened = self._try_open(name)
            if opened is not None:
                self._hits += 1
                return opened
            self._misses += 1
            flight = self._flights.get(name)
            if flight is None:
                flight = self._flights[name] = _Flight()
                self._fetches += 1
                nursery.start_soon(self._fetch, name, fetch, flight)
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error.__class__(*flight.error.args)  # each waiter its own
            opened = self._try_open(name)
            if opened is not None:
                return opened
        raise ResultsUnavailable("the file cache is too small for the files asked for at once (--cache-mb)")

    def _path(self, name: str) -> str:
        assert self._directory is not None
        return os.path.join(self._directory, name)

    def _try_open(self, name: str) -> tuple[int, int] | None:
        if name not in self._index:
            return None
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            self._forget(name)
            return None
        self._index.move_to_end(name)
        try:
            os.utime(fd)  # recency, for the index rebuilt after a restart
        except OSError:
            pass
        return fd, self._index[name]

    def _forget(self, name: str) -> None:
        size = self._index.pop(name, None)
        if size is not None:
            self._bytes -= size

    async def _fetch(self, name: str, fetch: Callable[[int], Awaitable[None]], flight: _Flight) -> None:
        self._serial += 1
        part = self._path(f"{name}.{self._serial}.part")
        fd = -1
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            await fetch(fd)
            size = os.fstat(fd).st_size
            os.close(fd)
            fd = -1
            os.replace(part, self._path(name))
            self._forget(name)
            self._index[name] = size
            self._bytes += size
            self._evict()
        except trio.Cancelled:
            flight.error = ResultsUnavailable("the fetch was cancelled (the server is stopping)")
            raise
        except Exception as exc:  # supervision boundary: every waiter gets the error, the monitor runs on
            if not isinstance(exc, TrioSSEError):
                log.warning("fetching a file for the cache failed: %r", exc)
                exc = ResultsUnavailable(f"fetching the file failed: {exc}")
            flight.error = exc
        finally:
            if fd >= 0:
                os.close(fd)
            if os.path.lexists(part):
                try:
                    os.unlink(part)
                except OSError:
                    pass
            del self._flights[name]
            flight.done.set()

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and len(self._index) > 1:
            name, size = self._index.popitem(last=False)
            self._bytes -= size
            self._evictions += 1
            try:
                os.unlink(self._path(name))
            except OSError:
                pass
