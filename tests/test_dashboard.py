"""The dashboard (SPEC §6) in a real headless Chromium against a real server.

A browser scenario is a plain function using Playwright's sync API, run in a worker thread
(``trio.to_thread.run_sync``) while the server runs in Trio; it calls back into Trio with
``trio.from_thread.run`` (to restart the server mid-run). Checked: the progress bar and counter
advance, one row per completed task with the right ✓/✗ and score, the connection indicator,
reconnect and resume after a server restart with no duplicate row, log text shown as text
(no script runs), ``?token=`` passed on, a 4xx shown and final, no console errors, and the
page's width on a phone. The agent view (issue 12): each worker's current task with its
instruction and action, never lagging the results table; the trajectory dialog (keyboard,
and a clear word while the server has no trajectory API); the per-domain table, durations,
failure kinds, the failures-only filter, the export links and the success threshold; the wall
time and ETA on the log's own clock; badges greyed as "last known" during a server outage; a
stall banner; hostile instruction/action text; an overview row per target; an interrupted run.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
from browser import PHONE, PageWatch, open_page, restartable_server

from trio_sse import waalog
from trio_sse.config import Settings, TargetSpec
from trio_sse.sources.simulate import plan_run, render_run, simulate, task_folder
from trio_sse.testing import free_port, running_server, simulated_run, simulated_server

pytestmark = pytest.mark.browser

GUARD = 90  # seconds: a guard against a hang, never a wait

# Records every change of the connection indicator and of each card's completed counter, from
# before the page's own script runs.
RECORDER = """
window.__states = [];
window.__completed = [];
new MutationObserver((records) => {
  for (const r of records) {
    if (r.attributeName === 'data-state' && r.target.id === 'connection') window.__states.push(r.target.dataset.state);
    if (r.attributeName === 'data-completed') window.__completed.push(Number(r.target.dataset.completed));
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-state', 'data-completed']});
// After every change to a results table: how far the counter lags behind its rows.
window.__lag = [];
new MutationObserver(() => {
  for (const card of document.querySelectorAll('[data-target]')) {
    const rows = card.querySelectorAll('.results tbody tr').length;
    window.__lag.push(rows - Number(card.dataset.completed || 0));
  }
}).observe(document, {subtree: true, childList: true});
"""

CARD = "[data-target='local']"


def rows(page: Any) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        f"{CARD} .results tbody tr",
        """trs => trs.map(tr => ({
            id: tr.dataset.taskId,
            task: tr.querySelector('.col-task').textContent,
            domain: tr.querySelector('.col-domain').textContent,
            result: tr.querySelector('.col-result').textContent,
            score: tr.querySelector('.col-score').textContent,
            error: tr.querySelector('.col-error').textContent,
        }))""",
    )


def wait_finished(page: Any, tasks: int) -> None:
    page.wait_for_function(
        """([sel, n]) => {
            const card = document.querySelector(sel);
            return card && card.dataset.finished === 'true' && card.dataset.completed === String(n)
                && card.querySelectorAll('.results tbody tr').length === n;
        }""",
        arg=[CARD, tasks],
        timeout=30_000,
    )


def expected_row(t: Any) -> dict[str, str]:
    return {
        "id": t.task_id,
        "task": t.task_id,
        "domain": t.domain,
        "result": "✓" if t.success else "✗",
        "score": "N/A" if t.score is None else f"{t.score:.2f}",
        "error": t.error or "",
    }


def no_horizontal_overflow(page: Any) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"))


# ------------------------------------------------------------------ a live run and a restart


async def test_follows_a_run_and_resumes_after_a_server_restart(tmp_path: Path, chromium: str) -> None:
    log = tmp_path / "waa.log"
    target = TargetSpec(name="local", log=str(log), process_pattern=None)
    settings = replace(Settings(port=free_port(), targets=(target,)), retry_ms=500)
    tasks = 8

    async with restartable_server(settings) as server:
        async with simulated_run(log, tasks=tasks, step_seconds=0.15) as run:

            async def restart() -> bool:
                await server.restart()
                return not run.done.is_set()

            def scenario() -> tuple[PageWatch, dict[str, Any]]:
                with open_page(chromium) as w:
                    page = w.page
                    page.add_init_script(RECORDER)
                    page.goto(f"{server.url}/?interval=1")
                    page.wait_for_selector("#connection[data-state='live']")
                    # Some results, and the bar part way: then the server goes away mid-run.
                    page.wait_for_function(
                        "sel => document.querySelectorAll(sel + ' .results tbody tr').length >= 2", arg=CARD
                    )
                    before = len(w.console_errors)
                    mid_run = trio.from_thread.run(restart)
                    page.wait_for_selector("#connection[data-state='live']")
                    # While the server was down the browser logged its failed reconnects
                    # (network errors, not ours); set them aside, none may follow.
                    down = w.console_errors[before:]
                    del w.console_errors[before:]
                    wait_finished(page, tasks)
                    out = {
                        "mid_run": mid_run,
                        "down": down,
                        "rows": rows(page),
                        "states": page.evaluate("window.__states"),
                        "completed": page.evaluate("window.__completed"),
                        "lag": page.evaluate("window.__lag"),
                        "counter": page.text_content(f"{CARD} [data-field=counter]"),
                        "bar": page.eval_on_selector(f"{CARD} [data-field=bar]", "el => el.style.width"),
                        "run_end": page.text_content(f"{CARD} [data-field=run-end]"),
                        "pass_rate": page.text_content(f"{CARD} [data-field=pass-rate]"),
                        "indicator": page.text_content("#connection"),
                        "current": page.text_content(f"{CARD} [data-field=current-task]"),
                    }
                    page.screenshot(path=str(tmp_path / "dashboard-laptop.png"), full_page=True)
                    page.set_viewport_size(PHONE)
                    out["phone_fits"] = no_horizontal_overflow(page)
                    page.screenshot(path=str(tmp_path / "dashboard-phone.png"), full_page=True)
                    return w, out

            with trio.fail_after(GUARD):
                watch, out = await trio.to_thread.run_sync(scenario)

    assert out["mid_run"], "the restart must happen while the run is still being written"
    assert server.starts == 2
    # Exactly one row per task, newest first, each with the right mark, score and error.
    assert out["rows"] == [expected_row(t) for t in reversed(run.expected)]
    # The indicator followed the connection: live, then reconnecting, then live again.
    states = out["states"]
    assert "reconnecting" in states and states[-1] == "live", states
    assert states.index("live") < states.index("reconnecting")
    assert out["indicator"] == "live"
    # The bar advanced step by step (never backwards) to the end.
    completed = out["completed"]
    assert completed == sorted(completed) and completed[-1] == tasks, completed
    assert any(0 < c < tasks for c in completed), completed
    # progress is coalesced to one per interval, results are not: the counter never shows
    # fewer tasks than the table does
    assert max(out["lag"]) <= 0, out["lag"]
    assert out["counter"] == f"{tasks} / {tasks} tasks · 100%"
    assert float(out["bar"].rstrip("%")) == 100
    assert out["current"] == "finished"
    passed = sum(t.success for t in run.expected)
    assert out["run_end"].startswith(f"Run complete: {passed} / {tasks} passed")
    assert out["pass_rate"].startswith(f"{passed} / {tasks} (")
    assert out["phone_fits"], "no sideways scrolling on a phone"
    assert watch.problems() == []
    assert all(e.startswith("Failed to load resource: net::ERR_CONNECTION_") for e in out["down"]), out["down"]
    assert (tmp_path / "dashboard-laptop.png").stat().st_size > 10_000
    assert (tmp_path / "dashboard-phone.png").stat().st_size > 10_000


async def test_a_page_opened_mid_run_counts_the_replayed_results_at_once(tmp_path: Path, chromium: str) -> None:
    """The replay comes before the first progress: the counter must not wait for it."""
    tasks = 4
    async with simulated_server(tmp_path, tasks=tasks, step_seconds=0) as sim:
        await sim.done.wait()

        def scenario() -> tuple[PageWatch, list[int]]:
            with open_page(chromium) as w:
                w.page.add_init_script(RECORDER)
                w.page.goto(f"{sim.url}/?interval=60")
                wait_finished(w.page, tasks)
                return w, w.page.evaluate("window.__lag")

        with trio.fail_after(GUARD):
            watch, lag = await trio.to_thread.run_sync(scenario)
    assert lag and max(lag) <= 0, lag
    assert watch.problems() == []


# ------------------------------------------------------------------ hostile log text


XSS_ID = "<img/src=x/onerror=window.__xss=1>"
XSS_ID2 = '"><svg/onload=window.__xss=2>'
XSS_DOMAIN = "<u>dom"
XSS_ERROR = "<img src=x onerror=\"window.__xss=3\"> & <script>window.__xss=4</script>"


def hostile_log() -> bytes:
    ts = "2024-05-06 10:11:12,345"

    def rec(message: str, module: str = "lib_run_single") -> str:
        return waalog.format_record(ts, "INFO", module, 42, "MainProcess", message, ansi=False)

    lines = [
        rec(waalog.worker_tasks(0, [(XSS_DOMAIN, XSS_ID), (XSS_DOMAIN, XSS_ID2)]), module="run"),
        rec(waalog.domain(XSS_DOMAIN)),
        rec(waalog.example_id(XSS_ID)),
        rec(waalog.step(1, "DONE")),
        rec(waalog.result(1.0)),
        rec(waalog.finished(XSS_DOMAIN, XSS_ID)),
        rec(waalog.domain(XSS_DOMAIN)),
        rec(waalog.example_id(XSS_ID2)),
        rec(waalog.step(1, "pyautogui.click(1, 2)")),
        rec(waalog.exception_in(XSS_DOMAIN, XSS_ID2, XSS_ERROR)),
        rec(waalog.average_score(0.5), module="run"),
    ]
    return "".join(lines).encode()


async def test_log_text_is_shown_as_text_never_run(tmp_path: Path, chromium: str) -> None:
    log = tmp_path / "waa.log"
    log.write_bytes(hostile_log())
    # A hostile VNC URL too: it must not become a javascript: link.
    target = TargetSpec(name="local", log=str(log), process_pattern=None, vnc_url="javascript:window.__xss=5")
    async with running_server(Settings(port=0, targets=(target,))) as server:

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.goto(f"{server.url}/?interval=1")
                wait_finished(page, 2)
                return w, {
                    "rows": rows(page),
                    "xss": page.evaluate("typeof window.__xss"),
                    "elements": page.evaluate(
                        "document.querySelectorAll('#targets img, #targets svg, #targets script, #targets u').length"
                    ),
                    "vnc_href": page.get_attribute(f"{CARD} [data-field=vnc]", "href"),
                    "vnc_hidden": page.eval_on_selector(f"{CARD} [data-field=vnc]", "el => el.hidden"),
                }

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)

    assert out["xss"] == "undefined"
    assert out["elements"] == 0
    assert out["rows"] == [
        {"id": XSS_ID2, "task": XSS_ID2, "domain": XSS_DOMAIN, "result": "✗", "score": "N/A", "error": XSS_ERROR},
        {"id": XSS_ID, "task": XSS_ID, "domain": XSS_DOMAIN, "result": "✓", "score": "1.00", "error": ""},
    ]
    assert out["vnc_href"] is None and out["vnc_hidden"] is True
    assert watch.problems() == []


# ------------------------------------------------------------------ token, refusals


async def test_token_from_the_page_url_is_passed_on(tmp_path: Path, chromium: str) -> None:
    async with simulated_server(tmp_path, tasks=3, step_seconds=0.01, token="s3cret") as sim:
        await sim.done.wait()

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                refused_status = page.request.get(f"{sim.url}/").status
                page.goto(f"{sim.url}/?token=s3cret&interval=1")
                wait_finished(page, 3)
                page.wait_for_selector("#connection[data-state='live']")
                return w, {
                    "refused": refused_status,
                    "styled": page.eval_on_selector(CARD, "el => getComputedStyle(el).borderTopLeftRadius"),
                    "rows": len(rows(page)),
                }

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
    assert out["refused"] == 401
    assert out["styled"] == "10px", "the stylesheet loads with the page's token"
    assert out["rows"] == 3
    assert watch.problems() == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("interval=abc", "interval must be an integer from 1 to 60, got 'abc'"),
        ("interval=1&target=nosuch", "unknown target 'nosuch'"),
    ],
)
async def test_a_refused_stream_is_shown_and_final(tmp_path: Path, chromium: str, query: str, message: str) -> None:
    async with simulated_server(tmp_path, tasks=1, step_seconds=0.001) as sim:

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.goto(f"{sim.url}/?{query}")
                page.wait_for_selector("#connection[data-state='stopped']")
                return w, {
                    "detail": page.text_content("#connection-detail"),
                    "indicator": page.text_content("#connection"),
                }

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
    assert out["indicator"] == "stopped"
    assert out["detail"] == message or message in out["detail"]
    assert watch.page_errors == []  # the browser logs the refused request; our code throws nothing


# ------------------------------------------------------------------ an app "error" event


async def test_an_app_error_event_is_news_not_a_broken_connection(tmp_path: Path, chromium: str) -> None:
    # The log path is first a directory: the source reports it (SourceDown → an `error`
    # event, which shares its name with EventSource's own connection-error event).
    log = tmp_path / "waa.log"
    target = TargetSpec(name="local", log=str(log), process_pattern=None)
    async with running_server(Settings(port=0, targets=(target,))) as server:

        def make_dir() -> None:
            log.mkdir()

        async def replace_dir_with_a_run() -> None:
            log.rmdir()
            async with simulated_run(log, tasks=2, step_seconds=0.01) as run:
                await run.done.wait()

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.add_init_script(RECORDER)
                page.goto(f"{server.url}/?interval=1")
                page.wait_for_selector("#connection[data-state='live']")
                make_dir()
                page.wait_for_selector(f"{CARD} [data-field=error]:not([hidden])")
                out = {
                    "card_error": page.text_content(f"{CARD} [data-field=error]"),
                    "panel": page.text_content("#errors"),
                    "phase": page.text_content(f"{CARD} [data-field=phase]"),
                }
                # The stream is still the same one: a run written now shows up.
                trio.from_thread.run(replace_dir_with_a_run)
                wait_finished(page, 2)
                out["states"] = page.evaluate("window.__states")
                return w, out

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
    assert "not a regular file" in out["card_error"]
    assert "[local]" in out["panel"] and "not a regular file" in out["panel"]
    assert out["phase"] == "offline"
    assert out["states"] == ["connecting", "live"], "an app error event must not touch the connection"
    assert watch.problems() == []


# ------------------------------------------------------------------ the seed documents' page


SEED_PAGE = Path(__file__).parent / "data" / "seed_page.html"


async def test_the_original_endpoints_example_page_works_unchanged(tmp_path: Path, chromium: str) -> None:
    async with simulated_server(tmp_path, tasks=4, step_seconds=0.02) as sim:

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                # Served from the monitor's own origin (its relative EventSource URL needs
                # that), without the server knowing the page.
                page.route(
                    f"{sim.url}/seed.html",
                    lambda route: route.fulfill(body=SEED_PAGE.read_text(), content_type="text/html; charset=utf-8"),
                )
                page.goto(f"{sim.url}/seed.html")
                page.wait_for_function("() => document.querySelectorAll('#results-table tbody tr').length === 4")
                page.wait_for_function("() => document.getElementById('task-counter').textContent === '4 / 4 tasks'")
                return w, {
                    "vm": page.text_content("#vm-status"),
                    "rows": page.eval_on_selector_all(
                        "#results-table tbody tr", "trs => trs.map(tr => [...tr.cells].map(td => td.textContent.trim()))"
                    ),
                }

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
    assert out["vm"] == "Ready"
    assert [r[:2] for r in out["rows"]] == [[t.task_id, "✓" if t.success else "✗"] for t in sim.expected]
    assert watch.page_errors == []


# ------------------------------------------------------------------ a new run in the same log


async def test_a_new_run_replaces_the_results_table(tmp_path: Path, chromium: str) -> None:
    log = tmp_path / "waa.log"
    target = TargetSpec(name="local", log=str(log), process_pattern=None)

    def write_run(seed: int, tasks: int) -> list[Any]:
        """A whole run at once, as a new file in the log's place (the benchmark restarted).
        Its first line names it: the server tells runs apart by their first line."""
        plan = plan_run(tasks, seed=seed)
        data = f"run {seed}\n".encode() + b"".join(chunk for _, chunk in render_run(plan, ansi=False))
        tmp = log.with_name("new.log")
        tmp.write_bytes(data)
        os.replace(tmp, log)
        return list(plan)

    async with running_server(Settings(port=0, targets=(target,))) as server:

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.goto(f"{server.url}/?interval=1")
                page.wait_for_selector("#connection[data-state='live']")
                first = write_run(0, 3)
                wait_finished(page, 3)
                rows_first = rows(page)
                second = write_run(1, 2)
                wait_finished(page, 2)
                return w, {"first": first, "second": second, "rows_first": rows_first, "rows": rows(page)}

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
    assert out["rows_first"] == [expected_row(t) for t in reversed(out["first"])]
    assert out["rows"] == [expected_row(t) for t in reversed(out["second"])]
    assert watch.problems() == []


# ================================================================== the agent view (issue 12)
# The parts that need the results API (the live screenshot from `step` events, the steps of
# a trajectory) are checked here for how they degrade while the server has no such API: no
# screenshot shown, the trajectory dialog shows what the result says and a clear message.

NOT_FOUND = "Failed to load resource: the server responded with a status of 404"


def record(when: dt.datetime, message: str, module: str = "lib_run_single", level: str = "INFO") -> str:
    return waalog.format_record(waalog.format_timestamp(when), level, module, 42, "MainProcess", message, ansi=False)


def task_records(
    start: dt.datetime, domain: str, task_id: str, instruction: str, actions: list[str], *,
    score: float | None = None, error: str | None = None, end: dt.datetime | None = None,
) -> str:
    """One WAA task, its records one second apart from ``start``; finished at ``end`` (the
    ``Finished`` or ``Exception`` record's time) when a score or an error is given."""
    t = start
    out = []
    for message in (waalog.domain(domain), waalog.example_id(task_id), waalog.instruction(instruction)):
        out.append(record(t, message, module="run"))
        t += dt.timedelta(seconds=1)
    for n, action in enumerate(actions, start=1):
        out.append(record(t, waalog.step(n, action)))
        t += dt.timedelta(seconds=1)
    end = end or t
    if score is not None:
        out.append(record(end, waalog.result(score)))
        out.append(record(end, waalog.finished(domain, task_id), module="run"))
    elif error is not None:
        out.append(record(end, waalog.exception_in(domain, task_id, error), module="run", level="ERROR"))
        out.append(record(end, "Traceback (most recent call last):\nValueError: " + error, module="run", level="ERROR"))
    return "".join(out)


def run_header(when: dt.datetime, tasks: list[tuple[str, str]]) -> str:
    return record(when, "Args: Namespace(agent_name='navi', model='gpt-4o', max_steps=15)", module="run") + record(
        when, waalog.worker_tasks(0, tasks), module="run"
    )


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(text)


# After every change anywhere in a card: a results row whose task is still shown as current
# (by the stats or a worker panel), or a counter behind the table, is a lag. The observer runs
# right after the script that changed the page, before anything else: a deterministic check.
LAG_RECORDER = """
window.__lagged = [];
window.__samples = [];
window.__shots = 0;
new MutationObserver(() => {
  for (const card of document.querySelectorAll('section.target')) {
    const ids = new Set([...card.querySelectorAll('.results tbody tr')].map(tr => tr.dataset.taskId));
    if (ids.size > Number(card.dataset.completed || 0)) window.__lagged.push('counter ' + ids.size);
    const current = card.querySelector('[data-field=current-task]').textContent;
    if (ids.has(current)) window.__lagged.push('current ' + current);
    for (const w of card.querySelectorAll('.worker')) {
      if (ids.has(w.dataset.task)) window.__lagged.push('worker ' + w.dataset.task);
      if (!w.querySelector('[data-field=w-shot-box]').hidden) window.__shots += 1;
      if (w.dataset.task) window.__samples.push([w.dataset.task, w.querySelector('[data-field=w-instruction]').textContent,
                                                 w.querySelector('[data-field=w-action]').textContent, w.dataset.step]);
    }
  }
}).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
"""


async def test_the_current_task_shows_instruction_and_action_and_never_lags_the_table(tmp_path: Path, chromium: str) -> None:
    tasks = 5
    async with simulated_server(tmp_path, tasks=tasks, step_seconds=0.25) as sim:

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.add_init_script(LAG_RECORDER)
                page.goto(f"{sim.url}/?interval=1")
                wait_finished(page, tasks)
                return w, {
                    "lagged": page.evaluate("window.__lagged"),
                    "samples": page.evaluate("window.__samples"),
                    "shots": page.evaluate("window.__shots"),
                    "workers_left": page.eval_on_selector_all(f"{CARD} .worker", "ws => ws.length"),
                    "step": page.text_content(f"{CARD} [data-field=current-step]"),
                }

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
    assert out["lagged"] == [], out["lagged"]
    plan = {t.task_id: t for t in sim.expected}
    samples = out["samples"]
    # The worker's panel showed the running tasks, each with its own instruction and one of
    # its own actions, and a step within the task's steps.
    assert len({s[0] for s in samples}) >= 2, samples
    assert any(s[1] and s[2] for s in samples), samples
    for task_id, instruction, action, step in samples:
        t = plan[task_id]
        assert instruction in ("", t.instruction), (task_id, instruction)
        # progress.action: the step's first line (the parser keeps that much of a multi-line one)
        assert action == "" or action in {a.splitlines()[0] for a in t.actions}, (task_id, action)
        assert step == "" or 1 <= int(step) <= t.steps, (task_id, step)
    # No `step` events from this server: the screenshot stays hidden (no broken image).
    assert out["shots"] == 0
    assert out["workers_left"] == 0, "a finished run has no current task"
    assert out["step"] == "—"
    assert watch.problems() == []


async def finished_run_with_results(tmp_path: Path, tasks: int = 8) -> tuple[Path, Path, tuple[Any, ...]]:
    """A whole simulated run written at once, with its results folder (traj.jsonl and PNG
    screenshots per task; the showcase: a task raising, one running into max_steps)."""
    log, results = tmp_path / "waa.log", tmp_path / "results"
    done = await simulate(log, tasks=tasks, step_seconds=0, seed=3, results_dir=results, showcase=True)
    return log, results, done.tasks


def with_results(log: Path, results: Path, **kw: Any) -> Settings:
    target = TargetSpec(name="local", log=str(log), results=str(results), process_pattern=None)
    return Settings(port=0, targets=(target,), **kw)


async def test_a_results_row_opens_its_trajectory_and_a_missing_one_is_said(tmp_path: Path, chromium: str) -> None:
    """The real trajectory (GET api/tasks/<id>, with the page's token): every step's action and
    its screenshot, lazy, carrying the token (without it: 401); ← / → from step to step; the
    error with its traceback; Esc closes. A task whose folder is gone: the result's own facts
    and the server's reason, not an error."""
    log, results, plan = await finished_run_with_results(tmp_path)
    longest = max(plan, key=lambda t: t.steps)  # the showcase's max_steps task: 15 steps
    raised = next(t for t in plan if t.error)
    gone = next(t for t in plan if t is not longest and t is not raised and not t.error)
    shutil.rmtree(results / task_folder(gone))
    async with running_server(with_results(log, results, token="s3cret")) as server:

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.goto(f"{server.url}/?token=s3cret&interval=1")
                wait_finished(page, len(plan))
                dialog = "#trajectory"
                button = page.locator(f"{CARD} .results tr[data-task-id='{longest.task_id}'] .task-link")
                button.focus()
                page.keyboard.press("Enter")
                page.wait_for_selector(f"{dialog}[data-state=loaded]")
                out: dict[str, Any] = {
                    "open": page.evaluate("document.getElementById('trajectory').open"),
                    "title": page.text_content(f"{dialog} [data-field=task]"),
                    "facts": {
                        f: page.text_content(f"{dialog} [data-field={f}]")
                        for f in ("target", "domain", "result", "score", "failure", "steps-count", "worker")
                    },
                    "status": page.text_content(f"{dialog} [data-field=status]"),
                    "error_hidden": page.eval_on_selector(f"{dialog} [data-field=error]", "el => el.hidden"),
                    "steps": page.eval_on_selector_all(
                        f"{dialog} .traj-step",
                        """lis => lis.map(li => ({step: li.dataset.step, head: li.querySelector('.step-head').textContent,
                                                  action: li.querySelector('.step-action').textContent,
                                                  img: li.querySelector('img') && {src: li.querySelector('img').getAttribute('src'),
                                                      loading: li.querySelector('img').loading}}))""",
                    ),
                    "first": page.get_attribute(dialog, "data-step"),
                }
                # Not yet scrolled to: the last step's screenshot is not loaded (lazy).
                last_img = f"{dialog} .traj-step:last-child img"
                out["last_loaded_at_open"] = page.eval_on_selector(last_img, "img => img.naturalWidth > 0")
                for _ in range(longest.steps - 1):
                    page.keyboard.press("ArrowRight")
                page.wait_for_selector(f"{dialog}[data-step='{longest.steps}']")
                page.wait_for_function("sel => document.querySelector(sel).naturalWidth > 0", arg=last_img)
                out["last_width"] = page.eval_on_selector(last_img, "img => img.naturalWidth")
                page.keyboard.press("ArrowRight")  # past the last: stays
                page.keyboard.press("ArrowLeft")
                page.wait_for_selector(f"{dialog}[data-step='{longest.steps - 1}']")
                out["current"] = page.eval_on_selector_all(f"{dialog} .traj-step[aria-current=step]", "s => s.map(li => li.dataset.step)")
                # The screenshot URL carries the page's token; without it the server says 401.
                src = out["steps"][0]["img"]["src"]
                absolute = page.evaluate("s => new URL(s, document.baseURI).toString()", src)
                with_token = page.request.get(absolute)
                without = page.request.get(absolute.replace("&token=s3cret", "").replace("?token=s3cret", "?"))
                out["with_token"] = (with_token.status, with_token.headers["content-type"], with_token.body()[:8])
                out["without_token"] = (without.status, without.json())
                page.keyboard.press("Escape")
                page.wait_for_selector(f"{dialog}[data-state=closed]", state="attached")
                out["focus"] = page.evaluate("document.activeElement.textContent")
                # A task that raised: its error and WAA's traceback.
                page.click(f"{CARD} .results tr[data-task-id='{raised.task_id}'] .col-domain")
                page.wait_for_selector(f"{dialog}[data-state=loaded]")
                out["raised"] = {
                    "error": page.text_content(f"{dialog} [data-field=error-message]"),
                    "traceback": page.text_content(f"{dialog} [data-field=traceback]"),
                    "traceback_hidden": page.eval_on_selector(f"{dialog} [data-field=traceback]", "el => el.hidden"),
                    "actions": page.eval_on_selector_all(f"{dialog} .step-action", "s => s.map(a => a.textContent)"),
                }
                page.keyboard.press("Escape")
                # A task whose folder is gone: the result's facts and why there are no steps.
                page.click(f"{CARD} .results tr[data-task-id='{gone.task_id}'] .col-domain")
                page.wait_for_selector(f"{dialog}[data-state=missing]")
                out["gone"] = {
                    "title": page.text_content(f"{dialog} [data-field=task]"),
                    "domain": page.text_content(f"{dialog} [data-field=domain]"),
                    "instruction": page.text_content(f"{dialog} [data-field=instruction]"),
                    "status": page.text_content(f"{dialog} [data-field=status]"),
                    "steps": page.eval_on_selector_all(f"{dialog} .traj-step", "s => s.length"),
                }
                return w, out

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
    assert out["open"] and out["title"] == longest.task_id
    assert out["facts"] == {
        "target": "local", "domain": longest.domain, "result": "✗ failed", "score": "0.00",
        "failure": "max steps", "steps-count": str(longest.steps), "worker": "0",
    }
    assert out["status"] == f"{longest.steps} steps" and out["error_hidden"] is True
    steps = out["steps"]
    assert [s["step"] for s in steps] == [str(n) for n in range(1, longest.steps + 1)]
    assert [s["action"] for s in steps] == list(longest.actions)
    assert all(re.match(rf"Step {s['step']} · reward 0 · \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d$", s["head"]) for s in steps), steps
    for s in steps:
        assert s["img"]["loading"] == "lazy", s
        assert s["img"]["src"].startswith(f"api/tasks/{longest.task_id}/files/screenshot-step_") or (
            f"/api/tasks/{longest.task_id}/files/screenshot-step_" in s["img"]["src"]), s
        assert "token=s3cret" in s["img"]["src"] and "target=local" in s["img"]["src"], s
    assert len({s["img"]["src"] for s in steps}) == longest.steps, "a screenshot per step"
    assert out["first"] == "1"
    assert out["last_loaded_at_open"] is False, "screenshots load when scrolled near, not all at once"
    assert out["last_width"] == 320
    assert out["current"] == [str(longest.steps - 1)]
    assert out["with_token"] == (200, "image/png", b"\x89PNG\r\n\x1a\n")
    assert out["without_token"][0] == 401 and "token" in out["without_token"][1]["error"]
    assert out["focus"] == longest.task_id, "Esc closes; focus goes back to the row"
    r = out["raised"]
    assert r["error"] == raised.error and r["traceback_hidden"] is False
    assert r["traceback"].startswith("Traceback (most recent call last):\n") and r["traceback"].rstrip().endswith(raised.error)
    assert r["actions"] == list(raised.actions[: raised.steps - 1]), "the action that raised has no line"
    g = out["gone"]
    assert (g["title"], g["domain"], g["instruction"]) == (gone.task_id, gone.domain, gone.instruction)
    assert g["status"].startswith("No trajectory for this task on the server (no folder of this task under "), g["status"]
    assert "token" not in g["status"] and g["steps"] == 0
    assert watch.problems() == []


def fmt_duration(seconds: float) -> str:
    """dashboard.js's fmtDuration."""
    s = round(seconds)
    h, m, s = s // 3600, (s % 3600) // 60, s % 60
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {s:02d}s"
    return f"{s}s"


async def test_domains_durations_failures_filter_export_and_threshold(tmp_path: Path, chromium: str) -> None:
    tasks = 10
    async with simulated_server(tmp_path, tasks=tasks, step_seconds=0.001, token="s3cret", success_threshold=0.5) as sim:
        await sim.done.wait()

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.goto(f"{sim.url}/?token=s3cret&interval=1")
                wait_finished(page, tasks)
                out: dict[str, Any] = {
                    "api": page.request.get(f"{sim.url}/api/tasks?token=s3cret").json(),
                    "table": page.eval_on_selector_all(
                        f"{CARD} .results tbody tr",
                        """trs => trs.map(tr => [tr.dataset.taskId, tr.querySelector('.col-kind').textContent,
                                                 tr.querySelector('.col-duration').textContent])""",
                    ),
                    "domains": page.eval_on_selector_all(
                        f"{CARD} .domain-table tbody tr", "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))"
                    ),
                    "pass_rate": page.text_content(f"{CARD} [data-field=pass-rate]"),
                    "threshold": page.text_content(f"{CARD} [data-field=threshold]"),
                    "csv_href": page.get_attribute(f"{CARD} [data-field=csv]", "href"),
                    "json_href": page.get_attribute(f"{CARD} [data-field=json]", "href"),
                }
                page.check(f"{CARD} [data-field=failures-only]")
                out["visible"] = page.eval_on_selector_all(
                    f"{CARD} .results tbody tr", "trs => trs.filter(tr => tr.offsetParent !== null).map(tr => tr.dataset.taskId)"
                )
                page.uncheck(f"{CARD} [data-field=failures-only]")
                out["visible_again"] = page.eval_on_selector_all(
                    f"{CARD} .results tbody tr", "trs => trs.filter(tr => tr.offsetParent !== null).length"
                )
                csv = page.request.get(out["csv_href"])
                out["csv"] = (csv.status, csv.text().splitlines()[0], len(csv.text().splitlines()))
                out["json"] = len(page.request.get(out["json_href"]).json())
                page.set_viewport_size(PHONE)
                out["phone_fits"] = no_horizontal_overflow(page)
                return w, out

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
    api = {r["task_id"]: r for r in out["api"]}
    assert len(api) == tasks
    kinds = {"agent": "agent", "infra": "infra", "evaluator": "evaluator", "max_steps": "max steps"}
    for task_id, kind, duration in out["table"]:
        r = api[task_id]
        assert kind == ("" if r["success"] else kinds[r["failure_kind"]]), (task_id, kind, r)
        assert duration == fmt_duration(r["duration_s"]), (task_id, duration, r["duration_s"])
    # Per domain: tasks, passed, WAA's average (over the tasks with a score).
    expected = []
    for domain in sorted({r["domain"] for r in api.values()}):
        rs = [r for r in api.values() if r["domain"] == domain]
        passed = sum(r["success"] for r in rs)
        scores = [r["score"] for r in rs if r["score"] is not None]
        avg = f"{sum(scores) / len(scores):.2f}" if scores else "N/A"
        expected.append([domain, str(len(rs)), f"{passed} ({round(100 * passed / len(rs))}%)", avg])
    assert out["domains"] == expected
    passed = sum(r["success"] for r in api.values())
    assert out["pass_rate"].startswith(f"{passed} / {tasks} (")
    assert out["threshold"] == "pass: score ≥ 0.50"
    assert 0 < passed < tasks, "the run needs passes and failures for the filter to mean anything"
    assert sorted(out["visible"]) == sorted(t for t, r in api.items() if not r["success"])
    assert out["visible_again"] == tasks
    assert "token=s3cret" in out["csv_href"] and "format=csv" in out["csv_href"] and "target=local" in out["csv_href"]
    assert out["csv"] == (200, "target,task_id,domain,success,score,failure_kind,error,steps,worker,started_at,finished_at,duration_s,instruction", tasks + 1)
    assert out["json"] == tasks
    assert out["phone_fits"]
    assert watch.problems() == []


async def test_wall_time_and_eta_come_from_the_logs_own_clock(tmp_path: Path, chromium: str) -> None:
    """The log's clock is years away from the browser's (and has no zone): the wall time and
    the ETA come from the log's times only — a lower bound (≥) until a live event tells what
    the log's clock says now."""
    log = tmp_path / "waa.log"
    t0 = dt.datetime(2020, 1, 1, 10, 0, 0)
    ids = [f"0000000{i}-0000-0000-0000-000000000000-WOS" for i in range(4)]
    log.write_text(
        run_header(t0, [("notepad", i) for i in ids])
        + task_records(t0 + dt.timedelta(seconds=5), "notepad", ids[0], "one", ["click"], score=1.0, end=t0 + dt.timedelta(minutes=10))
        + task_records(t0 + dt.timedelta(minutes=10, seconds=5), "notepad", ids[1], "two", ["click"], score=0.0, end=t0 + dt.timedelta(minutes=20))
        + task_records(t0 + dt.timedelta(minutes=20, seconds=5), "notepad", ids[2], "three", ["click"])
    )
    target = TargetSpec(name="local", log=str(log), process_pattern=None)
    async with running_server(Settings(port=0, targets=(target,))) as server:

        def times(page: Any) -> tuple[str, str]:
            return (page.text_content(f"{CARD} [data-field=elapsed]"), page.text_content(f"{CARD} [data-field=eta]"))

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.goto(f"{server.url}/?interval=1")
                page.wait_for_function("sel => document.querySelector(sel)?.dataset.completed === '2'", arg=CARD)
                out = {"label": page.text_content(f"{CARD} [data-field=elapsed-label]"), "replayed": times(page)}
                # A live result at 10:31 on the log's clock: now the wall time is exact.
                append(log, record(t0 + dt.timedelta(minutes=31), waalog.result(1.0)) + record(
                    t0 + dt.timedelta(minutes=31), waalog.finished("notepad", ids[2]), module="run"))
                page.wait_for_function("sel => document.querySelector(sel)?.dataset.completed === '3'", arg=CARD)
                out["live"] = times(page)
                append(log, task_records(t0 + dt.timedelta(minutes=31, seconds=5), "notepad", ids[3], "four", ["click"],
                                         score=1.0, end=t0 + dt.timedelta(minutes=40))
                       + record(t0 + dt.timedelta(minutes=40, seconds=1), waalog.average_score(0.75), module="run"))
                wait_finished(page, 4)
                out["finished"] = times(page)
                return w, out

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)

    def seconds(text: str) -> int:
        m = re.fullmatch(r"(?:(\d+)h )?(?:(\d+)m )?(?:(\d+)s)?", text.removeprefix("≥ "))
        assert m, text
        h, mi, s = (int(g or 0) for g in m.groups())
        return 3600 * h + 60 * mi + s

    assert out["label"] == "Wall time"
    elapsed, eta = out["replayed"]
    # Replayed results only say the log reached 10:20: at least 20 min (plus the seconds since).
    assert elapsed.startswith("≥ ") and 20 * 60 <= seconds(elapsed) <= 20 * 60 + 60, elapsed
    # 2 tasks in 20 min, 2 to go: 20 min, less the time since the last result.
    assert 19 * 60 <= seconds(eta) <= 20 * 60, eta
    elapsed, eta = out["live"]
    assert not elapsed.startswith("≥") and 31 * 60 <= seconds(elapsed) <= 31 * 60 + 60, elapsed
    assert 10 * 60 <= seconds(eta) <= 10 * 60 + 20, eta  # 3 tasks in 31 min, 1 to go
    assert out["finished"] == ("40m 00s", "done"), "at the end: the log's first record to its last result"
    assert watch.problems() == []


async def test_badges_are_greyed_as_last_known_while_the_server_is_down(tmp_path: Path, chromium: str) -> None:
    log = tmp_path / "waa.log"
    target = TargetSpec(name="local", log=str(log), process_pattern=None)
    settings = replace(Settings(port=free_port(), targets=(target,)), retry_ms=300)
    async with restartable_server(settings) as server:
        async with simulated_run(log, tasks=2, step_seconds=0.001) as run:
            await run.done.wait()

            def colours(page: Any) -> dict[str, Any]:
                return page.evaluate(
                    """sel => {
                        const card = document.querySelector(sel);
                        const muted = getComputedStyle(card.querySelector('.stale-note')).color;
                        const badge = b => getComputedStyle(card.querySelector(`[data-field=${b}]`)).color;
                        return {stale: document.body.dataset.stale, note: card.querySelector('.stale-note').offsetParent !== null,
                                phase: badge('phase'), waa: badge('waa'), muted,
                                text: card.querySelector('[data-field=phase]').textContent};
                    }""",
                    CARD,
                )

            def scenario() -> tuple[PageWatch, dict[str, Any]]:
                with open_page(chromium) as w:
                    page = w.page
                    page.goto(f"{server.url}/?interval=1")
                    wait_finished(page, 2)
                    page.wait_for_selector(f"{CARD} [data-field=phase][data-phase=ready]")
                    out = {"up": colours(page)}
                    before = len(w.console_errors)
                    trio.from_thread.run(server.stop)
                    page.wait_for_selector("#connection[data-state=reconnecting]")
                    out["down"] = colours(page)
                    trio.from_thread.run(server.start)
                    page.wait_for_selector("#connection[data-state=live]")
                    out["back"] = colours(page)
                    out["errors_while_down"] = w.console_errors[before:]
                    del w.console_errors[before:]
                    return w, out

            with trio.fail_after(GUARD):
                watch, out = await trio.to_thread.run_sync(scenario)
    up, down, back = out["up"], out["down"], out["back"]
    assert up["stale"] == "false" and not up["note"]
    assert up["phase"] != up["muted"] and up["waa"] != up["muted"], "ready badges are coloured while live"
    assert down["stale"] == "true" and down["note"], "the card says 'last known'"
    assert down["phase"] == down["muted"] and down["waa"] == down["muted"], "no green badge while the connection is down"
    assert down["text"] == "ready", "the last known value stays readable"
    assert back["stale"] == "false" and not back["note"] and back["phase"] == up["phase"]
    assert all(e.startswith("Failed to load resource: net::ERR_CONNECTION_") for e in out["errors_while_down"])
    assert watch.problems() == []


HOSTILE_INSTRUCTION = "<img src=x onerror=window.__xss=6> Open <b>Notepad</b>"
HOSTILE_ACTION = "pyautogui.typewrite('<script>window.__xss=7</script>')\n<svg/onload=window.__xss=8>"


async def test_a_task_under_way_shows_hostile_text_as_text_and_a_stall_banner(tmp_path: Path, chromium: str) -> None:
    log = tmp_path / "waa.log"
    t0 = dt.datetime(2024, 5, 6, 10, 0, 0)
    log.write_text(
        run_header(t0, [(XSS_DOMAIN, XSS_ID), (XSS_DOMAIN, XSS_ID2)])
        + task_records(t0, XSS_DOMAIN, XSS_ID, HOSTILE_INSTRUCTION, ["DONE"], error=XSS_ERROR)
        + task_records(t0 + dt.timedelta(minutes=1), XSS_DOMAIN, XSS_ID2, HOSTILE_INSTRUCTION, ["click", HOSTILE_ACTION])
    )
    target = TargetSpec(name="local", log=str(log), process_pattern=None)
    async with running_server(Settings(port=0, targets=(target,), stall_after=1.0)) as server:

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.goto(f"{server.url}/?interval=1")
                worker = f"{CARD} .worker"
                page.wait_for_function(
                    "sel => document.querySelector(sel)?.dataset.step === '2'", arg=worker
                )
                out = {
                    "task": page.text_content(f"{worker} [data-field=w-task]"),
                    "worker_task": page.get_attribute(worker, "data-task"),
                    "instruction": page.text_content(f"{worker} [data-field=w-instruction]"),
                    "action": page.text_content(f"{worker} [data-field=w-action]"),
                    "shot_hidden": page.eval_on_selector(f"{worker} [data-field=w-shot-box]", "el => el.hidden"),
                }
                # Nothing moves for a second: the server says it is stalled, the card says so.
                page.wait_for_selector(f"{CARD} [data-field=stalled]:not([hidden])")
                out["stalled"] = page.text_content(f"{CARD} [data-field=stalled]")
                append(log, record(t0 + dt.timedelta(minutes=3), waalog.step(3, "DONE")))
                page.wait_for_selector(f"{CARD} [data-field=stalled]", state="hidden")
                # The finished task's trajectory: its id, instruction and error as text too.
                page.click(f"{CARD} .results tbody tr .task-link")
                page.wait_for_selector("#trajectory[data-state=missing]")
                out["dialog"] = [page.text_content(f"#trajectory [data-field={f}]") for f in ("task", "instruction", "error-message")]
                out["xss"] = page.evaluate("typeof window.__xss")
                out["elements"] = page.evaluate(
                    # (the worker panel's own <img> waits, without a src, for a screenshot)
                    "document.querySelectorAll('#targets img:not([data-field=w-shot]), #targets img[src], #targets svg,"
                    " #targets script, #targets b, #targets u, #trajectory img, #trajectory svg, #trajectory script,"
                    " #trajectory b').length"
                )
                return w, out

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
    assert out["task"] == XSS_ID2 and out["worker_task"] == XSS_ID2
    assert out["instruction"] == HOSTILE_INSTRUCTION
    assert out["action"] == HOSTILE_ACTION.splitlines()[0]
    assert out["shot_hidden"] is True
    assert re.fullmatch(r"Stalled for \d+ s: nothing new in the log or the results\.", out["stalled"]), out["stalled"]
    assert out["dialog"] == [XSS_ID, HOSTILE_INSTRUCTION, XSS_ERROR]
    assert out["xss"] == "undefined"
    assert out["elements"] == 0
    assert watch.page_errors == []
    assert all(e.startswith(NOT_FOUND) for e in watch.console_errors), watch.console_errors


async def test_several_targets_get_an_overview_row_each_and_an_interrupted_run_says_so(tmp_path: Path, chromium: str) -> None:
    t0 = dt.datetime(2024, 5, 6, 10, 0, 0)
    ids = [f"1111111{i}-0000-0000-0000-000000000000-WOS" for i in range(3)]
    done, stopped = tmp_path / "done.log", tmp_path / "stopped.log"
    done.write_text(
        run_header(t0, [("chrome", ids[0])])
        + task_records(t0, "chrome", ids[0], "go", ["DONE"], score=1.0)
        + record(t0 + dt.timedelta(minutes=1), waalog.average_score(1.0), module="run")
    )
    stopped.write_text(
        run_header(t0, [("vlc", ids[1]), ("vlc", ids[2])])
        + task_records(t0, "vlc", ids[1], "play", ["click"], score=0.0)
        + task_records(t0 + dt.timedelta(minutes=1), "vlc", ids[2], "pause", ["click"])
        + waalog.interrupted(2) + "\n"
    )
    targets = (
        TargetSpec(name="beta", log=str(stopped), process_pattern=None),
        TargetSpec(name="alpha", log=str(done), process_pattern=None),
    )
    async with running_server(Settings(port=0, targets=targets)) as server:

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.goto(f"{server.url}/?interval=1")
                page.wait_for_function(
                    "() => document.querySelectorAll('section.target[data-finished=true]').length === 2"
                )
                return w, {
                    "overview_hidden": page.eval_on_selector("#overview-wrap", "el => el.hidden"),
                    "overview": page.eval_on_selector_all(
                        "#overview tbody tr", "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))"
                    ),
                    "cards": page.eval_on_selector_all("section.target", "cs => cs.map(c => c.dataset.target)"),
                    "alpha_end": page.text_content("[data-target='alpha'] [data-field=run-end]"),
                    "beta_end": page.text_content("[data-target='beta'] [data-field=run-end]"),
                    "beta_interrupted": page.get_attribute("[data-target='beta'] [data-field=run-end]", "data-interrupted"),
                }

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
    assert out["overview_hidden"] is False
    assert out["cards"] == ["alpha", "beta"]
    assert [row[0] for row in out["overview"]] == ["alpha", "beta"]
    alpha, beta = out["overview"]
    assert alpha[2] == "1 / 1 tasks · 100%" and alpha[3] == "1 / 1 (100.0%)" and alpha[5] == "finished"
    assert beta[2].startswith("1 / 2 tasks") and beta[3] == "0 / 1 (0.0%)" and beta[5] == "interrupted"
    assert out["alpha_end"].startswith("Run complete: 1 / 1 passed")
    assert out["beta_end"].startswith("Run interrupted: 0 / 1 passed") and out["beta_interrupted"] == "true"
    assert watch.problems() == []
