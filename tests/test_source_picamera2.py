"""The picamera2 source against a FAKE picamera2 module: no Raspberry Pi camera exists on the test machines.

FakePicamera2 mimics only the calls the source makes (global_camera_info, create_video_configuration, configure,
start, capture_array, wait, stop, close) and records them, so the tests check what is asked of the camera and that
frames flow; how real libcamera behaves is not tested here.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest

from edged.errors import SourceError
from edged.sources.base import create_source
from edged.sources.picamera2 import Picamera2Camera, Picamera2Source


class FakePicamera2:
    """A FAKE stand-in for picamera2.Picamera2 (see the module docstring)."""

    cameras: ClassVar[list[dict[str, Any]]] = [{"Model": "imx708", "Num": 0}]
    instances: ClassVar[list[FakePicamera2]] = []
    open_error: ClassVar[Exception | None] = None
    configure_error: ClassVar[Exception | None] = None
    capture_error: ClassVar[Exception | None] = None
    stalled: ClassVar[bool] = False
    #: When set, every frame is this picture, laid out in memory as RGB888 is (B, G, R per pixel).
    scene: ClassVar[np.ndarray[Any, np.dtype[np.uint8]] | None] = None

    def __init__(self, camera_num: int = 0) -> None:
        if FakePicamera2.open_error is not None:
            raise FakePicamera2.open_error
        self.camera_num = camera_num
        self.requested: dict[str, Any] = {}
        self.configured: dict[str, Any] | None = None
        self.started = self.stopped = self.closed = False
        self.captured = 0
        self.waits: list[float | None] = []
        FakePicamera2.instances.append(self)

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return FakePicamera2.cameras

    def create_video_configuration(
        self, main: dict[str, Any] | None = None, controls: dict[str, Any] | None = None, **_: Any
    ) -> dict[str, Any]:
        self.requested = {"main": dict(main or {}), "controls": dict(controls or {})}
        return {"use_case": "video", "main": dict(main or {}), "controls": dict(controls or {})}

    def configure(self, config: dict[str, Any]) -> None:
        if FakePicamera2.configure_error is not None:
            raise FakePicamera2.configure_error
        self.configured = config

    def start(self) -> None:
        assert self.configured is not None, "picamera2 needs configure() before start()"
        self.started = True

    def capture_array(self, name: str = "main", wait: bool | None = None) -> Any:
        """With wait=False, as the source calls it, a job to hand to wait(); picamera2 does the same."""
        assert self.started and not self.stopped, "capture_array on a camera that is not running"
        job = ("capture_array", name)
        return job if wait is False else self.wait(job)

    def wait(self, job: tuple[str, str], timeout: float | None = None) -> np.ndarray[Any, np.dtype[np.uint8]]:
        self.waits.append(timeout)
        if FakePicamera2.stalled:
            raise TimeoutError  # what picamera2's job.get_result(timeout) raises when no frame came
        if FakePicamera2.capture_error is not None:
            raise FakePicamera2.capture_error
        assert self.configured is not None
        width, height = self.configured[job[1]]["size"]
        self.captured += 1
        if FakePicamera2.scene is not None:
            return np.ascontiguousarray(cv2.resize(FakePicamera2.scene, (width, height)))
        # BGR in memory, as RGB888 is on a real camera: a blue-ish frame whose red channel counts frames.
        frame = np.zeros((height, width, 3), np.uint8)
        frame[:, :, 0] = 200
        frame[:, :, 2] = self.captured
        return frame

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakePicamera2]]:
    """Install the FAKE as the `picamera2` module for one test."""
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    FakePicamera2.instances = []
    monkeypatch.setattr(FakePicamera2, "cameras", [{"Model": "imx708", "Num": 0}])
    monkeypatch.setattr(FakePicamera2, "open_error", None)
    monkeypatch.setattr(FakePicamera2, "configure_error", None)
    monkeypatch.setattr(FakePicamera2, "capture_error", None)
    monkeypatch.setattr(FakePicamera2, "stalled", False)
    monkeypatch.setattr(FakePicamera2, "scene", None)
    yield FakePicamera2


def make_source(**options: Any) -> Picamera2Source:
    created = create_source(Picamera2Camera(type="picamera2", **options))
    assert isinstance(created, Picamera2Source)
    return created


def test_requests_size_format_and_frame_rate(fake_picamera2: type[FakePicamera2]) -> None:
    source = make_source(width=640, height=480, fps=25.0)
    source.open()
    (camera,) = fake_picamera2.instances
    assert camera.requested["main"] == {"size": (640, 480), "format": "RGB888"}
    assert camera.requested["controls"] == {"FrameDurationLimits": (40_000, 40_000)}
    assert camera.started


def test_no_fps_leaves_the_frame_rate_to_the_camera(fake_picamera2: type[FakePicamera2]) -> None:
    make_source().open()
    assert fake_picamera2.instances[0].requested["controls"] == {}


def test_frames_flow_as_bgr(fake_picamera2: type[FakePicamera2]) -> None:
    source = make_source(id="pi", width=64, height=48, camera_num=0)
    source.open()
    frames = [source.read() for _ in range(3)]
    assert all(f is not None for f in frames)
    assert [f.index for f in frames if f is not None] == [0, 1, 2]
    for n, frame in enumerate(frames, start=1):
        assert frame is not None
        assert frame.image.shape == (48, 64, 3) and frame.color == "bgr" and frame.source_id == "pi"
        assert tuple(frame.image[0, 0]) == (200, 0, n)  # passed through unchanged, BGR as captured


def test_a_red_object_reaches_the_model_as_red(fake_picamera2: type[FakePicamera2]) -> None:
    """edged's colour handling, not the fake's: RGB888 memory (B, G, R) must become the model's RGB input."""
    from edged.config.model import ModelConfig
    from edged.inference.loader import load_bundle
    from edged.inference.preprocess import InputPlan
    from edged.sources.shapes import Shape, draw_scene

    red = np.zeros((48, 64, 3), np.uint8)
    red[:, :, 2] = 255  # pure red, stored B, G, R as picamera2's RGB888 is
    fake_picamera2.scene = red
    source = make_source(width=64, height=48)
    source.open()
    frame = source.read()
    assert frame is not None
    tensor = np.zeros((16, 16, 3), np.uint8)
    InputPlan(64, 48, frame.color, 16, 16, "rgb", None, "stretch").fill(frame.image, tensor)
    assert tuple(tensor[8, 8]) == (255, 0, 0)  # the model's red channel is the first
    fake_picamera2.scene = draw_scene(np.random.default_rng(4), 320, 240, [Shape("red_square", 0.5, 0.5, 0.3)])
    classifier = Path(__file__).parent / "fixtures" / "models" / "shapes_classifier_quant.tflite"
    model = load_bundle(ModelConfig(path=classifier, num_threads=1))
    frame = source.read()
    assert frame is not None
    assert model.predict(frame.image, frame.color).labels[0].label == "red_square"


