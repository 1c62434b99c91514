"""The simulator's results folder (SPEC §8) and its showcase: traj.jsonl lines the trajectory
parser reads back into exactly the plan, written where WAA writes them relative to the log,
real PNG screenshots (checked with an independent decoder), a run that replaces only its
own folders; the showcase's raising, max-steps and stalling tasks, read back by the log
parser. The existing plans and logs (no showcase) are unchanged: tests/test_simulate.py."""

from __future__ import annotations

import datetime as dt
import struct
import zlib
from pathlib import Path

import pytest
import trio

from trio_sse.logparse import LogParser, TaskFinished
from trio_sse.png import encode_png, step_frame
from trio_sse.sources.simulate import (
    MAX_STEPS,
    SIM_MARKER,
    STALL_STEPS,
    ResultFile,
    plan_run,
    render_results,
    render_run,
    simulate,
    task_folder,
)
from trio_sse.trajectory import ErrorRecord, Trajectory

START = dt.datetime(2024, 9, 16, 9, 30, 0)


def trajectories(files: list[tuple[int, ResultFile]]) -> dict[str, Trajectory]:
    out: dict[str, Trajectory] = {}
    for _, f in files:
        if f.path.endswith("/traj.jsonl"):
            assert f.append
            out.setdefault(f.path.rsplit("/", 1)[0], Trajectory()).feed(f.data)
    return out


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """An independent PNG reader (signature, chunk CRCs, IHDR, IDAT, filter 0 rows)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks.setdefault(kind, b"")
        chunks[kind] += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour, interlace) == (8, 2, 0) and b"IEND" in chunks
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = width * 3 + 1
    rows = [raw[i * stride : (i + 1) * stride] for i in range(height)]
    assert all(r[0] == 0 for r in rows)
    return width, height, [r[1:] for r in rows]


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_each_tasks_trajectory_is_the_plan(seed: int) -> None:
    plan = plan_run(12, seed=seed)
    files = render_results(plan, clock_start=START)
    trajs = trajectories(files)
    written = {f.path: f for _, f in files}
    assert set(trajs) == {task_folder(t) for t in plan}
    for t in plan:
        traj = trajs[task_folder(t)]
        assert traj.statistics.junk == 0 and traj.reset is not None
        executed = t.actions[: t.steps - 1] if t.error else t.actions  # the raising action has no line
        assert [s.action for s in traj.steps] == list(executed)
        assert [s.step for s in traj.steps] == list(range(1, len(executed) + 1))
        assert all(s.screenshot and f"{task_folder(t)}/{s.screenshot}" in written for s in traj.steps)
        assert all(f"{task_folder(t)}/{name}" in written for name in traj.files)  # every listed name exists
        assert f"{task_folder(t)}/{SIM_MARKER}" in written
        if t.error:
            assert traj.error == ErrorRecord(t.error, traj.error.traceback if traj.error else None)
            assert traj.error is not None and traj.error.traceback and t.error in traj.error.traceback
            assert f"{task_folder(t)}/result.txt" not in written
        else:
            assert traj.error is None and written[f"{task_folder(t)}/result.txt"].data == f"{t.score}\n".encode()
        assert task_folder(t).split("/")[:4] == ["pyautogui", "a11y_tree", "gpt-4o", "0"]


def test_files_are_written_where_waa_writes_them_relative_to_the_log() -> None:
    plan = plan_run(6, seed=2)
    chunks = [c for _, c in render_run(plan, ansi=False, clock_start=START)]
    files = render_results(plan, clock_start=START)
    log_before = lambda index: b"".join(chunks[:index])  # noqa: E731 - what the log holds when a file is written
    for t in plan:
        lines = [(i, f) for i, f in files if f.path == f"{task_folder(t)}/traj.jsonl"]
        i0, _ = lines[0]  # line 0: after the task's start, before its first step
        assert f"[Example ID]: {t.task_id}".encode() in log_before(i0)
        assert f"Step 1: {t.actions[0]}".encode() not in log_before(i0)[log_before(i0).rfind(t.task_id.encode()):]
        for n, (i, f) in enumerate(lines[1:], start=1):
            text = log_before(i)[log_before(i).rfind(f"[Example ID]: {t.task_id}".encode()):]
            if b'"Error"' in f.data:
                assert f"Exception in {t.domain}/{t.task_id}".encode() in text and b"Traceback" in text
                continue
            assert f"Step {n}: ".encode() in text  # after its step was logged…
            assert f"Step {n + 1}: ".encode() not in text  # …before the next one
            assert f"Finished {t.domain}/{t.task_id}".encode() not in text


def test_screenshots_are_real_pngs_with_the_step_drawn() -> None:
    for step in (0, 1, 7, 12, 25):
        width, height, rows = decode_png(step_frame(step, (10, 20, 30)))
        assert (width, height) == (320, 200)
        row = rows[20]  # the first row of blocks
        whites = sum(1 for x in range(0, width * 3, 3) if row[x : x + 3] == b"\xff\xff\xff")
        assert whites == min(step, 10) * 16
        assert rows[100][3 * 100 : 3 * 101] == bytes((10, 20, 30))  # the background
    assert step_frame(3, (1, 2, 3)) != step_frame(4, (1, 2, 3))
    assert len(step_frame(15, (1, 2, 3))) < 4000  # small
    with pytest.raises(ValueError):
        encode_png(2, 1, [b"\x00" * 5])
    with pytest.raises(ValueError):
        encode_png(0, 1, [b""])


def test_showcase_changes_three_tasks_and_nothing_else() -> None:
    for seed in range(6):
        base, show = plan_run(12, seed=seed), plan_run(12, seed=seed, showcase=True)
        assert [(t.task_id, t.domain, t.instruction) for t in base] == [(t.task_id, t.domain, t.instruction) for t in show]
        changed = [i for i, (a, b) in enumerate(zip(base, show, strict=True)) if a != b]
        assert len(changed) == 3 and 0 not in changed
        assert sum(t.error is not None for t in show) == 2
        (long,) = [t for t in show if t.steps == MAX_STEPS]
        assert long.score == 0.0 and long.actions[-1] not in ("DONE", "FAIL", "WAIT")
        (stalling,) = [t for t in show if t.stall_at]
        assert 2 <= stalling.stall_at <= stalling.steps and stalling.stall_steps == STALL_STEPS
    assert plan_run(5, seed=0, showcase=True) == plan_run(5, seed=0)  # too few tasks: as it was


def test_the_showcase_log_reads_back_with_its_failure_kinds_and_pause() -> None:
    plan = plan_run(12, seed=4, showcase=True)
    chunks = list(render_run(plan, ansi=True, clock_start=START))
    assert max(d for d, _ in chunks) == 1 + STALL_STEPS
    assert sum(d for d, _ in chunks) == sum(t.steps for t in plan) + STALL_STEPS
    parser = LogParser()
    events = [e for _, c in chunks for e in parser.feed(c)] + parser.close()
    done = {e.task_id: e for e in events if isinstance(e, TaskFinished)}
    assert [(e.task_id, e.score, e.error, e.steps) for e in done.values()] == [
        (t.task_id, t.score, t.error, t.steps) for t in plan]
    (long,) = [t for t in plan if t.steps == MAX_STEPS]
    assert done[long.task_id].failure_kind == "max_steps"  # the Args line's max_steps=15, no DONE
    unreachable = [t for t in plan if t.error and "20.20.20.21" in t.error]
    assert unreachable and all(done[t.task_id].failure_kind == "infra" for t in unreachable)


async def test_simulate_writes_the_folder_and_replaces_only_its_own(tmp_path: Path, autojump_clock) -> None:
    log, results = tmp_path / "waa.log", tmp_path / "results"
    plan = plan_run(4, seed=1)
    await simulate(log, tasks=4, seed=1, step_seconds=0.5, results_dir=results, clock_start=START)
    for _, f in render_results(plan, clock_start=START):
        path = results / f.path
        assert path.exists()
        if not f.append:
            assert path.read_bytes() == f.data
    first = (results / task_folder(plan[0]) / "traj.jsonl").read_bytes()
    await simulate(log, tasks=4, seed=1, step_seconds=0, results_dir=results, clock_start=START)
    assert (results / task_folder(plan[0]) / "traj.jsonl").read_bytes() == first  # replaced, not appended to
    # a folder of the same task that the simulator did not write: refused, nothing touched
    (results / task_folder(plan[1]) / SIM_MARKER).unlink()
    log.write_bytes(b"the previous run\n")
    with pytest.raises(ValueError, match="was not written by the simulator"):
        await simulate(log, tasks=4, seed=1, step_seconds=0, results_dir=results, clock_start=START)
    assert log.read_bytes() == b"the previous run\n"
    assert (results / task_folder(plan[0]) / "traj.jsonl").read_bytes() == first


async def test_the_stalling_task_pauses_the_writer(tmp_path: Path, autojump_clock) -> None:
    start = trio.current_time()
    result = await simulate(tmp_path / "waa.log", tasks=8, seed=2, step_seconds=0.5, showcase=True, clock_start=START)
    assert trio.current_time() - start == (result.total_steps + STALL_STEPS) * 0.5
