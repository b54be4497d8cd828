"""MediaPipe Tasks as the reference peer: edged's labels and boxes against ImageClassifier / ObjectDetector.

Dev-only: MediaPipe runs in its own venv (`make mediapipe-venv`, .venv-mediapipe) through
tools/mediapipe_peer.py, because its wheel pulls opencv-contrib-python, which clashes with edged's
opencv-python-headless. Skipped when that venv is missing, unless EDGED_REQUIRE_MEDIAPIPE=1 (CI).

Tolerances (measured, see docs/models.md):
- same pixels in (images already at the model's input size): the same top-1 class, and every score MediaPipe
  reports within one uint8 output step (1/256) of edged's for the same class; every MediaPipe box has edged's
  twin with each edge within 2 pixels (MediaPipe truncates boxes to whole pixels) and the score within 1/256;
- photos and scenes that both resize themselves: the same top-1 class with scores within 0.10 (MediaPipe
  resamples differently from OpenCV's INTER_LINEAR); boxes with each edge within 12 pixels of a 320×240 scene
  (under 4 pixels of the 96×96 input), scores within 0.10.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edged.config.model import ModelConfig
from edged.inference.engine import ModelBundle
from edged.inference.inspection import inspect_model
from edged.inference.loader import load_bundle
from edged.sources.shapes import draw_scene, random_shapes
from edged.types import BBox

pytestmark = pytest.mark.conformance

ROOT = Path(__file__).resolve().parents[2]
PEER = ROOT / "tools" / "mediapipe_peer.py"
MODELS = ROOT / "tests" / "fixtures" / "models"
REFUSED = 3  # tools/mediapipe_peer.py's exit status for a model MediaPipe cannot load

SAME_PIXELS_SCORE = 1 / 256 + 1e-6
RESIZED_SCORE = 0.10
SAME_PIXELS_EDGE_PX = 2.0  # MediaPipe truncates box origin and size to whole pixels
RESIZED_EDGE_PX = 12.0  # 320×240 scenes into a 96×96 input: 3.3 frame pixels per input pixel, resampled apart
DETECTION_THRESHOLD = 0.5

SHARED_IMAGES = ("cat.bmp", "grace_hopper.bmp", "sunflower.bmp", "pets.jpg")
#: shared models MediaPipe Tasks loads with the task edged finds (the others are refused by MediaPipe itself:
#: no metadata for its ObjectDetector, int8 or un-normalized float inputs, extra state inputs, custom ops)
SHARED_COMPARABLE = {"mobilenet_v1_0.25_128_quant.tflite", "mobilenet_v2_1.0_224_quant.tflite"}
FIXTURE_CLASSIFIERS = (
    "shapes_classifier_quant.tflite",
    "shapes_classifier_q255.tflite",
    "shapes_classifier_q128.tflite",
    "teachable_quant/model.tflite",
)


@pytest.fixture(scope="module")
def peer_python() -> Path:
    python = Path(os.environ.get("EDGED_MEDIAPIPE_PYTHON", ROOT / ".venv-mediapipe" / "bin" / "python"))
    if not python.exists():
        message = f"MediaPipe peer not installed ({python}): run `make mediapipe-venv`"
        if os.environ.get("EDGED_REQUIRE_MEDIAPIPE"):
            pytest.fail(message)
        pytest.skip(message)
    return python


def mediapipe(python: Path, command: str, model: Path, images: list[Path], *extra: str) -> list[dict[str, Any]]:
    """One JSON object per image, or a single {"error": ...} when MediaPipe refuses the model."""
    done = subprocess.run(
        [str(python), str(PEER), command, str(model), *map(str, images), *extra],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode == REFUSED:
        return lines
    assert done.returncode == 0, done.stderr[-2000:]
    return lines


def edged_labels(model: ModelBundle, image: Path) -> dict[int, float]:
    prediction = model.predict(cv2.imread(str(image)), "bgr")
    return {label.index: label.score for label in prediction.labels}


def compare_classifications(model: ModelBundle, theirs: list[dict[str, Any]], images: list[Path], tol: float) -> None:
    for image, result in zip(images, theirs, strict=True):
        ours = edged_labels(model, image)
        their_top = result["labels"][0]
        our_top = max(ours, key=lambda index: ours[index])
        assert our_top == their_top["index"], (image.name, ours, result["labels"])
        for label in result["labels"]:
            if label["index"] in ours:
                assert abs(ours[label["index"]] - label["score"]) <= tol, (image.name, label, ours)


def square_copies(images: list[Path], size: tuple[int, int], directory: Path) -> list[Path]:
    """The images already at the model's input size, so both sides feed exactly the same pixels."""
    copies = []
    for image in images:
        copy = directory / f"{image.stem}_{size[0]}x{size[1]}.png"
        cv2.imwrite(str(copy), cv2.resize(cv2.imread(str(image)), size, interpolation=cv2.INTER_AREA))
        copies.append(copy)
    return copies


