"""Settings and target specs, every option's definition, and turning mappings into them.

Owns:

* ``Settings``, ``TargetSpec``, ``SSHSpec``: frozen dataclasses that validate themselves — all
  validation of what a target may be (names, paths, container names, URLs, ports) lives here,
  once; sources and servers trust a spec they are given;
* ``OPTIONS``: the one table of the ``serve`` options (name, parser, default, help), from which
  ``cli.py`` builds its argparse parser and ``from_mapping`` reads ``TRIO_SSE_*`` variables
  and TOML files — so the three spellings of a setting cannot drift apart;
* ``from_mapping`` / ``resolve``: command-line values, the environment and a config file →
  ``Settings`` (the command line wins over the environment, which wins over the file).

Every error is a ``ConfigError`` whose message names the option (or variable, or file) and
the value in one sentence. Pure: no I/O, except at the clearly marked edge at the end
(``load_toml``, ``check_files``, ``settings_from_env``: reading a file, ``os.environ``).
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from trio_sse.cluster.keys import check_prefix, check_url
from trio_sse.errors import ConfigError
from trio_sse.storedb import default_db_path

DEFAULT_LOG = "/tmp/waa_benchmark.log"  # the original endpoint's: the plain local target's default
# Where WAA writes inside its container (client/run.py: <result_dir>/logs/normal-<worker>-<ts>.log,
# result_dir ./results under /client): the default for a target with a container and no log.
WAA_CONTAINER_LOG = "/client/results/logs/normal-*.log"
DEFAULT_PROCESS_PATTERN = "python.*run.py"
DEFAULT_GUEST_IP = "20.20.20.21"
ENV_PREFIX = "TRIO_SSE_"
SIMULATED_LOG_NAME = "trio-sse-simulated.log"
DB_OFF = "none"  # --db none: no run history
MAX_ALERT_AFTER = 7 * 86400.0
MAX_SIM_RUNS = 20  # (sources.simulate.MAX_RUNS: this module imports nothing async)
RESULTS_OFF = "none"  # --results none: no results folder (steps from the log's Step lines)
DEFAULT_CACHE_MB = 512

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# Docker container names / ids: [a-zA-Z0-9][a-zA-Z0-9_.-]*. Checking this also keeps a leading
# "-" (an option to docker) out of every command line.
_CONTAINER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}\Z")
_PROBE_URL_RE = re.compile(r"https?://[^\s/]+\S*\Z")
LOG_LOCATIONS = ("host", "container", "stdout")


def is_target_name(name: object) -> bool:
    """Whether ``name`` could name a target (1-64 letters, digits, '_', '-' or '.')."""
    return isinstance(name, str) and _NAME_RE.match(name) is not None


def check_target_fields(
    *, log: object, container: str | None, process_pattern: str | None, probe_url: str | None
) -> None:
    """The one check of what a source acts on: log path, container, process pattern, probe URL
    (``TargetSpec`` runs it; so does a ``LocalSource`` built from keyword arguments)."""
    if not isinstance(log, str) or not log:
        raise ConfigError("log path must be a non-empty string")
    if "\x00" in log or "\n" in log:
        raise ConfigError(f"log path must not contain NUL or newline characters, got {log!r}")
    if container is not None and not _CONTAINER_RE.match(container):
        raise ConfigError(
            "container name must be letters, digits, '_', '.' or '-' "
            f"(not starting with one of the last three), got {container!r}"
        )
    if process_pattern is not None and (not process_pattern or "\x00" in process_pattern):
        raise ConfigError(f"process pattern must be a non-empty string without NUL, got {process_pattern!r}")
    if probe_url is not None and not _PROBE_URL_RE.match(probe_url):
        raise ConfigError(f"probe URL must start with http:// or https:// and name a host, got {probe_url!r}")


# ---------------------------------------------------------------------------- specs


@dataclass(frozen=True, slots=True)
class SSHSpec:
    host: str
    user: str | None = None
    port: int = 22
    identity: str | None = None
    known_hosts: str | None = None  # None: asyncssh's default (~/.ssh/known_hosts)
    verify_host_key: bool = True  # False only by the explicit, warned option

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"ssh port must be from 1 to 65535, got {self.port}")

    @property
    def display(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port != 22 else ""
        return f"{user}{self.host}{port}"


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One benchmark run location. ``log`` may be a glob (every worker's file of the current
    run is followed: ``trio_sse.sources.workers``)."""

    name: str = "local"
    log: str = DEFAULT_LOG
    ssh: SSHSpec | None = None
    container: str | None = None
    # Where the log lives when a container is named: "host" (a file on the host),
    # "container" (a file inside it, via docker exec) or "stdout" (docker logs -f).
    log_location: str = "host"
    probe_url: str | None = None
    vnc_url: str | None = None
    process_pattern: str | None = DEFAULT_PROCESS_PATTERN  # None: no pgrep check
    guest_ip: str = DEFAULT_GUEST_IP
    # Where the benchmark writes each task's traj.jsonl and screenshots (SPEC §8): a folder on
    # this machine, on the SSH host, or in the container (with log_location container/stdout).
    # None: derived from the log path (``default_results``); "none": no results folder.
    results: str | None = None

    @property
    def results_dir(self) -> str | None:
        """The results folder to read, or None (none given and none derivable, or "none")."""
        if self.results is None:
            return None if self.log_location == "stdout" else default_results(self.log)
        return None if self.results == RESULTS_OFF else self.results

    @property
    def follows_several_files(self) -> bool:
        """A glob (not ``docker logs``): every matching file of the run is a worker's log."""
        return self.log_location != "stdout" and any(c in "*?[" for c in self.log)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ConfigError(
                f"target name must be 1-64 letters, digits, '_', '-' or '.', got {self.name!r}"
            )
        check_target_fields(
            log=self.log, container=self.container, process_pattern=self.process_pattern, probe_url=self.probe_url
        )
        if self.log_location not in LOG_LOCATIONS:
            raise ConfigError(
                f"log location must be host, container or stdout, got {self.log_location!r}"
            )
        if self.log_location != "host" and not self.container:
            raise ConfigError(f"log location {self.log_location!r} needs a container name")
        if self.results is not None and (not self.results or any(c in self.results for c in "\x00\r\n")):
            raise ConfigError(f"results folder must be a path without NUL or newline characters (or none), got {self.results!r}")


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8765
    targets: tuple[TargetSpec, ...] = field(default_factory=lambda: (TargetSpec(),))
    keepalive: float = 15.0  # seconds of silence before a keepalive comment (SPEC §2.1)
    retry_ms: int = 3000  # the stream's opening ``retry:``
    gzip: bool = True  # compress streams for clients that accept gzip
    # Tune the process for many long-lived streams (trio_sse.tuning). Process-wide, so only
    # ``cli.main`` applies it, and only when this is set; library callers get stock behaviour.
    process_tuning: bool = True
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    success_threshold: float = 1.0
    # Simulation (``serve --simulate``): write a WAA-like run into the first target's log.
    simulate: bool = False
    sim_tasks: int = 40  # with the step below: a demo of about 7 minutes, long enough to explore
    sim_step_seconds: float = 2.0
    # Per-client limits (SPEC §2.3, §5).
    # What a client may have unsent (live frames behind its socket) before it is dropped. The
    # replay is not counted: it is read from the shared history as the socket drains.
    queue_bytes: int = 1 << 20
    queue_size: int = 256
    max_streams: int = 2000
    max_streams_per_ip: int = 200
    idle_probe_seconds: float = 60.0  # status probing pace when no client is connected
    stall_after: float = 600.0  # a running run that has not moved this long is stalled (0: off)
    # Production hardening (SPEC §5).
    write_timeout: float = 30.0  # a write making no progress this long → the client is disconnected
    max_stream_seconds: float | None = None  # recycle streams after this long (minus up to 15 % jitter)
    send_buffer: int = 128 * 1024  # SO_SNDBUF of accepted sockets: what a stuck client can pin
    certfile: str | None = None  # with keyfile: HTTPS, HTTP/2 by ALPN
    keyfile: str | None = None
    access_log: str | None = None  # "-" (stderr) or a file; query strings and tokens redacted
    # Proxies whose X-Forwarded-For / Forwarded headers are believed (addresses or networks;
    # "*": any). Everyone else's are ignored: a client cannot pick its own address.
    forwarded_allow_ips: tuple[str, ...] = ()
    # Cluster mode (SPEC §10): several processes on one Redis; None: the embedded default.
    redis: str | None = None  # checked by cluster.keys.check_url; shown only via display_url
    redis_prefix: str = "trio-sse"  # the prefix of every key (several clusters on one Redis)
    lease_seconds: float = 10.0  # a dead follower's target is taken over after this
    # Run history (SPEC §9). ``db``: the SQLite file, None = history off. The field's default
    # is off, so code that builds Settings itself (tests, trio_sse.testing, benchmarks) writes
    # nowhere unless it asks; ``resolve`` (command line, TRIO_SSE_*, config file) defaults to
    # ``storedb.default_db_path`` and maps ``--db none`` to None.
    db: str | None = None
    baseline: str | None = None  # "previous" or a stored run (<target>:<run> / <run>)
    # Apprise URLs (``--notify``); they carry tokens, so they are left out of the repr.
    notify: tuple[str, ...] = field(default=(), repr=False)
    alert_after: float = 300.0  # seconds a target may be unreachable before the alert
    sim_runs: int = 1  # (with simulate) runs of the same tasks, one after the other
    # Files fetched from SSH targets (screenshots, SPEC §8): cached on disk, capped. None: a
    # private temporary directory (``resolve`` defaults to the user's cache directory).
    cache_dir: str | None = None
    cache_mb: int = DEFAULT_CACHE_MB

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be from 0 to 65535, got {self.port}")
        if not 0.05 <= self.keepalive <= 3600:
            raise ConfigError(f"keepalive must be from 0.05 to 3600 seconds, got {self.keepalive}")
        if not 0 < self.retry_ms <= 3_600_000:
            raise ConfigError(f"retry must be from 1 to 3600000 ms, got {self.retry_ms}")
        if not self.targets:
            raise ConfigError("at least one target is needed")
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ConfigError(f"target names must be unique, got {names}")
        if self.sim_tasks < 1 or self.sim_tasks > 100_000:
            raise ConfigError(f"tasks must be from 1 to 100000, got {self.sim_tasks}")
        if not 0 <= self.sim_step_seconds <= 3600:
            raise ConfigError(f"step-seconds must be from 0 to 3600, got {self.sim_step_seconds}")
        if self.token is not None and (not self.token or any(c.isspace() for c in self.token)):
            raise ConfigError("token must be non-empty and contain no whitespace")
        if self.token is not None and "*" in self.cors_origins:
            raise ConfigError("cors origin '*' is not allowed together with a token")
        if self.queue_size < 1 or self.max_streams < 1 or self.max_streams_per_ip < 1:
            raise ConfigError("queue size and stream limits must be positive")
        if not 4096 <= self.queue_bytes <= 1 << 30:
            raise ConfigError(f"queue bytes must be from 4096 to 1073741824, got {self.queue_bytes}")
        if not 0 <= self.stall_after <= 7 * 86400:
            raise ConfigError(f"stall-after must be from 0 to 604800 seconds, got {self.stall_after}")
        if not 0.1 <= self.write_timeout <= 3600:
            raise ConfigError(f"write timeout must be from 0.1 to 3600 seconds, got {self.write_timeout}")
        if self.max_stream_seconds is not None and not 1 <= self.max_stream_seconds <= 7 * 86400:
            raise ConfigError(f"max stream seconds must be from 1 to 604800, got {self.max_stream_seconds}")
        if not 4096 <= self.send_buffer <= 64 * 1024 * 1024:
            raise ConfigError(f"send buffer must be from 4096 to 67108864 bytes, got {self.send_buffer}")
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("--certfile and --keyfile must be given together")
        if self.simulate and self.targets[0].ssh is not None:
            raise ConfigError("--simulate writes a local log; it cannot be combined with an SSH target")
        if self.simulate and self.redis is not None:
            # Every process of a cluster would write its own simulated run into the log.
            raise ConfigError(
                "--simulate cannot be combined with --redis (each process would write its own run); "
                "write one with `trio-sse simulate --log PATH` and point every process at PATH"
            )
        if self.redis is not None:
            check_url(self.redis)
        check_prefix(self.redis_prefix)
        if not 0.5 <= self.lease_seconds <= 3600:
            raise ConfigError(f"lease must be from 0.5 to 3600 seconds, got {self.lease_seconds}")
        if self.db is not None and (not self.db or "\x00" in self.db):
            raise ConfigError("db must be a file path without NUL characters (or none)")
        if self.baseline is not None and baseline_ref(self.baseline) != self.baseline:
            raise ConfigError(f"baseline must be 'previous' or a stored run, got {self.baseline!r}")
        if self.baseline is not None and self.db is None:
            raise ConfigError("--baseline compares with the run history: it needs a database (not --db none)")
        for url in self.notify:
            try:
                notify_url(url)
            except ValueError as err:
                raise ConfigError(f"notify URL {err}") from None
        if not 0 <= self.alert_after <= MAX_ALERT_AFTER:
            raise ConfigError(f"alert after must be from 0 to {MAX_ALERT_AFTER:g} seconds, got {self.alert_after}")
        if not 1 <= self.sim_runs <= MAX_SIM_RUNS:
            raise ConfigError(f"sim runs must be from 1 to {MAX_SIM_RUNS}, got {self.sim_runs}")
        if not 1 <= self.cache_mb <= 1 << 20:
            raise ConfigError(f"cache size must be from 1 to 1048576 MB, got {self.cache_mb}")
        if self.cache_dir is not None and (not self.cache_dir or "\x00" in self.cache_dir):
            raise ConfigError("cache dir must be a directory path without NUL characters")

    def target(self, name: str) -> TargetSpec | None:
        for t in self.targets:
            if t.name == name:
                return t
        return None


