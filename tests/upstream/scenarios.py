"""The upstream scenarios: each a short script of what happened in a WAA or OSWorld run.

Owns: the scenario definitions (tasks, outcomes, the failure kind each task truly has) and
:func:`build`, which runs one through :mod:`.builder` in a temporary results directory and
returns its artifacts (the normal log file(s), the console as ``docker logs`` shows it), the
order they grew in, and the expected parsed events of each artifact. Must not: parse.

Each scenario's docstring names the upstream lines it exercises (beyond the task loop every
WAA scenario goes through: run.py:27,139,204-229,256-284,290/292,372,394,416,436;
lib_run_single.py:41,56,60,61,77,82,84; desktop_env.py:81,88,127,245-288,410,413;
python.py:62,180).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trio_sse.logparse import ParsedEvent

from . import errors
from .builder import (
    Call,
    Interrupt,
    OSWorldRun,
    OSWorldTask,
    Raises,
    Scored,
    Step,
    Task,
    WaaRun,
    Workspace,
    interleave,
    plain_steps,
)

START = dt.datetime(2024, 11, 20, 14, 5, 12, 345000)


@dataclass
class Fixture:
    """One scenario's output."""

    name: str
    doc: str
    artifacts: dict[str, bytes]  # "logs/normal-0-<ts>.log", "console-0", ... → bytes
    expected: dict[str, list[ParsedEvent]]  # artifact → its events (offset 0)
    timeline: list[tuple[str, bytes]]  # (artifact, bytes appended), in the order they were written
    parse_errors: int = 0  # what a parser counts in each artifact (a line cut inside a Worker list)
    parse_options: dict[str, Any] = field(default_factory=dict)

    def logs(self) -> list[str]:
        return sorted(name for name in self.artifacts if name.startswith("logs/"))


# ----------------------------------------------------------------------------- task ids

ID_WOS = "366de66e-cbae-4d72-b042-26390db2b145-WOS"
ID_LOWER = "bb5e4c0d-f964-439c-97b6-bdb9747de3f4-wos"
ID_WOS_2 = "e1fc0df3-c8b9-4ee7-864c-d0b590d3aa56-WOS-2"
ID_2_WOS = "3b2b2ffe-0a8b-4a4b-8b3e-6a0a4d5f0f67-2-WOS"
ID_UPPER = "7E4F3D1C-9B2A-4C6D-8E0F-1A2B3C4D5E6F-WOS"
ID_INF = "INF-0bf05a7d-b7c6-4a3c-a6b1-c79d4b6ba5c7-WOS"

NAVI_ACTION = (
    "computer.mouse.move_id(id=42)\n"
    "computer.mouse.single_click()\n"
    "# Step 2: type the name; Finished notepad/xyz is not a record\n"
    "computer.keyboard.write('Reports')"
)


def _task(domain: str, task_id: str, end: Any, *actions: str, readiness: str = "ready", steps: tuple[Step, ...] | None = None) -> Task:
    return Task(
        domain, task_id, f"Do the {domain} task {task_id[:8]}: open it, change one setting, save.",
        steps if steps is not None else plain_steps(*actions), end, readiness,
    )  # fmt: skip


def _finish(ws: Workspace, name: str, doc: str, runs: list[Any], *, parse_errors: int = 0) -> Fixture:
    for run in runs:
        run.close()
    artifacts: dict[str, bytes] = {}
    for rel in ws.followed:
        artifacts[rel] = (ws.root / rel).read_bytes()
    for cname, console in ws.consoles.items():
        artifacts[cname] = console.close()
    expected = {k: list(t.events) for k, t in ws.truths.items() if k in artifacts}
    return Fixture(name, doc, artifacts, expected, list(ws.timeline), parse_errors)


# ----------------------------------------------------------------------------- WAA scenarios


