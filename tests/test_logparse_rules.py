"""LogParser's newer rules, one at a time (the scenarios in test_logparse_upstream.py show them
together): record timestamps and workers, the new event kinds, how a raised task's failure kind
is settled, OSWorld's env tags, the task-id bound, and every new ``waalog`` writer read back."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from trio_sse import waalog
from trio_sse.logparse import (
    Evaluating,
    InfraHint,
    InstructionSeen,
    Interrupted,
    LogParser,
    ParsedEvent,
    PhaseSeen,
    RateLimited,
    RunArgs,
    RunStarted,
    ServerReady,
    StepStarted,
    TaskFinished,
    TaskStarted,
)

TS = waalog.format_timestamp(dt.datetime(2024, 11, 20, 14, 6, 12, 345000))
AT = "2024-11-20T14:06:12.345"


def rec(message: str, *, process: str = "MainProcess", level: str = "INFO", module: str = "run", ts: str = TS,
        ansi: bool = True) -> bytes:  # fmt: skip
    return waalog.format_record(ts, level, module, 225, process, message, ansi=ansi).encode()


def parse(data: bytes, **kw: Any) -> list[ParsedEvent]:
    parser = LogParser(**kw)
    events = parser.feed(data) + parser.close()
    # The same events one byte at a time: every test here also checks chunking.
    bytewise = LogParser(**kw)
    assert [e for i in range(len(data)) for e in bytewise.feed(data[i : i + 1])] + bytewise.close() == events
    return events


def of(events: list[ParsedEvent], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def task(tid: str, *, process: str = "MainProcess", env: str | None = None) -> bytes:
    return rec(waalog.domain("chrome", env=env), process=process) + rec(waalog.example_id(tid, env=env), process=process)


# --------------------------------------------------------------------------- at and worker


@pytest.mark.parametrize(
    ("ts", "at"),
    [(TS, AT), ("2024-11-20 14:06:12", "2024-11-20T14:06:12.000"), ("2024-11-20T14:06:12.5", "2024-11-20T14:06:12.000"),
     ("20.11.2024 14:06:12", None), ("14:06:12,345", None)],
)  # fmt: skip
def test_at_is_the_records_own_asctime(ts: str, at: str | None) -> None:
    (started,) = of(parse(rec(waalog.example_id("t"), ts=ts)), TaskStarted)
    assert started.at == at


def test_plain_lines_have_no_at_and_no_worker() -> None:
    events = parse(rec("Agent: Thinking...") + (waalog.response_from_server() + "\n").encode())
    assert [(e.at, e.worker) for e in events] == [(None, None)]


def test_worker_is_the_env_tag_then_the_process_then_none() -> None:
    data = rec("Step 1: x", process="Process-2")  # before any tag: the process name
    data += task("a", process="Process-2", env="Env 1")  # the tag, learned for Process-2
    data += rec("Step 2: y", process="Process-2")  # untagged: attributed through the process
    data += rec("Step 3: z")  # MainProcess: nobody in particular
    steps = of(parse(data), StepStarted)
    assert [(s.worker, s.task_id) for s in steps] == [("Process-2", None), ("Env 1", "a"), (None, None)]


def test_osworld_exception_names_its_env_without_a_space() -> None:
    data = task("a", process="Process-3", env="Env 2") + rec("Exception in Env2 chrome/a: boom", process="Process-3")
    data += rec("Step 1: x", process="Process-4")  # the next record (another env) settles it
    (done,) = of(parse(data), TaskFinished)
    assert (done.task_id, done.domain, done.worker, done.error) == ("a", "chrome", "Env 2", "boom")


def test_interleaved_envs_keep_their_own_task() -> None:
    data = task("a", process="P-1", env="Env 1") + task("b", process="P-2", env="Env 2")
    data += rec("Step 1: x", process="P-1") + rec("Step 1: y", process="P-2") + rec("Step 2: y", process="P-2")
    data += rec(waalog.result(1.0), process="P-2", module="lib_run_single") + rec(waalog.result(0.0), process="P-1", module="lib_run_single")
    done = of(parse(data), TaskFinished)
    assert [(d.task_id, d.worker, d.score, d.steps) for d in done] == [("b", "Env 2", 1.0, 2), ("a", "Env 1", 0.0, 1)]


def test_a_waa_message_with_slashes_is_not_read_as_an_env() -> None:
    data = task("abc") + rec("Exception in chrome/abc: could not open a/b c/d")
    (done,) = of(parse(data), TaskFinished)
    assert (done.domain, done.task_id, done.error, done.worker) == ("chrome", "abc", "could not open a/b c/d", None)


# --------------------------------------------------------------------------- new events


def test_run_args() -> None:
    ns = "Namespace(headless=False, max_steps=15, agent_name='navi', model=\"gpt-4o's\", worker_id=0)"
    (args,) = parse(rec(waalog.args(ns)))
    assert args == RunArgs(15, "gpt-4o's", "navi", ns, 0, AT, None)
    (bare,) = parse(rec(waalog.args("Namespace(domain='all', num_steps=3)")))
    assert (bare.max_steps, bare.model, bare.agent) == (None, None, None)


def test_instruction_evaluating_and_hints_belong_to_the_current_task() -> None:
    data = task("a") + rec(waalog.instruction("Open it.\nSecond line")) + rec(waalog.step(1, "x"))
    data += rec(waalog.failed_to_execute_command(500), level="ERROR", module="python")
    data += rec(waalog.failed_to_execute_command(404), level="ERROR", module="python")  # not a server error
    data += rec(waalog.command_error("HTTPConnectionPool(host='20.20.20.21', port=5000): Read timed out."), module="python")
    data += rec(waalog.running_evaluators(), module="lib_run_single") + rec(waalog.result(0.0)) + rec(waalog.finished("chrome", "a"))
    events = parse(data)
    assert of(events, InstructionSeen) == [InstructionSeen("a", "Open it.", of(events, InstructionSeen)[0].offset, AT)]
    assert [h.message[:26] for h in of(events, InfraHint)] == ["Failed to execute command.", "An error occurred while tr"]
    assert {h.task_id for h in of(events, InfraHint)} == {"a"}
    assert [e.task_id for e in of(events, Evaluating)] == ["a"]
    (done,) = of(events, TaskFinished)
    assert (done.instruction, done.infra_hints, done.failure_kind, done.during_evaluation) == ("Open it.", 2, "infra", True)


def test_readiness_records() -> None:
    data = rec(waalog.vm_not_ready_yet(), module="desktop_env") + rec(waalog.vm_up_and_ready(), module="desktop_env")
    data += task("a") + rec(waalog.vm_did_not_become_ready(20), level="ERROR", module="desktop_env")
    data += rec(waalog.result(0.0)) + rec(waalog.finished("chrome", "a"))
    events = parse(data)
    assert [(e.ready, e.message) for e in of(events, ServerReady)] == [
        (False, "VM not ready yet. Retrying in 5 seconds..."), (True, "VM is up and ready."),
        (False, "VM did not become ready after 20 attempts."),
    ]  # fmt: skip
    assert of(events, TaskFinished)[0].infra_hints == 1


def test_rate_limit_lines() -> None:
    url = "https://api.openai.com/v1/chat/completions"
    data = rec(waalog.http_request("POST", url, 429, "Too Many Requests"), module="_client")
    data += rec(waalog.retrying_request("/chat/completions", 0.4365), module="_base_client")
    data += rec(waalog.http_request("POST", url, 200, "OK"), module="_client")
    data += rec(waalog.http_request("POST", url, 500, "Internal Server Error"), module="_client")
    limited = of(parse(data), RateLimited)
    assert [(e.retry, e.message) for e in limited] == [
        (False, f'HTTP Request: POST {url} "HTTP/1.1 429 Too Many Requests"'),
        (True, "Retrying request to /chat/completions in 0.436500 seconds"),
    ]


def test_interrupted_print_and_osworld_signal_record() -> None:
    assert of(parse(b"Interrupted by 2, shutting down\r\n"), Interrupted) == [Interrupted(2, 0)]  # before any record
    data = rec("Agent: Thinking...") + (waalog.interrupted(15) + "\n").encode() + rec(waalog.received_signal(2))
    assert [(e.signal, e.at) for e in of(parse(data), Interrupted)] == [(15, None), (2, AT)]
    assert not of(parse(rec("Step 1: print('Interrupted by 2, shutting down')")), Interrupted)


def test_dockur_both_spellings_are_oobe() -> None:
    for text in ("Windows started succesfully, visit http://localhost:8006/", "Windows started successfully, visit x"):
        assert [e.phase for e in of(parse(waalog.dockur_info(text).encode() + b"\n"), PhaseSeen)] == ["oobe"]


# --------------------------------------------------------------------------- results


@pytest.mark.parametrize("text", ["Found a red circle in the screenshot", "No red circle found in the screenshot", "true or false"])
def test_result_with_words_is_neither_a_result_nor_a_parse_error(text: str) -> None:
    data = task("a") + rec(f"Result: {text}", module="microsoftpaint")
    parser = LogParser()
    events = parser.feed(data) + parser.close()
    assert not of(events, TaskFinished) and parser.statistics.parse_errors == 0


def test_osworld_result_ends_a_tagged_task_at_once() -> None:
    data = task("a", process="P-1", env="Env 1") + rec(waalog.result(1.0), process="P-1")
    events = LogParser().feed(data)  # no close(): no Finished line will come
    assert [(e.task_id, e.score, e.worker) for e in of(events, TaskFinished)] == [("a", 1.0, "Env 1")]


def test_max_steps_needs_the_budget_without_a_verdict() -> None:
    def run(*actions: str, done_line: bool = False) -> TaskFinished:
        data = rec(waalog.args("Namespace(max_steps=2)")) + task("a")
        data += b"".join(rec(waalog.step(i, a)) for i, a in enumerate(actions, 1))
        if done_line:
            data += rec(waalog.episode_done())
        data += rec(waalog.result(0.0)) + rec(waalog.finished("chrome", "a"))
        return of(parse(data), TaskFinished)[0]

    assert (run("x", "y").failure_kind, run("x", "y").max_steps_reached) == ("max_steps", True)
    assert run("x", "DONE").failure_kind == "agent"
    assert run("x", "FAIL").failure_kind == "agent"
    assert run("x", "y", done_line=True).failure_kind == "agent"
    assert run("x").failure_kind == "agent"


# --------------------------------------------------------------------------- a raised task's kind


REFUSED_TB = (
    "Traceback (most recent call last):\n"
    '  File "/usr/local/lib/python3.9/site-packages/urllib3/connection.py", line 174, in _new_conn\n'
    "    conn = connection.create_connection(\n"
    "ConnectionRefusedError: [Errno 111] Connection refused\n\n"
    "During handling of the above exception, another exception occurred:\n\n"
    "Traceback (most recent call last):\n"
    "RetryError: RetryError[<Future at 0x7f state=finished raised ConnectionError>]\n"
)


def raised(message: str, traceback: str | None, *, after: bytes = b"", evaluating: bool = False) -> TaskFinished:
    data = task("a") + rec(waalog.step(1, "x"))
    if evaluating:
        data += rec(waalog.running_evaluators())
    data += rec(waalog.exception_in("chrome", "a", message), level="ERROR")
    if traceback is not None:
        data += rec(traceback, level="ERROR")
    (done,) = of(parse(data + after), TaskFinished)
    return done


def test_the_message_alone_can_say_infra() -> None:
    msg = "HTTPConnectionPool(host='20.20.20.21', port=5000): Read timed out. (read timeout=90)"
    done = raised(msg, None)
    assert (done.failure_kind, done.vm_unreachable, done.score, done.steps) == ("infra", True, None, 1)


def test_the_traceback_can_say_infra() -> None:
    assert (raised("RetryError[<Future ...>]", REFUSED_TB).failure_kind, raised("x", REFUSED_TB).vm_unreachable) == ("infra", True)


def test_an_https_pool_is_not_the_guest() -> None:
    tb = "Traceback (most recent call last):\nrequests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.openai.com', port=443): Max retries exceeded\n"
    assert raised("Connection error.", tb).failure_kind == "agent"


def test_after_running_evaluators_it_is_the_evaluator_unless_the_guest_is_gone() -> None:
    assert raised("'NoneType' object is not subscriptable", None, evaluating=True).failure_kind == "evaluator"
    assert raised("boom", REFUSED_TB, evaluating=True).failure_kind == "infra"


def test_a_raised_task_is_emitted_without_waiting_for_the_next_record() -> None:
    # The traceback as continuation lines of the Exception record itself (no record after it):
    # settled at its root-cause line, before close() or any further record.
    data = task("a") + rec("Exception in chrome/a: boom\nTraceback (most recent call last):\n  File x\nValueError: boom")
    events = LogParser().feed(data)
    assert [(e.task_id, e.error, e.failure_kind) for e in of(events, TaskFinished)] == [("a", "boom", "agent")]


def test_the_held_task_keeps_its_place_in_the_log() -> None:
    # A print between the Exception record and its traceback record settles the task first.
    exc = rec(waalog.exception_in("chrome", "a", "boom"), level="ERROR")
    data = task("a") + exc + (waalog.response_from_server() + "\n").encode() + rec(REFUSED_TB, level="ERROR")
    events = parse(data)
    assert [type(e).__name__ for e in events] == ["TaskStarted", "TaskFinished", "ServerReady"]
    assert events[1].offset == len(task("a")) and events[1].failure_kind == "agent"


def test_a_traceback_record_of_another_process_is_not_the_held_tasks() -> None:
    data = task("a", process="P-1", env="Env 1") + rec("Exception in Env1 chrome/a: boom", process="P-1")
    data += rec(REFUSED_TB, process="P-2", level="ERROR")
    (done,) = of(parse(data), TaskFinished)
    assert (done.failure_kind, done.vm_unreachable) == ("agent", False)


def test_close_settles_a_held_task() -> None:
    data = task("a") + rec(waalog.exception_in("chrome", "a", "boom"), level="ERROR")
    parser = LogParser()
    assert not of(parser.feed(data), TaskFinished)
    assert [(e.task_id, e.offset) for e in of(parser.close(), TaskFinished)] == [("a", len(task("a")))]


# --------------------------------------------------------------------------- task ids


def test_task_ids_are_cut_to_the_same_bound_everywhere() -> None:
    long = "a" * 300 + "-WOS"
    data = rec(waalog.worker_tasks(0, [("chrome", long)])) + task(long) + rec(waalog.result(1.0)) + rec(waalog.finished("chrome", long))
    events = parse(data)
    cut = "a" * waalog.TASK_ID_MAX_BYTES
    assert of(events, RunStarted)[0].tasks == (("chrome", cut),)
    assert [e.task_id for e in of(events, TaskStarted)] == [e.task_id for e in of(events, TaskFinished)] == [cut]


def test_a_worker_list_cut_inside_its_last_tuple_still_counts_it() -> None:
    tasks = [("notepad", "x-WOS"), ("chrome", "y" * 500)]
    data = rec(waalog.worker_tasks(0, tasks))
    parser = LogParser(max_line_bytes=200)
    (started,) = of(parser.feed(data) + parser.close(), RunStarted)
    assert started.total_tasks == 2 and started.tasks[1][0] == "chrome" and set(started.tasks[1][1]) == {"y"}
    assert parser.statistics.parse_errors == 1


# --------------------------------------------------------------------------- writers ↔ reader


@pytest.mark.parametrize("ansi", [False, True])
def test_every_new_waalog_writer_round_trips(ansi: bool) -> None:
    def r(msg: str, process: str = "MainProcess") -> bytes:
        return rec(msg, ansi=ansi, process=process)

    cases: list[tuple[bytes, type, dict[str, Any]]] = [
        (r(waalog.args("Namespace(max_steps=7, model='m', agent_name='navi')")), RunArgs, {"max_steps": 7, "model": "m", "agent": "navi"}),
        (r(waalog.instruction("Do it.", env="Env 3")), InstructionSeen, {"instruction": "Do it.", "worker": "Env 3"}),
        (r(waalog.running_evaluators()), Evaluating, {"task_id": None}),
        (r(waalog.vm_up_and_ready()), ServerReady, {"ready": True}),
        (r(waalog.vm_not_ready_yet()), ServerReady, {"ready": False}),
        (r(waalog.vm_did_not_become_ready(3)), ServerReady, {"ready": False, "message": "VM did not become ready after 3 attempts."}),
        (r(waalog.failed_to_execute_command(503)), InfraHint, {"message": "Failed to execute command. Status code: 503"}),
        (r(waalog.command_error("boom")), InfraHint, {"message": "An error occurred while trying to execute the command: boom"}),
        (r(waalog.http_request("POST", "https://x/v1", 429, "Too Many Requests")), RateLimited, {"retry": False}),
        (r(waalog.retrying_request("/v1", 1.5)), RateLimited, {"retry": True, "message": "Retrying request to /v1 in 1.500000 seconds"}),
        ((waalog.interrupted(2) + "\n").encode(), Interrupted, {"signal": 2}),
        (r(waalog.received_signal(15)), Interrupted, {"signal": 15}),
        (r(waalog.example_id("t-1", env="EnvProcess-2"), process="EnvProcess-2"), TaskStarted, {"task_id": "t-1", "worker": "EnvProcess-2"}),
    ]  # fmt: skip
    for data, kind, fields in cases:
        events = parse(data)
        assert [type(e) for e in events] == [kind], data
        assert {k: getattr(events[0], k) for k in fields} == fields, data
    data = r(waalog.domain("gimp", env="Env 1")) + r(waalog.example_id("t", env="Env 1"))
    data += r(waalog.exception_in("gimp", "t", "bad", env="Env1")) + r(waalog.episode_done())
    (done,) = of(parse(data), TaskFinished)
    assert (done.task_id, done.domain, done.error, done.worker) == ("t", "gimp", "bad", "Env 1")


def test_run_started_gives_domains_from_the_worker_list_or_the_left_tasks_block() -> None:
    left = rec(waalog.left_tasks({"notepad": 2, "chrome": 1}))
    (alone,) = of(parse(left + rec(waalog.args("Namespace(max_steps=3)"))), RunStarted)
    assert (alone.total_tasks, alone.domains, alone.tasks, alone.worker_id) == (3, (("notepad", 2), ("chrome", 1)), (), None)
    worker = rec(waalog.worker_tasks(1, [("chrome", "b"), ("notepad", "a"), ("chrome", "c")]))
    (started,) = of(parse(left + worker), RunStarted)
    assert (started.worker_id, started.domains) == (1, (("chrome", 2), ("notepad", 1)))
    assert started.tasks == (("chrome", "b"), ("notepad", "a"), ("chrome", "c"))