# ---------------------------------------------------------------------------- value parsers
# Each takes the text of a value (argv, an environment variable) and returns it typed, or
# raises ValueError with the end of a sentence ("must be …, got '…'").


def int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        s = raw.strip()
        if not (s.isascii() and s.lstrip("-").isdigit()) or not lo <= int(s) <= hi:
            raise ValueError(f"must be an integer from {lo} to {hi}, got {raw!r}")
        return int(s)

    return parse


def float_range(lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            v = float(raw)
        except ValueError:
            raise ValueError(f"must be a number from {lo:g} to {hi:g}, got {raw!r}") from None
        if not math.isfinite(v) or not lo <= v <= hi:
            raise ValueError(f"must be a number from {lo:g} to {hi:g}, got {raw!r}")
        return v

    return parse


def text(raw: str) -> str:
    if not raw or any(c in raw for c in "\x00\r\n"):
        raise ValueError(f"must be non-empty text without control characters, got {raw!r}")
    return raw


_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(raw: str) -> str | None:
    """An origin as browsers send it (RFC 6454 §6.1 serialisation): scheme and host in lower
    case, the default port dropped, no path. None when ``raw`` is not an http(s) origin."""
    try:
        u = urlsplit(raw.strip())
        port = u.port
    except ValueError:
        return None
    if u.scheme.lower() not in _DEFAULT_PORTS or not u.hostname or u.path not in ("", "/") or u.query:
        return None
    if u.username is not None or u.password is not None or u.fragment:
        return None
    scheme = u.scheme.lower()
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname  # urlsplit lower-cases it
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def origin(raw: str) -> str:
    """A ``--cors-origin`` value: ``*`` or an origin, normalised as browsers send it."""
    if raw == "*":
        return raw
    normal = normalise_origin(raw)
    if normal is None:
        raise ValueError(f"must be an origin like https://example.org, got {raw!r}")
    return normal


def networks(raw: str) -> tuple[str, ...]:
    """A comma-separated list of IP addresses / networks (``127.0.0.1,10.0.0.0/8``) or ``*``."""
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not items:
        raise ValueError(f"must be IP addresses or networks separated by commas, or '*', got {raw!r}")
    for item in items:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"must be IP addresses or networks separated by commas, or '*', got {item!r}") from None
    return items