def waa_single(root: Path) -> Fixture:
    """A normal single-worker run seen from the container's console (``docker run -it``: a
    pty) and the file: dockur's boot (``Windows started succesfully``, sic), entry_setup.sh's
    ``VM is up and running...``; three tasks (pass with DONE, fail with FAIL, and the Paint
    getter's own ``Result: Found a red circle in the screenshot``, microsoftpaint.py:64, before
    lib_run_single's ``Result: 1.00``); ``Average score``. Task ids ``-WOS``, ``-wos``, ``-WOS-2``."""
    ws = Workspace(root)
    run = WaaRun(ws, start=START, console="pty", model="gpt-4o")
    tasks = [
        _task("notepad", ID_WOS, Scored(1.0, "agent"), NAVI_ACTION, "DONE"),
        _task("chrome", ID_LOWER, Scored(0.0, "agent"), "computer.mouse.move_id(id=7)", "FAIL"),
        _task(
            "microsoft_paint", ID_WOS_2, Scored(1.0, "agent", getter=("get_file", "file_downloaded", "paint_found")),
            "computer.mouse.move_abs(x=0.5, y=0.5)", "DONE",
        ),  # fmt: skip
    ]
    interleave(_chain(run.container_boot(fresh=True), run.run(tasks)))
    return _finish(ws, "waa_single", waa_single.__doc__ or "", [run])


def waa_parallel(root: Path) -> Fixture:
    """Two WAA workers (``--worker_id 0/1 --num_workers 2``, Azure-style) writing
    ``logs/normal-0-<ts>.log`` and ``logs/normal-1-<ts'>.log`` side by side, interleaved in
    time: ``Left tasks`` counts all tasks in both files (run.py:409-416), each ``Worker N is
    doing tasks`` its own slice (run.py:420-436). Ids ``-2-WOS``, upper-case hex, ``INF-``."""
    ws = Workspace(root)
    all_tasks = [
        _task("notepad", ID_2_WOS, Scored(1.0, "agent"), "computer.mouse.single_click()", "DONE"),
        _task("settings", ID_UPPER, Scored(0.0, "agent"), "computer.mouse.move_id(id=3)", "FAIL"),
        _task("vs_code", ID_INF, Scored(1.0, "agent"), "computer.keyboard.write('x')", "DONE"),
        _task("notepad", "0c9dda13-428e-4ad0-9b3b-3a1b4b2c1d00-WOS", Scored(0.0, "agent"), "computer.mouse.single_click()", "FAIL"),
        _task("chrome", "12086550-11c0-466b-b367-1d9e75b3910e-WOS", Scored(1.0, "agent"), "computer.mouse.single_click()", "DONE"),
    ]
    # run.py:423-433: 5 tasks over 2 workers: worker 0 gets 3, worker 1 gets 2.
    share = {0: all_tasks[:3], 1: all_tasks[3:]}
    runs = [
        WaaRun(ws, start=START + dt.timedelta(seconds=2.0 * w), worker_id=w, num_workers=2, console="pipe")
        for w in (0, 1)
    ]  # fmt: skip
    interleave(*(_left_all(r, all_tasks, share[r.worker_id]) for r in runs))
    return _finish(ws, "waa_parallel", waa_parallel.__doc__ or "", runs)


def _left_all(run: WaaRun, all_tasks: list[Task], mine: list[Task]) -> Any:
    """run.py with num_workers > 1: ``Left tasks`` lists everything, the worker runs its share."""
    return run.run(mine, left=all_tasks)


def waa_raises(root: Path) -> Fixture:
    """A task raises out of the agent (``Exception in d/id: list index out of range``,
    run.py:259, then the traceback record, run.py:261): failure kind ``agent``; the next task
    passes; WAA's ``Average score`` is over the tasks with a Result only (1.0)."""
    ws = Workspace(root)
    run = WaaRun(ws, start=START, console="pty")
    tasks = [
        _task("notepad", ID_WOS, Raises(errors.agent_bug(), "predict", "agent"), "computer.mouse.single_click()", "DONE"),
        _task("chrome", ID_LOWER, Scored(1.0, "agent"), "computer.mouse.single_click()", "DONE"),
    ]
    interleave(run.run(tasks))
    return _finish(ws, "waa_raises", waa_raises.__doc__ or "", [run])


