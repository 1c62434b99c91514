#!/usr/bin/env python3
"""Validate ``trio_sse.forecast`` on many seeded simulated runs (SPEC §9).

Each run has WAA's 154 tasks in its 12 domains (WAA v1's per-domain counts, below; the
simulator's ``plan_run`` spreads tasks evenly over domains with one pass rate, which would
flatter the method). A run draws its overall pass rate ``μ ~ U(0.05, 0.65)`` and each
domain's rate from a Beta distribution with mean ``μ`` and intra-domain correlation ``ρ``
(the heterogeneity: how much of a task's outcome is explained by its domain). Tasks run
either domain after domain in a random domain order (WAA's ``run.py``: the hard case, whole
domains unseen at 25 %) or interleaved (parallel workers). The forecast printed after 25 %,
50 % and 75 % of the tasks is checked against the run's final rate.

With a baseline, the baseline is another run of the same tasks whose domain rates are
``logit⁻¹(logit p_d + δ + ε_d)``: ``rerun`` (δ = ε = 0: the same agent again) or ``changed``
(δ ~ N(0, 0.5), ε_d ~ N(0, 0.4): another model or prompt).

Prints, per scenario, the coverage of the 90 % interval (goal: ≥ 85 % at 25 %) and its mean
width, with and without the baseline prior. Deterministic per --seed.

    python scripts/validate_forecast.py [--runs 500] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trio_sse.forecast import forecast  # noqa: E402

# WAA v1 (154 tasks): tasks per domain.
WAA_DOMAINS: dict[str, int] = {
    "chrome": 17,
    "clock": 4,
    "file_explorer": 19,
    "libreoffice_calc": 24,
    "libreoffice_writer": 19,
    "microsoft_paint": 3,
    "msedge": 13,
    "notepad": 2,
    "settings": 5,
    "vlc": 21,
    "vs_code": 24,
    "windows_calc": 3,
}
CHECKPOINTS = (0.25, 0.50, 0.75)
HETEROGENEITY = {"low": 0.05, "medium": 0.15, "high": 0.30}


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def _expit(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def domain_rates(rng: random.Random, rho: float) -> dict[str, float]:
    mu = rng.uniform(0.05, 0.65)
    s = 1 / rho - 1
    return {d: rng.betavariate(max(mu * s, 1e-3), max((1 - mu) * s, 1e-3)) for d in WAA_DOMAINS}


def run_order(rng: random.Random, order: str) -> list[str]:
    if order == "grouped":
        domains = list(WAA_DOMAINS)
        rng.shuffle(domains)
        return [d for d in domains for _ in range(WAA_DOMAINS[d])]
    tasks = [d for d, n in WAA_DOMAINS.items() for _ in range(n)]
    rng.shuffle(tasks)
    return tasks


def baseline_tallies(rng: random.Random, rates: dict[str, float], kind: str) -> dict[str | None, tuple[int, int]]:
    shift = 0.0 if kind == "rerun" else rng.gauss(0, 0.5)
    out: dict[str | None, tuple[int, int]] = {}
    for d, n in WAA_DOMAINS.items():
        noise = 0.0 if kind == "rerun" else rng.gauss(0, 0.4)
        p = _expit(_logit(rates[d]) + shift + noise)
        out[d] = (sum(rng.random() < p for _ in range(n)), n)
    return out


def simulate(runs: int, seed: int, rho: float, order: str, prior_kind: str | None) -> dict[float, tuple[float, float]]:
    """checkpoint → (coverage, mean width)."""
    rng = random.Random(f"validate-forecast/{seed}/{rho}/{order}/{prior_kind}")
    hits = {c: 0 for c in CHECKPOINTS}
    widths: dict[float, list[float]] = {c: [] for c in CHECKPOINTS}
    total = sum(WAA_DOMAINS.values())
    for _ in range(runs):
        rates = domain_rates(rng, rho)
        prior = baseline_tallies(rng, rates, prior_kind) if prior_kind else None
        sequence = run_order(rng, order)
        outcomes = [(d, rng.random() < rates[d]) for d in sequence]
        final = sum(ok for _, ok in outcomes) / total
        for c in CHECKPOINTS:
            n = math.ceil(c * total)
            done: dict[str | None, tuple[int, int]] = {}
            for d, ok in outcomes[:n]:
                k, m = done.get(d, (0, 0))
                done[d] = (k + ok, m + 1)
            f = forecast(WAA_DOMAINS, done, prior=prior)
            assert f is not None
            hits[c] += f["low"] <= final <= f["high"]
            widths[c].append(f["high"] - f["low"])
    return {c: (hits[c] / runs, statistics.fmean(widths[c])) for c in CHECKPOINTS}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="simulated runs per scenario (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(f"# forecast validation: {args.runs} runs per row, seed {args.seed}, 154 tasks in 12 WAA domains")
    print("# coverage = share of runs whose final success rate is inside the 90 % interval; width in rate points")
    header = f"{'heterogeneity':<17}{'order':<13}{'prior':<10}" + "".join(
        f"{'cov@' + format(c, '.0%'):>9}" for c in CHECKPOINTS
    ) + "".join(f"{'width@' + format(c, '.0%'):>11}" for c in CHECKPOINTS)
    print(header)
    print("-" * len(header))
    worst_25 = 1.0
    for name, rho in HETEROGENEITY.items():
        for order in ("grouped", "interleaved"):
            for prior_kind in (None, "rerun", "changed"):
                res = simulate(args.runs, args.seed, rho, order, prior_kind)
                worst_25 = min(worst_25, res[0.25][0])
                print(
                    f"{name + f' (ρ={rho})':<17}{order:<13}{prior_kind or 'none':<10}"
                    + "".join(f"{res[c][0]:>9.1%}" for c in CHECKPOINTS)
                    + "".join(f"{res[c][1] * 100:>11.1f}" for c in CHECKPOINTS)
                )
    print(f"# lowest coverage at 25 %: {worst_25:.1%} (goal >= 85 %); {time.perf_counter() - started:.0f} s")
    return 0 if worst_25 >= 0.85 else 1


if __name__ == "__main__":
    sys.exit(main())
