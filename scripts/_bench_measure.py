#!/usr/bin/env python3
"""Benchmark measuring (``scripts/bench_*.py``): what a process costs, read from ``/proc``
(CPU seconds, RSS) and from inside it (``GcMeter``: time in CPython's cyclic GC), the
statistics over runs (percentiles, medians, ratios, delivery latencies), the markdown tables
the scripts print, the one-line machine description, and the file-descriptor limit.

Must not: start processes or servers, open sockets, or import trio / trio_sse (the client
process imports it and must stay light). Not part of the package, not tests.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# --------------------------------------------------------------------------- a process's cost


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (its threads included), from /proc."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE


class GcMeter:
    """Time spent in CPython's cyclic GC from ``start()`` on (gc.callbacks), per generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._t0 = 0.0

    def start(self) -> None:
        import gc

        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._t0
            self.collections[info["generation"]] += 1


def raise_nofile() -> int:
    """Raise RLIMIT_NOFILE to its hard limit (thousands of connections); the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --------------------------------------------------------------------------- statistics and tables


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank on sorted values; NaN when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-markdown table (pastes into docs/performance.md as is)."""
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(c: object) -> str:
    if isinstance(c, float):
        if c != c:
            return "–"
        return f"{c:.3g}" if abs(c) < 100 else f"{c:.0f}"
    return str(c)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def latencies(received: dict[int, list[float]], published: dict[int, float]) -> list[float]:
    """Receive time − publish time of every durable event every client got (by ordinal)."""
    return [t - published[seq] for seq, times in received.items() if seq in published for t in times]


def machine() -> str:
    """CPU, kernel, Python and the versions of the servers' packages, on one line."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for pkg in ("trio", "hypercorn", "quart", "quart-trio", "h11", "uvicorn", "starlette", "sse-starlette"):
        try:
            versions.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return (
        f"{os.cpu_count()} × {model}, Linux {platform.release()}, Python {platform.python_version()}; "
        + ", ".join(versions)
    )


