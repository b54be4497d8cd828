"""Counters and latency percentiles over each stats interval, shared by the capture and inference threads."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


def percentile(values: Iterable[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * (len(ordered) - 1))))
    return ordered[rank]


#: Samples kept per window for percentiles: the newest ones, so memory stays flat at any rate and interval.
MAX_SAMPLES = 4096


def _samples() -> deque[float]:
    return deque(maxlen=MAX_SAMPLES)


@dataclass
class _Window:
    started: float = field(default_factory=time.monotonic)
    captured: int = 0
    inferred: int = 0
    dropped: int = 0
    inference_ms: deque[float] = field(default_factory=_samples)
    latency_ms: deque[float] = field(default_factory=_samples)
    capture_ms: deque[float] = field(default_factory=_samples)


class Stats:
    """What the pipeline did: totals since start, and rates/percentiles over the current window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window = _Window()
        self.started = time.monotonic()
        self.totals = {"captured": 0, "inferred": 0, "dropped": 0, "source_errors": 0, "black_frames": 0}
        self.source_state = "starting"

    def frame_captured(self, read_ms: float, black: bool = False) -> None:
        with self._lock:
            self._window.captured += 1
            self._window.capture_ms.append(read_ms)
            self.totals["captured"] += 1
            if black:
                self.totals["black_frames"] += 1

    def frames_dropped(self, count: int) -> None:
        with self._lock:
            self._window.dropped += count
            self.totals["dropped"] += count

    def source_error(self) -> None:
        with self._lock:
            self.totals["source_errors"] += 1

    def result(self, inference_ms: float, latency_ms: float) -> None:
        with self._lock:
            window = self._window
            window.inferred += 1
            self.totals["inferred"] += 1
            window.inference_ms.append(inference_ms)
            window.latency_ms.append(latency_ms)

    def snapshot(self, reset: bool = True) -> dict[str, Any]:
        """The stats message for the window that ends now (and start a new window when `reset`)."""
        now = time.monotonic()
        with self._lock:
            window = self._window
            if reset:
                self._window = _Window(started=now)
            totals = dict(self.totals)
        seconds = max(now - window.started, 1e-9)

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "window_s": round(seconds, 2),
            "uptime_s": round(now - self.started, 1),
            "input_fps": round(window.captured / seconds, 2),
            "output_fps": round(window.inferred / seconds, 2),
            "dropped": window.dropped,
            "inference_ms": {
                "p50": rounded(percentile(window.inference_ms, 0.5)),
                "p95": rounded(percentile(window.inference_ms, 0.95)),
            },
            "capture_ms": {
                "p50": rounded(percentile(window.capture_ms, 0.5)),
                "p95": rounded(percentile(window.capture_ms, 0.95)),
            },
            "latency_ms": {
                "p50": rounded(percentile(window.latency_ms, 0.5)),
                "p95": rounded(percentile(window.latency_ms, 0.95)),
                "p99": rounded(percentile(window.latency_ms, 0.99)),
            },
            "source_state": self.source_state,
            "totals": totals,
        }
