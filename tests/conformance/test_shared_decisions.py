"""`edged model inspect` explains its normalization, resize and label choices for every third-party model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.conformance

#: (normalization value, origin), resize, labels origin
EXPECTED = {
    "automl_video_traffic_tracker.tflite": (("[-1, 0.992188]", "quantization"), "stretch", "sidecar"),
    "mobilenet_v1_0.25_128_quant.tflite": (("[-1, 0.992188]", "quantization"), "stretch", "metadata"),
    "mobilenet_v1_0.25_128_quant_edgetpu.tflite": (("[-1, 0.992188]", "quantization"), "stretch", "metadata"),
    "mobilenet_v2_1.0_224_quant.tflite": (("[-1, 0.992188]", "quantization"), "stretch", "metadata"),
    "ssd_mobilenet_v1_pets_300_quant.tflite": (("[-1, 0.992188]", "quantization"), "stretch", "none"),
    # int8, but calibrated on [-2.13, 2.63]: not a pixel range, so the Ultralytics default applies
    "yolov8n_full_int8.tflite": (("[0, 1]", "default"), "letterbox", "metadata"),
    "yolov8n_float_io.tflite": (("[0, 1]", "default"), "letterbox", "metadata"),
}


def inspect(path: Path) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "edged", "model", "inspect", "--json", str(path)], capture_output=True, text=True
    )
    return done.returncode, json.loads(done.stdout)


def test_every_shared_model_is_covered(shared_data: Path) -> None:
    names = {p.name for p in (shared_data / "models").glob("*.tflite")}
    assert names == {*EXPECTED, "invalid_custom_op.tflite"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_inspect_explains_its_choices(shared_data: Path, name: str) -> None:
    code, report = inspect(shared_data / "models" / name)
    assert code == 0, report
    decisions = report["decisions"]
    assert isinstance(decisions, dict)
    (norm_value, norm_origin), resize, labels = EXPECTED[name]
    assert (decisions["normalization"]["value"], decisions["normalization"]["origin"]) == (norm_value, norm_origin)
    assert (decisions["resize"]["value"], decisions["resize"]["origin"]) == (resize, "default")
    assert decisions["labels"]["origin"] == labels
    assert all(decision["reason"] for decision in decisions.values())
    if norm_origin == "quantization":
        assert "scale 0.0078125, zero point 128" in decisions["normalization"]["reason"]


def test_yolov8n_int8_says_why_its_quantization_is_not_followed(shared_data: Path) -> None:
    _, report = inspect(shared_data / "models" / "yolov8n_full_int8.tflite")
    reason = report["decisions"]["normalization"]["reason"]  # type: ignore[index]
    assert "covers [-2.127, 2.631], not a pixel range" in reason


def test_pets_ssd_lists_where_it_looked_for_labels(shared_data: Path) -> None:
    _, report = inspect(shared_data / "models" / "ssd_mobilenet_v1_pets_300_quant.tflite")
    looked = report["labels"]["looked"]  # type: ignore[index]
    assert looked[0] == "model.labels / --labels: not set"
    assert "carries no associated files" in looked[1]
    assert "ssd_mobilenet_v1_pets_300_quant_labels.txt" in looked[2] and "labelmap.txt" in looked[2]
    assert report["labels"]["nearby_files_that_fit"]  # type: ignore[index]
