"""USB/V4L2 cameras, network streams and video files through OpenCV's V4L2 and FFmpeg backends.

The backend is always named explicitly (V4L2 for devices, FFmpeg for the rest) so that a failure means the same
thing on every machine instead of depending on which backend OpenCV happened to try first.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, field_validator

from edged.config.camera import SourceConfig
from edged.errors import SourceError
from edged.sources.base import SourcePlugin
from edged.sources.locations import SourceKind, classify, mask_url
from edged.sources.pacing import Pacer
from edged.types import Frame, ImageArray

log = logging.getLogger(__name__)

_UNDECODABLE = (
    "not a video or a codec FFmpeg lacks (`ffprobe FILE` shows what it holds; "
    "`ffmpeg -i FILE -c:v libx264 out.mp4` re-encodes it)"
)

#: Pacing rate for a `realtime` file whose container declares no usable frame rate.
FALLBACK_FPS = 25.0


class OpenCvCamera(SourceConfig):
    """USB/V4L2 devices, RTSP/HTTP/HLS streams and video files, through OpenCV (FFmpeg / V4L2 backends)."""

    type: Literal["opencv"]
    source: str = Field(description="Device index ('0'), '/dev/videoN', a stream URL or a video file path.")
    width: int | None = Field(None, ge=1)
    height: int | None = Field(None, ge=1)
    fps: float | None = Field(None, gt=0, description="Requested capture rate (devices), or pacing rate (files).")
    fourcc: str | None = Field(None, description="Device pixel format, e.g. 'MJPG' for USB cameras at high rates.")
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    open_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(10.0, gt=0)
    decode_threads: int = Field(
        0, ge=0, le=64,
        description="FFmpeg decoder threads for files and streams; 0 = automatic: 1 for files (the model is the "
        "bottleneck there and decoder threads only compete with it), FFmpeg's own choice for streams.",
    )  # fmt: skip
    loop: bool = Field(False, description="Files: start again at the end.")
    realtime: bool = Field(True, description="Files: play at the file's own frame rate (false: as fast as possible).")

    @field_validator("fourcc")
    @classmethod
    def _four_chars(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 4:
            raise ValueError("a FOURCC has exactly 4 characters, e.g. 'MJPG' or 'YUYV'")
        return value

    @classmethod
    def resolve_relative_paths(cls, table: dict[str, Any], base: Path) -> None:
        """A relative video file is relative to the config file; device indexes and URLs stay as they are."""
        value = table.get("source")
        if isinstance(value, str) and value.strip():
            kind, location = classify(value)
            if kind == "file" and "://" not in value and not Path(location).is_absolute():
                table["source"] = str(base / location)

    def is_live(self) -> bool:
        kind, _ = classify(self.source)
        return self.realtime or kind != "file"


def connected_cameras() -> list[str]:
    """The /dev/video* nodes present, in numeric order (video2 before video10)."""
    paths = [str(p) for p in Path("/dev").glob("video*")]
    return sorted(paths, key=lambda p: (len(p), p))


def _missing_device_message(source: str, path: str) -> str:
    cameras = connected_cameras()
    found = f"connected cameras: {', '.join(cameras)}" if cameras else "no cameras are connected (no /dev/video*)"
    index = f" (camera index {source.strip()})" if source.strip().isdigit() else ""
    return f"{path}{index} does not exist; {found}"


def _fourcc_text(value: float) -> str:
    code = int(value) & 0xFFFFFFFF if math.isfinite(value) else 0
    text = code.to_bytes(4, "little").decode("ascii", errors="replace")
    return text if text.isprintable() and code else "?"


def _as_bgr(image: cv2.typing.MatLike) -> ImageArray:
    """A contiguous H×W×3 uint8 BGR array; greyscale or BGRA frames (some devices and files) are converted."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_BGRA2BGR)
    bgr: ImageArray = np.ascontiguousarray(array, dtype=np.uint8)
    return bgr


def _threads_param(threads: int) -> list[int]:
    """The open parameter for FFmpeg's decoder thread count (OpenCV 4.7+; older versions keep FFmpeg's choice)."""
    prop = getattr(cv2, "CAP_PROP_N_THREADS", None)
    return [] if prop is None else [int(prop), threads]


