"""A real HTTP MJPEG camera on loopback, so stream tests exercise OpenCV's FFmpeg backend end to end.

The stream is what IP cameras and `ffmpeg -f mpjpeg` serve: a `multipart/x-mixed-replace` response whose parts
are JPEG-encoded synthetic scenes. It reads with a plain `cv2.VideoCapture(url, cv2.CAP_FFMPEG)`, which hands it
to FFmpeg's `mpjpeg` demuxer. What that demuxer needs, checked with opencv-python-headless 5.0
(bundled libavformat 62):

- the body must start with the `--boundary` line: FFmpeg recognizes the format by probing the first bytes, and
  any preamble makes the open fail;
- every part needs `Content-Type: image/jpeg`: without it the open succeeds but every read fails;
- `Content-Length` per part is optional (without it the demuxer scans for the next `\\r\\n--`), but sent here so
  JPEG bytes are never mistaken for a boundary;
- neither the URL (any path; `.mjpg` is not needed), nor the response's Content-Type, nor the `boundary=` it
  names matter: FFmpeg ignores the declared boundary unless its `strict_mime_boundary` option is set.

`stop()` closes the listening socket and shuts down every client connection, so a connected reader sees the
stream break (EOF) rather than a stall; `restart()` serves again on the same port, as a rebooted camera would.
`pause()` keeps connections open but sends nothing (a hung camera), which only a read timeout can detect.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from edged.sources.shapes import draw_scene, random_shapes

log = logging.getLogger(__name__)

BOUNDARY = "edgedframe"
STREAM_PATH = "/stream.mjpg"


def encode_scenes(count: int, width: int, height: int, seed: int) -> list[bytes]:
    """A few JPEG frames, encoded once so serving them costs no CPU on a shared test machine."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        image = draw_scene(rng, width, height, random_shapes(rng, 2))
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise RuntimeError("OpenCV could not encode a JPEG test frame")
        frames.append(encoded.tobytes())
    return frames


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != STREAM_PATH:
            self.send_error(404, f"the stream is at {STREAM_PATH}")
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Connection", "close")
        self.end_headers()
        owner = self.server.owner
        if not owner._register(self.connection):
            return
        try:
            self._stream(owner)
        except OSError as exc:  # the client left, or stop() shut the connection down
            log.debug("MJPEG client %s gone: %s", self.client_address, exc)
        finally:
            owner._unregister(self.connection)

    def _stream(self, owner: MjpegServer) -> None:
        index = 0
        while not owner._stopping.is_set():
            if owner._paused.is_set():
                owner._stopping.wait(owner.period)
                continue
            jpeg = owner.frames[index % len(owner.frames)]
            header = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            self.wfile.write(header.encode("ascii") + jpeg + b"\r\n")
            self.wfile.flush()
            owner.frames_sent += 1
            index += 1
            owner._stopping.wait(owner.period)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("MJPEG %s: " + format, self.client_address[0], *args)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: MjpegServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class MjpegServer:
    """An MJPEG-over-HTTP camera on 127.0.0.1, served from a background thread; use as a context manager."""

    def __init__(self, width: int = 160, height: int = 120, fps: float = 20.0, seed: int = 0) -> None:
        self.frames = encode_scenes(8, width, height, seed)
        self.period = 1.0 / fps
        self.port = 0  # chosen by the OS on the first start, then kept for restart()
        self.frames_sent = 0
        self._stopping = threading.Event()
        self._paused = threading.Event()
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._http: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{STREAM_PATH}"

    @property
    def running(self) -> bool:
        return self._http is not None

    @property
    def client_count(self) -> int:
        """Readers connected right now (a reader that went away is noticed at the next frame sent)."""
        with self._lock:
            return len(self._clients)

    def start(self) -> None:
        if self._http is not None:
            raise RuntimeError("the MJPEG server is already running")
        self._stopping.clear()
        self._paused.clear()
        self._http = _HttpServer(("127.0.0.1", self.port), self)
        self.port = int(self._http.server_address[1])
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, name=f"mjpeg:{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Close the listening socket and break every open stream, like a camera that lost power."""
        http, thread = self._http, self._thread
        if http is None or thread is None:
            return
        self._stopping.set()
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(OSError):  # already gone
                    client.shutdown(socket.SHUT_RDWR)
        http.shutdown()
        http.server_close()  # also joins the handler threads, which end once their socket is shut down
        thread.join()
        self._http = self._thread = None

    def pause(self) -> None:
        """Keep every connection open but stop sending frames."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def restart(self) -> None:
        """Stop, then serve again on the same port."""
        self.stop()
        self.start()

    def __enter__(self) -> MjpegServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _register(self, client: socket.socket) -> bool:
        with self._lock:
            if self._stopping.is_set():
                return False
            self._clients.add(client)
            return True

    def _unregister(self, client: socket.socket) -> None:
        with self._lock:
            self._clients.discard(client)
