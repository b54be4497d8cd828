"""Issue 10's fixtures through edged's whole inference path: real predictions, and the choices explained.

- quantized inputs calibrated on [0, 1] (scale 1/255, zero point 0) and on [-1, 1] (1/128, 128) take raw pixels,
  whatever the metadata says;
- an Ultralytics export copied alone keeps its class names (metadata.json embedded in the .tflite);
- a MediaPipe Model Maker detector (raw boxes + scores, anchors in DETECTOR_METADATA) is decoded;
- an Ultralytics nms=True export ([1, 300, 6]: x1, y1, x2, y2, score, class) is decoded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edged.config.model import ModelConfig
from edged.errors import ModelError
from edged.inference.engine import ModelBundle
from edged.inference.loader import load_bundle
from edged.sources.shapes import SHAPE_CLASSES, Shape, draw_scene, random_shapes
from edged.types import BBox, Detection

MODELS = Path(__file__).parent / "fixtures" / "models"
QUANT_CLASSIFIERS = ["teachable_quant/model.tflite", "shapes_classifier_q255.tflite", "shapes_classifier_q128.tflite"]
NEW_DETECTORS = ["shapes_yolov8_embedded.tflite", "shapes_yolov8_nms.tflite", "shapes_mediapipe_detector.tflite"]


def bundle(name: str, **options: Any) -> ModelBundle:
    return load_bundle(ModelConfig(path=MODELS / name, num_threads=1, **options))


def classifier_accuracy(model: ModelBundle, scenes: int = 60) -> int:
    rng = np.random.default_rng(2026)
    correct = 0
    for _ in range(scenes):
        (shape,) = random_shapes(rng, 1)
        correct += model.predict(draw_scene(rng, 320, 240, [shape]), "bgr").labels[0].label == shape.kind
    return correct


@pytest.mark.parametrize("name", QUANT_CLASSIFIERS)
def test_quantized_inputs_take_raw_pixels_and_label_right(name: str) -> None:
    model = bundle(name)
    decision = model.spec.decision("normalization")
    assert decision is not None and decision.origin == "quantization", decision
    assert model.spec.labels.names == SHAPE_CLASSES
    top = model.predict(draw_scene(np.random.default_rng(7), 240, 240, [Shape("red_square", 0.4, 0.55, 0.2)])).labels[0]
    assert top.label == "red_square" and top.score > 0.5
    assert classifier_accuracy(model) >= 57


def input_tensor_after(model: ModelBundle, image: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    model.predict(image, "rgb")
    return np.asarray(model.interpreter.get_tensor(model.spec.input.index)[0])


def test_a_unit_calibrated_input_gets_the_raw_pixels_not_the_old_signed_default() -> None:
    """The pixels an input calibrated on [0, 1] (scale 1/255, zero point 0) must see are the raw pixels;
    the old default ([-1, 1], then quantized) turned every pixel below 128 into 0."""
    pixels = np.arange(64 * 64 * 3, dtype=np.int64).reshape(64, 64, 3) % 256
    image = pixels.astype(np.uint8)  # at the input size: no resampling, the tensor is the pixel mapping alone
    derived = input_tensor_after(bundle("teachable_quant/model.tflite"), image)
    assert np.array_equal(derived, image)
    old = input_tensor_after(bundle("teachable_quant/model.tflite", normalization="signed"), image)
    assert np.all(old[image < 128] == 0) and np.count_nonzero(image < 128) > 5000


def test_metadata_that_contradicts_the_quantization_is_reported_and_not_followed() -> None:
    model = bundle("shapes_classifier_q255.tflite")
    (note,) = [n for n in model.spec.notes if n.startswith("normalization:")]
    assert "mean [127.5] std [127.5] ([-1, 1])" in note and "covers [0, 1]" in note and "model.mean" in note
    assert model.spec.input.scale == pytest.approx(1 / 255) and model.spec.input.zero_point == 0
    image = (np.arange(64 * 64 * 3).reshape(64, 64, 3) % 256).astype(np.uint8)
    assert np.array_equal(input_tensor_after(model, image), image)
    assert classifier_accuracy(model) >= 57


def test_consistent_metadata_gets_no_note_and_1_128_is_raw_pixels() -> None:
    model = bundle("shapes_classifier_q128.tflite")
    assert (model.spec.input.scale, model.spec.input.zero_point) == (pytest.approx(1 / 128), 128)
    assert not [n for n in model.spec.notes if n.startswith("normalization:")]
    assert model.recipe.table is None  # pixel p is written as p: no lookup table at all


def test_configured_normalization_always_wins() -> None:
    model = bundle("teachable_quant/model.tflite", mean=[127.5], std=[127.5])
    decision = model.spec.decision("normalization")
    assert decision is not None and (decision.origin, decision.value) == ("config", "[-1, 1]")


def _boxes_where_drawn(model: ModelBundle) -> None:
    rng = np.random.default_rng(11)
    drawn = Shape("red_square", 0.3, 0.6, 0.15)
    objects = model.predict(draw_scene(rng, 400, 300, [drawn]), "bgr").objects
    assert [o.label for o in objects] == ["red_square"], objects
    assert objects[0].box.iou(drawn.box) > 0.6, (objects[0].box, drawn.box)


def _recall_and_precision(model: ModelBundle) -> tuple[float, int]:
    rng = np.random.default_rng(99)
    total = found = false_positives = 0
    for _ in range(40):
        truth = random_shapes(rng, int(rng.integers(1, 4)))
        objects = list(model.predict(draw_scene(rng, 320, 240, truth), "bgr").objects)
        total += len(truth)
        for shape in truth:
            match = _best_match(shape.box, shape.kind, objects)
            if match is not None:
                found += 1
                objects.remove(match)
        false_positives += len(objects)
    return found / total, false_positives


def _best_match(box: BBox, kind: str, objects: list[Detection]) -> Detection | None:
    matches = [obj for obj in objects if obj.label == kind and obj.box.iou(box) >= 0.5]
    return max(matches, key=lambda obj: obj.box.iou(box)) if matches else None


@pytest.mark.parametrize("name", NEW_DETECTORS)
def test_new_detector_layouts_box_the_shapes(name: str) -> None:
    model = bundle(name)
    _boxes_where_drawn(model)
    recall, false_positives = _recall_and_precision(model)
    assert recall >= 0.85 and false_positives <= 10, (recall, false_positives)


def test_ultralytics_export_copied_alone_keeps_its_names(tmp_path: Path) -> None:
    lonely = tmp_path / "best.tflite"
    shutil.copyfile(MODELS / "shapes_yolov8_embedded.tflite", lonely)
    model = load_bundle(ModelConfig(path=lonely, num_threads=1))
    assert model.spec.labels.names == SHAPE_CLASSES
    assert model.spec.labels.origin == f"model metadata: metadata.json embedded in {lonely.name}"
    _boxes_where_drawn(model)


def test_nms_export_is_end_to_end_and_letterboxed(tmp_path: Path) -> None:
    lonely = tmp_path / "yolo_nms.tflite"
    shutil.copyfile(MODELS / "shapes_yolov8_nms.tflite", lonely)
    model = load_bundle(ModelConfig(path=lonely, num_threads=1))
    assert model.spec.decoder == "yolo_e2e" and model.spec.resize == "letterbox"
    assert model.spec.outputs[0].shape == (1, 300, 6)
    drawn = Shape("blue_triangle", 0.75, 0.5, 0.15)
    (obj,) = model.predict(draw_scene(np.random.default_rng(5), 640, 360, [drawn]), "bgr").objects
    assert obj.label == "blue_triangle" and obj.box.iou(drawn.box) > 0.5


def test_mediapipe_detector_never_reports_its_background() -> None:
    model = bundle("shapes_mediapipe_detector.tflite", threshold=0.0, max_detections=200)
    assert model.spec.decoder == "ssd_anchors" and model.spec.background_class == 0
    assert model.spec.labels.names[0] == "background" and model.spec.num_classes == 4
    objects = model.predict(draw_scene(np.random.default_rng(3), 300, 300, [])).objects
    assert objects and all(o.index != 0 and o.label != "background" for o in objects)


def inspect_json(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "edged", "model", "inspect", "--json", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


EXPECTED_DECISIONS = {
    "teachable_quant/model.tflite": ("quantization", "stretch", "sidecar"),
    "shapes_classifier_q255.tflite": ("quantization", "stretch", "metadata"),
    "shapes_classifier_q128.tflite": ("quantization", "stretch", "metadata"),
    "shapes_classifier_quant.tflite": ("quantization", "stretch", "metadata"),
    "teachable/model_unquant.tflite": ("default", "stretch", "sidecar"),
    "shapes_ssd.tflite": ("quantization", "stretch", "sidecar"),
    "shapes_yolov8_int8.tflite": ("quantization", "letterbox", "sidecar"),
    "shapes_yolov5.tflite": ("default", "letterbox", "sidecar"),
    "shapes_yolov8_embedded.tflite": ("quantization", "letterbox", "metadata"),
    "shapes_yolov8_nms.tflite": ("default", "letterbox", "metadata"),
    "shapes_mediapipe_detector.tflite": ("quantization", "stretch", "metadata"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_DECISIONS))
def test_inspect_says_what_it_chose_and_where_it_came_from(name: str) -> None:
    decisions = inspect_json(MODELS / name)["decisions"]
    got = tuple(decisions[key]["origin"] for key in ("normalization", "resize", "labels"))
    norm, resize, labels = EXPECTED_DECISIONS[name]
    assert got == (norm, "default", labels), decisions
    assert decisions["resize"]["value"] == resize
    assert all(decisions[key]["reason"] for key in decisions)


def test_inspect_lists_where_it_looked_when_no_labels_are_found(tmp_path: Path) -> None:
    lonely = tmp_path / "detector.tflite"
    shutil.copyfile(MODELS / "shapes_yolov5.tflite", lonely)
    report = inspect_json(lonely)
    looked = report["labels"]["looked"]
    assert report["decisions"]["labels"]["origin"] == "none"
    assert looked[0].startswith("model.labels / --labels: not set")
    assert "carries no associated files" in looked[1]
    assert str(tmp_path) in looked[2] and "detector_labels.txt" in looked[2] and "labels.txt" in looked[2]
    human = subprocess.run(
        [sys.executable, "-m", "edged", "model", "inspect", str(lonely)], capture_output=True, text=True
    ).stdout
    assert "no label names found; looked in:" in human and "decided:" in human


def test_yolo_e2e_can_be_set_and_a_misfit_is_refused_with_what_auto_picks(tmp_path: Path) -> None:
    """model.decoder = "yolo_e2e" is the escape hatch for a one-class end-to-end export without its metadata."""
    forced = load_bundle(ModelConfig(path=MODELS / "shapes_yolov8_nms.tflite", decoder="yolo_e2e", num_threads=1))
    assert forced.spec.decoder == "yolo_e2e" and forced.spec.resize == "letterbox"
    drawn = Shape("red_square", 0.4, 0.5, 0.2)
    (obj,) = forced.predict(draw_scene(np.random.default_rng(9), 640, 360, [drawn]), "bgr").objects
    assert obj.label == "red_square" and obj.box.iou(drawn.box) > 0.5
    with pytest.raises(ModelError, match=r"yolo_e2e decoder reads one output \[1, K, 6\].*`auto` would pick 'yolov8'"):
        load_bundle(ModelConfig(path=MODELS / "shapes_yolov8_int8.tflite", decoder="yolo_e2e", num_threads=1))
