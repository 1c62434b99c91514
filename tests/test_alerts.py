"""The notifier against REAL HTTP receivers on loopback through Apprise's json:// and form://
(every request counted), one that answers 500 and one that hangs; once-only across a restart
through the real history database; backoff and the unreachable timer in virtual time with a
fake destination built on a channel."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from receiver import Receiver
from trio_sse.alerts import Destination, MemoryLedger, Notifier, NotifierReport, apprise_destination
from trio_sse.alerttext import Alert, run_finished
from trio_sse.store import HistoryReader, HistoryWriter, StoreLedger

FINISHED = run_finished(
    "waa",
    "abc123",
    {"tasks_completed": 154, "total_tasks": 154, "tasks_passed": 45, "average_score": 0.31},
    {"run": "waa:def456", "fixed": 9, "regressed": 4, "passed_then": 40, "tasks_then": 154, "average_then": 0.28, "average_now": 0.31, "regressed_tasks": ["t1", "t2", "t3", "t4"]},
)


def alert(n: int) -> Alert:
    return Alert(f"waa:run:{n}", "finished", f"title {n}", f"body {n}", "info")


class Reports:
    def __init__(self) -> None:
        self.items: list[NotifierReport] = []
        self._send, self._receive = trio.open_memory_channel[NotifierReport](math.inf)

    def __call__(self, r: NotifierReport) -> None:
        self.items.append(r)
        self._send.send_nowait(r)

    async def next(self) -> NotifierReport:
        return await self._receive.receive()

    @property
    def kinds(self) -> list[str]:
        return [r.kind for r in self.items]


# ---------------------------------------------------------------------------- real receivers


async def test_json_receiver_gets_exactly_one_post_with_the_alert() -> None:
    receiver = Receiver()
    ledger = MemoryLedger()
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        notifier = Notifier([receiver.url("json")], ledger=ledger)
        await nursery.start(notifier.run)
        assert notifier.send(FINISHED)
        assert not notifier.send(FINISHED)  # same key: once
        with trio.fail_after(20):
            request = await receiver.next_request()
            await notifier.wait_idle()
            await receiver.wait_closed(1)
        nursery.cancel_scope.cancel()
    assert len(receiver.requests) == 1
    assert (request.method, request.target) == ("POST", "/hook")
    payload = request.json()
    assert payload["title"] == FINISHED.title
    assert payload["message"] == FINISHED.body
    assert payload["type"] == "success"
    assert "45/154 passed (29.2 %), 9 fixed, 4 regressed vs baseline" in payload["title"]
    assert "Baseline waa:def456: 40/154 passed (26.0 %), average 0.280 (now 0.310)" in payload["message"]
    assert ledger.sent == {"waa:abc123:finished": "finished"}
    assert notifier.statistics().delivered == 1


async def test_form_receiver_gets_the_fields() -> None:
    receiver = Receiver()
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        notifier = Notifier([receiver.url("form", "/form")], ledger=MemoryLedger())
        await nursery.start(notifier.run)
        notifier.send(alert(1))
        with trio.fail_after(20):
            request = await receiver.next_request()
            await notifier.wait_idle()
            await receiver.wait_closed(1)
        nursery.cancel_scope.cancel()
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert {k: request.form()[k] for k in ("title", "message", "type")} == {"title": "title 1", "message": "body 1", "type": "info"}
    assert len(receiver.requests) == 1


async def test_a_500_is_retried_with_backoff_until_accepted() -> None:
    receiver = Receiver(["fail", "fail"])  # then ok
    reports = Reports()
    ledger = MemoryLedger()
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        notifier = Notifier([receiver.url("json")], ledger=ledger, report=reports, backoff=(0.01, 0.02))
        await nursery.start(notifier.run)
        notifier.send(alert(1))
        notifier.send(alert(2))  # waits for alert 1 at this destination: order is kept
        with trio.fail_after(20):
            await notifier.wait_idle()
            await receiver.wait_closed(4)
        nursery.cancel_scope.cancel()
    assert [r.json()["title"] for r in receiver.requests] == ["title 1", "title 1", "title 1", "title 2"]
    assert reports.kinds == ["failing"]
    assert "json://127.0.0.1" in reports.items[0].message and "retrying" in reports.items[0].message
    assert set(ledger.sent) == {"waa:run:1", "waa:run:2"}
    s = notifier.statistics()
    assert (s.delivered, s.failed_attempts, s.gave_up) == (2, 2, 0)


async def test_a_receiver_that_always_fails_is_given_up_and_not_recorded() -> None:
    receiver = Receiver(then="fail")
    reports = Reports()
    ledger = MemoryLedger()
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        notifier = Notifier([receiver.url("json")], ledger=ledger, report=reports, backoff=(0.01, 0.01), max_attempts=3)
        await nursery.start(notifier.run)
        notifier.send(alert(1))
        with trio.fail_after(20):
            await notifier.wait_idle()
            await receiver.wait_closed(3)
        nursery.cancel_scope.cancel()
    assert len(receiver.requests) == 3
    assert reports.kinds == ["failing", "gave_up"]
    assert "gave up after 3 attempts" in reports.items[1].message
    assert ledger.sent == {}  # a restart may try again


@pytest.fixture
def jump_clock() -> trio.testing.MockClock:
    """Real time plus manual jumps: the hung attempt's time bound is passed with a jump
    (deterministic), while real threads and sockets run at their own pace."""
    return trio.testing.MockClock(rate=1.0)


async def test_a_hanging_receiver_is_bounded_and_holds_up_nobody(jump_clock: trio.testing.MockClock) -> None:
    hanging = Receiver(["hang"])  # then ok
    good = Receiver()
    reports = Reports()
    ledger = MemoryLedger()
    async with trio.open_nursery() as nursery:
        await nursery.start(hanging.serve)
        await nursery.start(good.serve)
        notifier = Notifier(
            [hanging.url("json"), good.url("json")], ledger=ledger, report=reports, send_timeout=30.0, backoff=(10.0, 10.0)
        )
        await nursery.start(notifier.run)
        notifier.send(alert(1))
        with trio.fail_after(60):  # (virtual: includes the 40 s jumped)
            await hanging.next_request()  # held open, unanswered
            await good.next_request()  # the other destination is not held up
            await notifier.wait_delivered(1)
            assert ledger.sent == {}  # not all destinations done yet
            jump_clock.jump(30.0)  # the attempt's time bound passes
            failing = await reports.next()
            assert failing.kind == "failing" and "no answer within 30 s" in failing.message
            await trio.testing.wait_all_tasks_blocked()
            jump_clock.jump(10.0)  # the backoff passes: second attempt, answered
            second = await hanging.next_request()
            await notifier.wait_idle()
            hanging.release()  # let the abandoned first attempt's thread finish too
            await hanging.wait_closed(2)
        nursery.cancel_scope.cancel()
    assert second.json()["title"] == "title 1"
    assert (len(hanging.requests), len(good.requests)) == (2, 1)
    assert ledger.sent == {"waa:run:1": "finished"}
    assert reports.kinds == ["failing"]


async def test_sent_once_across_a_restart_through_the_history_database(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    receiver = Receiver()
    for restart in range(2):
        writer = HistoryWriter(path)
        reader = HistoryReader(path)
        async with trio.open_nursery() as nursery:
            await nursery.start(receiver.serve)
            await nursery.start(writer.run)
            notifier = Notifier([receiver.url("json")], ledger=StoreLedger(reader, writer))
            await nursery.start(notifier.run)
            notifier.send(FINISHED)  # the replayed run_complete after a restart asks again
            with trio.fail_after(20):
                await notifier.wait_idle()
                await writer.wait_idle()
                await receiver.wait_closed(1)
            nursery.cancel_scope.cancel()
        await reader.aclose()
        assert notifier.statistics().already_sent == restart
    assert len(receiver.requests) == 1


def test_urls_are_validated_without_showing_secrets() -> None:
    with pytest.raises(ValueError, match=r"nosuchscheme://… is not one Apprise understands") as info:
        apprise_destination("nosuchscheme://s3cr3t-token@example.invalid/x")
    assert "s3cr3t" not in str(info.value)
    with pytest.raises(ValueError, match="must not be empty"):
        apprise_destination("  ")
    d = apprise_destination("json://user:s3cr3t@127.0.0.1:9/hook")
    assert "s3cr3t" not in d.label and d.label.startswith("json://")


# ---------------------------------------------------------------------------- virtual time


class FakeDestination:
    """A destination whose answers come from the test: each call records the virtual time
    and pops the next answer (True, False, or an exception)."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[float, str]] = []

    def send(self, a: Alert) -> bool:
        self.calls.append((trio.current_time(), a.key))
        answer = self.answers.pop(0) if self.answers else True
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def destination(self, label: str = "fake://") -> Destination:
        return Destination(label, self.send)


