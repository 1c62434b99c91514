#!/usr/bin/env python3
"""Upstream-faithful WAA/OSWorld fixtures (``tests/upstream``): write them out, or report what
a trio-sse checkout's parser and monitor make of them.

    .venv/bin/python scripts/upstream_fixtures.py write DIR
    .venv/bin/python scripts/upstream_fixtures.py report DIR [--code /work/main]

``write`` (needs this checkout's code): for each scenario, ``DIR/<scenario>/`` gets every
artifact as written (``logs/normal-*.log``, ``console*.log``), ``expected.json`` (the events a
truthful parser gives, per artifact, from the scenario's definition), ``timeline.json`` (the
order the artifacts grew in: ``[artifact, bytes]`` pairs), ``meta.json`` (parse errors each
artifact holds by definition) and ``README.txt`` (the scenario and the upstream lines it
exercises).

``report`` reads such a directory with whatever ``trio_sse`` is first on the path (``--code``
puts a checkout first — e.g. ``/work/main`` to see what today's code does) and lists, per
scenario, where its ``LogParser``, ``Monitor.apply`` and — for several files growing at once
— ``LocalSource`` on the README's glob disagree with the expectations. It only uses names that
exist on main, so it runs against either version.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _artifact_file(name: str) -> str:
    return name if name.startswith("logs/") else f"{name}.log"


def write(out: Path) -> int:
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    import dataclasses

    from upstream import SCENARIOS, build

    for name in SCENARIOS:
        fx = build(name)
        d = out / name
        for artifact, data in fx.artifacts.items():
            p = d / _artifact_file(artifact)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        expected = {
            _artifact_file(a): [{"type": type(e).__name__, **_plain(dataclasses.asdict(e))} for e in evs]
            for a, evs in fx.expected.items()
        }
        (d / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False))
        timeline = [[_artifact_file(a), len(chunk)] for a, chunk in fx.timeline]
        (d / "timeline.json").write_text(json.dumps(timeline))
        (d / "README.txt").write_text(f"{name}\n\n{' '.join(fx.doc.split())}\n")
        (d / "meta.json").write_text(json.dumps({"parse_errors": fx.parse_errors}))
        print(f"{name}: {', '.join(sorted(_artifact_file(a) for a in fx.artifacts))}")
    return 0


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------- report


class Expect:
    """What a scenario's expected events say about one artifact."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.results = [e for e in events if e["type"] == "TaskFinished"]
        self.started = [e["task_id"] for e in events if e["type"] == "TaskStarted"]
        scored = [e["score"] for e in self.results if e["score"] is not None]
        self.waa_average = sum(scored) / len(scored) if scored else None
        self.run_end = [e for e in events if e["type"] == "RunFinished"]
        # The guest's readiness as the log last told it: a readiness line, or a task that
        # raised because the guest could not be reached (SPEC §7.1).
        said = [
            e["ready"] if e["type"] == "ServerReady" else False
            for e in events
            if e["type"] == "ServerReady" or (e["type"] == "TaskFinished" and e["vm_unreachable"])
        ]
        self.ready = said[-1] if said else None
        self.phases = [e["phase"] for e in events if e["type"] == "PhaseSeen"]
        self.interrupted = any(e["type"] == "Interrupted" for e in events)
        self.rate_limited = sum(1 for e in events if e["type"] == "RateLimited" and not e["retry"])
        self.totals = [e["total_tasks"] for e in events if e["type"] == "RunStarted"]
        self.unreachable = sum(1 for e in self.results if e["vm_unreachable"])


