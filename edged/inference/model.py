"""What edged makes of a .tflite: input and outputs, task and decoder, labels, normalization.

`describe_model` works from tensor details, so it can explain a model that cannot run here (an Edge TPU model
without a TPU) as well as one that can. Every refusal says which tensor, shape or count is wrong and what works.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edged.config.model import ModelConfig
from edged.errors import ModelError
from edged.inference import decoder_fit
from edged.inference.label_sources import find_labels
from edged.inference.labels import ClassNumbering, LabelMap, align_labels, index_names
from edged.inference.preprocess import RAW, SIGNED, UNIT, Normalization, ResizeMode
from edged.inference.tflite_file import FileFacts
from edged.types import Task

Decoder = Literal["classification", "ssd", "yolov5", "yolov8"]
SSD_ROLES = ("boxes", "classes", "scores", "count")
SUPPORTED_LAYOUTS = (
    "classification: one output [1, C] (or [1, 1, 1, C]); "
    "SSD: the 4 outputs of a TFLite_Detection_PostProcess op (boxes [1, N, 4], classes [1, N], scores [1, N], "
    "count [1]); YOLOv5: one output [1, N, 5+C]; YOLOv8: one output [1, 4+C, N] (or [1, N, 4+C])"
)
_NAME_ROLES = (
    ("boxes", ("box", "location")),
    ("classes", ("class", "category")),
    ("scores", ("score",)),
    ("count", ("num", "count")),
)


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the runtime reports it."""

    name: str
    index: int
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    @staticmethod
    def of(details: dict[str, Any]) -> TensorInfo:
        scale, zero_point = details.get("quantization", (0.0, 0))
        return TensorInfo(
            name=str(details["name"]),
            index=int(details["index"]),
            shape=tuple(int(d) for d in details["shape"]),
            dtype=np.dtype(details["dtype"]).name,
            scale=float(scale),
            zero_point=int(zero_point),
        )

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0

    def as_dict(self) -> dict[str, Any]:
        info: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.quantized:
            info["quantization"] = {"scale": self.scale, "zero_point": self.zero_point}
        return info


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to feed a model and read its outputs."""

    path: Path
    sha256: str
    task: Task
    decoder: Decoder
    decoder_reason: str
    input: TensorInfo
    outputs: tuple[TensorInfo, ...]  # the outputs the decoder reads, in the decoder's order
    num_classes: int | None
    labels: LabelMap
    normalization: Normalization
    resize: ResizeMode
    color: Literal["rgb", "bgr"]
    edgetpu_compiled: bool
    facts: FileFacts
    state_pairs: tuple[tuple[TensorInfo, TensorInfo], ...] = ()  # (input fed, output it comes from)
    nearby_label_files: tuple[Path, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the image the model takes."""
        return self.input.shape[2], self.input.shape[1]


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _image_input(inputs: list[TensorInfo], path: Path) -> TensorInfo:
    images = [t for t in inputs if len(t.shape) == 4 and t.shape[-1] == 3]
    if not images:
        shapes = ", ".join(f"{t.name} {list(t.shape)}" for t in inputs)
        nchw = [t for t in inputs if len(t.shape) == 4 and t.shape[1] == 3]
        hint = (
            " It takes channels-first (NCHW) input: re-export it channels-last (NHWC), the TFLite convention"
            if nchw
            else ""
        )
        raise ModelError(
            f"{path}: no image input: edged needs a [1, height, width, 3] input tensor, the model has {shapes}.{hint}"
        )
    image = images[0]
    if image.shape[0] != 1:
        raise ModelError(f"{path}: input {image.name} has batch size {image.shape[0]}; export it with batch size 1")
    if image.dtype not in ("uint8", "int8", "float32"):
        raise ModelError(
            f"{path}: input {image.name} is {image.dtype}; edged feeds uint8, int8 or float32 image inputs"
        )
    return image


