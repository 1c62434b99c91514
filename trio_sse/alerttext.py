"""What an alert says (SPEC §9): pure functions from event payloads to ``Alert``s — a key that
makes it sent once, a kind, a title, a body and a level.

Owns: the wording and the keys of every alert: run finished (pass rate, average, vs baseline),
run interrupted, run stalled, target unreachable, task regressed.

Must not: import anything async, send anything (``alerts.py`` does), or trust log-derived
text: control characters are removed and long values cut, so a hostile log line cannot
forge lines or flood a chat channel.

Keys: ``<target>:<run>:finished`` / ``:interrupted`` / ``:stalled:<episode>`` /
``:regressed:<task_id>``, and ``<target>:unreachable:<since>`` (no run: a target can be
down between runs). The key is what the ledger remembers across restarts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

INFO: Final = "info"
SUCCESS: Final = "success"
WARNING: Final = "warning"
FAILURE: Final = "failure"
LEVELS: Final = (INFO, SUCCESS, WARNING, FAILURE)  # Apprise's NotifyType values
KINDS: Final = ("finished", "interrupted", "stalled", "unreachable", "regressed")

MAX_FIELD: Final = 300  # characters of one log-derived value
MAX_LISTED: Final = 10  # task ids named in one alert
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Alert:
    key: str
    kind: str
    title: str
    body: str
    level: str = INFO


def clean(value: Any, limit: int = MAX_FIELD) -> str:
    """Log-derived text made safe for one line of a notification."""
    text = _SPACES.sub(" ", _CONTROL.sub(" ", str(value))).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _percent(part: int | None, whole: int | None) -> str:
    if part is None or not whole:
        return ""
    return f" ({100 * part / whole:.1f} %)"


def _score(value: Any) -> str:
    x = _number(value)
    return "n/a" if x is None else f"{x:.3f}"


def _run_label(target: str, run: str) -> str:
    return f"{clean(target, 64)} run {clean(run, 64)}"


def run_finished(target: str, run: str, payload: Mapping[str, Any], baseline: Mapping[str, Any] | None = None) -> Alert:
    """A ``run_complete`` payload → the finished (or interrupted) alert. ``baseline``: the
    ``run_complete.baseline`` summary (``baseline.Baseline.summary``), when there is one."""
    interrupted = payload.get("interrupted") is True
    kind = "interrupted" if interrupted else "finished"
    done = _count(payload.get("tasks_completed"))
    total = _count(payload.get("total_tasks"))
    passed = _count(payload.get("tasks_passed"))
    of = done if total is None else total
    head = f"{passed if passed is not None else '?'}/{of if of is not None else '?'} passed{_percent(passed, of)}"
    lines = [
        f"Target: {clean(target, 64)}",
        f"Run: {clean(run, 64)}",
        f"Tasks completed: {done if done is not None else '?'}" + (f" of {total}" if total is not None else ""),
        f"Passed: {passed if passed is not None else '?'}{_percent(passed, of)}",
        f"Average score: {_score(payload.get('average_score'))}",
    ]
    if interrupted:
        lines.append("The run was interrupted (the benchmark process is gone).")
    summary = baseline if isinstance(baseline, Mapping) else None
    level = WARNING if interrupted else SUCCESS
    if summary is not None:
        fixed, regressed = _count(summary.get("fixed")) or 0, _count(summary.get("regressed")) or 0
        p_then, t_then = _count(summary.get("passed_then")), _count(summary.get("tasks_then"))
        lines.append(
            f"Baseline {clean(summary.get('run', '?'), 80)}: {p_then if p_then is not None else '?'}/"
            f"{t_then if t_then is not None else '?'} passed{_percent(p_then, t_then)}, "
            f"average {_score(summary.get('average_then'))} (now {_score(summary.get('average_now'))})"
        )
        lines.append(f"Fixed: {fixed}, regressed: {regressed}, new: {_count(summary.get('new')) or 0}")
        names = summary.get("regressed_tasks")
        if regressed and isinstance(names, list):
            shown = [clean(n, 80) for n in names[:MAX_LISTED]]
            more = f" and {regressed - len(shown)} more" if regressed > len(shown) else ""
            lines.append("Regressed: " + ", ".join(shown) + more)
        head += f", {fixed} fixed, {regressed} regressed vs baseline"
        if regressed > fixed and not interrupted:
            level = WARNING
    title = f"{_run_label(target, run)} {'interrupted' if interrupted else 'finished'}: {head}"
    return Alert(f"{target}:{run}:{kind}", kind, title, "\n".join(lines), level)


def run_stalled(
    target: str, run: str, *, seconds: float, task_id: str | None, last_line: str | None, episode: str
) -> Alert:
    """The run has not moved for ``seconds``. ``episode`` tells stalls apart (e.g. the byte
    offset or step where it stopped): one alert per stall."""
    minutes = max(0.0, _number(seconds) or 0.0) / 60
    lines = [
        f"Target: {clean(target, 64)}",
        f"Run: {clean(run, 64)}",
        f"No progress for {minutes:.0f} min.",
        f"Current task: {clean(task_id) if task_id else 'none'}",
    ]
    if last_line:
        lines.append(f"Last log line: {clean(last_line)}")
    title = f"{_run_label(target, run)} stalled for {minutes:.0f} min"
    return Alert(f"{target}:{run}:stalled:{clean(episode, 64)}", "stalled", title, "\n".join(lines), WARNING)


def target_unreachable(target: str, *, seconds: float, message: str, since: str) -> Alert:
    """The target has been unreachable for ``seconds`` (``since``: when, ISO-8601)."""
    minutes = max(0.0, _number(seconds) or 0.0) / 60
    lines = [
        f"Target: {clean(target, 64)}",
        f"Unreachable since {clean(since, 40)} ({minutes:.0f} min).",
        f"Last error: {clean(message)}",
    ]
    title = f"{clean(target, 64)} unreachable for {minutes:.0f} min"
    return Alert(f"{target}:unreachable:{clean(since, 40)}", "unreachable", title, "\n".join(lines), FAILURE)


def task_regressed(target: str, run: str, payload: Mapping[str, Any]) -> Alert | None:
    """A ``task_complete`` payload decorated by ``baseline.Baseline.decorate`` → an alert
    when it regressed, else None."""
    if payload.get("change") != "regressed":
        return None
    task_id = clean(payload.get("task_id", "?"), 120)
    then = payload.get("baseline") if isinstance(payload.get("baseline"), Mapping) else {}
    lines = [
        f"Target: {clean(target, 64)}",
        f"Run: {clean(run, 64)}",
        f"Task: {task_id}" + (f" ({clean(payload['domain'], 64)})" if isinstance(payload.get("domain"), str) else ""),
        f"Score: {_score(then.get('score'))} in the baseline, {_score(payload.get('score'))} now",
    ]
    if payload.get("error"):
        lines.append(f"Error: {clean(payload['error'])}")
    if isinstance(payload.get("failure_kind"), str):
        lines.append(f"Failure kind: {clean(payload['failure_kind'], 32)}")
    title = f"{_run_label(target, run)}: {task_id} regressed"
    return Alert(f"{target}:{run}:regressed:{task_id}", "regressed", title, "\n".join(lines), WARNING)


def for_durable(target: str, run: str, event: str, payload: Mapping[str, Any]) -> Alert | None:
    """The alert a durable event calls for, if any: ``run_complete`` → finished or
    interrupted (its ``baseline`` summary included), a regressed ``task_complete`` →
    regressed."""
    if event == "run_complete":
        summary = payload.get("baseline")
        return run_finished(target, run, payload, summary if isinstance(summary, Mapping) else None)
    if event == "task_complete":
        return task_regressed(target, run, payload)
    return None
