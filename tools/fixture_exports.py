"""Output heads for the fixtures of issue 10, written in TensorFlow ops over the trained grid detector.

Developer tool for tools/make_test_models.py. Each head re-expresses the same trained network in the layout of
one more trainer's export:

- MediaPipe Model Maker detectors: raw box encodings `location` [1, N, 4] (y, x, h, w against fixed anchors)
  and class scores `score` [1, N, C] with a background column first, no post-processing op;
- Ultralytics exports with `nms=True` (and YOLOv10 / YOLO26 end-to-end models, same layout): [1, K, 6] rows of
  x1, y1, x2, y2 (normalized), score, class, zero-padded after the last detection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

#: The DETECTOR_METADATA box coder of the MediaPipe fixture (TF Object Detection API scales), logits out.
MEDIAPIPE_SCALES = {"y_scale": 10.0, "x_scale": 10.0, "h_scale": 5.0, "w_scale": 5.0}
BACKGROUND_LOGIT = -8.0  # sigmoid ≈ 0.0003: the background column never wins
NMS_MAX_DETECTIONS = 300  # Ultralytics' max_det
NMS_SCORE_THRESHOLD = 0.25  # Ultralytics' conf default for nms=True exports
NMS_IOU = 0.5


@dataclass(frozen=True)
class Grid:
    """What a head needs to know of the trained grid detector."""

    cells: int  # per side
    prior: float  # anchor side, normalized
    num_classes: int
    raw: Callable[[Any], Any]  # core network: image in [-1, 1] → [1, G, G, 1 + nc + 4]
    decode: Callable[[Any], tuple[Any, Any, Any]]  # raw → (xywh normalized, objectness, class probabilities)
    anchors: npt.NDArray[np.float32]  # [G*G, 4] (y_center, x_center, h, w), row-major cell order


def unit_input(core: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The classifier behind an input calibrated for [0, 1] (pixel / 255), as Teachable Machine exports it."""

    def serve(image: Any) -> Any:
        return core(image * 2.0 - 1.0)

    return serve


def mediapipe_detector(grid: Grid) -> Callable[[Any], dict[str, Any]]:
    """Input (pixel - 127.5) / 127.5; outputs `location` (YXHW box encodings) and `score` (logits, background
    first), decoded with the anchors and MEDIAPIPE_SCALES by MediaPipe's TensorsToDetectionsCalculator."""
    import tensorflow as tf

    cells, nc = grid.cells, grid.num_classes
    scales = MEDIAPIPE_SCALES

    def serve(image: Any) -> dict[str, Any]:
        raw = tf.reshape(grid.raw(image), [1, cells * cells, 1 + nc + 4])
        offset = raw[..., 4:6] / (cells * grid.prior)  # centre offset in anchor sizes
        location = tf.concat(
            [
                offset[..., 1:2] * scales["y_scale"],
                offset[..., 0:1] * scales["x_scale"],
                raw[..., 7:8] * scales["h_scale"],
                raw[..., 6:7] * scales["w_scale"],
            ],
            -1,
        )
        probability = tf.clip_by_value(tf.sigmoid(raw[..., :1]) * tf.nn.softmax(raw[..., 1 : 1 + nc]), 1e-6, 1 - 1e-6)
        logits = tf.math.log(probability) - tf.math.log(1.0 - probability)
        background = tf.fill([1, cells * cells, 1], BACKGROUND_LOGIT)
        return {"location": location, "score": tf.concat([background, logits], -1)}

    return serve


def yolo_nms(grid: Grid) -> Callable[[Any], Any]:
    """Input pixel / 255; output [1, K, 6]: x1, y1, x2, y2 (normalized), score, class; class-aware NMS inside
    (boxes offset by class, as Ultralytics' NMSModel does), rows after the last detection all zero."""
    import tensorflow as tf

    k = NMS_MAX_DETECTIONS

    def serve(image: Any) -> Any:
        xywh, obj, cls = grid.decode(grid.raw(image * 2.0 - 1.0))
        scores_all = (obj * cls)[0]
        score = tf.reduce_max(scores_all, -1)
        label = tf.cast(tf.argmax(scores_all, -1), tf.float32)
        xy, half = xywh[0, :, :2], xywh[0, :, 2:] / 2
        xyxy = tf.concat([xy - half, xy + half], -1)
        shifted = xyxy + label[:, None] * 2.0  # boxes of different classes never overlap
        yxyx = tf.stack([shifted[:, 1], shifted[:, 0], shifted[:, 3], shifted[:, 2]], -1)
        keep, valid = tf.raw_ops.NonMaxSuppressionV4(
            boxes=yxyx,
            scores=score,
            max_output_size=k,
            iou_threshold=NMS_IOU,
            score_threshold=NMS_SCORE_THRESHOLD,
            pad_to_max_output_size=True,
        )
        rows = tf.concat([tf.gather(xyxy, keep), tf.gather(score, keep)[:, None], tf.gather(label, keep)[:, None]], -1)
        mask = tf.cast(tf.range(k) < valid, tf.float32)[:, None]
        return (rows * mask)[None]

    return serve


def order_outputs(model: bytes, names: list[str]) -> bytes:
    """Put the model's outputs in the order of these signature output names (the SavedModel path sorts them)."""
    from tensorflow.lite.tools import flatbuffer_utils

    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    signature = tree.signatureDefs[0]
    by_name = {entry.name.decode(): int(entry.tensorIndex) for entry in signature.outputs}
    graph = tree.subgraphs[0]
    wanted = [by_name[name] for name in names]
    if sorted(wanted) != sorted(int(i) for i in graph.outputs):
        raise RuntimeError(f"signature outputs {by_name} are not the model's outputs {list(graph.outputs)}")
    graph.outputs = wanted
    return bytes(flatbuffer_utils.convert_object_to_bytearray(tree))
