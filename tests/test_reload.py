"""Live reload of a real `edged run` process on SIGHUP: what applies live, what is rebuilt, what is refused, and the
RELOADING=1 / READY=1 protocol on a real AF_UNIX datagram socket."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from pipeline_support import wait_until
from reload_support import CLASSIFIER, CLASSIFIER_Q128, ROOT, EdgedProcess, write_config
from test_sdnotify import NotifySocket

EVENT_SCHEMA = json.loads((ROOT / "edged" / "schemas" / "event.schema.json").read_text())


def config_text(*, model: Path = CLASSIFIER, model_extra: str = "", camera: str = "", device: str = "reload") -> str:
    camera = camera or "width = 96\nheight = 96\nfps = 30"
    return (
        f'device_id = "{device}"\n'
        f'[model]\npath = "{model}"\nnum_threads = 1\n{model_extra}\n'
        f'[camera]\ntype = "synthetic"\n{camera}\n'
        '[publisher]\ntype = "stdout"\nevents = true\n'
    )


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    receiver = NotifySocket(str(tmp_path / "notify"))
    yield receiver
    receiver.close()


def _check_events(edged: EdgedProcess) -> None:
    for line in edged.lines:
        if line.get("type") == "event":
            event = {k: v for k, v in line.items() if k != "type"}
            jsonschema.validate(event, EVENT_SCHEMA)


def test_a_threshold_change_applies_from_the_next_result_and_run_id_and_seq_carry_on(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    config = write_config(tmp_path / "edged.toml", config_text())
    with EdgedProcess(config, env={"NOTIFY_SOCKET": notify_socket.address}) as edged:
        assert edged.wait_for(lambda: len(edged.results()) >= 10), edged.log_text()
        assert all(r["labels"] for r in edged.results())  # no threshold: the top 3 labels of every frame
        # quantized uint8 scores reach 255/256 at most, so 0.9999 keeps every label out
        write_config(config, config_text(model_extra="threshold = 0.9999"))
        before_us = time.monotonic_ns() // 1000
        edged.reload()
        assert edged.wait_for(lambda: bool(edged.events("config_reloaded"))), edged.log_text()
        reloaded = edged.events("config_reloaded")[0]
        assert edged.wait_for(lambda: len(edged.results_after(reloaded)) >= 10), edged.log_text()
        assert wait_until(lambda: notify_socket.count("READY=1") >= 2)  # the start's, and the reload's
        after_us = time.monotonic_ns() // 1000
        assert edged.stop() == 0
    assert reloaded["changed"] == ["model.threshold"] and reloaded["replaced"] == []
    assert all(r["labels"] == [] for r in edged.results_after(reloaded))
    results = edged.results()
    assert [r["seq"] for r in results] == list(range(len(results)))  # seq carries on, no gap, no restart
    assert len({r["run_id"] for r in results}) == 1
    assert len({r["model"]["sha256"] for r in results}) == 1  # the same bundle: nothing was reloaded but settings
    assert "configuration reloaded from" in edged.log_text() and "model.threshold" in edged.log_text()
    messages = notify_socket.drain()
    reloading = [i for i, m in enumerate(messages) if m.startswith("RELOADING=1\n")]
    assert len(reloading) == 1
    fields = dict(line.split("=", 1) for line in messages[reloading[0]].splitlines())
    assert before_us <= int(fields["MONOTONIC_USEC"]) <= after_us  # CLOCK_MONOTONIC, the clock systemd compares
    ready_after = [m for m in messages[reloading[0] + 1 :] if m.startswith("READY=1")]
    assert ready_after and "STATUS=streaming: shapes_classifier_quant on camera" in ready_after[0]
    _check_events(edged)


def test_an_invalid_file_is_refused_with_its_key_and_line_and_the_old_config_keeps_running(tmp_path: Path) -> None:
    config = write_config(tmp_path / "edged.toml", config_text())
    with EdgedProcess(config) as edged:
        assert edged.wait_for(lambda: len(edged.results()) >= 5), edged.log_text()
        bad = config_text(model_extra='threshold = "high"\ntop_k = 0')
        lines = bad.splitlines()
        threshold_line = lines.index('threshold = "high"') + 1
        write_config(config, bad)
        edged.reload()
        assert edged.wait_for(lambda: bool(edged.events("config_rejected"))), edged.log_text()
        rejected = edged.events("config_rejected")[0]
        assert edged.wait_for(lambda: len(edged.results_after(rejected)) >= 10)
        assert edged.stop() == 0
    assert sorted(rejected["problems"]) == [  # every problem at once, each with its line
        f"{config}:{threshold_line}: model.threshold: must be a number such as 0.5 (without quotes), not str 'high'",
        f"{config}:{threshold_line + 1}: model.top_k: Input should be greater than or equal to 1",
    ]
    log = edged.log_text()
    assert f"{config}:{threshold_line}: model.threshold" in log and "still running the previous configuration" in log
    assert not edged.events("config_reloaded")
    assert all(r["labels"] for r in edged.results_after(rejected))  # the old config (no threshold) still rules
    results = edged.results()
    assert [r["seq"] for r in results] == list(range(len(results)))
    _check_events(edged)


def test_a_camera_change_restarts_only_the_capture_side(tmp_path: Path) -> None:
    config = write_config(tmp_path / "edged.toml", config_text())
    with EdgedProcess(config) as edged:
        assert edged.wait_for(lambda: len(edged.results()) >= 5), edged.log_text()
        write_config(config, config_text(camera="width = 128\nheight = 80\nfps = 30\nseed = 3"))
        edged.reload()
        assert edged.wait_for(lambda: sum(r["source"]["width"] == 128 for r in edged.results()) >= 5)
        assert edged.stop() == 0
    reloaded = edged.events("config_reloaded")[0]
    assert reloaded["replaced"] == ["camera"]
    assert set(reloaded["changed"]) == {"camera.width", "camera.height", "camera.seed"}
    results = edged.results()
    sizes = [(r["source"]["width"], r["source"]["height"]) for r in results]
    switch = sizes.index((128, 80))
    assert switch > 0 and set(sizes[:switch]) == {(96, 96)} and set(sizes[switch:]) == {(128, 80)}
    assert [r["seq"] for r in results] == list(range(len(results)))  # inference went on: one worker, one seq
    assert len({r["run_id"] for r in results}) == 1
    assert len(edged.events("started")) == 1 and not edged.events("model_changed")


def test_a_model_change_is_a_hot_swap_that_loses_no_frame(tmp_path: Path) -> None:
    """A file-like source (realtime = false) waits for the model: every frame it makes must become a result."""
    camera = "width = 96\nheight = 96\nrealtime = false"
    config = write_config(tmp_path / "edged.toml", config_text(camera=camera))
    with EdgedProcess(config) as edged:
        assert edged.wait_for(lambda: len(edged.results()) >= 50), edged.log_text()
        write_config(config, config_text(camera=camera, model=CLASSIFIER_Q128))
        edged.reload()
        assert edged.wait_for(lambda: sum(r["model"]["name"] == "shapes_classifier_q128" for r in edged.results())
                              >= 50), edged.log_text()  # fmt: skip
        assert edged.stop() == 0
    results = edged.results()
    assert [r["source"]["frame_index"] for r in results] == list(range(len(results)))  # no frame lost
    assert [r["seq"] for r in results] == list(range(len(results)))
    names = [r["model"]["name"] for r in results]
    assert [name for name, _ in itertools.groupby(names)] == ["shapes_classifier_quant", "shapes_classifier_q128"]
    changed = edged.events("model_changed")
    assert len(changed) == 1 and changed[0]["reason"] == "reload: model.path changed"
    assert edged.events("config_reloaded")[0]["replaced"] == ["model"]
    _check_events(edged)


def test_a_model_file_replaced_in_place_is_swapped_on_reload(tmp_path: Path) -> None:
    model = tmp_path / "model.tflite"
    model.write_bytes(CLASSIFIER.read_bytes())
    config = write_config(tmp_path / "edged.toml", config_text(model=model))
    with EdgedProcess(config) as edged:
        assert edged.wait_for(lambda: len(edged.results()) >= 5), edged.log_text()
        temp = tmp_path / "model.tflite.new"
        temp.write_bytes(CLASSIFIER_Q128.read_bytes())
        temp.replace(model)  # the same path, new bytes
        edged.reload()
        assert edged.wait_for(lambda: bool(edged.events("config_reloaded"))), edged.log_text()
        assert edged.stop() == 0
    assert edged.events("model_changed")[0]["reason"] == f"reload: {model} changed on disk"
    assert edged.events("config_reloaded")[0] == {**edged.events("config_reloaded")[0], "changed": [],
                                                  "replaced": ["model"]}  # fmt: skip


def test_what_cannot_change_live_is_refused_with_the_reason(tmp_path: Path) -> None:
    config = write_config(tmp_path / "edged.toml", config_text())
    with EdgedProcess(config) as edged:
        assert edged.wait_for(lambda: len(edged.results()) >= 3), edged.log_text()
        write_config(config, config_text(device="other", model_extra="threshold = 0.9999"))
        edged.reload()
        assert edged.wait_for(lambda: bool(edged.events("config_rejected"))), edged.log_text()
        rejected = edged.events("config_rejected")[0]
        assert edged.wait_for(lambda: len(edged.results_after(rejected)) >= 5)
        assert edged.stop() == 0
    assert rejected["problems"] == [
        f"{config}:1: device_id: cannot change while edged runs (it names the device in MQTT topics and client ids, "
        "Home Assistant and rollout buckets); restart edged (systemctl restart edged) to change it"
    ]
    later = edged.results_after(rejected)
    assert all(r["device_id"] == "reload" and r["labels"] for r in later)  # nothing half-applied: not the threshold


def test_labels_the_model_does_not_have_are_refused_before_anything_changes(tmp_path: Path) -> None:
    config = write_config(tmp_path / "edged.toml", config_text())
    with EdgedProcess(config) as edged:
        assert edged.wait_for(lambda: len(edged.results()) >= 3), edged.log_text()
        text = config_text(model_extra='include_labels = ["zebra"]\ntop_k = 1')
        write_config(config, text)
        edged.reload()
        assert edged.wait_for(lambda: bool(edged.events("config_rejected"))), edged.log_text()
        rejected = edged.events("config_rejected")[0]
        assert edged.wait_for(lambda: len(edged.results_after(rejected)) >= 5)
        assert edged.stop() == 0
    line = text.splitlines().index('include_labels = ["zebra"]') + 1
    assert rejected["error"].startswith(f"{config}:{line}: model.include_labels: 'zebra' is not one of the model's")
    assert all(len(r["labels"]) == 3 for r in edged.results_after(rejected))  # top_k = 1 was not applied either
