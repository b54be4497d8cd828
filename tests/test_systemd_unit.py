"""The shipped unit file is hardened: systemd's own offline audit scores it, without a running systemd."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "edged.service"


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (apt-get install systemd)"
)
def test_unit_exposure_is_ok() -> None:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(UNIT)], capture_output=True, text=True, timeout=60
    )
    match = re.search(r"Overall exposure level for edged.service: ([0-9.]+) (\w+)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= 2.0, f"exposure {match.group(1)} {match.group(2)}"


def test_unit_runs_the_daemon_with_the_packaged_config_path() -> None:
    text = UNIT.read_text()
    assert "ExecStart=/opt/edged/bin/edged run --config /etc/edged/config.toml" in text
    assert "KillSignal=SIGTERM" in text and "DynamicUser=yes" in text
