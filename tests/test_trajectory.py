"""trajectory.py, pure: traj.jsonl bytes → records (whole, byte by byte, random chunks, with
junk), the file names a trajectory lists, where a task's folder is.

The fixtures write traj.jsonl lines the way upstream does, each builder citing its source:
WAA ``src/win-arena-container/client/`` at 6d39ed8 (kimtth/WindowsAgentArena holds the commit),
OSWorld ``lib_run_single.py`` at 1fd8b66 and ``run_multienv.py`` at 8be2a40
(karakuri-ai/OSWorld-JP). ``save_dict`` below re-implements ``trajectory_recorder.py:12-66``
for the value types an observation holds (no numpy/PIL here: ``bytes`` stands for an image).
"""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path
from typing import Any

import pytest

from trio_sse import trajectory as tj
from trio_sse.trajectory import (
    ErrorRecord,
    ResetRecord,
    StepRecord,
    Trajectory,
    iso_timestamp,
    listed_name,
    pick_newest,
    safe_component,
    screenshot_url,
    task_dir_globs,
)

# --------------------------------------------------------------------------- upstream writers


def save_dict(info: dict[str, Any], step_idx: int | str, ts: str) -> dict[str, Any]:
    """trajectory_recorder.py:12-66: what each observation key becomes in the line."""
    fmt = "{key}-step_{step_idx}_{action_timestamp}.{ext}"  # :16
    out: dict[str, Any] = {k: None for k in info}  # :17
    for key, value in info.items():
        if key in ["accessibility_tree", "user_question", "plan_result"]:  # :21-26
            out[key] = fmt.format(key=key, step_idx=step_idx, action_timestamp=ts, ext="txt")
        elif isinstance(value, bytes):  # :28-33 (screenshots)
            out[key] = fmt.format(key=key, step_idx=step_idx, action_timestamp=ts, ext="png")
        elif isinstance(value, (int, float)):  # :35-36
            out[key] = value
        elif isinstance(value, (list, tuple)) and len(value) > 0 and isinstance(value[0], (int, float)):  # :38-39
            out[key] = value
        elif isinstance(value, str):  # :41-42
            out[key] = value
        elif isinstance(value, (dict, list)):  # :56-61
            out[key] = fmt.format(key=key, step_idx=step_idx, action_timestamp=ts, ext="json")
        else:  # :63-64
            out[key] = f"key: {key}: {type(value)} not saved"
    return out


def line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj) + "\n").encode()  # json.dump(traj_data, f); f.write("\n")


def waa_reset(ts: str, obs: dict[str, Any]) -> bytes:
    """record_init, trajectory_recorder.py:101-114 (lib_run_single.py:31-32: ts at start)."""
    traj = {"step_num": 0, "action_timestamp": ts, "action": None}
    traj.update(save_dict(obs, "reset", ts))
    return line(traj)


def waa_step(step_idx: int, ts: str, action: str, reward: float, done: bool, info: dict, obs: dict, logs: dict) -> bytes:
    """record_step, trajectory_recorder.py:128-148 (called per action, lib_run_single.py:52-74)."""
    traj = {"step_num": step_idx + 1, "action_timestamp": ts, "action": action, "reward": reward, "done": done,
            "info": info}
    traj.update(save_dict(obs, step_idx, ts) if obs else {})
    traj.update(save_dict(logs, step_idx, ts) if logs else {})
    return line(traj)


def waa_error(domain: str, example_id: str, e: str, tb: str) -> bytes:
    """run.py:264-270."""
    return line({"Error": f"Exception in {domain}/{example_id}", "Exception": e, "Traceback": tb})


def osworld_step(step_idx: int, ts: str, action: Any, reward: float, done: bool, info: dict) -> bytes:
    """OSWorld lib_run_single.py:33-43 at 1fd8b66."""
    return line({"step_num": step_idx + 1, "action_timestamp": ts, "action": action, "reward": reward,
                 "done": done, "info": info, "screenshot_file": f"step_{step_idx + 1}_{ts}.png"})


def osworld_error(domain: str, example_id: str) -> bytes:
    """OSWorld run_multienv.py:186-191 at 8be2a40."""
    return line({"Error": f"Time limit exceeded in {domain}/{example_id}"})


