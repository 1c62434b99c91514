"""The dashboard and run history (SPEC §9, issue 13) in a real headless Chromium, against a real
server with a real SQLite history:

* a two-run simulation compared live with ``--baseline previous``: every regressed / fixed
  row marked the moment it appears, the count next to the pass rate never behind the table
  (checked after every change of the page, no sleeps), the forecast shown as the stream's
  ``progress.forecast`` says at every moment and gone at the end, the run's end compared;
* the Runs view: the stored runs newest first, a CSV link per run (with the token), two runs
  picked and compared per domain and per task as ``/api/runs/<run>`` says, "changes only", a
  comparison restored from the page's address; paging through 23 runs; ``--db none`` said.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from browser import LAPTOP, PHONE, PageWatch, open_page
from test_dashboard import CARD, GUARD, wait_finished

from trio_sse import storedb
from trio_sse.config import Settings, TargetSpec
from trio_sse.history import History
from trio_sse.model import RunComplete, TaskComplete
from trio_sse.sources.simulate import plan_runs, simulate
from trio_sse.testing import running_server

pytestmark = pytest.mark.browser

TOKEN = "s3cret"
TASKS = 8


def two_runs(tmp_path: Path, step_seconds: float, **kw: Any) -> Settings:
    """``serve --simulate --sim-runs 2 --baseline previous`` with its history in tmp_path."""
    target = TargetSpec(name="local", log=str(tmp_path / "waa.log"), process_pattern=None)
    return Settings(
        port=0, targets=(target,), simulate=True, sim_tasks=TASKS, sim_step_seconds=step_seconds, sim_runs=2,
        baseline="previous", db=str(tmp_path / "history.sqlite3"), **kw,
    )  # fmt: skip


def expected_changes() -> tuple[list[str], list[str], list[Any]]:
    then, now = plan_runs(TASKS, 2, showcase=True)  # what serve --simulate writes
    regressed = [b.task_id for a, b in zip(then, now, strict=True) if a.success and not b.success]
    fixed = [b.task_id for a, b in zip(then, now, strict=True) if not a.success and b.success]
    return regressed, fixed, list(then)


def forecast_text(f: dict[str, float]) -> str:
    """dashboard.js's renderForecast."""

    def pct(x: float) -> int:
        return int(js_round(100 * min(1.0, max(0.0, x))))

    return f"expected {pct(f['success_rate'])} % ({pct(f['low'])}–{pct(f['high'])} %)"


def js_round(x: float) -> float:
    return float(int(x + 0.5)) if x >= 0 else -float(int(-x + 0.5))


# The stream's progress payloads as the page receives them (a listener added before the
# page's own: it runs first), and after every change of the page: the forecast shown against
# the last progress, the change counts against the rows, the counter's sequence.
RECORDER = """
(() => {
  const Original = window.EventSource;
  window.__progress = null;
  class Recording extends Original {
    constructor(url, init) {
      super(url, init);
      this.addEventListener('progress', (e) => { window.__progress = JSON.parse(e.data); });
    }
  }
  window.EventSource = Recording;
})();
window.__forecasts = [];
window.__lag = [];
window.__counts = [];
window.__completed = [];
const expect = (f) => {
  const pct = (x) => Math.round(100 * Math.min(1, Math.max(0, x)));
  return 'expected ' + pct(f.success_rate) + ' % (' + pct(f.low) + '–' + pct(f.high) + ' %)';
};
new MutationObserver(() => {
  const card = document.querySelector("section.target");
  if (!card) return;
  const box = card.querySelector('[data-field=forecast-box]');
  const p = window.__progress;
  const want = p && p.forecast && !p.finished && card.dataset.finished !== 'true' ? expect(p.forecast) : null;
  const shown = box.hidden ? null : card.querySelector('[data-field=forecast]').textContent;
  if (shown !== want) window.__lag.push(['forecast', shown, want]);
  if (shown && window.__forecasts[window.__forecasts.length - 1] !== shown) window.__forecasts.push(shown);
  const rows = [...card.querySelectorAll('.results tbody tr')];
  const count = (c) => rows.filter((r) => r.dataset.change === c).length;
  const compared = rows.some((r) => r.dataset.change);
  const changes = card.querySelector('[data-field=changes]');
  const wantCounts = compared ? count('fixed') + ' fixed · ' + count('regressed') + ' regressed' : null;
  const shownCounts = changes.hidden ? null : changes.textContent;
  if (shownCounts !== wantCounts) window.__lag.push(['counts', shownCounts, wantCounts]);
  if (window.__counts[window.__counts.length - 1] !== shownCounts) window.__counts.push(shownCounts);
  const done = Number(card.dataset.completed || 0);
  if (window.__completed[window.__completed.length - 1] !== done) window.__completed.push(done);
}).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
"""


