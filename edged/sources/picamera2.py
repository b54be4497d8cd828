"""The Raspberry Pi camera through picamera2, which is imported only when this source is opened.

Colour order: picamera2 names its formats after libcamera/DRM fourccs, which describe a little-endian word, so
"RGB888" is laid out in memory as B, G, R: `capture_array()` returns BGR arrays, the order OpenCV uses. The
Picamera2 manual's format table (appendix A) lists RGB888 pixels as [B, G, R], and the maintainers explain the
naming in raspberrypi/picamera2#191; users confirm BGR from create_video_configuration in #848. Frames are
therefore tagged color="bgr". (#1325 reports the opposite for the IMX500 AI camera on a Pi 5 only.)
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
from pydantic import Field

from edged.config.camera import SourceConfig
from edged.errors import SourceError
from edged.sources.base import SourcePlugin
from edged.types import Frame, ImageArray

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "picamera2 is not installed: on Raspberry Pi OS `sudo apt install python3-picamera2` "
    "(and create the venv with --system-site-packages)"
)


class Picamera2Camera(SourceConfig):
    """The Raspberry Pi camera through picamera2 (imported only when configured)."""

    type: Literal["picamera2"]
    camera_num: int = Field(0, ge=0)
    width: int = Field(1280, ge=16)
    height: int = Field(720, ge=16)
    fps: float | None = Field(None, gt=0)
    read_timeout_s: float = Field(10.0, gt=0, description="No frame for this long: reopen the camera.")


def _import_picamera2() -> Any:
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise SourceError(INSTALL_HINT, permanent=True) from exc
    return Picamera2


def frame_duration_limits(fps: float) -> tuple[int, int]:
    """libcamera's FrameDurationLimits (min, max) in microseconds that hold the sensor at `fps`."""
    duration = round(1_000_000 / fps)
    return duration, duration


class Picamera2Source:
    """One libcamera camera, started on `open()` and stopped and released on `close()`."""

    def __init__(self, config: Picamera2Camera) -> None:
        self.id = config.id
        self._config = config
        self._camera: Any = None  # picamera2.Picamera2; untyped third-party module
        self._index = 0
        self._wait_has_timeout = True

    def describe(self) -> str:
        cfg = self._config
        rate = f" at {cfg.fps:g} fps" if cfg.fps else ""
        return f"picamera2 camera {cfg.camera_num} {cfg.width}x{cfg.height}{rate}"

    def open(self) -> None:
        self.close()
        picamera2_class = _import_picamera2()
        cfg = self._config
        self._check_camera_present(picamera2_class)
        try:
            camera = picamera2_class(camera_num=cfg.camera_num)
        except Exception as exc:  # picamera2 raises RuntimeError, IndexError, OSError... depending on version
            raise SourceError(
                f"cannot open camera {cfg.camera_num}: {exc} (busy? another program such as rpicam-hello, "
                f"motion or a second edged may hold it)"
            ) from exc
        try:
            controls = {"FrameDurationLimits": frame_duration_limits(cfg.fps)} if cfg.fps else {}
            video_config = camera.create_video_configuration(
                main={"size": (cfg.width, cfg.height), "format": "RGB888"}, controls=controls
            )
            camera.configure(video_config)
            camera.start()
        except Exception as exc:
            camera.close()
            raise SourceError(
                f"camera {cfg.camera_num} refused {cfg.width}x{cfg.height}"
                f"{f' at {cfg.fps:g} fps' if cfg.fps else ''}: {exc}"
            ) from exc
        self._camera = camera
        log.info("opened %s", self.describe())

    def read(self) -> Frame | None:
        camera = self._camera
        if camera is None:
            raise SourceError(f"{self.describe()} is not open")
        try:
            array = self._capture(camera)
        except TimeoutError as exc:
            raise SourceError(
                f"camera {self._config.camera_num} delivered no frame for {self._config.read_timeout_s:g} s "
                f"(ribbon cable loose, sensor hung, or power too weak); reopening it"
            ) from exc
        except Exception as exc:
            raise SourceError(f"camera {self._config.camera_num} stopped delivering frames: {exc}") from exc
        if array is None or array.size == 0:
            raise SourceError(f"camera {self._config.camera_num} returned an empty frame")
        if array.ndim != 3 or array.shape[2] < 3:
            raise SourceError(f"camera {self._config.camera_num} returned a {array.shape} array, not RGB888")
        image: ImageArray = np.ascontiguousarray(array[:, :, :3], dtype=np.uint8)
        self._index += 1
        return Frame.now(image, self.id, self._index - 1, "bgr")

    def _capture(self, camera: Any) -> Any:
        """The next frame, or TimeoutError: a plain capture_array() would block for ever on a hung sensor."""
        job = camera.capture_array("main", wait=False)
        if self._wait_has_timeout:
            try:
                return camera.wait(job, timeout=self._config.read_timeout_s)
            except TypeError:  # a picamera2 older than Raspberry Pi OS Bookworm's: wait() takes no timeout
                self._wait_has_timeout = False
                log.warning("this picamera2 cannot time out a capture; upgrade it so a hung camera is reopened")
        return camera.wait(job)

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        for step in (camera.stop, camera.close):
            try:
                step()
            except Exception as exc:  # a camera that failed may fail to stop too; releasing is best effort
                log.warning("closing camera %d: %s", self._config.camera_num, exc)

    def _check_camera_present(self, picamera2_class: Any) -> None:
        """A clear message for the commonest failure, no camera at all, before picamera2 raises something vague."""
        try:
            cameras = list(picamera2_class.global_camera_info())
        except Exception as exc:
            raise SourceError(f"libcamera cannot list cameras: {exc}") from exc
        if self._config.camera_num >= len(cameras):
            found = f"it sees {len(cameras)}" if cameras else "it sees none"
            raise SourceError(
                f"no camera {self._config.camera_num}: {found}; check the ribbon cable and "
                f"`rpicam-hello --list-cameras`"
            )


PLUGIN = SourcePlugin("picamera2", Picamera2Camera, Picamera2Source, "the Raspberry Pi camera (libcamera)")
