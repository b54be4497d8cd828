#!/usr/bin/env python3
"""Regenerate the small TFLite fixture models in tests/fixtures/models (developer tool; needs TensorFlow).

    /work/tfvenv/bin/python tools/make_test_models.py     # or: make fixtures
    python tools/make_test_models.py --check-only         # re-measure the committed models (no TensorFlow)

Every training image is drawn by `edged.sources.shapes`, the module behind the synthetic frame source, so
the fixtures know exactly the scenes the tests show them. The script trains one tiny classifier and one tiny
grid detector and exports them in the layouts edged must read: a quantized classifier with metadata labels,
a Teachable Machine float classifier, an SSD with a real TFLite_Detection_PostProcess op, YOLOv8 int8 and
YOLOv5 float; and (issue 10) classifiers whose uint8 inputs are calibrated on [0, 1] and on [-1, 1], YOLOv8
with Ultralytics' embedded metadata.json, an Ultralytics nms=True export [1, 300, 6] and a MediaPipe Model
Maker detector (raw boxes + scores, anchors in DETECTOR_METADATA). `--only NAME` builds just the named ones.
It measures each .tflite on held-out scenes, again with ai_edge_litert in a second Python when TensorFlow's
interpreter is the one in process, and only then copies them into place: a model below the quality bar never
replaces a committed fixture.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from edged.sources.shapes import SHAPE_CLASSES, Shape, draw_scene, random_shapes  # noqa: E402
from edged.types import BBox  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixture_exports  # noqa: E402
import fixture_metadata  # noqa: E402

FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures" / "models"
NUM_CLASSES = len(SHAPE_CLASSES)

CLASSIFIER_SIZE = 64  # the quantized classifier's input side
TEACHABLE_SIZE = 96  # the float classifier shares the classifier's weights at another size (global pooling)
DETECTOR_SIZE = 96
GRID = 12  # detector cells per side: stride 8
PRIOR = 0.3  # side of the box a cell predicts when its size outputs are 0 (also the SSD anchor side)
SSD_SCALES = {"y_scale": 10.0, "x_scale": 10.0, "h_scale": 5.0, "w_scale": 5.0}  # TF OD API defaults
SSD_MAX_DETECTIONS = 10
BATCH_SIZE = 128  # on 2 CPU cores, twice the throughput of 64

SCORE_THRESHOLD = 0.5
NMS_IOU = 0.5  # also the SSD op's NMS threshold
MATCH_IOU = 0.5
MIN_CLASSIFIER_ACCURACY = 0.95
MIN_DETECTOR_RECALL = 0.85  # overall: shapes found with the right class and IoU >= 0.5
MIN_CLASS_RECALL = 0.75  # per class, so that e.g. the red square is never the one that is missed
MAX_FALSE_POSITIVES_PER_IMAGE = 0.3
EVAL_FRAME = (640, 480)  # held-out scenes other than "native" are drawn at this camera size
HELD_OUT_SEED_OFFSET = 1000  # evaluation scenes come from seed + this, never from a training seed

RGBImage = npt.NDArray[np.uint8]
Mode = Literal["native", "resize", "letterbox"]
#: (class index, box normalized to the model input)
Target = tuple[int, BBox]
#: (class index, score, box normalized to the model input)
Detection = tuple[int, float, BBox]


# --------------------------------------------------------------------------------------------------- drawing


def _rgb(bgr: npt.NDArray[Any]) -> RGBImage:
    """OpenCV draws BGR; TFLite models, these included, take RGB."""
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.uint8)


def _camera_size(rng: np.random.Generator, size: int) -> tuple[int, int]:
    """A frame size with a random aspect ratio, so that resizing and letterboxing see varied inputs."""
    height = int(rng.integers(size, 4 * size))
    width = int(np.clip(height * rng.uniform(0.75, 1.8), size, 6 * size))
    return width, height


def render(
    rng: np.random.Generator,
    size: int,
    shapes: Sequence[Shape],
    mode: Mode,
    frame: tuple[int, int] | None = None,
) -> tuple[RGBImage, list[Target]]:
    """Draw `shapes` and bring the picture to the model's square input the way a camera frame gets there.

    "native" draws at the input size; "resize" draws a larger frame and resizes it (shapes keep their aspect,
    edges get soft); "letterbox" draws a frame and pads it to a square as Ultralytics does (shapes take the
    frame's aspect ratio). Returns the RGB input and the shapes' boxes in input coordinates.
    """
    targets = [(SHAPE_CLASSES.index(s.kind), s.box) for s in shapes]
    if mode == "native":
        return _rgb(draw_scene(rng, size, size, list(shapes))), targets
    width, height = frame or _camera_size(rng, size)
    bgr = draw_scene(rng, width, height, list(shapes))
    interpolation = cv2.INTER_AREA if rng.random() < 0.5 else cv2.INTER_LINEAR
    if mode == "resize":
        return _rgb(cv2.resize(bgr, (size, size), interpolation=interpolation)), targets
    scale = min(size / width, size / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    left, top = (size - new_w) // 2, (size - new_h) // 2
    canvas = np.full((size, size, 3), 114, np.uint8)
    resized = cv2.resize(bgr, (new_w, new_h), interpolation=interpolation)
    canvas[top : top + new_h, left : left + new_w] = resized
    sx, sy = new_w / size, new_h / size
    boxed = [
        (
            c,
            BBox(
                b.xmin * sx + left / size,
                b.ymin * sy + top / size,
                b.xmax * sx + left / size,
                b.ymax * sy + top / size,
            ),
        )
        for c, b in targets
    ]
    return _rgb(canvas), boxed


def classifier_set(rng: np.random.Generator, count: int, size: int) -> tuple[RGBImage, npt.NDArray[np.int64]]:
    """Images holding one shape each, with their class indices."""
    images, labels = [], []
    for _ in range(count):
        shapes = random_shapes(rng, 1)
        image, targets = render(rng, size, shapes, "native" if rng.random() < 0.5 else "resize")
        images.append(image)
        labels.append(targets[0][0])
    return np.stack(images), np.array(labels, np.int64)


def scene_set(
    rng: np.random.Generator,
    count: int,
    size: int,
    min_shapes: int,
    modes: Sequence[Mode],
    frame: tuple[int, int] | None = None,
) -> tuple[RGBImage, list[list[Target]]]:
    """Scenes of `min_shapes`..3 shapes, cycling through `modes`."""
    images, targets = [], []
    for i in range(count):
        shapes = random_shapes(rng, int(rng.integers(min_shapes, 4)))
        image, boxes = render(rng, size, shapes, modes[i % len(modes)], frame)
        images.append(image)
        targets.append(boxes)
    return np.stack(images), targets


# ---------------------------------------------------------------------------------------- detector targets


def grid_targets(targets: Sequence[Target]) -> npt.NDArray[np.float32]:
    """The training target of one scene: per cell objectness, class, centre offset (cells) and log size.

    A shape's centre cell is positive, and so are the cells near its centre when it is big: several cells then
    predict the same box, which is the redundancy NMS expects (and what makes recall survive quantization).
    """
    out = np.zeros((GRID, GRID, 6), np.float32)
    best = np.full((GRID, GRID), np.inf)
    centres = np.arange(GRID) + 0.5
    for class_id, box in targets:
        cx, cy = (box.xmin + box.xmax) / 2 * GRID, (box.ymin + box.ymax) / 2 * GRID
        radius = max(0.5, 0.35 * min(box.width, box.height) * GRID)
        dx = np.broadcast_to(cx - centres[None, :], (GRID, GRID))
        dy = np.broadcast_to(cy - centres[:, None], (GRID, GRID))
        near = (np.abs(dx) < radius) & (np.abs(dy) < radius)
        near[min(int(cy), GRID - 1), min(int(cx), GRID - 1)] = True
        distance = np.hypot(dx, dy)
        take = near & (distance < best)
        best[take] = distance[take]
        out[take] = [1.0, class_id, 0, 0, np.log(box.width / PRIOR), np.log(box.height / PRIOR)]
        out[..., 2][take] = dx[take]
        out[..., 3][take] = dy[take]
    return out


def detector_loss(y_true: Any, y_pred: Any) -> Any:
    """Objectness BCE over all cells, class cross-entropy and Huber box loss on positives; per positive."""
    import tensorflow as tf

    positive = y_true[..., 0]
    count = tf.maximum(tf.reduce_sum(positive), 1.0)
    obj = tf.nn.sigmoid_cross_entropy_with_logits(labels=positive, logits=y_pred[..., 0])
    cls = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(y_true[..., 1], tf.int32), logits=y_pred[..., 1 : 1 + NUM_CLASSES]
    )
    box = tf.reduce_sum(tf.keras.losses.huber(y_true[..., 2:6, None], y_pred[..., 4:8, None], delta=0.5), -1)
    return (tf.reduce_sum(obj) + tf.reduce_sum(cls * positive) + 4.0 * tf.reduce_sum(box * positive)) / count


# ------------------------------------------------------------------------------------------------ training


def _conv(x: Any, filters: int, stride: int = 1, dilation: int = 1, separable: bool = False) -> Any:
    from tensorflow import keras

    layer = keras.layers.SeparableConv2D if separable else keras.layers.Conv2D
    x = layer(filters, 3, strides=stride, dilation_rate=dilation, padding="same", use_bias=False)(x)
    return keras.layers.ReLU()(keras.layers.BatchNormalization()(x))


def build_classifier() -> Any:
    """A size-agnostic classifier (global pooling), so one set of weights serves both classifier fixtures."""
    from tensorflow import keras

    inputs = keras.Input((None, None, 3))
    x = _conv(inputs, 16, stride=2)
    x = _conv(x, 24, stride=2)
    x = _conv(x, 32, stride=2)
    x = _conv(x, 48, separable=True)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES, activation="softmax")(x))


def build_detector() -> Any:
    """Stride-8 grid detector; dilated separable convolutions give cells a view wider than the largest shape.

    Channels per cell: objectness logit, class logits, centre offset (dx, dy in cells), log size (w, h).
    """
    from tensorflow import keras

    inputs = keras.Input((DETECTOR_SIZE, DETECTOR_SIZE, 3))
    x = _conv(inputs, 16, stride=2)
    x = _conv(x, 32, stride=2)
    x = _conv(x, 48, stride=2)
    x = _conv(x, 64, separable=True)
    x = _conv(x, 64, dilation=2, separable=True)
    x = _conv(x, 64, dilation=4, separable=True)
    return keras.Model(inputs, keras.layers.Conv2D(1 + NUM_CLASSES + 4, 1)(x))


def train(model: Any, images: RGBImage, targets: npt.NDArray[Any], loss: Any, epochs: int) -> float:
    """Fit on uint8 RGB images normalized to [-1, 1] by a training-only layer; returns the final loss."""
    from tensorflow import keras

    steps = epochs * int(np.ceil(len(images) / BATCH_SIZE))
    trainer = keras.Sequential([keras.layers.Rescaling(1 / 127.5, offset=-1.0), model])
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, steps, alpha=0.02)
    # XLA (jit_compile) made a CPU epoch about three times slower here.
    trainer.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, jit_compile=False)
    history = trainer.fit(images, targets, batch_size=BATCH_SIZE, epochs=epochs, verbose=0, shuffle=True)
    return float(history.history["loss"][-1])


# ------------------------------------------------------------------------------------------------- export


@dataclass(frozen=True)
class Quantization:
    """How to quantize an export: calibration inputs (already normalized) and the I/O tensor types."""

    samples: npt.NDArray[np.float32]
    input_type: Any
    output_type: Any


def calibration_inputs(images: RGBImage, scale: float, offset: float) -> npt.NDArray[np.float32]:
    """Normalized calibration images whose first pixels are 0 and 255, so the input range is exactly the
    full pixel range and the input tensor gets the textbook scale and zero point."""
    x = images.astype(np.float32).copy()
    x[:, 0, 0, :], x[:, 0, 1, :] = 0.0, 255.0
    return np.asarray(x * scale + offset, np.float32)


def freeze(model: Any, size: int) -> Any:
    """The Keras model as a constant-folded graph function: variables left in a SavedModel would survive
    conversion as READ_VARIABLE ops, uninitialized in the .tflite."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: model(x, training=False))
    return convert_variables_to_constants_v2(fn.get_concrete_function(tf.TensorSpec([1, size, size, 3])))


def convert(
    serve: Callable[[Any], Any],
    size: int,
    input_name: str,
    quantization: Quantization | None = None,
    custom_ops: bool = False,
) -> bytes:
    """SavedModel → TFLite, the only path on which the converter fuses the SSD postprocess (see NOTES.md)."""
    import tensorflow as tf

    module = tf.Module()
    module.serve = tf.function(serve)
    spec = tf.TensorSpec([1, size, size, 3], tf.float32, name=input_name)
    signature = module.serve.get_concrete_function(spec)
    with tempfile.TemporaryDirectory() as saved:
        tf.saved_model.save(module, saved, signatures=signature)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.allow_custom_ops = custom_ops
        if quantization is not None:
            samples = quantization.samples

            def representative() -> Iterator[list[npt.NDArray[np.float32]]]:
                for sample in samples:
                    yield [sample[None]]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = (
                [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
                if custom_ops
                else [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            )
            converter.inference_input_type = quantization.input_type
            converter.inference_output_type = quantization.output_type
        return bytes(converter.convert())


def _grid_columns() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Cell centres (x, y) in cells, in the row-major order of a reshaped [1, GRID, GRID, C] map."""
    ys, xs = np.meshgrid(np.arange(GRID) + 0.5, np.arange(GRID) + 0.5, indexing="ij")
    return xs.ravel().astype(np.float32), ys.ravel().astype(np.float32)


def _decode_grid(raw: Any) -> tuple[Any, Any, Any]:
    """Raw [1, G, G, 8] → (xywh [1, N, 4] normalized, objectness [1, N, 1], class probs [1, N, nc])."""
    import tensorflow as tf

    raw = tf.reshape(raw, [1, GRID * GRID, 1 + NUM_CLASSES + 4])
    gx, gy = _grid_columns()
    centre = (raw[..., 4:6] + np.stack([gx, gy], -1)[None]) / GRID
    size = PRIOR * tf.exp(raw[..., 6:8])
    xywh = tf.clip_by_value(tf.concat([centre, size], -1), 0.0, 1.0)
    return xywh, tf.sigmoid(raw[..., :1]), tf.nn.softmax(raw[..., 1 : 1 + NUM_CLASSES])


def yolov8_serve(core: Any) -> Callable[[Any], Any]:
    """Input pixels/255; output [1, 4+nc, N]: xywh then class scores (objectness folded in), no NMS."""
    import tensorflow as tf

    def serve(image: Any) -> Any:
        xywh, obj, cls = _decode_grid(core(image * 2.0 - 1.0))
        return tf.transpose(tf.concat([xywh, obj * cls], -1), [0, 2, 1])

    return serve


def yolov5_serve(core: Any) -> Callable[[Any], Any]:
    """Input pixels/255; output [1, N, 5+nc]: xywh, objectness, class probabilities."""
    import tensorflow as tf

    def serve(image: Any) -> Any:
        xywh, obj, cls = _decode_grid(core(image * 2.0 - 1.0))
        return tf.concat([xywh, obj, cls], -1)

    return serve


def ssd_anchors() -> npt.NDArray[np.float32]:
    """One PRIOR-sized anchor per cell, as (ycenter, xcenter, h, w) like the TF OD API anchor constant."""
    gx, gy = _grid_columns()
    return np.stack([gy / GRID, gx / GRID, np.full_like(gx, PRIOR), np.full_like(gx, PRIOR)], -1)


def _postprocess_implements() -> str:
    """The op attributes written the way the TF OD API TF2 exporter writes them (no `type:` fields)."""
    attrs = [
        ("max_detections", "i", str(SSD_MAX_DETECTIONS)),
        ("max_classes_per_detection", "i", "1"),
        ("detections_per_class", "i", "100"),
        ("use_regular_nms", "b", "false"),
        ("nms_score_threshold", "f", f"{1e-8:f}"),
        ("nms_iou_threshold", "f", f"{NMS_IOU:f}"),  # the TF OD API's 0.6 left duplicate boxes
        *((key, "f", f"{value:f}") for key, value in SSD_SCALES.items()),
        ("num_classes", "i", str(NUM_CLASSES)),
    ]
    parts = [f'attr {{ key: "{key}" value {{ {kind}: {value} }} }}' for key, kind, value in attrs]
    return " ".join(['name: "TFLite_Detection_PostProcess"', *parts])


def ssd_serve(core: Any) -> Callable[[Any], Any]:
    """Input (pixels-128)/128; the grid outputs re-expressed as SSD box encodings against fixed anchors.

    The encodings are linear in the grid outputs (ty = dy·y_scale/(G·PRIOR), th = log_h·h_scale), so the
    trained detector is an SSD box predictor as it stands; the converter swaps the dummy body for the real op.
    """
    import tensorflow as tf

    @tf.function(experimental_implements=_postprocess_implements())  # type: ignore[untyped-decorator]
    def postprocess(box_encodings: Any, class_predictions: Any, anchors: Any) -> tuple[Any, Any, Any, Any]:
        del box_encodings, class_predictions, anchors
        return (
            tf.constant(0.0, name="boxes"),
            tf.constant(0.0, name="classes"),
            tf.constant(0.0, name="scores"),
            tf.constant(0.0, name="num_detections"),
        )

    anchors = ssd_anchors()
    y_scale, x_scale = SSD_SCALES["y_scale"], SSD_SCALES["x_scale"]
    h_scale, w_scale = SSD_SCALES["h_scale"], SSD_SCALES["w_scale"]

    def serve(image: Any) -> dict[str, Any]:
        raw = tf.reshape(core(image), [1, GRID * GRID, 1 + NUM_CLASSES + 4])
        offset = raw[..., 4:6] / (GRID * PRIOR)
        encodings = tf.concat(
            [
                offset[..., 1:2] * y_scale,
                offset[..., 0:1] * x_scale,
                raw[..., 7:8] * h_scale,
                raw[..., 6:7] * w_scale,
            ],
            -1,
        )
        obj = tf.sigmoid(raw[..., :1])
        class_scores = tf.concat([1.0 - obj, obj * tf.nn.softmax(raw[..., 1 : 1 + NUM_CLASSES])], -1)
        boxes, classes, scores, count = postprocess(encodings, class_scores, tf.constant(anchors))
        return {
            "detection_boxes": boxes,
            "detection_classes": classes,
            "detection_scores": scores,
            "num_detections": count,
        }

    return serve


def tf1_output_order(model: bytes) -> bytes:
    """Make the model outputs the postprocess op's (boxes, classes, scores, count), named as in TF1 exports.

    The SavedModel path lists signature outputs in its own order; readers of SSD models expect the TF1 one.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    graph = tree.subgraphs[0]
    codes = [tree.operatorCodes[op.opcodeIndex].customCode for op in graph.operators]
    postprocess = graph.operators[codes.index(b"TFLite_Detection_PostProcess")]
    outputs = [int(i) for i in postprocess.outputs]
    if sorted(outputs) != sorted(int(i) for i in graph.outputs):
        raise RuntimeError("the postprocess op's outputs are not the model's outputs")
    graph.outputs = outputs
    for i, index in enumerate(outputs):
        graph.tensors[index].name = ("TFLite_Detection_PostProcess" + (f":{i}" if i else "")).encode()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(tree))


# ---------------------------------------------------------------------------------------- labels, metadata


def add_labels_metadata(path: Path, labels: Sequence[str]) -> None:
    """Append labels.txt as a zip, which is where the TFLite metadata populator puts associated files."""
    info = zipfile.ZipInfo("labels.txt", date_time=(2024, 1, 1, 0, 0, 0))  # fixed: reproducible bytes
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(info, "".join(f"{name}\n" for name in labels))
    with zipfile.ZipFile(path) as archive:
        if archive.namelist() != ["labels.txt"]:
            raise RuntimeError(f"{path.name}: unexpected associated files {archive.namelist()}")


def yolov8_metadata() -> str:
    """The Ultralytics export metadata (what `model.export()` writes to metadata.yaml)."""
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(SHAPE_CLASSES))
    return (
        "description: edged test fixture, coloured shapes in the Ultralytics YOLOv8 output layout\n"
        "author: edged tools/make_test_models.py\n"
        "license: Apache-2.0\n"
        f"stride: {DETECTOR_SIZE // GRID}\n"
        "task: detect\n"
        "batch: 1\n"
        f"imgsz:\n- {DETECTOR_SIZE}\n- {DETECTOR_SIZE}\n"
        f"names:\n{names}"
    )


def label_files() -> dict[str, str]:
    """Every sidecar label file, by path relative to the fixtures directory."""
    return {
        "teachable/labels.txt": "".join(f"{i} {name}\n" for i, name in enumerate(SHAPE_CLASSES)),
        "shapes_ssd_labelmap.txt": "???\n" + "".join(f"{name}\n" for name in SHAPE_CLASSES),
        "shapes_yolov8_metadata.yaml": yolov8_metadata(),
        "shapes_yolov5_labels.txt": "".join(f"{name}\n" for name in SHAPE_CLASSES),
        "teachable_quant/labels.txt": "".join(f"{i} {name}\n" for i, name in enumerate(SHAPE_CLASSES)),
    }


def ultralytics_metadata(nms: bool) -> dict[str, object]:
    """The dict Ultralytics' exporter embeds as metadata.json (its `self.metadata`, 8.3.x keys)."""
    return {
        "description": "edged test fixture, coloured shapes in an Ultralytics YOLO layout",
        "author": "edged tools/make_test_models.py",
        "date": "2024-01-01T00:00:00",
        "version": "8.3.0",
        "license": "Apache-2.0",
        "docs": "https://docs.ultralytics.com",
        "stride": DETECTOR_SIZE // GRID,
        "task": "detect",
        "batch": 1,
        "imgsz": [DETECTOR_SIZE, DETECTOR_SIZE],
        "names": {i: name for i, name in enumerate(SHAPE_CLASSES)},
        "args": {"batch": 1, "half": False, "int8": not nms, "nms": nms, "fraction": 1.0},
        "channels": 3,
        "end2end": False,
    }


# --------------------------------------------------------------------------------------------- evaluation


Kind = Literal["classifier", "ssd", "yolov8", "yolov5", "mediapipe", "yolo_nms"]


@dataclass(frozen=True)
class Fixture:
    """A model file and what its input expects: float value = pixel * pixel_scale + pixel_offset."""

    path: str
    kind: Kind
    size: int
    pixel_scale: float
    pixel_offset: float
    labels: tuple[str, ...] = ()  # sidecar label files it comes with (keys of label_files())

    @property
    def network(self) -> Literal["classifier", "detector"]:
        return "classifier" if self.kind == "classifier" else "detector"


FIXTURES = (
    Fixture("shapes_classifier_quant.tflite", "classifier", CLASSIFIER_SIZE, 1 / 127.5, -1.0),
    Fixture("teachable/model_unquant.tflite", "classifier", TEACHABLE_SIZE, 1 / 127.5, -1.0, ("teachable/labels.txt",)),
    Fixture("shapes_ssd.tflite", "ssd", DETECTOR_SIZE, 1 / 128, -1.0, ("shapes_ssd_labelmap.txt",)),
    Fixture("shapes_yolov8_int8.tflite", "yolov8", DETECTOR_SIZE, 1 / 255, 0.0, ("shapes_yolov8_metadata.yaml",)),
    Fixture("shapes_yolov5.tflite", "yolov5", DETECTOR_SIZE, 1 / 255, 0.0, ("shapes_yolov5_labels.txt",)),
    # issue 10: quantization-derived normalization, embedded Ultralytics metadata, MediaPipe Model Maker, NMS exports
    Fixture(
        "teachable_quant/model.tflite", "classifier", CLASSIFIER_SIZE, 1 / 255, 0.0, ("teachable_quant/labels.txt",)
    ),
    Fixture("shapes_classifier_q255.tflite", "classifier", CLASSIFIER_SIZE, 1 / 255, 0.0),
    Fixture("shapes_classifier_q128.tflite", "classifier", CLASSIFIER_SIZE, 1 / 128, -1.0),
    Fixture("shapes_yolov8_embedded.tflite", "yolov8", DETECTOR_SIZE, 1 / 255, 0.0),
    Fixture("shapes_yolov8_nms.tflite", "yolo_nms", DETECTOR_SIZE, 1 / 255, 0.0),
    Fixture("shapes_mediapipe_detector.tflite", "mediapipe", DETECTOR_SIZE, 1 / 127.5, -1.0),
)
FIXTURE_NAMES = tuple(f.path for f in FIXTURES)


def make_interpreter(path: Path) -> tuple[Any, str]:
    """ai_edge_litert when installed (the runtime edged uses), else TensorFlow's bundled interpreter."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        runtime = "ai_edge_litert"
    except ImportError:
        import tensorflow as tf

        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated", category=UserWarning)
        Interpreter, runtime = tf.lite.Interpreter, "tf.lite"
    interpreter = Interpreter(model_path=str(path), num_threads=2)
    interpreter.allocate_tensors()
    return interpreter, runtime


def invoke(interpreter: Any, fixture: Fixture, image: RGBImage) -> list[npt.NDArray[np.float32]]:
    """Run one RGB image through the model, quantizing the input and dequantizing the outputs as needed."""
    detail = interpreter.get_input_details()[0]
    x = image[None].astype(np.float32) * fixture.pixel_scale + fixture.pixel_offset
    scale, zero_point = detail["quantization"]
    if scale:
        info = np.iinfo(detail["dtype"])
        x = np.clip(np.round(x / scale + zero_point), info.min, info.max)
    interpreter.set_tensor(detail["index"], x.astype(detail["dtype"]))
    interpreter.invoke()
    outputs = []
    for out in interpreter.get_output_details():
        value = interpreter.get_tensor(out["index"]).astype(np.float32)
        scale, zero_point = out["quantization"]
        outputs.append((value - zero_point) * scale if scale else value)
    return outputs


def nms(detections: list[Detection]) -> list[Detection]:
    """Class-aware greedy non-maximum suppression."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: -d[1]):
        if all(k[0] != det[0] or k[2].iou(det[2]) < NMS_IOU for k in kept):
            kept.append(det)
    return kept


def decode(fixture: Fixture, outputs: list[npt.NDArray[np.float32]]) -> list[Detection]:
    """Raw outputs → thresholded, NMS-ed detections in the model input's normalized coordinates."""
    if fixture.kind == "ssd":
        boxes, classes, scores, count = outputs
        return [
            (int(classes[0, i]), float(scores[0, i]), BBox(*(float(v) for v in boxes[0, i, [1, 0, 3, 2]])))
            for i in range(int(count[0]))
            if scores[0, i] >= SCORE_THRESHOLD
        ]
    if fixture.kind == "yolo_nms":
        rows = outputs[0][0]
        return [
            (int(np.rint(r[5])), float(r[4]), BBox(*(float(v) for v in r[:4]))) for r in rows if r[4] >= SCORE_THRESHOLD
        ]
    if fixture.kind == "mediapipe":
        return nms(decode_mediapipe(outputs[0][0], outputs[1][0]))
    if fixture.kind == "yolov8":
        rows = outputs[0][0].T
        xywh, class_scores = rows[:, :4], rows[:, 4:]
    else:
        rows = outputs[0][0]
        xywh, class_scores = rows[:, :4], rows[:, 5:] * rows[:, 4:5]
    best = class_scores.argmax(1)
    found = []
    for i in np.flatnonzero(class_scores.max(1) >= SCORE_THRESHOLD):
        x, y, w, h = (float(v) for v in xywh[i])
        box = BBox(x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        found.append((int(best[i]), float(class_scores[i, best[i]]), box))
    return nms(found)


def decode_mediapipe(location: npt.NDArray[np.float32], logits: npt.NDArray[np.float32]) -> list[Detection]:
    """The fixture's own reading of its DETECTOR_METADATA: YXHW encodings, exp sizes, sigmoid scores,
    column 0 the background."""
    scales = fixture_exports.MEDIAPIPE_SCALES
    anchors = ssd_anchors()
    yc = location[:, 0] / scales["y_scale"] * anchors[:, 2] + anchors[:, 0]
    xc = location[:, 1] / scales["x_scale"] * anchors[:, 3] + anchors[:, 1]
    h = np.exp(location[:, 2] / scales["h_scale"]) * anchors[:, 2]
    w = np.exp(location[:, 3] / scales["w_scale"]) * anchors[:, 3]
    scores = 1.0 / (1.0 + np.exp(-logits[:, 1:]))
    best = scores.argmax(1)
    found = []
    for i in np.flatnonzero(scores.max(1) >= SCORE_THRESHOLD):
        box = BBox(float(xc[i] - w[i] / 2), float(yc[i] - h[i] / 2), float(xc[i] + w[i] / 2), float(yc[i] + h[i] / 2))
        found.append((int(best[i]), float(scores[i, best[i]]), box))
    return found


def match(detections: list[Detection], targets: list[Target]) -> tuple[list[bool], int]:
    """Which targets were found (right class, IoU >= 0.5) and how many detections matched nothing."""
    found = [False] * len(targets)
    false_positives = 0
    for class_id, _, box in sorted(detections, key=lambda d: -d[1]):
        candidates = [(box.iou(t[1]), j) for j, t in enumerate(targets) if not found[j] and t[0] == class_id]
        iou, j = max(candidates, default=(0.0, -1))
        if iou >= MATCH_IOU:
            found[j] = True
        else:
            false_positives += 1
    return found, false_positives


@dataclass(frozen=True)
class Score:
    """A fixture's held-out result and whether it clears the bar."""

    summary: str
    passed: bool


def score_classifier(interpreter: Any, fixture: Fixture, seed: int) -> Score:
    """Top-1 accuracy on one-shape images, half drawn at the input size, half resized from larger frames."""
    images, labels = classifier_set(np.random.default_rng(seed), 600, fixture.size)
    predicted = np.array([int(np.argmax(invoke(interpreter, fixture, image)[0])) for image in images])
    accuracy = float(np.mean(predicted == labels))
    summary = f"accuracy {accuracy:.3f} on {len(images)} held-out images"
    return Score(summary, accuracy >= MIN_CLASSIFIER_ACCURACY)


def score_detector(interpreter: Any, fixture: Fixture, seed: int) -> Score:
    """Recall and false positives on scenes drawn natively, and resized or letterboxed from EVAL_FRAME."""
    rng = np.random.default_rng(seed)
    found: dict[int, list[bool]] = {c: [] for c in range(NUM_CLASSES)}
    by_mode: dict[str, list[bool]] = {}
    false_positives = scenes = 0
    for mode in ("native", "resize", "letterbox"):
        images, targets = scene_set(rng, 100, fixture.size, 1, [mode], frame=EVAL_FRAME)
        for image, scene in zip(images, targets, strict=True):
            hits, fp = match(decode(fixture, invoke(interpreter, fixture, image)), scene)
            false_positives += fp
            scenes += 1
            by_mode.setdefault(mode, []).extend(hits)
            for (class_id, _), hit in zip(scene, hits, strict=True):
                found[class_id].append(hit)
    recall = float(np.mean([hit for hits in found.values() for hit in hits]))
    per_class = {SHAPE_CLASSES[c]: float(np.mean(hits)) for c, hits in found.items()}
    fp_rate = false_positives / scenes
    passed = (
        recall >= MIN_DETECTOR_RECALL
        and min(per_class.values()) >= MIN_CLASS_RECALL
        and fp_rate <= MAX_FALSE_POSITIVES_PER_IMAGE
    )
    modes = ", ".join(f"{mode} {np.mean(hits):.3f}" for mode, hits in by_mode.items())
    classes = ", ".join(f"{name} {value:.3f}" for name, value in per_class.items())
    return Score(
        f"recall {recall:.3f} ({classes}; {modes}), false positives/image {fp_rate:.3f} on {scenes} scenes",
        passed,
    )


def describe_tensors(interpreter: Any) -> list[str]:
    """One line per input/output tensor: role, shape, dtype and quantization."""
    lines = []
    for role, details in (
        ("in ", interpreter.get_input_details()),
        ("out", interpreter.get_output_details()),
    ):
        for d in details:
            scale, zero_point = d["quantization"]
            quant = f"scale {scale:.6g} zero_point {zero_point}" if scale else "not quantized"
            shape = [int(v) for v in d["shape"]]
            lines.append(f"    {role} {d['name']}: {shape} {np.dtype(d['dtype']).name}, {quant}")
    return lines


def evaluate(directory: Path, seed: int, only: Sequence[str] = ()) -> bool:
    """Measure the fixtures in `directory` (all, or those named in `only`) on held-out scenes; print the
    results; True if all pass."""
    seed += HELD_OUT_SEED_OFFSET
    all_passed = True
    for fixture in selected(only):
        path = directory / fixture.path
        interpreter, runtime = make_interpreter(path)
        scorer = score_classifier if fixture.kind == "classifier" else score_detector
        result = scorer(interpreter, fixture, seed)
        all_passed &= result.passed
        verdict = "ok" if result.passed else "BELOW THE QUALITY BAR"
        size = f"{path.stat().st_size / 1024:.1f} KiB"
        print(f"  {fixture.path} ({size}, {runtime}): {result.summary} — {verdict}")
        print("\n".join(describe_tensors(interpreter)))
    return all_passed


def selected(only: Sequence[str]) -> tuple[Fixture, ...]:
    """The fixtures named in `only` (every fixture when it is empty)."""
    return tuple(f for f in FIXTURES if not only or f.path in only)


# --------------------------------------------------------------------------------------------------- build


def elapsed(started: float) -> str:
    return f"{time.monotonic() - started:.0f} s"


def build_classifiers(staging: Path, seed: int, quick: bool, wanted: set[str]) -> None:
    """Train the shape classifier once; export it uint8-quantized at 64x64 (three input calibrations) and as
    float at 96x96. Only the exports named in `wanted` are written."""
    import tensorflow as tf

    started = time.monotonic()
    rng = np.random.default_rng(seed)
    images, labels = classifier_set(rng, 800 if quick else 4000, CLASSIFIER_SIZE)
    model = build_classifier()
    loss = train(model, images, labels, "sparse_categorical_crossentropy", 2 if quick else 10)
    print(f"  classifier trained on {len(images)} images, final loss {loss:.4f} ({elapsed(started)})")

    core = freeze(model, CLASSIFIER_SIZE)
    label_text = "".join(f"{name}\n" for name in SHAPE_CLASSES)
    if "shapes_classifier_quant.tflite" in wanted:
        quant = Quantization(calibration_inputs(images[:300], 1 / 127.5, -1.0), tf.uint8, tf.uint8)
        path = staging / "shapes_classifier_quant.tflite"
        path.write_bytes(convert(core, CLASSIFIER_SIZE, "input", quant))
        add_labels_metadata(path, SHAPE_CLASSES)

    # [0, 1] inputs, scale 1/255 zero point 0: Teachable Machine's quantized export (labels.txt beside it) and
    # one whose metadata claims mean/std 127.5 (which its quantization contradicts)
    unit = Quantization(calibration_inputs(images[:300], 1 / 255, 0.0), tf.uint8, tf.uint8)
    unit_model = None
    for name in ("teachable_quant/model.tflite", "shapes_classifier_q255.tflite"):
        if name in wanted:
            unit_model = unit_model or convert(fixture_exports.unit_input(core), CLASSIFIER_SIZE, "input", unit)
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(unit_model)
    if "shapes_classifier_q255.tflite" in wanted:
        metadata = fixture_metadata.classifier_metadata(127.5, 127.5, "labels.txt")
        fixture_metadata.populate(staging / "shapes_classifier_q255.tflite", metadata, {"labels.txt": label_text})
    if "shapes_classifier_q128.tflite" in wanted:  # [-1, 1] inputs, scale 1/128 zero point 128, metadata 127.5
        signed = Quantization(calibration_inputs(images[:300], 1 / 128, -1.0), tf.uint8, tf.uint8)
        path = staging / "shapes_classifier_q128.tflite"
        path.write_bytes(convert(core, CLASSIFIER_SIZE, "input", signed))
        metadata = fixture_metadata.classifier_metadata(127.5, 127.5, "labels.txt")
        fixture_metadata.populate(path, metadata, {"labels.txt": label_text})

    if "teachable/model_unquant.tflite" in wanted:
        teachable = staging / "teachable" / "model_unquant.tflite"
        teachable.parent.mkdir(parents=True, exist_ok=True)
        teachable.write_bytes(convert(freeze(model, TEACHABLE_SIZE), TEACHABLE_SIZE, "sequential_1_input"))
    print(f"  classifiers exported ({elapsed(started)})")


def build_detectors(staging: Path, seed: int, quick: bool, wanted: set[str]) -> None:
    """Train the grid detector once on 0–3-shape scenes; export the faces named in `wanted`: SSD, YOLOv8
    (int8, with sidecar or embedded metadata), YOLOv5, Ultralytics nms=True, MediaPipe Model Maker."""
    import tensorflow as tf

    started = time.monotonic()
    rng = np.random.default_rng(seed + 1)
    modes: list[Mode] = ["native", "native", "resize", "resize", "letterbox"]
    images, targets = scene_set(rng, 1500 if quick else 10000, DETECTOR_SIZE, 0, modes)
    grids = np.stack([grid_targets(t) for t in targets])
    model = build_detector()
    loss = train(model, images, grids, detector_loss, 3 if quick else 15)
    print(f"  detector trained on {len(images)} scenes, final loss {loss:.4f} ({elapsed(started)})")

    core = freeze(model, DETECTOR_SIZE)
    calibration = images[:300]
    if "shapes_ssd.tflite" in wanted:
        ssd_quant = Quantization(calibration_inputs(calibration, 1 / 128, -1.0), tf.uint8, tf.float32)
        ssd = convert(ssd_serve(core), DETECTOR_SIZE, "normalized_input_image_tensor", ssd_quant, custom_ops=True)
        (staging / "shapes_ssd.tflite").write_bytes(tf1_output_order(ssd))

    if wanted & {"shapes_yolov8_int8.tflite", "shapes_yolov8_embedded.tflite"}:
        v8_quant = Quantization(calibration_inputs(calibration, 1 / 255, 0.0), tf.int8, tf.int8)
        v8 = convert(yolov8_serve(core), DETECTOR_SIZE, "images", v8_quant)
        if "shapes_yolov8_int8.tflite" in wanted:
            (staging / "shapes_yolov8_int8.tflite").write_bytes(v8)
        if "shapes_yolov8_embedded.tflite" in wanted:  # copied alone to the Pi: the names travel inside
            path = staging / "shapes_yolov8_embedded.tflite"
            path.write_bytes(v8)
            fixture_metadata.add_ultralytics_metadata(path, ultralytics_metadata(nms=False))
    if "shapes_yolov5.tflite" in wanted:
        (staging / "shapes_yolov5.tflite").write_bytes(convert(yolov5_serve(core), DETECTOR_SIZE, "images"))

    grid = fixture_exports.Grid(GRID, PRIOR, NUM_CLASSES, core, _decode_grid, ssd_anchors())
    if "shapes_yolov8_nms.tflite" in wanted:
        path = staging / "shapes_yolov8_nms.tflite"
        path.write_bytes(convert(fixture_exports.yolo_nms(grid), DETECTOR_SIZE, "images"))
        fixture_metadata.add_ultralytics_metadata(path, ultralytics_metadata(nms=True))
    if "shapes_mediapipe_detector.tflite" in wanted:
        quant = Quantization(calibration_inputs(calibration, 1 / 128, -1.0), tf.uint8, tf.uint8)
        raw = convert(fixture_exports.mediapipe_detector(grid), DETECTOR_SIZE, "input", quant)
        path = staging / "shapes_mediapipe_detector.tflite"
        path.write_bytes(fixture_exports.order_outputs(raw, ["location", "score"]))
        decoding = fixture_metadata.DecodingOptions(
            num_classes=NUM_CLASSES + 1,
            num_boxes=GRID * GRID,
            x_scale=fixture_exports.MEDIAPIPE_SCALES["x_scale"],
            y_scale=fixture_exports.MEDIAPIPE_SCALES["y_scale"],
            w_scale=fixture_exports.MEDIAPIPE_SCALES["w_scale"],
            h_scale=fixture_exports.MEDIAPIPE_SCALES["h_scale"],
            apply_exponential_on_box_size=True,
            sigmoid_score=True,
        )
        metadata = fixture_metadata.raw_detector_metadata(127.5, 127.5, "labels.txt", ssd_anchors(), decoding)
        labels = "background\n" + "".join(f"{name}\n" for name in SHAPE_CLASSES)  # Model Maker: id 0 background
        fixture_metadata.populate(path, metadata, {"labels.txt": labels})
    print(f"  detectors exported ({elapsed(started)})")


def check_with_litert(staging: Path, seed: int, python: str | None, only: Sequence[str] = ()) -> bool:
    """Re-measure with ai_edge_litert in another interpreter when this one (the TF venv) lacks it."""
    try:
        import ai_edge_litert  # noqa: F401

        return True  # the in-process measurement already used it
    except ImportError:
        pass
    if python is None:
        print("  no --litert-python given: fixtures were not checked with ai_edge_litert")
        return False
    command = [
        python,
        str(Path(__file__).resolve()),
        "--check-only",
        "--out",
        str(staging),
        "--seed",
        str(seed),
        *(arg for name in only for arg in ("--only", name)),
    ]
    print(f"  re-measuring with {python} (ai_edge_litert):", flush=True)
    return subprocess.run(command, check=False).returncode == 0


def default_litert_python() -> str | None:
    """$EDGED_LITERT_PYTHON, else the project's venv (./.venv or ../venv beside the checkout) if it exists."""
    candidates: list[str | Path] = [
        os.environ.get("EDGED_LITERT_PYTHON", ""),
        REPO_ROOT / ".venv/bin/python",
        REPO_ROOT.parent / "venv/bin/python",
    ]
    return next((str(c) for c in candidates if c and Path(c).exists()), None)


def install(staging: Path, out: Path) -> list[Path]:
    """Copy the checked files into the fixtures directory."""
    written = []
    for source in sorted(p for p in staging.rglob("*") if p.is_file()):
        target = out / source.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(target)
    return written


def build(args: argparse.Namespace) -> int:
    """Train, export, measure, and install the fixtures (all, or those of --only) only if every one passes."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep the summary readable
    import tensorflow as tf
    from tensorflow import keras

    started = time.monotonic()
    chosen = selected(args.only)
    wanted = {f.path for f in chosen}
    staging = Path(tempfile.mkdtemp(prefix="edged-fixtures-"))
    print(f"building {len(chosen)} fixture(s) in {staging}")
    # each network is seeded on its own, so a partial build (--only) trains exactly what a full build trains
    tf.config.experimental.enable_op_determinism()
    if any(f.network == "classifier" for f in chosen):
        keras.utils.set_random_seed(args.seed)
        build_classifiers(staging, args.seed, args.quick, wanted)
    if any(f.network == "detector" for f in chosen):
        keras.utils.set_random_seed(args.seed + 1)
        build_detectors(staging, args.seed, args.quick, wanted)
    sidecars = {name for f in chosen for name in f.labels}
    for name, text in label_files().items():
        if name in sidecars:
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_text(text)
    print(f"built in {elapsed(started)}; held-out results:")
    passed = evaluate(staging, args.seed, args.only)
    passed = check_with_litert(staging, args.seed, args.litert_python, args.only) and passed
    if not passed:
        print(f"FAILED: nothing installed; the candidate models are in {staging}")
        return 1
    for path in install(staging, args.out):
        print(
            f"  wrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path} "
            f"({path.stat().st_size} bytes)"
        )
    shutil.rmtree(staging)
    print(f"done in {elapsed(started)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--out", type=Path, default=FIXTURES_DIR, help="fixtures directory (%(default)s)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--check-only", action="store_true", help="only measure the models already in --out")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="seconds of training to test the plumbing; the models will fail the bar",
    )
    parser.add_argument(
        "--litert-python",
        default=default_litert_python(),
        help="a Python with ai_edge_litert to re-measure the models with (default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        choices=FIXTURE_NAMES,
        metavar="NAME",
        help="build (or check) only this fixture; repeatable. Names: " + ", ".join(FIXTURE_NAMES),
    )
    args = parser.parse_args(argv)
    if args.check_only:
        print(f"held-out results for {args.out}:")
        return 0 if evaluate(args.out, args.seed, args.only) else 1
    return build(args)


if __name__ == "__main__":
    sys.exit(main())
