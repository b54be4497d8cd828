"""The MQTT publisher: results, availability, state, stats, events, snapshots, Home Assistant discovery, commands.

Threads, all started by the daemon's runtime: paho's network thread (callbacks), the sender (outbox → paho, see
sender.py), and a job queue for snapshots and discovery. The pipeline's threads only serialize and append to the
bounded outbox, so `publish_result` never waits for the network. Topics and payloads: docs/mqtt.md.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edged.config.publisher import PublisherConfig
from edged.errors import CommandRefused
from edged.publish.base import Control, Joinable, Runtime
from edged.publish.mqtt.commands import MqttCommands, Snapshots
from edged.publish.mqtt.config import MqttPublisherConfig
from edged.publish.mqtt.connection import (
    build_client,
    client_id_of,
    describe_connect_error,
    describe_early_close,
    describe_refusal,
    read_password,
    tls_context,
)
from edged.publish.mqtt.discovery import update_payload
from edged.publish.mqtt.homeassistant import HomeAssistantLink
from edged.publish.mqtt.jobs import JobQueue
from edged.publish.mqtt.modes import ModeFilter
from edged.publish.mqtt.outbox import Outbox
from edged.publish.mqtt.sender import Sender
from edged.publish.mqtt.takeover import TakeoverWatch
from edged.publish.mqtt.topics import OFFLINE, ONLINE, Topics
from edged.results import utc_iso

log = logging.getLogger(__name__)

#: Keys a running publisher takes on a reload without reconnecting: which results go out, and at what QoS.
LIVE_KEYS = frozenset({"mode", "min_interval_s", "heartbeat_s", "interval_s", "qos"})
#: Least time between two "buffer full" warnings in the log (the drops are counted in between).
_DROP_LOG_INTERVAL_S = 30.0


def subscriptions(commands: str, status: str | None, v5: bool) -> list[tuple[str, Any]]:
    """What edged subscribes to. Under MQTT 5 commands are subscribed "retain as published", so a command that
    was published retained is seen as such even when it arrives live, and refused (MQTT 3.1.1 brokers clear the
    flag on live delivery: only a replayed retained command can be recognised there)."""
    command_options: Any = SubscribeOptions(qos=1, retainAsPublished=True) if v5 else 1
    found = [(commands, command_options)]
    if status is not None:
        found.append((status, SubscribeOptions(qos=1) if v5 else 1))
    return found


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


class MqttPublisher:
    def __init__(
        self, config: MqttPublisherConfig, device_id: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.device_id = device_id
        self.topics = Topics.from_config(config, device_id)
        self._clock = clock
        self._filter = ModeFilter(config)
        self._ha: HomeAssistantLink | None = None  # labels, top, discovery (set at start: it needs the model)
        self._outbox = Outbox(config.buffer_max_messages, config.buffer_max_age_s)
        self._jobs = JobQueue()
        self._client: mqtt.Client | None = None
        self._sender: Sender | None = None
        self._control: Control | None = None
        self._commands: MqttCommands | None = None
        self._snapshots: Snapshots | None = None
        self._threads: list[Joinable] = []
        self._status_topic = f"{config.discovery_prefix}/status"
        self._where = f"{config.host}:{config.effective_port}"
        # connection bookkeeping, written by paho's thread, read for stats and logs
        self._online = False
        self._stopping = False
        self._connects = 0
        self._failures = 0
        self._last_failure: str | None = None
        self._refused = False
        self._paho_error: str | None = None
        self._offline_since: float | None = None
        self._skipped = 0
        self._drop_logged_at = -_DROP_LOG_INTERVAL_S
        self._takeover = TakeoverWatch(config.reconnect_min_s, config.reconnect_max_s, clock)

    def __repr__(self) -> str:
        return f"MqttPublisher({self._where}, prefix={self.topics.prefix!r})"

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    def start(self, runtime: Runtime) -> None:
        """Connect in the background (the daemon runs, buffering, while the broker is away)."""
        config = self.config
        control = runtime.control
        self._control = control
        client = build_client(config, self.device_id, self.topics.availability, read_password(config),
                              config.max_inflight)  # fmt: skip
        self._client = client
        self._sender = Sender(client, self._outbox, config.max_inflight, self._clock)
        self._commands = MqttCommands(self.topics, self._sender, control)
        self._snapshots = Snapshots(config, self.topics, self._sender, control, self._clock)
        self._ha = HomeAssistantLink(config, self.topics, self.device_id, self._sender, control, self._clock)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_log = self._on_log  # only while not connected: it would format every paho debug line
        if config.snapshot_interval_s > 0:
            self._jobs.every(config.snapshot_interval_s, self._snapshots.periodic)
        self._threads = [
            runtime.spawn("edged-mqtt-jobs", self._jobs.run),
            runtime.spawn("edged-mqtt-send", self._sender.run),
        ]
        self._offline_since = self._clock()
        log.info(
            "MQTT: connecting to %s as %s (MQTT %s%s); topics under %s/", self._where,
            client_id_of(config, self.device_id), config.protocol, ", TLS" if config.uses_tls else "",
            self.topics.prefix,
        )  # fmt: skip
        client.connect_async(config.host, config.effective_port, config.keepalive_s)
        runtime.start_network_loop(client)

    def flush(self, timeout_s: float) -> bool:
        return self._sender.flush(timeout_s) if self._sender else True

    def stop(self) -> None:
        """Say `offline` (retained) so subscribers know this was a clean stop, then disconnect."""
        if self._stopping:
            return
        self._stopping = True
        self._jobs.stop()
        sender, client = self._sender, self._client
        if sender is None or client is None:
            return
        if sender.is_connected:
            sender.send_now(self.topics.availability, OFFLINE.encode(), qos=1, retain=True)
            sender.wait_delivered(2.0)
        sender.stop()
        client.disconnect()
        client.loop_stop()
        for thread in self._threads:
            thread.join(2.0)
        queued, in_flight = sender.pending()
        if queued or in_flight:
            log.warning("MQTT: %d message(s) were not delivered before the stop (broker unreachable)",
                        queued + in_flight)  # fmt: skip

    def preflight(self) -> None:
        """Raise PublishError now for what would make `start` fail (the password, the TLS files), without
        connecting: a reload checks this before it stops the publisher this one replaces."""
        read_password(self.config)
        if self.config.uses_tls:
            tls_context(self.config)

    def reannounce(self) -> None:
        """Say `online` again: after a publisher it replaced said `offline` on the same topic (a reload that changed
        a setting on the same broker), the last retained availability must be this one's."""
        sender = self._sender
        if sender is not None and sender.is_connected and not self._stopping:
            sender.send_now(self.topics.availability, ONLINE.encode(), qos=1, retain=True)

    def reconfigure(self, config: PublisherConfig) -> bool:
        """Take `config` without reconnecting when only which results go out (mode, rates, QoS) changed; False
        when anything else differs (broker, TLS, credentials, topics, ...): then the daemon starts a new publisher."""
        if not isinstance(config, MqttPublisherConfig):
            return False
        changed = {key for key in MqttPublisherConfig.model_fields if getattr(config, key) != getattr(self.config, key)}
        if not changed <= LIVE_KEYS:
            return False
        self._filter.retune(config)
        self.config = config
        return True

    def take_backlog(self) -> list[dict[str, Any]]:
        """The results not yet acknowledged by this broker, oldest first (for a swap to another publisher)."""
        if self._sender is None:
            return []
        return [json.loads(message.payload) for message in self._sender.take_backlog()]

    def publish_snapshot(self, annotated: bool | None) -> dict[str, Any]:
        assert self._snapshots is not None, "start() first"
        return self._snapshots.publish(annotated)

    # ---- the Publisher protocol ------------------------------------------------------------------------------
    def publish_result(self, result: dict[str, Any]) -> None:
        sender = self._sender
        assert sender is not None, "start() first"
        if self._ha is not None:
            self._ha.on_result(result)
            if self._ha.first_snapshot_due and sender.is_connected:  # Home Assistant's image entity, at once
                self._ha.first_snapshot_due = False
                self._jobs.submit(self._first_snapshot)
        if not self._filter.accept(result, self._clock()):
            self._skipped += 1
            return
        if sender.put_result(self.topics.results, _json(result), self.config.qos):
            self._log_overflow()

    def publish_stats(self, stats: dict[str, Any]) -> None:
        if self._sender is None:
            return
        # retained, so Home Assistant shows the figures at once after its own restart
        self._sender.put(self.topics.stats, _json({**stats, "mqtt": self.mqtt_stats()}), qos=1, retain=True)
        if self._control is not None:
            self._publish_state_now()
        if self._sender.is_connected:
            self._report_drops()

    def publish_state(self, state: dict[str, Any]) -> None:
        if self._sender is not None:
            self._sender.put(self.topics.state, _json(state), qos=1, retain=True)
            hosting = state.get("hosting")
            if isinstance(hosting, dict):
                payload = update_payload(hosting, state.get("model"))
                self._sender.put(self.topics.update, _json(payload), qos=1, retain=True)

    def publish_event(self, event: dict[str, Any]) -> None:
        if self._sender is not None:
            self._sender.put(self.topics.events, _json(event), qos=1)
        if event.get("event") in ("model_changed", "config_reloaded") and self._ha is not None:
            self._jobs.submit(self._model_changed)

    def mqtt_stats(self) -> dict[str, Any]:
        """The publisher's own figures, added to every stats message as `mqtt`."""
        sender = self._sender
        if sender is None:
            return {}
        queued, in_flight = sender.pending()
        drops = sender.drops()
        return {
            "connected": sender.is_connected,
            "connects": self._connects,
            "buffered": sender.buffered_results(),
            "queued": queued,
            "in_flight": in_flight,
            "delivered": sender.counters.delivered,
            "skipped_by_mode": self._skipped,
            "dropped_overflow": drops.overflow,
            "dropped_expired": drops.expired,
            "dropped_other": drops.other,
        }

    # ---- paho callbacks (network thread; no lock of ours is held while paho runs them or while we call paho) --
    def _on_connect(
        self, client: mqtt.Client, _: Any, flags: mqtt.ConnectFlags, reason: ReasonCode, props: Properties | None
    ) -> None:
        assert self._sender is not None
        if reason.is_failure:
            self._refused = True
            self._connect_failed(describe_refusal(reason, self.config))
            return
        self._refused = False
        self._online = True
        client.on_log = None
        self._paho_error = None
        self._connects += 1
        outage = None if self._offline_since is None or self._connects == 1 else self._clock() - self._offline_since
        self._offline_since = None
        self._failures, self._last_failure = 0, None
        self._takeover.connected()
        self._sender.send_now(self.topics.availability, ONLINE.encode(), qos=1, retain=True)
        client.subscribe(subscriptions(self.topics.command_filter, self._status_topic if self.config.homeassistant
                                       else None, self.config.protocol == "5"))  # fmt: skip
        self._sender.connected()
        if outage is None:
            log.info("MQTT: connected to %s", self._where)
        else:
            log.info("MQTT: reconnected to %s after %.1f s offline; sending %d buffered result(s) in order",
                     self._where, outage, self._sender.buffered_results())  # fmt: skip
        self._jobs.submit(self._after_connect)

    def _on_connect_fail(self, client: mqtt.Client, _: Any) -> None:
        # paho calls this inside its `except OSError:` block, so the exception being handled is the cause.
        self._connect_failed(describe_connect_error(sys.exc_info()[1], self.config))

    def _on_disconnect(
        self, client: mqtt.Client, _: Any, flags: mqtt.DisconnectFlags, reason: ReasonCode, props: Properties | None
    ) -> None:
        assert self._sender is not None
        self._sender.disconnected()
        was_online, self._online = self._online, False
        if self._stopping:
            return
        if was_online:
            self._offline_since = self._clock()
            why = "" if str(reason) == "Unspecified error" else f" ({reason})"
            log.warning(
                "MQTT: connection to %s lost%s; results wait in the buffer (up to %d, for up to %g s) while "
                "reconnecting", self._where, why, self.config.buffer_max_messages, self.config.buffer_max_age_s,
            )  # fmt: skip
            self._after_takeover(client, reason if flags.is_disconnect_packet_from_server else None)
        elif not self._refused:
            self._connect_failed(describe_early_close(self._paho_error, self.config))
        client.on_log = self._on_log
        self._paho_error = None
        self._refused = False

    def _after_takeover(self, client: mqtt.Client, disconnect: ReasonCode | None) -> None:
        """Back off (and say why, once) when another client keeps taking our client id; go back to normal after.
        `disconnect` is the reason of the broker's DISCONNECT packet, None when it just closed the connection."""
        verdict = self._takeover.lost(disconnect.value if disconnect is not None else None)
        client_id = client_id_of(self.config, self.device_id)
        if verdict.wait_s is not None:
            client.reconnect_delay_set(verdict.wait_s, verdict.wait_s)  # before paho's wait, which follows this call
            if verdict.first:
                detail = self._takeover.explain(client_id)
                log.error("MQTT: %s. Waiting %d s before connecting again, instead of taking it back", detail,
                          verdict.wait_s)  # fmt: skip
                self.publish_event({"event": "client_id_conflict", "at": utc_iso(time.time()), "client_id": client_id,
                                    "detail": detail, "retry_in_s": verdict.wait_s})  # fmt: skip
            else:
                log.warning("MQTT: client id %r was taken over again; waiting %d s", client_id, verdict.wait_s)
        elif verdict.over:
            client.reconnect_delay_set(self.config.reconnect_min_s, self.config.reconnect_max_s)
            log.info("MQTT: the connection as %r held; reconnecting as usual again", client_id)

    def _on_log(self, client: mqtt.Client, _: Any, level: int, line: str) -> None:
        """Keeps paho's last error line: the only place a TLS alert after the handshake is reported."""
        if level == mqtt.MQTT_LOG_ERR:
            self._paho_error = line.removeprefix("failed to receive on socket: ")

    def _on_publish(self, client: mqtt.Client, _: Any, mid: int, reason: ReasonCode, props: Properties) -> None:
        assert self._sender is not None
        message = self._sender.acknowledged(mid)
        if reason.is_failure and message is not None:
            log.warning("MQTT: the broker refused a message on %s: %s", message.topic, reason)

    def _on_message(self, client: mqtt.Client, _: Any, message: mqtt.MQTTMessage) -> None:
        topic = message.topic
        if self._ha is not None and self._ha.on_message(topic, bytes(message.payload), bool(message.retain)):
            return
        if topic == self._status_topic:
            if message.payload.strip() == ONLINE.encode():
                log.info("MQTT: Home Assistant came online; publishing discovery again")
                self._jobs.submit(self._publish_discovery)
            return
        name = self.topics.command_name(topic)
        if name is not None and self._commands is not None:
            self._commands.on_message(name, message)

    def _connect_failed(self, message: str) -> None:
        self._failures += 1
        if message != self._last_failure:  # a new cause is an error; the same one again, a reminder
            log.error("MQTT: connection attempt %d failed: %s; retrying with backoff (%d–%d s)", self._failures,
                      message, self.config.reconnect_min_s, self.config.reconnect_max_s)  # fmt: skip
        else:
            log.warning("MQTT: connection attempt %d failed: %s", self._failures, message)
        self._last_failure = message

    # ---- jobs (job thread) -----------------------------------------------------------------------------------
    def _after_connect(self) -> None:
        assert self._sender is not None
        self._publish_state_now()
        if self._ha is not None:
            if self.config.homeassistant and self._client is not None:
                self._ha.after_connect(self._client)
            self._ha.republish_values()
        self._report_drops()

    def _publish_state_now(self) -> None:
        if self._control is not None:
            self.publish_state(self._control.state())

    def _model_changed(self) -> None:
        """Entities follow the model's labels and thresholds (a new model, or a reload that changed
        model.label_thresholds): list what is retained, publish the new discovery, clear the stale (while
        disconnected, the next connection does the same with the new labels)."""
        assert self._ha is not None
        if not self._ha.model_changed() or not self.config.homeassistant:
            return
        sender, client = self._sender, self._client
        if sender is not None and sender.is_connected and client is not None:
            log.info("MQTT: the model's labels or thresholds changed; publishing Home Assistant discovery again")
            self._ha.after_connect(client)

    def _publish_discovery(self) -> None:
        if self._ha is not None:
            self._ha.publish_discovery()

    def _first_snapshot(self) -> None:
        """Home Assistant's image entity gets a picture at once; tried again at a later result when the frame was
        not there yet (this job can run before the inference thread keeps its newest frame) or was refused."""
        if self._snapshots is None or self._ha is None:
            return
        try:
            self._snapshots.publish(None)
        except CommandRefused as exc:
            log.debug("MQTT: first snapshot not yet: %s", exc)
            self._ha.first_snapshot_due = True

    # ---- drops ---------------------------------------------------------------------------------------------------
    def _log_overflow(self) -> None:
        now = self._clock()
        if now - self._drop_logged_at < _DROP_LOG_INTERVAL_S:
            return
        self._drop_logged_at = now
        assert self._sender is not None
        log.warning("MQTT: buffer full (%d results) while %s is unreachable: dropping the oldest (%d so far)",
                    self.config.buffer_max_messages, self._where, self._sender.drops().overflow)  # fmt: skip

    def _report_drops(self) -> None:
        """One `results_dropped` event (and log line) for the drops since the last report."""
        assert self._sender is not None
        counts = self._sender.take_unreported_drops()
        if not counts.total():
            return
        log.warning("MQTT: dropped %d result(s) for buffer overflow and %d expired after %g s; %d other message(s)",
                    counts.overflow, counts.expired, self.config.buffer_max_age_s, counts.other)  # fmt: skip
        self.publish_event({
            "event": "results_dropped", "at": utc_iso(time.time()), "overflow": counts.overflow,
            "expired": counts.expired, "other": counts.other, "buffer_max_messages": self.config.buffer_max_messages,
            "buffer_max_age_s": self.config.buffer_max_age_s,
        })  # fmt: skip
