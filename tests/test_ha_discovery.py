"""Home Assistant discovery on its own: both formats against the schema, the entities a user gets, the cleanup
plan (migration to device-based discovery, stale entities), and the smoothed label and top values."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest

from edged.publish.mqtt.config import MqttPublisherConfig
from edged.publish.mqtt.discovery import (
    DiscoveryContext,
    device_message,
    discovery_filters,
    entities,
    entity_messages,
    plan_cleanup,
    tracked_labels,
)
from edged.publish.mqtt.labels import LabelStates, TopState, top_of
from edged.publish.mqtt.topics import Topics

SCHEMA = json.loads((resources.files("edged") / "schemas" / "ha-discovery.schema.json").read_text())
LABEL_SCHEMA = json.loads((resources.files("edged") / "schemas" / "label.schema.json").read_text())


def config(**fields: Any) -> MqttPublisherConfig:
    return MqttPublisherConfig(type="mqtt", **fields)


def context(task: str | None = "detection", labels: tuple[str, ...] = ("person", "traffic light")) -> DiscoveryContext:
    return DiscoveryContext("cam-1", "0.1.0", task, "shapes", "http://cam-1.lan:8080/", labels)


def validate(topic: str, payload: dict[str, Any]) -> None:
    kind = topic.split("/")[1]
    jsonschema.validate(payload, {**SCHEMA, "$ref": f"#/$defs/{kind}", "anyOf": [{}]})


@pytest.mark.parametrize("task", ["detection", "classification", None])
def test_both_formats_carry_the_same_entities_and_match_the_schema(task: str | None) -> None:
    settings = config(device_name="Front door")
    topics = Topics.from_config(settings, "cam-1")
    per_entity = entity_messages(settings, topics, context(task))
    topic, device = device_message(settings, topics, context(task))
    assert topic == "homeassistant/device/edged_cam-1/config"
    validate(topic, device)
    assert device["dev"] == {"identifiers": ["edged_cam-1"], "name": "Front door", "manufacturer": "edged",
                             "model": "edged (shapes)", "sw_version": "0.1.0",
                             "configuration_url": "http://cam-1.lan:8080/"}  # fmt: skip
    assert device["availability"][0]["topic"] == "edged/cam-1/availability"
    for topic, payload in per_entity:
        prefix, component, node, key, tail = topic.split("/")
        assert (prefix, node, tail) == ("homeassistant", "edged_cam-1", "config")
        validate(topic, payload)
        component_in_device = device["cmps"][key]
        assert component_in_device["p"] == component
        fields = {k: v for k, v in payload.items() if k not in ("device", "availability", "origin")}
        assert {k: v for k, v in component_in_device.items() if k != "p"} == fields
    unique_ids = [payload["unique_id"] for _, payload in per_entity]
    assert len(set(unique_ids)) == len(unique_ids) == len(device["cmps"])


def test_entities_a_user_gets() -> None:
    settings = config(device_classes={"traffic light": "light"})
    topics = Topics.from_config(settings, "cam-1")
    by_key = {entity.key: entity for entity in entities(settings, topics, context("classification"))}
    detected = by_key["person_detected"].fields
    assert detected["device_class"] == "occupancy" and detected["state_topic"] == "edged/cam-1/labels/person/detected"
    assert (detected["payload_on"], detected["payload_off"]) == ("ON", "OFF")
    assert by_key["traffic_light_detected"].fields["device_class"] == "light"
    score = by_key["person_score"].fields
    assert score["unit_of_measurement"] == "%" and "* 100" in score["value_template"]  # one scale: 0-100 %
    assert by_key["top_score"].fields["unit_of_measurement"] == "%"
    switch = by_key["inference"]
    assert switch.component == "switch" and switch.fields["command_topic"] == "edged/cam-1/cmd/set_paused"
    assert json.loads(switch.fields["payload_off"]) == {"paused": True}
    source = by_key["source_state"].fields
    assert source["value_template"] == "{{ value_json.source.state }}"  # (Home Assistant 2024.3 has no options)
    assert by_key["output_fps"].fields["state_topic"] == "edged/cam-1/stats"
    none_class = entities(config(detected_device_class=None), topics, context())
    assert "device_class" not in next(e for e in none_class if e.key == "person_detected").fields


def test_every_label_of_a_small_model_gets_entities_by_default() -> None:
    twenty = [f"label{i}" for i in range(20)]
    assert tracked_labels(config(), twenty) == twenty
    assert tracked_labels(config(), [*twenty, "one more"]) == []  # a large model: only what the user names
    assert tracked_labels(config(labels=["label3"]), twenty) == ["label3"]
    assert tracked_labels(config(auto_labels_max=0), twenty) == []
    assert tracked_labels(config(homeassistant=False), twenty) == []
    assert tracked_labels(config(homeassistant=False, label_topics=True), twenty) is None  # every label seen


def retained(messages: list[tuple[str, dict[str, Any]]]) -> dict[str, bytes]:
    return {topic: json.dumps(payload).encode() for topic, payload in messages}


def test_moving_to_device_discovery_migrates_the_per_entity_configs() -> None:
    settings = config()
    topics = Topics.from_config(settings, "cam-1")
    old = retained(entity_messages(config(discovery_format="entity"), topics, context()))
    plan = plan_cleanup(settings, topics, context(), old)
    assert set(plan.migrate) == set(old) == set(plan.clear_after) and not plan.clear_before
    assert not plan.removed


def test_stale_entities_are_removed_in_both_formats() -> None:
    topics = Topics.from_config(config(), "cam-1")
    before = context(labels=("person", "car"))
    after = context(labels=("person",))
    entity_format = config(discovery_format="entity")
    plan = plan_cleanup(entity_format, topics, after, retained(entity_messages(entity_format, topics, before)))
    assert sorted(plan.clear_before) == ["homeassistant/binary_sensor/edged_cam-1/car_detected/config",
                                         "homeassistant/sensor/edged_cam-1/car_count/config"]  # fmt: skip
    assert not plan.migrate and not plan.clear_after
    device_format = config()
    plan = plan_cleanup(device_format, topics, after, retained([device_message(device_format, topics, before)]))
    assert plan.removed == {"car_count": "sensor", "car_detected": "binary_sensor"}
    topic, payload = device_message(device_format, topics, after, plan.removed)
    assert payload["cmps"]["car_count"] == {"p": "sensor"} and payload["cmps"]["person_count"]["p"] == "sensor"
    validate(topic, payload)
    # a device config from before the removal no longer lists them: nothing more to remove next time
    assert not plan_cleanup(device_format, topics, after, retained([(topic, payload)])).removed
    # moving back to per-entity configs clears the device config first
    back = plan_cleanup(entity_format, topics, after, retained([(topic, payload)]))
    assert back.clear_before == ("homeassistant/device/edged_cam-1/config",)


def test_detected_means_at_or_above_the_threshold_and_holds_for_off_delay() -> None:
    states = LabelStates(["cat"], {"cat": 0.6}, detection=False, hold_s=0.0, off_delay_s=5.0)

    def classify(score: float, now: float) -> list[tuple[str, str, str]]:
        return states.changes({"task": "classification", "labels": [{"label": "cat", "score": score}]}, now)

    assert classify(0.07, 0.0) == [("value", "cat", "0.07"), ("detected", "cat", "OFF")]  # top-1, far below 0.6
    assert classify(0.6, 1.0) == [("value", "cat", "0.60"), ("detected", "cat", "ON")]  # at the threshold
    assert classify(0.2, 2.0) == [("value", "cat", "0.20")]  # still ON: seen 1 s ago, off_delay is 5 s
    assert classify(0.2, 5.9) == []
    assert classify(0.1, 6.0) == [("value", "cat", "0.10"), ("detected", "cat", "OFF")]
    for _, _, text in states.current():
        if text not in ("ON", "OFF"):
            jsonschema.validate(text, LABEL_SCHEMA)


def test_label_values_are_held_so_the_recorder_is_not_flooded() -> None:
    states = LabelStates(["person"], {}, detection=True, hold_s=1.0, off_delay_s=0.0)

    def detect(count: int, now: float) -> list[tuple[str, str, str]]:
        objects = [{"label": "person", "score": 0.9}] * count
        return [c for c in states.changes({"task": "detection", "objects": objects}, now) if c[0] == "value"]

    assert detect(1, 0.0) == [("value", "person", "1")]
    assert detect(2, 0.1) == [] and detect(3, 0.5) == []  # inside the hold: nothing
    assert detect(3, 1.0) == [("value", "person", "3")]  # the value current when the hold ends
    assert detect(3, 2.5) == []  # unchanged: nothing
    assert detect(0, 2.6) == [("value", "person", "0")]


def test_top_label_and_score_are_held_and_in_percent() -> None:
    result = {"task": "detection", "objects": [{"label": "a", "score": 0.41}, {"label": "b", "score": 0.93}]}
    assert top_of(result) == {"label": "b", "score": 93}
    assert top_of({"task": "classification", "labels": []}) == {"label": None, "score": 0}
    top = TopState(hold_s=1.0)
    assert top.change(result, 0.0) == {"label": "b", "score": 93}
    assert top.change({"task": "detection", "objects": []}, 0.5) is None
    assert top.change({"task": "detection", "objects": []}, 1.2) == {"label": None, "score": 0}


def test_with_hosting_the_model_is_an_update_entity_in_both_formats() -> None:
    settings = config()
    topics = Topics.from_config(settings, "cam-1")
    hosted = DiscoveryContext("cam-1", "0.1.0", "detection", "shapes", None, ("person",), hosting=True)
    topic, device = device_message(settings, topics, hosted)
    validate(topic, device)
    update = device["cmps"]["model_update"]
    assert update["p"] == "update" and update["command_topic"] == "edged/cam-1/cmd/install_update"
    assert update["state_topic"] == "edged/cam-1/update"
    per_entity = dict(entity_messages(settings, topics, hosted))
    validate("homeassistant/update/edged_cam-1/model_update/config",
             per_entity["homeassistant/update/edged_cam-1/model_update/config"])  # fmt: skip
    assert "model_update" not in device_message(settings, topics, context())[1]["cmps"]


def test_an_upgraded_device_clears_what_edged_0_1_left_under_its_old_node_id() -> None:
    """edged 0.1 named the node edged_<slug>, shared by `cam-1` and `Cam_1`: only this device's configs go."""
    settings = config()
    topics = Topics.from_config(settings, "cam-1")
    ours = {"name": "Top label", "unique_id": "edged_cam_1_top_label", "device": {"name": "cam-1"}}
    theirs = {"name": "Top label", "unique_id": "edged_cam_1_top_label", "device": {"name": "Cam_1"}}
    old = {
        "homeassistant/sensor/edged_cam_1/top_label/config": json.dumps(ours).encode(),
        "homeassistant/binary_sensor/edged_cam_1/person_detected/config": json.dumps(ours).encode(),
        "homeassistant/sensor/edged_cam_1/other/config": json.dumps(theirs).encode(),
    }
    assert "homeassistant/+/edged_cam_1/+/config" in discovery_filters(settings, "cam-1")
    for settings_format in (settings, config(discovery_format="entity")):
        plan = plan_cleanup(settings_format, topics, context(), old)
        assert sorted(plan.clear_before) == ["homeassistant/binary_sensor/edged_cam_1/person_detected/config",
                                             "homeassistant/sensor/edged_cam_1/top_label/config"]  # fmt: skip
        assert not (set(plan.migrate) | set(plan.clear_after)) & set(old)