def redis_url(raw: str) -> str:
    """A ``--redis`` URL (``redis://[[user]:password@]host[:port][/db]``, ``rediss://``,
    ``unix://``); the error never shows the password."""
    try:
        return check_url(raw)
    except ConfigError as err:
        raise ValueError(f"is not valid: {err}") from None


def redis_prefix(raw: str) -> str:
    try:
        return check_prefix(raw)
    except ConfigError as err:
        raise ValueError(f"is not valid: {err}") from None


def db_path(raw: str) -> str:
    """A ``--db`` value: a file path (``~`` expanded), or ``none`` (any case): history off,
    kept as ``"none"`` here and turned into ``Settings.db = None`` by ``resolve``."""
    s = raw.strip()
    if not s or "\x00" in s:
        raise ValueError(f"must be a file path or 'none', got {raw!r}")
    if s.lower() == DB_OFF:
        return DB_OFF
    return os.path.expanduser(s)


_BASELINE_RE = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}:)?[0-9a-fA-F]{1,16}\Z")


def baseline_ref(raw: str) -> str:
    """A ``--baseline`` value: ``previous`` (the target's last finished run) or a stored run:
    ``<target>:<run id>``, ``<run id>`` or a unique prefix of one (hex, as ``trio-sse runs``
    and ``/api/runs`` show them)."""
    s = raw.strip()
    if s.lower() == "previous":
        return "previous"
    if not _BASELINE_RE.match(s):
        shown = s if len(s) <= 80 else s[:80] + "…"
        raise ValueError(f"must be 'previous' or a stored run (<target>:<run id> or <run id>, hex), got {shown!r}")
    return s


