"""The pure helpers every source shares: which worker a log file belongs to, which glob
matches are the current run (``sources.workers``), and recognising a file generation
(``sources.fingerprint``)."""

from __future__ import annotations

import os

import pytest

from trio_sse.sources.fingerprint import HEAD_BYTES, TAIL_BYTES, WINDOW_CAP, Fingerprint, Snapshot, md5, verdict
from trio_sse.sources.workers import Match, Selection, select, worker_key


@pytest.mark.parametrize(
    ("path", "key"),
    [
        # WAA client/run.py:44-47: normal-/debug-/sdebug-<worker_id>-<%Y%m%d@%H%M%S>.log
        ("/client/results/logs/normal-0-20241120@140612.log", "normal-0"),
        ("normal-12-20241120@140612.log", "normal-12"),
        ("debug-0-20241120@140612.log", "debug-0"),
        ("sdebug-3-20241120@140612.log", "sdebug-3"),
        ("normal-3-2024-11-20_14-06-12.log", "normal-3"),  # another timestamp format: still WAA's worker
        ("normal-3-anything.txt", "normal-3"),
        ("normal-1234567-20241120@140612.log", "normal-1234567"),  # 7 digits: not a WAA worker id
        # other trailing timestamps
        ("x-20241120@140612.log", "x"),
        ("x_2024-11-20T14-06-12.log", "x"),
        ("x_2024-11-20_14:06:12.123Z.log", "x"),
        ("run.2024-11-20.log", "run"),
        ("run-20241120.log", "run"),
        ("run-20241120T1406.txt", "run"),
        ("worker-a-1700000000.log", "worker-a"),
        ("worker-a-1700000000123.log", "worker-a"),
        ("a b-20241120@140612.log", "a b"),
        ("20241120@140612.log", "log"),  # only a timestamp: one worker for all of them
        ("dir/20241120@140612", "20241120@140612"),  # no extension, no stem: the name
        # anything else: the basename
        ("normal-1.log", "normal-1.log"),
        ("/tmp/waa_benchmark.log", "waa_benchmark.log"),
        ("task-0042.log", "task-0042.log"),
        ("x-2024.log", "x-2024.log"),
        ("x-123456789.log", "x-123456789.log"),  # 9 digits: not an epoch
        ("new\nline-20241120@140612.log", "new\nline"),
        ("normal-0 with spaces-20241120@150000.log", "normal-0 with spaces"),
        ("", ""),
    ],
)
def test_worker_key(path: str, key: str) -> None:
    assert worker_key(path) == key


def m(path: str, mtime: float) -> Match:
    return Match(path, mtime)


HOUR = 3600.0


@pytest.mark.parametrize(
    ("matches", "window", "limit", "expected"),
    [
        ([], 900, 64, Selection(())),
        # two workers of one run
        ([m("l/normal-0-20241120@150000.log", 10), m("l/normal-1-20241120@150002.log", 12)], 900, 64,
         Selection(("l/normal-0-20241120@150000.log", "l/normal-1-20241120@150002.log"))),
        # a newer timestamp of the same worker replaces the older, whatever the mtimes say
        ([m("l/normal-0-20241120@140000.log", 50), m("l/normal-0-20241120@150000.log", 10)], 900, 64,
         Selection(("l/normal-0-20241120@150000.log",))),
        # a lone older file that stopped long ago is history; the newest is always followed
        ([m("l/normal-0-20241120@150000.log", 10 * HOUR), m("l/normal-2-20241119@090000.log", 0)], 900, 64,
         Selection(("l/normal-0-20241120@150000.log",))),
        ([m("a.log", 100), m("b.log", 100 - 900)], 900, 64, Selection(("a.log", "b.log"))),  # the edge is in
        ([m("a.log", 100), m("b.log", 100 - 901)], 900, 64, Selection(("a.log",))),
        ([m("a.log", 5)], 0, 64, Selection(("a.log",))),
        # over the limit: the most recently changed, and the count of the rest
        ([m(f"t-{i}.log", i) for i in range(10)], 900, 3, Selection(("t-7.log", "t-8.log", "t-9.log"), left_out=7)),
        # equal mtimes: the name decides, deterministically
        ([m("t-1.log", 1), m("t-2.log", 1), m("t-3.log", 1)], 900, 1, Selection(("t-3.log",), left_out=2)),
        # the same path twice counts once
        ([m("a.log", 1), m("a.log", 1)], 900, 64, Selection(("a.log",))),
    ],
)
def test_select(matches: list[Match], window: float, limit: int, expected: Selection) -> None:
    assert select(matches, window=window, limit=limit) == expected
    assert select(reversed(matches), window=window, limit=limit) == expected  # order-free


