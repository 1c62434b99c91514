"""The results folder on this machine (``results.Results`` over ``sources.results_local``): task
folders found late, traj.jsonl followed as it grows (half-written lines, junk, a rewrite),
the linger after a task ends, on-demand reads (single flight), and the files a trajectory
lists — only those. Real files in tmp_path; virtual time (inotify wakes the follower)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from trio_sse.errors import FileGone, NotFound
from trio_sse.results import Results
from trio_sse.versioned import Versioned
from trio_sse.sources import CurrentTask, LogItem, StepSeen, TrajectoryFound
from trio_sse.sources.results_local import LocalResults

A = "366de66e-cbae-4d72-b042-26390db2b145-WOS"
GUARD = 30  # seconds of virtual time: a bound, never a pace


def folder(root: Path, task: str = A, domain: str = "notepad", levels: tuple[str, ...] = ("pyautogui", "a11y_tree", "gpt-4o", "0")) -> Path:
    return root.joinpath(*levels, domain, task)


def reset_line(ts: str = "20241120@140600") -> bytes:
    return (json.dumps({"step_num": 0, "action_timestamp": ts, "action": None,
                        "screenshot": f"screenshot-step_reset_{ts}.png"}) + "\n").encode()


def step_line(n: int, ts: str = "20241120@140612", action: str = "click") -> bytes:
    return (json.dumps({"step_num": n, "action_timestamp": ts, "action": action, "reward": 0.0, "done": False,
                        "info": {}, "screenshot": f"screenshot-step_{n - 1}_{ts}.png"}) + "\n").encode()


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


class Harness:
    def __init__(self, root: Path, linger: float = 10.0) -> None:
        self.root = root
        self.results = Results("local", LocalResults(str(root)), linger=linger)
        self.current: Versioned[frozenset[CurrentTask]] = Versioned(frozenset())
        self.items: list[LogItem] = []
        self._changed = trio.Event()

    def run_tasks(self, *tasks: CurrentTask) -> None:
        self.current.set(frozenset(tasks))

    async def pump(self, receive: trio.MemoryReceiveChannel[LogItem]) -> None:
        async for item in receive:
            self.items.append(item)
            self._changed.set()
            self._changed = trio.Event()

    async def until(self, pred) -> None:  # type: ignore[no-untyped-def]
        with trio.fail_after(GUARD):
            while not pred():
                await self._changed.wait()

    def steps(self) -> list[tuple[str, int, int, str | None]]:
        return [(i.task_id, i.index, i.step, i.screenshot) for i in self.items if isinstance(i, StepSeen)]


@asynccontextmanager
async def running(root: Path, **kw) -> AsyncIterator[Harness]:  # type: ignore[no-untyped-def]
    h = Harness(root, **kw)
    send, receive = trio.open_memory_channel[LogItem](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(h.pump, receive)
        await nursery.start(h.results.run, send, h.current)
        yield h
        nursery.cancel_scope.cancel()


TASK = CurrentTask("0", "notepad", A)


async def test_a_folder_that_appears_late_and_a_file_that_grows(tmp_path: Path, autojump_clock) -> None:
    root = tmp_path / "results"
    async with running(root) as h:
        h.run_tasks(TASK)
        await trio.sleep(5)  # the folder is looked for again and again meanwhile
        assert h.items == []
        d = folder(root)
        d.mkdir(parents=True)
        traj = d / "traj.jsonl"
        traj.write_bytes(reset_line())
        await h.until(lambda: TrajectoryFound(A, "0") in h.items)
        one = step_line(1)
        append(traj, one[:25])  # half-written: json.dump, and the newline not yet
        await trio.sleep(1)
        assert h.steps() == []
        append(traj, one[25:] + step_line(2, action="type"))
        await h.until(lambda: len(h.steps()) == 2)
        assert h.steps() == [(A, 1, 1, "screenshot-step_0_20241120@140612.png"),
                             (A, 2, 2, "screenshot-step_1_20241120@140612.png")]
        (first, second) = [i for i in h.items if isinstance(i, StepSeen)]
        assert (first.worker, first.at, first.action, second.action) == ("0", "2024-11-20T14:06:12", "click", "type")
        assert h.items.index(TrajectoryFound(A, "0")) == 0  # before any step
        append(traj, b"junk that is not json\n" + step_line(3))
        await h.until(lambda: len(h.steps()) == 3)
        s = h.results.statistics()
        assert (s.followers, s.steps_seen, s.junk_lines) == (1, 3, 1)


async def test_the_follower_lingers_after_the_task_then_stops(tmp_path: Path, autojump_clock) -> None:
    root = tmp_path / "r"
    d = folder(root)
    d.mkdir(parents=True)
    traj = d / "traj.jsonl"
    traj.write_bytes(reset_line() + step_line(1))
    async with running(root, linger=10.0) as h:
        h.run_tasks(TASK)
        await h.until(lambda: len(h.steps()) == 1)
        h.run_tasks()  # the log says the task ended
        await trio.sleep(3)
        append(traj, b'{"Error": "Exception in notepad/x", "Exception": "boom", "Traceback": "tb"}\n'
               + step_line(2))  # still read: written just after the log's end of the task
        await h.until(lambda: len(h.steps()) == 2)
        await trio.sleep(10)
        assert h.results.statistics().followers == 0
        append(traj, step_line(3))
        await trio.sleep(5)
        assert len(h.steps()) == 2  # stopped
        directory, kept = await h.results.task_trajectory("notepad", A, finished=True)  # type: ignore[misc]
        assert directory == str(d) and [s.step for s in kept.steps] == [1, 2]
        assert kept.error is not None and kept.error.message == "boom"
        assert h.results.statistics().trajectories_read == 0  # the follower's, not read again


async def test_a_task_that_runs_again_before_its_linger_ends_keeps_its_follower(tmp_path: Path, autojump_clock) -> None:
    root = tmp_path / "r"
    d = folder(root)
    d.mkdir(parents=True)
    (d / "traj.jsonl").write_bytes(reset_line() + step_line(1))
    async with running(root, linger=10.0) as h:
        h.run_tasks(TASK)
        await h.until(lambda: len(h.steps()) == 1)
        h.run_tasks()
        await trio.sleep(5)
        h.run_tasks(TASK)
        await trio.sleep(20)
        assert h.results.statistics().followers == 1
        assert len(h.steps()) == 1


async def test_a_rewritten_file_is_read_again_from_its_start(tmp_path: Path, autojump_clock) -> None:
    root = tmp_path / "r"
    d = folder(root)
    d.mkdir(parents=True)
    traj = d / "traj.jsonl"
    traj.write_bytes(reset_line() + step_line(1) + step_line(2))
    async with running(root) as h:
        h.run_tasks(TASK)
        await h.until(lambda: len(h.steps()) == 2)
        with traj.open("r+b") as f:  # WAA empties an unfinished task's folder and runs it again
            f.truncate(0)
        append(traj, reset_line() + step_line(1, action="again"))
        await h.until(lambda: len(h.steps()) == 3)
        assert [s[1] for s in h.steps()] == [1, 2, 1]  # the reducer sends index 1 only once


async def test_the_newest_folder_of_the_task_is_followed_at_any_depth(tmp_path: Path, autojump_clock) -> None:
    root = tmp_path / "r"
    old = folder(root, levels=("pyautogui", "a11y_tree", "gpt-4o", "0"))  # WAA, an older trial
    new = folder(root, levels=("pyautogui", "screenshot", "Qwen", "Qwen2-VL", "7"))  # a model with "/"
    osworld = folder(root, levels=("pyautogui", "screenshot", "gpt-4o"))  # OSWorld: no trial level
    for n, d in enumerate((old, osworld, new)):
        d.mkdir(parents=True)
        (d / "traj.jsonl").write_bytes(step_line(1, action=str(d)))
        os.utime(d, ns=(10**9 * (n + 1), 10**9 * (n + 1)))
    backend = LocalResults(str(root))
    assert await backend.find_task_dir("notepad", A) == str(new)
    os.utime(osworld, ns=(10**10, 10**10))
    assert await backend.find_task_dir("notepad", A) == str(osworld)
    assert await backend.find_task_dir("notepad", "no-such-task") is None
    for domain, task in (("..", A), ("notepad", "../../etc"), ("a/b", A), ("notepad", "")):
        assert await backend.find_task_dir(domain, task) is None


async def test_on_demand_reads_are_single_flight_and_kept_when_finished(tmp_path: Path, autojump_clock) -> None:
    root = tmp_path / "r"
    d = folder(root)
    d.mkdir(parents=True)
    (d / "traj.jsonl").write_bytes(reset_line() + step_line(1) + step_line(2))
    async with running(root) as h:
        got = []

        async def view() -> None:
            got.append(await h.results.task_trajectory("notepad", A, finished=True))

        async with trio.open_nursery() as n:
            for _ in range(20):
                n.start_soon(view)
        assert len(got) == 20 and all(g is not None and len(g[1].steps) == 2 for g in got)
        assert h.results.statistics().trajectories_read == 1
        assert len({id(g[1]) for g in got}) == 1  # type: ignore[index]
        # a task that still runs is read each time (its file grows), never kept
        assert await h.results.task_trajectory("notepad", "other", finished=False) is None
        await h.results.task_trajectory("chrome", A + "x", finished=False)
        assert await h.results.task_trajectory(None, A + "y", finished=True) is None


async def test_only_listed_files_are_served_and_vanished_ones_are_counted(tmp_path: Path, autojump_clock) -> None:
    root = tmp_path / "r"
    d = folder(root)
    d.mkdir(parents=True)
    (d / "traj.jsonl").write_bytes(reset_line() + step_line(1) + step_line(2))
    (d / "screenshot-step_0_20241120@140612.png").write_bytes(b"\x89PNG one")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.txt", d / "screenshot-step_1_20241120@140612.png")  # listed, but a link
    (d / "result.txt").write_bytes(b"1.0\n")  # there, but not listed
    async with running(root) as h:
        r = h.results
        fd, size = await r.open_file("notepad", A, "screenshot-step_0_20241120@140612.png", finished=True)
        try:
            assert os.pread(fd, 100, 0) == b"\x89PNG one" and size == 8
        finally:
            os.close(fd)
        for name in ("result.txt", "traj.jsonl", "../secret.txt", "..", "", "a/b", "x\x00y", "x" * 300):
            with pytest.raises(NotFound):
                await r.open_file("notepad", A, name, finished=True)
        assert r.files_missing == 0
        with pytest.raises(FileGone, match="no longer on the target"):
            await r.open_file("notepad", A, "screenshot-step_1_20241120@140612.png", finished=True)
        with pytest.raises(FileGone):  # listed (line 0), never written
            await r.open_file("notepad", A, "screenshot-step_reset_20241120@140600.png", finished=True)
        assert r.files_missing == 2
        with pytest.raises(NotFound, match="has no trajectory"):
            await r.open_file("notepad", "unknown-task", "screenshot-step_0_20241120@140612.png", finished=True)
