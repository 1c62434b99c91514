"""Write a realistic Windows Agent Arena run into a log file, at a chosen pace (SPEC §4 simulate),
and optionally WAA's results folder next to it (SPEC §8).

Owns: the simulated run — which tasks, domains, steps, scores and which one raises
(``plan_run``, pure and deterministic per seed), its bytes in the real WAA format of SPEC §7
(``render_run``, pure: every line comes from the shared templates of ``trio_sse.waalog``, the
same module the parser reads with, so writer and reader cannot drift), its results folder
(``render_results``, pure: each task's ``traj.jsonl`` lines, PNG screenshots and
``result.txt`` as WAA's ``TrajectoryRecorder`` writes them, placed between the log's chunks
where WAA writes them), and the writer (``simulate``: truncates the log, then appends chunk by
chunk, ``step_seconds`` per agent step, with ``trio.sleep`` so an ``autojump_clock`` drives it
in tests).

``showcase`` (what ``serve --simulate`` uses) adds what the demo should show, on runs of 6
tasks or more: a second task raising (the guest unreachable), one task hitting ``max_steps``
and one that stalls for ``STALL_STEPS`` steps mid-task. Without it, plans and logs are
exactly what they always were.

The planned ``SimTask``s are the *expected* results: tests and ``trio_sse.testing`` compare
what the server streamed with them.

**Several runs** (``runs=N``, ``serve --simulate --sim-runs N``): the same tasks again, one run
after the other, each later run with a few outcomes flipped against the run before it
(``plan_rerun``: some passes fail now, some failures pass — the demo of a baseline comparison,
``--baseline previous``). Each later run *replaces* the log file (a new file renamed over it,
as a benchmark started again by a script that writes a fresh log would): the monitor sees a
new file generation, a new run read from its first byte, with its own run id.

Must not: read the log, import the parser, or touch anything but the one file it writes and
its own task folders under the results folder (marked with ``SIM_MARKER``; a folder of the
same task without the mark is never touched: the run is refused).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import random
import shutil
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import trio

from trio_sse import waalog
from trio_sse.png import step_frame

DOMAINS: tuple[str, ...] = (
    "notepad",
    "settings",
    "chrome",
    "msedge",
    "vs_code",
    "file_explorer",
    "libreoffice_calc",
    "libreoffice_writer",
    "vlc",
    "windows_calc",
    "clock",
    "paint",
)

_INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "notepad": (
        "Open Notepad and write 'Hello, World!' then save the file as hello.txt on the Desktop.",
        "Change the font size of the open document in Notepad to 16.",
    ),
    "settings": ("Turn on Night light in the display settings.", "Set the time zone to UTC+01:00."),
    "chrome": (
        "Open a new tab in Chrome and search for 'Windows Agent Arena'.",
        "Bookmark the current page in Chrome and name it 'Benchmark'.",
    ),
    "msedge": ("Clear the browsing history of the last hour in Microsoft Edge.", "Set Bing as the default search engine."),
    "vs_code": ("Install the Python extension in VS Code.", "Change the VS Code color theme to 'Light+'."),
    "file_explorer": (
        "Create a folder called 'Reports' in Documents and move all .docx files into it.",
        "Show hidden files in File Explorer.",
    ),
    "libreoffice_calc": (
        "Fill column B with the sum of columns C and D for every row of the sheet.",
        "Sort the data in the sheet by the 'Date' column, oldest first.",
    ),
    "libreoffice_writer": (
        "Make the title of the document bold and centre it.",
        "Insert a page number in the footer of every page.",
    ),
    "vlc": ("Set the VLC playback speed to 1.5x.", "Add the video on the Desktop to the VLC playlist."),
    "windows_calc": ("Switch the calculator to scientific mode and compute 2^10.", "Convert 10 miles to kilometres."),
    "clock": ("Start a 5 minute timer in the Clock app.", "Add an alarm for 7:30 AM on weekdays."),
    "paint": ("Draw a red rectangle in the middle of the canvas.", "Resize the image to 50% and save it."),
}

# Agent actions as WAA's agents log them: pyautogui calls and `computer.*` code blocks,
# several of them spanning lines (continuation lines without a prefix).
_ACTIONS: tuple[str, ...] = (
    "pyautogui.click(512, 384)",
    "pyautogui.hotkey('ctrl', 's')",
    "pyautogui.typewrite('Hello, World!', interval=0.05)",
    "pyautogui.press('enter')",
    "computer.mouse.move_id(id=12)\ncomputer.mouse.single_click()",
    "# Open the menu first\ncomputer.mouse.move_id(id=3)\ncomputer.mouse.single_click()\ncomputer.keyboard.write('report')",
    "computer.os.open_program('notepad')",
    "import pyautogui\npyautogui.moveTo(200, 150, duration=0.2)\npyautogui.doubleClick()",
    "WAIT",
    "pyautogui.scroll(-300)",
)

_EXCEPTIONS: tuple[tuple[str, str], ...] = (
    ("TimeoutError", "Timed out waiting for a response from the Windows Arena Server"),
    ("ConnectionError", "HTTPConnectionPool(host='20.20.20.21', port=5000): Max retries exceeded with url: /screenshot"),
    ("RuntimeError", "The evaluator could not open the result file C:\\Users\\Docker\\Desktop\\hello.txt"),
)

_PROCESS = "MainProcess"
_STEP_WALL_SECONDS = 9.5  # virtual log time an agent step takes (timestamps only)
_LINE_WALL_SECONDS = 0.137  # virtual log time between two lines
DEFAULT_CLOCK_START = _dt.datetime(2024, 9, 16, 9, 30, 0)
FAIL_RATE = 0.35  # share of tasks that end with Result 0.00
MAX_TASKS = 100_000
MAX_STEP_SECONDS = 3600.0
MAX_RUNS = 20
RERUN_CHANGED = 0.2  # share of the outcomes a later run flips (half fixed, half regressed)
MAX_STEPS = 15  # the Args line's max_steps
STALL_STEPS = 30  # (showcase) the stalling task's pause, in agent steps: 60 s at the demo's pace
SHOWCASE_MIN_TASKS = 6
# The results folder's levels above <domain>, as WAA's run.py:235-243 builds them from its
# arguments (--action_space default, --observation_type default, the Args line's model, trial 0).
RESULT_LEVELS: tuple[str, ...] = ("pyautogui", "a11y_tree", "gpt-4o", "0")
SIM_MARKER = ".trio-sse-simulated"  # in every task folder the simulator writes


@dataclass(frozen=True, slots=True)
class SimTask:
    """One planned task and its expected result (what the parser / server must report)."""

    task_id: str
    domain: str
    success: bool  # score >= 1.0 (the default success threshold); False when it raises
    score: float | None  # None: the task raises
    error: str | None  # the exception message when it raises
    steps: int  # ``Step n:`` lines logged for this task
    instruction: str
    actions: tuple[str, ...]  # the ``steps`` actions, in order
    stall_at: int = 0  # (showcase) the step the agent takes STALL_STEPS steps to decide, 0: none
    stall_steps: float = 0.0


@dataclass(frozen=True, slots=True)
class SimulationPlan:
    """The validated knobs of one simulated run."""

    tasks: int = 12
    seed: int = 0
    step_seconds: float = 1.0
    ansi: bool = True
    fail_rate: float = FAIL_RATE

    def __post_init__(self) -> None:
        _check_tasks(self.tasks)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if (
            isinstance(self.step_seconds, bool)
            or not isinstance(self.step_seconds, (int, float))
            or not math.isfinite(self.step_seconds)
            or not 0 <= self.step_seconds <= MAX_STEP_SECONDS
        ):
            raise ValueError(f"step_seconds must be a number from 0 to {MAX_STEP_SECONDS:g}, got {self.step_seconds!r}")
        if not isinstance(self.fail_rate, (int, float)) or not 0 <= self.fail_rate <= 1:
            raise ValueError(f"fail_rate must be a number from 0 to 1, got {self.fail_rate!r}")


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What ``simulate`` wrote: where, the expected task results, how many bytes."""

    path: str
    tasks: tuple[SimTask, ...]  # the first run's
    bytes_written: int
    total_steps: int
    runs: tuple[tuple[SimTask, ...], ...] = ()  # every run's, in order (the first is ``tasks``)

    @property
    def passed(self) -> int:
        return sum(t.success for t in self.tasks)

    @property
    def average_score(self) -> float | None:
        return average_score(self.tasks)


