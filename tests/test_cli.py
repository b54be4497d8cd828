"""`edged infer` and `edged model inspect` on the project's own fixture models, and every bad input the
inference issue lists: a short message naming the cause and the fix, exit status 1, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edged import __version__
from edged.config.model import ModelConfig
from edged.errors import ModelError
from edged.inference.model import describe_model
from edged.inference.tflite_file import FileFacts

MODELS = Path(__file__).parent / "fixtures" / "models"
CLASSIFIER = MODELS / "shapes_classifier_quant.tflite"
DETECTOR = MODELS / "shapes_yolov8_int8.tflite"


def edged(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edged", *map(str, args)], capture_output=True, text=True, timeout=120)


def assert_clean_failure(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


@pytest.fixture(scope="module")
def red_square_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A grey image with one red square at x 60–140, y 40–120 (of 320×240)."""
    image = np.full((240, 320, 3), 150, np.uint8)
    image[40:120, 60:140] = (40, 40, 220)  # BGR red, as drawn by edged.sources.shapes
    path = tmp_path_factory.mktemp("images") / "red_square.png"
    cv2.imwrite(str(path), image)
    return path


def test_version() -> None:
    done = edged("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"edged {__version__}"


def test_infer_json_classifies_the_red_square(red_square_image: Path) -> None:
    done = edged("infer", "--json", CLASSIFIER, red_square_image)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["image"] == str(red_square_image)
    assert result["task"] == "classification" and result["objects"] == []
    assert result["labels"][0]["label"] == "red_square"
    assert set(result["timing_ms"]) == {"read", "preprocess", "inference", "decode"}


def test_infer_json_boxes_the_red_square_where_it_was_drawn(red_square_image: Path) -> None:
    done = edged("infer", "--json", DETECTOR, red_square_image)
    assert done.returncode == 0, done.stderr
    (obj,) = json.loads(done.stdout)["objects"]
    assert obj["label"] == "red_square"
    box = obj["box_px"]
    assert abs(box["xmin"] - 60) < 16 and abs(box["xmax"] - 140) < 16
    assert abs(box["ymin"] - 40) < 16 and abs(box["ymax"] - 120) < 16
    assert abs(obj["box"]["xmin"] - box["xmin"] / 320) < 1e-3


def test_infer_human_output_and_annotate(red_square_image: Path, tmp_path: Path) -> None:
    done = edged("infer", DETECTOR, red_square_image, "--annotate", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 object(s)" in done.stdout and "red_square" in done.stdout
    annotated = cv2.imread(str(tmp_path / red_square_image.name))
    original = cv2.imread(str(red_square_image))
    assert annotated.shape == original.shape and not np.array_equal(annotated, original)


def test_inspect_json_of_the_fixture_detector() -> None:
    done = edged("model", "inspect", "--json", DETECTOR)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["task"], report["decoder"], report["num_classes"]) == ("detection", "yolov8", 3)
    assert report["labels"]["first"] == ["red_square", "green_circle", "blue_triangle"]
    assert report["input"]["dtype"] == "int8"


def test_missing_model(tmp_path: Path, red_square_image: Path) -> None:
    assert_clean_failure(edged("infer", tmp_path / "nope.tflite", red_square_image), "does not exist")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", ("is empty",)),
        (os.urandom(3000), ("not a TensorFlow Lite model",)),
        (b"<html><body>404 Not Found</body></html>" * 10, ("looks like text",)),
    ],
    ids=["empty", "random", "html"],
)
def test_not_a_model(tmp_path: Path, red_square_image: Path, content: bytes, words: tuple[str, ...]) -> None:
    model = tmp_path / "model.tflite"
    model.write_bytes(content)
    assert_clean_failure(edged("infer", model, red_square_image), *words)
    inspected = edged("model", "inspect", "--json", model)
    assert inspected.returncode == 1 and "Traceback" not in inspected.stderr
    report = json.loads(inspected.stdout)
    assert report["usable"] is False and all(word in report["error"] for word in words)


def test_truncated_model(tmp_path: Path, red_square_image: Path) -> None:
    model = tmp_path / "truncated.tflite"
    model.write_bytes(CLASSIFIER.read_bytes()[:2000])
    assert_clean_failure(edged("infer", model, red_square_image), "truncated or corrupt")


def test_label_count_mismatch(tmp_path: Path, red_square_image: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\ne\n")
    assert_clean_failure(edged("infer", DETECTOR, red_square_image, "--labels", labels), "5 classes", "3 classes")


def test_undecodable_image_does_not_stop_the_others(tmp_path: Path, red_square_image: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(200))
    done = edged("infer", "--json", CLASSIFIER, broken, red_square_image)
    assert_clean_failure(done, "cannot be decoded", "broken.jpg")
    assert json.loads(done.stdout)["labels"][0]["label"] == "red_square"


def test_bad_option_value(red_square_image: Path) -> None:
    assert_clean_failure(edged("infer", CLASSIFIER, red_square_image, "--threshold", "7"), "--threshold")


def test_unknown_label_in_filters(red_square_image: Path) -> None:
    with pytest.raises(ModelError, match="did you mean 'red_square'"):
        from edged.inference.loader import load_bundle

        load_bundle(ModelConfig(path=DETECTOR, include_labels=["red_sqare"]))


def _details(name: str, index: int, shape: list[int], dtype: type = np.float32) -> dict[str, object]:
    return {"name": name, "index": index, "shape": np.array(shape), "dtype": dtype, "quantization": (0.0, 0)}


def test_unsupported_output_layout_lists_the_supported_ones(tmp_path: Path) -> None:
    image = [_details("image", 0, [1, 320, 320, 3])]
    outputs = [_details("boxes", 1, [1, 49104, 4]), _details("scores", 2, [1, 49104, 90])]
    with pytest.raises(ModelError) as info:
        describe_model(tmp_path / "effdet.tflite", "0" * 64, FileFacts(()), image, outputs, {},
                       ModelConfig(path=tmp_path / "effdet.tflite"))  # fmt: skip
    message = str(info.value)
    assert "unsupported output layout" in message and "[1, 49104, 90]" in message
    assert "YOLOv8: one output [1, 4+C, N]" in message and "TFLite_Detection_PostProcess" in message


def test_channels_first_input_is_explained(tmp_path: Path) -> None:
    image = [_details("images", 0, [1, 3, 640, 640])]
    outputs = [_details("out", 1, [1, 84, 8400])]
    with pytest.raises(ModelError, match="channels-first"):
        describe_model(tmp_path / "m.tflite", "0" * 64, FileFacts(()), image, outputs, {},
                       ModelConfig(path=tmp_path / "m.tflite"))  # fmt: skip
