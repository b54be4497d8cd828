"""Every MQTT topic edged publishes or subscribes to, derived from the prefix in one place (docs/mqtt.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from edged.publish.mqtt.config import MqttPublisherConfig

ONLINE = "online"
OFFLINE = "offline"

_NOT_IN_TOPIC_LEVEL = re.compile(r"[/+#\x00-\x1f]")
_NOT_IN_ID = re.compile(r"[^a-z0-9_]+")


def topic_level(label: str) -> str:
    """A label as one topic level: '/', '+', '#' and control characters become '_' (they would split or match)."""
    return _NOT_IN_TOPIC_LEVEL.sub("_", label.strip()) or "_"


def slug(text: str) -> str:
    """Lower-case letters, digits and '_': what Home Assistant accepts in ids and discovery topic levels."""
    return _NOT_IN_ID.sub("_", text.lower()).strip("_") or "x"


@dataclass(frozen=True)
class Topics:
    prefix: str

    @classmethod
    def from_config(cls, config: MqttPublisherConfig, device_id: str) -> Topics:
        prefix = config.topic_prefix or "edged/{device_id}"
        return cls(prefix.replace("{device_id}", device_id))

    def _under(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    @property
    def availability(self) -> str:
        return self._under("availability")

    @property
    def results(self) -> str:
        return self._under("results")

    @property
    def state(self) -> str:
        return self._under("state")

    @property
    def stats(self) -> str:
        return self._under("stats")

    @property
    def events(self) -> str:
        return self._under("events")

    @property
    def snapshot(self) -> str:
        return self._under("snapshot")

    @property
    def update(self) -> str:
        """Model hosting, in the shape of Home Assistant's MQTT update entity (retained)."""
        return self._under("update")

    @property
    def command_filter(self) -> str:
        """The subscription that receives every command (replies are one level deeper, so not matched)."""
        return self._under("cmd/+")

    def command(self, name: str) -> str:
        return self._under(f"cmd/{name}")

    def reply(self, name: str) -> str:
        return self._under(f"cmd/{name}/reply")

    def command_name(self, topic: str) -> str | None:
        """The <name> of a <prefix>/cmd/<name> topic, or None for any other topic."""
        head = self._under("cmd/")
        if not topic.startswith(head):
            return None
        name = topic[len(head) :]
        return name if name and "/" not in name else None

    def label(self, label: str) -> str:
        return self._under(f"labels/{topic_level(label)}")

    def label_detected(self, label: str) -> str:
        return self._under(f"labels/{topic_level(label)}/detected")

    @property
    def top(self) -> str:
        return self._under("top")

    @property
    def sync(self) -> str:
        """edged's own marker after it subscribed to its discovery topics (see inventory.py)."""
        return self._under("sync")
