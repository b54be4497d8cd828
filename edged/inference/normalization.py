"""Which pixel values a model's input takes, and why: configuration, quantization, metadata or a default.

A quantized input's scale and zero point say what range the model was calibrated on. When that range is a
pixel range ([0, 1] or [-1, 1]), the raw pixels *are* the input tensor, which is what the trainers' own scripts,
Coral's examples and MediaPipe feed quantized models; metadata that says otherwise is reported, not followed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edged.config.model import ModelConfig
from edged.inference.preprocess import RAW, SIGNED, UNIT, Normalization
from edged.inference.tflite_file import FileFacts

if TYPE_CHECKING:
    from edged.inference.model import TensorInfo

#: Pixel ranges a quantized image input may be calibrated on (what [0, 255] is mapped to in training)
PIXEL_RANGES = (("[0, 1]", 0.0, 1.0), ("[-1, 1]", -1.0, 1.0))
#: How many quantization steps either end of the range may be off (a [-1, 1] tensor at 1/128 ends at 127/128)
RANGE_SLACK_STEPS = 1.5


@dataclass(frozen=True)
class Decision:
    """One choice edged made about a model, where it came from and why (shown by `edged model inspect`)."""

    name: str  # "normalization", "resize", "labels", "decoder"
    value: str
    origin: str  # "config", "quantization", "metadata", "default", "file", "sidecar", "none", "output layout"
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"value": self.value, "origin": self.origin, "reason": self.reason}


def _value(norm: Normalization) -> str:
    """The normalization without its source (the Decision carries that)."""
    return norm.describe().rsplit(" (", 1)[0]


def quantized_range(tensor: TensorInfo) -> tuple[float, float] | None:
    """The real values an integer input tensor can hold, or None for a float tensor."""
    if not tensor.quantized or tensor.dtype not in ("uint8", "int8"):
        return None
    info = np.iinfo(np.dtype(tensor.dtype))
    return (info.min - tensor.zero_point) * tensor.scale, (info.max - tensor.zero_point) * tensor.scale


def _range_text(low: float, high: float) -> str:
    return f"[{low:.4g}, {high:.4g}]"


def pixel_calibration(tensor: TensorInfo) -> str | None:
    """The pixel range ("[0, 1]", "[-1, 1]") the input's quantization was calibrated on, if it is one."""
    bounds = quantized_range(tensor)
    if bounds is None:
        return None
    slack = RANGE_SLACK_STEPS * tensor.scale
    for name, low, high in PIXEL_RANGES:
        if abs(bounds[0] - low) <= slack and abs(bounds[1] - high) <= slack:
            return name
    return None


def raw_pixels(tensor: TensorInfo) -> Normalization:
    """The normalization under which pixel p becomes the integer p + qmin (p for uint8, p - 128 for int8)."""
    qmin = int(np.iinfo(np.dtype(tensor.dtype)).min)
    return Normalization.of(float(tensor.zero_point - qmin), 1.0 / tensor.scale, "input quantization")


def _metadata_range(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[float, float]:
    return (0.0 - mean[0]) / std[0], (255.0 - mean[0]) / std[0]


def choose_normalization(
    config: ModelConfig, facts: FileFacts, image: TensorInfo, yolo: bool
) -> tuple[Normalization, Decision, tuple[str, ...]]:
    """Configuration first; then a quantization calibrated on a pixel range; then metadata; then a default."""
    if config.mean is not None and config.std is not None:
        norm = Normalization.of(config.mean, config.std, "config mean/std")
        return norm, Decision("normalization", _value(norm), "config", "model.mean / model.std"), ()
    named = {"unit": UNIT, "signed": SIGNED, "raw": RAW}
    if config.normalization in named:
        chosen = named[config.normalization]
        norm = Normalization(chosen.mean, chosen.std, f"config normalization = {config.normalization!r}")
        return norm, Decision("normalization", _value(norm), "config", f"model.normalization = {chosen.source}"), ()
    meta = facts.inputs[0] if facts.inputs else None
    has_meta = meta is not None and bool(meta.mean) and bool(meta.std)
    bounds = quantized_range(image)
    calibrated = pixel_calibration(image)
    if calibrated is not None and bounds is not None:
        norm = raw_pixels(image)
        pixels = "p" if image.dtype == "uint8" else "p - 128"
        reason = (
            f"the {image.dtype} input's quantization (scale {image.scale:.6g}, zero point {image.zero_point}) "
            f"covers {_range_text(*bounds)}, the {calibrated} pixel range the model was calibrated on: pixel p "
            f"goes in as {pixels}, as the trainers' scripts, Coral and MediaPipe feed quantized models"
        )
        notes: tuple[str, ...] = ()
        if meta is not None and has_meta:
            low, high = _metadata_range(meta.mean, meta.std)
            slack = RANGE_SLACK_STEPS * image.scale + 0.01
            if abs(low - bounds[0]) > slack or abs(high - bounds[1]) > slack:
                notes = (
                    f"normalization: the metadata says mean {list(meta.mean)} std {list(meta.std)} "
                    f"({_range_text(low, high)}), but the input quantization covers {_range_text(*bounds)}: "
                    "edged follows the quantization (set model.mean / model.std to override)",
                )
        return norm, Decision("normalization", _value(norm), "quantization", reason), notes
    if meta is not None and has_meta:
        norm = Normalization.of(meta.mean, meta.std, "model metadata")
        reason = f"NormalizationOptions in the model's metadata: mean {list(meta.mean)}, std {list(meta.std)}"
        return norm, Decision("normalization", _value(norm), "metadata", reason), ()
    unknown = ""
    if bounds is not None:
        unknown = f"; the input quantization covers {_range_text(*bounds)}, not a pixel range, so it says nothing"
    if yolo:
        norm = Normalization(UNIT.mean, UNIT.std, "default for YOLO exports")
        reason = f"no metadata: Ultralytics exports take pixel / 255{unknown}"
    else:
        norm = Normalization(SIGNED.mean, SIGNED.std, "default for classifiers and SSD")
        reason = f"no metadata: Teachable Machine, Model Maker and TF OD API float models take [-1, 1]{unknown}"
    return norm, Decision("normalization", _value(norm), "default", reason), ()
