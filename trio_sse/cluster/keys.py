"""Where cluster mode keeps things in Redis: key names, lease tokens, owner ids. Pure.

Every key of a target shares the hash tag ``{<target>}``, so a target's keys live in one
slot: the Lua scripts touch several of them atomically, which Redis Cluster only allows
within a slot (one plain Redis, the supported deployment, does not care). Target names are
already restricted to ``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`` (``config.TargetSpec``), so they
never contain ``{`` or ``}``.

=====================================  ======  =================================================
key                                    type    what, lifetime
=====================================  ======  =================================================
``<p>:{<t>}:lease``                    string  the leader's token ``<epoch>:<owner>``; PX = lease
                                               expiry (10 s), renewed every third of it
``<p>:{<t>}:epoch``                    string  INCR counter: one value per acquisition (fencing)
``<p>:{<t>}:meta``                     hash    ``run`` (current run id), ``published`` (last
                                               ordinal in its stream), ``checkpoint`` (JSON)
``<p>:{<t>}:live``                     stream  status/progress/outage as latest values, and
                                               error and step events; capped (MAXLEN, exact)
``<p>:{<t>}:events:<run>``             stream  the run's durable events in order, one entry per
                                               ordinal; expires ``retention`` after the next run
                                               starts
=====================================  ======  =================================================

It also checks the ``--redis`` URL (``check_url``) and shows it without its password
(``display_url``): the URL is where these keys live.

Must not: talk to Redis, know about Trio, or encode events (``codec.py`` does).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from trio_sse.errors import ClusterDataError, ConfigError

DEFAULT_PREFIX = "trio-sse"
_PREFIX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")
_TARGET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_OWNER_RE = re.compile(r"[A-Za-z0-9_.-]{1,96}\Z")
_TOKEN_RE = re.compile(r"([0-9]{1,18}):([A-Za-z0-9_.-]{1,96})\Z")


def check_prefix(prefix: str) -> str:
    if not _PREFIX_RE.match(prefix):
        raise ConfigError(
            f"redis key prefix must be 1-64 letters, digits, '_', '.', ':' or '-', got {prefix!r}"
        )
    return prefix


@dataclass(frozen=True, slots=True)
class TargetKeys:
    """The key names of one target."""

    prefix: str
    target: str

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        if not _TARGET_RE.match(self.target):
            raise ConfigError(f"target name cannot be part of a redis key: {self.target!r}")

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{{self.target}}}"

    @property
    def lease(self) -> str:
        return f"{self.base}:lease"

    @property
    def epoch(self) -> str:
        return f"{self.base}:epoch"

    @property
    def meta(self) -> str:
        return f"{self.base}:meta"

    @property
    def live(self) -> str:
        return f"{self.base}:live"

    @property
    def events_prefix(self) -> str:
        """The run stream's key without the run id (the publish script builds the previous
        run's key from it to set that key's expiry)."""
        return f"{self.base}:events:"

    def events(self, run: str) -> str:
        return self.events_prefix + run


def owner_id(host: str, pid: int, nonce: str | None = None) -> str:
    """An id for this process, unique in the cluster: readable (host, pid) plus a random
    part, so a restarted process with a recycled pid is still another owner."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", host)[:48] or "host"
    nonce = nonce if nonce is not None else secrets.token_hex(6)
    owner = f"{host}-{pid}-{nonce}"
    if not _OWNER_RE.match(owner):
        raise ConfigError(f"owner id must be 1-96 letters, digits, '_', '.' or '-', got {owner!r}")
    return owner


@dataclass(frozen=True, slots=True)
class Token:
    """A lease holder's fencing token: the acquisition's epoch and the holder's owner id.
    Compared whole: the same epoch of another owner (after Redis lost its counter) is
    another token."""

    epoch: int
    owner: str

    def __str__(self) -> str:
        return f"{self.epoch}:{self.owner}"

    @classmethod
    def parse(cls, raw: str) -> Token:
        m = _TOKEN_RE.match(raw)
        if not m:
            raise ClusterDataError(f"not a lease token: {raw[:80]!r}")
        return cls(int(m.group(1)), m.group(2))


def check_url(url: str) -> str:
    """A ``--redis`` URL: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` (TLS)
    or ``unix://[[user]:password@]/path/to/socket[?db=N]``. Returns it unchanged; raises
    ConfigError naming what is wrong (without echoing a password)."""
    shown = display_url(url)
    if not url or any(c.isspace() or ord(c) < 32 for c in url):
        raise ConfigError(f"redis URL must not be empty or contain spaces, got {shown!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(f"redis URL has a bad port: {shown!r}") from None
    if parts.scheme in ("redis", "rediss"):
        if not parts.hostname:
            raise ConfigError(f"redis URL needs a host, got {shown!r}")
        if port == 0:
            raise ConfigError(f"redis URL port must be from 1 to 65535, got {shown!r}")
        db = parts.path.strip("/")
        if db and not (db.isascii() and db.isdigit() and int(db) < 1 << 16):
            raise ConfigError(f"redis URL path must be a database number, got {shown!r}")
    elif parts.scheme == "unix":
        if not parts.path:
            raise ConfigError(f"redis unix URL needs a socket path, got {shown!r}")
    else:
        raise ConfigError(f"redis URL must start with redis://, rediss:// or unix://, got {shown!r}")
    return url


def display_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable redis URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()
