"""trio_sse.sockets on real loopback TCP connections: aborting a connection whose peer stopped
reading (``abort_peers`` by address pair, ``abort_connections`` by listening address and
``only=``) wakes the write blocked on it at once, makes its close a RST the peer sees, leaves
every other connection alone and returns how many it aborted.

Both ends live in this process: the accepted ("server") side is the one a server writes to;
the connecting ("client") side is the peer, which never reads unless a test says so. No
sleeps: readiness is the kernel's, and ``wait_all_tasks_blocked`` shows when a task is
parked on it; ``fail_after`` only guards."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import trio
import trio.testing

from trio_sse.sockets import abort_connections, abort_peers, unsent_bytes, writable

SMALL = 4096  # socket buffers: a few KB fill them (the kernel doubles the value)
GUARD = 5


@dataclass
class Conn:
    server: socket.socket  # the accepted side (ours)
    client: socket.socket  # the peer

    @property
    def pair(self) -> tuple[tuple[str, int], tuple[str, int]]:
        """(local, peer) as the server side sees them (an ASGI scope's server and client)."""
        return self.server.getsockname(), self.server.getpeername()

    def stall(self) -> None:
        """Fill the server side's send buffer: the peer's window is full, a write blocks."""
        self.server.setblocking(False)
        while True:
            try:
                self.server.send(b"x" * 65536)
            except BlockingIOError:
                break
        assert unsent_bytes(self.server) > 0 and not writable(self.server)


class Net:
    """Listeners and connections on 127.0.0.1, all closed at the end of the test."""

    def __init__(self) -> None:
        self._open: list[socket.socket] = []

    def listener(self) -> socket.socket:
        sock = self._keep(socket.socket())
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        return sock

    def connect(self, listener: socket.socket) -> Conn:
        client = self._keep(socket.socket())
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL)  # before connect: a small window
        client.connect(listener.getsockname())
        server, _ = listener.accept()
        self._keep(server).setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL)
        return Conn(server, client)

    def _keep(self, sock: socket.socket) -> socket.socket:
        self._open.append(sock)
        return sock

    def close(self) -> None:
        for sock in self._open:
            sock.close()


@pytest.fixture
def net() -> Iterator[Net]:
    n = Net()
    try:
        yield n
    finally:
        n.close()


async def read_to_the_end(sock: socket.socket) -> tuple[int, OSError | None]:
    """Read the peer side until EOF or an error: (bytes read, the error or None for EOF)."""
    tsock = trio.socket.from_stdlib_socket(sock)
    got = 0
    with trio.fail_after(GUARD):
        while True:
            try:
                chunk = await tsock.recv(65536)
            except OSError as err:
                return got, err
            if not chunk:
                return got, None
            got += len(chunk)


async def still_talks(conn: Conn) -> None:
    """A byte goes each way on ``conn`` (whose send buffer has room)."""
    server, client = trio.socket.from_stdlib_socket(conn.server), trio.socket.from_stdlib_socket(conn.client)
    with trio.fail_after(GUARD):
        await server.send(b"s")
        assert await client.recv(1) == b"s"
        await client.send(b"c")
        assert await server.recv(1) == b"c"


async def test_a_write_blocked_on_a_peer_that_stopped_reading_fails_at_once_and_the_peer_gets_a_rst(net):
    listener = net.listener()
    stuck, other = net.connect(listener), net.connect(listener)
    stuck.stall()
    writer = trio.socket.from_stdlib_socket(stuck.server)
    failed: list[OSError] = []

    async def write() -> None:
        try:
            while True:
                await writer.send(b"y" * 65536)
        except OSError as err:
            failed.append(err)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        await trio.testing.wait_all_tasks_blocked()
        assert not failed  # parked on a full send buffer, as Hypercorn's shielded send is

        assert abort_peers([stuck.pair]) == 1
        await trio.testing.wait_all_tasks_blocked()  # no time passes: the kernel woke it
        assert len(failed) == 1 and isinstance(failed[0], BrokenPipeError), failed
    writer.close()  # what the server does with a failed connection: with SO_LINGER 0, a RST

    read, error = await read_to_the_end(stuck.client)
    assert isinstance(error, ConnectionResetError), (read, error)
    await still_talks(other)  # the same listener, another peer: untouched


async def test_abort_peers_counts_what_it_aborted_and_touches_nothing_else(net):
    listener = net.listener()
    a, b, c = net.connect(listener), net.connect(listener), net.connect(listener)
    elsewhere = net.connect(net.listener())
    gone_local, gone_peer = c.pair
    c.server.close()  # a pair that no longer names a connection of ours
    c.client.close()

    assert abort_peers([]) == 0
    assert abort_peers([(gone_local, gone_peer)]) == 0
    assert abort_peers([a.pair, b.pair, (gone_local, gone_peer)]) == 2
    for aborted in (a, b):
        with pytest.raises(BrokenPipeError):
            aborted.server.send(b"x")
    await still_talks(elsewhere)


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])  # the listening address, or a wildcard
async def test_abort_connections_takes_what_only_picks_on_that_listener(net, host):
    listener = net.listener()
    port = listener.getsockname()[1]
    stuck, idle = net.connect(listener), net.connect(listener)
    stuck.stall()
    other_listener = net.listener()
    stuck_elsewhere = net.connect(other_listener)
    stuck_elsewhere.stall()

    def is_stuck(sock: socket.socket) -> bool:  # the server's own test (server._stuck)
        return unsent_bytes(sock) > 0 and not writable(sock)

    assert abort_connections((host, port), only=is_stuck) == 1
    with pytest.raises(BrokenPipeError):
        stuck.server.send(b"x")
    await still_talks(idle)  # on the same listener, but not stuck: not picked
    # stuck too, but accepted on another port: still stuck, not aborted
    assert stuck_elsewhere.server.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    assert is_stuck(stuck_elsewhere.server)

    assert abort_connections((host, port)) == 2  # without only=: every one on that port (again the stuck one)
    with pytest.raises(BrokenPipeError):
        idle.server.send(b"x")
    assert is_stuck(stuck_elsewhere.server)