async def inline(fn: Callable[..., Any], *args: Any, **_kwargs: Any) -> Any:
    return fn(*args)


async def test_backoff_doubles_to_its_cap_then_gives_up(autojump_clock: Any) -> None:
    fake = FakeDestination([False, RuntimeError("plugin blew up"), False, False, False, False, False])
    reports = Reports()
    notifier = Notifier(
        [fake.destination()], ledger=MemoryLedger(), report=reports, backoff=(5.0, 20.0), max_attempts=6, run_sync=inline
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.run)
        start = trio.current_time()
        notifier.send(alert(1))
        await notifier.wait_idle()
        nursery.cancel_scope.cancel()
    assert [t - start for t, _ in fake.calls] == [0, 5, 15, 35, 55, 75]
    assert reports.kinds == ["failing", "gave_up"]
    assert "RuntimeError" not in reports.items[0].message  # the first failure was a plain False
    assert "gave up after 6 attempts" in reports.items[1].message


async def test_an_exception_in_the_plugin_is_a_failed_attempt(autojump_clock: Any) -> None:
    fake = FakeDestination([RuntimeError("plugin blew up")])
    reports = Reports()
    ledger = MemoryLedger()
    notifier = Notifier([fake.destination()], ledger=ledger, report=reports, run_sync=inline)
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.run)
        notifier.send(alert(1))
        await notifier.wait_idle()
        nursery.cancel_scope.cancel()
    assert "RuntimeError: plugin blew up" in reports.items[0].message
    assert len(fake.calls) == 2 and ledger.sent == {"waa:run:1": "finished"}


