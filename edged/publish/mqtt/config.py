"""The `[publisher] type = "mqtt"` table: broker, credentials, TLS, topics, delivery, snapshots, Home Assistant.

No paho here: the config is validated (and `edged check-config` runs) without importing the MQTT client.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from edged.config.base import FilePath
from edged.config.publisher import PublisherConfig

_TOPIC_FORBIDDEN = re.compile(r"[+#\x00]")
#: Home Assistant's binary_sensor device classes (homeassistant.components.binary_sensor.BinarySensorDeviceClass).
BINARY_SENSOR_CLASSES = (
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas", "heat",
    "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power", "presence", "problem",
    "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window",
)  # fmt: skip
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MqttPublisherConfig(PublisherConfig):
    """An MQTT broker (mosquitto, EMQX, HiveMQ, VerneMQ, AWS IoT Core, ...): results, state, discovery, commands.

    Secrets never live in this object: the password is named by a file or an environment variable and read
    when the publisher starts, so the config can be logged, printed and compared safely.
    """

    PATH_KEYS: ClassVar[tuple[str, ...]] = ("password_file", "tls_ca_file", "tls_cert_file", "tls_key_file")

    type: Literal["mqtt"]
    # -- connection
    host: str = Field("localhost", min_length=1, description="Broker host name or address.")
    port: int | None = Field(None, ge=1, le=65535, description="Default: 1883, or 8883 with TLS.")
    protocol: Literal["3.1.1", "5"] = Field(
        "5", description="MQTT protocol version; 5 lets edged recognise (and refuse) commands published retained."
    )
    client_id: str | None = Field(None, min_length=1, max_length=128, description="Default: edged-<device_id>.")
    keepalive_s: int = Field(60, ge=5, le=65535, description="Seconds between pings when idle.")
    reconnect_min_s: int = Field(1, ge=1, le=3600, description="First wait after a lost or failed connection.")
    reconnect_max_s: int = Field(60, ge=1, le=3600, description="The wait doubles up to this cap.")
    username: str | None = Field(None, min_length=1)
    password_file: FilePath | None = Field(None, description="File whose first line is the password.")
    password_env: str | None = Field(None, description="Environment variable holding the password.")
    tls: bool = Field(False, description="Encrypt the connection (also implied by any tls_* file).")
    tls_ca_file: FilePath | None = Field(
        None, description="CA bundle for the broker's certificate; default: system CAs."
    )
    tls_cert_file: FilePath | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    tls_key_file: FilePath | None = Field(None, description="Private key (PEM, unencrypted) of tls_cert_file.")
    tls_insecure: bool = Field(False, description="Skip the host name check of the broker's certificate.")
    # -- topics and delivery
    topic_prefix: str | None = Field(None, description="Default: edged/<device_id>; '{device_id}' is replaced.")
    qos: Literal[0, 1, 2] = Field(1, description="QoS of results.")
    mode: Literal["every", "on_change", "interval"] = Field("every", description="Which results are published.")
    min_interval_s: float = Field(0.0, ge=0, description="on_change: least time between two results.")
    heartbeat_s: float = Field(60.0, ge=0, description="on_change: publish anyway after this long; 0 = never.")
    interval_s: float = Field(10.0, gt=0, description="interval: one result per this many seconds.")
    labels: list[str] = Field(default_factory=list, description="Labels with their own topics and HA entities.")
    label_topics: bool = Field(False, description="Publish retained labels/<label> topics (count or score).")
    buffer_max_messages: int = Field(10_000, ge=1, le=10_000_000, description="Results kept while offline.")
    buffer_max_age_s: float = Field(3600.0, gt=0, description="Older buffered results are dropped, not sent.")
    max_inflight: int = Field(50, ge=1, le=1000, description="QoS>0 messages sent but not yet acknowledged.")
    # -- snapshot
    snapshot_interval_s: float = Field(0.0, ge=0, description="Publish a JPEG this often; 0 = only on command.")
    snapshot_min_interval_s: float = Field(2.0, ge=0, description="Least time between two snapshots.")
    snapshot_annotated: bool = Field(True, description="Draw boxes and labels on snapshots.")
    snapshot_retain: bool = Field(True, description="Retain the last snapshot (Home Assistant shows it at once).")
    # -- Home Assistant
    homeassistant: bool = Field(True, description="Publish Home Assistant MQTT discovery.")
    discovery_prefix: str = Field("homeassistant", min_length=1, description="Home Assistant's discovery prefix.")
    device_name: str | None = Field(None, min_length=1, description="Device name in Home Assistant.")
    discovery_format: Literal["device", "entity"] = Field(
        "device", description="'device': one discovery message for the device (Home Assistant 2024.11 or later); "
        "'entity': one per entity (older Home Assistant)."
    )  # fmt: skip
    auto_labels_max: int = Field(
        20, ge=0, le=1000, description="With `labels` empty, entities for every label of a model with at most this "
        "many labels; 0 = none."
    )  # fmt: skip
    label_hold_s: float = Field(1.0, ge=0, description="Least time between two values of one label's topics.")
    off_delay_s: float = Field(5.0, ge=0, description="A detected label stays ON this long after it was last seen.")
    detected_device_class: str | None = Field(
        "occupancy", description="Home Assistant device class of the '<label> detected' binary sensors."
    )
    device_classes: dict[str, str] = Field(
        default_factory=dict, description="Per-label device classes, overriding detected_device_class."
    )

    @field_validator("topic_prefix", "discovery_prefix")
    @classmethod
    def _topic_safe(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.strip("/") or value != value.strip("/") or "//" in value or _TOPIC_FORBIDDEN.search(value):
            raise ValueError("use topic levels separated by '/', without '+', '#', or a leading/trailing '/'")
        return value

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("give the name of an environment variable (letters, digits, '_'), not the password")
        return value

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, value: list[str]) -> list[str]:
        from edged.publish.mqtt.discovery import OWN_ENTITIES, label_entities
        from edged.publish.mqtt.topics import topic_level

        if any(not label.strip() for label in value):
            raise ValueError("labels must not be empty")
        if len(set(value)) != len(value):
            raise ValueError("each label may appear once")
        # Labels become topic levels and Home Assistant entity ids, where some characters are replaced: two labels
        # that end up the same would share one topic and one entity, each overwriting the other.
        seen: dict[str, str] = {}
        for label in value:
            for key in (f"topic labels/{topic_level(label)}", *(f"entity {e}" for e in label_entities(label))):
                if key in seen and seen[key] != label:
                    raise ValueError(f"labels {seen[key]!r} and {label!r} would share the {key}; list only one of them")
                seen[key] = label
            clash = set(label_entities(label)) & set(OWN_ENTITIES)
            if clash:
                raise ValueError(f"label {label!r} would take the entity id {clash.pop()} of edged's own sensor")
        return value

    @field_validator("detected_device_class")
    @classmethod
    def _device_class(cls, value: str | None) -> str | None:
        if value is not None and value not in BINARY_SENSOR_CLASSES:
            raise ValueError(f"{value!r} is not a Home Assistant binary_sensor device class; use one of "
                             f"{', '.join(BINARY_SENSOR_CLASSES)}")  # fmt: skip
        return value

    @field_validator("device_classes")
    @classmethod
    def _device_classes(cls, value: dict[str, str]) -> dict[str, str]:
        for label, device_class in value.items():
            cls._device_class(device_class)
            if not label.strip():
                raise ValueError("labels must not be empty")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MqttPublisherConfig:
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("set either password_file or password_env, not both")
        if (self.password_file is not None or self.password_env is not None) and self.username is None:
            raise ValueError("a password needs a username: set `username`")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both tls_cert_file and tls_key_file for mutual TLS, or neither")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must not be smaller than reconnect_min_s")
        return self

    def entity_labels(self) -> list[str]:
        return [*self.labels, *(label for label in self.device_classes if label not in self.labels)]

    @property
    def uses_tls(self) -> bool:
        return self.tls or any(p is not None for p in (self.tls_ca_file, self.tls_cert_file, self.tls_key_file))

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else 8883 if self.uses_tls else 1883
