"""One connection attempt to the configured broker, for `edged doctor`: reachable, TLS verified, credentials accepted.

It connects as `edged-doctor-<device_id>-<pid>` and sets no last will: connecting with the device's own client id
would take the running daemon's session over, and a will would publish `offline` for it. Every wait is bounded by
`timeout_s`; failures are described with the words the publisher uses (connection.py).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from edged.errors import PublishError
from edged.publish.mqtt.config import MqttPublisherConfig
from edged.publish.mqtt.connection import (
    describe_connect_error,
    describe_early_close,
    describe_refusal,
    read_password,
    tls_context,
)


@dataclass(frozen=True)
class BrokerProbe:
    ok: bool
    detail: str


def probe_broker(config: MqttPublisherConfig, device_id: str, timeout_s: float) -> BrokerProbe:
    """Connect, wait for the broker's CONNACK, disconnect; never longer than about `timeout_s`."""
    where = f"{config.host}:{config.effective_port}"
    try:
        password = read_password(config)
        context = tls_context(config) if config.uses_tls else None
    except PublishError as exc:
        return BrokerProbe(False, str(exc))
    v5 = config.protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"edged-doctor-{device_id}-{os.getpid()}",
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        clean_session=None if v5 else True,
    )
    client.connect_timeout = timeout_s
    if config.username is not None:
        client.username_pw_set(config.username, password)
    if context is not None:
        client.tls_set_context(context)
    outcome: dict[str, Any] = {}

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        outcome["reason"] = reason

    def on_disconnect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        outcome.setdefault("closed", str(reason))

    def on_log(_c: Any, _u: Any, level: int, line: str) -> None:
        if level == mqtt.MQTT_LOG_ERR:
            outcome["paho_error"] = line.removeprefix("failed to receive on socket: ")

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_log = on_log
    try:
        client.connect(config.host, config.effective_port, keepalive=max(5, int(timeout_s) + 5))
    except Exception:  # socket, TLS and resolution errors: the publisher's words for them
        return BrokerProbe(False, describe_connect_error(sys.exc_info()[1], config))
    deadline = time.monotonic() + timeout_s
    try:
        while "reason" not in outcome and "closed" not in outcome and time.monotonic() < deadline:
            if client.loop(timeout=0.2) not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN):
                outcome.setdefault("closed", "connection lost")
        reason = outcome.get("reason")
        if reason is None:
            if "closed" in outcome:
                return BrokerProbe(False, describe_early_close(outcome.get("paho_error"), config))
            return BrokerProbe(False, f"{where} accepted the connection but sent no MQTT answer within {timeout_s:g} s "
                                      "(is it an MQTT broker? TLS on a plain port?)")  # fmt: skip
        if reason.is_failure:
            return BrokerProbe(False, describe_refusal(reason, config))
        tls = ""
        if config.uses_tls:
            tls = ", TLS (host name not checked)" if config.tls_insecure else ", TLS verified"
        who = f"as {config.username!r}" if config.username else "anonymously"
        return BrokerProbe(True, f"connected to {where} (MQTT {config.protocol}{tls}) {who}")
    finally:
        if "reason" in outcome:
            client.disconnect()
            client.loop(timeout=0.2)
        leftover = client.socket()
        if leftover is not None:  # a broker that never answered: the client is discarded, so is its socket
            leftover.close()
