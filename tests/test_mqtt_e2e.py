"""`edged run` against a real mosquitto: the last will, a broker outage without a gap, a bad password, and docs/mqtt.md
checked against everything an end-to-end run publishes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from support.broker import Collector, Mosquitto, Received, broker_for_tests, make_password_file, require_mosquitto

ROOT = Path(__file__).resolve().parents[1]
MODELS = Path(__file__).parent / "fixtures" / "models"
DETECTOR = MODELS / "shapes_yolov8_int8.tflite"
DEVICE = "e2e-cam"
PREFIX = f"edged/{DEVICE}"


def schema(name: str) -> dict[str, Any]:
    return json.loads((resources.files("edged") / "schemas" / name).read_text())  # type: ignore[no-any-return]


def write_config(
    folder: Path, broker: Mosquitto, *, camera: str = "", publisher: str = "", shutdown_timeout_s: float = 20.0
) -> Path:
    if not DETECTOR.exists():
        pytest.fail(f"the project's fixture model {DETECTOR} is missing: run `make fixtures`")
    path = folder / "edged.toml"
    path.write_text(
        f'device_id = "{DEVICE}"\n\n[model]\npath = "{DETECTOR}"\n\n'
        f'[camera]\ntype = "synthetic"\nfps = 20\nwidth = 320\nheight = 240\n{camera}\n'
        f"[pipeline]\nstats_interval_s = 1.0\nshutdown_timeout_s = {shutdown_timeout_s}\n\n"
        f'[publisher]\ntype = "mqtt"\nhost = "{broker.host}"\nport = {broker.port}\n{publisher}\n'
    )
    return path


class EdgedProcess:
    """`edged run` as a child process; whatever happens, the test leaves no process behind."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = config.with_suffix(".log")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "edged", "run", "--config", str(config)],
                stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, **(env or {})}, start_new_session=True,
            )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout_s: float) -> int:
        return self.process.wait(timeout_s)

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with broker_for_tests(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def edged() -> Iterator[Any]:
    processes: list[EdgedProcess] = []

    def start(config: Path, env: dict[str, str] | None = None) -> EdgedProcess:
        processes.append(EdgedProcess(config, env))
        return processes[-1]

    yield start
    for process in processes:
        process.cleanup()


def result_seqs(messages: list[Received]) -> set[int]:
    return {m.json()["seq"] for m in messages if m.topic == f"{PREFIX}/results"}


def test_kill_9_makes_the_broker_publish_offline(tmp_path: Path, broker: Mosquitto, edged: Any) -> None:
    config = write_config(tmp_path, broker, publisher="homeassistant = false\n")
    with Collector(broker.port, [f"{PREFIX}/availability", f"{PREFIX}/results"]) as collector:
        process = edged(config)
        assert collector.wait_for(lambda ms: len(result_seqs(ms)) >= 3, 60), process.log()
        assert [m.payload for m in collector.on(f"{PREFIX}/availability")] == [b"online"]
        process.signal(signal.SIGKILL)
        process.wait(10)
        assert collector.wait_for(
            lambda _: [m.payload for m in collector.on(f"{PREFIX}/availability")][-1] == b"offline"
        )
    with Collector(broker.port, [f"{PREFIX}/availability"]) as late:  # and it stays, retained
        assert late.wait_for(lambda ms: bool(ms))
        assert late.snapshot()[0].payload == b"offline" and late.snapshot()[0].retain


@pytest.mark.slow
def test_a_broker_outage_loses_no_result(tmp_path: Path, broker: Mosquitto, edged: Any) -> None:
    """Stop the broker for about 10 s mid-run and start it again on the same port: every seq arrives.

    The subscriber holds a persistent session (QoS 1) in a broker with persistence, so what reaches the broker
    before the subscriber is back is kept for it; QoS 1 may deliver twice, so seqs are deduplicated.
    """
    frames = 500
    # edged retries every 3 s, the subscriber every second: the subscriber is usually back first, and the broker's
    # persistence covers the other case; either way a missing seq can only be edged's fault.
    options = "homeassistant = false\nreconnect_min_s = 3\nreconnect_max_s = 3\n"
    config = write_config(tmp_path, broker, camera=f"frames = {frames}\n", publisher=options)
    subscriber = Collector(
        broker.port, [f"{PREFIX}/results", f"{PREFIX}/stats"], client_id="outage-subscriber", persistent=True,
        reconnect_s=(1, 1),
    )  # fmt: skip
    with subscriber as collector:
        process = edged(config)
        assert collector.wait_for(lambda ms: len(result_seqs(ms)) >= 40, 60), process.log()
        broker.stop(signal.SIGTERM)
        time.sleep(10)
        broker.start()
        assert process.wait(120) == 0, process.log()
        # The camera is live: on a loaded machine a frame can be dropped while the model is busy (counted in the
        # stats), so "every result" is every seq edged produced, which the stats published at the stop report.
        stats = lambda ms: [m.json() for m in ms if m.topic == f"{PREFIX}/stats"]  # noqa: E731
        assert collector.wait_for(lambda ms: any(s["source_state"] == "finished" for s in stats(ms)), 60)
        produced = max(s["seq"] for s in stats(collector.snapshot()))
        assert produced >= frames - 10, f"only {produced} of {frames} frames became results"
        collector.wait_for(lambda ms: len(result_seqs(ms)) >= produced, 60)
        messages = [m for m in collector.snapshot() if m.topic == f"{PREFIX}/results"]
    seqs = result_seqs(messages)
    missing = sorted(set(range(produced)) - seqs)
    assert not missing, (
        f"{len(missing)} missing: {missing[:10]}...{missing[-10:]}; broker SIGKILLed: {broker.forced_stops}\n"
        f"{broker.log_text()[-3000:]}\n{process.log()[-3000:]}"
    )
    run_ids = {m.json()["run_id"] for m in messages}
    assert len(run_ids) == 1
    log = process.log()
    assert "connection to" in log and "reconnected" in log and "dropping" not in log
    result_schema = schema("result.schema.json")
    for message in messages[:: max(1, len(messages) // 20)]:
        jsonschema.validate(message.json(), result_schema)


def test_a_wrong_password_is_logged_retried_and_survived(tmp_path: Path, edged: Any) -> None:
    require_mosquitto()
    passwords = make_password_file(tmp_path / "passwd", {"camera": "right-password"})
    with broker_for_tests(tmp_path / "broker", password_file=passwords) as broker:
        options = 'username = "camera"\npassword_env = "EDGED_MQTT_PW"\nreconnect_max_s = 2\n'
        config = write_config(tmp_path, broker, publisher=options, shutdown_timeout_s=2.0)
        process = edged(config, env={"EDGED_MQTT_PW": "wrong-password"})
        deadline = time.monotonic() + 60
        while "connection attempt 3 failed" not in process.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        log = process.log()
        assert "refused the connection: Not authorized (user 'camera'; the password in $EDGED_MQTT_PW)" in log, log
        assert "connection attempt 3 failed" in log and process.process.poll() is None  # retrying, still running
        process.signal(signal.SIGTERM)
        process.wait(60)
        log = process.log()
        assert "Traceback" not in log and "wrong-password" not in log


# ---- docs/mqtt.md against a real run ------------------------------------------------------------------------
DOC_ROW = re.compile(r"^\| `(?P<topic>[^`]+)` \| (?P<direction>[a-z]+) \| (?P<retained>yes|no) \| (?P<qos>[0-2]) \| "
                     r"(?P<payload>[^|]+) \| (?P<schema>[^|]+) \|$")  # fmt: skip


def documented_topics() -> list[dict[str, str]]:
    rows = [match.groupdict() for line in (ROOT / "docs" / "mqtt.md").read_text().splitlines()
            if (match := DOC_ROW.match(line.strip()))]  # fmt: skip
    assert len(rows) >= 10, "docs/mqtt.md lost its topic table"
    return rows


def topic_pattern(documented: str) -> re.Pattern[str]:
    concrete = documented.replace("<prefix>", PREFIX).replace("<discovery_prefix>", "homeassistant")
    return re.compile("^" + re.sub(r"<[a-z_]+>", "[^/]+", re.escape(concrete).replace(r"\<", "<").replace(r"\>", ">"))
                      + "$")  # fmt: skip


def schema_file(cell: str) -> str | None:
    match = re.search(r"([a-z-]+\.schema\.json)", cell)
    return match.group(1) if match else None


def validate(message: Received, schema_name: str | None) -> None:
    if schema_name is None:  # the snapshot is a JPEG; the sync marker is text
        if message.topic.endswith("/snapshot"):
            assert message.payload[:2] == b"\xff\xd8", message.topic
        else:
            message.payload.decode()
        return
    definitions = schema(schema_name)
    if schema_name == "ha-discovery.schema.json":
        definitions = {**definitions, "$ref": f"#/$defs/{message.topic.split('/')[1]}", "anyOf": [{}]}
    text_payload = definitions.get("type") == "string"
    jsonschema.validate(message.payload.decode() if text_payload else message.json(), definitions)


@pytest.mark.slow
def test_docs_and_schemas_match_what_is_published(tmp_path: Path, broker: Mosquitto, edged: Any) -> None:
    rows = documented_topics()
    config = write_config(
        tmp_path, broker,
        publisher='labels = ["green_circle", "red_square"]\nlabel_topics = true\nsnapshot_interval_s = 1.0\n'
                  "snapshot_min_interval_s = 0.5\n",
    )  # fmt: skip
    with Collector(broker.port, ["#"]) as collector:
        process = edged(config)
        assert collector.wait_for(lambda ms: len(result_seqs(ms)) >= 5, 60), process.log()
        collector.publish("homeassistant/status", "online")
        for name in ("snapshot", "pause", "resume", "stats", "check_update", "no_such_command"):
            collector.publish(f"{PREFIX}/cmd/{name}", '{"id": "docs"}')
        assert collector.wait_for(lambda ms: sum(m.topic.endswith("/reply") for m in ms) >= 6, 60), process.log()
        assert collector.wait_for(lambda ms: sum(m.topic == f"{PREFIX}/stats" for m in ms) >= 2, 60)
        process.signal(signal.SIGTERM)
        assert process.wait(60) == 0, process.log()
        assert collector.wait_for(
            lambda _: [m.payload for m in collector.on(f"{PREFIX}/availability")][-1:] == [b"offline"]
        )
        messages = collector.snapshot()

    published = [row for row in rows if row["direction"] == "out"]
    patterns = [(topic_pattern(row["topic"]), row) for row in published]
    seen: set[str] = set()
    for message in messages:
        if message.topic.startswith(f"{PREFIX}/cmd/") and not message.topic.endswith("/reply"):
            continue  # the commands this test sent
        if message.topic == "homeassistant/status":
            continue  # Home Assistant's birth message, sent by this test
        matching = [row for pattern, row in patterns if pattern.match(message.topic)]
        assert matching, f"{message.topic} is published but not documented in docs/mqtt.md"
        row = matching[0]
        seen.add(row["topic"])
        validate(message, schema_file(row["schema"]))
        assert message.qos == min(int(row["qos"]), 1) or message.topic.endswith("/results")
    # <prefix>/update exists only with [hosting]: tests/test_hosting_daemon.py checks it against a real repository
    never = [row["topic"] for row in published if row["topic"] not in seen and row["topic"] != "<prefix>/update"]
    assert not never, f"documented but never published in an end-to-end run: {never}"
    for row in rows:
        name = schema_file(row["schema"])
        assert name is None or (resources.files("edged") / "schemas" / name).is_file(), name
