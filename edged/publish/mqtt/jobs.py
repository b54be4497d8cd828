"""The MQTT publisher's background work queue: snapshots, discovery and state, off paho's network thread.

The loop (`run`) is started by the daemon's runtime, like every edged thread; jobs run one at a time, in order,
plus an optional periodic job (periodic snapshots).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from collections.abc import Callable

log = logging.getLogger("edged.publish.mqtt")


class JobQueue:
    def __init__(self, max_jobs: int = 32) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(max_jobs)
        self._periodic: Callable[[], None] | None = None
        self._period_s = 0.0

    def every(self, period_s: float, job: Callable[[], None]) -> None:
        self._period_s, self._periodic = period_s, job

    def submit(self, job: Callable[[], None]) -> bool:
        """False when the queue is full (the caller refuses the work instead of piling it up)."""
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            return False
        return True

    def stop(self, timeout_s: float = 2.0) -> None:
        """Ends `run` after the job in progress."""
        with contextlib.suppress(queue.Full):
            self._jobs.put(None, timeout=timeout_s)

    def run(self) -> None:
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
            except Exception:  # a failing job must not end the thread every later job needs
                log.exception("MQTT background job failed")
