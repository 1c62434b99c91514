"""The monitor with a fake source built on a memory channel: runs and ids, new runs,
outages (one error per outage), probing at the fastest subscriber's interval."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from trio_sse.history import Entry, run_id_for
from trio_sse.model import ErrorEvent, TaskComplete
from trio_sse.monitor import Monitor
from trio_sse.sources import LogBytes, LogReset, ProbeResult, SourceDown, SourceUp

RUN = (
    b"[2024-05-06 10:00:00,001 INFO run/80-MainProcess] Worker 0 is doing tasks: "
    b"[('notepad', 'aaaa-WOS'), ('chrome', 'bbbb-WOS')]\n"
    b"[2024-05-06 10:00:01,001 INFO run/90-MainProcess] [Domain]: notepad\n"
    b"[2024-05-06 10:00:01,002 INFO run/91-MainProcess] [Example ID]: aaaa-WOS\n"
    b"[2024-05-06 10:00:02,001 INFO lib_run_single/30-MainProcess] Step 1: pyautogui.click(10, 20)\n"
    b"[2024-05-06 10:00:03,001 INFO lib_run_single/40-MainProcess] Result: 1.00\n"
    b"[2024-05-06 10:00:03,002 INFO run/99-MainProcess] Finished notepad/aaaa-WOS\n"
    b"[2024-05-06 10:00:04,001 INFO run/90-MainProcess] [Domain]: chrome\n"
    b"[2024-05-06 10:00:04,002 INFO run/91-MainProcess] [Example ID]: bbbb-WOS\n"
    b"[2024-05-06 10:00:05,001 INFO lib_run_single/30-MainProcess] Step 1: pyautogui.click(1, 2)\n"
    b"[2024-05-06 10:00:06,001 INFO lib_run_single/40-MainProcess] Result: 0.00\n"
    b"[2024-05-06 10:00:06,002 INFO run/99-MainProcess] Finished chrome/bbbb-WOS\n"
    b"[2024-05-06 10:00:07,001 INFO run/120-MainProcess] Average score: 0.5\n"
)

# The run is named by its bytes up to its first durable event (the first `Finished` line).
FIRST_RUN_ID = run_id_for(RUN[: RUN.index(b"[2024-05-06 10:00:03,002")])


@dataclass
class FakeSource:
    """Items come from the test through a memory channel; probes are recorded."""

    description: str = "fake"
    probes: list[float] = field(default_factory=list)
    probe_result: ProbeResult = field(default_factory=ProbeResult)

    def __post_init__(self) -> None:
        self.push, self._items = trio.open_memory_channel(100)

    async def follow(self, send, *, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        async for item in self._items:
            await send.send(item)

    async def probe(self) -> ProbeResult:
        self.probes.append(trio.current_time())
        return self.probe_result


class Recorder:
    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self.items: list[Entry | ErrorEvent] = []

    def offer(self, monitor, item) -> None:
        self.items.append(item)


@pytest.fixture
async def running(nursery):
    source = FakeSource()
    monitor = Monitor("vm1", source, idle_probe_seconds=60)
    await nursery.start(monitor.run)
    return monitor, source


def results(items) -> list[tuple[str, bool, float | None]]:
    return [(i.event.task_id, i.event.success, i.event.score) for i in items
            if isinstance(i, Entry) and isinstance(i.event, TaskComplete)]


async def test_a_run_from_a_log(running, autojump_clock):
    monitor, source = running
    rec = Recorder()
    assert monitor.subscribe(rec, None) == []
    await source.push.send(LogReset("/x.log"))
    await source.push.send(LogBytes(RUN, 0))
    await trio.testing.wait_all_tasks_blocked()
    assert results(rec.items) == [("aaaa-WOS", True, 1.0), ("bbbb-WOS", False, 0.0)]
    assert monitor.history.run == FIRST_RUN_ID
    assert [e.id for e in monitor.history.entries] == [f"vm1:{monitor.history.run}-{n}" for n in (1, 2, 3)]
    p = monitor.progress.value
    assert (p.tasks_completed, p.total_tasks, p.finished, p.run) == (2, 2, True, monitor.history.run)
    assert monitor.run_complete is not None and monitor.run_complete.average_score == 0.5
    assert monitor.run_complete.tasks_passed == 1


async def test_first_line_split_across_chunks_gives_the_same_run_id(running, autojump_clock):
    monitor, source = running
    await source.push.send(LogReset("/x.log"))
    for i in range(0, len(RUN), 7):
        await source.push.send(LogBytes(RUN[i : i + 7], i))
    await trio.testing.wait_all_tasks_blocked()
    assert monitor.history.run == FIRST_RUN_ID
    assert len(monitor.history) == 3


async def test_a_new_file_generation_is_a_new_run(running, autojump_clock):
    monitor, source = running
    await source.push.send(LogReset("/x.log"))
    await source.push.send(LogBytes(RUN, 0))
    await trio.testing.wait_all_tasks_blocked()
    first = monitor.history.run
    other = RUN.replace(b"10:00:00,001", b"11:00:00,001")
    await source.push.send(LogReset("/x.log", "truncated"))
    await source.push.send(LogBytes(other[:300], 0))
    await trio.testing.wait_all_tasks_blocked()
    assert len(monitor.history) == 0 and monitor.progress.value.tasks_completed == 0
    assert monitor.progress.value.run is None  # named at its first durable event (or 4 KiB)
    await source.push.send(LogBytes(other[300:], 300))
    await trio.testing.wait_all_tasks_blocked()
    assert monitor.history.run not in (first, "") and monitor.progress.value.run == monitor.history.run


async def test_a_second_run_appended_to_the_same_file(running, autojump_clock):
    monitor, source = running
    await source.push.send(LogReset("/x.log"))
    await source.push.send(LogBytes(RUN + RUN, 0))
    await trio.testing.wait_all_tasks_blocked()
    # the second run's ids differ from the first run's, and its history holds only its own events
    assert len(monitor.history) == 3 and monitor.history.run != FIRST_RUN_ID


async def test_one_error_per_outage_and_connected_follows(running, autojump_clock):
    monitor, source = running
    rec = Recorder()
    monitor.subscribe(rec, None)
    for item in [SourceDown("ssh vm: connection refused")] * 3 + [SourceUp(), SourceDown("again")]:
        await source.push.send(item)
        await trio.testing.wait_all_tasks_blocked()
    errors = [i.message for i in rec.items if isinstance(i, ErrorEvent)]
    assert errors == ["ssh vm: connection refused", "again"]
    assert monitor.status.value.connected is False and monitor.status.value.phase == "unknown"
    assert monitor.statistics().outages == 2


async def test_probing_runs_at_the_fastest_subscribers_interval(running, autojump_clock):
    monitor, source = running
    await trio.sleep(130)
    assert source.probes == [0.0, 60.0, 120.0]  # nobody listening: slow
    fast, slow = Recorder(interval=2), Recorder(interval=10)
    monitor.subscribe(slow, None)
    monitor.subscribe(fast, None)  # arrives at 130: wakes the probe loop at once
    await trio.sleep(5)
    assert source.probes[3:] == [130.0, 132.0, 134.0]
    monitor.unsubscribe(fast)
    await trio.sleep(25)
    assert source.probes[6:] == [136.0, 146.0, 156.0]


async def test_a_hung_probe_does_not_stall_the_loop(nursery, autojump_clock):
    class Hung(FakeSource):
        async def probe(self) -> ProbeResult:
            self.probes.append(trio.current_time())
            await trio.sleep_forever()

    source = Hung()
    monitor = Monitor("vm1", source, idle_probe_seconds=10)
    await nursery.start(monitor.run)
    await trio.sleep(45)
    assert len(source.probes) >= 3


async def test_probe_results_reach_status_and_progress(running, autojump_clock):
    monitor, source = running
    source.probe_result = ProbeResult(connected=True, running=True, phase="oobe", waa_ready=False,
                                      probe_status="Not responding", vnc_url="http://h:8006")
    monitor.subscribe(Recorder(interval=1), None)
    await trio.sleep(2)
    s = monitor.status.value
    assert (s.phase, s.waa_ready, s.probe_status, s.vnc_url) == ("oobe", False, "Not responding", "http://h:8006")
    assert monitor.progress.value.running is True


async def test_success_is_never_assumed(running, autojump_clock):
    monitor, source = running
    log = (b"[Domain]: notepad\n[Example ID]: cccc-WOS\nStep 1: click\n"
           b"Exception in notepad/cccc-WOS: boom\nTraceback (most recent call last):\n  File x\nValueError: boom\n")
    prefix = b"[2024-05-06 10:00:00,001 INFO run/1-MainProcess] "
    data = b"".join(prefix + line + b"\n" if not line.startswith((b"Traceback", b"  ", b"ValueError")) else line + b"\n"
                    for line in log.split(b"\n") if line)
    await source.push.send(LogReset("/x.log"))
    await source.push.send(LogBytes(data, 0))
    await trio.testing.wait_all_tasks_blocked()
    (entry,) = monitor.history.entries
    assert (entry.event.success, entry.event.score, entry.event.error) == (False, None, "boom")


async def test_another_workers_run_line_only_updates_the_total(running, autojump_clock):
    from trio_sse.logparse import RunStarted, TaskFinished

    monitor, _ = running
    monitor.apply_parsed([RunStarted(2, 0), TaskFinished("a", "notepad", 1.0, None, 1, 10)])
    run = monitor.history.run
    monitor.apply_parsed([RunStarted(4, 20, same_run=True)])
    assert monitor.history.run == run and len(monitor.history) == 1
    assert monitor.progress.value.total_tasks == 4


async def test_runs_opening_with_the_same_banner_get_different_ids(running, autojump_clock):
    monitor, source = running
    banner = b"\xe2\x9d\xaf Starting Windows for Docker v4.00...\n"
    ids = []
    for hour in (b"10", b"11"):
        await source.push.send(LogReset("/x.log", "truncated"))
        await source.push.send(LogBytes(banner + RUN.replace(b"10:00:0", hour + b":00:0"), 0))
        await trio.testing.wait_all_tasks_blocked()
        ids.append(monitor.history.entries[0].id)
    assert ids[0] != ids[1]


async def test_a_long_preamble_names_the_run_by_its_first_4k(running, autojump_clock):
    monitor, source = running
    preamble = b"".join(b"tqdm noise line %05d\n" % i for i in range(400))  # > 4 KiB, no events
    await source.push.send(LogReset("/x.log"))
    for i in range(0, len(preamble), 1000):  # the run id is known before any task finishes
        await source.push.send(LogBytes(preamble[i : i + 1000], i))
    await trio.testing.wait_all_tasks_blocked()
    assert monitor.progress.value.run == run_id_for(preamble[:4096]) == monitor.history.run
    await source.push.send(LogBytes(RUN, len(preamble)))
    await trio.testing.wait_all_tasks_blocked()
    assert monitor.history.entries[0].id == f"vm1:{run_id_for(preamble[:4096])}-1"


async def test_progress_has_no_run_until_it_is_named(running, autojump_clock):
    monitor, source = running
    await source.push.send(LogReset("/x.log"))
    await source.push.send(LogBytes(RUN[:200], 0))
    await trio.testing.wait_all_tasks_blocked()
    assert monitor.progress.value.run is None and monitor.progress.value.total_tasks == 2
    await source.push.send(LogBytes(RUN[200:], 200))
    await trio.testing.wait_all_tasks_blocked()
    assert monitor.progress.value.run == FIRST_RUN_ID


# ---------------------------------------------------------------- stalls (SPEC §8)


async def test_a_stall_is_reported_once_with_the_task_and_the_last_line_and_clears_when_it_moves(nursery, autojump_clock):
    source = FakeSource(probe_result=ProbeResult(connected=True, running=True))
    monitor = Monitor("vm1", source, idle_probe_seconds=60, stall_after=600)
    await nursery.start(monitor.run)
    rec = Recorder()
    monitor.subscribe(rec, None)
    opening = RUN[: RUN.index(b"[2024-05-06 10:00:05,001")] + b"waiting for the model to answer...\n"
    await source.push.send(LogReset("/x.log"))
    await source.push.send(LogBytes(opening, 0))
    await trio.sleep(599)
    assert monitor.progress.value.stalled is None and not [i for i in rec.items if isinstance(i, ErrorEvent)]
    await trio.sleep(40)  # past 600 s: stalled
    (stall,) = [i for i in rec.items if isinstance(i, ErrorEvent)]
    assert "bbbb-WOS" in stall.message and "waiting for the model to answer..." in stall.message
    assert monitor.progress.value.stalled >= 600
    await trio.sleep(600)  # still stalled: the count goes on, no second error
    assert len([i for i in rec.items if isinstance(i, ErrorEvent)]) == 1
    assert monitor.progress.value.stalled >= 1200
    await source.push.send(LogBytes(b"[2024-05-06 10:30:00,001 INFO lib_run_single/30-MainProcess] Step 2: x\n",
                                    len(opening)))
    await trio.testing.wait_all_tasks_blocked()
    assert monitor.progress.value.stalled is None  # it moved
    await trio.sleep(700)  # a second stall: a second error
    assert len([i for i in rec.items if isinstance(i, ErrorEvent)]) == 2


async def test_a_finished_or_stopped_run_is_never_stalled(nursery, autojump_clock):
    source = FakeSource(probe_result=ProbeResult(connected=True, running=True))
    monitor = Monitor("vm1", source, idle_probe_seconds=60, stall_after=60)
    await nursery.start(monitor.run)
    await source.push.send(LogReset("/x.log"))
    await source.push.send(LogBytes(RUN, 0))  # ends with "Average score"
    await trio.sleep(3600)
    assert monitor.progress.value.stalled is None
    source2 = FakeSource(probe_result=ProbeResult(connected=True, running=False))
    stopped = Monitor("vm2", source2, idle_probe_seconds=1, stall_after=60)
    await nursery.start(stopped.run)
    await source2.push.send(LogReset("/y.log"))
    await source2.push.send(LogBytes(RUN[:400], 0))  # a task open, the process gone
    await trio.sleep(3600)
    assert stopped.progress.value.stalled is None


# ---------------------------------------------------------------- observers (history, alerts)


class Observations:
    """An observer: records what it is handed, with the monitor's state at that moment."""

    def __init__(self) -> None:
        self.items: list = []

    def __call__(self, monitor, item) -> None:
        self.items.append(item)

    def of(self, kind: type) -> list:
        return [i for i in self.items if isinstance(i, kind)]


