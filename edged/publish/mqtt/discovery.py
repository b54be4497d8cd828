"""Home Assistant MQTT discovery: pure functions from the config and the daemon's state to (topic, payload) pairs.

One device per edged instance, with entities for the top label and score, a count (detection) or score
(classification) and a "detected" binary sensor per configured label, the snapshot as an image entity, a button
that takes a snapshot, and the output rate as a diagnostic. Every entity's availability is edged's availability
topic, so Home Assistant greys them out when edged stops or its last will fires. Payloads follow
edged/schemas/ha-discovery.schema.json; docs/mqtt.md shows them.
"""

from __future__ import annotations

from typing import Any

from edged.publish.mqtt.config import MqttPublisherConfig
from edged.publish.mqtt.topics import OFFLINE, ONLINE, Topics, slug

_TOP = "{% set top = value_json.labels + value_json.objects %}"
TOP_LABEL_TEMPLATE = _TOP + "{{ top[0].label if top else 'none' }}"
TOP_SCORE_TEMPLATE = _TOP + "{{ (top[0].score * 100) | round(1) if top else 0 }}"
DETECTED_TEMPLATE = "{{ 'ON' if value | float(0) > 0 else 'OFF' }}"


def node_id(device_id: str) -> str:
    return f"edged_{slug(device_id)}"


def device_block(config: MqttPublisherConfig, device_id: str, version: str, model: str | None) -> dict[str, Any]:
    block: dict[str, Any] = {
        "identifiers": [node_id(device_id)],
        "name": config.device_name or device_id,
        "manufacturer": "edged",
        "model": f"edged ({model})" if model else "edged",
        "sw_version": version,
    }
    return block


def discovery_messages(
    config: MqttPublisherConfig,
    topics: Topics,
    device_id: str,
    version: str,
    task: str | None,
    model: str | None,
    hosting: bool = False,
) -> list[tuple[str, dict[str, Any]]]:
    """Every discovery config message: (topic, payload), to be published retained. With `hosting` (a [hosting]
    table is configured) the model's version is an update entity, with an Install button."""
    node = node_id(device_id)
    common: dict[str, Any] = {
        "availability": [{"topic": topics.availability, "payload_available": ONLINE,
                          "payload_not_available": OFFLINE}],
        "device": device_block(config, device_id, version, model),
        "origin": {"name": "edged", "sw_version": version},
    }  # fmt: skip

    def entity(component: str, key: str, fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        payload = {**fields, "unique_id": f"{node}_{key}", **common}
        return f"{config.discovery_prefix}/{component}/{node}/{key}/config", payload

    messages = [
        entity("sensor", "top_label", {"name": "Top label", "state_topic": topics.results,
                                       "value_template": TOP_LABEL_TEMPLATE, "icon": "mdi:label-outline"}),
        entity("sensor", "top_score", {"name": "Top score", "state_topic": topics.results,
                                       "value_template": TOP_SCORE_TEMPLATE, "unit_of_measurement": "%",
                                       "state_class": "measurement", "icon": "mdi:percent"}),
        entity("sensor", "output_fps", {"name": "Results per second", "state_topic": topics.stats,
                                        "value_template": "{{ value_json.output_fps }}", "unit_of_measurement": "fps",
                                        "state_class": "measurement", "entity_category": "diagnostic"}),
        entity("image", "snapshot", {"name": "Snapshot", "image_topic": topics.snapshot,
                                     "content_type": "image/jpeg"}),
        entity("button", "take_snapshot", {"name": "Take snapshot", "command_topic": topics.command("snapshot"),
                                           "payload_press": "{}", "icon": "mdi:camera"}),
    ]  # fmt: skip
    if hosting:
        messages.append(entity("update", "model_update", {
            "name": "Model", "state_topic": topics.update, "command_topic": topics.command("install_update"),
            "payload_install": "{}", "entity_category": "config", "icon": "mdi:brain",
        }))  # fmt: skip
    counting = task != "classification"
    for label in config.labels:
        key = slug(label)
        value_entity = {
            "name": f"{label} count" if counting else f"{label} score",
            "state_topic": topics.label(label),
            "state_class": "measurement",
            "icon": "mdi:counter" if counting else "mdi:percent",
        }
        messages.append(entity("sensor", f"{key}_{'count' if counting else 'score'}", value_entity))
        messages.append(
            entity("binary_sensor", f"{key}_detected", {"name": f"{label} detected", "state_topic": topics.label(label),
                                                        "value_template": DETECTED_TEMPLATE})
        )  # fmt: skip
    return messages


def tracked_label_topics(config: MqttPublisherConfig) -> bool:
    """labels/<label> topics are published when asked for, and whenever discovery entities read them."""
    return config.label_topics or (config.homeassistant and bool(config.labels))


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
