"""Frozen value objects shared by every part of edged: frames, boxes, labels, detections, results."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

Task = Literal["classification", "detection"]
ColorOrder = Literal["rgb", "bgr"]
ImageArray = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Frame:
    """One captured image. `image` is H×W×3 uint8 in `color` order (OpenCV and picamera2's RGB888 give BGR)."""

    image: ImageArray
    source_id: str
    index: int
    captured_at: float  # time.time() at capture, seconds since the epoch
    captured_mono: float  # time.monotonic() at capture, for latency measurements
    color: ColorOrder = "bgr"
    #: The file it was read from, relative to its folder (image folders), reported in the result's `source`.
    file: str | None = None
    #: Called once its result has been handed to the publisher (an image folder remembers, or moves, the file).
    processed: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    @staticmethod
    def now(image: ImageArray, source_id: str, index: int, color: ColorOrder = "bgr") -> Frame:
        """A frame captured at this moment (both clocks read now)."""
        return Frame(image, source_id, index, time.time(), time.monotonic(), color)

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True)
class BBox:
    """An axis-aligned box; in edged results the coordinates are normalized to [0, 1] of the original frame."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def width(self) -> float:
        return max(0.0, self.xmax - self.xmin)

    @property
    def height(self) -> float:
        return max(0.0, self.ymax - self.ymin)

    @property
    def area(self) -> float:
        return self.width * self.height

    def scale(self, sx: float, sy: float) -> BBox:
        """The same box with x scaled by `sx` and y by `sy` (e.g. normalized → pixels)."""
        return BBox(self.xmin * sx, self.ymin * sy, self.xmax * sx, self.ymax * sy)

    def clipped(self, limit_x: float = 1.0, limit_y: float = 1.0) -> BBox:
        return BBox(
            min(max(self.xmin, 0.0), limit_x),
            min(max(self.ymin, 0.0), limit_y),
            min(max(self.xmax, 0.0), limit_x),
            min(max(self.ymax, 0.0), limit_y),
        )

    def iou(self, other: BBox) -> float:
        """Intersection over union; 0.0 for disjoint or empty boxes."""
        ix = min(self.xmax, other.xmax) - max(self.xmin, other.xmin)
        iy = min(self.ymax, other.ymax) - max(self.ymin, other.ymin)
        if ix <= 0 or iy <= 0:
            return 0.0
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def as_dict(self, digits: int = 4) -> dict[str, float]:
        return {
            "xmin": round(self.xmin, digits),
            "ymin": round(self.ymin, digits),
            "xmax": round(self.xmax, digits),
            "ymax": round(self.ymax, digits),
        }


@dataclass(frozen=True)
class Label:
    """One classification result: the model's class `index`, its name and its dequantized score."""

    index: int
    label: str
    score: float

    def as_dict(self) -> dict[str, object]:
        return {"label": self.label, "score": round(self.score, 4), "index": self.index}


@dataclass(frozen=True)
class Detection:
    """One detected object; `box` is normalized to the original frame (letterbox and crop undone)."""

    index: int
    label: str
    score: float
    box: BBox

    def as_dict(self, frame_width: int, frame_height: int) -> dict[str, object]:
        return {
            "label": self.label,
            "score": round(self.score, 4),
            "index": self.index,
            "box": self.box.as_dict(),
            "box_px": self.box.scale(frame_width, frame_height).as_dict(digits=1),
        }


@dataclass(frozen=True)
class ModelInfo:
    """Identifies the model bundle that produced a result."""

    name: str
    version: str
    sha256: str
    source: str  # where it was loaded from (a path)

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True)
class Prediction:
    """What a model made of one image, before any pipeline metadata is attached."""

    task: Task
    labels: tuple[Label, ...] = ()
    objects: tuple[Detection, ...] = ()
    timing_ms: dict[str, float] = field(default_factory=dict)
