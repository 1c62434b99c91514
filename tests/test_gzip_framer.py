"""GzipFramer's small-window settings (trio_sse.sse): every frame still inflates at once with
a default inflater (what browsers and curl use), and a stream of task results still shrinks
to well under a third."""

from __future__ import annotations

import gzip
import json
import zlib

from trio_sse.sse import GzipFramer, encode_event


def frames(n: int = 200) -> list[bytes]:
    out = []
    for i in range(n):
        payload = {"task_id": f"{i:08x}-cbae-4d72-b042-26390db2b145-WOS", "success": i % 3 == 0,
                   "score": float(i % 3 == 0), "target": "local", "domain": ["chrome", "notepad", "vlc"][i % 3],
                   "steps": i % 17, "error": None}  # fmt: skip
        out.append(encode_event(json.dumps(payload, separators=(",", ":")), event="task_complete", id=f"local:ab-{i}"))
    return out


def test_small_window_frames_inflate_at_once_with_a_default_inflater():
    framer, inflater = GzipFramer(), zlib.decompressobj(16 + zlib.MAX_WBITS)
    for f in frames():
        assert inflater.decompress(framer.frame(f)) == f


def test_small_window_stream_is_valid_gzip_and_still_compresses():
    fs = frames()
    framer = GzipFramer()
    body = b"".join(framer.frame(f) for f in fs) + framer.close()
    assert gzip.decompress(body) == b"".join(fs)
    assert len(body) < 0.3 * sum(map(len, fs))
