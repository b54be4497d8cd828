"""Draw results onto a copy of an image: boxes with labels for detections, the top labels for classification."""

from __future__ import annotations

import cv2
import numpy as np

from edged.types import Detection, ImageArray, Label

_PALETTE = [(56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
            (23, 204, 146), (134, 219, 61), (211, 188, 0), (209, 114, 0), (255, 56, 132), (203, 56, 255)]  # fmt: skip


def _colour(index: int) -> tuple[int, int, int]:
    return _PALETTE[index % len(_PALETTE)]


def _caption(image: ImageArray, text: str, x: int, y: int, colour: tuple[int, int, int], scale: float) -> None:
    thickness = max(1, round(scale * 2))
    (w, h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    y = max(y, h + baseline)
    cv2.rectangle(image, (x, y - h - baseline), (x + w, y), colour, thickness=-1)
    cv2.putText(image, text, (x, y - baseline), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                cv2.LINE_AA)  # fmt: skip


def annotate(image: ImageArray, labels: tuple[Label, ...] = (), objects: tuple[Detection, ...] = ()) -> ImageArray:
    """A copy of `image` (BGR) with `objects` boxed and `labels` listed in the top-left corner."""
    out: ImageArray = np.ascontiguousarray(image).copy()
    height, width = out.shape[:2]
    scale = max(0.4, min(width, height) / 800)
    for obj in objects:
        box = obj.box.scale(width, height)
        colour = _colour(obj.index)
        p0, p1 = (round(box.xmin), round(box.ymin)), (round(box.xmax), round(box.ymax))
        cv2.rectangle(out, p0, p1, colour, thickness=max(2, round(scale * 3)))
        _caption(out, f"{obj.label} {obj.score:.2f}", p0[0], p0[1], colour, scale)
    for line, label in enumerate(labels, start=1):
        y = round(line * 30 * scale * 1.4)
        _caption(out, f"{label.label} {label.score:.2f}", 0, y, _colour(label.index), scale)
    return out