_NOTIFY_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]{0,31})://[^\s\x00-\x1f\x7f]+\Z")


def notify_url(raw: str) -> str:
    """A ``--notify`` value: an Apprise URL (``json://host/path``, ``ntfy://topic``,
    ``slack://…``, ``mailto://…``). Checked here for its shape only; the server asks Apprise
    at start-up whether it knows the scheme. Messages never repeat the URL: it carries tokens."""
    m = _NOTIFY_RE.match(raw.strip()) if isinstance(raw, str) else None
    if m is None:
        scheme = raw.split("://", 1)[0] if isinstance(raw, str) and "://" in raw else ""
        seen = f"got one starting {scheme[:20]!r}://…" if scheme.isascii() and scheme.isalnum() else "got something else"
        raise ValueError(f"must be an Apprise URL such as json://host/path or ntfy://topic (see the README), {seen}")
    return raw.strip()
def default_results(log: str) -> str | None:
    """The results folder a log path implies (SPEC §8): the folder above ``logs/`` — WAA writes
    ``<result_dir>/logs/normal-<worker>-<ts>.log``, so ``/client/results/logs/normal-*.log`` →
    ``/client/results``; None for a log elsewhere (``/tmp/waa_benchmark.log``)."""
    head = log.rpartition("/")[0]
    if not head or any(c in head for c in "*?["):
        return None
    parent, _, base = head.rpartition("/")
    if base != "logs":
        return None
    return parent or ("/" if log.startswith("/") else ".")


def simulated_results(log: str) -> str:
    """Where ``serve --simulate`` writes its results folder: ``results`` next to its log."""
    return os.path.join(os.path.dirname(log) or ".", "results")


def default_cache_dir(env: Mapping[str, str]) -> str:
    """``$XDG_CACHE_HOME/trio-sse/files``, else ``~/.cache/trio-sse/files``."""
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "trio-sse", "files")


def results_path(raw: str) -> str:
    """A ``--results`` value: a folder (as given: on an SSH target a ``~`` is not ours to
    expand) or ``none``."""
    s = text(raw)
    return RESULTS_OFF if s.lower() == RESULTS_OFF else s


