"""Plays WAA's and OSWorld's control flow through the real logging setup, writing their logs
and recording, from the scenario's own definition, the events a truthful parser must give.

Owns: the order of upstream's logging calls around a task (run.py's task loop with its real
tqdm bars, ``lib_run_single.run_single_example``, ``DesktopEnv.reset``/``evaluate``, the
controller's action calls; OSWorld's ``run_env_tasks``), a clock per writer, several writers
interleaved by time, the files' growth in order (the *timeline*), and the expected events per
artifact. Must not: look at parser output to decide what is expected.

How expectations are made: every record or print the builder writes may carry *facts* — the
``trio_sse.logparse`` events that line means, built from the task definition (its id, the
score it was given, the failure kind the scenario states, the timestamp the builder used).
Each log handler ends in a :class:`~.logsetup.Sink` filter, so a fact lands in the expected
list of exactly the artifacts whose real handler wrote the record (the file gets httpx's
records, the console does not; the console gets prints, the file does not).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trio_sse.logparse import (
    Evaluating,
    InfraHint,
    InstructionSeen,
    Interrupted,
    ParsedEvent,
    PhaseSeen,
    RateLimited,
    RunArgs,
    RunFinished,
    RunStarted,
    ServerReady,
    StepStarted,
    TaskFinished,
    TaskStarted,
)
from trio_sse.waalog import TASK_ID_MAX_BYTES

from . import sites
from .errors import Raised
from .logsetup import Console, FakeClock, OSWorldLogging, PrivateLogging, Sink, WaaLogging, httpx_records, tqdm_on_fake_time

# ----------------------------------------------------------------------------- task plans


@dataclass(frozen=True)
class Call:
    """One model API call: the HTTP statuses httpx logs for it (openai retries after each
    non-final one, logging ``Retrying request to ...``)."""

    statuses: tuple[int, ...] = (200,)


@dataclass(frozen=True)
class Step:
    action: str
    # What the guest server said to the action (run through execute_python_windows_command):
    # "ok" (python.py:180), an HTTP status (python.py:182, e.g. 500), or "error" (python.py:185).
    server: str | int = "ok"
    call: Call = Call()


@dataclass(frozen=True)
class Scored:
    """The task ran to its evaluation: ``Result: score`` then ``Finished``."""

    score: float
    kind: str  # the failure kind a truthful monitor gives it (if it fails)
    getter: tuple[str, ...] = ()  # extra evaluator log sites, e.g. ("get_file", "paint_found")


@dataclass(frozen=True)
class Raises:
    """The task raised ``raised`` ``where`` (reset, predict, step, evaluate); ``vm_unreachable``:
    its message or traceback says the guest could not be reached."""

    raised: Raised
    where: str
    kind: str
    vm_unreachable: bool = False


@dataclass(frozen=True)
class Interrupt:
    """SIGINT after ``after_steps`` steps: WAA's handler prints and exits (run.py:362-365)."""

    after_steps: int
    signo: int = 2


@dataclass(frozen=True)
class Task:
    domain: str
    task_id: str
    instruction: str
    steps: tuple[Step, ...]
    end: Scored | Raises | Interrupt
    readiness: str = "ready"  # "ready", "slow" (2 x not ready, then ready), "gave_up" (20 x, then ERROR)


def plain_steps(*actions: str) -> tuple[Step, ...]:
    return tuple(Step(a) for a in actions)


def cut_id(task_id: str) -> str:
    """A task id as the parser reports it (cut to TASK_ID_MAX_BYTES bytes)."""
    return task_id.encode()[:TASK_ID_MAX_BYTES].decode("utf-8", "replace")


def first_line(text: str) -> str | None:
    line = text.split("\n", 1)[0].strip()
    return line or None


def iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}"


# ----------------------------------------------------------------------------- artifacts


class Truth:
    """The expected events of one artifact, in order (offsets are the parser's business: 0)."""

    def __init__(self) -> None:
        self.events: list[ParsedEvent] = []
        self._phase: str | None = None

    def add(self, ev: Any) -> None:
        if isinstance(ev, PhaseSeen):  # the parser reports a phase on change only
            if ev.phase == self._phase:
                return
            self._phase = ev.phase
        self.events.append(ev)


