"""``--results``, ``--cache-mb``, ``--cache-dir`` (SPEC §8): every spelling (command line,
TRIO_SSE_*, config file, target URL), the default derived from the log path, and junk."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_sse.cli import build_parser, main, settings_from_args
from trio_sse.config import (
    DEFAULT_CACHE_MB,
    Settings,
    TargetSpec,
    default_cache_dir,
    default_results,
    parse_target,
    resolve,
    simulated_results,
)
from trio_sse.errors import ConfigError


def settings(argv: list[str], env: dict[str, str] | None = None) -> Settings:
    env = env or {}
    return settings_from_args(build_parser(env).parse_args(["serve", *argv]), env)


@pytest.mark.parametrize(
    ("log", "results"),
    [
        ("/client/results/logs/normal-*.log", "/client/results"),  # WAA in its container
        ("/client/results/logs/normal-0-2024.log", "/client/results"),
        ("results/logs/x.log", "results"),
        ("logs/x.log", "."),
        ("/logs/x.log", "/"),
        ("/tmp/waa_benchmark.log", None),  # the original endpoint's default: no results folder
        ("/a/log/x.log", None),
        ("/a/*/logs/x.log", None),  # a glob above logs/: not a folder
        ("x.log", None),
    ],
)
def test_the_default_is_the_folder_above_logs(log: str, results: str | None) -> None:
    assert default_results(log) == results
    assert TargetSpec(log=log).results_dir == results


def test_explicit_none_and_docker_logs() -> None:
    assert TargetSpec(log="/tmp/x.log", results="/data/results").results_dir == "/data/results"
    assert TargetSpec(log="/r/logs/x.log", results="none").results_dir is None
    assert TargetSpec(log="/r/logs/x.log", container="c", log_location="stdout").results_dir is None
    assert TargetSpec(log="/r/logs/x.log", container="c", log_location="stdout", results="/r").results_dir == "/r"


def test_every_spelling(tmp_path: Path) -> None:
    assert settings(["--results", "/data/r"]).targets[0].results == "/data/r"
    assert settings([], {"TRIO_SSE_RESULTS": "/env/r"}).targets[0].results == "/env/r"
    assert settings(["--results", "NONE"]).targets[0].results_dir is None
    remote = settings(["--ssh", "u@h", "--container", "winarena", "--log", "/client/results/logs/normal-*.log"])
    assert remote.targets[0].results_dir == "/client/results"  # read in the container, like the log
    t = parse_target("vm=ssh://u@h/client/results/logs/n.log?container=w&results=/elsewhere")
    assert t.results_dir == "/elsewhere"
    toml = tmp_path / "c.toml"
    toml.write_text('cache_mb = 64\n[[targets]]\nname = "a"\nlog = "/x.log"\nresults = "/res"\n')
    s = settings(["--config", str(toml)])
    assert s.targets[0].results_dir == "/res" and s.cache_mb == 64
    s = settings(["--cache-mb", "100", "--cache-dir", str(tmp_path / "cache")])
    assert (s.cache_mb, s.cache_dir) == (100, str(tmp_path / "cache"))
    assert settings([], {"TRIO_SSE_CACHE_MB": "7"}).cache_mb == 7


def test_defaults_cache_and_simulate() -> None:
    s = settings([], {"XDG_CACHE_HOME": "/xdg"})
    assert (s.cache_mb, s.cache_dir) == (DEFAULT_CACHE_MB, "/xdg/trio-sse/files")
    assert default_cache_dir({"HOME": "/h"}).endswith("/.cache/trio-sse/files")
    assert Settings().cache_dir is None  # built by code (tests, trio_sse.testing): a private temp dir
    sim = settings(["--simulate", "--log", "/tmp/demo/sim.log"])
    assert sim.targets[0].results_dir == "/tmp/demo/results" == simulated_results("/tmp/demo/sim.log")
    assert settings(["--simulate", "--log", "/tmp/demo/sim.log", "--results", "none"]).targets[0].results_dir is None


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["--results", ""], {}, "--results"),
        ([], {"TRIO_SSE_RESULTS": "a\nb"}, "TRIO_SSE_RESULTS"),
        (["--cache-mb", "0"], {}, "--cache-mb"),
        (["--cache-mb", "lots"], {}, "--cache-mb"),
        (["--cache-mb", "2097152"], {}, "--cache-mb"),
        ([], {"TRIO_SSE_CACHE_MB": "-5"}, "TRIO_SSE_CACHE_MB"),
        (["--cache-dir", ""], {}, "--cache-dir"),
        (["--target", "a=ssh://h/x.log?results="], {}, "results must not be empty"),
    ],
)
def test_junk_stops_start_up_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], env: dict, needle: str) -> None:
    argv = [*argv, "--port", "0"]  # (a case that slipped through must not hold a real port)
    try:
        code = main(["serve", *argv], env=env)
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) <= 3


@pytest.mark.parametrize("results", ["", "a\x00b", "a\nb", "x\r"])
def test_junk_results_in_a_spec_are_refused(results: str) -> None:
    with pytest.raises(ConfigError, match="results folder must be a path"):
        TargetSpec(results=results)


def test_junk_cache_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="cache size"):
        Settings(cache_mb=0)
    with pytest.raises(ConfigError, match="cache dir"):
        Settings(cache_dir="a\x00b")
    with pytest.raises(ConfigError, match="results"):
        resolve({}, {}, {"targets": [{"name": "a", "results": 5}]}, file_path="c.toml")
