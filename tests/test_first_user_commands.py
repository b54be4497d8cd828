"""Issue 8, item 5, end to end: the commands a user types (`mosquitto_pub`, the broker's own client) against a real
`edged run` and a real mosquitto. Clearing a retained command never pauses the device, a command published
retained is refused even while edged is connected, and every refusal keeps the request's id."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.broker import Collector, Mosquitto, broker_for_tests

CLASSIFIER = Path(__file__).parent / "fixtures" / "models" / "shapes_classifier_quant.tflite"
PREFIX = "edged/cmdtest"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with broker_for_tests(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def device(tmp_path: Path, broker: Mosquitto) -> Iterator[Collector]:
    """`edged run` on a synthetic camera, publishing to the broker; yields a subscriber to everything it says."""
    config = tmp_path / "edged.toml"
    config.write_text(
        f'device_id = "cmdtest"\n[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n'
        '[camera]\ntype = "synthetic"\nwidth = 96\nheight = 96\nfps = 10\n'
        f'[publisher]\ntype = "mqtt"\nhost = "{broker.host}"\nport = {broker.port}\nhomeassistant = false\n'
    )
    with Collector(broker.port, [f"{PREFIX}/#"]) as collector:
        process = subprocess.Popen(
            [sys.executable, "-m", "edged", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert collector.wait_for(lambda _: len(collector.on(f"{PREFIX}/results")) >= 3), "no results"
            yield collector
        finally:
            process.terminate()
            _, err = process.communicate(timeout=60)
            assert process.returncode == 0, err


def mosquitto_pub(broker: Mosquitto, *args: str) -> None:
    tool = shutil.which("mosquitto_pub")
    assert tool is not None, "mosquitto_pub is missing: apt-get install mosquitto-clients"
    subprocess.run([tool, "-h", broker.host, "-p", str(broker.port), "-q", "1", *args], check=True, timeout=30)


def replies(collector: Collector, name: str) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in collector.on(f"{PREFIX}/cmd/{name}/reply")]


def wait_reply(collector: Collector, name: str, count: int = 1) -> dict[str, Any]:
    assert collector.wait_for(lambda _: len(replies(collector, name)) >= count), f"no reply to {name}"
    return replies(collector, name)[count - 1]


def test_clearing_a_retained_command_never_pauses(broker: Mosquitto, device: Collector) -> None:
    mosquitto_pub(broker, "-r", "-n", "-t", f"{PREFIX}/cmd/pause")  # the standard way to clear a retained message
    reply = wait_reply(device, "pause")
    assert reply["ok"] is False and "empty payload" in reply["error"]
    mosquitto_pub(broker, "-t", f"{PREFIX}/cmd/stats", "-m", '{"id": "s1"}')
    stats = wait_reply(device, "stats")
    assert stats["ok"] is True and stats["id"] == "s1" and stats["result"]["paused"] is False
    seen = len(device.on(f"{PREFIX}/results"))
    assert device.wait_for(lambda _: len(device.on(f"{PREFIX}/results")) >= seen + 3), "results stopped"


def test_a_command_published_retained_is_refused_live_and_keeps_its_id(broker: Mosquitto, device: Collector) -> None:
    mosquitto_pub(broker, "-t", f"{PREFIX}/cmd/pause", "-m", '{"id": "p1"}')
    assert wait_reply(device, "pause")["result"] == {"paused": True}
    mosquitto_pub(broker, "-r", "-t", f"{PREFIX}/cmd/resume", "-m", '{"id": "r1"}')  # edged is connected: live
    refusal = wait_reply(device, "resume")
    assert refusal["ok"] is False and refusal["id"] == "r1" and "retained" in refusal["error"]
    mosquitto_pub(broker, "-t", f"{PREFIX}/cmd/stats", "-m", '{"id": 7}')
    stats = wait_reply(device, "stats")  # commands are answered in order: the resume had no effect
    assert stats["id"] == 7 and stats["result"]["paused"] is True
    mosquitto_pub(broker, "-r", "-n", "-t", f"{PREFIX}/cmd/resume")
