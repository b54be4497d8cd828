"""Issue 8, item 12: two devices whose ids differ only in `-` / `_` (or case) stay two Home Assistant devices.

End to end: two `edged run` processes, `qa-cam` and `qa_cam`, on one real mosquitto; what the broker keeps
(retained discovery) is read back by a fresh subscriber, as Home Assistant reads it when it starts.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.broker import Collector, Mosquitto, broker_for_tests

from edged.config import load_config
from edged.errors import ConfigError
from edged.publish.mqtt.discovery import node_id

CLASSIFIER = Path(__file__).parent / "fixtures" / "models" / "shapes_classifier_quant.tflite"
HA_ID = re.compile(r"^[a-zA-Z0-9_-]+$")  # Home Assistant's class for discovery node and object ids


def test_node_ids_are_one_to_one() -> None:
    ids = ["qa-cam", "qa_cam", "QA-cam", "qa-Cam", "qa--cam", "qa__cam", "kitchen-cam"]
    nodes = [node_id(device) for device in ids]
    assert len(set(nodes)) == len(ids)
    assert all(HA_ID.match(node) for node in nodes)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with broker_for_tests(tmp_path / "broker") as running:
        yield running


def start(tmp_path: Path, broker: Mosquitto, device: str) -> subprocess.Popen[str]:
    config = tmp_path / f"{device}.toml"
    config.write_text(
        f'device_id = "{device}"\n[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n'
        '[camera]\ntype = "synthetic"\nwidth = 64\nheight = 64\nfps = 2\n'
        f'[publisher]\ntype = "mqtt"\nhost = "{broker.host}"\nport = {broker.port}\n'
    )
    return subprocess.Popen(
        [sys.executable, "-m", "edged", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def owner(payload: bytes) -> str:
    """The device a discovery config belongs to, by the availability topic it follows."""
    return str(json.loads(payload)["availability"][0]["topic"]).split("/")[1]


def test_qa_dash_cam_and_qa_underscore_cam_are_two_devices(tmp_path: Path, broker: Mosquitto) -> None:
    devices = ("qa-cam", "qa_cam")
    with Collector(broker.port, ["homeassistant/#"]) as watcher:
        processes = [start(tmp_path, broker, device) for device in devices]
        try:
            published = lambda _: {owner(m.payload) for m in watcher.snapshot() if m.payload} == set(devices)  # noqa: E731
            assert watcher.wait_for(published), "both devices published discovery"
            nodes = lambda _: {m.topic.split("/")[2] for m in watcher.snapshot() if m.payload}  # noqa: E731
            assert watcher.wait_for(lambda ms: len(nodes(ms)) >= 2), "the two devices share one discovery node"
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                _, err = process.communicate(timeout=60)
                assert process.returncode == 0, err
    with Collector(broker.port, ["homeassistant/#"]) as reader:  # what Home Assistant finds when it starts
        assert reader.wait_for(lambda messages: len({m.topic for m in messages if m.payload}) >= 2)
        retained = {m.topic: m.payload for m in reader.snapshot() if m.retain and m.payload}
    by_device: dict[str, set[str]] = {device: set() for device in devices}
    for topic, payload in retained.items():
        device = owner(payload)
        by_device[device].add(topic)
        node = topic.split("/")[2]
        assert node == f"edged_{device}", (topic, device)  # nobody else's config under this device's node
        config = json.loads(payload)
        assert (config.get("dev") or config.get("device"))["identifiers"] == [node]  # device- or entity-based
    assert by_device["qa-cam"] and by_device["qa_cam"]  # each device kept its own retained discovery
    assert not by_device["qa-cam"] & by_device["qa_cam"]


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ('["traffic light", "traffic_light"]', "would share the entity traffic_light_"),
        ('["cat/dog", "cat+dog"]', "would share the topic labels/cat_dog"),
        ('["top"]', "would take the entity id top_score of edged's own sensor"),
    ],
)
def test_labels_that_would_share_a_topic_or_an_entity_are_refused(tmp_path: Path, labels: str, reason: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[model]\npath = "{CLASSIFIER}"\n[camera]\ntype = "synthetic"\n[publisher]\ntype = "mqtt"\nlabels = {labels}\n'
    )
    with pytest.raises(ConfigError, match=re.escape(reason)):
        load_config(config)