def waa_vm_down(root: Path) -> Fixture:
    """The guest's WAA server goes away: ``Failed to get hello`` (run.py:375) twice before the
    run; the first task's reset still sees ``VM is up and ready.``, then the server dies under
    its first action (``('Connection aborted.', RemoteDisconnected(...))`` on ``/obs_winagent``,
    python.py:94); every later reset raises out of ``get_probe`` (python.py:25 has no try):
    refused, then ``[Errno 110] Connection timed out`` — all failure kind ``infra``, and the
    guest is not ready; ``No examples finished.`` (run.py:290)."""
    ws = Workspace(root)
    run = WaaRun(ws, start=START, console="pipe")
    tasks = [
        _task("notepad", ID_WOS, Raises(errors.obs_aborted(), "step", "infra", vm_unreachable=True), "computer.mouse.single_click()"),
        _task("chrome", ID_LOWER, Raises(errors.probe_refused(), "reset", "infra", vm_unreachable=True), "DONE"),
        _task("settings", ID_UPPER, Raises(errors.probe_timed_out(), "reset", "infra", vm_unreachable=True), "DONE"),
    ]
    interleave(run.run(tasks, hello_failures=2))
    return _finish(ws, "waa_vm_down", waa_vm_down.__doc__ or "", [run])


def waa_readiness(root: Path) -> Fixture:
    """``VM is up and ready.`` (desktop_env.py:127), ``VM not ready yet. Retrying in 5
    seconds...`` (130) and ERROR ``VM did not become ready after 20 attempts.`` (134) after
    ``Failed to get a successful response from the VM.`` (python.py:29); the task after the
    give-up then gets ``Failed to execute command. Status code: 500`` (python.py:182) and scores
    0: failure kind ``infra``."""
    ws = Workspace(root)
    run = WaaRun(ws, start=START, console="pipe")
    tasks = [
        _task("notepad", ID_WOS, Scored(1.0, "agent"), "computer.mouse.single_click()", "DONE", readiness="slow"),
        _task(
            "chrome", ID_LOWER, Scored(0.0, "infra"), readiness="gave_up",
            steps=(Step("computer.mouse.single_click()", server=500), Step("FAIL")),
        ),  # fmt: skip
    ]
    interleave(run.run(tasks))
    return _finish(ws, "waa_readiness", waa_readiness.__doc__ or "", [run])


def waa_evaluator(root: Path) -> Fixture:
    """An evaluator whose getter raises is logged and swallowed (``An unexpected error
    occurred: ...``, desktop_env.py:383) and gives ``Result: 0.00``: a score, kind ``agent``.
    A metric raising *out of* ``env.evaluate()`` (desktop_env.py:391) after ``Running
    evaluator(s)...`` (lib_run_single.py:82) is ``Exception in d/id`` — kind ``evaluator``."""
    ws = Workspace(root)
    run = WaaRun(ws, start=START, console="pipe")
    tasks = [
        _task("microsoft_paint", ID_WOS_2, Scored(0.0, "agent", getter=("evaluator_error",)), "computer.mouse.single_click()", "DONE"),
        _task("libreoffice_calc", ID_2_WOS, Raises(errors.metric_raised(), "evaluate", "evaluator"), "computer.mouse.single_click()", "DONE"),
    ]
    interleave(run.run(tasks))
    return _finish(ws, "waa_evaluator", waa_evaluator.__doc__ or "", [run])


def waa_status_500(root: Path) -> Fixture:
    """The guest server fails the agent's actions: ``Failed to execute command. Status code:
    500`` (python.py:182) and ``An error occurred while trying to execute the command: ...Read
    timed out`` (python.py:185), both swallowed; the task ends with ``Result: 0.00``: kind
    ``infra``."""
    ws = Workspace(root)
    run = WaaRun(ws, start=START, console="pipe")
    steps = (Step(NAVI_ACTION, server=500), Step("computer.keyboard.write('a')", server="error"), Step("DONE"))
    tasks = [_task("vs_code", ID_INF, Scored(0.0, "infra"), steps=steps)]
    interleave(run.run(tasks))
    return _finish(ws, "waa_status_500", waa_status_500.__doc__ or "", [run])


