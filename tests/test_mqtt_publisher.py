"""The MQTT publisher in-process against a real mosquitto: delivery, the offline buffer, commands, discovery."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import jsonschema
import numpy as np
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.broker import Collector, Mosquitto, broker_for_tests
from support.runtime import PublisherRuntime

from edged.publish.mqtt.config import MqttPublisherConfig
from edged.publish.mqtt.publisher import MqttPublisher

DEVICE = "cam1"
PREFIX = f"edged/{DEVICE}"


def schema(name: str) -> dict[str, Any]:
    return json.loads((resources.files("edged") / "schemas" / name).read_text())  # type: ignore[no-any-return]


class Control:
    """The daemon's remote-control surface, as a plain object (these tests exercise the publisher alone)."""

    def __init__(self) -> None:
        self.paused = False
        self.calls: list[str] = []
        ok, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))
        assert ok
        self.jpeg: bytes | None = jpeg.tobytes()

    def pause(self) -> None:
        self.calls.append("pause")
        self.paused = True

    def resume(self) -> None:
        self.calls.append("resume")
        self.paused = False

    def stats(self) -> dict[str, Any]:
        return {"output_fps": 1.0}

    def state(self) -> dict[str, Any]:
        return {
            "device_id": DEVICE, "edged_version": "0.1.0", "run_id": "0" * 32, "started_at": "2026-01-01T00:00:00.000Z",
            "uptime_s": 1.0, "model": {"name": "shapes", "version": "local", "sha256": "a" * 64},
            "task": "detection", "accelerator": "cpu", "source": {"id": "camera", "type": "synthetic",
                                                                  "state": "streaming"}, "paused": self.paused,
        }  # fmt: skip

    def snapshot_jpeg(self, annotated: bool) -> bytes | None:
        self.calls.append(f"snapshot annotated={annotated}")
        return self.jpeg


