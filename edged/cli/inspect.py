"""`edged model inspect MODEL`: what edged makes of a model, or the precise reason it cannot use it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edged.cli.options import add_model_options, model_config_from_args
from edged.errors import EdgedError
from edged.inference.inspection import ModelReport, inspect_model


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "inspect",
        help="describe a model: task, decoder, tensors, labels, accelerator needs",
        description="Describe what edged makes of a model, or why it cannot use it.",
    )
    parser.add_argument("model", type=Path, help="the .tflite model")
    add_model_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def _file_summary(report: ModelReport, data: dict[str, Any]) -> str:
    """What the file is, in words: its size and hash once read, else what is at the path."""
    if "size_bytes" in data:
        return f"{data['size_bytes']} bytes, sha256 {str(data.get('sha256', ''))[:12]}…"
    path = Path(report.path)
    if path.is_dir():
        return "a directory"
    if path.is_file():
        return f"{path.stat().st_size} bytes"
    return "no such file"


def _label_origin(origin: str) -> str:
    """'sidecar: /m/labels.txt' → '/m/labels.txt beside the model', and so on."""
    kind, _, where = origin.partition(": ")
    return {
        "file": f"the label file {where}",
        "sidecar": f"{where} beside the model",
        "model metadata": f"the model's metadata, {where}",
    }.get(kind, origin)


def _labels_line(labels: dict[str, Any], num_classes: int | None) -> str:
    count = labels["count"]
    if labels["origin"] == "none":
        names = f"class_0 … class_{count - 1}" if count > 1 else "class_0"
        return f"labels: none found; results name the {count} classes by index ({names})"
    classes = (
        "the model's class count is unknown"
        if num_classes is None
        else f"the model has {num_classes} class{'es' if num_classes != 1 else ''}"
    )
    return f"labels: {count} from {_label_origin(labels['origin'])} ({labels['format']}); {classes}"


def _human(report: ModelReport) -> str:
    data = report.as_dict()
    lines = [f"{data['path']}  ({_file_summary(report, data)})"]
    if not report.usable:
        lines.append(f"  NOT USABLE: {report.error}")
    for key in ("task", "decoder", "decoder_reason"):
        if key in data:
            lines.append(f"  {key.replace('_', ' ')}: {data[key]}")
    if "input" in data:
        tensor = data["input"]
        lines.append(
            f"  input: {tensor['name']} {tensor['shape']} {tensor['dtype']}"
            + (f" q{tensor['quantization']}" if "quantization" in tensor else "")
            + f", {tensor['color']}, {tensor['resize']}, normalization {tensor['normalization']}"
        )
    for tensor in data.get("outputs", []):
        role = f"{tensor['role']}: " if "role" in tensor else ""
        lines.append(f"  output {role}{tensor['name']} {tensor['shape']} {tensor['dtype']}")
    if "labels" in data:
        labels = data["labels"]
        lines.append(f"  {_labels_line(labels, data.get('num_classes'))}")
        if labels["first"] and labels["origin"] != "none":
            lines.append(f"    first: {', '.join(labels['first'])}")
        if labels.get("looked"):
            lines.append("    no label names found; looked in:")
            lines.extend(f"      - {place}" for place in labels["looked"])
        if labels.get("nearby_files_that_fit"):
            lines.append(f"    label files beside it that fit: {', '.join(labels['nearby_files_that_fit'])}")
    if data.get("decisions"):
        lines.append("  decided:")
        for name, decision in data["decisions"].items():
            reason = "see the places looked, above" if decision["origin"] == "none" else decision["reason"]
            lines.append(f"    {name}: {decision['value']} (from {decision['origin']}: {reason})")
    accel = data.get("accelerator", {})
    if accel:
        lines.append(f"  accelerator: {accel['summary']}")
    if data.get("custom_ops"):
        lines.append(f"  custom ops: {', '.join(data['custom_ops'])}")
    for note in data.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    config = model_config_from_args(args, args.model)
    try:
        report = inspect_model(config)
    except EdgedError as exc:
        report = ModelReport(path=args.model, error=str(exc))
    if args.json:
        print(json.dumps(report.as_dict(), indent=None))
    else:
        print(_human(report))
    return 0 if report.usable else 1
