"""WAA's and OSWorld's logging setup, rebuilt with Python's real ``logging`` — and the console.

Owns: the handler layout of WAA ``client/run.py:29-66`` (+ the per-task handler of
run.py:246-251) and of OSWorld ``run_multienv.py:22-59`` (8be2a40), on a *private* logger
hierarchy (a ``logging.Manager`` of our own: same classes, format, levels and filters, but the
process-wide loggers are never touched); records made like upstream's (``makeRecord`` with
upstream's path, line and function, so ``%(module)s/%(lineno)d`` read as upstream's) with a
deterministic clock and process name; and the :class:`Console`: a real pty (``docker run -it``,
WAA's run.sh:228 when stdout is a terminal) or a pipe (``| tee``) that ``print``, the stdout log
handler and real tqdm bars write to. Must not: know what a scenario does, or the parser.

Handler layout (WAA run.py:44-65; OSWorld run_multienv.py the same without the worker id):

=========================================  ======  ========================  =================
handler                                    level   filter                    writes to
=========================================  ======  ========================  =================
``logs/normal-<worker>-<ts>.log``          INFO    none: every logger        the file the
                                                   (httpx, openai included)  monitor follows
``logs/debug-<worker>-<ts>.log``           DEBUG   none                      file
``sys.stdout`` StreamHandler               INFO    ``desktopenv`` loggers    the console
``logs/sdebug-<worker>-<ts>.log``          DEBUG   ``desktopenv`` loggers    file
``<example dir>/logs/task-<w>-<ts>.log``   DEBUG   none (one task's life)    file
=========================================  ======  ========================  =================

``print()`` goes to stdout only; tqdm to stderr only; both reach the console, never a log file.
The root logger is DEBUG (run.py:31), so DEBUG records reach the debug files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import struct
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from .sites import WAA_FORMAT, Site

FACTS_ATTR = "_upstream_facts"  # LogRecord attribute carrying the events a record should give


def created_for(when: dt.datetime) -> float:
    """The ``record.created`` whose *local* time is ``when``: logging's ``formatTime`` uses
    ``time.localtime``, so this makes ``asctime`` read ``when`` in any time zone."""
    return time.mktime(when.timetuple()) + when.microsecond / 1e6


class Sink(logging.Filter):
    """The last filter of a handler: hands the facts of the records that handler writes to
    ``add`` (it runs only if the handler's own level and filters let the record through)."""

    def __init__(self, add: Callable[[Any], None]) -> None:
        super().__init__()
        self._add = add

    def filter(self, record: logging.LogRecord) -> bool:
        for fact in getattr(record, FACTS_ATTR, ()):
            self._add(fact)
        return True


class PrivateLogging:
    """A logger hierarchy of our own, set up like upstream's."""

    def __init__(self, formatter_fmt: str = WAA_FORMAT) -> None:
        self.root = logging.RootLogger(logging.DEBUG)  # run.py:31 root_logger.setLevel(DEBUG)
        self.manager = logging.Manager(self.root)
        self.formatter = logging.Formatter(fmt=formatter_fmt)
        self.handlers: list[logging.Handler] = []

    def add(self, handler: logging.Handler, level: int, *, desktopenv_only: bool = False, sink: Sink | None = None) -> None:
        handler.setLevel(level)
        handler.setFormatter(self.formatter)
        if desktopenv_only:
            handler.addFilter(logging.Filter("desktopenv"))
        if sink is not None:
            handler.addFilter(sink)
        self.root.addHandler(handler)
        self.handlers.append(handler)

    def remove(self, handler: logging.Handler) -> None:
        self.root.removeHandler(handler)
        self.handlers.remove(handler)
        handler.close()

    def emit(
        self,
        site: Site,
        *args: Any,
        when: dt.datetime,
        process: str = "MainProcess",
        pid: int = 7,
        facts: tuple[Any, ...] = (),
    ) -> None:
        """``logging.getLogger(site.logger).<level>(site.template, *args)`` as upstream's
        process ``process`` would, at wall-clock time ``when``."""
        logger = self.manager.getLogger(site.logger)
        if not logger.isEnabledFor(site.level):
            return
        record = logger.makeRecord(site.logger, site.level, site.path, site.line, site.template, args, None, site.func)
        self._stamp(record, when, process, pid)
        setattr(record, FACTS_ATTR, facts)
        logger.handle(record)

    def handle_foreign(
        self, record: logging.LogRecord, *, when: dt.datetime, process: str, pid: int = 7, facts: tuple[Any, ...] = ()
    ) -> None:
        """A record made by a real library's logger elsewhere (httpx): re-time it and pass it
        through this hierarchy's logger of the same name."""
        self._stamp(record, when, process, pid)
        setattr(record, FACTS_ATTR, facts)
        self.manager.getLogger(record.name).handle(record)

    @staticmethod
    def _stamp(record: logging.LogRecord, when: dt.datetime, process: str, pid: int) -> None:
        record.created = created_for(when)
        record.msecs = when.microsecond // 1000
        record.relativeCreated = 0.0
        record.processName = process
        record.process = pid
        record.thread = 140000000000000 + pid
        record.threadName = "MainThread"

    def close(self) -> None:
        for handler in list(self.handlers):
            self.remove(handler)


def waa_log_paths(result_dir: Path, worker_id: int, datetime_str: str) -> dict[str, Path]:
    """run.py:44-47: ``<result_dir>/logs/{normal,debug,sdebug}-<worker>-<ts>.log``."""
    logs = result_dir / "logs"
    return {kind: logs / f"{kind}-{worker_id}-{datetime_str}.log" for kind in ("normal", "debug", "sdebug")}


class WaaLogging(PrivateLogging):
    """run.py ``setup_logging(args)`` (lines 36-65) for one worker process."""

    def __init__(
        self, result_dir: Path, worker_id: int, datetime_str: str, stdout: TextIO, *, file_sink: Sink, console_sink: Sink
    ) -> None:
        super().__init__()
        self.paths = waa_log_paths(result_dir, worker_id, datetime_str)
        self.paths["normal"].parent.mkdir(parents=True, exist_ok=True)  # run.py:42
        self.add(logging.FileHandler(self.paths["normal"], encoding="utf-8"), logging.INFO, sink=file_sink)
        self.add(logging.FileHandler(self.paths["debug"], encoding="utf-8"), logging.DEBUG)
        self.add(logging.StreamHandler(stdout), logging.INFO, desktopenv_only=True, sink=console_sink)
        self.add(logging.FileHandler(self.paths["sdebug"], encoding="utf-8"), logging.DEBUG, desktopenv_only=True)
        self._task_handler: logging.Handler | None = None

    def open_task_log(self, example_dir: Path, worker_id: int, datetime_str: str) -> None:
        """run.py:246-251: a DEBUG handler for the task's own log, removed in ``finally``."""
        (example_dir / "logs").mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(example_dir / "logs" / f"task-{worker_id}-{datetime_str}.log", encoding="utf-8")
        self.add(handler, logging.DEBUG)
        self._task_handler = handler

    def close_task_log(self) -> None:
        if self._task_handler is not None:
            self.remove(self._task_handler)
            self._task_handler = None


class OSWorldLogging(PrivateLogging):
    """OSWorld run_multienv.py:22-59 (8be2a40): ``logs/{normal,debug,sdebug}-<ts>.log`` + stdout.
    Its env processes are forked and inherit these handlers: one file, several writers."""

    def __init__(self, run_dir: Path, datetime_str: str, stdout: TextIO, *, file_sink: Sink, console_sink: Sink) -> None:
        super().__init__()
        logs = run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.paths = {kind: logs / f"{kind}-{datetime_str}.log" for kind in ("normal", "debug", "sdebug")}
        self.add(logging.FileHandler(self.paths["normal"], encoding="utf-8"), logging.INFO, sink=file_sink)
        self.add(logging.FileHandler(self.paths["debug"], encoding="utf-8"), logging.DEBUG)
        self.add(logging.StreamHandler(stdout), logging.INFO, desktopenv_only=True, sink=console_sink)
        self.add(logging.FileHandler(self.paths["sdebug"], encoding="utf-8"), logging.DEBUG, desktopenv_only=True)


# ----------------------------------------------------------------------------- real httpx records


def httpx_records(status: int, *, url: str = "https://api.openai.com/v1/chat/completions") -> list[logging.LogRecord]:
    """The record httpx itself logs for one ``POST`` answered with ``status`` (a real request
    through ``httpx.MockTransport``; the record is caught at the ``httpx`` logger)."""
    import httpx

    caught: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record)

    lg = logging.getLogger("httpx")
    handler = Catch(logging.INFO)
    saved = (lg.level, lg.propagate)
    lg.addHandler(handler)
    lg.setLevel(logging.INFO)
    lg.propagate = False
    try:
        with httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(status))) as client:
            client.post(url, json={"model": "gpt-4o"})
    finally:
        lg.removeHandler(handler)
        lg.setLevel(saved[0])
        lg.propagate = saved[1]
    return [r for r in caught if r.levelno >= logging.INFO]


