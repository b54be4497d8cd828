"""TLS, mutual TLS and passwords against a real mosquitto, with certificates made by the test.

A bad credential is never fatal: edged logs what is wrong and which setting to fix, retries with backoff, and
keeps running (buffering results) until the broker lets it in.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from support.broker import BrokerTls, Mosquitto, broker_for_tests, make_password_file, require_mosquitto
from support.runtime import PublisherRuntime

from edged.publish.mqtt.config import MqttPublisherConfig
from edged.publish.mqtt.publisher import MqttPublisher

PASSWORD = "s3cret-Pa55word"

Issuer = tuple[ec.EllipticCurvePrivateKey, x509.Certificate]


def _write(folder: Path, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: str, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
    )


def make_ca(folder: Path, name: str) -> Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    usage = x509.KeyUsage(
        digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, encipher_only=False, decipher_only=False,
    )  # fmt: skip
    cert = (
        _builder(name, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(folder, name, key, cert)
    return key, cert


def issue(folder: Path, name: str, issuer: Issuer, *, server: bool) -> None:
    issuer_key, issuer_cert = issuer
    key = ec.generate_private_key(ec.SECP256R1())
    purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(name, issuer_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    _write(folder, name, key, builder.sign(issuer_key, hashes.SHA256()))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA with a server and a client certificate, and a second CA (with its own client) nobody trusts."""
    folder = tmp_path_factory.mktemp("pki")
    trusted = make_ca(folder, "ca")
    untrusted = make_ca(folder, "other-ca")
    issue(folder, "server", trusted, server=True)
    issue(folder, "client", trusted, server=False)
    issue(folder, "rogue", untrusted, server=False)
    (folder / "password").write_text(PASSWORD + "\n")
    (folder / "wrong-password").write_text("not-the-password\n")
    return folder


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Path) -> Iterator[Mosquitto]:
    require_mosquitto()
    tls = BrokerTls(pki / "ca.pem", pki / "server.pem", pki / "server.key", require_certificate=True)
    passwords = make_password_file(tmp_path / "passwd", {"camera": PASSWORD})
    with broker_for_tests(tmp_path / "broker", tls=tls, password_file=passwords) as running:
        yield running


class Control:
    paused = False

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def stats(self) -> dict[str, Any]:
        return {}

    def state(self) -> dict[str, Any]:
        return {"task": "detection", "model": {"name": "m"}}

    def snapshot_jpeg(self, annotated: bool) -> bytes | None:
        return None


def start(broker: Mosquitto, pki: Path, **overrides: Any) -> MqttPublisher:
    fields: dict[str, Any] = {
        "host": "127.0.0.1", "port": broker.port, "username": "camera", "password_file": pki / "password",
        "tls_ca_file": pki / "ca.pem", "tls_cert_file": pki / "client.pem", "tls_key_file": pki / "client.key",
        "reconnect_min_s": 1, "reconnect_max_s": 1, "homeassistant": False, **overrides,
    }  # fmt: skip
    publisher = MqttPublisher(MqttPublisherConfig(type="mqtt", **fields), "cam1")
    PublisherRuntime(Control()).start(publisher)
    return publisher


def wait_until(predicate: Any, timeout_s: float = 30.0) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def test_mutual_tls_with_a_password_delivers(tls_broker: Mosquitto, pki: Path) -> None:
    publisher = start(tls_broker, pki, protocol="5")
    try:
        for seq in range(20):
            publisher.publish_result({"seq": seq, "task": "detection", "labels": [], "objects": []})
        assert publisher.flush(30)
        stats = publisher.mqtt_stats()
        assert stats["connected"] and stats["delivered"] >= 20 and stats["connects"] == 1
    finally:
        publisher.stop()
    assert "edged-cam1" in tls_broker.log_text()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"password_file": "wrong-password"}, "refused the connection: Not authorized (user 'camera'; the password in"),
        ({"tls_ca_file": "other-ca.pem"}, "certificate at 127.0.0.1:{port} is not trusted"),
        # TLS 1.3 delivers these two refusals as an alert or, when the close wins the race, a bare EOF: the
        # messages differ in their first half and agree on the fix, which is what is checked
        (
            {"tls_cert_file": "rogue.pem", "tls_key_file": "rogue.key"},
            "check publisher.tls_cert_file / tls_key_file and that the broker trusts their CA",
        ),
        (
            {"tls_cert_file": None, "tls_key_file": None},
            "client certificate; set publisher.tls_cert_file and tls_key_file",
        ),
    ],
    ids=["wrong-password", "untrusted-broker", "untrusted-client", "no-client-certificate"],
)
def test_bad_credentials_are_explained_and_retried(
    tls_broker: Mosquitto, pki: Path, caplog: pytest.LogCaptureFixture, overrides: dict[str, Any], expected: str
) -> None:
    caplog.set_level(logging.INFO)
    resolved = {key: (pki / value if isinstance(value, str) else value) for key, value in overrides.items()}
    publisher = start(tls_broker, pki, **resolved)
    try:
        message = expected.format(port=tls_broker.port)
        assert wait_until(lambda: message in caplog.text), caplog.text
        assert wait_until(lambda: "connection attempt 3 failed" in caplog.text), caplog.text  # it keeps retrying
        publisher.publish_result({"seq": 0, "task": "detection", "labels": [], "objects": []})  # still accepting
        assert publisher.mqtt_stats()["buffered"] == 1 and not publisher.mqtt_stats()["connected"]
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("edged")]
        assert errors and all(message in r.getMessage() for r in errors)
    finally:
        publisher.stop()
    assert PASSWORD not in caplog.text and "not-the-password" not in caplog.text
