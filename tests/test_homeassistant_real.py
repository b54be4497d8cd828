"""edged against a real Home Assistant Core: onboarded through its API, MQTT added through the config flow, the
same mosquitto for both. Checked through Home Assistant's REST and websocket APIs: the device and every entity,
their states, device classes and units, the pause switch, availability on SIGTERM, the removal of stale
entities, and Home Assistant's own discovery schemas for every component of both discovery formats.

Needs .venv-ha (`make ha-venv`); skipped without it, a failure with EDGED_REQUIRE_HA=1 (CI builds it).
Home Assistant 2024.3 (the newest for Python 3.11) predates device-based discovery (2024.11), so the running
Home Assistant is given `discovery_format = "entity"`; the device format runs only with a newer one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import wait_until
from support.broker import Mosquitto, broker_for_tests, free_port
from support.homeassistant import INSTALL_HINT, HomeAssistant, ha_version, hass_binary
from support.web import Client, config_text

from edged.publish.mqtt.config import MqttPublisherConfig
from edged.publish.mqtt.discovery import DiscoveryContext, device_message, entity_messages
from edged.publish.mqtt.topics import Topics

pytestmark = pytest.mark.slow
LABELS = ("red_square", "green_circle", "blue_triangle")  # the shapes detector's labels
NODE = "edged_web-cam"  # device "web-cam": the node is the device id as it is (issue 8 item 12)


def require_hass() -> Path:
    binary = hass_binary()
    if binary is None:
        message = f"a real Home Assistant is needed for this tier; {INSTALL_HINT}"
        if os.environ.get("EDGED_REQUIRE_HA") == "1":
            pytest.fail(message + " (EDGED_REQUIRE_HA=1 makes this a failure)")
        pytest.skip(message)
    return binary


@pytest.fixture(scope="module")
def hass_path() -> Path:
    return require_hass()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with broker_for_tests(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def home_assistant(hass_path: Path, tmp_path: Path, broker: Mosquitto) -> Iterator[HomeAssistant]:
    hass = HomeAssistant(hass_path, tmp_path)
    try:
        hass.start()
        hass.onboard()
        hass.add_mqtt(broker.host, broker.port)
        yield hass
    finally:
        hass.stop()


class Edged:
    """`edged run` as a child process, with [http] on (configuration_url) and the MQTT publisher."""

    def __init__(self, tmp_path: Path, broker: Mosquitto, publisher: str) -> None:
        self.http_port = free_port()
        self.path = tmp_path / "edged.toml"
        self.tmp_path = tmp_path
        self.broker = broker
        self.publisher = publisher
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = tmp_path / "edged.log"

    def start(self, publisher_extra: str = "", stats_interval_s: float = 1.0) -> None:
        publisher = (f'[publisher]\ntype = "mqtt"\nhost = "{self.broker.host}"\nport = {self.broker.port}\n'
                     f"{self.publisher}{publisher_extra}")  # fmt: skip
        http = f'[http]\nlisten = "127.0.0.1:{self.http_port}"\n'
        self.path.write_text(
            config_text(http, publisher=publisher, pipeline=f"stats_interval_s = {stats_interval_s}\n")
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "edged", "run", "--config", str(self.path)],
                                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)  # fmt: skip

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(60)
        self.process = None
        return code

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def edged(tmp_path: Path, broker: Mosquitto) -> Iterator[Callable[[str], Edged]]:
    made: list[Edged] = []

    def make(publisher: str) -> Edged:
        made.append(Edged(tmp_path, broker, publisher))
        return made[-1]

    yield make
    for one in made:
        one.cleanup()


def edged_entities(hass: HomeAssistant) -> dict[str, dict[str, Any]]:
    """unique_id → entity registry entry, for the entities of edged's device."""
    entities, _ = hass.registry()
    return {e["unique_id"]: e for e in entities if e["platform"] == "mqtt" and e["unique_id"].startswith(NODE)}


def expected_ids(labels: tuple[str, ...]) -> set[str]:
    base = {"top_label", "top_score", "snapshot", "take_snapshot", "inference", "source_state", "output_fps"}
    per_label = {f"{label}_{kind}" for label in labels for kind in ("count", "detected")}
    return {f"{NODE}_{key}" for key in base | per_label}


