"""`make demo`, the README's first command, end to end: edged with the shapes detector on a synthetic camera, a
private mosquitto, every message described. It once printed "0 results arrived" and still exited 0, because the
default discovery format's topic crashed the demo's reader: now the demo fails when results are lost or absent."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.broker import require_mosquitto

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_shows_discovery_results_and_a_snapshot_and_loses_nothing() -> None:
    require_mosquitto()
    if not (shutil.which("mosquitto_sub") and shutil.which("mosquitto_pub")):
        pytest.skip("the demo needs mosquitto-clients (mosquitto_sub, mosquitto_pub)")
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "demo.py"), "--frames", "30", "--fps", "15"],
        capture_output=True, text=True, timeout=180, cwd=ROOT,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "30 results arrived over MQTT, no gap in seq" in out or (
        "results arrived over MQTT, no gap in seq" in out and " 0 results" not in out
    ), out
    assert "discovery              device edged_demo:" in out, out  # Home Assistant's device config, described
    assert "  mqtt  | snapshot               JPEG," in out and "  mqtt  | results " in out, out
    assert "????" not in out and "Traceback" not in out, out
