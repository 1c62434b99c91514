#!/usr/bin/env python3
"""What the benchmarks (``scripts/bench_*.py``) publish and write: WAA task results and WAA
log bytes, both from the simulator (``trio_sse.sources.simulate``: ``plan_run`` plans a run's
tasks, ``render_run`` writes them in the real WAA format), so a benchmark's workload is the
same realistic run the demo and the tests use.

Must not: time anything, start processes or write files (the scripts do). Not part of the
package, not tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from trio_sse import waalog
from trio_sse.sources.simulate import SimTask, plan_run, render_run

__all__ = ["WaaRun", "published_tasks", "waa_run"]


def published_tasks(count: int, *, seed: int = 7) -> tuple[SimTask, ...]:
    """``count`` task results for a server to publish: UUID-WOS ids, domains in WAA's order,
    2-8 steps, scores 1.00 / 0.50 / 0.00, one task that raised (its exception message)."""
    return plan_run(count, seed=seed)


@dataclass(frozen=True, slots=True)
class WaaRun:
    """A simulated WAA run's log, cut for a follower: write ``header``, then each of
    ``appends`` as one write (the n-th ends with the line that finishes the n-th task, so the
    n-th ``task_complete`` follows from the n-th append; a task that raised ends with its
    traceback record, which settles it)."""

    tasks: tuple[SimTask, ...]
    header: bytes  # the container's boot, WAA's start, the worker's task list
    appends: tuple[bytes, ...]
    tail: bytes  # after the last task: progress bars, the average score (run_complete)


def waa_run(tasks: int, *, seed: int = 0) -> WaaRun:
    """``plan_run(tasks, seed=seed)`` rendered (ANSI-coloured, as WAA writes its log file)."""
    plan = plan_run(tasks, seed=seed)
    blob = b"".join(chunk for _, chunk in render_run(plan, ansi=True))

    def after_line(message: str, start: int) -> int:
        """Where the line holding ``message`` (the first one after ``start``) ends."""
        return blob.index(b"\n", blob.index(message.encode(), start)) + 1

    cut = after_line(waalog.worker_tasks(0, [(t.domain, t.task_id) for t in plan]), 0)
    header, appends = blob[:cut], []
    for t in plan:
        if t.error is None:
            end = after_line(waalog.finished(t.domain, t.task_id), cut)
        else:
            # WAA logs the traceback as its own record right after the Exception one (run.py:302);
            # the task is complete at the traceback's root-cause line (the first column-0 line
            # after its frames), so the append ends there — as WAA's one burst of writes does.
            end = after_line(waalog.exception_in(t.domain, t.task_id, t.error), cut)
            line = blob.index(b"\n", blob.index(b"Traceback (most recent call last):", end)) + 1
            while blob[line : line + 1] in (b" ", b"\t"):
                line = blob.index(b"\n", line) + 1
            end = blob.index(b"\n", line) + 1
        appends.append(blob[cut:end])
        cut = end
    return WaaRun(plan, header, tuple(appends), blob[cut:])
