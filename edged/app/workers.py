"""The capture and inference threads. Capture keeps the mailbox filled with the newest frame and heals a failed
source with backoff; inference turns the newest frame into a result with the bundle current at that moment.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from edged.app.backoff import Backoff
from edged.app.mailbox import LatestFrameMailbox
from edged.app.stats import Stats
from edged.config.camera import CameraConfig
from edged.config.pipeline import PipelineConfig
from edged.errors import EdgedError, SourceError
from edged.inference.engine import ModelBundle
from edged.publish.base import Publisher
from edged.results import build_result
from edged.sources.base import FrameSource
from edged.sources.locations import classify
from edged.types import Frame, Prediction

log = logging.getLogger(__name__)

EventSink = Callable[[str, dict[str, Any]], None]

_ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
_FLIPS = {"horizontal": 1, "vertical": 0, "both": -1}


def is_live(config: CameraConfig) -> bool:
    """Live sources produce frames whether read or not (latest frame wins); others wait for the pipeline."""
    if config.type == "images":
        return False
    if config.type == "synthetic":
        return config.realtime
    if config.type == "opencv":
        kind, _ = classify(config.source)
        return config.realtime or kind != "file"
    return True


def orient(frame: Frame, rotate: int, flip: str) -> Frame:
    """Rotate (clockwise) then flip a frame, for cameras mounted sideways or upside down."""
    image = frame.image
    if rotate:
        image = np.asarray(cv2.rotate(image, _ROTATIONS[rotate]), dtype=np.uint8)
    if flip != "none":
        image = np.asarray(cv2.flip(image, _FLIPS[flip]), dtype=np.uint8)
    return replace(frame, image=image)


class ModelHolder:
    """The current bundle; replaced by one reference assignment, read once per frame by the inference thread."""

    def __init__(self, bundle: ModelBundle) -> None:
        self._bundle = bundle

    @property
    def current(self) -> ModelBundle:
        return self._bundle

    def swap(self, bundle: ModelBundle) -> ModelBundle:
        old, self._bundle = self._bundle, bundle
        return old


class CaptureWorker(threading.Thread):
    def __init__(
        self,
        source: FrameSource,
        camera: CameraConfig,
        pipeline: PipelineConfig,
        mailbox: LatestFrameMailbox,
        stats: Stats,
        emit: EventSink,
        stop: threading.Event,
    ) -> None:
        super().__init__(name="edged-capture", daemon=True)
        self.source = source
        self.camera = camera
        self.pipeline = pipeline
        self.mailbox = mailbox
        self.stats = stats
        self.emit = emit
        self.stop_event = stop
        self.live = is_live(camera)
        self.backoff = Backoff(camera.reconnect)
        self._size: tuple[int, int] | None = None
        self._black_streak = 0

    def _state(self, state: str, detail: str = "") -> None:
        if state == self.stats.source_state:
            return
        self.stats.source_state = state
        self.emit("source_state", {"source": self.camera.id, "state": state, "detail": detail})

    def _failed(self, error: EdgedError) -> bool:
        """Wait before the next attempt; False when the attempts are exhausted."""
        self.stats.source_error()
        if self.backoff.exhausted:
            log.error("%s: %s; giving up after %d attempts", self.source.describe(), error, self.backoff.attempts)
            self._state("failed", str(error))
            return False
        delay = self.backoff.next_delay()
        log.warning("%s: %s; retrying in %.1f s (attempt %d)", self.source.describe(), error, delay,
                    self.backoff.attempts)  # fmt: skip
        self._state("reconnecting", str(error))
        self.stop_event.wait(delay)
        return True

    def _check(self, frame: Frame) -> bool:
        """Log frame-size changes and black frames; True when the frame is black."""
        size = (frame.width, frame.height)
        if self._size is not None and size != self._size:
            log.info("%s: frame size changed from %dx%d to %dx%d", self.camera.id, *self._size, *size)
            self.emit("frame_size_changed", {"source": self.camera.id, "width": size[0], "height": size[1]})
        self._size = size
        black = int(frame.image[::16, ::16].max()) < self.pipeline.black_frame_level
        if black:
            self._black_streak += 1
            if self._black_streak == 30:
                log.warning("%s: the camera returns black frames (lens covered, no light, or no signal?)",
                            self.camera.id)  # fmt: skip
                self.emit("black_frames", {"source": self.camera.id, "state": "started"})
        else:
            if self._black_streak >= 30:
                log.info("%s: frames are no longer black", self.camera.id)
                self.emit("black_frames", {"source": self.camera.id, "state": "ended"})
            self._black_streak = 0
        return black

    def _deliver(self, frame: Frame) -> None:
        if self.live:
            self.mailbox.put(frame)
            return
        while not self.stop_event.is_set() and not self.mailbox.closed:
            if self.mailbox.put(frame, wait=True, timeout=0.5):
                return

    def run(self) -> None:
        opened = False
        try:
            while not self.stop_event.is_set():
                if not opened:
                    try:
                        self.source.open()
                    except SourceError as exc:
                        if not self._failed(exc):
                            break
                        continue
                    opened = True
                    if self.backoff.attempts:
                        log.info("%s: reconnected after %d attempt(s)", self.source.describe(), self.backoff.attempts)
                    self.backoff.reset()
                    self._state("streaming")
                try:
                    read_started = time.perf_counter()
                    frame = self.source.read()
                    read_ms = (time.perf_counter() - read_started) * 1000.0
                except SourceError as exc:
                    self.source.close()
                    opened = False
                    if not self._failed(exc):
                        break
                    continue
                if frame is None:
                    log.info("%s: finished (no more frames)", self.source.describe())
                    self._state("finished")
                    break
                if frame.image is None or frame.image.size == 0:
                    self.source.close()
                    opened = False
                    if not self._failed(SourceError("the source returned an empty frame")):
                        break
                    continue
                if self.pipeline.rotate or self.pipeline.flip != "none":
                    frame = orient(frame, self.pipeline.rotate, self.pipeline.flip)
                self.stats.frame_captured(read_ms, black=self._check(frame))
                self._deliver(frame)
        finally:
            if self.stop_event.is_set():
                self._state("stopped")
            self.source.close()
            self.mailbox.close()


class InferenceWorker(threading.Thread):
    def __init__(
        self,
        holder: ModelHolder,
        mailbox: LatestFrameMailbox,
        publisher: Publisher,
        stats: Stats,
        pipeline: PipelineConfig,
        device_id: str,
        stop: threading.Event,
        paused: threading.Event,
    ) -> None:
        super().__init__(name="edged-inference", daemon=True)
        self.holder = holder
        self.mailbox = mailbox
        self.publisher = publisher
        self.stats = stats
        self.min_period = pipeline.min_period_s
        self.device_id = device_id
        self.stop_event = stop
        self.paused = paused
        self.run_id = uuid.uuid4().hex
        self.seq = 0
        self.last: tuple[Frame, Prediction, ModelBundle] | None = None
        self.failures = 0
        self.inferring = threading.Lock()  # held from the pause check to the publish: pause() waits on it
        self.busy_since: float | None = None  # monotonic start of the frame in flight, None between frames

    def stuck_for(self, now: float) -> float:
        """Seconds spent on the frame in flight (0 between frames): how a hung invoke() is noticed."""
        started = self.busy_since
        return 0.0 if started is None else max(0.0, now - started)

    def run(self) -> None:
        seen_dropped = 0
        next_slot = 0.0
        while not self.stop_event.is_set():
            if self.min_period:
                wait = next_slot - time.monotonic()
                if wait > 0 and self.stop_event.wait(wait):
                    break
            frame = self.mailbox.take(timeout=0.5)
            dropped = self.mailbox.dropped
            if dropped != seen_dropped:
                self.stats.frames_dropped(dropped - seen_dropped)
                seen_dropped = dropped
            if frame is None:
                if self.mailbox.closed:
                    break
                continue
            with self.inferring:
                if self.paused.is_set():
                    continue
                self.busy_since = time.monotonic()
                next_slot = self.busy_since + self.min_period
                try:
                    self._infer(frame)
                finally:
                    self.busy_since = None

    def _infer(self, frame: Frame) -> None:
        bundle = self.holder.current  # read once: a swap takes effect at the next frame
        try:
            prediction = bundle.predict(frame.image, frame.color)
        except (EdgedError, RuntimeError, ValueError) as exc:
            self.failures += 1
            log.error("inference failed on frame %d: %s", frame.index, exc)
            return
        published_at, published_mono = time.time(), time.monotonic()
        result = build_result(
            run_id=self.run_id,
            seq=self.seq,
            device_id=self.device_id,
            frame=frame,
            prediction=prediction,
            model=bundle.info,
            published_at=published_at,
            published_mono=published_mono,
        )
        self.seq += 1
        self.publisher.publish_result(result)
        self.last = (frame, prediction, bundle)
        self.stats.result(prediction.timing_ms["inference"], result["timing_ms"]["capture_to_publish"])
