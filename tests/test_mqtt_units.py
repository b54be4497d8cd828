"""The MQTT publisher's pure parts: config, secrets, TLS setup errors, outbox, modes, commands, topics, discovery."""

from __future__ import annotations

import json
import os
import ssl
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from paho.mqtt.enums import MQTTErrorCode

from edged.app.control import MAX_COMMAND_BYTES
from edged.app.daemon import Daemon
from edged.app.threads import Threads
from edged.config import load_config, parse_config
from edged.errors import ConfigError, PublishError
from edged.publish.base import CommandRequest
from edged.publish.mqtt.config import MqttPublisherConfig
from edged.publish.mqtt.connection import describe_connect_error, describe_early_close, read_password, tls_context
from edged.publish.mqtt.modes import ModeFilter, signature
from edged.publish.mqtt.outbox import Message, Outbox
from edged.publish.mqtt.publisher import MqttPublisher
from edged.publish.mqtt.sender import Sender
from edged.publish.mqtt.topics import Topics, topic_level

MINIMAL = '[model]\npath = "m.tflite"\n\n[camera]\ntype = "synthetic"\n\n[publisher]\ntype = "mqtt"\n'


def mqtt_config(**fields: Any) -> MqttPublisherConfig:
    return MqttPublisherConfig(type="mqtt", **fields)


def schema(name: str) -> dict[str, Any]:
    return json.loads((resources.files("edged") / "schemas" / name).read_text())  # type: ignore[no-any-return]


def detection(*labels: str) -> dict[str, Any]:
    return {"task": "detection", "labels": [], "objects": [{"label": label, "score": 0.9} for label in labels]}


def classification(label: str, score: float = 0.8) -> dict[str, Any]:
    return {"task": "classification", "labels": [{"label": label, "score": score, "index": 1}], "objects": []}


# ---- config ---------------------------------------------------------------------------------------------------
def test_mqtt_config_defaults() -> None:
    config = parse_config('device_id = "cam1"\n' + MINIMAL).publisher
    assert isinstance(config, MqttPublisherConfig)
    assert (config.host, config.effective_port, config.qos, config.mode) == ("localhost", 1883, 1, "every")
    assert Topics.from_config(config, "cam1").results == "edged/cam1/results"
    assert mqtt_config(tls=True).effective_port == 8883
    assert mqtt_config(tls_ca_file=Path("ca.pem")).uses_tls


def test_mqtt_config_errors_name_key_and_line() -> None:
    def error(extra: str) -> str:
        with pytest.raises(ConfigError) as info:
            parse_config(MINIMAL + extra, "t.toml")
        return str(info.value)

    assert "t.toml:9: publisher.topic_prefix" in error('topic_prefix = "a/#"\n')
    assert "t.toml:9: publisher.qos" in error("qos = 3\n")
    assert "did you mean 'keepalive_s'" in error("keepalive = 30\n")
    assert "either password_file or password_env" in error('username = "u"\npassword_file = "p"\npassword_env = "P"\n')
    assert "needs a username" in error('password_env = "MQTT_PASSWORD"\n')
    assert "tls_cert_file and tls_key_file" in error('tls_cert_file = "c.pem"\n')
    assert "not the password" in error('username = "u"\npassword_env = "hunter2!"\n')
    assert "publisher.type" in parse_error_of('[publisher]\ntype = "kafka"\n')