def boolean(raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


# ---------------------------------------------------------------------------- the options


@dataclass(frozen=True, slots=True)
class Option:
    """One ``serve`` option: ``--name`` on the command line, ``TRIO_SSE_NAME`` in the
    environment, ``name`` (with ``_``) in a config file."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    kind: str = "value"  # value | flag (true/false) | list (repeatable)

    @property
    def key(self) -> str:
        """The spelling in a config file and in the ``resolve`` mapping."""
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper().replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("host", text, "127.0.0.1", "address to bind (a warning is printed for non-loopback without a token)"),
    Option("port", int_range(0, 65535), 8765, "port to bind (0: any free port)"),
    Option("log", text, None, f"log file or glob to follow (default {DEFAULT_LOG}; with --container: "
           f"{WAA_CONTAINER_LOG} inside it); a glob follows every worker's file of the current run"),
    Option("ssh", text, None, "follow the log on [USER@]HOST[:PORT] over SSH"),
    Option("identity", text, None, "SSH identity (private key) file"),
    Option("known-hosts", text, None, "known_hosts file for SSH host key verification"),
    Option("container", text, None, "Docker container the benchmark runs in (e.g. winarena)"),
    Option("log-location", text, None, "where the log is when --container is set: host, container or stdout"),
    Option("probe-url", text, None, "WAA probe URL (default http://<guest-ip>:5000/probe over SSH)"),
    Option("results", results_path, None,
           "the benchmark's results folder (traj.jsonl, screenshots), on the SSH host or in the container "
           "like the log, or 'none' (default: the folder above the log's logs/, e.g. /client/results)"),
    Option("cache-mb", int_range(1, 1 << 20), DEFAULT_CACHE_MB,
           "disk cache for files fetched from SSH targets (screenshots), in MB; least recently used go first"),
    Option("cache-dir", text, None,
           "directory of that cache (default: $XDG_CACHE_HOME/trio-sse/files, else ~/.cache/trio-sse/files)"),
    Option("vnc-url", text, None, "VNC link shown in status (default http://<host>:8006 for SSH)"),
    Option("config", text, None, "TOML config file (options and [[targets]])"),
    Option("keepalive", float_range(0.05, 3600), 15.0, "seconds of silence before a keepalive comment"),
    Option("token", text, None, "require this token (Authorization: Bearer or ?token=)"),
    Option("tasks", int_range(1, 100_000), 40, "simulated tasks (with --simulate; ~5 steps each)"),
    Option("step-seconds", float_range(0, 3600), 2.0, "seconds per simulated step (with --simulate)"),
    Option("success-threshold", float_range(0, 1), 1.0, "score at or above which a task counts as passed"),
    Option("stall-after", float_range(0, 604_800), 600.0,
           "seconds without a new log line or step before a running run is reported stalled (0: never)"),
    Option("queue-bytes", int_range(4096, 1 << 30), 1 << 20,
           "bytes of live events a client may have unsent before it is dropped (it reconnects and resumes)"),
    Option("queue-size", int_range(1, 1_000_000), 256, "live events a client may have unsent before it is dropped"),
    Option("max-streams", int_range(1, 1_000_000), 2000, "concurrent streams in total"),
    Option("max-streams-per-ip", int_range(1, 1_000_000), 200, "concurrent streams per client IP"),
    Option("retry-ms", int_range(1, 3_600_000), 3000, "the stream's retry: hint to clients, in ms"),
    Option("write-timeout", float_range(0.1, 3600), 30.0,
           "seconds a write to a client may make no progress before that client is disconnected "
           "(sockets get TCP_USER_TIMEOUT 1.25 x this + 1 s, so a vanished client is found too)"),
    Option("max-stream-seconds", float_range(1, 604_800), None,
           "end each stream after this long, minus up to 15% jitter (clients reconnect and resume)"),
    Option("certfile", text, None, "TLS certificate (PEM); with --keyfile: HTTPS, HTTP/2 by ALPN"),
    Option("keyfile", text, None, "TLS private key (PEM)"),
    Option("access-log", text, None, "write an access log to this file ('-': stdout); tokens redacted"),
    Option("forwarded-allow-ips", networks, None,
           "trust X-Forwarded-For / Forwarded from these proxies (comma-separated addresses or networks, "
           "or '*') for the per-IP limit, the access log and /metrics"),
    Option("redis", redis_url, None,
           "cluster mode: every process with the same redis://[:PASSWORD@]HOST[:PORT][/DB] serves every "
           "target, one of them follows each (SPEC §10)"),
    Option("redis-prefix", redis_prefix, "trio-sse", "prefix of the cluster's Redis keys (several clusters, one Redis)"),
    Option("lease", float_range(0.5, 3600), 10.0,
           "cluster mode: seconds after which another process takes over a target whose follower died"),
    Option("sim-runs", int_range(1, MAX_SIM_RUNS), 1,
           "simulated runs of the same tasks, one after the other, a few outcomes changed in each later "
           "run (with --simulate; add --baseline previous to compare each with the one before)"),
    Option("db", db_path, None,
           "run history database (SQLite), or 'none' to keep no history "
           "(default: $XDG_DATA_HOME/trio-sse/history.sqlite3, else ~/.local/share/trio-sse/history.sqlite3)"),
    Option("baseline", baseline_ref, None,
           "compare each run with this stored run: 'previous' (the target's last finished run) "
           "or <target>:<run id> (see 'trio-sse runs'); needs the history"),
    Option("notify", notify_url, None,
           "send alerts (run finished/interrupted/stalled, target unreachable, regressions) to this "
           "Apprise URL, e.g. json://host/path, ntfy://ntfy.sh/topic, slack://…, mailto://… (repeatable)",
           "list"),
    Option("alert-after", float_range(0, MAX_ALERT_AFTER), 300.0,
           "seconds a target may be unreachable before the unreachable alert is sent"),
    Option("simulate", boolean, False, "write a simulated WAA run into the log and monitor it", "flag"),
    Option("no-gzip", boolean, False, "never compress streams", "flag"),
    Option("no-process-tuning", boolean, False,
           "leave the GC and Hypercorn's write path as they are (see trio_sse.tuning)", "flag"),
    Option("insecure-no-host-key-check", boolean, False, "do NOT verify SSH host keys (unsafe; prints a warning)",
           "flag"),
    Option("target", text, None, "NAME=PATH or NAME=ssh://[user@]host[:port]/PATH[?container=C] (repeatable)",
           "list"),
    Option("cors-origin", origin, None, "allowed CORS origin (repeatable)", "list"),
)
OPTIONS_BY_KEY: dict[str, Option] = {o.key: o for o in OPTIONS}


def _coerce(option: Option, value: Any, where: str) -> Any:
    """A value of a mapping (an environment string, or a TOML value of any type) → typed."""
    try:
        if option.kind == "list":
            if isinstance(value, str):
                return [option.parse(v) for v in value.split()]
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return [option.parse(v) for v in value]
            hint = " (targets are [[targets]] tables)" if option.key == "target" else ""
            raise ValueError(f"must be a list of strings, got {value!r}{hint}")
        if isinstance(value, str):
            return option.parse(value)
        if option.kind == "flag":
            if isinstance(value, bool):
                return value
            raise ValueError(f"must be true or false, got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return option.parse(str(value))
        raise ValueError(f"must be a string or a number, got {value!r}")
    except ValueError as err:
        raise ConfigError(f"{where} {err}") from None


def from_mapping(values: Mapping[str, Any], *, origin: str) -> dict[str, Any]:
    """Typed option values from a mapping whose keys are option keys (``known_hosts``).
    ``origin`` names where they came from in errors: ``"environment"`` (then each error
    names the variable) or e.g. ``"config file c.toml"``. Unknown keys are ignored here
    (the caller decides; the environment holds much else)."""
    out: dict[str, Any] = {}
    for key, raw in values.items():
        option = OPTIONS_BY_KEY.get(key)
        if option is None:
            continue
        where = f"environment variable {option.env}" if origin == "environment" else f"{origin}: {key}"
        out[key] = _coerce(option, raw, where)
    return out


def env_values(env: Mapping[str, str]) -> dict[str, Any]:
    """The ``TRIO_SSE_*`` variables of ``env`` that name options, typed."""
    present = {o.key: env[o.env] for o in OPTIONS if o.env in env}
    return from_mapping(present, origin="environment")


# ---------------------------------------------------------------------------- targets


def parse_ssh(raw: str, **kw: Any) -> SSHSpec:
    """``[user@]host[:port]`` → SSHSpec."""
    try:
        return _parse_ssh(raw, **kw)
    except ValueError as err:
        raise ConfigError(f"ssh destination {raw!r}: port {err}") from None


def _parse_ssh(raw: str, **kw: Any) -> SSHSpec:
    user, at, hostport = raw.rpartition("@")
    if at and not user:
        raise ConfigError(f"ssh destination {raw!r} has an empty user")
    host, port = hostport, 22
    if hostport.startswith("["):  # [v6]:port
        end = hostport.find("]")
        if end < 0:
            raise ConfigError(f"ssh destination must be [user@]host[:port], got {raw!r}")
        host, rest = hostport[1:end], hostport[end + 1 :]
        if rest:
            port = int_range(1, 65535)(rest.lstrip(":"))
    elif hostport.count(":") == 1:
        host, p = hostport.split(":")
        port = int_range(1, 65535)(p)
    if not host or any(c.isspace() or c in "/;'\"`$\\" for c in host) or (":" in host and not _is_ipv6(host)):
        raise ConfigError(f"ssh destination must be [user@]host[:port], got {raw!r}")
    return SSHSpec(host=host, user=user or None, port=port, **kw)


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def vnc_default(host: str) -> str:
    """SPEC §3: ``http://<host>:8006`` (an IPv6 address in brackets)."""
    return f"http://[{host}]:8006" if ":" in host else f"http://{host}:8006"


def parse_target(raw: str, *, defaults: Mapping[str, Any] | None = None) -> TargetSpec:
    """``NAME=PATH`` (local log) or ``NAME=ssh://[user@]host[:port]/PATH[?container=C&…]``."""
    name, eq, spec = raw.partition("=")
    if not eq or not name or not spec:
        raise ConfigError(f"--target must be NAME=PATH or NAME=ssh://[user@]host[:port]/PATH, got {raw!r}")
    defaults = dict(defaults or {})
    if not spec.startswith("ssh://"):
        scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]+):", spec)  # two letters or more: C:/x is a drive
        if scheme and (spec[scheme.end() :].startswith("/") or scheme[1].lower() == "ssh"):
            # ftp://…, http://…, ssh:/host/x.log (one slash): a URL, not a file name.
            raise ConfigError(
                f"--target {name}: {spec!r} is not a local path or an ssh://[user@]host[:port]/PATH URL "
                f"(only ssh:// is supported)"
            )
        local = {k: v for k, v in defaults.items() if k in ("container", "probe_url", "vnc_url")}
        return TargetSpec(name=name, log=spec, **local)
    u = urlsplit(spec)
    path = unquote(u.path)
    if not u.hostname or not path or path == "/":
        raise ConfigError(f"--target {name}: ssh target needs a host and a log path, got {spec!r}")
    q = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
    unknown = set(q) - {"container", "log_location", "probe", "vnc", "identity", "known_hosts", "results"}
    if unknown:
        raise ConfigError(f"--target {name}: unknown parameter(s) {', '.join(sorted(unknown))}")
    try:
        port = 22 if u.port is None else u.port
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ConfigError(f"--target {name}: port must be from 1 to 65535 in {spec!r}")
    if u.password is not None:
        raise ConfigError(f"--target {name}: passwords are not supported in an ssh target; use an identity file")
    for key in ("identity", "known_hosts", "results"):
        if key in q and not q[key]:
            raise ConfigError(f"--target {name}: {key} must not be empty")
    ssh = SSHSpec(
        host=u.hostname,
        user=unquote(u.username) if u.username else None,
        port=port,
        identity=q.get("identity", defaults.get("identity")),
        known_hosts=q.get("known_hosts", defaults.get("known_hosts")),
        verify_host_key=defaults.get("verify_host_key", True),
    )
    return TargetSpec(
        name=name,
        log=path,
        ssh=ssh,
        container=q.get("container") or None,
        log_location=q.get("log_location", "container" if q.get("container") else "host"),
        probe_url=q.get("probe") or None,
        vnc_url=q.get("vnc") or vnc_default(u.hostname),
        results=q.get("results") or None,
    )