def _check_tasks(tasks: object) -> None:
    if isinstance(tasks, bool) or not isinstance(tasks, int) or not 1 <= tasks <= MAX_TASKS:
        raise ValueError(f"tasks must be an integer from 1 to {MAX_TASKS}, got {tasks!r}")


def average_score(tasks: Sequence[SimTask]) -> float | None:
    """WAA's ``Average score``: the mean over tasks that got a score (a task that raised has
    none); None when no task finished (``No examples finished.``)."""
    scores = [t.score for t in tasks if t.score is not None]
    return sum(scores) / len(scores) if scores else None


def plan_run(
    tasks: int, *, seed: int = 0, fail_rate: float = FAIL_RATE, showcase: bool = False
) -> tuple[SimTask, ...]:
    """Pure and deterministic per ``(tasks, seed, fail_rate, showcase)``: the run's tasks in order.

    Domains are visited in groups (WAA iterates domain by domain); each task takes 2-8 steps
    and ends with ``DONE`` (or ``FAIL``); about ``fail_rate`` of them score 0.00, a few get a
    partial 0.50, the rest 1.00. When there are 2 or more tasks exactly one raises (after
    1-3 steps; no ``Result`` for it). ``showcase`` (6 tasks or more) then changes three other
    tasks: one raises too (the guest unreachable), one runs into ``MAX_STEPS`` without
    ``DONE`` (score 0.00), one stalls mid-task (``stall_at``); the rest stay as they were.
    """
    SimulationPlan(tasks=tasks, seed=seed, fail_rate=fail_rate)  # validates
    rng = random.Random(f"trio-sse-simulate/{seed}")
    domain_order = list(DOMAINS)
    rng.shuffle(domain_order)
    # Spread the tasks over a few domains, grouped as WAA runs them.
    n_domains = min(len(domain_order), max(1, math.ceil(tasks / 3)))
    chosen = domain_order[:n_domains]
    domains = sorted((chosen[i % n_domains] for i in range(tasks)), key=chosen.index)
    raising = rng.randrange(1, tasks) if tasks >= 2 else -1  # never the first task
    out: list[SimTask] = []
    for i, dom in enumerate(domains):
        task_id = f"{uuid.UUID(int=rng.getrandbits(128), version=4)}-WOS"
        instruction = rng.choice(_INSTRUCTIONS[dom])
        if i == raising:
            n = rng.randint(1, 3)
            actions = tuple(rng.choice(_ACTIONS) for _ in range(n))
            exc_type, message = rng.choice(_EXCEPTIONS)
            out.append(SimTask(task_id, dom, False, None, message, n, instruction, actions))
            continue
        n = rng.randint(2, 8)
        roll = rng.random()
        score = 0.0 if roll < fail_rate else 0.5 if roll < fail_rate + 0.1 else 1.0
        last = "FAIL" if score == 0.0 and rng.random() < 0.5 else "DONE"
        actions = tuple(rng.choice(_ACTIONS) for _ in range(n - 1)) + (last,)
        out.append(SimTask(task_id, dom, score >= 1.0, score, None, n, instruction, actions))
    if showcase and tasks >= SHOWCASE_MIN_TASKS:
        _showcase(out, random.Random(f"trio-sse-simulate/{seed}/showcase"))
    return tuple(out)


