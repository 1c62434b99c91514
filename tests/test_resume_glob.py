"""Resume points of a glob target (cluster mode's failover, SPEC §10; issue 14 item 2): a
reducer of several files (``lanes=True``) resumed from a seed with each file's place
(``LaneSeed``) gives exactly what the reducer that read everything gives — the same ids, the
same payloads, progress and status — at every seed taken while WAA's worker files
(``normal-<w>-<ts>.log``, tests/upstream) and OSWorld's one file with ``[Env N]`` lanes are read
in random chunks, in the order they were written. The oracle is the whole read of the same
inputs, never the code under test resuming. Junk in the new seed fields is refused with a
clear error, nothing half-applied. Then the monitor (``position`` / ``resume`` format 2) over
real files with the real ``LocalSource`` glob, which starts each file at its own offset only
when the file still starts with the bytes the caller read."""

from __future__ import annotations

import functools
import json
import random
import re
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import trio
from test_resume import view
from upstream import SCENARIOS, build

from trio_sse.history import Entry
from trio_sse.monitor import Monitor
from trio_sse.runstate import LaneSeed, RunSeed, RunState
from trio_sse.sources import LogBytes, LogReset, ProbeResult
from trio_sse.sources.local import LocalSource

Timeline = list[tuple[str, bytes]]
TASK_ID = rb"(\b(?:[A-Za-z]+-)?[0-9a-f]{8}-[0-9a-f-]{27}(?:-WOS)?|\b[a-z0-9_]+-WOS\b)"  # the logs' task ids


def _worker_file(w: int) -> str:
    return f"logs/normal-{w}-20241120@14051{w}.log"


@functools.cache
def runs() -> dict[str, tuple[list[str], Timeline]]:
    """Every run a glob target can follow: each upstream scenario's log files (one or WAA's
    parallel workers') with the order they grew in, and runs of three and two workers made of
    three one-worker scenarios whose appends interleave."""
    out: dict[str, tuple[list[str], Timeline]] = {}
    for name in sorted(SCENARIOS):
        fx = build(name)
        files = fx.logs()
        out[name] = (files, [(a, data) for a, data in fx.timeline if a in files])
    for label, parts in (("three_workers", ("waa_single", "waa_raises", "waa_vm_down")),
                         ("two_workers", ("waa_readiness", "waa_evaluator"))):  # fmt: skip
        timelines = []
        for w, part in enumerate(parts):
            fx = build(part)
            (log,) = fx.logs()
            data = fx.artifacts[log].replace(b"normal-0-", f"normal-{w}-".encode())
            timelines.append([(_worker_file(w), data[i : i + 700]) for i in range(0, len(data), 700)])
        merged: Timeline = []
        while any(timelines):  # round robin: every worker writes a bit in turn
            for t in timelines:
                if t:
                    merged.append(t.pop(0))
        out[label] = ([_worker_file(w) for w in range(len(parts))], merged)
    return out


def inputs(files: list[str], timeline: Timeline, seed: str) -> list[LogReset | LogBytes]:
    """What a glob follower hands over: each file's ``LogReset``, then their bytes in the order
    they were written, each append cut in random chunks."""
    rng = random.Random(seed)
    items: list[LogReset | LogBytes] = [LogReset(f) for f in files]
    offsets = dict.fromkeys(files, 0)
    for path, data in timeline:
        pos = 0
        while pos < len(data):
            n = rng.choice((1, 9, rng.randint(1, 2500)))
            items.append(LogBytes(data[pos : pos + n], offsets[path] + pos, path))
            pos += n
        offsets[path] += len(data)
    return items


def wire(outputs: list[object]) -> list[object]:
    """Outputs as clients get them: each entry's and step's frame, each error."""
    return [getattr(o, "frame", o) for o in outputs]


def whole(items: list[LogReset | LogBytes]) -> tuple[RunState, list[tuple[int, RunSeed, dict[str, int]]]]:
    """The inputs applied in order, and every seed taken on the way: (how many inputs had been
    applied, the seed, how far each file had been read then). ``state.outputs``: what each
    input gave (wire form)."""
    state = RunState("vm1", lanes=True)
    seeds: list[tuple[int, RunSeed, dict[str, int]]] = []
    read: dict[str, int] = {}
    state.outputs = []  # type: ignore[attr-defined]
    for i, item in enumerate(items, 1):
        state.outputs.append(wire(state.log(item)))  # type: ignore[attr-defined]
        if isinstance(item, LogBytes):
            read[item.path] = item.offset + len(item.data)
        if state.seed is not None and (not seeds or state.seed is not seeds[-1][1]):
            seeds.append((i, state.seed, dict(read)))
    return state, seeds


