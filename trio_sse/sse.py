"""Server-Sent Events wire format: frames → bytes, and a gzip framer. Pure.

The grammar is WHATWG HTML §9.2.5 ("Parsing an event stream"): a stream is UTF-8 lines ending
in LF; a line starting with ':' is a comment; ``field: value`` lines build an event; a blank
line dispatches it. A value may not contain CR or LF (they end the line), so multi-line data
is sent as several ``data:`` lines, which the client joins with LF. An ``id`` containing NUL
is ignored by conforming clients ("If the field value does not contain U+0000 NULL, then set
the last event ID buffer") — we refuse to produce one rather than have it silently dropped.
"""

from __future__ import annotations

import re
import zlib

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class FrameError(ValueError):
    """A frame that a conforming client would misread (e.g. an id with a newline)."""


def _check_field(name: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise FrameError(f"SSE {name} must not contain a line break: {value!r}")
    if "\x00" in value:
        raise FrameError(f"SSE {name} must not contain NUL: {value!r}")


def encode_event(data: str, *, event: str | None = None, id: str | None = None) -> bytes:
    """One event frame. ``data`` may span lines (one ``data:`` line each); ``event`` and ``id``
    may not."""
    parts: list[str] = []
    if id is not None:
        _check_field("id", id)
        parts.append(f"id: {id}\n")
    if event is not None:
        _check_field("event", event)
        parts.append(f"event: {event}\n")
    for line in _LINE_BREAK.split(data):
        parts.append(f"data: {line}\n")
    parts.append("\n")
    return "".join(parts).encode()


def encode_comment(text: str = "") -> bytes:
    """A comment (keepalive). Multi-line text becomes several comment lines."""
    return "".join(f": {line}\n" if line else ":\n" for line in _LINE_BREAK.split(text)).encode()


def encode_retry(ms: int) -> bytes:
    """The reconnection time. A ``retry`` value must be ASCII digits only (WHATWG)."""
    if ms < 0:
        raise FrameError(f"SSE retry must be non-negative, got {ms}")
    return f"retry: {int(ms)}\n\n".encode()


class GzipFramer:
    """Gzip-compresses a stream so every frame is decodable as soon as it arrives.

    ``Z_SYNC_FLUSH`` after each chunk emits all pending output aligned to a byte boundary
    (RFC 1951 §3.2.4 empty stored block), so ``curl --compressed`` and browsers can inflate
    each frame at once instead of waiting for the deflate window to fill.

    Memory: one compressor per client, so its size is the size of a gzip stream. zlib's
    defaults (32 KiB window, memLevel 8) cost ~108 KiB of RSS per stream; a 1 KiB window and
    memLevel 3 cost ~14 KiB and still find the JSON keys repeated from frame to frame (a
    stream of task results shrinks to 23 % instead of 16 %; measured in docs/performance.md).
    Every conforming inflater reads any window size up to 32 KiB.
    """

    __slots__ = ("_z",)

    def __init__(self, level: int = 6, *, window_bits: int = 10, mem_level: int = 3) -> None:
        # 16 + window_bits: a gzip header and trailer around the deflate stream.
        self._z = zlib.compressobj(level, zlib.DEFLATED, 16 + window_bits, mem_level)

    def frame(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)

    def close(self) -> bytes:
        return self._z.flush(zlib.Z_FINISH)