@dataclass
class Workspace:
    """A results directory being written: files, the order they grew in, expectations."""

    root: Path
    truths: dict[str, Truth] = field(default_factory=dict)
    consoles: dict[str, Console] = field(default_factory=dict)
    timeline: list[tuple[str, bytes]] = field(default_factory=list)
    _sizes: dict[str, int] = field(default_factory=dict)
    _followed: list[str] = field(default_factory=list)

    def truth(self, name: str) -> Truth:
        return self.truths.setdefault(name, Truth())

    @property
    def followed(self) -> list[str]:
        """The log files (relative paths) whose growth the timeline records."""
        return list(self._followed)

    def follow(self, rel: str) -> None:
        self._followed.append(rel)
        self._sizes[rel] = 0

    def console(self, name: str, kind: str) -> Console:
        c = self.consoles[name] = Console(kind)
        self._sizes[name] = 0
        return c

    def snapshot(self) -> None:
        """Record what each followed file and console gained since the last snapshot."""
        for rel in self._followed:
            p = self.root / rel
            size = p.stat().st_size if p.exists() else 0
            if size > self._sizes[rel]:
                with p.open("rb") as f:
                    f.seek(self._sizes[rel])
                    self.timeline.append((rel, f.read(size - self._sizes[rel])))
                self._sizes[rel] = size
        for name, c in self.consoles.items():
            c.drain()
            if len(c.data) > self._sizes[name]:
                self.timeline.append((name, bytes(c.data[self._sizes[name] :])))
                self._sizes[name] = len(c.data)


def interleave(*scripts: Iterator[dt.datetime]) -> None:
    """Run writers side by side. Each script yields a time and is resumed when it is the
    earliest of all (ties: the first given). OSWorld's env scripts yield the time of their next
    record before writing it (records land in time order); WAA's yield their clock after a
    few records (each worker has its own file; only the timeline's order is approximate)."""
    pending: dict[int, dt.datetime] = {}
    for i, script in enumerate(scripts):
        with contextlib.suppress(StopIteration):
            pending[i] = next(script)
    while pending:
        i = min(pending, key=lambda k: (pending[k], k))
        try:
            pending[i] = next(scripts[i])
        except StopIteration:
            del pending[i]


# ----------------------------------------------------------------------------- WAA


def waa_namespace(**overrides: Any) -> argparse.Namespace:
    """run.py ``config()`` (lines 70-129) as the container's start_client.sh calls it, with
    real argparse, so ``Args: %s`` prints a real Namespace."""
    p = argparse.ArgumentParser(description="Run end-to-end evaluation on the benchmark")
    p.add_argument("--headless", action="store_true")
    p.add_argument("--action_space", type=str, default="pyautogui")
    p.add_argument("--observation_type", choices=["screenshot", "a11y_tree", "screenshot_a11y_tree", "som"], default="a11y_tree")
    p.add_argument("--screen_width", type=int, default=1920)
    p.add_argument("--screen_height", type=int, default=1200)
    p.add_argument("--sleep_after_execution", type=float, default=3)
    p.add_argument("--max_steps", type=int, default=15)
    p.add_argument("--a11y_backend", type=str, default="uia")
    p.add_argument("--agent_name", type=str, default="navi")
    p.add_argument("--som_origin", type=str, default="oss")
    p.add_argument("--max_trajectory_length", type=int, default=3)
    p.add_argument("--test_config_base_dir", type=str, default="evaluation_examples_windows")
    p.add_argument("--model", type=str, default="gpt-4-vision-preview")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top_p", type=float, default=0.9)
    p.add_argument("--max_tokens", type=int, default=1500)
    p.add_argument("--stop_token", type=str, default=None)
    p.add_argument("--domain", type=str, default="all")
    p.add_argument("--emulator_ip", type=str, default="20.20.20.21")
    p.add_argument("--test_all_meta_path", type=str, default="evaluation_examples_windows/test_all.json")
    p.add_argument("--result_dir", type=str, default="./results")
    p.add_argument("--trial_id", type=str, default="0")
    p.add_argument("--worker_id", type=int, default=0)
    p.add_argument("--num_workers", type=int, default=1)
    p.add_argument("--diff_lvl", type=str, default="normal")
    argv = [f"--{k}={v}" for k, v in overrides.items()]
    ns, _unknown = p.parse_known_args(argv)
    return ns