def plan_rerun(
    before: Sequence[SimTask], run: int, *, seed: int = 0, changed: float = RERUN_CHANGED
) -> tuple[SimTask, ...]:
    """Pure and deterministic: run number ``run`` (2, 3, …) of the same tasks as ``before``
    (the run before it) — the same ids, domains, instructions and steps, with about
    ``changed`` of the outcomes flipped: as many passes now fail (regressed: ``Result:
    0.00``, last action ``FAIL``) as failures now pass (fixed: ``1.00``, ``DONE``), at least
    one of each when ``before`` has both. The task that raised raises again."""
    if isinstance(run, bool) or not isinstance(run, int) or not 2 <= run <= MAX_RUNS:
        raise ValueError(f"run must be an integer from 2 to {MAX_RUNS}, got {run!r}")
    if not before:
        raise ValueError("plan_rerun needs the run before it")
    rng = random.Random(f"trio-sse-simulate/{seed}/run/{run}")
    passed = [i for i, t in enumerate(before) if t.error is None and t.success]
    failed = [i for i, t in enumerate(before) if t.error is None and not t.success]
    k = max(1, round(len(before) * changed / 2))
    flip = set(rng.sample(passed, min(k, len(passed)))) | set(rng.sample(failed, min(k, len(failed))))
    out = []
    for i, t in enumerate(before):
        if i in flip:
            score, last = (0.0, "FAIL") if t.success else (1.0, "DONE")
            t = replace(t, success=score >= 1.0, score=score, actions=(*t.actions[:-1], last))
        out.append(t)
    return tuple(out)


