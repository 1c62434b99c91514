"""SSE frames, checked against httpx-sse's public API (``EventSource.iter_sse``) as an
independent oracle: whole, byte by byte, in small pieces and split at every offset."""

from __future__ import annotations

import zlib

import pytest

from support import decode_sse
from trio_sse.sse import FrameError, GzipFramer, encode_comment, encode_event, encode_retry


def decode(raw: bytes, *, split_every: int | None = None):
    """Feed ``raw`` to httpx-sse whole or in pieces of ``split_every`` bytes."""
    if split_every is None:
        return decode_sse([raw])
    return decode_sse(raw[i : i + split_every] for i in range(0, len(raw), split_every))


@pytest.mark.parametrize(
    ("data", "event", "id"),
    [
        ('{"a":1}', "progress", None),
        ('{"task_id":"x"}', "task_complete", "local:abc-1"),
        ("line one\nline two\r\nline three\rfour", "status", None),
        ("", None, None),
        ("data: looks like a field\n: and a comment", "error", "t:1-2"),
        ("ünïcödé ✓ 🎉", "task_complete", "ü:1"),
    ],
)
@pytest.mark.parametrize("split_every", [None, 1, 3])
def test_round_trip_through_httpx_sse(data, event, id, split_every):
    frame = encode_event(data, event=event, id=id)
    (ev,) = decode(frame, split_every=split_every)
    assert ev.data == data.replace("\r\n", "\n").replace("\r", "\n")
    assert ev.event == (event or "message")
    assert ev.id == (id or "")


OPENING = (
    encode_retry(3000)
    + encode_comment("connected")
    + b"\n"
    + encode_event("1", event="a")
    + encode_comment("keepalive")
    + encode_event("ünï ✓\r\nnext", event="b", id="x:1-1")
)
OPENING_EVENTS = [("message", "", "", 3000), ("a", "1", "", None), ("b", "ünï ✓\nnext", "x:1-1", None)]


def test_several_frames_and_comments_in_one_chunk():
    events = decode(OPENING)
    assert [(e.event, e.data, e.id, e.retry) for e in events] == OPENING_EVENTS


def test_several_frames_split_at_every_offset_and_byte_by_byte():
    # Every two-piece split (a CR LF, a UTF-8 character, a field name cut in two), then one
    # byte at a time: the same events as whole.
    for cut in range(1, len(OPENING)):
        events = decode_sse([OPENING[:cut], OPENING[cut:]])
        assert [(e.event, e.data, e.id, e.retry) for e in events] == OPENING_EVENTS, cut
    events = decode(OPENING, split_every=1)
    assert [(e.event, e.data, e.id, e.retry) for e in events] == OPENING_EVENTS


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b"])
def test_ids_and_event_names_with_line_breaks_or_nul_are_refused(bad):
    with pytest.raises(FrameError):
        encode_event("x", id=bad)
    with pytest.raises(FrameError):
        encode_event("x", event=bad)


def test_exact_bytes():
    assert encode_event('{"a":1}', event="progress") == b'event: progress\ndata: {"a":1}\n\n'
    assert encode_event("x", event="e", id="i") == b"id: i\nevent: e\ndata: x\n\n"
    assert encode_comment("keepalive") == b": keepalive\n"
    assert encode_comment("a\nb") == b": a\n: b\n"
    assert encode_retry(3000) == b"retry: 3000\n\n"
    with pytest.raises(FrameError):
        encode_retry(-1)


def test_gzip_every_frame_decodable_at_once():
    """After each frame() the decompressor yields exactly the frame: no waiting for more."""
    framer, inflater = GzipFramer(), zlib.decompressobj(16 + zlib.MAX_WBITS)
    frames = [encode_event(f'{{"n":{i}}}', event="progress") for i in range(50)]
    for frame in frames:
        assert inflater.decompress(framer.frame(frame)) == frame
    assert inflater.decompress(framer.close()) == b""
    assert inflater.eof


def test_gzip_whole_stream_is_valid_gzip():
    framer = GzipFramer()
    body = b"".join(framer.frame(b"event: x\ndata: %d\n\n" % i) for i in range(10)) + framer.close()
    assert zlib.decompress(body, 16 + zlib.MAX_WBITS) == b"".join(b"event: x\ndata: %d\n\n" % i for i in range(10))
