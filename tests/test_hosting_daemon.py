"""Model hosting in the running daemon, against a real nginx serving a repository built with `edged hosting`:
updates verified, validated and hot-swapped with no frame lost; bad versions refused with the old model still
running; probation rolling a bad version back; commands; the Home Assistant update payload."""

from __future__ import annotations

import datetime as dt
import json
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import jsonschema
import numpy as np
import pytest
from hosting_support import CLASSIFIER, MODELS, NAME, Repo
from pipeline_support import BackgroundDaemon, RecordingPublisher, wait_until
from support.fault_server import Fault, FaultServer
from support.nginx import Nginx

from edged.app.daemon import Daemon
from edged.config import parse_config
from edged.hosting.checks import CheckedVersion
from edged.inference.model import file_sha256
from edged.publish.mqtt.discovery import update_payload
from edged.sources.shapes import Shape, draw_scene

Q128 = MODELS / "shapes_classifier_q128.tflite"
Q255 = MODELS / "shapes_classifier_q255.tflite"
EVENT_SCHEMA = json.loads((resources.files("edged") / "schemas" / "event.schema.json").read_text())
STATE_SCHEMA = json.loads((resources.files("edged") / "schemas" / "state.schema.json").read_text())


def device_config(
    url: str, repo: Repo, state_dir: Path, camera: str = "", hosting: str = "", model: str = "", window_s: float = 1
) -> Any:
    camera = camera or 'type = "synthetic"\nwidth = 96\nheight = 96\nfps = 30'
    return parse_config(
        f'device_id = "dev-1"\nstate_dir = "{state_dir}"\n'
        f'[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n{model}\n'
        f"[camera]\n{camera}\n"
        f'[hosting]\nurl = "{url}"\nname = "{NAME}"\ntrusted_root = "{repo.root_json}"\ninterval_s = 600\n'
        f"health_window_s = {window_s}\nfree_space_margin_bytes = 0\n{hosting}\n"
    )


def events(publisher: RecordingPublisher, name: str) -> list[dict[str, Any]]:
    return [e for e in publisher.events if e["event"] == name]


def command(daemon: Daemon, name: str) -> dict[str, Any]:
    return daemon.dispatcher.call(name)


@pytest.fixture
def served(nginx: Nginx, repo: Repo) -> str:
    return nginx.url


def test_versions_are_swapped_in_while_frames_flow_and_a_restart_needs_no_network(
    served: str, repo: Repo, nginx: Nginx, tmp_path: Path
) -> None:
    video = tmp_path / "clip.avi"  # a file read as fast as the model allows: back-pressure, every frame inferred
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 96))
    for i in range(50):
        writer.write(draw_scene(np.random.default_rng(i), 96, 96, [Shape("red_square", 0.5, 0.5, 0.3)]))
    writer.release()
    camera = f'type = "opencv"\nsource = "{video}"\nrealtime = false\nloop = true'
    config = device_config(served, repo, tmp_path / "state", camera)
    repo.publish(CLASSIFIER, "--notes", "v1")
    publisher = RecordingPublisher()
    with BackgroundDaemon(config, publisher) as running:
        daemon = running.daemon
        for number, model in ((1, None), (2, Q128), (3, Q255)):
            if model is not None:
                repo.publish(model, "--notes", f"v{number}")
            assert command(daemon, "check_update")["ok"]
            assert publisher.wait_for(
                lambda n=number: any(e["version"] == n for e in events(publisher, "update_committed"))
            )  # type: ignore[misc]
        assert publisher.wait_for(lambda: publisher.results[-1]["model"]["version"] == "3")
        state = daemon.state()
    jsonschema.validate(state, STATE_SCHEMA)
    assert state["hosting"]["current_version"] == 3 and state["model"]["version"] == "3"
    results = publisher.results
    assert [r["seq"] for r in results] == list(range(len(results)))  # no frame lost, back-pressure: none dropped
    assert [r["source"]["frame_index"] for r in results] == list(range(len(results)))  # frame after frame
    versions = [r["model"]["version"] for r in results]
    assert [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v] == ["local", "1", "2", "3"]
    by_version = {r["model"]["version"]: r["model"]["sha256"] for r in results}
    assert by_version["2"] == file_sha256(Q128.read_bytes()) and by_version["3"] == file_sha256(Q255.read_bytes())
    for event in publisher.events:
        jsonschema.validate(event, EVENT_SCHEMA)
    assert [e["version"] for e in events(publisher, "update_activated")] == [1, 2, 3]

    nginx.stop()  # the host is down: the device comes up on v3 all the same
    again = RecordingPublisher()
    with BackgroundDaemon(device_config(served, repo, tmp_path / "state", camera), again) as running:
        assert again.wait_for(lambda: len(again.results) >= 5)
        assert command(running.daemon, "check_update")["ok"] is False  # the check fails, the model stays
        assert again.wait_for(lambda: bool(events(again, "update_check_failed")))
    assert {r["model"]["version"] for r in again.results} == {"3"}
    assert "next_attempt_s" in events(again, "update_check_failed")[0]