@pytest.fixture
async def observed(nursery):
    seen = Observations()
    source = FakeSource()
    monitor = Monitor("vm1", source, idle_probe_seconds=60, observers=[seen], settle_seconds=1.0)
    await nursery.start(monitor.run)
    return monitor, source, seen


async def test_observers_get_each_durable_entry_with_its_run_and_whether_it_is_live(observed, autojump_clock):
    from trio_sse.monitor import RunEvent

    monitor, source, seen = observed
    # What the log holds at start-up arrives at once: a replay.
    await source.push.send(LogReset("/x.log"))
    await source.push.send(LogBytes(RUN, 0))
    await trio.testing.wait_all_tasks_blocked()
    assert not monitor.live
    replayed = seen.of(RunEvent)
    assert [e.entry for e in replayed] == list(monitor.history.entries)
    assert all(e.log is monitor.history and not e.live for e in replayed)
    start = trio.current_time()
    await monitor.caught_up.wait()  # a second without new bytes: caught up
    assert trio.current_time() - start == pytest.approx(1.0)
    # A new run written afterwards is live.
    other = RUN.replace(b"10:00:0", b"12:00:0")
    await source.push.send(LogReset("/x.log", "replaced"))
    await source.push.send(LogBytes(other, 0))
    await trio.testing.wait_all_tasks_blocked()
    live = seen.of(RunEvent)[3:]
    assert [e.entry for e in live] == list(monitor.history.entries) and len(live) == 3
    assert all(e.log is monitor.history and e.live for e in live)
    assert replayed[0].log is not live[0].log


