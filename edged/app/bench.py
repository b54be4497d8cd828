"""`edged bench`: the daemon's own pipeline on a file read as fast as possible, timed stage by stage.

It runs the real capture and inference threads; only the publisher differs: it encodes every result to JSON
(the work a real publisher does per result) and discards it, timing that too.

Then, in the same run, it measures the CPU-bound limit (edged/app/cpu_limit.py): the usable cores divided by
the CPU time per frame of capture decode, preprocess, invoke and decode, each run alone; `fraction` is how close
the pipeline got to it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, NoReturn

from edged.app.cpu_limit import cpu_bound_limit, stage_cpu_seconds
from edged.app.daemon import Daemon
from edged.app.stats import percentile
from edged.config.app import AppConfig
from edged.publish.null import NullPublisher

WARMUP_RESULTS = 10  # the first results pay one-off costs (caches, page faults); fps is measured after them
CALIBRATION_FRAMES = 300  # frames of the serial stage-by-stage runs (half before, half after) behind the limit


@dataclass
class BenchPublisher(NullPublisher):
    """Encodes each result as JSON, records stage timings, and stops the daemon after `frames` results."""

    frames: int
    daemon: Daemon | None = None
    stages: dict[str, list[float]] = field(default_factory=dict)
    count: int = 0
    first_at: float | None = None
    last_at: float | None = None
    first_cpu: float = 0.0  # process CPU time at first_at / last_at: what the pipeline really used per frame
    last_cpu: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)
    final_stats: dict[str, Any] = field(default_factory=dict)

    def publish_result(self, result: dict[str, Any]) -> None:
        started = time.perf_counter()
        json.dumps(result, separators=(",", ":"))
        publish_ms = (time.perf_counter() - started) * 1000.0
        self.count += 1
        if self.count == WARMUP_RESULTS:
            self.first_at, self.first_cpu = time.perf_counter(), time.process_time()
        if self.count > WARMUP_RESULTS:
            for stage in ("preprocess", "inference", "decode"):
                self.stages.setdefault(stage, []).append(result["timing_ms"][stage])
            self.stages.setdefault("publish", []).append(publish_ms)
        if self.count >= self.frames + WARMUP_RESULTS and not self.done.is_set():
            self.last_at, self.last_cpu = time.perf_counter(), time.process_time()
            self.done.set()
            if self.daemon is not None:
                self.daemon.request_stop()

    def publish_stats(self, stats: dict[str, Any]) -> None:
        self.final_stats = stats  # the daemon's last stats cover the whole run (the interval is longer)


def run_bench(config: AppConfig, frames: int) -> dict[str, Any]:
    """Run the pipeline for `frames` results (after a short warm-up) and report fps and per-stage timings."""
    calibration = max(1, min(frames, CALIBRATION_FRAMES) // 2)
    before = stage_cpu_seconds(config, calibration)
    publisher = BenchPublisher(frames)
    daemon = Daemon(config, publisher=publisher, retry_source=False)  # a benchmark never waits for a source
    publisher.daemon = daemon
    code = daemon.run()
    if code != 0 and daemon.stop_reason == "the source failed":
        from edged.errors import SourceError

        raise SourceError(f"the source failed: {daemon.capture.worker.error if daemon.capture.worker else '?'}")
    capture = publisher.final_stats
    if publisher.first_at is None or publisher.last_at is None:
        measured = max(0, publisher.count - WARMUP_RESULTS)
        raise_incomplete(measured, frames)
    seconds = (publisher.last_at or 0.0) - (publisher.first_at or 0.0)
    stages = {name: _summary(values) for name, values in publisher.stages.items()}
    stages = {"capture": {"p50": capture["capture_ms"]["p50"], "p95": capture["capture_ms"]["p95"]}, **stages}
    bundle = daemon.models.current if daemon.models else None
    fps = frames / seconds if seconds > 0 else None
    limit = cpu_bound_limit([(before, calibration), (stage_cpu_seconds(config, calibration), calibration)])
    limit["fraction"] = round(fps / limit["limit_fps"], 3) if fps and limit["limit_fps"] else None
    limit["pipeline_cpu_ms_per_frame"] = round((publisher.last_cpu - publisher.first_cpu) * 1000.0 / frames, 3)
    return {
        "fps": round(fps, 2) if fps is not None else None,
        "frames": frames,
        "seconds": round(seconds, 4),
        "stages": stages,
        "dropped": capture["totals"]["dropped"],
        "model": bundle.info.as_dict() if bundle else None,
        "threads": config.model.num_threads,
        "accelerator": bundle.accelerator if bundle else None,
        "cpu_bound": limit,
    }


def raise_incomplete(measured: int, wanted: int) -> NoReturn:
    from edged.errors import SourceError

    raise SourceError(
        f"the source ended after {measured} measured frames of {wanted}: use a longer video, or a looping source"
    )


def _summary(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": _round(percentile(values, 0.5)),
        "p95": _round(percentile(values, 0.95)),
        "mean": _round(sum(values) / len(values) if values else None),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
