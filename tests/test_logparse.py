"""LogParser: fixtures against hand-written expectations, chunking invariance (whole, byte by
byte, every 2-way split), junk, bounded lines, the task-result rules, and a round trip of every
``waalog`` writer through the parser (so the simulator and the parser cannot drift)."""

from __future__ import annotations

import datetime as dt
import json
import random
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from trio_sse import waalog
from trio_sse.logparse import (
    LogParser,
    ParsedEvent,
    ParserStatistics,
    PhaseSeen,
    RunFinished,
    RunStarted,
    ServerReady,
    StepStarted,
    TaskFinished,
    TasksCounted,
    TaskStarted,
)
from trio_sse.model import PHASES

DATA = Path(__file__).parent / "data"
FIXTURES = ["waa_plain", "waa_ansi", "simple", "vm_boot"]
TS = waalog.format_timestamp(dt.datetime(2024, 5, 6, 10, 11, 12, 345000))


# The events and fields these tests were written against. Events gained fields (``at``,
# ``worker``, ...) and new kinds (InstructionSeen, Evaluating, ...) later; they are checked in
# tests/test_logparse_upstream.py. Here ``parse`` shows the original view unless ``full=True``.
LEGACY_FIELDS: dict[type, int] = {
    RunStarted: 3, TaskStarted: 3, StepStarted: 3, TaskFinished: 6, TasksCounted: 3, RunFinished: 2,
    ServerReady: 3, PhaseSeen: 2,
}  # fmt: skip


def legacy(events: list[ParsedEvent]) -> list[ParsedEvent]:
    """The events of the original interface, with their original fields only."""
    out: list[Any] = []
    for e in events:
        n = LEGACY_FIELDS.get(type(e))
        if n is not None:
            out.append(type(e)(*(getattr(e, f) for f in e.__slots__[:n])))  # type: ignore[attr-defined]
    return out


def parse(
    data: bytes, chunks: list[int] | None = None, *, full: bool = False, **kw: Any
) -> tuple[list[ParsedEvent], ParserStatistics]:
    """Feed ``data`` whole, or cut at the given offsets, then close."""
    parser = LogParser(**kw)
    events: list[ParsedEvent] = []
    prev = 0
    for cut in [*(chunks or []), len(data)]:
        events += parser.feed(data[prev:cut])
        prev = cut
    events += parser.close()
    return (events if full else legacy(events)), parser.statistics


def rec(message: str, *, ansi: bool = False, level: str = "INFO", module: str = "run") -> bytes:
    return waalog.format_record(TS, level, module, 296, "MainProcess", message, ansi=ansi).encode()


