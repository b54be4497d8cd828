"""Pure drawing of coloured-shape scenes: the synthetic source, the demo and the fixture models share it.

The fixture models in tests/fixtures/models are trained on scenes drawn by this module, so the synthetic
source shows them exactly the kind of image they know.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edged.types import BBox, ImageArray

#: Class names in model index order, shared by the fixture models and the synthetic source.
SHAPE_CLASSES: tuple[str, ...] = ("red_square", "green_circle", "blue_triangle")

#: BGR colours (OpenCV order) of each shape class.
_COLOURS_BGR: dict[str, tuple[int, int, int]] = {
    "red_square": (40, 40, 220),
    "green_circle": (40, 200, 40),
    "blue_triangle": (220, 60, 30),
}


@dataclass(frozen=True)
class Shape:
    """A shape to draw: its class, centre and half-size, all normalized to the image."""

    kind: str
    cx: float
    cy: float
    half: float

    @property
    def box(self) -> BBox:
        return BBox(self.cx - self.half, self.cy - self.half, self.cx + self.half, self.cy + self.half)


def draw_background(rng: np.random.Generator, width: int, height: int) -> ImageArray:
    """A greyish, slightly noisy background (never strongly red, green or blue)."""
    base = int(rng.integers(90, 200))
    tint = rng.integers(-12, 13, size=3)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = np.clip(base + tint, 0, 255).astype(np.uint8)
    noise = rng.integers(-10, 11, size=(height, width, 1), dtype=np.int16)
    noisy: ImageArray = np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return noisy


def draw_shape(image: ImageArray, shape: Shape) -> None:
    """Draw one filled shape in place (BGR image)."""
    h, w = image.shape[:2]
    colour = _COLOURS_BGR[shape.kind]
    x0, y0 = round((shape.cx - shape.half) * w), round((shape.cy - shape.half) * h)
    x1, y1 = round((shape.cx + shape.half) * w), round((shape.cy + shape.half) * h)
    if shape.kind == "red_square":
        cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), colour, thickness=-1)
    elif shape.kind == "green_circle":
        centre = (round(shape.cx * w), round(shape.cy * h))
        axes = (max(1, round(shape.half * w)), max(1, round(shape.half * h)))
        cv2.ellipse(image, centre, axes, 0, 0, 360, colour, thickness=-1)
    elif shape.kind == "blue_triangle":
        points = np.array([[round(shape.cx * w), y0], [x0, y1 - 1], [x1 - 1, y1 - 1]], np.int32)
        cv2.fillPoly(image, [points], colour)
    else:
        raise ValueError(f"unknown shape kind {shape.kind!r}; expected one of {SHAPE_CLASSES}")


def draw_scene(
    rng: np.random.Generator, width: int, height: int, shapes: list[Shape] | tuple[Shape, ...]
) -> ImageArray:
    """A BGR image of `shapes` over a fresh background."""
    image = draw_background(rng, width, height)
    for shape in shapes:
        draw_shape(image, shape)
    return image


def random_shapes(
    rng: np.random.Generator,
    count: int,
    min_half: float = 0.08,
    max_half: float = 0.22,
    kinds: tuple[str, ...] = SHAPE_CLASSES,
) -> list[Shape]:
    """`count` shapes of random kind, size and place that overlap each other by little (IoU < 0.1)."""
    placed: list[Shape] = []
    attempts = 0
    while len(placed) < count and attempts < 200:
        attempts += 1
        half = float(rng.uniform(min_half, max_half))
        candidate = Shape(
            kind=str(rng.choice(kinds)),
            cx=float(rng.uniform(half, 1.0 - half)),
            cy=float(rng.uniform(half, 1.0 - half)),
            half=half,
        )
        if all(candidate.box.iou(other.box) < 0.1 for other in placed):
            placed.append(candidate)
    return placed