def _set_ffmpeg_option(key: str, value: str) -> None:
    """Set one option in OPENCV_FFMPEG_CAPTURE_OPTIONS ('k;v|k;v'), which FFmpeg reads on every open.

    Options the user put there (e.g. to tune probing) are kept; only `key` is replaced.
    """
    current = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS", "")
    kept = [item for item in current.split("|") if item and item.split(";", 1)[0] != key]
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "|".join([*kept, f"{key};{value}"])


class OpenCvSource:
    """One cv2.VideoCapture, reopened on `open()` after a failure; a file's end is None, a stream's is an error."""

    def __init__(self, config: OpenCvCamera) -> None:
        self.id = config.id
        self._config = config
        self._kind, self._location = classify(config.source)
        self._masked = mask_url(self._location)
        self._capture: cv2.VideoCapture | None = None
        self._index = 0
        self._pacer: Pacer | None = None  # realtime pacing of files
        self._read_since_open = 0
        self._finished = False

    @property
    def kind(self) -> SourceKind:
        return self._kind

    def describe(self) -> str:
        names = {"device": "camera", "stream": "stream", "file": "video file"}
        flags = [flag for flag, on in (("loop", self._config.loop), ("realtime", self._config.realtime)) if on]
        suffix = f" ({', '.join(flags)})" if self._kind == "file" and flags else ""
        return f"{names[self._kind]} {self._masked}{suffix}"

    def open(self) -> None:
        self.close()
        if self._kind == "device":
            self._capture = self._open_device()
        elif self._kind == "stream":
            self._capture = self._open_stream()
        else:
            self._capture = self._open_file()
            self._pacer = Pacer(self._file_period(self._capture)) if self._config.realtime else None
        self._read_since_open = 0
        self._finished = False
        log.info("opened %s", self.describe())

    def read(self) -> Frame | None:
        capture = self._capture
        if capture is None:
            raise SourceError(f"{self.describe()} is not open")
        if self._finished:
            return None
        if self._pacer is not None:
            self._pacer.wait()
        ok, grabbed = capture.read()
        image: cv2.typing.MatLike | None = grabbed
        if not ok:
            image = self._after_failed_read(capture)
            if image is None:
                return None
        if image is None or image.size == 0:
            raise SourceError(f"{self.describe()} returned an empty frame")
        self._index += 1
        self._read_since_open += 1
        return Frame.now(_as_bgr(image), self.id, self._index - 1, "bgr")

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def _open_device(self) -> cv2.VideoCapture:
        path = self._location
        if not os.path.exists(path):
            raise SourceError(_missing_device_message(self._config.source, path))
        # V4L2 has no CAP_PROP_READ_TIMEOUT_MSEC (and OpenCV refuses to open a backend given parameters it does not
        # support): its wait for a frame comes from this variable, in whole seconds, read once per process.
        os.environ.setdefault("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT", str(max(1, round(self._config.read_timeout_s))))
        capture = cv2.VideoCapture(path, cv2.CAP_V4L2)
        if not capture.isOpened():
            capture.release()
            if not os.access(path, os.R_OK | os.W_OK):
                raise SourceError(
                    f"cannot open {path}: permission denied; the shipped unit runs edged with the 'video' group, so "
                    f"check that `ls -l {path}` shows group video (a udev rule sets it); running edged by hand, add "
                    "your user to the 'video' group"
                )
            raise SourceError(
                f"cannot open {path}: busy (another program is using it) or not a capture node "
                f"(USB cameras also create metadata nodes; try the other /dev/video* of the same camera)"
            )
        self._configure_device(capture)
        return capture

    def _configure_device(self, capture: cv2.VideoCapture) -> None:
        """Request the configured format (FOURCC first: drivers pick sizes per pixel format), log what we got."""
        cfg = self._config
        if cfg.fourcc:
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*cfg.fourcc))
        if cfg.width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
        if cfg.height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
        if cfg.fps:
            capture.set(cv2.CAP_PROP_FPS, cfg.fps)
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        fourcc = _fourcc_text(capture.get(cv2.CAP_PROP_FOURCC))
        log.info("%s delivers %dx%d %s at %.1f fps", self._location, width, height, fourcc, fps)
        mismatches = [
            f"{name} {wanted} (got {got})"
            for name, wanted, got in (
                ("width", cfg.width, width),
                ("height", cfg.height, height),
                ("fourcc", cfg.fourcc, fourcc),
            )
            if wanted is not None and wanted != got
        ]
        if cfg.fps is not None and abs(cfg.fps - fps) > 0.5:
            mismatches.append(f"fps {cfg.fps:g} (got {fps:g})")
        if mismatches:
            log.warning(
                "%s does not support %s; `v4l2-ctl -d %s --list-formats-ext` lists what it can do",
                self._location,
                ", ".join(mismatches),
                self._location,
            )

    def _open_stream(self) -> cv2.VideoCapture:
        cfg = self._config
        if self._location.lower().startswith(("rtsp://", "rtsps://")):
            _set_ffmpeg_option("rtsp_transport", cfg.rtsp_transport)
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            round(cfg.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            round(cfg.read_timeout_s * 1000),
        ]
        if cfg.decode_threads:
            params += _threads_param(cfg.decode_threads)
        capture = cv2.VideoCapture(self._location, cv2.CAP_FFMPEG, params)
        if not capture.isOpened():
            capture.release()
            raise SourceError(
                f"cannot open stream {self._masked}: unreachable, refused, wrong path or credentials, or no "
                f"answer within {cfg.open_timeout_s:g} s (try the URL with `ffprobe` or VLC from this machine)"
            )
        return capture

    def _open_file(self) -> cv2.VideoCapture:
        path = Path(self._location)
        if not path.exists():
            raise SourceError(
                f"video file {path} does not exist; check camera.source (a relative path is relative to the "
                "config file)",
                permanent=True,
            )
        if not path.is_file():
            raise SourceError(f"{path} is not a video file; set camera.source to a video file", permanent=True)
        if not os.access(path, os.R_OK):
            raise SourceError(
                f"video file {path} cannot be read: permission denied; under the shipped unit edged runs as a "
                "dynamic user with no fixed uid: put the file in /var/lib/edged, or make it readable by all "
                "(chmod o+r, and o+x on its folders)",
                permanent=True,
            )
        # One decoder thread unless configured: FFmpeg's frame threads would run beside the model's own threads and
        # stall them (docs/performance.md measured it); a file is read at the model's pace anyway.
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, _threads_param(self._config.decode_threads or 1))
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot decode {path}: {_UNDECODABLE}", permanent=True)
        return capture

    def _file_period(self, capture: cv2.VideoCapture) -> float:
        if self._config.fps is not None:
            return 1.0 / self._config.fps
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        if not math.isfinite(fps) or not 0 < fps <= 1000:
            log.warning("%s declares no frame rate; playing at %g fps (set fps to change)", self._masked, FALLBACK_FPS)
            fps = FALLBACK_FPS
        return 1.0 / fps

    def _after_failed_read(self, capture: cv2.VideoCapture) -> cv2.typing.MatLike | None:
        """The frame to use after a failed read, None at the end of a file; SourceError when it is a failure."""
        if self._kind != "file":
            raise SourceError(self._read_failure())
        if self._read_since_open == 0:
            raise SourceError(f"video file {self._location} has no readable frames: {_UNDECODABLE}", permanent=True)
        if not self._config.loop:
            log.info("end of %s", self.describe())
            self._finished = True
            return None
        # Reopening works for every container, where seeking back does not.
        capture.release()
        self._capture = capture = self._open_file()
        self._read_since_open = 0
        ok, image = capture.read()
        if not ok:
            raise SourceError(f"video file {self._location} can no longer be read after looping")
        log.debug("looped %s", self._masked)
        return image

    def _read_failure(self) -> str:
        if self._kind == "device":
            return (
                f"{self._location} stopped delivering frames: unplugged, or the USB bus is saturated "
                f"(try fourcc = 'MJPG' or a lower resolution)"
            )
        return (
            f"stream {self._masked} stopped: the connection closed or no frame came within "
            f"{self._config.read_timeout_s:g} s (camera rebooted, network down, or the stream ended)"
        )


PLUGIN = SourcePlugin(
    "opencv", OpenCvCamera, OpenCvSource, "USB/V4L2 cameras, RTSP/HTTP streams, video files", {"source": "0"}
)
