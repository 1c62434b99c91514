"""Exceptions as WAA logs them: ``str(e)`` for ``Exception in d/id: {e}`` (run.py:259) and
``traceback.format_exc()`` for the record after it (run.py:261).

Owns: making those two texts with the real machinery — real ``requests``/``urllib3`` exception
objects (one of them from a real refused connection on the loopback), raised through frames
whose file names, line numbers and function names are upstream's call path (compiled stubs:
the frames are upstream's *coordinates*, the code in them is ours), formatted by the real
``traceback`` module. Host, port, object addresses and this machine's site-packages path are
rewritten to what the container would show (guest ``20.20.20.21:5000``, python3.9). Must not:
copy upstream code, touch the network beyond 127.0.0.1.

The exception lines at the end of a traceback depend on the installed requests/urllib3 and
Python (3.11 adds ``^^^^`` marker lines); the fixtures' expectations never do.
"""

from __future__ import annotations

import functools
import re
import socket
import sysconfig
import traceback
from collections.abc import Callable
from dataclasses import dataclass

GUEST = "20.20.20.21"
PORT = 5000
CONTAINER_SITE = "/usr/local/lib/python3.9/site-packages/"


@dataclass(frozen=True)
class Raised:
    message: str  # str(e)
    traceback: str  # traceback.format_exc(), ending with "\n"


# Upstream call paths (file, line, function), outermost first, at WAA 6d39ed8.
RUN_TEST = ("/client/run.py", 256, "test")  # lib_run_single.run_single_example(...)
LRS_RESET = ("/client/lib_run_single.py", 20, "run_single_example")  # obs = env.reset(...)
LRS_PREDICT = ("/client/lib_run_single.py", 42, "run_single_example")  # agent.predict(...)
LRS_STEP = ("/client/lib_run_single.py", 58, "run_single_example")  # env.step(...)
LRS_EVALUATE = ("/client/lib_run_single.py", 83, "run_single_example")  # env.evaluate()
ENV_RESET_WAIT = ("/client/desktop_env/envs/desktop_env.py", 267, "reset")  # self._wait_emulator()
ENV_WAIT_PROBE = ("/client/desktop_env/envs/desktop_env.py", 126, "_wait_emulator")  # get_probe()
ENV_STEP_OBS = ("/client/desktop_env/envs/desktop_env.py", 326, "step")  # self._get_obs()
ENV_OBS_WINAGENT = ("/client/desktop_env/envs/desktop_env.py", 171, "_get_obs")  # get_obs_winagent()
ENV_EVALUATE_METRIC = ("/client/desktop_env/envs/desktop_env.py", 391, "evaluate")  # self.metric(...)
CTRL_PROBE = ("/client/desktop_env/controllers/python.py", 25, "get_probe")  # requests.get(/probe)
CTRL_OBS = ("/client/desktop_env/controllers/python.py", 94, "get_obs_winagent")  # requests.get(/obs_winagent)
# Illustrative frames below upstream's own files (line numbers not checked against a version):
NAVI_PREDICT = ("/client/mm_agents/navi/agent.py", 312, "predict")
TENACITY_CALL = (CONTAINER_SITE + "tenacity/__init__.py", 336, "wrapped_f")
METRIC = ("/client/desktop_env/evaluators/metrics/general.py", 87, "check_include_exclude")


def _stub(path: str, line: int, func: str) -> Callable[..., object]:
    """A function named ``func`` whose code claims to be ``path`` and that calls its argument
    on line ``line`` (so a traceback through it shows upstream's coordinates)."""
    return _compile(path, line, func, "def {f}(_next):\n    return _next()\n")


def _raiser(path: str, line: int, func: str) -> Callable[..., object]:
    """Like :func:`_stub`, but the frame raises the exception it is given (``from`` a cause)."""
    return _compile(path, line, func, "def {f}(_exc, _cause=None):\n    raise _exc from _cause\n")


def _compile(path: str, line: int, func: str, template: str) -> Callable[..., object]:
    src = "\n" * (line - 2) + template.format(f=func)
    namespace: dict[str, object] = {}
    exec(compile(src, path, "exec"), namespace)  # noqa: S102 - our own two-line stub
    return namespace[func]  # type: ignore[return-value]


def _through(frames: list[tuple[str, int, str]], leaf: Callable[[], object]) -> Raised:
    """Call ``leaf`` through stub frames; what run.py:259/261 would log about what it raised."""
    call: Callable[[], object] = leaf
    for path, line, func in reversed(frames):
        call = functools.partial(_stub(path, line, func), call)
    try:
        call()
    except Exception as e:
        # run.py's except clause is in test() (the first stub): drop this helper's own frame.
        tb = traceback.format_exception(type(e), e, e.__traceback__.tb_next if e.__traceback__ else None)
        return Raised(_container(str(e)), _container("".join(tb)))
    raise AssertionError("the leaf did not raise")


def _raise_at(where: tuple[str, int, str], exc: BaseException, cause: BaseException | None = None) -> Callable[[], object]:
    return functools.partial(_raiser(*where), exc, cause)


_SITE = sysconfig.get_paths()["purelib"].rstrip("/") + "/"
_STDLIB = sysconfig.get_paths()["stdlib"].rstrip("/") + "/"
_ADDR = re.compile(r"0x[0-9a-f]{6,16}")


