"""Alerts (SPEC §9), wired: what the monitors report, turned into ``alerttext.Alert``s for the
server's one ``alerts.Notifier``.

Owns: ``Alerting`` —

* ``observe``, a ``monitor.Observer``: a *live* ``run_complete`` → the finished or
  interrupted alert; with ``--baseline``, a live ``task_complete`` that regressed → the
  regressed alert (both composed in ``run``'s own task: the baseline is looked up from the
  database there, never on the event path); ``SourceDown`` / ``SourceUp`` → the notifier's
  unreachable timer (``--alert-after``); ``Stalled`` → the stalled alert;
* the rule that what the log already held when the server started (a replay after a
  restart: ``RunEvent.live`` is False) never alerts — so a run that was complete at start-up
  does not announce itself again, with or without a database. The notifier's ledger (the
  history database, or memory with ``--db none``) makes each alert once on top of that.

Must not: block an observer call, word an alert (``alerttext``), deliver one (``alerts``), or
read the database itself (it is handed a ``baseline`` lookup).
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio

from trio_sse import alerttext
from trio_sse.alerts import Notifier, NotifierReport
from trio_sse.baseline import Baseline
from trio_sse.monitor import Monitor, Observed, RunEvent, Stalled
from trio_sse.sources import SourceDown, SourceUp

log = logging.getLogger("trio_sse")

# Durable events waiting for their alert to be composed: run ends, and (with a baseline) task
# results. Composing takes a baseline lookup once per run, then microseconds; 256 holds a
# burst of results while that lookup waits for the database. Past that, results are dropped
# for alerting only (counted, logged once) — the history and the clients still get them.
QUEUE: Final = 256

BaselineLookup = Callable[[str, str], Awaitable[Baseline | None]]


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def on_notifier_report(report: NotifierReport) -> None:
    """The notifier's troubles, one log line each (destinations are named without secrets)."""
    log.warning("alerts: %s", report.message)


class Alerting:
    """See the module docstring. ``baseline``: the run's baseline lookup (``Recorder.baseline``)
    when ``--baseline`` is set; ``wall``: the wall clock, for the unreachable alert's key."""

    def __init__(
        self,
        notifier: Notifier,
        *,
        baseline: BaselineLookup | None = None,
        wall: Callable[[], _dt.datetime] = utc_now,
        queue: int = QUEUE,
    ) -> None:
        self.notifier = notifier
        self._baseline = baseline
        self._wall = wall
        self._send, self._receive = trio.open_memory_channel[RunEvent](queue)
        self.replayed = 0  # durable events that did not alert: read from the log at start-up
        self.dropped = 0
        self._busy = 0  # queued and not yet composed
        self._idle = trio.Event()
        self._idle.set()

    # ------------------------------------------------------------ the monitors' side

    def observe(self, monitor: Monitor, item: Observed) -> None:
        if isinstance(item, RunEvent):
            event = item.entry.event.EVENT
            if event != "run_complete" and (event != "task_complete" or self._baseline is None):
                return
            if not item.live:
                self.replayed += 1
                return
            try:
                self._send.send_nowait(item)
            except trio.WouldBlock:
                self.dropped += 1
                if self.dropped == 1:
                    log.warning("alerts: too many results waiting for a baseline; some are not checked for regressions")
                return
            self._busy += 1
            if self._idle.is_set():
                self._idle = trio.Event()
        elif isinstance(item, SourceDown):
            self.notifier.target_down(monitor.name, item.message, since=self._wall().isoformat(timespec="seconds"))
        elif isinstance(item, SourceUp):
            self.notifier.target_up(monitor.name)
        elif isinstance(item, Stalled):
            self.notifier.send(
                alerttext.run_stalled(
                    item.target,
                    item.run,
                    seconds=item.seconds,
                    task_id=item.task_id,
                    last_line=item.last_line,
                    episode=item.episode,
                )
            )

    # ------------------------------------------------------------ the task

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.notifier.run)
            nursery.start_soon(self._compose)
            task_status.started()

    async def _compose(self) -> None:
        async for item in self._receive:
            alert = await self.alert_for(item)
            if alert is not None:
                self.notifier.send(alert)
            self._busy -= 1
            if not self._busy:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Until everything observed so far is composed and its alert delivered (or given
        up, or found already sent)."""
        while self._busy:
            await self._idle.wait()
        await self.notifier.wait_idle()

    async def alert_for(self, item: RunEvent) -> alerttext.Alert | None:
        """The alert a live durable event calls for, with its run's baseline when there is one.
        (Payloads already carrying a comparison — the reducer's ``change`` / ``baseline``,
        when it had the baseline in time — are taken as they are; a ``null`` one is not a
        comparison.)"""
        target, run = item.log.target, item.log.run
        event = item.entry.event.EVENT
        payload: dict[str, Any] = item.entry.event.payload()
        base = await self._baseline(target, run) if self._baseline is not None else None
        if event == "task_complete":
            if payload.get("change") is None:
                if base is None:
                    return None
                payload = base.decorate(payload)
        elif base is not None and payload.get("baseline") is None:
            tasks = [e.event.payload() for e in item.log.entries if e.event.EVENT == "task_complete"]
            payload["baseline"] = base.summary(tasks)
        return alerttext.for_durable(target, run, event, payload)
