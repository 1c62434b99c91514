"""The reducer (runstate.RunState) on upstream-faithful WAA and OSWorld logs (tests/upstream):
what a client is told about a real run — each item of issue 10 — fed whole, byte by byte and
in random chunks with identical results. The expected values come from each scenario's own
definition (its TaskFinished events, its docstring's story), never from the reducer."""

from __future__ import annotations

import functools
import random
from typing import Any

import pytest
from upstream import SCENARIOS, Fixture, build

from trio_sse.history import Entry
from trio_sse.logparse import RateLimited, TaskFinished
from trio_sse.model import ErrorEvent, RunComplete, TaskComplete
from trio_sse.runstate import RunState
from trio_sse.sources import LogBytes, LogReset, ProbeResult

NAMES = sorted(SCENARIOS)


@functools.cache
def fixture(name: str) -> Fixture:
    return build(name)


def feed(fx: Fixture, chunking: str, *, artifacts: list[str] | None = None) -> tuple[RunState, list[Any]]:
    """The run as a glob follower hands it over: every log file (or the given artifacts) a
    lane, their bytes in the order they were written (the scenario's timeline), cut as asked."""
    names = artifacts or fx.logs()
    state = RunState("vm1", lanes=len(names) > 1)
    out: list[Any] = []
    offsets = dict.fromkeys(names, 0)
    for name in names:
        out += state.log(LogReset(name))
    rng = random.Random(f"{fx.name}/{chunking}")
    for name, data in fx.timeline:
        if name not in offsets:
            continue
        sizes = {"whole": [len(data)], "bytes": [1] * len(data)}.get(chunking)
        pos = 0
        while pos < len(data):
            n = sizes.pop(0) if sizes else rng.randint(1, 4000)
            out += state.log(LogBytes(data[pos : pos + n], offsets[name] + pos, name if len(names) > 1 else ""))
            pos += n
        offsets[name] += len(data)
    return state, out


def results(out: list[Any]) -> list[TaskComplete]:
    return [o.event for o in out if isinstance(o, Entry) and isinstance(o.event, TaskComplete)]


def finished(fx: Fixture, names: list[str] | None = None) -> list[TaskFinished]:
    seen: dict[str, TaskFinished] = {}
    for name in names or fx.logs():
        for ev in fx.expected[name]:
            if isinstance(ev, TaskFinished):
                seen.setdefault(ev.task_id, ev)
    return list(seen.values())


def wire(out: list[Any]) -> list[Any]:
    return [o.data if isinstance(o, Entry) else o for o in out]


@pytest.mark.parametrize("name", NAMES)
def test_results_are_the_scenarios_own_whole_or_in_pieces(name):
    fx = fixture(name)
    state, out = feed(fx, "whole")
    expected = finished(fx)
    got = results(out)
    assert sorted(r.task_id for r in got) == sorted(ev.task_id for ev in expected)
    by_id = {ev.task_id: ev for ev in expected}
    for r in got:
        ev = by_id[r.task_id]
        assert r.score == ev.score and r.error == ev.error
        assert r.success == (ev.error is None and ev.score is not None and ev.score >= 1.0)
        # failure_kind on every failed task, none on a passed one (SPEC §2.2)
        assert r.failure_kind == (None if r.success else ev.failure_kind)
        assert (r.started_at, r.finished_at, r.instruction) == (ev.started_at, ev.at, ev.instruction)
        if ev.started_at and ev.at:
            assert r.duration_s is not None and r.duration_s >= 0
    assert len(got) == len({r.task_id for r in got})  # each task once
    for chunking in ("bytes", "random"):
        if chunking == "bytes" and sum(len(fx.artifacts[n]) for n in fx.logs()) > 300_000:
            continue  # (the 70 000-character id: random chunks cover it)
        assert wire(feed(fx, chunking)[1]) == wire(out), chunking


def test_parallel_workers_are_one_run():
    fx = fixture("waa_parallel")
    state, out = feed(fx, "random")
    runs = [o.event for o in out if isinstance(o, Entry) and isinstance(o.event, RunComplete)]
    assert len(runs) == 1 and runs[0].tasks_completed == 5 and runs[0].total_tasks == 5
    assert state.statistics().runs == 1
    assert {r.worker for r in results(out)} == {"0", "1"}