async def test_a_log_that_keeps_growing_is_a_replay_until_it_pauses(observed, autojump_clock):
    from trio_sse.monitor import RunEvent

    monitor, source, seen = observed
    await source.push.send(LogReset("/x.log"))
    lines = RUN.splitlines(keepends=True)
    offset = 0
    for line in lines[:6]:  # the first task's lines, 0.5 s apart: never a second of quiet
        await source.push.send(LogBytes(line, offset))
        offset += len(line)
        await trio.sleep(0.5)
    assert not monitor.live
    await trio.sleep(1.0)
    assert monitor.live
    for line in lines[6:]:
        await source.push.send(LogBytes(line, offset))
        offset += len(line)
    await trio.testing.wait_all_tasks_blocked()
    assert [e.live for e in seen.of(RunEvent)] == [False, True, True]


async def test_a_monitor_without_replay_is_live_at_once(nursery, autojump_clock):
    seen = Observations()
    monitor = Monitor("vm1", FakeSource(), observers=[seen], replay=False)
    assert monitor.live
    monitor.apply(LogReset("/x.log"))
    monitor.apply(LogBytes(RUN, 0))
    assert [e.live for e in seen.items if hasattr(e, "live")] == [True, True, True]


async def test_a_missing_log_settles_too_so_a_run_written_later_is_live(observed, autojump_clock):
    monitor, _, _ = observed
    start = trio.current_time()
    await monitor.caught_up.wait()
    assert trio.current_time() - start <= 1.0


