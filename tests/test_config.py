"""Target specs validate their own fields, once (config.py), whatever source is built from them.

Before, a junk container name or probe URL of a *local* target was only refused when the
source was built, and the checks were repeated in each source; now building the spec refuses
it, in the same sentence for every target kind.
"""

from __future__ import annotations

import pytest

from trio_sse.config import SSHSpec, TargetSpec, check_target_fields
from trio_sse.errors import ConfigError


@pytest.mark.parametrize("ssh", [None, SSHSpec(host="h")], ids=["local", "ssh"])
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"log": ""}, "log path must be a non-empty string"),
        ({"log": "/tmp/a\x00b.log"}, "log path must not contain NUL or newline characters, got '/tmp/a\\\\x00b.log'"),
        ({"log": "/tmp/a\nb.log"}, "log path must not contain NUL or newline characters"),
        ({"container": "-rm"}, "container name must be letters, digits, '_', '.' or '-' \\(not starting with one of the last three\\), got '-rm'"),
        ({"container": "a b"}, "container name must be"),
        ({"container": ""}, "container name must be"),
        ({"container": "x" * 256}, "container name must be"),
        ({"container": "ok\n"}, "container name must be"),
        ({"process_pattern": ""}, "process pattern must be a non-empty string without NUL, got ''"),
        ({"process_pattern": "py\x00thon"}, "process pattern must be a non-empty string without NUL"),
        ({"probe_url": "localhost:5000/probe"}, "probe URL must start with http:// or https:// and name a host, got 'localhost:5000/probe'"),
        ({"probe_url": "ftp://x/probe"}, "probe URL must start with http"),
        ({"probe_url": "http://"}, "probe URL must start with http"),
        ({"probe_url": "http://h/a b"}, "probe URL must start with http"),
        ({"probe_url": "http://h/probe\n"}, "probe URL must start with http"),
    ],
)
def test_junk_target_fields_are_refused_in_one_sentence(ssh: SSHSpec | None, fields: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TargetSpec(name="t", ssh=ssh, **fields)


def test_good_target_fields_pass() -> None:
    spec = TargetSpec(
        name="t",
        log="/client/results/logs/normal-*.log",
        container="win_arena.1-b",
        process_pattern="^python .*run\\.py$",
        probe_url="https://[::1]:5000/probe?x=1",
    )
    assert spec.container == "win_arena.1-b"
    check_target_fields(log="/x.log", container=None, process_pattern=None, probe_url=None)


@pytest.mark.parametrize("log", [None, 5, b"/x.log"])
def test_a_log_path_that_is_not_text_is_refused(log: object) -> None:
    with pytest.raises(ConfigError, match="log path must be a non-empty string"):
        check_target_fields(log=log, container=None, process_pattern=None, probe_url=None)


@pytest.mark.parametrize("port", [0, -1, 65536, 10**9])
def test_ssh_port_out_of_range_is_refused(port: int) -> None:
    with pytest.raises(ConfigError, match=f"ssh port must be from 1 to 65535, got {port}"):
        SSHSpec(host="h", port=port)


@pytest.mark.parametrize("port", [1, 22, 65535])
def test_ssh_port_in_range(port: int) -> None:
    assert SSHSpec(host="h", port=port).port == port