def result(seq: int, *labels: str) -> dict[str, Any]:
    box = {"xmin": 0.1, "ymin": 0.1, "xmax": 0.2, "ymax": 0.2}
    return {
        "schema": "https://edged.dev/schemas/result-1.json", "run_id": "0" * 32, "seq": seq, "device_id": DEVICE,
        "source": {"id": "camera", "frame_index": seq, "width": 64, "height": 48},
        "captured_at": "2026-01-01T00:00:00.000Z", "captured_at_ms": 0, "published_at": "2026-01-01T00:00:00.000Z",
        "published_at_ms": 0, "model": {"name": "shapes", "version": "local", "sha256": "a" * 64},
        "task": "detection", "labels": [],
        "objects": [{"label": label, "score": 0.9, "index": 0, "box": box, "box_px": box} for label in labels],
        "timing_ms": {"capture_to_publish": 1.0, "preprocess": 0.1, "inference": 0.5, "decode": 0.1},
    }  # fmt: skip


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with broker_for_tests(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def make_publisher(broker: Mosquitto) -> Iterator[Any]:
    started: list[tuple[MqttPublisher, PublisherRuntime]] = []

    def make(control: Control | None = None, **fields: Any) -> MqttPublisher:
        options: dict[str, Any] = {"host": broker.host, "port": broker.port, "reconnect_max_s": 1, **fields}
        publisher = MqttPublisher(MqttPublisherConfig(type="mqtt", **options), DEVICE)
        runtime = PublisherRuntime(control or Control())
        runtime.start(publisher)
        started.append((publisher, runtime))
        return publisher

    yield make
    for publisher, runtime in started:
        publisher.stop()
        runtime.stop()
        assert not runtime.crashes


@pytest.fixture
def collector(broker: Mosquitto) -> Iterator[Collector]:
    with Collector(broker.port, ["edged/#", "homeassistant/#"], client_id="test-collector", persistent=True) as sub:
        yield sub


def seqs(collector: Collector) -> list[int]:
    return [message.json()["seq"] for message in collector.on(f"{PREFIX}/results")]


def online(collector: Collector) -> bool:
    return collector.wait_for(lambda ms: any(m.topic == f"{PREFIX}/availability" and m.payload == b"online"
                                             for m in ms))  # fmt: skip


def test_results_state_and_availability(make_publisher: Any, collector: Collector, broker: Mosquitto) -> None:
    publisher = make_publisher(homeassistant=False)
    assert online(collector)
    for seq in range(200):
        publisher.publish_result(result(seq, "circle"))
    publisher.publish_state(Control().state())
    assert publisher.flush(30)
    assert collector.wait_for(lambda _: len(seqs(collector)) >= 200)
    assert seqs(collector) == list(range(200))
    for message in collector.on(f"{PREFIX}/results")[:5]:
        jsonschema.validate(message.json(), schema("result.schema.json"))
    publisher.stop()
    assert collector.wait_for(
        lambda _: [m.payload for m in collector.on(f"{PREFIX}/availability")][-1:] == [b"offline"]
    )
    with Collector(broker.port, [f"{PREFIX}/availability", f"{PREFIX}/state"]) as late:  # retained for newcomers
        assert late.wait_for(lambda ms: len(ms) == 2)
        by_topic = {m.topic: m for m in late.snapshot()}
        assert by_topic[f"{PREFIX}/availability"].payload == b"offline" and by_topic[f"{PREFIX}/availability"].retain
        jsonschema.validate(by_topic[f"{PREFIX}/state"].json(), schema("state.schema.json"))


def test_outage_buffers_results_and_sends_them_in_order(
    make_publisher: Any, collector: Collector, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    publisher = make_publisher(homeassistant=False)
    assert online(collector)
    for seq in range(50):
        publisher.publish_result(result(seq))
    assert publisher.flush(30)
    broker.stop()
    assert collector.wait_for(lambda _: not publisher.mqtt_stats()["connected"])
    for seq in range(50, 300):
        publisher.publish_result(result(seq))
    assert publisher.mqtt_stats()["buffered"] == 250
    broker.start()
    assert publisher.flush(60)
    assert collector.wait_for(lambda _: set(seqs(collector)) >= set(range(300)), 60)
    first_arrivals = list(dict.fromkeys(seqs(collector)))
    assert first_arrivals == list(range(300))
    assert "connection to" in caplog.text and "reconnected" in caplog.text
    assert publisher.mqtt_stats()["dropped_overflow"] == 0


def test_overflow_drops_the_oldest_counts_and_reports_them(
    make_publisher: Any, collector: Collector, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = make_publisher(homeassistant=False, buffer_max_messages=50)
    assert online(collector)
    broker.stop()
    assert collector.wait_for(lambda _: not publisher.mqtt_stats()["connected"])
    for seq in range(120):
        publisher.publish_result(result(seq))
    assert "buffer full (50 results)" in caplog.text
    broker.start()
    assert publisher.flush(60)
    assert collector.wait_for(lambda _: set(seqs(collector)) >= set(range(70, 120)), 60)
    assert set(seqs(collector)) == set(range(70, 120))  # the oldest 70 were dropped, the newest kept
    assert collector.wait_for(lambda _: any(m.json()["event"] == "results_dropped"
                                            for m in collector.on(f"{PREFIX}/events")))  # fmt: skip
    event = next(m.json() for m in collector.on(f"{PREFIX}/events") if m.json()["event"] == "results_dropped")
    jsonschema.validate(event, schema("event.schema.json"))
    assert (event["overflow"], event["expired"]) == (70, 0)
    publisher.publish_stats({})
    assert collector.wait_for(lambda _: bool(collector.on(f"{PREFIX}/stats")))
    assert collector.on(f"{PREFIX}/stats")[-1].json()["mqtt"]["dropped_overflow"] == 70


def test_results_older_than_the_age_limit_are_dropped(
    make_publisher: Any, collector: Collector, broker: Mosquitto
) -> None:
    publisher = make_publisher(homeassistant=False, buffer_max_age_s=0.5)
    assert online(collector)
    broker.stop()
    assert collector.wait_for(lambda _: not publisher.mqtt_stats()["connected"])
    for seq in range(10):
        publisher.publish_result(result(seq))
    assert collector.wait_for(lambda _: publisher.mqtt_stats()["dropped_expired"] == 10)
    broker.start()
    assert collector.wait_for(lambda _: publisher.mqtt_stats()["connected"], 60)
    publisher.publish_result(result(10))
    assert publisher.flush(60)
    assert collector.wait_for(lambda _: 10 in seqs(collector), 60)
    assert seqs(collector) == [10]


def test_publishing_never_waits_for_an_absent_broker(tmp_path: Path) -> None:
    from support.broker import free_port

    config = MqttPublisherConfig(type="mqtt", host="127.0.0.1", port=free_port(), buffer_max_messages=100)
    publisher = MqttPublisher(config, DEVICE)
    runtime = PublisherRuntime(Control())
    runtime.start(publisher)
    try:
        for seq in range(5000):
            publisher.publish_result(result(seq))
        assert publisher.mqtt_stats()["buffered"] == 100
        assert publisher.flush(0.5) is False
    finally:
        publisher.stop()
        runtime.stop()


def test_commands_are_carried_out_and_answered(
    make_publisher: Any, collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    control = Control()
    make_publisher(control, homeassistant=False, snapshot_min_interval_s=0)
    assert online(collector)
    for name, payload in [("pause", '{"id": "p1"}'), ("resume", "{}"), ("stats", "{}"), ("check_update", "{}"),
                          ("snapshot", '{"annotated": false}')]:  # fmt: skip
        collector.publish(f"{PREFIX}/cmd/{name}", payload)
    replies = {name: f"{PREFIX}/cmd/{name}/reply" for name in ("pause", "resume", "stats", "check_update", "snapshot")}
    assert collector.wait_for(lambda _: all(collector.on(topic) for topic in replies.values()))
    reply_schema = schema("command-reply.schema.json")
    answers = {name: collector.on(topic)[0].json() for name, topic in replies.items()}
    for answer in answers.values():
        jsonschema.validate(answer, reply_schema)
    assert answers["pause"]["ok"] and answers["pause"]["id"] == "p1" and answers["pause"]["result"] == {"paused": True}
    assert answers["resume"]["result"] == {"paused": False}
    assert answers["stats"]["result"] == {"output_fps": 1.0}
    assert not answers["check_update"]["ok"] and "hosting is not configured" in answers["check_update"]["error"]
    assert answers["snapshot"]["ok"] and answers["snapshot"]["result"]["annotated"] is False
    assert collector.wait_for(lambda _: bool(collector.on(f"{PREFIX}/snapshot")))
    assert collector.on(f"{PREFIX}/snapshot")[0].payload == control.jpeg
    assert control.calls == ["pause", "resume", "snapshot annotated=False"]


@pytest.mark.parametrize(
    ("name", "payload", "reason"),
    [
        ("pause", b"{oops", "payload is not JSON"),
        ("reboot", b"{}", "unknown command 'reboot'"),
        ("resume", b'{"x": "' + b"y" * 10_000 + b'"}', "exceeds the 4096-byte limit"),
        ("snapshot", b'{"annotated": 1}', "must be bool"),
        ("pause", b"", "empty payload: not a command"),
    ],
)
def test_malformed_commands_are_refused_with_a_reply_and_a_log_line(
    make_publisher: Any, collector: Collector, caplog: pytest.LogCaptureFixture, name: str, payload: bytes, reason: str
) -> None:
    control = Control()
    make_publisher(control, homeassistant=False)
    assert online(collector)
    collector.publish(f"{PREFIX}/cmd/{name}", payload)
    assert collector.wait_for(lambda _: bool(collector.on(f"{PREFIX}/cmd/{name}/reply")))
    answer = collector.on(f"{PREFIX}/cmd/{name}/reply")[0].json()
    jsonschema.validate(answer, schema("command-reply.schema.json"))
    assert answer["ok"] is False and reason in answer["error"]
    assert f"mqtt command {name!r} refused" in caplog.text and reason in caplog.text
    assert control.calls == [] and control.paused is False  # nothing changed


def test_retained_commands_are_not_replayed(make_publisher: Any, collector: Collector) -> None:
    """A command left retained on the broker would otherwise run again at every (re)connect."""
    control = Control()
    collector.publish(f"{PREFIX}/cmd/pause", '{"id": "stale"}', retain=True)
    make_publisher(control, homeassistant=False)
    assert collector.wait_for(lambda _: bool(collector.on(f"{PREFIX}/cmd/pause/reply")))
    refusal = collector.on(f"{PREFIX}/cmd/pause/reply")[0].json()
    assert "retained commands are refused" in refusal["error"] and refusal["id"] == "stale"
    assert control.calls == []
    collector.publish(f"{PREFIX}/cmd/pause", "", retain=True)  # clear it: `mosquitto_pub -r -n`
    assert collector.wait_for(lambda _: len(collector.on(f"{PREFIX}/cmd/pause/reply")) == 2)
    assert "empty payload: not a command" in collector.on(f"{PREFIX}/cmd/pause/reply")[1].json()["error"]
    assert control.calls == [] and control.paused is False  # clearing a retained command never pauses


def test_a_live_retained_command_is_refused(make_publisher: Any, collector: Collector) -> None:
    """Retained while edged is connected (the broker delivers it live): refused too, and its id kept."""
    control = Control()
    make_publisher(control, homeassistant=False)
    assert online(collector)
    collector.publish(f"{PREFIX}/cmd/resume", '{"id": 9}', retain=True)
    assert collector.wait_for(lambda _: bool(collector.on(f"{PREFIX}/cmd/resume/reply")))
    refusal = collector.on(f"{PREFIX}/cmd/resume/reply")[0].json()
    assert refusal["ok"] is False and refusal["id"] == 9 and "retained" in refusal["error"]
    assert control.calls == []
    collector.publish(f"{PREFIX}/cmd/resume", "", retain=True)


def test_mqtt5_replies_go_to_the_response_topic(broker: Mosquitto, make_publisher: Any) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    make_publisher(homeassistant=False, protocol="5")
    received: list[Any] = []
    answered, subscribed = threading.Event(), threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="v5-requester", protocol=MQTTProtocolVersion.MQTTv5)
    client.on_message = lambda c, u, message: (received.append(message), answered.set())
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.subscribe("requester/inbox", 1)
        assert subscribed.wait(30)
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = "requester/inbox"
        properties.CorrelationData = b"req-42"
        deadline = time.monotonic() + 30
        while not answered.is_set() and time.monotonic() < deadline:  # until edged has subscribed and answered
            client.publish(f"{PREFIX}/cmd/stats", "{}", qos=1, properties=properties)
            answered.wait(0.5)
        assert received
        assert received[0].properties.CorrelationData == b"req-42"
        assert json.loads(received[0].payload)["command"] == "stats"
    finally:
        client.disconnect()
        client.loop_stop()


def test_discovery_is_published_again_when_home_assistant_comes_online(
    make_publisher: Any, collector: Collector
) -> None:
    make_publisher(labels=["circle"])
    assert online(collector)
    device_topic = "homeassistant/device/edged_cam1/config"

    def discovery() -> list[Any]:
        return [m for m in collector.snapshot() if m.topic.startswith("homeassistant/") and m.topic.endswith("/config")]

    assert collector.wait_for(lambda _: len(discovery()) >= 1)
    definitions = schema("ha-discovery.schema.json")
    for message in discovery():
        assert message.topic == device_topic  # one device-based config, nothing per entity
        jsonschema.validate(message.json(), {**definitions, "$ref": "#/$defs/device", "anyOf": [{}]})
        assert {"circle_count", "circle_detected", "inference", "source_state"} <= set(message.json()["cmps"])
    collector.publish("homeassistant/status", "online")
    assert collector.wait_for(lambda _: len(discovery()) >= 2)


def test_label_topics_are_retained_and_change_only(
    make_publisher: Any, collector: Collector, broker: Mosquitto
) -> None:
    publisher = make_publisher(homeassistant=False, labels=["circle", "square"], label_topics=True, label_hold_s=0)
    assert online(collector)
    for seq, labels in enumerate([("circle",), ("circle",), ("circle", "circle", "square"), ()]):
        publisher.publish_result(result(seq, *labels))
        assert publisher.flush(30)  # (while a backlog waits, only the newest value of each label is kept)

    def label_values() -> list[tuple[str, str]]:
        return [(m.topic.rsplit("/", 1)[1], m.payload.decode()) for m in collector.snapshot()
                if "/labels/" in m.topic and not m.topic.endswith("/detected")]  # fmt: skip

    # flush() means the broker has them; the subscriber may still be receiving the last ones.
    assert collector.wait_for(lambda _: len(label_values()) >= 6)
    values = label_values()
    assert values == [("circle", "1"), ("square", "0"), ("circle", "2"), ("square", "1"), ("circle", "0"),
                      ("square", "0")]  # fmt: skip
    with Collector(broker.port, [f"{PREFIX}/labels/+", f"{PREFIX}/labels/+/detected"]) as late:
        assert late.wait_for(lambda ms: len(ms) == 4)
        retained = {m.topic.removeprefix(f"{PREFIX}/labels/"): m.payload for m in late.snapshot() if m.retain}
        assert retained == {"circle": b"0", "square": b"0", "circle/detected": b"ON", "square/detected": b"ON"}


def test_snapshots_are_periodic_when_configured(make_publisher: Any, collector: Collector) -> None:
    make_publisher(homeassistant=False, snapshot_interval_s=0.2, snapshot_min_interval_s=0)
    assert online(collector)
    assert collector.wait_for(lambda _: len(collector.on(f"{PREFIX}/snapshot")) >= 2)


def test_snapshot_commands_are_rate_limited(make_publisher: Any, collector: Collector) -> None:
    make_publisher(homeassistant=False, snapshot_min_interval_s=600)
    assert online(collector)
    collector.publish(f"{PREFIX}/cmd/snapshot", '{"id": 1}')
    collector.publish(f"{PREFIX}/cmd/snapshot", '{"id": 2}')
    assert collector.wait_for(lambda _: len(collector.on(f"{PREFIX}/cmd/snapshot/reply")) == 2)
    answers = {m.json()["id"]: m.json() for m in collector.on(f"{PREFIX}/cmd/snapshot/reply")}
    assert answers[1]["ok"] and not answers[2]["ok"]
    assert "rate limited to one snapshot per 600 s" in answers[2]["error"]
    assert collector.wait_for(lambda _: bool(collector.on(f"{PREFIX}/snapshot")))
    assert len(collector.on(f"{PREFIX}/snapshot")) == 1


def test_a_first_snapshot_follows_the_first_result(make_publisher: Any, collector: Collector) -> None:
    publisher = make_publisher()
    assert online(collector)
    publisher.publish_result(result(0, "circle"))
    assert collector.wait_for(lambda _: bool(collector.on(f"{PREFIX}/snapshot")))
    assert collector.on(f"{PREFIX}/snapshot")[0].payload[:2] == b"\xff\xd8"


def test_per_entity_configs_left_by_an_older_edged_are_migrated_then_cleared(
    make_publisher: Any, collector: Collector, broker: Mosquitto
) -> None:
    """A per-entity config of this device (retained by an older edged) and one of another device: the first is
    handed over ({"migrate_discovery": true}), replaced by the device config, then cleared; the other is untouched."""
    old = "homeassistant/sensor/edged_cam1/circle_count/config"
    other = "homeassistant/sensor/edged_cam2/circle_count/config"
    config = json.dumps({"name": "circle count", "state_topic": "x", "unique_id": "u"})
    for topic in (old, other):
        collector.publish(topic, config, retain=True)
    make_publisher(labels=["circle"])
    assert online(collector)
    device_topic = "homeassistant/device/edged_cam1/config"
    assert collector.wait_for(lambda _: any(m.payload == b"" for m in collector.on(old)))
    # after this test's own publication of the old config: migrate, the device config, then the clear
    sequence = [(m.topic, m.payload[:40]) for m in collector.snapshot() if m.topic in (old, device_topic)][1:]
    assert sequence[0] == (old, b'{"migrate_discovery":true}'), sequence
    assert sequence[1][0] == device_topic and sequence[1][1].startswith(b'{"dev":'), sequence
    assert sequence[2] == (old, b""), sequence
    with Collector(broker.port, ["homeassistant/#"]) as late:
        assert late.wait_for(lambda ms: {m.topic for m in ms} >= {device_topic, other})
        assert old not in {m.topic for m in late.snapshot()}
