"""Forecast of a run's final success rate with a 90 % interval (SPEC §9: ``progress.forecast``).
Pure.

Owns: ``forecast(totals, done, prior=…)`` → ``{"success_rate", "low", "high"}`` and the
small helpers to tally results per domain. The method is documented here and, with its
validation, in ``docs/forecast.md`` (``scripts/validate_forecast.py`` produces the numbers).

Must not: import anything async, keep state between calls, or use a random generator (the
same inputs always give the same forecast).

Method
------
The final success rate is ``(K + Σ_d X_d) / N``: ``K`` tasks passed so far, ``N`` tasks in the
run (the task lists give each domain's total ``N_d``), ``X_d`` the successes still to come in
domain ``d``, which has ``r_d = N_d - n_d`` tasks left. Each domain gets its own pass rate
``p_d``, and the domains with many tasks left weigh the most — a run that did its easy domains
first is not extrapolated from them alone.

* **Without a baseline** domain rates are exchangeable: ``p_d`` follows a Beta distribution
  with mean ``μ`` and intra-domain correlation ``ρ`` (variance ``ρ μ (1 - μ)``: how different
  domains are). Neither is known early in a run, so the forecast averages over a grid
  (``MU_GRID`` × ``RHO_GRID``, flat prior), each point weighted by the Beta-Binomial
  likelihood of the seen domains' results.
* **With a baseline**, a domain's prior mean is the baseline's rate in it (smoothed:
  ``(passed + 1) / (tasks + 2)``) plus the run's overall shift from the baseline so far ``Δ``
  (shrunk towards 0 with ``SHIFT_PRIOR_SD``); its variance is the baseline's own sampling
  noise plus a per-domain drift (``DRIFT_PRIOR_SD``, updated from the seen domains'
  residuals, weighted as ``DRIFT_PRIOR_WEIGHT`` pseudo-domains). ``Δ``'s uncertainty moves
  every such domain together: it enters as a fully correlated term ``(Σ_d r_d w_d)² Var(Δ)``,
  ``w_d`` being the prior's weight in domain ``d``'s posterior. A domain the baseline lacks
  falls back to the pooled prior.
* **Posterior.** The prior is a Beta distribution with that mean and variance; the domain's own
  results update it (Beta-Binomial), so a domain half done is forecast mostly from itself.
  ``X_d`` is then Beta-Binomial over ``r_d`` tasks: mean ``r_d π_d``, variance
  ``r_d π_d (1 - π_d) (a + b + r_d) / (a + b + 1)``.
* **Interval.** The remaining successes' share ``Σ X_d / R`` (``R`` tasks left; its mean and
  variance mixed over the grid) is matched to a Beta distribution (skewed near 0 and 1, where
  a normal interval would spill over); its 5 % and 95 % quantiles give ``low`` and ``high``.
  At the end (nothing left) all three are the exact rate.

Cost: ~5 ms a call without a baseline (the grid), ~1 ms with one: compute it when a task
completes, not on every ``progress`` tick.

Validation (``scripts/validate_forecast.py``, numbers in docs/forecast.md): seeded simulated
runs with WAA's 154 tasks in 12 domains, domains run one after another (WAA's order) or
interleaved (parallel workers), per-domain rates drawn with realistic heterogeneity; the
share of runs whose final rate falls inside the interval printed at 25 %, 50 % and 75 %.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

LEVEL: Final = 0.90
# ρ: the share of a task's outcome variance due to its domain. Uniform prior on this grid.
RHO_GRID: Final = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6)
MU_GRID: Final = tuple((i + 0.5) / 20 for i in range(20))  # the domains' mean rate: flat prior
SHIFT_PRIOR_SD: Final = 0.15  # how far a run's overall rate may move from its baseline's
DRIFT_PRIOR_SD: Final = 0.12  # how far one domain's rate may move beyond that shift
DRIFT_PRIOR_WEIGHT: Final = 3.0
_EPS: Final = 1e-6

Domain = str | None
Tally = tuple[int, int]  # (passed, done)


def tally(payloads: Iterable[Mapping[str, Any]]) -> dict[Domain, Tally]:
    """Per domain (passed, done) from ``task_complete`` payloads (a task counted once: its
    last result)."""
    last: dict[str, tuple[Domain, bool]] = {}
    for p in payloads:
        task_id = p.get("task_id")
        if isinstance(task_id, str):
            domain = p.get("domain") if isinstance(p.get("domain"), str) else None
            last[task_id] = (domain, p.get("success") is True)
    out: dict[Domain, Tally] = {}
    for domain, success in last.values():
        passed, done = out.get(domain, (0, 0))
        out[domain] = (passed + success, done + 1)
    return out


def domain_totals(tasks: Iterable[tuple[str, str]]) -> dict[Domain, int]:
    """Per domain task count from a run's task lists (``(domain, task_id)`` pairs, as
    ``Worker N is doing tasks: [...]`` lists them; each task once)."""
    seen: dict[str, str] = {}
    for domain, task_id in tasks:
        seen[task_id] = domain
    out: dict[Domain, int] = {}
    for domain in seen.values():
        out[domain] = out.get(domain, 0) + 1
    return out


def forecast(
    totals: Mapping[Domain, int],
    done: Mapping[Domain, Tally],
    *,
    prior: Mapping[Domain, Tally] | None = None,
    total_tasks: int | None = None,
    level: float = LEVEL,
) -> dict[str, float] | None:
    """The expected final success rate and its ``level`` interval, or None when the run's
    size is unknown. ``totals``: tasks per domain (the task lists); ``done``: (passed, done)
    per domain so far; ``prior``: the baseline's (passed, tasks) per domain; ``total_tasks``:
    the run's total when the lists do not cover every task (the rest is one unknown domain)."""
    sizes: dict[Domain, int] = {}
    for d in {*totals, *done}:
        passed, n = _clean_tally(done.get(d, (0, 0)))
        sizes[d] = max(_nonneg(totals.get(d, 0)), n)
    listed = sum(sizes.values())
    if total_tasks is not None and _nonneg(total_tasks) > listed:
        sizes[_UNLISTED] = sizes.get(_UNLISTED, 0) + _nonneg(total_tasks) - listed
    size = sum(sizes.values())
    if size == 0:
        return None
    tallies = {d: _clean_tally(done.get(d, (0, 0))) for d in sizes}
    passed = sum(k for k, _ in tallies.values())
    n = sum(m for _, m in tallies.values())
    left = size - n
    if left == 0:
        rate = passed / size
        return {"success_rate": _round(rate), "low": _round(rate), "high": _round(rate)}

    shift = _shift(tallies, prior) if prior else None
    # How different domains are (ρ) is uncertain early on: average over a grid of values,
    # each weighted by how well it explains the domains seen so far.
    needs_pool = any(
        sizes[d] > tallies[d][1] and not (shift and d is not _UNLISTED and _clean_tally(prior.get(d, (0, 0)))[1] > 0)
        for d in sizes
    )
    grid = _pooled(tallies, passed, n) if needs_pool else [(1.0, _Shared(0.5, 0.0, 0.25))]
    components = []
    for weight, pooled in grid:
        if weight < 1e-4:
            continue
        m_j, v_j = _remaining(sizes, tallies, prior, pooled, shift)
        components.append((weight, m_j / left, v_j / left**2))
    total_weight = sum(w for w, _, _ in components)
    share = sum(w * m for w, m, _ in components) / total_weight
    second = sum(w * (v + m * m) for w, m, v in components) / total_weight
    lo, hi = _beta_interval(share, max(second - share * share, 0.0), level)
    mean = share * left
    rate = _round((passed + mean) / size)
    return {
        "success_rate": rate,
        # (min/max: the quantiles of a distribution squeezed against 0 or 1 can land a
        # hair on the wrong side of the mean after rounding)
        "low": min(_round((passed + lo * left) / size), rate),
        "high": max(_round((passed + hi * left) / size), rate),
    }