def test_close_stops_and_releases_the_camera(fake_picamera2: type[FakePicamera2]) -> None:
    source = make_source()
    source.open()
    source.close()
    (camera,) = fake_picamera2.instances
    assert camera.stopped and camera.closed
    with pytest.raises(SourceError, match="not open"):
        source.read()


def test_reopen_uses_a_fresh_camera(fake_picamera2: type[FakePicamera2]) -> None:
    source = make_source()
    source.open()
    assert source.read() is not None
    source.close()
    source.open()
    frame = source.read()
    assert frame is not None and frame.index == 1
    assert [c.closed for c in fake_picamera2.instances] == [True, False]


def test_missing_module_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes `import picamera2` fail
    source = make_source()  # creating the source must not import picamera2
    with pytest.raises(SourceError) as raised:
        source.open()
    message = str(raised.value)
    assert "picamera2 is not installed" in message
    assert "sudo apt install python3-picamera2" in message
    assert "--system-site-packages" in message


def test_no_camera_connected(fake_picamera2: type[FakePicamera2]) -> None:
    fake_picamera2.cameras = []
    with pytest.raises(SourceError, match=r"no camera 0: it sees none; check the ribbon cable"):
        make_source().open()


def test_busy_camera(fake_picamera2: type[FakePicamera2]) -> None:
    fake_picamera2.open_error = RuntimeError("Failed to acquire camera: Device or resource busy")
    with pytest.raises(SourceError, match=r"cannot open camera 0: Failed to acquire camera.*busy"):
        make_source().open()


def test_rejected_configuration_releases_the_camera(fake_picamera2: type[FakePicamera2]) -> None:
    fake_picamera2.configure_error = RuntimeError("Invalid configuration")
    with pytest.raises(SourceError, match="refused 1280x720"):
        make_source().open()
    assert fake_picamera2.instances[0].closed


def test_capture_failure_is_a_source_error(fake_picamera2: type[FakePicamera2]) -> None:
    source = make_source()
    source.open()
    fake_picamera2.capture_error = RuntimeError("Camera frontend has timed out!")
    with pytest.raises(SourceError, match="stopped delivering frames: Camera frontend has timed out"):
        source.read()


def test_a_hung_camera_times_out_instead_of_blocking(fake_picamera2: type[FakePicamera2]) -> None:
    source = make_source(read_timeout_s=3.5)
    source.open()
    assert source.read() is not None
    fake_picamera2.stalled = True
    with pytest.raises(SourceError, match=r"camera 0 delivered no frame for 3.5 s \(ribbon cable loose"):
        source.read()
    assert fake_picamera2.instances[0].waits == [3.5, 3.5]  # every capture was bounded by the timeout


def test_an_old_picamera2_without_capture_timeouts_still_streams(
    fake_picamera2: type[FakePicamera2], caplog: pytest.LogCaptureFixture
) -> None:
    class OldFakePicamera2(FakePicamera2):
        """FAKE of a picamera2 whose wait(job) takes no timeout."""

        def wait(self, job: tuple[str, str]) -> np.ndarray[Any, np.dtype[np.uint8]]:  # type: ignore[override]
            return super().wait(job)

    sys.modules["picamera2"].Picamera2 = OldFakePicamera2  # type: ignore[attr-defined]
    source = make_source()
    source.open()
    frames = [source.read() for _ in range(3)]
    assert all(frame is not None for frame in frames)
    assert caplog.text.count("cannot time out a capture") == 1
