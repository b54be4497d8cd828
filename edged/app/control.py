"""The daemon's one control surface: every command, from any front end (MQTT, the HTTP page, a signal), goes
through this dispatcher, with one request syntax and one reply schema (edged/schemas/command-reply.schema.json).

A request is refused, with a reply saying why, a log line and no effect, when its name is unknown, its payload is
empty (an empty message is how MQTT clears a retained one), too large, not UTF-8, not JSON, not an object, when it
carries arguments the command does not take, or when it was retained. Commands run on the daemon's own threads,
never on a front end's (paho's network thread must keep answering the broker): quick ones on one thread, long
ones (an update check, a reload) on another, so a quick command never waits behind a long one.
"""

from __future__ import annotations

import json
import logging
import queue
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edged.errors import CommandRefused
from edged.publish.base import CommandRequest, ReplySink
from edged.results import utc_iso

log = logging.getLogger(__name__)

#: Command payloads larger than this are refused unread (commands carry a few small arguments at most).
MAX_COMMAND_BYTES = 4096
#: Commands waiting per thread; more are refused as "busy" rather than piled up.
MAX_WAITING = 32

Handler = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class CommandSpec:
    """One command: its handler, the arguments it accepts (name → type), and whether it is long work."""

    name: str
    handler: Handler
    arguments: Mapping[str, type] = field(default_factory=dict)
    long: bool = False
    summary: str = ""


@dataclass(frozen=True)
class ParsedCommand:
    spec: CommandSpec
    request_id: str | int | None
    args: dict[str, Any]


def reply(
    name: str, request_id: str | int | None, *, result: dict[str, Any] | None = None, error: str | None = None
) -> dict[str, Any]:
    """The reply message (edged/schemas/command-reply.schema.json)."""
    payload: dict[str, Any] = {"command": name, "id": request_id, "ok": error is None, "at": utc_iso(time.time())}
    if error is not None:
        payload["error"] = error
    if result is not None:
        payload["result"] = result
    return payload


def _request_id(body: dict[str, Any]) -> str | int | None:
    value = body.get("id")
    if value is None or (isinstance(value, str) and len(value) <= 128):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def read_body(payload: bytes) -> tuple[dict[str, Any] | None, str | int | None, str | None]:
    """(the JSON object, its id, None), or (None, the id if readable, why the payload is refused)."""
    if len(payload) > MAX_COMMAND_BYTES:
        return None, None, f"payload of {len(payload)} bytes exceeds the {MAX_COMMAND_BYTES}-byte limit"
    if not payload.strip():
        return (
            None,
            None,
            (
                "empty payload: not a command (an empty message is how a retained command is cleared); send '{}' "
                "or a JSON object with the command's arguments"
            ),
        )
    try:
        body: Any = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        return None, None, "payload is not UTF-8 text"
    except json.JSONDecodeError as exc:
        return None, None, f"payload is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if not isinstance(body, dict):
        return None, None, f"payload must be a JSON object, not {type(body).__name__}"
    request_id = _request_id(body)
    if body.get("id") is not None and request_id is None:
        return None, None, "`id` must be a string of at most 128 characters or an integer"
    return body, request_id, None