def parse_error_of(publisher: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config('[model]\npath = "m.tflite"\n[camera]\ntype = "synthetic"\n' + publisher)
    return str(info.value)


def test_secret_files_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "edged.toml"
    path.write_text(MINIMAL + 'username = "u"\npassword_file = "secret"\ntls_ca_file = "ca.pem"\n')
    config = load_config(path).publisher
    assert isinstance(config, MqttPublisherConfig)
    assert config.password_file == tmp_path / "secret" and config.tls_ca_file == tmp_path / "ca.pem"


def test_password_is_read_at_start_and_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "password"
    secret.write_text("correct horse\nignored line\n")
    config = mqtt_config(username="u", password_file=secret)
    assert read_password(config) == "correct horse"
    assert "correct horse" not in repr(config) + str(config) + repr(MqttPublisher(config, "cam"))
    monkeypatch.setenv("EDGED_TEST_MQTT_PW", "from-env")
    assert read_password(mqtt_config(username="u", password_env="EDGED_TEST_MQTT_PW")) == "from-env"
    assert read_password(mqtt_config()) is None


def test_password_problems_name_the_key_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PublishError, match=r"publisher.password_file: .* does not exist; create it"):
        read_password(mqtt_config(username="u", password_file=tmp_path / "missing"))
    with pytest.raises(PublishError, match=r"publisher.password_file: .* is a directory; give the file"):
        read_password(mqtt_config(username="u", password_file=tmp_path))  # permissions: test_first_user_secrets
    (tmp_path / "empty").write_text("")
    with pytest.raises(PublishError, match="is empty"):
        read_password(mqtt_config(username="u", password_file=tmp_path / "empty"))
    monkeypatch.delenv("EDGED_TEST_MQTT_UNSET", raising=False)
    with pytest.raises(PublishError, match=r"publisher.password_env: the environment variable EDGED_TEST_MQTT_UNSET"):
        read_password(mqtt_config(username="u", password_env="EDGED_TEST_MQTT_UNSET"))


