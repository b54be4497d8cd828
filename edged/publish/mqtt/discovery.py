"""Home Assistant MQTT discovery: pure functions from the config and the daemon's state to (topic, payload) pairs.

One device per edged instance. Its entities: the top label and score, a count (detection) or score
(classification) and a "detected" binary sensor per tracked label, the snapshot as an image, a button that takes
a snapshot, a switch that pauses and resumes inference, the source's state, and the output rate as a diagnostic.
Every entity follows edged's availability topic, so Home Assistant greys them out when edged stops or its last
will fires. Scores are in % (0-100), Home Assistant's convention.

Two formats (`publisher.discovery_format`):
- "device" (default): one retained message on <discovery_prefix>/device/edged_<device>/config whose `cmps` lists
  every entity (Home Assistant 2024.11 or later);
- "entity": one retained message per entity on <discovery_prefix>/<component>/edged_<device>/<entity>/config.

Both use the same entity ids, so Home Assistant keeps each entity's history when the format changes; the
cleanup plan (plan_cleanup) migrates retained configs of the other format and removes entities the current
config no longer has. Payloads follow edged/schemas/ha-discovery.schema.json; docs/mqtt.md shows them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edged.publish.mqtt.config import MqttPublisherConfig
from edged.publish.mqtt.labels import OFF, ON
from edged.publish.mqtt.topics import OFFLINE, ONLINE, Topics, slug

#: Set by `set_paused`'s switch: JSON objects, as every command payload is.
SWITCH_ON = '{"paused": false}'
SWITCH_OFF = '{"paused": true}'


def node_id(device_id: str) -> str:
    """`edged_<device_id>`, unchanged: device ids are letters, digits, '-' and '_', exactly what Home Assistant
    accepts in a discovery node id, so the mapping is one to one (`qa-cam` and `qa_cam` stay two devices)."""
    return f"edged_{device_id}"


#: Entity keys of edged's own entities (the <entity> level of a discovery topic, and the end of a unique_id).
OWN_ENTITIES = (
    "top_label",
    "top_score",
    "snapshot",
    "take_snapshot",
    "inference",
    "source_state",
    "output_fps",
    "model_update",
)


def label_entities(label: str) -> tuple[str, ...]:
    """The entity keys a tracked label may get: its count or score sensor and its binary sensor."""
    key = slug(label)
    return (f"{key}_count", f"{key}_score", f"{key}_detected")


@dataclass(frozen=True)
class Entity:
    component: str
    key: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class DiscoveryContext:
    """What discovery needs from the running daemon."""

    device_id: str
    version: str
    task: str | None
    model: str | None
    page_url: str | None = None
    labels: tuple[str, ...] = ()  # the labels that get entities (see tracked_labels)
    hosting: bool = False  # a [hosting] table is configured: the model's version is an update entity


def tracked_labels(config: MqttPublisherConfig, model_labels: list[str]) -> list[str] | None:
    """Labels with labels/<label> topics and entities: `labels`, else every label of a small model (at most
    auto_labels_max), else every label seen when label_topics asks for topics (None), else none ([])."""
    if config.labels:
        return list(config.labels)
    if config.homeassistant and 0 < len(model_labels) <= config.auto_labels_max:
        return list(model_labels)
    return None if config.label_topics else []


def device_block(config: MqttPublisherConfig, context: DiscoveryContext) -> dict[str, Any]:
    block: dict[str, Any] = {
        "identifiers": [node_id(context.device_id)],
        "name": config.device_name or context.device_id,
        "manufacturer": "edged",
        "model": f"edged ({context.model})" if context.model else "edged",
        "sw_version": context.version,
    }
    if context.page_url:
        block["configuration_url"] = context.page_url
    return block


def entities(config: MqttPublisherConfig, topics: Topics, context: DiscoveryContext) -> list[Entity]:
    """Every entity of the device, in the order Home Assistant lists them."""
    found = [
        Entity("sensor", "top_label", {"name": "Top label", "state_topic": topics.top,
                                       "value_template": "{{ value_json.label or 'none' }}",
                                       "icon": "mdi:label-outline"}),
        Entity("sensor", "top_score", {"name": "Top score", "state_topic": topics.top,
                                       "value_template": "{{ value_json.score }}", "unit_of_measurement": "%",
                                       "state_class": "measurement", "icon": "mdi:percent"}),
        Entity("image", "snapshot", {"name": "Snapshot", "image_topic": topics.snapshot,
                                     "content_type": "image/jpeg"}),
        Entity("button", "take_snapshot", {"name": "Take snapshot", "command_topic": topics.command("snapshot"),
                                           "payload_press": "{}", "icon": "mdi:camera"}),
        Entity("switch", "inference", {"name": "Inference", "command_topic": topics.command("set_paused"),
                                       "payload_on": SWITCH_ON, "payload_off": SWITCH_OFF,
                                       "state_topic": topics.state, "state_on": "running", "state_off": "paused",
                                       "value_template": "{{ 'paused' if value_json.paused else 'running' }}",
                                       "icon": "mdi:play-pause", "entity_category": "config"}),
        Entity("sensor", "source_state", {"name": "Source state", "state_topic": topics.state,
                                          "value_template": "{{ value_json.source.state }}", "icon": "mdi:cctv",
                                          "entity_category": "diagnostic"}),
        Entity("sensor", "output_fps", {"name": "Results per second", "state_topic": topics.stats,
                                        "value_template": "{{ value_json.output_fps }}", "unit_of_measurement": "fps",
                                        "state_class": "measurement", "entity_category": "diagnostic",
                                        "icon": "mdi:speedometer"}),
    ]  # fmt: skip
    counting = context.task != "classification"
    for label in context.labels:
        key = slug(label)
        value: dict[str, Any] = {"name": f"{label} count" if counting else f"{label} score",
                                 "state_topic": topics.label(label), "state_class": "measurement",
                                 "icon": "mdi:counter" if counting else "mdi:percent"}  # fmt: skip
        if not counting:  # the topic carries 0-1 with two decimals (docs/mqtt.md); Home Assistant shows %
            value |= {"unit_of_measurement": "%", "value_template": "{{ (value | float(0) * 100) | round(0) }}"}
        found.append(Entity("sensor", f"{key}_{'count' if counting else 'score'}", value))
        detected: dict[str, Any] = {"name": f"{label} detected", "state_topic": topics.label_detected(label),
                                    "payload_on": ON, "payload_off": OFF}  # fmt: skip
        device_class = config.device_classes.get(label, config.detected_device_class)
        if device_class:
            detected["device_class"] = device_class
        found.append(Entity("binary_sensor", f"{key}_detected", detected))
    found += hosting_entities(config, topics, context)
    return found


def hosting_entities(config: MqttPublisherConfig, topics: Topics, context: DiscoveryContext) -> list[Entity]:
    """Model hosting's entities: the model's version as an update entity, with an Install button."""
    if not context.hosting:
        return []
    return [Entity("update", "model_update", {
        "name": "Model", "state_topic": topics.update, "command_topic": topics.command("install_update"),
        "payload_install": "{}", "entity_category": "config", "icon": "mdi:brain",
    })]  # fmt: skip


def entity_topic(config: MqttPublisherConfig, node: str, entity: Entity) -> str:
    return f"{config.discovery_prefix}/{entity.component}/{node}/{entity.key}/config"


def device_topic(config: MqttPublisherConfig, node: str) -> str:
    return f"{config.discovery_prefix}/device/{node}/config"


def _availability(topics: Topics) -> list[dict[str, str]]:
    return [{"topic": topics.availability, "payload_available": ONLINE, "payload_not_available": OFFLINE}]


def _origin(context: DiscoveryContext) -> dict[str, str]:
    return {"name": "edged", "sw_version": context.version}


def entity_messages(
    config: MqttPublisherConfig, topics: Topics, context: DiscoveryContext
) -> list[tuple[str, dict[str, Any]]]:
    """The "entity" format: (topic, payload) per entity."""
    node = node_id(context.device_id)
    common = {"availability": _availability(topics), "device": device_block(config, context),
              "origin": _origin(context)}  # fmt: skip
    return [
        (entity_topic(config, node, entity), {**entity.fields, "unique_id": f"{node}_{entity.key}", **common})
        for entity in entities(config, topics, context)
    ]


def device_message(
    config: MqttPublisherConfig, topics: Topics, context: DiscoveryContext, removed: Mapping[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """The "device" format: one (topic, payload); `removed` (key → component) are entities to delete."""
    node = node_id(context.device_id)
    components: dict[str, Any] = {
        entity.key: {"p": entity.component, **entity.fields, "unique_id": f"{node}_{entity.key}"}
        for entity in entities(config, topics, context)
    }
    for key, component in (removed or {}).items():
        if key not in components:
            components[key] = {"p": component}  # a component with only its platform is removed by Home Assistant
    payload = {"dev": device_block(config, context), "o": _origin(context), "availability": _availability(topics),
               "cmps": components}  # fmt: skip
    return device_topic(config, node), payload


@dataclass(frozen=True)
class Cleanup:
    """What to publish around the discovery: `clear_before` (empty retained messages: stale configs, a device
    config that per-entity configs replace), `migrate` (topic → {"migrate_discovery": true}, not retained) before
    it, `clear_after` (the per-entity configs a device config replaced) after it, and entities the device
    message must remove."""

    clear_before: tuple[str, ...] = ()
    migrate: tuple[str, ...] = ()
    clear_after: tuple[str, ...] = ()
    removed: Mapping[str, str] | None = None


def plan_cleanup(
    config: MqttPublisherConfig, topics: Topics, context: DiscoveryContext, retained: Mapping[str, bytes]
) -> Cleanup:
    """From the retained discovery configs found on the broker under this device's node id, what to migrate,
    clear or remove so Home Assistant ends with exactly the current entities."""
    node = node_id(context.device_id)
    device = device_topic(config, node)
    legacy = legacy_configs(config, context.device_id, retained)
    live = {topic: payload for topic, payload in retained.items() if payload and f"/{node}/" in topic}
    if config.discovery_format == "entity":
        current = {topic for topic, _ in entity_messages(config, topics, context)}
        return Cleanup(clear_before=tuple(sorted([*legacy, *(topic for topic in live if topic not in current)])))
    old_entities = tuple(sorted(topic for topic in live if topic != device))
    removed: dict[str, str] = {}
    previous = live.get(device)
    if previous is not None:
        try:
            components = json.loads(previous).get("cmps", {})
        except (ValueError, AttributeError):
            components = {}
        current_keys = {entity.key for entity in entities(config, topics, context)}
        if isinstance(components, dict):
            removed = {key: str(value.get("p", "sensor")) for key, value in components.items()
                       if key not in current_keys and isinstance(value, dict) and len(value) > 1}  # fmt: skip
    return Cleanup(clear_before=legacy, migrate=old_entities, clear_after=old_entities, removed=removed)


def legacy_node_id(device_id: str) -> str:
    """The node id edged 0.1 used (`edged_` + the id lower-cased, '-' as '_'), which two ids could share."""
    return f"edged_{slug(device_id)}"


def discovery_filters(config: MqttPublisherConfig, device_id: str) -> list[str]:
    """Subscriptions that find every retained discovery config edged published for this device before (also under
    the node id of edged 0.1, so an upgraded device clears what it left there)."""
    nodes = dict.fromkeys([node_id(device_id), legacy_node_id(device_id)])
    found = []
    for node in nodes:
        found += [f"{config.discovery_prefix}/+/{node}/+/config", f"{config.discovery_prefix}/device/{node}/config"]
    return found


def legacy_configs(config: MqttPublisherConfig, device_id: str, retained: Mapping[str, bytes]) -> tuple[str, ...]:
    """Per-entity configs this device published under edged 0.1's node id: those whose device is named like this
    one (another device whose id maps to the same old node has another name, and is left alone)."""
    legacy = legacy_node_id(device_id)
    if legacy == node_id(device_id):
        return ()
    name = config.device_name or device_id
    mine = []
    for topic, payload in retained.items():
        if f"/{legacy}/" not in topic or not payload:
            continue
        try:
            device = json.loads(payload).get("device", {})
        except (ValueError, AttributeError):
            continue
        if isinstance(device, dict) and device.get("name") == name:
            mine.append(topic)
    return tuple(sorted(mine))


#: Home Assistant shows at most this much of a release summary.
RELEASE_SUMMARY_MAX = 255


def update_payload(hosting: dict[str, Any], model: dict[str, Any] | None) -> dict[str, Any]:
    """The <prefix>/update message (Home Assistant's MQTT update entity state) from the state's `hosting` part.

    `in_progress` and `update_percentage` are read by Home Assistant 2024.11 and later; earlier versions ignore them.
    """
    current = hosting.get("current_version")
    installed = str(current) if current is not None else "bundled"
    available = hosting.get("available_version")
    busy = hosting.get("state") in ("downloading", "validating")
    progress = hosting.get("progress")
    return {
        "installed_version": installed,
        "latest_version": str(available) if available is not None else installed,
        "title": f"{hosting.get('name') or (model or {}).get('name') or 'model'} ({hosting.get('channel', 'stable')})",
        "release_summary": str(hosting.get("available_notes") or "")[:RELEASE_SUMMARY_MAX],
        "in_progress": busy,
        "update_percentage": progress if busy and progress is not None else None,
    }
