"""The dashboard (SPEC §6) in a real headless Chromium against a real server.

A browser scenario is a plain function using Playwright's sync API, run in a worker thread
(``trio.to_thread.run_sync``) while the server runs in Trio; it calls back into Trio with
``trio.from_thread.run`` (to restart the server mid-run). Checked: the progress bar and counter
advance, one row per completed task with the right ✓/✗ and score, the connection indicator,
reconnect and resume after a server restart with no duplicate row, log text shown as text
(no script runs), ``?token=`` passed on, a 4xx shown and final, no console errors, and the
page's width on a phone.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
from browser import PHONE, PageWatch, open_page, restartable_server

from trio_sse import waalog
from trio_sse.config import Settings, TargetSpec
from trio_sse.sources.simulate import plan_run, render_run
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
