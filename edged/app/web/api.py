"""The status page's WSGI application: the page, the JSON API, the live view, /metrics and /healthz.

Every route is a plain function of the request; the server (server.py) only carries bytes. Access is decided by
auth.Guard before a route runs. docs/http.md lists every route with examples.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from edged.app.control import MAX_COMMAND_BYTES, read_body
from edged.app.web import streams
from edged.app.web.auth import Guard, Verdict
from edged.app.web.health import HealthCheck
from edged.app.web.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from edged.app.web.metrics import build_registry, exposition
from edged.app.web.view import DaemonView
from edged.config.http import HttpConfig
from edged.publish.base import CommandRequest

log = logging.getLogger("edged.app.web")

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
Headers = list[tuple[str, str]]

#: Longest a POST waits for its command's reply (an update check over a slow link can take a while).
COMMAND_WAIT_S = 120.0
RECENT_MAX = 50
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
COMMON_HEADERS: Headers = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
]
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
STATUS_TEXT = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large", 500: "Internal Server Error",
    503: "Service Unavailable", 504: "Gateway Timeout",
}  # fmt: skip


@dataclass
class Response:
    status: int
    body: Iterable[bytes]
    content_type: str = "application/json"
    headers: Headers = field(default_factory=list)


def json_response(status: int, payload: object, headers: Headers | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, [body], "application/json", [("Cache-Control", "no-store"), *(headers or [])])


def error(status: int, message: str, headers: Headers | None = None) -> Response:
    return json_response(status, {"error": message}, headers)


def _static_files() -> dict[str, bytes]:
    folder = resources.files("edged.app.web") / "static"
    return {name: (folder / name).read_bytes() for name, _ in STATIC.values()}


class WebApp:
    def __init__(self, view: DaemonView, config: HttpConfig, guard: Guard, started: float) -> None:
        self.view = view
        self.config = config
        self.guard = guard
        self.stopping = threading.Event()
        self.jpegs = streams.JpegCache(view)
        self.stream_slots = streams.Slots(config.max_streams)
        self.event_slots = streams.Slots(config.max_event_streams)
        self.health = HealthCheck(config.health_max_age_s, started)
        self.registry = build_registry(view)
        self.files = _static_files()
        self._get: dict[str, Callable[[Environ], Response]] = {
            "/api/state": self.api_state,
            "/api/stats": lambda _: json_response(200, self.view.stats()),
            "/api/results/recent": self.api_recent,
            "/api/events": self.api_events,
            "/stream.mjpg": self.stream,
            "/snapshot.jpg": self.snapshot,
            "/metrics": self.metrics,
            "/healthz": self.healthz,
        }

    # ---- WSGI ----------------------------------------------------------------------------------------------
    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        try:
            response = self.route(environ)
        except Exception:  # a bug in a route must not kill the server thread, and the client gets an answer
            log.exception("HTTP %s %s failed (this is a bug in edged; please report it)",
                          environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))  # fmt: skip
            response = error(500, "internal error; see edged's log")
        headers = [("Content-Type", response.content_type), *COMMON_HEADERS, *response.headers]
        start_response(f"{response.status} {STATUS_TEXT.get(response.status, 'Error')}", headers)
        return response.body

    def route(self, environ: Environ) -> Response:
        method = str(environ.get("REQUEST_METHOD", "GET"))
        path = str(environ.get("PATH_INFO", "/"))
        if path in STATIC:
            if method != "GET":
                return error(405, "use GET", [("Allow", "GET")])
            name, content_type = STATIC[path]
            headers = [("Cache-Control", "no-cache"), ("Content-Security-Policy", PAGE_CSP)]
            return Response(200, [self.files[name]], content_type, headers)
        if path == "/api/session":
            return self.api_session(environ) if method == "GET" else error(405, "use GET", [("Allow", "GET")])
        if path in ("/api/login", "/api/logout") or path.startswith("/api/command/"):
            if method != "POST":
                return error(405, "use POST", [("Allow", "POST")])
            return self.post(environ, path)
        handler = self._get.get(path)
        if handler is None:
            return error(404, f"no such page: {path[:100]}")
        if method != "GET":
            return error(405, "use GET", [("Allow", "GET")])
        verdict = self.guard.check(environ)
        if not verdict.can_read:
            return self.refused(verdict)
        return handler(environ)

    def refused(self, verdict: Verdict) -> Response:
        if verdict.reason.startswith("the Host header"):
            return error(403, verdict.reason)
        return error(401, verdict.reason, [("WWW-Authenticate", 'Bearer realm="edged"')])

    # ---- reading -------------------------------------------------------------------------------------------
    def api_state(self, _: Environ) -> Response:
        state = self.view.state()
        state["publisher"] = {"type": self.view.publisher_type(), "link": self.view.link_stats()}
        state["hosting"] = self.view.hosting_state()
        state["commands"] = list(self.view.commands)
        state["health"] = self.health.judge(self.view.health_sample()).as_dict()
        return json_response(200, state)

    def api_recent(self, environ: Environ) -> Response:
        query = parse_qs(str(environ.get("QUERY_STRING", "")))
        text = (query.get("limit") or ["20"])[0]
        if not text.isdigit() or not 1 <= int(text) <= RECENT_MAX:
            return error(400, f"limit must be a number from 1 to {RECENT_MAX}")
        recent = list(self.view.results.recent)[-int(text) :]
        return json_response(200, {"results": recent})

    def snapshot(self, environ: Environ) -> Response:
        query = parse_qs(str(environ.get("QUERY_STRING", "")))
        annotated = (query.get("annotated") or ["1"])[0] not in ("0", "false", "no")
        jpeg = self.jpegs.latest(annotated)
        if jpeg is None:
            return error(503, "no frame has been processed yet", [("Retry-After", "1")])
        return Response(200, [jpeg], "image/jpeg", [("Cache-Control", "no-store")])

    def stream(self, _: Environ) -> Response:
        if not self.stream_slots.take():
            return error(503, f"{self.config.max_streams} live views are open already (http.max_streams); close one")
        body = streams.mjpeg(self.jpegs, self.view.results, self.config.stream_fps, self.stopping)
        released = streams.Released(body, self.stream_slots.give_back)
        return Response(200, released, streams.MJPEG_CONTENT_TYPE, [("Cache-Control", "no-store")])

    def api_events(self, _: Environ) -> Response:
        if not self.event_slots.take():
            return error(503, f"{self.config.max_event_streams} event streams are open already "
                              "(http.max_event_streams)")  # fmt: skip
        body = streams.event_stream(self.view.events, self.view.results, self.stopping)
        released = streams.Released(body, self.event_slots.give_back)
        return Response(200, released, "text/event-stream", [("Cache-Control", "no-store")])

    def metrics(self, _: Environ) -> Response:
        return Response(200, [exposition(self.registry)], METRICS_CONTENT_TYPE, [("Cache-Control", "no-store")])

    def healthz(self, _: Environ) -> Response:
        health = self.health.judge(self.view.health_sample())
        return json_response(200 if health.ok else 503, health.as_dict())

    # ---- sessions and commands -------------------------------------------------------------------------------
    def api_session(self, environ: Environ) -> Response:
        verdict = self.guard.check(environ)
        session = self.guard.session_of(environ)
        csrf = self.guard.csrf_for(session) if verdict.via_cookie and session else None
        return json_response(200, {
            "auth": self.config.auth, "authenticated": verdict.authenticated, "can_read": verdict.can_read,
            "can_write": verdict.authenticated and (csrf is not None or not verdict.via_cookie), "csrf": csrf,
            "reason": "" if verdict.can_write else verdict.reason, "stream_fps": self.config.stream_fps,
        })  # fmt: skip

    def _body(self, environ: Environ) -> bytes | Response:
        text = str(environ.get("CONTENT_LENGTH") or "0")
        length = int(text) if text.isdigit() else -1
        if length < 0 or length > MAX_COMMAND_BYTES:
            return error(413, f"a request body is at most {MAX_COMMAND_BYTES} bytes")
        data: bytes = environ["wsgi.input"].read(length) if length else b""
        return data

    def post(self, environ: Environ, path: str) -> Response:
        why = self.guard.cross_site(environ)
        if why is not None:
            return error(403, why)
        body = self._body(environ)
        if isinstance(body, Response):
            return body
        if path == "/api/login":
            return self.login(body)
        if path == "/api/logout":
            return json_response(200, {"authenticated": False}, [("Set-Cookie", self.guard.clear_cookie_header())])
        verdict = self.guard.check(environ)
        if not verdict.can_write:
            if verdict.authenticated:
                return error(403, verdict.reason)
            return self.refused(verdict) if self.guard.token is not None else error(403, verdict.reason)
        return self.command(path.removeprefix("/api/command/"), body)

    def login(self, body: bytes) -> Response:
        if self.guard.token is None:
            return error(400, 'no token is configured: set [http] auth = "token" and token_file')
        parsed, _, problem = read_body(body)
        token = parsed.get("token") if parsed is not None else None
        if not isinstance(token, str):
            return error(400, problem or 'send {"token": "..."}')
        if not self.guard.token_matches(token):
            log.warning("HTTP: a login with a wrong token was refused")
            return error(401, "wrong token")
        session = self.guard.new_session()
        return json_response(200, {"authenticated": True, "csrf": self.guard.csrf_for(session)},
                             [("Set-Cookie", self.guard.cookie_header(session))])  # fmt: skip

    def command(self, name: str, body: bytes) -> Response:
        if name not in self.view.commands:
            return error(404, f"unknown command {name[:64]!r}; known commands: {', '.join(self.view.commands)}")
        payload = body if body.strip() else b"{}"
        _, _, problem = read_body(payload)
        if problem is not None:
            return error(400, problem)
        done = threading.Event()
        replies: list[dict[str, Any]] = []

        def reply(message: dict[str, Any]) -> None:
            replies.append(message)
            done.set()

        self.view.submit(CommandRequest(name, payload, origin="http"), reply)
        if not done.wait(COMMAND_WAIT_S):
            return error(504, f"{name!r} is still running after {COMMAND_WAIT_S:.0f} s; its outcome will be logged")
        answer = replies[0]
        return json_response(200 if answer["ok"] else 409, answer)
