"""argv / ``TRIO_SSE_*`` environment / TOML config → ``Settings`` → run. The only module that
reads argv or the environment.

Every option also reads from ``TRIO_SSE_<NAME>`` (``--known-hosts`` → ``TRIO_SSE_KNOWN_HOSTS``);
the command line wins. Repeatable options (``--target``, ``--cors-origin``) take several values
separated by whitespace from the environment. A bad value stops start-up with one line naming
the option (or variable) and the value — never a traceback.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import math
import os
import signal
import sys
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn
from urllib.parse import parse_qs, unquote, urlsplit

from trio_sse import __version__
from trio_sse.config import DEFAULT_LOG, Settings, SSHSpec, TargetSpec
from trio_sse.errors import ConfigError

ENV_PREFIX = "TRIO_SSE_"


# ---------------------------------------------------------------- value parsers


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        s = raw.strip()
        if not (s.isascii() and s.lstrip("-").isdigit()) or not lo <= int(s) <= hi:
            raise ValueError(f"must be an integer from {lo} to {hi}, got {raw!r}")
        return int(s)

    return parse


def _float_range(lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            v = float(raw)
        except ValueError:
            raise ValueError(f"must be a number from {lo:g} to {hi:g}, got {raw!r}") from None
        if not math.isfinite(v) or not lo <= v <= hi:
            raise ValueError(f"must be a number from {lo:g} to {hi:g}, got {raw!r}")
        return v

    return parse


def _text(raw: str) -> str:
    if not raw or any(c in raw for c in "\x00\r\n"):
        raise ValueError(f"must be non-empty text without control characters, got {raw!r}")
    return raw


def _origin(raw: str) -> str:
    if raw == "*":
        return raw
    u = urlsplit(raw)
    if u.scheme not in ("http", "https") or not u.netloc or u.path not in ("", "/") or u.query:
        raise ValueError(f"must be an origin like https://example.org, got {raw!r}")
    return f"{u.scheme}://{u.netloc}"


def _bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


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
            port = _int_range(1, 65535)(rest.lstrip(":"))
    elif hostport.count(":") == 1:
        host, p = hostport.split(":")
        port = _int_range(1, 65535)(p)
    if not host or any(c.isspace() or c in "/;'\"`$\\" for c in host) or (":" in host and not _is_ipv6(host)):
        raise ConfigError(f"ssh destination must be [user@]host[:port], got {raw!r}")
    return SSHSpec(host=host, user=user or None, port=port, **kw)


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def _vnc_default(host: str) -> str:
    """SPEC §3: ``http://<host>:8006`` (an IPv6 address in brackets)."""
    return f"http://[{host}]:8006" if ":" in host else f"http://{host}:8006"


def parse_target(raw: str, *, defaults: Mapping[str, Any] | None = None) -> TargetSpec:
    """``NAME=PATH`` (local log) or ``NAME=ssh://[user@]host[:port]/PATH[?container=C&…]``."""
    name, eq, spec = raw.partition("=")
    if not eq or not name or not spec:
        raise ConfigError(f"--target must be NAME=PATH or NAME=ssh://[user@]host[:port]/PATH, got {raw!r}")
    defaults = dict(defaults or {})
    if not spec.startswith("ssh://"):
        return TargetSpec(name=name, log=spec, **_local_fields(defaults))
    u = urlsplit(spec)
    path = unquote(u.path)
    if not u.hostname or not path or path == "/":
        raise ConfigError(f"--target {name}: ssh target needs a host and a log path, got {spec!r}")
    q = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
    unknown = set(q) - {"container", "log_location", "probe", "vnc", "identity", "known_hosts"}
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
    for key in ("identity", "known_hosts"):
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
        vnc_url=q.get("vnc") or _vnc_default(u.hostname),
    )


def _local_fields(defaults: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in defaults.items() if k in ("container", "probe_url", "vnc_url")}


