"""runstate: step events (SPEC §2.2, §8) — one per executed action, from the task's traj.jsonl
(with the screenshot) or the log's ``Step N:`` line, never both, never twice. Pure tables."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from support import decode_sse

from trio_sse import waalog
from trio_sse.model import Step
from trio_sse.runstate import ACTION_CHARS, Live, RunState
from trio_sse.sources import CurrentTask, LogBytes, LogReset, StepSeen, TrajectoryFound

TS = waalog.format_timestamp(dt.datetime(2024, 5, 6, 10, 0, 0))
A = "366de66e-cbae-4d72-b042-26390db2b145-WOS"
B = "bb5e4c0d-f964-439c-97b6-bdb9747de3f4-WOS"


def rec(message: str, module: str = "run") -> bytes:
    return waalog.format_record(TS, "INFO", module, 1, "MainProcess", message, ansi=False).encode()


HEAD = rec(waalog.worker_tasks(0, [("notepad", A), ("chrome", B)]))
START_A = rec(waalog.domain("notepad")) + rec(waalog.example_id(A)) + rec(waalog.instruction("write hello"))


def step_line(n: int, action: str = "pyautogui.click(1, 2)") -> bytes:
    return rec(waalog.step(n, action), "lib_run_single")


def finish(domain: str, task: str) -> bytes:
    return rec("Result: 1.00", "lib_run_single") + rec(waalog.finished(domain, task))


def seen(index: int, *, task: str = A, step: int | None = None, shot: str | None = "s.png", action: str = "act") -> StepSeen:
    return StepSeen(task, step or index, action, shot, "2024-05-06T10:00:07", "0", 0.0, False, index)


class Feed:
    """A RunState fed item by item; ``steps`` are the step events so far, as tuples."""

    def __init__(self, target: str = "vm1") -> None:
        self.state = RunState(target)
        self.offset = 0
        self.events: list[Step] = []
        self.state.log(LogReset("/x.log"))

    def log(self, data: bytes) -> list[tuple[Any, ...]]:
        return self._take(self.state.log(LogBytes(data, self.offset)), len(data))

    def item(self, item: Any) -> list[tuple[Any, ...]]:
        return self._take(self.state.log(item), 0)

    def _take(self, outputs: list[Any], n: int) -> list[tuple[Any, ...]]:
        self.offset += n
        steps = [o.event for o in outputs if isinstance(o, Live)]
        self.events += steps
        return [(s.task_id, s.step, s.screenshot is not None) for s in steps]


def test_without_a_trajectory_steps_come_from_the_log() -> None:
    f = Feed()
    assert f.log(HEAD + START_A) == []
    assert f.log(step_line(1, "pyautogui.click(10, 20)")) == [(A, 1, False)]
    assert f.log(step_line(2, "DONE")) == [(A, 2, False)]
    first = f.events[0]
    assert first == Step("vm1", A, 1, "pyautogui.click(10, 20)", None, "2024-05-06T10:00:00.000", "0")
    assert f.state.progress.action == "DONE" and f.state.progress.current_step == 2
    assert f.log(finish("notepad", A)) == []


def test_with_a_trajectory_steps_come_from_it_with_the_screenshot_never_both() -> None:
    f = Feed()
    f.log(HEAD + START_A)
    assert f.item(TrajectoryFound(A, "0")) == []
    assert f.log(step_line(1)) == []  # waits for the trajectory's line (it has the screenshot)
    assert f.item(seen(1, shot="screenshot-step_0_20241120@140612.png", action="full\naction")) == [(A, 1, True)]
    assert f.events[-1].screenshot == f"/api/tasks/{A}/files/screenshot-step_0_20241120%40140612.png?target=vm1"
    assert f.events[-1].at == "2024-05-06T10:00:07" and f.events[-1].worker == "0"
    assert f.state.progress.action == "full\naction"  # the trajectory's whole action
    assert f.log(step_line(2)) == []
    assert f.item(seen(2)) == [(A, 2, True)]


def test_a_step_the_log_sent_first_is_not_sent_again_by_the_trajectory() -> None:
    f = Feed()
    f.log(HEAD + START_A)
    assert f.log(step_line(1)) == [(A, 1, False)]  # the trajectory was not found yet
    f.item(TrajectoryFound(A, "0"))
    assert f.item(seen(1)) == []  # the same action: already sent
    assert f.log(step_line(2)) == []
    assert f.item(seen(2)) == [(A, 2, True)]
    # a trajectory line read before the log's line of the same action (independent readers)
    assert f.item(seen(3)) == [(A, 3, True)]
    assert f.log(step_line(3)) == []
    assert [e.step for e in f.events] == [1, 2, 3]


def test_a_follower_that_reads_the_file_again_sends_nothing_twice() -> None:
    f = Feed()
    f.log(HEAD + START_A)
    f.item(TrajectoryFound(A, "0"))
    assert [f.item(seen(i)) for i in (1, 2)] == [[(A, 1, True)], [(A, 2, True)]]
    assert [f.item(seen(i)) for i in (1, 2)] == [[], []]  # after a reconnect that re-read from 0
    assert f.item(seen(3)) == [(A, 3, True)]


def test_several_actions_of_one_step_share_its_number_but_each_is_an_event() -> None:
    f = Feed()
    f.log(HEAD + START_A)
    assert f.log(step_line(1) + step_line(1)) == [(A, 1, False), (A, 1, False)]
    g = Feed()
    g.log(HEAD + START_A)
    g.item(TrajectoryFound(A, "0"))
    assert g.item(seen(1, step=1)) + g.item(seen(2, step=1)) == [(A, 1, True), (A, 1, True)]


def test_a_log_read_from_its_start_sends_only_the_running_tasks_steps() -> None:
    start_b = rec(waalog.domain("chrome")) + rec(waalog.example_id(B))
    history = HEAD + START_A + step_line(1) + step_line(2) + finish("notepad", A) + start_b + step_line(1) + step_line(2)
    f = Feed()
    assert f.log(history) == [(B, 1, False), (B, 2, False)]  # A ended within the read: history
    assert f.log(step_line(3)) == [(B, 3, False)]


def test_steps_of_other_runs_or_unknown_tasks_are_not_sent() -> None:
    f = Feed()
    f.log(HEAD + START_A)
    assert f.item(seen(1, task="not-a-task-of-this-run")) == []
    assert f.item(seen(0)) == []  # index 0: junk
    f.item(LogReset("/x.log", "truncated"))  # a new run: A is not one of its tasks
    assert f.item(seen(1)) == []


def test_a_finished_tasks_late_trajectory_line_is_still_sent_once() -> None:
    f = Feed()
    f.log(HEAD + START_A)
    f.item(TrajectoryFound(A, "0"))
    f.log(step_line(1) + finish("notepad", A))
    assert f.state.progress.current_task is None
    assert f.item(seen(1)) == [(A, 1, True)]  # WAA wrote it just before Finished
    assert f.state.progress.current_task is None and f.state.progress.action is None


def test_an_older_trajectory_line_does_not_turn_back_the_current_action() -> None:
    f = Feed()
    f.log(HEAD + START_A)
    f.log(step_line(1, "first") + step_line(2, "second"))
    f.item(TrajectoryFound(A, "0"))
    f.item(seen(1, action="first, from the trajectory"))
    assert f.state.progress.action == "second" and f.state.progress.current_step == 2


def test_actions_are_cut_to_2_kib() -> None:
    f = Feed()
    f.log(HEAD + START_A)
    f.item(TrajectoryFound(A, "0"))
    f.item(seen(1, action="x" * 10_000))
    assert f.events[-1].action == "x" * ACTION_CHARS and f.state.progress.action == "x" * ACTION_CHARS


def test_the_frame_is_encoded_once_without_an_id() -> None:
    f = Feed()
    f.log(HEAD + START_A)
    out = [o for o in f.state.log(LogBytes(step_line(1), f.offset)) if isinstance(o, Live)]
    (live,) = out
    (sse,) = decode_sse([live.frame])
    assert sse.event == "step" and sse.id == ""
    assert json.loads(sse.data) == live.event.payload() == {
        "task_id": A, "step": 1, "action": "pyautogui.click(1, 2)", "screenshot": None,
        "at": "2024-05-06T10:00:00.000", "target": "vm1", "worker": "0"}
    assert Step.from_payload(json.loads(sse.data)) == live.event


def test_current_tasks_and_the_task_view() -> None:
    f = Feed()
    f.log(HEAD + START_A + step_line(1))
    assert f.state.current_tasks() == frozenset({CurrentTask("0", "notepad", A)})
    view, domain = f.state.task(A)
    assert domain == "notepad"
    assert view == {"task_id": A, "target": "vm1", "domain": "notepad", "worker": "0", "instruction": "write hello",
                    "started_at": "2024-05-06T10:00:00.000", "current_step": 1,
                    "action": "pyautogui.click(1, 2)", "evaluating": False, "finished": False}
    f.log(finish("notepad", A))
    assert f.state.current_tasks() == frozenset()
    view, domain = f.state.task(A)
    assert view["finished"] is True and view["success"] is True and view["score"] == 1.0 and domain == "notepad"
    assert f.state.task(B) is None and f.state.task("") is None
