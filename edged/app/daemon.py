"""The daemon: config → model, source, publisher → threads; stats on a timer; a clean stop within a time limit."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import cv2
import numpy as np

from edged import __version__
from edged.annotate import annotate
from edged.app.liveness import Liveness
from edged.app.mailbox import LatestFrameMailbox
from edged.app.sdnotify import SystemdNotifier
from edged.app.stats import Stats
from edged.app.workers import CaptureWorker, InferenceWorker, ModelHolder
from edged.config.app import AppConfig
from edged.inference.engine import ModelBundle, known_label_index
from edged.inference.loader import load_bundle
from edged.inference.preprocess import FULL_FRAME, Roi
from edged.publish.base import Publisher
from edged.publish.factory import create_publisher
from edged.results import utc_iso
from edged.sources.base import FrameSource, create_source

log = logging.getLogger(__name__)

PAUSE_WAIT_S = 10.0  # longer than any sane model's invoke; pause() never blocks forever


def roi_of(config: AppConfig) -> Roi:
    roi = config.pipeline.roi
    return Roi(*roi) if roi else FULL_FRAME


class Daemon:
    """Runs until stopped (signal, command) or until a finite source is finished."""

    def __init__(
        self,
        config: AppConfig,
        *,
        publisher: Publisher | None = None,
        source: FrameSource | None = None,
        bundle: ModelBundle | None = None,
    ) -> None:
        self.config = config
        self.stop_event = threading.Event()
        self.paused_event = threading.Event()
        self.counters = Stats()
        self.mailbox = LatestFrameMailbox()
        self._publisher = publisher
        self._source = source
        self._bundle = bundle
        self.holder: ModelHolder | None = None
        self.inference: InferenceWorker | None = None
        self.capture: CaptureWorker | None = None
        self.started_at = time.time()
        self.exit_code = 0

    # ---- AppControl -------------------------------------------------------------------------------------------
    def pause(self) -> None:
        """Returns once the frame in flight is published, so a "paused" reply means no further results."""
        self.paused_event.set()
        worker = self.inference
        if worker is not None:
            if worker.inferring.acquire(timeout=PAUSE_WAIT_S):
                worker.inferring.release()
            else:
                log.warning(
                    "paused; the frame in flight is taking over %.0f s and will still be published", PAUSE_WAIT_S
                )
        self.emit("paused", {})

    def resume(self) -> None:
        self.paused_event.clear()
        self.emit("resumed", {})

    @property
    def paused(self) -> bool:
        return self.paused_event.is_set()

    def stats(self) -> dict[str, Any]:
        return self.stats_snapshot(reset=False)

    def state(self) -> dict[str, Any]:
        bundle = self.holder.current if self.holder else None
        return {
            "device_id": self.config.device_id,
            "edged_version": __version__,
            "run_id": self.inference.run_id if self.inference else None,
            "started_at": utc_iso(self.started_at),
            "uptime_s": round(time.time() - self.started_at, 1),
            "model": bundle.info.as_dict() if bundle else None,
            "task": bundle.spec.task if bundle else None,
            "accelerator": bundle.accelerator if bundle else None,
            "source": {
                "id": self.config.camera.id,
                "type": self.config.camera.type,
                "state": self.counters.source_state,
            },
            "paused": self.paused,
        }

    def snapshot_jpeg(self, annotated: bool) -> bytes | None:
        last = self.inference.last if self.inference else None
        if last is None:
            return None
        frame, prediction, _ = last
        image = (
            frame.image
            if frame.color == "bgr"
            else np.asarray(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR), dtype=np.uint8)
        )
        if annotated:
            image = annotate(image, prediction.labels, prediction.objects)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        return encoded.tobytes() if ok else None

    def check_update(self) -> dict[str, Any]:
        return {"ok": False, "reason": "model hosting is not configured"}

    # ---- lifecycle --------------------------------------------------------------------------------------------
    def emit(self, event: str, fields: dict[str, Any]) -> None:
        payload = {"event": event, "at": utc_iso(time.time()), **fields}
        if self._publisher is not None:
            self._publisher.publish_event(payload)
        if event == "source_state" and self._publisher is not None:
            self._publisher.publish_state(self.state())

    def stats_snapshot(self, reset: bool = True) -> dict[str, Any]:
        snapshot = self.counters.snapshot(reset=reset)
        snapshot["device_id"] = self.config.device_id
        snapshot["at"] = utc_iso(time.time())
        snapshot["paused"] = self.paused
        if self.inference is not None:
            snapshot["seq"] = self.inference.seq
            snapshot["inference_failures"] = self.inference.failures
        return snapshot

    def request_stop(self) -> None:
        self.stop_event.set()

    def start(self) -> None:
        """Load the model, open the publisher, start the threads. Raises EdgedError on a bad setup."""
        config = self.config
        bundle = self._bundle or load_bundle(config.model, roi=roi_of(config))
        log.info(
            "model %s (%s, %s, %s) on %s", bundle.info.name, bundle.spec.task, bundle.spec.decoder,
            bundle.info.sha256[:12], bundle.accelerator,
        )  # fmt: skip
        for name in getattr(config.publisher, "labels", []):  # Home Assistant entities for labels it never reports
            known_label_index(name, bundle.spec, "publisher.labels")
        self.holder = ModelHolder(bundle)
        source = self._source or create_source(config.camera)
        publisher = self._publisher or create_publisher(config)
        self._publisher = publisher
        self.inference = InferenceWorker(
            self.holder, self.mailbox, publisher, self.counters, config.pipeline, config.device_id,
            self.stop_event, self.paused_event,
        )  # fmt: skip
        self.capture = CaptureWorker(
            source, config.camera, config.pipeline, self.mailbox, self.counters, self.emit, self.stop_event
        )
        publisher.start(self)
        publisher.publish_state(self.state())
        self.emit("started", {"run_id": self.inference.run_id, "source": source.describe()})
        self.inference.start()
        self.capture.start()

    def run(self) -> int:
        """Start, supervise until stopped or finished, then shut down. Returns the exit code."""
        notifier = SystemdNotifier()
        self.start()
        assert self.inference is not None and self.holder is not None
        liveness = Liveness(notifier, self.inference, self.emit)
        notifier.ready(f"running {self.holder.current.info.name} on {self.config.camera.id}")
        interval = self.config.pipeline.stats_interval_s
        next_stats = time.monotonic() + interval
        while not self.stop_event.is_set() and self.inference.is_alive():
            self.inference.join(timeout=min(0.5, max(0.0, next_stats - time.monotonic())))
            now = time.monotonic()
            liveness.tick(now)
            if now >= next_stats:
                notifier.status(self._report_stats())
                next_stats += interval
        notifier.stopping()
        try:
            return self.shutdown()
        finally:
            notifier.close()

    def _report_stats(self) -> str:
        """Log and publish the stats of the last interval; returns the log line."""
        snapshot = self.stats_snapshot()
        line = "in {:.1f} fps, out {:.1f} fps, dropped {}, inference p50 {} ms p95 {} ms, source {}".format(
            snapshot["input_fps"], snapshot["output_fps"], snapshot["dropped"], snapshot["inference_ms"]["p50"],
            snapshot["inference_ms"]["p95"], snapshot["source_state"],
        )  # fmt: skip
        log.info("stats: %s", line)
        if self._publisher is not None:
            self._publisher.publish_stats(snapshot)
        return line

    def shutdown(self) -> int:
        """Stop capture, finish the frame in flight, flush the publisher, all within shutdown_timeout_s."""
        deadline = time.monotonic() + self.config.pipeline.shutdown_timeout_s
        finished = not self.stop_event.is_set()
        self.stop_event.set()
        self.mailbox.close()
        for worker in (self.inference, self.capture):
            if worker is not None:
                worker.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.inference is not None and self.inference.is_alive():
            log.error("the frame in flight did not finish within the shutdown time limit")
            self.exit_code = 1
        if self._publisher is not None:
            self.emit("stopped", {"reason": "source finished" if finished else "stop requested"})
            self._publisher.publish_stats(self.stats_snapshot())
            if not self._publisher.flush(max(0.0, deadline - time.monotonic())):
                log.error("some messages were not delivered within the shutdown time limit")
                self.exit_code = 1
            self._publisher.stop()
        if self.counters.source_state == "failed":
            self.exit_code = 1
        return self.exit_code
