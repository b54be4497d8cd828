"""Whether a decoder named in the configuration (`model.decoder`, `--decoder`) can read the model's outputs.

A wrong override otherwise surfaces later as a puzzle ("the model outputs 8400 classes", an index error in the
decoder). Checked before anything else uses it, so the message can say what the decoder needs and what `auto`
would pick instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Tensor(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> tuple[int, ...]: ...


_NEEDS = {
    "classification": "one output of class scores, [1, C] (or [1, 1, 1, C])",
    "ssd": "the 4 outputs of a TFLite_Detection_PostProcess op (boxes [1, N, 4], classes, scores, count)",
    "yolov5": "one output [1, N, 5+C] (x, y, w, h, objectness, C class scores)",
    "yolov8": "one output [1, 4+C, N] or [1, N, 4+C] (x, y, w, h, C class scores)",
    "yolo_e2e": "one output [1, K, 6] (x1, y1, x2, y2, score, class: an end-to-end export, NMS done in the model)",
}


def _yolo_channels(shape: tuple[int, ...]) -> int | None:
    if len(shape) != 3 or shape[0] != 1:
        return None
    return min(shape[1:])


def misfit(decoder: str, outputs: Sequence[Tensor], label_count: int | None) -> str | None:
    """Why `decoder` cannot read `outputs` (what it needs instead), or None when it can."""
    needs = f"the {decoder} decoder reads {_NEEDS[decoder]}"
    if decoder == "classification":
        shape = outputs[0].shape if len(outputs) == 1 else ()
        fits = len(shape) >= 2 and all(d == 1 for d in shape[:-1]) and shape[-1] > 1
        return None if fits else needs
    if decoder == "ssd":
        return None if len(outputs) == 4 else needs
    channels = _yolo_channels(outputs[0].shape) if len(outputs) == 1 else None
    if decoder == "yolo_e2e":
        shape = outputs[0].shape if len(outputs) == 1 else ()
        return None if len(shape) == 3 and shape[0] == 1 and shape[2] == 6 else needs
    extra = 4 if decoder == "yolov8" else 5
    if channels is None or channels <= extra:
        return needs
    other = 5 if decoder == "yolov8" else 4
    if label_count is not None and channels - extra != label_count and channels - other == label_count:
        needed = label_count + extra
        return f"with {label_count} labels, the {decoder} layout needs {needed} values a box; the output has {channels}"
    return None


def describe_outputs(outputs: Sequence[Tensor]) -> str:
    return ", ".join(f"{tensor.name} {list(tensor.shape)}" for tensor in outputs)
