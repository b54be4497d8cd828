"""Issue 8, item 13: messages that must say what is wrong in words a user can act on.

- a `model.decoder` override that does not fit the model's outputs says so, and what `auto` would pick;
- `edged model inspect` and the daemon's start-up line read as plain English.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

MODELS = Path(__file__).parent / "fixtures" / "models"


def edged(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edged", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), np.full((96, 96, 3), 128, np.uint8))
    return path


@pytest.mark.parametrize(
    ("model", "forced", "auto"),
    [
        ("shapes_yolov8_int8", "classification", "yolov8"),  # was: "the model outputs 144 classes"
        ("shapes_classifier_quant", "yolov8", "classification"),  # was: "leaves no room for classes"
        ("shapes_classifier_quant", "ssd", "classification"),
        ("shapes_ssd", "classification", "ssd"),  # was: a traceback (IndexError in the decoder)
        ("shapes_ssd", "yolov5", "ssd"),
        ("shapes_yolov5", "yolov8", "yolov5"),  # its labels say 3 classes: 8 values = box + objectness + 3
        ("shapes_yolov8_int8", "yolov5", "yolov8"),
    ],
)
def test_a_decoder_that_does_not_fit_names_the_layout_and_what_auto_picks(
    photo: Path, model: str, forced: str, auto: str
) -> None:
    done = edged("infer", str(MODELS / f"{model}.tflite"), str(photo), "--decoder", forced)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    message = done.stderr.strip().splitlines()[-1]
    assert f"model.decoder = {forced!r} does not fit the output layout" in message, message
    assert f"`auto` would pick {auto!r}" in message, message


def test_a_decoder_that_fits_is_used(photo: Path) -> None:
    done = edged("--quiet", "infer", str(MODELS / "shapes_yolov8_int8.tflite"), str(photo), "--decoder", "yolov8")
    assert done.returncode == 0, done.stderr


def test_inspect_without_labels_says_so_plainly(tmp_path: Path) -> None:
    bare = shutil.copy(MODELS / "shapes_yolov8_int8.tflite", tmp_path / "detector.tflite")  # no metadata.yaml here
    done = edged("model", "inspect", str(bare))
    assert done.returncode == 0, done.stderr
    assert "from none (none)" not in done.stdout
    assert "labels: none found; results name the 3 classes by index (class_0 … class_2)" in done.stdout


def test_inspect_names_where_labels_came_from_in_words() -> None:
    done = edged("model", "inspect", str(MODELS / "shapes_ssd.tflite"))
    assert done.returncode == 0, done.stderr
    expected = f"labels: 3 from {MODELS / 'shapes_ssd_labelmap.txt'} beside the model"
    assert expected in done.stdout and "the model has 3 classes" in done.stdout, done.stdout


@pytest.mark.parametrize(("make", "summary"), [("file", "(19 bytes)"), ("missing", "(no such file)")])
def test_inspect_describes_a_file_it_cannot_use_without_question_marks(tmp_path: Path, make: str, summary: str) -> None:
    path = tmp_path / "model.tflite"
    if make == "file":
        path.write_text("this is not a model")
    done = edged("model", "inspect", str(path))
    assert done.returncode == 1
    first = done.stdout.splitlines()[0]
    assert first == f"{path}  {summary}" and "?" not in first


def test_the_start_up_line_says_what_model_runs_in_words(tmp_path: Path) -> None:
    config = tmp_path / "edged.toml"
    config.write_text(
        f'[model]\npath = "{MODELS / "shapes_classifier_quant.tflite"}"\n'
        '[camera]\ntype = "synthetic"\nwidth = 64\nheight = 64\nframes = 2\nrealtime = false\n'
    )
    done = edged("run", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "(classification, classification," not in done.stderr
    assert "model shapes_classifier_quant (sha256 " in done.stderr
    assert "): a classifier with 3 labels, on the CPU" in done.stderr
