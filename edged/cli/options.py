"""Command-line options shared by the commands that load a model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edged import logs
from edged.config.model import ModelConfig
from edged.errors import ConfigError


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model options")
    group.add_argument("--labels", type=Path, metavar="FILE", help="label file (default: embedded or sidecar)")
    group.add_argument("--top-k", type=int, metavar="K", help="classification: how many labels (default 3)")
    group.add_argument("--threshold", type=float, metavar="T",
                       help="minimum score (default 0.5 for detection, 0 for classification)")  # fmt: skip
    group.add_argument("--accelerator", choices=["auto", "cpu", "edgetpu"], help="where to run (default auto)")
    group.add_argument("--device", metavar="DEV", help="Edge TPU device: usb, usb:N, pci, pci:N, :N")
    group.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all cores)")
    group.add_argument("--decoder", choices=["auto", "classification", "ssd", "yolov5", "yolov8", "yolo_e2e"],
                       help="output layout (default: detected)")  # fmt: skip


def model_config_from_args(args: argparse.Namespace, path: Path) -> ModelConfig:
    """A ModelConfig from the options given; options not given keep the config defaults."""
    given: dict[str, Any] = {"path": path}
    for option, key in _OPTION_KEYS.items():
        value = getattr(args, option, None)
        if value is not None:
            given[key] = value
    try:
        return ModelConfig(**given)
    except ValidationError as exc:
        flags = {key: f"--{option.replace('_', '-')}" for option, key in _OPTION_KEYS.items()}
        problems = "; ".join(
            f"{flags.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" if e["loc"] else e["msg"] for e in exc.errors()
        )
        raise ConfigError(problems) from exc


#: command-line option → ModelConfig field
_OPTION_KEYS = {
    "labels": "labels", "top_k": "top_k", "threshold": "threshold", "accelerator": "accelerator",
    "device": "device", "threads": "num_threads", "decoder": "decoder",
}  # fmt: skip


def add_log_format_option(parser: argparse.ArgumentParser, default: object) -> None:
    """--log-format, on `edged` itself and on `edged run` (where people look for it)."""
    parser.add_argument(
        "--log-format", choices=logs.FORMATS, default=default, metavar="FORMAT",
        help="log lines as text, journal (syslog priorities, no timestamps) or json; default auto: journal "
        "under systemd, else text ([logging] format)",
    )  # fmt: skip
