"""Resume points (cluster mode's failover, SPEC §10): a parser and a reducer that continue at
a byte offset give exactly what reading the whole log gives — the same events, the same ids,
the same payloads, progress and status — on every resume point of the upstream-faithful WAA
and OSWorld logs (tests/upstream) and of the fixtures in tests/data, taken while the log is
read in random chunks. Junk in a seed is refused with a clear error, nothing half-applied.
The oracle is the whole read of the same bytes, never the code under test resuming. Then the
monitor (``position`` / ``resume``) over a real file with the real ``LocalSource``, which
continues at the offset only when the file still starts with the bytes the caller read."""

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
from upstream import SCENARIOS, build

from trio_sse.baseline import Baseline
from trio_sse.history import Entry, run_id_for
from trio_sse.logparse import LogParser
from trio_sse.model import ErrorEvent, TaskComplete
from trio_sse.monitor import Monitor
from trio_sse.runstate import Live, RunSeed, RunState
from trio_sse.sources import LogBytes, LogReset, ProbeResult, StepSeen
from trio_sse.sources.local import LocalSource

DATA = Path(__file__).with_name("data")


@functools.cache
def logs() -> dict[str, bytes]:
    """Every one-file log we have: the data fixtures and each upstream scenario's log files."""
    out = {f"data/{p.name}": p.read_bytes() for p in sorted(DATA.glob("*.log"))}
    for name in sorted(SCENARIOS):
        fx = build(name)
        for log in fx.logs():
            out[f"{name}/{log}"] = fx.artifacts[log]
    return out


def chunks(data: bytes, start: int, seed: str) -> list[tuple[int, bytes]]:
    rng = random.Random(seed)
    out, pos = [], start
    while pos < len(data):
        n = rng.choice((1, 7, rng.randint(1, 3000)))
        out.append((pos, data[pos : pos + n]))
        pos += n
    return out


def read(state: RunState, data: bytes, start: int, seed: str) -> list[Entry | ErrorEvent | Live]:
    out: list[Entry | ErrorEvent | Live] = []
    for offset, chunk in chunks(data, start, seed):
        out += state.log(LogBytes(chunk, offset))
    return out


def whole(data: bytes) -> tuple[RunState, list[RunSeed]]:
    """The log read in random chunks, and every resume point the reducer took on the way."""
    state = RunState("vm1")
    state.log(LogReset("/x.log"))
    seeds: list[RunSeed] = []
    for offset, chunk in chunks(data, 0, "whole"):
        state.log(LogBytes(chunk, offset))
        if state.seed is not None and (not seeds or state.seed is not seeds[-1]):
            seeds.append(state.seed)
    return state, seeds


def view(state: RunState) -> tuple[object, ...]:
    """What a resumed reducer must equal (also tests/test_resume_glob.py's)."""
    return (
        [(e.id, e.frame, e.seq, e.lane, e.n) for e in state.history.entries],
        state.history.run,
        state.progress,
        state.status,
        state.run_complete,
        state.summary.tasks_completed,
        state.summary.tasks_passed,
        state.summary.average_score,
        state.run_info,
        state.current_tasks(),
    )


def test_the_logs_have_resume_points() -> None:
    points = {name: len(whole(data)[1]) for name, data in logs().items()}
    waa = [name for name in points if "waa" in name]
    assert len(waa) > 10 and all(points[name] >= 1 for name in waa), points
    assert points["data/waa_plain.log"] >= 4  # one after each finished task (once the run has its name)
    assert points["data/simple.log"] == 0  # the simple format has no records: no points


