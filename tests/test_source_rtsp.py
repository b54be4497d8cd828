"""The OpenCV source and the daemon against a real RTSP camera on loopback (GStreamer, live H.264).

IP cameras are the commonest 24/7 source: these tests read H.264 over RTSP with both transports, lose the
camera (killed: the connection drops) and get it back on the same port, and freeze it (the connection stays
open, nothing comes), which only the read timeout can catch. Skipped when GStreamer's RTSP server is not
installed, and failed instead with EDGED_REQUIRE_RTSP=1 (as CI sets).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_support import BackgroundDaemon, RecordingPublisher
from support.broker import free_port
from support.rtsp_server import INSTALL_HINT, RtspServer, missing_parts
from support.streams import OPEN_TIMEOUT_S, READ_TIMEOUT_S, read_until_broken

from edged.config import parse_config
from edged.sources.opencv import OpenCvCamera, OpenCvSource

CLASSIFIER = Path(__file__).parent / "fixtures" / "models" / "shapes_classifier_quant.tflite"


@pytest.fixture(scope="module")
def rtsp_available() -> None:
    missing = missing_parts()
    if missing is None:
        return
    message = f"{missing}; {INSTALL_HINT}"
    if os.environ.get("EDGED_REQUIRE_RTSP") == "1":
        pytest.fail(message + " (EDGED_REQUIRE_RTSP=1 makes this a failure)")
    pytest.skip(message)


@pytest.fixture
def camera(rtsp_available: None) -> Iterator[RtspServer]:
    with RtspServer(free_port(), width=160, height=120, fps=15) as server:
        yield server


def rtsp_source(url: str, transport: str = "tcp") -> OpenCvSource:
    config = OpenCvCamera(
        type="opencv", source=url, id="door", rtsp_transport=transport,  # type: ignore[arg-type]
        open_timeout_s=OPEN_TIMEOUT_S, read_timeout_s=READ_TIMEOUT_S,
    )  # fmt: skip
    return OpenCvSource(config)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_reads_h264_frames_over_rtsp(camera: RtspServer, transport: str) -> None:
    source = rtsp_source(camera.url, transport)
    source.open()
    try:
        frames = [source.read() for _ in range(10)]
    finally:
        source.close()
    assert all(f is not None and f.image.shape == (120, 160, 3) and f.color == "bgr" for f in frames)
    assert [f.index for f in frames if f is not None] == list(range(10))
    assert source.kind == "stream"


def test_a_frozen_camera_is_caught_by_the_read_timeout_and_reopened(camera: RtspServer) -> None:
    source = rtsp_source(camera.url)
    source.open()
    assert source.read() is not None
    camera.freeze()
    started = time.monotonic()
    error = read_until_broken(source)
    waited = time.monotonic() - started
    source.close()
    assert f"no frame came within {READ_TIMEOUT_S:g} s" in str(error)
    assert waited >= READ_TIMEOUT_S * 0.9  # it was the timeout that ended the read, not a closed connection
    camera.thaw()
    source.open()
    assert source.read() is not None
    source.close()


def test_the_daemon_heals_a_camera_that_reboots(camera: RtspServer) -> None:
    text = (
        f'device_id = "test"\n[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n\n'
        f'[camera]\ntype = "opencv"\nsource = "{camera.url}"\nopen_timeout_s = {OPEN_TIMEOUT_S}\n'
        f"read_timeout_s = {READ_TIMEOUT_S}\n[camera.reconnect]\ninitial_s = 0.2\nmax_s = 1.0\n"
    )
    publisher = RecordingPublisher()
    with BackgroundDaemon(parse_config(text), publisher) as running:
        assert publisher.wait_for(lambda: len(publisher.results) >= 5), "no results from the RTSP camera"
        camera.stop()
        assert publisher.wait_for(lambda: "reconnecting" in publisher.source_states()), publisher.events
        before = len(publisher.results)
        camera.start()  # on the same port, as a rebooted camera comes back
        assert publisher.wait_for(lambda: len(publisher.results) >= before + 5, 90), "did not resume"
        exit_code = running.stop()
    assert exit_code == 0
    assert publisher.source_states()[:3] == ["streaming", "reconnecting", "streaming"]
    seqs = [r["seq"] for r in publisher.results]
    assert seqs == list(range(len(seqs)))