async def test_entries_of_a_run_that_ended_in_the_same_chunk_keep_their_own_history(autojump_clock):
    from trio_sse.monitor import RunEvent

    seen = Observations()
    monitor = Monitor("vm1", FakeSource(), observers=[seen])
    monitor.apply(LogReset("/x.log"))
    monitor.apply(LogBytes(RUN + RUN, 0))  # one chunk: the first run ends, the second starts and ends
    events = seen.of(RunEvent)
    first, second = events[0].log, events[-1].log
    assert first is not second and second is monitor.history
    assert [e.log for e in events] == [first] * 3 + [second] * 3
    assert [e.entry for e in events] == [*first.entries, *second.entries]


async def test_run_meta_when_the_run_is_named_and_when_it_changes(autojump_clock):
    from trio_sse.logparse import RunStarted, TaskFinished
    from trio_sse.monitor import RunMeta

    seen = Observations()
    monitor = Monitor("vm1", FakeSource(), observers=[seen])
    monitor.apply_parsed([RunStarted(2, 0)])
    assert seen.of(RunMeta) == []  # not named yet
    monitor.apply_parsed([TaskFinished("a", "notepad", 1.0, None, 1, 10)])
    run = monitor.history.run
    assert seen.of(RunMeta) == [RunMeta("vm1", run, total_tasks=2)]
    monitor.apply_parsed([TaskFinished("b", "notepad", 0.0, None, 1, 20)])
    monitor.apply_probe(ProbeResult(connected=True))
    assert len(seen.of(RunMeta)) == 1  # nothing new: not sent again
    monitor.apply_parsed([RunStarted(5, 30, same_run=True)])
    assert seen.of(RunMeta)[-1] == RunMeta("vm1", run, total_tasks=5)