class Dispatcher:
    """Parses requests, refuses bad ones, and runs good ones on the quick or the long command thread."""

    def __init__(self) -> None:
        self._specs: dict[str, CommandSpec] = {}
        self._quick: queue.Queue[Callable[[], None] | None] = queue.Queue(MAX_WAITING)
        self._long: queue.Queue[Callable[[], None] | None] = queue.Queue(MAX_WAITING)

    def register(self, spec: CommandSpec) -> None:
        if spec.name in self._specs:
            raise ValueError(f"command {spec.name!r} is registered twice")
        self._specs[spec.name] = spec

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def spec(self, name: str) -> CommandSpec | None:
        return self._specs.get(name)

    def parse(self, request: CommandRequest) -> tuple[ParsedCommand | None, str | int | None, str | None]:
        """(command, request id, None) for a valid request, or (None, request id if readable, reason)."""
        body, request_id, error = read_body(request.payload)
        if body is None:
            return None, request_id, error
        if request.retained:
            return (
                None,
                request_id,
                (
                    "retained commands are refused (left on the broker, they would run again at every reconnect); "
                    "publish the command without the retain flag, and clear the retained one with an empty retained "
                    "message"
                ),
            )
        spec = self._specs.get(request.name)
        if spec is None:
            return None, request_id, f"unknown command {request.name[:64]!r}; known commands: {', '.join(self.names)}"
        args = {key: value for key, value in body.items() if key != "id"}
        unknown = sorted(set(args) - set(spec.arguments))
        if unknown:
            allowed = ", ".join(spec.arguments) or "none besides id"
            return (
                None,
                request_id,
                (f"unknown argument(s) {', '.join(unknown)} for {spec.name!r} (accepted: {allowed})"),
            )
        for key, value in args.items():
            expected = spec.arguments[key]
            if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
                return None, request_id, (f"argument {key!r} must be {expected.__name__}, not {type(value).__name__}")
        return ParsedCommand(spec, request_id, args), request_id, None

    def submit(self, request: CommandRequest, reply_to: ReplySink) -> None:
        """Queue a request (never blocks); `reply_to` gets exactly one reply, from a command thread or at once."""
        command, request_id, error = self.parse(request)
        name = request.name[:64]
        if command is None:
            self._refuse(name, request_id, error or "invalid command", reply_to, request.origin)
            return
        target = self._long if command.spec.long else self._quick
        try:
            target.put_nowait(lambda: self._run(command, reply_to, request.origin))
        except queue.Full:
            self._refuse(name, request_id, "busy: too many commands are waiting; try again later", reply_to,
                         request.origin)  # fmt: skip

    def call(self, name: str, args: Mapping[str, Any] | None = None, origin: str = "internal") -> dict[str, Any]:
        """Run a command now, on the calling thread (the supervisor's SIGHUP, tests); returns the reply."""
        payload = json.dumps(dict(args or {})).encode()
        command, request_id, error = self.parse(CommandRequest(name, payload, origin=origin))
        if command is None:
            return reply(name, request_id, error=error or "invalid command")
        replies: list[dict[str, Any]] = []
        self._run(command, replies.append, origin)
        return replies[0]

    def _run(self, command: ParsedCommand, reply_to: ReplySink, origin: str) -> None:
        name = command.spec.name
        try:
            result = command.spec.handler(command.args)
        except CommandRefused as exc:
            self._refuse(name, command.request_id, str(exc), reply_to, origin)
            return
        except Exception as exc:  # the daemon failed to carry it out; the caller still deserves an answer
            log.exception("command %r failed (this is a bug in edged; please report it)", name)
            self._refuse(name, command.request_id, f"internal error: {exc}", reply_to, origin)
            return
        log.info("%s command %r done", origin, name)
        reply_to(reply(name, command.request_id, result=result))

    def _refuse(self, name: str, request_id: str | int | None, error: str, reply_to: ReplySink, origin: str) -> None:
        log.warning("%s command %r refused: %s", origin, name, error)
        reply_to(reply(name, request_id, error=error))

    # ---- the two command threads (started by the daemon) -------------------------------------------------------
    def run_quick(self) -> None:
        self._serve(self._quick)

    def run_long(self) -> None:
        self._serve(self._long)

    def stop(self) -> None:
        for target in (self._quick, self._long):
            try:
                target.put_nowait(None)
            except queue.Full:  # the loop is busy; it sees the stop after what it is doing
                with target.mutex:
                    target.queue.clear()
                target.put_nowait(None)

    @staticmethod
    def _serve(jobs: queue.Queue[Callable[[], None] | None]) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            job()