def test_the_link_follows_new_labels_and_thresholds_of_the_running_model() -> None:
    """After a hot swap (new labels) or a reload (new thresholds) the `detected` topics use the model that runs."""
    from edged.publish.mqtt.homeassistant import HomeAssistantLink

    class Control:
        def __init__(self) -> None:
            self.thresholds = {"cat": 0.5, "dog": 0.5}

        def label_thresholds(self) -> dict[str, float]:
            return dict(self.thresholds)

        def state(self) -> dict[str, Any]:
            return {"task": "classification", "model": {"name": "pets"}}

    class Sender:
        def __init__(self) -> None:
            self.sent: list[tuple[str, bytes]] = []

        def put(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
            self.sent.append((topic, payload))

    config = MqttPublisherConfig(type="mqtt", label_hold_s=0.0, off_delay_s=0.0)
    control, sender, now = Control(), Sender(), [0.0]
    link = HomeAssistantLink(config, Topics.from_config(config, "cam"), "cam", sender, control, lambda: now[0])  # type: ignore[arg-type]
    result = {"task": "classification", "labels": [{"label": "cat", "score": 0.6}]}
    link.on_result(result)
    assert ("edged/cam/labels/cat/detected", b"ON") in sender.sent
    assert link.model_changed() is False  # nothing changed: no new discovery
    control.thresholds = {"cat": 0.7, "dog": 0.5}  # a reload raised cat's threshold
    assert link.model_changed() is True
    sender.sent.clear()
    now[0] = 1.0
    link.on_result(result)
    assert ("edged/cam/labels/cat/detected", b"OFF") in sender.sent  # 0.6 is below the new 0.7
    control.thresholds = {"cat": 0.7, "bird": 0.5}  # a new version: dog gone, bird new
    assert link.model_changed() is True and link.labels == ["cat", "bird"]
    assert link.context().labels == ("cat", "bird")  # what the next discovery announces
