"""Load a model as configured: resolve the accelerator (Edge TPU, CPU twin, CPU), build and warm up a bundle.

A failed load raises ModelError and leaves nothing behind; the caller's current bundle is untouched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edged.config.model import ModelConfig
from edged.errors import ModelError
from edged.files import read_user_file
from edged.inference import runtime
from edged.inference.engine import ModelBundle, decode_params
from edged.inference.model import ModelSpec, describe_model, file_sha256
from edged.inference.preprocess import FULL_FRAME, Roi
from edged.inference.tflite_file import FileFacts, read_file_facts
from edged.types import ModelInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFile:
    """A model file read once: its bytes' hash and the facts in its flatbuffer."""

    path: Path
    sha256: str
    size: int
    facts: FileFacts

    @property
    def edgetpu_compiled(self) -> bool:
        return runtime.EDGETPU_CUSTOM_OP in self.facts.custom_ops


def read_model_file(path: Path) -> ModelFile:
    """Read and parse a .tflite; ModelError naming the problem when it is missing or not a model."""
    data = read_user_file(path, "model file", ModelError, directory_hint="point edged at the .tflite file inside it")
    facts = read_file_facts(data, str(path))
    return ModelFile(path=path, sha256=file_sha256(data), size=len(data), facts=facts)


def cpu_twin(path: Path, configured: Path | None) -> Path | None:
    """The CPU version of an Edge TPU model: configured, or foo.tflite beside foo_edgetpu.tflite."""
    if configured is not None:
        return configured
    name = path.name
    if "_edgetpu" in name:
        candidate = path.with_name(name.replace("_edgetpu", "", 1))
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Placement:
    """Where a model will run, decided before any interpreter is built."""

    model: ModelFile
    delegate: Any | None
    accelerator: str  # "cpu" or "edgetpu" / "edgetpu:usb:0"
    notes: tuple[str, ...] = field(default_factory=tuple)


def place(config: ModelConfig, delegate_loader: runtime.DelegateLoader | None = None) -> Placement:
    """Choose the file and the delegate; fall back to the CPU twin only where the config allows it."""
    model = read_model_file(config.path)
    tpu_name = "edgetpu" + (f":{config.device}" if config.device else "")
    if config.accelerator == "edgetpu":
        delegate = runtime.load_edgetpu_delegate(config.device, delegate_loader)
        notes = () if model.edgetpu_compiled else (
            "the model is not compiled for the Edge TPU, so it runs on the CPU anyway; compile it with "
            "edgetpu_compiler to use the accelerator",
        )  # fmt: skip
        return Placement(model, delegate, tpu_name, notes)
    if not model.edgetpu_compiled:
        return Placement(model, None, "cpu")
    twin = cpu_twin(config.path, config.cpu_model)
    if config.accelerator == "cpu":
        if twin is None:
            raise ModelError(
                f"{config.path} is compiled for the Edge TPU and accelerator = 'cpu': give its CPU version "
                "(model.cpu_model, or foo.tflite beside foo_edgetpu.tflite)"
            )
        return Placement(read_model_file(twin), None, "cpu", (f"using the CPU version {twin}",))
    try:
        delegate = runtime.load_edgetpu_delegate(config.device, delegate_loader)
        return Placement(model, delegate, tpu_name)
    except ModelError as exc:
        if twin is None:
            raise ModelError(
                f"{config.path} is compiled for the Edge TPU, and {exc}. No CPU version was found: put "
                f"{config.path.name.replace('_edgetpu', '')} beside it or set model.cpu_model"
            ) from exc
        message = f"Edge TPU unavailable ({exc}); falling back to the CPU version {twin}"
        log.warning(message)
        return Placement(read_model_file(twin), None, "cpu", (message,))


def _output_names(interpreter: Any) -> dict[int, str]:
    """Tensor index → signature output name (TF2 exports name their detection outputs)."""
    names: dict[int, str] = {}
    try:
        for key in interpreter.get_signature_list():
            details = interpreter.get_signature_runner(key).get_output_details()
            names.update({int(d["index"]): str(name) for name, d in details.items()})
    except (ValueError, RuntimeError, KeyError, AttributeError):
        return {}
    return names


def describe(interpreter: Any, model: ModelFile, config: ModelConfig) -> ModelSpec:
    return describe_model(
        model.path,
        model.sha256,
        model.facts,
        interpreter.get_input_details(),
        interpreter.get_output_details(),
        _output_names(interpreter),
        config,
    )


def load_bundle(
    config: ModelConfig,
    *,
    version: str | None = None,
    roi: Roi = FULL_FRAME,
    delegate_loader: runtime.DelegateLoader | None = None,
) -> ModelBundle:
    """Build, check and warm up (one invoke) a bundle off the hot path."""
    placement = place(config, delegate_loader)
    model = placement.model
    threads = config.num_threads or runtime.default_threads()
    delegates = [placement.delegate] if placement.delegate is not None else None
    interpreter = runtime.create_interpreter(str(model.path), threads, delegates)
    runtime.allocate(interpreter, str(model.path))
    spec = describe(interpreter, model, config)
    for note in spec.notes:
        log.info("%s: %s", config.path.name, note)
    info = ModelInfo(
        name=config.name or config.path.name.removesuffix(".tflite"),
        version=version or config.version,
        sha256=model.sha256,
        source=str(model.path),
    )
    bundle = ModelBundle(interpreter, spec, info, decode_params(spec, config), placement.accelerator, roi)
    warm_up(bundle)
    return bundle


def warm_up(bundle: ModelBundle) -> None:
    """One invoke on a grey image: catches runtime failures (and pays first-run costs) before going live."""
    width, height = bundle.spec.input_size
    try:
        bundle.predict(np.full((height, width, 3), 128, np.uint8), "rgb")
        bundle.reset_state()
    except (RuntimeError, ValueError) as exc:
        raise ModelError(f"{bundle.info.source}: the model fails on a test image: {exc}") from exc
