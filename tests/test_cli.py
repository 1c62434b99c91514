"""The command line: options, TRIO_SSE_* variables, config files, junk in each; and the real
processes (`python -m trio_sse serve` with SIGINT, `hypercorn -k trio trio_sse.asgi:app` and the older
`'trio_sse.app:create_app()'`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest
import trio
from httpx_sse import aconnect_sse

from support import child_env as _env, wait_healthy as _wait_healthy
from trio_sse.cli import _warnings, build_parser, main, settings_from_args
from trio_sse.config import DEFAULT_LOG, WAA_CONTAINER_LOG, settings_from_env
from trio_sse.errors import ConfigError
from trio_sse.testing import free_port, simulated_run


def settings(argv: list[str], env: dict[str, str] | None = None):
    env = env or {}
    return settings_from_args(build_parser(env).parse_args(["serve", *argv]), env)


def test_defaults():
    s = settings([])
    assert (s.host, s.port, s.keepalive, s.gzip, s.token) == ("127.0.0.1", 8765, 15.0, True, None)
    assert [(t.name, t.log, t.ssh) for t in s.targets] == [("local", DEFAULT_LOG, None)]


def test_env_then_cli_precedence():
    env = {"TRIO_SSE_PORT": "9000", "TRIO_SSE_KEEPALIVE": "3", "TRIO_SSE_LOG": "/x/*.log", "TRIO_SSE_NO_GZIP": "true"}
    s = settings([], env)
    assert (s.port, s.keepalive, s.targets[0].log, s.gzip) == (9000, 3.0, "/x/*.log", False)
    assert settings(["--port", "9001"], env).port == 9001
    assert settings_from_env(env).port == 9000


def test_simulate_gets_its_own_log_not_the_real_default():
    s = settings(["--simulate", "--tasks", "3", "--step-seconds", "0.5"])
    assert s.simulate and s.sim_tasks == 3 and s.sim_step_seconds == 0.5
    assert s.targets[0].log != DEFAULT_LOG and s.targets[0].log.endswith("trio-sse-simulated.log")


SIMULATED = "<the simulator's own log>"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # Issue 10 item 10: WAA writes its logs inside the winarena container, not /tmp.
        (["--container", "winarena"], ("local", WAA_CONTAINER_LOG, "container")),
        (["--ssh", "azureuser@20.1.2.3", "--container", "winarena"], ("remote", WAA_CONTAINER_LOG, "container")),
        (["--container", "winarena", "--log-location", "stdout"], ("local", WAA_CONTAINER_LOG, "stdout")),
        # the plain local target keeps the original endpoint's path; a given --log is kept
        ([], ("local", DEFAULT_LOG, "host")),
        (["--ssh", "azureuser@20.1.2.3"], ("remote", DEFAULT_LOG, "host")),
        (["--container", "winarena", "--log", "/tmp/waa_benchmark.log"], ("local", "/tmp/waa_benchmark.log", "host")),
        (["--ssh", "h", "--container", "winarena", "--log", "/x/*.log"], ("remote", "/x/*.log", "container")),
        (["--container", "winarena", "--log-location", "host"], ("local", DEFAULT_LOG, "host")),
        (["--simulate", "--container", "winarena"], ("local", SIMULATED, "host")),
    ],
)
def test_a_container_target_defaults_to_waas_own_log_files(argv: list[str], expected: tuple[str, str, str]) -> None:
    [t] = settings(argv).targets
    log = SIMULATED if t.log.endswith("trio-sse-simulated.log") else t.log
    assert (t.name, log, t.log_location) == expected


def test_a_container_target_from_the_environment_defaults_to_waas_own_log_files() -> None:
    [t] = settings([], {"TRIO_SSE_SSH": "azureuser@20.1.2.3", "TRIO_SSE_CONTAINER": "winarena"}).targets
    assert (t.log, t.log_location) == (WAA_CONTAINER_LOG, "container")
    [t] = settings(["--log", "/tmp/waa.log"], {"TRIO_SSE_CONTAINER": "winarena"}).targets
    assert (t.log, t.log_location) == ("/tmp/waa.log", "host")


def test_a_container_target_in_a_config_file_defaults_to_waas_own_log_files(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[[targets]]\nname = "vm1"\nssh = "azureuser@host1"\ncontainer = "winarena"\n'
        '[[targets]]\nname = "here"\ncontainer = "winarena"\n'
        '[[targets]]\nname = "plain"\n'
        '[[targets]]\nname = "given"\ncontainer = "winarena"\nlog = "/tmp/x.log"\n'
        '[[targets]]\nname = "hostlog"\ncontainer = "winarena"\nlog_location = "host"\n'
    )
    s = settings(["--config", str(cfg)])
    assert [(t.name, t.log, t.log_location) for t in s.targets] == [
        ("vm1", WAA_CONTAINER_LOG, "container"),
        ("here", WAA_CONTAINER_LOG, "container"),
        ("plain", DEFAULT_LOG, "host"),
        ("given", "/tmp/x.log", "host"),
        ("hostlog", DEFAULT_LOG, "host"),
    ]
    cfg.write_text('[[targets]]\nname = "bad"\ncontainer = "winarena"\nlog = ""\n')
    with pytest.raises(ConfigError, match="log path must be a non-empty string"):
        settings(["--config", str(cfg)])


def test_targets_local_ssh_and_env():
    s = settings(
        ["--target", "a=/logs/a.log", "--target", "vm1=ssh://azureuser@10.9.8.7:2222/tmp/waa.log?container=winarena"]
    )
    a, vm1 = s.targets
    assert (a.name, a.log, a.ssh) == ("a", "/logs/a.log", None)
    assert (vm1.ssh.user, vm1.ssh.host, vm1.ssh.port, vm1.log) == ("azureuser", "10.9.8.7", 2222, "/tmp/waa.log")
    assert (vm1.container, vm1.log_location, vm1.vnc_url) == ("winarena", "container", "http://10.9.8.7:8006")
    s = settings([], {"TRIO_SSE_TARGET": "x=/a.log y=/b.log"})
    assert [t.name for t in s.targets] == ["x", "y"]


def test_cluster_options():
    s = settings([])
    assert (s.redis, s.redis_prefix, s.lease_seconds) == (None, "trio-sse", 10.0)  # the embedded default
    s = settings(["--redis", "redis://:pw@10.0.0.5:6380/2", "--redis-prefix", "lab:a", "--lease", "4.5"])
    assert (s.redis, s.redis_prefix, s.lease_seconds) == ("redis://:pw@10.0.0.5:6380/2", "lab:a", 4.5)
    s = settings([], {"TRIO_SSE_REDIS": "unix:///run/redis.sock?db=1", "TRIO_SSE_LEASE": "3"})
    assert (s.redis, s.lease_seconds) == ("unix:///run/redis.sock?db=1", 3.0)


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--redis", "redis://:s3cr3t-pw@h:99999"], {}),
        (["--redis", "redis://user:s3cr3t-pw@/9"], {}),
        ([], {"TRIO_SSE_REDIS": "redis://:s3cr3t-pw@h x"}),
        ([], {"TRIO_SSE_REDIS": "ftp://:s3cr3t-pw@h"}),
    ],
)
def test_a_bad_redis_url_never_shows_its_password(capsys, argv, env):
    assert _exit_code(argv, env) == 2
    err = capsys.readouterr().err
    assert "redis" in err and "s3cr3t-pw" not in err and "***" in err
    assert len(err.strip().splitlines()) == 1


def _exit_code(argv: list[str], env: dict[str, str]) -> int:
    try:
        return main(["serve", *argv], env=env)
    except SystemExit as e:
        return int(e.code or 0)


def test_config_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'port = 9100\nkeepalive = 5.0\n[[targets]]\nname = "vm1"\nssh = "azureuser@host1"\ncontainer = "winarena"\n'
        'log = "/tmp/waa_benchmark.log"\n[[targets]]\nname = "vm2"\nhost = "host2"\nport = 2200\nuser = "bob"\n'
    )
    s = settings(["--config", str(cfg)])
    assert s.port == 9100 and s.keepalive == 5.0
    assert [(t.name, t.ssh.display, t.container) for t in s.targets] == [
        ("vm1", "azureuser@host1", "winarena"),
        ("vm2", "bob@host2:2200", None),
    ]
    assert settings(["--config", str(cfg), "--port", "1"]).port == 1  # the command line wins


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["--port", "abc"], {}, "argument --port: must be an integer from 0 to 65535, got 'abc'"),
        (["--port", "70000"], {}, "--port"),
        (["--keepalive", "0"], {}, "--keepalive"),
        (["--keepalive", "nan"], {}, "--keepalive"),
        (["--stall-after", "-1"], {}, "--stall-after"),
        (["--stall-after", "soon"], {}, "--stall-after"),
        (["--queue-bytes", "12"], {}, "--queue-bytes"),
        (["--forwarded-allow-ips", "10.0.0.0/99"], {}, "--forwarded-allow-ips"),
        (["--tasks", "0"], {}, "--tasks"),
        (["--step-seconds", "-1"], {}, "--step-seconds"),
        (["--cors-origin", "not a url"], {}, "--cors-origin"),
        (["--log", ""], {}, "--log"),
        (["--target", "nonsense"], {}, "--target must be NAME=PATH"),
        (["--target", "bad name!=/x.log"], {}, "target name"),
        (["--target", "a=ssh://host"], {}, "needs a host and a log path"),
        (["--target", "a=ssh://h/x?evil=1"], {}, "unknown parameter"),
        (["--target", "a=/x", "--target", "a=/y"], {}, "unique"),
        (["--ssh", "a b"], {}, "[user@]host[:port]"),
        (["--ssh", "host:99999"], {}, "65535"),
        (["--token", "x", "--cors-origin", "*"], {}, "not allowed together with a token"),
        (["--simulate", "--ssh", "h"], {}, "cannot be combined"),
        (["--log-location", "moon", "--container", "c"], {}, "log location"),
        ([], {"TRIO_SSE_PORT": "eighty"}, "TRIO_SSE_PORT must be an integer"),
        ([], {"TRIO_SSE_NO_GZIP": "maybe"}, "TRIO_SSE_NO_GZIP must be true or false"),
        ([], {"TRIO_SSE_TARGET": "junk"}, "--target must be NAME=PATH"),
        (["--config", "/nonexistent/c.toml"], {}, "cannot read config file"),
        (["--redis", "http://h:6379"], {}, "argument --redis: is not valid: redis URL must start with redis://"),
        (["--redis", "redis://"], {}, "redis URL needs a host"),
        (["--redis", "redis://h:0"], {}, "port must be from 1 to 65535"),
        (["--redis", "redis://h/db9"], {}, "must be a database number"),
        (["--redis", "redis://h x"], {}, "must not be empty or contain spaces"),
        ([], {"TRIO_SSE_REDIS": "mysql://h"}, "environment variable TRIO_SSE_REDIS is not valid"),
        (["--redis-prefix", "a b"], {}, "redis key prefix must be"),
        (["--redis-prefix", "{x}"], {}, "redis key prefix must be"),
        (["--lease", "0.1"], {}, "argument --lease: must be a number from 0.5 to 3600"),
        (["--lease", "soon"], {}, "--lease"),
        ([], {"TRIO_SSE_LEASE": "inf"}, "TRIO_SSE_LEASE must be a number"),
        (["--redis", "redis://h", "--simulate"], {}, "--simulate cannot be combined with --redis"),
    ],
)
def test_junk_stops_start_up_with_one_line(capsys, argv, env, needle):
    code = None
    try:
        code = main(["serve", *argv], env=env)
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "content",
    ["port = ", "[[targets]]\nname = 3\n", "targets = 5\n", "[[targets]]\nname = 'a'\nport = 'x'\n",
     "[[targets]]\nname = 'a'\ncolour = 'red'\n", "\x00\x01binary"],
)
def test_junk_config_files(tmp_path, capsys, content):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    assert main(["serve", "--config", str(cfg)], env={}) == 2
    err = capsys.readouterr().err
    assert "config file" in err and len(err.strip().splitlines()) == 1


def test_warnings():
    assert _warnings(settings(["--host", "0.0.0.0"]))[0].startswith("warning: listening on 0.0.0.0 without --token")
    assert _warnings(settings(["--host", "0.0.0.0", "--token", "s3cret"])) == []
    assert _warnings(settings([])) == []
    w = _warnings(settings(["--ssh", "h", "--insecure-no-host-key-check"]))
    assert "NOT verified" in w[0]


def test_simulate_command_writes_a_run(tmp_path):
    log = tmp_path / "sim.log"
    assert main(["simulate", "--log", str(log), "--tasks", "2", "--step-seconds", "0"], env={}) == 0
    text = log.read_text()
    assert "Average score" in text and text.count("Finished ") + text.count("Exception in ") >= 2


def test_simulate_junk(capsys):
    with pytest.raises(SystemExit) as e:
        main(["simulate", "--log", "/tmp/x.log", "--tasks", "many"], env={})
    assert e.value.code == 2 and "--tasks" in capsys.readouterr().err


@pytest.mark.slow
async def test_serve_process_streams_and_exits_cleanly_on_sigint(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "trio_sse", "serve", "--simulate", "--tasks", "2", "--step-seconds", "0.01",
            "--port", str(port), "--log", str(tmp_path / "sim.log")]
    async with trio.open_nursery() as n:
        stderr = open(tmp_path / "stderr.txt", "wb")  # noqa: SIM115 (closed below)
        proc = await n.start(lambda task_status: trio.run_process(
            argv, stdout=subprocess.DEVNULL, stderr=stderr, check=False, env=_env(), task_status=task_status))
        await _wait_healthy(url, proc)
        got = []
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as c:
            async with aconnect_sse(c, "GET", url + "/api/benchmark-sse") as es:
                async for sse in es.aiter_sse():
                    got.append(sse.event)
                    if sse.event == "run_complete":
                        break
                proc.send_signal(signal.SIGINT)
                start = trio.current_time()
                with trio.fail_after(5):
                    await proc.wait()
    assert trio.current_time() - start < 3
    assert got.count("task_complete") == 2
    stderr.close()
    err = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "dashboard http://127.0.0.1:" in err


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["trio_sse.asgi:app", "trio_sse.app:create_app()"])
async def test_hypercorn_cli_with_env_settings(tmp_path, entry):
    log = tmp_path / "w.log"
    async with simulated_run(log, tasks=2, step_seconds=0) as run:
        await run.done.wait()
    port = free_port()
    env = _env() | {"TRIO_SSE_LOG": str(log)}
    hypercorn = os.path.join(os.path.dirname(sys.executable), "hypercorn")
    argv = [hypercorn, "-k", "trio", "--bind", f"127.0.0.1:{port}", entry]
    async with trio.open_nursery() as n:
        proc = await n.start(lambda task_status: trio.run_process(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False, env=env, task_status=task_status))
        url = f"http://127.0.0.1:{port}"
        await _wait_healthy(url, proc)
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as c:
            tasks = []
            async with aconnect_sse(c, "GET", url + "/api/benchmark-sse") as es:
                async for sse in es.aiter_sse():
                    if sse.event == "task_complete":
                        tasks.append(sse.json()["task_id"])
                    if sse.event == "run_complete":
                        break
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            await proc.wait()
    assert tasks == [t.task_id for t in run.expected]


def test_process_tuning_is_on_unless_turned_off():
    assert settings([]).process_tuning is True
    assert settings(["--no-process-tuning"]).process_tuning is False
    assert settings([], {"TRIO_SSE_NO_PROCESS_TUNING": "1"}).process_tuning is False


async def test_hypercorn_cli_with_a_bad_setting_says_so_in_one_line(tmp_path):
    hypercorn = os.path.join(os.path.dirname(sys.executable), "hypercorn")
    env = _env() | {"TRIO_SSE_KEEPALIVE": "soon"}
    argv = [hypercorn, "-k", "trio", "--bind", f"127.0.0.1:{free_port()}", "trio_sse.asgi:app"]
    with trio.fail_after(20):
        done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False, env=env)
    err = done.stderr.decode()  # (Hypercorn's own exit status does not pass its worker's on)
    assert "trio_sse.asgi: error: environment variable TRIO_SSE_KEEPALIVE must be a number" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------- run history and alerts (SPEC §9)

SECRET_URL = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#ops"


def test_history_and_alert_defaults(tmp_path):
    s = settings([], {"XDG_DATA_HOME": str(tmp_path)})
    assert s.db == str(tmp_path / "trio-sse" / "history.sqlite3")
    assert (s.baseline, s.notify, s.alert_after, s.sim_runs) == (None, (), 300.0, 1)
    assert not (tmp_path / "trio-sse").exists()  # resolving settings creates nothing


@pytest.mark.parametrize("spelling", ["none", "None", " NONE "])
def test_db_none_turns_the_history_off(spelling):
    assert settings(["--db", spelling]).db is None
    assert settings([], {"TRIO_SSE_DB": spelling}).db is None


def test_history_options_on_the_command_line_in_the_environment_and_in_a_file(tmp_path):
    s = settings(["--db", "~/runs.sqlite3", "--baseline", "previous", "--notify", "json://127.0.0.1:9/hook",
                  "--notify", SECRET_URL, "--alert-after", "60", "--simulate", "--sim-runs", "2"])
    assert s.db == os.path.expanduser("~/runs.sqlite3") and s.baseline == "previous"
    assert s.notify == ("json://127.0.0.1:9/hook", SECRET_URL) and s.alert_after == 60.0 and s.sim_runs == 2
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in repr(s)  # notify URLs carry tokens
    env = {"TRIO_SSE_DB": str(tmp_path / "h.db"), "TRIO_SSE_BASELINE": "vm1:4f1c2a9b3e",
           "TRIO_SSE_NOTIFY": "json://a/x ntfy://ntfy.sh/topic", "TRIO_SSE_ALERT_AFTER": "0"}
    s = settings([], env)
    assert (s.db, s.baseline, s.notify, s.alert_after) == (
        str(tmp_path / "h.db"), "vm1:4f1c2a9b3e", ("json://a/x", "ntfy://ntfy.sh/topic"), 0.0)
    cfg = tmp_path / "c.toml"
    cfg.write_text('db = "none"\nnotify = ["json://a/x"]\nalert_after = 30\n')
    s = settings(["--config", str(cfg)])
    assert (s.db, s.notify, s.alert_after) == (None, ("json://a/x",), 30.0)


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["--db", ""], {}, "argument --db: must be a file path or 'none', got ''"),
        (["--db", "  "], {}, "--db"),
        ([], {"TRIO_SSE_DB": "a\x00b"}, "TRIO_SSE_DB must be a file path or 'none'"),
        (["--baseline", "yesterday"], {}, "argument --baseline: must be 'previous' or a stored run"),
        (["--baseline", "vm1:"], {}, "--baseline"),
        (["--baseline", "bad name:abc1"], {}, "--baseline"),
        (["--baseline", "0123456789abcdef0"], {}, "--baseline"),  # 17 hex digits: not a run id
        (["--baseline", "previous", "--db", "none"], {}, "--baseline compares with the run history: it needs a database"),
        (["--notify", "not a url"], {}, "argument --notify: must be an Apprise URL such as json://host/path"),
        (["--notify", ""], {}, "--notify"),
        (["--notify", "json://"], {}, "--notify"),
        (["--alert-after", "-1"], {}, "argument --alert-after: must be a number from 0 to 604800, got '-1'"),
        (["--alert-after", "soon"], {}, "--alert-after"),
        (["--alert-after", "inf"], {}, "--alert-after"),
        (["--sim-runs", "0"], {}, "argument --sim-runs: must be an integer from 1 to 20, got '0'"),
        (["--sim-runs", "21"], {}, "--sim-runs"),
        (["--sim-runs", "two"], {}, "--sim-runs"),
        ([], {"TRIO_SSE_ALERT_AFTER": "x"}, "TRIO_SSE_ALERT_AFTER must be a number"),
        ([], {"TRIO_SSE_NOTIFY": "json://ok/x garbage"}, "TRIO_SSE_NOTIFY must be an Apprise URL"),
    ],
)
def test_junk_history_options_stop_start_up_with_one_line(capsys, argv, env, needle):
    code = None
    try:
        code = main(["serve", *argv], env=env)
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "url",
    [
        "nosuchscheme://T0KEN-S3CRET@host/path",  # Apprise knows no such service
        "slack://T0KEN-S3CRET",  # a known service, but not a whole Slack URL
        "mailto://",
        "hooks.slack.com/services/T0KEN-S3CRET",  # no scheme at all
        "json://T0KEN-S3CRET@host/a b",  # a space
    ],
)
def test_a_notify_url_apprise_does_not_know_is_refused_without_echoing_its_secrets(capsys, tmp_path, url):
    code = None
    try:
        code = main(["serve", "--notify", url, "--db", "none", "--log", str(tmp_path / "w.log")], env={})
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert "notify" in err.lower() and "T0KEN-S3CRET" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_notify_junk_in_a_config_file_names_the_file_not_the_url(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('notify = "json://T0KEN-S3CRET@host/x y"\n')
    assert main(["serve", "--config", str(cfg)], env={}) == 2
    err = capsys.readouterr().err
    assert f"config file {cfg}: notify must be an Apprise URL" in err and "T0KEN-S3CRET" not in err


def test_serve_help_shows_the_history_options_and_their_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"], env={})
    out = "".join(capsys.readouterr().out.split())  # (argparse wraps lines, also after a '-')
    for needle in ("--db DB", "--baseline BASELINE", "--notify NOTIFY", "--alert-after ALERT_AFTER", "--sim-runs SIM_RUNS",
                   "(default: 300.0)", "~/.local/share/trio-sse/history.sqlite3", "[env TRIO_SSE_NOTIFY, space-separated]"):
        assert "".join(needle.split()) in out


def test_runs_command_lists_and_compares_a_real_database(tmp_path, capsys):
    from trio_sse import storedb
    from trio_sse.history import History
    from trio_sse.model import RunComplete, TaskComplete

    db = tmp_path / "h.sqlite3"
    conn = storedb.open_for_writing(db)
    for run, outcome in (("aaaa111111", True), ("bbbb222222", False)):
        h = History("vm1", run)
        h.append(TaskComplete("vm1", "t1-WOS", outcome, 1.0 if outcome else 0.0, domain="notepad"))
        h.append(RunComplete("vm1", 1, 1, int(outcome), None))
        storedb.apply(conn, [storedb.EventOp("vm1", run, e.id, e.event.EVENT, e.data, "2024-09-16T09:30:00+00:00")
                             for e in h.entries])
    conn.close()
    assert main(["runs", "--db", str(db)], env={}) == 0
    out = capsys.readouterr().out
    assert [line.split()[:2] for line in out.splitlines()[2:]] == [["vm1", "bbbb222222"], ["vm1", "aaaa111111"]]
    assert main(["runs", "compare", "aaaa", "bbbb"], env={"TRIO_SSE_DB": str(db)}) == 0
    out = capsys.readouterr().out
    assert "fixed 0, regressed 1" in out and "t1-WOS" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["runs", "--db", "none"], "the history is off"),
        (["runs", "--limit", "many"], "--limit must be an integer"),
        (["runs", "compare", "a"], "compare needs two runs"),
        (["runs", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_runs_command_junk(tmp_path, capsys, argv, needle):
    code = None
    try:
        code = main(argv, env={"XDG_DATA_HOME": str(tmp_path)})
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_runs_command_without_a_database_says_where_it_looked(tmp_path, capsys):
    assert main(["runs"], env={"XDG_DATA_HOME": str(tmp_path)}) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "trio-sse" / "history.sqlite3") in err and "Traceback" not in err


def test_runs_help_has_an_example_and_the_default_path(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["runs", "--help"], env={"XDG_DATA_HOME": str(tmp_path)})
    out = "".join(capsys.readouterr().out.split())  # (argparse wraps lines, also after a '-')
    assert "trio-sserunscompare" in out and f"(default:{tmp_path}/trio-sse/history.sqlite3)" in out


def test_simulate_command_writes_several_runs(tmp_path, capsys):
    log = tmp_path / "sim.log"
    assert main(["simulate", "--log", str(log), "--tasks", "3", "--step-seconds", "0", "--runs", "2"], env={}) == 0
    assert "(2 runs, the last one left in the file)" in capsys.readouterr().err
    assert log.read_text().count("Worker 0 is doing tasks") == 1  # the second run replaced the first


def test_the_demo_shows_a_stall_unless_told_otherwise():
    assert settings([]).stall_after == 600.0
    assert settings(["--simulate"]).stall_after == 30.0  # its stalling task pauses ~60 s
    assert settings(["--simulate", "--stall-after", "900"]).stall_after == 900.0
    assert settings(["--simulate"], {"TRIO_SSE_STALL_AFTER": "0"}).stall_after == 0.0
