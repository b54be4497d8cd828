"""The MQTT publisher's Home Assistant side: the smoothed label and top topics, the first snapshot, and the
discovery with its migration and stale-entity cleanup at each connect.

The pipeline's thread calls `on_result` (pure bookkeeping, then queued messages); the publisher's job thread
calls `after_connect` and `publish_discovery`; paho's network thread hands incoming messages to `on_message`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from edged import __version__
from edged.publish.base import Control
from edged.publish.mqtt.config import MqttPublisherConfig
from edged.publish.mqtt.discovery import (
    DiscoveryContext,
    device_message,
    discovery_filters,
    entity_messages,
    plan_cleanup,
    tracked_labels,
)
from edged.publish.mqtt.inventory import RetainedInventory
from edged.publish.mqtt.labels import LabelStates, TopState
from edged.publish.mqtt.sender import Sender
from edged.publish.mqtt.topics import Topics

log = logging.getLogger("edged.publish.mqtt")

#: Longest the inventory of retained discovery configs may take before discovery goes ahead without cleanup.
INVENTORY_WAIT_S = 5.0


class Subscriber(Protocol):
    def subscribe(self, topic: Any, qos: int = 0) -> Any: ...

    def unsubscribe(self, topic: Any) -> Any: ...


def _json(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


class HomeAssistantLink:
    def __init__(self, config: MqttPublisherConfig, topics: Topics, device_id: str, sender: Sender,
                 control: Control, clock: Callable[[], float]) -> None:  # fmt: skip
        self.config = config
        self.topics = topics
        self.device_id = device_id
        self._sender = sender
        self._control = control
        self._clock = clock
        self._thresholds: dict[str, float] = {}
        self.labels: list[str] | None = None
        self._states: LabelStates | None = None
        self._track(control.label_thresholds())
        self._top = TopState(config.label_hold_s) if config.homeassistant else None
        self._last_top: dict[str, Any] | None = None
        self.inventory = RetainedInventory(discovery_filters(config, device_id), topics.sync)
        self.first_snapshot_due = config.homeassistant

    def _track(self, thresholds: dict[str, float]) -> None:
        """Entities for these labels from now on. The pipeline thread reads `_states` once per result, so it sees
        the old object or the new one, never half of each."""
        task = self._control.state().get("task")
        self._thresholds = thresholds
        self.labels = tracked_labels(self.config, list(thresholds))
        self._states = (
            None if self.labels == [] else LabelStates(self.labels, thresholds, task != "classification",
                                                       self.config.label_hold_s, self.config.off_delay_s)
        )  # fmt: skip

    def model_changed(self) -> bool:
        """A new model runs (a hosted version, a rollback, a reload): track its labels and thresholds from now on.
        True when the discovery must be published again: a retrained model with another label set would otherwise
        leave Home Assistant with the old labels' entities, stuck at their last values, and none for the new ones."""
        thresholds = self._control.label_thresholds()
        if thresholds == self._thresholds:
            return False
        self._track(thresholds)
        return True

    # ---- results (pipeline thread) ----------------------------------------------------------------------------
    def on_result(self, result: dict[str, Any]) -> None:
        now = self._clock()
        states = self._states  # read once: a model change may replace it meanwhile
        if states is not None:
            for kind, label, text in states.changes(result, now):
                topic = self.topics.label(label) if kind == "value" else self.topics.label_detected(label)
                self._sender.put(topic, text.encode(), qos=1, retain=True)
        if self._top is not None:
            top = self._top.change(result, now)
            if top is not None:
                self._last_top = top
                self._sender.put(self.topics.top, _json(top), qos=1, retain=True)

    # ---- paho's network thread ---------------------------------------------------------------------------------
    def on_message(self, topic: str, payload: bytes, retained: bool) -> bool:
        return self.inventory.offer(topic, payload, retained)

    # ---- the job thread ----------------------------------------------------------------------------------------
    def republish_values(self) -> None:
        states = self._states
        if states is not None:
            for kind, label, text in states.current():
                topic = self.topics.label(label) if kind == "value" else self.topics.label_detected(label)
                self._sender.put(topic, text.encode(), qos=1, retain=True)
        if self._last_top is not None:
            self._sender.put(self.topics.top, _json(self._last_top), qos=1, retain=True)

    def context(self) -> DiscoveryContext:
        state = self._control.state()
        model = state.get("model") or {}
        return DiscoveryContext(self.device_id, __version__, state.get("task"), model.get("name"),
                                state.get("page_url"), tuple(self.labels or ()), "hosting" in state)  # fmt: skip

    def after_connect(self, client: Subscriber) -> None:
        """Find what edged left retained before, then publish the discovery and clear what is stale."""
        inventory = self.inventory
        marker = inventory.begin()
        for topic in [*inventory.filters, inventory.sync_topic]:
            client.subscribe(topic, qos=1)
        self._sender.put(inventory.sync_topic, marker, qos=1)
        retained = inventory.wait(INVENTORY_WAIT_S)
        for topic in inventory.filters:
            client.unsubscribe(topic)
        if retained is None:
            log.warning("MQTT: could not list the retained discovery configs within %.0f s; stale Home Assistant "
                        "entities are not removed this time", INVENTORY_WAIT_S)  # fmt: skip
            retained = {}
        self.publish_discovery(retained)

    def publish_discovery(self, retained: dict[str, bytes] | None = None) -> None:
        config, topics = self.config, self.topics
        context = self.context()
        cleanup = plan_cleanup(config, topics, context, retained or {})
        for topic in cleanup.clear_before:
            self._sender.put(topic, b"", qos=1, retain=True)
        for topic in cleanup.migrate:  # hand the entities over to the device config, keeping their history
            self._sender.put(topic, _json({"migrate_discovery": True}), qos=1)
        if config.discovery_format == "device":
            messages = [device_message(config, topics, context, cleanup.removed)]
        else:
            messages = entity_messages(config, topics, context)
        for topic, payload in messages:
            self._sender.put(topic, _json(payload), qos=1, retain=True)
        for topic in cleanup.clear_after:
            self._sender.put(topic, b"", qos=1, retain=True)
        cleared = len(cleanup.clear_before) + len(cleanup.clear_after)
        if cleared or cleanup.removed:
            log.info("MQTT: Home Assistant discovery: %d old config(s) cleared, %d entit(ies) removed", cleared,
                     len(cleanup.removed or {}))  # fmt: skip