@pytest.mark.parametrize("name", sorted(logs()))
def test_resuming_at_every_point_gives_what_the_whole_read_gives(name: str) -> None:
    data = logs()[name]
    full, seeds = whole(data)
    for seed in seeds:
        # Through JSON, as Redis carries it.
        seed = RunSeed.decode(json.loads(json.dumps(seed.encode())))
        assert data[seed.offset - 1 : seed.offset] in (b"\n", b"\r")  # a line boundary
        state = RunState("vm1")
        state.resume(seed, list(full.history.entries[: seed.count]))
        before = len(state.history)
        new = read(state, data, seed.offset, f"{name}@{seed.offset}")
        assert view(state) == view(full), f"resumed at {seed.offset}"
        assert [o for o in new if isinstance(o, Entry)] == list(full.history.entries[before:])
        assert state.statistics().bytes_read == len(data) - seed.offset  # nothing before it read


def baselines_for(data: bytes) -> list[Baseline]:
    """A baseline run of the same tasks with every other outcome flipped (fixed / regressed
    / same / new all occur)."""
    full, _ = whole(data)
    tasks = [e.event.payload() for e in full.history.entries if isinstance(e.event, TaskComplete)]
    then = [{**t, "success": not t["success"] if i % 2 else t["success"]} for i, t in enumerate(tasks[:-1])]
    return [Baseline("vm1:0000000000", then)]


def whole_with(data: bytes, candidates: list[Baseline]) -> tuple[RunState, list[RunSeed]]:
    state = RunState("vm1")
    state.set_baselines(candidates)
    state.log(LogReset("/x.log"))
    seeds: list[RunSeed] = []
    for offset, chunk in chunks(data, 0, "whole"):
        state.log(LogBytes(chunk, offset))
        if state.seed is not None and (not seeds or state.seed is not seeds[-1]):
            seeds.append(state.seed)
    return state, seeds


TASK_ID = rb"\b(?:[A-Za-z]+-)?[0-9a-f]{8}-[0-9a-f-]{27}(?:-WOS)?|\b[a-z0-9_]+-WOS\b"  # the logs' task ids


def main_view(state: RunState, ids: list[str]) -> tuple[object, ...]:
    """What main's features read of a reducer: the forecast (after its update), every task's
    view (/api/tasks/<id>: results with baseline/change, running tasks' workers with their
    start), the current tasks (the results follower's), the rerun list."""
    state.update_forecast()
    return (
        view(state),
        state.progress.forecast,
        [state.task(i) for i in ids],
        state.current_tasks(),
        state.rerun(),
        state.run_complete.baseline if state.run_complete is not None else None,
    )


