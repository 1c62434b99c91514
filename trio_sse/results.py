"""The results folder of one target (SPEC §8): the current tasks' trajectories followed live,
and what the trajectory and files API read.

Owns: ``Results`` (one per target with a results folder; the monitor runs it) and the
``ResultsBackend`` protocol its two backends implement — ``sources/results_local.py`` (this
machine) and ``sources/ssh/results.py`` (over the target's one SSH connection).

* **Following** (``run``): the monitor says which tasks run now (``Monitor.current_tasks``:
  ``(worker, domain, task id)``, a new set whenever a worker starts or ends a task). For each, a
  follower finds the task's folder (it may appear late: looked for again with back-off), follows
  its ``traj.jsonl`` (push: the backend's ``follow``, the same tail -F as the log's, with offset
  resume after an SSH reconnect), parses it (``trajectory.Trajectory``) and sends the monitor
  ``TrajectoryFound`` at its first bytes and a ``StepSeen`` per action line. When a task ends
  in the log the follower keeps reading for ``linger`` seconds (WAA writes the last action's
  line just before ``Finished``, and a raised task's ``Error`` line just after its traceback;
  the two files are read independently), then stops; its trajectory is kept for the API.
* **Reading** (``task_trajectory`` / ``open_file``): a followed task's trajectory as it is now;
  any other task's read once on demand (single flight) and kept (``PAST_KEPT`` most recent).
  ``open_file`` serves only names the task's trajectory lists.

Must not: parse the log, decide what a step event is (``runstate``), know about HTTP, or write
anything on the target.
"""

from __future__ import annotations

import logging
import math
import posixpath
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from trio_sse.errors import FileGone, NotFound, ResultsUnavailable
from trio_sse.sources import CurrentTask, LogBytes, LogItem, LogReset, StepSeen, TrajectoryFound
from trio_sse.trajectory import TRAJ_FILE, StepRecord, Trajectory, safe_component
from trio_sse.versioned import Versioned

log = logging.getLogger(__name__)

LINGER_SECONDS = 10.0  # a finished task's trajectory is still read this long (see the docstring)
PAST_KEPT = 64  # trajectories of finished tasks kept after a read (LRU)
DIRS_KEPT = 4096  # task folders remembered (one per task of a run)
TRAJ_READ_LIMIT = 64 << 20  # bytes of a traj.jsonl read on demand


class ResultsBackend(Protocol):
    """Where a target's results folder is read (paths are POSIX paths on the target)."""

    description: str  # e.g. "local:/client/results" or "azureuser@vm:22:/client/results"
    root: str
    find_retry: tuple[float, float]  # seconds between looks for a task's folder: first, cap

    async def find_task_dir(self, domain: str, task_id: str) -> str | None:
        """The task's folder (the newest, ``trajectory.pick_newest``), None when there is none
        (yet). Raises ``ResultsUnavailable`` when it cannot be told now."""

    async def follow(
        self, path: str, send: trio.MemorySendChannel[LogItem], *, task_status: trio.TaskStatus[None] = ...
    ) -> None:
        """Follow the file at ``path`` until cancelled, tail -F style: ``LogReset`` before each
        generation's bytes, ``LogBytes`` (other items may come and are ignored)."""

    async def read(self, path: str, sink: Callable[[bytes], None], *, limit: int) -> None:
        """The file's bytes, in pieces, into ``sink``. ``FileGone`` when it is not there,
        ``ResultsUnavailable`` when it cannot be read now or is larger than ``limit``."""

    async def open_file(self, path: str, nursery: trio.Nursery) -> tuple[int, int]:
        """A local descriptor with the file's bytes (a remote file: fetched into the cache, in
        ``nursery``, once) and its size. ``FileGone`` / ``ResultsUnavailable`` as ``read``."""


@dataclass(frozen=True, slots=True)
class ResultsStatistics:
    followers: int  # trajectories followed now (current tasks, lingering ones)
    steps_seen: int  # action lines read by followers
    junk_lines: int  # traj lines that were not records (followed and read)
    trajectories_read: int  # on-demand reads of a traj.jsonl
    files_missing: int  # files a trajectory lists that were gone on the target


@dataclass(slots=True)
class _Followed:
    directory: str
    trajectory: Trajectory


