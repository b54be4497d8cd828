"""The capture side: one thread keeps the mailbox filled with the newest frame and heals a failed source with
backoff. It can be stopped and started again with another camera while inference waits on the mailbox.

For sources whose every frame is inferred (files read as fast as possible, image folders), the capture thread
also prepares each frame's model input (`InputPreparer`) while the inference thread runs the previous frame: that
takes the preprocessing off the inference thread's critical path, and the frame is still hot in the cache right
after decoding, so the preprocessing itself costs less there. For live sources it does so only while the
inference thread waits for a frame (`LIVE_PREPARE`). The inference thread checks that a prepared input was made
for its bundle, frame size, colour order and ROI, and preprocesses again when it was not.

A source that cannot work at all (a missing file, picamera2 not installed: `SourceError.permanent`) fails at
start, before any thread runs; the same error later, or transient errors past `reconnect.max_attempts`, end the
capture side as `failed`, which stops the daemon with exit status 1.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

import cv2
import numpy as np

from edged.app.backoff import Backoff
from edged.app.holders import ConfigRef
from edged.app.inference import roi_of
from edged.app.mailbox import Captured, LatestFrameMailbox
from edged.app.stats import Stats
from edged.app.threads import Threads
from edged.config.app import AppConfig
from edged.config.camera import SourceConfig
from edged.errors import EdgedError, SourceError
from edged.inference.preprocess import InputPreparer, InputRecipe, PreparedInput
from edged.sources.base import FrameSource, create_source
from edged.types import Frame

log = logging.getLogger("edged.app.workers")

Outcome = Literal["running", "finished", "failed", "stopped"]
#: (state, detail): called on every source state change (starting, streaming, reconnecting, ...).
StateSink = Callable[[str, str], None]
EventSink = Callable[[str, dict[str, object]], None]
#: The input recipe of the model running now (None before there is one): what the capture side prepares for.
RecipeSource = Callable[[], InputRecipe | None]

_ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
_FLIPS = {"horizontal": 1, "vertical": 0, "both": -1}
BLACK_STREAK = 30  # consecutive black frames before it is reported
#: When the capture thread prepares a live source's frame: "idle" = only while the inference thread is waiting
#: for a frame (it is then certain to take this one at once, and nothing competes for the CPU); a frame that
#: arrives while the model is busy may be replaced before it is taken, and preparing it would take CPU from the
#: invoke in flight. "always" and "never" are there for `tools/bench.py live`, which measured the three.
LIVE_PREPARE: Literal["idle", "always", "never"] = "idle"


def _no_recipe() -> InputRecipe | None:
    return None


def orient(frame: Frame, rotate: int, flip: str) -> Frame:
    """Rotate (clockwise) then flip a frame, for cameras mounted sideways or upside down."""
    image = frame.image
    if rotate:
        image = np.asarray(cv2.rotate(image, _ROTATIONS[rotate]), dtype=np.uint8)
    if flip != "none":
        image = np.asarray(cv2.flip(image, _FLIPS[flip]), dtype=np.uint8)
    return replace(frame, image=image)


class CaptureWorker:
    """One source, read until it ends, fails for good, or this worker is stopped (its own stop event)."""

    def __init__(
        self,
        source: FrameSource,
        camera: SourceConfig,
        settings: ConfigRef,
        mailbox: LatestFrameMailbox,
        stats: Stats,
        on_state: StateSink,
        emit: EventSink,
        *,
        opened: bool,
        first_error: SourceError | None = None,
        retry: bool = True,
        recipe: RecipeSource = _no_recipe,
    ) -> None:
        self.source = source
        self.camera = camera
        self.settings = settings
        self.mailbox = mailbox
        self.stats = stats
        self.on_state = on_state
        self.emit = emit
        self.live = camera.is_live()
        self.backoff = Backoff(camera.reconnect)
        self.stop_event = threading.Event()
        self.outcome: Outcome = "running"
        self.error: str | None = None
        self.busy_since: float | None = None  # monotonic start of the source call in progress
        self._opened = opened
        self._first_error = first_error
        self._retry = retry
        self._size: tuple[int, int] | None = None
        self._black_streak = 0
        self._recipe = recipe
        self._preparer = InputPreparer()  # this worker's own: plans and buffers are used by one thread
        self._live_prepare = LIVE_PREPARE

    def _failed(self, error: EdgedError) -> bool:
        """Wait before the next attempt; False when this error ends the capture side."""
        self.stats.source_error()
        permanent = isinstance(error, SourceError) and error.permanent
        if permanent or not self._retry or self.backoff.exhausted:
            why = "this cannot heal by waiting" if permanent else (
                "retries are off" if not self._retry else f"giving up after {self.backoff.attempts} attempts"
            )  # fmt: skip
            log.error("%s: %s; %s", self.source.describe(), error, why)
            self.error = str(error)
            self.outcome = "failed"
            self.on_state("failed", str(error))
            return False
        delay = self.backoff.next_delay()
        log.warning("%s: %s; retrying in %.1f s (attempt %d)", self.source.describe(), error, delay,
                    self.backoff.attempts)  # fmt: skip
        self.on_state("reconnecting", str(error))
        self.stop_event.wait(delay)
        return True

    def _check(self, frame: Frame, black_level: int) -> bool:
        """Log frame-size changes and black frames; True when the frame is black."""
        size = (frame.width, frame.height)
        if self._size is not None and size != self._size:
            log.info("%s: frame size changed from %dx%d to %dx%d", self.camera.id, *self._size, *size)
            self.emit("frame_size_changed", {"source": self.camera.id, "width": size[0], "height": size[1]})
        self._size = size
        black = int(frame.image[::16, ::16].max()) < black_level
        if black:
            self._black_streak += 1
            if self._black_streak == BLACK_STREAK:
                log.warning("%s: the camera returns black frames (lens covered, no light, or no signal?)",
                            self.camera.id)  # fmt: skip
                self.emit("black_frames", {"source": self.camera.id, "state": "started"})
        else:
            if self._black_streak >= BLACK_STREAK:
                log.info("%s: frames are no longer black", self.camera.id)
                self.emit("black_frames", {"source": self.camera.id, "state": "ended"})
            self._black_streak = 0
        return black

    def _prepared(self, frame: Frame, config: AppConfig) -> PreparedInput | None:
        """The frame's input for the model running now, or None (the inference thread then preprocesses it)."""
        if self.live and (
            self._live_prepare == "never" or (self._live_prepare == "idle" and not self.mailbox.consumer_waiting)
        ):
            return None
        recipe = self._recipe()
        if recipe is None:
            return None
        try:
            return self._preparer.prepare(recipe, frame.image, frame.color, roi_of(config))
        except (cv2.error, ValueError) as exc:  # the inference thread tries again, and reports what fails
            log.debug("%s: could not prepare frame %d ahead: %s", self.camera.id, frame.index, exc)
            return None

    def _deliver(self, captured: Captured) -> None:
        if self.live:
            self.mailbox.put(captured)
            return
        while not self.stop_event.is_set() and not self.mailbox.closed:  # back-pressure: every frame is inferred
            if self.mailbox.put(captured, wait=True, timeout=0.5):
                return

    def _open(self) -> bool:
        """Open (or reopen) the source; False when the capture side ends."""
        if self._first_error is not None:
            error, self._first_error = self._first_error, None
            if not self._failed(error):
                return False
        while not self.stop_event.is_set():
            try:
                self.busy_since = time.monotonic()
                self.source.open()
            except SourceError as exc:
                if not self._failed(exc):
                    return False
                continue
            finally:
                self.busy_since = None
            if self.backoff.attempts:
                log.info("%s: reconnected after %d attempt(s)", self.source.describe(), self.backoff.attempts)
            self.backoff.reset()
            self.on_state("streaming", "")
            return True
        return False

    def _read(self) -> Frame | SourceError | None:
        started = time.monotonic()
        self.busy_since = started
        try:
            return self.source.read()
        except SourceError as exc:
            return exc
        finally:
            self.busy_since = None

    def run(self) -> None:
        try:
            if self._opened:
                self.on_state("streaming", "")
            while not self.stop_event.is_set():
                if not self._opened:
                    if not self._open():
                        break
                    self._opened = True
                read_started = time.perf_counter()
                frame = self._read()
                read_ms = (time.perf_counter() - read_started) * 1000.0
                if isinstance(frame, SourceError) or (frame is not None and frame.image.size == 0):
                    error = (
                        frame if isinstance(frame, SourceError) else SourceError("the source returned an empty frame")
                    )
                    self.source.close()
                    self._opened = False
                    if not self._failed(error):
                        break
                    continue
                if frame is None:
                    if self.stop_event.is_set():
                        break
                    log.info("%s: finished (no more frames)", self.source.describe())
                    self.outcome = "finished"
                    self.on_state("finished", "")
                    break
                config = self.settings.current  # live settings, read at a frame boundary
                pipeline = config.pipeline
                if pipeline.rotate or pipeline.flip != "none":
                    frame = orient(frame, pipeline.rotate, pipeline.flip)
                self.stats.frame_captured(read_ms, black=self._check(frame, pipeline.black_frame_level))
                self._deliver(Captured(frame, self._prepared(frame, config)))
        finally:
            if self.outcome == "running":
                self.outcome = "stopped"
            self.source.close()

    def stuck_for(self, now: float) -> float:
        started = self.busy_since
        return 0.0 if started is None else max(0.0, now - started)