class WaaRun:
    """One ``python run.py ...`` process (one WAA worker) in one container."""

    def __init__(
        self,
        ws: Workspace,
        *,
        start: dt.datetime,
        worker_id: int = 0,
        num_workers: int = 1,
        console: str = "pty",
        console_name: str | None = None,
        step_seconds: float = 17.0,
        **args: Any,
    ) -> None:
        self.ws = ws
        self.now = start
        self.worker_id = worker_id
        self.datetime_str = start.strftime("%Y%m%d@%H%M%S")  # run.py:33
        self.args = waa_namespace(worker_id=worker_id, num_workers=num_workers, result_dir="/client/results", **args)
        self.console_name = console_name or f"console-{worker_id}"
        self.console = ws.console(self.console_name, console)
        self.log_rel = f"logs/normal-{worker_id}-{self.datetime_str}.log"
        self.file_truth = ws.truth(self.log_rel)
        self.console_truth = ws.truth(self.console_name)
        self.step_seconds = step_seconds
        self.tqdm_clock = FakeClock(start.timestamp())
        self.logging: WaaLogging | None = None
        self.scores: list[float] = []

    # -- primitives ------------------------------------------------------------------

    def tick(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)
        self.tqdm_clock.advance(seconds)

    def log(self, key: str, *args: Any, facts: Iterable[ParsedEvent] = (), process: str = "MainProcess") -> dt.datetime:
        """One upstream logging call (``sites.WAA[key]``); returns its timestamp."""
        assert self.logging is not None
        self.tick(0.041)
        when = self.now
        self.logging.emit(sites.WAA[key], *args, when=when, process=process, facts=tuple(facts))
        self.ws.snapshot()
        return when

    def print(self, *args: Any, facts: Iterable[ParsedEvent] = ()) -> None:
        self.tick(0.003)
        self.console.print(*args)
        for ev in facts:
            self.console_truth.add(ev)
        self.ws.snapshot()

    def echo(self, text: str, facts: Iterable[ParsedEvent] = ()) -> None:
        self.tick(0.5)
        self.console.echo(text)
        for ev in facts:
            self.console_truth.add(ev)
        self.ws.snapshot()

    def http(self, status: int) -> None:
        """httpx's own INFO record for one model API request (file only: not desktopenv)."""
        assert self.logging is not None
        (record,) = httpx_records(status)
        self.tick(3.2)
        when = self.now
        facts = (RateLimited(False, record.getMessage(), 0, iso(when), None),) if status == 429 else ()
        self.logging.handle_foreign(record, when=when, process="MainProcess", facts=facts)
        self.ws.snapshot()

    def model_call(self, call: Call) -> Iterator[dt.datetime]:
        for k, status in enumerate(call.statuses):
            self.http(status)
            yield self.now
            if k < len(call.statuses) - 1:  # openai retries (max_retries=2 by default)
                wait = 0.4 + 0.37 * k
                msg = f"Retrying request to /chat/completions in {wait:f} seconds"
                self._fact(lambda at, msg=msg: RateLimited(True, msg, 0, at, None), "openai_retry", "/chat/completions", wait)
                yield self.now

    # -- the container, before run.py -------------------------------------------------

    def container_boot(self, *, fresh: bool) -> Iterator[dt.datetime]:
        """entry.sh / entry_setup.sh echo lines and dockur's boot, as ``docker logs`` shows."""
        from trio_sse.waalog import DOCKUR_BOOT_SEQUENCE

        self.echo(sites.CONTAINER_ECHOS["starting"])
        self.echo(sites.CONTAINER_ECHOS["starting_vm"])
        self.echo(sites.CONTAINER_ECHOS["starting_winarena_vm"])
        for phase, line in DOCKUR_BOOT_SEQUENCE:
            if not fresh and phase in ("downloading", "extracting", "configuring", "building"):
                continue
            if phase == "ready":
                continue
            self.echo(line, facts=[PhaseSeen(phase, 0)] if phase else [])
            if phase == "booting":
                self.echo(sites.CONTAINER_ECHOS["waiting_server"])
            yield self.now
        self.echo(sites.CONTAINER_ECHOS["waiting_server"])
        self.echo(sites.CONTAINER_ECHOS["vm_up"], facts=[PhaseSeen("ready", 0)])
        self.echo(sites.CONTAINER_ECHOS["vm_started"])
        self.echo(sites.CONTAINER_ECHOS["skipping_image"])
        self.echo(sites.CONTAINER_ECHOS["starting_client"])
        self.echo(sites.CONTAINER_ECHOS["running_agent"].format(agent=self.args.agent_name))
        yield self.now

    # -- run.py ----------------------------------------------------------------------

    def run(
        self, tasks: Sequence[Task], *, left: Sequence[Task] | None = None, hello_failures: int = 0, end: bool = True
    ) -> Iterator[dt.datetime]:
        """run.py's ``__main__`` and ``test()`` for this worker's share of ``tasks``; ``left``:
        all workers' tasks (run.py:409-416 lists them all when ``num_workers > 1``)."""
        self.print("Waiting for the server to start...")  # run.py:27, at import
        self.logging = WaaLogging(
            self.ws.root, self.worker_id, self.datetime_str, self.console.stdout,
            file_sink=Sink(self.file_truth.add), console_sink=Sink(self.console_truth.add),
        )  # fmt: skip
        self.ws.follow(self.log_rel)
        for _ in range(hello_failures):  # run.py:368-377
            self.tick(7.0)
            reason = (
                "HTTPConnectionPool(host='20.20.20.21', port=5000): Max retries exceeded with url: /probe "
                "(Caused by ConnectTimeoutError(<urllib3.connection.HTTPConnection object at 0x7f3b2c1d0a90>, "
                "'Connection to 20.20.20.21 timed out. (connect timeout=7)'))"
            )
            self.print("Failed to get hello:", reason, facts=[ServerReady(False, reason, 0)])
            self.print("Retrying...")
            self.tick(5.0)
            yield self.now
        body = {"message": "Service is operational", "status": "success"}
        self.print("Response from server:", body, facts=[ServerReady(True, repr(body), 0)])
        self.log("task_json_path", self.args.test_all_meta_path)
        counts: dict[str, int] = {}
        for t in left if left is not None else tasks:
            counts[t.domain] = counts.get(t.domain, 0) + 1
        self.log("left_tasks", "".join(f"{d}: {n}\n" for d, n in counts.items()))
        pairs = [(t.domain, t.task_id) for t in tasks]
        unique = tuple(dict.fromkeys((d, cut_id(i)) for d, i in pairs))
        per_domain: dict[str, int] = {}
        for d, _ in unique:
            per_domain[d] = per_domain.get(d, 0) + 1
        self._fact(
            lambda at: RunStarted(len(unique), 0, False, at, None, self.worker_id, unique, tuple(per_domain.items())),
            "worker", self.worker_id, pairs,
        )  # fmt: skip
        self.print("New experiment, no result yet.")  # run.py:335 (get_result)
        yield self.now
        # test()
        ns = repr(self.args)
        self._fact(lambda at: RunArgs(self.args.max_steps, self.args.model, self.args.agent_name, ns, 0, at, None), "args", self.args)
        self.log("initializing")
        self.log("external_emulator")
        yield self.now
        by_domain: dict[str, list[Task]] = {}
        for t in tasks:
            by_domain.setdefault(t.domain, []).append(t)
        with tqdm_on_fake_time(self.tqdm_clock):
            from tqdm import tqdm

            domains = tqdm(by_domain, desc="Domain", file=self.console.stderr)  # run.py:204
            for domain in domains:
                examples = tqdm(by_domain[domain], desc="Example", leave=False, file=self.console.stderr)  # 205
                for task in examples:
                    self.ws.snapshot()
                    interrupted = yield from self.task(task)
                    if interrupted:
                        # exit(0) in the handler: SystemExit unwinds; the bars are closed as the
                        # interpreter exits.
                        examples.close()
                        domains.close()
                        self.ws.snapshot()
                        return
        self.ws.snapshot()
        if end:
            self.log("stopping")  # env.close(), run.py:286
            self.log("stop_not_implemented")
            if not self.scores:
                self._fact(lambda at: RunFinished(None, 0, at, None), "no_examples")
            else:
                avg = sum(self.scores) / len(self.scores)
                self._fact(lambda at: RunFinished(avg, 0, at, None), "average", avg)
            yield self.now

    def _fact(self, make: Callable[[str], ParsedEvent], key: str, *args: Any) -> ParsedEvent:
        """Log ``key`` with one fact that needs the record's own timestamp."""
        when = self.now + dt.timedelta(seconds=0.041)  # what log() will stamp
        ev = make(iso(when))
        got = self.log(key, *args, facts=[ev])
        assert got == when
        return ev

    def task(self, task: Task) -> Iterator[dt.datetime]:
        """One iteration of run.py's task loop (lines 205-284) with lib_run_single inside."""
        a = self.args
        tid = cut_id(task.task_id)
        self.log("starting_normal")
        self.log("task_config_path", f"{a.test_config_base_dir}/examples/{task.domain}/{task.task_id}.json")
        self.log("domain", task.domain)
        started = self._fact(lambda at: TaskStarted(tid, task.domain, 0, at, None), "example_id", task.task_id)
        instruction = first_line(task.instruction) or ""
        self._fact(lambda at: InstructionSeen(tid, instruction, 0, at, None), "instruction", task.instruction)
        example_dir = self.ws.root / a.action_space / a.observation_type / a.model / a.trial_id / task.domain / task.task_id[:80]
        assert self.logging is not None
        self.logging.open_task_log(example_dir, self.worker_id, self.datetime_str)
        yield self.now
        ctx = _TaskState(tid, task, started.at)  # type: ignore[attr-defined]
        raised = yield from self._run_single_example(task, ctx)
        if isinstance(task.end, Interrupt) and raised is None:
            # run.py:362-365: the handler prints, then exit(0) raises SystemExit in the main
            # thread: not an Exception, so nothing more is logged; the process ends.
            self.print(f"Interrupted by {task.end.signo}, shutting down", facts=[Interrupted(task.end.signo, 0)])
            self.logging.close_task_log()
            yield self.now
            return True
        if raised is not None:
            err = raised.raised
            self._fact(
                lambda at: TaskFinished(
                    tid, task.domain, None, err.message or "exception without a message", ctx.steps, 0, at, None,
                    ctx.started_at, instruction, raised.kind, ctx.evaluating, raised.vm_unreachable, ctx.hints, False,
                ),
                "exception_in", task.domain, task.task_id, err.message,
            )  # fmt: skip
            self.log("traceback", err.traceback)
        else:
            assert isinstance(task.end, Scored)
            score = float(f"{task.end.score:.2f}")
            reached = ctx.steps == a.max_steps and not ctx.said_done
            kind = task.end.kind
            self._fact(
                lambda at: TaskFinished(
                    tid, task.domain, score, None, ctx.steps, 0, at, None, ctx.started_at, instruction, kind, True,
                    False, ctx.hints, reached,
                ),
                "finished", task.domain, task.task_id,
            )  # fmt: skip
        self.logging.close_task_log()
        yield self.now
        return False

    def _run_single_example(self, task: Task, ctx: _TaskState) -> Iterator[dt.datetime]:
        """lib_run_single.run_single_example (lines 18-91) and what it calls. Returns the
        ``Raises`` that ended it, or None."""
        end = task.end
        # env.reset (desktop_env.py:244-291)
        for key in ("resetting", "switching", "counters"):
            self.log(key)
        self.log("reverting", "init_state")
        self.log("revert_not_implemented")
        self.tick(5.0)
        self.log("starting_emulator")
        yield self.now
        if isinstance(end, Raises) and end.where == "reset":
            return end
        yield from self._wait_emulator(task.readiness, ctx)
        for key in ("emulator_started", "cleaning_up", "task_info", "setting_up"):
            self.log(key)
        self.tick(5.0)
        self.log("setup_complete")
        yield self.now
        # the agent loop (lib_run_single.py:34-80)
        for n, step in enumerate(task.steps, start=1):
            self.log("thinking")
            yield from self.model_call(step.call)
            if isinstance(end, Raises) and end.where == "predict" and n == len(task.steps):
                return end
            self.log("updated_computer")
            self._fact(lambda at, n=n, step=step: StepStarted(n, first_line(step.action), 0, at, None, ctx.task_id), "step", n, step.action)
            ctx.steps = n
            self.tick(self.step_seconds)
            if step.action not in ("WAIT", "FAIL", "DONE"):
                if step.server == "ok":
                    self.log("command_ok", '{"status":"success"}')
                else:
                    ctx.hints += 1
                    if step.server == "error":
                        msg = waa_command_error()
                        self._fact(lambda at, msg=msg: InfraHint(f"An error occurred while trying to execute the command: {msg}", 0, at, None, ctx.task_id), "command_error", msg)
                    else:
                        status = int(step.server)
                        self._fact(lambda at, s=status: InfraHint(f"Failed to execute command. Status code: {s}", 0, at, None, ctx.task_id), "command_failed", status)
            if isinstance(end, Raises) and end.where == "step" and n == len(task.steps):
                return end
            if isinstance(end, Interrupt) and n == end.after_steps:
                return None
            self.log("reward", 0.0)
            done = step.action in ("FAIL", "DONE")
            self.log("done", done)
            yield self.now
            if done:
                ctx.said_done = True
                self.log("episode_done")
                break
        # evaluation (lib_run_single.py:82-84)
        self._fact(lambda at: Evaluating(ctx.task_id, 0, at, None), "evaluating")
        ctx.evaluating = True
        self.tick(4.0)
        if isinstance(end, Raises) and end.where == "evaluate":
            return end
        assert isinstance(end, Scored)
        for key in end.getter:
            if key == "get_file":
                self.log(key, "C:\\Users\\Docker\\Desktop\\circle.png")
            elif key == "evaluator_error":
                self.log(key, "[Errno 2] No such file or directory: 'cache/x/circle.png'")
            else:
                self.log(key)
        self.log("result", end.score)
        self.scores.append(end.score)
        yield self.now
        return None

    def _wait_emulator(self, readiness: str, ctx: _TaskState) -> Iterator[dt.datetime]:
        """desktop_env.py:117-135 (get_probe answered; ``gave_up``: it answered non-200)."""
        if readiness == "ready":
            self._fact(lambda at: ServerReady(True, "VM is up and ready.", 0, at, None), "vm_ready")
            return
        tries = 2 if readiness == "slow" else 20
        for _ in range(tries):
            self.log("probe_not_200")
            self._fact(lambda at: ServerReady(False, "VM not ready yet. Retrying in 5 seconds...", 0, at, None), "vm_not_ready")
            self.tick(5.0)
            yield self.now
        if readiness == "slow":
            self._fact(lambda at: ServerReady(True, "VM is up and ready.", 0, at, None), "vm_ready")
        else:
            ctx.hints += 1
            self._fact(lambda at: ServerReady(False, "VM did not become ready after 20 attempts.", 0, at, None), "vm_gave_up", 20)

    def close(self) -> None:
        if self.logging is not None:
            self.logging.close()


