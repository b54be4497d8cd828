"""Raw model outputs → classes and boxes: pure functions over numpy arrays, testable without a runtime.

Layouts: classification scores; SSD with a TFLite_Detection_PostProcess op (4 outputs); YOLOv5
[N, 5+nc] with objectness; YOLOv8 [4+nc, N] without; end-to-end YOLO [K, 6] (NMS already done); raw SSD boxes
and scores decoded with anchors (MediaPipe Model Maker). Quantized outputs are thresholded in the integer
domain first, so only the few candidate boxes are ever dequantized.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.intp]

#: Candidates kept for NMS, best first; guards against a very low threshold on 8400 anchors.
MAX_NMS_CANDIDATES = 3000


@dataclass(frozen=True)
class Candidates:
    """Boxes (xmin, ymin, xmax, ymax) normalized to the model input, with class index and score."""

    boxes: FloatArray
    classes: IntArray
    scores: FloatArray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def take(self, keep: IntArray) -> Candidates:
        return Candidates(self.boxes[keep], self.classes[keep], self.scores[keep])


EMPTY = Candidates(np.zeros((0, 4), np.float32), np.zeros((0,), np.intp), np.zeros((0,), np.float32))


def dequantize(raw: npt.NDArray[Any], scale: float, zero_point: int) -> FloatArray:
    """Real values of a tensor (float tensors pass through as float32)."""
    if scale == 0.0:
        return np.asarray(raw, dtype=np.float32)
    real: FloatArray = (raw.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
    return real


def quantized_floor(threshold: float, scale: float, zero_point: int, dtype: npt.DTypeLike) -> int:
    """The smallest raw integer whose real value reaches `threshold` (saturated to the dtype's range)."""
    info = np.iinfo(dtype)
    value = math.ceil(threshold / scale + zero_point - 1e-6)
    return int(min(max(value, info.min), info.max))


def top_classes(scores: FloatArray, thresholds: FloatArray, top_k: int) -> list[tuple[int, float]]:
    """The best `top_k` (index, score) pairs whose score reaches the per-class threshold, best first."""
    passing = np.flatnonzero(scores >= thresholds)
    if passing.size > top_k:
        passing = passing[np.argpartition(scores[passing], -top_k)[-top_k:]]
    order = passing[np.argsort(-scores[passing], kind="stable")]
    return [(int(i), float(scores[i])) for i in order]


def top_raw_classes(
    raw: npt.NDArray[Any], scale: float, zero_point: int, thresholds: FloatArray, top_k: int
) -> list[tuple[int, float]]:
    """`top_classes` ranked on the raw output: dequantization is monotonic, so only the best `top_k` are
    converted. Needs every threshold finite (an excluded class could take a top-k place)."""
    best = np.argpartition(raw, -top_k)[-top_k:] if raw.size > top_k else np.arange(raw.size)
    picked = []
    for index in best.tolist():
        score = (float(raw[index]) - zero_point) * scale if scale else float(raw[index])
        if score >= thresholds[index]:
            picked.append((index, score))
    picked.sort(key=lambda pair: (-pair[1], pair[0]))
    return picked


def decode_ssd(
    boxes: FloatArray,
    classes: FloatArray,
    scores: FloatArray,
    count: float,
    thresholds: FloatArray,
) -> Candidates:
    """Outputs of TFLite_Detection_PostProcess: boxes N×4 (ymin, xmin, ymax, xmax), 0-based foreground classes."""
    n = max(0, min(int(count), scores.shape[0]))
    cls = classes[:n].astype(np.intp)
    sc = scores[:n].astype(np.float32)
    valid = (cls >= 0) & (cls < thresholds.shape[0])
    keep = np.flatnonzero(valid)
    keep = keep[sc[keep] >= thresholds[cls[keep]]]
    yxyx = np.clip(boxes[:n][keep].astype(np.float32), 0.0, 1.0)
    return Candidates(yxyx[:, [1, 0, 3, 2]], cls[keep], sc[keep])


def _reaching(raw_best: npt.NDArray[Any], thresholds: FloatArray, scale: float, zero_point: int) -> IntArray:
    """Anchors whose best raw score reaches the lowest class threshold, compared in the tensor's own domain
    (int8/uint8 or float), so nothing is dequantized yet."""
    floor = float(thresholds.min())
    if not np.isfinite(floor):  # every class excluded
        return np.zeros((0,), np.intp)
    limit = quantized_floor(floor, scale, zero_point, raw_best.dtype) if scale else floor
    return np.flatnonzero(raw_best >= limit)


def decode_yolov8(
    raw: npt.NDArray[Any],
    scale: float,
    zero_point: int,
    thresholds: FloatArray,
    input_size: tuple[int, int],
) -> Candidates:
    """YOLOv8 output (4+nc)×N: rows x, y, w, h then class scores; no objectness."""
    candidates = _reaching(raw[4:].max(axis=0), thresholds, scale, zero_point)
    if candidates.size == 0:
        return EMPTY
    picked = dequantize(raw[:, candidates], scale, zero_point)
    cls = picked[4:].argmax(axis=0)
    score = picked[4:][cls, np.arange(cls.size)]
    return _finish_xywh(picked[:4].T, cls, score, thresholds, input_size)


def decode_yolov5(
    raw: npt.NDArray[Any],
    scale: float,
    zero_point: int,
    thresholds: FloatArray,
    input_size: tuple[int, int],
) -> Candidates:
    """YOLOv5 output N×(5+nc): x, y, w, h, objectness, class scores; score = objectness × class score."""
    candidates = _reaching(raw[:, 4], thresholds, scale, zero_point)  # a score never exceeds its objectness
    if candidates.size == 0:
        return EMPTY
    picked = dequantize(raw[candidates], scale, zero_point)
    class_scores = picked[:, 5:] * picked[:, 4:5]
    cls = class_scores.argmax(axis=1)
    score = class_scores[np.arange(cls.size), cls]
    return _finish_xywh(picked[:, :4], cls, score, thresholds, input_size)


def _finish_xywh(
    xywh: FloatArray, cls: IntArray, score: FloatArray, thresholds: FloatArray, input_size: tuple[int, int]
) -> Candidates:
    keep = np.flatnonzero(score >= thresholds[cls])
    xywh, cls, score = xywh[keep], cls[keep], score[keep]
    if xywh.size and float(np.abs(xywh).max()) > 2.0:  # exported in input pixels, not normalized
        xywh = (xywh / np.array([input_size[0], input_size[1], input_size[0], input_size[1]], np.float32)).astype(
            np.float32
        )
    half_w, half_h = xywh[:, 2] / 2, xywh[:, 3] / 2
    boxes = np.stack(
        [xywh[:, 0] - half_w, xywh[:, 1] - half_h, xywh[:, 0] + half_w, xywh[:, 1] + half_h], axis=1
    ).astype(np.float32)
    return Candidates(boxes, cls.astype(np.intp), score.astype(np.float32))


def decode_yolo_e2e(
    raw: npt.NDArray[Any],
    scale: float,
    zero_point: int,
    thresholds: FloatArray,
    input_size: tuple[int, int],
) -> Candidates:
    """End-to-end YOLO output K×6 (Ultralytics nms=True exports, YOLOv10, YOLO26): x1, y1, x2, y2, score,
    class index; rows after the last detection are zero. Boxes normalized, or in input pixels."""
    candidates = _reaching(raw[:, 4], thresholds, scale, zero_point)
    if candidates.size == 0:
        return EMPTY
    picked = dequantize(raw[candidates], scale, zero_point)
    cls = np.rint(picked[:, 5]).astype(np.intp)
    score = picked[:, 4]
    valid = np.flatnonzero((cls >= 0) & (cls < thresholds.shape[0]))
    valid = valid[score[valid] >= thresholds[cls[valid]]]
    boxes: FloatArray = picked[valid, :4]
    if boxes.size and float(np.abs(boxes).max()) > 2.0:  # exported in input pixels, not normalized
        size = np.array([input_size[0], input_size[1], input_size[0], input_size[1]], np.float32)
        boxes = np.asarray(boxes / size, np.float32)
    return Candidates(boxes.astype(np.float32), cls[valid], score[valid].astype(np.float32))


@dataclass(frozen=True)
class BoxCoder:
    """How raw SSD box encodings (ty, tx, th, tw) become boxes against anchors (MediaPipe's YXHW format)."""

    y_scale: float
    x_scale: float
    h_scale: float
    w_scale: float
    exponential: bool  # sizes are log-encoded (apply_exponential_on_box_size)


def _logit(threshold: float) -> float:
    if threshold <= 0.0:
        return -math.inf
    if threshold >= 1.0:
        return math.inf
    return math.log(threshold / (1.0 - threshold))


def decode_ssd_anchors(
    boxes: npt.NDArray[Any],
    box_quant: tuple[float, int],
    scores: npt.NDArray[Any],
    score_quant: tuple[float, int],
    anchors: FloatArray,
    coder: BoxCoder,
    sigmoid: bool,
    thresholds: FloatArray,
    background: int | None,
) -> Candidates:
    """Raw detector outputs: boxes N×4 (ty, tx, th, tw), scores N×C (logits when `sigmoid`), anchors N×4
    (y_center, x_center, h, w). One candidate per anchor, its best class; the background class never counts."""
    thresholds = thresholds.copy()
    if background is not None and 0 <= background < thresholds.shape[0]:
        thresholds[background] = np.inf
    columns = min(scores.shape[1], thresholds.shape[0])
    allowed = np.flatnonzero(thresholds[:columns] < np.inf)  # the classes that may be reported
    if allowed.size == 0:
        return EMPTY
    raw_scores = scores[:, allowed]
    # compare in the score tensor's own domain: logits when the sigmoid comes after
    floor = float(thresholds[allowed].min())
    floor = _logit(floor) if sigmoid else floor
    if floor == -math.inf:
        candidates = np.arange(raw_scores.shape[0])
    else:
        scale, zero_point = score_quant
        limit = quantized_floor(floor, scale, zero_point, raw_scores.dtype) if scale else floor
        candidates = np.flatnonzero(raw_scores.max(axis=1) >= limit)
    if candidates.size == 0:
        return EMPTY
    real = dequantize(raw_scores[candidates], *score_quant)
    best = real.argmax(axis=1)
    score = real[np.arange(best.size), best]
    if sigmoid:
        score = (1.0 / (1.0 + np.exp(-score))).astype(np.float32)
    cls = allowed[best]
    keep = np.flatnonzero(score >= thresholds[cls])
    if keep.size == 0:
        return EMPTY
    index = candidates[keep]
    raw_boxes = dequantize(boxes[index], *box_quant)
    anchor = anchors[index]
    yc = raw_boxes[:, 0] / coder.y_scale * anchor[:, 2] + anchor[:, 0]
    xc = raw_boxes[:, 1] / coder.x_scale * anchor[:, 3] + anchor[:, 1]
    if coder.exponential:
        h = np.exp(raw_boxes[:, 2] / coder.h_scale) * anchor[:, 2]
        w = np.exp(raw_boxes[:, 3] / coder.w_scale) * anchor[:, 3]
    else:
        h = raw_boxes[:, 2] / coder.h_scale * anchor[:, 2]
        w = raw_boxes[:, 3] / coder.w_scale * anchor[:, 3]
    decoded = np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], axis=1).astype(np.float32)
    return Candidates(decoded, cls[keep].astype(np.intp), score[keep].astype(np.float32))


def iou_one_to_many(box: FloatArray, boxes: FloatArray) -> FloatArray:
    """IoU of one box against N boxes, all (xmin, ymin, xmax, ymax)."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(candidates: Candidates, iou_threshold: float, max_detections: int) -> Candidates:
    """Class-aware greedy non-maximum suppression: boxes of different classes never suppress each other."""
    if len(candidates) == 0:
        return candidates
    order = np.argsort(-candidates.scores, kind="stable")[:MAX_NMS_CANDIDATES]
    # shifting each class into its own region makes one pass class-aware
    shifted = candidates.boxes + (candidates.classes.astype(np.float32) * 4.0)[:, None]
    keep: list[int] = []
    while order.size and len(keep) < max_detections:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        if rest.size == 0:
            break
        order = rest[iou_one_to_many(shifted[best], shifted[rest]) <= iou_threshold]
    return candidates.take(np.asarray(keep, np.intp))