def plan_runs(
    tasks: int, runs: int = 1, *, seed: int = 0, fail_rate: float = FAIL_RATE, showcase: bool = False
) -> tuple[tuple[SimTask, ...], ...]:
    """Every run ``simulate(tasks=…, runs=…, seed=…, showcase=…)`` writes: ``plan_run``, then
    each later run ``plan_rerun`` of the one before."""
    if isinstance(runs, bool) or not isinstance(runs, int) or not 1 <= runs <= MAX_RUNS:
        raise ValueError(f"runs must be an integer from 1 to {MAX_RUNS}, got {runs!r}")
    plans = [plan_run(tasks, seed=seed, fail_rate=fail_rate, showcase=showcase)]
    for n in range(2, runs + 1):
        plans.append(plan_rerun(plans[-1], n, seed=seed))
    return tuple(plans)


def _showcase(out: list[SimTask], rng: random.Random) -> None:
    """Change three tasks that neither raise nor come first (own random stream: the base plan
    is the same with or without the showcase)."""
    candidates = [i for i, t in enumerate(out) if i > 0 and t.error is None]
    raising, max_steps, stalling = rng.sample(candidates, 3)
    t = out[raising]
    message = _EXCEPTIONS[1][1]  # the guest unreachable: failure_kind infra
    out[raising] = SimTask(t.task_id, t.domain, False, None, message, 2, t.instruction, t.actions[:1] + ("WAIT",))
    t = out[max_steps]
    actions = tuple(rng.choice([a for a in _ACTIONS if a != "WAIT"]) for _ in range(MAX_STEPS))
    out[max_steps] = SimTask(t.task_id, t.domain, False, 0.0, None, MAX_STEPS, t.instruction, actions)
    t = out[stalling]
    out[stalling] = SimTask(t.task_id, t.domain, t.success, t.score, t.error, t.steps, t.instruction, t.actions,
                            stall_at=max(2, t.steps // 2 + 1), stall_steps=float(STALL_STEPS))


@dataclass(frozen=True, slots=True)
class ResultFile:
    """One write into the results folder: ``path`` relative to it (POSIX), ``data`` appended
    (``traj.jsonl``) or written whole (a screenshot, ``result.txt``, the marker)."""

    path: str
    data: bytes
    append: bool = False


def task_folder(task: SimTask) -> str:
    """A task's folder, relative to the results folder (WAA's layout, run.py:235-243)."""
    return "/".join((*RESULT_LEVELS, task.domain, task.task_id))


def _stamp(when: _dt.datetime) -> str:
    """WAA's ``action_timestamp``: ``%Y%m%d@%H%M%S`` (lib_run_single.py:31,54)."""
    return when.strftime("%Y%m%d@%H%M%S")


def _colour(domain: str) -> tuple[int, int, int]:
    h = zlib.crc32(domain.encode())
    return (40 + h % 120, 40 + (h >> 8) % 120, 60 + (h >> 16) % 120)


def _observation(task: SimTask, idx: str, ts: str, step: int) -> tuple[dict[str, object], list[ResultFile]]:
    """The keys ``TrajectoryRecorder.save_dict`` (trajectory_recorder.py:12-66) leaves for WAA's
    observation (desktop_env.py:174-185) and the files it writes for them."""
    folder = task_folder(task)
    shot = f"screenshot-step_{idx}_{ts}.png"
    tree = f"accessibility_tree-step_{idx}_{ts}.txt"
    title = f"{task.domain} - Windows"
    obs: dict[str, object] = {
        "screenshot": shot,
        "accessibility_tree": tree,
        "terminal": "key: terminal: <class 'NoneType'> not saved",
        "instruction": task.instruction,
        "window_title": title,
        "window_rect": [0, 0, 1920, 1200],
        "window_names_str": f"{title}\nTaskbar",
        "computer_clipboard": "",
        "human_input": "",
    }
    files = [
        ResultFile(f"{folder}/{shot}", step_frame(step, _colour(task.domain))),
        ResultFile(f"{folder}/{tree}", f"window '{title}'\n  pane 'Taskbar'\n  button 'Start'\n".encode()),
    ]
    return obs, files


def _traj_line(obj: dict[str, object]) -> bytes:
    return (json.dumps(obj) + "\n").encode()  # json.dump + f.write("\n"), trajectory_recorder.py:113-114


def _exception_type(task: SimTask) -> str:
    for exc_type, message in _EXCEPTIONS:
        if message == task.error:
            return exc_type
    return "RuntimeError"


def _traceback(task: SimTask) -> str:
    """``traceback.format_exc()`` of the raising task (ends with a newline, as it does)."""
    return (
        "Traceback (most recent call last):\n"
        '  File "/client/run.py", line 297, in test\n'
        "    lib_run_single.run_single_example(agent, env, example, max_steps, instruction, args, example_result_dir, scores)\n"
        '  File "/client/lib_run_single.py", line 52, in run_single_example\n'
        "    obs, reward, done, info = env.step(action, args.sleep_after_execution)\n"
        '  File "/client/desktop_env/envs/desktop_env.py", line 318, in step\n'
        "    observation = self._get_obs()\n"
        f"{_exception_type(task)}: {task.error}\n"
    )


class _Writer:
    """Accumulates (delay_in_steps, text) chunks with a virtual log clock, and the results
    folder's writes with the index of the chunk they come before."""

    def __init__(self, *, ansi: bool, clock_start: _dt.datetime) -> None:
        self.ansi = ansi
        self.now = clock_start
        self.chunks: list[tuple[float, str]] = []
        self.files: list[tuple[int, ResultFile]] = []

    def file(self, item: ResultFile) -> None:
        """A results-folder write, right after the chunks written so far."""
        self.files.append((len(self.chunks), item))

    def tick(self, seconds: float = _LINE_WALL_SECONDS) -> None:
        self.now += _dt.timedelta(seconds=seconds)

    def record(self, module: str, lineno: int, message: str, *, level: str = "INFO", delay: float = 0.0) -> None:
        ts = waalog.format_timestamp(self.now)
        self.chunks.append((delay, waalog.format_record(ts, level, module, lineno, _PROCESS, message, ansi=self.ansi)))
        self.tick()

    def raw(self, text: str, *, delay: float = 0.0) -> None:
        """A line not written by logging (print(), tqdm, the container)."""
        self.chunks.append((delay, text))
        self.tick()


def _container_line(line: str, *, ansi: bool) -> str:
    if not ansi:  # the shared sequence is written coloured; plain variant = the same, stripped
        line = waalog.ANSI_RE.sub(b"", line.encode()).decode()
    return line + "\n"


def render_run(
    tasks: Sequence[SimTask], *, ansi: bool = True, clock_start: _dt.datetime = DEFAULT_CLOCK_START
) -> Iterator[tuple[float, bytes]]:
    """Pure: the run's bytes as ``(delay_in_steps, chunk)`` pairs — wait ``delay`` agent
    steps, then write ``chunk``. The delays add up to the total number of steps (one before
    each ``Step n:`` line; a stalling task's step waits ``1 + stall_steps``). Chunks are whole
    lines, except that now and then a line is split across two chunks around a delay, so a
    follower sees a partial line for a while."""
    yield from _render(tasks, ansi=ansi, clock_start=clock_start)[0]


def render_results(
    tasks: Sequence[SimTask], *, clock_start: _dt.datetime = DEFAULT_CLOCK_START
) -> list[tuple[int, ResultFile]]:
    """Pure: the results folder's writes of the run ``render_run`` renders, each with the index
    of the log chunk it comes before (``len(chunks)``: after the last). Per task, as WAA writes
    them: the marker, line 0 and the reset's screenshot after the reset (record_init), each
    action's screenshot, accessibility tree and line right after its ``Done:`` record
    (record_step), ``result.txt`` after ``Result``, or the ``Error`` line after the traceback
    (run.py:264-270; the action that raised has no line)."""
    return _render(tasks, ansi=False, clock_start=clock_start)[1]


def _render(
    tasks: Sequence[SimTask], *, ansi: bool, clock_start: _dt.datetime
) -> tuple[list[tuple[float, bytes]], list[tuple[int, ResultFile]]]:
    if not tasks:
        raise ValueError("render_run needs at least one task")
    w = _Writer(ansi=ansi, clock_start=clock_start)
    for _phase, line in waalog.DOCKUR_BOOT_SEQUENCE:
        w.raw(_container_line(line, ansi=ansi))
    w.record("run", 412, "Args: Namespace(agent_name='navi', model='gpt-4o', max_steps=15, emulator_ip='20.20.20.21')")
    w.record("desktop_env", 97, waalog.failed_to_get_hello("HTTPConnectionPool(host='20.20.20.21', port=5000): Read timed out."), level="ERROR")
    w.record("desktop_env", 93, waalog.response_from_server({"message": "Service is operational", "status": "success"}))
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t.domain] = counts.get(t.domain, 0) + 1
    # WAA logs the per-domain counts first, then each worker its share.
    w.record("run", 446, waalog.left_tasks(counts))
    w.record("run", 468, waalog.worker_tasks(0, [(t.domain, t.task_id) for t in tasks]))
    domains = list(counts)
    w.raw(waalog.tqdm_redraw("Domain", 0, len(domains)))
    done_domains = 0
    per_domain_done = 0
    for index, task in enumerate(tasks):
        if index and task.domain != tasks[index - 1].domain:
            done_domains += 1
            per_domain_done = 0
            w.raw(waalog.tqdm_redraw("Domain", done_domains, len(domains), elapsed="03:12"))
        if per_domain_done == 0:
            w.raw(waalog.tqdm_redraw("Example", 0, counts[task.domain]))
        w.record("run", 281, waalog.domain(task.domain))
        w.record("run", 282, waalog.example_id(task.task_id))
        w.record("run", 286, waalog.instruction(task.instruction))
        w.raw("Resetting the environment and waiting for the VM...\n")
        folder = task_folder(task)
        w.file(ResultFile(f"{folder}/{SIM_MARKER}", b""))
        obs, files = _observation(task, "reset", _stamp(w.now), 0)
        for f in files:
            w.file(f)
        w.file(ResultFile(f"{folder}/traj.jsonl", _traj_line({"step_num": 0, "action_timestamp": _stamp(w.now),
                                                                "action": None, **obs}), append=True))
        for n, action in enumerate(task.actions, start=1):
            stall = task.stall_steps if n == task.stall_at else 0.0
            w.tick(_STEP_WALL_SECONDS * (1.0 + stall))
            ts = _stamp(w.now)  # taken before the Step record (lib_run_single.py:54-56)
            w.record("lib_run_single", 38, waalog.step(n, action), delay=1.0 + stall)
            if task.error is not None and n == task.steps:
                break
            w.raw(f"Executing action: {action.splitlines()[0]}\n")
            finished = n == task.steps and action in ("DONE", "FAIL")
            w.record("lib_run_single", 41, "Reward: 0.00")
            w.record("lib_run_single", 42, f"Done: {finished}")
            obs, files = _observation(task, str(n - 1), ts, n)
            for f in files:
                w.file(f)
            line = {"step_num": n, "action_timestamp": ts, "action": action, "reward": 0.0, "done": finished,
                    "info": {}, **obs}
            w.file(ResultFile(f"{folder}/traj.jsonl", _traj_line(line), append=True))
        if task.error is not None:
            w.record("run", 301, waalog.exception_in(task.domain, task.task_id, task.error), level="ERROR")
            w.record("run", 302, _traceback(task), level="ERROR")
            error = {"Error": f"Exception in {task.domain}/{task.task_id}", "Exception": task.error,
                     "Traceback": _traceback(task)}
            w.file(ResultFile(f"{folder}/traj.jsonl", _traj_line(error), append=True))
        else:
            assert task.score is not None
            w.raw("Evaluating the task...\n")
            w.record("lib_run_single", 58, waalog.result(task.score))
            w.file(ResultFile(f"{folder}/result.txt", f"{task.score}\n".encode()))
            w.record("run", 299, waalog.finished(task.domain, task.task_id))
        per_domain_done += 1
        w.raw(waalog.tqdm_redraw("Example", per_domain_done, counts[task.domain], elapsed="00:41"))
    w.raw(waalog.tqdm_redraw("Domain", len(domains), len(domains), elapsed="41:07", remaining="00:00") + "\n")
    mean = average_score(tasks)
    w.record("run", 331, waalog.average_score(mean) if mean is not None else waalog.no_examples_finished())

    chunks = [(delay, text.encode()) for delay, text in w.chunks]
    # Now and then (every 5th step), split the line just before a step across the step's
    # pause: its first half is written, then the pause, then the rest with the step line.
    step_no = 0
    for i in range(1, len(chunks)):
        delay, data = chunks[i]
        if delay > 0:
            step_no += 1
            before = chunks[i - 1][1]
            if step_no % 5 == 3 and len(before) > 2:
                cut = len(before) // 2
                chunks[i - 1] = (chunks[i - 1][0], before[:cut])
                chunks[i] = (delay, before[cut:] + data)
    return chunks, w.files


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _clear_results(root: str, tasks: Sequence[SimTask]) -> None:
    """Remove what an earlier simulated run left in the folders of ``tasks`` (WAA itself
    empties an unfinished task's folder before running it again, run.py:311-318). A folder
    without ``SIM_MARKER`` is not ours: refuse the run rather than touch it."""
    folders = [os.path.join(root, *task_folder(task).split("/")) for task in tasks]
    ours = [f for f in folders if os.path.lexists(f)]
    for folder in ours:  # all checked before any is removed
        if not os.path.isfile(os.path.join(folder, SIM_MARKER)):
            raise ValueError(f"{folder} exists and was not written by the simulator: not overwriting it")
    for folder in ours:
        shutil.rmtree(folder)


def _write_result(root: str, item: ResultFile) -> None:
    path = os.path.join(root, *item.path.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if item.append else os.O_TRUNC)
    fd = os.open(path, flags, 0o644)
    try:
        _write_all(fd, item.data)
    finally:
        os.close(fd)


async def simulate(
    path: str | os.PathLike[str],
    *,
    tasks: int = 12,
    step_seconds: float = 1.0,
    seed: int = 0,
    ansi: bool = True,
    clock_start: _dt.datetime | None = None,
    runs: int = 1,
    results_dir: str | os.PathLike[str] | None = None,
    showcase: bool = False,
    task_status: trio.TaskStatus[tuple[SimTask, ...]] = trio.TASK_STATUS_IGNORED,
) -> SimulationResult:
    """Truncate ``path`` (a new run) and write a simulated run into it, ``step_seconds``
    per agent step (0: as fast as possible). ``task_status.started(expected_tasks)`` once the
    file is truncated. Returns what was written. With ``results_dir``, each task's folder is
    written there too (``render_results``), at the moments WAA writes it; ``showcase``: see
    the module docstring.

    ``runs`` > 1: after a pause of one step, each later run (``plan_runs``) goes into a new
    file renamed over ``path`` before its first byte (see the module docstring).

    Writes go straight to the file on the Trio thread, one chunk (a few lines at most) per
    ``os.write``: appending to a regular file does not wait for a reader and takes
    microseconds, and staying off worker threads keeps ``autojump_clock`` exact in tests. A
    checkpoint follows every chunk, so even ``step_seconds=0`` never hogs the loop.
    """
    plan = SimulationPlan(tasks=tasks, seed=seed, step_seconds=step_seconds, ansi=ansi)
    target = os.fspath(path)
    if not target or "\x00" in target:
        raise ValueError(f"log path must be a non-empty path without NUL, got {target!r}")
    root = None if results_dir is None else os.fspath(results_dir)
    if root is not None and (not root or "\x00" in root):
        raise ValueError(f"results folder must be a non-empty path without NUL, got {root!r}")
    plans = plan_runs(plan.tasks, runs, seed=plan.seed, fail_rate=plan.fail_rate, showcase=showcase)
    expected = plans[0]
    start = clock_start if clock_start is not None else _dt.datetime.now()  # wall clock: the edge
    if root is not None:
        _clear_results(root, expected)  # before the log is touched: a folder not ours refuses the run
    written = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        os.ftruncate(fd, 0)
        task_status.started(expected)
        for number, run_tasks in enumerate(plans):
            if number:
                if plan.step_seconds:
                    await trio.sleep(plan.step_seconds)
                os.close(fd)
                fd = -1
                fd = _replace_file(target, number + 1)
                if clock_start is None:
                    start = _dt.datetime.now()
                else:  # after the run before, as its log clock ended (roughly)
                    start += _dt.timedelta(seconds=sum(t.steps for t in plans[number - 1]) * _STEP_WALL_SECONDS + 60)
            chunks, files = _render(run_tasks, ansi=plan.ansi, clock_start=start)
            if root is not None:
                _clear_results(root, run_tasks)
            else:
                files = []
            pending = iter(files)
            upcoming = next(pending, None)
            for index, (delay, chunk) in enumerate([*chunks, (0.0, b"")]):
                if delay and plan.step_seconds:
                    await trio.sleep(delay * plan.step_seconds)
                while upcoming is not None and upcoming[0] <= index:  # the folder's writes before it
                    assert root is not None
                    _write_result(root, upcoming[1])
                    upcoming = next(pending, None)
                if chunk:
                    _write_all(fd, chunk)
                    written += len(chunk)
                await trio.lowlevel.checkpoint()
    finally:
        if fd >= 0:
            os.close(fd)
    return SimulationResult(
        path=target,
        tasks=expected,
        bytes_written=written,
        total_steps=sum(t.steps for p in plans for t in p),
        runs=plans,
    )


def _replace_file(target: str, number: int) -> int:
    """A new, empty file renamed over ``target`` (a new file generation for a follower); its
    descriptor, open for appending."""
    fresh = f"{target}.run{number}"
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        os.replace(fresh, target)
    except BaseException:
        os.close(fd)
        raise
    return fd


def simulate_sync(
    path: str | os.PathLike[str],
    *,
    tasks: int = 12,
    step_seconds: float = 1.0,
    seed: int = 0,
    ansi: bool = True,
    runs: int = 1,
    results_dir: str | os.PathLike[str] | None = None,
) -> SimulationResult:
    """``simulate`` in its own ``trio.run`` (for a CLI or a script)."""
    return trio.run(
        lambda: simulate(
            path, tasks=tasks, step_seconds=step_seconds, seed=seed, ansi=ansi, runs=runs, results_dir=results_dir
        )
    )
