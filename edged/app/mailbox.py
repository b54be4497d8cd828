"""A one-slot mailbox between capture and inference: the newest frame wins, stale ones are counted as dropped.

Latency stays bounded when the model is slower than the camera, because nothing ever queues. For sources that
produce frames on demand (a file read as fast as possible, an image folder), `put(..., wait=True)` applies
back-pressure instead, so every frame is processed and none is dropped.
"""

from __future__ import annotations

import threading

from edged.types import Frame


class LatestFrameMailbox:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self.dropped = 0

    def put(self, frame: Frame, wait: bool = False, timeout: float | None = None) -> bool:
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
            self._frame = frame
            self._cond.notify_all()
            return True

    def take(self, timeout: float | None = None) -> Frame | None:
        """The newest frame, waiting up to `timeout`; None on timeout or once closed and empty."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
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
