"""Remote commands on <prefix>/cmd/<name>: strict parsing, execution against the daemon, and the reply.

A command is refused (with a reply saying why, a log line, and no effect) when its name is unknown, its payload
is too large, not UTF-8, not JSON, not an object, or carries arguments the command does not take. Commands run
on a thread of their own, never on paho's network thread: a snapshot takes milliseconds to encode, and the
network thread must keep answering the broker meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edged.publish.base import AppControl
from edged.publish.mqtt_topics import COMMANDS
from edged.results import utc_iso

log = logging.getLogger(__name__)

#: Command payloads larger than this are refused unread (commands carry a few small arguments at most).
MAX_COMMAND_BYTES = 4096
#: Arguments each command accepts, with their types ("id" is accepted by every command and echoed).
ARGUMENTS: dict[str, dict[str, type]] = {
    "snapshot": {"annotated": bool},
    "pause": {},
    "resume": {},
    "stats": {},
    "check_update": {},
}
assert tuple(ARGUMENTS) == COMMANDS


class CommandRefused(Exception):
    """The command was not carried out; the message is the reply's `error`."""


@dataclass(frozen=True)
class Command:
    name: str
    request_id: str | int | None = None
    args: dict[str, Any] = field(default_factory=dict)


def _request_id(body: dict[str, Any]) -> str | int | None:
    value = body.get("id")
    if value is None or (isinstance(value, str) and len(value) <= 128):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def parse_command(name: str, payload: bytes) -> tuple[Command | None, str | int | None, str | None]:
    """(command, request id, None) for a valid command, or (None, request id if readable, reason) otherwise."""
    if len(payload) > MAX_COMMAND_BYTES:
        return None, None, f"payload of {len(payload)} bytes exceeds the {MAX_COMMAND_BYTES}-byte limit"
    body: Any = {}
    if payload.strip():
        try:
            body = json.loads(payload.decode("utf-8"))
        except UnicodeDecodeError:
            return None, None, "payload is not UTF-8 text"
        except json.JSONDecodeError as exc:
            return None, None, f"payload is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if not isinstance(body, dict):
        return None, None, f"payload must be a JSON object or empty, not {type(body).__name__}"
    request_id = _request_id(body)
    if body.get("id") is not None and request_id is None:
        return None, None, "`id` must be a string of at most 128 characters or an integer"
    if name not in ARGUMENTS:
        return None, request_id, f"unknown command {name!r}; known commands: {', '.join(COMMANDS)}"
    accepted = ARGUMENTS[name]
    args = {key: value for key, value in body.items() if key != "id"}
    unknown = sorted(set(args) - set(accepted))
    if unknown:
        allowed = ", ".join(accepted) or "none besides id"
        return None, request_id, f"unknown argument(s) {', '.join(unknown)} for {name!r} (accepted: {allowed})"
    for key, value in args.items():
        expected = accepted[key]
        if not isinstance(value, expected):
            return None, request_id, f"argument {key!r} must be {expected.__name__}, not {type(value).__name__}"
    return Command(name, request_id, args), request_id, None


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


class CommandRunner:
    """Carries out a parsed command against the daemon; raises CommandRefused when it cannot."""

    def __init__(
        self,
        control: AppControl,
        snapshot: Callable[[bool | None], dict[str, Any]],
        state_changed: Callable[[], None],
    ) -> None:
        self._control = control
        self._snapshot = snapshot
        self._state_changed = state_changed

    def run(self, command: Command) -> dict[str, Any]:
        control = self._control
        if command.name == "snapshot":
            return self._snapshot(command.args.get("annotated"))
        if command.name == "pause":
            control.pause()
            self._state_changed()
            return {"paused": control.paused}
        if command.name == "resume":
            control.resume()
            self._state_changed()
            return {"paused": control.paused}
        if command.name == "stats":
            return control.stats()
        if command.name == "check_update":
            outcome = control.check_update()
            if not outcome.get("ok", True):
                raise CommandRefused(str(outcome.get("reason") or "the update check failed"))
            return outcome
        raise CommandRefused(f"unknown command {command.name!r}")  # parse_command keeps this unreachable


class JobThread:
    """Runs submitted jobs one at a time, in order, plus an optional periodic job, off paho's network thread."""

    def __init__(self, name: str, max_jobs: int = 32) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(max_jobs)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._periodic: Callable[[], None] | None = None
        self._period_s = 0.0

    def every(self, period_s: float, job: Callable[[], None]) -> None:
        self._period_s, self._periodic = period_s, job

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> bool:
        """False when the queue is full (the caller refuses the work instead of piling it up)."""
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            return False
        return True

    def stop(self, timeout_s: float = 2.0) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(queue.Full):
            self._jobs.put(None, timeout=timeout_s)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        next_due = time.monotonic() + self._period_s if self._periodic else None
        while True:
            timeout = None if next_due is None else max(0.0, next_due - time.monotonic())
            try:
                job = self._jobs.get(timeout=timeout)
            except queue.Empty:
                job = self._periodic
                next_due = time.monotonic() + self._period_s
            if job is None:
                return
            try:
                job()
            except Exception:  # a failing job must not end the thread that answers every later command
                log.exception("MQTT background job failed")
