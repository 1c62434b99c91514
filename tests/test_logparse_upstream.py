"""LogParser against upstream-faithful WAA and OSWorld logs (``tests/upstream``).

Every artifact of every scenario — the normal log file(s) WAA's/OSWorld's real logging setup
wrote, the console as a pty or pipe recorded it — parsed whole, byte by byte, in random chunks
and with every line visited gives exactly the events the scenario's definition says (offsets
aside), with the issue-10 items spelled out as their own tests; and the fixtures themselves are
checked to be what upstream writes (format, modules and lines, which handler got what).
"""

from __future__ import annotations

import dataclasses
import functools
import random
import re
from typing import Any

import pytest
from upstream import SCENARIOS, Fixture, build
from upstream.builder import cut_id
from upstream.scenarios import ID_WOS_2, LONG_ID

from trio_sse import waalog
from trio_sse.logparse import (
    InfraHint,
    Interrupted,
    LogParser,
    ParsedEvent,
    PhaseSeen,
    RateLimited,
    RunArgs,
    RunFinished,
    RunStarted,
    ServerReady,
    StepStarted,
    TaskFinished,
    TaskStarted,
)

NAMES = sorted(SCENARIOS)


@functools.cache
def fixture(name: str) -> Fixture:
    return build(name)


def feed(data: bytes, cuts: list[int] | None = None, **kw: Any) -> tuple[list[ParsedEvent], LogParser]:
    parser = LogParser(**kw)
    events: list[ParsedEvent] = []
    prev = 0
    for cut in [*(cuts or []), len(data)]:
        events += parser.feed(data[prev:cut])
        prev = cut
    events += parser.close()
    return events, parser


def unplaced(events: list[ParsedEvent]) -> list[ParsedEvent]:
    return [dataclasses.replace(e, offset=0) for e in events]


def of(events: list[ParsedEvent], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


# --------------------------------------------------------------------------- every scenario


@pytest.mark.parametrize("name", NAMES)
def test_every_artifact_gives_the_events_its_scenario_defines(name: str) -> None:
    fx = fixture(name)
    assert set(fx.expected) == set(fx.artifacts), "every artifact has expectations"
    for artifact, data in fx.artifacts.items():
        events, parser = feed(data)
        assert unplaced(events) == fx.expected[artifact], artifact
        assert parser.statistics.parse_errors == fx.parse_errors, artifact
        assert parser.statistics.bytes == len(data)


@pytest.mark.parametrize("name", NAMES)
def test_byte_by_byte_and_random_chunks_equal_whole(name: str) -> None:
    fx = fixture(name)
    rng = random.Random(name)
    for artifact, data in fx.artifacts.items():
        whole, p = feed(data)
        if len(data) < 100_000:
            parser = LogParser()
            events = [e for i in range(len(data)) for e in parser.feed(data[i : i + 1])] + parser.close()
            assert events == whole, artifact
            assert parser.statistics == p.statistics
        for _ in range(8):
            cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 60)))
            events, q = feed(data, cuts)
            assert events == whole, (artifact, cuts)
            assert q.statistics == p.statistics


@pytest.mark.parametrize("name", NAMES)
def test_skipping_lines_no_rule_can_match_changes_nothing(name: str) -> None:
    # White-box: _segments skips lines by a candidate regex; visiting every line through
    # _line (what the chunked path does for lines split across chunks) must agree.
    for data in fixture(name).artifacts.values():
        reference = LogParser()
        reference._visit_all = True
        assert feed(data)[0] == reference.feed(data) + reference.close()


@pytest.mark.parametrize("name", NAMES)
def test_offsets_are_line_starts_in_log_order(name: str) -> None:
    for artifact, data in fixture(name).artifacts.items():
        events, _ = feed(data)
        offsets = [e.offset for e in events]
        assert offsets == sorted(offsets), artifact
        for e in events:
            assert e.offset in (0, len(data)) or data[e.offset - 1 : e.offset] in (b"\n", b"\r"), (artifact, e)


