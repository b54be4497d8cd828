"""Edge TPU placement with a FAKE delegate loader: no Edge TPU can exist on this machine.

`FakeEdgeTpu` stands in for `load_delegate('libedgetpu.so.1', ...)`: it records the options it was asked for
and either returns a placeholder delegate (a TPU "is present") or raises like the real loader does when
libedgetpu or the device is missing. Only placement decisions are tested with it; nothing is invoked on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edged.config.model import ModelConfig
from edged.errors import ModelError
from edged.inference import runtime
from edged.inference.inspection import inspect_model
from edged.inference.loader import cpu_twin, place


class FakeEdgeTpu:
    """A fake Edge TPU delegate loader (named as such: no Edge TPU exists here)."""

    def __init__(self, present: bool) -> None:
        self.present = present
        self.calls: list[tuple[str, dict[str, str]]] = []

    def __call__(self, library: str, options: dict[str, str]) -> Any:
        self.calls.append((library, options))
        if not self.present:
            raise ValueError("Failed to load delegate from libedgetpu.so.1\nNo Edge TPU device found")
        return object()


@pytest.mark.parametrize("device", ["", "usb", "usb:0", "pci", "pci:1", ":2"])
def test_valid_device_strings(device: str) -> None:
    assert runtime.validate_device(device) == device


@pytest.mark.parametrize("device", ["usb0", "gpu", "usb:", "usb:a", "tpu:0"])
def test_invalid_device_strings_say_what_works(device: str) -> None:
    with pytest.raises(ModelError, match="'usb:0'"):
        runtime.validate_device(device)


def test_delegate_gets_the_library_and_device() -> None:
    fake = FakeEdgeTpu(present=True)
    runtime.load_edgetpu_delegate("usb:1", fake)
    assert fake.calls == [("libedgetpu.so.1", {"device": "usb:1"})]


def test_missing_tpu_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match=r"no usable Edge TPU at 'pci'.*libedgetpu1-std"):
        runtime.load_edgetpu_delegate("pci", FakeEdgeTpu(present=False))


def test_real_loader_on_this_machine_reports_the_missing_library() -> None:
    with pytest.raises(ModelError, match=r"libedgetpu\.so\.1"):
        runtime.load_edgetpu_delegate("")


def test_cpu_twin_naming(tmp_path: Path) -> None:
    tpu = tmp_path / "det_edgetpu.tflite"
    assert cpu_twin(tpu, None) is None
    (tmp_path / "det.tflite").write_bytes(b"")
    assert cpu_twin(tpu, None) == tmp_path / "det.tflite"
    assert cpu_twin(tpu, tmp_path / "other.tflite") == tmp_path / "other.tflite"


@pytest.fixture()
def tpu_model(shared_data: Path) -> Path:
    return shared_data / "models/mobilenet_v1_0.25_128_quant_edgetpu.tflite"


def test_auto_uses_a_present_tpu(tpu_model: Path) -> None:
    fake = FakeEdgeTpu(present=True)
    placement = place(ModelConfig(path=tpu_model, device="usb:0"), fake)
    assert placement.accelerator == "edgetpu:usb:0"
    assert placement.model.path == tpu_model and placement.delegate is not None


def test_auto_falls_back_to_the_cpu_twin(tpu_model: Path) -> None:
    placement = place(ModelConfig(path=tpu_model), FakeEdgeTpu(present=False))
    assert placement.accelerator == "cpu"
    assert placement.model.path.name == "mobilenet_v1_0.25_128_quant.tflite"
    assert "falling back" in placement.notes[0]


def test_edgetpu_required_but_absent_refuses(tpu_model: Path) -> None:
    with pytest.raises(ModelError, match="no usable Edge TPU"):
        place(ModelConfig(path=tpu_model, accelerator="edgetpu"), FakeEdgeTpu(present=False))


def test_cpu_model_with_edgetpu_required_warns(shared_data: Path) -> None:
    cpu_model = shared_data / "models/mobilenet_v1_0.25_128_quant.tflite"
    placement = place(ModelConfig(path=cpu_model, accelerator="edgetpu"), FakeEdgeTpu(present=True))
    assert "not compiled for the Edge TPU" in placement.notes[0]


def test_inspect_reports_a_present_tpu(tpu_model: Path) -> None:
    report = inspect_model(ModelConfig(path=tpu_model), FakeEdgeTpu(present=True)).as_dict()
    assert report["accelerator"]["runs_on"] == "edgetpu" and report["usable"]