async def test_run_meta_carries_the_reducers_run_info_when_it_has_one(autojump_clock):
    """The hook for the ``Args:`` line: a reducer exposing ``run_info`` (model, agent,
    max_steps, started_at) has it passed on."""
    from types import SimpleNamespace

    from trio_sse.logparse import TaskFinished
    from trio_sse.monitor import RunMeta

    seen = Observations()
    monitor = Monitor("vm1", FakeSource(), observers=[seen])
    monitor.state.run_info = SimpleNamespace(model="gpt-4o", agent="navi", max_steps=15)  # type: ignore[attr-defined]
    monitor.apply_parsed([TaskFinished("a", "notepad", 1.0, None, 1, 10)])
    (meta,) = seen.of(RunMeta)
    assert (meta.model, meta.agent, meta.max_steps, meta.started_at) == ("gpt-4o", "navi", 15, None)


async def test_observers_see_outages_and_errors(observed, autojump_clock):
    monitor, source, seen = observed
    for item in (SourceDown("ssh vm: refused"), SourceUp()):
        await source.push.send(item)
    await trio.testing.wait_all_tasks_blocked()
    assert [type(i).__name__ for i in seen.items] == ["ErrorEvent", "SourceDown", "SourceUp"]
    assert seen.items[1].message == "ssh vm: refused"


async def test_an_observer_that_raises_is_counted_and_the_monitor_carries_on(caplog, autojump_clock):
    def broken(monitor, item) -> None:
        raise RuntimeError("observer bug")

    seen = Observations()
    monitor = Monitor("vm1", FakeSource(), observers=[broken, seen])
    rec = Recorder()
    monitor.subscribe(rec, None)
    monitor.apply(LogReset("/x.log"))
    monitor.apply(LogBytes(RUN, 0))
    assert len(results(rec.items)) == 2 and len(monitor.history) == 3  # clients got everything
    assert len(seen.items) == 4  # 3 entries and the run's metadata: the next observer too
    assert monitor.observer_errors == 4
    assert [r.message for r in caplog.records].count(
        "monitor vm1: an observer failed (further failures are only counted)"
    ) == 1


async def test_the_hub_can_publish_an_error_to_a_targets_subscribers(running, autojump_clock):
    monitor, _ = running
    rec = Recorder()
    monitor.subscribe(rec, None)
    event = monitor.publish_error("run history: database is locked")
    assert rec.items == [event] and event == ErrorEvent("vm1", "run history: database is locked")


async def test_a_run_that_started_and_ended_inside_one_chunk_is_still_named_right(autojump_clock):
    from trio_sse.monitor import RunEvent

    seen = Observations()
    monitor = Monitor("vm1", FakeSource(), observers=[seen])
    monitor.apply(LogReset("/x.log"))
    monitor.apply(LogBytes(RUN * 3, 0))  # three runs: the middle one is gone from the reducer already
    events = seen.of(RunEvent)
    runs = [e.log.run for e in events]
    assert len(set(runs)) == 3 and runs == [runs[0]] * 3 + [runs[3]] * 3 + [runs[6]] * 3
    assert all(e.entry.id.startswith(f"vm1:{e.log.run}-") for e in events)
    assert [e.log.target for e in events] == ["vm1"] * 9
    assert events[-1].log is monitor.history
