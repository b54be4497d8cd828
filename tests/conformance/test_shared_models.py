"""Conformance tier: real third-party models from ../shared/data (enabled by EDGED_CONFORMANCE_DATA).

These are the models users actually bring: Coral's quantized MobileNets, a TF Object Detection API SSD with a
label map, Ultralytics YOLOv8n (int8 and float), an AutoML Video tracker, an Edge TPU model, a broken model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edged.config.model import ModelConfig
from edged.errors import ModelError
from edged.inference.inspection import inspect_model
from edged.inference.loader import load_bundle
from edged.sources.imagefile import read_image

pytestmark = pytest.mark.conformance


def edged(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edged", *map(str, args)], capture_output=True, text=True, timeout=300)


def infer_json(*args: str) -> list[dict[str, Any]]:
    done = edged("infer", "--json", *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_mobilenet_v2_cat_with_embedded_labels(shared_data: Path) -> None:
    (result,) = infer_json(shared_data / "models/mobilenet_v2_1.0_224_quant.tflite", shared_data / "images/cat.bmp")
    top = result["labels"][0]
    assert top["label"] == "Egyptian cat"
    assert top["index"] == 286
    assert result["task"] == "classification"


@pytest.mark.parametrize("model", ["yolov8n_full_int8.tflite", "yolov8n_float_io.tflite"])
def test_yolov8_finds_exactly_the_two_dogs(shared_data: Path, model: str) -> None:
    (result,) = infer_json(shared_data / "models" / model, shared_data / "images/pets.jpg")
    dogs = [obj for obj in result["objects"] if obj["label"] == "dog"]
    assert len(result["objects"]) == 2 and len(dogs) == 2
    left, right = sorted(dogs, key=lambda obj: obj["box"]["xmin"])
    # pets.jpg is 512×430: the left dog stands in x ≈ 105–262 px, the right one in x ≈ 345–497 px
    assert 80 < left["box_px"]["xmin"] < 130 and 235 < left["box_px"]["xmax"] < 290
    assert 320 < right["box_px"]["xmin"] < 370 and 470 < right["box_px"]["xmax"] < 512
    assert left["box_px"]["ymax"] > 250 and right["box_px"]["ymin"] > 130


def test_pets_ssd_boxes_a_breed_on_the_left_dog(shared_data: Path) -> None:
    (result,) = infer_json(
        shared_data / "models/ssd_mobilenet_v1_pets_300_quant.tflite",
        shared_data / "images/pets.jpg",
        "--labels",
        shared_data / "models/pets_labelmap.txt",
    )
    breeds = {line.strip() for line in (shared_data / "models/pets_labelmap.txt").read_text().splitlines()[1:]}
    assert result["objects"], "no detection"
    best = result["objects"][0]
    assert best["label"] in breeds and best["label"] != "???"
    centre_x = (best["box_px"]["xmin"] + best["box_px"]["xmax"]) / 2
    assert 105 < centre_x < 262, "the box is not on the left dog"


def test_edgetpu_model_falls_back_to_its_cpu_twin(shared_data: Path) -> None:
    done = edged(
        "infer",
        "--json",
        shared_data / "models/mobilenet_v1_0.25_128_quant_edgetpu.tflite",
        shared_data / "images/cat.bmp",
    )
    assert done.returncode == 0, done.stderr
    assert "falling back to the CPU version" in done.stderr
    assert "cat" in json.loads(done.stdout)["labels"][0]["label"]


def test_edgetpu_model_alone_gives_a_clear_error(shared_data: Path, tmp_path: Path) -> None:
    lonely = tmp_path / "lonely_edgetpu.tflite"
    lonely.write_bytes((shared_data / "models/mobilenet_v1_0.25_128_quant_edgetpu.tflite").read_bytes())
    done = edged("infer", lonely, shared_data / "images/cat.bmp")
    assert done.returncode == 1
    assert "compiled for the Edge TPU" in done.stderr and "CPU version" in done.stderr
    assert "Traceback" not in done.stderr


def test_edgetpu_model_with_cpu_accelerator_and_no_twin(shared_data: Path, tmp_path: Path) -> None:
    lonely = tmp_path / "lonely_edgetpu.tflite"
    lonely.write_bytes((shared_data / "models/mobilenet_v1_0.25_128_quant_edgetpu.tflite").read_bytes())
    with pytest.raises(ModelError, match="accelerator = 'cpu'"):
        load_bundle(ModelConfig(path=lonely, accelerator="cpu"))


def test_invalid_custom_op_is_a_clear_error(shared_data: Path) -> None:
    done = edged("infer", shared_data / "models/invalid_custom_op.tflite", shared_data / "images/cat.bmp")
    assert done.returncode == 1
    assert "custom operator 'fake-op-double'" in done.stderr
    assert "Traceback" not in done.stderr


EXPECTED_INSPECTION = {
    "mobilenet_v2_1.0_224_quant.tflite": ("classification", "classification", 1001, "model metadata"),
    "mobilenet_v1_0.25_128_quant.tflite": ("classification", "classification", 1001, "model metadata"),
    "mobilenet_v1_0.25_128_quant_edgetpu.tflite": ("classification", "classification", 1001, "model metadata"),
    "ssd_mobilenet_v1_pets_300_quant.tflite": ("detection", "ssd", 37, "none"),
    "yolov8n_full_int8.tflite": ("detection", "yolov8", 80, "model metadata"),
    "yolov8n_float_io.tflite": ("detection", "yolov8", 80, "model metadata"),
    "automl_video_traffic_tracker.tflite": ("detection", "ssd", 3, "sidecar"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_INSPECTION))
def test_inspect_describes_each_model(shared_data: Path, name: str) -> None:
    done = edged("model", "inspect", "--json", shared_data / "models" / name)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    task, decoder, classes, origin = EXPECTED_INSPECTION[name]
    assert report["usable"] is True
    assert (report["task"], report["decoder"], report["num_classes"]) == (task, decoder, classes)
    assert report["labels"]["origin"].startswith(origin)
    assert report["input"]["layout"] == "NHWC"


def test_inspect_details(shared_data: Path) -> None:
    models = shared_data / "models"
    yolo = inspect_model(ModelConfig(path=models / "yolov8n_full_int8.tflite")).as_dict()
    assert yolo["input"]["dtype"] == "int8" and yolo["input"]["resize"] == "letterbox"
    assert yolo["input"]["quantization"]["zero_point"] == -14
    assert yolo["labels"]["first"][:3] == ["person", "bicycle", "car"]
    ssd = inspect_model(ModelConfig(path=models / "ssd_mobilenet_v1_pets_300_quant.tflite")).as_dict()
    assert [o["role"] for o in ssd["outputs"]] == ["boxes", "classes", "scores", "count"]
    assert ssd["labels"]["nearby_files_that_fit"] == [str(models / "pets_labelmap.txt")]
    with_labels = inspect_model(
        ModelConfig(path=models / "ssd_mobilenet_v1_pets_300_quant.tflite", labels=models / "pets_labelmap.txt")
    ).as_dict()
    assert with_labels["labels"]["first"][0] == "Abyssinian" and "background" in with_labels["labels"]["note"]
    tracker = inspect_model(ModelConfig(path=models / "automl_video_traffic_tracker.tflite")).as_dict()
    assert {s["input"] for s in tracker["state"]} == {"raw_inputs/init_lstm_c", "raw_inputs/init_lstm_h"}
    assert tracker["labels"]["first"] == ["sedan", "pickup_suv_van", "large_veh_bus"]
    tpu = inspect_model(ModelConfig(path=models / "mobilenet_v1_0.25_128_quant_edgetpu.tflite")).as_dict()
    assert tpu["accelerator"]["edgetpu_compiled"] is True and tpu["accelerator"]["runs_on"] == "cpu"
    assert tpu["custom_ops"] == ["edgetpu-custom-op"]


def test_inspect_invalid_custom_op(shared_data: Path) -> None:
    done = edged("model", "inspect", "--json", shared_data / "models/invalid_custom_op.tflite")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["usable"] is False and "fake-op-double" in report["error"]


def test_tracker_finds_vehicles_in_traffic_video(shared_data: Path) -> None:
    import cv2

    bundle = load_bundle(ModelConfig(path=shared_data / "models/automl_video_traffic_tracker.tflite", threshold=0.4))
    capture = cv2.VideoCapture(str(shared_data / "video/traffic_960x540.mp4"))
    labels: set[str] = set()
    for _ in range(20):
        ok, frame = capture.read()
        if not ok:
            break
        labels.update(obj.label for obj in bundle.predict(frame, "bgr").objects)
    assert labels & {"sedan", "pickup_suv_van", "large_veh_bus"}


def test_yolov8_sees_cars_in_traffic(shared_data: Path) -> None:
    import cv2

    bundle = load_bundle(ModelConfig(path=shared_data / "models/yolov8n_full_int8.tflite"))
    ok, frame = cv2.VideoCapture(str(shared_data / "video/traffic_960x540.mp4")).read()
    assert ok
    cars = [obj for obj in bundle.predict(frame, "bgr").objects if obj.label == "car"]
    assert len(cars) >= 2


def test_images_read_for_every_shared_photo(shared_data: Path) -> None:
    for image in sorted((shared_data / "images").iterdir()):
        assert read_image(image).ndim == 3
