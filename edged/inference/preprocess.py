"""Turn a camera frame into exactly what a model's input tensor expects, written in place.

Pure in the sense that matters: the output depends only on the image and the plan. A plan is computed once per
(model, frame size) and owns the scratch buffers, so the per-frame path allocates nothing: crop is a view,
resize writes into a buffer (or straight into the tensor), and one 256-entry lookup table applies
normalization and quantization together (uint8, int8, float32), written into the tensor's own memory.

The same work can run ahead of the inference thread (`InputPreparer`, on the capture thread): the frame is still
hot in the cache right after it was decoded, and the inference thread only copies the prepared input into the
tensor. A prepared input names the model recipe and the plan key it was made for, so it is never fed to another.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from edged.types import ColorOrder, ImageArray

ResizeMode = Literal["stretch", "letterbox"]
LETTERBOX_PAD_VALUE = 114  # the grey Ultralytics pads with


@dataclass(frozen=True)
class Normalization:
    """Pixel p (0–255) becomes (p - mean) / std, per channel in the model's colour order."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str  # why these values: "model metadata", "default for YOLO", "config", ...

    @staticmethod
    def of(
        mean: float | list[float] | tuple[float, ...], std: float | list[float] | tuple[float, ...], source: str
    ) -> Normalization:
        means = _three(mean, "mean")
        stds = _three(std, "std")
        if any(s == 0 for s in stds):
            raise ValueError("normalization std must not be 0")
        return Normalization(means, stds, source)

    def describe(self) -> str:
        lo = [(0 - m) / s for m, s in zip(self.mean, self.std, strict=False)]
        hi = [(255 - m) / s for m, s in zip(self.mean, self.std, strict=False)]
        if len(set(lo)) == 1 and len(set(hi)) == 1:
            return f"[{lo[0]:g}, {hi[0]:g}] ({self.source})"
        return f"mean {list(self.mean)} std {list(self.std)} ({self.source})"


def _three(value: float | list[float] | tuple[float, ...], name: str) -> tuple[float, float, float]:
    if isinstance(value, (int, float)):
        return (float(value), float(value), float(value))
    values = [float(v) for v in value]
    if len(values) == 1:
        return (values[0], values[0], values[0])
    if len(values) != 3:
        raise ValueError(f"normalization {name} needs 1 or 3 values, got {len(values)}")
    return (values[0], values[1], values[2])


UNIT = Normalization((0.0, 0.0, 0.0), (255.0, 255.0, 255.0), "[0, 1]")
SIGNED = Normalization((127.5, 127.5, 127.5), (127.5, 127.5, 127.5), "[-1, 1]")
RAW = Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "raw 0–255")


def value_table(norm: Normalization, dtype: npt.DTypeLike, scale: float, zero_point: int) -> npt.NDArray[Any] | None:
    """A cv2.LUT table mapping each pixel value to the tensor's value; None when pixels go in unchanged.

    Quantized inputs within one quantization step of the raw pixel value take the pixel as it is, which is what
    quantized image models are exported to expect (and costs nothing per frame).
    """
    np_dtype = np.dtype(dtype)
    pixels = np.arange(256, dtype=np.float64)
    real = np.stack([(pixels - m) / s for m, s in zip(norm.mean, norm.std, strict=False)], axis=-1)  # 256×3
    if np_dtype == np.float32:
        table = real.astype(np.float32)
    elif np_dtype in (np.uint8, np.int8):
        if scale <= 0:
            raise ValueError(f"a {np_dtype} input tensor without quantization parameters cannot be fed")
        info = np.iinfo(np_dtype)
        quantized = np.clip(np.round(real / scale + zero_point), info.min, info.max)
        if np_dtype == np.uint8 and np.all(np.abs(quantized - pixels[:, None]) <= 1):
            return None
        table = quantized.astype(np_dtype)
    else:
        raise ValueError(f"input tensors of type {np_dtype} are not supported; expected uint8, int8 or float32")
    if np.all(table == table[:, :1]):
        return np.ascontiguousarray(table[:, 0]).reshape(256, 1)
    return np.ascontiguousarray(table).reshape(256, 1, 3)