class Results:
    """See the module docstring."""

    def __init__(self, target: str, backend: ResultsBackend, *, linger: float = LINGER_SECONDS) -> None:
        self.target = target
        self.backend = backend
        self.linger = linger
        self._followed: dict[str, _Followed] = {}  # task id → what its follower has read
        self._past: OrderedDict[str, _Followed] = OrderedDict()
        self._dirs: OrderedDict[str, str] = OrderedDict()  # task id → its folder
        self._loads: dict[str, trio.Event] = {}  # task id → its on-demand read under way
        self._load_errors: dict[str, Exception] = {}
        self._nursery: trio.Nursery | None = None
        self._steps_seen = 0
        self._junk_retired = 0
        self._reads = 0
        self.files_missing = 0

    def statistics(self) -> ResultsStatistics:
        junk = self._junk_retired + sum(f.trajectory.statistics.junk for f in self._followed.values())
        return ResultsStatistics(len(self._followed), self._steps_seen, junk, self._reads, self.files_missing)

    # ------------------------------------------------------------------ following

    async def run(
        self,
        send: trio.MemorySendChannel[LogItem],
        current: Versioned[frozenset[CurrentTask]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Follow the current tasks' trajectories until cancelled (see the module docstring)."""
        followers: dict[tuple[str, str], trio.CancelScope] = {}

        async def follower(task: CurrentTask, scope: trio.CancelScope) -> None:
            try:
                with scope:
                    await self._follow_task(task, send)
            finally:
                if followers.get((task.worker, task.task_id)) is scope:
                    del followers[(task.worker, task.task_id)]

        async with send, trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            version = -1
            try:
                while True:
                    await current.wait_newer(version)
                    version = current.version
                    wanted = {(t.worker, t.task_id): t for t in current.value}
                    for key, task in wanted.items():
                        scope = followers.get(key)
                        if scope is not None:
                            scope.deadline = math.inf  # running again (or still): no linger
                        elif safe_component(task.domain) and safe_component(task.task_id):
                            scope = followers[key] = trio.CancelScope()
                            nursery.start_soon(follower, task, scope)
                    for key, scope in followers.items():
                        if key not in wanted and scope.deadline == math.inf:
                            scope.deadline = trio.current_time() + self.linger
            finally:
                self._nursery = None

    async def _follow_task(self, task: CurrentTask, send: trio.MemorySendChannel[LogItem]) -> None:
        assert task.domain is not None
        directory = self._dirs.get(task.task_id)
        first, cap = self.backend.find_retry
        delay = first
        while directory is None:
            try:
                directory = await self.backend.find_task_dir(task.domain, task.task_id)
            except ResultsUnavailable as exc:
                log.info("%s: looking for the folder of %s: %s", self.backend.description, task.task_id, exc)
            if directory is None:
                await trio.sleep(delay)
                delay = min(cap, delay * 2)
        self._remember_dir(task.task_id, directory)
        followed = _Followed(directory, Trajectory())
        self._followed[task.task_id] = followed
        items_send, items = trio.open_memory_channel[LogItem](16)  # 16: the reader runs ahead
        announced = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._follow_file, posixpath.join(directory, TRAJ_FILE), items_send)
                async for item in items:
                    if isinstance(item, LogReset) and followed.trajectory.statistics.lines:
                        # The file was truncated or replaced: read the new one from its start (the
                        # reducer sends no action twice, whatever the indexes say).
                        self._junk_retired += followed.trajectory.statistics.junk
                        followed.trajectory = Trajectory()
                    elif isinstance(item, LogBytes):
                        if not announced:
                            announced = True
                            await send.send(TrajectoryFound(task.task_id, task.worker))
                        for record in followed.trajectory.feed(item.data):
                            if isinstance(record, StepRecord):
                                self._steps_seen += 1
                                await send.send(self._step_seen(task, record))
        finally:
            if self._followed.get(task.task_id) is followed:
                del self._followed[task.task_id]
                self._keep(task.task_id, followed)

    async def _follow_file(self, path: str, send: trio.MemorySendChannel[LogItem]) -> None:
        async with send:
            delay = self.backend.find_retry[0]
            while True:
                try:
                    await self.backend.follow(path, send)
                except Exception as exc:  # supervision boundary: a follower's failure is retried
                    log.warning("%s: following %s failed: %r", self.backend.description, path, exc)
                await trio.sleep(delay)  # (a follow that returned: started again, from the start)
                delay = min(self.backend.find_retry[1], delay * 2)

    def _step_seen(self, task: CurrentTask, record: StepRecord) -> StepSeen:
        return StepSeen(
            task_id=task.task_id,
            step=record.step,
            action=record.action,
            screenshot=record.screenshot,
            at=record.at,
            worker=task.worker,
            reward=record.reward,
            done=record.done,
            index=record.index,
        )

    def _remember_dir(self, task_id: str, directory: str) -> None:
        self._dirs[task_id] = directory
        self._dirs.move_to_end(task_id)
        while len(self._dirs) > DIRS_KEPT:
            self._dirs.popitem(last=False)

    def _keep(self, task_id: str, followed: _Followed) -> None:
        self._past[task_id] = followed
        self._past.move_to_end(task_id)
        while len(self._past) > PAST_KEPT:
            _, old = self._past.popitem(last=False)
            self._junk_retired += old.trajectory.statistics.junk

    # ------------------------------------------------------------------ reading

    async def task_trajectory(self, domain: str | None, task_id: str, *, finished: bool) -> tuple[str, Trajectory] | None:
        """The task's folder and trajectory, or None when it has none. A followed task's is
        the live one; another task's is read (once at a time per task) and, when the task is
        ``finished``, kept. Raises ``ResultsUnavailable``."""
        followed = self._followed.get(task_id) or self._past.get(task_id)
        if followed is not None:
            if task_id in self._past:
                self._past.move_to_end(task_id)
            return followed.directory, followed.trajectory
        if domain is None or not safe_component(domain) or not safe_component(task_id):
            return None
        nursery = self._nursery
        if nursery is None:
            raise ResultsUnavailable(f"{self.backend.description}: not running")
        while task_id in self._loads:  # single flight: wait for the read under way
            await self._loads[task_id].wait()
        if task_id in self._past:
            return self._past[task_id].directory, self._past[task_id].trajectory
        done = self._loads[task_id] = trio.Event()
        result: list[_Followed | None] = []
        # The read runs in the service's nursery: a client that leaves does not cancel it for
        # the others waiting; they all get its result (or its error).
        nursery.start_soon(self._load, domain, task_id, finished, done, result)
        await done.wait()
        error = self._load_errors.pop(task_id, None)
        if error is not None:
            raise error.__class__(*error.args)
        if not result or result[0] is None:
            return None
        return result[0].directory, result[0].trajectory

    async def _load(
        self, domain: str, task_id: str, finished: bool, done: trio.Event, result: list[_Followed | None]
    ) -> None:
        try:
            directory = self._dirs.get(task_id) or await self.backend.find_task_dir(domain, task_id)
            if directory is None:
                result.append(None)
                return
            self._remember_dir(task_id, directory)
            trajectory = Trajectory()
            self._reads += 1
            try:
                await self.backend.read(posixpath.join(directory, TRAJ_FILE), trajectory.feed, limit=TRAJ_READ_LIMIT)
            except FileGone:
                pass  # a folder without traj.jsonl (yet): an empty trajectory
            trajectory.close()
            loaded = _Followed(directory, trajectory)
            if finished:
                self._keep(task_id, loaded)
            result.append(loaded)
        except ResultsUnavailable as exc:
            self._load_errors[task_id] = exc
        except Exception as exc:  # supervision boundary: a reader's bug must not end the monitor
            log.exception("%s: reading the trajectory of %s failed", self.backend.description, task_id)
            self._load_errors[task_id] = ResultsUnavailable(f"reading the trajectory failed: {exc}")
        finally:
            del self._loads[task_id]
            done.set()

    async def open_file(self, domain: str | None, task_id: str, name: str, *, finished: bool) -> tuple[int, int]:
        """An open descriptor of ``name`` of the task's folder and its size — only for a name
        its trajectory lists (``trajectory.listed_name``). Raises ``NotFound`` (unknown name,
        no trajectory, the file gone: counted in ``files_missing``) or ``ResultsUnavailable``."""
        shown = name if len(name) <= 80 else name[:80] + "…"
        if not safe_component(name):
            raise NotFound(f"no file {shown!r}: a file name is one path component")
        loaded = await self.task_trajectory(domain, task_id, finished=finished)
        if loaded is None:
            raise NotFound(f"task {task_id} has no trajectory under {self.backend.root}")
        directory, trajectory = loaded
        if name not in trajectory.files:
            raise NotFound(f"{shown!r} is not a file of the trajectory of task {task_id}")
        nursery = self._nursery
        if nursery is None:
            raise ResultsUnavailable(f"{self.backend.description}: not running")
        try:
            return await self.backend.open_file(posixpath.join(directory, name), nursery)
        except FileGone:
            self.files_missing += 1
            raise FileGone(f"{shown!r} of task {task_id} is no longer on the target") from None
