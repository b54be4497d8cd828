"""Pacing a source at a frame rate on a fixed schedule: shared by the file and synthetic sources."""

from __future__ import annotations


def next_deadline(previous: float | None, period: float, now: float) -> float:
    """When the next frame is due: on a fixed grid of `period` steps, so sleep overshoot never accumulates.

    The grid restarts at `now` for the first frame and after falling more than one period behind, so a stall
    is not followed by a burst of catch-up frames.
    """
    if previous is None:
        return now
    due = previous + period
    return now if now - due > period else due
