"""What cluster mode writes into Redis and reads back: publish steps → script arguments,
stream entries → ``history.Entry`` / latest values, checkpoints. Pure.

The wire form of an event in Redis is its SSE ``data`` (the payload's compact JSON, exactly
as the leader encoded it) plus its ``event`` name and, for durable events, its stable id and
ordinal. A reader rebuilds the frame with ``sse.encode_event`` from those strings, so every
process serves byte-identical frames without re-encoding payloads; the typed event
(``TaskComplete`` …) is decoded only for code that reads fields (snapshot, summaries).

Everything read from Redis is checked: a value cluster mode did not write (not UTF-8, not a
JSON object, an id that is not ``<target>:<run>-<n>``, a missing field) raises
``ClusterDataError`` naming the key and entry; callers skip such an entry and say so.

Must not: talk to Redis, know about Trio.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trio_sse.cluster.keys import TargetKeys, Token
from trio_sse.cluster.timing import ClusterTiming
from trio_sse.errors import ClusterDataError
from trio_sse.history import Entry, parse_cursor
from trio_sse.model import Durable, ErrorEvent, PayloadError, Progress, RunComplete, Status, Step, TaskComplete, dumps
from trio_sse.sse import encode_event

# Characters of a checkpoint's opaque ``extra`` (the reducer's seed: it lists the run's task ids,
# ~100 bytes per task). Written once per resume point — about once per task — not per step.
MAX_EXTRA = 1024 * 1024
MAX_FINGERPRINT = 256

_DURABLE: dict[str, type[TaskComplete] | type[RunComplete]] = {
    TaskComplete.EVENT: TaskComplete,
    RunComplete.EVENT: RunComplete,
}

# ------------------------------------------------------------------ payload → typed value


def _text(raw: bytes | str | None, what: str) -> str:
    if raw is None:
        raise ClusterDataError(f"{what} is missing")
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ClusterDataError(f"{what} is not UTF-8: {raw[:40]!r}") from None


def _object(data: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise ClusterDataError(f"{what} is not JSON: {data[:60]!r}") from None
    if not isinstance(value, dict):
        raise ClusterDataError(f"{what} is not a JSON object: {data[:60]!r}")
    return value


def _build(cls: type[Any], payload: Mapping[str, Any], what: str) -> Any:
    """``cls`` from its payload, by the model's own decoder (``from_payload``: the same rules
    as a client's)."""
    try:
        return cls.from_payload(payload)
    except PayloadError as exc:
        raise ClusterDataError(f"{what}: {exc}") from None


def decode_status(data: str, what: str = "status") -> Status:
    p = _object(data, what)
    if not isinstance(p.get("probe"), dict):
        raise ClusterDataError(f"{what} has no probe object: {data[:60]!r}")
    return _build(Status, p, what)  # type: ignore[no-any-return]


def decode_progress(data: str, what: str = "progress") -> Progress:
    return _build(Progress, _object(data, what), what)  # type: ignore[no-any-return]


def decode_durable(event: str, data: str, what: str = "entry") -> Durable:
    cls = _DURABLE.get(event)
    if cls is None:
        raise ClusterDataError(f"{what} has unknown event type {event[:40]!r}")
    return _build(cls, _object(data, what), what)  # type: ignore[no-any-return]


def decode_error(data: str, what: str = "error") -> ErrorEvent:
    return _build(ErrorEvent, _object(data, what), what)  # type: ignore[no-any-return]


def decode_step(data: str, what: str = "step") -> Step:
    return _build(Step, _object(data, what), what)  # type: ignore[no-any-return]


# ------------------------------------------------------------------ durable entries


def parse_entry_id(target: str, raw: str) -> str:
    """An event id of ``target`` (``history``'s grammar, one lane or several) → its run;
    ClusterDataError for anything else."""
    position = parse_cursor(raw).get(target) if "," not in raw else None
    if position is None:
        raise ClusterDataError(f"not an event id of target {target!r}: {raw[:80]!r}")
    return position.run


def entry_n(target: str, entry: Entry) -> int:
    """The entry's place in its run's history (1, 2, 3 …): what the stream orders by."""
    return entry.seq