def test_shared_models_agree_with_mediapipe(shared_data: Path, peer_python: Path, tmp_path: Path) -> None:
    images = [shared_data / "images" / name for name in SHARED_IMAGES]
    compared, refused = set(), {}
    for path in sorted((shared_data / "models").glob("*.tflite")):
        report = inspect_model(ModelConfig(path=path))
        if not report.usable or report.spec is None:
            refused[path.name] = f"edged: {report.error}"
            continue
        command = "classify" if report.spec.task == "classification" else "detect"
        theirs = mediapipe(peer_python, command, path, images)
        if theirs and "error" in theirs[0]:
            refused[path.name] = f"MediaPipe: {theirs[0]['error']}"
            continue
        model = load_bundle(ModelConfig(path=path, num_threads=2, top_k=5))
        assert command == "classify", f"{path.name}: a shared detector MediaPipe loads needs a comparison here"
        compare_classifications(model, theirs, images, RESIZED_SCORE)
        exact = square_copies(images, model.spec.input_size, tmp_path)
        compare_classifications(model, mediapipe(peer_python, command, path, exact), exact, SAME_PIXELS_SCORE)
        compared.add(path.name)
    assert compared == SHARED_COMPARABLE, f"compared {sorted(compared)}; refused: {refused}"


def scenes(directory: Path, count: int, size: tuple[int, int], seed: int, shapes: tuple[int, int]) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        image = draw_scene(rng, size[0], size[1], random_shapes(rng, int(rng.integers(*shapes))))
        path = directory / f"scene_{seed}_{i}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


@pytest.mark.parametrize("name", FIXTURE_CLASSIFIERS)
def test_fixture_classifiers_agree_with_mediapipe(name: str, peer_python: Path, tmp_path: Path) -> None:
    model = load_bundle(ModelConfig(path=MODELS / name, num_threads=2, top_k=3))
    native = scenes(tmp_path, 12, model.spec.input_size, 41, (1, 2))
    compare_classifications(model, mediapipe(peer_python, "classify", MODELS / name, native), native, SAME_PIXELS_SCORE)
    resized = scenes(tmp_path, 12, (320, 240), 42, (1, 2))
    compare_classifications(model, mediapipe(peer_python, "classify", MODELS / name, resized), resized, RESIZED_SCORE)


def _box(data: dict[str, float]) -> BBox:
    return BBox(data["xmin"], data["ymin"], data["xmax"], data["ymax"])


def _edge_error_px(ours: BBox, theirs: BBox, width: int, height: int) -> float:
    return max(
        abs(ours.xmin - theirs.xmin) * width,
        abs(ours.xmax - theirs.xmax) * width,
        abs(ours.ymin - theirs.ymin) * height,
        abs(ours.ymax - theirs.ymax) * height,
    )


def decoded_candidates(model: ModelBundle) -> list[tuple[str, float, BBox]]:
    """Every box edged decoded from the last invoke, before its NMS, in frame coordinates."""
    candidates = model._candidates(model.params)
    assert model._plan is not None
    boxes = model._plan.geometry.to_frame(candidates.boxes)
    names = model.spec.labels
    return [
        (names.name(int(c)), float(s), BBox(*map(float, b)))
        for b, c, s in zip(boxes, candidates.classes, candidates.scores, strict=True)
    ]


def compare_detections(
    model: ModelBundle, theirs: list[dict[str, Any]], images: list[Path], edge_px: float, tol: float
) -> int:
    """Decoding: every MediaPipe detection is one of the boxes edged decoded (same label, every edge within
    `edge_px` pixels, score within `tol`). Results: it overlaps (IoU >= 0.5) one of edged's detections of that
    label, and every other edged detection overlaps a kept one with a higher score. (MediaPipe's NMS
    suppresses any overlap, across classes: its min_suppression_threshold defaults to 0; edged's NMS is
    class-aware at model.nms_iou, and the two break ties between equal scores differently.)"""
    matched = 0
    for image, result in zip(images, theirs, strict=True):
        frame = cv2.imread(str(image))
        height, width = frame.shape[:2]
        ours = list(model.predict(frame, "bgr").objects)
        decoded = decoded_candidates(model)
        kept = []
        for their in result["objects"]:
            box = _box(their["box"])
            twins = [
                c
                for c in decoded
                if c[0] == their["label"]
                and _edge_error_px(c[2], box, width, height) <= edge_px
                and abs(c[1] - their["score"]) <= tol
            ]
            assert twins, (image.name, their, [c for c in decoded if c[0] == their["label"]])
            final = [o for o in ours if o.label == their["label"] and o.box.iou(box) >= 0.5]
            assert final, (image.name, their, ours)
            kept.append(final[0])
            matched += 1
        for extra in ours:
            if extra not in kept:
                assert any(extra.box.iou(k.box) > 0 and k.score >= extra.score for k in kept), (image.name, extra, kept)
    return matched


def test_mediapipe_model_maker_detector_agrees_with_mediapipe(peer_python: Path, tmp_path: Path) -> None:
    path = MODELS / "shapes_mediapipe_detector.tflite"
    model = load_bundle(ModelConfig(path=path, num_threads=2, threshold=DETECTION_THRESHOLD))
    threshold = ("--score-threshold", str(DETECTION_THRESHOLD))
    native = scenes(tmp_path, 20, model.spec.input_size, 51, (0, 4))
    theirs = mediapipe(peer_python, "detect", path, native, *threshold)
    matched = compare_detections(model, theirs, native, SAME_PIXELS_EDGE_PX, SAME_PIXELS_SCORE)
    resized = scenes(tmp_path, 20, (320, 240), 52, (1, 4))
    theirs = mediapipe(peer_python, "detect", path, resized, *threshold)
    matched += compare_detections(model, theirs, resized, RESIZED_EDGE_PX, RESIZED_SCORE)
    assert matched >= 40, f"only {matched} detections compared"
