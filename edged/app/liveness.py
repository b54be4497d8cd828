"""Is the pipeline alive? Checked on every supervisor tick; systemd's watchdog is fed only when it is.

The one failure the capture side's timeouts and reconnects cannot heal is a model stuck in `invoke()`: a hung
Edge TPU or driver blocks the inference thread in C, where Python cannot interrupt it. It is noticed here (the
frame in flight has taken longer than the limit), reported once as an error and an `inference_stalled` event,
and, under systemd with `WatchdogSec=`, the keep-alives stop so systemd restarts the process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from edged.app.sdnotify import SystemdNotifier

log = logging.getLogger(__name__)

#: Without a systemd watchdog, a frame in flight for this long is reported as stalled (nothing else happens).
DEFAULT_STALL_S = 60.0


class Worker(Protocol):
    def stuck_for(self, now: float) -> float: ...


class Liveness:
    def __init__(self, notifier: SystemdNotifier, worker: Worker, emit: Callable[[str, dict[str, Any]], None]) -> None:
        self.notifier = notifier
        self.worker = worker
        self.emit = emit
        self.stall_s = notifier.watchdog_s or DEFAULT_STALL_S
        self.stalled_since: float | None = None
        self._next_ping = 0.0
        self.ticks = 0

    def tick(self, now: float) -> None:
        """One supervisor tick at monotonic time `now` (passed in, so tests drive time themselves)."""
        self.ticks += 1
        stuck = self.worker.stuck_for(now)
        if stuck >= self.stall_s:
            if self.stalled_since is None:
                self.stalled_since = now - stuck
                self._report_stall(stuck)
            return  # no keep-alive: under systemd's watchdog this is what gets the process restarted
        if self.stalled_since is not None:
            stalled = round(now - self.stalled_since, 1)
            self.stalled_since = None
            log.warning("inference resumed after a frame that took %.1f s", stalled)
            self.emit("inference_resumed", {"stalled_s": stalled})
        watchdog_s = self.notifier.watchdog_s
        if watchdog_s is not None and now >= self._next_ping:
            self.notifier.watchdog()
            self._next_ping = now + watchdog_s / 2

    def _report_stall(self, stuck: float) -> None:
        consequence = (
            "systemd's watchdog is no longer fed, so it restarts edged"
            if self.notifier.watchdog_s is not None
            else "restart edged (under systemd, WatchdogSec= does that by itself)"
        )
        log.error(
            "inference has been stuck on one frame for %.0f s (a hung Edge TPU or driver?); %s", stuck, consequence
        )
        self.emit("inference_stalled", {"stalled_s": round(stuck, 1)})