def waa_max_steps(root: Path) -> Fixture:
    """``--max_steps 3`` (``Args: Namespace(... max_steps=3 ...)``, run.py:139): a task whose
    third step is not DONE/FAIL runs out of steps (lib_run_single.py:34) and scores 0: kind
    ``max_steps``; one that says DONE on its third step and scores 0 is ``agent``."""
    ws = Workspace(root)
    run = WaaRun(ws, start=START, console="pipe", max_steps=3)
    a = "computer.mouse.single_click()"
    tasks = [
        _task("notepad", ID_WOS, Scored(0.0, "max_steps"), a, a, a),
        _task("chrome", ID_LOWER, Scored(0.0, "agent"), a, a, "DONE"),
    ]
    interleave(run.run(tasks))
    return _finish(ws, "waa_max_steps", waa_max_steps.__doc__ or "", [run])


def waa_interrupted(root: Path) -> Fixture:
    """SIGINT during the second task: ``Interrupted by 2, shutting down`` (a print, run.py:363:
    the console only) and the process exits; the log file just stops with a task started."""
    ws = Workspace(root)
    run = WaaRun(ws, start=START, console="pty")
    a = "computer.mouse.single_click()"
    tasks = [
        _task("notepad", ID_WOS, Scored(1.0, "agent"), a, "DONE"),
        _task("chrome", ID_LOWER, Interrupt(after_steps=2), a, a, a, "DONE"),
        _task("settings", ID_UPPER, Scored(1.0, "agent"), a, "DONE"),
    ]
    interleave(run.run(tasks))
    return _finish(ws, "waa_interrupted", waa_interrupted.__doc__ or "", [run])


def waa_rate_limited(root: Path) -> Fixture:
    """The model API rate-limits: httpx's own ``HTTP Request: POST ... "HTTP/1.1 429 Too Many
    Requests"`` and openai's ``Retrying request to /chat/completions in ... seconds`` (INFO,
    not ``desktopenv``: the file only). The first task gets through; the second exhausts
    Navi's tenacity retries (``RetryError[...RateLimitError]``): kind ``agent``."""
    ws = Workspace(root)
    run = WaaRun(ws, start=START, console="pipe")
    tasks = [
        _task("notepad", ID_WOS, Scored(1.0, "agent"),
              steps=(Step("computer.mouse.single_click()", call=Call((429, 429, 200))), Step("DONE"))),  # fmt: skip
        _task("chrome", ID_LOWER, Raises(errors.model_retry_exhausted(), "predict", "agent"),
              steps=(Step("computer.mouse.single_click()", call=Call((429, 429, 429))),)),  # fmt: skip
    ]
    interleave(run.run(tasks))
    return _finish(ws, "waa_rate_limited", waa_rate_limited.__doc__ or "", [run])


LONG_ID = "f" * 70_000 + "-WOS"


def waa_long_id(root: Path) -> Fixture:
    """Task ids of every upstream form, and one longer than the parser's 64 KiB line bound:
    its ``[Example ID]`` and ``Finished`` records (and the Worker line listing it) are cut at
    different places by the bound; it must stay one task, reported once, with its id cut to
    ``waalog.TASK_ID_MAX_BYTES`` everywhere."""
    ws = Workspace(root)
    run = WaaRun(ws, start=START, console="pipe")
    a = "computer.mouse.single_click()"
    tasks = [
        _task("notepad", ID_WOS, Scored(1.0, "agent"), a, "DONE"),
        _task("notepad", ID_LOWER, Scored(1.0, "agent"), a, "DONE"),
        _task("chrome", ID_WOS_2, Scored(0.0, "agent"), a, "FAIL"),
        _task("chrome", ID_2_WOS, Scored(1.0, "agent"), a, "DONE"),
        _task("settings", ID_UPPER, Scored(1.0, "agent"), a, "DONE"),
        _task("settings", ID_INF, Scored(0.0, "agent"), a, "FAIL"),
        _task("vs_code", LONG_ID, Scored(1.0, "agent"), a, "DONE"),
    ]
    interleave(run.run(tasks))
    # The Worker line lists the long id too: cut at the bound inside its tuple (a parse error;
    # the cut tuple still counts as a task).
    return _finish(ws, "waa_long_id", waa_long_id.__doc__ or "", [run], parse_errors=1)


# ----------------------------------------------------------------------------- OSWorld scenarios

OSW_REFUSED = errors.Raised(
    "HTTPConnectionPool(host='172.17.0.3', port=5000): Max retries exceeded with url: /screenshot (Caused by "
    "NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f3b2c1d0a90>: Failed to establish a new "
    "connection: [Errno 111] Connection refused'))",
    "",
)


