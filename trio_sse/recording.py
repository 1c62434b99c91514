"""The server's run history (SPEC §9), wired: one ``HistoryWriter`` and one ``HistoryReader``
per server, fed by the monitors.

Owns: ``Recorder`` —

* ``observe``, a ``monitor.Observer``: every durable entry a monitor publishes goes to
  ``writer.record`` (live or replayed: writes are idempotent by event id, so a replay after a
  restart writes nothing twice), and the current run's metadata to ``writer.record_run``;
* the writer's reports: an outage (locked, corrupt, full, read-only …) becomes an ``error``
  event for every target's clients (``publish_error``), one log line, and the
  ``trio_sse_history_up`` metric at 0 until the writer says ``recovered``;
* ``baseline(target, run)``: the ``--baseline`` run's tasks as a ``baseline.Baseline``,
  looked up once per run;
* ``run``: the writer task (opening the file at once, so a bad file is reported at start-up
  and retried, never stopping the server), and the reader closed at the end.

Must not: block an observer call (``record*`` only queue), hold SQL (``storedb``) or threads
(``store``), or know about HTTP (``app.py`` asks ``reader`` for ``/api/runs``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import trio

from trio_sse.baseline import Baseline
from trio_sse.errors import BadRequest, HistoryUnavailable, NotFound
from trio_sse.monitor import Monitor, Observed, RunEvent, RunMeta
from trio_sse.store import HistoryReader, HistoryWriter, StoreLedger, StoreReport
from trio_sse.storedb import RunInfo

log = logging.getLogger("trio_sse")

# How long a baseline lookup waits for the writer to store what was recorded before it (the
# previous run's end, for ``--baseline previous``) before asking the database anyway.
BASELINE_WAIT: Final = 5.0
CLOSE_SECONDS: Final = 2.0

PublishError = Callable[[str, "str | None"], None]  # (message, target or None for every target)


class Recorder:
    """See the module docstring. ``baseline_ref``: ``--baseline`` (``previous``, a stored
    run, or None); ``writer_options`` go to ``HistoryWriter`` (tests shorten the backoff)."""

    def __init__(
        self,
        path: str | Path,
        *,
        baseline_ref: str | None = None,
        publish_error: PublishError | None = None,
        **writer_options: Any,
    ) -> None:
        self.path = Path(path)
        self.writer = HistoryWriter(self.path, report=self._on_report, eager=True, **writer_options)
        self.reader = HistoryReader(self.path)
        self.ledger = StoreLedger(self.reader, self.writer)
        self.publish_error: PublishError = publish_error or (lambda _message, _target: None)
        self.baseline_ref = baseline_ref
        self.outage: StoreReport | None = None  # the current outage, None while writing works
        self.outages = 0
        self._baselines: dict[str, tuple[str, Baseline | None]] = {}  # target → (run, its baseline)
        self._baseline_problem: str | None = None  # reported once

    # ------------------------------------------------------------ the monitors' side

    def observe(self, monitor: Monitor, item: Observed) -> None:
        if isinstance(item, RunEvent):
            self.writer.record(item.log, item.entry)
        elif isinstance(item, RunMeta):
            self.writer.record_run(
                RunInfo(
                    item.target,
                    item.run,
                    model=item.model,
                    agent=item.agent,
                    max_steps=item.max_steps,
                    total_tasks=item.total_tasks,
                    started_at=item.started_at,
                )
            )

    def _on_report(self, report: StoreReport) -> None:
        if report.is_outage:
            self.outage = report
            self.outages += 1
            log.warning("run history: %s", report.message)
            self.publish_error(f"run history: {report.message}", None)
        elif report.kind == "recovered":
            if self.outage is not None:
                log.warning("run history: %s", report.message)
            self.outage = None
        else:  # rejected (a bad record dropped), shutdown (left for the next start's replay)
            log.warning("run history: %s", report.message)

    # ------------------------------------------------------------ baselines

    async def baseline(self, target: str, run: str) -> Baseline | None:
        """The baseline of ``target``'s run ``run`` (None: no ``--baseline``, no previous
        finished run, or the database cannot answer now — asked again next time)."""
        ref = self.baseline_ref
        if ref is None or not run:
            return None
        cached = self._baselines.get(target)
        if cached is not None and cached[0] == run:
            return cached[1]
        with trio.move_on_after(BASELINE_WAIT):
            await self.writer.wait_idle()
        try:
            if ref == "previous":
                row = await self.reader.previous_run(target, exclude_run=run)
                ref = row.ref if row is not None else None
            base = None
            if ref is not None:
                row, tasks = await self.reader.run_with_tasks(ref)
                base = Baseline(row.ref, tasks)
        except HistoryUnavailable:
            return None
        except (NotFound, BadRequest) as err:
            self._baseline_refused(err, target)
            base = None
        self._baselines[target] = (run, base)
        return base

    async def baseline_candidates(self, target: str) -> list[Baseline]:
        """What ``target``'s runs are compared with, best first, for the reducer to choose
        from as soon as its run has a name (``runstate.RunState.set_baselines``): with
        ``--baseline previous`` the target's two latest finished runs (the latest, unless it
        is the run being followed), else the named run. Empty without ``--baseline`` or when
        the database cannot answer now."""
        ref = self.baseline_ref
        if ref is None:
            return []
        try:
            if ref == "previous":
                rows = [r for r in await self.reader.list_runs(target=target, limit=20) if r.finished][:2]
            else:
                rows = [(await self.reader.run_with_tasks(ref))[0]]
            out = []
            for row in rows:
                _, tasks = await self.reader.run_with_tasks(row.ref)
                out.append(Baseline(row.ref, tasks))
            return out
        except HistoryUnavailable:
            return []
        except (NotFound, BadRequest) as err:
            self._baseline_refused(err, target)
            return []

    def _baseline_refused(self, err: Exception, target: str) -> None:
        """The named baseline is not there (or not a run): said once, on the stream and the log."""
        message = f"baseline {self.baseline_ref}: {err}; runs are not compared"
        if self._baseline_problem != message:
            self._baseline_problem = message
            log.warning("run history: %s", message)
            self.publish_error(message, target)

    # ------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.writer.run)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_SECONDS):
                await self.reader.aclose()
