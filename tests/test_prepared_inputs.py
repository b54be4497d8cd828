"""Inputs prepared ahead on the capture thread: used only by the bundle, frame size, colour order and ROI they
were made for; buffers never handed out while someone reads them; the pipeline's results identical to a plain
predict() of the same frame through model swaps and ROI changes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pipeline_support import RecordingPublisher, wait_until

from edged.app.daemon import Daemon
from edged.config import parse_config
from edged.config.app import AppConfig
from edged.config.model import ModelConfig
from edged.inference.engine import ModelBundle, decode_params
from edged.inference.loader import load_bundle
from edged.inference.preprocess import FULL_FRAME, InputPreparer, Roi
from edged.results import prediction_fields
from edged.sources.synthetic import SyntheticCamera, SyntheticSource
from edged.types import ImageArray

MODELS = Path(__file__).parent / "fixtures" / "models"
#: Same 96×96 input shape, different dtype / value table / resize mode: a tensor fed to the wrong one of these
#: would run without any error and give wrong answers, so only the results can tell.
DETECTORS = [
    "shapes_ssd.tflite",
    "shapes_yolov8_int8.tflite",
    "shapes_yolov5.tflite",
    "shapes_mediapipe_detector.tflite",
]


def _bundle(name: str, label: str | None = None) -> ModelBundle:
    return load_bundle(ModelConfig(path=MODELS / name, name=label, num_threads=1))


def _frames(width: int, height: int, count: int, seed: int = 5) -> list[ImageArray]:
    source = SyntheticSource(SyntheticCamera(type="synthetic", width=width, height=height, shapes=3, seed=seed,
                                             realtime=False))  # fmt: skip
    source.open()
    frames = []
    for _ in range(count):
        frame = source.read()
        assert frame is not None
        frames.append(frame.image)
    return frames


def _same(a: Any, b: Any) -> bool:
    return bool(a.labels == b.labels and a.objects == b.objects)


def test_a_prepared_input_gives_exactly_the_prediction_of_preprocessing_in_line() -> None:
    bundle = _bundle("shapes_yolov8_int8.tflite")
    image = _frames(160, 120, 1)[0]
    roi = Roi(0.1, 0.0, 0.9, 1.0)
    prepared = InputPreparer().prepare(bundle.recipe, image, "bgr", roi)
    ahead = bundle.predict(image, "bgr", roi=roi, prepared=prepared)
    inline = bundle.predict(image, "bgr", roi=roi)
    assert ahead.objects and _same(ahead, inline)
    assert ahead.timing_ms["preprocess"] >= prepared.preprocess_ms  # the preparer's time is reported, plus the copy
    preparer = InputPreparer()
    first = preparer.prepare(bundle.recipe, image, "bgr", roi)
    bundle.predict(image, "bgr", roi=roi, prepared=first)
    assert preparer.prepare(bundle.recipe, image, "bgr", roi).buffer is first.buffer  # given back once copied


@pytest.mark.parametrize("change", ["another bundle", "another ROI", "another frame size", "another colour order"])
def test_a_prepared_input_made_for_something_else_is_never_fed(change: str) -> None:
    made_for, used_by = _bundle("shapes_ssd.tflite"), _bundle("shapes_yolov8_int8.tflite")
    small, large = _frames(160, 120, 1)[0], _frames(200, 100, 1)[0]
    image, color, roi = small, "bgr", FULL_FRAME
    if change != "another bundle":
        made_for = used_by
    prepared = InputPreparer().prepare(made_for.recipe, small, "bgr", FULL_FRAME)
    if change == "another ROI":
        roi = Roi(0.5, 0.0, 1.0, 1.0)
    elif change == "another frame size":
        image = large
    elif change == "another colour order":
        color = "rgb"
    before = prepared.buffer.copy()
    result = used_by.predict(image, color, roi=roi, prepared=prepared)  # type: ignore[arg-type]
    assert not prepared.matches(used_by.recipe, (image.shape[1], image.shape[0], color, roi))  # type: ignore[arg-type]
    assert _same(result, used_by.predict(image, color, roi=roi))  # type: ignore[arg-type]
    assert np.array_equal(prepared.buffer, before)  # and the prepared buffer was only read, never written


def test_buffers_come_back_only_when_released_and_only_once() -> None:
    bundle = _bundle("shapes_classifier_quant.tflite")
    image = _frames(96, 96, 1)[0]
    preparer = InputPreparer()
    first = preparer.prepare(bundle.recipe, image, "bgr", FULL_FRAME)
    second = preparer.prepare(bundle.recipe, image, "bgr", FULL_FRAME)
    assert first.buffer is not second.buffer  # the first is still held: never written again meanwhile
    first.release()
    first.release()  # idempotent: a buffer is never in the pool twice
    third = preparer.prepare(bundle.recipe, image, "bgr", FULL_FRAME)
    fourth = preparer.prepare(bundle.recipe, image, "bgr", FULL_FRAME)
    assert third.buffer is first.buffer and fourth.buffer is not first.buffer
    other = preparer.prepare(_bundle("shapes_ssd.tflite").recipe, image, "bgr", FULL_FRAME)
    assert other.buffer.shape == (96, 96, 3) and other.buffer is not third.buffer  # a new model: its own buffers


def _config(model: str, camera: str, extra: str = "") -> AppConfig:
    return parse_config(
        f'device_id = "prep"\n[model]\npath = "{MODELS / model}"\nnum_threads = 1\n[camera]\n{camera}\n{extra}'
    )


def _expected(bundle: ModelBundle, config: AppConfig, image: ImageArray, roi: Roi) -> dict[str, Any]:
    params = decode_params(bundle.spec, config.model)  # the thresholds the daemon uses: its config's
    prediction = bundle.predict(image, "bgr", roi=roi, params=params)
    return prediction_fields(prediction, image.shape[1], image.shape[0])


def _observed(result: dict[str, Any]) -> dict[str, Any]:
    return {key: result[key] for key in ("task", "labels", "objects")}


def test_model_swaps_between_same_shaped_models_never_feed_a_wrong_tensor() -> None:
    frames = 160
    names = [DETECTORS[i % len(DETECTORS)] for i in range(6)]
    bundles = [_bundle(name, f"m{i}") for i, name in enumerate(names)]
    camera = f'type = "synthetic"\nwidth = 160\nheight = 120\nshapes = 3\nseed = 5\nrealtime = false\nframes = {frames}'
    config = _config(names[0], camera)
    publisher = RecordingPublisher()
    daemon = Daemon(config, publisher=publisher, bundle=bundles[0])

    def swap_while_frames_flow() -> None:
        for number, bundle in enumerate(bundles[1:], start=1):
            publisher.wait_for(lambda n=number: len(publisher.results) >= n * 25)  # type: ignore[misc]
            daemon.models.activate(bundle, f"test swap {number}")  # type: ignore[union-attr]

    swapper = threading.Thread(target=swap_while_frames_flow)
    swapper.start()
    assert daemon.run(handle_signals=False) == 0
    swapper.join(30)
    results = publisher.results
    assert [r["source"]["frame_index"] for r in results] == list(range(frames))  # every frame, none lost
    assert daemon.stats_counters.totals["inference_failures"] == 0
    assert len({r["model"]["name"] for r in results}) == len(names)  # each model ran
    images = _frames(160, 120, frames)
    fresh = {f"m{i}": _bundle(name) for i, name in enumerate(names)}  # the same models, never prepared for
    for result in results:
        expected = _expected(fresh[result["model"]["name"]], config, images[result["source"]["frame_index"]],
                             FULL_FRAME)  # fmt: skip
        assert _observed(result) == expected, f"frame {result['source']['frame_index']} by {result['model']['name']}"
    assert any(r["objects"] for r in results)


class _ChangeAt(RecordingPublisher):
    """On the inference thread, after result `at`: waits until the capture side has prepared the next frame with
    the old settings (the frame after it is captured, so that one waits in the mailbox), then applies `change`."""

    def __init__(self, at: int, change: Callable[[], None], captured: Callable[[], int]) -> None:
        super().__init__()
        self.at, self.change, self.captured = at, change, captured

    def publish_result(self, result: dict[str, Any]) -> None:
        super().publish_result(result)
        if result["seq"] == self.at:
            assert wait_until(lambda: self.captured() >= self.at + 3)
            self.change()


def test_a_roi_change_while_every_frame_is_inferred_applies_from_the_next_frame() -> None:
    frames, at = 120, 40
    camera = f'type = "synthetic"\nwidth = 160\nheight = 120\nshapes = 3\nseed = 5\nrealtime = false\nframes = {frames}'
    model = "shapes_yolov8_int8.tflite"
    config = _config(model, camera)
    new_roi = Roi(0.25, 0.0, 1.0, 0.8)
    changed = _config(model, camera, "[pipeline]\nroi = [0.25, 0.0, 1.0, 0.8]")
    daemon: Daemon | None = None

    def change() -> None:
        assert daemon is not None
        daemon.apply_settings(changed)

    publisher = _ChangeAt(at, change, lambda: daemon.stats_counters.totals["captured"] if daemon else 0)
    daemon = Daemon(config, publisher=publisher)
    assert daemon.run(handle_signals=False) == 0
    results = publisher.results
    assert [r["source"]["frame_index"] for r in results] == list(range(frames))
    images = _frames(160, 120, frames)
    bundle = _bundle(model)
    differ = 0
    for result in results:
        index = result["source"]["frame_index"]
        roi = FULL_FRAME if index <= at else new_roi  # frame at+1 was prepared with the old ROI: recomputed
        assert _observed(result) == _expected(bundle, config, images[index], roi), f"frame {index}"
        differ += _expected(bundle, config, images[index], FULL_FRAME) != _expected(bundle, config, images[index],
                                                                                   new_roi)  # fmt: skip
    assert differ > frames // 2  # the two ROIs give different answers, so a tensor of the wrong one would show
