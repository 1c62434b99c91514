"""The server's own TCP sockets: listening sockets made to give up on stuck peers, and a way
to abort one of this process's accepted connections from the outside.

Why this module exists: Hypercorn's trio worker shields every socket write from cancellation
(``TCPServer.protocol_send``), so a client that stopped reading can hold a write — and with it
its request task and the server's shutdown — for as long as the kernel keeps the connection.
Two ways out, both here:

* ``listen_socket``: ``TCP_USER_TIMEOUT`` (Linux) on the listening socket, inherited by every
  accepted socket, makes the kernel fail a connection whose sent data stays unacknowledged
  for that long — a full receive window (zero-window probes answered, nothing read) counts,
  and so does a peer whose network vanished. The failing write raises, Hypercorn closes.
  Modest ``SO_SNDBUF`` bounds the kernel memory a stuck peer can pin; TCP keepalive finds a
  vanished peer on a connection that is otherwise silent.
* ``abort_connections``: ``shutdown(SHUT_RDWR)`` on a duplicate of the connection's fd wakes
  the shielded write at once (EPIPE → ``BrokenResourceError``), and ``SO_LINGER`` 0 makes
  Hypercorn's close send RST and free the unsent data. Connections are found in
  ``/proc/self/fd`` (``/dev/fd`` elsewhere) by their addresses.

No Trio, no Hypercorn here: plain sockets and file descriptors.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import stat
import struct
import termios
from collections.abc import Callable, Iterable, Iterator

__all__ = [
    "SEND_BUFFER",
    "abort_connections",
    "abort_peers",
    "connection_sockets",
    "listen_socket",
    "tune_listeners",
    "unsent_bytes",
    "writable",
]

# Requested SO_SNDBUF (the kernel doubles it for bookkeeping). Enough for a dashboard's replay
# and static files at WAN speeds; it bounds what a peer that stopped reading can pin.
SEND_BUFFER = 128 * 1024
KEEPALIVE_IDLE = 15  # seconds of silence before the first TCP keepalive probe
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3
_FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
_LINGER_ZERO = struct.pack("ii", 1, 0)

Address = tuple[str, int]


def _tune(sock: socket.socket, user_timeout: float | None, send_buffer: int | None) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    if user_timeout is not None and hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, max(1, round(user_timeout * 1000)))
    if send_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)


def listen_socket(
    host: str,
    port: int,
    *,
    user_timeout: float | None,
    send_buffer: int | None = SEND_BUFFER,
    backlog: int = 1024,
) -> socket.socket:
    """A bound, listening, non-blocking TCP socket whose accepted sockets inherit
    ``TCP_USER_TIMEOUT`` (``user_timeout`` seconds), keepalive and ``SO_SNDBUF``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, type_, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _tune(sock, user_timeout, send_buffer)
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def tune_listeners(*, user_timeout: float | None, send_buffer: int | None = SEND_BUFFER) -> int:
    """Give every listening TCP socket of this process the options of ``listen_socket``
    (accepted sockets inherit them). For servers whose sockets someone else made (Hypercorn's
    own CLI). Returns how many were tuned."""
    count = 0
    for fd in _socket_fds():
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        with sock:
            try:
                if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
                    continue
                if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                    continue
                _tune(sock, user_timeout, send_buffer)
            except OSError:
                continue
            count += 1
    return count


def _socket_fds() -> Iterator[int]:
    try:
        names = os.listdir(_FD_DIR)
    except OSError:
        return
    for name in names:
        try:
            fd = int(name)
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                yield fd
        except (ValueError, OSError):
            continue  # not an fd any more (the listing's own fd, a race with a close)


def _key(addr: tuple) -> tuple[str, int]:  # type: ignore[type-arg]
    host = addr[0][7:] if addr[0].startswith("::ffff:") else addr[0]
    return host, int(addr[1])


def _wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


def connection_sockets() -> Iterator[tuple[socket.socket, Address, Address]]:
    """Duplicates of this process's connected TCP sockets, with their local and peer
    addresses. The caller closes each (closing a duplicate leaves the connection alone)."""
    for fd in _socket_fds():
        try:
            dup = os.dup(fd)
        except OSError:
            continue
        try:
            sock = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)
            continue
        try:
            if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
                raise OSError
            local, peer = _key(sock.getsockname()), _key(sock.getpeername())  # a listener raises
        except OSError:
            sock.close()
            continue
        yield sock, local, peer


def unsent_bytes(sock: socket.socket) -> int:
    """Bytes in the socket's send queue not yet acknowledged by the peer (Linux SIOCOUTQ)."""
    buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    return int(struct.unpack("i", buf)[0])


def writable(sock: socket.socket) -> bool:
    """Whether the kernel would take more data now (a blocked writer waits for this)."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLOUT)
    return bool(poller.poll(0))


def _abort(sock: socket.socket) -> bool:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        return False
    return True


def abort_connections(local: Address, *, only: Callable[[socket.socket], bool] | None = None) -> int:
    """Abort this process's connections accepted on ``local`` (a wildcard host matches any)
    for which ``only`` holds: wake any write blocked on them, make their close a RST.
    Returns how many were aborted."""
    host, port = _key(local)
    count = 0
    for sock, here, _peer in connection_sockets():
        with sock:
            if here[1] == port and (_wildcard(host) or here[0] == host) and (only is None or only(sock)):
                count += _abort(sock)
    return count


def abort_peers(pairs: Iterable[tuple[Address, Address]]) -> int:
    """Abort the connections named by ``(local, peer)`` address pairs (as an ASGI scope's
    ``server`` and ``client``), in one pass over the fds. Returns how many were aborted."""
    wanted = {(_key(local), _key(peer)) for local, peer in pairs}
    count = 0
    if not wanted:
        return 0
    for sock, here, peer in connection_sockets():
        with sock:
            if (here, peer) in wanted:
                count += _abort(sock)
    return count