# ---------------------------------------------------------------------------- the parts

def _remaining(
    sizes: Mapping[Domain, int],
    tallies: Mapping[Domain, Tally],
    prior: Mapping[Domain, Tally] | None,
    pooled: _Shared,
    shift: _Shared | None,
) -> tuple[float, float]:
    """Mean and variance of the successes still to come, over every domain."""
    mean = var = 0.0
    weight_shift = 0.0
    for d, total in sizes.items():
        k, m = tallies[d]
        r = total - m
        if r == 0:
            continue
        base = _clean_tally(prior.get(d, (0, 0))) if prior and d is not _UNLISTED else (0, 0)
        if shift is not None and base[1] > 0:
            b = (base[0] + 1) / (base[1] + 2)
            prior_mean = _clip(b + shift.value)
            prior_var = shift.drift + b * (1 - b) / (base[1] + 3)
            shared = True
        else:  # (the pooled prior's own uncertainty is the grid's: see forecast())
            prior_mean = pooled.value
            prior_var = pooled.drift
            shared = False
        prior_var = min(max(prior_var, _EPS), prior_mean * (1 - prior_mean) * (1 - _EPS))
        s = prior_mean * (1 - prior_mean) / prior_var - 1  # Beta(s·m, s·(1-m))
        a, b_ = s * prior_mean + k, s * (1 - prior_mean) + (m - k)
        pi = a / (a + b_)
        mean += r * pi
        var += r * pi * (1 - pi) * (a + b_ + r) / (a + b_ + 1)
        if shared:
            weight_shift += r * s / (s + m)  # the prior's weight in the posterior mean
    shared_sd = weight_shift * math.sqrt(shift.var) if shift else 0.0
    return mean, var + shared_sd**2


_UNLISTED: Final = "\x00unlisted"  # tasks the task lists did not name (a pooled domain)


class _Shared:
    """A shared parameter's estimate and variance, and the per-domain spread around it."""

    __slots__ = ("value", "var", "drift")

    def __init__(self, value: float, var: float, drift: float) -> None:
        self.value = value
        self.var = var
        self.drift = drift


