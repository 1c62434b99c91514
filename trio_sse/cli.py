"""The command line: argv → ``Settings`` → run. The only module that reads argv.

Owns the argparse parsers (built from ``config.OPTIONS``, so every option's command-line,
environment and config-file spellings come from one table), the four commands (``serve``,
``simulate``, ``watch``, ``runs`` — the last handed to ``runs_cli``), turning a ``ConfigError`` into one line and exit status 2, and the
process-wide tuning of a process that is ours (``tuning.tune_process``, unless
``--no-process-tuning``). Must not: validate settings itself (``config`` does), or know how the
server is built (``server.prepare`` / ``server.serve``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from trio_sse import __version__, runs_cli
from trio_sse.config import OPTIONS, OPTIONS_BY_KEY, Option, Settings, from_mapping, int_range, settings_from, text
from trio_sse.errors import ConfigError
from trio_sse.storedb import default_db_path


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


_FORMATTER = argparse.RawDescriptionHelpFormatter

_SERVE = """Run the monitor and its web server: follow a benchmark's log (here or over SSH) and
stream it to the dashboard, curl -N, `trio-sse watch` and Python clients.

example:
  trio-sse serve --simulate                     # a simulated WAA run: http://127.0.0.1:8765
  trio-sse serve --ssh azureuser@20.1.2.3 --container winarena"""

_SIMULATE = """Write a realistic Windows Agent Arena run into a log file, at a chosen pace (to point a
monitor at it, or to test your own tools).

example:
  trio-sse simulate --log /tmp/waa_benchmark.log --tasks 10 --step-seconds 0.5"""

_RUNS = """List the runs the server has stored in its history database (newest first), or compare two
of them per domain and per task (rich tables on a terminal, plain text when piped). Needs no
running server; the database is opened read-only.

example:
  trio-sse runs --target local --limit 10
  trio-sse runs compare local:4f1c2a9b3e local:a07d55c210     # A (then) vs B (now)"""

_WATCH = """Follow a running monitor in the terminal: a progress bar per target, the current task and
step, a line per finished task; reconnects and resumes. Plain lines when piped.

example:
  trio-sse watch http://127.0.0.1:8765 --interval 2"""


def _default(o: Option) -> str:
    if o.kind == "flag" or o.default is None:
        return ""
    return f" (default: {o.default})"


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trio-sse",
        description="Live monitor for long agent benchmarks (Windows Agent Arena, OSWorld), over SSE.",
        epilog="Run 'trio-sse COMMAND --help' for a command's options.",
        formatter_class=_FORMATTER,
    )
    parser.add_argument("--version", action="version", version=f"trio-sse {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the monitor and its web server", description=_SERVE,
                           formatter_class=_FORMATTER)
    for o in OPTIONS:
        help_ = (o.help + _default(o)).replace("%", "%%")
        if o.kind == "flag":
            serve.add_argument(f"--{o.name}", action="store_true", default=None, help=f"{help_} [env {o.env}]")
        elif o.kind == "list":
            serve.add_argument(f"--{o.name}", type=_typed(o.parse), action="append", default=None,
                               help=f"{help_} [env {o.env}, space-separated]")
        else:
            serve.add_argument(f"--{o.name}", type=_typed(o.parse), default=None, help=f"{help_} [env {o.env}]")

    log_env = OPTIONS_BY_KEY["log"].env
    tasks, step = OPTIONS_BY_KEY["tasks"], OPTIONS_BY_KEY["step_seconds"]
    simulate = sub.add_parser("simulate", help="write a realistic WAA run log", description=_SIMULATE,
                              formatter_class=_FORMATTER)
    simulate.add_argument("--log", type=_typed(text), default=env.get(log_env), required=log_env not in env,
                          help=f"the log file to write (truncated first) [env {log_env}]")
    simulate.add_argument("--tasks", type=_typed(tasks.parse), default=None,
                          help=f"how many tasks{_default(tasks)} [env {tasks.env}]")
    simulate.add_argument("--step-seconds", type=_typed(step.parse), default=None,
                          help=f"seconds per agent step; 0: as fast as possible{_default(step)} [env {step.env}]")
    simulate.add_argument("--seed", type=_typed(int_range(0, 2**31)), default=0,
                          help="which run (the same seed writes the same tasks and results) (default: 0)")
    simulate.add_argument("--no-ansi", action="store_true", help="plain lines, no ANSI colour codes")
    sim_runs = OPTIONS_BY_KEY["sim_runs"]
    simulate.add_argument("--runs", type=_typed(sim_runs.parse), default=1,
                          help="runs of the same tasks, one after the other, each replacing the log, a few outcomes "
                               "changed in each later run (default: 1)")
    simulate.add_argument("--results", type=_typed(text), default=None, metavar="DIR",
                          help="also write WAA's results folder (traj.jsonl, PNG screenshots) into DIR")

    token = OPTIONS_BY_KEY["token"]
    watch = sub.add_parser("watch", help="terminal view of a running monitor", description=_WATCH,
                           formatter_class=_FORMATTER)
    watch.add_argument("url", help="base URL of the monitor, e.g. http://127.0.0.1:8765")
    watch.add_argument("--interval", type=_typed(int_range(1, 60)), default=None,
                       help="seconds between status/progress updates, 1-60 (default: 5) [env TRIO_SSE_INTERVAL]")
    watch.add_argument("--token", type=_typed(text), default=None,
                       help=f"the monitor's token, if it has one [env {token.env}]")
    watch.add_argument("--target", type=_typed(text), default=None, help="watch one target (default: all)")

    runs = sub.add_parser("runs", help="list or compare the runs in the history", description=_RUNS,
                          formatter_class=_FORMATTER)
    runs_cli.add_arguments(runs, default_db=str(default_db_path(env)))
    return parser


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    """The ``serve`` command's Settings: the options given on the command line, then the
    environment, then the config file (``trio_sse.config`` does the layering)."""
    given = {o.key: getattr(args, o.key) for o in OPTIONS if getattr(args, o.key, None) is not None}
    return settings_from(given, env)


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


