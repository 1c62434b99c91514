#!/usr/bin/env python3
"""Step events (SPEC §8, issue 12): latency of a line appended to a task's ``traj.jsonl`` → its
``step`` event at a client, locally and over SSH, against the log's own ``Step N:`` line →
``step`` event in the same invocation (the baseline: the path every log event takes); and
the fan-out CPU of ``bench_fanout.py`` with and without a results folder being followed.

**Latency.** A real server process (``scripts/_bench_servers.py trio``) follows a WAA log and
(``traj`` phases) a results folder — on this machine, or over a loopback OpenSSH ``sshd``
(``tests/sshd.py``: the log and the results read over the target's one connection). For each
of ``--tasks`` tasks the script logs the task's start, makes its folder and ``traj.jsonl``
line 0 (``traj``) and waits until the server follows it (``/api/tasks/<id>``), then appends
``--steps`` action lines to ``traj.jsonl`` (``traj``) or ``Step N:`` records to the log
(``log``, no results folder), every ``1/--rate`` s. The append time is ``time.time()`` right
after ``os.write``; ``--clients`` streaming clients (httpx + httpx-sse, one thread each, in
this process) note when each ``step`` event arrives. Medians over ``--runs`` of the per-run
p50 / p99.

**Fan-out CPU.** ``bench_fanout.one_run`` (``--clients`` raw-socket clients in another
process, ``--fanout-rate`` task_complete/s for ``--duration`` s) three ways, alternating:
no results folder (what ``bench_fanout.py`` runs); a results folder configured, nothing to
follow (the fan-out's tasks start and end at once, as there); and a folder followed while a
task of another worker (an OSWorld-style ``[Env 1]`` task in the log) gets a traj line every
``1/--fanout-steps`` s — each also a ``step`` event to every client. CPU seconds of the
server per 1000 delivered durable events, medians of ``--runs``, and the ratios.

    .venv/bin/python scripts/bench_steps.py [--tasks 4] [--steps 10] [--rate 5] [--clients 5] [--runs 3]
        [--no-ssh] [--no-fanout] [--fanout-clients 500] [--fanout-rate 4] [--duration 10] [--fanout-steps 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _bench_measure import machine, median, percentile, ratio, table  # noqa: E402
from _bench_servers import kill, start_server  # noqa: E402
from bench_latency import start_sshd, stop_sshd  # noqa: E402
from trio_sse import waalog  # noqa: E402

LEVELS = ("pyautogui", "a11y_tree", "gpt-4o", "0")
T0 = dt.datetime(2024, 11, 20, 14, 0, 0)


def record(message: str, module: str = "run", *, when: dt.datetime = T0) -> bytes:
    return waalog.format_record(waalog.format_timestamp(when), "INFO", module, 1, "MainProcess", message,
                                ansi=True).encode()


def traj_line(n: int) -> bytes:
    ts = (T0 + dt.timedelta(seconds=n)).strftime("%Y%m%d@%H%M%S")
    return (json.dumps({"step_num": n, "action_timestamp": ts, "action": f"pyautogui.click({n}, {n})",
                        "reward": 0.0, "done": False, "info": {},
                        "screenshot": f"screenshot-step_{n - 1}_{ts}.png"}) + "\n").encode()


def append(path: Path, data: bytes) -> float:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return time.time()


class StepClients:
    """``n`` streaming clients, each in a thread, noting when every ``step`` event arrives."""

    def __init__(self, url: str, n: int) -> None:
        self.url = url
        self.seen: dict[tuple[str, int], list[float]] = {}
        self.lock = threading.Lock()
        self.ready = threading.Barrier(n + 1)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()
        self.ready.wait(30)

    def _run(self) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(30, read=None)) as c, \
                    connect_sse(c, "GET", self.url + "/api/benchmark-sse?interval=60") as es:  # fmt: skip
                opened = False
                for sse in es.iter_sse():
                    if not opened and sse.event == "progress":
                        opened = True
                        self.ready.wait(30)
                    if sse.event == "step":
                        now = time.time()
                        d = sse.json()
                        with self.lock:
                            self.seen.setdefault((d["task_id"], d["step"]), []).append(now)
                    if self.stop.is_set():
                        return
        except (httpx.HTTPError, threading.BrokenBarrierError):
            return  # the server of this phase is gone (killed after it)

    def close(self) -> None:
        self.stop.set()  # each thread ends at its next event (a keepalive at the latest); daemons


def wait_followed(url: str, task: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=5) as c:
        while time.monotonic() < deadline:
            r = c.get(f"/api/tasks/{task}")
            if r.status_code == 200 and r.json()["trajectory"]["found"]:
                return
            time.sleep(0.02)  # polling the server's view, as a dashboard would
    raise RuntimeError(f"the server never followed the trajectory of {task}")


def wait_current(url: str, task: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=5) as c:
        while time.monotonic() < deadline:
            if c.get(f"/api/tasks/{task}").status_code == 200:
                return
            time.sleep(0.02)
    raise RuntimeError(f"the server never saw task {task} start")


def latency_phase(kind: str, a: argparse.Namespace, work: Path, ssh: dict[str, str] | None, run: int) -> dict[str, float]:
    base = work / f"{kind}-{run}-{'ssh' if ssh else 'local'}"
    results = base / "results"
    log = results / "logs" / "normal-0.log"
    log.parent.mkdir(parents=True)
    append(log, record(waalog.worker_tasks(0, [("notepad", f"task-{i}-WOS") for i in range(a.tasks)])))
    opts: dict[str, object] = {"log": log, "results": results if kind == "traj" else None}
    if ssh:
        opts.update(ssh=ssh["address"], identity=ssh["identity"], known_hosts=ssh["known_hosts"])
    server, port = start_server("trio", base, **opts)
    url = f"http://127.0.0.1:{port}"
    appended: dict[tuple[str, int], float] = {}
    try:
        clients = StepClients(url, a.clients)
        for i in range(a.tasks):
            task = f"task-{i}-WOS"
            append(log, record(waalog.domain("notepad")) + record(waalog.example_id(task)))
            traj = results.joinpath(*LEVELS, "notepad", task, "traj.jsonl")
            if kind == "traj":
                traj.parent.mkdir(parents=True)
                append(traj, b'{"step_num": 0, "action_timestamp": "20241120@140000", "action": null}\n')
                wait_followed(url, task)
            else:
                wait_current(url, task)
            for n in range(1, a.steps + 1):
                time.sleep(1 / a.rate)  # the script paces its appends
                if kind == "traj":
                    appended[(task, n)] = append(traj, traj_line(n))
                else:
                    appended[(task, n)] = append(log, record(waalog.step(n, "pyautogui.click(1, 1)"), "lib_run_single"))
            time.sleep(1 / a.rate)  # the evaluation: a task's end never comes with its last step (see the README)
            append(log, record("Result: 1.00", "lib_run_single") + record(waalog.finished("notepad", task)))
        time.sleep(1.0)  # the last events reach the clients
        clients.close()
    finally:
        kill(server)
    lat = [t - appended[key] for key, times in clients.seen.items() if key in appended for t in times]
    return {"delivered": len(lat), "expected": len(appended) * a.clients,
            "p50": percentile(lat, 50) * 1000, "p99": percentile(lat, 99) * 1000}


class Stepper:
    """Appends a traj line to ``path`` every ``gap`` seconds in a thread, until stopped."""

    def __init__(self, path: Path, gap: float) -> None:
        self.path, self.gap, self.stop, self.n = path, gap, threading.Event(), 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.gap):
            self.n += 1
            append(self.path, traj_line(self.n))

    def close(self) -> int:
        self.stop.set()
        self.thread.join()
        return self.n


def fanout_phase(mode: str, a: argparse.Namespace, work: Path) -> dict[str, float]:
    from bench_fanout import one_run

    base = work / f"fanout-{mode}"
    base.mkdir(exist_ok=True)
    results = base / "results"
    opts: dict[str, object] = {}
    stepper = None
    if mode == "idle":
        opts = {"results": results}  # configured; the fan-out's tasks start and end at once: nothing current
    elif mode == "active":
        log = base / "followed.log"
        task = "followed-WOS"
        # Another worker (an OSWorld env) runs a task the whole time: its trajectory is followed.
        log.write_bytes(record(waalog.domain("notepad", env="Env 1")) + record(waalog.example_id(task, env="Env 1")))
        traj = results.joinpath(*LEVELS, "notepad", task, "traj.jsonl")
        traj.parent.mkdir(parents=True, exist_ok=True)
        traj.write_bytes(b'{"step_num": 0, "action_timestamp": "20241120@140000", "action": null}\n')
        opts = {"log": log, "results": results}
        stepper = Stepper(traj, 1 / a.fanout_steps)
    ns = argparse.Namespace(rate=a.fanout_rate, duration=a.duration, clients=a.fanout_clients, client_procs=1,
                            keepalive=15.0, gzip=False, no_tuning=False)
    try:
        return one_run("trio", ns, base, **opts)
    finally:
        if stepper is not None:
            stepper.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=4)
    p.add_argument("--steps", type=int, default=10, help="steps per task")
    p.add_argument("--rate", type=float, default=5.0, help="appends per second")
    p.add_argument("--clients", type=int, default=5, help="streaming clients of the latency phases")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-ssh", action="store_true")
    p.add_argument("--no-fanout", action="store_true")
    p.add_argument("--fanout-clients", type=int, default=500)
    p.add_argument("--fanout-rate", type=float, default=4.0, help="task_complete per second")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of publishing per fan-out run")
    p.add_argument("--fanout-steps", type=float, default=1.0, help="traj lines per second while following")
    a = p.parse_args()
    print(f"machine: {machine()}")
    print(f"steps: {a.tasks} tasks x {a.steps} steps at {a.rate:g}/s, {a.clients} clients, {a.runs} runs\n")
    with tempfile.TemporaryDirectory(prefix="bench-steps-") as tmp:
        work = Path(tmp)
        sshd = start_sshd(work) if not a.no_ssh else None
        wheres: list[tuple[str, dict[str, str] | None]] = [("local", None)]
        if sshd is not None:
            wheres.append(("ssh", sshd[1]))  # type: ignore[index]
        elif not a.no_ssh:
            print("(no sshd/ssh here: the SSH rows are left out)")
        runs: dict[tuple[str, str], list[dict[str, float]]] = {}
        try:
            for run in range(a.runs):
                for where, ssh in wheres:
                    for kind in ("log", "traj") if run % 2 == 0 else ("traj", "log"):
                        r = latency_phase(kind, a, work, ssh, run)
                        runs.setdefault((where, kind), []).append(r)
                        print(f"  run {run + 1} {where:5} {kind:4}: {r['delivered']}/{r['expected']} delivered, "
                              f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms", flush=True)
        finally:
            if sshd is not None:
                stop_sshd(sshd[0])
        rows = []
        for where, _ in wheres:
            med = {kind: {m: median([r[m] for r in runs[(where, kind)]]) for m in ("delivered", "expected", "p50", "p99")}
                   for kind in ("log", "traj")}
            for kind, label in (("log", "log Step line → step (baseline)"), ("traj", "traj.jsonl line → step")):
                m = med[kind]
                rows.append([where, label, f"{m['delivered']:.0f}/{m['expected']:.0f}", m["p50"], m["p99"],
                             ratio(m["p50"], med["log"]["p50"])])
        print()
        print(table(["where", "path", "delivered/expected", "p50 ms", "p99 ms", "p50 / baseline"], rows))
        if a.no_fanout:
            return
        print(f"\nfan-out: {a.fanout_clients} clients, {a.fanout_rate:g} task_complete/s for {a.duration:g} s, "
              f"{a.runs} runs each")
        modes = ("off", "idle", "active")
        fan: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
        for run in range(a.runs):
            for mode in modes if run % 2 == 0 else modes[::-1]:
                r = fanout_phase(mode, a, work)
                fan[mode].append(r)
                print(f"  run {run + 1} {mode:6}: {r['delivered']}/{r['expected']} delivered, "
                      f"CPU {r['cpu_per_1000']:.3f} s/1000, p50 {r['p50']:.1f} ms", flush=True)
        med = {m: {k: median([r[k] for r in rs]) for k in ("cpu_per_1000", "p50", "p99", "delivered", "expected")}
               for m, rs in fan.items()}
        labels = {"off": "no results folder (bench_fanout.py)", "idle": "results folder, nothing to follow",
                  "active": f"results folder, a trajectory growing {a.fanout_steps:g} line/s"}
        print()
        print(table(["trio-sse", "delivered/expected", "CPU s / 1000 events", "ratio to no results", "p50 ms", "p99 ms"],
                    [[labels[m], f"{med[m]['delivered']:.0f}/{med[m]['expected']:.0f}", med[m]["cpu_per_1000"],
                      ratio(med[m]["cpu_per_1000"], med["off"]["cpu_per_1000"]), med[m]["p50"], med[m]["p99"]]
                     for m in modes]))


if __name__ == "__main__":
    main()