def test_tls_file_problems_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(PublishError, match=r"publisher.tls_ca_file: .* does not exist"):
        tls_context(mqtt_config(tls_ca_file=tmp_path / "nope.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    with pytest.raises(PublishError, match=r"publisher.tls_ca_file: .* no usable CA certificate"):
        tls_context(mqtt_config(tls_ca_file=tmp_path / "junk.pem"))
    with pytest.raises(PublishError, match=r"publisher.tls_cert_file: .* does not exist"):
        tls_context(mqtt_config(tls_cert_file=tmp_path / "c.pem", tls_key_file=tmp_path / "k.pem"))
    (tmp_path / "k.pem").write_text("junk\n")
    with pytest.raises(PublishError, match=r"tls_cert_file / tls_key_file: cannot load"):
        tls_context(mqtt_config(tls_cert_file=tmp_path / "junk.pem", tls_key_file=tmp_path / "k.pem"))
    assert tls_context(mqtt_config(tls=True, tls_insecure=True)).check_hostname is False


def test_connection_failures_are_explained() -> None:
    config = mqtt_config(host="broker.lan", port=8883, tls=True)
    refused = describe_connect_error(ConnectionRefusedError(111, "Connection refused"), config)
    assert "nothing accepts connections at broker.lan:8883" in refused
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "unable to get local issuer certificate"
    assert "set publisher.tls_ca_file" in describe_connect_error(untrusted, config)
    assert "requires a client certificate" in describe_early_close("[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED]", config)
    assert "set publisher.tls = true" in describe_early_close(None, mqtt_config())
    eof = "EOF occurred in violation of protocol (_ssl.c:2427)"  # the same refusals when the close wins the race
    assert "require a client certificate; set publisher.tls_cert_file" in describe_early_close(eof, config)
    with_certificate = mqtt_config(host="broker.lan", port=8883, tls=True, tls_cert_file=Path("c.pem"),
                                   tls_key_file=Path("c.key"))  # fmt: skip
    assert "refuse a client's certificate; check publisher.tls_cert_file" in describe_early_close(eof, with_certificate)


# ---- topics ---------------------------------------------------------------------------------------------------
def test_topics() -> None:
    topics = Topics.from_config(mqtt_config(topic_prefix="site/{device_id}/vision"), "cam1")
    assert topics.availability == "site/cam1/vision/availability"
    assert topics.command_name("site/cam1/vision/cmd/pause") == "pause"
    assert topics.command_name("site/cam1/vision/cmd/pause/reply") is None
    assert topics.command_name("site/cam1/vision/results") is None
    assert topics.label("traffic light") == "site/cam1/vision/labels/traffic light"
    assert topic_level("a/b+c#") == "a_b_c_"


# ---- outbox ---------------------------------------------------------------------------------------------------
def message(topic: str, at: float = 0.0, *, retain: bool = False, result: bool = False) -> Message:
    return Message(topic, topic.encode(), 1, retain, at, is_result=result)


def test_outbox_drops_the_oldest_results_and_counts_them() -> None:
    outbox = Outbox(max_results=3, max_age_s=100)
    dropped = [outbox.put_result(message(f"r{i}", result=True)) for i in range(5)]
    assert dropped == [0, 0, 0, 1, 1]
    assert [m.topic for m in outbox.results] == ["r2", "r3", "r4"]
    assert outbox.dropped.overflow == 2
    assert outbox.take_unreported().overflow == 2 and outbox.take_unreported().total() == 0


def test_outbox_expires_old_results_and_sends_others_first() -> None:
    outbox = Outbox(max_results=10, max_age_s=5)
    outbox.put_result(message("old", at=0, result=True))
    outbox.put_result(message("new", at=8, result=True))
    outbox.put_other(message("state", at=1, retain=True))
    outbox.put_other(message("state", at=2, retain=True))  # retained: replaces the queued one
    outbox.put_other(message("event", at=3))
    assert [(m.topic, m.queued_at) for m in iter(lambda: outbox.pop(now=10), None)] == [
        ("state", 2), ("event", 3), ("new", 8)
    ]  # fmt: skip
    assert outbox.dropped.expired == 1


def test_outbox_bounds_other_messages_and_keeps_order_on_push_front() -> None:
    outbox = Outbox(max_results=10, max_age_s=5, max_other=2)
    for name in ("a", "b", "c"):
        outbox.put_other(message(name))
    assert outbox.dropped.other == 1
    first = outbox.pop(0)
    assert first is not None and first.topic == "b"
    outbox.push_front(first)
    assert [m.topic for m in iter(lambda: outbox.pop(0), None)] == ["b", "c"]


# ---- sender (against a stand-in for paho's publish(): the window and ordering logic only) ------------------------
class _Info:
    def __init__(self, mid: int, rc: MQTTErrorCode) -> None:
        self.mid, self.rc = mid, rc


class _RecordingClient:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, properties: Any = None) -> _Info:
        self.sent.append((topic, len(self.sent) + 1))
        return _Info(len(self.sent), self.rc)


def _wait(predicate: Any) -> None:
    import time

    deadline = time.monotonic() + 10
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert predicate()


def test_sender_keeps_a_window_and_resumes_in_order_after_a_reconnect() -> None:
    crashes: list[Any] = []
    client = _RecordingClient()
    sender = Sender(client, Outbox(100, 100), window=2)
    thread = Threads(crashes.append).spawn("test-sender", sender.run)
    try:
        for i in range(5):
            sender.put_result(f"r{i}", b"x", 1)
        sender.connected()
        _wait(lambda: len(client.sent) == 2)
        assert [topic for topic, _ in client.sent] == ["r0", "r1"]
        sender.disconnected()
        sender.acknowledged(1)  # acknowledged just before the connection dropped
        sender.connected()  # r1 is still in flight: paho re-sends it first, so newer results wait for it
        assert sender.pending() == (3, 1)
        sender.acknowledged(2)
        _wait(lambda: len(client.sent) == 4)
        assert [topic for topic, _ in client.sent] == ["r0", "r1", "r2", "r3"]
        sender.acknowledged(3)
        sender.acknowledged(4)
        _wait(lambda: len(client.sent) == 5)
        sender.acknowledged(5)
        assert sender.flush(5)
    finally:
        sender.stop()
        thread.join(5)
        assert not crashes


def test_sender_keeps_a_message_paho_refused_to_queue() -> None:
    crashes: list[Any] = []
    client = _RecordingClient()
    client.rc = MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
    sender = Sender(client, Outbox(100, 100), window=5)
    thread = Threads(crashes.append).spawn("test-sender", sender.run)
    try:
        sender.put_result("r0", b"x", 1)
        sender.connected()
        _wait(lambda: len(client.sent) >= 2)  # retried, never lost
        client.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        _wait(lambda: sender.pending() == (0, 1))
    finally:
        sender.stop()
        thread.join(5)
        assert not crashes


# ---- publish modes and label values ---------------------------------------------------------------------------
def test_every_mode_accepts_everything() -> None:
    mode = ModeFilter(mqtt_config())
    assert all(mode.accept(detection("cat"), now) for now in range(5))


def test_on_change_mode_with_min_interval_and_heartbeat() -> None:
    mode = ModeFilter(mqtt_config(mode="on_change", min_interval_s=2, heartbeat_s=10))
    decisions = [
        mode.accept(detection("cat"), 0),  # first result: published
        mode.accept(detection("cat"), 1),  # unchanged
        mode.accept(detection("dog", "cat"), 1.5),  # changed, but within min_interval
        mode.accept(detection("cat", "dog"), 2.5),  # still changed, interval passed
        mode.accept(detection("dog", "cat"), 5),  # same set of labels
        mode.accept(detection("dog", "cat"), 12.5),  # heartbeat
    ]
    assert decisions == [True, False, False, True, False, True]
    assert signature(classification("cat")) == ("cat",) and signature(detection()) == ()


def test_interval_mode() -> None:
    mode = ModeFilter(mqtt_config(mode="interval", interval_s=5))
    assert [mode.accept(detection(), now) for now in (0, 1, 4.9, 5, 6, 10.5)] == [True, False, False, True, False, True]


# ---- commands -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "payload", "reason"),
    [
        ("pause", b"{not json", "payload is not JSON"),
        ("pause", b"[1, 2]", "must be a JSON object"),
        ("pause", b"\xff\xfe", "not UTF-8"),
        ("pause", b"{" + b" " * MAX_COMMAND_BYTES + b"}", "exceeds the 4096-byte limit"),
        ("reboot", b"{}", "unknown command 'reboot'; known commands: pause, resume, snapshot"),
        ("pause", b'{"force": true}', "unknown argument(s) force for 'pause'"),
        ("snapshot", b'{"annotated": "yes"}', "'annotated' must be bool"),
        ("stats", b'{"id": {"x": 1}}', "`id` must be"),
    ],
)
def test_malformed_commands_are_refused_with_a_reason(name: str, payload: bytes, reason: str) -> None:
    command, _, error = dispatcher().parse(CommandRequest(name, payload))
    assert command is None and error is not None and reason in error


