"""What the pipeline did, in two views over the same events, shared by the capture and inference threads:

- the periodic **window** (rates and percentiles since the last stats message, reset by each one), which the
  stats messages and logs report;
- **cumulative** counters and latency histograms since start, which a scrape (Prometheus, the status page) reads
  as often as it likes without disturbing the window.
"""

from __future__ import annotations

import bisect
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

#: Upper bounds (seconds) of the cumulative latency histograms, Prometheus-style (+Inf is implied).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

#: The cumulative histograms, by name.
HISTOGRAMS = ("inference", "preprocess", "decode", "capture_to_publish", "capture")


def _samples() -> deque[float]:
    return deque(maxlen=MAX_SAMPLES)


@dataclass
class Histogram:
    """Counts per bucket (not cumulative; the exporter accumulates), a sum and a count, in seconds."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    sum_s: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.sum_s += seconds
        self.count += 1

    def copy(self) -> Histogram:
        return Histogram(list(self.counts), self.sum_s, self.count)


@dataclass
class _Window:
    started: float = field(default_factory=time.monotonic)
    captured: int = 0
    inferred: int = 0
    dropped: int = 0
    skipped: int = 0
    inference_ms: deque[float] = field(default_factory=_samples)
    latency_ms: deque[float] = field(default_factory=_samples)
    capture_ms: deque[float] = field(default_factory=_samples)


class Stats:
    """Totals and histograms since start, and rates/percentiles over the current window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window = _Window()
        self.started = time.monotonic()
        self.totals = {
            "captured": 0, "inferred": 0, "dropped": 0, "skipped": 0, "source_errors": 0, "black_frames": 0,
            "inference_failures": 0,
        }  # fmt: skip
        self._histograms = {name: Histogram() for name in HISTOGRAMS}
        self.source_state = "starting"

    def frame_captured(self, read_ms: float, black: bool = False) -> None:
        with self._lock:
            self._window.captured += 1
            self._window.capture_ms.append(read_ms)
            self._histograms["capture"].observe(read_ms / 1000.0)
            self.totals["captured"] += 1
            if black:
                self.totals["black_frames"] += 1

    def frames_dropped(self, count: int) -> None:
        """Frames replaced in the mailbox while the model was busy (the newest frame wins)."""
        with self._lock:
            self._window.dropped += count
            self.totals["dropped"] += count

    def frames_skipped(self, count: int) -> None:
        """Frames passed over on purpose: pipeline.max_fps / interval_s."""
        with self._lock:
            self._window.skipped += count
            self.totals["skipped"] += count

    def source_error(self) -> None:
        with self._lock:
            self.totals["source_errors"] += 1

    def inference_failed(self) -> None:
        with self._lock:
            self.totals["inference_failures"] += 1

    def result(self, timing_ms: dict[str, float]) -> None:
        """One published result, with its timings (preprocess, inference, decode, capture_to_publish)."""
        with self._lock:
            window = self._window
            window.inferred += 1
            self.totals["inferred"] += 1
            window.inference_ms.append(timing_ms["inference"])
            window.latency_ms.append(timing_ms["capture_to_publish"])
            for name in ("inference", "preprocess", "decode", "capture_to_publish"):
                value = timing_ms.get(name)
                if value is not None:
                    self._histograms[name].observe(value / 1000.0)

    def cumulative(self) -> dict[str, Any]:
        """Totals and histograms since start (for scrapes); never resets anything."""
        with self._lock:
            return {
                "uptime_s": time.monotonic() - self.started,
                "totals": dict(self.totals),
                "histograms": {name: h.copy() for name, h in self._histograms.items()},
                "source_state": self.source_state,
            }

    def snapshot(self, reset: bool = True) -> dict[str, Any]:
        """The stats message for the window that ends now (and start a new window when `reset`)."""
        now = time.monotonic()
        with self._lock:
            window = self._window
            if reset:
                self._window = _Window(started=now)
            totals = {key: value for key, value in self.totals.items() if key != "inference_failures"}
        seconds = max(now - window.started, 1e-9)

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "window_s": round(seconds, 2),
            "uptime_s": round(now - self.started, 1),
            "input_fps": round(window.captured / seconds, 2),
            "output_fps": round(window.inferred / seconds, 2),
            "dropped": window.dropped,
            "skipped": window.skipped,
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
