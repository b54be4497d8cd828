"""The OpenCV source on real video files written by cv2.VideoWriter, and its error messages."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edged.errors import SourceError
from edged.sources.base import create_source
from edged.sources.locations import classify, mask_url
from edged.sources.opencv import OpenCvCamera, OpenCvSource
from edged.sources.pacing import next_deadline
from edged.types import Frame

WIDTH, HEIGHT, FRAMES = 64, 48, 6
#: Solid BGR colours, one per frame, far enough apart to tell frames apart after lossy coding.
COLOURS = [(0, 0, 250), (0, 250, 0), (250, 0, 0), (250, 250, 0), (0, 250, 250), (250, 0, 250)]


def write_video(path: Path, fourcc: str, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (WIDTH, HEIGHT))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path.suffix} here"
    for colour in COLOURS[:FRAMES]:
        writer.write(np.full((HEIGHT, WIDTH, 3), colour, np.uint8))
    writer.release()
    return path


def make_source(source: str | Path, **options: Any) -> OpenCvSource:
    options.setdefault("realtime", False)
    config = OpenCvCamera(type="opencv", source=str(source), **options)
    created = create_source(config)
    assert isinstance(created, OpenCvSource)
    return created


def read_all(source: OpenCvSource, limit: int = 100) -> list[Frame]:
    frames = []
    for _ in range(limit):
        frame = source.read()
        if frame is None:
            break
        frames.append(frame)
    return frames


def dominant_channel(frame: Frame) -> int:
    return int(np.argmax(frame.image.reshape(-1, 3).mean(axis=0)))


@pytest.fixture(params=[("mp4v", ".mp4"), ("MJPG", ".avi")], ids=["mp4v-mp4", "mjpg-avi"])
def video(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    fourcc, suffix = request.param
    return write_video(tmp_path / f"clip{suffix}", fourcc)


def test_a_file_yields_every_frame_then_none(video: Path) -> None:
    source = make_source(video, id="door")
    source.open()
    frames = read_all(source)
    assert len(frames) == FRAMES
    assert [f.index for f in frames] == list(range(FRAMES))
    assert all(f.source_id == "door" and f.color == "bgr" for f in frames)
    assert all(f.image.shape == (HEIGHT, WIDTH, 3) and f.image.dtype == np.uint8 for f in frames)
    assert source.read() is None  # finished stays finished
    source.close()


def test_frames_are_bgr_in_file_order(video: Path) -> None:
    source = make_source(video)
    source.open()
    frames = read_all(source)
    # COLOURS are BGR: pure red (0, 0, 250) must come back with channel 2 dominant.
    assert [dominant_channel(f) for f in frames[:3]] == [2, 1, 0]


def test_loop_rewinds_and_keeps_counting(video: Path) -> None:
    source = make_source(video, loop=True)
    source.open()
    frames = [source.read() for _ in range(FRAMES * 2 + 3)]
    assert all(f is not None for f in frames)
    indices = [f.index for f in frames if f is not None]
    assert indices == list(range(FRAMES * 2 + 3))
    first, after_loop = frames[0], frames[FRAMES]
    assert first is not None and after_loop is not None
    assert dominant_channel(after_loop) == dominant_channel(first)


def test_index_survives_reopening(video: Path) -> None:
    source = make_source(video)
    source.open()
    read_all(source)
    source.close()
    source.open()
    frame = source.read()
    assert frame is not None and frame.index == FRAMES


def test_realtime_file_plays(tmp_path: Path) -> None:
    """Only that the paced path delivers every frame; its schedule is tested below as a pure function."""
    source = make_source(write_video(tmp_path / "fast.avi", "MJPG"), realtime=True, fps=1000.0)
    source.open()
    assert len(read_all(source)) == FRAMES


class TestPacingSchedule:
    def test_first_frame_is_due_now(self) -> None:
        assert next_deadline(None, 0.1, now=50.0) == 50.0

    def test_late_wakeups_do_not_accumulate_drift(self) -> None:
        due = next_deadline(None, 0.04, now=10.0)
        for _ in range(199):
            due = next_deadline(due, 0.04, now=due + 0.015)  # every sleep overshoots by 15 ms
        assert due == pytest.approx(10.0 + 199 * 0.04)

    def test_an_early_caller_waits_for_the_grid(self) -> None:
        assert next_deadline(10.0, 0.5, now=10.1) == 10.5

    def test_a_stall_restarts_the_grid_instead_of_bursting(self) -> None:
        assert next_deadline(10.0, 0.1, now=13.0) == 13.0


def test_missing_file(tmp_path: Path) -> None:
    source = make_source(tmp_path / "nope.mp4")
    with pytest.raises(SourceError, match=r"nope\.mp4 does not exist"):
        source.open()


def test_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "random.mp4"
    bad.write_bytes(np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    source = make_source(bad)
    with pytest.raises(SourceError, match="not a video or a codec FFmpeg lacks"):
        source.open()


def test_a_folder_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is not a video file"):
        make_source(tmp_path).open()


@pytest.mark.parametrize("name", ["/dev/video7", "7"])
def test_missing_device_lists_connected_cameras(name: str) -> None:
    if os.path.exists("/dev/video7"):
        pytest.skip("this machine has a /dev/video7")
    source = make_source(name)
    with pytest.raises(SourceError, match=r"/dev/video7.* does not exist; (connected cameras: /dev/video|no cameras)"):
        source.open()


def test_read_before_open_is_an_error(video: Path) -> None:
    with pytest.raises(SourceError, match="not open"):
        make_source(video).read()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("0", ("device", "/dev/video0")),
        ("/dev/video2", ("device", "/dev/video2")),
        ("/dev/v4l/by-id/usb-cam-video-index0", ("device", "/dev/v4l/by-id/usb-cam-video-index0")),
        ("rtsp://cam.local/stream1", ("stream", "rtsp://cam.local/stream1")),
        ("https://example.com/live.m3u8", ("stream", "https://example.com/live.m3u8")),
        ("file:///data/clip.mp4", ("file", "/data/clip.mp4")),
        ("clips/door.mp4", ("file", "clips/door.mp4")),
    ],
)
def test_classify(source: str, expected: tuple[str, str]) -> None:
    assert classify(source) == expected


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("rtsp://user:secret@host/", "rtsp://user:***@host/"),
        ("rtsp://admin:s3cr3t@192.168.1.20:554/Streaming/101", "rtsp://admin:***@192.168.1.20:554/Streaming/101"),
        ("rtsp://user:p@ss@host:554/x", "rtsp://user:***@host:554/x"),
        ("http://cam/video.cgi?user=admin&pwd=hunter2&res=hd", "http://cam/video.cgi?user=admin&pwd=***&res=hd"),
        ("cannot open rtsp://u:pw@h/a now", "cannot open rtsp://u:***@h/a now"),
        ("rtsp://cam.local:554/stream", "rtsp://cam.local:554/stream"),
        ("http://token@cam/x", "http://token@cam/x"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_url_is_an_error_without_the_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="edged")
    url = f"rtsp://viewer:topsecret@127.0.0.1:{_closed_port()}/stream"
    source = make_source(url, open_timeout_s=5.0)
    assert "topsecret" not in source.describe()
    assert "viewer:***@127.0.0.1" in source.describe()
    with pytest.raises(SourceError, match="cannot open stream") as raised:
        source.open()
    assert "topsecret" not in str(raised.value)
    assert "viewer:***@" in str(raised.value)
    assert "topsecret" not in caplog.text


def test_rtsp_transport_is_set_for_ffmpeg_keeping_other_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp|analyzeduration;1000000")
    source = make_source(f"rtsp://127.0.0.1:{_closed_port()}/s", rtsp_transport="udp", open_timeout_s=5.0)
    with pytest.raises(SourceError):
        source.open()
    options = os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"].split("|")
    assert sorted(options) == ["analyzeduration;1000000", "rtsp_transport;udp"]


def _decoder_threads() -> set[int]:
    """FFmpeg's frame-decoding threads in this process (it names them av:<codec>:df<n>)."""
    found = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as comm:
                if comm.read().startswith("av:"):
                    found.add(int(tid))
        except OSError:
            continue
    return found


def test_files_decode_on_one_thread_unless_configured(tmp_path: Path) -> None:
    """Decoder threads beside the model's own threads stall them; a file is decoded on the capture thread."""
    path = write_video(tmp_path / "clip.mp4", "mp4v")
    before = _decoder_threads()
    single = make_source(path)
    single.open()
    assert len(read_all(single)) == FRAMES
    assert _decoder_threads() - before == set()
    single.close()
    threaded = make_source(path, decode_threads=2)
    threaded.open()
    assert len(read_all(threaded)) == FRAMES
    assert _decoder_threads() - before  # FFmpeg's frame threads, as configured
    threaded.close()
