"""The MQTT publisher plugin: results, availability, state, stats, events, snapshots, Home Assistant discovery,
and the MQTT front end of the daemon's commands. paho is imported only when an MQTT publisher is built."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edged.publish.base import PublisherPlugin
from edged.publish.mqtt.config import MqttPublisherConfig

if TYPE_CHECKING:
    from edged.publish.mqtt.publisher import MqttPublisher


def create(config: MqttPublisherConfig, device_id: str) -> MqttPublisher:
    from edged.publish.mqtt.publisher import MqttPublisher

    return MqttPublisher(config, device_id)


PLUGIN = PublisherPlugin("mqtt", MqttPublisherConfig, create, "an MQTT broker (Home Assistant, Node-RED, IoT)")

__all__ = ["PLUGIN", "MqttPublisherConfig", "create"]
