"""A newcomer's first steps (issue 11, items 9-12): one line instead of a traceback, typos
caught, help that helps, the token page, and scripts/dev finding a Python quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from trio_sse.cli import main
from trio_sse.config import Settings, TargetSpec
from trio_sse.testing import running_server, simulated_run

ROOT = Path(__file__).resolve().parent.parent


def run_main(capsys, argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        code = main(argv, env=env or {})
    except SystemExit as e:
        code = e.code  # type: ignore[assignment]
    return code, capsys.readouterr().err


# ---------------------------------------------------------------- one line, not a traceback


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["simulate", "--log", "/nonexistent_dir/x.log", "--tasks", "1", "--step-seconds", "0"],
         "trio-sse simulate: error: cannot write /nonexistent_dir/x.log: No such file or directory"),
        (["serve", "--simulate", "--log", "/nonexistent_dir/x.log", "--port", "0"],
         "cannot write the simulated run to /nonexistent_dir/x.log"),
        (["serve", "--host", "999.1.1.1", "--port", "0"], "cannot listen on 999.1.1.1:0"),
        (["serve", "--target", "vm1=ftp://x/y"], "only ssh:// is supported"),
        (["serve", "--target", "vm1=ssh:/host/x.log"], "only ssh:// is supported"),
        (["serve", "--target", "vm1=HTTP://host/x.log"], "only ssh:// is supported"),
    ],
)
def test_one_line_and_exit_2(capsys, argv, needle):
    code, err = run_main(capsys, argv)
    assert code == 2 and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "warning" not in err  # a bad --host is reported as itself, not as "no token"


def test_a_windows_style_or_relative_path_is_still_a_local_target(capsys):
    from trio_sse.config import parse_target

    assert parse_target("a=C:/logs/waa.log").log == "C:/logs/waa.log"  # one letter: a drive, not a scheme
    assert parse_target("a=logs/normal-*.log").log == "logs/normal-*.log"


async def test_watch_into_a_closed_pipe_stops_quietly(tmp_path):
    log = tmp_path / "waa.log"
    log.write_bytes(b"")
    settings = Settings(port=0, targets=(TargetSpec(log=str(log), process_pattern=None),))
    # A run that goes on printing long after `head` has left, so the pipe is written to again.
    async with running_server(settings) as server, simulated_run(log, tasks=2000, step_seconds=0.005):
        # `trio-sse watch URL | head -3`, with a real pipe and a real `head`.
        cmd = f"{sys.executable} -m trio_sse watch {server.url} | head -3"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIO_SSE_")}
        with trio.fail_after(30):
            done = await trio.run_process(["bash", "-o", "pipefail", "-c", cmd], capture_stdout=True,
                                          capture_stderr=True, check=False, env=env)
    assert len(done.stdout.decode().splitlines()) == 3
    err = done.stderr.decode()
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception" not in err, err
    assert done.returncode == 0


# ---------------------------------------------------------------- config typos


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("prot = 8766\n", "config file {path}: unknown key 'prot' (did you mean 'port'?)"),
        ("port = 'eighty'\n", "config file {path}: port must be an integer from 0 to 65535, got 'eighty'"),
        ("port = 9100.5\n", "config file {path}: port must be an integer from 0 to 65535, got '9100.5'"),
        ("keepalive = true\n", "config file {path}: keepalive must be a string or a number, got True"),
        ("no_gzip = 'perhaps'\n", "config file {path}: no_gzip must be true or false, got 'perhaps'"),
        ("cors_origin = 5\n", "config file {path}: cors_origin must be a list of strings, got 5"),
        ("[[target]]\nname = 'x'\n", "target must be a list of strings, got [{{'name': 'x'}}] (targets are [[targets]] tables)"),
    ],
)
def test_config_file_typos_and_bad_values_name_the_file_key_and_value(tmp_path, capsys, content, needle):
    cfg = tmp_path / "c.toml"
    cfg.write_text(content)
    code, err = run_main(capsys, ["serve", "--config", str(cfg), "--port", "0"])
    assert code == 2 and needle.format(path=cfg) in err, err
    assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- help


def test_bare_command_lists_the_commands(capsys):
    code, err = run_main(capsys, [])
    assert code == 2
    for command in ("serve", "simulate", "watch"):
        assert command in err
    assert "arguments are required" not in err


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("serve", ["(default: 8765)", "(default: 127.0.0.1)", "(default: 15.0)", "example:", "--simulate"]),
        ("simulate", ["the log file to write", "how many tasks", "seconds per agent step", "example:"]),
        ("watch", ["seconds between status/progress updates", "the monitor's token", "example:"]),
    ],
)
def test_help_has_defaults_descriptions_and_an_example(capsys, command, expected):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"], env={})
    assert e.value.code == 0
    out = capsys.readouterr().out
    for text in expected:
        assert text in out, text
    # every option has a description (argparse's own objects: the printed layout wraps)
    from trio_sse.cli import build_parser

    commands = build_parser({})._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert all(action.help for action in commands[command]._actions), command


# ---------------------------------------------------------------- the token page


async def test_the_dashboard_asks_for_its_token_without_echoing_it(tmp_path):
    log = tmp_path / "waa.log"
    log.write_bytes(b"")
    settings = Settings(port=0, targets=(TargetSpec(log=str(log), process_pattern=None),), token="s3cret")
    async with running_server(settings) as server, httpx.AsyncClient(base_url=server.url) as c:
        page = await c.get("/?token=wrong-guess", headers={"Accept": "text/html,application/xhtml+xml"})
        api = await c.get("/api/benchmark", headers={"Accept": "text/html"})  # not the page: JSON
        ok = await c.get("/?token=s3cret", headers={"Accept": "text/html"})
    assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
    assert '<form method=get action="/">' in page.text and "name=token" in page.text
    assert "wrong-guess" not in page.text and "s3cret" not in page.text
    assert api.status_code == 401 and api.headers["content-type"] == "application/json"
    assert ok.status_code == 200


# ---------------------------------------------------------------- scripts/dev


def test_scripts_dev_probes_pythons_quietly(tmp_path):
    shims = tmp_path / "shims"
    shims.mkdir()
    for name in ("python3.13", "python3.12"):  # pyenv shims of versions that are not installed
        shim = shims / name
        shim.write_text(f"#!/bin/sh\necho 'pyenv: {name}: command not found' >&2\nexit 127\n")
        shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{shims}:{os.environ['PATH']}")
    done = subprocess.run(["bash", str(ROOT / "scripts" / "dev"), "python"], capture_output=True, text=True,
                          env=env, check=False, timeout=60)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.strip() in ("python3.11", "python3")
