"""Timing and limits of cluster mode, in one validated place, and the reconnect back-off. Pure.

Defaults suit a real deployment (SPEC §10: lease expiry 10 s); tests shrink them. Every
number here bounds something: how long a dead leader holds a target, how long one Redis call
may take, how much one read or one publish may carry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trio_sse.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ClusterTiming:
    lease_seconds: float = 10.0  # lease expiry: a dead leader's target is free after this
    renew_fraction: float = 1 / 3  # renew every lease_seconds * this
    # A leader that could not renew for this fraction of the expiry stops leading (it cannot
    # know whether Redis already let the lease go); kept below 1 so it stops *before* a
    # successor can start.
    give_up_fraction: float = 0.8
    op_timeout: float = 5.0  # one Redis call (not a blocking read) must answer within this
    block_ms: int = 5000  # a mirror's XREAD BLOCK: also how often an idle mirror checks in
    read_count: int = 512  # entries per XREAD / XRANGE page (bounded reads)
    publish_chunk: int = 500  # durable entries per publish script call (bounded writes)
    live_maxlen: int = 64  # entries kept in a target's live stream (latest values + errors)
    retention_seconds: float = 3600.0  # a finished run's stream lives this long after the next starts
    backoff_first: float = 0.1  # seconds before the first retry after a Redis failure
    backoff_cap: float = 5.0
    errors_kept: int = 64  # error events a leader holds while Redis is down (oldest dropped)
    # A new leader that re-reads the log holds back its status/progress while it is behind
    # what Redis already has (so mirrors' progress does not run backwards), at most this long.
    catch_up_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not 0.05 <= self.lease_seconds <= 3600:
            raise ConfigError(f"lease expiry must be from 0.05 to 3600 seconds, got {self.lease_seconds}")
        if not 0 < self.renew_fraction < self.give_up_fraction < 1:
            raise ConfigError(
                "need 0 < renew fraction < give-up fraction < 1, got "
                f"{self.renew_fraction} and {self.give_up_fraction}"
            )
        if not 0 < self.op_timeout <= 600:
            raise ConfigError(f"redis timeout must be from 0 to 600 seconds, got {self.op_timeout}")
        if not 1 <= self.block_ms <= 600_000:
            raise ConfigError(f"block must be from 1 to 600000 ms, got {self.block_ms}")
        if not 1 <= self.read_count <= 100_000 or not 1 <= self.publish_chunk <= 100_000:
            raise ConfigError("read count and publish chunk must be from 1 to 100000")
        if not 8 <= self.live_maxlen <= 100_000:
            raise ConfigError(f"live stream length must be from 8 to 100000, got {self.live_maxlen}")
        if not 0 < self.retention_seconds <= 30 * 86400:
            raise ConfigError(f"retention must be up to 30 days, got {self.retention_seconds}")
        if not 0 < self.backoff_first <= self.backoff_cap:
            raise ConfigError(
                f"backoff must satisfy 0 < first <= cap, got {self.backoff_first} and {self.backoff_cap}"
            )
        if not 0 <= self.catch_up_seconds <= 3600:
            raise ConfigError(f"catch-up hold must be from 0 to 3600 seconds, got {self.catch_up_seconds}")
        if not 1 <= self.errors_kept <= 10_000:
            raise ConfigError(f"errors kept must be from 1 to 10000, got {self.errors_kept}")

    @property
    def lease_ms(self) -> int:
        return max(1, round(self.lease_seconds * 1000))

    @property
    def renew_every(self) -> float:
        return self.lease_seconds * self.renew_fraction

    @property
    def give_up_after(self) -> float:
        return self.lease_seconds * self.give_up_fraction

    @property
    def retention_ms(self) -> int:
        return max(1, round(self.retention_seconds * 1000))


def backoff_delay(attempt: int, *, first: float, cap: float, rand: Callable[[], float]) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): ``first * 2**attempt`` capped at
    ``cap``, with "equal jitter" — uniformly in the upper half, so the processes of a
    cluster that lost Redis together do not reconnect in lockstep, yet never at once.
    (The same rule as the SSH source's; that one lives in a module that imports asyncio.)"""
    base = min(cap, first * 2.0 ** min(attempt, 64))
    return base / 2 + base / 2 * rand()
