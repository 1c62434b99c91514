"""Cluster mode's pure parts: key names and tokens, the --redis URL, timing limits, the
back-off, what is written to Redis and read back (with junk in every field), and the
mirror's history and values (no Redis here: see test_cluster_redis.py)."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from trio_sse.cluster.codec import (
    Checkpoint,
    LiveError,
    LiveState,
    LiveStep,
    PublishStep,
    decode_durable,
    decode_entry,
    decode_live,
    decode_progress,
    decode_status,
    decode_step,
    parse_entry_id,
    publish_call,
)
from trio_sse.cluster.keys import TargetKeys, Token, check_url, display_url, owner_id
from trio_sse.cluster.mirror import ReplicaHistory, ReplicaValue
from trio_sse.cluster.timing import ClusterTiming, backoff_delay
from trio_sse.errors import ClusterDataError, ConfigError
from trio_sse.history import History, Position
from trio_sse.model import (
    BaselineResult,
    ErrorEvent,
    Forecast,
    Progress,
    RunComplete,
    Status,
    Step,
    TaskComplete,
    Worker,
    dumps,
)

KEYS = TargetKeys("trio-sse", "vm1")

# Every field set to something other than its default: a decoder that drops one fails here.
FULL_STATUS = Status("vm1", connected=True, phase="oobe", waa_ready=True, probe_status="ready", vnc_url="http://h:8006")
FULL_PROGRESS = Progress(
    "vm1", tasks_completed=3, total_tasks=9, current_task="t4", current_step=2, running=True,
    current_domain="chrome", run="0123abcd", finished=True,
    workers=(Worker("0", "t4", "chrome", 2, True, "Open it", "click()"),), rate_limited=2, instruction="Open it", action="click()",
    average_score=0.5, started_at="2024-05-06T10:00:00.000", max_steps=15, stalled=12.5, success_threshold=0.5,
    forecast=Forecast(0.5, 0.4, 0.6), log_time="2024-05-06T10:05:00.000",
)
FULL_TASK = TaskComplete(
    "vm1", "t1-WOS", success=False, score=0.5, domain="notepad", steps=7, error="boom", failure_kind="agent",
    instruction="Open it", started_at="2024-05-06T10:00:00.000", finished_at="2024-05-06T10:01:00.000",
    duration_s=60.0, worker="0", baseline=BaselineResult(1.0, True), change="regressed",
)
FULL_RUN = RunComplete("vm1", tasks_completed=3, total_tasks=9, tasks_passed=1, average_score=0.25, interrupted=True,
                       baseline={"fixed": 0, "regressed": 1})


def _non_default(obj: object) -> None:
    for f in fields(obj):  # type: ignore[arg-type]
        if f.name == "target":
            continue
        assert getattr(obj, f.name) != f.default, f"{type(obj).__name__}.{f.name} left at its default"


# ------------------------------------------------------------------ keys, tokens, URLs


def test_every_key_of_a_target_shares_its_hash_tag() -> None:
    names = [KEYS.lease, KEYS.epoch, KEYS.meta, KEYS.live, KEYS.events("0123abcd")]
    assert names == [
        "trio-sse:{vm1}:lease",
        "trio-sse:{vm1}:epoch",
        "trio-sse:{vm1}:meta",
        "trio-sse:{vm1}:live",
        "trio-sse:{vm1}:events:0123abcd",
    ]
    assert KEYS.events("0123abcd").startswith(KEYS.events_prefix)


@pytest.mark.parametrize("prefix", ["", "a b", "x{y}", "-lead", "é", "a" * 65])
def test_a_bad_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        TargetKeys(prefix, "vm1")


@pytest.mark.parametrize("target", ["", "a{b}", "a b", "x" * 65])
def test_a_target_that_cannot_be_in_a_key_is_refused(target: str) -> None:
    with pytest.raises(ConfigError, match="target name"):
        TargetKeys("trio-sse", target)


def test_tokens_round_trip_and_junk_is_a_data_error() -> None:
    token = Token(12, owner_id("web-1.example", 4321, nonce="abc123"))
    assert str(token) == "12:web-1.example-4321-abc123"
    assert Token.parse(str(token)) == token
    for junk in ["", "12", ":x", "x:y", "12:", "12:a b", "1" * 19 + ":x", "12:" + "a" * 97]:
        with pytest.raises(ClusterDataError, match="not a lease token"):
            Token.parse(junk)


def test_owner_ids_are_unique_and_safe() -> None:
    assert owner_id("h", 1) != owner_id("h", 1)
    assert owner_id("bad host/ä", 7, nonce="n") == "bad-host---7-n"


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/0", "redis://h", "rediss://:pw@h:6380/2", "unix:///run/redis.sock?db=1", "redis://u:p@h/15"],
)
def test_good_redis_urls(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("redis://h :1", "spaces"),
        ("http://h", "must start with"),
        ("127.0.0.1:6379", "must start with"),
        ("redis://", "needs a host"),
        ("redis://h:0", "from 1 to 65535"),
        ("redis://h:99999", "bad port"),
        ("redis://h:port", "bad port"),
        ("redis://h/db1", "database number"),
        ("unix://", "socket path"),
    ],
)
def test_bad_redis_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_url(url)


def test_a_password_never_shows() -> None:
    assert display_url("redis://:s3cret@h:1/0") == "redis://:***@h:1/0"
    assert display_url("rediss://me:s3cret@h") == "rediss://me:***@h"
    assert display_url("redis://h:1") == "redis://h:1"
    with pytest.raises(ConfigError) as err:
        check_url("redis://:s3cret@h:0")
    assert "s3cret" not in str(err.value)


# ------------------------------------------------------------------ timing


def test_timing_defaults_follow_the_spec() -> None:
    t = ClusterTiming()
    assert t.lease_seconds == 10 and t.lease_ms == 10_000
    assert t.renew_every == pytest.approx(10 / 3)
    assert t.renew_every < t.give_up_after < t.lease_seconds


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lease_seconds": 0}, "lease expiry"),
        ({"renew_fraction": 0.9}, "renew fraction"),
        ({"give_up_fraction": 1.0}, "give-up"),
        ({"op_timeout": 0}, "redis timeout"),
        ({"block_ms": 0}, "block"),
        ({"read_count": 0}, "read count"),
        ({"live_maxlen": 2}, "live stream"),
        ({"retention_seconds": -1}, "retention"),
        ({"backoff_first": 2, "backoff_cap": 1}, "backoff"),
        ({"errors_kept": 0}, "errors kept"),
    ],
)
def test_timing_out_of_range(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ClusterTiming(**kwargs)  # type: ignore[arg-type]


def test_backoff_doubles_to_its_cap_with_jitter_in_the_upper_half() -> None:
    low = [backoff_delay(a, first=0.1, cap=1.0, rand=lambda: 0.0) for a in range(6)]
    high = [backoff_delay(a, first=0.1, cap=1.0, rand=lambda: 1.0) for a in range(6)]
    assert low == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.5, 0.5])
    assert high == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert backoff_delay(10_000, first=0.1, cap=1.0, rand=lambda: 1.0) == 1.0


# ------------------------------------------------------------------ payloads


def test_every_payload_decodes_back_to_the_same_value() -> None:
    for value in (FULL_STATUS, FULL_PROGRESS, FULL_TASK, FULL_RUN):
        _non_default(value)
    assert decode_status(dumps(FULL_STATUS.payload())) == FULL_STATUS
    assert decode_progress(dumps(FULL_PROGRESS.payload())) == FULL_PROGRESS
    assert decode_durable("task_complete", dumps(FULL_TASK.payload())) == FULL_TASK
    assert decode_durable("run_complete", dumps(FULL_RUN.payload())) == FULL_RUN
    assert decode_status(dumps(Status("vm1").payload())) == Status("vm1")


@pytest.mark.parametrize(
    ("event", "data", "message"),
    [
        ("task_complete", "not json", "not JSON"),
        ("task_complete", "[1, 2]", "not a JSON object"),
        ("task_complete", '{"task_id": "x"}', "lacks the required key"),
        ("step", dumps(FULL_TASK.payload()), "unknown event type"),
    ],
)
def test_junk_payloads_are_data_errors(event: str, data: str, message: str) -> None:
    with pytest.raises(ClusterDataError, match=message):
        decode_durable(event, data)


def test_a_status_without_its_probe_object_is_junk() -> None:
    with pytest.raises(ClusterDataError, match="probe"):
        decode_status('{"connected": true, "target": "vm1"}')


# ------------------------------------------------------------------ stream entries


def _fields(entry, n: int | None = None) -> dict[bytes, bytes]:
    n = n if n is not None else int(entry.id.rsplit("-", 1)[1])
    return {b"n": str(n).encode(), b"id": entry.id.encode(), b"event": entry.event.EVENT.encode(), b"data": entry.data.encode()}


def test_an_entry_read_back_is_the_entry_written_byte_for_byte() -> None:
    history = History("vm1", "0123abcd")
    written = [history.append(FULL_TASK), history.append(FULL_RUN)]
    for i, entry in enumerate(written, 1):
        n, read = decode_entry(KEYS, "0123abcd", f"1-{i}", _fields(entry))
        assert n == i
        assert read == entry  # id, typed event, data and frame


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({b"id": None}, "field id is missing"),
        ({b"data": None}, "field data is missing"),
        ({b"data": b"\xff\xfe"}, "not UTF-8"),
        ({b"data": b"{"}, "not JSON"),
        ({b"id": b"vm2:0123abcd-1"}, "not an event id of target 'vm1'"),
        ({b"id": b"vm1:0123abcd-x"}, "not an event id"),
        ({b"id": b"vm1:XYZ-1"}, "not an event id"),
        ({b"id": b"vm1:0123abce-1"}, "does not match run"),
        ({b"n": b"2"}, "does not match"),
        ({b"event": b"status"}, "unknown event type"),
        ({b"data": dumps({**FULL_TASK.payload(), "target": "vm2"}).encode()}, "for target 'vm2'"),
    ],
)
def test_malformed_entries_are_data_errors_naming_the_entry(change: dict[bytes, bytes | None], message: str) -> None:
    entry = History("vm1", "0123abcd").append(FULL_TASK)
    raw = {**_fields(entry), **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(ClusterDataError, match=message) as err:
        decode_entry(KEYS, "0123abcd", "17-0", raw)
    assert "entry 17-0 of trio-sse:{vm1}:events:0123abcd" in str(err.value)


def test_entry_ids_parse_strictly() -> None:
    assert parse_entry_id("vm1", "vm1:0123abcd-12") == "0123abcd"
    assert parse_entry_id("vm1", "vm1:0123abcd-a1b2c3.4_d4e5f6.2") == "0123abcd"  # a run of several files
    for junk in ["vm1:0123abcd", "vm1-0123abcd-1", "vm1:-1", "vm1:0123abcd-", "vm1:0123abcd-1" + "0" * 12,
                 "vm1:0123abcd-١", "vm2:0123abcd-1", "vm1:0123abcd-1,vm1:0123abcd-2", "vm1:0123abcd-a1.2_"]:
        with pytest.raises(ClusterDataError):
            parse_entry_id("vm1", junk)


# ------------------------------------------------------------------ live entries


def _state_fields(**change: bytes) -> dict[bytes, bytes]:
    raw = {
        b"kind": b"state",
        b"run": b"0123abcd",
        b"status": dumps(FULL_STATUS.payload()).encode(),
        b"progress": dumps(FULL_PROGRESS.payload()).encode(),
        b"outage": b"ssh h: connection refused",
        b"stats": b'{"bytes_read": 10, "lines": 2, "flag": true, "name": "x"}',
    }
    raw.update({k.encode(): v for k, v in change.items()})
    return raw


def test_live_entries_decode() -> None:
    state = decode_live(KEYS, "1-0", _state_fields())
    assert state == LiveState(
        "0123abcd",
        dumps(FULL_STATUS.payload()),
        dumps(FULL_PROGRESS.payload()),
        "ssh h: connection refused",
        {"bytes_read": 10, "lines": 2},  # only integer statistics are taken
    )
    assert decode_live(KEYS, "1-0", _state_fields(outage=b"", stats=b"")).outage is None
    error = dumps(ErrorEvent("vm1", "log gone").payload())
    assert decode_live(KEYS, "1-1", {b"kind": b"error", b"data": error.encode()}) == LiveError(error)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({b"kind": b"gossip"}, "unknown kind"),
        ({}, "field kind is missing"),
        ({b"kind": b"error", b"data": b'{"target": "vm1"}'}, "lacks the required key 'message'"),
        (_state_fields(status=b'{"connected": 1}'), "probe"),
        (_state_fields(progress=b"[]"), "not a JSON object"),
        (_state_fields(stats=b"nope"), "field stats is not JSON"),
    ],
)
def test_junk_live_entries_are_data_errors(raw: dict[bytes, bytes], message: str) -> None:
    with pytest.raises(ClusterDataError, match=message):
        decode_live(KEYS, "5-0", raw)


# ------------------------------------------------------------------ checkpoints and steps


def test_checkpoints_round_trip_and_junk_is_refused() -> None:
    ck = Checkpoint("0123abcd", 4, 1234, "fp", '{"files": []}')
    assert Checkpoint.decode(ck.encode()) == ck
    assert Checkpoint.decode(ck.encode().encode()) == ck
    for junk in ["", "{}", '{"run": "r", "count": "4", "offset": 1, "fingerprint": ""}',
                 '{"run": "r", "count": -1, "offset": 1, "fingerprint": ""}', "[]"]:
        with pytest.raises(ClusterDataError):
            Checkpoint.decode(junk)
    with pytest.raises(ValueError):
        Checkpoint("r", 0, 0, "x" * 257)


def test_publish_call_lays_out_keys_and_arguments() -> None:
    history = History("vm1", "0123abcd")
    e1, e2 = history.append(FULL_TASK), history.append(FULL_RUN)
    step = PublishStep(
        run="0123abcd",
        entries=[(1, e1), (2, e2)],
        status="S",
        progress="P",
        outage=None,
        stats={"lines": 3},
        errors=["E1", "E2"],
        checkpoint=Checkpoint("0123abcd", 2, 99, "fp"),
    )
    keys, args = publish_call(KEYS, Token(3, "me"), step, ClusterTiming(retention_seconds=60, live_maxlen=16))
    assert keys == [KEYS.lease, KEYS.meta, KEYS.live, KEYS.events("0123abcd")]
    assert args[:13] == ["3:me", "0123abcd", KEYS.events_prefix, "60000", "16", "1", "S", "P", "", '{"lines":3}',
                         "2", step.checkpoint.encode(), "2"]  # type: ignore[union-attr]
    assert args[13:15] == ["E1", "E2"]
    assert args[15:] == ["1", e1.id, "task_complete", e1.data, "", "2", e2.id, "run_complete", e2.data, ""]
    lanes = History("vm1", "0123abcd", lanes=True)
    e3 = lanes.append(FULL_TASK, lane="a1b2c3")
    _, args = publish_call(KEYS, Token(3, "me"), PublishStep(run="0123abcd", entries=[(1, e3)], status="S",
                           progress="P", outage=None), ClusterTiming())
    assert args[-5:] == ["1", "vm1:0123abcd-a1b2c3.1", "task_complete", e3.data, "a1b2c3.1"]


def test_a_publish_step_with_step_events_counts_them_after_the_errors() -> None:
    step_data = dumps(Step("vm1", "t1-WOS", 3, "click", None, None, "0").payload())
    with_steps = PublishStep(run="0123abcd", status="S", progress="P", errors=["E1"], steps=[step_data, "S2"])
    _, args = publish_call(KEYS, Token(3, "me"), with_steps, ClusterTiming())
    assert args[12:16] == ["1,2", "E1", step_data, "S2"] and len(args) == 16
    # Without step events the layout is the one the script always had: the error count alone.
    _, args = publish_call(KEYS, Token(3, "me"), PublishStep(run="r", status="S", progress="P"), ClusterTiming())
    assert args[12] == "0" and len(args) == 13


def test_live_step_entries_decode_and_junk_is_named() -> None:
    data = dumps(Step("vm1", "t1-WOS", 3, "click", "/api/tasks/t1-WOS/files/s.png?target=vm1", None, "0").payload())
    assert decode_live(KEYS, "1-2", {b"kind": b"step", b"data": data.encode()}) == LiveStep(data)
    assert decode_step(data) == Step("vm1", "t1-WOS", 3, "click", "/api/tasks/t1-WOS/files/s.png?target=vm1", None, "0")
    other = dumps(Step("vm2", "t1-WOS", 3).payload())
    for raw, message in [
        ({b"kind": b"step"}, "field data is missing"),
        ({b"kind": b"step", b"data": b"[1]"}, "not a JSON object"),
        ({b"kind": b"step", b"data": b'{"target": "vm1", "task_id": "t1"}'}, "step"),
        ({b"kind": b"step", b"data": other.encode()}, "another target"),
        ({b"kind": b"step", b"data": b"\xff"}, "not UTF-8"),
    ]:
        with pytest.raises(ClusterDataError, match=message) as err:
            decode_live(KEYS, "5-1", raw)
        assert "entry 5-1 of trio-sse:{vm1}:live" in str(err.value)


def test_publish_steps_refuse_inconsistent_contents() -> None:
    entry = History("vm1", "0123abcd").append(FULL_TASK)
    with pytest.raises(ValueError, match="named run"):
        PublishStep(run="", entries=[(1, entry)], status="S", progress="P")
    with pytest.raises(ValueError, match="status and progress"):
        PublishStep(run="r")
    with pytest.raises(ValueError, match="checkpoint of run"):
        PublishStep(run="r", status="S", progress="P", checkpoint=Checkpoint("q", 0, 0, ""))
    assert PublishStep(run="r", state=False).entries == ()


# ------------------------------------------------------------------ the mirror's containers


def test_replica_history_places_positions_by_ordinal() -> None:
    source = History("vm1", "0123abcd")
    entries = [source.append(TaskComplete("vm1", f"t{i}", True, 1.0)) for i in range(1, 6)]
    h = ReplicaHistory("vm1", "0123abcd")
    for n in (1, 2, 4, 5):  # 3 was junk
        assert h.add(n, entries[n - 1])
    assert not h.add(4, entries[3])  # a duplicate
    assert not h.add(1, entries[0])
    assert len(h) == 4 and h.last_n == 5
    assert h.after(Position("0123abcd", {"": 2})) == [entries[3], entries[4]]
    assert h.after(Position("0123abcd", {"": 3})) == [entries[3], entries[4]]
    assert h.after(Position("0123abcd", {"": 5})) == []
    assert h.after(Position("0123abcd", {"": 6})) == h.entries  # never issued: cannot place it
    assert h.after(Position("ffff", {"": 1})) == h.entries
    assert h.after(None) == h.entries


def test_replica_values_change_only_with_their_data() -> None:
    v = ReplicaValue(Status("vm1"), "status")
    assert v.frame == b"event: status\ndata: " + dumps(Status("vm1").payload()).encode() + b"\n\n"
    data = dumps(FULL_STATUS.payload())
    assert v.set_data(FULL_STATUS, data) and v.version == 1
    assert not v.set_data(FULL_STATUS, data) and v.version == 1
    assert json.loads(v.frame.split(b"data: ")[1]) == FULL_STATUS.payload()
