#!/usr/bin/env python3
"""Take the README's dashboard screenshot: docs/dashboard.png (laptop width).

Runs a real server on a simulated WAA run (``trio_sse.testing``), opens the dashboard in
headless Chromium (Debian's /usr/bin/chromium, driven by Playwright — never
``playwright install``) and saves the page once the run is about two thirds done, so the
picture shows a live run: bar, the worker's task, step, instruction and latest action (and
its screenshot once the server sends `step` events with one), wall time, ETA, the per-domain
table and the results. ``--finished`` waits for the run's end instead; ``--phone`` adds
docs/dashboard-phone.png; ``--trajectory`` also opens a finished task's trajectory and saves
docs/trajectory.png (its steps need the server's results API, GET /api/tasks/<id>).

    .venv/bin/python scripts/screenshot.py [--out docs/dashboard.png] [--finished] [--phone] [--trajectory]

Not a test (tests/test_dashboard.py checks the page); a helper for the docs.
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

from trio_sse.testing import simulated_server  # noqa: E402

TASKS = 12


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise SystemExit("screenshot: chromium is missing (apt-get install chromium, or scripts/dev test)")
    return path


def shoot(url: str, out: Path, *, finished: bool, phone: bool, trajectory: bool) -> None:
    with open_page(chromium_path(), viewport=LAPTOP, timeout_ms=120_000) as w:
        page = w.page
        page.goto(f"{url}/?interval=1")
        card = "[data-target='local']"
        if finished:
            condition = "sel => document.querySelector(sel)?.dataset.finished === 'true'"
        else:
            # Two thirds done, and a task under way (its step, instruction and action shown).
            condition = f"""sel => {{
                const c = document.querySelector(sel);
                const w = c && c.querySelector('.worker');
                return c && Number(c.dataset.completed) >= {2 * TASKS // 3}
                    && c.querySelector('[data-field=current-step]').textContent !== '—'
                    && w && !w.querySelector('[data-field=w-instruction]').hidden
                    && !w.querySelector('[data-field=w-action]').hidden;
            }}"""
        page.wait_for_function(condition, arg=card)
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
            page.click(f"{card} .results tbody tr .task-link")
            page.wait_for_function("() => ['loaded', 'missing', 'failed'].includes(document.getElementById('trajectory').dataset.state)")
            page.wait_for_timeout(500)  # lazy screenshots of the first steps
            traj_out = out.with_name("trajectory" + out.suffix)
            page.screenshot(path=str(traj_out))
            print(f"wrote {traj_out}")
            # Without the results API the server answers 404: the dialog says so (not an error here).
            w.console_errors[:] = [e for e in w.console_errors if "status of 404" not in e]
        if w.problems():
            raise SystemExit(f"screenshot: the page reported errors: {w.problems()}")


async def main(out: Path, finished: bool, phone: bool, trajectory: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with simulated_server(tmp, tasks=TASKS, step_seconds=0.25, seed=3) as sim:
            await trio.to_thread.run_sync(
                lambda: shoot(sim.url, out, finished=finished, phone=phone, trajectory=trajectory)
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "docs" / "dashboard.png")
    parser.add_argument("--finished", action="store_true", help="wait for the end of the run")
    parser.add_argument("--phone", action="store_true", help="also a phone-width picture")
    parser.add_argument("--trajectory", action="store_true", help="also a task's trajectory dialog (docs/trajectory.png)")
    args = parser.parse_args()
    trio.run(main, args.out, args.finished, args.phone, args.trajectory)
