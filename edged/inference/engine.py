"""The model bundle: one loaded model with its input plan, decoder and labels, ready to turn images into
predictions. A bundle is immutable from the outside and used by one thread at a time; the pipeline swaps
whole bundles between frames.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edged.config.model import ModelConfig
from edged.errors import ModelError
from edged.inference import decoders
from edged.inference.model import ModelSpec
from edged.inference.preprocess import (
    FULL_FRAME,
    Geometry,
    InputPlan,
    InputRecipe,
    PreparedInput,
    Roi,
    plan_key,
    value_table,
)
from edged.types import BBox, ColorOrder, Detection, ImageArray, Label, ModelInfo, Prediction


@dataclass(frozen=True)
class DecodeParams:
    """Per-class thresholds (inf = never reported) and the limits of the decoders."""

    thresholds: npt.NDArray[np.float32]
    top_k: int
    nms_iou: float
    max_detections: int

    @functools.cached_property
    def every_class_allowed(self) -> bool:
        """No include/exclude list: classification can rank the raw output and dequantize only the top-k."""
        return bool(np.isfinite(self.thresholds).all())


def known_label_index(name: str, spec: ModelSpec, key: str) -> int:
    """The class index of `name`, or a ModelError naming the config key, the close matches and the label source."""
    index = spec.labels.index_of(name)
    if index is None:
        close = difflib.get_close_matches(name, spec.labels.names, n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise ModelError(
            f"{key}: {name!r} is not one of the model's labels{hint}; labels come from {spec.labels.origin}"
        )
    return index


def decode_params(spec: ModelSpec, config: ModelConfig) -> DecodeParams:
    """Fold threshold, per-label thresholds and include/exclude lists into one per-class threshold array."""
    count = spec.num_classes or len(spec.labels.names)
    base = config.classification_threshold() if spec.task == "classification" else config.detection_threshold()
    thresholds = np.full(count, base, np.float32)
    for name, value in config.label_thresholds.items():
        thresholds[known_label_index(name, spec, "model.label_thresholds")] = value
    if config.include_labels:
        allowed = {known_label_index(n, spec, "model.include_labels") for n in config.include_labels}
        mask = np.ones(count, bool)
        mask[list(allowed)] = False
        thresholds[mask] = np.inf
    for name in config.exclude_labels:
        thresholds[known_label_index(name, spec, "model.exclude_labels")] = np.inf
    return DecodeParams(thresholds, config.top_k, config.nms_iou, config.max_detections)


_SERIALS = itertools.count(1)


class ModelBundle:
    """Interpreter + input plan + decoder + labels + ModelInfo: everything one inference needs."""

    def __init__(
        self,
        interpreter: Any,
        spec: ModelSpec,
        info: ModelInfo,
        params: DecodeParams,
        accelerator: str,
        roi: Roi = FULL_FRAME,
    ) -> None:
        self.serial = next(_SERIALS)  # never reused, unlike id(): what values derived for this bundle are keyed on
        self.interpreter = interpreter
        self.spec = spec
        self.info = info
        self.params = params
        self.accelerator = accelerator
        self.roi = roi
        self._input_view: Callable[[], npt.NDArray[Any]] = interpreter.tensor(spec.input.index)
        width, height = spec.input_size
        table = value_table(spec.normalization, spec.input.dtype, spec.input.scale, spec.input.zero_point)
        self.recipe = InputRecipe(width, height, spec.color, table, spec.resize, np.dtype(spec.input.dtype))
        self._plan: InputPlan | None = None
        self._state: list[tuple[int, int, npt.NDArray[Any]]] = []
        self.closed = False
        #: A hosted version's own [model] settings (thresholds, label filters) over the device's live [model] table.
        self.settings: dict[str, Any] = {}
        self.reset_state()
        self._decode = self._decoder()

    def reset_state(self) -> None:
        """Zero the recurrent state of a tracker model (a fresh sequence starts at the next frame)."""
        self._state = [
            (inp.index, out.index, np.full(inp.shape, inp.zero_point, np.dtype(inp.dtype)))
            for inp, out in self.spec.state_pairs
        ]

    def _plan_for(self, image: ImageArray, color: ColorOrder, roi: Roi) -> InputPlan:
        key = plan_key(image, color, roi)
        plan = self._plan
        if plan is None or plan.key != key:  # a new frame size or ROI (or the first frame): plan once, reuse after
            plan = self._plan = self.recipe.plan(key[0], key[1], color, roi)
        return plan

    def model_config(self, configured: ModelConfig) -> ModelConfig:
        """The [model] settings this bundle runs with: the device's live table, with a hosted version's own over it."""
        return configured.model_copy(update=self.settings) if self.settings else configured

    def predict(
        self,
        image: ImageArray,
        color: ColorOrder = "bgr",
        *,
        roi: Roi | None = None,
        params: DecodeParams | None = None,
        prepared: PreparedInput | None = None,
    ) -> Prediction:
        """Preprocess, invoke and decode one H×W×3 uint8 image.

        `roi` and `params` (thresholds, label filters) default to the bundle's own; the pipeline passes the ones of
        the current configuration, so they change live without rebuilding the bundle.

        `prepared` is `image` already preprocessed by another thread (`InputPreparer`); it is copied into the
        tensor only if it was made for this bundle, frame size, colour order and ROI, otherwise `image` is
        preprocessed here. Either way `timing_ms["preprocess"]` is the whole preparation of this frame's input:
        the time the preparer took plus the copy into the tensor.
        """
        if self.closed:
            raise ModelError(f"the model bundle {self.info.name} {self.info.version} was closed (a bug: report it)")
        start = time.perf_counter()
        geometry, ahead_ms = self.fill_input(image, color, self.roi if roi is None else roi, prepared)
        filled = time.perf_counter()
        self.invoke()
        invoked = time.perf_counter()
        labels, objects = self.decode(geometry, self.params if params is None else params)
        decoded = time.perf_counter()
        timing = {
            "preprocess": ahead_ms + (filled - start) * 1000.0,
            "inference": (invoked - filled) * 1000.0,
            "decode": (decoded - invoked) * 1000.0,
        }
        return Prediction(self.spec.task, labels, objects, timing)

    # The three steps of predict(), public so that `edged bench` can measure the CPU time of each alone.
    def fill_input(
        self, image: ImageArray, color: ColorOrder, roi: Roi, prepared: PreparedInput | None = None
    ) -> tuple[Geometry, float]:
        """Write `image`'s input into the tensor (a matching `prepared` is copied, then released); returns the
        geometry and the milliseconds the preparer spent ahead."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ModelError(f"expected an H×W×3 uint8 image, got shape {image.shape} {image.dtype}")
        view = self._input_view()
        if prepared is not None and prepared.matches(self.recipe, plan_key(image, color, roi)):
            np.copyto(view[0], prepared.buffer)
            prepared.release()  # copied: the preparer may write the buffer again (two buffers then suffice)
            geometry, ahead_ms = prepared.geometry, prepared.preprocess_ms
        else:
            plan = self._plan_for(image, color, roi)
            plan.fill(image, view[0])
            geometry, ahead_ms = plan.geometry, 0.0
        del view  # the interpreter refuses to run while a view of its memory is alive
        for input_index, _, value in self._state:
            self.interpreter.set_tensor(input_index, value)
        return geometry, ahead_ms

    def invoke(self) -> None:
        """Run the model on the filled input, then keep a tracker's recurrent state for the next frame."""
        self.interpreter.invoke()
        for position, (input_index, output_index, _) in enumerate(self._state):
            self._state[position] = (input_index, output_index, self.interpreter.get_tensor(output_index))

    def decode(self, geometry: Geometry, params: DecodeParams) -> tuple[tuple[Label, ...], tuple[Detection, ...]]:
        """The labels and boxes of the last invoke(), boxes mapped back to the frame through `geometry`."""
        return self._decode(geometry, params)

    def _output(self, position: int) -> npt.NDArray[Any]:
        return self.interpreter.get_tensor(self.spec.outputs[position].index)  # type: ignore[no-any-return]

    def _decoder(self) -> Callable[[Geometry, DecodeParams], tuple[tuple[Label, ...], tuple[Detection, ...]]]:
        spec = self.spec
        names = spec.labels
        first = spec.outputs[0]
        detector = spec.facts.detector
        if spec.decoder == "ssd_anchors" and detector is not None:
            self._anchors = spec.anchors()
            self._coder = decoders.BoxCoder(
                detector.y_scale or 1.0, detector.x_scale or 1.0, detector.h_scale or 1.0, detector.w_scale or 1.0,
                detector.apply_exponential_on_box_size,
            )  # fmt: skip
        if spec.decoder == "classification":

            def classify(_: Geometry, params: DecodeParams) -> tuple[tuple[Label, ...], tuple[Detection, ...]]:
                raw = self._output(0).reshape(-1)
                if params.every_class_allowed:
                    top = decoders.top_raw_classes(raw, first.scale, first.zero_point, params.thresholds, params.top_k)
                else:
                    scores = decoders.dequantize(raw, first.scale, first.zero_point)
                    top = decoders.top_classes(scores, params.thresholds, params.top_k)
                return tuple(Label(i, names.name(i), s) for i, s in top), ()

            return classify

        def detect(geometry: Geometry, params: DecodeParams) -> tuple[tuple[Label, ...], tuple[Detection, ...]]:
            candidates = self._candidates(params)
            if spec.decoder not in ("ssd", "yolo_e2e"):  # those come out of the model's own NMS
                candidates = decoders.nms(candidates, params.nms_iou, params.max_detections)
            else:
                order = np.argsort(-candidates.scores, kind="stable")[: params.max_detections]
                candidates = candidates.take(order)
            boxes = geometry.to_frame(candidates.boxes)
            objects = tuple(
                Detection(int(c), names.name(int(c)), float(s), _bbox(b))
                for b, c, s in zip(boxes, candidates.classes, candidates.scores, strict=False)
            )
            return (), objects

        return detect

    def _candidates(self, params: DecodeParams) -> decoders.Candidates:
        spec = self.spec
        first = spec.outputs[0]
        if spec.decoder == "ssd":
            boxes, classes, scores, count = (self._output(i) for i in range(4))
            return decoders.decode_ssd(
                boxes.reshape(-1, 4), classes.reshape(-1), scores.reshape(-1),
                float(count.reshape(-1)[0]), params.thresholds,
            )  # fmt: skip
        if spec.decoder == "ssd_anchors":
            boxes_info, scores_info = spec.outputs
            return decoders.decode_ssd_anchors(
                self._output(0)[0], (boxes_info.scale, boxes_info.zero_point),
                self._output(1)[0], (scores_info.scale, scores_info.zero_point),
                self._anchors, self._coder, bool(spec.facts.detector and spec.facts.detector.sigmoid_score),
                params.thresholds, spec.background_class,
            )  # fmt: skip
        raw = self._output(0)[0]
        if spec.decoder == "yolo_e2e":
            return decoders.decode_yolo_e2e(raw, first.scale, first.zero_point, params.thresholds, spec.input_size)
        if spec.decoder == "yolov8":
            rows = raw if raw.shape[0] < raw.shape[1] else np.ascontiguousarray(raw.T)
            return decoders.decode_yolov8(rows, first.scale, first.zero_point, params.thresholds, spec.input_size)
        rows = raw if raw.shape[0] > raw.shape[1] else np.ascontiguousarray(raw.T)
        return decoders.decode_yolov5(rows, first.scale, first.zero_point, params.thresholds, spec.input_size)

    def close(self) -> None:
        """Drop the interpreter (and with it any delegate) now rather than at garbage collection."""
        self.closed = True
        self._input_view = _closed
        self.interpreter = None


def _closed() -> npt.NDArray[Any]:
    raise ModelError("this model bundle was closed")


def _bbox(values: npt.NDArray[np.float32]) -> BBox:
    return BBox(float(values[0]), float(values[1]), float(values[2]), float(values[3]))