async def test_regressions_are_marked_as_they_happen_with_counts_and_the_forecast(tmp_path: Path, chromium: str) -> None:
    """What ``serve --simulate --sim-runs 2 --baseline previous`` writes, started by the test
    once the page is live (so the page sees both runs whatever the machine's load)."""
    regressed, fixed, then = expected_changes()
    assert regressed and fixed, "the simulation flips outcomes both ways"
    settings = replace(two_runs(tmp_path, 0.0), simulate=False)
    log = Path(settings.targets[0].log)
    log.touch()
    async with running_server(settings) as server, trio.open_nursery() as nursery:

        def start_runs() -> None:
            nursery.start_soon(lambda: simulate(log, tasks=TASKS, step_seconds=0.05, runs=2, showcase=True))

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.add_init_script(RECORDER)
                page.goto(f"{server.url}/?interval=1")
                page.wait_for_selector("#connection[data-state=live]")
                trio.from_thread.run_sync(start_runs)
                page.wait_for_function("sel => document.querySelector(sel)?.dataset.finished === 'true'"
                                       " && document.querySelector(sel + ' .run-end').textContent.includes('Against')",
                                       arg=CARD, timeout=60_000)  # fmt: skip
                wait_finished(page, TASKS)
                out: dict[str, Any] = {
                    "lag": page.evaluate("window.__lag"),
                    "forecasts": page.evaluate("window.__forecasts"),
                    "counts": page.evaluate("window.__counts"),
                    "completed": page.evaluate("window.__completed"),
                    "rows": page.eval_on_selector_all(
                        f"{CARD} .results tbody tr",
                        """trs => trs.map(tr => [tr.dataset.taskId, tr.dataset.change || '', tr.querySelector('.col-change').textContent,
                                                 tr.querySelector('.col-change').title])""",
                    ),
                    "column": page.eval_on_selector(f"{CARD} th.col-change", "th => getComputedStyle(th).display"),
                    "changes": page.text_content(f"{CARD} [data-field=changes]"),
                    "forecast_hidden": page.eval_on_selector(f"{CARD} [data-field=forecast-box]", "el => el.hidden"),
                    "run_end": page.text_content(f"{CARD} [data-field=run-end]"),
                }
                # A regressed task's trajectory says so too.
                page.click(f"{CARD} .results tr[data-task-id='{regressed[0]}'] .col-domain")
                page.wait_for_selector("#trajectory:is([data-state=loaded], [data-state=missing])")
                out["dialog_change"] = page.text_content("#trajectory [data-field=change]")
                runs = httpx.get(f"{server.url}/api/runs").json()["runs"]
                out["first"] = runs[-1]["run"]
                return w, out

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
    assert out["lag"] == [], out["lag"][:5]
    # The page lived through both runs: the counter went up to 8, then again from the start.
    completed = out["completed"]
    assert TASKS in completed and completed.index(TASKS) < len(completed) - 1 and completed[-1] == TASKS, completed
    # The forecast was shown while the runs went (both forms checked against the stream above).
    assert out["forecasts"], "a forecast was shown"
    for text in out["forecasts"]:
        m = re.fullmatch(r"expected (\d+) % \((\d+)–(\d+) %\)", text)
        assert m and int(m[2]) <= int(m[1]) <= int(m[3]), text
    assert out["forecast_hidden"] is True, "at the end the rate itself is known"
    # Every mark, as the rows came: the counts went up one by one, never ahead or behind.
    rows = {task: (change, text, title) for task, change, text, title in out["rows"]}
    assert sorted(t for t, r in rows.items() if r[0] == "regressed") == sorted(regressed)
    assert sorted(t for t, r in rows.items() if r[0] == "fixed") == sorted(fixed)
    assert {r[0] for r in rows.values()} <= {"regressed", "fixed", "same"}
    before = {t.task_id: t for t in then}
    for task in regressed:
        assert rows[task][1:] == ("regressed", f"regressed (was ✓ {before[task].score:.2f})"), rows[task]
    for task in fixed:
        score = "N/A" if before[task].score is None else f"{before[task].score:.2f}"
        assert rows[task][1:] == ("fixed", f"fixed (was ✗ {score})"), rows[task]
    assert all(r[1] == "" for r in rows.values() if r[0] == "same"), "only a change is worth a word"
    assert out["column"] != "none"
    assert out["changes"] == f"{len(fixed)} fixed · {len(regressed)} regressed"
    shown = [c for c in out["counts"] if c is not None]
    assert shown[-1] == out["changes"] and len(shown) >= 2, out["counts"]
    assert f"Against local:{out['first']}: {len(fixed)} fixed, {len(regressed)} regressed, " in out["run_end"], out["run_end"]
    assert out["dialog_change"] == rows[regressed[0]][2]
    assert watch.problems() == []


