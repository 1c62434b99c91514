"""Recognising a file generation: is the file at a path still the one read so far?

Owns: ``Fingerprint`` (what a follower keeps of the generation it reads: the offset, the first
bytes, the last bytes before the offset), ``verdict`` (compare that with what the file holds
now: ``None``, ``"truncated"`` or ``"replaced"``) and ``cksum`` (POSIX ``cksum``'s CRC, so
an SSH follower can compare those bytes on the remote without fetching them). Pure: no I/O;
the local follower reads the bytes with ``pread``, the SSH one gets ``cksum`` answers.

Why both ends (SPEC §3 "Replaced or truncated logs"): a file rewritten in place (``cp``,
``open('wb')``, ``dd conv=notrunc``) may already be longer than the offset read when the
follower looks, so its size tells nothing — its first bytes do. A file cut to a shorter,
non-zero size and grown again keeps its first bytes when the cut is past them — the bytes
just before the offset do not survive (unless the new content repeats them exactly there:
the one case no fingerprint can tell, documented in the README).
"""

from __future__ import annotations

from dataclasses import dataclass, field

HEAD_BYTES = 4096  # first bytes kept (the SSH resume check compared these already)
TAIL_BYTES = 1024  # last bytes before the offset kept


@dataclass(slots=True)
class Fingerprint:
    """What was read of one generation of a file."""

    offset: int = 0
    head: bytes = b""  # its first bytes, up to HEAD_BYTES
    tail: bytes = b""  # the bytes just before ``offset``, up to TAIL_BYTES
    _sums: dict[bytes, tuple[int, int]] = field(default_factory=dict, repr=False)

    def add(self, data: bytes) -> None:
        """``data`` was read at ``offset``."""
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self.tail = (self.tail + data[-TAIL_BYTES:])[-TAIL_BYTES:]
        self.offset += len(data)

    def clear(self) -> None:
        """A new generation: nothing read yet."""
        self.offset, self.head, self.tail = 0, b"", b""

    @property
    def tail_start(self) -> int:
        return self.offset - len(self.tail)

    def sums(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """``cksum`` of the head and of the tail (CRC, length), as the remote prints them.
        The head's is kept (it stops changing once HEAD_BYTES were read)."""
        head = self._sums.get(self.head)
        if head is None:
            self._sums.clear()
            head = self._sums[self.head] = (cksum(self.head), len(self.head))
        return head, (cksum(self.tail), len(self.tail))


def verdict(fp: Fingerprint, *, size: int, head_same: bool, tail_same: bool) -> str | None:
    """Compare what ``fp`` read with the file now: its ``size``, whether its first
    ``len(fp.head)`` bytes equal ``fp.head`` and its bytes at ``fp.tail_start`` equal
    ``fp.tail``. None: the same generation (it may have grown); else the ``LogReset`` reason."""
    if size < fp.offset:
        return "truncated"
    if not head_same:
        return "replaced"
    if not tail_same:
        return "truncated"  # the first bytes stayed, the ones where we stopped did not: cut and grown
    return None


def _table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) if c & 0x80000000 else (c << 1)
        table.append(c & 0xFFFFFFFF)
    return tuple(table)


_TABLE = _table()


def cksum(data: bytes) -> int:
    """The CRC printed by POSIX ``cksum`` (IEEE Std 1003.1, "cksum": CRC-32 with polynomial
    0x04C11DB7, most significant bit first, over the data and then its length in as few
    octets as needed, least significant first; complemented)."""
    crc = 0
    table = _TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ b]
    n = len(data)
    while n:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ (n & 0xFF)]
        n >>= 8
    return ~crc & 0xFFFFFFFF
