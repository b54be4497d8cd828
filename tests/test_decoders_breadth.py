"""The decoders and choices of issue 10 on hand-made arrays and tensors: known inputs, known answers."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edged.inference import decoders
from edged.inference.label_sources import ultralytics_metadata
from edged.inference.labels import parse_labels
from edged.inference.loader import read_model_file
from edged.inference.model import TensorInfo
from edged.inference.normalization import pixel_calibration, quantized_range, raw_pixels
from edged.inference.preprocess import value_table

MODELS = Path(__file__).parent / "fixtures" / "models"
NO_THRESHOLD = np.zeros(3, np.float32)


def tensor(dtype: str, scale: float, zero_point: int) -> TensorInfo:
    return TensorInfo("input", 0, (1, 8, 8, 3), dtype, scale, zero_point)


@pytest.mark.parametrize(
    ("dtype", "scale", "zero_point", "expected"),
    [
        ("uint8", 1 / 255, 0, "[0, 1]"),  # Teachable Machine quantized, TF2 OD API FPNLite
        ("uint8", 1 / 128, 128, "[-1, 1]"),  # Coral MobileNets, TF OD API SSD
        ("uint8", 1 / 127.5, 127, "[-1, 1]"),
        ("int8", 1 / 255, -128, "[0, 1]"),  # Ultralytics-style int8 calibrated on pixel / 255
        ("int8", 0.0186584, -14, None),  # yolov8n_full_int8: [-2.13, 2.63] is no pixel range
        ("float32", 0.0, 0, None),
    ],
)
def test_pixel_calibration_of_quantized_inputs(dtype: str, scale: float, zero_point: int, expected: str) -> None:
    assert pixel_calibration(tensor(dtype, scale, zero_point)) == expected


@pytest.mark.parametrize(("dtype", "scale", "zero_point"), [("uint8", 1 / 255, 0), ("uint8", 1 / 128, 128),
                                                            ("int8", 1 / 255, -128)])  # fmt: skip
def test_raw_pixels_normalization_writes_pixel_p_as_p_plus_qmin(dtype: str, scale: float, zero_point: int) -> None:
    info = tensor(dtype, scale, zero_point)
    table = value_table(raw_pixels(info), dtype, scale, zero_point)
    pixels = np.arange(256)
    if table is None:  # uint8: pixels go in unchanged, no table at all
        assert dtype == "uint8"
        return
    written = table.reshape(256, -1)[:, 0].astype(int)
    assert np.array_equal(written, pixels + np.iinfo(np.dtype(dtype)).min)
    low, high = quantized_range(info) or (0.0, 0.0)
    assert low == pytest.approx(0.0) and high == pytest.approx(1.0)


def test_e2e_rows_are_xyxy_score_class_and_padding_is_ignored() -> None:
    rows = np.zeros((300, 6), np.float32)
    rows[0] = [0.1, 0.2, 0.4, 0.6, 0.9, 2]
    rows[1] = [0.5, 0.5, 0.7, 0.9, 0.3, 0]
    thresholds = np.full(3, 0.5, np.float32)
    found = decoders.decode_yolo_e2e(rows, 0.0, 0, thresholds, (96, 96))
    assert found.classes.tolist() == [2] and found.scores.tolist() == [pytest.approx(0.9)]
    assert found.boxes[0].tolist() == pytest.approx([0.1, 0.2, 0.4, 0.6])


def test_e2e_boxes_in_input_pixels_are_normalized() -> None:
    rows = np.zeros((10, 6), np.float32)
    rows[0] = [64, 128, 320, 640, 0.8, 1]
    found = decoders.decode_yolo_e2e(rows, 0.0, 0, np.full(2, 0.5, np.float32), (640, 640))
    assert found.boxes[0].tolist() == pytest.approx([0.1, 0.2, 0.5, 1.0])


def test_e2e_quantized_rows_are_thresholded_then_dequantized() -> None:
    scale, zero_point = 1 / 100, -100  # int8 value q means (q + 100) / 100
    rows = np.full((4, 6), -100, np.int8)
    rows[0] = [-90, -80, -50, -40, -10, 0]  # 0.1 0.2 0.5 0.6, score 0.9, class 1
    rows[1] = [-90, -80, -50, -40, -60, -100]  # score 0.4: below 0.5
    found = decoders.decode_yolo_e2e(rows, scale, zero_point, np.full(2, 0.5, np.float32), (96, 96))
    assert found.classes.tolist() == [1] and found.scores[0] == pytest.approx(0.9)
    assert found.boxes[0].tolist() == pytest.approx([0.1, 0.2, 0.5, 0.6])


ANCHORS = np.array([[0.5, 0.5, 0.2, 0.4], [0.25, 0.75, 0.1, 0.1]], np.float32)  # (yc, xc, h, w)


def test_ssd_anchors_box_coder_and_exponential_sizes() -> None:
    coder = decoders.BoxCoder(10.0, 10.0, 5.0, 5.0, exponential=True)
    boxes = np.array([[1.0, -2.0, 5 * math.log(2.0), 0.0], [0, 0, 0, 0]], np.float32)  # ty tx th tw
    scores = np.array([[0.0, 0.9, 0.1], [0.0, 0.2, 0.3]], np.float32)
    found = decoders.decode_ssd_anchors(
        boxes, (0.0, 0), scores, (0.0, 0), ANCHORS, coder, False, np.full(3, 0.5, np.float32), background=0
    )
    # yc = 0.1 * 0.2 + 0.5 = 0.52; xc = -0.2 * 0.4 + 0.5 = 0.42; h = 2 * 0.2 = 0.4; w = 0.4
    assert found.classes.tolist() == [1] and found.scores[0] == pytest.approx(0.9)
    assert found.boxes[0].tolist() == pytest.approx([0.22, 0.32, 0.62, 0.72])


def test_ssd_anchors_linear_sizes_and_sigmoid_scores() -> None:
    coder = decoders.BoxCoder(1.0, 1.0, 1.0, 1.0, exponential=False)
    boxes = np.array([[0, 0, 1.0, 1.0], [0, 0, 2.0, 2.0]], np.float32)
    logits = np.array([[5.0, -5.0, -5.0], [-5.0, -5.0, 2.0]], np.float32)  # anchor 0's best is the background
    found = decoders.decode_ssd_anchors(
        boxes, (0.0, 0), logits, (0.0, 0), ANCHORS, coder, True, np.full(3, 0.5, np.float32), background=0
    )
    assert found.classes.tolist() == [2]
    assert found.scores[0] == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert found.boxes[0].tolist() == pytest.approx([0.65, 0.15, 0.85, 0.35])


def test_ssd_anchors_without_background_reports_class_0_and_honours_exclusions() -> None:
    coder = decoders.BoxCoder(1.0, 1.0, 1.0, 1.0, exponential=True)
    boxes = np.zeros((2, 4), np.float32)
    scores = np.array([[0.9, 0.8, 0.1], [0.1, 0.2, 0.7]], np.float32)
    plain = decoders.decode_ssd_anchors(
        boxes, (0.0, 0), scores, (0.0, 0), ANCHORS, coder, False, np.full(3, 0.5, np.float32), None
    )
    assert sorted(plain.classes.tolist()) == [0, 2]
    excluded = np.array([np.inf, 0.5, 0.5], np.float32)
    found = decoders.decode_ssd_anchors(boxes, (0.0, 0), scores, (0.0, 0), ANCHORS, coder, False, excluded, None)
    assert sorted(found.classes.tolist()) == [1, 2]  # anchor 0 falls back to its best allowed class


def test_ssd_anchors_quantized_scores() -> None:
    coder = decoders.BoxCoder(1.0, 1.0, 1.0, 1.0, exponential=True)
    boxes = np.full((2, 4), 128, np.uint8)  # zero point 128: all encodings 0
    scores = np.array([[0, 230, 0], [0, 100, 0]], np.uint8)  # scale 1/255
    found = decoders.decode_ssd_anchors(
        boxes, (0.01, 128), scores, (1 / 255, 0), ANCHORS, coder, False, np.full(3, 0.5, np.float32), 0
    )
    assert found.classes.tolist() == [1] and found.scores[0] == pytest.approx(230 / 255)
    assert found.boxes[0].tolist() == pytest.approx([0.3, 0.4, 0.7, 0.6])


def test_detector_metadata_is_read_from_the_mediapipe_fixture() -> None:
    facts = read_model_file(MODELS / "shapes_mediapipe_detector.tflite").facts
    detector = facts.detector
    assert detector is not None and len(detector.anchors) == detector.num_boxes == 144
    assert detector.num_classes == 4 and detector.num_coords == 4
    assert (detector.y_scale, detector.x_scale, detector.h_scale, detector.w_scale) == (10, 10, 5, 5)
    assert detector.apply_exponential_on_box_size and detector.sigmoid_score
    y_center, x_center, height, width = detector.anchors[0]
    assert (y_center, x_center) == pytest.approx((0.5 / 12, 0.5 / 12)) and (height, width) == pytest.approx((0.3, 0.3))
    assert [meta.name for meta in facts.outputs] == ["location", "score"]
    assert facts.inputs[0].mean == (127.5,) and facts.inputs[0].std == (127.5,)


def test_ultralytics_metadata_json_and_python_repr(tmp_path: Path) -> None:
    meta = {"task": "detect", "imgsz": [96, 96], "names": {"0": "cat", "1": "dog"}, "args": {"nms": True}}
    labels = parse_labels(json.dumps(meta, indent=2), "metadata.json", "model metadata: metadata.json")
    assert labels.entries == {0: "cat", 1: "dog"}
    legacy = "{'task': 'detect', 'names': {0: 'cat', 1: 'dog'}, 'args': {'int8': False}}"
    assert parse_labels(legacy, "temp_meta.txt", "model metadata").entries == {0: "cat", 1: "dog"}
    model = tmp_path / "m.tflite"
    model.write_bytes((MODELS / "shapes_yolov5.tflite").read_bytes())
    with zipfile.ZipFile(model, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps(meta, indent=2))
    assert ultralytics_metadata(model) == meta