def dispatcher() -> Any:
    """The daemon's own dispatcher, with the daemon's own commands (nothing is started)."""
    return Daemon(parse_config(MINIMAL)).dispatcher


def test_valid_commands() -> None:
    parse = dispatcher().parse
    command, request_id, error = parse(CommandRequest("snapshot", b'{"id": "r1", "annotated": false}'))
    assert error is None and command is not None and request_id == "r1"
    assert command.args == {"annotated": False}
    assert parse(CommandRequest("pause", b"{}"))[0] is not None
    assert parse(CommandRequest("pause", b""))[0] is None  # an empty payload is never a command
    assert parse(CommandRequest("reboot", b'{"id": 7}'))[1] == 7  # the id is echoed even in a refusal
    refused, request_id, error = parse(CommandRequest("resume", b'{"id": "r2"}', retained=True))
    assert refused is None and request_id == "r2" and error is not None and "retained" in error


def test_schemas_are_valid_json_schemas() -> None:
    folder = resources.files("edged") / "schemas"
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".schema.json"))
    assert {"availability.schema.json", "state.schema.json", "stats.schema.json", "event.schema.json"} <= set(names)
    for name in names:
        jsonschema.Draft202012Validator.check_schema(schema(name))


def test_schemas_ship_in_the_package() -> None:
    assert "schemas/*.json" in Path(__file__).resolve().parents[1].joinpath("pyproject.toml").read_text()
    assert os.path.exists(str(resources.files("edged") / "schemas" / "command-reply.schema.json"))


def test_docs_examples_validate_against_their_schemas() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "mqtt.md").read_text()
    import re

    examples = re.findall(r"<!-- example: ([a-z-]+\.schema\.json) -->\n```json\n(.*?)\n```", docs, re.S)
    assert len(examples) >= 7
    for name, text in examples:
        jsonschema.validate(json.loads(text), schema(name))
