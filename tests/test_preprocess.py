"""Preprocessing into the input tensor: value tables, colour order, stretch/letterbox geometry, crops."""

from __future__ import annotations

import numpy as np
import pytest

from edged.inference.preprocess import (
    LETTERBOX_PAD_VALUE,
    SIGNED,
    UNIT,
    InputPlan,
    Normalization,
    Roi,
    value_table,
)


def test_uint8_model_expecting_minus_one_to_one_takes_raw_pixels() -> None:
    assert value_table(SIGNED, np.uint8, 1 / 128, 128) is None


def test_int8_yolo_table_matches_the_quantization_formula() -> None:
    scale, zero = 0.01865844801068306, -14
    table = value_table(UNIT, np.int8, scale, zero)
    assert table is not None and table.dtype == np.int8
    expected = np.clip(np.round(np.arange(256) / 255 / scale + zero), -128, 127)
    assert np.array_equal(table.reshape(-1), expected.astype(np.int8))


def test_float_table_per_channel_mean_std() -> None:
    norm = Normalization.of([0.0, 127.5, 255.0], [255.0, 127.5, 1.0], "test")
    table = value_table(norm, np.float32, 0.0, 0)
    assert table is not None and table.shape == (256, 1, 3)
    assert np.allclose(table[255, 0], [1.0, 1.0, 0.0])


def test_quantized_input_without_parameters_is_refused() -> None:
    with pytest.raises(ValueError, match="without quantization"):
        value_table(UNIT, np.int8, 0.0, 0)


def _plan(frame_w: int, frame_h: int, input_w: int, input_h: int, **kw: object) -> InputPlan:
    args: dict[str, object] = {"frame_color": "bgr", "model_color": "rgb", "table": None, "resize": "stretch"}
    args.update(kw)
    return InputPlan(frame_w, frame_h, args["frame_color"], input_w, input_h, args["model_color"],  # type: ignore[arg-type]
                     args["table"], args["resize"], args.get("roi", Roi()))  # type: ignore[arg-type]  # fmt: skip


def test_stretch_swaps_bgr_to_rgb_into_the_tensor() -> None:
    frame = np.zeros((40, 80, 3), np.uint8)
    frame[:, :, 2] = 200  # red in BGR
    out = np.zeros((20, 20, 3), np.uint8)
    _plan(80, 40, 20, 20).fill(frame, out)
    assert (out[:, :, 0] == 200).all() and (out[:, :, 2] == 0).all()


def test_letterbox_pads_and_geometry_maps_back_to_the_frame() -> None:
    frame = np.full((100, 200, 3), 50, np.uint8)
    frame[40:60, 150:170] = 250  # a bright marker at x 0.75–0.85, y 0.4–0.6 of the frame
    out = np.zeros((64, 64, 3), np.uint8)
    plan = _plan(200, 100, 64, 64, resize="letterbox", frame_color="rgb")
    plan.fill(frame, out)
    assert (out[:8, :, :] == LETTERBOX_PAD_VALUE).all() and (out[-8:, :, :] == LETTERBOX_PAD_VALUE).all()
    ys, xs = np.nonzero(out[:, :, 0] > 200)
    marker = np.array([[xs.min() / 64, ys.min() / 64, (xs.max() + 1) / 64, (ys.max() + 1) / 64]], np.float32)
    back = plan.geometry.to_frame(marker)[0]
    assert np.allclose(back, [0.75, 0.4, 0.85, 0.6], atol=0.03)


def test_roi_crop_geometry() -> None:
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[50:100, 50:100] = 255
    out = np.zeros((10, 10, 3), np.uint8)
    plan = _plan(100, 100, 10, 10, roi=Roi(0.5, 0.5, 1.0, 1.0), frame_color="rgb")
    plan.fill(frame, out)
    assert (out == 255).all()
    whole_input = np.array([[0.0, 0.0, 1.0, 1.0]], np.float32)
    assert np.allclose(plan.geometry.to_frame(whole_input)[0], [0.5, 0.5, 1.0, 1.0])


def test_table_writes_int8_into_the_tensor_memory() -> None:
    table = value_table(UNIT, np.int8, 1 / 255, -128)
    frame = np.full((30, 30, 3), 255, np.uint8)
    tensor = np.zeros((1, 30, 30, 3), np.int8)
    _plan(30, 30, 30, 30, table=table, frame_color="rgb").fill(frame, tensor[0])
    assert (tensor == 127).all()