def _pooled(tallies: Mapping[Domain, Tally], passed: int, n: int) -> list[tuple[float, _Shared]]:
    """The pooled prior for each (μ, ρ) of the grid, with its posterior weight: the
    Beta-Binomial likelihood of the seen domains' results when domain rates spread as a
    Beta distribution with mean μ and intra-domain correlation ρ (flat prior on the grid)."""
    seen = [(k, m) for k, m in tallies.values() if m > 0]
    grid = []
    for mu in MU_GRID:
        for rho in RHO_GRID:
            s = 1 / rho - 1
            a, b = mu * s, (1 - mu) * s
            norm = _lbeta(a, b)
            log_lik = sum(_lbeta(a + k, b + m - k) - norm for k, m in seen)
            grid.append((log_lik, mu, rho))
    top = max(x for x, _, _ in grid)
    weights = [math.exp(x - top) for x, _, _ in grid]
    total = sum(weights)
    return [(w / total, _Shared(mu, 0.0, rho * mu * (1 - mu))) for w, (_, mu, rho) in zip(weights, grid, strict=True)]


def _lbeta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _shift(tallies: Mapping[Domain, Tally], prior: Mapping[Domain, Tally]) -> _Shared:
    """The run's overall shift from its baseline (rate now − rate then) in the domains seen
    in both, shrunk towards 0; and the per-domain drift around it."""
    pairs = []
    for d, (k, m) in tallies.items():
        base = prior.get(d) if d is not _UNLISTED else None
        if m > 0 and base is not None:
            bk, bn = _clean_tally(base)
            if bn > 0:
                pairs.append((k, m, (bk + 1) / (bn + 2), bn))
    drift2 = DRIFT_PRIOR_SD**2
    prior_var = SHIFT_PRIOR_SD**2
    matched = sum(m for _, m, _, _ in pairs)
    if not pairs:
        return _Shared(0.0, prior_var, drift2)
    raw = sum(k - m * b for k, m, b, _ in pairs) / matched
    usable = [(k, m, b, bn) for k, m, b, bn in pairs if m >= 2]
    if len(usable) >= 2:
        resid = [k / m - b - raw for k, m, b, _ in usable]
        noise = [(b * (1 - b)) / m + b * (1 - b) / (bn + 3) for _, m, b, bn in usable]
        drift_hat = max(0.0, sum(e * e for e in resid) / (len(usable) - 1) - sum(noise) / len(noise))
        dof = len(usable) - 1
        drift2 = (DRIFT_PRIOR_WEIGHT * drift2 + dof * drift_hat) / (DRIFT_PRIOR_WEIGHT + dof)
    # Variance of the raw shift: each seen domain's own drift does not average out over few
    # domains (task-weighted), plus the binomial noise of the tasks and of the baseline.
    sampling = sum(m * m * (drift2 + b * (1 - b) / (bn + 3)) + m * b * (1 - b) for _, m, b, bn in pairs) / matched**2
    post_var = 1 / (1 / prior_var + 1 / max(sampling, _EPS))
    return _Shared(raw * post_var / sampling if sampling > _EPS else raw, post_var, drift2)


def _beta_shape(mean: float, var: float) -> tuple[float, float] | None:
    """Beta(a, b) with this mean and variance; None for a point mass."""
    mean = min(max(mean, _EPS), 1 - _EPS)
    max_var = mean * (1 - mean)
    if var <= _EPS**2:
        return None
    nu = max_var / min(var, max_var * 0.999) - 1
    return mean * nu, (1 - mean) * nu


def _beta_interval(mean: float, var: float, level: float) -> tuple[float, float]:
    """Central ``level`` interval of the Beta distribution with this mean and variance."""
    shape = _beta_shape(mean, var)
    if shape is None:
        return mean, mean
    a, b = shape
    tail = (1 - level) / 2
    return _quantile(lambda x: _betainc(a, b, x), tail), _quantile(lambda x: _betainc(a, b, x), 1 - tail)


def _quantile(cdf: Callable[[float], float], q: float) -> float:
    lo, hi = 0.0, 1.0
    for _ in range(40):  # bisection: 2^-40, far below the 4 decimals reported
        mid = (lo + hi) / 2
        if cdf(mid) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) (continued fraction, Lentz's method)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1.0 - x)
    tiny = 1e-300
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            numerator = 1.0
        elif i % 2 == 0:
            numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            numerator = -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / (c if abs(c) > tiny else tiny)
        f *= c * d
        if abs(1.0 - c * d) < 1e-12:
            break
    return math.exp(log_front) * (f - 1.0) / a


# ---------------------------------------------------------------------------- hygiene


def _nonneg(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _clean_tally(value: Any) -> Tally:
    """(passed, done) with 0 <= passed <= done; junk → (0, 0)."""
    try:
        passed, n = value
    except (TypeError, ValueError):
        return (0, 0)
    n = _nonneg(n)
    return (min(_nonneg(passed), n), n)


def _clip(p: float) -> float:
    return min(max(p, 0.005), 0.995)


def _round(x: float) -> float:
    return round(min(max(x, 0.0), 1.0), 4)