def test_edged_is_a_native_home_assistant_device(home_assistant: HomeAssistant, edged: Callable[[str], Edged]) -> None:
    hass = home_assistant
    run = edged('discovery_format = "entity"\ndevice_classes = { red_square = "presence" }\n')
    run.start()
    wanted = expected_ids(LABELS)
    assert wait_until(lambda: set(edged_entities(hass)) == wanted, 120), (
        sorted(set(edged_entities(hass)) ^ wanted),
        hass.log()[-3000:],
        run.log()[-2000:],
    )
    entities = edged_entities(hass)
    _, devices = hass.registry()
    device = next(d for d in devices if ["mqtt", NODE] in d["identifiers"])
    assert device["manufacturer"] == "edged" and device["model"] == "edged (shapes_yolov8_int8)"
    assert device["configuration_url"] == f"http://127.0.0.1:{run.http_port}/"
    assert {e["device_id"] for e in entities.values()} == {device["id"]}
    ids = {key.removeprefix(f"{NODE}_"): entry["entity_id"] for key, entry in entities.items()}

    def state(key: str) -> dict[str, Any]:
        return hass.states()[ids[key]]

    assert wait_until(lambda: state("output_fps")["state"] not in ("unknown", "unavailable"), 60)
    assert float(state("output_fps")["state"]) > 0
    assert wait_until(lambda: state("source_state")["state"] == "streaming", 60)
    assert wait_until(lambda: state("top_label")["state"] in (*LABELS, "none"), 60)
    score = state("top_score")
    assert score["attributes"]["unit_of_measurement"] == "%" and 0 <= float(score["state"]) <= 100
    assert state("green_circle_detected")["attributes"]["device_class"] == "occupancy"
    assert state("red_square_detected")["attributes"]["device_class"] == "presence"
    assert wait_until(lambda: any(state(f"{label}_detected")["state"] == "on" for label in LABELS), 60)
    assert all(state(f"{label}_detected")["state"] in ("on", "off") for label in LABELS)
    assert all(float(state(f"{label}_count")["state"]) >= 0 for label in LABELS)
    assert wait_until(lambda: state("snapshot")["state"] not in ("unknown", "unavailable"), 60), (
        "the first snapshot was not published soon after start"
    )
    assert state("inference")["state"] == "on"

    # the switch pauses and resumes edged
    web = Client(run.http_port)
    hass.call_service("switch", "turn_off", {"entity_id": ids["inference"]})
    assert wait_until(lambda: web.get("/api/state").json()["paused"] is True, 30)
    assert wait_until(lambda: state("inference")["state"] == "off", 30)
    hass.call_service("switch", "turn_on", {"entity_id": ids["inference"]})
    assert wait_until(lambda: web.get("/api/state").json()["paused"] is False, 30)
    assert wait_until(lambda: state("inference")["state"] == "on", 30)

    # availability: a clean stop greys everything out
    assert run.stop() == 0, run.log()
    assert wait_until(lambda: all(hass.states()[i]["state"] == "unavailable" for i in ids.values()), 60)

    # fewer labels: the stale entities are removed, the others come back
    run.start('labels = ["green_circle"]\n')
    kept = expected_ids(("green_circle",))
    assert wait_until(lambda: set(edged_entities(hass)) == kept, 120), (
        sorted(set(edged_entities(hass)) ^ kept),
        hass.log()[-3000:],
    )
    assert wait_until(lambda: hass.states()[ids["green_circle_count"]]["state"] != "unavailable", 60)
    assert ids["red_square_count"] not in hass.states()

    # stats are retained: after a Home Assistant restart "Results per second" is known at once, here from the
    # last stats message of the previous run (this run sends none within the test: one per hour)
    assert run.stop() == 0
    run.start('labels = ["green_circle"]\n', stats_interval_s=3600)
    assert wait_until(lambda: hass.states()[ids["green_circle_count"]]["state"] != "unavailable", 60)
    hass.stop()
    hass.start()
    hass.login()
    assert wait_until(lambda: ids["output_fps"] in hass.states(), 60)
    assert wait_until(lambda: hass.states()[ids["output_fps"]]["state"] not in ("unknown", "unavailable"), 60)
    assert float(hass.states()[ids["output_fps"]]["state"]) > 0
    errors = [line for line in hass.log().splitlines() if " ERROR " in line and "mqtt" in line.lower()]
    assert not errors, errors