# desktop_env.py:174-185: WAA's observation (bytes stand for the screenshot / window image).
OBS = {
    "screenshot": b"\x89PNG...",
    "accessibility_tree": "window 'Notepad'",
    "terminal": None,
    "instruction": "Open Notepad and write 'screenshot-step_0_20241120@140612.png'",
    "window_title": "screenshot-step_9_20241120@140612.png",  # a title that looks like a name: data
    "window_rect": [0, 0, 1920, 1200],
    "window_image": b"\x89PNG...",
    "window_names_str": "Notepad\nTaskbar",
    "computer_clipboard": "../../etc/passwd",
    "human_input": "",
}
LOGS = {"plan_result": "click the File menu", "foreground_window": b"\x89PNG", "parsed_content_icon": ["a", "b"]}
TB = 'Traceback (most recent call last):\n  File "/client/run.py", line 256, in test\nRuntimeError: boom\n'

WAA = (
    waa_reset("20241120@140600", OBS)
    + waa_step(0, "20241120@140612", "pyautogui.click(10, 20)", 0.0, False, {}, OBS, LOGS)
    # two actions of one agent step: the same step_num (lib_run_single.py:52-74)
    + waa_step(1, "20241120@140625", "pyautogui.hotkey('ctrl', 's')", 0.0, False, {"k": 1}, OBS, LOGS)
    + waa_step(1, "20241120@140626", "computer.keyboard.write('hi')\ncomputer.keyboard.press('enter')", 1.0, True, {},
               OBS, {})
    + waa_error("notepad", "366de66e-cbae-4d72-b042-26390db2b145-WOS", "boom", TB)
)
OSWORLD = (
    osworld_step(0, "20240101@101010", "pyautogui.click(1, 1)", 0.0, False, {})
    + osworld_step(1, "20240101@101020", {"action_type": "CLICK", "x": 3}, float("nan"), True, {"fail": False})
    + osworld_error("chrome", "bb5e4c0d-f964-439c-97b6-bdb9747de3f4")
)


def parse(chunks: list[bytes]) -> tuple[Trajectory, list[Any]]:
    t = Trajectory()
    records: list[Any] = []
    for c in chunks:
        records += t.feed(c)
    records += t.close()
    return t, records


def split_random(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 40)
        out.append(data[i : i + n])
        i += n
    return out


# --------------------------------------------------------------------------- records


def test_waa_trajectory_whole() -> None:
    t, records = parse([WAA])
    assert [type(r) for r in records] == [ResetRecord, StepRecord, StepRecord, StepRecord, ErrorRecord]
    reset = records[0]
    assert reset.at == "2024-11-20T14:06:00"
    assert reset.screenshot == "screenshot-step_reset_20241120@140600.png"
    first, second, third = records[1:4]
    assert (first.index, first.step, first.action, first.reward, first.done) == (1, 1, "pyautogui.click(10, 20)", 0.0, False)
    assert first.at == "2024-11-20T14:06:12"
    assert first.screenshot == "screenshot-step_0_20241120@140612.png"  # step_idx, 0-based
    assert (second.index, second.step, third.index, third.step) == (2, 2, 3, 2)  # one step, two actions
    assert third.action == "computer.keyboard.write('hi')\ncomputer.keyboard.press('enter')"
    assert third.done is True and third.reward == 1.0
    assert t.error == ErrorRecord("boom", TB)
    assert t.steps == [first, second, third] and t.reset == reset
    assert t.statistics == tj.TrajectoryStatistics(lines=5, junk=0, overlong=0, dropped=0)


def test_waa_files_are_the_names_save_dict_wrote_and_nothing_else() -> None:
    t, _ = parse([WAA])
    expected = set()
    for idx, ts in (("reset", "20241120@140600"), ("0", "20241120@140612"), ("1", "20241120@140625"),
                    ("1", "20241120@140626")):
        expected |= {f"screenshot-step_{idx}_{ts}.png", f"window_image-step_{idx}_{ts}.png",
                     f"accessibility_tree-step_{idx}_{ts}.txt"}
    for idx, ts in (("0", "20241120@140612"), ("1", "20241120@140625")):
        expected |= {f"plan_result-step_{idx}_{ts}.txt", f"foreground_window-step_{idx}_{ts}.png",
                     f"parsed_content_icon-step_{idx}_{ts}.json"}  # a list of strings: json (:56-61)
    assert t.files == expected
    # strings kept as data are never files: the title that looks like a name, the clipboard,
    # the instruction, the "not saved" note of a None (trajectory_recorder.py:63-64)
    assert "screenshot-step_9_20241120@140612.png" not in t.files
    assert not any(".." in name or "not saved" in name for name in t.files)