@dataclass(frozen=True)
class Geometry:
    """Maps normalized model-input coordinates back to normalized frame coordinates: x = ax * u + bx."""

    ax: float
    bx: float
    ay: float
    by: float

    def to_frame(self, boxes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """boxes: N×4 (xmin, ymin, xmax, ymax) in input coordinates → frame coordinates, clipped to [0, 1]."""
        out = np.empty_like(boxes)
        out[:, 0::2] = boxes[:, 0::2] * self.ax + self.bx
        out[:, 1::2] = boxes[:, 1::2] * self.ay + self.by
        return np.clip(out, 0.0, 1.0, out=out)


@dataclass(frozen=True)
class Roi:
    """A normalized region of interest of the frame."""

    xmin: float = 0.0
    ymin: float = 0.0
    xmax: float = 1.0
    ymax: float = 1.0

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        x0, x1 = round(self.xmin * width), round(self.xmax * width)
        y0, y1 = round(self.ymin * height), round(self.ymax * height)
        return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


FULL_FRAME = Roi()


class InputPlan:
    """How one frame size becomes one input tensor: crop, resize target, colour swap, value table, buffers."""

    def __init__(
        self,
        frame_width: int,
        frame_height: int,
        frame_color: ColorOrder,
        input_width: int,
        input_height: int,
        model_color: ColorOrder,
        table: npt.NDArray[Any] | None,
        resize: ResizeMode,
        roi: Roi = FULL_FRAME,
    ) -> None:
        self.key = (frame_width, frame_height, frame_color, roi)
        x0, y0, x1, y1 = roi.pixels(frame_width, frame_height)
        self.crop = (slice(y0, y1), slice(x0, x1))
        crop_w, crop_h = x1 - x0, y1 - y0
        self.swap = frame_color != model_color
        self.table = table
        if resize == "letterbox":
            ratio = min(input_width / crop_w, input_height / crop_h)
            new_w, new_h = max(1, round(crop_w * ratio)), max(1, round(crop_h * ratio))
        else:
            new_w, new_h = input_width, input_height
        self.size = (new_w, new_h)
        left, top = (input_width - new_w) // 2, (input_height - new_h) // 2
        self.paste = (slice(top, top + new_h), slice(left, left + new_w))
        pad = np.full((1, 1, 3), LETTERBOX_PAD_VALUE, np.uint8)
        pad_value = pad if table is None else cv2.LUT(pad, table)
        # the padding, prebuilt: copying a block is ~30× faster than broadcasting a pixel into it
        self.pad_fills = [
            (band, np.ascontiguousarray(np.broadcast_to(pad_value, _shape(band))))
            for band in _bands(input_width, input_height, self.paste)
        ]
        # resize goes straight into the tensor when no value mapping follows; otherwise via this buffer
        self.resized: ImageArray | None = None if table is None else np.empty((new_h, new_w, 3), np.uint8)
        roi_w, roi_h = crop_w / frame_width, crop_h / frame_height
        self.geometry = Geometry(
            ax=input_width / new_w * roi_w,
            bx=x0 / frame_width - left / new_w * roi_w,
            ay=input_height / new_h * roi_h,
            by=y0 / frame_height - top / new_h * roi_h,
        )

    def fill(self, image: ImageArray, out: npt.NDArray[Any]) -> None:
        """Write `image` (H×W×3 uint8) into `out` (the H×W×3 tensor view) following this plan."""
        source = image[self.crop]
        region = out[self.paste]
        target = region if self.resized is None else self.resized
        if source.shape[1] == self.size[0] and source.shape[0] == self.size[1]:
            np.copyto(target, source)
        else:
            cv2.resize(source, self.size, dst=target, interpolation=cv2.INTER_LINEAR)
        if self.swap:
            cv2.cvtColor(target, cv2.COLOR_BGR2RGB, dst=target)
        if self.table is not None:
            cv2.LUT(target, self.table, dst=region)
        for band, fill in self.pad_fills:
            np.copyto(out[band], fill)


PlanKey = tuple[int, int, ColorOrder, Roi]  # frame width, frame height, frame colour order, region of interest


@dataclass(frozen=True, eq=False)
class InputRecipe:
    """What one model's input needs, whatever the frame: size, colour order, value table, resize mode, dtype.

    Compared by identity: each bundle has its own, so a prepared input is only ever used by the bundle it was made
    for. It holds no interpreter, so a prepared input waiting in the mailbox keeps no closed model alive.
    """

    width: int
    height: int
    color: ColorOrder
    table: npt.NDArray[Any] | None
    resize: ResizeMode
    dtype: np.dtype[Any]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)

    def plan(self, frame_width: int, frame_height: int, frame_color: ColorOrder, roi: Roi) -> InputPlan:
        return InputPlan(
            frame_width, frame_height, frame_color, self.width, self.height, self.color, self.table, self.resize, roi
        )