# ------------------------------------------------------------------ the Runs view


def table(page: Any, sel: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"{sel} tbody tr", "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))")


def latest(tasks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for t in tasks:
        out.pop(t["task_id"], None)
        out[t["task_id"]] = t
    return out


async def test_the_runs_view_lists_and_compares_two_runs(tmp_path: Path, chromium: str) -> None:
    regressed, fixed, _ = expected_changes()
    # (steps of 0 ms: two runs back to back in one burst; the second is still compared with the
    # first, which the reducer keeps as its baseline without waiting for the database)
    async with running_server(two_runs(tmp_path, 0.0, token=TOKEN)) as server:
        auth = {"Authorization": f"Bearer {TOKEN}"}

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.goto(f"{server.url}/?token={TOKEN}&interval=1")
                page.wait_for_function("sel => document.querySelector(sel + ' .run-end')?.textContent.includes('Against')",
                                       arg=CARD, timeout=60_000)  # fmt: skip
                page.click("nav.views a[data-view=runs]")
                page.wait_for_selector("#runs-view[data-state=loaded]")
                out: dict[str, Any] = {
                    "view": page.evaluate("document.body.dataset.view"),
                    "cards_visible": page.eval_on_selector("#targets", "el => el.offsetParent !== null"),
                    "list": table(page, "#runs-view .runs-table"),
                    "refs": page.eval_on_selector_all("#runs-view .runs-table tbody tr", "trs => trs.map(tr => tr.dataset.run)"),
                    "csv_href": page.get_attribute("#runs-view .runs-table tbody tr:first-child .csv a", "href"),
                    "compare_disabled": page.is_disabled("#runs-view [data-action=compare]"),
                    "page": page.text_content("#runs-view [data-field=page]"),
                    "paging": [page.is_disabled("#runs-view [data-action=newer]"), page.is_disabled("#runs-view [data-action=older]")],
                }
                csv = page.request.get(out["csv_href"])
                out["csv"] = (csv.status, csv.headers["content-type"], csv.text().splitlines()[0], len(csv.text().splitlines()))
                boxes = page.locator("#runs-view .runs-table tbody input[type=checkbox]")
                boxes.nth(0).check()
                boxes.nth(1).check()
                page.click("#runs-view [data-action=compare]")
                page.wait_for_selector("#runs-view [data-field=compare][data-state=loaded]")
                out["hash"] = page.evaluate("location.hash")
                out["head"] = page.text_content("#runs-view [data-field=compare-head]")
                out["summary"] = page.text_content("#runs-view [data-field=compare-summary]")
                out["domains"] = table(page, "#runs-view [data-field=compare-domains]")
                out["tasks"] = table(page, "#runs-view [data-field=compare-tasks]")
                page.check("#runs-view [data-field=changes-only]")
                out["visible"] = page.eval_on_selector_all(
                    "#runs-view [data-field=compare-tasks] tbody tr", "trs => trs.filter(tr => tr.offsetParent !== null).map(tr => tr.dataset.change)"
                )
                page.set_viewport_size(PHONE)
                out["phone_fits"] = page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
                page.screenshot(path=str(tmp_path / "runs-phone.png"), full_page=True)
                page.set_viewport_size(LAPTOP)
                # The address names the comparison: a reload shows it again.
                page.reload()
                page.wait_for_selector("#runs-view [data-field=compare][data-state=loaded]")
                out["reloaded"] = table(page, "#runs-view [data-field=compare-tasks]") == out["tasks"]
                # Back to the live view.
                page.click("nav.views a[data-view=live]")
                page.wait_for_function("() => document.body.dataset.view === 'live'")
                out["back"] = page.eval_on_selector("#runs-view", "el => el.offsetParent === null")
                return w, out

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
        async with httpx.AsyncClient(headers=auth) as c:
            api = (await c.get(f"{server.url}/api/runs")).json()["runs"]
            newer, older = (f"{r['target']}:{r['run']}" for r in api)
            tasks_a = latest((await c.get(f"{server.url}/api/runs/{older}")).json()["tasks"])
            tasks_b = latest((await c.get(f"{server.url}/api/runs/{newer}")).json()["tasks"])
    assert out["view"] == "runs" and out["cards_visible"] is False
    assert out["refs"] == [newer, older], "newest first"
    for row, r in zip(out["list"], api, strict=True):
        assert row[1:4] == [r["target"], r["run"], r["started"].replace("T", " ")[:19]], row
        assert row[5:8] == [str(r["tasks"]), f"{r['passed']} ({100 * r['passed'] / r['tasks']:.1f} %)", f"{r['average']:.2f}"], row
        assert row[8] == "gpt-4o · navi" and row[9] == "CSV", row
    assert out["compare_disabled"] is True and out["page"] == "runs 1–2" and out["paging"] == [True, True]
    assert "token=s3cret" in out["csv_href"]
    assert out["csv"][:2] == (200, "text/csv; charset=utf-8") and out["csv"][2].startswith("task_id,domain,success,score")
    assert out["csv"][3] == TASKS + 1
    assert out["hash"] == f"#runs?a={older.replace(':', '%3A')}&b={newer.replace(':', '%3A')}"
    assert out["head"].startswith(f"A = {older} (then: ") and f" · B = {newer} (now: " in out["head"]
    same = TASKS - len(fixed) - len(regressed)
    assert out["summary"] == f"{len(fixed)} fixed, {len(regressed)} regressed, {same} same, 0 new, 0 missing"
    # Per domain, as the two runs' stored tasks say.
    expected_domains = []
    for domain in sorted({t["domain"] for t in [*tasks_a.values(), *tasks_b.values()]}):
        a = [t for t in tasks_a.values() if t["domain"] == domain]
        b = [t for t in tasks_b.values() if t["domain"] == domain]
        pa, pb = sum(t["success"] for t in a), sum(t["success"] for t in b)
        delta = 100 * (pb / len(b) - pa / len(a))
        expected_domains.append([
            domain, str(len(a)), f"{pa} ({100 * pa / len(a):.1f} %)", str(len(b)), f"{pb} ({100 * pb / len(b):.1f} %)",
            ("+" if delta > 0 else "") + f"{delta:.1f}",
        ])  # fmt: skip
    assert out["domains"] == expected_domains
    # Per task: the changes first (regressed, then fixed), each with both results.
    changes = [row[4] for row in out["tasks"]]
    assert changes == ["regressed"] * len(regressed) + ["fixed"] * len(fixed) + ["same"] * same, changes
    assert sorted(row[0] for row in out["tasks"] if row[4] == "regressed") == sorted(regressed)
    assert sorted(row[0] for row in out["tasks"] if row[4] == "fixed") == sorted(fixed)

    def mark(t: dict[str, Any]) -> str:
        return ("✓ " if t["success"] else "✗ ") + ("N/A" if t["score"] is None else f"{t['score']:.2f}")

    for task, domain, then_, now_, _ in out["tasks"]:
        assert (domain, then_, now_) == (tasks_b[task]["domain"], mark(tasks_a[task]), mark(tasks_b[task])), task
    assert out["visible"] == ["regressed"] * len(regressed) + ["fixed"] * len(fixed)
    assert out["reloaded"] and out["back"]
    assert out["phone_fits"], "no sideways scrolling of the page on a phone (wide tables scroll in their box)"
    assert watch.problems() == []


def store_runs(path: Path, count: int) -> list[str]:
    """``count`` finished one-task runs written into a real history file, oldest first."""
    conn = storedb.open_for_writing(path)
    refs = []
    try:
        for i in range(count):
            run = f"{i + 1:04x}abcdef"
            h = History("vm1", run)
            h.append(TaskComplete("vm1", f"task-{i}", i % 2 == 0, float(i % 2 == 0), domain="notepad"))
            h.append(RunComplete("vm1", 1, 1, int(i % 2 == 0), float(i % 2 == 0)))
            at = f"2024-09-{1 + i:02d}T09:30:00.000+00:00"
            ops = [storedb.EventOp("vm1", run, e.id, e.event.EVENT, e.data, at) for e in h.entries]
            storedb.apply(conn, [storedb.RunInfo("vm1", run, model="gpt-4o", at=at), *ops])
            refs.append(f"vm1:{run}")
    finally:
        conn.close()
    return refs


async def test_the_runs_view_pages_through_many_runs(tmp_path: Path, chromium: str) -> None:
    db = tmp_path / "history.sqlite3"
    refs = store_runs(db, 23)
    target = TargetSpec(name="vm1", log=str(tmp_path / "waa.log"), process_pattern=None)
    async with running_server(Settings(port=0, targets=(target,), db=str(db))) as server:

        def state(page: Any) -> dict[str, Any]:
            return {
                "refs": page.eval_on_selector_all("#runs-view .runs-table tbody tr", "trs => trs.map(tr => tr.dataset.run)"),
                "page": page.text_content("#runs-view [data-field=page]"),
                "newer": page.is_disabled("#runs-view [data-action=newer]"),
                "older": page.is_disabled("#runs-view [data-action=older]"),
            }

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.goto(f"{server.url}/?interval=1#runs")
                page.wait_for_selector("#runs-view[data-state=loaded]")
                out = {"first": state(page)}
                page.check(f"#runs-view tr[data-run='{refs[-1]}'] input")  # the newest
                page.click("#runs-view [data-action=older]")
                page.wait_for_function("() => location.hash === '#runs?offset=20'")
                page.wait_for_selector("#runs-view[data-state=loaded]")
                out["second"] = state(page)
                page.check(f"#runs-view tr[data-run='{refs[0]}'] input")  # the oldest, on another page
                page.click("#runs-view [data-action=compare]")
                page.wait_for_selector("#runs-view [data-field=compare][data-state=loaded]")
                out["head"] = page.text_content("#runs-view [data-field=compare-head]")
                page.click("#runs-view [data-action=newer]")
                page.wait_for_selector(f"#runs-view tr[data-run='{refs[-1]}']")
                out["back"] = state(page)
                out["still_picked"] = page.is_checked(f"#runs-view tr[data-run='{refs[-1]}'] input")
                return w, out

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
    newest_first = list(reversed(refs))
    assert out["first"] == {"refs": newest_first[:20], "page": "runs 1–20", "newer": True, "older": False}
    assert out["second"] == {"refs": newest_first[20:], "page": "runs 21–23", "newer": False, "older": True}
    assert out["head"].startswith(f"A = {refs[0]} (then: 1 / 1 passed") and f"B = {refs[-1]} (now: 1 / 1 passed" in out["head"]
    assert out["back"]["refs"] == newest_first[:20] and out["still_picked"]
    assert watch.problems() == []


async def test_the_runs_view_says_when_the_history_is_off(tmp_path: Path, chromium: str) -> None:
    target = TargetSpec(name="local", log=str(tmp_path / "waa.log"), process_pattern=None)
    async with running_server(Settings(port=0, targets=(target,), db=None)) as server:

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.goto(f"{server.url}/?interval=1#runs")
                page.wait_for_selector("#runs-view[data-state=off]")
                return w, {
                    "status": page.text_content("#runs-view [data-field=runs-status]"),
                    "box_hidden": page.eval_on_selector("#runs-view [data-field=runs-box]", "el => el.hidden"),
                }

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
    assert out["status"] == "the run history is off (this server runs with --db none)"
    assert out["box_hidden"] is True
    assert watch.page_errors == []
    (error,) = watch.console_errors  # the browser's own line for the one 404, nothing of ours
    assert error.startswith("Failed to load resource: the server responded with a status of 404"), error

