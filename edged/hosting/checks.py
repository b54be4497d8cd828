"""The checks a version passes before it is published (and, for golden images, again on every device).

publish refuses here what a device would refuse later: a model edged cannot inspect or run, [model] settings the
TOML schema rejects, labels that do not fit, an Edge TPU variant that does not match the CPU model, a golden
image whose expected answer is not what the model says.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edged.config.model import ModelConfig
from edged.errors import ConfigError, EdgedError, HostingError
from edged.inference.engine import ModelBundle, known_label_index
from edged.inference.inspection import inspect_model
from edged.inference.loader import load_bundle, read_model_file
from edged.inference.model import ModelSpec
from edged.sources.imagefile import read_image

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: [model] keys a version may not carry: its files come with the version, and the hardware is the device's.
NOT_SETTABLE = ("path", "labels", "cpu_model", "name", "version", "accelerator", "device", "num_threads")


def parse_settings(pairs: Iterable[str]) -> dict[str, Any]:
    """--set KEY=VALUE pairs → [model] settings; VALUE is a TOML value (0.6, "ssd", [1, 2], {a = 1}) or a bare
    word, which is taken as a string."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: use KEY=VALUE, e.g. --set threshold=0.6")
        if key in NOT_SETTABLE:
            raise ConfigError(
                f"--set {key}: not a per-version setting ({', '.join(NOT_SETTABLE)} come with the version's files "
                "or are the device's own choice)"
            )
        try:
            settings[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            settings[key] = value
    return settings


def model_config(path: Path, labels: Path | None, settings: Mapping[str, Any], accelerator: str) -> ModelConfig:
    """The [model] table a device builds for this version, validated with the same schema as the TOML file."""
    try:
        return ModelConfig.model_validate({**settings, "path": path, "labels": labels, "accelerator": accelerator})
    except ValidationError as exc:
        problems = "; ".join(
            f"--set {'.'.join(str(p) for p in e['loc']) or '?'}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid [model] settings: {problems}") from exc


def golden_failure(bundle: ModelBundle, image_path: Path, expected: str) -> str | None:
    """None when `image_path` gives `expected` (classification: the top label; detection: an object with that
    label), else the reason, naming what the model said instead."""
    prediction = bundle.predict(read_image(image_path), "bgr")
    if prediction.task == "classification":
        top = prediction.labels[0] if prediction.labels else None
        if top is not None and top.label == expected:
            return None
        said = f"{top.label!r} ({top.score:.2f})" if top else "no label"
        return f"golden image {image_path.name}: expected top label {expected!r}, the model says {said}"
    if any(obj.label == expected for obj in prediction.objects):
        return None
    found = sorted({obj.label for obj in prediction.objects})
    return f"golden image {image_path.name}: expected a {expected!r} detection, found {found or 'nothing'}"


@dataclass(frozen=True)
class CheckedVersion:
    """What the checks found: the facts a device can compare against."""

    spec: ModelSpec
    ran: bool
    tpu_only: bool
    notes: tuple[str, ...]


def _inspect(config: ModelConfig, what: str) -> ModelSpec:
    try:
        report = inspect_model(config)
    except EdgedError as exc:
        raise HostingError(f"refused: {what} cannot be used by edged: {exc}") from exc
    if report.spec is None:
        raise HostingError(f"refused: {what} cannot be used by edged: {report.error}")
    if report.error and not (report.model and report.model.edgetpu_compiled):
        raise HostingError(f"refused: {what} cannot be used by edged: {report.error}")
    return report.spec


def check_version(
    model: Path,
    labels: Path | None,
    edgetpu_model: Path | None,
    settings: Mapping[str, Any],
    golden: Iterable[tuple[Path, str]],
) -> CheckedVersion:
    """Inspect, load and run the model once, check the Edge TPU variant and the golden images; HostingError
    with the reason for anything a device would refuse."""
    notes: list[str] = []
    golden = list(golden)
    model_file = read_model_file(model)
    tpu_only = model_file.edgetpu_compiled
    if tpu_only and edgetpu_model is not None:
        raise HostingError(
            f"refused: {model} is compiled for the Edge TPU; pass the CPU model as MODEL and the Edge TPU one "
            "with --edgetpu-model"
        )
    config = model_config(model, labels, settings, "auto" if tpu_only else "cpu")
    spec = _inspect(config, str(model))
    ran = False
    if tpu_only:
        notes.append("Edge-TPU-only version: it could not be run here (no Edge TPU); devices without one will skip it")
        if golden:
            notes.append("golden images were not checked here (the model needs an Edge TPU); devices check them")
    else:
        try:
            bundle = load_bundle(config)
        except EdgedError as exc:
            raise HostingError(f"refused: {model} does not run: {exc}") from exc
        try:
            for image, expected in golden:
                known_label_index(expected, bundle.spec, f"--golden {image.name}")
                failure = golden_failure(bundle, image, expected)
                if failure:
                    raise HostingError(f"refused: {failure}; fix the model or the expected answer")
        except EdgedError as exc:
            raise HostingError(str(exc) if str(exc).startswith("refused") else f"refused: {exc}") from exc
        finally:
            bundle.close()
        ran = True
    for image, expected in golden:
        if tpu_only:
            known_label_index(expected, spec, f"--golden {image.name}")
        if not image.is_file():
            raise HostingError(f"--golden {image}: no such image file")
    if edgetpu_model is not None:
        _check_edgetpu_variant(edgetpu_model, labels, settings, spec)
    return CheckedVersion(spec=spec, ran=ran, tpu_only=tpu_only, notes=tuple(notes))


def _check_edgetpu_variant(path: Path, labels: Path | None, settings: Mapping[str, Any], cpu: ModelSpec) -> None:
    variant = read_model_file(path)
    if not variant.edgetpu_compiled:
        raise HostingError(
            f"refused: --edgetpu-model {path} is not compiled for the Edge TPU (no edgetpu-custom-op); compile it "
            "with edgetpu_compiler, or publish it as MODEL"
        )
    config = model_config(path, labels, settings, "auto").model_copy(update={"cpu_model": cpu.path})
    spec = _inspect(config, f"--edgetpu-model {path}")
    if spec.input.shape != cpu.input.shape:
        raise HostingError(
            f"refused: --edgetpu-model {path} takes input {list(spec.input.shape)}, the CPU model "
            f"{list(cpu.input.shape)}: they must be the same model"
        )
    if spec.decoder != cpu.decoder or len(spec.labels.names) != len(cpu.labels.names):
        raise HostingError(
            f"refused: --edgetpu-model {path} is a {spec.decoder} model with {len(spec.labels.names)} labels, the "
            f"CPU model a {cpu.decoder} model with {len(cpu.labels.names)}: they must be the same model"
        )
