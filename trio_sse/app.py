"""Quart-Trio routes (SPEC §1): the one place errors become HTTP responses.

``create_app(hub)`` is a factory; nothing is global. ``server.serve`` builds the hub and runs
its background work (monitors, watchdog) itself. Called with no hub — Hypercorn's own CLI,
``hypercorn -k trio trio_sse.asgi:app`` (or the older ``'trio_sse.app:create_app()'``) — the
app builds a hub from ``TRIO_SSE_*`` environment variables and runs that work in its own
lifespan (``_standalone``), with what Hypercorn lets an app do of ``trio-sse serve``'s
hardening: the same limits and write watchdog, and the listening sockets' keepalive /
``TCP_USER_TIMEOUT`` / send buffer set at start-up. Must not: import the server or the CLI.
"""

from __future__ import annotations

import csv
import hmac
import io
import os
import random
import re
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import trio
from quart import Response, request
from quart.wrappers.response import ResponseBody
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from trio_sse.config import is_target_name, normalise_origin, settings_from_env
from trio_sse.errors import BadRequest, NotFound, ResultsUnavailable, TooManyStreams, TrioSSEError, Unauthorized
from trio_sse.storedb import LIST_LIMIT_MAX, RunRow
from trio_sse.forwarded import PEER_KEY, ForwardedFor
from trio_sse.hub import Hub
from trio_sse.metrics import render as render_metrics
from trio_sse.model import TaskComplete, dumps
from trio_sse.sockets import tune_listeners
from trio_sse.stream import EventStream, accepts_gzip, parse_interval
from trio_sse.trajectory import safe_component, screenshot_url, steps_payload

MAX_LAST_EVENT_ID = 4096
# Request line plus headers. Hypercorn/h11 enforce this only on a head still incomplete after
# one read (up to 64 KiB arrive at once), so the app checks the parsed head too.
MAX_REQUEST_HEAD = 16 * 1024
LIFETIME_JITTER = 0.15  # --max-stream-seconds: each stream lives 85-100 % of it (spread reconnects)
MAX_STATIC_NAME = 128  # bytes; our static files have short names (a filesystem allows 255)
RUNS_LIMIT = 100  # /api/runs: newest 100 by default (all 10 000 at once take ~170 ms: docs/history.md)
MAX_RUNS_OFFSET = 10**9
HISTORY_OFF = "the run history is off (this server runs with --db none)"
MAX_TASK_ID = 512  # bytes of a task id in a URL (WAA's are ~45; the parser cuts at 256)
FILE_CHUNK = 64 * 1024  # a served file goes out in pieces of this size
FILE_MAX_AGE = 86400  # a trajectory's files never change (their names carry their step and time)

# What a trajectory lists (trajectory.listed_name: WAA's save_dict and OSWorld's screenshots).
_FILE_TYPES = {
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".npy": "application/octet-stream",
}

_STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}

# The dashboard asks for the token when a person opens it without one: a plain form that
# reloads the page with ?token= (the dashboard then passes it on to the stream and its files).
_TOKEN_PAGE = """<!doctype html><meta charset=utf-8><title>trio-sse: token needed</title>
<meta name=viewport content="width=device-width,initial-scale=1">
<style>body{font:16px system-ui,sans-serif;margin:3em auto;max-width:30em;padding:0 1em}
input{font:inherit;padding:.3em;width:100%;box-sizing:border-box}button{font:inherit;margin-top:.6em}</style>
<h1>trio-sse</h1><p>This monitor needs its token (the server's <code>--token</code>).</p>
<form method=get action="/"><label>Token <input type=password name=token autocomplete=current-password
autofocus required></label><button type=submit>Open the dashboard</button></form>"""

_FALLBACK_PAGE = """<!doctype html><meta charset=utf-8><title>trio-sse</title>
<h1>trio-sse</h1><p>Stream: <a href="/api/benchmark-sse">/api/benchmark-sse</a></p>"""


class _StreamBody(ResponseBody):
    """Adapts an ``EventStream`` to Quart's response-body protocol (enter, iterate, exit)."""

    def __init__(self, stream: EventStream) -> None:
        self._stream = stream

    async def __aenter__(self) -> EventStream:
        return await self._stream.__aenter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        await self._stream.__aexit__(exc_type, exc, tb)


