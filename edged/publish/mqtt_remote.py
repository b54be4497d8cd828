"""Remote control over MQTT: commands on <prefix>/cmd/<name> with their replies, and rate-limited snapshots.

Commands arrive on paho's network thread and are carried out on the publisher's job thread (a snapshot takes
milliseconds to encode; the network thread must keep answering the broker). Every command gets exactly one
reply, and every refusal a log line.
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

from edged.config.publish import MqttPublisherConfig
from edged.publish.base import AppControl
from edged.publish.mqtt_commands import CommandRefused, CommandRunner, JobThread, parse_command, reply
from edged.publish.mqtt_sender import Sender
from edged.publish.mqtt_topics import Topics
from edged.results import utc_iso

log = logging.getLogger("edged.publish.mqtt")

#: Where a reply goes: an MQTT 5 response topic and correlation data, or (None, None) for <name>/reply.
Route = tuple[Any, Any]


class Remote:
    def __init__(
        self,
        config: MqttPublisherConfig,
        topics: Topics,
        sender: Sender,
        jobs: JobThread,
        control: AppControl,
        state_changed: Callable[[], None],
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.topics = topics
        self._sender = sender
        self._jobs = jobs
        self._control = control
        self._clock = clock
        self._runner = CommandRunner(control, self._snapshot_command, state_changed)
        self._snapshot_lock = threading.Lock()
        self._last_snapshot_at: float | None = None

    # ---- commands --------------------------------------------------------------------------------------------
    def on_command(self, name: str, message: mqtt.MQTTMessage) -> None:
        """From paho's network thread: queue the command for the job thread, or refuse it at once."""
        props = getattr(message, "properties", None)
        route: Route = (getattr(props, "ResponseTopic", None), getattr(props, "CorrelationData", None))
        if message.retain:  # left on the broker, it would run again at every reconnect
            self._refuse(name, None, "retained commands are ignored (publish the command without the retain flag)",
                         route)  # fmt: skip
            return
        payload = bytes(message.payload)
        if not self._jobs.submit(lambda: self._handle(name, payload, route)):
            self._refuse(name, None, "busy: too many commands are waiting; try again later", route)

    def _handle(self, name: str, payload: bytes, route: Route) -> None:
        command, request_id, error = parse_command(name, payload)
        if command is None:
            self._refuse(name, request_id, error or "invalid command", route)
            return
        try:
            result = self._runner.run(command)
        except CommandRefused as exc:
            self._refuse(name, request_id, str(exc), route)
            return
        except Exception as exc:  # the daemon failed to carry it out; the caller still deserves an answer
            log.exception("MQTT: command %r failed", name)
            self._refuse(name, request_id, f"internal error: {exc}", route)
            return
        log.info("MQTT: command %r done", name)
        self._reply(name, reply(name, request_id, result=result), route)

    def _refuse(self, name: str, request_id: str | int | None, error: str, route: Route) -> None:
        log.warning("MQTT: refused command %r: %s", name[:64], error)
        self._reply(name, reply(name[:64], request_id, error=error), route)

    def _reply(self, name: str, payload: dict[str, Any], route: Route) -> None:
        """On <prefix>/cmd/<name>/reply, or (MQTT 5) on the request's response topic with its correlation data."""
        response, correlation = route
        topic = response if isinstance(response, str) and response else self.topics.reply(name)
        properties = None
        if topic == response and correlation is not None:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.CorrelationData = correlation
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._sender.put(topic, body, qos=1, only_online=True, properties=properties)

    # ---- snapshots -------------------------------------------------------------------------------------------
    def _snapshot_command(self, annotated: bool | None) -> dict[str, Any]:
        return self.publish_snapshot(self.config.snapshot_annotated if annotated is None else annotated)

    def periodic_snapshot(self) -> None:
        try:
            self.publish_snapshot(self.config.snapshot_annotated)
        except CommandRefused as exc:
            log.debug("MQTT: no periodic snapshot: %s", exc)

    def publish_snapshot(self, annotated: bool) -> dict[str, Any]:
        """Encode the newest frame and publish it, at most once per snapshot_min_interval_s; never queued offline."""
        if not self._sender.is_connected:
            raise CommandRefused("not connected to the broker")
        with self._snapshot_lock:
            now = self._clock()
            last, wait = self._last_snapshot_at, self.config.snapshot_min_interval_s
            if last is not None and now - last < wait:
                raise CommandRefused(f"rate limited to one snapshot per {wait:g} s; try again in "
                                     f"{wait - (now - last):.1f} s")  # fmt: skip
            self._last_snapshot_at = now
        jpeg = self._control.snapshot_jpeg(annotated)
        if jpeg is None:
            raise CommandRefused("no frame has been processed yet")
        retain = self.config.snapshot_retain
        if not self._sender.put(self.topics.snapshot, jpeg, qos=1, retain=retain, only_online=True, coalesce=True):
            raise CommandRefused("not connected to the broker")
        return {"topic": self.topics.snapshot, "bytes": len(jpeg), "annotated": annotated, "at": utc_iso(time.time())}
