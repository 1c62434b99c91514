"""One exception hierarchy. Each class carries the HTTP status it maps to; ``app.py`` is the
one place these become responses, ``cli.py`` the one place they become a one-line exit."""

from __future__ import annotations


class TrioSSEError(Exception):
    """Base class. ``str(err)`` is a clear sentence for a user; never contains a secret."""

    status: int = 500


class ConfigError(TrioSSEError):
    """A bad setting (CLI option, env var, config file). Stops start-up with one line."""

    status = 400


class BadRequest(TrioSSEError):
    status = 400


class Unauthorized(TrioSSEError):
    status = 401


class NotFound(TrioSSEError):
    status = 404


class TooManyStreams(TrioSSEError):
    """Per-IP stream limit reached (429) or the total one (503, ``status`` overridden)."""

    status = 429

    def __init__(self, message: str, *, status: int = 429, retry_after: int = 5) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class HistoryUnavailable(TrioSSEError):
    """The run-history database cannot answer (missing, locked, corrupt, newer schema)."""

    status = 503


class ClusterError(TrioSSEError):
    """Cluster mode (SPEC §10): something about Redis. Never escapes a supervision loop: the
    lease loop, publisher and mirror report it and retry."""

    status = 503


class RedisUnavailable(ClusterError):
    """Redis did not answer: refused, connection lost, or no reply within the timeout."""


class ClusterDataError(ClusterError):
    """Redis answered with something cluster mode did not write: a foreign value at one of
    its keys, a malformed stream entry. The message names the key and what was wrong."""


class FileGone(NotFound):
    """A file a trajectory lists is no longer on the target (deleted, a folder cleaned)."""


class ResultsUnavailable(TrioSSEError):
    """The target's results folder cannot be read now (the SSH link is down, a remote command
    failed or timed out)."""

    status = 503
