"""Every thread edged runs is started here, supervised: an unexpected exception is a bug, logged once with its
traceback, and it stops the daemon with a non-zero exit status so systemd's `Restart=on-failure` brings it back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from edged.publish.base import NetworkLoop

log = logging.getLogger("edged.app")


@dataclass(frozen=True)
class Crash:
    thread: str
    error: BaseException


class Threads:
    """Starts supervised threads and remembers the first one that died of an unexpected exception."""

    def __init__(self, on_crash: Callable[[Crash], None]) -> None:
        self._on_crash = on_crash
        self._lock = threading.Lock()
        self._started: list[threading.Thread] = []
        self._network_loops: list[NetworkLoop] = []
        self.crash: Crash | None = None

    def spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        def supervised() -> None:
            try:
                target()
            except BaseException as exc:
                self._crashed(name, exc)

        thread = threading.Thread(target=supervised, name=name, daemon=True)
        with self._lock:
            self._started.append(thread)
        thread.start()
        return thread

    def start_network_loop(self, client: NetworkLoop) -> None:
        """paho's own network thread: the one thread edged does not create itself, started from here."""
        client.loop_start()
        with self._lock:
            self._network_loops.append(client)

    def _crashed(self, name: str, error: BaseException) -> None:
        log.critical(
            "thread %s died of an unexpected error; this is a bug in edged, please report it with this traceback. "
            "edged stops now (exit status 1)", name, exc_info=error,
        )  # fmt: skip
        crash = Crash(name, error)
        with self._lock:
            if self.crash is None:
                self.crash = crash
        self._on_crash(crash)

    def alive(self) -> list[str]:
        with self._lock:
            return [t.name for t in self._started if t.is_alive()]
