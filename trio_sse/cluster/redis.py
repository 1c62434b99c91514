"""The Redis connection of one process: the commands and scripts cluster mode uses, typed.

Owns: ``RedisStore(url)`` (entered with ``async with``; ``open_store`` does both), the one
coredis client of the process and its connection pool, and the mapping of every failure to
our two errors. This is the ONLY module that imports coredis; everything above it sees
``RedisUnavailable`` (no answer: refused, lost, timed out, still loading, read-only replica)
or ``ClusterDataError`` (Redis answered, but a key holds something we did not write).

Why coredis: its 6.x line is built on anyio, so it runs natively under Trio — no asyncio
loop to bridge (the SSH source needs trio-asyncio for asyncssh; this does not). Structured
concurrency all the way down: the client's connection pool is a task group entered here, in
the caller's task, before any task shares it (coredis requires that). Non-blocking commands
are multiplexed over shared connections; each blocking ``XREAD`` gets its own connection and
is disconnected when cancelled.

Time limits are ours, not coredis's: every call runs under ``fail_after(op_timeout)`` (a
blocking read: its block time plus that), coredis's own retries are off (``NoRetryPolicy``:
the callers own retry and back-off), and a call that timed out drops the pool's connections,
so a hung server (SIGSTOP, a dead link that still looks open) costs one timeout, not one per
queued command.

Must not: decide anything (leases, publishing, mirroring live above), parse payloads
(``codec.py``), or retry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import coredis
import coredis.exceptions as cx
import trio
from coredis.retry import NoRetryPolicy

from trio_sse.cluster import lua
from trio_sse.cluster.codec import Checkpoint, PublishStep, publish_call
from trio_sse.cluster.keys import DEFAULT_PREFIX, TargetKeys, Token, check_prefix, check_url, display_url
from trio_sse.cluster.timing import ClusterTiming
from trio_sse.errors import ClusterDataError, RedisUnavailable

R = TypeVar("R")
StreamEntry = tuple[str, Mapping[bytes, bytes]]  # (stream id, fields) as Redis has them

# Error replies that mean "Redis cannot serve this now", not "the data is wrong". coredis
# turns some codes into classes (and strips the code from the message), others it leaves in.
_UNAVAILABLE_CLASSES = (cx.ReadOnlyError, cx.TryAgainError, cx.ClusterDownError)
_UNAVAILABLE_PREFIXES = ("MASTERDOWN", "NOREPLICAS", "OOM", "BUSY", "MISCONF")


@dataclass(frozen=True, slots=True)
class Acquired:
    """The outcome of one acquire: our token, or who holds it and for how long still."""

    token: Token | None
    holder_ms: int = 0  # with token None: ms until the holder's lease expires (-1: no expiry)


@dataclass(frozen=True, slots=True)
class Published:
    fenced: bool  # another token holds the lease: nothing was written
    vacant: bool  # nobody holds the lease (lapsed, or Redis lost it): nothing was written
    gap: bool  # Redis has fewer entries than the step assumed: nothing was written
    published: int  # the last ordinal Redis holds of ``run`` (after the step)
    run: str  # the run Redis holds events of ("" when none; the step's own run if it is named)


class RedisStore:
    """Typed Redis commands for cluster mode, shared by every lease loop, publisher and mirror
    of the process. Made synchronously (the URL is checked, nothing is sent); ``async with
    store:`` opens the connection pool for the block — every task using the store must run
    inside it. A Redis that is down when the block starts is an outage like any other,
    reported by the loops that use the store."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timing: ClusterTiming | None = None,
        max_connections: int = 64,
    ) -> None:
        check_url(url)
        self.url = display_url(url)
        self.prefix = check_prefix(prefix)
        self.timing = timing or ClusterTiming()
        self._client = coredis.Redis.from_url(
            url,
            decode_responses=False,
            retry_policy=NoRetryPolicy(),  # the callers retry, with back-off
            connect_timeout=self.timing.op_timeout,
            stream_timeout=None,  # our fail_after bounds every call (and a blocking read's time)
            max_connections=max_connections,  # blocking reads take one each: one per mirror
            client_name="trio-sse",
        )
        self._acquire = self._client.register_script(lua.ACQUIRE)
        self._renew = self._client.register_script(lua.RENEW)
        self._release = self._client.register_script(lua.RELEASE)
        self._publish = self._client.register_script(lua.PUBLISH)
        self.calls = 0  # Redis calls made (statistics)
        self.failures = 0  # calls that ended in RedisUnavailable

    async def __aenter__(self) -> RedisStore:
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._client.__aexit__(*exc_info)

    def keys(self, target: str) -> TargetKeys:
        return TargetKeys(self.prefix, target)

    # ------------------------------------------------------------ plumbing

    async def _call(
        self,
        what: str,
        keys: Sequence[str],
        fn: Callable[[], Awaitable[R]],
        *,
        timeout: float | None = None,
    ) -> R:
        """Run one Redis call with our time limit and error mapping."""
        self.calls += 1
        limit = self.timing.op_timeout if timeout is None else timeout
        try:
            with trio.fail_after(limit):
                return await fn()
        except trio.TooSlowError:
            # A hung server: drop the connections, the next call connects afresh.
            self._client.connection_pool.disconnect()
            self.failures += 1
            raise RedisUnavailable(f"redis {self.url}: no answer to {what} within {limit:g} s") from None
        except (cx.AuthenticationError, cx.AuthorizationError) as exc:
            self.failures += 1
            raise RedisUnavailable(f"redis {self.url} refused {what}: {exc}") from None
        except cx.ResponseError as exc:
            message = str(exc)
            if isinstance(exc, cx.WrongTypeError):
                message = f"WRONGTYPE {message}"
            if isinstance(exc, _UNAVAILABLE_CLASSES) or message.startswith(_UNAVAILABLE_PREFIXES):
                self.failures += 1
                raise RedisUnavailable(f"redis {self.url} cannot serve {what} now: {message[:200]}") from None
            shown = ", ".join(keys)
            if "TRIO_SSE " in message:
                message = message[message.index("TRIO_SSE ") + 9 :]
            raise ClusterDataError(
                f"redis {self.url}: {what} on {shown} failed: {message[:300]} "
                "(a value trio-sse did not write is in its keys; delete those keys)"
            ) from None
        except (cx.RedisError, OSError, TimeoutError) as exc:
            self.failures += 1
            cause = f"{exc}; {exc.__cause__}" if exc.__cause__ else str(exc)
            raise RedisUnavailable(f"redis {self.url}: {what} failed: {cause[:300]}") from None

    @staticmethod
    def _entries(raw: Sequence[Any] | None) -> list[StreamEntry]:
        return [(_str(e.identifier), e.field_values) for e in raw or ()]

    # ------------------------------------------------------------ basics

    async def ping(self) -> None:
        await self._call("PING", [], lambda: self._client.ping())

    async def server_id(self) -> str:
        """The server's ``run_id``: a new one after every restart (an empty restart included)."""
        info = await self._call("INFO server", [], lambda: self._client.info("server"))
        return str(info.get("run_id", ""))

    # ------------------------------------------------------------ the lease

    async def acquire(self, keys: TargetKeys, owner: str) -> Acquired:
        reply = await self._call(
            "lease acquire",
            [keys.lease, keys.epoch],
            lambda: self._acquire(keys=[keys.lease, keys.epoch], args=[owner, str(self.timing.lease_ms)]),
        )
        code, value = _pair(reply, "lease acquire")
        if code == 1:
            return Acquired(Token.parse(_str(value)))
        return Acquired(None, int(value))

    async def renew(self, keys: TargetKeys, token: Token) -> int:
        """1 renewed, 2 taken back after the key was gone (republish!), 0 lost."""
        reply = await self._call(
            "lease renew",
            [keys.lease, keys.epoch],
            lambda: self._renew(
                keys=[keys.lease, keys.epoch], args=[str(token), str(self.timing.lease_ms), str(token.epoch)]
            ),
        )
        return _code(reply, "lease renew")

    async def lease_holder(self, keys: TargetKeys) -> str | None:
        """The owner id of the lease's holder now, None when nobody holds it."""
        raw = await self._call(f"GET {keys.lease}", [keys.lease], lambda: self._client.get(keys.lease))
        return None if raw is None else Token.parse(_str(raw)).owner

    async def release(self, keys: TargetKeys, token: Token) -> bool:
        reply = await self._call(
            "lease release", [keys.lease], lambda: self._release(keys=[keys.lease], args=[str(token)])
        )
        return _code(reply, "lease release") == 1

    # ------------------------------------------------------------ publishing

    async def publish(self, keys: TargetKeys, token: Token, step: PublishStep) -> Published:
        script_keys, args = publish_call(keys, token, step, self.timing)
        reply = await self._call(
            "publish", script_keys, lambda: self._publish(keys=script_keys, args=args)
        )
        if not isinstance(reply, (list, tuple)) or len(reply) != 3 or not isinstance(reply[0], int):
            raise ClusterDataError(f"unexpected reply to publish: {reply!r:.100}")
        code, published, run = reply
        return Published(
            fenced=code == 0, vacant=code == 3, gap=code == 2, published=int(published), run=_str(run)
        )

    async def meta(self, keys: TargetKeys) -> dict[bytes, bytes]:
        return dict(await self._call(f"HGETALL {keys.meta}", [keys.meta], lambda: self._client.hgetall(keys.meta)))

    async def checkpoint(self, keys: TargetKeys) -> Checkpoint | None:
        """Where the last leader stood (for a successor that resumes at its byte offset);
        None when no leader has written one for the run Redis holds."""
        raw = await self._call(
            f"HGET {keys.meta} checkpoint", [keys.meta], lambda: self._client.hget(keys.meta, "checkpoint")
        )
        return None if raw is None else Checkpoint.decode(raw, f"{keys.meta} field checkpoint")

    # ------------------------------------------------------------ reading

    async def last_entry(self, key: str) -> StreamEntry | None:
        raw = await self._call(
            f"XREVRANGE {key}", [key], lambda: self._client.xrevrange(key, end="+", start="-", count=1)
        )
        entries = self._entries(raw)
        return entries[0] if entries else None

    async def range_after(self, key: str, after: str) -> list[StreamEntry]:
        """Up to ``read_count`` entries of ``key`` after stream id ``after`` ("0-0": all)."""
        start = "-" if after == "0-0" else f"({after}"
        raw = await self._call(
            f"XRANGE {key}",
            [key],
            lambda: self._client.xrange(key, start=start, end="+", count=self.timing.read_count),
        )
        return self._entries(raw)

    async def read(self, streams: Mapping[str, str]) -> dict[str, list[StreamEntry]]:
        """XREAD BLOCK on ``streams`` ({key: last id seen}): whatever arrives first, at most
        ``read_count`` entries per stream; {} when ``block_ms`` passed with nothing new."""
        keys = list(streams)
        block = self.timing.block_ms
        raw = await self._call(
            "XREAD",
            keys,
            lambda: self._client.xread(dict(streams), count=self.timing.read_count, block=block),
            timeout=block / 1000 + self.timing.op_timeout,
        )
        return {_str(k): self._entries(v) for k, v in (raw or {}).items()}


@asynccontextmanager
async def open_store(
    url: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    timing: ClusterTiming | None = None,
    max_connections: int = 64,
) -> AsyncIterator[RedisStore]:
    """``RedisStore(...)`` entered for the block (nothing is sent until the first call)."""
    async with RedisStore(url, prefix=prefix, timing=timing, max_connections=max_connections) as store:
        yield store


def _str(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _pair(reply: Any, what: str) -> tuple[int, Any]:
    if not isinstance(reply, (list, tuple)) or len(reply) != 2 or not isinstance(reply[0], int):
        raise ClusterDataError(f"unexpected reply to {what}: {reply!r:.100}")
    return reply[0], reply[1]


def _code(reply: Any, what: str) -> int:
    if not isinstance(reply, (list, tuple)) or len(reply) != 1 or not isinstance(reply[0], int):
        raise ClusterDataError(f"unexpected reply to {what}: {reply!r:.100}")
    return int(reply[0])
