"""Helpers for pipeline tests: a recording publisher and a daemon running in a background thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from edged.app.daemon import Daemon
from edged.config.app import AppConfig
from edged.errors import CommandRefused
from edged.inference.engine import ModelBundle
from edged.publish.base import Runtime


class RecordingPublisher:
    """Keeps everything the daemon publishes, in memory, for assertions (a real Publisher, not a mock)."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.stats: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []
        self.flushed = False
        self.stopped = False
        self._cond = threading.Condition()

    def start(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.control = runtime.control

    def _add(self, target: list[dict[str, Any]], item: dict[str, Any]) -> None:
        with self._cond:
            target.append(item)
            self._cond.notify_all()

    def publish_result(self, result: dict[str, Any]) -> None:
        self._add(self.results, result)

    def publish_stats(self, stats: dict[str, Any]) -> None:
        self._add(self.stats, stats)

    def publish_state(self, state: dict[str, Any]) -> None:
        self._add(self.states, state)

    def publish_event(self, event: dict[str, Any]) -> None:
        self._add(self.events, event)

    def publish_snapshot(self, annotated: bool | None) -> dict[str, Any]:
        raise CommandRefused("the recording publisher keeps no pictures")

    def flush(self, timeout_s: float) -> bool:
        self.flushed = True
        return True

    def take_backlog(self) -> list[dict[str, Any]]:
        return []

    def stop(self) -> None:
        self.stopped = True

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60.0) -> bool:
        with self._cond:
            return self._cond.wait_for(condition, timeout)

    def source_states(self) -> list[str]:
        return [e["state"] for e in self.events if e["event"] == "source_state"]


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Poll a condition that nothing signals (a counter inside the daemon) until it holds or time runs out."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class BackgroundDaemon:
    """Runs `Daemon.run()` in a thread; `stop()` requests a clean stop and returns the exit code."""

    def __init__(self, config: AppConfig, publisher: RecordingPublisher, bundle: ModelBundle | None = None) -> None:
        self.daemon = Daemon(config, publisher=publisher, bundle=bundle)
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.exit_code = self.daemon.run(handle_signals=False)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def __enter__(self) -> BackgroundDaemon:
        self._thread.start()
        while not self.daemon.started.wait(0.05):  # every part runs before the test talks to the daemon
            if not self._thread.is_alive():
                self.join(0)  # start() failed: raise its error
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 60.0) -> int | None:
        self.daemon.request_stop()
        self.join(timeout)
        return self.exit_code

    def join(self, timeout: float = 60.0) -> None:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        assert not self._thread.is_alive(), "the daemon did not stop in time"