def decode_entry(keys: TargetKeys, run: str, stream_id: str, raw: Mapping[bytes, bytes]) -> tuple[int, Entry]:
    """One entry of ``events:<run>`` → (n, Entry) with the frame rebuilt from the stored
    strings; checked against the target, the run and its own ``n`` / ``lane`` fields."""
    what = f"entry {stream_id} of {keys.events(run)}"
    id = _text(raw.get(b"id"), f"{what}: field id")
    event = _text(raw.get(b"event"), f"{what}: field event")
    data = _text(raw.get(b"data"), f"{what}: field data")
    n_field = _text(raw.get(b"n"), f"{what}: field n")
    lane_field = raw.get(b"lane", b"").decode("utf-8", "replace")
    try:
        id_run = parse_entry_id(keys.target, id)
    except ClusterDataError as exc:
        raise ClusterDataError(f"{what}: {exc}") from None
    if not (n_field.isascii() and n_field.isdigit() and len(n_field) <= 12):
        raise ClusterDataError(f"{what}: field n is not an ordinal: {n_field[:20]!r}")
    seq = int(n_field)
    lane, dot, lane_n = lane_field.partition(".")
    if lane_field and not (dot and lane and lane_n.isascii() and lane_n.isdigit() and len(lane_n) <= 12):
        raise ClusterDataError(f"{what}: field lane is not '<lane>.<n>': {lane_field[:40]!r}")
    own = int(lane_n) if lane_field else seq
    if id_run != run or (not lane_field and not id.endswith(f"-{seq}")):
        raise ClusterDataError(f"{what}: id {id!r} does not match run {run!r} / n {n_field[:20]!r}")
    durable = decode_durable(event, data, what)
    if durable.target != keys.target:
        raise ClusterDataError(f"{what}: payload is for target {durable.target!r}")
    return seq, Entry(id, durable, data, encode_event(data, event=event, id=id), lane, own, seq)


# ------------------------------------------------------------------ live values


@dataclass(frozen=True, slots=True)
class LiveState:
    """The leader's latest values, as one entry of the live stream carries them."""

    run: str  # the run Redis holds events of ("" before any)
    status: str  # status payload JSON
    progress: str
    outage: str | None  # the leader's source outage message, None while the source is up
    stats: Mapping[str, int] = field(default_factory=dict)  # the leader's monitor statistics


@dataclass(frozen=True, slots=True)
class LiveError:
    """An error event the leader offered to its subscribers (never coalesced)."""

    data: str


@dataclass(frozen=True, slots=True)
class LiveStep:
    """A step event the leader offered to its subscribers (SPEC §8: sent at once, no id)."""

    data: str


def decode_live(keys: TargetKeys, stream_id: str, raw: Mapping[bytes, bytes]) -> LiveState | LiveError | LiveStep:
    what = f"entry {stream_id} of {keys.live}"
    kind = _text(raw.get(b"kind"), f"{what}: field kind")
    if kind == "error":
        data = _text(raw.get(b"data"), f"{what}: field data")
        decode_error(data, what)
        return LiveError(data)
    if kind == "step":
        data = _text(raw.get(b"data"), f"{what}: field data")
        if decode_step(data, what).target != keys.target:
            raise ClusterDataError(f"{what}: a step of another target")
        return LiveStep(data)
    if kind != "state":
        raise ClusterDataError(f"{what}: unknown kind {kind[:40]!r}")
    status = _text(raw.get(b"status"), f"{what}: field status")
    progress = _text(raw.get(b"progress"), f"{what}: field progress")
    decode_status(status, what)
    decode_progress(progress, what)
    outage = _text(raw.get(b"outage", b""), f"{what}: field outage")
    stats_raw = _text(raw.get(b"stats", b""), f"{what}: field stats")
    stats = _object(stats_raw, f"{what}: field stats") if stats_raw else {}
    return LiveState(
        run=_text(raw.get(b"run", b""), f"{what}: field run"),
        status=status,
        progress=progress,
        outage=outage or None,
        stats={k: v for k, v in stats.items() if isinstance(v, int) and not isinstance(v, bool)},
    )