async def _serve_until_signal(prepared: Any) -> None:
    import trio

    from trio_sse.server import serve

    settings: Settings = prepared.settings
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

        async def until_signal() -> None:
            async for _ in signals:
                return

        async with trio.open_nursery() as nursery:
            running = await nursery.start(lambda task_status: serve(prepared, shutdown_trigger=until_signal,
                                                                    task_status=task_status))
            names = ", ".join(f"{t.name}: {t.ssh.display + ':' if t.ssh else ''}{t.log}" for t in settings.targets)
            node = running.hub.node
            cluster = f"  cluster {node.store.url} as {node.owner}" if node is not None else ""  # no password
            print(f"trio-sse {__version__}: dashboard {running.url}/  stream {running.url}/api/benchmark-sse  "
                  f"({names}){cluster}", file=sys.stderr, flush=True)


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
    if args.command is None:  # bare `trio-sse`: say what there is
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.command == "serve":
            settings = settings_from_args(args, env)
            # asyncssh logs every channel and connection at INFO; outages are ours to report.
            logging.getLogger("asyncssh").setLevel(logging.WARNING)
            # Apprise warns about each failed delivery; the notifier reports them itself, naming
            # the destination without its secrets (alerting.on_notifier_report).
            logging.getLogger("apprise").setLevel(logging.ERROR)
            import trio

            from trio_sse.hypercorn_patch import install_error_bodies
            from trio_sse.server import prepare
            from trio_sse.tuning import tune_process

            prepared = prepare(settings)  # a bad bind, certificate or log path: one line, exit 2
            for line in _warnings(settings):  # after the real errors: a bad --host is not "no token"
                print(line, file=sys.stderr)
            install_error_bodies()  # this process is ours: JSON bodies for errors below the app
            if settings.process_tuning:  # after prepare: the app and hub are frozen with start-up
                tune_process()
            try:
                trio.run(_serve_until_signal, prepared)
            except BaseExceptionGroup as group:
                raise _sole(group) from None
            finally:
                prepared.close()
            return 0
        if args.command == "simulate":
            return _simulate(args, env)
        if args.command == "runs":
            return runs_cli.run_parsed(args, env=env)
        if args.command == "watch":
            from trio_sse.watch import main_watch

            interval = args.interval or _from_env(env, "TRIO_SSE_INTERVAL", int_range(1, 60), 5)
            token = args.token or env.get(OPTIONS_BY_KEY["token"].env)
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

    given = from_mapping({k: env[OPTIONS_BY_KEY[k].env] for k in ("tasks", "step_seconds")
                          if OPTIONS_BY_KEY[k].env in env}, origin="environment")
    tasks = args.tasks if args.tasks is not None else given.get("tasks", OPTIONS_BY_KEY["tasks"].default)
    step = args.step_seconds if args.step_seconds is not None else given.get(
        "step_seconds", OPTIONS_BY_KEY["step_seconds"].default)
    try:
        trio.run(lambda: simulate(args.log, tasks=tasks, step_seconds=step, seed=args.seed, ansi=not args.no_ansi,
                                  runs=args.runs, results_dir=args.results))
    except OSError as err:
        raise ConfigError(f"cannot write {err.filename or args.log}: {err.strerror or err}") from None
    except ValueError as err:  # a results folder the simulator did not write
        raise ConfigError(str(err)) from None
    runs = f" ({args.runs} runs, the last one left in the file)" if args.runs > 1 else ""
    print(f"trio-sse simulate: wrote {tasks} tasks to {args.log}{runs}", file=sys.stderr)
    return 0


def _from_env(env: Mapping[str, str], var: str, fn: Callable[[str], Any], default: Any) -> Any:  # noqa: D103
    if var not in env:
        return default
    try:
        return fn(env[var])
    except ValueError as err:
        raise ConfigError(f"environment variable {var} {err}") from None
