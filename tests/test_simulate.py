"""The WAA run simulator: a deterministic plan, bytes the parser reads back into exactly that
plan, a pace measured in virtual time, and clear errors for junk arguments."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import pytest
import trio

from trio_sse import waalog
from trio_sse.logparse import LogParser, PhaseSeen, RunFinished, RunStarted, ServerReady, StepStarted, TaskFinished
from trio_sse.sources import LogBytes, LogItem, LogReset
from trio_sse.sources.local import LocalSource
from trio_sse.sources.simulate import (
    DOMAINS,
    SimTask,
    SimulationPlan,
    average_score,
    plan_rerun,
    plan_run,
    plan_runs,
    render_run,
    simulate,
    simulate_sync,
)

UUID_WOS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-WOS\Z")
START = dt.datetime(2024, 9, 16, 9, 30, 0)


def _parse(chunks: list[bytes]) -> list:
    parser = LogParser()
    events = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return events


def _finished(events: list) -> list[tuple]:
    return [(e.task_id, e.domain, e.score, e.error, e.steps) for e in events if isinstance(e, TaskFinished)]


def _expected(tasks: tuple[SimTask, ...]) -> list[tuple]:
    return [(t.task_id, t.domain, t.score, t.error, t.steps) for t in tasks]


# --------------------------------------------------------------------------- plan


def test_plan_is_deterministic_per_seed() -> None:
    assert plan_run(12, seed=3) == plan_run(12, seed=3)
    assert plan_run(12, seed=3) != plan_run(12, seed=4)
    assert [t.task_id for t in plan_run(12)] == [t.task_id for t in plan_run(12, seed=0)]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("tasks", [1, 2, 3, 12, 40])
def test_plan_is_a_plausible_waa_run(tasks: int, seed: int) -> None:
    plan = plan_run(tasks, seed=seed)
    assert len(plan) == tasks
    assert len({t.task_id for t in plan}) == tasks
    raising = [t for t in plan if t.error is not None]
    assert len(raising) == (1 if tasks >= 2 else 0)
    for t in plan:
        assert UUID_WOS.match(t.task_id), t.task_id
        assert t.domain in DOMAINS
        assert t.steps == len(t.actions) >= 1
        assert t.instruction
        if t.error is None:
            assert t.score in (0.0, 0.5, 1.0)
            assert t.success == (t.score >= 1.0)
            assert t.actions[-1] in ("DONE", "FAIL")
            assert t.actions[-1] == "DONE" or t.score == 0.0
        else:
            assert t.score is None and t.success is False
    # domains come in groups, as WAA iterates them
    order = [t.domain for t in plan]
    assert order == sorted(order, key=order.index)


def test_a_long_run_has_passes_failures_and_partial_scores() -> None:
    scores = [t.score for t in plan_run(200, seed=1)]
    assert {0.0, 0.5, 1.0, None} == set(scores)
    assert scores.count(None) == 1
    assert 0.2 < scores.count(0.0) / 200 < 0.5


# --------------------------------------------------------------------------- render


def test_render_is_pure_and_its_delays_add_up_to_the_steps() -> None:
    plan = plan_run(12, seed=2)
    once = list(render_run(plan, ansi=True, clock_start=START))
    assert once == list(render_run(plan, ansi=True, clock_start=START))
    assert sum(d for d, _ in once) == sum(t.steps for t in plan)
    assert all(d in (0.0, 1.0) for d, _ in once)
    data = b"".join(c for _, c in once)
    assert b"\x1b[1;33m[2024-09-16 09:30:" in data  # WAA's coloured prefix
    assert b"\x1b" not in b"".join(c for _, c in render_run(plan, ansi=False, clock_start=START))
    # some chunks end inside a line: a follower sees partial lines
    assert any(not c.endswith((b"\n", b"]")) and not c.startswith(b"\r") for _, c in once)


def test_render_has_the_waa_landmarks() -> None:
    plan = plan_run(6, seed=5)
    text = b"".join(c for _, c in render_run(plan, ansi=False, clock_start=START)).decode()
    assert "VM is up and running, and the Windows Arena Server is ready to use!" in text
    assert "Response from server: {'message': 'Service is operational'" in text
    assert f"Worker 0 is doing tasks: {waalog.tasks_repr((t.domain, t.task_id) for t in plan)}" in text
    assert "Left tasks:\n" in text
    raising = next(t for t in plan if t.error)
    assert f"Exception in {raising.domain}/{raising.task_id}: {raising.error}\n" in text
    assert "Traceback (most recent call last):\n" in text
    assert f"Finished {raising.domain}/{raising.task_id}" not in text
    for t in plan:
        assert f"[Example ID]: {t.task_id}\n" in text
        if t.score is not None:
            assert f"Result: {t.score:.2f}\n" in text
    assert text.rstrip().endswith(f"Average score: {average_score(plan)}")
    assert "\r" in text  # tqdm redraws


def test_render_refuses_an_empty_plan() -> None:
    with pytest.raises(ValueError, match="at least one task"):
        list(render_run((), ansi=True, clock_start=START))


# --------------------------------------------------------------------------- writer ↔ parser


@pytest.mark.parametrize("ansi", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_rendered_run_parses_into_exactly_the_plan(ansi: bool, seed: int) -> None:
    plan = plan_run(12, seed=seed)
    chunks = [c for _, c in render_run(plan, ansi=ansi, clock_start=START)]
    events = _parse(chunks)
    assert _finished(events) == _expected(plan)
    assert [e.total_tasks for e in events if isinstance(e, RunStarted)] == [12]
    (end,) = [e for e in events if isinstance(e, RunFinished)]
    assert end.average_score == pytest.approx(average_score(plan))
    phases = [p for p, _ in waalog.DOCKUR_BOOT_SEQUENCE if p is not None]
    changes = [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]]
    assert [e.phase for e in events if isinstance(e, PhaseSeen)] == changes  # one per change
    assert changes[0] == "downloading" and changes[-1] == "ready"
    assert [e.ready for e in events if isinstance(e, ServerReady)] == [False, True]
    assert [e.step for e in events if isinstance(e, StepStarted)] == [
        n for t in plan for n in range(1, t.steps + 1)
    ]
    # the same events whole, chunk by chunk (with its split lines) and byte by byte
    whole = _parse([b"".join(chunks)])
    assert [(type(e), e.offset) for e in whole] == [(type(e), e.offset) for e in events]
    assert _finished(_parse([bytes([b]) for b in b"".join(chunks)])) == _expected(plan)


# --------------------------------------------------------------------------- simulate


async def test_simulate_takes_exactly_steps_times_step_seconds(tmp_path: Path, autojump_clock) -> None:
    log = tmp_path / "waa.log"
    start = trio.current_time()
    result = await simulate(log, tasks=7, step_seconds=0.5, seed=3, ansi=True, clock_start=START)
    elapsed = trio.current_time() - start
    plan = plan_run(7, seed=3)
    assert result.tasks == plan
    assert result.total_steps == sum(t.steps for t in plan)
    assert elapsed == result.total_steps * 0.5
    data = log.read_bytes()
    assert data == b"".join(c for _, c in render_run(plan, ansi=True, clock_start=START))
    assert result.bytes_written == len(data)
    assert result.passed == sum(t.success for t in plan)
    assert result.average_score == average_score(plan)


async def test_simulate_with_zero_step_seconds_takes_no_time(tmp_path: Path, autojump_clock) -> None:
    start = trio.current_time()
    result = await simulate(tmp_path / "waa.log", tasks=30, step_seconds=0)
    assert trio.current_time() == start
    assert _finished(_parse([(tmp_path / "waa.log").read_bytes()])) == _expected(result.tasks)


async def test_simulate_truncates_the_old_run_and_reports_the_plan_on_start(tmp_path: Path, autojump_clock) -> None:
    log = tmp_path / "waa.log"
    log.write_bytes(b"an old run that is much longer than nothing\n" * 100)
    async with trio.open_nursery() as nursery:
        expected = await nursery.start(
            lambda task_status: simulate(log, tasks=3, step_seconds=1, clock_start=START, task_status=task_status)
        )
        assert expected == plan_run(3, seed=0)
        full = b"".join(c for _, c in render_run(expected, ansi=True, clock_start=START))
        so_far = log.read_bytes()
        assert len(so_far) < len(full) and full.startswith(so_far)  # truncated, then the new run
    assert log.read_bytes() == full


async def test_a_local_follower_sees_the_run_exactly_with_partial_lines(tmp_path: Path, autojump_clock) -> None:
    log = tmp_path / "waa.log"
    log.write_bytes(b"")
    send, recv = trio.open_memory_channel[LogItem](100_000)  # the test drains it after the run
    async with trio.open_nursery() as nursery:
        await nursery.start(LocalSource(str(log), process_pattern=None, poll_interval=0.05).follow, send)
        result = await simulate(log, tasks=6, step_seconds=1.0, seed=9)
        got = bytearray()
        partial_seen = False
        with trio.fail_after(60):
            while len(got) < result.bytes_written:
                item = await recv.receive()
                if isinstance(item, LogReset):
                    got.clear()
                elif isinstance(item, LogBytes):
                    assert item.offset == len(got)
                    got += item.data
                    partial_seen |= not item.data.endswith((b"\n", b"]"))
        nursery.cancel_scope.cancel()
    assert bytes(got) == log.read_bytes()
    assert partial_seen  # a line split across a step pause was read half first
    assert _finished(_parse([bytes(got)])) == _expected(result.tasks)


def test_simulate_sync_runs_its_own_loop(tmp_path: Path) -> None:
    result = simulate_sync(tmp_path / "waa.log", tasks=2, step_seconds=0, seed=4, ansi=False)
    assert result.tasks == plan_run(2, seed=4)
    assert (tmp_path / "waa.log").stat().st_size == result.bytes_written


# --------------------------------------------------------------------------- junk


@pytest.mark.parametrize("tasks", [0, -1, 100_001, 1.5, True, "3", None])
async def test_junk_task_counts_are_refused(tmp_path: Path, tasks) -> None:
    with pytest.raises(ValueError, match="tasks must be an integer from 1 to 100000"):
        await simulate(tmp_path / "waa.log", tasks=tasks)
    with pytest.raises(ValueError, match="tasks must be an integer"):
        plan_run(tasks)
    assert not (tmp_path / "waa.log").exists()  # refused before touching the file


@pytest.mark.parametrize("step_seconds", [-1, -0.001, math.nan, math.inf, 3601, "1", None])
async def test_junk_step_seconds_are_refused(tmp_path: Path, step_seconds) -> None:
    with pytest.raises(ValueError, match="step_seconds must be a number from 0 to 3600"):
        await simulate(tmp_path / "waa.log", step_seconds=step_seconds)


@pytest.mark.parametrize("path", ["", "/tmp/a\x00b.log"])
async def test_junk_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="log path must be a non-empty path without NUL"):
        await simulate(path, tasks=1)


def test_junk_seed_and_fail_rate_are_refused() -> None:
    with pytest.raises(ValueError, match="seed must be an integer"):
        plan_run(3, seed="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fail_rate must be a number from 0 to 1"):
        SimulationPlan(fail_rate=2)


# --------------------------------------------------------------------------- several runs (baseline demo)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tasks", [2, 5, 12, 40])
def test_a_rerun_has_the_same_tasks_and_a_few_outcomes_flipped_both_ways(tasks: int, seed: int) -> None:
    first = plan_run(tasks, seed=seed)
    second = plan_rerun(first, 2, seed=seed)
    assert second == plan_rerun(first, 2, seed=seed)  # deterministic
    assert [(t.task_id, t.domain, t.instruction, t.steps) for t in second] == [
        (t.task_id, t.domain, t.instruction, t.steps) for t in first
    ]
    fixed = [b for a, b in zip(first, second) if not a.success and b.success]
    regressed = [b for a, b in zip(first, second) if a.success and not b.success]
    changed = [b for a, b in zip(first, second) if a != b]
    assert len(changed) == len(fixed) + len(regressed) <= max(2, round(tasks * 0.2) + 1)
    if any(t.success for t in first):
        assert regressed and all(t.score == 0.0 and t.actions[-1] == "FAIL" for t in regressed)
    if any(not t.success and t.error is None for t in first):
        assert fixed and all(t.score == 1.0 and t.actions[-1] == "DONE" for t in fixed)
    raising = [i for i, t in enumerate(first) if t.error is not None]
    assert [i for i, t in enumerate(second) if t.error is not None] == raising  # raises again


def test_the_flips_depend_on_the_run_number_and_the_seed() -> None:
    first = plan_run(40, seed=1)
    assert len({plan_rerun(first, n, seed=1) for n in range(2, 6)} | {plan_rerun(first, 2, seed=2)}) == 5


def test_plan_runs_chains_each_run_on_the_one_before() -> None:
    one, two, three = plan_runs(12, 3, seed=4)
    assert one == plan_run(12, seed=4) and two == plan_rerun(one, 2, seed=4) and three == plan_rerun(two, 3, seed=4)
    assert plan_runs(12, seed=4) == (one,)


@pytest.mark.parametrize("runs", [0, 21, 1.0, True, "2", None])
def test_junk_run_counts_are_refused(tmp_path: Path, runs) -> None:
    with pytest.raises(ValueError, match="runs must be an integer from 1 to 20"):
        plan_runs(3, runs)
    with pytest.raises(ValueError, match="runs must be an integer from 1 to 20"):
        simulate_sync(tmp_path / "waa.log", tasks=2, step_seconds=0, runs=runs)
    assert not (tmp_path / "waa.log").exists()
    with pytest.raises(ValueError, match="run must be an integer from 2 to 20"):
        plan_rerun(plan_run(3), 1)


async def test_each_later_run_is_a_new_file_generation_the_follower_reads_from_its_start(
    tmp_path: Path, autojump_clock
) -> None:
    log = tmp_path / "waa.log"
    log.write_bytes(b"")
    send, recv = trio.open_memory_channel[LogItem](100_000)  # drained after the runs
    generations: list[bytearray] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(LocalSource(str(log), process_pattern=None, poll_interval=0.05).follow, send)
        result = await simulate(log, tasks=4, step_seconds=1.0, seed=2, runs=2, clock_start=START)
        with trio.fail_after(60):
            while not generations or len(generations[-1]) < log.stat().st_size or len(generations) < 2:
                item = await recv.receive()
                if isinstance(item, LogReset):
                    generations.append(bytearray())
                elif isinstance(item, LogBytes):
                    assert item.offset == len(generations[-1])
                    generations[-1] += item.data
        nursery.cancel_scope.cancel()
    assert result.runs == plan_runs(4, 2, seed=2) and result.tasks == result.runs[0]
    first, second = (bytes(g) for g in generations)
    assert _finished(_parse([first])) == _expected(result.runs[0])
    assert _finished(_parse([second])) == _expected(result.runs[1])
    assert second == log.read_bytes() and first[:4096] != second[:4096]  # a new run id
    assert not list(tmp_path.glob("waa.log.*"))  # no file left behind
