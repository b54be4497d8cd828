"""Which decoder reads a model's outputs, told from their shapes, the model's ops and its metadata.

Every refusal names the tensors and shapes seen and lists the layouts edged reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from edged.errors import ModelError
from edged.inference import decoder_fit
from edged.inference.tflite_file import FileFacts

if TYPE_CHECKING:
    from edged.inference.model import TensorInfo

Decoder = Literal["classification", "ssd", "yolov5", "yolov8", "yolo_e2e", "ssd_anchors"]
YOLO_DECODERS = ("yolov5", "yolov8", "yolo_e2e")
SSD_ROLES = ("boxes", "classes", "scores", "count")
SUPPORTED_LAYOUTS = (
    "classification: one output [1, C] (or [1, 1, 1, C]); "
    "SSD: the 4 outputs of a TFLite_Detection_PostProcess op (boxes [1, N, 4], classes [1, N], scores [1, N], "
    "count [1]); MediaPipe Model Maker: raw boxes [1, N, 4] + scores [1, N, C] with the anchors in the "
    "model's DETECTOR_METADATA; YOLOv5: one output [1, N, 5+C]; YOLOv8: one output [1, 4+C, N] "
    "(or [1, N, 4+C]; YOLO11 too); end-to-end YOLO (nms=True exports, YOLOv10, YOLO26): one output [1, K, 6]"
)
#: Ultralytics exports default to max_det=300; a YOLOv5 [1, N, 6] (one class) has thousands of candidates
E2E_MAX_ROWS = 1000
_NAME_ROLES = (
    ("boxes", ("box", "location")),
    ("classes", ("class", "category")),
    ("scores", ("score",)),
    ("count", ("num", "count")),
)


@dataclass(frozen=True)
class Layout:
    """The decoder chosen, why, and the outputs it reads in its own order."""

    decoder: Decoder
    reason: str
    outputs: tuple[TensorInfo, ...]


def _ssd_order(
    outputs: list[TensorInfo], names: Mapping[int, str], order: str, path: Path
) -> tuple[tuple[TensorInfo, ...], str]:
    """Outputs of TFLite_Detection_PostProcess as (boxes, classes, scores, count)."""
    if len(outputs) != 4:
        raise ModelError(f"{path}: an SSD post-process model has 4 outputs, this one {len(outputs)}")
    if order == "auto":
        by_name: dict[str, TensorInfo] = {}
        for tensor in outputs:
            label = names.get(tensor.index, "").lower()
            for role, keys in _NAME_ROLES:
                if role not in by_name and any(k in label for k in keys):
                    by_name[role] = tensor
                    break
        if len(by_name) == 4 and len({t.index for t in by_name.values()}) == 4:
            return tuple(by_name[r] for r in SSD_ROLES), "by output names"
        boxes_first = len(outputs[0].shape) == 3 and outputs[0].shape[-1] == 4
        order = "tf1" if boxes_first else "tf2"
    if order == "tf1":
        return tuple(outputs), "TF1 order (boxes, classes, scores, count)"
    scores, boxes, count, classes = outputs
    return (boxes, classes, scores, count), "TF2 / Model Maker order (scores, boxes, count, classes)"


def _raw_detector(outputs: list[TensorInfo], names: Mapping[int, str], facts: FileFacts, path: Path) -> Layout:
    """MediaPipe Model Maker: `location` [1, N, 4] and `score` [1, N, C], decoded with DETECTOR_METADATA."""
    detector = facts.detector
    assert detector is not None
    by_name = {names.get(t.index, "").lower(): t for t in outputs}
    if "location" in by_name and "score" in by_name:
        boxes, scores, how = by_name["location"], by_name["score"], "by metadata names"
    else:
        boxes, scores = outputs  # MediaPipe's default order: location, then score
        how = "location first, score second (MediaPipe's default order)"
    n = detector.num_boxes or len(detector.anchors)
    problems = []
    if len(boxes.shape) != 3 or boxes.shape[1:] != (n, detector.num_coords or 4):
        problems.append(f"boxes {boxes.name} {list(boxes.shape)} is not [1, {n}, 4]")
    if len(scores.shape) != 3 or scores.shape[1] != n:
        problems.append(f"scores {scores.name} {list(scores.shape)} is not [1, {n}, classes]")
    if len(detector.anchors) != n:
        problems.append(f"the metadata lists {len(detector.anchors)} anchors for {n} boxes")
    if detector.num_classes and len(scores.shape) == 3 and scores.shape[2] != detector.num_classes:
        problems.append(f"the metadata says {detector.num_classes} classes, the scores have {scores.shape[2]}")
    if problems:
        raise ModelError(
            f"{path}: the DETECTOR_METADATA does not fit the outputs: {'; '.join(problems)}. "
            "Export the model again with MediaPipe Model Maker"
        )
    activation = "sigmoid" if detector.sigmoid_score else "scores as they are"
    reason = (
        f"raw boxes + scores with DETECTOR_METADATA ({n} anchors, box scales y {detector.y_scale:g} "
        f"x {detector.x_scale:g} h {detector.h_scale:g} w {detector.w_scale:g}, {activation}), {how}"
    )
    return Layout("ssd_anchors", reason, (boxes, scores))


def _e2e_or_v5(output: TensorInfo, label_count: int | None, ultralytics: Mapping[str, Any] | None) -> Layout | None:
    """[1, K, 6]: an end-to-end export (x1, y1, x2, y2, score, class) or a one-class YOLOv5 [1, N, 5+1]."""
    _, rows, columns = output.shape
    if columns != 6 or rows == 6:
        return None
    shape = f"[1, {rows}, 6]"
    if ultralytics is not None:
        args = ultralytics.get("args")
        nms = isinstance(args, dict) and bool(args.get("nms"))
        if ultralytics.get("end2end") or nms:
            why = "nms=True" if nms else "end2end"
            return Layout("yolo_e2e", f"{shape} and the embedded Ultralytics metadata says {why}", (output,))
        return None  # an Ultralytics export that is not end-to-end: the YOLOv5/v8 rules apply
    if label_count is not None:
        if label_count == 1:
            return None
        return Layout("yolo_e2e", f"{shape} with {label_count} labels: x1, y1, x2, y2, score, class", (output,))
    if rows <= E2E_MAX_ROWS:
        return Layout("yolo_e2e", f"{shape}: {rows} rows of x1, y1, x2, y2, score, class", (output,))
    return None


def _yolo_kind(output: TensorInfo, label_count: int | None) -> tuple[Decoder, str]:
    _, a, b = output.shape
    channels, orientation = (a, "channels-first") if a < b else (b, "channels-last")
    if label_count is not None and channels - 4 == label_count:
        return "yolov8", f"[1, {a}, {b}]: 4 box values + {label_count} classes, no objectness"
    if label_count is not None and channels - 5 == label_count:
        return "yolov5", f"[1, {a}, {b}]: 4 box values + objectness + {label_count} classes"
    if orientation == "channels-first":
        return "yolov8", f"[1, {a}, {b}] channels-first: the YOLOv8 layout"
    return "yolov5", f"[1, {a}, {b}] channels-last: the YOLOv5 layout"


def _refuse_a_misfit(
    forced: str, outputs: list[TensorInfo], label_count: int | None, path: Path, auto: Callable[[], Layout]
) -> None:
    """ModelError when the decoder set in the configuration cannot read these outputs, naming `auto`'s choice."""
    why = decoder_fit.misfit(forced, outputs, label_count)
    if why is None:
        return
    try:
        layout = auto()
        fix = 'set model.decoder = "auto" (or leave it out)'
        instead = f"`auto` would pick {layout.decoder!r} ({layout.reason}): {fix}"
    except ModelError:
        instead = f"`auto` finds no supported layout either ({SUPPORTED_LAYOUTS})"
    raise ModelError(
        f"{path}: model.decoder = {forced!r} does not fit the output layout "
        f"({decoder_fit.describe_outputs(outputs)}): {why}; {instead}"
    )


