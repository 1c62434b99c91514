"""Who follows a target: the lease loop of one target in one process (SPEC §10).

``Leadership(store, target, owner, lead).run()`` runs until cancelled, in a nursery the hub
owns. It waits for the target's lease (``SET NX PX`` in a script), and while it holds it runs
``lead(lease)`` — the caller's function that follows the target and publishes (a monitor plus
a ``Publisher``) — in a nursery of its own, next to a task that renews the lease every third
of its expiry. When the lease is lost, that nursery is cancelled: ``lead`` stops. When ``lead``
returns or is cancelled, the lease is released (shielded, bounded), and the loop waits for the
lease again. Every process of the cluster runs one ``Leadership`` per target; exactly one of
them is inside ``lead`` at a time.

Fencing. Each acquisition increments the target's epoch counter in Redis; the token is
``<epoch>:<owner>``. Every publish checks the token in the same script that writes, so a
leader that was paused past its expiry (GC, SIGSTOP, a slow disk) and wakes up after
another took over cannot write a thing: its publish is *fenced* and it stops leading.

When the lease is lost:

* renew answers "another owner has it" → lost at once;
* renew cannot reach Redis → retried with a short back-off until ``give_up_fraction`` of the
  expiry has passed since the last renew that succeeded (measured from when that renew was
  *sent*, so the local estimate is never later than Redis's) → lost; the successor cannot
  start before the expiry, so the two never overlap;
* renew finds the key gone but the epoch still ours (the lease lapsed while nobody took the
  target, or Redis restarted empty) → taken back with the same token and ``lease.reclaims``
  goes up: Redis may have lost our data, the publisher republishes the run.

Waiting for the lease: while another process holds it, the next attempt is timed for the
moment it would expire (its ``PTTL``) plus a little jitter — a successor takes over within
the expiry plus a few milliseconds, without polling Redis in a tight loop.

``lead`` raising an exception is a bug in the caller; it is logged with its traceback, the
lease is released, and the loop tries again after a back-off (another process may do
better). Nothing escapes ``run`` but cancellation.

Must not: follow logs or publish (``lead`` does), or talk to Redis other than through
``RedisStore``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from trio_sse.cluster.keys import TargetKeys, Token
from trio_sse.cluster.redis import RedisStore
from trio_sse.cluster.timing import backoff_delay
from trio_sse.errors import ClusterDataError, RedisUnavailable

log = logging.getLogger(__name__)


class Lease:
    """The lease one process holds on one target while ``lead`` runs."""

    __slots__ = ("keys", "token", "lost", "reclaims", "_store", "_scope", "_reclaimed", "_last_ok", "_renew_lock")

    def __init__(self, store: RedisStore, keys: TargetKeys, token: Token, *, acquired_at: float) -> None:
        self.keys = keys
        self.token = token
        self.lost: str | None = None  # why the lease was lost (None while held)
        self.reclaims = 0  # times the lease was taken back after Redis lost it (republish!)
        self._store = store
        self._scope: trio.CancelScope | None = None
        self._reclaimed = trio.Event()
        self._last_ok = acquired_at
        self._renew_lock = trio.Lock()

    @property
    def held(self) -> bool:
        return self.lost is None

    def lose(self, reason: str) -> None:
        """We no longer lead: stop ``lead`` (cancel its nursery). Idempotent."""
        if self.lost is None:
            self.lost = reason
            log.warning("lease of target %s lost: %s", self.keys.target, reason)
        if self._scope is not None:
            self._scope.cancel()

    async def wait_reclaimed(self, seen: int) -> None:
        """Return once ``reclaims`` is above ``seen``."""
        while self.reclaims <= seen:
            await self._reclaimed.wait()

    async def confirm(self) -> bool:
        """Renew now; True while still held (``lose`` has been called otherwise). Raises
        ``RedisUnavailable`` when Redis cannot answer (the caller decides when to give up).
        Concurrent callers share one renew."""
        async with self._renew_lock:
            if self.lost is not None:
                return False
            sent = trio.current_time()
            try:
                code = await self._store.renew(self.keys, self.token)
            except ClusterDataError as exc:
                self.lose(str(exc))
                return False
            if code == 0:
                self.lose("another process holds the lease now")
                return False
            if code == 2:
                self.reclaims += 1
                self._reclaimed.set()
                self._reclaimed = trio.Event()
                log.warning(
                    "lease of target %s was gone from redis (expired unseen, or redis lost its data): taken back",
                    self.keys.target,
                )
            self._last_ok = max(self._last_ok, sent)
            return True


@dataclass(frozen=True, slots=True)
class LeadershipStatistics:
    leading: bool
    acquisitions: int  # times this process became the leader
    losses: int  # leases lost while leading (not released)
    redis_failures: int  # lease calls that could not reach Redis


class Leadership:
    def __init__(
        self,
        store: RedisStore,
        target: str,
        owner: str,
        lead: Callable[[Lease], Awaitable[None]],
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.target = target
        self.owner = owner
        self.keys = store.keys(target)
        self.lease: Lease | None = None  # set while leading
        self._store = store
        self._lead = lead
        self._rand = rand
        self._acquisitions = 0
        self._losses = 0
        self._redis_failures = 0
        self._down = False

    @property
    def leading(self) -> bool:
        return self.lease is not None and self.lease.held

    def statistics(self) -> LeadershipStatistics:
        return LeadershipStatistics(self.leading, self._acquisitions, self._losses, self._redis_failures)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        timing = self._store.timing
        task_status.started()
        attempt = 0
        while True:
            sent = trio.current_time()  # the lease runs from no earlier than this
            try:
                got = await self._store.acquire(self.keys, self.owner)
            except (RedisUnavailable, ClusterDataError) as exc:
                self._failed(exc)
                await trio.sleep(backoff_delay(attempt, first=timing.backoff_first, cap=timing.backoff_cap, rand=self._rand))
                attempt += 1
                continue
            attempt = 0
            if self._down:
                self._down = False
                log.info("redis is back for the lease of target %s", self.target)
            if got.token is None:
                # Another process leads: look again when its lease would expire (a renewal
                # only moves that later). Jitter: a few ms, so waiting processes do not
                # race in lockstep, yet the takeover stays within the expiry + ~0.1 s.
                wait = got.holder_ms / 1000 if got.holder_ms >= 0 else timing.renew_every
                await trio.sleep(min(wait, timing.lease_seconds) + 0.005 + 0.05 * self._rand())
                continue
            if await self._hold(Lease(self._store, self.keys, got.token, acquired_at=sent)):
                # ``lead`` crashed: let another process try first.
                await trio.sleep(timing.backoff_cap)

    def _failed(self, exc: Exception) -> None:
        self._redis_failures += 1
        if not self._down:
            self._down = True
            log.warning("lease of target %s: %s (retrying)", self.target, exc)

    async def _hold(self, lease: Lease) -> bool:
        """Lead while the lease holds. True when ``lead`` raised (logged)."""
        self.lease = lease
        self._acquisitions += 1
        log.info("leading target %s (epoch %d)", self.target, lease.token.epoch)
        crashed = False
        try:
            async with trio.open_nursery() as nursery:
                lease._scope = nursery.cancel_scope
                nursery.start_soon(self._renew_loop, lease)
                try:
                    await self._lead(lease)
                except Exception:
                    log.exception("leading target %s failed", self.target)
                    crashed = True
                nursery.cancel_scope.cancel()
        finally:
            self.lease = None
            if lease.lost is not None:
                self._losses += 1
            else:
                lease.lost = "released"
                with trio.CancelScope(shield=True), trio.move_on_after(self._store.timing.op_timeout):
                    try:
                        await self._store.release(lease.keys, lease.token)
                    except (RedisUnavailable, ClusterDataError):
                        pass  # it expires on its own
        return crashed

    async def _renew_loop(self, lease: Lease) -> None:
        timing = self._store.timing
        attempt = 0
        while True:
            await trio.sleep(timing.renew_every if attempt == 0 else backoff_delay(
                attempt - 1, first=timing.backoff_first, cap=timing.renew_every / 2, rand=self._rand
            ))
            give_up_at = lease._last_ok + timing.give_up_after
            try:
                with trio.move_on_at(give_up_at):
                    if not await lease.confirm():
                        return  # lost: ``lose`` cancelled the nursery
                    attempt = 0
                    continue
            except RedisUnavailable as exc:
                self._redis_failures += 1
                if attempt == 0:
                    log.warning("lease of target %s: cannot renew: %s (retrying)", self.target, exc)
            attempt += 1
            if trio.current_time() >= give_up_at:
                lease.lose(f"could not renew for {timing.give_up_after:g} s (redis unreachable)")
                return
