"""Coloured shapes bouncing over a still background: a camera for the demo and the tests, with known answers.

Motion advances per frame, not per wall-clock second, so frame N is the same for a given seed whether the
source runs in real time or as fast as possible. `ground_truth` holds the shapes of the last frame, so a test
can compare a model's predictions with what was drawn. Shapes may pass over each other; the one drawn last
(later in `ground_truth`) is on top.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from pydantic import Field

from edged.config.camera import SourceConfig
from edged.errors import SourceError
from edged.sources.base import SourcePlugin
from edged.sources.pacing import Pacer
from edged.sources.shapes import Shape, draw_background, draw_shape, random_shapes
from edged.types import Frame, ImageArray

log = logging.getLogger(__name__)

#: Range of shape speeds, in image widths (or heights) per second of stream time.
SPEED_RANGE = (0.08, 0.25)


class SyntheticCamera(SourceConfig):
    """Moving coloured shapes: the demo and the tests, with no camera at all."""

    type: Literal["synthetic"]
    width: int = Field(640, ge=16, le=8192)
    height: int = Field(480, ge=16, le=8192)
    fps: float = Field(15.0, gt=0, le=1000)
    shapes: int = Field(2, ge=0, le=10)
    seed: int = 0
    frames: int = Field(0, ge=0, description="Stop after this many frames; 0 = never.")
    realtime: bool = Field(True, description="Pace at `fps` (false: as fast as possible).")

    def is_live(self) -> bool:
        return self.realtime


@dataclass(frozen=True)
class Motion:
    """A shape's velocity, in normalized image units per frame."""

    dx: float
    dy: float


def _bounce(position: float, velocity: float, half: float) -> tuple[float, float]:
    """Move one coordinate, reflecting off the edges so the shape stays wholly inside [0, 1]."""
    low, high = half, 1.0 - half
    moved = position + velocity
    if moved < low:
        moved, velocity = 2 * low - moved, -velocity
    elif moved > high:
        moved, velocity = 2 * high - moved, -velocity
    return min(max(moved, low), high), velocity


def step(shape: Shape, motion: Motion) -> tuple[Shape, Motion]:
    """The shape one frame later, and its velocity after any bounce."""
    cx, dx = _bounce(shape.cx, motion.dx, shape.half)
    cy, dy = _bounce(shape.cy, motion.dy, shape.half)
    return replace(shape, cx=cx, cy=cy), Motion(dx, dy)


class SyntheticSource:
    """A deterministic moving scene; `frames` > 0 makes it finite."""

    def __init__(self, config: SyntheticCamera) -> None:
        self.id = config.id
        self.ground_truth: list[Shape] = []
        self._config = config
        self._background: ImageArray | None = None
        self._shapes: list[Shape] = []
        self._motions: list[Motion] = []
        self._index = 0
        self._pacer = Pacer(1.0 / config.fps)
        self._is_open = False

    def describe(self) -> str:
        cfg = self._config
        limit = f", {cfg.frames} frames" if cfg.frames else ""
        pace = f"{cfg.fps:g} fps" if cfg.realtime else "unpaced"
        return f"synthetic {cfg.width}x{cfg.height} {pace}, {cfg.shapes} shapes, seed {cfg.seed}{limit}"

    def open(self) -> None:
        if self._background is None:  # a reopened source carries on where it was
            self._build_scene()
        self._pacer.restart()
        self._is_open = True

    def read(self) -> Frame | None:
        if not self._is_open or self._background is None:
            raise SourceError(f"{self.describe()} is not open")
        cfg = self._config
        if cfg.frames and self._index >= cfg.frames:
            return None
        if cfg.realtime:
            self._pacer.wait()
        if self._index > 0:
            self._advance()
        image = self._background.copy()
        for shape in self._shapes:
            draw_shape(image, shape)
        self.ground_truth = list(self._shapes)
        self._index += 1
        return Frame.now(image, self.id, self._index - 1, "bgr")

    def close(self) -> None:
        self._is_open = False

    def _build_scene(self) -> None:
        cfg = self._config
        rng = np.random.default_rng(cfg.seed)
        self._background = draw_background(rng, cfg.width, cfg.height)
        # Smaller shapes when there are many, so they still fit side by side at the start.
        max_half = min(0.22, 0.5 / math.sqrt(max(cfg.shapes, 1)))
        self._shapes = random_shapes(rng, cfg.shapes, min_half=min(0.08, max_half), max_half=max_half)
        if len(self._shapes) < cfg.shapes:
            log.debug("synthetic: placed %d of %d shapes without overlap", len(self._shapes), cfg.shapes)
        self._motions = []
        for _ in self._shapes:
            speed = float(rng.uniform(*SPEED_RANGE)) / cfg.fps
            angle = float(rng.uniform(0.0, 2 * math.pi))
            self._motions.append(Motion(speed * math.cos(angle), speed * math.sin(angle)))

    def _advance(self) -> None:
        moved = [step(shape, motion) for shape, motion in zip(self._shapes, self._motions, strict=True)]
        self._shapes = [shape for shape, _ in moved]
        self._motions = [motion for _, motion in moved]


PLUGIN = SourcePlugin("synthetic", SyntheticCamera, SyntheticSource, "moving coloured shapes, no camera needed")