class CaptureSide:
    """Starts, stops and restarts the capture thread; the mailbox (and so inference) outlives it."""

    def __init__(
        self,
        threads: Threads,
        settings: ConfigRef,
        mailbox: LatestFrameMailbox,
        stats: Stats,
        on_state: StateSink,
        emit: EventSink,
        recipe: RecipeSource = _no_recipe,
    ) -> None:
        self._threads = threads
        self._settings = settings
        self._mailbox = mailbox
        self._stats = stats
        self._on_state = on_state
        self._emit = emit
        self._recipe = recipe
        self.worker: CaptureWorker | None = None
        self._thread: threading.Thread | None = None
        self._generation = 0

    def open(self, camera: SourceConfig, source: FrameSource | None = None, *, retry: bool = True) -> CaptureWorker:
        """Build the source and open it once, here: a permanent error raises now, a transient one is retried later.

        The worker is returned unstarted; `start` runs it.
        """
        source = source if source is not None else create_source(camera)
        use_state_dir = getattr(source, "use_state_dir", None)  # sources that keep state (a watched folder)
        if callable(use_state_dir):
            use_state_dir(self._settings.current.state_dir)
        opened, first_error = False, None
        try:
            source.open()
            opened = True
        except SourceError as exc:
            if exc.permanent:
                source.close()
                raise SourceError(f"camera: {exc}", permanent=True) from exc
            first_error = exc
        return CaptureWorker(
            source, camera, self._settings, self._mailbox, self._stats, self._on_state, self._emit,
            opened=opened, first_error=first_error, retry=retry, recipe=self._recipe,
        )  # fmt: skip

    def start(self, worker: CaptureWorker) -> None:
        self._generation += 1
        self.worker = worker
        self._thread = self._threads.spawn(f"edged-capture-{self._generation}", worker.run)

    def stop(self, timeout_s: float) -> bool:
        """Stop the capture thread; False (and the worker left behind) if it is still stuck after timeout_s."""
        worker, thread = self.worker, self._thread
        if worker is None or thread is None:
            return True
        worker.stop_event.set()
        interrupt = getattr(worker.source, "interrupt", None)
        if callable(interrupt):
            interrupt()
        thread.join(timeout_s)
        return not thread.is_alive()

    def restart(self, camera: SourceConfig, timeout_s: float, source: FrameSource | None = None) -> None:
        """Replace the camera: the new one is opened first, so a permanent error leaves the old one running."""
        self.replace(self.open(camera, source), timeout_s)

    def replace(self, worker: CaptureWorker, timeout_s: float) -> None:
        """Stop the running camera and start `worker` (from `open`, so its source is already open)."""
        if not self.stop(timeout_s):
            log.error("the old capture thread is still stuck in %s; starting the new camera anyway",
                      self.worker.source.describe() if self.worker else "?")  # fmt: skip
        self.start(worker)

    @property
    def outcome(self) -> Outcome:
        return self.worker.outcome if self.worker is not None else "stopped"

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
