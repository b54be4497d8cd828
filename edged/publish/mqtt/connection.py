"""The paho client as configured: protocol, TLS and mTLS, credentials, last will, backoff; and the words for failures.

This is the boundary where paho and ssl failures become messages a user can act on: a refused CONNACK names the
credential to check, a TLS failure names the tls_* key to fix. Problems that prevent starting at all (an
unreadable password file, a missing CA file) raise PublishError; everything after start is retried.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edged.config.credentials import credential_advice, resolve_credential
from edged.errors import PublishError
from edged.publish.mqtt.config import MqttPublisherConfig
from edged.publish.mqtt.topics import OFFLINE

#: paho may hold a few more in-flight messages than our window: availability and the stop message bypass it.
INFLIGHT_HEADROOM = 16


def client_id_of(config: MqttPublisherConfig, device_id: str) -> str:
    return config.client_id or f"edged-{device_id}"


def read_password(config: MqttPublisherConfig) -> str | None:
    """The broker password from its file or environment variable (never from the config file itself)."""
    if config.password_file is not None:
        path = resolve_credential(config.password_file, "publisher.password_file")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise PublishError(
                f"publisher.password_file: {path} does not exist; create it with the password on its first line"
            ) from exc
        except IsADirectoryError as exc:
            raise PublishError(
                f"publisher.password_file: {path} is a directory; give the file whose first line is the password"
            ) from exc
        except PermissionError as exc:
            raise PublishError(
                f"publisher.password_file: cannot read {path} (permission denied); "
                + credential_advice("password_file", path)
            ) from exc
        except OSError as exc:
            raise PublishError(f"publisher.password_file: cannot read {path} ({exc.strerror or exc})") from exc
        password = text.splitlines()[0] if text else ""
        if not password:
            raise PublishError(f"publisher.password_file: {path} is empty; put the password on its first line")
        return password
    if config.password_env is not None:
        value = os.environ.get(config.password_env)
        if not value:
            raise PublishError(
                f"publisher.password_env: the environment variable {config.password_env} is not set or empty; set "
                "it in the service's environment (systemd: Environment= or EnvironmentFile=)"
            )
        return value
    return None


def _existing(path: Path, key: str, what: str) -> str:
    path = resolve_credential(path, f"publisher.{key}")
    if not path.is_file():
        raise PublishError(f"publisher.{key}: {path} does not exist or is not a file; give the PEM file of {what}")
    if not os.access(path, os.R_OK):
        raise PublishError(f"publisher.{key}: cannot read {path} (permission denied); " + credential_advice(key, path))
    return str(path)


def tls_context(config: MqttPublisherConfig) -> ssl.SSLContext:
    """A client SSLContext: the CA (or the system's), an optional client certificate, host name checks."""
    cafile = None
    if config.tls_ca_file is not None:
        cafile = _existing(config.tls_ca_file, "tls_ca_file", "the CA that signed the broker's certificate")
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise PublishError(
            f"publisher.tls_ca_file: {cafile} holds no usable CA certificate ({exc}); give a PEM certificate"
        ) from exc
    if config.tls_cert_file is not None and config.tls_key_file is not None:
        cert = _existing(config.tls_cert_file, "tls_cert_file", "this device's client certificate")
        key = _existing(config.tls_key_file, "tls_key_file", "the client certificate's private key")
        try:
            # The password callback keeps OpenSSL from prompting on a terminal the daemon doesn't have.
            context.load_cert_chain(cert, key, password=lambda: b"")
        except (OSError, ssl.SSLError) as exc:
            raise PublishError(
                f"publisher.tls_cert_file / tls_key_file: cannot load {cert} with {key} ({exc}); both must be PEM, "
                "the key unencrypted (openssl pkey -in key.pem -out plain.pem) and matching the certificate"
            ) from exc
    if config.tls_insecure:
        context.check_hostname = False
    return context


def build_client(
    config: MqttPublisherConfig, device_id: str, availability_topic: str, password: str | None, window: int
) -> mqtt.Client:
    """A configured client, not yet connected; callbacks are attached by the publisher."""
    v5 = config.protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id_of(config, device_id),
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        clean_session=None if v5 else True,
    )
    paho_log = logging.getLogger("edged.publish.paho")
    if paho_log.isEnabledFor(logging.DEBUG):  # paho's own lines only at -vv: our callbacks already explain failures
        client.enable_logger(paho_log)
    client.will_set(availability_topic, OFFLINE, qos=1, retain=True)
    if config.username is not None:
        client.username_pw_set(config.username, password)
    if config.uses_tls:
        client.tls_set_context(tls_context(config))
    client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
    # Our sender never has more than `window` results in flight, so paho's queue stays bounded by us; paho's own
    # cap is a backstop (publish() then returns MQTT_ERR_QUEUE_SIZE and the sender keeps the message).
    client.max_inflight_messages_set(window + INFLIGHT_HEADROOM)
    client.max_queued_messages_set(window + 4 * INFLIGHT_HEADROOM)
    return client


