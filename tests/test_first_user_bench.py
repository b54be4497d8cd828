"""Issue 8, item 3: `edged bench` never retries a source. A missing file fails at once, and an RTSP camera that
cannot be reached fails within its open timeout, each with exit status 1 and the reason, instead of hanging.

The cameras are real sockets on loopback: a port nothing listens on (refused at once), and a listener that accepts
the connection and never says a word (only camera.open_timeout_s can end that wait).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CLASSIFIER = Path(__file__).parent / "fixtures" / "models" / "shapes_classifier_quant.tflite"
#: Bounds the test, not edged: a bench that retries for ever is stopped here and reported as hanging.
HANG_S = 90


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, "-m", "edged", "bench", *args], capture_output=True, text=True, timeout=HANG_S
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"edged bench {' '.join(args)} was still running after {HANG_S} s (it retried the source)")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the socket is: nothing listens there


@pytest.fixture
def silent_camera() -> Iterator[int]:
    """A TCP port that accepts connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


def test_a_missing_video_fails_at_once(tmp_path: Path) -> None:
    done = bench("--model", str(CLASSIFIER), "--source", str(tmp_path / "nope.mp4"), "--frames", "5")
    assert done.returncode == 1, done.stderr
    assert "nope.mp4 does not exist" in done.stderr
    assert "retrying" not in done.stderr and "Traceback" not in done.stderr


def test_an_rtsp_camera_that_refuses_fails_without_retrying() -> None:
    url = f"rtsp://user:secret@127.0.0.1:{closed_port()}/stream"
    done = bench("--model", str(CLASSIFIER), "--source", url, "--frames", "5")
    assert done.returncode == 1, done.stderr
    assert "edged: error:" in done.stderr and "cannot open stream rtsp://user:***@127.0.0.1" in done.stderr
    assert "retrying" not in done.stderr and "secret" not in done.stderr and "Traceback" not in done.stderr


def test_an_rtsp_camera_that_never_answers_fails_after_its_open_timeout(tmp_path: Path, silent_camera: int) -> None:
    config = tmp_path / "bench.toml"
    config.write_text(
        f'[model]\npath = "{CLASSIFIER}"\n[camera]\ntype = "opencv"\n'
        f'source = "rtsp://127.0.0.1:{silent_camera}/stream"\nopen_timeout_s = 2\n'
    )
    done = bench("--config", str(config), "--frames", "5")
    assert done.returncode == 1, done.stderr
    assert "cannot open stream rtsp://127.0.0.1" in done.stderr and "no answer within 2 s" in done.stderr
    assert "retrying" not in done.stderr and "Traceback" not in done.stderr
