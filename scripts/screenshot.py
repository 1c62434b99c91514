#!/usr/bin/env python3
"""Take the README's dashboard pictures: docs/dashboard.png (laptop width), and on request
docs/trajectory.png and docs/runs.png.

Runs a real server as ``serve --simulate --sim-runs 2 --baseline previous`` does (a simulated
WAA run with its results folder and PNG screenshots, then a second run of the same tasks with
a few outcomes flipped, compared with the first; the history in a temporary SQLite file),
opens the dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright —
never ``playwright install``) and saves the page once the second run is about two thirds
done, so the picture shows a live run: the bar, the worker's task, step, instruction, latest
action and live screenshot, wall time, ETA, the forecast, the fixed / regressed marks, the
per-domain table and the results. ``--trajectory`` then opens a finished task's trajectory
and saves docs/trajectory.png; ``--runs`` waits for the run's end and saves the Runs view
comparing the two runs (docs/runs.png); ``--phone`` adds docs/dashboard-phone.png.

    .venv/bin/python scripts/screenshot.py [--out docs/dashboard.png] [--phone] [--trajectory] [--runs]

Not a test (tests/test_dashboard*.py check the page); a helper for the docs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import trio

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "tests"))  # the browser helpers live with the tests

from browser import LAPTOP, PHONE, open_page  # noqa: E402

from trio_sse.config import Settings, TargetSpec  # noqa: E402
from trio_sse.testing import running_server  # noqa: E402

TASKS = 12
CARD = "[data-target='local']"


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise SystemExit("screenshot: chromium is missing (apt-get install chromium, or scripts/dev test)")
    return path


def shoot(url: str, out: Path, *, phone: bool, trajectory: bool, runs: bool) -> None:
    with open_page(chromium_path(), viewport=LAPTOP, timeout_ms=180_000) as w:
        page = w.page
        page.goto(f"{url}/?interval=1")
        # The second run, two thirds done (compared with the first: its marks and the
        # forecast shown), a task under way with its instruction, action and a screenshot
        # that has loaded.
        page.wait_for_function(
            f"""sel => {{
                const c = document.querySelector(sel);
                const w = c && c.querySelector('.worker');
                const img = w && w.querySelector('[data-field=w-shot]');
                return c && Number(c.dataset.completed) >= {2 * TASKS // 3}
                    && !c.querySelector('[data-field=changes]').hidden
                    && !c.querySelector('[data-field=forecast-box]').hidden
                    && !w.querySelector('[data-field=w-instruction]').hidden
                    && !w.querySelector('[data-field=w-action]').hidden
                    && !w.querySelector('[data-field=w-shot-box]').hidden
                    && img.complete && img.naturalWidth > 0;
            }}""",
            arg=CARD,
            polling=100,
        )
        page.wait_for_timeout(300)  # let the bar's 0.3 s width transition finish
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        print(f"wrote {out}")
        if phone:
            page.set_viewport_size(PHONE)
            phone_out = out.with_name(out.stem + "-phone" + out.suffix)
            page.screenshot(path=str(phone_out), full_page=True)
            print(f"wrote {phone_out}")
            page.set_viewport_size(LAPTOP)
        if trajectory:
            # A finished task with a few steps (its screenshots, the step selected with →).
            row = page.locator(f"{CARD} .results tbody tr").filter(has=page.locator(".col-kind:text-is('max steps')"))
            if row.count() == 0:
                row = page.locator(f"{CARD} .results tbody tr")
            row.first.locator(".task-link").click()
            page.wait_for_selector("#trajectory[data-state=loaded]")
            page.keyboard.press("ArrowRight")
            page.wait_for_function(
                """() => {
                    const s = document.querySelector('#trajectory .traj-step[aria-current=step] img');
                    return s && s.complete && s.naturalWidth > 0;
                }"""
            )
            traj_out = out.with_name("trajectory" + out.suffix)
            page.screenshot(path=str(traj_out))
            print(f"wrote {traj_out}")
            page.keyboard.press("Escape")
        if runs:
            page.wait_for_selector(f"{CARD}[data-finished=true]", timeout=600_000)
            page.evaluate("location.hash = '#runs'")
            page.wait_for_selector("#runs-view[data-state=loaded]")
            boxes = page.locator("#runs-view [data-field=runs] tr input[type=checkbox]")
            boxes.nth(0).check()
            boxes.nth(1).check()
            page.click("#runs-view [data-action=compare]")
            page.wait_for_selector("#runs-view [data-field=compare][data-state=loaded]")
            page.evaluate("window.scrollTo(0, 0)")
            runs_out = out.with_name("runs" + out.suffix)
            page.screenshot(path=str(runs_out), full_page=True)
            print(f"wrote {runs_out}")
        if w.problems():
            raise SystemExit(f"screenshot: the page reported errors: {w.problems()}")


async def main(out: Path, phone: bool, trajectory: bool, runs: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "logs" / "waa.log"
        log.parent.mkdir()
        target = TargetSpec(name="local", log=str(log), results=str(Path(tmp) / "results"), process_pattern=None)
        settings = Settings(
            port=0, targets=(target,), simulate=True, sim_tasks=TASKS, sim_step_seconds=0.3, sim_runs=2,
            baseline="previous", db=str(Path(tmp) / "history.sqlite3"),
        )  # fmt: skip
        async with running_server(settings) as server:
            await trio.to_thread.run_sync(
                lambda: shoot(server.url, out, phone=phone, trajectory=trajectory, runs=runs)
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "docs" / "dashboard.png")
    parser.add_argument("--phone", action="store_true", help="also a phone-width picture")
    parser.add_argument("--trajectory", action="store_true", help="also a task's trajectory dialog (docs/trajectory.png)")
    parser.add_argument("--runs", action="store_true", help="also the Runs view comparing the two runs (docs/runs.png)")
    args = parser.parse_args()
    trio.run(main, args.out, args.phone, args.trajectory, args.runs)
