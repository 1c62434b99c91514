"""Settings and target specs: frozen dataclasses and their validation. No I/O.

``cli.py`` turns argv / ``TRIO_SSE_*`` environment variables / a TOML file into these; the
rest of the code only ever sees a validated ``Settings``. Every validation error is a
``ConfigError`` whose message names the offending option and value in one sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from trio_sse.errors import ConfigError

DEFAULT_LOG = "/tmp/waa_benchmark.log"
DEFAULT_PROCESS_PATTERN = "python.*run.py"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# Docker container names: [a-zA-Z0-9][a-zA-Z0-9_.-]* (also keeps a leading "-", an option).
_CONTAINER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}\Z")
_PROBE_URL_RE = re.compile(r"https?://[^\s/]+\S*\Z")


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
    """One benchmark run location. ``log`` may be a glob (the newest match is followed)."""

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
    guest_ip: str = "20.20.20.21"

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ConfigError(
                f"target name must be 1-64 letters, digits, '_', '-' or '.', got {self.name!r}"
            )
        check_target_fields(
            log=self.log, container=self.container, process_pattern=self.process_pattern, probe_url=self.probe_url
        )
        if self.log_location not in ("host", "container", "stdout"):
            raise ConfigError(
                f"log location must be host, container or stdout, got {self.log_location!r}"
            )
        if self.log_location != "host" and not self.container:
            raise ConfigError(f"log location {self.log_location!r} needs a container name")


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8765
    targets: tuple[TargetSpec, ...] = field(default_factory=lambda: (TargetSpec(),))
    keepalive: float = 15.0  # seconds of silence before a keepalive comment (SPEC §2.1)
    retry_ms: int = 3000  # the stream's opening ``retry:``
    gzip: bool = True  # compress streams for clients that accept gzip
    process_tuning: bool = True  # serve() applies trio_sse.tuning (GC thresholds, write fast path)
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    success_threshold: float = 1.0
    # Simulation (``serve --simulate``): write a WAA-like run into the first target's log.
    simulate: bool = False
    sim_tasks: int = 12
    sim_step_seconds: float = 1.0
    # Per-client limits (SPEC §2.3, §5).
    queue_size: int = 256  # durable/error events a client may have unsent before it is dropped
    max_streams: int = 2000
    max_streams_per_ip: int = 200
    idle_probe_seconds: float = 60.0  # status probing pace when no client is connected
    # Production hardening (SPEC §5).
    write_timeout: float = 30.0  # a write making no progress this long → the client is disconnected
    max_stream_seconds: float | None = None  # recycle streams after this long (minus up to 15 % jitter)
    send_buffer: int = 128 * 1024  # SO_SNDBUF of accepted sockets: what a stuck client can pin
    certfile: str | None = None  # with keyfile: HTTPS, HTTP/2 by ALPN
    keyfile: str | None = None
    access_log: str | None = None  # "-" (stderr) or a file; query strings and tokens redacted

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
        if not 0.1 <= self.write_timeout <= 3600:
            raise ConfigError(f"write timeout must be from 0.1 to 3600 seconds, got {self.write_timeout}")
        if self.max_stream_seconds is not None and not 1 <= self.max_stream_seconds <= 7 * 86400:
            raise ConfigError(f"max stream seconds must be from 1 to 604800, got {self.max_stream_seconds}")
        if not 4096 <= self.send_buffer <= 64 * 1024 * 1024:
            raise ConfigError(f"send buffer must be from 4096 to 67108864 bytes, got {self.send_buffer}")
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("--certfile and --keyfile must be given together")

    def target(self, name: str) -> TargetSpec | None:
        for t in self.targets:
            if t.name == name:
                return t
        return None
