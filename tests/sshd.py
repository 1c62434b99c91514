"""A real OpenSSH ``sshd`` on a loopback port, for SSH source tests (pytest plugin).

Owns: the ``sshd`` fixture (an :class:`SSHD`), the generated keys / config / known_hosts it
uses, and the stand-in ``docker`` its sessions find on ``PATH`` (``tests/bin/docker``). It
must not know anything about trio-sse's own code.

How it works:

* ``ssh-keygen`` makes a host key, a client key and a second ("wrong") client key in a
  temporary directory; ``known_hosts`` trusts the host key for ``[127.0.0.1]:PORT``.
* ``/usr/sbin/sshd -D -e -f CONFIG`` runs in the foreground as the current user (root here:
  ``PermitRootLogin yes``), ``UsePAM no``, ``StrictModes no``, public key only, logging to
  ``sshd.log`` in the temporary directory (shown when a test fails on it).
* ``SetEnv`` gives every session ``PATH=tests/bin:…`` (so the remote shell runs the stand-in
  ``docker``) and ``TRIO_SSE_FAKE_DOCKER=<tmp>/docker`` (where the stand-in keeps its
  containers: ``<dir>/<name>/logs`` is what ``docker logs`` prints, ``running`` what
  ``docker inspect`` prints, a ``hang`` file makes every command on that container hang).
  It also gives them ``HOME=<tmp>/home``, an empty home: bash (the login shell here) sources
  ``~/.bashrc`` for every ssh command, and a developer's own (``pyenv init`` …) would make
  each remote command take 0.3-0.8 s and prepend to ``PATH``. The remote user of these tests
  is a fresh account, as on a new VM.
* Readiness: the port is polled (connect) under a bounded ``fail_after`` — no fixed sleep.
* ``await sshd.stop()`` simulates an outage: SIGKILL to the listener **and every process
  descended from it** (per-connection ``sshd`` children call ``setsid``, so killing the
  listener or its process group does not end open sessions). ``await sshd.start()`` starts it
  again on the same port with the same keys.

If ``/usr/sbin/sshd`` (or ``ssh-keygen``) is missing, tests using the fixture skip — or fail
when ``CI=true``, so CI cannot go green without them (``scripts/dev test`` installs
``openssh-server``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from trio_sse.sources.ssh import SSHOptions
from trio_sse.testing import free_port

# SSH source options for tests against this harness: quick back-off and keepalives, so outages
# and recoveries take a fraction of a second; timeouts still generous for a loaded 2-core box.
FAST = SSHOptions(
    backoff_first=0.05,
    backoff_cap=0.2,
    keepalive_interval=0.5,
    keepalive_count_max=2,
    connect_timeout=5.0,
    command_timeout=2.5,
    close_timeout=2.0,
)
SSHD_BINARY = "/usr/sbin/sshd"
BIN_DIR = Path(__file__).resolve().parent / "bin"


def _need(tool: str) -> str:
    path = tool if os.path.isabs(tool) else shutil.which(tool)
    if path and os.access(path, os.X_OK):
        return path
    reason = f"{tool} is not installed (Debian: apt-get install openssh-server openssh-client)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _keygen(path: Path) -> None:
    subprocess.run(
        [_need("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "trio-sse-test", "-f", str(path)],
        check=True,
    )


def _descendants(root: int) -> list[int]:
    """Every live process whose parent chain leads to ``root`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, ()):
            found.append(child)
            todo.append(child)
    return found


class SSHD:
    """One sshd with its keys. Attributes tests use: ``host``, ``port``, ``user``,
    ``client_key``, ``wrong_key``, ``known_hosts``, ``wrong_known_hosts``, ``docker_dir``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.host = "127.0.0.1"
        self.port = free_port()
        self.user = os.environ.get("USER") or __import__("getpass").getuser()
        self.sshd = _need(SSHD_BINARY)
        self.host_key = tmp / "host_ed25519"
        self.client_key = tmp / "client_ed25519"
        self.wrong_key = tmp / "wrong_ed25519"
        other_host_key = tmp / "other_host_ed25519"
        for key in (self.host_key, self.client_key, self.wrong_key, other_host_key):
            _keygen(key)
        (tmp / "authorized_keys").write_text((tmp / "client_ed25519.pub").read_text())
        self.known_hosts = tmp / "known_hosts"
        self.known_hosts.write_text(self._known_line(self.host_key))
        self.wrong_known_hosts = tmp / "wrong_known_hosts"
        self.wrong_known_hosts.write_text(self._known_line(other_host_key))
        self.docker_dir = tmp / "docker"
        self.docker_dir.mkdir()
        self.home = tmp / "home"  # the remote user's (empty) home: no ~/.bashrc to run
        self.home.mkdir()
        self.log = tmp / "sshd.log"
        self.config = tmp / "sshd_config"
        path = f"{BIN_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        self.config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {self.host}",
                    f"HostKey {self.host_key}",
                    f"PidFile {tmp / 'sshd.pid'}",
                    f"AuthorizedKeysFile {tmp / 'authorized_keys'}",
                    "StrictModes no",
                    "UsePAM no",
                    "PermitRootLogin yes",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "AllowTcpForwarding no",
                    "X11Forwarding no",
                    "PrintMotd no",
                    "MaxStartups 100",
                    "LogLevel VERBOSE",
                    f"SetEnv PATH={path} HOME={self.home} TRIO_SSE_FAKE_DOCKER={self.docker_dir}",
                    "",
                ]
            )
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def _known_line(self, key: Path) -> str:
        kind, blob = Path(f"{key}.pub").read_text().split()[:2]
        return f"[{self.host}]:{self.port} {kind} {blob}\n"

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def container(self, name: str, *, logs: bytes = b"", running: str = "true") -> Path:
        """Create a stand-in container ``name``; returns its directory."""
        path = self.docker_dir / name
        path.mkdir(exist_ok=True)
        (path / "logs").write_bytes(logs)
        (path / "running").write_text(running + "\n")
        return path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    async def start(self) -> None:
        assert not self.running, "sshd is already running"
        if os.geteuid() == 0:
            # Privilege separation directory (normally made by the Debian service unit).
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.sshd, "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        with trio.fail_after(10):
            while True:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"sshd exited with {self._proc.returncode}:\n{self.log.read_text()}")
                try:
                    stream = await trio.open_tcp_stream(self.host, self.port)
                except OSError:
                    await trio.sleep(0.01)  # polling interval of the readiness check
                    continue
                await stream.aclose()
                return

    async def stop(self) -> None:
        """Kill sshd and every session it runs (an outage). Idempotent."""
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        with trio.fail_after(10):
            # Freeze the tree first (a stopped process cannot fork), collect it until it stops
            # growing, then kill it all: no session can survive or slip out by reparenting.
            frozen: set[int] = set()
            todo = [proc.pid]
            while todo:
                for pid in todo:
                    _signal(pid, signal.SIGSTOP)
                frozen.update(todo)
                todo = [p for root in frozen for p in _descendants(root) if p not in frozen]
            for pid in frozen:
                _signal(pid, signal.SIGKILL)
            while proc.poll() is None or any(_alive(p) for p in frozen - {proc.pid}):
                await trio.sleep(0.01)  # polling the kernel's reaping, bounded above

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """sshd and all its sessions stop (SIGSTOP) and go on (SIGCONT) after the block: the
        TCP connections stay open but nothing answers — a dead link, for keepalive tests."""
        assert self._proc is not None
        pids = [self._proc.pid, *_descendants(self._proc.pid)]
        for pid in pids:
            _signal(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                _signal(pid, signal.SIGCONT)

    def sessions(self) -> list[int]:
        """Pids of the processes sshd currently runs (sessions and their commands)."""
        return _descendants(self._proc.pid) if self._proc else []

    def connections(self) -> int:
        """Client connections sshd serves now: the listener forks one child per connection
        (OpenSSH 9.x; its session processes and commands are that child's descendants)."""
        if self._proc is None:
            return 0
        listener = self._proc.pid
        return sum(1 for pid in _descendants(listener) if _parent(pid) == listener)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
async def sshd(tmp_path: Path) -> AsyncIterator[SSHD]:
    server = SSHD(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
