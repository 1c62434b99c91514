"""The remote shell command lines of an SSH target, and the other pure parts of the SSH source.

Owns: ``RemoteCommands`` (every command line the SSH source runs on a host, SPEC §3 "SSH
target"), the POSIX-sh *guard* that ends a command when its channel closes, the octal
spelling that keeps the process pattern off our own command line, ``parse_survey`` (what the
survey command printed), ``_tail_note`` (what a ``tail -F`` stderr line means) and
``backoff_delay`` (the reconnect schedule). Must not: import trio, asyncio, asyncssh or
anything else async, run anything, or read a clock; everything here is a function of its
arguments and is tested without SSH.

Remote tools: POSIX ``sh``, ``tail -c +N -F -s`` (GNU coreutils or BusyBox), ``head -c``,
``md5sum``, ``stat -L -c`` (GNU or BusyBox; not BSD's ``stat``), ``printf``, ``pgrep``,
``curl`` and ``docker`` — what a Linux VM and WAA's Ubuntu container have.

Quoting. Every value is ``shlex.quote``d; the process pattern is additionally written as
``printf`` octal escapes so that the command line of our own shell cannot match it (``pgrep
-a`` lines of our own probes — a concurrent ``pgrep`` sees the other's arguments — are dropped
by the probe interpretation). Each command runs under ``_guard``: it saves the channel's stdin,
starts the command in the background and waits; a watcher blocked on reading that stdin kills
the command when the channel closes (EOF). That is what ends a ``tail`` that never writes when
we close its channel. A pty (the other way to get a SIGHUP) was rejected: it merges stderr into
stdout (we need tail's stderr apart) and rewrites ``\\n`` as ``\\r\\n``. For a file inside a
container the guard runs *inside* it (``docker exec -i`` passes the EOF on), since killing a
``docker exec`` client does not kill the process it started.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from trio_sse.sources.probing import PGREP
from trio_sse.sources.workers import Match

_GLOB_CHARS = frozenset("*?[")


def backoff_delay(attempt: int, *, first: float, cap: float, rand: Callable[[], float]) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based): ``first * 2**attempt`` capped at
    ``cap``, with "equal jitter" — uniformly in the upper half, so many monitors restarted
    together do not reconnect in lockstep, yet the wait never collapses to zero."""
    base = min(cap, first * 2.0 ** min(attempt, 64))
    return base / 2 + base / 2 * rand()


def _guard(command: str) -> str:
    """A ``sh -c`` command running the *simple* command ``command`` so that it is killed when
    the channel's stdin reaches EOF (our side closed the channel, or sshd lost the client).
    ``command`` must be one simple command (so ``$!`` is its own pid); its exit status is
    the script's."""
    script = (
        "exec 3<&0 </dev/null; "
        f"{command} 3<&- & c=$!; "
        "{ read -r x <&3; kill $c; } 2>/dev/null & w=$!; "
        "wait $c; r=$?; kill $w 2>/dev/null; exit $r"
    )
    return f"sh -c {shlex.quote(script)}"


def _octal(text: str) -> str:
    """``"$(printf '\\160…')"``: ``text`` without its characters on our command line."""
    escaped = "".join(f"\\{b:03o}" for b in text.encode())
    return f"\"$(printf '{escaped}')\""


