"""The project's own fixture models, through edged's whole inference path, on freshly drawn scenes.

Real predictions, not smoke: a red square is labelled as one, and a detector's box lands where it was drawn.
Scenes come from `edged.sources.shapes` with fixed seeds, so the expectations are reproducible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edged.config.model import ModelConfig
from edged.inference.engine import ModelBundle
from edged.inference.loader import load_bundle
from edged.sources.shapes import SHAPE_CLASSES, Shape, draw_scene, random_shapes
from edged.types import BBox

MODELS = Path(__file__).parent / "fixtures" / "models"
CLASSIFIERS = ["shapes_classifier_quant.tflite", "teachable/model_unquant.tflite"]
DETECTORS = ["shapes_ssd.tflite", "shapes_yolov8_int8.tflite", "shapes_yolov5.tflite"]


def bundle(name: str) -> ModelBundle:
    return load_bundle(ModelConfig(path=MODELS / name, num_threads=1))


def test_fixture_files_are_committed_with_their_labels() -> None:
    for name in [*CLASSIFIERS, *DETECTORS]:
        assert (MODELS / name).stat().st_size < 400_000, f"{name} is too big to commit"
    for name in [*CLASSIFIERS, *DETECTORS]:
        assert bundle(name).spec.labels.names == SHAPE_CLASSES, name


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_labels_a_red_square_as_one(name: str) -> None:
    rng = np.random.default_rng(7)
    image = draw_scene(rng, 240, 240, [Shape("red_square", 0.4, 0.55, 0.2)])
    top = bundle(name).predict(image, "bgr").labels[0]
    assert top.label == "red_square" and top.score > 0.5


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_accuracy_on_fresh_scenes(name: str) -> None:
    model = bundle(name)
    rng = np.random.default_rng(2026)
    correct = 0
    for _ in range(60):
        (shape,) = random_shapes(rng, 1)
        image = draw_scene(rng, 320, 240, [shape])
        correct += model.predict(image, "bgr").labels[0].label == shape.kind
    assert correct >= 54, f"{correct}/60 correct"


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_boxes_the_red_square_where_it_was_drawn(name: str) -> None:
    rng = np.random.default_rng(11)
    drawn = Shape("red_square", 0.3, 0.6, 0.15)
    image = draw_scene(rng, 400, 300, [drawn])
    objects = bundle(name).predict(image, "bgr").objects
    squares = [obj for obj in objects if obj.label == "red_square"]
    assert len(squares) == 1, objects
    assert squares[0].box.iou(drawn.box) > 0.6, (squares[0].box, drawn.box)
    assert len(objects) == 1, objects


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_recall_and_precision_on_fresh_scenes(name: str) -> None:
    model = bundle(name)
    rng = np.random.default_rng(99)
    shapes_total = found = false_positives = 0
    for _ in range(40):
        truth = random_shapes(rng, int(rng.integers(1, 4)))
        image = draw_scene(rng, 320, 240, truth)
        objects = list(model.predict(image, "bgr").objects)
        shapes_total += len(truth)
        for shape in truth:
            match = _best_match(shape.box, shape.kind, objects)
            if match is not None:
                found += 1
                objects.remove(match)
        false_positives += len(objects)
    assert found / shapes_total >= 0.85, f"found {found}/{shapes_total}"
    assert false_positives / 40 <= 0.25, f"{false_positives} false positives in 40 scenes"


def _best_match(box: BBox, kind: str, objects: list) -> object | None:  # type: ignore[type-arg]
    matches = [obj for obj in objects if obj.label == kind and obj.box.iou(box) >= 0.5]
    return max(matches, key=lambda obj: obj.box.iou(box)) if matches else None


def test_letterbox_is_undone_for_a_wide_frame() -> None:
    rng = np.random.default_rng(5)
    drawn = Shape("blue_triangle", 0.75, 0.5, 0.15)
    image = draw_scene(rng, 640, 360, [drawn])  # 16:9: a quarter of the 96×96 input is padding
    (obj,) = bundle("shapes_yolov8_int8.tflite").predict(image, "bgr").objects
    assert obj.label == "blue_triangle" and obj.box.iou(drawn.box) > 0.5


def test_roi_boxes_are_reported_in_whole_frame_coordinates() -> None:
    from edged.inference.preprocess import Roi

    rng = np.random.default_rng(8)
    drawn = Shape("green_circle", 0.75, 0.5, 0.1)
    decoy = Shape("red_square", 0.2, 0.5, 0.1)
    image = draw_scene(rng, 400, 400, [drawn, decoy])
    model = load_bundle(ModelConfig(path=MODELS / "shapes_yolov8_int8.tflite"), roi=Roi(0.5, 0.0, 1.0, 1.0))
    (obj,) = model.predict(image, "bgr").objects
    assert obj.label == "green_circle" and obj.box.iou(drawn.box) > 0.5
