"""Recognising a file generation: is the file at a path still the one read so far?

Owns: ``Fingerprint`` (what a follower keeps of the generation it reads: the offset, the first
bytes, the last bytes before the offset and — for a follower that checks from afar — an MD5
of every byte read since its last check), ``Snapshot`` (what one check compares) and
``verdict`` (compare with what the file holds now: ``None``, ``"truncated"`` or
``"replaced"``). Must not: do I/O or import anything async — the local follower reads the
bytes with ``pread``, the SSH one gets ``md5sum`` answers from the host (``ssh/commands.py``,
``RemoteCommands.survey``).

Why (SPEC §3 "Replaced or truncated logs"): a file rewritten in place (``cp``,
``open('wb')``, ``dd conv=notrunc``) may already be longer than the offset read when the
follower looks, so its size tells nothing — its first bytes do. A file cut to a shorter,
non-zero size and grown again keeps its first bytes when the cut is past them; the bytes
read before the cut do not survive. The local follower looks before every read, so the
bytes just before its offset are those. The SSH follower's ``tail`` reads on while it is not
looking, possibly past the cut, so it checks every byte read since its last check (a running
MD5, bounded: ``WINDOW_CAP``). The one case no fingerprint can tell: a file cut and grown
again with the very same bytes where it was read (the README says so).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

HEAD_BYTES = 4096  # first bytes kept (the SSH resume check compared these already)
TAIL_BYTES = 1024  # last bytes before the offset kept
# Bytes read between two remote checks that are hashed on both sides; past this (a large
# history read at once) only the last TAIL_BYTES are checked, so a check stays cheap.
WINDOW_CAP = 64 * 1024 * 1024


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one remote check compares: the file must hold at least ``offset`` bytes, its first
    ``head`` bytes must hash to ``head_md5`` and its ``window`` bytes from ``window_start``
    to ``window_md5``."""

    offset: int
    head: int
    head_md5: str
    window_start: int
    window: int
    window_md5: str


@dataclass(slots=True)
class Fingerprint:
    """What was read of one generation of a file. ``windowed``: also hash every byte read
    since the last check (the SSH follower; the local one compares bytes directly)."""

    offset: int = 0
    head: bytes = b""  # its first bytes, up to HEAD_BYTES
    tail: bytes = b""  # the bytes just before ``offset``, up to TAIL_BYTES
    windowed: bool = False
    window_start: int = 0  # the running hash covers [window_start, offset)
    _window: Any = field(default=None, repr=False)
    _next: tuple[int, Any] | None = field(default=None, repr=False)  # a check is under way
    _head_md5: tuple[bytes, str] | None = field(default=None, repr=False)

    def add(self, data: bytes) -> None:
        """``data`` was read at ``offset``."""
        # The head is the file's first bytes: only collected while reading from byte 0 (a
        # generation resumed at an offset has none: its check compares size and window).
        if len(self.head) == self.offset and len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self.tail = (self.tail + data[-TAIL_BYTES:])[-TAIL_BYTES:]
        self.offset += len(data)
        if self.windowed:
            if self._window is None:  # the window starts where hashing did
                self.window_start, self._window = self.offset - len(data), hashlib.md5(usedforsecurity=False)
            self._window.update(data)
            if self._next is not None:
                self._next[1].update(data)

    def clear(self) -> None:
        """A new generation: nothing read yet."""
        self.offset, self.head, self.tail = 0, b"", b""
        self.window_start, self._window, self._next = 0, None, None

    @property
    def tail_start(self) -> int:
        return self.offset - len(self.tail)

    def begin_check(self) -> Snapshot:
        """A remote check of what was read so far starts (``windowed`` only); the next one
        will cover what is read from now on (from the last TAIL_BYTES), if this one passes."""
        if self._window is None or self.offset - self.window_start > WINDOW_CAP:
            self.window_start, self._window = self.tail_start, hashlib.md5(self.tail, usedforsecurity=False)
        if self._head_md5 is None or self._head_md5[0] != self.head:
            self._head_md5 = (self.head, md5(self.head))
        self._next = (self.tail_start, hashlib.md5(self.tail, usedforsecurity=False))
        return Snapshot(
            offset=self.offset,
            head=len(self.head),
            head_md5=self._head_md5[1],
            window_start=self.window_start,
            window=self.offset - self.window_start,
            window_md5=self._window.hexdigest(),
        )

    def end_check(self, passed: bool) -> None:
        """The check begun last is over: when it ``passed``, what it covered is confirmed and
        the window restarts where it ended; otherwise the window keeps growing."""
        if passed and self._next is not None:
            self.window_start, self._window = self._next
        self._next = None


def verdict(offset: int, *, size: int, head_same: bool, tail_same: bool) -> str | None:
    """Compare what was read (``offset`` bytes) with the file now: its ``size``, whether its
    first bytes are the ones read (``head_same``) and whether the bytes read where the
    follower stopped still are (``tail_same``). None: the same generation (it may have
    grown); else the ``LogReset`` reason."""
    if size < offset:
        return "truncated"
    if not head_same:
        return "replaced"
    if not tail_same:
        return "truncated"  # the first bytes stayed, the ones where we stopped did not: cut and grown
    return None
