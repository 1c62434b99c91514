"""A latest value with a version that tasks wait on: the one change-notification primitive.

Owns ``Versioned`` — ``value``, ``version`` (bumped on every change) and ``wait_newer(seen)``,
which returns once the version is past ``seen`` (never misses a change made between two waits:
the waiter compares versions, the event only wakes it). Three kinds of latest values build on
it: a monitor's status and progress (``monitor.Watched``: plus the frame encoded once), a
cluster mirror's copies of them (``cluster.mirror.ReplicaValue``: the frame from the leader's
own JSON) and values the monitor tells its own tasks (``Monitor.current_tasks``: a bare
``Versioned``). Each stream and task waits on its own version; one ``trio.Event`` per change
wakes them all.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import trio

__all__ = ["Versioned"]

V = TypeVar("V")


class Versioned(Generic[V]):
    """A value with a version; waiters wake on change (equal values are not a change)."""

    __slots__ = ("value", "version", "_changed")

    def __init__(self, value: V) -> None:
        self.value = value
        self.version = 0
        self._changed = trio.Event()

    def set(self, value: V) -> bool:
        """Store ``value``; False (and nobody woken) when it equals the current one."""
        if value == self.value:
            return False
        self.value = value
        self._bump()
        return True

    def _bump(self) -> None:
        """A new version: wake every waiter, and arm a fresh event for the next change."""
        self.version += 1
        self._changed.set()
        self._changed = trio.Event()

    async def wait_newer(self, version: int) -> None:
        """Return once ``self.version > version`` (at once if it already is)."""
        while self.version <= version:
            await self._changed.wait()