def describe_connect_error(exc: BaseException | None, config: MqttPublisherConfig) -> str:
    """Why a TCP/TLS connection attempt failed, and what to check."""
    where = f"{config.host}:{config.effective_port}"
    if exc is None:
        return f"cannot connect to {where}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or str(exc)
        if "hostname" in detail.lower() or "ip address mismatch" in detail.lower():
            hint = "connect by the name in the certificate, or set publisher.tls_insecure = true"
        else:
            hint = "set publisher.tls_ca_file to the CA that signed the broker's certificate"
        return f"TLS: the broker's certificate at {where} is not trusted ({detail}); {hint}"
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or str(exc)).upper()
        if "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER" in reason:
            return f"TLS: {where} does not speak TLS (is it the plain MQTT port? TLS is usually 8883)"
        if any(word in reason for word in ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_REQUIRED", "CERTIFICATE")):
            return (
                f"TLS: the broker at {where} refused this client's certificate ({exc.reason}); check "
                "publisher.tls_cert_file / tls_key_file and that the broker trusts their CA"
            )
        return f"TLS handshake with {where} failed: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing accepts connections at {where} (is the broker running, and is publisher.port right?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve publisher.host {config.host!r}: {exc.strerror or exc}"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"connecting to {where} timed out (firewall, or wrong host?)"
    return f"cannot connect to {where}: {exc}"


def describe_early_close(paho_error: str | None, config: MqttPublisherConfig) -> str:
    """Why the broker closed the connection before its CONNACK (TLS 1.3 reports a refused client certificate
    only then), from the last error line paho logged, and what to check."""
    where = f"{config.host}:{config.effective_port}"
    detail = (paho_error or "").upper()
    base = f"the broker at {where} closed the connection before accepting it"
    if "CERTIFICATE_REQUIRED" in detail:
        return f"{base}: it requires a client certificate; set publisher.tls_cert_file and tls_key_file"
    if any(word in detail for word in ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN", "UNSUPPORTED_CERT")):
        return (
            f"{base}: it refused this client's certificate; check publisher.tls_cert_file / tls_key_file and that "
            "the broker trusts their CA"
        )
    message = f"{base} ({paho_error})" if paho_error else base
    if not config.uses_tls:
        return message + "; if the port expects TLS, set publisher.tls = true (TLS is usually port 8883)"
    # Under TLS 1.3 the broker judges the client certificate after the client thinks the handshake is done; its
    # alert races the close, so the same refusal sometimes arrives as a bare EOF. Name the likely cause anyway.
    if config.tls_cert_file is None:
        return (
            message
            + ", which brokers do when they require a client certificate; set publisher.tls_cert_file and tls_key_file"
        )
    return message + (
        ", which brokers do when they refuse a client's certificate; check publisher.tls_cert_file / tls_key_file "
        "and that the broker trusts their CA"
    )


def describe_refusal(reason: ReasonCode, config: MqttPublisherConfig) -> str:
    """Why the broker answered CONNECT with a failure, and which setting to check."""
    name = str(reason)
    where = f"{config.host}:{config.effective_port}"
    lowered = name.lower()
    if "user name or password" in lowered or "not authorized" in lowered or "bad authentication" in lowered:
        source = (
            f"the password in {config.password_file}"
            if config.password_file
            else f"the password in ${config.password_env}"
            if config.password_env
            else "no password is configured (publisher.password_file or password_env)"
        )
        user = f"user {config.username!r}" if config.username else "no publisher.username"
        return f"the broker at {where} refused the connection: {name} ({user}; {source})"
    if "identifier" in lowered:
        return f"the broker at {where} rejected client id: {name}; set publisher.client_id"
    if "protocol" in lowered:
        return f"the broker at {where} does not accept MQTT {config.protocol}: {name}; try publisher.protocol"
    return f"the broker at {where} refused the connection: {name}"