@pytest.mark.parametrize("name", NAMES)
def test_the_timeline_replayed_file_by_file_gives_the_same_events(name: str) -> None:
    # The growth the builder recorded, fed as it happened (several files interleaved), to one
    # parser per file: same bytes, same events.
    fx = fixture(name)
    parsers = {a: LogParser() for a in fx.artifacts}
    got: dict[str, list[ParsedEvent]] = {a: [] for a in fx.artifacts}
    seen: dict[str, bytes] = {a: b"" for a in fx.artifacts}
    for artifact, chunk in fx.timeline:
        got[artifact] += parsers[artifact].feed(chunk)
        seen[artifact] += chunk
    for artifact, parser in parsers.items():
        got[artifact] += parser.close()
        assert seen[artifact] == fx.artifacts[artifact]
        assert unplaced(got[artifact]) == fx.expected[artifact]


# --------------------------------------------------------------------------- issue 10, item by item


def file_of(name: str, n: int = 0) -> tuple[Fixture, bytes, list[ParsedEvent]]:
    fx = fixture(name)
    data = fx.artifacts[fx.logs()[n]]
    return fx, data, feed(data)[0]


def test_parallel_workers_each_file_is_one_worker_with_its_own_tasks() -> None:
    fx = fixture("waa_parallel")
    assert len(fx.logs()) == 2
    started = [of(feed(fx.artifacts[f])[0], RunStarted) for f in fx.logs()]
    assert [(s.worker_id, s.total_tasks) for (s,) in started] == [(0, 3), (1, 2)]
    results = [[e.task_id for e in of(feed(fx.artifacts[f])[0], TaskFinished)] for f in fx.logs()]
    assert [len(r) for r in results] == [3, 2] and not set(results[0]) & set(results[1])
    # The two files really grew side by side.
    order = [a for a, _ in fx.timeline if a.startswith("logs/")]
    switches = sum(1 for a, b in zip(order, order[1:], strict=False) if a != b)
    assert switches > 10


def test_a_raised_task_has_no_score_and_the_average_leaves_it_out() -> None:
    _, _, events = file_of("waa_raises")
    raised, passed = of(events, TaskFinished)
    assert (raised.score, raised.error, raised.failure_kind) == (None, "list index out of range", "agent")
    assert passed.score == 1.0
    assert of(events, RunFinished)[0].average_score == 1.0  # WAA's own: over tasks with a Result


def test_vm_down_every_task_is_infra_and_readiness_says_not_ready() -> None:
    fx, _, events = file_of("waa_vm_down")
    done = of(events, TaskFinished)
    assert [(e.failure_kind, e.vm_unreachable, e.score) for e in done] == [("infra", True, None)] * 3
    assert "Connection aborted" in done[0].error
    assert "Connection refused" in done[1].error and "port=5000" in done[1].error
    assert "Connection timed out" in done[2].error
    assert of(events, RunFinished) == [RunFinished(None, of(events, RunFinished)[0].offset, of(events, RunFinished)[0].at)]
    console = feed(fx.artifacts["console-0"])[0]
    assert [e.ready for e in of(console, ServerReady)][:3] == [False, False, True]  # Failed to get hello x2


def test_readiness_records_in_the_file() -> None:
    _, _, events = file_of("waa_readiness")
    ready = [(e.ready, e.message) for e in of(events, ServerReady)]
    assert ready[:3] == [(False, "VM not ready yet. Retrying in 5 seconds...")] * 2 + [(True, "VM is up and ready.")]
    assert ready[-1] == (False, "VM did not become ready after 20 attempts.")
    assert all(e.at is not None for e in of(events, ServerReady))
    (_, bad) = of(events, TaskFinished)
    assert (bad.failure_kind, bad.infra_hints) == ("infra", 2)  # gave up + one HTTP 500


def test_getter_result_text_is_neither_a_result_nor_a_parse_error() -> None:
    _, data, events = file_of("waa_single")
    assert b"microsoftpaint/64-MainProcess" in data and b"Result: Found a red circle in the screenshot" in data
    paint = [e for e in of(events, TaskFinished) if e.task_id == ID_WOS_2]
    assert [(e.score, e.error) for e in paint] == [(1.0, None)]
    assert feed(data)[1].statistics.parse_errors == 0