@pytest.mark.parametrize("name", sorted(logs()))
def test_resuming_keeps_main_s_reducer_state(name: str) -> None:
    """Baselines (set after the resume, as a new leader's hub does), the forecast's task lists,
    each task's step bookkeeping (the same step events after the point, also for trajectory
    lines of earlier tasks), the workers' task start: a reducer resumed from a seed gives what
    the reducer that took the seed gives, fed the same inputs after it. (The seed comes from
    that reducer, whose inputs end at the point: which steps went out depends on where inputs
    end, so another reducer's seed would not be the oracle's.)"""
    data = logs()[name]
    candidates = baselines_for(data)
    full, points = whole_with(data, candidates)
    ids = sorted({i.decode() for i in re.findall(TASK_ID, data)} | {r.task_id for r in full.results()})
    compared_steps = 0
    for point in points[:: max(1, len(points) // 12)]:  # (every point is the test above; a dozen here)
        oracle = RunState("vm1")
        oracle.set_baselines(candidates)
        oracle.log(LogReset("/x.log"))
        for offset, chunk in chunks(data[: point.offset], 0, "head"):
            oracle.log(LogBytes(chunk, offset))
        eol = data.index(b"\n", point.offset) + 1
        oracle.log(LogBytes(data[point.offset : eol], point.offset))  # the point's record: its seed
        assert oracle.seed is not None and oracle.seed.offset == point.offset
        seed = RunSeed.decode(json.loads(json.dumps(oracle.seed.encode())))
        resumed = RunState("vm1")
        resumed.resume(seed, list(oracle.history.entries[: seed.count]))
        resumed.set_baselines(candidates)
        resumed.log(LogBytes(data[point.offset : eol], point.offset))
        assert main_view(resumed, ids) == main_view(oracle, ids), f"resumed at {point.offset}"
        steps: dict[str, list[bytes]] = {"resumed": [], "oracle": []}
        for n, (offset, chunk) in enumerate(chunks(data, eol, f"{name}@{point.offset}")):
            for key, state in (("resumed", resumed), ("oracle", oracle)):
                steps[key] += [o.frame for o in state.log(LogBytes(chunk, offset)) if isinstance(o, Live)]
            if n % 8 == 0:  # along the way too: the forecast, running tasks' views
                assert main_view(resumed, ids) == main_view(oracle, ids), f"resumed at {point.offset}, chunk {n}"
        # Trajectory lines of every task (the results follower's): the step bookkeeping decides.
        for task_id in ids:
            for index in (1, 10_000):
                item = StepSeen(task_id, index, "click", "shot.png", None, "0", index=index)
                for key, state in (("resumed", resumed), ("oracle", oracle)):
                    steps[key] += [o.frame for o in state.log(item) if isinstance(o, Live)]
        assert steps["resumed"] == steps["oracle"], f"resumed at {point.offset}"
        assert main_view(resumed, ids) == main_view(oracle, ids), f"resumed at {point.offset}"
        compared_steps += len(steps["oracle"])
    if points and ids:
        assert compared_steps, "no step event was compared"


def test_the_seed_carries_main_s_state_and_refuses_junk_in_it() -> None:
    data = logs()["data/waa_plain.log"]
    full, seeds = whole_with(data, baselines_for(data))
    good = seeds[-1].encode()
    facts = good["facts"]
    assert facts["task_list"] and facts["steps"] and all(len(w) == 7 for w in facts["workers"].values())
    entries = list(full.history.entries[: seeds[-1].count])
    for junk in ({**facts, "steps": {"t1-WOS": ["1", 1, False]}}, {**facts, "steps": [1]},
                 {**facts, "task_list": {"t1-WOS": 3}}, {**facts, "task_list": None},
                 {**facts, "workers": {"0": [None] * 6}}):  # fmt: skip
        state = RunState("vm1")
        with pytest.raises(ValueError, match="not a run seed"):
            state.resume(RunSeed.decode({**good, "facts": junk}), entries)
        assert not len(state.history) and not state.history.run and state.seed is None


def test_a_resumed_parser_reports_offsets_in_the_files_coordinates() -> None:
    data = logs()["data/waa_plain.log"]
    parser = LogParser()
    events = parser.feed(data) + parser.close()
    point = None
    probe = LogParser()
    for i in range(0, len(data), 50):
        probe.feed(data[i : i + 50])
        point = probe.resume_point() or point
    assert point is not None
    offset, state = point
    resumed = LogParser().resume(json.loads(json.dumps(state)), offset)
    tail = resumed.feed(data[offset:]) + resumed.close()
    assert tail == [e for e in events if e.offset >= offset] and tail
    assert resumed.statistics.bytes == len(data) - offset


@pytest.mark.parametrize(
    "junk",
    [
        {},
        {"waa": "yes", "run_active": True, "max_steps": None, "phase": None, "workers": [], "run_tasks": [],
         "finished": [], "procs": {}},
        {"waa": True, "run_active": True, "max_steps": "15", "phase": None, "workers": [], "run_tasks": [],
         "finished": [], "procs": {}},
        {"waa": True, "run_active": True, "max_steps": None, "phase": "on fire", "workers": [], "run_tasks": [],
         "finished": [], "procs": {}},
        {"waa": True, "run_active": True, "max_steps": None, "phase": None, "workers": [3], "run_tasks": [],
         "finished": [], "procs": {}},
        {"waa": True, "run_active": True, "max_steps": None, "phase": None, "workers": [], "run_tasks": [["a"]],
         "finished": [], "procs": {}},
        {"waa": True, "run_active": True, "max_steps": None, "phase": None, "workers": ["\u20ac"], "run_tasks": [],
         "finished": [], "procs": {}},
        [1, 2],
    ],
)  # fmt: skip
def test_junk_parser_states_are_refused(junk: object) -> None:
    with pytest.raises(ValueError, match="not a parser resume state"):
        LogParser().resume(junk, 10)  # type: ignore[arg-type]


def test_junk_seeds_are_refused_and_nothing_is_half_applied() -> None:
    data = logs()["data/waa_plain.log"]
    full, seeds = whole(data)
    seed = seeds[-1]
    entries = list(full.history.entries[: seed.count])
    good = seed.encode()
    for junk in (None, [], {}, {**good, "offset": -1}, {**good, "count": "3"}, {**good, "run": ""},
                 {**good, "parser": []}):  # fmt: skip
        with pytest.raises(ValueError, match="not a run seed"):
            RunSeed.decode(junk)
    cases = [
        (RunSeed.decode({**good, "facts": {**good["facts"], "lane": [False, None]}}), entries, "not a run seed"),
        (RunSeed.decode({**good, "facts": {}}), entries, "not a run seed"),
        (RunSeed.decode({**good, "progress": {"target": "vm2"}}), entries, "not a run seed|target"),
        (RunSeed.decode({**good, "parser": {"waa": 1}}), entries, "not a parser resume state"),
        (seed, entries[:-1], "not events 1"),
        (seed, entries[1:] + entries[:1], "not events 1"),
        (RunSeed.decode({**good, "run": "0000000000"}), entries, "not events 1"),
    ]
    for bad, given, needle in cases:
        state = RunState("vm1")
        with pytest.raises(ValueError, match=needle):
            state.resume(bad, given)
        assert not len(state.history) and not state.history.run and state.seed is None
    with pytest.raises(ValueError, match="only a new state"):
        full.resume(seed, entries)
    with pytest.raises(ValueError, match="only a new state"):
        RunState("vm1", lanes=True).resume(seed, entries)


def test_a_new_file_generation_drops_the_seed_and_a_resumed_state_starts_a_new_run_on_it() -> None:
    data = logs()["data/waa_plain.log"]
    full, seeds = whole(data)
    expected = [e.id for e in full.history.entries]
    seed = seeds[-1]
    assert full.seed is not None
    state = RunState("vm1")
    state.resume(seed, list(full.history.entries[: seed.count]))
    full.log(LogReset("/x.log", "replaced"))
    assert full.seed is None
    run = state.history.run
    state.log(LogReset("/x.log", "replaced"))  # the source found other first bytes
    out = read(state, data, 0, "again")
    assert state.history.run == run  # the same bytes: the same run id again …
    assert [o.id for o in out if isinstance(o, Entry)] == expected  # … from event 1


# ------------------------------------------------------------------ the monitor and the local source


class _Fixed:
    """A source whose ``follow`` takes no offset (a fake): it cannot resume."""

    description = "fixed"

    async def follow(self, send, *, task_status=trio.TASK_STATUS_IGNORED):  # type: ignore[no-untyped-def]
        task_status.started()

    async def probe(self) -> ProbeResult:
        return ProbeResult()


def read_whole(path: Path) -> Monitor:
    monitor = Monitor("vm1", LocalSource(str(path), process_pattern=None), idle_probe_seconds=60)
    monitor.apply(LogReset(str(path)))
    data = path.read_bytes()
    for offset, chunk in chunks(data, 0, "monitor"):
        monitor.apply(LogBytes(chunk, offset))
    return monitor


async def test_a_monitor_resumes_where_another_stood_reading_only_the_bytes_after(tmp_path: Path) -> None:
    data = logs()["data/waa_plain.log"]
    path = tmp_path / "waa.log"
    cut = len(data) * 2 // 3
    path.write_bytes(data[:cut])
    first = read_whole(path)
    point = first.position()
    assert point is not None and point.offset <= cut and 0 < point.count <= len(first.history)
    assert point.fingerprint == run_id_for(data[:4096])  # the file's first 4 KiB name the generation
    path.write_bytes(data)  # the log grew while nobody followed it
    second = Monitor("vm1", LocalSource(str(path), process_pattern=None, poll_interval=0.01), idle_probe_seconds=60)
    second.resume(point.extra, list(first.history.entries[: point.count]))
    assert second.progress.value.tasks_completed == point.count  # seeded: the progress at the offset
    expected = read_whole(path)
    async with trio.open_nursery() as nursery:
        await nursery.start(second.run)
        with trio.fail_after(10):
            while len(second.history) < len(expected.history):
                await second.progress.wait_newer(second.progress.version)
        nursery.cancel_scope.cancel()
    assert [e.frame for e in second.history.entries] == [e.frame for e in expected.history.entries]
    assert second.progress.value == replace(expected.progress.value, running=second.progress.value.running)
    assert second.statistics().bytes_read == len(data) - point.offset  # nothing before the offset read


@pytest.mark.parametrize(("now", "reason"), [(b"X", "replaced"), (b"", "truncated")])
async def test_the_local_source_reads_another_file_from_byte_0(tmp_path: Path, now: bytes, reason: str) -> None:
    path = tmp_path / "waa.log"
    path.write_bytes(b"first line\nsecond line\n" if now else b"first")
    if now:
        path.write_bytes(now + b"irst line\nsecond line\n")
    source = LocalSource(str(path), process_pattern=None)
    send, receive = trio.open_memory_channel[object](10)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(source.follow, send, offset=11, head=b"first line\n"))  # type: ignore[arg-type]
        with trio.fail_after(10):
            first = await receive.receive()
            second = await receive.receive()
        nursery.cancel_scope.cancel()
    assert first == LogReset(str(path), reason)
    assert isinstance(second, LogBytes) and second.offset == 0


async def test_the_local_source_continues_at_the_offset_when_the_first_bytes_match(tmp_path: Path) -> None:
    path = tmp_path / "waa.log"
    path.write_bytes(b"first line\nsecond line\n")
    source = LocalSource(str(path), process_pattern=None)
    send, receive = trio.open_memory_channel[object](10)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(source.follow, send, offset=11, head=b"first line\n"))  # type: ignore[arg-type]
        with trio.fail_after(10):
            got = await receive.receive()
        nursery.cancel_scope.cancel()
    assert got == LogBytes(b"second line\n", 11, str(path))  # no LogReset: the caller has bytes 0-10
    with pytest.raises(ValueError, match="first bytes"):
        await source.follow(send, offset=3)  # type: ignore[arg-type]


