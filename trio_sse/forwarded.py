"""The client's address behind a reverse proxy: ``X-Forwarded-For`` / ``Forwarded`` (RFC 7239),
believed only from proxies the operator trusts (``--forwarded-allow-ips``, the convention of
gunicorn, uvicorn and Hypercorn).

Owns ``client_address`` (pure: the peer's address, the request's headers and the trusted
networks in → the client's address out) and ``ForwardedFor``, a plain ASGI middleware that
applies it to every HTTP request before the app sees it. The connection's real peer stays in
the scope under ``PEER_KEY`` (the write watchdog finds the socket to abort by it); the
forwarded address becomes ``scope["client"]`` — what the per-IP limit counts, what the access
log prints and what ``/metrics`` sees. Must not: trust a header from anyone else (a client
could then pick its own address and dodge the per-IP limit).

The rule: when the TCP peer is trusted, walk the forwarded addresses from the right (the
nearest proxy's view first), skipping trusted proxies; the first untrusted address is the
client. An entry that is not an IP address (``unknown``, an obfuscated ``_node``, junk) stops
the walk: the address of the last trusted hop is used instead — never a guess.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

PEER_KEY = "trio_sse.peer"
_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_Net = ipaddress.IPv4Network | ipaddress.IPv6Network


class Trusted:
    """The trusted proxies: networks, or everyone (``*``)."""

    __slots__ = ("_any", "_nets")

    def __init__(self, items: Iterable[str]) -> None:
        items = list(items)
        self._any = "*" in items
        self._nets: list[_Net] = [ipaddress.ip_network(i, strict=False) for i in items if i != "*"]

    def __bool__(self) -> bool:
        return self._any or bool(self._nets)

    def __contains__(self, ip: object) -> bool:
        if self._any:
            return True
        addr = _ip(ip) if isinstance(ip, str) else None
        return addr is not None and any(addr in net for net in self._nets)


def _ip(text: str) -> _IP | None:
    text = text.strip()
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _forwarded_for(value: str) -> list[str]:
    """The ``for=`` node of each element of a ``Forwarded`` header (RFC 7239 §4), as text:
    quotes, brackets and a port removed (``"[2001:db8::1]:4711"`` → ``2001:db8::1``)."""
    out = []
    for element in value.split(","):
        node = None
        for pair in element.split(";"):
            key, _, raw = pair.strip().partition("=")
            if key.strip().lower() == "for":
                node = raw.strip().strip('"')
        if node is None:
            out.append("")
            continue
        if node.startswith("["):
            node = node[1 : node.find("]")] if "]" in node else ""
        elif node.count(":") == 1:  # IPv4 with a port
            node = node.split(":")[0]
        out.append(node)
    return out


def client_address(peer: str, headers: Sequence[tuple[bytes, bytes]], trusted: Trusted) -> str:
    """The client's address for a request from ``peer`` (see the module docstring)."""
    if not trusted or peer not in trusted:
        return peer
    forwarded: list[str] = []
    xff: list[str] = []
    for name, value in headers:
        lname = name.lower()
        if lname == b"forwarded":
            forwarded += _forwarded_for(value.decode("latin-1"))
        elif lname == b"x-forwarded-for":
            xff += [part.strip() for part in value.decode("latin-1").split(",")]
    hops = forwarded or xff  # RFC 7239's header, when a proxy sends it, is the standard one
    client = peer
    for hop in reversed(hops):
        addr = _ip(hop)
        if addr is None:
            break  # unknown / obfuscated / junk: keep the last trusted hop's address
        client = str(addr)
        if client not in trusted:
            break
    return client


class ForwardedFor:
    """ASGI middleware applying ``client_address`` to HTTP and WebSocket scopes."""

    def __init__(self, app: Any, trusted: Iterable[str]) -> None:
        self.app = app
        self.trusted = Trusted(trusted)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.trusted and scope.get("type") in ("http", "websocket"):
            peer = scope.get("client")
            if isinstance(peer, (tuple, list)) and len(peer) >= 2 and isinstance(peer[0], str):
                ip = client_address(peer[0], scope.get("headers", ()), self.trusted)
                if ip != peer[0]:
                    # In place: Hypercorn's access log reads this very scope after the request.
                    scope[PEER_KEY] = (peer[0], peer[1])
                    scope["client"] = (ip, 0)
        await self.app(scope, receive, send)
