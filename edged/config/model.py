"""The `[model]` table: which .tflite to run, where, and how to read its outputs."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from edged.config.base import FilePath, Table

_EDGETPU_DEVICE = re.compile(r"^(usb|pci)?(:\d+)?$")


def edgetpu_device_problem(device: str) -> str | None:
    """Why `device` is not an Edge TPU device string ('', 'usb', 'usb:N', 'pci', 'pci:N', ':N'), or None.

    The one check, used by the config and by the runtime (command-line --device goes through the config too).
    """
    if _EDGETPU_DEVICE.match(device):
        return None
    return (
        f"Edge TPU device {device!r} is not valid; use 'usb', 'usb:0', 'pci', 'pci:0' or ':0' (the N-th Edge TPU "
        "of any kind), or leave it empty for the first one found"
    )


DecoderName = Literal["auto", "classification", "ssd", "yolov5", "yolov8", "yolo_e2e"]


class ModelConfig(Table):
    PATH_KEYS: ClassVar[tuple[str, ...]] = ("path", "labels", "cpu_model")

    path: FilePath = Field(description="The .tflite model file.")
    labels: FilePath | None = Field(None, description="Label file; default: embedded metadata, then a sidecar file.")
    name: str | None = Field(None, description="Name reported in results; default: the file name without .tflite.")
    version: str = Field("local", description="Version reported in results (hosting sets it from the manifest).")
    decoder: DecoderName = "auto"
    accelerator: Literal["auto", "cpu", "edgetpu"] = "auto"
    device: str = Field("", description="Edge TPU device: '', 'usb', 'usb:N', 'pci', 'pci:N' or ':N'.")
    cpu_model: FilePath | None = Field(
        None, description="CPU twin of an Edge TPU model (default: foo.tflite beside foo_edgetpu.tflite)."
    )
    num_threads: int | None = Field(None, ge=1, le=64, description="CPU threads; default: every core.")
    color: Literal["rgb", "bgr"] = Field("rgb", description="Channel order the model was trained on.")
    resize: Literal["auto", "stretch", "letterbox"] = "auto"
    normalization: Literal["auto", "unit", "signed", "raw"] = "auto"
    mean: list[float] | None = None
    std: list[float] | None = None
    ssd_output_order: Literal["auto", "tf1", "tf2"] = "auto"
    top_k: int = Field(3, ge=1, le=1000)
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    label_thresholds: dict[str, float] = Field(default_factory=dict)
    include_labels: list[str] = Field(default_factory=list)
    exclude_labels: list[str] = Field(default_factory=list)
    nms_iou: float = Field(0.45, gt=0.0, le=1.0)
    max_detections: int = Field(100, ge=1, le=1000)

    @field_validator("device")
    @classmethod
    def _device_form(cls, value: str) -> str:
        problem = edgetpu_device_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("label_thresholds")
    @classmethod
    def _thresholds_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for label, threshold in value.items():
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold for {label!r} must be between 0 and 1, got {threshold}")
        return value

    @field_validator("mean", "std")
    @classmethod
    def _one_or_three(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and len(value) not in (1, 3):
            raise ValueError("give 1 value or 3 (one per channel)")
        return value

    @model_validator(mode="after")
    def _mean_and_std_together(self) -> ModelConfig:
        if (self.mean is None) != (self.std is None):
            raise ValueError("set both `mean` and `std`, or neither")
        if self.std is not None and any(s == 0 for s in self.std):
            raise ValueError("`std` values must not be 0")
        if self.include_labels and self.exclude_labels:
            overlap = set(self.include_labels) & set(self.exclude_labels)
            if overlap:
                raise ValueError(f"labels both included and excluded: {sorted(overlap)}")
        return self

    def detection_threshold(self) -> float:
        return 0.5 if self.threshold is None else self.threshold

    def classification_threshold(self) -> float:
        return 0.0 if self.threshold is None else self.threshold
