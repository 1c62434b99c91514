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
from trio_sse.runstate import RUN_KEY_BYTES, RunState
from trio_sse.sources import LogBytes, LogReset, ProbeResult, SourceDown, SourceUp

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
    """Outputs as plain tuples: ('task', id, success, score, error) / ('run', passed, average) / ('error', msg)."""
    rows: list[tuple] = []
    for o in outputs:
        if isinstance(o, ErrorEvent):
            rows.append(("error", o.message))
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
        [],
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
         ("task", "a-WOS", True, 1.0, None), ("task", "b-WOS", False, None, "boom")],
        {"tasks_completed": 2, "finished": False, "current_task": "c-WOS"},
    ),
    (
        "the original endpoint's simple format counts tasks, never reports a result",
        [LogReset("/x.log"), LogBytes(b"Task 3/10\nRunning task: task_003_notepad\nStep 4\n", 0)],
        [],
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
