"""Issue 8, item 1: `edged run ... | head -5` stops once `head` has gone, quietly, and lets go of the camera.

A real shell pipeline: bash runs edged with its standard output into `head -5`, and reports edged's own exit status
(PIPESTATUS). The camera is a real HTTP MJPEG stream on loopback, so "released" is something the camera itself sees:
its connection from edged closes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_support import wait_until
from support.mjpeg_server import MjpegServer

CLASSIFIER = Path(__file__).parent / "fixtures" / "models" / "shapes_classifier_quant.tflite"
PIPELINE = '"$PYTHON" -m edged run --config "$CONFIG" | head -5; echo "edged exit status ${PIPESTATUS[0]}" >&2'


def test_a_closed_pipe_stops_edged_quietly_and_releases_the_camera(tmp_path: Path) -> None:
    with MjpegServer(width=160, height=120, fps=20.0) as camera:
        config = tmp_path / "edged.toml"
        config.write_text(
            f'device_id = "pipe"\n[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n'
            f'[camera]\ntype = "opencv"\nsource = "{camera.url}"\n'
        )
        shell = subprocess.Popen(
            ["bash", "-c", PIPELINE], env={**os.environ, "PYTHON": sys.executable, "CONFIG": str(config)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            out, err = shell.communicate(timeout=90)  # a live camera never ends: only the closed pipe can stop it
        except subprocess.TimeoutExpired:
            os.killpg(shell.pid, signal.SIGKILL)  # bash, edged and head: the process group this test started
            shell.communicate()
            pytest.fail("edged kept capturing after the reader of its output (head) had exited")
        assert len(out.splitlines()) == 5  # head got its five results
        status = [line for line in err.splitlines() if line.startswith("edged exit status ")]
        assert status in (["edged exit status 0"], ["edged exit status 141"]), err
        assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipeError" not in err, err
        assert wait_until(lambda: camera.client_count == 0), "the camera is still being read"
