"""The `[camera]` table: one frame source, chosen by `type`, and how it reconnects."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from edged.config.model import Strict


class ReconnectConfig(Strict):
    """Exponential backoff with jitter and a cap, for sources that fail or end while live."""

    initial_s: float = Field(1.0, gt=0, description="First wait after a failure.")
    max_s: float = Field(30.0, gt=0, description="Longest wait between attempts.")
    multiplier: float = Field(2.0, ge=1.0)
    jitter: float = Field(0.2, ge=0.0, le=1.0, description="Random ± fraction of each wait.")
    max_attempts: int = Field(0, ge=0, description="0 = retry for ever (a daemon's default).")


class SourceBase(Strict):
    id: str = Field("camera", min_length=1, description="Source id reported with every result.")
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)


class OpenCvCamera(SourceBase):
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
    loop: bool = Field(False, description="Files: start again at the end.")
    realtime: bool = Field(True, description="Files: play at the file's own frame rate (false: as fast as possible).")

    @field_validator("fourcc")
    @classmethod
    def _four_chars(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 4:
            raise ValueError("a FOURCC has exactly 4 characters, e.g. 'MJPG' or 'YUYV'")
        return value


class Picamera2Camera(SourceBase):
    """The Raspberry Pi camera through picamera2 (imported only when configured)."""

    type: Literal["picamera2"]
    camera_num: int = Field(0, ge=0)
    width: int = Field(1280, ge=16)
    height: int = Field(720, ge=16)
    fps: float | None = Field(None, gt=0)
    read_timeout_s: float = Field(10.0, gt=0, description="No frame for this long: reopen the camera.")


class ImagesCamera(SourceBase):
    """Image files in a folder: batch runs, or 'drop a JPEG here' with watch = true."""

    type: Literal["images"]
    path: Path = Field(description="A folder.")
    pattern: str = Field("*", description="Glob of file names, e.g. '*.jpg'.")
    watch: bool = Field(False, description="Keep running and pick up new files as they appear.")
    poll_s: float = Field(1.0, gt=0, description="How often a watched folder is scanned.")
    loop: bool = Field(False, description="Start again after the last image (not with watch).")
    interval_s: float = Field(0.0, ge=0, description="Pause between images.")


class SyntheticCamera(SourceBase):
    """Moving coloured shapes: the demo and the tests, with no camera at all."""

    type: Literal["synthetic"]
    width: int = Field(640, ge=16, le=8192)
    height: int = Field(480, ge=16, le=8192)
    fps: float = Field(15.0, gt=0, le=1000)
    shapes: int = Field(2, ge=0, le=10)
    seed: int = 0
    frames: int = Field(0, ge=0, description="Stop after this many frames; 0 = never.")
    realtime: bool = Field(True, description="Pace at `fps` (false: as fast as possible).")


CameraConfig = Annotated[
    OpenCvCamera | Picamera2Camera | ImagesCamera | SyntheticCamera,
    Field(discriminator="type"),
]
