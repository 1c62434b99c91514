"""The forecast: its contract on hand-made runs (bounds, the end of a run, junk), the
per-domain weighting and the baseline prior doing what they claim. Its calibration is
measured by scripts/validate_forecast.py (docs/forecast.md), not here."""

from __future__ import annotations

import pytest

from trio_sse.forecast import domain_totals, forecast, tally

TOTALS = {"notepad": 10, "chrome": 20, "vs_code": 30}


def width(f: dict[str, float]) -> float:
    return f["high"] - f["low"]


def test_unknown_size_gives_none() -> None:
    assert forecast({}, {}) is None
    assert forecast({"a": 0}, {}) is None
    assert forecast({}, {}, total_tasks=0) is None


def test_at_the_end_it_is_the_exact_rate() -> None:
    done = {"notepad": (7, 10), "chrome": (5, 20), "vs_code": (0, 30)}
    assert forecast(TOTALS, done) == {"success_rate": 0.2, "low": 0.2, "high": 0.2}


@pytest.mark.parametrize(
    "done",
    [
        {},
        {"notepad": (10, 10)},
        {"notepad": (0, 10)},
        {"notepad": (5, 10), "chrome": (19, 19)},
        {"notepad": (3, 10), "chrome": (10, 20), "vs_code": (0, 29)},
    ],
)
@pytest.mark.parametrize("prior", [None, {"notepad": (2, 10), "chrome": (15, 20), "vs_code": (3, 30)}])
def test_bounds(done: dict[str, tuple[int, int]], prior: dict[str, tuple[int, int]] | None) -> None:
    f = forecast(TOTALS, done, prior=prior)
    assert f is not None
    passed = sum(k for k, _ in done.values())
    left = 60 - sum(n for _, n in done.values())
    assert passed / 60 - 1e-4 <= f["low"] <= f["success_rate"] <= f["high"] <= (passed + left) / 60 + 1e-4
    assert f == forecast(TOTALS, done, prior=prior)  # deterministic


def test_nothing_known_is_wide_and_centred() -> None:
    f = forecast(TOTALS, {})
    assert f is not None
    assert 0.4 <= f["success_rate"] <= 0.6
    assert f["low"] < 0.15 and f["high"] > 0.85


def test_narrows_as_the_run_goes() -> None:
    widths = []
    for n in (5, 20, 40, 55):
        # an even spread: a third of each domain's done tasks passed
        done, left = {}, n
        for d, total in TOTALS.items():
            m = min(total, left)
            left -= m
            if m:
                done[d] = (m // 3, m)
        widths.append(width(forecast(TOTALS, done)))
    assert widths == sorted(widths, reverse=True) and widths[-1] < widths[0] / 3


def test_remaining_domains_weigh_by_their_tasks_left() -> None:
    """An easy small domain done first does not make the forecast rosy when the baseline
    says the big domain left is hard."""
    done = {"notepad": (10, 10)}
    prior = {"notepad": (9, 10), "chrome": (2, 20), "vs_code": (1, 30)}
    rosy = forecast(TOTALS, done)
    f = forecast(TOTALS, done, prior=prior)
    assert rosy is not None and f is not None
    assert rosy["success_rate"] > 0.6
    assert f["success_rate"] < 0.35  # pulled down by the hard domains left
    assert f["high"] < rosy["high"]


def test_a_consistent_baseline_narrows_the_interval() -> None:
    done = {"notepad": (3, 10), "chrome": (6, 10)}
    prior = {"notepad": (3, 10), "chrome": (12, 20), "vs_code": (9, 30)}
    without, with_prior = forecast(TOTALS, done), forecast(TOTALS, done, prior=prior)
    assert width(with_prior) < width(without)
    assert abs(with_prior["success_rate"] - (3 + 6 + 10 * 0.6 + 30 * 0.3) / 60) < 0.05


def test_a_run_better_than_its_baseline_shifts_the_unseen_domains_up() -> None:
    prior = {"notepad": (2, 10), "chrome": (4, 20), "vs_code": (6, 30)}
    same = forecast(TOTALS, {"notepad": (2, 10), "chrome": (4, 20)}, prior=prior)
    better = forecast(TOTALS, {"notepad": (8, 10), "chrome": (16, 20)}, prior=prior)
    assert better["success_rate"] - same["success_rate"] > 0.3
    # vs_code is forecast above its baseline's 20 % in the better run
    assert (better["success_rate"] * 60 - 24) / 30 > 0.35


def test_tasks_outside_the_lists_count_as_one_unknown_domain() -> None:
    f = forecast({"notepad": 10}, {"notepad": (10, 10)}, total_tasks=40)
    assert f is not None and 10 / 40 < f["low"] < f["success_rate"] and f["success_rate"] > 0.5
    assert forecast({"notepad": 10}, {"notepad": (10, 10)}, total_tasks=5) == {"success_rate": 1.0, "low": 1.0, "high": 1.0}


@pytest.mark.parametrize(
    ("totals", "done"),
    [
        ({"a": -5, "b": 10}, {"b": (2, 4)}),
        ({"a": "ten", "b": 10}, {"b": (2, 4)}),
        ({"a": True, "b": 10}, {"b": (2, 4)}),
        ({"b": 10}, {"b": (9, 4), "c": "junk"}),  # passed > done is capped; junk tally is (0, 0)
        ({"b": 10}, {"b": (-1, 4), None: (1, 2, 3)}),
        ({"b": 10}, {"b": (2.5, 4)}),
    ],
)
def test_junk_is_cleaned_not_fatal(totals: dict, done: dict) -> None:
    f = forecast(totals, done, prior={"b": ("x", None), "zz": (1, 0)})
    assert f is not None and 0 <= f["low"] <= f["success_rate"] <= f["high"] <= 1


def test_more_done_than_listed_grows_the_domain() -> None:
    f = forecast({"a": 2}, {"a": (3, 5)})
    assert f == {"success_rate": 0.6, "low": 0.6, "high": 0.6}


def test_tally_and_domain_totals() -> None:
    payloads = [
        {"task_id": "1", "domain": "a", "success": True},
        {"task_id": "2", "domain": "a", "success": False},
        {"task_id": "2", "domain": "a", "success": True},  # retried: last counts
        {"task_id": "3", "domain": 5, "success": True},
        {"task_id": None, "domain": "a", "success": True},
        {"domain": "b", "success": True},
    ]
    assert tally(payloads) == {"a": (2, 2), None: (1, 1)}
    assert domain_totals([("a", "1"), ("a", "2"), ("b", "3"), ("a", "1")]) == {"a": 2, "b": 1}