def _publish_unchecked(repo: Repo, model: Path, monkeypatch: pytest.MonkeyPatch, *extra: str | Path) -> None:
    """A version the publisher's checks would refuse (a hand-made or old repository): the device must refuse it."""
    import edged.hosting.repository as repository

    def unchecked(*args: Any, **kwargs: Any) -> CheckedVersion:
        return CheckedVersion(spec=None, ran=False, tpu_only=False, notes=())  # type: ignore[arg-type]

    monkeypatch.setattr(repository, "check_version", unchecked)
    repo.publish(model, *extra)
    monkeypatch.undo()


def _red_square(path: Path) -> Path:
    image = draw_scene(np.random.default_rng(2), 160, 120, [Shape("red_square", 0.5, 0.5, 0.3)])
    cv2.imwrite(str(path), image)
    return path


@pytest.mark.parametrize("case", ["does-not-load", "label-count", "golden", "latency", "label-filter"])
def test_a_bad_version_is_refused_blocked_and_the_old_model_keeps_running(
    served: str, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    hosting, model = "", ""
    if case == "does-not-load":
        truncated = tmp_path / "truncated.tflite"
        truncated.write_bytes(Q128.read_bytes()[:5000])
        _publish_unchecked(repo, truncated, monkeypatch)
        expected = "does not load"
    elif case == "label-count":
        labels = tmp_path / "labels.txt"
        labels.write_text("a\nb\nc\nd\ne\n")
        _publish_unchecked(repo, Q128, monkeypatch, "--labels", labels)
        expected = "name 5 classes"
    elif case == "golden":
        _publish_unchecked(repo, Q128, monkeypatch, "--golden", f"{_red_square(tmp_path / 'red.png')}=blue_triangle")
        expected = "expected top label 'blue_triangle'"
    elif case == "latency":
        repo.publish(Q128)
        hosting = "max_latency_ms = 0.000001"
        expected = "over max_latency_ms"
    else:  # the device filters on a label the new version does not have
        labels = tmp_path / "labels.txt"
        labels.write_text("square\ncircle\ntriangle\n")
        repo.publish(Q128, "--labels", labels)
        model = 'include_labels = ["red_square"]'
        expected = "'red_square' is not one of the model's labels"
    publisher = RecordingPublisher()
    config = device_config(served, repo, tmp_path / "state", hosting=hosting, model=model)
    with BackgroundDaemon(config, publisher) as running:
        assert command(running.daemon, "check_update")["ok"]
        assert publisher.wait_for(lambda: bool(events(publisher, "update_rejected")), 120), publisher.events
        reason = events(publisher, "update_rejected")[0]["reason"]
        assert expected in reason, reason
        before = len(publisher.results)
        assert publisher.wait_for(lambda: len(publisher.results) >= before + 5)  # the old model goes on
        updates = running.daemon.updates
        assert updates is not None and updates.store.state.blocked  # its hash is never installed again
        assert command(running.daemon, "check_update")["result"]["available_version"] is None
    assert {r["model"]["version"] for r in publisher.results} == {"local"}
    assert not events(publisher, "update_activated")


def test_a_tampered_target_is_refused_and_reported(served: str, repo: Repo, tmp_path: Path) -> None:
    repo.publish(Q128)
    (target,) = [p for p in (repo.path / "targets" / NAME / "1").iterdir() if p.name.endswith("model.tflite")]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte changed after signing
    target.write_bytes(bytes(data))
    publisher = RecordingPublisher()
    with BackgroundDaemon(device_config(served, repo, tmp_path / "state"), publisher) as running:
        assert command(running.daemon, "check_update")["ok"]
        assert publisher.wait_for(lambda: bool(events(publisher, "update_rejected")), 120)
        before = len(publisher.results)
        assert publisher.wait_for(lambda: len(publisher.results) >= before + 5)
    assert "hash" in events(publisher, "update_rejected")[0]["reason"]
    assert {r["model"]["version"] for r in publisher.results} == {"local"}


def test_host_faults_are_reported_backed_off_and_survived(repo: Repo, tmp_path: Path) -> None:
    repo.publish(Q128)
    server = FaultServer(repo.path).start()
    try:
        server.faults["timestamp.json"] = Fault(status=500)
        publisher = RecordingPublisher()
        with BackgroundDaemon(device_config(server.url, repo, tmp_path / "state"), publisher) as running:
            assert command(running.daemon, "check_update")["ok"] is False
            assert publisher.wait_for(lambda: bool(events(publisher, "update_check_failed")), 60)
            failed = events(publisher, "update_check_failed")[0]
            assert "500" in failed["reason"] and failed["next_attempt_s"] > 0 and failed["failures"] == 1
            server.faults.clear()  # the host heals: the next check installs
            assert command(running.daemon, "check_update")["ok"]
            assert publisher.wait_for(lambda: bool(events(publisher, "update_committed")), 120)
    finally:
        server.stop()
    assert publisher.results[-1]["model"]["version"] == "1"


def test_a_version_that_fails_at_invoke_is_rolled_back_within_its_health_window(
    served: str, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGED_TEST_ONLY_MODEL_FAULT", f"error:{file_sha256(Q128.read_bytes())[:12]}")
    _rollback_case(served, repo, tmp_path, "", "inference failures in the health window", window_s=3)


def test_a_version_over_the_latency_limit_is_rolled_back_within_its_health_window(
    served: str, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGED_TEST_ONLY_MODEL_FAULT", f"slow:{file_sha256(Q128.read_bytes())[:12]}:40")
    _rollback_case(served, repo, tmp_path, "max_latency_ms = 25", "over max_latency_ms", window_s=3)


def _rollback_case(served: str, repo: Repo, tmp_path: Path, hosting: str, expected: str, window_s: float = 1) -> None:
    repo.publish(CLASSIFIER)
    publisher = RecordingPublisher()
    config = device_config(served, repo, tmp_path / "state", hosting=hosting, window_s=window_s)
    with BackgroundDaemon(config, publisher) as running:
        assert command(running.daemon, "check_update")["ok"]
        assert publisher.wait_for(lambda: bool(events(publisher, "update_committed")), 120)
        repo.publish(Q128)  # v2: passes validation, then misbehaves once it runs
        assert command(running.daemon, "check_update")["ok"]
        assert publisher.wait_for(lambda: bool(events(publisher, "update_rolled_back")), 120), publisher.events
        rolled = events(publisher, "update_rolled_back")[0]
        assert rolled["from_version"] == 2 and rolled["to_version"] == 1 and expected in rolled["reason"]
        assert publisher.wait_for(lambda: publisher.results[-1]["model"]["version"] == "1")
        updates = running.daemon.updates
        assert updates is not None
        assert file_sha256(Q128.read_bytes()) in updates.store.state.blocked
        assert command(running.daemon, "check_update")["result"]["available_version"] is None  # never again
    assert not [e for e in events(publisher, "update_committed") if e["version"] == 2]


def test_without_auto_install_an_update_waits_for_the_install_command(served: str, repo: Repo, tmp_path: Path) -> None:
    repo.publish(Q128, "--notes", "sharper squares")
    publisher = RecordingPublisher()
    config = device_config(served, repo, tmp_path / "state", hosting="auto_install = false")
    with BackgroundDaemon(config, publisher) as running:
        daemon = running.daemon
        reply = command(daemon, "check_update")
        assert reply["ok"] and reply["result"]["available_version"] == 1
        available = events(publisher, "update_available")
        assert available and available[0]["notes"] == "sharper squares"
        assert daemon.state()["hosting"]["available_version"] == 1 and daemon.state()["model"]["version"] == "local"
        assert command(daemon, "install_update")["result"] == {"installing": 1, "name": NAME}
        assert publisher.wait_for(lambda: bool(events(publisher, "update_committed")), 120)
        # rollback: back to the bundled model, pinned until a newer version is published
        reply = command(daemon, "rollback")
        assert reply["ok"] and reply["result"]["rolled_back_to"] is None
        assert publisher.wait_for(lambda: publisher.results[-1]["model"]["version"] == "local")
        assert command(daemon, "check_update")["result"]["available_version"] is None
        repo.publish(Q255)
        assert command(daemon, "check_update")["result"]["available_version"] == 2


def test_outside_the_install_window_a_version_waits_downloaded(served: str, repo: Repo, tmp_path: Path) -> None:
    repo.publish(Q128)
    later = (dt.datetime.now() + dt.timedelta(hours=2)).strftime("%H:00")
    end = (dt.datetime.now() + dt.timedelta(hours=3)).strftime("%H:00")
    publisher = RecordingPublisher()
    config = device_config(served, repo, tmp_path / "state", hosting=f'install_window = "{later}-{end}"')
    with BackgroundDaemon(config, publisher) as running:
        daemon = running.daemon
        assert command(daemon, "check_update")["ok"]
        assert wait_until(lambda: daemon.state()["hosting"]["state"] == "waiting_for_window")
        assert (tmp_path / "state" / "versions" / "1").is_dir()  # downloaded and installed...
        before = len(publisher.results)
        assert publisher.wait_for(lambda: len(publisher.results) >= before + 5)
    assert {r["model"]["version"] for r in publisher.results} == {"local"}  # ...but not activated


def test_commands_without_hosting_say_how_to_configure_it(tmp_path: Path) -> None:
    config = parse_config(f'[model]\npath = "{CLASSIFIER}"\n[camera]\ntype = "synthetic"\n')
    reply = Daemon(config).dispatcher.call("install_update")
    assert reply["ok"] is False and "add a [hosting] table" in reply["error"]


def test_the_home_assistant_update_payload_matches_its_schema() -> None:
    definitions = json.loads((resources.files("edged") / "schemas" / "ha-discovery.schema.json").read_text())
    schema = {**definitions, "$ref": "#/$defs/update_state", "anyOf": [{}]}
    hosting = {"name": "kitchen", "channel": "stable", "auto_install": True, "state": "downloading",
               "current_version": 3, "available_version": 4, "available_notes": "x" * 400, "progress": 42.0,
               "last_check_at": None, "next_check_at": None, "last_error": None}  # fmt: skip
    payload = update_payload(hosting, {"name": "kitchen"})
    jsonschema.validate(payload, schema)
    assert payload["installed_version"] == "3" and payload["latest_version"] == "4"
    assert payload["in_progress"] is True and payload["update_percentage"] == 42.0
    assert len(payload["release_summary"]) == 255
    idle = update_payload({**hosting, "state": "idle", "current_version": None, "available_version": None}, None)
    jsonschema.validate(idle, schema)
    assert idle["installed_version"] == idle["latest_version"] == "bundled" and idle["update_percentage"] is None


def test_stopping_during_probation_is_not_counted_as_a_crash(served: str, repo: Repo, tmp_path: Path) -> None:
    repo.publish(Q128)
    config = device_config(served, repo, tmp_path / "state", window_s=600)
    for run in range(3):  # three clean stops in a long health window: still on probation, never rolled back
        publisher = RecordingPublisher()
        with BackgroundDaemon(config, publisher) as running:
            if run == 0:
                assert command(running.daemon, "check_update")["ok"]
            assert publisher.wait_for(lambda p=publisher: bool(p.results) and p.results[-1]["model"]["version"] == "1")  # type: ignore[misc]
            assert wait_until(lambda r=running: r.daemon.state()["hosting"]["state"] == "probation")  # type: ignore[misc]
        assert not events(publisher, "update_rolled_back")


def test_an_edge_tpu_only_version_is_refused_on_a_device_without_a_tpu(
    served: str, repo: Repo, tmp_path: Path, shared_data: Path
) -> None:
    models = shared_data / "models"
    repo.publish(models / "mobilenet_v1_0.25_128_quant_edgetpu.tflite", "--labels", models / "imagenet_labels.txt")
    publisher = RecordingPublisher()
    with BackgroundDaemon(device_config(served, repo, tmp_path / "state"), publisher) as running:
        assert command(running.daemon, "check_update")["result"]["available_version"] is None
        assert publisher.wait_for(lambda: bool(events(publisher, "update_rejected")))
    assert "Edge-TPU-only version, and this device has no Edge TPU" in events(publisher, "update_rejected")[0]["reason"]
    assert {r["model"]["version"] for r in publisher.results} == {"local"}


def test_home_assistant_sees_the_model_as_an_update_entity_with_an_install_button(
    served: str, repo: Repo, tmp_path: Path
) -> None:
    from support.broker import Collector, broker_for_tests

    repo.publish(Q128, "--notes", "sharper squares")
    definitions = json.loads((resources.files("edged") / "schemas" / "ha-discovery.schema.json").read_text())
    with broker_for_tests(tmp_path / "broker") as broker:
        mqtt = f'[publisher]\ntype = "mqtt"\nhost = "127.0.0.1"\nport = {broker.port}\n'
        text = json_free_config(served, repo, tmp_path / "state", "").replace("[hosting]", mqtt + "[hosting]")
        config = parse_config(text + "auto_install = false\n")
        topic = "edged/dev-1/update"
        entity = "homeassistant/device/edged_dev-1/config"  # device-based discovery: the entity is in `cmps`
        with Collector(broker.port, ["edged/#", "homeassistant/#"]) as collector:
            daemon = Daemon(config)
            runner = threading.Thread(target=lambda: daemon.run(handle_signals=False))
            runner.start()
            try:
                assert collector.wait_for(lambda ms: any(m.topic == entity for m in ms))
                device = collector.on(entity)[-1].json()
                jsonschema.validate(device, {**definitions, "$ref": "#/$defs/device", "anyOf": [{}]})
                discovery = device["cmps"]["model_update"]
                assert discovery["p"] == "update" and discovery["state_topic"] == topic
                assert discovery["command_topic"] == "edged/dev-1/cmd/install_update"
                collector.publish("edged/dev-1/cmd/check_update", "{}")
                assert collector.wait_for(lambda ms: any(m.json().get("latest_version") == "1"
                                                         for m in ms if m.topic == topic))  # fmt: skip
                offered = [m.json() for m in collector.on(topic) if m.json()["latest_version"] == "1"][-1]
                assert offered["installed_version"] == "bundled" and offered["release_summary"] == "sharper squares"
                collector.publish(discovery["command_topic"], discovery["payload_install"])  # HA's Install button
                assert collector.wait_for(lambda ms: any(m.json().get("installed_version") == "1"
                                                         for m in ms if m.topic == topic), 120)  # fmt: skip
                schema = {**definitions, "$ref": "#/$defs/update_state", "anyOf": [{}]}
                for message in collector.on(topic):
                    jsonschema.validate(message.json(), schema)
            finally:
                daemon.request_stop()
                runner.join(60)


def json_free_config(url: str, repo: Repo, state_dir: Path, model_extra: str) -> str:
    """The device config as TOML text (to add tables to it)."""
    return (
        f'device_id = "dev-1"\nstate_dir = "{state_dir}"\n'
        f'[model]\npath = "{CLASSIFIER}"\nnum_threads = 1\n{model_extra}\n'
        '[camera]\ntype = "synthetic"\nwidth = 96\nheight = 96\nfps = 30\n'
        f'[hosting]\nurl = "{url}"\nname = "{NAME}"\ntrusted_root = "{repo.root_json}"\ninterval_s = 600\n'
        "health_window_s = 1\nfree_space_margin_bytes = 0\n"
    )


def test_home_assistant_entities_follow_a_new_versions_labels(served: str, repo: Repo, tmp_path: Path) -> None:
    """A retrained model whose label set changed: after the swap, Home Assistant gets entities for the new labels
    and the old label's entity is removed (a component with only its platform), without a restart."""
    from support.broker import Collector, broker_for_tests

    renamed = tmp_path / "labels.txt"
    renamed.write_text("crimson_square\ngreen_circle\nblue_triangle\n")
    with broker_for_tests(tmp_path / "broker") as broker:
        mqtt = f'[publisher]\ntype = "mqtt"\nhost = "127.0.0.1"\nport = {broker.port}\n'
        text = json_free_config(served, repo, tmp_path / "state", "")
        config = parse_config(text.replace("[hosting]", mqtt + "[hosting]"))
        entity = "homeassistant/device/edged_dev-1/config"
        with Collector(broker.port, ["edged/#", "homeassistant/#"]) as collector:
            daemon = Daemon(config)
            runner = threading.Thread(target=lambda: daemon.run(handle_signals=False))
            runner.start()
            try:
                assert collector.wait_for(lambda ms: any(m.topic == entity for m in ms))
                first = collector.on(entity)[-1].json()["cmps"]
                assert "red_square_detected" in first and not any(k.startswith("crimson") for k in first)
                repo.publish(CLASSIFIER, "--labels", renamed)
                collector.publish("edged/dev-1/cmd/check_update", "{}")

                def relabelled(messages: list[Any]) -> bool:
                    found = [m.json()["cmps"] for m in messages if m.topic == entity and m.payload]
                    return bool(found) and "crimson_square_detected" in found[-1]

                assert collector.wait_for(relabelled, 120)
                latest = collector.on(entity)[-1].json()["cmps"]
                assert latest["crimson_square_detected"]["p"] == "binary_sensor"
                assert latest["crimson_square_detected"]["state_topic"].endswith("/labels/crimson_square/detected")
                assert {k: v for k, v in latest.items() if k.startswith("red_square")} == {
                    k: {"p": first[k]["p"]} for k in first if k.startswith("red_square")
                }  # the old label's entities are removed, not left stuck at their last values
                assert collector.wait_for(lambda ms: any(m.topic == "edged/dev-1/labels/crimson_square" for m in ms))
            finally:
                daemon.request_stop()
                runner.join(60)