def load_config_file(path: str) -> dict[str, Any]:
    """A TOML file: top-level keys are option names (``port = 8765``), and ``[[targets]]``
    tables list targets (name, log, ssh, port, user, identity, known_hosts, container,
    log_location, probe, vnc)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    return data


def _targets_from_toml(
    items: Any, path: str, verify: bool, defaults: Mapping[str, Any] | None = None
) -> list[TargetSpec]:
    if not isinstance(items, list) or not all(isinstance(t, dict) for t in items):
        raise ConfigError(f"config file {path}: 'targets' must be an array of tables ([[targets]])")
    given = defaults or {}  # --identity / --known-hosts (or top-level keys) for targets naming none
    allowed = {"name", "log", "ssh", "host", "port", "user", "identity", "known_hosts", "container",
               "log_location", "probe", "vnc", "process_pattern", "guest_ip"}
    out = []
    for i, t in enumerate(items):
        unknown = set(t) - allowed
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
        out.append(
            TargetSpec(
                name=t["name"],
                log=t.get("log", DEFAULT_LOG),
                ssh=ssh,
                container=container,
                log_location=t.get("log_location", "container" if container and ssh else "host"),
                probe_url=t.get("probe"),
                vnc_url=t.get("vnc") or (_vnc_default(ssh.host) if ssh else None),
                process_pattern=t.get("process_pattern", "python.*run.py") or None,
                guest_ip=t.get("guest_ip", "20.20.20.21"),
            )
        )
    return out


# ---------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One clear line, no usage dump (SPEC §4).
        self.exit(2, f"{self.prog}: error: {message}\n")


def _typed(fn: Callable[[str], Any]) -> Callable[[str], Any]:
    def wrapper(raw: str) -> Any:
        try:
            return fn(raw)
        except (ValueError, ConfigError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    wrapper.__name__ = getattr(fn, "__name__", "value")
    return wrapper


# name → (type, default, help); "+" in the kind means repeatable.
_SERVE_OPTIONS: list[tuple[str, Callable[[str], Any] | None, Any, str]] = [
    ("host", _text, "127.0.0.1", "address to bind (a warning is printed for non-loopback without a token)"),
    ("port", _int_range(0, 65535), 8765, "port to bind (0: any free port)"),
    ("log", _text, None, f"log file or glob to follow (default {DEFAULT_LOG}; newest glob match)"),
    ("ssh", _text, None, "follow the log on [USER@]HOST[:PORT] over SSH"),
    ("identity", _text, None, "SSH identity (private key) file"),
    ("known-hosts", _text, None, "known_hosts file for SSH host key verification"),
    ("container", _text, None, "Docker container the benchmark runs in (e.g. winarena)"),
    ("log-location", _text, None, "where the log is when --container is set: host, container or stdout"),
    ("probe-url", _text, None, "WAA probe URL (default http://<guest-ip>:5000/probe over SSH)"),
    ("vnc-url", _text, None, "VNC link shown in status (default http://<host>:8006 for SSH)"),
    ("config", _text, None, "TOML config file (options and [[targets]])"),
    ("keepalive", _float_range(0.05, 3600), 15.0, "seconds of silence before a keepalive comment"),
    ("token", _text, None, "require this token (Authorization: Bearer or ?token=)"),
    ("tasks", _int_range(1, 100_000), 12, "simulated tasks (with --simulate)"),
    ("step-seconds", _float_range(0, 3600), 1.0, "seconds per simulated step (with --simulate)"),
    ("success-threshold", _float_range(0, 1), 1.0, "score at or above which a task counts as passed"),
    ("queue-size", _int_range(1, 1_000_000), 256, "frames a client may have unsent before it is dropped"),
    ("max-streams", _int_range(1, 1_000_000), 2000, "concurrent streams in total"),
    ("max-streams-per-ip", _int_range(1, 1_000_000), 200, "concurrent streams per client IP"),
    ("retry-ms", _int_range(1, 3_600_000), 3000, "the stream's retry: hint to clients, in ms"),
    ("write-timeout", _float_range(0.1, 3600), 30.0,
     "seconds a write to a client may make no progress before that client is disconnected "
     "(sockets get TCP_USER_TIMEOUT 1.25 x this + 1 s, so a vanished client is found too)"),
    ("max-stream-seconds", _float_range(1, 604_800), None,
     "end each stream after this long, minus up to 15%% jitter (clients reconnect and resume)"),
    ("certfile", _text, None, "TLS certificate (PEM); with --keyfile: HTTPS, HTTP/2 by ALPN"),
    ("keyfile", _text, None, "TLS private key (PEM)"),
    ("access-log", _text, None, "write an access log to this file ('-': stdout); tokens redacted"),
]
_SERVE_FLAGS = [
    ("simulate", "write a simulated WAA run into the log and monitor it"),
    ("no-gzip", "never compress streams"),
    ("no-process-tuning", "leave the GC and Hypercorn's write path as they are (see trio_sse.tuning)"),
    ("insecure-no-host-key-check", "do NOT verify SSH host keys (unsafe; prints a warning)"),
]
_SERVE_REPEATABLE = [
    ("target", _text, "NAME=PATH or NAME=ssh://[user@]host[:port]/PATH[?container=C] (repeatable)"),
    ("cors-origin", _origin, "allowed CORS origin (repeatable)"),
]


def _env_name(option: str) -> str:
    return ENV_PREFIX + option.upper().replace("-", "_")


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = _Parser(prog="trio-sse", description="Live monitor for long agent benchmarks, over SSE.")
    parser.add_argument("--version", action="version", version=f"trio-sse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the monitor and its web server")
    for name, fn, default, help_ in _SERVE_OPTIONS:
        serve.add_argument(f"--{name}", type=_typed(fn) if fn else str, default=None,
                           help=f"{help_} [env {_env_name(name)}]")
        serve.set_defaults(**{f"_default_{name.replace('-', '_')}": default})
    for name, help_ in _SERVE_FLAGS:
        serve.add_argument(f"--{name}", action="store_true", default=None, help=f"{help_} [env {_env_name(name)}]")
    for name, fn, help_ in _SERVE_REPEATABLE:
        serve.add_argument(f"--{name}", type=_typed(fn), action="append", default=None,
                           help=f"{help_} [env {_env_name(name)}, space-separated]")

    simulate = sub.add_parser("simulate", help="write a realistic WAA run log")
    simulate.add_argument("--log", type=_typed(_text), default=env.get(_env_name("log")), required=_env_name("log") not in env)
    simulate.add_argument("--tasks", type=_typed(_int_range(1, 100_000)), default=None)
    simulate.add_argument("--step-seconds", type=_typed(_float_range(0, 3600)), default=None)
    simulate.add_argument("--seed", type=_typed(_int_range(0, 2**31)), default=0)
    simulate.add_argument("--no-ansi", action="store_true", help="plain lines, no ANSI colour codes")

    watch = sub.add_parser("watch", help="terminal view of a running monitor")
    watch.add_argument("url", help="base URL of the monitor, e.g. http://127.0.0.1:8765")
    watch.add_argument("--interval", type=_typed(_int_range(1, 60)), default=None)
    watch.add_argument("--token", type=_typed(_text), default=None)
    watch.add_argument("--target", type=_typed(_text), default=None)
    return parser


def _option(args: argparse.Namespace, env: Mapping[str, str], name: str) -> Any:
    """Command line first, then TRIO_SSE_<NAME>, then the default."""
    attr = name.replace("-", "_")
    value = getattr(args, attr, None)
    if value is not None:
        return value
    var = _env_name(name)
    if var in env:
        for opt, fn, _default, _help in _SERVE_OPTIONS:
            if opt == name:
                try:
                    return fn(env[var]) if fn else env[var]
                except ValueError as err:
                    raise ConfigError(f"environment variable {var} {err}") from None
        for opt, _help in _SERVE_FLAGS:
            if opt == name:
                try:
                    return _bool(env[var])
                except ValueError as err:
                    raise ConfigError(f"environment variable {var} {err}") from None
        for opt, fn, _help in _SERVE_REPEATABLE:
            if opt == name:
                try:
                    return [fn(v) for v in env[var].split()]
                except ValueError as err:
                    raise ConfigError(f"environment variable {var}: {err}") from None
    return getattr(args, f"_default_{attr}", None)


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    opt = lambda name: _option(args, env, name)  # noqa: E731
    file: dict[str, Any] = {}
    if opt("config"):
        file = load_config_file(opt("config"))
    verify = not (opt("insecure-no-host-key-check") or file.get("insecure_no_host_key_check", False))

    def pick(name: str) -> Any:
        """CLI/env beat the config file, which beats the default."""
        attr = name.replace("-", "_")
        explicit = getattr(args, attr, None)
        if explicit is None and _env_name(name) not in env and attr in file:
            return file[attr]
        return opt(name)

    simulate = bool(pick("simulate"))
    log = pick("log")
    if log is None:
        log = os.path.join(tempfile.gettempdir(), "trio-sse-simulated.log") if simulate else DEFAULT_LOG
    container = pick("container")
    ssh_raw = pick("ssh")
    targets: list[TargetSpec] = []
    if ssh_raw:
        ssh = parse_ssh(ssh_raw, identity=pick("identity"), known_hosts=pick("known-hosts"), verify_host_key=verify)
        targets.append(
            TargetSpec(
                name="remote",
                log=log,
                ssh=ssh,
                container=container,
                log_location=pick("log-location") or ("container" if container else "host"),
                probe_url=pick("probe-url"),
                vnc_url=pick("vnc-url") or _vnc_default(ssh.host),
            )
        )
    defaults = {"identity": pick("identity"), "known_hosts": pick("known-hosts"), "verify_host_key": verify}
    for raw in opt("target") or []:
        targets.append(parse_target(raw, defaults=defaults))
    if "targets" in file:
        targets.extend(_targets_from_toml(file["targets"], opt("config"), verify, defaults))
    if not targets:
        targets.append(
            TargetSpec(
                name="local",
                log=log,
                container=container,
                log_location=pick("log-location") or "host",
                probe_url=pick("probe-url"),
                vnc_url=pick("vnc-url"),
            )
        )
    if simulate and targets[0].ssh is not None:
        raise ConfigError("--simulate writes a local log; it cannot be combined with an SSH target")
    for t in targets:
        if t.ssh is not None:
            _need_file(t.name, "identity file", t.ssh.identity)
            _need_file(t.name, "known_hosts file", t.ssh.known_hosts)
    for key in ("port",):
        if key in file and (not isinstance(file[key], int) or isinstance(file[key], bool)):
            raise ConfigError(f"config file: {key} must be an integer")
    return Settings(
        host=pick("host"),
        port=pick("port"),
        targets=tuple(targets),
        keepalive=pick("keepalive"),
        retry_ms=pick("retry-ms"),
        gzip=not pick("no-gzip"),
        process_tuning=not pick("no-process-tuning"),
        token=pick("token"),
        cors_origins=tuple(opt("cors-origin") or file.get("cors_origin", ()) or ()),
        success_threshold=pick("success-threshold"),
        simulate=simulate,
        sim_tasks=pick("tasks"),
        sim_step_seconds=pick("step-seconds"),
        queue_size=pick("queue-size"),
        max_streams=pick("max-streams"),
        max_streams_per_ip=pick("max-streams-per-ip"),
        write_timeout=pick("write-timeout"),
        max_stream_seconds=pick("max-stream-seconds"),
        certfile=pick("certfile"),
        keyfile=pick("keyfile"),
        access_log=pick("access-log"),
    )


def _need_file(target: str, what: str, path: str | None) -> None:
    """An SSH key or known_hosts file that cannot be read is a start-up error, not an outage
    retried forever."""
    if path is not None and not os.path.isfile(os.path.expanduser(path)):
        raise ConfigError(f"target {target}: {what} {path!r} does not exist or is not a file")


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``TRIO_SSE_*`` alone (for ``hypercorn 'trio_sse.app:create_app()'``)."""
    env = os.environ if env is None else env
    args = build_parser(env).parse_args(["serve"])
    return settings_from_args(args, env)