def plan_key(image: ImageArray, color: ColorOrder, roi: Roi) -> PlanKey:
    return (int(image.shape[1]), int(image.shape[0]), color, roi)


class _BufferPool:
    """Input-sized buffers handed from the preparing thread to the inference thread and back.

    A buffer is in one place at a time: free here, being written by the preparer, waiting in the mailbox, or being
    copied into the tensor by the inference thread; it comes back only after that copy, so it is never written
    while it is read.
    """

    KEEP = 3  # one being written, one in the mailbox, one being copied

    def __init__(self, shape: tuple[int, int, int], dtype: np.dtype[Any]) -> None:
        self.shape = shape
        self.dtype = dtype
        self._free: list[npt.NDArray[Any]] = []
        self._lock = threading.Lock()

    def take(self) -> npt.NDArray[Any]:
        with self._lock:
            if self._free:
                return self._free.pop()
        return np.empty(self.shape, self.dtype)

    def give(self, buffer: npt.NDArray[Any]) -> None:
        with self._lock:
            if len(self._free) < self.KEEP:
                self._free.append(buffer)


class PreparedInput:
    """One frame already turned into one model's input (`buffer`), with the geometry to map boxes back."""

    __slots__ = ("_pool", "buffer", "geometry", "key", "preprocess_ms", "recipe")

    def __init__(
        self,
        recipe: InputRecipe,
        key: PlanKey,
        buffer: npt.NDArray[Any],
        geometry: Geometry,
        preprocess_ms: float,
        pool: _BufferPool | None,
    ) -> None:
        self.recipe = recipe
        self.key = key
        self.buffer = buffer
        self.geometry = geometry
        self.preprocess_ms = preprocess_ms
        self._pool = pool

    def matches(self, recipe: InputRecipe, key: PlanKey) -> bool:
        """Made for this model (the same recipe object) and this frame size, colour order and ROI."""
        return self.recipe is recipe and self.key == key

    def release(self) -> None:
        """The holder is done reading the buffer: it may be written again. Idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.give(self.buffer)


class InputPreparer:
    """Prepares inputs ahead of the inference thread. Used by one thread; it follows the model it is given."""

    def __init__(self) -> None:
        self._recipe: InputRecipe | None = None
        self._pool: _BufferPool | None = None
        self._plan: InputPlan | None = None

    def prepare(self, recipe: InputRecipe, image: ImageArray, color: ColorOrder, roi: Roi) -> PreparedInput:
        started = time.perf_counter()
        if recipe is not self._recipe or self._pool is None:  # a new model: new plans, buffers of its size
            self._recipe, self._plan = recipe, None
            self._pool = _BufferPool(recipe.shape, recipe.dtype)
        key = plan_key(image, color, roi)
        plan = self._plan
        if plan is None or plan.key != key:
            plan = self._plan = recipe.plan(key[0], key[1], color, roi)
        buffer = self._pool.take()
        plan.fill(image, buffer)
        prepared_ms = (time.perf_counter() - started) * 1000.0
        return PreparedInput(recipe, key, buffer, plan.geometry, prepared_ms, self._pool)


def _shape(band: tuple[slice, slice]) -> tuple[int, int, int]:
    rows, cols = band
    return (int(rows.stop) - int(rows.start), int(cols.stop) - int(cols.start), 3)


def _bands(width: int, height: int, paste: tuple[slice, slice]) -> list[tuple[slice, slice]]:
    """The regions of the input outside the pasted image (letterbox padding)."""
    rows, cols = paste
    bands = []
    if rows.start > 0:
        bands.append((slice(0, rows.start), slice(0, width)))
    if rows.stop < height:
        bands.append((slice(rows.stop, height), slice(0, width)))
    if cols.start > 0:
        bands.append((rows, slice(0, cols.start)))
    if cols.stop < width:
        bands.append((rows, slice(cols.stop, width)))
    return bands