def of(events: list[ParsedEvent], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def summarize(events: list[ParsedEvent]) -> dict[str, Any]:
    return {
        "run_started": [{"total_tasks": e.total_tasks, "same_run": e.same_run} for e in of(events, RunStarted)],
        "tasks_started": [[e.domain, e.task_id] for e in of(events, TaskStarted)],
        "task_results": [
            {"task_id": e.task_id, "domain": e.domain, "score": e.score, "error": e.error, "steps": e.steps}
            for e in of(events, TaskFinished)
        ],
        "run_finished": [{"average_score": e.average_score} for e in of(events, RunFinished)],
        "tasks_counted": [[e.completed, e.total] for e in of(events, TasksCounted)],
        "phases": [e.phase for e in of(events, PhaseSeen)],
        "server_ready": [e.ready for e in of(events, ServerReady)],
        "steps": [e.step for e in of(events, StepStarted)],
    }


def load(name: str) -> tuple[bytes, dict[str, Any]]:
    return (DATA / f"{name}.log").read_bytes(), json.loads((DATA / f"{name}.expected.json").read_text())


# --------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_gives_expected_results(name: str) -> None:
    data, expected = load(name)
    events, stats = parse(data)
    got = summarize(events)
    for key, want in expected.items():
        if key == "parse_errors":
            assert stats.parse_errors == want
        else:
            assert got[key] == want, key
    assert stats.bytes == len(data)
    assert stats.lines == data.count(b"\n")
    assert stats.overlong_lines == 0


@pytest.mark.parametrize("name", FIXTURES)
def test_offsets_point_at_the_line_and_never_go_back(name: str) -> None:
    data, _ = load(name)
    events, _ = parse(data, full=True)
    offsets = [e.offset for e in events]
    assert offsets == sorted(offsets)
    for e in events:
        assert e.offset == 0 or data[e.offset - 1 : e.offset] in (b"\n", b"\r")
        line = waalog.ANSI_RE.sub(b"", data[e.offset :].split(b"\n", 1)[0])
        if isinstance(e, TaskStarted):
            assert e.task_id.encode() in line
        if isinstance(e, StepStarted):
            assert f"Step {e.step}".encode() in line


def test_fixture_ansi_and_plain_differ_only_in_colour() -> None:
    # The ANSI fixture really carries WAA's colour codes (else the test above proves little).
    data, _ = load("waa_ansi")
    assert data.count(b"\x1b[1;33m[") > 50
    assert b"\x1b" not in load("waa_plain")[0]


# --------------------------------------------------------------------------- chunking


@pytest.mark.parametrize("name", FIXTURES)
def test_byte_by_byte_equals_whole(name: str) -> None:
    data, _ = load(name)
    whole, stats_whole = parse(data, full=True)
    parser = LogParser()
    events: list[ParsedEvent] = []
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
    events += parser.close()
    assert events == whole
    assert parser.statistics == stats_whole


def _excerpt() -> bytes:
    # A few KB of the ANSI fixture holding the preamble, the Left tasks / Worker lines, tqdm
    # bars glued to records, a whole task with multi-line actions, and the next task's start.
    data, _ = load("waa_ansi")
    end = data.index(b"[Example ID]", data.index(b"Finished msedge/"))
    return data[: data.index(b"\n", end) + 1]


@pytest.mark.parametrize("name", ["vm_boot", "simple", "excerpt"])
def test_every_two_way_split_equals_whole(name: str) -> None:
    data = _excerpt() if name == "excerpt" else load(name)[0]
    assert len(data) < 6000
    whole, stats = parse(data, full=True)
    assert whole  # the excerpt must hold events, else the loop below proves nothing
    for cut in range(1, len(data)):
        assert parse(data, [cut], full=True) == (whole, stats), cut


def test_excerpt_has_what_the_split_test_claims() -> None:
    events, _ = parse(_excerpt())
    kinds = {type(e) for e in events}
    assert {RunStarted, TaskStarted, StepStarted, TaskFinished, ServerReady} <= kinds


def test_random_three_way_splits_of_every_fixture() -> None:
    rng = random.Random(7)
    for name in FIXTURES:
        data, _ = load(name)
        whole = parse(data, full=True)
        for _ in range(40):
            cuts = sorted(rng.sample(range(1, len(data)), 2))
            assert parse(data, cuts, full=True) == whole


def test_split_inside_utf8_ansi_and_crlf() -> None:
    line = "\x1b[1;34m\u276f \x1b[1;36mBooting Windows using QEMU v8.2.2...\x1b[0m\r\n".encode()
    whole = parse(line)
    assert [e.phase for e in of(whole[0], PhaseSeen)] == ["booting"]
    for cut in range(1, len(line)):  # includes inside "❯", inside "\x1b[1;36m", between \r and \n
        assert parse(line, [cut]) == whole


# --------------------------------------------------------------------------- lines: \r, tqdm, ANSI


def test_tqdm_bar_does_not_hide_the_record_after_it() -> None:
    data = (
        waalog.tqdm_redraw("Domain", 0, 3).encode()
        + waalog.tqdm_redraw("Example", 1, 2).encode()
        + rec(waalog.example_id("t-1"), ansi=True)
        + b"\rExample: 7it [00:05,  1.40it/s]"
        + b"Current Success Rate: 100.0 %\n"
    )
    events, _ = parse(data)
    assert [(e.task_id, e.offset) for e in of(events, TaskStarted)] == [("t-1", data.index(b"Example:  50%") + 0)]


def test_cr_separated_segments_each_parse_and_crlf_is_one_line() -> None:
    data = b"  12%  640M  3m12s\r  45%  2.4G  1m48s\r\x1b[1;34m\xe2\x9d\xaf \x1b[1;36mExtracting X image...\x1b[0m\r\n"
    events, stats = parse(data)
    assert [e.phase for e in events] == ["downloading", "extracting"]
    assert events[1].offset == data.index(b"\x1b[1;34m")
    assert stats.lines == 1


def test_ansi_codes_are_stripped_everywhere() -> None:
    data = b"\x1b[1;33m[" + TS.encode() + b" \x1b[31mINFO \x1b[32mrun/1-MainProcess\x1b[1;33m] \x1b[0m"
    data += b"[Example ID]: \x1b[1mabc\x1b[0m-WOS\x1b]0;title\x07\n"
    events, _ = parse(data)
    assert of(events, TaskStarted) == [TaskStarted("abc-WOS", None, 0)]


def test_nul_bytes_and_invalid_utf8_are_tolerated() -> None:
    data = b"\x00\x00\x00" + rec("[Example ID]: t@-1").replace(b"@", b"\xff\xfe") + rec("[Example ID]: \x00t-2\x00")
    events, _ = parse(data)
    assert [e.task_id for e in of(events, TaskStarted)] == ["t\ufffd\ufffd-1", "t-2"]


# --------------------------------------------------------------------------- junk and bounds


def test_random_bytes_never_raise() -> None:
    rng = random.Random(1234)
    blob = rng.randbytes(1 << 20)
    parser = LogParser(max_line_bytes=4096)
    pos = 0
    while pos < len(blob):
        n = rng.randrange(1, 70000)
        parser.feed(blob[pos : pos + n])
        pos += n
    parser.close()
    assert parser.statistics.bytes == len(blob)


def test_ten_megabytes_without_newline_stay_bounded() -> None:
    chunk = b"x" * 65536
    parser = LogParser()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(160):  # 10 MiB
            assert parser.feed(chunk) == []
        grown = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert grown < 4 * 65536 + 65536  # a few buffers of max_line_bytes, not 10 MB
    assert parser.statistics.overlong_lines == 1
    assert parser.close() == []


def test_overlong_line_is_truncated_counted_and_still_parsed() -> None:
    head = rec("Step 3: ")[:-1]
    data = head + b"A" * 500 + b"\n" + rec("Step 4: ok")
    for cuts in ([], [len(head) + 10], [5, 300, 400]):
        events, stats = parse(data, cuts, max_line_bytes=200)
        steps = of(events, StepStarted)
        assert [s.step for s in steps] == [3, 4]
        assert steps[0].action == "A" * (200 - len(head))  # the first max_line_bytes kept
        assert steps[1].offset == len(head) + 501
        assert stats.overlong_lines == 1


def test_line_of_exactly_max_bytes_is_not_overlong() -> None:
    events, stats = parse(b"y" * 100 + b"\n" + b"z" * 101 + b"\n", max_line_bytes=100)
    assert stats.overlong_lines == 1


def test_lone_cr_and_blank_lines() -> None:
    events, stats = parse(b"\r\r\r\n\n\r \r\t\n")
    assert events == []
    assert stats.lines == 3


@pytest.mark.parametrize("name", ["waa_plain", "waa_ansi"])
def test_trailing_junk_after_a_valid_run(name: str) -> None:
    data, _ = load(name)
    whole, _ = parse(data)
    junk = b"\x00\xff\x1b[\r\x1b\n[2024-05-06 junk] Step x\n" + random.Random(5).randbytes(5000) + b"\xe2\x9d"
    events, stats = parse(data + junk)
    assert events[: len(whole)] == whole
    assert not of(events[len(whole) :], TaskFinished)


def test_feed_after_close_is_an_error_and_close_is_idempotent() -> None:
    parser = LogParser()
    parser.feed(b"Task 1/2")
    assert of(parser.close(), TasksCounted) == [TasksCounted(0, 2, 0)]
    assert parser.close() == []
    with pytest.raises(RuntimeError):
        parser.feed(b"more")


@pytest.mark.parametrize("bad", [0, -1, 1.5, "64"])
def test_bad_max_line_bytes(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_line_bytes"):
        LogParser(max_line_bytes=bad)


def test_feed_accepts_bytearray_and_memoryview() -> None:
    data = rec("[Example ID]: t-1")
    assert parse(data, full=True)[0] == LogParser().feed(bytearray(data)) == LogParser().feed(memoryview(data))


# --------------------------------------------------------------------------- task results


def task(tid: str, dom: str = "notepad", steps: int = 2) -> bytes:
    out = rec(waalog.domain(dom)) + rec(waalog.example_id(tid))
    for i in range(1, steps + 1):
        out += rec(waalog.step(i, f"pyautogui.click({i})\n# Step {i + 50}: continuation"))
    return out


def results(data: bytes, **kw: Any) -> list[tuple[Any, ...]]:
    events, _ = parse(data, **kw)
    return [(e.task_id, e.score, e.error, e.steps) for e in of(events, TaskFinished)]


def test_result_then_finished() -> None:
    data = task("a") + rec(waalog.result(1.0)) + rec(waalog.finished("notepad", "a"))
    events, _ = parse(data)
    assert of(events, TaskFinished) == [TaskFinished("a", "notepad", 1.0, None, 2, data.rindex(b"[" + TS.encode()))]


def test_result_without_finished_is_emitted_at_the_next_task() -> None:
    # Emitted at the [Example ID] line (task() logs [Domain] first).
    second = len(task("a") + rec(waalog.result(0.0)) + rec(waalog.domain("notepad")))
    data = task("a") + rec(waalog.result(0.0)) + task("b")
    events, _ = parse(data)
    assert [(e.task_id, e.score, e.offset) for e in of(events, TaskFinished)] == [("a", 0.0, second)]
    # ... and before the next task's TaskStarted, so the monitor sees them in order.
    kinds = [type(e).__name__ for e in events if not isinstance(e, StepStarted)]
    assert kinds == ["TaskStarted", "TaskFinished", "TaskStarted"]


def test_last_task_result_is_not_lost_at_run_end_or_close() -> None:
    body = task("a") + rec(waalog.result(1.0))
    events, _ = parse(body + rec(waalog.average_score(1.0)))
    assert [type(e).__name__ for e in events if not isinstance(e, StepStarted)] == [
        "TaskStarted",
        "TaskFinished",
        "RunFinished",
    ]
    events, _ = parse(body)
    (done,) = of(events, TaskFinished)
    assert done.offset == len(body)  # flushed by close(): end-of-input offset


def test_exception_is_emitted_at_once_and_a_later_finished_is_ignored() -> None:
    data = task("a", steps=3) + rec(waalog.exception_in("notepad", "a", "boom: it broke"), level="ERROR")
    data += rec("Traceback (most recent call last):\n  File \"x.py\", line 1\n    Finished notepad/a\nValueError: boom")
    data += rec(waalog.result(1.0)) + rec(waalog.finished("notepad", "a"))
    assert results(data) == [("a", None, "boom: it broke", 3)]


def test_exception_with_empty_message_still_has_an_error() -> None:
    assert results(task("a") + rec("Exception in notepad/a: ")) == [("a", None, "exception without a message", 2)]


def test_no_result_and_no_exception_gives_no_event() -> None:
    assert results(task("a") + task("b") + rec(waalog.average_score(0.0))) == []
    assert results(task("a") + rec(waalog.no_examples_finished())) == []


def test_finished_twice_reports_once() -> None:
    data = task("a") + rec(waalog.result(1.0)) + rec(waalog.finished("notepad", "a")) * 2
    assert results(data) == [("a", 1.0, None, 2)]


def test_finished_with_score_suffix_and_without_result() -> None:
    assert results(task("a") + rec("Finished notepad/a score=0.5")) == [("a", 0.5, None, 2)]
    assert results(task("a") + rec("Finished notepad/a")) == [("a", None, None, 2)]


def test_finished_of_a_task_never_started_is_reported() -> None:
    assert results(rec(waalog.finished("chrome", "zzz"))) == [("zzz", None, None, None)]


@pytest.mark.parametrize(
    ("raw", "score", "errors"),
    [("1.00", 1.0, 0), ("0.00", 0.0, 0), ("0.25", 0.25, 0), ("1.5", 1.5, 1), ("-0.1", -0.1, 1),
     ("abc", None, 1), ("nan", None, 1), ("inf", None, 1), ("", None, 1), ("1e999", None, 1)],
)
def test_scores_odd_values_count_parse_errors(raw: str, score: float | None, errors: int) -> None:
    data = task("a") + rec(f"Result: {raw}") + rec(waalog.finished("notepad", "a"))
    events, stats = parse(data)
    assert [e.score for e in of(events, TaskFinished)] == [score]
    assert stats.parse_errors == errors


def test_average_score_parsing() -> None:
    assert of(parse(rec("Average score: 0.6666666666666666"))[0], RunFinished)[0].average_score == pytest.approx(2 / 3)
    events, stats = parse(rec("Average score: garbage"))
    assert of(events, RunFinished) == [RunFinished(None, 0)] and stats.parse_errors == 1
    assert of(parse(rec(waalog.no_examples_finished()))[0], RunFinished) == [RunFinished(None, 0)]


def test_steps_is_the_highest_step_seen() -> None:
    data = rec(waalog.example_id("a")) + rec("Step 1: x") + rec("Step 3: y") + rec("Step 2: z")
    data += rec(waalog.result(1.0)) + rec(waalog.finished("d", "a"))
    assert results(data) == [("a", 1.0, None, 3)]


def test_special_actions_are_steps_not_results() -> None:
    data = rec(waalog.example_id("a")) + b"".join(rec(waalog.step(i, a)) for i, a in enumerate(["DONE", "FAIL", "WAIT"], 1))
    events, _ = parse(data)
    assert [(e.step, e.action) for e in of(events, StepStarted)] == [(1, "DONE"), (2, "FAIL"), (3, "WAIT")]
    assert not of(events, TaskFinished)


def test_multi_line_action_keeps_first_line_and_ignores_continuations() -> None:
    data = rec(waalog.step(1, "import pyautogui\nStep 9: not a step\nFinished x/y\nAverage score: 1\nTask 3/4"))
    events, _ = parse(data)
    assert events == [StepStarted(1, "import pyautogui", 0)]


def test_a_run_restarted_in_the_same_log_reports_tasks_again() -> None:
    run = rec(waalog.worker_tasks(0, [("notepad", "a")])) + task("a") + rec(waalog.result(1.0))
    run += rec(waalog.finished("notepad", "a")) + rec(waalog.average_score(1.0))
    assert results(run + run) == [("a", 1.0, None, 2)] * 2


# --------------------------------------------------------------------------- run start


def test_left_tasks_then_worker_gives_one_run_start_with_the_worker_total() -> None:
    left = rec(waalog.left_tasks({"notepad": 5, "chrome": 7}))
    data = left + rec(waalog.worker_tasks(1, [("notepad", "a"), ("chrome", "b")]))
    events, _ = parse(data)
    assert events == [RunStarted(2, len(left))]


def test_left_tasks_alone_gives_the_sum_when_the_next_record_starts() -> None:
    data = rec("Args: Namespace()") + rec(waalog.left_tasks({"notepad": 5, "chrome": 7}))
    for tail in (rec("Agent: Thinking..."), task("a"), b""):
        events, _ = parse(data + tail)
        # At the record that ended the block (close(): the end of input), before its events.
        assert events[0] == RunStarted(12, len(data)), tail
        assert sum(isinstance(e, RunStarted) for e in events) == 1


def test_plain_lines_with_events_do_not_break_a_left_tasks_block() -> None:
    data = rec(waalog.left_tasks({"notepad": 2, "chrome": 1})).replace(b"chrome", b"  45%  1.2G  34s\nchrome")
    events, _ = parse(data + rec(waalog.worker_tasks(0, [("notepad", "a")])))
    assert [type(e) for e in events] == [PhaseSeen, RunStarted]
    assert events[1].total_tasks == 1 and not events[1].same_run
    events, _ = parse(data)
    assert events[1] == RunStarted(3, len(data))


def test_left_tasks_block_is_held_across_print_and_tqdm_lines() -> None:
    data = rec(waalog.left_tasks({"notepad": 2})) + b"Server is ready\n\rDomain:   0%|          | 0/3 [00:00<?, ?it/s]"
    data += rec(waalog.worker_tasks(0, [("notepad", "a")]))
    assert [e.total_tasks for e in parse(data)[0]] == [1]


def test_several_workers_in_one_stream_share_a_run() -> None:
    w0 = rec(waalog.worker_tasks(0, [("notepad", "a"), ("chrome", "b")]))
    w1 = rec(waalog.worker_tasks(1, [("chrome", "b"), ("vs_code", "c")]))  # "b" listed twice
    events, _ = parse(w0 + w1)
    assert [(e.total_tasks, e.same_run) for e in events] == [(2, False), (3, True)]
    # The same worker again, or a worker after the run's end, starts a new run.
    events, _ = parse(w0 + w0 + rec(waalog.average_score(0.0)) + w1)
    assert [(e.total_tasks, e.same_run) for e in of(events, RunStarted)] == [(2, False), (2, False), (2, False)]


def test_worker_list_quotes_and_empty_list() -> None:
    tasks = [("notepad", "it's-1"), ("chrome", 'say "hi"')]
    assert of(parse(rec(waalog.worker_tasks(0, tasks)))[0], RunStarted)[0].total_tasks == 2
    events, stats = parse(rec(waalog.worker_tasks(0, [])))
    assert events == [RunStarted(0, 0)] and stats.parse_errors == 0


def test_truncated_worker_list_counts_a_parse_error() -> None:
    tasks = [("notepad", f"{i:08d}-aaaa-bbbb-cccc-dddddddddddd-WOS") for i in range(200)]
    data = rec(waalog.worker_tasks(0, tasks))
    events, stats = parse(data, max_line_bytes=4096)
    (started,) = of(events, RunStarted)
    assert started.total_tasks is not None and 0 < started.total_tasks < 200
    assert stats.parse_errors == 1 and stats.overlong_lines == 1


# --------------------------------------------------------------------------- modes, phases, server


def test_simple_format_is_not_read_inside_a_waa_log() -> None:
    data = rec("Agent: Thinking...") + b"Task 5/30\nRunning task: x\nStep 12\n"
    assert parse(data)[0] == []
    events, _ = parse(b"Task 5/30\nRunning task: x\nStep 12\n")
    assert events == [TasksCounted(4, 30, 0), TaskStarted("x", None, 10), StepStarted(12, None, 26)]


def test_simple_task_count_out_of_range() -> None:
    events, stats = parse(b"Task 0/3\nTask 9/3\n")
    assert [(e.completed, e.total) for e in events] == [(0, 3), (3, 3)]
    assert stats.parse_errors == 2


def test_phase_is_reported_on_change_only() -> None:
    data = b"".join(line.encode() + b"\n" for _, line in waalog.DOCKUR_BOOT_SEQUENCE)
    events, _ = parse(data)
    assert [e.phase for e in events] == ["downloading", "extracting", "configuring", "building", "booting", "oobe", "ready"]


@pytest.mark.parametrize(("phase", "line"), [p for p in waalog.DOCKUR_BOOT_SEQUENCE])
def test_each_dockur_line_tells_its_phase(phase: str | None, line: str) -> None:
    for text in (line, waalog.ANSI_RE.sub(b"", line.encode()).decode()):
        events, _ = parse(text.encode() + b"\n")
        assert [e.phase for e in events] == ([phase] if phase else [])
    assert phase is None or phase in PHASES


def test_phase_lines_inside_a_waa_log_and_as_records() -> None:
    data = rec("Agent: Thinking...") + waalog.dockur_info("Booting Windows using QEMU").encode() + b"\n"
    data += rec(waalog.vm_ready())
    assert [e.phase for e in parse(data)[0]] == ["booting", "ready"]


def test_words_that_only_look_like_phases_are_ignored() -> None:
    data = rec("Step 1: x") + b"Extracting the zip now\nBuilding a list\nAdding numbers\n 50% done\n"
    assert of(parse(data)[0], PhaseSeen) == []


def test_server_readiness_lines() -> None:
    data = rec(waalog.failed_to_get_hello("Connection refused"), level="WARNING")
    data += (waalog.response_from_server() + "\n").encode()
    data += rec(waalog.response_from_server({"message": "busy"}))
    events, _ = parse(data)
    assert [(e.ready, e.message) for e in events] == [
        (False, "Connection refused"),
        (True, "{'message': 'Service is operational'}"),
        (False, "{'message': 'busy'}"),
    ]


# --------------------------------------------------------------------------- writer ↔ reader


@pytest.mark.parametrize("ansi", [False, True])
def test_every_waalog_writer_round_trips_through_the_parser(ansi: bool) -> None:
    def r(msg: str) -> bytes:
        return rec(msg, ansi=ansi)

    cases: list[tuple[bytes, list[ParsedEvent]]] = [
        (r(waalog.worker_tasks(3, [("notepad", "a"), ("settings", "b")])), [RunStarted(2, 0)]),
        (r(waalog.left_tasks({"notepad": 1, "chrome": 2})), [RunStarted(3, len(r(waalog.left_tasks({"notepad": 1, "chrome": 2}))))]),
        (r(waalog.domain("chrome")) + r(waalog.example_id("t-1")), [TaskStarted("t-1", "chrome", len(r(waalog.domain("chrome"))))]),
        (r(waalog.instruction("Open [Domain]: x")), []),
        (r(waalog.step(7, "DONE")), [StepStarted(7, "DONE", 0)]),
        (r(waalog.exception_in("d", "t", "bad")), [TaskFinished("t", "d", None, "bad", None, 0)]),
        (r(waalog.average_score(0.25)), [RunFinished(0.25, 0)]),
        (r(waalog.no_examples_finished()), [RunFinished(None, 0)]),
        (r(waalog.response_from_server()), [ServerReady(True, "{'message': 'Service is operational'}", 0)]),
        (r(waalog.failed_to_get_hello("x")), [ServerReady(False, "x", 0)]),
        (r(waalog.vm_ready()), [PhaseSeen("ready", 0)]),
    ]
    for data, want in cases:
        assert parse(data)[0] == want, data
    data = r(waalog.example_id("t")) + r(waalog.result(0.5)) + r(waalog.finished("d", "t"))
    assert results(data) == [("t", 0.5, None, None)]


def test_simple_writers_round_trip() -> None:
    lines = [waalog.simple_task_count(2, 9), waalog.simple_running_task("a"), waalog.simple_processing_task("b"), waalog.simple_step(4)]
    events, _ = parse("".join(x + "\n" for x in lines).encode())
    assert [type(e) for e in events] == [TasksCounted, TaskStarted, TaskStarted, StepStarted]
    assert (events[0].completed, events[1].task_id, events[2].task_id, events[3].step) == (1, "a", "b", 4)


def test_tqdm_writer_is_recognised_as_a_bar() -> None:
    for n in (0, 5, 10):
        bar = waalog.tqdm_redraw("Example", n, 10).encode()
        assert waalog.TQDM_RE.match(bar[1:]) is not None
    # What follows a bar on its segment is a line of its own (here: simple format).
    assert parse(waalog.tqdm_redraw("Example", 1, 2).encode() + b"Step 3\n")[0] == [StepStarted(3, None, 1)]


def test_prefix_writer_matches_prefix_reader() -> None:
    for ansi in (False, True):
        line = waalog.format_prefix(TS, "WARNING", "desktop_env", 1234, "SpawnProcess-2", ansi=ansi).encode() + b"msg"
        m = waalog.PREFIX_RE.match(waalog.ANSI_RE.sub(b"", line))
        assert m is not None and m.groups() == (TS.encode(), b"WARNING", b"desktop_env", b"1234", b"SpawnProcess-2")
        assert line.endswith(b"] msg") or line.endswith(b"] \x1b[0mmsg")