_TOML_TARGET_KEYS = frozenset({
    "name", "log", "ssh", "host", "port", "user", "identity", "known_hosts", "container",
    "log_location", "probe", "vnc", "process_pattern", "guest_ip", "results",
})  # fmt: skip


def targets_from_toml(
    items: Any, path: str, verify: bool, defaults: Mapping[str, Any] | None = None
) -> list[TargetSpec]:
    """The ``[[targets]]`` tables of a config file."""
    if not isinstance(items, list) or not all(isinstance(t, dict) for t in items):
        raise ConfigError(f"config file {path}: 'targets' must be an array of tables ([[targets]])")
    given = defaults or {}  # --identity / --known-hosts (or top-level keys) for targets naming none
    out = []
    for i, t in enumerate(items):
        unknown = set(t) - _TOML_TARGET_KEYS
        if unknown:
            raise ConfigError(f"config file {path}: target #{i + 1} has unknown key(s) {', '.join(sorted(unknown))}")
        if not isinstance(t.get("name"), str):
            raise ConfigError(f"config file {path}: target #{i + 1} needs a string 'name'")
        for key, value in t.items():
            if key == "port":
                if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
                    raise ConfigError(f"config file {path}: target {t['name']!r}: port must be 1..65535")
            elif not isinstance(value, str):
                raise ConfigError(f"config file {path}: target {t['name']!r}: {key} must be a string")
        ssh = None
        host = t.get("ssh") or t.get("host")
        if host:
            ssh = parse_ssh(host, identity=t.get("identity", given.get("identity")),
                            known_hosts=t.get("known_hosts", given.get("known_hosts")), verify_host_key=verify)
            if "port" in t:
                ssh = SSHSpec(ssh.host, t.get("user", ssh.user), t["port"], ssh.identity, ssh.known_hosts, verify)
            elif "user" in t:
                ssh = SSHSpec(ssh.host, t["user"], ssh.port, ssh.identity, ssh.known_hosts, verify)
        container = t.get("container")
        log, location = t.get("log"), t.get("log_location")
        if log is None and container and location != "host":  # WAA's own files, in the container
            log, location = WAA_CONTAINER_LOG, location or "container"
        out.append(
            TargetSpec(
                name=t["name"],
                log=DEFAULT_LOG if log is None else log,
                ssh=ssh,
                container=container,
                log_location=location or ("container" if container and ssh else "host"),
                probe_url=t.get("probe"),
                vnc_url=t.get("vnc") or (vnc_default(ssh.host) if ssh else None),
                process_pattern=t.get("process_pattern", DEFAULT_PROCESS_PATTERN) or None,
                guest_ip=t.get("guest_ip", DEFAULT_GUEST_IP),
                results=t.get("results"),
            )
        )
    return out