def test_select_refuses_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="limit"):
        select([], window=1, limit=0)


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_keeps_the_first_and_the_last_bytes_read() -> None:
    fp = Fingerprint()
    data = os.urandom(3 * HEAD_BYTES)
    for i in range(0, len(data), 777):
        fp.add(data[i : i + 777])
    assert fp.offset == len(data)
    assert fp.head == data[:HEAD_BYTES]
    assert fp.tail == data[-TAIL_BYTES:] and fp.tail_start == len(data) - TAIL_BYTES
    fp.clear()
    assert (fp.offset, fp.head, fp.tail) == (0, b"", b"")
    fp.add(b"abc")
    assert (fp.head, fp.tail, fp.tail_start) == (b"abc", b"abc", 0)


@pytest.mark.parametrize(
    ("size", "head_same", "tail_same", "expected"),
    [
        (100, True, True, None),
        (500, True, True, None),  # grown
        (99, True, True, "truncated"),
        (500, False, True, "replaced"),
        (500, False, False, "replaced"),
        (500, True, False, "truncated"),  # cut past the first bytes and grown again
    ],
)
def test_verdict(size: int, head_same: bool, tail_same: bool, expected: str | None) -> None:
    assert verdict(100, size=size, head_same=head_same, tail_same=tail_same) == expected


def remote(file: bytes, snap: Snapshot) -> tuple[int, str, str]:
    """What the survey computes on the host (size, MD5 of the head, MD5 of the window)."""
    start = snap.window_start
    return len(file), md5(file[: snap.head]), md5(file[start : start + snap.window])


def passes(file: bytes, snap: Snapshot) -> bool:
    size, head, window = remote(file, snap)
    return verdict(snap.offset, size=size, head_same=head == snap.head_md5, tail_same=window == snap.window_md5) is None


def test_the_window_covers_every_byte_read_since_the_last_passed_check() -> None:
    """The SSH case: tail reads on between two checks, possibly past a cut; the check covers
    everything read since the last one (from its last TAIL_BYTES)."""
    first = b"".join(b"first run line %04d\n" % i for i in range(400))  # 8000 bytes
    fp = Fingerprint(windowed=True)
    fp.add(first[:3000])
    snap = fp.begin_check()
    assert (snap.offset, snap.head, snap.window_start, snap.window) == (3000, 3000, 0, 3000)
    fp.add(first[3000:])  # read while the check runs: covered by the next one
    assert passes(first, snap)
    fp.end_check(True)
    snap = fp.begin_check()
    assert (snap.window_start, snap.window) == (3000 - TAIL_BYTES, 5000 + TAIL_BYTES)
    assert passes(first, snap)
    fp.end_check(True)
    # Cut at 7000 (past the last check's window start), grown again; tail read on from 8000.
    regrown = first[:7000] + b"second run, other content\n" * 200
    fp.add(regrown[8000:])
    snap = fp.begin_check()
    assert snap.window_start == 8000 - TAIL_BYTES < 7000  # the cut is inside the window
    assert not passes(regrown, snap)
    size, head, window = remote(regrown, snap)
    assert verdict(snap.offset, size=size, head_same=head == snap.head_md5, tail_same=window == snap.window_md5) == "truncated"
    # A failed (or skipped) check keeps the window: the next one still covers the cut.
    fp.end_check(False)
    assert fp.begin_check().window_start == snap.window_start


def test_a_window_past_the_cap_checks_only_the_last_bytes() -> None:
    fp = Fingerprint(windowed=True)
    fp.add(b"x" * (WINDOW_CAP + 10))
    snap = fp.begin_check()
    assert snap.window == TAIL_BYTES and snap.window_start == WINDOW_CAP + 10 - TAIL_BYTES


def test_a_generation_resumed_at_an_offset_has_no_head() -> None:
    """``SSHSource.follow(offset=N)``: the caller has bytes 0..N; what is read from N on is
    not the file's first bytes (main compared them as such after a reconnect: "replaced")."""
    fp = Fingerprint(offset=100, windowed=True)
    fp.add(b"from the offset on\n")
    assert fp.head == b"" and fp.tail == b"from the offset on\n" and fp.tail_start == 100
    snap = fp.begin_check()
    assert (snap.head, snap.window_start, snap.window) == (0, 100, 19)
    file = b"x" * 100 + b"from the offset on\n"
    assert passes(file, snap)


def test_without_a_window_nothing_is_hashed() -> None:
    fp = Fingerprint()
    fp.add(b"abc")
    assert fp._window is None
