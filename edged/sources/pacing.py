"""Pacing a source at a frame rate on a fixed schedule: shared by the file and synthetic sources."""

from __future__ import annotations

import time
from collections.abc import Callable


def next_deadline(previous: float | None, period: float, now: float) -> float:
    """When the next frame is due: on a fixed grid of `period` steps, so sleep overshoot never accumulates.

    The grid restarts at `now` for the first frame and after falling more than one period behind, so a stall
    is not followed by a burst of catch-up frames.
    """
    if previous is None:
        return now
    due = previous + period
    return now if now - due > period else due


class Pacer:
    """Waits until the next frame is due, one `period` after the previous one (the one pacing wait edged has)."""

    def __init__(
        self,
        period: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._due: float | None = None

    def wait(self) -> None:
        now = self._clock()
        self._due = next_deadline(self._due, self.period, now)
        if self._due > now:
            self._sleep(self._due - now)

    def restart(self) -> None:
        """The next frame is due at once (after a reopen)."""
        self._due = None
