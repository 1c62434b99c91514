"""Property tests of LogParser (hypothesis): arbitrary bytes never raise, the events do not
depend on how the bytes are chunked, junk lines inserted into a real run change none of its
task results, and memory stays bounded. Kept fast: small max_examples, no deadline."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from upstream import build

from trio_sse.logparse import LogParser, ParsedEvent, RunFinished, RunStarted, TaskFinished, TaskStarted

DATA = Path(__file__).parent / "data"
FIXTURES = {name: (DATA / f"{name}.log").read_bytes() for name in ("waa_plain", "waa_ansi", "simple", "vm_boot")}
# Upstream-faithful artifacts (tests/upstream): a pty console with tqdm, interleaved OSWorld
# envs, tracebacks settling failure kinds, rate-limit records.
UPSTREAM = {
    f"{name}:{artifact}": data
    for name in ("waa_single", "waa_vm_down", "waa_rate_limited", "osworld_env", "osworld_envprocess")
    for artifact, data in build(name).artifacts.items()
}
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Bytes that steer the splitter and the cleaner into their corners.
TRICKY = st.sampled_from(
    [b"\n", b"\r", b"\r\n", b"\x00", b"\x1b", b"\x1b[", b"\x1b[1;33m", b"\x1b]0;t\x07", b"\xe2\x9d", b"\xe2\x9d\xaf ",
     b"\xff", b"[", b"] ", b"%|", b"it [", b"Step 1: ", b"Task 1/2", b"Result: ", b"Finished a/b",
     b"[2024-05-06 10:11:12,345 INFO run/1-MainProcess] ", b"Left tasks:", b"notepad: 3"]
)
JUNK = st.lists(st.one_of(st.binary(max_size=40), TRICKY), max_size=40).map(b"".join)


def run(data: bytes, cuts: list[int], max_line_bytes: int = 64 * 1024) -> tuple[list[ParsedEvent], LogParser]:
    parser = LogParser(max_line_bytes=max_line_bytes)
    events: list[ParsedEvent] = []
    prev = 0
    for cut in sorted({min(c, len(data)) for c in cuts}) + [len(data)]:
        events += parser.feed(data[prev:cut])
        prev = cut
    events += parser.close()
    return events, parser


def cut_points(size: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(min_value=0, max_value=max(size, 0)), max_size=12)


@FAST
@given(data=JUNK, cuts=st.lists(st.integers(0, 2000), max_size=12), limit=st.sampled_from([1, 7, 64, 65536]))
def test_arbitrary_bytes_never_raise_and_chunking_does_not_matter(data: bytes, cuts: list[int], limit: int) -> None:
    whole, p1 = run(data, [], limit)
    chunked, p2 = run(data, cuts, limit)
    assert chunked == whole
    assert p1.statistics == p2.statistics
    assert p1.statistics.bytes == len(data)
    offsets = [e.offset for e in whole]
    assert offsets == sorted(offsets) and all(0 <= o <= len(data) for o in offsets)


@FAST
@given(st.data())
def test_any_chunking_of_a_fixture_gives_the_same_events(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(FIXTURES)))
    raw = FIXTURES[name]
    cuts = data.draw(cut_points(len(raw)))
    assert run(raw, cuts)[0] == run(raw, [])[0]


@FAST
@given(st.data())
def test_any_chunking_of_an_upstream_artifact_gives_the_same_events(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(UPSTREAM)))
    raw = UPSTREAM[name]
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(raw)), max_size=40))
    chunked, p = run(raw, cuts)
    whole, q = run(raw, [])
    assert chunked == whole
    assert p.statistics == q.statistics


def _results(events: list[ParsedEvent]) -> list[tuple[object, ...]]:
    keep = (TaskFinished, TaskStarted, RunFinished, RunStarted)
    return [(type(e).__name__, *[getattr(e, f) for f in e.__slots__ if f != "offset"]) for e in events if isinstance(e, keep)]


@FAST
@given(st.data())
def test_junk_lines_inserted_between_lines_change_no_result(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(["waa_plain", "waa_ansi"]))
    lines = FIXTURES[name].split(b"\n")
    # Junk without newlines, inserted as whole lines, at line boundaries after the first
    # record (before it, junk could legitimately read as simple-format lines).
    junk_line = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" "))
    inserts = data.draw(st.lists(st.tuples(st.integers(2, len(lines) - 1), junk_line), max_size=8))
    for where, junk in sorted(inserts, reverse=True):
        lines.insert(where, junk)
    mixed = b"\n".join(lines)
    cuts = data.draw(cut_points(len(mixed)))
    events, _ = run(mixed, cuts)
    assert _results(events) == _results(run(FIXTURES[name], [])[0])


@FAST
@given(size=st.integers(1, 300_000), chunk=st.integers(1, 70_000), limit=st.integers(1, 5000))
def test_a_line_without_end_keeps_memory_bounded(size: int, chunk: int, limit: int) -> None:
    parser = LogParser(max_line_bytes=limit)
    blob = b"\x1b[0mA\x00" * (size // 5 + 1)
    for i in range(0, len(blob), chunk):
        assert parser.feed(blob[i : i + chunk]) == []
        # White-box on purpose: the only growing structure is the partial-line buffer.
        assert len(parser._buf) <= limit
    assert parser.statistics.overlong_lines == (1 if len(blob) > limit else 0)
