"""The synthetic source: deterministic scenes, a finite mode, BGR frames and ground truth that stays in frame."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edged.errors import SourceError
from edged.sources.base import create_source
from edged.sources.pacing import next_deadline
from edged.sources.shapes import Shape
from edged.sources.synthetic import Motion, SyntheticCamera, SyntheticSource, step
from edged.types import Frame

#: BGR channel that dominates each shape class's colour.
DOMINANT_CHANNEL = {"red_square": 2, "green_circle": 1, "blue_triangle": 0}


def make_source(**options: Any) -> SyntheticSource:
    options.setdefault("realtime", False)
    options.setdefault("width", 96)
    options.setdefault("height", 64)
    created = create_source(SyntheticCamera(type="synthetic", **options))
    assert isinstance(created, SyntheticSource)
    created.open()
    return created


def take(source: SyntheticSource, count: int) -> list[tuple[Frame, list[Shape]]]:
    taken = []
    for _ in range(count):
        frame = source.read()
        assert frame is not None
        taken.append((frame, source.ground_truth))
    return taken


def test_same_seed_same_scenes() -> None:
    first = take(make_source(seed=7, shapes=3), 10)
    second = take(make_source(seed=7, shapes=3), 10)
    for (frame_a, truth_a), (frame_b, truth_b) in zip(first, second, strict=True):
        assert np.array_equal(frame_a.image, frame_b.image)
        assert truth_a == truth_b


def test_another_seed_another_scene() -> None:
    ((frame_a, _),) = take(make_source(seed=1), 1)
    ((frame_b, _),) = take(make_source(seed=2), 1)
    assert not np.array_equal(frame_a.image, frame_b.image)


def test_shapes_move() -> None:
    (_, before), (_, after) = take(make_source(seed=3, shapes=2), 2)
    assert before != after


def test_frames_limit_ends_the_source() -> None:
    source = make_source(frames=3)
    frames = [source.read() for _ in range(5)]
    assert [f.index if f else None for f in frames] == [0, 1, 2, None, None]


def test_frame_shape_and_colour_order() -> None:
    source = make_source(id="synth", width=160, height=120, shapes=3, seed=11)
    for frame, truth in take(source, 30):
        assert frame.image.shape == (120, 160, 3)
        assert frame.image.dtype == np.uint8
        assert frame.color == "bgr" and frame.source_id == "synth"
        top = truth[-1]  # drawn last, so its centre shows its own colour
        pixel = frame.image[round(top.cy * frame.height), round(top.cx * frame.width)]
        assert int(np.argmax(pixel)) == DOMINANT_CHANNEL[top.kind]


@pytest.mark.parametrize("seed", [0, 5, 9])
def test_ground_truth_boxes_stay_within_the_frame(seed: int) -> None:
    # A low fps makes each frame a big step, so shapes hit the edges many times in a few hundred frames.
    source = make_source(seed=seed, shapes=10, fps=2.0)
    for _, truth in take(source, 300):
        for shape in truth:
            box = shape.box
            assert 0.0 <= box.xmin < box.xmax <= 1.0
            assert 0.0 <= box.ymin < box.ymax <= 1.0


def test_no_shapes_is_just_the_background() -> None:
    source = make_source(shapes=0)
    (first, truth), (second, _) = take(source, 2)
    assert truth == []
    assert np.array_equal(first.image, second.image)


def test_reopen_continues_the_scene() -> None:
    source = make_source(seed=4)
    take(source, 3)
    source.close()
    with pytest.raises(SourceError, match="not open"):
        source.read()
    source.open()
    frame = source.read()
    assert frame is not None and frame.index == 3


def test_step_bounces_off_an_edge() -> None:
    shape = Shape("red_square", cx=0.88, cy=0.5, half=0.1)
    moved, motion = step(shape, Motion(dx=0.05, dy=0.0))
    assert moved.cx == pytest.approx(0.87)  # 0.93 reflected off the 0.9 limit
    assert motion == Motion(dx=-0.05, dy=0.0)


def test_pacing_schedule_does_not_drift() -> None:
    due = next_deadline(None, 0.1, now=5.0)
    for _ in range(50):
        due = next_deadline(due, 0.1, now=due + 0.03)
    assert due == pytest.approx(10.0)
    assert next_deadline(due, 0.1, now=due + 1.0) == due + 1.0