# ----------------------------------------------------------------------------- console


class FakeClock:
    """A monotonically advanced clock for tqdm (its rate and elapsed fields)."""

    def __init__(self, start: float = 1_732_100_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextlib.contextmanager
def tqdm_on_fake_time(clock: FakeClock) -> Iterator[None]:
    """Real tqdm, reading ``clock`` instead of ``time.time`` and without its monitor thread
    (tqdm.std binds ``time`` at import and copies it into each bar at construction)."""
    import tqdm.std

    saved_time, saved_interval = tqdm.std.time, tqdm.std.tqdm.monitor_interval
    saved_env = {k: os.environ.pop(k) for k in ("COLUMNS", "LINES") if k in os.environ}
    tqdm.std.time = clock  # type: ignore[assignment]
    tqdm.std.tqdm.monitor_interval = 0
    try:
        yield
    finally:
        tqdm.std.time = saved_time  # type: ignore[assignment]
        tqdm.std.tqdm.monitor_interval = saved_interval
        os.environ.update(saved_env)


class Console:
    """The container's terminal as ``docker logs`` (or a ``tee``) records it.

    ``kind="pty"``: stdout and stderr are one pseudo-terminal of 80x24 (``docker run -it``), so
    the line discipline turns every ``\\n`` into ``\\r\\n``; stdout is line-buffered as for any tty.
    ``kind="pipe"``: one pipe; stdout block-buffered (WAA's StreamHandler flushes it after each
    record), stderr line-buffered. Everything written is drained into :attr:`data` after each
    write, in this thread (so the order of chunks is deterministic); a pty holds a few KiB
    between drains, so one line of a pty console must stay below that."""

    def __init__(self, kind: str = "pty") -> None:
        if kind not in ("pty", "pipe"):
            raise ValueError(f"console kind must be 'pty' or 'pipe', got {kind!r}")
        self.kind = kind
        self.data = bytearray()
        if kind == "pty":
            self._read_fd, write_fd = os.openpty()
            fcntl.ioctl(write_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
            stdout_buffering = 1
        else:
            self._read_fd, write_fd = os.pipe()
            # The console is drained between writes, in this thread; a single record longer than
            # the pipe's 64 KiB (a 70 000-character task id) would block its writer forever.
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 1 << 20)
            stdout_buffering = 8192
        os.set_blocking(self._read_fd, False)
        self._write_fd = write_fd
        self.stdout: TextIO = open(write_fd, "w", encoding="utf-8", buffering=stdout_buffering, closefd=False)  # noqa: SIM115
        self.stderr: TextIO = open(write_fd, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115

    def drain(self) -> None:
        while True:
            try:
                chunk = os.read(self._read_fd, 65536)
            except BlockingIOError:
                return
            except OSError:  # EIO: pty closed
                return
            if not chunk:
                return
            self.data += chunk

    def print(self, *args: Any) -> None:
        """``print(*args)`` to stdout, as run.py does."""
        print(*args, file=self.stdout)
        self.drain()

    def echo(self, text: str) -> None:
        """A shell ``echo`` / dockur ``info`` line (its own process writing to the terminal)."""
        self.stdout.flush()
        os.write(self._write_fd, (text + "\n").encode())
        self.drain()

    def after(self, fn: Callable[[], Any]) -> Any:
        result = fn()
        self.drain()
        return result

    def close(self) -> bytes:
        self.stdout.flush()
        self.stderr.flush()
        self.drain()
        self.stdout.close()
        self.stderr.close()
        os.close(self._write_fd)
        self.drain()
        os.close(self._read_fd)
        return bytes(self.data)