class _FileBody(ResponseBody):
    """A file served from an open descriptor in pieces (never held whole in memory); the
    descriptor is closed however the response ends. A local regular file answers from the page
    cache, so each bounded ``pread`` runs on the Trio thread (see ``sources/local.py``)."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size
        self._offset = 0

    async def __aenter__(self) -> _FileBody:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __aiter__(self) -> _FileBody:
        return self

    async def __anext__(self) -> bytes:
        if self._fd < 0 or self._offset >= self._size:
            raise StopAsyncIteration
        data = os.pread(self._fd, min(FILE_CHUNK, self._size - self._offset), self._offset)
        if not data:  # shorter than it was at open: end here (the client sees a short body)
            raise StopAsyncIteration
        self._offset += len(data)
        return data


class _DisconnectAfterResponse:
    """ASGI middleware: once the response's last body message is being sent, withhold the
    server's ``http.disconnect`` from the app.

    Why: Hypercorn reports the stream closed (``http.disconnect``) from *inside* the app's
    final send, and Quart-Trio cancels the request's nursery on that message — so the rest
    of that send, Hypercorn closing the connection (``Connection: close``, or any response
    ending after shutdown began) or re-arming its keep-alive timer, is cancelled half-way and
    the connection stays open until the graceful timeout (measured: 5 s per shutdown).
    Held back, the app's own request task finishes the send and then ends the request.
    A disconnect *before* the response is complete (a client leaving a stream) still goes
    through at once."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        finished = False

        async def send_(message: Any) -> None:
            nonlocal finished
            if message.get("type") == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        async def receive_() -> Any:
            message = await receive()
            if finished and message.get("type") == "http.disconnect":
                await trio.sleep_forever()  # the request task ends the request itself
            return message

        await self.app(scope, receive_, send_)


class _RefuseWebSockets:
    """ASGI middleware: this server has no WebSocket route. An upgrade request gets a JSON
    error — 401 without the token (when one is set), else 404 — through the ASGI WebSocket
    denial response (Hypercorn has it), or a plain close where a server lacks it. Never
    Quart's own path: its error handlers have no request context for a WebSocket (a 500 and a
    traceback per request)."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "websocket":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        extra: list[tuple[bytes, bytes]] = []
        path = str(scope.get("path", ""))[:200]
        if self.token is not None and not token_ok(self.token, headers.get("authorization"), (query.get("token") or [None])[-1]):
            status, message = 401, "a valid token is required (Authorization: Bearer <token> or ?token=)"
            extra = [(b"www-authenticate", b'Bearer realm="trio-sse"')]
        else:
            status, message = 404, f"no WebSocket route: {path} (the stream is Server-Sent Events: GET /api/benchmark-sse)"
        message_in = await receive()  # websocket.connect
        if message_in.get("type") != "websocket.connect":
            return
        if "websocket.http.response" in scope.get("extensions", {}):
            body = dumps({"error": message}).encode()
            await send({
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store"),
                            (b"content-length", str(len(body)).encode()), *extra],
            })  # fmt: skip
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})


CSV_COLUMNS = (
    "target", "task_id", "domain", "success", "score", "failure_kind", "error", "steps", "worker",
    "started_at", "finished_at", "duration_s", "instruction",
)  # fmt: skip


def results_csv(payloads: list[dict[str, Any]]) -> str:
    """Task results as CSV (``/api/tasks?format=csv``). A cell that a spreadsheet would run as
    a formula (``=``, ``+``, ``-``, ``@`` first) is prefixed with ``'``: log text is data."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for p in payloads:
        row = []
        for key in CSV_COLUMNS:
            value = p.get(key)
            cell = "" if value is None else str(value)
            if cell[:1] in ("=", "+", "-", "@", "\t", "\r") and not isinstance(value, (int, float)):
                cell = "'" + cell
            row.append(cell)
        writer.writerow(row)
    return buf.getvalue()


def token_ok(token: str, authorization: str | None, query_token: str | None) -> bool:
    """Whether a request carries ``token`` (``Authorization: Bearer`` or ``?token=``),
    compared in constant time."""
    supplied = None
    auth = authorization or ""
    if auth[:7].lower() == "bearer ":
        supplied = auth[7:].strip()
    elif query_token is not None:
        supplied = query_token
    return supplied is not None and hmac.compare_digest(supplied.encode(), token.encode())