# ------------------------------------------------------------------ checkpoints


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where the leader stood when it published: the bytes before ``offset`` of the log
    generation whose first bytes give ``fingerprint`` produced exactly ``count`` durable
    events of ``run`` (Redis holds at least those). A successor that finds the same
    fingerprint continues at ``offset`` (numbering from ``count + 1``; events Redis already
    has are skipped by ordinal); another fingerprint means a new generation (read from 0).
    ``extra`` is opaque to cluster mode (JSON text the leader may use for per-file offsets or
    a reducer seed), at most ``MAX_EXTRA`` characters."""

    run: str
    count: int
    offset: int
    fingerprint: str
    extra: str = ""

    def __post_init__(self) -> None:
        if self.count < 0 or self.offset < 0:
            raise ValueError(f"checkpoint count and offset must be >= 0, got {self.count}, {self.offset}")
        if len(self.fingerprint) > MAX_FINGERPRINT or len(self.extra) > MAX_EXTRA:
            raise ValueError("checkpoint fingerprint or extra too long")

    def encode(self) -> str:
        return dumps(
            {"run": self.run, "count": self.count, "offset": self.offset, "fingerprint": self.fingerprint, "extra": self.extra}
        )

    @classmethod
    def decode(cls, raw: bytes | str, what: str = "checkpoint") -> Checkpoint:
        p = _object(_text(raw, what), what)
        try:
            ck = cls(p["run"], p["count"], p["offset"], p["fingerprint"], p.get("extra", ""))
        except (KeyError, ValueError, TypeError) as exc:
            raise ClusterDataError(f"{what} is malformed: {exc}") from None
        if not (
            isinstance(ck.run, str)
            and isinstance(ck.fingerprint, str)
            and isinstance(ck.extra, str)
            and type(ck.count) is int
            and type(ck.offset) is int
        ):
            raise ClusterDataError(f"{what} has fields of the wrong type")
        return ck


# ------------------------------------------------------------------ publish steps


@dataclass(frozen=True, slots=True)
class PublishStep:
    """Everything one publish script call writes. ``entries`` are (n, Entry) of ``run`` in
    order; ``state`` False means "entries only" (finishing a previous run's tail)."""

    run: str
    entries: Sequence[tuple[int, Entry]] = ()
    state: bool = True
    status: str = ""
    progress: str = ""
    outage: str | None = None
    stats: Mapping[str, int] = field(default_factory=dict)
    errors: Sequence[str] = ()  # error payload JSON, oldest first
    checkpoint: Checkpoint | None = None
    steps: Sequence[str] = ()  # step payload JSON, oldest first (written after the errors)

    def __post_init__(self) -> None:
        if not self.run and self.entries:
            raise ValueError("entries need a named run")
        if self.state and not (self.status and self.progress):
            raise ValueError("a step with state needs status and progress")
        if self.checkpoint is not None and self.checkpoint.run != self.run:
            raise ValueError(f"checkpoint of run {self.checkpoint.run!r} in a step of run {self.run!r}")


def publish_call(keys: TargetKeys, token: Token, step: PublishStep, timing: ClusterTiming) -> tuple[list[str], list[str | bytes]]:
    """KEYS and ARGV of ``lua.PUBLISH`` for ``step``."""
    args: list[str | bytes] = [
        str(token),
        step.run,
        keys.events_prefix,
        str(timing.retention_ms),
        str(timing.live_maxlen),
        "1" if step.state else "0",
        step.status,
        step.progress,
        step.outage or "",
        dumps(dict(step.stats)) if step.stats else "",
        str(step.checkpoint.count) if step.checkpoint is not None else "",
        step.checkpoint.encode() if step.checkpoint is not None else "",
        # The error count, or "<errors>,<steps>" when the step carries step events too (then
        # the steps follow the errors).
        f"{len(step.errors)},{len(step.steps)}" if step.steps else str(len(step.errors)),
        *step.errors,
        *step.steps,
    ]
    for n, entry in step.entries:
        args += [str(n), entry.id, entry.event.EVENT, entry.data, f"{entry.lane}.{entry.n}" if entry.lane else ""]
    return [keys.lease, keys.meta, keys.live, keys.events(step.run)], args