def test_evaluator_swallowed_is_a_score_and_raised_out_of_it_is_evaluator() -> None:
    _, _, events = file_of("waa_evaluator")
    swallowed, raised = of(events, TaskFinished)
    assert (swallowed.score, swallowed.failure_kind) == (0.0, "agent")
    assert (raised.score, raised.failure_kind, raised.during_evaluation) == (None, "evaluator", True)


def test_status_500_is_an_infra_hint_for_the_task() -> None:
    _, _, events = file_of("waa_status_500")
    hints = of(events, InfraHint)
    assert [h.message.split(":")[0] for h in hints] == [
        "Failed to execute command. Status code", "An error occurred while trying to execute the command",
    ]  # fmt: skip
    (task,) = of(events, TaskFinished)
    assert (task.failure_kind, task.infra_hints, hints[0].task_id) == ("infra", 2, task.task_id)


def test_max_steps_from_the_args_line() -> None:
    _, _, events = file_of("waa_max_steps")
    assert of(events, RunArgs)[0].max_steps == 3
    budget, said_done = of(events, TaskFinished)
    assert (budget.steps, budget.max_steps_reached, budget.failure_kind) == (3, True, "max_steps")
    assert (said_done.steps, said_done.max_steps_reached, said_done.failure_kind) == (3, False, "agent")


def test_interrupted_is_on_the_console_and_the_file_just_stops() -> None:
    fx, _, events = file_of("waa_interrupted")
    assert not of(events, Interrupted) and not of(events, RunFinished)
    assert len(of(events, TaskStarted)) == 2 and len(of(events, TaskFinished)) == 1
    console = feed(fx.artifacts["console-0"])[0]
    assert [e.signal for e in of(console, Interrupted)] == [2]


def test_rate_limiting_is_counted_from_the_file_only() -> None:
    fx, _, events = file_of("waa_rate_limited")
    limited = of(events, RateLimited)
    assert [e.retry for e in limited] == [False, True, False, True, False, True, False, True, False]
    assert all("429 Too Many Requests" in e.message for e in limited if not e.retry)
    assert not of(feed(fx.artifacts["console-0"])[0], RateLimited)
    raised = of(events, TaskFinished)[1]
    assert (raised.failure_kind, raised.error.startswith("RetryError[")) == ("agent", True)


def test_dockur_spelling_gives_oobe() -> None:
    fx = fixture("waa_single")
    assert "Windows started succesfully".encode() in fx.artifacts["console-0"]
    phases = [e.phase for e in of(feed(fx.artifacts["console-0"])[0], PhaseSeen)]
    assert phases == ["downloading", "extracting", "configuring", "building", "booting", "oobe", "ready"]


def test_task_ids_of_every_form_and_one_longer_than_the_line_bound() -> None:
    _, data, events = file_of("waa_long_id")
    started = [e.task_id for e in of(events, TaskStarted)]
    finished = [e.task_id for e in of(events, TaskFinished)]
    assert finished == started and len(set(started)) == 7
    assert started[-1] == cut_id(LONG_ID) == "f" * waalog.TASK_ID_MAX_BYTES
    assert of(events, RunStarted)[0].total_tasks == 7
    for suffix in ("-WOS", "-wos", "-WOS-2", "-2-WOS"):
        assert any(s.endswith(suffix) for s in started), suffix
    assert any(s.startswith("INF-") for s in started) and any(s[:8].isupper() for s in started)


@pytest.mark.parametrize("bound", [300, 1000, 4096])
def test_a_long_id_cut_by_a_small_line_bound_is_still_one_task(bound: int) -> None:
    # [Example ID] and Finished lines are cut at different places inside the id: the task is
    # the same (a prefix), reported once, with the id its [Example ID] gave.
    _, data, _ = file_of("waa_long_id")
    events, _ = feed(data, max_line_bytes=bound)
    started = [e.task_id for e in of(events, TaskStarted)]
    finished = [e.task_id for e in of(events, TaskFinished)]
    assert finished == started and len(finished) == 7
    assert LONG_ID.startswith(started[-1]) and 0 < len(started[-1]) <= waalog.TASK_ID_MAX_BYTES


