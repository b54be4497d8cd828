"""The daemon's side of a publisher, for tests that run a publisher on its own (no model, no camera).

It is not a mock: commands go through edged's real dispatcher (edged/app/control.py) and threads through edged's
real supervised thread starter, wired to a `control` object the test provides (pause/resume/stats/state/
snapshot_jpeg), the way the daemon wires them to itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from edged.app.control import CommandSpec, Dispatcher
from edged.app.threads import Crash, Threads
from edged.errors import CommandRefused
from edged.publish.base import CommandRequest, NetworkLoop, Publisher, ReplySink


class TestControl(Protocol):
    paused: bool

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...

    def state(self) -> dict[str, Any]: ...

    def snapshot_jpeg(self, annotated: bool) -> bytes | None: ...


class PublisherRuntime:
    """publish.base.Runtime for one publisher under test; `stop()` ends the command threads."""

    def __init__(self, control: TestControl) -> None:
        self._control = control
        self.crashes: list[Crash] = []
        self.stop_requests: list[tuple[str, int]] = []
        self.threads = Threads(self.crashes.append)
        self.dispatcher = Dispatcher()
        self.publisher: Publisher | None = None
        register = self.dispatcher.register
        register(CommandSpec("pause", self._pause))
        register(CommandSpec("resume", self._resume))
        register(CommandSpec("snapshot", self._snapshot, {"annotated": bool}))
        register(CommandSpec("stats", lambda _: control.stats()))
        register(CommandSpec("state", lambda _: control.state()))
        register(CommandSpec("check_update", self._check_update, long=True))
        register(CommandSpec("set_paused", self._set_paused, {"paused": bool}))
        self.threads.spawn("test-commands", self.dispatcher.run_quick)
        self.threads.spawn("test-commands-long", self.dispatcher.run_long)

    def _pause(self, _: Mapping[str, Any]) -> dict[str, Any]:
        self._control.pause()
        return {"paused": self._control.paused}

    def _resume(self, _: Mapping[str, Any]) -> dict[str, Any]:
        self._control.resume()
        return {"paused": self._control.paused}

    def _set_paused(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return self._pause(args) if args.get("paused") else self._resume(args)

    def _snapshot(self, args: Mapping[str, Any]) -> dict[str, Any]:
        assert self.publisher is not None
        return self.publisher.publish_snapshot(args.get("annotated"))

    @staticmethod
    def _check_update(_: Mapping[str, Any]) -> dict[str, Any]:
        raise CommandRefused("model hosting is not configured (add a [hosting] table)")

    # ---- publish.base.Control ---------------------------------------------------------------------------------
    @property
    def control(self) -> PublisherRuntime:
        return self

    def submit(self, request: CommandRequest, reply: ReplySink) -> None:
        self.dispatcher.submit(request, reply)

    def state(self) -> dict[str, Any]:
        return self._control.state()

    def stats(self) -> dict[str, Any]:
        return self._control.stats()

    def label_thresholds(self) -> dict[str, float]:
        thresholds = getattr(self._control, "label_thresholds", None)
        return dict(thresholds()) if callable(thresholds) else {}

    def snapshot_jpeg(self, annotated: bool) -> bytes | None:
        return self._control.snapshot_jpeg(annotated)

    # ---- publish.base.Runtime ---------------------------------------------------------------------------------
    def spawn(self, name: str, target: Callable[[], None]) -> Any:
        return self.threads.spawn(name, target)

    def start_network_loop(self, client: NetworkLoop) -> None:
        self.threads.start_network_loop(client)

    def request_stop(self, reason: str, exit_code: int = 0) -> None:
        self.stop_requests.append((reason, exit_code))

    def start(self, publisher: Publisher) -> Publisher:
        self.publisher = publisher
        publisher.start(self)
        return publisher

    def stop(self) -> None:
        self.dispatcher.stop()
