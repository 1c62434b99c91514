"""runstate.RunState, the pure reducer: inputs in → outputs and state out, as plain tables.
No Trio, no sockets: each case is a list of inputs and what must come out of them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from trio_sse import waalog
from trio_sse.history import Entry, run_id_for
from trio_sse.logparse import RunStarted, TaskFinished
from trio_sse.model import ErrorEvent, RunComplete, TaskComplete
from trio_sse.runstate import RUN_KEY_BYTES, Live, RunState
from trio_sse.sources import LogBytes, LogMissing, LogReset, ProbeResult, SourceDown, SourceUp

TS = waalog.format_timestamp(dt.datetime(2024, 5, 6, 10, 0, 0))


def rec(message: str, module: str = "run", lineno: int = 1) -> bytes:
    return waalog.format_record(TS, "INFO", module, lineno, "MainProcess", message, ansi=False).encode()


def task(domain: str, task_id: str, result: str | None = "1.00", error: str | None = None, steps: int = 1) -> bytes:
    out = rec(waalog.domain(domain)) + rec(waalog.example_id(task_id))
    out += b"".join(rec(waalog.step(n, "pyautogui.click(1, 2)"), "lib_run_single") for n in range(1, steps + 1))
    if error is not None:
        return out + rec(waalog.exception_in(domain, task_id, error))
    return out + rec(f"Result: {result}", "lib_run_single") + rec(waalog.finished(domain, task_id))


RUN = (
    rec(waalog.worker_tasks(0, [("notepad", "a-WOS"), ("chrome", "b-WOS"), ("vlc", "c-WOS")]))
    + task("notepad", "a-WOS", "1.00", steps=2)
    + task("chrome", "b-WOS", error="boom")
    + task("vlc", "c-WOS", "0.00")
    + rec(waalog.average_score(0.5))
)


def out(outputs: list[Any]) -> list[tuple]:
    """Outputs as plain tuples: ('task', id, success, score, error) / ('run', passed, average) / ('error', msg)
    / ('step', task id, step) — a step of a task still running when the input was applied."""
    rows: list[tuple] = []
    for o in outputs:
        if isinstance(o, ErrorEvent):
            rows.append(("error", o.message))
        elif isinstance(o, Live):
            rows.append(("step", o.event.task_id, o.event.step))
        elif isinstance(o.event, TaskComplete):
            e = o.event
            rows.append(("task", e.task_id, e.success, e.score, e.error))
        else:
            assert isinstance(o.event, RunComplete)
            rows.append(("run", o.event.tasks_completed, o.event.tasks_passed, o.event.average_score))
    return rows


def feed(state: RunState, items: list[Any]) -> list[tuple]:
    got: list[Any] = []
    for item in items:
        got += state.probe(item) or [] if isinstance(item, ProbeResult) else state.log(item)
    return out(got)


CASES = [
    (
        "a whole run: results in log order, the run's end with WAA's own average",
        [LogReset("/x.log"), LogBytes(RUN, 0)],
        [("task", "a-WOS", True, 1.0, None), ("task", "b-WOS", False, None, "boom"),
         ("task", "c-WOS", False, 0.0, None), ("run", 3, 1, 0.5)],
        {"tasks_completed": 3, "total_tasks": 3, "finished": True, "current_task": None},
    ),
    (
        "a task started but not finished is current, with its step",
        [LogReset("/x.log"), LogBytes(RUN[: RUN.index(b"Result: 1.00")], 0)],
        [("step", "a-WOS", 1), ("step", "a-WOS", 2)],
        {"tasks_completed": 0, "total_tasks": 3, "current_task": "a-WOS", "current_step": 2, "run": None},
    ),
    (
        "one error per outage; recovery is silent",
        [SourceDown("ssh vm: connection refused"), SourceDown("again"), SourceUp(), SourceDown("third")],
        [("error", "ssh vm: connection refused"), ("error", "third")],
        {"tasks_completed": 0},
    ),
    (
        "a reset starts a new run: the old results are gone",
        [LogReset("/x.log"), LogBytes(RUN, 0), LogReset("/x.log", "truncated"), LogBytes(RUN[:100], 0)],
        [("task", "a-WOS", True, 1.0, None), ("task", "b-WOS", False, None, "boom"),
         ("task", "c-WOS", False, 0.0, None), ("run", 3, 1, 0.5)],
        {"tasks_completed": 0, "finished": False, "run": None},
    ),
    (
        "a second run appended to the same file is a new run",
        [LogReset("/x.log"), LogBytes(RUN + RUN[: RUN.index(b"Result: 0.00")], 0)],
        [("task", "a-WOS", True, 1.0, None), ("task", "b-WOS", False, None, "boom"),
         ("task", "c-WOS", False, 0.0, None), ("run", 3, 1, 0.5),
         ("task", "a-WOS", True, 1.0, None), ("task", "b-WOS", False, None, "boom"), ("step", "c-WOS", 1)],
        {"tasks_completed": 2, "finished": False, "current_task": "c-WOS"},
    ),
    (
        "the original endpoint's simple format counts tasks, never reports a result",
        [LogReset("/x.log"), LogBytes(b"Task 3/10\nRunning task: task_003_notepad\nStep 4\n", 0)],
        [("step", "task_003_notepad", 4)],
        {"tasks_completed": 2, "total_tasks": 10, "current_task": "task_003_notepad", "current_step": 4},
    ),
]


@pytest.mark.parametrize(("what", "inputs", "expected", "progress"), CASES, ids=[c[0] for c in CASES])
def test_table(what, inputs, expected, progress):
    state = RunState("vm1")
    assert feed(state, inputs) == expected
    p = state.progress.payload()
    assert {k: p[k] for k in progress} == progress


@pytest.mark.parametrize("size", [1, 7, 4096, len(RUN)])
def test_any_chunking_gives_the_same_outputs_and_ids(size):
    whole, chunked = RunState("vm1"), RunState("vm1")
    a = whole.log(LogReset("/x.log")) + whole.log(LogBytes(RUN, 0))
    b = chunked.log(LogReset("/x.log"))
    for i in range(0, len(RUN), size):
        b += chunked.log(LogBytes(RUN[i : i + size], i))
    assert [e.frame for e in a if isinstance(e, Entry)] == [e.frame for e in b if isinstance(e, Entry)]
    assert whole.history.run == chunked.history.run == run_id_for(RUN[: RUN.index(rec(waalog.finished("notepad", "a-WOS")))])


def test_ids_name_the_target_the_run_and_the_place():
    state = RunState("vm1")
    outputs = state.log(LogReset("/x.log")) + state.log(LogBytes(RUN, 0))
    assert [o.id for o in outputs] == [f"vm1:{state.history.run}-{n}" for n in (1, 2, 3, 4)]
    assert state.progress.run == state.history.run


def test_a_long_preamble_names_the_run_by_its_first_bytes():
    state = RunState("vm1")
    preamble = b"".join(b"noise %05d\n" % i for i in range(600))
    state.log(LogReset("/x.log"))
    state.log(LogBytes(preamble, 0))
    assert state.progress.run == run_id_for(preamble[:RUN_KEY_BYTES]) == state.history.run


STATUS_CASES = [
    # (what, log lines, probe, expected (connected, phase, waa_ready, probe_status))
    ("nothing known", b"", None, (True, "unknown", False, "unknown")),
    ("tasks running imply a ready VM", RUN[:300], None, (True, "ready", False, "unknown")),
    ("WAA's own readiness line", rec(waalog.response_from_server()), None, (True, "unknown", True, "ready")),
    ("WAA's own failure line", rec(waalog.failed_to_get_hello("timed out")), None,
     (True, "unknown", False, "Not responding")),
    ("a phase line in the log", waalog.dockur_info("Booting Windows using QEMU", ansi=False).encode() + b"\n", None,
     (True, "booting", False, "unknown")),
    ("the probe wins over the log", rec(waalog.response_from_server()),
     ProbeResult(connected=True, phase="oobe", waa_ready=False, probe_status="Not responding"),
     (True, "oobe", False, "Not responding")),
    ("a disconnected host has no phase and is not ready", RUN[:300],
     ProbeResult(connected=False, phase="ready"), (False, "unknown", False, "unknown")),
]


@pytest.mark.parametrize(("what", "log", "probe", "expected"), STATUS_CASES, ids=[c[0] for c in STATUS_CASES])
def test_status_table(what, log, probe, expected):
    state = RunState("vm1", vnc_url="http://h:8006")
    state.log(LogReset("/x.log"))
    state.log(LogBytes(log, 0))
    if probe is not None:
        state.probe(probe)
    s = state.status
    assert (s.connected, s.phase, s.waa_ready, s.probe_status) == expected
    assert s.vnc_url == "http://h:8006"


def test_an_outage_keeps_its_error_for_late_clients_until_it_ends():
    state = RunState("vm1")
    (error,) = state.log(SourceDown("ssh vm: connection refused"))
    assert state.outage == error and not state.status.connected
    state.log(SourceUp())
    assert state.outage is None and state.status.connected
    assert state.statistics().outages == 1


def test_probe_reports_the_benchmark_process():
    state = RunState("vm1")
    state.probe(ProbeResult(connected=True, running=True))
    assert state.progress.running is True
    state.log(LogReset("/x.log"))  # a new run keeps what the probe knows
    assert state.progress.running is True


def test_another_workers_run_line_only_updates_the_total():
    state = RunState("vm1")
    first = state.parsed([RunStarted(2, 0), TaskFinished("a", "notepad", 1.0, None, 1, 10)])
    assert len(first) == 1
    assert state.parsed([RunStarted(4, 20, same_run=True)]) == []
    assert state.progress.total_tasks == 4 and len(state.history) == 1


def test_statistics_count_bytes_lines_runs_and_parse_errors():
    state = RunState("vm1")
    state.log(LogReset("/x.log"))
    state.log(LogBytes(RUN, 0))
    state.log(LogReset("/x.log", "replaced"))
    state.log(LogBytes(rec("Result: abc", "lib_run_single"), 0))
    s = state.statistics()
    assert (s.bytes_read, s.runs) == (len(RUN) + len(rec("Result: abc", "lib_run_single")), 2)
    assert s.lines == RUN.count(b"\n") + 1 and s.parse_errors == 1


# ---------------------------------------------------------------- several worker files (lanes)


def worker_run(worker: int, tasks: list[tuple[str, str]], average: float | None = None) -> bytes:
    out = rec(waalog.worker_tasks(worker, tasks))
    for domain, task_id in tasks:
        out += task(domain, task_id, "1.00" if task_id.endswith("1-WOS") else "0.00")
    return out + rec(waalog.average_score(average) if average is not None else waalog.no_examples_finished())


W0 = worker_run(0, [("notepad", "a1-WOS"), ("chrome", "a2-WOS")], 0.5)
W1 = worker_run(1, [("vlc", "b1-WOS"), ("vlc", "b2-WOS"), ("clock", "b3-WOS")], 0.33)
P0, P1 = "/r/logs/normal-0-20241120@140612.log", "/r/logs/normal-1-20241120@140613.log"


def interleave(order: str, size: int = 97) -> list[Any]:
    """Resets for both files, then their bytes in chunks, in ``order`` ('0'/'1' per chunk,
    the rest of both files after)."""
    items: list[Any] = [LogReset(P0), LogReset(P1)]
    pos = {"0": 0, "1": 0}
    data = {"0": W0, "1": W1}
    path = {"0": P0, "1": P1}
    for w in order + "0" * 99 + "1" * 99:
        if pos[w] < len(data[w]):
            items.append(LogBytes(data[w][pos[w] : pos[w] + size], pos[w], path[w]))
            pos[w] += size
    return items


def test_two_workers_files_are_one_run():
    state = RunState("vm1", lanes=True)
    outputs = [o for item in interleave("0101010101") for o in state.log(item) if isinstance(o, Entry)]
    tasks = [o.event.task_id for o in outputs if isinstance(o.event, TaskComplete)]
    assert sorted(tasks) == ["a1-WOS", "a2-WOS", "b1-WOS", "b2-WOS", "b3-WOS"]
    runs = [o.event for o in outputs if isinstance(o.event, RunComplete)]
    assert len(runs) == 1 and runs[0].tasks_completed == 5 and runs[0].total_tasks == 5
    assert outputs[-1].event is runs[0]  # the run ends when its last worker does
    p = state.progress
    assert (p.tasks_completed, p.total_tasks, p.finished) == (5, 5, True)
    assert len({o.id.split(":")[1].split("-")[0] for o in outputs}) == 1  # one run id
    assert state.statistics().runs == 1


def test_tasks_completed_never_goes_back_and_each_task_is_reported_once():
    state = RunState("vm1", lanes=True)
    seen = []
    for item in interleave("0110100110" * 3, size=41):
        state.log(item)
        seen.append(state.progress.tasks_completed)
    assert seen == sorted(seen) and seen[-1] == 5


def test_a_task_in_two_files_is_reported_once():
    # A worker re-ran a task another worker already finished (the run is not over yet).
    state = RunState("vm1", lanes=True)
    p2 = "/r/logs/normal-2-20241120@140614.log"
    for item in (LogReset(P0), LogReset(p2), LogBytes(W0, 0, P0)):
        state.log(item)
    again = worker_run(2, [("notepad", "a1-WOS"), ("notepad", "d1-WOS")])
    out = state.log(LogBytes(again, 0, p2))
    assert [o.event.task_id for o in out if isinstance(o.event, TaskComplete)] == ["d1-WOS"]
    assert state.progress.tasks_completed == 3


@pytest.mark.parametrize("order", ["0000011111", "1111100000", "0101010101", "1100110011"])
def test_each_task_keeps_its_lane_and_ordinal_whatever_the_interleaving(order):
    # What a resume after a restart relies on: the files are read in another order, each
    # event is still the same lane's same ordinal.
    state = RunState("vm1", lanes=True)
    outputs = [o for item in interleave(order) for o in state.log(item)]
    places = {o.event.task_id: (o.lane, o.n) for o in outputs if isinstance(o.event, TaskComplete)}
    reference = RunState("vm1", lanes=True)
    ref = {o.event.task_id: (o.lane, o.n) for item in interleave("") for o in reference.log(item)
           if isinstance(o.event, TaskComplete)}
    assert places == ref


def test_a_new_file_of_a_worker_the_run_has_starts_a_new_run():
    state = RunState("vm1", lanes=True)
    for item in interleave("01"):
        state.log(item)
    first = state.history.run
    newer = "/r/logs/normal-0-20241121@090000.log"
    state.log(LogReset(newer))
    assert state.history.run == "" and len(state.history) == 0 and state.progress.tasks_completed == 0
    # the old run's other file goes on being read: ignored
    assert state.log(LogBytes(W1, 0, P1)) == []
    out = state.log(LogBytes(W0.replace(b"a1-WOS", b"c1-WOS"), 0, newer))
    assert {o.event.task_id for o in out if isinstance(o.event, TaskComplete)} == {"c1-WOS", "a2-WOS"}
    assert state.history.run not in ("", first)


def test_a_file_after_the_run_completed_starts_a_new_run():
    state = RunState("vm1", lanes=True)
    for item in interleave(""):
        state.log(item)
    assert state.run_complete is not None
    state.log(LogReset("/r/logs/normal-5-20241122@000000.log"))
    assert state.run_complete is None and state.progress.tasks_completed == 0


def test_a_missing_log_is_reported_once_until_it_appears():
    state = RunState("vm1", lanes=True)
    (error,) = state.log(LogMissing("/r/logs/normal-*.log"))
    assert "/r/logs/normal-*.log" in error.message
    assert state.log(LogMissing("/r/logs/normal-*.log")) == []
    assert state.status.probe_status == "log not found: /r/logs/normal-*.log"
    state.log(LogReset(P0))
    assert state.status.probe_status == "unknown"


# ---------------------------------------------------------------- baseline and forecast (SPEC §9)


def test_results_carry_the_baseline_and_the_change():
    from trio_sse.baseline import Baseline

    then = Baseline("vm1:old", [
        {"task_id": "a-WOS", "success": False, "score": 0.0, "domain": "notepad"},
        {"task_id": "c-WOS", "success": True, "score": 1.0, "domain": "vlc"},
    ])
    state = RunState("vm1")
    state.set_baselines([then])
    out = state.log(LogReset("/x.log")) + state.log(LogBytes(RUN, 0))
    got = {o.event.task_id: (o.event.change, o.event.baseline) for o in out if isinstance(o.event, TaskComplete)}
    assert got["a-WOS"][0] == "fixed" and got["a-WOS"][1].success is False
    assert got["b-WOS"] == ("new", None)
    assert got["c-WOS"][0] == "regressed"
    (done,) = [o.event for o in out if isinstance(o.event, RunComplete)]
    assert done.baseline["fixed"] == 1 and done.baseline["regressed"] == 1 and done.baseline["run"] == "vm1:old"
    assert b'"change":"fixed"' in out[0].frame  # encoded once, with the comparison


def test_a_run_is_never_its_own_baseline():
    from trio_sse.baseline import Baseline

    state = RunState("vm1")
    state.log(LogReset("/x.log"))
    state.log(LogBytes(RUN, 0))
    me = f"vm1:{state.history.run}"
    state.set_baselines([Baseline(me, []), Baseline("vm1:older", [])])
    assert state.baseline is not None and state.baseline.run == "vm1:older"


RUN2 = (  # the next run: a-WOS now fails, c-WOS now passes (other first bytes: another run id)
    rec(waalog.worker_tasks(0, [("notepad", "a-WOS"), ("vlc", "c-WOS")]), lineno=2)
    + task("notepad", "a-WOS", "0.00")
    + task("vlc", "c-WOS", "1.00")
    + rec(waalog.average_score(0.5))
)


@pytest.mark.parametrize("previous", [True, False])
def test_with_baseline_previous_the_run_that_ended_is_the_next_runs_baseline_at_once(previous: bool):
    """``--baseline previous`` and two runs back to back: the second is compared with the first
    as soon as it is named, without waiting for the database to store the first (the hub's
    lookup runs in the background and may come late). A named baseline stays what it is."""
    from trio_sse.baseline import Baseline

    named = Baseline("vm1:named", [{"task_id": "a-WOS", "success": True, "score": 1.0}])
    state = RunState("vm1")
    state.set_baselines([] if previous else [named], previous=previous)
    state.log(LogReset("/r/one.log"))
    state.log(LogBytes(RUN, 0))
    first = f"vm1:{state.history.run}"
    out = state.log(LogReset("/r/two.log")) + state.log(LogBytes(RUN2, 0))
    assert f"vm1:{state.history.run}" != first
    got = {o.event.task_id: (o.event.change, o.event.baseline) for o in out if isinstance(o.event, TaskComplete)}
    (done,) = [o.event for o in out if isinstance(o.event, RunComplete)]
    if previous:
        assert state.baseline is not None and state.baseline.run == first
        assert got["a-WOS"][0] == "regressed" and got["a-WOS"][1].success is True
        assert got["c-WOS"][0] == "fixed"
        assert done.baseline is not None and done.baseline["run"] == first
        # two kept, newest first, as the database lookup gives them
        assert [b.run for b in state.baseline_candidates] == [f"vm1:{state.history.run}", first]
    else:
        assert state.baseline is named and done.baseline is not None and done.baseline["run"] == "vm1:named"
        assert state.baseline_candidates == (named,)


def test_with_baseline_previous_an_interrupted_run_is_not_the_next_runs_baseline():
    """As in the database (``RunRow.finished``): a stopped run is never compared with."""
    state = RunState("vm1")
    state.set_baselines([], previous=True)
    state.log(LogReset("/r/one.log"))
    stopped = RUN[: RUN.index(rec(waalog.domain("vlc")))] + (waalog.interrupted(2) + "\n").encode()
    state.log(LogBytes(stopped, 0))
    assert state.run_complete is not None and state.run_complete.interrupted
    first = f"vm1:{state.history.run}"
    state.log(LogReset("/r/two.log"))
    state.log(LogBytes(RUN2, 0))
    assert state.baseline is None  # compared with nothing
    assert [b.run for b in state.baseline_candidates] == [f"vm1:{state.history.run}"]  # itself, finished
    assert first not in {b.run for b in state.baseline_candidates}


def test_the_forecast_follows_the_results():
    state = RunState("vm1")
    state.log(LogReset("/x.log"))
    state.log(LogBytes(RUN[: RUN.index(rec(waalog.domain("vlc")))], 0))  # 2 of 3 done
    state.update_forecast()
    f = state.progress.forecast
    assert f is not None and 0 <= f.low <= f.success_rate <= f.high <= 1
    assert f.low <= 1 / 3 <= f.high or f.low <= 2 / 3 <= f.high  # the final rate is one of these
    state.log(LogBytes(RUN[RUN.index(rec(waalog.domain("vlc"))) :], 0))
    state.update_forecast()
    assert state.progress.forecast is None  # the run is over: no forecast, the result