def waa_command_error() -> str:
    return (
        "HTTPConnectionPool(host='20.20.20.21', port=5000): Read timed out. (read timeout=90)"
    )


@dataclass
class _TaskState:
    task_id: str
    task: Task
    started_at: str | None
    steps: int | None = None
    hints: int = 0
    evaluating: bool = False
    said_done: bool = False


# ----------------------------------------------------------------------------- OSWorld


@dataclass(frozen=True)
class OSWorldTask:
    domain: str
    task_id: str
    instruction: str
    actions: tuple[str, ...]
    score: float | None  # None: raises ``error`` (OSWorld logs it without a traceback in 8be2a40)
    kind: str
    error: Raised | None = None
    vm_unreachable: bool = False
    calls: tuple[Call, ...] = ()


class OSWorldRun:
    """OSWorld ``run_multienv.py``: the main process and ``num_envs`` forked env processes, all
    logging to one file. ``variant``: ``"env"`` (8be2a40: ``[Env N]`` tags, processes
    ``Process-2``... because the ``Manager()`` started first is ``SyncManager-1``) or
    ``"envprocess"`` (the rewrite: processes named ``EnvProcess-N``, which is also the tag,
    and a traceback record after each exception)."""

    def __init__(self, ws: Workspace, *, start: dt.datetime, variant: str = "env", max_steps: int = 15) -> None:
        if variant not in ("env", "envprocess"):
            raise ValueError(variant)
        self.ws = ws
        self.variant = variant
        self.sites = sites.OSWORLD if variant == "env" else sites.OSWORLD_REWRITE
        self.now = start
        self.console = ws.console("console", "pipe")
        datetime_str = start.strftime("%Y%m%d@%H%M%S")
        self.log_rel = f"logs/normal-{datetime_str}.log"
        self.file_truth = ws.truth(self.log_rel)
        self.console_truth = ws.truth("console")
        self.logging = OSWorldLogging(
            ws.root, datetime_str, self.console.stdout,
            file_sink=Sink(self.file_truth.add), console_sink=Sink(self.console_truth.add),
        )  # fmt: skip
        ws.follow(self.log_rel)
        self.max_steps = max_steps
        self.scores: list[float] = []
        self.last = start

    def process_of(self, env: int) -> str:
        return f"Process-{env + 1}" if self.variant == "env" else f"EnvProcess-{env}"

    def tag_of(self, env: int) -> str:
        return f"Env {env}" if self.variant == "env" else f"EnvProcess-{env}"

    def log(self, key: str, *args: Any, process: str = "MainProcess", at: dt.datetime | None = None,
            facts: Iterable[ParsedEvent] = ()) -> dt.datetime:  # fmt: skip
        when = at if at is not None else self.now
        self.last = max(self.last, when)
        self.logging.emit(self.sites[key], *args, when=when, process=process, pid=100 + len(process), facts=tuple(facts))
        self.ws.snapshot()
        return when

    def namespace(self) -> str:
        ns = argparse.Namespace(
            path_to_vm=None, headless=True, action_space="pyautogui", observation_type="screenshot", screen_width=1920,
            screen_height=1080, sleep_after_execution=0.0, max_steps=self.max_steps, max_trajectory_length=3,
            test_config_base_dir="evaluation_examples", model="gpt-4o", temperature=1.0, top_p=0.9, max_tokens=1500,
            stop_token=None, domain="all", test_all_meta_path="evaluation_examples/test_all.json", result_dir="./results",
            num_envs=2,
        )  # fmt: skip
        return repr(ns)

    def main_start(self, plan: dict[int, list[OSWorldTask]]) -> None:
        counts: dict[str, int] = {}
        for tasks in plan.values():
            for t in tasks:
                counts[t.domain] = counts.get(t.domain, 0) + 1
        total = sum(counts.values())
        # The Left tasks block gives the run's total (no Worker line in OSWorld).
        left_at = self.now
        self.log("left_tasks", "".join(f"{d}: {n}\n" for d, n in counts.items()),
                 facts=[RunStarted(total, 0, False, iso(left_at), None, None, (), tuple(counts.items()))])  # fmt: skip
        self.now += dt.timedelta(seconds=0.2)
        self.console.print("New experiment, no result yet.")
        ns = self.namespace()
        self.now += dt.timedelta(seconds=0.2)
        self.log("args", ns, facts=[RunArgs(self.max_steps, "gpt-4o", None, ns, 0, iso(self.now), None)])
        if self.variant == "env":
            self.now += dt.timedelta(seconds=0.1)
            self.log("setting_up_all")
            for env in plan:
                self.now += dt.timedelta(seconds=0.1)
                self.log("setting_up", env, len(plan))
            self.now += dt.timedelta(seconds=0.1)
            self.log("all_ready")
        else:
            self.now += dt.timedelta(seconds=0.1)
            self.log("total", total)
            for env in plan:
                self.now += dt.timedelta(seconds=0.1)
                self.log("started_process", self.process_of(env), 4000 + env)

    def env_script(self, env: int, tasks: list[OSWorldTask]) -> Iterator[dt.datetime]:
        """One env process's ``run_env_tasks`` (8be2a40 run_multienv.py:144-194). Yields the
        time of its next record *before* writing it, so :func:`interleave` writes the envs'
        records in time order, as the processes' appends to the shared file would land."""
        clock = self.now + dt.timedelta(seconds=1.0 + 0.37 * env)
        proc = self.process_of(env)
        tag = self.tag_of(env)

        def log(key: str, *args: Any, facts: Callable[[str], Iterable[ParsedEvent]] = lambda at: (),
                dt_s: float = 0.05) -> Iterator[dt.datetime]:  # fmt: skip
            nonlocal clock
            clock += dt.timedelta(seconds=dt_s)
            yield clock
            self.log(key, *args, process=proc, at=clock, facts=tuple(facts(iso(clock))))

        def http(status: int) -> Iterator[dt.datetime]:
            nonlocal clock
            clock += dt.timedelta(seconds=2.5)
            yield clock
            (record,) = httpx_records(status)
            facts = (RateLimited(False, record.getMessage(), 0, iso(clock), tag),) if status == 429 else ()
            self.logging.handle_foreign(record, when=clock, process=proc, facts=facts)
            self.last = max(self.last, clock)
            self.ws.snapshot()

        # Before this process's first tag is seen, its records carry only its process name.
        if self.variant == "env":
            yield from log("executing", env, 2)
        else:
            yield from log("started", proc)
        for t in tasks:
            tid = cut_id(t.task_id)
            label: Any = env if self.variant == "env" else proc
            started_at = ""
            yield from log("domain", label, t.domain)

            def started(at: str, t: OSWorldTask = t) -> list[ParsedEvent]:
                nonlocal started_at
                started_at = at
                return [TaskStarted(tid, t.domain, 0, at, tag)]

            yield from log("example_id", label, t.task_id, facts=started)
            yield from log("instruction", label, t.instruction, facts=lambda at, t=t: [InstructionSeen(tid, t.instruction, 0, at, tag)])
            steps = 0
            said_done = False
            for n, action in enumerate(t.actions, start=1):
                for call in t.calls[n - 1 : n]:
                    for status in call.statuses:
                        yield from http(status)
                step_fact = lambda at, n=n, action=action: [StepStarted(n, first_line(action), 0, at, tag, tid)]  # noqa: E731
                yield from log("step", n, action, facts=step_fact, dt_s=3.0)
                steps = n
                if t.score is None and n == len(t.actions):
                    break
                yield from log("reward", 0.0, dt_s=2.0)
                yield from log("done", action in ("DONE", "FAIL"))
                if action in ("DONE", "FAIL"):
                    said_done = True
                    yield from log("episode_done")
                    break
            if t.score is None:
                err = t.error
                assert err is not None

                def raised(at: str, t: OSWorldTask = t, err: Raised = err, steps: int = steps) -> list[ParsedEvent]:
                    return [TaskFinished(tid, t.domain, None, err.message, steps, 0, at, tag, started_at, t.instruction,
                                         t.kind, False, t.vm_unreachable, 0, False)]  # fmt: skip

                if self.variant == "env":
                    yield from log("exception_in", env, t.domain, t.task_id, err.message, facts=raised)
                else:
                    yield from log("exception_in", proc, t.domain, t.task_id, err.message, facts=raised)
                    yield from log("traceback", err.traceback, dt_s=0.001)
            else:
                score = float(f"{t.score:.2f}")
                reached = steps == self.max_steps and not said_done

                def scored(at: str, t: OSWorldTask = t, score: float = score, steps: int = steps, reached: bool = reached) -> list[ParsedEvent]:
                    return [TaskFinished(tid, t.domain, score, None, steps, 0, at, tag, started_at, t.instruction, t.kind,
                                         False, False, 0, reached)]  # fmt: skip

                yield from log("result", t.score, facts=scored, dt_s=5.0)
                self.scores.append(t.score)

    def main_end(self, *, interrupted: int | None = None) -> None:
        self.now = max(self.now, self.last) + dt.timedelta(seconds=1)
        if interrupted is not None:
            self.log("signal", interrupted, facts=[Interrupted(interrupted, 0, iso(self.now), None)])
            return
        avg = sum(self.scores) / len(self.scores) if self.scores else 0
        self.log("average", avg, facts=[RunFinished(float(avg), 0, iso(self.now), None)])

    def close(self) -> None:
        self.logging.close()


__all__ = [
    "Call",
    "Interrupt",
    "OSWorldRun",
    "OSWorldTask",
    "PrivateLogging",
    "Raises",
    "Scored",
    "Step",
    "Task",
    "Truth",
    "WaaRun",
    "Workspace",
    "cut_id",
    "interleave",
    "iso",
    "plain_steps",
]
