"""What the monitors report, turned into alerts: a live run end alerts once, a replayed one
(the log as it was at start-up) never; regressions against the run's baseline; the
unreachable timer from the source's outages; the stall hook. A real monitor and a real
notifier in virtual time; the destination is a fake that records each delivery (the real
receiver over HTTP is in ``test_history_e2e.py``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import trio
import trio.testing

from trio_sse.alerting import Alerting
from trio_sse.alerts import Destination, MemoryLedger, Notifier
from trio_sse.alerttext import Alert
from trio_sse.baseline import Baseline
from trio_sse.monitor import Monitor, Stalled
from trio_sse.sources import LogBytes, LogReset, SourceDown, SourceUp

from support import IdleSource
from support import TWO_TASK_RUN as RUN

WALL = dt.datetime(2024, 9, 16, 9, 30, tzinfo=dt.timezone.utc)


class Delivered:
    """A destination that takes every alert (called inline: no thread, virtual time)."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> bool:
        self.alerts.append(alert)
        return True

    @property
    def keys(self) -> list[str]:
        return [a.key for a in self.alerts]


async def inline(fn: Any, *args: Any, **_kwargs: Any) -> Any:
    return fn(*args)


def make(baseline: Any = None, *, alert_after: float = 300.0) -> tuple[Alerting, Delivered, MemoryLedger]:
    delivered, ledger = Delivered(), MemoryLedger()
    notifier = Notifier([Destination("fake://", delivered.send)], ledger=ledger, alert_after=alert_after, run_sync=inline)
    return Alerting(notifier, baseline=baseline, wall=lambda: WALL), delivered, ledger


async def settle(alerting: Alerting) -> None:
    await alerting.wait_idle()


async def test_a_live_run_end_alerts_once_a_replayed_one_never(nursery: trio.Nursery, autojump_clock: Any) -> None:
    alerting, delivered, ledger = make()
    await nursery.start(alerting.run)
    replayed = Monitor("vm1", IdleSource(), observers=[alerting.observe])  # the log as found at start-up
    replayed.apply(LogReset("/x.log"))
    replayed.apply(LogBytes(RUN, 0))
    await settle(alerting)
    assert delivered.alerts == [] and alerting.replayed == 1
    live = Monitor("vm1", IdleSource(), observers=[alerting.observe], replay=False)
    live.apply(LogReset("/x.log"))
    live.apply(LogBytes(RUN, 0))
    live.apply(LogReset("/x.log", "truncated"))  # the same run read again (same ids, same key)
    live.apply(LogBytes(RUN, 0))
    await settle(alerting)
    run = live.history.run
    assert delivered.keys == [f"vm1:{run}:finished"] and ledger.sent == {f"vm1:{run}:finished": "finished"}
    (alert,) = delivered.alerts
    assert alert.title == f"vm1 run {run} finished: 1/2 passed (50.0 %)" and "Average score: 0.500" in alert.body


async def test_without_a_baseline_task_results_never_wait_for_alerting(autojump_clock: Any) -> None:
    alerting, _, _ = make()
    live = Monitor("vm1", IdleSource(), observers=[alerting.observe], replay=False)
    live.apply(LogReset("/x.log"))
    live.apply(LogBytes(RUN[: RUN.index(b"[2024-05-06 10:00:07")], 0))  # two results, no end
    assert alerting._receive.statistics().current_buffer_used == 0  # nothing queued: no work


async def test_regressions_and_the_finish_alert_compare_with_the_runs_baseline(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    asked: list[tuple[str, str]] = []
    then = Baseline("vm1:0123456789", [
        {"task_id": "aaaa-WOS", "success": False, "score": 0.0, "domain": "notepad"},
        {"task_id": "bbbb-WOS", "success": True, "score": 1.0, "domain": "chrome"},
    ])  # fmt: skip

    async def baseline(target: str, run: str) -> Baseline:
        asked.append((target, run))
        await trio.sleep(5)  # a slow database: the alerts wait, the monitor does not
        return then

    alerting, delivered, _ = make(baseline)
    await nursery.start(alerting.run)
    live = Monitor("vm1", IdleSource(), observers=[alerting.observe], replay=False)
    start = trio.current_time()
    live.apply(LogReset("/x.log"))
    live.apply(LogBytes(RUN, 0))
    assert trio.current_time() == start
    await settle(alerting)
    run = live.history.run
    assert asked == [("vm1", run)] * 3  # (the lookup caches per run: Recorder.baseline's job)
    assert delivered.keys == [f"vm1:{run}:regressed:bbbb-WOS", f"vm1:{run}:finished"]
    regressed, finished = delivered.alerts
    assert "Score: 1.000 in the baseline, 0.000 now" in regressed.body
    assert "1 fixed, 1 regressed vs baseline" in finished.title
    assert "Baseline vm1:0123456789: 1/2 passed (50.0 %)" in finished.body
    assert "Regressed: bbbb-WOS" in finished.body


async def test_no_baseline_for_the_run_means_no_regression_alerts(nursery: trio.Nursery, autojump_clock: Any) -> None:
    async def none(target: str, run: str) -> None:
        return None

    alerting, delivered, _ = make(none)
    await nursery.start(alerting.run)
    live = Monitor("vm1", IdleSource(), observers=[alerting.observe], replay=False)
    live.apply(LogReset("/x.log"))
    live.apply(LogBytes(RUN, 0))
    await settle(alerting)
    assert delivered.keys == [f"vm1:{live.history.run}:finished"]
    assert "baseline" not in delivered.alerts[0].body.lower()


async def test_an_unreachable_target_alerts_after_alert_after(nursery: trio.Nursery, autojump_clock: Any) -> None:
    alerting, delivered, _ = make(alert_after=60.0)
    await nursery.start(alerting.run)
    monitor = Monitor("vm1", IdleSource(), observers=[alerting.observe])
    t0 = trio.current_time()
    monitor.apply(SourceDown("ssh vm1: connection refused"))
    await trio.sleep(30)
    monitor.apply(SourceUp())  # back within the minute: nothing
    await trio.sleep(120)
    assert delivered.alerts == []
    monitor.apply(SourceDown("ssh vm1: host unreachable"))
    await trio.sleep(61)
    await settle(alerting)
    assert delivered.keys == ["vm1:unreachable:2024-09-16T09:30:00+00:00"]
    assert "Last error: ssh vm1: host unreachable" in delivered.alerts[0].body
    assert trio.current_time() - t0 == 211


async def test_the_stall_hook_alerts_once_per_stall(nursery: trio.Nursery, autojump_clock: Any) -> None:
    alerting, delivered, _ = make()
    await nursery.start(alerting.run)
    monitor = Monitor("vm1", IdleSource(), observers=[alerting.observe])
    stall = Stalled("vm1", "abc123", 900.0, "aaaa-WOS", "Step 3: pyautogui.click(1, 2)", episode="4711")
    monitor.observe(stall)
    monitor.observe(stall)
    await settle(alerting)
    assert delivered.keys == ["vm1:abc123:stalled:4711"]
    assert "No progress for 15 min." in delivered.alerts[0].body


async def test_a_burst_beyond_the_queue_is_counted_not_waited_for(autojump_clock: Any) -> None:
    async def baseline(target: str, run: str) -> None:
        return None

    alerting, _, _ = make(baseline)
    alerting = Alerting(alerting.notifier, baseline=baseline, queue=1)
    live = Monitor("vm1", IdleSource(), observers=[alerting.observe], replay=False)
    live.apply(LogReset("/x.log"))
    live.apply(LogBytes(RUN, 0))  # three entries, room for one, nobody composing yet
    assert alerting.dropped == 2