def test_average_is_waas_over_tasks_with_a_result():
    _, out = feed(fixture("waa_raises"), "whole")
    (done,) = [o.event for o in out if isinstance(o, Entry) and isinstance(o.event, RunComplete)]
    assert done.average_score == 1.0  # the task that raised is left out, as WAA's line says
    state, out = feed(fixture("waa_vm_down"), "whole")
    (done,) = [o.event for o in out if isinstance(o, Entry) and isinstance(o.event, RunComplete)]
    assert done.average_score is None  # "No examples finished."
    assert state.progress.average_score is None


def test_a_guest_that_does_not_answer_is_never_ready():
    state, out = feed(fixture("waa_vm_down"), "whole")
    assert {r.failure_kind for r in results(out)} == {"infra"}
    s = state.status
    assert (s.waa_ready, s.phase, s.probe_status) == (False, "unknown", "Not responding")


def test_vm_is_up_and_ready_in_the_log_file_means_ready():
    state, _ = feed(fixture("waa_single"), "whole")
    assert state.status.waa_ready is True and state.status.phase == "ready"


@pytest.mark.parametrize(
    ("running", "interrupted"),
    [(True, None), (False, True), (None, None)],
)
def test_a_run_that_stopped_with_a_task_open_ends_only_when_its_process_is_gone(running, interrupted):
    # The log file alone (the "Interrupted by 2" print is on the console only).
    state, out = feed(fixture("waa_interrupted"), "whole")
    assert not [o for o in out if isinstance(o, Entry) and isinstance(o.event, RunComplete)]
    after = state.probe(ProbeResult(connected=True, running=running))
    done = [o.event for o in after if isinstance(o, Entry) and isinstance(o.event, RunComplete)]
    if interrupted is None:
        assert done == [] and state.run_complete is None
    else:
        assert done[0].interrupted is True and done[0].tasks_completed == 1


def test_interrupted_on_the_console_ends_the_run_at_once_without_a_process_check():
    fx = fixture("waa_interrupted")
    state, out = feed(fx, "whole", artifacts=["console-0"])
    (done,) = [o.event for o in out if isinstance(o, Entry) and isinstance(o.event, RunComplete)]
    assert done.interrupted is True


def test_rate_limited_counts_the_models_429s():
    fx = fixture("waa_rate_limited")
    state, _ = feed(fx, "whole")
    expected = sum(1 for ev in fx.expected[fx.logs()[0]] if isinstance(ev, RateLimited) and not ev.retry)
    assert expected > 0 and state.progress.rate_limited == expected


def test_max_steps_comes_from_the_args_line():
    state, out = feed(fixture("waa_max_steps"), "whole")
    assert state.progress.max_steps == 3 and state.run_info.max_steps == 3
    assert [r.failure_kind for r in results(out)] == ["max_steps", "agent"]


def test_osworld_envs_are_workers_with_their_own_tasks():
    fx = fixture("osworld_env")
    state, out = feed(fx, "random")
    got = results(out)
    assert len(got) == 4 and {r.worker for r in got} == {"Env 1", "Env 2"}
    assert {w.worker for w in state.progress.workers} >= {"Env 1", "Env 2"}


def test_workers_show_what_each_is_doing_mid_run():
    fx = fixture("waa_parallel")
    state = RunState("vm1", lanes=True)
    names = fx.logs()
    for name in names:
        state.log(LogReset(name))
    offsets = dict.fromkeys(names, 0)
    seen_two_busy = False
    for name, data in fx.timeline:
        if name in offsets:
            state.log(LogBytes(data, offsets[name], name))
            offsets[name] += len(data)
            busy = [w for w in state.progress.workers if w.current_task is not None]
            seen_two_busy |= len(busy) == 2
    assert seen_two_busy
    assert {w.worker for w in state.progress.workers} == {"0", "1"}


def test_rerun_lists_the_infra_failures_in_waas_task_list_shape():
    state, out = feed(fixture("waa_vm_down"), "whole")
    rerun = state.rerun()
    assert sorted(t for ids in rerun.values() for t in ids) == sorted(r.task_id for r in results(out))
    assert all(isinstance(k, str) and isinstance(v, list) for k, v in rerun.items())


def test_a_missing_path_then_the_run(tmp_path):
    from trio_sse.sources import LogMissing

    state = RunState("vm1", lanes=True)
    (error,) = state.log(LogMissing("/client/results/logs/normal-*.log"))
    assert isinstance(error, ErrorEvent) and "/client/results/logs/normal-*.log" in error.message
    fx = fixture("waa_single")
    state.log(LogReset(fx.logs()[0]))
    state.log(LogBytes(fx.artifacts[fx.logs()[0]], 0, fx.logs()[0]))
    assert state.status.probe_status != "log not found: /client/results/logs/normal-*.log"