def test_osworld_trajectory() -> None:
    t, records = parse([OSWORLD])
    assert [type(r) for r in records] == [StepRecord, StepRecord, ErrorRecord]
    a, b = t.steps
    assert a.screenshot == "step_1_20240101@101010.png" and b.screenshot == "step_2_20240101@101020.png"
    assert b.action == '{"action_type":"CLICK","x":3}'  # computer_13 actions are objects
    assert b.reward is None  # NaN (json.dumps writes it; json.loads reads it back)
    assert t.files == {"step_1_20240101@101010.png", "step_2_20240101@101020.png"}
    assert t.error == ErrorRecord("Time limit exceeded in chrome/bb5e4c0d-f964-439c-97b6-bdb9747de3f4", None)
    assert t.reset is None


@pytest.mark.parametrize("data", [WAA, OSWORLD, WAA + b"junk\n" + OSWORLD], ids=["waa", "osworld", "both+junk"])
def test_any_split_gives_the_same_records(data: bytes) -> None:
    _, whole = parse([data])
    assert parse([bytes([b]) for b in data])[1] == whole
    for seed in range(20):
        assert parse(split_random(data, seed))[1] == whole
    for cut in range(0, len(data), 7):
        assert parse([data[:cut], data[cut:]])[1] == whole


def test_a_half_written_last_line_waits_for_its_newline() -> None:
    t = Trajectory()
    first = waa_step(0, "20241120@140612", "a", 0.0, False, {}, OBS, {})
    assert t.feed(first[:-1]) == []  # json.dump written, "\n" not yet
    assert t.steps == []
    (record,) = t.feed(b"\n")
    assert record.action == "a" and t.steps == [record]


def test_close_takes_a_whole_unterminated_object_and_counts_a_torn_one() -> None:
    whole = waa_step(0, "20241120@140612", "a", 0.0, False, {}, {}, {})
    assert len(parse([whole[:-1]])[0].steps) == 1
    t, records = parse([whole + whole[:30]])
    assert len(records) == 1 and t.statistics.junk == 1


JUNK = [
    b"not json at all\n",
    b"[1, 2, 3]\n",
    b'"a string"\n',
    b'{"action": "no step_num"}\n',
    b'{"step_num": true, "action": "a bool is not a step"}\n',
    b'{"step_num": -1}\n',
    b'{"step_num": "3"}\n',
    b'{"step_num": 2.5}\n',
    b"\xff\xfe invalid utf-8 \x80\n",
    b"{" * 100_000 + b"\n",  # deeply nested: RecursionError in json
    b"\x00\x00\n",
]


def test_junk_lines_are_counted_not_fatal() -> None:
    good = waa_step(0, "20241120@140612", "a", 0.0, False, {}, {}, {})
    data = b"".join(JUNK) + b"\n   \n" + good  # blank lines are nothing, not junk
    t, records = parse([data])
    assert [r.action for r in records] == ["a"]
    assert t.statistics.junk == len(JUNK) and t.statistics.lines == len(JUNK) + 1
    for seed in range(5):
        assert parse(split_random(data, seed))[1] == records


def test_an_overlong_line_is_dropped_as_it_arrives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tj, "MAX_LINE_BYTES", 1000)
    good = waa_step(0, "20241120@140612", "a", 0.0, False, {}, {}, {})
    huge = b'{"step_num": 1, "action": "' + b"x" * 5000 + b'"}\n'
    t = Trajectory()
    records = []
    for chunk in [huge[i : i + 300] for i in range(0, len(huge), 300)] + [good]:
        records += t.feed(chunk)
        assert len(t._buf) <= 1000  # never more than the bound held
    assert [r.action for r in records] == ["a"]
    assert t.statistics.overlong == 1 and t.statistics.junk == 0
    # the same when the overlong line and the next come in one chunk
    t2, r2 = parse([huge + good])
    assert [r.action for r in r2] == ["a"] and t2.statistics.overlong == 1


def test_records_past_the_cap_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tj, "MAX_RECORDS", 3)
    data = b"".join(waa_step(i, "20241120@140612", f"a{i}", 0.0, False, {}, {}, {}) for i in range(5))
    t, records = parse([data])
    assert [r.index for r in records] == [1, 2, 3]
    assert t.statistics.dropped == 2 and t.indexed == 5


def test_an_action_is_kept_up_to_its_bound() -> None:
    t, _ = parse([waa_step(0, "20241120@140612", "y" * 100_000, 0.0, False, {}, {}, {})])
    assert t.steps[0].action == "y" * tj.ACTION_KEEP