@pytest.fixture
def modern_hass(hass_path: Path) -> Path:
    version = ha_version(hass_path)
    if version < (2024, 11):
        pytest.skip("device-based discovery needs Home Assistant 2024.11 or later (Python 3.12); "
                    f"this tier has {'.'.join(map(str, version))}")  # fmt: skip
    return hass_path


def test_device_based_discovery_with_a_home_assistant_that_has_it(
    modern_hass: Path, home_assistant: HomeAssistant, edged: Callable[[str], Edged]
) -> None:
    hass = home_assistant
    run = edged('discovery_format = "entity"\n')
    run.start()
    assert wait_until(lambda: set(edged_entities(hass)) == expected_ids(LABELS), 120), hass.log()[-3000:]
    before = {key: entry["entity_id"] for key, entry in edged_entities(hass).items()}
    assert run.stop() == 0
    run.publisher = ""  # the default: device-based discovery, migrated from the per-entity configs
    run.start()
    assert wait_until(lambda: hass.states()[before[f"{NODE}_top_label"]]["state"] != "unavailable", 120)
    after = {key: entry["entity_id"] for key, entry in edged_entities(hass).items()}
    assert after == before, "the migration must keep every entity and its id"


HA_SCHEMA_CHECK = """
import json, sys
import voluptuous as vol
from homeassistant.components.mqtt import binary_sensor, button, image, sensor, switch, update
from homeassistant.components.mqtt.abbreviations import ABBREVIATIONS
platforms = {"sensor": sensor, "binary_sensor": binary_sensor, "button": button, "image": image, "switch": switch,
             "update": update}
problems = []
for component, key, config in json.load(sys.stdin):
    config = {ABBREVIATIONS.get(k, k): v for k, v in config.items()}
    try:
        validated = platforms[component].DISCOVERY_SCHEMA(config)
    except vol.Invalid as exc:
        problems.append(f"{component}/{key}: {exc}")
        continue
    dropped = sorted(set(config) - set(validated))
    if dropped:
        problems.append(f"{component}/{key}: Home Assistant does not know {dropped}")
print(json.dumps(problems))
"""


@pytest.mark.parametrize("task", ["detection", "classification"])
def test_every_component_passes_home_assistants_own_schemas(hass_path: Path, task: str) -> None:
    """Both formats' components through the discovery schema of each MQTT platform of the installed Home
    Assistant (which drops unknown keys silently: a dropped key is reported here as a failure)."""
    config = MqttPublisherConfig(type="mqtt", device_classes={"person": "presence"})
    topics = Topics.from_config(config, "web-cam")
    context = DiscoveryContext(
        "web-cam", "0.1.0", task, "shapes", "http://127.0.0.1:8080/", ("person", "car"), hosting=True
    )
    checks: list[tuple[str, str, dict[str, Any]]] = []
    for topic, payload in entity_messages(config, topics, context):
        _, component, _, key, _ = topic.split("/")
        checks.append((component, key, payload))
    _, device = device_message(config, topics, context)
    for key, component_config in device["cmps"].items():
        fields = {k: v for k, v in component_config.items() if k != "p"}
        merged = {**fields, "device": device["dev"], "origin": device["o"], "availability": device["availability"]}
        checks.append((component_config["p"], key, merged))
    done = subprocess.run([str(hass_path.parent / "python"), "-c", HA_SCHEMA_CHECK], input=json.dumps(checks),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    problems = json.loads(done.stdout.strip().splitlines()[-1])
    assert not problems, problems
    assert len(checks) == 2 * (7 + 2 * 2 + 1)  # the base entities, two labels, the model's update entity
