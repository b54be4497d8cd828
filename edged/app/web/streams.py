"""The live view (MJPEG) and the event stream (server-sent events): long responses that must never slow the
pipeline.

Neither touches the inference thread. Each follows the results through a pull subscription of length 1, so a
client that reads slowly only ever gets the newest frame when it is ready again: frames are lost, never queued.
The JPEG of a frame is encoded once, however many clients watch (`JpegCache`). A slow reader blocks only its own
server thread, in the server's bounded output buffer; the number of such responses is capped.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from edged.app.events import Broadcast

BOUNDARY = "edgedframe"
MJPEG_CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
KEEPALIVE_S = 15.0
#: Least time between two results sent on one event stream (the page shows a few per second at most).
RESULT_PERIOD_S = 0.25


class Pictures(Protocol):
    """What the streams need from the daemon."""

    @property
    def last_frame(self) -> object | None: ...

    def snapshot_jpeg(self, annotated: bool) -> bytes | None: ...


class JpegCache:
    """The newest frame as JPEG, encoded once per frame and drawing mode, shared by every client.

    `max_age_s` lets viewers share one encoding even while the model makes newer frames: at 80 results a second,
    three viewers at 5 frames a second would otherwise each find a new frame and encode 15 JPEGs a second
    instead of 5 (a 720p JPEG costs about 10 ms of CPU here).
    """

    def __init__(self, pictures: Pictures, clock: Callable[[], float] = time.monotonic) -> None:
        self._pictures = pictures
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: dict[bool, tuple[object, float, bytes]] = {}
        self.encoded = 0

    def latest(self, annotated: bool, max_age_s: float = 0.0) -> bytes | None:
        with self._lock:  # held while encoding: a second client waits for this JPEG instead of making its own
            frame = self._pictures.last_frame
            if frame is None:
                return None
            now = self._clock()
            cached = self._cached.get(annotated)
            if cached is not None and (cached[0] is frame or now - cached[1] < max_age_s):
                return cached[2]
            jpeg = self._pictures.snapshot_jpeg(annotated)
            if jpeg is not None:
                self._cached[annotated] = (frame, now, jpeg)
                self.encoded += 1
            return jpeg


class Slots:
    """A cap on concurrent long responses of one kind."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self.in_use = 0

    def take(self) -> bool:
        with self._lock:
            if self.in_use >= self.limit:
                return False
            self.in_use += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.in_use -= 1


class Released:
    """A WSGI response body that gives its slot back exactly once when the server closes it, even if it was never
    iterated (the client went away first)."""

    def __init__(self, body: Iterator[bytes], release: Callable[[], None]) -> None:
        self._body = body
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        return self._body

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        try:
            if close is not None:
                close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


def mjpeg_part(jpeg: bytes) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
    return head + jpeg + b"\r\n"


def mjpeg(
    cache: JpegCache,
    results: Broadcast[dict[str, Any]],
    fps: float,
    stopping: threading.Event,
) -> Iterator[bytes]:
    """multipart/x-mixed-replace parts: the newest annotated frame, at most `fps` a second, only when new."""
    period = 1.0 / fps
    new_results = results.subscribe(maxlen=1)
    try:
        jpeg = cache.latest(True)
        if jpeg is not None:  # the picture at once, before the next result
            yield mjpeg_part(jpeg)
        next_at = time.monotonic() + period
        while not stopping.is_set():
            wait = next_at - time.monotonic()
            if wait > 0 and stopping.wait(wait):
                break
            if new_results.get(timeout=1.0) is None:
                continue  # paused or between frames; the subscription wakes this on the next result
            jpeg = cache.latest(True, max_age_s=period)
            if jpeg is not None:
                yield mjpeg_part(jpeg)
                next_at = time.monotonic() + period
    finally:
        new_results.close()


def sse(name: str, payload: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def event_stream(
    events: Broadcast[dict[str, object]],
    results: Broadcast[dict[str, Any]],
    stopping: threading.Event,
) -> Iterator[bytes]:
    """Lifecycle events as `event: edged`, results (a few per second at most) as `event: result`."""
    lifecycle = events.subscribe(maxlen=64)
    newest = results.subscribe(maxlen=1)
    try:
        yield b"retry: 2000\n\n"
        last_result = last_write = time.monotonic()
        while not stopping.is_set():
            event = lifecycle.get(timeout=RESULT_PERIOD_S)
            now = time.monotonic()
            if event is not None:
                yield sse("edged", event)
                last_write = now
            if now - last_result >= RESULT_PERIOD_S:
                result = newest.get(timeout=0)
                if result is not None:
                    yield sse("result", result)
                    last_result = last_write = now
            if now - last_write >= KEEPALIVE_S:
                yield b": keep-alive\n\n"  # also how a client that went away is noticed
                last_write = now
    finally:
        lifecycle.close()
        newest.close()