def _stream_headers(resp: Response, gzip: bool) -> Response:
    h = resp.headers
    h["Content-Type"] = "text/event-stream; charset=utf-8"
    h["Cache-Control"] = "no-cache, no-transform" if gzip else "no-cache"
    h["X-Accel-Buffering"] = "no"
    if gzip:
        h["Content-Encoding"] = "gzip"
    h["Vary"] = "Accept-Encoding"
    return resp


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    resp = Response(dumps(obj), status=status, content_type="application/json")
    resp.headers["Cache-Control"] = "no-store"
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def create_app(hub: Hub | None = None) -> QuartTrio:
    """The app serving ``hub``. Without one: see ``_standalone`` (Hypercorn's own CLI)."""
    if hub is None:
        return _standalone()
    settings = hub.settings
    app = QuartTrio(__name__, static_folder=None)
    # Outermost first: the forwarded client address (trusted proxies only), no WebSockets,
    # then Quart with the disconnect fix.
    app.asgi_app = ForwardedFor(  # type: ignore[method-assign]
        _RefuseWebSockets(_DisconnectAfterResponse(app.asgi_app), settings.token), settings.forwarded_allow_ips
    )
    app.config["RESPONSE_TIMEOUT"] = None  # streams are endless; see also response.timeout
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.extensions["trio_sse.hub"] = hub

    # ------------------------------------------------------------ auth, CORS, errors

    def _check_token() -> None:
        if settings.token is None or request.path == "/healthz":
            return
        if not token_ok(settings.token, request.headers.get("Authorization"), request.args.get("token")):
            raise Unauthorized("a valid token is required (Authorization: Bearer <token> or ?token=)")

    any_origin = "*" in settings.cors_origins

    def _allowed_origin() -> str | None:
        """The Access-Control-Allow-Origin for this request's Origin, if it may have one."""
        raw = request.headers.get("Origin")
        if not raw or not settings.cors_origins:
            return None
        if any_origin:  # only without a token (config refuses '*' with one)
            return "*"
        origin = normalise_origin(raw)
        return raw if origin is not None and origin in settings.cors_origins else None

    @app.before_request
    async def _before() -> Response | None:
        head = len(request.scope.get("raw_path", b"")) + len(request.scope.get("query_string", b""))
        head += sum(len(name) + len(value) + 4 for name, value in request.scope.get("headers", ()))
        if head > MAX_REQUEST_HEAD:
            return _json({"error": f"request headers too large (over {MAX_REQUEST_HEAD} bytes)"}, 431)
        if "content-length" in request.headers and "transfer-encoding" in request.headers:
            # RFC 9112 §6.1: such a request may be an attempt at request smuggling; a server
            # MUST close the connection after responding to it.
            return _json(
                {"error": "a request must not have both Content-Length and Transfer-Encoding"},
                400,
                {"Connection": "close"},
            )
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and origin:
            allowed = _allowed_origin()
            if allowed is None:
                return _json({"error": "origin not allowed"}, 403)
            resp = Response("", status=204)
            resp.headers["Access-Control-Allow-Origin"] = allowed
            resp.headers["Access-Control-Allow-Methods"] = "GET, OPTIONS"
            resp.headers["Access-Control-Allow-Headers"] = "Authorization, Last-Event-ID, Cache-Control"
            resp.headers["Access-Control-Max-Age"] = "600"
            resp.headers["Vary"] = "Origin"
            return resp
        _check_token()
        return None

    @app.after_request
    async def _after(resp: Response) -> Response:
        allowed = _allowed_origin()
        if allowed is not None:
            resp.headers["Access-Control-Allow-Origin"] = allowed
            resp.headers.add("Vary", "Origin")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        # A dashboard opened as /?token=… must not hand its URL to anyone in a Referer.
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        return resp

    @app.errorhandler(TrioSSEError)
    async def _our_error(err: TrioSSEError) -> Response:
        headers = {}
        if isinstance(err, TooManyStreams):
            headers["Retry-After"] = str(err.retry_after)
        if isinstance(err, Unauthorized):
            headers["WWW-Authenticate"] = 'Bearer realm="trio-sse"'
            if request.path == "/" and "text/html" in request.headers.get("Accept", ""):
                # A person opened the dashboard without ?token=: ask for it (never echo it).
                resp = Response(_TOKEN_PAGE, status=401, content_type="text/html; charset=utf-8")
                resp.headers["Cache-Control"] = "no-store"
                resp.headers.update(headers)
                return resp
        return _json({"error": str(err)}, err.status, headers)

    @app.errorhandler(HTTPException)
    async def _http_error(err: HTTPException) -> Response:
        code = err.code or 500
        text = {404: "no such route", 405: "method not allowed"}.get(code, err.name.lower())
        return _json({"error": f"{text}: {request.method} {request.path}"}, code)

    # ------------------------------------------------------------ routes

    def _selected_monitors() -> list[Any]:
        name = request.args.get("target")
        if name is None:
            return list(hub.monitors.values())
        monitor = hub.monitors.get(name)
        if monitor is None:
            shown = name if len(name) <= 64 else name[:64] + "…"
            raise NotFound(f"unknown target {shown!r}; configured: {', '.join(hub.monitors)}")
        return [monitor]

    @app.get("/api/benchmark-sse")
    async def benchmark_sse() -> Response:
        try:
            interval = parse_interval(request.args.get("interval"))
        except ValueError as err:
            raise BadRequest(str(err)) from None
        monitors = _selected_monitors()
        gzip = settings.gzip and accepts_gzip(request.headers.get("Accept-Encoding"))
        if request.method == "HEAD":  # the headers a GET would get; no stream, no slot
            return _stream_headers(Response(b"", status=200), gzip)
        if hub.shutdown.is_set():
            raise TooManyStreams("the server is shutting down", status=503, retry_after=2)
        client = _address(request.scope.get("client"))  # the forwarded client, behind a trusted proxy
        ip = client[0] if client else None
        refused = hub.limits.refusal(ip)
        if refused is not None:
            raise refused
        peer = _address(request.scope.get(PEER_KEY)) or client  # the TCP peer: what an abort finds
        lifetime = None
        if settings.max_stream_seconds is not None:
            lifetime = settings.max_stream_seconds * random.uniform(1 - LIFETIME_JITTER, 1.0)
        last_id = request.headers.get("Last-Event-ID") or request.args.get("lastEventId")
        if last_id is not None and len(last_id) > MAX_LAST_EVENT_ID:
            last_id = None  # unplaceable: a full replay, not an error
        stream = EventStream(
            monitors,
            config=hub.stream_config,
            slot=hub.limits.slot(peer, _address(request.scope.get("server")), ip=ip),
            shutdown=hub.shutdown,
            interval=interval,
            last_event_id=last_id,
            gzip=gzip,
            lifetime=lifetime,
        )
        resp = Response(_StreamBody(stream), status=200)
        resp.timeout = None  # Quart would cut the stream after RESPONSE_TIMEOUT (60 s) otherwise
        return _stream_headers(resp, gzip)

    @app.get("/api/benchmark")
    async def benchmark() -> Response:
        monitors = _selected_monitors()
        return _json({"targets": {m.name: m.snapshot() for m in monitors}})

    @app.get("/api/tasks")
    async def tasks() -> Response:
        out = []
        for m in _selected_monitors():
            out.extend(e.event.payload() for e in m.history.entries if isinstance(e.event, TaskComplete))
        form = request.args.get("format", "json")
        if form == "csv":
            resp = Response(results_csv(out), content_type="text/csv; charset=utf-8")
            resp.headers["Content-Disposition"] = 'attachment; filename="tasks.csv"'
            resp.headers["Cache-Control"] = "no-store"
            return resp
        if form != "json":
            shown = form if len(form) <= 20 else form[:20] + "…"
            raise BadRequest(f"format must be json or csv, got {shown!r}")
        return _json(out)

    def _find_task(task_id: str) -> tuple[Any, dict[str, Any], str | None]:
        """The monitor, view and domain of ``task_id`` in the selected targets' current runs."""
        monitors = _selected_monitors()
        if len(task_id.encode("utf-8", "surrogatepass")) <= MAX_TASK_ID and "\x00" not in task_id:
            for monitor in monitors:
                found = monitor.task(task_id)  # (a cluster mirror: from what Redis holds)
                if found is not None:
                    return monitor, found[0], found[1]
        shown = task_id if len(task_id) <= 64 else task_id[:64] + "…"
        raise NotFound(f"unknown task {shown!r}: not a task of the current run of {', '.join(m.name for m in monitors)}")

    # merge_slashes=False: Werkzeug would answer a "//" in these paths with a redirect (HTML);
    # a name like "//etc/passwd" must reach the checks below and get its 404 JSON.
    @app.get("/api/tasks/<task_id>", merge_slashes=False)
    async def task_view(task_id: str) -> Response:
        """A task's result (or, while it runs, its worker's view), its trajectory's steps and
        its error (SPEC §8). ``trajectory`` says whether the task's traj.jsonl was read."""
        monitor, task, domain = _find_task(task_id)
        results = getattr(monitor, "results", None)
        steps: list[dict[str, Any]] = []
        error = None
        trajectory: dict[str, Any] = {"found": False, "reason": "the target has no results folder (--results)"}
        if results is not None:
            try:
                loaded = await results.task_trajectory(domain, task_id, finished=bool(task["finished"]))
            except ResultsUnavailable as err:
                trajectory = {"found": False, "reason": str(err)}
            else:
                if loaded is None:
                    trajectory = {"found": False, "reason": f"no folder of this task under {results.backend.root}"}
                else:
                    _directory, traj = loaded
                    steps = steps_payload(traj.steps, lambda name: screenshot_url(monitor.name, task_id, name))
                    if traj.error is not None:
                        error = {"message": traj.error.message, "traceback": traj.error.traceback}
                    trajectory = {"found": True, "reason": None, "junk_lines": traj.statistics.junk}
        if error is None and task.get("error"):
            error = {"message": task["error"], "traceback": None}
        return _json({"task": task, "steps": steps, "error": error, "trajectory": trajectory})

    @app.get("/api/tasks/<task_id>/files/<path:name>", merge_slashes=False)
    async def task_file(task_id: str, name: str) -> Response:
        """A file that the task's traj.jsonl lists, and nothing else (SPEC §8)."""
        shown = name if len(name) <= 64 else name[:64] + "…"
        if not safe_component(name) or name[name.rfind(".") :] not in _FILE_TYPES:
            raise NotFound(f"no file {shown!r}: only the file names a task's trajectory lists are served")
        monitor, task, domain = _find_task(task_id)
        results = getattr(monitor, "results", None)
        if results is None:
            raise NotFound(f"target {monitor.name} has no results folder (--results)")
        fd, size = await results.open_file(domain, task_id, name, finished=bool(task["finished"]))
        content_type = _FILE_TYPES[name[name.rfind(".") :]]
        if request.method == "HEAD":  # Quart never enters a HEAD response's body: close it here
            os.close(fd)
            resp = Response(b"", status=200, content_type=content_type)
        else:
            resp = Response(_FileBody(fd, size), status=200, content_type=content_type)
            resp.timeout = None  # a large file to a slow client takes what it takes
        resp.headers["Content-Length"] = str(size)
        resp.headers["Cache-Control"] = f"private, max-age={FILE_MAX_AGE}, immutable"
        return resp

    @app.get("/api/rerun")
    async def rerun() -> Response:
        """The current run's tasks that failed for infrastructure reasons, in WAA's own
        task-list shape (``{"domain": ["id", …]}``): save it as a file and give it to
        ``run.py`` (``--test_all_meta_path``) to run just those again."""
        monitors = _selected_monitors()
        if len(monitors) != 1:
            raise BadRequest(f"name the target: ?target=NAME (configured: {', '.join(hub.monitors)})")
        resp = _json(monitors[0].rerun())
        resp.headers["Content-Disposition"] = f'inline; filename="rerun-{monitors[0].name}.json"'
        return resp

    # ------------------------------------------------------------ run history (SPEC §9)

    def _reader() -> Any:
        if hub.recorder is None:
            raise NotFound(HISTORY_OFF)
        return hub.recorder.reader

    @app.get("/api/runs")
    async def runs() -> Response:
        reader = _reader()
        target = request.args.get("target")
        if target is not None and not is_target_name(target):
            raise BadRequest(
                f"target must be a target name (1-64 letters, digits, '_', '-' or '.'), got {_shown(target)!r}"
            )
        limit = _int_arg("limit", 1, LIST_LIMIT_MAX, RUNS_LIMIT)
        offset = _int_arg("offset", 0, MAX_RUNS_OFFSET, 0)
        rows = await reader.list_runs(target=target, limit=limit, offset=offset)  # (in a worker thread)
        return _json({"runs": [r.payload() for r in rows], "limit": limit, "offset": offset})

    @app.get("/api/runs/<ref>")
    async def run(ref: str) -> Response:
        reader = _reader()
        if ref.endswith(".csv"):
            row, text = await reader.run_csv(ref[: -len(".csv")])
            resp = Response(text, content_type="text/csv; charset=utf-8")
            resp.headers["Content-Disposition"] = f'attachment; filename="{csv_filename(row)}"'
            resp.headers["Cache-Control"] = "no-store"
            return resp
        row, tasks = await reader.run_with_tasks(ref)
        return _json({"run": row.payload(), "tasks": tasks})

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response("ok\n", content_type="text/plain; charset=utf-8")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(render_metrics(hub), content_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/")
    async def index() -> Response:
        return _static("index.html", fallback=_FALLBACK_PAGE)

    @app.get("/static/<name>")
    async def static_file(name: str) -> Response:
        return _static(name)

    def _static(name: str, fallback: str | None = None) -> Response:
        suffix = name[name.rfind(".") :] if "." in name else ""
        shown = name if len(name) <= 64 else name[:64] + "…"
        if (
            len(name.encode()) > MAX_STATIC_NAME
            or "/" in name
            or "\\" in name
            or "\x00" in name
            or name.startswith(".")
            or suffix not in _STATIC_TYPES
        ):
            raise NotFound(f"no static file {shown!r}")
        path = resources.files("trio_sse") / "static" / name
        try:
            found = path.is_file()
        except OSError:  # anything the filesystem refuses to look up is not one of ours
            found = False
        if not found:
            if fallback is not None:
                return Response(fallback, content_type=_STATIC_TYPES[".html"])
            raise NotFound(f"no static file {shown!r}")
        resp = Response(path.read_bytes(), content_type=_STATIC_TYPES[suffix])
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    return app


def _standalone() -> QuartTrio:
    """The app for Hypercorn's own CLI: a hub from ``TRIO_SSE_*``, run in the app's lifespan.

    What differs from ``trio-sse serve`` (the README lists it too): Hypercorn, not the app,
    sees the signal and makes the listening sockets, so streams end when Hypercorn's
    ``--graceful-timeout`` runs out rather than at once (the watchdog still cuts a client that
    stopped reading after ``write_timeout``), and the socket options are applied to the
    listeners Hypercorn made before start-up (with ``--workers``, they exist by then)."""
    hub = Hub.build(settings_from_env())
    app = create_app(hub)

    @app.before_serving
    async def _start() -> None:
        tune_listeners(user_timeout=hub.limits.tcp_user_timeout, send_buffer=hub.settings.send_buffer)
        await app.nursery.start(hub.run)

    @app.after_serving
    async def _stop() -> None:
        hub.shutdown.set()

    return app


def _shown(value: str, limit: int = 64) -> str:
    return value if len(value) <= limit else value[:limit] + "…"


def _int_arg(name: str, lo: int, hi: int, default: int) -> int:
    """An integer query parameter from ``lo`` to ``hi`` (``BadRequest`` for anything else)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    s = raw.strip()
    if not (s.isascii() and s.isdigit() and len(s) <= 12) or not lo <= int(s) <= hi:
        raise BadRequest(f"{name} must be an integer from {lo} to {hi}, got {_shown(raw)!r}")
    return int(s)


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9_.-]")


def csv_filename(row: RunRow) -> str:
    """``trio-sse-<target>-<run>.csv`` with nothing a Content-Disposition header or a file
    system could misread (the database may have been written by anyone)."""
    return _UNSAFE_FILENAME.sub("_", f"trio-sse-{row.target[:64]}-{row.run[:32]}") + ".csv"


def _address(value: Any) -> tuple[str, int] | None:
    """An ASGI ``client``/``server`` scope entry as ``(host, port)``, if it is one."""
    if isinstance(value, (tuple, list)) and len(value) >= 2 and isinstance(value[0], str):
        return (value[0], int(value[1]))
    return None


def hub_of(app: QuartTrio) -> Hub:
    return app.extensions["trio_sse.hub"]  # type: ignore[no-any-return]


__all__ = ["create_app", "hub_of"]
