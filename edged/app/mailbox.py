"""A one-slot mailbox between capture and inference: the newest frame wins, stale ones are counted as dropped.

Latency stays bounded when the model is slower than the camera, because nothing ever queues. For sources that
produce frames on demand (a file read as fast as possible, an image folder), `put(..., wait=True)` applies
back-pressure instead, so every frame is processed and none is dropped.

A frame may travel with its input already prepared for the current model (`Captured.prepared`); the mailbox
hands a replaced frame's buffer back to its pool, since nobody will read it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from edged.inference.preprocess import PreparedInput
from edged.types import Frame


@dataclass(frozen=True)
class Captured:
    """A frame, and its model input when the capture side prepared it ahead of the inference thread."""

    frame: Frame
    prepared: PreparedInput | None = None

    def release(self) -> None:
        if self.prepared is not None:
            self.prepared.release()


class LatestFrameMailbox:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Captured | None = None
        self._closed = False
        self._waiting = 0  # takers blocked in take() right now
        self.dropped = 0

    def put(self, frame: Captured, wait: bool = False, timeout: float | None = None) -> bool:
        """Offer a frame. Returns False if the mailbox is closed (or, with `wait`, the slot stayed full)."""
        with self._cond:
            if wait:
                self._cond.wait_for(lambda: self._frame is None or self._closed, timeout)
                if self._frame is not None and not self._closed:
                    return False
            if self._closed:
                return False
            if self._frame is not None:
                self.dropped += 1
                self._frame.release()
            self._frame = frame
            self._cond.notify_all()
            return True

    def take(self, timeout: float | None = None) -> Captured | None:
        """The newest frame, waiting up to `timeout`; None on timeout or once closed and empty."""
        with self._cond:
            self._waiting += 1
            try:
                self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            finally:
                self._waiting -= 1
            frame, self._frame = self._frame, None
            if frame is not None:
                self._cond.notify_all()
            return frame

    def close(self) -> None:
        """No more frames: wakes every waiter; a frame still in the slot can be taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def consumer_waiting(self) -> bool:
        """The inference thread is idle, waiting for the next frame (read without the lock: a hint, not a promise)."""
        return self._waiting > 0
