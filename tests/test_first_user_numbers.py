"""Issue 8, item 13: numbers that must not mislead.

- frames passed over on purpose by pipeline.max_fps are `skipped`, not `dropped` (a real paced camera);
- systemd's STATUS= line says the source is reconnecting while it is (a real MJPEG camera that goes away);
- `captured_at` and `captured_at_ms` (and the `published_at` pair) name the same millisecond.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_support import wait_until
from support.mjpeg_server import MjpegServer
from test_sdnotify import NotifySocket

CLASSIFIER = Path(__file__).parent / "fixtures" / "models" / "shapes_classifier_quant.tflite"
MODEL = f'device_id = "numbers"\n[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n'


def run_edged(config: Path, timeout_s: float = 120.0, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edged", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=timeout_s, env={**os.environ, **env},
    )  # fmt: skip


def test_frames_passed_over_by_max_fps_are_skipped_not_dropped(tmp_path: Path) -> None:
    """A camera paced at 30 fps and a 5 fps limit: most frames are passed over on purpose. The model (well under a
    millisecond a frame) is almost never busy when a frame arrives, so those frames are not "dropped"."""
    config = tmp_path / "edged.toml"
    config.write_text(
        MODEL + '[camera]\ntype = "synthetic"\nwidth = 96\nheight = 96\nfps = 30\nframes = 90\nrealtime = true\n'
        '[pipeline]\nmax_fps = 5\nstats_interval_s = 3600\n[publisher]\ntype = "stdout"\nstats = true\n'
    )
    done = run_edged(config)
    assert done.returncode == 0, done.stderr
    stats = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"type":"stats"')]
    totals = stats[-1]["totals"]  # the stats published at the stop cover the whole run
    assert totals["captured"] == 90
    assert totals["skipped"] > 0 and totals["skipped"] > totals["dropped"], totals
    assert totals["captured"] == totals["inferred"] + totals["skipped"] + totals["dropped"], totals


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    receiver = NotifySocket(str(tmp_path / "notify"))
    yield receiver
    receiver.close()


def test_systemd_status_says_reconnecting_while_the_camera_is_away(tmp_path: Path, notify_socket: NotifySocket) -> None:
    def statuses() -> list[str]:
        return [
            line for message in notify_socket.drain() for line in message.splitlines() if line.startswith("STATUS=")
        ]

    with MjpegServer(width=96, height=96, fps=15.0) as camera:
        config = tmp_path / "edged.toml"
        config.write_text(
            MODEL + f'[camera]\ntype = "opencv"\nsource = "{camera.url}"\nread_timeout_s = 3\n'
            "[camera.reconnect]\ninitial_s = 0.2\nmax_s = 1\n[pipeline]\nstats_interval_s = 3600\n"
        )
        env = {**os.environ, "NOTIFY_SOCKET": notify_socket.address}
        process = subprocess.Popen(
            [sys.executable, "-m", "edged", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            assert wait_until(lambda: bool(statuses()) and camera.client_count > 0), "edged did not start"
            camera.stop()
            assert wait_until(lambda: any(s.startswith("STATUS=reconnecting") for s in statuses())), statuses()
            camera.start()
            streaming = "STATUS=streaming: shapes_classifier_quant on camera"
            assert wait_until(lambda: statuses()[-1] == streaming), statuses()
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    reconnecting = [s for s in statuses() if s.startswith("STATUS=reconnecting")]
    assert reconnecting[0].startswith("STATUS=reconnecting: shapes_classifier_quant on camera"), reconnecting


def _epoch_ms(iso: str) -> int:
    moment = dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
    return round(moment.timestamp() * 1000)


def test_captured_at_and_captured_at_ms_name_the_same_millisecond(tmp_path: Path) -> None:
    config = tmp_path / "edged.toml"
    config.write_text(MODEL + '[camera]\ntype = "synthetic"\nwidth = 64\nheight = 64\nframes = 60\nrealtime = false\n')
    done = run_edged(config)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == 60
    for result in results:
        assert _epoch_ms(result["captured_at"]) == result["captured_at_ms"], result
        assert _epoch_ms(result["published_at"]) == result["published_at_ms"], result