def report(src: Path) -> int:
    from trio_sse.logparse import LogParser, PhaseSeen, RunFinished, RunStarted, ServerReady, TaskFinished, TaskStarted
    from trio_sse.model import RunComplete, TaskComplete

    import trio_sse

    print(f"trio_sse from {Path(trio_sse.__file__).parent}\n")
    for d in sorted(p for p in src.iterdir() if p.is_dir()):
        expected = json.loads((d / "expected.json").read_text())
        parse_errors = json.loads((d / "meta.json").read_text())["parse_errors"]
        print(f"== {d.name}: {(d / 'README.txt').read_text().splitlines()[2][:160]}")
        for artifact, events in expected.items():
            data = (d / artifact).read_bytes()
            want = Expect(events)
            parser = LogParser()
            got = parser.feed(data) + parser.close()
            problems: list[str] = []
            # -- parser
            started = [e.task_id for e in got if isinstance(e, TaskStarted)]
            results = [e for e in got if isinstance(e, TaskFinished)]
            if started != want.started:
                problems.append(f"parser: tasks started {len(started)} ({_ids(started)}), expected {len(want.started)}")
            got_res = [(e.task_id, e.score, e.error) for e in results]
            want_res = [(e["task_id"], e["score"], e["error"]) for e in want.results]
            if got_res != want_res:
                problems.append(f"parser: results {_res(got_res)}; expected {_res(want_res)}")
            totals = [e.total_tasks for e in got if isinstance(e, RunStarted)]
            if totals != want.totals:
                problems.append(f"parser: run totals {totals}, expected {want.totals}")
            ends = [e.average_score for e in got if isinstance(e, RunFinished)]
            if ends != [e["average_score"] for e in want.run_end]:
                problems.append(f"parser: run end {ends}, expected {[e['average_score'] for e in want.run_end]}")
            phases = [e.phase for e in got if isinstance(e, PhaseSeen)]
            if phases != want.phases:
                problems.append(f"parser: phases {phases}, expected {want.phases}")
            ready = [e.ready for e in got if isinstance(e, ServerReady)]
            want_ready = [e["ready"] for e in events if e["type"] == "ServerReady"]
            if ready != want_ready:
                problems.append(f"parser: readiness lines {len(ready)} {_bools(ready)}, expected {len(want_ready)} {_bools(want_ready)}")
            if parser.statistics.parse_errors != parse_errors:
                problems.append(f"parser: {parser.statistics.parse_errors} parse error(s), expected {parse_errors}")
            # -- monitor
            problems += _monitor(data, want, TaskComplete, RunComplete)
            print(f"  {artifact}: {'as expected' if not problems else ''}")
            for p in problems:
                print(f"    - {p}")
        logs = sorted(expected, key=str)
        logs = [a for a in logs if a.startswith("logs/")]
        if len(logs) > 1:
            for line in _follow_glob(d, logs, expected):
                print(f"  {line}")
        print()
    return 0


def _ids(ids: list[str]) -> str:
    return ", ".join(i[:12] + ("…" if len(i) > 12 else "") + f"[{len(i)}]" if len(i) > 40 else i[:12] for i in ids)


def _res(rs: list[tuple[Any, ...]]) -> str:
    return "[" + ", ".join(f"{t[0][:8]}:{t[1]}{'!' if t[2] else ''}" for t in rs) + "]"


def _bools(bs: list[bool]) -> str:
    return "".join("T" if b else "F" for b in bs)


def _monitor(data: bytes, want: Expect, task_complete: type, run_complete: type) -> list[str]:
    from trio_sse.monitor import Monitor
    from trio_sse.sources import LogBytes, LogReset

    class Quiet:
        async def follow(self, *a: Any, **k: Any) -> None:  # pragma: no cover - never run
            raise NotImplementedError

        async def probe(self) -> Any:  # pragma: no cover
            raise NotImplementedError

    m = Monitor("t", Quiet())  # type: ignore[arg-type]
    m.apply(LogReset("/x.log"))
    m.apply(LogBytes(data, 0))
    out: list[str] = []
    done = [e.event for e in m.history.entries if isinstance(e.event, task_complete)]
    rc = [e.event for e in m.history.entries if isinstance(e.event, run_complete)]
    if len(done) != len(want.results):
        out.append(f"monitor: {len(done)} task_complete, expected {len(want.results)}")
    ids = [t.task_id for t in done]
    if len(ids) != len(set(ids)):
        out.append("monitor: a task reported twice")
    live = m.summary.average_score
    if want.results and (live is None) != (want.waa_average is None) or (
        live is not None and want.waa_average is not None and abs(live - want.waa_average) > 1e-6
    ):
        out.append(f"monitor: live average {live}, WAA's (tasks with a Result) {want.waa_average}")
    if want.run_end:
        got_avg = rc[0].average_score if rc else "no run_complete"
        exp = want.run_end[0]["average_score"]
        if got_avg != exp:
            out.append(f"monitor: run_complete.average_score {got_avg}, the log says {exp}")
    if want.interrupted and not any(getattr(r, "interrupted", False) for r in rc):
        out.append("monitor: the run was interrupted (Interrupted by N / Received signal N): nothing says so")
    s = m.status.value
    if want.ready is not None and s.waa_ready != want.ready:
        out.append(f"monitor: status.waa_ready {s.waa_ready}, the log last said {want.ready}")
    if want.results and want.unreachable == len(want.results) and s.phase == "ready":
        out.append("monitor: status.phase 'ready' while every task failed talking to the guest")
    if want.phases and s.phase != want.phases[-1] and not (want.results and want.unreachable == len(want.results)):
        out.append(f"monitor: status.phase {s.phase!r}, the console's last phase line says {want.phases[-1]!r}")
    fields = {f for f in getattr(task_complete, "__dataclass_fields__", {})}
    missing = [f for f in ("failure_kind", "instruction", "started_at", "finished_at", "worker") if f not in fields]
    if missing and want.results:
        kinds = sorted({e["failure_kind"] for e in want.results if e["score"] != 1.0})
        out.append(f"monitor: task_complete has no {', '.join(missing)} (failure kinds here: {kinds})")
    if want.rate_limited and "rate_limited" not in getattr(type(m.progress.value), "__dataclass_fields__", {}):
        out.append(f"monitor: {want.rate_limited} HTTP 429 line(s) in the log, not counted anywhere")
    return out


