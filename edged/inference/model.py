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
import numpy.typing as npt

from edged.config.model import ModelConfig
from edged.errors import ModelError
from edged.inference.label_sources import LabelSearch, find_labels, ultralytics_metadata
from edged.inference.labels import BACKGROUND_NAMES, ClassNumbering, LabelMap, align_labels, index_names
from edged.inference.layouts import SSD_ROLES, SUPPORTED_LAYOUTS, YOLO_DECODERS, Decoder, Layout, detect_layout
from edged.inference.normalization import Decision, choose_normalization
from edged.inference.preprocess import Normalization, ResizeMode
from edged.inference.tflite_file import DetectorMetadata, FileFacts
from edged.types import Task

__all__ = ["SSD_ROLES", "SUPPORTED_LAYOUTS", "Decision", "Decoder", "ModelSpec", "TensorInfo", "describe_model"]


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
    decisions: tuple[Decision, ...] = ()  # normalization, resize, labels: what was chosen and where it came from
    labels_looked: tuple[str, ...] = ()  # where labels were searched when none were found
    background_class: int | None = None  # a class the model outputs that is never reported (ssd_anchors)

    def decision(self, name: str) -> Decision | None:
        return next((d for d in self.decisions if d.name == name), None)

    def anchors(self) -> npt.NDArray[np.float32]:
        """The ssd_anchors decoder's anchors as rows of (y_center, x_center, height, width)."""
        detector = self.facts.detector
        if detector is None:
            return np.zeros((0, 4), np.float32)
        return np.asarray(detector.anchors, np.float32).reshape(-1, 4)

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


def numbering(decoder: Decoder) -> ClassNumbering:
    if decoder == "ssd":
        return "foreground"
    return "with_background" if decoder in ("classification", "ssd_anchors") else "plain"


def _class_count(
    decoder: Decoder, outputs: tuple[TensorInfo, ...], facts: FileFacts, label_count: int | None
) -> int | None:
    if decoder == "classification":
        return outputs[0].shape[-1]
    if decoder == "ssd":
        value = facts.custom_options("TFLite_Detection_PostProcess").get("num_classes")
        return int(value) if value is not None else None
    if decoder == "ssd_anchors":
        return outputs[1].shape[-1]
    if decoder == "yolo_e2e":
        return label_count  # [1, K, 6] names a class by its index: only the labels say how many there are
    channels = min(outputs[0].shape[1:])
    return channels - (4 if decoder == "yolov8" else 5)


def _labels_decision(search: LabelSearch, labels: LabelMap) -> Decision:
    if search.found is None:
        places = "; ".join(search.looked)
        return Decision("labels", "none found: classes are named class_N", "none", f"looked in: {places}")
    kind, _, where = labels.origin.partition(": ")
    origin = {"model metadata": "metadata"}.get(kind, kind)
    return Decision("labels", f"{len(labels.names)} names ({labels.format})", origin, where or labels.origin)


def _resize(config: ModelConfig, decoder: Decoder) -> tuple[ResizeMode, Decision]:
    if config.resize != "auto":
        return config.resize, Decision("resize", config.resize, "config", "model.resize")
    if decoder in YOLO_DECODERS:
        reason = "Ultralytics trains and predicts on letterboxed images (grey 114 padding)"
        return "letterbox", Decision("resize", "letterbox", "default", reason)
    reason = "classifiers, SSD and MediaPipe detectors are trained on images stretched to the input size"
    return "stretch", Decision("resize", "stretch", "default", reason)


def _background(decoder: Decoder, labels: LabelMap, detector: DetectorMetadata | None) -> int | None:
    """MediaPipe Model Maker numbers the background as class 0 (its label file says `background`)."""
    if decoder != "ssd_anchors" or detector is None or not labels.names:
        return None
    return 0 if labels.names[0].strip().lower() in BACKGROUND_NAMES else None


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
    meta_names = {o.index: m.name or "" for o, m in zip(all_outputs, facts.outputs, strict=False)}
    ultralytics = ultralytics_metadata(path)
    layout: Layout = detect_layout(
        outputs, {**meta_names, **output_names}, facts, config.decoder, config.ssd_output_order,
        label_count, ultralytics, path,
    )  # fmt: skip
    decoder, ordered = layout.decoder, layout.outputs
    notes: list[str] = []
    if decoder == "ssd_anchors" and search.found is not None and search.found.background_first:
        label_count = search.found.count  # the background is one of the model's score columns
    num_classes = _class_count(decoder, ordered, facts, label_count)
    if decoder == "yolo_e2e" and num_classes is None:
        raise ModelError(
            f"{path}: an end-to-end YOLO output {list(ordered[0].shape)} names classes by index only, and no "
            f"labels were found (looked in: {'; '.join(search.looked)}). Give the label file "
            "(--labels / model.labels), or keep the metadata Ultralytics embeds in the .tflite"
        )
    if num_classes is not None and num_classes < 1:
        raise ModelError(f"{path}: output {ordered[0].name} {list(ordered[0].shape)} leaves no room for classes")
    if search.found is not None:
        labels = align_labels(search.found, num_classes, numbering(decoder))
    else:
        labels = index_names(num_classes or 0)
    if labels.note:
        notes.append(f"labels: {labels.note}")
    normalization, norm_decision, norm_notes = choose_normalization(config, facts, image, decoder in YOLO_DECODERS)
    notes.extend(norm_notes)
    resize, resize_decision = _resize(config, decoder)
    if ultralytics is not None:
        notes.extend(_ultralytics_notes(ultralytics, image))
    background = _background(decoder, labels, facts.detector)
    if background is not None:
        notes.append(f"class {background} ({labels.names[background]!r}) is the background: never reported")
    return ModelSpec(
        path=path,
        sha256=sha256,
        task="classification" if decoder == "classification" else "detection",
        decoder=decoder,
        decoder_reason=layout.reason,
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
        decisions=(norm_decision, resize_decision, _labels_decision(search, labels)),
        labels_looked=search.looked if search.found is None else (),
        background_class=background,
    )


def _ultralytics_notes(metadata: dict[str, Any], image: TensorInfo) -> list[str]:
    """What the embedded Ultralytics metadata says that edged checks: the task and the image size."""
    notes = []
    task = metadata.get("task")
    if task not in (None, "detect", "classify"):
        notes.append(f"the embedded Ultralytics metadata says task {task!r}: edged reads its boxes and classes only")
    imgsz = metadata.get("imgsz")
    if isinstance(imgsz, list) and len(imgsz) == 2 and tuple(imgsz) != (image.shape[1], image.shape[2]):
        notes.append(f"the embedded Ultralytics metadata says imgsz {imgsz}, the input is {list(image.shape[1:3])}")
    return notes