def _container(text: str) -> str:
    text = text.replace(_SITE, CONTAINER_SITE).replace(_STDLIB, "/usr/local/lib/python3.9/")
    return _ADDR.sub("0x7f3b2c1d0a90", text)


def _refusing_port() -> socket.socket:
    """A loopback port that refuses connections: bound (so nothing else can take it) but not
    listening (so the kernel answers a SYN with RST)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


def _as_guest(raised: Raised, port: int) -> Raised:
    def fix(t: str) -> str:
        return t.replace("127.0.0.1", GUEST).replace(f"port={port}", f"port={PORT}").replace(f":{port}", f":{PORT}")

    return Raised(fix(raised.message), fix(raised.traceback))


def probe_refused() -> Raised:
    """The guest server is down: ``env.reset`` → ``_wait_emulator`` → ``get_probe`` →
    ``requests.get(.../probe)`` (no try: python.py:25) → a real ``ConnectionError`` (a real
    refused connection on the loopback, renamed to the guest)."""
    import requests

    with _refusing_port() as sock:
        port = sock.getsockname()[1]
        # No proxy from the environment may take the loopback request elsewhere.
        leaf = functools.partial(requests.get, f"http://127.0.0.1:{port}/probe", proxies={"http": None})
        return _as_guest(_through([RUN_TEST, LRS_RESET, ENV_RESET_WAIT, ENV_WAIT_PROBE, CTRL_PROBE], leaf), port)


REQUESTS_SEND = (CONTAINER_SITE + "requests/adapters.py", 519, "send")  # raise ConnectionError(e, request=request)
OPENAI_REQUEST = (CONTAINER_SITE + "openai/_base_client.py", 1059, "_request")  # raise self._make_status_error_from_response(...)
TENACITY_ITER = (CONTAINER_SITE + "tenacity/__init__.py", 326, "iter")  # raise retry_exc from fut.exception()


def probe_timed_out() -> Raised:
    """The guest hangs: ``env.reset`` → ``get_probe`` → ``requests.get(.../probe)`` (no
    timeout given: the kernel's connect timeout) → ``[Errno 110] Connection timed out``."""
    import requests
    import urllib3

    conn = urllib3.connection.HTTPConnection(GUEST, PORT)
    pool = urllib3.HTTPConnectionPool(GUEST, PORT)
    reason = urllib3.exceptions.NewConnectionError(conn, "Failed to establish a new connection: [Errno 110] Connection timed out")
    exc = requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(pool, "/probe", reason))
    return _through([RUN_TEST, LRS_RESET, ENV_RESET_WAIT, ENV_WAIT_PROBE, CTRL_PROBE], _raise_at(REQUESTS_SEND, exc))


def obs_aborted() -> Raised:
    """The guest server died mid-request: ``('Connection aborted.', RemoteDisconnected(...))``."""
    import http.client

    import requests
    import urllib3

    cause = http.client.RemoteDisconnected("Remote end closed connection without response")
    exc = requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError("Connection aborted.", cause))
    return _through([RUN_TEST, LRS_STEP, ENV_STEP_OBS, ENV_OBS_WINAGENT, CTRL_OBS], _raise_at(REQUESTS_SEND, exc))


class _RateLimitError(Exception):
    """Stands in for ``openai.RateLimitError`` (openai is not a dependency of ours)."""


_RateLimitError.__module__ = "openai"
_RateLimitError.__qualname__ = _RateLimitError.__name__ = "RateLimitError"


class _RetryError(Exception):
    """Stands in for ``tenacity.RetryError`` (WAA's Navi retries the model call 30 times)."""

    def __str__(self) -> str:
        return "RetryError[<Future at 0x7f3b2c1d0a90 state=finished raised RateLimitError>]"


_RetryError.__module__ = "tenacity"
_RetryError.__qualname__ = _RetryError.__name__ = "RetryError"

RATE_LIMIT_MESSAGE = (
    "Error code: 429 - {'error': {'message': 'Rate limit reached for gpt-4o in organization org-x on tokens per "
    "min (TPM): Limit 30000, Used 29804, Requested 1711. Please try again in 3.03s.', 'type': 'tokens', "
    "'param': None, 'code': 'rate_limit_exceeded'}}"
)


def model_retry_exhausted() -> Raised:
    """The model API kept saying 429: tenacity gives up (``RetryError``, from the last
    ``RateLimitError``), raised out of ``agent.predict`` — an agent-side failure."""
    try:
        _raise_at(OPENAI_REQUEST, _RateLimitError(RATE_LIMIT_MESSAGE))()
    except _RateLimitError as e:
        last = e
    last.__traceback__ = last.__traceback__.tb_next if last.__traceback__ else None
    return _through([RUN_TEST, LRS_PREDICT, NAVI_PREDICT, TENACITY_CALL], _raise_at(TENACITY_ITER, _RetryError(), last))


def agent_bug() -> Raised:
    """The agent's own code fails on the model's answer (``IndexError``)."""
    return _through([RUN_TEST, LRS_PREDICT], _raise_at(NAVI_PREDICT, IndexError("list index out of range")))


def metric_raised() -> Raised:
    """A metric raises out of ``env.evaluate()`` (desktop_env.py:391 is outside any try)."""
    exc = TypeError("'NoneType' object is not subscriptable")
    return _through([RUN_TEST, LRS_EVALUATE, ENV_EVALUATE_METRIC], _raise_at(METRIC, exc))
