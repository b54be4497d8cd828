"""The publisher for `[publisher] type`, imported lazily (paho is only imported when MQTT is configured)."""

from __future__ import annotations

from edged.config.app import AppConfig
from edged.publish.base import Publisher


def create_publisher(config: AppConfig) -> Publisher:
    publisher = config.publisher
    if publisher.type == "mqtt":
        from edged.publish.mqtt import MqttPublisher

        return MqttPublisher(publisher, config.device_id)
    from edged.publish.stdout import StdoutPublisher

    return StdoutPublisher(publisher)
