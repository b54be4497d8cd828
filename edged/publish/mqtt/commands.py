"""The MQTT front end of the daemon's commands, and rate-limited snapshots.

A message on <prefix>/cmd/<name> is handed, unparsed, to the daemon's one dispatcher (edged/app/control.py),
which parses, refuses or carries it out off paho's network thread and answers exactly once. The answer goes to
<prefix>/cmd/<name>/reply, or (MQTT 5) to the request's response topic with its correlation data.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edged.errors import CommandRefused
from edged.publish.base import CommandRequest, Control
from edged.publish.mqtt.config import MqttPublisherConfig
from edged.publish.mqtt.sender import Sender
from edged.publish.mqtt.topics import Topics
from edged.results import utc_iso

log = logging.getLogger("edged.publish.mqtt")

#: Where a reply goes: an MQTT 5 response topic and correlation data, or (None, None) for <name>/reply.
Route = tuple[Any, Any]


class MqttCommands:
    def __init__(self, topics: Topics, sender: Sender, control: Control) -> None:
        self.topics = topics
        self._sender = sender
        self._control = control

    def on_message(self, name: str, message: mqtt.MQTTMessage) -> None:
        """From paho's network thread: hand the command to the daemon; the reply comes back later."""
        props = getattr(message, "properties", None)
        route: Route = (getattr(props, "ResponseTopic", None), getattr(props, "CorrelationData", None))
        request = CommandRequest(name, bytes(message.payload), origin="mqtt", retained=bool(message.retain))
        self._control.submit(request, lambda payload: self._reply(name, payload, route))

    def _reply(self, name: str, payload: dict[str, Any], route: Route) -> None:
        """On <prefix>/cmd/<name>/reply, or (MQTT 5) on the request's response topic with its correlation data."""
        response, correlation = route
        topic = response if isinstance(response, str) and response else self.topics.reply(name[:64])
        properties = None
        if topic == response and correlation is not None:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.CorrelationData = correlation
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._sender.put(topic, body, qos=1, only_online=True, properties=properties)


class Snapshots:
    """Encodes the newest frame and publishes it on <prefix>/snapshot, at most once per snapshot_min_interval_s."""

    def __init__(
        self,
        config: MqttPublisherConfig,
        topics: Topics,
        sender: Sender,
        control: Control,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.topics = topics
        self._sender = sender
        self._control = control
        self._clock = clock
        self._lock = threading.Lock()
        self._last_at: float | None = None

    def periodic(self) -> None:
        try:
            self.publish(None)
        except CommandRefused as exc:
            log.debug("MQTT: no periodic snapshot: %s", exc)

    def publish(self, annotated: bool | None) -> dict[str, Any]:
        """Never queued offline: a picture is only worth sending now."""
        draw = self.config.snapshot_annotated if annotated is None else annotated
        if not self._sender.is_connected:
            raise CommandRefused("not connected to the broker")
        with self._lock:
            now = self._clock()
            last, wait = self._last_at, self.config.snapshot_min_interval_s
            if last is not None and now - last < wait:
                raise CommandRefused(
                    f"rate limited to one snapshot per {wait:g} s; try again in {wait - (now - last):.1f} s"
                )
            self._last_at = now
        jpeg = self._control.snapshot_jpeg(draw)
        if jpeg is None:
            raise CommandRefused("no frame has been processed yet")
        retain = self.config.snapshot_retain
        if not self._sender.put(self.topics.snapshot, jpeg, qos=1, retain=retain, only_online=True, coalesce=True):
            raise CommandRefused("not connected to the broker")
        return {"topic": self.topics.snapshot, "bytes": len(jpeg), "annotated": draw, "at": utc_iso(time.time())}
