"""A tiny PNG encoder for generated pictures (the simulator's screenshots), pure.

Owns: ``encode_png`` (8-bit RGB rows → PNG bytes, with ``zlib`` and ``struct`` only: PNG spec
§5 chunk layout, §11.2.2 IHDR, filter type 0 per row) and ``step_frame`` (a coloured frame with
a step's number drawn as blocks). Must not: do I/O or need anything beyond the standard
library (no Pillow: the demo must not grow a dependency).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(width: int, height: int, rows: Sequence[bytes]) -> bytes:
    """``rows``: ``height`` rows of ``width * 3`` bytes (R, G, B) → a PNG file."""
    if not (1 <= width <= 1 << 16 and 1 <= height <= 1 << 16) or len(rows) != height:
        raise ValueError(f"bad PNG geometry {width}x{height} with {len(rows)} rows")
    if any(len(r) != width * 3 for r in rows):
        raise ValueError("every row must hold width * 3 bytes")
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    raw = b"".join(b"\x00" + r for r in rows)  # filter type 0 (None) on every row
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def step_frame(step: int, colour: tuple[int, int, int], *, width: int = 320, height: int = 200) -> bytes:
    """A frame in ``colour`` with a light border and ``step`` white blocks in rows of ten
    (step 0: the screen after a reset, no blocks) — a different picture for every step."""
    bg = bytes(colour)
    border = bytes(min(255, c + 80) for c in colour)
    block = b"\xff\xff\xff"
    size, gap, margin = 16, 6, 20
    rows: list[bytes] = []
    for y in range(height):
        if y < 4 or y >= height - 4:
            rows.append(border * width)
            continue
        row = bytearray(border * 4 + bg * (width - 8) + border * 4)
        line, within = divmod(y - margin, size + gap)
        if y >= margin and within < size:
            for i in range(line * 10, min(step, line * 10 + 10)):
                x0 = margin + (i % 10) * (size + gap)
                if x0 + size <= width - 4:
                    row[x0 * 3 : (x0 + size) * 3] = block * size
        rows.append(bytes(row))
    return encode_png(width, height, rows)