def test_junk_positions_and_unresumable_sources_are_refused(tmp_path: Path) -> None:
    data = logs()["data/waa_plain.log"]
    path = tmp_path / "waa.log"
    path.write_bytes(data)
    first = read_whole(path)
    point = first.position()
    assert point is not None
    entries = list(first.history.entries[: point.count])
    good = json.loads(point.extra)

    def fresh() -> Monitor:
        return Monitor("vm1", LocalSource(str(path), process_pattern=None), idle_probe_seconds=60)

    for junk in ("", "{", "[]", json.dumps({**good, "v": 2}), json.dumps({**good, "head": "%%%"}),
                 json.dumps({**good, "head": ""}), json.dumps({**good, "seed": {"offset": 1}})):  # fmt: skip
        monitor = fresh()
        with pytest.raises(ValueError, match="not a resume position|not a run seed"):
            monitor.resume(junk, entries)
        assert monitor.position() is None and not len(monitor.history)
    with pytest.raises(ValueError, match="cannot start at an offset"):
        Monitor("vm1", _Fixed(), idle_probe_seconds=60).resume(point.extra, entries)  # type: ignore[arg-type]
    glob = Monitor("vm1", LocalSource(str(tmp_path / "*.log"), process_pattern=None), lanes=True)
    with pytest.raises(ValueError, match="cannot start at an offset"):
        glob.resume(point.extra, entries)
    assert glob.position() is None
