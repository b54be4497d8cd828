"""Decoders on hand-built output tensors: every layout, float and quantized, NMS and thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from edged.inference import decoders


def _thresholds(count: int, value: float = 0.5) -> np.ndarray:
    return np.full(count, value, np.float32)


def test_top_classes_sorted_thresholded_and_limited() -> None:
    scores = np.array([0.1, 0.7, 0.05, 0.15], np.float32)
    top_two = decoders.top_classes(scores, _thresholds(4, 0.0), 2)
    assert [index for index, _ in top_two] == [1, 3]
    assert [round(score, 4) for _, score in top_two] == [0.7, 0.15]
    assert [index for index, _ in decoders.top_classes(scores, _thresholds(4, 0.5), 3)] == [1]
    excluded = _thresholds(4, 0.0)
    excluded[1] = np.inf
    assert decoders.top_classes(scores, excluded, 1)[0][0] == 3


def test_dequantize_uint8() -> None:
    raw = np.array([0, 128, 255], np.uint8)
    assert np.allclose(decoders.dequantize(raw, 1 / 256, 0), [0.0, 0.5, 255 / 256])


def test_ssd_converts_yxyx_and_skips_invalid_and_weak() -> None:
    boxes = np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.2, 0.2, 0.3, 0.3]], np.float32)
    classes = np.array([1, 0, 9], np.float32)  # 9 is out of range for 2 classes
    scores = np.array([0.9, 0.3, 0.95], np.float32)
    found = decoders.decode_ssd(boxes, classes, scores, 3, _thresholds(2))
    assert len(found) == 1
    assert found.classes.tolist() == [1]
    assert np.allclose(found.boxes[0], [0.2, 0.1, 0.6, 0.5])


def _yolov8_tensor(boxes_xywh: list[list[float]], class_scores: list[list[float]], anchors: int = 50) -> np.ndarray:
    """A [4+nc, N] tensor with the given candidates in the first columns and zeros elsewhere."""
    nc = len(class_scores[0])
    out = np.zeros((4 + nc, anchors), np.float32)
    for column, (xywh, scores) in enumerate(zip(boxes_xywh, class_scores, strict=True)):
        out[:4, column] = xywh
        out[4:, column] = scores
    return out


def test_yolov8_float_decode_and_nms() -> None:
    tensor = _yolov8_tensor(
        [[0.3, 0.3, 0.2, 0.2], [0.31, 0.3, 0.2, 0.2], [0.7, 0.7, 0.1, 0.1]],
        [[0.9, 0.0], [0.8, 0.0], [0.0, 0.6]],
    )
    found = decoders.decode_yolov8(tensor, 0.0, 0, _thresholds(2), (640, 640))
    assert len(found) == 3
    kept = decoders.nms(found, 0.45, 100)
    assert sorted(kept.classes.tolist()) == [0, 1]
    best = kept.boxes[kept.classes.tolist().index(0)]
    assert np.allclose(best, [0.2, 0.2, 0.4, 0.4], atol=1e-6)


def test_yolov8_int8_thresholds_in_the_integer_domain() -> None:
    scale, zero = 1 / 255, -128
    real = _yolov8_tensor([[0.5, 0.5, 0.2, 0.4]], [[0.2, 0.8]])
    quantized = np.clip(np.round(real / scale + zero), -128, 127).astype(np.int8)
    found = decoders.decode_yolov8(quantized, scale, zero, _thresholds(2), (640, 640))
    assert found.classes.tolist() == [1]
    assert abs(float(found.scores[0]) - 0.8) < 0.01
    assert np.allclose(found.boxes[0], [0.4, 0.3, 0.6, 0.7], atol=0.01)


def test_yolov8_pixel_coordinates_are_normalized() -> None:
    tensor = _yolov8_tensor([[320.0, 160.0, 64.0, 64.0]], [[0.9]])
    found = decoders.decode_yolov8(tensor, 0.0, 0, _thresholds(1), (640, 320))
    assert np.allclose(found.boxes[0], [0.45, 0.4, 0.55, 0.6])


def test_yolov5_multiplies_objectness() -> None:
    rows = np.zeros((10, 7), np.float32)
    rows[0] = [0.5, 0.5, 0.2, 0.2, 0.9, 0.1, 0.9]  # 0.81 for class 1
    rows[1] = [0.2, 0.2, 0.1, 0.1, 0.4, 1.0, 0.0]  # objectness too low
    found = decoders.decode_yolov5(rows, 0.0, 0, _thresholds(2), (320, 320))
    assert found.classes.tolist() == [1]
    assert abs(float(found.scores[0]) - 0.81) < 1e-5


def test_nms_is_class_aware() -> None:
    boxes = np.array([[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5], [0.11, 0.1, 0.5, 0.5]], np.float32)
    candidates = decoders.Candidates(boxes, np.array([0, 1, 0], np.intp), np.array([0.9, 0.8, 0.7], np.float32))
    kept = decoders.nms(candidates, 0.5, 10)
    assert kept.classes.tolist() == [0, 1]


def test_nms_respects_max_detections() -> None:
    boxes = np.array([[i / 10, 0, i / 10 + 0.05, 0.05] for i in range(8)], np.float32)
    candidates = decoders.Candidates(boxes, np.zeros(8, np.intp), np.linspace(0.9, 0.5, 8).astype(np.float32))
    assert len(decoders.nms(candidates, 0.5, 3)) == 3


def test_everything_excluded_returns_empty() -> None:
    tensor = _yolov8_tensor([[0.5, 0.5, 0.2, 0.2]], [[0.9]])
    assert len(decoders.decode_yolov8(tensor, 0.0, 0, np.full(1, np.inf, np.float32), (64, 64))) == 0


def test_quantized_floor() -> None:
    assert decoders.quantized_floor(0.5, 1 / 255, -128, np.int8) == 0  # 0.5*255 - 128 = -0.5 → ceil 0
    assert decoders.quantized_floor(2.0, 1 / 255, -128, np.int8) == 127  # saturates


def test_top_raw_classes_matches_the_dequantized_path() -> None:
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 256, size=1001).astype(np.uint8)
    thresholds = np.full(1001, 0.3, np.float32)
    scale, zero = 1 / 256, 0
    expected = decoders.top_classes(decoders.dequantize(raw, scale, zero), thresholds, 5)
    got = decoders.top_raw_classes(raw, scale, zero, thresholds, 5)
    assert [round(s, 6) for _, s in got] == [round(s, 6) for _, s in expected]
    assert all(abs(score - raw[index] * scale) < 1e-9 for index, score in got)


def test_top_raw_classes_float_and_small_outputs() -> None:
    scores = np.array([0.2, 0.7, 0.1], np.float32)
    assert decoders.top_raw_classes(scores, 0.0, 0, np.zeros(3, np.float32), 5) == [
        (1, pytest.approx(0.7)),
        (0, pytest.approx(0.2)),
        (2, pytest.approx(0.1)),
    ]