def test_error_lines_of_any_shape() -> None:
    assert parse([line({"Error": "x", "Exception": "", "Traceback": 5})])[0].error == ErrorRecord("x", None)
    assert parse([line({"Error": {"nested": 1}})])[0].error == ErrorRecord('{"nested": 1}', None)


# --------------------------------------------------------------------------- names, paths


@pytest.mark.parametrize(
    ("key", "value", "listed"),
    [
        ("screenshot", "screenshot-step_3_20241120@140612.png", True),
        ("screenshot", "screenshot-step_reset_20241120@140612.png", True),
        ("plan_result", "plan_result-step_3_20241120@140612.txt", True),
        ("som", "som-step_3_20241120@140612.npy", True),
        ("regions", "regions-step_3_20241120@140612.json", True),
        ("screenshot_file", "step_3_20240101@101010.png", True),
        ("screenshot", "window_image-step_3_20241120@140612.png", False),  # another key's name
        ("screenshot", "screenshot-step_3_20241120@140612.exe", False),
        ("screenshot", "screenshot-step_x_20241120@140612.png", False),
        ("screenshot", "screenshot-step_3_2024112@140612.png", False),
        ("screenshot", "../screenshot-step_3_20241120@140612.png", False),
        ("a/b", "a/b-step_3_20241120@140612.png", False),
        ("..", "..-step_3_20241120@140612.png", False),
        ("screenshot_file", "step_3_20240101@101010.txt", False),
        ("screenshot_file", "/etc/step_3_20240101@101010.png", False),
        ("x" * 300, "x" * 300 + "-step_3_20241120@140612.png", False),  # over 255 bytes
        ("screenshot", 5, False),
        ("screenshot", None, False),
    ],
)
def test_listed_name(key: str, value: object, listed: bool) -> None:
    assert listed_name(key, value) is listed


@pytest.mark.parametrize(
    ("text", "ok"),
    [("notepad", True), ("366de66e-cbae-4d72-b042-26390db2b145-WOS", True), ("", False), (".", False),
     ("..", False), (".hidden", False), ("-rf", False), ("a/b", False), ("a\\b", False), ("a\x00b", False),
     ("a\nb", False), ("é" * 127, True), ("é" * 128, False), ("\udc80", False), (None, False)],
)
def test_safe_component(text: object, ok: bool) -> None:
    assert safe_component(text) is ok


@pytest.mark.parametrize(
    ("raw", "iso"),
    [("20241120@140612", "2024-11-20T14:06:12"), ("20241320@140612", None), ("20241120@250612", None),
     ("2024112@140612", None), ("20241120 140612", None), (20241120, None), (None, None)],
)
def test_iso_timestamp(raw: object, iso: str | None) -> None:
    assert iso_timestamp(raw) == iso


def test_task_dir_globs_cover_waa_and_osworld_depths_and_escape_everything() -> None:
    pats = task_dir_globs("/client/results/", "notepad", "abc-WOS")
    assert pats == [
        "/client/results/*/*/*/*/notepad/abc-WOS",
        "/client/results/*/*/*/notepad/abc-WOS",
        "/client/results/*/*/*/*/*/notepad/abc-WOS",
    ]
    (first, *_) = task_dir_globs("/r[1]*", "d?", "i[x]")
    assert first == "/r[[]1][*]/*/*/*/*/d[?]/i[[]x]"
    for domain, task in (("..", "x"), ("d", "../x"), ("d", "a/b"), ("", "x"), ("d", "\x00")):
        assert task_dir_globs("/r", domain, task) is None
    assert task_dir_globs("", "d", "x") is None


def test_pick_newest_prefers_the_newest_then_the_first() -> None:
    assert pick_newest([]) is None
    assert pick_newest([("/a", 5), ("/b", 7), ("/c", 7)]) == "/b"
    assert pick_newest([("/a", 9), ("/b", 7)]) == "/a"


def test_screenshot_url_quotes_every_part() -> None:
    url = screenshot_url("vm-1", "a b/c?", "screenshot-step_0_20241120@140612.png")
    assert url == "/api/tasks/a%20b%2Fc%3F/files/screenshot-step_0_20241120%40140612.png?target=vm-1"
    assert screenshot_url("x&y=1", "t", "n") == "/api/tasks/t/files/n?target=x%26y%3D1"


def test_the_module_is_pure() -> None:
    tree = ast.parse(Path(tj.__file__).read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "json", "math", "re", "collections", "dataclasses", "typing", "urllib"}
