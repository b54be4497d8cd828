"""The OpenCV source against a real HTTP MJPEG camera on loopback: reading, the camera going away, reconnecting."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from support.mjpeg_server import MjpegServer
from support.streams import OPEN_TIMEOUT_S, READ_TIMEOUT_S, read_until_broken

from edged.errors import SourceError
from edged.sources.opencv import OpenCvCamera, OpenCvSource


@pytest.fixture
def server() -> Iterator[MjpegServer]:
    with MjpegServer(width=160, height=120, fps=20.0) as running:
        yield running


def stream_source(url: str) -> OpenCvSource:
    config = OpenCvCamera(
        type="opencv", source=url, id="gate", open_timeout_s=OPEN_TIMEOUT_S, read_timeout_s=READ_TIMEOUT_S
    )
    return OpenCvSource(config)


def test_reads_frames_from_the_mjpeg_server(server: MjpegServer) -> None:
    source = stream_source(server.url)
    source.open()
    frames = [source.read() for _ in range(5)]
    source.close()
    assert all(f is not None for f in frames)
    assert [f.index for f in frames if f is not None] == [0, 1, 2, 3, 4]
    assert all(f.image.shape == (120, 160, 3) and f.color == "bgr" for f in frames if f is not None)
    assert source.kind == "stream"


def test_a_stopped_server_makes_read_fail(server: MjpegServer) -> None:
    source = stream_source(server.url)
    source.open()
    assert source.read() is not None
    server.stop()
    error = read_until_broken(source)
    assert "stopped" in str(error)
    assert server.url in str(error)
    source.close()


def test_a_stalled_server_makes_read_fail_after_the_read_timeout(server: MjpegServer) -> None:
    source = stream_source(server.url)
    source.open()
    assert source.read() is not None
    server.pause()
    error = read_until_broken(source)
    source.close()
    assert f"no frame came within {READ_TIMEOUT_S:g} s" in str(error)


def test_reopening_after_a_restart_reads_again(server: MjpegServer) -> None:
    source = stream_source(server.url)
    source.open()
    before = source.read()
    server.stop()
    read_until_broken(source)
    server.restart()
    source.close()
    source.open()
    after = source.read()
    source.close()
    assert before is not None and after is not None
    assert after.index > before.index  # counts across reconnects


def test_opening_while_the_server_is_down_fails(server: MjpegServer) -> None:
    server.stop()
    with pytest.raises(SourceError, match="cannot open stream"):
        stream_source(server.url).open()


def test_credentials_never_reach_messages_or_logs(server: MjpegServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="edged")
    url = server.url.replace("http://", "http://viewer:hunter2@")
    source = stream_source(url)
    source.open()
    assert source.read() is not None
    server.stop()
    error = read_until_broken(source)
    source.close()
    assert "viewer:***@127.0.0.1" in str(error)
    assert "hunter2" not in str(error) + source.describe() + caplog.text
