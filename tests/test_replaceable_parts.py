"""Parts replaced while frames keep flowing: the model (hot swap), the camera, the publisher, live settings."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_support import BackgroundDaemon, RecordingPublisher
from support.broker import Collector, Mosquitto, broker_for_tests, free_port

from edged.app.daemon import Daemon
from edged.config import parse_config
from edged.config.model import ModelConfig
from edged.inference.loader import load_bundle
from edged.publish.base import create_publisher
from edged.publish.mqtt.config import MqttPublisherConfig
from edged.sources.synthetic import SyntheticCamera

MODELS = Path(__file__).parent / "fixtures" / "models"
CLASSIFIER = MODELS / "shapes_classifier_quant.tflite"
DETECTOR = MODELS / "shapes_yolov8_int8.tflite"


def config_text(camera: str, model: Path = CLASSIFIER, extra: str = "") -> str:
    return f'device_id = "swap"\n[model]\npath = "{model}"\nnum_threads = 1\n[camera]\n{camera}\n{extra}'


def test_a_model_swap_under_load_loses_no_frame_and_never_uses_a_closed_bundle() -> None:
    frames = 360
    bundles = [load_bundle(ModelConfig(path=CLASSIFIER, name=f"m{i}", num_threads=1)) for i in range(7)]
    camera = f'type = "synthetic"\nwidth = 96\nheight = 96\nrealtime = false\nframes = {frames}'
    publisher = RecordingPublisher()
    daemon = Daemon(parse_config(config_text(camera)), publisher=publisher, bundle=bundles[0])
    swapped = threading.Event()

    def swap_while_frames_flow() -> None:
        for number, bundle in enumerate(bundles[1:], start=1):
            publisher.wait_for(lambda n=number: len(publisher.results) >= n * 40)  # type: ignore[misc]
            daemon.models.activate(bundle, f"test swap {number}")  # type: ignore[union-attr]
        swapped.set()

    swapper = threading.Thread(target=swap_while_frames_flow)
    swapper.start()
    assert daemon.run(handle_signals=False) == 0
    swapper.join(30)
    assert swapped.is_set()
    results = publisher.results
    assert [r["seq"] for r in results] == list(range(frames))  # back-pressure: every frame became a result
    assert [r["source"]["frame_index"] for r in results] == list(range(frames))
    assert daemon.stats_counters.totals["inference_failures"] == 0  # a closed bundle would have failed a frame
    names = [r["model"]["name"] for r in results]
    switches = [names[0]] + [b for a, b in itertools.pairwise(names) if a != b]
    assert switches == [f"m{i}" for i in range(7)]  # each swap took effect once, on a frame boundary
    assert all(bundle.closed for bundle in bundles[:-1])  # the replaced bundles were released...
    changes = [e for e in publisher.events if e["event"] == "model_changed"]
    assert [e["model"]["name"] for e in changes] == [f"m{i}" for i in range(1, 7)]
    assert daemon.inference is not None and daemon.inference.last is not None
    assert not hasattr(daemon.inference.last, "bundle")  # ...and nothing keeps them alive


def test_the_camera_is_replaced_while_inference_goes_on() -> None:
    camera = 'type = "synthetic"\nwidth = 96\nheight = 96\nfps = 30'
    publisher = RecordingPublisher()
    with BackgroundDaemon(parse_config(config_text(camera)), publisher) as running:
        daemon = running.daemon
        assert publisher.wait_for(lambda: len(publisher.results) >= 5)
        inference_thread = daemon._inference_thread
        daemon.restart_capture(SyntheticCamera(type="synthetic", width=128, height=80, fps=30, seed=3))
        assert publisher.wait_for(lambda: sum(r["source"]["width"] == 128 for r in publisher.results) >= 5)
        assert daemon._inference_thread is inference_thread and daemon.inference_alive()
    results = publisher.results
    assert [r["seq"] for r in results] == list(range(len(results)))
    assert len({r["run_id"] for r in results}) == 1
    sizes = [(r["source"]["width"], r["source"]["height"]) for r in results]
    assert sizes.index((128, 80)) > 0 and set(sizes[sizes.index((128, 80)) :]) == {(128, 80)}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with broker_for_tests(tmp_path / "broker") as running:
        yield running


def test_a_new_broker_gets_the_results_the_old_one_never_received(broker: Mosquitto) -> None:
    unreachable = free_port()  # nothing listens here: results wait in the publisher's buffer
    camera = 'type = "synthetic"\nwidth = 96\nheight = 96\nfps = 20'
    publisher_table = f'[publisher]\ntype = "mqtt"\nhost = "127.0.0.1"\nport = {unreachable}\nhomeassistant = false\n'
    config = parse_config(config_text(camera, extra=publisher_table))
    topic = "edged/swap/results"
    with Collector(broker.port, [topic], client_id="swap-collector") as collector:
        daemon = Daemon(config)
        runner = threading.Thread(target=lambda: daemon.run(handle_signals=False))
        runner.start()
        try:
            assert _wait(lambda: daemon.inference is not None and daemon.inference.seq >= 20)
            new = create_publisher(MqttPublisherConfig(type="mqtt", host=broker.host, port=broker.port,
                                                       homeassistant=False), "swap")  # fmt: skip
            moved = daemon.swap_publisher(new)
            assert moved >= 20
            assert collector.wait_for(lambda ms: len(ms) >= moved + 10)
        finally:
            daemon.request_stop()
            runner.join(60)
        seqs = [m.json()["seq"] for m in collector.on(topic)]
    assert seqs[: moved + 10] == list(range(moved + 10))  # the backlog first, in order, then the new results


def test_live_settings_apply_from_the_next_frame() -> None:
    camera = 'type = "synthetic"\nwidth = 128\nheight = 128\nfps = 30\nshapes = 3'
    text = config_text(camera, DETECTOR)
    publisher = RecordingPublisher()
    with BackgroundDaemon(parse_config(text), publisher) as running:
        daemon = running.daemon
        assert publisher.wait_for(lambda: sum(bool(r["objects"]) for r in publisher.results) >= 3)
        applied_at = daemon.inference.seq if daemon.inference else 0
        daemon.apply_settings(parse_config(text.replace("num_threads = 1", "num_threads = 1\nthreshold = 0.9999")))
        assert publisher.wait_for(lambda: len(publisher.results) >= applied_at + 10)
    later = [r for r in publisher.results if r["seq"] > applied_at]
    assert later and all(r["objects"] == [] for r in later)  # the new threshold, without a new bundle
    assert {r["model"]["sha256"] for r in publisher.results} == {publisher.results[0]["model"]["sha256"]}


def _wait(predicate: object, timeout: float = 60.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(predicate())  # type: ignore[operator]
