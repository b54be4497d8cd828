"""`edged model inspect`: describe a model and where it can run here, without needing it to run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edged.config.model import ModelConfig
from edged.errors import ModelError
from edged.inference import runtime
from edged.inference.labels import align_labels, read_label_file
from edged.inference.loader import ModelFile, cpu_twin, describe, read_model_file
from edged.inference.model import SSD_ROLES, ModelSpec, numbering


@dataclass
class ModelReport:
    """Everything `inspect` found; `error` says why the model cannot be used as configured."""

    path: Path
    error: str | None = None
    model: ModelFile | None = None
    spec: ModelSpec | None = None
    accelerator: dict[str, Any] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": str(self.path), "usable": self.usable}
        if self.error:
            data["error"] = self.error
        found = runtime.find_runtime()
        data["runtime"] = {"name": found.name, "version": found.version}
        if self.model is not None:
            facts = self.model.facts
            data.update(sha256=self.model.sha256, size_bytes=self.model.size, custom_ops=list(facts.custom_ops))
            if facts.metadata_name or facts.metadata_version:
                data["metadata"] = {
                    "name": facts.metadata_name,
                    "version": facts.metadata_version,
                    "description": facts.metadata_description,
                }
        if self.spec is not None:
            data.update(_spec_dict(self.spec))
        if self.accelerator:
            data["accelerator"] = self.accelerator
        return data


def _spec_dict(spec: ModelSpec) -> dict[str, Any]:
    outputs = [tensor.as_dict() for tensor in spec.outputs]
    if spec.decoder == "ssd":
        for tensor, role in zip(outputs, SSD_ROLES, strict=False):
            tensor["role"] = role
    data: dict[str, Any] = {
        "task": spec.task,
        "decoder": spec.decoder,
        "decoder_reason": spec.decoder_reason,
        "input": {
            **spec.input.as_dict(),
            "layout": "NHWC",
            "width": spec.input_size[0],
            "height": spec.input_size[1],
            "color": spec.color,
            "resize": spec.resize,
            "normalization": spec.normalization.describe(),
        },
        "outputs": outputs,
        "num_classes": spec.num_classes,
        "labels": {
            "count": len(spec.labels.names),
            "origin": spec.labels.origin,
            "format": spec.labels.format,
            "note": spec.labels.note,
            "first": list(spec.labels.names[:5]),
        },
        "notes": list(spec.notes),
        "decisions": {d.name: d.as_dict() for d in spec.decisions},
    }
    if spec.labels_looked:
        data["labels"]["looked"] = list(spec.labels_looked)
    if spec.background_class is not None:
        data["labels"]["background_class"] = spec.background_class
    if spec.state_pairs:
        data["state"] = [
            {"input": inp.name, "fed_from_output": out.name, "shape": list(inp.shape)} for inp, out in spec.state_pairs
        ]
        data["notes"].append("recurrent model: its state outputs are fed back as inputs on every frame")
    if spec.nearby_label_files and spec.labels.origin == "none":
        data["labels"]["nearby_files"] = [str(p) for p in spec.nearby_label_files]
        data["labels"]["nearby_files_that_fit"] = [str(p) for p in _fitting(spec)]
    return data


def _fitting(spec: ModelSpec) -> list[Path]:
    """Label files beside the model whose class count fits it: candidates for --labels."""
    fits = []
    for path in spec.nearby_label_files:
        try:
            align_labels(read_label_file(path), spec.num_classes, numbering(spec.decoder))
            fits.append(path)
        except ModelError:
            continue
    return fits


def _tpu_status(model: ModelFile, config: ModelConfig, loader: runtime.DelegateLoader | None) -> dict[str, Any]:
    twin = cpu_twin(config.path, config.cpu_model) if model.edgetpu_compiled else None
    status: dict[str, Any] = {"edgetpu_compiled": model.edgetpu_compiled, "cpu_twin": str(twin) if twin else None}
    if not model.edgetpu_compiled and config.accelerator != "edgetpu":
        status.update(runs_on="cpu", summary="CPU (not compiled for the Edge TPU)")
        return status
    try:
        runtime.load_edgetpu_delegate(config.device, loader)
        status.update(edgetpu_available=True, runs_on="edgetpu", summary="Edge TPU (found)")
    except ModelError as exc:
        status.update(edgetpu_available=False, edgetpu_error=str(exc))
        if model.edgetpu_compiled and twin is not None and config.accelerator == "auto":
            status.update(runs_on="cpu", summary=f"needs an Edge TPU, none here: falls back to the CPU version {twin}")
        else:
            status.update(runs_on=None, summary=f"needs an Edge TPU, none here: {exc}")
    return status


def inspect_model(config: ModelConfig, delegate_loader: runtime.DelegateLoader | None = None) -> ModelReport:
    """Describe the model; a report with `error` set (not an exception) when it is a model edged cannot use."""
    model = read_model_file(config.path)
    report = ModelReport(path=config.path, model=model)
    report.accelerator = _tpu_status(model, config, delegate_loader)
    interpreter = runtime.create_interpreter(str(model.path), 1)
    try:
        if not model.edgetpu_compiled:
            runtime.allocate(interpreter, str(model.path))
        report.spec = describe(interpreter, model, config)
    except ModelError as exc:
        twin = report.accelerator.get("cpu_twin")
        if not (model.edgetpu_compiled and twin):
            report.error = str(exc)
            return report
        twin_model = read_model_file(Path(twin))  # an Edge TPU SSD only shows its outputs once allocated
        twin_interpreter = runtime.create_interpreter(str(twin_model.path), 1)
        runtime.allocate(twin_interpreter, str(twin_model.path))
        report.spec = describe(twin_interpreter, twin_model, config)
    if report.accelerator.get("runs_on") is None:
        report.error = report.accelerator["summary"]
    return report
