"""The inference thread: turns the newest frame into a result with the bundle current at that moment.

Settings that may change live (rate limit, region of interest, thresholds and label filters) are read from the
current configuration at each frame boundary; derived values (the decode parameters) are recomputed only when
the configuration or the bundle changed.

A frame may arrive with its input prepared by the capture thread; `ModelBundle.predict` uses it only when it was
made for the bundle, frame size, colour order and ROI current here, and preprocesses the frame itself otherwise
(after a model swap, a new ROI or a new frame size). The prepared buffer goes back to the capture side once the
frame is done, never earlier.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from edged.app.events import Broadcast
from edged.app.faults import model_fault_from_environment
from edged.app.holders import ConfigRef, ModelHolder, PublisherHolder
from edged.app.mailbox import Captured, LatestFrameMailbox
from edged.app.stats import Stats
from edged.config.app import AppConfig
from edged.errors import EdgedError
from edged.inference.engine import DecodeParams, ModelBundle, decode_params
from edged.inference.preprocess import FULL_FRAME, Roi
from edged.results import build_result
from edged.types import Frame, ModelInfo, Prediction

log = logging.getLogger("edged.app.workers")


def roi_of(config: AppConfig) -> Roi:
    roi = config.pipeline.roi
    return Roi(*roi) if roi else FULL_FRAME


@dataclass(frozen=True)
class LastResult:
    """The newest frame and what the model made of it (for snapshots); it keeps no bundle alive."""

    frame: Frame
    prediction: Prediction
    model: ModelInfo


class InferenceWorker:
    def __init__(
        self,
        models: ModelHolder,
        mailbox: LatestFrameMailbox,
        publishers: PublisherHolder,
        stats: Stats,
        settings: ConfigRef,
        results: Broadcast[dict[str, Any]],
        stop: threading.Event,
        paused: threading.Event,
    ) -> None:
        self.models = models
        self.mailbox = mailbox
        self.publishers = publishers
        self.stats = stats
        self.settings = settings
        self.results = results
        self.stop_event = stop
        self.paused = paused
        self.run_id = uuid.uuid4().hex
        self.seq = 0
        self.last: LastResult | None = None
        self.inferring = threading.Lock()  # held from the pause check to the publish: pause() waits on it
        self.busy_since: float | None = None  # monotonic start of the frame in flight, None between frames
        self._derived_for: tuple[int, int] | None = None  # (config generation, bundle serial) of the values below
        self._params: DecodeParams | None = None
        self._roi: Roi = FULL_FRAME
        self._seen_dropped = 0
        self._fault = model_fault_from_environment()  # TEST-ONLY fault injection; None on a real device

    def stuck_for(self, now: float) -> float:
        """Seconds spent on the frame in flight (0 between frames): how a hung invoke() is noticed."""
        started = self.busy_since
        return 0.0 if started is None else max(0.0, now - started)

    def _count_mailbox_drops(self, skipped: bool) -> None:
        dropped = self.mailbox.dropped
        if dropped != self._seen_dropped:
            count, self._seen_dropped = dropped - self._seen_dropped, dropped
            if skipped:
                self.stats.frames_skipped(count)
            else:
                self.stats.frames_dropped(count)

    def run(self) -> None:
        next_slot = 0.0
        while not self.stop_event.is_set():
            min_period = self.settings.current.pipeline.min_period_s
            if min_period:
                self._count_mailbox_drops(skipped=False)  # replaced while the model was busy
                wait = next_slot - time.monotonic()
                if wait > 0 and self.stop_event.wait(wait):
                    break
                self._count_mailbox_drops(skipped=True)  # replaced while waiting for the next slot, on purpose
            captured = self.mailbox.take(timeout=0.5)
            self._count_mailbox_drops(skipped=False)
            if captured is None:
                if self.mailbox.closed:
                    break
                continue
            try:
                with self.inferring:
                    if self.paused.is_set():
                        continue
                    self.busy_since = time.monotonic()
                    next_slot = self.busy_since + min_period
                    try:
                        self._infer(captured)
                    finally:
                        self.busy_since = None
            finally:
                captured.release()

    def _derive(self, generation: int, config: AppConfig, bundle: ModelBundle) -> DecodeParams:
        key = (generation, bundle.serial)
        if self._derived_for != key or self._params is None:
            self._params = decode_params(bundle.spec, bundle.model_config(config.model))
            self._roi = roi_of(config)
            self._derived_for = key
        return self._params

    def _infer(self, captured: Captured) -> None:
        frame = captured.frame
        generation = self.settings.generation  # before the config: a change in between is seen at the next frame
        config = self.settings.current
        with self.models.using() as bundle:  # read once: a swap takes effect at the next frame
            try:
                params = self._derive(generation, config, bundle)
                if self._fault is not None:
                    self._fault.arm(bundle)
                prediction = bundle.predict(
                    frame.image, frame.color, roi=self._roi, params=params, prepared=captured.prepared
                )
            except (EdgedError, RuntimeError, ValueError) as exc:
                self.stats.inference_failed()
                log.error("inference failed on frame %d: %s", frame.index, exc)
                return
            published_at, published_mono = time.time(), time.monotonic()
            result = build_result(
                run_id=self.run_id,
                seq=self.seq,
                device_id=config.device_id,
                frame=frame,
                prediction=prediction,
                model=bundle.info,
                published_at=published_at,
                published_mono=published_mono,
            )
            self.seq += 1
            self.publishers.publish_result(result)
            if frame.processed is not None:
                frame.processed()  # an image folder remembers (or moves) the file now that its result is out
            self.last = LastResult(frame, prediction, bundle.info)
        self.stats.result(result["timing_ms"])
        self.results.emit(result)