@dataclass(frozen=True, slots=True)
class RemoteCommands:
    """The shell command lines of one target (pure; tested without SSH)."""

    log: str
    container: str | None
    log_location: str  # host | container | stdout
    process_pattern: str | None
    probe_url: str

    def _in_container(self, command: str) -> str:
        assert self.container is not None
        return f"docker exec {shlex.quote(self.container)} {command}"

    @property
    def is_glob(self) -> bool:
        return self.log_location != "stdout" and any(c in _GLOB_CHARS for c in self.log)

    def follow(self, offset: int, path: str | None = None) -> str:
        """Follow ``path`` (default: the log) from byte ``offset`` (0-based; ``tail -c +N`` is
        1-based)."""
        if self.log_location == "stdout":
            assert self.container is not None
            return _guard(f"docker logs -f {shlex.quote(self.container)} 2>&1")
        quoted = shlex.quote(path or self.log)
        # GNU tail -F falls back to polling once a second for a file that did not exist when
        # it started (no inotify): new bytes would come late, and a file truncated and regrown
        # within the second would go unnoticed. So wait for the file first (a missing file is
        # normal: the benchmark has not started yet; a directory or FIFO at the path is waited
        # out the same way), and bound tail's own polling with -s.
        script = f"while [ ! -f {quoted} ]; do sleep 0.1; done; exec tail -c +{offset + 1} -F -s 0.1 -- {quoted}"
        tail = f"sh -c {shlex.quote(script)}"
        if self.log_location == "container":
            assert self.container is not None
            # The guard runs in the container; -i passes the channel's EOF on to it.
            return f"docker exec -i {shlex.quote(self.container)} {_guard(tail)}"
        return _guard(tail)

    def resume_check(self, head: int, path: str | None = None) -> str:
        """Prints ``missing`` or the file's size, a newline and its first ``head`` bytes."""
        path = shlex.quote(path or self.log)
        script = f"if [ -r {path} ]; then wc -c < {path} && head -c {head} -- {path}; else echo missing; fi"
        command = f"sh -c {shlex.quote(script)}"
        if self.log_location == "container":
            command = self._in_container(command)
        return _guard(command)

    def survey(self, checks: Sequence[Check], *, listing: bool = True) -> str:
        """One look at the log's files (SPEC §3: what the follower checks every round).

        First, for each of ``checks`` (a followed file and what was read of it), one line:
        ``C <size> <md5> <md5>`` — its size, the MD5 of its first ``head`` bytes and of its
        ``window`` bytes from ``window_start`` — or ``C missing`` when it is not a regular
        file. Then, with ``listing``: ``M <n>``, the mtime (seconds) of
        each of the ``n`` regular files matching the log path (a glob, or the one path) on
        a line each, and their names, each ended by a NUL (names may hold newlines). The
        pattern reaches the remote shell as a quoted argument; only its unquoted expansion
        (with ``IFS=``, so no word splitting) matches files — nothing in it is ever run."""
        script = (
            "p=$1; shift; "
            'while [ $# -ge 4 ]; do f=$1 hn=$2 ts=$3 tn=$4; shift 4; '
            'if [ -f "$f" ] && s=$(stat -L -c %s -- "$f") && h=$(head -c "$hn" -- "$f" | md5sum) '
            '&& t=$(tail -c "+$ts" -- "$f" | head -c "$tn" | md5sum); '
            'then echo "C $s ${h%% *} ${t%% *}"; else echo "C missing"; fi; done; '
            '[ -n "$p" ] || exit 0; '
            'IFS=; set --; for f in $p; do [ -f "$f" ] && set -- "$@" "$f"; done; '
            'echo "M $#"; [ $# -gt 0 ] || exit 0; '
            "stat -L -c %Y -- \"$@\" || exit 3; printf '%s\\000' \"$@\""
        )
        args = [self.log if listing else ""]
        for c in checks:
            args += [c.path, str(c.head), str(c.window_start + 1), str(c.window)]
        command = f"sh -c {shlex.quote(script)} sh {' '.join(shlex.quote(a) for a in args)}"
        return _guard(self._in_container(command) if self.log_location == "container" else command)

    def process(self) -> str | None:
        if self.process_pattern is None:
            return None
        command = f"{' '.join(PGREP)} {_octal(self.process_pattern)}"
        return _guard(self._in_container(command) if self.container else command)

    def inspect(self) -> str | None:
        if self.container is None:
            return None
        return _guard(f"docker inspect -f {shlex.quote('{{.State.Running}}')} {shlex.quote(self.container)}")

    def container_logs(self) -> str | None:
        if self.container is None:
            return None
        return _guard(f"docker logs --tail 200 {shlex.quote(self.container)} 2>&1")

    def waa_probe(self) -> str:
        command = f"curl -s --max-time 2 {shlex.quote(self.probe_url)}"
        return _guard(self._in_container(command) if self.container else command)


@dataclass(frozen=True, slots=True)
class Check:
    """What ``survey`` hashes for one followed file: its first ``head`` bytes and the
    ``window`` bytes from ``window_start`` (0-based)."""

    path: str
    head: int
    window_start: int
    window: int


@dataclass(frozen=True, slots=True)
class FileState:
    """A checked file now: its size and the MD5 (hex) of the bytes asked for."""

    size: int
    head: str
    window: str


@dataclass(frozen=True, slots=True)
class Survey:
    checks: tuple[FileState | None, ...]  # per check, in order; None: not a regular file now
    matches: tuple[Match, ...] | None  # the regular files matching the log (None: not asked)


def parse_survey(out: bytes, checks: int, *, listing: bool = True) -> Survey | None:
    """What ``survey`` printed, or None when it is not a whole answer (a file vanished
    between the match and its ``stat``, a tool is missing: the caller tries next round)."""
    rest = out
    states: list[FileState | None] = []
    try:
        for _ in range(checks):
            line, sep, rest = rest.partition(b"\n")
            words = line.split()
            if not sep or words[:1] != [b"C"]:
                return None
            if words[1:] == [b"missing"]:
                states.append(None)
                continue
            if len(words) != 4 or not all(len(w) == 32 for w in words[2:]):
                return None
            states.append(FileState(int(words[1]), words[2].decode("ascii"), words[3].decode("ascii")))
        if not listing:
            return Survey(tuple(states), None) if rest == b"" else None
        line, sep, rest = rest.partition(b"\n")
        words = line.split()
        if not sep or len(words) != 2 or words[0] != b"M":
            return None
        count = int(words[1])
        mtimes = []
        for _ in range(count):
            line, sep, rest = rest.partition(b"\n")
            if not sep:
                return None
            mtimes.append(float(int(line)))
    except ValueError:
        return None
    names = rest.split(b"\0")
    if names[-1] != b"" or len(names) != count + 1:
        return None
    matches = tuple(Match(n.decode("utf-8", "surrogateescape"), t) for n, t in zip(names, mtimes))
    return Survey(tuple(states), matches)


def _tail_note(line: str, offset: int) -> str | None:
    """The ``LogReset`` reason a ``tail -F`` stderr line asks for, if any."""
    if "file truncated" in line:
        return "truncated"
    if "has been replaced" in line:
        return "replaced"
    if "has appeared" in line and offset > 0:  # a new file where the read one was
        return "replaced"
    return None