def test_osworld_envs_keep_their_own_tasks() -> None:
    _, data, events = file_of("osworld_env")
    done = {e.task_id: e for e in of(events, TaskFinished)}
    assert {t: (e.worker, e.score, e.failure_kind) for t, e in done.items()} == {
        "bb5e4c0d-f964-439c-97b6-bdb9747de3f4": ("Env 1", 1.0, "agent"),
        "7a4deb26-d57d-4ea9-9a73-630f66a7b568": ("Env 1", 0.0, "agent"),
        "0ed39f63-6049-43d4-ba4d-5fa2fe04a951": ("Env 2", None, "infra"),
        "94d95f96-9699-4208-98ba-3c3119edf9c2": ("Env 2", 1.0, "agent"),
    }
    assert of(events, RunStarted)[0].total_tasks == 4
    # Steps are untagged lib_run_single records from the env's process: attributed through it.
    assert b"lib_run_single/24-Process-2" in data and b"lib_run_single/24-Process-3" in data
    assert {(e.worker, e.task_id is not None) for e in of(events, StepStarted)} == {("Env 1", True), ("Env 2", True)}
    assert [e.worker for e in of(events, RateLimited)] == ["Env 2"]


def test_osworld_envprocess_names_and_interruption() -> None:
    _, _, events = file_of("osworld_envprocess")
    raised, passed = sorted(of(events, TaskFinished), key=lambda e: e.worker or "")
    assert (raised.worker, raised.failure_kind, raised.error) == ("EnvProcess-1", "agent", "list index out of range")
    assert (passed.worker, passed.score) == ("EnvProcess-2", 1.0)
    assert [e.signal for e in of(events, Interrupted)] == [2] and not of(events, RunFinished)


def test_every_record_event_carries_its_own_timestamp() -> None:
    for name in NAMES:
        fx = fixture(name)
        for artifact in fx.logs():
            for e in feed(fx.artifacts[artifact])[0]:
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", e.at or ""), (name, e)  # type: ignore[union-attr]


# --------------------------------------------------------------------------- the fixtures are upstream's


def test_file_records_use_waa_format_modules_and_lines() -> None:
    fx = fixture("waa_single")
    data = fx.artifacts[fx.logs()[0]]
    prefix = re.compile(
        rb"\x1b\[1;33m\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \x1b\[31m(INFO|ERROR) \x1b\[32m(\w+)/(\d+)-MainProcess"
        rb"\x1b\[1;33m\] \x1b\[0m"
    )
    sites = {(m[3], int(m[4])) for m in prefix.finditer(data)}
    for site in [(b"run", 139), (b"run", 225), (b"run", 280), (b"lib_run_single", 56), (b"lib_run_single", 82),
                 (b"lib_run_single", 84), (b"desktop_env", 127), (b"python", 180), (b"microsoftpaint", 64), (b"run", 292)]:  # fmt: skip
        assert site in sites, site
    assert b"_client/" in fixture("waa_rate_limited").artifacts[fixture("waa_rate_limited").logs()[0]]  # real httpx


def test_file_and_console_get_what_their_handlers_let_through() -> None:
    fx = fixture("waa_rate_limited")
    file, console = fx.artifacts[fx.logs()[0]], fx.artifacts["console-0"]
    assert b"HTTP Request: POST" in file and b"HTTP Request: POST" not in console  # not desktopenv
    assert b"Retrying request to" in file and b"Retrying request to" not in console
    assert b"Response from server:" in console and b"Response from server:" not in file  # print()
    assert b"it/s]" in console and b"it/s]" not in file  # tqdm on stderr
    pty = fixture("waa_single").artifacts["console-0"]
    assert pty.count(b"\r\n") == pty.count(b"\n")  # the pty's line discipline: every \n is \r\n
    assert b"\x1b[A" in pty  # tqdm's nested bars move the cursor on a terminal
