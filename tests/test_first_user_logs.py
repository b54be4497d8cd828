"""Issue 8, item 14: under journald a user sees edged's own lines. LiteRT's "Created TensorFlow Lite XNNPACK
delegate" and OpenCV/FFmpeg's per-retry warnings are kept off stderr (LiteRT's routed to edged's debug log).

Real processes, a real model, and a real refused RTSP connection for the retries.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

CLASSIFIER = Path(__file__).parent / "fixtures" / "models" / "shapes_classifier_quant.tflite"
#: edged's own log format (edged/cli: "%(asctime)s %(levelname)s %(name)s: %(message)s"), or the CLI's error line.
OWN_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) edged[.\w]*: |edged: )"
)
NOISE = ("XNNPACK", "[ WARN", "cap.cpp", "[tcp @", "[rtsp @", "OPENCV")


def edged(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edged", *args], capture_output=True, text=True, timeout=120)


def photo(tmp_path: Path) -> str:
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), np.full((64, 64, 3), 100, np.uint8))
    return str(path)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_quiet_means_nothing_on_stderr(tmp_path: Path) -> None:
    done = edged("-q", "infer", str(CLASSIFIER), photo(tmp_path))
    assert done.returncode == 0
    assert done.stderr == ""


def test_every_line_of_a_retrying_daemon_is_edgeds_own(tmp_path: Path) -> None:
    config = tmp_path / "edged.toml"
    config.write_text(
        f'[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n[camera]\ntype = "opencv"\n'
        f'source = "rtsp://127.0.0.1:{closed_port()}/stream"\nopen_timeout_s = 2\n'
        "[camera.reconnect]\ninitial_s = 0.05\nmax_s = 0.1\nmax_attempts = 3\n"
    )
    done = edged("run", "--config", str(config))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert sum("retrying in" in line for line in lines) >= 2  # edged's own account of every retry is there
    strangers = [line for line in lines if not OWN_LINE.match(line) or any(word in line for word in NOISE)]
    assert strangers == [], done.stderr


def test_litert_lines_are_routed_into_edgeds_debug_log(tmp_path: Path) -> None:
    done = edged("-vv", "infer", str(CLASSIFIER), photo(tmp_path))
    assert done.returncode == 0
    routed = [line for line in done.stderr.splitlines() if "Created TensorFlow Lite XNNPACK delegate" in line]
    assert len(routed) == 1 and OWN_LINE.match(routed[0]) and " DEBUG edged.inference.runtime: " in routed[0], routed


def test_lines_that_are_not_the_librarys_pass_through_unchanged() -> None:
    """While fd 2 is captured another thread may write to it: those lines come out as they were."""
    code = (
        "import logging, os, sys\n"
        "from edged.native_logs import route_native_stderr\n"
        "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format='%(levelname)s %(name)s: %(message)s')\n"
        "with route_native_stderr(logging.getLogger('edged.test'), 'lib'):\n"
        "    os.write(2, b'INFO: prepared\\nsomeone else\\nWARNING: careful\\n')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["DEBUG edged.test: lib: prepared", "WARNING edged.test: lib: careful",
                                        "someone else"]  # fmt: skip