def resumed_from(
    seed: RunSeed, entries: list[Entry], files: dict[str, bytes], read: dict[str, int], tag: str
) -> RunState:
    """A successor: seeded (through JSON, as Redis carries it), then each of the seed's files
    read again from its offset up to where the seed's reducer had read it — which must give
    nothing new (those events were applied before the seed)."""
    seed = RunSeed.decode(json.loads(json.dumps(seed.encode())))
    state = RunState("vm1", lanes=True)
    state.resume(seed, entries)
    assert seed.lanes is not None
    rng = random.Random(tag)
    for lane in seed.lanes:
        pos, end = lane.offset, read.get(lane.path, 0)
        while pos < end:
            n = rng.randint(1, 3000)
            out = state.log(LogBytes(files[lane.path][pos : min(end, pos + n)], pos, lane.path))
            assert not out, f"{lane.path}@{pos}: what came before the seed again"
            pos += n
    return state


def contents(files: list[str], timeline: Timeline) -> dict[str, bytes]:
    out = dict.fromkeys(files, b"")
    for path, data in timeline:
        out[path] += data
    return out


def test_the_runs_have_seeds_of_several_files_and_points_in_each() -> None:
    files, timeline = runs()["waa_parallel"]
    _, seeds = whole(inputs(files, timeline, "whole"))
    assert len(seeds) >= 4
    last = seeds[-1][1]
    assert last.lanes is not None and {lane.path for lane in last.lanes} == set(files)
    assert all(lane.offset > 0 and lane.parser is not None and lane.name for lane in last.lanes)  # each its own point
    assert last.offset == sum(lane.offset for lane in last.lanes)
    assert len(runs()) == len(SCENARIOS) + 2


@pytest.mark.parametrize("name", sorted(runs()))
def test_resuming_at_every_seed_gives_what_the_whole_read_gives(name: str) -> None:
    files, timeline = runs()[name]
    items = inputs(files, timeline, f"{name}/whole")
    full, seeds = whole(items)
    data = contents(files, timeline)
    assert seeds, "no seed taken"
    for i, seed, read in seeds:
        state = resumed_from(seed, list(full.history.entries[: seed.count]), data, read, f"{name}@{i}")
        new = []
        for item in items[i:]:  # what the whole read applied after the seed, in the same order
            new.append(wire(state.log(item)))
        assert view(state) == view(full), f"resumed after input {i}"
        assert new == full.outputs[i:], f"resumed after input {i}"  # type: ignore[attr-defined]
        ids = {t.decode() for t in re.findall(TASK_ID, b"".join(data.values()))}
        assert [state.task(t) for t in sorted(ids)] == [full.task(t) for t in sorted(ids)]
        assert seed.lanes is not None
        # Nothing before each file's offset was read again.
        total = sum(len(d) for d in data.values())
        assert state.statistics().bytes_read == total - seed.offset