def _state_pairs(
    inputs: list[TensorInfo], image: TensorInfo, outputs: list[TensorInfo], path: Path
) -> tuple[tuple[TensorInfo, TensorInfo], ...]:
    """Recurrent models (AutoML Video trackers) take back their own state outputs as extra inputs."""
    pairs: list[tuple[TensorInfo, TensorInfo]] = []
    free = list(outputs)
    for extra in (t for t in inputs if t is not image):
        same = [o for o in free if o.shape == extra.shape and o.dtype == extra.dtype]
        if not same:
            raise ModelError(
                f"{path}: extra input {extra.name} {list(extra.shape)} is not fed by any output of the same "
                "shape; edged supports one image input, plus state inputs that the model outputs itself"
            )
        suffix = extra.name.rsplit("/", 1)[-1].removeprefix("init_")
        same.sort(key=lambda o: not o.name.endswith(suffix))
        pairs.append((extra, same[0]))
        free.remove(same[0])
    return tuple(pairs)


def _ssd_order(
    outputs: list[TensorInfo], names: dict[int, str], order: str, path: Path
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


def _yolo_kind(output: TensorInfo, label_count: int | None) -> tuple[Decoder, int, str]:
    _, a, b = output.shape
    channels, orientation = (a, "channels-first") if a < b else (b, "channels-last")
    if label_count is not None and channels - 4 == label_count:
        return "yolov8", channels - 4, f"[1, {a}, {b}]: 4 box values + {label_count} classes, no objectness"
    if label_count is not None and channels - 5 == label_count:
        return "yolov5", channels - 5, f"[1, {a}, {b}]: 4 box values + objectness + {label_count} classes"
    if orientation == "channels-first":
        return "yolov8", channels - 4, f"[1, {a}, {b}] channels-first: the YOLOv8 layout"
    return "yolov5", channels - 5, f"[1, {a}, {b}] channels-last: the YOLOv5 layout"


def _detect_decoder(
    outputs: list[TensorInfo], facts: FileFacts, forced: str, label_count: int | None, path: Path
) -> tuple[Decoder, str]:
    if forced != "auto":
        _check_forced_decoder(outputs, facts, forced, label_count, path)
        return forced, "set in the configuration"  # type: ignore[return-value]
    if "TFLite_Detection_PostProcess" in facts.custom_ops:
        return "ssd", "TFLite_Detection_PostProcess op with 4 outputs"
    if len(outputs) == 1:
        shape = outputs[0].shape
        size = int(np.prod(shape)) if shape else 0
        if len(shape) >= 2 and all(d == 1 for d in shape[:-1]) and size > 1:
            return "classification", f"one output {list(shape)} of class scores"
        if len(shape) == 3 and shape[0] == 1 and min(shape[1:]) >= 5:
            decoder, _, reason = _yolo_kind(outputs[0], label_count)
            return decoder, reason
    shapes = ", ".join(f"{t.name} {list(t.shape)}" for t in outputs)
    raise ModelError(
        f"{path}: unsupported output layout ({shapes}). Supported layouts: {SUPPORTED_LAYOUTS}. "
        "Detectors exported without post-processing (e.g. raw EfficientDet boxes + scores) need the "
        "TFLite_Detection_PostProcess op: export with the TF Object Detection API's export_tflite_graph_tf2.py"
    )


def _check_forced_decoder(
    outputs: list[TensorInfo], facts: FileFacts, forced: str, label_count: int | None, path: Path
) -> None:
    """ModelError when the decoder set in the configuration cannot read these outputs, naming `auto`'s choice."""
    why = decoder_fit.misfit(forced, outputs, label_count)
    if why is None:
        return
    try:
        decoder, reason = _detect_decoder(outputs, facts, "auto", label_count, path)
        instead = f'`auto` would pick {decoder!r} ({reason}): set model.decoder = "auto" (or leave it out)'
    except ModelError:
        instead = f"`auto` finds no supported layout either ({SUPPORTED_LAYOUTS})"
    raise ModelError(
        f"{path}: model.decoder = {forced!r} does not fit the output layout "
        f"({decoder_fit.describe_outputs(outputs)}): {why}; {instead}"
    )


def _normalization(config: ModelConfig, facts: FileFacts, decoder: Decoder) -> Normalization:
    if config.mean is not None and config.std is not None:
        return Normalization.of(config.mean, config.std, "config mean/std")
    named = {"unit": UNIT, "signed": SIGNED, "raw": RAW}
    if config.normalization in named:
        chosen = named[config.normalization]
        return Normalization(chosen.mean, chosen.std, f"config normalization = {config.normalization!r}")
    if facts.inputs and facts.inputs[0].mean and facts.inputs[0].std:
        return Normalization.of(facts.inputs[0].mean, facts.inputs[0].std, "model metadata")
    if decoder in ("yolov5", "yolov8"):
        return Normalization(UNIT.mean, UNIT.std, "default for YOLO exports")
    return Normalization(SIGNED.mean, SIGNED.std, "default for classifiers and SSD")


def numbering(decoder: Decoder) -> ClassNumbering:
    if decoder == "ssd":
        return "foreground"
    return "with_background" if decoder == "classification" else "plain"


def _class_count(decoder: Decoder, outputs: tuple[TensorInfo, ...], facts: FileFacts) -> int | None:
    if decoder == "classification":
        return outputs[0].shape[-1]
    if decoder == "ssd":
        value = facts.custom_options("TFLite_Detection_PostProcess").get("num_classes")
        return int(value) if value is not None else None
    channels = min(outputs[0].shape[1:])
    return channels - (4 if decoder == "yolov8" else 5)


def describe_model(
    path: Path,
    sha256: str,
    facts: FileFacts,
    input_details: list[dict[str, Any]],
    output_details: list[dict[str, Any]],
    output_names: dict[int, str],
    config: ModelConfig,
) -> ModelSpec:
    """Build the ModelSpec from tensor details; ModelError with the precise reason when edged cannot use it."""
    inputs = [TensorInfo.of(d) for d in input_details]
    all_outputs = [TensorInfo.of(d) for d in output_details]
    image = _image_input(inputs, path)
    state_pairs = _state_pairs(inputs, image, all_outputs, path)
    state_outputs = {o.index for _, o in state_pairs}
    outputs = [o for o in all_outputs if o.index not in state_outputs]
    search = find_labels(path, config.labels, facts)
    label_count = search.found.count if search.found else None
    if label_count is not None and search.found is not None and search.found.background_first:
        label_count -= 1
    decoder, reason = _detect_decoder(outputs, facts, config.decoder, label_count, path)
    notes: list[str] = []
    ordered: tuple[TensorInfo, ...] = tuple(outputs)
    if decoder == "ssd":
        meta_names = {o.index: m.name or "" for o, m in zip(all_outputs, facts.outputs, strict=False)}
        ordered, order_reason = _ssd_order(outputs, {**meta_names, **output_names}, config.ssd_output_order, path)
        reason = f"{reason}, {order_reason}"
    elif decoder in ("yolov5", "yolov8") and len(outputs) != 1:
        raise ModelError(f"{path}: the {decoder} decoder reads one output; the model has {len(outputs)}")
    num_classes = _class_count(decoder, ordered, facts)
    if num_classes is not None and num_classes < 1:
        raise ModelError(f"{path}: output {ordered[0].name} {list(ordered[0].shape)} leaves no room for classes")
    if search.found is not None:
        labels = align_labels(search.found, num_classes, numbering(decoder))
    else:
        labels = index_names(num_classes or 0)
    if labels.note:
        notes.append(f"labels: {labels.note}")
    normalization = _normalization(config, facts, decoder)
    resize: ResizeMode
    if config.resize == "auto":
        resize = "letterbox" if decoder in ("yolov5", "yolov8") else "stretch"
    else:
        resize = config.resize
    return ModelSpec(
        path=path,
        sha256=sha256,
        task="classification" if decoder == "classification" else "detection",
        decoder=decoder,
        decoder_reason=reason,
        input=image,
        outputs=ordered,
        num_classes=num_classes,
        labels=labels,
        normalization=normalization,
        resize=resize,
        color=config.color,
        edgetpu_compiled="edgetpu-custom-op" in facts.custom_ops,
        facts=facts,
        state_pairs=state_pairs,
        nearby_label_files=search.nearby,
        notes=tuple(notes),
    )