def osworld_env(root: Path) -> Fixture:
    """OSWorld ``run_multienv.py`` (8be2a40): the main process logs ``Left tasks`` (351), ``Args``
    (198) and ``Average score`` (255); two env processes (``Process-2``, ``Process-3``: the
    ``Manager()`` is ``SyncManager-1``) interleave ``[Env N][Domain]`` / ``[Env N][Example ID]``
    / ``[Env N][Instruction]`` (156-158) with *untagged* ``lib_run_single`` records (``Step``,
    ``Result``: 24, 49) and httpx's; ``Exception in Env2 d/id: ...`` (182, no traceback);
    ``Executing tasks in environment N/2`` (146) has no tag. No ``Finished`` line exists."""
    ws = Workspace(root)
    run = OSWorldRun(ws, start=START, variant="env")
    plan = {
        1: [
            OSWorldTask("chrome", "bb5e4c0d-f964-439c-97b6-bdb9747de3f4", "Open the settings page.", ("pyautogui.click(10, 10)", "DONE"), 1.0, "agent"),
            OSWorldTask("gimp", "7a4deb26-d57d-4ea9-9a73-630f66a7b568", "Make the image brighter.", ("pyautogui.click(5, 5)", "FAIL"), 0.0, "agent"),
        ],
        2: [
            OSWorldTask("vs_code", "0ed39f63-6049-43d4-ba4d-5fa2fe04a951", "Install the Python extension.", ("pyautogui.hotkey('ctrl', 'p')",),
                        None, "infra", OSW_REFUSED, vm_unreachable=True),  # fmt: skip
            OSWorldTask("os", "94d95f96-9699-4208-98ba-3c3119edf9c2", "Show hidden files.", ("pyautogui.click(1, 1)", "DONE"), 1.0, "agent",
                        calls=(Call((429, 200)), Call())),  # fmt: skip
        ],
    }
    run.main_start(plan)
    interleave(*(run.env_script(env, tasks) for env, tasks in plan.items()))
    run.main_end()
    return _finish(ws, "osworld_env", osworld_env.__doc__ or "", [run])


def osworld_envprocess(root: Path) -> Fixture:
    """OSWorld's rewritten ``run_multienv.py``: processes named ``EnvProcess-N`` tag their
    records ``[EnvProcess-N][Domain]`` etc. (208-210); ``Exception in EnvProcess-1 d/id: e``
    (233) is followed by the traceback record (234); the main process logs ``Total tasks``
    (316) and, stopped by SIGINT, ``Received signal 2. Gracefully shutting down...`` (275)."""
    ws = Workspace(root)
    run = OSWorldRun(ws, start=START, variant="envprocess")
    bug = errors.agent_bug()
    plan = {
        1: [OSWorldTask("chrome", "06fe7178-4491-4589-810f-2e2bc9502122", "Bookmark this page.", ("pyautogui.click(3, 3)",), None, "agent", bug)],
        2: [OSWorldTask("thunderbird", "3d1682a7-0fb0-49ae-a4dc-a73afd2d06d5", "Reply to the last mail.", ("pyautogui.click(2, 2)", "DONE"), 1.0, "agent")],
    }
    run.main_start(plan)
    interleave(*(run.env_script(env, tasks) for env, tasks in plan.items()))
    run.main_end(interrupted=2)
    return _finish(ws, "osworld_envprocess", osworld_envprocess.__doc__ or "", [run])


def _chain(*gens: Any) -> Any:
    for g in gens:
        yield from g


SCENARIOS: dict[str, Callable[[Path], Fixture]] = {
    f.__name__: f
    for f in (
        waa_single, waa_parallel, waa_raises, waa_vm_down, waa_readiness, waa_evaluator, waa_status_500,
        waa_max_steps, waa_interrupted, waa_rate_limited, waa_long_id, osworld_env, osworld_envprocess,
    )
}  # fmt: skip


def build(name: str) -> Fixture:
    """Run scenario ``name`` in a fresh temporary results directory."""
    with tempfile.TemporaryDirectory(prefix=f"upstream-{name}-") as tmp:
        return SCENARIOS[name](Path(tmp))