# ---------------------------------------------------------------- commands


def _warnings(settings: Settings) -> list[str]:
    out = []
    loopback = settings.host in ("127.0.0.1", "::1", "localhost") or settings.host.startswith("127.")
    if not loopback and settings.token is None:
        out.append(f"warning: listening on {settings.host} without --token: anyone who can reach it can watch")
    for t in settings.targets:
        if t.ssh is not None and not t.ssh.verify_host_key:
            out.append(f"warning: SSH host key of {t.ssh.display} is NOT verified (--insecure-no-host-key-check)")
    return out


async def _serve_until_signal(settings: Settings) -> None:
    import trio

    from trio_sse.server import serve

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

        async def until_signal() -> None:
            async for _ in signals:
                return

        async with trio.open_nursery() as nursery:
            running = await nursery.start(lambda task_status: serve(settings, shutdown_trigger=until_signal,
                                                                    task_status=task_status))
            names = ", ".join(f"{t.name}: {t.ssh.display + ':' if t.ssh else ''}{t.log}" for t in settings.targets)
            print(f"trio-sse {__version__}: dashboard {running.url}/  stream {running.url}/api/benchmark-sse  "
                  f"({names})", file=sys.stderr, flush=True)


def _sole(group: BaseExceptionGroup) -> BaseException:  # type: ignore[type-arg]
    """The one exception inside nested single-member groups (a start-up ConfigError raised
    inside the server's nursery), else the group itself."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, (ConfigError, KeyboardInterrupt)) else group


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    parser = build_parser(env)
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            settings = settings_from_args(args, env)
            for line in _warnings(settings):
                print(line, file=sys.stderr)
            # asyncssh logs every channel and connection at INFO; outages are ours to report.
            logging.getLogger("asyncssh").setLevel(logging.WARNING)
            import trio

            try:
                trio.run(_serve_until_signal, settings)
            except BaseExceptionGroup as group:
                raise _sole(group) from None
            return 0
        if args.command == "simulate":
            return _simulate(args, env)
        if args.command == "watch":
            from trio_sse.watch import main_watch

            interval = args.interval or int(env.get(_env_name("interval"), "5") or 5)
            token = args.token or env.get(_env_name("token"))
            return main_watch(args.url, interval=interval, token=token, target=args.target)
    except ConfigError as err:
        print(f"trio-sse {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


def _simulate(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    import trio

    from trio_sse.sources.simulate import simulate

    tasks = args.tasks if args.tasks is not None else _from_env(env, "tasks", _int_range(1, 100_000), 12)
    step = args.step_seconds if args.step_seconds is not None else _from_env(
        env, "step-seconds", _float_range(0, 3600), 1.0)
    trio.run(lambda: simulate(args.log, tasks=tasks, step_seconds=step, seed=args.seed, ansi=not args.no_ansi))
    print(f"trio-sse simulate: wrote {tasks} tasks to {args.log}", file=sys.stderr)
    return 0


def _from_env(env: Mapping[str, str], name: str, fn: Callable[[str], Any], default: Any) -> Any:
    var = _env_name(name)
    if var not in env:
        return default
    try:
        return fn(env[var])
    except ValueError as err:
        raise ConfigError(f"environment variable {var} {err}") from None