def _follow_glob(d: Path, logs: list[str], expected: dict[str, Any]) -> list[str]:
    """The README's glob over files growing side by side, through LocalSource and Monitor."""
    import tempfile

    import trio

    from trio_sse.model import TaskComplete
    from trio_sse.monitor import Monitor
    from trio_sse.sources.local import LocalSource

    timeline = json.loads((d / "timeline.json").read_text())
    want = sum(len(Expect(expected[a]).results) for a in logs)
    data = {a: (d / a).read_bytes() for a in logs}
    seen: list[int] = []

    offered: list[Any] = []

    class Recorder:
        interval = 1.0

        def offer(self, monitor: Any, item: Any) -> None:
            offered.append(item)

    async def main(tmp: Path) -> Monitor:
        pos = dict.fromkeys(logs, 0)
        for a in logs:
            (tmp / a).parent.mkdir(parents=True, exist_ok=True)
        source = LocalSource(str(tmp / "logs" / "normal-*.log"), process_pattern=None, poll_interval=0.01)
        monitor = Monitor("t", source, idle_probe_seconds=3600)
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            monitor.subscribe(Recorder(), None)
            for a, n in timeline:
                if a not in data:
                    continue
                with (tmp / a).open("ab") as f:
                    f.write(data[a][pos[a] : pos[a] + n])
                pos[a] += n
                await trio.sleep(0.01)
                v = monitor.progress.value.tasks_completed
                if not seen or seen[-1] != v:
                    seen.append(v)
            await trio.sleep(0.3)
            nursery.cancel_scope.cancel()
        return monitor

    with tempfile.TemporaryDirectory() as tmp:
        monitor = trio.run(main, Path(tmp))
    sent = [(e.id.rsplit("-", 1)[0].split(":")[1], e.event.task_id[:8]) for e in offered
            if isinstance(getattr(e, "event", None), TaskComplete)]  # fmt: skip
    done = [e for e in monitor.history.entries if isinstance(e.event, TaskComplete)]
    runs: dict[str, list[str]] = {}
    for run, task in sent:
        runs.setdefault(run, []).append(task)
    return [
        f"LocalSource + Monitor on logs/normal-*.log ({len(logs)} files growing at once, {want} tasks): "
        f"{len(sent)} task_complete sent for {len(set(t for _, t in sent))} distinct tasks, "
        f"{monitor.statistics().runs} run(s) started, {len(done)} task(s) in the final run; "
        f"tasks_completed went {seen}; task_complete by run id: {runs}"
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("dir", type=Path)
    r = sub.add_parser("report")
    r.add_argument("dir", type=Path)
    r.add_argument("--code", type=Path, help="a trio-sse checkout to import trio_sse from")
    args = ap.parse_args(argv)
    if args.cmd == "write":
        return write(args.dir)
    if args.code is not None:
        sys.path.insert(0, str(args.code))
    else:
        sys.path.insert(0, str(ROOT))
    return report(args.dir)


if __name__ == "__main__":
    raise SystemExit(main())
