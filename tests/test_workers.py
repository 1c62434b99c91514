"""The pure helpers every source shares: which worker a log file belongs to, which glob
matches are the current run (``sources.workers``), and recognising a file generation
(``sources.fingerprint``, with POSIX ``cksum`` checked against the real tool)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from trio_sse.sources.fingerprint import HEAD_BYTES, TAIL_BYTES, Fingerprint, cksum, verdict
from trio_sse.sources.workers import Match, Selection, select, worker_key


@pytest.mark.parametrize(
    ("path", "key"),
    [
        # WAA client/run.py:44-47: normal-/debug-/sdebug-<worker_id>-<%Y%m%d@%H%M%S>.log
        ("/client/results/logs/normal-0-20241120@140612.log", "normal-0"),
        ("normal-12-20241120@140612.log", "normal-12"),
        ("debug-0-20241120@140612.log", "debug-0"),
        ("sdebug-3-20241120@140612.log", "sdebug-3"),
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
    fp = Fingerprint()
    fp.add(b"x" * 100)
    assert verdict(fp, size=size, head_same=head_same, tail_same=tail_same) == expected


@pytest.mark.skipif(shutil.which("cksum") is None, reason="no cksum on this machine")
@pytest.mark.parametrize("size", [0, 1, 255, 256, 4096, 65536 + 3])
def test_cksum_matches_the_posix_tool(size: int) -> None:
    data = os.urandom(size)
    out = subprocess.run(["cksum"], input=data, capture_output=True, check=True).stdout.split()
    assert (int(out[0]), int(out[1])) == (cksum(data), size)


def test_sums_are_what_the_remote_prints() -> None:
    fp = Fingerprint()
    fp.add(b"hello\n" * 1000)
    head, tail = fp.sums()
    assert head == (cksum(fp.head), HEAD_BYTES) and tail == (cksum(fp.tail), TAIL_BYTES)
    assert fp.sums() == (head, tail)  # the head's sum is kept, the same answer
