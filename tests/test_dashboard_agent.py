"""The dashboard's agent view (SPEC §8) against the real results API, in a real headless Chromium.

* the live screenshot of each worker follows the ``step`` events of a simulated run with its
  results folder (``serve --simulate``): a new image per step, each one loading, with the
  page's token, never from another task;
* several workers (WAA's parallel ``normal-<worker>-<ts>.log`` files) each show their own
  instruction and latest action, from ``progress.workers[]``; a step moves only its worker; a
  worker's task opens the trajectory of the running task;
* a trajectory whose ``traj.jsonl`` holds hostile actions, screenshot names, an exception and
  a traceback: all shown as text, no image from a name the server does not list, no script.

The trajectory dialog with real steps, keyboard, lazy screenshots with the token (401
without) and a missing trajectory: ``test_dashboard.py``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import trio
from browser import PageWatch, open_page
from test_dashboard import CARD, GUARD, append, record, run_header, task_records, wait_finished

from trio_sse import waalog
from trio_sse.config import Settings, TargetSpec
from trio_sse.sources.simulate import simulate, task_folder
from trio_sse.testing import running_server

pytestmark = pytest.mark.browser

TOKEN = "tok3n"

# Every src the workers' screenshot takes, with the worker's task and step at that moment;
# every load and every failed load of an image on the page.
SHOT_RECORDER = """
window.__shots = [];
window.__loads = [];
window.__imgErrors = [];
new MutationObserver((records) => {
  for (const r of records) {
    const img = r.target;
    if (img.dataset.field !== 'w-shot' || !img.getAttribute('src')) continue;
    const w = img.closest('.worker');
    window.__shots.push({src: img.getAttribute('src'), shotStep: img.dataset.step, task: w.dataset.task, step: w.dataset.step,
                         caption: w.querySelector('[data-field=w-shot-caption]').textContent});
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['src']});
document.addEventListener('load', (e) => {
  if (e.target.tagName === 'IMG') window.__loads.push([e.target.getAttribute('src'), e.target.naturalWidth]);
}, true);
document.addEventListener('error', (e) => {
  if (e.target.tagName === 'IMG') window.__imgErrors.push(e.target.getAttribute('src'));
}, true);
"""


async def test_the_live_screenshot_changes_step_by_step(tmp_path: Path, chromium: str) -> None:
    """The simulator writes what ``serve --simulate`` writes (log, traj.jsonl, PNGs), started
    once the page is live, so the page sees every step whatever the machine's load."""
    log, results = tmp_path / "waa.log", tmp_path / "results"
    log.touch()
    target = TargetSpec(name="local", log=str(log), results=str(results), process_pattern=None)
    async with running_server(Settings(port=0, targets=(target,), token=TOKEN)) as server, trio.open_nursery() as nursery:

        def start_run() -> None:
            nursery.start_soon(lambda: simulate(log, tasks=3, step_seconds=0.3, results_dir=results))

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.add_init_script(SHOT_RECORDER)
                page.goto(f"{server.url}/?token={TOKEN}&interval=1")
                page.wait_for_selector("#connection[data-state=live]")
                trio.from_thread.run_sync(start_run)
                wait_finished(page, 3)
                out: dict[str, Any] = {
                    "shots": page.evaluate("window.__shots"),
                    "loads": page.evaluate("window.__loads"),
                    "errors": page.evaluate("window.__imgErrors"),
                    "box_hidden": page.eval_on_selector_all(f"{CARD} [data-field=w-shot-box]", "bs => bs.map(b => b.hidden)"),
                }
                # Every picture the page was given, fetched again: a PNG each, all different.
                bodies = []
                for s in out["shots"]:
                    r = page.request.get(page.evaluate("s => new URL(s, document.baseURI).toString()", s["src"]))
                    bodies.append((r.status, r.headers["content-type"], r.body()))
                out["bodies"] = bodies
                return w, out

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
    shots = out["shots"]
    assert len(shots) >= 6, shots
    by_task: dict[str, list[int]] = {}
    for s in shots:
        assert f"api/tasks/{s['task']}/files/screenshot-step_" in s["src"], s  # its own task's picture
        assert f"token={TOKEN}" in s["src"] and "target=local" in s["src"], s
        assert s["caption"] == f"step {s['shotStep']}" and int(s["step"]) >= int(s["shotStep"]), s
        by_task.setdefault(s["task"], []).append(int(s["shotStep"]))
    assert len(by_task) >= 2, "several tasks' pictures"
    for task, steps in by_task.items():
        assert steps == sorted(set(steps)), (task, steps)  # a new picture per step, never back
    assert len({s["src"] for s in shots}) == len(shots)
    assert all(status == 200 and kind == "image/png" and body.startswith(b"\x89PNG") for status, kind, body in out["bodies"])
    for task in by_task:  # (the simulator draws the step number on the domain's colour)
        pictures = [body for s, (_, _, body) in zip(shots, out["bodies"], strict=True) if s["task"] == task]
        assert len(set(pictures)) == len(pictures), "each step's picture is another image"
    # The page loaded them as they came (one replaced within milliseconds by the next step's,
    # or hidden by the task's end at once, may be dropped unloaded: that is the browser's
    # right), and none failed.
    loaded = {src for src, width in out["loads"] if width == 320}
    assert len(loaded & {s["src"] for s in shots}) >= 2, out["loads"]
    assert out["errors"] == []
    assert out["box_hidden"] == [], "a finished run has no current task, no picture"
    assert watch.problems() == []


# ------------------------------------------------------------------ several workers


def worker_header(when: dt.datetime, worker: int, tasks: list[tuple[str, str]]) -> str:
    return record(when, "Args: Namespace(agent_name='navi', model='gpt-4o', max_steps=15)", module="run") + record(
        when, waalog.worker_tasks(worker, tasks), module="run"
    )


A1, A2 = "aaaaaaa1-0000-0000-0000-000000000000-WOS", "aaaaaaa2-0000-0000-0000-000000000000-WOS"
B1, B2 = "bbbbbbb1-0000-0000-0000-000000000000-WOS", "bbbbbbb2-0000-0000-0000-000000000000-WOS"


async def test_each_worker_shows_its_own_instruction_and_action(tmp_path: Path, chromium: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    t0 = dt.datetime(2024, 11, 20, 14, 0, 0)
    w0, w1 = logs / "normal-0-20241120@140000.log", logs / "normal-1-20241120@140001.log"
    w0.write_text(worker_header(t0, 0, [("notepad", A1), ("notepad", A2)])
                  + task_records(t0, "notepad", A1, "Type hello in Notepad.", ["pyautogui.write('hello')"]))
    w1.write_text(worker_header(t0, 1, [("chrome", B1), ("chrome", B2)])
                  + task_records(t0, "chrome", B1, "Open a new tab.", ["pyautogui.hotkey('ctrl', 't')", "WAIT"]))
    target = TargetSpec(name="local", log=str(logs / "normal-*.log"), process_pattern=None)
    async with running_server(Settings(port=0, targets=(target,))) as server:

        def panels(page: Any) -> dict[str, list[str]]:
            return page.eval_on_selector_all(
                f"{CARD} .worker",
                """ws => Object.fromEntries(ws.map(w => [w.dataset.worker, [w.dataset.task,
                    w.querySelector('[data-field=w-instruction]').textContent,
                    w.querySelector('[data-field=w-action]').textContent, w.dataset.step]]))""",
            )

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.goto(f"{server.url}/?interval=1")
                page.wait_for_function(
                    "sel => [...document.querySelectorAll(sel + ' .worker')].filter(w => w.dataset.step).length === 2",
                    arg=CARD,
                )
                out: dict[str, Any] = {"before": panels(page)}
                # Worker 0 moves on (a step): only its panel changes.
                append(w0, record(t0 + dt.timedelta(seconds=30), waalog.step(2, "pyautogui.press('enter')")))
                page.wait_for_function(
                    "sel => [...document.querySelectorAll(sel + ' .worker')].some(w => w.dataset.step === '2' && "
                    "w.dataset.task.startsWith('aaaa'))",
                    arg=CARD,
                )
                out["after"] = panels(page)
                # A running task's trajectory, from its worker's panel (this target has no
                # results folder: the task's facts and the server's reason).
                page.click(f"{CARD} .worker[data-task='{B1}'] [data-field=w-task]")
                page.wait_for_selector("#trajectory[data-state=missing]")
                out["dialog"] = [page.text_content(f"#trajectory [data-field={f}]")
                                 for f in ("task", "result", "instruction", "status")]
                return w, out

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
    before = sorted(out["before"].values())
    assert before == [
        [A1, "Type hello in Notepad.", "pyautogui.write('hello')", "1"],
        [B1, "Open a new tab.", "WAIT", "2"],
    ], out["before"]
    after = sorted(out["after"].values())
    assert after == [
        [A1, "Type hello in Notepad.", "pyautogui.press('enter')", "2"],
        [B1, "Open a new tab.", "WAIT", "2"],
    ], out["after"]
    assert out["dialog"][:3] == [B1, "running", "Open a new tab."]
    # (the results folder a glob of logs/ implies: the folder above it, where nothing was written)
    assert out["dialog"][3].startswith("No trajectory for this task on the server (no folder of this task under "), out
    assert watch.problems() == []


# ------------------------------------------------------------------ hostile trajectories

HOSTILE_ACTION = "pyautogui.typewrite('</pre><img src=x onerror=window.__xss=1>')\n<script>window.__xss=2</script>"
HOSTILE_SHOT = '"><img src=x onerror=window.__xss=3>.png'
HOSTILE_EXCEPTION = "<img src=x onerror=window.__xss=4> boom"
HOSTILE_TRACEBACK = "Traceback (most recent call last):\n  <svg/onload=window.__xss=5>\n<b>ValueError</b>: boom\n"


def rewrite_traj(results: Path, task: Any, change: Any) -> None:
    path = results / task_folder(task) / "traj.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(change(obj)) + "\n" for obj in lines))


async def test_hostile_actions_names_and_tracebacks_in_a_trajectory_stay_text(tmp_path: Path, chromium: str) -> None:
    log, results = tmp_path / "waa.log", tmp_path / "results"
    plan = (await simulate(log, tasks=8, step_seconds=0, seed=3, results_dir=results, showcase=True)).tasks
    plain = next(t for t in plan if not t.error and t.steps >= 3)
    raised = next(t for t in plan if t.error and t.steps >= 2)

    def hostile_steps(obj: dict[str, Any]) -> dict[str, Any]:
        if obj.get("step_num") == 1:
            obj["action"] = HOSTILE_ACTION
            obj["screenshot"] = HOSTILE_SHOT  # not a name the recorder writes: not served, not shown
        elif obj.get("step_num") == 2:
            obj["screenshot"] = "javascript:window.__xss=6"
        return obj

    def hostile_error(obj: dict[str, Any]) -> dict[str, Any]:
        if "Error" in obj:
            obj["Exception"] = HOSTILE_EXCEPTION
            obj["Traceback"] = HOSTILE_TRACEBACK
        return obj

    rewrite_traj(results, plain, hostile_steps)
    rewrite_traj(results, raised, hostile_error)
    target = TargetSpec(name="local", log=str(log), results=str(results), process_pattern=None)
    async with running_server(Settings(port=0, targets=(target,))) as server:

        def scenario() -> tuple[PageWatch, dict[str, Any]]:
            with open_page(chromium) as w:
                page = w.page
                page.goto(f"{server.url}/?interval=1")
                wait_finished(page, len(plan))
                page.click(f"{CARD} .results tr[data-task-id='{plain.task_id}'] .col-domain")
                page.wait_for_selector("#trajectory[data-state=loaded]")
                out: dict[str, Any] = {
                    "steps": page.eval_on_selector_all(
                        "#trajectory .traj-step",
                        "lis => lis.map(li => [li.querySelector('.step-action').textContent, li.querySelectorAll('img').length])",
                    ),
                }
                page.keyboard.press("Escape")
                page.click(f"{CARD} .results tr[data-task-id='{raised.task_id}'] .col-domain")
                page.wait_for_selector("#trajectory[data-state=loaded]")
                out["error"] = page.text_content("#trajectory [data-field=error-message]")
                out["traceback"] = page.text_content("#trajectory [data-field=traceback]")
                out["xss"] = page.evaluate("typeof window.__xss")
                out["elements"] = page.evaluate(
                    "document.querySelectorAll('#trajectory svg, #trajectory script, #trajectory b,"
                    " #trajectory .traj-error img, #trajectory pre img').length"
                )
                return w, out

        with trio.fail_after(GUARD):
            watch, out = await trio.to_thread.run_sync(scenario)
    steps = out["steps"]
    assert steps[0] == [HOSTILE_ACTION, 0], "the action as text; an unlisted screenshot name is no image"
    assert steps[1] == [plain.actions[1], 0]
    assert all(images == 1 for _, images in steps[2:]), steps
    assert out["error"] == HOSTILE_EXCEPTION
    assert out["traceback"] == HOSTILE_TRACEBACK
    assert out["xss"] == "undefined"
    assert out["elements"] == 0
    assert watch.problems() == []