def test_a_resumed_reducer_takes_seeds_a_second_successor_resumes_from() -> None:
    files, timeline = runs()["three_workers"]
    items = inputs(files, timeline, "twice")
    full, seeds = whole(items)
    data = contents(files, timeline)
    i, seed, read = seeds[len(seeds) // 3]
    first = resumed_from(seed, list(full.history.entries[: seed.count]), data, read, "first")
    j = i + (len(items) - i) // 2
    taken = None
    for item in items[i:j]:
        first.log(item)
        taken = first.seed if first.seed is not seed else taken
    assert taken is not None and taken.lanes is not None  # it took its own seeds
    read_then = {lane.path: 0 for lane in taken.lanes}
    for item in items[:j]:
        if isinstance(item, LogBytes):
            read_then[item.path] = item.offset + len(item.data)
    second = resumed_from(taken, list(first.history.entries[: taken.count]), data, read_then, "second")
    for item in items[j:]:
        second.log(item)
    assert view(second) == view(full)


def test_junk_lane_seeds_are_refused_and_nothing_is_half_applied() -> None:
    files, timeline = runs()["waa_parallel"]
    full, seeds = whole(inputs(files, timeline, "junk"))
    _, seed, _ = seeds[-1]
    entries = list(full.history.entries[: seed.count])
    good = seed.encode()
    assert good["v"] == 2
    lane = good["lanes"][0]
    for junk in ({**good, "v": 3}, {**good, "v": "2"}, {**good, "lanes": []}, {**good, "lanes": None},
                 {**good, "lanes": {"a": 1}}, {key: v for key, v in good.items() if key != "lanes"},
                 {**good, "lanes": [lane, lane]}, {**good, "lanes": [{**lane, "offset": -1}]},
                 {**good, "lanes": [{**lane, "offset": "9"}]}, {**good, "lanes": [{**lane, "skip": None}]},
                 {**good, "lanes": [{**lane, "path": ""}]}, {**good, "lanes": [{**lane, "parser": None}]},
                 {**good, "lanes": [{**lane, "ended": 1}]}, {**good, "lanes": [{**lane, "total": -2}]},
                 {**good, "lanes": [{**lane, "name": ""}]}, {**good, "lanes": [{**lane, "label": 0}]},
                 {**good, "lanes": [{k: v for k, v in lane.items() if k != "skip"}]},
                 {**good, "lanes": ["x"]}):  # fmt: skip
        with pytest.raises(ValueError, match="not a run seed|not a lane seed"):
            RunSeed.decode(junk)
    bad_parser = RunSeed.decode({**good, "lanes": [{**lane, "parser": {"waa": 1}}, *good["lanes"][1:]]})
    cases = [
        (bad_parser, entries, "not a run seed|not a parser resume state"),
        (RunSeed.decode({**good, "progress": {"target": "vm2"}}), entries, "not a run seed|target"),
        (seed, entries[:-1], "not events 1"),
        (seed, [replace(e, lane="") for e in entries], "not events 1"),
    ]
    for bad, given, needle in cases:
        state = RunState("vm1", lanes=True)
        with pytest.raises(ValueError, match=needle):
            state.resume(bad, given)
        assert not len(state.history) and not state.history.run and state.seed is None
    with pytest.raises(ValueError, match="only a new state"):
        RunState("vm1").resume(seed, entries)  # a seed of several files, a reducer of one
    # Version 1 seeds (one file, no "v", no "lanes") still decode as before.
    one = RunSeed.decode({k: v for k, v in good.items() if k not in ("v", "lanes")})
    assert one.lanes is None and LaneSeed.decode(lane).path == lane["path"]


# ------------------------------------------------------------------ the monitor and the local source


class _NoStarts:
    """A source of a glob whose ``follow`` takes no per-file starts (a fake): it cannot resume."""

    description = "no starts"
    resumes_globs = False

    async def follow(self, send, *, task_status=trio.TASK_STATUS_IGNORED):  # type: ignore[no-untyped-def]
        task_status.started()

    async def probe(self) -> ProbeResult:
        return ProbeResult()


def _glob_monitor(root: Path, **kwargs: object) -> Monitor:
    source = LocalSource(str(root / "normal-*.log"), process_pattern=None, poll_interval=0.01, glob_interval=0.01)
    return Monitor("vm1", source, idle_probe_seconds=60, lanes=True, **kwargs)  # type: ignore[arg-type]


def _apply_files(monitor: Monitor, items: list[LogReset | LogBytes], root: Path) -> None:
    for item in items:
        if isinstance(item, LogReset):
            monitor.apply(LogReset(str(root / Path(item.path).name)))
        else:
            monitor.apply(LogBytes(item.data, item.offset, str(root / Path(item.path).name)))


async def test_a_glob_monitor_resumes_each_file_where_another_stood(tmp_path: Path) -> None:
    files, timeline = runs()["waa_parallel"]
    items = inputs(files, timeline, "monitor")
    cut = len(items) * 2 // 3
    first = _glob_monitor(tmp_path)
    _apply_files(first, items[:cut], tmp_path)
    point = first.position()
    assert point is not None and 0 < point.count <= len(first.history)
    extra = json.loads(point.extra)
    assert extra["v"] == 2 and set(extra["heads"]) == {str(tmp_path / Path(f).name) for f in files}
    data = contents(files, timeline)
    for f, d in data.items():  # the logs grew while nobody followed them
        (tmp_path / Path(f).name).write_bytes(d)
    second = _glob_monitor(tmp_path)
    second.resume(point.extra, list(first.history.entries[: point.count]))
    expected = _glob_monitor(tmp_path)
    _apply_files(expected, items, tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(second.run)
        with trio.fail_after(10):
            while len(second.history) < len(expected.history):
                await second.progress.wait_newer(second.progress.version)
        nursery.cancel_scope.cancel()
    # The source's interleaving of the two files differs from the whole read's, and ids carry
    # every lane's count: compare each event's lane, ordinal in its lane and payload.
    assert [(e.lane, e.n, e.data) for e in second.history.entries[: point.count]] == [
        (e.lane, e.n, e.data) for e in expected.history.entries[: point.count]
    ]
    # Each task once, in the same lane at the same ordinal; the run's end the same (which
    # lane logs the end last is the interleaving's).
    tasks = [(e.lane, e.n, e.data) for e in second.history.entries if e.event.EVENT == "task_complete"]
    assert sorted(tasks) == sorted(
        (e.lane, e.n, e.data) for e in expected.history.entries if e.event.EVENT == "task_complete"
    )
    assert len({e.event.task_id for e in second.history.entries if e.event.EVENT == "task_complete"}) == len(tasks)
    assert second.history.run == expected.history.run and len(second.history) == len(expected.history)
    assert second.run_complete is not None and second.run_complete == expected.run_complete
    assert second.statistics().bytes_read == sum(len(d) for d in data.values()) - point.offset


async def _first_items(source: LocalSource, starts: dict[str, tuple[int, bytes]], n: int) -> list[object]:
    send, receive = trio.open_memory_channel[object](100)
    got: list[object] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(source.follow, send, starts=starts))  # type: ignore[arg-type]
        with trio.fail_after(10):
            while len(got) < n:
                got.append(await receive.receive())
        nursery.cancel_scope.cancel()
    return got


async def test_the_local_glob_starts_each_file_at_its_offset_and_a_changed_one_at_0(tmp_path: Path) -> None:
    a, b, c = (str(tmp_path / f"normal-{w}-1.log") for w in range(3))
    Path(a).write_bytes(b"a first\na second\n")  # grew after the caller read 8 bytes
    Path(b).write_bytes(b"B first\nb second\n")  # its first bytes changed: another file
    Path(c).write_bytes(b"c only\n")  # new: the caller never read it
    source = LocalSource(str(tmp_path / "normal-*.log"), process_pattern=None, glob_interval=0.01)
    got = await _first_items(source, {a: (8, b"a first\n"), b: (8, b"b first\n")}, 5)
    by_path: dict[str, list[object]] = {}
    for item in got:
        by_path.setdefault(item.path, []).append(item)  # type: ignore[attr-defined]
    assert by_path[a] == [LogBytes(b"a second\n", 8, a)]  # no LogReset, nothing before byte 8
    assert by_path[b] == [LogReset(b, "replaced"), LogBytes(b"B first\nb second\n", 0, b)]
    assert by_path[c] == [LogReset(c, "opened"), LogBytes(b"c only\n", 0, c)]


async def test_the_local_glob_starts_a_file_at_0_without_a_reset_and_refuses_junk_starts(tmp_path: Path) -> None:
    a = str(tmp_path / "normal-0-1.log")
    Path(a).write_bytes(b"abc\n")
    source = LocalSource(str(tmp_path / "normal-*.log"), process_pattern=None, glob_interval=0.01)
    assert source.resumes_globs
    assert await _first_items(source, {a: (0, b"ab")}, 1) == [LogBytes(b"abc\n", 0, a)]
    send, _ = trio.open_memory_channel[object](1)
    for junk in ({a: (-1, b"x")}, {a: (3, b"")}, {a: ("3", b"abc")}, {a: (3, "abc")}):
        with pytest.raises(ValueError, match="start|first bytes"):
            await source.follow(send, starts=junk)  # type: ignore[arg-type]
    one = LocalSource(a, process_pattern=None)
    assert not one.resumes_globs
    with pytest.raises(ValueError, match="glob"):
        await one.follow(send, starts={a: (0, b"")})  # type: ignore[arg-type]


def test_junk_glob_positions_are_refused(tmp_path: Path) -> None:
    files, timeline = runs()["waa_parallel"]
    items = inputs(files, timeline, "junk-monitor")
    first = _glob_monitor(tmp_path)
    _apply_files(first, items, tmp_path)
    point = first.position()
    assert point is not None
    entries = list(first.history.entries[: point.count])
    good = json.loads(point.extra)
    heads = good["heads"]
    one_path = next(iter(heads))
    for junk in ("", "{", "[]", json.dumps({**good, "v": 3}), json.dumps({**good, "heads": {}}),
                 json.dumps({**good, "heads": {**heads, one_path: "%%%"}}),
                 json.dumps({**good, "heads": {**heads, one_path: ""}}),
                 json.dumps({**good, "heads": {**heads, "/elsewhere.log": ""}}),
                 json.dumps({**good, "heads": None}), json.dumps({**good, "seed": {"offset": 1}})):  # fmt: skip
        monitor = _glob_monitor(tmp_path)
        with pytest.raises(ValueError, match="not a resume position|not a run seed"):
            monitor.resume(junk, entries)
        assert monitor.position() is None and not len(monitor.history)
    with pytest.raises(ValueError, match="cannot start at an offset"):  # a position of one file
        _glob_monitor(tmp_path).resume(json.dumps({**good, "v": 1}), entries)
    with pytest.raises(ValueError, match="cannot start at an offset"):  # a source without follow(starts=)
        Monitor("vm1", _NoStarts(), lanes=True).resume(point.extra, entries)  # type: ignore[arg-type]
    single = Monitor("vm1", LocalSource(str(tmp_path / "x.log"), process_pattern=None))
    with pytest.raises(ValueError, match="not a resume position|not a run seed"):
        single.resume(point.extra, entries)  # a glob's position, a monitor of one file