# ---------------------------------------------------------------------------- resolve


def resolve(
    given: Mapping[str, Any],
    env: Mapping[str, str],
    file: Mapping[str, Any] | None = None,
    *,
    file_path: str | None = None,
) -> Settings:
    """Settings from three layers: ``given`` (typed values set on the command line, keyed by
    option key), the environment, and a config file's parsed TOML (``file``, read from
    ``file_path``). A key's value comes from the first layer that has it, else the default."""
    from_env = env_values(env)
    file = dict(file or {})
    where = f"config file {file_path}" if file_path else "config file"
    unknown = sorted(set(file) - set(OPTIONS_BY_KEY) - {"targets"})
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, [*OPTIONS_BY_KEY, "targets"], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}: unknown key {key!r}{hint}")
    from_file = from_mapping({k: v for k, v in file.items() if k != "targets"}, origin=where)

    def pick(key: str) -> Any:
        for layer in (given, from_env, from_file):
            if key in layer and layer[key] is not None:
                return layer[key]
        return OPTIONS_BY_KEY[key].default

    verify = not pick("insecure_no_host_key_check")
    simulate = bool(pick("simulate"))
    log = pick("log")
    container = pick("container")
    location = pick("log_location")
    if log is None:
        if simulate:
            log = os.path.join(tempfile.gettempdir(), SIMULATED_LOG_NAME)
        elif container and location != "host":  # WAA's own log files, read inside the container
            log, location = WAA_CONTAINER_LOG, location or "container"
        else:
            log = DEFAULT_LOG
    targets: list[TargetSpec] = []
    ssh_raw = pick("ssh")
    if ssh_raw:
        ssh = parse_ssh(ssh_raw, identity=pick("identity"), known_hosts=pick("known_hosts"), verify_host_key=verify)
        targets.append(
            TargetSpec(
                name="remote",
                log=log,
                ssh=ssh,
                container=container,
                log_location=location or ("container" if container else "host"),
                probe_url=pick("probe_url"),
                vnc_url=pick("vnc_url") or vnc_default(ssh.host),
                results=pick("results"),
            )
        )
    defaults = {"identity": pick("identity"), "known_hosts": pick("known_hosts"), "verify_host_key": verify}
    # --target is repeatable, but its layers do not add up: the command line replaces the
    # environment's list (as for any option); a config file's [[targets]] come on top.
    for raw in given.get("target") or from_env.get("target") or []:
        targets.append(parse_target(raw, defaults=defaults))
    if "targets" in file:
        targets.extend(targets_from_toml(file["targets"], file_path or "?", verify, defaults))
    if not targets:
        targets.append(
            TargetSpec(
                name="local",
                log=log,
                container=container,
                log_location=location or "host",
                probe_url=pick("probe_url"),
                vnc_url=pick("vnc_url"),
                results=pick("results") or (simulated_results(log) if simulate else None),
            )
        )
    return Settings(
        host=pick("host"),
        port=pick("port"),
        targets=tuple(targets),
        keepalive=pick("keepalive"),
        retry_ms=pick("retry_ms"),
        gzip=not pick("no_gzip"),
        process_tuning=not pick("no_process_tuning"),
        token=pick("token"),
        cors_origins=tuple(pick("cors_origin") or ()),
        success_threshold=pick("success_threshold"),
        stall_after=_stall_after(pick("stall_after"), simulate, given, from_env, from_file),
        simulate=simulate,
        sim_tasks=pick("tasks"),
        sim_step_seconds=pick("step_seconds"),
        queue_bytes=pick("queue_bytes"),
        queue_size=pick("queue_size"),
        max_streams=pick("max_streams"),
        max_streams_per_ip=pick("max_streams_per_ip"),
        write_timeout=pick("write_timeout"),
        max_stream_seconds=pick("max_stream_seconds"),
        certfile=pick("certfile"),
        keyfile=pick("keyfile"),
        access_log=pick("access_log"),
        forwarded_allow_ips=tuple(pick("forwarded_allow_ips") or ()),
        redis=pick("redis"),
        redis_prefix=pick("redis_prefix"),
        lease_seconds=pick("lease"),
        db=_db(pick("db"), env),
        baseline=pick("baseline"),
        notify=tuple(pick("notify") or ()),
        alert_after=pick("alert_after"),
        sim_runs=pick("sim_runs"),
        cache_dir=pick("cache_dir") or default_cache_dir(env),
        cache_mb=pick("cache_mb"),
    )