async def test_unreachable_alert_after_the_threshold_once_per_outage(autojump_clock: Any) -> None:
    fake = FakeDestination([])
    notifier = Notifier([fake.destination()], ledger=MemoryLedger(), alert_after=300.0, run_sync=inline)
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.run)
        t0 = trio.current_time()
        notifier.target_down("waa", "ssh: connection refused", since="2024-09-16T09:30:00+00:00")
        await trio.sleep(299)
        assert fake.calls == []
        notifier.target_down("waa", "ssh: host unreachable", since="ignored: the same outage")
        await trio.sleep(2)
        await notifier.wait_idle()
        assert [(t - t0, k) for t, k in fake.calls] == [(300, "waa:unreachable:2024-09-16T09:30:00+00:00")]
        await trio.sleep(3600)  # still down: no second alert
        assert len(fake.calls) == 1
        # A short outage: no alert.
        notifier.target_up("waa")
        notifier.target_down("waa", "again", since="2024-09-16T11:00:00+00:00")
        await trio.sleep(200)
        notifier.target_up("waa")
        await trio.sleep(1000)
        assert len(fake.calls) == 1
        # A long one: its own alert.
        notifier.target_down("waa", "again", since="2024-09-16T12:00:00+00:00")
        await trio.sleep(301)
        await notifier.wait_idle()
        assert [k for _, k in fake.calls] == [
            "waa:unreachable:2024-09-16T09:30:00+00:00",
            "waa:unreachable:2024-09-16T12:00:00+00:00",
        ]
        nursery.cancel_scope.cancel()


async def test_two_targets_have_their_own_timers(autojump_clock: Any) -> None:
    fake = FakeDestination([])
    notifier = Notifier([fake.destination()], ledger=MemoryLedger(), alert_after=60.0, run_sync=inline)
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.run)
        t0 = trio.current_time()
        notifier.target_down("a", "down", since="s1")
        await trio.sleep(30)
        notifier.target_down("b", "down", since="s2")
        await trio.sleep(100)
        await notifier.wait_idle()
        nursery.cancel_scope.cancel()
    assert [(t - t0, k) for t, k in fake.calls] == [(60, "a:unreachable:s1"), (90, "b:unreachable:s2")]


async def test_send_never_blocks_and_reports_what_it_drops(autojump_clock: Any) -> None:
    fake = FakeDestination([])
    reports = Reports()
    notifier = Notifier([fake.destination()], ledger=MemoryLedger(), report=reports, buffer=2, run_sync=inline)
    accepted = [notifier.send(alert(i)) for i in range(5)]  # before the notifier runs
    assert accepted == [True, True, False, False, False]
    assert reports.kinds == ["dropped"] * 3 and "waa:run:2" in reports.items[0].message
    assert notifier.send(alert(2)) is False  # (still full)
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.run)
        await notifier.wait_idle()
        assert notifier.send(alert(2))  # a dropped one can be offered again
        await notifier.wait_idle()
        nursery.cancel_scope.cancel()
    assert [k for _, k in fake.calls] == ["waa:run:0", "waa:run:1", "waa:run:2"]


async def test_a_destination_failing_for_long_drops_its_backlog_not_the_others(autojump_clock: Any) -> None:
    stuck = FakeDestination([False] * 1000)
    fine = FakeDestination([])
    reports = Reports()
    notifier = Notifier(
        [stuck.destination("stuck://"), fine.destination("fine://")],
        ledger=MemoryLedger(),
        report=reports,
        buffer=3,
        backoff=(10.0, 10.0),
        max_attempts=100,
        run_sync=inline,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.run)
        for i in range(8):
            notifier.send(alert(i))
            await trio.sleep(1)
        await trio.sleep(5)
        assert [k for _, k in fine.calls] == [f"waa:run:{i}" for i in range(8)]
        assert any(r.kind == "dropped" and "stuck://" in r.message for r in reports.items)
        nursery.cancel_scope.cancel()


def test_no_destinations_means_nothing_queued() -> None:
    notifier = Notifier([], ledger=MemoryLedger())
    assert notifier.send(alert(1)) is False
    with pytest.raises(ValueError, match="backoff"):
        Notifier([], ledger=MemoryLedger(), backoff=(0.0, 1.0))
    with pytest.raises(ValueError, match="max_attempts"):
        Notifier([], ledger=MemoryLedger(), max_attempts=0)
