"""trio_sse.forwarded.client_address, the pure rule (a table), and the option's junk values.
The same rule through a real nginx is in test_proxy.py."""

from __future__ import annotations

import pytest

from trio_sse.config import networks
from trio_sse.forwarded import Trusted, client_address

PROXY = ["127.0.0.1", "10.0.0.0/8"]


def h(**headers: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]


@pytest.mark.parametrize(
    ("peer", "headers", "trusted", "client"),
    [
        ("127.0.0.1", h(x_forwarded_for="203.0.113.7"), PROXY, "203.0.113.7"),
        ("127.0.0.1", h(x_forwarded_for="203.0.113.7, 10.1.2.3"), PROXY, "203.0.113.7"),  # a second proxy
        ("127.0.0.1", h(x_forwarded_for="1.1.1.1, 203.0.113.7"), PROXY, "203.0.113.7"),  # a spoofed first hop
        ("198.51.100.9", h(x_forwarded_for="203.0.113.7"), PROXY, "198.51.100.9"),  # untrusted peer: ignored
        ("127.0.0.1", h(), PROXY, "127.0.0.1"),  # nothing forwarded
        ("127.0.0.1", h(x_forwarded_for="203.0.113.7"), [], "127.0.0.1"),  # no option: nobody trusted
        ("198.51.100.9", h(x_forwarded_for="203.0.113.7"), ["*"], "203.0.113.7"),
        ("127.0.0.1", h(forwarded='for="[2001:db8:cafe::17]:4711";proto=https'), PROXY, "2001:db8:cafe::17"),
        ("127.0.0.1", h(forwarded="for=192.0.2.60:8080, for=10.0.0.2", x_forwarded_for="9.9.9.9"), PROXY,
         "192.0.2.60"),  # RFC 7239's header wins
        ("127.0.0.1", h(forwarded="for=unknown"), PROXY, "127.0.0.1"),  # not an address: no guess
        ("127.0.0.1", h(forwarded="for=_hidden, for=10.0.0.2"), PROXY, "10.0.0.2"),
        ("127.0.0.1", h(x_forwarded_for="junk; rm -rf /"), PROXY, "127.0.0.1"),
        ("127.0.0.1", h(x_forwarded_for=""), PROXY, "127.0.0.1"),
        ("::ffff:127.0.0.1", h(x_forwarded_for="::ffff:203.0.113.7"), PROXY, "203.0.113.7"),
    ],
)
def test_client_address(peer, headers, trusted, client):
    assert client_address(peer, headers, Trusted(trusted)) == client


@pytest.mark.parametrize("raw", ["", ",", "1.2.3.4,banana", "300.1.1.1", "10.0.0.0/33", "*x"])
def test_junk_option_values_are_refused(raw):
    with pytest.raises(ValueError, match="IP addresses or networks"):
        networks(raw)


def test_option_values():
    assert networks("127.0.0.1, 10.0.0.0/8") == ("127.0.0.1", "10.0.0.0/8")
    assert networks("*") == ("*",)