def detect_layout(
    outputs: list[TensorInfo],
    names: Mapping[int, str],
    facts: FileFacts,
    config_decoder: str,
    ssd_output_order: str,
    label_count: int | None,
    ultralytics: Mapping[str, Any] | None,
    path: Path,
) -> Layout:
    """The decoder for these outputs: configured, or told from the ops, the metadata and the shapes."""
    forced = config_decoder != "auto"
    if forced:
        auto = (outputs, names, facts, "auto", ssd_output_order, label_count, ultralytics, path)
        _refuse_a_misfit(config_decoder, outputs, label_count, path, lambda: detect_layout(*auto))
    if "TFLite_Detection_PostProcess" in facts.custom_ops or config_decoder == "ssd":
        why = "set in the configuration" if forced else "TFLite_Detection_PostProcess op with 4 outputs"
        ordered, order_reason = _ssd_order(outputs, names, ssd_output_order, path)
        return Layout("ssd", f"{why}, {order_reason}", ordered)
    if forced and len(outputs) != 1:
        raise ModelError(f"{path}: the {config_decoder} decoder reads one output; the model has {len(outputs)}")
    if len(outputs) == 2 and facts.detector is not None:
        return _raw_detector(outputs, names, facts, path)
    if len(outputs) == 1:
        output = outputs[0]
        shape = output.shape
        if forced:
            if config_decoder in YOLO_DECODERS and len(shape) != 3:
                raise ModelError(f"{path}: the {config_decoder} decoder reads a [1, A, B] output, not {list(shape)}")
            return Layout(config_decoder, "set in the configuration", (output,))  # type: ignore[arg-type]
        size = int(np.prod(shape)) if shape else 0
        if len(shape) >= 2 and all(d == 1 for d in shape[:-1]) and size > 1:
            return Layout("classification", f"one output {list(shape)} of class scores", (output,))
        if len(shape) == 3 and shape[0] == 1 and min(shape[1:]) >= 5:
            e2e = _e2e_or_v5(output, label_count, ultralytics)
            if e2e is not None:
                return e2e
            decoder, reason = _yolo_kind(output, label_count)
            return Layout(decoder, reason, (output,))
    shapes = ", ".join(f"{t.name} {list(t.shape)}" for t in outputs)
    hint = (
        " Detectors exported without post-processing (e.g. raw EfficientDet boxes + scores) need either the "
        "TFLite_Detection_PostProcess op (export with the TF Object Detection API's export_tflite_graph_tf2.py) "
        "or the anchors in MediaPipe's DETECTOR_METADATA (MediaPipe Model Maker writes it)"
    )
    if len(outputs) == 2:
        hint = (
            " These look like raw boxes + scores without post-processing: decoding them needs the anchors and "
            "box coder, which this model does not carry (no DETECTOR_METADATA in its TFLite metadata). Export it "
            "with MediaPipe Model Maker (which writes them), or with the TFLite_Detection_PostProcess op"
        )
    raise ModelError(f"{path}: unsupported output layout ({shapes}). Supported layouts: {SUPPORTED_LAYOUTS}.{hint}")