def _db(value: str | None, env: Mapping[str, str]) -> str | None:
    """``--db`` as ``Settings.db``: the default path when not given, None for ``none``."""
    if value is None:
        return str(default_db_path(env))
    return None if value == DB_OFF else value


DEMO_STALL_AFTER = 30.0  # serve --simulate: its stalling task pauses ~60 s, so the demo shows a stall


def _stall_after(value: float, simulate: bool, *layers: Mapping[str, Any]) -> float:
    """``--stall-after``, or for the demo (``--simulate``, not set anywhere) a short one."""
    if simulate and not any("stall_after" in layer for layer in layers):
        return DEMO_STALL_AFTER
    return value


# ---------------------------------------------------------------------------- the edge (I/O)


def load_toml(path: str) -> dict[str, Any]:
    """A config file: top-level keys are option keys (``port = 8765``), and ``[[targets]]``
    tables list targets (name, log, ssh, port, user, identity, known_hosts, container,
    log_location, probe, vnc, process_pattern, guest_ip)."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None


def check_files(settings: Settings) -> None:
    """An SSH key or known_hosts file that cannot be read is a start-up error, not an outage
    retried forever."""
    for t in settings.targets:
        if t.ssh is None:
            continue
        for what, path in (("identity file", t.ssh.identity), ("known_hosts file", t.ssh.known_hosts)):
            if path is not None and not os.path.isfile(os.path.expanduser(path)):
                raise ConfigError(f"target {t.name}: {what} {path!r} does not exist or is not a file")


def settings_from(given: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """``resolve`` with the config file named by ``given`` or the environment loaded, and the
    files the settings name checked."""
    path = given.get("config") or env_values(env).get("config")
    file = load_toml(path) if path else None
    settings = resolve(given, env, file, file_path=path)
    check_files(settings)
    return settings


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``TRIO_SSE_*`` alone (for Hypercorn's own CLI: ``trio_sse.asgi``)."""
    return settings_from(given={}, env=os.environ if env is None else env)


__all__: Sequence[str] = (
    "DEFAULT_LOG",
    "OPTIONS",
    "WAA_CONTAINER_LOG",
    "Option",
    "SSHSpec",
    "Settings",
    "TargetSpec",
    "from_mapping",
    "load_toml",
    "parse_ssh",
    "parse_target",
    "resolve",
    "settings_from",
    "settings_from_env",
)
