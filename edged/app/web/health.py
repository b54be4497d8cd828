"""/healthz: 200 while frames flow and results come, 503 with the reason when the source or inference is stuck.

Progress is judged from the cumulative counters, sampled at each check with the clock passed in, so the rule is a
pure function tests can drive. Paused is healthy (it was asked for); a source that is not live (a watched folder
waiting for files) is not expected to deliver frames at any rate.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"status": "ok" if self.ok else "unhealthy", "reason": self.reason}


@dataclass(frozen=True)
class Sample:
    """What a check reads from the daemon."""

    now: float  # monotonic
    captured: int
    inferred: int
    source_state: str
    paused: bool
    live: bool
    stuck_s: float  # how long the frame in flight has been in the model (0 between frames)
    stall_limit_s: float  # the supervisor's limit for one frame (systemd's WatchdogSec, or 60 s)
    min_period_s: float = 0.0  # pipeline.max_fps / interval_s: results are not expected more often


class HealthCheck:
    def __init__(self, max_age_s: float, started: float) -> None:
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._frames = (-1, started)  # (last count seen, when it last changed)
        self._results = (-1, started)

    @staticmethod
    def _progress(seen: tuple[int, float], count: int, now: float) -> tuple[int, float]:
        return seen if seen[0] == count else (count, now)

    def judge(self, sample: Sample) -> Health:
        with self._lock:
            self._frames = self._progress(self._frames, sample.captured, sample.now)
            self._results = self._progress(self._results, sample.inferred, sample.now)
            frames_age = sample.now - self._frames[1]
            results_age = sample.now - self._results[1]
        if sample.stuck_s >= sample.stall_limit_s:
            return Health(False, f"inference has been stuck on one frame for {sample.stuck_s:.0f} s")
        if sample.source_state in ("reconnecting", "failed", "stopped"):
            return Health(False, f"the source is {sample.source_state}")
        if sample.live and frames_age >= self.max_age_s:
            return Health(False, f"no frame from the source for {frames_age:.0f} s (state: {sample.source_state})")
        if sample.paused:
            return Health(True, "paused")
        results_limit = max(self.max_age_s, 3 * sample.min_period_s)
        if frames_age < self.max_age_s and results_age >= results_limit:
            return Health(False, f"frames arrive but no result for {results_age:.0f} s")
        if sample.source_state == "starting":
            return Health(True, "starting")
        return Health(True, "frames flow")
